"""Composed queries, "like this, but in red": an item's image vector moved along a text edit.

The edit is read against the catalogue's own values ("in red" -> baseColour Red). The item's words in
the view the model was trained on ("Men Blue Tshirts") and the same words with the edit applied ("Men
Red Tshirts") are encoded; the query is

    image + w_delta * (text(new) - text(current)) + w_text * text(new), L2-normalised,

so what the edit does not mention (shape, type, gender) comes from the picture and what it does comes
from the words. An edit naming no catalogue value is appended to the item's words instead.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from stylesearch.config import ComposeConfig
from stylesearch.data.prepare import word_stem
from stylesearch.errors import QueryError
from stylesearch.search.indexstate import per_index
from stylesearch.search.searcher import Filters, Hit, Searcher

_WORD = re.compile(r"[a-z0-9]+")
MAX_EDIT_CHARS = 200  # an edit is a few words; more is a search, not an edit


@dataclass(frozen=True)
class Edit:
    """What an edit asks for: the columns it changes, and the item's words before and after."""

    text: str
    changes: dict[str, str]  # column -> the catalogue value the edit names
    old: str
    new: str


def parse_changes(edit: str, values: Mapping[str, Sequence[str]], columns: Sequence[str]) -> dict[str, str]:
    """Catalogue values named in `edit`, longest first so "navy blue" is not read as "blue"; one per column."""
    words: list[str | None] = [word_stem(w) for w in _WORD.findall(edit.lower())]  # "dress" finds Dresses
    candidates = sorted(((v, c) for c in columns for v in values.get(c, ())), key=lambda p: (-len(p[0]), p[1]))
    changes: dict[str, str] = {}
    for value, column in candidates:
        wanted = [word_stem(w) for w in _WORD.findall(value.lower())]
        if column in changes or not wanted:
            continue
        for start in range(len(words) - len(wanted) + 1):
            if words[start:start + len(wanted)] == wanted:
                changes[column] = value
                words[start:start + len(wanted)] = [None] * len(wanted)  # a word names one value only
                break
    return changes


def read_edit(edit: str, attributes: Mapping[str, object], values: Mapping[str, Sequence[str]],
              cfg: ComposeConfig = ComposeConfig()) -> Edit:
    """The item's view text before and after `edit`; an edit naming no known value is appended as typed."""
    edit = " ".join(str(edit).split())
    if not edit:
        raise QueryError("empty edit: say what to change, e.g. 'in red'")
    if len(edit) > MAX_EDIT_CHARS:
        raise QueryError(f"the edit is over {MAX_EDIT_CHARS} characters; say what to change in a few words")
    changes = parse_changes(edit, values, cfg.columns)
    view = [c for c in changes if c not in cfg.view] + list(cfg.view)  # an edited usage or season joins the view
    old = " ".join(str(attributes[c]) for c in view if attributes.get(c) not in (None, ""))
    new = " ".join(str(changes.get(c, attributes.get(c))) for c in view
                   if changes.get(c, attributes.get(c)) not in (None, ""))
    if not changes:
        new = f"{old} {edit}".strip()
    return Edit(text=edit, changes=changes, old=old or edit, new=new)


def combine(image: np.ndarray, new_text: np.ndarray, old_text: np.ndarray,
            cfg: ComposeConfig = ComposeConfig()) -> np.ndarray:
    """Row-wise image + w_delta (new - old) + w_text new, L2-normalised; 1-d inputs give a 1-d vector."""
    query = np.asarray(image, np.float32) + cfg.w_delta * (np.asarray(new_text, np.float32) - old_text) \
        + cfg.w_text * np.asarray(new_text, np.float32)
    norm = np.linalg.norm(query, axis=-1, keepdims=True)
    return (query / np.maximum(norm, 1e-12)).astype(np.float32)


def catalogue_values(searcher: Searcher, columns: Sequence[str]) -> dict[str, list[str]]:
    """The distinct values of each column the index holds, worked out once per loaded index."""
    products = searcher.index.products

    def build() -> dict[str, list[str]]:
        return {c: sorted({str(v).strip() for v in products[c].dropna() if str(v).strip()})
                for c in columns if c in products.columns}

    # A scan of every row costs tens of milliseconds at 34k products: once per index, not per query.
    return per_index(searcher.index, f"compose-values:{','.join(columns)}").get(build)  # type: ignore[no-any-return]


def compose_query(searcher: Searcher, product_id: str, edit: str,
                  cfg: ComposeConfig = ComposeConfig()) -> tuple[np.ndarray, Edit]:
    """The query vector for "like `product_id`, but `edit`", and how the edit was read."""
    product = searcher.product(product_id)  # an unknown id is an UnknownProductError here
    ids = searcher.index.products["id"]
    rows = per_index(searcher.index, "compose-rows").get(lambda: {str(p): r for r, p in enumerate(ids)})
    image = searcher.index.vectors([rows[product.id]])[0]
    parsed = read_edit(edit, product.attributes, catalogue_values(searcher, cfg.columns), cfg)
    texts = np.asarray(searcher.encoder.encode_texts([parsed.new, parsed.old]), np.float32)
    return combine(image, texts[0], texts[1], cfg), parsed


def similar_edited(searcher: Searcher, product_id: str, edit: str, k: int = 10, filters: Filters | None = None,
                   offset: int = 0, cfg: ComposeConfig = ComposeConfig()) -> list[Hit]:
    """Products like catalogue item `product_id` but changed as `edit` says ("in red"), the item itself left out."""
    if k < 1 or offset < 0:
        raise QueryError(f"k must be at least 1 and offset at least 0 (got k={k}, offset={offset})")
    vector, _ = compose_query(searcher, product_id, edit, cfg)
    hits = [h for h in searcher.search_vector(vector, k + offset + 1, filters) if h.id != str(product_id).strip()]
    return [dataclasses.replace(h, rank=offset + i + 1) for i, h in enumerate(hits[offset:offset + k])]
