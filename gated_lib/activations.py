"""The two squashing functions of every gated cell, written so that they never overflow.

    sigmoid(x) = 1 / (1 + exp(-x)) = (1 + tanh(x / 2)) / 2        gates, values in (0, 1)
    tanh(x)                                                          candidates and outputs, in (-1, 1)

The tanh form of the sigmoid is used because it is exact algebra, cannot overflow (exp(-x) does for
x < -709 in float64), needs no branch on the sign of x, and costs one vectorised pass: the hot loops
apply it to a whole block of gates at once. Derivatives are written in terms of the outputs, which is
what the backward passes have cached: sigmoid' = s (1 - s), tanh' = 1 - t^2.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (no overflow warning for large |x|); same shape as x."""
    x = np.asarray(x)
    out = np.multiply(x, 0.5, dtype=x.dtype if x.dtype.kind == "f" else np.float64)
    if not isinstance(out, np.ndarray):   # 0-d input gives a numpy scalar, which cannot be an out= target
        out = np.array(out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def sigmoid_(a: np.ndarray) -> np.ndarray:
    """In-place sigmoid of a float array (a view of a larger buffer is fine); returns `a`."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def dsigmoid(s: np.ndarray) -> np.ndarray:
    """Derivative of the sigmoid at the point where it took the value s: s (1 - s)."""
    return s * (1.0 - s)


def dtanh(t: np.ndarray) -> np.ndarray:
    """Derivative of tanh at the point where it took the value t: 1 - t^2."""
    return 1.0 - t * t
