"""`curate.neighbours`: the nearest train images, the query itself left out, and the votes they cast."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fakes import FakeEncoder
from stylesearch.config import TagConfig
from stylesearch.curate.neighbours import Neighbourhood, votes
from stylesearch.curate.tag import fit_columns, suggest


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_nearest_is_in_order_and_leaves_the_query_itself_out():
    train = unit(np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.5, 0.5, 0.1]], np.float32))
    hood = Neighbourhood(train, k=2)
    assert hood.nearest(train[:1]).tolist() == [[1, 3]]  # not row 0: that is the query's own photo
    assert hood.nearest(unit(np.array([[0.1, 1, 0]], np.float32))).tolist() == [[2, 3]]
    assert Neighbourhood(train[:2], k=3).nearest(train[:1]).tolist() == [[1, -1]]  # fewer than k: padded


def test_votes_skip_padding_and_neighbours_without_a_value():
    shares = votes(np.array([[0, 1, -1], [1, 1, 1]]), np.array([2, -1]), 3)
    assert shares.tolist() == [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]


def two_looks(rng: np.random.Generator, n: int = 300) -> tuple[pd.DataFrame, np.ndarray]:
    """`slim` products photographed two ways (two clusters), `loose` ones between them.

    The mean `slim` image points where the `loose` ones are, so one prototype per value cannot tell
    them apart; the nearest look-alikes can.
    """
    fit = np.where(np.arange(n) % 3 == 0, "loose", "slim")
    centre = np.where(fit[:, None] == "loose", [[1.0, 1.0, 0.0]],
                      np.where(np.arange(n)[:, None] % 2 == 0, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]))
    vectors = np.zeros((n, FakeEncoder.dim), np.float32)
    vectors[:, :3] = centre + rng.normal(0, 0.08, (n, 3))
    split = np.array(["train"] * (n * 2 // 3) + ["val"] * (n // 6) + ["test"] * (n - n * 2 // 3 - n // 6))
    frame = pd.DataFrame({"id": [str(i) for i in range(n)], "split": split, "fit": fit,
                          "title": [f"{f} jeans" for f in fit]})
    return frame, unit(vectors)


def test_look_alikes_tell_apart_what_one_prototype_per_value_cannot():
    frame, vectors = two_looks(np.random.default_rng(0))
    test = (frame["split"] == "test").to_numpy()

    def accuracy(cfg: TagConfig) -> tuple[float, float]:
        models = fit_columns(FakeEncoder(), frame, vectors, cfg, ["fit"])
        out = suggest(frame[test].reset_index(drop=True), vectors[test], models)
        return float((out["value"].to_numpy() == frame.loc[test, "fit"].to_numpy()).mean()), \
            models["fit"].neighbour_weight

    without, _ = accuracy(TagConfig(neighbour_weights=(0.0,)))
    with_votes, weight = accuracy(TagConfig())
    assert weight > 0  # the val split chose to listen to the neighbours
    assert with_votes >= 0.95 and with_votes > without + 0.2
