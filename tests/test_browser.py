"""The built book in a real browser (headless Chromium driven by Playwright), as a reader sees it.

The book built by tests/test_book.py's ``built_book`` fixture is served on 127.0.0.1 by a
``http.server`` thread; every request that leaves 127.0.0.1 is blocked and recorded, so a page
that needs the internet fails here (the book reads offline). For every page of _toc.yml:

* it loads with no console error and no uncaught exception;
* its math is typeset: every ``.math`` element holds MathJax output, and no raw ``$$`` / ``\\(`` is
  left in the text;
* every image of the article is loaded (non-zero natural size), and every ipywidgets view is
  rendered exactly once (a widget JavaScript loaded twice renders each view twice);
* a screenshot lands in ``test-artifacts/browser/``.

Next/previous: clicking "next" from the first page walks every page in _toc.yml order, and each
page's "previous" points one page back. Search: ``search.html?q=forget gate`` lists chapters.

The browser is the system Chromium (``/usr/bin/chromium``, or ``$CHROMIUM``): ``make test`` installs
it with apt-get when it is missing; Playwright's own browser download is never used. Without the
browser these tests fail (they never skip).
"""

from __future__ import annotations

import functools
import http.server
import itertools
import os
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import REPO
from tests.test_book import built_book, chapters  # noqa: F401  (session fixture, reused)
from tests.test_book_offline import OPTIONAL, soup

pytestmark = pytest.mark.book

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO / "test-artifacts" / "browser"
TIMEOUT_MS = 60_000            # a shared, busy CI machine: MathJax may take a while


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(built_book):  # noqa: F811
    handler = functools.partial(_Quiet, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    # in requirements.txt: a missing package fails here, it never skips
    from playwright import sync_api
    assert Path(CHROMIUM).is_file(), (f"no Chromium at {CHROMIUM}: `make test` installs it "
                                      "(apt-get install chromium), or set $CHROMIUM")
    with sync_api.sync_playwright() as p:
        # Playwright gives every launch a fresh temporary profile (user-data-dir).
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        yield b
        b.close()


class Reader:
    """A browser tab on the served book that records console errors and blocked requests."""

    def __init__(self, browser, site):
        self.site = site
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.on("response", lambda r: r.status >= 400 and self.errors.append(f"HTTP {r.status}: {r.url}"))

    def _route(self, route):
        url = route.request.url
        if url.startswith((self.site, "data:", "blob:")):
            route.continue_()
        else:
            if not url.startswith(tuple(OPTIONAL)):
                self.outside.append(url)
            route.abort()

    def goto(self, doc: str):
        self.page.goto(self.site + doc, wait_until="load")
        self.settle()

    def settle(self):
        """Wait until MathJax has typeset the page (when the page uses it) and fonts are in."""
        self.page.wait_for_function(
            "() => !document.querySelector('script[src*=\"mathjax\"]') || "
            "(window.MathJax && MathJax.startup && MathJax.startup.promise)")
        self.page.evaluate("async () => { if (window.MathJax && MathJax.startup) await MathJax.startup.promise;"
                           " await document.fonts.ready; }")

    def close(self):
        self.context.close()


@pytest.fixture
def reader(browser, site):
    r = Reader(browser, site)
    yield r
    r.close()


PAGE_REPORT = """() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const maths = [...article.querySelectorAll('.math')];
  const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
  return {
    maths: maths.length,
    untypeset: maths.filter(m => !m.querySelector('mjx-container') && !m.matches('mjx-container'))
                    .map(m => m.textContent.slice(0, 60)),
    mjx: article.querySelectorAll('mjx-container').length,
    prose: (() => { const c = article.cloneNode(true);        // the text outside code and typeset math
                    c.querySelectorAll('pre, code, script, style, mjx-container').forEach(e => e.remove());
                    return c.textContent; })(),
    images: [...article.querySelectorAll('img')].map(i => ({src: i.getAttribute('src'),
             ok: i.complete && i.naturalWidth > 0})),
    views: views.length,
    // one output area may hold several views (a cell training three models shows three progress
    // bars): per area, [views, rendered widgets]; a widget JavaScript loaded twice doubles the second
    rendered: [...new Set(views.map(v => v.parentElement))].map(p => [
      p.querySelectorAll(':scope > script[type="application/vnd.jupyter.widget-view+json"]').length,
      p.querySelectorAll(':scope > .widget-subarea').length]),
    sliders: article.querySelectorAll('.widget-slider').length,
    widgetImages: [...article.querySelectorAll('.widget-subarea img')].filter(i => i.naturalWidth > 0).length,
  };
}"""


@pytest.mark.parametrize("doc", chapters())
def test_page_reads_in_a_browser(doc, reader, built_book):  # noqa: F811
    reader.goto(f"{doc}.html")
    if reader.page.query_selector('script[type="application/vnd.jupyter.widget-view+json"]'):
        # the html-manager renders asynchronously (require.js, then the bundle, then each view)
        reader.page.wait_for_function(
            "() => [...document.querySelectorAll('script[type=\"application/vnd.jupyter.widget-view+json\"]')]"
            ".every(v => v.parentElement.querySelector(':scope > .widget-subarea *'))")
        reader.page.wait_for_timeout(500)       # a second renderer, if any, would add its copy now
    r = reader.page.evaluate(PAGE_REPORT)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    reader.page.screenshot(path=str(ARTIFACTS / f"{doc.replace('/', '__')}.png"), full_page=True)

    assert not reader.outside, f"{doc}: the page asks the internet for {reader.outside}"
    assert not reader.errors, f"{doc}: browser errors:\n  " + "\n  ".join(reader.errors)
    article = soup(built_book / f"{doc}.html").select_one("article")
    if article.select(".math"):
        assert r["maths"] and r["mjx"] >= r["maths"], f"{doc}: math not typeset ({r['mjx']} of {r['maths']})"
    assert not r["untypeset"], f"{doc}: math left raw: {r['untypeset'][:5]}"
    raw = [r["prose"][max(0, m.start() - 30):m.end() + 30]
           for m in re.finditer(r"\$\$|\\\(|\\\[|\\begin\{", r["prose"])]
    assert not raw, f"{doc}: raw TeX in the text: {raw[:5]}"
    broken = [i["src"] for i in r["images"] if not i["ok"]]
    assert not broken, f"{doc}: images that did not load: {broken}"
    assert len(r["images"]) >= len(article.find_all("img")), f"{doc}: the browser shows fewer images than built"
    assert all(views == shown for views, shown in r["rendered"]), (
        f"{doc}: each widget view must be rendered exactly once, got [views, rendered] per output {r['rendered']}")
    if "ipywidgets" in (REPO / f"{doc}.md").read_text():     # an explorer (not only progress bars)
        assert r["sliders"] >= 1 and r["widgetImages"] >= 1, (
            f"{doc}: the explorer shows no slider ({r['sliders']}) or no figure ({r['widgetImages']})")


def test_next_and_previous_walk_the_table_of_contents(reader):
    """Clicking "next" walks every page in _toc.yml order; each "previous" points one page back."""
    docs = chapters()
    reader.goto(f"{docs[0]}.html")
    assert not reader.page.query_selector("a.left-prev"), f"{docs[0]} (the first page) has a 'previous' link"
    for before, expected in itertools.pairwise(docs):
        with reader.page.expect_navigation(wait_until="domcontentloaded"):
            reader.page.click("a.right-next")
        path = urlsplit(reader.page.url).path.lstrip("/")
        assert path == f"{expected}.html", f"'next' led to {path}, expected {expected}.html"
        prev = urlsplit(reader.page.eval_on_selector("a.left-prev", "a => a.href")).path.lstrip("/")
        assert prev == f"{before}.html", f"'previous' of {expected} is {prev}, expected {before}.html"
    assert not reader.page.query_selector("a.right-next"), f"{docs[-1]} (the last page) has a 'next' link"
    with reader.page.expect_navigation(wait_until="domcontentloaded"):
        reader.page.click("a.left-prev")
    assert urlsplit(reader.page.url).path.lstrip("/") == f"{docs[-2]}.html", "'previous' did not go back"
    assert not reader.outside, f"the pages ask the internet for {reader.outside}"
    assert not reader.errors, "browser errors:\n  " + "\n  ".join(reader.errors)


def test_search_finds_forget_gate(reader):
    reader.page.goto(reader.site + "search.html?q=forget+gate", wait_until="load")
    reader.page.wait_for_function(
        "() => document.querySelectorAll('#search-results ul.search li').length > 0 || "
        "/did not match|no documents/i.test(document.querySelector('#search-results')?.innerText || '')")
    hits = reader.page.eval_on_selector_all("#search-results ul.search li a", "as => as.map(a => a.getAttribute('href'))")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    reader.page.screenshot(path=str(ARTIFACTS / "search_forget_gate.png"), full_page=True)
    assert hits, "searching 'forget gate' found nothing"
    assert any("02_deriving_lstm" in h for h in hits), f"the LSTM chapter is not among the results: {hits}"
    assert not reader.outside, f"the search page asks the internet for {reader.outside}"
    assert not reader.errors, "browser errors:\n  " + "\n  ".join(reader.errors)
