"""Command line of the instructor workflow: `python -m gated_lib.autograde COMMAND ...`.

Run from the course root (the repository root), or pass --root. Every command takes --db-url
(default: sqlite:///<root>/gradebook.db; e.g. postgresql://grader@localhost:5432/gradebook).

    release   [NAME ...] [--no-validate]             generate the student release, record it, validate
    collect   SOURCE [--assignment NAME] [--pattern RE]   folder <student>/<assignment>/ or a .zip
    autograde [NAME ...] [--workers N] [--student S ...] [--force] [--timeout SEC]
              [--executor local|dask] [--scheduler tcp://HOST:8786]   one Dask task per student
    feedback  NAME [--student S ...]                 feedback/<student>/<NAME>/<NAME>.html
    export    [NAME ...] [--out grades.csv]          totals and one column per graded cell
    summary   NAME [--out-dir reports]               pass rates (CSV) and score histogram (PNG)

Exit status: 0 on success, 1 when a step finished with problems (a student failed to grade, a
release did not validate), 2 on a bad argument.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gated_lib import course
from gated_lib.autograde import feedback as fb
from gated_lib.autograde import gradebook as gbk
from gated_lib.autograde import report, workflow


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gated_lib.autograde", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=".", help="the course root (default: the current folder)")
    p.add_argument("--db-url", default=None, help="gradebook URL (default: sqlite:///<root>/gradebook.db)")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("release", help="generate_assignment into the gradebook and validate")
    r.add_argument("names", nargs="*", help="assignments (default: all in solutions/)")
    r.add_argument("--no-validate", action="store_true", help="skip running the notebooks")

    c = sub.add_parser("collect", help="copy submissions into submitted/")
    c.add_argument("source", help="a folder <student>/<assignment>/... or a .zip")
    c.add_argument("--assignment", default=None, help="the assignment of flat files in a zip")
    c.add_argument("--pattern", default=workflow.FLAT_PATTERN,
                   help="regex with a (?P<student>...) group for flat file names "
                        "(default: %(default)s)")

    a = sub.add_parser("autograde", help="autograde in parallel; re-runs finish what is missing")
    a.add_argument("names", nargs="*", help="assignments (default: every one with submissions)")
    a.add_argument("--workers", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)),
                   help="parallel nbgrader processes (default: %(default)s)")
    a.add_argument("--student", action="append", default=None, help="only this student (repeatable)")
    a.add_argument("--force", action="store_true", help="regrade students already recorded")
    a.add_argument("--timeout", type=float, default=1800, help="seconds per student (default: 1800)")
    a.add_argument("--executor", choices=workflow.EXECUTORS, default=None,
                   help="local: worker threads on this machine (default); dask: one Dask task per "
                        "student, on --scheduler or on a LocalCluster of --workers processes")
    a.add_argument("--scheduler", default=None,
                   help="Dask scheduler address, e.g. tcp://host:8786 (implies --executor dask)")

    f = sub.add_parser("feedback", help="one HTML per student, hidden tests not shown")
    f.add_argument("name")
    f.add_argument("--student", action="append", default=None, help="only this student (repeatable)")

    e = sub.add_parser("export", help="grades CSV")
    e.add_argument("names", nargs="*", help="assignments (default: all)")
    e.add_argument("--out", default="grades.csv", help="output CSV (default: grades.csv in the root)")

    s = sub.add_parser("summary", help="pass rates per question and a score histogram")
    s.add_argument("name")
    s.add_argument("--out-dir", default="reports", help="output folder (default: reports/ in the root)")
    s.add_argument("--bins", type=int, default=10)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()

    def under_root(p: str) -> Path:
        return Path(p) if Path(p).is_absolute() else root / p

    try:
        workflow._check_root(root)
        if args.cmd == "release":
            bad = 0
            for rep in workflow.release(root, args.names or None, args.db_url, validate=not args.no_validate):
                print(f"released {rep.name} -> {rep.release_dir}")
                for problem in rep.problems:
                    print(f"  PROBLEM {problem}")
                bad += len(rep.problems)
            return 1 if bad else 0
        if args.cmd == "collect":
            rep = workflow.collect(root, args.source, args.assignment, args.pattern)
            for student, name in rep.collected:
                print(f"collected {student}/{name}")
            for why in rep.skipped:
                print(f"  skipped {why}")
            print(f"{len(rep.collected)} submission(s) collected, {len(rep.skipped)} entr(y/ies) skipped")
            return 0
        if args.cmd == "autograde":
            names = args.names or [n for n in course.assignments(root) if workflow.submitted_students(root, n)]
            if not names:
                raise workflow.WorkflowError(f"names: no submissions under {root / 'submitted'} "
                                             f"(expected <student>/<assignment>/*.ipynb); collect first")
            failed = 0
            for name in names:
                executor = args.executor or ("dask" if args.scheduler else "local")
                rep = workflow.autograde(root, name, args.student, args.workers, args.db_url,
                                         args.force, args.timeout, log=lambda line: print(line, flush=True),
                                         executor=executor, scheduler=args.scheduler)
                print(f"{name}: {len(rep.graded)} graded, {len(rep.skipped)} already recorded, "
                      f"{len(rep.failed)} failed, in {rep.seconds:.1f} s")
                for student, why in sorted(rep.failed.items()):
                    print(f"  FAILED {student}: {why}")
                failed += len(rep.failed)
            if failed:
                print("Failed students are not recorded; fix the cause and run the same command again.")
            return 1 if failed else 0
        if args.cmd == "feedback":
            for path in fb.generate(root, args.name, args.student, args.db_url):
                print(f"feedback {path}")
            return 0
        if args.cmd == "export":
            out = report.export(root, under_root(args.out), args.names or None, args.db_url)
            print(f"grades written to {out}")
            return 0
        if args.cmd == "summary":
            res = report.summary(root, args.name, under_root(args.out_dir), args.db_url, args.bins)
            print(f"{'cell':32s} {'max':>5s} {'passed':>8s} {'rate':>6s} {'awaiting hand grading':>22s}")
            for q in res["questions"]:
                rate = "-" if q["pass_rate"] is None else f"{100 * q['pass_rate']:.0f}%"
                print(f"{q['cell']:32s} {q['max_score']:5g} {q['passed']:>4d}/{q['graded']:<3d} "
                      f"{rate:>6s} {q['awaiting_manual_grade']:>22d}")
            print(f"wrote {res['csv']} and {res['png']}")
            return 0
    except (workflow.WorkflowError, gbk.GradebookError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)   # a bad argument or a missing step: say which
        return 2
    except (fb.FeedbackLeak, course.CourseError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
