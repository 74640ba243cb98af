"""The confusable sampler puts look-alikes in one batch, and every sampler is a pure function of (seed, epoch)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from fakes import batch_confusability, interrupt_training_at, same_weights
from stylesearch.train.sampler import (
    confusable_batches,
    epoch_batches,
    hard_batches,
    mine_neighbours,
    mixed_batches,
    plan_batches,
)


@pytest.fixture()
def labelled() -> pd.DataFrame:
    """Known labels: 3 subCategories x 2 article types x 4 colours x 4 products = 96 rows, shuffled."""
    rows = []
    types = {"Dress": ("Dresses", "Nightdress"), "Bottomwear": ("Skirts", "Shorts"),
             "Shoes": ("Casual Shoes", "Sports Shoes")}
    for sub, pair in types.items():
        for article, colour, _n in itertools.product(pair, ("Black", "Blue", "Navy Blue", "Red"), range(4)):
            rows.append({"subCategory": sub, "articleType": article, "baseColour": colour})
    frame = pd.DataFrame(rows).sample(frac=1, random_state=0).reset_index(drop=True)
    return frame


def test_confusable_batches_hold_one_subcategory_with_mixed_types_and_colours(labelled):
    batches = confusable_batches(labelled, 16, seed=0, epoch=0)
    for batch in batches:
        rows = labelled.iloc[batch]
        assert rows["subCategory"].nunique() == 1
        assert rows["articleType"].nunique() == 2  # dress beside nightdress, skirt beside shorts
        for _, same_type in rows.groupby("articleType"):
            assert same_type["baseColour"].nunique() == 4  # one type in every colour


def test_confusable_batches_are_far_more_confusable_than_random(labelled):
    random = batch_confusability(labelled, epoch_batches(len(labelled), 16, 0, 0))
    confusable = batch_confusability(labelled, confusable_batches(labelled, 16, 0, 0))
    assert confusable["sub_diff_type"] > 2 * random["sub_diff_type"]
    assert confusable["type_diff_colour"] > 2 * random["type_diff_colour"]


def test_every_sampler_uses_each_product_once_and_matches_the_random_batch_count(labelled):
    random = plan_batches("random", labelled, 10, 3, 1)
    neighbours = mine_neighbours(np.eye(len(labelled), dtype=np.float32))
    for batches in (plan_batches("confusable", labelled, 10, 3, 1), plan_batches("mixed", labelled, 10, 3, 1),
                    hard_batches(neighbours, 10, 3, 1)):
        assert sorted(i for b in batches for i in b) == list(range(len(labelled)))
        assert len(batches) == len(random)


@pytest.mark.parametrize("n", [2, 17, 91, 96])
def test_mixed_batches_match_the_random_count_for_any_size(labelled, n):
    frame = labelled.head(n).reset_index(drop=True)
    for size in (4, 10, 16):
        mixed, random = plan_batches("mixed", frame, size, 1, 0), plan_batches("random", frame, size, 1, 0)
        assert len(mixed) == len(random)
        used = [i for b in mixed for i in b]
        assert len(used) == len(set(used)) == sum(map(len, random))  # each product at most once, as many as random
        assert sorted(map(len, mixed)) == sorted(map(len, random))


def test_mixed_batches_sit_between_random_and_confusable(labelled):
    random = batch_confusability(labelled, epoch_batches(len(labelled), 8, 0, 0))
    mixed = batch_confusability(labelled, mixed_batches(labelled, 8, 0, 0))
    confusable = batch_confusability(labelled, confusable_batches(labelled, 8, 0, 0))
    for key in ("sub_diff_type", "type_diff_colour"):
        assert random[key] < mixed[key] < confusable[key]
    blocks = [b for b in mixed_batches(labelled, 8, 0, 0) if labelled.iloc[b]["subCategory"].nunique() == 1]
    assert 0.3 <= len(blocks) / 12 <= 0.8  # about half the batches are one-subCategory blocks


def test_batches_are_a_pure_function_of_seed_and_epoch(labelled):
    assert confusable_batches(labelled, 16, 0, 2) == confusable_batches(labelled, 16, 0, 2)
    assert confusable_batches(labelled, 16, 0, 2) != confusable_batches(labelled, 16, 0, 3)
    assert mixed_batches(labelled, 16, 0, 2) == mixed_batches(labelled, 16, 0, 2)
    assert mixed_batches(labelled, 16, 0, 2) != mixed_batches(labelled, 16, 0, 3)
    assert plan_batches("random", labelled, 16, 0, 2) == epoch_batches(len(labelled), 16, 0, 2)


def test_hard_batches_put_each_anchor_beside_its_nearest_neighbours():
    # Eight tight pairs of near-identical vectors: mining must find each item's twin.
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 16))
    vectors = np.repeat(centres, 2, axis=0) + 0.01 * rng.normal(size=(16, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    neighbours = mine_neighbours(vectors.astype(np.float32), k=3)
    assert all(neighbours[i, 0] == (i ^ 1) for i in range(16))  # row i's twin is i+1 or i-1
    for batch in hard_batches(neighbours, 4, seed=0, epoch=0, per_anchor=1):
        assert {i // 2 for i in batch} == {batch[0] // 2, batch[2] // 2}  # two twin pairs per batch


def test_unknown_sampler_is_refused(labelled):
    from stylesearch.errors import StylesearchError

    with pytest.raises(StylesearchError, match="unknown sampler"):
        plan_batches("clever", labelled, 16, 0, 0)


def test_resume_replays_hard_batches_and_drawn_text_views_exactly(processed_dir, tmp_path, monkeypatch):
    import json
    from dataclasses import replace

    import stylesearch.train.loop as train_module
    from stylesearch.config import TrainConfig
    from stylesearch.data.prepare import load_processed

    cfg = TrainConfig(base_model="tiny", lr=1e-3, batch_size=16, epochs=2, warmup_steps=3, patience=5,
                      save_every_steps=4)
    cfg = replace(cfg, sampler="hard", text_views="views")
    catalog = load_processed(processed_dir)
    full = train_module.train(catalog, cfg, tmp_path / "full")
    assert sorted(p.name for p in (tmp_path / "full" / "mined").iterdir()) == ["epoch-0.npy", "epoch-1.npy"]

    interrupt_training_at(monkeypatch, 6)
    assert train_module.train(catalog, cfg, tmp_path / "cut").stopped == "interrupted"
    monkeypatch.undo()
    resumed = train_module.train(catalog, cfg, tmp_path / "cut", resume=True)
    assert resumed.steps == full.steps
    assert same_weights(tmp_path / "full" / "last", tmp_path / "cut" / "last")
    losses = [[s["loss"] for s in json.loads((tmp_path / r / "history.json").read_text())["steps"]]
              for r in ("full", "cut")]
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
