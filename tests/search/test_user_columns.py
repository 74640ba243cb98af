"""A catalogue's own columns (price, brand) survive into the index, filter (numbers by range) and show in hits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from fakes import FakeEncoder
from stylesearch.config import IndexConfig, PrepareConfig, ServeConfig
from stylesearch.data.prepare import PrepareReport, load_processed, write_processed
from stylesearch.errors import QueryError
from stylesearch.index.store import EmbeddingIndex
from stylesearch.search.filters import parse_filters
from stylesearch.search.searcher import Searcher
from stylesearch.serve.app import create_app


@pytest.fixture(scope="module")
def searcher(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    work = tmp_path_factory.mktemp("user-columns")
    frame = load_processed(processed_dir).frame.copy()
    # As a CSV delivers them: text cells, numbers among them.
    frame["price"] = [f"{9.5 + (i % 40) * 2.5:.2f}" for i in range(len(frame))]
    frame["brand"] = ["Acme" if i % 3 == 0 else "Brandt" for i in range(len(frame))]
    frame["zip"] = [f"{(i * 37) % 1000:05d}" for i in range(len(frame))]  # codes: "00000", "00037", ...
    frame["sku"] = ["0123" if i % 2 else "4567" for i in range(len(frame))]  # one value in two has the zero
    write_processed(frame, PrepareReport(source="test", rows_in=len(frame), rows_out=len(frame), split_sizes={}),
                    PrepareConfig(), work / "catalog")
    EmbeddingIndex.build(work / "catalog", FakeEncoder(), work / "index", IndexConfig(kind="flat"),
                         model_name="fake", progress=False)
    return Searcher.from_index(work / "index", encoder=FakeEncoder())


def test_user_columns_are_in_the_index_typed(searcher):
    products = searcher.index.products
    assert products["price"].dtype.kind == "f" and not pd.api.types.is_numeric_dtype(products["brand"])
    assert {"price", "brand"} <= set(searcher.filter_columns) and "price" in searcher.numeric_columns


def test_code_like_columns_keep_their_leading_zeros(searcher):
    products = searcher.index.products
    assert not pd.api.types.is_numeric_dtype(products["zip"]) and products["zip"].iloc[1] == "00037"
    assert not pd.api.types.is_numeric_dtype(products["sku"]) and set(products["sku"]) == {"0123", "4567"}
    assert not {"zip", "sku"} & searcher.numeric_columns
    hits = searcher.search("red", k=5, filters=parse_filters(["zip=00037"]))
    assert [h.attributes["zip"] for h in hits] == ["00037"] * len(hits) and hits
    client = TestClient(create_app(searcher, ServeConfig(warm_hybrid=False, watch_index=False)))
    body = client.get("/api/search", params={"q": "red", "k": 3, "sku": "0123", "mode": "clip"}).json()
    assert body["hits"] and all(h["attributes"]["sku"] == "0123" for h in body["hits"])


def test_numbers_filter_by_range_and_strings_exactly(searcher):
    prices = searcher.index.products["price"].to_numpy()
    hits = searcher.search("red", k=50, filters=parse_filters(["price=20-30", "brand=acme"]))
    assert hits and all(20 <= h.attributes["price"] <= 30 and h.attributes["brand"] == "Acme" for h in hits)
    assert searcher.count(parse_filters(["price=20-30"])) == int(((prices >= 20) & (prices <= 30)).sum())
    assert searcher.count(parse_filters(["price=100-"])) == int((prices >= 100).sum())
    assert searcher.count(parse_filters(["price=-12"])) == int((prices <= 12).sum())
    with pytest.raises(QueryError, match="give a number or a range"):
        searcher.count(parse_filters(["price=cheap"]))


def test_user_columns_reach_the_api_and_facets_skip_numbers(searcher):
    client = TestClient(create_app(searcher, ServeConfig(warm_hybrid=False, watch_index=False)))
    body = client.get("/api/search", params={"q": "red", "k": 5, "price": "10-20", "mode": "clip"}).json()
    assert body["hits"] and all(10 <= h["attributes"]["price"] <= 20 for h in body["hits"])
    assert isinstance(body["hits"][0]["attributes"]["price"], float | int)
    facets = client.get("/api/facets").json()["facets"]
    assert set(facets["brand"]) == {"Acme", "Brandt"} and "price" not in facets
    assert np.isclose(sum(facets["brand"].values()), len(searcher))
