import numpy as np
import pytest

from stylesearch.data.prepare import load_processed
from stylesearch.evaluate.metrics import batched_loss, embed, title_retrieval
from stylesearch.model.clip import ClipEncoder
from stylesearch.train import validation
from stylesearch.train.validation import ValidationSet


@pytest.fixture()
def val(processed_dir):
    return load_processed(processed_dir).split("val")


def test_one_pass_gives_the_figures_of_embedding_the_split_from_its_jpegs(tiny, val):
    encoder = ClipEncoder(tiny, batch_size=7)
    reference = embed(encoder, val)
    recall = title_retrieval(encoder, reference, val["title"].tolist(), (1, 5, 10))["t2i"]
    scale = float(tiny.model.logit_scale.detach())
    loss = batched_loss(reference.image, reference.text, reference.groups, scale, 16)

    cached = ValidationSet.build(tiny, val)
    assert cached.pixels is not None and len(cached.pixels) == len(val)
    np.testing.assert_allclose(cached.embed(encoder).image, reference.image, atol=1e-5)
    metrics = cached.metrics(tiny, 16)
    assert metrics["val_loss"] == pytest.approx(loss, abs=1e-5)
    for k in ("R@1", "R@5", "R@10", "MRR"):
        assert metrics[k] == pytest.approx(recall[k], abs=1e-6), k


def test_a_split_too_large_to_hold_decodes_each_epoch_with_the_same_result(tiny, val, monkeypatch):
    held = ValidationSet.build(tiny, val).metrics(tiny, 16)
    monkeypatch.setattr(validation, "MAX_CACHED_BYTES", 0)
    streamed = ValidationSet.build(tiny, val)
    assert streamed.pixels is None
    assert streamed.metrics(tiny, 16) == pytest.approx(held, abs=1e-5)
