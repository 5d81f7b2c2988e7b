"""Gradient clipping: by norm (Pascanu et al. 2013: g <- theta g / ||g|| when ||g|| > theta) and by value."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from gated_lib.errors import GatedLibError  # noqa: E402
from gated_lib.training import clip_grad_norm, clip_grad_value, grad_norm  # noqa: E402


def params_with_grads(*grads):
    ps = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros_like(torch.as_tensor(g, dtype=torch.float64)))
        p.grad = torch.as_tensor(g, dtype=torch.float64).clone()
        ps.append(p)
    return ps


def test_norm_above_threshold_is_rescaled_to_exactly_theta_keeping_the_direction():
    ps = params_with_grads([3.0, 0.0], [[4.0]])               # joint norm 5
    before = clip_grad_norm(ps, 1.0)
    assert before == pytest.approx(5.0)
    assert grad_norm(ps) == pytest.approx(1.0, rel=1e-12)
    assert ps[0].grad.tolist() == pytest.approx([0.6, 0.0])
    assert ps[1].grad.tolist() == [[pytest.approx(0.8)]]


def test_norm_below_threshold_is_untouched():
    ps = params_with_grads([0.3, 0.4])
    assert clip_grad_norm(ps, 1.0) == pytest.approx(0.5)
    assert ps[0].grad.tolist() == [0.3, 0.4]


def test_agrees_with_torch_clip_grad_norm():
    torch.manual_seed(0)
    a = params_with_grads(torch.randn(5, 3) * 10, torch.randn(7) * 10)
    b = params_with_grads(a[0].grad, a[1].grad)
    ours = clip_grad_norm(a, 2.0)
    theirs = torch.nn.utils.clip_grad_norm_(b, 2.0)
    assert ours == pytest.approx(float(theirs), rel=1e-12)
    for p, q in zip(a, b):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5)       # torch divides by ||g|| + 1e-6


def test_parameters_without_grad_are_skipped():
    ps = params_with_grads([6.0, 8.0])
    ps.append(torch.nn.Parameter(torch.ones(2)))               # .grad is None
    assert clip_grad_norm(ps, 5.0) == pytest.approx(10.0)
    assert ps[0].grad.tolist() == pytest.approx([3.0, 4.0])


def test_nonfinite_norm_is_reported_not_hidden():
    ps = params_with_grads([float("nan"), 1.0])
    assert math.isnan(clip_grad_norm(ps, 1.0))
    with pytest.raises(GatedLibError, match="gradient norm is nan"):
        clip_grad_norm(ps, 1.0, error_if_nonfinite=True)


def test_clip_by_value_clamps_each_component():
    ps = params_with_grads([-3.0, 0.5, 2.0])
    clip_grad_value(ps, 1.0)
    assert ps[0].grad.tolist() == [-1.0, 0.5, 1.0]


@pytest.mark.parametrize("bad", [0, -1.0, None, True])
def test_thresholds_must_be_positive(bad):
    ps = params_with_grads([1.0])
    with pytest.raises(GatedLibError, match=r"max_norm: expected a positive number"):
        clip_grad_norm(ps, bad)
    with pytest.raises(GatedLibError, match=r"clip_value: expected a positive number"):
        clip_grad_value(ps, bad)
