"""Turning HTTP requests into library calls: filters, product lookups, photos, and the bounded thread pools."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio
from fastapi import HTTPException, Request

from stylesearch.errors import CatalogError, QueryError
from stylesearch.search import filters as filters_grammar
from stylesearch.search.filters import MAX_FILTER_VALUES
from stylesearch.search.searcher import Searcher

T = TypeVar("T")

MAX_ENUM = 500  # filter values listed in the OpenAPI schema; a column with more is described, not listed
IMAGE_TYPES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"))
SEARCH_PARAMS = frozenset({"q", "k", "offset", "mode", "correct", "edit", "sort"})


def filter_parameter(column: str, counts: Mapping[str, int]) -> dict[str, Any]:
    """The OpenAPI description of one filter column, listing its values so /docs offers them."""
    item: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 200}
    if column == "year":
        item["pattern"] = r"^\s*(\d{4}\s*((-|\.\.|to)\s*(\d{4})?)?|(-|\.\.|to)\s*\d{4})\s*$"
        about = "a year, or a range: 2011-2013, 2011-, -2013"
    else:
        if 0 < len(counts) <= MAX_ENUM:
            item["enum"] = sorted(counts)
        about = "any of these values (case does not matter)"
    return {"name": column, "in": "query", "required": False, "style": "form", "explode": True,
            "schema": {"type": "array", "items": item, "maxItems": MAX_FILTER_VALUES},
            "description": f"keep only products whose {column} is {about}; repeat the parameter for more"}


def parse_filters(items: Sequence[tuple[str, str]], columns: Sequence[str],
                  reserved: frozenset[str] = SEARCH_PARAMS) -> dict[str, Any]:
    """Query parameters to the Searcher's filters, by the one grammar (`search.filters`)."""
    return filters_grammar.group(items, columns, reserved)


def lookup(searcher: Searcher, product_id: str) -> Any:
    """The product with `product_id`, or a 404."""
    # An id is only ever a key into the index (never a path): any id prepare accepted is served, and a
    # request for anything else is simply not found.
    try:
        return searcher.product(product_id)
    except (KeyError, QueryError, IndexError):
        raise HTTPException(404, f"no product with id {short(product_id)}") from None


def image_of(searcher: Searcher, product_id: str) -> bytes:
    """The catalogue photo of `product_id`, or a 404."""
    lookup(searcher, product_id)
    try:
        data = searcher.image_bytes(product_id)
    except (KeyError, QueryError, IndexError, CatalogError):
        data = None
    if not data:
        raise HTTPException(404, f"product {product_id} has no image")
    return bytes(data)


def image_type(data: bytes) -> str:
    """The media type of image bytes, from their magic number."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in IMAGE_TYPES if data.startswith(magic)), "application/octet-stream")


def given_filters(request: Request, columns: Sequence[str]) -> dict[str, list[str]]:
    """The filters the request gave, as given (for the answer's `filters`)."""
    out: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if key in columns:
            out.setdefault(key, []).append(value.strip())
    return out


def ms_since(start: float) -> float:
    """Milliseconds since `start` (a `time.perf_counter()` reading), to 0.01 ms."""
    return round((time.perf_counter() - start) * 1000, 2)


def short(text: str, limit: int = 60) -> str:
    """`text` quoted for a message, cut at `limit` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


class Pool:
    """A bounded threadpool for the CPU work (encoding, decoding, faiss), apart from anyio's default one."""

    def __init__(self, size: int):
        self.size = size
        self._limiter: anyio.CapacityLimiter | None = None  # needs a running event loop to create

    async def run(self, func: Callable[[], T]) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.size)
        return await anyio.to_thread.run_sync(func, limiter=self._limiter)
