"""The LSTM checkers of gated_lib.grading: they accept every correct solution and name every bug.

Each learner solution below is written the way a learner writes it (not through gated_lib), so a
passing test says something about the checker, not about the reference it compares with.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import gated_lib
import gated_lib.lstm as ref
from gated_lib.grading import core, lstm as grading
from gated_lib.grading.core import GradingFailure

HIDDEN = dict(fixed=False, n_random=4, edge_sizes=True, saturate=True, dtypes=("float32", "float64"))


# ------------------------------------------------------------------------------------------------
# Learners' solutions: correct ones
# ------------------------------------------------------------------------------------------------

def stable_sigmoid(a):
    return np.exp(-np.logaddexp(0.0, -a)).astype(a.dtype)


def naive_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))          # overflows for a << 0; the result is still right


def fused_cell(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    H = h_prev.shape[1]
    a = x @ weight_ih.T + h_prev @ weight_hh.T + (bias_ih + bias_hh)
    i = stable_sigmoid(a[:, 0:H])
    f = stable_sigmoid(a[:, H:2 * H])
    g = np.tanh(a[:, 2 * H:3 * H])
    o = stable_sigmoid(a[:, 3 * H:4 * H])
    c = f * c_prev + i * g
    return o * np.tanh(c), c


def per_gate_cell(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """A loop over the four gates, column-vector style, with a naive sigmoid."""
    H = h_prev.shape[1]
    acts = []
    for k in range(4):
        rows = slice(k * H, (k + 1) * H)
        pre = np.dot(weight_ih[rows], x.T).T + np.dot(weight_hh[rows], h_prev.T).T + bias_ih[rows] + bias_hh[rows]
        acts.append(np.tanh(pre) if k == 2 else naive_sigmoid(pre))
    i, f, g, o = acts
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return h, c


def float64_inside_cell(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """Computes in float64 whatever comes in, and casts back to the input dtype."""
    dt = x.dtype
    args = [np.asarray(v, np.float64) for v in (x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh)]
    h, c = fused_cell(*args)
    return h.astype(dt), c.astype(dt)


def torch_math_cell(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """torch arithmetic (not torch.nn.LSTM): allowed."""
    import torch
    t = [torch.from_numpy(np.ascontiguousarray(v)) for v in (x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh)]
    x_, h_, c_, Wi, Wh, bi, bh = t
    i, f, g, o = (x_ @ Wi.T + h_ @ Wh.T + bi + bh).chunk(4, dim=1)
    c = torch.sigmoid(f) * c_ + torch.sigmoid(i) * torch.tanh(g)
    return (torch.sigmoid(o) * torch.tanh(c)).numpy(), c.numpy()


def make_sequence(cell, *, zeros_dtype="x"):
    def lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None, c0=None):
        T, B, _ = x.shape
        H = weight_hh.shape[1]
        dt = x.dtype if zeros_dtype == "x" else np.float64
        h = np.zeros((B, H), dt) if h0 is None else h0
        c = np.zeros((B, H), dt) if c0 is None else c0
        out = []
        for t in range(T):
            h, c = cell(x[t], h, c, weight_ih, weight_hh, bias_ih, bias_hh)
            out.append(h)
        return np.stack(out), (h, c)
    return lstm_forward


CORRECT_CELLS = [fused_cell, per_gate_cell, float64_inside_cell, torch_math_cell]


# ------------------------------------------------------------------------------------------------
# Learners' solutions: buggy ones (each with the words its diagnosis must contain)
# ------------------------------------------------------------------------------------------------

def _gates(x, h_prev, weight_ih, weight_hh, b, order="ifgo", act_g=np.tanh, act=stable_sigmoid):
    H = h_prev.shape[1]
    a = x @ weight_ih.T + h_prev @ weight_hh.T + b
    blocks = {name: a[:, k * H:(k + 1) * H] for k, name in enumerate(order)}
    return act(blocks["i"]), act(blocks["f"]), act_g(blocks["g"]), act(blocks["o"])


def bug_order_igfo(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    i, f, g, o = _gates(x, h_prev, weight_ih, weight_hh, bias_ih + bias_hh, order="igfo")
    c = f * c_prev + i * g
    return o * np.tanh(c), c


def bug_order_iofg(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    i, f, g, o = _gates(x, h_prev, weight_ih, weight_hh, bias_ih + bias_hh, order="iofg")
    c = f * c_prev + i * g
    return o * np.tanh(c), c


def bug_no_tanh_c(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    i, f, g, o = _gates(x, h_prev, weight_ih, weight_hh, bias_ih + bias_hh)
    c = f * c_prev + i * g
    return o * c, c


def bug_sigmoid_g(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    i, f, g, o = _gates(x, h_prev, weight_ih, weight_hh, bias_ih + bias_hh, act_g=stable_sigmoid)
    c = f * c_prev + i * g
    return o * np.tanh(c), c


def bug_no_bias(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    i, f, g, o = _gates(x, h_prev, weight_ih, weight_hh, 0.0)
    c = f * c_prev + i * g
    return o * np.tanh(c), c


def bug_one_bias(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    i, f, g, o = _gates(x, h_prev, weight_ih, weight_hh, bias_ih)
    c = f * c_prev + i * g
    return o * np.tanh(c), c


def bug_transposed_hh(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    H = h_prev.shape[1]
    acts = []
    for k in range(4):
        rows = slice(k * H, (k + 1) * H)
        pre = x @ weight_ih[rows].T + h_prev @ weight_hh[rows] + bias_ih[rows] + bias_hh[rows]
        acts.append(np.tanh(pre) if k == 2 else stable_sigmoid(pre))
    i, f, g, o = acts
    c = f * c_prev + i * g
    return o * np.tanh(c), c


def bug_reshaped(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    D, H = x.shape[1], h_prev.shape[1]
    a = x @ weight_ih.reshape(D, 4 * H) + h_prev @ weight_hh.reshape(H, 4 * H) + bias_ih + bias_hh
    i, f, o = (stable_sigmoid(a[:, k * H:(k + 1) * H]) for k in (0, 1, 3))
    g = np.tanh(a[:, 2 * H:3 * H])
    c = f * c_prev + i * g
    return o * np.tanh(c), c


def bug_h_for_c(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    i, f, g, o = _gates(x, h_prev, weight_ih, weight_hh, bias_ih + bias_hh)
    c = f * h_prev + i * g
    return o * np.tanh(c), c


def bug_c_for_h(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    i, f, g, o = _gates(x, c_prev, weight_ih, weight_hh, bias_ih + bias_hh)
    c = f * c_prev + i * g
    return o * np.tanh(c), c


def bug_no_forget(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    i, f, g, o = _gates(x, h_prev, weight_ih, weight_hh, bias_ih + bias_hh)
    c = c_prev + i * g
    return o * np.tanh(c), c


def bug_swapped_return(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    h, c = fused_cell(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh)
    return c, h


CELL_MUTANTS = [
    (bug_order_igfo, ["order i, g, f, o", "[H:2H] to the forget gate f"]),
    (bug_order_iofg, ["order i, o, f, g", "ONNX"]),
    (bug_no_tanh_c, ["h = o * c", "tanh on the cell state is missing"]),
    (bug_sigmoid_g, ["sigmoid on the candidate g"]),
    (bug_no_bias, ["without bias"]),
    (bug_one_bias, ["adds bias_ih but not bias_hh", "two biases"]),
    (bug_transposed_hh, ["without transposing", "weight_hh"]),
    (bug_reshaped, ["reshaped instead of transposed"]),
    (bug_h_for_c, ["h_prev used where c_prev belongs"]),
    (bug_c_for_h, ["c_prev used where h_prev belongs"]),
    (bug_no_forget, ["1997 LSTM, without a forget gate"]),
    (bug_swapped_return, ["(c, h); return (h, c)"]),
]


def failure(check, fn, **kwargs) -> str:
    with pytest.raises(GradingFailure) as info:
        check(fn, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------------------------
# The reference agrees with independent implementations (so the checkers compare with the truth)
# ------------------------------------------------------------------------------------------------

def test_reference_agrees_with_torch_and_with_independent_implementations():
    torch = pytest.importorskip("torch")
    for case in grading.lstm_cases(7, n_random=3, edge_sizes=True, dtypes=("float64",)):
        a = case.arrays
        params = {k: a[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        (h, c), _ = ref.lstm_cell_forward(a["x"], a["h_prev"], a["c_prev"], params)
        D, H = a["x"].shape[1], a["h_prev"].shape[1]
        cell = torch.nn.LSTMCell(D, H).double()
        with torch.no_grad():
            for k, v in params.items():
                getattr(cell, k).copy_(torch.from_numpy(v))
            th, tc = cell(torch.from_numpy(a["x"]), (torch.from_numpy(a["h_prev"]), torch.from_numpy(a["c_prev"])))
        np.testing.assert_allclose(h, th.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(c, tc.numpy(), rtol=1e-12, atol=1e-12)
        for impl in (fused_cell, per_gate_cell, grading.cell_variant):
            hh, cc = impl(*(a[k] for k in ("x", "h_prev", "c_prev", "weight_ih", "weight_hh", "bias_ih", "bias_hh")))
            np.testing.assert_allclose(hh, h, rtol=1e-12, atol=1e-13)
            np.testing.assert_allclose(cc, c, rtol=1e-12, atol=1e-13)


# ------------------------------------------------------------------------------------------------
# The cell checker
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CORRECT_CELLS, ids=lambda f: f.__name__)
def test_correct_cells_pass_visible_and_hidden_checks(cell, capsys):
    grading.check_lstm_cell_forward(cell)
    for seed in range(3):
        grading.check_lstm_cell_forward(cell, seed=seed, **HIDDEN)
    out = capsys.readouterr()
    assert "all 3 cases pass" in out.out and out.err == ""


def test_float32_tolerance_is_not_flaky():
    for seed in range(40):
        grading.check_lstm_cell_forward(fused_cell, seed=seed, fixed=False, n_random=5, dtypes=("float32",))
        grading.check_lstm_forward(make_sequence(fused_cell), seed=seed, fixed=False, n_random=3, dtypes=("float32",))


def test_checker_writes_nothing_to_stderr_and_raises_no_warning(capsys):
    """A naive sigmoid overflows on saturated gates: its result is right, and nbgrader must not see a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grading.check_lstm_cell_forward(per_gate_cell, seed=3, fixed=False, saturate=True, dtypes=("float32", "float64"))
    assert capsys.readouterr().err == ""


def test_saturated_cases_really_saturate_and_overflow_a_naive_sigmoid():
    case = grading.lstm_cases(0, fixed=False, saturate=True, dtypes=("float32",))[0]
    a = case.arrays
    pre = a["x"] @ a["weight_ih"].T + a["h_prev"] @ a["weight_hh"].T + a["bias_ih"] + a["bias_hh"]
    assert np.abs(pre).max() > 700
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        naive_sigmoid(pre.astype(np.float64))


def test_hidden_cases_include_the_edge_sizes():
    sizes = {tuple(c.sizes.values()) for c in grading.lstm_cases(0, sequence=True, **HIDDEN)}
    assert (1, 1, 1, 1) in sizes                     # T = B = D = H = 1
    dtypes = {c.dtype.name for c in grading.lstm_cases(0, **HIDDEN)}
    assert dtypes == {"float32", "float64"}


@pytest.mark.parametrize("mutant, phrases", CELL_MUTANTS, ids=lambda m: getattr(m, "__name__", ""))
def test_each_cell_bug_fails_with_its_diagnosis(mutant, phrases):
    msg = failure(grading.check_lstm_cell_forward, mutant)
    assert "Diagnosis: your output matches an LSTM cell with" in msg, msg
    for p in phrases:
        assert p in msg, f"expected {p!r} in:\n{msg}"


def test_two_bugs_at_once_are_both_named():
    def two(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        i, f, g, o = _gates(x, h_prev, weight_ih, weight_hh, bias_ih + bias_hh, order="igfo")
        c = f * c_prev + i * g
        return o * c, c
    msg = failure(grading.check_lstm_cell_forward, two)
    assert "two mistakes" in msg and "i, g, f, o" in msg and "h = o * c" in msg


def test_transposed_input_blocks_are_diagnosed_when_D_equals_H():
    def bug(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        H = h_prev.shape[1]
        acts = []
        for k in range(4):
            r = slice(k * H, (k + 1) * H)
            pre = x @ weight_ih[r] + h_prev @ weight_hh[r].T + bias_ih[r] + bias_hh[r]
            acts.append(np.tanh(pre) if k == 2 else stable_sigmoid(pre))
        i, f, g, o = acts
        c = f * c_prev + i * g
        return o * np.tanh(c), c
    msg = failure(grading.check_lstm_cell_forward, bug)
    # case 1 has D != H: the product raises, and the message shows the shapes
    assert "raised ValueError" in msg and "weight_ih (4H, D) = (16, 3)" in msg and "(B, 4H)" in msg


def test_unknown_bug_gets_a_hint_on_what_is_right():
    def bug(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        h, c = fused_cell(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh)
        return h * 0.9, c
    msg = failure(grading.check_lstm_cell_forward, bug)
    assert "c is right" in msg and "output gate" in msg


def test_not_implemented_exception_and_wrong_return_are_explained():
    def todo(*args):
        raise NotImplementedError()
    assert "not implemented yet" in failure(grading.check_lstm_cell_forward, todo)

    def with_cache(*args):
        return fused_cell(*args), {}
    assert "((h, c), cache)" in failure(grading.check_lstm_cell_forward, with_cache)

    def only_h(*args):
        return fused_cell(*args)[0]
    assert "should return a pair (h, c)" in failure(grading.check_lstm_cell_forward, only_h)

    def transposed(*args):
        h, c = fused_cell(*args)
        return h.T, c.T
    assert "That is the transpose" in failure(grading.check_lstm_cell_forward, transposed)


def test_in_place_change_of_an_input_fails():
    def inplace(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        i, f, g, o = _gates(x, h_prev, weight_ih, weight_hh, bias_ih + bias_hh)
        c_prev *= f
        c_prev += i * g
        return o * np.tanh(c_prev), c_prev
    msg = failure(grading.check_lstm_cell_forward, inplace)
    assert "changed its input c_prev in place" in msg


def test_unstable_sigmoid_nan_is_explained():
    def unstable(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        sig = lambda a: np.exp(a) / (1 + np.exp(a))  # noqa: E731
        return per_gate_like(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh, sig)
    msg = failure(grading.check_lstm_cell_forward, unstable, seed=0, fixed=False, saturate=True, dtypes=("float64",))
    assert "NaN" in msg and "stable sigmoid" in msg


def per_gate_like(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh, sig):
    H = h_prev.shape[1]
    a = x @ weight_ih.T + h_prev @ weight_hh.T + bias_ih + bias_hh
    i, f, o = sig(a[:, :H]), sig(a[:, H:2 * H]), sig(a[:, 3 * H:])
    c = f * c_prev + i * np.tanh(a[:, 2 * H:3 * H])
    return o * np.tanh(c), c


def test_float32_upcast_is_reported():
    msg = failure(grading.check_lstm_cell_forward, float64_out := (lambda *a: tuple(v.astype(np.float64) for v in fused_cell(*a))))
    assert "dtype float64, but the inputs are float32" in msg
    del float64_out


# ------------------------------------------------------------------------------------------------
# Calling the reference is caught, however it is reached
# ------------------------------------------------------------------------------------------------

def _params(weight_ih, weight_hh, bias_ih, bias_hh):
    return dict(weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh)


def cheat_via_package(x, h_prev, c_prev, *w):
    (h, c), _ = gated_lib.lstm_cell_forward(x, h_prev, c_prev, _params(*w))
    return h, c


alias = ref.lstm_cell_forward


def cheat_via_alias(x, h_prev, c_prev, *w):
    (h, c), _ = alias(x, h_prev, c_prev, _params(*w))
    return h, c


def cheat_via_local_import(x, h_prev, c_prev, *w):
    from gated_lib.lstm import lstm_cell_forward as f
    (h, c), _ = f(x, h_prev, c_prev, _params(*w))
    return h, c


def _make_closure_cheat():
    f = ref.lstm_cell_forward

    def cheat(x, h_prev, c_prev, *w):
        (h, c), _ = f(x, h_prev, c_prev, _params(*w))
        return h, c
    return cheat


def cheat_swallowing(x, h_prev, c_prev, *w):
    try:
        (h, c), _ = ref.lstm_cell_forward(x, h_prev, c_prev, _params(*w))
    except BaseException:  # noqa: BLE001 - a learner hiding the tripwire
        return fused_cell(x, h_prev, c_prev, *w)
    return h, c


def cheat_via_machinery(x, h_prev, c_prev, *w):
    from gated_lib import sequence
    (h, c), _ = sequence.cell_forward(ref.LSTM, x, (h_prev, c_prev), _params(*w))
    return h, c


def cheat_via_private_step(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    xp = x @ weight_ih.T + bias_ih + bias_hh
    (h, c), _ = ref._step(xp, (h_prev, c_prev), _params(weight_ih, weight_hh, bias_ih, bias_hh))
    return h, c


def cheat_via_grading(x, h_prev, c_prev, *w):
    return grading.cell_variant(x, h_prev, c_prev, *w)


def cheat_via_torch(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    import torch
    cell = torch.nn.LSTMCell(x.shape[1], h_prev.shape[1]).to(torch.float64 if x.dtype == np.float64 else torch.float32)
    with torch.no_grad():
        for k, v in _params(weight_ih, weight_hh, bias_ih, bias_hh).items():
            getattr(cell, k).copy_(torch.from_numpy(v))
        h, c = cell(torch.from_numpy(x), (torch.from_numpy(h_prev), torch.from_numpy(c_prev)))
    return h.numpy(), c.numpy()


def cheat_via_torch_function(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    import torch
    t = torch.from_numpy
    h, c = torch.lstm_cell(t(x), (t(h_prev), t(c_prev)), t(weight_ih), t(weight_hh), t(bias_ih), t(bias_hh))
    return h.numpy(), c.numpy()


CHEATS = [cheat_via_package, cheat_via_alias, cheat_via_local_import, _make_closure_cheat(), cheat_swallowing,
          cheat_via_machinery, cheat_via_private_step, cheat_via_grading, cheat_via_torch,
          cheat_via_torch_function]


@pytest.mark.parametrize("cheat", CHEATS, ids=lambda f: f.__name__)
def test_calling_a_reference_fails_and_says_so(cheat):
    previous = sys.getprofile()
    msg = failure(grading.check_lstm_cell_forward, cheat)
    assert "a reference implementation of what this exercise asks you to write" in msg, msg
    assert sys.getprofile() is previous                       # the call monitor is gone afterwards


def test_reference_call_message_names_what_was_called():
    assert "calls gated_lib.lstm.lstm_cell_forward" in failure(grading.check_lstm_cell_forward, cheat_via_alias)
    assert "torch.nn.LSTMCell" in failure(grading.check_lstm_cell_forward, cheat_via_torch)
    assert "gated_lib.grading.lstm.cell_variant" in failure(grading.check_lstm_cell_forward, cheat_via_grading)


def test_allowed_helpers_are_not_reference_calls():
    from gated_lib.activations import sigmoid

    def with_helpers(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        H = h_prev.shape[1]
        i, f, g, o = ref.split_gates(x @ weight_ih.T + h_prev @ weight_hh.T + bias_ih + bias_hh)
        c = sigmoid(f) * c_prev + sigmoid(i) * np.tanh(g)
        assert c.shape[1] == H
        return sigmoid(o) * np.tanh(c), c
    grading.check_lstm_cell_forward(with_helpers)


def test_sequence_calling_the_reference_fails():
    def cheat(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None, c0=None):
        (out, (h, c)), _ = ref.lstm_forward(x, _params(weight_ih, weight_hh, bias_ih, bias_hh), h0, c0)
        return out, (h, c)
    assert "calls gated_lib.lstm.lstm_forward" in failure(grading.check_lstm_forward, cheat)


def test_a_sequence_built_on_the_learners_own_cell_is_fine():
    grading.check_lstm_forward(make_sequence(per_gate_cell))
    grading.check_lstm_forward(make_sequence(per_gate_cell), seed=11, **HIDDEN)


# ------------------------------------------------------------------------------------------------
# The sequence checker
# ------------------------------------------------------------------------------------------------

def seq_with(bug):
    cell = fused_cell

    def lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None, c0=None):
        T, B, _ = x.shape
        H = weight_hh.shape[1]
        z = np.zeros((B, H), x.dtype)
        h_init = z if (h0 is None or bug == "ignore_init") else h0
        c_init = z if (c0 is None or bug == "ignore_init") else c0
        h, c = h_init, c_init
        buf = np.zeros((B, H), x.dtype)
        out, first = [], None
        steps = x[::-1] if bug == "reversed" else x
        for xt in steps:
            if bug == "shifted":
                out.append(h)
            if bug == "no_carry":
                h, c = cell(xt, h_init, c_init, weight_ih, weight_hh, bias_ih, bias_hh)
            else:
                h, c = cell(xt, h, c, weight_ih, weight_hh, bias_ih, bias_hh)
            first = first or (h, c)
            if bug == "aliased":
                buf[:] = h
                out.append(buf)
            elif bug == "out_is_c":
                out.append(c)
            elif bug != "shifted":
                out.append(h)
        if bug == "final_first":
            h, c = first
        if bug == "swap_final":
            return np.stack(out), (c, h)
        if bug == "three":
            return np.stack(out), h, c
        return np.stack(out), (h, c)
    return lstm_forward


SEQ_MUTANTS = [
    ("shifted", ["shifted by one step"]),
    ("no_carry", ["state is not carried"]),
    ("ignore_init", ["h0 and c0 are ignored"]),
    ("reversed", ["read backwards"]),
    ("aliased", ["overwrite in place"]),
    ("out_is_c", ["out holds the cell states"]),
    ("final_first", ["after the *first* step"]),
    ("swap_final", ["(c_n, h_n)"]),
    ("three", ["returned three items"]),
]


@pytest.mark.parametrize("bug, phrases", SEQ_MUTANTS, ids=[m[0] for m in SEQ_MUTANTS])
def test_each_sequence_bug_fails_with_its_diagnosis(bug, phrases):
    msg = failure(grading.check_lstm_forward, seq_with(bug))
    for p in phrases:
        assert p in msg, f"expected {p!r} in:\n{msg}"


def test_sequence_with_a_buggy_cell_points_at_the_cell():
    msg = failure(grading.check_lstm_forward, make_sequence(bug_no_tanh_c))
    assert "The bug is in the cell" in msg and "h = o * c" in msg


def test_sequence_zeros_in_float64_for_float32_input_is_reported():
    msg = failure(grading.check_lstm_forward, make_sequence(fused_cell, zeros_dtype="float64"))
    assert "dtype float64, but the inputs are float32" in msg and "dtype=x.dtype" in msg


def test_sequence_without_default_initial_state_is_explained():
    def no_defaults(x, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0):
        return make_sequence(fused_cell)(x, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0)
    msg = failure(grading.check_lstm_forward, no_defaults)
    assert "raised TypeError" in msg and "h0, c0 left out" in msg


# ------------------------------------------------------------------------------------------------
# Gate regimes
# ------------------------------------------------------------------------------------------------

def keep_right(D, H):
    b = np.zeros(4 * H)
    b[:H], b[H:2 * H] = -25.0, 25.0
    return np.zeros((4 * H, D)), np.zeros((4 * H, H)), b, b.copy()     # effective bias +-50


def keep_weak(D, H):
    w_ih, w_hh, b, _ = keep_right(D, H)
    b[H:2 * H] = 5.0
    return w_ih, w_hh, b, np.zeros(4 * H)


def keep_swapped(D, H):
    w_ih, w_hh, b, _ = keep_right(D, H)
    b[:H], b[H:2 * H] = 50.0, -50.0
    return w_ih, w_hh, b, np.zeros(4 * H)


def test_keep_memory_checker():
    grading.check_keep_memory(keep_right)
    grading.check_keep_memory(keep_right, seed=5, sizes=((1, 1, 1), (2, 7, 3)), T=2000)
    msg = failure(grading.check_keep_memory, keep_weak)
    assert "forget gate f ranges over" in msg and "shrinks like f^t" in msg
    msg = failure(grading.check_keep_memory, keep_swapped)
    assert "slices look exchanged" in msg
    msg = failure(grading.check_keep_memory, lambda D, H: keep_right(H, D) if D != H else None)
    assert "weight_ih has shape" in msg


def rnn_right(W, U, b):
    H, D = W.shape
    w_ih, w_hh = np.zeros((4 * H, D)), np.zeros((4 * H, H))
    w_ih[2 * H:3 * H], w_hh[2 * H:3 * H] = W, U
    b_ih = np.concatenate([np.full(H, 40.0), np.full(H, -40.0), b, np.full(H, 40.0)])
    return w_ih, w_hh, b_ih, np.zeros(4 * H)


def test_rnn_regime_checker():
    grading.check_rnn_regime(rnn_right)
    grading.check_rnn_regime(rnn_right, seed=3, sizes=((1, 1, 1), (4, 2, 6)))

    def wrong_slice(W, U, b):
        H = W.shape[0]
        w_ih, w_hh, b_ih, b_hh = rnn_right(W, U, b)
        w_ih[[*range(0, H), *range(2 * H, 3 * H)]] = w_ih[[*range(2 * H, 3 * H), *range(0, H)]]
        return w_ih, w_hh, b_ih, b_hh
    assert "(the i gate); the candidate g is rows [2H:3H]" in failure(grading.check_rnn_regime, wrong_slice)

    def doubled(W, U, b):
        w_ih, w_hh, b_ih, b_hh = rnn_right(W, U, b)
        H = W.shape[0]
        b_hh[2 * H:3 * H] = b
        return w_ih, w_hh, b_ih, b_hh
    assert "gets the bias twice" in failure(grading.check_rnn_regime, doubled)

    def forget_open(W, U, b):
        w_ih, w_hh, b_ih, b_hh = rnn_right(W, U, b)
        H = W.shape[0]
        b_ih[H:2 * H] = 0.0
        return w_ih, w_hh, b_ih, b_hh
    assert "forget gate is not closed" in failure(grading.check_rnn_regime, forget_open)

    def modifies(W, U, b):
        W *= 1.0
        U += 0.0
        b[:] = b * 2
        return rnn_right(W, U, b)
    assert "changed its input b in place" in failure(grading.check_rnn_regime, modifies)


# ------------------------------------------------------------------------------------------------
# core helpers
# ------------------------------------------------------------------------------------------------

def test_check_choice():
    core.check_choice("ANSWER", {"a", "C"}, "abcde")
    core.check_choice("ANSWER", "a, c", "abcde", expected={"a", "c"})
    core.check_choice("ANSWER", ["c", "a"], "abcde", expected="ac")
    for bad, words in [(None, "should be a set of letters"), ({"f"}, "not among"), (set(), "empty"),
                       ({1, 2}, "should be a set of letters")]:
        with pytest.raises(GradingFailure, match=words):
            core.check_choice("ANSWER", bad, "abcde")
    with pytest.raises(GradingFailure, match="2 of the 5 statements"):
        core.check_choice("ANSWER", {"a", "b"}, "abcde", expected={"a", "c", "d"})


def test_assert_close_messages():
    e = np.arange(6.0).reshape(2, 3)
    core.assert_close("h", e + 1e-12, e)
    with pytest.raises(GradingFailure, match=r"h has shape \(3, 2\), but it should have shape \(B, H\) = \(2, 3\)"):
        core.assert_close("h", e.T, e, dims="(B, H)")
    with pytest.raises(GradingFailure, match=r"1 of 6 entries are off.*at h\[1, 2\]: you returned 7, expected 5"):
        core.assert_close("h", np.where(e == 5, 7.0, e), e)
    with pytest.raises(GradingFailure, match="NaN"):
        core.assert_close("h", np.where(e == 5, np.nan, e), e)
    with pytest.raises(GradingFailure, match="dtype float64, but the inputs are float32"):
        core.assert_close("h", e, e, dtype=np.float32)
    with pytest.raises(GradingFailure, match="should be a numpy array"):
        core.assert_close("h", "oops", e)
