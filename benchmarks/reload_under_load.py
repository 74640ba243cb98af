"""Hot reload under load: a real server answering a steady stream of searches while its index is rebuilt.

    python benchmarks/reload_under_load.py --products 2000 --reloads 10 --clients 4

Builds an index of the drawn catalogue with the random-init `tiny` CLIP, serves it with uvicorn exactly
as `stylesearch serve` does (watching the index, polling every 0.5 s), and keeps `--clients` threads
searching over HTTP. Meanwhile the index is rebuilt `--reloads` times in place (alternating between the
full catalogue and one with 50 products fewer, so every reload is visible in the answers). Reports
requests, failures (any non-200 or connection error), latency percentiles, the reloads the server did,
and the process's resident memory before the first reload and after the last.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import psutil
import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--reloads", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    from stylesearch.config import IndexConfig, PrepareConfig, ServeConfig
    from stylesearch.data.catalog import read_catalog
    from stylesearch.data.prepare import PrepareReport, load_processed, prepare, write_processed
    from stylesearch.data.synthetic import make_catalog
    from stylesearch.index.store import EmbeddingIndex
    from stylesearch.model.clip import ClipEncoder, tiny_model
    from stylesearch.search.searcher import open_searcher
    from stylesearch.serve.app import create_app
    from stylesearch.serve.server import bind, server_config

    work = Path(tempfile.mkdtemp(prefix="reload-bench-"))
    prepare(read_catalog(make_catalog(work / "kaggle", n=args.products, seed=0)), PrepareConfig(), work / "full")
    frame = load_processed(work / "full").frame.iloc[50:].reset_index(drop=True)
    write_processed(frame, PrepareReport(source="bench", rows_in=len(frame), rows_out=len(frame), split_sizes={}),
                    PrepareConfig(), work / "fewer")
    encoder = ClipEncoder(tiny_model(seed=0))
    index = work / "index"
    EmbeddingIndex.build(work / "full", encoder, index, IndexConfig(kind="flat"), model_name="tiny", progress=False)

    cfg = ServeConfig(reload_poll_s=0.5)
    app = create_app(open_searcher(index, encoder=encoder), cfg)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(app, replace(cfg, port=port), log_level="warning", access_log=False))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)

    stop = threading.Event()
    latencies: list[float] = []
    failures: list[str] = []
    totals: set[int] = set()
    words = ["red dress", "black watch", "blue jeans", "yellow cap", "green shirt", "white shoes"]

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    reply = http.get("/api/search", params={"q": words[rng.integers(len(words))], "k": 10})
                    if reply.status_code != 200:
                        failures.append(f"HTTP {reply.status_code}: {reply.text[:100]}")
                    else:
                        totals.add(reply.json()["total"])
                except httpx.HTTPError as err:
                    failures.append(repr(err))
                latencies.append(time.perf_counter() - started)

    process = psutil.Process()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    time.sleep(3)  # warm: first forward passes, the hybrid build
    rss_before = process.memory_info().rss
    started = time.perf_counter()
    for i in range(args.reloads):
        source = work / ("fewer" if i % 2 == 0 else "full")
        EmbeddingIndex.build(source, encoder, index, IndexConfig(kind="flat"), model_name="tiny", progress=False)
        expected = len(load_processed(source).frame)
        deadline = time.monotonic() + 60
        while len(app.state.searcher) != expected or app.state.watcher.reloads < i + 1:
            assert time.monotonic() < deadline, "the server did not reload"
            time.sleep(0.05)
        time.sleep(0.5)
    seconds = time.perf_counter() - started
    time.sleep(2)
    stop.set()
    for t in threads:
        t.join()
    import gc

    gc.collect()
    rss_after = process.memory_info().rss
    server.should_exit = True
    ms = np.array(latencies) * 1000
    print(f"| requests | failed | p50 ms | p99 ms | reloads done | answers' totals seen | RSS before | RSS after |\n"
          f"|---|---|---|---|---|---|---|---|\n"
          f"| {len(latencies)} | {len(failures)} | {np.percentile(ms, 50):.1f} | {np.percentile(ms, 99):.1f} | "
          f"{app.state.watcher.reloads} in {seconds:.0f} s | {sorted(totals)} | {rss_before / 2**20:.0f} MB | "
          f"{rss_after / 2**20:.0f} MB |")
    for failure in failures[:5]:
        print("failure:", failure)
    print(f"\ncommand: python benchmarks/reload_under_load.py --products {args.products} --reloads {args.reloads} "
          f"--clients {args.clients}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()}, "
          f"{time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
