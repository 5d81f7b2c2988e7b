"""Analytic one-step Jacobians and their products over lags, batched over examples.

Every Jacobian here has a leading batch axis: J[b, i, j] = d state_t[b, i] / d state_{t-1}[b, j],
shape (B, n, n); examples do not interact, so the (B*n, B*n) Jacobian is block-diagonal and only
these blocks are stored. "diag(v) W" below means v[:, :, None] * W[None].

Vanilla RNN (h = phi(a), a = x W_ih^T + h_prev W_hh^T + b):

    dh_t/dh_{t-1} = diag(1 - h_t^2) W_hh                     tanh
    dh_t/dh_{t-1} = diag(1[h_t > 0]) W_hh                    relu

LSTM, state (h, c), W_h* the gate blocks of weight_hh, k = o * (1 - tanh^2 c_t):

    dc_t/dc_{t-1} = diag(f)                                   the direct path (the "carousel")
    dc_t/dh_{t-1} = diag(c_{t-1} f(1-f)) W_hf + diag(g i(1-i)) W_hi + diag(i (1-g^2)) W_hg
    dh_t/dc_{t-1} = diag(k) diag(f)
    dh_t/dh_{t-1} = diag(tanh(c_t) o(1-o)) W_ho + diag(k) dc_t/dh_{t-1}

so the full one-step Jacobian of (h_t, c_t) is [[dh/dh, dh/dc], [dc/dh, dc/dc]] (2H x 2H), which
equals diag(f) on the c -> c block only; the h paths feed back into c through dc/dh.

GRU (h = (1 - z) n + z h_prev; r, z, n as in gated_lib.gru):

    dh_t/dh_{t-1} = diag(z) + diag((h_{t-1} - n) z(1-z)) W_hz + diag((1-z)(1-n^2)) dA_n/dh_{t-1}
    pytorch: dA_n/dh = diag(r) W_hn + diag((W_hn h + b_hn) r(1-r)) W_hr
    cho:     dA_n/dh = W_hn (diag(r) + diag(h_{t-1} r(1-r)) W_hr)

Products over lags: along a trajectory with step Jacobians J_1 .. J_T,

    d s_T / d s_{T-k} = J_T J_{T-1} ... J_{T-k+1}     (k = 0 gives the identity)

and gradient_norm_over_lag returns their norms for k = 0 .. T.
"""

from __future__ import annotations

import numpy as np

from gated_lib.errors import GatedLibError, ShapeError, check_array
from gated_lib.sequence import SequenceCache, StackCache


def _diag_times(v: np.ndarray, W: np.ndarray) -> np.ndarray:
    """diag(v) W for a batch: v (B, H), W (H, K) -> (B, H, K)."""
    return v[:, :, None] * W[None, :, :]


def _batched_diag(v: np.ndarray) -> np.ndarray:
    out = np.zeros(v.shape + v.shape[-1:], dtype=v.dtype)
    idx = np.arange(v.shape[-1])
    out[..., idx, idx] = v
    return out


# ----------------------------------------------------------------------------------------------------
# One step
# ----------------------------------------------------------------------------------------------------

def rnn_step_jacobian(h, weight_hh, nonlinearity: str = "tanh") -> np.ndarray:
    """dh_t/dh_{t-1} of a vanilla RNN.

    Inputs:
    - h:         (B, H) the new state h_t (the derivative of the nonlinearity is read from it)
    - weight_hh: (H, H)
    - nonlinearity: "tanh" (diag(1 - h_t^2) W_hh) or "relu" (diag(1[h_t > 0]) W_hh)

    Returns J: (B, H, H).
    """
    W = np.asarray(weight_hh)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ShapeError(f"weight_hh: expected shape (H, H), got {tuple(W.shape)}")
    H = W.shape[0]
    h = check_array("h", h, (None, H), "(B, H)")
    if nonlinearity == "tanh":
        d = 1.0 - h * h
    elif nonlinearity == "relu":
        d = (h > 0).astype(h.dtype)
    else:
        raise GatedLibError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    return _diag_times(d, W)


def lstm_direct_jacobian(f) -> np.ndarray:
    """The direct path dc_t/dc_{t-1} = diag(f_t) of the LSTM (identity without a forget gate).

    Inputs:
    - f: (B, H) forget gate at step t

    Returns J: (B, H, H).
    """
    f = check_array("f", f, (None, None), "(B, H)")
    return _batched_diag(f)


def _require(cache, keys, what):
    if not isinstance(cache, dict) or any(k not in cache for k in keys):
        have = sorted(cache) if isinstance(cache, dict) else type(cache).__name__
        raise GatedLibError(f"cache: expected the step cache of {what} (keys {list(keys)}), got {have}")


def lstm_step_jacobian(cache) -> dict:
    """The four blocks of the one-step Jacobian of the LSTM state (h_t, c_t) w.r.t. (h_{t-1}, c_{t-1}).

    Inputs:
    - cache: from lstm_cell_forward, or entry t of lstm_forward's cache (no proj_size)

    Returns a dict of (B, H, H) arrays:
    - "dh_dh": dh_t/dh_{t-1};  "dh_dc": dh_t/dc_{t-1}
    - "dc_dh": dc_t/dh_{t-1};  "dc_dc": dc_t/dc_{t-1} = diag(f_t)
    assemble_state_jacobian(blocks) puts them into the (B, 2H, 2H) matrix.
    """
    _require(cache, ("i", "f", "g", "o", "c_prev", "tanh_c", "weight_hh"), "an LSTM step")
    if cache.get("cell") is not None and cache["cell"].name != "lstm":
        raise GatedLibError(f"cache: expected an LSTM step cache, got one of a {cache['cell'].name}")
    if "weight_hr" in cache.get("params", {}):
        raise GatedLibError("cache: the state Jacobian is defined here for the LSTM without proj_size")
    i, f, g, o, c_prev, tanh_c = (cache[k] for k in ("i", "f", "g", "o", "c_prev", "tanh_c"))
    W = cache["weight_hh"]
    H = i.shape[1]
    W_hi, W_hf, W_hg, W_ho = W[:H], W[H:2 * H], W[2 * H:3 * H], W[3 * H:]
    dc_dh = (_diag_times(c_prev * f * (1.0 - f), W_hf) + _diag_times(g * i * (1.0 - i), W_hi)
             + _diag_times(i * (1.0 - g * g), W_hg))
    k = o * (1.0 - tanh_c * tanh_c)
    return {
        "dh_dh": _diag_times(tanh_c * o * (1.0 - o), W_ho) + k[:, :, None] * dc_dh,
        "dh_dc": _batched_diag(k * f),
        "dc_dh": dc_dh,
        "dc_dc": _batched_diag(np.asarray(f)),
    }


def assemble_state_jacobian(blocks: dict, order: tuple = ("h", "c")) -> np.ndarray:
    """The (B, 2H, 2H) Jacobian of the stacked state from lstm_step_jacobian's blocks.

    order: ("h", "c") stacks the state as [h; c] (rows and columns); ("c", "h") as [c; h].
    """
    if tuple(order) not in (("h", "c"), ("c", "h")):
        raise GatedLibError(f"order: expected ('h', 'c') or ('c', 'h'), got {order!r}")
    a, b = order
    top = np.concatenate([blocks[f"d{a}_d{a}"], blocks[f"d{a}_d{b}"]], axis=-1)
    bottom = np.concatenate([blocks[f"d{b}_d{a}"], blocks[f"d{b}_d{b}"]], axis=-1)
    return np.concatenate([top, bottom], axis=-2)


def gru_step_jacobian(cache) -> np.ndarray:
    """dh_t/dh_{t-1} of the GRU, in the convention the cache was computed with.

    Inputs:
    - cache: from gru_cell_forward, or entry t of gru_forward's cache (either convention)

    Returns J: (B, H, H) = diag(z) + (the paths through z, r and n).
    """
    _require(cache, ("r", "z", "n", "h_prev", "weight_hh", "cell"), "a GRU step")
    name = cache["cell"].name
    r, z, n, h_prev = (cache[k] for k in ("r", "z", "n", "h_prev"))
    W = cache["weight_hh"]
    H = r.shape[1]
    W_hr, W_hz, W_hn = W[:H], W[H:2 * H], W[2 * H:]
    dr = r * (1.0 - r)
    if name == "gru":
        dAn = _diag_times(r, W_hn) + _diag_times(cache["hn"] * dr, W_hr)
    elif name == "gru_cho":
        dAn = W_hn[None] * r[:, None, :] + W_hn[None] @ _diag_times(h_prev * dr, W_hr)
    else:
        raise GatedLibError(f"cache: expected a GRU step cache, got one of a {name}")
    return (_batched_diag(z) + _diag_times((h_prev - n) * z * (1.0 - z), W_hz)
            + ((1.0 - z) * (1.0 - n * n))[:, :, None] * dAn)


# ----------------------------------------------------------------------------------------------------
# Along a trajectory
# ----------------------------------------------------------------------------------------------------

def _layer_cache(cache) -> SequenceCache:
    if isinstance(cache, StackCache):
        raise GatedLibError("cache: pass the cache of one layer (stack_cache[k]), not the whole stack")
    if not isinstance(cache, SequenceCache):
        raise GatedLibError(f"cache: expected the cache of a sequence forward, got {type(cache).__name__}")
    return cache


def step_jacobian(cache, t: int, quantity: str = "state") -> np.ndarray:
    """J_t = d s_t / d s_{t-1} at step t (0-based) of a sequence cache, for the state s chosen.

    quantity: "h" (RNN, GRU: the state; LSTM: the h -> h block), "c" (LSTM: the c -> c block, which
    is diag(f_t) for one step), "state" (the whole state: h for RNN/GRU, [h; c] (2H) for the LSTM),
    "direct" (LSTM: diag(f_t)).
    """
    cache = _layer_cache(cache)
    name = cache.cell.name
    step = cache[t]
    if name in ("rnn_tanh", "rnn_relu"):
        if quantity not in ("h", "state"):
            raise GatedLibError(f"quantity: a vanilla RNN has only the state h, got {quantity!r}")
        return rnn_step_jacobian(step["h"], step["weight_hh"], name[4:])
    if name in ("gru", "gru_cho"):
        if quantity not in ("h", "state"):
            raise GatedLibError(f"quantity: a GRU has only the state h, got {quantity!r}")
        return gru_step_jacobian(step)
    if name == "lstm":
        if quantity == "direct":
            return lstm_direct_jacobian(step["f"])
        blocks = lstm_step_jacobian(step)
        if quantity == "state":
            return assemble_state_jacobian(blocks)
        if quantity in ("h", "c"):
            # One step's block; over several steps take the block of the product (gradient_norm_over_lag).
            return blocks[f"d{quantity}_d{quantity}"]
        raise GatedLibError(f"quantity: expected 'h', 'c', 'state' or 'direct', got {quantity!r}")
    raise GatedLibError(f"cache: Jacobians are implemented for rnn, lstm and gru caches, got {name}")


def _norm(M: np.ndarray, ord) -> np.ndarray:
    if ord in ("fro", None):
        return np.sqrt(np.sum(M * M, axis=(-2, -1)))
    if ord == 2:
        return np.linalg.norm(M, ord=2, axis=(-2, -1))
    raise GatedLibError(f"ord: expected 2 (spectral) or 'fro' (Frobenius), got {ord!r}")


def lag_norms(jacobians, ord=2, rows: slice | None = None, cols: slice | None = None) -> np.ndarray:
    """Norms of the products d s_T / d s_{T-k} = J_T ... J_{T-k+1} for k = 0 .. T.

    Inputs:
    - jacobians: (T, B, n, n) step Jacobians J_1 .. J_T (J_t = d s_t / d s_{t-1}), or a list of (B, n, n)
    - ord:       2 (spectral norm) or "fro" (Frobenius)
    - rows, cols: optional slices of the product to take the norm of (a block, e.g. c -> c)

    Returns norms: (T + 1, B); norms[k] is the norm at lag k (norms[0]: of the identity block).
    """
    T = len(jacobians)
    if T == 0:
        raise ShapeError("jacobians: expected at least one step (T >= 1), got T = 0")
    first = np.asarray(jacobians[0])
    if first.ndim != 3 or first.shape[1] != first.shape[2]:
        raise ShapeError(f"jacobians: expected shape (T, B, n, n), got steps of shape {first.shape}")
    rows = rows or slice(None)
    cols = cols or slice(None)
    prod = np.broadcast_to(np.eye(first.shape[1], dtype=first.dtype), first.shape).copy()
    norms = np.empty((T + 1, first.shape[0]), dtype=first.dtype)
    norms[0] = _norm(prod[:, rows, cols], ord)
    for k in range(1, T + 1):
        prod = prod @ np.asarray(jacobians[T - k])
        norms[k] = _norm(prod[:, rows, cols], ord)
    return norms


class _LazySteps:
    """Step Jacobians of a cache computed when indexed, so that (T, B, n, n) is never held at once."""

    def __init__(self, cache, quantity):
        self.cache, self.quantity = cache, quantity

    def __len__(self):
        return len(self.cache)

    def __getitem__(self, t):
        return step_jacobian(self.cache, t, self.quantity)


def gradient_norm_over_lag(cache, quantity: str = "h", path: str = "full", ord=2) -> np.ndarray:
    """How the gradient through the recurrence scales with the lag, along a forward trajectory.

    Inputs:
    - cache:    from rnn_forward, lstm_forward or gru_forward (one layer; for a stack pass cache[k])
    - quantity: "h"     ||dh_T/dh_{T-k}||   (LSTM: the h -> h block of the full product)
                "c"     ||dc_T/dc_{T-k}||   (LSTM)
                "state" ||d(h,c)_T/d(h,c)_{T-k}|| (LSTM; the whole 2H x 2H product)
    - path:     "full" (every path through the recurrence) or "direct" (LSTM, quantity "c" only:
                the carousel alone, prod_t diag(f_t), ignoring the paths through h)
    - ord:      2 (spectral) or "fro" (Frobenius)

    Returns norms: (T + 1, B); norms[k] is the norm at lag k, k = 0 .. T.
    """
    cache = _layer_cache(cache)
    name = cache.cell.name
    if path == "direct":
        if name != "lstm" or quantity != "c":
            raise GatedLibError("path='direct' is the LSTM's dc_T/dc_{T-k} = prod diag(f): "
                                f"use it with an lstm cache and quantity='c' (got {name}, {quantity!r})")
        if ord not in (2, "fro", None):
            raise GatedLibError(f"ord: expected 2 (spectral) or 'fro' (Frobenius), got {ord!r}")
        # A product of diagonal matrices is the diagonal of the elementwise product: no matmuls.
        T = len(cache)
        f0 = cache[0]["f"]
        prod = np.ones(f0.shape, dtype=f0.dtype)
        norms = np.empty((T + 1, f0.shape[0]), dtype=f0.dtype)
        for k in range(T + 1):
            if k:
                prod = prod * cache[T - k]["f"]
            norms[k] = np.max(np.abs(prod), axis=1) if ord == 2 else np.sqrt(np.sum(prod * prod, axis=1))
        return norms
    if path != "full":
        raise GatedLibError(f"path: expected 'full' or 'direct', got {path!r}")
    if name == "lstm":
        H = cache[0]["f"].shape[1]
        block = {"h": slice(0, H), "c": slice(H, 2 * H), "state": slice(None)}
        if quantity not in block:
            raise GatedLibError(f"quantity: expected 'h', 'c' or 'state' for an LSTM, got {quantity!r}")
        return lag_norms(_LazySteps(cache, "state"), ord, block[quantity], block[quantity])
    if quantity not in ("h", "state"):
        raise GatedLibError(f"quantity: a {name} has only the state h, got {quantity!r}")
    return lag_norms(_LazySteps(cache, "h"), ord)
