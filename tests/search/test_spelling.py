"""Typo tolerance: query words the catalogue does not use are corrected to close ones it does."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stylesearch.config import ServeConfig
from stylesearch.model.clip import ClipEncoder, tiny_model
from stylesearch.search.modes import run
from stylesearch.search.searcher import Searcher
from stylesearch.search.spelling import Speller
from stylesearch.serve.app import create_app

TITLES = ["Red Dress", "Blue Dress", "Nike Men White Sneakers", "Puma Sneakers", "Black Watch", "Titan Watch",
          "Women Tshirt", "Men Tshirt", "Red Dress", "Sneakers Grey", "tee tee", "Black Watch"]


@pytest.fixture(scope="module")
def searcher_with_catalogue(tiny_index: Path) -> Searcher:
    return Searcher.from_index(tiny_index, ClipEncoder(tiny_model(seed=0)))


def test_close_words_are_corrected_and_known_ones_kept():
    speller = Speller(TITLES)
    assert speller.correct("red drss") == "red dress"
    assert speller.correct("sneekers") == "sneakers"
    assert speller.correct("Blak Watch") == "Black Watch"  # the user's capitals are kept
    assert speller.correct("black watch") is None  # nothing to correct
    assert speller.correct("red dresses and watches") is None  # plurals of known words are known
    assert speller.correct("tea 2012 size 42") is None  # short words, numbers: never touched
    assert speller.correct("qwertyuiop") is None  # nothing close enough: left as typed


def test_the_api_says_what_it_searched_for(searcher_with_catalogue):
    searcher = searcher_with_catalogue
    word = next(w for w in searcher.index.products["title"].str.lower().str.split().explode() if len(w) >= 6)
    typo = word[:2] + word[3:]  # one letter dropped
    client = TestClient(create_app(searcher, ServeConfig(warm_hybrid=False, watch_index=False)))
    body = client.get("/api/search", params={"q": typo, "k": 5, "mode": "clip"}).json()
    assert body["corrected"] == word and f"showing results for “{word}”" in body["notice"]
    as_typed = client.get("/api/search", params={"q": typo, "k": 5, "mode": "clip", "correct": "false"}).json()
    assert as_typed["corrected"] is None and as_typed["notice"] is None
    assert [h.id for h in run(searcher, word, k=5, mode="clip").hits] == [h["id"] for h in body["hits"]]


def test_cli_prints_the_correction_and_exact_turns_it_off(searcher_with_catalogue, tiny_index):
    from stylesearch.cli import app

    word = next(w for w in searcher_with_catalogue.index.products["title"].str.lower().str.split().explode()
                if len(w) >= 6)
    typo = word[:2] + word[3:]
    args = ["search", typo, "--index", str(tiny_index), "--model", "tiny", "-k", "3", "--mode", "clip"]
    said = CliRunner().invoke(app, args)
    assert said.exit_code == 0 and f"showing results for “{word}”" in said.output
    exact = CliRunner().invoke(app, [*args, "--exact"])
    assert exact.exit_code == 0 and "showing results for" not in exact.output
