"""Kill its own kernel (SIGKILL to itself, after trying its parent and every process it can see)."""

from tests.adversarial._nb import (
    AFTER_A_TESTS,
    PART_A_TESTS,
    add_code_after,
    part_a_correct,
)

DESCRIPTION = "kill the kernel"
ZERO = AFTER_A_TESTS


def make(release, solution):
    nb = part_a_correct(release, solution)
    add_code_after(nb, "test_lstm_cell_forward_hidden", '''
import os, signal
if os.getuid() != 0:          # never as root outside a sandbox: that would hit the whole machine
  for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()] + [os.getppid()]:
      if pid != os.getpid():
          try:
              os.kill(pid, signal.SIGKILL)
          except OSError:
              pass
os.kill(os.getpid(), signal.SIGKILL)
''')
    return nb


def verify(run):
    for gid in PART_A_TESTS:
        assert run.grade.cells[gid][0] == run.grade.cells[gid][1], gid
    assert "KernelDied" in run.outputs()
