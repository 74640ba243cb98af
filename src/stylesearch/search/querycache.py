"""A small LRU cache of query embeddings in front of any `Encoder`.

Shoppers repeat queries ("black dress", "white sneakers"): a hit skips the tokenizer and the text
tower (milliseconds on a CPU) for a dictionary lookup. Only texts are cached; images are
uploaded once and rarely repeat byte for byte.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from stylesearch.model.encoder import Encoder, FloatArray


class CachedEncoder:
    """Wrap `encoder` so repeated texts come from a bounded, thread-safe LRU cache.

    Cached rows are read-only arrays: a caller that writes into a result gets an error instead of
    silently corrupting every later hit. Results of `encode_texts` are fresh arrays built from them.
    """

    def __init__(self, encoder: Encoder, maxsize: int = 1024):
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.encoder = encoder
        self.maxsize = maxsize
        self.dim = encoder.dim
        self.fingerprint = encoder.fingerprint
        self.hits = 0
        self.misses = 0
        self._rows: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def __getattr__(self, name: str) -> Any:
        # Everything else (name, tokenizer, image_processor, encode_pixels, ...) is the wrapped encoder's.
        if name == "encoder":
            raise AttributeError(name)
        return getattr(self.encoder, name)

    def encode_texts(self, texts: Sequence[str]) -> FloatArray:
        texts = list(texts)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                row = self._rows.get(text)
                if row is not None:
                    self._rows.move_to_end(text)
                    found[text] = row
            self.hits += sum(1 for t in texts if t in found)
            self.misses += sum(1 for t in texts if t not in found)
        missing = list(dict.fromkeys(t for t in texts if t not in found))  # each distinct miss once
        if missing:
            # Encode outside the lock: concurrent misses run in parallel; a duplicate miss is harmless.
            fresh = np.asarray(self.encoder.encode_texts(missing), dtype=np.float32)
            with self._lock:
                for text, row in zip(missing, fresh, strict=True):
                    row = row.copy()
                    row.setflags(write=False)
                    self._rows[text] = row
                    self._rows.move_to_end(text)
                    found[text] = row
                while len(self._rows) > self.maxsize:
                    self._rows.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([found[t] for t in texts])

    def encode_images(self, images: Sequence[Image.Image]) -> FloatArray:
        return self.encoder.encode_images(images)

    def cached(self, text: str) -> np.ndarray | None:
        """The cached read-only row for `text`, or None (does not count as a hit or refresh it)."""
        with self._lock:
            return self._rows.get(text)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
