"""Embed catalogue images in resumable chunks: a crashed index build picks up where it stopped.

Chunks live in `<index dir>.work/<fingerprint>-<catalog hash>-<job hash>/chunk-NNNNN.npy`, so they
are only ever reused for the same model, the same catalogue and the same list of images.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from stylesearch.common.files import atomic_path, sha256_bytes
from stylesearch.config import IndexConfig
from stylesearch.data.images import decode_image
from stylesearch.model.encoder import Encoder


def work_dir(out: Path | str | None, fingerprint: str, catalog_sha: str, todo: list[str]) -> Path | None:
    if out is None or not todo:
        return None
    out = Path(out)
    job = sha256_bytes("\n".join([fingerprint, catalog_sha, *todo]).encode())[:16]
    return out.with_name(f"{out.name}.work") / f"{fingerprint}-{str(catalog_sha)[:16]}-{job}"


def remove_if_empty(path: Path) -> None:
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()


# A build is cut into at least this many chunks (each at most `IndexConfig.chunk_size` and at least
# MIN_CHUNK vectors), so a crash loses about 1/32 of the work whatever the catalogue's size: a fixed
# 2048 would re-embed a whole 2,000-product catalogue.
CHUNKS = 32
MIN_CHUNK = 64


def chunk_rows(count: int, cfg: IndexConfig) -> int:
    """Vectors per resumable chunk for a build of `count` images."""
    return min(cfg.chunk_size, max(MIN_CHUNK, -(-count // CHUNKS)))


def embed_chunks(frame: pd.DataFrame, rows: list[int], encoder: Encoder, cfg: IndexConfig,
                  work: Path | None, progress: bool) -> tuple[np.ndarray, int]:
    """Embed the images of `rows` in chunks; completed chunks found in `work` are loaded, not recomputed."""
    if not rows:
        return np.zeros((0, encoder.dim), np.float32), 0
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    parts, resumed = [], 0
    with tqdm(total=len(rows), desc="embedding images", unit="img", disable=not progress) as bar:
        size = chunk_rows(len(rows), cfg)
        for number, start in enumerate(range(0, len(rows), size)):
            chunk = rows[start : start + size]
            # The size is in the name: chunks cut another way hold other rows and must not be reused.
            file = work / f"chunk-{size}-{number:05d}.npy" if work is not None else None
            if file is not None and file.is_file():
                vectors = np.load(file)
                if vectors.shape == (len(chunk), encoder.dim):
                    parts.append(vectors)
                    resumed += len(chunk)
                    bar.update(len(chunk))
                    continue
            vectors = embed_rows(frame, chunk, encoder, cfg.batch_size, bar.update)
            if file is not None:
                with atomic_path(file) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, vectors)
            parts.append(vectors)
    return np.concatenate(parts).astype(np.float32), resumed


def embed_rows(frame: pd.DataFrame, rows: list[int], encoder: Encoder, batch_size: int,
                advance: Callable[[int], Any]) -> np.ndarray:
    out = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        images = [decode_image(bytes(frame.at[i, "image"]), where=f"id {frame.at[i, 'id']}") for i in batch]
        out.append(np.asarray(encoder.encode_images(images), dtype=np.float32))
        advance(len(batch))
    vectors = np.concatenate(out)
    # The Encoder contract promises unit rows; normalise anyway so inner product stays cosine.
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
