from PIL import Image

from stylesearch.data.catalog import read_catalog
from stylesearch.data.synthetic import ARTICLE_TYPES, make_catalog


def test_drawn_catalogue_is_a_valid_kaggle_folder(tmp_path):
    folder = make_catalog(tmp_path, n=40, seed=1)
    catalog = read_catalog(folder)
    assert len(catalog) == 40
    assert set(catalog.frame["articleType"]) == {a.name for a in ARTICLE_TYPES}
    first = catalog.frame.iloc[0]
    assert first["baseColour"] in first["title"] and first["articleType"] in first["title"]
    assert Image.open(first["image_path"]).size == (60, 80)


def test_same_seed_same_catalogue(tmp_path):
    a = (make_catalog(tmp_path / "a", n=12, seed=3) / "styles.csv").read_text()
    b = (make_catalog(tmp_path / "b", n=12, seed=3) / "styles.csv").read_text()
    assert a == b
