"""`stylesearch merge` (WiSE-FT) and `stylesearch report` (the HTML quality report)."""

from __future__ import annotations

from pathlib import Path

import typer

from stylesearch.cli.base import app, console, friendly


@app.command()
@friendly
def merge(
    model: str = typer.Option(..., "--model", "-m", help="Fine-tuned checkpoint directory."),
    alpha: float = typer.Option(..., "--alpha", "-a", min=0.0, max=1.0,
                                help="0 = the base model, 1 = the fine-tuned one; WiSE-FT often does best near 0.5."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint directory to write (replaced atomically)."),
    base: str = typer.Option(None, help="Base checkpoint (default: the one the fine-tune started from)."),
) -> None:
    """WiSE-FT: interpolate the base and fine-tuned weights into a normal checkpoint."""
    from stylesearch.model.merge import merge_checkpoints

    merged = merge_checkpoints(model, out, alpha, base)
    console.print(f"wrote [bold]{out}[/bold] ({merged.name}); use it like any checkpoint: "
                  f"stylesearch index --model {out} ...")


@app.command()
@friendly
def report(
    model: str = typer.Option(..., "--model", "-m", help="Fine-tuned checkpoint directory."),
    base: str = typer.Option(None, help="Base checkpoint (default: the one the fine-tune started from)."),
    catalog: Path = typer.Option(Path("runs/catalog"), "--catalog", "-c", help="Processed catalogue directory."),
    split: str = typer.Option("test", help="Held-out split to measure: test | val."),
    run: Path = typer.Option(None, help="Training run directory (its history.json gives the curves)."),
    alpha: float = typer.Option(None, min=0.0, max=1.0, help="Add a WiSE-FT row at this alpha."),
    sweep: str = typer.Option("", help="Comma-separated alphas to sweep and plot, e.g. 0,0.25,0.5,0.75,1."),
    max_items: int = typer.Option(None, help="Cap the gallery for a quick look."),
    seed: int = typer.Option(0, help="Seed of the generated attribute queries and of the gallery sample."),
    out: Path = typer.Option(Path("runs/report"), "--out", "-o"),
) -> None:
    """Write a self-contained HTML page and markdown: curves, metric tables, per-type recall, confusions, examples."""
    from stylesearch.data.prepare import load_processed
    from stylesearch.evaluate.quality import alpha_sweep
    from stylesearch.evaluate.report import build_report
    from stylesearch.model.clip import load_model
    from stylesearch.model.merge import interpolate, load_base

    frame = load_processed(catalog).split(split)
    if max_items and len(frame) > max_items:
        frame = frame.sample(max_items, random_state=seed).sort_index()
    frame = frame.reset_index(drop=True)
    tuned = load_model(model)
    base, base_model = load_base(model, base)
    models = {"base": base_model, "fine-tuned": tuned}
    if alpha is not None:
        models[f"WiSE-FT α={alpha:g}"] = interpolate(base_model, tuned, alpha)
    alphas = [float(a) for a in sweep.split(",") if a.strip()]
    history = run / "history.json" if run else Path(model).parent / "history.json"
    built = build_report(models, frame, out, history=history, hybrid_of="fine-tuned",
                         sweep=alpha_sweep(base_model, tuned, frame, alphas) if alphas else None, seed=seed,
                         subtitle=f"{len(frame)} products of the {split} split of {catalog}; base {base}; "
                                  f"fine-tuned {model}; seed {seed}")
    from stylesearch.evaluate.report import markdown_rows

    typer.echo(markdown_rows(built["metrics"]))  # plain echo: rich would wrap the table's long lines
    console.print(f"wrote [bold]{out / 'report.html'}[/bold], {out / 'report.md'} and {out / 'quality.json'}")
