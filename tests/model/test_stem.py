"""The convolutional vision stem: same token grid as the patchify, and saved checkpoints rebuild it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from stylesearch.config import TinyPreset, TrainConfig
from stylesearch.model.checkpoint import save_checkpoint
from stylesearch.model.clip import ClipEncoder, load_model, tiny_model
from stylesearch.model.stem import ConvStem, install_stem, stem_of


@pytest.mark.parametrize("residual", [False, True])
def test_conv_stem_makes_the_patch_grid(residual: bool) -> None:
    stem = ConvStem(hidden=64, patch_size=8, residual=residual)
    assert stem(torch.zeros(2, 3, 64, 64)).shape == (2, 64, 8, 8)


def test_conv_stem_needs_a_power_of_two_patch() -> None:
    with pytest.raises(ValueError, match="power-of-two"):
        ConvStem(hidden=64, patch_size=12)


def test_unknown_stem_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown vision stem"):
        install_stem(tiny_model().model, "resnet")


def test_plain_clip_has_the_patch_stem() -> None:
    assert stem_of(tiny_model().model.config) == "patch"


@pytest.mark.parametrize("kind", ["conv", "conv2"])
def test_conv_stem_checkpoint_loads_back_identically(tmp_path, kind: str) -> None:
    loaded = tiny_model(TinyPreset(stem=kind))
    # Move the BatchNorm statistics off their defaults so a stem that silently re-initialised would show.
    loaded.model.train()
    with torch.no_grad():
        loaded.model.get_image_features(pixel_values=torch.rand(8, 3, 64, 64))
    loaded.model.eval()
    save_checkpoint(loaded, tmp_path / "ck", TrainConfig(base_model="tiny"), info={})
    back = load_model(str(tmp_path / "ck"))
    assert isinstance(back.model.vision_model.embeddings.patch_embedding, ConvStem)
    assert stem_of(back.model.config) == kind
    photo = [Image.new("RGB", (60, 80), (200, 30, 30)), Image.new("RGB", (60, 80), (20, 30, 200))]
    np.testing.assert_allclose(ClipEncoder(back).encode_images(photo), ClipEncoder(loaded).encode_images(photo),
                               atol=1e-6)
