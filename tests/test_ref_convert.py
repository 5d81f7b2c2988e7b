"""Weight conversions: round trips, and converted weights give the same outputs.

torch is compared by loading converted state_dicts into torch.nn modules. Coursera and Keras are not
dependencies, so their forward passes are written here from their published equations (column batch
and [a_prev; x] for Coursera; kernel / recurrent_kernel with gate orders i,f,c,o and z,r,h for Keras).
"""

from __future__ import annotations

import numpy as np
import pytest

import gated_lib as gl
from gated_lib import convert

torch = pytest.importorskip("torch")

T, B, D, H = 5, 3, 4, 6
TOL = 1e-12


def sig(a):
    return 1 / (1 + np.exp(-a))


def rand_params(rng, G, scale=0.5):
    return {"weight_ih": scale * rng.standard_normal((G * H, D)), "weight_hh": scale * rng.standard_normal((G * H, H)),
            "bias_ih": scale * rng.standard_normal(G * H), "bias_hh": scale * rng.standard_normal(G * H)}


# ----------------------------------------------------------------------------------------------------
# torch
# ----------------------------------------------------------------------------------------------------

TORCH_CASES = [
    ("LSTM", dict(num_layers=1)), ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(num_layers=2, proj_size=2)), ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=3, bias=False)),
    ("GRU", dict(num_layers=3)), ("GRU", dict(num_layers=2, bidirectional=True, bias=False)),
    ("RNN", dict(num_layers=2, bidirectional=True)), ("RNN", dict(num_layers=1, nonlinearity="relu")),
]


def ours_forward(kind, x, layers, h0, c0, module):
    bd = module.bidirectional
    if kind == "LSTM":
        return gl.lstm_forward(x, layers, h0, c0, bidirectional=bd)[0]
    if kind == "GRU":
        return gl.gru_forward(x, layers, h0, bidirectional=bd)[0]
    return gl.rnn_forward(x, layers, h0, module.nonlinearity, bidirectional=bd)[0]


@pytest.mark.parametrize("kind,kw", TORCH_CASES, ids=lambda v: str(v))
def test_torch_round_trip_and_outputs(kind, kw):
    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(D, H, **kw).double()
    layers = convert.from_torch(module)
    info = convert.torch_layout(module)
    dirs = 2 if module.bidirectional else 1
    assert info["num_layers"] == module.num_layers and info["bidirectional"] == module.bidirectional
    assert info["proj_size"] == module.proj_size and info["bias"] == module.bias
    assert info["hidden_size"] == H and info["input_size"] == D
    assert len(layers) == module.num_layers * dirs

    sd = convert.to_torch(layers, bidirectional=module.bidirectional)
    assert list(sd) == list(module.state_dict())          # same keys, same order
    for k, v in module.state_dict().items():
        np.testing.assert_array_equal(sd[k], v.numpy())

    fresh = getattr(torch.nn, kind)(D, H, **kw).double()
    fresh.load_state_dict(convert.to_torch(layers, bidirectional=module.bidirectional, tensors=True))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, D))
    R = module.proj_size or H
    h0 = rng.standard_normal((module.num_layers * dirs, B, R))
    c0 = rng.standard_normal((module.num_layers * dirs, B, H))
    xt = torch.tensor(x)
    state = (torch.tensor(h0), torch.tensor(c0)) if kind == "LSTM" else torch.tensor(h0)
    a = module(xt, state)[0].detach().numpy()
    b = fresh(xt, state)[0].detach().numpy()
    np.testing.assert_array_equal(a, b)
    out, _ = ours_forward(kind, x, layers, h0, c0, module)
    np.testing.assert_allclose(out, a, atol=1e-10, rtol=0)


def test_to_torch_single_bias_and_single_dict():
    rng = np.random.default_rng(2)
    p = rand_params(rng, 4)
    single = {"weight_ih": p["weight_ih"], "weight_hh": p["weight_hh"], "bias": p["bias_ih"] + p["bias_hh"]}
    sd = convert.to_torch(single)
    np.testing.assert_array_equal(sd["bias_ih_l0"], single["bias"])
    np.testing.assert_array_equal(sd["bias_hh_l0"], 0)
    x = rng.standard_normal((T, B, D))
    np.testing.assert_allclose(gl.lstm_forward(x, convert.from_torch(sd)[0])[0][0],
                               gl.lstm_forward(x, p)[0][0], atol=TOL)


def test_torch_conversion_errors():
    with pytest.raises(gl.GatedLibError, match="unexpected key 'lstm.weight_ih_l0'"):
        convert.from_torch({"lstm.weight_ih_l0": np.zeros((4, 1))})
    with pytest.raises(gl.GatedLibError, match="_l1"):
        convert.from_torch({"weight_ih_l0": np.zeros((4, 1)), "weight_ih_l2": np.zeros((4, 1))})
    with pytest.raises(gl.GatedLibError, match="weight_ci"):
        convert.to_torch(gl.init_params("peephole_lstm", 2, 3))
    with pytest.raises(gl.GatedLibError, match="2 dict"):
        convert.to_torch([gl.init_params("lstm", 2, 3)] * 3, bidirectional=True)


def test_state_dict_passed_to_a_cell_names_the_fix():
    sd = convert.to_torch(gl.init_params("lstm", 2, 3, dtype=np.float64))
    with pytest.raises(gl.GatedLibError, match="from_torch"):
        gl.lstm_forward(np.zeros((2, 1, 2)), sd)


# ----------------------------------------------------------------------------------------------------
# Coursera
# ----------------------------------------------------------------------------------------------------

def softmax(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def coursera_lstm_forward(x, a0, parameters):
    """The Coursera assignment's lstm_forward: x (n_x, m, T_x), a0 (n_a, m)."""
    n_x, m, T_x = x.shape
    n_a = a0.shape[0]
    a = np.zeros((n_a, m, T_x))
    c = np.zeros((n_a, m, T_x))
    y = np.zeros((parameters["Wy"].shape[0], m, T_x))
    a_next, c_next = a0, np.zeros_like(a0)
    for t in range(T_x):
        concat = np.concatenate([a_next, x[:, :, t]], axis=0)
        ft = sig(parameters["Wf"] @ concat + parameters["bf"])
        it = sig(parameters["Wi"] @ concat + parameters["bi"])
        cct = np.tanh(parameters["Wc"] @ concat + parameters["bc"])
        c_next = ft * c_next + it * cct
        ot = sig(parameters["Wo"] @ concat + parameters["bo"])
        a_next = ot * np.tanh(c_next)
        a[:, :, t], c[:, :, t] = a_next, c_next
        y[:, :, t] = softmax(parameters["Wy"] @ a_next + parameters["by"])
    return a, y, c


def coursera_rnn_forward(x, a0, parameters):
    n_x, m, T_x = x.shape
    a = np.zeros((a0.shape[0], m, T_x))
    y = np.zeros((parameters["Wya"].shape[0], m, T_x))
    a_next = a0
    for t in range(T_x):
        a_next = np.tanh(parameters["Wax"] @ x[:, :, t] + parameters["Waa"] @ a_next + parameters["ba"])
        a[:, :, t] = a_next
        y[:, :, t] = softmax(parameters["Wya"] @ a_next + parameters["by"])
    return a, y


def test_coursera_lstm_outputs_and_round_trip():
    rng = np.random.default_rng(3)
    p = rand_params(rng, 4)
    head = {"weight": rng.standard_normal((2, H)), "bias": rng.standard_normal(2)}
    c = convert.to_coursera_lstm(p, head)
    assert list(c) == ["Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo", "Wy", "by"]
    assert c["Wf"].shape == (H, H + D) and c["bf"].shape == (H, 1) and c["by"].shape == (2, 1)
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H))
    (out, (h_n, c_n)), _ = gl.lstm_forward(x, p, h0)
    a, y, cc = coursera_lstm_forward(convert.to_coursera_sequence(x), h0.T, c)
    np.testing.assert_allclose(convert.from_coursera_sequence(a), out, atol=TOL)
    np.testing.assert_allclose(cc[:, :, -1].T, c_n, atol=TOL)
    np.testing.assert_allclose(y, softmax(np.einsum("yh,thb->ytb", head["weight"], out.transpose(0, 2, 1))
                                          + head["bias"][:, None, None]).transpose(0, 2, 1), atol=TOL)

    back, head2 = convert.from_coursera_lstm(c)
    np.testing.assert_allclose(back["bias_ih"], p["bias_ih"] + p["bias_hh"], atol=0)     # biases summed
    np.testing.assert_array_equal(back["bias_hh"], 0)                                     # and zeros
    np.testing.assert_array_equal(back["weight_ih"], p["weight_ih"])
    np.testing.assert_array_equal(back["weight_hh"], p["weight_hh"])
    np.testing.assert_array_equal(head2["weight"], head["weight"])
    np.testing.assert_allclose(gl.lstm_forward(x, back, h0)[0][0], out, atol=TOL)
    again = convert.to_coursera_lstm(back, head2)
    assert all(np.array_equal(again[k], c[k]) for k in c)


def test_coursera_rnn_outputs_and_round_trip():
    rng = np.random.default_rng(4)
    p = rand_params(rng, 1)
    head = {"weight": rng.standard_normal((3, H)), "bias": rng.standard_normal(3)}
    c = convert.to_coursera_rnn(p, head)
    assert c["Wax"].shape == (H, D) and c["Waa"].shape == (H, H) and c["ba"].shape == (H, 1)
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H))
    (out, _), _ = gl.rnn_forward(x, p, h0)
    a, _ = coursera_rnn_forward(convert.to_coursera_sequence(x), h0.T, c)
    np.testing.assert_allclose(convert.from_coursera_sequence(a), out, atol=TOL)
    back, head2 = convert.from_coursera_rnn(c)
    np.testing.assert_allclose(gl.rnn_forward(x, back, h0)[0][0], out, atol=TOL)
    assert all(np.array_equal(convert.to_coursera_rnn(back, head2)[k], c[k]) for k in c)


def test_coursera_errors_and_sequence_layout():
    with pytest.raises(gl.GatedLibError, match="Wo"):
        convert.from_coursera_lstm({k: np.zeros((2, 3)) for k in ("Wf", "Wi", "Wc")})
    bad = convert.to_coursera_lstm(rand_params(np.random.default_rng(0), 4))
    bad["Wc"] = bad["Wc"][:, :-1]
    with pytest.raises(gl.ShapeError, match="Wc: expected shape"):
        convert.from_coursera_lstm(bad)
    x = np.arange(24.0).reshape(2, 3, 4)
    assert convert.to_coursera_sequence(x).shape == (4, 3, 2)
    assert convert.to_coursera_sequence(x)[1, 2, 0] == x[0, 2, 1]
    np.testing.assert_array_equal(convert.from_coursera_sequence(convert.to_coursera_sequence(x)), x)


# ----------------------------------------------------------------------------------------------------
# Keras
# ----------------------------------------------------------------------------------------------------

def keras_lstm(x, h, c, w):
    for t in range(x.shape[0]):
        z = x[t] @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
        i, f, cc, o = np.split(z, 4, axis=1)
        c = sig(f) * c + sig(i) * np.tanh(cc)
        h = sig(o) * np.tanh(c)
    return h, c


def keras_gru(x, h, w, reset_after):
    k, rk, b = w["kernel"], w["recurrent_kernel"], w["bias"]
    n = rk.shape[0]
    for t in range(x.shape[0]):
        if reset_after:
            mx = x[t] @ k + b[0]
            mi = h @ rk + b[1]
            z = sig(mx[:, :n] + mi[:, :n])
            r = sig(mx[:, n:2 * n] + mi[:, n:2 * n])
            hh = np.tanh(mx[:, 2 * n:] + r * mi[:, 2 * n:])
        else:
            mx = x[t] @ k + b
            z = sig(mx[:, :n] + h @ rk[:, :n])
            r = sig(mx[:, n:2 * n] + h @ rk[:, n:2 * n])
            hh = np.tanh(mx[:, 2 * n:] + (r * h) @ rk[:, 2 * n:])
        h = z * h + (1 - z) * hh
    return h


def test_keras_lstm():
    rng = np.random.default_rng(5)
    p = rand_params(rng, 4)
    w = convert.to_keras_lstm(p)
    assert list(w) == ["kernel", "recurrent_kernel", "bias"]
    assert w["kernel"].shape == (D, 4 * H) and w["recurrent_kernel"].shape == (H, 4 * H) and w["bias"].shape == (4 * H,)
    x, h0, c0 = rng.standard_normal((T, B, D)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    (_, (h_n, c_n)), _ = gl.lstm_forward(x, p, h0, c0)
    kh, kc = keras_lstm(x, h0, c0, w)
    np.testing.assert_allclose(kh, h_n, atol=TOL)
    np.testing.assert_allclose(kc, c_n, atol=TOL)
    back = convert.from_keras_lstm(list(w.values()))          # get_weights() order
    np.testing.assert_array_equal(back["bias_hh"], 0)
    np.testing.assert_allclose(gl.lstm_forward(x, back, h0, c0)[0][1][0], h_n, atol=TOL)
    assert all(np.array_equal(convert.to_keras_lstm(back)[k], w[k]) for k in w)


@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_gru(reset_after):
    rng = np.random.default_rng(6)
    p = rand_params(rng, 3)
    w = convert.to_keras_gru(p, reset_after=reset_after)
    assert w["bias"].shape == ((2, 3 * H) if reset_after else (3 * H,))
    x, h0 = rng.standard_normal((T, B, D)), rng.standard_normal((B, H))
    convention = "pytorch" if reset_after else "cho"
    (_, h_n), _ = gl.gru_forward(x, p, h0, convention)
    np.testing.assert_allclose(keras_gru(x, h0, w, reset_after), h_n, atol=TOL)
    back, conv = convert.from_keras_gru(w)
    assert conv == convention
    np.testing.assert_allclose(gl.gru_forward(x, back, h0, conv)[0][1], h_n, atol=TOL)
    again = convert.to_keras_gru(back, reset_after=reset_after)
    assert all(np.allclose(again[k], w[k], atol=0, rtol=0) for k in w)


def test_keras_gru_gate_order_is_z_r_h():
    """Block 0 of the Keras kernel is torch's z block (rows [H:2H]), block 1 torch's r block."""
    p = rand_params(np.random.default_rng(7), 3)
    k = convert.to_keras_gru(p)["kernel"]
    np.testing.assert_array_equal(k[:, :H], p["weight_ih"][H:2 * H].T)
    np.testing.assert_array_equal(k[:, H:2 * H], p["weight_ih"][:H].T)
    np.testing.assert_array_equal(k[:, 2 * H:], p["weight_ih"][2 * H:].T)


def test_keras_simple_rnn():
    rng = np.random.default_rng(8)
    p = rand_params(rng, 1)
    w = convert.to_keras_rnn(p)
    x, h0 = rng.standard_normal((T, B, D)), rng.standard_normal((B, H))
    h = h0
    for t in range(T):
        h = np.tanh(x[t] @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"])
    np.testing.assert_allclose(gl.rnn_forward(x, p, h0)[0][1], h, atol=TOL)
    back = convert.from_keras_rnn(w)
    np.testing.assert_allclose(gl.rnn_forward(x, back, h0)[0][1], h, atol=TOL)


def test_keras_errors():
    with pytest.raises(gl.ShapeError, match="recurrent_kernel"):
        convert.from_keras_lstm([np.zeros((3, 8)), np.zeros((2, 6)), np.zeros(8)])
    with pytest.raises(gl.ShapeError, match="bias"):
        convert.from_keras_gru([np.zeros((3, 6)), np.zeros((2, 6)), np.zeros((3, 6))])
    with pytest.raises(gl.GatedLibError, match="projection"):
        convert.to_keras_lstm(gl.init_params("lstm", 3, 4, proj_size=2))
