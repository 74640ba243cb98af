"""Bad catalogue input: every case of issue 8 through `read_catalog` + `prepare` (and the CLI for some).

Each case is a generated fixture: a small good catalogue plus one bad thing. The bad row is named
(file, row or id) and counted in the prepare report, the good rows are kept, and where the whole
file is unusable (encoding, columns, nothing left) the error says what to pass instead.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from stylesearch.cli.base import app
from stylesearch.config import ColumnMapping, PrepareConfig
from stylesearch.data.catalog import read_catalog
from stylesearch.data.images import decode_image
from stylesearch.data.prepare import load_processed, prepare
from stylesearch.errors import CatalogError

runner = CliRunner()


def said(result) -> str:
    """The CLI's output with rich's line wrapping undone."""
    return " ".join(result.output.split())

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
GOOD = {  # id: (colour name, RGB)
    "101": ("Red", (200, 30, 40)),
    "102": ("Blue", (40, 90, 210)),
    "103": ("Green", (40, 150, 60)),
    "104": ("Black", (20, 20, 20)),
}
GOOD_IDS = sorted(GOOD)


# --- fixture builders ----------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def jpeg(rgb: tuple[int, int, int], size: tuple[int, int] = (30, 40)) -> bytes:
    return encode(Image.new("RGB", size, rgb))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def handmade_png(width: int, height: int, bit_depth: int, colour_type: int, raw_rows: bytes) -> bytes:
    """A PNG written byte by byte: lets a test claim any size or bit depth without allocating pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw_rows))
            + _png_chunk(b"IEND", b""))


def row(pid: str, title: str, colour: str = "Red") -> str:
    return f"{pid},Men,Apparel,Topwear,Tshirts,{colour},Summer,2012,Casual,{title}"


def kaggle_folder(tmp_path: Path, extra: dict[str, tuple[str, bytes | None]] | None = None,
                  extra_lines: list[str] | None = None) -> Path:
    """A Kaggle-layout folder with the four good products, plus `extra` ids -> (title, image bytes or None)."""
    folder = tmp_path / "kaggle"
    (folder / "images").mkdir(parents=True)
    lines = [HEADER]
    for pid, (colour, rgb) in GOOD.items():
        (folder / "images" / f"{pid}.jpg").write_bytes(jpeg(rgb))
        lines.append(row(pid, f"Roadster Men {colour} Tshirt {pid}", colour))
    for pid, (title, data) in (extra or {}).items():
        if data is not None:  # None: the row names an image file that is not there
            (folder / "images" / f"{pid}.jpg").write_bytes(data)
        lines.append(row(pid, title))
    lines += extra_lines or []
    (folder / "styles.csv").write_text("\n".join(lines) + "\n")
    return folder


def table_csv(tmp_path: Path, extra: dict[str, tuple[str, str, bytes]], title: str = "productDisplayName") -> Path:
    """A mapped CSV (id, `title`, image path, attributes) with the four good products plus
    `extra` ids -> (title, file name, bytes)."""
    folder = tmp_path / "table"
    (folder / "pics").mkdir(parents=True)
    lines = [f"id,{title},image,articleType,baseColour"]
    for pid, (colour, rgb) in GOOD.items():
        (folder / "pics" / f"{pid}.jpg").write_bytes(jpeg(rgb))
        lines.append(f"{pid},Roadster Men {colour} Tshirt {pid},pics/{pid}.jpg,Tshirts,{colour}")
    for pid, (title, name, data) in extra.items():
        (folder / "pics" / name).write_bytes(data)
        lines.append(f"{pid},{title},pics/{name},Tshirts,Red")
    (folder / "catalog.csv").write_text("\n".join(lines) + "\n")
    return folder / "catalog.csv"


def run_prepare(source: Path, tmp_path: Path, **kwargs):
    out = tmp_path / "out"
    report = prepare(read_catalog(source, **kwargs), PrepareConfig(), out)
    kept = load_processed(out).frame
    saved = json.loads((out / "report.json").read_text())
    return report, kept, saved


def only_issue(report, reason: str) -> dict:
    assert report.counts() == {reason: 1}, report.counts()
    return report.dropped[reason][0]


def stored_pixel(kept, pid: str, xy: tuple[int, int] = (0, 0)) -> tuple[int, int, int]:
    """The pixel the model will see: the stored bytes decoded the way training and indexing decode them."""
    data = kept.loc[kept["id"] == pid, "image"].iloc[0]
    image = decode_image(bytes(data))
    assert image.mode == "RGB"
    return image.getpixel(xy)


# --- broken image files: dropped, named, counted; the good rows stay -----------------------------


def test_truncated_jpeg_is_dropped_with_its_id_and_file(tmp_path):
    whole = jpeg((10, 200, 10), (64, 64))
    folder = kaggle_folder(tmp_path, {"201": ("Truncated Photo Tshirt", whole[: len(whole) // 2])})
    report, kept, saved = run_prepare(folder, tmp_path)
    issue = only_issue(report, "bad image")
    assert issue["product_id"] == "201" and "id 201" in issue["where"]
    assert "truncated" in issue["reason"] and "201.jpg" in issue["reason"]
    assert sorted(kept["id"]) == GOOD_IDS
    assert saved["dropped"]["bad image"][0]["product_id"] == "201"
    assert "dropped, bad image: 1" in (tmp_path / "out" / "report.md").read_text()


def test_corrupt_jpeg_body_is_dropped(tmp_path):
    # A JPEG start-of-image marker followed by noise: PIL recognises the format, then cannot decode it.
    noise = np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8).tobytes()
    folder = kaggle_folder(tmp_path, {"202": ("Corrupt Photo Tshirt", b"\xff\xd8\xff\xe0" + noise)})
    report, kept, _ = run_prepare(folder, tmp_path)
    issue = only_issue(report, "bad image")
    assert issue["product_id"] == "202" and "202.jpg" in issue["reason"]
    assert sorted(kept["id"]) == GOOD_IDS


def garbage_body_jpeg() -> bytes:
    """A real JPEG's headers with its compressed data replaced by noise free of 0xFF bytes (so no marker
    ends it early): PIL decodes this into noise without a word; only libjpeg's warnings tell."""
    photo = encode(Image.fromarray(np.random.default_rng(1).integers(0, 256, (80, 60, 3), dtype=np.uint8)))
    sos = photo.index(b"\xff\xda")
    body = sos + 2 + int.from_bytes(photo[sos + 2:sos + 4], "big")
    noise = np.random.default_rng(2).integers(0, 255, len(photo) - body - 2, dtype=np.uint8).tobytes()
    return photo[:body] + noise + b"\xff\xd9"


def test_a_jpeg_with_a_valid_header_and_a_garbage_body_is_dropped(tmp_path):
    data = garbage_body_jpeg()
    Image.open(io.BytesIO(data)).load()  # PIL alone accepts it: this is the case that used to get through
    folder = kaggle_folder(tmp_path, {"204": ("Noise Body Tshirt", data)})
    report, kept, saved = run_prepare(folder, tmp_path)
    issue = only_issue(report, "bad image")
    assert issue["product_id"] == "204" and "corrupt JPEG data" in issue["reason"]
    assert saved["dropped"]["bad image"][0]["product_id"] == "204"
    assert sorted(kept["id"]) == GOOD_IDS


def test_good_jpegs_of_every_colour_mode_pass_the_body_check():
    for mode in ("RGB", "L", "CMYK"):
        data = encode(Image.new(mode, (33, 17), 120 if mode == "L" else (10, 200, 30, 5)[: len(mode)]))
        assert decode_image(data).size == (33, 17)


def test_a_jpg_that_is_really_text_is_dropped(tmp_path):
    folder = kaggle_folder(tmp_path, {"203": ("Text File Tshirt", b"<html>404 Not Found</html>\n")})
    report, kept, _ = run_prepare(folder, tmp_path)
    issue = only_issue(report, "bad image")
    assert issue["product_id"] == "203" and "not an image file" in issue["reason"]
    assert sorted(kept["id"]) == GOOD_IDS


def test_missing_image_file_is_dropped_naming_the_path(tmp_path):
    folder = kaggle_folder(tmp_path, {"204": ("No Photo Tshirt", None)})
    report, kept, _ = run_prepare(folder, tmp_path)
    issue = only_issue(report, "missing image")
    assert issue["product_id"] == "204" and str(folder / "images" / "204.jpg") in issue["reason"]
    assert sorted(kept["id"]) == GOOD_IDS


@pytest.mark.parametrize(("width", "height"), [(8000, 8000), (100_000, 100_000)])
def test_decompression_bomb_is_refused_without_decoding_it(tmp_path, width, height):
    # The header claims the size; the data is a few bytes. 8000x8000 is over our 40 MP limit but under
    # PIL's own; 100000x100000 trips PIL's. Either way nothing is allocated and the row is dropped.
    bomb = handmade_png(width, height, 8, 2, b"\0" * 16)
    assert len(bomb) < 200
    folder = kaggle_folder(tmp_path, {"205": ("Bomb Tshirt", bomb)})
    report, kept, _ = run_prepare(folder, tmp_path)
    issue = only_issue(report, "bad image")
    assert issue["product_id"] == "205" and "decompression bomb" in issue["reason"]
    assert sorted(kept["id"]) == GOOD_IDS


# --- ids and paths that would leave the catalogue folder: refused row by row ------------------------


@pytest.mark.parametrize("bad_id", ["a/b", "../outside", "/etc/passwd", "..", "x\\y", "tab\tid"])
def test_ids_that_are_paths_are_refused_with_their_row(tmp_path, bad_id):
    (tmp_path / "outside.jpg").write_bytes(jpeg((1, 2, 3)))  # what "../outside" would have read
    folder = kaggle_folder(tmp_path)
    with (folder / "styles.csv").open("a") as f:
        f.write(row(f'"{bad_id}"', "Escaping Tshirt") + "\n")
    report, kept, saved = run_prepare(folder, tmp_path)
    issue = only_issue(report, "catalogue")
    assert "line 6" in issue["where"] and "unsafe id" in issue["reason"] and issue["product_id"] == bad_id
    assert sorted(kept["id"]) == GOOD_IDS


def test_an_image_symlink_that_leaves_the_folder_is_refused(tmp_path):
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(jpeg((9, 9, 9)))
    folder = kaggle_folder(tmp_path, {"301": ("Linked Tshirt", None)})
    (folder / "images" / "301.jpg").symlink_to(secret)
    report, kept, _ = run_prepare(folder, tmp_path)
    issue = only_issue(report, "unsafe image path")
    assert issue["product_id"] == "301" and "outside" in issue["reason"] and "--images-anywhere" in issue["reason"]
    assert sorted(kept["id"]) == GOOD_IDS


def test_table_image_paths_outside_the_folder_need_the_opt_in(tmp_path):
    csv_path = table_csv(tmp_path, {})
    (tmp_path / "elsewhere.jpg").write_bytes(jpeg((5, 5, 250)))
    outside = tmp_path / "absolute.jpg"
    outside.write_bytes(jpeg((250, 5, 5)))
    with csv_path.open("a") as f:
        f.write(f"401,Parent Dir Tshirt,../elsewhere.jpg,Tshirts,Blue\n402,Absolute Tshirt,{outside},Tshirts,Blue\n")
    mapping = ColumnMapping(id="id", image="image", title="productDisplayName")
    report, kept, _ = run_prepare(csv_path, tmp_path, fmt="table", mapping=mapping)
    assert report.counts() == {"unsafe image path": 2}
    assert sorted(i["product_id"] for i in report.dropped["unsafe image path"]) == ["401", "402"]
    assert sorted(kept["id"]) == GOOD_IDS
    report, kept, _ = run_prepare(csv_path, tmp_path / "again", fmt="table", mapping=mapping, images_anywhere=True)
    assert sorted(kept["id"]) == sorted([*GOOD_IDS, "401", "402"])


def hf_parquet(tmp_path: Path, paths: dict[str, str]) -> Path:
    """A local parquet in the HF schema: the four good products as inline bytes, then `paths` ids -> an
    image path cell (bytes None), relative to the parquet's folder as the HF reader takes them."""
    folder = tmp_path / "hf"
    (folder / "pics").mkdir(parents=True)
    rows = [{"id": int(pid), "productDisplayName": f"Roadster Men {colour} Tshirt {pid}", "baseColour": colour,
             "image": {"bytes": jpeg(rgb), "path": None}} for pid, (colour, rgb) in GOOD.items()]
    rows += [{"id": int(pid), "productDisplayName": f"Path Tshirt {pid}", "baseColour": "Red",
              "image": {"bytes": None, "path": path}} for pid, path in paths.items()]
    pd.DataFrame(rows).to_parquet(folder / "dev.parquet")
    return folder / "dev.parquet"


def test_hf_parquet_image_paths_must_stay_in_its_folder(tmp_path):
    for n in (2, 3, 4):
        (tmp_path / f"secret{n}.jpg").write_bytes(jpeg((9, 9, 50 * n)))
    source = hf_parquet(tmp_path, {"501": "pics/501.jpg", "502": "../secret2.jpg", "503": str(tmp_path / "secret3.jpg"),
                                   "504": "pics/504.jpg", "505": "PLACEHOLDER"})
    folder = source.parent
    (folder / "pics" / "501.jpg").write_bytes(jpeg((1, 200, 1)))
    (folder / "pics" / "504.jpg").symlink_to(tmp_path / "secret4.jpg")  # a link inside that leads out
    (folder / "pics" / "505.jpg").write_bytes(jpeg((2, 2, 200)))
    frame = pd.read_parquet(source)  # 505: an absolute path, though to a file inside the folder
    frame.at[8, "image"] = {"bytes": None, "path": str(folder / "pics" / "505.jpg")}
    frame.to_parquet(source)
    report, kept, _ = run_prepare(source, tmp_path)
    unsafe = {i["product_id"]: i for i in report.dropped["unsafe image path"]}
    assert report.counts() == {"unsafe image path": 4} and sorted(unsafe) == ["502", "503", "504", "505"]
    assert [unsafe[p]["where"] for p in ("502", "503", "504", "505")] == \
        [f"dev.parquet row {n} (id {p})" for n, p in zip((6, 7, 8, 9), ("502", "503", "504", "505"), strict=True)]
    assert all("--images-anywhere" in i["reason"] for i in unsafe.values())
    assert "outside" in unsafe["502"]["reason"] and "absolute" in unsafe["505"]["reason"]
    assert sorted(kept["id"]) == [*GOOD_IDS, "501"]
    report, kept, _ = run_prepare(source, tmp_path / "again", images_anywhere=True)
    assert report.counts() == {} and sorted(kept["id"]) == sorted([*GOOD_IDS, "501", "502", "503", "504", "505"])


def test_a_hub_dataset_s_image_paths_may_only_name_files_in_the_hub_cache(tmp_path, monkeypatch):
    import sys
    import types

    import stylesearch.data.catalog as catalog_module

    cache = tmp_path / "hf-cache"
    (cache / "blobs").mkdir(parents=True)
    (cache / "blobs" / "601.jpg").write_bytes(jpeg((1, 200, 1)))
    (tmp_path / "private.jpg").write_bytes(jpeg((200, 1, 1)))
    frame = pd.read_parquet(hf_parquet(tmp_path, {"601": str(cache / "blobs" / "601.jpg"),
                                                  "602": str(tmp_path / "private.jpg")}))
    fake = types.ModuleType("datasets")
    fake.config = types.SimpleNamespace(HF_DATASETS_CACHE=str(cache))  # what the Hub client would name
    monkeypatch.setitem(sys.modules, "datasets", fake)
    monkeypatch.setattr(catalog_module, "_load_hub_dataset", lambda name, split: frame)
    report = prepare(read_catalog("someone/fashion", fmt="hf"), PrepareConfig(), tmp_path / "out")
    issue = only_issue(report, "unsafe image path")
    assert issue["product_id"] == "602" and "outside" in issue["reason"] and issue["where"] == "fashion row 6 (id 602)"
    assert report.rows_out == 5


def test_table_rows_refused_for_their_image_are_named_by_line_even_after_dropped_rows(tmp_path):
    csv_path = table_csv(tmp_path, {})
    with csv_path.open("a") as f:  # line 6 is dropped at read time; line 7 must still be called line 7
        f.write(",No Id Tshirt,pics/101.jpg,Tshirts,Red\n402,Parent Dir Tshirt,../x.jpg,Tshirts,Blue\n")
    mapping = ColumnMapping(id="id", image="image", title="productDisplayName")
    report, _, _ = run_prepare(csv_path, tmp_path, fmt="table", mapping=mapping)
    assert report.dropped["catalogue"][0]["where"] == "catalog.csv line 6"
    assert report.dropped["unsafe image path"][0]["where"] == "catalog.csv line 7 (id 402)"


# --- odd but valid images: converted to the right RGB, never dropped ------------------------------


def test_png_with_alpha_is_kept_and_transparent_pixels_become_white(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (0, 0, 255, 0))  # fully transparent blue...
    rgba.putpixel((0, 0), (0, 0, 255, 255))  # ...except one opaque blue pixel
    rgba.putpixel((1, 0), (255, 0, 0, 128))  # and one half-transparent red one
    source = table_csv(tmp_path, {"301": ("Alpha Tshirt", "301.png", encode(rgba, "PNG"))})
    report, kept, _ = run_prepare(source, tmp_path)
    assert report.counts() == {} and sorted(kept["id"]) == [*GOOD_IDS, "301"]
    assert stored_pixel(kept, "301", (0, 0)) == (0, 0, 255)
    assert stored_pixel(kept, "301", (5, 5)) == (255, 255, 255)
    r, g, b = stored_pixel(kept, "301", (1, 0))
    assert r == 255 and abs(g - 127) <= 1 and abs(b - 127) <= 1  # composited over white


def test_cmyk_image_is_kept_and_converted_to_rgb(tmp_path):
    # PNG cannot hold CMYK; catalogue photos in CMYK are JPEGs (print-shop exports).
    cmyk = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)))  # pure red in CMYK
    assert Image.open(io.BytesIO(cmyk)).mode == "CMYK"
    folder = kaggle_folder(tmp_path, {"302": ("Cmyk Red Tshirt", cmyk)})
    report, kept, _ = run_prepare(folder, tmp_path)
    assert report.counts() == {} and "302" in set(kept["id"])
    r, g, b = stored_pixel(kept, "302", (8, 8))
    assert r > 240 and g < 15 and b < 15


def test_greyscale_png_is_kept_with_equal_channels(tmp_path):
    source = table_csv(tmp_path, {"303": ("Grey Tshirt", "303.png", encode(Image.new("L", (8, 8), 77), "PNG"))})
    report, kept, _ = run_prepare(source, tmp_path)
    assert report.counts() == {} and "303" in set(kept["id"])
    assert stored_pixel(kept, "303") == (77, 77, 77)


def test_16_bit_greyscale_png_is_scaled_not_clipped_to_white(tmp_path):
    grey16 = Image.new("I;16", (8, 8), 0x8000)  # half of 65535: must be mid grey, not 255
    assert Image.open(io.BytesIO(encode(grey16, "PNG"))).mode == "I;16"
    source = table_csv(tmp_path, {"304": ("Grey16 Tshirt", "304.png", encode(grey16, "PNG"))})
    report, kept, _ = run_prepare(source, tmp_path)
    assert report.counts() == {} and "304" in set(kept["id"])
    assert stored_pixel(kept, "304") == (128, 128, 128)


def test_16_bit_rgb_png_keeps_its_colour(tmp_path):
    pixel = struct.pack(">HHH", 0xC800, 0x1000, 0x8000)  # 48-bit RGB: (200, 16, 128) in 8 bits
    png = handmade_png(2, 2, 16, 2, b"".join(b"\0" + pixel * 2 for _ in range(2)))
    source = table_csv(tmp_path, {"305": ("Rgb16 Tshirt", "305.png", png)})
    report, kept, _ = run_prepare(source, tmp_path)
    assert report.counts() == {} and "305" in set(kept["id"])
    assert stored_pixel(kept, "305") == (200, 16, 128)


def test_1x1_image_is_kept_and_the_model_can_use_it(tmp_path, tiny):
    # Kept on purpose: CLIP resizes every picture, and a 1x1 product photo is odd but not unusable.
    one_pixel = encode(Image.new("RGB", (1, 1), (9, 200, 9)), "PNG")
    folder = kaggle_folder(tmp_path, {"306": ("Tiny Photo Tshirt", one_pixel)})
    report, kept, _ = run_prepare(folder, tmp_path)
    assert report.counts() == {} and "306" in set(kept["id"])
    assert stored_pixel(kept, "306") == (9, 200, 9)

    from stylesearch.model.clip import ClipEncoder
    from stylesearch.train.pairs import ProductPairs, train_transform

    image = decode_image(bytes(kept.loc[kept["id"] == "306", "image"].iloc[0]))
    vector = ClipEncoder(tiny, device=None).encode_images([image])
    assert vector.shape == (1, 64) and np.isfinite(vector).all()
    frame = kept.assign(group=range(len(kept)))
    pixels, _, _ = ProductPairs(frame, train_transform(64))[int(np.flatnonzero(kept["id"] == "306")[0])]
    assert tuple(pixels.shape) == (3, 64, 64)


# --- rows: duplicates ---------------------------------------------------------------------------


def test_duplicate_ids_with_different_content_keep_the_first_and_say_so(tmp_path):
    folder = kaggle_folder(tmp_path, extra_lines=[row("101", "Another Red Thing Entirely")])
    report, kept, _ = run_prepare(folder, tmp_path)
    issue = only_issue(report, "duplicate id")
    assert issue["product_id"] == "101" and "different content" in issue["reason"]
    assert "kept row" in issue["reason"]
    assert sorted(kept["id"]) == GOOD_IDS
    assert kept.loc[kept["id"] == "101", "title"].iloc[0] == "Roadster Men Red Tshirt 101"


# --- whole-file problems: a clear error, and nothing written -------------------------------------


def test_non_utf8_csv_names_the_line_and_asks_for_the_encoding(tmp_path):
    folder = kaggle_folder(tmp_path)
    text = (folder / "styles.csv").read_text() + row("105", "Café Crème Tshirt") + "\n"
    (folder / "styles.csv").write_bytes(text.encode("latin-1"))
    (folder / "images" / "105.jpg").write_bytes(jpeg((250, 250, 200)))
    with pytest.raises(CatalogError) as err:
        read_catalog(folder)
    message = str(err.value)
    assert "styles.csv line 6" in message and "--encoding cp1252" in message  # cp1252 reads latin-1 letters too
    # Given the encoding, the same file reads, and the accents survive.
    report, kept, _ = run_prepare(folder, tmp_path, encoding="latin-1")
    assert kept.loc[kept["id"] == "105", "title"].iloc[0] == "Café Crème Tshirt"


def test_a_cp1252_csv_gets_the_cp1252_hint_and_latin_1_is_refused_not_stored_as_controls(tmp_path):
    folder = kaggle_folder(tmp_path)
    text = (folder / "styles.csv").read_text() + row("105", "Levi’s “Classic” Tshirt €20") + "\n"
    (folder / "styles.csv").write_bytes(text.encode("cp1252"))  # ’ “ ” € are 0x92 0x93 0x94 0x80 here
    (folder / "images" / "105.jpg").write_bytes(jpeg((250, 250, 200)))
    with pytest.raises(CatalogError, match="line 6.*--encoding cp1252"):
        read_catalog(folder)
    # latin-1 "succeeds" byte for byte but turns ’ into U+0092: refused, with the encoding that fits.
    with pytest.raises(CatalogError, match="line 6.*U\\+0092.*--encoding cp1252"):
        read_catalog(folder, encoding="latin-1")
    report, kept, _ = run_prepare(folder, tmp_path, encoding="cp1252")
    assert kept.loc[kept["id"] == "105", "title"].iloc[0] == "Levi’s “Classic” Tshirt €20"


def test_bytes_cp1252_cannot_read_get_the_latin_1_hint():
    from stylesearch.data.csvtext import guess_encoding

    assert guess_encoding("Café".encode("latin-1") + b"\x81") == "latin-1"  # 0x81 is unassigned in cp1252
    assert guess_encoding("it’s".encode("cp1252")) == "cp1252"


def test_missing_required_column_lists_the_columns_found_and_the_flag(tmp_path):
    folder = kaggle_folder(tmp_path)
    lines = (folder / "styles.csv").read_text().splitlines()
    (folder / "styles.csv").write_text("\n".join([lines[0].replace("productDisplayName", "name"), *lines[1:]]) + "\n")
    with pytest.raises(CatalogError) as err:
        read_catalog(folder)
    message = str(err.value)
    assert "productDisplayName" in message and "'name'" in message and "'baseColour'" in message
    assert "--title-col" in message and "--format table" in message


def test_mapped_csv_without_the_title_column_names_the_mapping_flags(tmp_path):
    source = table_csv(tmp_path, {}, title="name")
    with pytest.raises(CatalogError, match=r"columns found: \['id', 'name', 'image', 'articleType'.*--title-col"):
        read_catalog(source)


@pytest.mark.parametrize("content", ["", HEADER + "\n"], ids=["empty file", "header only"])
def test_empty_catalogue_is_an_error_not_an_empty_index(tmp_path, content):
    folder = kaggle_folder(tmp_path)
    (folder / "styles.csv").write_text(content)
    with pytest.raises(CatalogError, match="empty|no usable products"):
        prepare(read_catalog(folder), PrepareConfig(), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_catalogue_where_every_row_is_bad_is_an_error_that_counts_them(tmp_path):
    folder = tmp_path / "kaggle"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "1.jpg").write_bytes(b"not a picture")
    (folder / "styles.csv").write_text("\n".join([HEADER, row("1", "Text Tshirt"), row("2", "Gone Tshirt")]) + "\n")
    with pytest.raises(CatalogError, match="no usable products.*bad image 1.*missing image 1"):
        prepare(read_catalog(folder), PrepareConfig(), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- the same through `stylesearch prepare`: exit code 2 and the message, or 0 and the counts ------


def test_cli_prepare_non_utf8_exits_2_with_the_fix(tmp_path):
    folder = kaggle_folder(tmp_path)
    (folder / "styles.csv").write_bytes(((folder / "styles.csv").read_text() + row("105", "Café Tshirt") + "\n")
                                        .encode("latin-1"))
    result = runner.invoke(app, ["prepare", "--data", str(folder), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "styles.csv line 6" in said(result) and "--encoding cp1252" in said(result)
    assert not (tmp_path / "out").exists()


def test_cli_prepare_missing_column_exits_2_listing_columns(tmp_path):
    source = table_csv(tmp_path, {})
    result = runner.invoke(app, ["prepare", "--data", str(source), "--format", "table", "--title-col", "title",
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "'title'" in said(result) and "productDisplayName" in said(result) and "--title-col" in said(result)


def test_cli_prepare_empty_catalogue_exits_2(tmp_path):
    folder = kaggle_folder(tmp_path)
    (folder / "styles.csv").write_text(HEADER + "\n")
    result = runner.invoke(app, ["prepare", "--data", str(folder), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "no usable products" in said(result)
    assert not (tmp_path / "out").exists()


def test_cli_prepare_keeps_good_rows_and_prints_the_counts(tmp_path):
    folder = kaggle_folder(tmp_path, {"201": ("Text Tshirt", b"plain text"), "204": ("No Photo Tshirt", None)})
    result = runner.invoke(app, ["prepare", "--data", str(folder), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "rows kept: 4" in said(result)
    assert "dropped, bad image: 1" in said(result) and "dropped, missing image: 1" in said(result)
    assert sorted(load_processed(tmp_path / "out").frame["id"]) == GOOD_IDS
