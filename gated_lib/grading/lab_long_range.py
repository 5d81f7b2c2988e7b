"""Checkers for exercise 7 (lab I, long-range memory): the adding problem's data, a training step with
clipping, the 1997 success criterion, and a short deterministic run.

The learner's API (time-major, torch for the model, numpy for the data)::

    adding_batch(batch_size, T, rng)                  -> (x, y)    x (T, B, 2) float32, y (B,) float32
    train_step(model, optimizer, x, y, max_norm)      -> (loss, grad_norm)        two floats
    fraction_correct(pred, y, tol=0.04)               -> float in [0, 1]
    train_adding(model, T, steps, batch_size=64, lr=1e-2, max_norm=1.0, seed=0) -> {"loss": [...], "grad_norm": [...]}

The adding problem (Hochreiter & Schmidhuber 1997, experiment 4, at a fixed length T >= 20, as
``gated_lib.tasks.adding_problem(..., variable_length=False)``): x[t, b] = (value, marker); values
U[-1, 1]; exactly two markers 1, one among the first ten pairs (X1) and one among the first T//2 pairs
other than that one (X2); marker -1 on the first and the last pair unless marked, 0 elsewhere; a marked
first pair has value 0 (the paper's rule); y = 0.5 + (X1 + X2) / 4.

train_step: model(x) -> pred (B, 1); loss = mean over the batch of (pred[:, 0] - y)^2; clear the
gradients, backward, clip by norm (Pascanu et al. 2013: g <- max_norm g / ||g|| if ||g|| > max_norm,
||g|| the L2 norm of all parameters' gradients together), optimizer step; return the loss and ||g||
*before* clipping.

fraction_correct: the fraction of sequences b with |pred[b, 0] - y[b]| < tol (strictly).

Checkers:

* :func:`check_adding_batch`: the structure of single batches (shapes, dtypes, exactly two markers
  where the definition puts them, the -1 end markers, the first-pair rule, the target from the
  marked values; a target off by an offset or a scale is named with the numbers it matches), and that
  every draw comes from the rng it is given.
* :func:`check_adding_statistics`: many sequences at once: how often each position is marked against
  the exact probabilities, the target's mean 0.5 and variance (``adding_target_moments``), the values'
  U[-1, 1] moments and range.
* :func:`check_train_step`: two consecutive steps with SGD on a copy of a model, compared with the
  reference step; on a mismatch the learner's numbers are compared with *mutated* steps (clipping after
  the optimizer step or not at all, by value, the post-clip norm returned, the gradients not cleared,
  (B, 1) - (B,) broadcasting in the loss, always rescaling to max_norm) to name the mistake.
* :func:`check_fraction_correct`: built predictions with errors around the tolerance, exact ties;
  mutations (<= for <, a tolerance of 0.4, the mean error, squared errors, (B, 1) vs (B,) broadcasting,
  a count, a percentage, tol ignored) are named.
* :func:`check_short_run`: the learner's loop trains :func:`make_model` at a small T; the trained model
  must reach a threshold on a fixed validation set, measured here with the 1997 criterion.

While the learner's functions run, the library's reference is forbidden (gated_lib.tasks, .training,
.clipping, everything else in gated_lib) except gated_lib.nn, which the model itself is built from.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gated_lib.grading.core import Forbidden, GradingFailure, call_student
from gated_lib.tasks.memory import adding_problem as _adding_ref
from gated_lib.tasks.memory import adding_target_moments

__all__ = [
    "FORBID",
    "STEP_BUGS",
    "CRITERION_BUGS",
    "check_adding_batch",
    "check_adding_statistics",
    "check_fraction_correct",
    "check_short_run",
    "check_train_step",
    "make_model",
    "validation_fraction",
]

#: The model (gated_lib.nn) may run; the tasks, the training loop and the clipping of the library may not.
FORBID = Forbidden(allow=("gated_lib.activations", "gated_lib.errors", "gated_lib.nn"))

TOL = 0.04


def _fail(msg: str):
    raise GradingFailure(msg)


def _scalar(value, what: str, call: str) -> float:
    """A learner's scalar (float, numpy or torch 0-d) as a float, or a failure saying what it is."""
    if hasattr(value, "detach"):
        value = value.detach()
    if hasattr(value, "numel") and callable(value.numel) and value.numel() == 1:
        value = value.reshape(()).cpu().item()
    elif isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(f"{call}: {what} should be a number (a Python float), but it is {type(value).__name__}: {value!r:.80}")
    return float(value)


# ==================================================================================================
# A. The generator
# ==================================================================================================

def _unpack_batch(out, call: str, B: int, T: int):
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        _fail(f"{call} should return a pair (x, y), but it returned {type(out).__name__}"
              + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "") + ".")
    x, y = out
    for name, a, shape, dims in (("x", x, (T, B, 2), "(T, B, 2)"), ("y", y, (B,), "(B,)")):
        if not isinstance(a, np.ndarray):
            _fail(f"{call}: {name} should be a numpy array, but it is {type(a).__name__}"
                  + (" (the data is made with numpy; the training loop converts it to torch)" if hasattr(a, "detach") else "") + ".")
        if a.shape != shape:
            hint = ""
            if name == "x" and a.shape == (B, T, 2):
                hint = " That is batch-first: sequences are time-major in this course, x[t, b]."
            elif name == "x" and a.shape == (T, B):
                hint = " The marker channel is missing: each step is a pair (value, marker)."
            elif name == "y" and a.shape == (B, 1):
                hint = " One target per sequence, as a vector (B,)."
            _fail(f"{call}: {name} has shape {a.shape}, but it should have shape {dims} = {shape}.{hint}")
        if a.dtype != np.float32:
            _fail(f"{call}: {name} has dtype {a.dtype}, but it should be float32 (the course's dtype for "
                  f"training data: .astype(np.float32)).")
    return x, y


def _structure_problems(x: np.ndarray, y: np.ndarray, T: int) -> str | None:
    """The first violation of the definition in one batch, as a sentence (None if there is none)."""
    B = x.shape[1]
    values, markers = x[..., 0].astype(np.float64), x[..., 1].astype(np.float64)
    half = T // 2
    if not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)):
        return "x or y contains NaN or inf."
    odd = ~np.isin(markers, (-1.0, 0.0, 1.0))
    if odd.any():
        t, b = np.argwhere(odd)[0]
        return f"the marker x[{t}, {b}, 1] is {markers[t, b]:g}; markers are 1 (marked), -1 (first and last pair) or 0."
    ones = (markers == 1.0).sum(0)
    for b in range(B):
        if ones[b] != 2:
            where = np.flatnonzero(markers[:, b] == 1.0).tolist()
            msg = (f"sequence b={b} has {int(ones[b])} marker(s) equal to 1 (at t = {where}), but every sequence "
                   f"has exactly two.")
            if ones[b] == 1:
                msg += (" If you draw the second position independently of the first, it lands on the first with "
                        f"probability 1/{half} and the two markers become one: draw it among the first T//2 pairs "
                        f"*other than* the first marker's (T//2 - 1 choices).")
            return msg
    pos = np.sort(np.argwhere(markers.T == 1.0)[:, 1].reshape(B, 2), axis=1)     # (B, 2), ascending
    for b in range(B):
        a, c = pos[b]
        if a >= 10:
            return (f"sequence b={b} is marked at t = {a} and {c}: neither is among the first ten pairs (t < 10), "
                    f"where the first marker (X1) goes.")
        if c >= half:
            return (f"sequence b={b} is marked at t = {a} and {c}, with T = {T}: the second marker (X2) must be among "
                    f"the first T//2 = {half} pairs (t < {half}), not anywhere in the sequence.")
    for t, label in ((0, "first"), (T - 1, "last")):
        unmarked = markers[t] != 1.0
        wrong = unmarked & (markers[t] != -1.0)
        if wrong.any():
            b = int(np.flatnonzero(wrong)[0])
            return (f"the {label} pair x[{t}, {b}] has marker {markers[t, b]:g}: the {label} pair of every sequence "
                    f"carries marker -1 (unless it is marked with 1).")
    inner = markers[1:T - 1]
    stray = inner == -1.0
    if stray.any():
        t, b = np.argwhere(stray)[0]
        return f"x[{t + 1}, {b}, 1] is -1: only the first and the last pair carry -1; every unmarked pair between is 0."
    if np.any(np.abs(values) > 1.0):
        t, b = np.argwhere(np.abs(values) > 1.0)[0]
        return f"the value x[{t}, {b}, 0] = {values[t, b]:.4g} is outside [-1, 1]; values are drawn from U[-1, 1]."
    first_marked = markers[0] == 1.0
    if np.any(first_marked & (values[0] != 0.0)):
        b = int(np.flatnonzero(first_marked & (values[0] != 0.0))[0])
        return (f"sequence b={b} is marked on its first pair, whose value is {values[0, b]:.4g}: the paper's rule "
                f"sets a marked first pair's value to 0 (\"in the rare case where the first pair of the sequence "
                f"gets marked, we set X1 to zero\"). Set it to 0 before computing y.")
    s = values[pos[:, 0], np.arange(B)] + values[pos[:, 1], np.arange(B)]      # X1 + X2
    want = 0.5 + s / 4.0
    bad = np.abs(y - want) > 2e-6 + 1e-6 * np.abs(want)
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        msg = (f"y[{b}] = {y[b]:.6g}, but the two marked values of sequence b={b} are X1 + X2 = {s[b]:.6g}, so "
               f"y should be 0.5 + (X1 + X2)/4 = {want[b]:.6g}.")
        return msg + _target_diagnosis(s, y.astype(np.float64), values, markers, first_marked)
    return None


def _target_diagnosis(s, y, values, markers, first_marked) -> str:
    """What the learner's y is, if it is an affine function of X1 + X2 (or uses the unzeroed first value)."""
    if len(s) >= 3 and np.ptp(s) > 1e-3:
        A = np.stack([np.ones_like(s), s], 1)
        (a, k), *_ = np.linalg.lstsq(A, y, rcond=None)
        if np.allclose(a + k * s, y, atol=2e-6, rtol=1e-6):
            named = {(0.0, 0.25): "the 0.5 offset is missing: y = (X1 + X2)/4",
                     (0.5, 0.5): "the scale is /2, not /4: y = 0.5 + (X1 + X2)/2",
                     (0.5, 1.0): "the /4 scale is missing: y = 0.5 + (X1 + X2)",
                     (0.0, 1.0): "y is the plain sum X1 + X2, without the 0.5 offset and the /4 scale",
                     (0.0, 0.5): "y = (X1 + X2)/2: neither the 0.5 offset nor the /4 scale",
                     (0.5, 0.125): "the scale is /8, not /4"}
            for (a0, k0), text in named.items():
                if abs(a - a0) < 1e-4 and abs(k - k0) < 1e-4:
                    return f"\nOn this batch your y matches {text}. The target maps X1 + X2 in [-2, 2] to [0, 1]."
            return (f"\nOn this batch your y is {a:.4g} + {k:.4g} (X1 + X2); the target is 0.5 + 0.25 (X1 + X2), "
                    f"which maps X1 + X2 in [-2, 2] to [0, 1].")
    return ("\nCheck that y reads the values at the two positions marked 1 (x[t, b, 0] where x[t, b, 1] == 1), "
            "after setting a marked first pair's value to 0.")


def _call_batch(fn, B, T, seed, fn_name):
    call = f"{fn_name}(batch_size={B}, T={T}, rng=np.random.default_rng({seed}))"
    out = call_student(fn, (B, T, np.random.default_rng(seed)), fn_name=fn_name, case=call, forbid=FORBID,
                       hint="Run this call in a cell of its own to see where it fails.")
    return call, out


def check_adding_batch(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                       fn_name: str = "adding_batch") -> None:
    """The structure of single batches, and that the batch is a function of the rng alone."""
    cases = [(16, 20), (8, 100), (1, 30), (64, 21)] if fixed else []
    rng = np.random.default_rng(seed)
    for _ in range(n_random):
        cases.append((int(rng.choice([1, 2, int(rng.integers(3, 200))])), int(rng.integers(20, 161))))
    for k, (B, T) in enumerate(cases):
        call, out = _call_batch(fn, B, T, seed + 1000 * k, fn_name)
        x, y = _unpack_batch(out, call, B, T)
        problem = _structure_problems(x, y, T)
        if problem:
            _fail(f"{call}: {problem}")
    # the same rng state gives the same batch; another seed another batch
    _, a = _call_batch(fn, 32, 40, seed + 7, fn_name)
    _, b = _call_batch(fn, 32, 40, seed + 7, fn_name)
    _, c = _call_batch(fn, 32, 40, seed + 8, fn_name)
    if not (np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])):
        _fail(f"{fn_name} returned different batches for two generators with the same seed: it draws from a global "
              f"random state (np.random.uniform, np.random.randint, torch.rand, random...). Draw every random "
              f"number from the rng you are given (rng.uniform, rng.integers), so that a seed fixes the data.")
    if np.array_equal(a[0], c[0]):
        _fail(f"{fn_name} returned the same batch for two different seeds: draw from the rng you are given.")
    print(f"{fn_name}: {len(cases)} batches follow the 1997 definition (B = "
          f"{', '.join(str(B) for B, _ in cases[:6])}{', ...' if len(cases) > 6 else ''}); the rng decides the data.")


def marker_probabilities(T: int) -> np.ndarray:
    """P(pair t is marked with 1), t = 0 .. T//2 - 1: 1/10 + (9/10)/(T//2 - 1) for t < 10, 1/(T//2 - 1) after."""
    half = T // 2
    p = np.full(half, 1.0 / (half - 1))
    p[:10] = 0.1 + 0.9 / (half - 1)
    return p


def check_adding_statistics(fn: Callable, *, seed: int = 0, T: int = 40, n: int = 60_000,
                            fn_name: str = "adding_batch") -> None:
    """n sequences at once: marking frequencies, the target's mean and variance, the values' moments.

    Each statistic is compared with its exact value within 5 standard errors (a correct generator fails
    one of the six checks about once in 300,000 runs).
    """
    call, out = _call_batch(fn, n, T, seed, fn_name)
    x, y = _unpack_batch(out, call, n, T)
    problem = _structure_problems(x, y, T)
    if problem:
        _fail(f"{call}: {problem}")
    values, markers = x[..., 0].astype(np.float64), x[..., 1].astype(np.float64)
    half = T // 2
    freq = (markers[:half] == 1.0).mean(1)
    p = marker_probabilities(T)
    z = (freq - p) / np.sqrt(p * (1 - p) / n)
    t = int(np.argmax(np.abs(z)))
    if abs(z[t]) > 5 + 0.5 * math.log(half):          # Bonferroni-ish margin over the T//2 positions
        _fail(f"{call}: pair t={t} is marked in {freq[t]:.4f} of the sequences, but the definition marks it with "
              f"probability {p[t]:.4f} ({z[t]:+.1f} standard errors). With X1 uniform over the first ten pairs and "
              f"X2 uniform over the other T//2 - 1 of the first T//2, P(t marked) = 1/10 + (9/10)/(T//2 - 1) = "
              f"{p[0]:.4f} for t < 10 and 1/(T//2 - 1) = {p[-1]:.4f} for 10 <= t < T//2.")
    mean, var = adding_target_moments(T, zero_first=True)
    m, v = float(y.mean()), float(y.var())
    se_m = math.sqrt(var / n)
    se_v = math.sqrt(max(float(((y - m) ** 2).var()), 1e-12) / n)
    if abs(m - mean) > 5 * se_m:
        _fail(f"{call}: the mean of y over {n:,} sequences is {m:.5f}, but it should be {mean} "
              f"(E[0.5 + (X1 + X2)/4] = 0.5; standard error {se_m:.1e}).")
    if abs(v - var) > 5 * se_v:
        _fail(f"{call}: the variance of y over {n:,} sequences is {v:.5f}, but the definition gives {var:.5f} "
              f"(gated_lib.tasks.adding_target_moments({T}); standard error {se_v:.1e}). With X1, X2 iid U[-1, 1] "
              f"it would be 1/24 = {1 / 24:.5f}; the first-pair rule lowers it slightly.")
    free = values[markers == 0.0]
    checks = [("mean", free.mean(), 0.0, math.sqrt(1 / 3 / free.size)),
              ("variance", free.var(), 1 / 3, math.sqrt((1 / 5 - 1 / 9) / free.size))]
    for what, got, want, se in checks:
        if abs(got - want) > 5 * se:
            _fail(f"{call}: the unmarked values have {what} {got:.4f}, but U[-1, 1] has {what} {want:.4f}: "
                  f"draw the values with rng.uniform(-1, 1, size=...).")
    if free.min() > -0.999 or free.max() < 0.999:
        _fail(f"{call}: the values range over [{free.min():.3f}, {free.max():.3f}]: U[-1, 1] reaches both ends.")
    print(f"{fn_name}: {n:,} sequences at T = {T}: marking frequencies, target mean and variance, and the values' "
          f"distribution agree with the definition.")


# ==================================================================================================
# B. The training step
# ==================================================================================================

#: Mutations of the training step, each a sentence.
STEP_BUGS: dict[str, str] = {
    "no_clip": ("the gradient is not clipped at all: the parameters moved by the unclipped gradient. Rescale the "
                "gradients between loss.backward() and optimizer.step()."),
    "clip_after_step": ("the gradient is clipped *after* optimizer.step(): the step used the unclipped gradient, so "
                        "clipping had no effect on the parameters. Clip between loss.backward() and optimizer.step()."),
    "clip_value": ("the gradient is clipped by value (each component clamped to [-max_norm, max_norm], as "
                   "clip_grad_value_ does): this step clips by norm, g <- max_norm * g / ||g|| when ||g|| > max_norm, "
                   "one factor for all parameters, which keeps the gradient's direction."),
    "post_norm": ("the returned norm is the norm *after* clipping (it equals max_norm whenever clipping acted): return "
                  "||g|| computed before clipping, which is what a gradient-norm trace must show."),
    "no_zero_grad": ("the gradients are never cleared: loss.backward() *adds* to .grad, so from the second step on the "
                     "gradient is the sum of every step's so far. Call optimizer.zero_grad() before loss.backward()."),
    "broadcast": ("the loss compares pred (B, 1) with y (B,): broadcasting makes a (B, B) matrix of every prediction "
                  "against every target. Use pred[:, 0] (or pred.squeeze(-1)) against y."),
    "always_rescale": ("the gradient is rescaled to norm max_norm even when its norm is below max_norm: clipping only "
                       "acts when ||g|| > max_norm."),
    "per_parameter": ("each parameter's gradient is clipped by its own norm: Pascanu et al.'s rule uses one global norm "
                      "over all parameters' gradients together."),
}


@dataclass
class StepCase:
    cell: str
    B: int
    T: int
    H: int
    dtype: str
    clip: str                 # "active" (max_norm below ||g||) or "inactive"
    seed: int

    def label(self) -> str:
        return (f"{self.cell.upper()} H={self.H}, B={self.B}, T={self.T}, {self.dtype}, "
                f"{'clipping active' if self.clip == 'active' else 'norm below max_norm'}")


def _torch():
    import torch
    return torch


def _model(cell: str, H: int, dtype: str, seed: int, forget_bias=None):
    torch = _torch()
    from gated_lib.nn.models import ModelConfig, SequenceModel

    torch.manual_seed(seed)
    model = SequenceModel(ModelConfig(cell=cell, input_size=2, hidden_size=H, output_size=1, readout="last",
                                      forget_bias=forget_bias))
    return model.to(dtype=getattr(torch, dtype))


def make_model(seed: int = 0, hidden_size: int = 32, cell: str = "lstm", forget_bias: float | None = 5.0):
    """The model the exercise trains: input 2 -> LSTM(hidden_size) -> Linear(1) at the last step, float32.

    forget_bias 5 (the effective forget bias, as gated_lib.tasks.AddingProblem's default): f = 0.993 at
    the start, close to the 1997 cell without a forget gate. model(x) maps x (T, B, 2) to pred (B, 1).
    """
    return _model(cell, hidden_size, "float32", seed, forget_bias if cell.endswith("lstm") else None)


def _step_batches(case: StepCase):
    torch = _torch()
    rng = np.random.default_rng(case.seed)
    dt = getattr(torch, case.dtype)
    out = []
    for _ in range(2):
        x, y, _ = _adding_ref(case.B, case.T, rng, variable_length=False)
        out.append((torch.from_numpy(x).to(dt), torch.from_numpy(y).to(dt)))
    return out


def _grad_list(model):
    return [p.grad for p in model.parameters() if p.grad is not None]


def _reference_steps(model, batches, max_norm: float, lr: float, bug: str | None = None):
    """[(loss, returned norm, params after, grads after)] of consecutive steps, with the mistake `bug`."""
    torch = _torch()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    out = []
    for x, y in batches:
        if bug != "no_zero_grad":
            opt.zero_grad(set_to_none=True)
        pred = model(x)
        loss = ((pred - y) ** 2).mean() if bug == "broadcast" else ((pred[:, 0] - y) ** 2).mean()
        loss.backward()
        grads = _grad_list(model)
        with torch.no_grad():
            norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))

            def clip_norm():
                if norm > max_norm:
                    for g in grads:
                        g.mul_(max_norm / norm)

            if bug == "clip_value":
                for g in grads:
                    g.clamp_(-max_norm, max_norm)
            elif bug == "always_rescale":
                for g in grads:
                    g.mul_(max_norm / norm)
            elif bug == "per_parameter":
                for g in grads:
                    n = float(g.double().norm())
                    if n > max_norm:
                        g.mul_(max_norm / n)
            elif bug not in ("no_clip", "clip_after_step"):
                clip_norm()
        opt.step()
        if bug == "clip_after_step":
            with torch.no_grad():
                clip_norm()
        returned = min(norm, max_norm) if bug == "post_norm" else norm
        out.append((float(loss.detach()), returned,
                    [p.detach().double().clone() for p in model.parameters()],
                    [None if p.grad is None else p.grad.detach().double().clone() for p in model.parameters()]))
    return out


def _step_tolerance(dtype: str) -> tuple[float, float]:
    # torch.nn.utils.clip_grad_norm_ divides by ||g|| + 1e-6: a relative 1e-6 of the update is accepted
    return (1e-6, 1e-8) if dtype == "float64" else (1e-4, 1e-6)


def _params_close(a, b, rtol, atol) -> bool:
    torch = _torch()
    return all(torch.allclose(x, y, rtol=rtol, atol=atol) for x, y in zip(a, b))


def _step_matches(got, ref, rtol, atol, check_norm=True) -> bool:
    for (gl, gn, gp, _), (rl, rn, rp, _) in zip(got, ref):
        if not math.isclose(gl, rl, rel_tol=rtol * 10, abs_tol=atol):
            return False
        if check_norm and not math.isclose(gn, rn, rel_tol=rtol * 10, abs_tol=atol):
            return False
        if not _params_close(gp, rp, rtol * 10, atol * 10):
            return False
    return True


def _step_cases(seed: int, fixed: bool, n_random: int) -> list[StepCase]:
    cases = []
    if fixed:
        cases += [StepCase("lstm", 8, 20, 6, "float64", "active", seed + 1),
                  StepCase("lstm", 4, 12, 5, "float32", "active", seed + 2),
                  StepCase("gru", 3, 15, 4, "float64", "inactive", seed + 3)]
    rng = np.random.default_rng(seed)
    for k in range(n_random):
        cases.append(StepCase(str(rng.choice(["lstm", "gru", "rnn_tanh"])), int(rng.choice([1, int(rng.integers(2, 20))])),
                              int(rng.integers(20, 41)), int(rng.integers(1, 9)), str(rng.choice(["float32", "float64"])),
                              "active" if k % 3 else "inactive", seed + 100 + k))
    return cases


def _run_learner_steps(fn, model, batches, max_norm, lr, case, fn_name):
    torch = _torch()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    out = []
    for k, (x, y) in enumerate(batches):
        call = f"{fn_name}(model, optimizer, x, y, max_norm={max_norm:.4g}) [{case.label()}, step {k + 1} of 2]"
        res = call_student(fn, (model, opt, x.clone(), y.clone(), max_norm), fn_name=fn_name, case=call,
                           forbid=FORBID, hint="Run one step in a cell of its own (see the cell above the tests).")
        if not isinstance(res, (tuple, list)) or len(res) != 2:
            _fail(f"{call} should return a pair (loss, grad_norm), but it returned {type(res).__name__}"
                  + (f" of length {len(res)}" if isinstance(res, (tuple, list)) else f": {res!r:.60}") + ".")
        loss = _scalar(res[0], "the loss", call)
        norm = _scalar(res[1], "the gradient norm", call)
        out.append((loss, norm, [p.detach().double().clone() for p in model.parameters()],
                    [None if p.grad is None else p.grad.detach().double().clone() for p in model.parameters()]))
    return out


def _diagnose_step(got, make, batches, max_norm, lr, rtol, atol) -> str | None:
    for bug in STEP_BUGS:
        ref = _reference_steps(make(), batches, max_norm, lr, bug)
        if _step_matches(got, ref, rtol, atol):
            if bug == "no_clip":
                # clipped after the step, or never? the gradients left in .grad tell
                after = _reference_steps(make(), batches, max_norm, lr, "clip_after_step")
                left = [g for g in got[-1][3] if g is not None]
                ref_left = [g for g in after[-1][3] if g is not None]
                if left and len(left) == len(ref_left) and _params_close(left, ref_left, rtol * 10, atol * 10):
                    return STEP_BUGS["clip_after_step"]
            return STEP_BUGS[bug]
    return None


def check_train_step(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0, lr: float = 0.1,
                     fn_name: str = "train_step") -> None:
    """Two consecutive steps of the learner's train_step with SGD(lr) on a copy of a model, against the reference."""
    torch = _torch()
    cases = _step_cases(seed, fixed, n_random)
    for case in cases:
        def make():
            return _model(case.cell, case.H, case.dtype, case.seed, 1.0 if case.cell == "lstm" else None)

        batches = _step_batches(case)
        probe = _reference_steps(make(), batches, 1e30, lr, "no_clip")
        norms = [n for _, n, _, _ in probe]
        max_norm = 0.5 * min(norms) if case.clip == "active" else 2.0 * max(norms)
        ref = _reference_steps(make(), batches, max_norm, lr)
        with torch.random.fork_rng():
            got = _run_learner_steps(fn, make(), batches, max_norm, lr, case, fn_name)
        rtol, atol = _step_tolerance(case.dtype)
        if _step_matches(got, ref, rtol, atol):
            continue
        k = 0 if not _step_matches(got[:1], ref[:1], rtol, atol) else 1
        (gl, gn, gp, _), (rl, rn, rp, _) = got[k], ref[k]
        off = []
        if not math.isclose(gl, rl, rel_tol=rtol * 10, abs_tol=atol):
            off.append(f"the loss {gl:.8g} (expected {rl:.8g}, the mean of (pred[:, 0] - y)^2 before the update)")
        if not math.isclose(gn, rn, rel_tol=rtol * 10, abs_tol=atol):
            off.append(f"the norm {gn:.8g} (expected ||g|| = {rn:.8g} before clipping)")
        if not _params_close(gp, rp, rtol * 10, atol * 10):
            worst = max(float((a - b).abs().max()) for a, b in zip(gp, rp))
            off.append(f"the parameters after the step (largest difference {worst:.3g})")
        text = (f"{fn_name} [{case.label()}, max_norm = {max_norm:.4g}, SGD lr = {lr}], step {k + 1} of 2: "
                f"{'; '.join(off)} differ from the reference step (clear the gradients, loss, backward, clip by "
                f"norm, optimizer.step(); return the loss and the norm before clipping).")
        named = _diagnose_step(got, make, batches, max_norm, lr, rtol, atol)
        if named:
            text += "\nYour results match a step in which " + named
        _fail(text)
    print(f"{fn_name}: {len(cases)} cases (two consecutive steps each) match the reference step"
          f"{' (random cells, sizes, dtypes)' if not fixed else ''}.")


# ==================================================================================================
# C. The success criterion
# ==================================================================================================

#: Mutations of the criterion: (sentence, function of (err (B,), tol, pred (B, 1), y (B,), default tol?) -> value).
CRITERION_BUGS: dict[str, tuple[str, Callable]] = {
    "le": ("|error| <= tol counts a sequence whose error is exactly tol as correct: the criterion is strict, "
           "|error| < tol.", lambda e, tol, p, y, d: float(np.mean(e <= tol))),
    "tol_04": ("a tolerance of 0.4 where the criterion is 0.04 (an order of magnitude too lenient).",
               lambda e, tol, p, y, d: float(np.mean(e < (0.4 if d else tol)))),
    "tol_04_fixed": ("a tolerance of 0.4 where the criterion is 0.04 (an order of magnitude too lenient), and the "
                     "argument tol is ignored.", lambda e, tol, p, y, d: float(np.mean(e < 0.4))),
    "ignores_tol": ("the tolerance is fixed at 0.04 and the argument tol is ignored.",
                    lambda e, tol, p, y, d: float(np.mean(e < TOL))),
    "mean_error": ("the mean error over the batch is compared with tol (one yes/no for the whole batch): the criterion "
                   "is per sequence, the fraction of sequences whose own |error| < tol.",
                   lambda e, tol, p, y, d: float(np.mean(e) < tol)),
    "mean_signed_error": ("the mean signed error is compared with tol: the criterion is per sequence, on |error|.",
                          lambda e, tol, p, y, d: float(abs(np.mean(p[:, 0] - y)) < tol)),
    "no_abs": ("the error is not taken in absolute value: a prediction far *below* its target counts as correct.",
               lambda e, tol, p, y, d: float(np.mean((p[:, 0] - y) < tol))),
    "squared": ("the squared error is compared with tol: the criterion is |error| < tol, not error^2 < tol.",
                lambda e, tol, p, y, d: float(np.mean(e ** 2 < tol))),
    "broadcast": ("pred (B, 1) is compared with y (B,) directly: broadcasting makes a (B, B) table of every prediction "
                  "against every target. Use pred[:, 0].",
                  lambda e, tol, p, y, d: float(np.mean(np.abs(p - y[None, :]) < tol))),
    "count": ("the number of correct sequences is returned, not the fraction.", lambda e, tol, p, y, d: float(np.sum(e < tol))),
    "percent": ("a percentage is returned (0 to 100): return the fraction (0 to 1).",
                lambda e, tol, p, y, d: float(100 * np.mean(e < tol))),
    "complement": ("the fraction of *wrong* sequences is returned.", lambda e, tol, p, y, d: float(np.mean(e >= tol))),
}


def _criterion_cases(seed: int, fixed: bool, n_random: int):
    """(label, pred (B, 1) float64, y (B,) float64, dtype, tol or None for the default)."""
    cases = []
    if fixed:
        y = np.array([0.5, 0.25, 0.75, 0.5, 0.3, 0.6, 0.4, 0.5])
        err = np.array([0.01, -0.039, 0.041, -0.2, 0.3, -0.03, 0.5, 0.0])
        cases.append(("errors around 0.04", (y + err)[:, None], y, "float32", None))
        cases.append(("errors around 0.04", (y + err)[:, None], y, "float64", None))
        # exact ties in binary: |error| == tol must not count
        y2 = np.array([0.0, 0.0, 0.5, 0.5, 0.25, 0.75])
        p2 = np.array([0.04, -0.04, 0.5, 0.25, 0.5, 0.5])
        cases.append(("errors exactly 0.04 (float64)", p2[:, None], y2, "float64", None))
        y3 = np.array([0.5, 0.5, 0.5, 0.25, 0.25, 0.75, 0.75])
        p3 = np.array([0.75, 0.25, 0.5, 0.5, 0.375, 1.0, 0.875])
        cases.append(("errors exactly 0.25 with tol=0.25", p3[:, None], y3, "float32", 0.25))
        cases.append(("one sequence (B=1)", np.array([[0.53]]), np.array([0.5]), "float32", None))
    rng = np.random.default_rng(seed)
    for k in range(n_random):
        B = int(rng.choice([1, int(rng.integers(2, 300))]))
        y = rng.uniform(0, 1, B)
        scale = rng.choice([0.03, 0.08, 0.3])
        p = y + rng.normal(0, scale, B)
        tol = None if k % 2 == 0 else float(rng.choice([0.02, 0.1, 0.25]))
        cases.append((f"random errors, B={B}", p[:, None], y, str(rng.choice(["float32", "float64"])), tol))
    return cases


def check_fraction_correct(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                           fn_name: str = "fraction_correct") -> None:
    torch = _torch()
    cases = _criterion_cases(seed, fixed, n_random)
    results = []
    for label, p64, y64, dtype, tol in cases:
        dt = getattr(torch, dtype)
        pred, y = torch.tensor(p64, dtype=dt), torch.tensor(y64, dtype=dt)
        args = (pred, y) if tol is None else (pred, y, tol)
        call = f"{fn_name}(pred, y{'' if tol is None else f', tol={tol}'}) [{label}, {dtype}]"
        got = _scalar(call_student(fn, args, fn_name=fn_name, case=call, forbid=FORBID), "the result", call)
        # the expectation from the values as the learner's tensors hold them, in float64
        pv, yv = pred.double().numpy(), y.double().numpy()
        e = np.abs(pv[:, 0] - yv)
        t = TOL if tol is None else tol
        want = float(np.mean(e < t))
        results.append((call, got, want, (e, t, pv, yv, tol is None)))
    wrong = [(c, g, w) for c, g, w, _ in results if not math.isclose(g, w, abs_tol=1e-6)]
    if not wrong:
        print(f"{fn_name}: all {len(cases)} cases right{' (random sizes and errors)' if not fixed else ''}.")
        return
    call, got, want = wrong[0]
    text = (f"{fn_name} is wrong on {len(wrong)} of {len(results)} cases. The first: {call} returned {got:.6g}, "
            f"expected {want:.6g}: the fraction of sequences b with |pred[b, 0] - y[b]| < tol (strictly; tol = 0.04 "
            f"by default, Hochreiter & Schmidhuber 1997).")
    for bug, (sentence, variant) in CRITERION_BUGS.items():
        if all(math.isclose(g, variant(*args), abs_tol=1e-6) for _, g, _, args in results):
            text += f"\nYour results match, on every case checked, a criterion in which {sentence}"
            break
    _fail(text)


# ==================================================================================================
# D. The short run
# ==================================================================================================

def validation_set(T: int, size: int = 1000, seed: int = 12345):
    """A fixed set of `size` adding-problem sequences of length T (the reference generator)."""
    x, y, _ = _adding_ref(size, T, np.random.default_rng(seed), variable_length=False)
    return x, y


def validation_fraction(model, T: int, size: int = 1000, seed: int = 12345) -> float:
    """Fraction of the fixed validation set within 0.04 of the target (the 1997 criterion)."""
    torch = _torch()
    x, y = validation_set(T, size, seed)
    param = next(model.parameters())
    with torch.no_grad():
        pred = model(torch.from_numpy(x).to(param.device, param.dtype))
    err = (pred[:, 0].double().cpu().numpy() - y.astype(np.float64))
    return float(np.mean(np.abs(err) < TOL))


def _run(fn, model, T, steps, seed, fn_name, forbid=FORBID):
    call = f"{fn_name}(model, T={T}, steps={steps}, seed={seed})"
    hist = call_student(fn, (model,), dict(T=T, steps=steps, seed=seed), fn_name=fn_name, case=call, forbid=forbid,
                        hint="Run the call in the cell above the tests to see where it fails.")
    if not isinstance(hist, dict) or not {"loss", "grad_norm"} <= set(hist):
        _fail(f"{call} should return a dict with the keys 'loss' and 'grad_norm' (one number per step), but it "
              f"returned {type(hist).__name__}" + (f" with the keys {sorted(hist)}" if isinstance(hist, dict) else "") + ".")
    losses = [_scalar(v, f"loss[{i}]", call) for i, v in enumerate(hist["loss"])]
    norms = [_scalar(v, f"grad_norm[{i}]", call) for i, v in enumerate(hist["grad_norm"])]
    if len(losses) != steps or len(norms) != steps:
        _fail(f"{call} returned {len(losses)} losses and {len(norms)} gradient norms; expected one of each per step, {steps}.")
    if not all(map(math.isfinite, losses + norms)):
        _fail(f"{call}: the losses or gradient norms contain NaN or inf: the run diverged. Check that you clip and "
              f"that the learning rate is lr.")
    return call, losses, norms


def check_short_run(fn: Callable, *, T: int = 20, steps: int = 300, seed: int = 0, threshold: float = 0.8,
                    check_determinism: bool = False, fn_name: str = "train_adding") -> None:
    """The learner's loop trains make_model(seed) for `steps` steps at length T; the trained model must get
    at least `threshold` of a fixed validation set (1,000 sequences) within 0.04 of the target."""
    torch = _torch()
    # A few steps under the watch that forbids the reference (it slows every Python call down), then the
    # whole run without it.
    _run(fn, make_model(seed), T, 3, seed, fn_name)
    if check_determinism:
        runs = [_run(fn, make_model(seed), T, 5, seed, fn_name)[1] for _ in range(2)]
        if runs[0] != runs[1]:
            _fail(f"{fn_name}: two runs with seed={seed} from the same model gave different losses ({runs[0][:3]} ... "
                  f"and {runs[1][:3]} ...): draw every batch from one np.random.default_rng(seed) made at the start.")
        other = _run(fn, make_model(seed), T, 5, seed + 1, fn_name)[1]
        if other == runs[0]:
            _fail(f"{fn_name}: seed={seed} and seed={seed + 1} gave the same losses: use the seed for the data.")
    model = make_model(seed)
    with torch.random.fork_rng():
        call, losses, norms = _run(fn, model, T, steps, seed, fn_name, forbid=None)
    frac = validation_fraction(model, T)
    base = 2 * TOL * 2 - (4 * TOL) ** 2 / 4          # P(|X1 + X2| < 0.16): predicting 0.5 always
    first, last = np.mean(losses[:20]), np.mean(losses[-20:])
    if frac < threshold:
        _fail(f"{call}: after {steps} steps the model gets {frac:.1%} of 1,000 validation sequences (T = {T}) within 0.04 "
              f"of the target; at least {threshold:.0%} are needed (a model that always predicts 0.5 gets about "
              f"{base:.0%}). Your mean loss went from {first:.4f} (first 20 steps) to {last:.4f} (last 20). Check that "
              f"the tests of parts A-C pass, that each step draws a new batch from one np.random.default_rng(seed), "
              f"that x and y become float32 tensors, and that the optimizer is Adam(model.parameters(), lr=lr).")
    print(f"{fn_name}: after {steps} steps at T = {T}, {frac:.1%} of the validation sequences are within 0.04 "
          f"(needed {threshold:.0%}); mean loss {first:.4f} -> {last:.4f}.")
