"""Serve the ipywidgets JavaScript from the book itself, so that the explorers work offline.

myst-nb renders widget views with require.js (cdnjs) and @jupyter-widgets/html-manager's
embed-amd bundle (jsdelivr) by default (its option ``nb_ipywidgets_js``). At build time this
extension fetches both with ``npm pack`` (pinned versions below) into a cache folder,
``_build/.widget_js/`` of the repository, copies them into the book's ``_static/widgets/`` and
points ``nb_ipywidgets_js`` at them. Without npm (or without a registry) it keeps myst-nb's CDN
defaults and says so in the build log: the book still builds.

The embed-amd bundle holds @jupyter-widgets/base, controls and output (every widget the book
uses) and the font files of its icons; only a third-party widget module would be fetched at
run time, from the folder named by the ``data-jupyter-widgets-cdn`` attribute. That attribute is
set, page by page, to the book's own ``_static/widgets/npm/`` so nothing is asked of a CDN.

The files are deliberately *not* put in a ``_static`` folder that Jupyter Book scans: it would
add embed-amd.js to every page on top of myst-nb's per-page script, and each widget would be
rendered twice.

In both cases ``static/widgets/widgets-setup.js`` runs just before the bundle: it points the
bundle's font lookup at ``_static/widgets/`` (local copy only) and gives MathJax 3 the MathJax 2
``Hub.Queue`` that @jupyter-widgets/base calls to typeset widget labels (an uncaught error otherwise).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
HTML_MANAGER = "1.0.15"   # @jupyter-widgets/html-manager for ipywidgets 8 (widget state 2.0)
REQUIREJS = "2.3.8"
CACHE = REPO / "_build" / ".widget_js" / f"html-manager-{HTML_MANAGER}_requirejs-{REQUIREJS}"
STATIC_SUBDIR = "widgets"      # -> _static/widgets/ in the built book
REQUIRE_JS = f"{STATIC_SUBDIR}/require.js"        # Sphinx puts "_static/" in front
EMBED_JS = f"{STATIC_SUBDIR}/embed-amd.js"
SETUP_JS = f"{STATIC_SUBDIR}/widgets-setup.js"    # in book/_ext/static/widgets/
LOCAL_MODULES = f"_static/{STATIC_SUBDIR}/npm/"
_FONT_SUFFIXES = {".woff", ".woff2", ".ttf", ".eot", ".svg"}


def _npm_pack(spec: str, dest: Path) -> Path:
    out = subprocess.run(["npm", "pack", "--silent", "--fetch-retries=1", "--fetch-timeout=30000",
                          "--pack-destination", str(dest), spec],
                         capture_output=True, text=True, timeout=300, check=True, stdin=subprocess.DEVNULL)
    return dest / out.stdout.strip().splitlines()[-1]


def _members(tgz: Path):
    with tarfile.open(tgz) as tar:
        for m in tar.getmembers():
            if m.isfile():
                yield m.name, tar.extractfile(m).read()


def fetch(cache: Path = CACHE) -> Path | None:
    """The folder holding ``widgets/`` (require.js, embed-amd.js and its fonts), or None without npm."""
    target = cache / STATIC_SUBDIR
    if (cache / ".complete").is_file():
        return cache
    if shutil.which("npm") is None:
        logger.info("offline_widgets: npm not found, the widget JavaScript is loaded from a CDN")
        return None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            files: dict[str, bytes] = {}
            for name, data in _members(_npm_pack(f"@jupyter-widgets/html-manager@{HTML_MANAGER}", Path(tmp))):
                p = Path(name)
                if p.parts[:2] == ("package", "dist") and (p.name == "embed-amd.js" or p.suffix in _FONT_SUFFIXES):
                    files[p.name] = data
                elif name == "package/LICENSE":
                    files["LICENSE.html-manager.txt"] = data
            for name, data in _members(_npm_pack(f"requirejs@{REQUIREJS}", Path(tmp))):
                if name == "package/require.js":
                    files["require.js"] = data
            if "embed-amd.js" not in files or "require.js" not in files:
                raise RuntimeError(f"unexpected package contents: {sorted(files)}")
    except (OSError, subprocess.SubprocessError, RuntimeError, tarfile.TarError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        logger.info(f"offline_widgets: npm could not fetch the widget JavaScript ({str(detail).strip()[:300]}); "
                    "it is loaded from a CDN")
        return None
    if target.exists():
        shutil.rmtree(target)
    (target / "npm").mkdir(parents=True)
    (target / "npm" / "README.txt").write_text(
        "Third-party widget modules would be looked up here (the book uses none).\n")
    for name, data in files.items():
        (target / name).write_bytes(data)
    (cache / ".complete").write_text(f"html-manager {HTML_MANAGER}, requirejs {REQUIREJS}\n")
    return cache


def configure(app, config) -> None:
    config.html_static_path = [*config.html_static_path, str(Path(__file__).with_name("static"))]
    cache = None if os.environ.get("BOOK_WIDGETS_CDN") else fetch()   # BOOK_WIDGETS_CDN: force the CDN
    if cache is None:                              # myst-nb's CDN scripts, with the setup in between
        scripts = list(config.nb_ipywidgets_js.items())
        config.nb_ipywidgets_js = dict([*scripts[:-1], (SETUP_JS, {}), *scripts[-1:]])
        return
    config.html_static_path = [*config.html_static_path, str(cache)]
    config.nb_ipywidgets_js = {REQUIRE_JS: {}, SETUP_JS: {"data-html-manager-dist": "./"}, EMBED_JS: {}}
    app.offline_widgets = True


def local_module_folder(app, pagename, templatename, context, doctree) -> None:
    """Point the embed bundle's module loader at the book's own folder (relative to this page)."""
    if not getattr(app, "offline_widgets", False):
        return
    for js in context.get("script_files", []):
        if getattr(js, "filename", None) in (EMBED_JS, f"_static/{EMBED_JS}"):
            js.attributes["data-jupyter-widgets-cdn"] = context["pathto"](LOCAL_MODULES, 1)


def setup(app):
    app.connect("config-inited", configure, priority=400)
    app.connect("html-page-context", local_module_folder, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
