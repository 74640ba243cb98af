"""Clean a `Catalog`, build `full_text`, split it by groups, and write the processed catalogue.

Output directory (written atomically):
  catalog.parquet  id, title, full_text, image (bytes), image_sha256, attributes..., group, split
  manifest.json    kind, count, split sizes, parquet sha256, source, config
  report.json      every dropped or repaired row with its reason
  report.md        a short human summary
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from stylesearch.common.files import (
    atomic_dir,
    atomic_write_text,
    read_stage_manifest,
    seal_broken,
    sealed,
    sha256_bytes,
    sha256_file,
    verified_sha256,
)
from stylesearch.config import PrepareConfig, to_dict
from stylesearch.data.catalog import GIVEN_PATH, WHERE, Catalog, RowIssue
from stylesearch.data.images import decode_image
from stylesearch.errors import CatalogError, IntegrityError

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")


@dataclass
class PrepareReport:
    source: str
    rows_in: int
    rows_out: int
    split_sizes: dict[str, int]
    dropped: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    repaired: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {reason: len(rows) for reason, rows in self.dropped.items()}

    def summary(self) -> str:
        lines = [f"# Prepared catalogue from {self.source}", "",
                 f"- rows in: {self.rows_in}", f"- rows kept: {self.rows_out}",
                 "- split: " + ", ".join(f"{k} {v}" for k, v in self.split_sizes.items()),
                 f"- repaired rows: {len(self.repaired)}"]
        for reason, n in self.counts().items():
            lines.append(f"- dropped, {reason}: {n}")
        return "\n".join(lines) + "\n"


@dataclass
class ProcessedCatalog:
    frame: pd.DataFrame
    manifest: dict[str, Any]
    path: Path

    def split(self, name: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == name].reset_index(drop=True)


# --- text ----------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")


def word_stem(word: str) -> str:
    # "Shirts" or "Watches" in articleType adds nothing to a title that says "Shirt" or "Watch".
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def words_of(text: str) -> set[str]:
    return {word_stem(w) for w in _WORD.findall(text.lower())}


def build_full_text(title: str, attributes: list[object]) -> str:
    """The title, then each attribute that adds a word the title does not already have."""
    seen = words_of(title)
    extras = []
    for value in attributes:
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            continue
        text = str(value).strip()
        if not text or words_of(text) <= seen:
            continue
        extras.append(text)
        seen |= words_of(text)
    return ", ".join([title.strip(), *extras])


def normalise_title(title: str) -> str:
    return " ".join(_WORD.findall(title.lower()))


# --- split ---------------------------------------------------------------------------------------


def union_roots(n: int, key_lists: Sequence[Iterable[object]]) -> list[int]:
    """Union-find over `n` rows: rows sharing a key in any list end with the same root row."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for keys in key_lists:
        first: dict[object, int] = {}
        for i, key in enumerate(keys):
            if key in first:
                a, b = find(i), find(first[key])
                if a != b:
                    parent[a] = b
            else:
                first[key] = i
    return [find(i) for i in range(n)]


def group_ids(titles: list[str], image_hashes: list[str]) -> np.ndarray:
    """Union rows that share a normalised title or identical image bytes; return a group id per row."""
    roots = union_roots(len(titles), (map(normalise_title, titles), image_hashes))
    _, ids = np.unique(roots, return_inverse=True)
    return ids


def group_split(groups: np.ndarray, strata: list[str], ratios: tuple[float, float, float], seed: int) -> list[str]:
    """Assign whole groups to train/val/test, stratified by each group's majority label."""
    if abs(sum(ratios) - 1) > 1e-6:
        raise CatalogError(f"split ratios {ratios} must add up to 1")
    frame = pd.DataFrame({"group": groups, "stratum": strata})
    sizes = frame.groupby("group").size()
    major = frame.groupby("group")["stratum"].agg(lambda s: s.value_counts().index[0])
    rng = np.random.default_rng(seed)
    assignment: dict[int, str] = {}
    bounds = np.cumsum(ratios)
    for _, members in major.groupby(major, sort=True):
        order = members.index.to_numpy()
        order = order[rng.permutation(len(order))]
        counts = sizes.loc[order].to_numpy()
        starts = (np.cumsum(counts) - counts) / counts.sum()  # share of the stratum before each group
        for gid, start in zip(order, starts, strict=True):
            assignment[int(gid)] = SPLITS[int(np.searchsorted(bounds, start, side="right"))]
    return [assignment[int(g)] for g in groups]


# --- cleaning ------------------------------------------------------------------------------------


class UnsafePathError(CatalogError):
    """An image path that leads out of the catalogue's image folder."""


def _load_image_bytes(row: pd.Series, root: Path | None = None) -> bytes:
    data = row["image"]
    if data is not None and not (isinstance(data, float) and np.isnan(data)):
        return bytes(data)
    path = row["image_path"]
    if not path or (isinstance(path, float) and np.isnan(path)):
        raise CatalogError("no image given")
    if root is not None:
        given = row.get(GIVEN_PATH)
        if isinstance(given, str) and Path(given).is_absolute():  # inside the root or not: data may not name one
            raise UnsafePathError(f"image path {given} is absolute; give it relative to {root}, or pass "
                                  "--images-anywhere if images outside the catalogue folder are intended")
        real = Path(path).resolve()  # follows symlinks: a link inside pointing outside is outside
        if not real.is_relative_to(root):
            raise UnsafePathError(f"image path {path} leads to {real}, outside {root}; "
                                  "pass --images-anywhere if images outside the catalogue folder are intended")
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as err:
        raise CatalogError(f"image file missing: {path}") from err
    except OSError as err:
        raise CatalogError(f"image file unreadable: {path} ({err.strerror})") from err


def clean(catalog: Catalog, cfg: PrepareConfig) -> tuple[pd.DataFrame, dict[str, list[RowIssue]]]:
    """Drop rows that cannot train or be searched, each with a reason; keep the rest."""
    frame = catalog.frame.reset_index(drop=True)
    dropped: dict[str, list[RowIssue]] = {"catalogue": list(catalog.dropped)}

    def drop(reason: str, idx: int, detail: str) -> None:
        pid = str(frame.at[idx, "id"])
        place = frame.at[idx, WHERE] if WHERE in frame.columns else f"row {idx + 1}"  # its line in the source
        dropped.setdefault(reason, []).append(RowIssue(f"{place} (id {pid})", detail, pid))

    keep = []
    blobs: list[bytes] = []
    root = Path(catalog.image_root).resolve() if catalog.image_root else None
    for idx, row in tqdm(frame.iterrows(), total=len(frame), desc="checking images", unit="img",
                         disable=len(frame) < 2000):
        title = row["title"]
        if title is None or not str(title).strip():
            drop("empty text", idx, "title is empty or whitespace")
            continue
        try:
            data = _load_image_bytes(row, root)
            if cfg.check_images:
                decode_image(data, where=f"id {row['id']} ({row['image_path'] or 'inline bytes'})",
                             max_pixels=cfg.max_image_pixels)
        except UnsafePathError as err:
            drop("unsafe image path", idx, str(err))
            continue
        except CatalogError as err:
            reason = "missing image" if "missing" in str(err) or "no image" in str(err) else "bad image"
            drop(reason, idx, str(err))
            continue
        keep.append(idx)
        blobs.append(data)
    out = frame.loc[keep].reset_index(drop=True)
    source_row = [k + 1 for k in keep]  # 1-based row in the source table, for messages
    out["image"] = blobs
    out["image_sha256"] = [sha256_bytes(b) for b in blobs]
    out = out.drop(columns=["image_path", WHERE, GIVEN_PATH], errors="ignore")

    dup_id = out["id"].duplicated(keep="first")
    for idx in out.index[dup_id]:
        first = out.index[(out["id"] == out.at[idx, "id"])][0]
        same = all(out.at[idx, c] == out.at[first, c] for c in ("image_sha256", "title"))
        detail = "duplicate id" + ("" if same else " with different content") + f"; kept row {source_row[first]}"
        dropped.setdefault("duplicate id", []).append(RowIssue(f"id {out.at[idx, 'id']}", detail, out.at[idx, "id"]))
    out = out.loc[~dup_id].reset_index(drop=True)

    dup_img = out["image_sha256"].duplicated(keep="first")
    for idx in out.index[dup_img]:
        first_id = out.loc[out["image_sha256"] == out.at[idx, "image_sha256"], "id"].iloc[0]
        dropped.setdefault("duplicate image", []).append(
            RowIssue(f"id {out.at[idx, 'id']}", f"same image bytes as id {first_id}", out.at[idx, "id"]))
    out = out.loc[~dup_img].reset_index(drop=True)
    return out, {k: v for k, v in dropped.items() if v}


def prepare(catalog: Catalog, cfg: PrepareConfig, out_dir: Path) -> PrepareReport:
    """Clean, add full_text, split, and write the processed catalogue to `out_dir`."""
    frame, dropped = clean(catalog, cfg)
    if frame.empty:
        raise CatalogError(f"{catalog.source}: no usable products left after cleaning "
                           f"(dropped: {', '.join(f'{k} {len(v)}' for k, v in dropped.items()) or 'none'})")
    attr_cols = [c for c in cfg.text_columns if c in frame.columns and c != "title"]
    title_col = "title"
    frame["full_text"] = [
        build_full_text(str(t), [row[c] for c in attr_cols if c not in ("productDisplayName",)])
        for t, (_, row) in zip(frame[title_col], frame.iterrows(), strict=True)
    ]
    frame["group"] = group_ids(frame["title"].tolist(), frame["image_sha256"].tolist())
    strata = frame[cfg.stratify_by].fillna("?").astype(str).tolist() if cfg.stratify_by in frame.columns \
        else ["all"] * len(frame)
    frame["split"] = group_split(frame["group"].to_numpy(), strata, cfg.split, cfg.seed)

    report = PrepareReport(
        source=catalog.source,
        rows_in=len(catalog.frame) + len(catalog.dropped),
        rows_out=len(frame),
        split_sizes={s: int((frame["split"] == s).sum()) for s in SPLITS},
        dropped={k: [vars(i) for i in v] for k, v in dropped.items()},
        repaired=[vars(i) for i in catalog.repaired],
    )
    write_processed(frame, report, cfg, Path(out_dir))
    return report


def write_processed(frame: pd.DataFrame, report: PrepareReport, cfg: PrepareConfig, out_dir: Path) -> None:
    with atomic_dir(out_dir) as tmp:
        frame.to_parquet(tmp / "catalog.parquet", index=False)
        manifest = {
            "kind": "stylesearch.catalog",
            "format_version": FORMAT_VERSION,
            "count": len(frame),
            "split_sizes": report.split_sizes,
            "catalog_sha256": sha256_file(tmp / "catalog.parquet"),
            "source": report.source,
            "config": to_dict(cfg),
        }
        manifest = json.loads(json.dumps(manifest, default=str))  # seal exactly what a reader will load
        atomic_write_text(tmp / "manifest.json", json.dumps(sealed(manifest), indent=2))
        atomic_write_text(tmp / "report.json", json.dumps(vars(report), indent=2, default=str))
        atomic_write_text(tmp / "report.md", report.summary())


def load_processed(path: Path, *, verify: bool = True) -> ProcessedCatalog:
    """Load a processed catalogue directory, refusing one that is not ours or has been altered."""
    path = Path(path)
    manifest_path = path / "manifest.json"
    manifest = read_stage_manifest(path, manifest_path.name, kind="stylesearch.catalog", version=FORMAT_VERSION,
                             what="a processed catalogue", fix="run `stylesearch prepare`")
    parquet = path / "catalog.parquet"
    if verify and verified_sha256(parquet) != manifest["catalog_sha256"]:
        raise IntegrityError(f"{parquet}: content does not match the hash in manifest.json (changed or truncated); "
                             "re-run `stylesearch prepare`")
    if verify and seal_broken(manifest):
        raise IntegrityError(f"{manifest_path}: edited after it was written (its own hash does not match); "
                             "re-run `stylesearch prepare`")
    frame = pd.read_parquet(parquet)
    return ProcessedCatalog(frame=frame, manifest=manifest, path=path)
