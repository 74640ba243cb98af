"""Read a catalogue (Kaggle folder, Hugging Face parquet/Hub, or a mapped CSV/parquet) into a `Catalog`.

Every source ends as the same table: `id`, `title`, `image` (bytes or None), `image_path`
(str or None) and the attribute columns. Rows that cannot be used are repaired where the fix is
certain and otherwise dropped with their line and reason, so one bad row never sinks a catalogue.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from stylesearch.config import DEFAULT_HUB_DATASET, KAGGLE_ATTRIBUTES, ColumnMapping
from stylesearch.data.csvtext import csv_records, data_lines, read_text
from stylesearch.errors import CatalogError

CORE_COLUMNS = ("id", "title", "image", "image_path")
# Internal columns of a raw Catalog that `prepare` reads and drops: where each row is in its source
# ("styles.csv line 7", "dev.parquet row 12"), for messages; and an image path as the data gave it,
# so a path the data made absolute is refused even when it happens to point inside the root.
WHERE = "_where"
GIVEN_PATH = "_image_given"


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
    rows = csv_records(read_text(path, encoding))
    _, header = next(rows, (1, []))
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
    for line_no, fields in rows:  # the physical line the row starts on, past any multi-line quoted field
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
        records.append([*fields, where])
    frame = pd.DataFrame(records, columns=[*header, WHERE])
    frame = frame.replace({"": None, "NA": None})
    return _canonical(frame, ColumnMapping(), where=path.name, dropped=dropped), repaired, dropped


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


# --- Hugging Face datasets -----------------------------------------------------------------------


def read_hf(name_or_path: str | Path = DEFAULT_HUB_DATASET, *, split: str = "train",
            images_anywhere: bool = False) -> Catalog:
    """Read a dataset in the `ashraq/fashion-product-images-small` schema from local parquet or the Hub.

    Image cells are bytes, or paths relative to the parquet's folder; a path that resolves outside it
    (absolute, `../`, a symlink out) is refused row by row unless `images_anywhere`, as for tables.
    """
    path = Path(name_or_path)
    if path.exists():
        folder = path if path.is_dir() else path.parent
        files = sorted(path.glob("**/*.parquet")) if path.is_dir() else [path]
        if not files:
            raise CatalogError(f"{path}: no parquet files found")
        parts = []
        for file in files:
            part = pd.read_parquet(file)
            name = file.relative_to(folder).as_posix()
            part[WHERE] = [f"{name} row {i + 1}" for i in range(len(part))]
            parts.append(part)
        frame = pd.concat(parts, ignore_index=True)
        return read_frame(frame, ColumnMapping(), source=str(path), base_dir=folder, images_anywhere=images_anywhere)
    frame = _load_hub_dataset(str(name_or_path), split)
    catalog = read_frame(frame, ColumnMapping(), source=f"hf://{name_or_path}")
    if not images_anywhere:
        from datasets import config as hf_config  # loaded above: the dataset came through it

        # A Hub dataset's images are bytes; a path in one may only name a file the Hub client cached.
        catalog.image_root = str(hf_config.HF_DATASETS_CACHE)
    return catalog


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
        text = read_text(path, encoding)
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        frame = frame.replace({"": None, "NA": None})
        lines = data_lines(text)
        if len(lines) == len(frame):  # else pandas read the file differently: rows are numbered instead
            frame[WHERE] = [f"{path.name} line {n}" for n in lines]
    return read_frame(frame, mapping, source=str(path), base_dir=path.parent, images_anywhere=images_anywhere)


def read_frame(frame: pd.DataFrame, mapping: ColumnMapping, *, source: str, base_dir: Path | None = None,
               images_anywhere: bool = False) -> Catalog:
    """Turn a table with `mapping`'s columns into a Catalog; image cells may be bytes, HF dicts or paths.

    Path cells are relative to `base_dir`, and must resolve inside it unless `images_anywhere`.
    """
    dropped: list[RowIssue] = []
    frame = frame.copy()
    image = mapping.image
    if image not in frame.columns:
        raise CatalogError(
            f"{source}: no image column '{image}'; columns found: {list(frame.columns)}. "
            "Name it with --image-col."
        )
    if WHERE not in frame.columns:
        frame[WHERE] = [f"{Path(source).name} row {i + 1}" for i in range(len(frame))]
    cells = [_image_cell(v, base_dir) for v in frame[image].tolist()]
    frame["image"] = [c[0] for c in cells]
    frame["image_path"] = [c[1] for c in cells]
    frame[GIVEN_PATH] = [c[2] for c in cells]
    if image != "image":
        frame = frame.drop(columns=[image])
    out = _canonical(frame, mapping, where=Path(source).name, dropped=dropped)
    root = str(base_dir) if base_dir is not None and not images_anywhere else None
    return Catalog(frame=out, source=source, dropped=dropped, image_root=root)


def _image_cell(value: object, base_dir: Path | None) -> tuple[bytes | None, str | None, str | None]:
    """(bytes, path to read, the path as the data gave it relative to `base_dir`) of one image cell."""
    if isinstance(value, dict):  # HF Image feature: {"bytes": ..., "path": ...}
        data, path = value.get("bytes"), value.get("path")
        if data:
            return bytes(data), None, None
        value = path
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), None, None
    if isinstance(value, str) and value.strip():
        given = value.strip()
        p = Path(given)
        if base_dir is None:  # a Hub dataset's client writes absolute paths into its own cache: no rule on them
            return None, str(p), None
        return None, str(p if p.is_absolute() else base_dir / p), given
    return None, None, None


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
    if WHERE not in frame.columns:
        frame[WHERE] = [f"{where} row {i + 1}" for i in range(len(frame))]
    no_id = frame["id"].isna() | (frame["id"] == "")
    for idx in frame.index[no_id]:
        dropped.append(RowIssue(frame.at[idx, WHERE], "empty id"))
    frame = frame.loc[~no_id].reset_index(drop=True)
    unsafe = frame["id"].map(id_problem)
    for idx in frame.index[unsafe.notna()]:
        dropped.append(RowIssue(frame.at[idx, WHERE], f"unsafe id {frame.at[idx, 'id']!r}: {unsafe[idx]}",
                                frame.at[idx, "id"]))
    frame = frame.loc[unsafe.isna()].reset_index(drop=True)
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
        return read_hf(source, images_anywhere=images_anywhere)
    if fmt == "table":
        return read_table(path, mapping or ColumnMapping(), encoding=encoding, images_anywhere=images_anywhere)
    raise CatalogError(f"unknown catalogue format '{fmt}'; use auto, kaggle, hf or table")


__all__ = ["KAGGLE_ATTRIBUTES", "Catalog", "Product", "RowIssue", "read_catalog", "read_frame", "read_hf",
           "read_kaggle", "read_styles_csv", "read_table"]
