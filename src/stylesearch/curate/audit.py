"""`stylesearch audit`: products whose image contradicts their metadata, and ids that are one product twice.

Contradictions: each product's image is scored against every value of a column (`curate.tag`'s
calibrated column models); a product is suspect when the image makes another value far likelier than
the one on file. Findings rank by that log-odds margin, so a confident "this is Red, not Blue" comes
before a column the model is merely unsure about.

Near-duplicates: the same image bytes under two ids, or two images whose embeddings are nearly equal
(the same photo resized or re-encoded).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stylesearch.config import AuditConfig, TagConfig
from stylesearch.curate.tag import ColumnModel, fit_columns, frame_colours, needs_colours, shared_nearest
from stylesearch.curate.vocabulary import catalogue_vectors, index_vectors
from stylesearch.data.images import decode_image
from stylesearch.data.prepare import ProcessedCatalog
from stylesearch.errors import CatalogError
from stylesearch.model.encoder import Encoder
from stylesearch.search.searcher import Searcher

FLOOR = 1e-9  # probabilities below this are noise; it keeps the log-odds finite
# Side of the colour thumbnails compared to confirm a near-duplicate: enough to tell two look-alike shots
# apart, small enough that JPEG re-encoding does not matter.
THUMB = 16
BLOCK = 1024  # rows per block of the all-pairs cosine scan: ~140 MB of scores at 34k products
CANDIDATES_PER_PAIR = 20  # embedding candidates kept per pair listed, for the pixel check to choose from


@dataclass
class AuditResult:
    """Every (product, column) with its contradiction score, best first, and the near-duplicate pairs."""

    findings: pd.DataFrame  # id, title, split, column, current, predicted, p_current, confidence, margin, contradicts
    duplicates: pd.DataFrame  # a, b, cosine, pixel_difference, same_bytes
    models: dict[str, ColumnModel]  # the calibrated column models that judged the images


def contradictions(frame: pd.DataFrame, vectors: np.ndarray, models: dict[str, ColumnModel],
                   rows: np.ndarray | None = None, colours: np.ndarray | None = None) -> pd.DataFrame:
    """Each product and column with a known value: how much likelier the image makes another value, best first.

    `colours`: every row's `pixelcolour.colour_features` (made from the images when a model needs them).
    """
    rows = np.arange(len(frame)) if rows is None else np.asarray(rows)
    parts = []
    nearest = shared_nearest(models, vectors[rows])
    if colours is None and any(m.uses_colour for m in models.values()):
        colours = frame_colours(frame)
    for column, model in models.items():
        codes = model.vocabulary.codes(frame[column].iloc[rows])
        keep = rows[codes >= 0]
        probs = model.probabilities(vectors[keep], None if nearest is None else nearest[codes >= 0],
                                    None if colours is None else colours[keep])
        codes = codes[codes >= 0]
        current = probs[np.arange(len(keep)), codes]
        others = probs.copy()
        others[np.arange(len(keep)), codes] = -1.0
        best = others.argmax(axis=1)
        p_best = others[np.arange(len(keep)), best]
        values = np.asarray(model.vocabulary.values, dtype=object)
        parts.append(pd.DataFrame({
            "id": frame["id"].astype(str).to_numpy()[keep],
            "title": frame["title"].astype(str).to_numpy()[keep],
            "split": frame["split"].astype(str).to_numpy()[keep] if "split" in frame else "",
            "column": column, "current": values[codes], "predicted": values[best],
            "p_current": current, "confidence": p_best,
            "margin": np.log(np.maximum(p_best, FLOOR)) - np.log(np.maximum(current, FLOOR)),
        }))
    if not parts:
        raise CatalogError("no column to audit: the catalogue has none of the audited columns")
    findings = pd.concat(parts, ignore_index=True)
    findings["contradicts"] = findings["margin"] > 0  # the image's best value is not the one on file
    # Ties (rare) go by id, so the ranking is the same run to run.
    return findings.sort_values(["margin", "id", "column"], ascending=[False, True, True], ignore_index=True)


def near_duplicates(frame: pd.DataFrame, vectors: np.ndarray, cfg: AuditConfig = AuditConfig()) -> pd.DataFrame:
    """Id pairs with byte-identical images, or image cosine ≥ `cfg.duplicate_cosine` and near-equal pixels."""
    ids = frame["id"].astype(str).to_numpy()
    found: dict[tuple[int, int], float] = {}
    sha = frame["image_sha256"].astype(str).to_numpy() if "image_sha256" in frame else None
    if sha is not None:
        first: dict[str, int] = {}
        for row, digest in enumerate(sha):
            if digest in first:  # prepare drops these, but a catalogue built another way may hold them
                found[(first[digest], row)] = 1.0
            else:
                first[digest] = row
    vectors = np.asarray(vectors, np.float32)
    cut, keep = cfg.duplicate_cosine, CANDIDATES_PER_PAIR * cfg.max_duplicates
    for start in range(0, len(vectors), BLOCK):
        sim = vectors[start:start + BLOCK] @ vectors.T
        a, b = np.nonzero(sim >= cut)
        a += start
        for i, j in zip(a[a < b], b[a < b], strict=True):
            found.setdefault((int(i), int(j)), float(sim[i - start, j]))
        if len(found) > 2 * keep:  # a loose threshold would list half the catalogue: keep the closest, raise the bar
            found = dict(sorted(found.items(), key=lambda p: (-p[1], p[0]))[:keep])
            cut = max(cut, min(found.values()))
    pairs = sorted(found.items(), key=lambda p: (-p[1], p[0]))
    difference = _pixel_differences(frame, [pair for pair, _ in pairs])
    kept = [(pair, cosine, diff) for (pair, cosine), diff in zip(pairs, difference, strict=True)
            if (sha is not None and sha[pair[0]] == sha[pair[1]]) or not diff > cfg.max_pixel_difference]
    kept = kept[:cfg.max_duplicates]
    return pd.DataFrame({
        "a": pd.Series([ids[i] for (i, _), _, _ in kept], dtype=str),
        "b": pd.Series([ids[j] for (_, j), _, _ in kept], dtype=str),
        "cosine": pd.Series([c for _, c, _ in kept], dtype=float),
        "pixel_difference": pd.Series([d for _, _, d in kept], dtype=float),
        "same_bytes": pd.Series([bool(sha is not None and sha[i] == sha[j]) for (i, j), _, _ in kept], dtype=bool),
    })


def _pixel_differences(frame: pd.DataFrame, pairs: list[tuple[int, int]]) -> list[float]:
    """Mean absolute difference (0-1) of small colour thumbnails per pair; NaN where the frame has no images."""
    if "image" not in frame or not pairs:
        return [float("nan")] * len(pairs)
    thumbs: dict[int, np.ndarray] = {}

    def thumb(row: int) -> np.ndarray:
        if row not in thumbs:
            picture = decode_image(bytes(frame["image"].iat[row]), where=f"id {frame['id'].iat[row]}")
            thumbs[row] = np.asarray(picture.resize((THUMB, THUMB)), np.float32) / 255.0
        return thumbs[row]

    return [float(np.abs(thumb(i) - thumb(j)).mean()) for i, j in pairs]


def audit_tag_config(cfg: AuditConfig, tag_cfg: TagConfig = TagConfig()) -> TagConfig:
    """The column models' settings for an audit: `tag_cfg` without the neighbours' votes unless `cfg` wants them."""
    return tag_cfg if cfg.neighbour_votes else dataclasses.replace(tag_cfg, neighbour_weights=(0.0,))


def audit_frame(encoder: Encoder, frame: pd.DataFrame, vectors: np.ndarray, cfg: AuditConfig = AuditConfig(),
                tag_cfg: TagConfig = TagConfig(), rows: np.ndarray | None = None) -> AuditResult:
    """Contradictions over `rows` (all when None) and near-duplicates over the whole frame."""
    columns = [c for c in cfg.columns if c in frame.columns]
    tag_cfg = audit_tag_config(cfg, tag_cfg)
    colours = frame_colours(frame) if needs_colours(frame, tag_cfg, columns) else None
    models = fit_columns(encoder, frame, vectors, tag_cfg, columns, colours)
    return AuditResult(contradictions(frame, vectors, models, rows, colours), near_duplicates(frame, vectors, cfg),
                       models)


def audit_catalogue(searcher: Searcher, catalog: ProcessedCatalog, cfg: AuditConfig = AuditConfig(),
                    tag_cfg: TagConfig = TagConfig()) -> AuditResult:
    """Audit every product of `catalog` with the model and vectors of `searcher`'s index."""
    frame = catalog.frame.reset_index(drop=True)
    vectors = catalogue_vectors(frame, searcher.encoder, index_vectors(searcher))
    return audit_frame(searcher.encoder, frame, vectors, cfg, tag_cfg)
