"""CLI commands for the first half of the pipeline: data, prepare, train, evaluate, demo."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import typer

from stylesearch.cli.base import app, console, data_app, friendly, print_json
from stylesearch.config import DEFAULT_HUB_DATASET, DEFAULT_MODEL, ColumnMapping, EvalConfig, PrepareConfig, TrainConfig


@data_app.command("download")
@friendly
def download(
    source: str = typer.Option("hub", help="'hub' (Hugging Face datasets) or 'kaggle' (kagglehub)."),
    name: str = typer.Option(DEFAULT_HUB_DATASET, help="Dataset name on the Hub or Kaggle."),
    out: Path = typer.Option(Path("data/raw"), help="Where to put the files."),
) -> None:
    """Fetch the catalogue from the Hub or Kaggle (needs network)."""
    from stylesearch.data.download import download_dataset

    path = download_dataset(source, name, out)
    console.print(f"downloaded to [bold]{path}[/bold]; next: stylesearch prepare --data {path}")


@app.command()
@friendly
def prepare(
    data: str = typer.Option(..., "--data", "-d",
                             help="Kaggle folder, HF parquet file/dir or Hub name, or CSV/parquet."),
    out: Path = typer.Option(Path("runs/catalog"), "--out", "-o", help="Processed catalogue directory."),
    fmt: str = typer.Option("auto", "--format", help="auto | kaggle | hf | table"),
    id_col: str = typer.Option("id", help="Column with the product id (table format)."),
    image_col: str = typer.Option("image", help="Column with an image path or bytes (table format)."),
    title_col: str = typer.Option("productDisplayName", help="Column with the product title (table format)."),
    text_cols: str = typer.Option("", help="Comma-separated columns for full_text (default: title + attributes)."),
    encoding: str = typer.Option("utf-8", help="Text encoding of a CSV catalogue."),
    seed: int = typer.Option(0, help="Seed of the split."),
    images_anywhere: bool = typer.Option(False, "--images-anywhere",
                                         help="Accept image paths (table or HF parquet) that lead outside the "
                                              "file's folder: absolute paths, ../ or symlinks out."),
) -> None:
    """Clean a catalogue, build full_text and write the group-aware train/val/test split."""
    from stylesearch.data.catalog import read_catalog
    from stylesearch.data.prepare import prepare as run_prepare

    mapping = ColumnMapping(id=id_col, image=image_col, title=title_col)
    cfg = PrepareConfig(seed=seed)
    if text_cols:
        cfg = replace(cfg, text_columns=tuple(c.strip() for c in text_cols.split(",") if c.strip()))
    catalog = read_catalog(data, fmt=fmt, mapping=mapping if fmt == "table" else None, encoding=encoding,
                           images_anywhere=images_anywhere)
    report = run_prepare(catalog, cfg, out)
    console.print(report.summary(), markup=False)
    console.print(f"wrote [bold]{out}[/bold] (catalog.parquet, manifest.json, report.json, report.md)")


@app.command()
@friendly
def train(
    catalog: Path = typer.Option(Path("runs/catalog"), "--catalog", "-c", help="Processed catalogue directory."),
    out: Path = typer.Option(Path("runs/train"), "--out", "-o", help="Directory for best/, last/ and history."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m",
                              help="Base checkpoint (Hub name or directory) to fine-tune, or a random-init preset "
                                   "to train from scratch: 'small' (best for a CPU budget) or 'tiny' (tests, demo). "
                                   "A preset brings its own recipe; the flags below override it."),
    lr: float = typer.Option(None, help=f"Peak learning rate (default: fine-tune {TrainConfig.lr:g}; presets: "
                             "their own)."),
    batch_size: int = typer.Option(None, help=f"(default: fine-tune {TrainConfig.batch_size}; presets: their own)"),
    epochs: int = typer.Option(None, help=f"(default: fine-tune {TrainConfig.epochs})"),
    warmup_steps: int = typer.Option(None, help=f"(default: fine-tune {TrainConfig.warmup_steps})"),
    patience: int = typer.Option(None, help=f"Epochs without a better val R@10 before stopping "
                                 f"(default: fine-tune {TrainConfig.patience})."),
    max_minutes: float = typer.Option(None, help="Wall-clock budget besides the epoch count; the learning rate "
                                      "anneals to zero over it (default: none to fine-tune, 25 for small)."),
    weight_decay: float = typer.Option(None, help=f"(default: fine-tune {TrainConfig.weight_decay:g})"),
    freeze_vision_layers: int = typer.Option(None),
    freeze_text_layers: int = typer.Option(None),
    grad_clip: float = typer.Option(None, help=f"(default: {TrainConfig.grad_clip:g})"),
    hue_jitter: bool = typer.Option(None, "--hue-jitter/--no-hue-jitter", help="Off by default: captions name "
                                    "colours."),
    augment: str = typer.Option(None, help="crop-flip-rotate | crop-flip | flip | none "
                                f"(default: fine-tune {TrainConfig.augment}; small: none, tiny: crop-flip)"),
    pixel_cache: bool = typer.Option(None, "--pixel-cache/--no-pixel-cache",
                                     help="Decode every image once into a uint8 cache beside the catalogue "
                                          "(default: on for presets, off to fine-tune)."),
    bf16: bool = typer.Option(None, "--bf16/--no-bf16", help="bfloat16 autocast on the CPU (default: on for small)."),
    threads: int = typer.Option(None, help="torch threads (default: torch's default, OMP_NUM_THREADS)."),
    num_workers: int = typer.Option(None, help="Image decoding worker processes."),
    seed: int = typer.Option(None, help="(default: 0)"),
    sampler: str = typer.Option(None, help="Batches: random | confusable (look-alikes together) | "
                                "mixed (half confusable, half random) | hard (nearest neighbours mined each "
                                f"epoch) (default: {TrainConfig.sampler}). See docs/quality.md."),
    text_views: str = typer.Option(None, help="Caption: full_text | views (title, colour + type, "
                                   "gender + usage, ... one drawn per step) | views-sum (every view each step, "
                                   f"losses averaged) | one view name (default: {TrainConfig.text_views}). "
                                   "See docs/quality.md."),
    title_share: float = typer.Option(None, help="With --text-views views: how often the drawn text is the "
                                      "title, the rest spread over the other views (default: even; small: 0.5)."),
    loss: str = typer.Option(None, help="softmax (CLIP's InfoNCE) | sigmoid (SigLIP's pairwise loss) "
                             f"(default: {TrainConfig.loss})."),
    save_every_steps: int = typer.Option(None, help=f"Save a resumable last/ every N steps (default: "
                                         f"{TrainConfig.save_every_steps}; 0 = at epoch ends only)."),
    resume: bool = typer.Option(False, help="Continue from OUT/last."),
) -> None:
    """Fine-tune CLIP (or train a preset from scratch) with a contrastive loss; keeps best/ and last/."""
    from stylesearch.data.prepare import load_processed
    from stylesearch.model.presets import train_config
    from stylesearch.train.loop import train as run_train

    cfg = train_config(model, lr=lr, batch_size=batch_size, epochs=epochs, warmup_steps=warmup_steps,
                       patience=patience, max_minutes=max_minutes, weight_decay=weight_decay,
                       freeze_vision_layers=freeze_vision_layers, freeze_text_layers=freeze_text_layers,
                       grad_clip=grad_clip, hue_jitter=hue_jitter, augment=augment, pixel_cache=pixel_cache,
                       bf16=bf16, threads=threads, num_workers=num_workers, seed=seed, sampler=sampler,
                       text_views=text_views, title_share=title_share, loss=loss,
                       save_every_steps=save_every_steps)
    result = run_train(load_processed(catalog), cfg, out, resume=resume)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 alone reports
        return
    console.print(f"stopped: {result.stopped} after {result.steps} steps, {result.epochs_done} epoch(s); "
                  f"best val R@10 {result.best_metric:.4f}")
    console.print(f"checkpoints: [bold]{out / 'best'}[/bold], {out / 'last'}; history: {out / 'history.png'}")
    if result.stopped == "interrupted":
        raise typer.Exit(130)


@app.command()
@friendly
def evaluate(
    model: str = typer.Option(..., "--model", "-m", help="Fine-tuned checkpoint directory."),
    base: str = typer.Option(None, help="Base checkpoint to compare against (default: the one it was trained from)."),
    catalog: Path = typer.Option(Path("runs/catalog"), "--catalog", "-c",
                                 help="Processed catalogue (its test split), or any other prepared catalogue."),
    split: str = typer.Option("test", help="test | val | train | all"),
    out: Path = typer.Option(Path("runs/eval"), "--out", "-o"),
    max_items: int = typer.Option(None, help="Cap the gallery for a quick look."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of the table."),
    sweep: str = typer.Option("", help="WiSE-FT alphas to sweep, e.g. 0,0.25,0.5,0.75,1: plots in-domain retrieval "
                              "against base category accuracy to OUT/alpha_sweep.png (docs/quality.md)."),
) -> None:
    """Compare the base and the fine-tuned model on held-out products (JSON + markdown)."""
    from stylesearch.evaluate.metrics import evaluate_checkpoints

    report = evaluate_checkpoints(model, base, catalog, split, EvalConfig(max_items=max_items), out)
    if json_out:
        print_json(report)
    else:
        from stylesearch.evaluate.metrics import markdown_table

        console.print(markdown_table(report), markup=False)
        console.print(f"wrote {out / 'eval.json'} and {out / 'eval.md'}")
    if sweep:
        from stylesearch.evaluate.quality import sweep_checkpoints

        alphas = [float(a) for a in sweep.split(",") if a.strip()]
        for row in sweep_checkpoints(model, base, catalog, split, alphas, out, max_items=max_items):
            console.print(f"alpha {row['alpha']:.2f}: title R@10 {row['title_R@10']:.4f}, "
                          f"category accuracy {row['category_accuracy']:.4f}", highlight=False)
        console.print(f"wrote {out / 'alpha_sweep.json'} and {out / 'alpha_sweep.png'}")


@app.command()
@friendly
def demo(
    data: str = typer.Option(None, "--data", help="A real catalogue instead of the drawn one."),
    model: str = typer.Option(None, "--model", help="A real base model instead of the tiny preset."),
    workdir: Path = typer.Option(Path("runs/demo"), "--workdir", help="Where every stage writes."),
    products: int = typer.Option(800, help="Size of the drawn catalogue."),
    epochs: int = typer.Option(8, help="Epochs on the drawn catalogue."),
    minutes: float = typer.Option(None, help="Training budget; with --data and no --model the 'small' preset "
                                  "trains for 25 minutes unless told otherwise."),
) -> None:
    """Run the whole pipeline end to end (offline on embedded defaults) and show example searches."""
    from stylesearch.demo import run_demo

    run_demo(workdir, data=data, model=model, products=products, epochs=epochs, minutes=minutes, console=console)
