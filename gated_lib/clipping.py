"""Gradient clipping in numpy: the remedy for exploding gradients that needs no new architecture.

By norm (Pascanu, Mikolov & Bengio 2013, Algorithm 1). With g the gradients of *all* parameters
taken together as one vector,

    ||g|| = sqrt(sum over arrays of sum(g_i ** 2))           the global (joint) L2 norm
    if ||g|| > theta:   g <- theta * g / ||g||                every array scaled by the same factor

so the direction of the step is kept and only its length is capped at theta; below the threshold the
gradients are returned unchanged. (torch.nn.utils.clip_grad_norm_ multiplies by
min(1, theta / (||g|| + 1e-6)) instead; the two agree to ~1e-6 relative.)

By value (used before Pascanu et al., e.g. Mikolov 2012): every component is clamped to [-v, v]
independently, which changes the direction of g whenever some but not all components are clamped.

Gradients can be given as a dict name -> array (what rnn_backward returns), a list or tuple of arrays,
or one array; the result has the same form, with new arrays of the same dtypes (inputs are never
modified). Norms are accumulated in float64.

    global_norm(grads)                      -> float
    clip_by_norm(grads, max_norm)           -> (clipped, norm before clipping)
    clip_by_value(grads, clip_value)        -> clipped
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real

import numpy as np

from gated_lib.errors import DTypeError, GatedLibError, NonFiniteError

__all__ = ["global_norm", "clip_by_norm", "clip_by_value"]


def _items(grads) -> tuple[str, list[tuple[object, np.ndarray]]]:
    """(kind, [(key, array)]) for a dict, a list/tuple or a single array; validated."""
    if isinstance(grads, np.ndarray):
        kind, pairs = "array", [(None, grads)]
    elif isinstance(grads, Mapping):
        kind, pairs = "dict", list(grads.items())
    elif isinstance(grads, (list, tuple)):
        kind, pairs = type(grads).__name__, list(enumerate(grads))
    else:
        raise GatedLibError(f"grads: expected a dict of arrays, a list or tuple of arrays, or an array; "
                            f"got {type(grads).__name__}")
    if not pairs:
        raise GatedLibError(f"grads: expected at least one gradient array, got an empty {kind}")
    out = []
    for key, a in pairs:
        name = "grads" if kind == "array" else f"grads[{key!r}]"
        if not isinstance(a, np.ndarray):
            if hasattr(a, "detach") and hasattr(a, "cpu"):
                raise GatedLibError(f"{name}: expected a numpy array, got a torch tensor "
                                    f"(use .detach().cpu().numpy(), or gated_lib.training.clip for torch)")
            if isinstance(a, (Real, list, tuple)) and not isinstance(a, bool):
                a = np.asarray(a, dtype=np.float64)
            else:
                raise GatedLibError(f"{name}: expected a numpy array, got {type(a).__name__}")
        if a.dtype.kind != "f":
            raise DTypeError(f"{name}: expected a floating-point array, got dtype {a.dtype}")
        if not np.all(np.isfinite(a)):
            first = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0]) if a.ndim else ()
            raise NonFiniteError(f"{name}: contains NaN or inf (first at index {first}); clipping cannot "
                                 f"repair a non-finite gradient (lower the learning rate, check the inputs)")
        out.append((key, a))
    return kind, out


def _rebuild(kind: str, pairs: list[tuple[object, np.ndarray]], grads):
    if kind == "array":
        return pairs[0][1]
    if kind == "dict":
        return {k: a for k, a in pairs}
    values = [a for _, a in pairs]
    return values if kind == "list" else tuple(values)


def _threshold(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or not value > 0:
        raise GatedLibError(f"{name}: expected a positive finite number, got {value!r}")
    return float(value)


def global_norm(grads) -> float:
    """The L2 norm of all gradient arrays taken together as one vector (accumulated in float64)."""
    _, pairs = _items(grads)
    return math.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for _, a in pairs))


def clip_by_norm(grads, max_norm: float):
    """Rescale the gradients jointly so that their global norm is at most `max_norm`.

    Inputs:
    - grads:    a dict name -> array, a list/tuple of arrays, or one array (floating, finite)
    - max_norm: the threshold theta > 0

    Returns ``(clipped, norm)``:
    - clipped: the same form as grads, new arrays with the same dtypes: theta * g / ||g|| when
      ||g|| > theta (one factor for every array), otherwise copies of g
    - norm:    ||g||, the global norm *before* clipping (what a log of gradient norms should show)
    """
    theta = _threshold("max_norm", max_norm)
    kind, pairs = _items(grads)
    norm = global_norm([a for _, a in pairs])
    scale = theta / norm if norm > theta else 1.0
    clipped = [(k, (a * scale).astype(a.dtype, copy=False) if scale != 1.0 else a.copy()) for k, a in pairs]
    return _rebuild(kind, clipped, grads), norm


def clip_by_value(grads, clip_value: float):
    """Clamp every gradient component to [-clip_value, clip_value] (same form and dtypes as grads).

    Unlike clip_by_norm this acts on each component independently, so it changes the direction of the
    gradient whenever some, but not all, components are clamped.
    """
    v = _threshold("clip_value", clip_value)
    kind, pairs = _items(grads)
    return _rebuild(kind, [(k, np.clip(a, -v, v).astype(a.dtype, copy=False)) for k, a in pairs], grads)
