"""Index build throughput, query latency and memory for stylesearch search, on the CPUs at hand.

    .venv/bin/python benchmarks/bench_search.py            # ~5 minutes on 2 busy cores

Model: the real ViT-B/32 CLIP architecture with random weights (speed needs no trained values).
- Build: embeds --images real photos from the shared data (not all 34k: on 2 cores that takes ~30
  minutes), and extrapolates the time for the whole catalogue.
- 34k: the real catalogue's metadata with --images real vectors and random unit vectors for the
  rest (flat search cost does not depend on the values); end-to-end = text encoding + search + Hit records.
- 1M: synthetic unit vectors with a 32-d intrinsic dimension, search only, exact (flat). HNSW is
  built on --hnsw-n vectors only (its build runs ~500 vectors/s on 2 cores) with recall@10 against
  exact; ivfpq (its k-means takes minutes on 2 cores) only with --ivfpq N.
Prints one markdown table (plus the command line) to paste into docs/search.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import torch

from stylesearch.common.files import sha256_bytes
from stylesearch.config import KAGGLE_ATTRIBUTES, IndexConfig
from stylesearch.data.prepare import ProcessedCatalog
from stylesearch.index.kinds import make_faiss
from stylesearch.index.store import EmbeddingIndex
from stylesearch.model.clip import ClipEncoder, vit_b32_random
from stylesearch.search.searcher import Searcher

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-product-images-small"
QUERIES = ["blue jeans", "black watch", "red dress for women", "white sports shoes", "men formal shirt",
           "leather handbag", "kids t-shirt", "green kurta", "sunglasses", "navy blue casual shorts"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class Stopwatch:
    """Wall and process-CPU time per timed call: on a busy shared machine the CPU time is the steadier figure."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    @contextmanager
    def timing(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)

    def ms(self) -> str:
        wall, cpu = np.asarray(self.wall) * 1000, np.asarray(self.cpu) * 1000
        return (f"{np.percentile(wall, 50):.1f} / {np.percentile(wall, 95):.1f} ms "
                f"(CPU {np.percentile(cpu, 50):.1f} / {np.percentile(cpu, 95):.1f} ms)")


def load_catalogue(path: Path) -> pd.DataFrame:
    raw = pd.read_parquet(path)
    frame = pd.DataFrame({"id": raw["id"].astype(str), "title": raw["productDisplayName"].fillna("").astype(str)})
    frame["full_text"] = frame["title"]
    frame["image"] = [cell["bytes"] if isinstance(cell, dict) else cell for cell in raw["image"]]
    frame["image_sha256"] = [sha256_bytes(b) for b in frame["image"]]
    for column in KAGGLE_ATTRIBUTES:
        frame[column] = raw[column]
    frame["year"] = pd.to_numeric(frame["year"], errors="coerce").astype("Int64")
    return frame


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def synthetic(n: int, basis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors with a low intrinsic dimension, like real image embeddings (pure noise has no neighbours).

    Each is a Gaussian point in a `len(basis)`-d latent space mapped to the full width by `basis`, plus
    a little full-width noise.
    """
    latent, dim = basis.shape
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        size = min(100_000, n - start)
        rows = rng.standard_normal((size, latent), dtype=np.float32) @ basis
        rows += rng.standard_normal((size, dim), dtype=np.float32) * (0.2 / np.sqrt(dim))
        out[start : start + size] = unit(rows)
    return out


class VectorOnly:
    """An encoder stand-in for synthetic vectors: search_vector needs only the fingerprint and dim."""

    def __init__(self, dim: int):
        self.dim, self.fingerprint = dim, "synthetic"


def index_of(vectors_index: faiss.Index, kind: str, n: int, dim: int,
             exact: np.ndarray | None = None) -> EmbeddingIndex:
    products = pd.DataFrame({"id": [str(i) for i in range(n)], "title": ""})
    manifest = {"model": {"name": "synthetic", "fingerprint": "synthetic"}, "dim": dim, "count": n,
                "index": {"kind": kind, "params": {}}}
    return EmbeddingIndex(vectors_index, products, manifest, None, exact)


def timed_queries(search, vectors: np.ndarray) -> tuple[Stopwatch, list[list[str]]]:
    watch, ids = Stopwatch(), []
    search(vectors[0])  # warm-up
    for vector in vectors:
        with watch.timing():
            hits = search(vector)
        ids.append([h.id for h in hits])
    return watch, ids


def recall(approx: list[list[str]], exact: list[list[str]]) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "dev.parquet")
    parser.add_argument("--images", type=int, default=128, help="real images to embed for the build figure")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--big", type=int, default=1_000_000, help="synthetic vectors for search-only figures")
    parser.add_argument("--hnsw-n", type=int, default=20_000)
    parser.add_argument("--ivfpq", type=int, default=0, help="also build ivfpq over this many of the big vectors")
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    cfg = IndexConfig()
    torch.set_num_threads(int(os.environ.get("STYLESEARCH_THREADS", torch.get_num_threads())))

    # 1. Build throughput on real photos with ViT-B/32 (random weights).
    frame = load_catalogue(args.data)
    n_cat = len(frame)
    encoder = ClipEncoder(vit_b32_random(), batch_size=cfg.batch_size, device=torch.device("cpu"))
    subset = ProcessedCatalog(frame.iloc[: args.images].reset_index(drop=True), {"catalog_sha256": "bench"},
                              Path("bench"))
    encoder.encode_images(subset.frame["image"].iloc[:2].map(_decode).tolist())  # warm-up
    build = Stopwatch()
    with build.timing():
        built, _ = EmbeddingIndex.build(subset, encoder, None, cfg, progress=False)
    rate, cpu_rate = args.images / build.wall[0], args.images / build.cpu[0]
    rows.append(("index build, ViT-B/32, flat", f"{rate:.1f} images/s ({args.images} real images in "
                 f"{build.wall[0]:.0f} s; {cpu_rate:.1f} images per CPU-second)",
                 f"{n_cat:,} images ≈ {n_cat / rate / 60:.0f} min at this rate (extrapolated)"))

    # 2. End-to-end queries over the 34k catalogue (flat, the default below exact_max).
    rng = np.random.default_rng(0)
    vectors = unit(rng.standard_normal((n_cat, encoder.dim), dtype=np.float32))
    vectors[: args.images] = built.vectors()
    products = frame.drop(columns=["image"])
    products["content_sha256"] = ""
    manifest = {**built.manifest, "count": n_cat}
    searcher = Searcher(EmbeddingIndex(make_faiss(vectors, "flat", cfg), products, manifest, None), encoder)
    queries = [QUERIES[i % len(QUERIES)] + ("" if i < len(QUERIES) else f" {i}") for i in range(args.queries)]
    searcher.search(queries[0], k=10)  # warm-up
    for label, filters in (("", None), (", filter gender=Women", {"gender": "Women"})):
        watch = Stopwatch()
        for query in queries:
            with watch.timing():
                searcher.search(query, k=10, filters=filters)
        rows.append((f"query end to end{label}", watch.ms(), f"{n_cat:,} products, k=10, text encode + search + hits"))
    encode = Stopwatch()
    for query in queries:
        with encode.timing():
            encoder.encode_texts([query])
    rows.append(("  of which text encoding", encode.ms(), "ViT-B/32 text tower, 1 query"))
    only, _ = timed_queries(lambda v, s=searcher: s.search_vector(v, k=10), vectors[: args.queries])
    rows.append(("  of which search + hits", only.ms(), f"flat, {n_cat:,} products"))
    rows.append(("peak RSS after the 34k steps", f"{peak_rss_mb():,.0f} MB", "model + catalogue + index"))
    del searcher, vectors, built

    # 3. Search only over 1M synthetic vectors: exact (flat) vs ivfpq, and HNSW on a subset.
    dim = encoder.dim
    basis = unit(rng.standard_normal((32, dim), dtype=np.float32))
    queries_vec = synthetic(args.queries, basis, rng)
    big = synthetic(args.big, basis, rng)
    flat = faiss.IndexFlatIP(dim)
    flat.add(big)
    del big
    exact_index = index_of(flat, "flat", args.big, dim)
    exact = Searcher(exact_index, VectorOnly(dim))  # type: ignore[arg-type]
    exact_t, exact_ids = timed_queries(lambda v: exact.search_vector(v, k=10), queries_vec)
    rows.append((f"search only, flat (exact), {args.big:,}", exact_t.ms(), "recall@10 1.000"))

    if args.ivfpq:
        part = exact_index.matrix()[: args.ivfpq]
        start = time.perf_counter()
        pq = make_faiss(part, "ivfpq", cfg)
        pq_build = time.perf_counter() - start
        pq_searcher = Searcher(index_of(pq, "ivfpq", args.ivfpq, dim, part), VectorOnly(dim))  # type: ignore[arg-type]
        part_exact = Searcher(index_of(make_faiss(part, "flat", cfg), "flat", args.ivfpq, dim), VectorOnly(dim))  # type: ignore[arg-type]
        _, part_ids = timed_queries(lambda v: part_exact.search_vector(v, k=10), queries_vec)
        pq_t, pq_ids = timed_queries(lambda v: pq_searcher.search_vector(v, k=10), queries_vec)
        rows.append((f"search only, ivfpq, {args.ivfpq:,}", pq_t.ms(),
                     f"recall@10 {recall(pq_ids, part_ids):.3f}; nprobe {cfg.ivf_nprobe}, exact re-rank; "
                     f"build {pq_build:.0f} s"))

    sub = np.ascontiguousarray(exact_index.matrix()[: args.hnsw_n])
    start = time.perf_counter()
    graph = make_faiss(sub, "hnsw", cfg)
    hnsw_build = time.perf_counter() - start
    sub_exact = Searcher(index_of(make_faiss(sub, "flat", cfg), "flat", args.hnsw_n, dim), VectorOnly(dim))  # type: ignore[arg-type]
    sub_hnsw = Searcher(index_of(graph, "hnsw", args.hnsw_n, dim), VectorOnly(dim))  # type: ignore[arg-type]
    _, sub_ids = timed_queries(lambda v: sub_exact.search_vector(v, k=10), queries_vec)
    hnsw_t, hnsw_ids = timed_queries(lambda v: sub_hnsw.search_vector(v, k=10), queries_vec)
    rows.append((f"search only, HNSW, {args.hnsw_n:,}", hnsw_t.ms(),
                 f"recall@10 {recall(hnsw_ids, sub_ids):.3f}; M {cfg.hnsw_m}, efSearch {cfg.hnsw_ef_search}; "
                 f"build {args.hnsw_n / hnsw_build:.0f} vectors/s ≈ {args.big / (args.hnsw_n / hnsw_build) / 60:.0f} "
                 f"min for {args.big:,}"))
    rows.append(("peak RSS, whole run", f"{peak_rss_mb():,.0f} MB", f"{args.big:,} x {dim} float32 = "
                 f"{args.big * dim * 4 / 2**30:.1f} GiB of vectors"))

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "STYLESEARCH_THREADS") if k in os.environ)
    command = " ".join([*([env] if env else []), "python", *sys.argv])
    print(f"\n`{command}` on {platform.machine()}, {os.cpu_count()} cores (load average "
          f"{load} at the end), {torch.get_num_threads()} torch threads, {faiss.omp_get_max_threads()} faiss "
          f"threads, torch {torch.__version__}, faiss {faiss.__version__}\n")
    print("Latencies: wall p50 / p95, then process CPU time p50 / p95 (the steadier figure on a shared machine).\n")
    print("| measure | result | notes |\n| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _decode(data: bytes):
    from stylesearch.data.images import decode_image

    return decode_image(bytes(data))


if __name__ == "__main__":
    main()
