"""Index build throughput, query latency and memory for stylesearch search, on the CPUs at hand.

    .venv/bin/python benchmarks/bench_search.py            # ~5 minutes on 2 busy cores

Model: the real ViT-B/32 CLIP architecture with random weights (speed needs no trained values).
- Build: embeds --images real photos from the shared data (not all 34k: on 2 cores that takes ~30
  minutes), and extrapolates the time for the whole catalogue.
- 34k: the real catalogue's metadata with --images real vectors and random unit vectors for the
  rest (flat search cost does not depend on the values); end-to-end = text encoding + search + Hit records.
- 1M: synthetic clustered unit vectors, search only, exact (flat). HNSW is built on --hnsw-n vectors
  only (its build runs ~500 vectors/s on 2 cores) with recall@10 against exact; ivfpq (its k-means
  takes minutes on 2 cores) only with --ivfpq N.
Prints one markdown table (plus the command line) to paste into docs/search.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import torch

from stylesearch.config import KAGGLE_ATTRIBUTES, IndexConfig
from stylesearch.files import sha256_bytes
from stylesearch.index import EmbeddingIndex, make_faiss
from stylesearch.model import ClipEncoder, vit_b32_random
from stylesearch.prepare import ProcessedCatalog
from stylesearch.search import Searcher

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-product-images-small"
QUERIES = ["blue jeans", "black watch", "red dress for women", "white sports shoes", "men formal shirt",
           "leather handbag", "kids t-shirt", "green kurta", "sunglasses", "navy blue casual shorts"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def percentiles(seconds: list[float]) -> str:
    ms = np.asarray(seconds) * 1000
    return f"{np.percentile(ms, 50):.1f} / {np.percentile(ms, 95):.1f}"


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


def clustered(n: int, dim: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors around random centres: neighbours exist, as in real embeddings (pure noise has none)."""
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        size = min(100_000, n - start)
        noise = rng.standard_normal((size, dim), dtype=np.float32) * (0.8 / np.sqrt(dim))
        out[start : start + size] = unit(centres[rng.integers(0, len(centres), size)] + noise)
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


def timed_queries(search, vectors: np.ndarray) -> tuple[list[float], list[list[str]]]:
    times, ids = [], []
    for vector in vectors:
        start = time.perf_counter()
        hits = search(vector)
        times.append(time.perf_counter() - start)
        ids.append([h.id for h in hits])
    return times, ids


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
    start = time.perf_counter()
    built, _ = EmbeddingIndex.build(subset, encoder, None, cfg, progress=False)
    build_s = time.perf_counter() - start
    rate = args.images / build_s
    rows.append(("index build, ViT-B/32, flat", f"{rate:.1f} images/s ({args.images} real images in {build_s:.0f} s)",
                 f"{n_cat:,} images ≈ {n_cat / rate / 60:.0f} min (extrapolated)"))

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
        times = []
        for query in queries:
            start = time.perf_counter()
            searcher.search(query, k=10, filters=filters)
            times.append(time.perf_counter() - start)
        rows.append((f"query end to end{label}", f"{percentiles(times)} ms p50 / p95",
                     f"{n_cat:,} products, k=10, text encode + search + hits"))
    encode = []
    for query in queries:
        start = time.perf_counter()
        encoder.encode_texts([query])
        encode.append(time.perf_counter() - start)
    rows.append(("  of which text encoding", f"{percentiles(encode)} ms p50 / p95", "ViT-B/32 text tower, 1 query"))
    rows.append(("peak RSS after the 34k steps", f"{peak_rss_mb():,.0f} MB", "model + catalogue + index"))
    del searcher, vectors, built

    # 3. Search only over 1M synthetic vectors: exact (flat) vs ivfpq, and HNSW on a subset.
    dim = encoder.dim
    centres = unit(rng.standard_normal((args.big // 250, dim), dtype=np.float32))
    queries_vec = clustered(args.queries, dim, centres, rng)
    big = clustered(args.big, dim, centres, rng)
    flat = faiss.IndexFlatIP(dim)
    flat.add(big)
    del big
    exact_index = index_of(flat, "flat", args.big, dim)
    exact = Searcher(exact_index, VectorOnly(dim))  # type: ignore[arg-type]
    exact_t, exact_ids = timed_queries(lambda v: exact.search_vector(v, k=10), queries_vec)
    rows.append((f"search only, flat (exact), {args.big:,}", f"{percentiles(exact_t)} ms p50 / p95", "recall@10 1.000"))

    if args.ivfpq:
        part = exact_index.matrix()[: args.ivfpq]
        start = time.perf_counter()
        pq = make_faiss(part, "ivfpq", cfg)
        pq_build = time.perf_counter() - start
        pq_searcher = Searcher(index_of(pq, "ivfpq", args.ivfpq, dim, part), VectorOnly(dim))  # type: ignore[arg-type]
        part_exact = Searcher(index_of(make_faiss(part, "flat", cfg), "flat", args.ivfpq, dim), VectorOnly(dim))  # type: ignore[arg-type]
        _, part_ids = timed_queries(lambda v: part_exact.search_vector(v, k=10), queries_vec)
        pq_t, pq_ids = timed_queries(lambda v: pq_searcher.search_vector(v, k=10), queries_vec)
        rows.append((f"search only, ivfpq, {args.ivfpq:,}", f"{percentiles(pq_t)} ms p50 / p95",
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
    rows.append((f"search only, HNSW, {args.hnsw_n:,}", f"{percentiles(hnsw_t)} ms p50 / p95",
                 f"recall@10 {recall(hnsw_ids, sub_ids):.3f}; M {cfg.hnsw_m}, efSearch {cfg.hnsw_ef_search}; "
                 f"build {args.hnsw_n / hnsw_build:.0f} vectors/s ≈ {args.big / (args.hnsw_n / hnsw_build) / 60:.0f} "
                 f"min for {args.big:,}"))
    rows.append(("peak RSS, whole run", f"{peak_rss_mb():,.0f} MB", f"{args.big:,} x {dim} float32 = "
                 f"{args.big * dim * 4 / 2**30:.1f} GiB of vectors"))

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n`{' '.join(['python', *sys.argv])}` on {platform.machine()}, {os.cpu_count()} cores (load average "
          f"{load} at the end), {torch.get_num_threads()} torch threads, {faiss.omp_get_max_threads()} faiss "
          f"threads, torch {torch.__version__}, faiss {faiss.__version__}\n")
    print("| measure | result | notes |\n| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _decode(data: bytes):
    from stylesearch.images import decode_image

    return decode_image(bytes(data))


if __name__ == "__main__":
    main()
