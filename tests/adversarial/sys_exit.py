"""sys.exit() in a scratch cell and SystemExit from a graded function: IPython catches both."""

from tests.adversarial._nb import (
    PART_A_TESTS,
    add_code_after,
    part_a_correct,
    set_source,
)

DESCRIPTION = "sys.exit"
ZERO = ("test_lstm_forward", "test_lstm_forward_hidden")


def make(release, solution):
    nb = part_a_correct(release, solution)
    add_code_after(nb, "lstm_cell_forward", "import sys\nsys.exit(0)\n")
    set_source(nb, "lstm_forward", '''
def lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None, c0=None):
    raise SystemExit(0)
''')
    return nb


def verify(run):
    for gid in PART_A_TESTS:
        assert run.grade.cells[gid][0] == run.grade.cells[gid][1], gid
