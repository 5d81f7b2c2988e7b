"""Clear errors on bad input: the argument's name, the expected shape and the shape received."""

from __future__ import annotations

import re

import numpy as np
import pytest

import gated_lib as gl
from gated_lib.errors import DTypeError, GatedLibError, NonFiniteError, ShapeError
from gated_lib.rnn import RNN_TANH
from gated_lib.sequence import sequence_backward, sequence_forward

T, B, D, H = 3, 2, 4, 5


@pytest.fixture
def lstm_inputs():
    rng = np.random.default_rng(0)
    p = gl.init_params("lstm", D, H, rng=0, dtype=np.float64)
    return rng.standard_normal((T, B, D)), p, rng.standard_normal((B, H)), rng.standard_normal((B, H))


def message(exc_info):
    return str(exc_info.value)


def test_errors_are_value_errors():
    for cls in (ShapeError, DTypeError, NonFiniteError):
        assert issubclass(cls, GatedLibError) and issubclass(cls, ValueError)


@pytest.mark.parametrize("arg,bad_shape,expected", [
    ("x", (T, D, B), f"x: expected shape (T, B, D) = (T, B, {D}), got ({T}, {D}, {B}); "
                     f"D is fixed by weight_ih, shape ({4 * H}, {D})"),
    ("x", (B, D), f"x: expected shape (T, B, D) = (T, B, {D}), got ({B}, {D})"),
    ("x", (T, B, D + 1), f"x: expected shape (T, B, D) = (T, B, {D}), got ({T}, {B}, {D + 1}); "
                         f"D is fixed by weight_ih, shape ({4 * H}, {D})"),
    ("h0", (H, B), f"h0: expected shape (B, H) = ({B}, {H}), got ({H}, {B})"),
    ("c0", (B, H + 1), f"c0: expected shape (B, H) = ({B}, {H}), got ({B}, {H + 1})"),
])
def test_sequence_shape_messages(lstm_inputs, arg, bad_shape, expected):
    x, p, h0, c0 = lstm_inputs
    args = dict(x=x, h0=h0, c0=c0)
    args[arg] = np.zeros(bad_shape)
    with pytest.raises(ShapeError) as e:
        gl.lstm_forward(args["x"], p, args["h0"], args["c0"])
    assert message(e) == expected


@pytest.mark.parametrize("key,bad_shape,pattern", [
    ("weight_ih", (4 * H, D + 1), re.escape(f"x: expected shape (T, B, D) = (T, B, {D + 1}), got ({T}, {B}, {D}); "
                                            f"D is fixed by weight_ih, shape ({4 * H}, {D + 1})")),
    ("weight_ih", (4 * H + 1, D), re.escape(f"weight_ih: expected shape (4H, D) = ({4 * H}, D), got ({4 * H + 1}, {D})")),
    ("weight_hh", (4 * H + 1, H), r"weight_hh: expected shape \(4H, H\) for the 4 gate\(s\) i, f, g, o"),
    ("weight_hh", (3 * H, H), rf"got \({3 * H}, {H}\)"),
    ("bias_hh", (H,), rf"bias_hh: expected shape \(4H,\) = \({4 * H},\), got \({H},\)"),
])
def test_parameter_shape_messages(lstm_inputs, key, bad_shape, pattern):
    x, p, h0, c0 = lstm_inputs
    p = dict(p, **{key: np.zeros(bad_shape)})
    with pytest.raises(ShapeError, match=pattern):
        gl.lstm_forward(x, p, h0, c0)


def test_cell_shape_messages():
    p = gl.init_params("gru", D, H, rng=0, dtype=np.float64)
    with pytest.raises(ShapeError, match=re.escape(f"h_prev: expected shape (B, H) = ({B}, {H}), got ({B}, {H - 1})")):
        gl.gru_cell_forward(np.zeros((B, D)), np.zeros((B, H - 1)), p)
    with pytest.raises(ShapeError, match=re.escape(f"x: expected shape (B, D) = (B, {D}) (one time step")):
        gl.gru_cell_forward(np.zeros((T, B, D)), np.zeros((B, H)), p)
    with pytest.raises(ShapeError, match="weight_hh: expected shape \\(3H, H\\)"):
        gl.gru_cell_forward(np.zeros((B, D)), np.zeros((B, H)), dict(p, weight_hh=np.zeros((4 * H, H))))


def test_stack_messages_name_the_layer():
    layers = gl.init_stack("lstm", D, H, num_layers=2, bidirectional=True, rng=0, dtype=np.float64)
    layers[3] = dict(layers[3], weight_ih=np.zeros((4 * H, H)))        # layer 1 reads 2H inputs
    with pytest.raises(ShapeError, match=re.escape(f"weight_ih_l1_reverse: expected shape (4H, D) = ({4 * H}, {2 * H})")):
        gl.lstm_forward(np.zeros((T, B, D)), layers, bidirectional=True)
    good = gl.init_stack("lstm", D, H, num_layers=2, rng=0, dtype=np.float64)
    with pytest.raises(ShapeError, match=re.escape(f"h0: expected shape (L*dirs, B, H) = (2, {B}, {H}), got ({B}, {H})")):
        gl.lstm_forward(np.zeros((T, B, D)), good, np.zeros((B, H)))
    with pytest.raises(GatedLibError, match="l0_reverse"):
        gl.lstm_forward(np.zeros((T, B, D)), good[:1] * 3, bidirectional=True)
    with pytest.raises(GatedLibError, match="list of per-layer dicts"):
        gl.lstm_forward(np.zeros((T, B, D)), good[0], bidirectional=True)


def test_empty_sequence(lstm_inputs):
    _, p, _, _ = lstm_inputs
    with pytest.raises(ShapeError, match=r"at least one time step \(T >= 1\).*got T = 0"):
        gl.lstm_forward(np.zeros((0, B, D)), p)
    with pytest.raises(ShapeError, match="T = 0"):
        gl.rnn_forward(np.zeros((0, B, D)), gl.init_params("rnn", D, H, dtype=np.float64))
    with pytest.raises(ShapeError, match="T = 0"):
        gl.gru_forward(np.zeros((0, B, D)), [gl.init_params("gru", D, H, dtype=np.float64)])


def test_mismatched_dtypes(lstm_inputs):
    x, p, h0, c0 = lstm_inputs
    with pytest.raises(DTypeError, match="mismatched dtypes.*x: float32.*weight_ih: float64"):
        gl.lstm_forward(x.astype(np.float32), p)
    p32 = {k: v.astype(np.float32) for k, v in p.items()}
    with pytest.raises(DTypeError, match="h0: float64"):
        gl.lstm_forward(x.astype(np.float32), p32, h0)
    with pytest.raises(DTypeError, match="bias_hh: float32"):
        gl.lstm_forward(x, dict(p, bias_hh=p["bias_hh"].astype(np.float32)))
    with pytest.raises(DTypeError, match="complex"):
        gl.lstm_forward(x.astype(np.complex128), p)


@pytest.mark.parametrize("where", ["x", "h0", "c0", "weight_hh", "bias_ih"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_inputs(lstm_inputs, where, bad):
    x, p, h0, c0 = lstm_inputs
    args = dict(x=x.copy(), h0=h0.copy(), c0=c0.copy())
    p = {k: v.copy() for k, v in p.items()}
    target = args[where] if where in args else p[where]
    target.flat[1] = bad
    with pytest.raises(NonFiniteError, match=rf"{where}: contains NaN or inf \(first at index"):
        gl.lstm_forward(args["x"], p, args["h0"], args["c0"])


def test_backward_checks_dout(lstm_inputs):
    x, p, h0, c0 = lstm_inputs
    (out, _), cache = gl.lstm_forward(x, p, h0, c0)
    with pytest.raises(ShapeError, match=re.escape(f"dout: expected shape (T, B, H) = ({T}, {B}, {H}), got ({T}, {B}, {H + 1})")):
        gl.lstm_backward(np.zeros((T, B, H + 1)), cache)
    with pytest.raises(ShapeError, match="dc_n"):
        gl.lstm_backward(np.zeros_like(out), cache, None, np.zeros((B, H + 2)))
    bad = np.zeros_like(out)
    bad[0, 0, 0] = np.nan
    with pytest.raises(NonFiniteError, match="dout"):
        gl.lstm_backward(bad, cache)
    (_, _), step = gl.lstm_cell_forward(x[0], h0, c0, p)
    with pytest.raises(ShapeError, match="dh"):
        gl.lstm_cell_backward((np.zeros((B + 1, H)), None), step)


def test_parameter_name_errors(lstm_inputs):
    x, p, _, _ = lstm_inputs
    with pytest.raises(GatedLibError, match=r"unexpected parameter\(s\) \['bias_hn'\]"):
        gl.lstm_forward(x, dict(p, bias_hn=p["bias_hh"]))
    with pytest.raises(GatedLibError, match="missing 'weight_hh'"):
        gl.lstm_forward(x, {k: v for k, v in p.items() if k != "weight_hh"})
    with pytest.raises(GatedLibError, match="not both"):
        gl.lstm_forward(x, dict(p, bias=p["bias_ih"]))
    with pytest.raises(GatedLibError, match="missing 'weight_co'"):
        gl.peephole_lstm_forward(x, dict(p, weight_ci=np.zeros(H), weight_cf=np.zeros(H)))
    with pytest.raises(GatedLibError, match="expected a dict"):
        gl.lstm_forward(x, np.zeros(3))
    with pytest.raises(GatedLibError, match="weight_hr"):
        gl.gru_forward(x, dict(gl.init_params("gru", D, H, dtype=np.float64), weight_hr=np.zeros((2, H))))


def test_option_errors():
    x = np.zeros((T, B, D))
    with pytest.raises(GatedLibError, match="nonlinearity"):
        gl.rnn_forward(x, gl.init_params("rnn", D, H, dtype=np.float64), nonlinearity="sigmoid")
    with pytest.raises(GatedLibError, match="convention"):
        gl.gru_forward(x, gl.init_params("gru", D, H, dtype=np.float64), convention="keras")
    with pytest.raises(GatedLibError, match="unknown cell"):
        gl.param_count("lstmp", 3, 4)
    with pytest.raises(GatedLibError, match="non-negative integer"):
        gl.param_count("lstm", 3.5, 4)
    rnn_params = gl.init_params("rnn", D, H, dtype=np.float64)
    (_, _), rnn_cache = gl.rnn_forward(x, rnn_params)
    with pytest.raises(GatedLibError, match="no cell state"):
        sequence_backward(np.zeros((T, B, H)), rnn_cache, None, np.zeros((B, H)))
    with pytest.raises(GatedLibError, match="no cell state"):
        sequence_forward(RNN_TANH, x, rnn_params, None, np.zeros((B, H)))


def test_jacobian_and_lag_errors(lstm_inputs):
    x, p, _, _ = lstm_inputs
    (_, _), cache = gl.lstm_forward(x, p)
    with pytest.raises(GatedLibError, match="direct"):
        gl.gradient_norm_over_lag(cache, "h", "direct")
    with pytest.raises(GatedLibError, match="ord"):
        gl.gradient_norm_over_lag(cache, "c", "full", ord=1)
    with pytest.raises(GatedLibError, match="step cache of a GRU step"):
        gl.gru_step_jacobian(cache[0])
    with pytest.raises(ShapeError, match="weight_hh: expected shape \\(H, H\\)"):
        gl.rnn_step_jacobian(np.zeros((B, H)), np.zeros((H, H + 1)))
    stack = gl.lstm_forward(x, [p])[1]
    with pytest.raises(GatedLibError, match="one layer"):
        gl.gradient_norm_over_lag(stack, "c")


def test_grad_check_needs_float64():
    with pytest.raises(TypeError, match="float64"):
        gl.grad_check(lambda d: (d["x"], None), {"x": np.zeros(3, np.float32)}, lambda dout, c: {"x": dout})
