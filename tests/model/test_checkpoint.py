import pytest

from stylesearch.config import TrainConfig
from stylesearch.errors import IntegrityError
from stylesearch.model.checkpoint import load_training_state, save_checkpoint, verify_checkpoint
from stylesearch.model.clip import load_model


def test_checkpoint_round_trip_and_tamper_detection(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "ck", TrainConfig(base_model="tiny"), info={"step": 3}, state={"step": 3})
    manifest = verify_checkpoint(tmp_path / "ck")
    assert manifest["step"] == 3 and manifest["fingerprint"] == tiny.fingerprint
    assert load_model(str(tmp_path / "ck")).fingerprint == tiny.fingerprint
    assert load_training_state(tmp_path / "ck")["step"] == 3
    edited = tmp_path / "ck" / "checkpoint.json"
    original = edited.read_text()
    edited.write_text(original.replace('"step": 3', '"step": 4'))
    with pytest.raises(IntegrityError, match="checkpoint.json: edited after it was written"):
        verify_checkpoint(tmp_path / "ck")
    edited.write_text(original)
    weights = tmp_path / "ck" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(IntegrityError, match="model.safetensors"):
        verify_checkpoint(tmp_path / "ck")
