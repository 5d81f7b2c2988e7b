"""A run resumed from a checkpoint continues exactly as the uninterrupted run: the same losses and
the same parameters, bit for bit."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from gated_lib.errors import GatedLibError  # noqa: E402
from gated_lib.tasks import AddingProblem, CharLM, TemporalOrder  # noqa: E402
from gated_lib.training import CHECKPOINT_FORMAT, TrainConfig, Trainer  # noqa: E402

N, K = 12, 5


def config(**kw):
    base = dict(steps=N, batch_size=8, lr=1e-2, eval_every=4, eval_size=16, progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def losses(trainer):
    return [r["loss"] for r in trainer.history.records if r["kind"] == "train"]


@pytest.mark.parametrize("task,model", [
    (AddingProblem(T=12), dict(cell="lstm", hidden_size=8)),
    # dropout between layers draws from torch's RNG: the checkpoint must carry it too
    (TemporalOrder(min_length=20, max_length=24, t1_range=(3, 5), t2_range=(10, 12)),
     dict(cell="gru", hidden_size=8, num_layers=2, dropout=0.3)),
    (CharLM(seq_len=16), dict(cell="lstm", hidden_size=8, backend="fused")),
])
def test_resumed_run_is_bit_identical(tmp_path, task, model):
    full = Trainer.for_task(task, model, config())
    full.fit()

    first = Trainer.for_task(task, model, config())
    first.fit(steps=K)
    path = first.save_checkpoint(tmp_path / "ckpt.pt")
    torch.manual_seed(999)                                   # disturb the global RNGs: resume must restore them
    resumed = Trainer.for_task(task, model, config(seed=3))
    resumed.load_checkpoint(path)
    assert resumed.step == K
    resumed.fit()

    assert losses(resumed) == losses(full)
    assert resumed.history.to_list()[-1]["step"] == N
    for (name, p), q in zip(full.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), f"{name} differs after resuming"


def test_resume_rebuilds_model_and_config_from_the_checkpoint(tmp_path):
    task = AddingProblem(T=10)
    path = tmp_path / "run" / "ckpt.pt"
    t = Trainer.for_task(task, dict(hidden_size=6), config(steps=4, checkpoint_path=str(path), checkpoint_every=2))
    t.fit()
    state = torch.load(path, weights_only=True)                # plain data only: safe to load
    assert state["format"] == CHECKPOINT_FORMAT and state["step"] == 4
    r = Trainer.resume(path, task)
    assert r.step == 4 and r.model.config.hidden_size == 6
    for p, q in zip(t.model.parameters(), r.model.parameters()):
        assert torch.equal(p, q)


def test_checkpoint_of_another_task_is_refused(tmp_path):
    t = Trainer.for_task(AddingProblem(T=10), dict(hidden_size=4), config(steps=1))
    t.fit()
    path = t.save_checkpoint(tmp_path / "a.pt")
    other = Trainer.for_task(AddingProblem(T=20), dict(hidden_size=4), config(steps=1))
    with pytest.raises(GatedLibError, match=r"checkpoint: it was saved for task .*'T': 10.*this trainer's task is .*'T': 20"):
        other.load_checkpoint(path)
