"""The LSTM in numpy, with PyTorch's layout: the reference the book and the exercises compare to.

Equations (rows are examples; W_i* are the rows of weight_ih for gate *, and so on), as in
torch.nn.LSTM's documentation:

    i = sigmoid(x W_ii^T + b_ii + h_prev W_hi^T + b_hi)      input gate       (B, H)
    f = sigmoid(x W_if^T + b_if + h_prev W_hf^T + b_hf)      forget gate      (B, H)
    g =    tanh(x W_ig^T + b_ig + h_prev W_hg^T + b_hg)      candidate        (B, H)
    o = sigmoid(x W_io^T + b_io + h_prev W_ho^T + b_ho)      output gate      (B, H)
    c = f * c_prev + i * g                                    cell state       (B, H)
    h = o * tanh(c)                                           hidden state     (B, H)

With proj_size P > 0 (torch's LSTMP), h = (o * tanh(c)) W_hr^T has shape (B, P), and h_prev, h0 and
weight_hh (4H, P) use P where the plain LSTM uses H.

The four gates are computed with one fused product: a = x W_ih^T + h_prev W_hh^T + b_ih + b_hh has
shape (B, 4H), and columns [0:H], [H:2H], [2H:3H], [3H:4H] are i, f, g, o.

params is a dict with torch.nn.LSTM's names (layer suffix dropped):
    weight_ih (4H, D), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,) [, weight_hr (P, H)]
A single-bias (textbook) LSTM passes only "bias" (4H,) instead of the two torch biases; an LSTM
without biases (torch's bias=False) passes neither. A list of such dicts is a stack of layers
(see gated_lib.sequence).

Functions (shapes in the notation of every docstring: B batch, T time, D input, H hidden):

    lstm_cell_forward(x, h_prev, c_prev, params)  -> (h, c), cache
    lstm_cell_backward(dout, cache)               -> grads {x, h_prev, c_prev, weight_ih, ...}
    lstm_forward(x, params, h0=None, c0=None)     -> (out, (h_n, c_n)), cache
    lstm_backward(dout, cache, dh_n=None, dc_n=None) -> grads {x, h0, c0, weight_ih, ...}
"""

from __future__ import annotations

import numpy as np

from gated_lib.activations import sigmoid, sigmoid_  # noqa: F401 - sigmoid is part of this module's API
from gated_lib.catalog import CELLS
from gated_lib.sequence import Cell, SequenceCache, cell_backward, cell_forward, sequence_backward, sequence_forward

GATES = ("i", "f", "g", "o")


def split_gates(a: np.ndarray, G: int = 4) -> list[np.ndarray]:
    """Split fused pre-activations (..., G*H) into G arrays (..., H), in gate order."""
    H = a.shape[-1] // G
    return [a[..., k * H:(k + 1) * H] for k in range(G)]


# ----------------------------------------------------------------------------------------------------
# Step functions (see gated_lib.sequence): xp = x W_ih^T + b_ih + b_hh is given
# ----------------------------------------------------------------------------------------------------

def _step(xp, state, P):
    h_prev, c_prev = state
    H = c_prev.shape[1]
    a = h_prev @ P["weight_hh"].T
    a += xp
    sigmoid_(a[:, :2 * H])
    np.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])
    sigmoid_(a[:, 3 * H:])
    i, f, g, o = split_gates(a)
    c = f * c_prev
    c += i * g
    tanh_c = np.tanh(c)
    m = o * tanh_c
    cache = dict(h_prev=h_prev, c_prev=c_prev, i=i, f=f, g=g, o=o, c=c, tanh_c=tanh_c)
    if "weight_hr" in P:
        cache["m"] = m
        h = m @ P["weight_hr"].T
    else:
        h = m
    cache["h"] = h
    return (h, c), cache


def _step_backward(dstate, cache, P, grads):
    dh, dc = dstate
    if "weight_hr" in P:
        grads["weight_hr"] += dh.T @ cache["m"]
        dh = dh @ P["weight_hr"]
    i, f, g, o, tanh_c, c_prev = (cache[k] for k in ("i", "f", "g", "o", "tanh_c", "c_prev"))
    H = i.shape[1]
    # dc collects both paths into c_t: the direct one from c_{t+1} and the one through h_t = o tanh(c_t).
    dc = dc + dh * o * (1.0 - tanh_c * tanh_c)
    da = np.empty((i.shape[0], 4 * H), dtype=dc.dtype)
    da[:, :H] = dc * g * i * (1.0 - i)
    da[:, H:2 * H] = dc * c_prev * f * (1.0 - f)
    da[:, 2 * H:3 * H] = dc * i * (1.0 - g * g)
    da[:, 3 * H:] = dh * tanh_c * o * (1.0 - o)
    grads["weight_hh"] += da.T @ cache["h_prev"]
    return da, (da @ P["weight_hh"], dc * f)


def _fast_forward(cell, x, P, state0, b_in):
    """The same computation and cache as the generic loop, arranged for speed.

    Two measured choices (benchmarks/bench_numpy_vs_torch.py): the loop works on transposed states
    (H, B), because OpenBLAS runs W_hh (4H, H) @ h^T (H, B) faster than h @ W_hh^T at the course's
    sizes and each gate becomes a contiguous block of rows; and sigmoid(a) = (1 + tanh(a/2)) / 2 lets a
    single tanh pass over all 4H rows serve the three sigmoid gates and the tanh candidate, the 1/2
    being folded into the i, f, o rows of the weights (an exact scaling by a power of two).
    """
    T, B, D = x.shape
    W_ih, W_hh = P["weight_ih"], P["weight_hh"]
    H = W_hh.shape[1]
    dt = x.dtype
    scale = np.full((4 * H, 1), 0.5, dtype=dt)
    scale[2 * H:3 * H] = 1.0
    W_ih_s, W_hh_s = W_ih * scale, W_hh * scale
    XP = (W_ih_s @ x.reshape(T * B, D).T).reshape(4 * H, T, B)
    if b_in is not None:
        XP += (b_in[:, None] * scale)[:, :, None]
    acts = np.empty((T, 4 * H, B), dtype=dt)
    C = np.empty((T, H, B), dtype=dt)
    TC = np.empty((T, H, B), dtype=dt)
    out = np.empty((T, B, H), dtype=dt)
    h, c = state0[0].T, state0[1].T
    for t in range(T):
        a = acts[t]
        np.matmul(W_hh_s, h, out=a)
        a += XP[:, t]
        np.tanh(a, out=a)
        for s in (a[:2 * H], a[3 * H:]):
            s *= 0.5
            s += 0.5
        c_new = C[t]
        np.multiply(a[H:2 * H], c, out=c_new)
        c_new += a[:H] * a[2 * H:3 * H]
        np.tanh(c_new, out=TC[t])
        h = out[t].T
        np.multiply(a[3 * H:], TC[t], out=h)
        c = c_new
    cache = SequenceCache(cell, P, x, state0, b_in)
    for t in range(T):
        a = acts[t]
        cache.append(dict(
            h_prev=state0[0] if t == 0 else out[t - 1], c_prev=state0[1] if t == 0 else C[t - 1].T,
            i=a[:H].T, f=a[H:2 * H].T, g=a[2 * H:3 * H].T, o=a[3 * H:].T, c=C[t].T, tanh_c=TC[t].T,
            h=out[t], x=x[t], weight_ih=W_ih, weight_hh=W_hh, params=P, cell=cell))
    cache.stacked = dict(acts=acts, C=C, TC=TC, out=out)
    # The cache keeps its own h and c: the caller may change what it receives without breaking BPTT.
    return (out.copy(), (out[T - 1].copy(), C[T - 1].T.copy())), cache


def _fast_backward(dout, cache, dstate, grads):
    """BPTT over the arrays _fast_forward stacked, in the same transposed (H, B) layout.

    Same equations as _step_backward; dA is laid out (4H, T, B) so that after the loop
    dA.reshape(4H, T*B) feeds the weight and input gradients as single GEMMs over all steps.
    """
    acts, C, TC, out = (cache.stacked[k] for k in ("acts", "C", "TC", "out"))
    x, P = cache.x, cache.params
    T, B, _ = x.shape
    W_hh = P["weight_hh"]
    H = W_hh.shape[1]
    dA = np.empty((4 * H, T, B), dtype=x.dtype)
    doutT = np.ascontiguousarray(dout.transpose(0, 2, 1))
    dh, dc = dstate[0].T, dstate[1].T
    c0 = cache.state0[1].T
    for t in range(T - 1, -1, -1):
        a, tc, da = acts[t], TC[t], dA[:, t]
        i, f, g, o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        dh = dh + doutT[t]
        tmp = tc * tc
        np.subtract(1.0, tmp, out=tmp)
        tmp *= o
        tmp *= dh
        dc = dc + tmp
        d = da[3 * H:]
        np.multiply(dh, tc, out=d)
        d *= o
        d *= 1.0 - o
        d = da[:H]
        np.multiply(dc, g, out=d)
        d *= i
        d *= 1.0 - i
        d = da[H:2 * H]
        np.multiply(dc, C[t - 1] if t else c0, out=d)
        d *= f
        d *= 1.0 - f
        d = da[2 * H:3 * H]
        np.multiply(dc, i, out=d)
        d *= 1.0 - g * g
        dh = W_hh.T @ da
        dc = dc * f
    dA2 = dA.reshape(4 * H, T * B)
    h_prev = np.concatenate([cache.state0[0][None], out[:-1]]).reshape(T * B, H)
    grads["weight_hh"] += dA2 @ h_prev
    return dA2.T, (np.ascontiguousarray(dh.T), np.ascontiguousarray(dc.T))


LSTM = Cell(CELLS["lstm"], _step, _step_backward, fast_forward=_fast_forward, fast_backward=_fast_backward)


# ----------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------

def lstm_cell_forward(x, h_prev, c_prev, params):
    """One LSTM step.

    Inputs:
    - x:      (B, D) input at this step
    - h_prev: (B, H) previous hidden state ((B, P) with proj_size)
    - c_prev: (B, H) previous cell state
    - params: dict, weight_ih (4H, D), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,)
              [or bias (4H,)] [, weight_hr (P, H)]

    Returns ``(h, c), cache``:
    - h: (B, H) next hidden state
    - c: (B, H) next cell state
    - cache: dict of the gates i, f, g, o (B, H), c and tanh_c (B, H), and the inputs, for the
      backward pass and for plots
    """
    (h, c), cache = cell_forward(LSTM, x, (h_prev, c_prev), params)
    return (h, c), cache


def lstm_cell_backward(dout, cache):
    """Backward pass of one LSTM step.

    Inputs:
    - dout:  (dh, dc): dh (B, H) gradient of h, dc (B, H) gradient of c (None or omitted: zero);
             a bare array is taken as dh
    - cache: from lstm_cell_forward (or entry t of lstm_forward's cache)

    Returns grads, a dict:
    - x: (B, D); h_prev: (B, H); c_prev: (B, H)
    - weight_ih (4H, D), weight_hh (4H, H), and each bias present in params, under its name
    """
    return cell_backward(dout, cache)


def lstm_forward(x, params, h0=None, c0=None, *, bidirectional: bool = False):
    """An LSTM over a whole sequence (one layer, or a stack when params is a list).

    Inputs:
    - x:      (T, B, D) time-major inputs
    - params: dict as for lstm_cell_forward (one layer), or a list of such dicts in torch's order
              l0, [l0_reverse,] l1, ... (a stack; layer l > 0 has D = dirs*H)
    - h0, c0: (B, H) initial states for one layer, (L*dirs, B, H) for a stack (default zeros)
    - bidirectional: a list holds two dicts per layer (forward, reverse)

    Returns ``(out, (h_n, c_n)), cache``:
    - out:      (T, B, H) every hidden state h_1 .. h_T ((T, B, dirs*H) for a stack)
    - h_n, c_n: (B, H) final states ((L*dirs, B, H) for a stack)
    - cache:    one layer: a list of the T per-step caches (cache[t] as lstm_cell_forward's);
                a stack: a StackCache with one such list per layer and direction
    """
    return sequence_forward(LSTM, x, params, h0, c0, bidirectional)


def lstm_backward(dout, cache, dh_n=None, dc_n=None):
    """Backpropagation through time for lstm_forward.

    Inputs:
    - dout:       (T, B, H) gradient of out ((T, B, dirs*H) for a stack)
    - cache:      from lstm_forward
    - dh_n, dc_n: (B, H) gradients of the final states ((L*dirs, B, H) for a stack); None means zero

    Returns grads, a dict:
    - x: (T, B, D); h0: (B, H); c0: (B, H)  (stack: (L*dirs, B, H))
    - every parameter under its torch name: weight_ih, weight_hh, bias_ih, bias_hh [, weight_hr]
      (stack: torch's state_dict names weight_ih_l0, ..., weight_hh_l1_reverse)
    """
    return sequence_backward(dout, cache, dh_n, dc_n)


def init_lstm_params(D: int, H: int, rng=None, forget_bias: float = 0.0, dtype=np.float32) -> dict:
    """torch.nn.LSTM's default initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H)).

    forget_bias: if nonzero, the forget slice [H:2H] of bias_ih is set to it and that of bias_hh
    to 0, so that the *effective* forget bias (torch adds b_ih + b_hh) is exactly forget_bias.
    (gated_lib.init has the general versions: init_params, set_forget_bias.)
    """
    rng = np.random.default_rng(rng)
    k = 1.0 / np.sqrt(H)
    p = {
        "weight_ih": rng.uniform(-k, k, (4 * H, D)),
        "weight_hh": rng.uniform(-k, k, (4 * H, H)),
        "bias_ih": rng.uniform(-k, k, 4 * H),
        "bias_hh": rng.uniform(-k, k, 4 * H),
    }
    if forget_bias:
        p["bias_ih"][H:2 * H] = forget_bias
        p["bias_hh"][H:2 * H] = 0.0
    return {name: v.astype(dtype) for name, v in p.items()}
