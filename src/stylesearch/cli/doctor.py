"""`stylesearch doctor`: check a catalogue, checkpoint and index for consistency; print what to fix."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from stylesearch.cli.base import app, console, friendly, print_json
from stylesearch.errors import StylesearchError

MARKS = {"error": "[red]error[/red]  ", "warning": "[yellow]warning[/yellow]", "ok": "[green]ok[/green]     "}


@app.command("doctor")
@friendly
def doctor_command(
    catalog: Path | None = typer.Option(None, "--catalog", "-c",
                                        help="Processed catalogue (stylesearch prepare) or a raw one."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", "-m",
                                           help="Checkpoint directory (e.g. runs/train/best) or a training run."),
    index: Path | None = typer.Option(None, "--index", "-i", help="Index directory (stylesearch index)."),
    images: bool = typer.Option(True, "--images/--no-images", help="Decode every image (slower, thorough)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only problems."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable findings."),
) -> None:
    """Check counts, hashes, the index-to-model match and the images; exit code 1 if anything is broken."""
    from stylesearch.doctor import as_dicts, diagnose, has_errors

    if catalog is None and checkpoint is None and index is None:
        raise StylesearchError("nothing to check: pass --catalog, --checkpoint and/or --index")
    findings = diagnose(catalog, checkpoint, index, images=images)
    if as_json:
        print_json(as_dicts(findings))
    else:
        for finding in findings:
            if quiet and finding.level == "ok":
                continue
            console.print(f"{MARKS[finding.level]} {escape(finding.what)}", highlight=False, markup=True)
            if finding.fix:
                console.print(f"           fix: {finding.fix}", highlight=False, markup=False)
        errors = sum(f.level == "error" for f in findings)
        warnings = sum(f.level == "warning" for f in findings)
        console.print(f"{errors} error(s), {warnings} warning(s)", highlight=False)
    if has_errors(findings):
        raise typer.Exit(1)
