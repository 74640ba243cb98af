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
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, File, HTTPException, Path, Query, Request, UploadFile
from fastapi.responses import Response

from stylesearch.config import ServeConfig
from stylesearch.curate.compose import MAX_EDIT_CHARS, similar_edited
from stylesearch.data.images import decode_image
from stylesearch.errors import QueryError
from stylesearch.search import modes
from stylesearch.search.batching import MAX_BATCH
from stylesearch.search.hybrid import hybrid_for
from stylesearch.search.modes import DEFAULT_MODE
from stylesearch.search.relevance import chance_score, good_match
from stylesearch.search.searcher import Searcher, serving
from stylesearch.search.sorting import RELEVANCE, SORT_DEPTH, browse_sorted, parse_sort, sort_choices, sort_hits
from stylesearch.search.suggest import suggester_for
from stylesearch.serve.guard import RequestGuard, size_text
from stylesearch.serve.handlers import install_error_handlers
from stylesearch.serve.reload import IndexWatcher
from stylesearch.serve.requests import (
    Pool,
    filter_parameter,
    given_filters,
    image_of,
    image_type,
    lookup,
    ms_since,
    parse_filters,
)
from stylesearch.serve.schemas import (
    ErrorOut,
    FacetsOut,
    HealthOut,
    HitOut,
    ProductOut,
    SearchOut,
    SuggestionOut,
    SuggestOut,
)
from stylesearch.serve.uploads import UploadStore

log = logging.getLogger(__name__)

SEARCH_THREADS = 16  # searches in flight; those waiting for the model are what BatchingEncoder merges
LIGHT_THREADS = 8  # product lookups and photos: no model involved
MAX_OFFSET = 10_000  # faiss ranks offset+k rows per query; deeper paging is a scraper, not a shopper
FORM_SLACK = 64 * 1024  # multipart headers and boundaries around the uploaded file
SORT_ABOUT = "relevance (the default), or a numeric column low to high ('price') or high to low ('-price')"
EXPIRED = "this photo search has expired (photos are kept for an hour after their last use); search by the photo again"

ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
          "suggest.js": "text/javascript; charset=utf-8", "facets.js": "text/javascript; charset=utf-8",
          "render.js": "text/javascript; charset=utf-8",
          "favicon.svg": "image/svg+xml", "docs.js": "text/javascript; charset=utf-8"}
# Swagger UI 5's own files, from the fastapi-offline package (only its files are used): /docs needs no CDN.
DOCS_ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8"}
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
    pool = Pool(search_threads)
    light = Pool(LIGHT_THREADS)  # photos and lookups never queue behind searches waiting for the model
    assets = {name: (resources.files("stylesearch").joinpath("static", name).read_bytes(), kind)
              for name, kind in {**ASSETS, "index.html": "text/html; charset=utf-8"}.items()}
    filter_docs = {"parameters": [filter_parameter(col, values) for col, values in searcher.facets().items()
                                  if col in columns]}

    install_error_handlers(app)
    if cfg.cors_origins:  # closed unless the operator names the origins that may call the API
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"], max_age=600)
    if allowed_hosts:  # DNS-rebinding guard: a loopback server answers only to loopback names
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(RequestGuard, upload_limit=cfg.max_upload_bytes + FORM_SLACK, body_timeout=cfg.body_timeout_s,
                       max_uploads=cfg.max_concurrent_uploads, photo_limit=cfg.max_upload_bytes)
    uploads = UploadStore()

    async def run_search(request: Request, query: str | None, k: int, offset: int,
                         call: Callable[[Searcher, dict[str, Any]], list[Any]] | None = None,
                         notes: list[str] | None = None, searcher: Searcher | None = None, *,
                         ranked: Callable[[Searcher, dict[str, Any], int, int], list[Any]] | None = None,
                         sort: str | None = None, exclude: str | None = None) -> SearchOut:
        """`call(searcher, filters)` answers the page as asked; `ranked(searcher, filters, k, offset)` can also sort.

        `exclude` is a product the answer never holds (the seed of "more like this"): not counted in `total`.
        """
        searcher = now() if searcher is None else searcher
        given = list(searcher.filter_columns)
        filters = parse_filters(request.query_params.multi_items(), given)
        key = parse_sort(sort, searcher.numeric_columns)
        start = time.perf_counter()

        def work() -> tuple[list[Any], int, str | None]:
            sorted_by = None
            total = searcher.count(filters or None, excluding=exclude)
            if ranked is None:
                hits = call(searcher, filters) if call else []
            elif key.by_relevance:
                hits = ranked(searcher, filters, k, offset)
            else:  # sort the best matches, not the catalogue: the cheapest unrelated product is no answer
                best = sort_hits(ranked(searcher, filters, SORT_DEPTH, 0), key)
                hits, total = best[offset:offset + k], len(best)
                sorted_by = f"the {total:,} best matches, sorted by {key.column}"
            # Worked out per request (after `call`, which may add notes): `last_notice` is shared by every thread.
            notice_of = getattr(searcher, "truncation_notice", None)
            said = [notice_of(query) if query is not None and notice_of else None, *(notes or []), sorted_by]
            return hits, total, "; ".join(n for n in said if n) or None

        hits, total, notice = await pool.run(work)
        return SearchOut(query=query, hits=[HitOut.of(h) for h in hits], k=k, offset=offset, total=total,
                         has_more=offset + len(hits) < total, took_ms=ms_since(start), notice=notice,
                         filters=given_filters(request, given), sort=sort or RELEVANCE)

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
                          sort: str = Query(RELEVANCE, max_length=100, description=SORT_ABOUT),
                          ) -> SearchOut:
        query = q.strip()
        if not query:
            raise QueryError("empty query: type some words to search for")
        notes: list[str] = []
        said: dict[str, Any] = {}

        def call(s: Searcher, f: dict[str, Any], k: int, at: int) -> list[Any]:
            # Never wait for a mode still being prepared: a waiting request would hold a search thread.
            answer = modes.run(s, query, k, f or None, at, mode, wait=False, correct=correct)
            if answer.notice:
                notes.append(answer.notice)
            said["corrected"] = answer.corrected
            if offset == 0:  # the first page says whether anything matched; later pages only continue it
                said["match"] = good_match(s, answer.corrected or query, answer.hits)
                if not said["match"]:
                    said["suggestions"] = [x.text for x in suggester_for(s).popular()]
            return answer.hits

        out = await run_search(request, query, k, offset, notes=notes, ranked=call, sort=sort)
        return out.model_copy(update=said)

    @app.post("/api/search/image", response_model=SearchOut, responses=ERRORS, openapi_extra=filter_docs,
              summary="Search by an uploaded picture", tags=["search"])
    async def search_image(request: Request, file: UploadFile = File(..., description="a JPEG, PNG, GIF or WebP"),
                           k: int = Query(10, ge=1, le=cfg.max_k), offset: int = Query(0, ge=0, le=MAX_OFFSET),
                           sort: str = Query(RELEVANCE, max_length=100, description=SORT_ABOUT)) -> SearchOut:
        data = await file.read(cfg.max_upload_bytes + 1)
        if len(data) > cfg.max_upload_bytes:
            raise HTTPException(413, f"the photo is over the {size_text(cfg.max_upload_bytes)} limit")
        current = now()

        def encode() -> str:
            image = decode_image(data, where="upload")
            vector = np.asarray(current.encoder.encode_images([image]), np.float32)[0]
            return uploads.put(data, image, vector, current.index.fingerprint, file.filename or "")

        upload_id = await pool.run(encode)
        return await photo_search(request, upload_id, k, offset, sort, current)

    @app.get("/api/search/image/{upload_id}", response_model=SearchOut, responses=ERRORS, openapi_extra=filter_docs,
             summary="Search again by a photo uploaded in the last hour", tags=["search"])
    async def search_upload(request: Request, upload_id: str = Path(..., max_length=64),
                            k: int = Query(10, ge=1, le=cfg.max_k), offset: int = Query(0, ge=0, le=MAX_OFFSET),
                            sort: str = Query(RELEVANCE, max_length=100, description=SORT_ABOUT)) -> SearchOut:
        return await photo_search(request, upload_id, k, offset, sort, now())

    async def photo_search(request: Request, upload_id: str, k: int, offset: int, sort: str,
                           current: Searcher) -> SearchOut:
        found = uploads.get(upload_id)
        if found is None or found.fingerprint != current.index.fingerprint:  # another model's vector means nothing
            raise HTTPException(404, EXPIRED)
        out = await run_search(request, None, k, offset, searcher=current, sort=sort,
                               ranked=lambda s, f, k, at: s.search_vector(found.vector, k, f or None, at))
        return out.model_copy(update={"upload_id": upload_id})

    @app.get("/api/uploads/{upload_id}/thumbnail", responses={**ERRORS, 200: {"content": {"image/jpeg": {}}}},
             response_class=Response, tags=["search"], summary="A small copy of a photo searched with")
    async def upload_thumbnail(upload_id: str = Path(..., max_length=64)) -> Response:
        found = uploads.get(upload_id)
        if found is None:
            raise HTTPException(404, EXPIRED)
        return Response(found.thumbnail, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/suggest", response_model=SuggestOut, responses=ERRORS, tags=["search"],
             summary="Completions while typing, from the catalogue's types, colours, brands and titles")
    async def suggest(q: str = Query(..., max_length=100, description="what has been typed so far"),
                      limit: int = Query(8, ge=1, le=20)) -> SuggestOut:
        current = now()
        found = await light.run(lambda: suggester_for(current).suggest(q, limit))
        return SuggestOut(query=q, suggestions=[SuggestionOut(text=s.text, kind=s.kind, count=s.count) for s in found])

    @app.get("/api/products", response_model=SearchOut, responses=ERRORS, openapi_extra=filter_docs,
             tags=["products"], summary="Browse the products that pass the filters, in catalogue order")
    async def browse(request: Request, k: int = Query(10, ge=1, le=cfg.max_k),
                     offset: int = Query(0, ge=0, le=MAX_OFFSET),
                     sort: str = Query(RELEVANCE, max_length=100, description=SORT_ABOUT)) -> SearchOut:
        return await run_search(request, None, k, offset, sort=sort,
                                call=lambda s, f: browse_sorted(s, parse_sort(sort, s.numeric_columns), k,
                                                                f or None, offset))

    @app.get("/api/products/{product_id}", response_model=ProductOut, responses=ERRORS, tags=["products"],
             summary="One product")
    async def product(product_id: str = Path(..., max_length=128)) -> ProductOut:
        current = now()
        return ProductOut.of(await light.run(lambda: lookup(current, product_id)))

    @app.get("/api/products/{product_id}/similar", response_model=SearchOut, responses=ERRORS,
             openapi_extra=filter_docs, tags=["search"], summary="More like this product")
    async def similar(request: Request, product_id: str = Path(..., max_length=128),
                      k: int = Query(10, ge=1, le=cfg.max_k), offset: int = Query(0, ge=0, le=MAX_OFFSET),
                      edit: str | None = Query(None, max_length=MAX_EDIT_CHARS,
                                               description="like this, but changed: 'in red', 'for women'"),
                      sort: str = Query(RELEVANCE, max_length=100, description=SORT_ABOUT)) -> SearchOut:
        current = now()
        await light.run(lambda: lookup(current, product_id))  # unknown ids are a 404, not a filter error
        if edit and edit.strip():  # composed query (stylesearch.curate.compose)
            return await run_search(request, edit.strip(), k, offset, searcher=current, exclude=product_id, sort=sort,
                                    ranked=lambda s, f, k, at: similar_edited(s, product_id, edit, k=k,
                                                                              filters=f or None, offset=at))
        return await run_search(request, None, k, offset, searcher=current, exclude=product_id, sort=sort,
                                ranked=lambda s, f, k, at: s.similar(product_id, k=k, filters=f or None, offset=at))

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
        return FacetsOut(query=query, facets=counts, total=total, took_ms=ms_since(start),
                         sorts=sort_choices(current.numeric_columns))

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
        chance_score(searcher)  # the first text query then pays for neither,
        suggester_for(searcher)  # nor the first keystroke for the suggestions
    except Exception:  # each is built again on first use, and reports its error there; CLIP search is unaffected
        log.exception("preparing hybrid search, the chance level or the suggestions failed")
        return
    log.info("hybrid search ready (BM25 over %d products) in %.1f s", len(searcher), time.perf_counter() - started)
