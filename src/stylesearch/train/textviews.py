"""Several text views of one product (title, colour + type, gender + usage, ...), as Marqo-FashionCLIP's GCL.

GCL trains against several fields of a product instead of one caption. Two ways are offered:

- ``views``: each step draws one view per product from the torch RNG, which the training loop seeds
  per batch, so the drawn texts are a pure function of (seed, epoch, batch) and --resume replays them.
  One text forward per product, as plain training.
- ``views-sum``: every view of every product in each step, one contrastive loss per view, averaged.
  Costs one text forward per view, but every step sees every field.

Two different products can share a short view ("Black Tshirts"). Each text carries a stable key
(`text_key`); the loss gathers the keys with the groups, so such rows are positives of each other
across the whole global batch, on every torchrun rank, or the loss would push apart captions that
are word for word the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torchvision.transforms import v2

from stylesearch.data.prepare import union_roots
from stylesearch.errors import StylesearchError
from stylesearch.train.pairs import PairCollator, ProductPairs

# name -> the columns it joins, in order; "title" and "full_text" are the prepared text columns.
VIEWS: dict[str, tuple[str, ...]] = {
    "full_text": ("full_text",),
    "title": ("title",),
    "colour_type": ("baseColour", "articleType"),
    "gender_usage_type": ("gender", "usage", "articleType"),
    "gender_colour_type": ("gender", "baseColour", "articleType"),
    "season_type": ("season", "articleType"),
}
# "views" draws one view per step, "views-sum" averages a loss per view; a name of VIEWS alone is one
# fixed view (full_text is the baseline).
MODES = ("views", "views-sum", *VIEWS)


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


def every_view(frame: pd.DataFrame, names: Sequence[str] = tuple(VIEWS)) -> list[tuple[str, ...]]:
    """Per product, one text per view name in order; an empty view falls back to the product's first text.

    Every product has the same number of texts, so a batch's view v is a clean (batch, dim) block.
    """
    out = []
    for _, row in frame.iterrows():
        texts = [view_text(row, name) for name in names]
        fallback = next((t for t in texts if t), str(row.get("title", "")))  # as `product_views` falls back
        out.append(tuple(t or fallback for t in texts))
    return out


def text_key(text: str) -> int:
    """A stable 63-bit id of a text, ignoring case and spacing: the same on every process.

    >>> text_key("Black  Tshirts") == text_key("black tshirts")
    True
    """
    digest = hashlib.blake2b(" ".join(text.lower().split()).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def merge_equal_texts(keys: Sequence, groups: Sequence[int]) -> list[int]:
    """Relabel groups so rows with the same text key also share a group.

    >>> merge_equal_texts(["black tshirts", "red dress", "black tshirts"], [7, 8, 9])
    [7, 8, 7]
    """
    roots = union_roots(len(keys), (list(keys), list(groups)))
    return [int(groups[r]) for r in roots]


class ProductViews(ProductPairs):
    """`ProductPairs` whose text is one view drawn per access from torch's (per-batch seeded) RNG."""

    def __init__(self, frame: pd.DataFrame, transform: v2.Compose, views: Sequence[str] = tuple(VIEWS),
                 pixels: np.ndarray | None = None, title_share: float | None = None):
        super().__init__(frame, transform, pixels=pixels)
        _check_views(views)
        if title_share is not None and not 0.0 <= title_share <= 1.0:
            raise StylesearchError(f"title_share {title_share}: use a probability between 0 and 1")
        self.views = product_views(frame, views)
        self.title_share = title_share
        # Where each product's title sits among its distinct views (-1: no view is the bare title).
        titles = frame["title"].astype(str).str.strip() if "title" in frame else pd.Series([""] * len(frame))
        self.title_at = [texts.index(t) if t in texts else -1 for texts, t in zip(self.views, titles, strict=True)]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str, int]:
        pixels, _, group = super().__getitem__(i)
        return pixels, self.views[i][self._pick(i)], group

    def _pick(self, i: int) -> int:
        """One view index from torch's RNG: the title with probability `title_share`, else another evenly."""
        count, title = len(self.views[i]), self.title_at[i]
        if count == 1:
            return 0
        if self.title_share is None or title < 0:
            return int(torch.randint(count, (1,)).item())
        if torch.rand(()).item() < self.title_share:
            return title
        other = int(torch.randint(count - 1, (1,)).item())
        return other + (other >= title)  # skip the title's slot


class ProductAllViews(ProductPairs):
    """`ProductPairs` whose text is a tuple: every view of the product, in `views` order."""

    def __init__(self, frame: pd.DataFrame, transform: v2.Compose, views: Sequence[str] = tuple(VIEWS),
                 pixels: np.ndarray | None = None):
        super().__init__(frame, transform, pixels=pixels)
        _check_views(views)
        self.views = every_view(frame, views)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, tuple[str, ...], int]:
        pixels, _, group = super().__getitem__(i)
        return pixels, self.views[i], group


class ViewCollator:
    """Pixels, the texts of every view stacked view-major ((views x batch) rows), groups and text keys.

    With one text per product this is `PairCollator` plus `text_keys` of shape (1, batch).
    """

    def __init__(self, inner: PairCollator):
        self.inner = inner

    def __call__(self, batch: Sequence[tuple[torch.Tensor, str | tuple[str, ...], int]]) -> dict[str, torch.Tensor]:
        per_item = [(b[1],) if isinstance(b[1], str) else tuple(b[1]) for b in batch]
        views = len(per_item[0])
        texts = [item[v] for v in range(views) for item in per_item]  # view 0 of every row, then view 1, ...
        return {
            "pixel_values": torch.stack([b[0] for b in batch]),
            **self.inner.tokenize(texts),
            "groups": torch.tensor([int(b[2]) for b in batch]),
            "text_keys": torch.tensor([text_key(t) for t in texts], dtype=torch.int64).view(views, len(batch)),
        }


def _check_views(views: Sequence[str]) -> None:
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise StylesearchError(f"unknown text view(s) {', '.join(unknown)}; known: {', '.join(VIEWS)}")


def training_texts(frame: pd.DataFrame, transform: v2.Compose, collate: PairCollator, mode: str,
                   pixels: np.ndarray | None = None,
                   title_share: float | None = None) -> tuple[ProductPairs, PairCollator | ViewCollator]:
    """The dataset and collator for `TrainConfig.text_views`: one fixed column, one view per step, or all views.

    `pixels`: the rows' cached uint8 images (`stylesearch.train.pixelcache`), or None to decode JPEGs per step.
    `title_share`: in mode "views", how often the drawn view is the title (None: every view evenly).
    """
    if mode not in MODES:
        raise StylesearchError(f"text views {mode!r}: use one of {', '.join(MODES)}")
    if mode == "full_text":
        return ProductPairs(frame, transform, pixels=pixels), collate
    if mode == "views":
        return ProductViews(frame, transform, pixels=pixels, title_share=title_share), ViewCollator(collate)
    if mode == "views-sum":
        return ProductAllViews(frame, transform, pixels=pixels), ViewCollator(collate)
    return ProductViews(frame, transform, views=(mode,), pixels=pixels), ViewCollator(collate)
