"""Build-once state shared by every view of one index: built by the first thread that asks, never twice."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """A value built on first use, however many threads ask at once.

    `get(build, wait=False)` answers None while another thread is still building, so a server
    request never blocks on a build that takes seconds (hybrid search's BM25 index, say).
    """

    def __init__(self) -> None:
        self._value: T | None = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._value is not None

    def get(self, build: Callable[[], T], *, wait: bool = True) -> T | None:
        value = self._value
        if value is not None:
            return value
        if not self._lock.acquire(blocking=wait):
            return None
        try:
            if self._value is None:
                self._value = build()
            return self._value
        finally:
            self._lock.release()
