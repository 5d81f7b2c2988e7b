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
