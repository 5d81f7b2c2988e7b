"""Adversarial submissions, autograded through the real pipeline in the sandbox.

Every module in tests/adversarial/ turns the student release of 02_deriving_lstm into a cheating or
hostile submission. They are all submitted to one temporary course (with an honest "victim" graded
before them) and autograded in one `nbgrader autograde` run, with this repository's
nbgrader_config.py and short limits (cell timeout 10 s, 2 GiB of memory). Then:

* each attack scores 0 on the cells it cheats on (its ZERO list) and passes its own verify();
  the corpus holds every attack issue 7 lists (a missing module would silently test less), among
  them fake_pass: a fake "All tests passed!" printed everywhere earns no point;
* the run finishes (exit 0) for every submission, within a bounded time;
* the victim's submission, autograded notebook and grades, the solutions and the gradebook's test
  cells are unchanged, and nothing was written into the repository;
* no process of a sandbox outlives the run (fork bomb children included).

If bubblewrap is missing, the fixture installs it with apt-get when it can (root, Debian); otherwise
the attacks run in the rlimit-only sandbox and the checks that need bubblewrap (network, hidden
files) say so.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import pkgutil
import re
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import tests.adversarial as corpus
from gated_lib import course
from gated_lib.sandbox import bwrap
from tests.conftest import REPO

NAME = "02_deriving_lstm"
ATTACKS = sorted(m.name for m in pkgutil.iter_modules(corpus.__path__) if not m.name.startswith("_"))
CANARY = "gated-canary-" + hashlib.sha1(str(time.time()).encode()).hexdigest()[:12]
# One uid for every kernel of this run, outside the per-kernel range (100000-149999) that other
# tests' graders use at the same time under pytest-xdist: a process of that uid left running after
# the run can only be one of ours (test_no_sandbox_process_survives).
SANDBOX_UID = 150_500
LIMITS = {"GATED_SANDBOX": "auto", "GATED_SANDBOX_CELL_TIMEOUT": "10", "GATED_SANDBOX_PROBE": "5",
          "GATED_SANDBOX_MEMORY": "2G", "GATED_SANDBOX_NPROC": "128", "GATED_SANDBOX_CPU": "120",
          "GATED_SANDBOX_UID": str(SANDBOX_UID), "GATED_CANARY_SECRET": CANARY}


def ensure_bwrap() -> tuple[bool, str]:
    ok, why = bwrap.bwrap_works()
    if not ok and bwrap.bwrap_path() is None and os.getuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "bubblewrap"], capture_output=True, timeout=300)
        bwrap.bwrap_works.cache_clear()
        ok, why = bwrap.bwrap_works()
    if not ok:
        print(f"\n[test_adversarial] bubblewrap unusable ({why}): testing the rlimit-only sandbox")
    return ok, why


def _digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()} if path.exists() else {}


def _gradebook_sources(root: Path) -> list[tuple]:
    with sqlite3.connect(root / "gradebook.db") as db:
        return sorted(db.execute("select name, source, checksum from source_cell").fetchall())


def _text(out: dict) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        return "".join(out["text"]) if isinstance(out["text"], list) else out["text"]
    if kind == "error":
        return f"{out.get('ename')}: {out.get('evalue')}\n" + "\n".join(out.get("traceback", []))
    return "\n".join("".join(v) if isinstance(v, list) else str(v) for v in out.get("data", {}).values())


@dataclass
class Run:
    name: str
    grade: course.Grade
    notebook: dict
    solution: dict
    root: Path
    repo: Path
    canary: str
    bwrap: bool

    def outputs(self) -> str:
        return "\n".join(_text(o) for c in self.notebook["cells"] if c["cell_type"] == "code"
                         for o in c.get("outputs", []))

    def hidden_test_text(self) -> str:
        src = "\n".join("".join(c["source"]) for c in self.solution["cells"])
        return "\n".join(re.findall(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", src, re.DOTALL))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    use_bwrap, _ = ensure_bwrap()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in LIMITS.items():
            mp.setenv(k, v)
        root = course.make_course_root(tmp_path_factory.mktemp("adversarial") / "course", REPO, [NAME])
        course.generate(root, NAME)
        release = json.loads((root / "exercises" / NAME / f"{NAME}.ipynb").read_text())
        solution = json.loads((REPO / "solutions" / NAME / f"{NAME}.ipynb").read_text())

        course.submit(root, NAME, "victim", REPO / "solutions" / NAME / f"{NAME}.ipynb")
        victim_grade = course.autograde(root, NAME, "victim")
        before = {"victim": _digest(root / "submitted" / "victim") | _digest(root / "autograded" / "victim"),
                  "solutions": _digest(root / "solutions"), "sources": _gradebook_sources(root)}

        drafts = tmp_path_factory.mktemp("drafts")
        for attack in ATTACKS:
            module = importlib.import_module(f"tests.adversarial.{attack}")
            path = drafts / f"{attack}.ipynb"
            path.write_text(json.dumps(module.make(release, solution), indent=1))
            course.submit(root, NAME, f"adv_{attack}", path)
        start = time.monotonic()
        proc = course.nbgrader(["autograde", NAME, "--student=adv_*", "--create", "--force"], root, timeout=1500)
        elapsed = time.monotonic() - start
    print(f"\n[test_adversarial] {len(ATTACKS)} attacks autograded in {elapsed:.0f} s "
          f"({'bubblewrap' if use_bwrap else 'rlimit-only'} sandbox)")
    return dict(root=root, solution=solution, victim_grade=victim_grade, before=before, elapsed=elapsed,
                bwrap=use_bwrap, log=proc.stdout + proc.stderr)


EXPECTED = {"always_equal", "call_reference", "delete_test_cells", "edit_test_cells", "evade_monitor",
            "fake_pass", "fork_bomb", "hardcode_visible", "infinite_loop", "kill_kernel", "memory_bomb",
            "os_exit", "output_flood", "patch_grading", "patch_internals", "patch_numpy", "read_secrets",
            "sys_exit", "write_outside"}


def test_corpus_is_complete():
    assert EXPECTED <= set(ATTACKS), f"attacks missing from tests/adversarial/: {sorted(EXPECTED - set(ATTACKS))}"


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_earns_nothing(attack, graded):
    module = importlib.import_module(f"tests.adversarial.{attack}")
    root = graded["root"]
    student = f"adv_{attack}"
    nb_path = root / "autograded" / student / NAME / f"{NAME}.ipynb"
    assert nb_path.is_file(), f"{attack}: no autograded notebook (the run lost the submission)"
    run = Run(name=attack, grade=course.read_grade(course.default_db_url(root), NAME, student),
              notebook=json.loads(nb_path.read_text()), solution=graded["solution"], root=root, repo=REPO,
              canary=CANARY, bwrap=graded["bwrap"])
    earned = {gid: run.grade.cells.get(gid) for gid in module.ZERO if run.grade.cells.get(gid, (0,))[0]}
    assert not earned, f"{attack} ({module.DESCRIPTION}) earns points on cheated cells: {earned}"
    if hasattr(module, "verify"):
        module.verify(run)


def test_instructor_data_and_other_students_intact(graded):
    root, before = graded["root"], graded["before"]
    after_victim = _digest(root / "submitted" / "victim") | _digest(root / "autograded" / "victim")
    assert after_victim == before["victim"], "another student's files were changed"
    assert _digest(root / "solutions") == before["solutions"], "solutions/ was changed"
    assert _gradebook_sources(root) == before["sources"], "the gradebook's test cells were changed"
    victim = course.read_grade(course.default_db_url(root), NAME, "victim")
    assert victim.cells == graded["victim_grade"].cells and victim.auto_score == victim.auto_max_score
    strays = [p for p in (root / "PWNED-course", REPO / "PWNED-repository",
                          REPO / "gated_lib" / "grading" / "pwned_by_student.py") if p.exists()]
    assert not strays, f"files written outside the sandbox: {strays}"


def _sandbox_processes() -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
            if uid == SANDBOX_UID:
                found.append(f"{pid} (uid {uid}): {Path(f'/proc/{pid}/cmdline').read_bytes()[:80]!r}")
        except OSError:
            pass
    return found


@pytest.mark.skipif(os.getuid() != 0, reason="sandbox uids are only used when grading as root")
def test_no_sandbox_process_survives(graded):
    deadline = time.monotonic() + 20
    while _sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _sandbox_processes(), f"left running after grading: {_sandbox_processes()[:5]}"


def test_run_is_bounded(graded):
    # two timeouts and one kill probe are the slow parts; everything else is ~10 s a submission
    assert graded["elapsed"] < 60 + 25 * len(ATTACKS), f"autograding took {graded['elapsed']:.0f} s"
