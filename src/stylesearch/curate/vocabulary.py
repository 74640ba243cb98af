"""One text prototype per attribute value, made from the catalogue's own words, and image vectors by id.

A value's prototype is the mean embedding of catalogue texts that name it in the form the model was
trained on (`train.textviews`: "Red Tshirts", "Men Casual Shoes", "Summer Dresses"), drawn from the
train split only, so a product being tagged never lends its own metadata to the prompt it is scored
against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stylesearch.config import KAGGLE_ATTRIBUTES, TagConfig
from stylesearch.data.images import decode_image
from stylesearch.errors import CatalogError
from stylesearch.model.encoder import Encoder
from stylesearch.search.searcher import Searcher

# Which columns make a value's prompt text, in the order training joined them (train.textviews.VIEWS):
# the value alone would be a word the model rarely saw by itself.
PROMPT_VIEWS: dict[str, tuple[str, ...]] = {
    "baseColour": ("baseColour", "articleType"),
    "articleType": ("baseColour", "articleType"),
    "gender": ("gender", "usage", "articleType"),
    "usage": ("gender", "usage", "articleType"),
    "season": ("season", "articleType"),
}
# Columns prepare makes for itself: never attributes to tag.
INTERNAL = frozenset({"id", "title", "full_text", "image", "image_path", "image_sha256", "content_sha256",
                      "split", "group", "productDisplayName"})


@dataclass(frozen=True)
class Vocabulary:
    """The values of one column and one L2-normalised prototype row per value."""

    column: str
    values: tuple[str, ...]
    prototypes: np.ndarray  # (len(values), dim)
    support: tuple[int, ...]  # train products per value

    def scores(self, images: np.ndarray) -> np.ndarray:
        """Cosine of every image with every value's prototype: (images, values)."""
        return np.asarray(images, np.float32) @ self.prototypes.T

    def codes(self, values: pd.Series) -> np.ndarray:
        """Each value's position in `values`, -1 for missing or unknown ones."""
        where = {v: i for i, v in enumerate(self.values)}
        return np.array([where.get(v, -1) if isinstance(v, str) else -1 for v in cell_strings(values)], np.int64)


def cell_strings(series: pd.Series) -> list[str | None]:
    """A column's cells as stripped strings, None for missing or blank ones."""
    out: list[str | None] = []
    for value in series.tolist():
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            out.append(None)
        else:
            text = str(value).strip()
            out.append(text or None)
    return out


def attribute_columns(frame: pd.DataFrame, cfg: TagConfig = TagConfig()) -> list[str]:
    """The configured columns the catalogue has, then the user's text columns with a few values."""
    chosen = [c for c in cfg.columns if c in frame.columns]
    for column in frame.columns:
        if column in chosen or column in INTERNAL or column in KAGGLE_ATTRIBUTES or str(column).startswith("_"):
            continue
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series):
            continue  # prices and sizes are numbers to filter on, not labels a photo shows
        distinct = {v for v in cell_strings(series) if v is not None}
        if 2 <= len(distinct) <= cfg.max_user_values:
            chosen.append(str(column))
    return chosen


def prompt_view(column: str) -> tuple[str, ...]:
    """The columns joined into `column`'s prompt texts; a user column pairs its value with the type."""
    return PROMPT_VIEWS.get(column, (column, "articleType"))


def row_texts(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """Each row's non-empty cells of `columns`, joined by spaces ("Red Tshirts")."""
    present = [c for c in columns if c in frame.columns]
    cells = [cell_strings(frame[c]) for c in present]
    return [" ".join(v for v in parts if v) for parts in zip(*cells, strict=True)] if present else [""] * len(frame)


def build_vocabulary(encoder: Encoder, train: pd.DataFrame, column: str, cfg: TagConfig = TagConfig()) -> Vocabulary:
    """Prototypes for every value of `column` seen at least `cfg.min_examples` times in `train`."""
    if column not in train.columns:
        raise CatalogError(f"the catalogue has no column {column!r} to tag")
    values = pd.Series(cell_strings(train[column]), index=train.index, dtype="object")
    counts = values.value_counts()
    kept = sorted(v for v, n in counts.items() if n >= cfg.min_examples)
    if len(kept) < 2:
        raise CatalogError(f"column {column!r} has {len(kept)} value(s) seen {cfg.min_examples}+ times in the train "
                           "split; tagging needs at least two")
    texts = row_texts(train, prompt_view(column))
    rng = np.random.default_rng(cfg.seed)
    chosen: list[list[str]] = []
    for value in kept:
        rows = np.flatnonzero(values.to_numpy() == value)
        if len(rows) > cfg.prompts_per_value:
            rows = np.sort(rng.choice(rows, cfg.prompts_per_value, replace=False))
        chosen.append([texts[r] or value for r in rows])
    distinct = sorted({t for group in chosen for t in group})
    embedded = dict(zip(distinct, np.asarray(encoder.encode_texts(distinct), np.float32), strict=True))
    # Repeated texts count as often as they occur: a prototype leans toward the value's common forms.
    prototypes = np.stack([np.mean([embedded[t] for t in group], axis=0) for group in chosen])
    prototypes /= np.maximum(np.linalg.norm(prototypes, axis=1, keepdims=True), 1e-12)
    return Vocabulary(column=column, values=tuple(kept), prototypes=prototypes.astype(np.float32),
                      support=tuple(int(counts[v]) for v in kept))


def catalogue_vectors(frame: pd.DataFrame, encoder: Encoder, known: dict[str, np.ndarray] | None = None,
                      batch: int = 256) -> np.ndarray:
    """Image vectors of `frame`'s rows: from `known` (id -> vector, e.g. an index) where there, else encoded."""
    known = known or {}
    ids = frame["id"].astype(str).tolist()
    out = np.zeros((len(ids), encoder.dim), np.float32)
    missing = [i for i, pid in enumerate(ids) if pid not in known]
    for i, pid in enumerate(ids):
        if pid in known:
            out[i] = known[pid]
    for start in range(0, len(missing), batch):
        rows = missing[start:start + batch]
        images = [decode_image(bytes(frame["image"].iat[r]), where=f"id {ids[r]}") for r in rows]
        out[rows] = np.asarray(encoder.encode_images(images), np.float32)
    return out


def index_vectors(searcher: Searcher) -> dict[str, np.ndarray]:
    """id -> image vector for every product of a `Searcher`'s index (no model call)."""
    index = searcher.index
    ids = index.products["id"].astype(str).tolist()
    return dict(zip(ids, index.vectors(), strict=True))
