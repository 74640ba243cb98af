"""Test doubles (an encoder whose outputs are known exactly) and small training-test helpers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from stylesearch.data.synthetic import COLOURS

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
    import stylesearch.train.loop as train_module

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


def same_model_weights(a, b) -> bool:
    """Whether two loaded models hold bit-for-bit equal tensors under the same names."""
    import torch

    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def sha256_dir(path, pattern: str = "*") -> str:
    """One hash over every file's name and content below `path` (stable order)."""
    import hashlib
    from pathlib import Path

    from stylesearch.common.files import sha256_file

    digest = hashlib.sha256()
    for child in sorted(Path(path).rglob(pattern)):
        if child.is_file():
            digest.update(child.relative_to(path).as_posix().encode())
            digest.update(sha256_file(child).encode())
    return digest.hexdigest()


def batch_confusability(frame, batches) -> dict[str, float]:
    """Mean share of in-batch pairs that are confusable: same subCategory but different articleType,
    or same articleType but different colour."""
    from collections import defaultdict

    sub, typ, col = (frame[c].astype("string").fillna("?").to_numpy() for c in ("subCategory", "articleType",
                                                                                 "baseColour"))
    shares: dict[str, list[float]] = defaultdict(list)
    for batch in batches:
        idx = np.asarray(batch)
        if len(idx) < 2:
            continue
        upper = np.triu(np.ones((len(idx), len(idx)), bool), 1)
        same_sub = sub[idx][:, None] == sub[idx][None, :]
        same_typ = typ[idx][:, None] == typ[idx][None, :]
        same_col = col[idx][:, None] == col[idx][None, :]
        shares["sub_diff_type"].append(float((same_sub & ~same_typ)[upper].mean()))
        shares["type_diff_colour"].append(float((same_typ & ~same_col)[upper].mean()))
    return {k: float(np.mean(v)) for k, v in shares.items()}


def eval_transform(size: int):
    """CLIP's own preprocessing on PIL images: resize the short side, centre crop, normalise."""
    import torch
    from torchvision.transforms import v2

    from stylesearch.model.clip import CLIP_MEAN, CLIP_STD

    return v2.Compose([
        v2.ToImage(),
        v2.Resize(size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
        v2.CenterCrop(size),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(CLIP_MEAN, CLIP_STD),
    ])
