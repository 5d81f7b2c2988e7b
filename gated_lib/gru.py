"""The GRU in numpy, in both conventions, with torch.nn.GRU's layout.

convention="pytorch" (the default; torch.nn.GRU, cuDNN, Keras reset_after=True), as in
torch.nn.GRU's documentation:

    r = sigmoid(x W_ir^T + b_ir + h_prev W_hr^T + b_hr)           reset gate    (B, H)
    z = sigmoid(x W_iz^T + b_iz + h_prev W_hz^T + b_hz)           update gate   (B, H)
    n =    tanh(x W_in^T + b_in + r * (h_prev W_hn^T + b_hn))     candidate     (B, H)
    h = (1 - z) * n + z * h_prev                                   hidden state  (B, H)

convention="cho" (Cho et al. 2014; Keras reset_after=False): the reset gate scales h_prev *before*
the recurrent product, so b_hn is an ordinary bias:

    n =    tanh(x W_in^T + b_in + (r * h_prev) W_hn^T + b_hn)

Both use z as the gate that *keeps* the old state. Chung et al. 2014, colah's blog and Coursera write
h = z * n + (1 - z) * h_prev: the same cell with z relabelled 1 - z (the book's notation table).

params is a dict with torch.nn.GRU's names: weight_ih (3H, D), weight_hh (3H, H), bias_ih (3H,),
bias_hh (3H,), rows in gate order r, z, n [or one textbook bias (3H,), which acts as b_ih].
A list of such dicts is a stack of layers (see gated_lib.sequence).

Functions (B batch, T time, D input, H hidden):

    gru_cell_forward(x, h_prev, params, convention="pytorch") -> h, cache
    gru_cell_backward(dh, cache)                               -> grads {x, h_prev, weight_ih, ...}
    gru_forward(x, params, h0=None, convention="pytorch")      -> (out, h_n), cache
    gru_backward(dout, cache, dh_n=None)                       -> grads {x, h0, weight_ih, ...}
"""

from __future__ import annotations

import numpy as np

from gated_lib.activations import sigmoid_
from gated_lib.catalog import CELLS
from gated_lib.errors import GatedLibError
from gated_lib.sequence import Cell, cell_backward, cell_forward, sequence_backward, sequence_forward

CONVENTIONS = ("pytorch", "cho")


def _pytorch_step(xp, state, P):
    # xp = x W_ih^T + b_ih only: b_hn must stay inside r * (...), so b_hh is added here.
    (h_prev,) = state
    H = h_prev.shape[1]
    hp = h_prev @ P["weight_hh"].T
    if "bias_hh" in P:
        hp += P["bias_hh"]
    rz = xp[:, :2 * H] + hp[:, :2 * H]
    sigmoid_(rz)
    r, z = rz[:, :H], rz[:, H:]
    hn = hp[:, 2 * H:].copy()       # W_hn h_prev + b_hn, needed for dr; copied so hp can be freed
    n = r * hn
    n += xp[:, 2 * H:]
    np.tanh(n, out=n)
    h = n + z * (h_prev - n)
    return (h,), dict(h_prev=h_prev, r=r, z=z, n=n, hn=hn, h=h)


def _pytorch_step_backward(dstate, cache, P, grads):
    (dh,) = dstate
    h_prev, r, z, n, hn = (cache[k] for k in ("h_prev", "r", "z", "n", "hn"))
    H = h_prev.shape[1]
    dan = dh * (1.0 - z) * (1.0 - n * n)
    dxp = np.empty((dh.shape[0], 3 * H), dtype=dh.dtype)
    dxp[:, :H] = dan * hn * r * (1.0 - r)
    dxp[:, H:2 * H] = dh * (h_prev - n) * z * (1.0 - z)
    dxp[:, 2 * H:] = dan
    dhp = dxp.copy()
    dhp[:, 2 * H:] *= r
    grads["weight_hh"] += dhp.T @ h_prev
    if "bias_hh" in grads:
        grads["bias_hh"] += dhp.sum(axis=0)
    return dxp, (dh * z + dhp @ P["weight_hh"],)


def _cho_step(xp, state, P):
    (h_prev,) = state
    H = h_prev.shape[1]
    W = P["weight_hh"]
    rz = h_prev @ W[:2 * H].T
    rz += xp[:, :2 * H]
    sigmoid_(rz)
    r, z = rz[:, :H], rz[:, H:]
    rh = r * h_prev
    # The reset-before form needs r before the candidate's recurrent product: two GEMMs per step.
    n = rh @ W[2 * H:].T
    n += xp[:, 2 * H:]
    np.tanh(n, out=n)
    h = n + z * (h_prev - n)
    return (h,), dict(h_prev=h_prev, r=r, z=z, n=n, rh=rh, h=h)


def _cho_step_backward(dstate, cache, P, grads):
    (dh,) = dstate
    h_prev, r, z, n, rh = (cache[k] for k in ("h_prev", "r", "z", "n", "rh"))
    H = h_prev.shape[1]
    W = P["weight_hh"]
    dan = dh * (1.0 - z) * (1.0 - n * n)
    d_rh = dan @ W[2 * H:]
    grads["weight_hh"][2 * H:] += dan.T @ rh
    dxp = np.empty((dh.shape[0], 3 * H), dtype=dh.dtype)
    dxp[:, :H] = d_rh * h_prev * r * (1.0 - r)
    dxp[:, H:2 * H] = dh * (h_prev - n) * z * (1.0 - z)
    dxp[:, 2 * H:] = dan
    grads["weight_hh"][:2 * H] += dxp[:, :2 * H].T @ h_prev
    dh_prev = dh * z + d_rh * r + dxp[:, :2 * H] @ W[:2 * H]
    return dxp, (dh_prev,)


GRU_PYTORCH = Cell(CELLS["gru"], _pytorch_step, _pytorch_step_backward, fold_hidden_bias=False)
GRU_CHO = Cell(CELLS["gru_cho"], _cho_step, _cho_step_backward)


def _cell(convention: str) -> Cell:
    if convention == "pytorch":
        return GRU_PYTORCH
    if convention == "cho":
        return GRU_CHO
    raise GatedLibError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")


def gru_cell_forward(x, h_prev, params, convention: str = "pytorch"):
    """One GRU step.

    Inputs:
    - x:      (B, D) input at this step
    - h_prev: (B, H) previous hidden state
    - params: dict, weight_ih (3H, D), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,) [or bias (3H,)]
    - convention: "pytorch" (reset after the matmul) or "cho" (reset before)

    Returns ``h, cache``:
    - h:     (B, H) next hidden state
    - cache: dict with the gates r, z and candidate n (B, H), h_prev, h, the inputs and the parameters
    """
    (h,), cache = cell_forward(_cell(convention), x, (h_prev,), params)
    cache["convention"] = convention
    return h, cache


def gru_cell_backward(dh, cache):
    """Backward pass of one GRU step (either convention; the cache knows which).

    Inputs:
    - dh:    (B, H) gradient of h
    - cache: from gru_cell_forward (or entry t of gru_forward's cache)

    Returns grads, a dict: x (B, D), h_prev (B, H), weight_ih (3H, D), weight_hh (3H, H) and each
    bias present in params.
    """
    return cell_backward(dh, cache)


def gru_forward(x, params, h0=None, convention: str = "pytorch", *, bidirectional: bool = False):
    """A GRU over a sequence (one layer, or a stack when params is a list).

    Inputs:
    - x:      (T, B, D) time-major inputs
    - params: dict as for gru_cell_forward, or a list of dicts in torch's order (l0, [l0_reverse,] l1 ...)
    - h0:     (B, H) initial state ((L*dirs, B, H) for a stack); default zeros
    - convention: "pytorch" or "cho"
    - bidirectional: a list holds two dicts per layer (forward, reverse)

    Returns ``(out, h_n), cache``:
    - out: (T, B, H) every hidden state ((T, B, dirs*H) for a stack)
    - h_n: (B, H) final state ((L*dirs, B, H) for a stack)
    - cache: a list of per-step caches (one layer) or a StackCache
    """
    return sequence_forward(_cell(convention), x, params, h0, None, bidirectional)


def gru_backward(dout, cache, dh_n=None):
    """Backpropagation through time for gru_forward.

    Inputs:
    - dout:  (T, B, H) gradient of out ((T, B, dirs*H) for a stack)
    - cache: from gru_forward
    - dh_n:  (B, H) gradient of the final state ((L*dirs, B, H) for a stack); None means zero

    Returns grads, a dict: x (T, B, D), h0 (B, H) and every parameter under its torch name
    (a stack: weight_ih_l0, ...).
    """
    return sequence_backward(dout, cache, dh_n)
