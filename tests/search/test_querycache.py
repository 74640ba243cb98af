"""The query cache returns what the encoder returned, never grows past its bound, and is thread-safe."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fakes import FakeEncoder
from stylesearch.model.encoder import Encoder
from stylesearch.search.querycache import CachedEncoder


class CountingEncoder(FakeEncoder):
    def __init__(self):
        self.calls: list[list[str]] = []

    def encode_texts(self, texts):
        self.calls.append(list(texts))
        return super().encode_texts(texts)


def test_a_hit_returns_the_same_vector_without_calling_the_encoder():
    inner = CountingEncoder()
    cache = CachedEncoder(inner, maxsize=4)
    first = cache.encode_texts(["navy blue shirt"])
    again = cache.encode_texts(["navy blue shirt"])
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, FakeEncoder().encode_texts(["navy blue shirt"]))
    assert inner.calls == [["navy blue shirt"]]
    assert (cache.hits, cache.misses) == (1, 1)


def test_callers_cannot_corrupt_the_cached_row():
    cache = CachedEncoder(FakeEncoder())
    result = cache.encode_texts(["red dress"])
    result[0, :] = 0  # results are fresh arrays: writing into one is allowed and changes nothing cached
    np.testing.assert_array_equal(cache.encode_texts(["red dress"]), FakeEncoder().encode_texts(["red dress"]))
    with pytest.raises(ValueError):
        cache.cached("red dress")[0] = 5.0  # the stored row itself is read-only


def test_the_cache_is_bounded_and_evicts_the_least_recently_used():
    inner = CountingEncoder()
    cache = CachedEncoder(inner, maxsize=2)
    cache.encode_texts(["red"])
    cache.encode_texts(["blue"])
    cache.encode_texts(["red"])  # red is now the most recent
    cache.encode_texts(["green"])  # evicts blue
    assert len(cache) == 2
    assert cache.cached("blue") is None and cache.cached("red") is not None
    cache.encode_texts(["blue"])
    assert inner.calls[-1] == ["blue"]


def test_a_mixed_batch_encodes_only_the_misses_once_and_keeps_order():
    inner = CountingEncoder()
    cache = CachedEncoder(inner, maxsize=8)
    cache.encode_texts(["red"])
    rows = cache.encode_texts(["blue", "red", "blue", "green"])
    assert inner.calls[-1] == ["blue", "green"]
    np.testing.assert_array_equal(rows, FakeEncoder().encode_texts(["blue", "red", "blue", "green"]))
    assert cache.encode_texts([]).shape == (0, FakeEncoder.dim)


def test_the_wrapper_is_an_encoder_with_the_same_fingerprint():
    cache = CachedEncoder(FakeEncoder())
    assert isinstance(cache, Encoder)
    assert (cache.dim, cache.fingerprint) == (FakeEncoder.dim, FakeEncoder.fingerprint)
    with pytest.raises(ValueError):
        CachedEncoder(FakeEncoder(), maxsize=0)


def test_concurrent_queries_stay_correct_and_bounded():
    cache = CachedEncoder(FakeEncoder(), maxsize=5)
    words = ["Red", "Blue", "Green", "Black", "White", "Pink", "Grey", "Brown"]
    expected = {w: FakeEncoder().encode_texts([w])[0] for w in words}
    errors: list[str] = []

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(300):
            word = words[rng.integers(len(words))]
            if not np.array_equal(cache.encode_texts([word])[0], expected[word]):
                errors.append(word)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(cache) <= 5
