"""WiSE-FT: alpha=0 is the base and alpha=1 the fine-tuned model, exactly; a merge is a normal checkpoint."""

from __future__ import annotations

import pytest
import torch

from fakes import same_model_weights as same_weights
from stylesearch.config import TrainConfig
from stylesearch.errors import StylesearchError
from stylesearch.model.checkpoint import save_checkpoint
from stylesearch.model.clip import ClipEncoder, load_model, tiny_model
from stylesearch.model.merge import interpolate, merge_checkpoints


@pytest.fixture()
def pair():
    return tiny_model(seed=0), tiny_model(seed=1)  # stand-ins for a base and its fine-tune


def test_alpha_zero_and_one_reproduce_the_two_models_exactly(pair):
    base, tuned = pair
    assert not same_weights(base, tuned)
    assert same_weights(interpolate(base, tuned, 0.0), base)
    assert same_weights(interpolate(base, tuned, 1.0), tuned)
    texts = ["red dress", "black belt"]
    merged = ClipEncoder(interpolate(base, tuned, 1.0)).encode_texts(texts)
    assert (merged == ClipEncoder(tuned).encode_texts(texts)).all()


def test_alpha_half_is_the_midpoint(pair):
    base, tuned = pair
    mid = interpolate(base, tuned, 0.5).model.state_dict()
    name = "text_projection.weight"
    expected = (base.model.state_dict()[name] + tuned.model.state_dict()[name]) / 2
    assert torch.allclose(mid[name], expected, atol=1e-7)


def test_alpha_outside_the_unit_interval_is_refused(pair):
    with pytest.raises(StylesearchError, match="outside"):
        interpolate(*pair, 1.5)


def test_merge_writes_a_loadable_checkpoint(tmp_path, pair):
    base, tuned = pair
    save_checkpoint(tuned, tmp_path / "ft", TrainConfig(base_model="tiny", seed=0), info={})
    merge_checkpoints(tmp_path / "ft", tmp_path / "wise", 0.0)  # base named by the checkpoint: tiny, seed 0
    assert same_weights(load_model(str(tmp_path / "wise")), base)


def test_a_tiny_base_is_rebuilt_with_the_seed_of_the_run(tmp_path):
    save_checkpoint(tiny_model(seed=5), tmp_path / "ft", TrainConfig(base_model="tiny", seed=3), info={})
    merge_checkpoints(tmp_path / "ft", tmp_path / "wise", 0.0)
    assert same_weights(load_model(str(tmp_path / "wise")), tiny_model(seed=3))
