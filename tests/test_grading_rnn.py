"""The RNN checkers of gated_lib.grading (exercise 1): they accept every correct solution and name every bug.

Each learner solution below is written the way a learner writes it (not through gated_lib), so a
passing test says something about the checker, not about the reference it compares with.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import gated_lib.jacobians as jac
import gated_lib.rnn as ref
from gated_lib.clipping import clip_by_norm as ref_clip_by_norm
from gated_lib.grading import rnn as grading
from gated_lib.grading.core import GradingFailure

HIDDEN = dict(fixed=False, n_random=4, edge_sizes=True, saturate=True, dtypes=("float32", "float64"))
CLIP_HIDDEN = dict(fixed=False, n_random=4, edge_sizes=True, dtypes=("float32", "float64"))


def failure(check, fn, **kwargs) -> str:
    with pytest.raises(GradingFailure) as info:
        check(fn, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------------------------
# Learners' solutions: correct ones
# ------------------------------------------------------------------------------------------------

def cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    return np.tanh(x @ weight_ih.T + bias_ih + h_prev @ weight_hh.T + bias_hh)


def cell_column_style(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """Column-vector algebra (W x + U h + b), transposed back; tanh through exp of a negative argument."""
    a = (weight_ih @ x.T + weight_hh @ h_prev.T + (bias_ih + bias_hh)[:, None]).T
    e = np.exp(-2.0 * np.abs(a))
    return (np.sign(a) * (1.0 - e) / (1.0 + e)).astype(x.dtype)


def cell_einsum_f64(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    a = np.einsum("bd,hd->bh", x.astype(np.float64), weight_ih) + np.einsum("bk,hk->bh", h_prev, weight_hh)
    return np.tanh(a + bias_ih + bias_hh).astype(x.dtype)


def cell_torch_math(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    import torch
    t = [torch.from_numpy(np.ascontiguousarray(v)) for v in (x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)]
    return torch.tanh(t[0] @ t[2].T + t[4] + t[1] @ t[3].T + t[5]).numpy()


def make_sequence(step, *, zeros_dtype="x", store="array"):
    def rnn_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None):
        T, B, _ = x.shape
        H = weight_hh.shape[0]
        h = np.zeros((B, H), x.dtype if zeros_dtype == "x" else np.float64) if h0 is None else h0
        out = []
        for t in range(T):
            h = step(x[t], h, weight_ih, weight_hh, bias_ih, bias_hh)
            out.append(h)
        return np.stack(out), h
    return rnn_forward


def jacobian(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    h = cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
    return (1 - h ** 2)[:, :, None] * weight_hh[None, :, :]


def jacobian_loop(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """Example by example, with np.diag: the textbook diag(1 - h^2) W."""
    h = cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
    return np.stack([np.diag(1.0 - hb * hb) @ weight_hh for hb in h])


def jacobian_einsum(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    h = cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
    eye = np.eye(h.shape[1], dtype=x.dtype)
    return np.einsum("bi,ij,jk->bik", 1 - h * h, eye, weight_hh)


def jacobian_autograd(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """torch.autograd.functional.jacobian on one example at a time: allowed (it is not an RNN)."""
    import torch
    W = [torch.from_numpy(v) for v in (weight_ih, weight_hh, bias_ih, bias_hh)]
    out = []
    for xb, hb in zip(torch.from_numpy(x), torch.from_numpy(h_prev)):
        out.append(torch.autograd.functional.jacobian(
            lambda h: torch.tanh(xb @ W[0].T + W[2] + h @ W[1].T + W[3]), hb))
    return torch.stack(out).numpy()


def make_lags(step_jacobian, forward=make_sequence(cell), order="right", norm="svd"):
    def gradient_norm_over_lag(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None):
        T, B, _ = x.shape
        H = weight_hh.shape[0]
        h0 = np.zeros((B, H), x.dtype) if h0 is None else h0
        out, _ = forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0)
        prevs = [h0] + list(out[:-1])
        prod = np.eye(H, dtype=x.dtype)[None].repeat(B, axis=0)
        norms = [np.ones(B, x.dtype)]
        for t in reversed(range(T)):
            J = step_jacobian(x[t], prevs[t], weight_ih, weight_hh, bias_ih, bias_hh)
            prod = prod @ J if order == "right" else np.einsum("bij,bjk->bik", prod, J)
            if norm == "svd":
                norms.append(np.linalg.svd(prod, compute_uv=False)[:, 0])
            else:
                norms.append(np.linalg.norm(prod, ord=2, axis=(1, 2)))
        return np.array(norms)
    return gradient_norm_over_lag


def lags_transposed_backward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None):
    """Another correct route: the transpose (the backward pass's row-vector form), P^T = J^T ... left-multiplied."""
    T, B, _ = x.shape
    H = weight_hh.shape[0]
    h = np.zeros((B, H), x.dtype) if h0 is None else h0
    hs = [h]
    for t in range(T):
        hs.append(cell(x[t], hs[-1], weight_ih, weight_hh, bias_ih, bias_hh))
    P_T = np.broadcast_to(np.eye(H), (B, H, H))
    norms = np.ones((T + 1, B))
    for k in range(1, T + 1):
        J_T = np.transpose((1 - hs[T - k + 1] ** 2)[:, :, None] * weight_hh, (0, 2, 1))
        P_T = J_T @ P_T
        norms[k] = np.linalg.norm(P_T, 2, axis=(1, 2))
    return norms


def clip(grads, max_norm):
    norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads.values()))
    scale = max_norm / norm if norm > max_norm else 1.0
    return {k: (g * scale).astype(g.dtype) for k, g in grads.items()}, float(norm)


def clip_concatenate(grads, max_norm):
    flat = np.concatenate([g.ravel() for g in grads.values()])
    norm = np.linalg.norm(flat)
    if norm <= max_norm:
        return {k: g.copy() for k, g in grads.items()}, norm
    return {k: g * (max_norm / norm) for k, g in grads.items()}, norm


def clip_torch_style(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_'s arithmetic: min(1, max_norm / (norm + 1e-6))."""
    norm = np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    coef = min(1.0, max_norm / (norm + 1e-6))
    return {k: (g * coef).astype(g.dtype) for k, g in grads.items()}, np.float32(norm)


CORRECT_CELLS = [cell, cell_column_style, cell_einsum_f64, cell_torch_math]
CORRECT_JACOBIANS = [jacobian, jacobian_loop, jacobian_einsum, jacobian_autograd]
CORRECT_LAGS = [make_lags(jacobian), make_lags(jacobian_loop, order="einsum", norm="norm"), lags_transposed_backward]
CORRECT_CLIPS = [clip, clip_concatenate, clip_torch_style]


# ------------------------------------------------------------------------------------------------
# The references agree with torch and autograd (so the checkers compare with the truth)
# ------------------------------------------------------------------------------------------------

def test_cell_and_sequence_references_agree_with_torch_and_the_variants():
    torch = pytest.importorskip("torch")
    for case in grading.rnn_cases(7, sequence=True, n_random=3, edge_sizes=True, dtypes=("float64",)):
        a = case.arrays
        params = {k: a[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        T, B, D = a["x"].shape
        H = a["weight_hh"].shape[0]
        (out, h_n), _ = ref.rnn_forward(a["x"], params, a["h0"])
        net = torch.nn.RNN(D, H).double()
        with torch.no_grad():
            for k, v in params.items():
                getattr(net, k + "_l0").copy_(torch.from_numpy(v))
            h0 = None if a["h0"] is None else torch.from_numpy(a["h0"])[None]
            t_out, t_h = net(torch.from_numpy(a["x"]), h0)
        np.testing.assert_allclose(out, t_out.numpy(), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(h_n, t_h[0].numpy(), rtol=1e-12, atol=1e-13)
        v_out, v_h = grading._run_sequence(a["x"], list(params.values()), a["h0"])
        np.testing.assert_allclose(v_out, out, rtol=1e-12, atol=1e-13)


def test_jacobian_reference_agrees_with_autograd_and_finite_differences():
    torch = pytest.importorskip("torch")
    for case in grading.rnn_cases(3, n_random=3, edge_sizes=True, saturate=True, dtypes=("float64",)):
        a = case.arrays
        args = [a[k] for k in ("x", "h_prev", "weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        h, _ = ref.rnn_cell_forward(a["x"], a["h_prev"], {k: a[k] for k in grading._PARAM_NAMES})
        J = jac.rnn_step_jacobian(h, a["weight_hh"])
        np.testing.assert_allclose(grading.jacobian_variant(*args), J, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(jacobian_autograd(*args), J, rtol=1e-12, atol=1e-13)
        eps = 1e-6
        for j in range(a["h_prev"].shape[1]):
            dh = np.zeros_like(a["h_prev"])
            dh[:, j] = eps
            col = (cell(args[0], args[1] + dh, *args[2:]) - cell(args[0], args[1] - dh, *args[2:])) / (2 * eps)
            np.testing.assert_allclose(J[:, :, j], col, rtol=1e-6, atol=1e-9)


def test_lag_reference_agrees_with_autograd_through_the_whole_sequence():
    torch = pytest.importorskip("torch")
    case = grading.rnn_cases(4, sequence=True, dtypes=("float64",))[1]
    a = case.arrays
    T, B, D = a["x"].shape
    W = {k: torch.from_numpy(a[k]) for k in grading._PARAM_NAMES}
    x = torch.from_numpy(a["x"])
    expected = grading._reference_lags(a)
    for b in range(B):
        for k in range(T + 1):
            def h_T_from(h_start, b=b, k=k):       # run steps T-k .. T-1 from h_{T-k}
                h = h_start
                for t in range(T - k, T):
                    h = torch.tanh(x[t, b] @ W["weight_ih"].T + W["bias_ih"] + h @ W["weight_hh"].T + W["bias_hh"])
                return h
            (out, _), _ = ref.rnn_forward(a["x"], {k_: a[k_] for k_ in grading._PARAM_NAMES}, a["h0"])
            start = a["h0"][b] if k == T else out[T - k - 1, b]
            Jk = torch.autograd.functional.jacobian(h_T_from, torch.from_numpy(np.array(start)))
            assert np.linalg.norm(Jk.numpy(), 2) == pytest.approx(expected[k, b], rel=1e-10)
        assert np.allclose(grading.lag_variant(a["x"], grading._params_of(a), a["h0"])[:, b], expected[:, b])


# ------------------------------------------------------------------------------------------------
# Correct solutions pass, quietly; float32 is not flaky
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", CORRECT_CELLS, ids=lambda f: f.__name__)
def test_correct_cells_and_sequences_pass(fn, capsys):
    grading.check_rnn_cell_forward(fn)
    grading.check_rnn_forward(make_sequence(fn))
    for seed in range(2):
        grading.check_rnn_cell_forward(fn, seed=seed, **HIDDEN)
        grading.check_rnn_forward(make_sequence(fn), seed=seed, **HIDDEN)
    out = capsys.readouterr()
    assert "all 3 cases pass" in out.out and out.err == ""


@pytest.mark.parametrize("fn", CORRECT_JACOBIANS, ids=lambda f: f.__name__)
def test_correct_jacobians_pass(fn):
    grading.check_rnn_step_jacobian(fn)
    grading.check_rnn_step_jacobian(fn, seed=1, **HIDDEN)


@pytest.mark.parametrize("fn", CORRECT_LAGS, ids=lambda f: getattr(f, "__qualname__", "")[:40])
def test_correct_lag_norms_pass(fn):
    grading.check_gradient_norm_over_lag(fn)
    grading.check_gradient_norm_over_lag(fn, seed=2, **HIDDEN)


@pytest.mark.parametrize("fn", CORRECT_CLIPS, ids=lambda f: f.__name__)
def test_correct_clips_pass(fn):
    grading.check_clip_by_norm(fn)
    grading.check_clip_by_norm(fn, seed=3, **CLIP_HIDDEN)


def test_float32_tolerance_is_not_flaky():
    for seed in range(25):
        f32 = dict(seed=seed, fixed=False, n_random=5, dtypes=("float32",))
        grading.check_rnn_forward(make_sequence(cell), **f32)
        grading.check_rnn_step_jacobian(jacobian, **f32)
        grading.check_gradient_norm_over_lag(make_lags(jacobian), **f32)
        grading.check_clip_by_norm(clip_concatenate, **f32)


def test_checkers_write_nothing_to_stderr_and_raise_no_warning(capsys):
    def overflowing(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        a = x @ weight_ih.T + bias_ih + h_prev @ weight_hh.T + bias_hh
        return np.where(a > 0, 1 - 2 / (np.exp(2 * a) + 1), 2 / (np.exp(-2 * a) + 1) - 1).astype(x.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grading.check_rnn_cell_forward(overflowing, seed=3, fixed=False, saturate=True)
    assert capsys.readouterr().err == ""


def test_saturated_cases_saturate_and_hidden_cases_cover_the_edges():
    case = grading.rnn_cases(0, fixed=False, saturate=True, dtypes=("float32",))[0]
    a = case.arrays
    pre = a["x"] @ a["weight_ih"].T + a["h_prev"] @ a["weight_hh"].T + a["bias_ih"] + a["bias_hh"]
    assert np.abs(pre).max() > 355                     # exp(2a) overflows in float64
    assert np.any(1 - np.tanh(pre.astype(np.float64)) ** 2 == 0)
    sizes = {tuple(c.sizes.values()) for c in grading.rnn_cases(0, sequence=True, **HIDDEN)}
    assert (1, 1, 1, 1) in sizes
    assert {c.dtype.name for c in grading.rnn_cases(0, **HIDDEN)} == {"float32", "float64"}


# ------------------------------------------------------------------------------------------------
# Buggy cells and sequences
# ------------------------------------------------------------------------------------------------

def bug_hh_not_transposed(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    return np.tanh(x @ weight_ih.T + bias_ih + h_prev @ weight_hh + bias_hh)


def bug_no_bias(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    return np.tanh(x @ weight_ih.T + h_prev @ weight_hh.T)


def bug_one_bias(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    return np.tanh(x @ weight_ih.T + h_prev @ weight_hh.T + bias_hh)


def bug_relu(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    return np.maximum(x @ weight_ih.T + bias_ih + h_prev @ weight_hh.T + bias_hh, 0)


def bug_reshape(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    D, H = weight_ih.shape[1], weight_ih.shape[0]
    return np.tanh(x @ weight_ih.reshape(D, H) + bias_ih + h_prev @ weight_hh.T + bias_hh)


def bug_two(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    return np.tanh(x @ weight_ih.T + h_prev @ weight_hh)


CELL_MUTANTS = [
    (bug_hh_not_transposed, ["weight_hh multiplied without transposing"]),
    (bug_no_bias, ["no bias"]),
    (bug_one_bias, ["bias_hh but not bias_ih"]),
    (bug_relu, ["relu instead of tanh"]),
    (bug_reshape, ["reshaped instead of transposed"]),
    (bug_two, ["two mistakes", "no bias", "without transposing"]),
]


@pytest.mark.parametrize("mutant, phrases", CELL_MUTANTS, ids=lambda m: getattr(m, "__name__", ""))
def test_each_cell_bug_is_named(mutant, phrases):
    msg = failure(grading.check_rnn_cell_forward, mutant)
    assert "Diagnosis: your output matches a cell with" in msg, msg
    for p in phrases:
        assert p in msg, f"expected {p!r} in:\n{msg}"


def test_transposed_input_weights_show_the_shapes_then_the_diagnosis():
    def bug(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        return np.tanh(x @ weight_ih + bias_ih + h_prev @ weight_hh.T + bias_hh)
    msg = failure(grading.check_rnn_cell_forward, bug)
    assert "raised ValueError" in msg and "weight_ih (H, D) = (4, 3)" in msg
    case = grading.rnn_cases(0)[1]                                  # D = H = 5: no error, wrong values
    assert case.sizes["D"] == case.sizes["H"]
    got = bug(*(case.arrays[k] for k in grading._CELL_ARGS))
    assert "weight_ih multiplied without transposing" in grading._diagnose_cell(case.arrays, got, 1e-7, 1e-9)[0]


def test_cell_returning_a_cache_or_the_wrong_dtype_is_explained():
    assert "return just h" in failure(grading.check_rnn_cell_forward, lambda *a: (cell(*a), {}))
    msg = failure(grading.check_rnn_cell_forward, lambda *a: cell(*a).astype(np.float64))
    assert "dtype float64, but the inputs are float32" in msg
    assert "not implemented yet" in failure(grading.check_rnn_cell_forward, lambda *a: (_ for _ in ()).throw(
        NotImplementedError()))


def test_unstable_tanh_nan_is_explained_as_a_tanh_overflow():
    def unstable(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        a = x @ weight_ih.T + bias_ih + h_prev @ weight_hh.T + bias_hh
        return (np.exp(2 * a) - 1) / (np.exp(2 * a) + 1)
    msg = failure(grading.check_rnn_cell_forward, unstable, fixed=False, saturate=True, dtypes=("float64",))
    assert "NaN" in msg and "use np.tanh" in msg and "sigmoid" not in msg


def seq_with(bug):
    def rnn_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None):
        T, B, _ = x.shape
        H = weight_hh.shape[0]
        zeros = np.zeros((B, H), x.dtype)
        h_init = zeros if h0 is None or bug == "ignore_init" else h0
        h, out, first = h_init, [], None
        buf = np.zeros((B, H), x.dtype)
        for xt in (x[::-1] if bug == "reversed" else x):
            if bug == "shifted":
                out.append(h)
            h = cell(xt, h_init if bug == "no_carry" else h, weight_ih, weight_hh, bias_ih, bias_hh)
            first = h if first is None else first
            if bug == "aliased":
                buf[:] = h
                out.append(buf)
            elif bug != "shifted":
                out.append(h)
        final = {"final_first": first, "final_h0": h_init}.get(bug, h)
        return np.stack(out), final
    return rnn_forward


SEQ_MUTANTS = [
    ("shifted", ["shifted by one step"]),
    ("no_carry", ["state is not carried"]),
    ("ignore_init", ["h0 is ignored"]),
    ("reversed", ["read backwards"]),
    ("aliased", ["overwrite in place"]),
    ("final_first", ["after the *first* step"]),
    ("final_h0", ["h_n is the initial state h_0"]),
]


@pytest.mark.parametrize("bug, phrases", SEQ_MUTANTS, ids=[m[0] for m in SEQ_MUTANTS])
def test_each_sequence_bug_is_named(bug, phrases):
    msg = failure(grading.check_rnn_forward, seq_with(bug))
    for p in phrases:
        assert p in msg, f"expected {p!r} in:\n{msg}"


def test_sequence_with_a_buggy_cell_points_at_the_cell():
    msg = failure(grading.check_rnn_forward, make_sequence(bug_no_bias))
    assert "The bug is in the cell" in msg and "no bias" in msg


def test_sequence_zeros_in_float64_and_missing_default_are_explained():
    msg = failure(grading.check_rnn_forward, make_sequence(cell, zeros_dtype="float64"))
    assert "dtype float64, but the inputs are float32" in msg and "dtype=x.dtype" in msg

    def no_default(x, weight_ih, weight_hh, bias_ih, bias_hh, h0):
        return make_sequence(cell)(x, weight_ih, weight_hh, bias_ih, bias_hh, h0)
    msg = failure(grading.check_rnn_forward, no_default)
    assert "raised TypeError" in msg and "h0 left out" in msg
    assert "should return a pair (out, h_n)" in failure(grading.check_rnn_forward,
                                                        lambda *a, **k: make_sequence(cell)(*a, **k)[0])


# ------------------------------------------------------------------------------------------------
# Buggy Jacobians
# ------------------------------------------------------------------------------------------------

def jac_with(bug):
    def rnn_step_jacobian(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        a = x @ weight_ih.T + bias_ih + h_prev @ weight_hh.T + bias_hh
        h = np.tanh(a)
        d = {"h_prev": 1 - h_prev ** 2, "one_minus_h": 1 - h, "pre_act": 1 - a ** 2}.get(bug, 1 - h ** 2)
        W = weight_hh.T if bug == "W_T" else weight_hh
        if bug == "no_deriv":
            return np.broadcast_to(W, (x.shape[0],) + W.shape).copy()
        if bug == "cols":
            return W[None] * d[:, None, :]
        J = d[:, :, None] * W[None]
        if bug == "transposed":
            return J.transpose(0, 2, 1)
        if bug == "batch_mean":
            return J.mean(axis=0)
        return J
    return rnn_step_jacobian


JAC_MUTANTS = [
    ("transposed", ["transposed: you returned J[b, j, i]", "first matrix index is the *output* unit"]),
    ("W_T", ["weight_hh transposed", "its Jacobian is W_hh itself"]),
    ("cols", ["on the columns", "(1 - h**2)[:, :, None] * weight_hh"]),
    ("h_prev", ["(1 - h_{t-1}^2) instead of (1 - h_t^2)"]),
    ("no_deriv", ["diag(1 - h_t^2) missing"]),
    ("one_minus_h", ["(1 - h_t) instead of (1 - h_t^2)"]),
    ("pre_act", ["with the pre-activation a_t"]),
    ("batch_mean", ["one (H, H) Jacobian per example"]),
]


@pytest.mark.parametrize("bug, phrases", JAC_MUTANTS, ids=[m[0] for m in JAC_MUTANTS])
def test_each_jacobian_bug_is_named(bug, phrases):
    msg = failure(grading.check_rnn_step_jacobian, jac_with(bug))
    for p in phrases:
        assert p in msg, f"expected {p!r} in:\n{msg}"


def test_jacobian_with_a_buggy_cell_points_at_the_cell():
    def bug(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        h = bug_one_bias(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
        return (1 - h ** 2)[:, :, None] * weight_hh
    msg = failure(grading.check_rnn_step_jacobian, bug)
    assert "the bug is in how you compute h_t" in msg and "bias_hh but not bias_ih" in msg


def test_two_jacobian_bugs_are_both_named():
    def bug(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        return (1 - h_prev ** 2)[:, :, None] * weight_hh.T[None]
    msg = failure(grading.check_rnn_step_jacobian, bug)
    assert "two mistakes" in msg and "weight_hh transposed" in msg and "(1 - h_{t-1}^2)" in msg


# ------------------------------------------------------------------------------------------------
# Buggy lag norms
# ------------------------------------------------------------------------------------------------

def lags_with(bug):
    def gradient_norm_over_lag(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None):
        T, B, _ = x.shape
        H = weight_hh.shape[0]
        h0 = np.zeros((B, H), x.dtype) if h0 is None or bug == "ignore_init" else h0
        out, _ = make_sequence(cell)(x, weight_ih, weight_hh, bias_ih, bias_hh, h0)
        prevs = np.concatenate([h0[None], out[:-1]])
        prod = np.broadcast_to(np.eye(H), (B, H, H))
        bound = np.ones(B)
        norms = [np.ones(B)]
        last = T if bug == "stop_early" else T + 1
        for k in range(1, last):
            t = T - k - 1 if bug == "index_shift" else T - k
            h_prev = out[t] if bug == "wrong_state" else prevs[t]
            J = jacobian(x[t], h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
            if bug == "h_prev_jacobian":
                J = jac_with("h_prev")(x[t], h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
            prod = J @ prod if bug == "reversed" else prod @ J
            ord_ = "fro" if bug == "frobenius" else 2
            bound = bound * np.linalg.norm(J, 2, axis=(1, 2))
            norms.append(bound if bug == "bound" else np.linalg.norm(prod, ord_, axis=(1, 2)))
        if bug == "stop_early":
            norms.append(np.zeros(B))
        if bug == "no_lag0":
            norms = norms[1:]
        if bug == "no_lagT":
            norms = norms[:-1]
        if bug == "batch_max":
            return np.array(norms).max(axis=1)
        return np.array(norms)
    return gradient_norm_over_lag


LAG_MUTANTS = [
    ("reversed", ["multiplied in the wrong order", "prod = prod @ J"]),
    ("index_shift", ["off by one", "without the last step's Jacobian J_T"]),
    ("wrong_state", ["evaluated at the wrong state"]),
    ("frobenius", ["the Frobenius norm", "ord=2"]),
    ("bound", ["upper *bound*"]),
    ("ignore_init", ["h0 is ignored"]),
    ("h_prev_jacobian", ["(1 - h_{t-1}^2) instead of (1 - h_t^2)", "make check_rnn_step_jacobian pass first"]),
    ("no_lag0", ["off by one", "norms[0] is missing"]),
    ("no_lagT", ["off by one", "the last lag is missing"]),
    ("stop_early", ["every row but the last", "stop one step early"]),
    ("batch_max", ["one norm per example"]),
]


@pytest.mark.parametrize("bug, phrases", LAG_MUTANTS, ids=[m[0] for m in LAG_MUTANTS])
def test_each_lag_bug_is_named(bug, phrases):
    msg = failure(grading.check_gradient_norm_over_lag, lags_with(bug))
    for p in phrases:
        assert p in msg, f"expected {p!r} in:\n{msg}"


def test_lags_with_a_buggy_cell_point_at_the_cell():
    def jacobian_no_bias(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        h = bug_no_bias(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
        return (1 - h ** 2)[:, :, None] * weight_hh
    msg = failure(grading.check_gradient_norm_over_lag, make_lags(jacobian_no_bias, forward=make_sequence(bug_no_bias)))
    assert "The bug is in the cell" in msg


# ------------------------------------------------------------------------------------------------
# Buggy clipping
# ------------------------------------------------------------------------------------------------

def clip_with(bug):
    def clip_by_norm(grads, max_norm):
        norms = {k: np.linalg.norm(g) for k, g in grads.items()}
        total = float(np.sqrt(sum(n * n for n in norms.values())))
        if bug == "sum_norms":
            total = float(sum(norms.values()))
        if bug == "per_array":
            return {k: g * (max_norm / norms[k]) if norms[k] > max_norm else g.copy() for k, g in grads.items()}, total
        if bug == "by_value":
            return {k: np.clip(g, -max_norm, max_norm) for k, g in grads.items()}, total
        if bug == "in_place":
            if total > max_norm:
                for g in grads.values():
                    g *= max_norm / total
            return grads, total
        if bug == "always" or total > max_norm:
            out = {k: g * (max_norm / total) for k, g in grads.items()}
        else:
            out = {k: g.copy() for k, g in grads.items()}
        if bug == "norm_after":
            total = float(np.sqrt(sum(np.sum(g * g) for g in out.values())))
        if bug == "list":
            return list(out.values()), total
        return out, total
    return clip_by_norm


CLIP_MUTANTS = [
    ("always", ["rescales even when ||g|| <= max_norm"]),
    ("per_array", ["Each array is clipped by its own norm", "one global norm"]),
    ("by_value", ["You clip by value"]),
    ("sum_norms", ["as the sum of the arrays' norms"]),
    ("in_place", ["changed its input grads['weight_ih'] in place"]),
    ("norm_after", ["norm *after* clipping"]),
    ("list", ["clipped should be a dict"]),
]


@pytest.mark.parametrize("bug, phrases", CLIP_MUTANTS, ids=[m[0] for m in CLIP_MUTANTS])
def test_each_clip_bug_is_named(bug, phrases):
    msg = failure(grading.check_clip_by_norm, clip_with(bug))
    for p in phrases:
        assert p in msg, f"expected {p!r} in:\n{msg}"


def test_zero_gradients_divided_by_zero_are_explained():
    def nan_on_zero(grads, max_norm):
        total = np.sqrt(sum(np.sum(g * g) for g in grads.values()))
        return {k: g / total * min(total, max_norm) for k, g in grads.items()}, total
    grading.check_clip_by_norm(nan_on_zero)                      # right wherever the norm is not 0
    msg = failure(grading.check_clip_by_norm, nan_on_zero, **CLIP_HIDDEN)
    assert "all gradients zero" in msg and "0 / 0" in msg


# ------------------------------------------------------------------------------------------------
# Calling a reference is caught
# ------------------------------------------------------------------------------------------------

def _p(weight_ih, weight_hh, bias_ih, bias_hh):
    return dict(weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh)


def cheat_cell(x, h_prev, *w):
    return ref.rnn_cell_forward(x, h_prev, _p(*w))[0]


def cheat_cell_torch(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    import torch
    net = torch.nn.RNNCell(x.shape[1], h_prev.shape[1]).to(torch.float64 if x.dtype == np.float64 else torch.float32)
    with torch.no_grad():
        for k, v in _p(weight_ih, weight_hh, bias_ih, bias_hh).items():
            getattr(net, k).copy_(torch.from_numpy(v))
        return net(torch.from_numpy(x), torch.from_numpy(h_prev)).numpy()


def cheat_seq_torch_function(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None):
    import torch
    t = torch.from_numpy
    h = torch.zeros(x.shape[1], weight_hh.shape[0], dtype=t(x).dtype) if h0 is None else t(h0)
    out = []
    for xt in t(x):
        h = torch.rnn_tanh_cell(xt, h, t(weight_ih), t(weight_hh), t(bias_ih), t(bias_hh))
        out.append(h)
    return torch.stack(out).numpy(), h.numpy()


def cheat_jacobian(x, h_prev, *w):
    h, _ = ref.rnn_cell_forward(x, h_prev, _p(*w))
    return jac.rnn_step_jacobian(h, w[1])


def cheat_lags(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None):
    _, cache = ref.rnn_forward(x, _p(weight_ih, weight_hh, bias_ih, bias_hh), h0)
    return jac.gradient_norm_over_lag(cache)


def cheat_clip(grads, max_norm):
    return ref_clip_by_norm(grads, max_norm)


def cheat_clip_torch(grads, max_norm):
    import torch
    params = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads.values()]
    for p, g in zip(params, grads.values()):
        p.grad = torch.from_numpy(g.astype(np.float64))
    total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return {k: p.grad.numpy().astype(g.dtype) for (k, g), p in zip(grads.items(), params)}, float(total)


CHEATS = [
    (grading.check_rnn_cell_forward, cheat_cell, "gated_lib.rnn.rnn_cell_forward"),
    (grading.check_rnn_cell_forward, cheat_cell_torch, "torch.nn.RNNCell"),
    (grading.check_rnn_forward, cheat_seq_torch_function, "torch.rnn_tanh_cell"),
    (grading.check_rnn_step_jacobian, cheat_jacobian, "gated_lib.rnn.rnn_cell_forward"),
    (grading.check_gradient_norm_over_lag, cheat_lags, "gated_lib.rnn.rnn_forward"),
    (grading.check_clip_by_norm, cheat_clip, "gated_lib.clipping.clip_by_norm"),
    (grading.check_clip_by_norm, cheat_clip_torch, "torch.nn.utils.clip_grad_norm_"),
]


@pytest.mark.parametrize("check, cheat, called", CHEATS, ids=[c[1].__name__ for c in CHEATS])
def test_calling_a_reference_fails_and_says_what_was_called(check, cheat, called):
    previous = sys.getprofile()
    msg = failure(check, cheat)
    assert "a reference implementation of what this exercise asks you to write" in msg, msg
    assert called in msg, msg
    assert sys.getprofile() is previous


def test_activation_helpers_stay_allowed():
    from gated_lib.activations import dtanh

    def with_helper(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        h = cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
        return dtanh(h)[:, :, None] * weight_hh
    grading.check_rnn_step_jacobian(with_helper)
