"""1M products: build time, memory and recall@10 / latency of each index configuration, side by side.

    .venv/bin/python benchmarks/million.py --only "ivfpq nlist=1000,ivfpq nlist=4096"  # ~6 min; hnsw adds ~20
    .venv/bin/python benchmarks/million.py --n 200000 --queries 100   # a smoke test

Every configuration is built by the library (`stylesearch.index.kinds.make_faiss`, the code
`stylesearch index` runs) over the same 1M synthetic 512-d unit vectors that `benchmarks/run.py`
uses (clustered like real CLIP embeddings: near neighbours at cosine ~0.8), and searched the way
`Searcher` searches it: FAISS fetches `kind.fetch(k)` candidates and, for a lossy kind, they are
re-scored with the exact vectors read from the memory-mapped `embeddings.npy`. Recall@10 is against
exact search of the same vectors (queries drawn from the same distribution, never in the index).

Each configuration is built in its own process, and searched in a fresh one that opens only what a
server opens (the FAISS file, and `embeddings.npy` memory-mapped), so "RSS" is what serving costs:
anonymous memory (the FAISS index, Python, numpy) and file pages touched in the memory map,
reported apart. One query at a time, one thread, as the server runs them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import CACHE, DIM, K, clustered, vectors  # noqa: E402  (the same vectors as the main table)

WORK = CACHE / "million"


def configs() -> dict[str, dict[str, Any]]:
    """name -> IndexConfig fields. `auto` is what `stylesearch index` builds above exact_max."""
    return {
        "ivfpq nlist=1000": {"kind": "ivfpq", "ivf_nlist": 1000},
        "ivfpq auto (4 sqrt n)": {"kind": "ivfpq"},
        "ivfpq nlist=4096": {"kind": "ivfpq", "ivf_nlist": 4096},
        "hnsw M=16 efC=40": {"kind": "hnsw"},
    }


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def build(name: str, fields: dict[str, Any], n: int) -> dict[str, Any]:
    import faiss

    from stylesearch.config import IndexConfig
    from stylesearch.index.kinds import kind_of, make_faiss

    cfg = replace(IndexConfig(), **fields)
    data = vectors(n)
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # `stylesearch index` builds with every core
    before = status_kb("VmRSS")
    started = time.perf_counter()
    index = make_faiss(data, cfg.kind, cfg)
    build_s = time.perf_counter() - started
    folder = WORK / slug(name)
    folder.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(folder / "vectors.faiss"))
    if kind_of(cfg.kind).lossy:
        np.save(folder / "embeddings.npy", data)  # what EmbeddingIndex.save keeps beside lossy codes
    (folder / "config.json").write_text(json.dumps(fields))
    return {"build_s": build_s, "build_peak_rss_mb": status_kb("VmHWM") / 1024,
            "vectors_rss_mb": before / 1024}


def search(name: str, n: int, queries: int, settings: list[dict[str, Any]]) -> dict[str, Any]:
    import faiss

    from stylesearch.config import IndexConfig
    from stylesearch.index.kinds import kind_of

    folder = WORK / slug(name)
    fields = json.loads((folder / "config.json").read_text())
    cfg = replace(IndexConfig(), **fields)
    kind = kind_of(cfg.kind)
    faiss.omp_set_num_threads(1)
    base_rss = status_kb("VmRSS")
    index = faiss.read_index(str(folder / "vectors.faiss"))
    kind.on_load(index, kind.params(cfg))
    exact = np.load(folder / "embeddings.npy", mmap_mode="r") if kind.lossy else None
    probe = clustered(queries, seed=2)
    truth = np.load(WORK / f"truth-{n}-{queries}.npy")
    rows = []
    for setting in settings:
        kind.on_load(index, {**kind.params(cfg), **{k: v for k, v in setting.items() if k != "fetch"}})
        fetch = int(setting.get("fetch", kind.fetch(K, n)))
        found_all, times = [], []
        for q in probe:
            started = time.perf_counter()
            _, found = index.search(q[None, :], fetch)
            found = found[0][found[0] >= 0]
            if exact is not None:  # Searcher: re-score the candidates with the exact vectors (rows in file order)
                found = np.sort(found)
                top = found[np.argsort(-(exact[found] @ q))[:K]]
            else:
                top = found[:K]
            times.append((time.perf_counter() - started) * 1000)
            found_all.append(top)
        recall = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found_all, truth, strict=True)]))
        rows.append({**setting, "fetch": fetch, "recall_at_10": recall, "p50_ms": float(np.percentile(times, 50)),
                     "p99_ms": float(np.percentile(times, 99))})
    return {"settings": rows, "rss_anon_mb": status_kb("RssAnon") / 1024,
            "rss_file_mb": status_kb("RssFile") / 1024, "python_baseline_rss_mb": base_rss / 1024,
            "faiss_file_mb": (folder / "vectors.faiss").stat().st_size / 1e6,
            "exact_file_mb": (folder / "embeddings.npy").stat().st_size / 1e6 if exact is not None else 0.0}


def truth(n: int, queries: int) -> None:
    path = WORK / f"truth-{n}-{queries}.npy"
    if path.is_file():
        return
    data = vectors(n)
    probe = clustered(queries, seed=2)
    top = np.empty((queries, K), np.int64)
    for i in range(0, queries, 50):
        scores = probe[i : i + 50] @ data.T
        top[i : i + 50] = np.argsort(-scores, axis=1)[:, :K]
    WORK.mkdir(parents=True, exist_ok=True)
    np.save(path, top)


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--only", default="", help="comma-separated configuration names (default: all)")
    parser.add_argument("--child", choices=("build", "search"), help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="[{}]", help=argparse.SUPPRESS)
    args = parser.parse_args()
    table = configs()
    if args.child == "build":
        print(json.dumps(build(args.name, table[args.name], args.n)))
        return
    if args.child == "search":
        print(json.dumps(search(args.name, args.n, args.queries, json.loads(args.settings))))
        return
    truth(args.n, args.queries)
    wanted = [c for c in args.only.split(",") if c] or list(table)
    results = {}
    for name in wanted:
        built = child(["--child", "build", "--name", name, "--n", str(args.n)])
        searched = child(["--child", "search", "--name", name, "--n", str(args.n), "--queries", str(args.queries),
                          "--settings", json.dumps(SWEEPS.get(table[name]["kind"], [{}]))])
        results[name] = {**built, **searched}
        print(json.dumps({name: results[name]}), file=sys.stderr)
    lines = [f"{args.n:,} vectors x {DIM}, {args.queries} queries, {platform.machine()}, {os.cpu_count()} cores, "
             f"load average {os.getloadavg()[0]:.1f} at the end",
             "", "| configuration | search setting | recall@10 | p50 / p99 ms | build s | build peak RSS MB "
             "| serving RSS anon / file MB | on disk MB (index + exact) |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        for s in r["settings"]:
            setting = ", ".join(f"{k}={v}" for k, v in s.items() if k not in ("recall_at_10", "p50_ms", "p99_ms"))
            lines.append(f"| {name} | {setting} | {s['recall_at_10']:.3f} | {s['p50_ms']:.2f} / {s['p99_ms']:.2f} | "
                         f"{r['build_s']:.0f} | {r['build_peak_rss_mb']:.0f} | {r['rss_anon_mb']:.0f} / "
                         f"{r['rss_file_mb']:.0f} | {r['faiss_file_mb']:.0f} + {r['exact_file_mb']:.0f} |")
    lines.append(f"\ncommand: python benchmarks/million.py --n {args.n} --queries {args.queries}")
    print("\n".join(lines))
    (WORK / f"results-{args.n}.md").write_text("\n".join(lines) + "\n")


# Search-time settings swept on one built index: the smallest that reaches recall@10 >= 0.95 is the default.
SWEEPS: dict[str, list[dict[str, Any]]] = {
    "hnsw": [{"ef_search": ef} for ef in (64, 128, 256)],
    "ivfpq": [{"nprobe": p, "fetch": f} for p in (8, 16, 32, 64) for f in (50, 100, 200)],
}

if __name__ == "__main__":
    main()
