"""Autograding end to end, as an instructor runs it, in a temporary course root.

* The solution notebook, submitted as a student's work, gets every autograded point.
* The untouched student release gets 0 on every autograded cell, and the run does not crash.
"""

from __future__ import annotations

import pytest

from gated_lib import course
from tests.conftest import ASSIGNMENTS, REPO


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_gets_full_marks(name, graded_course):
    course.submit(graded_course, name, "solution-student", REPO / "solutions" / name / f"{name}.ipynb")
    grade = course.autograde(graded_course, name, "solution-student")
    assert grade.auto_max_score > 0, f"{name}: no autograded points recorded"
    failing = {k: v for k, v in grade.cells.items() if v[0] is not None and v[0] < v[1]}
    assert grade.auto_score == grade.auto_max_score, (
        f"{name}: the solution scores {grade.auto_score}/{grade.auto_max_score} on autograded cells; "
        f"cells below full marks (score, max): {failing}")


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_untouched_release_gets_zero(name, graded_course):
    course.submit(graded_course, name, "blank-student", REPO / "exercises" / name / f"{name}.ipynb")
    grade = course.autograde(graded_course, name, "blank-student")
    assert grade.auto_max_score > 0
    earned = {k: v for k, v in grade.cells.items() if v[0]}
    assert grade.auto_score == 0, f"{name}: an untouched release earns points: {earned}"
    assert grade.needs_manual_grade or all(v[0] is not None for v in grade.cells.values())


def test_no_instructor_data_in_the_repository(graded_course):
    """Runs after the autograde tests above: they must have written only under tmp_path."""
    for name in ("gradebook.db", "submitted", "autograded", "feedback"):
        assert not (REPO / name).exists(), f"{name} was written into the repository, not a temp folder"
