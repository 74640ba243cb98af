"""Decode every training image once: a memory-mapped uint8 array beside the processed catalogue.

Decoding a JPEG and resizing it with PIL on every step is a large share of a small model's step
(the cache made `tiny` 1.28x faster; docs/pipeline.md). The cache holds, for each row of a table,
exactly what the model's own preprocessing (`ClipPreprocess.crop_uint8`, the same steps as its
`CLIPImageProcessor`) makes of the image, before normalisation; training then augments uint8
tensors. The file name carries a hash of the catalogue, the rows and the preprocessing, so a changed
catalogue or model size never reads a stale cache; an older cache of the same split and size is
removed when a new one is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from stylesearch.data.images import decode_image
from stylesearch.model.preprocess import ClipPreprocess

FOLDER = "pixels"  # under the processed catalogue (or the run directory when that is read-only)


def cache_key(catalog_sha256: str, ids: Sequence[str], preprocess: ClipPreprocess) -> str:
    """What the cached pixels depend on: the catalogue's bytes, which rows, and how they were resized."""
    digest = hashlib.sha256()
    digest.update(catalog_sha256.encode())
    digest.update("\n".join(map(str, ids)).encode())
    digest.update(json.dumps([preprocess.shortest_edge, list(preprocess.crop), preprocess.squash]).encode())
    return digest.hexdigest()[:16]


def cached_pixels(blobs: Sequence[bytes], ids: Sequence[str], preprocess: ClipPreprocess, *, catalog_sha256: str,
                  folders: Sequence[Path], label: str = "rows", progress: bool = True) -> np.ndarray:
    """(n, 3, h, w) uint8 pixels of `blobs`, memory-mapped; built on first use in the first writable folder.

    `folders` are tried in order (the catalogue's, then the run's): a read-only catalogue still trains.
    """
    height, width = preprocess.crop
    name = f"{label}-{height}x{width}-{cache_key(catalog_sha256, ids, preprocess)}.npy"
    for folder in folders:
        path = Path(folder) / FOLDER / name
        if path.is_file():
            cached = np.load(path, mmap_mode="r")
            if cached.shape == (len(blobs), 3, height, width) and cached.dtype == np.uint8:
                return cached
    last_error: OSError | None = None
    for folder in folders:
        try:
            return _build(blobs, ids, preprocess, Path(folder) / FOLDER / name, progress)
        except OSError as err:  # read-only or full: try the next folder
            last_error = err
    raise OSError(f"could not write the pixel cache in any of {', '.join(map(str, folders))}: {last_error}")


def _build(blobs: Sequence[bytes], ids: Sequence[str], preprocess: ClipPreprocess, path: Path,
           progress: bool) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    height, width = preprocess.crop
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(blobs), 3, height, width))
        for i in tqdm(range(len(blobs)), desc="decoding images once", unit="img", disable=not progress,
                      leave=False):
            out[i] = preprocess.crop_uint8(decode_image(bytes(blobs[i]), where=f"id {ids[i]}")).numpy()
        out.flush()
        del out
        os.replace(tmp, path)  # a killed build leaves no half-written cache under the real name
    finally:
        tmp.unlink(missing_ok=True)
    prefix = path.name.rsplit("-", 1)[0]  # "<label>-<h>x<w>"
    for stale in path.parent.glob(f"{prefix}-*.npy"):
        if stale != path:
            stale.unlink(missing_ok=True)  # the same split at the same size from an older catalogue
    return np.load(path, mmap_mode="r")
