"""Time the book build as `make book` does it: a first build (every chapter executed) and rebuilds.

    python benchmarks/bench_book_build.py                 # into a temporary folder, removed after
    python benchmarks/bench_book_build.py --out /tmp/bk   # keep the build there
    python benchmarks/bench_book_build.py --json out.json
    python benchmarks/bench_book_build.py --touch book/intro.md   # also time a one-page rebuild

Runs `jupyter-book build . -W --keep-going` with the repository's _config.yml (execution mode
"cache") into a fresh ``--path-output``, so the repository's own _build is never touched:

    full      a fresh output folder: every chapter is executed and the execution cache filled
    cached    the same build again with nothing changed: nothing is read or executed (target <= 30 s)
    one page  with --touch PAGE only: PAGE's modification time is bumped (its text is unchanged), so
              that page alone is re-read, from the execution cache (what a writer sees while editing)

Each build must succeed with warnings as errors. Prints the seconds of each and the CPU count; on a
shared machine, compare the rows of one run, not times across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JB = Path(sys.executable).with_name("jupyter-book")
CACHED_TARGET_S = 30.0


def build(out: Path) -> tuple[float, str]:
    cmd = [str(JB), "build", str(REPO), "--path-output", str(out), "-W", "--keep-going", "--builder", "html"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=REPO)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"build failed ({' '.join(cmd)}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="output folder (default: a temporary one, removed after)")
    ap.add_argument("--touch", metavar="PAGE", help="also time a rebuild after touching PAGE (e.g. book/intro.md)")
    ap.add_argument("--json", type=Path, help="also write the results there")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_book_"))
    if args.out and out.exists():
        shutil.rmtree(out)
    try:
        rows = {}
        rows["full"], _ = build(out)
        rows["cached"], log = build(out)
        if "0 added, 0 changed, 0 removed" not in log:
            sys.exit(f"the cached rebuild re-read pages:\n{log[-3000:]}")
        if args.touch:
            os.utime(REPO / args.touch)   # new mtime, same text: Sphinx re-reads it, jupyter-cache hits
            rows["one page"], log = build(out)
            if "1 changed" not in log:
                sys.exit(f"touching {args.touch} did not re-read exactly that page:\n{log[-3000:]}")
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    print(f"book build, {platform.node()}: {os.cpu_count()} CPUs, python {platform.python_version()}")
    print(f"{'build':<10} {'seconds':>8}")
    for name, s in rows.items():
        print(f"{name:<10} {s:8.1f}")
    verdict = "ok" if rows["cached"] <= CACHED_TARGET_S else "OVER TARGET"
    print(f"cached rebuild target <= {CACHED_TARGET_S:.0f} s: {verdict}")
    if args.json:
        args.json.write_text(json.dumps({"cpus": os.cpu_count(), "seconds": rows}, indent=2))
    if verdict != "ok":
        sys.exit(1)


if __name__ == "__main__":
    main()
