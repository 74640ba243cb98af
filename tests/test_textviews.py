"""Text views: the fields each view joins, per-step drawing that resume can replay, equal texts as positives."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from stylesearch.errors import StylesearchError
from stylesearch.pairs import eval_transform
from stylesearch.textviews import ProductViews, ViewCollator, merge_equal_texts, product_views, view_text

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


def test_rows_with_equal_texts_become_positives_of_each_other():
    assert merge_equal_texts(["Black Tshirts", "Red Dress", "black tshirts", "x"], [1, 2, 3, 2]) == [1, 2, 1, 2]

    def collate(batch):
        return {"groups": torch.tensor([b[2] for b in batch])}

    out = ViewCollator(collate)([(None, "Black Tshirts", 5), (None, "Blue Jeans", 6), (None, "Black Tshirts", 7)])
    assert out["groups"].tolist() == [5, 6, 5]


def test_unknown_view_is_refused(processed_dir):
    frame = pd.read_parquet(processed_dir / "catalog.parquet").head(2)
    with pytest.raises(StylesearchError, match="unknown text view"):
        ProductViews(frame, eval_transform(32), views=("smell",))
