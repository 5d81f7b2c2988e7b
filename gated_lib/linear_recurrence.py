"""Gated linear recurrences: the forget gate without h in it, computed by a parallel scan.

The LSTM's cell path is c_t = f_t * c_{t-1} + i_t * g_t. Its gates read h_{t-1}, so step t cannot
start before step t-1 has finished: training is sequential in T. Recent gated recurrences (minGRU and
minLSTM of Feng et al. 2024, the RG-LRU of De et al. 2024, the selective state spaces of Mamba) keep
the gating and drop h_{t-1} from the gates, so every gate depends on x_t only:

    h_t = a_t * h_{t-1} + b_t          a_t, b_t (B, H) computed from x_t alone, elementwise products

This is linear in h. Two consequences, both the point of chapter 9:

* The direct Jacobian is the whole Jacobian: dh_t/dh_{t-1} = diag(a_t), and over a lag
  dh_t/dh_s = diag(a_{s+1} * ... * a_t), exactly the LSTM's cell path diag(f_t) with nothing beside it.
* The recurrence can be computed with an associative scan. Write step t as the affine map
  h -> a_t h + b_t, i.e. the pair (a_t, b_t). Applying (a1, b1) then (a2, b2) gives
  h -> a2 (a1 h + b1) + b2, so

      (a1, b1) then (a2, b2)  =  (a1 * a2, a2 * b1 + b2)

  an associative (not commutative) combine. All prefixes of an associative product can be computed
  in ceil(log2 T) rounds of independent work (Hillis & Steele 1986; Blelloch 1990) instead of T
  dependent steps. With h0 folded into the first pair (b_0 <- a_0 h0 + b_0), the b part of the
  prefix ending at t is h_t.

minGRU (Feng et al. 2024, "Were RNNs All We Needed?"), x (T, B, D), params weight_z, weight_h (H, D),
bias_z, bias_h (H,):

    z_t  = sigmoid(x_t W_z^T + b_z)                 update gate, from x_t only
    h~_t = x_t W_h^T + b_h                          candidate, linear (no tanh), from x_t only
    h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t         so a_t = 1 - z_t, b_t = z_t * h~_t

Sign: in Feng et al.'s minGRU z takes the NEW state (as in Chung et al. 2014 and colah's blog); the
course's PyTorch GRU (gated_lib.gru) uses the opposite sign, h = (1 - z) n + z h_prev, where z keeps
the OLD state. Do not mix the two when comparing with torch.nn.GRU.

minLSTM (same paper), params weight_f, weight_i, weight_h (H, D), bias_f, bias_i, bias_h (H,): two
gates normalised so that they sum to one (which makes the state scale independent of time),

    f_t = sigmoid(x_t W_f^T + b_f),  i_t = sigmoid(x_t W_i^T + b_i),  h~_t = x_t W_h^T + b_h
    f'_t = f_t / (f_t + i_t),        i'_t = i_t / (f_t + i_t)
    h_t  = f'_t * h_{t-1} + i'_t * h~_t

(The paper also gives log-space versions for long sequences; this module keeps the plain form.)

What these models give up is exactly what made the scan possible: a gate that sees h_{t-1} cannot
decide from the state what to keep, so expressivity per layer comes from depth and width instead.

The backward pass of h_t = a_t h_{t-1} + b_t is the same kind of recurrence run backwards: with
g_t = dL/dh_t (total), g_t = dh_t + a_{t+1} g_{t+1}, so it too is a scan (mingru_backward uses the
forward's choice of scan for it).

Functions (T time, B batch, D input, H hidden; float32 and float64, dtype preserved):

    linear_scan(a, b, h0=None)                         -> h (T, B, H), the sequential loop
    parallel_scan(a, b, h0=None)                       -> h (T, B, H), Hillis-Steele doubling scan
    scan_rounds(T)                                     -> ceil(log2 T), the doubling scan's depth
    scan_jacobian(a, t, s=None)                        -> dh_t/dh_s (B, H, H) = diag(prod a_k)
    mingru_forward(x, params, h0=None, parallel=False) -> h (T, B, H), cache
    mingru_backward(dh, cache)                         -> grads {dx, dweight_z, dbias_z, dweight_h, dbias_h, dh0}
    minlstm_forward(x, params, h0=None, parallel=False)-> h (T, B, H), cache
    minlstm_backward(dh, cache)                        -> grads {dx, dweight_f, dbias_f, dweight_i, ..., dh0}
"""

from __future__ import annotations

import numpy as np

from gated_lib.activations import sigmoid
from gated_lib.errors import (
    GatedLibError,
    check_array,
    check_same_dtype,
    check_sequence,
)
from gated_lib.jacobians import _batched_diag

MINGRU_PARAMS = ("weight_z", "bias_z", "weight_h", "bias_h")
MINLSTM_PARAMS = ("weight_f", "bias_f", "weight_i", "bias_i", "weight_h", "bias_h")


# ----------------------------------------------------------------------------------------------------
# The scan
# ----------------------------------------------------------------------------------------------------

def _check_scan(a, b, h0):
    """Validate (a, b, h0) of a scan; returns them as arrays, h0 zeros when None."""
    a = check_sequence("a", a)
    # (T, B, H): b must be the same size along every axis, so name a's sizes in the message.
    T, B, H = a.shape
    b = check_array("b", b, (T, B, H), "(T, B, H)")
    if h0 is None:
        h0 = np.zeros((B, H), dtype=a.dtype)
    else:
        h0 = check_array("h0", h0, (B, H), "(B, H)")
    check_same_dtype(a=a, b=b, h0=h0)
    return a, b, h0


def linear_scan(a, b, h0=None) -> np.ndarray:
    """h_t = a_t * h_{t-1} + b_t by a loop over t: the definition, T dependent steps.

    Inputs:
    - a:  (T, B, H) decay (forget) factors, any real values (gates in (0, 1) in practice)
    - b:  (T, B, H) inputs written at each step
    - h0: (B, H) state before the first step; None means zeros

    Returns h: (T, B, H), h[t] the state after step t (h0 is not included), a's dtype.
    """
    a, b, h0 = _check_scan(a, b, h0)
    h = np.empty_like(b)
    prev = h0
    for t in range(a.shape[0]):
        prev = a[t] * prev + b[t]
        h[t] = prev
    return h


def parallel_scan(a, b, h0=None) -> np.ndarray:
    """The same h as linear_scan, by an associative scan in ceil(log2 T) vectorised rounds.

    Each step is the pair (a_t, b_t), the map h -> a_t h + b_t; composing (a1, b1) then (a2, b2)
    gives (a1 * a2, a2 * b1 + b2). The order matters: the later step's a multiplies the earlier b.

    Hillis-Steele doubling: after round k (offset d = 2^k), position t holds the composition of the
    steps max(0, t - 2d + 1) .. t. Round k combines position t - d (earlier) with t (later) for every
    t >= d at once; positions t < d already hold their full prefix and are left alone. After
    ceil(log2 T) rounds every position holds the prefix 0 .. t, whose b part is h_t once h0 has been
    folded into the first step (b_0 <- a_0 h0 + b_0, so the scan itself starts from zero).

    Work is O(T log T) elementwise products (Blelloch's up-sweep/down-sweep does O(T) work in about
    2 log2 T rounds); what matters here is depth: log2 T rounds of independent work instead of T
    dependent steps. In numpy each round is a few whole-array operations, so for long sequences
    this is also faster than the Python loop of linear_scan.

    Inputs and output: as linear_scan (a, b (T, B, H); h0 (B, H) or None) -> h (T, B, H).
    """
    a, b, h0 = _check_scan(a, b, h0)
    A = a.copy()
    Bs = b.copy()
    Bs[0] += a[0] * h0
    d = 1
    while d < A.shape[0]:
        # Right-hand sides are evaluated before assignment, so both updates read the previous round.
        Bs[d:] = A[d:] * Bs[:-d] + Bs[d:]
        A[d:] = A[:-d] * A[d:]
        d *= 2
    return Bs


def scan_rounds(T: int) -> int:
    """The number of doubling rounds parallel_scan takes for T steps: ceil(log2 T) (0 for T = 1)."""
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise GatedLibError(f"T: expected a positive integer number of steps, got {T!r}")
    return int(T - 1).bit_length()


def scan_jacobian(a, t: int, s: int | None = None) -> np.ndarray:
    """dh_t/dh_s of h_t = a_t h_{t-1} + b_t: diag(a_{s+1} * ... * a_t), batched.

    Inputs:
    - a: (T, B, H) the decay factors
    - t: the later step, 0 <= t < T
    - s: the earlier state, -1 <= s <= t; s = -1 is h0; default t - 1 (the one-step Jacobian diag(a_t))

    Returns J: (B, H, H), J[b] = diag(prod_{k=s+1}^{t} a[k, b]) (the identity when s = t).
    Nothing but a enters: unlike the LSTM's full Jacobian there is no path through a gate.
    """
    a = check_sequence("a", a)
    T = a.shape[0]
    if not (isinstance(t, (int, np.integer)) and 0 <= t < T):
        raise GatedLibError(f"t: expected an integer step with 0 <= t < T = {T}, got {t!r}")
    s = t - 1 if s is None else s
    if not (isinstance(s, (int, np.integer)) and -1 <= s <= t):
        raise GatedLibError(f"s: expected an integer with -1 <= s <= t = {t} (-1 is h0), got {s!r}")
    return _batched_diag(np.prod(a[s + 1:t + 1], axis=0) if s < t else np.ones_like(a[0]))


def _scan(parallel: bool):
    return parallel_scan if parallel else linear_scan


def _scan_backward(dh, a, h_prev, parallel: bool):
    """Gradients of h = scan(a, b, h0) given dh = dL/dh (T, B, H) as an output.

    The total gradient g_t = dL/dh_t satisfies g_t = dh_t + a_{t+1} g_{t+1}: a linear recurrence
    run backwards in time, so it is the same scan on reversed arrays with a shifted by one step.
    Returns (da, db, dh0): da_t = g_t h_{t-1}, db_t = g_t, dh0 = a_0 g_0.
    """
    a_next = np.zeros_like(a)
    a_next[:-1] = a[1:]
    g = _scan(parallel)(a_next[::-1], dh[::-1])[::-1]
    return g * h_prev, g, a[0] * g[0]


# ----------------------------------------------------------------------------------------------------
# minGRU and minLSTM
# ----------------------------------------------------------------------------------------------------

def _check_params(params, names: tuple, what: str) -> tuple[dict, int, int]:
    """Validate a dict of (H, D) weights and (H,) biases; returns (P, H, D)."""
    if not isinstance(params, dict):
        raise GatedLibError(f"params: expected a dict with keys {list(names)}, got {type(params).__name__}")
    missing = [k for k in names if k not in params]
    unknown = [k for k in params if k not in names]
    if missing or unknown:
        raise GatedLibError(f"params: {what} expects keys {list(names)}; missing {missing}, unknown {unknown}")
    first = check_array(names[0], params[names[0]], (None, None), "(H, D)")
    H, D = first.shape
    P = {k: check_array(k, params[k], (H, D) if k.startswith("weight") else (H,),
                        "(H, D)" if k.startswith("weight") else "(H,)") for k in names}
    check_same_dtype(**P)
    return P, H, D


def _check_inputs(x, P: dict, h0, H: int, D: int, weight: str):
    x = check_sequence("x", x, D)
    B = x.shape[1]
    if h0 is None:
        h0 = np.zeros((B, H), dtype=x.dtype)
    else:
        h0 = check_array("h0", h0, (B, H), "(B, H)")
    check_same_dtype(x=x, h0=h0, **{weight: P[weight]})
    return x, h0


def _linear(x, W, b):
    """x (T, B, D) -> x W^T + b (T, B, H): one batched GEMM over every step, possible because no
    gate reads h (the whole-sequence projection is the first half of the parallelism)."""
    return x @ W.T + b


def mingru_forward(x, params, h0=None, parallel: bool = False):
    """minGRU over a sequence (Feng et al. 2024): gates from x_t only, so h is a linear scan.

        z_t = sigmoid(x_t W_z^T + b_z),  h~_t = x_t W_h^T + b_h,  h_t = (1 - z_t) h_{t-1} + z_t h~_t

    z takes the NEW state here (the paper's sign), the opposite of the course's PyTorch GRU.

    Inputs:
    - x:        (T, B, D) time-major inputs
    - params:   dict weight_z (H, D), bias_z (H,), weight_h (H, D), bias_h (H,)
    - h0:       (B, H) initial state; None means zeros
    - parallel: False runs linear_scan, True parallel_scan (same result up to rounding)

    Returns ``h, cache``:
    - h:     (T, B, H) every hidden state, x's dtype
    - cache: dict x, h0, z, h_tilde, h (and a, the decay 1 - z), params, parallel; for mingru_backward
    """
    P, H, D = _check_params(params, MINGRU_PARAMS, "mingru")
    x, h0 = _check_inputs(x, P, h0, H, D, "weight_z")
    z = sigmoid(_linear(x, P["weight_z"], P["bias_z"]))
    h_tilde = _linear(x, P["weight_h"], P["bias_h"])
    a = 1.0 - z
    h = _scan(parallel)(a, z * h_tilde, h0)
    cache = dict(x=x, h0=h0, z=z, a=a, h_tilde=h_tilde, h=h, params=P, parallel=parallel)
    return h, cache


def _backward_common(dh, cache):
    """Check dh and return (da, db, dh0) of the cached scan."""
    h = cache["h"]
    dh = check_array("dh", dh, h.shape, "(T, B, H)")
    h_prev = np.concatenate([cache["h0"][None], h[:-1]], axis=0)
    return _scan_backward(dh, cache["a"], h_prev, cache["parallel"])


def _linear_grads(x, dpre: dict, P: dict) -> dict:
    """Gradients of pre = x W^T + b for each named projection; dx summed over them."""
    T, B, D = x.shape
    x2 = x.reshape(T * B, D)
    grads = {"dx": np.zeros_like(x)}
    for name, d in dpre.items():
        d2 = d.reshape(T * B, -1)
        grads["dweight_" + name] = d2.T @ x2
        grads["dbias_" + name] = d2.sum(axis=0)
        grads["dx"] += (d2 @ P["weight_" + name]).reshape(T, B, D)
    return grads


def mingru_backward(dh, cache) -> dict:
    """Backward pass of mingru_forward.

    Inputs:
    - dh:    (T, B, H) gradient of the loss with respect to every h_t (as an output)
    - cache: from mingru_forward

    Returns grads, a dict: dx (T, B, D), dweight_z (H, D), dbias_z (H,), dweight_h (H, D),
    dbias_h (H,), dh0 (B, H).
    """
    da, db, dh0 = _backward_common(dh, cache)
    z, h_tilde = cache["z"], cache["h_tilde"]
    # a = 1 - z and b = z h~: z receives -da from the decay and db h~ from the write.
    dz = db * h_tilde - da
    grads = _linear_grads(cache["x"], {"z": dz * z * (1.0 - z), "h": db * z}, cache["params"])
    grads["dh0"] = dh0
    return grads


def minlstm_forward(x, params, h0=None, parallel: bool = False):
    """minLSTM over a sequence (Feng et al. 2024), plain (not log-space) form.

        f_t = sigmoid(x_t W_f^T + b_f),  i_t = sigmoid(x_t W_i^T + b_i),  h~_t = x_t W_h^T + b_h
        h_t = f_t / (f_t + i_t) * h_{t-1} + i_t / (f_t + i_t) * h~_t

    Inputs:
    - x:        (T, B, D) time-major inputs
    - params:   dict weight_f, weight_i, weight_h (H, D), bias_f, bias_i, bias_h (H,)
    - h0:       (B, H) initial state; None means zeros
    - parallel: False runs linear_scan, True parallel_scan

    Returns ``h, cache``: h (T, B, H); cache for minlstm_backward.
    """
    P, H, D = _check_params(params, MINLSTM_PARAMS, "minlstm")
    x, h0 = _check_inputs(x, P, h0, H, D, "weight_f")
    f = sigmoid(_linear(x, P["weight_f"], P["bias_f"]))
    i = sigmoid(_linear(x, P["weight_i"], P["bias_i"]))
    h_tilde = _linear(x, P["weight_h"], P["bias_h"])
    s = f + i
    a = f / s
    i_n = i / s
    h = _scan(parallel)(a, i_n * h_tilde, h0)
    cache = dict(x=x, h0=h0, f=f, i=i, s=s, a=a, i_n=i_n, h_tilde=h_tilde, h=h, params=P,
                 parallel=parallel)
    return h, cache


def minlstm_backward(dh, cache) -> dict:
    """Backward pass of minlstm_forward.

    Inputs:
    - dh:    (T, B, H) gradient of the loss with respect to every h_t
    - cache: from minlstm_forward

    Returns grads: dx (T, B, D), dweight_f, dweight_i, dweight_h (H, D), dbias_f, dbias_i,
    dbias_h (H,), dh0 (B, H).
    """
    da, db, dh0 = _backward_common(dh, cache)
    f, i, s, i_n, h_tilde = (cache[k] for k in ("f", "i", "s", "i_n", "h_tilde"))
    # a = f/s and i' = i/s with s = f + i: da/df = i/s^2, da/di = -f/s^2, di'/df = -i/s^2,
    # di'/di = f/s^2; the decay gets da, i' gets db h~.
    e = (da - db * h_tilde) / (s * s)
    grads = _linear_grads(cache["x"], {"f": e * i * f * (1.0 - f), "i": -e * f * i * (1.0 - i),
                                       "h": db * i_n}, cache["params"])
    grads["dh0"] = dh0
    return grads


__all__ = ["linear_scan", "parallel_scan", "scan_rounds", "scan_jacobian", "mingru_forward",
           "mingru_backward", "minlstm_forward", "minlstm_backward", "MINGRU_PARAMS", "MINLSTM_PARAMS"]
