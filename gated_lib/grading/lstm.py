"""Checkers for exercise 2 (the LSTM forward pass) and every later exercise that needs an LSTM.

The learner's API (explicit arrays, PyTorch's layout and gate order i, f, g, o)::

    lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh) -> (h, c)
    lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None, c0=None) -> (out, (h_n, c_n))

    x (B, D) or (T, B, D); h_prev, c_prev, h0, c0, h, c, h_n, c_n (B, H); out (T, B, H);
    weight_ih (4H, D), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,). Outputs keep x's dtype.

Checkers:

* :func:`check_lstm_cell_forward`, :func:`check_lstm_forward`: run the learner's function on
  generated cases and compare with :mod:`gated_lib.lstm` (computed in float64). On a mismatch they
  rerun the case through a family of deliberately *mutated* LSTMs (gates sliced in another order,
  a missing tanh, sigmoid on the candidate, no bias or one of the two biases, transposed or reshaped
  weights, h_prev and c_prev exchanged, the 1997 cell without forget gate, ...; for sequences also
  a state that is not carried, an output shifted by one step, an aliased output ...) and name the
  mutation the learner's output matches.
* :func:`check_keep_memory`, :func:`check_rnn_regime`: the gate-regime constructions (parameters
  that make the cell keep c exactly; parameters that turn the cell into "almost a vanilla RNN").

Visible tests call a checker with its defaults (a few fixed cases); hidden tests pass a seed and
switch on random sizes, the edge sizes B = H = T = 1, saturated gates, and float32 and float64.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from gated_lib import lstm as _ref
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
    "check_lstm_cell_forward",
    "check_lstm_forward",
    "check_keep_memory",
    "check_rnn_regime",
    "lstm_cases",
    "cell_variant",
    "CELL_BUGS",
    "SEQUENCE_BUGS",
]

GATE_ORDER = "ifgo"
_SLICES = ("[0:H]", "[H:2H]", "[2H:3H]", "[3H:4H]")
#: While a learner's LSTM runs, all of gated_lib is off limits (its LSTM, the sequence machinery, the
#: torch path, these checkers) except the helpers a notebook hands out; so are torch's LSTMs.
FORBID = Forbidden(allow=("gated_lib.activations", "gated_lib.errors", "split_gates", "init_lstm_params"),
                   torch=("lstm",))

# --------------------------------------------------------------------------------------------------
# The mutated cells
# --------------------------------------------------------------------------------------------------

#: Cell mutations, each with the sentence that explains it. Mutations in one group exclude each other.
CELL_BUGS: dict[str, str] = {
    "no_tanh_c": "h = o * c: the tanh on the cell state is missing (h = o * tanh(c)).",
    "tanh_c_prev": "h = o * tanh(c_prev): h must use the *new* cell state c.",
    "no_output_gate": "h = tanh(c): the output gate is missing (h = o * tanh(c)).",
    "sigmoid_g": "a sigmoid on the candidate g; the candidate uses tanh (it must be able to be negative).",
    "tanh_gates": "tanh on the gates i, f, o; gates use the sigmoid, so that they lie between 0 and 1.",
    "neg_sigmoid": "a sigmoid computed as 1 / (1 + exp(+a)); the sigmoid is 1 / (1 + exp(-a)).",
    "no_bias": "a cell without bias: add bias_ih + bias_hh to the pre-activations.",
    "only_bias_ih": "a cell that adds bias_ih but not bias_hh; PyTorch's layout has two biases and uses their sum.",
    "only_bias_hh": "a cell that adds bias_hh but not bias_ih; PyTorch's layout has two biases and uses their sum.",
    "hh_blocks_T": ("each gate's (H, H) block of weight_hh multiplied without transposing it. Rows are examples, "
                    "so the product is h_prev @ W.T (one fused product: h_prev @ weight_hh.T); the mistake "
                    "raises no error because the blocks are square."),
    "ih_blocks_T": ("each gate's block of weight_ih multiplied without transposing it (x @ W instead of x @ W.T); "
                    "it raises no error only because D = H in this case."),
    "reshape": ("weights reshaped instead of transposed: weight_ih.reshape(D, 4H) is not weight_ih.T (reshape "
                "keeps the memory order). Use x @ weight_ih.T and h_prev @ weight_hh.T."),
    "h_for_c": "h_prev used where c_prev belongs: c = f * c_prev + i * g.",
    "c_for_h": "c_prev used where h_prev belongs: the gates read h_prev (h_prev @ weight_hh.T).",
    "no_forget": ("c = c_prev + i * g: that is the 1997 LSTM, without a forget gate. The modern cell "
                  "multiplies the old state by the forget gate: c = f * c_prev + i * g."),
    "no_input": "c = f * c_prev + g: the input gate is missing (c = f * c_prev + i * g).",
    "coupled": "c = f * c_prev + (1 - f) * g (coupled gates); use the input gate: c = f * c_prev + i * g.",
}
_GROUPS = [
    {"no_tanh_c", "tanh_c_prev", "no_output_gate"},
    {"no_bias", "only_bias_ih", "only_bias_hh"},
    {"hh_blocks_T", "ih_blocks_T", "reshape"},
    {"no_forget", "no_input", "coupled"},
    {"h_for_c", "no_forget"},
    {"tanh_gates", "neg_sigmoid"},
]
_KNOWN_ORDERS = {"igfo": "TensorFlow 1's BasicLSTMCell order", "iofg": "ONNX's order"}

#: Sequence-level mutations of lstm_forward (with a correct cell).
SEQUENCE_BUGS: dict[str, str] = {
    "shifted": ("out is shifted by one step: out[t] must be the state *after* reading x[t] (h_1 ... h_T), "
                "not the one before it (h_0 ... h_{T-1})."),
    "no_carry": ("the state is not carried: every step starts again from (h0, c0). Feed each step's "
                 "(h, c) into the next step."),
    "no_carry_h": "h is not carried from step to step (every step reads h0); c is.",
    "no_carry_c": "c is not carried from step to step (every step reads c0); h is.",
    "ignore_init": "h0 and c0 are ignored (zeros are used even when they are given). Use zeros only when h0/c0 is None.",
    "swap_init": "h0 and c0 exchanged: h0 is the initial hidden state, c0 the initial cell state.",
    "out_is_c": "out holds the cell states c_t; it must hold the hidden states h_t (as torch.nn.LSTM's output does).",
    "aliased": ("every out[t] equals the last state: you store an array that you later overwrite in place "
                "(e.g. h[:] = ... or out.append(h) of a buffer). Store each step's h in out[t] = h."),
    "reversed": "the sequence is read backwards (x[T-1] first); time runs along axis 0, from x[0] to x[T-1].",
    "final_first": "h_n, c_n are the states after the *first* step; they must be the states after the last one.",
    "swap_final": "the final states are returned as (c_n, h_n); return (out, (h_n, c_n)).",
}


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))          # exact identity, no overflow


def cell_variant(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh,
                 order: str = GATE_ORDER, bugs: Iterable[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """One LSTM step in float64, correct when ``order == "ifgo"`` and `bugs` is empty.

    An independent implementation (per-gate, no shared code with gated_lib.lstm): with mutations
    it produces what a learner's buggy cell would. `order` names, block by block, the gate a
    learner reads from rows [0:H], [H:2H], [2H:3H], [3H:4H]; `bugs` are keys of :data:`CELL_BUGS`.
    """
    bugs = frozenset(bugs)
    x, h, c = (np.asarray(v, np.float64) for v in (x, h_prev, c_prev))
    W_ih, W_hh = np.asarray(weight_ih, np.float64), np.asarray(weight_hh, np.float64)
    b_ih, b_hh = np.asarray(bias_ih, np.float64), np.asarray(bias_hh, np.float64)
    D, H = x.shape[1], h.shape[1]
    h_in = c if "c_for_h" in bugs else h
    if "no_bias" in bugs:
        b = np.zeros(4 * H)
    elif "only_bias_ih" in bugs:
        b = b_ih
    elif "only_bias_hh" in bugs:
        b = b_hh
    else:
        b = b_ih + b_hh
    if "reshape" in bugs:
        a_all = x @ W_ih.reshape(D, 4 * H) + h_in @ W_hh.reshape(H, 4 * H) + b
    pre = {}
    for k, gate in enumerate(order):
        rows = slice(k * H, (k + 1) * H)
        if "reshape" in bugs:
            pre[gate] = a_all[:, rows]
            continue
        Wx = W_ih[rows].T if "ih_blocks_T" in bugs else W_ih[rows]
        Wh = W_hh[rows].T if "hh_blocks_T" in bugs else W_hh[rows]
        pre[gate] = x @ Wx.T + h_in @ Wh.T + b[rows]
    if "neg_sigmoid" in bugs:
        def gate_fn(a): return _sigmoid(-a)
    elif "tanh_gates" in bugs:
        gate_fn = np.tanh
    else:
        gate_fn = _sigmoid
    i, f, o = gate_fn(pre["i"]), gate_fn(pre["f"]), gate_fn(pre["o"])
    g = _sigmoid(pre["g"]) if "sigmoid_g" in bugs else np.tanh(pre["g"])
    old = h if "h_for_c" in bugs else c
    if "no_forget" in bugs:
        c_new = old + i * g
    elif "no_input" in bugs:
        c_new = f * old + g
    elif "coupled" in bugs:
        c_new = f * old + (1.0 - f) * g
    else:
        c_new = f * old + i * g
    if "no_tanh_c" in bugs:
        h_new = o * c_new
    elif "tanh_c_prev" in bugs:
        h_new = o * np.tanh(c)
    elif "no_output_gate" in bugs:
        h_new = np.tanh(c_new)
    else:
        h_new = o * np.tanh(c_new)
    return h_new, c_new


@dataclass(frozen=True)
class _Variant:
    order: str = GATE_ORDER
    bugs: tuple[str, ...] = ()
    swap: bool = False                  # the learner returned (c, h)

    @property
    def size(self) -> int:
        return len(self.bugs) + (self.order != GATE_ORDER) + self.swap

    def describe(self) -> list[str]:
        out = []
        if self.order != GATE_ORDER:
            known = _KNOWN_ORDERS.get(self.order)
            out.append(f"the four gate blocks read in the order {', '.join(self.order)}"
                       f"{' (' + known + ')' if known else ''} instead of i, f, g, o. In this course, as in "
                       f"PyTorch, rows [0:H] of weight_ih, weight_hh and the biases belong to the input gate i, "
                       f"[H:2H] to the forget gate f, [2H:3H] to the candidate g, [3H:4H] to the output gate o.")
        out += [CELL_BUGS[b] for b in self.bugs]
        if self.swap:
            out.append("the two results returned in the order (c, h); return (h, c).")
        return out


def _cell_variants(D: int, H: int, pairs: bool = True) -> list[_Variant]:
    """Every single mutation, every gate order, and (if `pairs`) two-mutation combinations."""
    singles = [b for b in CELL_BUGS if transposable(b, D, H)]
    orders = ["".join(p) for p in itertools.permutations(GATE_ORDER)]
    out = [_Variant(order=o) for o in orders if o != GATE_ORDER]
    out += [_Variant(bugs=(b,)) for b in singles]
    if pairs:
        out += [_Variant(order=o, bugs=(b,)) for o in orders if o != GATE_ORDER for b in singles]
        out += [_Variant(bugs=bb) for bb in itertools.combinations(singles, 2) if exclusive(bb, _GROUPS)]
    out += [_Variant(order=v.order, bugs=v.bugs, swap=True) for v in list(out) + [_Variant()]]
    return sorted(out, key=lambda v: v.size)


# --------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One set of inputs. `arrays` are in the case's dtype; `label` is what a learner reads."""

    label: str
    dtype: np.dtype
    arrays: dict[str, np.ndarray | None]
    sizes: dict[str, int] = field(default_factory=dict)


def _params(rng, D, H, dtype, saturate=False):
    return random_gate_params(rng, D, H, 4, dtype, saturate)


_sizes_label = case_label


_FIXED_CELL = [dict(B=2, D=3, H=4), dict(B=3, D=5, H=5), dict(B=4, D=6, H=3)]
_FIXED_SEQ = [dict(T=5, B=2, D=3, H=4), dict(T=7, B=3, D=4, H=4), dict(T=4, B=2, D=5, H=3)]
_EDGE_CELL = [dict(B=1, D=1, H=1), dict(B=1, D=3, H=1), dict(B=2, D=1, H=3), dict(B=1, D=2, H=2)]
_EDGE_SEQ = [dict(T=1, B=1, D=1, H=1), dict(T=1, B=2, D=3, H=4), dict(T=6, B=1, D=2, H=1), dict(T=3, B=1, D=1, H=3)]


def lstm_cases(seed: int = 0, *, sequence: bool = False, fixed: bool = True, n_random: int = 0,
               edge_sizes: bool = False, saturate: bool = False,
               dtypes: Sequence[str] = ("float64", "float32")) -> list[Case]:
    """Inputs for the cell (x (B, D), h_prev, c_prev) or the sequence (x (T, B, D), h0, c0).

    fixed:      three well-conditioned cases (the visible tests; the first dtype gets two of them,
                the second dtype one); one has D = H so that transposed input blocks can be diagnosed.
    n_random:   random sizes per dtype (B 1..5, D 1..9, H 1..9, T 1..12).
    edge_sizes: B = 1, H = 1, D = 1 and T = 1 per dtype.
    saturate:   two cases per dtype with gate pre-activations beyond +-700.
    Sequence cases alternate between explicit (h0, c0) and None (the default zeros).
    """
    rng = np.random.default_rng(seed)
    dtypes = [np.dtype(d) for d in dtypes]

    def random_size(rng):
        sz = dict(B=int(rng.integers(1, 6)), D=int(rng.integers(1, 10)), H=int(rng.integers(1, 10)))
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
        arrays: dict[str, np.ndarray | None] = dict(_params(rng, D, H, dt, sat))
        if sequence:
            arrays["x"] = rng.normal(0.0, 1.0, (sz["T"], B, D)).astype(dt)
            given = n % 2 == 1
            arrays["h0"] = rng.uniform(-0.9, 0.9, (B, H)).astype(dt) if given else None
            arrays["c0"] = rng.normal(0.0, 1.5, (B, H)).astype(dt) if given else None
        else:
            arrays["x"] = rng.normal(0.0, 1.0, (B, D)).astype(dt)
            arrays["h_prev"] = rng.uniform(-0.9, 0.9, (B, H)).astype(dt)
            arrays["c_prev"] = rng.normal(0.0, 1.5, (B, H)).astype(dt)
        label = _sizes_label(dt, sat, **sz)
        if sequence:
            label += ", h0/c0 given" if arrays["h0"] is not None else ", h0=c0=None"
        cases.append(Case(label=label, dtype=dt, arrays=arrays, sizes=dict(sz)))
    return cases


def _f64(a):
    return None if a is None else np.asarray(a, np.float64)


def _ref_params(arr) -> dict:
    return {k: _f64(arr[k]) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


def _shapes_text(arr: dict, names: Sequence[str], dims: dict[str, str]) -> str:
    return ", ".join(f"{n} {dims[n]} = {fmt_shape(arr[n].shape)}" for n in names if arr.get(n) is not None)


_DIMS = {"x": "(B, D)", "h_prev": "(B, H)", "c_prev": "(B, H)", "weight_ih": "(4H, D)",
         "weight_hh": "(4H, H)", "bias_ih": "(4H,)", "bias_hh": "(4H,)", "h0": "(B, H)", "c0": "(B, H)"}
_SEQ_DIMS = dict(_DIMS, x="(T, B, D)")
_CELL_ARGS = ("x", "h_prev", "c_prev", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
_SEQ_ARGS = ("x", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
_SHAPE_HINT = ("Shapes: the fused pre-activation a = x @ weight_ih.T + h_prev @ weight_hh.T + bias_ih + bias_hh "
               "has shape (B, 4H); its column blocks [0:H], [H:2H], [2H:3H], [3H:4H] are i, f, g, o.")


# --------------------------------------------------------------------------------------------------
# The cell
# --------------------------------------------------------------------------------------------------

def _unpack_pair(result, fn_name: str, first: str, second: str, case: str):
    """The learner's result as a pair (first, second), or a failure that says what came back."""
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], tuple):
        raise GradingFailure(f"{fn_name} returned a pair whose first item is itself a tuple, like gated_lib's "
                             f"((h, c), cache). Return just ({first}, {second}).")
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        what = f"a {type(result).__name__}" + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
        raise GradingFailure(f"{fn_name} should return a pair ({first}, {second}), but it returned {what} on {case}.")
    return result


def _diagnose_cell(arr: dict, got_h, got_c, rtol: float, atol: float) -> list[str]:
    """Descriptions of the smallest mutations whose output the learner's (h, c) matches."""
    D, H = arr["x"].shape[1], arr["h_prev"].shape[1]
    args = [arr[n] for n in _CELL_ARGS]
    rtol, atol = max(rtol, 1e-6), max(atol, 1e-8)
    found, best = [], None
    with np.errstate(all="ignore"):
        for v in _cell_variants(D, H):
            if best is not None and v.size > best:
                break
            h, c = cell_variant(*args, order=v.order, bugs=v.bugs)
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


def _partial_hint(h_ok: bool, c_ok: bool) -> str:
    if c_ok and not h_ok:
        return ("c is right, so the gates i, f, g and the cell update are right; look at the output gate o "
                "(rows [3H:4H]) and at h = o * tanh(c).")
    if h_ok and not c_ok:
        return "h is right but c is not: do you return the new cell state c = f * c_prev + i * g?"
    return ("Both h and c are off: start with the pre-activation a (B, 4H) and the four slices "
            "i = sigmoid(a[:, :H]), f = sigmoid(a[:, H:2H]), g = tanh(a[:, 2H:3H]), o = sigmoid(a[:, 3H:]).")


def check_lstm_cell_forward(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                            edge_sizes: bool = False, saturate: bool = False,
                            dtypes: Sequence[str] = ("float64", "float32"),
                            name: str = "lstm_cell_forward") -> None:
    """Check ``fn(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh) -> (h, c)``.

    The cases are :func:`lstm_cases` (same keywords). Each output must have shape (B, H), the
    inputs' dtype, and match the reference within :func:`~gated_lib.grading.core.tolerance`.
    The learner's function may not call gated_lib's or torch's LSTM, nor change its inputs.
    """
    __tracebackhide__ = True
    cases = lstm_cases(seed, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes,
                       saturate=saturate, dtypes=dtypes)
    for n, case in enumerate(cases, 1):
        arr = case.arrays
        where = f"case {n} of {len(cases)} ({case.label})"
        hint = f"It was called with {_shapes_text(arr, _CELL_ARGS, _DIMS)}.\n{_SHAPE_HINT}"
        result = call_student(fn, [arr[k] for k in _CELL_ARGS], fn_name=name, case=where,
                              forbid=FORBID, hint=hint)
        got_h, got_c = _unpack_pair(result, name, "h", "c", where)
        (h, c), _ = _ref.lstm_cell_forward(_f64(arr["x"]), _f64(arr["h_prev"]), _f64(arr["c_prev"]), _ref_params(arr))
        rtol, atol = tolerance(case.dtype)
        msgs = [m for m in (compare("h", got_h, h, rtol=rtol, atol=atol, dims="(B, H)", dtype=case.dtype),
                            compare("c", got_c, c, rtol=rtol, atol=atol, dims="(B, H)", dtype=case.dtype)) if m]
        if not msgs:
            continue
        h_ok = matches(got_h, h, rtol, atol)
        c_ok = matches(got_c, c, rtol, atol)
        text = f"{name} is not right yet, {where}:\n  " + "\n  ".join(msgs)
        values_wrong = any("entries are off" in m for m in msgs)
        if values_wrong:
            diagnosis = _diagnose_cell(arr, got_h, got_c, rtol, atol)
            if diagnosis:
                text += ("\nDiagnosis: your output matches an LSTM cell with " + diagnosis[0]
                         + "".join(f"\n  It matches equally a cell with {d}" for d in diagnosis[1:]))
            else:
                text += "\nHint: " + _partial_hint(h_ok, c_ok)
        raise GradingFailure(text)
    _passed(name, cases, fixed)


def _passed(name: str, cases: list[Case], visible: bool) -> None:
    kinds = sorted({c.dtype.name for c in cases})
    more = (" The hidden tests add random sizes, B = H = T = 1, saturated gates, float32 and float64."
            if visible else "")
    print(f"{name}: all {len(cases)} cases pass ({', '.join(kinds)}).{more}")


# --------------------------------------------------------------------------------------------------
# The sequence
# --------------------------------------------------------------------------------------------------

def _run_sequence(arr: dict, cell=None, bug: str | None = None):
    """(out, h_n, c_n) in float64 for a correct cell or a mutated one, with a sequence-level bug."""
    x = _f64(arr["x"])
    T, B, _ = x.shape
    H = arr["weight_hh"].shape[1]
    zeros = np.zeros((B, H))
    h0 = zeros if arr["h0"] is None or bug == "ignore_init" else _f64(arr["h0"])
    c0 = zeros if arr["c0"] is None or bug == "ignore_init" else _f64(arr["c0"])
    if bug == "swap_init":
        h0, c0 = c0, h0
    p = [arr[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    step = cell or (lambda xt, h, c: cell_variant(xt, h, c, *p))
    steps = x[::-1] if bug == "reversed" else x
    h, c, hs, cs = h0, c0, [], []
    for xt in steps:
        h_in = h0 if bug in ("no_carry", "no_carry_h") else h
        c_in = c0 if bug in ("no_carry", "no_carry_c") else c
        h, c = step(xt, h_in, c_in)
        hs.append(h)
        cs.append(c)
    out = np.stack(cs if bug == "out_is_c" else hs)
    h_n, c_n = hs[-1], cs[-1]
    if bug == "shifted":
        out = np.stack([h0] + hs[:-1])
    elif bug == "aliased":
        out = np.stack([hs[-1]] * T)
    elif bug == "final_first":
        h_n, c_n = hs[0], cs[0]
    elif bug == "swap_final":
        h_n, c_n = c_n, h_n
    return out, h_n, c_n


def _diagnose_sequence(arr: dict, got: tuple, rtol: float, atol: float) -> list[str]:
    rtol, atol = max(rtol, 1e-6), max(atol, 1e-8)
    found = []

    def same(cand):
        return all(matches(g, e, rtol, atol) for g, e in zip(got, cand))

    with np.errstate(all="ignore"):
        for bug, text in SEQUENCE_BUGS.items():
            if same(_run_sequence(arr, bug=bug)):
                found.append(text)
        if found:
            return found[:2]
        D, H = arr["x"].shape[2], arr["weight_hh"].shape[1]
        p = [arr[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        for v in _cell_variants(D, H, pairs=False):
            if v.swap:
                continue

            def cell(xt, h, c, v=v):
                return cell_variant(xt, h, c, *p, order=v.order, bugs=v.bugs)

            if same(_run_sequence(arr, cell=cell)):
                found.append("a cell with " + v.describe()[0] + " The bug is in the cell: make "
                             "check_lstm_cell_forward pass first.")
                break
    return found


def check_lstm_forward(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                       edge_sizes: bool = False, saturate: bool = False,
                       dtypes: Sequence[str] = ("float64", "float32"), name: str = "lstm_forward") -> None:
    """Check ``fn(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None, c0=None) -> (out, (h_n, c_n))``.

    x is (T, B, D); out (T, B, H) holds h_1 .. h_T; h_n, c_n (B, H) are the final states; h0 and c0
    default to zeros. Cases alternate between explicit initial states and the defaults (passed by
    *omitting* h0 and c0). Same rules as :func:`check_lstm_cell_forward`.
    """
    __tracebackhide__ = True
    cases = lstm_cases(seed, sequence=True, fixed=fixed, n_random=n_random, edge_sizes=edge_sizes,
                       saturate=saturate, dtypes=dtypes)
    for n, case in enumerate(cases, 1):
        arr = case.arrays
        where = f"case {n} of {len(cases)} ({case.label})"
        kwargs = {} if arr["h0"] is None else {"h0": arr["h0"], "c0": arr["c0"]}
        hint = (f"It was called with {_shapes_text(arr, _SEQ_ARGS + ('h0', 'c0'), _SEQ_DIMS)}"
                f"{'' if kwargs else ' and h0, c0 left out (so they are None)'}.\n"
                f"Loop over t in range(T): each step maps x[t] (B, D) and the state (B, H) to the next state.")
        result = call_student(fn, [arr[k] for k in _SEQ_ARGS], kwargs, fn_name=name, case=where,
                              forbid=FORBID, hint=hint)
        if isinstance(result, (tuple, list)) and len(result) == 3:
            raise GradingFailure(f"{name} returned three items; return (out, (h_n, c_n)): the outputs and "
                                 f"the pair of final states, as torch.nn.LSTM does.")
        out, final = _unpack_pair(result, name, "out", "(h_n, c_n)", where)
        if not isinstance(final, (tuple, list)) or len(final) != 2:
            raise GradingFailure(f"{name} should return (out, (h_n, c_n)); the second item is a "
                                 f"{type(final).__name__}, not the pair (h_n, c_n).")
        h_n, c_n = final
        p = _ref_params(arr)
        (e_out, (e_h, e_c)), _ = _ref.lstm_forward(_f64(arr["x"]), p, _f64(arr["h0"]), _f64(arr["c0"]))
        rtol, atol = tolerance(case.dtype)
        msgs = [m for m in (
            compare("out", out, e_out, rtol=rtol, atol=atol, dims="(T, B, H)", dtype=case.dtype),
            compare("h_n", h_n, e_h, rtol=rtol, atol=atol, dims="(B, H)", dtype=case.dtype),
            compare("c_n", c_n, e_c, rtol=rtol, atol=atol, dims="(B, H)", dtype=case.dtype)) if m]
        if not msgs:
            continue
        text = f"{name} is not right yet, {where}:\n  " + "\n  ".join(msgs)
        if any("entries are off" in m for m in msgs):
            diagnosis = _diagnose_sequence(arr, (out, h_n, c_n), rtol, atol)
            if diagnosis:
                text += "\nDiagnosis: your result matches " + (
                    diagnosis[0] if diagnosis[0].startswith("a cell") else "an LSTM loop where " + diagnosis[0])
            elif matches(out, e_out, rtol, atol) and not matches(h_n, e_h, rtol, atol):
                text += "\nHint: out is right; h_n must be the last hidden state, out[-1]."
        raise GradingFailure(text)
    _passed(name, cases, fixed)


# --------------------------------------------------------------------------------------------------
# Gate regimes
# --------------------------------------------------------------------------------------------------

def _unpack_params(result, fn_name: str, D: int, H: int) -> dict:
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    if not isinstance(result, (tuple, list)) or len(result) != 4:
        raise GradingFailure(f"{fn_name} should return the four arrays (weight_ih, weight_hh, bias_ih, bias_hh), "
                             f"but it returned {type(result).__name__}"
                             f"{' of length ' + str(len(result)) if isinstance(result, (tuple, list)) else ''}.")
    shapes = {"weight_ih": (4 * H, D), "weight_hh": (4 * H, H), "bias_ih": (4 * H,), "bias_hh": (4 * H,)}
    dims = {"weight_ih": "(4H, D)", "weight_hh": "(4H, H)", "bias_ih": "(4H,)", "bias_hh": "(4H,)"}
    params = {}
    for n, v in zip(names, result):
        a = np.asarray(v)
        if a.dtype.kind not in "fiub":
            raise GradingFailure(f"{fn_name}: {n} should be an array of numbers, got {type(v).__name__}.")
        if a.shape != shapes[n]:
            raise GradingFailure(f"{fn_name}: {n} has shape {fmt_shape(a.shape)}, but it should have shape "
                                 f"{dims[n]} = {fmt_shape(shapes[n])} (D={D}, H={H}).")
        if not np.all(np.isfinite(a)):
            raise GradingFailure(f"{fn_name}: {n} contains inf or NaN. Use a large finite number: "
                                 f"sigmoid(40) is already 1.0 in float64.")
        params[n] = a.astype(np.float64)
    return params


def _gate_ranges(caches) -> dict[str, tuple[float, float]]:
    return {g: (min(float(s[g].min()) for s in caches), max(float(s[g].max()) for s in caches)) for g in "ifo"}


def _slice_report(params: dict, H: int) -> str:
    b = params["bias_ih"] + params["bias_hh"]
    parts = []
    for k, gate in enumerate(GATE_ORDER):
        rows = slice(k * H, (k + 1) * H)
        parts.append(f"{gate} {_SLICES[k]} effective bias {np.mean(b[rows]):+.3g}"
                     + (", weights nonzero" if np.any(params["weight_ih"][rows]) or np.any(params["weight_hh"][rows]) else ""))
    return "; ".join(parts)


def check_keep_memory(fn: Callable, *, seed: int = 0, sizes: Sequence[tuple[int, int, int]] = ((3, 4, 5),),
                      T: int = 200, tol: float = 1e-9, name: str = "keep_memory_params") -> None:
    """Check ``fn(D, H) -> (weight_ih, weight_hh, bias_ih, bias_hh)`` builds a cell that keeps c.

    For every size (B, D, H), T steps of inputs with entries in [-1, 1] and random h0, c0, the
    cell state must stay put: ``|c_t - c_0| <= tol * (1 + |c_0|)`` for every t. Then f = 1 and
    i = 0 to machine precision, and h_t = o_t * tanh(c_0).
    """
    __tracebackhide__ = True
    rng = np.random.default_rng(seed)
    for B, D, H in sizes:
        result = call_student(fn, (D, H), fn_name=name, case=f"D={D}, H={H}")
        params = _unpack_params(result, name, D, H)
        x = rng.uniform(-1.0, 1.0, (T, B, D))
        h0 = rng.uniform(-1.0, 1.0, (B, H))
        c0 = rng.uniform(-3.0, 3.0, (B, H))
        (out, _), caches = _ref.lstm_forward(x, params, h0, c0)
        drift = max(float(np.max(np.abs(s["c"] - c0) / (1.0 + np.abs(c0)))) for s in caches)
        if drift <= tol:
            continue
        r = _gate_ranges(caches)
        t_bad = next(t for t, s in enumerate(caches, 1) if np.max(np.abs(s["c"] - c0) / (1.0 + np.abs(c0))) > tol)
        msg = (f"{name}: the cell does not keep its memory (B={B}, D={D}, H={H}, T={T}, inputs in [-1, 1]). "
               f"|c_t - c_0| / (1 + |c_0|) first exceeds {tol:g} at step t = {t_bad} and reaches {drift:.3g}.\n"
               f"  On these inputs your forget gate f ranges over [{r['f'][0]:.6g}, {r['f'][1]:.6g}] (it must be 1) "
               f"and your input gate i over [{r['i'][0]:.3g}, {r['i'][1]:.3g}] (it must be 0).\n"
               f"  Your slices: {_slice_report(params, H)}.\n")
        b = params["bias_ih"] + params["bias_hh"]
        if np.mean(b[:H]) > 0 > np.mean(b[H:2 * H]):
            msg += ("  Hint: the slices look exchanged: [0:H] is the input gate i (close it with a large "
                    "negative bias), [H:2H] the forget gate f (open it with a large positive bias).")
        elif r["f"][0] < 1.0:
            msg += ("  Hint: a value multiplied by f at every step shrinks like f^t: f must be 1 to about 1e-12, "
                    "so the forget slice [H:2H] of bias_ih + bias_hh needs to be large (sigmoid(30) = 1 - 9e-14), "
                    "and its weights small enough that no input can pull it down.")
        else:
            msg += ("  Hint: the input gate must be closed: a large negative effective bias in [0:H] "
                    "(remember that PyTorch adds bias_ih and bias_hh).")
        raise GradingFailure(msg)
    print(f"{name}: c_t = c_0 for all {T} steps, for every size tested ({len(sizes)}).")


def check_rnn_regime(fn: Callable, *, seed: int = 0, sizes: Sequence[tuple[int, int, int]] = ((3, 4, 5),),
                     n_inputs: int = 5, tol: float = 1e-9, name: str = "rnn_regime_params") -> None:
    """Check ``fn(W, U, b) -> (weight_ih, weight_hh, bias_ih, bias_hh)`` for a vanilla RNN's W (H, D),
    U (H, H), b (H,): one LSTM step must give c = tanh(x W^T + h_prev U^T + b) and h = tanh(c)
    (i = 1, f = 0, o = 1), within `tol`, for any x, h_prev and c_prev.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng(seed)
    for B, D, H in sizes:
        W = rng.normal(0.0, 1.0 / np.sqrt(D + H), (H, D))
        U = rng.normal(0.0, 1.0 / np.sqrt(D + H), (H, H))
        b = rng.normal(0.0, 0.5, H)
        result = call_student(fn, (W, U, b), fn_name=name, case=f"D={D}, H={H}")
        params = _unpack_params(result, name, D, H)
        worst, bad = 0.0, None
        for _ in range(n_inputs):
            x = rng.normal(0.0, 1.0, (B, D))
            h_prev = rng.uniform(-1.0, 1.0, (B, H))
            c_prev = rng.uniform(-3.0, 3.0, (B, H))
            (h, c), cache = _ref.lstm_cell_forward(x, h_prev, c_prev, params)
            rnn = np.tanh(x @ W.T + h_prev @ U.T + b)
            err = max(float(np.max(np.abs(c - rnn))), float(np.max(np.abs(h - np.tanh(rnn)))))
            if err > worst:
                worst, bad = err, (x, h_prev, c_prev, cache, rnn, h, c)
        if worst <= tol:
            continue
        x, h_prev, c_prev, cache, rnn, h, c = bad
        msg = (f"{name}: the LSTM step is not the vanilla RNN step (B={B}, D={D}, H={H}): the largest error "
               f"in c = tanh(x W^T + h_prev U^T + b) or h = tanh(c) is {worst:.3g} (allowed {tol:g}).\n"
               f"  Your gates on these inputs: i in [{cache['i'].min():.6g}, {cache['i'].max():.6g}] (must be 1), "
               f"f in [{cache['f'].min():.3g}, {cache['f'].max():.3g}] (must be 0), "
               f"o in [{cache['o'].min():.6g}, {cache['o'].max():.6g}] (must be 1).\n"
               f"  Your slices: {_slice_report(params, H)}.\n")
        g_ok = np.max(np.abs(cache["g"] - rnn)) <= 1e-6
        beff = params["bias_ih"] + params["bias_hh"]
        hints = []
        if not g_ok:
            where = [k for k in range(4) if np.allclose(params["weight_ih"][k * H:(k + 1) * H], W)]
            if where and where[0] != 2:
                hints.append(f"the RNN's W sits in rows {_SLICES[where[0]]} (the {GATE_ORDER[where[0]]} gate); "
                             f"the candidate g is rows [2H:3H]")
            elif np.allclose(cache["g"], np.tanh(x @ W.T + h_prev @ U.T + 2 * b)):
                hints.append("the candidate gets the bias twice: PyTorch's effective bias is bias_ih + bias_hh, so "
                             "put b in one of them and zeros in the other")
            elif H > 1 and np.allclose(params["weight_hh"][2 * H:3 * H], U.T):
                hints.append("U is transposed: weight_hh[2H:3H] should be U itself (the step computes h_prev @ U.T)")
            else:
                hints.append("the candidate g must be exactly tanh(x W^T + h_prev U^T + b): rows [2H:3H] of "
                             "weight_ih and weight_hh hold W and U, and the g slice of the biases sums to b")
        if cache["f"].max() > 1e-10:
            hints.append("the forget gate is not closed: give the slice [H:2H] a large negative effective bias "
                         "(and zero weights), so that f * c_prev vanishes")
        if cache["i"].min() < 1 - 1e-10:
            hints.append("the input gate is not fully open: a large positive effective bias in [0:H]")
        if cache["o"].min() < 1 - 1e-10:
            hints.append("the output gate is not fully open: a large positive effective bias in [3H:4H]")
        if np.abs(beff).max() < 20 and not hints:
            hints.append("biases of a few units leave the gates visibly away from 0 and 1: sigmoid(5) = 0.9933")
        raise GradingFailure(msg + "  Hint: " + "; ".join(hints) + ".")
    print(f"{name}: one LSTM step equals c = tanh(x W^T + h U^T + b), h = tanh(c), for every size tested ({len(sizes)}).")
