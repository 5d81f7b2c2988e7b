"""Input validation with messages that say which argument, what was expected and what came.

Every public function of gated_lib validates its inputs through these helpers, so a learner who
passes (D, B) where (B, D) belongs reads::

    ShapeError: x: expected shape (B, D) = (4, 3), got (3, 4)

instead of a broadcasting error three calls deep. The four error classes are all ``GatedLibError``,
itself a ``ValueError`` (so ``except ValueError`` still works):

* ``ShapeError``     wrong number of dimensions, wrong size along an axis, or an empty sequence (T = 0)
* ``DTypeError``     a non-floating array, or arrays that must share one dtype and do not
* ``NonFiniteError`` an input holds NaN or inf
* ``GatedLibError``  anything else about the arguments (a missing or unknown parameter name, ...)
"""

from __future__ import annotations

import numpy as np


class GatedLibError(ValueError):
    """Base class of gated_lib's input errors (a ValueError, so `except ValueError` still works)."""


class ShapeError(GatedLibError):
    """An array has the wrong number of dimensions or the wrong size along one of them."""


class DTypeError(GatedLibError):
    """Arrays that must share a floating dtype do not."""


class NonFiniteError(GatedLibError):
    """An input holds NaN or inf."""


def _fmt(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _dim_names(dims: str | None, n: int) -> list[str] | None:
    if not dims:
        return None
    names = [s.strip() for s in dims.strip().strip("()").split(",") if s.strip()]
    return names if len(names) == n else None


def check_array(name: str, a, shape: tuple, dims: str | None = None, finite: bool = True) -> np.ndarray:
    """Return `a` as a floating ndarray after checking its shape.

    shape:  expected sizes; ``None`` in a slot accepts any size there.
    dims:   the symbolic names of the axes, e.g. "(B, D)", used in the message.
    finite: also reject NaN and inf (``NonFiniteError``).

    Integer and boolean arrays are converted to float64; any other dtype is a ``DTypeError``.
    """
    if not isinstance(a, np.ndarray):
        try:
            a = np.asarray(a)
        except Exception as exc:  # noqa: BLE001 - we re-raise with the argument's name
            raise GatedLibError(f"{name}: expected an array, got {type(a).__name__}") from exc
    if a.dtype.kind != "f":
        if a.dtype.kind in "iub":
            a = a.astype(np.float64)
        else:
            raise DTypeError(f"{name}: expected a floating-point array, got dtype {a.dtype}")
    names = _dim_names(dims, len(shape))
    # An unconstrained axis shows its symbol ("T") rather than "?", so the message reads like the docs.
    expected = _fmt([(names[k] if names else "?") if s is None else s for k, s in enumerate(shape)])
    label = f"{dims} = {expected}" if dims and expected != _fmt(names or []) else (dims or expected)
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        raise ShapeError(f"{name}: expected shape {label}, got {_fmt(a.shape)}")
    if finite:
        check_finite(name, a)
    return a


def check_finite(name: str, a: np.ndarray) -> np.ndarray:
    """Raise ``NonFiniteError`` naming `name` and the first bad index if `a` holds NaN or inf."""
    if not np.all(np.isfinite(a)):
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise NonFiniteError(f"{name}: contains NaN or inf (first at index {first}: {a[first]})")
    return a


def check_sequence(name: str, x, D: int | None = None) -> np.ndarray:
    """A time-major sequence (T, B, D) with T >= 1 (``ShapeError`` otherwise)."""
    x = x if isinstance(x, np.ndarray) else np.asarray(x)
    if x.ndim == 3 and x.shape[0] == 0:
        raise ShapeError(f"{name}: expected at least one time step (T >= 1) in shape (T, B, D), "
                         f"got T = 0 (shape {_fmt(x.shape)})")
    return check_array(name, x, (None, None, D), "(T, B, D)")


def check_same_dtype(**arrays) -> np.dtype:
    """All named arrays (None skipped) must share one dtype; return it."""
    named = [(k, v) for k, v in arrays.items() if v is not None]
    dtypes = {np.asarray(v).dtype for _, v in named}
    if len(dtypes) > 1:
        listing = ", ".join(f"{k}: {np.asarray(v).dtype}" for k, v in named)
        raise DTypeError(f"mismatched dtypes, expected one floating dtype for all arrays, got {listing}")
    return dtypes.pop()
