"""Typo tolerance: query words corrected against the catalogue's own words (titles and attribute values).

"red drss" becomes "red dress" and "sneekers" "sneakers" because those words are in the catalogue;
a word the catalogue already uses, a number, or a word too short to correct safely is left alone.
Candidates within 1 edit (2 for words of 7 letters or more) are found with RapidFuzz; among equally
close ones the word the catalogue uses most wins.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from stylesearch.search.derived import cached

WORD = re.compile(r"[^\W\d_]+", re.UNICODE)  # letters only: sizes, years and codes are never "corrected"
MIN_LENGTH = 4  # "tee" -> "tea" would do harm; three letters are too few to tell a typo from a word
MIN_COUNT = 2  # a word seen once in the catalogue may itself be a typo


class Speller:
    """Corrects the words of a query to the catalogue's vocabulary."""

    def __init__(self, texts: Iterable[str], min_count: int = MIN_COUNT):
        counts = Counter(word for text in texts for word in WORD.findall(str(text).lower()))
        self.counts = {word: n for word, n in counts.items() if n >= min_count}
        self._choices = list(self.counts)

    def save(self, folder: Path) -> None:
        """The catalogue's word counts, for `load` in another process (search.derived)."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "counts.json").write_text(json.dumps(self.counts))

    @classmethod
    def load(cls, folder: Path) -> Speller:
        speller = cls(())
        counts = json.loads((folder / "counts.json").read_text())
        if not isinstance(counts, dict) or not all(isinstance(n, int) for n in counts.values()):
            raise ValueError(f"{folder / 'counts.json'} is not a table of word counts")
        speller.counts, speller._choices = counts, list(counts)
        return speller

    def correct_word(self, word: str) -> str:
        lower = word.lower()
        if len(lower) < MIN_LENGTH or self.known(lower):
            return word
        cutoff = 2 if len(lower) >= 7 else 1
        found = process.extract(lower, self._choices, scorer=Levenshtein.distance, score_cutoff=cutoff, limit=20)
        if not found:
            return word
        best = min(found, key=lambda match: (match[1], -self.counts[match[0]], match[0]))[0]
        return best.capitalize() if word[:1].isupper() else best

    def known(self, word: str) -> bool:
        """Whether the catalogue uses `word`, or its singular or plural ("shirt" when titles say "Shirts")."""
        forms = {word, word + "s", word + "es", word[:-1] if word.endswith("s") else word,
                 word[:-2] if word.endswith("es") else word}
        return any(form in self.counts for form in forms)

    def correct(self, query: str) -> str | None:
        """The corrected query, or None when every word was already known."""
        fixed = WORD.sub(lambda m: self.correct_word(m.group()), query)
        return fixed if fixed != query else None


def speller_for(searcher: object) -> Speller:
    """The searcher's speller, built once per index from its titles and attribute values."""
    products = searcher.index.products  # type: ignore[attr-defined]

    columns = [c for c in products.columns if c in ("title", *searcher.filter_columns)]  # type: ignore[attr-defined]

    def build() -> Speller:
        texts = (str(v) for c in columns for v in products[c].dropna().astype(str))
        return Speller(texts)

    # The words come from these columns: another set of filter columns is another speller.
    name = "speller-" + hashlib.sha256("\n".join(columns).encode()).hexdigest()[:12]
    index = searcher.index  # type: ignore[attr-defined]
    return searcher.spelling.get(  # type: ignore[attr-defined, no-any-return]
        lambda: cached(index, name, build, lambda speller, folder: speller.save(folder), Speller.load))
