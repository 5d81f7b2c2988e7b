"""Property tests (hypothesis): gate ranges, state bounds, shapes for any sizes, documented errors.

Inputs and weights are drawn from [-1, 1] so that pre-activations stay within the range where a
float64 sigmoid is strictly inside (0, 1) (|a| < 36); the properties are then exact statements.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gated_lib as gl
from gated_lib.errors import DTypeError, NonFiniteError, ShapeError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
size = st.integers(1, 6)
seed = st.integers(0, 2**32 - 1)

# name -> (has_c, sequence forward(x, p, h0, c0, **kw), sequence backward, gates in (0, 1), candidates in (-1, 1))
CELLS = {
    "rnn_tanh": (False, lambda x, p, h0, c0, **kw: gl.rnn_forward(x, p, h0, **kw), gl.rnn_backward, (), ()),
    "rnn_relu": (False, lambda x, p, h0, c0, **kw: gl.rnn_forward(x, p, h0, "relu", **kw), gl.rnn_backward, (), ()),
    "lstm": (True, gl.lstm_forward, gl.lstm_backward, ("i", "f", "o"), ("g",)),
    "gru": (False, lambda x, p, h0, c0, **kw: gl.gru_forward(x, p, h0, **kw), gl.gru_backward, ("r", "z"), ("n",)),
    "gru_cho": (False, lambda x, p, h0, c0, **kw: gl.gru_forward(x, p, h0, "cho", **kw), gl.gru_backward, ("r", "z"), ("n",)),
    "nfg_lstm": (True, gl.nfg_lstm_forward, gl.nfg_lstm_backward, ("i", "o"), ("g",)),
    "peephole_lstm": (True, gl.peephole_lstm_forward, gl.peephole_lstm_backward, ("i", "f", "o"), ("g",)),
    "cifg_lstm": (True, gl.cifg_lstm_forward, gl.cifg_lstm_backward, ("i", "o"), ("g",)),
    "noaf_lstm": (True, gl.noaf_lstm_forward, gl.noaf_lstm_backward, ("i", "f", "o"), ("g",)),
    "mgu": (False, lambda x, p, h0, c0, **kw: gl.mgu_forward(x, p, h0, **kw), gl.mgu_backward, ("f",), ("n",)),
}
cell_name = st.sampled_from(sorted(CELLS))


def draw(name, T, B, D, H, s, dtype=np.float64):
    rng = np.random.default_rng(s)
    p = gl.init_params(name, D, H, rng=rng, dtype=dtype)
    p = {k: rng.uniform(-1, 1, v.shape).astype(dtype) for k, v in p.items()}
    x = rng.uniform(-1, 1, (T, B, D)).astype(dtype)
    h0 = rng.uniform(-1, 1, (B, H)).astype(dtype)
    c0 = rng.uniform(-1, 1, (B, H)).astype(dtype)
    return x, p, h0, c0


@SETTINGS
@given(name=st.sampled_from(sorted(k for k, v in CELLS.items() if v[3])), T=size, B=size, D=size, H=size, s=seed)
def test_gates_in_open_unit_interval_and_candidates_in_open_minus_one_one(name, T, B, D, H, s):
    has_c, fwd, _, gates, candidates = CELLS[name]
    x, p, h0, c0 = draw(name, T, B, D, H, s)
    (_, _), cache = fwd(x, p, h0, c0 if has_c else None)
    assert len(cache) == T and all(g in cache[0] for g in gates + candidates)
    for step in cache:
        for g in gates:
            assert np.all((step[g] > 0) & (step[g] < 1)), g
        for g in candidates:
            assert np.all((step[g] > -1) & (step[g] < 1)), g


@SETTINGS
@given(name=st.sampled_from(["lstm", "peephole_lstm", "nfg_lstm", "cifg_lstm"]), T=size, B=size, D=size, H=size, s=seed)
def test_lstm_hidden_state_bounded_and_cell_grows_at_most_linearly(name, T, B, D, H, s):
    _, fwd, _, _, _ = CELLS[name]
    x, p, h0, c0 = draw(name, T, B, D, H, s)
    (out, (h_n, c_n)), cache = fwd(x, p, h0, c0)
    assert np.all(np.abs(out) <= 1)
    # |c_t| <= f |c_{t-1}| + i |g| < |c_{t-1}| + 1
    assert np.all(np.abs(c_n) < np.abs(c0) + T)


@SETTINGS
@given(name=st.sampled_from(["gru", "gru_cho", "mgu"]), T=size, B=size, D=size, H=size, s=seed)
def test_gru_state_is_a_convex_combination(name, T, B, D, H, s):
    _, fwd, _, _, _ = CELLS[name]
    x, p, h0, _ = draw(name, T, B, D, H, s)
    (_, _), cache = fwd(x, p, h0, None)
    for step in cache:
        lo = np.minimum(step["h_prev"], step["n"]) - 1e-15
        hi = np.maximum(step["h_prev"], step["n"]) + 1e-15
        assert np.all((step["h"] >= lo) & (step["h"] <= hi))


@SETTINGS
@given(name=cell_name, T=size, B=size, D=size, H=size, L=st.integers(1, 3), bidirectional=st.booleans(),
       s=seed, as_dict=st.booleans())
def test_shapes_hold_for_any_sizes(name, T, B, D, H, L, bidirectional, s, as_dict):
    has_c, fwd, bwd, _, _ = CELLS[name]
    rng = np.random.default_rng(s)
    x = rng.uniform(-1, 1, (T, B, D))
    if as_dict:
        params, dirs, L = gl.init_params(name, D, H, rng=rng, dtype=np.float64), 1, 1
        state_shape, kw = (B, H), {}
    else:
        dirs = 2 if bidirectional else 1
        params = gl.init_stack(name, D, H, L, bidirectional, rng=rng, dtype=np.float64)
        state_shape, kw = (L * dirs, B, H), {"bidirectional": bidirectional}
    (out, fin), cache = fwd(x, params, None, None, **kw)
    assert out.shape == (T, B, dirs * H)
    for f in (fin if has_c else (fin,)):
        assert f.shape == state_shape
    grads = bwd(np.ones_like(out), cache)
    assert grads["x"].shape == x.shape
    assert grads["h0"].shape == state_shape
    if has_c:
        assert grads["c0"].shape == state_shape
    named = {k: v for k, v in params.items()} if as_dict else {
        f"{n}_l{k // dirs}{'_reverse' if k % dirs else ''}": v for k, p in enumerate(params) for n, v in p.items()}
    assert set(grads) - {"x", "h0", "c0"} == set(named)
    for k, v in named.items():
        assert grads[k].shape == v.shape, k


ARGS = ["x", "h0", "c0", "weight_ih", "weight_hh", "bias_ih", "bias_hh"]


@SETTINGS
@given(name=cell_name, arg=st.sampled_from(ARGS), axis=st.integers(0, 2), delta=st.sampled_from([-1, 1, 2]),
       T=size, B=size, D=size, H=size, s=seed)
def test_a_wrong_shape_raises_shape_error_naming_the_argument(name, arg, axis, delta, T, B, D, H, s):
    has_c, fwd, _, _, _ = CELLS[name]
    if arg == "c0" and not has_c:
        arg = "h0"
    x, p, h0, c0 = draw(name, T, B, D, H, s)
    args = {"x": x, "h0": h0, "c0": c0, **p}
    shape = list(args[arg].shape)
    axis = axis % len(shape)
    if shape[axis] + delta < 1:
        delta = 1
    shape[axis] += delta
    args[arg] = np.zeros(shape)
    params = {k: args[k] for k in p}
    if arg == "x" and axis == 0:          # any T >= 1 is valid: not an error, and out follows it
        (out, _), _ = fwd(args["x"], params, args["h0"], args["c0"] if has_c else None)
        assert out.shape[0] == shape[0]
        return
    if arg == "x" and axis == 1:          # x fixes B, so the states are then the wrong size
        with pytest.raises(ShapeError, match=rf"^h0: expected shape \(B, H\) = \({shape[1]}, {H}\)"):
            fwd(args["x"], params, args["h0"], args["c0"] if has_c else None)
        return
    with pytest.raises(ShapeError) as e:
        fwd(args["x"], params, args["h0"], args["c0"] if has_c else None)
    msg = str(e.value)
    received = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
    # The message names the argument at fault (or, for a D mismatch, both x and weight_ih) and the
    # shape received.
    assert msg.startswith(f"{arg}:") or (arg in ("x", "weight_ih") and "D is fixed by weight_ih" in msg) \
        or (arg == "weight_hh" and msg.startswith("weight_hh")), msg
    assert "expected shape" in msg or "expected at least one" in msg
    assert received in msg or "D is fixed by weight_ih" in msg, msg


@SETTINGS
@given(name=cell_name, T=size, B=size, D=size, H=size, s=seed, where=st.integers(0, 10_000),
       bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_non_finite_input_raises(name, T, B, D, H, s, where, bad):
    has_c, fwd, _, _, _ = CELLS[name]
    x, p, h0, c0 = draw(name, T, B, D, H, s)
    x.flat[where % x.size] = bad
    with pytest.raises(NonFiniteError, match="x: contains NaN or inf"):
        fwd(x, p, h0, c0 if has_c else None)


@SETTINGS
@given(name=cell_name, B=size, D=size, H=size, s=seed)
def test_empty_sequence_raises(name, B, D, H, s):
    has_c, fwd, _, _, _ = CELLS[name]
    x, p, h0, c0 = draw(name, 1, B, D, H, s)
    with pytest.raises(ShapeError, match="T = 0"):
        fwd(x[:0], p, h0, c0 if has_c else None)


@SETTINGS
@given(name=cell_name, s=seed, which=st.sampled_from(["x", "h0", "weight_hh"]))
def test_mixed_dtypes_raise(name, s, which):
    has_c, fwd, _, _, _ = CELLS[name]
    x, p, h0, c0 = draw(name, 2, 2, 3, 2, s)
    args = {"x": x, "h0": h0, **p}
    args[which] = args[which].astype(np.float32)
    with pytest.raises(DTypeError, match="mismatched dtypes"):
        fwd(args["x"], {k: args[k] for k in p}, args["h0"], c0 if has_c else None)


@pytest.mark.parametrize("x", [np.float64(3.0), np.array(-2.0), np.float32(-80.0), 0, np.ones((2, 3))])
def test_sigmoid_keeps_shape_and_float_dtype_for_scalars_too(x):
    from gated_lib.activations import sigmoid

    got = sigmoid(x)
    arr = np.asarray(x)
    assert got.shape == arr.shape
    assert got.dtype == (arr.dtype if arr.dtype.kind == "f" else np.float64)
    np.testing.assert_allclose(got, 1.0 / (1.0 + np.exp(-arr.astype(np.float64))), rtol=1e-6, atol=1e-30)
