"""Gradient clipping, the remedy for exploding gradients that needs no new architecture.

By norm (Pascanu, Mikolov & Bengio 2013): with g all gradients concatenated into one vector,

    if ||g|| > theta:   g <- theta * g / ||g||

so the direction of the step is kept and only its length is capped. (torch.nn.utils.clip_grad_norm_
multiplies by theta / (||g|| + 1e-6) instead; the two agree to ~1e-6 relative.)

By value: every component is clamped to [-v, v], which changes the direction of g.
"""

from __future__ import annotations

import math

import torch

from gated_lib.errors import GatedLibError


def _grads(parameters):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def grad_norm(parameters, norm_type: float = 2.0) -> float:
    """The norm of all gradients taken as one vector (0.0 if there are none)."""
    grads = _grads(parameters)
    if not grads:
        return 0.0
    norms = torch.stack([torch.linalg.vector_norm(g.detach(), norm_type) for g in grads])
    return float(torch.linalg.vector_norm(norms, norm_type))


def clip_grad_norm(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    """Rescale the gradients in place so that their joint norm is at most max_norm (Pascanu et al.).

    Returns the norm *before* clipping (what a learning curve of gradient norms should show).
    """
    if not isinstance(max_norm, (int, float)) or isinstance(max_norm, bool) or not max_norm > 0:
        raise GatedLibError(f"max_norm: expected a positive number (the threshold theta), got {max_norm!r}")
    parameters = list(parameters) if not isinstance(parameters, torch.Tensor) else [parameters]
    total = grad_norm(parameters, norm_type)
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise GatedLibError(f"clip_grad_norm: the gradient norm is {total}; clipping cannot repair "
                                f"NaN or inf gradients (lower the learning rate, check the inputs)")
        return total
    if total > max_norm:
        scale = max_norm / total
        for g in _grads(parameters):
            g.mul_(scale)
    return total


def clip_grad_value(parameters, clip_value: float) -> None:
    """Clamp every gradient component to [-clip_value, clip_value] in place."""
    if not isinstance(clip_value, (int, float)) or isinstance(clip_value, bool) or not clip_value > 0:
        raise GatedLibError(f"clip_value: expected a positive number, got {clip_value!r}")
    for g in _grads(parameters):
        g.clamp_(-clip_value, clip_value)
