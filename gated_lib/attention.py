"""Attention: read a weighted average of all encoder states instead of one fixed-size summary.

The idea. A sequence-to-sequence model without attention hands the decoder one vector, the encoder's
final state, whatever the length of the source: a fixed-size bottleneck. Attention
(Bahdanau et al. 2015) lets every decoder step i look at every encoder state j: a *score* says how
well key k_j matches query q_i, a softmax over j turns the scores into weights that sum to 1, and the
output is the weighted average of the values v_j:

    e_ij     = score(q_i, k_j)                                   scores   (B, Tq, Tk)
    alpha_ij = exp(e_ij) / sum_{j' allowed} exp(e_ij')           weights  (B, Tq, Tk), 0 where masked
    o_i      = sum_j alpha_ij v_j                                output   (Tq, B, dv)

The score functions of the literature:

    additive   (Bahdanau et al. 2015)  e_ij = w^T tanh(W_q q_i + W_k k_j + b)     additive_scores
    general    (Luong et al. 2015)     e_ij = q_i^T W k_j                          general_scores
    dot        (Luong et al. 2015)     e_ij = q_i^T k_j                            dot_product_scores
    scaled dot (Vaswani et al. 2017)   e_ij = q_i^T k_j / sqrt(d)                  scaled_dot_product_attention

The 1/sqrt(d) keeps the scores' variance near 1 when q and k have unit-variance entries, so the
softmax does not saturate (and its gradient vanish) as d grows.

Shapes are time-major, as everywhere in gated_lib and as torch.nn.MultiheadAttention with
batch_first=False: q (Tq, B, d), k (Tk, B, d), v (Tk, B, dv). Weights are (B, Tq, Tk), the layout that
module returns; a decoder's single query of shape (B, d) is q[None].

Masks say where a query MAY look (True = allowed, the convention of
torch.nn.functional.scaled_dot_product_attention; nn.MultiheadAttention's masks use the opposite):

    mask         bool (Tq, Tk) or (B, Tq, Tk)
    causal       query i sees keys j <= i (top-left aligned, as torch's is_causal)
    key_lengths  (B,) ints: example b has key_lengths[b] valid keys, the rest is padding

and they combine with "and". A query that may see no key has no softmax: that is an error here
(torch returns NaN). Masked positions get weight exactly 0.

The cost model at the end (attention_flops, sequential_steps) is the comparison of Vaswani et al.'s
Table 1 in the counting conventions of gated_lib.counting: a multiply-add is 2 FLOPs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from gated_lib.errors import GatedLibError, ShapeError, check_array, check_same_dtype
from gated_lib.linear_recurrence import scan_rounds


# ----------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------

def _check_qk(q, k, same_dim: bool = True):
    """q (Tq, B, dq), k (Tk, B, dk) with one B (and dq == dk when same_dim); returns float arrays."""
    if np.ndim(q) == 2:
        raise ShapeError(f"q: expected shape (Tq, B, d), got {tuple(np.shape(q))}; a single query (B, d) "
                         f"per example, such as a decoder's state, is q[None]")
    q = check_array("q", q, (None, None, None), "(Tq, B, d)")
    k = check_array("k", k, (None, q.shape[1], q.shape[2] if same_dim else None), "(Tk, B, d)")
    for name, a in (("q", q), ("k", k)):
        if 0 in a.shape:
            raise ShapeError(f"{name}: expected non-empty axes, got shape {tuple(a.shape)}")
    check_same_dtype(q=q, k=k)
    return q, k


def attention_mask(Tq: int, Tk: int, batch_size: int, mask=None, causal: bool = False,
                   key_lengths=None) -> np.ndarray | None:
    """Combine the three kinds of mask into one boolean array (B, Tq, Tk), True = may attend.

    Inputs:
    - Tq, Tk, batch_size: the sizes of the scores
    - mask:        bool (Tq, Tk) or (B, Tq, Tk), or None
    - causal:      if True, query i may attend to keys j <= i only
    - key_lengths: (B,) ints in [1, Tk]; keys j >= key_lengths[b] of example b are padding

    Returns None when nothing is masked. Raises GatedLibError when a query may attend to no key.
    """
    allowed = np.ones((batch_size, Tq, Tk), dtype=bool)
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype != bool:
            raise GatedLibError(f"mask: expected a boolean array (True = may attend), got dtype {m.dtype}")
        if m.shape not in ((Tq, Tk), (batch_size, Tq, Tk)):
            raise ShapeError(f"mask: expected shape (Tq, Tk) = ({Tq}, {Tk}) or (B, Tq, Tk) = "
                             f"({batch_size}, {Tq}, {Tk}), got {tuple(m.shape)}")
        allowed &= m
    if not isinstance(causal, (bool, np.bool_)):
        raise GatedLibError(f"causal: expected True or False, got {causal!r}")
    if causal:
        allowed &= np.tril(np.ones((Tq, Tk), dtype=bool))
    if key_lengths is not None:
        n = np.asarray(key_lengths)
        if n.shape != (batch_size,) or n.dtype.kind not in "iu":
            raise ShapeError(f"key_lengths: expected integers of shape (B,) = ({batch_size},), "
                             f"got {n.dtype} of shape {tuple(n.shape)}")
        if np.any(n < 1) or np.any(n > Tk):
            raise GatedLibError(f"key_lengths: expected values in [1, Tk] = [1, {Tk}], got {n.tolist()}")
        allowed &= np.arange(Tk)[None, None, :] < n[:, None, None]
    if allowed.all():
        return None
    empty = ~allowed.any(axis=-1)
    if empty.any():
        b, i = (int(a) for a in np.argwhere(empty)[0])
        raise GatedLibError(f"mask: query {i} of example {b} may attend to no key (all {Tk} keys are masked "
                            f"by the combination of mask, causal and key_lengths); every query needs at "
                            f"least one allowed key")
    return allowed


# ----------------------------------------------------------------------------------------------------
# Scores
# ----------------------------------------------------------------------------------------------------

def dot_product_scores(q, k, scale: float = 1.0) -> np.ndarray:
    """Luong et al.'s dot score, times `scale`: e[b, i, j] = scale * q[i, b] . k[j, b].

    Inputs: q (Tq, B, d), k (Tk, B, d), scale a positive number (1/sqrt(d) for Vaswani et al.).
    Returns scores (B, Tq, Tk).
    """
    q, k = _check_qk(q, k)
    if not (isinstance(scale, (int, float, np.floating)) and math.isfinite(scale) and scale > 0):
        raise GatedLibError(f"scale: expected a positive finite number, got {scale!r}")
    return scale * np.einsum("ibd,jbd->bij", q, k)


def general_scores(q, k, weight) -> np.ndarray:
    """Luong et al.'s "general" (multiplicative) score: e[b, i, j] = q[i, b] W k[j, b]^T.

    Inputs: q (Tq, B, dq), k (Tk, B, dk), weight W (dq, dk). Returns scores (B, Tq, Tk).
    W = I gives the dot score; W = I / sqrt(d) the scaled dot score.
    """
    q, k = _check_qk(q, k, same_dim=False)
    W = check_array("weight", weight, (q.shape[2], k.shape[2]), "(dq, dk)")
    check_same_dtype(q=q, weight=W)
    return np.einsum("ibd,de,jbe->bij", q, W, k)


def additive_scores(q, k, params) -> np.ndarray:
    """Bahdanau et al.'s additive score: e[b, i, j] = w . tanh(W_q q[i, b] + W_k k[j, b] + bias).

    Inputs:
    - q: (Tq, B, dq) the queries (Bahdanau: the decoder state s_{i-1})
    - k: (Tk, B, dk) the keys (Bahdanau: the encoder's annotations h_j)
    - params: dict with weight_q (A, dq), weight_k (A, dk), weight_v (A,) and optionally bias (A,);
      A is the size of the hidden layer of the small network that scores a pair
    Returns scores (B, Tq, Tk). Memory (B, Tq, Tk, A): every pair goes through the tanh layer.
    """
    q, k = _check_qk(q, k, same_dim=False)
    if not isinstance(params, Mapping):
        raise GatedLibError(f"params: expected a dict with weight_q, weight_k, weight_v (and optionally bias), "
                            f"got {type(params).__name__}")
    missing = [n for n in ("weight_q", "weight_k", "weight_v") if params.get(n) is None]
    if missing:
        raise GatedLibError(f"params: missing {missing} for additive attention (have {sorted(params)})")
    Wq = check_array("weight_q", params["weight_q"], (None, q.shape[2]), "(A, dq)")
    A = Wq.shape[0]
    Wk = check_array("weight_k", params["weight_k"], (A, k.shape[2]), "(A, dk)")
    w = check_array("weight_v", params["weight_v"], (A,), "(A,)")
    bias = params.get("bias")
    if bias is not None:
        bias = check_array("bias", bias, (A,), "(A,)")
    check_same_dtype(q=q, weight_q=Wq, weight_k=Wk, weight_v=w, bias=bias)
    # The projections are computed once per query and once per key; only the tanh sees every pair.
    pq = np.einsum("ibd,ad->bia", q, Wq)
    pk = np.einsum("jbd,ad->bja", k, Wk)
    pre = pq[:, :, None, :] + pk[:, None, :, :]
    if bias is not None:
        pre = pre + bias
    return np.tanh(pre) @ w


# ----------------------------------------------------------------------------------------------------
# Scores -> weights -> output
# ----------------------------------------------------------------------------------------------------

def masked_softmax(scores, allowed=None) -> np.ndarray:
    """Softmax over the last axis of scores (B, Tq, Tk), restricted to the allowed keys.

    allowed: bool (B, Tq, Tk) (from attention_mask) or None. Masked entries get weight exactly 0;
    every row of the result sums to 1 over its allowed keys.
    """
    s = check_array("scores", scores, (None, None, None), "(B, Tq, Tk)")
    if allowed is not None:
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.shape != s.shape:
            raise ShapeError(f"allowed: expected shape (B, Tq, Tk) = {tuple(s.shape)}, got {tuple(allowed.shape)}")
        if not allowed.any(axis=-1).all():
            raise GatedLibError("allowed: a query may attend to no key (a row of the mask is all False)")
        s = np.where(allowed, s, -np.inf)
    # Subtracting the row maximum leaves the softmax unchanged and keeps exp() from overflowing.
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attend(scores, v, allowed=None):
    """Weights from scores, then the weighted average of the values.

    Inputs: scores (B, Tq, Tk) from any score function; v (Tk, B, dv); allowed bool (B, Tq, Tk) or None.
    Returns (output (Tq, B, dv), weights (B, Tq, Tk)).
    """
    s = check_array("scores", scores, (None, None, None), "(B, Tq, Tk)")
    B, _, Tk = s.shape
    v = check_array("v", v, (Tk, B, None), "(Tk, B, dv)")
    w = masked_softmax(s, allowed)
    return np.einsum("bij,jbd->ibd", w, v), w


def scaled_dot_product_attention(q, k, v, mask=None, causal: bool = False, key_lengths=None,
                                 scale: float | None = None):
    """Vaswani et al.'s attention: softmax(q k^T / sqrt(d)) v, with optional masks.

    Inputs:
    - q: (Tq, B, d) queries; k: (Tk, B, d) keys; v: (Tk, B, dv) values (one floating dtype)
    - mask, causal, key_lengths: where a query may look (see attention_mask; True = allowed)
    - scale: the factor on the scores, default 1/sqrt(d)

    Returns (output (Tq, B, dv), weights (B, Tq, Tk)); weights are 0 where masked and each row sums to 1.
    Matches torch.nn.functional.scaled_dot_product_attention (batch-first there: transpose).
    """
    q, k = _check_qk(q, k)
    Tq, B, d = q.shape
    Tk = k.shape[0]
    v = check_array("v", v, (Tk, B, None), "(Tk, B, dv)")
    check_same_dtype(q=q, k=k, v=v)
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    allowed = attention_mask(Tq, Tk, B, mask, causal, key_lengths)
    return attend(dot_product_scores(q, k, scale), v, allowed)


def scaled_dot_product_attention_backward(dout, q, k, v, weights, scale: float | None = None) -> dict:
    """Gradients of scaled_dot_product_attention, given its inputs and the weights it returned.

    Inputs: dout (Tq, B, dv) the upstream gradient of the output; q, k, v as in the forward;
    weights (B, Tq, Tk) the forward's weights; scale as in the forward (default 1/sqrt(d)).
    Returns {"q": (Tq, B, d), "k": (Tk, B, d), "v": (Tk, B, dv)}.

    With S the scores, W = softmax(S) and O = W V (per example):
        dV = W^T dO;  dW = dO V^T;  dS = W * (dW - rowsum(W * dW));  dQ = scale dS K;  dK = scale dS^T Q.
    The softmax's Jacobian is diag(w) - w w^T, which gives dS; a masked entry has w = 0, so its dS is 0
    and the mask needs no special case.
    """
    q, k = _check_qk(q, k)
    Tq, B, d = q.shape
    Tk = k.shape[0]
    v = check_array("v", v, (Tk, B, None), "(Tk, B, dv)")
    dout = check_array("dout", dout, (Tq, B, v.shape[2]), "(Tq, B, dv)")
    W = check_array("weights", weights, (B, Tq, Tk), "(B, Tq, Tk)")
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    dv = np.einsum("bij,ibd->jbd", W, dout)
    dW = np.einsum("ibd,jbd->bij", dout, v)
    dS = W * (dW - np.sum(W * dW, axis=-1, keepdims=True))
    dq = scale * np.einsum("bij,jbd->ibd", dS, k)
    dk = scale * np.einsum("bij,ibd->jbd", dS, q)
    return {"q": dq, "k": dk, "v": dv}


def additive_attention(q, k, v, params, mask=None, causal: bool = False, key_lengths=None):
    """Bahdanau et al.'s attention: additive scores (see additive_scores), softmax, weighted average.

    Returns (output (Tq, B, dv), weights (B, Tq, Tk)).
    """
    scores = additive_scores(q, k, params)
    B, Tq, Tk = scores.shape
    return attend(scores, v, attention_mask(Tq, Tk, B, mask, causal, key_lengths))


# ----------------------------------------------------------------------------------------------------
# What a layer costs: Vaswani et al. 2017, Table 1, in gated_lib.counting's conventions
# ----------------------------------------------------------------------------------------------------

def attention_flops(seq_len: int, d_model: int, batch_size: int = 1, projections: bool = True) -> dict:
    """Matmul FLOPs of one self-attention layer over a sequence (multiply-add = 2 FLOPs).

    Inputs: seq_len T, d_model d (all heads together: the count does not depend on the number of
    heads), batch_size B; projections=False counts the attention alone (a q, k, v given).
    Returns a dict of ints:
    - projections:  2*B*T*d*d for each of W_q, W_k, W_v and the output W_o: 8*B*T*d^2
    - scores:       q k^T, 2*B*T*T*d
    - weighted_sum: weights @ v, 2*B*T*T*d
    - total:        their sum, 8*B*T*d^2 + 4*B*T^2*d
    Compare with a recurrent layer, T * flops_per_step(cell, d, d)["matmul"] = 2*G*B*T*d*2d: both are
    linear in T for the projections, but only attention has the T^2 term.
    """
    for name, value in (("seq_len", seq_len), ("d_model", d_model), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise GatedLibError(f"{name}: expected a positive integer, got {value!r}")
    T, d, B = int(seq_len), int(d_model), int(batch_size)
    proj = 8 * B * T * d * d if projections else 0
    scores = weighted = 2 * B * T * T * d
    return dict(projections=proj, scores=scores, weighted_sum=weighted, total=proj + scores + weighted)


def sequential_steps(kind: str, seq_len: int) -> int:
    """How many dependent steps a layer needs over T positions, however many processors it has.

    kind:
    - "recurrent":      T (h_t needs h_{t-1}: the critical path goes through every step)
    - "self_attention": 1 (every position reads every other through one matmul; Vaswani et al.'s O(1))
    - "scan":           ceil(log2 T), a linear recurrence h_t = a_t h_{t-1} + b_t by recursive doubling
                        (Hillis-Steele, gated_lib.linear_recurrence.parallel_scan): round r combines
                        each position with the one 2^r before it, so after r rounds position t has
                        absorbed 2^r steps of its past
    """
    if not isinstance(seq_len, (int, np.integer)) or isinstance(seq_len, bool) or seq_len < 1:
        raise GatedLibError(f"seq_len: expected a positive integer, got {seq_len!r}")
    T = int(seq_len)
    if kind == "recurrent":
        return T
    if kind == "self_attention":
        return 1
    if kind == "scan":
        return scan_rounds(T)                # the depth of gated_lib.linear_recurrence.parallel_scan
    raise GatedLibError(f"kind: expected 'recurrent', 'self_attention' or 'scan', got {kind!r}")
