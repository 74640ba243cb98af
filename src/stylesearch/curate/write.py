"""What `stylesearch tag` and `stylesearch audit` leave on disk, each file written atomically.

tag:   suggestions.parquet (id, split, column, value, confidence, current), tags.json, report.html,
       and with --fill a processed catalogue in catalog/ that `stylesearch index` reads as usual.
audit: findings.parquet, duplicates.parquet, audit.json, audit.html (thumbnails inline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from stylesearch.common.files import atomic_dir, atomic_path, atomic_write_text, sealed, sha256_file
from stylesearch.config import AuditConfig, TagConfig, to_dict
from stylesearch.curate.audit import AuditResult
from stylesearch.curate.measure import tag_metrics
from stylesearch.curate.report import audit_page, tag_page
from stylesearch.curate.tag import TagResult, fill_missing
from stylesearch.data.prepare import ProcessedCatalog


def write_tags(result: TagResult, catalog: ProcessedCatalog, out: Path, cfg: TagConfig = TagConfig(), *,
               fill: bool = False, threshold: float | None = None) -> dict[str, Any]:
    """suggestions.parquet, tags.json and report.html under `out`; with `fill`, a filled catalogue in out/catalog."""
    out = Path(out)
    threshold = cfg.fill_threshold if threshold is None else threshold
    with atomic_path(out / "suggestions.parquet") as tmp:
        result.suggestions.to_parquet(tmp, index=False)
    summary: dict[str, Any] = {"catalog": str(catalog.path), "catalog_sha256": catalog.manifest["catalog_sha256"],
                               "config": to_dict(cfg), "calibration": result.calibration(),
                               "test": tag_metrics(result, catalog.frame.reset_index(drop=True), cfg)}
    if fill:
        filled, counts = fill_missing(catalog.frame.reset_index(drop=True), result.suggestions, threshold)
        write_filled(filled, catalog, out / "catalog", {"threshold": threshold, "filled": counts})
        summary["filled"] = {"threshold": threshold, "cells": counts, "catalog": str(out / "catalog")}
    atomic_write_text(out / "tags.json", json.dumps(summary, indent=2, default=float))
    atomic_write_text(out / "report.html", tag_page(result, summary))
    return summary


def write_filled(frame: pd.DataFrame, catalog: ProcessedCatalog, out: Path, note: dict[str, Any]) -> None:
    """A processed catalogue like `catalog` but with `frame`'s rows, that index and train read as usual."""
    with atomic_dir(Path(out)) as tmp:
        frame.to_parquet(tmp / "catalog.parquet", index=False)
        manifest = {**{k: v for k, v in catalog.manifest.items() if k != "manifest_sha256"},
                    "count": len(frame), "catalog_sha256": sha256_file(tmp / "catalog.parquet"),
                    "source": f"{catalog.manifest.get('source')} (filled by stylesearch tag from {catalog.path})",
                    "tagged": note}
        manifest = json.loads(json.dumps(manifest, default=str))
        atomic_write_text(tmp / "manifest.json", json.dumps(sealed(manifest), indent=2))


def write_audit(result: AuditResult, catalog: ProcessedCatalog, out: Path,
                cfg: AuditConfig = AuditConfig()) -> dict[str, Any]:
    """findings.parquet, duplicates.parquet, audit.json and audit.html (with thumbnails) under `out`."""
    out = Path(out)
    for name, table in (("findings.parquet", result.findings), ("duplicates.parquet", result.duplicates)):
        with atomic_path(out / name) as tmp:
            table.to_parquet(tmp, index=False)
    flagged = result.findings[result.findings["contradicts"]]
    summary = {"catalog": str(catalog.path), "config": to_dict(cfg), "checked": len(result.findings),
               "contradicting": int(len(flagged)),
               "by_column": {str(c): int(n) for c, n in flagged["column"].value_counts().items()},
               "duplicates": int(len(result.duplicates)),
               "duplicates_same_bytes": int(result.duplicates["same_bytes"].sum()) if len(result.duplicates) else 0}
    images = dict(zip(catalog.frame["id"].astype(str), catalog.frame["image"], strict=True)) \
        if "image" in catalog.frame else {}
    atomic_write_text(out / "audit.json", json.dumps(summary, indent=2))
    atomic_write_text(out / "audit.html", audit_page(result, images, summary, cfg.top))
    return summary
