import numpy as np
import pytest
import torch

from stylesearch.data.images import decode_image
from stylesearch.data.prepare import load_processed
from stylesearch.model.clip import load_model
from stylesearch.model.preprocess import ClipPreprocess
from stylesearch.train.pairs import ProductPairs, train_transform
from stylesearch.train.pixelcache import FOLDER, cached_pixels


@pytest.fixture()
def train_rows(processed_dir):
    catalog = load_processed(processed_dir)
    frame = catalog.split("train")
    return catalog, frame["image"].tolist(), frame["id"].astype(str).tolist()


def test_cache_holds_the_same_pixels_as_the_pil_path_and_the_processor(train_rows, tmp_path):
    catalog, blobs, ids = train_rows
    processor = load_model("small").processor.image_processor
    preprocess = ClipPreprocess.from_processor(processor)
    pixels = cached_pixels(blobs, ids, preprocess, catalog_sha256="a", folders=[tmp_path], progress=False)
    assert pixels.shape == (len(blobs), 3, 64, 64) and pixels.dtype == np.uint8
    for i in range(len(blobs)):
        image = decode_image(blobs[i])
        assert np.array_equal(pixels[i], preprocess.crop_uint8(image).numpy())
    # Normalised, the cached row is what the model's own CLIPImageProcessor feeds it at search time.
    reference = processor(images=[decode_image(b) for b in blobs[:8]], return_tensors="pt")["pixel_values"]
    assert torch.allclose(preprocess.normalise(torch.from_numpy(np.array(pixels[:8]))), reference, atol=1e-5)


def test_cache_is_built_once_and_rebuilt_when_the_catalogue_changes(train_rows, tmp_path):
    _, blobs, ids = train_rows
    preprocess = ClipPreprocess.square(32)
    cached_pixels(blobs, ids, preprocess, catalog_sha256="v1", folders=[tmp_path], label="train", progress=False)
    [first] = (tmp_path / FOLDER).glob("train-32x32-*.npy")
    stamp = first.stat().st_mtime_ns
    cached_pixels(blobs, ids, preprocess, catalog_sha256="v1", folders=[tmp_path], label="train", progress=False)
    assert first.stat().st_mtime_ns == stamp  # read, not rebuilt

    cached_pixels(blobs, ids, preprocess, catalog_sha256="v2", folders=[tmp_path], label="train", progress=False)
    [second] = (tmp_path / FOLDER).glob("train-32x32-*.npy")
    assert second != first and not first.exists()  # a new catalogue hash: the stale cache is gone


def test_an_unwritable_catalogue_folder_falls_back_to_the_run_folder(train_rows, tmp_path):
    _, blobs, ids = train_rows
    unwritable, run = tmp_path / "catalog-is-a-file", tmp_path / "run"
    unwritable.write_text("not a folder")  # mkdir under it fails even for root, as a read-only mount would
    pixels = cached_pixels(blobs[:4], ids[:4], ClipPreprocess.square(16), catalog_sha256="a",
                           folders=[unwritable, run], progress=False)
    assert pixels.shape == (4, 3, 16, 16)
    assert list((run / FOLDER).glob("*.npy"))


def test_training_pairs_from_the_cache_are_augmented_tensors(train_rows, tmp_path):
    catalog, blobs, ids = train_rows
    frame = catalog.split("train")
    preprocess = ClipPreprocess.square(64)
    pixels = cached_pixels(blobs, ids, preprocess, catalog_sha256="a", folders=[tmp_path], progress=False)
    plain = ProductPairs(frame, train_transform(64, augment="none"), pixels=pixels)
    x, text, _ = plain[3]
    assert torch.allclose(x, preprocess.normalise(torch.from_numpy(np.array(pixels[3]))[None])[0], atol=1e-5)
    assert text == frame["full_text"].iloc[3]
    flipped = ProductPairs(frame, train_transform(64, augment="crop-flip"), pixels=pixels)
    draws = []
    for seed in range(6):
        torch.manual_seed(seed)
        draws.append(flipped[3][0])
    assert all(d.shape == (3, 64, 64) for d in draws)
    assert any(not torch.allclose(draws[0], d) for d in draws[1:])  # the augmentation is random per draw
