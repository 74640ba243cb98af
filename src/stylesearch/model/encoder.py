"""The `Encoder` contract every later stage depends on, in a module light enough for a one-shot query.

`encode_texts` and `encode_images` return L2-normalised float32 rows; `fingerprint` names the weights.
Torch (`model.clip.ClipEncoder`), ONNX Runtime (`model.onnx_runtime.OnnxEncoder`) and the tests' fakes
all meet it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

FloatArray = np.ndarray
# Chosen by the batch sweep in benchmarks/run.py (ViT-B/32 int8, 2 cores; docs/performance.md):
# throughput is flat from 16 up, and 32 keeps a batch's pixels (19 MB) and activations small.
DEFAULT_BATCH_SIZE = 32
# One worker overlaps decoding with the model; more would steal the model's cores. On 2 busy cores
# with 60x80 photos it measured no gain (docs/performance.md): 0 is as good a choice there.
DEFAULT_WORKERS = 1


@runtime_checkable
class Encoder(Protocol):
    """What index, search, serve and evaluate need from a model."""

    dim: int
    fingerprint: str  # identifies the weights; indexes record it and refuse other models

    def encode_texts(self, texts: Sequence[str]) -> FloatArray: ...  # (n, dim), L2-normalised

    def encode_images(self, images: Sequence[Image.Image]) -> FloatArray: ...
