"""A real `stylesearch serve` on loopback over a drawn catalogue, for the soak and fuzz scripts.

`build_index(workdir)` draws a catalogue, prepares it and indexes it (tiny model by default: the
soak measures stability, not model speed); `serving(index)` starts `stylesearch serve --port 0` in a
subprocess exactly as a user would, waits for its URL, and stops it (SIGINT, then SIGKILL) on exit.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

CLI = "import sys; from stylesearch.cli.base import app; sys.argv[0] = 'stylesearch'; app()"
URL = re.compile(r"http://127\.0\.0\.1:(\d+)/")


def build_index(workdir: Path, *, products: int = 300, model: str = "tiny") -> Path:
    from stylesearch.config import IndexConfig, PrepareConfig
    from stylesearch.data.catalog import read_catalog
    from stylesearch.data.prepare import prepare
    from stylesearch.data.synthetic import make_catalog
    from stylesearch.index.store import build_index as index_catalog

    workdir = Path(workdir)
    index = workdir / f"index-{model}-{products}"
    if (index / "manifest.json").is_file():
        return index
    raw = make_catalog(workdir / f"raw-{products}", n=products, seed=0)
    prepare(read_catalog(raw), PrepareConfig(), workdir / f"catalog-{products}")
    index_catalog(workdir / f"catalog-{products}", index, model=model, cfg=IndexConfig(), progress=False)
    return index


@contextmanager
def serving(index: Path, *, model: str = "tiny", log: Path, args: tuple[str, ...] = (),
            startup_s: float = 300) -> Iterator[tuple[str, subprocess.Popen]]:
    """Yield (base URL, server process) for `stylesearch serve` on 127.0.0.1 and a free port."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", "NO_COLOR": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", CLI, "serve", "--index", str(index), "--model", model,
                                 "--host", "127.0.0.1", "--port", "0", *args],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        base = _wait_for_url(proc, log, startup_s)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for_url(proc: subprocess.Popen, log: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        found = URL.search(log.read_text())
        if found:
            base = f"http://127.0.0.1:{found.group(1)}"
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    raise RuntimeError(f"server not up after {timeout} s:\n{log.read_text()[-3000:]}")


def server_errors_in_log(log: Path) -> list[str]:
    """Access-log lines with a 5xx status, and any traceback the server printed."""
    lines = log.read_text(errors="replace").splitlines()
    return [line for line in lines if re.search(r'" 5\d\d\b', line) or line.startswith("Traceback")]
