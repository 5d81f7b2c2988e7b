"""Finite-difference gradient checking, as cs231n defines it.

rel_error(x, y) = max |x - y| / max(1e-8, |x| + |y|)   (elementwise, then the max)

Use float64: with centred differences and h = 1e-5 the truncation error is O(h^2) ~ 1e-10 and the
round-off error ~ eps |L| / h ~ 1e-11 |L| (L the scalar loss), so a correct backward gives
rel_error ~ 1e-8 or smaller on gradient entries of order 1e-3 or more. The error is a max over
entries, so one entry of order 1e-5 can push a correct backward above 1e-7: grad_check therefore uses
the five-point centred stencil (error O(h^4)) with h = 1e-3 by default, where both errors are ~1e-12.

    numerical_gradient(f, x, dout=None, h=1e-5, order=2) -> array shaped like x
    grad_check(forward_fn, inputs, backward_fn, ...)   -> GradCheckReport (.errors, .worst, .passed)
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
                       h: float = 1e-5, order: int = 2) -> np.ndarray:
    """Centred-difference gradient of sum(f() * dout) with respect to `x`, perturbed in place.

    f:     a function of no arguments that reads `x` (by closure) and returns an array.
    x:     the array to differentiate with respect to; modified during the call and restored.
    dout:  upstream gradient with f()'s shape (default: ones, i.e. the gradient of sum(f())).
    h:     the step.
    order: 2, cs231n's (f(x+h) - f(x-h)) / 2h, error O(h^2); or 4, the five-point centred stencil
           (-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / 12h, error O(h^4), which allows a larger h
           and so less round-off (see grad_check).
    """
    if x.dtype != np.float64:
        raise TypeError(f"numerical_gradient: x must be float64 for a meaningful check, got {x.dtype}")
    if order not in (2, 4):
        raise ValueError(f"numerical_gradient: order must be 2 or 4, got {order}")
    stencil = ((1, 0.5), (-1, -0.5)) if order == 2 else ((2, -1 / 12), (1, 8 / 12), (-1, -8 / 12), (-2, 1 / 12))
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        total = 0.0
        for k, w in stencil:
            x[ix] = old + k * h
            val = np.array(f(), dtype=np.float64, copy=True)
            total = total + w * (val if dout is None else val * dout)
        x[ix] = old
        grad[ix] = np.sum(total) / h
        it.iternext()
    return grad


def _flatten(out) -> list:
    """The arrays of a (nested) tuple/list output, in order; None entries are skipped."""
    if out is None:
        return []
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in _flatten(o)]
    return [np.asarray(out)]


def _like(out, make):
    """A structure like `out` (nested tuples of arrays) with each array replaced by make(array)."""
    if out is None:
        return None
    if isinstance(out, (tuple, list)):
        return tuple(_like(o, make) for o in out)
    return make(np.asarray(out))


class GradCheckReport:
    """The outcome of grad_check: one relative error per checked name.

    errors: dict name -> rel_error (inf when the backward returned no or a misshapen gradient)
    notes:  dict name -> why an error is inf
    tol:    the threshold; passed is True when every error is below it
    """

    def __init__(self, errors: dict, notes: dict, tol: float, shapes: dict):
        self.errors, self.notes, self.tol, self.shapes = errors, notes, tol, shapes

    @property
    def worst(self) -> tuple:
        """(name, rel_error) of the worst-checked input or parameter."""
        name = max(self.errors, key=lambda k: self.errors[k])
        return name, self.errors[name]

    @property
    def passed(self) -> bool:
        return all(e < self.tol for e in self.errors.values())

    def failures(self) -> dict:
        return {k: e for k, e in self.errors.items() if not e < self.tol}

    def __str__(self) -> str:
        width = max(len(k) for k in self.errors)
        lines = [f"gradient check (centred differences, float64), tolerance {self.tol:.0e}:"]
        for k, e in self.errors.items():
            verdict = "ok" if e < self.tol else "FAIL"
            note = f"  ({self.notes[k]})" if k in self.notes else ""
            lines.append(f"  {k:<{width}}  {str(self.shapes.get(k, '')):<14} rel_error {e:.2e}  {verdict}{note}")
        name, err = self.worst
        lines.append(f"worst: {name} ({err:.2e})")
        return "\n".join(lines)

    __repr__ = __str__

    def assert_ok(self) -> None:
        """Raise AssertionError with the whole table if any name failed."""
        if not self.passed:
            raise AssertionError(str(self))


def grad_check(forward_fn: Callable, inputs: dict, backward_fn: Callable, *, dout=None, names=None,
               h: float = 1e-3, order: int = 4, tol: float = 1e-7, seed: int = 0) -> GradCheckReport:
    """Check an analytic backward against centred differences for every named input and parameter.

    Inputs:
    - forward_fn:  forward_fn(inputs) -> (out, cache); out an array or a (nested) tuple of arrays
                   (None entries allowed), e.g. ``(out, (h_n, c_n))``
    - inputs:      dict name -> float64 array; every array the forward reads (perturbed in place
                   during the check, then restored)
    - backward_fn: backward_fn(dout, cache) -> dict name -> gradient, dout shaped like out
    - dout:        upstream gradient shaped like out; default: standard normal draws (seeded), so
                   that every output counts with a different weight and errors cannot cancel
    - names:       the names to check (default: all of inputs)
    - h, order:    finite-difference step and stencil (see numerical_gradient; order=2, h=1e-5 is
                   cs231n's; the default five-point stencil is accurate enough for tol = 1e-7 on
                   every entry, including small ones; use order=2 near a kink such as relu's)
    - tol:         pass threshold on cs231n's rel_error

    Returns a GradCheckReport: .errors (name -> rel_error), .worst, .passed, str() a table.
    """
    for k, v in inputs.items():
        if not isinstance(v, np.ndarray) or v.dtype != np.float64:
            raise TypeError(f"grad_check: inputs[{k!r}] must be a float64 ndarray, got "
                            f"{getattr(v, 'dtype', type(v).__name__)}")
    out, cache = forward_fn(inputs)
    if dout is None:
        rng = np.random.default_rng(seed)
        dout = _like(out, lambda a: rng.standard_normal(a.shape))
    analytic = backward_fn(dout, cache)
    flat_dout = _flatten(dout)

    def loss() -> np.ndarray:
        outs = _flatten(forward_fn(inputs)[0])
        return np.array(sum(float(np.sum(o * d)) for o, d in zip(outs, flat_dout)))

    errors, notes, shapes = {}, {}, {}
    for name in (names if names is not None else list(inputs)):
        x = inputs[name]
        shapes[name] = x.shape
        g = analytic.get(name) if isinstance(analytic, dict) else None
        if g is None:
            errors[name], notes[name] = float("inf"), "backward returned no gradient"
            continue
        g = np.asarray(g)
        if g.shape != x.shape:
            errors[name], notes[name] = float("inf"), f"gradient shape {g.shape} != input shape {x.shape}"
            continue
        errors[name] = rel_error(g, numerical_gradient(loss, x, h=h, order=order))
    return GradCheckReport(errors, notes, tol, shapes)
