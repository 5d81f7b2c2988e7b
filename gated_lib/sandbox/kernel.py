"""The sandboxed kernel: ``python -m gated_lib.sandbox.kernel -f CONNECTION_FILE``.

This is the ``argv`` of the ``gated-sandbox`` kernelspec. It runs in two stages:

outer (as the grader, in the submission's folder):
    1. works out the sandbox's limits (:class:`~gated_lib.sandbox.limits.Limits`, from the grader's
       environment) and which folders to hide (the course root, found from the working directory;
       the source tree of gated_lib; Jupyter's runtime folder);
    2. when the grader is root: hands the scratch and private folders to an unprivileged uid
       (default: a fresh uid per kernel) and the inner stage drops to it, so that RLIMIT_NPROC applies (it does not apply
       to root) and ordinary file permissions protect everything the grader owns;
    3. sets the resource limits (they are inherited by everything below);
    4. execs ``bwrap ... -- python -m gated_lib.sandbox.kernel --inner -f ...`` when bubblewrap works
       here, otherwise the inner stage directly (rlimit-only sandbox; it says so on stderr of the
       kernel, which the grader logs).

inner (inside the sandbox):
    5. takes the pristine snapshot of numpy, gated_lib and builtins (:mod:`gated_lib.sandbox.guard`)
       *before any student code runs*, then starts ipykernel in the same process and registers the
       guard's hooks with its shell.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

from gated_lib.sandbox.limits import Limits, bwrap_mode

CONFIG_FILE = "nbgrader_config.py"


def _find_course_root(start: Path) -> Path | None:
    for folder in [start, *start.parents]:
        if (folder / CONFIG_FILE).is_file():
            return folder
    return None


def _source_tree() -> Path | None:
    """The folder gated_lib was installed from, when it is an editable install (not site-packages)."""
    import gated_lib

    pkg = Path(gated_lib.__file__).resolve().parent
    return None if "site-packages" in pkg.parts or "dist-packages" in pkg.parts else pkg.parent


def set_limits(limits: Limits) -> None:
    """Set the resource limits of this process (inherited by what it execs and forks)."""
    def lim(which, soft, hard=None):
        hard = soft if hard is None else hard
        cur_soft, cur_hard = resource.getrlimit(which)
        if cur_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, cur_hard), min(hard, cur_hard)
        resource.setrlimit(which, (soft, hard))

    lim(resource.RLIMIT_CPU, limits.cpu, limits.cpu + 5)       # SIGXCPU at soft, SIGKILL at hard
    lim(resource.RLIMIT_DATA, limits.memory)
    lim(resource.RLIMIT_FSIZE, limits.fsize)
    lim(resource.RLIMIT_NOFILE, limits.nofile)
    lim(resource.RLIMIT_CORE, 0)
    lim(resource.RLIMIT_NPROC, limits.nproc)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)
            except OSError:
                pass


def sandbox_uid(limits: Limits) -> int | None:
    """The uid the kernel runs as, when the grader is root (None: stay root, or not root)."""
    if os.getuid() != 0 or limits.uid is None:
        return None
    if limits.uid >= 0:
        return limits.uid
    # one uid per kernel: RLIMIT_NPROC counts the processes of a uid, so a fork bomb in one
    # submission must not use up the count of the submissions graded next to it
    return 100_000 + os.getpid() % 50_000


def drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    with open("/proc/self/status") as fh:
        caps = {k: v.strip() for k, v in (line.split(":", 1) for line in fh if line.startswith("Cap"))}
    if int(caps.get("CapEff", "0"), 16) or int(caps.get("CapPrm", "0"), 16):
        raise SystemExit(f"gated-sandbox: capabilities survived the uid drop: {caps}")


def _untraversable_ancestors(path: Path) -> list[Path]:
    """Ancestors of `path` that another uid cannot enter (no o+x), e.g. /root (mode 700)."""
    out = []
    for folder in reversed(path.parents):
        if folder == Path("/"):
            continue
        try:
            if not folder.stat().st_mode & 0o001:
                out.append(folder)
        except OSError:
            pass
    return out


def _sandbox_env(scratch: Path) -> dict[str, str]:
    env = {
        "HOME": str(scratch),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "agg",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NBGRADER_EXECUTION": os.environ.get("NBGRADER_EXECUTION", ""),
        "GATED_SANDBOX_INSIDE": "1",
    }
    for key in ("GATED_LIB_DEVICE", "CUDA_VISIBLE_DEVICES"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def _connection_file(argv: list[str]) -> Path:
    for i, arg in enumerate(argv):
        if arg == "-f" and i + 1 < len(argv):
            return Path(argv[i + 1]).resolve()
        if arg.startswith("--f=") or arg.startswith("-f="):
            return Path(arg.split("=", 1)[1]).resolve()
    raise SystemExit("gated-sandbox: the kernel needs -f CONNECTION_FILE")


def outer(argv: list[str]) -> None:
    import json

    import gated_lib
    from gated_lib.sandbox import bwrap

    limits = Limits.from_env()
    scratch = Path.cwd().resolve()
    conn = _connection_file(argv)
    info = json.loads(conn.read_text())
    private = conn.parent
    ipc = info.get("transport") == "ipc"

    hide: list[Path] = []
    root = _find_course_root(scratch)
    if root is not None and root != scratch:
        hide.append(root)
    src = _source_tree()
    if src is not None:
        hide.append(src)
    try:
        from jupyter_core.paths import jupyter_runtime_dir
        runtime = Path(jupyter_runtime_dir()).resolve()
        if not private.is_relative_to(runtime):
            hide.append(runtime)
    except Exception:  # noqa: BLE001 - jupyter_core missing: nothing to hide there
        pass
    keep = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(),
            Path(os.path.realpath(sys.executable)).parent.parent, Path(gated_lib.__file__).resolve().parent]
    for k in keep:
        hide.extend(_untraversable_ancestors(k))   # shown as empty folders with only `keep` inside

    uid = sandbox_uid(limits)
    notebooks = sorted(scratch.glob("*.ipynb"))    # the notebook being graded holds the hidden tests
    if uid is not None:
        # the private folder receives the kernel's ipc sockets, the scratch folder its files
        for folder in (scratch, private):
            _chown_tree(folder, uid, uid)
        for nb in notebooks:                        # ... and stays the grader's, unreadable
            os.chown(nb, 0, 0)
            os.chmod(nb, 0o600)

    use = bwrap_mode()
    ok, why = (False, "disabled by GATED_SANDBOX_BWRAP=off") if use == "off" else bwrap.bwrap_works()
    if not ok and use == "require":
        raise SystemExit(f"gated-sandbox: bubblewrap is required but unusable: {why}")
    set_limits(limits)
    env = _sandbox_env(scratch)
    inner_cmd = [sys.executable, "-m", "gated_lib.sandbox.kernel", "--inner", *argv]
    if ok:
        if uid is not None:
            env["GATED_SANDBOX_DROP_UID"] = str(uid)       # the inner stage drops root first thing
        cmd = bwrap.build_argv(inner_cmd, scratch=scratch, private=private, hide=hide, keep=keep,
                               share_net=not ipc, tmpfs_size=limits.tmpfs, env=env,
                               as_root=os.getuid() == 0, mask=notebooks)
        if os.environ.get("GATED_SANDBOX_DEBUG"):
            print("gated-sandbox:", " ".join(cmd), file=sys.stderr, flush=True)
        os.execv(cmd[0], cmd)
    # rlimit-only sandbox: same limits and uid, no namespaces
    if uid is not None:
        if any(_untraversable_ancestors(k) for k in keep):
            print("gated-sandbox: the interpreter is not readable by another uid; the kernel keeps "
                  "the grader's uid (RLIMIT_NPROC does not apply to root)", file=sys.stderr)
        else:
            drop_privileges(uid)
    print(f"gated-sandbox: running without bubblewrap ({why}); resource limits only", file=sys.stderr)
    os.execve(sys.executable, inner_cmd, env)


def inner(argv: list[str]) -> None:
    uid = os.environ.pop("GATED_SANDBOX_DROP_UID", None)
    if uid:
        drop_privileges(int(uid))
    from gated_lib.sandbox import guard

    snapshot = guard.Guard.capture()          # before any student code can run
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(argv)
    snapshot.attach(app.shell)
    app.start()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--inner":
        inner(argv[1:])
    else:
        outer(argv)


if __name__ == "__main__":
    main()
