"""Indexes of the drawn catalogue for the curate tests: one with the fake colour encoder, one with the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes import FakeEncoder
from stylesearch.config import IndexConfig
from stylesearch.data.prepare import ProcessedCatalog, load_processed
from stylesearch.index.store import EmbeddingIndex
from stylesearch.model.clip import ClipEncoder, tiny_model
from stylesearch.search.searcher import Searcher, open_searcher


@pytest.fixture(scope="session")
def catalog(processed_dir: Path) -> ProcessedCatalog:
    return load_processed(processed_dir)


@pytest.fixture(scope="session")
def fake_searcher(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    out = tmp_path_factory.mktemp("curate-fake") / "idx"
    EmbeddingIndex.build(processed_dir, FakeEncoder(), out, IndexConfig(), model_name="fake", progress=False)
    return open_searcher(out, encoder=FakeEncoder())


@pytest.fixture(scope="session")
def tiny_searcher(tiny_index: Path) -> Searcher:
    return open_searcher(tiny_index, encoder=ClipEncoder(tiny_model(seed=0)))
