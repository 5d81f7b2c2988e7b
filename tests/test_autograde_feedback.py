"""Feedback that says what failed without revealing hidden tests or mark schemes (nbgrader #917).

Reuses the graded course of test_autograde_workflow (full / wrong / blank on 02_deriving_lstm).

* The autograded notebooks DO contain the hidden tests and the mark scheme (so the checks below
  test something real), and no feedback page contains any of their lines or markers.
* "wrong" is told which hidden check failed and how (the GradingFailure message), "blank" gets
  the NotImplementedError of each check, "full" sees every check passed and its score.
* A feedback page that would leak (a hidden line in an output) is refused and not written.
"""

from __future__ import annotations

import html
import json
import re
import shutil

import pytest

from gated_lib import course
from gated_lib.autograde import feedback as fb
from tests.conftest import REPO
from tests.test_autograde_workflow import A, build_graded_course, cli


@pytest.fixture(scope="module")
def with_feedback(tmp_path_factory):
    root, log = build_graded_course(tmp_path_factory)
    proc = cli(root, "feedback", A)
    return root, proc.stdout


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def secrets_of_source() -> set[str]:
    nb = json.loads((REPO / "solutions" / A / f"{A}.ipynb").read_text())
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in nb["cells"]]
    return fb.secret_lines(sources)


def test_one_page_per_student(with_feedback):
    root, out = with_feedback
    for student in ("full", "wrong", "blank"):
        assert (root / "feedback" / student / A / f"{A}.html").is_file(), out


def test_no_hidden_test_or_mark_scheme_in_feedback(with_feedback):
    root, _ = with_feedback
    secrets = secrets_of_source()
    assert any("seed=20260202" in s for s in secrets) and any("expected=" in s for s in secrets)
    graded_nb = (root / "autograded" / "wrong" / A / f"{A}.ipynb").read_text()
    assert "### BEGIN HIDDEN TESTS" in graded_nb and "=== BEGIN MARK SCHEME ===" in graded_nb, \
        "the autograded notebook no longer carries the secrets: this test would prove nothing"
    for student in ("full", "wrong", "blank"):
        page = (root / "feedback" / student / A / f"{A}.html").read_text()
        for view in (page, html.unescape(page), text_of(page)):
            leaks = fb.find_leaks(view, secrets)
            assert not leaks, f"{student}'s feedback reveals {leaks[:3]}"
            assert "seed=20260202" not in view and "Mark scheme (3 points" not in view


def test_feedback_says_which_hidden_check_failed_and_how(with_feedback):
    root, _ = with_feedback
    wrong = text_of((root / "feedback" / "wrong" / A / f"{A}.html").read_text())
    assert "Score: 16 / 20" in " ".join(wrong.split()), wrong[:2000]
    row = re.search(r"test_answer_keep\s+0 / 1\s+(.{0,300})", wrong)
    assert row, wrong[:3000]
    assert "hidden check failed" in row.group(1)
    assert "GradingFailure" in row.group(1) and "4 of the 5 statements" in row.group(1)
    blank = " ".join(text_of((root / "feedback" / "blank" / A / f"{A}.html").read_text()).split())
    assert re.search(r"test_lstm_cell_forward_hidden 0 / 3 hidden check failed: GradingFailure: "
                     r"lstm_cell_forward is not implemented yet", blank), blank[:3000]
    full = " ".join(text_of((root / "feedback" / "full" / A / f"{A}.html").read_text()).split())
    assert "Score: 17 / 20" in full and "hidden check failed" not in full
    assert "written_forget_gate 0 / 3 awaiting grading by hand" in full


def test_a_leaking_page_is_refused(with_feedback, tmp_path):
    root, _ = with_feedback
    copy = tmp_path / "course"
    shutil.copytree(root, copy)
    hidden_line = sorted(s for s in secrets_of_source() if "seed=20260202" in s)[0]
    path = copy / "autograded" / "wrong" / A / f"{A}.ipynb"
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "test_lstm_cell_forward":
            # a visible test cell (kept as is) whose output happens to print hidden code
            cell["outputs"].append({"output_type": "stream", "name": "stdout", "text": hidden_line + "\n"})
    path.write_text(json.dumps(nb))
    target = copy / "feedback" / "wrong" / A / f"{A}.html"
    target.unlink()
    with pytest.raises(fb.FeedbackLeak, match="wrong"):
        fb.feedback_for(copy, A, "wrong", course.default_db_url(copy))
    assert not target.exists()
