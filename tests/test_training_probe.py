"""The gradient-flow probe: ||dL/dh_k|| and ||dL/dc_k|| for every step k."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gated_lib.errors import GatedLibError  # noqa: E402
from gated_lib.nn import LSTM, ModelConfig, Recurrent, SequenceModel  # noqa: E402
from gated_lib.training import gradient_flow  # noqa: E402


def test_matches_retain_grad_on_every_step():
    torch.manual_seed(0)
    m = SequenceModel(ModelConfig(cell="lstm", input_size=3, hidden_size=5, num_layers=2)).double()
    x = torch.randn(7, 4, 3, dtype=torch.float64)
    y = torch.randn(4, dtype=torch.float64)
    flow = gradient_flow(m, x, lambda pred: ((pred[:, 0] - y) ** 2).mean())
    # the same by hand: keep the per-step states of the last layer and read their .grad
    with m.rnn.use_backend("eager"):
        pred, per_layer = m(x, return_states=True)
    for h, c in per_layer[-1]:
        h.retain_grad()
        c.retain_grad()
    ((pred[:, 0] - y) ** 2).mean().backward()
    h_ref = np.array([float(h.grad.norm()) for h, _ in per_layer[-1]])
    c_ref = np.array([float(c.grad.norm()) for _, c in per_layer[-1]])
    np.testing.assert_allclose(flow.h, h_ref, rtol=1e-12)
    np.testing.assert_allclose(flow.c, c_ref, rtol=1e-12)
    assert list(flow.lag) == list(range(6, -1, -1))
    assert flow.layer == 1


def test_probe_does_not_touch_parameter_grads_and_restores_the_backend():
    m = LSTM(2, 4, backend="torch")
    x = torch.randn(5, 3, 2)
    gradient_flow(m, x, lambda res: res[0][-1].sum())
    assert all(p.grad is None for p in m.parameters())
    assert m.backend == "torch"


def test_vanilla_rnn_vanishes_where_lstm_with_forget_bias_carries():
    """Loss on the last step only: the RNN's gradient at lag 59 is orders of magnitude below its
    gradient at lag 0; the LSTM with forget bias 5 (f ~ 0.993) keeps most of its cell gradient."""
    torch.manual_seed(0)
    T = 60
    x = torch.randn(T, 8, 4, dtype=torch.float64)
    rnn = Recurrent(cell="rnn_tanh", input_size=4, hidden_size=16).double()
    with torch.no_grad():
        rnn.weight_hh_l0.mul_(0.5)                                  # sigma_max(W_hh) < 1: vanishing guaranteed
    lstm = Recurrent(cell="lstm", input_size=4, hidden_size=16, forget_bias=5.0).double()
    last = lambda res: res[0][-1].sum()                             # noqa: E731
    f_rnn = gradient_flow(rnn, x, last)
    f_lstm = gradient_flow(lstm, x, last)
    assert f_rnn.c is None and f_lstm.c is not None
    assert f_rnn.ratio() < 1e-6
    assert f_lstm.c[0] / f_lstm.c[-1] > 0.3


def test_bad_layer_index():
    with pytest.raises(GatedLibError, match=r"layer: expected an index in \[-1, 1\) for a 1-layer model, got 1"):
        gradient_flow(LSTM(2, 3), torch.randn(2, 1, 2), lambda r: r[0].sum(), layer=1)


def test_mixed_stack_probes_each_layer_with_its_own_state():
    """A GRU under an LSTM (ModelConfig(cell=("gru", "lstm"))): the LSTM layer has a cell-state trace, the
    GRU layer none, and each matches the per-step .grad of that layer's states."""
    torch.manual_seed(0)
    m = SequenceModel(ModelConfig(cell=("gru", "lstm"), input_size=3, hidden_size=4)).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    loss = lambda pred: pred.sum()                                  # noqa: E731
    top, bottom = gradient_flow(m, x, loss), gradient_flow(m, x, loss, layer=0)
    assert (top.layer, bottom.layer) == (1, 0)
    assert top.c is not None and bottom.c is None
    with m.rnn.use_backend("eager"):
        pred, per_layer = m(x, return_states=True)
    for (h,) in per_layer[0]:
        h.retain_grad()
    pred.sum().backward()
    np.testing.assert_allclose(bottom.h, [float(h.grad.norm()) for (h,) in per_layer[0]], rtol=1e-12)


def test_task_default_forget_bias_reaches_only_the_lstm_layers_of_a_stack():
    from gated_lib.tasks import AddingProblem

    task = AddingProblem(T=20)
    assert task.model_config(cell=("gru", "lstm")).forget_bias == task.model_config().forget_bias is not None
    assert task.model_config(cell=("gru", "rnn_tanh")).forget_bias is None
    model = SequenceModel(task.model_config(cell=("gru", "lstm")))
    H = model.config.hidden_size
    lstm = model.rnn.layers[1]
    assert torch.allclose(lstm.bias_ih_l0[H:2 * H] + lstm.bias_hh_l0[H:2 * H],
                          torch.full((H,), float(task.model_config().forget_bias)))
