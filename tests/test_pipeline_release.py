"""The student release is exactly what nbgrader generates from solutions/, and leaks nothing.

Covers every assignment in solutions/ automatically: adding solutions/NN_x/NN_x.ipynb is enough.
"""

from __future__ import annotations

import json

import pytest

from gated_lib import course
from tests.conftest import ASSIGNMENTS, REPO

def test_there_is_at_least_one_assignment():
    assert ASSIGNMENTS, "solutions/ holds no assignment (expected solutions/NN_name/NN_name.ipynb)"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_is_a_fresh_generation(name, graded_course):
    diffs = course.diff_release(graded_course / "exercises" / name, REPO / "exercises" / name)
    assert not diffs, (f"exercises/{name} is not what `nbgrader generate_assignment` makes from "
                       f"solutions/{name}; run `make release` and commit. Differences: {diffs}")


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_contains_no_solution_and_no_hidden_test(name):
    source = json.loads((REPO / "solutions" / name / f"{name}.ipynb").read_text())
    secret = course.secret_lines(source)
    assert secret, f"solutions/{name} has no solution region at all: is it an nbgrader source notebook?"
    for nb_path in sorted((REPO / "exercises" / name).glob("*.ipynb")):
        text = nb_path.read_text()
        release = json.loads(text)
        body = "\n".join("".join(c["source"]) for c in release["cells"])
        leaked = course.find_leaks(body, secret)
        assert not leaked, f"{nb_path.relative_to(REPO)} leaks solution/hidden-test text: {leaked[:5]}"
        assert all(not c.get("outputs") for c in release["cells"] if c["cell_type"] == "code"), \
            f"{nb_path.relative_to(REPO)} ships cell outputs (they may show solution results)"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_source_notebook_has_graded_cells(name):
    nb = json.loads((REPO / "solutions" / name / f"{name}.ipynb").read_text())
    meta = [c.get("metadata", {}).get("nbgrader", {}) for c in nb["cells"]]
    tests = [m for m in meta if m.get("grade") and not m.get("solution")]
    written = [m for m in meta if m.get("grade") and m.get("solution")]
    assert tests, f"solutions/{name}: no autograded test cell (nbgrader grade=true, solution=false)"
    ids = [m["grade_id"] for m in meta if "grade_id" in m]
    assert len(ids) == len(set(ids)), f"solutions/{name}: duplicate grade_id in {ids}"
    assert all(m.get("points", 0) > 0 for m in tests + written), f"solutions/{name}: a graded cell has no points"
