"""A running server picks up a rebuilt index by itself, keeps answering meanwhile, and refuses a wrong one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fakes import FakeEncoder
from stylesearch.config import IndexConfig, PrepareConfig, ServeConfig
from stylesearch.data.prepare import PrepareReport, load_processed, write_processed
from stylesearch.index.store import EmbeddingIndex
from stylesearch.search.searcher import Searcher
from stylesearch.serve.app import create_app
from stylesearch.serve.reload import reload_index


def smaller_catalog(processed_dir: Path, out: Path, drop: int) -> Path:
    frame = load_processed(processed_dir).frame.iloc[drop:].reset_index(drop=True)
    write_processed(frame, PrepareReport(source="test", rows_in=len(frame), rows_out=len(frame), split_sizes={}),
                    PrepareConfig(), out)
    return out


def wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture()
def served(processed_dir: Path, tmp_path: Path):
    index = tmp_path / "index"
    EmbeddingIndex.build(processed_dir, FakeEncoder(), index, IndexConfig(kind="flat"), model_name="fake",
                         progress=False)
    searcher = Searcher.from_index(index, encoder=FakeEncoder())
    app = create_app(searcher, ServeConfig(reload_poll_s=0.1))
    yield app, TestClient(app), index
    app.state.watcher.stop()


def test_a_rebuilt_index_is_served_without_a_restart(served, processed_dir, tmp_path):
    app, client, index = served
    before = client.get("/healthz").json()
    old = app.state.searcher
    total = len(old)
    smaller = smaller_catalog(processed_dir, tmp_path / "smaller", drop=7)
    EmbeddingIndex.build(smaller, FakeEncoder(), index, IndexConfig(kind="flat"), model_name="fake", progress=False)
    wait_for(lambda: len(app.state.searcher) == total - 7)
    assert client.get("/api/search", params={"q": "red", "k": 5}).json()["total"] == total - 7
    assert before["index"]["count"] == total and client.get("/healthz").json()["index"]["count"] == total - 7
    assert app.state.searcher.hybrid.ready  # hybrid was built before the swap: no CLIP-only answers meanwhile
    assert len(old.search("red", k=3)) == 3  # a request still holding the old snapshot finishes on it
    assert app.state.watcher.reloads == 1


def test_an_index_of_another_model_is_refused_and_the_old_one_keeps_serving(served, processed_dir, caplog):
    app, client, index = served

    class Other(FakeEncoder):
        fingerprint = "another-model"

    old = app.state.searcher
    EmbeddingIndex.build(processed_dir, Other(), index, IndexConfig(kind="flat"), model_name="other",
                         progress=False)
    assert reload_index(app.state) is False
    assert app.state.searcher is old and "not reloading" in caplog.text
    assert client.get("/api/search", params={"q": "red", "k": 3}).status_code == 200


def test_sighup_style_poke_reloads_at_once(served):
    app, _, _ = served
    old = app.state.searcher
    app.state.watcher.poke()
    wait_for(lambda: app.state.searcher is not old)
    assert len(app.state.searcher) == len(old)
