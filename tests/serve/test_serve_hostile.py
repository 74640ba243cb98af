"""Hostile requests that tests/serve/test_serve.py does not already try: malformed query strings (bad
percent-encoding, invalid UTF-8, NUL bytes, numbers too large for any integer type), and malformed
multipart uploads. Every one must get a 4xx JSON answer, never a 500 and never a file."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fakes import FakeEncoder
from stylesearch.config import IndexConfig, ServeConfig
from stylesearch.index.store import EmbeddingIndex
from stylesearch.search.searcher import Searcher
from stylesearch.serve.app import create_app


@pytest.fixture(scope="module")
def client(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    out = tmp_path_factory.mktemp("hostile") / "index"
    EmbeddingIndex.build(processed_dir, FakeEncoder(), out, IndexConfig(kind="flat"), model_name="fake",
                         progress=False)
    return TestClient(create_app(Searcher.from_index(out, encoder=FakeEncoder()), ServeConfig()),
                      raise_server_exceptions=False)


def assert_client_error(response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json()["detail"], str | list)


@pytest.mark.parametrize("query", [
    "q=red&k=99999999999999999999999999",  # no integer type holds it
    "q=red&k=1e3", "q=red&k=-1", "q=red&offset=-5", "q=red&offset=nan",
    "q=red&gender=", "q=red&year=99999-1", "q=red&year=2011-2010x",
    "q=red&" + "&".join(f"gender=G{i}" for i in range(60)),  # more values than allowed
    "q=" + "a" * 600,  # longer than max_query_chars
    "q=red&__proto__=x",  # not a filter column
    "q=red&gender=%ff",  # invalid UTF-8 in a filter value: no such value
])
def test_malformed_query_strings_are_4xx(client, query):
    assert_client_error(client.get("/api/search?" + query))


@pytest.mark.parametrize("query", [
    "q=%ff%fe",  # invalid UTF-8: decoded with replacement characters, searched as such
    "q=%zz",  # not percent-encoding: the literal text
    "q=red%00shirt",  # a NUL byte is just a character to the tokenizer
    "q=red&k=10&k=20", "q=red&q=blue",  # repeated scalars: one wins
])
def test_odd_but_harmless_query_strings_are_answered(client, query):
    response = client.get("/api/search?" + query)
    assert response.status_code == 200, response.text[:300]
    assert isinstance(response.json()["hits"], list)


@pytest.mark.parametrize(("headers", "body"), [
    ({"content-type": "multipart/form-data"}, b"--x\r\n\r\n--x--"),  # no boundary
    ({"content-type": "multipart/form-data; boundary=abc"}, b"garbage without any boundary"),
    ({"content-type": "multipart/form-data; boundary=abc"},
     b"--abc\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\nnot an image\r\n--abc--\r\n"),
    ({"content-type": "multipart/form-data; boundary=abc"},
     b"".join(b"--abc\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nx\r\n" % i for i in range(2000))
     + b"--abc--\r\n"),  # thousands of parts
    ({"content-type": "application/json"}, b'{"file": "../../etc/passwd"}'),
    ({"content-type": "text/plain"}, b"/etc/passwd"),
])
def test_malformed_uploads_are_4xx(client, headers, body):
    response = client.post("/api/search/image", headers=headers, content=body)
    assert_client_error(response)
    assert b"root:" not in response.content


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "TRACE"])
def test_other_methods_are_refused(client, method):
    response = client.request(method, "/api/search?q=red")
    assert response.status_code in (404, 405) and "root:" not in response.text
