"""Speed-up from 1 to 2 workers: torchrun training processes and Ray embedding actors (docs/scaling.md).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/scale_out.py --catalog /tmp/scale/catalog \
        --model tiny --embed-model vit-b-32-random --embed-rows 160 --repeats 2

Training: one epoch of `stylesearch train` under `torchrun --nproc_per_node N`; the figure is the median
of the per-step global samples/s that history.json records (the evaluation at the end is not counted).
Embedding: `embed_catalog` on a local Ray instance with N actors over the first `--embed-rows` rows,
after a 16-row warm-up run. Ray Data builds a fresh actor pool per dataset, so the timed run still
includes starting the actors and loading the model in each (the warm-up only warms Ray itself).
1- and 2-worker runs alternate (1, 2, 1, 2, ...) so that a change in the machine's load hits both.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def train_rate(catalog: Path, model: str, procs: int, batch_size: int) -> tuple[float, float]:
    out = Path(tempfile.mkdtemp(prefix=f"scale-train-{procs}-"))
    cmd = [str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={procs}", "-m", "stylesearch", "train",
           "--catalog", str(catalog), "--out", str(out), "--model", model, "--epochs", "1",
           "--batch-size", str(batch_size), "--lr", "1e-3", "--warmup-steps", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // procs))}
    started = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    steps = json.loads((out / "history.json").read_text())["steps"]
    return statistics.median(s["samples_per_s"] for s in steps), wall


def embed_rate(catalog: Path, model: str, actors: int, batch_size: int, rows: int) -> float:
    import pandas as pd
    import ray

    from stylesearch.index.ray_build import embed_catalog

    frame = pd.read_parquet(catalog / "catalog.parquet", columns=["id", "image"])
    work = Path(tempfile.mkdtemp(prefix="scale-embed-"))
    frame.head(16).to_parquet(work / "warmup.parquet")
    frame.head(rows).to_parquet(work / "rows.parquet")
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
    try:
        # Ray Data keeps no actors between datasets: this warms Ray's workers and imports, not the pool.
        embed_catalog(work / "warmup.parquet", model, batch_size=8, actors=actors)
        started = time.perf_counter()
        result = embed_catalog(work / "rows.parquet", model, batch_size=batch_size, actors=actors)
        return len(result.ids) / (time.perf_counter() - started)
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--model", default="tiny", help="training model")
    parser.add_argument("--embed-model", default="tiny", help="embedding model (vit-b-32-random: real ViT-B/32 cost)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--embed-rows", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-embed", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"cores: {os.cpu_count()}, load average before: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print("| workload | 1 worker | 2 workers | speed-up |\n|---|---|---|---|")
    if not args.skip_train:
        for _ in range(args.repeats):
            (one, wall1), (two, wall2) = (train_rate(args.catalog, args.model, n, args.batch_size) for n in (1, 2))
            print(f"| training, {args.model}, torchrun processes (samples/s) | {one:.1f} | {two:.1f} | "
                  f"{two / one:.2f}x |")
            print(f"| same, whole command incl. start-up and validation (s) | {wall1:.0f} | {wall2:.0f} | "
                  f"{wall1 / wall2:.2f}x |", flush=True)
    if not args.skip_embed:
        for _ in range(args.repeats):
            one, two = (embed_rate(args.catalog, args.embed_model, n, args.batch_size, args.embed_rows)
                        for n in (1, 2))
            print(f"| embedding {args.embed_rows} images, {args.embed_model}, Ray actors (images/s) | {one:.1f} | "
                  f"{two:.1f} | {two / one:.2f}x |", flush=True)
    load = os.getloadavg()
    print(f"load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
