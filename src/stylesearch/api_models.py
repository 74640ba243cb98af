"""The typed shapes of the HTTP API, so `/openapi.json` (and `/docs`) describe every response."""

from __future__ import annotations

from pydantic import BaseModel, Field

AttributeValue = str | int | None


class ErrorOut(BaseModel):
    """Every 4xx and 5xx answer: one sentence that says what was wrong."""

    detail: str = Field(examples=["unknown filter 'colour'; filter on one of: gender, baseColour, ..."])


class ProductOut(BaseModel):
    id: str
    title: str
    attributes: dict[str, AttributeValue]
    image_url: str = Field(description="GET this for the product photo")


class HitOut(ProductOut):
    rank: int = Field(description="1-based position in the full ranking (offset included)")
    score: float = Field(description="CLIP score: 100 x cosine similarity")


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


class FacetsOut(BaseModel):
    query: str | None
    facets: dict[str, dict[str, int]] = Field(description="column -> value -> product count")
    total: int
    took_ms: float


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
