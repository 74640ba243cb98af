"""`curate.audit`: planted mislabels rise to the top, and near-duplicates are found by bytes or by embedding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stylesearch.config import AuditConfig
from stylesearch.curate.audit import audit_catalogue, audit_frame, near_duplicates
from stylesearch.curate.measure import duplicate_precision, inject_flips, injection_scores
from stylesearch.curate.vocabulary import catalogue_vectors, index_vectors
from stylesearch.curate.write import write_audit
from stylesearch.data.prepare import ProcessedCatalog
from stylesearch.search.searcher import Searcher


def test_flipped_colours_are_flagged_and_ranked_first(fake_searcher: Searcher, catalog: ProcessedCatalog):
    frame = catalog.frame.reset_index(drop=True)
    # A bigger test split than the drawn catalogue's 9 rows, so the planted flips are a sample, not a handful.
    frame["split"] = np.where(np.arange(len(frame)) % 5 < 3, "train", np.where(np.arange(len(frame)) % 5 == 3,
                                                                              "val", "test"))
    vectors = catalogue_vectors(frame, fake_searcher.encoder, index_vectors(fake_searcher))
    altered, flips = inject_flips(frame, ["baseColour"], share=0.3, seed=0, split="test")
    assert len(flips) == round(0.3 * (frame["split"] == "test").sum())
    assert (flips["true"] != flips["flipped"]).all()
    rows = np.flatnonzero(altered["split"] == "test")
    result = audit_frame(fake_searcher.encoder, altered, vectors, AuditConfig(columns=("baseColour",)), rows=rows)
    scores = injection_scores(result.findings, flips, k=len(flips))
    assert scores["recall_flagged"] >= 0.8  # a flip almost always names a colour the picture does not show
    # The fake sees one pixel, so some striped photos are flagged too; still the flips rank first (chance: 0.19).
    assert scores["precision_at_k"] >= 0.6
    assert result.findings["margin"].is_monotonic_decreasing
    assert result.models["baseColour"].neighbour_weight == 0  # AuditConfig.neighbour_votes is off by default
    voted = audit_frame(fake_searcher.encoder, altered, vectors,
                        AuditConfig(columns=("baseColour",), neighbour_votes=True), rows=rows)
    assert injection_scores(voted.findings, flips, k=len(flips))["recall_flagged"] >= 0.8


def test_findings_of_the_tiny_model_are_well_formed(tiny_searcher: Searcher, catalog: ProcessedCatalog):
    result = audit_catalogue(tiny_searcher, catalog, AuditConfig(columns=("articleType", "gender")))
    findings = result.findings
    assert set(findings["column"]) == {"articleType", "gender"}
    assert len(findings) == 2 * len(catalog.frame)  # every product has both values in the drawn catalogue
    assert (findings["contradicts"] == (findings["margin"] > 0)).all()
    flagged = findings[findings["contradicts"]]
    assert (flagged["predicted"] != flagged["current"]).all()
    assert findings["p_current"].between(0, 1).all() and findings["margin"].is_monotonic_decreasing


def test_near_duplicates_by_bytes_and_by_embedding():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 16)).astype(np.float32)
    vectors[4] = vectors[1] + 0.01 * rng.normal(size=16)  # the same photo re-encoded under id e
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    frame = pd.DataFrame({"id": list("abcdef"), "title": ["x"] * 6,
                          "image_sha256": ["h0", "h1", "h2", "h0", "h4", "h5"]})
    pairs = near_duplicates(frame, vectors, AuditConfig(duplicate_cosine=0.98))
    found = {(a, b): same for a, b, same in zip(pairs["a"], pairs["b"], pairs["same_bytes"], strict=True)}
    assert found == {("a", "d"): True, ("b", "e"): False}


@pytest.mark.parametrize(("titles", "expected"), [(["Red Tee", "red tee", "Blue Cap", "Bag"], 0.5),
                                                  (["A", "B", "C", "D"], 0.0)])
def test_duplicate_precision_counts_same_title_or_same_bytes(titles: list[str], expected: float):
    frame = pd.DataFrame({"id": ["1", "2", "3", "4"], "title": titles, "image_sha256": ["p", "q", "r", "s"]})
    pairs = pd.DataFrame({"a": ["1", "3"], "b": ["2", "4"]})
    assert duplicate_precision(pairs, frame)["precision"] == expected


def test_audit_writes_a_page_with_thumbnails(fake_searcher: Searcher, catalog: ProcessedCatalog, tmp_path):
    result = audit_catalogue(fake_searcher, catalog, AuditConfig(columns=("baseColour",), top=5))
    summary = write_audit(result, catalog, tmp_path, AuditConfig(top=5))
    page = (tmp_path / "audit.html").read_text()
    assert page.count("data:image/jpeg;base64,") >= 5 and "reliability diagram" in page
    assert summary["contradicting"] == int(result.findings["contradicts"].sum())
    assert len(pd.read_parquet(tmp_path / "findings.parquet")) == len(result.findings)


def test_equal_embeddings_of_different_photos_are_no_duplicates(catalog: ProcessedCatalog):
    import io

    from PIL import Image

    rows = catalog.frame.reset_index(drop=True).head(3).copy()
    again = io.BytesIO()
    Image.open(io.BytesIO(bytes(rows.at[0, "image"]))).save(again, format="JPEG", quality=85)
    rows.at[2, "image"] = again.getvalue()  # the first photo, re-encoded: other bytes, same picture
    rows.at[2, "image_sha256"] = "re-encoded"
    vectors = np.ones((3, 4), np.float32) / 2  # the embedding cannot tell the three apart
    pairs = near_duplicates(rows, vectors, AuditConfig(duplicate_cosine=0.98, max_pixel_difference=0.01))
    assert list(zip(pairs["a"], pairs["b"], strict=True)) == [(str(rows.at[0, "id"]), str(rows.at[2, "id"]))]
    assert pairs["pixel_difference"].iloc[0] < 0.01 and not pairs["same_bytes"].iloc[0]


def test_a_loose_threshold_keeps_the_closest_pairs_not_the_first_rows():
    rng = np.random.default_rng(1)
    base = rng.normal(size=16)
    vectors = base + 0.05 * rng.normal(size=(60, 16))  # sixty look-alikes: 1,770 pairs over 0.9
    vectors[59] = vectors[58] + 1e-4  # the one true twin sits in the last rows
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    frame = pd.DataFrame({"id": [str(i) for i in range(60)], "title": ["x"] * 60})
    pairs = near_duplicates(frame, vectors, AuditConfig(duplicate_cosine=0.9, max_duplicates=2))
    assert (pairs["a"].iloc[0], pairs["b"].iloc[0]) == ("58", "59") and len(pairs) == 2
