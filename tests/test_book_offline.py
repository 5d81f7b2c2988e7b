"""The book as readers use it: it reads offline, its links resolve, its pages are accessible.

* Offline: every URL a built page would *load* (scripts, stylesheets and fonts, preloads, images,
  iframes, the widget loader's module folder, URLs in the stylesheets it links) is local, unless it
  is listed in OPTIONAL with the reason why. An ``<a href>`` is a link, not a load. The external
  ones are listed in ``external_loads.txt`` under pytest's tmp folder (and printed with ``-s``).
* Widgets: pages with ipywidgets load require.js and the html-manager bundle from ``_static``, once
  each, and every widget view is in the page once (no double rendering).
* Links: every internal link, download and image resolves to a built file, and its ``#anchor`` to an
  element of that page. External links are listed in ``external_links.txt`` under pytest's tmp
  folder (and printed with ``-s``); they are not fetched.
* Accessibility: every image of a chapter has alt text; heading levels never skip (h1 -> h3).
* Launch: with _config.yml's launch_buttons and repository set (tests/test_book.py's LAUNCH_EXAMPLE),
  every notebook chapter offers JupyterHub, Binder and Colab buttons to its own file; Thebe is off.
* Build time: the same build again, with nothing changed, reads nothing and takes <= 30 s.

The book is built once per session by tests/test_book.py's ``built_book`` fixture.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from bs4 import BeautifulSoup

from tests.conftest import ASSIGNMENTS, REPO
from tests.test_book import LAUNCH_EXAMPLE, built_book, chapters  # noqa: F401  (session fixture, reused)

pytestmark = pytest.mark.book

# URL prefix -> why a page may reference it although it is not local.
OPTIONAL = {
    "https://unpkg.com/thebe@": "sphinx-thebe's live-code library, fetched only when a reader starts "
                                "live code (thebe is off in _config.yml, so nothing starts it)",
}
WIDGET_JS = ("_static/widgets/require.js", "_static/widgets/embed-amd.js")
LOAD_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "preconnect", "dns-prefetch", "icon",
             "shortcut", "apple-touch-icon", "mask-icon", "manifest"}
SRC_TAGS = {"script": "src", "img": "src", "iframe": "src", "frame": "src", "embed": "src",
            "audio": "src", "video": "src", "source": "src", "track": "src", "object": "data",
            "input": "src"}
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""")
JS_URL = re.compile(r"""['"`]((?:https?:)?//[^'"`\s]+)['"`]""")
SKIP_SCHEMES = ("data:", "mailto:", "javascript:", "tel:", "blob:", "about:")


def is_external(url: str) -> bool:
    return url.startswith(("http://", "https://", "//"))


def pages(root: Path) -> list[Path]:
    skip = {"_static", "_sources", "_downloads", "_images"}
    return sorted(p for p in root.rglob("*.html") if not skip & set(p.relative_to(root).parts))


_soups: dict[Path, BeautifulSoup] = {}


def soup(path: Path) -> BeautifulSoup:
    if path not in _soups:
        _soups[path] = BeautifulSoup(path.read_text(errors="replace"), "html.parser")
    return _soups[path]


def srcset_urls(value: str) -> list[str]:
    return [part.strip().split()[0] for part in value.split(",") if part.strip()]


def loads_of(doc: BeautifulSoup) -> list[tuple[str, str]]:
    """(what, url) for everything this HTML makes a browser fetch, local or not."""
    found = []
    for tag, attr in SRC_TAGS.items():
        for el in doc.find_all(tag):
            if el.get(attr):
                found.append((f"<{tag} {attr}>", el[attr]))
            for u in srcset_urls(el.get("srcset", "")):
                found.append((f"<{tag} srcset>", u))
            if tag == "video" and el.get("poster"):
                found.append(("<video poster>", el["poster"]))
    for el in doc.find_all("link", href=True):
        rels = {r.lower() for r in (el.get("rel") or [])}
        if rels & LOAD_RELS:
            found.append((f"<link rel={'/'.join(sorted(rels))}>", el["href"]))
    for el in doc.find_all(style=True):
        found += [("style attribute url()", a or b) for a, b in CSS_URL.findall(el["style"])]
    for el in doc.find_all("style"):
        found += [("<style> url()", a or b) for a, b in CSS_URL.findall(el.get_text())]
    for el in doc.find_all("script"):
        if el.get("data-jupyter-widgets-cdn") is not None:
            found.append(("widget loader module folder (data-jupyter-widgets-cdn)", el["data-jupyter-widgets-cdn"]))
        kind = (el.get("type") or "text/javascript").lower()
        text = el.string or ""
        if kind == "application/vnd.jupyter.widget-state+json":
            found += widget_state_loads(text)
        elif "javascript" in kind or kind == "module":
            found += [("URL in an inline script", u) for u in JS_URL.findall(text)]
    return found


def widget_state_loads(text: str) -> list[tuple[str, str]]:
    """Loads hidden in widget outputs (e.g. an <img> in an Output widget's text/html)."""
    found = []
    for model in json.loads(text).get("state", {}).values():
        for out in model.get("state", {}).get("outputs", []) or []:
            html = (out.get("data") or {}).get("text/html")
            if html:
                found += [(f"widget output {w}", u)
                          for w, u in loads_of(BeautifulSoup("".join(html) if isinstance(html, list) else html,
                                                             "html.parser"))]
    return found


def css_loads(css: Path) -> list[tuple[str, str]]:
    return [(f"url() in {css.name}", a or b) for a, b in CSS_URL.findall(css.read_text(errors="replace"))]


def local_target(page: Path, root: Path, url: str, folder: bool = False) -> Path | None:
    """The built file (or `folder`) a relative URL of `page` points to (None for a pure #fragment)."""
    path = unquote(urlsplit(url).path)
    if not path:
        return None
    target = (root / path.lstrip("/")) if path.startswith("/") else (page.parent / path)
    if path.endswith("/") and not folder:
        target = target / "index.html"
    return target.resolve()


def external_loads(root: Path) -> dict[str, list[str]]:
    """page -> ['what: url'] for every non-local load, optional or not."""
    found: dict[str, list[str]] = defaultdict(list)
    css_seen: set[Path] = set()
    for page in pages(root):
        rel = str(page.relative_to(root))
        loads = loads_of(soup(page))
        for what, url in list(loads):
            if what.startswith("<link") and not is_external(url) and urlsplit(url).path.endswith(".css"):
                css = local_target(page, root, url)
                if css and css.is_file() and css not in css_seen:
                    css_seen.add(css)
                    loads += css_loads(css)
        for what, url in loads:
            if is_external(url):
                found[rel].append(f"{what}: {url}")
    return dict(found)


def test_pages_load_nothing_from_outside(built_book, tmp_path_factory):
    every = external_loads(built_book)
    urls = sorted({u.split(": ", 1)[1] for us in every.values() for u in us})
    optional = {u: next((why for pre, why in OPTIONAL.items() if u.startswith(pre)), None) for u in urls}
    report = tmp_path_factory.getbasetemp() / "external_loads.txt"
    report.write_text("".join(f"{u}\t{why or 'NOT OPTIONAL'}\n" for u, why in optional.items()))
    print(f"\n{len(urls)} external URLs a page would load, listed in {report}:")
    print("\n".join(f"  {u}  ({why or 'NOT OPTIONAL'})" for u, why in optional.items()))
    bad = {page: [u for u in us if not optional[u.split(": ", 1)[1]]] for page, us in every.items()}
    bad = {page: us for page, us in bad.items() if us}
    widget_cdn = any("cdn.jsdelivr.net/npm/@jupyter-widgets" in u for us in bad.values() for u in us)
    if widget_cdn and shutil.which("npm") is None:
        pytest.xfail("npm is not installed here: the widget JavaScript fell back to the CDN "
                     "(book/_ext/offline_widgets.py)")
    listing = "\n".join(f"  {page}: {u}" for page, us in sorted(bad.items()) for u in sorted(set(us)))
    assert not bad, ("built pages load from outside the book (add a local copy, or list the URL in "
                     f"OPTIONAL with the reason):\n{listing}")


def widget_pages(root: Path) -> list[Path]:
    return [p for p in pages(root)
            if soup(p).find("script", type="application/vnd.jupyter.widget-view+json")]


def test_widget_javascript_is_local_and_loaded_once(built_book):
    wpages = widget_pages(built_book)
    assert wpages, "no page has an ipywidgets view: the explorers of chapters 1 and 3 are gone"
    problems = []
    for page in wpages:
        rel = str(page.relative_to(built_book))
        srcs = [s["src"] for s in soup(page).find_all("script", src=True)]
        for js in WIDGET_JS:
            hits = [s for s in srcs if urlsplit(s).path.endswith(js)]
            if len(hits) != 1:
                problems.append(f"{rel}: {js} loaded {len(hits)} times ({hits})")
            elif not local_target(page, built_book, hits[0]).is_file():
                problems.append(f"{rel}: {hits[0]} is not in the built book")
        for kind in ("embed-amd.js", "embed.js", "require.min.js", "require.js"):
            n = sum(1 for s in srcs if urlsplit(s).path.endswith("/" + kind))
            if n > 1:
                problems.append(f"{rel}: {kind} loaded {n} times (each widget would render {n} times)")
        views = Counter(json.loads(v.string)["model_id"] for v in
                        soup(page).find_all("script", type="application/vnd.jupyter.widget-view+json"))
        problems += [f"{rel}: widget view {m} is in the page {n} times" for m, n in views.items() if n > 1]
        states = soup(page).find_all("script", type="application/vnd.jupyter.widget-state+json")
        if len(states) != 1:
            problems.append(f"{rel}: {len(states)} widget-state scripts (expected 1)")
        else:
            known = json.loads(states[0].string)["state"]
            problems += [f"{rel}: widget view {m} has no state" for m in views if m not in known]
    if shutil.which("npm") is None and not (built_book / WIDGET_JS[1]).is_file():
        problems = [p for p in problems if "loaded 0 times" not in p]
        if not problems:
            pytest.xfail("npm is not installed here: the widget JavaScript fell back to the CDN "
                         "(book/_ext/offline_widgets.py)")
    assert not problems, "widget JavaScript:\n  " + "\n  ".join(problems)


def links_of(doc: BeautifulSoup) -> list[tuple[str, str]]:
    found = [("<a href>", a["href"]) for a in doc.find_all("a", href=True)]
    found += [(f"<link rel={'/'.join(el.get('rel') or [])}>", el["href"]) for el in doc.find_all("link", href=True)]
    return found + loads_of(doc)


_anchors: dict[Path, set[str]] = {}


def anchors(page: Path) -> set[str]:
    if page not in _anchors:
        doc = soup(page)
        _anchors[page] = {el["id"] for el in doc.find_all(id=True)} | {
            el["name"] for el in doc.find_all("a", attrs={"name": True})}
    return _anchors[page]


def test_internal_links_resolve_and_external_links_are_listed(built_book, tmp_path_factory):
    broken, external = [], set()
    for page in pages(built_book):
        rel = str(page.relative_to(built_book))
        for what, url in links_of(soup(page)):
            url = url.strip()
            if not url or url.lower().startswith(SKIP_SCHEMES):
                continue
            if is_external(url):
                if what == "<a href>":
                    external.add(url)
                continue
            parts = urlsplit(url)
            if parts.scheme:                     # some other scheme (ftp:, irc:, ...)
                external.add(url)
                continue
            folder = what.startswith("widget loader")     # a folder of modules, not a page
            target = local_target(page, built_book, url, folder) or page.resolve()
            if not (target.is_dir() if folder else target.is_file()):
                broken.append(f"{rel}: {what} {url} -> missing {target}")
                continue
            frag = unquote(parts.fragment)
            if frag and target.suffix == ".html" and frag not in anchors(target):
                broken.append(f"{rel}: {what} {url} -> no element with id '{frag}' in {target.name}")
    report = tmp_path_factory.getbasetemp() / "external_links.txt"
    report.write_text("".join(f"{u}\n" for u in sorted(external)))
    print(f"\n{len(external)} external links (not fetched), listed in {report}:")
    print("\n".join(f"  {u}" for u in sorted(external)))
    bad_syntax = [u for u in external if not (urlsplit(u).scheme and urlsplit(u).netloc)
                  and not u.startswith("//")]
    assert not broken, f"{len(broken)} broken internal links:\n  " + "\n  ".join(broken)
    assert not bad_syntax, f"malformed external links: {bad_syntax}"


def chapter_pages(root: Path) -> list[Path]:
    return [root / f"{doc}.html" for doc in chapters()]


def test_chapter_images_have_alt_text(built_book):
    missing = []
    for page in chapter_pages(built_book):
        article = soup(page).select_one("article") or soup(page)
        for img in article.find_all(["img", "svg"]):
            if img.name == "svg":                  # inline SVG: needs a title or aria-label, or aria-hidden
                ok = img.get("aria-hidden") == "true" or img.get("aria-label") or img.find("title")
                ok = ok or img.get("role") == "presentation"
            else:
                alt = (img.get("alt") or "").strip()
                src = img.get("src", "")
                # myst-nb's placeholder alt for an output image is its own file name: not a description
                ok = bool(alt) and alt != src and not alt.endswith(Path(urlsplit(src).path).name or "\0")
            if not ok:
                missing.append(f"{page.relative_to(built_book)}: <{img.name} src={str(img.get('src', ''))[:80]}>")
        for fig in article.find_all("figure"):
            if not fig.find(["img", "svg", "figcaption"]) and not fig.get("aria-label"):
                missing.append(f"{page.relative_to(built_book)}: <figure id={fig.get('id')}> has no image or caption")
    assert not missing, "images without alt text (add :alt: / fig.alt metadata):\n  " + "\n  ".join(missing)


def test_heading_levels_do_not_skip(built_book):
    problems = []
    for page in pages(built_book):
        levels = [int(h.name[1]) for h in soup(page).find_all(re.compile(r"^h[1-6]$"))]
        rel = str(page.relative_to(built_book))
        article = soup(page).select_one("article")
        first = article.find(re.compile(r"^h[1-6]$")) if article else None
        if page in chapter_pages(built_book) and (first is None or first.name != "h1"):
            problems.append(f"{rel}: the article does not start with an h1 ({first and first.name})")
        prev = 0
        for lvl in levels:
            if lvl > prev + 1:
                problems.append(f"{rel}: h{prev} followed by h{lvl}" if prev else f"{rel}: first heading is h{lvl}")
            prev = lvl
    assert not problems, "heading levels skip:\n  " + "\n  ".join(problems)


def test_launch_buttons_follow_the_config_and_thebe_is_off(built_book):
    """The test build sets tests/test_book.py's LAUNCH_EXAMPLE, as a deployment would."""
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["launch_buttons"].get("thebe") is False, "Thebe must be off by default in _config.yml"
    for key in ("jupyterhub_url", "binderhub_url", "colab_url"):
        assert key in config["launch_buttons"], f"_config.yml launch_buttons has no {key} to configure"
    assert {"url", "branch", "path_to_book"} <= set(config["repository"]), "_config.yml repository is incomplete"
    repo = urlsplit(LAUNCH_EXAMPLE["repository"]["url"]).path.strip("/")        # org/name
    notebooks = [d for d in chapters() if "kernelspec:" in (REPO / f"{d}.md").read_text()]
    assert len(notebooks) >= len(ASSIGNMENTS)
    problems = []
    for doc in notebooks:
        page = soup(built_book / f"{doc}.html")
        hrefs = [a["href"] for a in page.select(".dropdown-launch-buttons a[href]")]
        for key, prefix in LAUNCH_EXAMPLE["launch_buttons"].items():
            hits = [h for h in hrefs if h.startswith(prefix)]
            if len(hits) != 1 or repo.split("/")[-1] not in hits[0] or f"{doc}.md" not in hits[0]:
                problems.append(f"{doc}: {key} button {hits or 'missing'}")
        if page.find(attrs={"onclick": re.compile("initThebe")}) or page.find("script", src=re.compile("thebe@")):
            problems.append(f"{doc}: Thebe is on")
    assert not problems, "launch buttons:\n  " + "\n  ".join(problems)


def test_rebuild_with_nothing_changed_is_cached_and_fast(built_book):
    """The same build again (same config, same output) re-reads and re-executes nothing, in <= 30 s."""
    out = built_book.parent.parent
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(REPO), "--path-output", str(out),
           "--config", str(out / "_config.yml"), "-W", "--keep-going", "--builder", "html"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, f"rebuild failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert "0 added, 0 changed, 0 removed" in proc.stdout, f"the rebuild re-read pages:\n{proc.stdout[-3000:]}"
    print(f"\ncached rebuild with nothing changed: {seconds:.1f} s")
    assert seconds <= 30, f"a rebuild with nothing changed took {seconds:.1f} s (target: <= 30 s)"
