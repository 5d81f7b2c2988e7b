"""The torch path computes the numpy reference's equations and torch.nn's, forward and backward.

float64 throughout, tolerance 1e-10 (the numbers differ only by summation order):
- every backend ("eager", "fused", "torch") of the standard cells against torch.nn.RNN/LSTM/GRU,
  stacked, with and without biases, with random initial states; state_dicts load both ways;
- every cell of the numpy reference's catalogue against gated_lib's numpy forward *and* backward;
- the hand-written BPTT of the fused kernels against autograd (torch.autograd.gradcheck).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gated_lib as gl  # noqa: E402
from gated_lib.catalog import CELLS as CATALOG  # noqa: E402
from gated_lib.nn import CELLS, Cell, GRU, LSTM, RNN, Recurrent, cell_spec  # noqa: E402
from gated_lib.nn.fused import FUSED, GRUChoFunction, GRUFunction, LSTMFunction, RNNFunction  # noqa: E402

TOL = 1e-10
T, B, D, H = 5, 3, 4, 6
TORCH_NN = {
    "rnn_tanh": lambda **kw: torch.nn.RNN(nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: torch.nn.RNN(nonlinearity="relu", **kw),
    "lstm": lambda **kw: torch.nn.LSTM(**kw),
    "gru": lambda **kw: torch.nn.GRU(**kw),
}


def backends(cell):
    spec = cell_spec(cell)
    return ["eager"] + (["fused"] if spec.name in FUSED else []) + (["torch"] if spec.torch_mode else [])


def max_diff(a, b) -> float:
    a = a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)
    b = b.detach().numpy() if hasattr(b, "detach") else np.asarray(b)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def run(module, x, hx, dout, dfinal):
    """Forward, then backward of sum(out * dout) + sum(final * dfinal); returns out, finals, grads."""
    x = x.detach().clone().requires_grad_(True)
    hx = tuple(h.detach().clone().requires_grad_(True) for h in hx)
    module.zero_grad()
    out, final = module(x, hx if len(hx) == 2 else hx[0])
    finals = final if isinstance(final, tuple) else (final,)
    loss = (out * dout).sum() + sum((f * d).sum() for f, d in zip(finals, dfinal))
    loss.backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    grads["x"] = x.grad
    for k, h in enumerate(hx):
        grads[("h0", "c0")[k]] = h.grad
    return out, finals, grads


def random_inputs(spec, L, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, D, generator=g, dtype=torch.float64)
    hx = tuple(torch.randn(L, B, H, generator=g, dtype=torch.float64) for _ in range(2 if spec.cell_state else 1))
    dout = torch.randn(T, B, H, generator=g, dtype=torch.float64)
    dfinal = tuple(torch.randn(L, B, H, generator=g, dtype=torch.float64) for _ in hx)
    return x, hx, dout, dfinal


# --- against torch.nn ----------------------------------------------------------------------------

@pytest.mark.parametrize("num_layers,bias", [(1, True), (2, True), (2, False)])
@pytest.mark.parametrize("cell", sorted(TORCH_NN))
def test_standard_cells_match_torch_nn_forward_and_gradients(cell, num_layers, bias):
    torch.manual_seed(0)
    ref = TORCH_NN[cell](input_size=D, hidden_size=H, num_layers=num_layers, bias=bias).double()
    torch.manual_seed(0)
    ours = Recurrent(cell=cell, input_size=D, hidden_size=H, num_layers=num_layers, bias=bias).double()
    # the same seed gives the same initial weights, under the same names, in the same order
    assert list(ours.state_dict()) == list(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[k], v), f"initial {k} differs from torch.nn's"
    args = random_inputs(ours.spec, num_layers, seed=1)
    r_out, r_fin, r_grads = run(ref, *args)
    for backend in backends(cell):
        ours.backend = backend
        out, fin, grads = run(ours, *args)
        assert max_diff(out, r_out) < TOL, f"{backend}: output differs from torch.nn"
        for a, b in zip(fin, r_fin):
            assert max_diff(a, b) < TOL, f"{backend}: final state differs from torch.nn"
        assert set(grads) == set(r_grads)
        for name in r_grads:
            assert max_diff(grads[name], r_grads[name]) < TOL, f"{backend}: d{name} differs from torch.nn's"


@pytest.mark.parametrize("cell", sorted(TORCH_NN))
def test_state_dict_loads_both_ways(cell):
    torch.manual_seed(3)
    ref = TORCH_NN[cell](input_size=D, hidden_size=H, num_layers=2)
    ours = Recurrent(cell=cell, input_size=D, hidden_size=H, num_layers=2)
    ours.load_state_dict(ref.state_dict())                  # torch.nn -> gated_lib (strict)
    x = torch.randn(T, B, D)
    assert torch.allclose(ours(x)[0], ref(x)[0], atol=1e-6)
    back = TORCH_NN[cell](input_size=D, hidden_size=H, num_layers=2)
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.1)
    back.load_state_dict(ours.state_dict())                 # gated_lib -> torch.nn (strict)
    assert torch.allclose(back(x)[0], ours(x)[0], atol=1e-6)


def test_named_constructors_mirror_torch_nn():
    assert RNN(D, H, nonlinearity="relu").spec.name == "rnn_relu"
    assert GRU(D, H, convention="cho").spec.name == "gru_cho"
    assert LSTM(D, H, variant="peephole").spec.name == "peephole_lstm"
    assert sum(p.numel() for p in LSTM(10, 20).parameters()) == 2560          # COURSE_DESIGN facts
    assert sum(p.numel() for p in GRU(10, 20).parameters()) == 1920


@pytest.mark.parametrize("cell,ref", [("lstm", torch.nn.LSTMCell), ("gru", torch.nn.GRUCell),
                                      ("rnn_tanh", torch.nn.RNNCell)])
def test_single_step_cells_match_torch_nn_cells(cell, ref):
    torch.manual_seed(0)
    theirs = ref(D, H).double()
    ours = Cell(cell, D, H).double()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(B, D, dtype=torch.float64)
    state = (torch.randn(B, H, dtype=torch.float64),) * (2 if cell == "lstm" else 1)
    a = ours(x, state if cell == "lstm" else state[0])
    b = theirs(x, state if cell == "lstm" else state[0])
    for u, v in zip(a if cell == "lstm" else (a,), b if cell == "lstm" else (b,)):
        assert max_diff(u, v) < TOL


def test_forget_bias_sets_the_effective_bias():
    m = LSTM(D, H, num_layers=2, forget_bias=2.5)
    for k in range(2):
        eff = getattr(m, f"bias_ih_l{k}") + getattr(m, f"bias_hh_l{k}")
        assert torch.allclose(eff[H:2 * H], torch.full((H,), 2.5))        # the forget slice is [H:2H]
        assert not torch.allclose(eff[:H], torch.full((H,), 2.5))         # and only that slice


def test_peephole_with_zero_peepholes_is_the_lstm():
    torch.manual_seed(0)
    a = Recurrent(cell="lstm", input_size=D, hidden_size=H).double()
    p = Recurrent(cell="peephole_lstm", input_size=D, hidden_size=H).double()
    sd = dict(a.state_dict(), weight_ci_l0=torch.zeros(H), weight_cf_l0=torch.zeros(H), weight_co_l0=torch.zeros(H))
    p.load_state_dict({k: v.double() for k, v in sd.items()})
    x = torch.randn(T, B, D, dtype=torch.float64)
    assert max_diff(p(x)[0], a(x)[0]) < TOL
    with torch.no_grad():
        p.weight_co_l0.fill_(1.0)
    assert max_diff(p(x)[0], a(x)[0]) > 1e-3                                 # the peephole is used


def test_min_gru_is_the_linear_recurrence():
    """minGRU: h_t = (1 - z_t) h_{t-1} + z_t xn_t, checked by unrolling."""
    torch.manual_seed(0)
    m = Recurrent(cell="min_gru", input_size=D, hidden_size=H).double()
    assert sorted(n for n, _ in m.named_parameters()) == ["bias_ih_l0", "weight_ih_l0"]
    x = torch.randn(T, B, D, dtype=torch.float64)
    h0 = torch.randn(1, B, H, dtype=torch.float64)
    out, h_n = m(x, h0)
    xp = x @ m.weight_ih_l0.T + m.bias_ih_l0
    z, xn = torch.sigmoid(xp[..., :H]), xp[..., H:]
    # closed form: h_T = prod(1 - z) h_0 + sum_t z_t xn_t prod_{s > t} (1 - z_s)
    keep = torch.flip(torch.cumprod(torch.flip(1 - z, [0]), 0), [0])           # prod_{s >= t} (1 - z_s)
    after = torch.cat([keep[1:], torch.ones_like(keep[:1])])                 # prod_{s > t}
    expected = keep[0] * h0[0] + (z * xn * after).sum(0)
    assert max_diff(h_n[0], expected) < TOL
    assert max_diff(out[-1], h_n[0]) < TOL


@pytest.mark.parametrize("parallel", [False, True])
def test_min_gru_matches_the_numpy_linear_recurrence(parallel):
    """The torch cell and gated_lib.linear_recurrence.mingru_forward (chapter 9) are the same minGRU:
    weight_ih rows [0:H] are weight_z, rows [H:2H] weight_h (z takes the new state in both)."""
    from gated_lib.linear_recurrence import mingru_forward

    torch.manual_seed(1)
    m = Recurrent(cell="min_gru", input_size=D, hidden_size=H).double()
    x = torch.randn(T, B, D, dtype=torch.float64)
    h0 = torch.randn(1, B, H, dtype=torch.float64)
    out, _ = m(x, h0)
    W, b = m.weight_ih_l0.detach().numpy(), m.bias_ih_l0.detach().numpy()
    params = dict(weight_z=W[:H], bias_z=b[:H], weight_h=W[H:], bias_h=b[H:])
    h, _ = mingru_forward(x.numpy(), params, h0=h0[0].numpy(), parallel=parallel)
    assert np.abs(out.detach().numpy() - h).max() < TOL


# --- against the numpy reference -----------------------------------------------------------------

NUMPY_FORWARD = {
    "rnn_tanh": (lambda x, p, h0, c0: gl.rnn_forward(x, p, h0, "tanh"), gl.rnn_backward),
    "rnn_relu": (lambda x, p, h0, c0: gl.rnn_forward(x, p, h0, "relu"), gl.rnn_backward),
    "lstm": (lambda x, p, h0, c0: gl.lstm_forward(x, p, h0, c0), gl.lstm_backward),
    "gru": (lambda x, p, h0, c0: gl.gru_forward(x, p, h0, "pytorch"), gl.gru_backward),
    "gru_cho": (lambda x, p, h0, c0: gl.gru_forward(x, p, h0, "cho"), gl.gru_backward),
    "nfg_lstm": (lambda x, p, h0, c0: gl.nfg_lstm_forward(x, p, h0, c0), gl.nfg_lstm_backward),
    "peephole_lstm": (lambda x, p, h0, c0: gl.peephole_lstm_forward(x, p, h0, c0), gl.peephole_lstm_backward),
    "cifg_lstm": (lambda x, p, h0, c0: gl.cifg_lstm_forward(x, p, h0, c0), gl.cifg_lstm_backward),
    "noaf_lstm": (lambda x, p, h0, c0: gl.noaf_lstm_forward(x, p, h0, c0), gl.noaf_lstm_backward),
    "mgu": (lambda x, p, h0, c0: gl.mgu_forward(x, p, h0), gl.mgu_backward),
}


def numpy_layers(module):
    """The module's parameters as the numpy reference's list of per-layer dicts (suffix dropped)."""
    return [{name: module.layer_params(k)[name].detach().numpy().copy() for name in module.layer_params(k)}
            for k in range(module.num_layers)]


def test_every_catalogue_cell_has_a_torch_module_with_the_same_layout():
    assert set(CATALOG) <= set(CELLS), f"cells without a torch module: {set(CATALOG) - set(CELLS)}"
    assert set(NUMPY_FORWARD) == set(CATALOG), "a catalogue cell has no parity test below"
    for name, info in CATALOG.items():
        spec = CELLS[name]
        assert spec.gates == info.gates, name
        assert spec.cell_state == info.has_cell_state, name
        assert spec.diagonals == info.peepholes, name
        assert spec.torch_mode == info.torch_mode, name


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", sorted(NUMPY_FORWARD))
def test_cells_match_the_numpy_reference_forward_and_backward(cell, num_layers):
    forward, backward = NUMPY_FORWARD[cell]
    torch.manual_seed(0)
    m = Recurrent(cell=cell, input_size=D, hidden_size=H, num_layers=num_layers).double()
    spec = m.spec
    x, hx, dout, dfinal = random_inputs(spec, num_layers, seed=2)
    layers = numpy_layers(m)
    params = layers[0] if num_layers == 1 else layers
    squeeze = (lambda a: a[0]) if num_layers == 1 else (lambda a: a)
    h0 = squeeze(hx[0].numpy())
    c0 = squeeze(hx[1].numpy()) if spec.cell_state else None
    (np_out, np_final), cache = forward(x.numpy(), params, h0, c0)
    np_finals = np_final if isinstance(np_final, tuple) else (np_final,)
    dfin = [squeeze(d.numpy()) for d in dfinal]
    np_grads = backward(dout.numpy(), cache, *dfin)
    for backend in backends(cell):
        m.backend = backend
        out, fin, grads = run(m, x, hx, dout, dfinal)
        assert max_diff(out, np_out) < TOL, f"{backend}: output differs from the numpy reference"
        for a, b in zip(fin, np_finals):
            assert max_diff(squeeze(a), b) < TOL, f"{backend}: final state differs"
        assert max_diff(grads["x"], np_grads["x"]) < TOL, f"{backend}: dx differs"
        assert max_diff(squeeze(grads["h0"]), np_grads["h0"]) < TOL, f"{backend}: dh0 differs"
        if spec.cell_state:
            assert max_diff(squeeze(grads["c0"]), np_grads["c0"]) < TOL, f"{backend}: dc0 differs"
        for name, g in grads.items():
            if name in ("x", "h0", "c0"):
                continue
            key = name.rsplit("_l", 1)[0] if num_layers == 1 else name
            assert max_diff(g, np_grads[key]) < TOL, f"{backend}: d{name} differs from the numpy reference"


def test_single_step_cell_matches_numpy_cell_forward():
    torch.manual_seed(0)
    c = Cell("lstm", D, H).double()
    params = {k: v.detach().numpy() for k, v in c.state_dict().items()}
    x, h, cc = (np.random.default_rng(0).standard_normal(s) for s in ((B, D), (B, H), (B, H)))
    (h1, c1), _ = gl.lstm_cell_forward(x, h, cc, params)
    th, tc = c(torch.from_numpy(x), (torch.from_numpy(h), torch.from_numpy(cc)))
    assert max_diff(th, h1) < TOL and max_diff(tc, c1) < TOL


# --- the fused kernels' hand-written BPTT ----------------------------------------------------------

def _leaf(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return (0.5 * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_(True)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", ["lstm", "gru", "gru_cho", "rnn_tanh", "rnn_relu"])
def test_fused_backward_passes_gradcheck(kind, bias):
    G = {"lstm": 4, "gru": 3, "gru_cho": 3, "rnn_tanh": 1, "rnn_relu": 1}[kind]
    t, b, d, h = 4, 2, 3, 3
    x, h0, c0 = _leaf(t, b, d, seed=1), _leaf(b, h, seed=2), _leaf(b, h, seed=3)
    w = [_leaf(G * h, d, seed=4), _leaf(G * h, h, seed=5)]
    bs = [_leaf(G * h, seed=6), _leaf(G * h, seed=7)] if bias else [None, None]
    if kind == "lstm":
        fn, args = LSTMFunction.apply, (x, h0, c0, *w, *bs)
    elif kind.startswith("gru"):
        fn, args = (GRUFunction if kind == "gru" else GRUChoFunction).apply, (x, h0, *w, *bs)
    else:
        fn, args = (lambda *a: RNNFunction.apply(*a, kind == "rnn_relu")), (x, h0, *w, *bs)
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-8)
