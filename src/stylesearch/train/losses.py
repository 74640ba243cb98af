"""The contrastive loss and the learning-rate schedule: pure functions, tested by hand-computed cases."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# CLIP clamps its learned temperature so logits never exceed 100x the cosine.
MAX_LOGIT_SCALE = math.log(100.0)


def same_item_mask(groups: torch.Tensor) -> torch.Tensor:
    """(n, n) bool: True where two batch items share a title or image (the same `group`)."""
    return groups[:, None] == groups[None, :]


def contrastive_loss(
    image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, same: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE over L2-normalised `image` and `text` rows.

    Items that share a title or image are positives for each other, not negatives: the target
    distribution of each row spreads evenly over its positives.

    >>> e = torch.eye(2)
    >>> round(contrastive_loss(e, e, torch.tensor(0.0)).item(), 4)  # scale 1: log(1 + e^-1)
    0.3133
    """
    logits = logit_scale.exp() * image @ text.t()
    if same is None:
        same = torch.eye(len(image), dtype=torch.bool, device=image.device)
    targets = same.float() / same.float().sum(dim=1, keepdim=True)
    loss_i = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_t = -(targets.t() * F.log_softmax(logits.t(), dim=1)).sum(dim=1).mean()
    return (loss_i + loss_t) / 2


def sigmoid_loss(
    image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor,
    same: torch.Tensor | None = None,
) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss: every (image, text) pair is its own binary "same product?" question.

    No softmax over the batch, so positives that share a title need no target spreading: each is
    simply labelled +1. Summed over a row's pairs and averaged over rows, as in Zhai et al. (2023).

    >>> e = torch.eye(2)
    >>> round(sigmoid_loss(e, e, torch.tensor(0.0), torch.tensor(0.0)).item(), 4)  # per row: log(1 + e^-1) + log 2
    1.0064
    """
    logits = logit_scale.exp() * image @ text.t() + logit_bias
    if same is None:
        same = torch.eye(len(image), dtype=torch.bool, device=image.device)
    labels = same.float() * 2 - 1
    return -F.logsigmoid(labels * logits).sum() / len(image)


LOSSES = ("softmax", "sigmoid")
# SigLIP starts its bias at -10 so the many negative pairs do not dominate the first steps.
SIGMOID_BIAS_INIT = -10.0


def lr_at(step: int, *, base_lr: float, warmup: int, total: int, min_ratio: float = 0.0,
          elapsed: float = 0.0, budget: float | None = None) -> float:
    """Linear warmup to `base_lr`, then cosine decay to `min_ratio * base_lr`.

    The decay ends at `total` steps or, when a wall-clock `budget` (seconds) is given, when `elapsed`
    reaches it, whichever comes first: a run cut by its time budget still ends annealed.

    >>> lr_at(50, base_lr=1.0, warmup=0, total=1000, elapsed=30.0, budget=60.0)  # half the budget gone
    0.5
    """
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if budget:
        progress = max(progress, min(1.0, elapsed / budget))
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
