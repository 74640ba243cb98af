"""`stylesearch index` and `stylesearch search` through Typer's test runner, with the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stylesearch.cli.base import app
from stylesearch.model.clip import ClipEncoder, tiny_model
from stylesearch.search.searcher import Searcher

runner = CliRunner()


@pytest.fixture(scope="module")
def index_dir(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "idx"
    result = runner.invoke(app, ["index", "--catalog", str(processed_dir), "--out", str(out), "--model", "tiny",
                                 "--batch-size", "32", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "index written" in result.output and "embedded 158" in result.output
    return out


@pytest.fixture(scope="module")
def searcher(index_dir: Path) -> Searcher:
    return Searcher.from_index(index_dir, ClipEncoder(tiny_model(seed=0)))


def search(*args: str, input: str | None = None):
    return runner.invoke(app, ["search", *args], input=input)


def test_search_prints_a_table_of_hits(index_dir: Path, searcher: Searcher):
    result = search("black watch", "--index", str(index_dir), "-k", "5")
    assert result.exit_code == 0, result.output
    for header in ("rank", "id", "title", "colour", "type", "gender", "score"):
        assert header in result.output
    hits = default_mode_hits(searcher, "black watch", k=5)
    lines = [line for line in result.output.splitlines() if any(f" {h.id} " in line for h in hits)]
    assert len(lines) == 5
    for hit, line in zip(hits, lines, strict=True):
        assert line.split("│")[1].strip() == str(hit.rank) and hit.id in line and f"{hit.score:.2f}" in line
        assert str(hit.attributes["articleType"]) in line and str(hit.attributes["gender"]) in line


def test_search_json_is_machine_readable(index_dir: Path, searcher: Searcher):
    result = search("red shirt", "--index", str(index_dir), "-k", "3", "--json", "--filter", "gender=Men")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["query"] == "red shirt" and data["k"] == 3 and data["filters"] == {"gender": "Men"}
    assert data["hits"] == [h.to_dict() for h in default_mode_hits(searcher, "red shirt", 3, {"gender": "Men"})]
    assert all(h["attributes"]["gender"] == "Men" for h in data["hits"])


def test_like_and_image_search(index_dir: Path, searcher: Searcher, tmp_path: Path):
    pid = searcher.index.products["id"].iloc[3]
    result = search("--like", pid, "--index", str(index_dir), "-k", "4", "--json")
    assert result.exit_code == 0, result.output
    ids = [h["id"] for h in json.loads(result.output)["hits"]]
    assert ids == [h.id for h in searcher.similar(pid, k=4)] and pid not in ids

    picture = tmp_path / "query.jpg"
    picture.write_bytes(searcher.image_bytes(pid))
    result = search("--image", str(picture), "--index", str(index_dir), "-k", "4", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["hits"][0]["id"] == pid  # its own picture is its nearest neighbour


@pytest.mark.parametrize(("args", "message"), [
    (["red", "--filter", "colour=Red"], "unknown filter column 'colour'"),
    (["red", "--filter", "baseColour=Purple"], "unknown value 'Purple'"),
    (["   "], "empty query"),
    (["--image", "q.jpg", "--like", "10001"], "give one of"),  # words with --like are an edit (issue 17)
    (["--like", "nope"], "unknown product id"),
])
def test_search_errors_exit_2_with_a_message(index_dir: Path, args: list[str], message: str):
    result = search(*args, "--index", str(index_dir))
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_a_missing_index_is_a_clear_error(tmp_path: Path):
    result = search("red", "--index", str(tmp_path))
    assert result.exit_code == 2 and "not a search index" in " ".join(result.output.split())


def test_index_update_reuses_every_unchanged_vector(index_dir: Path, processed_dir: Path):
    result = runner.invoke(app, ["index", "--catalog", str(processed_dir), "--out", str(index_dir), "--model", "tiny",
                                 "--update", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "embedded 0, reused 158" in " ".join(result.output.split())


def test_interactive_prompt_takes_commands_and_queries(index_dir: Path, searcher: Searcher):
    script = ":k 2\n:filter gender=Men\nred shirt\n:filter nope=1\n:clear\n:k x\nblue\n:quit\n"
    result = search("--index", str(index_dir), input=script)
    assert result.exit_code == 0, result.output
    men = default_mode_hits(searcher, "red shirt", 2, {"gender": "Men"})
    assert all(h.id in result.output for h in men)
    assert "filters: gender=Men" in result.output and "unknown filter column 'nope'" in result.output
    assert "filters cleared" in result.output and ":k takes a whole number" in " ".join(result.output.split())
    assert all(h.id in result.output for h in default_mode_hits(searcher, "blue", k=2))


def default_mode_hits(searcher: Searcher, query: str, k: int, filters: dict | None = None) -> list:
    from stylesearch.search.modes import DEFAULT_MODE
    from stylesearch.search.modes import search as search_in_mode

    return search_in_mode(searcher, query, k, filters, mode=DEFAULT_MODE)


def test_text_search_defaults_to_hybrid_and_mode_clip_is_clip_alone(index_dir: Path, searcher: Searcher):
    from stylesearch.search.modes import search as search_in_mode

    query = "black watch"
    clip = [h.id for h in searcher.search(query, k=5)]
    hybrid = [h.id for h in search_in_mode(searcher, query, k=5, mode="hybrid")]
    assert clip != hybrid  # else this test could not tell the modes apart
    by_default = json.loads(search(query, "--index", str(index_dir), "-k", "5", "--json").output)
    as_clip = json.loads(search(query, "--index", str(index_dir), "-k", "5", "--json", "--mode", "clip").output)
    assert [h["id"] for h in by_default["hits"]] == hybrid
    assert [h["id"] for h in as_clip["hits"]] == clip
    some_id = clip[0]
    like = search("--index", str(index_dir), "--like", some_id, "-k", "3", "--json")  # no mode given: CLIP
    assert like.exit_code == 0 and [h["id"] for h in json.loads(like.output)["hits"]] == [
        h.id for h in searcher.similar(some_id, 3)]


def test_interactive_prompt_searches_in_the_mode_asked_for(index_dir: Path, searcher: Searcher):
    from stylesearch.search.modes import search as search_in_mode

    query = "black watch"
    clip = [h.id for h in searcher.search(query, k=5)]
    hybrid = [h.id for h in search_in_mode(searcher, query, k=5, mode="hybrid")]
    assert clip != hybrid  # else this test could not tell the modes apart

    def first_table_ids(output: str, n: int = 5) -> list[str]:
        known = set(clip) | set(hybrid)
        return [w for w in output.replace("│", " ").split() if w in known][:n]

    from_flag = search("--index", str(index_dir), "--mode", "hybrid", input=f"{query}\n:quit\n")
    assert from_flag.exit_code == 0, from_flag.output
    assert "search (10, hybrid)>" in from_flag.output
    assert first_table_ids(from_flag.output) == hybrid
    switched = search("--index", str(index_dir), "-k", "5", input=f":mode hybrid\n{query}\n:mode clip\n{query}\n"
                      ":mode fuzzy\n:quit\n")
    assert switched.exit_code == 0, switched.output
    tables = switched.output.split("mode: ")
    assert first_table_ids(tables[1]) == hybrid and first_table_ids(tables[2]) == clip
    assert "search mode 'fuzzy'" in " ".join(switched.output.split())


def test_an_unknown_mode_is_refused_before_the_prompt_starts(index_dir: Path):
    result = search("--index", str(index_dir), "--mode", "fuzzy", input=":quit\n")
    assert result.exit_code == 2 and "search mode 'fuzzy'" in " ".join(result.output.split())


def test_hybrid_mode_with_a_picture_or_a_product_is_refused_not_ignored(index_dir: Path, searcher: Searcher):
    some_id = searcher.search("shirt", k=1)[0].id
    result = search("--index", str(index_dir), "--mode", "hybrid", "--like", some_id)
    assert result.exit_code == 2 and "applies to text queries" in " ".join(result.output.split())
    prompt = search("--index", str(index_dir), "--mode", "hybrid", input=f":like {some_id}\n:quit\n")
    assert prompt.exit_code == 0 and "applies to text queries" in " ".join(prompt.output.split())
    assert all(h.id in prompt.output for h in searcher.similar(some_id, k=3))


@pytest.mark.slow
def test_index_then_search_on_real_shared_photos(shared_data: Path, tmp_path: Path):
    """The real pipeline on 400 real products: prepare, index with the tiny model, search with filters.

    (The tiny model is untrained here, so this checks the plumbing on real data, not relevance; the
    relevance test with a trained tiny model lives with the training tests.)
    """
    import pandas as pd

    from stylesearch.config import PrepareConfig
    from stylesearch.data.catalog import read_catalog
    from stylesearch.data.prepare import prepare

    pd.read_parquet(shared_data / "dev.parquet").iloc[:400].to_parquet(tmp_path / "real.parquet")
    prepare(read_catalog(tmp_path / "real.parquet"), PrepareConfig(), tmp_path / "catalog")
    result = runner.invoke(app, ["index", "--catalog", str(tmp_path / "catalog"), "--out", str(tmp_path / "idx"),
                                 "--model", "tiny", "--quiet"])
    assert result.exit_code == 0, result.output
    result = search("black watch", "--index", str(tmp_path / "idx"), "-k", "5", "--json",
                    "--filter", "articleType=Watches", "--filter", "year=2000-2020")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)["hits"]
    assert len(hits) == 5 and all(h["attributes"]["articleType"] == "Watches" for h in hits)
