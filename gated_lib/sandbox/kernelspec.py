"""Install the ``gated-sandbox`` kernelspec (by a function, never by hand).

The spec lives in a folder of its own, outside the repository and the virtual environment::

    <tempdir>/gated-sandbox-<uid>-<hash of the interpreter>/kernels/gated-sandbox/kernel.json

and that folder is put first on ``JUPYTER_PATH`` of this process, which is where the grader's kernel
manager looks for kernels. Writing it is idempotent and atomic (a rename), so parallel graders can
all call :func:`ensure_kernelspec`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

KERNEL_NAME = "gated-sandbox"


def kernelspec(python: str | None = None) -> dict:
    python = python or sys.executable
    return {
        "argv": [python, "-m", "gated_lib.sandbox.kernel", "-f", "{connection_file}"],
        "display_name": "Python 3 (gated sandbox)",
        "language": "python",
        # interrupts travel as a control message: a signal to the process the grader started would hit
        # bubblewrap, not the kernel inside it
        "interrupt_mode": "message",
        "metadata": {"debugger": False},
    }


def kernel_dir(base: str | os.PathLike | None = None, python: str | None = None) -> Path:
    """The folder to put on JUPYTER_PATH (it holds kernels/gated-sandbox/kernel.json)."""
    python = python or sys.executable
    if base is None:
        tag = hashlib.sha1(python.encode()).hexdigest()[:10]
        base = Path(tempfile.gettempdir()) / f"gated-sandbox-{os.getuid()}-{tag}"
    return Path(base)


def _private(folder: Path) -> bool:
    """Ours, a real folder (not a link), writable by nobody else."""
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    import stat
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def ensure_kernelspec(base: str | os.PathLike | None = None, python: str | None = None,
                      set_path: bool = True) -> str:
    """Write the kernelspec (if missing or different) and make it findable; returns its name."""
    root = kernel_dir(base, python)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if base is None and not _private(root):
        # a predictable name in a shared /tmp: someone else may have made it first (and would choose
        # the command the grader runs as a kernel). Use a fresh folder of our own instead.
        root = Path(tempfile.mkdtemp(prefix=f"gated-sandbox-{os.getuid()}-"))
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(kernelspec(python), indent=1)
    target = spec_dir / "kernel.json"
    if not target.is_file() or target.read_text() != text:
        fd, tmp = tempfile.mkstemp(dir=spec_dir, prefix=".kernel-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    if set_path:
        paths = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
        if str(root) not in paths:
            os.environ["JUPYTER_PATH"] = os.pathsep.join([str(root), *paths])
    return KERNEL_NAME
