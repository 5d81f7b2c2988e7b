"""A throwaway PostgreSQL server for the gradebook tests (tests/test_autograde_postgres.py,
tests/test_autograde_dask.py): import the `pg_url` fixture into a test module.

The fixture installs the server when it is missing (apt-get, as root on Debian: what CI is) and
starts a private cluster: initdb into a temporary folder, run as the unprivileged `postgres` (or
`nobody`) user since PostgreSQL refuses to run as root, on a free localhost port, trust auth.
When the server cannot be installed or started the tests FAIL with the reason (never skip).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


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
