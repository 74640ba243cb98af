"""The API behind the shop page's honesty and comfort: no-match answers, suggestions, sorting, photo ids, limits."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from test_serve import png

from fakes import FakeEncoder
from stylesearch.config import IndexConfig, PrepareConfig, ServeConfig
from stylesearch.data.prepare import PrepareReport, load_processed, write_processed
from stylesearch.index.store import EmbeddingIndex
from stylesearch.search.hybrid import hybrid_for
from stylesearch.search.relevance import chance_score, good_match, known_words, null_queries
from stylesearch.search.searcher import Searcher
from stylesearch.search.sorting import SORT_DEPTH, SortKey, parse_sort, sort_hits
from stylesearch.search.suggest import Suggester
from stylesearch.serve.app import create_app
from stylesearch.serve.guard import size_text
from stylesearch.serve.uploads import UploadStore


@pytest.fixture(scope="module")
def searcher(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    """The drawn catalogue with a price column, as a CSV would give it (text cells holding numbers)."""
    work = tmp_path_factory.mktemp("shop")
    frame = load_processed(processed_dir).frame.copy()
    frame["price"] = [f"{9.5 + (i * 7) % 40 * 2.5:.2f}" if i % 11 else None for i in range(len(frame))]
    write_processed(frame, PrepareReport(source="test", rows_in=len(frame), rows_out=len(frame), split_sizes={}),
                    PrepareConfig(), work / "catalog")
    EmbeddingIndex.build(work / "catalog", FakeEncoder(), work / "index", IndexConfig(kind="flat"),
                         model_name="fake", progress=False)
    return Searcher.from_index(work / "index", encoder=FakeEncoder())


@pytest.fixture(scope="module")
def client(searcher: Searcher) -> TestClient:
    app = create_app(searcher, ServeConfig(watch_index=False))
    hybrid_for(searcher)
    return TestClient(app)


# --- honest results -------------------------------------------------------------------------------

def test_gibberish_is_no_match_and_gets_suggestions_from_the_catalogue(client, searcher):
    body = client.get("/api/search", params={"q": "asdkjhqwe", "k": 24}).json()
    assert body["match"] is False
    assert body["suggestions"], "a query that found nothing offers something to try"
    products = searcher.index.products
    pairs = set(products["baseColour"] + " " + products["articleType"])
    assert set(body["suggestions"]) <= pairs  # colour + type pairs the catalogue really has
    assert body["total"] == len(searcher)  # the count stays the count that passes the filters


@pytest.mark.parametrize("mode", ["hybrid", "clip"])
def test_a_real_query_is_a_match_in_both_modes(client, mode):
    body = client.get("/api/search", params={"q": "red shirt", "mode": mode}).json()
    assert body["match"] is True and body["suggestions"] == []


def test_a_corrected_typo_is_judged_on_what_was_searched(client):
    body = client.get("/api/search", params={"q": "red shrts"}).json()
    assert body["corrected"] and body["match"] is True


def test_later_pages_do_not_judge_again(client):
    assert client.get("/api/search", params={"q": "asdkjhqwe", "offset": 10}).json()["match"] is None
    assert client.post("/api/search/image", files={"file": ("p.png", png(), "image/png")}).json()["match"] is None


def test_chance_level_is_what_random_strings_reach(searcher):
    # The fake encoder maps words naming no colour to an axis no image has: chance scores 0 here.
    queries = null_queries()
    assert len(set(queries)) == len(queries) == 32 and all(q.isalpha() and q.islower() for q in queries)
    vectors = FakeEncoder().encode_texts(queries)
    assert chance_score(searcher) == pytest.approx(float((searcher.index.matrix() @ vectors.T).max()))
    red = searcher.search("red", k=3)
    assert good_match(searcher, "qqqq red", red)  # a catalogue word
    nothing = searcher.search("zzqxv", k=3)
    assert not good_match(searcher, "zzqxv", nothing) and not good_match(searcher, "zzqxv", [])
    assert known_words(searcher, "the Shirts of zzqxv") == ["shirts"]  # stop words say nothing


# --- suggestions ------------------------------------------------------------------------------------

def test_suggestions_complete_types_before_titles(client, searcher):
    body = client.get("/api/suggest", params={"q": "dre"}).json()
    first = body["suggestions"][0]
    assert first["text"] == "Dresses" and first["kind"] == "type"
    assert first["count"] == int((searcher.index.products["articleType"] == "Dresses").sum())
    kinds = [s["kind"] for s in body["suggestions"]]
    assert "product" in kinds and kinds.index("product") > kinds.index("type")
    assert all(kinds[i] != "product" or k == "product" for i, k in enumerate(kinds[:-1]) for k in kinds[i + 1:])


def test_every_word_typed_must_begin_a_word_of_each_suggestion(client):
    found = client.get("/api/suggest", params={"q": "red sh", "limit": 20}).json()["suggestions"]
    assert found and found[0]["text"] in {"Red Shirts", "Red Shorts"} and found[0]["kind"] == "colour and type"
    for s in found:
        words = s["text"].lower().replace("-", " ").split()
        assert any(w.startswith("red") for w in words) and any(w.startswith("sh") for w in words)
    assert client.get("/api/suggest", params={"q": "xqzj"}).json()["suggestions"] == []


def test_brands_come_from_title_first_words():
    import pandas as pd

    titles = ["Puma Men Red Tshirts", "Puma Women Blue Tshirts", "Puma Men Black Caps", "Men Grey Tshirts",
              "Men Blue Jeans", "Men Red Caps", "Nike Men Caps"]
    frame = pd.DataFrame({"title": titles, "gender": ["Men"] * 7, "articleType": ["Tshirts"] * 7,
                          "baseColour": ["Red"] * 7})
    suggester = Suggester(frame)
    assert [(s.text, s.kind, s.count) for s in suggester.suggest("pu", 1)] == [("Puma", "brand", 3)]
    assert all(s.kind != "brand" for s in suggester.suggest("men", 20))  # a gender value, not a brand
    assert suggester.suggest("ni", 5)[0].kind == "product"  # one title is not a brand


def test_suggest_refuses_bad_parameters(client):
    assert client.get("/api/suggest").status_code == 422
    assert client.get("/api/suggest", params={"q": "x" * 101}).status_code == 422
    assert client.get("/api/suggest", params={"q": "a", "limit": 0}).status_code == 422


# --- sort -------------------------------------------------------------------------------------------

def prices(body) -> list[float]:
    return [h["attributes"]["price"] for h in body["hits"]]


def test_text_search_sorts_its_best_matches_by_a_numeric_column(client, searcher):
    relevance = client.get("/api/search", params={"q": "red shirt", "k": 100}).json()
    cheap = client.get("/api/search", params={"q": "red shirt", "k": 100, "sort": "price"}).json()
    dear = client.get("/api/search", params={"q": "red shirt", "k": 100, "sort": "-price"}).json()
    assert cheap["sort"] == "price" and relevance["sort"] == "relevance"
    assert cheap["total"] == min(SORT_DEPTH, len(searcher)) and "sorted by price" in cheap["notice"]
    known = [p for p in prices(cheap) if p is not None]
    assert known == sorted(known) and prices(cheap)[len(known):] == [None] * (len(prices(cheap)) - len(known))
    dear_known = [p for p in prices(dear) if p is not None]
    assert dear_known == sorted(dear_known, reverse=True) and dear_known[0] > known[0]
    assert [h["rank"] for h in cheap["hits"]] == list(range(1, len(cheap["hits"]) + 1))


def test_sorting_reorders_the_best_matches_only(client, monkeypatch):
    import stylesearch.serve.app as app_module

    monkeypatch.setattr(app_module, "SORT_DEPTH", 30)
    best = client.get("/api/search", params={"q": "red shirt", "k": 30}).json()["hits"]
    body = client.get("/api/search", params={"q": "red shirt", "k": 100, "sort": "price"}).json()
    assert body["total"] == 30 and not body["has_more"]
    assert {h["id"] for h in body["hits"]} == {h["id"] for h in best}  # the same matches, reordered
    assert [h["id"] for h in body["hits"]] != [h["id"] for h in best]


def test_sorted_pages_continue_each_other(client):
    both = client.get("/api/search", params={"q": "blue", "k": 20, "sort": "-price"}).json()["hits"]
    first = client.get("/api/search", params={"q": "blue", "k": 10, "sort": "-price"}).json()["hits"]
    second = client.get("/api/search", params={"q": "blue", "k": 10, "offset": 10, "sort": "-price"}).json()
    assert [h["id"] for h in first + second["hits"]] == [h["id"] for h in both]
    assert second["hits"][0]["rank"] == 11


def test_browsing_sorts_every_product_that_passes(client, searcher):
    body = client.get("/api/products", params={"gender": "Women", "k": 5, "sort": "price"}).json()
    frame = searcher.index.products
    women = frame[frame["gender"] == "Women"]
    assert body["hits"][0]["attributes"]["price"] == women["price"].min()
    assert body["total"] == len(women)


def test_an_unknown_sort_is_a_400_naming_the_choices(client):
    response = client.get("/api/search", params={"q": "red", "sort": "colour"})
    assert response.status_code == 400 and "price" in response.json()["detail"] and "-year" in response.json()["detail"]


def test_sort_helpers_keep_ties_in_relevance_order(searcher):
    hits = searcher.search("red", k=30)
    assert parse_sort(None, ["price"]) == SortKey() and parse_sort("-price", ["price"]) == SortKey("price", True)
    ordered = sort_hits(hits, SortKey("year"))
    for a, b in zip(ordered, ordered[1:], strict=False):
        ya, yb = a.attributes["year"], b.attributes["year"]
        assert ya < yb or (ya == yb and [h.id for h in hits].index(a.id) < [h.id for h in hits].index(b.id))


# --- photo searches by id ---------------------------------------------------------------------------

def test_a_photo_search_gets_an_id_that_repeats_it_without_the_upload(client):
    green = {"file": ("g.png", png((40, 150, 60)), "image/png")}
    posted = client.post("/api/search/image", params={"k": 6}, files=green)
    body = posted.json()
    assert len(body["upload_id"]) == 32
    again = client.get(f"/api/search/image/{body['upload_id']}", params={"k": 6}).json()
    assert [h["id"] for h in again["hits"]] == [h["id"] for h in body["hits"]]
    assert again["hits"][0]["attributes"]["baseColour"] == "Green" and again["upload_id"] == body["upload_id"]
    more = client.get(f"/api/search/image/{body['upload_id']}", params={"k": 3, "offset": 3, "gender": "Men"}).json()
    assert more["offset"] == 3 and all(h["attributes"]["gender"] == "Men" for h in more["hits"])
    thumb = client.get(f"/api/uploads/{body['upload_id']}/thumbnail")
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 160


def test_an_unknown_or_malformed_upload_id_is_a_404_that_says_what_to_do(client):
    for upload_id in ["0" * 32, "x"]:
        response = client.get(f"/api/search/image/{upload_id}")
        assert response.status_code == 404 and "search by the photo again" in response.json()["detail"]
    assert client.get("/api/search/image/../../etc/passwd").status_code == 404
    assert client.get(f"/api/uploads/{'0' * 32}/thumbnail").status_code == 404


def test_uploads_expire_after_their_last_use_and_the_oldest_go_first():
    now = [0.0]
    store = UploadStore(ttl_s=10, capacity=2, clock=lambda: now[0])
    image = Image.new("RGB", (30, 40), (1, 2, 3))
    first = store.put(b"one", image, np.ones(3), "fp")
    assert store.put(b"one", image, np.ones(3), "fp") == first and len(store) == 1  # the same photo, one entry
    now[0] = 8
    assert store.get(first) is not None  # used: lives 10 s more
    now[0] = 15
    assert store.get(first) is not None
    now[0] = 26
    assert store.get(first) is None
    a, b, c = (store.put(d, image, np.ones(3), "fp") for d in (b"a", b"b", b"c"))
    assert store.get(a) is None and store.get(b) and store.get(c)


# --- small things -----------------------------------------------------------------------------------

def test_upload_limits_are_said_in_megabytes(searcher):
    small = TestClient(create_app(searcher, ServeConfig(watch_index=False, warm_hybrid=False,
                                                        max_upload_bytes=1024 * 1024)))
    big = b"\x89PNG\r\n\x1a\n" + b"0" * (1024 * 1024 + 10)
    response = small.post("/api/search/image", files={"file": ("big.png", big, "image/png")})
    assert response.status_code == 413 and response.json()["detail"] == "the photo is over the 1 MB limit"
    assert size_text(10 * 1024 * 1024) == "10 MB" and size_text(65536) == "64 KB" and size_text(1536 * 1024) == "1.5 MB"


def test_the_openapi_schema_lists_the_new_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/suggest", "/api/search/image/{upload_id}", "/api/uploads/{upload_id}/thumbnail"} <= set(paths)
    names = [p["name"] for p in paths["/api/search"]["get"]["parameters"]]
    assert "sort" in names



def test_more_like_this_sorts_too_and_never_holds_the_product(client, searcher):
    pid = searcher.search("red", k=1)[0].id
    body = client.get(f"/api/products/{pid}/similar", params={"k": 40, "sort": "-year"}).json()
    years = [h["attributes"]["year"] for h in body["hits"]]
    assert years == sorted(years, reverse=True) and body["sort"] == "-year"
    assert pid not in {h["id"] for h in body["hits"]}
