"""The search page as a shopper feels it: Enter -> results painted, in headless Chromium, over a real index.

Starts `stylesearch serve` on the index in a subprocess (as a user would), drives the page with Playwright
(Debian's /usr/bin/chromium, see .ci/install-browser.sh), and reports for each query the time from
pressing Enter to the frame that shows the results (the page's own "search-to-paint" User Timing
measure) beside the time the /api/search request took in the browser and on the server. With
--shots DIR it also saves desktop and phone screenshots for the docs.

    python benchmarks/page_latency.py --index /tmp/page-index --shots docs/img
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

QUERIES = ["red dress", "black watch", "navy blue jeans", "pink handbag", "green shorts", "yellow cap",
           "white casual shoes", "brown belt", "grey tshirt", "blue skirt", "women red dress", "men black jeans",
           "striped shirt", "sports shoes", "formal shirt", "kurta", "sunglasses", "flip flops", "backpack",
           "silver earrings"]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
SHOWN = """() => { const imgs = [...document.querySelectorAll('.card img')];  // lazy: only those on screen load
  return imgs.length > 0 && imgs.filter(i => i.getBoundingClientRect().top < innerHeight).every(i => i.complete); }"""


def start_server(index: Path, port: int) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("stylesearch")
    server = subprocess.Popen([str(exe), "serve", "--index", str(index), "--port", str(port), "--no-watch"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return server
        except OSError:
            if server.poll() is not None:
                said = server.stdout.read() if server.stdout else ""
                raise SystemExit(f"stylesearch serve exited: {said}") from None
            time.sleep(0.5)
    server.kill()
    raise SystemExit("stylesearch serve did not answer within 300 s")


def felt(page, queries: list[str]) -> tuple[list[float], list[float], list[float]]:
    """(Enter -> painted, the /api/search fetch, the server's took_ms) per query, in milliseconds."""
    painted, fetched, server = [], [], []
    for query in queries:
        page.evaluate("() => { performance.clearMeasures(); performance.clearResourceTimings(); }")
        with page.expect_response(lambda r: "/api/search?" in r.url) as answer:
            box = page.get_by_test_id("search-input")
            box.fill(query)
            box.press("Enter")
        page.wait_for_function("() => performance.getEntriesByName('search-to-paint').length > 0")
        painted.append(page.evaluate("() => performance.getEntriesByName('search-to-paint')[0].duration"))
        fetched.append(page.evaluate("""() => performance.getEntriesByType('resource')
            .filter(r => r.name.includes('/api/search?')).map(r => r.duration)[0]"""))
        server.append(answer.value.json()["took_ms"])
        page.wait_for_function("() => !document.body.classList.contains('busy')")
        page.wait_for_load_state("networkidle")  # facets and photos settle before the next query
    return painted, fetched, server


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 1), "p90": round(statistics.quantiles(values, n=10)[-1], 1),
            "max": round(max(values), 1)}


def screenshots(browser, base: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    desktop = browser.new_context(viewport={"width": 1440, "height": 900})
    page = desktop.new_page()
    page.goto(f"{base}/?q=red+dress&gender=Women")
    page.wait_for_function(SHOWN)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / "search-desktop.jpg"), type="jpeg", quality=80)
    box = page.get_by_test_id("search-input")
    box.fill("")
    box.press_sequentially("dre", delay=60)
    page.get_by_test_id("suggest-list").wait_for(state="visible")
    page.screenshot(path=str(out / "suggestions-desktop.jpg"), type="jpeg", quality=80,
                    clip={"x": 0, "y": 0, "width": 1440, "height": 520})
    desktop.close()
    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    page = phone.new_page()
    page.goto(f"{base}/?q=black+watch")
    page.wait_for_function(SHOWN)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / "search-phone.jpg"), type="jpeg", quality=75)
    page.get_by_test_id("filters-toggle").click()
    page.locator("[data-testid=facet-option][data-column=gender][data-value=Men]").check()
    page.wait_for_function("() => /Show [\\d,]+ results/.test(document.getElementById('show-results').textContent)")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / "filters-sheet-phone.jpg"), type="jpeg", quality=75)
    phone.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the queries (the first warms caches)")
    parser.add_argument("--shots", type=Path, help="save desktop and phone screenshots here")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    server = start_server(args.index, args.port)
    base = f"http://127.0.0.1:{args.port}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            page.goto(base + "/")
            page.wait_for_load_state("networkidle")
            results = {}
            for n in range(args.rounds):
                painted, fetched, took = felt(page, QUERIES)
                results[f"round {n + 1}"] = {"enter_to_paint_ms": summary(painted),
                                             "api_fetch_ms": summary(fetched), "server_took_ms": summary(took)}
            if args.shots:
                screenshots(browser, base, args.shots)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    print(json.dumps({"index": str(args.index), "queries": len(QUERIES), "cpus": os.cpu_count(), **results},
                     indent=2))


if __name__ == "__main__":
    main()
