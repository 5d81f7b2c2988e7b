"""The book builds with -W from scratch (every chapter executed), and leaks nothing to learners.

* `jupyter-book build -W --keep-going` with execution forced succeeds.
* No built file (HTML, page sources, downloads) holds solution code, hidden tests or mark schemes.
* Every chapter that has an exercise links to it as a download, and the download is the student
  release, byte for byte.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gated_lib import course
from tests.conftest import ASSIGNMENTS, REPO

pytestmark = pytest.mark.book

# The test build switches the launch buttons on, as a course deployment would (docs/book.md); the
# repository's _config.yml leaves them empty. Nothing is fetched from these addresses.
LAUNCH_EXAMPLE = {
    "repository": {"url": "https://github.com/example-org/gated-rnn-course", "branch": "main"},
    "launch_buttons": {"jupyterhub_url": "https://hub.example.edu", "binderhub_url": "https://mybinder.org",
                       "colab_url": "https://colab.research.google.com"},
}


def chapters() -> list[str]:
    """Doc names (e.g. 'book/02_deriving_lstm') of every page in _toc.yml, in order."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    docs = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                docs.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return docs


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    # Built once per session, also when other test modules import this fixture (to pytest, each
    # import is a fixture of its own): the result lives in a fixed folder of the session's tmp.
    out = tmp_path_factory.getbasetemp() / "built_book"
    if (out / "build.log").is_file():
        log = (out / "build.log").read_text()
        assert log.startswith("ok"), f"book build failed (earlier in this session):\n{log}"
        return out / "_build" / "html"
    out.mkdir()
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "force"   # tests never trust the cache
    local = config.get("sphinx", {}).get("local_extensions") or {}
    for name, path in local.items():                    # relative to the copied config otherwise
        local[name] = str(REPO / path)
    config["repository"].update(LAUNCH_EXAMPLE["repository"])       # as a deployment sets them
    config["launch_buttons"].update(LAUNCH_EXAMPLE["launch_buttons"])
    cfg = out / "_config.yml"
    cfg.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("jupyter-book")), "build", str(REPO), "--path-output", str(out),
         "--config", str(cfg), "-W", "--keep-going", "--builder", "html"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1800)
    log = f"{'ok' if proc.returncode == 0 else 'failed'}\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    (out / "build.log").write_text(log)
    assert proc.returncode == 0, f"book build failed:\n{log}"
    return out / "_build" / "html"


def test_book_builds_with_warnings_as_errors(built_book):
    for doc in chapters():
        assert (built_book / f"{doc}.html").is_file(), f"{doc}.html was not built"


def test_built_book_contains_no_solution_or_hidden_test(built_book):
    secrets = set()
    for name in ASSIGNMENTS:
        secrets |= course.secret_lines(json.loads((REPO / "solutions" / name / f"{name}.ipynb").read_text()))
    leaks = {}
    for path in built_book.rglob("*"):
        if path.is_file() and path.suffix in {".html", ".ipynb", ".md", ".txt", ".js", ".json", ".py"}:
            text = path.read_text(errors="replace")
            if path.suffix == ".html":
                # highlighted code is split into <span>s and escaped: compare the visible text
                text = html.unescape(re.sub(r"<[^>]+>", "", text))
            found = course.find_leaks(text, secrets)
            if found:
                leaks[str(path.relative_to(built_book))] = found[:3]
    assert not leaks, f"solution or hidden-test text in the built book: {leaks}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_chapter_links_to_its_student_exercise(name, built_book):
    page = built_book / "book" / f"{name}.html"
    assert page.is_file(), f"assignment {name} has no chapter page book/{name}.md in _toc.yml"
    page_html = page.read_text()
    downloads = [p for p in (built_book / "_downloads").rglob(f"{name}.ipynb")]
    assert downloads, f"the book ships no download of {name}.ipynb (use the {{download}} role)"
    release = (REPO / "exercises" / name / f"{name}.ipynb").read_bytes()
    linked = [p for p in downloads if str(p.relative_to(built_book)) in page_html.replace("../", "")]
    assert linked, f"book/{name}.html does not link to its exercise download"
    for p in linked:
        assert p.read_bytes() == release, f"{p.name} offered by book/{name}.html is not the student release"


def test_math_is_served_locally(built_book):
    """The book reads offline: MathJax comes from _static, not from a CDN."""
    html = (built_book / "book" / "02_deriving_lstm.html").read_text()
    assert '_static/mathjax/tex-chtml.js' in html, "MathJax is not loaded from the book's own _static"
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert "cdn.jsdelivr.net/npm/mathjax" not in html, "the page still loads MathJax from a CDN"
