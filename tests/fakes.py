"""Test doubles (an encoder whose outputs are known exactly) and small training-test helpers."""

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


def interrupt_training_at(monkeypatch, step: int) -> None:
    """Make `train` raise KeyboardInterrupt as step `step` starts, as a Ctrl-C there would.

    `monkeypatch.undo()` ends it.
    """
    import stylesearch.train as train_module

    real_lr_at = train_module.lr_at

    def interrupted(at: int, **kw):
        if at == step:
            raise KeyboardInterrupt
        return real_lr_at(at, **kw)

    monkeypatch.setattr(train_module, "lr_at", interrupted)


def same_weights(a, b, atol: float = 1e-5) -> bool:
    """Whether two checkpoint directories hold the same weights, tensor by tensor."""
    import torch
    from safetensors.torch import load_file

    first, second = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return first.keys() == second.keys() and all(torch.allclose(first[k], second[k], atol=atol) for k in first)
