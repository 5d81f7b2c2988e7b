"""The course's nbgrader plumbing, in one place: release, autograde and read back grades.

The Makefile (`make release`), the pipeline tests and the instructor workflow all drive nbgrader
through these functions, so that "what the tests check" and "what an instructor runs" cannot drift.

A *course root* is a folder laid out as nbgrader expects (COURSE_DESIGN.md):

    <root>/nbgrader_config.py
    <root>/solutions/<assignment>/<assignment>.ipynb      source (instructor) notebooks
    <root>/exercises/<assignment>/<assignment>.ipynb      student release (generated)
    <root>/submitted/<student>/<assignment>/...           collected submissions
    <root>/autograded/..., <root>/feedback/...            nbgrader's outputs

Usage (from the repository root):

    python -m gated_lib.course list                 the assignments in solutions/
    python -m gated_lib.course release [NAME ...]   regenerate exercises/ from solutions/
    python -m gated_lib.course check-release        fail if exercises/ is not a fresh generation
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SOURCE_DIR = "solutions"
RELEASE_DIR = "exercises"
CONFIG_FILE = "nbgrader_config.py"


class CourseError(RuntimeError):
    """An nbgrader step failed; the message carries nbgrader's own output."""


def assignments(root: str | os.PathLike = ".") -> list[str]:
    """Names of the assignments in <root>/solutions (folders holding a notebook of the same name)."""
    src = Path(root) / SOURCE_DIR
    return sorted(p.name for p in src.iterdir()
                  if p.is_dir() and (p / f"{p.name}.ipynb").is_file()) if src.is_dir() else []


def default_db_url(root: str | os.PathLike) -> str:
    return "sqlite:///" + str((Path(root) / "gradebook.db").resolve())


def tool_env() -> dict[str, str]:
    """This environment with the interpreter's bin/ first on PATH.

    nbgrader shells out to `alembic` (gradebook migrations) and jupyter finds kernels by PATH; when
    the virtual environment is used without being activated (`.venv/bin/python -m ...`), those
    would otherwise be missing or come from another environment.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def nbgrader(args: list[str], root: str | os.PathLike, db_url: str | None = None,
             timeout: float | None = 900) -> subprocess.CompletedProcess:
    """Run `nbgrader <args>` in the course root with this interpreter's environment.

    nbgrader reads nbgrader_config.py from the working directory, so cwd is the course root.
    """
    root = Path(root).resolve()
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}"]
    if db_url is not None:
        cmd.append(f"--CourseDirectory.db_url={db_url}")
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=tool_env())
    if proc.returncode != 0:
        raise CourseError(f"`nbgrader {' '.join(args)}` failed (exit {proc.returncode}) in {root}:\n"
                          f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def make_course_root(dest: str | os.PathLike, repo: str | os.PathLike = ".",
                     names: list[str] | None = None) -> Path:
    """Copy the config and the source notebooks of `names` (default: all) into a fresh course root.

    Tests use this so that gradebooks, submissions and releases live in a temporary folder and
    never in the repository.
    """
    repo, dest = Path(repo), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(repo / CONFIG_FILE, dest / CONFIG_FILE)
    for name in names or assignments(repo):
        shutil.copytree(repo / SOURCE_DIR / name, dest / SOURCE_DIR / name,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return dest


def generate(root: str | os.PathLike, name: str, db_url: str | None = None) -> Path:
    """`nbgrader generate_assignment NAME --force` in `root`; returns the release folder."""
    nbgrader(["generate_assignment", name, "--force"], root, db_url)
    return Path(root) / RELEASE_DIR / name


def release(repo: str | os.PathLike = ".", names: list[str] | None = None) -> list[Path]:
    """Regenerate <repo>/exercises/NAME from <repo>/solutions/NAME for each assignment.

    The generation runs against a throwaway gradebook: the release is a pure function of the
    source notebook. Instructors generate again against their own gradebook before autograding
    (see README), which writes the same files.
    """
    repo = Path(repo).resolve()
    out = []
    with tempfile.TemporaryDirectory(prefix="gated-release-") as tmp:
        root = make_course_root(Path(tmp) / "course", repo, names)
        for name in names or assignments(repo):
            built = generate(root, name)
            target = repo / RELEASE_DIR / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(built, target)
            out.append(target)
    return out


def stale_releases(repo: str | os.PathLike = ".") -> list[str]:
    """Assignments whose committed release differs from a fresh generation (file by file)."""
    repo = Path(repo).resolve()
    stale = []
    with tempfile.TemporaryDirectory(prefix="gated-check-") as tmp:
        root = make_course_root(Path(tmp) / "course", repo)
        for name in assignments(repo):
            if diff_release(generate(root, name), repo / RELEASE_DIR / name):
                stale.append(name)
    return stale


def diff_release(fresh: str | os.PathLike, committed: str | os.PathLike) -> list[str]:
    """Files that differ between two release folders: missing, extra, or with other content."""
    a, b = _tree(Path(fresh)), _tree(Path(committed))
    return sorted(f"{k}: {'missing from the committed release' if k not in b else 'not in a fresh generation' if k not in a else 'content differs'}"
                  for k in set(a) | set(b) if a.get(k) != b.get(k))


def _tree(folder: Path) -> dict[str, object]:
    """File contents of a folder, notebooks parsed as JSON so that formatting does not count."""
    if not folder.is_dir():
        return {}
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and ".ipynb_checkpoints" not in p.parts:
            rel = str(p.relative_to(folder))
            files[rel] = json.loads(p.read_text()) if p.suffix == ".ipynb" else p.read_bytes()
    return files


SECRET_REGION = re.compile(
    r"(### BEGIN SOLUTION|### BEGIN HIDDEN TESTS|=== BEGIN MARK SCHEME ===)(.*?)"
    r"(### END SOLUTION|### END HIDDEN TESTS|=== END MARK SCHEME ===)", re.S)
SECRET_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS",
                  "### END HIDDEN TESTS", "=== BEGIN MARK SCHEME ===", "=== END MARK SCHEME ===")


def secret_lines(source_nb: dict, min_len: int = 25) -> set[str]:
    """Lines of a source notebook that students must never see: solutions, hidden tests, mark schemes.

    Short or generic lines (``return h, c``) and comments may legitimately appear in a stub, so
    only lines of at least `min_len` characters that are not comments are returned.
    """
    lines = set()
    for cell in source_nb["cells"]:
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        for m in SECRET_REGION.finditer(src):
            for line in m.group(2).splitlines():
                line = line.strip()
                if len(line) >= min_len and not line.startswith("#"):
                    lines.add(line)
    return lines


def find_leaks(text: str, secrets: set[str]) -> list[str]:
    """Markers and secret lines that occur in `text` (a released notebook, an HTML page...)."""
    return sorted({m for m in SECRET_MARKERS if m in text} | {s for s in secrets if s in text})


@dataclass
class Grade:
    """The grades nbgrader recorded for one submission of one assignment."""

    student: str
    assignment: str
    score: float                      # every recorded score, manual cells included
    max_score: float
    auto_score: float                 # autograded test cells only
    auto_max_score: float
    cells: dict[str, tuple[float | None, float]] = field(default_factory=dict)  # grade_id -> (score, max)
    needs_manual_grade: bool = False


def submit(root: str | os.PathLike, name: str, student: str, notebook: str | os.PathLike) -> Path:
    """Place `notebook` as <root>/submitted/<student>/<name>/<name>.ipynb (what `collect` does)."""
    dest = Path(root) / "submitted" / student / name
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(notebook, dest / f"{name}.ipynb")
    return dest


def autograde(root: str | os.PathLike, name: str, student: str, db_url: str | None = None) -> Grade:
    """Autograde one student's submission and read the result back from the gradebook."""
    nbgrader(["autograde", name, f"--student={student}", "--create", "--force"], root, db_url)
    return read_grade(db_url or default_db_url(root), name, student)


def read_grade(db_url: str, name: str, student: str) -> Grade:
    from nbgrader.api import Gradebook  # nbgrader is an instructor dependency, imported on use

    with Gradebook(db_url) as gb:
        sub = gb.find_submission(name, student)
        cells, auto, auto_max, manual = {}, 0.0, 0.0, False
        for nb in sub.notebooks:
            for g in nb.grades:
                score = g.score
                cells[g.name] = (score, g.max_score)
                if g.auto_score is not None and g.cell.cell_type == "code":
                    auto += g.auto_score
                    auto_max += g.max_score
                if g.needs_manual_grade:
                    manual = True
        return Grade(student=student, assignment=name, score=sub.score, max_score=sub.max_score,
                     auto_score=auto, auto_max_score=auto_max, cells=cells, needs_manual_grade=manual)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gated_lib.course", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the assignments in solutions/")
    rel = sub.add_parser("release", help="regenerate exercises/ from solutions/")
    rel.add_argument("names", nargs="*", help="assignments (default: all)")
    sub.add_parser("check-release", help="exit 1 if exercises/ differs from a fresh generation")
    args = parser.parse_args(argv)

    if args.cmd == "list":
        print("\n".join(assignments(".")))
    elif args.cmd == "release":
        unknown = set(args.names) - set(assignments("."))
        if unknown:
            parser.error(f"names: unknown assignment(s) {sorted(unknown)}; "
                         f"expected one of {assignments('.')}")
        for path in release(".", args.names or None):
            print(f"released {path}")
    elif args.cmd == "check-release":
        stale = stale_releases(".")
        if stale:
            print(f"stale releases (run `make release`): {', '.join(stale)}")
            return 1
        print("exercises/ matches a fresh generation of solutions/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
