"""The `stylesearch` command line: one thin command per stage; errors become messages and exit codes."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from stylesearch.errors import StylesearchError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Fetch catalogues.")
app.add_typer(data_app, name="data")
console = Console()
err_console = Console(stderr=True)

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


ModelOpt = typer.Option("openai/clip-vit-base-patch32", "--model", "-m",
                        help="Hub name, local directory, or 'tiny' (random-init preset, offline).")
PathArg = Path

# --- core pipeline ------------------------------------------------------------------------------
# (commands are registered in stylesearch.cli_pipeline and the modules below to keep this file small)

from stylesearch import cli_pipeline  # noqa: E402,F401  (registers data/prepare/train/evaluate/demo)

# isort: split
from stylesearch import cli_search  # noqa: E402,F401  (registers index/search)

# isort: split
from stylesearch import cli_serve  # noqa: E402,F401  (registers serve)

# isort: split
from stylesearch import cli_doctor  # noqa: E402,F401  (registers doctor)

# isort: split
from stylesearch import cli_quality  # noqa: E402,F401  (registers merge/report)
