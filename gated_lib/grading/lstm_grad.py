"""Checkers for exercise 3 (gradient flow in the LSTM): backward passes, Jacobians, gradients over lag.

The learner's API (explicit arrays, PyTorch's layout and gate order i, f, g, o, rows are examples)::

    lstm_cell_backward(dh, dc, cache) -> grads
        dh, dc (B, H): gradients of the loss w.r.t. the step's outputs h_t and c_t
        grads: dict with "x" (B, D), "h_prev" (B, H), "c_prev" (B, H), "weight_ih" (4H, D),
               "weight_hh" (4H, H), "bias_ih" (4H,), "bias_hh" (4H,)
    lstm_backward(dout, caches, dh_n=None, dc_n=None) -> grads
        dout (T, B, H): gradient w.r.t. out = h_1 .. h_T; dh_n, dc_n (B, H): w.r.t. the final states
        grads: dict with "x" (T, B, D), "h0", "c0" (B, H) and the four parameters
    lstm_direct_jacobian(cache) -> (B, H, H)          dc_t/dc_{t-1} along the cell alone: diag(f_t)
    lstm_state_jacobian(cache) -> (B, 2H, 2H)         d(h_t, c_t)/d(h_{t-1}, c_{t-1}), state order [h; c]
    gradient_norm_over_lag(caches, path="full") -> (T + 1, B)
        norms[k] = spectral norm of dc_T/dc_{T-k}: the c -> c block of J_T ... J_{T-k+1} ("full"),
        or of diag(f_T) ... diag(f_{T-k+1}) ("direct"); norms[0] = 1.

A *cache* is the dict that the notebook's given forward (``lstm_cell_forward_with_cache``) returns, and
that :func:`make_cache` builds: x, h_prev, c_prev, the gates i, f, g, o, c, tanh_c = tanh(c), h, and
the four parameter arrays, all (B, .) arrays in the case's dtype. ``caches`` is the list of the T step
caches of a sequence (``lstm_forward_with_cache``).

Every checker runs the learner's function on generated cases (:func:`gated_lib.grading.lstm.lstm_cases`:
fixed well-conditioned cases for the visible tests; random sizes, B = H = T = 1, saturated gates and
both float types for the hidden ones), compares with gated_lib's reference computed in float64, and on a
mismatch reruns the case through independent, deliberately *mutated* float64 implementations
(:func:`backward_variant`, :func:`sequence_backward_variant`, :func:`state_jacobian_variant`,
:func:`lag_norms_variant`) to name the bug. The cell backward is also gradient-checked: on the first
float64 case the learner's gradients are compared with centred finite differences of the forward pass
(:func:`gated_lib.gradcheck.numerical_gradient`), and the table of relative errors is part of the message.
"""

from __future__ import annotations

import copy
import itertools
from typing import Callable, Iterable, Sequence

import numpy as np

from gated_lib import lstm as _ref
from gated_lib import jacobians as _jac
from gated_lib.gradcheck import numerical_gradient, rel_error
from gated_lib.grading.core import (
    Forbidden,
    GradingFailure,
    call_student,
    compare,
    exclusive,
    fmt_shape,
    matches,
    tolerance,
)
from gated_lib.grading.lstm import Case, cell_variant, lstm_cases

__all__ = [
    "check_lstm_cell_backward",
    "check_lstm_backward",
    "check_direct_jacobian",
    "check_state_jacobian",
    "check_gradient_norm_over_lag",
    "make_cache",
    "make_caches",
    "lag_cases",
    "backward_variant",
    "sequence_backward_variant",
    "state_jacobian_variant",
    "lag_norms_variant",
    "BACKWARD_BUGS",
    "SEQUENCE_BUGS",
    "JACOBIAN_BUGS",
    "LAG_BUGS",
    "CACHE_KEYS",
]

GATE_ORDER = "ifgo"
#: What the notebook's given forward stores, in this order.
CACHE_KEYS = ("x", "h_prev", "c_prev", "i", "f", "g", "o", "c", "tanh_c", "h",
              "weight_ih", "weight_hh", "bias_ih", "bias_hh")
#: While a learner's function runs, gated_lib (its LSTM, its Jacobians, its gradient checker ...) and
#: torch's LSTM are off limits, except the helpers a notebook hands out.
FORBID = Forbidden(allow=("gated_lib.activations", "gated_lib.errors", "split_gates"), torch=("lstm",))

_CELL_GRADS = ("x", "h_prev", "c_prev", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
_SEQ_GRADS = ("x", "h0", "c0", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
_CELL_DIMS = {"x": "(B, D)", "h_prev": "(B, H)", "c_prev": "(B, H)", "weight_ih": "(4H, D)",
              "weight_hh": "(4H, H)", "bias_ih": "(4H,)", "bias_hh": "(4H,)"}
_SEQ_DIMS = dict(_CELL_DIMS, x="(T, B, D)", h0="(B, H)", c0="(B, H)")
_BLOCKS = ("[0:H]", "[H:2H]", "[2H:3H]", "[3H:4H]")


# --------------------------------------------------------------------------------------------------
# Caches
# --------------------------------------------------------------------------------------------------

def _f64(a):
    return None if a is None else np.asarray(a, np.float64)


def _params64(arr: dict) -> dict:
    return {k: _f64(arr[k]) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


def _from_ref_cache(step: dict, arr: dict, dtype) -> dict:
    """A learner-format cache (CACHE_KEYS, in `dtype`) from one step of gated_lib's float64 forward."""
    out = {k: np.array(step[k], dtype=dtype) for k in ("x", "h_prev", "c_prev", "i", "f", "g", "o", "c", "tanh_c", "h")}
    for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        out[k] = np.array(arr[k], dtype=dtype)
    return out


def make_cache(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh, dtype=None) -> dict:
    """The cache of one step, as the notebook's ``lstm_cell_forward_with_cache`` returns it.

    Computed in float64 by gated_lib and cast to `dtype` (default: x's dtype).
    """
    dtype = np.dtype(dtype or np.asarray(x).dtype)
    arr = dict(weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh)
    _, step = _ref.lstm_cell_forward(_f64(x), _f64(h_prev), _f64(c_prev), _params64(arr))
    return _from_ref_cache(step, arr, dtype)


def make_caches(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None, c0=None, dtype=None) -> list[dict]:
    """The T step caches of a sequence, as the notebook's ``lstm_forward_with_cache`` returns them."""
    dtype = np.dtype(dtype or np.asarray(x).dtype)
    arr = dict(weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh)
    _, seq = _ref.lstm_forward(_f64(x), _params64(arr), _f64(h0), _f64(c0))
    return [_from_ref_cache(step, arr, dtype) for step in seq]


def _cache64(cache: dict) -> dict:
    return {k: np.asarray(v, np.float64) for k, v in cache.items()}


def _copy_cache(cache):
    return copy.deepcopy(cache)


def _cache_changed(original, passed) -> str | None:
    """The first cache entry the learner changed in place, as "caches[t]['f']" text, or None."""
    seq = isinstance(original, list)
    pairs = enumerate(zip(original, passed)) if seq else [(None, (original, passed))]
    for t, (a, b) in pairs:
        if not isinstance(b, dict):
            return f"caches[{t}]" if seq else "cache"
        for k, v in a.items():
            w = b.get(k)
            if not isinstance(w, np.ndarray) or w.shape != v.shape or not np.array_equal(v, w, equal_nan=True):
                return f"caches[{t}][{k!r}]" if seq else f"cache[{k!r}]"
    return None


def _check_cache_untouched(original, passed, fn_name: str, where: str) -> None:
    changed = _cache_changed(original, passed)
    if changed:
        raise GradingFailure(
            f"{fn_name} changed {changed} in place on {where} (an in-place operation such as `f *= ...`, "
            f"`dc += ...` on an array that came from the cache, or `cache[...] = ...`). The cache belongs to "
            f"the forward pass and may be read again: build new arrays (`dc = dc + ...`).")


# --------------------------------------------------------------------------------------------------
# Mutated reference implementations (float64, independent of gated_lib.lstm)
# --------------------------------------------------------------------------------------------------

#: Bugs of a hand-written LSTM cell backward, each with the sentence that explains it.
BACKWARD_BUGS: dict[str, str] = {
    "no_dh_to_dc": ("the gradient that reaches c_t through h_t = o * tanh(c_t) is missing: before anything "
                    "else, dc must collect both paths into c_t, dc_total = dc + dh * o * (1 - tanh(c)**2)."),
    "no_tanh_prime": ("the derivative of tanh is missing where dh reaches c_t: h_t = o * tanh(c_t), so "
                      "dc_total = dc + dh * o * (1 - tanh(c)**2), not dc + dh * o."),
    "tanh_prime_of_c": ("tanh'(c) is computed as 1 - c**2; it is 1 - tanh(c)**2 (the cache holds tanh_c)."),
    "do_without_tanh": "do = dh * c; the output gate multiplies tanh(c), so do = dh * tanh(c).",
    "df_uses_c": "df = dc_total * c; the forget gate multiplies the *previous* cell state: df = dc_total * c_prev.",
    "dc_prev_no_f": ("dc_prev is missing the forget gate: c_t = f * c_prev + i * g, so "
                     "dc_prev = dc_total * f (the direct path dc_t/dc_{t-1} = diag(f))."),
    "dc_prev_no_dh": ("dc_prev = dc * f uses only the gradient that came in through c_t; it must use "
                      "dc_total = dc + dh * o * (1 - tanh(c)**2), which also holds the part that reached c_t through h_t."),
    "tanh_prime_gates": ("the gates' derivative is taken as 1 - s**2 (tanh's); the gates are sigmoids, "
                         "sigma'(a) = s * (1 - s)."),
    "sigmoid_prime_g": ("the candidate's derivative is taken as g * (1 - g) (the sigmoid's); g = tanh(a_g), "
                        "so tanh'(a_g) = 1 - g**2."),
    "no_activation_prime": ("the derivatives of the activations are missing: da must be the gate gradients times "
                            "sigma' = s * (1 - s) (i, f, o) and tanh' = 1 - g**2 (g)."),
    "dW_hh_uses_h": ("dW_hh is computed from h_t (the step's output); the recurrent product is "
                     "h_{t-1} @ weight_hh.T, so dW_hh = da.T @ h_prev."),
    "dW_hh_uses_c_prev": "dW_hh is computed from c_prev; the gates read h_prev, so dW_hh = da.T @ h_prev.",
    "db_hh_zero": ("bias_hh gets no gradient; both biases are added to the same pre-activation, so each "
                   "gets the whole da summed over the batch: db_ih = db_hh = da.sum(axis=0)."),
    "db_ih_zero": ("bias_ih gets no gradient; both biases are added to the same pre-activation, so each "
                   "gets the whole da summed over the batch: db_ih = db_hh = da.sum(axis=0)."),
    "db_halved": ("the bias gradient is split in two halves; b_ih and b_hh each enter the pre-activation with "
                  "coefficient 1, so each gets the whole sum: db_ih = db_hh = da.sum(axis=0)."),
    "db_mean": "the bias gradient is averaged over the batch; sum it: da.sum(axis=0) (the other gradients are sums too).",
    "dh_prev_blocks_T": ("each gate's (H, H) block of weight_hh is used transposed in dh_prev. The forward computes "
                         "h_prev @ weight_hh.T, so dh_prev = da @ weight_hh (no transpose); the mistake raises no "
                         "error because the blocks are square."),
    "dx_blocks_T": ("each gate's block of weight_ih is used transposed in dx (dx = da @ weight_ih, no transpose); "
                    "it raises no error only because D = H in this case."),
}
_BACKWARD_GROUPS = [
    {"no_dh_to_dc", "no_tanh_prime", "tanh_prime_of_c"},
    {"tanh_prime_gates", "no_activation_prime"},
    {"sigmoid_prime_g", "no_activation_prime"},
    {"dW_hh_uses_h", "dW_hh_uses_c_prev"},
    {"db_hh_zero", "db_ih_zero", "db_halved", "db_mean"},
    {"dc_prev_no_f", "dc_prev_no_dh"},
]


def backward_variant(dh, dc, cache: dict, order: str = GATE_ORDER, bugs: Iterable[str] = ()) -> dict:
    """The LSTM cell backward in float64: correct when ``order == "ifgo"`` and `bugs` is empty.

    `order` names, block by block, the gate whose gradient a learner writes into columns [0:H], [H:2H],
    [2H:3H], [3H:4H] of da; `bugs` are keys of :data:`BACKWARD_BUGS`.
    """
    bugs = frozenset(bugs)
    c = _cache64(cache)
    dh, dc = np.asarray(dh, np.float64), np.asarray(dc, np.float64)
    i, f, g, o, tc = c["i"], c["f"], c["g"], c["o"], c["tanh_c"]
    H = i.shape[1]
    if "no_dh_to_dc" in bugs:
        dct = dc
    elif "no_tanh_prime" in bugs:
        dct = dc + dh * o
    elif "tanh_prime_of_c" in bugs:
        dct = dc + dh * o * (1.0 - c["c"] ** 2)
    else:
        dct = dc + dh * o * (1.0 - tc * tc)
    d_gate = {"i": dct * g, "f": dct * (c["c"] if "df_uses_c" in bugs else c["c_prev"]), "g": dct * i,
              "o": dh * (c["c"] if "do_without_tanh" in bugs else tc)}
    if "no_activation_prime" in bugs:
        da_gate = dict(d_gate)
    else:
        sig = (lambda s: 1.0 - s * s) if "tanh_prime_gates" in bugs else (lambda s: s * (1.0 - s))
        tp = (lambda s: s * (1.0 - s)) if "sigmoid_prime_g" in bugs else (lambda s: 1.0 - s * s)
        da_gate = {"i": d_gate["i"] * sig(i), "f": d_gate["f"] * sig(f), "g": d_gate["g"] * tp(g),
                   "o": d_gate["o"] * sig(o)}
    da = np.concatenate([da_gate[k] for k in order], axis=1)
    W_ih, W_hh = c["weight_ih"], c["weight_hh"]
    if "dx_blocks_T" in bugs:
        dx = sum(da[:, k * H:(k + 1) * H] @ W_ih[k * H:(k + 1) * H].T for k in range(4))
    else:
        dx = da @ W_ih
    if "dh_prev_blocks_T" in bugs:
        dh_prev = sum(da[:, k * H:(k + 1) * H] @ W_hh[k * H:(k + 1) * H].T for k in range(4))
    else:
        dh_prev = da @ W_hh
    hh_in = c["h"] if "dW_hh_uses_h" in bugs else c["c_prev"] if "dW_hh_uses_c_prev" in bugs else c["h_prev"]
    db = da.mean(axis=0) if "db_mean" in bugs else da.sum(axis=0)
    db_ih, db_hh = db, db
    if "db_hh_zero" in bugs:
        db_hh = np.zeros_like(db)
    elif "db_ih_zero" in bugs:
        db_ih = np.zeros_like(db)
    elif "db_halved" in bugs:
        db_ih = db_hh = db / 2
    if "dc_prev_no_f" in bugs:
        dc_prev = dct
    elif "dc_prev_no_dh" in bugs:
        dc_prev = dc * f
    else:
        dc_prev = dct * f
    return {"x": dx, "h_prev": dh_prev, "c_prev": dc_prev, "weight_ih": da.T @ c["x"],
            "weight_hh": da.T @ hh_in, "bias_ih": db_ih, "bias_hh": db_hh}


#: Bugs of a hand-written backpropagation through time, over a correct cell backward.
SEQUENCE_BUGS: dict[str, str] = {
    "no_accumulate": ("the parameter gradients are not accumulated across time steps: yours equal the "
                      "contribution of the first step (t = 0) alone, the last one the backward loop visits. "
                      "The weights are shared by every step, so their gradient is the *sum* over t: "
                      "grads[name] += step_grads[name]."),
    "no_accumulate_last": ("the parameter gradients are not accumulated across time steps: yours equal the "
                           "contribution of the last step (t = T-1) alone. The weights are shared by every step, "
                           "so their gradient is the *sum* over t."),
    "dout_after": ("dout[t] is added to the gradient of h_{t-1} (after step t's backward) instead of h_t, "
                   "off by one step. out[t] is h_t, the output of step t: add dout[t] to dh *before* calling the "
                   "cell backward of step t."),
    "cache_shift": ("step t's backward uses the cache of step t-1 (caches[t - 1]), off by one step; "
                    "use caches[t], the cache that step t's forward stored."),
    "dW_hh_uses_h": ("dW_hh is computed from h_t (the step's output), off by one step in dW_hh: the recurrent "
                     "product of step t reads h_{t-1}, so dW_hh = sum over t of da_t.T @ h_{t-1} (cache['h_prev'])."),
    "no_carry_dh": ("dh is not carried back in time: each step starts from dout[t] alone. The gradient of "
                    "h_{t-1} that step t's backward returns must be added to dout[t-1]."),
    "no_carry_dc": ("dc is not carried back in time: the cell-state gradient dc_prev of step t must be the "
                    "dc of step t-1 (it starts at dc_n, zero by default)."),
    "only_last_dout": ("only dout[T-1] is used; every output h_t receives its own gradient dout[t], "
                       "to be added at step t."),
    "ignore_final": "dh_n and dc_n are ignored; they start the backward loop (dh = dh_n, dc = dc_n; zeros when None).",
    "dx_reversed": ("the x gradients are in reversed time order (appended while going backwards); "
                    "grads['x'][t] must belong to x[t]."),
    "swap_initial": "the h0 and c0 gradients are exchanged: 'h0' is dh after the loop, 'c0' is dc.",
}


def sequence_backward_variant(dout, caches: Sequence[dict], dh_n=None, dc_n=None,
                              bugs: Iterable[str] = (), cell_bugs: Iterable[str] = (),
                              order: str = GATE_ORDER) -> dict:
    """BPTT in float64 over :func:`backward_variant`: correct without bugs.

    `bugs` are keys of :data:`SEQUENCE_BUGS`; `cell_bugs`/`order` mutate the cell backward.
    """
    bugs = frozenset(bugs)
    cell_bugs = set(cell_bugs)
    if "dW_hh_uses_h" in bugs:
        cell_bugs.add("dW_hh_uses_h")
    dout = np.asarray(dout, np.float64)
    T, B, H = dout.shape
    zeros = np.zeros((B, H))
    dh = zeros if dh_n is None or "ignore_final" in bugs else np.asarray(dh_n, np.float64)
    dc = zeros if dc_n is None or "ignore_final" in bugs else np.asarray(dc_n, np.float64)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    acc = {k: np.zeros(np.shape(caches[0][k])) for k in names}
    dx = [None] * T
    for t in range(T - 1, -1, -1):
        if "dout_after" not in bugs and ("only_last_dout" not in bugs or t == T - 1):
            dh = dh + dout[t]
        cache = caches[t - 1] if "cache_shift" in bugs else caches[t]
        g = backward_variant(dh, dc, cache, order=order, bugs=cell_bugs)
        for k in names:
            if "no_accumulate" in bugs or ("no_accumulate_last" in bugs and t == T - 1):
                acc[k] = g[k]
            elif "no_accumulate_last" not in bugs:
                acc[k] = acc[k] + g[k]
        dx[t] = g["x"]
        dh = zeros if "no_carry_dh" in bugs else g["h_prev"]
        dc = zeros if "no_carry_dc" in bugs else g["c_prev"]
        if "dout_after" in bugs:
            dh = dh + dout[t]
    x = np.stack(dx[::-1] if "dx_reversed" in bugs else dx)
    h0, c0 = (dc, dh) if "swap_initial" in bugs else (dh, dc)
    return {"x": x, "h0": h0, "c0": c0, **acc}


#: Bugs of a hand-written one-step state Jacobian d(h_t, c_t)/d(h_{t-1}, c_{t-1}) in the order [h; c].
JACOBIAN_BUGS: dict[str, str] = {
    "order_ch": ("the state is stacked as [c; h]; this exercise orders it [h; c]: rows and columns 0..H-1 are h, "
                 "H..2H-1 are c, so J = [[dh/dh, dh/dc], [dc/dh, dc/dc]]."),
    "transposed": ("each Jacobian is transposed: J[b, i, j] must be d s_t[i] / d s_{t-1}[j] (row = output, "
                   "column = input), so the c -> c block is the lower-right one and dc_t/dh_{t-1} the lower-left."),
    "only_cc": ("only the c -> c block diag(f) is filled: that is the direct path, not the full Jacobian. "
                "c_t also depends on h_{t-1} (through f, i, g), and h_t on both h_{t-1} and c_{t-1}."),
    "no_cross": ("the off-diagonal blocks are zero. c_t depends on h_{t-1} through the gates f, i and g "
                 "(dc/dh), and h_t = o * tanh(c_t) depends on c_{t-1} through c_t (dh/dc = diag(o (1 - tanh^2 c_t) f))."),
    "dc_dh_zero": ("dc_t/dh_{t-1} is zero: c_t = f * c_prev + i * g depends on h_{t-1} through f, i and g, "
                   "dc/dh = diag(c_prev f(1-f)) W_hf + diag(g i(1-i)) W_hi + diag(i (1-g^2)) W_hg."),
    "no_forget_term": "dc_t/dh_{t-1} is missing the forget-gate term diag(c_prev * f * (1 - f)) W_hf.",
    "no_input_term": "dc_t/dh_{t-1} is missing the input-gate term diag(g * i * (1 - i)) W_hi.",
    "no_candidate_term": "dc_t/dh_{t-1} is missing the candidate term diag(i * (1 - g**2)) W_hg.",
    "forget_term_uses_c": "the forget-gate term of dc_t/dh_{t-1} uses c_t; it is diag(c_prev * f * (1 - f)) W_hf.",
    "dh_dh_no_c_path": ("dh_t/dh_{t-1} misses the path through c_t: h_t = o * tanh(c_t) and c_t depends on "
                        "h_{t-1}, so dh/dh = diag(tanh(c) o(1-o)) W_ho + diag(o (1 - tanh^2 c)) dc/dh."),
    "dh_dc_no_f": ("dh_t/dc_{t-1} is missing the factor f: c_{t-1} reaches h_t only through c_t = f * c_{t-1} + ..., "
                   "so dh/dc = diag(o (1 - tanh^2 c_t) f)."),
    "no_tanh_prime": ("the derivative of tanh(c_t) is missing: the paths from c_t to h_t carry "
                      "o * (1 - tanh(c_t)**2), not o."),
    "blocks_T": ("the (H, H) blocks of weight_hh are used transposed: with rows as examples the forward computes "
                 "h_prev @ W.T, whose Jacobian is W itself: dc/dh = diag(...) W_hf + ..., rows = units of the output."),
}
_JAC_GROUPS = [
    {"order_ch", "transposed"},
    {"only_cc", "no_cross", "dc_dh_zero", "no_forget_term", "no_input_term", "no_candidate_term",
     "forget_term_uses_c"},
    {"only_cc", "no_cross", "dh_dc_no_f"},
    {"only_cc", "dh_dh_no_c_path"},
]


def state_jacobian_variant(cache: dict, order: str = GATE_ORDER, bugs: Iterable[str] = ()) -> np.ndarray:
    """The (B, 2H, 2H) Jacobian of [h; c] in float64: correct when order is "ifgo" and `bugs` is empty.

    `order` names the gate a learner reads from row blocks [0:H], ..., [3H:4H] of weight_hh.
    """
    bugs = frozenset(bugs)
    c = _cache64(cache)
    i, f, g, o, tc = c["i"], c["f"], c["g"], c["o"], c["tanh_c"]
    W = c["weight_hh"]
    H = i.shape[1]
    Wg = {gate: W[k * H:(k + 1) * H] for k, gate in enumerate(order)}
    if "blocks_T" in bugs:
        Wg = {k: v.T for k, v in Wg.items()}

    def dW(v, M):
        return v[:, :, None] * M[None]

    def diag(v):
        return v[:, :, None] * np.eye(H)[None]

    cp = c["c"] if "forget_term_uses_c" in bugs else c["c_prev"]
    terms = {"forget": dW(cp * f * (1 - f), Wg["f"]), "input": dW(g * i * (1 - i), Wg["i"]),
             "candidate": dW(i * (1 - g * g), Wg["g"])}
    dc_dh = sum(v for k, v in terms.items() if f"no_{k}_term" not in bugs)
    if {"dc_dh_zero", "only_cc", "no_cross"} & bugs:
        dc_dh = np.zeros((i.shape[0], H, H))
    k = o if "no_tanh_prime" in bugs else o * (1 - tc * tc)
    dh_dh = dW(tc * o * (1 - o), Wg["o"])
    if "dh_dh_no_c_path" not in bugs:
        dh_dh = dh_dh + k[:, :, None] * dc_dh
    dh_dc = diag(k if "dh_dc_no_f" in bugs else k * f)
    if {"only_cc", "no_cross"} & bugs:
        dh_dc = np.zeros_like(dh_dc)
    if "only_cc" in bugs:
        dh_dh = np.zeros_like(dh_dh)
    dc_dc = diag(f)
    if "order_ch" in bugs:
        J = np.concatenate([np.concatenate([dc_dc, dc_dh], 2), np.concatenate([dh_dc, dh_dh], 2)], 1)
    else:
        J = np.concatenate([np.concatenate([dh_dh, dh_dc], 2), np.concatenate([dc_dh, dc_dc], 2)], 1)
    return np.swapaxes(J, 1, 2) if "transposed" in bugs else J


#: Bugs of a hand-written gradient norm over lag (the c -> c block of products of step Jacobians).
LAG_BUGS: dict[str, str] = {
    "direct_for_full": ("your norms are those of the direct path, diag(f_T) ... diag(f_{T-k+1}): the product of "
                        "the c -> c *blocks*. path='full' asks for the c -> c block of the *product* of the full "
                        "(2H, 2H) Jacobians, which also counts every path that leaves c through h and comes back."),
    "full_for_direct": ("your norms are those of the full Jacobian product; path='direct' asks for the direct "
                        "path alone, the product diag(f_T) ... diag(f_{T-k+1})."),
    "product_reversed": ("the product is multiplied in the wrong order: dc_T/dc_{T-k} = [J_T J_{T-1} ... J_{T-k+1}], "
                         "the latest step on the left (prod = prod @ J_t while t goes down from T)."),
    "from_start": ("the lags are counted from the start: your norms[k] is ||dc_k/dc_0||. The exercise asks for "
                   "||dc_T/dc_{T-k}||: start at the last step and go back k steps."),
    "frobenius": "the Frobenius norm; use the spectral norm (largest singular value): np.linalg.norm(M, 2, axis=(-2, -1)).",
    "h_block": "the h -> h block [:H, :H] of the product; the c -> c block is [H:, H:] (state order [h; c]).",
    "whole_state": "the norm of the whole (2H, 2H) product; take its c -> c block [H:, H:] first.",
    "mean_units": "the mean of |prod f| over the units; the spectral norm of a diagonal matrix is the largest |entry|.",
    "sum_units": "the sum of |prod f| over the units; the spectral norm of a diagonal matrix is the largest |entry|.",
}


def lag_norms_variant(caches: Sequence[dict], path: str = "full", bugs: Iterable[str] = ()) -> np.ndarray:
    """(T + 1, B) norms of dc_T/dc_{T-k} in float64 (correct without bugs); bugs from :data:`LAG_BUGS`."""
    bugs = frozenset(bugs)
    T = len(caches)
    H = np.shape(caches[0]["f"])[1]
    if ("direct_for_full" in bugs and path == "full") or (path == "direct" and "full_for_direct" not in bugs):
        mats = [np.asarray(c["f"], np.float64)[:, :, None] * np.eye(H)[None] for c in caches]
        size, block = H, (slice(None), slice(None))
    else:
        mats = [state_jacobian_variant(c) for c in caches]
        size = 2 * H
        block = ((slice(0, H),) * 2 if "h_block" in bugs else (slice(None),) * 2 if "whole_state" in bugs
                 else (slice(H, 2 * H),) * 2)
    B = mats[0].shape[0]
    prod = np.broadcast_to(np.eye(size), (B, size, size)).copy()
    norms = np.empty((T + 1, B))

    def norm(M):
        if "frobenius" in bugs:
            return np.sqrt(np.sum(M * M, axis=(-2, -1)))
        if path == "direct" and ("mean_units" in bugs or "sum_units" in bugs):
            d = np.abs(np.diagonal(M, axis1=-2, axis2=-1))
            return d.mean(-1) if "mean_units" in bugs else d.sum(-1)
        return np.linalg.norm(M, 2, axis=(-2, -1))

    norms[0] = norm(prod[:, block[0], block[1]])
    for k in range(1, T + 1):
        J = mats[k - 1] if "from_start" in bugs else mats[T - k]
        prod = J @ prod if ("product_reversed" in bugs) != ("from_start" in bugs) else prod @ J
        norms[k] = norm(prod[:, block[0], block[1]])
    return norms


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------

def _unpack_grads(result, names: Sequence[str], fn_name: str, where: str) -> dict:
    if isinstance(result, (tuple, list)) and len(result) == 2 and isinstance(result[0], dict):
        raise GradingFailure(f"{fn_name} returned a pair whose first item is a dict; return just the dict of "
                             f"gradients {{{', '.join(repr(n) for n in names)}}}.")
    if not isinstance(result, dict):
        raise GradingFailure(f"{fn_name} should return a dict of gradients with the keys "
                             f"{', '.join(repr(n) for n in names)}, but it returned {type(result).__name__} on {where}.")
    missing = [n for n in names if n not in result]
    if missing:
        near = {"dx": "x", "dh_prev": "h_prev", "dc_prev": "c_prev", "dW_ih": "weight_ih", "dW_hh": "weight_hh",
                "db_ih": "bias_ih", "db_hh": "bias_hh", "dh0": "h0", "dc0": "c0", "W_ih": "weight_ih",
                "W_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}
        renames = [f"{k!r} -> {near[k]!r}" for k in result if isinstance(k, str) and near.get(k) in missing]
        hint = (f" Rename: {', '.join(renames)} (a gradient is stored under the name of what it is the gradient of)."
                if renames else "")
        raise GradingFailure(f"{fn_name} returned a dict without {', '.join(repr(m) for m in missing)} on {where} "
                             f"(it has {sorted(map(str, result))}).{hint}")
    return result


def _compare_grads(got: dict, expected: dict, names, dims, dtype) -> dict[str, str]:
    rtol, atol = tolerance(dtype)
    msgs = {}
    for n in names:
        exp = expected[n]
        # Gradients scale with the upstream dout: compare relative to the array's own size as well.
        scale = float(np.max(np.abs(exp))) if np.size(exp) else 0.0
        m = compare(n, got[n], exp, rtol=rtol, atol=atol * max(1.0, scale), dims=dims[n], dtype=dtype)
        if m:
            if n.startswith("bias") and np.ndim(got[n]) == 2 and np.shape(got[n])[-1] == np.shape(exp)[0]:
                m += f" Sum da over the batch axis: {n} = da.sum(axis=0)."
            msgs[n] = m
    return msgs


def _close(a, b, rtol=1e-6, atol=1e-9) -> bool:
    scale = float(np.max(np.abs(b))) if np.size(b) else 0.0
    return matches(a, b, rtol, atol * max(1.0, scale))


def _same_grads(got: dict, cand: dict, names, tol=(1e-6, 1e-9)) -> bool:
    return all(_close(got[n], cand[n], *tol) for n in names)


def _diagnosis_tol(dtype) -> tuple[float, float]:
    """Tolerance for "the learner's output matches this mutant": the case's, at least 1e-6 relative."""
    rtol, atol = tolerance(dtype)
    return max(rtol, 1e-6), max(atol, 1e-9)


def _order_text(order: str) -> str:
    return (f"the gradients of the four gates are written into da in the order {', '.join(order)} instead of "
            f"i, f, g, o: columns {_BLOCKS[0]} of da belong to the input gate, {_BLOCKS[1]} to the forget gate, "
            f"{_BLOCKS[2]} to the candidate g, {_BLOCKS[3]} to the output gate (the order of the rows of weight_ih)."
            + (" Here df and di are exchanged." if order == "figo" else ""))


def _passed(name: str, cases: list, visible: bool, extra: str = "") -> None:
    kinds = sorted({c.dtype.name for c in cases})
    more = (" The hidden tests add random sizes, B = H = T = 1, saturated gates, float32 and float64."
            if visible else "")
    print(f"{name}: all {len(cases)} cases pass ({', '.join(kinds)}).{extra}{more}")


def _upstream(rng, shape, dtype):
    return rng.normal(0.0, 1.0, shape).astype(dtype)


# --------------------------------------------------------------------------------------------------
# The cell backward
# --------------------------------------------------------------------------------------------------

def _diagnose_backward(got: dict, dh, dc, cache: dict, tol=(1e-6, 1e-9)) -> str | None:
    """The sentence after "Diagnosis:" for a wrong cell backward, or None."""
    H = np.shape(cache["f"])[1]
    D = np.shape(cache["x"])[1]
    singles = [b for b in BACKWARD_BUGS if b != "dx_blocks_T" or D == H > 1]
    singles = [b for b in singles if b != "dh_prev_blocks_T" or H > 1]
    orders = ["".join(p) for p in itertools.permutations(GATE_ORDER) if "".join(p) != GATE_ORDER]
    one = "your gradients match a backward pass in which "
    two = "your gradients match a backward pass with two mistakes:"
    with np.errstate(all="ignore"):
        for o in orders:
            if _same_grads(got, backward_variant(dh, dc, cache, order=o), _CELL_GRADS, tol):
                return one + _order_text(o)
        for b in singles:
            if _same_grads(got, backward_variant(dh, dc, cache, bugs=(b,)), _CELL_GRADS, tol):
                return one + BACKWARD_BUGS[b]
        for bb in itertools.combinations(singles, 2):
            if exclusive(bb, _BACKWARD_GROUPS) and _same_grads(
                    got, backward_variant(dh, dc, cache, bugs=bb), _CELL_GRADS, tol):
                return two + "".join(f"\n    - {BACKWARD_BUGS[b]}" for b in bb)
        for o in orders:
            for b in singles:
                if _same_grads(got, backward_variant(dh, dc, cache, order=o, bugs=(b,)), _CELL_GRADS, tol):
                    return two + "\n    - " + _order_text(o) + "\n    - " + BACKWARD_BUGS[b]
        # No whole match: say, per wrong gradient, which single mistake explains it.
        right = backward_variant(dh, dc, cache)
        by_bug: dict[str, list[str]] = {}
        for n in _CELL_GRADS:
            if _close(got[n], right[n], *tol):
                continue
            for b in singles:
                cand = backward_variant(dh, dc, cache, bugs=(b,))
                if not _close(cand[n], right[n], *tol) and _close(got[n], cand[n], *tol):
                    by_bug.setdefault(b, []).append(n)
                    break
    if not by_bug:
        return None
    return ("no single mistake explains all your gradients; gradient by gradient, they match a backward pass "
            "in which:" + "".join(f"\n  - ({', '.join(names)}) {BACKWARD_BUGS[b]}" for b, names in by_bug.items()))


_BACKWARD_HINT = ("The backward pass, in order: dc_total = dc + dh * o * (1 - tanh_c**2); do = dh * tanh_c; "
                  "df = dc_total * c_prev; di = dc_total * g; dg = dc_total * i; then da (B, 4H) = "
                  "[di * i(1-i), df * f(1-f), dg * (1-g**2), do * o(1-o)]; dW_ih = da.T @ x; dW_hh = da.T @ h_prev; "
                  "db_ih = db_hh = da.sum(axis=0); dx = da @ W_ih; dh_prev = da @ W_hh; dc_prev = dc_total * f.")


def _gradcheck_table(got: dict, arr: dict, dh, dc) -> tuple[str, float, str]:
    """Centred differences (five-point, float64) of sum(dh*h + dc*c) for every input and parameter.

    Returns (table text, worst rel_error of the learner's gradients, the worst name).
    """
    inputs = {n: _f64(arr[n]).copy() for n in _CELL_GRADS}
    dh, dc = _f64(dh), _f64(dc)

    def loss():
        h, c = cell_variant(*(inputs[n] for n in _CELL_GRADS))
        return np.array(np.sum(h * dh) + np.sum(c * dc))

    lines, worst, worst_name = [], -1.0, ""
    for n in _CELL_GRADS:
        num = numerical_gradient(loss, inputs[n], h=1e-3, order=4)
        g = np.asarray(got[n])
        err = rel_error(g, num) if g.shape == num.shape else float("inf")
        if err > worst:
            worst, worst_name = err, n
        lines.append(f"    {n:<10} rel_error {err:.1e}  {'ok' if err < 1e-6 else 'FAIL'}")
    return "\n".join(lines), worst, worst_name


def check_lstm_cell_backward(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                             edge_sizes: bool = False, saturate: bool = False,
                             dtypes: Sequence[str] = ("float64", "float32"),
                             gradcheck: bool = True, name: str = "lstm_cell_backward") -> None:
    """Check ``fn(dh, dc, cache) -> grads`` (the dict of :data:`_CELL_GRADS`) against gated_lib's backward.

    Cases are :func:`lstm_cases` (same keywords) with upstream gradients dh, dc ~ N(0, 1). Each gradient
    must have its input's shape and the cache's dtype. With `gradcheck`, the first float64 case is also
    checked against centred finite differences of the forward pass (float64, five-point stencil).
    """
    __tracebackhide__ = True
    cases = lstm_cases(seed, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes, saturate=saturate, dtypes=dtypes)
    rng = np.random.default_rng(seed + 101)
    fd_note = ""
    for n, case in enumerate(cases, 1):
        arr = case.arrays
        where = f"case {n} of {len(cases)} ({case.label})"
        B, H = arr["h_prev"].shape
        cache = make_cache(*(arr[k] for k in _CELL_GRADS))
        dh, dc = _upstream(rng, (B, H), case.dtype), _upstream(rng, (B, H), case.dtype)
        passed = _copy_cache(cache)
        result = call_student(fn, (dh, dc, passed), fn_name=name, case=where, forbid=FORBID,
                              hint="It was called as lstm_cell_backward(dh, dc, cache) with dh, dc of shape (B, H) = "
                                   f"{fmt_shape((B, H))} and the cache of lstm_cell_forward_with_cache.")
        _check_cache_untouched(cache, passed, name, where)
        got = _unpack_grads(result, _CELL_GRADS, name, where)
        _, step = _ref.lstm_cell_forward(_f64(arr["x"]), _f64(arr["h_prev"]), _f64(arr["c_prev"]), _params64(arr))
        expected = _ref.lstm_cell_backward((_f64(dh), _f64(dc)), step)
        msgs = _compare_grads(got, expected, _CELL_GRADS, _CELL_DIMS, case.dtype)
        do_fd = gradcheck and not fd_note and case.dtype == np.float64 and not case.label.endswith("saturated gates")
        if not msgs:
            if do_fd:
                _, worst, worst_name = _gradcheck_table(got, arr, dh, dc)
                fd_note = (f" Finite differences agree with your gradients on case {n} "
                           f"(worst rel_error {worst:.1e}, {worst_name}).")
            continue
        ok = [k for k in _CELL_GRADS if k not in msgs]
        text = (f"{name} is not right yet, {where}:\n  " + "\n  ".join(msgs.values())
                + (f"\n  Right: {', '.join(ok)}." if ok else ""))
        if any("entries are off" in m for m in msgs.values()):
            cache64 = _cache64(cache)
            diagnosis = _diagnose_backward({k: np.asarray(v, np.float64) for k, v in got.items() if k in _CELL_GRADS},
                                           _f64(dh), _f64(dc), cache64, _diagnosis_tol(case.dtype))
            if diagnosis:
                text += "\nDiagnosis: " + diagnosis
            else:
                text += "\nHint: " + _BACKWARD_HINT
            if case.dtype == np.float64 and B * H <= 40 and all(
                    np.shape(got[k]) == np.shape(expected[k]) for k in _CELL_GRADS):
                table, _, _ = _gradcheck_table(got, arr, dh, dc)
                text += ("\nGradient check of your gradients against centred finite differences of the forward "
                         "pass (float64; a correct backward gives rel_error < 1e-8):\n" + table)
        raise GradingFailure(text)
    _passed(name, cases, fixed, fd_note)


# --------------------------------------------------------------------------------------------------
# Backpropagation through time
# --------------------------------------------------------------------------------------------------

def _diagnose_sequence(got: dict, dout, caches64, dh_n, dc_n, tol=(1e-6, 1e-9)) -> str | None:
    """The sentence after "Diagnosis:" for a wrong BPTT, or None."""
    T = len(caches64)
    with np.errstate(all="ignore"):
        for bug, text in SEQUENCE_BUGS.items():
            if bug == "cache_shift" and T < 2:
                continue
            if _same_grads(got, sequence_backward_variant(dout, caches64, dh_n, dc_n, bugs=(bug,)), _SEQ_GRADS, tol):
                return "your gradients match BPTT in which " + text
        cell = " The bug is in the cell: make check_lstm_cell_backward pass first."
        for o in ("figo", "ifog", "gfio", "oigf"):
            if _same_grads(got, sequence_backward_variant(dout, caches64, dh_n, dc_n, order=o), _SEQ_GRADS, tol):
                return "your gradients match BPTT over a cell backward in which " + _order_text(o) + cell
        for b in BACKWARD_BUGS:
            if _same_grads(got, sequence_backward_variant(dout, caches64, dh_n, dc_n, cell_bugs=(b,)), _SEQ_GRADS, tol):
                return "your gradients match BPTT over a cell backward in which " + BACKWARD_BUGS[b] + cell
        right = sequence_backward_variant(dout, caches64, dh_n, dc_n)
        ok = [k for k in _SEQ_GRADS if _close(got[k], right[k], *tol)]
        if set(ok) >= {"x", "h0", "c0"} and "weight_ih" not in ok:
            return ("the input and initial-state gradients are right but the parameter gradients are not: check "
                    "that every step's parameter gradient is *added* to the total (the weights are shared by all steps).")
    return None


def check_lstm_backward(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                        edge_sizes: bool = False, saturate: bool = False,
                        dtypes: Sequence[str] = ("float64", "float32"), name: str = "lstm_backward") -> None:
    """Check ``fn(dout, caches, dh_n=None, dc_n=None) -> grads`` (BPTT) against gated_lib's lstm_backward.

    Cases are sequence :func:`lstm_cases`; dout (T, B, H) ~ N(0, 1); every other case also passes dh_n and
    dc_n, the others *omit* them (so they are None). grads: x (T, B, D), h0, c0 (B, H), the four parameters.
    """
    __tracebackhide__ = True
    cases = lstm_cases(seed, sequence=True, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes,
                       saturate=saturate, dtypes=dtypes)
    rng = np.random.default_rng(seed + 202)
    for n, case in enumerate(cases, 1):
        arr = case.arrays
        T, B, _ = arr["x"].shape
        H = arr["weight_hh"].shape[1]
        caches = make_caches(arr["x"], arr["weight_ih"], arr["weight_hh"], arr["bias_ih"], arr["bias_hh"],
                             arr["h0"], arr["c0"])
        dout = _upstream(rng, (T, B, H), case.dtype)
        finals = n % 2 == 0
        dh_n = _upstream(rng, (B, H), case.dtype) if finals else None
        dc_n = _upstream(rng, (B, H), case.dtype) if finals else None
        where = (f"case {n} of {len(cases)} ({case.label}, "
                 f"{'dh_n and dc_n given' if finals else 'dh_n and dc_n left out'})")
        passed = _copy_cache(caches)
        kwargs = {"dh_n": dh_n, "dc_n": dc_n} if finals else {}
        result = call_student(fn, (dout, passed), kwargs, fn_name=name, case=where, forbid=FORBID,
                              hint=(f"It was called with dout (T, B, H) = {fmt_shape(dout.shape)} and a list of T = {T} "
                                    f"step caches{'' if finals else ', dh_n and dc_n left out (so they are None)'}.\n"
                                    "Loop t from T-1 down to 0: dh = dh + dout[t]; step t's cell backward "
                                    "gives the gradients of h_{t-1} and c_{t-1} for the next iteration."))
        _check_cache_untouched(caches, passed, name, where)
        got = _unpack_grads(result, _SEQ_GRADS, name, where)
        _, seq = _ref.lstm_forward(_f64(arr["x"]), _params64(arr), _f64(arr["h0"]), _f64(arr["c0"]))
        expected = _ref.lstm_backward(_f64(dout), seq, _f64(dh_n), _f64(dc_n))
        msgs = _compare_grads(got, expected, _SEQ_GRADS, _SEQ_DIMS, case.dtype)
        if not msgs:
            continue
        ok = [k for k in _SEQ_GRADS if k not in msgs]
        text = (f"{name} is not right yet, {where}:\n  " + "\n  ".join(msgs.values())
                + (f"\n  Right: {', '.join(ok)}." if ok else ""))
        if any("entries are off" in m for m in msgs.values()):
            caches64 = [_cache64(c) for c in caches]
            diagnosis = _diagnose_sequence({k: np.asarray(v, np.float64) for k, v in got.items() if k in _SEQ_GRADS},
                                           _f64(dout), caches64, _f64(dh_n), _f64(dc_n), _diagnosis_tol(case.dtype))
            if diagnosis:
                text += "\nDiagnosis: " + diagnosis
            else:
                text += ("\nHint: loop t = T-1, ..., 0; dh = dh + dout[t]; g = lstm_cell_backward(dh, dc, caches[t]); "
                         "add g's parameter gradients to the totals; grads['x'][t] = g['x']; "
                         "dh, dc = g['h_prev'], g['c_prev']. After the loop, dh and dc are the gradients of h0 and c0.")
        raise GradingFailure(text)
    _passed(name, cases, fixed)


# --------------------------------------------------------------------------------------------------
# Jacobians
# --------------------------------------------------------------------------------------------------

def _jacobian_cases(seed, fixed, n_random, edge_sizes, saturate, dtypes) -> list[tuple[Case, dict]]:
    cases = lstm_cases(seed, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes, saturate=saturate, dtypes=dtypes)
    return [(case, make_cache(*(case.arrays[k] for k in _CELL_GRADS))) for case in cases]


def check_direct_jacobian(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                          edge_sizes: bool = False, saturate: bool = False,
                          dtypes: Sequence[str] = ("float64", "float32"),
                          name: str = "lstm_direct_jacobian") -> None:
    """Check ``fn(cache) -> (B, H, H)``: the direct path dc_t/dc_{t-1} = diag(f_t), one matrix per example."""
    __tracebackhide__ = True
    pairs = _jacobian_cases(seed, fixed, n_random, edge_sizes, saturate, dtypes)
    for n, (case, cache) in enumerate(pairs, 1):
        where = f"case {n} of {len(pairs)} ({case.label})"
        passed = _copy_cache(cache)
        got = call_student(fn, (passed,), fn_name=name, case=where, forbid=FORBID)
        _check_cache_untouched(cache, passed, name, where)
        f = np.asarray(cache["f"], np.float64)
        B, H = f.shape
        expected = _jac.lstm_direct_jacobian(f)
        rtol, atol = tolerance(case.dtype)
        msg = compare("J", got, expected, rtol=rtol, atol=atol, dims="(B, H, H)", dtype=case.dtype)
        if not msg:
            continue
        text = f"{name} is not right yet, {where}:\n  {msg}"
        arr = np.asarray(got) if not isinstance(got, dict) else None
        if arr is not None and arr.shape == (B, H):
            text += ("\nHint: that is f itself, shape (B, H). The Jacobian of one example is the (H, H) diagonal "
                     "matrix diag(f[b]); stack them: f[:, :, None] * np.eye(H) has shape (B, H, H).")
        elif arr is not None and arr.ndim == 1:
            text += ("\nHint: np.diag of a 2-D array *extracts* a diagonal. Build the batch of diagonal matrices "
                     "with f[:, :, None] * np.eye(H) (shape (B, H, H)).")
        elif arr is not None and arr.shape == (H, H) and B > 1:
            text += "\nHint: one (H, H) matrix per example: the result is (B, H, H)."
        elif arr is not None and arr.shape == expected.shape:
            with np.errstate(all="ignore"):
                if _close(arr, np.broadcast_to(np.eye(H), (B, H, H)), *_diagnosis_tol(case.dtype)):
                    text += ("\nDiagnosis: you returned the identity, the direct path of the 1997 cell without a "
                             "forget gate. With c_t = f_t * c_{t-1} + i_t * g_t the direct path is diag(f_t).")
                elif _close(arr, (1 - f)[:, :, None] * np.eye(H), *_diagnosis_tol(case.dtype)):
                    text += "\nDiagnosis: you returned diag(1 - f); c_t = f * c_{t-1} + ..., so the direct path is diag(f)."
                elif _close(np.diagonal(arr, axis1=1, axis2=2), f, *_diagnosis_tol(case.dtype)):
                    text += "\nDiagnosis: the diagonal is f, but the off-diagonal entries must be 0."
        raise GradingFailure(text)
    _passed(name, [c for c, _ in pairs], fixed)


def _diagnose_jacobian(got, cache64, tol=(1e-6, 1e-9)) -> str | None:
    H = cache64["f"].shape[1]
    singles = [b for b in JACOBIAN_BUGS if b != "blocks_T" or H > 1]
    orders = ["".join(p) for p in itertools.permutations(GATE_ORDER) if "".join(p) != GATE_ORDER]
    with np.errstate(all="ignore"):
        for b in singles:
            if _close(got, state_jacobian_variant(cache64, bugs=(b,)), *tol):
                return JACOBIAN_BUGS[b]
        for o in orders:
            if _close(got, state_jacobian_variant(cache64, order=o), *tol):
                return (f"the (H, H) blocks of weight_hh are read in the gate order {', '.join(o)}: rows [0:H] of "
                        f"weight_hh are W_hi, [H:2H] W_hf, [2H:3H] W_hg, [3H:4H] W_ho.")
        for bb in itertools.combinations(singles, 2):
            if exclusive(bb, _JAC_GROUPS) and _close(got, state_jacobian_variant(cache64, bugs=bb), *tol):
                return "there are two mistakes:" + "".join(f"\n    - {JACOBIAN_BUGS[b]}" for b in bb)
    return None


def _block_report(got: np.ndarray, expected: np.ndarray, H: int, tol=(1e-6, 1e-9)) -> str:
    names = {(0, 0): "dh_t/dh_{t-1} [:H, :H]", (0, 1): "dh_t/dc_{t-1} [:H, H:]",
             (1, 0): "dc_t/dh_{t-1} [H:, :H]", (1, 1): "dc_t/dc_{t-1} [H:, H:]"}
    good, bad = [], []
    for (r, c), label in names.items():
        sl = (slice(None), slice(r * H, (r + 1) * H), slice(c * H, (c + 1) * H))
        (good if _close(got[sl], expected[sl], *tol) else bad).append(label)
    return f"Blocks right: {', '.join(good) or 'none'}; wrong: {', '.join(bad)}."


def check_state_jacobian(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                         edge_sizes: bool = False, saturate: bool = False,
                         dtypes: Sequence[str] = ("float64", "float32"),
                         name: str = "lstm_state_jacobian") -> None:
    """Check ``fn(cache) -> (B, 2H, 2H)``: d(h_t, c_t)/d(h_{t-1}, c_{t-1}) with the state ordered [h; c].

    The reference is gated_lib.jacobians.lstm_step_jacobian assembled in the order ("h", "c"), which the
    library's tests check against torch.autograd.functional.jacobian.
    """
    __tracebackhide__ = True
    pairs = _jacobian_cases(seed, fixed, n_random, edge_sizes, saturate, dtypes)
    for n, (case, cache) in enumerate(pairs, 1):
        where = f"case {n} of {len(pairs)} ({case.label})"
        passed = _copy_cache(cache)
        got = call_student(fn, (passed,), fn_name=name, case=where, forbid=FORBID,
                           hint="It was called with one step's cache (keys " + ", ".join(CACHE_KEYS) + ").")
        _check_cache_untouched(cache, passed, name, where)
        cache64 = _cache64(cache)
        B, H = cache64["f"].shape
        expected = _jac.assemble_state_jacobian(_jac.lstm_step_jacobian(cache64), order=("h", "c"))
        rtol, atol = tolerance(case.dtype)
        msg = compare("J", got, expected, rtol=rtol, atol=atol, dims="(B, 2H, 2H)", dtype=case.dtype)
        if not msg:
            continue
        text = f"{name} is not right yet, {where}:\n  {msg}"
        arr = None if isinstance(got, dict) else np.asarray(got)
        if isinstance(got, dict):
            text += ("\nHint: return one array (B, 2H, 2H), not the dict of blocks: "
                     "np.concatenate([np.concatenate([dh_dh, dh_dc], 2), np.concatenate([dc_dh, dc_dc], 2)], 1).")
        elif arr is not None and arr.shape == (B, H, H):
            text += ("\nHint: (B, H, H) is the size of one block. The state is [h; c] of size 2H, so the Jacobian "
                     "is (B, 2H, 2H) with four (H, H) blocks [[dh/dh, dh/dc], [dc/dh, dc/dc]].")
            with np.errstate(all="ignore"):
                if _close(arr, expected[:, H:, H:], *_diagnosis_tol(case.dtype)):
                    text += (" You returned the c -> c block diag(f) alone: the direct path, which is only one of "
                             "the four blocks.")
        elif arr is not None and arr.shape == expected.shape and "entries are off" in msg:
            arr64 = arr.astype(np.float64)
            tol = _diagnosis_tol(case.dtype)
            diagnosis = _diagnose_jacobian(arr64, cache64, tol)
            text += "\n  " + _block_report(arr64, expected, H, tol)
            if diagnosis:
                text += "\nDiagnosis: your Jacobian matches one in which " + diagnosis
            else:
                text += ("\nHint: with k = o * (1 - tanh_c**2) and diag(v) W meaning v[:, :, None] * W: "
                         "dc/dc = diag(f); dc/dh = diag(c_prev f(1-f)) W_hf + diag(g i(1-i)) W_hi + diag(i (1-g**2)) W_hg; "
                         "dh/dc = diag(k f); dh/dh = diag(tanh_c o(1-o)) W_ho + k[:, :, None] * dc/dh.")
        raise GradingFailure(text)
    _passed(name, [c for c, _ in pairs], fixed)


# --------------------------------------------------------------------------------------------------
# Gradient norm over lag
# --------------------------------------------------------------------------------------------------

def lag_cases(seed: int = 0, *, fixed: bool = True, n_random: int = 0, edge_sizes: bool = False,
              saturate: bool = False, biases: Sequence[float] = (0.0, 1.0, 3.0, 5.0),
              dtypes: Sequence[str] = ("float64", "float32")) -> list[tuple[Case, list[dict]]]:
    """Trajectories (step caches) of LSTMs with torch's default initialisation and forget bias b.

    The forget bias is the *effective* one (bias_ih[H:2H] = b, bias_hh[H:2H] = 0); inputs ~ N(0, 1),
    initial states zero. fixed: one case per bias (T = 30, B = 3, D = 3, H = 5; the first dtype);
    n_random: random sizes per dtype (T 1..40, B 1..4, D 1..6, H 1..8), cycling through the biases;
    edge_sizes: T = B = H = 1 and T = 1 per dtype; saturate: gate biases beyond +-700 on half the units.
    """
    rng = np.random.default_rng(seed)
    dtypes = [np.dtype(d) for d in dtypes]
    specs = []
    if fixed:
        specs += [(dict(T=30, B=3, D=3, H=5), dtypes[0], b, False) for b in biases]
    bias_cycle = itertools.cycle(biases)
    for dt in dtypes:
        for _ in range(n_random):
            specs.append((dict(T=int(rng.integers(1, 41)), B=int(rng.integers(1, 5)), D=int(rng.integers(1, 7)),
                               H=int(rng.integers(1, 9))), dt, next(bias_cycle), False))
        if edge_sizes:
            specs += [(dict(T=1, B=1, D=1, H=1), dt, next(bias_cycle), False),
                      (dict(T=12, B=1, D=2, H=1), dt, next(bias_cycle), False),
                      (dict(T=1, B=2, D=3, H=4), dt, next(bias_cycle), False)]
        if saturate:
            specs.append((dict(T=15, B=2, D=3, H=4), dt, next(bias_cycle), True))
    out = []
    for sz, dt, b, sat in specs:
        T, B, D, H = sz["T"], sz["B"], sz["D"], sz["H"]
        k = 1.0 / np.sqrt(H)
        arr = {"weight_ih": rng.uniform(-k, k, (4 * H, D)), "weight_hh": rng.uniform(-k, k, (4 * H, H)),
               "bias_ih": rng.uniform(-k, k, 4 * H), "bias_hh": rng.uniform(-k, k, 4 * H)}
        arr["bias_ih"][H:2 * H], arr["bias_hh"][H:2 * H] = b, 0.0
        if sat:
            units = rng.random(4 * H) < 0.5
            arr["bias_ih"] = np.where(units, rng.choice([-1.0, 1.0], 4 * H) * rng.uniform(720, 900, 4 * H), arr["bias_ih"])
        arr = {kk: v.astype(dt) for kk, v in arr.items()}
        arr["x"] = rng.normal(0.0, 1.0, (T, B, D)).astype(dt)
        caches = make_caches(arr["x"], arr["weight_ih"], arr["weight_hh"], arr["bias_ih"], arr["bias_hh"])
        label = (f"T={T}, B={B}, D={D}, H={H}, forget bias {b:g}, {dt.name}"
                 + (", saturated gates" if sat else ""))
        out.append((Case(label=label, dtype=dt, arrays=arr, sizes=dict(sz)), caches))
    return out


def _reference_lag_norms(caches64: list[dict], path: str) -> np.ndarray:
    H = caches64[0]["f"].shape[1]
    if path == "direct":
        mats = [_jac.lstm_direct_jacobian(c["f"]) for c in caches64]
        return _jac.lag_norms(mats, ord=2)
    mats = [_jac.assemble_state_jacobian(_jac.lstm_step_jacobian(c), order=("h", "c")) for c in caches64]
    return _jac.lag_norms(mats, ord=2, rows=slice(H, 2 * H), cols=slice(H, 2 * H))


def _lag_tolerance(dtype) -> float:
    # Products of up to 40 Jacobians: rounding errors add up along the product (float32: ~1e-7 per
    # step, amplified where the c -> c block is small against the whole product).
    return 2e-3 if np.dtype(dtype) == np.float32 else 1e-6


def check_gradient_norm_over_lag(fn: Callable, *, path: str = "full", seed: int = 0, fixed: bool = True,
                                 n_random: int = 0, edge_sizes: bool = False, saturate: bool = False,
                                 biases: Sequence[float] = (0.0, 1.0, 3.0, 5.0),
                                 dtypes: Sequence[str] = ("float64", "float32"),
                                 name: str = "gradient_norm_over_lag") -> None:
    """Check ``fn(caches, path=path) -> norms (T + 1, B)``: ||dc_T/dc_{T-k}||_2 for k = 0 .. T.

    path "full": the c -> c block of the product of the full [h; c] Jacobians; "direct": the product of
    the diag(f_t). Trajectories from :func:`lag_cases` (forget biases `biases`). Compared with
    gated_lib.jacobians on the same (float64-cast) caches with a relative tolerance.
    """
    __tracebackhide__ = True
    if path not in ("full", "direct"):
        raise ValueError(f"path: 'full' or 'direct', got {path!r}")
    cases = lag_cases(seed, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes, saturate=saturate,
                      biases=biases, dtypes=dtypes)
    for n, (case, caches) in enumerate(cases, 1):
        T = len(caches)
        B = caches[0]["f"].shape[0]
        where = f"case {n} of {len(cases)} ({case.label}, path={path!r})"
        passed = _copy_cache(caches)
        got = call_student(fn, (passed,), {"path": path}, fn_name=name, case=where, forbid=FORBID,
                           hint=f"It was called as {name}(caches, path={path!r}) with a list of T = {T} step caches.")
        _check_cache_untouched(caches, passed, name, where)
        caches64 = [_cache64(c) for c in caches]
        expected = _reference_lag_norms(caches64, path)
        rtol = _lag_tolerance(case.dtype)
        atol = 1e-300 if case.dtype == np.float64 else 1e-30
        msg = compare("norms", got, expected, rtol=rtol, atol=atol, dims="(T + 1, B)", dtype=case.dtype)
        if not msg:
            continue
        text = f"{name} is not right yet, {where}:\n  {msg}"
        arr = np.asarray(got) if not isinstance(got, (dict, str)) else None
        if arr is not None and arr.shape == (T, B):
            text += ("\nHint: T + 1 lags, k = 0, 1, ..., T: norms[0] is the lag 0, the identity (norm 1), and "
                     "norms[T] is ||dc_T/dc_0||.")
        elif arr is not None and arr.shape == (B, T + 1):
            text += "\nHint: lag first: norms[k] is the (B,) row of lag k (the transpose of what you returned)."
        elif arr is not None and arr.shape == expected.shape and "entries are off" in msg:
            arr64 = arr.astype(np.float64)
            found = None
            with np.errstate(all="ignore"):
                for bug, sentence in LAG_BUGS.items():
                    if bug == "from_start" and T == 1:
                        continue
                    cand = lag_norms_variant(caches64, path, bugs=(bug,))
                    if not _close(cand, expected, rtol, atol) and _close(arr64, cand, max(rtol, 1e-6), atol):
                        found = sentence
                        break
            if found:
                text += "\nDiagnosis: " + found
            else:
                k_bad = int(np.argmax(~np.isclose(arr64, expected, rtol=rtol, atol=atol).all(axis=1)))
                text += (f"\nHint: the first wrong lag is k = {k_bad}. "
                         + ("Lag 1 is one step's c -> c block, diag(f_T) for both paths: check the last cache, "
                            "caches[-1]." if k_bad == 1 else
                            "Lag 0 is the identity block (norm 1)." if k_bad == 0 else
                            "From lag 2 on, the full product differs from the product of the c -> c blocks: "
                            "multiply the whole (2H, 2H) Jacobians, then take the block [H:, H:]."))
        raise GradingFailure(text)
    _passed(name + f" (path={path!r})", [c for c, _ in cases], fixed)
