"""Search quality as shoppers meet it: attribute queries, look-alike confusion, forgetting (WiSE-FT sweep).

Title queries flatter any system that matches words, so the attribute measures here never use
titles: queries are built from held-out metadata ("women red dress" from gender, baseColour and
articleType) and a result counts when its metadata has every attribute the query names.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stylesearch.common.files import atomic_write_bytes, atomic_write_text
from stylesearch.data.prepare import load_processed, normalise_title
from stylesearch.evaluate.metrics import Embedded, distinct_titles, embed, title_retrieval
from stylesearch.model.clip import ClipEncoder, LoadedModel, load_model
from stylesearch.model.merge import interpolate, load_base
from stylesearch.search.hybrid import HybridRanker, blend_catalogue_wording, tokens

# (columns, template): the shapes of query shoppers type, from the most to the least specific.
TEMPLATES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("gender", "baseColour", "articleType"), "{gender} {baseColour} {articleType}"),
    (("baseColour", "articleType"), "{baseColour} {articleType}"),
    (("gender", "articleType"), "{articleType} for {gender}"),
    (("usage", "articleType"), "{usage} {articleType}"),
)
K = 10


@dataclass(frozen=True)
class AttributeQuery:
    text: str
    attributes: tuple[tuple[str, str], ...]  # (column, value) a relevant product must all have
    template: str


def _word(column: str, value: str, rng: np.random.Generator) -> str:
    if column == "articleType" and rng.random() < 0.5:
        return " ".join(tokens(value))  # the singular shoppers often type: "dress", "casual shoe"
    return value.lower()


def attribute_queries(frame: pd.DataFrame, *, seed: int = 0, per_template: int = 100,
                      min_matches: int = 3) -> list[AttributeQuery]:
    """Queries from the metadata of `frame` (the held-out gallery), each matched by >= `min_matches` products.

    Combinations are drawn uniformly, not by frequency, so rare types count as much as T-shirts;
    "Casual" usage is skipped (three quarters of the catalogue: it names nothing).
    """
    rng = np.random.default_rng(seed)
    out = []
    for columns, template in TEMPLATES:
        if not all(c in frame for c in columns):
            continue
        sizes = frame.groupby(list(columns), dropna=True).size()
        combos = [c if isinstance(c, tuple) else (c,) for c, n in sizes.items() if n >= min_matches]
        if "usage" in columns:
            combos = [c for c in combos if c[columns.index("usage")] != "Casual"]
        for i in rng.permutation(len(combos))[:per_template]:
            values = dict(zip(columns, (str(v) for v in combos[i]), strict=True))
            text = template.format(**{c: _word(c, v, rng) for c, v in values.items()})
            out.append(AttributeQuery(text, tuple(values.items()), template))
    return out


def relevance(frame: pd.DataFrame, queries: Sequence[AttributeQuery]) -> np.ndarray:
    """(queries, products) bool: the product has every attribute the query names."""
    needed = {c for q in queries for c, _ in q.attributes}
    columns = {c: frame[c].astype("string").fillna("").to_numpy() for c in needed}
    rel = np.ones((len(queries), len(frame)), bool)
    for q, query in enumerate(queries):
        for column, value in query.attributes:
            rel[q] &= columns[column] == value
    return rel


def precision_from_rankings(rankings: Sequence[np.ndarray], rel: np.ndarray, k: int = K) -> np.ndarray:
    """Per query, the share of the top k that is relevant (a short ranking counts missing slots as misses)."""
    return np.array([rel[q, r[:k]].sum() / k for q, r in enumerate(rankings)])


def clip_rankings(text_vectors: np.ndarray, image_vectors: np.ndarray, k: int = K) -> list[np.ndarray]:
    sim = text_vectors @ image_vectors.T
    return [np.argsort(-row, kind="stable")[:k] for row in sim]


# --- look-alikes ---------------------------------------------------------------------------------


def lookalike_pairs(frame: pd.DataFrame, *, min_items: int = 10) -> list[tuple[str, str, str]]:
    """(column, a, b) pairs shoppers confuse, found in the data, each value with >= `min_items` products:

    - article types of the same subCategory (Skirts/Shorts, Casual/Sports Shoes, Tshirts/Shirts);
    - article types or colours one of whose names holds the other's words (Dresses/Nightdress,
      Blue/Navy Blue, White/Off White).
    """
    pairs: list[tuple[str, str, str]] = []
    counts = frame["articleType"].value_counts()
    types = sorted(str(t) for t, n in counts.items() if n >= min_items)
    sub = frame.groupby("articleType")["subCategory"].agg(lambda s: s.mode().iat[0]) if "subCategory" in frame \
        else pd.Series(dtype=str)
    for a, b in itertools.combinations(types, 2):
        if sub.get(a) == sub.get(b) or _names_overlap(a, b):
            pairs.append(("articleType", a, b))
    if "baseColour" in frame:
        colours = sorted(str(c) for c, n in frame["baseColour"].value_counts().items() if n >= min_items)
        pairs += [("baseColour", a, b) for a, b in itertools.combinations(colours, 2) if _names_overlap(a, b)]
    return pairs


def _names_overlap(a: str, b: str) -> bool:
    ka, kb = "".join(tokens(a)), "".join(tokens(b))
    wa, wb = set(tokens(a)), set(tokens(b))
    # "nightdress" ends with "dress"; "capri" merely starts with "cap", which is no look-alike
    return bool(ka.endswith(kb) or kb.endswith(ka) or wa & wb - {"and"})


def value_queries(frame: pd.DataFrame, column: str, value: str, *, min_matches: int = 3) -> list[str]:
    """Queries that ask for `value`: its name alone, and with each gender and each colour it comes in."""
    word = " ".join(tokens(value)) if column == "articleType" else value.lower()
    rows = frame[frame[column].astype(str) == value]
    other = "baseColour" if column == "articleType" else "articleType"
    out = [word if column == "articleType" else f"{word} clothes"]
    for col in ("gender", other):
        if col in rows:
            for v, n in rows[col].value_counts().items():
                if n >= min_matches:
                    out.append(f"{str(v).lower()} {word}" if col != "articleType" else f"{word} {' '.join(tokens(v))}")
    return out


def confusion_rates(rank: Callable[[list[str]], list[np.ndarray]], frame: pd.DataFrame,
                    pairs: Sequence[tuple[str, str, str]], k: int = K) -> list[dict[str, Any]]:
    """For each pair and direction: the share of queries for `a` whose top k holds at least one `b`."""
    values = {c: frame[c].astype("string").fillna("").to_numpy() for c in {p[0] for p in pairs}}
    wanted = sorted({(c, v) for c, a, b in pairs for v in (a, b)})
    texts = {cv: value_queries(frame, *cv) for cv in wanted}
    flat = [t for cv in wanted for t in texts[cv]]
    ranked = dict(zip(flat, rank(flat), strict=True))
    rows = []
    for column, a, b in pairs:
        for x, y in ((a, b), (b, a)):
            tops = [ranked[t][:k] for t in texts[(column, x)]]
            rows.append({"column": column, "query": x, "confused_with": y, "queries": len(tops),
                         "rate": float(np.mean([(values[column][t] == y).any() for t in tops]))})
    return rows


# --- one model, every measure --------------------------------------------------------------------


def category_predictions(encoder: ClipEncoder, emb: Embedded, frame: pd.DataFrame,
                         column: str = "articleType") -> tuple[list[str], np.ndarray]:
    """Zero-shot class per image: the value whose "a photo of <value>" text is nearest."""
    names = sorted(frame[column].dropna().astype(str).unique())
    prompts = encoder.encode_texts([f"a photo of {n}" for n in names])
    return names, np.array(names, dtype=object)[(emb.image @ prompts.T).argmax(1)]


def recall_per_type(query_emb: np.ndarray, emb: Embedded, frame: pd.DataFrame, k: int = K) -> dict[str, float]:
    """Title->image recall@k with each title's queries grouped by its product's articleType."""
    keys = np.array(emb.title_keys)
    unique_keys, first = np.unique(keys, return_index=True)
    relevant = unique_keys[:, None] == keys[None, :]
    order = np.argsort(-(query_emb @ emb.image.T), axis=1, kind="stable")[:, :k]
    hit = np.take_along_axis(relevant, order, axis=1).any(1)
    types = frame["articleType"].astype(str).to_numpy()[first]
    return {str(t): float(hit[types == t].mean()) for t in sorted(set(types))}


def evaluate_quality(loaded: LoadedModel, frame: pd.DataFrame, *, seed: int = 0, hybrid: bool = False,
                     per_template: int = 100, min_pair_items: int = 10) -> dict[str, Any]:
    """Title recall, attribute precision@10 (CLIP, and hybrid if asked), look-alike confusion,
    zero-shot articleType accuracy and per-type recall for one model over one gallery."""
    frame = frame.reset_index(drop=True)
    encoder = ClipEncoder(loaded, batch_size=64)
    emb = embed(encoder, frame)
    out: dict[str, Any] = {"items": len(frame)}
    title_emb = encoder.encode_texts(distinct_titles(emb, frame["title"].tolist()))  # once, for two measures
    out["title_t2i"] = title_retrieval(encoder, emb, frame["title"].tolist(), (1, 5, 10), title_emb)["t2i"]
    queries = attribute_queries(frame, seed=seed, per_template=per_template)
    rel = relevance(frame, queries)
    text_vectors = encoder.encode_texts([q.text for q in queries])
    ranked = clip_rankings(text_vectors, emb.image)
    out["attribute"] = _attribute_summary(queries, precision_from_rankings(ranked, rel))
    pairs = lookalike_pairs(frame, min_items=min_pair_items)

    def rank_clip(texts: list[str]) -> list[np.ndarray]:
        return clip_rankings(encoder.encode_texts(texts), emb.image)

    out["confusion"] = confusion_rates(rank_clip, frame, pairs)
    names, predicted = category_predictions(encoder, emb, frame)
    truth = frame["articleType"].astype(str).to_numpy()
    out["category_accuracy"] = float((predicted == truth).mean())
    out["category_confusion"] = _confusion_counts(truth, predicted)
    out["recall_per_type"] = recall_per_type(title_emb, emb, frame)
    out["queries"] = [q.text for q in queries]
    if hybrid:
        ranker = HybridRanker(frame.drop(columns=["image"], errors="ignore"))

        def rank_hybrid(texts: list[str], vectors: np.ndarray | None = None) -> list[np.ndarray]:
            vectors = encoder.encode_texts(texts) if vectors is None else vectors
            vectors = blend_catalogue_wording(vectors, texts, ranker.vocabulary, encoder.encode_texts)  # as served
            return [ranker.rank(t, emb.image @ v)[0] for t, v in zip(texts, vectors, strict=True)]

        hyb = rank_hybrid([q.text for q in queries], text_vectors)
        out["hybrid"] = {"attribute": _attribute_summary(queries, precision_from_rankings(hyb, rel)),
                         "confusion": confusion_rates(rank_hybrid, frame, pairs),
                         "title_t2i_R@10": _hybrid_title_recall(ranker, title_emb, emb, frame)}
    return out


def _hybrid_title_recall(ranker: HybridRanker, title_emb: np.ndarray, emb: Embedded, frame: pd.DataFrame) -> float:
    """Title queries under hybrid search: reported only to show they are trivially matched by text."""
    keys = np.array(emb.title_keys)
    first = np.unique(keys, return_index=True)[1]  # the distinct titles, in `title_emb` order
    hits = []
    for vector, row in zip(title_emb, first, strict=True):
        ranked, _ = ranker.rank(str(frame["title"].iat[row]), emb.image @ vector)
        hits.append(bool((keys[ranked[:K]] == normalise_title(str(frame["title"].iat[row]))).any()))
    return float(np.mean(hits))


def _attribute_summary(queries: Sequence[AttributeQuery], precision: np.ndarray) -> dict[str, Any]:
    by_template = {}
    for _, template in TEMPLATES:
        mask = np.array([q.template == template for q in queries])
        if mask.any():
            by_template[template] = float(precision[mask].mean())
    return {"P@10": float(precision.mean()), "queries": len(queries), "by_template": by_template}


def _confusion_counts(truth: np.ndarray, predicted: np.ndarray) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for t, p in zip(truth, predicted, strict=True):
        table.setdefault(str(t), {}).setdefault(str(p), 0)
        table[str(t)][str(p)] += 1
    return table


def mean_confusion(rows: Sequence[dict[str, Any]], column: str | None = None) -> float:
    chosen = [r["rate"] for r in rows if column is None or r["column"] == column]
    return float(np.mean(chosen)) if chosen else float("nan")


# --- WiSE-FT sweep -------------------------------------------------------------------------------


def alpha_sweep(base: LoadedModel, fine_tuned: LoadedModel, frame: pd.DataFrame,
                alphas: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)) -> list[dict[str, float]]:
    """Per alpha: in-domain title->image R@10 and the zero-shot articleType accuracy the base had."""
    frame = frame.reset_index(drop=True)
    truth = frame["articleType"].astype(str).to_numpy()
    rows = []
    for alpha in alphas:
        encoder = ClipEncoder(interpolate(base, fine_tuned, alpha), batch_size=64)
        emb = embed(encoder, frame)
        t2i = title_retrieval(encoder, emb, frame["title"].tolist(), (1, 10))["t2i"]
        _, predicted = category_predictions(encoder, emb, frame)
        rows.append({"alpha": float(alpha), "title_R@10": t2i["R@10"], "title_R@1": t2i["R@1"],
                     "category_accuracy": float((predicted == truth).mean())})
    return rows


def plot_alpha_sweep(rows: Sequence[dict[str, float]], path: Path | None = None) -> bytes:
    """In-domain retrieval against category accuracy, one labelled point per alpha; PNG bytes."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    x = [r["category_accuracy"] for r in rows]
    y = [r["title_R@10"] for r in rows]
    ax.plot(x, y, "o-")
    for r, xi, yi in zip(rows, x, y, strict=True):
        ax.annotate(f"α={r['alpha']:g}", (xi, yi), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel("zero-shot articleType accuracy (what the base knew)")
    ax.set_ylabel("title→image R@10 (in-domain)")
    ax.set_title("WiSE-FT: pick a point")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    if path is not None:

        atomic_write_bytes(Path(path), buffer.getvalue())
    return buffer.getvalue()


def sweep_checkpoints(model: str, base: str | None, catalog_dir: Path, split: str, alphas: Sequence[float],
                      out_dir: Path, *, max_items: int | None = None) -> list[dict[str, float]]:
    """`stylesearch evaluate --sweep`: the WiSE-FT sweep of a checkpoint against its base, as JSON and a plot."""
    import json

    catalog = load_processed(Path(catalog_dir))
    frame = catalog.frame if split == "all" else catalog.split(split)
    if max_items and len(frame) > max_items:
        frame = frame.sample(max_items, random_state=0).sort_index()
    base, base_model = load_base(model, base)
    rows = alpha_sweep(base_model, load_model(model), frame, alphas)
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "alpha_sweep.json", json.dumps({"base": base, "model": model, "split": split,
                                                                "items": len(frame), "rows": rows}, indent=1))
    plot_alpha_sweep(rows, out_dir / "alpha_sweep.png")
    return rows
