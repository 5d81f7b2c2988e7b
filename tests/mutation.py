"""Run an exercise's tests against a deliberately buggy solution (a *mutant*).

A mutant replaces the source of one or more solution cells (by nbgrader grade_id) of the source
notebook, which holds the visible *and* hidden tests. The notebook then runs top to bottom with
errors allowed, and we collect the outcome of every autograded test cell. A good exercise fails at
least one test cell on each mutant, with a message that names the bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]


@dataclass
class CellOutcome:
    grade_id: str
    passed: bool
    error: str          # "ExceptionName: message" of a failing cell, "" otherwise


def source_notebook(name: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "solutions" / name / f"{name}.ipynb", as_version=4)


def cell_source(name: str, grade_id: str) -> str:
    for cell in source_notebook(name).cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return cell.source
    raise KeyError(f"{name}: no cell with grade_id {grade_id!r}")


def edit(source: str, *edits: tuple[str, str]) -> str:
    """`source` with each (old, new) replaced; `old` must occur exactly once, so that a mutant whose
    anchor text was edited away (or became ambiguous) fails loudly instead of testing the solution."""
    for old, new in edits:
        assert source.count(old) == 1, f"the mutant no longer applies: {old!r} is not (once) in the solution cell"
        source = source.replace(old, new)
    return source


def run_mutant(name: str, replacements: dict[str, str], tmp_path: Path) -> dict[str, CellOutcome]:
    """Execute solutions/<name> with the cells named in `replacements` swapped for buggy code.

    Returns the outcome of every autograded test cell, keyed by grade_id.
    """
    nb = source_notebook(name)
    found = set()
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in replacements:
            cell.source = replacements[gid]
            found.add(gid)
    missing = set(replacements) - found
    if missing:
        raise KeyError(f"{name}: no cell with grade_id {sorted(missing)}")
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outcomes = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            text = "; ".join(f"{e['ename']}: {e['evalue']}" for e in errors)
            outcomes[meta["grade_id"]] = CellOutcome(meta["grade_id"], not errors, text)
    return outcomes


def failing(outcomes: dict[str, CellOutcome]) -> dict[str, str]:
    return {gid: o.error for gid, o in outcomes.items() if not o.passed}


def assert_diagnosed(name: str, sources: dict[str, str], run: str, spec: dict, tmp_path: Path) -> dict[str, str]:
    """Run one notebook with several mutants at once and check each is caught and named.

    spec: {grade_id: (edits, test cells that must fail, phrase)}: the edits (see `edit`) turn
    sources[grade_id] into a mutant; every listed test cell must fail, and the first one's message
    must contain the phrase. Returns the failing test cells' messages, for further checks.
    """
    replacements = {gid: edit(sources[gid], *edits) for gid, (edits, _, _) in spec.items()}
    fails = failing(run_mutant(name, replacements, tmp_path))
    for gid, (_, must_fail, phrase) in spec.items():
        for test in must_fail:
            assert test in fails, f"{run}: {test} passes the buggy {gid}"
        assert phrase in fails[must_fail[0]], (
            f"{run}: the message of {must_fail[0]} does not name the bug ({phrase!r}):\n{fails[must_fail[0]][:1200]}")
    return fails

