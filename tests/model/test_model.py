import numpy as np
import pytest
from PIL import Image

from stylesearch.errors import ModelUnavailableError
from stylesearch.model.clip import ClipEncoder, load_model
from stylesearch.model.tokenizer import clip_tokenizer

STRINGS = ["red summer dress", "Navy   slim JEANS!!", "Turtle Men Formal Pink Tie, Cufflink and Pocket Square",
           "café naïve 😀 tee", "Men's 3-pack socks", "", "x" * 300]


def test_tokenizer_matches_the_reference_clip_tokenizer():
    import open_clip

    ours = clip_tokenizer()
    reference = open_clip.get_tokenizer("ViT-B-32")
    for text in STRINGS:
        expected = [int(t) for t in reference([text])[0] if t != 0]
        got = ours(text, truncation=True, max_length=77)["input_ids"]
        assert got == expected, text


def test_encoder_outputs_unit_rows(tiny):
    enc = ClipEncoder(tiny, batch_size=2)
    texts = enc.encode_texts(["a", "b c", "d e f"])
    images = enc.encode_images([Image.new("RGB", (60, 80), c) for c in ("red", "blue", "green")])
    assert texts.shape == images.shape == (3, 64) and texts.dtype == np.float32
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)


def test_saved_model_loads_through_the_pretrained_path(tiny, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    tiny.processor.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    assert again.fingerprint == tiny.fingerprint
    a = ClipEncoder(tiny).encode_texts(["blue jeans"])
    b = ClipEncoder(again).encode_texts(["blue jeans"])
    assert np.allclose(a, b, atol=1e-6)
    from transformers import CLIPModel

    assert CLIPModel.from_pretrained(tmp_path).config.projection_dim == 64


def test_unreachable_hub_model_fails_fast_with_what_to_pass(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="--model"):
        load_model("openai/clip-vit-base-patch32-not-cached")


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ModelUnavailableError, match="config.json"):
        load_model(str(tmp_path))
