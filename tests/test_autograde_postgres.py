"""The gradebook on a real PostgreSQL server (`db_url`), as a large class would run it.

The fixture installs the server when it is missing (apt-get, as root on Debian: what CI is) and
starts a throwaway cluster: initdb into a temporary folder, run as the unprivileged `postgres` (or
`nobody`) user since PostgreSQL refuses to run as root, on a free localhost port, trust auth.
When the server cannot be installed or started the tests FAIL with the reason (never skip).

* release + parallel autograde of two students into PostgreSQL: the solution gets every
  autograded point, the blank release none; the rows are the same as SQLite would hold.
* a re-run records nothing new; a second merge of the same submission (another run on the same
  database) is refused by the transaction, so there is still exactly one row per student.
* export reads the grades back from PostgreSQL.
"""

from __future__ import annotations

import csv
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from gated_lib import course
from gated_lib.autograde import gradebook as gbk
from gated_lib.autograde import report, workflow
from tests.conftest import REPO

A = "02_deriving_lstm"


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _install_postgres() -> Path:
    """apt-get install the server (CI: fresh Debian, root); fail with apt's output otherwise."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail("PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) are missing and "
                    "cannot be installed here (needs root and apt-get): `apt-get install postgresql`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = []
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        log.append(f"$ {' '.join(cmd)} (exit {proc.returncode})\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
        if proc.returncode != 0 and cmd[1] == "install":
            pytest.fail("could not install the PostgreSQL server:\n" + "\n".join(log))
    bindir = _pg_bindir()
    if bindir is None:
        pytest.fail("apt-get installed postgresql but no initdb under /usr/lib/postgresql/*/bin:\n"
                    + "\n".join(log))
    return bindir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_url():
    """URL of a fresh, empty PostgreSQL database on a private server; stopped and removed after."""
    import psycopg2

    bindir = _pg_bindir() or _install_postgres()
    user = "postgres" if _has_user("postgres") else "nobody"
    pw = pwd.getpwnam(user)
    # Not under pytest's tmp_path: its parent (/tmp/pytest-of-root) is 0700, which the
    # unprivileged server user cannot traverse. Removed at teardown.
    base = Path(tempfile.mkdtemp(prefix="gated-pg-"))
    data, sock, logf = base / "data", base / "sock", base / "server.log"
    sock.mkdir()
    for p in (base, sock):
        os.chown(p, pw.pw_uid, pw.pw_gid)

    def as_user(*cmd, timeout=120):
        return subprocess.run(["runuser", "-u", user, "--", *map(str, cmd)], capture_output=True,
                              text=True, timeout=timeout, cwd=base)

    port = _free_port()
    started = False
    try:
        proc = as_user(bindir / "initdb", "-D", data, "-U", "grader", "-A", "trust", "-N", "-E", "UTF8")
        if proc.returncode != 0:
            pytest.fail(f"initdb failed as {user}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        proc = as_user(bindir / "pg_ctl", "-D", data, "-o", opts, "-l", logf, "-w", "-t", "60", "start")
        if proc.returncode != 0:
            log = logf.read_text()[-2000:] if logf.exists() else ""
            pytest.fail(f"pg_ctl start failed: {proc.stdout[-1000:]}{proc.stderr[-1000:]}\n{log}")
        started = True
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="grader", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE gradebook")
        conn.close()
        yield f"postgresql://grader@127.0.0.1:{port}/gradebook"
    finally:
        if started:
            as_user(bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


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
