"""Searcher: exact order with a known encoder, exact filters, errors, paging, images and the older API."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fakes import FakeEncoder
from stylesearch.config import IndexConfig
from stylesearch.data.images import decode_image
from stylesearch.errors import ManifestMismatchError, QueryError
from stylesearch.index.store import EmbeddingIndex
from stylesearch.model.clip import ClipEncoder, tiny_model
from stylesearch.search.filters import parse_filters, parse_year_range
from stylesearch.search.legacy import load_embeddings, search_products
from stylesearch.search.searcher import Hit, Searcher, UnknownProductError


@pytest.fixture(scope="module")
def index_dir(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("search") / "idx"
    EmbeddingIndex.build(processed_dir, FakeEncoder(), out, IndexConfig(), model_name="fake", progress=False)
    return out


@pytest.fixture(scope="module")
def searcher(index_dir: Path) -> Searcher:
    return Searcher.from_index(index_dir, FakeEncoder())


def expected_ids(searcher: Searcher, query: str, k: int, rows: np.ndarray | None = None) -> list[str]:
    """Brute force over the stored vectors: best score first, ties to the earlier row."""
    vectors = searcher.index.vectors()
    scores = vectors @ FakeEncoder().encode_texts([query])[0]
    rows = np.arange(len(vectors)) if rows is None else rows
    order = rows[np.lexsort((rows, -scores[rows]))][:k]
    return searcher.index.products["id"].iloc[order].tolist()


def image_colours(searcher: Searcher) -> np.ndarray:
    return np.argmax(searcher.index.vectors(), axis=1)


# --- order -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["red", "Navy Blue shirt", "a green dress", "no colour words"])
def test_search_returns_exactly_the_brute_force_order(searcher: Searcher, query: str):
    hits = searcher.search(query, k=25)
    assert [h.id for h in hits] == expected_ids(searcher, query, 25)
    assert [h.rank for h in hits] == list(range(1, 26))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))


def test_every_red_picture_comes_before_anything_else(searcher: Searcher):
    red = int(np.sum(image_colours(searcher) == list(FakeEncoder().encode_texts(["red"])[0]).index(1.0)))
    hits = searcher.search("red", k=red + 3)
    assert [h.score for h in hits] == [100.0] * red + [0.0] * 3  # CLIP score: 100 x cosine


def test_search_vector_takes_a_ready_embedding(searcher: Searcher):
    vector = FakeEncoder().encode_texts(["grey"])[0]
    assert searcher.search_vector(vector, k=8) == searcher.search("grey", k=8)
    with pytest.raises(QueryError, match="cannot search"):
        searcher.search_vector(np.ones(3, np.float32))


def test_paging_with_offset_continues_the_same_ranking(searcher: Searcher):
    first, second = searcher.search("blue", k=5), searcher.search("blue", k=5, offset=5)
    assert first + second == searcher.search("blue", k=10)
    assert [h.rank for h in second] == [6, 7, 8, 9, 10]


def test_hit_carries_title_and_attributes(searcher: Searcher):
    hit = searcher.search("pink", k=1)[0]
    assert isinstance(hit, Hit) and hit.title == searcher.product(hit.id).title
    assert set(hit.attributes) == {"gender", "masterCategory", "subCategory", "articleType", "baseColour",
                                   "season", "year", "usage"}
    assert isinstance(hit.attributes["year"], int)
    assert hit.to_dict()["id"] == hit.id


# --- filters -----------------------------------------------------------------------------------------


def test_filters_apply_before_top_k_so_few_matches_still_fill_k(searcher: Searcher):
    products = searcher.index.products
    rows = np.flatnonzero((products["articleType"] == "Watches") & (products["gender"] == "Women"))
    assert 3 <= len(rows) < 20  # few matches, none of them red on the picture (watch faces are white)
    hits = searcher.search("red", k=3, filters={"articleType": "Watches", "gender": "Women"})
    assert [h.id for h in hits] == expected_ids(searcher, "red", 3, rows)
    everything = searcher.search("red", k=100, filters={"articleType": "Watches", "gender": "Women"})
    assert sorted(h.id for h in everything) == sorted(products["id"].iloc[rows])


def test_filter_matching_one_product_returns_just_it(searcher: Searcher):
    target = searcher.index.products.iloc[7]
    filters = {c: str(target[c]) for c in ("articleType", "baseColour", "gender", "season")} | {
        "year": int(target["year"])}
    hits = searcher.search("anything", k=10, filters=filters)
    assert target["id"] in [h.id for h in hits]
    assert searcher.count(filters) == len(hits)


def test_year_filters_accept_ranges_and_single_years(searcher: Searcher):
    years = searcher.index.products["year"].astype(int)
    for wanted, lo, hi in [((2011, 2012), 2011, 2012), ("2011-2012", 2011, 2012), ("2015-", 2015, 9999),
                           ("-2012", 0, 2012), (2017, 2017, 2017), ("2015", 2015, 2015)]:
        hits = searcher.search("red", k=200, filters={"year": wanted})
        assert len(hits) == int(((years >= lo) & (years <= hi)).sum()), wanted
        assert all(lo <= h.attributes["year"] <= hi for h in hits)


def test_a_list_means_any_of_and_values_ignore_case(searcher: Searcher):
    products = searcher.index.products
    n = int(products["articleType"].isin(["Jeans", "Caps"]).sum())
    assert searcher.count({"articleType": ["jeans", "Caps"]}) == n
    hits = searcher.search("blue", k=n, filters={"articleType": ["Jeans", "caps"]})
    assert {h.attributes["articleType"] for h in hits} == {"Jeans", "Caps"}


def test_unknown_filter_column_lists_the_valid_ones(searcher: Searcher):
    with pytest.raises(QueryError, match="unknown filter column 'colour'.*gender.*baseColour.*year"):
        searcher.search("red", filters={"colour": "Red"})


def test_unknown_filter_value_says_so(searcher: Searcher):
    with pytest.raises(QueryError, match="unknown value 'Purple' for filter baseColour"):
        searcher.search("red", filters={"baseColour": "Purple"})
    with pytest.raises(QueryError, match="did you mean Navy Blue"):
        searcher.count({"baseColour": "Navy Blu"})
    with pytest.raises(QueryError, match="year filter"):
        searcher.count({"year": "last year"})


def test_facets_count_values_over_filters_or_over_a_query(searcher: Searcher):
    facets = searcher.facets(filters={"gender": "Women"})
    assert set(facets) == set(searcher.filter_columns)
    assert facets["gender"] == {"Women": searcher.count({"gender": "Women"})}
    top = searcher.facets("red", top=10)
    assert sum(top["articleType"].values()) == 10
    assert sum(facets["year"].values()) == searcher.count({"gender": "Women"})


# --- queries that cannot be answered as asked -----------------------------------------------------------


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_an_empty_query_is_a_clear_error(searcher: Searcher, query: str):
    with pytest.raises(QueryError, match="empty query"):
        searcher.search(query)


def test_a_query_longer_than_the_context_is_truncated_with_a_notice(tiny_index: Path, caplog):
    searcher = Searcher.from_index(tiny_index, ClipEncoder(tiny_model(seed=0)))
    long = " ".join(["red cotton shirt with long sleeves"] * 30)
    with caplog.at_level(logging.WARNING, logger="stylesearch.search.searcher"):
        hits = searcher.search(long, k=3)
    assert len(hits) == 3 and "the model reads 77" in (searcher.last_notice or "")
    assert "truncat" in caplog.text or "ignored" in caplog.text
    assert searcher.truncation_notice(long) == searcher.last_notice
    searcher.search("red shirt", k=3)
    assert searcher.last_notice is None
    # Byte-level BPE: 30 hieroglyphs are only 30 characters but 120 tokens, and still get the notice.
    assert "the model reads 77" in (searcher.truncation_notice("\U00013000" * 30) or "")


def test_an_index_built_with_another_model_is_refused(tiny_index: Path, index_dir: Path):
    with pytest.raises(ManifestMismatchError, match="built with model 'tiny'"):
        Searcher.from_index(tiny_index, ClipEncoder(tiny_model(seed=1)))
    with pytest.raises(ManifestMismatchError, match="fingerprint"):
        Searcher.from_index(index_dir, ClipEncoder(tiny_model(seed=0)))


def test_with_no_encoder_the_manifest_model_is_loaded(tiny_index: Path):
    searcher = Searcher.from_index(tiny_index)
    assert searcher.encoder.fingerprint == searcher.manifest["model"]["fingerprint"]
    assert len(searcher.search("black watch", k=4)) == 4


# --- by picture and by product ---------------------------------------------------------------------------


def test_search_image_accepts_pil_bytes_and_paths(searcher: Searcher, tmp_path: Path):
    pid = searcher.search("green", k=1)[0].id
    data = searcher.image_bytes(pid)
    path = tmp_path / "query.jpg"
    path.write_bytes(data)
    by_bytes = searcher.search_image(data, k=5)
    assert by_bytes == searcher.search_image(path, k=5) == searcher.search_image(str(path), k=5)
    assert by_bytes == searcher.search_image(decode_image(data), k=5)
    assert by_bytes[0].score == 100.0 and pid in [h.id for h in searcher.search_image(data, k=200)]


def test_a_bad_query_image_is_an_error(searcher: Searcher, tmp_path: Path):
    with pytest.raises(QueryError, match="cannot read image"):
        searcher.search_image(tmp_path / "missing.jpg")
    with pytest.raises(Exception, match="not an image"):
        searcher.search_image(b"not a jpeg")


def test_similar_excludes_the_product_itself(searcher: Searcher):
    pid = searcher.index.products["id"].iloc[0]
    hits = searcher.similar(pid, k=10)
    assert pid not in [h.id for h in hits] and len(hits) == 10
    colour = image_colours(searcher)[0]
    same = int(np.sum(image_colours(searcher) == colour)) - 1
    assert [h.score for h in hits[: min(same, 10)]] == [100.0] * min(same, 10)
    assert all(h.attributes["gender"] == "Men" for h in searcher.similar(pid, k=5, filters={"gender": "Men"}))


def test_unknown_product_id_is_a_key_error_and_a_query_error(searcher: Searcher):
    for call in (searcher.similar, searcher.product, searcher.image_bytes):
        with pytest.raises(UnknownProductError, match="unknown product id 'nope'") as info:
            call("nope")
        assert isinstance(info.value, KeyError) and isinstance(info.value, QueryError)


def test_product_and_image_bytes_come_from_the_catalogue(searcher: Searcher, processed_dir: Path):
    from stylesearch.data.prepare import load_processed

    frame = load_processed(processed_dir).frame
    row = frame.iloc[11]
    assert searcher.product(str(row["id"])).title == row["title"]
    assert searcher.image_bytes(str(row["id"])) == bytes(row["image"])
    assert isinstance(decode_image(searcher.image_bytes(str(row["id"]))), Image.Image)


# --- parsing -----------------------------------------------------------------------------------------------


def test_parse_filters_and_year_ranges():
    assert parse_filters(["gender=Women", "baseColour=Black,Blue", "year=2011-2013", "gender=Men"]) == {
        "gender": ["Women", "Men"], "baseColour": ["Black", "Blue"], "year": "2011-2013"}
    assert parse_year_range("2011-2013") == (2011, 2013)
    assert parse_year_range("2011-") == (2011, None) and parse_year_range("-2013") == (None, 2013)
    assert parse_year_range((None, 2012)) == (None, 2012) and parse_year_range(2012) == (2012, 2012)
    with pytest.raises(QueryError, match="column=value"):
        parse_filters(["gender"])
    with pytest.raises(QueryError, match="empty"):
        parse_year_range("2013-2011")


# --- the older API -------------------------------------------------------------------------------------------


def test_load_embeddings_gives_the_older_dict(index_dir: Path, searcher: Searcher):
    data = load_embeddings(index_dir)
    assert set(data) >= {"embeddings", "image_names", "dataframe"}
    assert data["embeddings"].shape == (len(searcher), FakeEncoder.dim)
    assert data["image_names"] == searcher.index.products["id"].tolist()
    assert isinstance(data["dataframe"], pd.DataFrame) and len(data["dataframe"]) == len(searcher)


def test_search_products_matches_the_searcher(index_dir: Path, searcher: Searcher, tiny_index: Path):
    data = load_embeddings(index_dir)
    results = search_products("navy blue", FakeEncoder(), None, data["embeddings"], data["image_names"],
                              data["dataframe"], top_k=7)
    assert [r["id"] for r in results] == [h.id for h in searcher.search("navy blue", k=7)]
    assert {"rank", "id", "title", "score", "articleType"} <= set(results[0])

    tiny = tiny_model(seed=0)
    data = load_embeddings(tiny_index)
    results = search_products("black watch", tiny.model, tiny.processor, data["embeddings"], data["image_names"],
                              data["dataframe"], top_k=5)
    hits = Searcher.from_index(tiny_index, ClipEncoder(tiny)).search("black watch", k=5)
    assert [r["id"] for r in results] == [h.id for h in hits]
    np.testing.assert_allclose([r["score"] for r in results], [h.score for h in hits], atol=1e-3)


def test_a_relative_checkpoint_directory_is_found_from_elsewhere(processed_dir: Path, tmp_path: Path, monkeypatch):
    from stylesearch.model.clip import load_encoder

    tiny = tiny_model(seed=0)
    tiny.model.save_pretrained(tmp_path / "ckpt")
    tiny.processor.save_pretrained(tmp_path / "ckpt")
    monkeypatch.chdir(tmp_path)
    EmbeddingIndex.build(processed_dir, load_encoder("ckpt"), "idx", model_name="ckpt", progress=False)
    monkeypatch.chdir(processed_dir)  # "ckpt" means nothing here
    searcher = Searcher.from_index(tmp_path / "idx")
    assert searcher.manifest["model"]["path"] == str((tmp_path / "ckpt").resolve())
    assert len(searcher.search("red shirt", k=3)) == 3
