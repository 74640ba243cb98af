"""The tag and audit pages: self-contained HTML with inline figures and thumbnails, as `evaluate.report` makes.

No scripts and no external URLs, so a page opens offline and can be mailed as one file.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from stylesearch.curate.audit import AuditResult
from stylesearch.curate.calibrate import Reliability
from stylesearch.curate.tag import TagResult
from stylesearch.errors import CatalogError
from stylesearch.evaluate.report import CSS, data_uri, thumbnail


def reliability_figure(curves: Mapping[str, tuple[Reliability, Reliability]]) -> bytes:
    """One panel per column: accuracy against confidence per bin, before and after calibration, and the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, max(1, len(curves)), figsize=(3.2 * max(1, len(curves)), 3.4), squeeze=False)
    for ax, (column, (before, after)) in zip(axes[0], curves.items(), strict=False):
        ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--")
        for curve, label, style in ((before, "before", "o:"), (after, "calibrated", "s-")):
            conf, acc = np.array(curve.confidence), np.array(curve.accuracy)
            shown = ~np.isnan(conf)
            ax.plot(conf[shown], acc[shown], style, ms=4, label=f"{label} (ECE {curve.ece:.3f})")
        ax.set_title(column, fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>nothing to show</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value) if value is not None else "–"
    return text if text.startswith("<img ") else html.escape(text)  # our own thumbnails; everything else escaped


def _page(title: str, parts: list[str]) -> str:
    return "".join([f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>",
                    f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>", *parts, "</body></html>"])


def tag_page(result: TagResult, summary: Mapping[str, Any]) -> str:
    """Per column: values, temperature, ECE before and after, test accuracy against the majority value."""
    rows = []
    for column, model in result.models.items():
        test = summary.get("test", {}).get(column, {})
        rows.append({"column": column, "values": len(model.vocabulary.values), "temperature": model.temperature,
                     "image weight": model.image_weight, "prior weight": model.prior_weight,
                     "val ECE before": model.before.ece, "val ECE calibrated": model.after.ece,
                     "test ECE": test.get("ece"), "test accuracy": test.get("accuracy"),
                     "test macro-F1": test.get("macro_f1"), "majority accuracy": test.get("majority_accuracy"),
                     "majority macro-F1": test.get("majority_macro_f1")})
    figure = reliability_figure({c: (m.before, m.after) for c, m in result.models.items()})
    parts = [f"<p>Catalogue {html.escape(str(summary.get('catalog')))}. Text and image prototypes and the prior "
             "from the train split; per column, their mix and one temperature fitted on the val split; test "
             "figures with the values hidden. Before: plain zero-shot CLIP (text prompts, scale 100).</p>",
             _table(rows), "<h2>Reliability (val split)</h2>",
             f"<img class=fig alt='reliability diagram' src='{data_uri(figure)}'>"]
    if "filled" in summary:
        filled = summary["filled"]
        parts.append(f"<h2>Filled</h2><p>missing cells filled at confidence ≥ {filled['threshold']:.2f}: "
                     + html.escape(", ".join(f"{c} {n}" for c, n in filled["cells"].items())) + "</p>")
    return _page("stylesearch tag", parts)


def _thumb(images: Mapping[str, Any], product_id: str) -> str:
    data = images.get(product_id)
    if data is None:
        return ""
    try:
        return f"<img alt='{html.escape(product_id)}' src='{data_uri(thumbnail(bytes(data)), 'image/jpeg')}'>"
    except CatalogError:
        return ""  # an undecodable picture loses its thumbnail, not the page


def audit_page(result: AuditResult, images: Mapping[str, Any], summary: Mapping[str, Any], top: int = 200) -> str:
    """The most contradicted products with thumbnails, then the near-duplicate pairs side by side."""
    flagged = result.findings[result.findings["contradicts"]].head(top)
    rows = [{"photo": _thumb(images, r.id), "id": r.id, "title": r.title, "column": r.column,
             "on file": r.current, "image says": r.predicted, "p(on file)": float(r.p_current),
             "p(image says)": float(r.confidence), "log-odds": float(r.margin)} for r in flagged.itertuples()]
    pairs = [{"a": _thumb(images, r.a), "id a": r.a, "b": _thumb(images, r.b), "id b": r.b,
              "cosine": float(r.cosine), "same bytes": "yes" if r.same_bytes else "no"}
             for r in result.duplicates.head(top).itertuples()]
    counts = ", ".join(f"{c} {n}" for c, n in summary.get("by_column", {}).items())
    parts = [f"<p>{summary.get('contradicting', 0)} of {summary.get('checked', 0)} product attributes contradict "
             f"their image ({html.escape(counts)}); the top {len(rows)} by log-odds below.</p>",
             "<h2>Image contradicts metadata</h2>", _table(rows),
             f"<h2>Near-duplicates ({summary.get('duplicates', 0)} pairs)</h2>", _table(pairs)]
    if result.models:  # how far the probabilities behind the log-odds can be trusted
        figure = reliability_figure({c: (m.before, m.after) for c, m in result.models.items()})
        parts += ["<h2>Calibration of the column models (val split)</h2>",
                  f"<img class=fig alt='reliability diagram' src='{data_uri(figure)}'>"]
    return _page("stylesearch audit", parts)
