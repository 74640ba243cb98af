"""Image-text pairs for training: torchvision v2 augmentation, a Dataset over the processed catalogue."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from stylesearch.data.images import decode_image
from stylesearch.errors import StylesearchError
from stylesearch.model.clip import CLIP_MEAN, CLIP_STD

AUGMENTATIONS = ("crop-flip-rotate", "crop-flip", "flip", "none")


def train_transform(size: int, *, hue_jitter: bool = False, augment: str = "crop-flip-rotate") -> v2.Compose:
    """Augmentations that keep what captions say true; they take a PIL image or a uint8 (3, h, w) tensor.

    No hue or saturation jitter by default: captions name colours ("navy blue shirt"), and a
    recoloured image would teach the model that the words are wrong. `augment` trades variety for
    steps: `small` uses `none` (it beat a mirror alone, which beat a mild crop + mirror), `tiny`
    `crop-flip` (a mild square crop of the cached square, and a mirror).
    """
    if augment not in AUGMENTATIONS:
        raise StylesearchError(f"unknown augmentation {augment!r}; use one of {', '.join(AUGMENTATIONS)}")
    steps: list[v2.Transform] = [v2.ToImage()]
    if augment == "crop-flip-rotate":
        jitter = v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2 if hue_jitter else 0,
                                hue=0.05 if hue_jitter else 0)
        steps += [v2.RandomResizedCrop(size, scale=(0.8, 1.0), ratio=(0.75, 1.333), antialias=True),
                  v2.RandomHorizontalFlip(), v2.RandomRotation(10, fill=255), jitter]
    elif augment == "crop-flip":
        steps += [v2.RandomResizedCrop(size, scale=(0.8, 1.0), ratio=(0.9, 1.1), antialias=True),
                  v2.RandomHorizontalFlip()]
    else:
        steps += [v2.Resize([size, size], antialias=True)] + ([v2.RandomHorizontalFlip()] if augment == "flip" else [])
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(CLIP_MEAN, CLIP_STD)])


class ProductPairs(Dataset):
    """(pixels, text, group) per product; `group` marks rows sharing a title or image.

    `pixels` (optional, `stylesearch.train.pixelcache`): the rows' images already decoded as uint8 (n, 3, h, w);
    the transform then augments tensors and no JPEG is decoded during training.
    """

    def __init__(self, frame: pd.DataFrame, transform: v2.Compose, text_column: str = "full_text",
                 pixels: np.ndarray | None = None):
        self.pixels = pixels
        self.images = frame["image"].tolist() if pixels is None else []
        self.texts = frame[text_column].astype(str).tolist()
        self.groups = frame["group"].astype(int).tolist() if "group" in frame else list(range(len(frame)))
        self.ids = frame["id"].astype(str).tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str, int]:
        if self.pixels is not None:
            image = torch.from_numpy(np.array(self.pixels[i]))  # a copy: the memory map is read-only
        else:
            image = decode_image(self.images[i], where=f"id {self.ids[i]}")
        return self.transform(image), self.texts[i], self.groups[i]


class PairCollator:
    """Stack pixels; tokenise the batch's texts padded to its longest item."""

    def __init__(self, tokenizer, max_tokens: int):
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens,
                                return_tensors="pt")
        return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}

    def __call__(self, batch: Sequence[tuple[torch.Tensor, str, int]]) -> dict[str, torch.Tensor]:
        pixels, texts, groups = zip(*batch, strict=True)
        return {"pixel_values": torch.stack(pixels), **self.tokenize(texts), "groups": torch.tensor(groups)}
