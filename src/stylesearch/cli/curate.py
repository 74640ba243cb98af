"""`stylesearch tag` and `stylesearch audit`: thin commands over `stylesearch.curate`."""

from __future__ import annotations

from pathlib import Path

import typer

from stylesearch.cli.base import app, console, friendly
from stylesearch.config import AuditConfig, TagConfig


@app.command("tag")
@friendly
def tag_command(
    catalog: Path = typer.Option(..., "--catalog", "-c", help="Processed catalogue directory (stylesearch prepare)."),
    index: Path = typer.Option(..., "--index", "-i", help="Index of that catalogue (stylesearch index): its vectors "
                               "and the model it names are used."),
    out: Path = typer.Option(Path("runs/tag"), "--out", "-o", help="Folder for suggestions.parquet, tags.json, "
                             "report.html (and catalog/ with --fill)."),
    columns: list[str] = typer.Option([], "--column", help="Tag only this column (repeat for more); default: "
                                      f"{', '.join(TagConfig().columns)} and user columns with few values."),
    fill: bool = typer.Option(False, "--fill", help="Also write a catalogue with missing values filled in where the "
                              "calibrated confidence reaches --threshold; values on file are never changed."),
    threshold: float = typer.Option(TagConfig().fill_threshold, "--threshold", min=0.0, max=1.0,
                                    help="Calibrated confidence a suggestion needs to fill a missing value."),
    model: str | None = typer.Option(None, "--model", "-m", help="Defaults to the model named in the index."),
) -> None:
    """Predict attribute values from each product image, with confidence calibrated on the val split."""
    from stylesearch.curate.tag import tag_catalogue
    from stylesearch.curate.write import write_tags
    from stylesearch.data.prepare import load_processed
    from stylesearch.search.searcher import open_searcher

    cfg = TagConfig(fill_threshold=threshold)
    processed = load_processed(catalog)
    result = tag_catalogue(open_searcher(index, model=model), processed, cfg, list(columns) or None)
    summary = write_tags(result, processed, out, cfg, fill=fill)
    for column, m in summary["test"].items():
        console.print(f"{column:<12} test accuracy {m['accuracy']:.3f} (majority {m['majority_accuracy']:.3f}), "
                      f"macro-F1 {m['macro_f1']:.3f} (majority {m['majority_macro_f1']:.3f}), ECE {m['ece']:.3f}",
                      highlight=False)
    if fill:
        cells = ", ".join(f"{c} {n}" for c, n in summary["filled"]["cells"].items())
        console.print(f"filled missing values: {cells}; catalogue in {out / 'catalog'}", highlight=False)
    console.print(f"wrote [bold]{out / 'suggestions.parquet'}[/bold] and {out / 'report.html'}")


@app.command("audit")
@friendly
def audit_command(
    catalog: Path = typer.Option(..., "--catalog", "-c", help="Processed catalogue directory (stylesearch prepare)."),
    index: Path = typer.Option(..., "--index", "-i", help="Index of that catalogue (stylesearch index)."),
    out: Path = typer.Option(Path("runs/audit"), "--out", "-o", help="Folder for findings.parquet, "
                             "duplicates.parquet, audit.json and audit.html."),
    top: int = typer.Option(AuditConfig().top, "--top", min=1, help="Findings shown on the HTML page."),
    duplicate_cosine: float = typer.Option(AuditConfig().duplicate_cosine, "--duplicate-cosine", min=0.0, max=1.0,
                                           help="Image cosine at which two ids count as near-duplicates."),
    model: str | None = typer.Option(None, "--model", "-m", help="Defaults to the model named in the index."),
) -> None:
    """Rank products whose image contradicts their metadata, and list near-duplicate ids."""
    from stylesearch.curate.audit import audit_catalogue
    from stylesearch.curate.write import write_audit
    from stylesearch.data.prepare import load_processed
    from stylesearch.search.searcher import open_searcher

    cfg = AuditConfig(top=top, duplicate_cosine=duplicate_cosine)
    processed = load_processed(catalog)
    result = audit_catalogue(open_searcher(index, model=model), processed, cfg)
    summary = write_audit(result, processed, out, cfg)
    console.print(f"{summary['contradicting']} of {summary['checked']} attributes contradict their image; "
                  f"{summary['duplicates']} near-duplicate pairs ({summary['duplicates_same_bytes']} byte-identical)",
                  highlight=False)
    console.print(f"wrote [bold]{out / 'audit.html'}[/bold] and {out / 'findings.parquet'}")
