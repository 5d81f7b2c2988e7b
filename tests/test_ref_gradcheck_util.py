"""The gradient-check utility: cs231n's rel_error, centred differences, and grad_check's report,
which must catch a wrong backward and name the parameter at fault."""

from __future__ import annotations

import numpy as np
import pytest

import gated_lib as gl
from gated_lib.gradcheck import grad_check, numerical_gradient, rel_error


def test_rel_error_is_cs231ns():
    x, y = np.array([1.0, 0.0, 3.0]), np.array([1.1, 0.0, 3.0])
    assert rel_error(x, y) == pytest.approx(0.1 / 2.1)
    assert rel_error(np.zeros(3), np.full(3, 1e-9)) == pytest.approx(1e-9 / 1e-8)   # the 1e-8 floor
    with pytest.raises(ValueError, match="shapes differ"):
        rel_error(np.zeros(2), np.zeros(3))


@pytest.mark.parametrize("order,h,bound", [(2, 1e-5, 1e-9), (4, 1e-3, 1e-11)])
def test_numerical_gradient_accuracy(order, h, bound):
    x = np.linspace(-2, 2, 7)
    g = numerical_gradient(lambda: np.sin(x), x, h=h, order=order)
    assert np.max(np.abs(g - np.cos(x))) < bound
    np.testing.assert_array_equal(x, np.linspace(-2, 2, 7))       # restored after perturbation


def test_five_point_stencil_beats_two_point_at_the_same_step():
    x = np.array([0.7])
    e2 = abs(numerical_gradient(lambda: np.exp(3 * x), x, h=1e-3, order=2)[0] - 3 * np.exp(2.1))
    e4 = abs(numerical_gradient(lambda: np.exp(3 * x), x, h=1e-3, order=4)[0] - 3 * np.exp(2.1))
    assert e4 < e2 / 1000


def lstm_problem(seed=0):
    rng = np.random.default_rng(seed)
    inputs = {k: v * 2 for k, v in gl.init_params("lstm", 3, 2, rng=rng, dtype=np.float64).items()}
    inputs["x"] = rng.standard_normal((4, 2, 3))
    params = [k for k in inputs if k != "x"]

    def forward(d):
        return gl.lstm_forward(d["x"], {k: d[k] for k in params})

    def backward(dout, cache):
        out, (dh, dc) = dout
        return gl.lstm_backward(out, cache, dh, dc)

    return forward, inputs, backward


def test_grad_check_passes_on_the_reference():
    forward, inputs, backward = lstm_problem()
    report = grad_check(forward, inputs, backward)
    assert report.passed and set(report.errors) == set(inputs)
    assert report.worst[1] < 1e-8
    assert "worst:" in str(report) and "weight_hh" in str(report)


@pytest.mark.parametrize("broken,scale", [("weight_hh", 1.01), ("bias_hh", -1.0), ("x", 0.0)])
def test_grad_check_catches_a_wrong_gradient_and_names_it(broken, scale):
    forward, inputs, backward = lstm_problem(1)

    def bad_backward(dout, cache):
        g = backward(dout, cache)
        g[broken] = g[broken] * scale
        return g

    report = grad_check(forward, inputs, bad_backward)
    assert not report.passed
    assert report.worst[0] == broken
    assert set(report.failures()) == {broken}
    with pytest.raises(AssertionError, match=broken):
        report.assert_ok()


def test_grad_check_catches_a_dropped_bptt_term():
    """A backward that forgets dh_prev flows into the previous step (no BPTT through h)."""
    forward, inputs, backward = lstm_problem(2)

    def truncated(dout, cache):
        out, (dh, dc) = dout
        zero_h = gl.lstm_cell_backward((dh + out[-1], dc), cache[-1])
        return {k: zero_h[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")} | {"x": np.zeros_like(inputs["x"])}

    report = grad_check(forward, inputs, truncated)
    assert not report.passed and report.errors["weight_hh"] > 1e-3


def test_grad_check_reports_missing_and_misshapen_gradients():
    forward, inputs, backward = lstm_problem(3)

    def partial(dout, cache):
        g = backward(dout, cache)
        del g["bias_ih"]
        g["x"] = g["x"][:, :1]
        return g

    report = grad_check(forward, inputs, partial)
    assert report.errors["bias_ih"] == float("inf") and "no gradient" in report.notes["bias_ih"]
    assert report.errors["x"] == float("inf") and "shape" in report.notes["x"]
    assert report.errors["weight_ih"] < 1e-7


def test_grad_check_uses_a_random_dout_so_errors_cannot_cancel():
    """With dout = ones, a backward that swaps the gradients of two outputs summing the same would pass;
    grad_check's default random dout exposes it."""
    x0 = np.array([0.3, -0.8])

    def forward(d):
        return np.stack([d["x"][0] * d["x"][1], d["x"][0] + d["x"][1]]), d["x"].copy()

    def backward_swapped(dout, x):
        # correct: [dout0 * x1 + dout1, dout0 * x0 + dout1]; this one swaps dout0 and dout1
        return {"x": np.array([dout[1] * x[1] + dout[0], dout[1] * x[0] + dout[0]])}

    ones = grad_check(forward, {"x": x0.copy()}, backward_swapped, dout=np.ones(2))
    rand = grad_check(forward, {"x": x0.copy()}, backward_swapped)
    assert ones.passed and not rand.passed
