"""The model wrapper, the backend switch and the module's life cycle (copy, pickle, .to)."""

from __future__ import annotations

import copy
import io
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from gated_lib.nn import LSTM, ModelConfig, Recurrent, SequenceModel  # noqa: E402


def test_top_level_and_tasks_import_without_torch():
    code = ("import sys, gated_lib, gated_lib.tasks; "
            "gated_lib.tasks.adding_problem(2, 10, 0); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readout_last_reads_each_sequence_at_its_own_end():
    torch.manual_seed(0)
    m = SequenceModel(ModelConfig(cell="gru", input_size=3, hidden_size=5, output_size=2)).double()
    seqs = [torch.randn(L, 3, dtype=torch.float64) for L in (4, 7, 2)]
    padded = torch.zeros(7, 3, 3, dtype=torch.float64)
    for b, s in enumerate(seqs):
        padded[:len(s), b] = s
        padded[len(s):, b] = 100.0                         # padding after the end must never matter
    pred = m(padded, lengths=torch.tensor([4, 7, 2]))
    for b, s in enumerate(seqs):
        alone = m(s[:, None, :])
        assert torch.allclose(pred[b], alone[0], atol=1e-12)


def test_readout_all_and_tokens():
    m = SequenceModel(ModelConfig(vocab_size=6, embedding_dim=None, hidden_size=4, output_size=6, readout="all"))
    out = m(torch.randint(0, 6, (5, 2)))
    assert out.shape == (5, 2, 6)
    m2 = SequenceModel(ModelConfig(vocab_size=6, embedding_dim=3, hidden_size=4, output_size=6, readout="all"))
    assert m2.rnn.input_size == 3 and m2(torch.randint(0, 6, (5, 2))).shape == (5, 2, 6)


def test_generation_state_continues_the_sequence():
    torch.manual_seed(0)
    m = SequenceModel(ModelConfig(vocab_size=6, hidden_size=4, output_size=6, readout="all"))
    x = torch.randint(0, 6, (8, 1))
    full = m(x)
    _, state = m(x[:5], return_state=True)
    rest = m(x[5:], hx=state)
    assert torch.allclose(full[5:], rest, atol=1e-6)


def test_auto_backend_resolution():
    assert Recurrent(cell="lstm", input_size=2, hidden_size=3).resolved_backend() == "torch"
    assert Recurrent(cell="gru_cho", input_size=2, hidden_size=3).resolved_backend() == "fused"
    assert Recurrent(cell="peephole_lstm", input_size=2, hidden_size=3).resolved_backend() == "eager"


def test_use_backend_restores_after_an_exception():
    m = LSTM(2, 3, backend="fused")
    with pytest.raises(RuntimeError):
        with m.use_backend("eager"):
            assert m.resolved_backend() == "eager"
            raise RuntimeError("boom")
    assert m.backend == "fused"


def test_deepcopy_pickle_and_to_keep_the_torch_backend_working():
    torch.manual_seed(0)
    m = LSTM(3, 4, num_layers=2, backend="torch")
    x = torch.randn(5, 2, 3)
    ref = m(x)[0]
    c = copy.deepcopy(m)
    with torch.no_grad():
        c.weight_hh_l1.add_(1.0)                           # the copy's twin must use the copy's weights
    assert not torch.allclose(c(x)[0], ref)
    assert torch.allclose(m(x)[0], ref)                    # and the original is untouched
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert torch.allclose(loaded(x)[0], ref)
    d = m.double()
    assert d(x.double())[0].dtype == torch.float64
    assert list(dict(m.named_parameters())) == [k for k in m.state_dict()]   # each weight once, torch's names


def test_optimizer_step_is_seen_by_the_torch_backend():
    torch.manual_seed(0)
    m = LSTM(3, 4, backend="torch")
    x = torch.randn(5, 2, 3)
    before = m(x)[0].detach()
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    m(x)[0].sum().backward()
    opt.step()
    after_torch = m(x)[0].detach()
    m.backend = "eager"
    assert not torch.allclose(after_torch, before)
    assert torch.allclose(m(x)[0], after_torch, atol=1e-6)


# --- stacks with a different cell per layer (ModelConfig(cell=("gru", "lstm"))) -------------------

from gated_lib import counting  # noqa: E402
from gated_lib.errors import GatedLibError  # noqa: E402
from gated_lib.nn.models import CellStack, layer_cells  # noqa: E402


def stack_model(cell=("gru", "lstm"), **kw):
    cfg = dict(cell=cell, vocab_size=7, hidden_size=5, output_size=7, readout="all")
    cfg.update(kw)
    return SequenceModel(ModelConfig(**cfg))


def test_single_cell_stack_is_unchanged_and_a_uniform_tuple_is_the_same_model():
    torch.manual_seed(0)
    plain = stack_model("lstm", num_layers=2)
    torch.manual_seed(0)
    tupled = stack_model(("lstm", "lstm"))
    assert type(plain.rnn) is Recurrent and plain.rnn.num_layers == 2 and plain.config.cell == "lstm"
    assert type(tupled.rnn) is Recurrent and tupled.config.num_layers == 2
    a, b = plain.state_dict(), tupled.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("cells", [("gru", "lstm"), ("lstm", "gru"), ("rnn", "gru", "lstm")])
def test_mixed_stack_shapes_and_cells_per_layer(cells):
    m = stack_model(cells, embedding_dim=3)
    assert isinstance(m.rnn, CellStack) and m.config.num_layers == len(cells)
    assert m.rnn.cells == layer_cells(cells) == tuple(l.spec.name for l in m.rnn.layers)
    assert [l.input_size for l in m.rnn.layers] == [3] + [5] * (len(cells) - 1)
    pred, state = m(torch.randint(0, 7, (6, 4)), return_state=True)
    assert pred.shape == (6, 4, 7) and len(state) == len(cells)
    for name, s in zip(m.rnn.cells, state):                 # each layer's own torch.nn state, L = 1
        shapes = [tuple(t.shape) for t in (s if isinstance(s, tuple) else (s,))]
        assert shapes == [(1, 4, 5)] * (2 if name == "lstm" else 1)


def test_mixed_stack_runs_its_cells_in_order():
    """The stack equals torch.nn.GRU followed by torch.nn.LSTM with the same weights (state included)."""
    torch.manual_seed(0)
    stack = CellStack(("gru", "lstm"), input_size=3, hidden_size=4).double()
    gru, lstm = torch.nn.GRU(3, 4).double(), torch.nn.LSTM(4, 4).double()
    gru.load_state_dict(stack.layers[0].state_dict())
    lstm.load_state_dict(stack.layers[1].state_dict())
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    out, (h_gru, (h_lstm, c_lstm)) = stack(x)
    mid, h1 = gru(x)
    ref, (h2, c2) = lstm(mid)
    assert torch.allclose(out, ref, atol=1e-12) and torch.allclose(h_gru, h1) and torch.allclose(c_lstm, c2)
    with stack.use_backend("eager"):                        # the equations agree with torch's kernels
        assert torch.allclose(stack(x)[0], ref, atol=1e-12)


def test_mixed_stack_parameter_count_is_the_sum_of_its_layers():
    m = stack_model(("rnn_tanh", "gru", "lstm"), embedding_dim=None, hidden_size=6)
    D, H = 7, 6
    per_layer = [counting.param_count(c, D if k == 0 else H, H) for k, c in enumerate(("rnn_tanh", "gru", "lstm"))]
    assert sum(p.numel() for p in m.rnn.parameters()) == sum(per_layer)
    assert [sum(p.numel() for p in l.parameters()) for l in m.rnn.layers] == per_layer
    assert sum(p.numel() for p in m.parameters()) == sum(per_layer) + H * 7 + 7      # + the readout


def test_swapping_the_layers_keeps_the_count_when_the_input_is_as_wide_as_the_state():
    a, b = stack_model(("gru", "lstm"), embedding_dim=5), stack_model(("lstm", "gru"), embedding_dim=5)
    n = lambda m: sum(p.numel() for p in m.parameters())   # noqa: E731
    assert n(a) == n(b)
    assert n(stack_model(("gru", "lstm"))) != n(stack_model(("lstm", "gru")))      # one-hot input: D = 7 != H = 5


def test_forget_bias_goes_to_the_layers_with_a_forget_gate():
    m = stack_model(("gru", "lstm"), forget_bias=3.0)
    lstm = m.rnn.layers[1]
    H = 5
    effective = lstm.bias_ih_l0[H:2 * H] + lstm.bias_hh_l0[H:2 * H]
    assert torch.allclose(effective, torch.full((H,), 3.0))
    assert not torch.any(m.rnn.layers[0].bias_ih_l0 == 3.0)


def test_mixed_stack_generation_state_continues_the_sequence():
    torch.manual_seed(0)
    m = stack_model(("lstm", "gru"))
    x = torch.randint(0, 7, (9, 2))
    full = m(x)
    _, state = m(x[:4], return_state=True)
    assert torch.allclose(full[4:], m(x[4:], hx=state), atol=1e-6)


def test_mixed_stack_dropout_acts_between_layers_in_training_only():
    torch.manual_seed(0)
    m = stack_model(("gru", "lstm"), dropout=0.5)
    x = torch.randint(0, 7, (5, 3))
    m.eval()
    assert torch.equal(m(x), m(x))
    m.train()
    assert not torch.allclose(m(x), m(x))


@pytest.mark.parametrize("kw,message", [
    (dict(cell=()), r"cell: expected a cell name .*non-empty tuple.*got \(\)"),
    (dict(cell=("gru", 3)), r"cell: expected a cell name .*got \('gru', 3\)"),
    (dict(cell=7), r"cell: expected a cell name .*got 7"),
    (dict(cell=("gru", "lstn")), r"cell\[1\]: cell: expected one of .*got 'lstn'"),
    (dict(cell="lstn"), r"cell: expected one of .*got 'lstn'"),
    (dict(cell=("gru", "lstm"), num_layers=3), r"num_layers: the tuple cell=\('gru', 'lstm'\) names 2 layers; "
                                                r"expected num_layers = 1 \(the default\) or 2, got 3"),
    (dict(cell=("gru", "lstm"), num_layers=0), r"num_layers: expected a positive int, got 0"),
    (dict(cell=("gru", "rnn"), forget_bias=1.0), r"forget_bias: none of the cells \('gru', 'rnn_tanh'\) has a forget gate"),
    (dict(cell=("gru", "peephole_lstm"), backend="torch"), r"backend: 'torch' exists only .*not 'peephole_lstm'"),
])
def test_bad_stacks_raise_errors_that_name_the_argument(kw, message):
    with pytest.raises(GatedLibError, match=message):
        stack_model(**kw)


def test_mixed_stack_rejects_a_state_of_the_wrong_form():
    m = stack_model(("gru", "lstm"))
    x = torch.randint(0, 7, (3, 2))
    _, state = m(x, return_state=True)
    with pytest.raises(GatedLibError, match=r"hx: a stack of 2 layers \('gru', 'lstm'\) takes a tuple of 2 "
                                            r"per-layer states .*got tuple of length 1"):
        m(x, hx=state[:1])
    with pytest.raises(GatedLibError, match=r"hx: the lstm cell has two states"):
        m(x, hx=(state[0], state[0]))                       # a GRU state where the LSTM's (h, c) belongs


def test_mixed_stack_checkpoint_round_trip(tmp_path):
    from gated_lib.tasks import CharLM
    from gated_lib.training import TrainConfig, Trainer

    task = CharLM(text="abcabdabe" * 20, seq_len=8)
    cfg = TrainConfig(steps=3, batch_size=4, eval_every=3, eval_size=4, progress=False, seed=1)
    t = Trainer.for_task(task, dict(cell=["gru", "lstm"], hidden_size=6), cfg)   # a list, as JSON would give
    assert t.model.config.cell == ("gru", "lstm") and t.model.config.num_layers == 2
    t.fit()
    path = t.save_checkpoint(tmp_path / "stack.pt")
    r = Trainer.resume(path, task)
    assert isinstance(r.model.rnn, CellStack) and r.model.rnn.cells == ("gru", "lstm")
    for (name, p), q in zip(t.model.named_parameters(), r.model.parameters()):
        assert torch.equal(p, q), name
    r.fit(steps=5)
    assert r.step == 5
