"""The gradebook on a real PostgreSQL server (`db_url`), as a large class would run it.

The server comes from tests/pg_server.py's `pg_url` fixture (installed with apt-get when missing,
a throwaway cluster on a free localhost port; the tests FAIL, never skip, when it cannot start).

* release + parallel autograde of two students into PostgreSQL: the solution gets every
  autograded point, the blank release none; the rows are the same as SQLite would hold.
* a re-run records nothing new; a second merge of the same submission (another run on the same
  database) is refused by the transaction, so there is still exactly one row per student.
* export reads the grades back from PostgreSQL.
"""

from __future__ import annotations

import csv
import time

import pytest

from gated_lib import course
from gated_lib.autograde import gradebook as gbk
from gated_lib.autograde import report, workflow
from tests.conftest import REPO
from tests import pg_server

pg_url = pg_server.pg_url   # the fixture: a private PostgreSQL server

A = "02_deriving_lstm"


@pytest.fixture(scope="module")
def pg_course(tmp_path_factory, pg_url):
    root = course.make_course_root(tmp_path_factory.mktemp("pgcourse"), REPO, [A])
    workflow.release(root, [A], db_url=pg_url, validate=False)
    course.submit(root, A, "full", REPO / "solutions" / A / f"{A}.ipynb")
    course.submit(root, A, "blank", REPO / "exercises" / A / f"{A}.ipynb")
    t0 = time.monotonic()
    rep = workflow.autograde(root, A, workers=2, db_url=pg_url)
    return root, pg_url, rep, time.monotonic() - t0


def test_parallel_autograde_into_postgres(pg_course):
    root, url, rep, _ = pg_course
    assert rep.failed == {} and rep.graded == ["blank", "full"], rep
    assert url.startswith("postgresql://")
    assert not (root / "gradebook.db").exists(), "grades went to SQLite, not to PostgreSQL"
    url = gbk.normalize_db_url(url)   # nbgrader's own reader needs the driver spelled out
    full, blank = course.read_grade(url, A, "full"), course.read_grade(url, A, "blank")
    assert full.auto_max_score > 0 and full.auto_score == full.auto_max_score, full
    assert blank.auto_score == 0 and blank.auto_max_score == full.auto_max_score, blank


def test_rerun_and_duplicate_merge_add_nothing(pg_course):
    root, url, _, _ = pg_course
    before = sorted((g["student"], g["cell"], g["score"]) for g in gbk.grade_rows(url, [A]))
    again = workflow.autograde(root, A, workers=2, db_url=url)
    assert again.graded == [] and sorted(again.skipped) == ["blank", "full"]
    # Another run that graded "full" too tries to record it: refused, one copy stays.
    rows = gbk.read_submission(url, A, "full")
    rows["submitted_assignment"][0] = {**rows["submitted_assignment"][0], "id": "x" * 32}
    assert gbk.merge_submission(url, rows, force=False) is False
    after = sorted((g["student"], g["cell"], g["score"]) for g in gbk.grade_rows(url, [A]))
    assert after == before
    assert len(after) == 2 * len(gbk.assignment_cells(url, A))


def test_export_reads_postgres(pg_course, tmp_path):
    root, url, _, _ = pg_course
    out = report.export(root, tmp_path / "grades.csv", [A], db_url=url)
    rows = {r["student"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == {"full", "blank"}
    full = course.read_grade(gbk.normalize_db_url(url), A, "full")
    assert float(rows["full"]["auto_score"]) == full.auto_score > 0
    assert float(rows["blank"]["score"]) == 0
