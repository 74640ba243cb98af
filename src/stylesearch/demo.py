"""The offline main job: drawn catalogue -> prepare -> train tiny CLIP -> evaluate -> index -> search."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from stylesearch.config import EvalConfig, IndexConfig, PrepareConfig, TrainConfig
from stylesearch.data.catalog import read_catalog
from stylesearch.data.prepare import load_processed, prepare
from stylesearch.data.synthetic import make_catalog
from stylesearch.evaluate.metrics import evaluate_checkpoints, markdown_table
from stylesearch.index.store import build_index
from stylesearch.model.presets import is_preset, train_config
from stylesearch.search.modes import DEFAULT_MODE
from stylesearch.search.modes import search as search_in_mode
from stylesearch.search.searcher import Searcher
from stylesearch.train.loop import train


@dataclass(frozen=True)
class DemoQuery:
    """An example search and the metadata a right answer has (its type and colour, and gender if named)."""
    text: str
    wanted: tuple[tuple[str, str], ...]

    def is_right(self, attributes: dict) -> bool:
        return all(str(attributes.get(column)) == value for column, value in self.wanted)


EXAMPLE_QUERIES = (
    DemoQuery("red dress", (("articleType", "Dresses"), ("baseColour", "Red"))),
    DemoQuery("black watch", (("articleType", "Watches"), ("baseColour", "Black"))),
    DemoQuery("blue striped tshirt", (("articleType", "Tshirts"), ("baseColour", "Blue"))),
    DemoQuery("yellow cap", (("articleType", "Caps"), ("baseColour", "Yellow"))),
    DemoQuery("women pink handbag", (("articleType", "Handbags"), ("baseColour", "Pink"), ("gender", "Women"))),
)
REAL_DATA_MINUTES = 25.0  # the budget benchmarks/train_budget.py measured the `small` preset at


@dataclass(frozen=True)
class DemoPlan:
    data: str
    model: str
    offline: bool
    train: TrainConfig


def plan(workdir: Path, data: str | None, model: str | None, products: int, epochs: int,
         minutes: float | None = None) -> DemoPlan:
    """Embedded defaults when nothing is given; otherwise the user's catalogue and model.

    The drawn catalogue trains the `tiny` preset for `epochs`; a real catalogue without a model trains
    the `small` preset for `minutes` (default: the 25 minutes it was measured at).
    """

    drawn = data is None
    if drawn:

        data = str(make_catalog(workdir / "drawn-catalogue", n=products, seed=0))
    base = model or ("tiny" if drawn else "small")
    if base == "tiny":
        # Small drawn catalogue: short warmup, small batches so an epoch has enough steps.
        cfg = train_config(base, batch_size=32, epochs=epochs, warmup_steps=20, max_minutes=minutes)
    elif is_preset(base):
        cfg = train_config(base, max_minutes=minutes if minutes is not None else REAL_DATA_MINUTES)
    else:
        cfg = train_config(base, epochs=min(epochs, TrainConfig.epochs), max_minutes=minutes)
    return DemoPlan(data=str(data), model=base, offline=model is None, train=cfg)


def run_demo(workdir: Path, *, data: str | None = None, model: str | None = None, products: int = 800,
             epochs: int = 8, minutes: float | None = None, console: Console | None = None) -> dict[str, float]:
    """Run every stage into `workdir` and print example searches; returns the headline metrics."""
    console = console or Console()
    workdir = Path(workdir)
    started = time.monotonic()
    p = plan(workdir, data, model, products, epochs, minutes)
    mode = ("OFFLINE DEMO: a drawn catalogue and the random-init 'tiny' CLIP preset (no downloads)"
            if p.offline and data is None else f"REAL RUN: catalogue {p.data}, base model {p.model}")
    console.rule(f"[bold]stylesearch demo[/bold] - {mode}")

    console.print("[bold]1/5 prepare[/bold]")
    report = prepare(read_catalog(p.data), PrepareConfig(), workdir / "catalog")
    console.print(report.summary(), markup=False)

    budget = f", up to {p.train.max_minutes:g} minutes" if p.train.max_minutes else ""
    console.print(f"[bold]2/5 train[/bold] {p.model}, lr {p.train.lr:g}, batch {p.train.batch_size}, "
                  f"{p.train.epochs} epochs{budget}")
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

    console.print(f"[bold]5/5 search[/bold] through the index, in the default mode ({DEFAULT_MODE}); "
                  "a hit is right when its metadata has the type and colour asked for")

    searcher = Searcher.from_index(workdir / "index")
    precision = {}
    for query in EXAMPLE_QUERIES:
        hits = search_in_mode(searcher, query.text, k=3, mode=DEFAULT_MODE)
        right = [query.is_right(hit.attributes) for hit in hits]
        precision[query.text] = sum(right) / 3
        table = Table(title=f'"{query.text}"  P@3 {precision[query.text]:.2f}', title_justify="left")
        for col in ("rank", "id", "title", "type", "colour", "right"):
            table.add_column(col)
        for hit, ok in zip(hits, right, strict=True):
            table.add_row(str(hit.rank), hit.id, hit.title, str(hit.attributes.get("articleType")),
                          str(hit.attributes.get("baseColour")), "yes" if ok else "[red]no[/red]")
        console.print(table)
    mean_p3 = sum(precision.values()) / len(precision)
    console.print(f"mean P@3 over the {len(precision)} example searches: {mean_p3:.2f}")
    elapsed = time.monotonic() - started
    console.rule(f"done in {elapsed:.0f} s; everything is under {workdir}")
    console.print(f"next: stylesearch search 'red dress' --index {workdir / 'index'}   or   "
                  f"stylesearch serve --index {workdir / 'index'}")
    tuned = next(v for k, v in ev["models"].items() if k.startswith("fine-tuned"))
    return {"t2i R@10": tuned["t2i"]["R@10"], "seconds": elapsed, "P@3": mean_p3,
            **{f"P@3 {q}": v for q, v in precision.items()}}
