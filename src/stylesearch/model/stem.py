"""A convolutional stem for CLIP's vision tower: a few stride-2 convolutions in place of one patchify.

A ViT trained from scratch on tens of thousands of photos learns edges and textures slowly from one
linear patch projection; a small stack of 3x3 convolutions gives it that prior ("Early convolutions
help transformers see better", Xiao et al. 2021). The stem makes the same token grid as the patch
embedding it replaces, so the rest of `CLIPModel` (and saving, ONNX export, search) is unchanged.
The kind is recorded in the vision config (`stylesearch_stem`), so a saved checkpoint is rebuilt
with its stem before its weights load.
"""

from __future__ import annotations

import math

import torch
from torch import nn

STEM_KEY = "stylesearch_stem"
# conv: one stride-2 3x3 convolution per halving; conv2: each followed by a stride-1 residual 3x3.
STEMS = ("patch", "conv", "conv2")


class Residual(nn.Module):
    """x + ReLU(BN(conv3x3(x))): more depth per resolution without making the stem harder to train."""

    def __init__(self, width: int):
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.norm(self.conv(x)))


class ConvStem(nn.Module):
    """log2(patch) stride-2 conv-BN-ReLU blocks widening to `hidden`, then a 1x1 projection."""

    def __init__(self, hidden: int, patch_size: int, channels: int = 3, residual: bool = False):
        super().__init__()
        depth = int(math.log2(patch_size))
        if 2**depth != patch_size or depth < 1:
            raise ValueError(f"a conv stem needs a power-of-two patch size, not {patch_size}")
        widths = [max(hidden >> (depth - 1 - i), 16) for i in range(depth)]
        layers: list[nn.Module] = []
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            if residual:
                layers.append(Residual(width))
            channels = width
        self.blocks = nn.Sequential(*layers)
        self.project = nn.Conv2d(channels, hidden, 1)

    @property
    def weight(self) -> torch.Tensor:
        # CLIPVisionEmbeddings casts its input to `patch_embedding.weight.dtype`.
        return self.project.weight

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.project(self.blocks(pixels))


def install_stem(model: nn.Module, kind: str) -> nn.Module:
    """Give `model` (a CLIPModel) the vision stem `kind` and record it in its config; returns the model."""
    if kind not in STEMS:
        raise ValueError(f"unknown vision stem {kind!r}; stems: {', '.join(STEMS)}")
    if kind != "patch":
        vision = model.config.vision_config
        model.vision_model.embeddings.patch_embedding = ConvStem(vision.hidden_size, vision.patch_size,
                                                                 vision.num_channels, residual=kind == "conv2")
    setattr(model.config.vision_config, STEM_KEY, kind)
    return model


def stem_of(config: object) -> str:
    """The stem a CLIPConfig says its vision tower has ("patch" for every ordinary CLIP)."""
    return str(getattr(getattr(config, "vision_config", None), STEM_KEY, "patch"))
