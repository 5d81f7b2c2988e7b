"""The checkers of exercise 3 (gated_lib.grading.lstm_grad): they accept every correct solution and name
every bug.

The learner solutions below are written the way a learner writes them (numpy, not gated_lib), so a
passing test says something about the checker, not about the reference it compares with. The mutated
reference implementations the checkers diagnose with are themselves checked against gated_lib.
"""

from __future__ import annotations

import numpy as np
import pytest

import gated_lib.lstm as ref
from gated_lib import jacobians as jac
from gated_lib.grading import lstm_grad as grading
from gated_lib.grading.core import GradingFailure
from gated_lib.grading.lstm import lstm_cases
from tests.mutation import cell_source

HIDDEN = dict(fixed=False, n_random=3, edge_sizes=True, saturate=True, dtypes=("float32", "float64"))
PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


@pytest.fixture
def library_allowed(monkeypatch):
    """The buggy solutions below are built from the checkers' own mutated references (gated_lib code),
    which the checkers would refuse as "calling the reference": switch that rule off for them. The rule
    itself is tested in test_calling_the_reference_is_refused."""
    monkeypatch.setattr(grading, "FORBID", None)


def failure(check, fn, **kw) -> str:
    with pytest.raises(GradingFailure) as info:
        check(fn, **kw)
    return str(info.value)


# ------------------------------------------------------------------------------------------------
# Correct learner solutions
# ------------------------------------------------------------------------------------------------

def cell_backward(dh, dc, cache):
    """Fused, the way the notebook's solution does it."""
    i, f, g, o, tc = (cache[k] for k in ("i", "f", "g", "o", "tanh_c"))
    dct = dc + dh * o * (1 - tc ** 2)
    da = np.concatenate([dct * g * i * (1 - i), dct * cache["c_prev"] * f * (1 - f),
                         dct * i * (1 - g ** 2), dh * tc * o * (1 - o)], axis=1)
    db = da.sum(0)
    return {"x": da @ cache["weight_ih"], "h_prev": da @ cache["weight_hh"], "c_prev": dct * f,
            "weight_ih": da.T @ cache["x"], "weight_hh": da.T @ cache["h_prev"], "bias_ih": db, "bias_hh": db}


def cell_backward_per_gate(dh, dc, cache):
    """One gate at a time, einsum products, float64 inside and cast back, a dict built key by key."""
    dt = cache["x"].dtype
    c = {k: np.asarray(v, np.float64) for k, v in cache.items()}
    H = c["f"].shape[1]
    dh, dc = np.asarray(dh, np.float64), np.asarray(dc, np.float64)
    dct = dc + dh * c["o"] * (1 - np.tanh(c["c"]) ** 2)
    local = {"i": dct * c["g"], "f": dct * c["c_prev"], "g": dct * c["i"], "o": dh * c["tanh_c"]}
    deriv = {"i": c["i"] * (1 - c["i"]), "f": c["f"] * (1 - c["f"]), "g": 1 - c["g"] ** 2, "o": c["o"] * (1 - c["o"])}
    grads = {k: np.zeros_like(c[k]) for k in ("x", "h_prev", "weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    for k, gate in enumerate("ifgo"):
        rows = slice(k * H, (k + 1) * H)
        d = local[gate] * deriv[gate]
        grads["x"] += np.einsum("bh,hd->bd", d, c["weight_ih"][rows])
        grads["h_prev"] += np.einsum("bh,hk->bk", d, c["weight_hh"][rows])
        grads["weight_ih"][rows] = np.einsum("bh,bd->hd", d, c["x"])
        grads["weight_hh"][rows] = np.einsum("bh,bk->hk", d, c["h_prev"])
        grads["bias_ih"][rows] = d.sum(0)
        grads["bias_hh"][rows] = d.sum(0)
    grads["c_prev"] = dct * c["f"]
    return {k: v.astype(dt) for k, v in grads.items()}


def make_bptt(cell=cell_backward):
    def lstm_backward(dout, caches, dh_n=None, dc_n=None):
        T, B, H = dout.shape
        dh = np.zeros((B, H), dout.dtype) if dh_n is None else dh_n
        dc = np.zeros((B, H), dout.dtype) if dc_n is None else dc_n
        total = {k: np.zeros_like(caches[0][k]) for k in PARAMS}
        dxs = []
        for t in range(T - 1, -1, -1):
            g = cell(dh + dout[t], dc, caches[t])
            for k in PARAMS:
                total[k] = total[k] + g[k]
            dxs.append(g["x"])
            dh, dc = g["h_prev"], g["c_prev"]
        return dict(total, x=np.stack(dxs[::-1]), h0=dh, c0=dc)
    return lstm_backward


def direct_jacobian(cache):
    f = cache["f"]
    return np.stack([np.diag(row) for row in f])


def state_jacobian(cache):
    i, f, g, o, tc, cp = (cache[k] for k in ("i", "f", "g", "o", "tanh_c", "c_prev"))
    B, H = f.shape
    W = cache["weight_hh"]
    Wi, Wf, Wg, Wo = W[:H], W[H:2 * H], W[2 * H:3 * H], W[3 * H:]
    J = np.zeros((B, 2 * H, 2 * H), dtype=f.dtype)
    dc_dh = (np.einsum("bh,hk->bhk", cp * f * (1 - f), Wf) + np.einsum("bh,hk->bhk", g * i * (1 - i), Wi)
             + np.einsum("bh,hk->bhk", i * (1 - g * g), Wg))
    k = o * (1 - tc * tc)
    J[:, H:, :H] = dc_dh
    J[:, :H, :H] = np.einsum("bh,hk->bhk", tc * o * (1 - o), Wo) + k[:, :, None] * dc_dh
    idx = np.arange(H)
    J[:, idx, H + idx] = k * f
    J[:, H + idx, H + idx] = f
    return J


def lag_norms(caches, path="full"):
    """Per example, SVD of the block, the direct path as a running product of f."""
    T = len(caches)
    B, H = caches[0]["f"].shape
    out = np.ones((T + 1, B), dtype=caches[0]["f"].dtype)
    for b in range(B):
        if path == "direct":
            running = np.ones(H)
            for k in range(1, T + 1):
                running = running * caches[T - k]["f"][b]
                out[k, b] = np.abs(running).max()
        else:
            prod = np.eye(2 * H)
            for k in range(1, T + 1):
                prod = prod @ state_jacobian(caches[T - k])[b]
                out[k, b] = np.linalg.svd(prod[H:, H:], compute_uv=False)[0]
    return out


def test_every_correct_solution_passes_visible_and_hidden():
    for cell in (cell_backward, cell_backward_per_gate):
        grading.check_lstm_cell_backward(cell)
        grading.check_lstm_cell_backward(cell, seed=9, **HIDDEN)
        grading.check_lstm_backward(make_bptt(cell))
        grading.check_lstm_backward(make_bptt(cell), seed=9, **HIDDEN)
    grading.check_direct_jacobian(direct_jacobian)
    grading.check_direct_jacobian(direct_jacobian, seed=9, **HIDDEN)
    grading.check_state_jacobian(state_jacobian)
    grading.check_state_jacobian(state_jacobian, seed=9, **HIDDEN)
    for path in ("full", "direct"):
        grading.check_gradient_norm_over_lag(lag_norms, path=path)
        grading.check_gradient_norm_over_lag(lag_norms, path=path, seed=9, **HIDDEN)


def test_success_messages_say_what_was_checked(capsys):
    grading.check_lstm_cell_backward(cell_backward)
    out = capsys.readouterr().out
    assert "all 3 cases pass" in out and "Finite differences agree with your gradients" in out
    assert "hidden tests add" in out


# ------------------------------------------------------------------------------------------------
# The mutated references are right when unmutated, and agree with gated_lib
# ------------------------------------------------------------------------------------------------

def test_variants_without_bugs_equal_the_library():
    rng = np.random.default_rng(0)
    for case in lstm_cases(3, n_random=2, edge_sizes=True, saturate=True):
        a = case.arrays
        cache = grading.make_cache(*(a[k] for k in ("x", "h_prev", "c_prev", *PARAMS)), dtype=np.float64)
        _, step = ref.lstm_cell_forward(*(np.asarray(a[k], np.float64) for k in ("x", "h_prev", "c_prev")),
                                        {k: np.asarray(a[k], np.float64) for k in PARAMS})
        dh, dc = rng.normal(size=(2, *cache["f"].shape))
        expected = ref.lstm_cell_backward((dh, dc), step)
        got = grading.backward_variant(dh, dc, cache)
        for k in expected:
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(grading.state_jacobian_variant(cache),
                                   jac.assemble_state_jacobian(jac.lstm_step_jacobian(step)), rtol=1e-12, atol=1e-13)
    for case in lstm_cases(4, sequence=True, n_random=2, edge_sizes=True):
        a = case.arrays
        caches = grading.make_caches(a["x"], *(a[k] for k in PARAMS), a["h0"], a["c0"], dtype=np.float64)
        _, seq = ref.lstm_forward(np.asarray(a["x"], np.float64), {k: np.asarray(a[k], np.float64) for k in PARAMS},
                                  None if a["h0"] is None else np.asarray(a["h0"], np.float64),
                                  None if a["c0"] is None else np.asarray(a["c0"], np.float64))
        T, B, _ = a["x"].shape
        dout = rng.normal(size=(T, B, a["weight_hh"].shape[1]))
        expected = ref.lstm_backward(dout, seq)
        got = grading.sequence_backward_variant(dout, caches)
        for k in expected:
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-11, atol=1e-12)


def test_lag_reference_is_gated_libs_gradient_norm_over_lag():
    for case, caches in grading.lag_cases(2, n_random=2, dtypes=("float64",)):
        a = case.arrays
        _, seq = ref.lstm_forward(a["x"], {k: a[k] for k in PARAMS})
        for path in ("full", "direct"):
            lib = jac.gradient_norm_over_lag(seq, "c", path=path)
            np.testing.assert_allclose(grading._reference_lag_norms(caches, path), lib, rtol=1e-10, atol=0)
            np.testing.assert_allclose(grading.lag_norms_variant(caches, path), lib, rtol=1e-10, atol=0)


def test_the_notebooks_given_forward_builds_the_checkers_caches():
    """The locked forward cell of the exercise and make_cache(s) store the same keys and values."""
    namespace = {"np": np, "sigmoid": ref.sigmoid}
    exec(cell_source("03_lstm_gradient_flow", "given_forward"), namespace)
    rng = np.random.default_rng(1)
    T, B, D, H = 4, 2, 3, 5
    x = rng.normal(size=(T, B, D))
    params = [rng.normal(size=(4 * H, D)), rng.normal(size=(4 * H, H)), rng.normal(size=4 * H), rng.normal(size=4 * H)]
    h0, c0 = rng.normal(size=(2, B, H))
    (_, _), given = namespace["lstm_forward_with_cache"](x, *params, h0, c0)
    built = grading.make_caches(x, *params, h0, c0)
    assert len(given) == len(built) == T
    for g, b in zip(given, built):
        assert tuple(g) == grading.CACHE_KEYS == tuple(b)
        for k in grading.CACHE_KEYS:
            np.testing.assert_allclose(g[k], b[k], rtol=1e-12, atol=1e-14)
    (_, _), one = namespace["lstm_cell_forward_with_cache"](x[0], h0, c0, *params)
    for k in grading.CACHE_KEYS:
        np.testing.assert_allclose(one[k], grading.make_cache(x[0], h0, c0, *params)[k], rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------------------
# Buggy cell backward passes, each with the words its diagnosis must contain
# ------------------------------------------------------------------------------------------------

def cell_with(*, order="ifgo", bugs=()):
    def lstm_cell_backward(dh, dc, cache):
        out = grading.backward_variant(dh, dc, cache, order=order, bugs=bugs)
        return {k: v.astype(cache["x"].dtype) for k, v in out.items()}
    return lstm_cell_backward


CELL_MUTANTS = [
    ("figo", (), ["order f, i, g, o", "df and di are exchanged"]),
    ("ifgo", ("dc_prev_no_f",), ["dc_prev is missing the forget gate"]),
    ("ifgo", ("no_tanh_prime",), ["derivative of tanh is missing"]),
    ("ifgo", ("no_dh_to_dc",), ["reaches c_t through h_t"]),
    ("ifgo", ("db_hh_zero",), ["bias_hh gets no gradient"]),
    ("ifgo", ("db_halved",), ["split in two halves"]),
    ("ifgo", ("dh_prev_blocks_T",), ["transposed in dh_prev"]),
    ("ifgo", ("dW_hh_uses_h",), ["dW_hh is computed from h_t"]),
    ("ifgo", ("dc_prev_no_dh",), ["dc_prev = dc * f uses only"]),
    ("ifgo", ("df_uses_c",), ["df = dc_total * c_prev"]),
    ("ifgo", ("tanh_prime_gates",), ["gates are sigmoids"]),
    ("ifgo", ("dc_prev_no_f", "db_hh_zero"), ["two mistakes", "forget gate", "bias_hh gets no gradient"]),
]


@pytest.mark.parametrize("order, bugs, phrases", CELL_MUTANTS, ids=[f"{m[0]}-{'+'.join(m[1])}" for m in CELL_MUTANTS])
def test_each_cell_backward_bug_fails_with_its_diagnosis(order, bugs, phrases, library_allowed):
    msg = failure(grading.check_lstm_cell_backward, cell_with(order=order, bugs=bugs))
    for p in phrases:
        assert p in msg, f"expected {p!r} in:\n{msg}"
    assert "finite differences" in msg and "FAIL" in msg, "the failure should show the gradient check table"
    # the hidden tests may fail first on a float32 case: the diagnosis must hold there too
    msg32 = failure(grading.check_lstm_cell_backward, cell_with(order=order, bugs=bugs), seed=5, fixed=False,
                    n_random=2, dtypes=("float32",))
    for p in phrases:
        assert p in msg32, f"expected {p!r} (float32) in:\n{msg32}"


def test_cell_backward_shape_and_form_messages():
    def no_sum(dh, dc, cache):
        g = cell_backward(dh, dc, cache)
        H = cache["f"].shape[1]
        da = np.concatenate([np.ones_like(cache["f"])] * 4, axis=1) * 0 + g["bias_ih"]
        return dict(g, bias_ih=da[:, :4 * H], bias_hh=da[:, :4 * H])
    assert "Sum da over the batch axis" in failure(grading.check_lstm_cell_backward, no_sum)

    def renamed(dh, dc, cache):
        g = cell_backward(dh, dc, cache)
        return {"dx": g["x"], "dh_prev": g["h_prev"], "dc_prev": g["c_prev"], "dW_ih": g["weight_ih"],
                "dW_hh": g["weight_hh"], "db_ih": g["bias_ih"], "db_hh": g["bias_hh"]}
    msg = failure(grading.check_lstm_cell_backward, renamed)
    assert "'dx' -> 'x'" in msg and "without" in msg

    def transposed_dw(dh, dc, cache):
        g = cell_backward(dh, dc, cache)
        return dict(g, weight_ih=g["weight_ih"].T)
    assert "That is the transpose" in failure(grading.check_lstm_cell_backward, transposed_dw)

    def upcasts(dh, dc, cache):
        return {k: v.astype(np.float64) for k, v in cell_backward(dh, dc, cache).items()}
    assert "dtype float64, but the inputs are float32" in failure(grading.check_lstm_cell_backward, upcasts)

    def in_place(dh, dc, cache):
        cache["f"] *= 1.0000001
        return cell_backward(dh, dc, cache)
    assert "changed cache['f'] in place" in failure(grading.check_lstm_cell_backward, in_place)

    def returns_tuple(dh, dc, cache):
        return tuple(cell_backward(dh, dc, cache).values())
    assert "should return a dict" in failure(grading.check_lstm_cell_backward, returns_tuple)

    def not_done(dh, dc, cache):
        raise NotImplementedError()
    assert "not implemented yet" in failure(grading.check_lstm_cell_backward, not_done)


def test_calling_the_reference_is_refused():
    def cheat(dh, dc, cache):
        p = {k: cache[k] for k in PARAMS}
        _, step = ref.lstm_cell_forward(cache["x"], cache["h_prev"], cache["c_prev"], p)
        return ref.lstm_cell_backward((dh, dc), step)
    assert "calls gated_lib.lstm.lstm_cell_forward" in failure(grading.check_lstm_cell_backward, cheat)

    def cheat_jacobian(cache):
        return jac.assemble_state_jacobian(jac.lstm_step_jacobian(cache))
    msg = failure(grading.check_state_jacobian, cheat_jacobian)
    assert "gated_lib.jacobians.lstm_step_jacobian" in msg and "reference implementation" in msg

    def cheat_direct(cache):
        return jac.lstm_direct_jacobian(cache["f"])
    assert "reference implementation" in failure(grading.check_direct_jacobian, cheat_direct)


# ------------------------------------------------------------------------------------------------
# Buggy BPTT
# ------------------------------------------------------------------------------------------------

def bptt_with(bug):
    def lstm_backward(dout, caches, dh_n=None, dc_n=None):
        c64 = [{k: np.asarray(v, np.float64) for k, v in c.items()} for c in caches]
        out = grading.sequence_backward_variant(dout, c64, dh_n, dc_n, bugs=(bug,))
        return {k: v.astype(dout.dtype) for k, v in out.items()}
    return lstm_backward


SEQ_MUTANTS = [
    ("no_accumulate", ["not accumulated across time steps", "first step (t = 0) alone"]),
    ("no_accumulate_last", ["not accumulated across time steps"]),
    ("dout_after", ["off by one step", "dout[t]"]),
    ("cache_shift", ["off by one step", "caches[t - 1]"]),
    ("dW_hh_uses_h", ["off by one step in dW_hh"]),
    ("no_carry_dh", ["dh is not carried"]),
    ("no_carry_dc", ["dc is not carried"]),
    ("only_last_dout", ["only dout[T-1] is used"]),
    ("ignore_final", ["dh_n and dc_n are ignored"]),
    ("dx_reversed", ["reversed time order"]),
    ("swap_initial", ["h0 and c0 gradients are exchanged"]),
]


@pytest.mark.parametrize("bug, phrases", SEQ_MUTANTS, ids=[m[0] for m in SEQ_MUTANTS])
def test_each_bptt_bug_fails_with_its_diagnosis(bug, phrases, library_allowed):
    msg = failure(grading.check_lstm_backward, bptt_with(bug))
    for p in phrases:
        assert p in msg, f"expected {p!r} in:\n{msg}"
    msg32 = failure(grading.check_lstm_backward, bptt_with(bug), seed=5, fixed=False, n_random=3, dtypes=("float32",))
    for p in phrases:
        assert p in msg32, f"expected {p!r} (float32) in:\n{msg32}"


def test_bptt_over_a_buggy_cell_points_at_the_cell(library_allowed):
    msg = failure(grading.check_lstm_backward, make_bptt(cell_with(bugs=("dc_prev_no_f",))))
    assert "The bug is in the cell" in msg and "forget gate" in msg


def test_bptt_without_default_final_gradients_is_explained():
    def no_defaults(dout, caches, dh_n, dc_n):
        return make_bptt()(dout, caches, dh_n, dc_n)
    msg = failure(grading.check_lstm_backward, no_defaults)
    assert "raised TypeError" in msg and "left out" in msg


# ------------------------------------------------------------------------------------------------
# Jacobians and lags
# ------------------------------------------------------------------------------------------------

def jacobian_with(*bugs, order="ifgo"):
    def lstm_state_jacobian(cache):
        return grading.state_jacobian_variant(cache, order=order, bugs=bugs).astype(cache["f"].dtype)
    return lstm_state_jacobian


JAC_MUTANTS = [
    (("only_cc",), ["only the c -> c block", "direct path"]),
    (("order_ch",), ["[c; h]"]),
    (("transposed",), ["transposed"]),
    (("dc_dh_zero",), ["dc_t/dh_{t-1} is zero"]),
    (("dh_dh_no_c_path",), ["misses the path through c_t"]),
    (("dh_dc_no_f",), ["missing the factor f"]),
    (("no_tanh_prime",), ["derivative of tanh(c_t) is missing"]),
    (("blocks_T",), ["used transposed"]),
    (("no_forget_term",), ["forget-gate term"]),
    (("no_cross",), ["off-diagonal blocks are zero"]),
]


@pytest.mark.parametrize("bugs, phrases", JAC_MUTANTS, ids=["+".join(m[0]) for m in JAC_MUTANTS])
def test_each_jacobian_bug_fails_with_its_diagnosis(bugs, phrases, library_allowed):
    for kw in ({}, dict(seed=5, fixed=False, n_random=2, dtypes=("float32",))):
        msg = failure(grading.check_state_jacobian, jacobian_with(*bugs), **kw)
        for p in phrases:
            assert p in msg, f"expected {p!r} in:\n{msg}"
    assert "Blocks right:" in msg


def test_jacobian_gate_order_and_shapes(library_allowed):
    msg = failure(grading.check_state_jacobian, jacobian_with(order="figo"))
    assert "gate order f, i, g, o" in msg
    msg = failure(grading.check_state_jacobian, direct_jacobian)
    assert "size of one block" in msg and "c -> c block diag(f) alone" in msg
    msg = failure(grading.check_direct_jacobian, lambda cache: np.eye(cache["f"].shape[1])[None] * np.ones_like(cache["f"])[:, :, None])
    assert "identity" in msg and "1997" in msg
    msg = failure(grading.check_direct_jacobian, lambda cache: cache["f"].copy())
    assert "that is f itself" in msg
    msg = failure(grading.check_direct_jacobian, lambda cache: np.diag(cache["f"]))
    assert "np.diag of a 2-D array" in msg


def lag_with(bug):
    def gradient_norm_over_lag(caches, path="full"):
        c64 = [{k: np.asarray(v, np.float64) for k, v in c.items()} for c in caches]
        return grading.lag_norms_variant(c64, path, bugs=(bug,)).astype(caches[0]["f"].dtype)
    return gradient_norm_over_lag


LAG_MUTANTS = [
    ("direct_for_full", "full", ["direct path", "product of the c -> c *blocks*"]),
    ("full_for_direct", "direct", ["full Jacobian product"]),
    ("product_reversed", "full", ["wrong order"]),
    ("from_start", "full", ["counted from the start"]),
    ("frobenius", "full", ["Frobenius"]),
    ("h_block", "full", ["h -> h block"]),
    ("whole_state", "full", ["whole (2H, 2H) product"]),
    ("mean_units", "direct", ["mean of |prod f|"]),
]


@pytest.mark.parametrize("bug, path, phrases", LAG_MUTANTS, ids=[m[0] for m in LAG_MUTANTS])
def test_each_lag_bug_fails_with_its_diagnosis(bug, path, phrases, library_allowed):
    for kw in ({}, dict(seed=5, fixed=False, n_random=3, dtypes=("float32",))):
        msg = failure(grading.check_gradient_norm_over_lag, lag_with(bug), path=path, **kw)
        for p in phrases:
            assert p in msg, f"expected {p!r} in:\n{msg}"


def test_lag_shape_messages():
    msg = failure(grading.check_gradient_norm_over_lag, lambda caches, path="full": lag_norms(caches, path)[1:])
    assert "norms[0] is the lag 0" in msg
    msg = failure(grading.check_gradient_norm_over_lag, lambda caches, path="full": lag_norms(caches, path).T)
    assert "lag first" in msg


def test_hidden_cases_cover_edges_saturation_and_both_dtypes():
    labels = [c.label for c, _ in grading.lag_cases(1, fixed=False, n_random=2, edge_sizes=True, saturate=True)]
    assert any("T=1, B=1, D=1, H=1" in s for s in labels)
    assert any("saturated" in s for s in labels)
    assert {s.rsplit(", ", 1)[-1] for s in labels if "saturated" not in s} == {"float32", "float64"}
    for b in (0, 1, 3, 5):
        assert any(f"forget bias {b}," in s for s in labels + [c.label for c, _ in grading.lag_cases(0)])
