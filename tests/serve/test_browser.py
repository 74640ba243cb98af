"""The search page end to end in headless Chromium: search, filter, more like this, upload, drop, load more.

Needs Debian's chromium at /usr/bin/chromium and Playwright for Python (`.ci/install-browser.sh`
installs both; no browser is downloaded). Part of the default suite; in CI (CI=true) a missing browser fails.
Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path

import pytest
from PIL import Image
from test_serve import running_server

from fakes import FakeEncoder
from stylesearch.config import ServeConfig
from stylesearch.search.searcher import Searcher
from stylesearch.serve.app import create_app

pytestmark = pytest.mark.browser
if os.environ.get("CI") == "true":  # CI installs both: a skip there would hide a broken page
    import playwright.sync_api as sync_api
else:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (see .ci/install-browser.sh)")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# The fixtures (searcher, base_url, browser, page) are in tests/serve/conftest.py, shared with test_browser_shop.py.


def png_bytes(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (60, 80), colour).save(buf, "PNG")
    return buf.getvalue()


def card_ids(page) -> list[str]:
    return page.locator("[data-testid=result-card]").evaluate_all("cards => cards.map(c => c.dataset.id)")


def wait_for_results(page, title: str) -> None:
    sync_api.expect(page.locator("#results-title")).to_have_text(title)
    sync_api.expect(page.locator("[data-testid=result-card]").first).to_be_visible()
    page.wait_for_function("() => !document.body.classList.contains('busy')")


def test_shopper_searches_filters_and_browses(page, searcher):
    expect = sync_api.expect
    expect(page.locator("[data-testid=facet-option]").first).to_be_attached()  # facets load with the page

    # 1. Type a query and press Enter.
    page.get_by_test_id("search-input").fill("red shirt")
    page.get_by_test_id("search-input").press("Enter")
    wait_for_results(page, "Results for “red shirt”")
    cards = page.locator("[data-testid=result-card]")
    assert cards.count() == 24
    expect(cards.first.locator(".card-colour")).to_have_text("Red")
    expect(cards.first.locator("img")).to_have_attribute("src", re.compile(r"^/images/\w+$"))
    assert page.locator("img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    expect(page.get_by_test_id("took")).to_have_text(re.compile(r"in \d+ ms"))
    expect(page.get_by_test_id("status")).to_contain_text("· showing 24")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "search-page.png"), full_page=False)

    # 2. Load more appends the next page of the same ranking.
    first_page = card_ids(page)
    page.get_by_test_id("load-more").click()
    expect(cards).to_have_count(48)
    assert card_ids(page)[:24] == first_page

    # 3. A facet filter narrows the results, and its count says how many.
    women = page.locator("[data-testid=facet-option][data-column=gender][data-value=Women]")
    expected = int(page.locator(f"label[for='{women.get_attribute('id')}'] .count").inner_text())
    women.check()
    expect(page.get_by_test_id("status")).to_contain_text(f"{expected} results")
    assert "gender=Women" in page.url  # the filter is part of the URL
    page.wait_for_function("() => !document.body.classList.contains('busy')")
    assert all(searcher.product(pid).attributes["gender"] == "Women" for pid in card_ids(page))
    expect(page.get_by_test_id("clear-filters")).to_be_visible()
    # The other genders stay on offer (values in a group are "any of"), with the counts they would add.
    men = page.locator("[data-testid=facet-option][data-column=gender][data-value=Men]")
    expect(men).to_be_attached()
    assert page.locator("[data-testid=facet-gender] [data-testid=facet-option]").count() > 1

    # 4. More like this on a card searches by that product.
    liked = cards.first.get_attribute("data-id")
    title = cards.first.locator(".card-title").inner_text()
    cards.first.get_by_test_id("more-like-this").click()
    wait_for_results(page, "More like this")
    expect(page.get_by_test_id("mode-chip")).to_contain_text(title)
    assert liked not in card_ids(page)
    colour = searcher.product(liked).attributes["baseColour"]
    assert searcher.product(card_ids(page)[0]).attributes["baseColour"] == colour

    # 5. Upload a picture with the file picker (filters still apply).
    page.get_by_test_id("clear-filters").click()
    page.get_by_test_id("upload-input").set_input_files(
        files=[{"name": "green.png", "mimeType": "image/png", "buffer": png_bytes((40, 150, 60))}])
    wait_for_results(page, "Similar to your photo")
    expect(page.get_by_test_id("mode-chip")).to_contain_text("green.png")
    expect(cards.first.locator(".card-colour")).to_have_text("Green")
    page.screenshot(path=str(ARTIFACTS / "search-by-photo.png"), full_page=False)

    # 6. Drop a picture anywhere on the page.
    data = base64.b64encode(png_bytes((235, 200, 30))).decode()
    page.evaluate("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "yellow.png", {type: "image/png"}));
        window.dispatchEvent(new DragEvent("dragenter", {dataTransfer: dt, bubbles: true, cancelable: true}));
        window.__dropzoneShown = !document.getElementById("dropzone").hidden;
        window.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", data)
    assert page.evaluate("() => window.__dropzoneShown")
    expect(page.get_by_test_id("mode-chip")).to_contain_text("yellow.png")
    expect(cards.first.locator(".card-colour")).to_have_text("Yellow")
    expect(page.get_by_test_id("dropzone")).to_be_hidden()

    assert page.problems == []  # no CSP violation, no script error, no failed request


def test_match_words_is_on_by_default_and_switches_text_search_to_clip_and_back(page, searcher):
    from stylesearch.search.modes import search as search_in_mode

    query = "women red dress"
    clip = [h.id for h in searcher.search(query, k=24)]
    hybrid = [h.id for h in search_in_mode(searcher, query, k=24, mode="hybrid")]
    assert clip != hybrid  # else the page could not show which one it asked for

    assert page.get_by_test_id("match-words").is_checked()  # hybrid is the default, as in the API and CLI
    with page.expect_request(lambda r: "/api/search?" in r.url and "mode=hybrid" in r.url):
        page.get_by_test_id("search-input").fill(query)
        page.get_by_test_id("search-input").press("Enter")
    wait_for_results(page, f"Results for “{query}”")
    assert card_ids(page) == hybrid
    with page.expect_request(lambda r: "/api/search?" in r.url and "mode=clip" in r.url):
        page.get_by_test_id("match-words").uncheck()
    page.wait_for_function("() => !document.body.classList.contains('busy')")
    sync_api.expect(page.locator("[data-testid=result-card]").first).to_have_attribute("data-id", clip[0])
    assert card_ids(page) == clip
    assert "mode=clip" in page.url

    page.reload()  # the choice lives in the address, so a shared link keeps it
    wait_for_results(page, f"Results for “{query}”")
    assert not page.get_by_test_id("match-words").is_checked() and card_ids(page) == clip
    page.get_by_test_id("match-words").check()
    sync_api.expect(page.locator("[data-testid=result-card]").first).to_have_attribute("data-id", hybrid[0])
    page.wait_for_function("() => !document.body.classList.contains('busy')")
    assert card_ids(page) == hybrid and "mode=clip" not in page.url
    assert page.problems == []


def test_api_docs_render_offline(page, base_url):
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(base_url) else None)
    page.goto(base_url + "/docs")
    sync_api.expect(page.locator(".swagger-ui .opblock-summary-path", has_text="/api/search").first).to_be_visible()
    sync_api.expect(page.locator(".swagger-ui .info .title")).to_contain_text("stylesearch")
    assert outside == [] and page.problems == []  # nothing fetched from elsewhere, no CSP violation


def test_page_is_usable_from_the_keyboard(page):
    expect = sync_api.expect
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    for _ in range(5):  # brand, then the search box
        if page.evaluate("() => document.activeElement.id") == "q":
            break
        page.keyboard.press("Tab")
    expect(page.get_by_test_id("search-input")).to_be_focused()
    page.keyboard.type("navy blue")
    page.keyboard.press("Enter")
    wait_for_results(page, "Results for “navy blue”")
    # Every control is a real button or a labelled input, so Tab reaches it and Space/Enter work.
    more = page.get_by_test_id("more-like-this").first
    more.focus()
    shadow = more.evaluate("b => getComputedStyle(b).boxShadow")
    assert shadow and shadow != "none"  # a visible focus ring
    page.keyboard.press("Enter")
    wait_for_results(page, "More like this")
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden])')]
        .filter(i => !(i.labels && i.labels.length) && !i.getAttribute('aria-label')).map(i => i.id)""")
    assert unlabelled == []
    assert page.problems == []


def test_bad_input_shows_a_reason_not_a_crash(page):
    page.get_by_test_id("search-input").press("Enter")  # empty query: caught before asking the server
    sync_api.expect(page.get_by_test_id("error")).to_contain_text("Type a few words")
    page.get_by_test_id("upload-input").set_input_files(
        files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"not a picture"}])
    sync_api.expect(page.get_by_test_id("error")).to_contain_text("not an image file")  # the server's words
    assert [p for p in page.problems if "400" not in p] == []  # the failed upload is the only console error


def test_small_screens_get_one_column_without_sideways_scrolling(browser, base_url):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    page = context.new_page()
    page.goto(base_url + "/")
    sync_api.expect(page.get_by_test_id("welcome")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "welcome-mobile.png"))
    page.get_by_test_id("search-input").fill("black watch")
    page.get_by_test_id("search-input").press("Enter")
    wait_for_results(page, "Results for “black watch”")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(ARTIFACTS / "search-mobile.png"))
    women = page.locator("[data-testid=facet-option][data-column=gender][data-value=Women]")
    sync_api.expect(women).to_be_hidden()  # folded away so the results come first
    page.get_by_test_id("filters-toggle").click()
    sync_api.expect(women).to_be_visible()
    sync_api.expect(page.get_by_test_id("filters-toggle")).to_have_attribute("aria-expanded", "true")
    context.close()


@pytest.mark.shared
def test_real_catalogue_photos_and_facets(browser, shared_data, tmp_path):
    """The page over 1,000 real products (tiny random model: the ranking means nothing, the page does)."""
    import pandas as pd

    from stylesearch.config import IndexConfig, PrepareConfig
    from stylesearch.data.catalog import read_hf
    from stylesearch.data.prepare import prepare
    from stylesearch.index.store import EmbeddingIndex
    from stylesearch.model.clip import ClipEncoder, tiny_model

    pd.read_parquet(shared_data / "dev.parquet").head(1000).to_parquet(tmp_path / "real.parquet")
    prepare(read_hf(tmp_path / "real.parquet"), PrepareConfig(), tmp_path / "catalog")
    EmbeddingIndex.build(tmp_path / "catalog", ClipEncoder(tiny_model(seed=0)), tmp_path / "index",
                         IndexConfig(kind="flat"), model_name="tiny", progress=False)
    searcher = Searcher.from_index(tmp_path / "index")
    with running_server(create_app(searcher, ServeConfig())) as port:
        context = browser.new_context(viewport={"width": 1440, "height": 960})
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.goto(f"http://127.0.0.1:{port}/?q=navy+blue+shirt")
        wait_for_results(page, "Results for “navy blue shirt”")
        page.wait_for_function("() => [...document.querySelectorAll('.card img')].every(i => i.complete)")
        assert page.locator(".card img").first.evaluate("img => img.naturalWidth") >= 50  # a real photo
        assert page.locator("[data-testid=facet-articleType] [data-testid=facet-option]").count() > 8
        page.screenshot(path=str(ARTIFACTS / "real-data.png"))
        context.close()
    assert problems == []


def test_a_catalogue_s_own_columns_show_on_the_cards(browser, processed_dir, tmp_path):
    from stylesearch.config import IndexConfig, PrepareConfig
    from stylesearch.data.prepare import PrepareReport, load_processed, write_processed
    from stylesearch.index.store import EmbeddingIndex

    frame = load_processed(processed_dir).frame.copy()
    frame["price"] = [f"{19.5 + i % 7:.2f}" for i in range(len(frame))]
    frame["brand"] = "Acme"
    write_processed(frame, PrepareReport(source="test", rows_in=len(frame), rows_out=len(frame), split_sizes={}),
                    PrepareConfig(), tmp_path / "catalog")
    EmbeddingIndex.build(tmp_path / "catalog", FakeEncoder(), tmp_path / "index", IndexConfig(kind="flat"),
                         model_name="fake", progress=False)
    searcher = Searcher.from_index(tmp_path / "index", encoder=FakeEncoder())
    with running_server(create_app(searcher, ServeConfig(watch_index=False))) as port:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/?q=red+shirt")
        extra = page.locator("[data-testid=result-card] [data-testid=card-extra]").first
        sync_api.expect(extra).to_have_text(re.compile(r"^price \d+(\.\d+)? · brand Acme$"))
        page.close()


def test_back_forward_shared_urls_and_browsing_by_filters(page, searcher, base_url):
    expect = sync_api.expect
    box = page.get_by_test_id("search-input")
    box.fill("red shirt")
    box.press("Enter")
    wait_for_results(page, "Results for “red shirt”")
    box.fill("black watch")
    box.press("Enter")
    wait_for_results(page, "Results for “black watch”")
    page.locator("[data-testid=facet-option][data-column=gender][data-value=Women]").check()
    page.wait_for_function("() => location.search.includes('gender=Women')")
    shared = page.url

    page.go_back()  # the filter comes off
    page.wait_for_function("() => !location.search.includes('gender')")
    wait_for_results(page, "Results for “black watch”")
    page.go_back()  # the previous query, not the page before the site
    wait_for_results(page, "Results for “red shirt”")
    expect(box).to_have_value("red shirt")
    page.go_forward()
    wait_for_results(page, "Results for “black watch”")

    # A shared URL reproduces the page: query and filter, both ticked and applied.
    other = page.context.new_page()
    other.goto(shared)
    wait_for_results(other, "Results for “black watch”")
    expect(other.locator("[data-testid=facet-option][data-column=gender][data-value=Women]")).to_be_checked()
    ids = card_ids(other)
    assert ids and all(searcher.product(i).attributes["gender"] == "Women" for i in ids)
    other.close()

    # Two values of one group: either one passes.
    page.goto(base_url + "/")
    page.locator("[data-testid=facet-option][data-column=gender][data-value=Women]").check()
    wait_for_results(page, "Browsing the catalogue")  # filters alone list products, in catalogue order
    page.locator("[data-testid=facet-option][data-column=gender][data-value=Men]").check()
    page.wait_for_function("() => location.search.includes('gender=Men')")
    page.wait_for_function("() => !document.body.classList.contains('busy')")
    expected = searcher.count({"gender": ["Women", "Men"]})
    expect(page.get_by_test_id("status")).to_contain_text(f"{expected:,} products with these filters")
    order = [searcher.product(i).id for i in card_ids(page)]
    assert order == [h.id for h in searcher.browse(k=len(order), filters={"gender": ["Women", "Men"]})]
    assert page.problems == []


def test_the_product_view_has_its_own_url_and_escape_and_back_close_it(page, searcher, base_url):
    expect = sync_api.expect
    page.get_by_test_id("search-input").fill("red shirt")
    page.get_by_test_id("search-input").press("Enter")
    wait_for_results(page, "Results for “red shirt”")
    first = page.locator("[data-testid=result-card]").first
    pid = first.get_attribute("data-id")
    product = searcher.product(pid)
    first.get_by_test_id("card-link").click()
    view = page.get_by_test_id("product-view")
    expect(view).to_be_visible()
    expect(page.get_by_test_id("pv-title")).to_have_text(product.title)  # the full title, not cut
    expect(page.get_by_test_id("pv-attributes")).to_contain_text(str(product.attributes["baseColour"]))
    assert page.url.startswith(f"{base_url}/p/{pid}?q=red")
    page.keyboard.press("Escape")
    expect(view).to_be_hidden()
    assert page.url == f"{base_url}/?q=red+shirt"
    assert card_ids(page)[0] == pid  # the search underneath was kept

    first.get_by_test_id("card-link").click()
    expect(view).to_be_visible()
    page.go_back()  # Back closes it too
    expect(view).to_be_hidden()

    # A shared product URL opens the view over the page; "More like this" in it searches by the product.
    page.goto(f"{base_url}/p/{pid}")
    expect(view).to_be_visible()
    expect(page.get_by_test_id("pv-title")).to_have_text(product.title)
    page.get_by_test_id("pv-similar").click()
    wait_for_results(page, "More like this")
    assert page.url == f"{base_url}/?like={pid}" and pid not in card_ids(page)
    assert page.request.get(f"{base_url}/p/no-such-product").status == 404
    assert page.problems == []


def test_a_typo_is_corrected_and_the_page_says_so(page, searcher):
    word = next(w for w in searcher.index.products["title"].str.lower().str.split().explode()
                if len(w) >= 6 and w.isalpha())
    typo = word[:2] + word[3:]
    page.get_by_test_id("search-input").fill(typo)
    page.get_by_test_id("search-input").press("Enter")
    wait_for_results(page, f"Results for “{typo}”")
    sync_api.expect(page.get_by_test_id("notice")).to_contain_text(f"showing results for “{word}”")
    assert page.problems == []
