"""Train the tiny preset on the shared real catalogue for a fixed wall-clock budget and evaluate it.

    python benchmarks/train_tiny.py --minutes 20 --out /tmp/bench-train

Prints one markdown table (base = the untrained tiny model, fine-tuned = after the budget) with every
metric of `stylesearch evaluate` on the held-out test split, plus training samples/s.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from stylesearch.config import EvalConfig, PrepareConfig, TrainConfig
from stylesearch.data.catalog import read_catalog
from stylesearch.data.prepare import load_processed, prepare
from stylesearch.evaluate.metrics import evaluate_checkpoints, markdown_table
from stylesearch.train.loop import train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-product-images-small" / "dev.parquet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-train"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text-views", default="full_text",
                        help="the docs/pipeline.md figures were measured with the single caption (full_text), "
                             "before `views` became the default")
    args = parser.parse_args()

    catalog_dir = args.out / "catalog"
    if not (catalog_dir / "manifest.json").exists():
        prepare(read_catalog(args.data), PrepareConfig(seed=args.seed), catalog_dir)
    catalog = load_processed(catalog_dir)
    cfg = TrainConfig(base_model="tiny", lr=args.lr, weight_decay=0.1, batch_size=args.batch_size, epochs=100,
                      warmup_steps=100, patience=3, max_minutes=args.minutes, seed=args.seed, val_max_items=2000,
                      text_views=args.text_views)
    started = time.monotonic()
    result = train(catalog, cfg, args.out / "train")
    wall = time.monotonic() - started
    rates = [s["samples_per_s"] for s in result.history["steps"]]
    report = evaluate_checkpoints(str(args.out / "train" / "best"), "tiny", catalog_dir, "test", EvalConfig(),
                                  args.out / "eval")
    print(f"\ncommand: python benchmarks/train_tiny.py --minutes {args.minutes} --batch-size {args.batch_size} "
          f"--lr {args.lr} --seed {args.seed}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    gallery = next(iter(report["models"].values()))["items"]
    print(f"data: {args.data}; splits {catalog.manifest['split_sizes']}; test gallery {gallery} items")
    print(f"training: {result.steps} steps, {result.epochs_done} epochs, stopped by {result.stopped}, "
          f"{wall / 60:.1f} min wall; median {np.median(rates):.0f} samples/s (training step only)\n")
    print(markdown_table(report))


if __name__ == "__main__":
    main()
