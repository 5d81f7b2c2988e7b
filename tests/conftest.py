"""Shared fixtures: the repository's paths and the list of assignments.

Everything an nbgrader test writes (gradebooks, submissions, releases) lives under pytest's
tmp_path, never in the repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gated_lib import course

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = course.assignments(REPO)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def graded_course(tmp_path_factory):
    """A course root in a temp folder with every assignment generated into one gradebook."""
    root = course.make_course_root(tmp_path_factory.mktemp("course"), REPO)
    for name in ASSIGNMENTS:
        course.generate(root, name)
    return root
