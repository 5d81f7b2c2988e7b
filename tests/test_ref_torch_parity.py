"""Parity with torch in float64, to 1e-10: forward outputs, final states and every gradient.

torch.nn.RNN / LSTM / GRU (stacked, bidirectional, proj_size, bias=False) are compared directly,
with the numpy weights taken from the module's state_dict. The variants torch lacks (Cho GRU,
no-forget-gate, peephole, CIFG, NOAF LSTMs, MGU) are compared with torch-autograd re-implementations
written here from the equations, independently of the numpy code.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gated_lib as gl  # noqa: E402
from gated_lib.convert import from_torch  # noqa: E402

TOL = 1e-10
T, B, D, H = 4, 3, 5, 4


def t64(a, grad=True):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def assert_close(ours, theirs, what):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs torch {theirs.shape}"
    err = np.max(np.abs(ours - theirs)) if ours.size else 0.0
    assert err < TOL, f"{what}: max abs difference {err:.2e} >= {TOL:.0e}"


# ----------------------------------------------------------------------------------------------------
# torch.nn modules
# ----------------------------------------------------------------------------------------------------

MODULES = {
    "rnn_tanh": (lambda **kw: torch.nn.RNN(nonlinearity="tanh", **kw), lambda x, p, h0, c0, **kw: gl.rnn_forward(x, p, h0, "tanh", **kw), gl.rnn_backward),
    "rnn_relu": (lambda **kw: torch.nn.RNN(nonlinearity="relu", **kw), lambda x, p, h0, c0, **kw: gl.rnn_forward(x, p, h0, "relu", **kw), gl.rnn_backward),
    "lstm": (lambda **kw: torch.nn.LSTM(**kw), lambda x, p, h0, c0, **kw: gl.lstm_forward(x, p, h0, c0, **kw), gl.lstm_backward),
    "gru": (lambda **kw: torch.nn.GRU(**kw), lambda x, p, h0, c0, **kw: gl.gru_forward(x, p, h0, "pytorch", **kw), gl.gru_backward),
}

CONFIGS = [dict(num_layers=L, bidirectional=bd, bias=b) for L in (1, 2) for bd in (False, True) for b in (True, False)]


def run_parity(name, num_layers=1, bidirectional=False, bias=True, proj_size=0, as_dict=False, seed=0):
    make, forward, backward = MODULES[name]
    torch.manual_seed(seed)
    kw = dict(input_size=D, hidden_size=H, num_layers=num_layers, bidirectional=bidirectional, bias=bias)
    if proj_size:
        kw["proj_size"] = proj_size
    module = make(**kw).double()
    rng = np.random.default_rng(seed)
    dirs = 2 if bidirectional else 1
    R = proj_size or H
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((num_layers * dirs, B, R))
    c0 = rng.standard_normal((num_layers * dirs, B, H))
    has_c = name == "lstm"

    xt, h0t, c0t = t64(x), t64(h0), t64(c0)
    out_t, fin_t = module(xt, (h0t, c0t) if has_c else h0t)

    layers = from_torch(module)
    if as_dict:
        (out, fin), cache = forward(x, layers[0], h0[0], c0[0] if has_c else None)
    else:
        (out, fin), cache = forward(x, layers, h0, c0 if has_c else None, bidirectional=bidirectional)
    assert_close(out, out_t, "out")
    fins = fin if has_c else (fin,)
    fins_t = fin_t if has_c else (fin_t,)
    for ours, theirs, label in zip(fins, fins_t, ("h_n", "c_n")):
        assert_close(ours, theirs[0] if as_dict else theirs, label)

    dout = rng.standard_normal(out.shape)
    dfin = [rng.standard_normal(f.shape) for f in fins]
    loss = (out_t * torch.from_numpy(dout)).sum()
    for f_t, d in zip(fins_t, dfin):
        loss = loss + (f_t * torch.from_numpy(d if not as_dict else d[None])).sum()
    loss.backward()
    grads = backward(dout, cache, *dfin)

    assert_close(grads["x"], xt.grad, "dx")
    assert_close(grads["h0"], h0t.grad[0] if as_dict else h0t.grad, "dh0")
    if has_c:
        assert_close(grads["c0"], c0t.grad[0] if as_dict else c0t.grad, "dc0")
    named = dict(module.named_parameters())
    for tname, p in named.items():
        key = tname.rsplit("_l0", 1)[0] if as_dict else tname
        assert key in grads, f"no gradient for {key} (have {sorted(grads)})"
        assert_close(grads[key], p.grad, f"d{tname}")
    param_keys = {k for k in grads if k.startswith(("weight", "bias"))}
    assert len(param_keys) == len(named), f"gradient keys {sorted(param_keys)} vs torch {sorted(named)}"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "L{num_layers}-bd{bidirectional:d}-b{bias:d}".format(**c))
@pytest.mark.parametrize("name", list(MODULES))
def test_torch_module_parity(name, config):
    run_parity(name, **config)


@pytest.mark.parametrize("name", list(MODULES))
def test_torch_parity_single_layer_dict(name):
    """One dict (not a list) is one layer with (B, H) states: lstm_forward's original interface."""
    run_parity(name, as_dict=True, seed=1)


@pytest.mark.parametrize("num_layers,bidirectional,as_dict", [(1, False, True), (2, False, False), (2, True, False)])
def test_torch_lstm_proj_parity(num_layers, bidirectional, as_dict):
    run_parity("lstm", num_layers=num_layers, bidirectional=bidirectional, proj_size=2, as_dict=as_dict, seed=2)


def test_torch_parity_float32_lstm_fast_path():
    """The float32 sequence path (what the benchmark times) matches torch to float32 precision."""
    torch.manual_seed(3)
    module = torch.nn.LSTM(D, H)
    x = np.random.default_rng(3).standard_normal((T, B, D)).astype(np.float32)
    (out, (h_n, c_n)), _ = gl.lstm_forward(x, from_torch(module)[0])
    out_t, (h_t, c_t) = module(torch.from_numpy(x))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, out_t.detach().numpy(), atol=2e-6)
    np.testing.assert_allclose(c_n, c_t[0].detach().numpy(), atol=2e-6)


# ----------------------------------------------------------------------------------------------------
# Variants torch lacks: autograd re-implementations from the equations
# ----------------------------------------------------------------------------------------------------

def _lin(x, h, p):
    a = x @ p["weight_ih"].T + h @ p["weight_hh"].T
    if "bias_ih" in p:
        a = a + p["bias_ih"] + p["bias_hh"]
    return a


def torch_nfg(x, h, c, p):
    i, g, o = _lin(x, h, p).chunk(3, dim=1)
    c = c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def torch_peephole(x, h, c, p):
    ai, af, ag, ao = _lin(x, h, p).chunk(4, dim=1)
    i = torch.sigmoid(ai + p["weight_ci"] * c)
    f = torch.sigmoid(af + p["weight_cf"] * c)
    c_new = f * c + i * torch.tanh(ag)
    o = torch.sigmoid(ao + p["weight_co"] * c_new)
    return o * torch.tanh(c_new), c_new


def torch_cifg(x, h, c, p):
    ai, ag, ao = _lin(x, h, p).chunk(3, dim=1)
    i = torch.sigmoid(ai)
    c = (1 - i) * c + i * torch.tanh(ag)
    return torch.sigmoid(ao) * torch.tanh(c), c


def torch_noaf(x, h, c, p):
    ai, af, ag, ao = _lin(x, h, p).chunk(4, dim=1)
    c = torch.sigmoid(af) * c + torch.sigmoid(ai) * torch.tanh(ag)
    return torch.sigmoid(ao) * c, c


def torch_gru_cho(x, h, p):
    Hh = h.shape[1]
    xi = x @ p["weight_ih"].T + (p["bias_ih"] if "bias_ih" in p else 0)
    W, bh = p["weight_hh"], (p["bias_hh"] if "bias_hh" in p else torch.zeros(3 * Hh, dtype=h.dtype))
    r = torch.sigmoid(xi[:, :Hh] + h @ W[:Hh].T + bh[:Hh])
    z = torch.sigmoid(xi[:, Hh:2 * Hh] + h @ W[Hh:2 * Hh].T + bh[Hh:2 * Hh])
    n = torch.tanh(xi[:, 2 * Hh:] + (r * h) @ W[2 * Hh:].T + bh[2 * Hh:])
    return (1 - z) * n + z * h


def torch_mgu(x, h, p):
    Hh = h.shape[1]
    xi = x @ p["weight_ih"].T + (p["bias_ih"] if "bias_ih" in p else 0)
    W, bh = p["weight_hh"], (p["bias_hh"] if "bias_hh" in p else torch.zeros(2 * Hh, dtype=h.dtype))
    f = torch.sigmoid(xi[:, :Hh] + h @ W[:Hh].T + bh[:Hh])
    n = torch.tanh(xi[:, Hh:] + (f * h) @ W[Hh:].T + bh[Hh:])
    return (1 - f) * h + f * n


VARIANTS = {
    "nfg_lstm": (3, (), torch_nfg, gl.nfg_lstm_forward, gl.nfg_lstm_backward),
    "peephole_lstm": (4, ("weight_ci", "weight_cf", "weight_co"), torch_peephole, gl.peephole_lstm_forward,
                      gl.peephole_lstm_backward),
    "cifg_lstm": (3, (), torch_cifg, gl.cifg_lstm_forward, gl.cifg_lstm_backward),
    "noaf_lstm": (4, (), torch_noaf, gl.noaf_lstm_forward, gl.noaf_lstm_backward),
    "gru_cho": (3, (), torch_gru_cho, lambda x, p, h0: gl.gru_forward(x, p, h0, "cho"), gl.gru_backward),
    "mgu": (2, (), torch_mgu, gl.mgu_forward, gl.mgu_backward),
}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_parity_with_torch_autograd(name, bias):
    G, extra, tstep, forward, backward = VARIANTS[name]
    has_c = name.endswith("lstm")
    rng = np.random.default_rng(4)
    params = {"weight_ih": 0.5 * rng.standard_normal((G * H, D)), "weight_hh": 0.5 * rng.standard_normal((G * H, H))}
    if bias:
        params["bias_ih"] = 0.5 * rng.standard_normal(G * H)
        params["bias_hh"] = 0.5 * rng.standard_normal(G * H)
    for e in extra:
        params[e] = 0.5 * rng.standard_normal(H)
    x, h0, c0 = rng.standard_normal((T, B, D)), rng.standard_normal((B, H)), rng.standard_normal((B, H))

    pt = {k: t64(v) for k, v in params.items()}
    xt, h0t, c0t = t64(x), t64(h0), t64(c0)
    h, c, outs = h0t, c0t, []
    for t in range(T):
        if has_c:
            h, c = tstep(xt[t], h, c, pt)
        else:
            h = tstep(xt[t], h, pt)
        outs.append(h)
    out_t = torch.stack(outs)

    if has_c:
        (out, (h_n, c_n)), cache = forward(x, params, h0, c0)
        assert_close(c_n, c, "c_n")
    else:
        (out, h_n), cache = forward(x, params, h0)
    assert_close(out, out_t, "out")
    assert_close(h_n, h, "h_n")

    dout, dh, dc = rng.standard_normal(out.shape), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    loss = (out_t * torch.from_numpy(dout)).sum() + (h * torch.from_numpy(dh)).sum()
    if has_c:
        loss = loss + (c * torch.from_numpy(dc)).sum()
        grads = backward(dout, cache, dh, dc)
    else:
        grads = backward(dout, cache, dh)
    loss.backward()
    assert_close(grads["x"], xt.grad, "dx")
    assert_close(grads["h0"], h0t.grad, "dh0")
    if has_c:
        assert_close(grads["c0"], c0t.grad, "dc0")
    for k, v in pt.items():
        assert_close(grads[k], v.grad, f"d{k}")


def test_gru_conventions_really_differ():
    """The Cho and PyTorch GRUs are different functions when b_hn != 0 or r is not all ones."""
    rng = np.random.default_rng(5)
    p = {"weight_ih": rng.standard_normal((3 * H, D)), "weight_hh": rng.standard_normal((3 * H, H)),
         "bias_ih": rng.standard_normal(3 * H), "bias_hh": rng.standard_normal(3 * H)}
    x = rng.standard_normal((T, B, D))
    (a, _), _ = gl.gru_forward(x, p, convention="pytorch")
    (b, _), _ = gl.gru_forward(x, p, convention="cho")
    assert np.max(np.abs(a - b)) > 1e-3
