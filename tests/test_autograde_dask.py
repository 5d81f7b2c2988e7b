"""Autograde on Dask distributed into a shared PostgreSQL gradebook (`executor="dask"`).

A class of three (full solution, blank release, half the answers) of 05_cost, the cheapest
assignment to grade, is released into a private PostgreSQL server (tests/pg_server.py) and graded
through the CLI with `--scheduler` pointing at a distributed.LocalCluster of 2 worker processes
(what an instructor does with a real `dask scheduler`); the same class is graded by the local
workflow into SQLite for reference. Then:

* every student is graded, and the grade of every (student, cell) equals the local workflow's; the
  full solution has every autograded point, the blank release none, the half one some;
* the autograded notebooks reached <root>/autograded/ (the workers have no access to the course
  root: the files travel back with the task), without kernel litter, and no work folder is left;
* a re-run records nothing; a forced regrade of one student through a LocalCluster that the
  workflow starts itself keeps one submission per student and the same scores;
* a scheduler without executor="dask" is refused.
"""

from __future__ import annotations

import json
import re

import pytest

from gated_lib import course
from gated_lib.autograde import gradebook as gbk
from gated_lib.autograde import workflow
from gated_lib.autograde.__main__ import main as cli
from tests import pg_server
from tests.conftest import REPO

pg_url = pg_server.pg_url   # the fixture: a private PostgreSQL server

A = "05_cost"
STUDENTS = ["blank", "full", "half"]
MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*(\n|$)", re.MULTILINE)


def _gid(cell):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _half(release: dict, solution: dict) -> dict:
    """The release with every other solution cell answered from the source notebook."""
    answers = {_gid(c): MARKERS.sub("", "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
               for c in solution["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    nb = json.loads(json.dumps(release))
    for i, cell in enumerate(c for c in nb["cells"] if _gid(c) in answers):
        if i % 2 == 0:
            cell["source"] = answers[_gid(cell)]
    return nb


def _make_class(root, tmp):
    release = json.loads((root / "exercises" / A / f"{A}.ipynb").read_text())
    solution = json.loads((REPO / "solutions" / A / f"{A}.ipynb").read_text())
    half = tmp / "half.ipynb"
    half.write_text(json.dumps(_half(release, solution)))
    course.submit(root, A, "full", REPO / "solutions" / A / f"{A}.ipynb")
    course.submit(root, A, "blank", root / "exercises" / A / f"{A}.ipynb")
    course.submit(root, A, "half", half)


def _scores(url):
    return {(g["student"], g["cell"]): g["score"] for g in gbk.grade_rows(url, [A])}


@pytest.fixture(scope="module")
def graded(tmp_path_factory, pg_url):
    import dask
    from distributed import LocalCluster

    tmp = tmp_path_factory.mktemp("daskcourse")
    ref = course.make_course_root(tmp / "local", REPO, [A])
    workflow.release(ref, [A], validate=False)
    _make_class(ref, tmp)
    local = workflow.autograde(ref, A, workers=2)

    root = course.make_course_root(tmp / "dask", REPO, [A])
    workflow.release(root, [A], db_url=pg_url, validate=False)
    _make_class(root, tmp)
    scratch = str(tmp / "dask-scratch")   # the scheduler's and workers' scratch, not /tmp/dask-scratch-space
    with dask.config.set({"temporary-directory": scratch}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                         local_directory=scratch) as cluster:
        rc = cli(["--root", str(root), "--db-url", pg_url, "autograde", A, "--scheduler", cluster.scheduler_address])
    return dict(root=root, url=pg_url, rc=rc, ref=ref, local=local)


def test_dask_grades_equal_local_workflow(graded):
    assert graded["local"].failed == {} and graded["local"].graded == STUDENTS, graded["local"]
    assert graded["rc"] == 0
    root, url = graded["root"], graded["url"]
    assert not (root / "gradebook.db").exists(), "grades went to SQLite, not to PostgreSQL"
    dask_scores, local_scores = _scores(url), _scores(course.default_db_url(graded["ref"]))
    assert {s for s, _ in dask_scores} == set(STUDENTS)
    assert dask_scores == local_scores
    grades = {s: course.read_grade(gbk.normalize_db_url(url), A, s) for s in STUDENTS}
    assert grades["full"].auto_max_score > 0 and grades["full"].auto_score == grades["full"].auto_max_score
    assert grades["blank"].auto_score == 0
    assert 0 < grades["half"].auto_score < grades["full"].auto_score
    for s in STUDENTS:
        folder = root / "autograded" / s / A
        nb = json.loads((folder / f"{A}.ipynb").read_text())
        assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), s
        names = {p.relative_to(folder).parts[0] for p in folder.rglob("*")}
        assert not names & set(workflow.KERNEL_LITTER), names
    assert not (root / workflow.WORK_DIR).exists()


def test_dask_rerun_is_idempotent(graded):
    root, url = graded["root"], graded["url"]
    before = sorted(_scores(url).items())
    again = workflow.autograde(root, A, workers=2, db_url=url, executor="dask")
    assert again.graded == [] and sorted(again.skipped) == STUDENTS and again.failed == {}
    forced = workflow.autograde(root, A, students=["half"], workers=1, db_url=url, force=True,
                                executor="dask")
    assert forced.failed == {} and forced.graded == ["half"], forced
    assert sorted(_scores(url).items()) == before
    assert sorted(gbk.graded_students(url, A)) == STUDENTS
    assert len(gbk.grade_rows(url, [A])) == len(STUDENTS) * len(gbk.assignment_cells(url, A))


def test_scheduler_needs_dask_executor(graded):
    with pytest.raises(workflow.WorkflowError, match="scheduler"):
        workflow.autograde(graded["root"], A, db_url=graded["url"], scheduler="tcp://127.0.0.1:1")
    with pytest.raises(workflow.WorkflowError, match="executor"):
        workflow.autograde(graded["root"], A, db_url=graded["url"], executor="ray")
