"""Both CLIP towers in one training `forward`, with the text tower run on length buckets.

A batch of product texts is mostly short (titles average 9 tokens) with a few long ones, and padding
every row to the longest made three quarters of the text tower's work padding. CLIP's text tower is
causal and pools at the end-of-text token, so tokens after it never reach the embedding: running
rows sorted by length in a few buckets, each trimmed to its own longest row, gives the same
embeddings for about a third of the work (`benchmarks/train_throughput.py` has the figures).
"""

from __future__ import annotations

from typing import Any

import torch

# Four buckets of a 256-row batch cut the padded tokens to near the real ones; more buckets add
# per-call overhead for little.
TEXT_BUCKETS = 4


class PairEncoder(torch.nn.Module):
    """Both CLIP towers in one `forward`: DDP synchronises gradients only for what runs through `forward`."""

    def __init__(self, model: torch.nn.Module, buckets: int = TEXT_BUCKETS, logit_bias: float | None = None):
        super().__init__()
        self.model = model
        self.buckets = buckets
        # The sigmoid loss's learned bias lives here, not in the CLIP model: search never uses it, and a
        # checkpoint stays a plain CLIPModel. Here DDP averages its gradient with the towers'.
        self.logit_bias = None if logit_bias is None else torch.nn.Parameter(torch.tensor(float(logit_bias)))

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = pooled(self.model.get_image_features(pixel_values=pixel_values))
        text = text_features(self.model, input_ids, attention_mask, self.buckets)
        normalize = torch.nn.functional.normalize
        return normalize(image.float(), dim=-1), normalize(text.float(), dim=-1)


def text_features(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  buckets: int = TEXT_BUCKETS) -> torch.Tensor:
    """Projected text features, the rows run in `buckets` groups of similar length (same result, less work)."""
    lengths = attention_mask.sum(dim=1)
    if buckets <= 1 or len(lengths) < 2 * buckets or not _right_padded(attention_mask, lengths):
        return pooled(model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))
    order = torch.argsort(lengths, stable=True)
    parts = []
    for rows in torch.tensor_split(order, buckets):
        width = int(lengths[rows].max())
        parts.append(pooled(model.get_text_features(input_ids=input_ids[rows, :width],
                                                    attention_mask=attention_mask[rows, :width])))
    out = torch.cat(parts)
    return out[torch.argsort(order)]


def pooled(output: Any) -> torch.Tensor:
    """The projected embedding, from transformers 5's output object or an older bare tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _right_padded(attention_mask: torch.Tensor, lengths: torch.Tensor) -> bool:
    # Trimming is only exact when every row's real tokens come first.
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return bool(torch.equal(attention_mask.bool(), positions[None, :] < lengths[:, None]))


def sparse_token_grads(model: Any, enabled: bool) -> torch.nn.Embedding | None:
    """Make the text tower's token embedding emit sparse gradients; the embedding switched, or None.

    The table has a row for each of CLIP's 49,408 tokens (70% of `small`'s weights) but a batch touches a
    few hundred. A dense gradient zero-filled a 50 MB table once per text bucket, a tenth of a CPU step;
    a sparse one holds only the rows used, and `dense_grads` makes it dense once before the optimizer.
    """
    embedding = getattr(getattr(getattr(model, "text_model", None), "embeddings", None), "token_embedding", None)
    if not enabled or not isinstance(embedding, torch.nn.Embedding):
        return None
    embedding.sparse = True
    return embedding


def dense_grads(params: list[torch.nn.Parameter]) -> None:
    """Sparse gradients made dense (duplicate rows summed), for clipping and AdamW, which take dense ones."""
    for param in params:
        if param.grad is not None and param.grad.is_sparse:
            param.grad = param.grad.to_dense()
