"""The grader's side: how `nbgrader autograde` starts, watches and reads the sandboxed kernel.

* :class:`SandboxKernelManager`: a kernel manager whose connection file and ipc sockets live in a
  private folder of their own (``ipc`` transport, so the kernel can run without network).
* :class:`SandboxExecute`: nbgrader's Execute preprocessor with

  - the sandbox kernel manager and the ``gated-sandbox`` kernel;
  - a bounded output per cell (what is beyond ``Limits.output`` bytes is dropped, never an error or
    the fact that a cell wrote to stderr, which both make nbgrader score the cell 0);
  - a kernel that dies (``os._exit``, killed by RLIMIT_CPU, killing itself) or stops answering after a
    timeout: the cell gets an error, every later code cell gets "not run" (an error), and the
    notebook is still saved and graded, so the points earned before it are kept;
  - any other execution failure of one cell becomes that cell's error instead of aborting the whole
    submission (nbgrader would delete the autograded notebook and record nothing).
* :func:`configure`: what nbgrader_config.py calls.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

from jupyter_client.manager import AsyncKernelManager
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Integer, Unicode, default

from gated_lib.sandbox.kernelspec import KERNEL_NAME, ensure_kernelspec
from gated_lib.sandbox.limits import Limits, mode


class SandboxKernelManager(AsyncKernelManager):
    """Connection file and unix sockets in a private folder (mode 700) per kernel."""

    transport = Unicode("ipc", config=True)
    _private: str | None = None

    def _private_dir(self) -> str:
        if self._private is None:
            self._private = tempfile.mkdtemp(prefix="gated-kernel-")
        return self._private

    @default("connection_file")
    def _default_connection_file(self) -> str:
        return os.path.join(self._private_dir(), "kernel.json")

    def _ip_default(self) -> str:
        if self.transport == "ipc":
            return os.path.join(self._private_dir(), "ipc")
        return super()._ip_default()

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart and self._private:
            shutil.rmtree(self._private, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources


def _size(out: NotebookNode) -> int:
    kind = out.get("output_type")
    if kind == "stream":
        return len(out.get("text", ""))
    if kind == "error":
        return sum(len(t) for t in out.get("traceback", []))
    return sum(len(v) if isinstance(v, str) else len(str(v)) for v in out.get("data", {}).values())


class SandboxExecute(Execute):
    """nbgrader's Execute with the sandbox kernel, bounded outputs and kernels that may die."""

    max_output_bytes = Integer(1 << 20, help="bytes of output kept per cell").tag(config=True)
    probe_timeout = Integer(15, help="seconds a kernel has to answer after a timed-out cell").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(*args, **kwargs)
        self._dead: str | None = None
        self._cell_bytes = 0
        self._truncated = False

    def preprocess(self, nb, resources=None, km=None):
        try:
            return super().preprocess(nb, resources, km)
        finally:
            # the kernel ran as another uid and owned the scratch folder: give it back to the grader
            path = ((resources or {}).get("metadata") or {}).get("path")
            if path and os.getuid() == 0 and os.path.isdir(path):
                for dirpath, dirnames, filenames in os.walk(path):
                    for name in [".", *dirnames, *filenames]:
                        try:
                            os.chown(os.path.join(dirpath, name), 0, 0, follow_symlinks=False)
                        except OSError:
                            pass

    # -- outputs -------------------------------------------------------------------------------

    def output(self, outs, msg, display_id, cell_index):
        out = super().output(outs, msg, display_id, cell_index)
        if out is None or self.max_output_bytes < 0:
            return out
        size = _size(out)
        if self._cell_bytes + size <= self.max_output_bytes:
            self._cell_bytes += size
            return out
        outs.remove(out)
        kind = out.get("output_type")
        if kind == "error":                                  # keep the failure, shorten its traceback
            out.traceback = [t[:2000] for t in out.get("traceback", [])[:20]]
            outs.append(out)
        elif kind == "stream" and out.get("name") == "stderr" and not any(
                o.get("output_type") == "stream" and o.get("name") == "stderr" for o in outs):
            outs.append(NotebookNode(output_type="stream", name="stderr", text=out.text[:2000]))
        if not self._truncated:
            self._truncated = True
            outs.append(NotebookNode(output_type="stream", name="stdout",
                                     text=f"\n[gated-sandbox: output beyond {self.max_output_bytes} bytes dropped]\n"))
        return None

    # -- cells ---------------------------------------------------------------------------------

    def _fail(self, cell, ename: str, evalue: str) -> None:
        cell.outputs.append(NotebookNode(output_type="error", ename=ename, evalue=evalue,
                                         traceback=[f"{ename}: {evalue}"]))

    def preprocess_cell(self, cell, resources, index):
        self._cell_bytes, self._truncated = 0, False
        if cell.cell_type != "code":
            return super().preprocess_cell(cell, resources, index)
        if self._dead:
            cell.outputs = []
            self._fail(cell, "KernelDied", f"not run: {self._dead}")
            return cell, resources
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except Exception as exc:  # noqa: BLE001 - DeadKernelError, CellTimeoutError on iopub, ...
            self.log.warning("gated-sandbox: cell %s failed to execute: %s", index, exc)
            self._fail(cell, type(exc).__name__, f"the cell did not finish: {exc}")
            if not self._alive():
                self._dead = f"the kernel died in cell {index} ({type(exc).__name__})"
            elif not self._responsive():       # e.g. still busy after a timeout: no cell would run
                self._dead = f"the kernel stopped answering after cell {index} ({type(exc).__name__})"
                self._kill()
            return cell, resources
        timed_out = any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError"
                        for o in cell.outputs)
        if timed_out and not self._responsive():
            self._dead = f"the kernel stopped answering after cell {index} timed out"
            self._kill()
        return cell, resources

    def _alive(self) -> bool:
        try:
            from jupyter_core.utils import run_sync
            return bool(self.kc is not None and run_sync(self.kc.is_alive)())
        except Exception:  # noqa: BLE001
            return False

    def _responsive(self) -> bool:
        """Does the kernel answer a trivial request within probe_timeout after an interrupt?"""
        if not self._alive():
            return False
        from jupyter_core.utils import run_sync
        msg_id = self.kc.execute("", silent=True, store_history=False)
        deadline = time.monotonic() + self.probe_timeout
        while time.monotonic() < deadline:
            try:
                reply = run_sync(self.kc.get_shell_msg)(timeout=max(0.1, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - queue.Empty: no answer yet
                return False
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                return True
        return False

    def _kill(self) -> None:
        try:
            from jupyter_core.utils import run_sync
            run_sync(self.km.shutdown_kernel)(now=True)
        except Exception as exc:  # noqa: BLE001
            self.log.warning("gated-sandbox: could not kill the kernel: %s", exc)


def active(argv: list[str] | None = None) -> bool:
    """Is the sandbox used for this nbgrader command? (GATED_SANDBOX, and not for `validate`)."""
    m = mode()
    if m != "auto":
        return m == "on"
    argv = sys.argv if argv is None else argv
    return "validate" not in argv[1:3]


def configure(c) -> bool:
    """Configure nbgrader (the `c` of nbgrader_config.py) to autograde in the sandbox.

    Returns whether the sandbox is active. The per-cell timeout applies with or without it.
    """
    limits = Limits.from_env()
    c.Execute.timeout = limits.cell_timeout
    c.Execute.interrupt_on_timeout = True
    c.LimitOutput.max_lines = 1000
    c.LimitOutput.max_traceback = 100
    if not active():
        return False
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        IgnorePattern,
        LimitOutput,
        SaveAutoGrades,
    )

    c.Autograde.autograde_preprocessors = [SandboxExecute, IgnorePattern, ClearMetadataPreprocessor,
                                           LimitOutput, SaveAutoGrades, AssignLatePenalties,
                                           CheckCellMetadata]
    c.SandboxExecute.kernel_name = ensure_kernelspec()
    c.SandboxExecute.max_output_bytes = limits.output
    c.SandboxExecute.probe_timeout = limits.probe
    return True


__all__ = ["KERNEL_NAME", "SandboxExecute", "SandboxKernelManager", "active", "configure"]
