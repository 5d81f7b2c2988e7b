"""Finite-difference gradient checking, as cs231n defines it.

rel_error(x, y) = max |x - y| / max(1e-8, |x| + |y|)   (elementwise, then the max)

Use float64: with centred differences and h = 1e-5 the truncation error is O(h^2) ~ 1e-10 and the
round-off error ~ eps / h ~ 1e-11, so a correct backward gives rel_error ~ 1e-8 or smaller.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def rel_error(x, y) -> float:
    """Maximum elementwise relative error between two arrays (cs231n's definition)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"rel_error: shapes differ, x {x.shape} vs y {y.shape}")
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def numerical_gradient(f: Callable[[], np.ndarray], x: np.ndarray, dout: np.ndarray | None = None,
                       h: float = 1e-5) -> np.ndarray:
    """Centred-difference gradient of sum(f() * dout) with respect to `x`, perturbed in place.

    f:    a function of no arguments that reads `x` (by closure) and returns an array.
    x:    the array to differentiate with respect to; modified during the call and restored.
    dout: upstream gradient with f()'s shape (default: ones, i.e. the gradient of sum(f())).
    """
    if x.dtype != np.float64:
        raise TypeError(f"numerical_gradient: x must be float64 for a meaningful check, got {x.dtype}")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        pos = np.array(f(), dtype=np.float64, copy=True)
        x[ix] = old - h
        neg = np.array(f(), dtype=np.float64, copy=True)
        x[ix] = old
        d = (pos - neg) if dout is None else (pos - neg) * dout
        grad[ix] = np.sum(d) / (2 * h)
        it.iternext()
    return grad
