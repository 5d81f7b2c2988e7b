"""The checkers of exercise 9 (gated_lib.grading.beyond): they accept every correct solution, name
every known bug, refuse a loop over time in the parallel scan, and refuse the library's reference.

Each learner solution below is written the way a learner writes it (not through gated_lib), so a
passing test says something about the checker, not about the reference it compares with.
"""

from __future__ import annotations

import functools
import itertools
import sys

import numpy as np
import pytest

from gated_lib import linear_recurrence as ref
from gated_lib.grading import beyond as grading
from gated_lib.grading.core import GradingFailure

HIDDEN = dict(seed=7, fixed=False, n_random=6, edge_sizes=True, dtypes=("float32", "float64"))


def failure(check, fn, **kwargs) -> str:
    with pytest.raises(GradingFailure) as info:
        check(fn, **kwargs)
    return str(info.value)


def sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


# ------------------------------------------------------------------------------------------------
# Correct scans
# ------------------------------------------------------------------------------------------------

def loop_stack(a, b, h0):
    h, states = h0, []
    for t in range(a.shape[0]):
        h = a[t] * h + b[t]
        states.append(h)
    return np.stack(states)


def loop_preallocated(a, b, h0):
    h = np.empty_like(b)
    h[0] = a[0] * h0 + b[0]
    for t in range(1, len(a)):
        h[t] = a[t] * h[t - 1] + b[t]
    return h


def hillis_steele(a, b, h0):
    A, B = a.copy(), b.copy()
    B[0] = B[0] + a[0] * h0
    d = 1
    while d < len(A):
        B[d:] = A[d:] * B[:-d] + B[d:]
        A[d:] = A[:-d] * A[d:]
        d *= 2
    return B


def hillis_steele_post(a, b, h0):
    """Doubling with padding by the identity (1, 0) and h0 applied at the end; rounds by ceil(log2)."""
    A, B = a, b
    for k in range(int(np.ceil(np.log2(len(a))))):
        d = 2 ** k
        A_prev = np.concatenate([np.ones_like(A[:d]), A[:-d]])
        B_prev = np.concatenate([np.zeros_like(B[:d]), B[:-d]])
        A, B = A_prev * A, A * B_prev + B
    return A * h0 + B


def log_space(a, b, h0):
    """For a > 0: h_t = sum_s exp(L_t - L_s) b_s + exp(L_t) h0, L the cumulative sum of log a, computed
    with logaddexp.accumulate on the positive and negative parts of b separately (no underflow)."""
    log_a = np.cumsum(np.log(a), axis=0)
    b = b.copy()
    b[0] = b[0] + a[0] * h0
    with np.errstate(divide="ignore"):
        pos = np.logaddexp.accumulate(np.log(np.maximum(b, 0)) - log_a, axis=0)
        neg = np.logaddexp.accumulate(np.log(np.maximum(-b, 0)) - log_a, axis=0)
    return np.exp(log_a + pos) - np.exp(log_a + neg)


def float64_inside(a, b, h0):
    return hillis_steele(*(np.asarray(v, np.float64) for v in (a, b, h0))).astype(a.dtype)


def blelloch(a, b, h0):
    """Work-efficient: up-sweep and down-sweep on a length padded to a power of two (identity (1, 0))."""
    T = len(a)
    n = 1 << (T - 1).bit_length()
    A = np.concatenate([a, np.ones((n - T,) + a.shape[1:], a.dtype)])
    B = np.concatenate([b, np.zeros((n - T,) + b.shape[1:], b.dtype)])
    B[0] = B[0] + a[0] * h0
    d = 1
    while d < n:
        i = np.arange(2 * d - 1, n, 2 * d)
        B[i] = A[i] * B[i - d] + B[i]
        A[i] = A[i - d] * A[i]
        d *= 2
    A[n - 1], B[n - 1] = 1, 0                       # the identity at the root: an exclusive scan
    d = n // 2
    while d >= 1:
        i = np.arange(2 * d - 1, n, 2 * d)
        left_A, left_B = A[i - d].copy(), B[i - d].copy()
        A[i - d], B[i - d] = A[i], B[i]
        B[i] = left_A * B[i] + left_B
        A[i] = A[i] * left_A
        d //= 2
    return a * B[:T] + np.concatenate([b[:1] + a[:1] * h0, b[1:]])   # exclusive prefix, then step t


CORRECT_LOOPS = [loop_stack, loop_preallocated]
CORRECT_PARALLEL = [hillis_steele, hillis_steele_post, blelloch, log_space, float64_inside]


@pytest.mark.parametrize("fn", CORRECT_LOOPS + CORRECT_PARALLEL, ids=lambda f: f.__name__)
def test_correct_scans_pass_visible_and_hidden(fn, capsys):
    grading.check_linear_scan(fn)
    grading.check_linear_scan(fn, **HIDDEN)
    grading.check_parallel_scan(fn)
    grading.check_parallel_scan(fn, **HIDDEN)
    assert "all 4 cases pass" in capsys.readouterr().out


@pytest.mark.parametrize("fn", CORRECT_PARALLEL, ids=lambda f: f.__name__)
def test_log_depth_scans_pass_the_depth_check(fn, capsys):
    grading.check_scan_depth(fn)
    assert "no loop over time" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# Scans that loop over time, however the loop is hidden
# ------------------------------------------------------------------------------------------------

def accumulate_scan(a, b, h0):
    steps = itertools.accumulate(zip(a, b), lambda hb, ab: (None, ab[0] * hb[1] + ab[1]),
                                 initial=(None, h0))
    return np.stack([h for _, h in list(steps)[1:]])


def reduce_scan(a, b, h0):
    return np.stack(functools.reduce(lambda hs, t: hs + [a[t] * hs[-1] + b[t]], range(len(a)), [h0])[1:])


def chunked_scan(a, b, h0):
    """A loop over sqrt(T) chunks, a vectorised closed form inside each: O(sqrt T) Python iterations."""
    T = len(a)
    c = max(1, int(np.sqrt(T)))
    out, h = [], h0
    for s in range(0, T, c):
        A = np.cumprod(a[s:s + c], axis=0)
        B = hillis_steele(a[s:s + c], b[s:s + c], np.zeros_like(h0))
        out.append(A * h + B)
        h = out[-1][-1]
    return np.concatenate(out)


def calls_own_loop(a, b, h0):
    return loop_stack(a, b, h0)


@pytest.mark.parametrize("fn", [loop_stack, loop_preallocated, accumulate_scan, reduce_scan, chunked_scan,
                                calls_own_loop], ids=lambda f: f.__name__)
def test_loops_over_time_fail_the_depth_check(fn):
    grading.check_parallel_scan(fn)                 # right, ...
    msg = failure(grading.check_scan_depth, fn)     # ... but sequential
    assert "Python loop over the time steps" in msg and "T = 16384" in msg, msg


def test_depth_rule_on_counts():
    grading._depth_verdict("f", [28, 44, 60], "")               # Hillis-Steele: 4 lines per round
    grading._depth_verdict("f", [300, 700, 1100], "")           # 100 lines per round
    grading._depth_verdict("f", [12, 12, 12], "")               # a closed form: no growth
    for counts in ([130, 2050, 32770], [8 * 3, 32 * 3, 128 * 3], [0, 0, 41], [0, 400, 901]):
        with pytest.raises(GradingFailure):
            grading._depth_verdict("f", counts, "")


def naive_closed_form(a, b, h0):
    A = np.cumprod(a, axis=0)
    return A * (h0 + np.cumsum(b / A, axis=0))


def test_underflowing_closed_form_is_told_why():
    grading.check_parallel_scan(naive_closed_form)
    msg = failure(grading.check_scan_depth, naive_closed_form)
    assert "T = 16384" in msg and "underflows" in msg, msg


def test_switching_off_the_line_counter_fails():
    def sneaky(a, b, h0):
        sys.settrace(None)
        return loop_stack(a, b, h0)
    msg = failure(grading.check_scan_depth, sneaky)
    assert "line counter" in msg, msg


# ------------------------------------------------------------------------------------------------
# Buggy scans: each one written as a learner would, each named
# ------------------------------------------------------------------------------------------------

def _hs(a, b, h0, fold=True, update=None, rounds=None):
    A, B = a.copy(), b.copy()
    if fold:
        B[0] = B[0] + a[0] * h0
    d, k = 1, 0
    while d < len(A) and (rounds is None or k < rounds):
        update(A, B, d)
        d, k = 2 * d, k + 1
    return B


def _good_update(A, B, d):
    B[d:] = A[d:] * B[:-d] + B[d:]
    A[d:] = A[:-d] * A[d:]


def bug_h0_ignored(a, b, h0):
    return _hs(a, b, h0, fold=False, update=_good_update)


def bug_h0_not_decayed(a, b, h0):
    b = b.copy()
    b[0] = b[0] + h0
    return _hs(a, b, h0, fold=False, update=_good_update)


def bug_b_shifted(a, b, h0):
    h, prev_b, out = h0, np.zeros_like(h0), []
    for t in range(len(a)):
        h = a[t] * h + prev_b
        prev_b = b[t]
        out.append(h)
    return np.stack(out)


def bug_a_shifted(a, b, h0):
    h, out = h0, []
    for t in range(len(a)):
        h = (a[t - 1] if t > 0 else 1.0) * h + b[t]
        out.append(h)
    return np.stack(out)


def bug_no_a2b1(a, b, h0):
    def update(A, B, d):
        B[d:] = B[:-d] + B[d:]
        A[d:] = A[:-d] * A[d:]
    return _hs(a, b, h0, update=update)


def bug_only_b2(a, b, h0):
    def update(A, B, d):
        A[d:] = A[:-d] * A[d:]
    return _hs(a, b, h0, update=update)


def bug_wrong_order(a, b, h0):
    def update(A, B, d):
        B[d:] = A[:-d] * B[d:] + B[:-d]
        A[d:] = A[:-d] * A[d:]
    return _hs(a, b, h0, update=update)


def bug_backwards(a, b, h0):
    h, out = h0, np.empty_like(b)
    for t in reversed(range(len(a))):
        h = a[t] * h + b[t]
        out[t] = h
    return out


def bug_reversed_output(a, b, h0):
    return loop_stack(a, b, h0)[::-1]


def bug_floor_rounds(a, b, h0):
    return _hs(a, b, h0, update=_good_update, rounds=int(np.log2(len(a))))


def bug_a_before_b(a, b, h0):
    def update(A, B, d):
        A[d:] = A[:-d] * A[d:]
        B[d:] = A[d:] * B[:-d] + B[d:]
    return _hs(a, b, h0, update=update)


def bug_roll_wraps(a, b, h0):
    A, B = a.copy(), b.copy()
    B[0] = B[0] + a[0] * h0
    d = 1
    while d < len(A):
        A, B = A * np.roll(A, d, axis=0), A * np.roll(B, d, axis=0) + B
        d *= 2
    return B


def bug_exclusive(a, b, h0):
    h, out = h0, []
    for t in range(len(a)):
        out.append(h)
        h = a[t] * h + b[t]
    return np.stack(out)


SCAN_MUTANTS = {bug: globals()["bug_" + bug] for bug in grading.SCAN_BUGS}


@pytest.mark.parametrize("bug", list(SCAN_MUTANTS))
def test_scan_bugs_fail_with_their_name(bug):
    msg = failure(grading.check_parallel_scan, SCAN_MUTANTS[bug])
    assert "Diagnosis" in msg and grading.SCAN_BUGS[bug] in msg, msg
    msg = failure(grading.check_linear_scan, SCAN_MUTANTS[bug], **HIDDEN)
    assert grading.SCAN_BUGS[bug] in msg, msg


@pytest.mark.parametrize("bug", list(grading.SCAN_BUGS))
def test_every_scan_variant_differs_from_the_scan(bug):
    """A diagnosis is only worth something if the mistake changes the output (T = 7, not a power of 2)."""
    case = grading.scan_cases(3, dtypes=("float64",))[2]
    a, b, h0 = (case.arrays[k] for k in ("a", "b", "h0"))
    right = ref.linear_scan(a, b, h0)
    variants = grading.scan_variants(a, b, h0, bug)
    assert variants and all(np.abs(v - right).max() > 1e-3 for v in variants), bug


def test_unknown_mistake_gets_the_general_hint():
    msg = failure(grading.check_parallel_scan, lambda a, b, h0: loop_stack(a, b, h0) * 1.01)
    assert "Hint:" in msg and "a2 * b1 + b2" in msg, msg


# ------------------------------------------------------------------------------------------------
# Interface mistakes, shared by every checker
# ------------------------------------------------------------------------------------------------

def test_not_implemented():
    def todo(a, b, h0):
        raise NotImplementedError()
    assert "not implemented yet" in failure(grading.check_linear_scan, todo)


def test_changing_an_input_in_place_fails():
    def inplace(a, b, h0):
        b[0] += a[0] * h0
        return hillis_steele(a, b, np.zeros_like(h0))
    assert "changed its input b in place" in failure(grading.check_parallel_scan, inplace)


def test_float32_must_stay_float32():
    def upcasts(a, b, h0):
        return hillis_steele(*(v.astype(np.float64) for v in (a, b, h0)))
    msg = failure(grading.check_parallel_scan, upcasts)
    assert "dtype float64, but the inputs are float32" in msg, msg


def test_returning_a_list_of_states_says_how_to_stack():
    msg = failure(grading.check_linear_scan, lambda a, b, h0: list(loop_stack(a, b, h0)))
    assert "np.stack" in msg, msg


def test_calling_the_library_reference_fails():
    def uses_reference(a, b, h0):
        from gated_lib.linear_recurrence import parallel_scan
        return parallel_scan(a, b, h0)
    msg = failure(grading.check_parallel_scan, uses_reference)
    assert "gated_lib.linear_recurrence.parallel_scan" in msg and "a reference implementation" in msg, msg


# ------------------------------------------------------------------------------------------------
# minGRU
# ------------------------------------------------------------------------------------------------

HIDDEN_MG = dict(seed=11, fixed=False, n_random=5, edge_sizes=True, saturate=True, dtypes=("float32", "float64"))


def mingru(x, weight_z, bias_z, weight_h, bias_h, h0, scan=hillis_steele):
    z = sigmoid(x @ weight_z.T + bias_z)
    h_tilde = x @ weight_h.T + bias_h
    return scan(1 - z, z * h_tilde, h0)


def mingru_einsum(x, weight_z, bias_z, weight_h, bias_h, h0, scan=hillis_steele):
    """Another correct solution: einsum, a naive sigmoid, and b written as h~ - a h~."""
    z = 1.0 / (1.0 + np.exp(-(np.einsum("tbd,hd->tbh", x, weight_z) + bias_z)))
    h_tilde = np.einsum("tbd,hd->tbh", x, weight_h) + bias_h
    a = 1.0 - z
    return scan(a, h_tilde - a * h_tilde, h0).astype(x.dtype)


@pytest.mark.parametrize("fn", [mingru, mingru_einsum], ids=lambda f: f.__name__)
def test_correct_mingru_passes(fn, capsys):
    grading.check_mingru_forward(fn)
    grading.check_mingru_forward(fn, **HIDDEN_MG)
    assert "It does not loop over time" in capsys.readouterr().out


def test_mingru_variant_without_bugs_is_the_reference():
    for case in grading.mingru_cases(5, n_random=2, saturate=True, dtypes=("float64",)):
        arr = case.arrays
        expected, _ = ref.mingru_forward(arr["x"], {k: arr[k] for k in ref.MINGRU_PARAMS}, arr["h0"])
        got = grading.mingru_variant(*(arr[k] for k in grading._MG_ARGS))
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def _mingru_with(bug):
    def fn(x, weight_z, bias_z, weight_h, bias_h, h0, scan=hillis_steele):
        if bug == "weights_T":
            weight_z, weight_h = weight_z.T, weight_h.T
        pre = x @ weight_z.T + (0 if bug == "no_bias_z" else bias_z)
        z = {"no_sigmoid": pre, "tanh_z": np.tanh(pre)}.get(bug, sigmoid(pre))
        h_tilde = x @ weight_h.T + (0 if bug == "no_bias_h" else bias_h)
        if bug == "tanh_candidate":
            h_tilde = np.tanh(h_tilde)
        a, b = 1 - z, z * h_tilde
        if bug == "z_flipped":
            a, b = z, (1 - z) * h_tilde
        if bug == "no_z_write":
            b = h_tilde
        return scan(a, b, np.zeros_like(h0) if bug == "h0_ignored" else h0)
    return fn


@pytest.mark.parametrize("bug", [b for b in grading.MINGRU_BUGS if b != "weights_T"])
def test_mingru_bugs_fail_with_their_name(bug):
    msg = failure(grading.check_mingru_forward, _mingru_with(bug), depth=False)
    assert "Diagnosis" in msg and grading.MINGRU_BUGS[bug] in msg, msg


def test_untransposed_weights_get_the_shapes_or_the_diagnosis():
    # D != H (case 1): numpy's shape error, with the shapes of the call and of x @ weight_z.T ...
    msg = failure(grading.check_mingru_forward, _mingru_with("weights_T"), depth=False)
    assert "mismatch" in msg and "x @ weight_z.T is (T, B, H)" in msg, msg
    # ... and where D = H (case 2 of the visible tests), the diagnosis.
    arr = grading.mingru_cases()[1].arrays
    assert arr["weight_z"].shape == (4, 4)
    got = _mingru_with("weights_T")(*(arr[k] for k in grading._MG_ARGS), scan=ref.parallel_scan)
    assert grading._diagnose_mingru(arr, got, 1e-7, 1e-9) == [grading.MINGRU_BUGS["weights_T"]]


def test_mingru_two_bugs_are_both_named():
    def fn(x, weight_z, bias_z, weight_h, bias_h, h0, scan=None):
        z = sigmoid(x @ weight_z.T + bias_z)
        return scan(z, (1 - z) * np.tanh(x @ weight_h.T + bias_h), h0)
    msg = failure(grading.check_mingru_forward, fn)
    assert "two mistakes" in msg and grading.MINGRU_BUGS["z_flipped"] in msg \
        and grading.MINGRU_BUGS["tanh_candidate"] in msg, msg


def test_mingru_is_graded_with_the_checkers_scan():
    """A broken scan of the learner's own (the default argument) does not cost part C."""
    def fn(x, weight_z, bias_z, weight_h, bias_h, h0, scan=bug_wrong_order):
        return mingru(x, weight_z, bias_z, weight_h, bias_h, h0, scan=scan)
    grading.check_mingru_forward(fn)


def test_mingru_must_use_the_scan_and_not_loop():
    def own_loop(x, weight_z, bias_z, weight_h, bias_h, h0, scan=None):
        return mingru(x, weight_z, bias_z, weight_h, bias_h, h0, scan=loop_stack)
    assert "never calls the scan it is given" in failure(grading.check_mingru_forward, own_loop)

    def step_by_step(x, weight_z, bias_z, weight_h, bias_h, h0, scan=None):
        out, h = [], h0
        for t in range(len(x)):
            h = mingru(x[t:t + 1], weight_z, bias_z, weight_h, bias_h, h, scan=scan)[0]
            out.append(h)
        return np.stack(out)
    grading.check_mingru_forward(step_by_step, depth=False)
    msg = failure(grading.check_mingru_forward, step_by_step)
    assert "Python loop over the time steps" in msg and "compute z and h_tilde for all steps at once" in msg, msg


def test_mingru_calling_the_library_fails():
    def uses_reference(x, weight_z, bias_z, weight_h, bias_h, h0, scan=None):
        from gated_lib.linear_recurrence import mingru_forward
        return mingru_forward(x, dict(weight_z=weight_z, bias_z=bias_z, weight_h=weight_h, bias_h=bias_h), h0)[0]
    msg = failure(grading.check_mingru_forward, uses_reference)
    assert "gated_lib.linear_recurrence.mingru_forward" in msg and "a reference implementation" in msg, msg


def test_mingru_returning_the_library_pair_is_explained():
    msg = failure(grading.check_mingru_forward, lambda *args, scan=None: (mingru(*args, scan=scan), {}))
    assert "Return just h" in msg, msg
