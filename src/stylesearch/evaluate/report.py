"""`stylesearch report`: one self-contained HTML page (and markdown) that people would rather read than JSON.

The page carries its images inline (base64 PNG/JPEG data URIs) and no scripts, fonts or style
sheets from anywhere else, so it opens offline and can be mailed as one file. It shows training
curves, the metric table for base / fine-tuned / WiSE-FT / hybrid, recall per articleType, a
confusion matrix of the most confused article types, and example queries with result thumbnails.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stylesearch.common.files import atomic_write_bytes, atomic_write_text
from stylesearch.data.images import decode_image
from stylesearch.evaluate.metrics import embed
from stylesearch.evaluate.quality import evaluate_quality, mean_confusion, plot_alpha_sweep
from stylesearch.model.clip import ClipEncoder, LoadedModel
from stylesearch.search.hybrid import HybridRanker
from stylesearch.train.history import history_png

EXAMPLES = ("women red dress", "men navy blue tee", "black leather belt", "sneakers for men")
THUMB = 72  # pixels on the long side: enough to tell a dress from a nightdress, small enough to inline


# --- figures (PNG bytes) ---------------------------------------------------------------------------


def _figure_bytes(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(history_path: Path) -> bytes:
    """The loss / validation recall / learning-rate plot of a run, from its history.json."""
    return history_png(json.loads(Path(history_path).read_text()))


def recall_per_type_figure(per_model: dict[str, dict[str, float]], counts: pd.Series, top: int = 25) -> bytes:
    """Grouped bars of title->image R@10 for the `top` most frequent article types, one colour per model."""
    plt = _pyplot()
    types = [t for t in counts.index[:top] if any(t in r for r in per_model.values())]
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(types)), 4))
    width = 0.8 / max(1, len(per_model))
    for i, (name, rec) in enumerate(per_model.items()):
        ax.bar(np.arange(len(types)) + i * width, [rec.get(t, 0.0) for t in types], width, label=name)
    ax.set_xticks(np.arange(len(types)) + 0.4 - width / 2)
    ax.set_xticklabels(types, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("title→image R@10")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _figure_bytes(fig)


def most_confused(confusion: dict[str, dict[str, int]], n: int = 12) -> list[str]:
    """The `n` article types with the most images assigned to, or taken from, another type."""
    off: dict[str, int] = {}
    for truth, row in confusion.items():
        for predicted, count in row.items():
            if predicted != truth:
                off[truth] = off.get(truth, 0) + count
                off[predicted] = off.get(predicted, 0) + count
    return [t for t, _ in sorted(off.items(), key=lambda p: (-p[1], p[0]))[:n]]


def confusion_figure(confusion: dict[str, dict[str, int]], n: int = 12) -> bytes:
    """Row-normalised zero-shot confusion matrix over the most confused article types."""
    plt = _pyplot()
    types = most_confused(confusion, n)
    matrix = np.array([[confusion.get(t, {}).get(p, 0) for p in types] for t in types], float)
    shares = matrix / np.maximum(1, np.array([sum(confusion.get(t, {}).values()) for t in types]))[:, None]
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=max(0.01, shares.max()))
    ax.set_xticks(range(len(types)))
    ax.set_yticks(range(len(types)))
    ax.set_xticklabels(types, rotation=60, ha="right", fontsize=8)
    ax.set_yticklabels(types, fontsize=8)
    ax.set_xlabel("predicted (nearest 'a photo of <type>')")
    ax.set_ylabel("true articleType")
    for (i, j), v in np.ndenumerate(shares):
        if v >= 0.05:
            ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=6,
                    color="white" if v > 0.5 * shares.max() else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true type's images")
    return _figure_bytes(fig)


def thumbnail(image: bytes, size: int = THUMB) -> bytes:
    """A small JPEG of a catalogue image, for inlining."""
    picture = decode_image(image, where="a report thumbnail")  # the bomb guard, and white behind transparency
    picture.thumbnail((size, size))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


# --- tables ----------------------------------------------------------------------------------------


def metric_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per system: model rows from `quality.evaluate_quality`, plus a hybrid row where computed."""
    rows = []
    for name, r in results.items():
        rows.append({"system": name, "title R@1": r["title_t2i"]["R@1"], "title R@10": r["title_t2i"]["R@10"],
                     "attribute P@10": r["attribute"]["P@10"],
                     "type look-alike confusion": mean_confusion(r["confusion"], "articleType"),
                     "colour look-alike confusion": mean_confusion(r["confusion"], "baseColour"),
                     "zero-shot type accuracy": r["category_accuracy"]})
        if "hybrid" in r:
            h = r["hybrid"]
            rows.append({"system": f"hybrid ({name})", "title R@1": None, "title R@10": h["title_t2i_R@10"],
                         "attribute P@10": h["attribute"]["P@10"],
                         "type look-alike confusion": mean_confusion(h["confusion"], "articleType"),
                         "colour look-alike confusion": mean_confusion(h["confusion"], "baseColour"),
                         "zero-shot type accuracy": None})
    return rows


def markdown_rows(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return ""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _html_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p>nothing to show</p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r[c]))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def confusion_pairs_rows(results: dict[str, dict[str, Any]], top: int = 15) -> list[dict[str, Any]]:
    """The look-alike pairs with the highest confusion under the first system, with every system's rate."""
    names = list(results)
    first = results[names[0]]["confusion"]
    key = [(r["query"], r["confused_with"]) for r in sorted(first, key=lambda r: -r["rate"])[:top]]
    rows = []
    for query, other in key:
        row: dict[str, Any] = {"queries for": query, "top-10 holds": other}
        for name in names:
            rate = {(r["query"], r["confused_with"]): r["rate"] for r in results[name]["confusion"]}
            row[name] = rate.get((query, other))
            if "hybrid" in results[name]:
                hrate = {(r["query"], r["confused_with"]): r["rate"] for r in results[name]["hybrid"]["confusion"]}
                row[f"hybrid ({name})"] = hrate.get((query, other))
        rows.append(row)
    return rows


# --- examples --------------------------------------------------------------------------------------


def example_results(models: dict[str, LoadedModel], frame: pd.DataFrame, queries: Sequence[str], *,
                    hybrid_of: str | None = None, k: int = 5) -> list[dict[str, Any]]:
    """Per query and system, the top k products: id, title, and an inline thumbnail."""
    frame = frame.reset_index(drop=True)
    meta = frame.drop(columns=["image"], errors="ignore")
    out: list[dict[str, Any]] = [{"query": q, "systems": {}} for q in queries]
    for name, loaded in models.items():
        encoder = ClipEncoder(loaded, batch_size=64)
        images = embed(encoder, frame).image
        vectors = encoder.encode_texts(list(queries))
        ranker = HybridRanker(meta) if name == hybrid_of else None
        for item, vector in zip(out, vectors, strict=True):
            scores = images @ vector
            item["systems"][name] = _hits(frame, np.argsort(-scores, kind="stable")[:k])
            if ranker is not None:
                item["systems"][f"hybrid ({name})"] = _hits(frame, ranker.rank(item["query"], scores)[0][:k])
    return out


def _hits(frame: pd.DataFrame, rows: Sequence[int]) -> list[dict[str, str]]:
    return [{"id": str(frame["id"].iat[r]), "title": str(frame["title"].iat[r]),
             "articleType": str(frame["articleType"].iat[r]) if "articleType" in frame else "",
             "thumb": data_uri(thumbnail(bytes(frame["image"].iat[r])), "image/jpeg")} for r in rows]


# --- the page --------------------------------------------------------------------------------------

CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}img.fig{max-width:100%}
.hits{display:flex;gap:6px;flex-wrap:wrap}.hit{width:90px;font-size:10px;text-align:center}
.hit img{display:block;margin:0 auto}h2{border-bottom:1px solid #ddd;padding-bottom:4px}.note{color:#666}"""


def render_html(report: dict[str, Any], figures: dict[str, bytes]) -> str:
    """The page: inline CSS, inline images, no scripts and no external URLs."""
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(report['title'])}"
             f"</title><style>{CSS}</style></head><body>", f"<h1>{html.escape(report['title'])}</h1>",
             f"<p class='note'>{html.escape(report['subtitle'])}</p>"]
    captions = {"training": "Training curves", "alpha_sweep": "WiSE-FT: in-domain retrieval against base knowledge",
                "recall_per_type": "Recall per articleType (title queries)",
                "confusion": "Confusion matrix of the most confused article types"}
    parts.append("<h2>Metrics</h2>" + _html_table(report["metrics"]))
    parts.append("<p class='note'>Attribute P@10: share of the top 10 whose metadata has every attribute of a query "
                 "built from held-out metadata (never titles). Look-alike confusion: share of queries for one type "
                 "(or colour) whose top 10 holds its look-alike. The hybrid title recall is trivially high: BM25 "
                 "sees the titles.</p>")
    parts.append("<h2>Look-alike pairs</h2>" + _html_table(report["pairs"]))
    for key, caption in captions.items():
        if key in figures:
            parts.append(f"<h2>{caption}</h2><img class='fig' alt='{html.escape(caption)}' "
                         f"src='{data_uri(figures[key])}'>")
    if report.get("sweep"):
        parts.append(_html_table(report["sweep"]))
    parts.append("<h2>Example queries</h2>")
    for example in report["examples"]:
        parts.append(f"<h3>“{html.escape(example['query'])}”</h3>")
        for system, hits in example["systems"].items():
            cells = "".join(f"<div class='hit'><img alt='{html.escape(h['title'])}' src='{h['thumb']}'>"
                            f"{html.escape(h['articleType'])}</div>" for h in hits)
            parts.append(f"<p><b>{html.escape(system)}</b></p><div class='hits'>{cells}</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(report: dict[str, Any], figure_files: dict[str, str]) -> str:
    lines = [f"# {report['title']}", "", report["subtitle"], "", "## Metrics", "", markdown_rows(report["metrics"]),
             "## Look-alike pairs", "", markdown_rows(report["pairs"])]
    if report.get("sweep"):
        lines += ["## WiSE-FT sweep", "", markdown_rows(report["sweep"])]
    for key, name in figure_files.items():
        lines += [f"![{key}]({name})", ""]
    lines += ["## Example queries", ""]
    for example in report["examples"]:
        for system, hits in example["systems"].items():
            lines.append(f"- “{example['query']}” — {system}: " + "; ".join(h["title"] for h in hits))
    return "\n".join(lines) + "\n"


def build_report(models: dict[str, LoadedModel], frame: pd.DataFrame, out_dir: Path, *,
                 history: Path | None = None, hybrid_of: str | None = None,
                 sweep: Sequence[dict[str, float]] | None = None, examples: Sequence[str] = EXAMPLES,
                 title: str = "stylesearch quality report", subtitle: str = "", seed: int = 0,
                 results: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Evaluate `models` on `frame` (or use precomputed `results`) and write report.html, report.md,
    quality.json and figures/*.png into `out_dir`."""

    out_dir = Path(out_dir)
    if results is None:
        results = {name: evaluate_quality(m, frame, seed=seed, hybrid=name == hybrid_of) for name, m in models.items()}
    figures: dict[str, bytes] = {}
    if history is not None and Path(history).is_file():
        figures["training"] = training_curves(Path(history))
    if sweep:
        figures["alpha_sweep"] = plot_alpha_sweep(sweep)
    counts = frame["articleType"].astype(str).value_counts()
    figures["recall_per_type"] = recall_per_type_figure({n: r["recall_per_type"] for n, r in results.items()}, counts)
    main = hybrid_of if hybrid_of in results else list(results)[-1]
    figures["confusion"] = confusion_figure(results[main]["category_confusion"])
    report = {"title": title, "subtitle": subtitle or f"{len(frame)} held-out products; seed {seed}",
              "metrics": metric_rows(results), "pairs": confusion_pairs_rows(results),
              "sweep": list(sweep or []),
              "examples": example_results(models, frame, examples, hybrid_of=hybrid_of) if models else []}
    figure_files = {}
    for key, png in figures.items():
        atomic_write_bytes(out_dir / "figures" / f"{key}.png", png)
        figure_files[key] = f"figures/{key}.png"
    atomic_write_text(out_dir / "report.html", render_html(report, figures))
    atomic_write_text(out_dir / "report.md", render_markdown(report, figure_files))
    atomic_write_text(out_dir / "quality.json", json.dumps({"results": results, "sweep": report["sweep"],
                                                            "metrics": report["metrics"]}, indent=1, default=float))
    return report
