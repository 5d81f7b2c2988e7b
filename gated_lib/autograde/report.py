"""Grades out of the gradebook: a CSV for the registrar, and a summary for the instructor.

    export(root, out_csv, names)   one row per (student, assignment): totals, then one column per
                                   graded cell (its score); students who did not submit get a row
                                   with submitted = 0 and zero scores, so no one silently disappears
    summary(root, name, out_dir)   per-question pass rates (CSV + returned rows) and a histogram of
                                   total scores (matplotlib PNG)

A question "passes" for a submission when it earned its full points; for hand-graded cells the
summary counts how many are still waiting for a grader instead.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

from gated_lib.autograde import gradebook as gbk
from gated_lib.autograde.workflow import WorkflowError, _check_names, _check_root, db_url_for

TOTAL_COLUMNS = ["student", "assignment", "submitted", "score", "max_score", "percent",
                 "auto_score", "auto_max_score", "needs_manual_grade"]


def _question_columns(cells_by_assignment: dict[str, list[dict]], names: list[str]) -> list[tuple[str, str, str]]:
    """(assignment, cell, column name); the assignment prefixes the name when there are several."""
    cols = []
    for a in names:
        for c in cells_by_assignment[a]:
            if c["task"] and c["max_score"] == 0:
                continue   # a task cell with no points is the prompt of a written answer
            cols.append((a, c["cell"], c["cell"] if len(names) == 1 else f"{a}/{c['cell']}"))
    return cols


def grade_table(root: str | os.PathLike, names: list[str] | None = None,
                db_url: str | None = None) -> tuple[list[str], list[dict]]:
    """The export as data: (column names, one dict per student and assignment)."""
    root = _check_root(root)
    url = db_url_for(root, db_url)
    names = _check_names(root, names)
    cells = {a: gbk.assignment_cells(url, a) for a in names}   # notebook order (insertion order)
    cols = _question_columns(cells, names)
    rows_by = defaultdict(list)
    for g in gbk.grade_rows(url, names):
        rows_by[(g["student"], g["assignment"])].append(g)
    students = sorted(set(gbk.students(url)) | {s for s, _ in rows_by})
    table = []
    for s in students:
        for a in names:
            gs = rows_by.get((s, a), [])
            by_cell = {g["cell"]: g for g in gs}
            max_total = sum(c["max_score"] for c in cells[a])
            auto = [g for g in gs if g["cell_type"] == "code" and not g["task"]]
            score = sum(g["score"] for g in gs)
            row = {"student": s, "assignment": a, "submitted": int(bool(gs)),
                   "score": score, "max_score": max_total,
                   "percent": round(100 * score / max_total, 2) if max_total else 0.0,
                   "auto_score": sum(g["score"] for g in auto),
                   "auto_max_score": sum(g["max_score"] for g in auto),
                   "needs_manual_grade": int(any(g["needs_manual_grade"] for g in gs))}
            for ca, cell, col in cols:
                if ca == a:
                    row[col] = by_cell[cell]["score"] if cell in by_cell else 0.0
            table.append(row)
    return TOTAL_COLUMNS + [c for _, _, c in cols], table


def export(root: str | os.PathLike, out_csv: str | os.PathLike, names: list[str] | None = None,
           db_url: str | None = None) -> Path:
    """Write the grades CSV (see the module docstring) to `out_csv`; returns its path."""
    columns, table = grade_table(root, names, db_url)
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="")
        w.writeheader()
        for row in table:
            w.writerow({k: (f"{v:g}" if isinstance(v, float) else v) for k, v in row.items()})
    os.replace(tmp, out)
    return out


def question_stats(root: str | os.PathLike, name: str, db_url: str | None = None) -> list[dict]:
    """Per graded cell of `name`: submissions, passed (full points), pass_rate, mean score, ungraded."""
    root = _check_root(root)
    url = db_url_for(root, db_url)
    _check_names(root, [name], "name")
    grades = gbk.grade_rows(url, [name])
    out = []
    for c in gbk.assignment_cells(url, name):
        if c["task"] and c["max_score"] == 0:
            continue
        gs = [g for g in grades if g["cell"] == c["cell"] and g["notebook"] == c["notebook"]]
        n = len(gs)
        graded = [g for g in gs if not g["needs_manual_grade"]]
        passed = sum(1 for g in graded if c["max_score"] > 0 and g["score"] >= c["max_score"])
        out.append({"cell": c["cell"], "max_score": c["max_score"], "submissions": n,
                    "graded": len(graded), "passed": passed,
                    "pass_rate": round(passed / len(graded), 4) if graded else None,
                    "mean_score": round(sum(g["score"] for g in graded) / len(graded), 4) if graded else None,
                    "awaiting_manual_grade": n - len(graded)})
    return out


def summary(root: str | os.PathLike, name: str, out_dir: str | os.PathLike,
            db_url: str | None = None, bins: int = 10) -> dict:
    """Write <out_dir>/<name>_questions.csv and <out_dir>/<name>_scores.png; return both and the data.

    Returns {"questions": question_stats rows, "scores": [total per submission],
    "csv": Path, "png": Path}.
    """
    import matplotlib

    matplotlib.use("Agg")   # no display on a grading server
    import matplotlib.pyplot as plt

    if not isinstance(bins, int) or bins < 1:
        raise WorkflowError(f"bins: expected an integer >= 1, got {bins!r}")
    questions = question_stats(root, name, db_url)
    _, table = grade_table(root, [name], db_url)
    submitted = [r for r in table if r["submitted"]]
    scores = [r["score"] for r in submitted]
    max_total = table[0]["max_score"] if table else 0.0
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"{name}_questions.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(questions[0]) if questions else ["cell"])
        w.writeheader()
        for q in questions:
            w.writerow({k: ("" if v is None else v) for k, v in q.items()})
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    ax1.hist(scores, bins=bins, range=(0, max_total or 1), color="#4C72B0", edgecolor="white")
    ax1.set(xlabel=f"total score (out of {max_total:g})", ylabel="submissions",
            title=f"{name}: {len(scores)} submissions")
    rated = [q for q in questions if q["pass_rate"] is not None]
    ax2.barh([q["cell"] for q in rated][::-1], [100 * q["pass_rate"] for q in rated][::-1], color="#55A868")
    ax2.set(xlim=(0, 100), xlabel="passed (% of graded submissions)", title="per question")
    png = out / f"{name}_scores.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return {"questions": questions, "scores": scores, "csv": csv_path, "png": png}
