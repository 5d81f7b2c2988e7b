"""Checkers for exercise 6 (LSTM variants): the peephole LSTM cell and the CIFG cell.

The learner's API (explicit arrays, PyTorch's layout, the parameters of :mod:`gated_lib.variants`)::

    peephole_lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh,
                               weight_ci, weight_cf, weight_co) -> (h, c)
        gates i, f, g, o: weight_ih (4H, D), weight_hh (4H, H), bias_ih, bias_hh (4H,);
        peephole diagonals weight_ci, weight_cf, weight_co (H,): i and f see c_prev, o sees the new c.

    cifg_lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh) -> (h, c)
        gates i, g, o: weight_ih (3H, D), weight_hh (3H, H), bias_ih, bias_hh (3H,);
        c = (1 - i) * c_prev + i * g (the forget gate is 1 - i), h = o * tanh(c).

    x (B, D); h_prev, c_prev, h, c (B, H). Outputs keep x's dtype.

Checkers:

* :func:`check_peephole_cell_forward`, :func:`check_cifg_cell_forward`: run the learner's function on
  generated cases (:func:`variant_cases`) and compare with :mod:`gated_lib.variants` (computed in
  float64). On a mismatch they rerun the case through a family of deliberately *mutated* cells
  (:func:`variant_cell`; :data:`PEEPHOLE_BUGS`, :data:`CIFG_BUGS`, every other gate order, transposed
  weights ...) and name the mutation the learner's output matches.

Visible tests call a checker with its defaults (three fixed cases); hidden tests pass a seed and
switch on random sizes, the edge sizes B = H = 1, saturated gates, and float32 and float64.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from gated_lib import variants as _ref
from gated_lib.grading.core import (
    Forbidden,
    GradingFailure,
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

__all__ = [
    "check_peephole_cell_forward",
    "check_cifg_cell_forward",
    "variant_cases",
    "variant_cell",
    "PEEPHOLE_BUGS",
    "CIFG_BUGS",
    "COMMON_BUGS",
    "FORBID",
]

#: While a learner's cell runs, all of gated_lib is off limits (gated_lib.variants, gated_lib.lstm,
#: the torch path, these checkers) except the stable sigmoid; so are torch's LSTMs.
FORBID = Forbidden(allow=("gated_lib.activations", "gated_lib.errors"), torch=("lstm",))

ORDERS = {"peephole": "ifgo", "cifg": "igo"}
_SLICE_NAMES = ("[0:H]", "[H:2H]", "[2H:3H]", "[3H:4H]")

#: Mutations both cells can have, each with the sentence that explains it.
COMMON_BUGS: dict[str, str] = {
    "no_tanh_c": "h = o * c: the tanh on the cell state before the output gate is missing (h = o * tanh(c)).",
    "tanh_c_prev": "h = o * tanh(c_prev): h must use the *new* cell state c.",
    "sigmoid_g": "a sigmoid on the candidate g; the candidate uses tanh (it must be able to be negative).",
    "tanh_gates": "tanh on the gates; gates use the sigmoid, so that they lie between 0 and 1.",
    "no_bias": "a cell without bias: add bias_ih + bias_hh to the pre-activations.",
    "only_bias_ih": "a cell that adds bias_ih but not bias_hh; PyTorch's layout has two biases and uses their sum.",
    "only_bias_hh": "a cell that adds bias_hh but not bias_ih; PyTorch's layout has two biases and uses their sum.",
    "hh_blocks_T": ("each gate's (H, H) block of weight_hh multiplied without transposing it. Rows are examples, "
                    "so the product is h_prev @ W.T (one fused product: h_prev @ weight_hh.T); the mistake "
                    "raises no error because the blocks are square."),
    "ih_blocks_T": ("each gate's block of weight_ih multiplied without transposing it (x @ W instead of x @ W.T); "
                    "it raises no error only because D = H in this case."),
    "reshape": ("weights reshaped instead of transposed: weight_ih.reshape(D, GH) is not weight_ih.T (reshape "
                "keeps the memory order). Use x @ weight_ih.T and h_prev @ weight_hh.T."),
    "c_for_h": "c_prev used where h_prev belongs: the gates read h_prev (h_prev @ weight_hh.T).",
}

#: Mutations of the peephole cell.
PEEPHOLE_BUGS: dict[str, str] = {
    "o_peeks_c_prev": ("the output gate peeks at c_prev (w_co * c_prev). In Gers & Schmidhuber's peephole LSTM "
                       "the output gate looks at the *new* cell state: compute c first, then "
                       "o = sigmoid(a_o + w_co * c)."),
    "peep_if_swapped": ("peepholes on the wrong gates: weight_ci added to the forget gate and weight_cf to the "
                        "input gate. weight_ci belongs to i, weight_cf to f, weight_co to o."),
    "peep_o_on_g": ("peepholes on the wrong gates: weight_co * c_prev added to the candidate g instead of "
                    "weight_co * c to the output gate o. The candidate has no peephole."),
    "no_peep_o": "the output gate's peephole is missing: o = sigmoid(a_o + w_co * c).",
    "no_peep_if": "the peepholes of i and f are missing: i = sigmoid(a_i + w_ci * c_prev), f = sigmoid(a_f + w_cf * c_prev).",
    "no_peepholes": "no peepholes at all: that is the ordinary LSTM; add w_ci * c_prev, w_cf * c_prev and w_co * c.",
    "peep_h": ("the peepholes multiply h_prev instead of the cell state: i and f peek at c_prev, o at the "
               "new c (peepholes look into the cell)."),
    "no_forget": "c = c_prev + i * g: the forget gate is missing (c = f * c_prev + i * g).",
}

#: Mutations of the coupled input-forget (CIFG) cell.
CIFG_BUGS: dict[str, str] = {
    "coupled_same": ("c = i * c_prev + i * g: the forget share equals the input gate (f = i). The coupling is "
                     "f = 1 - i: c = (1 - i) * c_prev + i * g."),
    "coupled_reversed": ("c = i * c_prev + (1 - i) * g: the coupling is reversed. The gate in rows [0:H] is the "
                         "*input* gate, so new content enters in proportion i and the old stays in proportion "
                         "1 - i: c = (1 - i) * c_prev + i * g."),
    "no_forget": ("c = c_prev + i * g: that is the 1997 cell without a forget gate. CIFG forgets with the "
                  "coupled gate f = 1 - i: c = (1 - i) * c_prev + i * g."),
    "no_input": "c = (1 - i) * c_prev + g: the input gate is missing on the candidate.",
}

_GROUPS = [
    {"no_tanh_c", "tanh_c_prev"},
    {"no_bias", "only_bias_ih", "only_bias_hh"},
    {"hh_blocks_T", "ih_blocks_T", "reshape"},
    {"o_peeks_c_prev", "peep_o_on_g", "no_peep_o", "no_peepholes", "peep_h"},
    {"peep_if_swapped", "no_peep_if", "no_peepholes", "peep_h"},
    {"coupled_same", "coupled_reversed", "no_forget", "no_input"},
]


def _bugs_of(kind: str) -> dict[str, str]:
    return {**COMMON_BUGS, **(PEEPHOLE_BUGS if kind == "peephole" else CIFG_BUGS)}


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))          # exact identity, no overflow


def variant_cell(kind: str, x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh,
                 weight_ci=None, weight_cf=None, weight_co=None, order: str | None = None,
                 bugs: Iterable[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """One peephole (``kind="peephole"``) or CIFG (``kind="cifg"``) step in float64.

    An independent, per-gate implementation (no code shared with gated_lib.variants), correct when
    `order` is the kind's gate order and `bugs` is empty; with mutations it computes what a learner's
    buggy cell would. `order` names the gate a learner reads from each block of rows; `bugs` are keys
    of :data:`COMMON_BUGS` and of :data:`PEEPHOLE_BUGS` or :data:`CIFG_BUGS`.
    """
    bugs = frozenset(bugs)
    order = order or ORDERS[kind]
    x, h, c = (np.asarray(v, np.float64) for v in (x, h_prev, c_prev))
    W_ih, W_hh = np.asarray(weight_ih, np.float64), np.asarray(weight_hh, np.float64)
    b_ih, b_hh = np.asarray(bias_ih, np.float64), np.asarray(bias_hh, np.float64)
    D, H = x.shape[1], h.shape[1]
    G = len(order)
    h_in = c if "c_for_h" in bugs else h
    if "no_bias" in bugs:
        b = np.zeros(G * H)
    elif "only_bias_ih" in bugs:
        b = b_ih
    elif "only_bias_hh" in bugs:
        b = b_hh
    else:
        b = b_ih + b_hh
    pre = {}
    if "reshape" in bugs:
        a_all = x @ W_ih.reshape(D, G * H) + h_in @ W_hh.reshape(H, G * H) + b
    for k, gate in enumerate(order):
        rows = slice(k * H, (k + 1) * H)
        if "reshape" in bugs:
            pre[gate] = a_all[:, rows]
            continue
        Wx = W_ih[rows].T if "ih_blocks_T" in bugs else W_ih[rows]
        Wh = W_hh[rows].T if "hh_blocks_T" in bugs else W_hh[rows]
        pre[gate] = x @ Wx.T + h_in @ Wh.T + b[rows]
    gate_fn = np.tanh if "tanh_gates" in bugs else _sigmoid
    cand_fn = _sigmoid if "sigmoid_g" in bugs else np.tanh
    if kind == "peephole":
        w_ci, w_cf, w_co = (np.asarray(w, np.float64) for w in (weight_ci, weight_cf, weight_co))
        peek = h if "peep_h" in bugs else c
        if "no_peepholes" in bugs or "no_peep_if" in bugs:
            a_i, a_f = pre["i"], pre["f"]
        elif "peep_if_swapped" in bugs:
            a_i, a_f = pre["i"] + w_cf * peek, pre["f"] + w_ci * peek
        else:
            a_i, a_f = pre["i"] + w_ci * peek, pre["f"] + w_cf * peek
        i, f = gate_fn(a_i), gate_fn(a_f)
        g = cand_fn(pre["g"] + w_co * c) if "peep_o_on_g" in bugs else cand_fn(pre["g"])
        c_new = c + i * g if "no_forget" in bugs else f * c + i * g
        if bugs & {"no_peepholes", "no_peep_o", "peep_o_on_g"}:
            a_o = pre["o"]
        elif "o_peeks_c_prev" in bugs:
            a_o = pre["o"] + w_co * c
        elif "peep_h" in bugs:
            a_o = pre["o"] + w_co * h
        else:
            a_o = pre["o"] + w_co * c_new
        o = gate_fn(a_o)
    else:
        i, o, g = gate_fn(pre["i"]), gate_fn(pre["o"]), cand_fn(pre["g"])
        if "coupled_same" in bugs:
            c_new = i * c + i * g
        elif "coupled_reversed" in bugs:
            c_new = i * c + (1.0 - i) * g
        elif "no_forget" in bugs:
            c_new = c + i * g
        elif "no_input" in bugs:
            c_new = (1.0 - i) * c + g
        else:
            c_new = (1.0 - i) * c + i * g
    if "no_tanh_c" in bugs:
        h_new = o * c_new
    elif "tanh_c_prev" in bugs:
        h_new = o * np.tanh(c)
    else:
        h_new = o * np.tanh(c_new)
    return h_new, c_new


@dataclass(frozen=True)
class _Variant:
    kind: str
    order: str
    bugs: tuple[str, ...] = ()
    swap: bool = False                  # the learner returned (c, h)

    @property
    def size(self) -> int:
        return len(self.bugs) + (self.order != ORDERS[self.kind]) + self.swap

    def describe(self) -> list[str]:
        out = []
        right = ORDERS[self.kind]
        if self.order != right:
            blocks = ", ".join(f"{_SLICE_NAMES[k]} to {gate}" for k, gate in enumerate(right))
            out.append(f"the gate blocks read in the order {', '.join(self.order)} instead of "
                       f"{', '.join(right)}. In this exercise, as in gated_lib.variants and PyTorch, the rows of "
                       f"weight_ih, weight_hh and the biases belong, block by block, {blocks}.")
        bugs = _bugs_of(self.kind)
        out += [bugs[b] for b in self.bugs]
        if self.swap:
            out.append("the two results returned in the order (c, h); return (h, c).")
        return out


def _variants(kind: str, D: int, H: int) -> list[_Variant]:
    right = ORDERS[kind]
    singles = [b for b in _bugs_of(kind) if transposable(b, D, H)]
    orders = ["".join(p) for p in itertools.permutations(right) if "".join(p) != right]
    out = [_Variant(kind, o) for o in orders]
    out += [_Variant(kind, right, (b,)) for b in singles]
    out += [_Variant(kind, o, (b,)) for o in orders for b in singles]
    out += [_Variant(kind, right, bb) for bb in itertools.combinations(singles, 2) if exclusive(bb, _GROUPS)]
    out += [_Variant(kind, v.order, v.bugs, swap=True) for v in list(out) + [_Variant(kind, right)]]
    return sorted(out, key=lambda v: v.size)


# --------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One set of inputs. `arrays` are in the case's dtype; `label` is what a learner reads."""

    label: str
    dtype: np.dtype
    arrays: dict[str, np.ndarray]
    sizes: dict[str, int] = field(default_factory=dict)


_FIXED = [dict(B=2, D=3, H=4), dict(B=3, D=5, H=5), dict(B=4, D=6, H=3)]
_EDGE = [dict(B=1, D=1, H=1), dict(B=1, D=3, H=1), dict(B=2, D=1, H=3), dict(B=1, D=2, H=2)]


def variant_cases(kind: str, seed: int = 0, *, fixed: bool = True, n_random: int = 0, edge_sizes: bool = False,
                  saturate: bool = False, dtypes: Sequence[str] = ("float64", "float32")) -> list[Case]:
    """Inputs x (B, D), h_prev, c_prev (B, H) and the parameters of a peephole or CIFG cell.

    fixed:      three well-conditioned cases (the first dtype gets two, the second one); one has D = H
                so that transposed input blocks can be diagnosed.
    n_random:   random sizes per dtype (B 1..5, D 1..9, H 1..9).
    edge_sizes: B = 1, H = 1, D = 1 per dtype.
    saturate:   two cases per dtype with gate pre-activations beyond +-700.
    """
    if kind not in ORDERS:
        raise ValueError(f"kind: expected 'peephole' or 'cifg', got {kind!r}")
    rng = np.random.default_rng(seed)
    dtypes = [np.dtype(d) for d in dtypes]
    specs = case_specs(rng, dtypes, fixed=_FIXED if fixed else (), n_random=n_random,
                       random_size=lambda r: dict(B=int(r.integers(1, 6)), D=int(r.integers(1, 10)),
                                                  H=int(r.integers(1, 10))),
                       edge=_EDGE if edge_sizes else (),
                       saturated=[dict(B=3, D=4, H=5), dict(B=2, D=3, H=3)] if saturate else ())
    G = len(ORDERS[kind])
    cases = []
    for sz, dt, sat in specs:
        B, D, H = sz["B"], sz["D"], sz["H"]
        arrays = dict(random_gate_params(rng, D, H, G, dt, sat))
        if kind == "peephole":
            for name in ("weight_ci", "weight_cf", "weight_co"):
                arrays[name] = rng.normal(0.0, 1.0, H).astype(dt)
        arrays["x"] = rng.normal(0.0, 1.0, (B, D)).astype(dt)
        arrays["h_prev"] = rng.uniform(-0.9, 0.9, (B, H)).astype(dt)
        arrays["c_prev"] = rng.normal(0.0, 1.5, (B, H)).astype(dt)
        cases.append(Case(case_label(dt, sat, **sz), dt, arrays, dict(sz)))
    return cases


def _f64(a):
    return np.asarray(a, np.float64)


_PARAM_NAMES = {"peephole": ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_ci", "weight_cf", "weight_co"),
                "cifg": ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


def _args(kind: str) -> tuple[str, ...]:
    return ("x", "h_prev", "c_prev") + _PARAM_NAMES[kind]


def _dims(kind: str) -> dict[str, str]:
    G = "4H" if kind == "peephole" else "3H"
    return {"x": "(B, D)", "h_prev": "(B, H)", "c_prev": "(B, H)", "weight_ih": f"({G}, D)",
            "weight_hh": f"({G}, H)", "bias_ih": f"({G},)", "bias_hh": f"({G},)", "weight_ci": "(H,)",
            "weight_cf": "(H,)", "weight_co": "(H,)"}


_SHAPE_HINTS = {
    "peephole": ("Shapes: the fused pre-activation a = x @ weight_ih.T + h_prev @ weight_hh.T + bias_ih + bias_hh "
                 "has shape (B, 4H); its column blocks [0:H], [H:2H], [2H:3H], [3H:4H] are i, f, g, o. The peephole "
                 "weights are vectors (H,) that multiply the cell state entry by entry."),
    "cifg": ("Shapes: the fused pre-activation a = x @ weight_ih.T + h_prev @ weight_hh.T + bias_ih + bias_hh has "
             "shape (B, 3H); its column blocks [0:H], [H:2H], [2H:3H] are i, g, o (there is no forget block)."),
}


def _reference(kind: str, arr: dict) -> tuple[np.ndarray, np.ndarray]:
    params = {k: _f64(arr[k]) for k in _PARAM_NAMES[kind]}
    fwd = _ref.peephole_lstm_cell_forward if kind == "peephole" else _ref.cifg_lstm_cell_forward
    (h, c), _ = fwd(_f64(arr["x"]), _f64(arr["h_prev"]), _f64(arr["c_prev"]), params)
    return h, c


def _unpack_pair(result, fn_name: str, case: str):
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], tuple):
        raise GradingFailure(f"{fn_name} returned a pair whose first item is itself a tuple, like gated_lib's "
                             f"((h, c), cache). Return just (h, c).")
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        what = f"a {type(result).__name__}" + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
        raise GradingFailure(f"{fn_name} should return a pair (h, c), but it returned {what} on {case}.")
    return result


def _diagnose(kind: str, arr: dict, got_h, got_c, rtol: float, atol: float) -> list[str]:
    """Descriptions of the smallest mutations whose output the learner's (h, c) matches."""
    D, H = arr["x"].shape[1], arr["h_prev"].shape[1]
    args = [arr[n] for n in _args(kind)]
    rtol, atol = max(rtol, 1e-6), max(atol, 1e-8)
    found, best = [], None
    with np.errstate(all="ignore"):
        for v in _variants(kind, D, H):
            if best is not None and v.size > best:
                break
            h, c = variant_cell(kind, *args, order=v.order, bugs=v.bugs)
            if v.swap:
                h, c = c, h
            if matches(got_h, h, rtol, atol) and matches(got_c, c, rtol, atol):
                found.append(v)
                best = v.size
    return [_bullets(v.describe()) for v in found[:3]]


def _bullets(sentences: list[str]) -> str:
    if len(sentences) == 1:
        return sentences[0]
    return "two mistakes:" + "".join(f"\n    - {s}" for s in sentences)


def _partial_hint(kind: str, h_ok: bool, c_ok: bool) -> str:
    if kind == "peephole":
        if c_ok and not h_ok:
            return ("c is right, so i, f, g and the cell update are right; look at the output gate: "
                    "o = sigmoid(a[:, 3H:] + w_co * c) with the *new* c, and h = o * tanh(c).")
        if h_ok and not c_ok:
            return "h is right but c is not: do you return the new cell state c = f * c_prev + i * g?"
        return ("Both h and c are off: start with a (B, 4H), then i = sigmoid(a[:, :H] + w_ci * c_prev), "
                "f = sigmoid(a[:, H:2H] + w_cf * c_prev), g = tanh(a[:, 2H:3H]), c = f * c_prev + i * g, "
                "o = sigmoid(a[:, 3H:] + w_co * c).")
    if c_ok and not h_ok:
        return "c is right; look at the output gate o (rows [2H:3H]) and at h = o * tanh(c)."
    if h_ok and not c_ok:
        return "h is right but c is not: do you return the new cell state c = (1 - i) * c_prev + i * g?"
    return ("Both h and c are off: start with a (B, 3H), then i = sigmoid(a[:, :H]), g = tanh(a[:, H:2H]), "
            "o = sigmoid(a[:, 2H:]), c = (1 - i) * c_prev + i * g.")


def _check(kind: str, fn: Callable, name: str, *, seed, fixed, n_random, edge_sizes, saturate, dtypes) -> None:
    __tracebackhide__ = True
    cases = variant_cases(kind, seed, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes,
                          saturate=saturate, dtypes=dtypes)
    dims = _dims(kind)
    for n, case in enumerate(cases, 1):
        arr = case.arrays
        where = f"case {n} of {len(cases)} ({case.label})"
        shapes = ", ".join(f"{k} {dims[k]} = {fmt_shape(arr[k].shape)}" for k in _args(kind))
        hint = f"It was called with {shapes}.\n{_SHAPE_HINTS[kind]}"
        result = call_student(fn, [arr[k] for k in _args(kind)], fn_name=name, case=where, forbid=FORBID, hint=hint)
        got_h, got_c = _unpack_pair(result, name, where)
        h, c = _reference(kind, arr)
        rtol, atol = tolerance(case.dtype)
        msgs = [m for m in (compare("h", got_h, h, rtol=rtol, atol=atol, dims="(B, H)", dtype=case.dtype),
                            compare("c", got_c, c, rtol=rtol, atol=atol, dims="(B, H)", dtype=case.dtype)) if m]
        if not msgs:
            continue
        text = f"{name} is not right yet, {where}:\n  " + "\n  ".join(msgs)
        if any("entries are off" in m for m in msgs):
            cell = "peephole LSTM cell" if kind == "peephole" else "CIFG cell"
            diagnosis = _diagnose(kind, arr, got_h, got_c, rtol, atol)
            if diagnosis:
                text += (f"\nDiagnosis: your output matches a {cell} with " + diagnosis[0]
                         + "".join(f"\n  It matches equally a cell with {d}" for d in diagnosis[1:]))
            else:
                text += "\nHint: " + _partial_hint(kind, matches(got_h, h, rtol, atol), matches(got_c, c, rtol, atol))
        raise GradingFailure(text)
    kinds = sorted({c.dtype.name for c in cases})
    more = (" The hidden tests add random sizes, B = H = 1, saturated gates, float32 and float64."
            if fixed else "")
    print(f"{name}: all {len(cases)} cases pass ({', '.join(kinds)}).{more}")


def check_peephole_cell_forward(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                                edge_sizes: bool = False, saturate: bool = False,
                                dtypes: Sequence[str] = ("float64", "float32"),
                                name: str = "peephole_lstm_cell_forward") -> None:
    """Check ``fn(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh, weight_ci, weight_cf, weight_co)``.

    It must return (h, c), each (B, H) with the inputs' dtype, matching
    :func:`gated_lib.variants.peephole_lstm_cell_forward` within the dtype's tolerance; the cases are
    :func:`variant_cases` (same keywords). It may not call gated_lib (except the sigmoid) or torch's
    LSTM, nor change its inputs.
    """
    __tracebackhide__ = True
    _check("peephole", fn, name, seed=seed, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes,
           saturate=saturate, dtypes=dtypes)


def check_cifg_cell_forward(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                            edge_sizes: bool = False, saturate: bool = False,
                            dtypes: Sequence[str] = ("float64", "float32"),
                            name: str = "cifg_lstm_cell_forward") -> None:
    """Check ``fn(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh) -> (h, c)`` (gates i, g, o).

    As :func:`check_peephole_cell_forward`, against :func:`gated_lib.variants.cifg_lstm_cell_forward`.
    """
    __tracebackhide__ = True
    _check("cifg", fn, name, seed=seed, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes,
           saturate=saturate, dtypes=dtypes)
