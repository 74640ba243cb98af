"""ASGI guard in front of the app: security headers on every answer, oversized, stalled or too many
concurrent uploads refused early."""

from __future__ import annotations

import asyncio

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_QUERY_STRING = 4096  # bytes; the longest legitimate query is ~512 chars plus a few filters
MAX_HEADER_BYTES = 16 * 1024  # real browsers send < 8 KiB; uvicorn only caps what it buffers, not the total
MAX_HEADERS = 100
MAX_OTHER_BODY = 64 * 1024  # no endpoint but the upload takes a body

CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# /docs: Swagger UI from this server's own files (no CDN, no inline script); it sets inline styles.
DOCS_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
            "connect-src 'self'; worker-src blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]

class RequestGuard:
    """Security headers on every answer; oversized query strings and bodies refused while they stream in."""

    def __init__(self, app: ASGIApp, upload_limit: int, body_timeout: float = 10.0, max_uploads: int = 8,
                 photo_limit: int | None = None):
        self.app = app
        self.upload_limit = upload_limit
        self.photo_limit = photo_limit  # what an upload's 413 names: the photo's limit, not the form's slack
        self.body_timeout = body_timeout
        self.max_uploads = max_uploads
        self.uploads = 0  # uploads in progress; the event loop is one thread, so a plain counter is safe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        csp = (DOCS_CSP if path == "/docs" else CSP).encode()
        started = False

        async def send_secure(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                headers.append((b"content-security-policy", csp))
                if path.startswith("/api/") and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        headers = scope.get("headers", [])
        if len(headers) > MAX_HEADERS or sum(len(k) + len(v) for k, v in headers) > MAX_HEADER_BYTES:
            await _reject(scope, send_secure, 431, "request headers are too many or too large")
            return
        if len(scope.get("query_string", b"")) > MAX_QUERY_STRING:
            await _reject(scope, send_secure, 414, f"query string is over {MAX_QUERY_STRING} bytes")
            return
        limit = self.upload_limit if path == "/api/search/image" else MAX_OTHER_BODY
        too_big = (f"the photo is over the {size_text(self.photo_limit)} limit"
                   if path == "/api/search/image" and self.photo_limit else
                   f"request body is over the {size_text(limit)} limit")
        declared = dict(headers).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _reject(scope, send_secure, 400, "Content-Length is not a number")
                return
            if int(declared) > limit:  # refuse before reading a byte
                await _reject(scope, send_secure, 413, too_big)
                return
        upload = path == "/api/search/image" and scope.get("method") == "POST"
        if upload and self.uploads >= self.max_uploads:
            await _reject(scope, send_secure, 503, f"{self.max_uploads} uploads are already being searched; "
                          "try again in a moment", retry_after=1)
            return
        seen, body_done = 0, False
        deadline = asyncio.get_running_loop().time() + self.body_timeout  # for the whole body, not per chunk

        async def counted_receive() -> Message:
            nonlocal seen, body_done
            if body_done:  # after the body, receive() only waits for a disconnect: no deadline on that
                return await receive()
            try:
                left = max(0.0, deadline - asyncio.get_running_loop().time())
                message = await asyncio.wait_for(receive(), left)
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the request body did not arrive within {self.body_timeout:g} s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if seen > limit:  # chunked or lying clients: stop as soon as the limit is passed
                    raise HTTPException(413, too_big)
            return message

        self.uploads += upload
        try:
            await self.app(scope, counted_receive, send_secure)
        except HTTPException as err:
            if started:
                raise
            await _reject(scope, send_secure, err.status_code, str(err.detail))
        finally:
            self.uploads -= upload


def size_text(n: int) -> str:
    """Bytes as people read them: 10485760 -> "10 MB", 65536 -> "64 KB"."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


async def _reject(scope: Scope, send: Send, status: int, detail: str, retry_after: int | None = None) -> None:
    headers = {"Connection": "close"} | ({"Retry-After": str(retry_after)} if retry_after else {})
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}
