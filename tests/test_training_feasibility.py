"""CPU feasibility (slow): with the defaults an LSTM solves the adding problem at T = 100 within
3 minutes on a 2-core CPU, while a vanilla tanh RNN given the same training stays at the baseline.

Run with `pytest -m slow tests/test_training_feasibility.py` (about 1-4 minutes); the figures
are in docs/torch_path.md (benchmarks/bench_torch_adding_feasibility.py measures them).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from gated_lib.tasks import AddingProblem  # noqa: E402
from gated_lib.training import TrainConfig, Trainer  # noqa: E402

BUDGET_S = 180.0


@pytest.mark.slow
def test_lstm_solves_adding_t100_within_3_minutes_and_rnn_stays_at_baseline():
    task = AddingProblem(T=100)
    base = task.baseline()
    lstm = Trainer.for_task(task, None, TrainConfig(time_limit=BUDGET_S, progress=False, device="cpu"))
    lstm.fit()
    val = lstm.history.last("val")
    assert lstm.solved_at is not None, (f"LSTM not solved in {lstm.elapsed:.0f} s ({lstm.step} steps): "
                                        f"fraction correct {val['fraction_correct']:.3f}")
    assert lstm.elapsed <= BUDGET_S
    assert val["fraction_correct"] >= 0.95 and val["mse"] < 0.1 * base["mse"]

    # the same configuration and at least as many steps for the vanilla RNN
    rnn = Trainer.for_task(task, None, TrainConfig(steps=max(lstm.step, 1000), time_limit=BUDGET_S,
                                                   progress=False, device="cpu"), cell="rnn_tanh")
    rnn.fit()
    r = rnn.history.last("val")
    assert rnn.solved_at is None
    assert r["mse"] > 0.8 * base["mse"], f"RNN left the baseline: mse {r['mse']:.4f} vs {base['mse']:.4f}"
    assert r["fraction_correct"] < 0.3
