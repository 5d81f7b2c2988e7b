"""Input validation with messages that say which argument, what was expected and what came.

Every public function of gated_lib validates its inputs through these helpers, so a learner who
passes (D, B) where (B, D) belongs reads::

    ShapeError: x: expected shape (B, D) = (4, 3), got (3, 4)

instead of a broadcasting error three calls deep.
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


def check_array(name: str, a, shape: tuple, dims: str | None = None, finite: bool = True) -> np.ndarray:
    """Return `a` as a floating ndarray after checking its shape.

    shape: expected sizes; ``None`` in a slot accepts any size there.
    dims:  the symbolic names of the axes, e.g. "(B, D)", used in the message.
    """
    if not isinstance(a, np.ndarray):
        try:
            a = np.asarray(a)
        except Exception as exc:  # noqa: BLE001 - we re-raise with the argument's name
            raise GatedLibError(f"{name}: expected an array, got {type(a).__name__}") from exc
    if a.dtype.kind not in "fc":
        if a.dtype.kind in "iub":
            a = a.astype(np.float64)
        else:
            raise DTypeError(f"{name}: expected a floating-point array, got dtype {a.dtype}")
    expected = _fmt(["?" if s is None else s for s in shape])
    label = f"{dims} = {expected}" if dims else expected
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        raise ShapeError(f"{name}: expected shape {label}, got {_fmt(a.shape)}")
    if finite and not np.all(np.isfinite(a)):
        raise NonFiniteError(f"{name}: contains NaN or inf (first at index {tuple(np.argwhere(~np.isfinite(a))[0])})")
    return a


def check_same_dtype(**arrays) -> np.dtype:
    """All named arrays (None skipped) must share one dtype; return it."""
    named = [(k, v) for k, v in arrays.items() if v is not None]
    dtypes = {np.asarray(v).dtype for _, v in named}
    if len(dtypes) > 1:
        listing = ", ".join(f"{k}: {np.asarray(v).dtype}" for k, v in named)
        raise DTypeError(f"mismatched dtypes, expected one floating dtype for all arrays, got {listing}")
    return dtypes.pop()
