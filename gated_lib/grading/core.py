"""What every exercise's checkers share.

* :func:`assert_close` / :func:`compare`: compare a learner's array with the expected one and say,
  in words, what differs: the shape (with the symbolic dims), the dtype, NaN or inf, or how many
  entries are off, the largest difference and where it is.
* :func:`tolerance`: the tolerances used for a dtype.
* :func:`call_student`: run a learner's function the way a test should: on copies of the inputs
  (and fail if it changes them in place), with numpy and Python warnings silenced and stderr
  swallowed (nbgrader scores a test cell that writes to stderr 0), and with the library's reference
  implementation *forbidden* (:class:`Forbidden`): while the learner's function runs, a profile hook
  records every call into gated_lib (outside the allowed helpers) and into torch's own LSTM, however
  it is reached, and the check fails if there was one.
* :func:`check_choice`: multiple-choice answers given as a set of letters.

Checkers built on these helpers raise :class:`GradingFailure` with the whole diagnosis in the
message, and never return a value (see :mod:`gated_lib.grading`).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "GradingFailure",
    "Forbidden",
    "tolerance",
    "compare",
    "assert_close",
    "matches",
    "fmt_shape",
    "call_student",
    "forbid_reference",
    "check_choice",
]


class GradingFailure(AssertionError):
    """A check failed; the message says what is wrong and, where it can, why."""


# ----------------------------------------------------------------------------------------------
# Tolerances and comparisons
# ----------------------------------------------------------------------------------------------

# Chosen so that every correct implementation passes (fused or per-gate products, any stable or
# naive sigmoid, float32 arithmetic over a few dozen time steps) and no real bug does: the smallest
# effect of the bugs the checkers diagnose is orders of magnitude larger.
_TOLERANCES = {
    np.dtype(np.float64): (1e-7, 1e-9),
    np.dtype(np.float32): (2e-4, 2e-5),
}


def tolerance(dtype) -> tuple[float, float]:
    """(rtol, atol) for comparing an array of `dtype` with a float64 expectation."""
    return _TOLERANCES.get(np.dtype(dtype), _TOLERANCES[np.dtype(np.float32)])


def fmt_shape(shape: Sequence[int]) -> str:
    """(3,) and (2, 4) the way Python prints them, for any sequence of ints."""
    shape = tuple(int(s) for s in shape)
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _fmt_index(name: str, index: tuple) -> str:
    return f"{name}[{', '.join(str(int(i)) for i in index)}]"


def _as_array(got: Any) -> np.ndarray | None:
    if hasattr(got, "detach") and hasattr(got, "cpu"):   # a torch tensor: compare its values
        got = got.detach().cpu().numpy()
    try:
        arr = np.asarray(got)
    except Exception:  # noqa: BLE001 - anything that is not array-like is reported by the caller
        return None
    return arr if arr.dtype.kind in "fiub" else None


def compare(name: str, got: Any, expected: np.ndarray, *, rtol: float, atol: float,
            dims: str | None = None, dtype=None) -> str | None:
    """None if `got` matches `expected`; otherwise a sentence saying what differs.

    name:  how the learner knows the array (``"h"``, ``"out"``).
    dims:  its symbolic shape (``"(B, H)"``), quoted when the shape is wrong.
    dtype: if given, `got` must have this dtype (the dtype of the inputs).
    Tolerance: entry-wise ``|got - expected| <= atol + rtol * |expected|``.
    """
    expected = np.asarray(expected)
    arr = _as_array(got)
    if arr is None:
        return f"{name} should be a numpy array of numbers, but it is {type(got).__name__}: {got!r:.80}"
    want = f"{dims} = {fmt_shape(expected.shape)}" if dims else fmt_shape(expected.shape)
    if arr.shape != expected.shape:
        msg = f"{name} has shape {fmt_shape(arr.shape)}, but it should have shape {want}."
        if arr.ndim == expected.ndim and arr.shape == expected.shape[::-1]:
            msg += " That is the transpose: rows are examples in this course."
        elif arr.size == expected.size:
            msg += " It has the right number of entries: check for a stray reshape or transpose."
        elif arr.ndim == expected.ndim + 1 and arr.shape[1:] == expected.shape:
            msg += " It has an extra leading axis: did you keep a per-step list where only the last step belongs?"
        return msg
    if dtype is not None and arr.dtype != np.dtype(dtype):
        return (f"{name} has dtype {arr.dtype}, but the inputs are {np.dtype(dtype)}: keep the inputs' dtype "
                f"(new arrays such as zeros need dtype=x.dtype).")
    arr = arr.astype(np.float64)
    exp = expected.astype(np.float64)
    nonfinite = ~np.isfinite(arr) & np.isfinite(exp)
    if nonfinite.any():
        idx = tuple(np.argwhere(nonfinite)[0])
        return (f"{name} contains {int(nonfinite.sum())} NaN/inf entries (the first at {_fmt_index(name, idx)}, "
                f"which should be {exp[idx]:.6g}). NaN from exp(a)/(1 + exp(a)) or inf - inf usually means an "
                f"overflow: use the numerically stable sigmoid provided.")
    diff = np.abs(arr - exp)
    bad = diff > atol + rtol * np.abs(exp)
    if not bad.any():
        return None
    idx = np.unravel_index(int(np.argmax(np.where(bad, diff, -1.0))), diff.shape)
    where = _fmt_index(name, idx) if arr.ndim else name
    return (f"{name}: {int(bad.sum())} of {bad.size} entries are off (tolerance |yours - expected| <= "
            f"{atol:g} + {rtol:g}*|expected|). The largest difference is {diff[idx]:.3g} at {where}: "
            f"you returned {arr[idx]:.6g}, expected {exp[idx]:.6g}.")


def matches(got: Any, expected: np.ndarray, rtol: float, atol: float) -> bool:
    """True if `got` has `expected`'s shape and is close to it (no message, never raises)."""
    arr = _as_array(got)
    if arr is None or arr.shape != np.shape(expected):
        return False
    with np.errstate(all="ignore"):
        return bool(np.allclose(arr.astype(np.float64), expected, rtol=rtol, atol=atol))


def assert_close(name: str, got: Any, expected: np.ndarray, rtol: float | None = None,
                 atol: float | None = None, *, dims: str | None = None, dtype=None,
                 context: str = "") -> None:
    """Raise :class:`GradingFailure` with :func:`compare`'s message unless `got` matches.

    rtol/atol default to :func:`tolerance` of `dtype` (or of `got`'s dtype).
    context: prepended to the message, e.g. ``"case 2 (B=1, D=3, H=1, float32)"``.
    """
    if rtol is None or atol is None:
        arr = _as_array(got)
        r, a = tolerance(dtype if dtype is not None else (arr.dtype if arr is not None else np.float64))
        rtol = r if rtol is None else rtol
        atol = a if atol is None else atol
    msg = compare(name, got, expected, rtol=rtol, atol=atol, dims=dims, dtype=dtype)
    if msg:
        raise GradingFailure(f"{context}: {msg}" if context else msg)


def random_gate_params(rng: np.random.Generator, D: int, H: int, gates: int, dtype,
                       saturate: bool = False) -> dict[str, np.ndarray]:
    """Random torch-layout parameters of a cell with ``gates`` stacked blocks of H rows.

    weight_ih (gates*H, D), weight_hh (gates*H, H), bias_ih and bias_hh (gates*H,), in ``dtype``;
    large enough that the gates are far from their linear regime. With ``saturate``, about half of
    the units get a pre-activation beyond +-700: those gates are exactly 0 or 1 and those tanh
    outputs exactly +-1 (float32 and float64); a naive 1 / (1 + exp(-a)) overflows (harmlessly,
    warnings are silenced) and exp(a) / (1 + exp(a)) gives NaN, which the checks report.
    """
    G = gates * H
    scale = 1.0 / np.sqrt(D + H)
    p = {
        "weight_ih": rng.normal(0.0, 1.5 * scale, (G, D)),
        "weight_hh": rng.normal(0.0, 1.5 * scale, (G, H)),
        "bias_ih": rng.normal(0.0, 0.5, G),
        "bias_hh": rng.normal(0.0, 0.5, G),
    }
    if saturate:
        units = rng.random(G) < 0.5
        p["bias_ih"] = np.where(units, rng.choice([-1.0, 1.0], G) * rng.uniform(720, 900, G), p["bias_ih"])
    return {k: v.astype(dtype) for k, v in p.items()}


def case_specs(rng: np.random.Generator, dtypes: Sequence[np.dtype], *, fixed: Sequence[dict] = (),
               n_random: int = 0, random_size: Callable | None = None, edge: Sequence[dict] = (),
               saturated: Sequence[dict] = ()) -> list[tuple[dict, np.dtype, bool]]:
    """(sizes, dtype, saturate) of every test case of a checker, in a fixed order.

    The fixed sizes come first (the first two in dtypes[0], the rest in dtypes[1] when there is
    one); then, per dtype, ``n_random`` sizes drawn by ``random_size(rng)``, the edge sizes, and the
    saturated sizes (saturate=True).
    """
    specs = [(sz, dtypes[0] if k < 2 or len(dtypes) == 1 else dtypes[1], False) for k, sz in enumerate(fixed)]
    for dt in dtypes:
        specs += [(random_size(rng), dt, False) for _ in range(n_random)]
        specs += [(sz, dt, False) for sz in edge]
        specs += [(sz, dt, True) for sz in saturated]
    return specs


def exclusive(bugs: Iterable[str], groups: Iterable[set]) -> bool:
    """True when `bugs` holds at most one bug of each group of mutually exclusive bugs (a combined
    mutant "gates in the wrong order" + "gates in another wrong order" is not a mistake anyone makes)."""
    return all(len(set(bugs) & g) <= 1 for g in groups)


def transposable(bug: str, D: int, H: int) -> bool:
    """Can transposed gate blocks of the fused weights be told apart at these sizes? Input blocks
    (H, D) transposed only fit when D == H, and any block with H = 1 is its own transpose."""
    if bug == "ih_blocks_T":
        return D == H > 1
    if bug == "hh_blocks_T":
        return H > 1
    return True


def case_label(dtype, saturate: bool = False, **sizes) -> str:
    """'B=2, D=3, H=4, float32, saturated gates': how a failure message names its test case."""
    dims = ", ".join(f"{k}={v}" for k, v in sizes.items())
    return f"{dims}, {np.dtype(dtype).name}{', saturated gates' if saturate else ''}"


# ----------------------------------------------------------------------------------------------
# Forbidding the reference
# ----------------------------------------------------------------------------------------------

# .../gated_lib/, as imported and with links resolved (co_filename holds the path as imported)
_LIBRARY_DIRS = tuple({str(Path(__file__).parents[1]) + os.sep, str(Path(__file__).resolve().parents[1]) + os.sep})


@dataclass(frozen=True)
class Forbidden:
    """What a learner's function may not call while a checker runs it.

    library:   forbid every function of gated_lib (its numpy reference, its torch path, the sequence
               machinery, the checkers' own implementations), except the helpers in `allow`.
    allow:     dotted module names (``"gated_lib.activations"``) or function names
               (``"split_gates"``) that stay allowed.
    torch:     names of torch's own implementations to forbid: for ``"lstm"`` the modules
               ``torch.nn.LSTM``/``LSTMCell`` and the functions ``torch.lstm``/``torch.lstm_cell``.
    """

    library: bool = True
    allow: tuple[str, ...] = ("gated_lib.activations", "gated_lib.errors")
    torch: tuple[str, ...] = ()


def _label(frame) -> str:
    code = frame.f_code
    module = frame.f_globals.get("__name__", "?")
    return f"{module}.{getattr(code, 'co_qualname', code.co_name)}"


class ProfileHook:
    """Base of the call monitors: a ``sys.setprofile`` hook that chains to the one it replaces.

    Subclasses implement ``watch(frame, event, arg)``; hooks entered one inside another all see
    every event (the inner one calls the outer one after itself).
    """

    _previous = None

    def watch(self, frame, event, arg) -> None:
        raise NotImplementedError

    def __call__(self, frame, event, arg):
        self.watch(frame, event, arg)
        if self._previous is not None:
            self._previous(frame, event, arg)

    def __enter__(self):
        self._previous = sys.getprofile()
        sys.setprofile(self)
        return self

    def __exit__(self, *exc):
        sys.setprofile(self._previous)
        return False


class _CallMonitor(ProfileHook):
    """A profile hook (sys.setprofile) that records calls into forbidden code.

    Watching calls instead of replacing functions catches every route into the library: aliases,
    closures, lazy imports, objects that hold the function (a Cell, a torch Module), private helpers.
    It records and never raises, so the learner's code runs to completion; the check fails afterwards.
    """

    def __init__(self, rule: Forbidden):
        self.rule = rule
        self.calls: list[str] = []
        self.torch_classes = {n.upper() for n in rule.torch} | {n.upper() + "CELL" for n in rule.torch}
        self.torch_functions = set(rule.torch) | {n + "_cell" for n in rule.torch}
        self._inside = None

    def _allowed(self, label: str, module: str, name: str) -> bool:
        if module == __name__:            # the monitor's own exit path
            return True
        return any(module == a or module.startswith(a + ".") or name == a or label == a for a in self.rule.allow)

    def watch(self, frame, event, arg):
        # Only the outermost library frame counts: what an allowed helper or a forbidden function
        # calls internally is not looked at (self._inside holds that frame while it runs).
        if self._inside is not None:
            if event == "return" and frame is self._inside:
                self._inside = None
        elif event == "call":
            filename = frame.f_code.co_filename
            if self.rule.library and filename.startswith(_LIBRARY_DIRS):
                self._inside = frame
                module = frame.f_globals.get("__name__", "")
                if not self._allowed(_label(frame), module, frame.f_code.co_name):
                    self.calls.append(_label(frame))
            elif self.torch_classes and filename.replace(os.sep, "/").endswith("torch/nn/modules/rnn.py"):
                owner = frame.f_locals.get("self")
                if owner is not None and {k.__name__.upper() for k in type(owner).__mro__} & self.torch_classes:
                    self._inside = frame
                    self.calls.append(f"torch.nn.{type(owner).__name__}")
        elif event == "c_call" and _escape_label(arg):
            # switching the monitor off, or running code where it cannot see (a thread, a process)
            self.calls.append(_escape_label(arg))
        elif event == "c_call" and self.torch_functions:
            if getattr(arg, "__name__", "") in self.torch_functions and \
                    "torch" in str(getattr(arg, "__module__", "") or getattr(arg, "__self__", "")):
                self.calls.append(f"torch.{arg.__name__}")


# Builtins a learner's function could use to hide a call from the monitor: removing the profile hook,
# or running the reference in a thread or another process (which the hook does not follow).
_ESCAPES = {
    ("sys", "setprofile"): "sys.setprofile (it switches off the check that forbids the reference)",
    ("_thread", "start_new_thread"): "a new thread (the check cannot see into it)",
    ("_thread", "start_new"): "a new thread (the check cannot see into it)",
    ("posix", "fork"): "os.fork (the check cannot see into another process)",
    ("posix", "forkpty"): "os.forkpty (the check cannot see into another process)",
    ("posix", "posix_spawn"): "os.posix_spawn (the check cannot see into another process)",
    ("posix", "posix_spawnp"): "os.posix_spawnp (the check cannot see into another process)",
    ("posix", "system"): "os.system (the check cannot see into another process)",
    ("_posixsubprocess", "fork_exec"): "a subprocess (the check cannot see into another process)",
}


def _escape_label(fn) -> str | None:
    name = getattr(fn, "__name__", None)
    module = getattr(fn, "__module__", None) or getattr(getattr(fn, "__self__", None), "__name__", None)
    return _ESCAPES.get((module, name)) if name else None


@contextlib.contextmanager
def forbid_reference(rule: Forbidden | None):
    """While active, record every call into what `rule` forbids; yields the list of labels.

    ``with forbid_reference(rule) as calls: fn(...)`` then ``if calls: fail``. The list keeps the
    labels (``gated_lib.lstm.lstm_cell_forward``, ``torch.nn.LSTMCell``) of the calls made.
    """
    if rule is None:
        yield []
        return
    monitor = _CallMonitor(rule)
    with monitor:
        yield monitor.calls
        if sys.getprofile() is not monitor:   # replaced without a visible call (e.g. from C)
            monitor.calls.append(_ESCAPES[("sys", "setprofile")])


# ----------------------------------------------------------------------------------------------
# Calling a learner's function
# ----------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet():
    """No numpy floating-point warnings, no Python warnings, nothing on stderr."""
    with np.errstate(all="ignore"), warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def call_student(fn: Callable, args: Sequence = (), kwargs: Mapping | None = None, *, fn_name: str,
                 case: str = "", forbid: Forbidden | None = None, hint: str = "") -> Any:
    """Call ``fn(*args, **kwargs)`` as a test should, and return what it returned.

    * numpy arrays among the arguments are passed as copies; if the function changes one of them
      in place, the check fails and says which.
    * numpy and Python warnings are silenced and stderr is swallowed during the call (the result is
      still checked): nbgrader would score the test cell 0 for a warning.
    * calls into what `forbid` forbids are recorded (:func:`forbid_reference`); if there was one,
      the check fails with a message that names it.
    * an exception in the learner's code becomes a :class:`GradingFailure` that names the case and
      adds `hint`; the learner's traceback stays attached (``raise ... from``).
    """
    __tracebackhide__ = True          # IPython and pytest: show the learner's frames, not this one
    kwargs = dict(kwargs or {})
    if not callable(fn):
        raise GradingFailure(f"{fn_name} should be a function, but it is {type(fn).__name__}.")
    where = f" on {case}" if case else ""
    a = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
    k = {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in kwargs.items()}
    with _quiet(), forbid_reference(forbid) as calls:
        try:
            out = fn(*a, **k)
            failed = None
        except NotImplementedError as exc:
            failed = exc
        except Exception as exc:  # noqa: BLE001 - reported to the learner with its traceback
            failed = exc
    if calls:
        used = ", ".join(dict.fromkeys(calls))
        raise GradingFailure(
            f"{fn_name} calls {used}: a reference implementation of what this exercise asks you to "
            f"write. The tests compare against that reference, so calling it proves nothing; write the "
            f"computation yourself with numpy (and the helpers the notebook gives you).")
    if isinstance(failed, NotImplementedError):
        raise GradingFailure(f"{fn_name} is not implemented yet: it raised NotImplementedError. "
                             f"Replace the `raise NotImplementedError()` line with your code.") from failed
    if failed is not None:
        msg = f"{fn_name} raised {_first_line(failed)}{where}."
        if hint:
            msg += "\n" + hint
        raise GradingFailure(msg) from failed
    for i, (orig, passed) in enumerate(zip(args, a)):
        if isinstance(orig, np.ndarray) and not np.array_equal(orig, passed, equal_nan=True):
            name = _arg_name(fn, i)
            raise GradingFailure(f"{fn_name} changed its input {name} in place{where} (an in-place "
                                 f"operation such as `{name} *= ...` or `{name}[...] = ...`). Build new "
                                 f"arrays instead: the caller still needs {name}.")
    for n, orig in kwargs.items():
        if isinstance(orig, np.ndarray) and not np.array_equal(orig, k[n], equal_nan=True):
            raise GradingFailure(f"{fn_name} changed its input {n} in place{where}. Build new arrays "
                                 f"instead: the caller still needs {n}.")
    return out


def _arg_name(fn: Callable, i: int) -> str:
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()]
        return params[i] if i < len(params) else f"argument {i + 1}"
    except (TypeError, ValueError):
        return f"argument {i + 1}"


# ----------------------------------------------------------------------------------------------
# Multiple choice
# ----------------------------------------------------------------------------------------------

def _letters(answer: Any) -> set[str] | None:
    if isinstance(answer, str):
        parts = [p for p in re.split(r"[\s,;]+", answer.strip()) if p]
        if len(parts) == 1 and len(parts[0]) > 1 and parts[0].isalpha():
            parts = list(parts[0])          # "ac" -> {"a", "c"}
        items = parts
    elif isinstance(answer, (set, frozenset, list, tuple)):
        items = list(answer)
    else:
        return None
    if not all(isinstance(x, str) for x in items):
        return None
    return {x.strip().lower() for x in items}


def check_choice(name: str, answer: Any, allowed: Iterable[str], expected: Iterable[str] | None = None) -> None:
    """Check a multiple-choice answer given as a set of letters, e.g. ``{"a", "c"}``.

    Without `expected` (the visible test), only the form is checked, so the test reveals nothing.
    With it (the hidden test, whose key stays in the instructor's notebook), the set must be exact;
    the message says how many statements were classified correctly, not which.
    """
    allowed = sorted({a.lower() for a in allowed})
    got = _letters(answer)
    example = "{" + ", ".join(repr(x) for x in allowed[:2]) + "}"
    if got is None:
        raise GradingFailure(f"{name} should be a set of letters such as {example}, but it is "
                             f"{type(answer).__name__}: {answer!r:.60}.")
    unknown = sorted(got - set(allowed))
    if unknown:
        raise GradingFailure(f"{name} contains {unknown}, which are not among the statements "
                             f"({', '.join(allowed)}).")
    if not got:
        raise GradingFailure(f"{name} is empty: at least one statement is true; pick every true one.")
    if expected is not None:
        want = {e.lower() for e in expected}
        if got != want:
            right = sum((x in got) == (x in want) for x in allowed)
            raise GradingFailure(f"{name} is not right: {right} of the {len(allowed)} statements are "
                                 f"classified correctly (you marked {sorted(got)} as true).")
    print(f"{name}: well-formed answer {sorted(got)}." if expected is None else f"{name}: correct.")
