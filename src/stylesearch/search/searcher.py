"""Searcher: answer text, image and more-like-this queries over an `EmbeddingIndex`, with exact filters.

Filters are applied before the top k: the matching rows are found in the metadata first, and only
those rows are scored (exactly, over the flat vectors), so a filtered query returns k results
whenever k products match.
"""

from __future__ import annotations

import difflib
import functools
import io
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from stylesearch.config import KAGGLE_ATTRIBUTES
from stylesearch.data.catalog import Product
from stylesearch.data.images import decode_image
from stylesearch.errors import ManifestMismatchError, QueryError
from stylesearch.index.kinds import kind_of
from stylesearch.index.store import IMAGES, EmbeddingIndex, plain_value
from stylesearch.model.backends import load_encoder
from stylesearch.model.encoder import Encoder
from stylesearch.search.batching import MAX_BATCH, BatchingEncoder
from stylesearch.search.filters import FilterValue, parse_number_range, parse_year_range
from stylesearch.search.lazy import Lazy
from stylesearch.search.querycache import CachedEncoder

log = logging.getLogger(__name__)

Filters = Mapping[str, FilterValue]
ImageInput = Image.Image | bytes | str | Path


class UnknownProductError(QueryError, KeyError):
    """A product id that is not in the index (a KeyError too, for dict-like callers)."""
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based, counting from the first result of the page (offset + 1)
    id: str
    score: float  # CLIP score = 100 * cosine
    title: str
    attributes: dict[str, str | int | None]  # gender, masterCategory, ..., year, usage

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Searcher:
    """Text, image and similar-product search over one index with the model that built it."""
    def __init__(self, index: EmbeddingIndex, encoder: Encoder, *, hybrid: Lazy[Any] | None = None,
                 spelling: Lazy[Any] | None = None):
        if encoder.fingerprint != index.fingerprint:
            raise ManifestMismatchError(
                f"the index at {index.path} was built with model '{index.manifest['model']['name']}' "
                f"(fingerprint {index.fingerprint}), but the loaded model has fingerprint {encoder.fingerprint}; "
                "search with the model named in the index manifest, or rebuild the index with this model")
        if encoder.dim != index.dim:
            raise ManifestMismatchError(f"the index holds {index.dim}-d vectors but the model makes {encoder.dim}-d")
        self.index = index
        self.encoder = encoder
        self.manifest: dict[str, Any] = index.manifest
        products = index.products
        self.filter_columns: list[str] = [c for c in KAGGLE_ATTRIBUTES if c in products.columns]
        self.filter_columns += [c for c in products.columns if c not in self.filter_columns and c not in NOT_FILTERS]
        # Numeric columns (year, a user's price) filter by range; the others by exact value.
        self.numeric_columns = {c for c in self.filter_columns
                                if c == "year" or pd.api.types.is_numeric_dtype(products[c])}
        self._ids = products["id"].astype(str).to_numpy()
        self._row_of = {pid: row for row, pid in enumerate(self._ids)}
        self._images: pd.Series | None = None
        self.last_notice: str | None = None
        # Hybrid search's BM25 index and vocabulary (search.hybrid), built on first use and shared by
        # every Searcher over this index (`with_encoder`), so a server's view and its owner's agree.
        self.hybrid: Lazy[Any] = hybrid if hybrid is not None else Lazy()
        self.spelling: Lazy[Any] = spelling if spelling is not None else Lazy()  # search.spelling, on first use
        # A server asks for a query's notice beside encoding it: count each text's tokens once, not twice.
        self._token_count = functools.lru_cache(maxsize=1024)(lambda text: int(self.encoder.token_count(text)))

    @classmethod
    def from_index(cls, path: Path | str, encoder: Encoder | None = None, *, model: str | None = None,
                   verify: bool = True, backend: str = "torch", query_cache: int = 1024) -> Searcher:
        """Load the index at `path`; with no encoder, load the model its manifest names (or `model`).

        `backend` is torch, onnx or onnx-int8 (docs/performance.md); repeated queries are answered from an
        LRU cache of `query_cache` text embeddings (0 turns it off). The same as `open_searcher`.
        """
        return open_searcher(path, encoder=encoder, model=model, verify=verify, backend=backend,
                             query_cache=query_cache)

    def with_encoder(self, encoder: Encoder) -> Searcher:
        """Another Searcher over the same index (and the same hybrid state) with `encoder` in front of it."""
        return type(self)(self.index, encoder, hybrid=self.hybrid, spelling=self.spelling)

    def __len__(self) -> int:
        return len(self._ids)

    # --- queries ---------------------------------------------------------------------------------

    def search(self, query: str, k: int = 10, filters: Filters | None = None, offset: int = 0) -> list[Hit]:
        """Products whose images best match the words of `query`."""
        return self._ranked(self.encode_query(query), k, filters, offset)

    def search_vector(self, vector: np.ndarray, k: int = 10, filters: Filters | None = None,
                      offset: int = 0) -> list[Hit]:
        """Products nearest to an embedding already made with this index's model (L2-normalised)."""
        self.last_notice = None
        vector = np.asarray(vector, np.float32).reshape(-1)
        if vector.shape[0] != self.index.dim:
            raise QueryError(f"a {vector.shape[0]}-d vector cannot search a {self.index.dim}-d index")
        return self._ranked(vector, k, filters, offset)

    def search_image(self, image: ImageInput, k: int = 10, filters: Filters | None = None,
                     offset: int = 0) -> list[Hit]:
        """Products whose images look most like `image` (a PIL image, JPEG/PNG bytes or a file path)."""
        self.last_notice = None
        picture = _as_image(image)
        return self._ranked(np.asarray(self.encoder.encode_images([picture]), np.float32)[0], k, filters, offset)

    def similar(self, product_id: str, k: int = 10, filters: Filters | None = None, offset: int = 0) -> list[Hit]:
        """Products that look like catalogue item `product_id`, not counting the item itself."""
        self.last_notice = None
        row = self._row(product_id)
        return self._ranked(self.index.vectors([row])[0], k, filters, offset, exclude=row)

    def browse(self, k: int = 10, filters: Filters | None = None, offset: int = 0) -> list[Hit]:
        """Products that pass `filters`, in catalogue order (no query to rank by); score 0."""
        if k < 1 or offset < 0:
            raise QueryError(f"k must be at least 1 and offset at least 0 (got k={k}, offset={offset})")
        self.last_notice = None
        rows = self.rows_matching(filters)
        rows = np.arange(len(self)) if rows is None else rows
        return [self.hit(offset + i + 1, int(row), 0.0) for i, row in enumerate(rows[offset:offset + k])]

    def product(self, product_id: str) -> Product:
        row = self._row(product_id)
        return Product(id=self._ids[row], title=str(self.index.products.at[row, "title"]),
                       attributes=self._attributes(row))

    def image_bytes(self, product_id: str) -> bytes:
        """The catalogue image of `product_id`, as stored (JPEG bytes)."""
        row = self._row(product_id)
        if self._images is None:
            if self.index.path is None:
                raise QueryError("this index has not been saved, so it holds no images")
            self._images = pd.read_parquet(self.index.path / IMAGES, columns=["image"])["image"]
        return bytes(self._images.iat[row])

    def count(self, filters: Filters | None = None, *, excluding: str | None = None) -> int:
        """Products that pass `filters`, less `excluding` (the seed "more like this" never returns) if it does."""
        rows = self.rows_matching(filters)
        n = len(self) if rows is None else len(rows)
        row = self._row_of.get(str(excluding).strip()) if excluding is not None else None
        return n - int(row is not None and (rows is None or bool((rows == row).any())))

    def facets(self, query: str | None = None, filters: Filters | None = None,
               top: int = 200) -> dict[str, dict[str, int]]:
        """Value counts per filter column over the filtered products, or over the query's `top` results."""
        rows = self.rows_matching(filters)
        if query is not None:
            _, rows = self._top(self.encode_query(query), top, rows, None)
        elif rows is None:
            rows = np.arange(len(self))
        subset = self.index.products.iloc[rows]
        out: dict[str, dict[str, int]] = {}
        for column in self.filter_columns:
            if column in self.numeric_columns and column != "year":
                continue  # prices and the like filter by range; a list of every value is no facet
            counts = subset[column].dropna().astype(str if column != "year" else "Int64").astype(str).value_counts()
            out[column] = {str(v): int(n) for v, n in counts.items()}
        return out

    # --- query parts -----------------------------------------------------------------------------

    def encode_query(self, query: str) -> np.ndarray:
        """One L2-normalised text vector; an over-long query is truncated with a notice."""
        self.last_notice = None
        if not isinstance(query, str) or not query.strip():
            raise QueryError("empty query: type some words to search for (e.g. 'blue jeans')")
        query = " ".join(query.split())
        self.last_notice = self.truncation_notice(query)
        if self.last_notice:
            log.warning(self.last_notice)
        return np.asarray(self.encoder.encode_texts([query]), np.float32)[0]

    def truncation_notice(self, query: str) -> str | None:
        """What `last_notice` will say about `query`, without state (for servers answering in parallel)."""
        limit = getattr(self.encoder, "max_tokens", None)
        if limit is None or not hasattr(self.encoder, "token_count"):
            return None
        if len(query.encode()) <= limit - 2:  # CLIP's BPE is byte-level: a token covers at least one byte
            return None
        tokens = self._token_count(" ".join(query.split()))
        if tokens <= limit:
            return None
        return (f"query is {tokens} tokens but the model reads {limit}; "
                f"searched with the first {limit} (the rest was ignored)")

    def rows_matching(self, filters: Filters | None) -> np.ndarray | None:
        """Row numbers that satisfy every filter (None when there are no filters)."""
        if not filters:
            return None
        products = self.index.products
        mask = np.ones(len(products), dtype=bool)
        for column, wanted in filters.items():
            if column not in self.filter_columns:
                valid = ", ".join(self.filter_columns)
                raise QueryError(f"unknown filter column {column!r}; filter on one of: {valid}")
            mask &= self._range_mask(column, wanted) if column in self.numeric_columns else \
                self._value_mask(column, wanted)
        return np.flatnonzero(mask)

    def _value_mask(self, column: str, wanted: FilterValue) -> np.ndarray:
        values = [wanted] if isinstance(wanted, (str, int)) else list(wanted)  # type: ignore[arg-type]
        if not values:
            raise QueryError(f"filter {column}: give at least one value")
        series = self.index.products[column]
        known = sorted(series.dropna().astype(str).unique())
        # An exact value means itself, even when "red" and "Red" are both in the catalogue (two values,
        # as the facets list them); only a value that matches none exactly falls back to every value
        # equal to it but for case ('women' finds 'Women'; 'RED' finds 'Red' and 'red').
        by_case: dict[str, list[str]] = {}
        for one in known:
            by_case.setdefault(one.lower(), []).append(one)
        exact = set(known)
        chosen: list[str] = []
        for value in values:
            text = str(value).strip()
            if text in exact:
                chosen.append(text)
            elif text.lower() in by_case:
                chosen += by_case[text.lower()]
            else:
                close = difflib.get_close_matches(str(value), known, n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(close)}?" if close else \
                    f"; known values: {', '.join(known[:12])}{' ...' if len(known) > 12 else ''}"
                raise QueryError(f"unknown value {value!r} for filter {column}{hint}")
        return series.astype(str).isin(chosen).to_numpy() & series.notna().to_numpy()

    def _range_mask(self, column: str, wanted: FilterValue) -> np.ndarray:
        years = pd.to_numeric(self.index.products[column], errors="coerce").to_numpy(dtype=float)
        if isinstance(wanted, (list, set)) or (isinstance(wanted, tuple) and len(wanted) != 2):
            mask = np.zeros(len(years), bool)
            for one in wanted:
                mask |= self._range_mask(column, one)
            return mask
        lo, hi = parse_year_range(wanted) if column == "year" else parse_number_range(column, wanted)
        with np.errstate(invalid="ignore"):
            return ~np.isnan(years) & (years >= (lo if lo is not None else -np.inf)) & \
                (years <= (hi if hi is not None else np.inf))

    def _ranked(self, vector: np.ndarray, k: int, filters: Filters | None, offset: int,
                exclude: int | None = None) -> list[Hit]:
        if k < 1 or offset < 0:
            raise QueryError(f"k must be at least 1 and offset at least 0 (got k={k}, offset={offset})")
        rows = self.rows_matching(filters)
        scores, found = self._top(vector, k + offset, rows, exclude)
        return [self.hit(offset + i + 1, int(row), float(score))
                for i, (score, row) in enumerate(zip(scores[offset:], found[offset:], strict=True))]

    def _top(self, vector: np.ndarray, k: int, rows: np.ndarray | None,
             exclude: int | None) -> tuple[np.ndarray, np.ndarray]:
        """The k best (score, row) pairs, best first; equal scores go to the earlier row."""
        query = np.ascontiguousarray(vector.reshape(-1), dtype=np.float32)
        kind = kind_of(self.index.kind)
        if rows is None and not kind.exact:
            # Approximate kinds answer unfiltered queries from their graph or lists. Lossy codes score
            # coarsely, so those kinds fetch extra candidates and re-score them with the exact vectors.
            fetch = kind.fetch(k + (exclude is not None), len(self))
            scores, found = self.index.faiss_index.search(query[None, :], fetch)
            keep = (found[0] >= 0) & (found[0] != (-1 if exclude is None else exclude))
            found = found[0][keep]
            scores = self.index.matrix()[found] @ query if kind.lossy else scores[0][keep]
            order = np.lexsort((found, -scores))[:k]
            return scores[order], found[order]
        if exclude is not None:
            rows = np.arange(len(self)) if rows is None else rows
            rows = rows[rows != exclude]
        # Exact: score every row that passes the filters (one matrix-vector product), then take the top k.
        matrix = self.index.matrix()
        scores = matrix @ query if rows is None else matrix[rows] @ query
        rows = np.arange(len(scores)) if rows is None else rows
        if k < len(scores):
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            candidates = np.flatnonzero(scores >= kth)  # every tie at the cut, so the earlier row wins
        else:
            candidates = np.arange(len(scores))
        best = candidates[np.lexsort((rows[candidates], -scores[candidates]))][:k]
        return scores[best], rows[best]

    # --- records ---------------------------------------------------------------------------------

    def _row(self, product_id: str) -> int:
        row = self._row_of.get(str(product_id).strip())
        if row is None:
            raise UnknownProductError(f"unknown product id {product_id!r}: it is not in the index")
        return row

    def _attributes(self, row: int) -> dict[str, str | int | float | None]:
        record = self.index.products.iloc[row]
        known = {c: plain_value(record[c]) if c in record.index else None for c in KAGGLE_ATTRIBUTES}
        return known | {c: _user_value(record[c]) for c in self.filter_columns if c not in known}

    def hit(self, rank: int, row: int, score: float) -> Hit:
        """The `Hit` for index row `row` at `rank` with cosine `score`."""
        return Hit(rank=rank, id=str(self._ids[row]), score=round(100.0 * score, 4),
                   title=str(self.index.products.at[row, "title"]), attributes=self._attributes(row))


def _manifest_model(manifest: dict[str, Any]) -> str:
    """The model an index names: its name as given, or its resolved directory when the name no longer finds it."""
    name, path = manifest["model"]["name"], manifest["model"].get("path")
    return path if path and not Path(name).exists() and Path(path).is_dir() else name


# Product columns that are not attributes a shopper filters on.
NOT_FILTERS = frozenset({"id", "title", "full_text", "image_sha256", "content_sha256"})


def _user_value(value: object) -> str | int | float | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, (int, float)) else str(value)


def open_searcher(index: Path | str | EmbeddingIndex, *, encoder: Encoder | None = None, model: str | None = None,
                  backend: str = "torch", query_cache: int = 1024, max_batch: int | None = None,
                  verify: bool = True) -> Searcher:
    """The one place that assembles search: index, model on its backend, micro-batching, query cache.

    The CLI (`search`, `serve`), the HTTP app, Ray and the Python API all come through here, so the
    encoder stack is the same everywhere: the query cache in front (a repeated query never waits for
    the model), then, when `max_batch` is given, micro-batching (a server's concurrent queries share
    one forward pass, and the model is never called from two threads at once), then the model on
    `backend`. With `encoder` given, only the model step is skipped.

    >>> searcher = open_searcher("runs/index", backend="onnx-int8", max_batch=16)  # doctest: +SKIP
    """
    if not isinstance(index, EmbeddingIndex):
        index = EmbeddingIndex.load(index, verify=verify)
    if encoder is None:
        encoder = load_encoder(model or _manifest_model(index.manifest), backend, prefer=index.manifest.get("backend"))
    return Searcher(index, encoder_stack(encoder, query_cache=query_cache, max_batch=max_batch))


def encoder_stack(encoder: Encoder, *, query_cache: int = 1024, max_batch: int | None = None) -> Encoder:
    """`encoder` behind micro-batching (when `max_batch` is given) and an LRU cache of `query_cache` texts (0: none)."""
    if isinstance(encoder, CachedEncoder):  # rebuild around the model itself
        encoder = encoder.encoder
    if max_batch is not None and not isinstance(encoder, BatchingEncoder):
        encoder = BatchingEncoder(encoder, max_batch=max_batch)
    return CachedEncoder(encoder, maxsize=query_cache) if query_cache else encoder


def serving(searcher: Searcher, max_batch: int = MAX_BATCH) -> Searcher:
    """`searcher` as a server needs it: batching (which also serialises the model across threads) in its stack.

    The given searcher is left as it is; a new one over the same index is returned when its stack lacks
    batching.
    """
    encoder = searcher.encoder
    inner = encoder.encoder if isinstance(encoder, CachedEncoder) else encoder
    if isinstance(inner, BatchingEncoder):
        return searcher
    cache = encoder.maxsize if isinstance(encoder, CachedEncoder) else 0
    return searcher.with_encoder(encoder_stack(inner, query_cache=cache, max_batch=max_batch))


def _as_image(image: ImageInput) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, Path)):
        path = Path(image)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise QueryError(f"cannot read image {path}: {err.strerror or err}") from err
        where = str(path)
    elif isinstance(image, (bytes, bytearray, memoryview, io.BytesIO)):
        data = image.getvalue() if isinstance(image, io.BytesIO) else bytes(image)
        where = "query image"
    else:
        raise QueryError(f"an image query takes a PIL image, bytes or a path, not {type(image).__name__}")
    return decode_image(data, where=where)
