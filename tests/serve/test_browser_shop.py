"""The search page as a shop, in headless Chromium: honest counts, no-match help, suggestions, sort, photo URLs,
the phone sheet, accessibility (axe-core) and the latency a shopper feels.

Needs what test_browser.py needs, plus axe-core from npm (`.ci/install-browser.sh` installs it into .ci/axe/).
"""

from __future__ import annotations

import json
import os
import re
import statistics
from pathlib import Path

import pytest
from test_browser import ARTIFACTS, card_ids, png_bytes, sync_api, wait_for_results

pytestmark = pytest.mark.browser
AXE = Path(__file__).resolve().parents[2] / ".ci" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
expect = sync_api.expect
AXE_SEEN: list[dict] = []


def idle(page) -> None:
    page.wait_for_function("() => !document.body.classList.contains('busy')")


def search_for(page, text: str) -> None:
    box = page.get_by_test_id("search-input")
    box.fill(text)
    box.press("Enter")


def serious_axe_violations(page) -> list[dict]:
    """axe-core's critical and serious findings on the page as it is now."""
    if not AXE.is_file():
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(
            f"{AXE} is missing: run .ci/install-browser.sh (npm install axe-core)")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())  # evaluated by the test harness, so the page's CSP does not apply
    found = page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations']})).violations
        .map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))""")
    AXE_SEEN.extend({**v, "url": page.url} for v in found)  # every impact, for the report in test-artifacts/
    return [v for v in found if v["impact"] in ("critical", "serious")]


def phone(browser, base_url: str):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(base_url + "/")
    return context, page


# --- honest results ---------------------------------------------------------------------------------

def test_the_count_is_the_results_and_a_query_that_matches_nothing_says_so(page, searcher):
    search_for(page, "red shirt")
    wait_for_results(page, "Results for “red shirt”")
    expect(page.get_by_test_id("status")).to_contain_text(f"{len(searcher):,} results for “red shirt” · showing 24")
    expect(page.get_by_test_id("no-match")).to_be_hidden()

    search_for(page, "asdkjhqwe")
    no_match = page.get_by_test_id("no-match")
    expect(no_match).to_be_visible()
    expect(no_match).to_contain_text("Nothing in the catalogue matches “asdkjhqwe”")
    expect(page.get_by_test_id("status")).to_contain_text("No good match for “asdkjhqwe”")
    expect(page.get_by_test_id("results-grid")).to_be_hidden()  # no page of unrelated products posing as results
    expect(page.get_by_test_id("load-more")).to_be_hidden()
    offered = page.get_by_test_id("no-match-suggestion")
    assert offered.count() >= 1
    page.get_by_test_id("show-anyway").click()  # the shopper may still look
    expect(page.get_by_test_id("results-grid")).to_be_visible()
    assert len(card_ids(page)) == 24

    search_for(page, "asdkjhqwe")
    expect(no_match).to_be_visible()
    first = offered.first.inner_text()
    offered.first.click()
    wait_for_results(page, f"Results for “{first}”")
    expect(no_match).to_be_hidden()
    assert page.get_by_test_id("search-input").input_value() == first
    assert page.problems == []


# --- suggestions while typing ---------------------------------------------------------------------

def test_suggestions_while_typing_are_an_accessible_combobox(page, searcher):
    box = page.get_by_test_id("search-input")
    listbox = page.get_by_test_id("suggest-list")
    expect(box).to_have_attribute("role", "combobox")
    box.press_sequentially("dre", delay=30)
    expect(listbox).to_be_visible()
    expect(box).to_have_attribute("aria-expanded", "true")
    options = listbox.get_by_role("option")
    expect(options.first).to_contain_text("Dresses")
    dresses = int((searcher.index.products["articleType"] == "Dresses").sum())
    expect(options.first).to_contain_text(f"type · {dresses}")
    assert box.evaluate("b => document.activeElement === b")  # focus stays in the box

    box.press("ArrowDown")
    first_id = options.first.get_attribute("id")
    expect(box).to_have_attribute("aria-activedescendant", first_id)
    expect(options.first).to_have_attribute("aria-selected", "true")
    box.press("Escape")
    expect(listbox).to_be_hidden()
    expect(box).to_have_attribute("aria-expanded", "false")

    box.press_sequentially("s", delay=30)  # "dres": open again, then choose with the keyboard
    expect(options.first).to_contain_text("Dresses")
    box.press("ArrowDown")
    box.press("Enter")
    wait_for_results(page, "Results for “Dresses”")
    expect(listbox).to_be_hidden()
    assert all(searcher.product(i).attributes["articleType"] == "Dresses" for i in card_ids(page)[:3])

    box.fill("")
    box.press_sequentially("red sh", delay=30)  # every word typed begins a word of each suggestion
    expect(options.first).to_be_visible()
    texts = options.evaluate_all("os => os.map(o => o.dataset.text)")
    assert texts and all(re.search(r"\bred", t, re.I) and re.search(r"\bsh", t, re.I) for t in texts)
    options.first.click()  # a click chooses too
    wait_for_results(page, f"Results for “{texts[0]}”")
    assert page.problems == []


# --- sort -------------------------------------------------------------------------------------------

def test_sort_by_a_numeric_column_lives_in_the_url(page, searcher):
    search_for(page, "blue")
    wait_for_results(page, "Results for “blue”")
    by_relevance = card_ids(page)
    sort = page.get_by_test_id("sort")
    expect(sort).to_be_visible()
    values = sort.locator("option").evaluate_all("os => os.map(o => o.value)")
    assert values == ["relevance", "year", "-year"]  # the index's numeric columns, both ways
    sort.select_option("-year")
    page.wait_for_function("() => location.search.includes('sort=-year')")
    idle(page)
    expect(page.get_by_test_id("notice")).to_contain_text("sorted by year")
    years = [searcher.product(i).attributes["year"] for i in card_ids(page)]
    assert years == sorted(years, reverse=True) and card_ids(page) != by_relevance
    assert page.locator(".card .score").evaluate_all("ss => ss.every(s => s.hidden)")  # no scores out of order

    page.reload()
    wait_for_results(page, "Results for “blue”")
    expect(sort).to_have_value("-year")
    assert [searcher.product(i).attributes["year"] for i in card_ids(page)] == years
    sort.select_option("year")
    page.wait_for_function("() => /sort=year/.test(location.search)")
    idle(page)
    oldest = [searcher.product(i).attributes["year"] for i in card_ids(page)]
    assert oldest == sorted(oldest) and oldest[0] < years[0]
    assert page.problems == []


# --- photo searches in the URL ----------------------------------------------------------------------

def test_a_photo_search_is_a_url_and_clears_the_words(page, base_url):
    search_for(page, "red shirt")
    wait_for_results(page, "Results for “red shirt”")
    page.get_by_test_id("upload-input").set_input_files(
        files=[{"name": "green.png", "mimeType": "image/png", "buffer": png_bytes((40, 150, 60))}])
    wait_for_results(page, "Similar to your photo")
    page.wait_for_function("() => /[?&]photo=[0-9a-f]{32}/.test(location.search)")
    expect(page.get_by_test_id("search-input")).to_have_value("")  # the old words are gone
    with page.expect_request(lambda r: re.search(r"/api/search/image/[0-9a-f]{32}\?", r.url) is not None):
        page.get_by_test_id("load-more").click()  # the next page asks by id: no second upload
    expect(page.locator("[data-testid=result-card]")).to_have_count(48)
    ids = card_ids(page)  # the link below says shown=48: it brings all of them back

    shared = page.url
    other = page.context.new_page()
    other.goto(shared)  # a reload or a shared link reproduces the photo search
    wait_for_results(other, "Similar to your photo")
    assert card_ids(other) == ids
    thumb = other.locator("#mode-thumb")
    expect(thumb).to_have_attribute("src", re.compile(r"^/api/uploads/[0-9a-f]{32}/thumbnail$"))
    other.wait_for_function("() => document.getElementById('mode-thumb').naturalWidth > 0")
    other.close()

    page.go_back()  # the text search before the photo
    wait_for_results(page, "Results for “red shirt”")
    expect(page.get_by_test_id("search-input")).to_have_value("red shirt")
    page.go_forward()
    wait_for_results(page, "Similar to your photo")
    assert page.problems == []


def test_an_expired_photo_link_says_so_instead_of_a_broken_image(page, base_url):
    page.goto(f"{base_url}/?photo={'0' * 32}")  # no such kept photo: expired, or never made
    expect(page.get_by_role("alert")).to_contain_text("expired")
    expect(page.get_by_test_id("mode-chip")).to_be_hidden()  # no chip with a broken thumbnail
    broken = page.locator("img").evaluate_all("imgs => imgs.filter(i => i.offsetParent && i.complete && i.src"
                                              " && !i.naturalWidth).map(i => i.src)")
    assert broken == []


# --- phone ------------------------------------------------------------------------------------------

def test_phone_filters_are_a_sheet_with_show_n_results(browser, base_url, searcher):
    context, page = phone(browser, base_url)
    search_for(page, "black watch")
    wait_for_results(page, "Results for “black watch”")
    page.get_by_test_id("filters-toggle").click()
    sheet = page.locator(".filters")
    box = sheet.bounding_box()
    assert box["y"] == 0 and box["height"] == 844 and box["width"] == 390  # the sheet covers the screen
    women = page.locator("[data-testid=facet-option][data-column=gender][data-value=Women]")
    women.check()
    idle(page)
    expected = searcher.count({"gender": ["Women"]})
    show = page.get_by_test_id("show-results")
    expect(show).to_have_text(f"Show {expected:,} results")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "filters-sheet-mobile.png"))
    show.click()
    expect(page.locator("#facets")).to_be_hidden()
    header = page.locator(".topbar").bounding_box()["height"]
    top = page.locator("#results-title").evaluate("h => h.getBoundingClientRect().top")
    assert header <= top < header + 844 / 3  # the results, not the filters, are in front of the shopper
    expect(page.get_by_test_id("filters-toggle")).to_have_attribute("aria-expanded", "false")

    page.get_by_test_id("load-more").click()  # far down the results, a new photo search brings its results up
    expect(page.locator("[data-testid=result-card]")).to_have_count(48)
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    assert page.locator("#results-title").evaluate("h => h.getBoundingClientRect().top") < 0
    page.get_by_test_id("upload-input").set_input_files(
        files=[{"name": "red.png", "mimeType": "image/png", "buffer": png_bytes((200, 30, 40))}])
    wait_for_results(page, "Similar to your photo")
    page.wait_for_function("() => document.getElementById('results-title').getBoundingClientRect().top < 450"
                           " && document.getElementById('results-title').getBoundingClientRect().top >= "
                           "document.querySelector('.topbar').getBoundingClientRect().height")
    context.close()


# --- active filters ---------------------------------------------------------------------------------

def test_active_filters_show_as_chips_that_remove_themselves(page, searcher):
    search_for(page, "blue")
    wait_for_results(page, "Results for “blue”")
    for value in ("Women", "Men"):
        page.locator(f"[data-testid=facet-option][data-column=gender][data-value={value}]").check()
        page.wait_for_function(f"() => location.search.includes('gender={value}')")
        idle(page)
    chips = page.get_by_test_id("filter-chip")
    expect(chips).to_have_count(2)
    assert chips.evaluate_all("cs => cs.map(c => c.dataset.value)") == ["Women", "Men"]
    expect(chips.first).to_have_attribute("aria-label", "Women: remove this gender filter")
    chips.first.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => !location.search.includes('gender=Women')")
    idle(page)
    expect(chips).to_have_count(1)
    expect(chips.first).to_be_focused()  # the keyboard moved on to the next chip
    expect(page.locator("[data-testid=facet-option][data-column=gender][data-value=Women]")).not_to_be_checked()
    expect(page.get_by_test_id("status")).to_contain_text(f"{searcher.count({'gender': ['Men']}):,} results")
    chips.first.click()
    expect(page.get_by_test_id("active-filters")).to_be_hidden()
    assert "gender" not in page.url
    assert page.problems == []


# --- accessibility ----------------------------------------------------------------------------------

def test_no_critical_or_serious_axe_violations_desktop_and_phone(page, browser, base_url):
    assert serious_axe_violations(page) == []  # the start page
    search_for(page, "red shirt")
    wait_for_results(page, "Results for “red shirt”")
    assert serious_axe_violations(page) == []
    search_for(page, "asdkjhqwe")
    expect(page.get_by_test_id("no-match")).to_be_visible()
    assert serious_axe_violations(page) == []
    page.get_by_test_id("search-input").fill("")
    page.get_by_test_id("search-input").press_sequentially("sh", delay=30)
    expect(page.get_by_test_id("suggest-list")).to_be_visible()
    assert serious_axe_violations(page) == []  # the open combobox

    context, small = phone(browser, base_url)
    search_for(small, "black watch")
    wait_for_results(small, "Results for “black watch”")
    assert serious_axe_violations(small) == []
    small.get_by_test_id("filters-toggle").click()
    assert serious_axe_violations(small) == []  # the open sheet
    context.close()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "axe.json").write_text(json.dumps(AXE_SEEN, indent=2))  # moderate and minor findings too


def test_keyboard_focus_skip_link_and_accessible_names(page, browser, base_url):
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    expect(page.locator(".skip-link")).to_have_text("Skip to results")
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "results"

    search_for(page, "red shirt")
    wait_for_results(page, "Results for “red shirt”")
    more = page.get_by_test_id("load-more")
    more.focus()
    page.keyboard.press("Enter")
    expect(page.locator("[data-testid=result-card]")).to_have_count(48)
    idle(page)
    expect(more).to_be_focused()  # not dropped to <body> while the page loaded
    for label, visible in page.get_by_test_id("more-like-this").evaluate_all(
            "bs => bs.slice(0, 5).map(b => [b.getAttribute('aria-label'), b.textContent.trim()])"):
        assert label.startswith(visible)  # the words on screen begin the accessible name

    context, small = phone(browser, base_url)
    button = small.get_by_role("button", name="Search by photo")
    expect(button).to_be_visible()  # an icon on a phone, with its name kept
    context.close()


# --- small things -----------------------------------------------------------------------------------

def test_a_long_paste_is_cut_with_a_message_and_does_not_fill_the_screen(page):
    pasted = ("red shirt with a long story " * 80)[:2000]
    page.get_by_test_id("search-input").fill(pasted)
    note = page.get_by_test_id("input-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("Your text was 2,000 characters; searches read the first 512")
    assert len(page.get_by_test_id("search-input").input_value()) == 512
    page.get_by_test_id("search-input").press("Enter")
    idle(page)
    expect(page.locator("[data-testid=result-card]").first).to_be_visible()
    assert page.locator("#results-title").bounding_box()["height"] < 0.12 * 960  # two lines at most
    assert page.problems == []


def test_hybrid_cards_do_not_print_clip_scores_out_of_order(page):
    search_for(page, "women red dress")
    wait_for_results(page, "Results for “women red dress”")
    assert page.locator(".card .score").evaluate_all("ss => ss.every(s => s.hidden)")
    page.get_by_test_id("match-words").uncheck()  # CLIP alone: its scores are its ranking
    page.wait_for_function("() => location.search.includes('mode=clip')")
    idle(page)
    scores = page.locator(".card .score").evaluate_all("ss => ss.map(s => s.hidden ? null : parseFloat(s.textContent))")
    assert None not in scores and scores == sorted(scores, reverse=True)


# --- latency as felt --------------------------------------------------------------------------------

QUERIES = ["red shirt", "black watch", "navy blue jeans", "pink handbag", "green shorts", "yellow cap",
           "white casual shoes", "brown belt", "grey tshirt", "blue skirt", "women red dress", "men black jeans",
           "striped shirt", "polka dot dress", "checked shirt", "summer shorts", "red watch", "navy cap",
           "pink dress", "black handbag"]


def measure_felt_latency(page, queries: list[str]) -> list[float]:
    """Milliseconds from Enter to the results painted (the page's "search-to-paint" measure), per query."""
    page.evaluate("() => performance.clearMeasures('search-to-paint')")
    for query in queries:
        before = page.evaluate("() => performance.getEntriesByName('search-to-paint').length")
        search_for(page, query)
        page.wait_for_function(f"() => performance.getEntriesByName('search-to-paint').length > {before}")
    return page.evaluate("() => performance.getEntriesByName('search-to-paint').map(m => m.duration)")


def test_felt_latency_is_measured_and_reported(page):
    """Reported (stdout and test-artifacts/latency.json), not asserted: timing depends on the machine."""
    search_for(page, "warm up")
    idle(page)
    took = measure_felt_latency(page, QUERIES)
    assert len(took) == len(QUERIES) and all(t > 0 for t in took)
    report = {"queries": len(took), "p50_ms": round(statistics.median(took), 1),
              "p90_ms": round(statistics.quantiles(took, n=10)[-1], 1), "max_ms": round(max(took), 1),
              "index": "160 drawn products, fake encoder", "what": "Enter -> results painted"}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "latency.json").write_text(json.dumps(report, indent=2))
    print(f"\nfelt latency over {len(took)} searches: p50 {report['p50_ms']} ms, p90 {report['p90_ms']} ms")


def test_small_photos_are_not_stretched_past_twice_their_size(page):
    search_for(page, "red shirt")
    wait_for_results(page, "Results for “red shirt”")
    page.wait_for_function("() => [...document.querySelectorAll('.card img')].every(i => i.complete)")
    sizes = page.locator(".card img").evaluate_all(
        "imgs => imgs.map(i => [i.getBoundingClientRect().width, i.naturalWidth, i.parentElement.clientWidth])")
    assert sizes and all(shown <= 2 * natural + 0.5 for shown, natural, _ in sizes)
    # The cap is what limits them: without it these cards would draw the photo wider.
    assert any(card > 2 * natural + 20 for _, natural, card in sizes)


def test_load_more_is_in_the_url_and_a_reload_shows_as_many(page, base_url):
    search_for(page, "red shirt")
    wait_for_results(page, "Results for “red shirt”")
    page.get_by_test_id("load-more").click()
    expect(page.locator("[data-testid=result-card]")).to_have_count(48)
    page.wait_for_function("() => new URLSearchParams(location.search).get('shown') === '48'")
    assert page.evaluate("history.length") == 3  # blank, the page, the search: "Load more" replaced, did not push
    ids = card_ids(page)
    page.reload()
    expect(page.locator("[data-testid=result-card]")).to_have_count(48)
    assert card_ids(page) == ids
    page.goto(f"{base_url}/?q=red+shirt&shown=100000")  # a hand-made link cannot ask for everything
    wait_for_results(page, "Results for “red shirt”")
    idle(page)
    assert page.locator("[data-testid=result-card]").count() <= 240
    assert page.problems == []
