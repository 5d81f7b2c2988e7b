"""Fork until refused, after Part A; the children sleep for an hour (they must not outlive the grading).
While they live they hold the sandbox's process count, so the cells after the bomb fail: the bomb
only hurts the bomber."""

from tests.adversarial._nb import (
    AFTER_A_TESTS,
    PART_A_TESTS,
    add_code_after,
    part_a_correct,
)

DESCRIPTION = "fork bomb"
ZERO = AFTER_A_TESTS

LIMIT = 3000          # the bomb stops by itself here, in case no limit stops it first


def make(release, solution):
    nb = part_a_correct(release, solution)
    add_code_after(nb, "test_lstm_cell_forward_hidden", f'''
import os, time
n = 0
try:
    while n < {LIMIT}:
        pid = os.fork()
        if pid == 0:
            time.sleep(3600)
            os._exit(0)
        n += 1
except OSError as exc:
    print(f"fork refused after {{n}} processes: {{exc}}")
''')
    return nb


def verify(run):
    for gid in PART_A_TESTS:
        assert run.grade.cells[gid][0] == run.grade.cells[gid][1], gid
    assert "fork refused after" in run.outputs()
