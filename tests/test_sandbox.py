"""The sandbox's mechanisms, one by one, on the sandboxed kernel itself (no nbgrader in between).

Each test starts the `gated-sandbox` kernel the way the autograder does (SandboxKernelManager, the
kernelspec from ensure_kernelspec) in a scratch folder under tmp_path, runs a few cells and reads
their outputs. The resource-limit tests run twice: with bubblewrap and rlimit-only
(GATED_SANDBOX_BWRAP=off), so the fallback is always tested; the isolation tests need bubblewrap and
install it with apt-get when they can.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from gated_lib.sandbox import bwrap, ensure_kernelspec, guard
from gated_lib.sandbox.kernelspec import KERNEL_NAME, kernelspec
from gated_lib.sandbox.limits import Limits, parse_size
from gated_lib.sandbox.nbgrader import SandboxKernelManager, active
from tests.conftest import REPO


def _bwrap_ok() -> bool:
    ok, _ = bwrap.bwrap_works()
    if not ok and bwrap.bwrap_path() is None and os.getuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "bubblewrap"], capture_output=True, timeout=300)
        bwrap.bwrap_works.cache_clear()
        ok, _ = bwrap.bwrap_works()
    return ok


BWRAP = _bwrap_ok()
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap is not usable here (rlimit-only sandbox)")
MODES = ["rlimit-only", pytest.param("bwrap", marks=needs_bwrap)]


def run_cells(tmp_path, cells, monkeypatch, mode="bwrap", timeout=60, **limits):
    """Execute `cells` in the sandboxed kernel, in tmp_path/course/autograded/s/a; return output texts."""
    monkeypatch.setenv("GATED_SANDBOX_BWRAP", "off" if mode == "rlimit-only" else "require")
    for k, v in limits.items():
        monkeypatch.setenv(f"GATED_SANDBOX_{k.upper()}", str(v))
    course = tmp_path / "course"
    scratch = course / "autograded" / "s" / "a"
    scratch.mkdir(parents=True)
    (course / "nbgrader_config.py").write_text("# course root marker\n")
    (course / "secret.txt").write_text("instructor only\n")
    ensure_kernelspec(tmp_path / "kernels")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=timeout, allow_errors=True,
                            kernel_manager_class=SandboxKernelManager,
                            resources={"metadata": {"path": str(scratch)}})
    try:
        client.execute()
    except Exception as exc:  # noqa: BLE001 - a kernel that dies is a result here
        nb.cells[-1].setdefault("outputs", []).append({"output_type": "stream", "name": "stderr",
                                                       "text": f"CLIENT {type(exc).__name__}: {exc}"})
    texts = []
    for cell in nb.cells:
        parts = []
        for o in cell.get("outputs", []):
            parts.append(o.get("text", "") if o.get("output_type") == "stream"
                         else f"{o.get('ename', '')}: {o.get('evalue', '')}" if o.get("output_type") == "error"
                         else json.dumps(o.get("data", {})))
        texts.append("".join(parts))
    return texts, scratch


# -- pure functions --------------------------------------------------------------------------------

def test_parse_size_and_limits_from_env():
    assert parse_size("4G") == 4 << 30 and parse_size("512M") == 512 << 20 and parse_size("100") == 100
    lim = Limits.from_env({"GATED_SANDBOX_MEMORY": "3G", "GATED_SANDBOX_CPU": "7", "GATED_SANDBOX_UID": "none"})
    assert (lim.memory, lim.cpu, lim.uid, lim.nproc) == (3 << 30, 7, None, Limits().nproc)


def test_kernelspec_is_installed_by_a_function(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", "")
    name = ensure_kernelspec(tmp_path / "k")
    spec = json.loads((tmp_path / "k" / "kernels" / name / "kernel.json").read_text())
    assert spec == kernelspec() and spec["argv"][1:3] == ["-m", "gated_lib.sandbox.kernel"]
    assert os.environ["JUPYTER_PATH"].split(os.pathsep)[0] == str(tmp_path / "k")
    from jupyter_client.kernelspec import KernelSpecManager
    assert KernelSpecManager().get_kernel_spec(name).argv == spec["argv"]


def test_kernelspec_refuses_a_folder_someone_else_prepared(tmp_path, monkeypatch):
    import tempfile

    from gated_lib.sandbox.kernelspec import kernel_dir
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("JUPYTER_PATH", "")
    trap = kernel_dir()
    (trap / "kernels" / KERNEL_NAME).mkdir(parents=True)
    (trap / "kernels" / KERNEL_NAME / "kernel.json").write_text('{"argv": ["evil"]}')
    trap.chmod(0o777)                                    # world-writable: not ours alone
    ensure_kernelspec()
    used = Path(os.environ["JUPYTER_PATH"].split(os.pathsep)[0])
    assert used != trap and json.loads((used / "kernels" / KERNEL_NAME / "kernel.json").read_text()) == kernelspec()


def test_sandbox_applies_to_autograde_not_to_validate(monkeypatch):
    monkeypatch.delenv("GATED_SANDBOX", raising=False)
    assert active(["nbgrader", "autograde", "x"]) and not active(["nbgrader", "validate", "x.ipynb"])
    monkeypatch.setenv("GATED_SANDBOX", "off")
    assert not active(["nbgrader", "autograde", "x"])


def test_nbgrader_config_uses_the_sandbox_for_autograde(monkeypatch):
    from traitlets.config import Config

    from gated_lib.sandbox.nbgrader import SandboxExecute
    monkeypatch.setattr("sys.argv", ["nbgrader", "autograde", "x"])
    monkeypatch.delenv("GATED_SANDBOX", raising=False)
    c = Config()
    exec((REPO / "nbgrader_config.py").read_text(), {"get_config": lambda: c})
    assert c.Autograde.autograde_preprocessors[0] is SandboxExecute
    assert c.SandboxExecute.kernel_name == KERNEL_NAME and c.Execute.timeout == Limits.from_env().cell_timeout


def test_bwrap_plan_hides_and_keeps(tmp_path):
    course, keep = tmp_path / "course", tmp_path / "course" / ".venv"
    scratch = course / "autograded" / "s" / "a"
    for p in (keep, scratch):
        p.mkdir(parents=True)
    argv = bwrap.build_argv(["python"], scratch=scratch, private=tmp_path / "priv", hide=[course], keep=[keep],
                            share_net=False, tmpfs_size=1 << 20, env={"A": "1"}, mask=[scratch / "n.ipynb"])
    line = " ".join(argv)
    assert "--unshare-all" in argv and "--share-net" not in argv and "--clearenv" in argv
    assert f"--tmpfs {course}" in line and f"--ro-bind {keep} {keep}" in line and f"--bind {scratch} {scratch}" in line
    assert line.index(f"--tmpfs {course}") < line.index(f"--ro-bind {keep}") < line.index(f"--bind {scratch}")
    assert f"--ro-bind /dev/null {scratch / 'n.ipynb'}" in line


# -- the guard, in this process -------------------------------------------------------------------

def test_guard_restores_and_reports_tampering():
    import builtins

    import numpy as np

    from gated_lib.grading import core
    g = guard.Guard.capture()
    g.uninstall()
    pristine = (np.allclose, core.compare.__code__, builtins.isinstance, dict(core._TOLERANCES))
    try:
        np.allclose = lambda *a, **k: True
        core.compare.__code__ = (lambda *a, **k: None).__code__
        core._TOLERANCES[np.dtype(np.float64)] = (1e9, 1e9)
        builtins.isinstance = lambda *a: True
        changed = g.restore()
    finally:
        np.allclose, core.compare.__code__, builtins.isinstance = pristine[:3]
        core._TOLERANCES.clear()
        core._TOLERANCES.update(pristine[3])
    assert {"numpy.allclose", "builtins.isinstance", "gated_lib.grading.core._TOLERANCES (content)"} <= set(changed)
    assert any(c.startswith("gated_lib.grading.core.compare") for c in changed)
    assert np.allclose is pristine[0] and core.compare.__code__ is pristine[1]
    assert g.restore() == []                         # nothing left to restore: no false alarm


# -- resource limits: with and without bubblewrap --------------------------------------------------

def _drops_uid(mode: str) -> bool:
    """Does the kernel run as an unprivileged uid? (Always with bwrap; rlimit-only as root only when
    another uid can reach the interpreter, which is not the case for a Python under /root.)"""
    from gated_lib.sandbox.kernel import _untraversable_ancestors
    if os.getuid() != 0 or mode == "bwrap":
        return True
    exe = Path(os.path.realpath(__import__("sys").executable))
    return not _untraversable_ancestors(exe.parent.parent) and not _untraversable_ancestors(Path(__import__("sys").prefix))


@pytest.mark.parametrize("mode", MODES)
def test_limits_uid_memory_processes_files(tmp_path, monkeypatch, mode):
    nproc_applies = _drops_uid(mode) or os.getuid() != 0
    fork = ("import time\nn = 0\ntry:\n    while n < 200:\n        if os.fork() == 0:\n            time.sleep(5); os._exit(0)\n"
            "        n += 1\nexcept OSError:\n    print('FORK REFUSED', n)") if nproc_applies else "print('root: RLIMIT_NPROC does not apply')"
    if not nproc_applies:
        print(f"[{mode}] the kernel stays root here (interpreter under a private home): RLIMIT_NPROC not tested")
    out, scratch = run_cells(tmp_path, [
        "import os, resource\nprint('uid', os.getuid(), 'cpu', resource.getrlimit(resource.RLIMIT_CPU)[0], "
        "'data', resource.getrlimit(resource.RLIMIT_DATA)[0])",
        "try:\n    x = bytearray(3 << 30)\n    print('ALLOCATED')\nexcept MemoryError:\n    print('MEMORY REFUSED')",
        "try:\n    open('big.bin', 'wb').write(b'x' * (8 << 20))\n    print('BIG FILE')\nexcept OSError as e:\n    print('FILE REFUSED', e.errno)",
        "open('small.txt', 'w').write('ok'); print('SCRATCH OK')",
        fork,                            # last: the sleeping children hold the process count
    ], monkeypatch, mode, memory="1G", nproc=64, fsize="4M", cpu=60)
    if os.getuid() == 0 and _drops_uid(mode):
        assert 100_000 <= int(out[0].split()[1]) < 150_000, out[0]
    assert "cpu 60 data 1073741824" in out[0], out[0]
    assert "MEMORY REFUSED" in out[1], out[1]
    assert "FILE REFUSED 27" in out[2], out[2]                     # EFBIG
    assert "SCRATCH OK" in out[3] and (scratch / "small.txt").read_text() == "ok"
    if nproc_applies:
        assert "FORK REFUSED" in out[4] and int(out[4].split()[-1]) < 64, out[4]


@pytest.mark.parametrize("mode", MODES)
def test_cpu_limit_kills_the_kernel(tmp_path, monkeypatch, mode):
    out, _ = run_cells(tmp_path, ["while True:\n    pass", "print('still here')"], monkeypatch, mode,
                       cpu=3, timeout=60)
    assert "still here" not in out[1] and ("Dead" in out[-1] or "died" in out[-1].lower()), out


# -- isolation: bubblewrap only ---------------------------------------------------------------------

@needs_bwrap
def test_no_network_no_course_root_readonly_filesystem(tmp_path, monkeypatch):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        out, scratch = run_cells(tmp_path, [
            f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('CONNECTED')\n"
            "except OSError as e:\n    print('NO NETWORK', type(e).__name__)",
            "import pathlib\nroot = pathlib.Path.cwd().parents[2]\nprint(sorted(p.name for p in root.iterdir()))",
            "try:\n    open('/usr/PWNED', 'w')\nexcept OSError as e:\n    print('READ-ONLY', e.errno)",
            f"try:\n    open({str(REPO / 'README.md')!r}).read()\n    print('REPO VISIBLE')\nexcept OSError:\n    print('REPO HIDDEN')",
            "import os\nprint(sorted(os.environ))",
        ], monkeypatch, "bwrap")
    finally:
        server.close()
    assert "NO NETWORK" in out[0], out[0]
    assert "secret.txt" not in out[1] and "nbgrader_config.py" not in out[1], out[1]
    assert "READ-ONLY" in out[2] and not Path("/usr/PWNED").exists()
    assert "REPO HIDDEN" in out[3], out[3]
    assert "JUPYTER_PATH" not in out[4] and "GATED_SANDBOX_CPU" not in out[4], out[4]


def test_guard_protects_torch_imported_after_capture():
    """torch is not imported at capture (it costs seconds); the guard snapshots it when the notebook
    imports it, before the importing cell can patch it. A fresh interpreter, so torch is not loaded."""
    code = (
        "from gated_lib.sandbox import guard\n"
        "g = guard.Guard.capture()\n"
        "import sys; assert 'torch' not in sys.modules\n"
        "import torch\n"
        "assert g.restore() == [], g.restore()\n"
        # torch's own lazy import of torch._dynamo (any optimizer) rebinds torch.manual_seed: not tampering
        "torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)\n"
        "assert g.restore() == [], g.restore()\n"
        "m = torch.nn.GRU(3, 4)\n"
        "torch.Tensor.numel = lambda self: 1\n"
        "torch.nn.Module.parameters = lambda self, recurse=True: iter([])\n"
        "torch.nn.GRU.forward = lambda *a, **k: None\n"
        "print(sorted(g.restore()))\n"
        "print(sum(p.numel() for p in m.parameters()))\n")
    proc = subprocess.run([__import__("sys").executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == str(sorted(["torch.Tensor.numel", "torch.nn.modules.module.Module.parameters",
                                   "torch.nn.modules.rnn.GRU.forward"])), lines
    assert lines[1] == "108" and proc.stderr == "", proc.stderr[-500:]      # 3*4*(3+4) + 6*4
