"""gated_lib.clipping: Pascanu et al.'s clip-by-norm (one global norm) and clip-by-value, in numpy."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from gated_lib.clipping import clip_by_norm, clip_by_value, global_norm
from gated_lib.errors import DTypeError, GatedLibError, NonFiniteError


def grads(rng, scale=1.0, dtype=np.float64):
    return {"weight_ih": (scale * rng.normal(size=(4, 3))).astype(dtype),
            "weight_hh": (scale * rng.normal(size=(4, 4))).astype(dtype),
            "bias_ih": (scale * rng.normal(size=4)).astype(dtype),
            "bias_hh": (scale * rng.normal(size=4)).astype(dtype)}


def flat(g):
    return np.concatenate([np.ravel(a) for a in (g.values() if isinstance(g, dict) else g)])


def test_global_norm_is_the_norm_of_all_arrays_concatenated():
    g = grads(np.random.default_rng(0))
    assert global_norm(g) == pytest.approx(np.linalg.norm(flat(g)), rel=1e-14)
    assert global_norm(list(g.values())) == global_norm(g)
    assert global_norm(g["weight_hh"]) == pytest.approx(np.linalg.norm(g["weight_hh"]), rel=1e-14)


def test_above_the_threshold_the_direction_is_kept_and_the_norm_becomes_theta():
    g = grads(np.random.default_rng(1), scale=10.0)
    total = np.linalg.norm(flat(g))
    clipped, norm = clip_by_norm(g, 2.5)
    assert norm == pytest.approx(total, rel=1e-14)
    assert np.linalg.norm(flat(clipped)) == pytest.approx(2.5, rel=1e-14)
    for k in g:                                     # one factor for every array: theta / ||g||
        np.testing.assert_allclose(clipped[k], g[k] * 2.5 / total, rtol=1e-14)
    cos = flat(clipped) @ flat(g) / (np.linalg.norm(flat(clipped)) * total)
    assert cos == pytest.approx(1.0, abs=1e-14)


def test_below_the_threshold_nothing_changes_and_zero_gradients_stay_zero():
    g = grads(np.random.default_rng(2), scale=0.01)
    clipped, norm = clip_by_norm(g, 1.0)
    assert norm < 1.0
    for k in g:
        np.testing.assert_array_equal(clipped[k], g[k])
        assert clipped[k] is not g[k]               # a copy: the caller may modify it
    zeros = {k: np.zeros_like(v) for k, v in g.items()}
    clipped, norm = clip_by_norm(zeros, 1.0)
    assert norm == 0.0 and all(np.all(v == 0) and np.all(np.isfinite(v)) for v in clipped.values())


def test_the_global_norm_is_not_a_per_array_norm():
    """Every array below theta, all together above it: everything is scaled."""
    g = {f"p{k}": np.full(4, 0.4) for k in range(10)}                 # each ||g_i|| = 0.8, ||g|| ~ 2.53
    clipped, norm = clip_by_norm(g, 1.0)
    assert norm == pytest.approx(math.sqrt(10 * 4 * 0.16))
    assert np.linalg.norm(flat(clipped)) == pytest.approx(1.0)
    assert all(np.linalg.norm(v) < 0.8 for v in clipped.values())


def test_inputs_are_not_modified_and_dtypes_and_forms_are_kept():
    rng = np.random.default_rng(3)
    g = grads(rng, scale=5.0, dtype=np.float32)
    before = {k: v.copy() for k, v in g.items()}
    clipped, _ = clip_by_norm(g, 1.0)
    for k in g:
        np.testing.assert_array_equal(g[k], before[k])
        assert clipped[k].dtype == np.float32 and clipped[k].shape == g[k].shape
    as_list, _ = clip_by_norm(list(g.values()), 1.0)
    as_tuple, _ = clip_by_norm(tuple(g.values()), 1.0)
    one, _ = clip_by_norm(g["weight_hh"], 1.0)
    assert isinstance(as_list, list) and isinstance(as_tuple, tuple) and isinstance(one, np.ndarray)
    ordered, _ = clip_by_norm(OrderedDict(g), 1.0)
    assert list(ordered) == list(g)
    mixed = {"a": np.ones(3, np.float32), "b": np.ones((2, 2), np.float64) * 10}
    out, _ = clip_by_norm(mixed, 1.0)
    assert out["a"].dtype == np.float32 and out["b"].dtype == np.float64


def test_clip_by_value_clamps_each_component_and_can_turn_the_direction():
    g = {"w": np.array([10.0, 0.5, -3.0]), "b": np.array([-0.2])}
    clipped = clip_by_value(g, 1.0)
    np.testing.assert_array_equal(clipped["w"], [1.0, 0.5, -1.0])
    np.testing.assert_array_equal(clipped["b"], [-0.2])
    np.testing.assert_array_equal(g["w"], [10.0, 0.5, -3.0])
    cos = flat(clipped) @ flat(g) / (np.linalg.norm(flat(clipped)) * np.linalg.norm(flat(g)))
    assert cos < 0.99                                   # the direction changed; clip_by_norm keeps it
    assert clip_by_value(np.float32([5, -5]), 2.0).dtype == np.float32


def test_agrees_with_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    for scale, theta in [(10.0, 1.0), (0.01, 1.0), (3.0, 7.5)]:
        g = grads(rng, scale=scale)
        params = [torch.nn.Parameter(torch.zeros(v.shape, dtype=torch.float64)) for v in g.values()]
        for p, v in zip(params, g.values()):
            p.grad = torch.from_numpy(v.copy())
        total = torch.nn.utils.clip_grad_norm_(params, theta)
        clipped, norm = clip_by_norm(g, theta)
        assert norm == pytest.approx(float(total), rel=1e-12)
        for p, v in zip(params, clipped.values()):
            np.testing.assert_allclose(v, p.grad.numpy(), rtol=1e-5)      # torch adds 1e-6 to the norm
        for p, v in zip(params, g.values()):
            p.grad = torch.from_numpy(v.copy())
        torch.nn.utils.clip_grad_value_(params, 0.3)
        for p, v in zip(params, clip_by_value(g, 0.3).values()):
            np.testing.assert_array_equal(v, p.grad.numpy())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=4), st.floats(1e-3, 1e3), st.floats(1e-3, 1e3),
       st.integers(0, 2**31))
def test_property_norm_never_exceeds_theta_and_direction_is_kept(sizes, scale, theta, seed):
    rng = np.random.default_rng(seed)
    g = [scale * rng.normal(size=n) for n in sizes]
    clipped, norm = clip_by_norm(g, theta)
    after = np.linalg.norm(flat(clipped))
    assert after <= theta * (1 + 1e-12) or after == pytest.approx(norm, rel=1e-12)
    assert after == pytest.approx(min(norm, theta), rel=1e-12)
    if norm > 0:
        np.testing.assert_allclose(flat(clipped) * norm, flat(g) * after, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("bad, error, words", [
    ({}, GatedLibError, "empty"),
    ([], GatedLibError, "empty"),
    ("abc", GatedLibError, "expected a dict of arrays"),
    ({"w": "abc"}, GatedLibError, "grads['w']: expected a numpy array"),
    ({"w": np.arange(3)}, DTypeError, "grads['w']: expected a floating-point array"),
    ({"w": np.array([1.0, np.nan])}, NonFiniteError, "clipping cannot repair"),
    ([np.ones(2), np.array([np.inf])], NonFiniteError, "grads[1]"),
])
def test_bad_gradients_are_explained(bad, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        clip_by_norm(bad, 1.0)


@pytest.mark.parametrize("theta", [0, -1.0, float("nan"), float("inf"), True, "1", None])
def test_bad_thresholds_are_explained(theta):
    with pytest.raises(GatedLibError, match="expected a positive finite number"):
        clip_by_norm({"w": np.ones(2)}, theta)
    with pytest.raises(GatedLibError, match="clip_value: expected a positive finite number"):
        clip_by_value({"w": np.ones(2)}, theta)


def test_a_torch_tensor_gets_a_pointer_to_the_torch_clipper():
    torch = pytest.importorskip("torch")
    with pytest.raises(GatedLibError, match="torch tensor"):
        clip_by_norm([torch.ones(3)], 1.0)


def test_python_numbers_and_lists_are_accepted():
    clipped, norm = clip_by_norm({"w": [3.0, 4.0]}, 1.0)
    assert norm == 5.0
    np.testing.assert_allclose(clipped["w"], [0.6, 0.8])
