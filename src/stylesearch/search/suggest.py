"""Suggestions while typing, from the catalogue's own words: article types, colours, brands, colour + type, titles.

"dre" offers "Dresses" before any one product's title, because a shopper who picks a type wants every
dress; titles fill the places left. Every word of the query must begin a word of the suggestion, in
any order ("red dre" -> "Red Dresses"), so suggestions never promise words the catalogue lacks.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stylesearch.search.indexstate import per_index

# Columns offered as suggestions, with the word the page shows beside each.
VALUE_KINDS = (("articleType", "type"), ("baseColour", "colour"), ("brand", "brand"), ("subCategory", "category"),
               ("masterCategory", "category"), ("usage", "usage"), ("gender", "gender"), ("season", "season"))
MIN_PAIR = 2  # a colour + type seen once is one product: its title says it better
MIN_BRAND = 3  # a title's first word that starts at least this many titles is a brand ("Puma Men ...")
LIMIT = 8

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Suggestion:
    text: str
    kind: str  # type, colour, brand, colour and type, category, ..., product (a title)
    count: int  # products it would find in the catalogue (by value, or with that exact title)


def words(text: str) -> list[str]:
    """Lower-case words: "T-shirt" is "t" and "shirt", so "shi" finds it."""
    return _WORD.findall(str(text).lower())


class Suggester:
    """Prefix completions over one product table, built once (a second at 34k products)."""

    def __init__(self, products: pd.DataFrame):
        found: dict[str, Suggestion] = {}

        def add(text: str, kind: str, count: int) -> None:
            key = " ".join(words(text))
            if key and key not in found:  # the first (most specific kind) wins: "Dresses" is a type, not a title
                found[key] = Suggestion(text, kind, int(count))

        for column, kind in VALUE_KINDS:
            if column in products.columns and not pd.api.types.is_numeric_dtype(products[column]):
                for value, n in products[column].dropna().astype(str).str.strip().value_counts().items():
                    add(str(value), kind, n)
        if {"baseColour", "articleType"} <= set(products.columns):
            pairs = (products["baseColour"].astype("string") + " " + products["articleType"].astype("string")).dropna()
            for text, n in pairs.value_counts().items():
                if n >= MIN_PAIR:
                    add(str(text), "colour and type", n)
        titles = products["title"].dropna().astype(str).str.strip() if "title" in products.columns else pd.Series()
        if "brand" not in products.columns and len(titles):
            values = {w for s in found.values() for w in words(s.text)}  # "Men ..." starts titles, but is no brand
            firsts = Counter(t.split()[0] for t in titles if t.split())
            for first, n in firsts.most_common():
                if n >= MIN_BRAND and first.lower() not in values and first.isalpha():
                    add(first, "brand", n)
        for text, n in titles.value_counts().items():
            add(str(text), "product", n)
        self.entries = list(found.values())
        # word -> entries holding it; the sorted word list finds every word that starts with a prefix.
        holders: dict[str, list[int]] = {}
        for i, entry in enumerate(self.entries):
            for word in set(words(entry.text)):
                holders.setdefault(word, []).append(i)
        self._words = sorted(holders)
        self._holders = [np.asarray(holders[w], np.int64) for w in self._words]
        self._counts = np.asarray([e.count for e in self.entries], np.int64)
        self._is_title = np.asarray([e.kind == "product" for e in self.entries], bool)

    def _starting(self, prefix: str) -> np.ndarray:
        lo = bisect.bisect_left(self._words, prefix)
        hi = bisect.bisect_left(self._words, prefix + "\U0010ffff")
        if lo == hi:
            return np.empty(0, np.int64)
        return np.unique(np.concatenate(self._holders[lo:hi]))

    def suggest(self, query: str, limit: int = LIMIT) -> list[Suggestion]:
        """Up to `limit` completions of `query`: values and brands first, then titles; more products first."""
        wanted = words(query)
        if not wanted or limit < 1:
            return []
        found: np.ndarray | None = None
        for prefix in wanted:
            rows = self._starting(prefix)
            found = rows if found is None else np.intersect1d(found, rows, assume_unique=True)
            if not len(found):
                return []
        assert found is not None
        text = " ".join(wanted)
        leads = np.asarray([" ".join(words(self.entries[i].text)).startswith(text) for i in found], bool)
        order = np.lexsort((found, -self._counts[found], ~leads, self._is_title[found]))
        return [self.entries[i] for i in found[order][:limit]]

    def popular(self, limit: int = 5) -> list[Suggestion]:
        """The colour + type pairs (or types) most of the catalogue is: what to offer when a query found nothing."""
        for kind in ("colour and type", "type"):
            chosen = sorted((e for e in self.entries if e.kind == kind), key=lambda e: (-e.count, e.text))
            if chosen:
                return chosen[:limit]
        return []


def suggester_for(searcher: object) -> Suggester:
    """The suggester of the searcher's index, built once however many requests ask."""
    products = searcher.index.products  # type: ignore[attr-defined]
    return per_index(searcher.index, "suggest").get(lambda: Suggester(products))  # type: ignore[attr-defined, no-any-return]
