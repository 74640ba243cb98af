"""Fast preprocessing gives CLIPImageProcessor's pixels and embeddings, in order, from worker processes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from stylesearch.config import TinyPreset
from stylesearch.data.images import decode_image
from stylesearch.data.prepare import load_processed
from stylesearch.errors import CatalogError
from stylesearch.model.clip import ClipEncoder, tiny_model, tiny_processor
from stylesearch.model.preprocess import ClipPreprocess, embed_image_bytes, iter_pixel_batches


def jpeg(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


# Portrait, landscape, square, odd sizes, smaller and larger than the crop: every resize/crop branch.
SIZES = [(60, 80), (80, 60), (64, 64), (33, 101), (300, 200), (17, 23)]


@pytest.fixture(scope="module")
def blobs() -> list[bytes]:
    return [jpeg(w, h, seed) for seed, (w, h) in enumerate(SIZES)]


@pytest.mark.parametrize("size", [64, 224])
def test_pixels_match_clip_image_processor(blobs, size):
    processor = tiny_processor(TinyPreset(image_size=size)).image_processor
    images = [decode_image(b) for b in blobs]
    reference = processor(images=images, return_tensors="pt")["pixel_values"]
    ours = ClipPreprocess.from_processor(processor).batch(images)
    assert ours.shape == reference.shape == (len(blobs), 3, size, size)
    assert (ours - reference).abs().max().item() < 1e-4  # same steps; only float rounding differs


def test_from_processor_reads_its_sizes_and_statistics():
    processor = tiny_processor(TinyPreset(image_size=64)).image_processor
    preprocess = ClipPreprocess.from_processor(processor)
    assert preprocess == ClipPreprocess.square(64)
    assert preprocess.mean == pytest.approx(processor.image_mean)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batches_come_back_in_input_order(blobs, num_workers):
    preprocess = ClipPreprocess.square(64)
    batches = list(iter_pixel_batches(blobs, preprocess, batch_size=4, num_workers=num_workers))
    assert [len(b) for b in batches] == [4, 2]
    expected = preprocess.batch([decode_image(b) for b in blobs])
    assert torch.equal(torch.cat(batches), expected)


def test_a_bad_image_raises_catalog_error_naming_it(blobs):
    bad = [*blobs[:2], b"not a jpeg"]
    with pytest.raises(CatalogError, match="id 42"):
        list(iter_pixel_batches(bad, 64, batch_size=2, num_workers=1, where=["id 1", "id 2", "id 42"]))


def test_nothing_in_nothing_out():
    assert list(iter_pixel_batches([], 64)) == []


def test_embeddings_from_the_pipeline_match_the_processor_path(processed_dir):
    frame = load_processed(processed_dir).frame
    blobs = list(frame["image"][:24])
    encoder = ClipEncoder(tiny_model(seed=0), batch_size=8)
    reference = encoder.encode_images([decode_image(b) for b in blobs])  # HF CLIPImageProcessor inside
    ours = embed_image_bytes(encoder, blobs, batch_size=8, num_workers=1)
    assert ours.shape == reference.shape
    assert (ours * reference).sum(axis=1).min() >= 0.999
