"""Ray Data embedding on a local Ray instance: the same index as one process, and bad images reported, not fatal."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from stylesearch.common.files import sealed, sha256_file
from stylesearch.data.prepare import load_processed
from stylesearch.errors import StylesearchError
from stylesearch.index.store import EmbeddingIndex, build_index

ray = pytest.importorskip("ray", reason="Ray Data is not installed: pip install 'stylesearch[distributed]'")

from stylesearch.index.ray_build import build_index_ray, embed_catalog  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module: starting Ray costs seconds."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def single_process(processed_dir, tmp_path_factory) -> EmbeddingIndex:
    index, _ = build_index(processed_dir, tmp_path_factory.mktemp("single") / "index", model="tiny", progress=False)
    return index


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_ray_index_equals_the_single_process_index(local_ray, single_process, processed_dir, tmp_path):
    index, report = build_index_ray(processed_dir, tmp_path / "index", model="tiny", actors=2)

    assert report.actors == 2 and not report.skipped
    loaded = EmbeddingIndex.load(tmp_path / "index")  # hashes verified: a complete, valid index directory
    assert loaded.products["id"].tolist() == single_process.products["id"].tolist()
    pd.testing.assert_frame_equal(loaded.products, single_process.products)
    assert cosines(loaded.vectors(), single_process.vectors()).min() >= 0.9999
    names = sorted(p.name for p in (tmp_path / "index").iterdir())
    assert names == sorted(p.name for p in single_process.path.iterdir())
    ours, theirs = loaded.manifest, single_process.manifest
    for key in ("kind", "format_version", "model", "dim", "count", "index", "embedding", "preprocessing", "config"):
        assert ours[key] == theirs[key], key


def corrupt_one_image(processed_dir, out_dir, row: int) -> str:
    """A copy of the processed catalogue whose `row` image is not an image; the manifest hashes follow."""
    shutil.copytree(processed_dir, out_dir)
    frame = pd.read_parquet(out_dir / "catalog.parquet")
    frame.at[row, "image"] = b"this is not a JPEG"
    frame.to_parquet(out_dir / "catalog.parquet", index=False)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    manifest["catalog_sha256"] = sha256_file(out_dir / "catalog.parquet")
    (out_dir / "manifest.json").write_text(json.dumps(sealed(manifest)))  # re-sealed, as prepare would
    return str(frame.at[row, "id"])


def test_a_bad_image_is_reported_and_the_rest_of_its_batch_survives(local_ray, single_process, processed_dir,
                                                                    tmp_path):
    bad = corrupt_one_image(processed_dir, tmp_path / "catalog", row=3)
    # One batch of 16 rows holds the bad image with 15 good ones.
    result = embed_catalog(tmp_path / "catalog" / "catalog.parquet", "tiny", batch_size=16, actors=1)

    assert list(result.errors) == [bad] and "not an image" in result.errors[bad]
    assert result.ids == single_process.products["id"].tolist()
    good = np.array([i != bad for i in result.ids])
    assert cosines(result.vectors[good], single_process.vectors()[good]).min() >= 0.9999


def test_ray_index_leaves_out_and_reports_the_bad_product(local_ray, processed_dir, tmp_path):
    bad = corrupt_one_image(processed_dir, tmp_path / "catalog", row=0)
    index, report = build_index_ray(tmp_path / "catalog", tmp_path / "index", model="tiny", actors=1)

    assert list(report.skipped) == [bad] and "1 bad image" in report.summary()
    ids = load_processed(tmp_path / "catalog").frame["id"].astype(str).tolist()
    assert EmbeddingIndex.load(tmp_path / "index").products["id"].tolist() == [i for i in ids if i != bad]


def test_index_command_with_ray_writes_the_index(local_ray, processed_dir, tmp_path):
    from typer.testing import CliRunner

    from stylesearch.cli.base import app

    result = CliRunner().invoke(app, ["index", "--catalog", str(processed_dir), "--out", str(tmp_path / "index"),
                                      "--model", "tiny", "--ray", "--ray-actors", "1"])
    assert result.exit_code == 0, result.output
    assert "Ray actor" in result.output
    assert len(EmbeddingIndex.load(tmp_path / "index")) == len(load_processed(processed_dir).frame)


def test_ray_honours_the_backend_and_refuses_update(processed_dir, tmp_path, monkeypatch):
    import stylesearch.index.ray_build as ray_build
    from stylesearch.model.onnx import OnnxEncoder

    with pytest.raises(StylesearchError, match="--update .* drop --ray"):
        build_index_ray(processed_dir, tmp_path / "index", model="tiny", update=True)
    seen = {}

    def fake_embed(parquet, spec, *, batch_size, actors):  # what each actor would build from `spec`
        encoder = spec()
        seen["encoder"] = encoder
        frame = pd.read_parquet(parquet)
        from stylesearch.index.embedding import embed_rows

        vectors = embed_rows(frame, list(range(len(frame))), encoder, batch_size, lambda n: None)
        return ray_build.RayEmbedding(ids=frame["id"].astype(str).tolist(), vectors=vectors)

    monkeypatch.setattr(ray_build, "embed_catalog", fake_embed)
    monkeypatch.setattr(ray_build, "connect", lambda address: False)
    index, _ = build_index_ray(processed_dir, tmp_path / "index", model="tiny", actors=1, backend="onnx")
    assert isinstance(seen["encoder"], OnnxEncoder)  # the actors' encoder runs on ONNX Runtime, as asked
    assert index.fingerprint == EmbeddingIndex.load(tmp_path / "index").fingerprint


def test_cli_index_ray_update_is_refused_with_one_line(processed_dir, tmp_path):
    from typer.testing import CliRunner

    from stylesearch.cli import app

    result = CliRunner().invoke(app, ["index", "--catalog", str(processed_dir), "--out", str(tmp_path / "i"),
                                      "--model", "tiny", "--ray", "--update"])
    assert result.exit_code == 2 and "drop --ray to update" in " ".join(result.output.split())
