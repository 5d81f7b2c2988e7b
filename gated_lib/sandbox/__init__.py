"""Sandboxed autograding: student code runs with limits, without network, and cannot cheat by patching.

`nbgrader autograde` (and the course's own `gated_lib.course.autograde`, which runs it) executes every
submission in the ``gated-sandbox`` kernel; nbgrader_config.py sets this up with
:func:`gated_lib.sandbox.nbgrader.configure`. Layers, from the outside in (docs/sandbox.md has the
threat model and the measured limits):

1. **The grader** (:class:`~gated_lib.sandbox.nbgrader.SandboxExecute`, nbgrader's Execute
   preprocessor): test cells are restored from the gradebook by nbgrader before execution; a
   per-cell timeout (then an interrupt, then the kernel is killed if it does not answer); at most
   ``Limits.output`` bytes of output per cell; a kernel that dies costs the remaining cells, not the
   whole submission; the connection uses unix sockets in a private folder (ipc transport).
2. **The kernel wrapper** (:mod:`gated_lib.sandbox.kernel`, the kernelspec's argv): as root it drops
   to an unprivileged uid; it sets RLIMIT_CPU, RLIMIT_DATA (not RLIMIT_AS: torch and OpenBLAS reserve
   gigabytes of address space they never touch), RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE and
   RLIMIT_CORE; then
3. **bubblewrap** (:mod:`gated_lib.sandbox.bwrap`, when ``bwrap`` works here): new user, pid, network,
   ipc and uts namespaces; the filesystem read-only, with the course root (solutions, gradebook,
   other students), the library's source tree and Jupyter's runtime folder hidden; only the
   submission's folder copy and the kernel's private socket folder writable; a private size-limited
   /tmp; a cleared environment. Without bwrap the limits and the uid drop still apply ("rlimit-only").
4. **The guard** (:mod:`gated_lib.sandbox.guard`), inside the kernel: a pristine snapshot of numpy,
   gated_lib.grading and builtins taken before any student code runs, restored before every cell;
   any change found marks the notebook as tampering and zeroes every later test cell.

Public entry points: :func:`ensure_kernelspec`, :func:`bwrap_works`, :class:`Limits`, and
``python -m gated_lib.sandbox`` (prints the sandbox's status: limits, bwrap, kernelspec).
"""

from gated_lib.sandbox.bwrap import bwrap_works
from gated_lib.sandbox.kernelspec import KERNEL_NAME, ensure_kernelspec
from gated_lib.sandbox.limits import Limits

__all__ = ["KERNEL_NAME", "Limits", "bwrap_works", "ensure_kernelspec"]
