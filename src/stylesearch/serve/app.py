"""The HTTP API and the search page over a `Searcher`: `create_app(searcher, cfg)` returns a FastAPI app.

Bad input is the client's problem and says so: library errors become 4xx JSON `{"detail": ...}`
here and nowhere else. Nothing is ever served by path: images are looked up by product id in the
index and the page's three assets are read into memory at start-up.

Concurrency: one process per box. The model is large and torch already spreads one forward pass over
every core, so a second worker would double the memory and make both slower. Searches run in a small
bounded threadpool (`SEARCH_THREADS`) so the event loop stays free for cheap requests (images,
facets, the page) while the CPU encodes; `BatchingEncoder` merges queries that queue up meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any, TypeVar

import anyio
from fastapi import FastAPI, File, HTTPException, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from stylesearch.config import ServeConfig
from stylesearch.data.images import decode_image
from stylesearch.errors import CatalogError, QueryError, StylesearchError
from stylesearch.search import filters as filters_grammar
from stylesearch.search import modes
from stylesearch.search.batching import MAX_BATCH
from stylesearch.search.filters import MAX_FILTER_VALUES
from stylesearch.search.hybrid import hybrid_for
from stylesearch.search.modes import DEFAULT_MODE
from stylesearch.search.searcher import Searcher, serving
from stylesearch.serve.guard import RequestGuard
from stylesearch.serve.reload import IndexWatcher
from stylesearch.serve.schemas import ErrorOut, FacetsOut, HealthOut, HitOut, ProductOut, SearchOut

log = logging.getLogger(__name__)
T = TypeVar("T")

SEARCH_THREADS = 16  # searches in flight; those waiting for the model are what BatchingEncoder merges
LIGHT_THREADS = 8  # product lookups and photos: no model involved
MAX_OFFSET = 10_000  # faiss ranks offset+k rows per query; deeper paging is a scraper, not a shopper
MAX_ENUM = 500  # filter values listed in the OpenAPI schema; a column with more is described, not listed
FORM_SLACK = 64 * 1024  # multipart headers and boundaries around the uploaded file
SEARCH_PARAMS = frozenset({"q", "k", "offset", "mode", "correct"})

ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
          "favicon.svg": "image/svg+xml", "docs.js": "text/javascript; charset=utf-8"}
# Swagger UI 5's own files, from the fastapi-offline package (only its files are used): /docs needs no CDN.
DOCS_ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8"}
IMAGE_TYPES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"))
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": why}
    for code, why in [(400, "the request cannot be answered as asked"), (404, "no such product"),
                      (413, "body or upload over the limit"), (414, "query string too long"),
                      (431, "request headers too large"),
                      (422, "a parameter is missing or malformed")]
}


def create_app(searcher: Searcher, cfg: ServeConfig = ServeConfig(), *,
               allowed_hosts: Sequence[str] | None = None, max_batch: int = MAX_BATCH,
               search_threads: int = SEARCH_THREADS) -> FastAPI:
    """The search API and page over an opened `Searcher` (loaded once, by the caller, before this).

    The app searches through `serving(searcher)`: the same index behind a `BatchingEncoder`, which
    merges concurrent queries and keeps the model to one thread at a time (a Hugging Face tokenizer
    must not be used by two threads at once); `max_batch=1` turns merging off. The given searcher is
    never changed. `allowed_hosts` limits the Host headers answered. With `cfg.warm_hybrid` hybrid
    search's BM25 index is built in the background at once, so the first `mode=hybrid` query does
    not pay for it (a minute at 1M products).
    """
    searcher = serving(searcher, max_batch)
    if cfg.warm_hybrid:
        threading.Thread(target=_warm_hybrid, args=(searcher,), name="stylesearch-hybrid-build", daemon=True).start()
    app = FastAPI(title="stylesearch", version="1", summary="Search a clothing catalogue by words or pictures.",
                  docs_url=None, redoc_url=None)  # /docs below serves Swagger UI from local files
    app.state.searcher = searcher  # the serving view; a reload swaps it (serve.reload), tests read it
    if cfg.watch_index and searcher.index.path is not None:
        app.state.watcher = IndexWatcher(app.state, interval=cfg.reload_poll_s, warm_hybrid=cfg.warm_hybrid).start()

    def now() -> Searcher:
        """The searcher a request uses from start to end, even if a reload swaps in another meanwhile."""
        return app.state.searcher

    columns = list(searcher.filter_columns)
    pool = _Pool(search_threads)
    light = _Pool(LIGHT_THREADS)  # photos and lookups never queue behind searches waiting for the model
    assets = {name: (resources.files("stylesearch").joinpath("static", name).read_bytes(), kind)
              for name, kind in {**ASSETS, "index.html": "text/html; charset=utf-8"}.items()}
    filter_docs = {"parameters": [filter_parameter(col, values) for col, values in searcher.facets().items()
                                  if col in columns]}

    _install_error_handlers(app)
    if cfg.cors_origins:  # closed unless the operator names the origins that may call the API
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"], max_age=600)
    if allowed_hosts:  # DNS-rebinding guard: a loopback server answers only to loopback names
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(RequestGuard, upload_limit=cfg.max_upload_bytes + FORM_SLACK, body_timeout=cfg.body_timeout_s,
                       max_uploads=cfg.max_concurrent_uploads)

    async def run_search(request: Request, query: str | None, k: int, offset: int,
                         call: Callable[[Searcher, dict[str, Any]], list[Any]], notes: list[str] | None = None,
                         searcher: Searcher | None = None) -> SearchOut:
        searcher = now() if searcher is None else searcher
        given = list(searcher.filter_columns)
        filters = parse_filters(request.query_params.multi_items(), given)
        start = time.perf_counter()

        def work() -> tuple[list[Any], int, str | None]:
            hits = call(searcher, filters)
            # Worked out per request: the Searcher's own `last_notice` is shared by every thread.
            notice_of = getattr(searcher, "truncation_notice", None)
            said = [notice_of(query) if query is not None and notice_of else None, *(notes or [])]
            return hits, searcher.count(filters or None), "; ".join(n for n in said if n) or None

        hits, total, notice = await pool.run(work)
        return SearchOut(query=query, hits=[HitOut.of(h) for h in hits], k=k, offset=offset, total=total,
                         has_more=offset + len(hits) < total, took_ms=_ms(start), notice=notice,
                         filters=_given(request, given))

    @app.get("/api/search", response_model=SearchOut, responses=ERRORS, openapi_extra=filter_docs,
             summary="Search by text", tags=["search"])
    async def search_text(request: Request,
                          q: str = Query(..., max_length=cfg.max_query_chars, description="what to look for"),
                          k: int = Query(10, ge=1, le=cfg.max_k, description="results per page"),
                          offset: int = Query(0, ge=0, le=MAX_OFFSET, description="results to skip"),
                          mode: str = Query(DEFAULT_MODE, pattern=f"^({'|'.join(modes.MODES)})$",
                                            description="hybrid: CLIP fused with BM25 and the attributes the query "
                                                        "names (the default); clip: CLIP similarity alone"),
                          correct: bool = Query(True, description="correct words the catalogue does not use to "
                                                                  "close ones it does ('drss' -> 'dress')"),
                          ) -> SearchOut:
        query = q.strip()
        if not query:
            raise QueryError("empty query: type some words to search for")
        notes: list[str] = []

        def call(s: Searcher, f: dict[str, Any]) -> list[Any]:
            # Never wait for a mode still being prepared: a waiting request would hold a search thread.
            answer = modes.run(s, query, k, f or None, offset, mode, wait=False, correct=correct)
            if answer.notice:
                notes.append(answer.notice)
            fixed.append(answer.corrected)
            return answer.hits

        fixed: list[str | None] = []
        out = await run_search(request, query, k, offset, call, notes)
        return out.model_copy(update={"corrected": fixed[0] if fixed else None})

    @app.post("/api/search/image", response_model=SearchOut, responses=ERRORS, openapi_extra=filter_docs,
              summary="Search by an uploaded picture", tags=["search"])
    async def search_image(request: Request, file: UploadFile = File(..., description="a JPEG, PNG, GIF or WebP"),
                           k: int = Query(10, ge=1, le=cfg.max_k), offset: int = Query(0, ge=0, le=MAX_OFFSET),
                           ) -> SearchOut:
        data = await file.read(cfg.max_upload_bytes + 1)
        if len(data) > cfg.max_upload_bytes:
            raise HTTPException(413, f"upload is over the {cfg.max_upload_bytes} byte limit")
        image = await pool.run(lambda: decode_image(data, where="upload"))
        return await run_search(request, None, k, offset,
                                lambda s, f: s.search_image(image, k=k, filters=f or None, offset=offset))

    @app.get("/api/products", response_model=SearchOut, responses=ERRORS, openapi_extra=filter_docs,
             tags=["products"], summary="Browse the products that pass the filters, in catalogue order")
    async def browse(request: Request, k: int = Query(10, ge=1, le=cfg.max_k),
                     offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> SearchOut:
        return await run_search(request, None, k, offset, lambda s, f: s.browse(k=k, filters=f or None, offset=offset))

    @app.get("/api/products/{product_id}", response_model=ProductOut, responses=ERRORS, tags=["products"],
             summary="One product")
    async def product(product_id: str = Path(..., max_length=128)) -> ProductOut:
        current = now()
        return ProductOut.of(await light.run(lambda: lookup(current, product_id)))

    @app.get("/api/products/{product_id}/similar", response_model=SearchOut, responses=ERRORS,
             openapi_extra=filter_docs, tags=["search"], summary="More like this product")
    async def similar(request: Request, product_id: str = Path(..., max_length=128),
                      k: int = Query(10, ge=1, le=cfg.max_k), offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> SearchOut:
        current = now()
        await light.run(lambda: lookup(current, product_id))  # unknown ids are a 404, not a filter error
        return await run_search(request, None, k, offset,
                                lambda s, f: s.similar(product_id, k=k, filters=f or None, offset=offset),
                                searcher=current)

    @app.get("/api/facets", response_model=FacetsOut, responses=ERRORS, openapi_extra=filter_docs,
             tags=["search"], summary="Filter values and their counts, optionally for a query")
    async def facets(request: Request,
                     q: str | None = Query(None, max_length=cfg.max_query_chars)) -> FacetsOut:
        query = q.strip() if q and q.strip() else None
        current = now()
        filters = parse_filters(request.query_params.multi_items(), current.filter_columns, reserved=frozenset({"q"}))
        start = time.perf_counter()
        found, total = await pool.run(lambda: (current.facets(query=query, filters=filters or None),
                                               current.count(filters or None)))
        counts = {c: {str(v): int(n) for v, n in values.items()} for c, values in found.items()}
        return FacetsOut(query=query, facets=counts, total=total, took_ms=_ms(start))

    @app.get("/images/{product_id}", responses={**ERRORS, 200: {"content": {"image/jpeg": {}, "image/png": {}}}},
             response_class=Response, tags=["products"], summary="A product photo, by product id")
    async def image(request: Request, product_id: str = Path(..., max_length=128)) -> Response:
        current = now()
        data = await light.run(lambda: image_of(current, product_id))
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "public, max-age=86400"}  # ids are stable; a rebuild changes the etag
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type=image_type(data), headers=headers)

    @app.get("/healthz", response_model=HealthOut, tags=["service"], summary="Model and index in use")
    async def healthz() -> HealthOut:
        current = now()
        return HealthOut.of(current.manifest or {}, list(current.filter_columns))

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        body, kind = assets["index.html"]
        return Response(body, media_type=kind, headers={"Cache-Control": "no-cache"})

    @app.get("/p/{product_id}", include_in_schema=False)
    async def product_page(product_id: str = Path(..., max_length=128)) -> Response:
        # The page opens the product view itself; an unknown id is a 404 here, not a blank dialog.
        current = now()
        await light.run(lambda: lookup(current, product_id))
        body, kind = assets["index.html"]
        return Response(body, media_type=kind, headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in ASSETS:  # a fixed list, never a file lookup
            raise HTTPException(404, "no such asset")
        body, kind = assets[name]
        return Response(body, media_type=kind, headers={"Cache-Control": "no-cache"})

    docs_page = resources.files("stylesearch").joinpath("static", "docs.html").read_bytes()
    docs_files: dict[str, bytes] = {}  # Swagger UI's 1.7 MB, read on the first visit to /docs, then kept

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return Response(docs_page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        if name not in DOCS_ASSETS:  # a fixed list, never a file lookup
            raise HTTPException(404, "no such asset")
        if name not in docs_files:
            docs_files[name] = await light.run(
                lambda: resources.files("fastapi_offline").joinpath("static", name).read_bytes())
        return Response(docs_files[name], media_type=DOCS_ASSETS[name],
                        headers={"Cache-Control": "public, max-age=86400"})

    return app


def _warm_hybrid(searcher: Searcher) -> None:
    started = time.perf_counter()
    try:
        hybrid_for(searcher)
    except Exception:  # hybrid queries will retry the build and report the error; CLIP search is unaffected
        log.exception("building the hybrid search index failed")
        return
    log.info("hybrid search ready (BM25 over %d products) in %.1f s", len(searcher), time.perf_counter() - started)


# --- requests to library calls ---------------------------------------------------------------------

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
    # An id is only ever a key into the index (never a path): any id prepare accepted is served, and a
    # request for anything else is simply not found.
    try:
        return searcher.product(product_id)
    except (KeyError, QueryError, IndexError):
        raise HTTPException(404, f"no product with id {_short(product_id)}") from None


def image_of(searcher: Searcher, product_id: str) -> bytes:
    lookup(searcher, product_id)
    try:
        data = searcher.image_bytes(product_id)
    except (KeyError, QueryError, IndexError, CatalogError):
        data = None
    if not data:
        raise HTTPException(404, f"product {product_id} has no image")
    return bytes(data)


def image_type(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in IMAGE_TYPES if data.startswith(magic)), "application/octet-stream")


def _given(request: Request, columns: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if key in columns:
            out.setdefault(key, []).append(value.strip())
    return out


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


class _Pool:
    """A bounded threadpool for the CPU work (encoding, decoding, faiss), apart from anyio's default one."""

    def __init__(self, size: int):
        self.size = size
        self._limiter: anyio.CapacityLimiter | None = None  # needs a running event loop to create

    async def run(self, func: Callable[[], T]) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.size)
        return await anyio.to_thread.run_sync(func, limiter=self._limiter)


# --- errors and guards ----------------------------------------------------------------------------

def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(QueryError)
    async def query_error(_: Request, err: QueryError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    @app.exception_handler(CatalogError)
    async def bad_upload(_: Request, err: CatalogError) -> JSONResponse:  # only uploads are decoded here
        return JSONResponse({"detail": str(err)}, status_code=400)

    @app.exception_handler(StylesearchError)
    async def library_error(_: Request, err: StylesearchError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        parts = []
        for e in err.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "path", "body"))
            parts.append(f"{where or 'request'}: {e.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(err.detail)}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(Exception)
    async def crash(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)  # the trace goes to the log, not the client
        return JSONResponse({"detail": "internal error"}, status_code=500)
