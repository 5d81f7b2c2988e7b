"""The GRU checkers of gated_lib.grading: they accept every correct solution and name every bug.

Each learner solution below is written the way a learner writes it (not through gated_lib), so a
passing test says something about the checker, not about the reference it compares with.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import gated_lib
import gated_lib.gru as ref
from gated_lib.grading import gru as grading
from gated_lib.grading.core import GradingFailure

torch = pytest.importorskip("torch")

HIDDEN = dict(fixed=False, n_random=4, edge_sizes=True, saturate=True, dtypes=("float32", "float64"))
CONVENTIONS = ("pytorch", "cho")


def failure(check, fn, **kwargs) -> str:
    with pytest.raises(GradingFailure) as info:
        check(fn, **kwargs)
    return str(info.value)


def stable_sigmoid(a):
    return np.exp(-np.logaddexp(0.0, -a)).astype(a.dtype)


def naive_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))          # overflows for a << 0; the result is still right


# ------------------------------------------------------------------------------------------------
# Learners' cells: correct ones
# ------------------------------------------------------------------------------------------------

def fused_cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
    H = h_prev.shape[1]
    gi = x @ weight_ih.T + bias_ih
    gh = h_prev @ weight_hh.T + bias_hh
    r = stable_sigmoid(gi[:, :H] + gh[:, :H])
    z = stable_sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    if convention == "pytorch":
        n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    else:
        n = np.tanh(gi[:, 2 * H:] + (r * h_prev) @ weight_hh[2 * H:].T + bias_hh[2 * H:])
    return (1 - z) * n + z * h_prev


def per_gate_cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
    """A loop over the gates, column-vector style, a naive sigmoid, and the update written as h + (1-z)(n-h)."""
    H = h_prev.shape[1]
    blk = [slice(k * H, (k + 1) * H) for k in range(3)]
    pre = [np.dot(weight_ih[s], x.T).T + bias_ih[s] for s in blk]
    r = naive_sigmoid(pre[0] + np.dot(weight_hh[blk[0]], h_prev.T).T + bias_hh[blk[0]])
    z = naive_sigmoid(pre[1] + np.dot(weight_hh[blk[1]], h_prev.T).T + bias_hh[blk[1]])
    if convention == "cho":
        n = np.tanh(pre[2] + np.dot(weight_hh[blk[2]], (r * h_prev).T).T + bias_hh[blk[2]])
    else:
        n = np.tanh(pre[2] + r * np.dot(weight_hh[blk[2]], h_prev.T).T + r * bias_hh[blk[2]])
    return h_prev + (1 - z) * (n - h_prev)


def float64_inside_cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
    dt = x.dtype
    args = [np.asarray(v, np.float64) for v in (x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)]
    return fused_cell(*args, convention=convention).astype(dt)


def torch_math_cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
    """torch arithmetic (not torch.nn.GRU): allowed."""
    t = [torch.from_numpy(np.ascontiguousarray(v)) for v in (x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)]
    x_, h_, Wi, Wh, bi, bh = t
    ir, iz, i_n = (x_ @ Wi.T + bi).chunk(3, dim=1)
    Whr, Whz, Whn = Wh.chunk(3, dim=0)
    bhr, bhz, bhn = bh.chunk(3)
    r = torch.sigmoid(ir + h_ @ Whr.T + bhr)
    z = torch.sigmoid(iz + h_ @ Whz.T + bhz)
    if convention == "pytorch":
        n = torch.tanh(i_n + r * (h_ @ Whn.T + bhn))
    else:
        n = torch.tanh(i_n + (r * h_) @ Whn.T + bhn)
    return torch.lerp(n, h_, z).numpy()


CORRECT_CELLS = [fused_cell, per_gate_cell, float64_inside_cell, torch_math_cell]


# ------------------------------------------------------------------------------------------------
# Learners' Jacobians: correct ones
# ------------------------------------------------------------------------------------------------

def _gates(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention):
    H = h_prev.shape[1]
    gi = x @ weight_ih.T + bias_ih
    r = stable_sigmoid(gi[:, :H] + h_prev @ weight_hh[:H].T + bias_hh[:H])
    z = stable_sigmoid(gi[:, H:2 * H] + h_prev @ weight_hh[H:2 * H].T + bias_hh[H:2 * H])
    m = h_prev @ weight_hh[2 * H:].T + bias_hh[2 * H:]
    if convention == "pytorch":
        n = np.tanh(gi[:, 2 * H:] + r * m)
    else:
        n = np.tanh(gi[:, 2 * H:] + (r * h_prev) @ weight_hh[2 * H:].T + bias_hh[2 * H:])
    return r, z, n, m


def batched_jacobian(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
    H = h_prev.shape[1]
    W_hr, W_hz, W_hn = weight_hh[:H], weight_hh[H:2 * H], weight_hh[2 * H:]
    r, z, n, m = _gates(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention)
    if convention == "pytorch":
        dA = r[:, :, None] * W_hn + (m * r * (1 - r))[:, :, None] * W_hr
    else:
        dA = W_hn * r[:, None, :] + W_hn @ ((h_prev * r * (1 - r))[:, :, None] * W_hr)
    J = ((h_prev - n) * z * (1 - z))[:, :, None] * W_hz + ((1 - z) * (1 - n ** 2))[:, :, None] * dA
    idx = np.arange(H)
    J[:, idx, idx] += z
    return J


def loop_jacobian(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
    """One example at a time with np.diag, explicit chain rule through every intermediate, float64 inside."""
    dt = x.dtype
    args = [np.asarray(v, np.float64) for v in (x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)]
    x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh = args
    H = h_prev.shape[1]
    W_hr, W_hz, W_hn = weight_hh[:H], weight_hh[H:2 * H], weight_hh[2 * H:]
    r, z, n, m = _gates(*args, convention)
    out = []
    for b in range(x.shape[0]):
        dr = np.diag(r[b] * (1 - r[b])) @ W_hr
        dz = np.diag(z[b] * (1 - z[b])) @ W_hz
        if convention == "pytorch":
            dan = np.diag(r[b]) @ W_hn + np.diag(m[b]) @ dr
        else:
            dan = W_hn @ (np.diag(r[b]) + np.diag(h_prev[b]) @ dr)
        dn = np.diag(1 - n[b] ** 2) @ dan
        out.append(np.diag(z[b]) + np.diag(h_prev[b] - n[b]) @ dz + np.diag(1 - z[b]) @ dn)
    return np.stack(out).astype(dt)


def einsum_jacobian(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
    H = h_prev.shape[1]
    W_hr, W_hz, W_hn = weight_hh[:H], weight_hh[H:2 * H], weight_hh[2 * H:]
    r, z, n, m = _gates(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention)
    eye = np.eye(H, dtype=x.dtype)
    if convention == "pytorch":
        dA = np.einsum("bi,ij->bij", r, W_hn) + np.einsum("bi,ij->bij", m * r * (1 - r), W_hr)
    else:
        dA = np.einsum("ik,bk->bik", W_hn, r) + np.einsum("ik,bk,kj->bij", W_hn, h_prev * r * (1 - r), W_hr)
    return (np.einsum("bi,ij->bij", z, eye) + np.einsum("bi,ij->bij", (h_prev - n) * z * (1 - z), W_hz)
            + np.einsum("bi,bij->bij", (1 - z) * (1 - n * n), dA))


CORRECT_JACOBIANS = [batched_jacobian, loop_jacobian, einsum_jacobian]


# ------------------------------------------------------------------------------------------------
# Learners' conversions: correct ones
# ------------------------------------------------------------------------------------------------

def convert_numpy(params):
    p = params
    weight_ih = np.concatenate([p["W_r"], -p["W_z"], p["W_h"]])
    weight_hh = np.concatenate([p["U_r"], -p["U_z"], p["U_h"]])
    bias_ih = np.concatenate([p["b_r"], -p["b_z"], p["b_h"]]).ravel()
    return {"weight_ih_l0": weight_ih, "weight_hh_l0": weight_hh, "bias_ih_l0": bias_ih,
            "bias_hh_l0": np.zeros_like(bias_ih)}


def convert_torch_split_biases(params):
    """Tensors, via a torch.nn.GRU's own state_dict, with r and z biases split between the two vectors."""
    H, D = params["W_z"].shape
    sd = torch.nn.GRU(D, H).double().state_dict()
    t = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in params.items()}
    sd["weight_ih_l0"] = torch.cat([t["W_r"], -t["W_z"], t["W_h"]])
    sd["weight_hh_l0"] = torch.cat([t["U_r"], -t["U_z"], t["U_h"]])
    half_r, half_z = t["b_r"][:, 0] / 2, -t["b_z"][:, 0] / 2
    sd["bias_ih_l0"] = torch.cat([half_r, half_z, t["b_h"][:, 0]])
    sd["bias_hh_l0"] = torch.cat([half_r, half_z, torch.zeros(H, dtype=torch.float64)])
    return sd


def convert_via_fill(params):
    """Slices filled in place in a preallocated float32 buffer, z's bias in bias_hh."""
    H, D = params["W_z"].shape
    out = {"weight_ih_l0": np.zeros((3 * H, D), np.float32), "weight_hh_l0": np.zeros((3 * H, H), np.float32),
           "bias_ih_l0": np.zeros(3 * H, np.float32), "bias_hh_l0": np.zeros(3 * H, np.float32)}
    for k, (g, sign) in enumerate([("r", 1), ("z", -1), ("h", 1)]):
        rows = slice(k * H, (k + 1) * H)
        out["weight_ih_l0"][rows] = sign * params["W_" + g]
        out["weight_hh_l0"][rows] = sign * params["U_" + g]
        (out["bias_hh_l0"] if g == "z" else out["bias_ih_l0"])[rows] = sign * params["b_" + g][:, 0]
    if params["W_z"].dtype == np.float64:       # keep float64 sources exact
        out = {k: v.astype(np.float64) for k, v in out.items()}
        for k, (g, sign) in enumerate([("r", 1), ("z", -1), ("h", 1)]):
            rows = slice(k * H, (k + 1) * H)
            out["weight_ih_l0"][rows] = sign * params["W_" + g]
            out["weight_hh_l0"][rows] = sign * params["U_" + g]
            (out["bias_hh_l0"] if g == "z" else out["bias_ih_l0"])[rows] = sign * params["b_" + g][:, 0]
    return out


CORRECT_CONVERSIONS = [convert_numpy, convert_torch_split_biases, convert_via_fill]


# ------------------------------------------------------------------------------------------------
# The references agree with independent implementations and with torch
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("convention", CONVENTIONS)
def test_reference_variant_and_torch_agree(convention):
    for case in grading.gru_cases(7, n_random=3, edge_sizes=True, dtypes=("float64",)):
        a = case.arrays
        args = [a[k] for k in ("x", "h_prev", "weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        params = {k: a[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        h, cache = ref.gru_cell_forward(a["x"], a["h_prev"], params, convention=convention)
        np.testing.assert_allclose(grading.gru_variant(*args, convention=convention), h, rtol=1e-12, atol=1e-13)
        J = gated_lib.gru_step_jacobian(cache)
        np.testing.assert_allclose(grading.jacobian_variant(*args, convention=convention), J, rtol=1e-10, atol=1e-12)
        if convention == "pytorch":
            D, H = a["x"].shape[1], a["h_prev"].shape[1]
            cell = torch.nn.GRUCell(D, H).double()
            with torch.no_grad():
                for k, v in params.items():
                    getattr(cell, k).copy_(torch.from_numpy(v))
                th = cell(torch.from_numpy(a["x"]), torch.from_numpy(a["h_prev"]))
            np.testing.assert_allclose(h, th.numpy(), rtol=1e-12, atol=1e-13)

        def torch_step(hp):
            t = {k: torch.from_numpy(v) for k, v in params.items()}
            H = hp.shape[1]
            gi = torch.from_numpy(a["x"]) @ t["weight_ih"].T + t["bias_ih"]
            gh = hp @ t["weight_hh"].T + t["bias_hh"]
            r = torch.sigmoid(gi[:, :H] + gh[:, :H])
            z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
            if convention == "pytorch":
                n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
            else:
                n = torch.tanh(gi[:, 2 * H:] + (r * hp) @ t["weight_hh"][2 * H:].T + t["bias_hh"][2 * H:])
            return (1 - z) * n + z * hp

        full = torch.autograd.functional.jacobian(torch_step, torch.from_numpy(a["h_prev"])).numpy()
        blocks = np.stack([full[b, :, b, :] for b in range(full.shape[0])])
        np.testing.assert_allclose(blocks, J, rtol=1e-10, atol=1e-12)


def test_the_source_model_is_what_the_correct_conversion_loads():
    for case in grading.conversion_cases(3, n_random=3, edge_sizes=True, saturate=True):
        sd = {k: torch.from_numpy(v) for k, v in convert_numpy(case.params).items()}
        D, H = case.sizes["D"], case.sizes["H"]
        gru = torch.nn.GRU(D, H).double()
        gru.load_state_dict(sd)
        with torch.no_grad():
            out, h_n = gru(torch.from_numpy(case.x), torch.from_numpy(case.h0)[None])
        e_out, e_h = grading.source_forward(case.params, case.x, case.h0)
        np.testing.assert_allclose(out.numpy(), e_out, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(h_n[0].numpy(), e_h, rtol=1e-12, atol=1e-13)


def test_the_source_model_is_chung_s_sign_of_the_library_gru():
    """Negating z's rows of a library GRU (pytorch convention) gives the source model exactly."""
    rng = np.random.default_rng(0)
    D, H, T, B = 3, 4, 5, 2
    p = gated_lib.init_params("gru", D, H, rng=rng, dtype=np.float64)
    p["bias_hh"][:2 * H] = 0.0
    p["bias_hh"][2 * H:] = 0.0
    x = rng.normal(size=(T, B, D))
    (out, _), _ = ref.gru_forward(x, p)
    s = {}
    for k, g in enumerate("rzh"):
        sign = -1.0 if g == "z" else 1.0
        rows = slice(k * H, (k + 1) * H)
        s["W_" + g] = sign * p["weight_ih"][rows]
        s["U_" + g] = sign * p["weight_hh"][rows]
        s["b_" + g] = sign * p["bias_ih"][rows].reshape(H, 1)
    np.testing.assert_allclose(grading.source_forward(s, x)[0], out, rtol=1e-12, atol=1e-13)


# ------------------------------------------------------------------------------------------------
# Correct solutions pass, quietly
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("cell", CORRECT_CELLS, ids=lambda f: f.__name__)
def test_correct_cells_pass(cell, convention, capsys):
    grading.check_gru_cell_forward(cell, convention=convention)
    for seed in range(2):
        grading.check_gru_cell_forward(cell, convention=convention, seed=seed, **HIDDEN)
    out = capsys.readouterr()
    assert "all 3 cases pass" in out.out and out.err == ""


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("jac", CORRECT_JACOBIANS, ids=lambda f: f.__name__)
def test_correct_jacobians_pass(jac, convention, capsys):
    grading.check_gru_step_jacobian(jac, convention=convention)
    for seed in range(2):
        grading.check_gru_step_jacobian(jac, convention=convention, seed=seed, **HIDDEN)
    out = capsys.readouterr()
    assert "all 3 cases pass" in out.out and out.err == ""


@pytest.mark.parametrize("conv", CORRECT_CONVERSIONS, ids=lambda f: f.__name__)
def test_correct_conversions_pass(conv, capsys):
    grading.check_torch_state_dict(conv)
    grading.check_torch_state_dict(conv, seed=4, **HIDDEN)
    out = capsys.readouterr()
    assert "reproduces the source GRU on all 3 cases" in out.out and out.err == ""


def test_float32_tolerance_is_not_flaky():
    for seed in range(25):
        for convention in CONVENTIONS:
            grading.check_gru_cell_forward(fused_cell, convention=convention, seed=seed, fixed=False, n_random=4,
                                           saturate=True, dtypes=("float32",))
            grading.check_gru_step_jacobian(batched_jacobian, convention=convention, seed=seed, fixed=False,
                                            n_random=4, saturate=True, dtypes=("float32",))


def test_no_warning_and_nothing_on_stderr_with_a_naive_sigmoid(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grading.check_gru_cell_forward(per_gate_cell, seed=3, fixed=False, saturate=True, dtypes=("float32", "float64"))
    assert capsys.readouterr().err == ""


def test_hidden_cases_include_edge_sizes_saturation_and_both_dtypes():
    cases = grading.gru_cases(0, **HIDDEN)
    assert (1, 1, 1) in {tuple(c.sizes.values()) for c in cases}
    assert {c.dtype.name for c in cases} == {"float32", "float64"}
    sat = [c for c in cases if "saturated" in c.label]
    a = sat[0].arrays
    pre = a["x"] @ a["weight_ih"].T + a["bias_ih"]
    assert np.abs(pre).max() > 700
    conv = grading.conversion_cases(0, **HIDDEN)
    assert (1, 1, 1, 1) in {tuple(c.sizes.values()) for c in conv}
    assert {c.dtype.name for c in conv} == {"float32", "float64"}


# ------------------------------------------------------------------------------------------------
# Buggy cells: each fails with its diagnosis
# ------------------------------------------------------------------------------------------------

def _mutated_cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch", *, bug):
    H = h_prev.shape[1]
    if bug == "order_zrn":
        perm = np.r_[H:2 * H, 0:H, 2 * H:3 * H]
        weight_ih, weight_hh, bias_ih, bias_hh = weight_ih[perm], weight_hh[perm], bias_ih[perm], bias_hh[perm]
    if bug == "no_b_hn":
        bias_hh = np.concatenate([bias_hh[:2 * H], np.zeros(H, bias_hh.dtype)])
    gi = x @ weight_ih.T + bias_ih
    W = [weight_hh[k * H:(k + 1) * H] for k in range(3)]
    if bug == "hh_T":
        W = [w.T for w in W]
    r = stable_sigmoid(gi[:, :H] + h_prev @ W[0].T + bias_hh[:H])
    z = stable_sigmoid(gi[:, H:2 * H] + h_prev @ W[1].T + bias_hh[H:2 * H])
    conv = {"always_cho": "cho", "always_pytorch": "pytorch"}.get(bug, convention)
    if conv == "pytorch":
        if bug == "b_hn_outside":
            n = np.tanh(gi[:, 2 * H:] + r * (h_prev @ W[2].T) + bias_hh[2 * H:])
        else:
            n = np.tanh(gi[:, 2 * H:] + r * (h_prev @ W[2].T + bias_hh[2 * H:]))
    else:
        n = np.tanh(gi[:, 2 * H:] + (r * h_prev) @ W[2].T + bias_hh[2 * H:])
    if bug == "z_flipped":
        return z * n + (1 - z) * h_prev
    return (1 - z) * n + z * h_prev


def cell_with(bug):
    def gru_cell_forward(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
        return _mutated_cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention, bug=bug)
    gru_cell_forward.__name__ = f"cell_{bug}"
    return gru_cell_forward


CELL_MUTANTS = [
    ("z_flipped", "pytorch", ["GRU with z's role flipped: h' = z*n + (1-z)*h"]),
    ("z_flipped", "cho", ["z's role flipped"]),
    ("always_cho", "pytorch", ["applied *before* the recurrent product", "Cho et al.'s convention"]),
    ("always_pytorch", "cho", ["applied *after* the recurrent product", "Do you use the `convention` argument?"]),
    ("order_zrn", "pytorch", ["order z, r, n", "Keras' order"]),
    ("no_b_hn", "pytorch", ["b_hn dropped"]),
    ("no_b_hn", "cho", ["b_hn dropped"]),
    ("b_hn_outside", "pytorch", ["b_hn added outside the reset gate", "not redundant"]),
    ("hh_T", "pytorch", ["without transposing it"]),
]


@pytest.mark.parametrize("bug, convention, phrases", CELL_MUTANTS, ids=[f"{m[0]}-{m[1]}" for m in CELL_MUTANTS])
def test_each_cell_bug_fails_with_its_diagnosis(bug, convention, phrases):
    msg = failure(grading.check_gru_cell_forward, cell_with(bug), convention=convention)
    assert "Diagnosis: your output matches a GRU with" in msg, msg
    for p in phrases:
        assert p in msg, f"expected {p!r} in:\n{msg}"


def test_b_hn_outside_r_is_correct_in_the_cho_convention():
    grading.check_gru_cell_forward(cell_with("b_hn_outside"), convention="cho")


def test_two_cell_bugs_are_both_named():
    def two(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
        H = h_prev.shape[1]
        perm = np.r_[H:2 * H, 0:H, 2 * H:3 * H]
        return _mutated_cell(x, h_prev, weight_ih[perm], weight_hh[perm], bias_ih[perm], bias_hh[perm],
                             convention, bug="z_flipped")
    msg = failure(grading.check_gru_cell_forward, two)
    assert "two mistakes" in msg and "z, r, n" in msg and "z's role flipped" in msg


def test_cell_returning_a_cache_or_a_float64_result_is_explained():
    msg = failure(grading.check_gru_cell_forward, lambda *a, convention="pytorch": (fused_cell(*a), {}))
    assert "(h, cache)" in msg
    msg = failure(grading.check_gru_cell_forward,
                  lambda *a, convention="pytorch": fused_cell(*a).astype(np.float64))
    assert "dtype float64, but the inputs are float32" in msg


def test_cell_without_convention_argument_is_explained():
    def no_kw(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
        return fused_cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
    msg = failure(grading.check_gru_cell_forward, no_kw)
    assert "raised TypeError" in msg and "convention='pytorch'" in msg


def test_unstable_sigmoid_nan_is_explained():
    def unstable(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
        H = h_prev.shape[1]
        sig = lambda a: np.exp(a) / (1 + np.exp(a))  # noqa: E731
        gi, gh = x @ weight_ih.T + bias_ih, h_prev @ weight_hh.T + bias_hh
        r, z = sig(gi[:, :H] + gh[:, :H]), sig(gi[:, H:2 * H] + gh[:, H:2 * H])
        return (1 - z) * np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:]) + z * h_prev
    msg = failure(grading.check_gru_cell_forward, unstable, seed=0, fixed=False, saturate=True, dtypes=("float64",))
    assert "NaN" in msg and "stable sigmoid" in msg


def test_in_place_change_of_an_input_fails():
    def inplace(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
        h = fused_cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention)
        h_prev[:] = h
        return h_prev
    assert "changed its input h_prev in place" in failure(grading.check_gru_cell_forward, inplace)


# ------------------------------------------------------------------------------------------------
# Buggy Jacobians
# ------------------------------------------------------------------------------------------------

def jac_with(bug):
    def gru_step_jacobian(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
        H = h_prev.shape[1]
        W_hr, W_hz, W_hn = weight_hh[:H], weight_hh[H:2 * H], weight_hh[2 * H:]
        conv = {"always_cho": "cho", "always_pytorch": "pytorch"}.get(bug, convention)
        r, z, n, m = _gates(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, conv)
        J = np.zeros((x.shape[0], H, H), x.dtype)
        idx = np.arange(H)
        J[:, idx, idx] = z
        if bug == "only_diag_z":
            return J
        if conv == "pytorch":
            dA = r[:, :, None] * W_hn
            if bug != "no_r_path":
                dA = dA + (m * r * (1 - r))[:, :, None] * W_hr
        else:
            dA = W_hn * r[:, None, :]
            if bug != "no_r_path":
                dA = dA + W_hn @ ((h_prev * r * (1 - r))[:, :, None] * W_hr)
        if bug != "no_z_path":
            J = J + ((h_prev - n) * z * (1 - z))[:, :, None] * W_hz
        J = J + ((1 - z) * (1 - n ** 2))[:, :, None] * dA
        if bug == "transposed":
            J = np.swapaxes(J, 1, 2)
        return J
    gru_step_jacobian.__name__ = f"jacobian_{bug}"
    return gru_step_jacobian


JAC_MUTANTS = [
    ("only_diag_z", "pytorch", ["J = diag(z) alone", "through r (W_hr)"]),
    ("only_diag_z", "cho", ["J = diag(z) alone"]),
    ("no_r_path", "pytorch", ["term through the reset gate missing"]),
    ("no_r_path", "cho", ["term through the reset gate missing"]),
    ("no_z_path", "pytorch", ["term through the update gate missing"]),
    ("transposed", "pytorch", ["Jacobian transposed"]),
    ("always_cho", "pytorch", ["Jacobian of the Cho convention"]),
    ("always_pytorch", "cho", ["Jacobian of the PyTorch convention"]),
]


@pytest.mark.parametrize("bug, convention, phrases", JAC_MUTANTS, ids=[f"{m[0]}-{m[1]}" for m in JAC_MUTANTS])
def test_each_jacobian_bug_fails_with_its_diagnosis(bug, convention, phrases):
    msg = failure(grading.check_gru_step_jacobian, jac_with(bug), convention=convention)
    assert "Diagnosis: your Jacobian matches" in msg, msg
    for p in phrases:
        assert p in msg, f"expected {p!r} in:\n{msg}"


def test_jacobian_shapes_are_explained():
    def full(*a, convention="pytorch"):
        J = batched_jacobian(*a, convention=convention)
        B, H, _ = J.shape
        out = np.zeros((B * H, B * H), J.dtype)
        for b in range(B):
            out[b * H:(b + 1) * H, b * H:(b + 1) * H] = J[b]
        return out
    assert "block-diagonal" in failure(grading.check_gru_step_jacobian, full)
    assert "one per example" in failure(grading.check_gru_step_jacobian,
                                        lambda *a, convention="pytorch": batched_jacobian(*a)[0])


def test_autograd_inside_the_jacobian_is_refused():
    def with_autograd(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
        J = torch.autograd.functional.jacobian(lambda h: h * 1.0, torch.from_numpy(np.asarray(h_prev, np.float64)))
        return batched_jacobian(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention) + 0 * J.sum().item()
    previous = sys.getprofile()
    msg = failure(grading.check_gru_step_jacobian, with_autograd)
    assert "torch autograd (jacobian)" in msg and "derived by hand" in msg
    assert sys.getprofile() is previous


# ------------------------------------------------------------------------------------------------
# Calling the reference is caught
# ------------------------------------------------------------------------------------------------

def _params(weight_ih, weight_hh, bias_ih, bias_hh):
    return dict(weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh)


def cheat_cell_reference(x, h_prev, *w, convention="pytorch"):
    return gated_lib.gru_cell_forward(x, h_prev, _params(*w), convention=convention)[0]


def cheat_cell_torch(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
    cell = torch.nn.GRUCell(x.shape[1], h_prev.shape[1]).to(torch.float64 if x.dtype == np.float64 else torch.float32)
    with torch.no_grad():
        for k, v in _params(weight_ih, weight_hh, bias_ih, bias_hh).items():
            getattr(cell, k).copy_(torch.from_numpy(v))
        return cell(torch.from_numpy(x), torch.from_numpy(h_prev)).numpy()


def cheat_cell_torch_function(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
    t = torch.from_numpy
    return torch.gru_cell(t(x), t(h_prev), t(weight_ih), t(weight_hh), t(bias_ih), t(bias_hh)).numpy()


def cheat_cell_variant(x, h_prev, *w, convention="pytorch"):
    return grading.gru_variant(x, h_prev, *w, convention=convention).astype(x.dtype)


@pytest.mark.parametrize("cheat", [cheat_cell_reference, cheat_cell_torch, cheat_cell_torch_function,
                                   cheat_cell_variant], ids=lambda f: f.__name__)
def test_calling_a_reference_cell_fails_and_says_so(cheat):
    previous = sys.getprofile()
    msg = failure(grading.check_gru_cell_forward, cheat)
    assert "a reference implementation of what this exercise asks you to write" in msg, msg
    assert sys.getprofile() is previous


def test_calling_the_reference_jacobian_fails_and_names_it():
    def cheat(x, h_prev, *w, convention="pytorch"):
        _, cache = gated_lib.gru_cell_forward(x, h_prev, _params(*w), convention=convention)
        return gated_lib.gru_step_jacobian(cache)
    msg = failure(grading.check_gru_step_jacobian, cheat)
    assert "calls gated_lib.gru.gru_cell_forward" in msg and "gated_lib.jacobians.gru_step_jacobian" in msg


def test_calling_the_library_in_the_conversion_fails():
    def cheat(params):
        from gated_lib import convert
        p = convert_numpy(params)
        return convert.to_torch({k[:-3]: v for k, v in p.items()})
    assert "calls gated_lib.convert.to_torch" in failure(grading.check_torch_state_dict, cheat)


def test_allowed_helpers_are_not_reference_calls():
    from gated_lib.activations import sigmoid
    from gated_lib.lstm import split_gates

    def with_helpers(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
        ir, iz, i_n = split_gates(x @ weight_ih.T + bias_ih, 3)
        hr, hz, hn = split_gates(h_prev @ weight_hh.T + bias_hh, 3)
        r, z = sigmoid(ir + hr), sigmoid(iz + hz)
        return (1 - z) * np.tanh(i_n + r * hn) + z * h_prev
    grading.check_gru_cell_forward(with_helpers)


# ------------------------------------------------------------------------------------------------
# Buggy conversions
# ------------------------------------------------------------------------------------------------

def conversion_with(bug):
    def to_torch_state_dict(params):
        sd = convert_numpy(params)
        H = params["U_z"].shape[0]
        sd = {k: v.copy() for k, v in sd.items()}
        if bug == "z_not_negated":
            for k in sd:
                sd[k][H:2 * H] *= -1
        elif bug == "order_zrn":
            perm = np.r_[H:2 * H, 0:H, 2 * H:3 * H]
            sd = {k: v[perm] for k, v in sd.items()}
        elif bug == "b_h_in_bias_hh":
            sd["bias_hh_l0"][2 * H:], sd["bias_ih_l0"][2 * H:] = sd["bias_ih_l0"][2 * H:], 0.0
        elif bug == "b_h_split":
            sd["bias_ih_l0"][2 * H:] /= 2
            sd["bias_hh_l0"][2 * H:] = sd["bias_ih_l0"][2 * H:]
        elif bug == "bias_not_negated":
            sd["bias_ih_l0"][H:2 * H] *= -1
        elif bug == "one_minus":
            sd["weight_ih_l0"][H:2 * H] = 1 - params["W_z"]
            sd["weight_hh_l0"][H:2 * H] = 1 - params["U_z"]
        elif bug == "column_bias":
            sd["bias_ih_l0"] = sd["bias_ih_l0"][:, None]
        elif bug == "transposed":
            sd["weight_ih_l0"] = np.concatenate([params["W_r"].T, -params["W_z"].T, params["W_h"].T], axis=1)
        elif bug == "no_suffix":
            sd = {k[:-3]: v for k, v in sd.items()}
        return sd
    to_torch_state_dict.__name__ = f"conversion_{bug}"
    return to_torch_state_dict


CONVERSION_MUTANTS = [
    ("z_not_negated", ["GRU with z's role flipped", "not negated"]),
    ("order_zrn", ["gate blocks in the wrong order", "[0:H] holds z"]),
    ("b_h_in_bias_hh", ["b_h sits in bias_hh", "NOT redundant"]),
    ("b_h_split", ["b_h is split"]),
    ("bias_not_negated", ["its bias is not"]),
    ("one_minus", ["1 - W and 1 - U"]),
    ("column_bias", ["use b.ravel()"]),
    ("transposed", ["That is the transpose"]),
    ("no_suffix", ["layer suffix"]),
]


@pytest.mark.parametrize("bug, phrases", CONVERSION_MUTANTS, ids=[m[0] for m in CONVERSION_MUTANTS])
def test_each_conversion_bug_fails_with_its_diagnosis(bug, phrases):
    msg = failure(grading.check_torch_state_dict, conversion_with(bug))
    for p in phrases:
        assert p in msg, f"expected {p!r} in:\n{msg}"


def test_transposed_square_blocks_are_diagnosed():
    def transposed_square(params):
        sd = convert_numpy(params)
        H, D = params["W_z"].shape
        if D == H:
            sd["weight_ih_l0"] = np.concatenate([params["W_r"].T, -params["W_z"].T, params["W_h"].T])
            sd["weight_hh_l0"] = np.concatenate([params["U_r"].T, -params["U_z"].T, params["U_h"].T])
        return sd
    assert "transposed matrices" in failure(grading.check_torch_state_dict, transposed_square)
