"""The figures of docs/catalogue.md as functions: tagging accuracy, audit by injection, composed-query recall."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from stylesearch.config import ComposeConfig, TagConfig
from stylesearch.curate.calibrate import reliability
from stylesearch.curate.compose import combine
from stylesearch.curate.tag import TagResult
from stylesearch.curate.vocabulary import cell_strings
from stylesearch.data.prepare import normalise_title
from stylesearch.evaluate.metrics import recall_at_k


def macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Unweighted mean F1 over every label that occurs in `truth` or `predicted`."""
    truth, predicted = np.asarray(truth, dtype=object), np.asarray(predicted, dtype=object)
    labels = sorted(set(truth.tolist()) | set(predicted.tolist()))
    if not labels:
        return 0.0
    scores = []
    for label in labels:
        tp = float(np.sum((truth == label) & (predicted == label)))
        fp = float(np.sum((truth != label) & (predicted == label)))
        fn = float(np.sum((truth == label) & (predicted != label)))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def tag_metrics(result: TagResult, frame: pd.DataFrame, cfg: TagConfig = TagConfig(),
                split: str = "test") -> dict[str, Any]:
    """Per column on `split` (values never shown to the tagger): accuracy, macro-F1, ECE, majority baseline."""
    out: dict[str, Any] = {}
    train = frame[frame["split"].astype(str) == "train"]
    for column, model in result.models.items():
        rows = result.suggestions[(result.suggestions["column"] == column) & (result.suggestions["split"] == split)]
        known = rows["current"].isin(set(model.vocabulary.values)).to_numpy()
        truth, guess = rows["current"].to_numpy()[known], rows["value"].to_numpy()[known]
        majority = pd.Series([v for v in cell_strings(train[column]) if v is not None]).value_counts().index[0]
        correct = truth == guess
        out[column] = {
            "rows": int(known.sum()),
            "unscorable": int((~known).sum()),  # missing, or a value too rare in train to have a prompt
            "values": len(model.vocabulary.values),
            "accuracy": float(correct.mean()) if len(truth) else 0.0,
            "macro_f1": macro_f1(truth, guess),
            "majority_value": str(majority),
            "majority_accuracy": float(np.mean(truth == majority)) if len(truth) else 0.0,
            "majority_macro_f1": macro_f1(truth, [majority] * len(truth)),
            "ece": reliability(rows["confidence"].to_numpy()[known], correct, cfg.calibration_bins).ece,
            "temperature": model.temperature,
        }
    return out


# --- audit by injection ---------------------------------------------------------------------------


def inject_flips(frame: pd.DataFrame, columns: Sequence[str], share: float, seed: int = 0,
                 split: str = "test") -> tuple[pd.DataFrame, pd.DataFrame]:
    """`frame` with `share` of `split`'s known values of each column changed to another value of that column.

    The new value is drawn by the column's own frequencies (a plausible wrong label, not a rare one).
    Returns the altered frame and the flips (id, column, true, flipped).
    """
    rng = np.random.default_rng(seed)
    altered = frame.copy()
    flips = []
    in_split = np.flatnonzero(frame["split"].astype(str).to_numpy() == split)
    for column in columns:
        cells = cell_strings(frame[column])
        known = np.array([r for r in in_split if cells[r] is not None])
        counts = pd.Series([cells[r] for r in known]).value_counts()
        chosen = rng.choice(known, int(round(share * len(known))), replace=False) if len(known) else []
        if altered[column].dtype != object:
            altered[column] = altered[column].astype(object)
        for row in chosen:
            others = counts.drop(cells[row])
            if others.empty:
                continue  # a column with one value in the split has nothing to flip to
            value = str(rng.choice(others.index.to_numpy(), p=(others / others.sum()).to_numpy()))
            altered.iat[row, altered.columns.get_loc(column)] = value
            flips.append({"id": str(frame["id"].iat[row]), "column": column, "true": cells[row], "flipped": value})
    return altered, pd.DataFrame(flips, columns=["id", "column", "true", "flipped"])


def injection_scores(findings: pd.DataFrame, flips: pd.DataFrame, k: int = 100) -> dict[str, float]:
    """Precision@k of the ranked findings at catching `flips`, and recall of the flips within the top |flips|."""
    flipped = set(zip(flips["id"], flips["column"], strict=True))
    ranked = list(zip(findings["id"], findings["column"], strict=True))
    hits = np.array([pair in flipped for pair in ranked], bool)
    n = len(flipped)
    return {"flips": n, "precision_at_k": float(hits[:k].mean()) if len(hits) else 0.0, "k": k,
            "recall_at_flips": float(hits[:n].sum() / n) if n else 0.0,  # R-precision: as many looked at as planted
            "recall_at_k": float(hits[:k].sum() / n) if n else 0.0,
            "recall_flagged": float(hits[findings["contradicts"].to_numpy()].sum() / n)
            if n and "contradicts" in findings else 0.0}


def duplicate_precision(pairs: pd.DataFrame, frame: pd.DataFrame) -> dict[str, float]:
    """Share of listed near-duplicate pairs that are byte-identical or share a normalised title."""
    if pairs.empty:
        return {"pairs": 0, "precision": 0.0}
    by_id = frame.assign(_id=frame["id"].astype(str)).set_index("_id")
    title = {pid: normalise_title(str(t)) for pid, t in by_id["title"].items()}
    sha = by_id["image_sha256"].astype(str).to_dict() if "image_sha256" in by_id else {}
    same = [title[a] == title[b] or (sha and sha[a] == sha[b]) for a, b in zip(pairs["a"], pairs["b"], strict=True)]
    return {"pairs": len(pairs), "precision": float(np.mean(same))}


# --- composed queries -----------------------------------------------------------------------------


def colour_pairs(frame: pd.DataFrame, n: int, seed: int = 0) -> list[tuple[int, int]]:
    """(A, B) row pairs of the same articleType and gender with different known baseColours."""
    rng = np.random.default_rng(seed)
    colour = np.array(cell_strings(frame["baseColour"]), dtype=object)
    key = [f"{a}|{g}" for a, g in zip(cell_strings(frame["articleType"]), cell_strings(frame["gender"]), strict=True)]
    groups = pd.Series(range(len(frame))).groupby(pd.Series(key)).apply(list)
    pairs: set[tuple[int, int]] = set()
    candidates = [rows for rows in groups if len({colour[r] for r in rows if colour[r]}) > 1]
    tries = 0
    while candidates and len(pairs) < n and tries < 50 * n:
        tries += 1
        rows = candidates[rng.integers(len(candidates))]
        a, b = (int(r) for r in rng.choice(rows, 2, replace=False))
        if colour[a] and colour[b] and colour[a] != colour[b]:
            pairs.add((a, b))
    return sorted(pairs)


def compose_recall(frame: pd.DataFrame, images: np.ndarray, queries: dict[str, np.ndarray],
                   pairs: Sequence[tuple[int, int]], ks: Sequence[int] = (10,)) -> dict[str, dict[str, float]]:
    """R@k of each query set (one vector per pair) over `images`; relevant: A's type and gender, B's colour, not A."""
    colour = np.array(cell_strings(frame["baseColour"]), dtype=object)
    kind = np.array(cell_strings(frame["articleType"]), dtype=object)
    gender = np.array(cell_strings(frame["gender"]), dtype=object)
    relevant = np.zeros((len(pairs), len(frame)), bool)
    for i, (a, b) in enumerate(pairs):
        relevant[i] = (kind == kind[a]) & (gender == gender[a]) & (colour == colour[b])
        relevant[i, a] = False
    out = {}
    for name, vectors in queries.items():
        sim = np.asarray(vectors, np.float32) @ images.T
        sim[np.arange(len(pairs)), [a for a, _ in pairs]] = -np.inf  # the query item is never a result
        out[name] = recall_at_k(sim, relevant, ks)
    return out


def fit_compose_weights(frame: pd.DataFrame, images: np.ndarray, image_q: np.ndarray, new_text: np.ndarray,
                        old_text: np.ndarray, pairs: Sequence[tuple[int, int]],
                        grid: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0)) -> tuple[ComposeConfig, float]:
    """The (w_delta, w_text) of the grid with the best R@10 on `pairs`: the combiner learned from catalogue pairs."""
    best, best_recall = ComposeConfig(), -1.0
    for w_delta in grid:
        for w_text in grid:
            cfg = ComposeConfig(w_delta=w_delta, w_text=w_text)
            recall = compose_recall(frame, images, {"q": combine(image_q, new_text, old_text, cfg)}, pairs)["q"]["R@10"]
            if recall > best_recall + 1e-9:
                best, best_recall = cfg, recall
    return best, best_recall
