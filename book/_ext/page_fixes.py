"""Small fixes to the pages of the book that a reader's browser would otherwise report as errors.

* Each inline script is emitted once. sphinx-thebe (and sphinx-togglebutton) register their inline
  configuration twice under Jupyter Book 1, and the second ``const THEBE_JS_URL = ...`` is an
  uncaught SyntaxError on every page.
* The light/dark mode defaults to "auto": pydata-sphinx-theme's empty default makes every first visit
  log "Got invalid theme mode" as a console error.

tests/test_browser.py checks that the pages load without console errors.
"""

from __future__ import annotations


def _key(js) -> tuple:
    # an inline script's filename is None or "" depending on who added it
    return getattr(js, "filename", js) or "", tuple(sorted((getattr(js, "attributes", None) or {}).items()))


def fix_page(app, pagename, templatename, context, doctree) -> None:
    context["default_mode"] = context.get("default_mode") or "auto"   # pydata's html_context key
    seen, scripts = set(), []
    for js in context.get("script_files", []):
        if _key(js) not in seen:
            seen.add(_key(js))
            scripts.append(js)
    context["script_files"] = scripts


def setup(app):
    app.connect("html-page-context", fix_page, priority=950)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
