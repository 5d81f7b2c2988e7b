"""gated_lib.attention against torch and against its own definitions.

* scaled dot-product attention equals torch.nn.functional.scaled_dot_product_attention (float64), with
  and without the causal mask, with a boolean mask and with padding (key_lengths);
* the weights are a distribution over the allowed keys: non-negative, rows summing to 1, exactly 0
  where masked, and the output does not change when a masked value does;
* the hand-written backward passes a five-point finite-difference check and equals torch autograd;
* the additive (Bahdanau) and general (Luong) scores equal their formulas written out pair by pair;
* the cost model equals torch's own FLOP counter on nn.MultiheadAttention, and the scan's depth is the
  number of doubling rounds after which every position has absorbed all of its past;
* bad input raises GatedLibError naming the argument.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gated_lib import attention as att
from gated_lib.errors import DTypeError, GatedLibError, ShapeError
from gated_lib.gradcheck import grad_check, numerical_gradient, rel_error

torch = pytest.importorskip("torch")
F = torch.nn.functional

# (Tq, Tk, B, d, dv): square and rectangular, B = 1, d = 1, one key.
SIZES = [(5, 5, 2, 4, 3), (3, 7, 1, 2, 5), (6, 4, 3, 1, 1), (1, 1, 2, 3, 2), (4, 1, 1, 2, 2)]


def qkv(size, seed=0, dtype=np.float64):
    Tq, Tk, B, d, dv = size
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((Tq, B, d)).astype(dtype), rng.standard_normal((Tk, B, d)).astype(dtype),
            rng.standard_normal((Tk, B, dv)).astype(dtype))


def batch_first(a):
    """(T, B, d) numpy -> (B, T, d) torch, the layout torch's functional attention takes."""
    return torch.from_numpy(np.ascontiguousarray(a)).permute(1, 0, 2)


# ----------------------------------------------------------------------------------------------------
# Parity with torch
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("causal", [False, True])
def test_matches_torch_sdpa(size, causal):
    q, k, v = qkv(size)
    out, w = att.scaled_dot_product_attention(q, k, v, causal=causal)
    ref = F.scaled_dot_product_attention(batch_first(q), batch_first(k), batch_first(v), is_causal=causal)
    assert out.shape == (size[0], size[2], size[4]) and w.shape == (size[2], size[0], size[1])
    np.testing.assert_allclose(out, ref.permute(1, 0, 2).numpy(), rtol=0, atol=1e-12)


def test_boolean_mask_and_padding_match_torch():
    Tq, Tk, B, d, dv = size = (4, 6, 3, 5, 2)
    q, k, v = qkv(size, seed=1)
    rng = np.random.default_rng(2)
    mask = rng.random((B, Tq, Tk)) < 0.6
    mask[:, :, 0] = True                            # every query keeps at least one key
    lengths = np.array([6, 2, 4])
    out, _ = att.scaled_dot_product_attention(q, k, v, mask=mask, key_lengths=lengths)
    allowed = mask & (np.arange(Tk)[None, None, :] < lengths[:, None, None])
    ref = F.scaled_dot_product_attention(batch_first(q), batch_first(k), batch_first(v),
                                         attn_mask=torch.from_numpy(allowed))
    np.testing.assert_allclose(out, ref.permute(1, 0, 2).numpy(), rtol=0, atol=1e-12)


def test_custom_scale_matches_torch():
    q, k, v = qkv(SIZES[0], seed=3)
    out, _ = att.scaled_dot_product_attention(q, k, v, scale=0.3)
    ref = F.scaled_dot_product_attention(batch_first(q), batch_first(k), batch_first(v), scale=0.3)
    np.testing.assert_allclose(out, ref.permute(1, 0, 2).numpy(), rtol=0, atol=1e-12)


def test_float32_stays_float32_and_is_close():
    q, k, v = qkv(SIZES[0], seed=4, dtype=np.float32)
    out, w = att.scaled_dot_product_attention(q, k, v)
    assert out.dtype == np.float32 and w.dtype == np.float32
    out64, _ = att.scaled_dot_product_attention(*(a.astype(np.float64) for a in (q, k, v)))
    np.testing.assert_allclose(out, out64, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------------
# The weights
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
def test_weights_are_distributions(size):
    q, k, v = qkv(size, seed=5)
    _, w = att.scaled_dot_product_attention(q, k, v)
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=0, atol=1e-12)


def test_masked_positions_get_exactly_zero_weight_and_do_not_change_the_output():
    Tq, Tk, B, d, dv = size = (5, 5, 2, 3, 4)
    q, k, v = qkv(size, seed=6)
    lengths = np.array([5, 3])
    out, w = att.scaled_dot_product_attention(q, k, v, causal=True, key_lengths=lengths)
    future = ~np.tril(np.ones((Tq, Tk), dtype=bool))
    assert np.all(w[:, future] == 0.0), "a query gave weight to a later key under causal=True"
    assert np.all(w[1, :, 3:] == 0.0), "example 1 gave weight to its padding"
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    v2 = v.copy()
    v2[3:, 1] = 1e6                                 # change the padded values of example 1
    out2, _ = att.scaled_dot_product_attention(q, k, v2, causal=True, key_lengths=lengths)
    np.testing.assert_array_equal(out2, out)


def test_one_allowed_key_copies_its_value():
    q, k, v = qkv((4, 4, 2, 3, 2), seed=7)
    out, w = att.scaled_dot_product_attention(q, k, v, mask=np.eye(4, dtype=bool))
    np.testing.assert_array_equal(w, np.broadcast_to(np.eye(4), w.shape))
    np.testing.assert_allclose(out, v, rtol=0, atol=1e-15)


def test_huge_scores_do_not_overflow():
    q, k, v = qkv((3, 4, 2, 2, 2), seed=8)
    out, w = att.scaled_dot_product_attention(1e4 * q, 1e4 * k, v)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(w))
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=0, atol=1e-12)


def test_scale_one_over_sqrt_d_keeps_score_variance_near_one():
    # The reason for the 1/sqrt(d): with unit-variance q and k entries, q.k has variance d.
    rng = np.random.default_rng(9)
    for d in (4, 64, 256):
        q, k = rng.standard_normal((1, 4000, d)), rng.standard_normal((1, 4000, d))
        s = att.dot_product_scores(q, k, 1 / math.sqrt(d))[:, 0, 0]
        assert 0.9 < s.var() < 1.1, (d, s.var())


# ----------------------------------------------------------------------------------------------------
# Gradients
# ----------------------------------------------------------------------------------------------------

def check_backward(size, seed, **kw):
    """The numpy backward against five-point centred differences (gated_lib.gradcheck), input by input.

    Entries that no output depends on (a key after every query under causal=True, padding, q and k when
    there is one allowed key, whose weight is 1 whatever they are) must get exactly 0; centred
    differences return rounding noise (~1e-14) there, so the relative error is taken over the others.
    """
    q, k, v = qkv(size, seed)
    dout = np.random.default_rng(seed + 1).standard_normal((size[0], size[2], size[4]))
    _, w = att.scaled_dot_product_attention(q, k, v, **kw)
    grads = att.scaled_dot_product_attention_backward(dout, q, k, v, w, kw.get("scale"))
    for name, x in (("q", q), ("k", k), ("v", v)):
        numeric = numerical_gradient(lambda: att.scaled_dot_product_attention(q, k, v, **kw)[0], x, dout,
                                     h=1e-3, order=4)
        zero = grads[name] == 0.0
        assert np.all(np.abs(numeric[zero]) < 1e-11), f"d{name}: an exactly-zero gradient is not zero numerically"
        assert rel_error(grads[name][~zero], numeric[~zero]) < 1e-7, f"d{name}: {rel_error(grads[name], numeric)}"
    return grads


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("causal", [False, True])
def test_backward_passes_gradient_check(size, causal):
    grads = check_backward(size, 10, causal=causal)
    if size[1] == 1:
        assert not grads["q"].any() and not grads["k"].any()


def test_backward_with_padding_and_scale_passes_gradient_check():
    grads = check_backward((3, 5, 2, 3, 2), 11, key_lengths=np.array([2, 5]), scale=0.7)
    assert not grads["k"][2:, 0].any() and not grads["v"][2:, 0].any() and grads["v"][2:, 1].all()


def test_backward_through_grad_check_report():
    # The same check through grad_check's report, on a case with no structurally-zero entry.
    q, k, v = qkv((4, 6, 2, 3, 5), seed=12)

    def forward(inputs):
        out, w = att.scaled_dot_product_attention(inputs["q"], inputs["k"], inputs["v"])
        return out, w

    def backward(dout, w):
        return att.scaled_dot_product_attention_backward(dout, q, k, v, w)

    report = grad_check(forward, {"q": q, "k": k, "v": v}, backward)
    assert report.passed and all(np.isfinite(e) for e in report.errors.values()), str(report)


@pytest.mark.parametrize("causal", [False, True])
def test_backward_matches_torch_autograd(causal):
    size = (4, 4, 3, 5, 2)
    q, k, v = qkv(size, seed=12)
    dout = np.random.default_rng(13).standard_normal((size[0], size[2], size[4]))
    tq, tk, tv = (batch_first(a).clone().requires_grad_(True) for a in (q, k, v))
    F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal).backward(batch_first(dout))
    _, w = att.scaled_dot_product_attention(q, k, v, causal=causal)
    grads = att.scaled_dot_product_attention_backward(dout, q, k, v, w)
    for name, t in (("q", tq), ("k", tk), ("v", tv)):
        np.testing.assert_allclose(grads[name], t.grad.permute(1, 0, 2).numpy(), rtol=0, atol=1e-12,
                                   err_msg=f"d{name}")


def test_additive_attention_gradient_through_torch_matches_finite_differences():
    # No numpy backward for the additive score: check the torch twin of the formula with torch's own
    # finite-difference checker, and that the twin equals gated_lib's forward.
    q, k, v = qkv((3, 4, 2, 3, 2), seed=14)
    p = additive_params(A=5, dq=3, dk=3, seed=15)
    out, _ = att.additive_attention(q, k, v, p)

    def twin(tq, tk, tv, Wq, Wk, w, b):
        e = torch.tanh(torch.einsum("ibd,ad->bia", tq, Wq)[:, :, None] + torch.einsum("jbd,ad->bja", tk, Wk)[:, None]
                       + b) @ w
        return torch.einsum("bij,jbd->ibd", torch.softmax(e, dim=-1), tv)

    args = [torch.from_numpy(a).requires_grad_(True) for a in (q, k, v, p["weight_q"], p["weight_k"],
                                                                p["weight_v"], p["bias"])]
    np.testing.assert_allclose(twin(*args).detach().numpy(), out, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(twin, args)


# ----------------------------------------------------------------------------------------------------
# Additive and general scores
# ----------------------------------------------------------------------------------------------------

def additive_params(A, dq, dk, seed=0, bias=True):
    rng = np.random.default_rng(seed)
    p = {"weight_q": rng.standard_normal((A, dq)), "weight_k": rng.standard_normal((A, dk)),
         "weight_v": rng.standard_normal(A)}
    if bias:
        p["bias"] = rng.standard_normal(A)
    return p


@pytest.mark.parametrize("bias", [True, False])
def test_additive_scores_equal_bahdanau_formula_pair_by_pair(bias):
    Tq, Tk, B, dq, dk, A = 3, 4, 2, 5, 2, 6
    rng = np.random.default_rng(16)
    q, k = rng.standard_normal((Tq, B, dq)), rng.standard_normal((Tk, B, dk))
    p = additive_params(A, dq, dk, seed=17, bias=bias)
    e = att.additive_scores(q, k, p)
    b = p.get("bias", np.zeros(A))
    for n in range(B):
        for i in range(Tq):
            for j in range(Tk):
                expected = p["weight_v"] @ np.tanh(p["weight_q"] @ q[i, n] + p["weight_k"] @ k[j, n] + b)
                assert e[n, i, j] == pytest.approx(expected, abs=1e-12)


def test_general_scores_equal_luong_formula_and_reduce_to_dot():
    rng = np.random.default_rng(18)
    q, k, W = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 2, 3)), rng.standard_normal((4, 3))
    e = att.general_scores(q, k, W)
    for n in range(2):
        np.testing.assert_allclose(e[n], q[:, n] @ W @ k[:, n].T, rtol=0, atol=1e-12)
    q, k = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 2, 4))
    np.testing.assert_allclose(att.general_scores(q, k, np.eye(4) / 2), att.dot_product_scores(q, k, 0.5),
                               rtol=0, atol=1e-12)


def test_additive_attention_weights_and_masks():
    q, k, v = qkv((4, 4, 2, 3, 2), seed=19)
    _, w = att.additive_attention(q, k, v, additive_params(5, 3, 3, seed=20), causal=True)
    assert np.all(w[:, ~np.tril(np.ones((4, 4), dtype=bool))] == 0.0)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------------------------------
# Cost model
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("T, d, B, heads", [(7, 16, 3, 1), (5, 8, 2, 2), (33, 32, 1, 4)])
def test_attention_flops_equal_torch_flop_counter(T, d, B, heads):
    from torch.utils.flop_counter import FlopCounterMode

    mha = torch.nn.MultiheadAttention(d, heads)
    x = torch.randn(T, B, d)
    with FlopCounterMode(display=False) as counter:
        mha(x, x, x, need_weights=True)            # the explicit-matmul path, which the counter sees
    flops = att.attention_flops(T, d, B)
    assert counter.get_total_flops() == flops["total"]
    assert flops["total"] == flops["projections"] + flops["scores"] + flops["weighted_sum"]
    assert att.attention_flops(T, d, B, projections=False)["total"] == 4 * B * T * T * d


def test_sequential_steps():
    assert [att.sequential_steps("recurrent", T) for T in (1, 5, 100)] == [1, 5, 100]
    assert [att.sequential_steps("self_attention", T) for T in (1, 5, 100)] == [1, 1, 1]
    for T in range(1, 70):
        rounds = att.sequential_steps("scan", T)
        # Recursive doubling: round r joins position t with what position t - 2^r has absorbed.
        reach = [{t} for t in range(T)]
        for r in range(rounds):
            reach = [reach[t] | (reach[t - 2 ** r] if t >= 2 ** r else set()) for t in range(T)]
        assert all(reach[t] == set(range(t + 1)) for t in range(T)), f"T={T}: {rounds} rounds do not suffice"
        if rounds:
            assert 2 ** (rounds - 1) < T, f"T={T}: {rounds} rounds, one fewer would do"


# ----------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------

Q, K, V = qkv((3, 4, 2, 5, 2), seed=21)


@pytest.mark.parametrize("call, error, words", [
    (lambda: att.scaled_dot_product_attention(Q[0], K, V), ShapeError, ["q:", "(Tq, B, d)", "q[None]"]),
    (lambda: att.scaled_dot_product_attention(Q, K[:, :, :2], V), ShapeError, ["k:", "(Tk, B, d)", "(4, 2, 2)"]),
    (lambda: att.scaled_dot_product_attention(Q, K[:, :1], V), ShapeError, ["k:", "(4, 1, 5)"]),
    (lambda: att.scaled_dot_product_attention(Q, K, V[:3]), ShapeError, ["v:", "(Tk, B, dv) = (4, 2, dv)", "(3, 2, 2)"]),
    (lambda: att.scaled_dot_product_attention(Q, K, V.astype(np.float32)), DTypeError, ["v: float32"]),
    (lambda: att.scaled_dot_product_attention(Q, K, V, mask=np.ones((3, 4))), GatedLibError, ["mask:", "boolean"]),
    (lambda: att.scaled_dot_product_attention(Q, K, V, mask=np.ones((4, 3), bool)), ShapeError,
     ["mask:", "(Tq, Tk) = (3, 4)", "got (4, 3)"]),
    (lambda: att.scaled_dot_product_attention(Q, K, V, mask=np.zeros((3, 4), bool)), GatedLibError,
     ["mask:", "query 0 of example 0", "no key"]),
    (lambda: att.scaled_dot_product_attention(Q, K, V, key_lengths=np.array([0, 4])), GatedLibError,
     ["key_lengths:", "[1, 4]", "[0, 4]"]),
    (lambda: att.scaled_dot_product_attention(Q, K, V, key_lengths=np.array([2.0, 4.0])), ShapeError,
     ["key_lengths:", "integers"]),
    (lambda: att.scaled_dot_product_attention(Q, K, V, key_lengths=np.array([2])), ShapeError,
     ["key_lengths:", "(B,) = (2,)"]),
    (lambda: att.scaled_dot_product_attention(Q, K, V, causal="yes"), GatedLibError, ["causal:"]),
    (lambda: att.scaled_dot_product_attention(Q, K, V, scale=-1.0), GatedLibError, ["scale:", "positive"]),
    (lambda: att.scaled_dot_product_attention(Q * np.nan, K, V), GatedLibError, ["q:", "NaN"]),
    (lambda: att.scaled_dot_product_attention(np.zeros((0, 2, 5)), K, V), ShapeError, ["q:", "non-empty"]),
    (lambda: att.additive_scores(Q, K, {"weight_q": np.ones((3, 5))}), GatedLibError,
     ["params:", "weight_k", "weight_v"]),
    (lambda: att.additive_scores(Q, K, [1, 2]), GatedLibError, ["params:", "dict"]),
    (lambda: att.additive_scores(Q, K, {**additive_params(3, 5, 5), "weight_k": np.ones((4, 5))}), ShapeError,
     ["weight_k:", "(A, dk) = (3, 5)"]),
    (lambda: att.general_scores(Q, K, np.ones((5, 4))), ShapeError, ["weight:", "(dq, dk) = (5, 5)"]),
    (lambda: att.masked_softmax(np.zeros((1, 2, 3)), np.zeros((1, 2, 3), bool)), GatedLibError,
     ["allowed:", "no key"]),
    (lambda: att.attend(np.zeros((2, 3, 4)), np.zeros((5, 2, 1))), ShapeError, ["v:", "(4, 2, dv)"]),
    (lambda: att.scaled_dot_product_attention_backward(np.zeros((3, 2, 3)), Q, K, V, np.zeros((2, 3, 4))),
     ShapeError, ["dout:", "(3, 2, 2)"]),
    (lambda: att.attention_flops(0, 8), GatedLibError, ["seq_len:", "positive"]),
    (lambda: att.sequential_steps("transformer", 8), GatedLibError, ["kind:", "'scan'"]),
])
def test_errors_name_the_argument(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"
