"""`search.derived`: hybrid search's BM25 index and vocabulary, and the speller, saved once per index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fakes import FakeEncoder
from stylesearch.index.store import EmbeddingIndex
from stylesearch.search import derived, hybrid
from stylesearch.search.hybrid import ranker_for
from stylesearch.search.searcher import Searcher
from stylesearch.search.spelling import speller_for


@pytest.fixture()
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("STYLESEARCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def ranking(ranker: hybrid.HybridRanker, query: str) -> list[int]:
    clip = np.linspace(0, 1, len(ranker.products), dtype=np.float32)  # any CLIP scores, the same for both
    return ranker.rank(query, clip)[0].tolist()


def test_a_second_process_loads_the_ranker_instead_of_building_it(tiny_index: Path, cache: Path, monkeypatch):
    built = ranker_for(EmbeddingIndex.load(tiny_index))
    saved = derived.cache_folder(EmbeddingIndex.load(tiny_index), "hybrid")
    assert saved is not None and saved.is_relative_to(cache) and (saved / "vocabulary.json").is_file()

    def no_build(*args, **kwargs):
        raise AssertionError("built again")

    monkeypatch.setattr(hybrid.Vocabulary, "from_products", no_build)
    loaded = ranker_for(EmbeddingIndex.load(tiny_index))  # a fresh index object, as a new process has
    assert loaded.vocabulary.phrases == built.vocabulary.phrases
    for query in ("red shirt", "women blue jeans", "watch", "zzz"):
        assert ranking(loaded, query) == ranking(built, query)
        assert np.array_equal(loaded.lexical_scores(query), built.lexical_scores(query))


def test_a_damaged_cache_is_rebuilt_not_trusted(tiny_index: Path, cache: Path):
    built = ranker_for(EmbeddingIndex.load(tiny_index))
    saved = derived.cache_folder(EmbeddingIndex.load(tiny_index), "hybrid")
    (saved / "vocabulary.json").write_text("{not json")
    again = ranker_for(EmbeddingIndex.load(tiny_index))
    assert ranking(again, "red shirt") == ranking(built, "red shirt")
    assert json.loads((saved / "vocabulary.json").read_text())  # the rebuilt copy replaced the damaged one


def test_a_rebuilt_index_gets_its_own_cache(tiny_index: Path, processed_dir: Path, cache: Path, tmp_path: Path):
    other = tmp_path / "other"
    EmbeddingIndex.build(processed_dir, FakeEncoder(), other, model_name="fake", progress=False)
    first = derived.cache_folder(EmbeddingIndex.load(tiny_index), "hybrid")
    second = derived.cache_folder(EmbeddingIndex.load(other), "hybrid")
    assert first != second  # named by the manifest, which seals every file's hash


def test_an_unwritable_cache_only_costs_the_build(tiny_index: Path, monkeypatch, tmp_path: Path):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("STYLESEARCH_CACHE", str(blocked))
    ranker = ranker_for(EmbeddingIndex.load(tiny_index))
    assert ranking(ranker, "red shirt")


def test_the_speller_is_saved_and_loaded_with_the_same_corrections(processed_dir: Path, cache: Path, tmp_path: Path):
    tiny_index = tmp_path / "index"  # built with the fake encoder, so the searcher accepts it
    EmbeddingIndex.build(processed_dir, FakeEncoder(), tiny_index, model_name="fake", progress=False)
    searcher = Searcher(EmbeddingIndex.load(tiny_index), FakeEncoder())
    built = speller_for(searcher)
    word = max(built.counts, key=lambda w: (len(w), w))  # a long catalogue word, then a typo of it
    typo = word[:-2] + word[-1]
    saved = next(cache.glob("stylesearch/derived/*/speller-*"))
    counts = json.loads((saved / "counts.json").read_text())
    assert counts == built.counts
    (saved / "counts.json").write_text(json.dumps({**counts, "marker": 9}))  # only a loaded copy has this
    loaded = speller_for(Searcher(EmbeddingIndex.load(tiny_index), FakeEncoder()))
    assert loaded.counts.get("marker") == 9
    assert loaded.correct(typo) == built.correct(typo)
    (saved / "counts.json").write_text(json.dumps(["not", "counts"]))
    assert speller_for(Searcher(EmbeddingIndex.load(tiny_index), FakeEncoder())).counts == built.counts  # rebuilt
