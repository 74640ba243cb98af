"""The HTTP API over a tiny index: the shape of every answer, filters, paging, and every bad request."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from PIL import Image

from fakes import FakeEncoder
from stylesearch.config import IndexConfig, ServeConfig
from stylesearch.data.synthetic import COLOURS
from stylesearch.errors import QueryError
from stylesearch.index.store import EmbeddingIndex
from stylesearch.search.batching import BatchingEncoder
from stylesearch.search.hybrid import hybrid_for
from stylesearch.search.searcher import Searcher
from stylesearch.serve.app import create_app, image_type, parse_filters
from stylesearch.serve.server import bind, server_config


def build_tiny_index(processed_dir: Path, out: Path) -> Path:
    EmbeddingIndex.build(processed_dir, FakeEncoder(), out, IndexConfig(kind="flat"), model_name="fake",
                         progress=False)
    return out


# --- fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def searcher(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return Searcher.from_index(build_tiny_index(processed_dir, tmp_path_factory.mktemp("serve") / "index"),
                               encoder=FakeEncoder())


@pytest.fixture(scope="module")
def client(searcher) -> TestClient:
    app = create_app(searcher, ServeConfig())
    hybrid_for(searcher)  # the background build races the first request; tests want the steady state
    return TestClient(app)


def png(colour=(200, 30, 40), size=(60, 80)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def detail(response) -> str:
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    return body["detail"]


# --- the shape of each endpoint --------------------------------------------------------------------

def test_healthz_reports_model_and_index_from_the_manifest(client, searcher):
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["model"] == "fake" and body["fingerprint"] == FakeEncoder.fingerprint
    assert body["index"]["count"] == searcher.count() and body["index"]["dim"] == FakeEncoder.dim
    assert body["index"]["kind"] == "flat" and body["index"]["created_at"]
    assert "baseColour" in body["filter_columns"]


def test_openapi_schema_names_every_endpoint_and_filter(client):
    schema = client.get("/openapi.json").json()
    for path in ["/api/search", "/api/search/image", "/api/products/{product_id}",
                 "/api/products/{product_id}/similar", "/api/facets", "/images/{product_id}", "/healthz"]:
        assert path in schema["paths"], path
    search = schema["paths"]["/api/search"]["get"]
    names = {p["name"] for p in search["parameters"]}
    assert {"q", "k", "offset", "gender", "baseColour", "year"} <= names
    gender = next(p for p in search["parameters"] if p["name"] == "gender")
    assert set(gender["schema"]["items"]["enum"]) == {"Men", "Women", "Unisex"}  # /docs offers the values
    assert search["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/SearchOut")
    assert search["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    assert {"SearchOut", "HitOut", "ProductOut", "FacetsOut", "HealthOut"} <= set(schema["components"]["schemas"])


def test_text_search_returns_typed_hits_with_the_named_colour_first(client):
    r = client.get("/api/search", params={"q": "red top", "k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "red top" and body["k"] == 5 and body["offset"] == 0
    assert len(body["hits"]) == 5 and body["total"] > 5 and body["has_more"] is True
    assert body["took_ms"] >= 0
    hit = body["hits"][0]
    assert set(hit) >= {"rank", "id", "score", "title", "attributes", "image_url"}
    assert hit["rank"] == 1 and hit["image_url"] == f"/images/{hit['id']}"
    assert hit["attributes"]["baseColour"] == "Red"
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_filters_keep_only_matching_products(client):
    body = client.get("/api/search", params={"q": "blue", "k": 50, "gender": "Women"}).json()
    assert body["hits"] and all(h["attributes"]["gender"] == "Women" for h in body["hits"])
    assert body["filters"] == {"gender": ["Women"]}
    both = client.get("/api/search", params=[("q", "blue"), ("k", 100), ("baseColour", "Red"),
                                             ("baseColour", "Green")]).json()
    assert {h["attributes"]["baseColour"] for h in both["hits"]} == {"Red", "Green"}
    assert both["total"] == len(both["hits"])


def test_year_filter_takes_a_range(client):
    body = client.get("/api/search", params={"q": "shirt", "k": 100, "year": "2010..2013"}).json()
    assert all(2010 <= int(h["attributes"]["year"]) <= 2013 for h in body["hits"])


def test_paging_continues_the_same_ranking(client):
    first = client.get("/api/search", params={"q": "green", "k": 10}).json()["hits"]
    second = client.get("/api/search", params={"q": "green", "k": 5, "offset": 5}).json()
    assert [h["id"] for h in second["hits"]] == [h["id"] for h in first[5:10]]
    assert [h["rank"] for h in second["hits"]] == [6, 7, 8, 9, 10]
    last = client.get("/api/search", params={"q": "green", "k": 10, "offset": second["total"] - 3}).json()
    assert len(last["hits"]) == 3 and last["has_more"] is False
    past = client.get("/api/search", params={"q": "green", "offset": second["total"] + 5}).json()
    assert past["hits"] == [] and past["has_more"] is False


def test_image_search_finds_products_of_the_uploaded_colour(client):
    r = client.post("/api/search/image", params={"k": 3}, files={"file": ("red.png", png(), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] is None and len(body["hits"]) == 3
    assert body["hits"][0]["attributes"]["baseColour"] == "Red"
    filtered = client.post("/api/search/image", params={"k": 50, "gender": "Men"},
                           files={"file": ("red.png", png(), "image/png")}).json()
    assert all(h["attributes"]["gender"] == "Men" for h in filtered["hits"])


def test_product_and_similar(client):
    hit = client.get("/api/search", params={"q": "navy blue", "k": 1}).json()["hits"][0]
    product = client.get(f"/api/products/{hit['id']}").json()
    assert product["id"] == hit["id"] and product["title"] == hit["title"]
    assert product["attributes"]["baseColour"] == hit["attributes"]["baseColour"]
    similar = client.get(f"/api/products/{hit['id']}/similar", params={"k": 4}).json()
    assert len(similar["hits"]) == 4 and similar["query"] is None
    assert hit["id"] not in [h["id"] for h in similar["hits"]]
    assert similar["hits"][0]["attributes"]["baseColour"] == hit["attributes"]["baseColour"]


def test_facets_count_every_filter_column(client, searcher):
    body = client.get("/api/facets").json()
    assert set(body["facets"]) >= {"gender", "masterCategory", "articleType", "baseColour", "season", "usage"}
    assert body["total"] == searcher.count()
    assert sum(body["facets"]["gender"].values()) == body["total"]
    women = client.get("/api/facets", params={"gender": "Women"}).json()
    assert set(women["facets"]["gender"]) == {"Women"} and women["total"] < body["total"]
    assert client.get("/api/facets", params={"q": "red dress"}).status_code == 200


def test_images_are_served_by_id_with_type_and_cache_headers(client):
    pid = client.get("/api/search", params={"q": "red", "k": 1}).json()["hits"][0]["id"]
    r = client.get(f"/images/{pid}")
    assert r.status_code == 200
    assert r.headers["content-type"] == image_type(r.content) and r.headers["content-type"].startswith("image/")
    Image.open(io.BytesIO(r.content)).verify()
    assert "max-age" in r.headers["cache-control"] and r.headers["etag"]
    again = client.get(f"/images/{pid}", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and not again.content


def test_the_page_and_its_assets_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: users run offline
    for name, kind in [("app.js", "javascript"), ("app.css", "text/css"), ("favicon.svg", "image/svg+xml")]:
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
        assert "https://" not in r.text.replace("http://www.w3.org/2000/svg", "")


# --- bad input is a 4xx that says what was wrong ----------------------------------------------------

@pytest.mark.parametrize(("params", "status", "says"), [
    ({}, 422, "q"),
    ({"q": ""}, 400, "empty query"),
    ({"q": "   "}, 400, "empty query"),
    ({"q": "x" * 513}, 422, "q"),
    ({"q": "red", "k": 0}, 422, "k"),
    ({"q": "red", "k": 101}, 422, "k"),
    ({"q": "red", "k": "ten"}, 422, "k"),
    ({"q": "red", "k": "1e400"}, 422, "k"),
    ({"q": "red", "offset": -1}, 422, "offset"),
    ({"q": "red", "offset": 10**12}, 422, "offset"),
    ({"q": "red", "colour": "Red"}, 400, "unknown filter 'colour'"),
    ({"q": "red", "baseColour": "Mauve"}, 400, "Mauve"),
    ({"q": "red", "baseColour": ""}, 400, "empty value"),
    ({"q": "red", "year": "last year"}, 400, "year"),
    ({"q": "red", "year": "2013-2010"}, 400, "year"),
])
def test_bad_search_requests_get_a_4xx_that_says_why(client, params, status, says):
    r = client.get("/api/search", params=params)
    assert r.status_code == status, r.text
    assert says in detail(r)


def test_too_many_filter_values_and_long_query_strings_are_refused(client):
    many = [("q", "red")] + [("baseColour", f"c{i}") for i in range(51)]
    assert client.get("/api/search", params=many).status_code == 400
    r = client.get("/api/search", params={"q": "red", "gender": "x" * 5000})
    assert r.status_code == 414 and "query string" in detail(r)


@pytest.mark.parametrize(("name", "data", "says"), [
    ("notes.png", b"this is not a picture at all", "not an image"),
    ("cut.png", png()[:60], "corrupt"),
    ("empty.png", b"", "empty"),
])
def test_bad_uploads_get_a_400(client, name, data, says):
    r = client.post("/api/search/image", files={"file": (name, data, "image/png")})
    assert r.status_code == 400 and says in detail(r)


def test_decompression_bomb_is_refused(client):
    buf = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buf, "PNG")  # 64 megapixels in a few kilobytes
    r = client.post("/api/search/image", files={"file": ("bomb.png", buf.getvalue(), "image/png")})
    assert r.status_code == 400 and "bomb" in detail(r)


def test_upload_without_a_file_is_a_422(client):
    assert client.post("/api/search/image").status_code == 422
    assert client.post("/api/search/image", json={"file": "x"}).status_code == 422


def test_uploads_over_the_limit_are_refused_while_streaming(searcher):
    client = TestClient(create_app(searcher, ServeConfig(max_upload_bytes=1000)))
    big = png(size=(300, 300)) + b"\0" * 70_000
    r = client.post("/api/search/image", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413 and "limit" in detail(r)

    sent = []

    def chunks():  # no Content-Length: the guard has to count as the body arrives
        for _ in range(1000):
            sent.append(1)
            yield b"x" * 4096

    r = client.post("/api/search/image", content=chunks(),
                    headers={"Content-Type": "multipart/form-data; boundary=zzz"})
    assert r.status_code == 413
    # Just over the limit is not a file that fits inside it plus form overhead
    ok = client.post("/api/search/image", files={"file": ("ok.png", png(size=(4, 4)), "image/png")})
    assert ok.status_code == 200


def test_bodies_on_other_endpoints_are_limited(client):
    r = client.request("GET", "/api/search", params={"q": "red"}, content=b"x" * 100_000)
    assert r.status_code == 413
    r = client.request("GET", "/healthz", headers={"Content-Length": "abc"}, content=b"")
    assert r.status_code == 400


@pytest.mark.parametrize("path", ["/api/products/999999999", "/api/products/999999999/similar",
                                  "/images/999999999", "/api/products/x%00y", "/images/%20"])
def test_unknown_products_are_404(client, path):
    r = client.get(path)
    assert r.status_code == 404 and detail(r)


@pytest.mark.parametrize("path", [
    "/images/../../../etc/passwd", "/images/..%2F..%2F..%2Fetc%2Fpasswd", "/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/images/%252e%252e%252fetc%252fpasswd", "/images/..%5C..%5Cwindows%5Cwin.ini", "/images/....//....//etc/passwd",
    "/images/..", "/images/.%2e", "/images/%2fetc%2fpasswd", "/images//etc/passwd",
    "/api/products/..%2F..%2Fetc%2Fpasswd", "/api/products/../../etc/passwd",
    "/api/products/..%2F..%2Fetc%2Fpasswd/similar", "/api/products/%2e%2e/similar",
    "/static/../serve.py", "/static/..%2Fserve.py", "/static/%2e%2e%2fserve.py", "/static/..%5Cserve.py",
    "/static/index.html/../../serve.py", "/static/", "/static/.", "/%2e%2e/%2e%2e/etc/passwd",
])
def test_path_traversal_never_serves_a_file(client, path):
    status, headers, body = raw_get(client.app, path)
    assert status in (400, 404, 405, 422), (path, status)
    assert b"root:" not in body and b"create_app" not in body and b"[fonts]" not in body
    assert headers[b"content-type"].startswith(b"application/json")


def raw_get(app, raw_path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    """Call the app as uvicorn would: percent-decoded path, no dot-segment clean-up (httpx would do that)."""
    import anyio

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": unquote(raw_path), "raw_path": raw_path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    out: dict = {"body": b""}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"], out["headers"] = message["status"], dict(message["headers"])
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    anyio.run(app, scope, receive, send)
    return out["status"], out["headers"], out["body"]


def test_cors_is_closed_by_default(client):
    r = client.get("/api/search", params={"q": "red"}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    pre = client.options("/api/search", headers={"Origin": "https://evil.example",
                                                 "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in pre.headers


def test_cors_opens_only_to_configured_origins(searcher):
    client = TestClient(create_app(searcher, ServeConfig(cors_origins=("https://shop.example",))))
    ok = client.get("/healthz", headers={"Origin": "https://shop.example"})
    assert ok.headers["access-control-allow-origin"] == "https://shop.example"
    other = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_loopback_server_refuses_foreign_host_headers(searcher):
    client = TestClient(create_app(searcher, ServeConfig(), allowed_hosts=["127.0.0.1", "localhost"]),
                        base_url="http://127.0.0.1:8000")
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz", headers={"Host": "attacker.example"}).status_code == 400


@pytest.mark.parametrize("path", ["/", "/api/search?q=red", "/api/search?q=", "/images/nope", "/healthz"])
def test_security_headers_on_every_answer(client, path):
    r = client.get(path)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    if path.startswith("/api/"):
        assert r.headers["cache-control"] == "no-store"


def test_api_docs_are_served_from_local_files_with_no_cdn(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/") for s in sources)  # nothing from another host
    for path in sources:
        assert client.get(path).status_code == 200, path
    bundle = client.get("/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text and len(bundle.content) > 100_000
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "https:" not in csp and "cdn" not in csp
    assert client.get("/docs/assets/..%2Fserve.py").status_code == 404
    assert client.get("/docs/assets/app.js").status_code == 404  # only Swagger UI's two files
    assert client.get("/redoc").status_code == 404  # ReDoc would need a CDN


def test_unexpected_errors_are_a_plain_500_without_a_trace(searcher):
    class Broken(Searcher):
        def encode_query(self, *a, **kw):  # every text query, in either mode, goes through here
            raise RuntimeError("secret internals")

    client = TestClient(create_app(Broken(searcher.index, searcher.encoder), ServeConfig()),
                        raise_server_exceptions=False)
    r = client.get("/api/search", params={"q": "red"})
    assert r.status_code == 500 and r.json() == {"detail": "internal error"}


# --- helpers -----------------------------------------------------------------------------------------

def test_parse_filters_groups_repeated_keys():
    cols = ["gender", "year"]
    assert parse_filters([("q", "x"), ("gender", "Men"), ("gender", "Women"), ("year", "2011-2012")], cols) \
        == {"gender": ["Men", "Women"], "year": "2011-2012"}
    with pytest.raises(QueryError, match="unknown filter 'colour'; filter on one of: gender, year"):
        parse_filters([("colour", "Red")], cols)


def test_batching_encoder_merges_queries_that_queue_while_the_model_is_busy():
    class SlowEncoder(FakeEncoder):
        calls: list[tuple[str, int]] = []

        def encode_texts(self, texts):
            self.calls.append(("texts", len(texts)))
            time.sleep(0.05)
            return super().encode_texts(texts)

        def encode_images(self, images):
            self.calls.append(("images", len(images)))
            time.sleep(0.05)
            return super().encode_images(images)

    slow = SlowEncoder()
    batching = BatchingEncoder(slow, max_batch=8)
    names = list(COLOURS)
    results: dict[int, np.ndarray] = {}

    def ask(i: int) -> None:
        if i % 3:
            results[i] = batching.encode_texts([f"a {names[i % len(names)]} shirt"])
        else:
            results[i] = batching.encode_images([Image.new("RGB", (8, 8), COLOURS[names[i % len(names)]])])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(24):
        colour = names[i % len(names)]
        want = FakeEncoder().encode_texts([f"a {colour} shirt"]) if i % 3 else \
            FakeEncoder().encode_images([Image.new("RGB", (8, 8), COLOURS[colour])])
        np.testing.assert_array_equal(results[i], want)
    assert sum(n for kind, n in slow.calls if kind == "texts") == 16
    assert sum(n for kind, n in slow.calls if kind == "images") == 8
    assert len(slow.calls) < 24 and max(n for _, n in slow.calls) <= 8  # passes were shared, within the cap
    assert batching.fingerprint == FakeEncoder.fingerprint and batching.dim == FakeEncoder.dim


# --- the real server: uvicorn as `stylesearch serve` runs it ------------------------------------------

@contextmanager
def running_server(app, cfg: ServeConfig = ServeConfig(), **settings):
    """Run `app` under uvicorn, configured as `stylesearch serve` does, on a free loopback port."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = server_config(app, replace(cfg, port=port), log_level="warning", access_log=False, **settings)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def exchange(port: int, raw: bytes, *, wait: float = 5.0) -> bytes:
    """Send raw bytes, return everything the server says until it closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as conn:
        conn.sendall(raw)
        chunks = []
        try:
            while chunk := conn.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and b"connection: close" not in b"".join(chunks).lower():
                    break
        except TimeoutError:
            pass
    return b"".join(chunks)


@pytest.fixture(scope="module")
def server_port(searcher):
    with running_server(create_app(searcher, ServeConfig()), header_timeout=0.5) as port:
        yield port


def test_server_answers_without_a_version_banner(server_port):
    reply = exchange(server_port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200") and b"\r\nserver:" not in reply.lower()


@pytest.mark.parametrize("target", [b"/images/../../../etc/passwd", b"/images/..%2f..%2fetc%2fpasswd",
                                    b"/static/../serve.py", b"/static/..%2fcli_serve.py", b"/../../etc/passwd"])
def test_server_never_serves_files_for_raw_traversal_paths(server_port, target):
    reply = exchange(server_port, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert reply.split(b" ")[1] in (b"400", b"404"), reply[:200]
    assert b"root:" not in reply and b"import" not in reply


def test_slow_clients_are_cut_off(server_port):
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server_port), timeout=5) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and then nothing more
        assert conn.recv(1024) == b""  # closed by the server
    assert time.monotonic() - start < 3


def test_oversized_headers_are_refused(server_port):
    reply = exchange(server_port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Junk: " + b"a" * 40_000 + b"\r\n\r\n")
    assert reply.split(b" ")[1] in (b"400", b"431"), reply[:200]


def test_declared_oversized_upload_is_refused_before_the_body_is_sent(server_port):
    head = (b"POST /api/search/image HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=zzz\r\nContent-Length: 50000000\r\n\r\n")
    reply = exchange(server_port, head)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]


def test_oversized_or_too_many_headers_are_431(client):
    assert client.get("/healthz", headers={"X-Junk": "a" * 20_000}).status_code == 431
    assert client.get("/healthz", headers={f"X-H{i}": "1" for i in range(120)}).status_code == 431


def test_serve_command_loads_once_binds_loopback_and_prints_the_url(processed_dir, tmp_path):
    from stylesearch.model.clip import ClipEncoder, tiny_model

    index = tmp_path / "index"
    EmbeddingIndex.build(processed_dir, ClipEncoder(tiny_model(seed=0)), index, model_name="tiny", progress=False)
    cmd = [sys.executable, "-c", "from stylesearch.cli.base import app; app()", "serve", "--index", str(index),
           "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"})
    try:
        seen = ""
        deadline = time.monotonic() + 120
        while not (url := re.search(r"http://127\.0\.0\.1:(\d+)/", seen)):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, seen
            assert time.monotonic() < deadline, seen
            seen += line
        health = json.loads(exchange(int(url.group(1)), b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     b"Connection: close\r\n\r\n").split(b"\r\n\r\n", 1)[1])
        assert health["model"] == "tiny" and health["index"]["count"] > 0
        foreign = exchange(int(url.group(1)), b"GET /healthz HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        assert foreign.startswith(b"HTTP/1.1 400")  # DNS rebinding: only loopback Host names are answered
    finally:
        proc.terminate()
        proc.wait(30)


def test_every_forward_pass_runs_on_one_long_lived_model_thread():
    """Request threads come and go; the model must not see a new one each time (see docs/reliability.md)."""

    class RecordingEncoder(FakeEncoder):
        threads: set[int] = set()

        def encode_texts(self, texts):
            self.threads.add(threading.get_ident())
            return super().encode_texts(texts)

    recording = RecordingEncoder()
    batching = BatchingEncoder(recording)
    callers = set()

    def ask(i: int) -> None:
        callers.add(threading.get_ident())
        np.testing.assert_array_equal(batching.encode_texts([f"query {i}"]), FakeEncoder().encode_texts([f"query {i}"]))

    for round_ in range(3):  # fresh threads each round, as a threadpool that ends idle workers makes
        threads = [threading.Thread(target=ask, args=(10 * round_ + i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    batching.encode_texts(["from the test's own thread"])
    assert len(recording.threads) == 1 and not recording.threads & (callers | {threading.get_ident()})


def test_a_cached_query_is_answered_without_waiting_for_the_model(processed_dir, tmp_path):
    from stylesearch.search.querycache import CachedEncoder

    fresh = Searcher(EmbeddingIndex.load(build_tiny_index(processed_dir, tmp_path / "index")),
                     CachedEncoder(FakeEncoder()))
    app = create_app(fresh, ServeConfig(warm_hybrid=False))
    client = TestClient(app)
    assert isinstance(fresh.encoder.encoder, FakeEncoder)  # the caller's searcher is left as it was
    served = app.state.searcher
    batching = served.encoder.encoder
    assert isinstance(served.encoder, CachedEncoder) and isinstance(batching, BatchingEncoder)
    assert served.index is fresh.index and served.hybrid is fresh.hybrid  # the same index, not a copy
    # Both requests must take the same (hybrid) path: built now, not by a background build mid-test,
    # whose first hybrid query would need the catalogue-wording encoding that the cache lacks.
    from stylesearch.search.hybrid import hybrid_for

    hybrid_for(served)
    first = client.get("/api/search", params={"q": "red shirt", "k": 3}).json()
    answers = []
    with batching._model_lock:  # the model is busy with someone else's batch
        asking = threading.Thread(target=lambda: answers.append(
            client.get("/api/search", params={"q": "red shirt", "k": 3}).json()))
        asking.start()
        asking.join(timeout=10)
        assert not asking.is_alive()  # answered from the cache while the model was held
    assert answers[0]["hits"] == first["hits"]


def test_batching_encoder_is_safe_for_concurrent_queries_with_a_real_tokenizer(tiny):
    from concurrent.futures import ThreadPoolExecutor

    from stylesearch.model.clip import ClipEncoder

    plain = ClipEncoder(tiny)
    batching = BatchingEncoder(ClipEncoder(tiny))
    texts = [f"{c} shirt " + "very " * (i % 40) for i, c in enumerate(list(COLOURS) * 4)]

    def ask(text: str) -> tuple[int, np.ndarray]:
        return batching.token_count(text), batching.encode_texts([text])[0]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, texts))
    for text, (tokens, vector) in zip(texts, answers, strict=True):
        assert tokens == plain.token_count(text)
        np.testing.assert_allclose(vector, plain.encode_texts([text])[0], atol=1e-4)


def test_long_queries_get_a_truncation_notice(searcher, tiny):
    from stylesearch.model.clip import ClipEncoder

    class Words:  # the tiny CLIP's tokenizer and limit in front of the fake encoder's vectors
        def __init__(self):
            self.clip, self.fake = ClipEncoder(tiny), FakeEncoder()
            self.dim, self.fingerprint, self.max_tokens = self.fake.dim, self.fake.fingerprint, self.clip.max_tokens

        def token_count(self, text):
            return self.clip.token_count(text)

        def encode_texts(self, texts):
            return self.fake.encode_texts(texts)

        def encode_images(self, images):
            return self.fake.encode_images(images)


    long_searcher = Searcher(searcher.index, Words())
    client = TestClient(create_app(long_searcher, ServeConfig()))
    hybrid_for(long_searcher)  # wait for the background build, or the first answer notes CLIP-only results
    assert client.get("/api/search", params={"q": "red shirt"}).json()["notice"] is None
    body = client.get("/api/search", params={"q": "red " + "t-shirt " * 60}).json()  # ~180 tokens, 484 chars
    assert "77" in body["notice"] and body["hits"][0]["attributes"]["baseColour"] == "Red"


def test_hybrid_mode_is_accepted_and_bad_modes_are_4xx(client):
    ok = client.get("/api/search", params={"q": "red shirt", "k": 3, "mode": "hybrid"})
    assert ok.status_code == 200 and len(ok.json()["hits"]) == 3
    bad = client.get("/api/search", params={"q": "red shirt", "mode": "magic"})
    assert bad.status_code == 422


def test_text_search_defaults_to_hybrid_and_mode_clip_is_clip_alone(client, searcher):
    hybrid_for(searcher)  # wait for the background build, so the default answers in hybrid mode
    query = "red shirt"
    ids = {mode: [h["id"] for h in client.get("/api/search", params={"q": query, "k": 10, "mode": mode})
                  .json()["hits"]] for mode in ("hybrid", "clip")}
    assert ids["hybrid"] != ids["clip"]  # else this test could not tell the modes apart
    default = client.get("/api/search", params={"q": query, "k": 10}).json()
    assert [h["id"] for h in default["hits"]] == ids["hybrid"]
    assert ids["clip"] == [h.id for h in searcher.search(query, k=10)]


def test_an_id_with_a_space_works_in_every_api(processed_dir: Path, tmp_path: Path):
    from stylesearch.config import ColumnMapping, PrepareConfig
    from stylesearch.data.catalog import read_frame
    from stylesearch.data.prepare import load_processed, prepare

    frame = load_processed(processed_dir).frame.drop(columns=["split"])
    odd = str(frame.at[0, "id"])
    frame.loc[0, "id"] = "123 45"  # prepare accepts it (no path separator): every API must serve it
    prepare(read_frame(frame, ColumnMapping(id="id", image="image", title="title"), source="odd ids"),
            PrepareConfig(), tmp_path / "catalog")
    EmbeddingIndex.build(tmp_path / "catalog", FakeEncoder(), tmp_path / "index", IndexConfig(kind="flat"),
                         model_name="fake", progress=False)
    searcher = Searcher.from_index(tmp_path / "index", encoder=FakeEncoder())
    assert odd not in set(searcher.index.products["id"]) and "123 45" in set(searcher.index.products["id"])
    client = TestClient(create_app(searcher, ServeConfig(warm_hybrid=False)))
    product = client.get("/api/products/123%2045")
    assert product.status_code == 200 and product.json()["id"] == "123 45"
    assert product.json()["image_url"] == "/images/123%2045"  # encoded, so a browser can fetch it as given
    image = client.get(product.json()["image_url"])
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    similar = client.get("/api/products/123%2045/similar", params={"k": 3})
    assert similar.status_code == 200 and "123 45" not in [h["id"] for h in similar.json()["hits"]]
    title = product.json()["title"]
    hits = client.get("/api/search", params={"q": title, "k": 10, "mode": "hybrid"}).json()["hits"]
    assert {"id": "123 45", "image_url": "/images/123%2045"}.items() <= \
        next(h for h in hits if h["id"] == "123 45").items()
    assert client.get("/api/products/..%2F..%2Fetc%2Fpasswd").status_code == 404


@pytest.fixture(scope="module")
def strict_port(searcher):
    cfg = ServeConfig(body_timeout_s=0.5)
    with running_server(create_app(searcher, cfg), cfg, header_timeout=5) as port:
        yield port


def stalled_upload(port: int, declared: int = 100_000) -> socket.socket:
    """A connection that sends an upload's headers and the first bytes of its body, then stalls."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (f"POST /api/search/image HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {declared}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n\r\n").encode()
    conn.sendall(head + b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n\r\n")
    return conn


def test_an_upload_whose_body_stalls_gets_408_and_is_closed(strict_port):
    start = time.monotonic()
    with stalled_upload(strict_port) as conn:
        reply = conn.recv(65536)
        answered = time.monotonic() - start
        while chunk := conn.recv(65536):
            reply += chunk
        closed = time.monotonic() - start
    assert reply.startswith(b"HTTP/1.1 408") and b"did not arrive within" in reply, reply[:300]
    assert answered < 3 and closed < 3, (answered, closed)  # not the 200 s a stalled body used to hold it


@pytest.fixture(scope="module")
def capped_port(searcher):
    cfg = ServeConfig(body_timeout_s=3.0, max_concurrent_uploads=1)
    with running_server(create_app(searcher, cfg), cfg, header_timeout=10) as port:
        yield port


def test_uploads_over_the_cap_get_503_at_once_and_the_slot_frees(capped_port):
    import httpx

    files = {"file": ("red.png", png(), "image/png")}
    url = f"http://127.0.0.1:{capped_port}/api/search/image"
    with stalled_upload(capped_port):
        time.sleep(0.3)  # the stalled upload holds the one slot (for up to 3 s)
        busy = httpx.post(url, files=files, timeout=5)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    deadline = time.monotonic() + 10  # closed by us: the slot frees at once, or at the latest on its timeout
    while (free := httpx.post(url, files=files, timeout=5)).status_code == 503:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert free.status_code == 200 and free.json()["hits"]


def test_browsing_lists_the_filtered_products_in_catalogue_order(client, searcher):
    body = client.get("/api/products", params=[("gender", "Women"), ("gender", "Men"), ("k", 5), ("offset", 2)]).json()
    wanted = searcher.browse(k=5, filters={"gender": ["Women", "Men"]}, offset=2)
    assert [h["id"] for h in body["hits"]] == [h.id for h in wanted] and body["hits"][0]["rank"] == 3
    assert body["total"] == searcher.count({"gender": ["Women", "Men"]}) and body["query"] is None
    rows = [int(np.flatnonzero(searcher.index.products["id"].astype(str) == h.id)[0]) for h in wanted]
    assert rows == sorted(rows)
    assert client.get("/api/products", params={"colour": "Red"}).status_code == 400
