"""The typed shapes of the HTTP API, so `/openapi.json` (and `/docs`) describe every response.

Each model's `of(...)` builds it from what the library returns (`Product`, `Hit`, a manifest).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import numpy as np
from pydantic import BaseModel, Field

AttributeValue = str | int | float | None  # float: a user column such as price


class ErrorOut(BaseModel):
    """Every 4xx and 5xx answer: one sentence that says what was wrong."""

    detail: str = Field(examples=["unknown filter 'colour'; filter on one of: gender, baseColour, ..."])


class ProductOut(BaseModel):
    id: str
    title: str
    attributes: dict[str, AttributeValue]
    image_url: str = Field(description="GET this for the product photo")

    @classmethod
    def of(cls, product: Any, **extra: Any) -> Any:
        """From a `Product`, a `Hit` or a mapping with id, title and attributes."""
        pid = str(_field(product, "id"))
        attributes = dict(_field(product, "attributes") or {})
        return cls(id=pid, title=str(_field(product, "title", "")), image_url=f"/images/{quote(pid, safe='')}",
                   attributes={str(k): _plain(v) for k, v in attributes.items()}, **extra)


class HitOut(ProductOut):
    rank: int = Field(description="1-based position in the full ranking (offset included)")
    score: float = Field(description="CLIP score: 100 x cosine similarity")

    @classmethod
    def of(cls, hit: Any, **extra: Any) -> HitOut:
        score = float(_field(hit, "score", 0.0))
        return super().of(hit, rank=int(_field(hit, "rank", 0)),
                          score=round(score, 3) if math.isfinite(score) else 0.0, **extra)


class SearchOut(BaseModel):
    query: str | None = Field(description="the text searched for; null for image and similar searches")
    hits: list[HitOut]
    k: int
    offset: int
    total: int = Field(description="products that pass the filters, i.e. how far paging can go")
    has_more: bool
    took_ms: float = Field(description="server time for the search, encoding included")
    notice: str | None = Field(None, description="e.g. 'query truncated to 77 tokens'")
    filters: dict[str, list[str]] = Field(description="the filters applied, as given")
    corrected: str | None = Field(None, description="what was searched for when the query's spelling was corrected")
    match: bool | None = Field(None, description="text searches: whether the query matched better than chance "
                                                 "(catalogue words, or a CLIP score above random text's); "
                                                 "null for other searches and later pages")
    suggestions: list[str] = Field(default_factory=list, description="what to search for instead when match is false")
    sort: str = Field("relevance", description="the order applied: relevance, a numeric column, or -column")
    upload_id: str | None = Field(None, description="photo searches: GET /api/search/image/{upload_id} repeats "
                                                    "this search without the upload, for an hour after its last use")


class SuggestionOut(BaseModel):
    text: str
    kind: str = Field(description="type, colour, brand, colour and type, category, usage, gender, season or product")
    count: int = Field(description="products with this value (or, for a product, this title)")


class SuggestOut(BaseModel):
    query: str
    suggestions: list[SuggestionOut]


class FacetsOut(BaseModel):
    query: str | None
    facets: dict[str, dict[str, int]] = Field(description="column -> value -> product count")
    total: int
    took_ms: float
    sorts: list[str] = Field(default_factory=list, description="what sort= accepts: relevance, and each numeric "
                                                               "column ascending ('price') and descending ('-price')")


class IndexInfo(BaseModel):
    count: int | None = None
    dim: int | None = None
    kind: str | None = None
    created_at: str | None = None


class HealthOut(BaseModel):
    status: str = "ok"
    model: str | None = Field(None, description="the model the index was built with")
    fingerprint: str | None = Field(None, description="hash of the model weights")
    index: IndexInfo
    filter_columns: list[str]

    @classmethod
    def of(cls, manifest: Mapping[str, Any], filter_columns: list[str]) -> HealthOut:
        """From an index manifest (`model` and `index` are sections; flat strings are read too)."""
        model = manifest.get("model")
        model = model if isinstance(model, Mapping) else {"name": model}
        index = manifest.get("index")
        index = index if isinstance(index, Mapping) else {"kind": index}
        return cls(model=_text(model.get("name")), fingerprint=_text(model.get("fingerprint")),
                   index=IndexInfo(count=manifest.get("count"), dim=manifest.get("dim"), kind=_text(index.get("kind")),
                                   created_at=_text(manifest.get("created_at"))),
                   filter_columns=filter_columns)


def _field(obj: Any, name: str, default: Any = None) -> Any:
    return obj.get(name, default) if isinstance(obj, Mapping) else getattr(obj, name, default)


def _plain(value: Any) -> AttributeValue:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None  # JSON has no NaN or infinity
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int | float | str) else str(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
