"""Searcher: answer text, image and more-like-this queries over an `EmbeddingIndex`, with exact filters.

Filters are applied before the top k: the matching rows are found in the metadata first, and only
those rows are scored (exactly, over the flat vectors), so a filtered query returns k results
whenever k products match.
"""

from __future__ import annotations

import difflib
import io
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from stylesearch.catalog import Product
from stylesearch.config import KAGGLE_ATTRIBUTES
from stylesearch.errors import ManifestMismatchError, QueryError
from stylesearch.images import decode_image
from stylesearch.index import IMAGES, LOSSY, EmbeddingIndex, _plain
from stylesearch.model import Encoder

log = logging.getLogger(__name__)

FilterValue = str | int | Sequence[str] | tuple[int | None, int | None]
Filters = Mapping[str, FilterValue]
ImageInput = Image.Image | bytes | str | Path
_YEAR = re.compile(r"^\s*(\d{4})?\s*(?:(-|\.\.|to)\s*(\d{4})?)?\s*$")


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

    def __init__(self, index: EmbeddingIndex, encoder: Encoder):
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
        self._ids = products["id"].astype(str).to_numpy()
        self._row_of = {pid: row for row, pid in enumerate(self._ids)}
        self._images: pd.Series | None = None
        self.last_notice: str | None = None

    @classmethod
    def from_index(cls, path: Path | str, encoder: Encoder | None = None, *, model: str | None = None,
                   verify: bool = True, backend: str = "torch", query_cache: int = 1024) -> Searcher:
        """Load the index at `path`; with no encoder, load the model its manifest names (or `model`).

        `backend` is torch, onnx or onnx-int8 (docs/performance.md); repeated queries are answered from an
        LRU cache of `query_cache` text embeddings (0 turns it off).
        """
        index = EmbeddingIndex.load(path, verify=verify)
        if encoder is None:
            from stylesearch.backends import load_encoder
            from stylesearch.querycache import CachedEncoder

            encoder = load_encoder(model or _manifest_model(index.manifest), backend)
            if query_cache:
                encoder = CachedEncoder(encoder, maxsize=query_cache)
        return cls(index, encoder)

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

    def count(self, filters: Filters | None = None) -> int:
        rows = self.rows_matching(filters)
        return len(self) if rows is None else len(rows)

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
        tokens = self.encoder.token_count(" ".join(query.split()))
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
            mask &= self._year_mask(wanted) if column == "year" else self._value_mask(column, wanted)
        return np.flatnonzero(mask)

    def _value_mask(self, column: str, wanted: FilterValue) -> np.ndarray:
        values = [wanted] if isinstance(wanted, (str, int)) else list(wanted)  # type: ignore[arg-type]
        if not values:
            raise QueryError(f"filter {column}: give at least one value")
        series = self.index.products[column]
        present = series.dropna().astype(str)
        canonical = {v.lower(): v for v in present.unique()}  # 'women' finds 'Women'
        chosen = []
        for value in values:
            match = canonical.get(str(value).strip().lower())
            if match is None:
                close = difflib.get_close_matches(str(value), sorted(canonical.values()), n=3, cutoff=0.6)
                known = sorted(canonical.values())
                hint = f"; did you mean {', '.join(close)}?" if close else \
                    f"; known values: {', '.join(known[:12])}{' ...' if len(known) > 12 else ''}"
                raise QueryError(f"unknown value {value!r} for filter {column}{hint}")
            chosen.append(match)
        return series.astype(str).isin(chosen).to_numpy() & series.notna().to_numpy()

    def _year_mask(self, wanted: FilterValue) -> np.ndarray:
        years = pd.to_numeric(self.index.products["year"], errors="coerce").to_numpy(dtype=float)
        if isinstance(wanted, (list, set)) or (isinstance(wanted, tuple) and len(wanted) != 2):
            mask = np.zeros(len(years), bool)
            for one in wanted:
                mask |= self._year_mask(one)
            return mask
        lo, hi = parse_year_range(wanted)
        with np.errstate(invalid="ignore"):
            return ~np.isnan(years) & (years >= (lo if lo is not None else -np.inf)) & \
                (years <= (hi if hi is not None else np.inf))

    def _ranked(self, vector: np.ndarray, k: int, filters: Filters | None, offset: int,
                exclude: int | None = None) -> list[Hit]:
        if k < 1 or offset < 0:
            raise QueryError(f"k must be at least 1 and offset at least 0 (got k={k}, offset={offset})")
        rows = self.rows_matching(filters)
        scores, found = self._top(vector, k + offset, rows, exclude)
        return [self._hit(offset + i + 1, int(row), float(score))
                for i, (score, row) in enumerate(zip(scores[offset:], found[offset:], strict=True))]

    def _top(self, vector: np.ndarray, k: int, rows: np.ndarray | None,
             exclude: int | None) -> tuple[np.ndarray, np.ndarray]:
        """The k best (score, row) pairs, best first; equal scores go to the earlier row."""
        query = np.ascontiguousarray(vector.reshape(-1), dtype=np.float32)
        if rows is None and self.index.kind != "flat":
            # Approximate kinds answer unfiltered queries from their graph or lists. PQ scores are
            # coarse, so ivfpq fetches extra candidates and re-scores them with the exact vectors.
            fetch = k + (exclude is not None)
            fetch = min(len(self), fetch if self.index.kind == "hnsw" else max(4 * fetch, 50))
            scores, found = self.index.faiss_index.search(query[None, :], fetch)
            keep = (found[0] >= 0) & (found[0] != (-1 if exclude is None else exclude))
            found = found[0][keep]
            scores = self.index.matrix()[found] @ query if self.index.kind in LOSSY else scores[0][keep]
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

    def _attributes(self, row: int) -> dict[str, str | int | None]:
        record = self.index.products.iloc[row]
        return {c: _plain(record[c]) if c in record.index else None for c in KAGGLE_ATTRIBUTES}

    def _hit(self, rank: int, row: int, score: float) -> Hit:
        return Hit(rank=rank, id=str(self._ids[row]), score=round(100.0 * score, 4),
                   title=str(self.index.products.at[row, "title"]), attributes=self._attributes(row))


def _manifest_model(manifest: dict[str, Any]) -> str:
    """The model an index names: its name as given, or its resolved directory when the name no longer finds it."""
    name, path = manifest["model"]["name"], manifest["model"].get("path")
    return path if path and not Path(name).exists() and Path(path).is_dir() else name


def parse_year_range(value: FilterValue) -> tuple[int | None, int | None]:
    """(lo, hi) from 2012, "2012", "2011-2013", "2011-", "-2013" or (2011, None)."""
    if isinstance(value, tuple) and len(value) == 2:
        lo, hi = value
        return (int(lo) if lo is not None else None, int(hi) if hi is not None else None)
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    match = _YEAR.match(str(value))
    if not match or not (match.group(1) or match.group(3)):
        raise QueryError(f"year filter {value!r}: give a year (2012) or a range (2011-2013, 2011-, -2013)")
    lo = int(match.group(1)) if match.group(1) else None
    hi = int(match.group(3)) if match.group(3) else (lo if not match.group(2) else None)
    if lo is not None and hi is not None and lo > hi:
        raise QueryError(f"year filter {value!r}: the range is empty ({lo} > {hi})")
    return lo, hi


def parse_filters(items: Sequence[str]) -> dict[str, FilterValue]:
    """Filters from `col=value` strings; a repeated column or `a,b` means any of the values."""
    out: dict[str, list[str]] = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column.strip() or not value.strip():
            raise QueryError(f"filter {item!r}: write it as column=value, e.g. gender=Women or year=2011-2013")
        out.setdefault(column.strip(), []).extend(v.strip() for v in value.split(",") if v.strip())
    return {c: (v[0] if len(v) == 1 else v) for c, v in out.items()}


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


# --- the older API, kept for existing callers ---------------------------------------------------------


def load_embeddings(path: Path | str) -> dict[str, Any]:
    """The older loader: {'embeddings': (n, dim) float32, 'image_names': ids, 'dataframe': products}."""
    index = EmbeddingIndex.load(path)
    return {"embeddings": index.vectors(), "image_names": index.products["id"].astype(str).tolist(),
            "dataframe": index.products.copy(), "manifest": index.manifest}


def search_products(query: str, model: Any, processor: Any, image_embeddings: np.ndarray,
                    image_names: Sequence[str], dataframe: pd.DataFrame, top_k: int = 5) -> list[dict[str, Any]]:
    """The older search: brute-force cosine over `image_embeddings`; returns dicts with id, title, score, ...

    `model` is a Hugging Face CLIPModel (with its `processor`), a `LoadedModel`, or any `Encoder`.
    """
    if not isinstance(query, str) or not query.strip():
        raise QueryError("empty query: type some words to search for (e.g. 'blue jeans')")
    vector = _legacy_text_vector(query, model, processor)
    embeddings = np.asarray(image_embeddings, dtype=np.float32)
    scores = embeddings @ vector
    best = np.argsort(-scores, kind="stable")[:top_k]
    ids = [str(i) for i in image_names]
    frame = dataframe.assign(id=dataframe["id"].astype(str)).drop_duplicates("id").set_index("id") \
        if "id" in dataframe.columns else None
    results = []
    for rank, row in enumerate(best, start=1):
        pid = ids[row]
        record = frame.loc[pid] if frame is not None and pid in frame.index else dataframe.iloc[row]
        item: dict[str, Any] = {"rank": rank, "id": pid, "score": round(100.0 * float(scores[row]), 4),
                                "title": _plain(record.get("title", record.get("productDisplayName")))}
        item.update({c: _plain(record.get(c)) for c in KAGGLE_ATTRIBUTES if c in record.index})
        results.append(item)
    return results


def _legacy_text_vector(query: str, model: Any, processor: Any) -> np.ndarray:
    if hasattr(model, "encode_texts"):
        return np.asarray(model.encode_texts([query]), np.float32)[0]
    import torch

    if hasattr(model, "processor") and hasattr(model, "model"):  # a LoadedModel
        model, processor = model.model, processor or model.processor
    tokenizer = getattr(processor, "tokenizer", processor)
    limit = int(model.config.text_config.max_position_embeddings)
    tokens = tokenizer([query], padding=True, truncation=True, max_length=limit, return_tensors="pt")
    with torch.inference_mode():
        feats = model.get_text_features(**tokens)
    feats = feats if isinstance(feats, torch.Tensor) else feats.pooler_output
    return torch.nn.functional.normalize(feats.float(), dim=-1)[0].cpu().numpy()
