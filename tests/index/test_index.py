"""EmbeddingIndex: build, save/load, integrity, resumable chunks, updates and approximate kinds."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest

from fakes import FakeEncoder
from stylesearch.common.files import sha256_bytes
from stylesearch.config import IndexConfig, PrepareConfig
from stylesearch.data.prepare import PrepareReport, load_processed, write_processed
from stylesearch.data.synthetic import COLOURS, draw_product
from stylesearch.errors import IndexKindError, IntegrityError, ManifestMismatchError
from stylesearch.index.kinds import make_faiss
from stylesearch.index.store import EmbeddingIndex, build_index
from stylesearch.search.searcher import Searcher


class CountingEncoder(FakeEncoder):
    """The fake encoder, counting the images it is asked to embed (and failing on request)."""

    def __init__(self, fail_after: int | None = None):
        self.images_seen = 0
        self.fail_after = fail_after

    def encode_images(self, images):
        if self.fail_after is not None and self.images_seen + len(images) > self.fail_after:
            raise RuntimeError("simulated crash")
        self.images_seen += len(images)
        return super().encode_images(images)


class OtherModel(FakeEncoder):
    fingerprint = "another-model"


def jpeg(colour: str, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    draw_product("tee", COLOURS[colour], "Solid", random.Random(seed)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_catalog(frame: pd.DataFrame, out: Path) -> Path:
    frame = frame.reset_index(drop=True)
    report = PrepareReport(source="test", rows_in=len(frame), rows_out=len(frame), split_sizes={})
    write_processed(frame, report, PrepareConfig(), out)
    return out


@pytest.fixture(scope="module")
def built(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("index") / "idx"
    EmbeddingIndex.build(processed_dir, FakeEncoder(), out, IndexConfig(chunk_size=40), progress=False)
    return out


@pytest.fixture()
def changed_catalog(processed_dir: Path, tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    """The fixture catalogue with 5 products removed, 2 retitled, 1 re-photographed and 3 added."""
    frame = load_processed(processed_dir).frame.copy()
    removed = frame["id"].iloc[:5].tolist()
    frame = frame.iloc[5:].reset_index(drop=True)
    retitled = frame["id"].iloc[:2].tolist()
    frame.loc[:1, "title"] = frame.loc[:1, "title"] + " (new season)"
    photo = frame.index[2]
    frame.at[photo, "image"] = jpeg("Yellow", seed=1)
    frame.at[photo, "image_sha256"] = sha256_bytes(frame.at[photo, "image"])
    new = frame.iloc[10:13].copy()
    new["id"] = ["90001", "90002", "90003"]
    new["image"] = [jpeg(c, seed=2) for c in ("Red", "Green", "Pink")]
    new["image_sha256"] = [sha256_bytes(b) for b in new["image"]]
    frame = pd.concat([frame, new], ignore_index=True)
    expected = {"removed": removed, "changed": retitled + [str(frame.at[photo, "id"])],
                "added": ["90001", "90002", "90003"]}
    return write_catalog(frame, tmp_path / "changed"), expected


def test_index_directory_holds_vectors_products_images_and_manifest(built: Path, processed_dir: Path):
    assert {p.name for p in built.iterdir()} == {"vectors.faiss", "products.parquet", "images.parquet",
                                                 "manifest.json"}
    manifest = json.loads((built / "manifest.json").read_text())
    catalog = load_processed(processed_dir)
    assert manifest["model"]["fingerprint"] == FakeEncoder.fingerprint
    assert manifest["catalog"]["sha256"] == catalog.manifest["catalog_sha256"]
    assert manifest["dim"] == FakeEncoder.dim and manifest["count"] == len(catalog.frame)
    assert manifest["index"]["kind"] == "flat"
    assert {"faiss", "numpy", "torch"} <= set(manifest["versions"])
    assert manifest["config"]["chunk_size"] == 40
    assert set(manifest["files"]) == {"vectors.faiss", "products.parquet", "images.parquet"}
    assert not built.with_name("idx.work").exists(), "the chunk work dir is removed after a build"


def test_rows_follow_the_catalogue_and_vectors_are_unit_length(built: Path, processed_dir: Path):
    index = EmbeddingIndex.load(built)
    frame = load_processed(processed_dir).frame
    assert index.products["id"].tolist() == frame["id"].astype(str).tolist()
    np.testing.assert_allclose(np.linalg.norm(index.vectors(), axis=1), 1.0, atol=1e-6)
    images = pd.read_parquet(built / "images.parquet")
    assert images["id"].tolist() == frame["id"].astype(str).tolist()
    expected = FakeEncoder().encode_images([_decode(b) for b in frame["image"].iloc[:20]])
    np.testing.assert_array_equal(index.vectors(range(20)), expected)


def _decode(data: bytes):
    from stylesearch.data.images import decode_image

    return decode_image(bytes(data))


def test_save_load_round_trip(built: Path, tmp_path: Path):
    index = EmbeddingIndex.load(built)
    index.save(tmp_path / "copy")
    again = EmbeddingIndex.load(tmp_path / "copy")
    np.testing.assert_array_equal(again.vectors(), index.vectors())
    pd.testing.assert_frame_equal(again.products, index.products)
    assert again.manifest["model"] == index.manifest["model"] and again.kind == "flat"
    a, b = Searcher(index, FakeEncoder()), Searcher(again, FakeEncoder())
    assert a.search("navy blue", k=15) == b.search("navy blue", k=15)


@pytest.mark.parametrize("name", ["vectors.faiss", "products.parquet", "images.parquet"])
def test_a_tampered_file_is_refused(built: Path, tmp_path: Path, name: str):
    EmbeddingIndex.load(built).save(tmp_path / "idx")
    file = tmp_path / "idx" / name
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=name):
        EmbeddingIndex.load(tmp_path / "idx")


def test_an_edited_manifest_is_refused(built: Path, tmp_path: Path):
    EmbeddingIndex.load(built).save(tmp_path / "idx")
    file = tmp_path / "idx" / "manifest.json"
    manifest = json.loads(file.read_text())
    manifest["model"]["name"] = "someone-elses-model"
    file.write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="manifest.json: edited after it was written"):
        EmbeddingIndex.load(tmp_path / "idx")


def test_a_directory_that_is_not_an_index_is_refused(processed_dir: Path, tmp_path: Path):
    with pytest.raises(ManifestMismatchError, match="not a search index"):
        EmbeddingIndex.load(processed_dir)
    with pytest.raises(ManifestMismatchError, match="no manifest.json"):
        EmbeddingIndex.load(tmp_path)


def test_update_equals_a_full_rebuild_and_embeds_only_new_images(built: Path, changed_catalog, tmp_path: Path):
    catalog, expected = changed_catalog
    EmbeddingIndex.load(built).save(tmp_path / "updated")
    counting = CountingEncoder()
    updated, report = EmbeddingIndex.update(tmp_path / "updated", catalog, counting, progress=False)
    rebuilt, _ = EmbeddingIndex.build(catalog, FakeEncoder(), tmp_path / "rebuilt", IndexConfig(chunk_size=40),
                                      progress=False)

    assert counting.images_seen == 4, "one re-photographed and three new products; nothing else"
    assert (report.embedded, report.reused) == (4, len(rebuilt) - 4)
    assert sorted(report.added) == expected["added"] and sorted(report.removed) == sorted(expected["removed"])
    assert sorted(report.changed) == sorted(expected["changed"])
    updated = EmbeddingIndex.load(tmp_path / "updated")
    pd.testing.assert_frame_equal(updated.products, rebuilt.products)
    np.testing.assert_array_equal(updated.vectors(), rebuilt.vectors())
    a, b = Searcher(updated, FakeEncoder()), Searcher(rebuilt, FakeEncoder())
    for query in ("red", "yellow tee", "green"):
        assert a.search(query, k=20) == b.search(query, k=20)


def test_update_with_another_model_is_refused(built: Path, processed_dir: Path, tmp_path: Path):
    EmbeddingIndex.load(built).save(tmp_path / "idx")
    with pytest.raises(ManifestMismatchError, match="rebuild it without --update"):
        EmbeddingIndex.update(tmp_path / "idx", processed_dir, OtherModel(), progress=False)


def test_a_crashed_build_resumes_from_completed_chunks(processed_dir: Path, tmp_path: Path):
    cfg = IndexConfig(chunk_size=40, batch_size=20)
    with pytest.raises(RuntimeError, match="simulated crash"):
        EmbeddingIndex.build(processed_dir, CountingEncoder(fail_after=100), tmp_path / "idx", cfg, progress=False)
    assert not (tmp_path / "idx").exists(), "no half-written index"
    chunks = list((tmp_path / "idx.work").rglob("chunk-*.npy"))
    assert len(chunks) == 2 and FakeEncoder.fingerprint in chunks[0].parent.name

    again = CountingEncoder()
    index, report = EmbeddingIndex.build(processed_dir, again, tmp_path / "idx", cfg, progress=False)
    assert again.images_seen == len(index) - 80 and report.reused == 80
    clean, _ = EmbeddingIndex.build(processed_dir, FakeEncoder(), None, cfg, progress=False)
    np.testing.assert_array_equal(index.vectors(), clean.vectors())
    assert not (tmp_path / "idx.work").exists()


def test_build_index_update_on_a_missing_index_builds_it(processed_dir: Path, tmp_path: Path):
    _, report = build_index(processed_dir, tmp_path / "idx", model="fake", update=True, progress=False,
                            encoder=FakeEncoder())
    assert report.embedded == report.count and EmbeddingIndex.load(tmp_path / "idx").manifest["model"]["name"] == "fake"


def test_auto_kind_switches_to_ivfpq_above_exact_max(processed_dir: Path, tmp_path: Path):
    index, report = EmbeddingIndex.build(processed_dir, FakeEncoder(), tmp_path / "idx", IndexConfig(exact_max=100),
                                         progress=False)
    assert report.kind == "ivfpq" and EmbeddingIndex.load(tmp_path / "idx").kind == "ivfpq"
    exact, _ = EmbeddingIndex.build(processed_dir, FakeEncoder(), None, IndexConfig(kind="flat"), progress=False)
    a, b = Searcher(EmbeddingIndex.load(tmp_path / "idx"), FakeEncoder()), Searcher(exact, FakeEncoder())
    for query in ("red", "black", "navy blue"):
        assert [h.score for h in a.search(query, k=10)] == [h.score for h in b.search(query, k=10)]
        # filtered queries are scored exactly over the memory-mapped exact vectors: the very same hits
        filters = {"gender": "Women", "year": (2011, 2012)}
        assert a.search(query, k=10, filters=filters) == b.search(query, k=10, filters=filters)
    pid = exact.products["id"].iloc[0]
    similar = a.similar(pid, k=5)
    assert pid not in [h.id for h in similar] and [h.score for h in similar] == [h.score for h in b.similar(pid, k=5)]


def _random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_hnsw_finds_the_same_neighbours_as_exact_search():
    vectors, queries = _random_unit(3000, 32, 0), _random_unit(50, 32, 1)
    _, exact = make_faiss(vectors, "flat", IndexConfig()).search(queries, 10)
    _, approx = make_faiss(vectors, "hnsw", IndexConfig()).search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95


def test_ivfpq_round_trips_and_keeps_exact_vectors_for_filters(processed_dir: Path, tmp_path: Path):
    index, _ = EmbeddingIndex.build(processed_dir, FakeEncoder(), tmp_path / "idx", IndexConfig(kind="ivfpq"),
                                    progress=False)
    loaded = EmbeddingIndex.load(tmp_path / "idx")
    assert loaded.kind == "ivfpq" and isinstance(loaded.faiss_index, faiss.IndexIVFPQ)
    assert (tmp_path / "idx" / "embeddings.npy").is_file()
    np.testing.assert_array_equal(loaded.vectors(), index.vectors())
    searcher = Searcher(loaded, FakeEncoder())
    hits = searcher.search("red", k=5, filters={"articleType": "Jeans"})
    assert hits and all(h.attributes["articleType"] == "Jeans" for h in hits)


def test_ivfpq_over_too_few_products_is_a_clear_error_before_any_embedding(processed_dir: Path, tmp_path: Path):
    small = write_catalog(load_processed(processed_dir).frame.head(15), tmp_path / "small")
    encoder = CountingEncoder()
    with pytest.raises(IndexKindError, match=r"ivfpq index needs at least 16 products.*has 15.*--kind flat"):
        EmbeddingIndex.build(small, encoder, tmp_path / "idx", IndexConfig(kind="ivfpq"), progress=False)
    assert encoder.images_seen == 0 and not (tmp_path / "idx").exists()
    index, _ = EmbeddingIndex.build(small, encoder, tmp_path / "flat", IndexConfig(kind="flat"), progress=False)
    assert index.kind == "flat" and len(index) == 15  # the fix the message names works
    enough = write_catalog(load_processed(processed_dir).frame.head(16), tmp_path / "enough")
    index, _ = EmbeddingIndex.build(enough, FakeEncoder(), None, IndexConfig(kind="ivfpq"), progress=False)
    assert index.kind == "ivfpq"


def test_cli_index_with_ivfpq_over_too_few_products_is_one_line_and_exit_2(processed_dir: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from stylesearch.cli.base import app

    small = write_catalog(load_processed(processed_dir).frame.head(5), tmp_path / "small")
    result = CliRunner().invoke(app, ["index", "--catalog", str(small), "--model", "tiny", "--out",
                                      str(tmp_path / "idx"), "--kind", "ivfpq"])
    assert result.exit_code == 2 and "needs at least 16 products" in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "idx").exists()


@pytest.mark.parametrize("kind", ["sq8", "fp16"])
def test_compressed_storage_ranks_like_exact_and_keeps_exact_vectors(kind: str, processed_dir: Path, tmp_path: Path):
    exact, _ = EmbeddingIndex.build(processed_dir, FakeEncoder(), None, IndexConfig(kind="flat"), progress=False)
    index, _ = EmbeddingIndex.build(processed_dir, FakeEncoder(), tmp_path / kind, IndexConfig(kind=kind),
                                    progress=False)
    loaded = EmbeddingIndex.load(tmp_path / kind)
    assert loaded.kind == kind and isinstance(loaded.faiss_index, faiss.IndexScalarQuantizer)
    np.testing.assert_array_equal(loaded.vectors(), exact.vectors())
    for query in ("red", "navy blue", "yellow"):
        # The fake encoder ties every product of a colour, so compare what was found, not which tied row.
        got = [h.score for h in Searcher(loaded, FakeEncoder()).search(query, k=5)]
        want = [h.score for h in Searcher(exact, FakeEncoder()).search(query, k=5)]
        assert got == want


def test_chunks_scale_with_the_catalogue_so_a_small_one_resumes_too():
    from stylesearch.index.embedding import chunk_rows

    assert chunk_rows(2_000, IndexConfig()) == 64  # a kill loses at most 64 images, not all 2,000
    assert chunk_rows(34_000, IndexConfig()) == 1063  # 32 chunks
    assert chunk_rows(10_000_000, IndexConfig()) == IndexConfig().chunk_size  # capped


def test_a_killed_build_of_a_small_catalogue_keeps_its_finished_chunks(processed_dir: Path, tmp_path: Path):
    from stylesearch.index.embedding import MIN_CHUNK

    count = len(load_processed(processed_dir).frame)
    assert count > 2 * MIN_CHUNK  # else one chunk holds everything and nothing could be kept

    class DiesAfter(FakeEncoder):
        def __init__(self, images: int):
            self.left = images

        def encode_images(self, images):
            self.left -= len(images)
            if self.left < 0:
                raise KeyboardInterrupt  # the build is killed part-way
            return super().encode_images(images)

    out = tmp_path / "idx"
    with pytest.raises(KeyboardInterrupt):
        EmbeddingIndex.build(processed_dir, DiesAfter(count - 10), out, IndexConfig(), progress=False)
    assert len(list(out.with_name("idx.work").rglob("chunk-*.npy"))) >= 2
    index, report = EmbeddingIndex.build(processed_dir, FakeEncoder(), out, IndexConfig(), progress=False)
    assert report.reused >= 2 * MIN_CHUNK and report.embedded == count - report.reused  # only the rest re-ran
    assert len(index) == count
