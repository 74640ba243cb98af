"""Bounded soak of `stylesearch serve` over loopback: 32 clients for 60 s on the text and image endpoints.

    .venv/bin/python benchmarks/soak.py                          # 32 clients, 60 s, tiny model, 300 products
    .venv/bin/python benchmarks/soak.py --clients 8 --seconds 20 --model vit-b-32-random

Each client loops until the time is up, drawing a request: text search (60 %, a quarter of them
filtered), search by an uploaded picture (25 %) or a product photo by id (15 %). Every answer other
than 200 (or a 304 for a photo) is an error. The server's resident memory is read (psutil) after a
warm-up, every few seconds, and at the end; the run fails if any request failed or if memory grew by
more than the stated bound: max(64 MiB, 10 % of the post-warm-up size). Results go to stdout as a
Markdown table and to --out as JSON. The server runs in its own process, started as a user would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_server import build_index, server_errors_in_log, serving  # noqa: E402

WORDS = ["red", "navy blue", "black", "white", "green", "striped", "checked", "polka dot", "tshirt", "jeans",
         "dress", "watch", "handbag", "cap", "casual shoes", "skirt", "shorts", "women", "men", "summer"]
FILTERS = [("gender", "Women"), ("gender", "Men"), ("articleType", "Tshirts"), ("baseColour", "Black"),
           ("year", "2011-2015")]
MIB = 2**20


def bound_bytes(start_rss: int) -> int:
    return max(64 * MIB, int(0.10 * start_rss))


def pictures(n: int, seed: int) -> list[bytes]:
    from stylesearch.data.synthetic import ARTICLE_TYPES, COLOURS, draw_product

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        art = rng.choice(ARTICLE_TYPES)
        image = draw_product(art.shape, rng.choice(list(COLOURS.values())), "Solid", rng)
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


async def client(base: str, ids: list[str], photos: list[bytes], deadline: float, seed: int,
                 latencies: dict[str, list[float]], errors: Counter, statuses: Counter) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        while time.monotonic() < deadline:
            roll = rng.random()
            start = time.perf_counter()
            try:
                if roll < 0.60:
                    kind = "text"
                    params: list[tuple[str, str]] = [("q", " ".join(rng.sample(WORDS, rng.randint(1, 3)))),
                                                     ("k", str(rng.choice([5, 10, 20])))]
                    if rng.random() < 0.25:
                        params.append(rng.choice(FILTERS))
                    response = await http.get("/api/search", params=params)
                elif roll < 0.85:
                    kind = "image upload"
                    files = {"file": ("query.jpg", rng.choice(photos), "image/jpeg")}
                    response = await http.post("/api/search/image", params={"k": 10}, files=files)
                else:
                    kind = "photo by id"
                    response = await http.get(f"/images/{rng.choice(ids)}")
                ok = response.status_code == 200
                statuses[f"{kind} {response.status_code}"] += 1
            except httpx.HTTPError as err:
                ok = False
                statuses[f"{kind} {type(err).__name__}"] += 1
            latencies[kind].append(time.perf_counter() - start)
            if not ok:
                errors[kind] += 1


async def drive(base: str, ids: list[str], photos: list[bytes], clients: int, seconds: float,
                seed: int) -> tuple[dict[str, list[float]], Counter, Counter]:
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: Counter = Counter()
    statuses: Counter = Counter()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(client(base, ids, photos, deadline, seed * 1000 + c, latencies, errors, statuses)
                           for c in range(clients)))
    return latencies, errors, statuses


def sample_rss(process: psutil.Process, samples: list[tuple[float, int]], started: float,
               stop: asyncio.Event) -> asyncio.Task:
    async def loop() -> None:
        while not stop.is_set():
            samples.append((time.monotonic() - started, process.memory_info().rss))
            with contextlib.suppress(asyncio.TimeoutError):  # the tick: sample again
                await asyncio.wait_for(stop.wait(), timeout=2.0)
    return asyncio.ensure_future(loop())


async def soak(base: str, pid: int, ids: list[str], args: argparse.Namespace) -> dict:
    photos = pictures(16, args.seed)
    process = psutil.Process(pid)
    await drive(base, ids, photos, args.clients, args.warmup, args.seed + 1)  # allocate caches, pools, arenas
    start_rss = process.memory_info().rss
    samples: list[tuple[float, int]] = []
    stop = asyncio.Event()
    started = time.monotonic()
    sampler = sample_rss(process, samples, started, stop)
    latencies, errors, statuses = await drive(base, ids, photos, args.clients, args.seconds, args.seed)
    elapsed = time.monotonic() - started
    stop.set()
    await sampler
    end_rss = process.memory_info().rss
    rows = {}
    for kind, values in sorted(latencies.items()):
        ms = np.array(values) * 1000
        rows[kind] = {"requests": len(values), "errors": errors[kind], "p50_ms": float(np.percentile(ms, 50)),
                      "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}
    everything = np.array([v for values in latencies.values() for v in values]) * 1000
    rows["all"] = {"requests": int(everything.size), "errors": sum(errors.values()),
                   "p50_ms": float(np.percentile(everything, 50)), "p99_ms": float(np.percentile(everything, 99)),
                   "max_ms": float(everything.max())}
    bound = bound_bytes(start_rss)
    return {"clients": args.clients, "seconds": round(elapsed, 1), "warmup_s": args.warmup, "model": args.model,
            "products": len(ids), "requests_per_s": round(everything.size / elapsed, 1), "endpoints": rows,
            "statuses": dict(statuses), "rss_start_mib": round(start_rss / MIB, 1),
            "rss_end_mib": round(end_rss / MIB, 1),
            "rss_peak_mib": round(max([end_rss, *(r for _, r in samples)]) / MIB, 1),
            "rss_growth_mib": round((end_rss - start_rss) / MIB, 1), "rss_bound_mib": round(bound / MIB, 1),
            "rss_within_bound": end_rss - start_rss <= bound,
            "rss_samples_mib": [(round(t, 1), round(r / MIB, 1)) for t, r in samples]}


def markdown(result: dict) -> str:
    lines = [f"{result['clients']} clients for {result['seconds']} s (after a {result['warmup_s']} s warm-up), "
             f"model {result['model']}, {result['products']} products, {result['requests_per_s']} requests/s", "",
             "| endpoint | requests | errors | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|"]
    for kind, row in result["endpoints"].items():
        lines.append(f"| {kind} | {row['requests']} | {row['errors']} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} "
                     f"| {row['max_ms']:.1f} |")
    lines += ["", f"server RSS: {result['rss_start_mib']} MiB after warm-up, {result['rss_end_mib']} MiB at the end "
              f"(peak {result['rss_peak_mib']}, growth {result['rss_growth_mib']} MiB; bound "
              f"{result['rss_bound_mib']} MiB = max(64 MiB, 10 % of start): "
              f"{'within' if result['rss_within_bound'] else 'EXCEEDED'})",
              f"server log 5xx lines / tracebacks: {result['server_log_errors']}"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--model", default="tiny", help="tiny (default) or vit-b-32-random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="Reuse a catalogue/index here (default: temp).")
    parser.add_argument("--out", type=Path, default=Path("runs/soak.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        index = build_index(workdir, products=args.products, model=args.model)
        import pandas as pd

        ids = pd.read_parquet(index / "products.parquet", columns=["id"])["id"].astype(str).tolist()
        log = workdir / "server.log"
        with serving(index, model=args.model, log=log) as (base, proc):
            result = asyncio.run(soak(base, proc.pid, ids, args))
        result["server_log_errors"] = len(server_errors_in_log(log))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(markdown(result))
    failed = result["endpoints"]["all"]["errors"] or not result["rss_within_bound"] or result["server_log_errors"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
