"""One command, one table: the straightforward CPU approach against stylesearch's, in the same run.

    .venv/bin/python benchmarks/run.py            # ~6-9 min on 2 cores once the /tmp caches exist
    .venv/bin/python benchmarks/run.py --quick    # fewer images, queries and no 1M rows: a smoke test

Straightforward: exactly what the seed's `search_products` does: `CLIPProcessor(text=[query],
padding=True)` (padded to the query's own length), CLIPModel fp32 (torch, default threads), numpy
`argsort` over all vectors, then a DataFrame lookup. The text rows also show the same tower with the
text padded to 77 tokens ("pad 77"), which an earlier version of this benchmark used as its baseline.
Ours: ONNX Runtime int8 (and fp32 for reference), text padded to
the longest item, DataLoader decode workers, FAISS (exact IndexFlatIP up to 200k vectors, HNSW above).

The model is the real ViT-B/32 architecture with random weights (speed does not depend on the
values), images are real catalogue photos from the shared dev.parquet, and the 34k/1M vectors are
synthetic: unit vectors drawn around 2,000 cluster centres in a 64-d latent space mapped to 512-d,
the shape real CLIP embeddings have (near neighbours at cosine ~0.8, random pairs ~0); uniform
random 512-d vectors are a worst case no catalogue looks like.

Each side runs in its own process, so its peak RSS is its own. The ONNX export, the 1M vectors
and the 1M HNSW index are cached under /tmp/stylesearch-bench (delete it to rebuild); the table
reports the build time measured when each was built.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("STYLESEARCH_BENCH_DATA",
                           ROOT.parent / "shared" / "data" / "fashion-product-images-small" / "dev.parquet"))
CACHE = Path(os.environ.get("STYLESEARCH_BENCH_CACHE", "/tmp/stylesearch-bench"))
ONNX_DIR = CACHE / "onnx-vit-b-32-random"
DIM = 512
K = 10
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 40  # measured: 3x faster to build than M=32/efC=80, same recall here
EF_SEARCH_CHOICES = (16, 32, 64, 128, 256, 512)  # the smallest reaching recall@10 >= 0.95 is used
BATCH_CHOICES = (8, 16, 32, 64)


# --- inputs shared by both sides ----------------------------------------------------------------


def catalogue(n_images: int) -> tuple[list[bytes], Any]:
    """The first `n_images` real JPEGs, and every product's metadata (for the lookup after search)."""
    import pyarrow.parquet as pq

    meta = pq.read_table(DATA, columns=["id", "productDisplayName", "articleType", "baseColour"]).to_pandas()
    images = pq.read_table(DATA, columns=["image"]).slice(0, n_images).column("image").to_pylist()
    return [row["bytes"] for row in images], meta


def queries(meta: Any, n: int, seed: int) -> list[str]:
    """Shopper-like queries: distinct lower-cased product titles, in random order."""
    titles = meta["productDisplayName"].dropna().str.lower().drop_duplicates()
    return titles.sample(n=n, random_state=seed).tolist()


def clustered(n: int, seed: int, clusters: int = 2000, latent: int = 64) -> np.ndarray:
    """`n` synthetic unit embeddings (see the module docstring); the same centres for every seed."""
    basis_rng = np.random.default_rng(0)
    basis = basis_rng.standard_normal((latent, DIM), dtype=np.float32) / np.sqrt(latent)
    centres = basis_rng.standard_normal((clusters, latent), dtype=np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), np.float32)
    for start in range(0, n, 100_000):  # in slices: a 1M x 512 temporary per step would double the peak
        m = min(100_000, n - start)
        z = centres[rng.integers(clusters, size=m)] + 0.6 * rng.standard_normal((m, latent), dtype=np.float32)
        x = z @ basis + 0.05 * rng.standard_normal((m, DIM), dtype=np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def vectors(n: int) -> np.ndarray:
    """The catalogue vectors, cached as .npy (memory-mapped, then read into RAM like a real index)."""
    path = CACHE / f"vectors-{n}.npy"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}.npy")
        np.save(tmp, clustered(n, seed=1))
        os.replace(tmp, path)
    return np.ascontiguousarray(np.load(path))


def query_vectors(n: int) -> np.ndarray:
    return clustered(n, seed=2)


# --- measuring ------------------------------------------------------------------------------------


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "n": len(ms)}


def timed(fn, items, warmup: int = 3) -> dict[str, float]:
    for item in items[:warmup]:
        fn(item)
    out = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - start)
    return percentiles(out)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def save_parity(side: str, images: np.ndarray, texts: np.ndarray) -> None:
    """Each side's embeddings of the same real photos and titles, for the parent to compare."""
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE / f"parity-{side}.npz", images=images, texts=texts)


def parity(side: str) -> dict[str, float]:
    """Cosine of `side`'s embeddings with the torch ones, and how often its top-10 image ranking per title agrees."""
    base, other = np.load(CACHE / "parity-baseline.npz"), np.load(CACHE / f"parity-{side}.npz")
    out = {}
    for key in ("images", "texts"):
        cos = (base[key] * other[key]).sum(axis=1)
        out[f"{key}_cos_min"], out[f"{key}_cos_mean"] = float(cos.min()), float(cos.mean())
    k = min(K, len(base["images"]))
    truth = np.argsort(-(base["texts"] @ base["images"].T), axis=1)[:, :k]
    found = np.argsort(-(other["texts"] @ other["images"].T), axis=1)[:, :k]
    out["top10_overlap"] = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth, strict=True)]))
    return out


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, exact, strict=True)]))


# --- the straightforward approach -----------------------------------------------------------------


def straightforward_text(model: Any, processor: Any, text: str, *, pad77: bool = False) -> np.ndarray:
    """The seed's text encoding: the processor on a one-query list with `padding=True`, the torch text tower.

    `pad77` pads to CLIP's full context instead (about 5x the text tower's work for a short query).
    """
    import torch

    if pad77:
        tokens = processor(text=[text], padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    else:
        tokens = processor(text=[text], padding=True, return_tensors="pt")
    with torch.no_grad():
        feats = model.get_text_features(**tokens)
    feats = feats if isinstance(feats, torch.Tensor) else feats.pooler_output
    return torch.nn.functional.normalize(feats, dim=-1).numpy()



def part_baseline(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from PIL import Image

    from stylesearch.model.clip import vit_b32_random

    blobs, meta = catalogue(args.images)
    loaded = vit_b32_random()
    model, processor = loaded.model.eval(), loaded.processor
    out: dict[str, Any] = {"threads": torch.get_num_threads()}

    @torch.no_grad()
    def embed_images(batch: list[bytes]) -> np.ndarray:
        images = [Image.open(io.BytesIO(b)).convert("RGB") for b in batch]
        pixels = processor(images=images, return_tensors="pt")
        feats = model.get_image_features(**pixels)
        feats = feats if isinstance(feats, torch.Tensor) else feats.pooler_output
        return torch.nn.functional.normalize(feats, dim=-1).numpy()

    def embed_text(text: str) -> np.ndarray:
        return straightforward_text(model, processor, text)

    embed_images(blobs[:8])
    start = time.perf_counter()
    image_rows = [embed_images(blobs[i : i + 32]) for i in range(0, len(blobs), 32)]
    out["image_per_s"] = len(blobs) / (time.perf_counter() - start)

    texts = queries(meta, args.queries, seed=1)
    out["text_ms"] = timed(embed_text, texts)
    save_parity("baseline", np.concatenate(image_rows), np.concatenate([embed_text(t) for t in texts]))

    def brute_force(matrix: np.ndarray):
        return lambda q: np.argsort(-(matrix @ q))[:K]

    started = time.perf_counter()
    catalogue_vectors = np.ascontiguousarray(vectors(len(meta)))
    out["build_34k_s"] = time.perf_counter() - started  # "building" is holding the matrix in memory
    probe = query_vectors(args.queries)
    out["search_34k_ms"] = timed(brute_force(catalogue_vectors), list(probe))

    def end_to_end(text: str) -> list[dict[str, Any]]:
        top = np.argsort(-(catalogue_vectors @ embed_text(text)[0]))[:K]
        return meta.iloc[top].to_dict("records")

    out["e2e_ms"] = timed(end_to_end, queries(meta, args.queries, seed=2))
    out["rss_serving_mb"] = rss_mb()
    if not args.quick:
        del catalogue_vectors
        gc.collect()
        million = vectors(1_000_000)
        out["search_1m_ms"] = timed(brute_force(million), list(probe[: args.queries_1m]))
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# --- ours ---------------------------------------------------------------------------------------


def part_export(args: argparse.Namespace) -> dict[str, Any]:
    """Export (or check) the ONNX files in a process of its own, so the measured sides never hold torch weights."""
    from stylesearch.model.backends import make_encoder
    from stylesearch.model.clip import vit_b32_random

    started = time.perf_counter()
    make_encoder(vit_b32_random(), "onnx-int8", cache_dir=ONNX_DIR)
    return {"export_s": time.perf_counter() - started}


def onnx_encoder(int8: bool, batch_size: int, num_workers: int):
    """The exported encoder as a server runs it: ORT sessions only, no torch weights in memory."""
    from stylesearch.model.onnx import OnnxEncoder

    started = time.perf_counter()
    encoder = OnnxEncoder(ONNX_DIR, int8=int8, batch_size=batch_size, num_workers=num_workers)
    encoder.encode_texts(["warm up"])  # sessions open lazily; count opening as setup, not as a query
    return encoder, time.perf_counter() - started


def embed_rate(encoder, blobs: list[bytes]) -> float:
    encoder.encode_image_bytes(blobs[: min(8, len(blobs))])
    start = time.perf_counter()
    encoder.encode_image_bytes(blobs)
    return len(blobs) / (time.perf_counter() - start)


def part_onnx(args: argparse.Namespace, int8: bool) -> dict[str, Any]:
    import faiss

    from stylesearch.search.querycache import CachedEncoder

    # One query searches on one thread: measured on this box, a 2-thread OpenMP team made a 34k flat
    # search 4x slower under load (threads wait on each other); concurrent requests use the cores instead.
    faiss.omp_set_num_threads(1)
    blobs, meta = catalogue(args.images)
    encoder, setup = onnx_encoder(int8, batch_size=32, num_workers=1)
    out: dict[str, Any] = {"threads": encoder.threads, "encoder_setup_s": setup}

    if int8 and not args.quick:  # pick the batch size by measurement, on a slice of the images
        sweep = {}
        for batch_size in BATCH_CHOICES:
            encoder.batch_size = batch_size
            sweep[batch_size] = embed_rate(encoder, blobs[:128])
        out["batch_sweep"] = sweep
        encoder.batch_size = max(sweep, key=sweep.get)
        encoder.num_workers = 0
        out["image_per_s_no_workers"] = embed_rate(encoder, blobs)
        encoder.num_workers = 1
    out["batch_size"] = encoder.batch_size
    out["image_per_s"] = embed_rate(encoder, blobs)
    texts = queries(meta, args.queries, seed=1)
    out["text_ms"] = timed(lambda q: encoder.encode_texts([q]), texts)
    save_parity(encoder.backend, encoder.encode_image_bytes(blobs), encoder.encode_texts(texts))
    encoder._sessions.pop("image.onnx", None)  # a text-search server never opens the image tower
    gc.collect()
    if not int8:
        out["peak_rss_mb"] = peak_rss_mb()
        return out

    started = time.perf_counter()
    catalogue_vectors = vectors(len(meta))
    flat = faiss.IndexFlatIP(DIM)
    flat.add(catalogue_vectors)
    out["build_34k_s"] = time.perf_counter() - started
    probe = query_vectors(args.queries)
    out["search_34k_ms"] = timed(lambda q: flat.search(q[None], K), list(probe))

    cached = CachedEncoder(encoder, maxsize=1024)

    def end_to_end(text: str) -> list[dict[str, Any]]:
        _, rows = flat.search(cached.encode_texts([text]), K)
        return meta.iloc[rows[0]].to_dict("records")

    texts = queries(meta, args.queries, seed=2)
    out["e2e_ms"] = timed(end_to_end, texts, warmup=0)  # distinct queries: every one a cache miss
    out["e2e_hit_ms"] = timed(end_to_end, texts, warmup=0)  # the same again: every one a hit
    out["rss_serving_mb"] = rss_mb()
    if args.profile:
        out["profile"] = profile(end_to_end, queries(meta, 50, seed=3))
    del catalogue_vectors
    if not args.quick:
        out |= million_rows(args, probe)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def part_interleaved(args: argparse.Namespace) -> dict[str, Any]:
    """Text and end-to-end latency of both approaches in one process, query by query, alternating.

    The machine is shared: load that comes and goes between two processes would decide a ratio
    measured side after side. Alternating each query (and which side goes first) exposes both to
    the same load; the peak RSS rows still come from the separate processes.
    """
    import faiss

    from stylesearch.model.clip import vit_b32_random
    from stylesearch.search.querycache import CachedEncoder

    faiss.omp_set_num_threads(1)
    _, meta = catalogue(0)
    loaded = vit_b32_random()
    model, processor = loaded.model.eval(), loaded.processor
    encoder, _ = onnx_encoder(int8=True, batch_size=32, num_workers=0)
    # Two thread pools share this process: neither may busy-wait after its turn, or it would slow
    # the other side's next query (ORT spins by default; torch's OpenMP is told PASSIVE by run_part).
    import onnxruntime as ort

    from stylesearch.model.onnx import INT8, TEXT, session_options
    encoder._sessions[TEXT] = ort.InferenceSession(str(ONNX_DIR / INT8[TEXT]), session_options(spin=False),
                                                   providers=["CPUExecutionProvider"])
    cached = CachedEncoder(encoder, maxsize=1024)
    catalogue_vectors = vectors(len(meta))
    flat = faiss.IndexFlatIP(DIM)
    flat.add(catalogue_vectors)
    records = meta.to_dict("records")  # metadata rows ready to return, built once at load

    def base_text(text: str) -> np.ndarray:
        return straightforward_text(model, processor, text)

    def base_e2e(text: str) -> list[dict[str, Any]]:
        top = np.argsort(-(catalogue_vectors @ base_text(text)[0]))[:K]
        return meta.iloc[top].to_dict("records")

    def base77_text(text: str) -> np.ndarray:
        return straightforward_text(model, processor, text, pad77=True)

    def base77_e2e(text: str) -> list[dict[str, Any]]:
        top = np.argsort(-(catalogue_vectors @ base77_text(text)[0]))[:K]
        return meta.iloc[top].to_dict("records")

    def ours_text(text: str) -> np.ndarray:
        return encoder.encode_texts([text])

    def ours_e2e(text: str) -> list[dict[str, Any]]:
        _, rows = flat.search(cached.encode_texts([text]), K)
        return [records[i] for i in rows[0]]

    def ours_e2e_numpy(text: str) -> list[dict[str, Any]]:
        # Exact search as one BLAS matrix-vector product and a partial sort: no FAISS call at all.
        scores = catalogue_vectors @ cached.encode_texts([text])[0]
        top = np.argpartition(-scores, K)[:K]
        return [records[i] for i in top[np.argsort(-scores[top])]]

    sides = {"base_text": base_text, "ours_text": ours_text, "base_e2e": base_e2e, "ours_e2e": ours_e2e,
             "ours_e2e_numpy": ours_e2e_numpy, "base77_text": base77_text, "base77_e2e": base77_e2e}
    times: dict[str, list[float]] = {name: [] for name in sides}
    texts = queries(meta, args.queries, seed=4)
    for fn in sides.values():
        for text in texts[:3]:
            fn(text)  # warm-up; these three are then cache hits for ours_e2e, so skip them below
    for i, text in enumerate(texts[3:]):
        order = list(sides.items()) if i % 2 == 0 else list(sides.items())[::-1]
        for name, fn in order:
            if name.startswith("ours_e2e"):
                cached.clear()  # every measured query a cache miss, as a first-time query is
            start = time.perf_counter()
            fn(text)
            times[name].append(time.perf_counter() - start)
    return {name: percentiles(seconds) for name, seconds in times.items()}


def million_rows(args: argparse.Namespace, probe: np.ndarray) -> dict[str, Any]:
    import faiss

    out: dict[str, Any] = {}
    million = vectors(1_000_000)
    exact = faiss.IndexFlatIP(DIM)
    exact.add(million)
    _, truth = exact.search(probe, K)
    out["search_1m_flat_ms"] = timed(lambda q: exact.search(q[None], K), list(probe[: args.queries_1m]))
    exact.reset()  # frees its 2 GB copy before the HNSW index loads
    hnsw, out["build_1m_s"] = hnsw_1m(million)
    for ef in EF_SEARCH_CHOICES:
        hnsw.hnsw.efSearch = ef
        recall = recall_at_k(hnsw.search(probe, K)[1], truth)
        if recall >= 0.95:
            break
    out["hnsw"] = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": ef, "recall_at_10": recall}
    out["search_1m_ms"] = timed(lambda q: hnsw.search(q[None], K), list(probe))
    hnsw.reset()
    out["memory_per_million_mb"] = memory_per_million(million[:100_000])
    sq8 = faiss.IndexScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    sq8.train(million[:100_000])
    sq8.add(million)
    out["sq8_flat_recall_at_10"] = recall_at_k(sq8.search(probe, K)[1], truth)
    out["sq8_flat_1m_ms"] = timed(lambda q: sq8.search(q[None], K), list(probe[: args.queries_1m]))
    return out


def hnsw_1m(million: np.ndarray):
    import faiss

    path = CACHE / f"hnsw-1m-M{HNSW_M}-efc{HNSW_EF_CONSTRUCTION}.faiss"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        built = json.loads(meta.read_text())
        print(f"1M HNSW from cache; it took {built['build_s']:.0f} s to build at load average "
              f"{built.get('load_average', built.get('load', float('nan'))):.1f}", file=sys.stderr)
        return faiss.read_index(str(path)), built["build_s"]
    from stylesearch.model.onnx import physical_cores

    index = faiss.IndexHNSWFlat(DIM, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    faiss.omp_set_num_threads(physical_cores())  # building inserts in parallel: all cores help
    started = time.perf_counter()
    index.add(million)
    build_s = time.perf_counter() - started
    faiss.omp_set_num_threads(1)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)
    meta.write_text(json.dumps({"build_s": build_s, "load_average": os.getloadavg()[0]}))
    return index, build_s


def memory_per_million(sample: np.ndarray) -> dict[str, float]:
    """Serialised size per vector of each index kind on a 100k sample, scaled to 1M (MB)."""
    import faiss

    n = len(sample)
    kinds = {
        "flat fp32": faiss.IndexFlatIP(DIM),
        "flat fp16": faiss.IndexScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT),
        "flat SQ8": faiss.IndexScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT),
        "IVF-PQ (64x8 bit, 316 lists)": faiss.IndexIVFPQ(faiss.IndexFlatIP(DIM), DIM, 316, 64, 8,
                                                          faiss.METRIC_INNER_PRODUCT),
    }
    out = {}
    for name, index in kinds.items():
        if not index.is_trained:
            index.train(sample)
        index.add(sample)
        out[name] = len(faiss.serialize_index(index)) / n  # bytes per vector
    hnsw_file = CACHE / f"hnsw-1m-M{HNSW_M}-efc{HNSW_EF_CONSTRUCTION}.faiss"
    out[f"HNSW M={HNSW_M} fp32"] = hnsw_file.stat().st_size / 1_000_000
    links = out[f"HNSW M={HNSW_M} fp32"] - out["flat fp32"]  # the graph alone; an SQ8 graph keeps the same links
    out[f"HNSW M={HNSW_M} SQ8 (derived)"] = out["flat SQ8"] + links
    return {name: per_vector * 1_000_000 / 2**20 for name, per_vector in out.items()}


def profile(fn, items: list[str]) -> str:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    for item in items:
        fn(item)
    profiler.stop()
    return profiler.output_text(unicode=False, color=False, show_all=False)


# --- the table ------------------------------------------------------------------------------------


def run_part(name: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--part", name, "--images", str(args.images), "--queries",
               str(args.queries), "--queries-1m", str(args.queries_1m)]
    command += ["--quick"] if args.quick else []
    command += ["--profile"] if args.profile else []
    print(f"[{time.strftime('%H:%M:%S')}] measuring {name} ...", file=sys.stderr, flush=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if name == "interleaved":
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # see part_interleaved
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt_ms(d: dict[str, float] | None) -> str:
    return f"{d['p50']:.1f} / {d['p99']:.1f}" if d else "—"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}x" if a and b else "—"


def table(base: dict[str, Any], fp32: dict[str, Any], ours: dict[str, Any]) -> str:
    h = ours.get("hnsw", {})
    rows = [
        ("image embedding, images/s (higher is better)", f"{base['image_per_s']:.1f}", f"{fp32['image_per_s']:.1f}",
         f"{ours['image_per_s']:.1f}", ratio(ours["image_per_s"], base["image_per_s"])),
        ("text query latency p50 / p99, ms (*)", fmt_ms(base["text_ms"]), fmt_ms(fp32["text_ms"]),
         fmt_ms(ours["text_ms"]),
         ratio(base["text_ms"]["p50"], ours["text_ms"]["p50"])),
        ("text query latency, baseline padded to 77 tokens (the old baseline), ms (*)", fmt_ms(base.get("text77_ms")),
         "—", fmt_ms(ours["text_ms"]), ratio(base.get("text77_ms", {}).get("p50"), ours["text_ms"]["p50"])),
        ("search 34k p50 / p99, ms (numpy argsort vs FAISS flat, exact)", fmt_ms(base["search_34k_ms"]), "—",
         fmt_ms(ours["search_34k_ms"]), ratio(base["search_34k_ms"]["p50"], ours["search_34k_ms"]["p50"])),
        (f"search 1M p50 / p99, ms (numpy vs HNSW M={h.get('M')}, efSearch={h.get('efSearch')}, "
         f"recall@10 {h.get('recall_at_10', float('nan')):.3f})", fmt_ms(base.get("search_1m_ms")), "—",
         fmt_ms(ours.get("search_1m_ms")), ratio(base.get("search_1m_ms", {}).get("p50"),
                                                 ours.get("search_1m_ms", {}).get("p50"))),
        ("end-to-end text query over 34k p50 / p99, ms (encode + search + metadata) (*)", fmt_ms(base["e2e_ms"]), "—",
         fmt_ms(ours["e2e_ms"]), ratio(base["e2e_ms"]["p50"], ours["e2e_ms"]["p50"])),
        ("end-to-end over 34k, baseline padded to 77 tokens (the old baseline), ms (*)", fmt_ms(base.get("e2e77_ms")),
         "—", fmt_ms(ours["e2e_ms"]), ratio(base.get("e2e77_ms", {}).get("p50"), ours["e2e_ms"]["p50"])),
        ("end-to-end over 34k, exact search by numpy BLAS + argpartition instead of FAISS, ms", "—", "—",
         fmt_ms(ours.get("e2e_numpy_ms")), ratio(base["e2e_ms"]["p50"], ours.get("e2e_numpy_ms", {}).get("p50"))),
        ("end-to-end, repeated query (LRU cache hit) p50 / p99, ms", "—", "—", fmt_ms(ours["e2e_hit_ms"]),
         ratio(base["e2e_ms"]["p50"], ours["e2e_hit_ms"]["p50"])),
        ("index build 34k, s (hold matrix vs FAISS flat add)", f"{base['build_34k_s']:.2f}", "—",
         f"{ours['build_34k_s']:.2f}", ""),
        ("index build 1M HNSW, s", "—", "—", f"{ours['build_1m_s']:.0f}" if "build_1m_s" in ours else "—", ""),
        ("RSS serving 34k (model + vectors + metadata), MB", f"{base['rss_serving_mb']:.0f}", "—",
         f"{ours['rss_serving_mb']:.0f}", ratio(base["rss_serving_mb"], ours["rss_serving_mb"])),
        ("peak RSS of the whole side (incl. 1M vectors), MB", f"{base['peak_rss_mb']:.0f}",
         f"{fp32['peak_rss_mb']:.0f}", f"{ours['peak_rss_mb']:.0f}", ""),
    ]
    lines = ["| measure | straightforward (the seed's: torch fp32, padding=True, numpy) | ONNX fp32 "
             "| ours (ONNX int8, FAISS) "
             "| ours vs straightforward |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    lines.append("\n(*) measured in one process, alternating the two sides query by query, so both see the same "
                 "load; the ONNX fp32 text figure and all other rows come from each side's own process.")
    return "\n".join(lines)


def targets(base: dict[str, Any], ours: dict[str, Any]) -> str:
    embed = ours["image_per_s"] / base["image_per_s"]
    e2e = base["e2e_ms"]["p50"] / ours["e2e_ms"]["p50"]
    p50 = ours["e2e_ms"]["p50"]
    lines = [f"- catalogue embedding >= 2x: {embed:.1f}x -> {'met' if embed >= 2 else 'MISSED'}",
             f"- end-to-end text query p50 >= 8x the seed's: {e2e:.1f}x -> {'met' if e2e >= 8 else 'MISSED'}",
             f"- end-to-end text query p50 <= 15 ms at 34k: {p50:.1f} ms -> {'met' if p50 <= 15 else 'MISSED'}"]
    if "search_1m_ms" in ours:
        p50, recall = ours["search_1m_ms"]["p50"], ours["hnsw"]["recall_at_10"]
        ok = p50 <= 2 and recall >= 0.95
        lines.append(f"- 1M search p50 <= 2 ms with recall@10 >= 0.95: {p50:.2f} ms, recall {recall:.3f} -> "
                     f"{'met' if ok else 'MISSED'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=256, help="real catalogue photos to embed per side")
    parser.add_argument("--queries", type=int, default=200, help="text queries (and search probes) per row")
    parser.add_argument("--queries-1m", type=int, default=30, help="probes for the slow 1M brute-force rows")
    parser.add_argument("--quick", action="store_true", help="skip the 1M rows and the batch sweep")
    parser.add_argument("--profile", action="store_true", help="pyinstrument the end-to-end query path")
    parser.add_argument("--part", choices=["export", "baseline", "onnx", "onnx-int8", "interleaved"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.images, args.queries = min(args.images, 64), min(args.queries, 40)
    if args.part:
        sys.path.insert(0, str(ROOT / "src"))
        parts = {"export": part_export, "baseline": part_baseline, "interleaved": part_interleaved}
        result = parts[args.part](args) if args.part in parts else part_onnx(args, int8=args.part == "onnx-int8")
        print(json.dumps(result))
        return
    started = time.perf_counter()
    load_before = os.getloadavg()
    results = {name: run_part(name, args) for name in ("export", "baseline", "onnx", "onnx-int8", "interleaved")}
    base, fp32, ours = results["baseline"], results["onnx"], results["onnx-int8"]
    same = results["interleaved"]
    # The latency rows come from the interleaved process (both sides under the same load).
    base["text_ms"], ours["text_ms"] = same["base_text"], same["ours_text"]
    base["e2e_ms"], ours["e2e_ms"], ours["e2e_numpy_ms"] = same["base_e2e"], same["ours_e2e"], same["ours_e2e_numpy"]
    base["text77_ms"], base["e2e77_ms"] = same["base77_text"], same["base77_e2e"]
    command = " ".join(["python", "benchmarks/run.py", *sys.argv[1:]])
    print(f"`{command}` on {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, {base['threads']} torch / {ours['threads']} ORT intra-op threads; "
          f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; "
          f"{time.perf_counter() - started:.0f} s\n")
    print(table(base, fp32, ours))
    print()
    print(targets(base, ours))
    extras = {key: ours[key] for key in ("batch_size", "batch_sweep", "image_per_s_no_workers", "hnsw",
                                          "memory_per_million_mb", "sq8_flat_recall_at_10", "sq8_flat_1m_ms",
                                          "search_1m_flat_ms", "encoder_setup_s") if key in ours}
    extras["export_s"] = results["export"]["export_s"]
    extras["parity_vs_torch"] = {side: parity(side) for side in ("onnx", "onnx-int8")}
    print("\n```json\n" + json.dumps(extras, indent=1) + "\n```")
    if "profile" in ours:
        print("\n```\n" + ours["profile"] + "\n```")


if __name__ == "__main__":
    main()
