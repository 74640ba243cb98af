"""The per-epoch validation signal: the split decoded once per run, embedded once per epoch.

Recall and loss used to embed the split once each per epoch, each time decoding every JPEG again: time
a budgeted run spent off its training steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from stylesearch.data.images import decode_image
from stylesearch.data.prepare import normalise_title
from stylesearch.evaluate.metrics import Embedded, batched_loss, embed, title_retrieval
from stylesearch.model.clip import ClipEncoder, LoadedModel
from stylesearch.train.losses import MAX_LOGIT_SCALE

# Keep the preprocessed split in memory up to this size (1,000 products at 64 px take 49 MB); above it,
# e.g. 2,000 at ViT-B/32's 224 px (1.2 GB), each epoch preprocesses its images again.
MAX_CACHED_BYTES = 256 * 2**20
# Larger batches than search's 64 run a small model's inference faster on a CPU.
EVAL_BATCH = 256


@dataclass
class ValidationSet:
    """A validation split ready to embed: its table and, when small enough, its model-ready pixels."""

    frame: pd.DataFrame
    pixels: torch.Tensor | None = None

    @classmethod
    def build(cls, loaded: LoadedModel, frame: pd.DataFrame) -> ValidationSet:
        size = int(loaded.model.config.vision_config.image_size)
        if len(frame) * 3 * size * size * 4 > MAX_CACHED_BYTES:
            return cls(frame)
        return cls(frame, _preprocess(loaded, frame))

    def embed(self, encoder: ClipEncoder) -> Embedded:
        """Image and `full_text` embeddings of every product, in the frame's order."""
        frame = self.frame
        if self.pixels is None:
            return embed(encoder, frame)  # decodes the JPEGs again, as evaluation does
        parts = [encoder.encode_pixels(self.pixels[s:s + EVAL_BATCH]) for s in range(0, len(frame), EVAL_BATCH)]
        image = np.concatenate(parts) if parts else np.zeros((0, encoder.dim), np.float32)
        groups = frame["group"].to_numpy() if "group" in frame else np.arange(len(frame))
        return Embedded(image=image, text=encoder.encode_texts(frame["full_text"].astype(str).tolist()),
                        title_keys=[normalise_title(str(t)) for t in frame["title"]], groups=np.array(groups))

    def metrics(self, loaded: LoadedModel, batch_size: int) -> dict[str, float]:
        """Full-gallery title->image R@1/5/10 and MRR, and the contrastive loss in batches of `batch_size`."""
        encoder = ClipEncoder(loaded, batch_size=EVAL_BATCH, device=next(loaded.model.parameters()).device)
        emb = self.embed(encoder)  # ClipEncoder puts the model in eval mode
        recall = title_retrieval(encoder, emb, self.frame["title"].tolist(), (1, 5, 10))["t2i"]
        scale = float(loaded.model.logit_scale.detach().clamp(max=MAX_LOGIT_SCALE))
        return {**recall, "val_loss": batched_loss(emb.image, emb.text, emb.groups, scale, batch_size)}


def _preprocess(loaded: LoadedModel, frame: pd.DataFrame) -> torch.Tensor:
    processor = loaded.processor.image_processor
    parts = []
    for start in range(0, len(frame), EVAL_BATCH):
        rows = frame.iloc[start:start + EVAL_BATCH]
        batch = [decode_image(b, where=f"id {i}").convert("RGB") for b, i in zip(rows["image"], rows["id"],
                                                                               strict=True)]
        parts.append(processor(images=batch, return_tensors="pt")["pixel_values"])
    return torch.cat(parts) if parts else torch.zeros(0)
