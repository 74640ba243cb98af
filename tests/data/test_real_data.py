"""The tiny preset trained briefly on the shared real catalogue finds the article types people ask for."""

import pytest

from stylesearch.config import IndexConfig, PrepareConfig, TrainConfig
from stylesearch.data.catalog import read_catalog
from stylesearch.data.prepare import load_processed, prepare
from stylesearch.train.loop import train

QUERIES = {"black watch": "Watches", "blue jeans": "Jeans", "women handbag": "Handbags",
           "men sports shoes": "Sports Shoes"}


@pytest.mark.slow
@pytest.mark.shared
def test_trained_tiny_model_finds_requested_article_types(shared_data, tmp_path):
    from stylesearch.index.store import build_index
    from stylesearch.search.searcher import Searcher

    prepare(read_catalog(shared_data / "dev.parquet"), PrepareConfig(check_images=False), tmp_path / "cat")
    catalog = load_processed(tmp_path / "cat")
    cfg = TrainConfig(base_model="tiny", lr=5e-4, weight_decay=0.1, batch_size=64, epochs=20, warmup_steps=100,
                      patience=5, max_minutes=6, val_max_items=1000)
    train(catalog, cfg, tmp_path / "train")
    build_index(tmp_path / "cat", tmp_path / "index", model=str(tmp_path / "train" / "best"), cfg=IndexConfig())
    searcher = Searcher.from_index(tmp_path / "index")
    share = catalog.frame["articleType"].value_counts(normalize=True)
    precisions = {}
    for query, article in QUERIES.items():
        hits = searcher.search(query, k=10)
        precisions[query] = sum(h.attributes["articleType"] == article for h in hits) / 10
        # "well above chance": at least four times the type's share of the catalogue, and 2 of 10
        assert precisions[query] >= max(0.2, 4 * share[article]), (query, [h.title for h in hits])
    assert sum(precisions.values()) / len(precisions) >= 0.4, precisions
