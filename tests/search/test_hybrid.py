"""Hybrid search: query parsing against the catalogue's vocabulary, RRF by hand, and the searcher's contract."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fakes import FakeEncoder
from stylesearch.config import IndexConfig
from stylesearch.errors import QueryError
from stylesearch.index.store import EmbeddingIndex
from stylesearch.search.hybrid import HybridRanker, HybridSearcher, Vocabulary, reciprocal_rank_fusion, tokens
from stylesearch.search.modes import search
from stylesearch.search.searcher import Searcher


def _products() -> pd.DataFrame:
    rows = []
    # Titles say "Tee" and "Sneakers" while the metadata says Tshirts and Casual/Sports Shoes.
    for i in range(6):
        rows.append(("Men", "Topwear", "Tshirts", "Navy Blue", f"Brand{i} Men Navy Tee"))
        rows.append(("Women", "Dress", "Dresses", "Red", f"Label{i} Women Red Dress"))
        rows.append(("Men", "Shoes", "Casual Shoes", "White", f"Maker{i} Men White Sneakers"))
    rows.append(("Men", "Shoes", "Sports Shoes", "Black", "Runner Men Black Sneakers"))
    rows.append(("Men", "Topwear", "Tshirts", "White", "Plain Men White Tee"))  # "navy" is a colour, not a type
    rows.append(("Women", "Loungewear and Nightwear", "Nightdress", "Pink", "Sleepy Women Pink Nightdress"))
    frame = pd.DataFrame(rows, columns=["gender", "subCategory", "articleType", "baseColour", "title"])
    frame.insert(0, "id", [str(100 + i) for i in range(len(frame))])
    frame["masterCategory"] = "Apparel"
    frame["usage"] = "Casual"
    return frame


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    return Vocabulary.from_products(_products(), min_count=3)


def test_plurals_and_case_fold_onto_catalogue_values(vocabulary):
    assert vocabulary.parse("WOMEN red DRESSES").attributes == {
        "gender": ["Women"], "baseColour": ["Red"], "articleType": ["Dresses"], "subCategory": ["Dress"]}
    assert vocabulary.parse("a dress").attributes["articleType"] == ["Dresses"]
    assert vocabulary.parse("t-shirts").attributes == {
        "articleType": ["Tshirts"]}


def test_multi_word_values_win_over_their_single_words(vocabulary):
    parsed = vocabulary.parse("navy blue casual shoes")
    assert parsed.attributes["baseColour"] == ["Navy Blue"]
    assert parsed.attributes["articleType"] == ["Casual Shoes"]


def test_synonyms_are_learnt_from_titles(vocabulary):
    assert vocabulary.parse("tee").attributes == {"articleType": ["Tshirts"]}
    # "sneakers" sits on Casual Shoes mostly, and on Sports Shoes of the same subCategory too
    assert vocabulary.parse("Sneakers").attributes == {"articleType": ["Casual Shoes", "Sports Shoes"]}
    assert vocabulary.parse("navy").attributes == {"baseColour": ["Navy Blue"]}
    # brand names (a title's first word) are not synonyms
    assert vocabulary.parse("brand0").attributes == {}


def test_unknown_words_are_reported_and_do_not_stop_parsing(vocabulary):
    parsed = vocabulary.parse("blorp red glittery dress")
    assert parsed.unknown == ["blorp", "glittery"]
    assert parsed.attributes["baseColour"] == ["Red"]
    assert vocabulary.parse("").attributes == {}


def test_a_value_named_in_the_query_overrides_a_synonym_for_the_same_column(vocabulary):
    assert vocabulary.parse("white tee tshirts").attributes["articleType"] == ["Tshirts"]
    assert vocabulary.parse("sneakers sports shoes").attributes["articleType"] == ["Sports Shoes"]


def test_tokens_fold_hyphens_possessives_and_plurals():
    assert tokens("Men's T-Shirts") == ["men", "tshirt"]
    assert tokens("Watches, DRESSES") == ["watch", "dress"]


def test_rrf_matches_a_hand_computed_example():
    # k = 60: item 7 is 1st and 3rd -> 1/61 + 1/63; item 3 is 2nd and 1st -> 1/62 + 1/61; item 5 is 3rd only.
    fused = reciprocal_rank_fusion([[7, 3, 5], [3, 9, 7]], k=60)
    expected = {7: 1 / 61 + 1 / 63, 3: 1 / 62 + 1 / 61, 9: 1 / 62, 5: 1 / 63}
    assert [item for item, _ in fused] == [3, 7, 9, 5]
    for item, score in fused:
        assert score == pytest.approx(expected[item], abs=1e-12)


def test_rrf_ties_keep_first_seen_order():
    assert [i for i, _ in reciprocal_rank_fusion([[1, 2], [2, 1]], k=0)] == [1, 2]


def test_hybrid_ranking_lifts_attribute_matches_above_a_wrong_clip_order(vocabulary):
    products = _products()
    ranker = HybridRanker(products, vocabulary)
    clip = np.linspace(1, 0, len(products))  # CLIP alone prefers the first rows: tees
    rows, parsed = ranker.rank("women red dress", clip)
    assert parsed.attributes["articleType"] == ["Dresses"]
    assert set(products.iloc[rows[:6]]["articleType"]) == {"Dresses"}
    rows, _ = ranker.rank("red dress", clip, attributes="filter")
    assert set(products.iloc[rows]["articleType"]) == {"Dresses"}
    with pytest.raises(QueryError):
        ranker.rank("x", clip, attributes="sometimes")


@pytest.fixture(scope="module")
def searcher(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    out = tmp_path_factory.mktemp("hybrid") / "idx"
    EmbeddingIndex.build(processed_dir, FakeEncoder(), out, IndexConfig(), model_name="fake", progress=False)
    return Searcher.from_index(out, FakeEncoder())


def test_hybrid_searcher_keeps_the_hit_contract(searcher):
    hybrid = HybridSearcher(searcher)
    hits = hybrid.search("red dress", k=5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert len({h.id for h in hits}) == 5
    page = hybrid.search("red dress", k=2, offset=2)
    assert [h.id for h in page] == [h.id for h in hits[2:4]]
    assert search(searcher, "red", k=3, mode="clip") == searcher.search("red", k=3)
    filtered = search(searcher, "red dress", k=3, filters={"gender": "Women"}, mode="hybrid")
    assert all(h.attributes["gender"] == "Women" for h in filtered)
    with pytest.raises(QueryError, match="mode"):
        search(searcher, "red", mode="fuzzy")


def test_best_rows_equals_a_full_sort_with_ties():
    from stylesearch.search.hybrid import best_rows

    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 60))
        rows = np.sort(rng.choice(1000, n, replace=False))
        score = rng.integers(0, 4, n).astype(np.float32)  # few values: ties at the cut are the rule
        then = np.round(rng.random(n), 1).astype(np.float32)
        depth = int(rng.integers(1, 70))
        full = rows[np.lexsort((rows, -score))][:depth]
        assert best_rows(rows, score, depth).tolist() == full.tolist(), trial
        full = rows[np.lexsort((rows, -then, -score))][:depth]
        assert best_rows(rows, score, depth, then=then).tolist() == full.tolist(), trial


def test_best_rows_ranks_nan_scores_last_instead_of_dropping_everything():
    from stylesearch.search.hybrid import best_rows

    nan = float("nan")
    assert best_rows(np.arange(4), np.array([nan, nan, 0.5, 0.2]), 2).tolist() == [2, 3]
    assert best_rows(np.arange(3), np.array([1.0, 1.0, 0.0]), 2, then=np.array([nan, 0.3, 0.0])).tolist() == [1, 0]


def test_the_hybrid_index_is_built_once_however_many_threads_ask(processed_dir, tmp_path, monkeypatch):
    import threading

    import stylesearch.search.hybrid as hybrid_module
    from stylesearch.search.hybrid import hybrid_for

    out = tmp_path / "idx"
    EmbeddingIndex.build(processed_dir, FakeEncoder(), out, IndexConfig(), model_name="fake", progress=False)
    fresh = Searcher.from_index(out, FakeEncoder())
    builds = []
    real_init = hybrid_module.HybridRanker.__init__

    def counted_init(self, *args, **kwargs):
        builds.append(threading.get_ident())
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(hybrid_module.HybridRanker, "__init__", counted_init)
    got = []
    threads = [threading.Thread(target=lambda: got.append(hybrid_for(fresh))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len({id(h.ranker) for h in got}) == 1


def test_a_hybrid_query_during_the_build_gets_clip_results_and_a_notice_not_a_wait(processed_dir, tmp_path):
    from fastapi.testclient import TestClient

    from stylesearch.config import ServeConfig
    from stylesearch.serve.app import create_app

    out = tmp_path / "idx"
    EmbeddingIndex.build(processed_dir, FakeEncoder(), out, IndexConfig(), model_name="fake", progress=False)
    fresh = Searcher.from_index(out, FakeEncoder())
    client = TestClient(create_app(fresh, ServeConfig(warm_hybrid=False)))
    fresh.hybrid._lock.acquire()  # as if another thread were still building the BM25 index
    try:
        during = client.get("/api/search", params={"q": "women red dress", "k": 5, "mode": "hybrid"}).json()
    finally:
        fresh.hybrid._lock.release()
    assert "still being prepared" in during["notice"]
    assert [h["id"] for h in during["hits"]] == [h.id for h in fresh.search("women red dress", k=5)]
    assert not fresh.hybrid.ready  # nobody built it: the request did not start a build while one ran
    first = client.get("/api/search", params={"q": "women red dress", "k": 5, "mode": "hybrid"}).json()
    assert "still being prepared" in first["notice"]  # this one starts the build, and does not wait for it
    deadline = time.monotonic() + 30
    while not fresh.hybrid.ready and time.monotonic() < deadline:
        time.sleep(0.05)
    after = client.get("/api/search", params={"q": "women red dress", "k": 5, "mode": "hybrid"}).json()
    assert after["notice"] is None
    assert [h["id"] for h in after["hits"]] == [h.id for h in search(fresh, "women red dress", k=5, mode="hybrid")]


def test_a_server_builds_the_hybrid_index_in_the_background(processed_dir, tmp_path):
    import time

    from stylesearch.search.hybrid import hybrid_for
    from stylesearch.serve.app import create_app

    out = tmp_path / "idx"
    EmbeddingIndex.build(processed_dir, FakeEncoder(), out, IndexConfig(), model_name="fake", progress=False)
    fresh = Searcher.from_index(out, FakeEncoder())
    create_app(fresh)
    deadline = time.monotonic() + 30
    while not fresh.hybrid.ready and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fresh.hybrid.ready  # before any hybrid query was asked
    assert isinstance(hybrid_for(fresh, wait=False), HybridSearcher)


def test_cli_search_takes_a_mode(processed_dir, tmp_path):
    from typer.testing import CliRunner

    from stylesearch.cli.base import app
    from stylesearch.model.clip import ClipEncoder, tiny_model

    EmbeddingIndex.build(processed_dir, ClipEncoder(tiny_model(seed=0)), tmp_path / "idx", model_name="tiny",
                         progress=False)
    runner = CliRunner()
    args = ["search", "red shirt", "--index", str(tmp_path / "idx"), "--model", "tiny", "-k", "3", "--json"]
    hybrid = runner.invoke(app, [*args, "--mode", "hybrid"])
    assert hybrid.exit_code == 0, hybrid.output
    assert len(__import__("json").loads(hybrid.output)["hits"]) == 3
    wrong = runner.invoke(app, [*args, "--mode", "fuzzy"])
    assert wrong.exit_code == 2 and "mode" in wrong.output


def test_a_query_is_also_read_in_the_catalogue_s_own_words():
    import pandas as pd

    from stylesearch.search.hybrid import Vocabulary, blend_catalogue_wording, catalogue_wording

    products = pd.DataFrame({"articleType": ["Caps", "Dresses", "Tshirts"], "baseColour": ["Yellow", "Red", "Blue"]})
    vocabulary = Vocabulary.from_products(products)
    assert catalogue_wording(vocabulary.parse("yellow cap")) == "Yellow Caps"
    assert catalogue_wording(vocabulary.parse("blue striped tshirt")) == "Blue Tshirts striped"
    assert catalogue_wording(vocabulary.parse("Yellow Caps")) is None  # already the catalogue's words
    assert catalogue_wording(vocabulary.parse("something else")) is None

    def encode(texts):  # a fake text tower: one axis per wording
        return np.array([[1.0, 0.0] if t == "Yellow Caps" else [0.0, 1.0] for t in texts], np.float32)

    vectors = blend_catalogue_wording(encode(["yellow cap", "Yellow Caps"]), ["yellow cap", "Yellow Caps"],
                                      vocabulary, encode)
    assert np.allclose(vectors[0], [2 ** -0.5, 2 ** -0.5])  # the typed and the catalogue wording, averaged
    assert np.allclose(vectors[1], [1.0, 0.0])  # unchanged
