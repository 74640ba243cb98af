"""Composed queries: reading an edit against the catalogue, the vector arithmetic, the CLI and the HTTP API."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fakes import COLOUR_NAMES
from stylesearch.cli.base import app
from stylesearch.config import ComposeConfig, ServeConfig
from stylesearch.curate.compose import combine, compose_query, parse_changes, read_edit, similar_edited
from stylesearch.curate.measure import colour_pairs, compose_recall
from stylesearch.errors import QueryError
from stylesearch.search.searcher import Searcher, UnknownProductError
from stylesearch.serve.app import create_app

VALUES = {"baseColour": ["Blue", "Navy Blue", "Red"], "articleType": ["Dresses", "Tshirts"], "gender": ["Men", "Women"]}


@pytest.mark.parametrize(("edit", "expected"), [
    ("in red", {"baseColour": "Red"}),
    ("but navy blue", {"baseColour": "Navy Blue"}),  # the longer value wins its words
    ("a red dress for women", {"baseColour": "Red", "articleType": "Dresses", "gender": "Women"}),
    ("cheaper", {}),
])
def test_an_edit_is_read_against_the_catalogue_values(edit: str, expected: dict[str, str]):
    assert parse_changes(edit, VALUES, ("baseColour", "articleType", "gender")) == expected


def test_the_edited_words_replace_the_items_own():
    item = {"gender": "Men", "baseColour": "Blue", "articleType": "Tshirts"}
    edit = read_edit("in red", item, VALUES)
    assert (edit.old, edit.new) == ("Men Blue Tshirts", "Men Red Tshirts")
    unknown = read_edit("with a hood", item, VALUES)
    assert unknown.changes == {} and unknown.new == "Men Blue Tshirts with a hood"
    with pytest.raises(QueryError):
        read_edit("   ", item, VALUES)


def test_combine_is_the_weighted_sum_normalised():
    image, new, old = np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.array([0, 0, 1.0])
    got = combine(image, new, old, ComposeConfig(w_delta=2.0, w_text=1.0))
    expected = np.array([1.0, 3.0, -2.0]) / np.sqrt(14)
    assert np.allclose(got, expected)
    assert np.allclose(combine(image, new, old, ComposeConfig(w_delta=0.0, w_text=0.0)), image)


def blue_item(searcher: Searcher) -> str:
    """A blue product; for the fake, one whose picture reads blue (a striped one's centre pixel may not)."""
    products = searcher.index.products
    rows = np.flatnonzero(products["baseColour"] == "Blue")
    blue = searcher.encoder.encode_texts(["Blue"])[0]
    looks_blue = [r for r in rows if np.allclose(searcher.index.vectors([r])[0], blue)]
    return str(products["id"].iloc[(looks_blue or list(rows))[0]])


def reads_as(searcher: Searcher, ids: list[str]) -> set[str]:
    """The colours the fake encoder sees in these products' pictures."""
    rows = [int(np.flatnonzero(searcher.index.products["id"].astype(str) == i)[0]) for i in ids]
    names = [*COLOUR_NAMES, "?"]
    return {names[int(np.argmax(v))] for v in searcher.index.vectors(rows)}


def test_like_this_in_red_finds_red_products(fake_searcher: Searcher):
    item = blue_item(fake_searcher)
    hits = similar_edited(fake_searcher, item, "in red", k=5)
    plain = fake_searcher.similar(item, k=5)
    assert reads_as(fake_searcher, [h.id for h in hits]) == {"Red"}  # the fake's image vectors are the colour
    assert reads_as(fake_searcher, [h.id for h in plain]) == {"Blue"}
    assert item not in [h.id for h in similar_edited(fake_searcher, item, "in blue", k=20)]
    assert [h.rank for h in similar_edited(fake_searcher, item, "in red", k=3, offset=2)] == [3, 4, 5]


def test_composed_query_with_the_tiny_model(tiny_searcher: Searcher):
    item = blue_item(tiny_searcher)
    vector, edit = compose_query(tiny_searcher, item, "in red")
    assert edit.changes == {"baseColour": "Red"} and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    row = int(np.flatnonzero(tiny_searcher.index.products["id"].astype(str) == item)[0])
    image = tiny_searcher.index.vectors([row])
    assert not np.allclose(vector, image[0])  # the edit moved the query
    hits = similar_edited(tiny_searcher, item, "in red", k=10, filters={"gender": "Men"})
    assert hits and all(h.attributes["gender"] == "Men" and h.id != item for h in hits)
    with pytest.raises(UnknownProductError):
        similar_edited(tiny_searcher, "no-such-id", "in red")


def test_http_similar_takes_an_edit(fake_searcher: Searcher):
    client = TestClient(create_app(fake_searcher, ServeConfig(warm_hybrid=False, watch_index=False)))
    item = blue_item(fake_searcher)
    body = client.get(f"/api/products/{item}/similar", params={"edit": "in red", "k": 4}).json()
    assert reads_as(fake_searcher, [h["id"] for h in body["hits"]]) == {"Red"} and body["query"] == "in red"
    assert [h["id"] for h in body["hits"]] == [h.id for h in similar_edited(fake_searcher, item, "in red", k=4)]
    plain = client.get(f"/api/products/{item}/similar", params={"k": 4}).json()
    assert reads_as(fake_searcher, [h["id"] for h in plain["hits"]]) == {"Blue"}
    assert client.get(f"/api/products/{item}/similar", params={"edit": "x" * 500}).status_code == 422


def test_cli_search_like_with_an_edit(tiny_index, tiny_searcher: Searcher):
    item = blue_item(tiny_searcher)
    result = CliRunner().invoke(app, ["search", "--index", str(tiny_index), "--like", item, "in red", "-k", "5",
                                      "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    expected = [h.id for h in similar_edited(tiny_searcher, item, "in red", k=5)]
    assert [h["id"] for h in payload["hits"]] == expected and payload["query"] == f"like {item}, in red"


def test_compose_recall_counts_type_gender_and_the_new_colour():
    frame = pd.DataFrame({"articleType": ["T", "T", "T", "S"], "gender": ["M", "M", "M", "M"],
                          "baseColour": ["Blue", "Red", "Red", "Red"]})
    images = np.eye(4, dtype=np.float32)
    pairs = [(0, 1)]
    got = compose_recall(frame, images, {"right": images[[2]], "wrong": images[[3]]}, pairs, ks=(1,))
    assert got["right"]["R@1"] == 1.0 and got["wrong"]["R@1"] == 0.0
    assert colour_pairs(frame, 5) == [(0, 1), (0, 2), (1, 0), (2, 0)]
