"""Gradient checks of every backward of the numpy reference, in float64, rel_error < 1e-7.

Every cell is checked at the cell level (x, h_prev, c_prev and every parameter) and at the sequence
level (x, h0, c0 and every parameter, with upstream gradients on both `out` and the final states),
over sizes that include B = 1, H = 1 and T = 1. Stacks (layers, directions), proj_size, the single
textbook bias and bias=False are checked too. Sizes stay tiny so that centred differences are fast.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import gated_lib as gl
from gated_lib.gradcheck import grad_check

TOL = 1e-7

# name -> (G, has_c, extra (H,) params, cell forward(x, state, params), cell backward,
#          sequence forward(x, params, h0, c0, **kw), sequence backward(dout, cache, *dfinal))
CELLS = {
    "rnn_tanh": (1, False, (), lambda x, s, p: gl.rnn_cell_forward(x, s[0], p, "tanh"), gl.rnn_cell_backward,
                 lambda x, p, h0, c0, **kw: gl.rnn_forward(x, p, h0, "tanh", **kw), gl.rnn_backward),
    "rnn_relu": (1, False, (), lambda x, s, p: gl.rnn_cell_forward(x, s[0], p, "relu"), gl.rnn_cell_backward,
                 lambda x, p, h0, c0, **kw: gl.rnn_forward(x, p, h0, "relu", **kw), gl.rnn_backward),
    "lstm": (4, True, (), lambda x, s, p: gl.lstm_cell_forward(x, s[0], s[1], p), gl.lstm_cell_backward,
             lambda x, p, h0, c0, **kw: gl.lstm_forward(x, p, h0, c0, **kw), gl.lstm_backward),
    "gru": (3, False, (), lambda x, s, p: gl.gru_cell_forward(x, s[0], p, "pytorch"), gl.gru_cell_backward,
            lambda x, p, h0, c0, **kw: gl.gru_forward(x, p, h0, "pytorch", **kw), gl.gru_backward),
    "gru_cho": (3, False, (), lambda x, s, p: gl.gru_cell_forward(x, s[0], p, "cho"), gl.gru_cell_backward,
                lambda x, p, h0, c0, **kw: gl.gru_forward(x, p, h0, "cho", **kw), gl.gru_backward),
    "nfg_lstm": (3, True, (), lambda x, s, p: gl.nfg_lstm_cell_forward(x, s[0], s[1], p), gl.nfg_lstm_cell_backward,
                 lambda x, p, h0, c0, **kw: gl.nfg_lstm_forward(x, p, h0, c0, **kw), gl.nfg_lstm_backward),
    "peephole_lstm": (4, True, ("weight_ci", "weight_cf", "weight_co"),
                      lambda x, s, p: gl.peephole_lstm_cell_forward(x, s[0], s[1], p), gl.peephole_lstm_cell_backward,
                      lambda x, p, h0, c0, **kw: gl.peephole_lstm_forward(x, p, h0, c0, **kw),
                      gl.peephole_lstm_backward),
    "cifg_lstm": (3, True, (), lambda x, s, p: gl.cifg_lstm_cell_forward(x, s[0], s[1], p), gl.cifg_lstm_cell_backward,
                  lambda x, p, h0, c0, **kw: gl.cifg_lstm_forward(x, p, h0, c0, **kw), gl.cifg_lstm_backward),
    "noaf_lstm": (4, True, (), lambda x, s, p: gl.noaf_lstm_cell_forward(x, s[0], s[1], p), gl.noaf_lstm_cell_backward,
                  lambda x, p, h0, c0, **kw: gl.noaf_lstm_forward(x, p, h0, c0, **kw), gl.noaf_lstm_backward),
    "mgu": (2, False, (), lambda x, s, p: gl.mgu_cell_forward(x, s[0], p), gl.mgu_cell_backward,
            lambda x, p, h0, c0, **kw: gl.mgu_forward(x, p, h0, **kw), gl.mgu_backward),
}

# (T, B, D, H): the edge cases named in the issue, then sizes drawn once from a seeded generator.
EDGE_SIZES = [(1, 1, 1, 1), (1, 2, 3, 1), (3, 1, 2, 2), (2, 3, 1, 3)]
RANDOM_SIZES = [tuple(int(v) for v in np.random.default_rng(s).integers(1, 5, 4)) for s in (11, 12)]
SIZES = EDGE_SIZES + RANDOM_SIZES


def seed_of(*key) -> int:
    """A seed that is the same in every run (hash() of a str is salted per process)."""
    return zlib.crc32(repr(key).encode())


def make_params(rng, G, D, H, extra=(), bias="double", R=None, scale=0.6):
    R = R or H
    p = {"weight_ih": scale * rng.standard_normal((G * H, D)), "weight_hh": scale * rng.standard_normal((G * H, R))}
    if bias == "double":
        p["bias_ih"] = scale * rng.standard_normal(G * H)
        p["bias_hh"] = scale * rng.standard_normal(G * H)
    elif bias == "single":
        p["bias"] = scale * rng.standard_normal(G * H)
    for name in extra:
        p[name] = scale * rng.standard_normal(H)
    return p


def check(report):
    assert report.passed, str(report)
    # Every parameter and input must have been compared, not skipped.
    assert all(np.isfinite(e) for e in report.errors.values()), str(report)


def cell_case(name, size, bias="double", seed=0):
    G, has_c, extra, cfwd, cbwd, _, _ = CELLS[name]
    T, B, D, H = size
    rng = np.random.default_rng(seed)
    inputs = make_params(rng, G, D, H, extra, bias)
    inputs["x"] = rng.standard_normal((B, D))
    inputs["h_prev"] = rng.standard_normal((B, H))
    if has_c:
        inputs["c_prev"] = rng.standard_normal((B, H))
    params = [k for k in inputs if k.startswith(("weight", "bias"))]

    def forward(d):
        state = (d["h_prev"], d["c_prev"]) if has_c else (d["h_prev"],)
        return cfwd(d["x"], state, {k: d[k] for k in params})

    return forward, inputs, cbwd


@pytest.mark.parametrize("size", SIZES[:4], ids=str)
@pytest.mark.parametrize("name", list(CELLS))
def test_cell_backward(name, size):
    forward, inputs, backward = cell_case(name, size, seed=seed_of(name, size))
    # relu has a kink at 0: the five-point stencil's wider reach (2h = 2e-3) could straddle it.
    opts = dict(order=2, h=1e-6) if name == "rnn_relu" else {}
    check(grad_check(forward, inputs, backward, **opts))


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh", "peephole_lstm", "mgu"])
@pytest.mark.parametrize("bias", ["single", "none"])
def test_cell_backward_bias_options(name, bias):
    forward, inputs, backward = cell_case(name, (1, 3, 2, 3), bias=bias, seed=5)
    report = grad_check(forward, inputs, backward)
    check(report)
    expected = {"single": {"bias"}, "none": set()}[bias]
    assert {k for k in report.errors if k.startswith("bias")} == expected


def seq_case(name, size, bias="double", seed=0, layers=None, bidirectional=False, proj=0):
    G, has_c, extra, _, _, sfwd, sbwd = CELLS[name]
    T, B, D, H = size
    rng = np.random.default_rng(seed)
    R = proj or H
    inputs = {"x": rng.standard_normal((T, B, D))}
    if layers is None:
        p = make_params(rng, G, D, H, extra, bias, R)
        if proj:
            p["weight_hr"] = 0.6 * rng.standard_normal((R, H))
        inputs.update(p)
        names = list(p)
        inputs["h0"] = rng.standard_normal((B, R))
        if has_c:
            inputs["c0"] = rng.standard_normal((B, H))

        def build(d):
            return {k: d[k] for k in names}
    else:
        dirs = 2 if bidirectional else 1
        keys = []
        for k in range(layers * dirs):
            layer, direction = divmod(k, dirs)
            p = make_params(rng, G, D if layer == 0 else R * dirs, H, extra, bias, R)
            if proj:
                p["weight_hr"] = 0.6 * rng.standard_normal((R, H))
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            inputs.update({n + suffix: v for n, v in p.items()})
            keys.append((suffix, list(p)))
        inputs["h0"] = rng.standard_normal((layers * dirs, B, R))
        if has_c:
            inputs["c0"] = rng.standard_normal((layers * dirs, B, H))

        def build(d):
            return [{n: d[n + suffix] for n in names} for suffix, names in keys]

    def forward(d):
        return sfwd(d["x"], build(d), d["h0"], d.get("c0"), bidirectional=bidirectional)

    def backward(dout, cache):
        dout_seq, dfinal = dout
        return sbwd(dout_seq, cache, *(dfinal if has_c else (dfinal,)))

    return forward, inputs, backward


@pytest.mark.parametrize("size", SIZES, ids=str)
@pytest.mark.parametrize("name", list(CELLS))
def test_sequence_backward(name, size):
    forward, inputs, backward = seq_case(name, size, seed=seed_of(name, size, "seq"))
    opts = dict(order=2, h=1e-6) if name == "rnn_relu" else {}
    report = grad_check(forward, inputs, backward, **opts)
    check(report)
    assert {"x", "h0"} <= set(report.errors)


@pytest.mark.parametrize("name", ["lstm", "gru", "gru_cho", "rnn_tanh", "peephole_lstm", "cifg_lstm", "mgu"])
@pytest.mark.parametrize("layers,bidirectional", [(2, False), (1, True), (2, True)])
def test_stack_backward(name, layers, bidirectional):
    forward, inputs, backward = seq_case(name, (3, 2, 2, 2), seed=7, layers=layers, bidirectional=bidirectional)
    report = grad_check(forward, inputs, backward)
    check(report)
    assert f"weight_hh_l{layers - 1}" in report.errors
    if bidirectional:
        assert f"weight_ih_l{layers - 1}_reverse" in report.errors


@pytest.mark.parametrize("layers,bidirectional", [(None, False), (2, False), (1, True)])
def test_lstm_proj_backward(layers, bidirectional):
    forward, inputs, backward = seq_case("lstm", (3, 2, 3, 3), seed=3, layers=layers,
                                         bidirectional=bidirectional, proj=2)
    report = grad_check(forward, inputs, backward)
    check(report)
    assert any(k.startswith("weight_hr") for k in report.errors)


@pytest.mark.parametrize("name", ["lstm", "gru", "nfg_lstm"])
def test_sequence_backward_without_final_state_gradients(name):
    """dh_n / dc_n are optional: None must mean zero, not be ignored or crash."""
    forward, inputs, _ = seq_case(name, (3, 2, 2, 3), seed=9)
    has_c = CELLS[name][1]
    sbwd = CELLS[name][6]

    def out_only(d):
        (out, _), cache = forward(d)
        return out, cache

    check(grad_check(out_only, inputs, lambda dout, cache: sbwd(dout, cache)))
    if has_c:  # only dc_n given: the gradient of c_n alone
        def c_only(d):
            (_, (_, c_n)), cache = forward(d)
            return c_n, cache
        zeros = np.zeros(inputs["x"].shape[:2] + (3,))
        check(grad_check(c_only, inputs, lambda dc, cache: sbwd(zeros, cache, None, dc)))
