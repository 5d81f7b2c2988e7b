"""The memory tasks follow their papers' definitions, and their statistics are the derived ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gated_lib.errors import GatedLibError
from gated_lib.tasks import (AddingProblem, CopyTask, TemporalOrder, adding_problem, adding_target_moments,
                             copy_baseline_loss, copy_task, temporal_order)


# --- the adding problem --------------------------------------------------------------------------

def test_adding_structure_follows_hochreiter_schmidhuber_1997():
    T = 100
    x, y, lengths = adding_problem(2000, T, rng=0)
    assert x.shape == (lengths.max(), 2000, 2) and x.dtype == np.float32 and y.shape == (2000,)
    assert lengths.min() >= T and lengths.max() <= T + T // 10
    values, markers = x[..., 0], x[..., 1]
    for b in range(2000):
        L = lengths[b]
        marked = np.flatnonzero(markers[:L, b] == 1.0)
        assert len(marked) == 2, "exactly two pairs are marked"
        first, second = marked if marked[0] < 10 else marked[::-1]
        assert first < 10, "X1 is one of the first ten pairs"
        assert second < T // 2, "X2 is one of the first T/2 pairs"
        for end in (0, L - 1):                                     # -1 at both ends unless marked
            assert markers[end, b] == (1.0 if end in marked else -1.0)
        assert np.all(markers[1:L - 1, b][~np.isin(np.arange(1, L - 1), marked)] == 0.0)
        assert np.all(x[L:, b] == 0.0), "padding after the end"
        assert y[b] == pytest.approx(0.5 + values[marked, b].sum() / 4.0, abs=1e-6)
        assert np.all(np.abs(values[:L, b]) <= 1.0)
        if 0 in marked:
            assert values[0, b] == 0.0, "a marked first pair has value 0 (the paper's rule)"


def test_fixed_length_and_reproducible_by_seed():
    a = adding_problem(5, 30, rng=np.random.default_rng(1), variable_length=False)
    b = adding_problem(5, 30, rng=1, variable_length=False)
    c = adding_problem(5, 30, rng=2, variable_length=False)
    assert a[0].shape[0] == 30 and np.all(a[2] == 30)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def _sample_targets(n, T, zero_first, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([adding_problem(20_000, T, rng, zero_first=zero_first)[1].astype(np.float64)
                           for _ in range(n // 20_000)])


@pytest.mark.parametrize("zero_first", [False, True])
def test_adding_target_mean_and_exact_variance(zero_first):
    """X1, X2 iid U[-1, 1]: Var = 2 (1/3) / 16 = 1/24. With the paper's zeroing of a marked first
    pair (prob. 1/10 for X1, (9/10)/(T/2 - 1) for X2): Var = ((1 - q1) + (1 - q2)) / 48 = 461/11760 at T=100."""
    mean, var = adding_target_moments(100, zero_first)
    assert mean == 0.5
    assert var == pytest.approx(461 / 11760 if zero_first else 1 / 24, rel=1e-12)
    y = _sample_targets(200_000, 100, zero_first)
    se_mean = math.sqrt(var / len(y))
    sq = (y - 0.5) ** 2
    se_var = sq.std() / math.sqrt(len(y))
    assert abs(y.mean() - 0.5) < 5 * se_mean
    assert abs(sq.mean() - var) < 5 * se_var, f"sample variance {sq.mean():.6f} vs exact {var:.6f}"


def test_adding_baseline_is_the_memoryless_prediction_0_5():
    task = AddingProblem(T=100)
    base = task.baseline()
    y = _sample_targets(200_000, 100, True, seed=1)
    err = np.abs(y - 0.5)
    assert base["mse"] == pytest.approx(adding_target_moments(100)[1])
    assert abs((err ** 2).mean() - base["mse"]) < 5 * (err ** 2).std() / math.sqrt(len(y))
    frac = (err < 0.04).mean()
    assert abs(frac - base["fraction_correct"]) < 5 * math.sqrt(frac * (1 - frac) / len(y))
    assert 0.15 < base["fraction_correct"] < 0.16


def test_adding_task_metrics_and_criterion():
    torch = pytest.importorskip("torch")
    task = AddingProblem(T=20)
    b = task.sample(100, 0).to_torch()
    perfect = task.metrics(b.y[:, None], b)
    assert perfect["fraction_correct"] == 1.0 and perfect["mse"] == 0.0 and task.solved(perfect)
    off = task.metrics(b.y[:, None] + 0.05, b)
    assert off["fraction_correct"] == 0.0 and not task.solved(off)
    assert float(task.loss(torch.full((100, 1), 0.5), b)) == pytest.approx(float(((b.y - 0.5) ** 2).mean()))


@pytest.mark.parametrize("kw,match", [
    (dict(batch_size=0), r"batch_size: expected a positive int, got 0"),
    (dict(T=3), r"T: expected an int >= 4, got 3"),
    (dict(rng="seed"), r"rng: expected an int seed or a numpy Generator"),
])
def test_adding_bad_arguments(kw, match):
    args = dict(batch_size=2, T=10, rng=0)
    args.update(kw)
    with pytest.raises(GatedLibError, match=match):
        adding_problem(**args)


# --- temporal order ------------------------------------------------------------------------------

def test_temporal_order_follows_task_6a():
    tokens, y, lengths = temporal_order(3000, rng=0)
    assert lengths.min() >= 100 and lengths.max() <= 110
    for b in range(3000):
        L = lengths[b]
        s = tokens[:L, b]
        assert s[0] == 4 and s[-1] == 5, "starts with E, ends with the trigger B"
        rel = np.flatnonzero(s >= 6)
        assert len(rel) == 2
        assert 10 <= rel[0] + 1 <= 20 and 50 <= rel[1] + 1 <= 60, "1-based positions t1, t2"
        assert np.all(s[1:-1][~np.isin(np.arange(1, L - 1), rel)] < 4), "distractors from {a, b, c, d}"
        first, second = s[rel] - 6                               # 0: X, 1: Y
        assert y[b] == 2 * first + second                          # XX->Q, XY->R, YX->S, YY->U
    freq = np.bincount(y, minlength=4) / len(y)
    assert np.all(np.abs(freq - 0.25) < 5 * math.sqrt(0.25 * 0.75 / len(y)))


def test_temporal_order_criterion_is_every_output_within_0_3():
    torch = pytest.importorskip("torch")
    task = TemporalOrder()
    b = task.sample(4, 0).to_torch()
    logits = torch.full((4, 4), 0.0)
    logits[torch.arange(4), b.y] = math.log(0.69 * 3 / 0.31)      # p(true) = 0.69: error 0.31 > 0.3
    assert task.metrics(logits, b)["fraction_correct"] == 0.0
    assert task.metrics(logits, b)["accuracy"] == 1.0
    logits[torch.arange(4), b.y] = math.log(0.71 * 3 / 0.29)      # p(true) = 0.71: every error < 0.3
    assert task.metrics(logits, b)["fraction_correct"] == 1.0
    assert task.baseline()["loss"] == pytest.approx(math.log(4))


def test_temporal_order_bad_ranges():
    with pytest.raises(GatedLibError, match=r"expected 2 <= t1 < t2 < min_length"):
        temporal_order(2, 0, t1_range=(50, 60), t2_range=(10, 20))


# --- the copy task -------------------------------------------------------------------------------

def test_copy_task_layout():
    T, S, K = 30, 10, 8
    x, y = copy_task(50, T, rng=0, S=S, K=K)
    assert x.shape == y.shape == (T + 2 * S, 50)
    assert np.all((x[:S] >= 1) & (x[:S] <= K))
    assert np.all(x[S:S + T - 1] == 0) and np.all(x[S + T - 1] == K + 1) and np.all(x[S + T:] == 0)
    assert np.all(y[:T + S] == 0) and np.array_equal(y[T + S:], x[:S])


def test_copy_baseline_is_the_cross_entropy_of_the_memoryless_strategy():
    torch = pytest.importorskip("torch")
    T, S, K = 50, 10, 8
    task = CopyTask(T=T, S=S, K=K)
    b = task.sample(16, 0).to_torch()
    # blank with certainty for T + S steps, then uniform over the K symbols
    logp = torch.full((T + 2 * S, 16, K + 1), -math.inf, dtype=torch.float64)
    logp[:T + S, :, 0] = 0.0
    logp[T + S:, :, 1:] = -math.log(K)
    assert float(task.loss(logp, b)) == pytest.approx(copy_baseline_loss(T, S, K), rel=1e-12)
    assert copy_baseline_loss(T, S, K) == pytest.approx(S * math.log(K) / (T + 2 * S))
    perfect = torch.nn.functional.one_hot(b.y, K + 1).double() * 50
    m = task.metrics(perfect, b)
    assert m["accuracy"] == 1.0 and m["sequence_accuracy"] == 1.0 and task.solved(m)
