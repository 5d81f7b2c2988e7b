"""The gradient-flow probe: how much of the loss's gradient reaches each step of the past.

For a sequence of T steps and a loss L (for the memory tasks, read at the last step only), the probe
returns, for every step k,

    ||dL/dh_k||   and, for the LSTM family,   ||dL/dc_k||

the *total* derivatives (through every later step), taken over the batch and the hidden units
(Frobenius norm of the (B, H) gradient). Plotted against the lag T - 1 - k they are the "gradient
over lag" figures of chapters 1 and 3: a vanilla RNN's curve falls geometrically, an LSTM's with a
forget bias stays flat much longer.

How: the model runs its eager (from-the-equations) backend with return_states=True, which keeps
every per-step state as a node of the graph; torch.autograd.grad(L, [h_1 .. h_T, c_1 .. c_T]) then
gives exactly what h_k.retain_grad(); L.backward(); h_k.grad would, without touching the
parameters' .grad. A torch-backend model is switched to eager for the probe (same parameters,
same function).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gated_lib.errors import GatedLibError


@dataclass
class GradientFlow:
    h: np.ndarray                 # (T,) ||dL/dh_k||, k = 0 .. T-1 (h_k is the state after step k)
    c: np.ndarray | None          # (T,) ||dL/dc_k|| for cells with a cell state, else None
    loss: float
    layer: int

    @property
    def lag(self) -> np.ndarray:
        """T - 1 - k: how many steps before the end state k is."""
        return np.arange(len(self.h))[::-1].copy()

    def ratio(self) -> float:
        """||dL/dh_0|| / ||dL/dh_{T-1}||: below 1 the gradient vanished over the sequence."""
        return float(self.h[0] / self.h[-1]) if self.h[-1] > 0 else float("nan")


def gradient_flow(model, x, loss_fn, lengths=None, hx=None, layer: int = -1) -> GradientFlow:
    """Run the probe.

    model:   a SequenceModel (gated_lib.nn.models), a Recurrent or a CellStack (one cell per layer).
    x:       its input batch (tensors on the model's device).
    loss_fn: maps the model's output (predictions for a SequenceModel; (out, h_n) for a Recurrent)
             to a scalar loss, e.g. lambda pred: task.loss(pred, batch).
    layer:   which layer's states to probe (default: the last).
    """
    from gated_lib.nn.models import CellStack, SequenceModel
    from gated_lib.nn.recurrent import Recurrent

    rnn = model.rnn if isinstance(model, SequenceModel) else model
    if not isinstance(rnn, (Recurrent, CellStack)):
        raise GatedLibError(f"model: expected a gated_lib.nn SequenceModel, Recurrent or CellStack, got "
                            f"{type(model).__name__}")
    L = rnn.num_layers
    if not -L <= layer < L:
        raise GatedLibError(f"layer: expected an index in [-{L}, {L}) for a {L}-layer model, got {layer}")
    with rnn.use_backend("eager"), torch.enable_grad():
        if isinstance(model, SequenceModel):
            pred, per_layer = model(x, lengths=lengths, hx=hx, return_states=True)
            loss = loss_fn(pred)
        else:
            out, final, per_layer = rnn(x, hx, return_states=True)
            loss = loss_fn((out, final))
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise GatedLibError(f"loss_fn: expected it to return a scalar tensor, got "
                            f"{type(loss).__name__}{'' if not isinstance(loss, torch.Tensor) else tuple(loss.shape)}")
    steps = per_layer[layer]                                  # list over t of (h_t,) or (h_t, c_t)
    n_states = len(steps[0])
    wanted = [s[j] for j in range(n_states) for s in steps]
    grads = torch.autograd.grad(loss, wanted, allow_unused=True)
    T = len(steps)
    norms = np.array([0.0 if g is None else float(torch.linalg.vector_norm(g.detach())) for g in grads])
    h = norms[:T]
    c = norms[T:2 * T] if n_states == 2 else None
    return GradientFlow(h=h, c=c, loss=float(loss.detach()), layer=layer % L)
