"""Allocate memory until something breaks: a growing list in a scratch cell, a huge array in lstm_forward."""

from tests.adversarial._nb import (
    AFTER_A_TESTS,
    PART_A_TESTS,
    add_code_after,
    part_a_correct,
    set_source,
)

DESCRIPTION = "memory bombs"
ZERO = AFTER_A_TESTS


def make(release, solution):
    nb = part_a_correct(release, solution)
    add_code_after(nb, "setup", '''
hog = []
try:
    while True:
        hog.append(b"x" * (64 << 20))      # touched memory, 64 MiB at a time
except MemoryError:
    print(f"MemoryError after {len(hog) * 64} MiB")
    raise
finally:
    hog.clear()
''')
    set_source(nb, "lstm_forward", '''
def lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None, c0=None):
    return np.ones((1 << 20, 1 << 20)), None
''')
    return nb


def verify(run):
    for gid in PART_A_TESTS:
        assert run.grade.cells[gid][0] == run.grade.cells[gid][1], gid
    assert "MemoryError after" in run.outputs()
