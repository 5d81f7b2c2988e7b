"""The training loop: it learns, stops early on the task's criterion, keeps a history, respects the
time limit, stays silent without a progress bar, and fails loudly on divergence."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gated_lib.errors import GatedLibError  # noqa: E402
from gated_lib.tasks import AddingProblem, Batch, Task  # noqa: E402
from gated_lib.training import History, TrainConfig, Trainer, train  # noqa: E402


class MeanTask(Task):
    """Predict the mean of a short sequence: learnable in a few dozen steps."""

    name = "mean"
    input_size = 1
    output_size = 1
    success_metric = "fraction_correct"

    def __init__(self, threshold=0.9, loss_scale=1.0):
        self.success_threshold = threshold
        self.loss_scale = loss_scale

    def sample(self, batch_size, rng=None):
        rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        x = rng.uniform(-1, 1, size=(5, batch_size, 1)).astype(np.float32)
        return Batch(x, x.mean(axis=(0, 2)))

    def loss(self, pred, batch):
        return self.loss_scale * ((pred[:, 0] - batch.y) ** 2).mean()

    def metrics(self, pred, batch):
        err = (pred[:, 0] - batch.y).abs()
        return {"loss": float((err ** 2).mean()), "fraction_correct": float((err < 0.1).float().mean())}

    def describe(self):
        return {"name": self.name, "threshold": self.success_threshold}


def cfg(**kw):
    base = dict(steps=400, batch_size=32, lr=2e-2, eval_every=20, eval_size=200, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_learns_and_stops_early_on_the_success_criterion():
    t = train(MeanTask(0.9), dict(hidden_size=16), cfg())
    assert t.solved_at is not None and t.solved_at < 400
    assert t.step == t.solved_at                                   # stopped right there
    val = t.history.last("val")
    assert val["fraction_correct"] >= 0.9 and val["step"] == t.solved_at
    steps, loss = t.history.series("loss", kind="train")
    assert len(steps) == t.step and loss[-10:].mean() < loss[:10].mean()


def test_without_early_stop_it_runs_all_steps():
    t = train(MeanTask(0.0), dict(hidden_size=4), cfg(steps=30, early_stop=False))
    assert t.step == 30 and t.solved_at == 20                      # solved at the first validation


def test_time_limit_stops_after_a_validation():
    t = train(MeanTask(2.0), dict(hidden_size=4), cfg(steps=10_000, eval_every=5, time_limit=0.0))
    assert t.step == 5


def test_history_records_train_and_validation_rows():
    t = train(MeanTask(2.0), dict(hidden_size=4), cfg(steps=10, eval_every=5))
    kinds = [r["kind"] for r in t.history.records]
    assert kinds.count("train") == 10 and kinds.count("val") == 2
    assert {"step", "loss", "grad_norm"} <= set(t.history.last("train"))
    assert isinstance(t.history, History) and len(t.history) == 12


def test_clipping_caps_the_update():
    """With clip_norm tiny, one SGD step moves the parameters by at most lr * clip_norm."""
    task = MeanTask(2.0)
    t = Trainer.for_task(task, dict(hidden_size=8), cfg(steps=1, optimizer="sgd", lr=1.0, clip_norm=1e-3))
    before = torch.cat([p.detach().flatten().clone() for p in t.model.parameters()])
    t.train_step()
    after = torch.cat([p.detach().flatten() for p in t.model.parameters()])
    assert float((after - before).norm()) == pytest.approx(1e-3, rel=1e-4)
    assert t.history.last("train")["grad_norm"] > 1e-3              # the norm before clipping is logged


def test_no_progress_bar_means_no_output(capsys):
    train(MeanTask(2.0), dict(hidden_size=4), cfg(steps=3))
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""                          # nbgrader scores stderr output 0


def test_divergence_is_reported_with_advice():
    with pytest.raises(GatedLibError, match=r"training diverged at step 1: loss = nan; lower TrainConfig.lr"):
        train(MeanTask(2.0, loss_scale=float("nan")), dict(hidden_size=4), cfg(steps=3))


@pytest.mark.parametrize("kw,match", [
    (dict(steps=0), r"TrainConfig.steps: expected a positive int, got 0"),
    (dict(lr=-1.0), r"TrainConfig.lr: expected a positive number, got -1.0"),
    (dict(optimizer="adamw"), r"TrainConfig.optimizer: expected 'adam', 'sgd' or 'rmsprop', got 'adamw'"),
    (dict(clip_norm=0), r"TrainConfig.clip_norm: expected a positive number or None"),
])
def test_bad_train_config(kw, match):
    with pytest.raises(GatedLibError, match=match):
        Trainer.for_task(MeanTask(), dict(hidden_size=4), cfg(**kw))


def test_default_model_for_a_task_and_cell_without_forget_gate():
    task = AddingProblem(T=10)
    assert task.model_config().forget_bias == 5.0
    assert task.model_config(cell="gru").forget_bias is None        # the task default only where it applies
    t = Trainer.for_task(task, None, cfg(steps=1), cell="rnn_tanh")
    assert t.model.rnn.spec.name == "rnn_tanh"
