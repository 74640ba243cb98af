"""Read a catalogue (Kaggle folder, Hugging Face parquet/Hub, or a mapped CSV/parquet) into a `Catalog`.

Every source ends as the same table: `id`, `title`, `image` (bytes or None), `image_path`
(str or None) and the attribute columns. Rows that cannot be used are repaired where the fix is
certain and otherwise dropped with their line and reason, so one bad row never sinks a catalogue.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from stylesearch.config import DEFAULT_HUB_DATASET, KAGGLE_ATTRIBUTES, ColumnMapping
from stylesearch.errors import CatalogError

CORE_COLUMNS = ("id", "title", "image", "image_path")


@dataclass(frozen=True)
class RowIssue:
    """One row that was repaired or dropped, and why."""

    where: str  # "styles.csv line 3512" or "row 17"
    reason: str
    product_id: str | None = None


@dataclass(frozen=True)
class Product:
    """A catalogue item as shoppers see it."""

    id: str
    title: str
    attributes: dict[str, str | int | None] = field(default_factory=dict)


@dataclass
class Catalog:
    """A catalogue table in canonical columns, with the rows repaired or dropped on the way in."""

    frame: pd.DataFrame
    source: str
    repaired: list[RowIssue] = field(default_factory=list)
    dropped: list[RowIssue] = field(default_factory=list)
    # Every image file must resolve (symlinks followed) inside this folder; None when the user opted
    # out (`--images-anywhere`) or the images come as bytes.
    image_root: str | None = None

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def attribute_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c not in CORE_COLUMNS and not c.startswith("_")]

    def product(self, row: int) -> Product:
        rec = self.frame.iloc[row]
        return Product(
            id=str(rec["id"]),
            title=str(rec["title"]),
            attributes={c: _plain(rec[c]) for c in self.attribute_columns},
        )


def _plain(value: object) -> str | int | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    return value if isinstance(value, int | str) else str(value)


# --- Kaggle layout -------------------------------------------------------------------------------


def read_kaggle(folder: Path, *, encoding: str = "utf-8") -> Catalog:
    """Read `styles.csv` and `images/<id>.jpg` from a Kaggle "Fashion Product Images" folder."""
    folder = Path(folder)
    csv_path = folder / "styles.csv"
    if not csv_path.is_file():
        raise CatalogError(f"{folder}: no styles.csv here; a Kaggle catalogue folder holds styles.csv and images/")
    frame, repaired, dropped = read_styles_csv(csv_path, encoding=encoding)
    images = folder / "images"
    frame["image"] = None
    frame["image_path"] = [str(images / f"{pid}.jpg") for pid in frame["id"]]
    return Catalog(frame=frame, source=str(folder), repaired=repaired, dropped=dropped, image_root=str(images))


def read_styles_csv(path: Path, *, encoding: str = "utf-8") -> tuple[pd.DataFrame, list[RowIssue], list[RowIssue]]:
    """Parse Kaggle's styles.csv, repairing lines whose title holds unquoted commas."""
    text = _read_text(path, encoding)
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if not header:
        raise CatalogError(f"{path}: the file is empty")
    header = [h.strip() for h in header]
    required = ("id", "productDisplayName")
    missing = [c for c in required if c not in header]
    if missing:
        raise CatalogError(
            f"{path}: missing column(s) {missing}; found {header}. "
            "For another layout use --format table with --id-col/--image-col/--title-col."
        )
    width = len(header)
    records: list[list[str]] = []
    repaired: list[RowIssue] = []
    dropped: list[RowIssue] = []
    for line_no, fields in enumerate(rows, start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        where = f"{path.name} line {line_no}"
        if len(fields) > width and header[-1] == "productDisplayName":
            # Kaggle rows with commas in the title are unquoted: the surplus belongs to the last column.
            n_fields = len(fields)
            fields = fields[: width - 1] + [",".join(fields[width - 1 :])]
            repaired.append(RowIssue(where, f"{n_fields} fields, expected {width}; merged the extra commas "
                                     "into productDisplayName", fields[0]))
        if len(fields) != width:
            dropped.append(RowIssue(where, f"{len(fields)} fields, expected {width}", fields[0] or None))
            continue
        records.append([*fields, line_no])
    frame = pd.DataFrame(records, columns=[*header, "_line"])
    frame = frame.replace({"": None, "NA": None})
    return _canonical(frame, ColumnMapping(), where=path.name, dropped=dropped), repaired, dropped


def _read_text(path: Path, encoding: str) -> str:
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise CatalogError(
            f"{path} line {line}: not valid {encoding} (byte {raw[err.start]:#x} at offset {err.start}); "
            f"pass the file's encoding: --encoding {guess_encoding(raw)}"
        ) from err
    control = C1_CONTROL.search(text)
    if control:
        # latin-1 maps 0x80-0x9F to invisible C1 controls; in cp1252 those bytes are ’ “ ” € ... — the
        # usual bytes of a Windows-made CSV. Storing the controls would corrupt every such title.
        line = text[: control.start()].count("\n") + 1
        raise CatalogError(
            f"{path} line {line}: decoded as {encoding}, the text holds the control character "
            f"U+{ord(control.group()):04X}, which no title means; the file is most likely cp1252: "
            "pass --encoding cp1252")
    return text


# The one id policy: an id names a file (`images/<id>.jpg`) and a URL (`/api/products/<id>`), so it
# may hold any printable characters (spaces too; URLs encode them) but no path separator, no control
# character, and it is not "." or "..".
MAX_ID_CHARS = 128


def id_problem(product_id: str) -> str | None:
    """Why `product_id` cannot be an id, or None when it can."""
    if len(product_id) > MAX_ID_CHARS:
        return f"longer than {MAX_ID_CHARS} characters"
    if "/" in product_id or "\\" in product_id:
        return "holds a path separator"
    if product_id in (".", ".."):
        return "is a relative path"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in product_id):
        return "holds a control character"
    return None


# C1 control characters: never in real text, but what cp1252's punctuation becomes when read as latin-1.
C1_CONTROL = re.compile("[\u0080-\u009f]")


def guess_encoding(raw: bytes) -> str:
    """The encoding most likely to fit bytes that are not UTF-8: cp1252 if it decodes them, else latin-1.

    Bytes 0x80-0x9F are punctuation in cp1252 (’ “ ” € …) and invisible controls in latin-1, so a file
    that cp1252 can read is read right by cp1252 and wrong by latin-1.
    """
    try:
        raw.decode("cp1252")
    except UnicodeDecodeError:
        return "latin-1"
    return "cp1252"


# --- Hugging Face datasets -----------------------------------------------------------------------


def read_hf(name_or_path: str | Path = DEFAULT_HUB_DATASET, *, split: str = "train") -> Catalog:
    """Read a dataset in the `ashraq/fashion-product-images-small` schema from local parquet or the Hub."""
    path = Path(name_or_path)
    if path.exists():
        files = sorted(path.glob("**/*.parquet")) if path.is_dir() else [path]
        if not files:
            raise CatalogError(f"{path}: no parquet files found")
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        source = str(path)
    else:
        frame = _load_hub_dataset(str(name_or_path), split)
        source = f"hf://{name_or_path}"
    return read_frame(frame, ColumnMapping(), source=source)


def _load_hub_dataset(name: str, split: str) -> pd.DataFrame:
    from stylesearch.model.clip import hub_reachable

    if not hub_reachable():  # fail at once instead of after the client's retries
        raise CatalogError(f"'{name}' is not a local path and the Hugging Face Hub cannot be reached. "
                           "Pass a local copy instead: --data path/to/dev.parquet, or a Kaggle folder.")
    try:
        import datasets
    except ImportError as err:
        raise CatalogError(
            f"'{name}' is not a local path, and loading from the Hub needs `pip install stylesearch[hub]`"
        ) from err
    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as err:  # the datasets library raises many kinds for "offline"
        raise CatalogError(
            f"could not load dataset '{name}' from the Hugging Face Hub ({type(err).__name__}: {err}). "
            "Offline? Pass a local copy instead: --data path/to/dev.parquet, or a Kaggle folder."
        ) from err
    return ds.with_format("pandas", columns=None)[:]


# --- Any table with a column mapping -------------------------------------------------------------


def read_table(path: Path, mapping: ColumnMapping, *, encoding: str = "utf-8",
               images_anywhere: bool = False) -> Catalog:
    """Read any CSV or parquet whose columns are named by `mapping`.

    Image paths are relative to the file; one that resolves outside the file's folder (an absolute
    path, `../`, a symlink out) is refused row by row unless `images_anywhere`.
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"{path}: no such file")
    if path.suffix.lower() == ".parquet":
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(io.StringIO(_read_text(path, encoding)), dtype=str, keep_default_na=False)
        frame = frame.replace({"": None, "NA": None})
    catalog = read_frame(frame, mapping, source=str(path), base_dir=path.parent)
    if not images_anywhere:
        catalog.image_root = str(path.parent)
    return catalog


def read_frame(frame: pd.DataFrame, mapping: ColumnMapping, *, source: str, base_dir: Path | None = None) -> Catalog:
    """Turn a table with `mapping`'s columns into a Catalog; image cells may be bytes, HF dicts or paths."""
    dropped: list[RowIssue] = []
    frame = frame.copy()
    image = mapping.image
    if image not in frame.columns:
        raise CatalogError(
            f"{source}: no image column '{image}'; columns found: {list(frame.columns)}. "
            "Name it with --image-col."
        )
    raw = frame[image].tolist()
    cells = [_image_cell(v, base_dir) for v in raw]
    frame["image"] = [c[0] for c in cells]
    frame["image_path"] = [c[1] for c in cells]
    if image != "image":
        frame = frame.drop(columns=[image])
    out = _canonical(frame, mapping, where=Path(source).name, dropped=dropped)
    return Catalog(frame=out, source=source, dropped=dropped)


def _image_cell(value: object, base_dir: Path | None) -> tuple[bytes | None, str | None]:
    if isinstance(value, dict):  # HF Image feature: {"bytes": ..., "path": ...}
        data, path = value.get("bytes"), value.get("path")
        if data:
            return bytes(data), None
        value = path
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), None
    if isinstance(value, str) and value.strip():
        p = Path(value.strip())
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        return None, str(p)
    return None, None


def _canonical(frame: pd.DataFrame, mapping: ColumnMapping, *, where: str, dropped: list[RowIssue]) -> pd.DataFrame:
    """Rename to canonical columns, check required ones, and type the id and year."""
    missing = [c for c in (mapping.id, mapping.title) if c not in frame.columns]
    if missing:
        raise CatalogError(
            f"{where}: missing required column(s) {missing}; columns found: {list(frame.columns)}. "
            "Map yours with --id-col and --title-col."
        )
    frame = frame.rename(columns={mapping.id: "id", mapping.title: "title"})
    frame["id"] = frame["id"].map(lambda v: None if v is None or pd.isna(v) else str(v).strip())
    no_id = frame["id"].isna() | (frame["id"] == "")
    for idx in frame.index[no_id]:
        dropped.append(RowIssue(f"{where} row {idx + 1}", "empty id"))
    frame = frame.loc[~no_id].reset_index(drop=True)
    unsafe = frame["id"].map(id_problem)
    for idx in frame.index[unsafe.notna()]:
        place = f"line {frame.at[idx, '_line']}" if "_line" in frame.columns else f"row {idx + 1}"
        dropped.append(RowIssue(f"{where} {place}", f"unsafe id {frame.at[idx, 'id']!r}: {unsafe[idx]}",
                                frame.at[idx, "id"]))
    frame = frame.loc[unsafe.isna()].reset_index(drop=True).drop(columns=["_line"], errors="ignore")
    frame["title"] = frame["title"].map(lambda v: None if v is None or pd.isna(v) else str(v))
    if "year" in frame.columns:
        frame["year"] = pd.to_numeric(frame["year"], errors="coerce").astype("Int64")
    for col in ("image", "image_path"):
        if col not in frame.columns:
            frame[col] = None
    attrs = [c for c in frame.columns if c not in CORE_COLUMNS]
    return frame[[*CORE_COLUMNS, *attrs]]


def read_catalog(
    source: str | Path,
    *,
    fmt: str = "auto",
    mapping: ColumnMapping | None = None,
    encoding: str = "utf-8",
    images_anywhere: bool = False,
) -> Catalog:
    """Read a catalogue from a Kaggle folder, HF parquet/Hub name, or mapped CSV/parquet.

    >>> read_catalog("../shared/data/fashion-product-images-small/dev.parquet")  # doctest: +SKIP
    """
    path = Path(source)
    if fmt == "auto":
        if path.is_dir() and (path / "styles.csv").exists():
            fmt = "kaggle"
        elif mapping is not None and path.is_file() or path.suffix == ".csv":
            fmt = "table"
        else:
            fmt = "hf"
    if fmt == "kaggle":
        return read_kaggle(path, encoding=encoding)
    if fmt == "hf":
        return read_hf(source)
    if fmt == "table":
        return read_table(path, mapping or ColumnMapping(), encoding=encoding, images_anywhere=images_anywhere)
    raise CatalogError(f"unknown catalogue format '{fmt}'; use auto, kaggle, hf or table")


__all__ = ["KAGGLE_ATTRIBUTES", "Catalog", "Product", "RowIssue", "read_catalog", "read_frame", "read_hf",
           "read_kaggle", "read_styles_csv", "read_table"]
