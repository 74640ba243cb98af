"""EmbeddingIndex: embed a processed catalogue's images into a FAISS index, save, load and update it.

Index directory (written atomically, in `<dir>.tmp-<pid>` then swapped in):
  vectors.faiss     L2-normalised image embeddings; inner product = cosine
  products.parquet  id, title, full_text, attributes, image_sha256, content_sha256 (same row order)
  images.parquet    id, image (JPEG bytes), so a searcher can serve pictures by id alone
  embeddings.npy    exact float32 vectors, only for `ivfpq` (its own codes are lossy)
  manifest.json     model, catalogue, dimension, count, kind, preprocessing, versions, config, file hashes

Embedding runs in chunks saved under `<dir>.work/<key>/` (stylesearch.index.embedding), keyed by the model
fingerprint and the catalogue hash, so a crashed build resumes from its completed chunks.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd

from stylesearch.common.files import (
    atomic_dir,
    atomic_write_text,
    seal_broken,
    sealed,
    sha256_bytes,
    sha256_file,
    verified_sha256,
)
from stylesearch.config import KAGGLE_ATTRIBUTES, IndexConfig, from_dict
from stylesearch.data.prepare import ProcessedCatalog, load_processed
from stylesearch.errors import IntegrityError, ManifestMismatchError, StylesearchError
from stylesearch.index.embedding import embed_chunks, remove_if_empty, work_dir
from stylesearch.index.kinds import LOSSY, kind_of, make_faiss, resolve_kind
from stylesearch.index.manifest import MANIFEST, make_manifest, read_manifest
from stylesearch.model.backends import load_encoder
from stylesearch.model.encoder import Encoder

log = logging.getLogger(__name__)

VECTORS, PRODUCTS, IMAGES, EXACT = "vectors.faiss", "products.parquet", "images.parquet", "embeddings.npy"
# What a product page and the filters need; the image bytes live apart in images.parquet.
PRODUCT_COLUMNS = ("id", "title", "full_text", *KAGGLE_ATTRIBUTES)
# Columns prepare makes for itself; every other catalogue column (price, brand, ...) is the user's and
# is carried into the index, typed: a column whose every value is a number becomes numeric.
INTERNAL_COLUMNS = frozenset({"image", "image_path", "image_sha256", "content_sha256", "split", "group"})


def product_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The index's product rows: the known columns, then the user's own, numbers typed as numbers."""
    known = [c for c in PRODUCT_COLUMNS if c in frame.columns]
    extra = [c for c in frame.columns if c not in PRODUCT_COLUMNS and c not in INTERNAL_COLUMNS
             and not str(c).startswith("_")]
    products = frame[known + extra].copy()
    for column in extra:
        products[column] = typed(products[column])
    return products


# "00123": a zip code, SKU or id, not the number 123; a number is never written with a leading zero.
_LEADING_ZERO = re.compile(r"^\s*[+-]?0\d")


def typed(series: pd.Series) -> pd.Series:
    """`series` as numbers when every non-empty value reads as one (CSV cells arrive as text), else as is.

    A column in which any value has a leading zero is a code and stays text, zeros and all.
    """
    if pd.api.types.is_numeric_dtype(series) or series.dropna().empty:
        return series
    if series.dropna().astype(str).str.match(_LEADING_ZERO).any():
        return series
    numbers = pd.to_numeric(series, errors="coerce")
    return numbers if numbers.notna().sum() == series.notna().sum() else series


@dataclass
class IndexReport:
    """What one build or update did."""
    count: int
    kind: str
    embedded: int  # images run through the model this time
    reused: int  # images whose vector came from the previous index or a completed chunk
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    update: bool = False  # compared with a previous index (added/changed/removed are meaningful)

    def summary(self) -> str:
        diff = (f"; added {len(self.added)}, changed {len(self.changed)}, removed {len(self.removed)}"
                if self.update else "")
        return (f"{self.count} products ({self.kind}); embedded {self.embedded}, reused {self.reused}"
                f"{diff}; {self.seconds:.1f} s")


def content_hash(image_sha256: str, row: pd.Series) -> str:
    """A hash of everything a product shows: image bytes and every text field (title, attributes)."""
    # The known columns first, as always (indexes built before user columns keep their hashes), then the user's.
    extra = [c for c in row.index if c not in PRODUCT_COLUMNS and c not in ("image_sha256", "content_sha256")]
    columns = [c for c in PRODUCT_COLUMNS if c != "id"] + extra
    parts = [image_sha256] + [f"{c}={plain_value(row.get(c))}" for c in columns]
    return sha256_bytes("\x1f".join(parts).encode())


def plain_value(value: object) -> str | int | None:
    """A metadata cell as None, an int or a str: what hashes, JSON and Hits hold."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    return str(value)


@dataclass
class EmbeddingIndex:
    """Vectors in FAISS plus product metadata in the same row order, and the manifest that says what they are."""
    faiss_index: faiss.Index
    products: pd.DataFrame
    manifest: dict[str, Any]
    path: Path | None = None
    _exact: np.ndarray | None = None  # ivfpq only: the exact vectors (memory-mapped when loaded)

    def __len__(self) -> int:
        return int(self.faiss_index.ntotal)

    @property
    def kind(self) -> str:
        return str(self.manifest["index"]["kind"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["model"]["fingerprint"])

    # --- vectors ---------------------------------------------------------------------------------

    def matrix(self) -> np.ndarray:
        """All exact vectors as one read-only (n, dim) array, without copying them.

        A view of the flat store's memory (the index itself for flat, the graph's storage for HNSW),
        or the memory-mapped embeddings.npy for ivfpq, whose own codes are lossy.
        """
        if self.kind in LOSSY:
            assert self._exact is not None, f"an {self.kind} index keeps its exact vectors in embeddings.npy"
            return self._exact
        store = self.faiss_index if self.kind == "flat" else faiss.downcast_index(self.faiss_index.storage)
        if store.ntotal == 0:
            return np.zeros((0, self.dim), np.float32)
        view = faiss.rev_swig_ptr(store.get_xb(), store.ntotal * store.d).reshape(store.ntotal, store.d)
        view.flags.writeable = False
        return view

    def vectors(self, rows: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """A float32 copy of the exact vectors of `rows` (all rows when None)."""
        matrix = self.matrix()
        return np.array(matrix if rows is None else matrix[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    # --- build, save, load -----------------------------------------------------------------------

    @classmethod
    def build(cls, catalog: ProcessedCatalog | Path | str, encoder: Encoder, out: Path | str | None = None,
              cfg: IndexConfig = IndexConfig(), *, model_name: str | None = None, progress: bool = True,
              previous: EmbeddingIndex | None = None) -> tuple[EmbeddingIndex, IndexReport]:
        """Embed every catalogue image (reusing `previous` vectors for unchanged images) and save to `out`."""
        started = time.perf_counter()
        if not isinstance(catalog, ProcessedCatalog):
            catalog = load_processed(Path(catalog))
        frame = catalog.frame.reset_index(drop=True)
        resolve_kind(cfg, len(frame))  # a kind that cannot hold this many products is refused before embedding
        shas = frame["image_sha256"].astype(str).tolist()
        known: dict[str, np.ndarray] = {}
        if previous is not None:
            if previous.fingerprint != encoder.fingerprint:
                raise ManifestMismatchError(
                    f"the index at {previous.path} was built with model '{previous.manifest['model']['name']}' "
                    f"(fingerprint {previous.fingerprint}), not this one ({encoder.fingerprint}); "
                    "rebuild it without --update")
            keep = previous.products["image_sha256"].isin(set(shas)).to_numpy()
            rows = np.flatnonzero(keep)
            known = dict(zip(previous.products["image_sha256"].iloc[rows], previous.vectors(rows), strict=True))
        first_row: dict[str, int] = {}  # each image not yet embedded, at its first row
        for row, sha in enumerate(shas):
            if sha not in known:
                first_row.setdefault(sha, row)
        todo = list(first_row.items())
        work = work_dir(out, encoder.fingerprint, catalog.manifest["catalog_sha256"], [s for s, _ in todo])
        fresh, from_chunks = embed_chunks(frame, [i for _, i in todo], encoder, cfg, work, progress)
        known.update(zip([s for s, _ in todo], fresh, strict=True))
        vectors = np.stack([known[s] for s in shas]).astype(np.float32) if shas \
            else np.zeros((0, encoder.dim), np.float32)
        index = cls.from_vectors(catalog, vectors, encoder, out, cfg, model_name=model_name)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
            remove_if_empty(work.parent)
        report = IndexReport(count=len(frame), kind=index.kind, embedded=len(todo) - from_chunks,
                             reused=len(frame) - len(todo) + from_chunks, seconds=time.perf_counter() - started)
        if previous is not None:
            report.update = True
            report.added, report.changed, report.removed = _diff(previous.products, index.products)
        return index, report

    # --- precomputed vectors (stylesearch.index.ray_build embeds on a Ray cluster, then saves through here) --

    @classmethod
    def from_vectors(cls, catalog: ProcessedCatalog, vectors: np.ndarray, encoder: Encoder,
                     out: Path | str | None = None, cfg: IndexConfig = IndexConfig(), *,
                     model_name: str | None = None) -> EmbeddingIndex:
        """An index over vectors embedded elsewhere (row i is catalogue row i), saved exactly as `build` saves.

        `encoder` only describes the model (fingerprint, preprocessing) for the manifest; nothing is embedded.
        """
        frame = catalog.frame.reset_index(drop=True)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(frame), encoder.dim)
        shas = frame["image_sha256"].astype(str).tolist()
        kind = resolve_kind(cfg, len(frame))
        products = product_table(frame)
        products["id"] = products["id"].astype(str)
        products["image_sha256"] = shas
        products["content_sha256"] = [content_hash(s, r) for s, (_, r) in zip(shas, products.iterrows(), strict=True)]
        images = pd.DataFrame({"id": products["id"], "image": frame["image"]})
        manifest = make_manifest(catalog, encoder, model_name, kind, cfg, vectors.shape)
        index = cls(make_faiss(vectors, kind, cfg), products, manifest, None, vectors if kind in LOSSY else None)
        if out is not None:
            index.save(Path(out), images=images)
        return index

    @classmethod
    def update(cls, path: Path | str, catalog: ProcessedCatalog | Path | str, encoder: Encoder,
               cfg: IndexConfig | None = None, *, model_name: str | None = None,
               progress: bool = True) -> tuple[EmbeddingIndex, IndexReport]:
        """Rebuild `path` from `catalog`, embedding only images the current index does not hold.

        The result has the catalogue's row order and the same vectors, so it equals a full rebuild.
        """
        previous = cls.load(path)
        cfg = cfg or previous.config
        return cls.build(catalog, encoder, path, cfg, model_name=model_name or previous.manifest["model"]["name"],
                         progress=progress, previous=previous)

    @property
    def config(self) -> IndexConfig:
        return from_dict(IndexConfig, self.manifest.get("config", {}))

    def save(self, path: Path | str, *, images: pd.DataFrame | None = None) -> None:
        """Write the index directory atomically; `images` (id, image) defaults to the current one's."""
        path = Path(path)
        if images is None:
            if self.path is None:
                raise StylesearchError("an index without a directory needs its images to be saved")
            images = pd.read_parquet(self.path / IMAGES)
        with atomic_dir(path) as tmp:
            faiss.write_index(self.faiss_index, str(tmp / VECTORS))
            self.products.to_parquet(tmp / PRODUCTS, index=False)
            images.to_parquet(tmp / IMAGES, index=False)
            names = [VECTORS, PRODUCTS, IMAGES]
            if self.kind in LOSSY:
                np.save(tmp / EXACT, np.asarray(self.vectors(), dtype=np.float32))
                names.append(EXACT)
            self.manifest["files"] = {name: sha256_file(tmp / name) for name in names}
            self.manifest.update(sealed(self.manifest))  # in place: holders of this dict see the seal
            atomic_write_text(tmp / MANIFEST, json.dumps(self.manifest, indent=2))
        self.path = path
        if self.kind in LOSSY:
            self._exact = np.load(path / EXACT, mmap_mode="r")

    @classmethod
    def load(cls, path: Path | str, *, verify: bool = True) -> EmbeddingIndex:
        """Load an index directory, refusing one that is not an index or whose files were altered."""
        path = Path(path)
        manifest = read_manifest(path)
        if verify:
            for name, digest in manifest.get("files", {}).items():
                file = path / name
                if not file.is_file():
                    raise IntegrityError(f"{file}: missing; rebuild with `stylesearch index`")
                if verified_sha256(file) != digest:
                    raise IntegrityError(f"{file}: content does not match the hash in manifest.json "
                                         "(changed or truncated); rebuild with `stylesearch index`")
        try:
            index = faiss.read_index(str(path / VECTORS))
        except RuntimeError as err:
            raise IntegrityError(f"{path / VECTORS}: not a readable FAISS index ({str(err).splitlines()[0]})") from err
        products = pd.read_parquet(path / PRODUCTS)
        if index.ntotal != len(products) or index.ntotal != manifest["count"]:
            raise IntegrityError(f"{path}: {index.ntotal} vectors but {len(products)} products "
                                 f"and a manifest count of {manifest['count']}")
        kind_of(manifest["index"]["kind"]).on_load(index, manifest["index"]["params"])
        exact = np.load(path / EXACT, mmap_mode="r") if manifest["index"]["kind"] in LOSSY else None
        # Last, so that a more specific complaint (a count, a file) is the one reported.
        if verify and seal_broken(manifest):
            raise IntegrityError(f"{path / MANIFEST}: edited after it was written (its own hash does not match); "
                                 "rebuild with `stylesearch index`")
        return cls(index, products, manifest, path, exact)


def build_index(catalog: Path | str, out: Path | str, *, model: str, cfg: IndexConfig = IndexConfig(),
                update: bool = False, progress: bool = True, encoder: Encoder | None = None,
                backend: str = "torch") -> tuple[EmbeddingIndex, IndexReport]:
    """What `stylesearch index` does: load the model (torch, onnx or onnx-int8), then build `out` or update it."""
    processed = load_processed(Path(catalog))
    resolve_kind(cfg, len(processed.frame))  # a kind too big for this catalogue is refused before the model loads
    if encoder is None:
        encoder = load_encoder(model, backend, batch_size=cfg.batch_size)
    if update and (Path(out) / MANIFEST).is_file():
        return EmbeddingIndex.update(out, processed, encoder, cfg, model_name=model, progress=progress)
    return EmbeddingIndex.build(processed, encoder, out, cfg, model_name=model, progress=progress)


# --- helpers ---------------------------------------------------------------------------------------


def _diff(old: pd.DataFrame, new: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    before = dict(zip(old["id"].astype(str), old["content_sha256"], strict=True))
    after = dict(zip(new["id"], new["content_sha256"], strict=True))
    added = [i for i in after if i not in before]
    changed = [i for i in after if i in before and before[i] != after[i]]
    removed = [i for i in before if i not in after]
    return added, changed, removed
