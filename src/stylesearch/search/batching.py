"""Micro-batching of concurrent queries: requests that queue while the model is busy share one forward pass."""

from __future__ import annotations

import copy
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_BATCH = 16  # queries per text forward pass; see docs/serve.md for the measurement


@dataclass
class _Job:
    kind: str  # "texts" or "images": only jobs of one kind share a forward pass
    items: list[Any]
    result: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False


class BatchingEncoder:
    """Wrap an `Encoder` so queries arriving while the model is busy are encoded in one call.

    No timer: the first caller encodes alone at once; whoever queues during that pass is taken
    together (oldest first, same kind, up to `max_batch`) by the next caller to get the model. So a
    lone query waits for nothing, and under load the batch grows by itself.
    """

    def __init__(self, inner: Any, max_batch: int = MAX_BATCH):
        self.inner = inner
        self.dim = inner.dim
        self.fingerprint = inner.fingerprint
        self.max_batch = max(1, max_batch)
        self._queue_lock = threading.Lock()
        self._model_lock = threading.Lock()  # one forward pass at a time: torch already uses every core
        self._pending: list[_Job] = []
        # Every forward pass runs on this one long-lived thread, not on whichever request thread holds the
        # lock: torch's OpenMP team and glibc's malloc arena are then set up once, not again for each new
        # worker thread of the server's pool (which ends idle threads), where they would pile up.
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stylesearch-model")
        self._count_lock = threading.Lock()
        self._counter: Any = None
        self.batch_sizes: dict[str, Counter[int]] = {"texts": Counter(), "images": Counter()}  # for the benchmark

    def __getattr__(self, name: str) -> Any:  # max_tokens, name, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def token_count(self, text: str) -> int:
        # Tokenizers set truncation state on the shared Rust object ("Already borrowed" if two
        # threads do it at once), so counting uses its own copy, one thread at a time.
        with self._count_lock:
            if self._counter is None:
                self._counter = copy.deepcopy(self.inner.tokenizer) if hasattr(self.inner, "tokenizer") else None
            if self._counter is None:
                return int(self.inner.token_count(text))
            return len(self._counter(text, truncation=False)["input_ids"])

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode("texts", texts)

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        return self._encode("images", images)

    def _encode(self, kind: str, items: Sequence[Any]) -> np.ndarray:
        job = _Job(kind, list(items))
        with self._queue_lock:
            self._pending.append(job)
        while True:
            with self._model_lock:
                if job.done:
                    break
                # Not done, so still queued: only a holder of the model lock takes jobs, and finishes them.
                self._run(self._take())
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _take(self) -> list[_Job]:
        with self._queue_lock:
            kind = self._pending[0].kind
            batch: list[_Job] = []
            rest: list[_Job] = []
            taken = 0
            for job in self._pending:
                if job.kind == kind and (not batch or taken + len(job.items) <= self.max_batch):
                    batch.append(job)
                    taken += len(job.items)
                else:
                    rest.append(job)
            self._pending = rest
            return batch

    def _run(self, batch: list[_Job]) -> None:
        items = [item for job in batch for item in job.items]
        encode = self.inner.encode_texts if batch[0].kind == "texts" else self.inner.encode_images
        try:
            vectors = self._model_thread.submit(encode, items).result() if items else np.zeros((0, self.dim),
                                                                                                  np.float32)
        except BaseException as err:  # every caller in the batch sees the failure
            for job in batch:
                job.error, job.done = err, True
            return
        self.batch_sizes[batch[0].kind][len(items)] += 1
        start = 0
        for job in batch:
            job.result, job.done = vectors[start : start + len(job.items)], True
            start += len(job.items)
