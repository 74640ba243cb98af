"""What search derives from an index's products (BM25, attribute vocabulary, speller), saved once per index.

A one-shot `stylesearch search` in the default hybrid mode rebuilt them from every product's words in
each process: about 2.3 s of a 4 s query over 34k products. They depend on the index's products and
on this code only, so they are saved under the user cache (`$STYLESEARCH_CACHE`, else
`$XDG_CACHE_HOME`, else `~/.cache`) in a folder named by the sha256 of the index manifest, which seals
the hash of every index file, and by `FORMAT`: a rebuilt index, or a new way of deriving them, gets a
new folder. A cache that does not load is rebuilt, never trusted; a cache that cannot be written only
costs the next process the build again. Nothing here is pickled: JSON and numpy arrays only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
FORMAT = 1  # bump when tokens(), the vocabulary or the speller derive differently


def cache_folder(index: Any, name: str) -> Path | None:
    """Where `name`, derived from `index`, is kept; None for an index that was never written to disk."""
    path = getattr(index, "path", None)
    if path is None or not (Path(path) / "manifest.json").is_file():
        return None
    digest = hashlib.sha256((Path(path) / "manifest.json").read_bytes()).hexdigest()[:24]
    base = os.environ.get("STYLESEARCH_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stylesearch" / "derived" / f"{digest}-v{FORMAT}" / name


def cached(index: Any, name: str, build: Callable[[], T], save: Callable[[T, Path], None],
           load: Callable[[Path], T]) -> T:
    """`load` what an earlier process saved for `index`, or `build` it and `save` it for the next one."""
    folder = cache_folder(index, name)
    if folder is not None and folder.is_dir():
        try:
            return load(folder)
        except Exception as err:  # noqa: BLE001 (a damaged or foreign cache is rebuilt, whatever broke it)
            log.warning("rebuilding %s: the cached copy in %s did not load (%s)", name, folder, err)
            shutil.rmtree(folder, ignore_errors=True)  # so the rebuilt copy replaces it for the next process
    built = build()
    if folder is not None:
        _save_atomically(built, folder, save)
    return built


def _save_atomically(value: T, folder: Path, save: Callable[[T, Path], None]) -> None:
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    except OSError as err:
        log.info("not caching %s: %s", folder, err)
        return
    try:
        save(value, tmp)
        if folder.exists():  # another process got there first: its copy is as good
            return
        os.replace(tmp, folder)  # a reader sees the whole folder or none of it
    except OSError as err:
        log.info("not caching %s: %s", folder, err)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
