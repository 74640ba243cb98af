"""Text views: the fields each view joins, per-step drawing that resume can replay, equal texts as positives."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from fakes import eval_transform
from stylesearch.errors import StylesearchError
from stylesearch.train.pairs import PairCollator
from stylesearch.train.textviews import (
    ProductAllViews,
    ProductViews,
    ViewCollator,
    every_view,
    merge_equal_texts,
    product_views,
    text_key,
    training_texts,
    view_text,
)

ROW = {"title": "Nike Men Black Running Shoes", "full_text": "Nike Men Black Running Shoes, Sports",
       "baseColour": "Black", "articleType": "Sports Shoes", "gender": "Men", "usage": "Sports", "season": None}


def test_each_view_joins_its_fields_and_skips_empty_ones():
    assert view_text(ROW, "colour_type") == "Black Sports Shoes"
    assert view_text(ROW, "gender_usage_type") == "Men Sports Sports Shoes"
    assert view_text(ROW, "season_type") == "Sports Shoes"  # season is missing
    assert product_views(pd.DataFrame([ROW]), ("title", "colour_type"))[0] == [ROW["title"], "Black Sports Shoes"]


def test_a_drawn_view_is_replayed_by_the_same_torch_seed(processed_dir):
    frame = pd.read_parquet(processed_dir / "catalog.parquet").head(8)
    data = ProductViews(frame, eval_transform(32))
    draws = []
    for _ in range(2):
        torch.manual_seed(7)
        draws.append([data[i][1] for i in range(8)])
    assert draws[0] == draws[1]
    assert all(text in data.views[i] for i, text in enumerate(draws[0]))
    torch.manual_seed(8)
    assert len({data[0][1] for _ in range(30)}) > 1  # different steps see different views


def test_title_share_sets_how_often_the_title_is_drawn(processed_dir):
    frame = pd.read_parquet(processed_dir / "catalog.parquet").head(4)
    even, heavy = ProductViews(frame, eval_transform(32)), ProductViews(frame, eval_transform(32), title_share=0.8)
    assert len(even.views[0]) >= 3 and heavy.title_at[0] >= 0

    def title_rate(data: ProductViews) -> float:
        torch.manual_seed(0)
        return sum(data.views[0][data._pick(0)] == frame["title"].iloc[0] for _ in range(2000)) / 2000

    assert title_rate(heavy) == pytest.approx(0.8, abs=0.04)
    assert title_rate(even) == pytest.approx(1 / len(even.views[0]), abs=0.04)
    torch.manual_seed(1)
    others = {heavy.views[0][heavy._pick(0)] for _ in range(300)} - {frame["title"].iloc[0]}
    assert others == set(heavy.views[0]) - {frame["title"].iloc[0]}  # every other view still drawn
    assert ProductViews(frame, eval_transform(32), title_share=1.0)[0][1] == frame["title"].iloc[0]
    with pytest.raises(StylesearchError, match="title_share"):
        ProductViews(frame, eval_transform(32), title_share=1.5)
    data, _ = training_texts(frame, eval_transform(32), PairCollator(None, 77), "views", title_share=0.7)
    assert data.title_share == 0.7  # TrainConfig.title_share reaches the dataset the loop trains on


def test_rows_with_equal_texts_become_positives_of_each_other():
    keys = [text_key(t) for t in ["Black Tshirts", "Red Dress", "black  tshirts", "x"]]
    assert merge_equal_texts(keys, [1, 2, 3, 2]) == [1, 2, 1, 2]
    assert text_key("Black Tshirts") != text_key("Black Tshirt")


def test_collator_stacks_every_view_view_major_with_its_text_keys(tiny):
    collate = ViewCollator(PairCollator(tiny.processor.tokenizer, 77))
    pixels = torch.zeros(3, 32, 32)
    batch = [(pixels, ("Nike Black Shoes", "Black Sports Shoes"), 5), (pixels, ("Puma Red Tee", "Red Tshirts"), 6),
             (pixels, ("Adidas Black Shoes", "black sports shoes"), 7)]
    out = collate(batch)
    assert out["pixel_values"].shape[0] == 3 and out["input_ids"].shape[0] == 6
    assert out["groups"].tolist() == [5, 6, 7]  # product groups: equal texts are merged in the loss, per view
    keys = out["text_keys"]
    assert keys.shape == (2, 3)
    assert keys[1, 0] == keys[1, 2] and keys[0, 0] != keys[0, 2]
    decoded = tiny.processor.tokenizer.batch_decode(out["input_ids"], skip_special_tokens=True)
    assert [d.lower().strip() for d in decoded[:3]] == ["nike black shoes", "puma red tee", "adidas black shoes"]


def test_every_view_gives_each_product_one_text_per_view_falling_back_when_empty():
    frame = pd.DataFrame([ROW, {**ROW, "season": "Summer", "baseColour": None}])
    texts = every_view(frame, ("title", "colour_type", "season_type"))
    assert texts[0] == (ROW["title"], "Black Sports Shoes", "Sports Shoes")
    assert texts[1] == (ROW["title"], "Sports Shoes", "Summer Sports Shoes")
    empty = pd.DataFrame([{"title": "Plain Bag", "full_text": "Plain Bag"}])
    assert every_view(empty, ("title", "colour_type")) == [("Plain Bag", "Plain Bag")]


def test_summed_views_loss_is_the_mean_of_one_loss_per_view_with_equal_texts_as_positives():
    from stylesearch.train.loop import global_loss
    from stylesearch.train.losses import contrastive_loss, same_item_mask

    gen = torch.Generator().manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(4, 8, generator=gen), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(8, 8, generator=gen), dim=-1)  # 2 views x 4 rows
    groups, scale = torch.tensor([0, 1, 2, 3]), torch.tensor(2.0)
    keys = torch.tensor([[10, 11, 12, 13], [20, 21, 20, 23]])  # view 1: rows 0 and 2 have the same words
    got = global_loss(image, text, groups, scale, [4], keys)
    first = contrastive_loss(image, text[:4], scale, same_item_mask(groups))
    second = contrastive_loss(image, text[4:], scale, same_item_mask(torch.tensor([0, 1, 0, 3])))
    assert torch.allclose(got, (first + second) / 2)
    assert not torch.allclose(got, global_loss(image, text, groups, scale, [4]))  # the keys matter


def test_views_sum_trains_and_each_step_sees_every_view(processed_dir, tmp_path):
    from stylesearch.config import TrainConfig
    from stylesearch.data.prepare import load_processed
    from stylesearch.train.loop import train
    from stylesearch.train.textviews import VIEWS

    cfg = TrainConfig(base_model="tiny", lr=1e-3, batch_size=16, epochs=1, warmup_steps=1, text_views="views-sum",
                      save_every_steps=0)
    result = train(load_processed(processed_dir), cfg, tmp_path / "run")
    assert result.steps > 0 and all(s["loss"] == s["loss"] for s in result.history["steps"])
    frame = load_processed(processed_dir).split("train")
    data, collate = training_texts(frame, eval_transform(32), PairCollator(None, 77), "views-sum")
    assert isinstance(data, ProductAllViews) and len(data[0][1]) == len(VIEWS)


def test_unknown_view_is_refused(processed_dir):
    frame = pd.read_parquet(processed_dir / "catalog.parquet").head(2)
    with pytest.raises(StylesearchError, match="unknown text view"):
        ProductViews(frame, eval_transform(32), views=("smell",))
