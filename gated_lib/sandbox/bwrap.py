"""bubblewrap (``bwrap``, Debian package ``bubblewrap``): detection and the sandbox's mount plan.

The plan (later mounts lie on top of earlier ones):

    --ro-bind / /                    the whole filesystem, read-only
    --dev /dev --proc /proc          a minimal /dev, a /proc of the new pid namespace only
    --tmpfs /tmp                     a private, size-limited /tmp (hides other graders' temp folders)
    --tmpfs <hidden>                 the course root (solutions/, gradebook.db, submitted/, other students'
                                     autograded/ folders, release/, feedback/), the source tree gated_lib
                                     was installed from (its solutions/ and tests/), Jupyter's runtime
                                     folder (other kernels' connection files and keys)
    --ro-bind <keep>                 what the kernel needs from a hidden place: the interpreter's prefix
                                     (a .venv inside the repository), the gated_lib package
    --bind <scratch>                 the submission's folder copy (autograded/<student>/<assignment>), read-write
    --bind <private>                 this kernel's connection file and ipc sockets, read-write
    --unshare-all [--share-net]      new user, pid, ipc, uts, cgroup and network namespaces
    --die-with-parent                the sandbox dies with the kernel process the grader started
    --clearenv --setenv ...          none of the grader's environment

With ``--unshare-net`` the sandbox has only its own loopback, so the kernel cannot be reached over TCP:
the grader then uses the ``ipc`` transport (ZeroMQ over unix sockets in ``<private>``). Unix sockets
are files, so they cross network namespaces through the bind mount. A connection file that asks for
TCP (a kernel started by something other than the grader) keeps the host's network namespace.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path


def bwrap_path() -> str | None:
    return shutil.which("bwrap") or next((p for p in ("/usr/bin/bwrap", "/bin/bwrap") if os.access(p, os.X_OK)), None)


@functools.cache
def bwrap_works(path: str | None = None) -> tuple[bool, str]:
    """(True, '') if bwrap can build the sandbox with this process's credentials, else (False, why).

    Containers often forbid user namespaces; then the sandbox falls back to resource limits only.
    """
    path = path or bwrap_path()
    if not path:
        return False, "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    cmd = [path, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev",
           "--proc", "/proc", "--tmpfs", "/tmp", "true"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bwrap failed to run: {exc}"
    if proc.returncode != 0:
        return False, f"bwrap cannot create namespaces here: {proc.stderr.strip()[:300]}"
    return True, ""


def _visible(path: Path, want_dir: bool = False) -> bool:
    """Can this process (the sandbox's uid) see `path`? What it cannot reach needs no hiding."""
    try:
        return path.is_dir() if want_dir else path.exists()
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def build_argv(command: list[str], *, scratch: Path, private: Path, hide: list[Path], keep: list[Path],
               share_net: bool, tmpfs_size: int, env: dict[str, str], bwrap: str | None = None,
               as_root: bool = False, mask: list[Path] = ()) -> list[str]:
    """The bwrap command line that runs `command` in the sandbox (see the module's docstring)."""
    if as_root:
        # real root: no user namespace needed (and none wanted: the inner stage drops to an
        # unprivileged uid, which needs CAP_SETUID/CAP_SETGID, and then holds no capability at all)
        argv = [bwrap or bwrap_path() or "bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        if not share_net:
            argv.append("--unshare-net")
    else:
        argv = [bwrap or bwrap_path() or "bwrap", "--unshare-all"]
        if share_net:
            argv.append("--share-net")
    argv += ["--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
             "--size", str(tmpfs_size), "--tmpfs", "/tmp"]
    tmp = Path("/tmp")
    for folder in sorted({p for p in hide if _visible(p, True)}, key=lambda p: len(p.parts)):
        if folder == Path("/"):
            continue
        argv += ["--tmpfs", str(folder)]        # an empty, private folder in its place
    shadowed = [tmp, *[h for h in hide if _visible(h, True)]]
    made: set[Path] = set()

    def parents(path: Path) -> list[str]:
        # bwrap would create the missing folders on the way with mode 700, which an unprivileged
        # uid cannot enter: create them first, world-readable (they are empty but for the mount)
        out = []
        tops = [h for h in shadowed if _inside(path, h) and h != path]
        if not tops:
            return out
        top = max(tops, key=lambda h: len(h.parts))
        for folder in reversed(path.parents):
            if _inside(folder, top) and folder != top and folder not in made:
                made.add(folder)
                out += ["--perms", "0755", "--dir", str(folder)]
        return out

    for path in sorted({p for p in keep if _visible(p)}, key=lambda p: len(p.parts)):
        if any(_inside(path, h) for h in shadowed):
            argv += parents(path) + ["--ro-bind", str(path), str(path)]
    for path in (scratch, private):
        argv += parents(path) + ["--bind", str(path), str(path)]
    for path in mask:                            # files shown empty (the graded notebook)
        argv += ["--ro-bind", "/dev/null", str(path)]
    argv += ["--chdir", str(scratch), "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return argv + ["--", *command]
