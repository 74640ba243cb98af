"""The Typer app and the plumbing every command shares: errors become one line and an exit code.

This module imports no command, so command modules can import it without a cycle."""

from __future__ import annotations

import errno
import functools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from stylesearch.errors import StylesearchError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="The `stylesearch` command line: one thin command per stage.")
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
            err_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, markup=True)
            raise typer.Exit(2) from None
        except Exception as err:  # a full disk or a read-only folder is the user's to fix, not a crash
            message = storage_problem(err)
            if message is None:
                raise
            err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, markup=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


# errno -> what to tell the user; every write goes to a temp file first, so the previous output stands.
STORAGE_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def storage_problem(err: BaseException) -> str | None:
    """One line for a write that failed for lack of space or permission, or None for any other error."""
    code = getattr(err, "errno", None)
    text = str(err)
    if code not in STORAGE_ERRORS:
        # safetensors reports a full disk in its own exception type, without an errno.
        if "No space left on device" not in text:
            return None
        code = errno.ENOSPC
    where = getattr(err, "filename", None)
    verb = "cannot access" if code in (errno.EACCES, errno.EPERM) else "cannot write"
    target = f"{verb} {where}" if where else f"a write failed ({text.splitlines()[0][:120]})"
    line = f"{target}: {STORAGE_ERRORS[code]}"
    if code in (errno.ENOSPC, errno.EDQUOT):
        line += f" ({_free_space(Path(where) if where else Path.cwd())} free there); free some space and run again"
    else:
        line += "; choose a folder you can write to (--out) or fix its permissions"
    return line + ". Earlier output is untouched: every result is written to a temporary file first."


def _free_space(path: Path) -> str:
    for folder in (path, *path.parents):
        if folder.exists():
            free = shutil.disk_usage(folder).free
            return f"{free / 2**20:,.0f} MB"
    return "unknown"


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))
