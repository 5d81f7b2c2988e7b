"""os._exit() after Part A: the kernel is gone; what was earned before stays."""

from tests.adversarial._nb import (
    AFTER_A_TESTS,
    PART_A_TESTS,
    add_code_after,
    part_a_correct,
)

DESCRIPTION = "os._exit"
ZERO = AFTER_A_TESTS


def make(release, solution):
    nb = part_a_correct(release, solution)
    add_code_after(nb, "test_lstm_cell_forward_hidden", "import os\nos._exit(0)\n")
    return nb


def verify(run):
    for gid in PART_A_TESTS:
        assert run.grade.cells[gid][0] == run.grade.cells[gid][1], gid
    assert "KernelDied" in run.outputs()
