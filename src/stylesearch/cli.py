"""The `stylesearch` command line: one thin command per stage; errors become messages and exit codes."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from stylesearch.errors import StylesearchError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Fetch catalogues.")
app.add_typer(data_app, name="data")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # a message must stay one greppable line

F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Turn library errors into one red line and exit code 2 (1 is left for crashes)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except StylesearchError as err:
            err_console.print(f"[red]error:[/red] {err}", highlight=False, markup=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


# Each stage registers its commands on `app` from its own module, keeping this file to the shared plumbing.
# isort: off
from stylesearch import cli_pipeline  # noqa: E402,F401  data, prepare, train, evaluate, demo
from stylesearch import cli_search  # noqa: E402,F401  index, search
from stylesearch import cli_serve  # noqa: E402,F401  serve
from stylesearch import cli_doctor  # noqa: E402,F401  doctor
from stylesearch import cli_quality  # noqa: E402,F401  merge, report
# isort: on
