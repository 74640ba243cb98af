"""Training samples/s of a preset: JPEG decode + PIL augmentation against the uint8 pixel cache, fp32 against bf16.

    python benchmarks/train_throughput.py --catalog /tmp/w/catalog --model small --steps 12 --threads 1,2

Every row runs the real `stylesearch.train.loop` loop (schedule, forward, loss, backward, clip, step) on the
train split of a prepared catalogue, for `--steps` steps after 2 warm-up steps, and reports the median
samples/s the loop logs. "before" is the path every run took until issue 12: decode every JPEG with PIL
on every step, crop/flip/rotate/jitter on PIL images, fp32. The cache is built once before timing.
The row "pixel cache, bf16, text length buckets" runs the loop's attention and optimizer as they were
before the eager-attention and fused-AdamW change (torch's fused attention kernel, whose backward is slow
on a CPU for CLIP's 10-50 tokens, and AdamW's per-tensor loop), so the row after it shows that change
alone; every row but the last gives the token table a dense gradient, as before
`train.towers.sparse_token_grads`; the last row is the loop as it is.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from stylesearch.data.prepare import load_processed
from stylesearch.model.presets import train_config
from stylesearch.train import loop
from stylesearch.train.loop import train

ORIGINAL = {"training_attention": loop.training_attention, "fused_adam": loop.fused_adam,
            "sparse_token_grads": loop.sparse_token_grads}

VARIANTS = {
    "before: PIL decode + augment, fp32": {"pixel_cache": False, "augment": "crop-flip-rotate", "bf16": False,
                                           "text_buckets": 1},
    "pixel cache, fp32": {"pixel_cache": True, "augment": "crop-flip", "bf16": False, "text_buckets": 1},
    "pixel cache, bf16 autocast": {"pixel_cache": True, "augment": "crop-flip", "bf16": True, "text_buckets": 1},
    "pixel cache, bf16, text length buckets": {"pixel_cache": True, "augment": "crop-flip", "bf16": True,
                                               "text_buckets": 4, "fast_loop": False},
    "same, eager attention + fused AdamW": {"pixel_cache": True, "augment": "crop-flip", "bf16": True,
                                            "text_buckets": 4, "sparse_tokens": False},
    "same, sparse token-table gradients": {"pixel_cache": True, "augment": "crop-flip", "bf16": True,
                                           "text_buckets": 4},
}
# Rows before the eager one run the loop as it was: torch's fused attention kernel and the per-tensor AdamW.
SLOW_LOOP = {"training_attention": lambda device: "sdpa", "fused_adam": lambda device: False}
DENSE_TOKENS = {"sparse_token_grads": lambda model, enabled: None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", type=Path, required=True, help="a prepared catalogue (stylesearch prepare)")
    parser.add_argument("--model", default="small")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    catalog = load_processed(args.catalog)
    base = train_config(args.model, epochs=1, save_every_steps=0, val_max_items=64)
    batches = args.steps + 2
    frame = pd.concat([catalog.split("train").head(base.batch_size * batches).assign(split="train"),
                       catalog.split("val").head(64).assign(split="val")], ignore_index=True)
    small = replace(catalog, frame=frame)
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        for name, overrides in VARIANTS.items():
            overrides = dict(overrides)
            fast = overrides.pop("fast_loop", True)
            sparse = overrides.pop("sparse_tokens", fast) and fast
            for name_, fn in SLOW_LOOP.items():
                setattr(loop, name_, fn if not fast else ORIGINAL[name_])
            for name_, fn in DENSE_TOKENS.items():
                setattr(loop, name_, fn if not sparse else ORIGINAL[name_])
            cfg = replace(base, threads=threads, **overrides)
            with tempfile.TemporaryDirectory() as out:
                if cfg.pixel_cache:  # build the cache outside the timed steps
                    train(small, replace(cfg, max_minutes=1e-6), Path(out) / "warm")
                started = time.monotonic()
                result = train(small, cfg, Path(out) / "run")
                rates = [s["samples_per_s"] for s in result.history["steps"][2:]]
            rows.append((threads, name, float(np.median(rates)), time.monotonic() - started))
            print(f"threads {threads}, {name}: {rows[-1][2]:.1f} samples/s", flush=True)
    print(f"\n| threads | path | samples/s ({args.model}, batch {base.batch_size}) |\n|---|---|---|")
    for threads, name, rate, _ in rows:
        print(f"| {threads} | {name} | {rate:.1f} |")
    print(f"\ncommand: python benchmarks/train_throughput.py --catalog {args.catalog} --model {args.model} "
          f"--steps {args.steps} --threads {args.threads}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"load average {os.getloadavg()}, {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
