"""The index manifest: what an index was built from and with, hashed so that changes are caught."""

from __future__ import annotations

import contextlib
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd

import stylesearch
from stylesearch.common.files import checkpoint_hash, read_stage_manifest
from stylesearch.config import IndexConfig, to_dict
from stylesearch.data.prepare import ProcessedCatalog
from stylesearch.index.kinds import kind_of
from stylesearch.model.encoder import Encoder

FORMAT_VERSION = 1
MANIFEST_KIND = "stylesearch.index"
MANIFEST = "manifest.json"


def read_manifest(path: Path) -> dict[str, Any]:
    return read_stage_manifest(path, MANIFEST, kind=MANIFEST_KIND, version=FORMAT_VERSION, what="a search index",
                               fix="build it again with `stylesearch index`")


def make_manifest(catalog: ProcessedCatalog, encoder: Encoder, model_name: str | None, kind: str,
              cfg: IndexConfig, shape: tuple[int, int]) -> dict[str, Any]:
    name = model_name or getattr(encoder, "name", None) or type(encoder).__name__
    params: dict[str, Any] = {"metric": "inner_product", **kind_of(kind).params(cfg)}
    return {
        "kind": MANIFEST_KIND,
        "format_version": FORMAT_VERSION,
        "model": {"name": str(name), "fingerprint": encoder.fingerprint, "checkpoint_sha256": checkpoint_hash(name),
                  # a relative checkpoint directory is found again from another working directory
                  "path": str(Path(name).resolve()) if Path(name).is_dir() else None},
        "catalog": {"sha256": catalog.manifest.get("catalog_sha256"), "path": str(catalog.path),
                    "source": catalog.manifest.get("source")},
        "dim": int(shape[1]),
        "count": int(shape[0]),
        "index": {"kind": kind, "params": params},
        "embedding": "image",  # rows are image embeddings; text queries meet them in CLIP's joint space
        "preprocessing": preprocessing(encoder),
        # The runtime the vectors came from: `--backend auto` queries through the same one when it can.
        "backend": str(getattr(encoder, "backend", "torch")),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
        "config": to_dict(cfg),
    }


def preprocessing(encoder: Encoder) -> dict[str, Any]:
    processor = getattr(encoder, "image_processor", None)
    if processor is None:
        return {"encoder": type(encoder).__name__}
    return {"encoder": type(encoder).__name__, "decode": "stylesearch.data.images.decode_image (RGB)",
            "size": dict(getattr(processor, "size", {}) or {}),
            "crop_size": dict(getattr(processor, "crop_size", {}) or {}),
            "mean": list(getattr(processor, "image_mean", []) or []),
            "std": list(getattr(processor, "image_std", []) or []),
            "max_text_tokens": getattr(encoder, "max_tokens", None)}


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "stylesearch": stylesearch.__version__, "faiss": faiss.__version__,
           "numpy": np.__version__, "pandas": pd.__version__}
    for name in ("torch", "transformers"):
        with contextlib.suppress(ImportError):  # both are dependencies; a version is nice to have
            out[name] = __import__(name).__version__
    return out


