"""State built once per loaded index (suggestions, the chance level of scores), shared by every view of it."""

from __future__ import annotations

import threading
import weakref
from typing import Any

from stylesearch.search.lazy import Lazy

_SLOTS: dict[int, dict[str, Lazy[Any]]] = {}  # id(index) -> slots; an index compares by value, so no dict key
_SLOTS_LOCK = threading.Lock()


def per_index(index: object, name: str) -> Lazy[Any]:
    """The build-once slot `name` of one loaded index, shared by every Searcher over it.

    Keyed by the index object itself, so a hot reload (a new index) starts afresh, and the state
    goes when the index does.
    """
    with _SLOTS_LOCK:
        slots = _SLOTS.get(id(index))
        if slots is None:
            slots = _SLOTS[id(index)] = {}
            weakref.finalize(index, _forget, id(index))
        return slots.setdefault(name, Lazy())


def _forget(key: int) -> None:
    with _SLOTS_LOCK:
        _SLOTS.pop(key, None)
