"""Safe loading: weights only through safetensors, training state only with weights_only=True, and any
checkpoint, index or catalogue file that was tampered with or truncated refused with a clear message."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fakes import FakeEncoder
from stylesearch.cli.base import app
from stylesearch.common.files import sealed, sha256_file
from stylesearch.config import IndexConfig, TrainConfig
from stylesearch.data.prepare import load_processed
from stylesearch.errors import IntegrityError, ManifestMismatchError, ModelUnavailableError
from stylesearch.index.store import EmbeddingIndex
from stylesearch.model.checkpoint import STATE_FILE, load_training_state, save_checkpoint, verify_checkpoint
from stylesearch.model.clip import load_model

runner = CliRunner()


class RunsCode:
    """A pickle payload that creates a marker file when unpickled: proof that something unpickled it."""

    marker: Path

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stylesearch.model.clip import tiny_model

    path = tmp_path_factory.mktemp("ckpt") / "last"
    save_checkpoint(tiny_model(seed=0), path, TrainConfig(base_model="tiny"), info={"step": 3, "epoch": 0},
                    state={"step": 3, "weights": torch.ones(2)})
    return path


@pytest.fixture()
def ckpt(checkpoint: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(checkpoint, tmp_path / "ckpt"))


@pytest.fixture(scope="module")
def index_dir(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("safe-index") / "idx"
    EmbeddingIndex.build(processed_dir, FakeEncoder(), out, IndexConfig(), progress=False)
    return out


def rehash(ckpt: Path, name: str) -> None:
    """Record `name`'s current hash in checkpoint.json and re-seal it: an attacker who rewrote the manifest too."""
    manifest = json.loads((ckpt / "checkpoint.json").read_text())
    manifest["files"][name] = sha256_file(ckpt / name)
    (ckpt / "checkpoint.json").write_text(json.dumps(sealed(manifest)))


def flip_middle_byte(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))


def truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


# --- weights: safetensors only -------------------------------------------------------------------


def test_a_checkpoint_loads_through_safetensors_and_verifies(ckpt: Path):
    assert (ckpt / "model.safetensors").is_file() and not list(ckpt.glob("*.bin"))
    assert load_model(str(ckpt)).fingerprint == json.loads((ckpt / "checkpoint.json").read_text())["fingerprint"]


def test_a_directory_with_only_pickled_weights_is_refused_and_never_unpickled(ckpt: Path, tmp_path: Path,
                                                                              monkeypatch):
    marker = tmp_path / "code-ran"
    (ckpt / "model.safetensors").unlink()
    (ckpt / "checkpoint.json").unlink()  # a plain save_pretrained directory: nothing to verify against
    with open(ckpt / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"logit_scale": RunsCode(marker)}, fh)

    def no_torch_load(*args, **kwargs):
        raise AssertionError("torch.load was called on model weights")

    monkeypatch.setattr(torch, "load", no_torch_load)
    with pytest.raises(ModelUnavailableError, match=r"no \*\.safetensors weights \(pytorch_model\.bin\).*unpickle"):
        load_model(str(ckpt))
    assert not marker.exists()


# --- training state: weights_only=True ------------------------------------------------------------


def test_training_state_round_trips_as_plain_tensors(ckpt: Path):
    state = load_training_state(ckpt)
    assert state["step"] == 3 and torch.equal(state["weights"], torch.ones(2))


def test_training_state_with_code_in_it_is_refused_even_with_a_matching_hash(ckpt: Path, tmp_path: Path):
    marker = tmp_path / "code-ran"
    torch.save({"step": 3, "payload": RunsCode(marker)}, ckpt / STATE_FILE)
    rehash(ckpt, STATE_FILE)
    with pytest.raises(IntegrityError, match=f"{STATE_FILE}.*refusing to unpickle"):
        load_training_state(ckpt)
    assert not marker.exists()


# --- tampered or truncated checkpoint files -------------------------------------------------------


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", STATE_FILE, "tokenizer.json"])
@pytest.mark.parametrize("damage", [flip_middle_byte, truncate], ids=["tampered", "truncated"])
def test_a_damaged_checkpoint_file_is_refused_naming_it(ckpt: Path, name: str, damage):
    damage(ckpt / name)
    with pytest.raises(IntegrityError, match=rf"{name}: content does not match checkpoint.json"):
        load_model(str(ckpt))


def test_a_checkpoint_file_gone_missing_is_refused(ckpt: Path):
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(IntegrityError, match="model.safetensors is missing"):
        load_model(str(ckpt))


def test_a_truncated_checkpoint_manifest_is_refused(ckpt: Path):
    truncate(ckpt / "checkpoint.json")
    with pytest.raises(IntegrityError, match="checkpoint.json: corrupt"):
        load_model(str(ckpt))
    with pytest.raises(IntegrityError):
        verify_checkpoint(ckpt)


def test_cli_refuses_a_tampered_checkpoint_with_exit_code_2(ckpt: Path, processed_dir: Path, tmp_path: Path):
    flip_middle_byte(ckpt / "model.safetensors")
    result = runner.invoke(app, ["index", "--catalog", str(processed_dir), "--out", str(tmp_path / "idx"),
                                 "--model", str(ckpt), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "tampered or truncated" in " ".join(result.output.split())
    assert not (tmp_path / "idx").exists()


# --- index and processed-catalogue files ----------------------------------------------------------


@pytest.mark.parametrize("name", ["vectors.faiss", "products.parquet", "images.parquet"])
def test_a_truncated_or_missing_index_file_is_refused(index_dir: Path, tmp_path: Path, name: str):
    copy = Path(shutil.copytree(index_dir, tmp_path / "truncated"))
    truncate(copy / name)
    with pytest.raises(IntegrityError, match=rf"{name}: content does not match"):
        EmbeddingIndex.load(copy)
    (copy / name).unlink()
    with pytest.raises(IntegrityError, match=rf"{name}: missing"):
        EmbeddingIndex.load(copy)


def test_a_truncated_index_manifest_is_refused(index_dir: Path, tmp_path: Path):
    copy = Path(shutil.copytree(index_dir, tmp_path / "idx"))
    truncate(copy / "manifest.json")
    with pytest.raises(IntegrityError, match="manifest.json: corrupt manifest"):
        EmbeddingIndex.load(copy)


def test_an_index_manifest_whose_count_was_edited_is_refused(index_dir: Path, tmp_path: Path):
    copy = Path(shutil.copytree(index_dir, tmp_path / "idx"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["count"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="manifest count"):
        EmbeddingIndex.load(copy)


def test_an_index_manifest_edited_to_name_another_model_is_refused(index_dir: Path, tmp_path: Path):
    copy = Path(shutil.copytree(index_dir, tmp_path / "idx"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["model"]["name"] = "someone-elses-model"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError):
        EmbeddingIndex.load(copy)


def test_cli_search_refuses_a_tampered_index_with_exit_code_2(index_dir: Path, tmp_path: Path):
    copy = Path(shutil.copytree(index_dir, tmp_path / "idx"))
    flip_middle_byte(copy / "vectors.faiss")
    result = runner.invoke(app, ["search", "red", "--index", str(copy), "--model", "tiny"])
    assert result.exit_code == 2, result.output
    assert "vectors.faiss: content does not match" in " ".join(result.output.split())


def test_a_truncated_catalogue_manifest_is_refused(processed_dir: Path, tmp_path: Path):
    copy = Path(shutil.copytree(processed_dir, tmp_path / "cat"))
    truncate(copy / "manifest.json")
    with pytest.raises(IntegrityError, match="manifest.json: corrupt manifest"):
        load_processed(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(ManifestMismatchError, match="not a processed catalogue"):
        load_processed(copy)


def test_no_torch_load_without_weights_only_in_the_package():
    files = list((Path(__file__).resolve().parents[2] / "src" / "stylesearch").rglob("*.py"))
    assert len(files) > 10
    for file in files:
        for number, line in enumerate(file.read_text().splitlines(), 1):
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{file.name}:{number}: {line.strip()}"
