"""`stylesearch doctor`: a healthy catalogue/checkpoint/index passes; each kind of breakage is found and
comes with how to fix it; the library never prints and the command exits 1 on any error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fakes import FakeEncoder
from stylesearch.cli.base import app
from stylesearch.common.files import sha256_bytes
from stylesearch.config import IndexConfig, PrepareConfig, TrainConfig
from stylesearch.data.prepare import PrepareReport, load_processed, write_processed
from stylesearch.doctor import Finding, diagnose, has_errors
from stylesearch.index.store import EmbeddingIndex
from stylesearch.model.checkpoint import save_checkpoint
from stylesearch.model.clip import ClipEncoder, load_model, tiny_model

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("doctor") / "best"
    save_checkpoint(tiny_model(seed=0), path, TrainConfig(base_model="tiny"), info={"step": 1})
    return path


@pytest.fixture(scope="module")
def other_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("doctor-other") / "best"
    save_checkpoint(tiny_model(seed=1), path, TrainConfig(base_model="tiny", seed=1), info={"step": 1})
    return path


@pytest.fixture(scope="module")
def index_dir(processed_dir: Path, ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("doctor-index") / "idx"
    EmbeddingIndex.build(processed_dir, ClipEncoder(load_model(str(ckpt)), device=None), out, IndexConfig(),
                         model_name=str(ckpt), progress=False)
    return out


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "error"]


def text_of(findings: list[Finding], level: str) -> str:
    return "\n".join(f"{f.what} | {f.fix}" for f in findings if f.level == level)


def said(result) -> str:
    return " ".join(result.output.split())


def rewrite_catalog(processed_dir: Path, out: Path, change) -> Path:
    """A processed catalogue like the fixture's, changed by `change(frame) -> frame`, written properly."""
    frame = change(load_processed(processed_dir).frame.copy()).reset_index(drop=True)
    report = PrepareReport(source="test", rows_in=len(frame), rows_out=len(frame),
                           split_sizes={s: int((frame["split"] == s).sum()) for s in ("train", "val", "test")})
    write_processed(frame, report, PrepareConfig(), out)
    return out


def test_a_consistent_catalogue_checkpoint_and_index_pass(processed_dir, ckpt, index_dir, capsys):
    findings = diagnose(processed_dir, ckpt, index_dir)
    assert not has_errors(findings), text_of(findings, "error")
    assert not [f for f in findings if f.level == "warning"], text_of(findings, "warning")
    oks = text_of(findings, "ok")
    assert "index was built by this checkpoint" in oks and "index rows match the catalogue (158 products)" in oks
    assert "every image present and decodable" in oks
    assert capsys.readouterr().out == "", "the library never prints (transformers may draw a bar on stderr)"

    result = runner.invoke(app, ["doctor", "--catalog", str(processed_dir), "--checkpoint", str(ckpt),
                                 "--index", str(index_dir)])
    assert result.exit_code == 0, result.output
    assert "0 error(s), 0 warning(s)" in said(result)


def test_an_index_built_by_another_model_is_an_error_with_the_fix(processed_dir, other_ckpt, index_dir):
    findings = diagnose(processed_dir, other_ckpt, index_dir)
    [problem] = errors(findings)
    assert "not by the checkpoint" in problem.what and "fingerprint" in problem.what
    assert f"stylesearch index --model {other_ckpt}" in problem.fix

    result = runner.invoke(app, ["doctor", "--checkpoint", str(other_ckpt), "--index", str(index_dir)])
    assert result.exit_code == 1
    assert "not by the checkpoint" in said(result) and "fix: rebuild the index with this model" in said(result)


def test_index_and_catalogue_rows_that_differ_are_named(processed_dir, index_dir, tmp_path):
    dropped: list[str] = []

    def drop_three(frame):
        dropped.extend(frame["id"].iloc[:3].astype(str))
        return frame.iloc[3:]

    smaller = rewrite_catalog(processed_dir, tmp_path / "smaller", drop_three)
    [problem] = errors(diagnose(smaller, None, index_dir))
    assert problem.what.startswith("3 indexed product(s) are not in the catalogue")
    assert all(pid in problem.what for pid in dropped) and "stylesearch index --update" in problem.fix


def test_same_ids_from_another_catalogue_version_is_a_warning(processed_dir, index_dir, tmp_path):
    def retitle(frame):
        frame.loc[0, "title"] = frame.loc[0, "title"] + " (new season)"
        return frame

    changed = rewrite_catalog(processed_dir, tmp_path / "changed", retitle)
    findings = diagnose(changed, None, index_dir)
    assert not has_errors(findings)
    assert "another version of the catalogue" in text_of(findings, "warning")


def test_tampered_index_and_checkpoint_files_are_errors(processed_dir, ckpt, index_dir, tmp_path):
    idx = Path(shutil.copytree(index_dir, tmp_path / "idx"))
    data = bytearray((idx / "vectors.faiss").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (idx / "vectors.faiss").write_bytes(bytes(data))
    bad_ckpt = Path(shutil.copytree(ckpt, tmp_path / "ckpt"))
    (bad_ckpt / "model.safetensors").write_bytes((bad_ckpt / "model.safetensors").read_bytes()[:1000])

    found = errors(diagnose(None, bad_ckpt, idx))
    assert len(found) == 2
    assert "model.safetensors: content does not match checkpoint.json" in found[0].what
    assert "stylesearch train" in found[0].fix
    assert "vectors.faiss: content does not match" in found[1].what and "stylesearch index" in found[1].fix

    result = runner.invoke(app, ["doctor", "--checkpoint", str(bad_ckpt), "--index", str(idx), "--quiet"])
    assert result.exit_code == 1 and "2 error(s)" in said(result) and " ok " not in said(result)


def test_processed_catalogue_with_an_undecodable_or_misrecorded_image(processed_dir, tmp_path):
    def break_images(frame):
        frame.at[0, "image"] = b"\xff\xd8\xff not really a jpeg"
        frame.at[0, "image_sha256"] = sha256_bytes(frame.at[0, "image"])  # recorded correctly, still undecodable
        frame.at[1, "image_sha256"] = "0" * 64  # bytes fine, hash wrong
        return frame

    broken = rewrite_catalog(processed_dir, tmp_path / "broken", break_images)
    frame = load_processed(broken).frame
    problems = text_of(diagnose(broken), "error")
    assert f"1 product(s) with images that do not decode: {frame['id'][0]}" in problems
    assert f"1 product(s) with image bytes that do not match image_sha256: {frame['id'][1]}" in problems
    assert "stylesearch prepare" in problems
    assert "do not decode" not in text_of(diagnose(broken, images=False), "error")


def test_a_tampered_processed_catalogue_is_an_error(processed_dir, tmp_path):
    copy = Path(shutil.copytree(processed_dir, tmp_path / "cat"))
    (copy / "catalog.parquet").write_bytes((copy / "catalog.parquet").read_bytes()[:-100])
    [problem] = errors(diagnose(copy))
    assert "catalog.parquet: content does not match" in problem.what and "stylesearch prepare" in problem.fix


def test_raw_catalogue_lists_missing_and_broken_image_files(synthetic_dir, tmp_path):
    raw = Path(shutil.copytree(synthetic_dir, tmp_path / "raw"))
    (raw / "images" / "10003.jpg").unlink()
    (raw / "images" / "10004.jpg").write_text("this is text")
    findings = diagnose(raw)
    warnings = text_of(findings, "warning")
    assert "1 image file(s) missing: 10003" in warnings and "10003.jpg" in warnings
    assert "1 image(s) that do not decode: 10004" in warnings
    assert not has_errors(findings)  # prepare can still run; it drops those two


def test_leftovers_of_interrupted_writes_are_warnings(index_dir, tmp_path):
    idx = Path(shutil.copytree(index_dir, tmp_path / "idx"))
    (tmp_path / "idx.tmp-12345").mkdir()
    (tmp_path / "idx.work" / "abc").mkdir(parents=True)
    findings = diagnose(index=idx)
    warnings = text_of(findings, "warning")
    assert "idx.tmp-12345 was left by an interrupted write" in warnings and "rm -r" in warnings
    assert "idx.work holds embedding chunks" in warnings and "resume" in warnings
    assert not has_errors(findings)


def test_missing_directories_are_errors_not_crashes(tmp_path):
    findings = diagnose(tmp_path / "no-catalog", tmp_path / "no-ckpt", tmp_path / "no-index")
    assert len(errors(findings)) == 3
    assert all(f.fix for f in errors(findings))


def test_index_built_with_the_fake_encoder_is_checked_without_a_checkpoint(processed_dir, tmp_path):
    out = tmp_path / "idx"
    EmbeddingIndex.build(processed_dir, FakeEncoder(), out, IndexConfig(), model_name="/gone/model", progress=False)
    findings = diagnose(processed_dir, None, out)
    assert not has_errors(findings)
    assert "names model '/gone/model', which is not on this machine" in text_of(findings, "warning")


def test_cli_needs_something_to_check_and_can_print_json(processed_dir):
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 2 and "nothing to check" in said(result)
    result = runner.invoke(app, ["doctor", "--catalog", str(processed_dir), "--json", "--no-images"])
    assert result.exit_code == 0
    import json

    assert {f["level"] for f in json.loads(result.output)} == {"ok"}


def test_a_directory_lost_between_the_two_renames_is_an_error_that_says_how_to_restore_it(index_dir, ckpt,
                                                                                          tmp_path):
    # What files.atomic_dir leaves if killed after moving the old directory aside (see test_crash.py).
    shutil.copytree(index_dir, tmp_path / "idx.old-4242")
    [problem] = diagnose(index=tmp_path / "idx")
    assert problem.level == "error" and "previous copy survives" in problem.what
    assert problem.fix == f"restore it: mv {tmp_path / 'idx.old-4242'} {tmp_path / 'idx'}"
    run = tmp_path / "run"
    shutil.copytree(ckpt, run / "best")
    shutil.copytree(ckpt, run / "last.old-4242")
    (run / "last.tmp-4242").mkdir()
    findings = diagnose(checkpoint=run)
    assert [f.fix for f in errors(findings)] == [f"restore it: mv {run / 'last.old-4242'} {run / 'last'}"]
    assert "last.tmp-4242 was left by an interrupted write" in text_of(findings, "warning")

    shutil.move(tmp_path / "idx.old-4242", tmp_path / "idx")  # the fix it printed
    assert not has_errors(diagnose(index=tmp_path / "idx"))
