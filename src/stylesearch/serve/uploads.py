"""Photo searches that live in a URL: an uploaded photo's embedding, kept for a while under an opaque id.

A shopper's photo search can then be reloaded, shared within the hour, stepped through with Back and
Forward, and paged with "Load more" without sending or encoding the photo again. Only the vector
and a small thumbnail (for the page's chip) are kept, in memory: never the upload itself, never on disk.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

UPLOAD_TTL_S = 3600.0  # long enough to share a search or come back to it, short enough to forget photos
MAX_UPLOADS = 2000  # a few MB of vectors and thumbnails; the oldest go first
THUMBNAIL_PX = 160
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Upload:
    vector: np.ndarray  # L2-normalised, made by the model named by `fingerprint`
    fingerprint: str
    thumbnail: bytes  # JPEG
    name: str


class UploadStore:
    """Upload id -> `Upload`, for `ttl_s` after the last use, at most `capacity` of them."""

    def __init__(self, ttl_s: float = UPLOAD_TTL_S, capacity: int = MAX_UPLOADS,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl_s, self.capacity, self._clock = ttl_s, capacity, clock
        # Keyed: the id says nothing about the photo and cannot be guessed from one, yet the same
        # photo uploaded twice gets the same id (and one entry).
        self._key = secrets.token_bytes(32)
        self._items: OrderedDict[str, tuple[float, Upload]] = OrderedDict()
        self._lock = threading.Lock()

    def id_for(self, data: bytes) -> str:
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()[:32]

    def put(self, data: bytes, image: Image.Image, vector: np.ndarray, fingerprint: str, name: str = "") -> str:
        """Keep the photo's vector and a thumbnail; the id to search with again."""
        upload_id = self.id_for(data)
        small = image.convert("RGB")
        small.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=85)
        entry = Upload(np.asarray(vector, np.float32).reshape(-1).copy(), fingerprint, buf.getvalue(), name[:200])
        with self._lock:
            self._items[upload_id] = (self._clock(), entry)
            self._items.move_to_end(upload_id)
            self._expire()
        return upload_id

    def get(self, upload_id: str) -> Upload | None:
        """The upload, or None when the id is unknown or has expired."""
        if not UPLOAD_ID.match(upload_id):
            return None
        with self._lock:
            self._expire()
            found = self._items.get(upload_id)
            if found is None:
                return None
            self._items[upload_id] = (self._clock(), found[1])  # used: it lives another ttl
            self._items.move_to_end(upload_id)
            return found[1]

    def __len__(self) -> int:
        return len(self._items)

    def _expire(self) -> None:
        now = self._clock()
        while self._items and (len(self._items) > self.capacity
                               or now - next(iter(self._items.values()))[0] > self.ttl_s):
            self._items.popitem(last=False)
