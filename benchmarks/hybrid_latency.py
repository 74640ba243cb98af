"""What `--mode hybrid` costs per query against plain CLIP search, at catalogue sizes up to 1M.

    python benchmarks/hybrid_latency.py --catalog /tmp/q5/catalog --sizes 33768,300000,1000000

The product table is the real processed catalogue, repeated (with new ids) up to each size; the
vectors are random unit vectors (d=512, as ViT-B/32), because only the search cost is measured, not
its quality. Queries are the 327 attribute queries of docs/quality.md, encoded as random vectors.
Per size it reports: the one-off cost of building the BM25 index and the query vocabulary, and per
query p50/p95 of (a) CLIP search (FAISS flat inner product, top 10) and (b) hybrid search (the full
CLIP score vector, BM25, the parsed attributes and the fusion, top 10). The text encoding, the same in
both modes, is left out.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", required=True, help="a processed catalogue (stylesearch prepare)")
    parser.add_argument("--sizes", default="33768,300000,1000000")
    parser.add_argument("--queries", type=int, default=100, help="queries timed per size (of the 327)")
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()

    import faiss
    import pandas as pd

    from stylesearch.data.prepare import load_processed
    from stylesearch.evaluate.quality import attribute_queries
    from stylesearch.search.hybrid import HybridRanker

    catalog = load_processed(args.catalog).frame.drop(columns=["image"])
    queries = [q.text for q in attribute_queries(catalog[catalog["split"] == "test"], seed=0)][:args.queries]
    rng = np.random.default_rng(0)
    print(f"{faiss.omp_get_max_threads()} threads; {len(queries)} queries; d={args.dim}")
    print("| products | BM25 + vocabulary build | CLIP p50 | CLIP p95 | hybrid p50 | hybrid p95 |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in [int(s) for s in args.sizes.split(",")]:
        reps = -(-size // len(catalog))
        products = pd.concat([catalog.assign(id=catalog["id"].astype(str) + f"-{r}") for r in range(reps)],
                             ignore_index=True).head(size)
        vectors = rng.standard_normal((size, args.dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        flat = faiss.IndexFlatIP(args.dim)
        flat.add(vectors)
        started = time.perf_counter()
        ranker = HybridRanker(products)
        build = time.perf_counter() - started
        clip_ms, hybrid_ms = [], []
        for query in queries:
            vector = rng.standard_normal(args.dim).astype(np.float32)
            vector /= np.linalg.norm(vector)
            started = time.perf_counter()
            flat.search(vector[None, :], 10)
            clip_ms.append(1000 * (time.perf_counter() - started))
            started = time.perf_counter()
            ranked, _ = ranker.rank(query, vectors @ vector, depth=10)
            ranked[:10]
            hybrid_ms.append(1000 * (time.perf_counter() - started))

        def q(values: list[float], p: float) -> float:
            return float(np.percentile(values, p))

        print(f"| {size:,} | {build:.1f} s | {statistics.median(clip_ms):.1f} ms | {q(clip_ms, 95):.1f} ms | "
              f"{statistics.median(hybrid_ms):.1f} ms | {q(hybrid_ms, 95):.1f} ms |", flush=True)


if __name__ == "__main__":
    main()
