"""Temperature scaling and calibration error, against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from stylesearch.curate.calibrate import (
    ConfidenceMap,
    expected_calibration_error,
    fit_confidence_map,
    fit_temperature,
    nll,
    reliability,
    softmax,
)


def test_softmax_rows_sum_to_one_and_temperature_sharpens():
    logits = np.array([[0.3, 0.1, 0.2]])
    soft, sharp = softmax(logits, 1.0), softmax(logits, 0.01)
    assert np.allclose(soft.sum(1), 1) and np.allclose(sharp.sum(1), 1)
    assert sharp[0, 0] > 0.99 > soft[0, 0]
    assert softmax(logits, 1.0)[0].argmax() == softmax(logits, 0.05)[0].argmax()  # never changes the ranking


def test_nll_matches_the_formula():
    logits, labels = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([0, 0])
    expected = -np.mean([np.log(np.e / (np.e + 1)), np.log(1 / (1 + np.e ** 2))])
    assert nll(logits, labels, 1.0) == pytest.approx(expected)


def test_fit_temperature_recovers_the_temperature_labels_were_drawn_at():
    rng = np.random.default_rng(0)
    logits = rng.uniform(0.1, 0.4, size=(4000, 6))  # cosine-like logits
    probs = softmax(logits, 0.05)
    labels = np.array([rng.choice(6, p=p) for p in probs])
    assert fit_temperature(logits, labels) == pytest.approx(0.05, rel=0.15)


def test_ece_of_a_hand_computed_case():
    # Bin [0.8, 0.9): confidences 0.8, 0.8, accuracy 1/2 -> gap 0.3; bin [0.2, 0.3): 0.25, correct -> gap 0.75.
    confidence, correct = np.array([0.8, 0.8, 0.25]), np.array([True, False, True])
    assert expected_calibration_error(confidence, correct, bins=10) == pytest.approx((2 * 0.3 + 0.75) / 3)


def test_reliability_puts_a_confidence_of_one_in_the_last_bin():
    curve = reliability(np.array([1.0, 0.05]), np.array([True, False]), bins=10)
    assert curve.counts[-1] == 1 and curve.counts[0] == 1 and sum(curve.counts) == 2
    assert curve.ece == pytest.approx((0.0 + 0.05) / 2)


def test_calibrated_probabilities_have_a_lower_ece_than_clip_scale():
    rng = np.random.default_rng(1)
    logits = rng.uniform(0.1, 0.4, size=(3000, 5))
    labels = np.array([rng.choice(5, p=p) for p in softmax(logits, 0.08)])

    def ece(t: float) -> float:
        probs = softmax(logits, t)
        return expected_calibration_error(probs.max(1), probs.argmax(1) == labels)

    assert ece(fit_temperature(logits, labels)) < 0.03 < ece(0.01)


def test_confidence_map_fixes_a_curve_one_temperature_cannot_and_holds_on_new_rows():
    rng = np.random.default_rng(0)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:  # right with probability confidence squared
        confidence = rng.uniform(0.2, 1.0, n)
        return confidence, rng.uniform(size=n) < confidence ** 2

    fit_rows, new_rows = draw(3000), draw(3000)
    mapped = fit_confidence_map(*fit_rows)
    assert expected_calibration_error(*new_rows) > 0.15
    assert expected_calibration_error(mapped(new_rows[0]), new_rows[1]) < 0.05
    assert np.all(np.diff(mapped.y) > 0) and np.all(np.diff(mapped.x) > 0)  # monotone: ranking kept


def test_confidence_map_pools_small_blocks_and_needs_enough_rows():
    few = fit_confidence_map(np.array([0.1, 0.9]), np.array([False, True]))
    assert few == ConfidenceMap() and few(np.array([0.3]))[0] == pytest.approx(0.3)  # identity
    confidence = np.linspace(0, 1, 100)
    mapped = fit_confidence_map(confidence, confidence > 0.98, min_block=20)  # two right answers at the top
    assert max(mapped.y) < 0.2  # 2 lucky rows in a block of 20 cannot promise certainty
