"""The train split's nearest products by image: their values vote on what a product is.

A value's text and mean-image prototypes are one point each, but "Blue" shirts, jeans and shoes sit
in different corners of the image space. The k most similar train photos carry that shape: when most
of a product's look-alikes are filed as Navy Blue, its own "Blue" is worth a second look. The votes
join the prototype scores in `curate.tag`, with a weight each column fits on its val split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A neighbour at least this close is the query's own photo (a train product asking about itself, or the
# same image under another id): it would vote for the label on file and hide the mislabel being looked for.
SELF_COSINE = 0.9999
BLOCK = 2048  # queries per block of the scan: 2048 x 27k float32 scores are ~220 MB
SPARE = 4  # neighbours fetched beyond k, to replace those dropped as the query itself


@dataclass(frozen=True)
class Neighbourhood:
    """Image vectors of the train split (L2-normalised rows) and how many of them vote."""

    vectors: np.ndarray
    k: int = 10

    def nearest(self, images: np.ndarray) -> np.ndarray:
        """(n, k) row numbers into `vectors` of each image's nearest train products, itself left out; -1 pads."""
        images = np.asarray(images, np.float32)
        k = min(self.k, len(self.vectors))
        out = np.full((len(images), k), -1, dtype=np.int64)
        if k == 0:
            return out
        fetch = min(k + SPARE, len(self.vectors))
        for start in range(0, len(images), BLOCK):
            scores = images[start:start + BLOCK] @ self.vectors.T
            top = np.argpartition(-scores, fetch - 1, axis=1)[:, :fetch]
            sims = np.take_along_axis(scores, top, axis=1)
            order = np.argsort(-sims, axis=1, kind="stable")
            top, sims = np.take_along_axis(top, order, axis=1), np.take_along_axis(sims, order, axis=1)
            for row, (ids, keep) in enumerate(zip(top, sims < SELF_COSINE, strict=True)):
                chosen = ids[keep][:k]
                out[start + row, :len(chosen)] = chosen
        return out


def votes(nearest: np.ndarray, codes: np.ndarray, values: int) -> np.ndarray:
    """(n, values): the share of each image's neighbours (`nearest`, rows of `codes`) filed under each value.

    >>> votes(np.array([[0, 1, 2], [2, -1, -1]]), np.array([1, 1, 0]), 2).tolist()
    [[0.3333333333333333, 0.6666666666666666], [1.0, 0.0]]
    """
    out = np.zeros((len(nearest), values), np.float64)
    valid = nearest >= 0
    labels = np.where(valid, codes[np.where(valid, nearest, 0)], -1)
    known = labels >= 0
    rows = np.repeat(np.arange(len(nearest)), nearest.shape[1]).reshape(nearest.shape)
    np.add.at(out, (rows[known], labels[known]), 1.0)
    return out / np.maximum(known.sum(axis=1, keepdims=True), 1)
