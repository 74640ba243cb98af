"""Shared fixtures: a drawn catalogue, its processed form, a tiny CLIP, and the real shared data."""

from __future__ import annotations

from pathlib import Path

import pytest

from stylesearch.config import PrepareConfig
from stylesearch.data.catalog import read_catalog
from stylesearch.data.prepare import prepare
from stylesearch.data.synthetic import make_catalog
from stylesearch.model.clip import LoadedModel, tiny_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fashion-product-images-small"


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 160-product drawn catalogue in the Kaggle layout."""
    return make_catalog(tmp_path_factory.mktemp("synthetic"), n=160, seed=0)


@pytest.fixture(scope="session")
def processed_dir(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("processed") / "catalog"
    prepare(read_catalog(synthetic_dir), PrepareConfig(), out)
    return out


@pytest.fixture(scope="session")
def tiny_index(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The processed catalogue indexed with the seed-0 `tiny` model; read-only for every test that shares it."""
    from stylesearch.index.store import EmbeddingIndex
    from stylesearch.model.clip import ClipEncoder

    out = tmp_path_factory.mktemp("tiny-index") / "idx"
    EmbeddingIndex.build(processed_dir, ClipEncoder(tiny_model(seed=0)), out, model_name="tiny", progress=False)
    return out


@pytest.fixture()
def tiny() -> LoadedModel:
    return tiny_model(seed=0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "dev.parquet").is_file():
        pytest.skip(f"real shared data not found at {SHARED} (CI and dev machines have it)")
    return SHARED
