"""The slow-client guard under a real uvicorn: the header timer runs only while headers are awaited, and a
request body has one deadline for the whole of it."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from PIL import Image
from test_serve import running_server

from fakes import FakeEncoder
from stylesearch.config import IndexConfig, ServeConfig
from stylesearch.index.store import EmbeddingIndex
from stylesearch.search.searcher import Searcher
from stylesearch.serve.app import create_app


@pytest.fixture(scope="module")
def searcher(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    out = tmp_path_factory.mktemp("server") / "idx"
    EmbeddingIndex.build(processed_dir, FakeEncoder(), out, IndexConfig(), model_name="fake", progress=False)
    return Searcher.from_index(out, FakeEncoder())


@contextmanager
def running(searcher: Searcher, *, header_timeout: float, body_timeout: float) -> Iterator[int]:
    """The app under uvicorn as `stylesearch serve` runs it, on a free loopback port."""
    cfg = ServeConfig(body_timeout_s=body_timeout, warm_hybrid=False, watch_index=False)
    with running_server(create_app(searcher, cfg), cfg, header_timeout=header_timeout) as port:
        yield port


def upload(extra_headers: str = "") -> tuple[bytes, bytes]:
    """The head and body of an image-search upload of a small red PNG."""
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 30, 40)).save(buf, "PNG")
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n'
            + buf.getvalue() + b"\r\n--b--\r\n")
    head = (f"POST /api/search/image?k=3 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\n{extra_headers}\r\n").encode()
    return head, body


def read_all(conn: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


def test_a_pipelined_request_is_not_cut_off_by_the_header_timer(searcher):
    head, body = upload("Connection: close\r\n")
    with running(searcher, header_timeout=0.5, body_timeout=10) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        # Two requests in one write: the second's headers are complete, its body trickles in over 1.5 s,
        # three times the header timeout. The header timer must not be re-armed once it has started.
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + head + body[:10])
        for i in range(5):
            time.sleep(0.3)
            conn.sendall(body[10 + i: 11 + i])
        conn.sendall(body[15:])
        reply = read_all(conn)
    assert reply.count(b"HTTP/1.1 200") == 2, reply[:400]
    assert b'"hits"' in reply


def test_a_body_that_trickles_has_one_deadline_for_all_of_it(searcher):
    head, body = upload()
    with running(searcher, header_timeout=10, body_timeout=1.0) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        start = time.monotonic()
        conn.sendall(head)
        sent, answered = 0, b""
        conn.settimeout(0.2)
        while time.monotonic() - start < 6 and not answered:  # a byte every 0.2 s: never idle for 1 s
            conn.sendall(body[sent:sent + 1])
            sent += 1
            with suppress(TimeoutError):
                answered = conn.recv(65536)
        took = time.monotonic() - start
    assert answered.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in answered, answered[:300]
    assert took < 3, took  # the deadline counts from the first byte, not from the last chunk


def test_headers_that_stall_on_a_keep_alive_connection_are_still_cut_off(searcher):
    with running(searcher, header_timeout=0.5, body_timeout=10) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and then nothing more
        assert read_all(conn) == b""  # closed by the server, without an answer
    assert time.monotonic() - start < 3
