"""Server start (issue 16, item 5): seconds from `stylesearch serve` to the first answered query.

    python benchmarks/serve_start.py --index /tmp/serve-start/index --backends torch,auto --runs 5

Each run starts `stylesearch serve --index I --port 0 --backend B` as a fresh process and polls
`/api/search?q=red+dress&mode=clip` every 20 ms until it answers 200; the time is from the process's
start to that answer (imports, the model, the index, the warm-up query, uvicorn). Backends alternate
run by run so both see the same machine. `auto` opens a fresh ONNX export beside the checkpoint when
there is one (build the index with `--backend onnx-int8` to leave one); `torch` loads the torch model.
Prints a table and writes it to <index>/../serve_start.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVING = re.compile(r"http://127\.0\.0\.1:(\d+)/")


def start_once(index: Path, backend: str, timeout: float = 300.0) -> float:
    """Seconds from spawning the server to its first 200 on a search."""
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "stylesearch", "serve", "--index", str(index), "--port", "0", "--backend", backend,
           "--no-watch"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "300"})
    try:
        port = None
        assert proc.stdout is not None
        for line in proc.stdout:  # the port is printed once the model and index are loaded
            found = SERVING.search(line)
            if found:
                port = int(found.group(1))
                break
        if port is None:
            raise RuntimeError(f"serve exited with {proc.wait()} before printing its address")
        url = f"http://127.0.0.1:{port}/api/search?q=red+dress&mode=clip&k=5"
        while time.perf_counter() - started < timeout:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200 and json.loads(response.read())["hits"]:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"no answer from {url} in {timeout} s")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--backends", default="torch,auto")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    backends = args.backends.split(",")
    start_once(args.index, backends[0])  # fills the OS page cache and any saved ORT graph: every run is warm
    times: dict[str, list[float]] = {b: [] for b in backends}
    for _ in range(args.runs):
        for backend in backends:
            times[backend].append(start_once(args.index, backend))
            print(f"{backend}: {times[backend][-1]:.2f} s", flush=True)
    manifest = json.loads((args.index / "manifest.json").read_text())
    lines = [f"index {args.index}: {manifest['count']:,} products, {manifest['index']['kind']}, model "
             f"{manifest['model']['name']}; load average {os.getloadavg()[0]:.1f}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             "| --backend | median s | runs (s) |", "|---|---|---|"]
    for backend, got in times.items():
        lines.append(f"| {backend} | {statistics.median(got):.2f} | {', '.join(f'{t:.2f}' for t in got)} |")
    lines += ["", f"command: python benchmarks/serve_start.py --index {args.index} --backends {args.backends} "
                  f"--runs {args.runs}"]
    text = "\n".join(lines) + "\n"
    print(text)
    (args.index.parent / "serve_start.md").write_text(text)


if __name__ == "__main__":
    main()
