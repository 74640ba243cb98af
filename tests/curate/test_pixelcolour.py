"""`curate.pixelcolour`: what colour a photo's product pixels are, and how tag and audit listen to it."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fakes import FakeEncoder
from stylesearch.config import TagConfig
from stylesearch.curate.audit import contradictions
from stylesearch.curate.pixelcolour import (
    BRIGHTNESSES,
    FEATURES,
    GREYS,
    HUES,
    SATURATIONS,
    colour_features,
    colour_histogram,
    fit_colour_classifier,
)
from stylesearch.curate.tag import fit_columns, suggest

PAINT = {"Red": (200, 20, 30), "Navy Blue": (20, 30, 110), "Black": (15, 15, 15), "White": (252, 252, 252)}


def photo(colour: tuple[int, int, int], rng: np.random.Generator, size: int = 40) -> bytes:
    """A product of `colour` (a little noise and a shadow) on a white studio backdrop, as JPEG bytes."""
    image = Image.new("RGB", (size, size), (255, 255, 255))
    side = int(rng.integers(16, 30))
    top = int(rng.integers(0, size - side))
    patch = np.clip(np.array(colour, np.float32) + rng.normal(0, 8, (side, side, 3)), 0, 255).astype(np.uint8)
    image.paste(Image.fromarray(patch), (top, top))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def catalogue(n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Products whose image vectors say nothing about colour: only the pixels do."""
    rng = np.random.default_rng(seed)
    names = list(PAINT)
    colour = [names[i % len(names)] for i in range(n)]
    split = np.array(["train"] * (n // 2) + ["val"] * (n // 4) + ["test"] * (n - n // 2 - n // 4))
    frame = pd.DataFrame({"id": [str(i) for i in range(n)], "split": split, "baseColour": colour,
                          "title": ["shirt"] * n, "image": [photo(PAINT[c], rng) for c in colour]})
    vectors = rng.normal(size=(n, FakeEncoder.dim)).astype(np.float32)
    return frame, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_a_histogram_counts_the_product_not_the_backdrop():
    image = Image.new("RGB", (32, 32), "white")
    image.paste(Image.new("RGB", (16, 32), (220, 0, 0)), (0, 0))  # left half pure red
    features = colour_histogram(image)
    assert features.shape == (FEATURES,)
    assert features[-1] ** 2 == pytest.approx(0.5, abs=0.05)  # half the photo is backdrop
    chromatic = HUES * SATURATIONS * BRIGHTNESSES
    red = features[:BRIGHTNESSES * SATURATIONS]  # hue bin 0, every saturation and brightness
    assert red.max() ** 2 == pytest.approx(1.0, abs=0.05)  # every product pixel is red
    assert features[chromatic:chromatic + GREYS].max() == pytest.approx(0.0, abs=0.05)


def test_a_photo_that_does_not_decode_gets_no_colour_and_does_not_stop_the_rest():
    rng = np.random.default_rng(0)
    features = colour_features([photo(PAINT["Red"], rng), b"not a jpeg"], ["1", "2"])
    assert features[0].any() and not features[1].any()


def test_the_classifier_learns_colours_from_pixels():
    frame, _ = catalogue()
    features = colour_features(frame["image"].tolist(), frame["id"].tolist())
    names = list(PAINT)
    codes = np.array([names.index(c) for c in frame["baseColour"]])
    train = (frame["split"] == "train").to_numpy()
    model = fit_colour_classifier(features[train], codes[train], len(names))
    predicted = model.log_probabilities(features[~train]).argmax(axis=1)
    assert (predicted == codes[~train]).mean() >= 0.95  # White included: its photos are almost all backdrop


def test_tagging_hears_the_pixels_when_the_embedding_is_colour_blind():
    frame, vectors = catalogue()
    test = (frame["split"] == "test").to_numpy()

    def accuracy(cfg: TagConfig) -> tuple[float, float]:
        models = fit_columns(FakeEncoder(), frame, vectors, cfg, ["baseColour"])
        out = suggest(frame[test].reset_index(drop=True), vectors[test], models)  # colours made from the images
        return float((out["value"].to_numpy() == frame.loc[test, "baseColour"].to_numpy()).mean()), \
            models["baseColour"].colour_weight

    blind, _ = accuracy(TagConfig(colour_weights=(0.0,)))
    seeing, weight = accuracy(TagConfig())
    assert weight > 0  # val chose to listen to the pixels
    assert seeing >= 0.95 and seeing > blind + 0.4


def test_the_audit_ranks_a_flipped_colour_first_from_its_pixels():
    frame, vectors = catalogue()
    flipped = int(np.flatnonzero((frame["split"] == "test").to_numpy() & (frame["baseColour"] == "Red").to_numpy())[0])
    altered = frame.copy()
    altered.loc[flipped, "baseColour"] = "White"  # a red shirt filed as white
    models = fit_columns(FakeEncoder(), altered, vectors, TagConfig(neighbour_weights=(0.0,)), ["baseColour"])
    test_rows = np.flatnonzero((altered["split"] == "test").to_numpy())
    findings = contradictions(altered, vectors, models, test_rows)
    top = findings.iloc[0]
    assert (top["id"], top["current"], top["predicted"]) == (str(flipped), "White", "Red")


def test_a_model_that_weighs_pixels_refuses_to_guess_without_them():
    frame, vectors = catalogue()
    model = fit_columns(FakeEncoder(), frame, vectors, TagConfig(), ["baseColour"])["baseColour"]
    assert model.uses_colour
    with pytest.raises(ValueError, match="colour_features"):
        model.probabilities(vectors[:3])
