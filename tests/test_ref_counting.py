"""Parameter counts against torch numel, the book's figures, ratios, FLOPs and BPTT memory."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

import gated_lib as gl
from gated_lib.catalog import CELLS

torch = pytest.importorskip("torch")

TORCH = {"rnn": lambda **kw: torch.nn.RNN(**kw), "lstm": lambda **kw: torch.nn.LSTM(**kw),
         "gru": lambda **kw: torch.nn.GRU(**kw)}

GRID = [
    dict(cell=cell, input_size=D, hidden_size=H, num_layers=L, bidirectional=bd, bias=b, proj_size=P)
    for cell, D, H, L, bd, b, P in itertools.product(("rnn", "lstm", "gru"), (1, 7), (1, 3, 6), (1, 2, 3),
                                                      (False, True), (True, False), (0, 1, 2))
    if P == 0 or (cell == "lstm" and P < H)       # torch: proj_size only for LSTM, and < hidden_size
]


def torch_numel(cell, proj_size, **kw):
    if proj_size:
        kw["proj_size"] = proj_size
    return sum(p.numel() for p in TORCH[cell](**kw).parameters())


def test_grid_covers_every_torch_option():
    assert len(GRID) > 200
    assert any(c["proj_size"] and c["bidirectional"] and c["num_layers"] > 1 and not c["bias"] for c in GRID)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_param_count_equals_torch_numel(cell):
    mismatches = []
    for c in (c for c in GRID if c["cell"] == cell):
        kw = {k: v for k, v in c.items() if k not in ("cell", "proj_size")}
        ours = gl.param_count(cell, **kw, proj_size=c["proj_size"])
        theirs = torch_numel(cell, c["proj_size"], **kw)
        if ours != theirs:
            mismatches.append((c, ours, theirs))
    assert not mismatches, mismatches[:5]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_per_layer_terms_match_torch_parameter_shapes(cell):
    kw = dict(input_size=5, hidden_size=4, num_layers=2, bidirectional=True)
    proj = 3 if cell == "lstm" else 0
    module = TORCH[cell](**kw, **({"proj_size": proj} if proj else {}))
    rows = gl.param_count_per_layer(cell, **kw, proj_size=proj)
    dirs = 2
    for k, row in enumerate(rows):
        suffix = f"_l{k // dirs}" + ("_reverse" if k % dirs else "")
        sd = module.state_dict()
        assert row["weight_ih"] == sd["weight_ih" + suffix].numel()
        assert row["weight_hh"] == sd["weight_hh" + suffix].numel()
        assert row["biases"] == sd["bias_ih" + suffix].numel() + sd["bias_hh" + suffix].numel()
        assert row["input_size"] == sd["weight_ih" + suffix].shape[1]
        if proj:
            assert row["weight_hr"] == sd["weight_hr" + suffix].numel()


def test_book_figures():
    assert gl.param_count("lstm", 10, 20) == 2_560
    assert gl.param_count("gru", 10, 20) == 1_920
    assert gl.param_count("lstm", 10, 20, proj_size=5) == 1_460
    assert gl.param_count("lstm", 10, 20, num_layers=2, bidirectional=True) == 15_040
    assert gl.param_count("lstm", 10, 20, single_bias=True) == 2_480
    assert gl.keras_param_count("gru", 10, 20, reset_after=True) == 1_920
    assert gl.keras_param_count("gru", 10, 20, reset_after=False) == 1_860
    # and torch agrees with the torch-layout figures
    assert torch_numel("lstm", 0, input_size=10, hidden_size=20) == 2_560
    assert torch_numel("gru", 0, input_size=10, hidden_size=20) == 1_920
    assert torch_numel("lstm", 5, input_size=10, hidden_size=20) == 1_460
    assert torch_numel("lstm", 0, input_size=10, hidden_size=20, num_layers=2, bidirectional=True) == 15_040


def test_keras_counts():
    D, H = 10, 20
    assert gl.keras_param_count("rnn", D, H) == H * (D + H) + H
    assert gl.keras_param_count("lstm", D, H) == 4 * (H * (D + H) + H) == 2_480
    with pytest.raises(gl.GatedLibError, match="Keras"):
        gl.keras_param_count("mgu", D, H)


@pytest.mark.parametrize("D,H", [(10, 20), (1, 1), (128, 256), (3, 7)])
@pytest.mark.parametrize("options", [{}, {"single_bias": True}, {"bias": False}, {"num_layers": 3, "bidirectional": True}])
def test_ratios_are_4_and_3(D, H, options):
    assert gl.param_ratio("lstm", "rnn", D, H, **options) == 4
    assert gl.param_ratio("gru", "rnn", D, H, **options) == 3
    assert gl.param_ratio("mgu", "rnn", D, H, **options) == 2
    assert isinstance(gl.param_ratio("lstm", "rnn", D, H, **options), Fraction)


def test_ratio_is_not_4_with_proj_or_peepholes():
    """The ratio comes from the formulas: where the structure is not G copies, it is not G."""
    assert gl.param_ratio("lstm", "rnn", 10, 20, proj_size=5) == Fraction(1460, 640)
    assert gl.param_ratio("peephole_lstm", "rnn", 10, 20) == Fraction(2560 + 60, 640)
    assert Fraction(gl.keras_param_count("gru", 10, 20), gl.keras_param_count("rnn", 10, 20)) != 3


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("bias_option", ["double", "single", "none"])
def test_param_count_equals_size_of_initialised_params(cell, bias_option):
    opts = {"double": {}, "single": {"single_bias": True}, "none": {"bias": False}}[bias_option]
    layers = gl.init_stack(cell, 6, 5, num_layers=2, bidirectional=True, rng=0,
                           **({"proj_size": 3} if cell == "lstm" else {}), **opts)
    total = sum(v.size for p in layers for v in p.values())
    assert total == gl.param_count(cell, 6, 5, num_layers=2, bidirectional=True,
                                   proj_size=3 if cell == "lstm" else 0, **opts)


def test_proj_only_for_lstm():
    with pytest.raises(gl.GatedLibError, match="proj_size"):
        gl.param_count("gru", 10, 20, proj_size=5)


def test_flops_per_step():
    D, H, B = 10, 20, 8
    f = gl.flops_per_step("lstm", D, H, batch_size=B)
    assert f["matmul"] == 2 * B * 4 * H * (D + H)
    assert f["forward"] == f["matmul"] + f["elementwise"]
    assert f["backward_matmul"] == 2 * f["matmul"]
    assert f["train"] == 3 * f["matmul"] + f["elementwise"]
    # multiply-add = 2 FLOPs: one (1 x K) @ (K x N) product is 2KN
    assert gl.flops_per_step("rnn", 1, 1, bias=False)["matmul"] == 2 * (1 + 1)
    r = gl.flops_per_step("rnn", D, H, batch_size=B)
    g = gl.flops_per_step("gru", D, H, batch_size=B)
    assert f["matmul"] == 4 * r["matmul"] and g["matmul"] == 3 * r["matmul"]
    p = gl.flops_per_step("lstm", D, H, batch_size=B, proj_size=5)
    assert p["matmul"] == 2 * B * 4 * H * (D + 5) + 2 * B * 5 * H
    # elementwise work is a small share at the course's sizes
    big = gl.flops_per_step("lstm", 128, 256, batch_size=64)
    assert big["elementwise"] < 0.02 * big["forward"]


def _cache_arrays(cache):
    """Every array a sequence cache keeps for the backward pass (not the parameters)."""
    skip = {"weight_ih", "weight_hh", "params", "cell"}
    arrays = [cache.x] + list(cache.state0)
    for step in cache:
        arrays += [v for k, v in step.items() if k not in skip and isinstance(v, np.ndarray)]
    return arrays


def _unique_bytes(arrays):
    seen, total = set(), 0
    for a in arrays:
        base = a
        while base.base is not None and isinstance(base.base, np.ndarray):
            base = base.base
        if id(base) not in seen:
            seen.add(id(base))
            total += base.nbytes
    return total


FORWARDS = {
    "rnn_tanh": lambda x, p: gl.rnn_forward(x, p), "rnn_relu": lambda x, p: gl.rnn_forward(x, p, nonlinearity="relu"),
    "lstm": gl.lstm_forward, "gru": gl.gru_forward, "gru_cho": lambda x, p: gl.gru_forward(x, p, convention="cho"),
    "nfg_lstm": gl.nfg_lstm_forward, "peephole_lstm": gl.peephole_lstm_forward, "cifg_lstm": gl.cifg_lstm_forward,
    "noaf_lstm": gl.noaf_lstm_forward, "mgu": gl.mgu_forward,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_bptt_memory_formula_equals_what_the_cache_holds(cell, dtype):
    T, B, D, H = 7, 3, 5, 4
    x = np.random.default_rng(0).standard_normal((T, B, D)).astype(dtype)
    (_, _), cache = FORWARDS[cell](x, gl.init_params(cell, D, H, rng=0, dtype=dtype))
    assert _unique_bytes(_cache_arrays(cache)) == gl.bptt_memory(cell, T, B, D, H, dtype)["bytes"]


def test_bptt_memory_with_proj():
    T, B, D, H, P = 6, 2, 3, 5, 2
    x = np.random.default_rng(0).standard_normal((T, B, D))
    (_, _), cache = gl.lstm_forward(x, gl.init_params("lstm", D, H, rng=0, dtype=np.float64, proj_size=P))
    assert _unique_bytes(_cache_arrays(cache)) == gl.bptt_memory("lstm", T, B, D, H, np.float64, proj_size=P)["bytes"]


def test_bptt_memory_grows_linearly_in_T():
    a = gl.bptt_memory("lstm", 100, 64, 128, 256)
    b = gl.bptt_memory("lstm", 200, 64, 128, 256)
    assert b["bytes"] - a["bytes"] == 100 * 64 * (128 + 7 * 256) * 4
