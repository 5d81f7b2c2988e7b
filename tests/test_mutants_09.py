"""Exercise 09's tests catch real bugs, accept other correct solutions and refuse the reference.

Each mutant is a solution cell with one deliberate bug (a textual edit of the solution, checked to
apply), run through the notebook's visible and hidden tests (tests/mutation.py). The exercise must
fail it, with a message that names the bug, and must not take points elsewhere: the minGRU is graded
with the checker's own scan, so a bug in parallel_scan never costs part C. The three solution cells
are checked independently, so one notebook run carries one mutant of each (a run costs a kernel start).
"""

from __future__ import annotations

import inspect

import pytest

from tests.mutation import assert_diagnosed, cell_source, edit, failing, run_mutant
from tests.test_grading_beyond import (
    blelloch,
    log_space,
    loop_preallocated,
    mingru_einsum,
)

NAME = "09_beyond"
SOURCES = {gid: cell_source(NAME, gid) for gid in ("linear_scan", "parallel_scan", "mingru_forward")}
TESTS = {
    "linear_scan": {"test_linear_scan", "test_linear_scan_hidden"},
    "parallel_scan": {"test_parallel_scan", "test_parallel_scan_hidden", "test_parallel_scan_depth"},
    "mingru_forward": {"test_mingru_forward", "test_mingru_forward_hidden"},
}


STEP = "state = a[t] * state + b[t]"
STORE = "        h[t] = state\n"
B_UPDATE = "B[d:] = A[d:] * B[:-d] + B[d:]"
A_UPDATE = "        A[d:] = A[:-d] * A[d:]\n"
B_LINE = next(line + "\n" for line in SOURCES["parallel_scan"].splitlines() if B_UPDATE in line)
WHILE = "while d < A.shape[0]:"
ROLL = "        A, B = A * np.roll(A, d, axis=0), A * np.roll(B, d, axis=0) + B\n"   # wraps around
SCAN_CALL = "return scan(1 - z, z * h_tilde, h0)"
GATE = "sigmoid(x @ weight_z.T + bias_z)"
CANDIDATE = "h_tilde = x @ weight_h.T + bias_h"

# Each run: {grade_id: (edits, the tests that must fail (the first carries the phrase), phrase)}
RUNS = {
    "h0 ignored / combine in the wrong order / z's sign swapped": {
        "linear_scan": ([("state = h0", "state = np.zeros_like(h0)")], ["test_linear_scan"], "h0 ignored"),
        "parallel_scan": ([(B_UPDATE, "B[d:] = A[:-d] * B[d:] + B[:-d]")], ["test_parallel_scan"],
                          "the combine in the wrong order"),
        "mingru_forward": ([(SCAN_CALL, "return scan(z, (1 - z) * h_tilde, h0)")], ["test_mingru_forward"],
                           "z's role flipped"),
    },
    "b off by one / a2*b1 missing / no sigmoid": {
        "linear_scan": ([(STEP, "state = a[t] * state + (b[t - 1] if t else 0)")], ["test_linear_scan"],
                        "b shifted by one step"),
        "parallel_scan": ([(B_UPDATE, "B[d:] = B[:-d] + B[d:]")], ["test_parallel_scan"], "the a2 * b1 term missing"),
        "mingru_forward": ([(GATE, "(x @ weight_z.T + bias_z)")], ["test_mingru_forward"], "no sigmoid on z"),
    },
    "backwards / a round too few / tanh on the candidate": {
        "linear_scan": ([("for t in range(a.shape[0]):", "for t in reversed(range(a.shape[0])):")],
                        ["test_linear_scan"], "run backwards in time"),
        "parallel_scan": ([(WHILE, "while 2 * d <= A.shape[0]:")], ["test_parallel_scan", "test_parallel_scan_hidden"],
                          "one doubling round too few"),
        "mingru_forward": ([(CANDIDATE, "h_tilde = np.tanh(x @ weight_h.T + bias_h)")], ["test_mingru_forward"],
                           "a tanh on the candidate"),
    },
    "exclusive / A before B / h0 not passed to the scan": {
        "linear_scan": ([(STORE, ""), ("        " + STEP, STORE + "        " + STEP)],
                        ["test_linear_scan"], "the exclusive form"),
        "parallel_scan": ([(B_LINE, ""), (A_UPDATE, A_UPDATE + B_LINE)], ["test_parallel_scan"],
                          "A updated before B"),
        "mingru_forward": ([(SCAN_CALL, "return scan(1 - z, z * h_tilde, np.zeros_like(h0))")],
                           ["test_mingru_forward"], "h0 ignored: pass it to the scan"),
    },
    "h0 not decayed / np.roll / bias_h missing": {
        "linear_scan": ([(STEP, "state = (a[t] if t else 1) * state + b[t]")], ["test_linear_scan"],
                        "h0 not decayed"),
        "parallel_scan": ([(B_LINE, ""), (A_UPDATE, ROLL)],
                          ["test_parallel_scan"], "np.roll wrapping around"),
        "mingru_forward": ([(CANDIDATE, "h_tilde = x @ weight_h.T")], ["test_mingru_forward"], "bias_h missing"),
    },
}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_mutants_fail_with_a_diagnosis(run, tmp_path):
    assert_diagnosed(NAME, SOURCES, run, RUNS[run], tmp_path)


def test_a_broken_scan_costs_only_part_b(tmp_path):
    """mingru_forward calls the learner's parallel_scan by default, but is graded with the checker's scan."""
    broken = edit(SOURCES["parallel_scan"], (B_UPDATE, "B[d:] = A[:-d] * B[d:] + B[:-d]"))
    fails = failing(run_mutant(NAME, {"parallel_scan": broken}, tmp_path))
    assert set(fails) == TESTS["parallel_scan"], fails


LOOP_SCAN = '''def parallel_scan(a, b, h0):
    # Right, but sequential: a loop over the time steps.
    out, h = [], h0
    for t in range(len(a)):
        h = a[t] * h + b[t]
        out.append(h)
    return np.stack(out)
'''
STEP_BY_STEP_MINGRU = '''def mingru_forward(x, weight_z, bias_z, weight_h, bias_h, h0, scan=parallel_scan):
    # Right, but one scan call per time step: a loop over time.
    out, h = [], h0
    for t in range(x.shape[0]):
        z = sigmoid(x[t:t + 1] @ weight_z.T + bias_z)
        h = scan(1 - z, z * (x[t:t + 1] @ weight_h.T + bias_h), h)[0]
        out.append(h)
    return np.stack(out)
'''
UNSTABLE_SIGMOID_MINGRU = '''def mingru_forward(x, weight_z, bias_z, weight_h, bias_h, h0, scan=parallel_scan):
    u = x @ weight_z.T + bias_z
    z = np.exp(u) / (1 + np.exp(u))            # NaN once u > 709: only saturated gates show it
    return scan(1 - z, z * (x @ weight_h.T + bias_h), h0)
'''


def test_loops_over_time_lose_only_the_depth_points(tmp_path):
    """A correct loop in parallel_scan or mingru_forward keeps the correctness points and loses the depth
    ones; an overflowing sigmoid passes the visible tests and fails the hidden (saturated) ones."""
    fails = failing(run_mutant(NAME, {"parallel_scan": LOOP_SCAN, "mingru_forward": STEP_BY_STEP_MINGRU}, tmp_path))
    assert set(fails) == {"test_parallel_scan_depth", "test_mingru_forward"}, fails
    assert "Python loop over the time steps" in fails["test_parallel_scan_depth"], fails["test_parallel_scan_depth"]
    assert "compute z and h_tilde for all steps at once" in fails["test_mingru_forward"], fails["test_mingru_forward"]
    fails = failing(run_mutant(NAME, {"mingru_forward": UNSTABLE_SIGMOID_MINGRU}, tmp_path))
    assert set(fails) == {"test_mingru_forward_hidden"}, fails
    assert "NaN" in fails["test_mingru_forward_hidden"], fails["test_mingru_forward_hidden"]


def as_cell(fn, name: str) -> str:
    """The source of one of test_grading_beyond's correct solutions, as the learner's cell `name`."""
    source = inspect.getsource(fn).replace(f"def {fn.__name__}(", f"def {name}(", 1)
    return source.replace("scan=hillis_steele", "scan=parallel_scan")


ALTERNATIVES = [
    {   # a list and np.stack; Blelloch's work-efficient scan; einsum and a naive sigmoid
        "linear_scan": '''def linear_scan(a, b, h0):
    states = [h0]
    for a_t, b_t in zip(a, b):
        states.append(a_t * states[-1] + b_t)
    return np.stack(states[1:])
''',
        "parallel_scan": as_cell(blelloch, "parallel_scan"),
        "mingru_forward": as_cell(mingru_einsum, "mingru_forward"),
    },
    {   # a loop from t = 1 into a preallocated array; a log-space closed form (a > 0); float64 inside
        "linear_scan": as_cell(loop_preallocated, "linear_scan"),
        "parallel_scan": as_cell(log_space, "parallel_scan"),
        "mingru_forward": '''def mingru_forward(x, weight_z, bias_z, weight_h, bias_h, h0, scan=parallel_scan):
    x64 = x.astype(np.float64)
    z = sigmoid(x64 @ weight_z.T.astype(np.float64) + bias_z)
    h = scan(1 - z, z * (x64 @ weight_h.T.astype(np.float64) + bias_h), h0.astype(np.float64))
    return h.astype(x.dtype)
''',
    },
]


@pytest.mark.parametrize("k", range(len(ALTERNATIVES)))
def test_alternative_correct_solutions_get_every_test(k, tmp_path):
    outcomes = run_mutant(NAME, ALTERNATIVES[k], tmp_path)
    assert outcomes and not failing(outcomes), f"a correct alternative solution fails: {failing(outcomes)}"


CALLS_REFERENCE = {
    "linear_scan": '''def linear_scan(a, b, h0):
    from gated_lib.linear_recurrence import linear_scan as reference
    return reference(a, b, h0)
''',
    "parallel_scan": '''def parallel_scan(a, b, h0):
    import gated_lib
    return gated_lib.linear_recurrence.parallel_scan(a, b, h0)
''',
    "mingru_forward": '''def mingru_forward(x, weight_z, bias_z, weight_h, bias_h, h0, scan=parallel_scan):
    from gated_lib.linear_recurrence import mingru_forward as reference
    params = dict(weight_z=weight_z, bias_z=bias_z, weight_h=weight_h, bias_h=bias_h)
    return reference(x, params, h0, parallel=True)[0]
''',
}


def test_calling_the_reference_fails_and_says_so(tmp_path):
    fails = failing(run_mutant(NAME, CALLS_REFERENCE, tmp_path))
    for test, called in [("test_linear_scan", "gated_lib.linear_recurrence.linear_scan"),
                         ("test_parallel_scan", "gated_lib.linear_recurrence.parallel_scan"),
                         ("test_parallel_scan_depth", "gated_lib.linear_recurrence.parallel_scan"),
                         ("test_mingru_forward", "gated_lib.linear_recurrence.mingru_forward")]:
        assert test in fails, f"{test} passes a function that calls the reference"
        assert called in fails[test] and "a reference implementation" in fails[test], fails[test][:600]
