"""The variant checkers of gated_lib.grading (exercise 6): they accept every correct solution and name every bug.

The correct learner solutions below are written the way a learner writes them (not through gated_lib), so a
passing test says something about the checker, not about the reference it compares with. The buggy ones
are gated_lib.grading.variants.variant_cell with one mutation; they run with the reference ban lifted
(variant_cell lives in gated_lib), which is tested on its own.
"""

from __future__ import annotations

import numpy as np
import pytest

import gated_lib.variants as ref
from gated_lib.grading import variants as grading
from gated_lib.grading.core import GradingFailure, transposable

HIDDEN = dict(fixed=False, n_random=4, edge_sizes=True, saturate=True, dtypes=("float32", "float64"))
CHECKS = {"peephole": grading.check_peephole_cell_forward, "cifg": grading.check_cifg_cell_forward}


def failure(check, fn, **kwargs) -> str:
    with pytest.raises(GradingFailure) as info:
        check(fn, **kwargs)
    return str(info.value)


def stable_sigmoid(a):
    return np.exp(-np.logaddexp(0.0, -a)).astype(a.dtype)


def naive_sigmoid(a):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-a))


# ------------------------------------------------------------------------------------------------
# Correct learners' cells
# ------------------------------------------------------------------------------------------------

def peephole_fused(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh, weight_ci, weight_cf, weight_co):
    H = h_prev.shape[1]
    a = x @ weight_ih.T + h_prev @ weight_hh.T + bias_ih + bias_hh
    i = stable_sigmoid(a[:, :H] + weight_ci * c_prev)
    f = stable_sigmoid(a[:, H:2 * H] + weight_cf * c_prev)
    c = f * c_prev + i * np.tanh(a[:, 2 * H:3 * H])
    o = stable_sigmoid(a[:, 3 * H:] + weight_co * c)
    return o * np.tanh(c), c


def peephole_per_gate(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh, weight_ci, weight_cf, weight_co):
    """A loop over the gate blocks, column-vector products, a naive sigmoid, np.diag for the peepholes."""
    H = h_prev.shape[1]
    pre = []
    for k in range(4):
        rows = slice(k * H, (k + 1) * H)
        pre.append((np.dot(weight_ih[rows], x.T) + np.dot(weight_hh[rows], h_prev.T)).T + bias_ih[rows] + bias_hh[rows])
    a_i, a_f, a_g, a_o = pre
    i = naive_sigmoid(a_i + c_prev @ np.diag(weight_ci))
    f = naive_sigmoid(a_f + c_prev @ np.diag(weight_cf))
    c = f * c_prev + i * np.tanh(a_g)
    o = naive_sigmoid(a_o + c @ np.diag(weight_co))
    return o * np.tanh(c), c


def cifg_float64_inside(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """Computes in float64 whatever comes in, casts back; writes the update as c_prev + i * (g - c_prev)."""
    dtype = x.dtype
    x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh = (
        np.asarray(v, np.float64) for v in (x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh))
    H = h_prev.shape[1]
    a = x @ weight_ih.T + h_prev @ weight_hh.T + bias_ih + bias_hh
    i, g, o = stable_sigmoid(a[:, :H]), np.tanh(a[:, H:2 * H]), stable_sigmoid(a[:, 2 * H:])
    c = c_prev + i * (g - c_prev)
    return (o * np.tanh(c)).astype(dtype), c.astype(dtype)


def cifg_fused(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    H = h_prev.shape[1]
    a = x @ weight_ih.T + h_prev @ weight_hh.T + bias_ih + bias_hh
    i, g, o = stable_sigmoid(a[:, :H]), np.tanh(a[:, H:2 * H]), stable_sigmoid(a[:, 2 * H:])
    c = (1 - i) * c_prev + i * g
    return o * np.tanh(c), c


@pytest.mark.parametrize("fn", [peephole_fused, peephole_per_gate])
def test_correct_peephole_cells_pass_every_case(fn, capsys):
    grading.check_peephole_cell_forward(fn)
    grading.check_peephole_cell_forward(fn, seed=5, **HIDDEN)
    assert "all 20 cases pass" in capsys.readouterr().out


@pytest.mark.parametrize("fn", [cifg_fused, cifg_float64_inside])
def test_correct_cifg_cells_pass_every_case(fn, capsys):
    grading.check_cifg_cell_forward(fn)
    grading.check_cifg_cell_forward(fn, seed=6, **HIDDEN)
    assert "all 20 cases pass" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["peephole", "cifg"])
def test_the_independent_cell_is_the_reference(kind):
    """variant_cell (the diagnoses' engine) and gated_lib.variants agree, saturated gates included."""
    fwd = ref.peephole_lstm_cell_forward if kind == "peephole" else ref.cifg_lstm_cell_forward
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") + (
        ("weight_ci", "weight_cf", "weight_co") if kind == "peephole" else ())
    for case in grading.variant_cases(kind, 3, n_random=5, edge_sizes=True, saturate=True, dtypes=("float64",)):
        a = case.arrays
        (h, c), _ = fwd(a["x"], a["h_prev"], a["c_prev"], {k: a[k] for k in names})
        h2, c2 = grading.variant_cell(kind, a["x"], a["h_prev"], a["c_prev"], *[a[k] for k in names])
        np.testing.assert_allclose(h2, h, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(c2, c, rtol=1e-12, atol=1e-14)


def test_peephole_without_peepholes_is_the_lstm():
    import gated_lib.lstm as lstm

    case = grading.variant_cases("peephole", 1, dtypes=("float64",))[0].arrays
    zero = np.zeros(case["weight_hh"].shape[1])
    base = {k: case[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    (h, c), _ = lstm.lstm_cell_forward(case["x"], case["h_prev"], case["c_prev"], base)
    h2, c2 = grading.variant_cell("peephole", case["x"], case["h_prev"], case["c_prev"], *base.values(), zero, zero, zero)
    np.testing.assert_allclose(h2, h, rtol=1e-12)
    np.testing.assert_allclose(c2, c, rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# Buggy cells: every mutation is caught and named
# ------------------------------------------------------------------------------------------------

def mutant(kind, order=None, bugs=(), swap=False):
    def fn(x, h_prev, c_prev, *params):
        D, H = x.shape[1], h_prev.shape[1]
        active = [b for b in bugs if transposable(b, D, H)]
        h, c = grading.variant_cell(kind, x, h_prev, c_prev, *params, order=order, bugs=active)
        h, c = h.astype(x.dtype), c.astype(x.dtype)
        return (c, h) if swap else (h, c)
    return fn


def _bug_ids(kind):
    return [(kind, b) for b in {**grading.COMMON_BUGS, **(grading.PEEPHOLE_BUGS if kind == "peephole"
                                                          else grading.CIFG_BUGS)}]


@pytest.mark.parametrize("kind,bug", _bug_ids("peephole") + _bug_ids("cifg"))
def test_every_mutation_is_diagnosed(kind, bug, monkeypatch):
    monkeypatch.setattr(grading, "FORBID", None)
    msg = failure(CHECKS[kind], mutant(kind, bugs=(bug,)))
    text = grading._bugs_of(kind)[bug]
    assert "Diagnosis" in msg and text in msg, msg


@pytest.mark.parametrize("kind,order", [("peephole", "figo"), ("peephole", "igfo"), ("peephole", "ifog"),
                                        ("cifg", "iog"), ("cifg", "gio")])
def test_gate_order_is_diagnosed(kind, order, monkeypatch):
    monkeypatch.setattr(grading, "FORBID", None)
    msg = failure(CHECKS[kind], mutant(kind, order=order))
    assert f"the gate blocks read in the order {', '.join(order)}" in msg, msg


def test_two_mistakes_and_a_swapped_pair_are_named(monkeypatch):
    monkeypatch.setattr(grading, "FORBID", None)
    msg = failure(grading.check_peephole_cell_forward, mutant("peephole", bugs=("o_peeks_c_prev", "no_bias")))
    assert "two mistakes" in msg and "peeks at c_prev" in msg and "without bias" in msg, msg
    msg = failure(grading.check_cifg_cell_forward, mutant("cifg", swap=True))
    assert "return (h, c)" in msg, msg


# ------------------------------------------------------------------------------------------------
# Everything else a learner can get wrong
# ------------------------------------------------------------------------------------------------

def test_calling_the_reference_fails_and_names_it():
    def calls_ref(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh, weight_ci, weight_cf, weight_co):
        (h, c), _ = ref.peephole_lstm_cell_forward(x, h_prev, c_prev, dict(
            weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh,
            weight_ci=weight_ci, weight_cf=weight_cf, weight_co=weight_co))
        return h, c

    msg = failure(grading.check_peephole_cell_forward, calls_ref)
    assert "calls gated_lib.variants.peephole_lstm_cell_forward" in msg
    assert "a reference implementation of what this exercise asks you to write" in msg

    def calls_torch_path(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        import torch
        from gated_lib.nn import Cell
        cell = Cell("cifg_lstm", x.shape[1], h_prev.shape[1]).double()
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(torch.from_numpy(np.asarray(locals()[name], np.float64)))
            h, c = cell(torch.from_numpy(x.astype(np.float64)), (torch.from_numpy(h_prev.astype(np.float64)),
                                                                  torch.from_numpy(c_prev.astype(np.float64))))
        return h.numpy().astype(x.dtype), c.numpy().astype(x.dtype)

    pytest.importorskip("torch")
    msg = failure(grading.check_cifg_cell_forward, calls_torch_path)
    assert "calls gated_lib.nn" in msg, msg


def test_untransposed_fused_weights_raise_with_the_shapes():
    def no_T(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        a = x @ weight_ih + h_prev @ weight_hh + bias_ih + bias_hh
        return a, a

    msg = failure(grading.check_cifg_cell_forward, no_T)
    assert "raised ValueError" in msg and "weight_ih (3H, D) = (12, 3)" in msg and "(B, 3H)" in msg, msg


def test_dtype_and_in_place_changes_are_reported():
    def float64_out(x, h_prev, c_prev, *p):
        h, c = cifg_fused(x, h_prev, c_prev, *p)
        return h.astype(np.float64), c.astype(np.float64)

    msg = failure(grading.check_cifg_cell_forward, float64_out, fixed=False, n_random=1, dtypes=("float32",))
    assert "dtype float64, but the inputs are float32" in msg, msg

    def in_place(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh, weight_ci, weight_cf, weight_co):
        h, c = peephole_fused(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh, weight_ci, weight_cf, weight_co)
        c_prev[:] = c
        return h, c

    msg = failure(grading.check_peephole_cell_forward, in_place)
    assert "changed its input c_prev in place" in msg, msg


def test_naive_sigmoid_nan_is_reported_on_saturated_gates():
    def nan_sigmoid(a):
        with np.errstate(all="ignore"):
            return np.exp(a) / (1 + np.exp(a))

    def cell(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        H = h_prev.shape[1]
        a = x @ weight_ih.T + h_prev @ weight_hh.T + bias_ih + bias_hh
        i, g, o = nan_sigmoid(a[:, :H]), np.tanh(a[:, H:2 * H]), nan_sigmoid(a[:, 2 * H:])
        c = (1 - i) * c_prev + i * g
        return o * np.tanh(c), c

    grading.check_cifg_cell_forward(cell)                     # fine on the visible cases
    msg = failure(grading.check_cifg_cell_forward, cell, fixed=False, saturate=True)
    assert "NaN/inf" in msg and "stable sigmoid" in msg, msg


def test_wrong_return_shape_is_explained():
    msg = failure(grading.check_cifg_cell_forward, lambda *a: cifg_fused(*a)[0])
    assert "should return a pair (h, c)" in msg, msg
