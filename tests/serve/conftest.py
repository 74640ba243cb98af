"""Fixtures of the browser tests: a server over the drawn catalogue (fake encoder) and headless Chromium pages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_serve import build_tiny_index, running_server

from fakes import FakeEncoder
from stylesearch.config import ServeConfig
from stylesearch.search.hybrid import hybrid_for
from stylesearch.search.searcher import Searcher
from stylesearch.serve.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def searcher(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    index = build_tiny_index(processed_dir, tmp_path_factory.mktemp("browser") / "index")
    return Searcher.from_index(index, encoder=FakeEncoder())


@pytest.fixture(scope="module")
def base_url(searcher: Searcher):
    with running_server(create_app(searcher, ServeConfig())) as port:
        hybrid_for(searcher)  # the background build races the first request; tests want the steady state
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(
            f"{CHROMIUM} is missing: run .ci/install-browser.sh (apt-get install chromium)")
    if os.environ.get("CI") == "true":  # CI installs both: a skip there would hide a broken page
        import playwright.sync_api as sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (.ci/install-browser.sh)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, base_url):
    context = browser.new_context(viewport={"width": 1440, "height": 960}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []  # CSP violations and script errors show up here
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: problems.append(str(err)))
    page.goto(base_url + "/")
    page.problems = problems
    yield page
    context.close()
