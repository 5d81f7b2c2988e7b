"""Checkers for exercise 4 (the GRU): the cell in both conventions, its Jacobian, and a conversion.

The learner's API (explicit arrays, PyTorch's layout and gate order r, z, n)::

    gru_cell_forward(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch") -> h
    gru_step_jacobian(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch") -> J
    to_torch_state_dict(params) -> {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}

    x (B, D); h_prev, h (B, H); weight_ih (3H, D), weight_hh (3H, H), bias_ih, bias_hh (3H,);
    J (B, H, H) with J[b, i, j] = d h[b, i] / d h_prev[b, j]. Outputs keep x's dtype.

The two conventions (gated_lib.gru):

    pytorch  n = tanh(x W_in^T + b_in + r * (h_prev W_hn^T + b_hn))      reset after the product
    cho      n = tanh(x W_in^T + b_in + (r * h_prev) W_hn^T + b_hn)      reset before the product
    both     h = (1 - z) * n + z * h_prev

The conversion's source is a "z takes the new state" GRU with one matrix per gate, written as in
Chung et al. 2014, colah's blog and Coursera, but with the reset gate after the recurrent product
(so that torch.nn.GRU can represent it exactly)::

    params = {W_z, U_z, b_z, W_r, U_r, b_r, W_h, U_h, b_h}: W_* (H, D), U_* (H, H), b_* (H, 1)
    z  = sigmoid(W_z x + U_z h + b_z)        r = sigmoid(W_r x + U_r h + b_r)
    h~ = tanh(W_h x + b_h + r * (U_h h))     h' = z * h~ + (1 - z) * h

Checkers:

* :func:`check_gru_cell_forward`: runs the learner's cell on generated cases (the convention is
  passed as a keyword) and compares with :mod:`gated_lib.gru` in float64. On a mismatch it reruns
  the case through deliberately *mutated* GRUs (z's role flipped, the other convention, gate blocks
  in another order, b_hn dropped or outside r, transposed weights, ...) and names the one the
  learner's output matches.
* :func:`check_gru_step_jacobian`: the same for ∂h_t/∂h_{t-1}, against
  :func:`gated_lib.jacobians.gru_step_jacobian`; mutations: diag(z) alone, a missing path through z,
  r or n, the transpose, the other convention, ... Autograd is not allowed inside the learner's
  function (the point is the derivation).
* :func:`check_torch_state_dict`: loads the learner's state_dict into ``torch.nn.GRU`` (float64)
  and compares its outputs on random sequences with the source model. On a mismatch it reads the
  state_dict block by block and says which block holds what (gate order, z rows not negated, the
  candidate's bias inside r, ...).

Visible tests call a checker with its defaults (a few fixed cases); hidden tests pass a seed and
switch on random sizes, the edge sizes B = H = 1 (T = 1), saturated gates, and float32 and float64.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from gated_lib import gru as _ref
from gated_lib import jacobians as _jac
from gated_lib.grading.core import (
    Forbidden,
    GradingFailure,
    ProfileHook,
    call_student,
    case_specs,
    case_label,
    compare,
    exclusive,
    fmt_shape,
    matches,
    random_gate_params,
    tolerance,
    transposable,
)
from gated_lib.grading.lstm import Case

__all__ = [
    "check_gru_cell_forward",
    "check_gru_step_jacobian",
    "check_torch_state_dict",
    "gru_cases",
    "conversion_cases",
    "gru_variant",
    "jacobian_variant",
    "source_forward",
    "CELL_BUGS",
    "JACOBIAN_BUGS",
]

GATE_ORDER = "rzn"
CONVENTIONS = ("pytorch", "cho")
_SLICES = ("[0:H]", "[H:2H]", "[2H:3H]")
_GATE_NAMES = {"r": "the reset gate r", "z": "the update gate z", "n": "the candidate n"}
#: While a learner's function runs, gated_lib is off limits (its GRU, the Jacobians, the conversions,
#: the sequence machinery, these checkers) except the helpers a notebook hands out; so are torch's GRUs.
FORBID = Forbidden(allow=("gated_lib.activations", "gated_lib.errors", "split_gates"), torch=("gru",))
#: The conversion may build a torch.nn.GRU (to read its key names, say); gated_lib stays off limits.
FORBID_CONVERSION = Forbidden(allow=("gated_lib.activations", "gated_lib.errors"))


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))          # exact identity, no overflow


def _f64(a):
    return None if a is None else np.asarray(a, np.float64)


def _other(convention: str) -> str:
    return "cho" if convention == "pytorch" else "pytorch"


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")


# --------------------------------------------------------------------------------------------------
# The mutated cells
# --------------------------------------------------------------------------------------------------

_N_PYTORCH = "n = tanh(x W_in^T + b_in + r * (h_prev W_hn^T + b_hn))"
_N_CHO = "n = tanh(x W_in^T + b_in + (r * h_prev) W_hn^T + b_hn)"

#: Cell mutations, each with the sentence that explains it. Mutations in one group exclude each other.
CELL_BUGS: dict[str, str] = {
    "z_flipped": ("z's role flipped: h' = z*n + (1-z)*h. In this course, as in PyTorch, cuDNN, Keras and "
                  "Cho et al. 2014, z is the gate that *keeps* the old state: h' = (1 - z)*n + z*h_prev. "
                  "(Chung et al. 2014, colah's blog and Coursera write the other sign.)"),
    "no_keep": "h' = (1 - z)*n: the term z*h_prev is missing (h' = (1 - z)*n + z*h_prev).",
    "no_update": "h' = n: the update gate is missing (h' = (1 - z)*n + z*h_prev).",
    "no_reset": "no reset gate: the recurrent part of the candidate is not multiplied by r.",
    "reset_whole": ("the reset gate multiplying the whole candidate pre-activation, input part included; "
                    "r scales only the recurrent part."),
    "no_b_hn": ("b_hn dropped: the candidate's slice of bias_hh, bias_hh[2H:3H], is missing from n."),
    "b_hn_outside": ("b_hn added outside the reset gate: r * (h_prev W_hn^T) + b_hn. In the PyTorch "
                     "convention r multiplies b_hn too, " + _N_PYTORCH + "; this is why torch's second bias is "
                     "not redundant for the candidate."),
    "no_bias": "a GRU without biases: add bias_ih and bias_hh.",
    "only_bias_ih": "a GRU that adds bias_ih but not bias_hh; torch's layout has two biases and uses both.",
    "only_bias_hh": "a GRU that adds bias_hh but not bias_ih; torch's layout has two biases and uses both.",
    "hh_blocks_T": ("each gate's (H, H) block of weight_hh multiplied without transposing it. Rows are "
                    "examples, so the product is h_prev @ W.T (fused: h_prev @ weight_hh.T); the mistake "
                    "raises no error because the blocks are square."),
    "ih_blocks_T": ("each gate's block of weight_ih multiplied without transposing it (x @ W instead of "
                    "x @ W.T); it raises no error only because D = H in this case."),
    "reshape": ("weights reshaped instead of transposed: weight_ih.reshape(D, 3H) is not weight_ih.T "
                "(reshape keeps the memory order). Use x @ weight_ih.T and h_prev @ weight_hh.T."),
    "sigmoid_n": "a sigmoid on the candidate n; the candidate uses tanh (it must be able to be negative).",
    "no_tanh_n": "the candidate without its tanh: n = tanh(...).",
    "tanh_gates": "tanh on the gates r and z; gates use the sigmoid, so that they lie between 0 and 1.",
}
_GROUPS = [
    {"z_flipped", "no_keep", "no_update"},
    {"no_reset", "reset_whole"},
    {"no_b_hn", "b_hn_outside", "no_bias", "only_bias_ih", "only_bias_hh"},
    {"hh_blocks_T", "ih_blocks_T", "reshape"},
    {"sigmoid_n", "no_tanh_n"},
]
_KNOWN_ORDERS = {"zrn": "Keras' order z, r, h"}


def _convention_text(asked: str) -> str:
    if asked == "pytorch":
        return ("the reset gate applied *before* the recurrent product, " + _N_CHO + ": that is Cho et al.'s "
                "convention (convention='cho'). convention='pytorch' applies r *after* the product: " + _N_PYTORCH
                + ". The two are different models, not two ways of writing one.")
    return ("the reset gate applied *after* the recurrent product, " + _N_PYTORCH + ": that is PyTorch's "
            "convention. convention='cho' applies r to h_prev *before* the product, and b_hn is an ordinary "
            "bias: " + _N_CHO + ". Do you use the `convention` argument?")


def _applicable(bug: str, D: int, H: int, convention: str) -> bool:
    if bug == "b_hn_outside":
        return convention == "pytorch"           # in the Cho convention b_hn is outside r anyway
    return transposable(bug, D, H)


def _gru_parts(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch", order=GATE_ORDER,
               bugs: Iterable[str] = ()) -> dict:
    """Everything a (mutated) GRU step computes, in float64: r, z, n, m (= h W_hn^T + b_hn), h."""
    bugs = frozenset(bugs)
    x, h = _f64(x), _f64(h_prev)
    W_ih, W_hh, b_ih, b_hh = (_f64(a) for a in (weight_ih, weight_hh, bias_ih, bias_hh))
    D, H = x.shape[1], h.shape[1]
    zeros = np.zeros(3 * H)
    if "no_bias" in bugs:
        b_ih, b_hh = zeros, zeros
    elif "only_bias_ih" in bugs:
        b_hh = zeros
    elif "only_bias_hh" in bugs:
        b_ih = zeros
    if "reshape" in bugs:
        xs_all = x @ W_ih.reshape(D, 3 * H)
        W_hh_r = W_hh.reshape(H, 3 * H)
    blocks = {}
    for k, gate in enumerate(order):
        rows = slice(k * H, (k + 1) * H)
        if "reshape" in bugs:
            Wx = None
            Wh = W_hh_r[:, rows].T
            xp = xs_all[:, rows]
        else:
            Wx = W_ih[rows].T if "ih_blocks_T" in bugs else W_ih[rows]
            Wh = W_hh[rows].T if "hh_blocks_T" in bugs else W_hh[rows]
            xp = x @ Wx.T
        blocks[gate] = (xp, Wh, b_ih[rows], b_hh[rows])
    gate_fn = np.tanh if "tanh_gates" in bugs else _sigmoid
    pre = {g: blocks[g][0] + blocks[g][2] + h @ blocks[g][1].T + blocks[g][3] for g in "rz"}
    r, z = gate_fn(pre["r"]), gate_fn(pre["z"])
    xn, W_hn, b_in, b_hn = blocks["n"]
    if "no_b_hn" in bugs:
        b_hn = np.zeros(H)
    rr = np.ones_like(r) if "no_reset" in bugs else r
    if convention == "pytorch":
        m = h @ W_hn.T + b_hn
        if "reset_whole" in bugs:
            a_n = rr * (xn + b_in + m)
        elif "b_hn_outside" in bugs:
            a_n = xn + b_in + rr * (h @ W_hn.T) + b_hn
        else:
            a_n = xn + b_in + rr * m
    else:
        m = (rr * h) @ W_hn.T + b_hn
        a_n = rr * (xn + b_in + h @ W_hn.T + b_hn) if "reset_whole" in bugs else xn + b_in + m
    n = _sigmoid(a_n) if "sigmoid_n" in bugs else (a_n if "no_tanh_n" in bugs else np.tanh(a_n))
    if "z_flipped" in bugs:
        h_new = z * n + (1.0 - z) * h
    elif "no_keep" in bugs:
        h_new = (1.0 - z) * n
    elif "no_update" in bugs:
        h_new = n
    else:
        h_new = (1.0 - z) * n + z * h
    return dict(r=r, z=z, n=n, m=m, h=h_new, W_hr=blocks["r"][1], W_hz=blocks["z"][1], W_hn=W_hn, b_hn=b_hn)


def gru_variant(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention: str = "pytorch",
                order: str = GATE_ORDER, bugs: Iterable[str] = ()) -> np.ndarray:
    """One GRU step in float64, correct when ``order == "rzn"`` and `bugs` is empty.

    An independent per-gate implementation (no code shared with gated_lib.gru): with mutations it
    produces what a learner's buggy cell would. `order` names, block by block, the gate a learner
    reads from rows [0:H], [H:2H], [2H:3H]; `bugs` are keys of :data:`CELL_BUGS`.
    """
    _check_convention(convention)
    return _gru_parts(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention, order, bugs)["h"]


@dataclass(frozen=True)
class _Variant:
    order: str = GATE_ORDER
    bugs: tuple[str, ...] = ()
    other_convention: bool = False

    @property
    def size(self) -> int:
        return len(self.bugs) + (self.order != GATE_ORDER) + self.other_convention

    def describe(self, asked: str) -> list[str]:
        out = []
        if self.other_convention:
            out.append(_convention_text(asked))
        if self.order != GATE_ORDER:
            known = _KNOWN_ORDERS.get(self.order)
            out.append(f"the three gate blocks read in the order {', '.join(self.order)}"
                       f"{' (' + known + ')' if known else ''} instead of r, z, n. In PyTorch's layout, rows "
                       f"[0:H] of weight_ih, weight_hh and the biases belong to the reset gate r, [H:2H] to the "
                       f"update gate z, [2H:3H] to the candidate n.")
        out += [CELL_BUGS[b] for b in self.bugs]
        return out


def _cell_variants(D: int, H: int, convention: str, pairs: bool = True) -> list[_Variant]:
    singles = [b for b in CELL_BUGS if _applicable(b, D, H, convention)]
    other = [b for b in CELL_BUGS if _applicable(b, D, H, _other(convention))]
    orders = ["".join(p) for p in itertools.permutations(GATE_ORDER) if "".join(p) != GATE_ORDER]
    out = [_Variant(other_convention=True)]
    out += [_Variant(order=o) for o in orders]
    out += [_Variant(bugs=(b,)) for b in singles]
    if pairs:
        out += [_Variant(order=o, bugs=(b,)) for o in orders for b in singles]
        out += [_Variant(bugs=bb) for bb in itertools.combinations(singles, 2) if exclusive(bb, _GROUPS)]
        out += [_Variant(other_convention=True, bugs=(b,)) for b in other]
        out += [_Variant(other_convention=True, order=o) for o in orders]
    return sorted(out, key=lambda v: v.size)


def _variant_convention(v: _Variant, asked: str) -> str:
    return _other(asked) if v.other_convention else asked


# --------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------

def _params(rng, D, H, dtype, saturate=False):
    return random_gate_params(rng, D, H, 3, dtype, saturate)


_label = case_label


_FIXED = [dict(B=2, D=3, H=4), dict(B=3, D=5, H=5), dict(B=4, D=6, H=3)]
_EDGE = [dict(B=1, D=1, H=1), dict(B=1, D=3, H=1), dict(B=2, D=1, H=3), dict(B=1, D=2, H=2)]


def gru_cases(seed: int = 0, *, fixed: bool = True, n_random: int = 0, edge_sizes: bool = False,
              saturate: bool = False, dtypes: Sequence[str] = ("float64", "float32")) -> list[Case]:
    """Inputs for one GRU step: x (B, D), h_prev (B, H) and the four parameter arrays.

    fixed:      three well-conditioned cases (the visible tests; the first dtype gets two of them, the
                second dtype one); one has D = H so that transposed input blocks can be diagnosed.
    n_random:   random sizes per dtype (B 1..5, D 1..9, H 1..9).
    edge_sizes: B = 1, H = 1, D = 1 per dtype.
    saturate:   two cases per dtype with pre-activations beyond +-700.
    """
    rng = np.random.default_rng(seed)
    dtypes = [np.dtype(d) for d in dtypes]
    specs = case_specs(rng, dtypes, fixed=_FIXED if fixed else (), n_random=n_random,
                       random_size=lambda r: dict(B=int(r.integers(1, 6)), D=int(r.integers(1, 10)),
                                                  H=int(r.integers(1, 10))),
                       edge=_EDGE if edge_sizes else (),
                       saturated=[dict(B=3, D=4, H=5), dict(B=2, D=3, H=3)] if saturate else ())
    cases = []
    for sz, dt, sat in specs:
        B, D, H = sz["B"], sz["D"], sz["H"]
        arrays = dict(_params(rng, D, H, dt, sat))
        arrays["x"] = rng.normal(0.0, 1.0, (B, D)).astype(dt)
        arrays["h_prev"] = rng.uniform(-0.9, 0.9, (B, H)).astype(dt)
        cases.append(Case(label=_label(dt, sat, **sz), dtype=dt, arrays=arrays, sizes=dict(sz)))
    return cases


_ARGS = ("x", "h_prev", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
_DIMS = {"x": "(B, D)", "h_prev": "(B, H)", "weight_ih": "(3H, D)", "weight_hh": "(3H, H)",
         "bias_ih": "(3H,)", "bias_hh": "(3H,)"}


def _shapes_text(arr: dict) -> str:
    return ", ".join(f"{n} {_DIMS[n]} = {fmt_shape(arr[n].shape)}" for n in _ARGS)


def _ref_params(arr) -> dict:
    return {k: _f64(arr[k]) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


def _passed(name: str, cases: list[Case], visible: bool, what: str = "") -> None:
    kinds = sorted({c.dtype.name for c in cases})
    more = (" The hidden tests add random sizes, B = H = 1, saturated gates, float32 and float64."
            if visible else "")
    print(f"{name}{what}: all {len(cases)} cases pass ({', '.join(kinds)}).{more}")


def _bullets(sentences: list[str]) -> str:
    if len(sentences) == 1:
        return sentences[0]
    return "two mistakes:" + "".join(f"\n    - {s}" for s in sentences)


# --------------------------------------------------------------------------------------------------
# The cell
# --------------------------------------------------------------------------------------------------

def _diagnose_cell(arr: dict, got, convention: str, rtol: float, atol: float) -> list[str]:
    D, H = arr["x"].shape[1], arr["h_prev"].shape[1]
    args = [arr[n] for n in _ARGS]
    rtol, atol = max(rtol, 1e-6), max(atol, 1e-8)
    found, best = [], None
    with np.errstate(all="ignore"):
        for v in _cell_variants(D, H, convention):
            if best is not None and v.size > best:
                break
            h = gru_variant(*args, convention=_variant_convention(v, convention), order=v.order, bugs=v.bugs)
            if matches(got, h, rtol, atol):
                found.append(v)
                best = v.size
    return [_bullets(v.describe(convention)) for v in found[:3]]


def _unpack_h(result, fn_name: str, where: str):
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
        raise GradingFailure(f"{fn_name} returned a pair (h, cache), like gated_lib's gru_cell_forward. "
                             f"Return just h, the (B, H) array.")
    if isinstance(result, (tuple, list)):
        raise GradingFailure(f"{fn_name} should return h, one (B, H) array, but it returned a "
                             f"{type(result).__name__} of length {len(result)} on {where}.")
    return result


def check_gru_cell_forward(fn: Callable, *, convention: str = "pytorch", seed: int = 0, fixed: bool = True,
                           n_random: int = 0, edge_sizes: bool = False, saturate: bool = False,
                           dtypes: Sequence[str] = ("float64", "float32"), name: str = "gru_cell_forward") -> None:
    """Check ``fn(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention=convention) -> h``.

    The cases are :func:`gru_cases` (same keywords). h must have shape (B, H), the inputs' dtype, and
    match gated_lib.gru in the convention asked within :func:`~gated_lib.grading.core.tolerance`.
    The learner's function may not call gated_lib's or torch's GRU, nor change its inputs.
    """
    __tracebackhide__ = True
    _check_convention(convention)
    cases = gru_cases(seed, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes, saturate=saturate, dtypes=dtypes)
    for n, case in enumerate(cases, 1):
        arr = case.arrays
        where = f"case {n} of {len(cases)} ({case.label}, convention={convention!r})"
        hint = (f"It was called with {_shapes_text(arr)} and convention={convention!r}.\n"
                f"Shapes: x @ weight_ih.T is (B, 3H) and h_prev @ weight_hh.T is (B, 3H); their column blocks "
                f"[0:H], [H:2H], [2H:3H] belong to r, z, n.")
        result = call_student(fn, [arr[k] for k in _ARGS], {"convention": convention}, fn_name=name, case=where,
                              forbid=FORBID, hint=hint)
        got = _unpack_h(result, name, where)
        expected, _ = _ref.gru_cell_forward(_f64(arr["x"]), _f64(arr["h_prev"]), _ref_params(arr), convention=convention)
        rtol, atol = tolerance(case.dtype)
        msg = compare("h", got, expected, rtol=rtol, atol=atol, dims="(B, H)", dtype=case.dtype)
        if not msg:
            continue
        text = f"{name} is not right yet, {where}:\n  {msg}"
        if "entries are off" in msg:
            diagnosis = _diagnose_cell(arr, got, convention, rtol, atol)
            if diagnosis:
                text += ("\nDiagnosis: your output matches a GRU with " + diagnosis[0]
                         + "".join(f"\n  It matches equally a GRU with {d}" for d in diagnosis[1:]))
            else:
                text += ("\nHint: compute r = sigmoid(a_r), z = sigmoid(a_z) from the blocks [0:H] and [H:2H] of "
                         "x @ weight_ih.T + bias_ih + h_prev @ weight_hh.T + bias_hh, then "
                         + (_N_PYTORCH if convention == "pytorch" else _N_CHO)
                         + " with the blocks [2H:3H], and h = (1 - z)*n + z*h_prev.")
        raise GradingFailure(text)
    _passed(name, cases, fixed, f" (convention={convention!r})")


# --------------------------------------------------------------------------------------------------
# The Jacobian
# --------------------------------------------------------------------------------------------------

JACOBIAN_BUGS: dict[str, str] = {
    "only_diag_z": ("J = diag(z) alone. diag(z) is only the direct path, the derivative with z, r and n held "
                    "fixed; h = (1 - z)*n + z*h_prev also depends on h_prev through z (W_hz), through n (W_hn) "
                    "and through r (W_hr). Add those three terms."),
    "no_diag": "the direct path diag(z) missing: z * h_prev contributes diag(z) to J.",
    "no_z_path": ("the term through the update gate missing: diag((h_prev - n) * z * (1 - z)) W_hz "
                  "(the derivative of h with respect to z is h_prev - n)."),
    "no_r_path": ("the term through the reset gate missing: r depends on h_prev as well, "
                  "d r / d h_prev = diag(r * (1 - r)) W_hr, and it reaches h through n."),
    "no_n_path": ("the terms through the candidate n missing: diag((1 - z) * (1 - n**2)) times "
                  "d a_n / d h_prev, where a_n is n's pre-activation."),
    "sign_z_path": ("the term through z with the wrong sign: d h / d z = h_prev - n, not n - h_prev."),
    "no_tanh_deriv": "tanh's derivative (1 - n**2) missing from the terms through n.",
    "no_sigmoid_deriv": "the sigmoid derivatives z * (1 - z) and r * (1 - r) missing (sigma' = sigma * (1 - sigma)).",
    "no_one_minus_z": "the factor (1 - z) missing from the terms through n (n enters h as (1 - z) * n).",
    "no_b_hn": ("b_hn missing from the term through r: in the PyTorch convention r multiplies the whole bracket "
                "(h_prev @ W_hn.T + b_hn), so d a_n / d r = h_prev @ W_hn.T + b_hn."),
    "z_flipped": ("the Jacobian of a GRU with z's role flipped (h = z*n + (1 - z)*h_prev): its direct path "
                  "is diag(1 - z). In this course z keeps the old state, h = (1 - z)*n + z*h_prev, so the "
                  "direct path is diag(z)."),
    "blocks_T": ("the weight blocks transposed inside the products (diag(v) @ W.T instead of diag(v) @ W). "
                 "Row i of d a / d h_prev is row i of the weight block: d (h_prev @ W.T)[i] / d h_prev[j] = W[i, j]."),
    "transposed": ("each example's Jacobian transposed: J[b, i, j] must be d h[b, i] / d h_prev[b, j] (row i: "
                   "unit i of the new state; column j: unit j of the old one)."),
}
_JAC_GROUPS = [
    {"only_diag_z", "no_diag", "z_flipped"},
    {"only_diag_z", "no_z_path", "no_r_path", "no_n_path", "sign_z_path"},
    {"only_diag_z", "no_n_path", "no_tanh_deriv", "no_one_minus_z", "no_b_hn"},
    {"only_diag_z", "blocks_T"},
    {"no_r_path", "no_b_hn"},
]


def _jac_applicable(bug: str, H: int, convention: str) -> bool:
    if bug in ("blocks_T", "transposed"):
        return H > 1
    if bug == "no_b_hn":
        return convention == "pytorch"
    return True


def _diag_times(v, W):
    return v[:, :, None] * W[None, :, :]


def jacobian_variant(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention: str = "pytorch",
                     bugs: Iterable[str] = ()) -> np.ndarray:
    """d h / d h_prev (B, H, H) in float64, correct when `bugs` is empty; keys of :data:`JACOBIAN_BUGS`.

    Independent of gated_lib.jacobians: it differentiates :func:`gru_variant`'s equations by hand.
    """
    _check_convention(convention)
    bugs = frozenset(bugs)
    P = _gru_parts(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention,
                   bugs=("z_flipped",) if "z_flipped" in bugs else ())
    h = _f64(h_prev)
    r, z, n = P["r"], P["z"], P["n"]
    W_hr, W_hz, W_hn = P["W_hr"], P["W_hz"], P["W_hn"]
    if "blocks_T" in bugs:
        W_hr, W_hz, W_hn = W_hr.T, W_hz.T, W_hn.T
    B, H = h.shape
    eye = np.broadcast_to(np.eye(H), (B, H, H))
    dz = np.ones_like(z) if "no_sigmoid_deriv" in bugs else z * (1.0 - z)
    dr = np.ones_like(r) if "no_sigmoid_deriv" in bugs else r * (1.0 - r)
    dtanh = np.ones_like(n) if "no_tanh_deriv" in bugs else 1.0 - n * n
    flipped = "z_flipped" in bugs
    keep = (1.0 - z) if flipped else z                 # the factor in front of h_prev
    write = z if flipped else (1.0 - z)                # the factor in front of n
    if "no_one_minus_z" in bugs:
        write = np.ones_like(z)
    dh_dz = (n - h) if flipped else (h - n)
    if "sign_z_path" in bugs:
        dh_dz = -dh_dz
    if convention == "pytorch":
        bracket = h @ W_hn.T if "no_b_hn" in bugs else (h @ P["W_hn"].T + P["b_hn"])
        dAn = _diag_times(r, W_hn)
        if "no_r_path" not in bugs:
            dAn = dAn + _diag_times(bracket * dr, W_hr)
    else:
        dAn = W_hn[None] * r[:, None, :]
        if "no_r_path" not in bugs:
            dAn = dAn + W_hn[None] @ _diag_times(h * dr, W_hr)
    J = np.zeros((B, H, H))
    if "no_diag" not in bugs:
        J = J + eye * keep[:, :, None]
    if "only_diag_z" in bugs:
        return J
    if "no_z_path" not in bugs:
        J = J + _diag_times(dh_dz * dz, W_hz)
    if "no_n_path" not in bugs:
        J = J + (write * dtanh)[:, :, None] * dAn
    if "transposed" in bugs:
        J = np.swapaxes(J, 1, 2)
    return J


@dataclass(frozen=True)
class _JacVariant:
    bugs: tuple[str, ...] = ()
    other_convention: bool = False

    @property
    def size(self) -> int:
        return len(self.bugs) + self.other_convention

    def describe(self, asked: str) -> list[str]:
        out = []
        if self.other_convention:
            other = _other(asked)
            out.append(f"the Jacobian of the {'Cho' if other == 'cho' else 'PyTorch'} convention, while "
                       f"convention={asked!r} was asked: a GRU with " + _convention_text(asked))
        return out + [JACOBIAN_BUGS[b] for b in self.bugs]


def _jac_variants(H: int, convention: str) -> list[_JacVariant]:
    singles = [b for b in JACOBIAN_BUGS if _jac_applicable(b, H, convention)]
    other = [b for b in JACOBIAN_BUGS if _jac_applicable(b, H, _other(convention))]
    out = [_JacVariant(other_convention=True)] + [_JacVariant(bugs=(b,)) for b in singles]
    out += [_JacVariant(bugs=bb) for bb in itertools.combinations(singles, 2) if exclusive(bb, _JAC_GROUPS)]
    out += [_JacVariant(bugs=(b,), other_convention=True) for b in other]
    return sorted(out, key=lambda v: v.size)


def _diagnose_jacobian(arr: dict, got, convention: str, rtol: float, atol: float) -> list[str]:
    H = arr["h_prev"].shape[1]
    args = [arr[n] for n in _ARGS]
    rtol, atol = max(rtol, 1e-6), max(atol, 1e-8)
    found, best = [], None
    with np.errstate(all="ignore"):
        for v in _jac_variants(H, convention):
            if best is not None and v.size > best:
                break
            conv = _other(convention) if v.other_convention else convention
            if matches(got, jacobian_variant(*args, convention=conv, bugs=v.bugs), rtol, atol):
                found.append(v)
                best = v.size
    return [_bullets(v.describe(convention)) for v in found[:3]]


class _AutogradMonitor(ProfileHook):
    """Records calls into torch's automatic differentiation.

    Entered *before* call_student, so the core monitor chains to it and it sees every event.
    """

    _NAMES = {"jacobian", "grad", "backward", "vjp", "jvp", "hessian", "jacrev", "jacfwd", "vmap_jacobian"}

    def __init__(self):
        self.calls: list[str] = []

    def watch(self, frame, event, arg):
        if event == "call":
            code = frame.f_code
            path = code.co_filename.replace(os.sep, "/")
            if code.co_name in self._NAMES and ("/torch/autograd/" in path or "/torch/_functorch/" in path
                                                or path.endswith("/torch/_tensor.py")):
                self.calls.append(f"torch autograd ({code.co_name})")


def check_gru_step_jacobian(fn: Callable, *, convention: str = "pytorch", seed: int = 0, fixed: bool = True,
                            n_random: int = 0, edge_sizes: bool = False, saturate: bool = False,
                            dtypes: Sequence[str] = ("float64", "float32"),
                            name: str = "gru_step_jacobian") -> None:
    """Check ``fn(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention=convention) -> J``.

    J (B, H, H), J[b, i, j] = d h[b, i] / d h_prev[b, j], in the inputs' dtype; compared with
    :func:`gated_lib.jacobians.gru_step_jacobian`. Cases as :func:`gru_cases`. The learner's function
    may not call gated_lib, torch's GRU or torch's autograd.
    """
    __tracebackhide__ = True
    _check_convention(convention)
    cases = gru_cases(seed, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes, saturate=saturate, dtypes=dtypes)
    for n, case in enumerate(cases, 1):
        arr = case.arrays
        B, H = arr["h_prev"].shape
        where = f"case {n} of {len(cases)} ({case.label}, convention={convention!r})"
        hint = (f"It was called with {_shapes_text(arr)} and convention={convention!r}; J must have shape "
                f"(B, H, H) = {fmt_shape((B, H, H))}.")
        with _AutogradMonitor() as auto:
            result = call_student(fn, [arr[k] for k in _ARGS], {"convention": convention}, fn_name=name,
                                  case=where, forbid=FORBID, hint=hint)
        if auto.calls:
            raise GradingFailure(f"{name} calls {', '.join(dict.fromkeys(auto.calls))}. This exercise asks for "
                                 f"the Jacobian derived by hand (the chapter's proposition), computed with "
                                 f"numpy; use autograd in a scratch cell to check your answer, not inside "
                                 f"the function.")
        _, cache = _ref.gru_cell_forward(_f64(arr["x"]), _f64(arr["h_prev"]), _ref_params(arr), convention=convention)
        expected = _jac.gru_step_jacobian(cache)
        got = result
        arr_got = np.asarray(got) if not hasattr(got, "detach") else got.detach().cpu().numpy()
        if getattr(arr_got, "shape", None) == (B * H, B * H) and B > 1:
            raise GradingFailure(f"{name} returned the full ({B * H}, {B * H}) Jacobian of the whole batch on "
                                 f"{where}. Examples do not interact, so it is block-diagonal: return only the "
                                 f"blocks, J of shape (B, H, H), J[b] = d h[b] / d h_prev[b].")
        if getattr(arr_got, "shape", None) == (H, H) and B > 1:
            raise GradingFailure(f"{name} returned one (H, H) matrix on {where}; return one per example: "
                                 f"(B, H, H) = {fmt_shape((B, H, H))}, J[b] = d h[b] / d h_prev[b].")
        rtol, atol = tolerance(case.dtype)
        msg = compare("J", got, expected, rtol=rtol, atol=atol, dims="(B, H, H)", dtype=case.dtype)
        if not msg:
            continue
        text = f"{name} is not right yet, {where}:\n  {msg}"
        if "entries are off" in msg:
            diagnosis = _diagnose_jacobian(arr, got, convention, rtol, atol)
            if diagnosis:
                text += ("\nDiagnosis: your Jacobian matches " + diagnosis[0]
                         + "".join(f"\n  It matches equally {d}" for d in diagnosis[1:]))
            else:
                text += ("\nHint: J = diag(z) + diag((h_prev - n) z (1 - z)) W_hz + diag((1 - z)(1 - n^2)) "
                         "d a_n / d h_prev, with d a_n / d h_prev = "
                         + ("diag(r) W_hn + diag((h_prev W_hn^T + b_hn) r (1 - r)) W_hr" if convention == "pytorch"
                            else "W_hn (diag(r) + diag(h_prev r (1 - r)) W_hr)")
                         + " (each row of a batch separately).")
        raise GradingFailure(text)
    _passed(name, cases, fixed, f" (convention={convention!r})")


# --------------------------------------------------------------------------------------------------
# The conversion to torch.nn.GRU
# --------------------------------------------------------------------------------------------------

SOURCE_KEYS = ("W_z", "U_z", "b_z", "W_r", "U_r", "b_r", "W_h", "U_h", "b_h")
TORCH_KEYS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
_TORCH_DIMS = {"weight_ih_l0": "(3H, D)", "weight_hh_l0": "(3H, H)", "bias_ih_l0": "(3H,)", "bias_hh_l0": "(3H,)"}


def source_forward(params: Mapping, x, h0=None) -> tuple[np.ndarray, np.ndarray]:
    """The "z takes the new state" GRU of the conversion exercise over a sequence, in float64.

    params: W_* (H, D), U_* (H, H), b_* (H, 1) for * in z, r, h; x (T, B, D); h0 (B, H) or zeros.
    Returns (out (T, B, H), h_n (B, H)).
    """
    P = {k: _f64(params[k]) for k in SOURCE_KEYS}
    b = {g: P["b_" + g].reshape(-1) for g in "zrh"}
    x = _f64(x)
    T, B, _ = x.shape
    H = P["U_z"].shape[0]
    h = np.zeros((B, H)) if h0 is None else _f64(h0)
    out = []
    for xt in x:
        z = _sigmoid(xt @ P["W_z"].T + h @ P["U_z"].T + b["z"])
        r = _sigmoid(xt @ P["W_r"].T + h @ P["U_r"].T + b["r"])
        cand = np.tanh(xt @ P["W_h"].T + b["h"] + r * (h @ P["U_h"].T))
        h = z * cand + (1.0 - z) * h
        out.append(h)
    return np.stack(out), h


@dataclass
class ConversionCase:
    label: str
    dtype: np.dtype
    params: dict
    x: np.ndarray
    h0: np.ndarray
    sizes: dict


_FIXED_CONV = [dict(T=5, B=2, D=3, H=4), dict(T=4, B=3, D=4, H=4), dict(T=6, B=2, D=5, H=3)]
_EDGE_CONV = [dict(T=1, B=1, D=1, H=1), dict(T=3, B=1, D=2, H=1), dict(T=1, B=2, D=1, H=3)]


def conversion_cases(seed: int = 0, *, fixed: bool = True, n_random: int = 0, edge_sizes: bool = False,
                     saturate: bool = False, dtypes: Sequence[str] = ("float64",)) -> list[ConversionCase]:
    """Source parameters (in `dtypes`) and a float64 test sequence x (T, B, D) with h0 (B, H).

    fixed: three cases (one with D = H); n_random: random sizes per dtype (T 1..8, B 1..4, D, H 1..7);
    edge_sizes: T = B = D = H = 1 and friends; saturate: one case per dtype whose biases are +-30,
    so that z is 0 or 1 in some units and a sign error cannot hide.
    """
    rng = np.random.default_rng(seed)
    dtypes = [np.dtype(d) for d in dtypes]
    specs = []
    if fixed:
        specs += [(sz, dtypes[0], False) for sz in _FIXED_CONV]
    for dt in dtypes:
        for _ in range(n_random):
            specs.append((dict(T=int(rng.integers(1, 9)), B=int(rng.integers(1, 5)), D=int(rng.integers(1, 8)),
                               H=int(rng.integers(1, 8))), dt, False))
        if edge_sizes:
            specs += [(sz, dt, False) for sz in _EDGE_CONV]
        if saturate:
            specs.append((dict(T=4, B=2, D=3, H=5), dt, True))
    cases = []
    for sz, dt, sat in specs:
        T, B, D, H = sz["T"], sz["B"], sz["D"], sz["H"]
        scale = 1.5 / np.sqrt(D + H)
        p = {}
        for g in "zrh":
            p["W_" + g] = rng.normal(0.0, scale, (H, D))
            p["U_" + g] = rng.normal(0.0, scale, (H, H))
            p["b_" + g] = rng.normal(0.0, 0.7, (H, 1))
            if sat:
                p["b_" + g] = rng.choice([-30.0, 30.0], (H, 1))
        params = {k: p[k].astype(dt) for k in SOURCE_KEYS}
        x = rng.normal(0.0, 1.0, (T, B, D))
        h0 = rng.uniform(-0.9, 0.9, (B, H))
        cases.append(ConversionCase(_label(dt, sat, **sz), dt, params, x, h0, dict(sz)))
    return cases


@contextlib.contextmanager
def _quiet():
    with np.errstate(all="ignore"), warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _to_numpy(v):
    if hasattr(v, "detach") and hasattr(v, "cpu"):
        return v.detach().cpu().numpy()
    try:
        a = np.asarray(v)
    except Exception:  # noqa: BLE001
        return None
    return a if a.dtype.kind in "fiub" else None


def _validate_state_dict(sd, fn_name: str, D: int, H: int, where: str) -> dict:
    if not isinstance(sd, Mapping):
        raise GradingFailure(f"{fn_name} should return a dict (a state_dict) with the keys {list(TORCH_KEYS)}, "
                             f"but it returned a {type(sd).__name__} on {where}.")
    keys = list(sd)
    stripped = {str(k).rsplit(".", 1)[-1]: k for k in keys}
    if set(keys) != set(TORCH_KEYS):
        missing = [k for k in TORCH_KEYS if k not in keys]
        extra = [k for k in keys if k not in TORCH_KEYS]
        msg = f"{fn_name}: the state_dict's keys are {keys}; torch.nn.GRU(D, H) expects exactly {list(TORCH_KEYS)}."
        if set(stripped) == set(TORCH_KEYS):
            msg += " Drop the module prefix (\"gru.weight_ih_l0\" -> \"weight_ih_l0\")."
        elif any(k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") for k in keys):
            msg += " The layer suffix is part of the name: weight_ih_l0 for layer 0."
        elif missing and extra:
            msg += f" Missing: {missing}; not a torch.nn.GRU key: {extra}."
        raise GradingFailure(msg)
    shapes = {"weight_ih_l0": (3 * H, D), "weight_hh_l0": (3 * H, H), "bias_ih_l0": (3 * H,), "bias_hh_l0": (3 * H,)}
    out = {}
    for k in TORCH_KEYS:
        a = _to_numpy(sd[k])
        if a is None:
            raise GradingFailure(f"{fn_name}: {k} should be an array or a tensor of numbers, got {type(sd[k]).__name__}.")
        if a.shape != shapes[k]:
            msg = (f"{fn_name}: {k} has shape {fmt_shape(a.shape)}, but torch.nn.GRU(D={D}, H={H}) needs "
                   f"{_TORCH_DIMS[k]} = {fmt_shape(shapes[k])} ({where}).")
            if k.startswith("bias") and a.shape in ((3 * H, 1), (1, 3 * H)):
                msg += " The source's biases are columns (H, 1); torch's are flat: use b.ravel() or b[:, 0]."
            elif a.ndim == 2 and a.shape == shapes[k][::-1]:
                msg += (" That is the transpose. The source's W (H, D) and U (H, H) already have torch's "
                        "layout (they multiply a column x as W x, torch computes x @ W.T): stack them as they are.")
            elif a.shape[:1] == (H,) or (a.ndim == 2 and a.shape[0] == H):
                msg += " Stack the three gates' blocks along the first axis (np.concatenate([...], axis=0))."
            raise GradingFailure(msg)
        if not np.all(np.isfinite(a)):
            raise GradingFailure(f"{fn_name}: {k} contains NaN or inf ({where}).")
        out[k] = a.astype(np.float64)
    return out


def _run_torch_gru(sd: dict, x: np.ndarray, h0: np.ndarray):
    import torch  # noqa: PLC0415 - torch is only needed by this checker

    D = sd["weight_ih_l0"].shape[1]
    H = sd["weight_hh_l0"].shape[1]
    with _quiet(), torch.no_grad():
        gru = torch.nn.GRU(D, H, dtype=torch.float64)
        gru.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()})
        out, h_n = gru(torch.from_numpy(x), torch.from_numpy(h0)[None])
    return out.numpy(), h_n[0].numpy()


def _block_report(sd: dict, params: dict, H: int) -> list[str]:
    """What the learner's rows hold, block by block, when it is recognisable: the diagnosis."""
    src = {g: (_f64(params["W_" + g]), _f64(params["U_" + g]), _f64(params["b_" + g]).reshape(-1)) for g in "zrh"}
    names = {"z": "z", "r": "r", "h": "the candidate (h~)"}
    W, U = sd["weight_ih_l0"], sd["weight_hh_l0"]
    b_ih, b_hh = sd["bias_ih_l0"], sd["bias_hh_l0"]
    b_sum = b_ih + b_hh

    def close(a, b):
        return a.shape == b.shape and np.allclose(a, b, rtol=1e-6, atol=1e-9)

    holds = {}                                   # torch block k -> (source gate, sign of the weights)
    one_minus, transposed = [], []
    for k in range(3):
        rows = slice(k * H, (k + 1) * H)
        for g, (Wg, Ug, _) in src.items():
            for s in (1.0, -1.0):
                if close(W[rows], s * Wg) and close(U[rows], s * Ug):
                    holds[k] = (g, s)
                elif H > 1 and close(W[rows], s * Wg.T) and close(U[rows], s * Ug.T):
                    transposed.append(k)
            if close(W[rows], 1.0 - Wg) and close(U[rows], 1.0 - Ug):
                one_minus.append(k)
    found = []
    if transposed:
        found.append(f"rows {_SLICES[transposed[0]]} hold transposed matrices (W.T, U.T). The source's W (H, D) "
                     f"and U (H, H) already have torch's layout: W multiplies a column x as W x, which is what "
                     f"torch computes for rows as x @ W.T. Stack them as they are, without .T.")
        return found
    if one_minus:
        found.append(f"rows {_SLICES[one_minus[0]]} hold 1 - W and 1 - U. The identity that turns z into 1 - z is "
                     f"1 - sigmoid(a) = sigmoid(-a): negate z's weights and bias, -W_z, -U_z, -b_z; subtracting "
                     f"the weights from 1 is not the same.")
        return found
    if len(holds) < 3:
        return found
    gates = "".join(holds[k][0] for k in range(3))
    if sorted(gates) != sorted("zrh"):
        return found
    if gates != "rzh":
        listed = ", ".join(f"{_SLICES[k]} holds {names[holds[k][0]]}" for k in range(3))
        found.append(f"the gate blocks in the wrong order: {listed}. torch.nn.GRU's order is r, z, n: rows [0:H] "
                     f"the reset gate, [H:2H] the update gate, [2H:3H] the candidate (Keras and many notes list z "
                     f"first).")
    k_of = {holds[k][0]: k for k in range(3)}
    kz = k_of["z"]
    sl = {g: slice(k * H, (k + 1) * H) for g, k in k_of.items()}
    if holds[kz][1] > 0:
        found.append("your state_dict makes torch.nn.GRU compute a GRU with z's role flipped: h' = z*n + (1-z)*h "
                     "in torch's sign. The z rows are copied, not negated. torch keeps the old state in "
                     "proportion z (h' = (1 - z)*n + z*h); the source keeps it in proportion 1 - z_source. Since "
                     "1 - sigmoid(a) = sigmoid(-a), torch's z rows must be -W_z, -U_z and bias -b_z.")
    elif not close(b_sum[sl["z"]], -src["z"][2]):
        if close(b_sum[sl["z"]], src["z"][2]):
            found.append("z's weights are negated but its bias is not: 1 - sigmoid(a) = sigmoid(-a) needs the "
                         "whole pre-activation negated, so the z slice of bias_ih + bias_hh must be -b_z.")
        else:
            found.append("the z slice of bias_ih + bias_hh is not -b_z (torch adds the two biases).")
    for g in ("r", "h"):
        if holds[k_of[g]][1] < 0:
            found.append(f"the rows of {names[g]} are negated too; only z changes sign, r and the candidate "
                         f"are copied as they are.")
    if not close(b_sum[sl["r"]], src["r"][2]):
        found.append("the r slice of bias_ih + bias_hh is not b_r (torch adds the two biases).")
    bh_in, bh_hh = b_ih[sl["h"]], b_hh[sl["h"]]
    if close(bh_hh, src["h"][2]) and close(bh_in, 0 * bh_in):
        found.append("b_h sits in bias_hh's candidate slice, where the reset gate multiplies it: torch computes "
                     "n = tanh(W_in x + b_in + r * (W_hn h + b_hn)). The source adds b_h outside r, so it belongs "
                     "in bias_ih[2H:3H], with bias_hh[2H:3H] = 0. For r and z only the sum of the two biases "
                     "matters; for the candidate b_hn is NOT redundant.")
    elif close(bh_in + bh_hh, src["h"][2]) and not close(bh_hh, 0 * bh_hh):
        found.append("b_h is split between bias_ih and bias_hh. For r and z only the sum matters, but the "
                     "candidate's b_hn (bias_hh[2H:3H]) is multiplied by r: b_h must go entirely into "
                     "bias_ih[2H:3H], with bias_hh[2H:3H] = 0.")
    elif close(bh_in + bh_hh, 0 * bh_in) and not close(src["h"][2], 0 * bh_in):
        found.append("the candidate's bias b_h is missing: put it in bias_ih[2H:3H] (and 0 in bias_hh[2H:3H]).")
    elif not close(bh_in, src["h"][2]) or not close(bh_hh, 0 * bh_hh):
        found.append("the candidate's biases are not (bias_ih[2H:3H], bias_hh[2H:3H]) = (b_h, 0).")
    return found


def check_torch_state_dict(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                           edge_sizes: bool = False, saturate: bool = False,
                           dtypes: Sequence[str] = ("float64",), name: str = "to_torch_state_dict") -> None:
    """Check ``fn(params) -> state_dict`` for the source GRU of :func:`source_forward`.

    The state_dict (numpy arrays or torch tensors) is loaded, strictly, into ``torch.nn.GRU(D, H)`` in
    float64; its output and final state on a random sequence (with a random h0) must match the source
    model's within the tolerance of the source's dtype. Any correct placement of the biases passes.
    """
    __tracebackhide__ = True
    cases = conversion_cases(seed, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes, saturate=saturate,
                             dtypes=dtypes)
    for n, case in enumerate(cases, 1):
        D, H = case.sizes["D"], case.sizes["H"]
        where = f"case {n} of {len(cases)} ({case.label})"
        shapes = ", ".join(f"{k} {fmt_shape(v.shape)}" for k, v in case.params.items())
        result = call_student(fn, [case.params], fn_name=name, case=where, forbid=FORBID_CONVERSION,
                              hint=f"It was called with a dict: {shapes} (D={D}, H={H}).")
        sd = _validate_state_dict(result, name, D, H, where)
        try:
            got_out, got_h = _run_torch_gru(sd, case.x, case.h0)
        except Exception as exc:  # noqa: BLE001 - reported with torch's own words
            raise GradingFailure(f"{name}: torch.nn.GRU could not load your state_dict ({where}): "
                                 f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}") from exc
        e_out, e_h = source_forward(case.params, case.x, case.h0)
        rtol, atol = tolerance(case.dtype)
        msgs = [m for m in (compare("out", got_out, e_out, rtol=rtol, atol=atol, dims="(T, B, H)"),
                            compare("h_n", got_h, e_h, rtol=rtol, atol=atol, dims="(B, H)")) if m]
        if not msgs:
            continue
        text = (f"{name}: torch.nn.GRU loaded with your state_dict does not reproduce the source GRU, {where}:\n  "
                + "\n  ".join(msgs))
        diagnosis = _block_report(sd, case.params, H)
        if diagnosis:
            text += "\nDiagnosis: " + diagnosis[0] + "".join(f"\n  Also: {d}" for d in diagnosis[1:])
        else:
            text += ("\nHint: torch's rows are r, z, n. Copy W_r, U_r, b_r into the r rows; put -W_z, -U_z, -b_z "
                     "into the z rows (1 - sigmoid(a) = sigmoid(-a)); W_h, U_h into the n rows, with b_h in "
                     "bias_ih[2H:3H] and 0 in bias_hh[2H:3H].")
        raise GradingFailure(text)
    kinds = sorted({c.dtype.name for c in cases})
    more = (" The hidden tests add random sizes, T = B = D = H = 1, saturated gates and float32 sources."
            if fixed else "")
    print(f"{name}: torch.nn.GRU reproduces the source GRU on all {len(cases)} cases ({', '.join(kinds)}).{more}")
