"""The vanilla (Elman) RNN in numpy, with torch.nn.RNN's layout.

Equations (rows are examples), as in torch.nn.RNN's documentation:

    h = tanh(x W_ih^T + b_ih + h_prev W_hh^T + b_hh)          nonlinearity="tanh"   (B, H)
    h = relu(x W_ih^T + b_ih + h_prev W_hh^T + b_hh)          nonlinearity="relu"   (B, H)

params is a dict with torch.nn.RNN's names (layer suffix dropped):
    weight_ih (H, D), weight_hh (H, H), bias_ih (H,), bias_hh (H,)    [or one textbook bias (H,)]
A list of such dicts is a stack of layers (see gated_lib.sequence). With an identity weight_hh,
zero biases and relu this is the IRNN of Le et al. 2015 (gated_lib.init.irnn_params).

Functions (B batch, T time, D input, H hidden):

    rnn_cell_forward(x, h_prev, params, nonlinearity="tanh") -> h, cache
    rnn_cell_backward(dh, cache)                              -> grads {x, h_prev, weight_ih, ...}
    rnn_forward(x, params, h0=None, nonlinearity="tanh")      -> (out, h_n), cache
    rnn_backward(dout, cache, dh_n=None)                      -> grads {x, h0, weight_ih, ...}
"""

from __future__ import annotations

import numpy as np

from gated_lib.catalog import CELLS
from gated_lib.errors import GatedLibError
from gated_lib.sequence import Cell, cell_backward, cell_forward, sequence_backward, sequence_forward


def _tanh_step(xp, state, P):
    (h_prev,) = state
    a = h_prev @ P["weight_hh"].T
    a += xp
    h = np.tanh(a, out=a)
    return (h,), {"h_prev": h_prev, "h": h}


def _tanh_step_backward(dstate, cache, P, grads):
    (dh,) = dstate
    h = cache["h"]
    da = dh * (1.0 - h * h)
    grads["weight_hh"] += da.T @ cache["h_prev"]
    return da, (da @ P["weight_hh"],)


def _relu_step(xp, state, P):
    (h_prev,) = state
    a = h_prev @ P["weight_hh"].T
    a += xp
    h = np.maximum(a, 0.0, out=a)
    return (h,), {"h_prev": h_prev, "h": h}


def _relu_step_backward(dstate, cache, P, grads):
    (dh,) = dstate
    # h > 0 exactly where the pre-activation is > 0; at 0 the derivative is taken as 0, as torch does.
    da = dh * (cache["h"] > 0)
    grads["weight_hh"] += da.T @ cache["h_prev"]
    return da, (da @ P["weight_hh"],)


RNN_TANH = Cell(CELLS["rnn_tanh"], _tanh_step, _tanh_step_backward)
RNN_RELU = Cell(CELLS["rnn_relu"], _relu_step, _relu_step_backward)


def _cell(nonlinearity: str) -> Cell:
    if nonlinearity == "tanh":
        return RNN_TANH
    if nonlinearity == "relu":
        return RNN_RELU
    raise GatedLibError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")


def rnn_cell_forward(x, h_prev, params, nonlinearity: str = "tanh"):
    """One vanilla RNN step.

    Inputs:
    - x:      (B, D) input at this step
    - h_prev: (B, H) previous hidden state
    - params: dict, weight_ih (H, D), weight_hh (H, H), bias_ih (H,), bias_hh (H,) [or bias (H,)]
    - nonlinearity: "tanh" or "relu"

    Returns ``h, cache``:
    - h:     (B, H) next hidden state
    - cache: dict with h_prev, h, x and the parameters, for rnn_cell_backward and the Jacobians
    """
    (h,), cache = cell_forward(_cell(nonlinearity), x, (h_prev,), params)
    return h, cache


def rnn_cell_backward(dh, cache):
    """Backward pass of one vanilla RNN step.

    Inputs:
    - dh:    (B, H) gradient of h
    - cache: from rnn_cell_forward (or entry t of rnn_forward's cache)

    Returns grads, a dict: x (B, D), h_prev (B, H), weight_ih (H, D), weight_hh (H, H) and each bias
    present in params.
    """
    return cell_backward(dh, cache)


def rnn_forward(x, params, h0=None, nonlinearity: str = "tanh", *, bidirectional: bool = False):
    """A vanilla RNN over a sequence (one layer, or a stack when params is a list).

    Inputs:
    - x:      (T, B, D) time-major inputs
    - params: dict as for rnn_cell_forward, or a list of dicts in torch's order (l0, [l0_reverse,] l1 ...)
    - h0:     (B, H) initial state ((L*dirs, B, H) for a stack); default zeros
    - nonlinearity: "tanh" or "relu"
    - bidirectional: a list holds two dicts per layer (forward, reverse)

    Returns ``(out, h_n), cache``:
    - out: (T, B, H) every hidden state h_1 .. h_T ((T, B, dirs*H) for a stack)
    - h_n: (B, H) final state ((L*dirs, B, H) for a stack)
    - cache: a list of per-step caches (one layer) or a StackCache
    """
    return sequence_forward(_cell(nonlinearity), x, params, h0, None, bidirectional)


def rnn_backward(dout, cache, dh_n=None):
    """Backpropagation through time for rnn_forward.

    Inputs:
    - dout:  (T, B, H) gradient of out ((T, B, dirs*H) for a stack)
    - cache: from rnn_forward
    - dh_n:  (B, H) gradient of the final state ((L*dirs, B, H) for a stack); None means zero

    Returns grads, a dict: x (T, B, D), h0 (B, H) and every parameter under its torch name
    (a stack: weight_ih_l0, ...).
    """
    return sequence_backward(dout, cache, dh_n)
