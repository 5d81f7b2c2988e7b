"""Parallel autograde loses nothing: no grade lost, none duplicated, re-runs idempotent, crashes safe.

* 3 students, 2 workers: each graded right, exactly one submission row each; a re-run grades
  nobody and changes no row and no file; --force of one student keeps the grader's manual score.
* kill -9 of one worker (its `nbgrader autograde` process) fails that student only, and kill -9 of
  the whole run (os.killpg) mid-way loses no grade already recorded; the re-run grades exactly the
  students that are missing and leaves the others untouched; no work folder or staged file remains.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gated_lib import course
from gated_lib.autograde import gradebook as gbk
from gated_lib.autograde import workflow
from tests.conftest import REPO

A = "02_deriving_lstm"
SOLUTION = REPO / "solutions" / A / f"{A}.ipynb"
BLANK = REPO / "exercises" / A / f"{A}.ipynb"


def setup_course(root: Path, students: dict[str, Path]) -> Path:
    course.make_course_root(root, REPO, [A])
    workflow.release(root, [A], validate=False)
    for student, nb in students.items():
        course.submit(root, A, student, nb)
    return root


def db_rows(root: Path) -> dict[str, list]:
    """Every row of the submission tables, for exact before/after comparisons and counting."""
    eng = create_engine(course.default_db_url(root))
    with eng.connect() as conn:
        out = {t: sorted(tuple(r) for r in conn.execute(text(f"SELECT * FROM {t}")))
               for t in ("submitted_assignment", "submitted_notebook", "grade", "comment")}
    eng.dispose()
    return out


def check_grades(root: Path, expected_full: set[str], expected_blank: set[str]) -> None:
    url = course.default_db_url(root)
    rows = db_rows(root)
    students = [r[2] for r in rows["submitted_assignment"]]
    assert sorted(students) == sorted(expected_full | expected_blank), "a grade is lost or duplicated"
    n_cells = len(gbk.assignment_cells(url, A))
    assert len(rows["grade"]) == n_cells * len(students), "grade rows lost or duplicated"
    for s in expected_full:
        g = course.read_grade(url, A, s)
        assert g.auto_max_score > 0 and g.auto_score == g.auto_max_score, g
    for s in expected_blank:
        assert course.read_grade(url, A, s).auto_score == 0
    graded_dirs = sorted(p.parent.name for p in (root / "autograded").glob(f"*/{A}"))
    assert graded_dirs == sorted(students)
    leftovers = [p for p in (root / "autograded").rglob(".*")] + list(root.glob(workflow.WORK_DIR))
    assert not leftovers, f"temporary files left: {leftovers}"


def test_parallel_run_then_idempotent_rerun_and_force_keeps_manual_grades(tmp_path):
    root = setup_course(tmp_path / "course", {"ann": SOLUTION, "bob": BLANK, "cy": SOLUTION})
    rep = workflow.autograde(root, A, workers=2)
    assert rep.failed == {} and rep.graded == ["ann", "bob", "cy"]
    check_grades(root, {"ann", "cy"}, {"bob"})

    before = db_rows(root)
    mtimes = {p: p.stat().st_mtime_ns for p in (root / "autograded").rglob("*.ipynb")}
    again = workflow.autograde(root, A, workers=2)
    assert again.graded == [] and again.skipped == ["ann", "bob", "cy"] and again.failed == {}
    assert db_rows(root) == before
    assert {p: p.stat().st_mtime_ns for p in (root / "autograded").rglob("*.ipynb")} == mtimes

    # A grader marks ann's written answer; a forced regrade of ann must keep it.
    from nbgrader.api import Gradebook

    url = course.default_db_url(root)
    with Gradebook(url, course_id="gated-rnns") as gb:
        g = gb.find_grade("written_forget_gate", A, A, "ann")
        g.manual_score = 2.5
        gb.db.commit()
    forced = workflow.autograde(root, A, students=["ann"], workers=1, force=True)
    assert forced.graded == ["ann"]
    grade = course.read_grade(url, A, "ann")
    assert grade.cells["written_forget_gate"] == (2.5, 3.0)
    assert grade.auto_score == grade.auto_max_score
    check_grades(root, {"ann", "cy"}, {"bob"})


def _workers_of(root: Path) -> dict[int, str]:
    """pid -> student of the `nbgrader autograde` processes working for this course root."""
    found = {}
    marker = f"--CourseDirectory.root={root / workflow.WORK_DIR}"
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv]
        if "autograde" in args and any(a.startswith(marker) for a in args):
            student = next((a.split("=", 1)[1] for a in args if a.startswith("--student=")), "?")
            found[int(d.name)] = student
    return found


def test_kill_worker_and_kill_whole_run_then_rerun_finishes(tmp_path):
    students = {"s1": SOLUTION, "s2": BLANK, "s3": SOLUTION, "s4": BLANK}
    root = setup_course(tmp_path / "course", students)
    url = course.default_db_url(root)
    run = subprocess.Popen([sys.executable, "-m", "gated_lib.autograde", "--root", str(root),
                            "autograde", A, "--workers", "2"], cwd=REPO, env=course.tool_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)   # its own process group, for os.killpg
    killed_student = None
    recorded: set[str] = set()
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and run.poll() is None:
            workers = _workers_of(root)
            if killed_student is None and workers:
                pid, killed_student = sorted(workers.items())[0]
                time.sleep(1.0)           # let it start its kernel: a worker killed mid-work
                os.kill(pid, signal.SIGKILL)
            recorded = gbk.graded_students(url, A) if (root / "gradebook.db").exists() else set()
            if killed_student and recorded:
                os.killpg(run.pid, signal.SIGKILL)   # the whole run, mid-way
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"the run ended or timed out before it could be killed:\n{run.communicate()[0]}")
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == -signal.SIGKILL
    assert killed_student in students
    after_kill = gbk.graded_students(url, A)
    assert recorded <= after_kill and killed_student not in after_kill
    assert len(after_kill) < len(students), "everything finished before the kill: nothing tested"
    kept = db_rows(root)
    for s in after_kill:   # what was recorded is complete: one submission, all its grades
        g = course.read_grade(url, A, s)
        assert g.auto_max_score > 0

    time.sleep(1.0)   # orphaned kernels notice their parent died
    rep = workflow.autograde(root, A, workers=2)
    assert rep.failed == {}
    assert sorted(rep.graded) == sorted(set(students) - after_kill)
    assert sorted(rep.skipped) == sorted(after_kill)
    final = db_rows(root)
    for table in kept:   # rows recorded before the crash are still there, unchanged
        assert set(kept[table]) <= set(final[table]), table
    check_grades(root, {"s1", "s3"}, {"s2", "s4"})
