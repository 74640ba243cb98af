"""The filter grammar: number ranges validated where they are parsed, and values matched exactly before
case is ignored."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fakes import FakeEncoder
from stylesearch.config import IndexConfig, PrepareConfig
from stylesearch.data.prepare import PrepareReport, load_processed, write_processed
from stylesearch.errors import QueryError
from stylesearch.index.store import EmbeddingIndex
from stylesearch.search.filters import parse_number_range, parse_year_range
from stylesearch.search.searcher import Searcher

# --- number ranges ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [("20", (20.0, 20.0)), ("10-50", (10.0, 50.0)), ("10..50", (10.0, 50.0)),
                                             ("10-", (10.0, None)), ("-50", (None, 50.0)), ((10, None), (10.0, None)),
                                             ((None, 7.5), (None, 7.5)), ((1, 1), (1.0, 1.0)), (20, (20.0, 20.0))])
def test_good_number_ranges_parse(value, expected):
    assert parse_number_range("price", value) == expected


@pytest.mark.parametrize("value, said", [((50, 10), "range is empty"), ("50-10", "range is empty"),
                                         ((math.nan, 10), "finite number"), ((0, math.inf), "finite number"),
                                         ((-math.inf, None), "finite number"), (("10", "50"), "finite number"),
                                         ((True, 5), "finite number"), ("1" * 400, "finite number"),
                                         ("cheap", "give a number or a range")])
def test_bad_number_ranges_are_query_errors_naming_the_filter(value, said):
    with pytest.raises(QueryError, match=f"filter price=.*{said}"):
        parse_number_range("price", value)


@pytest.mark.parametrize("value", [(2013, 2011), (math.nan, 2012), (2011, math.inf), ("2011", None)])
def test_bad_year_tuples_are_query_errors_too(value):
    with pytest.raises(QueryError, match="year"):
        parse_year_range(value)


# --- values that differ only in case ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cased(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    """An index whose baseColour holds both "Red" and "red" (two catalogues merged, say)."""
    work = tmp_path_factory.mktemp("cased")
    frame = load_processed(processed_dir).frame.copy()
    reds = frame.index[frame["baseColour"] == "Red"]
    assert len(reds) >= 4
    frame.loc[reds[::2], "baseColour"] = "red"
    write_processed(frame, PrepareReport(source="test", rows_in=len(frame), rows_out=len(frame), split_sizes={}),
                    PrepareConfig(), work / "catalog")
    EmbeddingIndex.build(work / "catalog", FakeEncoder(), work / "index", IndexConfig(kind="flat"),
                         model_name="fake", progress=False)
    return Searcher.from_index(work / "index", encoder=FakeEncoder())


def test_an_exact_value_means_itself_when_another_differs_only_in_case(cased: Searcher):
    colours = cased.index.products["baseColour"]
    upper, lower = int((colours == "Red").sum()), int((colours == "red").sum())
    assert upper and lower
    assert cased.count({"baseColour": "Red"}) == upper and cased.count({"baseColour": "red"}) == lower
    assert {h.attributes["baseColour"] for h in cased.search("red", k=50, filters={"baseColour": "red"})} == {"red"}
    assert cased.count({"baseColour": ["Red", "red"]}) == upper + lower
    assert cased.facets()["baseColour"]["Red"] == upper and cased.facets()["baseColour"]["red"] == lower


def test_a_value_with_no_exact_match_takes_every_case_variant(cased: Searcher):
    colours = cased.index.products["baseColour"]
    assert cased.count({"baseColour": "RED"}) == int(colours.isin(["Red", "red"]).sum())
    assert cased.count({"gender": "women"}) == int((cased.index.products["gender"] == "Women").sum())
    with pytest.raises(QueryError, match="unknown value 'Redd'.*did you mean"):
        cased.count({"baseColour": "Redd"})
