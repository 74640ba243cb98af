"""Several text views of one product (title, colour + type, gender + usage, ...), one drawn per step.

Marqo-FashionCLIP's GCL trains against several fields of a product instead of one caption. Here
each training step draws one view per product from the torch RNG, which the training loop seeds
per batch, so the drawn texts are a pure function of (seed, epoch, batch) and --resume replays them.

Two different products can share a short view ("Black Tshirts"): `ViewCollator` makes such rows
positives for each other, or the loss would push apart captions that are word for word the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import torch
from torchvision.transforms import v2

from stylesearch.errors import StylesearchError
from stylesearch.pairs import PairCollator, ProductPairs
from stylesearch.prepare import union_roots

# name -> the columns it joins, in order; "title" and "full_text" are the prepared text columns.
VIEWS: dict[str, tuple[str, ...]] = {
    "full_text": ("full_text",),
    "title": ("title",),
    "colour_type": ("baseColour", "articleType"),
    "gender_usage_type": ("gender", "usage", "articleType"),
    "gender_colour_type": ("gender", "baseColour", "articleType"),
    "season_type": ("season", "articleType"),
}
# "views" trains on all of them; a name of VIEWS alone is one fixed view (full_text is the baseline).
MODES = ("views", *VIEWS)


def view_text(row: pd.Series | dict, view: str) -> str:
    """The words of one view of one product; empty fields are left out."""
    parts = []
    for column in VIEWS[view]:
        value = row.get(column) if hasattr(row, "get") else None
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            continue
        text = str(value).strip()
        if text:
            parts.append(text)
    return " ".join(parts)


def product_views(frame: pd.DataFrame, names: Sequence[str] = tuple(VIEWS)) -> list[list[str]]:
    """Per product, its distinct non-empty views (always at least one: the first that has words)."""
    out = []
    for _, row in frame.iterrows():
        texts: list[str] = []
        for name in names:
            text = view_text(row, name)
            if text and text not in texts:
                texts.append(text)
        out.append(texts or [str(row.get("title", ""))])
    return out


class ProductViews(ProductPairs):
    """`ProductPairs` whose text is one view drawn per access from torch's (per-batch seeded) RNG."""

    def __init__(self, frame: pd.DataFrame, transform: v2.Compose, views: Sequence[str] = tuple(VIEWS)):
        super().__init__(frame, transform)
        unknown = [v for v in views if v not in VIEWS]
        if unknown:
            raise StylesearchError(f"unknown text view(s) {', '.join(unknown)}; known: {', '.join(VIEWS)}")
        self.views = product_views(frame, views)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str, int]:
        pixels, _, group = super().__getitem__(i)
        choices = self.views[i]
        pick = int(torch.randint(len(choices), (1,)).item()) if len(choices) > 1 else 0
        return pixels, choices[pick], group


def merge_equal_texts(texts: Sequence[str], groups: Sequence[int]) -> list[int]:
    """Relabel groups so rows with the same text (case-insensitive) also share a group.

    >>> merge_equal_texts(["Black Tshirts", "red dress", "black tshirts"], [7, 8, 9])
    [7, 8, 7]
    """
    roots = union_roots(len(texts), ([t.strip().lower() for t in texts], list(groups)))
    return [int(groups[r]) for r in roots]


class ViewCollator:
    """`PairCollator`, then rows with equal texts become positives of each other."""

    def __init__(self, inner: PairCollator | Callable):
        self.inner = inner

    def __call__(self, batch: Sequence[tuple[torch.Tensor, str, int]]) -> dict[str, torch.Tensor]:
        out = self.inner(batch)
        texts = [b[1] for b in batch]
        out["groups"] = torch.tensor(merge_equal_texts(texts, [int(b[2]) for b in batch]))
        return out


def training_texts(frame: pd.DataFrame, transform: v2.Compose, collate: PairCollator,
                   mode: str) -> tuple[ProductPairs, Callable]:
    """The dataset and collator for `TrainConfig.text_views`: one fixed column, or all views drawn per step."""
    if mode not in MODES:
        raise StylesearchError(f"text views {mode!r}: use one of {', '.join(MODES)}")
    if mode == "full_text":
        return ProductPairs(frame, transform), collate
    if mode == "views":
        return ProductViews(frame, transform), ViewCollator(collate)
    return ProductViews(frame, transform, views=(mode,)), ViewCollator(collate)
