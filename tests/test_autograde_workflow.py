"""The instructor workflow end to end through its CLI, `python -m gated_lib.autograde`.

One course root (tmp) with 02_deriving_lstm and three students:
    full    the solution notebook                 -> every autograded point
    wrong   the solution with one wrong answer    -> loses exactly test_answer_keep (a hidden check)
    blank   the untouched student release         -> 0
collected from a folder (full, wrong) and from a zip (blank, flat LMS-style file name).

* release: generate_assignment + validate (the solutions pass, the blank release earns nothing);
* collect: both layouts; an archive entry that would escape its folder is refused, with a reason;
* autograde: 2 workers; the grades above;
* export: one row per student with totals and one column per question, equal to the gradebook;
* summary: pass rates per question and a PNG histogram;
* bad arguments: the message names the argument, what was expected and what came.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gated_lib import course
from gated_lib.autograde import workflow
from tests.conftest import REPO

A = "02_deriving_lstm"
SOLUTION = REPO / "solutions" / A / f"{A}.ipynb"
BLANK = REPO / "exercises" / A / f"{A}.ipynb"


def cli(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "gated_lib.autograde", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=1200, cwd=REPO, env=course.tool_env())
    if check and proc.returncode != 0:
        raise AssertionError(f"autograde CLI {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def wrong_answer_notebook(dest: Path) -> Path:
    """The solution with ANSWER_KEEP missing one true statement: passes the visible (form) test,
    fails the hidden one."""
    nb = json.loads(SOLUTION.read_text())
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "answers_regimes":
            cell["source"] = 'ANSWER_KEEP = {"b", "c"}\nANSWER_RNN = {"a", "b", "d"}\n'
    dest.write_text(json.dumps(nb))
    return dest


def build_graded_course(tmp_path_factory) -> tuple[Path, dict]:
    """The graded course of this module, built once per test session (the feedback tests reuse it).

    Shared through a folder of pytest's base temp dir, so that it works whichever module asks first.
    """
    base = tmp_path_factory.getbasetemp() / "autograde-workflow"
    done = base / "done.json"
    if done.exists():
        return base / "course", json.loads(done.read_text())
    root = course.make_course_root(base / "course", REPO, [A])
    proc = cli(root, "release", A, check=False)
    log = {"release": {"rc": proc.returncode, "out": proc.stdout + proc.stderr}}
    # a folder as an LMS or a colleague hands it over: <student>/<assignment>/<file>
    inbox = base / "inbox"
    for student, nb in (("full", SOLUTION), ("wrong", wrong_answer_notebook(base / "wrong.ipynb"))):
        (inbox / "submitted" / student / A).mkdir(parents=True)
        (inbox / "submitted" / student / A / f"{A}.ipynb").write_bytes(nb.read_bytes())
    (inbox / "submitted" / "full" / A / ".ipynb_checkpoints").mkdir()
    proc = cli(root, "collect", str(inbox))
    log["collect_folder"] = proc.stdout
    # a zip export with flat names, and an entry that tries to escape
    with zipfile.ZipFile(base / "export.zip", "w") as zf:
        zf.writestr(f"blank_{A}_attempt_2026-11-20.ipynb", BLANK.read_bytes())
        zf.writestr(f"../../evil_{A}.ipynb", BLANK.read_bytes())
    proc = cli(root, "collect", str(base / "export.zip"), "--assignment", A)
    log["collect_zip"] = proc.stdout
    proc = cli(root, "autograde", A, "--workers", "2", check=False)
    log["autograde"] = {"rc": proc.returncode, "out": proc.stdout + proc.stderr}
    done.write_text(json.dumps(log))
    return root, log


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return build_graded_course(tmp_path_factory)


def test_release_generates_and_validates(graded):
    root, log = graded
    assert log["release"]["rc"] == 0, log["release"]["out"]
    assert (root / "exercises" / A / f"{A}.ipynb").is_file()
    assert "PROBLEM" not in log["release"]["out"]


def tiny_assignment(root: Path, name: str) -> None:
    """A two-function assignment whose tests are wrong on purpose: one passes on the blank release
    (free points), one fails on the solution."""
    import nbformat

    def meta(**kw):
        return {"nbgrader": {"schema_version": 3, "locked": False, "solution": False, "grade": False, **kw}}

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                                  metadata=meta(solution=True, grade_id="f")),
        nbformat.v4.new_code_cell("assert True  # free points", metadata=meta(grade=True, grade_id="t_free", points=1)),
        nbformat.v4.new_code_cell("assert f(2) == 5, 'f(2) should be 5'",
                                  metadata=meta(grade=True, grade_id="t_wrong", points=1)),
    ]
    (root / "solutions" / name).mkdir(parents=True)
    nbformat.write(nb, root / "solutions" / name / f"{name}.ipynb")


def test_validation_reports_free_points_and_a_failing_solution(tmp_path):
    root = course.make_course_root(tmp_path / "c", REPO, [A])
    tiny_assignment(root, "99_tiny")
    proc = cli(root, "release", "99_tiny", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    problems = [ln for ln in proc.stdout.splitlines() if "PROBLEM" in ln]
    assert any("blank release" in ln and "free points" in ln for ln in problems), proc.stdout
    assert any("solution notebook" in ln and "f(2) should be 5" in ln for ln in problems), proc.stdout
    assert len(problems) == 2, problems


def test_collect_both_layouts_and_refuses_unsafe_entries(graded):
    root, log = graded
    for student in ("full", "wrong", "blank"):
        nbs = list((root / "submitted" / student / A).glob("*.ipynb"))
        assert [p.name for p in nbs] == [f"{A}.ipynb"], (student, nbs)
    assert (root / "submitted" / "blank" / A / f"{A}.ipynb").read_bytes() == BLANK.read_bytes()
    assert not (root / "submitted" / "full" / A / ".ipynb_checkpoints").exists()
    assert "unsafe path" in log["collect_zip"] and "evil" in log["collect_zip"]
    assert not any("evil" in str(p) for p in root.parent.rglob("*evil*")), "a zip entry escaped"


def test_recollect_replaces_the_submission(tmp_path):
    root = course.make_course_root(tmp_path / "c", REPO, [A])
    (tmp_path / "in" / "s1" / A).mkdir(parents=True)
    (tmp_path / "in" / "s1" / A / f"{A}.ipynb").write_text("first")
    (tmp_path / "in" / "s1" / A / "notes.txt").write_text("old extra file")
    workflow.collect(root, tmp_path / "in")
    (tmp_path / "in" / "s1" / A / "notes.txt").unlink()
    (tmp_path / "in" / "s1" / A / f"{A}.ipynb").write_text("second")
    rep = workflow.collect(root, tmp_path / "in")
    assert rep.collected == [("s1", A)]
    assert (root / "submitted" / "s1" / A / f"{A}.ipynb").read_text() == "second"
    assert not (root / "submitted" / "s1" / A / "notes.txt").exists()
    assert sorted(p.name for p in (root / "submitted" / "s1").iterdir()) == [A]   # no temp left


def test_autograde_grades(graded):
    root, log = graded
    assert log["autograde"]["rc"] == 0, log["autograde"]["out"]
    url = course.default_db_url(root)
    full, wrong, blank = (course.read_grade(url, A, s) for s in ("full", "wrong", "blank"))
    assert full.auto_max_score > 0 and full.auto_score == full.auto_max_score, full
    lost = {k: v for k, v in wrong.cells.items() if v[0] is not None and v[0] < full.cells[k][0]}
    assert lost == {"test_answer_keep": (0.0, 1.0)}, wrong.cells
    assert blank.auto_score == 0, blank
    assert not (root / workflow.WORK_DIR).exists(), "the run left its work folder behind"


def test_export_csv(graded, tmp_path):
    root, _ = graded
    out = tmp_path / "grades.csv"
    cli(root, "export", A, "--out", str(out))
    rows = {r["student"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == {"full", "wrong", "blank"}
    url = course.default_db_url(root)
    for student, row in rows.items():
        g = course.read_grade(url, A, student)
        assert float(row["score"]) == g.score and float(row["max_score"]) == g.max_score == 20
        assert float(row["auto_score"]) == g.auto_score
        for cell, (score, _) in g.cells.items():
            if cell.endswith("_task"):
                continue
            assert float(row[cell]) == (score or 0.0), (student, cell)
        assert sum(float(row[c]) for c in g.cells if not c.endswith("_task")) == float(row["score"])
    assert rows["wrong"]["test_answer_keep"] == "0" and rows["full"]["test_answer_keep"] == "1"


def test_summary_pass_rates_and_histogram(graded, tmp_path):
    root, _ = graded
    proc = cli(root, "summary", A, "--out-dir", str(tmp_path))
    rates = {r["cell"]: r for r in csv.DictReader((tmp_path / f"{A}_questions.csv").open())}
    assert rates["test_answer_keep"]["passed"] == "1" and rates["test_answer_keep"]["graded"] == "3"
    assert rates["test_lstm_forward_hidden"]["passed"] == "2"
    assert float(rates["test_lstm_forward"]["pass_rate"]) == pytest.approx(2 / 3, abs=1e-3)
    png = tmp_path / f"{A}_scores.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "test_answer_keep" in proc.stdout


@pytest.mark.parametrize("args, words", [
    (("autograde", "99_nope"), ["name", "99_nope", A]),
    (("autograde", A, "--workers", "0"), ["workers", ">= 1", "0"]),
    (("autograde", A, "--student", "../x"), ["students", "'../x'"]),
    (("collect", "/no/such/folder"), ["source", "/no/such/folder", "missing"]),
    (("feedback", A, "--student", "ghost"), ["students", "ghost"]),
])
def test_bad_arguments_are_named(graded, args, words):
    root, _ = graded
    proc = cli(root, *args, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)


def test_autograde_before_release_says_what_to_do(tmp_path):
    root = course.make_course_root(tmp_path / "c", REPO, [A])
    course.submit(root, A, "s1", BLANK)
    proc = cli(root, "autograde", A, check=False)
    assert proc.returncode == 2 and "release" in proc.stderr and "gradebook" in proc.stderr, proc.stderr
    assert not (root / "gradebook.db").exists(), "an empty gradebook was created"


def test_a_second_run_on_the_same_course_is_refused(graded):
    root, _ = graded
    with workflow._RunLock(root):
        with pytest.raises(workflow.WorkflowError, match="another autograde is running"):
            workflow.autograde(root, A, workers=1, force=True)
