"""The sequence machinery: the loop equals stepping the cell, BPTT equals summing cell backwards,
the fast LSTM path equals the generic one, stacks and directions compose as torch's do, and the
interfaces the book and exercises rely on (lstm_forward's return structure and cache) hold."""

from __future__ import annotations

import numpy as np
import pytest

import gated_lib as gl
from gated_lib import lstm as lstm_module
from gated_lib.sequence import Cell, layer_forward

T, B, D, H = 5, 3, 4, 3

# name -> (has_c, cell forward(x, state, p), cell backward, sequence forward(x, p, h0, c0), sequence backward)
CELLS = {
    "rnn_tanh": (False, lambda x, s, p: gl.rnn_cell_forward(x, s[0], p), gl.rnn_cell_backward,
                 lambda x, p, h0, c0, **kw: gl.rnn_forward(x, p, h0, **kw), gl.rnn_backward),
    "rnn_relu": (False, lambda x, s, p: gl.rnn_cell_forward(x, s[0], p, "relu"), gl.rnn_cell_backward,
                 lambda x, p, h0, c0, **kw: gl.rnn_forward(x, p, h0, "relu", **kw), gl.rnn_backward),
    "lstm": (True, lambda x, s, p: gl.lstm_cell_forward(x, *s, p), gl.lstm_cell_backward,
             lambda x, p, h0, c0, **kw: gl.lstm_forward(x, p, h0, c0, **kw), gl.lstm_backward),
    "gru": (False, lambda x, s, p: gl.gru_cell_forward(x, s[0], p), gl.gru_cell_backward,
            lambda x, p, h0, c0, **kw: gl.gru_forward(x, p, h0, **kw), gl.gru_backward),
    "gru_cho": (False, lambda x, s, p: gl.gru_cell_forward(x, s[0], p, "cho"), gl.gru_cell_backward,
                lambda x, p, h0, c0, **kw: gl.gru_forward(x, p, h0, "cho", **kw), gl.gru_backward),
    "nfg_lstm": (True, lambda x, s, p: gl.nfg_lstm_cell_forward(x, *s, p), gl.nfg_lstm_cell_backward,
                 lambda x, p, h0, c0, **kw: gl.nfg_lstm_forward(x, p, h0, c0, **kw), gl.nfg_lstm_backward),
    "peephole_lstm": (True, lambda x, s, p: gl.peephole_lstm_cell_forward(x, *s, p), gl.peephole_lstm_cell_backward,
                      lambda x, p, h0, c0, **kw: gl.peephole_lstm_forward(x, p, h0, c0, **kw), gl.peephole_lstm_backward),
    "cifg_lstm": (True, lambda x, s, p: gl.cifg_lstm_cell_forward(x, *s, p), gl.cifg_lstm_cell_backward,
                  lambda x, p, h0, c0, **kw: gl.cifg_lstm_forward(x, p, h0, c0, **kw), gl.cifg_lstm_backward),
    "noaf_lstm": (True, lambda x, s, p: gl.noaf_lstm_cell_forward(x, *s, p), gl.noaf_lstm_cell_backward,
                  lambda x, p, h0, c0, **kw: gl.noaf_lstm_forward(x, p, h0, c0, **kw), gl.noaf_lstm_backward),
    "mgu": (False, lambda x, s, p: gl.mgu_cell_forward(x, s[0], p), gl.mgu_cell_backward,
            lambda x, p, h0, c0, **kw: gl.mgu_forward(x, p, h0, **kw), gl.mgu_backward),
}


def setup(name, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    p = {k: (v * 2).astype(dtype) for k, v in gl.init_params(name, D, H, rng=rng, dtype=np.float64).items()}
    x = rng.standard_normal((T, B, D)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    c0 = rng.standard_normal((B, H)).astype(dtype)
    return x, p, h0, c0


@pytest.mark.parametrize("name", list(CELLS))
def test_sequence_equals_stepping_the_cell(name):
    has_c, cfwd, _, sfwd, _ = CELLS[name]
    x, p, h0, c0 = setup(name)
    (out, fin), cache = sfwd(x, p, h0, c0 if has_c else None)
    state = (h0, c0) if has_c else (h0,)
    for t in range(T):
        new, _ = cfwd(x[t], state, p)
        state = new if has_c else (new,)
        np.testing.assert_allclose(out[t], state[0], atol=1e-13, rtol=0)
    fins = fin if has_c else (fin,)
    for a, b in zip(fins, state):
        np.testing.assert_allclose(a, b, atol=1e-13, rtol=0)
    assert isinstance(cache, list) and len(cache) == T


@pytest.mark.parametrize("name", list(CELLS))
def test_bptt_equals_summed_cell_backwards(name):
    """Backpropagation through time written out with the cell backward, step by step."""
    has_c, _, cbwd, sfwd, sbwd = CELLS[name]
    x, p, h0, c0 = setup(name, seed=1)
    (out, fin), cache = sfwd(x, p, h0, c0 if has_c else None)
    rng = np.random.default_rng(2)
    dout = rng.standard_normal(out.shape)
    dh, dc = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    grads = sbwd(dout, cache, dh, dc) if has_c else sbwd(dout, cache, dh)

    total = {k: np.zeros_like(v) for k, v in p.items()}
    dx = np.zeros_like(x)
    for t in range(T - 1, -1, -1):
        g = cbwd((dh + dout[t], dc) if has_c else dh + dout[t], cache[t])
        dx[t] = g["x"]
        dh = g["h_prev"]
        if has_c:
            dc = g["c_prev"]
        for k in total:
            total[k] += g[k]
    np.testing.assert_allclose(grads["x"], dx, atol=1e-12)
    np.testing.assert_allclose(grads["h0"], dh, atol=1e-12)
    if has_c:
        np.testing.assert_allclose(grads["c0"], dc, atol=1e-12)
    assert set(grads) == {"x", "h0"} | ({"c0"} if has_c else set()) | set(p)
    for k in total:
        np.testing.assert_allclose(grads[k], total[k], atol=1e-12, err_msg=k)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
def test_lstm_fast_path_equals_generic_loop(dtype, tol):
    x, p, h0, c0 = setup("lstm", seed=3, dtype=dtype)
    generic = Cell(lstm_module.LSTM.info, lstm_module._step, lstm_module._step_backward)
    (out, (h_n, c_n)), fast = gl.lstm_forward(x, p, h0, c0)
    b = p["bias_ih"] + p["bias_hh"]
    (out2, (h2, c2)), slow = layer_forward(generic, x, p, (h0, c0), b)
    assert out.dtype == dtype and c_n.dtype == dtype
    np.testing.assert_allclose(out, out2, atol=tol, rtol=0)
    np.testing.assert_allclose(c_n, c2, atol=tol, rtol=0)
    for t in (0, T - 1):
        assert set(fast[t]) == set(slow[t])
        for k in ("i", "f", "g", "o", "c", "tanh_c", "h", "h_prev", "c_prev"):
            np.testing.assert_allclose(fast[t][k], slow[t][k], atol=tol, rtol=0, err_msg=k)


def old_lstm_cell_forward(x, h_prev, c_prev, params):
    """lstm_cell_forward as first written (exp-form sigmoid), kept to pin its behaviour."""
    def sigmoid(a):
        return 1 / (1 + np.exp(-a))
    a = x @ params["weight_ih"].T + h_prev @ params["weight_hh"].T + params["bias_ih"] + params["bias_hh"]
    H_ = h_prev.shape[1]
    i, f, g, o = sigmoid(a[:, :H_]), sigmoid(a[:, H_:2 * H_]), np.tanh(a[:, 2 * H_:3 * H_]), sigmoid(a[:, 3 * H_:])
    c = f * c_prev + i * g
    return o * np.tanh(c), c, dict(i=i, f=f, g=g, o=o, c=c, tanh_c=np.tanh(c))


def test_lstm_interfaces_the_book_uses():
    x, p, h0, c0 = setup("lstm", seed=4)
    (h, c), cache = gl.lstm_cell_forward(x[0], h0, c0, p)
    h_ref, c_ref, gates = old_lstm_cell_forward(x[0], h0, c0, p)
    np.testing.assert_allclose(h, h_ref, atol=1e-14)
    np.testing.assert_allclose(c, c_ref, atol=1e-14)
    for k in ("x", "h_prev", "c_prev", "i", "f", "g", "o", "c", "tanh_c", "weight_ih", "weight_hh"):
        assert k in cache, k
    for k, v in gates.items():
        np.testing.assert_allclose(cache[k], v, atol=1e-14)
    (out, (h_n, c_n)), caches = gl.lstm_forward(x, p, h0, c0)
    assert out.shape == (T, B, H) and h_n.shape == (B, H) and c_n.shape == (B, H)
    np.testing.assert_array_equal(out[-1], h_n)
    assert isinstance(caches, list) and len(caches) == T and caches[-1]["f"].shape == (B, H)
    # defaults: zero initial states
    (out0, _), _ = gl.lstm_forward(x, p)
    (out1, _), _ = gl.lstm_forward(x, p, np.zeros((B, H)), np.zeros((B, H)))
    np.testing.assert_array_equal(out0, out1)
    # split_gates and sigmoid keep their meaning
    a = np.arange(8.0)[None]
    assert [s.tolist() for s in gl.split_gates(a)] == [[[0.0, 1.0]], [[2.0, 3.0]], [[4.0, 5.0]], [[6.0, 7.0]]]
    np.testing.assert_allclose(gl.sigmoid(np.array([-800.0, 0.0, 800.0])), [0.0, 0.5, 1.0])


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh", "peephole_lstm"])
def test_one_layer_list_equals_dict(name):
    has_c, _, _, sfwd, sbwd = CELLS[name]
    x, p, h0, c0 = setup(name, seed=5)
    (o1, f1), c1 = sfwd(x, p, h0, c0 if has_c else None)
    (o2, f2), c2 = sfwd(x, [p], h0[None], c0[None] if has_c else None)
    np.testing.assert_array_equal(o1, o2)
    dout = np.ones_like(o1)
    g1, g2 = sbwd(dout, c1), sbwd(dout, c2)
    np.testing.assert_allclose(g1["weight_hh"], g2["weight_hh_l0"], atol=1e-14)
    np.testing.assert_allclose(g1["h0"], g2["h0"][0], atol=1e-14)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh", "mgu"])
def test_stack_composes_layers_and_directions(name):
    has_c, _, _, sfwd, _ = CELLS[name]
    rng = np.random.default_rng(6)
    layers = gl.init_stack(name, D, H, num_layers=2, bidirectional=True, rng=rng, dtype=np.float64)
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((4, B, H))
    c0 = rng.standard_normal((4, B, H))
    (out, fin), _ = sfwd(x, layers, h0, c0 if has_c else None, bidirectional=True)
    assert out.shape == (T, B, 2 * H)

    def run(k, inp):
        (o, f), _ = sfwd(inp, layers[k], h0[k], c0[k] if has_c else None)
        return o, (f if has_c else (f,))
    fwd0, s0 = run(0, x)
    rev0, s1 = run(1, x[::-1])
    layer0 = np.concatenate([fwd0, rev0[::-1]], axis=-1)
    fwd1, s2 = run(2, layer0)
    rev1, s3 = run(3, layer0[::-1])
    np.testing.assert_allclose(out, np.concatenate([fwd1, rev1[::-1]], axis=-1), atol=1e-14)
    h_n = fin[0] if has_c else fin
    np.testing.assert_allclose(h_n, np.stack([s[0] for s in (s0, s1, s2, s3)]), atol=1e-14)


@pytest.mark.parametrize("name", list(CELLS))
def test_inputs_are_not_modified(name):
    has_c, _, _, sfwd, sbwd = CELLS[name]
    x, p, h0, c0 = setup(name, seed=7)
    before = [a.copy() for a in (x, h0, c0, *p.values())]
    (out, _), cache = sfwd(x, p, h0, c0 if has_c else None)
    dout = np.ones_like(out)
    sbwd(dout, cache)
    for a, b in zip((x, h0, c0, *p.values()), before):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dout, 1.0)


@pytest.mark.parametrize("name", list(CELLS))
def test_float32_stays_float32(name):
    has_c, _, _, sfwd, sbwd = CELLS[name]
    x, p, h0, c0 = setup(name, seed=8, dtype=np.float32)
    (out, fin), cache = sfwd(x, p, h0, c0 if has_c else None)
    assert out.dtype == np.float32
    grads = sbwd(np.ones_like(out), cache)
    assert all(g.dtype == np.float32 for g in grads.values())


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-4)])
def test_lstm_fast_backward_equals_step_by_step_backward(dtype, tol):
    x, p, h0, c0 = setup("lstm", seed=9, dtype=dtype)
    (out, _), cache = gl.lstm_forward(x, p, h0, c0)
    assert cache.stacked is not None          # the fast path ran, so its backward is the one tested
    rng = np.random.default_rng(10)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dh, dc = rng.standard_normal((B, H)).astype(dtype), rng.standard_normal((B, H)).astype(dtype)
    fast = gl.lstm_backward(dout, cache, dh, dc)
    cache.stacked = None                      # falls back to the generic per-step loop
    slow = gl.lstm_backward(dout, cache, dh, dc)
    assert fast.keys() == slow.keys()
    for k in fast:
        assert fast[k].dtype == dtype
        np.testing.assert_allclose(fast[k], slow[k], atol=tol, rtol=tol, err_msg=k)


@pytest.mark.parametrize("name", ["lstm", "gru", "peephole_lstm"])
def test_changing_the_outputs_does_not_change_the_gradients(name):
    has_c, _, _, sfwd, sbwd = CELLS[name]
    x, p, h0, c0 = setup(name, seed=11)
    (out, fin), cache = sfwd(x, p, h0, c0 if has_c else None)
    dout = np.random.default_rng(12).standard_normal(out.shape)
    before = sbwd(dout, cache)
    out *= 0.0
    for f in (fin if has_c else (fin,)):
        f += 1.0
    after = sbwd(dout, cache)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
