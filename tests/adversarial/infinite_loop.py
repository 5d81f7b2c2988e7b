"""An infinite loop in a scratch cell (interruptible), then Part A solved, then an infinite loop that
ignores interrupts in lstm_forward: the first costs one timeout, the second gets the kernel killed."""

from tests.adversarial._nb import (
    AFTER_A_TESTS,
    PART_A_TESTS,
    add_code_after,
    part_a_correct,
    set_source,
)

DESCRIPTION = "infinite loops, one of them deaf to interrupts"
ZERO = AFTER_A_TESTS


def make(release, solution):
    nb = part_a_correct(release, solution)
    add_code_after(nb, "setup", "while True:\n    pass\n")
    set_source(nb, "lstm_forward", '''
import signal, time
def lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None, c0=None):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            time.sleep(0.05)
        except BaseException:
            pass
''')
    return nb


def verify(run):
    for gid in PART_A_TESTS:
        assert run.grade.cells[gid][0] == run.grade.cells[gid][1], gid      # earned before the loops: kept
    text = run.outputs()
    assert "CellTimeoutError" in text and "KernelDied" in text
