"""Checkers for exercise 1 (the vanilla RNN, its Jacobian, gradient norms over lags, clipping).

The learner's API (explicit arrays, PyTorch's layout, rows are examples, tanh)::

    rnn_cell_forward(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)        -> h          (B, H)
    rnn_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None)            -> (out, h_n)
    rnn_step_jacobian(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)       -> J          (B, H, H)
    gradient_norm_over_lag(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None) -> norms      (T + 1, B)
    clip_by_norm(grads, max_norm)                                              -> (clipped, norm)

    x (B, D) or (T, B, D); h_prev, h0, h, h_n (B, H); out (T, B, H) holds h_1 .. h_T;
    weight_ih (H, D), weight_hh (H, H), bias_ih (H,), bias_hh (H,).

    h = tanh(x W_ih^T + b_ih + h_prev W_hh^T + b_hh)
    J[b, i, j] = d h[b, i] / d h_prev[b, j] = (1 - h[b, i]^2) W_hh[i, j]      (J = diag(1 - h^2) W_hh)
    norms[k, b] = || d h_T / d h_{T-k} ||_2 = || J_T J_{T-1} ... J_{T-k+1} ||_2 for example b, k = 0 .. T
                  (spectral norm: the largest singular value of the (H, H) matrix; norms[0] = 1)
    clip_by_norm: with ||g|| the L2 norm of all arrays of the dict taken together, every array is
                  multiplied by max_norm / ||g|| if ||g|| > max_norm, and returned unchanged otherwise;
                  norm is ||g|| before clipping.

Checkers: :func:`check_rnn_cell_forward`, :func:`check_rnn_forward`, :func:`check_rnn_step_jacobian`,
:func:`check_gradient_norm_over_lag`, :func:`check_clip_by_norm`. Each runs the learner's function on
generated cases (visible: a few fixed ones; hidden: random sizes, B = H = T = 1, saturated units,
float32 and float64), compares with gated_lib's reference computed in float64 and, on a mismatch,
reruns the case through deliberately *mutated* references (transposed weights, a missing bias, the
Jacobian's layout, (1 - h_{t-1}^2) for (1 - h_t^2), the lag product in the wrong order, an off-by-one
lag, per-array clipping norms, ...) to name the mistake the learner's output matches.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from gated_lib import clipping as _clip_ref
from gated_lib import jacobians as _jac_ref
from gated_lib import rnn as _ref
from gated_lib.grading.core import (
    Forbidden,
    GradingFailure,
    call_student,
    case_specs,
    compare,
    fmt_shape,
    matches,
    tolerance,
)

__all__ = [
    "check_rnn_cell_forward",
    "check_rnn_forward",
    "check_rnn_step_jacobian",
    "check_gradient_norm_over_lag",
    "check_clip_by_norm",
    "rnn_cases",
    "cell_variant",
    "CELL_BUGS",
    "SEQUENCE_BUGS",
    "JACOBIAN_BUGS",
    "LAG_BUGS",
    "CLIP_BUGS",
]

#: While a learner's function runs, all of gated_lib is off limits (its RNN, Jacobians, clipping, these
#: checkers) except the activation helpers; so are torch's RNNs.
FORBID = Forbidden(allow=("gated_lib.activations", "gated_lib.errors"), torch=("rnn", "rnn_tanh"))

_PASSED_MORE = " The hidden tests add random sizes, B = H = T = 1, saturated units, float32 and float64."


# --------------------------------------------------------------------------------------------------
# Mutated references
# --------------------------------------------------------------------------------------------------

#: Cell mutations, each with the sentence that explains it.
CELL_BUGS: dict[str, str] = {
    "hh_T": ("weight_hh multiplied without transposing it (h_prev @ weight_hh instead of h_prev @ weight_hh.T). "
             "Rows are examples, so each product is with the transposed weights; the mistake raises no error "
             "because weight_hh is square."),
    "ih_T": ("weight_ih multiplied without transposing it (x @ weight_ih instead of x @ weight_ih.T); it raises "
             "no error only because D = H in this case."),
    "reshape": ("weight_ih reshaped instead of transposed: weight_ih.reshape(D, H) is not weight_ih.T (reshape "
                "keeps the memory order). Use x @ weight_ih.T."),
    "no_bias": "no bias: add bias_ih + bias_hh to the pre-activation.",
    "only_bias_ih": "bias_ih but not bias_hh: PyTorch's layout has two biases and the cell adds both.",
    "only_bias_hh": "bias_hh but not bias_ih: PyTorch's layout has two biases and the cell adds both.",
    "no_tanh": "no tanh: h = tanh(a), where a is the pre-activation you computed.",
    "relu": "relu instead of tanh (that is nonlinearity='relu'; this exercise uses tanh).",
    "sigmoid": "a sigmoid instead of tanh: the vanilla RNN's state is tanh(a), in (-1, 1).",
    "no_recurrence": "h_prev ignored: the pre-activation needs h_prev @ weight_hh.T.",
    "no_input": "x ignored: the pre-activation needs x @ weight_ih.T.",
}
_CELL_GROUPS = [
    {"hh_T", "ih_T", "reshape"},
    {"no_bias", "only_bias_ih", "only_bias_hh"},
    {"no_tanh", "relu", "sigmoid"},
    {"no_recurrence", "no_input", "hh_T"},
    {"no_input", "ih_T", "reshape"},
]


def _f64(a):
    return None if a is None else np.asarray(a, np.float64)


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _pre(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, bugs=frozenset()):
    """The pre-activation a (B, H) in float64, correct when `bugs` is empty (independent of gated_lib.rnn)."""
    x, h, W_ih, W_hh = (np.asarray(v, np.float64) for v in (x, h_prev, weight_ih, weight_hh))
    b_ih, b_hh = np.asarray(bias_ih, np.float64), np.asarray(bias_hh, np.float64)
    D, H = x.shape[1], h.shape[1]
    if "no_bias" in bugs:
        b = np.zeros(H)
    elif "only_bias_ih" in bugs:
        b = b_ih
    elif "only_bias_hh" in bugs:
        b = b_hh
    else:
        b = b_ih + b_hh
    if "no_input" in bugs:
        xin = 0.0
    elif "reshape" in bugs:
        xin = x @ W_ih.reshape(D, H)
    else:
        xin = x @ (W_ih if "ih_T" in bugs else W_ih.T)
    hin = 0.0 if "no_recurrence" in bugs else h @ (W_hh if "hh_T" in bugs else W_hh.T)
    return xin + hin + b


def cell_variant(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, bugs=()) -> np.ndarray:
    """One tanh RNN step in float64, correct when `bugs` is empty; otherwise with the mutations
    named (keys of :data:`CELL_BUGS`)."""
    bugs = frozenset(bugs)
    a = _pre(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, bugs)
    if "no_tanh" in bugs:
        return a
    if "relu" in bugs:
        return np.maximum(a, 0.0)
    if "sigmoid" in bugs:
        return _sigmoid(a)
    return np.tanh(a)


def _cell_applicable(bug: str, D: int, H: int) -> bool:
    if bug == "hh_T":
        return H > 1
    if bug == "ih_T":
        return D == H > 1
    if bug == "reshape":
        return D > 1 and H > 1
    return True


def _cell_bug_sets(D: int, H: int, pairs: bool = True) -> list[tuple[str, ...]]:
    singles = [b for b in CELL_BUGS if _cell_applicable(b, D, H)]
    out = [(b,) for b in singles]
    if pairs:
        out += [bb for bb in itertools.combinations(singles, 2)
                if all(len(set(bb) & g) <= 1 for g in _CELL_GROUPS)]
    return out


def _describe(bugs: Sequence[str], table: dict[str, str]) -> str:
    if len(bugs) == 1:
        return table[bugs[0]]
    return "two mistakes:" + "".join(f"\n    - {table[b]}" for b in bugs)


#: Sequence-level mutations of rnn_forward (with a correct cell).
SEQUENCE_BUGS: dict[str, str] = {
    "shifted": ("out is shifted by one step: out[t] must be the state *after* reading x[t] (h_1 ... h_T), "
                "not the one before it (h_0 ... h_{T-1})."),
    "no_carry": ("the state is not carried: every step starts again from h0. Feed each step's h into the "
                 "next step."),
    "ignore_init": "h0 is ignored (zeros are used even when it is given). Use zeros only when h0 is None.",
    "reversed": "the sequence is read backwards (x[T-1] first); time runs along axis 0, from x[0] to x[T-1].",
    "aliased": ("every out[t] equals the last state: you store an array that you later overwrite in place "
                "(e.g. h[:] = ... or out.append(h) of a buffer). Store each step's h in out[t] = h."),
    "final_first": "h_n is the state after the *first* step; it must be the state after the last one, h_T.",
    "final_h0": "h_n is the initial state h_0; it must be the state after the last step, h_T (= out[-1]).",
}


def _run_sequence(x, params, h0, cell=None, bug: str | None = None):
    """(out, h_n) in float64 for a correct cell or a mutated one, with a sequence-level bug."""
    x = _f64(x)
    T, B, _ = x.shape
    H = np.shape(params[1])[0]
    zeros = np.zeros((B, H))
    h_init = zeros if h0 is None or bug == "ignore_init" else _f64(h0)
    step = cell or (lambda xt, h: cell_variant(xt, h, *params))
    h, hs = h_init, []
    for xt in (x[::-1] if bug == "reversed" else x):
        h = step(xt, h_init if bug == "no_carry" else h)
        hs.append(h)
    out, h_n = np.stack(hs), hs[-1]
    if bug == "shifted":
        out = np.stack([h_init] + hs[:-1])
    elif bug == "aliased":
        out = np.stack([hs[-1]] * T)
    elif bug == "final_first":
        h_n = hs[0]
    elif bug == "final_h0":
        h_n = h_init
    return out, h_n


#: Mutations of the one-step Jacobian (group "layout" x group "derivative" may combine).
JACOBIAN_BUGS: dict[str, str] = {
    "transposed": ("each example's Jacobian transposed: you returned J[b, j, i]. In this course "
                   "J[b, i, j] = d h_t[b, i] / d h_{t-1}[b, j]: the first matrix index is the *output* unit i "
                   "(a row of diag(1 - h_t^2) W_hh), the second the input unit j."),
    "W_T": ("weight_hh transposed: diag(1 - h_t^2) W_hh.T. The forward pass multiplies h_prev @ W_hh.T, "
            "yet its Jacobian is W_hh itself: d (h_prev W^T)[i] / d h_prev[j] = W[i, j]."),
    "cols": ("the factor (1 - h_t^2) on the columns, W_hh diag(1 - h_t^2); it belongs on the rows "
             "(the output units): diag(1 - h_t^2) W_hh, i.e. (1 - h**2)[:, :, None] * weight_hh."),
    "W_ih": ("weight_ih in place of weight_hh: diag(1 - h_t^2) W_ih is d h_t / d x_t. The Jacobian with respect "
             "to h_{t-1} goes through weight_hh."),
    "h_prev": ("(1 - h_{t-1}^2) instead of (1 - h_t^2): the derivative of tanh is taken where tanh was applied, "
               "at the *new* state h_t = tanh(a_t): tanh'(a_t) = 1 - h_t^2."),
    "no_deriv": "the factor diag(1 - h_t^2) missing: the chain rule goes through tanh, tanh'(a) = 1 - tanh(a)^2.",
    "one_minus_h": "(1 - h_t) instead of (1 - h_t^2): tanh'(a) = 1 - tanh(a)^2.",
    "pre_act": ("(1 - a_t^2) with the pre-activation a_t: tanh'(a_t) = 1 - tanh(a_t)^2 = 1 - h_t^2, so square "
                "h_t = tanh(a_t), not a_t."),
}
_JAC_LAYOUT = ("transposed", "W_T", "cols", "W_ih")
_JAC_DERIV = ("h_prev", "no_deriv", "one_minus_h", "pre_act")


def jacobian_variant(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, bugs=(), cell_bugs=()) -> np.ndarray:
    """d h_t / d h_{t-1} (B, H, H) in float64, correct when `bugs` and `cell_bugs` are empty."""
    bugs = frozenset(bugs)
    h_prev64 = _f64(h_prev)
    h = cell_variant(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, cell_bugs)
    if "h_prev" in bugs:
        d = 1.0 - h_prev64 ** 2
    elif "no_deriv" in bugs:
        d = np.ones_like(h)
    elif "one_minus_h" in bugs:
        d = 1.0 - h
    elif "pre_act" in bugs:
        d = 1.0 - _pre(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh) ** 2
    else:
        d = 1.0 - h * h
    W = _f64(weight_ih) if "W_ih" in bugs else _f64(weight_hh)
    if "W_T" in bugs:
        W = W.T
    if "cols" in bugs:
        return W[None, :, :] * d[:, None, :]
    J = d[:, :, None] * W[None, :, :]
    return np.swapaxes(J, 1, 2) if "transposed" in bugs else J


def _jac_applicable(bug: str, D: int, H: int) -> bool:
    if bug in ("transposed", "W_T", "cols"):
        return H > 1
    if bug == "W_ih":
        return D == H
    return True


def _jac_bug_sets(D: int, H: int) -> list[tuple[str, ...]]:
    lay = [b for b in _JAC_LAYOUT if _jac_applicable(b, D, H)]
    der = [b for b in _JAC_DERIV if _jac_applicable(b, D, H)]
    return [(b,) for b in lay + der] + [(a, b) for a in lay for b in der]


#: Mutations of the norm over lags (with correct step Jacobians), each a sentence.
LAG_BUGS: dict[str, str] = {
    "reversed": ("The product is multiplied in the wrong order. d h_T / d h_{T-k} = J_T J_{T-1} ... J_{T-k+1}: the "
                 "newest Jacobian stands on the left, and going back one more lag multiplies on the *right*: "
                 "prod = prod @ J. (Transposed step Jacobians in the right order give the same norms.)"),
    "index_shift": ("The lag index is off by one: your product for lag k is J_{T-1} ... J_{T-k}, without the last "
                    "step's Jacobian J_T (and at k = T, Python's index -1 wraps around to J_T). The step that "
                    "produces h_T reads x[T-1]: lag k multiplies in the Jacobian of the step reading x[T-k]."),
    "wrong_state": ("Each step Jacobian is evaluated at the wrong state: the step that reads x[t] starts from "
                    "h_prev = h0 (t = 0) or out[t - 1], and you used out[t], the state *after* it."),
    "frobenius": ("You took the Frobenius norm; use the spectral norm (largest singular value) of each (H, H) "
                  "matrix: np.linalg.norm(M, ord=2, axis=(-2, -1))."),
    "ord1": "You took the norm ord=1 (largest column sum); use the spectral norm, ord=2.",
    "ordinf": "You took the norm ord=inf (largest row sum); use the spectral norm, ord=2.",
    "bound": ("You multiplied the norms ||J_T|| ||J_{T-1}|| ... ||J_{T-k+1}||: that is the chapter's upper *bound*, "
              "not the norm of the product ||J_T J_{T-1} ... J_{T-k+1}||. Multiply the matrices, then take the norm."),
    "ignore_init": "h0 is ignored (zeros are used even when it is given); the trajectory starts from h0.",
}


@dataclass(frozen=True)
class _LagVariant:
    lag_bug: str | None = None
    jac_bugs: tuple[str, ...] = ()
    cell_bugs: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.cell_bugs:
            return ("Your norms match a forward pass with " + _describe(self.cell_bugs, CELL_BUGS)
                    + " The bug is in the cell: make check_rnn_cell_forward pass first.")
        if self.jac_bugs:
            return ("Your norms match step Jacobians with " + _describe(self.jac_bugs, JACOBIAN_BUGS)
                    + " The bug is in the one-step Jacobian: make check_rnn_step_jacobian pass first.")
        return LAG_BUGS[self.lag_bug]


def _spectral(M: np.ndarray, ord=2) -> np.ndarray:
    return np.linalg.norm(M, ord=ord, axis=(-2, -1))


def lag_variant(x, params, h0, variant: _LagVariant = _LagVariant()) -> np.ndarray:
    """norms (T + 1, B) in float64, correct for the default variant."""
    x = _f64(x)
    T, B, _ = x.shape
    H = np.shape(params[1])[0]
    bug = variant.lag_bug
    h = np.zeros((B, H)) if h0 is None or bug == "ignore_init" else _f64(h0)
    states = [h]
    for xt in x:
        states.append(cell_variant(xt, states[-1], *params, bugs=variant.cell_bugs))
    Js = []
    for t in range(T):                  # Js[t]: the Jacobian of the step that reads x[t] (J_{t+1} in the doc)
        h_prev = states[t + 1] if bug == "wrong_state" else states[t]
        Js.append(jacobian_variant(x[t], h_prev, *params, bugs=variant.jac_bugs, cell_bugs=variant.cell_bugs))
    ord_ = {"frobenius": "fro", "ord1": 1, "ordinf": np.inf}.get(bug, 2)
    prod = np.broadcast_to(np.eye(H), (B, H, H)).copy()
    norms = [_spectral(prod, ord_)]
    bound = np.ones(B)
    for k in range(1, T + 1):
        J = Js[T - k - 1] if bug == "index_shift" else Js[T - k]
        if bug == "bound":
            bound = bound * _spectral(J)
            norms.append(bound.copy())
            continue
        prod = J @ prod if bug == "reversed" else prod @ J
        norms.append(_spectral(prod, ord_))
    return np.stack(norms)


#: Mutations of clip_by_norm, each a sentence.
CLIP_BUGS: dict[str, str] = {
    "always": ("Your function rescales even when ||g|| <= max_norm, so small gradients are blown up to max_norm. "
               "Clipping only ever shrinks: below the threshold return the gradients unchanged."),
    "per_array": ("Each array is clipped by its own norm. Pascanu et al.'s rule uses one global norm over all arrays "
                  "together, ||g|| = sqrt(sum over arrays of sum(g_i ** 2)), and the same factor max_norm / ||g|| "
                  "for every array, so the direction of the whole update is kept."),
    "per_array_factor": ("The decision uses the global norm, but each array is then scaled by max_norm / ||g_i|| with "
                         "its own norm; every array must get the same factor max_norm / ||g||."),
    "max_array": ("The decision uses the largest norm of a single array; it must use the global norm of all arrays "
                  "together, sqrt(sum over arrays of sum(g_i ** 2))."),
    "by_value": ("You clip by value (each entry clamped to [-max_norm, max_norm]); this function clips by norm: "
                 "g <- max_norm * g / ||g|| when ||g|| > max_norm."),
    "sum_norms": ("The global norm is computed as the sum of the arrays' norms, ||g_1|| + ||g_2|| + ...; it is "
                  "sqrt(||g_1||^2 + ||g_2||^2 + ...), the norm of all entries together."),
    "squared": "The norm lacks its square root: ||g|| = sqrt(sum of squares).",
    "l1": "You used the L1 norm (sum of absolute values); Pascanu et al. use the L2 norm, sqrt(sum of squares).",
    "rms": "You used the root-mean-square of the entries; the norm is sqrt(sum of squares), not sqrt(mean of squares).",
    "inverted": "The factor is inverted: g * ||g|| / max_norm; it is g * max_norm / ||g||.",
}
#: What a wrong returned norm is, for the norm mistakes.
_NORM_TEXT = {
    "sum_norms": "the sum of the arrays' norms, ||g_1|| + ||g_2|| + ... (the global norm is sqrt(||g_1||^2 + ||g_2||^2 + ...))",
    "squared": "the sum of squares, without the square root",
    "l1": "the L1 norm (sum of absolute values), not the L2 norm",
    "rms": "the root-mean-square of the entries, sqrt(mean of squares), not sqrt(sum of squares)",
    "max_array": "the largest norm of a single array, not the norm of all arrays together",
}


def clip_variant(grads: dict, max_norm: float, bug: str | None = None) -> tuple[dict, float]:
    """(clipped, norm before clipping) in float64, correct when `bug` is None."""
    g = {k: _f64(v) for k, v in grads.items()}
    sq = {k: float(np.sum(v * v)) for k, v in g.items()}
    norms = {k: np.sqrt(s) for k, s in sq.items()}
    n_entries = sum(v.size for v in g.values())
    total = {
        "sum_norms": sum(norms.values()),
        "squared": sum(sq.values()),
        "l1": sum(float(np.abs(v).sum()) for v in g.values()),
        "rms": np.sqrt(sum(sq.values()) / max(n_entries, 1)),
        "max_array": max(norms.values()),
    }.get(bug, np.sqrt(sum(sq.values())))
    total = float(total)
    if bug == "by_value":
        return {k: np.clip(v, -max_norm, max_norm) for k, v in g.items()}, total
    if bug == "per_array":
        return {k: v * (max_norm / norms[k]) if norms[k] > max_norm else v for k, v in g.items()}, total
    if bug == "always":
        return {k: v * (max_norm / total) for k, v in g.items()}, total
    if total > max_norm:
        if bug == "per_array_factor":
            return {k: v * (max_norm / norms[k]) if norms[k] > 0 else v for k, v in g.items()}, total
        factor = total / max_norm if bug == "inverted" else max_norm / total
        return {k: v * factor for k, v in g.items()}, total
    return {k: v.copy() for k, v in g.items()}, total


# --------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One set of inputs. `arrays` are in the case's dtype; `label` is what a learner reads."""

    label: str
    dtype: np.dtype
    arrays: dict
    sizes: dict = field(default_factory=dict)


_PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _params(rng, D, H, dtype, saturate=False, gain=1.5):
    p = {
        "weight_ih": rng.normal(0.0, 1.0 / np.sqrt(D), (H, D)),
        "weight_hh": rng.normal(0.0, gain / np.sqrt(H), (H, H)),
        "bias_ih": rng.normal(0.0, 0.3, H),
        "bias_hh": rng.normal(0.0, 0.3, H),
    }
    if saturate:
        # About half of the units get a pre-activation of several hundred: tanh is exactly +-1 there (its
        # derivative exactly 0), and tanh written as (exp(2a) - 1) / (exp(2a) + 1) overflows to NaN.
        units = rng.random(H) < 0.5
        units[rng.integers(H)] = True
        p["bias_ih"] = np.where(units, rng.choice([-1.0, 1.0], H) * rng.uniform(400, 900, H), p["bias_ih"])
    return {k: v.astype(dtype) for k, v in p.items()}


_FIXED_CELL = [dict(B=2, D=3, H=4), dict(B=3, D=5, H=5), dict(B=4, D=6, H=3)]
_FIXED_SEQ = [dict(T=5, B=2, D=3, H=4), dict(T=7, B=3, D=4, H=4), dict(T=6, B=2, D=5, H=3)]
_EDGE_CELL = [dict(B=1, D=1, H=1), dict(B=1, D=3, H=1), dict(B=2, D=1, H=3), dict(B=1, D=2, H=2)]
_EDGE_SEQ = [dict(T=1, B=1, D=1, H=1), dict(T=1, B=2, D=3, H=4), dict(T=6, B=1, D=2, H=1), dict(T=3, B=1, D=1, H=3)]


def rnn_cases(seed: int = 0, *, sequence: bool = False, fixed: bool = True, n_random: int = 0,
              edge_sizes: bool = False, saturate: bool = False,
              dtypes: Sequence[str] = ("float64", "float32")) -> list[Case]:
    """Inputs for a step (x (B, D), h_prev) or a sequence (x (T, B, D), h0) with RNN parameters.

    fixed:      three well-conditioned cases (the visible tests): the first dtype gets two of them, the
                second one; one has D = H so that transposed input weights can be diagnosed.
    n_random:   random sizes per dtype (B 1..5, D 1..8, H 1..8, T 1..12).
    edge_sizes: B = 1, H = 1, D = 1 and T = 1 per dtype.
    saturate:   two cases per dtype with pre-activations of several hundred on about half the units.
    Sequence cases alternate between an explicit h0 and None (the default zeros).
    """
    rng = np.random.default_rng(seed)
    dtypes = [np.dtype(d) for d in dtypes]

    def random_size(rng):
        sz = dict(B=int(rng.integers(1, 6)), D=int(rng.integers(1, 9)), H=int(rng.integers(1, 9)))
        return dict(T=int(rng.integers(1, 13)), **sz) if sequence else sz

    saturated = ([dict(T=6, B=3, D=4, H=5), dict(T=3, B=2, D=2, H=3)] if sequence
                 else [dict(B=3, D=4, H=5), dict(B=2, D=3, H=3)])
    specs = case_specs(rng, dtypes, fixed=(_FIXED_SEQ if sequence else _FIXED_CELL) if fixed else (),
                       n_random=n_random, random_size=random_size,
                       edge=(_EDGE_SEQ if sequence else _EDGE_CELL) if edge_sizes else (),
                       saturated=saturated if saturate else ())
    cases = []
    for n, (sz, dt, sat) in enumerate(specs):
        B, D, H = sz["B"], sz["D"], sz["H"]
        arrays = dict(_params(rng, D, H, dt, sat))
        if sequence:
            arrays["x"] = rng.normal(0.0, 1.0, (sz["T"], B, D)).astype(dt)
            arrays["h0"] = rng.uniform(-0.9, 0.9, (B, H)).astype(dt) if n % 2 == 1 else None
        else:
            arrays["x"] = rng.normal(0.0, 1.0, (B, D)).astype(dt)
            arrays["h_prev"] = rng.uniform(-0.9, 0.9, (B, H)).astype(dt)
        label = ", ".join(f"{k}={v}" for k, v in sz.items()) + f", {dt.name}" + (", saturated units" if sat else "")
        if sequence:
            label += ", h0 given" if arrays["h0"] is not None else ", h0=None"
        cases.append(Case(label=label, dtype=dt, arrays=arrays, sizes=dict(sz)))
    return cases


_DIMS = {"x": "(B, D)", "h_prev": "(B, H)", "h0": "(B, H)", "weight_ih": "(H, D)", "weight_hh": "(H, H)",
         "bias_ih": "(H,)", "bias_hh": "(H,)"}
_SEQ_DIMS = dict(_DIMS, x="(T, B, D)")
_CELL_ARGS = ("x", "h_prev") + _PARAM_NAMES
_SEQ_ARGS = ("x",) + _PARAM_NAMES
_SHAPE_HINT = ("Shapes: the pre-activation a = x @ weight_ih.T + bias_ih + h_prev @ weight_hh.T + bias_hh has shape "
               "(B, H), and h = tanh(a).")


def _shapes_text(arr: dict, names: Sequence[str], dims: dict[str, str]) -> str:
    return ", ".join(f"{n} {dims[n]} = {fmt_shape(np.shape(arr[n]))}" for n in names if arr.get(n) is not None)


def _params_of(arr) -> list:
    return [arr[k] for k in _PARAM_NAMES]


def _ref_params(arr) -> dict:
    return {k: _f64(arr[k]) for k in _PARAM_NAMES}


def _tanh_nan(msg: str) -> str:
    """core.compare's NaN sentence speaks of the sigmoid; for a tanh RNN, say what applies."""
    return msg.replace("NaN from exp(a)/(1 + exp(a)) or inf - inf usually means an overflow: use the numerically "
                       "stable sigmoid provided.",
                       "NaN usually means an overflow, e.g. tanh written as (exp(2a) - 1) / (exp(2a) + 1): use np.tanh.")


def _compare(name, got, expected, case: Case, dims: str, keep_dtype: bool = True):
    rtol, atol = tolerance(case.dtype)
    msg = compare(name, got, expected, rtol=rtol, atol=atol, dims=dims, dtype=case.dtype if keep_dtype else None)
    return _tanh_nan(msg) if msg else None


def _passed(name: str, cases: list, visible: bool, what: str = "cases") -> None:
    kinds = sorted({c.dtype.name for c in cases})
    print(f"{name}: all {len(cases)} {what} pass ({', '.join(kinds)}).{_PASSED_MORE if visible else ''}")


def _first_match(got, candidates, rtol, atol) -> list[str]:
    """Descriptions of the candidates (description, expected array or tuple) that `got` matches."""
    rtol, atol = max(rtol, 1e-6), max(atol, 1e-8)
    found = []
    with np.errstate(all="ignore"):
        for text, make in candidates:
            try:
                cand = make()
            except Exception:  # noqa: BLE001 - a mutation that does not apply to these sizes
                continue
            if isinstance(got, tuple):
                ok = all(matches(g, c, rtol, atol) for g, c in zip(got, cand))
            else:
                ok = matches(got, cand, rtol, atol)
            if ok and text not in found:
                found.append(text)
                if len(found) == 3:
                    break
    return found


# --------------------------------------------------------------------------------------------------
# The cell
# --------------------------------------------------------------------------------------------------

def _diagnose_cell(arr: dict, got, rtol, atol) -> list[str]:
    args = [arr[n] for n in _CELL_ARGS]
    D, H = arr["x"].shape[1], arr["h_prev"].shape[1]
    cands = [(_describe(bb, CELL_BUGS), lambda bb=bb: cell_variant(*args, bugs=bb)) for bb in _cell_bug_sets(D, H)]
    return _first_match(got, cands, rtol, atol)


def check_rnn_cell_forward(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                           edge_sizes: bool = False, saturate: bool = False,
                           dtypes: Sequence[str] = ("float64", "float32"), name: str = "rnn_cell_forward") -> None:
    """Check ``fn(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh) -> h`` (tanh; shapes in the module doc).

    h must have shape (B, H), the inputs' dtype, and match gated_lib.rnn within the dtype's tolerance.
    The function may not call gated_lib's or torch's RNN, nor change its inputs.
    """
    __tracebackhide__ = True
    cases = rnn_cases(seed, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes, saturate=saturate, dtypes=dtypes)
    for n, case in enumerate(cases, 1):
        arr = case.arrays
        where = f"case {n} of {len(cases)} ({case.label})"
        hint = f"It was called with {_shapes_text(arr, _CELL_ARGS, _DIMS)}.\n{_SHAPE_HINT}"
        got = call_student(fn, [arr[k] for k in _CELL_ARGS], fn_name=name, case=where, forbid=FORBID, hint=hint)
        if isinstance(got, tuple):
            first = "a pair whose first item is itself a tuple" if got and isinstance(got[0], tuple) else \
                f"a tuple of {len(got)} items"
            raise GradingFailure(f"{name} returned {first}, like gated_lib's (h, cache); return just h, "
                                 f"the (B, H) array.")
        h, _ = _ref.rnn_cell_forward(_f64(arr["x"]), _f64(arr["h_prev"]), _ref_params(arr))
        msg = _compare("h", got, h, case, "(B, H)")
        if not msg:
            continue
        text = f"{name} is not right yet, {where}:\n  {msg}"
        if "entries are off" in msg:
            diagnosis = _diagnose_cell(arr, got, *tolerance(case.dtype))
            if diagnosis:
                text += "\nDiagnosis: your output matches a cell with " + diagnosis[0] + "".join(
                    f"\n  It matches equally a cell with {d}" for d in diagnosis[1:])
            else:
                text += ("\nHint: compute a = x @ weight_ih.T + bias_ih + h_prev @ weight_hh.T + bias_hh (B, H), "
                         "then h = np.tanh(a).")
        raise GradingFailure(text)
    _passed(name, cases, fixed)


# --------------------------------------------------------------------------------------------------
# The sequence
# --------------------------------------------------------------------------------------------------

def _diagnose_sequence(arr: dict, got: tuple, rtol, atol) -> list[str]:
    p = _params_of(arr)
    cands = [("an RNN loop where " + text, lambda b=b: _run_sequence(arr["x"], p, arr["h0"], bug=b))
             for b, text in SEQUENCE_BUGS.items()]
    found = _first_match(got, cands, rtol, atol)
    if found:
        return found
    D, H = arr["x"].shape[2], arr["weight_hh"].shape[0]

    def with_cell(bb):
        return _run_sequence(arr["x"], p, arr["h0"], cell=lambda xt, h: cell_variant(xt, h, *p, bugs=bb))

    cands = [("a cell with " + _describe(bb, CELL_BUGS) + " The bug is in the cell: make check_rnn_cell_forward "
              "pass first.", lambda bb=bb: with_cell(bb)) for bb in _cell_bug_sets(D, H, pairs=False)]
    return _first_match(got, cands, rtol, atol)[:1]


def _unpack_pair(result, fn_name: str, first: str, second: str, case: str):
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        what = f"a {type(result).__name__}" + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
        raise GradingFailure(f"{fn_name} should return a pair ({first}, {second}), but it returned {what} on {case}.")
    return result


def check_rnn_forward(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                      edge_sizes: bool = False, saturate: bool = False,
                      dtypes: Sequence[str] = ("float64", "float32"), name: str = "rnn_forward") -> None:
    """Check ``fn(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None) -> (out, h_n)``.

    x is (T, B, D); out (T, B, H) holds h_1 .. h_T; h_n (B, H) is the final state; h0 defaults to zeros.
    Cases alternate between an explicit h0 and the default (h0 *omitted*). Same rules as the cell.
    """
    __tracebackhide__ = True
    cases = rnn_cases(seed, sequence=True, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes,
                      saturate=saturate, dtypes=dtypes)
    for n, case in enumerate(cases, 1):
        arr = case.arrays
        where = f"case {n} of {len(cases)} ({case.label})"
        kwargs = {} if arr["h0"] is None else {"h0": arr["h0"]}
        hint = (f"It was called with {_shapes_text(arr, _SEQ_ARGS + ('h0',), _SEQ_DIMS)}"
                f"{'' if kwargs else ' and h0 left out (so it is None)'}.\n"
                f"Loop over t in range(T): each step maps x[t] (B, D) and the state (B, H) to the next state.")
        result = call_student(fn, [arr[k] for k in _SEQ_ARGS], kwargs, fn_name=name, case=where, forbid=FORBID,
                              hint=hint)
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], tuple):
            raise GradingFailure(f"{name} returned a pair whose first item is itself a tuple, like gated_lib's "
                                 f"((out, h_n), cache). Return just (out, h_n).")
        out, h_n = _unpack_pair(result, name, "out", "h_n", where)
        (e_out, e_h), _ = _ref.rnn_forward(_f64(arr["x"]), _ref_params(arr), _f64(arr["h0"]))
        msgs = [m for m in (_compare("out", out, e_out, case, "(T, B, H)"),
                            _compare("h_n", h_n, e_h, case, "(B, H)")) if m]
        if not msgs:
            continue
        text = f"{name} is not right yet, {where}:\n  " + "\n  ".join(msgs)
        if any("entries are off" in m for m in msgs):
            diagnosis = _diagnose_sequence(arr, (out, h_n), *tolerance(case.dtype))
            if diagnosis:
                text += "\nDiagnosis: your result matches " + diagnosis[0]
            elif matches(out, e_out, *tolerance(case.dtype)):
                text += "\nHint: out is right; h_n must be the last hidden state, out[-1]."
        raise GradingFailure(text)
    _passed(name, cases, fixed)


# --------------------------------------------------------------------------------------------------
# The one-step Jacobian
# --------------------------------------------------------------------------------------------------

def _diagnose_jacobian(arr: dict, got, rtol, atol) -> list[str]:
    args = [arr[n] for n in _CELL_ARGS]
    D, H = arr["x"].shape[1], arr["h_prev"].shape[1]
    cands = [(_describe(bb, JACOBIAN_BUGS), lambda bb=bb: jacobian_variant(*args, bugs=bb))
             for bb in _jac_bug_sets(D, H)]
    found = _first_match(got, cands, rtol, atol)
    if found:
        return found
    cands = [("diag(1 - h^2) W_hh with the h of a cell with " + _describe(bb, CELL_BUGS)
              + " The formula is right; the bug is in how you compute h_t: make check_rnn_cell_forward pass first.",
              lambda bb=bb: jacobian_variant(*args, cell_bugs=bb)) for bb in _cell_bug_sets(D, H, pairs=False)]
    return _first_match(got, cands, rtol, atol)[:1]


def _jacobian_shape_hint(got, B: int, H: int) -> str:
    shape = np.shape(got) if not isinstance(got, (list, tuple)) else None
    if shape == (H, H) and B > 1:
        return ("\nHint: J has one (H, H) Jacobian per example, stacked along a leading batch axis: (B, H, H). "
                "Examples do not interact, so there is nothing to sum or average over the batch.")
    if shape == (B * H, B * H) and B > 1:
        return ("\nHint: you returned the whole (B*H, B*H) Jacobian; it is block-diagonal (examples do not "
                "interact), and only its B diagonal blocks are asked for, as an array (B, H, H).")
    if shape == (B, H) or shape == (B, H, 1):
        return "\nHint: that is one number per unit (e.g. only the diagonal 1 - h^2); J is a matrix per example."
    return ""


def check_rnn_step_jacobian(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                            edge_sizes: bool = False, saturate: bool = False,
                            dtypes: Sequence[str] = ("float64", "float32"),
                            name: str = "rnn_step_jacobian") -> None:
    """Check ``fn(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh) -> J`` with
    J[b, i, j] = d h[b, i] / d h_prev[b, j] = (1 - h[b, i]^2) W_hh[i, j], shape (B, H, H), x's dtype.

    The reference is gated_lib.jacobians.rnn_step_jacobian (itself checked against autograd and finite
    differences by the tests). Same cases and rules as :func:`check_rnn_cell_forward`.
    """
    __tracebackhide__ = True
    cases = rnn_cases(seed + 1, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes, saturate=saturate,
                      dtypes=dtypes)
    for n, case in enumerate(cases, 1):
        arr = case.arrays
        where = f"case {n} of {len(cases)} ({case.label})"
        hint = (f"It was called with {_shapes_text(arr, _CELL_ARGS, _DIMS)}.\n"
                f"J[b] = diag(1 - h_t[b]^2) W_hh with h_t = tanh(a): broadcast (1 - h**2)[:, :, None] * weight_hh.")
        got = call_student(fn, [arr[k] for k in _CELL_ARGS], fn_name=name, case=where, forbid=FORBID, hint=hint)
        h, _ = _ref.rnn_cell_forward(_f64(arr["x"]), _f64(arr["h_prev"]), _ref_params(arr))
        J = _jac_ref.rnn_step_jacobian(h, _f64(arr["weight_hh"]))
        msg = _compare("J", got, J, case, "(B, H, H)")
        if not msg:
            continue
        B, H = arr["h_prev"].shape
        text = f"{name} is not right yet, {where}:\n  {msg}"
        if "entries are off" in msg:
            diagnosis = _diagnose_jacobian(arr, got, *tolerance(case.dtype))
            if diagnosis:
                text += "\nDiagnosis: your J matches " + (diagnosis[0] if diagnosis[0].startswith("diag") else
                                                          "a Jacobian with " + diagnosis[0])
                text += "".join(f"\n  It matches equally a Jacobian with {d}" for d in diagnosis[1:])
            else:
                text += ("\nHint: entry J[b, i, j] is d h_t[b, i] / d h_prev[b, j] = (1 - h_t[b, i]^2) * weight_hh[i, j], "
                         "with h_t = tanh(x @ weight_ih.T + bias_ih + h_prev @ weight_hh.T + bias_hh).")
        else:
            text += _jacobian_shape_hint(got, B, H)
        raise GradingFailure(text)
    _passed(name, cases, fixed)


# --------------------------------------------------------------------------------------------------
# The gradient norm over lags
# --------------------------------------------------------------------------------------------------

def _reference_lags(arr) -> np.ndarray:
    (_, _), cache = _ref.rnn_forward(_f64(arr["x"]), _ref_params(arr), _f64(arr["h0"]))
    return _jac_ref.gradient_norm_over_lag(cache, ord=2)


def _diagnose_lags(arr: dict, got, rtol, atol) -> list[str]:
    p = _params_of(arr)
    D, H = arr["x"].shape[2], arr["weight_hh"].shape[0]
    variants = [_LagVariant(lag_bug=b) for b in LAG_BUGS]
    variants += [_LagVariant(jac_bugs=bb) for bb in _jac_bug_sets(D, H) if len(bb) == 1]
    variants += [_LagVariant(cell_bugs=bb) for bb in _cell_bug_sets(D, H, pairs=False)]
    cands = [(v.describe(), lambda v=v: lag_variant(arr["x"], p, arr["h0"], v)) for v in variants]
    for b in ("frobenius", "ord1", "ordinf"):         # with norms[0] set to 1 by hand rather than ||I||
        cands.append((LAG_BUGS[b], lambda b=b: np.concatenate(
            [np.ones((1, arr["x"].shape[1])), lag_variant(arr["x"], p, arr["h0"], _LagVariant(lag_bug=b))[1:]])))
    found = _first_match(got, cands, rtol, atol)
    if found:
        return found
    expected = lag_variant(arr["x"], p, arr["h0"])
    got = np.asarray(got, np.float64)
    rtol, atol = max(rtol, 1e-6), max(atol, 1e-8)
    if matches(got[:-1], expected[:-1], rtol, atol):
        return ["Your norms match the reference in every row but the last: norms[T] = ||d h_T / d h_0|| goes through all T step "
                "Jacobians, down to the one of the step that reads x[0] from h0. Does your loop stop one step early "
                "(range(1, T) instead of range(1, T + 1))?"]
    if matches(got[1:], expected[1:], rtol, atol):
        return ["Your norms match the reference in every row but the first: norms[0] is lag 0, d h_T / d h_T = I, whose spectral "
                "norm is 1."]
    return []


def check_gradient_norm_over_lag(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                                 edge_sizes: bool = False, saturate: bool = False,
                                 dtypes: Sequence[str] = ("float64", "float32"),
                                 name: str = "gradient_norm_over_lag") -> None:
    """Check ``fn(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None) -> norms`` (T + 1, B) with
    norms[k, b] = || d h_T / d h_{T-k} ||_2 for example b (spectral norm), k = 0 .. T.

    The reference is gated_lib.jacobians.gradient_norm_over_lag on gated_lib.rnn's trajectory. Any
    floating dtype is accepted for norms (compared with the inputs' tolerance).
    """
    __tracebackhide__ = True
    cases = rnn_cases(seed + 2, sequence=True, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes,
                      saturate=saturate, dtypes=dtypes)
    for n, case in enumerate(cases, 1):
        arr = case.arrays
        T, B = arr["x"].shape[:2]
        where = f"case {n} of {len(cases)} ({case.label})"
        kwargs = {} if arr["h0"] is None else {"h0": arr["h0"]}
        hint = (f"It was called with {_shapes_text(arr, _SEQ_ARGS + ('h0',), _SEQ_DIMS)}"
                f"{'' if kwargs else ' and h0 left out (so it is None)'}.\n"
                f"Run the sequence, then multiply the step Jacobians from the last step backwards, taking the "
                f"spectral norm of the product after each one.")
        got = call_student(fn, [arr[k] for k in _SEQ_ARGS], kwargs, fn_name=name, case=where, forbid=FORBID,
                           hint=hint)
        expected = _reference_lags(arr)
        rtol, atol = tolerance(case.dtype)
        try:
            shape = np.shape(got)
        except Exception:  # noqa: BLE001 - ragged lists: compare() reports them
            shape = None
        if shape == (T, B) and B != T + 1:
            tol = (max(rtol, 1e-6), max(atol, 1e-8))
            if matches(got, expected[1:], *tol):
                why = ("norms[0] is missing: lag 0 is d h_T / d h_T = I, whose norm is 1, and norms[k] is the norm "
                       "of the product of k Jacobians, for k = 0, 1, ..., T.")
            elif matches(got, expected[:-1], *tol):
                why = ("the last lag is missing: norms[T] = ||d h_T / d h_0|| goes through all T step Jacobians "
                       "(h_0 is the initial state), so there are T + 1 lags, k = 0, 1, ..., T.")
            else:
                why = "norms needs T + 1 rows, one per lag k = 0, 1, ..., T (norms[0] = 1: lag 0 is the identity)."
            raise GradingFailure(f"{name} is not right yet, {where}: norms has shape {fmt_shape(shape)}, but it should "
                                 f"have shape (T + 1, B) = {fmt_shape(expected.shape)}.\nDiagnosis: the lag index is "
                                 f"off by one: {why}")
        msg = compare("norms", got, expected, rtol=rtol, atol=atol, dims="(T + 1, B)")
        if not msg:
            continue
        text = f"{name} is not right yet, {where}:\n  {_tanh_nan(msg)}"
        if "entries are off" in msg:
            diagnosis = _diagnose_lags(arr, got, rtol, atol)
            if diagnosis:
                text += "\nDiagnosis: " + diagnosis[0] + "".join(f"\n  Equally possible: {d}" for d in diagnosis[1:])
            else:
                text += ("\nHint: norms[0] = 1 (the identity); then, for k = 1, ..., T, prod = prod @ J_{T-k+1} "
                         "where J_t = diag(1 - h_t^2) W_hh is the Jacobian of the step that produced h_t, and "
                         "norms[k] = np.linalg.norm(prod, ord=2, axis=(1, 2)).")
        elif shape is not None and len(shape) == 1 and shape[0] == T + 1 and B > 1:
            text += ("\nHint: one norm per example: norms[k, b] is the spectral norm of example b's (H, H) product; "
                     "keep the batch axis.")
        raise GradingFailure(text)
    _passed(name, cases, fixed)


# --------------------------------------------------------------------------------------------------
# Clip by norm
# --------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _watch_torch_clipping():
    """Record calls into torch.nn.utils' clipping functions (the torch reference of clip_by_norm)."""
    calls: list[str] = []
    previous = sys.getprofile()

    def hook(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.replace(os.sep, "/").endswith("torch/nn/utils/clip_grad.py"):
            label = f"torch.nn.utils.{frame.f_code.co_name}"
            if not calls or calls[-1] != label:
                calls.append(label)
        if previous is not None:
            previous(frame, event, arg)

    sys.setprofile(hook)
    try:
        yield calls
    finally:
        sys.setprofile(previous)


def _clip_nan(msg: str) -> str:
    return msg.replace("NaN from exp(a)/(1 + exp(a)) or inf - inf usually means an overflow: use the numerically "
                       "stable sigmoid provided.",
                       "NaN here usually means 0 / 0: when every gradient is zero, ||g|| = 0; divide by ||g|| only "
                       "when ||g|| > max_norm.")


def _clip_cases(seed: int, fixed: bool, n_random: int, edge_sizes: bool, dtypes: Sequence[str]) -> list[Case]:
    rng = np.random.default_rng(seed)
    dtypes = [np.dtype(d) for d in dtypes]

    def rnn_grads(D, H, dt, scale):
        g = {"weight_ih": rng.normal(size=(H, D)), "weight_hh": rng.normal(size=(H, H)),
             "bias_ih": rng.normal(size=H), "bias_hh": rng.normal(size=H)}
        total = np.sqrt(sum(float(np.sum(v * v)) for v in g.values()))
        return {k: (v * scale / total).astype(dt) for k, v in g.items()}

    def spread(n, each, dt):
        """n arrays, each of norm `each` (below max_norm), together of norm each * sqrt(n)."""
        out = {}
        for k in range(n):
            v = rng.normal(size=int(rng.integers(1, 7)))
            out[f"param_{k}"] = (v * each / np.linalg.norm(v)).astype(dt)
        return out

    specs: list[tuple[str, dict, float, np.dtype]] = []
    if fixed:
        d0, d1 = dtypes[0], dtypes[-1]
        specs += [("norm 3.0 > max_norm 1.0", rnn_grads(3, 4, d0, 3.0), 1.0, d0),
                  ("norm 0.8 < max_norm 2.5: nothing to clip", rnn_grads(2, 3, d0, 0.8), 2.5, d0),
                  ("10 arrays, each of norm 0.6 < max_norm 1.5, together of norm 1.9 > max_norm",
                   spread(10, 0.6, d1), 1.5, d1)]
    for dt in dtypes:
        for _ in range(n_random):
            D, H = int(rng.integers(1, 8)), int(rng.integers(1, 8))
            theta = float(rng.uniform(0.5, 5.0))
            scale = float(theta * rng.choice([0.3, 0.9, 1.5, 20.0, 1e4]))
            specs.append((f"D={D}, H={H}, max_norm {theta:.3g}, norm {scale:.3g}", rnn_grads(D, H, dt, scale), theta, dt))
        if edge_sizes:
            specs += [("one array of shape (1,), norm 7 > max_norm 2", {"w": np.array([-7.0], dt)}, 2.0, dt),
                      ("all gradients zero", {k: np.zeros_like(v) for k, v in rnn_grads(2, 2, dt, 1.0).items()}, 1.0, dt),
                      ("D=1, H=1, norm 1e6 > max_norm 0.5", rnn_grads(1, 1, dt, 1e6), 0.5, dt),
                      ("arrays of norm 3 and 0 (a zero array), max_norm 1",
                       {"a": (rng.normal(size=(2, 3)) * 0 + 3 / np.sqrt(6)).astype(dt), "b": np.zeros(4, dt)}, 1.0, dt),
                      ("one array of norm 10 above max_norm 4, nine small ones", dict(spread(9, 0.1, dt),
                                                                                     big=np.full(4, 5.0, dt)), 4.0, dt)]
    return [Case(label=f"{label}, {dt.name}", dtype=dt, arrays={"grads": g, "max_norm": theta})
            for label, g, theta, dt in specs]


def _diagnose_clip(grads, theta, got_clipped: dict, got_norm, rtol, atol) -> list[str]:
    keys = list(grads)
    cands = []
    for bug, text in CLIP_BUGS.items():
        def make(bug=bug):
            c, _ = clip_variant(grads, theta, bug)
            return tuple(c[k] for k in keys)
        cands.append((text, make))
    return _first_match(tuple(got_clipped[k] for k in keys), cands, rtol, atol)


def check_clip_by_norm(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                       edge_sizes: bool = False, dtypes: Sequence[str] = ("float64", "float32"),
                       name: str = "clip_by_norm") -> None:
    """Check ``fn(grads, max_norm) -> (clipped, norm)`` for a dict of gradient arrays.

    clipped must be a new dict with the same keys, shapes and dtypes; norm the global L2 norm *before*
    clipping. The inputs must stay unchanged. Tolerance: at least 1e-5 relative, so that torch's
    max_norm / (norm + 1e-6) passes; the checked thresholds are >= 0.5.
    """
    __tracebackhide__ = True
    cases = _clip_cases(seed, fixed, n_random, edge_sizes, dtypes)
    for n, case in enumerate(cases, 1):
        grads, theta = case.arrays["grads"], case.arrays["max_norm"]
        where = f"case {n} of {len(cases)} ({case.label})"
        given = {k: v.copy() for k, v in grads.items()}
        hint = ("It was called with grads = {" + ", ".join(f"{k!r}: array {fmt_shape(v.shape)}" for k, v in grads.items())
                + f"}} and max_norm = {theta:g}.")
        with _watch_torch_clipping() as torch_calls:
            result = call_student(fn, (given, theta), fn_name=name, case=where, forbid=FORBID, hint=hint)
        if torch_calls:
            raise GradingFailure(f"{name} calls {', '.join(dict.fromkeys(torch_calls))}: a reference implementation of "
                                 f"what this exercise asks you to write. Write the computation yourself with numpy.")
        changed = [k for k in grads if k not in given or not np.array_equal(given[k], grads[k])]
        if changed:
            raise GradingFailure(f"{name} changed its input grads[{changed[0]!r}] in place, {where} (e.g. g *= scale "
                                 f"or grads[name] = ...). Build a new dict of new arrays: the caller still needs the "
                                 f"raw gradients, e.g. to log them.")
        clipped, norm = _unpack_pair(result, name, "clipped", "norm", where)
        if not isinstance(clipped, dict):
            raise GradingFailure(f"{name}: clipped should be a dict with the same keys as grads, but it is a "
                                 f"{type(clipped).__name__}, {where}.")
        if set(clipped) != set(grads):
            missing, extra = sorted(set(grads) - set(clipped)), sorted(set(clipped) - set(grads))
            raise GradingFailure(f"{name}: clipped should have the keys of grads, {where}; "
                                 + (f"missing {missing}" if missing else "") + ("; " if missing and extra else "")
                                 + (f"unexpected {extra}" if extra else "") + ".")
        e_clipped, e_norm = _clip_ref.clip_by_norm({k: _f64(v) for k, v in grads.items()}, theta)
        rtol, atol = tolerance(case.dtype)
        rtol = max(rtol, 1e-5)
        msgs = [_clip_nan(m) for m in (compare(f"clipped[{k!r}]", clipped[k], e_clipped[k], rtol=rtol, atol=atol,
                                               dtype=case.dtype) for k in grads) if m]
        norm_msg = None
        try:
            norm_value = float(np.asarray(norm, dtype=np.float64).reshape(()))
        except Exception:  # noqa: BLE001 - anything that is not one number
            norm_msg = f"norm should be one number (the global norm before clipping), but it is {norm!r:.80}."
        else:
            if not np.isclose(norm_value, e_norm, rtol=rtol, atol=atol):
                norm_msg = f"norm is {norm_value:.6g}, but the global norm of grads (before clipping) is {e_norm:.6g}."
                for bug, what in _NORM_TEXT.items():
                    if np.isclose(norm_value, clip_variant(grads, theta, bug)[1], rtol=1e-6):
                        norm_msg += f" Yours is {what}."
                        break
                else:
                    if np.isclose(norm_value, _clip_ref.global_norm(e_clipped), rtol=rtol):
                        norm_msg += (" That is the norm *after* clipping; return the norm before, as "
                                     "torch.nn.utils.clip_grad_norm_ does (it is what a log of gradient norms shows).")
        if not msgs and not norm_msg:
            continue
        text = f"{name} is not right yet, {where}:\n  " + "\n  ".join(msgs + ([norm_msg] if norm_msg else []))
        if msgs and any("entries are off" in m for m in msgs):
            diagnosis = _diagnose_clip(grads, theta, clipped, norm, rtol, atol)
            if diagnosis:
                text += "\nDiagnosis: " + diagnosis[0]
            else:
                text += (f"\nHint: ||g|| = sqrt(sum of g ** 2 over every entry of every array) = {e_norm:.6g} here; "
                         f"if it exceeds max_norm = {theta:g}, multiply every array by max_norm / ||g||"
                         f"{'' if e_norm > theta else ' (here it does not: return copies)'}.")
        raise GradingFailure(text)
    kinds = sorted({c.dtype.name for c in cases})
    print(f"{name}: all {len(cases)} cases pass ({', '.join(kinds)})."
          + (" The hidden tests add random sizes and norms, zero gradients, single arrays, float32 and float64."
             if fixed else ""))
