"""Build-once state shared by every view of one index: built by the first thread that asks, never twice."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Lazy(Generic[T]):
    """A value built on first use, however many threads ask at once.

    `get(build)` builds it (or waits for the thread building it) and returns it. `get(build, wait=False)`
    never blocks on a build: it answers None until the value is ready, and when nobody is building it
    yet it starts the build on a thread of its own, so a server request never waits seconds for one
    (hybrid search's BM25 index, say) and the next request finds it built.
    """

    def __init__(self) -> None:
        self._value: T | None = None
        self._lock = threading.Lock()  # held for the whole of a build, by whichever thread builds

    @property
    def ready(self) -> bool:
        return self._value is not None

    def get(self, build: Callable[[], T], *, wait: bool = True) -> T | None:
        """The value; with `wait=False`, None (and a build started in the background) until it is ready."""
        value = self._value
        if value is not None:
            return value
        if not self._lock.acquire(blocking=wait):
            return None  # another thread is building it
        if self._value is not None:  # built while we waited for the lock
            self._lock.release()
            return self._value
        if not wait:
            # The lock passes to the builder thread, which releases it when done: meanwhile other
            # `wait=False` callers get None and `wait=True` callers wait for this one build.
            try:
                threading.Thread(target=self._build_in_background, args=(build,), name="stylesearch-lazy-build",
                                 daemon=True).start()
            except BaseException:
                self._lock.release()
                raise
            return None
        try:
            self._value = build()
            return self._value
        finally:
            self._lock.release()

    def _build_in_background(self, build: Callable[[], T]) -> None:
        try:
            self._value = build()
        except Exception:  # the caller has gone; the next get() tries again
            log.exception("building %s in the background failed", getattr(build, "__qualname__", "a value"))
        finally:
            self._lock.release()
