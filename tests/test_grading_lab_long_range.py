"""The lab I checkers of gated_lib.grading: they accept every correct solution and name every mistake.

The learners' functions below are written the way a learner writes them (numpy and torch, not
gated_lib), so a passing test says something about the checker, not about the reference it uses.
The checker's definition of the adding problem is also checked against gated_lib.tasks' generator.
"""

from __future__ import annotations

import numpy as np
import pytest

from gated_lib.grading import lab_long_range as grading
from gated_lib.grading.core import GradingFailure
from gated_lib.tasks import AddingProblem, adding_problem

torch = pytest.importorskip("torch")


def failure(check, fn, **kwargs) -> str:
    with pytest.raises(GradingFailure) as info:
        check(fn, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------------------------
# Learners
# ------------------------------------------------------------------------------------------------

def make_batch(offset=0.5, scale=4.0, p2_high=None, p1_high=10, first_rule=True, second=True, end_markers=True,
               global_rng=False, low=-1.0):
    def adding_batch(batch_size, T, rng):
        B, half = batch_size, T // 2
        values = (np.random.uniform if global_rng else rng.uniform)(low, 1.0, size=(T, B))
        markers = np.zeros((T, B))
        if end_markers:
            markers[0] = markers[T - 1] = -1.0
        cols = np.arange(B)
        p1 = rng.integers(0, p1_high, size=B)
        if p2_high is None:
            p2 = rng.integers(0, half - 1, size=B)
            p2 = p2 + (p2 >= p1)
        else:
            p2 = rng.integers(0, p2_high(T), size=B)
        markers[p1, cols] = 1.0
        if second:
            markers[p2, cols] = 1.0
        if first_rule:
            values[0, markers[0] == 1.0] = 0.0
        y = offset + (values[p1, cols] + values[p2, cols]) / scale
        return np.stack([values, markers], -1).astype(np.float32), y.astype(np.float32)
    return adding_batch


def make_step(order="clip_then_step", clip="norm", returned="pre", zero_grad=True, loss="column"):
    def train_step(model, optimizer, x, y, max_norm):
        if zero_grad:
            optimizer.zero_grad()
        pred = model(x)
        err = (pred[:, 0] - y) if loss == "column" else (pred - y)
        loss_value = (err ** 2).mean()
        loss_value.backward()
        params = [p for p in model.parameters() if p.grad is not None]

        def do_clip():
            if clip == "norm":
                return torch.nn.utils.clip_grad_norm_(params, max_norm)
            norm = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
            torch.nn.utils.clip_grad_value_(params, max_norm)
            return norm

        if order == "clip_then_step":
            norm = do_clip()
            optimizer.step()
        elif order == "step_then_clip":
            optimizer.step()
            norm = do_clip()
        else:                                               # no clipping
            norm = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
            optimizer.step()
        out = float(norm)
        return float(loss_value), (min(out, max_norm) if returned == "post" else out)
    return train_step


def make_criterion(kind="ok"):
    def fraction_correct(pred, y, tol=0.04):
        e = (pred[:, 0] - y).abs()
        if kind == "le":
            return float((e <= tol).float().mean())
        if kind == "mean":
            return float(e.mean() < tol)
        if kind == "broadcast":
            return float(((pred - y).abs() < tol).float().mean())
        if kind == "tol04":
            return float((e < 0.4).float().mean())
        return float((e < tol).float().mean())
    return fraction_correct


# ------------------------------------------------------------------------------------------------
# A. The generator
# ------------------------------------------------------------------------------------------------

def test_the_reference_generator_is_what_the_checker_asks_for(monkeypatch):
    """gated_lib.tasks.adding_problem (fixed length) passes every generator check: one definition."""
    monkeypatch.setattr(grading, "FORBID", None)

    def reference(batch_size, T, rng):
        x, y, _ = adding_problem(batch_size, T, rng, variable_length=False)
        return x, y

    grading.check_adding_batch(reference, fixed=True, n_random=8)
    grading.check_adding_statistics(reference, T=40, n=40_000)
    grading.check_adding_statistics(reference, seed=1, T=100, n=40_000)


def test_marker_probabilities_sum_to_two_markers():
    for T in (20, 21, 40, 100, 161):
        p = grading.marker_probabilities(T)
        assert p.shape == (T // 2,) and abs(p.sum() - 2.0) < 1e-12
    x, _, _ = adding_problem(100_000, 40, np.random.default_rng(0), variable_length=False)
    freq = (x[:20, :, 1] == 1).mean(1)
    assert np.allclose(freq, grading.marker_probabilities(40), atol=5e-3)


def test_a_correct_generator_passes(capsys):
    grading.check_adding_batch(make_batch())
    grading.check_adding_batch(make_batch(), seed=3, fixed=False, n_random=10)
    grading.check_adding_statistics(make_batch(), T=40, n=20_000)
    assert "follow the 1997 definition" in capsys.readouterr().out


@pytest.mark.parametrize("learner, phrase", [
    (make_batch(offset=0.0), "the 0.5 offset is missing"),
    (make_batch(scale=2.0), "the scale is /2, not /4"),
    (make_batch(scale=1.0), "the /4 scale is missing"),
    (make_batch(p2_high=lambda T: T // 2), "has 1 marker(s) equal to 1"),
    (make_batch(second=False), "has 1 marker(s) equal to 1"),
    (make_batch(p2_high=lambda T: T - 1), "must be among the first T//2"),
    (make_batch(first_rule=False), "sets a marked first pair's value to 0"),
    (make_batch(end_markers=False), "carries marker -1"),
    (make_batch(global_rng=True), "global random state"),
])
def test_generator_mistakes_are_named(learner, phrase):
    msg = failure(grading.check_adding_batch, learner, fixed=True, n_random=4)
    assert phrase in msg, msg


def test_statistics_catch_what_single_batches_cannot():
    msg = failure(grading.check_adding_statistics, make_batch(p1_high=9), T=40, n=20_000)
    assert "pair t=9 is marked in" in msg, msg
    msg = failure(grading.check_adding_statistics, make_batch(low=0.0), T=40, n=20_000)
    assert "mean of y" in msg or "U[-1, 1]" in msg, msg


def test_generator_shape_and_dtype_messages():
    def batch_first(batch_size, T, rng):
        x, y = make_batch()(batch_size, T, rng)
        return x.transpose(1, 0, 2).copy(), y

    def float64(batch_size, T, rng):
        x, y = make_batch()(batch_size, T, rng)
        return x.astype(np.float64), y

    assert "batch-first" in failure(grading.check_adding_batch, batch_first)
    assert "float32" in failure(grading.check_adding_batch, float64)


def test_generator_that_calls_the_reference_is_refused():
    def cheat(batch_size, T, rng):
        x, y, _ = adding_problem(batch_size, T, rng, variable_length=False)
        return x, y

    msg = failure(grading.check_adding_batch, cheat)
    assert "gated_lib.tasks.memory.adding_problem" in msg and "a reference implementation" in msg


# ------------------------------------------------------------------------------------------------
# B. The training step
# ------------------------------------------------------------------------------------------------

def test_correct_steps_pass(capsys):
    grading.check_train_step(make_step())
    grading.check_train_step(make_step(), seed=5, fixed=False, n_random=4)
    assert "match the reference step" in capsys.readouterr().out


@pytest.mark.parametrize("learner, phrase", [
    (make_step(order="step_then_clip"), "clipped *after* optimizer.step()"),
    (make_step(order="none"), "not clipped at all"),
    (make_step(clip="value"), "clipped by value"),
    (make_step(returned="post"), "the norm *after* clipping"),
    (make_step(zero_grad=False), "never cleared"),
    (make_step(loss="broadcast"), "broadcasting makes a (B, B) matrix"),
])
def test_step_mistakes_are_named(learner, phrase):
    msg = failure(grading.check_train_step, learner)
    assert phrase in msg, msg


def test_step_that_calls_the_library_clipping_is_refused():
    from gated_lib.training import clip_grad_norm

    def cheat(model, optimizer, x, y, max_norm):
        optimizer.zero_grad()
        loss = ((model(x)[:, 0] - y) ** 2).mean()
        loss.backward()
        norm = clip_grad_norm(list(model.parameters()), max_norm)
        optimizer.step()
        return loss.item(), norm

    msg = failure(grading.check_train_step, cheat)
    assert "gated_lib.training.clip.clip_grad_norm" in msg and "a reference implementation" in msg


# ------------------------------------------------------------------------------------------------
# C. The criterion
# ------------------------------------------------------------------------------------------------

def test_correct_criterion_passes():
    grading.check_fraction_correct(make_criterion())
    grading.check_fraction_correct(make_criterion(), seed=2, fixed=False, n_random=10)


def test_criterion_agrees_with_the_task_metrics():
    """fraction_correct as graded is AddingProblem.metrics' 'fraction_correct' (the 1997 criterion)."""
    rng = np.random.default_rng(0)
    y = torch.tensor(rng.uniform(0, 1, 300))
    pred = (y + torch.tensor(rng.normal(0, 0.05, 300)))[:, None]
    task_value = AddingProblem().metrics(pred, type("Batch", (), {"y": y})())["fraction_correct"]
    assert task_value == pytest.approx(make_criterion()(pred, y))


@pytest.mark.parametrize("kind, phrase", [
    ("le", "|error| <= tol"), ("mean", "the mean error over the batch"),
    ("broadcast", "broadcasting makes a (B, B) table"), ("tol04", "a tolerance of 0.4"),
])
def test_criterion_mistakes_are_named(kind, phrase):
    msg = failure(grading.check_fraction_correct, make_criterion(kind))
    assert phrase in msg, msg


# ------------------------------------------------------------------------------------------------
# D. The short run
# ------------------------------------------------------------------------------------------------

def loop(batch=make_batch(), step=make_step(), seed_data=True):
    def train_adding(model, T, steps, batch_size=64, lr=1e-2, max_norm=1.0, seed=0):
        rng = np.random.default_rng(seed if seed_data else None)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        hist = {"loss": [], "grad_norm": []}
        for _ in range(steps):
            x, y = batch(batch_size, T, rng)
            loss, norm = step(model, opt, torch.from_numpy(x), torch.from_numpy(y), max_norm)
            hist["loss"].append(loss)
            hist["grad_norm"].append(norm)
        return hist
    return train_adding


def test_short_run_passes_and_fails_as_it_should():
    torch.set_num_threads(1)
    grading.check_short_run(loop(), T=20, steps=200, seed=0, threshold=0.8, check_determinism=True)
    msg = failure(grading.check_short_run, loop(), T=20, steps=10, seed=0, threshold=0.8)
    assert "at least 80% are needed" in msg and "about 15%" in msg, msg
    msg = failure(grading.check_short_run, loop(seed_data=False), T=20, steps=5, seed=0, check_determinism=True)
    assert "different losses" in msg, msg
