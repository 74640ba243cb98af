"""Hybrid search: CLIP text->image similarity fused with BM25 over catalogue metadata and parsed attributes.

Shoppers type attributes ("women red dress", "black leather belt"). Three rankings of the same
products are fused with reciprocal rank fusion (Cormack et al., 2009):
  1. CLIP: cosine of the query's text vector with each product image;
  2. BM25 (the `bm25s` library) over each product's title and attribute values;
  3. attributes parsed from the query against the catalogue's own vocabulary: products matching
     more of them rank first (`attributes="boost"`), or only matching products are kept ("filter").

The vocabulary is the catalogue's attribute values (plurals folded: "dresses" = "Dresses"), plus
synonyms learnt from the titles: a title word that is not itself a value but concentrates on one
value ("tee" -> Tshirts, "sneakers" -> Casual Shoes and Sports Shoes, "navy" -> Navy Blue).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stylesearch.data.prepare import word_stem
from stylesearch.errors import QueryError
from stylesearch.search.derived import cached
from stylesearch.search.searcher import Filters, Hit, Searcher

# Columns a query can name; season and subCategory words ("summer", "topwear") are rare but real.
ATTRIBUTE_COLUMNS = ("gender", "articleType", "baseColour", "usage", "season", "subCategory", "masterCategory")
# Columns whose synonyms are learnt from titles; usage and season words in titles are too noisy.
SYNONYM_COLUMNS = ("articleType", "baseColour", "gender")
RRF_K = 60  # the constant of the original RRF paper: damps the weight of the very top ranks
DEPTH = 200  # candidates taken from each ranking before fusion

_WORD = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    """Lower-case word stems; "T-shirts" and "tshirt" both become "tshirt", "men's" becomes "men"."""
    text = re.sub(r"(?<=[a-z0-9])['’\-](?=[a-z0-9])", "", str(text).lower())
    return [word_stem(w) for w in _WORD.findall(text)]


@dataclass(frozen=True)
class Match:
    words: str  # the query words that matched
    column: str
    values: tuple[str, ...]
    how: str  # "value" (a catalogue value) or "synonym" (learnt from titles)


@dataclass
class ParsedQuery:
    query: str
    matches: list[Match] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def attributes(self) -> dict[str, list[str]]:
        """column -> values; a column named by a catalogue value ignores synonyms guessed for it."""
        exact = {m.column for m in self.matches if m.how == "value"}
        out: dict[str, list[str]] = {}
        for m in self.matches:
            if m.how == "synonym" and m.column in exact:
                continue
            bucket = out.setdefault(m.column, [])
            bucket.extend(v for v in m.values if v not in bucket)
        return out


@dataclass
class Vocabulary:
    """Phrases (tuples of stems) that name attribute values, learnt from one catalogue table."""

    phrases: dict[tuple[str, ...], list[tuple[str, str, str]]]  # stems -> [(column, value, how)]

    @classmethod
    def from_products(cls, products: pd.DataFrame, columns: Sequence[str] = ATTRIBUTE_COLUMNS, *,
                      synonym_columns: Sequence[str] = SYNONYM_COLUMNS, min_count: int = 5,
                      min_share: float = 0.6, min_lift: float = 1.8) -> Vocabulary:
        phrases: dict[tuple[str, ...], list[tuple[str, str, str]]] = defaultdict(list)
        columns = [c for c in columns if c in products.columns]
        for column in columns:
            for value in products[column].dropna().astype(str).unique():
                key = tuple(tokens(value))
                if key and (column, value, "value") not in phrases[key]:
                    phrases[key].append((column, value, "value"))
        if "title" in products.columns:
            for word, (column, values) in learn_synonyms(products, [c for c in synonym_columns if c in columns],
                                                         set(k[0] for k in phrases if len(k) == 1),
                                                         min_count, min_share, min_lift).items():
                phrases[(word,)].extend((column, v, "synonym") for v in values)
        return cls(dict(phrases))

    @cached_property
    def longest(self) -> int:
        """Words in the longest phrase (computed once: parse asks for it at every word)."""
        return max((len(k) for k in self.phrases), default=1)

    def parse(self, query: str) -> ParsedQuery:
        """Attributes named in `query`, longest phrase first; words naming none are `unknown`."""
        words = tokens(query)
        parsed = ParsedQuery(query=query)
        i = 0
        while i < len(words):
            for length in range(min(self.longest, len(words) - i), 0, -1):
                key = tuple(words[i:i + length])
                entries = self.phrases.get(key)
                if entries:
                    by_column: dict[tuple[str, str], list[str]] = defaultdict(list)
                    for column, value, how in entries:
                        by_column[(column, how)].append(value)
                    for (column, how), values in by_column.items():
                        parsed.matches.append(Match(" ".join(key), column, tuple(values), how))
                    i += length
                    break
            else:
                parsed.unknown.append(words[i])
                i += 1
        return parsed


def catalogue_wording(parsed: ParsedQuery) -> str | None:
    """The query in the catalogue's own words ("yellow cap" -> "Yellow Caps"), or None when that is the query.

    The model learnt the catalogue's spelling of its values; a shopper's singular or lower-case word
    ("cap", "tshirt") can land elsewhere in its text space. Words naming no value are kept as typed.
    """
    seen: set[str] = set()
    words: list[str] = []
    for match in parsed.matches:
        if match.how == "value" and match.words not in seen:
            seen.add(match.words)
            words.append(match.values[0])
    text = " ".join(words + parsed.unknown)
    return text if words and text.lower().split() != parsed.query.lower().split() else None


def blend_catalogue_wording(vectors: np.ndarray, queries: Sequence[str], vocabulary: Vocabulary,
                            encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Each query's text vector averaged with its catalogue wording's (`catalogue_wording`), re-normalised."""
    vectors = np.array(vectors, np.float32, copy=True)
    wordings = [catalogue_wording(vocabulary.parse(q)) for q in queries]
    todo = [i for i, w in enumerate(wordings) if w is not None]
    if todo:
        extra = encode([wordings[i] for i in todo])
        mixed = vectors[todo] + extra
        vectors[todo] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True).clip(1e-12)
    return vectors


def learn_synonyms(products: pd.DataFrame, columns: Sequence[str], known: set[str], min_count: int,
                   min_share: float, min_lift: float) -> dict[str, tuple[str, list[str]]]:
    """Title words that point at one attribute value: frequent, concentrated, far above the value's base rate.

    Brand names (a title's first word) and words that already are values are skipped. An
    articleType synonym also takes the other types of the same subCategory that hold at least 10%
    of the word ("sneakers" -> Casual Shoes and Sports Shoes).
    """
    titles = products["title"].astype(str).tolist()
    per_title = [tokens(t) for t in titles]
    first_word = Counter(w[0] for w in per_title if w)
    rows_of: dict[str, list[int]] = defaultdict(list)
    for row, words in enumerate(per_title):
        for w in set(words):
            rows_of[w].append(row)
    coded = {c: pd.factorize(products[c].astype("string").fillna("?"))for c in columns}
    priors = {c: np.bincount(codes, minlength=len(names)) / len(products) for c, (codes, names) in coded.items()}
    family = {}
    if "articleType" in columns and "subCategory" in products.columns:
        family = dict(zip(products["articleType"].astype(str), products["subCategory"].astype(str), strict=True))
    out: dict[str, tuple[str, list[str]]] = {}
    for word, rows in rows_of.items():
        if (len(rows) < min_count or word in known or len(word) < 3 or word.isdigit()
                or first_word[word] > 0.5 * len(rows)):
            continue
        best: tuple[float, str, list[str]] | None = None
        for column, (codes, names) in coded.items():
            counts = np.bincount(codes[rows], minlength=len(names))
            top = int(counts.argmax())
            share = counts[top] / len(rows)
            lift = share / max(priors[column][top], 1e-9)
            if share < min_share or lift < min_lift or (best and lift <= best[0]):
                continue
            chosen = [str(names[top])]
            if column == "articleType" and family:
                for other in np.argsort(-counts, kind="stable")[1:]:
                    if counts[other] < 0.1 * len(rows):
                        break
                    if family.get(str(names[other])) == family.get(chosen[0]):
                        chosen.append(str(names[other]))
            best = (lift, column, chosen)
        if best:
            out[word] = (best[1], best[2])
    return out


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """(item, score) best first, score = sum over rankings of 1 / (k + rank), rank counted from 1.

    Equal scores keep the order in which items were first seen (earlier rankings first).

    >>> reciprocal_rank_fusion([[1, 2], [2, 3]], k=0)
    [(2, 1.5), (1, 1.0), (3, 0.5)]
    """
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[int(item)] = scores.get(int(item), 0.0) + 1.0 / (k + rank)
    order = sorted(scores.items(), key=lambda p: -p[1])  # sorted() is stable: ties keep first-seen order
    return order


def metadata_text(products: pd.DataFrame) -> list[str]:
    """What BM25 matches: the title and every attribute value of each product."""
    columns = ["title", *[c for c in ATTRIBUTE_COLUMNS if c in products.columns]]
    return [" ".join(str(v) for v in row if v is not None and not (isinstance(v, float) and v != v))
            for row in products[columns].itertuples(index=False)]


def best_rows(rows: np.ndarray, score: np.ndarray, depth: int, *, then: np.ndarray | None = None) -> np.ndarray:
    """The first `depth` of `rows` ordered by `score` high to low, then `then` high to low, then row number.

    The same as a full sort, but sorts only the rows scoring at least the depth-th best score (ties
    included), which at a million rows is the difference between milliseconds and a tenth of a second.

    >>> best_rows(np.array([5, 6, 7, 8]), np.array([0.1, 0.9, 0.9, 0.5]), 2).tolist()
    [6, 7]
    """
    score = np.nan_to_num(score, nan=-np.inf)  # a NaN would otherwise become the cut and keep nothing
    if then is not None:
        then = np.nan_to_num(then, nan=-np.inf)
    if len(rows) > depth > 0:
        cut = np.partition(score, len(score) - depth)[len(score) - depth]  # the depth-th highest score
        keep = score >= cut
        rows, score = rows[keep], score[keep]
        then = then[keep] if then is not None else None
    keys = (rows, -score) if then is None else (rows, -then, -score)
    return rows[np.lexsort(keys)][:depth]


class HybridRanker:
    """Fuses CLIP scores with BM25 and parsed attributes over one table of products (row order kept)."""

    def __init__(self, products: pd.DataFrame, vocabulary: Vocabulary | None = None, *, depth: int = DEPTH,
                 rrf_k: int = RRF_K, bm25: Any = None):
        import bm25s

        self.products = products.reset_index(drop=True)
        self.vocabulary = vocabulary or Vocabulary.from_products(self.products)
        self.depth, self.rrf_k = depth, rrf_k
        if bm25 is None:
            bm25 = bm25s.BM25()
            bm25.index([tokens(t) or ["_"] for t in metadata_text(self.products)], show_progress=False)
        self.bm25 = bm25
        # Each attribute column as integer codes: matching a query's values is then an integer compare
        # over the catalogue, not a sort of a million strings.
        self._codes: dict[str, tuple[np.ndarray, dict[str, int]]] = {}
        for column in (c for c in ATTRIBUTE_COLUMNS if c in self.products.columns):
            values = pd.Categorical(self.products[column].astype("string").fillna(""))
            self._codes[column] = (np.asarray(values.codes), {v: i for i, v in enumerate(values.categories)})

    def save(self, folder: Path) -> None:
        """The BM25 index and the vocabulary, for `load` in another process (search.derived)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.bm25.save(str(folder / "bm25"), show_progress=False)
        phrases = [[list(key), [list(entry) for entry in entries]] for key, entries in self.vocabulary.phrases.items()]
        (folder / "vocabulary.json").write_text(json.dumps(phrases))

    @classmethod
    def load(cls, folder: Path, products: pd.DataFrame) -> HybridRanker:
        """A ranker over `products` from what `save` wrote for the same products."""
        import bm25s

        phrases = json.loads((folder / "vocabulary.json").read_text())
        vocabulary = Vocabulary({tuple(key): [tuple(entry) for entry in entries] for key, entries in phrases})
        bm25 = bm25s.BM25.load(str(folder / "bm25"), show_progress=False)
        if int(bm25.scores["num_docs"]) != len(products):
            raise ValueError(f"the saved BM25 index holds {bm25.scores['num_docs']} products, not {len(products)}")
        return cls(products, vocabulary, bm25=bm25)

    def lexical_scores(self, query: str) -> np.ndarray:
        words = [w for w in tokens(query) if w in self.bm25.vocab_dict]
        if not words:
            return np.zeros(len(self.products), np.float32)
        return np.asarray(self.bm25.get_scores(words), np.float32)

    def attribute_hits(self, parsed: ParsedQuery) -> tuple[np.ndarray, np.ndarray]:
        """(how many parsed columns each product matches, whether it matches all of them)."""
        wanted = parsed.attributes
        count = np.zeros(len(self.products), np.int32)
        for column, values in wanted.items():
            codes, index = self._codes[column]
            hit = np.zeros(len(index) + 1, bool)  # the extra last slot is pandas' -1 code (missing)
            hit[[index[v] for v in values if v in index]] = True
            count += hit[codes]
        return count, count == len(wanted)

    def rank(self, query: str, clip_scores: np.ndarray, *, attributes: str = "boost",
             rows: np.ndarray | None = None, depth: int | None = None) -> tuple[np.ndarray, ParsedQuery]:
        """Rows best first (at least `depth` of them when that many pass) after fusing the three rankings."""
        depth = max(self.depth, depth or 0)
        if attributes not in ("boost", "filter", "off"):
            raise QueryError(f"attributes={attributes!r}: use boost, filter or off")
        parsed = self.vocabulary.parse(query)
        allowed: np.ndarray | None = None  # None: every product, without copying any score vector
        if rows is not None:
            allowed = np.zeros(len(self.products), bool)
            allowed[rows] = True
        count, full = self.attribute_hits(parsed)
        if attributes == "filter" and parsed.attributes and (full if allowed is None else allowed & full).any():
            allowed = full if allowed is None else allowed & full
        clip, lexical = np.asarray(clip_scores, np.float32), self.lexical_scores(query)
        if allowed is None:
            candidates = np.arange(len(self.products))
        else:
            candidates = np.flatnonzero(allowed)
            clip, lexical = clip[candidates], lexical[candidates]
        rankings = [best_rows(candidates, clip, depth)]
        has_words = lexical > 0
        if has_words.any():
            rankings.append(best_rows(candidates[has_words], lexical[has_words], depth, then=clip[has_words]))
        if attributes == "boost" and parsed.attributes:
            matched = count[candidates] > 0
            rankings.append(best_rows(candidates[matched], count[candidates][matched], depth, then=clip[matched]))
        fused = reciprocal_rank_fusion(rankings, self.rrf_k)
        return np.array([item for item, _ in fused], dtype=np.int64), parsed


class HybridSearcher:
    """`Searcher.search` with `mode="hybrid"`: the same Hits (score = CLIP score), fused order."""

    def __init__(self, searcher: Searcher, *, attributes: str = "boost", vocabulary: Vocabulary | None = None,
                 ranker: HybridRanker | None = None):
        self.searcher = searcher
        self.attributes = attributes
        self.ranker = ranker if ranker is not None else HybridRanker(searcher.index.products, vocabulary)

    @property
    def last_notice(self) -> str | None:
        return self.searcher.last_notice

    def search(self, query: str, k: int = 10, filters: Filters | None = None, offset: int = 0) -> list[Hit]:
        if k < 1 or offset < 0:
            raise QueryError(f"k must be at least 1 and offset at least 0 (got k={k}, offset={offset})")
        vector = self.searcher.encode_query(query)  # first: it also checks the query and sets the notice
        vector = blend_catalogue_wording(vector[None], [query], self.ranker.vocabulary,
                                         self.searcher.encoder.encode_texts)[0]
        clip = self.searcher.index.matrix() @ vector
        rows = self.searcher.rows_matching(filters)
        ranked, _ = self.ranker.rank(query, clip, attributes=self.attributes, rows=rows, depth=offset + k)
        return [self.searcher.hit(offset + i + 1, int(row), float(clip[row]))
                for i, row in enumerate(ranked[offset:offset + k])]


def hybrid_for(searcher: Searcher, *, wait: bool = True) -> HybridSearcher | None:
    """Hybrid search over `searcher`, its BM25 index and vocabulary built once per index however many ask.

    The build takes seconds per 100k products (docs/search.md), so a server starts it in the background
    and asks with `wait=False`: None until it is built (starting the build if nobody has), never blocking.
    The built ranker lives in `searcher.hybrid`, which every view of the index shares (`with_encoder`).
    """
    ranker = searcher.hybrid.get(lambda: ranker_for(searcher.index), wait=wait)
    return None if ranker is None else HybridSearcher(searcher, ranker=ranker)


def ranker_for(index: Any) -> HybridRanker:
    """`index`'s ranker, loaded from the copy an earlier process saved (search.derived) or built and saved."""
    products = index.products
    return cached(index, "hybrid", lambda: HybridRanker(products), lambda ranker, folder: ranker.save(folder),
                  lambda folder: HybridRanker.load(folder, products))
