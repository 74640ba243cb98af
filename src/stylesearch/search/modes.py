"""Search modes: every way a text query can be ranked, registered in this one file and dispatched once.

The CLI, the HTTP API, the page and the Python API all call `run` (or `search`), so a mode behaves the
same everywhere. Adding a mode is one function and one `MODES` entry here, plus its tests. This module
imports nothing heavy, so the CLI can name the modes in `--help` without loading a model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stylesearch.errors import QueryError

if TYPE_CHECKING:
    from stylesearch.search.searcher import Hit, Searcher

# What text queries use unless told otherwise (CLI, HTTP API, page). On shopper-style queries built from
# held-out metadata hybrid finds the asked-for products several times as often as CLIP alone
# (docs/quality.md, "Default search mode"). Pictures and "more like this" always search by CLIP, and the
# seed-compatible `search_products` stays pure CLIP.
DEFAULT_MODE = "hybrid"


@dataclass(frozen=True)
class Answer:
    """The hits of one query, and a note for the user when the mode could not be honoured as asked."""

    hits: list[Hit]
    notice: str | None = None
    corrected: str | None = None  # what was searched for, when the query's spelling was corrected


def _clip(searcher: Searcher, query: str, k: int, filters: Mapping | None, offset: int, wait: bool) -> Answer:
    return Answer(searcher.search(query, k, filters, offset))


def _hybrid(searcher: Searcher, query: str, k: int, filters: Mapping | None, offset: int, wait: bool) -> Answer:
    from stylesearch.search.hybrid import hybrid_for

    # A server asks with wait=False: a request must not hold a search thread while BM25 is being built.
    hybrid = hybrid_for(searcher, wait=wait)
    if hybrid is None:
        return Answer(searcher.search(query, k, filters, offset),
                      "hybrid search is still being prepared; these are CLIP results")
    return Answer(hybrid.search(query, k, filters, offset))


Mode = Callable[["Searcher", str, int, "Mapping | None", int, bool], Answer]
MODES: dict[str, Mode] = {
    "clip": _clip,  # CLIP text->image similarity alone
    "hybrid": _hybrid,  # CLIP fused with BM25 over the metadata and the attributes the query names
}


def check_mode(mode: str) -> str:
    """`mode` if it is a search mode, else a `QueryError` naming the choices."""
    if mode not in MODES:
        raise QueryError(f"search mode {mode!r}: use one of {', '.join(MODES)}")
    return mode


def run(searcher: Searcher, query: str, k: int = 10, filters: Mapping | None = None, offset: int = 0,
        mode: str = DEFAULT_MODE, *, wait: bool = True, correct: bool = True) -> Answer:
    """Rank `query` in `mode`; with `wait=False` a mode still being prepared answers by CLIP, with a notice.

    With `correct`, words the catalogue does not use are corrected to close ones it does
    (search.spelling), and the answer says what was searched for instead.
    """
    ranker = MODES[check_mode(mode)]
    corrected = None
    if correct:
        from stylesearch.search.spelling import speller_for

        corrected = speller_for(searcher).correct(query)
    answer = ranker(searcher, corrected or query, k, filters, offset, wait)
    if corrected is None:
        return answer
    said = f"showing results for “{corrected}”"
    return Answer(answer.hits, "; ".join(n for n in (said, answer.notice) if n), corrected)


def search(searcher: Searcher, query: str, k: int = 10, filters: Mapping | None = None, offset: int = 0,
           mode: str = "clip", *, correct: bool = False) -> list[Hit]:
    """The hits of `query` in `mode` (CLIP alone and as typed unless asked, as the seed's API did).

    >>> search(searcher, "red drss", k=5, mode="hybrid", correct=True)  # doctest: +SKIP
    """
    return run(searcher, query, k, filters, offset, mode, correct=correct).hits
