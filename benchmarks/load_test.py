"""Bounded load test of `stylesearch serve` over loopback: N clients, a fixed number of requests.

    .venv/bin/python benchmarks/load_test.py                     # defaults: 8 clients, ViT-B/32 random weights
    .venv/bin/python benchmarks/load_test.py --clients 32 --variants 16x16 --index /tmp/load-index

It builds a small drawn catalogue and its index with the ViT-B/32 architecture (random weights: speed
needs no trained values), starts the server in a subprocess exactly as `stylesearch serve` runs it
(`server_config`), and drives it with httpx from this process. It reports throughput, p50/p99 latency,
errors and the server's resident memory, per scenario, as a Markdown table. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

MODEL = "vit-b-32-random"
COLOURS = ["black", "white", "red", "navy blue", "blue", "green", "yellow", "pink", "grey", "brown"]
THINGS = ["tshirt", "shirt", "jeans", "shorts", "skirt", "dress", "watch", "handbag", "casual shoes", "cap"]
EXTRAS = ["", "for men", "for women", "striped", "with polka dots", "checked cotton", "for summer", "formal"]


@dataclass
class Result:
    scenario: str
    variant: str
    clients: int
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: Counter
    rss_mb: tuple[float, float]

    def row(self) -> str:
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        return (f"| {self.scenario} | {self.variant} | {self.clients} | {self.requests} | "
                f"{self.requests / self.seconds:.1f} | {np.percentile(lat, 50):.0f} | {np.percentile(lat, 99):.0f} | "
                f"{lat.max():.0f} | {sum(self.errors.values())} | {self.rss_mb[0]:.0f} → {self.rss_mb[1]:.0f} |")


HEADER = ("| scenario | threads x max batch | clients | requests | req/s | p50 ms | p99 ms | max ms | errors "
          "| server RSS MB (before → after) |\n|---|---|---|---|---|---|---|---|---|---|")


# --- the server side (run as a subprocess) -------------------------------------------------------------

def serve(index: Path, port: int, threads: int, max_batch: int) -> None:
    import uvicorn

    from stylesearch.config import ServeConfig
    from stylesearch.search.searcher import Searcher
    from stylesearch.serve.app import create_app
    from stylesearch.serve.server import bind, server_config

    searcher = Searcher.from_index(index)
    searcher.search("warm up", k=1)
    cfg = ServeConfig(port=port)
    app = create_app(searcher, cfg, max_batch=max_batch, search_threads=threads)
    sock = bind("127.0.0.1", port)

    def report(*_: object) -> None:  # uvicorn re-raises SIGTERM after its shutdown; say what was batched first
        for kind, sizes in searcher.encoder.batch_sizes.items():
            calls = sum(sizes.values())
            mean = sum(k * v for k, v in sizes.items()) / max(calls, 1)
            print(f"server {threads}x{max_batch}: {calls} {kind} encoder calls, {mean:.2f} queries per call",
                  file=sys.stderr, flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, report)
    uvicorn.Server(server_config(app, cfg, log_level="warning", access_log=False)).run(sockets=[sock])


# --- the client side -------------------------------------------------------------------------------------

def build_index(work: Path, products: int) -> Path:
    from stylesearch.config import IndexConfig, PrepareConfig
    from stylesearch.data.catalog import read_catalog
    from stylesearch.data.prepare import prepare
    from stylesearch.data.synthetic import make_catalog
    from stylesearch.index.store import build_index as build

    raw = make_catalog(work / "raw", n=products, seed=0)
    prepare(read_catalog(raw), PrepareConfig(), work / "catalog")
    build(work / "catalog", work / "index", model=MODEL, cfg=IndexConfig(kind="flat", batch_size=32), progress=False)
    return work / "index"


def upload_images(index: Path, count: int = 24) -> list[bytes]:
    """Catalogue photos enlarged to a phone-photo-like 480x640 JPEG, so decode and resize cost is real."""
    import pandas as pd
    from PIL import Image

    images = pd.read_parquet(index / "images.parquet")["image"].tolist()[:count]
    out = []
    for data in images:
        buf = io.BytesIO()
        Image.open(io.BytesIO(data)).convert("RGB").resize((480, 640)).save(buf, "JPEG", quality=88)
        out.append(buf.getvalue())
    return out


def queries(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(p for p in (rng.choice(COLOURS), rng.choice(THINGS), rng.choice(EXTRAS)) if p) for _ in range(n)]


async def drive(base: str, clients: int, total: int, request) -> tuple[float, list[float], Counter]:
    latencies: list[float] = []
    errors: Counter = Counter()
    counter = itertools.count()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        for i in range(min(clients, 4)):  # warm the connections and the server
            await request(client, i)

        async def worker() -> None:
            while (i := next(counter)) < total:
                start = time.perf_counter()
                try:
                    response = await request(client, i)
                    if response.status_code != 200:
                        errors[f"HTTP {response.status_code}"] += 1
                except httpx.HTTPError as err:
                    errors[type(err).__name__] += 1
                latencies.append((time.perf_counter() - start) * 1000)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return time.perf_counter() - start, latencies, errors


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def start_server(index: Path, port: int, threads: int, max_batch: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(index), "--port", str(port),
                             "--threads", str(threads), "--max-batch", str(max_batch)])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("server did not start in 300 s")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--text-requests", type=int, default=400)
    parser.add_argument("--image-requests", type=int, default=60)
    parser.add_argument("--products", type=int, default=300, help="size of the drawn catalogue to index")
    parser.add_argument("--index", type=Path, help="reuse this index directory (built there if missing)")
    parser.add_argument("--variants", default="16x16,16x1",
                        help="server settings to compare, as SEARCH_THREADS x MAX_BATCH (first is the default)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the scenarios on the same server (memory)")
    parser.add_argument("--k", type=int, default=24, help="results per request, as the page asks")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--max-batch", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.threads, args.max_batch)
        return

    import torch

    print(f"# load test: {MODEL}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), load average {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="stylesearch-load-") as tmp:
        started = time.perf_counter()
        if args.index and (args.index / "manifest.json").is_file():
            index = args.index
        else:
            index = build_index(Path(tmp), args.products)
            if args.index:
                shutil.copytree(index, args.index)
            print(f"index of {args.products} products built in {time.perf_counter() - started:.0f} s", flush=True)
        photos = upload_images(index)
        texts = queries(max(args.text_requests, 1) + 8)

        async def text(client: httpx.AsyncClient, i: int) -> httpx.Response:
            return await client.get("/api/search", params={"q": texts[i % len(texts)], "k": args.k})

        async def image(client: httpx.AsyncClient, i: int) -> httpx.Response:
            files = {"file": (f"photo{i}.jpg", photos[i % len(photos)], "image/jpeg")}
            return await client.post("/api/search/image", params={"k": args.k}, files=files)

        results = []
        for variant in args.variants.split(","):
            threads, max_batch = (int(x) for x in variant.split("x"))
            port = free_port()
            proc = start_server(index, port, threads, max_batch)
            try:
                plan = [("text", text, args.text_requests), ("image", image, args.image_requests)] * args.rounds
                for name, request, total in plan:
                    if total <= 0:
                        continue
                    before = rss_mb(proc.pid)
                    seconds, lat, errors = asyncio.run(drive(f"http://127.0.0.1:{port}", args.clients, total, request))
                    results.append(Result(name, variant, args.clients, total, seconds, lat, errors,
                                          (before, rss_mb(proc.pid))))
                    print(HEADER.splitlines()[0] if len(results) == 1 else "", results[-1].row(), sep="\n", flush=True)
                    if errors:
                        print("errors:", dict(errors), flush=True)
            finally:
                proc.terminate()
                proc.wait(30)
            print(f"load average now {os.getloadavg()[0]:.1f}", flush=True)
        print("\n" + HEADER)
        for r in results:
            print(r.row())


if __name__ == "__main__":
    main()
