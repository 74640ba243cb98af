import numpy as np

from stylesearch.evaluate.metrics import clip_score, in_batch_accuracy, precision_at_k, recall_at_k


def oracle_recall(sim, relevant, k):
    hits, rr = 0, 0.0
    for q in range(sim.shape[0]):
        ranked = sorted(range(sim.shape[1]), key=lambda g: (-sim[q, g], g))
        ranks = [r for r, g in enumerate(ranked) if relevant[q, g]]
        hits += bool(ranks) and ranks[0] < k
        rr += 1 / (ranks[0] + 1) if ranks else 0
    return hits / sim.shape[0], rr / sim.shape[0]


def test_recall_and_mrr_match_a_brute_force_oracle():
    rng = np.random.default_rng(0)
    sim = rng.normal(size=(40, 60))
    relevant = rng.random((40, 60)) < 0.05
    got = recall_at_k(sim, relevant, (1, 5, 10))
    for k in (1, 5, 10):
        assert np.isclose(got[f"R@{k}"], oracle_recall(sim, relevant, k)[0])
    assert np.isclose(got["MRR"], oracle_recall(sim, relevant, 1)[1])


def test_precision_counts_relevant_items_in_top_k():
    sim = np.array([[0.9, 0.8, 0.1, 0.7]])
    relevant = np.array([[True, False, True, True]])
    assert precision_at_k(sim, relevant, (1, 2, 3)) == {"P@1": 1.0, "P@2": 0.5, "P@3": 2 / 3}


def test_in_batch_accuracy_and_clip_score():
    img = np.eye(4, dtype=np.float32)
    txt = np.eye(4, dtype=np.float32)[[0, 1, 3, 2]]  # items 2 and 3 swapped
    acc = in_batch_accuracy(img, txt, np.arange(4), batch=2)
    assert acc == {"acc_i2t": 0.5, "acc_t2i": 0.5}
    assert np.isclose(clip_score(img, txt), 50.0)
    assert in_batch_accuracy(img, txt, np.array([0, 1, 2, 2]), batch=4)["acc_i2t"] == 1.0  # same group counts
