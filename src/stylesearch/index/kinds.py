"""Index kinds: every FAISS layout the index can be, registered in this one file.

Adding a kind is one subclass of `IndexKind` here plus its tests: it says how to build the FAISS
index, which parameters the manifest records and re-applies on load, whether its stored vectors are
lossy (then the exact ones are kept in a memory-mapped `embeddings.npy`), and how many candidates a
query fetches before exact re-scoring. `config.IndexConfig`, the CLI and the searcher read this
registry; nothing else lists kinds. FAISS is imported only when an index is built or loaded, so the
CLI can list the kinds without it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from stylesearch.config import IndexConfig
from stylesearch.errors import IndexKindError

if TYPE_CHECKING:
    import faiss


class IndexKind:
    """One FAISS layout: how it is built, what the manifest keeps of it, how a query reads it."""

    name: ClassVar[str]
    about: ClassVar[str]
    lossy: ClassVar[bool] = False  # compressed codes: exact vectors live in embeddings.npy
    exact: ClassVar[bool] = False  # a full scan of exact vectors: unfiltered queries need no re-scoring

    def build(self, dim: int, vectors: np.ndarray, cfg: IndexConfig) -> faiss.Index:
        raise NotImplementedError

    def params(self, cfg: IndexConfig) -> dict[str, Any]:
        """Search-time parameters recorded in the manifest and re-applied by `on_load`."""
        return {}

    def on_load(self, index: faiss.Index, params: dict[str, Any]) -> None:
        """Re-apply the recorded search-time parameters to an index read from disk."""

    def fetch(self, k: int, count: int) -> int:
        """Candidates an unfiltered query takes from FAISS before exact re-scoring picks the top k."""
        return min(count, max(4 * k, 50))

    def min_products(self) -> int:
        """The fewest products this kind can be built over (its training needs them)."""
        return 0


class Flat(IndexKind):
    name, about, exact = "flat", "exact inner product over every vector", True

    def build(self, dim: int, vectors: np.ndarray, cfg: IndexConfig) -> faiss.Index:
        import faiss

        return faiss.IndexFlatIP(dim)

    def fetch(self, k: int, count: int) -> int:
        return min(count, k)


class HNSW(IndexKind):
    name, about = "hnsw", "graph search over exact vectors: sub-millisecond at a million products"

    def build(self, dim: int, vectors: np.ndarray, cfg: IndexConfig) -> faiss.Index:
        import faiss

        index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.hnsw_ef_construction
        index.hnsw.efSearch = cfg.hnsw_ef_search
        return index

    def params(self, cfg: IndexConfig) -> dict[str, Any]:
        return {"m": cfg.hnsw_m, "ef_construction": cfg.hnsw_ef_construction, "ef_search": cfg.hnsw_ef_search}

    def on_load(self, index: faiss.Index, params: dict[str, Any]) -> None:
        index.hnsw.efSearch = int(params.get("ef_search", 64))

    def fetch(self, k: int, count: int) -> int:
        return min(count, k)  # its stored vectors are exact: the graph's scores are the real ones


class IVFPQ(IndexKind):
    name, about, lossy = "ivfpq", "inverted lists of product-quantised codes: the smallest in RAM", True

    def min_products(self) -> int:
        # Each sub-quantizer's k-means learns 2**4 = 16 codes (4-bit codes below 9984 products), and
        # FAISS refuses to train k centroids on fewer than k vectors.
        return 16

    def build(self, dim: int, vectors: np.ndarray, cfg: IndexConfig) -> faiss.Index:
        import faiss

        n = len(vectors)
        # 4 sqrt(n) lists: at 1M, 4,096 lists against 1,000 built in 128 s against 20 s and answered in
        # 0.42 ms at recall@10 1.000 against 0.61 ms at 0.993 (benchmarks/million.py); at least 39 training
        # rows per list, as FAISS asks.
        nlist = max(1, min(cfg.ivf_nlist or int(4 * np.sqrt(max(n, 1))), n // 39 or 1))
        m = next(m for m in (64, 32, 16, 8, 4, 2, 1) if dim % m == 0 and m <= dim)
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8 if n >= 256 * 39 else 4, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = 1234  # seeded k-means on a seeded sample: an update equals a rebuild
        # 64 rows per list train the lists; PQ's 256 codes per sub-quantizer want 39 rows each.
        train_n = max(64 * nlist, 256 * 39)
        sample = np.random.default_rng(0).permutation(n)[:train_n] if n > train_n else slice(None)
        index.train(np.ascontiguousarray(vectors[sample]))
        index.nprobe = min(cfg.ivf_nprobe, nlist)
        return index

    def params(self, cfg: IndexConfig) -> dict[str, Any]:
        return {"nprobe": cfg.ivf_nprobe}

    def fetch(self, k: int, count: int) -> int:
        # PQ codes rank coarsely: at 1M (4,096 lists), re-scoring 50 candidates found 0.977 of the true top
        # 10, 200 found all of them for 0.09 ms more (benchmarks/million.py).
        return min(count, max(20 * k, 200))

    def on_load(self, index: faiss.Index, params: dict[str, Any]) -> None:
        import faiss

        faiss.extract_index_ivf(index).nprobe = int(params.get("nprobe", 16))


class ScalarQuantised(IndexKind):
    """1 (sq8) or 2 (fp16) bytes per dimension instead of 4, still a full scan."""

    lossy = True
    bits: ClassVar[str]

    def build(self, dim: int, vectors: np.ndarray, cfg: IndexConfig) -> faiss.Index:
        import faiss

        index = faiss.IndexScalarQuantizer(dim, getattr(faiss.ScalarQuantizer, self.bits), faiss.METRIC_INNER_PRODUCT)
        if len(vectors):
            index.train(vectors)
        return index


class SQ8(ScalarQuantised):
    name, about, bits = "sq8", "8-bit scalar codes: a quarter of flat's memory", "QT_8bit"


class FP16(ScalarQuantised):
    name, about, bits = "fp16", "half-precision codes: half of flat's memory", "QT_fp16"


REGISTRY: dict[str, IndexKind] = {kind.name: kind for kind in (Flat(), HNSW(), IVFPQ(), SQ8(), FP16())}
# "auto" is not a layout: it picks flat up to IndexConfig.exact_max products, IVF-PQ (with exact re-scoring) above.
KINDS: tuple[str, ...] = ("auto", *REGISTRY)
LOSSY = frozenset(name for name, kind in REGISTRY.items() if kind.lossy)


def kind_of(name: str) -> IndexKind:
    """The registered kind called `name`, or a `IndexKindError` naming the choices."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise IndexKindError(f"index kind {name!r} is not one of {', '.join(KINDS)}") from None


def resolve_kind(cfg: IndexConfig, count: int) -> str:
    """The kind an index of `count` products gets under `cfg` ("auto": flat, then IVF-PQ above exact_max).

    A kind asked for by name is built as asked or refused, never swapped for another: the manifest,
    the memory and the recall the user chose it for would silently differ.
    """
    if cfg.kind == "auto":
        return "flat" if count <= cfg.exact_max else "ivfpq"
    kind = kind_of(cfg.kind)
    if count < kind.min_products():
        raise IndexKindError(f"an {kind.name} index needs at least {kind.min_products()} products to train on, "
                             f"and this catalogue has {count}; use --kind flat (exact, and fast at this size) "
                             "or --kind auto")
    return kind.name


def make_faiss(vectors: np.ndarray, kind: str, cfg: IndexConfig) -> faiss.Index:
    """A FAISS index of `kind` over L2-normalised rows, searched by inner product (= cosine)."""
    index = kind_of(kind).build(vectors.shape[1], vectors, cfg)
    if len(vectors):
        index.add(vectors)
    return index


def with_kind(cfg: IndexConfig, kind: str | None = None, batch_size: int | None = None) -> IndexConfig:
    """`cfg` with the CLI's overrides applied."""
    changes: dict[str, Any] = {}
    if kind is not None:
        changes["kind"] = kind_of(kind).name if kind != "auto" else kind
    if batch_size is not None:
        changes["batch_size"] = batch_size
    return replace(cfg, **changes)
