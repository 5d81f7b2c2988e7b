"""Feedback for students that tells them what failed without giving away hidden tests or mark schemes.

`nbgrader generate_feedback` renders the *autograded* notebook, into which autograde has restored
the hidden tests and the locked task cells (our mark schemes) from the gradebook: students would read
both (nbgrader issue #917). Here the feedback notebook is rebuilt from the autograded one:

    test cell with hidden tests      source: the hidden region removed (what the student saw);
                                     outputs: replaced by one line, "passed", or which check failed
                                     and how (the exception's name and message, never its traceback,
                                     whose frames quote the hidden code)
    test cell without hidden tests   kept as is (the student has that code already)
    any markdown cell                the === MARK SCHEME === region removed
    top of the notebook              a table: every graded cell, its points, and why points were lost

Before anything is written the HTML is checked against the gradebook's own copy of the hidden tests
and mark schemes: a leaked marker or line raises `FeedbackLeak` and nothing is written.

    feedback_for(root, name, student)  -> Path of <root>/feedback/<student>/<name>/<name>.html
    generate(root, name)               -> one HTML per autograded student
"""

from __future__ import annotations

import copy
import html
import os
import re
from pathlib import Path

from gated_lib.autograde import gradebook as gbk
from gated_lib.autograde.workflow import WorkflowError, _check_names, _check_root, db_url_for

HIDDEN = re.compile(r"[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[ \t]*\n?", re.S)
MARK_SCHEME = re.compile(r"[ \t]*=== BEGIN MARK SCHEME ===.*?=== END MARK SCHEME ===[ \t]*\n?", re.S)
_SECRET_BLOCK = re.compile(r"(?:### BEGIN HIDDEN TESTS|=== BEGIN MARK SCHEME ===)(.*?)"
                           r"(?:### END HIDDEN TESTS|=== END MARK SCHEME ===)", re.S)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MAX_MESSAGE = 1500


class FeedbackLeak(RuntimeError):
    """The rendered feedback would show a hidden test or a mark scheme; nothing was written."""


def public_source(source: str) -> str:
    """`source` with its hidden-test and mark-scheme regions (markers included) removed."""
    return MARK_SCHEME.sub("", HIDDEN.sub("", source)).rstrip() + ("\n" if source.endswith("\n") else "")


def secret_lines(sources: list[str], min_len: int = 12) -> set[str]:
    """Lines inside hidden-test and mark-scheme regions that appear nowhere in public sources.

    Lines that are also in a public part (a visible test repeated in the hidden one) are no secret.
    """
    public = {ln.strip() for s in sources for ln in public_source(s).splitlines()}
    found = set()
    for s in sources:
        for m in _SECRET_BLOCK.finditer(s):
            for ln in m.group(1).splitlines():
                ln = ln.strip()
                if len(ln) >= min_len and not ln.startswith("#") and ln not in public:
                    found.add(ln)
    return found


SECRET_MARKERS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS",
                  "=== BEGIN MARK SCHEME ===", "=== END MARK SCHEME ===")


def find_leaks(text: str, secrets: set[str]) -> list[str]:
    """Hidden-test / mark-scheme markers and secret lines found in `text`.

    (Solution markers are not looked for: a student's own code may carry them, as the solution
    notebook does when it is submitted to test the pipeline.)
    """
    return sorted({m for m in SECRET_MARKERS if m in text} | {s for s in secrets if s in text})


def _error_of(cell) -> tuple[str, str] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            msg = _ANSI.sub("", str(out.get("evalue", ""))).strip()
            return str(out.get("ename", "Error")), msg
    return None


def _message(err: tuple[str, str] | None) -> str:
    if err is None:
        return "no error was raised, but the cell earned no points (it wrote to stderr?)"
    ename, msg = err
    if len(msg) > MAX_MESSAGE:
        msg = msg[:MAX_MESSAGE] + " ..."
    return f"{ename}: {msg}" if msg else ename


def _md_escape(text: str) -> str:
    """Plain text for a markdown table cell (no HTML, no pipes, no newlines)."""
    return html.escape(text).replace("|", "&#124;").replace("\n", " ").replace("$", "&#36;")


def feedback_notebook(autograded_nb, grades: list[dict], cells: list[dict], student: str, name: str):
    """Build the feedback notebook (nbformat node) from the autograded one.

    grades: this submission's rows of `gradebook.grade_rows`; cells: `gradebook.assignment_cells`
    (the gradebook's sources tell which cells carry hidden tests).
    """
    import nbformat

    nb = copy.deepcopy(autograded_nb)
    hidden_ids = {c["cell"] for c in cells if HIDDEN.search(c["source"] or "")}
    by_cell = {g["cell"]: g for g in grades}
    status: dict[str, str] = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        gid = meta.get("grade_id")
        src = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        if cell.cell_type == "markdown":
            cell.source = public_source(src)
        if cell.cell_type != "code":
            continue
        has_hidden = gid in hidden_ids or bool(HIDDEN.search(src))
        cell.source = public_source(src)
        g = by_cell.get(gid) if meta.get("grade") else None
        if g is not None and not g["task"]:
            full = g["max_score"] > 0 and g["score"] >= g["max_score"]
            err = _error_of(cell)
            status[gid] = "passed" if full else _message(err)
        if has_hidden:
            # Outputs of a cell with hidden tests may quote them (a traceback's frames do), so they
            # are replaced by one line that says what happened.
            if gid in status and status[gid] != "passed":
                text = f"This cell also runs hidden checks. Failed: {status[gid]}\n"
            else:
                text = "This cell also runs hidden checks: all passed.\n"
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
            cell.execution_count = None

    total = sum(g["score"] for g in grades)
    max_total = sum(g["max_score"] for g in grades)
    rows = ["| cell | points | result |", "|---|---|---|"]
    for c in cells:
        g = by_cell.get(c["cell"])
        if g is None or (g["task"] and g["max_score"] == 0):
            continue
        if g["cell_type"] == "code":
            result = status.get(c["cell"], "not run")
            if c["cell"] in hidden_ids and result != "passed":
                result = "hidden check failed: " + result
        elif g["manual_score"] is not None:
            result = "graded by hand"
        else:
            result = "awaiting grading by hand"
        if g.get("manual_comment"):
            result += f" (comment: {g['manual_comment']})"
        rows.append(f"| `{c['cell']}` | {g['score']:g} / {g['max_score']:g} | {_md_escape(result)} |")
    head = (f"# Feedback: {_md_escape(name)}\n\nStudent: **{_md_escape(student)}**. "
            f"Score: **{total:g} / {max_total:g}**.\n\n"
            "Hidden checks rerun your functions on other sizes, dtypes and edge cases; when one "
            "fails, the table says which check and its message (the check's code stays hidden).\n\n"
            + "\n".join(rows) + "\n")
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(head))
    return nb


def render_html(nb) -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nb)
    return body


def feedback_for(root: str | os.PathLike, name: str, student: str, db_url: str | None = None) -> Path:
    """Write <root>/feedback/<student>/<name>/<name>.html for one autograded submission.

    Inputs: the autograded notebook(s) <root>/autograded/<student>/<name>/*.ipynb and the grades
    in the gradebook. Raises FeedbackLeak (writing nothing) if a hidden line would be shown.
    """
    import nbformat

    root = _check_root(root)
    url = db_url_for(root, db_url)
    src_dir = root / "autograded" / student / name
    notebooks = sorted(src_dir.glob("*.ipynb"))
    if not notebooks:
        raise WorkflowError(f"student: no autograded notebook of {name} for {student!r} in {src_dir}; "
                            f"autograde first")
    cells = gbk.assignment_cells(url, name)
    secrets = secret_lines(gbk.source_cells(url, name))
    grades_all = [g for g in gbk.grade_rows(url, [name]) if g["student"] == student]
    if not grades_all:
        raise WorkflowError(f"student: no grades of {name} for {student!r} in the gradebook; autograde first")
    dest = root / "feedback" / student / name
    dest.mkdir(parents=True, exist_ok=True)
    out = None
    for path in notebooks:
        nb_name = path.stem
        grades = [g for g in grades_all if g["notebook"] == nb_name]
        nb = feedback_notebook(nbformat.read(path, as_version=4), grades,
                               [c for c in cells if c["notebook"] == nb_name], student, name)
        page = render_html(nb)
        leaks = find_leaks(html.unescape(page), secrets) + find_leaks(page, secrets)
        if leaks:
            raise FeedbackLeak(f"feedback of {student}/{name} would reveal {sorted(set(leaks))[:3]}; "
                               f"not written")
        out = dest / f"{nb_name}.html"
        tmp = out.with_suffix(".html.tmp")
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out)   # a reader never sees half a page
    return out


def generate(root: str | os.PathLike, name: str, students: list[str] | None = None,
             db_url: str | None = None) -> list[Path]:
    """Feedback for every autograded student of `name` (or those listed); returns the HTML paths."""
    root = _check_root(root)
    _check_names(root, [name], "name")
    url = db_url_for(root, db_url)
    graded = sorted({g["student"] for g in gbk.grade_rows(url, [name])})
    if students:
        missing = sorted(set(students) - set(graded))
        if missing:
            raise WorkflowError(f"students: not autograded for {name}: {missing}")
        graded = sorted(set(students))
    return [feedback_for(root, name, s, url) for s in graded]
