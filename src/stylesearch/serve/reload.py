"""Hot reload: a running server picks up a rebuilt or updated index without dropping a request.

`stylesearch index --update` swaps the index directory in one rename, so its `manifest.json` is a new
file afterwards. `IndexWatcher` polls that file (and `SIGHUP` asks at once); on a change it loads the
new index beside the old one, builds its hybrid state, and only then swaps the app's searcher in one
assignment. A request takes the searcher once when it starts, so requests in flight finish on the
snapshot they began with; the old one is freed when the last of them ends.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from stylesearch.errors import StylesearchError
from stylesearch.index.manifest import MANIFEST
from stylesearch.index.store import EmbeddingIndex
from stylesearch.search.hybrid import hybrid_for
from stylesearch.search.searcher import Searcher

log = logging.getLogger(__name__)


def manifest_stamp(index_dir: Path) -> tuple[int, int] | None:
    """(inode, mtime) of the index's manifest: a swapped-in index always changes the inode."""
    try:
        stat = (Path(index_dir) / MANIFEST).stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def reload_index(state: Any, *, warm_hybrid: bool = True) -> bool:
    """Load the index at the current searcher's path and swap it into `state.searcher`; False if refused.

    The model stays: an index built by another model is refused (logged), and the old one keeps serving.
    """
    current: Searcher = state.searcher
    path = current.index.path
    if path is None:
        return False
    started = time.perf_counter()
    try:
        fresh = Searcher(EmbeddingIndex.load(path), current.encoder)
    except StylesearchError as err:
        log.error("not reloading %s: %s; still serving the index loaded before", path, err)
        return False
    if warm_hybrid:
        hybrid_for(fresh)  # before the swap, so "Match words" never answers by CLIP alone meanwhile
    state.searcher = fresh  # one assignment: each request sees the old searcher or the new one, whole
    log.info("reloaded %s: %d products in %.1f s", path, len(fresh), time.perf_counter() - started)
    return True


class IndexWatcher:
    """A daemon thread that reloads the index when its manifest changes, or when `poke()` asks."""

    def __init__(self, state: Any, *, interval: float = 2.0, warm_hybrid: bool = True):
        self.state = state
        self.interval = interval
        self.warm_hybrid = warm_hybrid
        self.reloads = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._stamp = manifest_stamp(state.searcher.index.path) if state.searcher.index.path else None
        self._thread = threading.Thread(target=self._run, name="stylesearch-index-watcher", daemon=True)

    def start(self) -> IndexWatcher:
        self._thread.start()
        return self

    def poke(self) -> None:
        """Check now (what SIGHUP does), and reload even if the manifest looks unchanged."""
        self._stamp = None
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            path = self.state.searcher.index.path
            stamp = manifest_stamp(path) if path else None
            if stamp is None or stamp == self._stamp:
                continue
            try:
                if reload_index(self.state, warm_hybrid=self.warm_hybrid):
                    self.reloads += 1
                self._stamp = stamp
            except Exception:  # a bad reload must never take the server down; the old index keeps serving
                log.exception("reloading the index failed; still serving the index loaded before")
                self._stamp = stamp
