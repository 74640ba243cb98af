"""Whether a text query found anything: catalogue words in it, or a CLIP score above what chance reaches.

CLIP ranks every product for any text, so gibberish ("asdkjhqwe") still gets a page of "results". A
query is a good match when one of its words is the catalogue's own (titles and attribute values: the
vocabulary typo correction uses), or when its best CLIP score beats the best score that any of
`NULL_QUERIES` random letter strings reaches on this index with this model (`chance_score`,
computed once per index). Below that, the ranking is what chance would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from stylesearch.search.indexstate import per_index
from stylesearch.search.spelling import WORD, speller_for

if TYPE_CHECKING:
    from stylesearch.search.searcher import Hit, Searcher

NULL_QUERIES = 32  # the chance level is the best of 32 random strings: gibberish beats it about 1 time in 33
NULL_SEED = 0
MIN_WORD = 3  # "a", "in": too short to say the catalogue knows what was asked
# Words in most titles' neighbourhood that say nothing about a product on their own.
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "if", "in", "into", "is", "it", "no",
    "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was",
    "will", "with"})


def null_queries(n: int = NULL_QUERIES, seed: int = NULL_SEED) -> list[str]:
    """`n` random lower-case letter strings of 5 to 10 letters: queries that mean nothing."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return ["".join(rng.choice(letters, size=int(rng.integers(5, 11)))) for _ in range(n)]


def chance_score(searcher: Searcher) -> float:
    """The best cosine any null query reaches against the index's images (computed once per index)."""

    def build() -> float:
        vectors = np.asarray(searcher.encoder.encode_texts(null_queries()), np.float32)
        matrix = searcher.index.matrix()
        return max(float((matrix @ v).max()) for v in vectors)  # one row at a time: no n x 32 copy

    return float(per_index(searcher.index, "chance-score").get(build))  # type: ignore[arg-type]


def known_words(searcher: Searcher, query: str) -> list[str]:
    """The words of `query` the catalogue uses (or their singular or plural), stop words left out."""
    speller = speller_for(searcher)
    return [w for w in WORD.findall(query.lower())
            if len(w) >= MIN_WORD and w not in STOPWORDS and speller.known(w)]


def good_match(searcher: Searcher, query: str, hits: Sequence[Hit]) -> bool:
    """Whether `hits` (the first page for `query`, best first) answer it better than chance."""
    if not hits:
        return False
    if known_words(searcher, query):
        return True
    return max(h.score for h in hits) / 100.0 > chance_score(searcher)
