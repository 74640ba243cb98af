"""Test doubles: an encoder whose outputs are known exactly."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from stylesearch.synthetic import COLOURS

COLOUR_NAMES = list(COLOURS)


class FakeEncoder:
    """One-hot per colour word for texts, nearest palette colour of the centre pixel for images."""

    dim = len(COLOUR_NAMES) + 1
    fingerprint = "fake-colour-encoder"

    def _one_hot(self, index: int | None) -> np.ndarray:
        vec = np.zeros(self.dim, np.float32)
        vec[self.dim - 1 if index is None else index] = 1.0
        return vec

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            lower = text.lower()
            # longest name first so "navy blue" wins over "blue"
            hit = next((i for i, n in sorted(enumerate(COLOUR_NAMES), key=lambda p: -len(p[1]))
                        if n.lower() in lower), None)
            rows.append(self._one_hot(hit))
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        rows = []
        for image in images:
            rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
            h, w, _ = rgb.shape
            pixel = rgb[h // 2, w // 2]
            palette = np.array(list(COLOURS.values()), dtype=np.float32)
            rows.append(self._one_hot(int(np.argmin(((palette - pixel) ** 2).sum(1)))))
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)
