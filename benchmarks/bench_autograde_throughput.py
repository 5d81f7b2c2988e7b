"""Autograding throughput: plain `nbgrader autograde` for a whole class against the parallel workflow.

    python benchmarks/bench_autograde_throughput.py                      # 50 students of 05_cost
    python benchmarks/bench_autograde_throughput.py --students 80 --workers 4 --json out.json
    python benchmarks/bench_autograde_throughput.py --assignment 02_deriving_lstm

A synthetic class of --students submissions of one assignment (05_cost by default: the cheapest to
run, ~14 s a submission against ~16 s for 02_deriving_lstm on the reference machine) is graded
twice, in two temporary course roots made from this repository (removed after):

    sequential  `nbgrader autograde NAME --create --force`: one command for the whole class, as an
                instructor would run it without this project's workflow
    parallel    `gated_lib.autograde.autograde(root, NAME, workers=N)` (N = --workers, default: the
                number of CPU cores)

Both use the repository's nbgrader_config.py, so both run every submission in the same sandbox
(gated_lib/sandbox): the comparison is like for like. The class is a fixed (seeded) mix of full
solutions, blank releases and partially-correct notebooks (each solution cell taken from the source
with probability 1/2). The script checks that the two gradebooks hold the same score for every
(student, cell) and reports submissions per minute for each and the speedup, with the CPU count and
the load average (on a shared machine, compare the rows of one run, not times across runs).
Exit status 1 if the gradebooks differ or a run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gated_lib import course  # noqa: E402
from gated_lib.autograde import gradebook as gbk  # noqa: E402
from gated_lib.autograde import workflow  # noqa: E402

MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*(\n|$)", re.MULTILINE)


def _src(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def _gid(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def make_class(release: dict, solution: dict, n: int, seed: int = 0) -> dict[str, dict]:
    """n notebooks: every 4th a full solution, every 4th (offset 1) blank, the rest partial."""
    rng = random.Random(seed)
    answers = {_gid(c): MARKERS.sub("", _src(c)) for c in solution["cells"]
               if c.get("metadata", {}).get("nbgrader", {}).get("solution") and _gid(c)}
    out = {}
    for i in range(n):
        kind = ("full", "blank", "partial", "partial")[i % 4]
        nb = json.loads(json.dumps(release))
        for cell in nb["cells"]:
            gid = _gid(cell)
            if gid in answers and (kind == "full" or (kind == "partial" and rng.random() < 0.5)):
                cell["source"] = answers[gid]
        out[f"s{i:03d}_{kind}"] = nb
    return out


def scores(db_url: str, name: str) -> dict[tuple[str, str], float | None]:
    return {(g["student"], g["cell"]): g["score"] for g in gbk.grade_rows(db_url, [name])}


def setup(base: Path, tag: str, name: str) -> Path:
    root = course.make_course_root(base / tag, REPO, [name])
    workflow.release(root, [name], validate=False)
    return root


def submit_all(root: Path, name: str, notebooks: dict[str, dict]) -> None:
    for student, nb in notebooks.items():
        dest = root / "submitted" / student / name
        dest.mkdir(parents=True)
        (dest / f"{name}.ipynb").write_text(json.dumps(nb, indent=1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--assignment", default="05_cost")
    p.add_argument("--students", type=int, default=50)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    name = args.assignment
    solution = json.loads((REPO / "solutions" / name / f"{name}.ipynb").read_text())
    base = Path(tempfile.mkdtemp(prefix="gated-bench-autograde-"))
    try:
        root_s, root_p = setup(base, "sequential", name), setup(base, "parallel", name)
        release = json.loads((root_s / "exercises" / name / f"{name}.ipynb").read_text())
        notebooks = make_class(release, solution, args.students)
        for root in (root_s, root_p):
            submit_all(root, name, notebooks)
        res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.node(),
               "cpus": os.cpu_count(), "assignment": name, "students": args.students,
               "workers": args.workers, "load_before": os.getloadavg()}
        print(f"{args.students} submissions of {name}; {os.cpu_count()} CPUs; load {os.getloadavg()}", flush=True)

        t0 = time.monotonic()
        course.nbgrader(["autograde", name, "--create", "--force"], root_s, timeout=6 * 3600)
        res["sequential_s"] = time.monotonic() - t0
        res["load_after_sequential"] = os.getloadavg()
        print(f"sequential nbgrader autograde: {res['sequential_s']:.0f} s; load {os.getloadavg()}", flush=True)

        t0 = time.monotonic()
        rep = workflow.autograde(root_p, name, workers=args.workers, timeout=1800)
        res["parallel_s"] = time.monotonic() - t0
        res["load_after_parallel"] = os.getloadavg()
        print(f"parallel workflow ({args.workers} workers): {res['parallel_s']:.0f} s; load {os.getloadavg()}",
              flush=True)

        seq, par = scores(course.default_db_url(root_s), name), scores(course.default_db_url(root_p), name)
        res["same_scores"] = seq == par and len({s for s, _ in seq}) == args.students
        res["failed"] = rep.failed
        for k in ("sequential", "parallel"):
            res[f"{k}_per_min"] = 60 * args.students / res[f"{k}_s"]
        res["speedup"] = res["sequential_s"] / res["parallel_s"]
        total = {}
        for (student, _), v in par.items():
            total[student] = total.get(student, 0) + (v or 0)
        res["score_spread"] = [min(total.values()), max(total.values())] if total else []
        print(f"sequential {res['sequential_per_min']:.2f}/min, parallel {res['parallel_per_min']:.2f}/min, "
              f"speedup x{res['speedup']:.2f}; same scores in both gradebooks: {res['same_scores']}; "
              f"class scores range {res['score_spread']}")
        if not res["same_scores"]:
            diff = sorted(k for k in set(seq) | set(par) if seq.get(k) != par.get(k))
            print(f"DIFFERENT scores (student, cell): {diff[:20]}")
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
        return 0 if res["same_scores"] and not rep.failed else 1
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
