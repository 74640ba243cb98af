import io
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from stylesearch.config import PrepareConfig
from stylesearch.data.catalog import Catalog, read_catalog
from stylesearch.data.prepare import build_full_text, group_ids, group_split, load_processed, prepare
from stylesearch.errors import CatalogError, IntegrityError


def jpeg(colour: str, size=(20, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG")
    return buf.getvalue()


def messy_catalog() -> Catalog:
    rows = [
        ("1", "Red Shirt", jpeg("red")),
        ("2", "Blue Jeans", jpeg("blue")),
        ("2", "Other Jeans", jpeg("navy")),        # duplicate id, different content
        ("3", "Green Cap", jpeg("red")),           # byte-identical image to id 1
        ("4", "   ", jpeg("green")),               # whitespace title
        ("5", "Broken", b"\xff\xd8not a jpeg"),    # undecodable
        ("6", "Yellow Bag", jpeg("yellow")),
    ]
    frame = pd.DataFrame(rows, columns=["id", "title", "image"])
    frame["image_path"] = None
    frame["articleType"] = "Shirts"
    frame.loc[len(frame)] = ["7", "Missing Photo", None, "/nonexistent/7.jpg", "Shirts"]
    return Catalog(frame=frame, source="fixture")


def test_cleaning_drops_each_bad_kind_with_a_reason(tmp_path):
    report = prepare(messy_catalog(), PrepareConfig(), tmp_path / "out")
    assert report.counts() == {"empty text": 1, "bad image": 1, "missing image": 1, "duplicate id": 1,
                               "duplicate image": 1}
    assert "different content" in report.dropped["duplicate id"][0]["reason"]
    kept = load_processed(tmp_path / "out").frame
    assert sorted(kept["id"]) == ["1", "2", "6"]
    assert (tmp_path / "out" / "report.md").read_text().count("dropped") == 5


def test_full_text_adds_only_new_words():
    assert build_full_text("Puma Men Grey T-shirt", ["Grey", "Tshirts", "Men", "Casual"]) == \
        "Puma Men Grey T-shirt, Tshirts, Casual"
    assert build_full_text("Titan Women Silver Watch", ["Watches", None, float("nan")]) == "Titan Women Silver Watch"


def test_groups_join_shared_titles_and_shared_images():
    groups = group_ids(["Red Shirt", "red  shirt!", "Blue", "Green"], ["a", "b", "c", "c"])
    assert groups[0] == groups[1] and groups[2] == groups[3] and groups[0] != groups[2]


def test_split_is_deterministic_group_aware_and_near_ratio():
    groups = pd.Series(range(1000)) // 3
    strata = ["Tshirts" if g % 2 else "Watches" for g in groups]
    a = group_split(groups.to_numpy(), strata, (0.8, 0.1, 0.1), seed=0)
    assert a == group_split(groups.to_numpy(), strata, (0.8, 0.1, 0.1), seed=0)
    frame = pd.DataFrame({"g": groups, "s": a})
    assert (frame.groupby("g")["s"].nunique() == 1).all()
    share = frame["s"].value_counts(normalize=True)
    assert abs(share["train"] - 0.8) < 0.03 and abs(share["test"] - 0.1) < 0.03


def test_empty_catalogue_is_an_error_not_an_empty_output(tmp_path):
    frame = pd.DataFrame({"id": ["1"], "title": [" "], "image": [jpeg("red")], "image_path": [None]})
    with pytest.raises(CatalogError, match="no usable products"):
        prepare(Catalog(frame=frame, source="fixture"), PrepareConfig(), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tampered_catalogue_is_refused(processed_dir, tmp_path):
    import shutil

    copy = Path(shutil.copytree(processed_dir, tmp_path / "copy"))
    data = (copy / "catalog.parquet").read_bytes()
    (copy / "catalog.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(IntegrityError, match="does not match"):
        load_processed(copy)


def test_an_edited_catalogue_manifest_is_refused_and_an_unsealed_old_one_still_loads(processed_dir, tmp_path):
    import json
    import shutil

    copy = Path(shutil.copytree(processed_dir, tmp_path / "copy"))
    file = copy / "manifest.json"
    manifest = json.loads(file.read_text())
    assert load_processed(copy).manifest == manifest
    file.write_text(json.dumps({**manifest, "split_sizes": {**manifest["split_sizes"], "test": 0}}))
    with pytest.raises(IntegrityError, match="manifest.json: edited after it was written"):
        load_processed(copy)
    file.write_text(json.dumps({k: v for k, v in manifest.items() if k != "manifest_sha256"}))
    assert len(load_processed(copy).frame) == manifest["count"]  # written before manifests were sealed


@pytest.mark.shared
def test_real_split_has_no_title_or_image_on_both_sides(shared_data, tmp_path):
    report = prepare(read_catalog(shared_data / "dev.parquet"), PrepareConfig(check_images=False), tmp_path / "p")
    frame = load_processed(tmp_path / "p").frame
    titles = {s: set(frame.loc[frame["split"] == s, "title"].str.lower().str.split().str.join(" ")) for s in
              ("train", "val", "test")}
    hashes = {s: set(frame.loc[frame["split"] == s, "image_sha256"]) for s in ("train", "val", "test")}
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        assert not titles[a] & titles[b]
        assert not hashes[a] & hashes[b]
    assert report.counts()["duplicate image"] > 100  # the real data has hundreds of copied photos
    sizes = report.split_sizes
    assert 0.75 < sizes["train"] / report.rows_out < 0.85
    # stratified: every common article type appears in test
    common = frame["articleType"].value_counts()
    assert set(common[common > 200].index) <= set(frame.loc[frame["split"] == "test", "articleType"])
