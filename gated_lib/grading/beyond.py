"""Checkers for the optional exercise 9 (Beyond): a gated linear recurrence and its parallel scan.

The learner's API (time-major, numpy)::

    linear_scan(a, b, h0)   -> h        h[t] = a[t] * h[t-1] + b[t], h[-1] = h0, a loop over t
    parallel_scan(a, b, h0) -> h        the same h by an associative scan in O(log T) vectorised rounds
    mingru_forward(x, weight_z, bias_z, weight_h, bias_h, h0, scan=parallel_scan) -> h

    a, b, h (T, B, H); h0 (B, H); x (T, B, D); weight_z, weight_h (H, D); bias_z, bias_h (H,).
    Outputs keep the inputs' dtype. minGRU (Feng et al. 2024), z takes the NEW state:
    z = sigmoid(x W_z^T + b_z), h~ = x W_h^T + b_h, h[t] = (1 - z[t]) * h[t-1] + z[t] * h~[t].

Checkers:

* :func:`check_linear_scan` and :func:`check_parallel_scan`: the learner's scan on generated cases
  (T = 1, T not a power of two, float32 and float64) against :mod:`gated_lib.linear_recurrence`.
  On a mismatch the output is compared with what known mistakes compute (:data:`SCAN_BUGS`: h0
  ignored or not decayed, b or a shifted by a step, the combine in the wrong order or without its
  a2 * b1 term, the scan run backwards, the doubling stopped a round early, A updated before B,
  np.roll wrapping around, an exclusive scan) and the one it matches is named.
* :func:`check_scan_depth`: that a scan does not loop over time (below).
* :func:`check_mingru_forward`: the learner's minGRU, given a correct scan of the checker's own
  (``scan=``), so that a bug in part B never costs part C's points; mistakes named from
  :data:`MINGRU_BUGS` (z's sign, the sigmoid missing, a tanh on the candidate, h0 ignored, ...). It
  also requires that the function calls the scan it is given and does not loop over time itself.

How "does not loop over T" is checked (check_scan_depth, and check_mingru_forward's depth part):
timing is unreliable on shared machines, and counting numpy calls depends on style. What is robust
is the number of lines of the learner's *own* Python code that run: a loop over the time steps runs
its body T times; a doubling scan runs a fixed body once per round, ceil(log2 T) rounds. So the
function is run under a line counter (sys.settrace, counting only code outside numpy, the standard
library and gated_lib: the learner's cells, helpers and lambdas, including those handed to map,
functools.reduce or itertools.accumulate) at T = 64, 1024 and 16384 (4 doublings apart). With
d1 = L(1024) - L(64) and d2 = L(16384) - L(1024) the rule is

    d2 <= 2 * d1 + 40   and   d2 <= 500

A log-depth scan has d2 ~ d1 (4 more rounds each time), whatever its style (Hillis-Steele, Blelloch,
recursion) and however many lines a round takes (up to ~100); a vectorised closed form (cumprod,
log-space cumsum) has d2 = 0. A loop over T has d2 ~ 15000, a loop over sqrt(T) chunks d2 ~ 4 d1.

Visible tests call a checker with its defaults (a few fixed cases); hidden tests pass a seed and
switch on random sizes, edge sizes and float32.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Sequence

import numpy as np

from gated_lib import linear_recurrence as _ref
from gated_lib.grading.core import (
    _LIBRARY_DIRS,
    Forbidden,
    GradingFailure,
    call_student,
    case_label,
    case_specs,
    compare,
    exclusive,
    fmt_shape,
    matches,
    tolerance,
)
from gated_lib.grading.gru import _bullets
from gated_lib.grading.lstm import Case

__all__ = [
    "check_linear_scan",
    "check_parallel_scan",
    "check_scan_depth",
    "check_mingru_forward",
    "scan_cases",
    "mingru_cases",
    "scan_variants",
    "mingru_variant",
    "count_lines",
    "SCAN_BUGS",
    "MINGRU_BUGS",
    "DEPTH_SIZES",
]

#: While a learner's function runs, gated_lib is off limits (gated_lib.linear_recurrence above all),
#: except the stable sigmoid, the errors, and the scan the minGRU checker hands to the learner.
FORBID = Forbidden(allow=("gated_lib.activations", "gated_lib.errors",
                          "gated_lib.grading.beyond.GivenScan.__call__"))
#: T at which the line counts of check_scan_depth are taken (4 doublings apart).
DEPTH_SIZES = (64, 1024, 16384)
_DEPTH_SLACK, _DEPTH_MAX = 40, 500


def _f64(a):
    return np.asarray(a, np.float64)


# --------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------

def _decays(rng, shape) -> np.ndarray:
    # Gates as a trained model has them: in (0, 1), most between 0.5 and 0.95, never exactly 0 (so a
    # log-space solution is fair); small enough that h0's effect and every step's b stay visible.
    return 1.0 / (1.0 + np.exp(-rng.normal(1.0, 1.5, shape)))


_SCAN_FIXED = [dict(T=5, B=2, H=3), dict(T=8, B=3, H=2), dict(T=7, B=2, H=4), dict(T=1, B=2, H=3)]
_SCAN_EDGE = [dict(T=1, B=1, H=1), dict(T=2, B=1, H=1), dict(T=3, B=1, H=2), dict(T=31, B=2, H=1),
              dict(T=33, B=1, H=3), dict(T=64, B=2, H=2), dict(T=65, B=1, H=2), dict(T=100, B=2, H=3),
              dict(T=129, B=1, H=1)]


def scan_cases(seed: int = 0, *, fixed: bool = True, n_random: int = 0, edge_sizes: bool = False,
               dtypes: Sequence[str] = ("float64", "float32")) -> list[Case]:
    """Inputs of a scan: a (T, B, H) in (0, 1), b (T, B, H) standard normal, h0 (B, H) in [-1, 1].

    fixed:      four cases, T = 5, 8, 7 and 1 (the first two in dtypes[0], the others in dtypes[1]).
    n_random:   random sizes per dtype (T 1..130, B 1..4, H 1..5).
    edge_sizes: T = 1, 2, 3, and lengths around powers of two (31, 33, 64, 65, 100, 129) per dtype.
    """
    rng = np.random.default_rng(seed)
    specs = case_specs(rng, [np.dtype(d) for d in dtypes], fixed=_SCAN_FIXED if fixed else (),
                       n_random=n_random, edge=_SCAN_EDGE if edge_sizes else (),
                       random_size=lambda r: dict(T=int(r.integers(1, 131)), B=int(r.integers(1, 5)),
                                                  H=int(r.integers(1, 6))))
    cases = []
    for sz, dt, _ in specs:
        T, B, H = sz["T"], sz["B"], sz["H"]
        arrays = dict(a=_decays(rng, (T, B, H)), b=rng.normal(0.0, 1.0, (T, B, H)),
                      h0=rng.uniform(-1.0, 1.0, (B, H)))
        cases.append(Case(case_label(dt, **sz), dt, {k: v.astype(dt) for k, v in arrays.items()}, dict(sz)))
    return cases


# --------------------------------------------------------------------------------------------------
# What mistaken scans compute
# --------------------------------------------------------------------------------------------------

_COMBINE = "(a1, b1) then (a2, b2) = (a1 * a2, a2 * b1 + b2)"

#: Scan mistakes, each with the sentence that explains it.
SCAN_BUGS: dict[str, str] = {
    "h0_ignored": ("h0 ignored: the state before the first step is h0, so h[0] = a[0] * h0 + b[0], not b[0]. "
                   "Fold it into the first step (b[0] + a[0] * h0) or add A[t] * h0 at the end, where A[t] is the "
                   "product a[0] * ... * a[t]."),
    "h0_not_decayed": ("h0 not decayed by the first step: h[0] = h0 + b[0], but step 0 multiplies the old state "
                       "by a[0] like every step: h[0] = a[0] * h0 + b[0]."),
    "b_shifted": ("b shifted by one step: h[t] uses b[t-1] (an off-by-one). Step t writes its own b[t]: "
                  "h[t] = a[t] * h[t-1] + b[t]."),
    "a_shifted": ("a shifted by one step: h[t] = a[t-1] * h[t-1] + b[t]. Step t decays the old state by its own "
                  "a[t]."),
    "no_a2b1": ("the a2 * b1 term missing from the combine: the b's are added up without being decayed (a "
                "cumulative sum). Composing the steps gives " + _COMBINE + ": the later step decays what "
                "the earlier ones wrote."),
    "only_b2": ("a combine that keeps only the later b: (a1 * a2, b2). It must be " + _COMBINE + "."),
    "wrong_order": ("the combine in the wrong order, a1 * b2 + b1: that applies the later step first. The map "
                    "h -> a2 * (a1 * h + b1) + b2 gives " + _COMBINE + "; the order matters because the "
                    "combine is associative but not commutative."),
    "backwards": ("the recurrence run backwards in time, from t = T-1 down to 0 (h[t] = a[t] * h[t+1] + b[t]). "
                  "The scan goes forwards: h[t] depends on the steps 0 .. t."),
    "reversed_output": ("the states in reverse order: h[0] holds the last state. Return h[t] at index t."),
    "floor_rounds": ("one doubling round too few for a T that is not a power of two: the number of rounds must "
                     "be ceil(log2 T) (e.g. loop while the offset d < T), not floor(log2 T) (int(np.log2(T)))."),
    "a_before_b": ("A updated before B within a round, so B is combined with the already updated A. Both "
                   "updates of a round must read the previous round's values: update B first (B[d:] = A[d:] * "
                   "B[:-d] + B[d:]), then A, or compute both from copies."),
    "roll_wraps": ("np.roll wrapping around: the first d positions are combined with the last ones. Positions t < d "
                   "already hold their full prefix and must be left alone (combine only B[d:] with B[:-d])."),
    "exclusive": ("the exclusive form: h[t] is the state *before* step t (h[0] = h0). Return the state after "
                  "each step: h[0] = a[0] * h0 + b[0], ..., h[T-1]."),
}


def _loop(a, b, h0):
    h, out = h0, []
    for t in range(a.shape[0]):
        h = a[t] * h + b[t]
        out.append(h)
    return np.stack(out)


def _doubling(a, b, rounds=None, a_first=False, roll=False):
    """Hillis-Steele prefixes (A, B) of the steps, with the mistakes a doubling scan can make."""
    A, B = a.copy(), b.copy()
    T, d, k = a.shape[0], 1, 0
    while d < T and (rounds is None or k < rounds):
        if roll:
            A_prev, B_prev = np.roll(A, d, axis=0), np.roll(B, d, axis=0)
            if a_first:
                A = A * A_prev
                B = A * B_prev + B
            else:
                B = A * B_prev + B
                A = A * A_prev
        elif a_first:
            A[d:] = A[:-d] * A[d:]
            B[d:] = A[d:] * B[:-d] + B[d:]
        else:
            B[d:] = A[d:] * B[:-d] + B[d:]
            A[d:] = A[:-d] * A[d:]
        d, k = 2 * d, k + 1
    return A, B


def _both_folds(a, b, h0, **kw) -> list[np.ndarray]:
    """A doubling scan's output with h0 folded into b[0] first, and with A * h0 added at the end."""
    b_folded = b.copy()
    b_folded[0] = b_folded[0] + a[0] * h0
    A, B = _doubling(a, b, **kw)
    return [_doubling(a, b_folded, **kw)[1], A * h0 + B]


def scan_variants(a, b, h0, bug: str) -> list[np.ndarray]:
    """What a scan with mistake `bug` (a key of SCAN_BUGS) returns, in float64: every likely form."""
    a, b, h0 = _f64(a), _f64(b), _f64(h0)
    T = a.shape[0]
    zero = np.zeros_like(h0)
    cum_a = np.cumprod(a, axis=0)
    if bug == "h0_ignored":
        return [_loop(a, b, zero)]
    if bug == "h0_not_decayed":
        a1 = a.copy()
        a1[0] = 1.0
        return [_loop(a1, b, h0)]
    if bug == "b_shifted":
        bs = np.concatenate([np.zeros_like(b[:1]), b[:-1]])
        return [_loop(a, bs, h0)]
    if bug == "a_shifted":
        return [_loop(np.concatenate([np.ones_like(a[:1]), a[:-1]]), b, h0),
                _loop(np.concatenate([np.zeros_like(a[:1]), a[:-1]]), b, h0)]
    if bug == "no_a2b1":
        return [h0 + np.cumsum(b, axis=0), a[0] * h0 + np.cumsum(b, axis=0), cum_a * h0 + np.cumsum(b, axis=0)]
    if bug == "only_b2":
        b_folded = b.copy()
        b_folded[0] = b_folded[0] + a[0] * h0
        return [b, b_folded, cum_a * h0 + b]
    if bug == "wrong_order":
        # the opposite monoid: the b part of the prefix is sum_s (a_0 ... a_{s-1}) b_s
        before = np.concatenate([np.ones_like(a[:1]), cum_a[:-1]])
        B = np.cumsum(before * b, axis=0)
        return [B + cum_a * h0, B + a[0] * h0]
    if bug == "backwards":
        return [_loop(a[::-1], b[::-1], h0)[::-1]]
    if bug == "reversed_output":
        return [_loop(a, b, h0)[::-1]]
    if bug == "floor_rounds":
        return _both_folds(a, b, h0, rounds=int(np.floor(np.log2(T)))) if T > 1 else []
    if bug == "a_before_b":
        return _both_folds(a, b, h0, a_first=True)
    if bug == "roll_wraps":
        return _both_folds(a, b, h0, roll=True) + _both_folds(a, b, h0, roll=True, a_first=True)
    if bug == "exclusive":
        return [np.concatenate([h0[None], _loop(a, b, h0)[:-1]])]
    raise KeyError(f"bug: expected one of {sorted(SCAN_BUGS)}, got {bug!r}")


def _diagnose_scan(arr: dict, got, rtol: float, atol: float) -> list[str]:
    rtol, atol = max(rtol, 1e-6), max(atol, 1e-8)
    with np.errstate(all="ignore"):
        return [SCAN_BUGS[bug] for bug in SCAN_BUGS
                if any(matches(got, v, rtol, atol) for v in scan_variants(arr["a"], arr["b"], arr["h0"], bug))]


# --------------------------------------------------------------------------------------------------
# Calling and comparing
# --------------------------------------------------------------------------------------------------

_SCAN_DIMS = {"a": "(T, B, H)", "b": "(T, B, H)", "h0": "(B, H)"}


def _unpack_h(result, fn_name: str, where: str):
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
        raise GradingFailure(f"{fn_name} returned a pair (h, cache), like gated_lib's mingru_forward. "
                             f"Return just h, the (T, B, H) array.")
    if isinstance(result, (tuple, list)):
        raise GradingFailure(f"{fn_name} should return h, one (T, B, H) array, but it returned a "
                             f"{type(result).__name__} of length {len(result)} on {where}. A list of the "
                             f"states h[t] (B, H) becomes that array with np.stack(states).")
    return result


_HIDDEN_SCAN = " The hidden tests add random sizes, T = 1 and lengths around powers of two, float32."
_HIDDEN_MINGRU = " The hidden tests add random sizes, T = B = D = H = 1, saturated gates, float32."


def _passed(name: str, cases: list[Case], visible: bool, extra: str = "", hidden: str = _HIDDEN_SCAN) -> None:
    kinds = sorted({c.dtype.name for c in cases})
    more = hidden if visible else ""
    print(f"{name}: all {len(cases)} cases pass ({', '.join(kinds)}).{extra}{more}")


def _check_scan(fn: Callable, name: str, cases: list[Case], visible: bool) -> None:
    for n, case in enumerate(cases, 1):
        arr = case.arrays
        where = f"case {n} of {len(cases)} ({case.label})"
        shapes = ", ".join(f"{k} {_SCAN_DIMS[k]} = {fmt_shape(arr[k].shape)}" for k in _SCAN_DIMS)
        result = call_student(fn, [arr["a"], arr["b"], arr["h0"]], fn_name=name, case=where, forbid=FORBID,
                              hint=f"It was called with {shapes}.")
        got = _unpack_h(result, name, where)
        expected = _ref.linear_scan(_f64(arr["a"]), _f64(arr["b"]), _f64(arr["h0"]))
        rtol, atol = tolerance(case.dtype)
        msg = compare("h", got, expected, rtol=rtol, atol=atol, dims="(T, B, H)", dtype=case.dtype)
        if not msg:
            continue
        text = f"{name} is not right yet, {where}:\n  {msg}"
        if "entries are off" in msg:
            found = _diagnose_scan(arr, got, rtol, atol)
            if found:
                text += "\nDiagnosis: your output matches a scan with " + found[0] + "".join(
                    f"\n  It matches equally a scan with {d}" for d in found[1:3])
            else:
                text += ("\nHint: h[0] = a[0] * h0 + b[0] and h[t] = a[t] * h[t-1] + b[t]; in a scan, "
                         + _COMBINE + ".")
        raise GradingFailure(text)


def check_linear_scan(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                      edge_sizes: bool = False, dtypes: Sequence[str] = ("float64", "float32"),
                      name: str = "linear_scan") -> None:
    """Check ``fn(a, b, h0) -> h`` on :func:`scan_cases` (same keywords) against the definition.

    h (T, B, H) in the inputs' dtype, h[t] = a[t] * h[t-1] + b[t] with h[-1] = h0. Any correct
    computation passes; the function may not call gated_lib (beyond sigmoid) nor change its inputs.
    """
    __tracebackhide__ = True
    cases = scan_cases(seed, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes, dtypes=dtypes)
    _check_scan(fn, name, cases, fixed)
    _passed(name, cases, fixed)


def check_parallel_scan(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                        edge_sizes: bool = False, dtypes: Sequence[str] = ("float64", "float32"),
                        name: str = "parallel_scan") -> None:
    """Check that ``fn(a, b, h0)`` returns the scan's h on :func:`scan_cases`, T = 1 and T not a power
    of two among them. Whether it loops over T is :func:`check_scan_depth`'s business."""
    __tracebackhide__ = True
    cases = scan_cases(seed, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes, dtypes=dtypes)
    _check_scan(fn, name, cases, fixed)
    _passed(name, cases, fixed, " (Its depth is checked by check_scan_depth.)" if fixed else "")


# --------------------------------------------------------------------------------------------------
# Depth: lines of the learner's own code as T grows
# --------------------------------------------------------------------------------------------------

_SYSTEM_DIRS = tuple({os.path.join(p, "") for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                                    sys.base_exec_prefix)})


def _learner_code(filename: str) -> bool:
    """Code a learner wrote: not numpy/site-packages, not the standard library, not gated_lib."""
    if filename.startswith(("<frozen", "<string>", *_LIBRARY_DIRS)):
        return False
    if "site-packages" in filename or "dist-packages" in filename:
        return False
    return not filename.startswith(_SYSTEM_DIRS)


class _LineCounter:
    """Counts the lines of learner code that run (sys.settrace), for as long as it is active."""

    def __init__(self):
        self.lines = 0
        self.tampered = False

    def _local(self, frame, event, arg):
        if event == "line":
            self.lines += 1
        return self._local

    def _global(self, frame, event, arg):
        return self._local if _learner_code(frame.f_code.co_filename) else None

    def __enter__(self):
        self._previous = sys.gettrace()
        self._hook = self._global          # one bound method, so that gettrace() can be compared with it
        sys.settrace(self._hook)
        return self

    def __exit__(self, *exc):
        self.tampered = sys.gettrace() is not self._hook
        sys.settrace(self._previous)
        return False


def count_lines(fn: Callable, *args, **kwargs) -> tuple[object, int]:
    """(fn(*args, **kwargs), the number of lines of learner code it ran); see the module docstring."""
    with _LineCounter() as counter:
        out = fn(*args, **kwargs)
    if counter.tampered:
        raise GradingFailure("the function replaced the line counter (sys.settrace), which this check uses to see "
                             "whether it loops over time.")
    return out, counter.lines


def _depth_verdict(name: str, counts: list[int], what: str) -> None:
    T = DEPTH_SIZES
    d1, d2 = counts[1] - counts[0], counts[2] - counts[1]
    if d2 <= 2 * d1 + _DEPTH_SLACK and d2 <= _DEPTH_MAX:
        return
    table = ", ".join(f"{c} for T = {t}" for c, t in zip(counts, T))
    raise GradingFailure(
        f"{name} runs too many lines of your Python code as T grows: {table}. From T = {T[1]} to T = {T[2]} the "
        f"count grows by {d2} (from {T[0]} to {T[1]} by {d1}): that is a Python loop over the time steps "
        f"(or over chunks of them){what}. A doubling scan runs the same few lines once per round, and T = {T[2]} "
        f"needs only 4 rounds more than T = {T[1]}; the check allows a growth of at most 2 * {d1} + {_DEPTH_SLACK} "
        f"and at most {_DEPTH_MAX} lines. Counted: every line of your own code (helpers and lambdas passed to map, "
        f"functools.reduce or itertools.accumulate included), not numpy's internals.")


def _depth_inputs(T: int, D: int | None = None):
    rng = np.random.default_rng(T)
    if D is None:
        return dict(a=_decays(rng, (T, 1, 2)), b=rng.normal(0.0, 1.0, (T, 1, 2)), h0=rng.uniform(-1, 1, (1, 2)))
    return dict(x=rng.normal(0.0, 1.0, (T, 1, D)), h0=rng.uniform(-1, 1, (1, 2)), **_mingru_params(rng, D, 2))


def check_scan_depth(fn: Callable, *, name: str = "parallel_scan") -> None:
    """Check that ``fn(a, b, h0)`` is right at T = 64, 1024, 16384 and does not loop over T.

    The rule (module docstring): with L(T) the lines of learner code run, d1 = L(1024) - L(64) and
    d2 = L(16384) - L(1024) must satisfy d2 <= 2 d1 + 40 and d2 <= 500.
    """
    __tracebackhide__ = True
    counts = []
    for T in DEPTH_SIZES:
        arr = _depth_inputs(T)
        where = f"T = {T}, B = 1, H = 2, float64"
        result, lines = count_lines(call_student, fn, [arr["a"], arr["b"], arr["h0"]], fn_name=name,
                                    case=where, forbid=FORBID)
        expected = _ref.linear_scan(arr["a"], arr["b"], arr["h0"])
        msg = compare("h", _unpack_h(result, name, where), expected, rtol=1e-7, atol=1e-9, dims="(T, B, H)")
        if msg:
            raise GradingFailure(
                f"{name} is not right at {where}:\n  {msg}\nMake check_parallel_scan pass first. If it does (it uses "
                f"T up to 129), the trouble is the length: a closed form that divides by the cumulative product of "
                f"the gates underflows for long sequences (the product of 16384 gates of about 0.7 is far below the "
                f"smallest float64, so you divide by 0). Work in log space, or use the doubling scan.")
        counts.append(lines)
    _depth_verdict(name, counts, "")
    print(f"{name}: right at T = {', '.join(map(str, DEPTH_SIZES))}, and its own Python lines grow like log T "
          f"({', '.join(map(str, counts))} lines): no loop over time.")


# --------------------------------------------------------------------------------------------------
# minGRU
# --------------------------------------------------------------------------------------------------

_MG_ARGS = ("x", "weight_z", "bias_z", "weight_h", "bias_h", "h0")
_MG_DIMS = {"x": "(T, B, D)", "weight_z": "(H, D)", "bias_z": "(H,)", "weight_h": "(H, D)", "bias_h": "(H,)",
            "h0": "(B, H)"}
_MG_FIXED = [dict(T=5, B=2, D=3, H=4), dict(T=6, B=3, D=4, H=4), dict(T=7, B=2, D=3, H=2), dict(T=1, B=2, D=2, H=3)]
_MG_EDGE = [dict(T=1, B=1, D=1, H=1), dict(T=3, B=1, D=2, H=1), dict(T=2, B=2, D=1, H=3), dict(T=65, B=1, D=2, H=2)]


def _mingru_params(rng, D: int, H: int, saturate: bool = False) -> dict:
    scale = 1.0 / np.sqrt(D)
    p = dict(weight_z=rng.normal(0.0, 1.5 * scale, (H, D)), bias_z=rng.normal(0.0, 1.0, H),
             weight_h=rng.normal(0.0, 1.5 * scale, (H, D)), bias_h=rng.normal(0.0, 1.0, H))
    if saturate:
        # z exactly 0 or 1 in about half the units (float32 and float64): a sign error cannot hide there,
        # and a naive sigmoid overflows (harmlessly, warnings are silenced).
        units = rng.random(H) < 0.5
        p["bias_z"] = np.where(units, rng.choice([-1.0, 1.0], H) * rng.uniform(720, 900, H), p["bias_z"])
    return p


def mingru_cases(seed: int = 0, *, fixed: bool = True, n_random: int = 0, edge_sizes: bool = False,
                 saturate: bool = False, dtypes: Sequence[str] = ("float64", "float32")) -> list[Case]:
    """Inputs of a minGRU: x (T, B, D) normal, h0 (B, H) in [-1, 1], weights (H, D), biases (H,).

    fixed: four cases (one with D = H, one with T = 1); n_random: random sizes per dtype (T 1..40,
    B 1..4, D, H 1..6); edge_sizes: T = B = D = H = 1 and friends, T = 65; saturate: two cases per
    dtype whose update gates are exactly 0 or 1 in some units.
    """
    rng = np.random.default_rng(seed)
    specs = case_specs(rng, [np.dtype(d) for d in dtypes], fixed=_MG_FIXED if fixed else (), n_random=n_random,
                       random_size=lambda r: dict(T=int(r.integers(1, 41)), B=int(r.integers(1, 5)),
                                                  D=int(r.integers(1, 7)), H=int(r.integers(1, 7))),
                       edge=_MG_EDGE if edge_sizes else (),
                       saturated=[dict(T=6, B=2, D=3, H=5), dict(T=4, B=3, D=3, H=3)] if saturate else ())
    cases = []
    for sz, dt, sat in specs:
        T, B, D, H = sz["T"], sz["B"], sz["D"], sz["H"]
        arrays = dict(x=rng.normal(0.0, 1.0, (T, B, D)), h0=rng.uniform(-1.0, 1.0, (B, H)),
                      **_mingru_params(rng, D, H, sat))
        cases.append(Case(case_label(dt, sat, **sz), dt, {k: v.astype(dt) for k, v in arrays.items()}, dict(sz)))
    return cases


#: minGRU mistakes, each with the sentence that explains it. Mistakes in one group exclude each other.
MINGRU_BUGS: dict[str, str] = {
    "z_flipped": ("z's role flipped: h[t] = z[t] * h[t-1] + (1 - z[t]) * h~[t]. That is the sign of the course's "
                  "PyTorch GRU, where z keeps the OLD state; in Feng et al.'s minGRU z takes the NEW state: "
                  "h[t] = (1 - z[t]) * h[t-1] + z[t] * h~[t], so a = 1 - z and b = z * h~."),
    "no_sigmoid": "no sigmoid on z: z = sigmoid(x W_z^T + b_z) must lie in (0, 1).",
    "tanh_z": "tanh on z instead of the sigmoid: a gate lies in (0, 1), z = sigmoid(x W_z^T + b_z).",
    "tanh_candidate": ("a tanh on the candidate: in the minGRU h~ = x W_h^T + b_h is linear (Feng et al. drop the "
                       "GRU's tanh; the state stays bounded because it is a convex combination)."),
    "no_z_write": ("the candidate written without z: b = h~. The minGRU writes b = z * h~ (the new state's share "
                   "is z)."),
    "h0_ignored": "h0 ignored: pass it to the scan, h = scan(a, b, h0).",
    "no_bias_z": "bias_z missing from z.",
    "no_bias_h": "bias_h missing from the candidate.",
    "weights_T": ("the weights not transposed (x @ W instead of x @ W.T); it raises no error only because D = H "
                  "in this case. Rows are examples: x (T, B, D) @ W.T (D, H) is (T, B, H)."),
}
_MG_GROUPS = [{"z_flipped", "no_z_write"}, {"no_sigmoid", "tanh_z"}]


def mingru_variant(x, weight_z, bias_z, weight_h, bias_h, h0, bugs=()) -> np.ndarray:
    """The minGRU's h (T, B, H) in float64, correct when `bugs` (keys of MINGRU_BUGS) is empty.

    An independent loop over t (no code shared with gated_lib.linear_recurrence).
    """
    bugs = frozenset(bugs)
    x, W_z, b_z, W_h, b_h, h = (_f64(v) for v in (x, weight_z, bias_z, weight_h, bias_h, h0))
    if "weights_T" in bugs:
        W_z, W_h = W_z.T, W_h.T
    if "no_bias_z" in bugs:
        b_z = 0.0 * b_z
    if "no_bias_h" in bugs:
        b_h = 0.0 * b_h
    if "h0_ignored" in bugs:
        h = 0.0 * h
    out = []
    for xt in x:
        pre = xt @ W_z.T + b_z
        z = pre if "no_sigmoid" in bugs else (np.tanh(pre) if "tanh_z" in bugs else 0.5 * (1.0 + np.tanh(0.5 * pre)))
        cand = xt @ W_h.T + b_h
        if "tanh_candidate" in bugs:
            cand = np.tanh(cand)
        if "z_flipped" in bugs:
            h = z * h + (1.0 - z) * cand
        elif "no_z_write" in bugs:
            h = (1.0 - z) * h + cand
        else:
            h = (1.0 - z) * h + z * cand
        out.append(h)
    return np.stack(out)


def _mg_applicable(bug: str, D: int, H: int) -> bool:
    return D == H > 1 if bug == "weights_T" else True


def _diagnose_mingru(arr: dict, got, rtol: float, atol: float) -> list[str]:
    D, H = arr["weight_z"].shape[1], arr["weight_z"].shape[0]
    singles = [b for b in MINGRU_BUGS if _mg_applicable(b, D, H)]
    pairs = [p for p in itertools.combinations(singles, 2) if exclusive(p, _MG_GROUPS)]
    rtol, atol = max(rtol, 1e-6), max(atol, 1e-8)
    args = [arr[k] for k in _MG_ARGS]
    with np.errstate(all="ignore"):
        for size in ([(b,) for b in singles], pairs):
            found = [bugs for bugs in size if matches(got, mingru_variant(*args, bugs=bugs), rtol, atol)]
            if found:
                return [_bullets([MINGRU_BUGS[b] for b in bugs]) for bugs in found[:3]]
    return []


class GivenScan:
    """The correct scan handed to the learner's mingru_forward as ``scan=``; it counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, a, b, h0=None):
        self.calls += 1
        return _ref.parallel_scan(a, b, h0)


def _mg_shapes(arr: dict) -> str:
    return ", ".join(f"{k} {_MG_DIMS[k]} = {fmt_shape(arr[k].shape)}" for k in _MG_ARGS)


def _call_mingru(fn, arr, name, where, scan):
    hint = (f"It was called with {_mg_shapes(arr)} and scan=<a correct scan(a, b, h0)>.\n"
            f"Shapes: x @ weight_z.T is (T, B, H); a and b for the scan are (T, B, H), h0 is (B, H).")
    result = call_student(fn, [arr[k] for k in _MG_ARGS], {"scan": scan}, fn_name=name, case=where,
                          forbid=FORBID, hint=hint)
    return _unpack_h(result, name, where)


def check_mingru_forward(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                         edge_sizes: bool = False, saturate: bool = False, depth: bool = True,
                         dtypes: Sequence[str] = ("float64", "float32"), name: str = "mingru_forward") -> None:
    """Check ``fn(x, weight_z, bias_z, weight_h, bias_h, h0, scan=scan) -> h`` on :func:`mingru_cases`.

    `scan` is a correct scan of the checker's own, so a bug in the learner's parallel_scan does not
    count here. h (T, B, H) in the inputs' dtype must match gated_lib.linear_recurrence.mingru_forward;
    the function must call `scan`; with ``depth`` it must not loop over time either (the line rule of
    :func:`check_scan_depth`, with D = H = 2, B = 1).
    """
    __tracebackhide__ = True
    cases = mingru_cases(seed, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes, saturate=saturate,
                         dtypes=dtypes)
    for n, case in enumerate(cases, 1):
        arr = case.arrays
        where = f"case {n} of {len(cases)} ({case.label})"
        scan = GivenScan()
        got = _call_mingru(fn, arr, name, where, scan)
        params = {k: _f64(arr[k]) for k in _ref.MINGRU_PARAMS}
        expected, _ = _ref.mingru_forward(_f64(arr["x"]), params, _f64(arr["h0"]))
        rtol, atol = tolerance(case.dtype)
        msg = compare("h", got, expected, rtol=rtol, atol=atol, dims="(T, B, H)", dtype=case.dtype)
        if msg:
            text = f"{name} is not right yet, {where}:\n  {msg}"
            if "entries are off" in msg:
                found = _diagnose_mingru(arr, got, rtol, atol)
                if found:
                    text += "\nDiagnosis: your output matches a minGRU with " + found[0] + "".join(
                        f"\n  It matches equally a minGRU with {d}" for d in found[1:])
                else:
                    text += ("\nHint: z = sigmoid(x @ weight_z.T + bias_z), h_tilde = x @ weight_h.T + bias_h, "
                             "then h = scan(1 - z, z * h_tilde, h0).")
            raise GradingFailure(text)
        if scan.calls == 0:
            raise GradingFailure(f"{name} gives the right h but never calls the scan it is given ({where}). "
                                 f"The point is that the minGRU is a linear recurrence: compute a = 1 - z and "
                                 f"b = z * h_tilde for all steps at once and return scan(a, b, h0).")
    extra = ""
    if depth:
        counts = []
        for T in DEPTH_SIZES:
            arr = _depth_inputs(T, D=2)
            _, lines = count_lines(_call_mingru, fn, arr, name, f"T = {T}, B = 1, D = H = 2, float64", GivenScan())
            counts.append(lines)
        _depth_verdict(name, counts, ": compute z and h_tilde for all steps at once (x @ weight_z.T works on "
                                     "(T, B, D)) and let the scan do the recurrence")
        extra = " It does not loop over time."
    _passed(name, cases, fixed, extra, _HIDDEN_MINGRU)
