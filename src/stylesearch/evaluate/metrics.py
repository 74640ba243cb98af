"""Retrieval metrics as pure functions over similarity matrices, and the base-vs-fine-tuned report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from stylesearch.common.files import atomic_write_text
from stylesearch.config import EvalConfig, to_dict
from stylesearch.data.images import decode_image
from stylesearch.data.prepare import SPLITS, load_processed, normalise_title
from stylesearch.errors import CatalogError
from stylesearch.model.checkpoint import verify_checkpoint
from stylesearch.model.clip import ClipEncoder, LoadedModel, load_model
from stylesearch.train.losses import contrastive_loss

# --- metrics -------------------------------------------------------------------------------------


def recall_at_k(sim: np.ndarray, relevant: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Share of queries with at least one relevant item in the top k, and MRR of the first one.

    `sim` and `relevant` are (queries, gallery); ties are broken by gallery order.
    """
    order = np.argsort(-sim, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1), np.inf)
    out = {f"R@{k}": float((first < k).mean()) for k in ks}
    out["MRR"] = float(np.where(np.isfinite(first), 1.0 / (first + 1), 0.0).mean())
    return out


def precision_at_k(sim: np.ndarray, relevant: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Mean share of relevant items among the top k."""
    order = np.argsort(-sim, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    return {f"P@{k}": float(hits[:, :k].mean()) for k in ks}


def in_batch_accuracy(image: np.ndarray, text: np.ndarray, groups: np.ndarray, batch: int) -> dict[str, float]:
    """How often the matched pair wins inside consecutive batches of `batch` items, both directions."""
    correct_i = correct_t = total = 0
    for start in range(0, len(image), batch):
        im, tx, gr = image[start:start + batch], text[start:start + batch], groups[start:start + batch]
        sim = im @ tx.T
        same = gr[:, None] == gr[None, :]
        correct_i += same[np.arange(len(im)), sim.argmax(1)].sum()
        correct_t += same[np.arange(len(im)), sim.T.argmax(1)].sum()
        total += len(im)
    return {"acc_i2t": correct_i / total, "acc_t2i": correct_t / total}


def clip_score(image: np.ndarray, text: np.ndarray) -> float:
    """100 x the mean cosine of matched image-text pairs."""
    return float(100 * (image * text).sum(1).mean())


def batched_loss(image: np.ndarray, text: np.ndarray, groups: np.ndarray, logit_scale: float, batch: int) -> float:
    losses = []
    for start in range(0, len(image), batch):
        im = torch.from_numpy(image[start:start + batch])
        tx = torch.from_numpy(text[start:start + batch])
        gr = torch.from_numpy(groups[start:start + batch])
        losses.append(contrastive_loss(im, tx, torch.tensor(logit_scale), gr[:, None] == gr[None, :]).item())
    return float(np.mean(losses))


# --- one model on one catalogue ------------------------------------------------------------------


@dataclass
class Embedded:
    image: np.ndarray
    text: np.ndarray
    title_keys: list[str]
    groups: np.ndarray


def embed(encoder: ClipEncoder, frame: pd.DataFrame) -> Embedded:
    images = [decode_image(b, where=f"id {i}") for b, i in zip(frame["image"], frame["id"], strict=True)]
    groups = frame["group"].to_numpy() if "group" in frame else np.arange(len(frame))
    return Embedded(
        image=encoder.encode_images(images),
        text=encoder.encode_texts(frame["full_text"].astype(str).tolist()),
        title_keys=[normalise_title(str(t)) for t in frame["title"]],
        groups=np.array(groups),
    )


def title_retrieval(encoder: ClipEncoder, emb: Embedded, titles: Sequence[str], ks: Sequence[int],
                    query_emb: np.ndarray | None = None) -> dict[str, Any]:
    """KAGL protocol: each distinct title queries the full gallery; every item with that title is relevant.

    `query_emb`: the distinct titles already encoded, in `distinct_titles` order (else they are encoded here).
    """
    keys = np.array(emb.title_keys)
    unique_keys, first = np.unique(keys, return_index=True)
    if query_emb is None:
        query_emb = encoder.encode_texts([str(titles[i]) for i in first])
    relevant = unique_keys[:, None] == keys[None, :]
    t2i = recall_at_k(query_emb @ emb.image.T, relevant, ks)
    i2t = recall_at_k(emb.image @ query_emb.T, relevant.T, ks)
    return {"t2i": t2i, "i2t": i2t, "queries": len(unique_keys)}


def distinct_titles(emb: Embedded, titles: Sequence[str]) -> list[str]:
    """One title per distinct title key, in the order `title_retrieval` queries them."""
    first = np.unique(np.array(emb.title_keys), return_index=True)[1]
    return [str(titles[i]) for i in first]


def category_precision(encoder: ClipEncoder, emb: Embedded, frame: pd.DataFrame, columns: Sequence[str]) -> dict:
    """Category name as the query ("a photo of Watches"): precision@1/10 of products with that value."""
    out = {}
    for col in columns:
        if col not in frame:
            continue
        values = frame[col].astype("string").fillna("")
        names = sorted(v for v in values.unique() if v)
        if not names:
            continue
        q = encoder.encode_texts([f"a photo of {n}" for n in names])
        relevant = np.array(names)[:, None] == values.to_numpy()[None, :]
        out[col] = precision_at_k(q @ emb.image.T, relevant, (1, 10))
    return out


def evaluate_model(loaded: LoadedModel, frame: pd.DataFrame, cfg: EvalConfig) -> dict[str, Any]:
    """Every metric of the report for one model over one catalogue table."""
    if cfg.max_items and len(frame) > cfg.max_items:
        frame = frame.sample(cfg.max_items, random_state=0).sort_index()
    frame = frame.reset_index(drop=True)
    encoder = ClipEncoder(loaded, batch_size=64)
    emb = embed(encoder, frame)
    scale = float(loaded.model.logit_scale.detach().exp().clamp(max=100).log())
    result: dict[str, Any] = {
        "items": len(frame),
        "loss": batched_loss(emb.image, emb.text, emb.groups, scale, cfg.batch_size),
        **in_batch_accuracy(emb.image, emb.text, emb.groups, cfg.batch_size),
        "clip_score": clip_score(emb.image, emb.text),
    }
    retrieval = title_retrieval(encoder, emb, frame["title"].tolist(), cfg.ks)
    result["t2i"], result["i2t"], result["title_queries"] = retrieval["t2i"], retrieval["i2t"], retrieval["queries"]
    result["category"] = category_precision(encoder, emb, frame, cfg.category_columns)
    return result


def evaluate(models: dict[str, LoadedModel], frame: pd.DataFrame, cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate several models (e.g. base and fine-tuned) on the same table."""
    return {"config": to_dict(cfg), "models": {name: evaluate_model(m, frame, cfg) for name, m in models.items()}}


# --- reporting -----------------------------------------------------------------------------------


def flat_metrics(result: dict[str, Any]) -> dict[str, float]:
    """One row of numbers per model for tables."""
    row = {"loss": result["loss"], "acc i2t @32": result["acc_i2t"], "acc t2i @32": result["acc_t2i"],
           "CLIP score": result["clip_score"]}
    row.update({f"t2i {k}": v for k, v in result["t2i"].items()})
    row.update({f"i2t {k}": v for k, v in result["i2t"].items()})
    for col, m in result["category"].items():
        row.update({f"{col} {k}": v for k, v in m.items()})
    return row


def markdown_table(report: dict[str, Any]) -> str:
    rows = {name: flat_metrics(r) for name, r in report["models"].items()}
    names = list(rows)
    metrics = list(next(iter(rows.values())))
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for m in metrics:
        lines.append(f"| {m} | " + " | ".join(f"{rows[n][m]:.4f}" for n in names) + " |")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out_dir: Path) -> None:
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "eval.json", json.dumps(report, indent=2, default=float))
    atomic_write_text(out_dir / "eval.md", markdown_table(report))


def evaluate_checkpoints(model: str, base: str | None, catalog_dir: Path, split: str, cfg: EvalConfig,
                         out_dir: Path) -> dict[str, Any]:
    """Evaluate a fine-tuned checkpoint beside its base on one split of a processed catalogue; write the report."""
    catalog = load_processed(catalog_dir)
    if split == "all":
        frame = catalog.frame
    elif split in SPLITS:
        frame = catalog.split(split)
    else:
        raise CatalogError(f"unknown split '{split}'; use one of {', '.join(SPLITS)} or all")
    if frame.empty:
        raise CatalogError(f"{catalog_dir}: the {split} split is empty")
    manifest = verify_checkpoint(Path(model)) if Path(model).is_dir() else {}
    base = base or manifest.get("base_model")
    models = {}
    if base:
        models[f"base ({base})"] = load_model(base)
    models[f"fine-tuned ({Path(model).name})"] = load_model(model)
    report = evaluate(models, frame, cfg)
    report.update({"catalog": str(catalog_dir), "catalog_sha256": catalog.manifest["catalog_sha256"], "split": split})
    write_report(report, out_dir)
    return report
