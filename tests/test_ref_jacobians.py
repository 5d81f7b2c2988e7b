"""Analytic Jacobians against torch.autograd.functional.jacobian, to 1e-10 in float64.

Also: the LSTM's c -> c block is diag(f_t) (autograd says so, not our own formula); the full one-step
Jacobian of (h, c) is not the direct path when W_hh != 0 and collapses onto it when W_hh = 0; and the
norms over lags match autograd's d s_T / d s_{T-k}.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.autograd.functional import jacobian  # noqa: E402

import gated_lib as gl  # noqa: E402
from gated_lib.jacobians import lag_norms, step_jacobian  # noqa: E402

TOL = 1e-10
B, D, H = 3, 4, 5


def params(rng, G, scale=0.7, bias=True):
    p = {"weight_ih": scale * rng.standard_normal((G * H, D)), "weight_hh": scale * rng.standard_normal((G * H, H))}
    if bias:
        p["bias_ih"] = scale * rng.standard_normal(G * H)
        p["bias_hh"] = scale * rng.standard_normal(G * H)
    return p


def per_example(J):
    """torch's jacobian of a batched map (B, n) -> (B, m) is (B, m, B, n); keep the diagonal blocks."""
    return torch.einsum("bibj->bij", J).numpy()


def tp(p):
    return {k: torch.tensor(v) for k, v in p.items()}


def torch_lstm_step(x, h, c, p):
    a = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    i, f, g, o = a.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def torch_gru_step(x, h, p, convention):
    xi = x @ p["weight_ih"].T + p["bias_ih"]
    W, b = p["weight_hh"], p["bias_hh"]
    r = torch.sigmoid(xi[:, :H] + h @ W[:H].T + b[:H])
    z = torch.sigmoid(xi[:, H:2 * H] + h @ W[H:2 * H].T + b[H:2 * H])
    if convention == "pytorch":
        n = torch.tanh(xi[:, 2 * H:] + r * (h @ W[2 * H:].T + b[2 * H:]))
    else:
        n = torch.tanh(xi[:, 2 * H:] + (r * h) @ W[2 * H:].T + b[2 * H:])
    return (1 - z) * n + z * h


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_step_jacobian(nonlinearity):
    rng = np.random.default_rng(0)
    p = params(rng, 1)
    x, h_prev = rng.standard_normal((B, D)), rng.standard_normal((B, H))
    h, _ = gl.rnn_cell_forward(x, h_prev, p, nonlinearity)
    ours = gl.rnn_step_jacobian(h, p["weight_hh"], nonlinearity)
    act = torch.tanh if nonlinearity == "tanh" else torch.relu
    pt = tp(p)
    J = jacobian(lambda hp: act(torch.tensor(x) @ pt["weight_ih"].T + pt["bias_ih"] + hp @ pt["weight_hh"].T
                                + pt["bias_hh"]), torch.tensor(h_prev))
    assert ours.shape == (B, H, H)
    np.testing.assert_allclose(ours, per_example(J), atol=TOL, rtol=0)
    if nonlinearity == "relu":
        assert 0 < np.count_nonzero(ours) < ours.size  # some units dead, some alive: the mask matters


def lstm_case(seed=1, scale=0.7, zero_whh=False):
    rng = np.random.default_rng(seed)
    p = params(rng, 4, scale)
    if zero_whh:
        p["weight_hh"] = np.zeros_like(p["weight_hh"])
    x, h_prev, c_prev = rng.standard_normal((B, D)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    (h, c), cache = gl.lstm_cell_forward(x, h_prev, c_prev, p)
    pt = tp(p)
    J = jacobian(lambda hp, cp: torch_lstm_step(torch.tensor(x), hp, cp, pt),
                 (torch.tensor(h_prev), torch.tensor(c_prev)))
    # J[out][in]: out 0 = h, 1 = c; in 0 = h_prev, 1 = c_prev
    auto = {"dh_dh": per_example(J[0][0]), "dh_dc": per_example(J[0][1]),
            "dc_dh": per_example(J[1][0]), "dc_dc": per_example(J[1][1])}
    return cache, auto


def test_lstm_blocks_match_autograd():
    cache, auto = lstm_case()
    blocks = gl.lstm_step_jacobian(cache)
    assert set(blocks) == set(auto)
    for k in auto:
        assert blocks[k].shape == (B, H, H)
        np.testing.assert_allclose(blocks[k], auto[k], atol=TOL, rtol=0, err_msg=k)


@pytest.mark.parametrize("order", [("h", "c"), ("c", "h")])
def test_lstm_assembled_jacobian_matches_autograd(order):
    cache, auto = lstm_case(seed=2)
    full = gl.assemble_state_jacobian(gl.lstm_step_jacobian(cache), order)
    a, b = order
    expected = np.block([[auto[f"d{a}_d{a}"], auto[f"d{a}_d{b}"]], [auto[f"d{b}_d{a}"], auto[f"d{b}_d{b}"]]])
    assert full.shape == (B, 2 * H, 2 * H)
    np.testing.assert_allclose(full, expected, atol=TOL, rtol=0)


def test_c_to_c_block_is_diag_f():
    """Autograd's dc_t/dc_{t-1} is exactly diag(f_t) read from the forward cache."""
    cache, auto = lstm_case(seed=3)
    expected = np.stack([np.diag(f) for f in cache["f"]])
    np.testing.assert_allclose(auto["dc_dc"], expected, atol=TOL, rtol=0)
    np.testing.assert_allclose(gl.lstm_direct_jacobian(cache["f"]), expected, atol=0, rtol=0)


def test_full_jacobian_is_not_the_direct_path_when_whh_nonzero():
    cache, auto = lstm_case(seed=4)
    full = gl.assemble_state_jacobian(gl.lstm_step_jacobian(cache))
    direct_only = np.zeros_like(full)
    direct_only[:, H:, H:] = gl.lstm_direct_jacobian(cache["f"])
    # The h paths feed c: the c-row of the state Jacobian has a nonzero dc/dh block.
    assert np.linalg.norm(auto["dc_dh"]) > 0.1
    assert np.max(np.abs(full - direct_only)) > 0.1


def test_full_jacobian_collapses_when_whh_zero():
    """With W_hh = 0, h_{t-1} has no influence: dc/dh = dh/dh = 0, and c -> c is exactly diag(f)."""
    cache, auto = lstm_case(seed=4, zero_whh=True)
    blocks = gl.lstm_step_jacobian(cache)
    np.testing.assert_allclose(auto["dc_dh"], 0, atol=TOL)
    np.testing.assert_allclose(blocks["dh_dh"], 0, atol=TOL)
    np.testing.assert_allclose(blocks["dc_dc"], auto["dc_dc"], atol=TOL)


@pytest.mark.parametrize("convention", ["pytorch", "cho"])
def test_gru_step_jacobian(convention):
    rng = np.random.default_rng(5)
    p = params(rng, 3)
    x, h_prev = rng.standard_normal((B, D)), rng.standard_normal((B, H))
    _, cache = gl.gru_cell_forward(x, h_prev, p, convention)
    ours = gl.gru_step_jacobian(cache)
    pt = tp(p)
    J = jacobian(lambda hp: torch_gru_step(torch.tensor(x), hp, pt, convention), torch.tensor(h_prev))
    np.testing.assert_allclose(ours, per_example(J), atol=TOL, rtol=0)
    # diag(z) is the leading term but not the whole story.
    assert np.max(np.abs(ours - np.stack([np.diag(z) for z in cache["z"]]))) > 1e-3


def test_gru_step_jacobian_from_torch_grucell():
    """The PyTorch convention against torch.nn.GRUCell itself, not a re-implementation."""
    rng = np.random.default_rng(6)
    cell = torch.nn.GRUCell(D, H).double()
    p = {k: v.detach().numpy() for k, v in cell.state_dict().items()}
    x, h_prev = rng.standard_normal((B, D)), rng.standard_normal((B, H))
    _, cache = gl.gru_cell_forward(x, h_prev, p)
    J = jacobian(lambda hp: cell(torch.tensor(x), hp), torch.tensor(h_prev))
    np.testing.assert_allclose(gl.gru_step_jacobian(cache), per_example(J), atol=TOL, rtol=0)


def test_step_jacobians_along_a_sequence_cache():
    """Jacobians read from a sequence cache equal the cell's at the same step."""
    rng = np.random.default_rng(7)
    p = params(rng, 4)
    x = rng.standard_normal((5, B, D))
    (out, _), cache = gl.lstm_forward(x, p)
    t = 3
    (_, _), cell_cache = gl.lstm_cell_forward(x[t], out[t - 1], cache[t - 1]["c"], p)
    np.testing.assert_allclose(step_jacobian(cache, t), gl.assemble_state_jacobian(gl.lstm_step_jacobian(cell_cache)),
                               atol=1e-13)
    np.testing.assert_allclose(step_jacobian(cache, t, "direct"), gl.lstm_direct_jacobian(cache[t]["f"]), atol=0)


# ----------------------------------------------------------------------------------------------------
# Products over lags
# ----------------------------------------------------------------------------------------------------

def autograd_lag_jacobians(kind, x, p, states):
    """d s_T / d s_{T-k} by autograd, for k = 1 .. T, by re-running the last k steps in torch."""
    T = x.shape[0]
    pt = tp(p)
    xt = torch.tensor(x)
    result = {}
    for k in range(1, T + 1):
        s0 = states[T - k]
        if kind == "lstm":
            def f(h, c, k=k):
                for t in range(T - k, T):
                    h, c = torch_lstm_step(xt[t], h, c, pt)
                return h, c
            J = jacobian(f, (torch.tensor(s0[0]), torch.tensor(s0[1])))
            result[k] = {"h": per_example(J[0][0]), "c": per_example(J[1][1]),
                         "state": np.block([[per_example(J[0][0]), per_example(J[0][1])],
                                            [per_example(J[1][0]), per_example(J[1][1])]])}
        else:
            def f(h, k=k):
                for t in range(T - k, T):
                    if kind == "rnn":
                        h = torch.tanh(xt[t] @ pt["weight_ih"].T + pt["bias_ih"] + h @ pt["weight_hh"].T + pt["bias_hh"])
                    else:
                        h = torch_gru_step(xt[t], h, pt, kind)
                return h
            result[k] = {"h": per_example(jacobian(f, torch.tensor(s0)))}
    return result


def spectral(M):
    return np.linalg.norm(M, ord=2, axis=(-2, -1))


def frobenius(M):
    return np.sqrt(np.sum(M * M, axis=(-2, -1)))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "pytorch", "cho"])
def test_gradient_norm_over_lag_matches_autograd(kind):
    rng = np.random.default_rng(8)
    T = 5
    x = rng.standard_normal((T, B, D))
    if kind == "rnn":
        p = params(rng, 1, 0.9)
        (out, _), cache = gl.rnn_forward(x, p)
        states = [np.zeros((B, H))] + list(out)
        quantities = ["h"]
    elif kind == "lstm":
        p = params(rng, 4)
        (out, _), cache = gl.lstm_forward(x, p)
        states = [(np.zeros((B, H)), np.zeros((B, H)))] + [(out[t], cache[t]["c"]) for t in range(T)]
        quantities = ["h", "c", "state"]
    else:
        p = params(rng, 3)
        (out, _), cache = gl.gru_forward(x, p, convention=kind)
        states = [np.zeros((B, H))] + list(out)
        quantities = ["h"]
    auto = autograd_lag_jacobians(kind, x, p, states)
    for ord_, norm in ((2, spectral), ("fro", frobenius)):
        for q in quantities:
            ours = gl.gradient_norm_over_lag(cache, q, "full", ord_)
            assert ours.shape == (T + 1, B)
            n = (2 if q == "state" else 1) * H
            np.testing.assert_allclose(ours[0], norm(np.eye(n))[None].repeat(B, 0), atol=TOL)
            for k in range(1, T + 1):
                np.testing.assert_allclose(ours[k], norm(auto[k][q]), atol=TOL, rtol=1e-9,
                                           err_msg=f"{q}, ord {ord_}, lag {k}")


@pytest.mark.parametrize("ord_", [2, "fro"])
def test_direct_path_norms_equal_products_of_diag_f(ord_):
    rng = np.random.default_rng(9)
    T = 6
    (_, _), cache = gl.lstm_forward(rng.standard_normal((T, B, D)), params(rng, 4))
    diag_steps = np.stack([gl.lstm_direct_jacobian(cache[t]["f"]) for t in range(T)])
    np.testing.assert_allclose(gl.gradient_norm_over_lag(cache, "c", "direct", ord_),
                               lag_norms(diag_steps, ord_), atol=1e-14)


def test_full_and_direct_c_paths_differ_unless_whh_is_zero():
    rng = np.random.default_rng(10)
    T = 6
    x = rng.standard_normal((T, B, D))
    p = params(rng, 4, 1.0)
    (_, _), cache = gl.lstm_forward(x, p)
    full = gl.gradient_norm_over_lag(cache, "c", "full", "fro")
    direct = gl.gradient_norm_over_lag(cache, "c", "direct", "fro")
    assert np.max(np.abs(full - direct)[2:]) > 1e-3

    p0 = dict(p, weight_hh=np.zeros_like(p["weight_hh"]))
    (_, _), cache0 = gl.lstm_forward(x, p0)
    np.testing.assert_allclose(gl.gradient_norm_over_lag(cache0, "c", "full", "fro"),
                               gl.gradient_norm_over_lag(cache0, "c", "direct", "fro"), atol=1e-13)


def test_vanishing_with_small_whh_and_forget_bias_keeps_c():
    """The book's two contrasts: ||dh_T/dh_{T-k}|| of an RNN with sigma_max(W_hh) < 1 decays
    geometrically; a large forget bias keeps the LSTM's direct path near 1."""
    rng = np.random.default_rng(11)
    T = 12
    x = rng.standard_normal((T, B, D))
    p = params(rng, 1)
    p["weight_hh"] *= 0.5 / np.linalg.norm(p["weight_hh"], 2)
    (_, _), cache = gl.rnn_forward(x, p)
    norms = gl.gradient_norm_over_lag(cache, "h", ord=2)
    assert np.all(norms[1:] <= 0.5 ** np.arange(1, T + 1)[:, None] + 1e-12)
    q = gl.set_forget_bias(params(rng, 4, 0.3), 8.0)
    (_, _), lcache = gl.lstm_forward(x, q)
    assert np.all(gl.gradient_norm_over_lag(lcache, "c", "direct", 2)[T] > 0.99)
