from pathlib import Path

import pandas as pd
import pytest

from stylesearch.config import ColumnMapping
from stylesearch.data.catalog import read_catalog, read_styles_csv
from stylesearch.errors import CatalogError

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_extra_commas_are_merged_into_the_title(tmp_path):
    csv = write(tmp_path / "styles.csv", HEADER
                + "1,Men,Apparel,Topwear,Shirts,Navy Blue,Fall,2011,Casual,Turtle Check Men Navy Blue Shirt\n"
                + "2,Men,Accessories,Accessories,Gift Set,Pink,Fall,2011,Formal,Turtle Tie, Cufflink, Square Set\n")
    frame, repaired, dropped = read_styles_csv(csv)
    assert frame.loc[frame["id"] == "2", "title"].item() == "Turtle Tie, Cufflink, Square Set"
    assert [r.where for r in repaired] == ["styles.csv line 3"]
    assert "12 fields" in repaired[0].reason and not dropped


def test_na_and_empty_fields_stay_missing(tmp_path):
    csv = write(tmp_path / "styles.csv", HEADER
                + "1,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,NA,Blue Shirt\n"
                + "2,Men,Apparel,Topwear,Shirts,Blue,Fall,,,Blue Shirt Two\n")
    frame, _, _ = read_styles_csv(csv)
    assert frame["usage"].isna().all()
    assert frame["year"].isna().tolist() == [False, True]


def test_short_rows_are_dropped_with_line_and_reason(tmp_path):
    csv = write(tmp_path / "styles.csv",
                HEADER + "1,Men,Apparel\n" + "2,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,Ok\n")
    frame, _, dropped = read_styles_csv(csv)
    assert frame["id"].tolist() == ["2"]
    assert dropped[0].where == "styles.csv line 2" and "3 fields, expected 10" in dropped[0].reason


def test_non_utf8_csv_names_the_line_and_the_fix(tmp_path):
    csv = write(tmp_path / "styles.csv", HEADER + "1,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,Café Shirt\n",
                encoding="latin-1")
    with pytest.raises(CatalogError, match=r"line 2.*--encoding"):
        read_styles_csv(csv)
    frame, _, _ = read_styles_csv(csv, encoding="latin-1")
    assert frame["title"].item() == "Café Shirt"


def test_missing_required_column_lists_columns_found(tmp_path):
    csv = write(tmp_path / "styles.csv", "id,name\n1,x\n")
    with pytest.raises(CatalogError, match=r"productDisplayName.*found \['id', 'name'\]"):
        read_styles_csv(csv)


def test_kaggle_folder_points_at_images(synthetic_dir):
    catalog = read_catalog(synthetic_dir)
    assert len(catalog) == 160
    first = catalog.frame.iloc[0]
    assert Path(first["image_path"]).name == f"{first['id']}.jpg" and Path(first["image_path"]).is_file()


def test_mapped_csv_with_user_columns(tmp_path, synthetic_dir):
    image = synthetic_dir / "images" / "10000.jpg"
    table = pd.DataFrame({"image": [str(image)], "description": ["a red shirt"], "display name": ["Red Shirt"],
                          "category": ["Shirts"], "sku": ["A1"]})
    table.to_csv(tmp_path / "products.csv", index=False)
    mapping = ColumnMapping(id="sku", image="image", title="display name")
    catalog = read_catalog(tmp_path / "products.csv", fmt="table", mapping=mapping)
    row = catalog.frame.iloc[0]
    assert (row["id"], row["title"], row["image_path"], row["category"]) == ("A1", "Red Shirt", str(image), "Shirts")


def test_mapped_parquet_with_image_bytes(tmp_path, synthetic_dir):
    data = (synthetic_dir / "images" / "10001.jpg").read_bytes()
    pd.DataFrame({"pid": [7], "img": [data], "name": ["Blue Jeans"]}).to_parquet(tmp_path / "p.parquet")
    mapping = ColumnMapping(id="pid", image="img", title="name")
    catalog = read_catalog(tmp_path / "p.parquet", fmt="table", mapping=mapping)
    assert catalog.frame.iloc[0]["image"] == data and catalog.frame.iloc[0]["id"] == "7"


def test_hub_name_offline_gives_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CatalogError, match="--data"):
        read_catalog("someone/not-a-local-dataset", fmt="hf")


@pytest.mark.shared
def test_real_kaggle_csv_quirks(shared_data):
    frame, repaired, dropped = read_styles_csv(shared_data / "styles_kaggle_original.csv")
    assert len(repaired) == 22 and not dropped
    assert len(frame) == 34751
    assert frame.loc[frame["id"] == "44065", "title"].item() == "Boss Men Perfume, After Shave Balm and Shower Gel Set"
    assert frame["usage"].isna().sum() > 0 and not (frame["usage"] == "NA").any()


@pytest.mark.shared
def test_real_hf_parquet_reads_image_bytes(shared_data):
    catalog = read_catalog(shared_data / "dev.parquet")
    assert len(catalog) == 34377
    assert catalog.frame["image"].map(lambda b: isinstance(b, bytes) and b[:2] == b"\xff\xd8").all()


# --- line numbers are physical lines, past quoted fields that span several ------------------------


def test_kaggle_rows_after_a_multi_line_title_are_named_by_their_real_line(tmp_path):
    csv = write(tmp_path / "styles.csv", HEADER
                + '1,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,"Blue Shirt\nwith a note\non three lines"\n'
                + "2,Men,Apparel\n"  # line 5: too few fields
                + '"../3",Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,Escaping Shirt\n'  # line 6
                + "4,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,Ok, with a comma\n")  # line 7
    catalog = read_catalog(tmp_path)
    assert [(i.where, i.product_id) for i in catalog.dropped] == [("styles.csv line 5", "2"),
                                                                  ("styles.csv line 6", "../3")]
    _, repaired, _ = read_styles_csv(csv)
    assert [r.where for r in repaired] == ["styles.csv line 7"]
    assert catalog.frame.loc[catalog.frame["id"] == "1", "title"].item() == "Blue Shirt\nwith a note\non three lines"


def test_mapped_csv_rows_are_named_by_their_physical_line(tmp_path):
    lines = ["sku,name,image",
             'A1,"Red Shirt\nsecond line",a.jpg',  # lines 2-3
             "",  # line 4: blank, skipped
             "A/2,Bad Id Shirt,b.jpg"]  # line 5
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    mapping = ColumnMapping(id="sku", image="image", title="name")
    catalog = read_catalog(tmp_path / "t.csv", fmt="table", mapping=mapping)
    assert [i.where for i in catalog.dropped] == ["t.csv line 5"] and "unsafe id" in catalog.dropped[0].reason
    assert catalog.frame["id"].tolist() == ["A1"]
