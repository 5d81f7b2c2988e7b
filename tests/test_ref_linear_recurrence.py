"""gated_lib.linear_recurrence: the scan equals its definition (loop and closed form), the doubling
scan equals the loop for every length, minGRU/minLSTM forward and backward agree with finite
differences and with torch autograd, the one-step Jacobian is diag(a_t), dtypes are kept, and bad
input names the argument."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from gated_lib import linear_recurrence
from gated_lib.errors import DTypeError, GatedLibError, ShapeError
from gated_lib.gradcheck import grad_check
from gated_lib.linear_recurrence import (
    MINGRU_PARAMS,
    MINLSTM_PARAMS,
    linear_scan,
    mingru_backward,
    mingru_forward,
    minlstm_backward,
    minlstm_forward,
    parallel_scan,
    scan_jacobian,
    scan_rounds,
)

LENGTHS = (1, 2, 3, 7, 64, 100)
B, D, H = 3, 4, 5
MODELS = {  # name -> (param names, forward, backward)
    "mingru": (MINGRU_PARAMS, mingru_forward, mingru_backward),
    "minlstm": (MINLSTM_PARAMS, minlstm_forward, minlstm_backward),
}


def scan_inputs(T, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.0, 1.0, (T, B, H)).astype(dtype)
    b = rng.standard_normal((T, B, H)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    return a, b, h0


def closed_form(a, b, h0):
    """h_t = (prod_{k<=t} a_k) h0 + sum_{s<=t} (prod_{s<k<=t} a_k) b_s, written out with no recurrence."""
    T = a.shape[0]
    h = np.empty_like(b)
    for t in range(T):
        h[t] = np.prod(a[:t + 1], axis=0) * h0
        for s in range(t + 1):
            h[t] += np.prod(a[s + 1:t + 1], axis=0) * b[s]
    return h


def model_inputs(name, T=6, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    names = MODELS[name][0]
    params = {k: rng.standard_normal((H, D) if k.startswith("weight") else (H,)).astype(dtype) for k in names}
    x = rng.standard_normal((T, B, D)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    return x, params, h0


# --- the scan ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("T", (1, 2, 3, 7))
def test_linear_scan_equals_closed_form(T):
    a, b, h0 = scan_inputs(T)
    np.testing.assert_allclose(linear_scan(a, b, h0), closed_form(a, b, h0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("with_h0", (False, True))
def test_parallel_scan_equals_loop(T, with_h0):
    a, b, h0 = scan_inputs(T, seed=T)
    h0 = h0 if with_h0 else None
    np.testing.assert_allclose(parallel_scan(a, b, h0), linear_scan(a, b, h0), rtol=1e-12, atol=1e-12)


def test_parallel_scan_with_any_real_decay():
    # The doubling scan needs no logs, so negative and > 1 factors work too (a log-space scan would not).
    rng = np.random.default_rng(1)
    a = rng.uniform(-1.2, 1.2, (37, B, H))
    b = rng.standard_normal((37, B, H))
    np.testing.assert_allclose(parallel_scan(a, b), linear_scan(a, b), rtol=1e-10, atol=1e-10)


def test_h0_enters_through_the_first_decay():
    a, b, h0 = scan_inputs(5)
    for scan in (linear_scan, parallel_scan):
        np.testing.assert_allclose(scan(a, b, h0)[0], a[0] * h0 + b[0], rtol=1e-14)
        np.testing.assert_array_equal(scan(a, b, None), scan(a, b, np.zeros_like(h0)))
        # A state that is kept (a = 1, b = 0) keeps h0 for ever.
        np.testing.assert_allclose(scan(np.ones_like(a), np.zeros_like(b), h0)[-1], h0, rtol=1e-14)


def test_scan_does_not_modify_its_inputs():
    a, b, h0 = scan_inputs(9)
    copies = [v.copy() for v in (a, b, h0)]
    parallel_scan(a, b, h0)
    linear_scan(a, b, h0)
    for v, c in zip((a, b, h0), copies):
        np.testing.assert_array_equal(v, c)


@pytest.mark.parametrize("T", (1, 2, 3, 4, 5, 64, 65, 100, 1000))
def test_scan_rounds_is_ceil_log2(T):
    assert scan_rounds(T) == math.ceil(math.log2(T))


def _lines_run(fn, *args) -> int:
    """How many lines of gated_lib/linear_recurrence.py run during fn(*args) (sys.settrace)."""
    count = 0
    here = linear_recurrence.__file__

    def local(frame, event, arg):
        nonlocal count
        count += event == "line"
        return local

    previous = sys.gettrace()
    sys.settrace(lambda frame, event, arg: local if frame.f_code.co_filename == here else None)
    try:
        fn(*args)
    finally:
        sys.settrace(previous)
    return count


def test_parallel_scan_takes_log_T_rounds_and_the_loop_T_steps():
    """The depth claim itself: from T = 1024 to 16384 (4 doublings) the doubling scan runs 4 more rounds of
    the same lines, exactly as many more as from 64 to 1024; the loop runs 15360 more steps."""
    counts = {}
    for scan in (parallel_scan, linear_scan):
        counts[scan] = [_lines_run(scan, *scan_inputs(T)) for T in (64, 1024, 16384)]
    p = counts[parallel_scan]
    assert p[2] - p[1] == p[1] - p[0] > 0 and p[2] - p[1] <= 4 * 4, p
    q = counts[linear_scan]
    assert q[2] - q[1] >= 16384 - 1024, q


# --- Jacobians -----------------------------------------------------------------------------------------

def test_scan_jacobian_is_diag_of_products():
    a, _, _ = scan_inputs(6)
    J = scan_jacobian(a, 3)
    assert J.shape == (B, H, H)
    np.testing.assert_array_equal(J, np.stack([np.diag(a[3, k]) for k in range(B)]))
    np.testing.assert_allclose(scan_jacobian(a, 4, 1),
                               np.stack([np.diag(a[2, k] * a[3, k] * a[4, k]) for k in range(B)]), rtol=1e-14)
    np.testing.assert_array_equal(scan_jacobian(a, 2, 2), np.broadcast_to(np.eye(H), (B, H, H)))


def test_mingru_step_jacobian_by_autograd_is_diag_a():
    """dh_t/dh_{t-1} of the minGRU, by torch autograd on the equations, equals diag(1 - z_t) = diag(a_t),
    and over a lag dh_t/dh0 is the diagonal of the product of the a's."""
    torch = pytest.importorskip("torch")
    x, p, h0 = model_inputs("mingru", T=5)
    _, cache = mingru_forward(x, p, h0)
    P = {k: torch.tensor(v) for k, v in p.items()}
    xt = torch.tensor(x)

    def step(t, h_prev):
        z = torch.sigmoid(xt[t] @ P["weight_z"].T + P["bias_z"])
        return (1 - z) * h_prev + z * (xt[t] @ P["weight_h"].T + P["bias_h"])

    def run(h):
        for t in range(x.shape[0]):
            h = step(t, h)
        return h

    h_prev = torch.tensor(cache["h"][1])
    J = torch.autograd.functional.jacobian(lambda h: step(2, h), h_prev).numpy()   # (B, H, B, H)
    J_rows = np.stack([J[k, :, k, :] for k in range(B)])
    np.testing.assert_allclose(J_rows, scan_jacobian(cache["a"], 2), rtol=1e-12, atol=1e-15)
    # Examples do not interact: every off-batch block is zero.
    off = J.copy()
    for k in range(B):
        off[k, :, k, :] = 0
    assert np.abs(off).max() == 0
    Jlag = torch.autograd.functional.jacobian(run, torch.tensor(h0)).numpy()
    np.testing.assert_allclose(np.stack([Jlag[k, :, k, :] for k in range(B)]),
                               scan_jacobian(cache["a"], 4, -1), rtol=1e-12, atol=1e-15)


# --- minGRU and minLSTM --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("T", (1, 7, 64))
def test_sequential_equals_parallel(name, T):
    _, fwd, bwd = MODELS[name]
    x, p, h0 = model_inputs(name, T=T)
    hs, cs = fwd(x, p, h0, parallel=False)
    hp, cp = fwd(x, p, h0, parallel=True)
    np.testing.assert_allclose(hp, hs, rtol=1e-12, atol=1e-12)
    dh = np.random.default_rng(9).standard_normal(hs.shape)
    gs, gp = bwd(dh, cs), bwd(dh, cp)
    assert set(gs) == set(gp)
    for k in gs:
        np.testing.assert_allclose(gp[k], gs[k], rtol=1e-10, atol=1e-10, err_msg=k)


def test_mingru_equations_and_sign():
    """z takes the NEW state: with a huge update bias h_t = h~_t; with a very negative one h_t = h0."""
    x, p, h0 = model_inputs("mingru", T=3)
    h, cache = mingru_forward(x, p, h0)
    z = 1 / (1 + np.exp(-(x @ p["weight_z"].T + p["bias_z"])))
    np.testing.assert_allclose(cache["z"], z, rtol=1e-12)
    np.testing.assert_allclose(h[0], (1 - z[0]) * h0 + z[0] * (x[0] @ p["weight_h"].T + p["bias_h"]), rtol=1e-12)
    h_new, _ = mingru_forward(x, {**p, "bias_z": np.full(H, 50.0)}, h0)
    np.testing.assert_allclose(h_new, x @ p["weight_h"].T + p["bias_h"], rtol=1e-12, atol=1e-12)
    h_old, _ = mingru_forward(x, {**p, "bias_z": np.full(H, -50.0)}, h0)
    np.testing.assert_allclose(h_old, np.broadcast_to(h0, h_old.shape), rtol=1e-12, atol=1e-12)


def test_minlstm_gates_are_normalised():
    x, p, h0 = model_inputs("minlstm", T=4)
    h, cache = minlstm_forward(x, p, h0)
    np.testing.assert_allclose(cache["a"] + cache["i_n"], 1.0, rtol=1e-14)
    f, i = cache["f"], cache["i"]
    h_tilde = x @ p["weight_h"].T + p["bias_h"]
    np.testing.assert_allclose(h[0], f[0] / (f[0] + i[0]) * h0 + i[0] / (f[0] + i[0]) * h_tilde[0], rtol=1e-12)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("parallel", (False, True))
def test_gradient_check(name, parallel):
    names, fwd, bwd = MODELS[name]
    x, p, h0 = model_inputs(name, T=5, seed=3)
    inputs = dict(x=x, h0=h0, **p)
    report = grad_check(lambda i: fwd(i["x"], {k: i[k] for k in names}, i["h0"], parallel=parallel),
                        inputs, lambda d, c: {k[1:]: v for k, v in bwd(d, c).items()})
    report.assert_ok()


@pytest.mark.parametrize("name", list(MODELS))
def test_backward_matches_torch_autograd(name):
    torch = pytest.importorskip("torch")
    _, fwd, bwd = MODELS[name]
    x, p, h0 = model_inputs(name, T=7, seed=4)
    dh = np.random.default_rng(5).standard_normal((7, B, H))
    h, cache = fwd(x, p, h0)
    grads = bwd(dh, cache)
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in dict(x=x, h0=h0, **p).items()}
    lin = {g: leaves["x"] @ leaves["weight_" + g].T + leaves["bias_" + g] for g in ("z", "f", "i", "h")
           if "weight_" + g in leaves}
    if name == "mingru":
        z = torch.sigmoid(lin["z"])
        a, w = 1 - z, z * lin["h"]
    else:
        f, i = torch.sigmoid(lin["f"]), torch.sigmoid(lin["i"])
        a, w = f / (f + i), i / (f + i) * lin["h"]
    state, outs = leaves["h0"], []
    for t in range(7):
        state = a[t] * state + w[t]
        outs.append(state)
    out = torch.stack(outs)
    np.testing.assert_allclose(out.detach().numpy(), h, rtol=1e-12, atol=1e-12)
    (out * torch.tensor(dh)).sum().backward()
    for k, leaf in leaves.items():
        np.testing.assert_allclose(grads["d" + k], leaf.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=k)


# --- dtypes --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_dtype_preserved(dtype):
    a, b, h0 = scan_inputs(10, dtype=dtype)
    assert linear_scan(a, b, h0).dtype == dtype
    assert parallel_scan(a, b, h0).dtype == dtype
    assert parallel_scan(a, b).dtype == dtype
    assert scan_jacobian(a, 3).dtype == dtype
    for name, (_, fwd, bwd) in MODELS.items():
        x, p, h0m = model_inputs(name, T=4, dtype=dtype)
        for parallel in (False, True):
            h, cache = fwd(x, p, h0m, parallel=parallel)
            assert h.dtype == dtype, name
            grads = bwd(np.ones_like(h), cache)
            assert {g.dtype for g in grads.values()} == {np.dtype(dtype)}, name
    # float32 is float32 arithmetic, not float64 rounded at the end: close, not equal.
    a64, b64, h064 = scan_inputs(100)
    h32 = parallel_scan(a64.astype(np.float32), b64.astype(np.float32), h064.astype(np.float32))
    np.testing.assert_allclose(h32, linear_scan(a64, b64, h064), rtol=1e-4, atol=1e-5)


# --- errors --------------------------------------------------------------------------------------------

def _raises(exc, match, fn, *args, **kwargs):
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)


@pytest.mark.parametrize("scan", (linear_scan, parallel_scan))
def test_scan_errors_name_the_argument(scan):
    a, b, h0 = scan_inputs(4)
    _raises(ShapeError, r"^a: expected shape \(T, B, D\)", scan, a[0], b)
    _raises(ShapeError, r"^b: expected shape \(T, B, H\) = \(4, 3, 5\), got \(4, 5, 3\)", scan, a,
            b.transpose(0, 2, 1))
    _raises(ShapeError, r"^h0: expected shape \(B, H\) = \(3, 5\), got \(5, 3\)", scan, a, b, h0.T)
    _raises(ShapeError, r"^a: expected at least one time step", scan, a[:0], b[:0])
    _raises(DTypeError, r"a: float32, b: float64", scan, a.astype(np.float32), b)
    _raises(GatedLibError, r"^b: contains NaN", scan, a, np.where(b > 0, np.nan, b))


def test_model_errors_name_the_argument():
    x, p, h0 = model_inputs("mingru", T=3)
    _raises(GatedLibError, r"^params: mingru expects keys .*missing \['bias_h'\]", mingru_forward, x,
            {k: v for k, v in p.items() if k != "bias_h"})
    _raises(GatedLibError, r"unknown \['weight_hh'\]", mingru_forward, x, {**p, "weight_hh": p["weight_h"]})
    _raises(GatedLibError, r"^params: expected a dict", mingru_forward, x, list(p.values()))
    _raises(ShapeError, r"^weight_h: expected shape \(H, D\) = \(5, 4\), got \(4, 5\)", mingru_forward, x,
            {**p, "weight_h": p["weight_h"].T})
    _raises(ShapeError, r"^bias_z: expected shape \(H,\) = \(5,\)", mingru_forward, x, {**p, "bias_z": p["bias_z"][:2]})
    _raises(ShapeError, r"^x: expected shape \(T, B, D\) = \(T, B, 4\), got \(3, 3, 5\)", mingru_forward,
            np.zeros((3, B, 5)), p)
    _raises(ShapeError, r"^h0: expected shape \(B, H\)", mingru_forward, x, p, h0[:1])
    _raises(DTypeError, r"x: float32", mingru_forward, x.astype(np.float32), p)
    h, cache = mingru_forward(x, p, h0)
    _raises(ShapeError, r"^dh: expected shape \(T, B, H\) = \(3, 3, 5\)", mingru_backward, h[:2], cache)
    _raises(GatedLibError, r"^params: minlstm expects keys", minlstm_forward, x, p)


def test_index_errors():
    a, _, _ = scan_inputs(4)
    _raises(GatedLibError, r"^t: expected an integer step with 0 <= t < T = 4, got 4", scan_jacobian, a, 4)
    _raises(GatedLibError, r"^s: expected an integer with -1 <= s <= t = 2", scan_jacobian, a, 2, 3)
    for bad in (0, -3, 2.0, True):
        _raises(GatedLibError, r"^T: expected a positive integer", scan_rounds, bad)
