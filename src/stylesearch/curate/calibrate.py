"""Temperature scaling and its yardsticks: softmax, NLL, expected calibration error, reliability bins.

Cosines between an image and text prototypes sit in a narrow band (0.1-0.4), so a softmax over them
as they are says every value is about equally likely. One temperature per column, fitted on the val
split by minimising the negative log-likelihood, turns them into probabilities that mean what they
say (Guo et al. 2017); it never changes which value ranks first.

One temperature cannot bend a reliability curve that is too flat at one end and too steep at the
other, so the top value's confidence then goes through a monotone map fitted on the same val rows
(isotonic regression, Zadrozny & Elkan 2002): a confidence of 0.8 comes to mean 80% right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# log10 of the temperatures searched: cosine logits need 1/T between ~1 and ~1000.
LOG_T_RANGE = (-3.0, 0.5)


def softmax(logits: np.ndarray, temperature: float = 1.0, offset: np.ndarray | float = 0.0) -> np.ndarray:
    """Row-wise softmax of `logits / temperature + offset` (a log prior per column), stable for large scales."""
    scaled = np.asarray(logits, np.float64) / temperature + offset
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float, offset: np.ndarray | float = 0.0) -> float:
    """Mean negative log-likelihood of `labels` (column indices) under `softmax(logits, temperature, offset)`."""
    scaled = np.asarray(logits, np.float64) / temperature + offset
    top = scaled.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(scaled - top).sum(axis=1))
    return float(np.mean(log_z - scaled[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, steps: int = 60,
                    offset: np.ndarray | float = 0.0) -> float:
    """The temperature that minimises NLL on (`logits`, `labels`): golden-section search over log10 T."""
    if len(labels) == 0:
        return 1.0
    lo, hi = LOG_T_RANGE
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, labels, 10 ** a, offset), nll(logits, labels, 10 ** b, offset)
    for _ in range(steps):  # NLL in log T is unimodal for temperature scaling
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, labels, 10 ** a, offset)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, labels, 10 ** b, offset)
    return float(10 ** ((lo + hi) / 2))


@dataclass(frozen=True)
class ConfidenceMap:
    """A monotone map of top-1 confidence to accuracy: knots from isotonic regression, linear in between."""

    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def __call__(self, confidence: np.ndarray) -> np.ndarray:
        if not self.x:
            return np.asarray(confidence, np.float64)
        return np.interp(np.asarray(confidence, np.float64), self.x, self.y)


def fit_confidence_map(confidence: np.ndarray, correct: np.ndarray, min_block: int = 20) -> ConfidenceMap:
    """Isotonic regression of `correct` on `confidence` (pool adjacent violators), as a `ConfidenceMap`.

    Blocks of fewer than `min_block` rows are pooled with a neighbour, so a handful of lucky rows at the
    top cannot promise 100%.

    >>> m = fit_confidence_map(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1]), min_block=1)
    >>> [round(float(v), 2) for v in m(np.array([0.1, 0.4]))]
    [0.0, 1.0]
    """
    order = np.argsort(confidence, kind="stable")
    xs, ys = np.asarray(confidence, np.float64)[order], np.asarray(correct, np.float64)[order]
    if len(xs) < 2 * min_block:
        return ConfidenceMap()  # too few rows to learn a shape: the temperature alone
    blocks: list[list[float]] = []  # [sum x, sum y, count]

    def pool_last_two() -> None:
        sx, sy, n = blocks.pop()
        blocks[-1] = [blocks[-1][0] + sx, blocks[-1][1] + sy, blocks[-1][2] + n]

    for x, y in zip(xs, ys, strict=True):
        blocks.append([x, y, 1.0])
        while len(blocks) > 1 and (blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]
                                   or blocks[-2][2] < min_block):
            pool_last_two()
    while len(blocks) > 1 and blocks[-1][2] < min_block:  # the last block, too, must be big enough
        pool_last_two()
    return ConfidenceMap(tuple(b[0] / b[2] for b in blocks), tuple(b[1] / b[2] for b in blocks))


@dataclass(frozen=True)
class Reliability:
    """Per confidence bin: how many predictions, their mean confidence and their accuracy."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    confidence: tuple[float, ...]  # NaN for an empty bin
    accuracy: tuple[float, ...]

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean |accuracy - confidence| over the bins."""
        total = sum(self.counts)
        if total == 0:
            return 0.0
        return float(sum(n * abs(a - c) for n, a, c in zip(self.counts, self.accuracy, self.confidence, strict=True)
                         if n) / total)

    def to_dict(self) -> dict[str, object]:
        return {"ece": self.ece, "edges": list(self.edges), "counts": list(self.counts),
                "confidence": [None if np.isnan(c) else c for c in self.confidence],
                "accuracy": [None if np.isnan(a) else a for a in self.accuracy]}


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> Reliability:
    """Equal-width confidence bins over [0, 1]; a confidence of exactly 1 falls in the last bin."""
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    counts, conf, acc = [], [], []
    for b in range(bins):
        inside = which == b
        counts.append(int(inside.sum()))
        conf.append(float(confidence[inside].mean()) if inside.any() else float("nan"))
        acc.append(float(correct[inside].mean()) if inside.any() else float("nan"))
    return Reliability(tuple(float(e) for e in edges), tuple(counts), tuple(conf), tuple(acc))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE of top-1 `confidence` against whether the top-1 prediction was `correct`."""
    return reliability(confidence, correct, bins).ece
