"""The offline main job: drawn catalogue -> prepare -> train tiny CLIP -> evaluate -> index -> search."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from stylesearch.config import EvalConfig, IndexConfig, PrepareConfig, TrainConfig

EXAMPLE_QUERIES = ("red dress", "black watch", "blue striped tshirt", "yellow cap", "women pink handbag")


@dataclass(frozen=True)
class DemoPlan:
    data: str
    model: str
    offline: bool
    train: TrainConfig


def plan(workdir: Path, data: str | None, model: str | None, products: int, epochs: int) -> DemoPlan:
    """Embedded defaults when nothing is given; otherwise the user's catalogue and model."""
    if data is None:
        from stylesearch.synthetic import make_catalog

        data = str(make_catalog(workdir / "drawn-catalogue", n=products, seed=0))
    base = model or "tiny"
    if base == "tiny":
        # A random-init model learns from scratch: it needs a far larger lr than fine-tuning does.
        cfg = TrainConfig(base_model=base, lr=1e-3, weight_decay=0.1, batch_size=32, epochs=epochs,
                          warmup_steps=20, patience=3)
    else:
        cfg = TrainConfig(base_model=base, epochs=min(epochs, TrainConfig.epochs))
    return DemoPlan(data=data, model=base, offline=model is None, train=cfg)


def run_demo(workdir: Path, *, data: str | None = None, model: str | None = None, products: int = 800,
             epochs: int = 8, console: Console | None = None) -> dict[str, float]:
    """Run every stage into `workdir` and print example searches; returns the headline metrics."""
    from stylesearch.catalog import read_catalog
    from stylesearch.evaluate import evaluate_checkpoints, markdown_table
    from stylesearch.index import build_index
    from stylesearch.prepare import load_processed, prepare
    from stylesearch.search import Searcher
    from stylesearch.train import train

    console = console or Console()
    workdir = Path(workdir)
    started = time.monotonic()
    p = plan(workdir, data, model, products, epochs)
    mode = ("OFFLINE DEMO: a drawn catalogue and the random-init 'tiny' CLIP preset (no downloads)"
            if p.offline and data is None else f"REAL RUN: catalogue {p.data}, base model {p.model}")
    console.rule(f"[bold]stylesearch demo[/bold] - {mode}")

    console.print("[bold]1/5 prepare[/bold]")
    report = prepare(read_catalog(p.data), PrepareConfig(), workdir / "catalog")
    console.print(report.summary(), markup=False)

    console.print(f"[bold]2/5 train[/bold] {p.model}, lr {p.train.lr}, {p.train.epochs} epochs")
    result = train(load_processed(workdir / "catalog"), p.train, workdir / "train")
    console.print(f"stopped: {result.stopped} after {result.steps} steps; best val R@10 {result.best_metric:.3f}")

    console.print("[bold]3/5 evaluate[/bold] base vs fine-tuned on the held-out test split")
    ev = evaluate_checkpoints(str(workdir / "train" / "best"), p.model, workdir / "catalog", "test", EvalConfig(),
                              workdir / "eval")
    console.print(markdown_table(ev), markup=False)

    console.print("[bold]4/5 index[/bold] the whole catalogue with the fine-tuned model")
    _, index_report = build_index(workdir / "catalog", workdir / "index", model=str(workdir / "train" / "best"),
                                  cfg=IndexConfig())
    console.print(index_report.summary(), markup=False)

    console.print("[bold]5/5 search[/bold] through the index")
    searcher = Searcher.from_index(workdir / "index")
    for query in EXAMPLE_QUERIES:
        table = Table(title=f'"{query}"', title_justify="left")
        for col in ("rank", "id", "title", "score"):
            table.add_column(col)
        for hit in searcher.search(query, k=3):
            table.add_row(str(hit.rank), hit.id, hit.title, f"{hit.score:.1f}")
        console.print(table)
    elapsed = time.monotonic() - started
    console.rule(f"done in {elapsed:.0f} s; everything is under {workdir}")
    console.print(f"next: stylesearch search 'red dress' --index {workdir / 'index'}   or   "
                  f"stylesearch serve --index {workdir / 'index'}")
    tuned = next(v for k, v in ev["models"].items() if k.startswith("fine-tuned"))
    return {"t2i R@10": tuned["t2i"]["R@10"], "seconds": elapsed}
