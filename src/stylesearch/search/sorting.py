"""Sorting results by a numeric column (year, a catalogue's price): "price" low to high, "-price" high to low.

Browsing (filters alone) sorts every product that passes. A ranked search sorts its `SORT_DEPTH` best
matches: sorting the whole catalogue by price would put the cheapest unrelated product first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stylesearch.errors import QueryError

if TYPE_CHECKING:
    from stylesearch.search.searcher import Filters, Hit, Searcher

RELEVANCE = "relevance"
SORT_DEPTH = 240  # ten pages of the page's 24: a shopper sorting "red dress" by price wants the red dresses


@dataclass(frozen=True)
class SortKey:
    """A column to sort by (None: relevance, as ranked) and its direction."""

    column: str | None = None
    descending: bool = False

    @property
    def by_relevance(self) -> bool:
        return self.column is None


def sort_choices(numeric_columns: Iterable[str]) -> list[str]:
    """What `sort=` accepts: relevance, then each numeric column both ways."""
    columns = sorted(numeric_columns)
    return [RELEVANCE, *columns, *(f"-{c}" for c in columns)]


def parse_sort(text: str | None, numeric_columns: Iterable[str]) -> SortKey:
    """`"price"` -> ascending by price, `"-price"` -> descending; relevance (or nothing) keeps the ranking."""
    text = (text or RELEVANCE).strip()
    if text == RELEVANCE:
        return SortKey()
    column, descending = (text[1:], True) if text.startswith("-") else (text, False)
    if column not in set(numeric_columns):
        raise QueryError(f"cannot sort by {text!r}; sort by one of: {', '.join(sort_choices(numeric_columns))}")
    return SortKey(column, descending)


def _number(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number


def sort_hits(hits: Sequence[Hit], key: SortKey) -> list[Hit]:
    """`hits` ordered by `key` (products without a value last, ties in their relevance order), ranks renumbered."""
    if key.by_relevance:
        return list(hits)
    values = np.array([_number(h.attributes.get(key.column)) for h in hits], float)  # type: ignore[arg-type]
    order = _order(values, key.descending)
    return [replace(hits[i], rank=n) for n, i in enumerate(order, start=1)]


def browse_sorted(searcher: Searcher, key: SortKey, k: int, filters: Filters | None = None,
                  offset: int = 0) -> list[Hit]:
    """The products passing `filters`, ordered by `key` over all of them (catalogue order for relevance)."""
    if key.by_relevance:
        return searcher.browse(k=k, filters=filters, offset=offset)
    if k < 1 or offset < 0:
        raise QueryError(f"k must be at least 1 and offset at least 0 (got k={k}, offset={offset})")
    rows = searcher.rows_matching(filters)
    rows = np.arange(len(searcher)) if rows is None else rows
    values = pd.to_numeric(searcher.index.products[key.column].iloc[rows], errors="coerce").to_numpy(float)
    chosen = rows[_order(values, key.descending)][offset:offset + k]
    return [searcher.hit(offset + i + 1, int(row), 0.0) for i, row in enumerate(chosen)]


def _order(values: np.ndarray, descending: bool) -> np.ndarray:
    """Positions sorted by value (NaN last), equal values keeping their order: a stable sort."""
    missing = np.isnan(values)
    keyed = np.where(missing, 0.0, -values if descending else values)
    return np.lexsort((np.arange(len(values)), keyed, missing))
