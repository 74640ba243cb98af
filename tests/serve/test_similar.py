"""`/api/products/{id}/similar` pages: `total` and `has_more` count what the answer can hold, never the seed."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fakes import FakeEncoder
from stylesearch.config import IndexConfig, ServeConfig
from stylesearch.index.store import EmbeddingIndex
from stylesearch.search.searcher import Searcher
from stylesearch.serve.app import create_app


@pytest.fixture(scope="module")
def searcher(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    out = tmp_path_factory.mktemp("similar") / "idx"
    EmbeddingIndex.build(processed_dir, FakeEncoder(), out, IndexConfig(), model_name="fake", progress=False)
    return Searcher.from_index(out, FakeEncoder())


@pytest.fixture(scope="module")
def client(searcher: Searcher) -> TestClient:
    return TestClient(create_app(searcher, ServeConfig(warm_hybrid=False, watch_index=False)))


def test_the_last_page_of_similar_says_there_is_no_more(client, searcher):
    seed = str(searcher.index.products["id"].iloc[0])
    gender = str(searcher.index.products["gender"].iloc[0])
    same = int((searcher.index.products["gender"] == gender).sum())
    for params, others in [({}, len(searcher) - 1), ({"gender": gender}, same - 1)]:
        last = {**params, "k": 10, "offset": others - 10}  # the last full page of the other products
        body = client.get(f"/api/products/{seed}/similar", params=last).json()
        assert len(body["hits"]) == 10 and body["total"] == others and body["has_more"] is False, params
        assert seed not in [h["id"] for h in body["hits"]]
        before = client.get(f"/api/products/{seed}/similar", params={**last, "offset": others - 11}).json()
        assert before["has_more"] is True


def test_a_seed_outside_the_filter_is_not_subtracted(client, searcher):
    products = searcher.index.products
    seed = str(products["id"].iloc[0])
    other = next(g for g in products["gender"].unique() if g != products["gender"].iloc[0])
    n = int((products["gender"] == other).sum())
    body = client.get(f"/api/products/{seed}/similar", params={"gender": other, "k": 5, "offset": n - 5}).json()
    assert body["total"] == n and len(body["hits"]) == 5 and body["has_more"] is False
    assert searcher.count({"gender": other}, excluding=seed) == n
    assert searcher.count(excluding=seed) == len(searcher) - 1
    assert searcher.count(excluding="no such id") == len(searcher)
