"""Initialisation: torch's default range and shapes, gate biases (effective vs both), orthogonal, IRNN."""

from __future__ import annotations

import numpy as np
import pytest

import gated_lib as gl
from gated_lib.catalog import CELLS

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("cell,module,kw", [
    ("rnn", torch.nn.RNN, {}), ("lstm", torch.nn.LSTM, {}), ("gru", torch.nn.GRU, {}),
    ("lstm", torch.nn.LSTM, {"proj_size": 3}),
])
def test_init_params_shapes_and_range_match_torch(cell, module, kw):
    D, H = 7, 64
    ours = gl.init_params(cell, D, H, rng=0, **kw)
    theirs = {k[:-3]: v for k, v in module(D, H, **kw).state_dict().items()}
    assert {k: v.shape for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    bound = 1 / np.sqrt(H)
    for k, v in ours.items():
        assert v.dtype == np.float32
        assert np.all(np.abs(v) <= bound), k
        # uniform over the whole interval, not a narrower one: the extremes come close to the bound
        assert np.max(np.abs(v)) > 0.9 * bound, k
        assert float(np.max(np.abs(theirs[k].numpy()))) <= bound + 1e-7


def test_init_lstm_params_is_init_params_lstm():
    a = gl.init_lstm_params(3, 4, rng=0, dtype=np.float64)
    b = gl.init_params("lstm", 3, 4, rng=0, dtype=np.float64)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_init_params_runs_in_every_cell(cell):
    p = gl.init_params(cell, 3, 4, rng=1, dtype=np.float64)
    assert p["weight_ih"].shape == (gl.gate_count(cell) * 4, 3)
    for name in CELLS[cell].peepholes:
        assert p[name].shape == (4,)


def test_init_stack_layer_sizes():
    layers = gl.init_stack("lstm", 5, 4, num_layers=3, bidirectional=True, rng=0, proj_size=2)
    assert len(layers) == 6
    assert layers[0]["weight_ih"].shape == (16, 5)
    assert layers[2]["weight_ih"].shape == (16, 4)       # 2 directions x proj 2
    assert layers[5]["weight_hr"].shape == (2, 4)


def test_forget_bias_effective_and_both():
    H = 3
    p = gl.init_params("lstm", 2, H, rng=0, dtype=np.float64)
    before = {k: v.copy() for k, v in p.items()}
    eff = gl.set_forget_bias(p, 1.0, "effective")
    both = gl.set_forget_bias(p, 1.0, "both")
    np.testing.assert_array_equal(gl.effective_bias(eff)[H:2 * H], 1.0)
    np.testing.assert_array_equal(gl.effective_bias(both)[H:2 * H], 2.0)    # b_ih + b_hh = 1 + 1
    for q in (eff, both):      # the other gates' biases are untouched
        np.testing.assert_array_equal(gl.effective_bias(q)[:H], gl.effective_bias(p)[:H])
        np.testing.assert_array_equal(gl.effective_bias(q)[2 * H:], gl.effective_bias(p)[2 * H:])
    for k in p:                # and the input is not modified
        np.testing.assert_array_equal(p[k], before[k])


def test_forget_bias_slice_is_the_forget_gate():
    """A large effective forget bias drives f (and only f) to 1 in the forward pass."""
    rng = np.random.default_rng(0)
    p = gl.set_forget_bias(gl.init_params("lstm", 3, 4, rng=0, dtype=np.float64), 30.0)
    (_, _), cache = gl.lstm_cell_forward(rng.standard_normal((5, 3)), rng.standard_normal((5, 4)),
                                         rng.standard_normal((5, 4)), p)
    assert np.all(cache["f"] > 1 - 1e-9)
    assert np.all(cache["i"] < 0.99) and np.all(cache["o"] < 0.99)


def test_torch_effective_bias_is_the_sum():
    """torch adds b_ih + b_hh: setting both forget slices to 1 acts as a bias of 2 in torch.nn.LSTM."""
    H = 2
    lstm = torch.nn.LSTM(1, H).double()
    with torch.no_grad():
        for p in lstm.parameters():
            p.zero_()
        lstm.bias_ih_l0[H:2 * H] = 1.0
        lstm.bias_hh_l0[H:2 * H] = 1.0
    c0 = torch.ones(1, 1, H, dtype=torch.float64)
    _, (_, c1) = lstm(torch.zeros(1, 1, 1, dtype=torch.float64), (torch.zeros_like(c0), c0))
    # c1 = f * c0 + i * g with g = tanh(0) = 0, so c1 = sigmoid(effective forget bias)
    np.testing.assert_allclose(c1.detach().numpy().ravel(), 1 / (1 + np.exp(-2.0)))
    ours = gl.set_forget_bias(gl.convert.from_torch(torch.nn.LSTM(1, H))[0], 1.0, "both")
    np.testing.assert_allclose(gl.effective_bias(ours)[H:2 * H], 2.0)


def test_update_gate_bias_keeps_gru_state():
    rng = np.random.default_rng(1)
    p = gl.set_update_gate_bias(gl.init_params("gru", 3, 4, rng=0, dtype=np.float64), 30.0)
    h_prev = rng.standard_normal((5, 4))
    h, cache = gl.gru_cell_forward(rng.standard_normal((5, 3)), h_prev, p)
    assert np.all(cache["z"] > 1 - 1e-9)
    np.testing.assert_allclose(h, h_prev, atol=1e-9)


def test_single_bias_and_errors():
    p = gl.init_params("lstm", 2, 3, rng=0, single_bias=True)
    q = gl.set_forget_bias(p, 1.5)
    np.testing.assert_array_equal(q["bias"][3:6], 1.5)
    with pytest.raises(gl.GatedLibError, match="two biases"):
        gl.set_forget_bias(p, 1.0, "both")
    with pytest.raises(gl.GatedLibError, match="gates"):
        gl.set_forget_bias(gl.init_params("cifg_lstm", 2, 3), 1.0, cell="cifg_lstm")
    with pytest.raises(gl.GatedLibError, match="mode"):
        gl.set_forget_bias(gl.init_params("lstm", 2, 3), 1.0, "twice")


def test_set_gate_bias_on_a_stack():
    layers = gl.init_stack("lstm", 2, 3, num_layers=2, rng=0)
    out = gl.set_forget_bias(layers, 1.0)
    assert all(np.all(gl.effective_bias(p)[3:6] == 1.0) for p in out)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_orthogonal_recurrent_blocks(cell):
    H = 6
    p = gl.orthogonal_recurrent(gl.init_params(cell, 3, H, rng=0, dtype=np.float64), cell, rng=1, gain=1.0)
    W = p["weight_hh"]
    blocks = [W[k * H:(k + 1) * H] for k in range(gl.gate_count(cell))]
    for blk in blocks:
        np.testing.assert_allclose(blk.T @ blk, np.eye(H), atol=1e-12)
    if len(blocks) > 1:
        assert not np.allclose(blocks[0], blocks[1])


def test_orthogonal_rectangular_and_gain():
    Q = gl.orthogonal(5, 3, rng=0, gain=2.0)
    np.testing.assert_allclose(Q.T @ Q, 4 * np.eye(3), atol=1e-12)
    Q = gl.orthogonal(3, 5, rng=0)
    np.testing.assert_allclose(Q @ Q.T, np.eye(3), atol=1e-12)


def test_irnn_keeps_a_positive_state_without_input():
    p = gl.irnn_params(3, 4, rng=0, dtype=np.float64)
    np.testing.assert_array_equal(p["weight_hh"], np.eye(4))
    assert np.all(p["bias_ih"] == 0) and np.all(p["bias_hh"] == 0)
    assert np.std(p["weight_ih"]) < 0.01
    h0 = np.abs(np.random.default_rng(0).standard_normal((2, 4)))
    (out, h_n), _ = gl.rnn_forward(np.zeros((20, 2, 3)), p, h0, "relu")
    np.testing.assert_allclose(h_n, h0)
    # the identity makes the one-step Jacobian I wherever the unit is active: no vanishing
    np.testing.assert_allclose(gl.rnn_step_jacobian(h_n, p["weight_hh"], "relu"), np.broadcast_to(np.eye(4), (2, 4, 4)))
