"""Memory and search latency of one replica's index at 1M vectors: flat, SQ8, IVF-PQ (docs/scaling.md).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/replica_search.py --n 1000000 --queries 100

Vectors are synthetic unit vectors with a 32-d intrinsic dimension (benchmarks/bench_search.py's
generator), 512-d like ViT-B/32. Memory is the serialised index size (what a replica holds in RAM).
Latency is one query at a time, wall p50 and process-CPU p50. IVF-PQ trains on a sample, with 1024
lists (FAISS wants 39 training rows a list; the 4*sqrt(n) lists `make_faiss` picks would need a far
longer k-means than these shared cores allow), 64 x 8-bit codes, nprobe 16. HNSW is not built here:
its build runs at ~600 vectors/s on 2 cores (docs/search.md), 26 minutes for 1M.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import synthetic, unit  # noqa: E402


def measure(index: faiss.Index, queries: np.ndarray, k: int = 10) -> tuple[float, float]:
    walls, cpus = [], []
    for q in queries:
        wall, cpu = time.perf_counter(), time.process_time()
        index.search(q[None, :], k)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--train", type=int, default=40_000)
    args = parser.parse_args()
    faiss.omp_set_num_threads(os.cpu_count() or 2)
    rng = np.random.default_rng(0)
    basis = unit(rng.standard_normal((32, args.dim)).astype(np.float32))
    vectors = np.concatenate([synthetic(min(100_000, args.n - i), basis, rng) for i in range(0, args.n, 100_000)])
    queries = synthetic(args.queries, basis, rng)
    print(f"{args.n:,} x {args.dim}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print("| index | memory | search p50 wall / CPU (ms) | build (s) |\n|---|---|---|---|")

    def report(name: str, make) -> None:
        started = time.perf_counter()
        index = make()
        build = time.perf_counter() - started
        size = len(faiss.serialize_index(index)) / 1e6
        wall, cpu = measure(index, queries)
        print(f"| {name} | {size:,.0f} MB | {wall:.1f} / {cpu:.1f} | {build:.0f} |", flush=True)

    def flat() -> faiss.Index:
        index = faiss.IndexFlatIP(args.dim)
        index.add(vectors)
        return index

    def sq8() -> faiss.Index:
        index = faiss.IndexScalarQuantizer(args.dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors[: args.train])
        index.add(vectors)
        return index

    def ivfpq() -> faiss.Index:
        quantizer = faiss.IndexFlatIP(args.dim)
        index = faiss.IndexIVFPQ(quantizer, args.dim, 1024, 64, 8, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = 1234
        index.train(vectors[: args.train])
        index.add(vectors)
        index.nprobe = 16
        return index

    report("flat (exact)", flat)
    report("SQ8 (flat scan of 8-bit codes)", sq8)
    report("IVF-PQ (1024 lists, 64 B codes, nprobe 16)", ivfpq)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
