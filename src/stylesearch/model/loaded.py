"""A loaded CLIP with its processor, and the weight fingerprint that ties indexes to it.

Its own module so that `checkpoint` (which saves one) and `clip` (which loads one) need not import
each other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from transformers import CLIPModel, CLIPProcessor


@dataclass
class LoadedModel:
    """A CLIP model with its processor and where it came from."""

    model: CLIPModel
    processor: CLIPProcessor
    name: str

    @property
    def fingerprint(self) -> str:
        return model_fingerprint(self.model)


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of the weights, so an index can refuse a model other than the one that built it."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
