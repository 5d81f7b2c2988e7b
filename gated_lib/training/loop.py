"""The training loop of the labs: clipping, a progress bar, a metrics history, early stopping on the
task's success criterion, and checkpoints from which a run resumes *exactly*.

    task = AddingProblem(T=100)
    trainer = Trainer.for_task(task, ModelConfig(cell="lstm"), TrainConfig(steps=3000))
    history = trainer.fit()            # stops early when task.solved(validation metrics)

Exact resumption. A checkpoint holds everything that decides the next step: the model's and the
optimizer's state, the step counter, the data sampler's state (a numpy Generator: the batches
are drawn from it, so its state *is* the data iterator's position), every global RNG (python,
numpy, torch CPU and CUDA: dropout draws from torch's), the history and the early-stopping state.
Validation uses a fixed set generated from its own seed and draws from no RNG, so evaluating does
not perturb training. Hence run(N) == run(k); save; load; run(N - k), bit for bit, on the same
machine and device (tests/test_training_resume.py). On a GPU, bit-identity also needs deterministic
kernels: gated_lib.nn.seed_everything(seed, deterministic=True) before training.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from gated_lib.errors import GatedLibError
from gated_lib.nn.device import get_device, resolve_dtype, rng_state, set_rng_state
from gated_lib.training.clip import clip_grad_norm, clip_grad_value, grad_norm

CHECKPOINT_FORMAT = "gated_lib.training.checkpoint/1"


@dataclass
class TrainConfig:
    steps: int = 10000                # optimizer steps in all (fit() stops there, or earlier)
    batch_size: int = 128             # large enough for the adding problem to leave its plateau fast
    lr: float = 1e-2
    optimizer: str = "adam"           # "adam", "sgd" or "rmsprop"
    momentum: float = 0.0             # sgd / rmsprop
    weight_decay: float = 0.0
    clip_norm: float | None = 1.0     # Pascanu et al.: rescale g when ||g|| > clip_norm; None: off
    clip_value: float | None = None   # clamp every component to [-v, v]; None: off
    eval_every: int = 100             # validate (and maybe stop) every this many steps
    eval_size: int = 1000             # examples in the fixed validation set
    eval_seed: int = 12345
    early_stop: bool = True           # stop when task.solved(validation metrics)
    time_limit: float | None = None   # seconds; stop (after a validation) once exceeded
    seed: int = 0                     # data sampler and, through for_task, the initial weights
    device: str | None = None         # None: get_device() (GATED_LIB_DEVICE, then cuda > mps > cpu)
    dtype: str = "float32"
    progress: bool = True             # tqdm.auto progress bar (a widget in a notebook)
    checkpoint_path: str | None = None
    checkpoint_every: int | None = None   # also save every this many steps (and at the end of fit)


class History:
    """Every logged record, as a list of dicts; series("loss") gives (steps, values) for a plot."""

    def __init__(self, records=None):
        self.records: list[dict] = list(records or [])

    def log(self, **record):
        self.records.append(record)

    def series(self, key: str, kind: str | None = None):
        rows = [r for r in self.records if key in r and (kind is None or r.get("kind") == kind)]
        return np.array([r["step"] for r in rows]), np.array([r[key] for r in rows], dtype=float)

    def last(self, kind: str | None = None) -> dict | None:
        for r in reversed(self.records):
            if kind is None or r.get("kind") == kind:
                return r
        return None

    def to_list(self) -> list[dict]:
        return [dict(r) for r in self.records]

    def __len__(self):
        return len(self.records)

    def __repr__(self):
        return f"History({len(self.records)} records, last={self.last()})"


def _check_config(cfg: TrainConfig):
    def pos_int(name):
        v = getattr(cfg, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise GatedLibError(f"TrainConfig.{name}: expected a positive int, got {v!r}")
    for name in ("steps", "batch_size", "eval_every", "eval_size"):
        pos_int(name)
    if not (isinstance(cfg.lr, (int, float)) and cfg.lr > 0):
        raise GatedLibError(f"TrainConfig.lr: expected a positive number, got {cfg.lr!r}")
    if cfg.optimizer not in ("adam", "sgd", "rmsprop"):
        raise GatedLibError(f"TrainConfig.optimizer: expected 'adam', 'sgd' or 'rmsprop', got {cfg.optimizer!r}")
    for name in ("clip_norm", "clip_value"):
        v = getattr(cfg, name)
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0):
            raise GatedLibError(f"TrainConfig.{name}: expected a positive number or None (off), got {v!r}")


def _rng_to_plain(state):
    """Global RNG states with numpy arrays turned into lists (loadable with weights_only=True)."""
    out = dict(state)
    kind, keys, pos, has_gauss, cached = state["numpy"]
    out["numpy"] = (kind, keys.tolist(), int(pos), int(has_gauss), float(cached))
    return out


def _rng_from_plain(state):
    out = dict(state)
    kind, keys, pos, has_gauss, cached = state["numpy"]
    out["numpy"] = (kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
    return out


class Trainer:
    """Trains `model` on `task`; see the module docstring."""

    def __init__(self, model, task, config: TrainConfig | None = None):
        self.config = config = config or TrainConfig()
        _check_config(config)
        self.task = task
        self.device = get_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        self.model = model.to(device=self.device, dtype=self.dtype)
        self.optimizer = self._make_optimizer()
        self.rng = np.random.default_rng(config.seed)          # the data iterator: batches come from it
        self.step = 0
        self.history = History()
        self.solved_at: int | None = None
        self.elapsed = 0.0                                    # training seconds, summed across resumes
        self._val = None

    @classmethod
    def for_task(cls, task, model_config=None, config: TrainConfig | None = None, **model_overrides):
        """Build the task's default model (seeded by config.seed) and a Trainer for it."""
        from gated_lib.nn.models import ModelConfig, SequenceModel

        config = config or TrainConfig()
        if model_config is None:
            model_config = task.model_config(**model_overrides)
        elif isinstance(model_config, dict):
            model_config = task.model_config(**model_config, **model_overrides)
        elif isinstance(model_config, ModelConfig):
            model_config = task.model_config(**{**{f.name: getattr(model_config, f.name) for f in fields(model_config)
                                                   if f.name not in ("input_size", "vocab_size", "output_size", "readout")},
                                                **model_overrides})
        torch.manual_seed(config.seed)
        return cls(SequenceModel(model_config), task, config)

    def _make_optimizer(self):
        c, params = self.config, self.model.parameters()
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        return torch.optim.RMSprop(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)

    # --- one step, one evaluation ----------------------------------------------------------------

    def train_step(self) -> dict:
        """Sample a batch, forward, backward, clip, update. Returns the step's record."""
        c = self.config
        batch = self.task.sample(c.batch_size, self.rng).to_torch(self.device, self.dtype)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        pred = self.model(batch.x, lengths=batch.lengths)
        loss = self.task.loss(pred, batch)
        if not torch.isfinite(loss.detach()):
            raise GatedLibError(f"training diverged at step {self.step + 1}: loss = {float(loss.detach())}; "
                                f"lower TrainConfig.lr (now {c.lr}) or clip (clip_norm={c.clip_norm})")
        loss.backward()
        params = list(self.model.parameters())
        gnorm = clip_grad_norm(params, c.clip_norm) if c.clip_norm is not None else grad_norm(params)
        if c.clip_value is not None:
            clip_grad_value(params, c.clip_value)
        self.optimizer.step()
        self.step += 1
        record = {"kind": "train", "step": self.step, "loss": float(loss.detach()), "grad_norm": gnorm}
        self.history.log(**record)
        return record

    def validation_set(self):
        if self._val is None:
            self._val = self.task.validation_set(self.config.eval_size, self.config.eval_seed)
        return self._val

    @torch.no_grad()
    def evaluate(self, batches=None) -> dict:
        """The task's metrics on the fixed validation set (or on `batches`), example-weighted."""
        self.model.eval()
        totals, n = {}, 0
        for b in (batches if batches is not None else self.validation_set()):
            tb = b.to_torch(self.device, self.dtype)
            pred = self.model(tb.x, lengths=tb.lengths)
            m, k = self.task.metrics(pred, tb), b.batch_size
            for key, v in m.items():
                totals[key] = totals.get(key, 0.0) + v * k
            n += k
        return {key: v / n for key, v in totals.items()}

    # --- the loop --------------------------------------------------------------------------------

    def fit(self, steps: int | None = None) -> History:
        """Train until `steps` (default config.steps) in all, the task is solved, or the time limit."""
        c = self.config
        target = c.steps if steps is None else steps
        if self.step >= target or (c.early_stop and self.solved_at is not None):
            return self.history
        from tqdm.auto import tqdm

        bar = tqdm(total=target, initial=self.step, disable=not c.progress, desc=self.task.name, leave=True)
        start = time.perf_counter() - self.elapsed
        try:
            while self.step < target:
                rec = self.train_step()
                self.elapsed = time.perf_counter() - start
                bar.update(1)
                stop = False
                if self.step % c.eval_every == 0 or self.step == target:
                    metrics = self.evaluate()
                    self.history.log(kind="val", step=self.step, time=self.elapsed, **metrics)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in list(metrics.items())[:3]}, refresh=False)
                    if self.task.solved(metrics) and self.solved_at is None:
                        self.solved_at = self.step
                        stop = c.early_stop
                    if c.time_limit is not None and self.elapsed > c.time_limit:
                        stop = True
                elif self.step % 10 == 0:
                    bar.set_postfix(loss=f"{rec['loss']:.4g}", refresh=False)
                if c.checkpoint_path and c.checkpoint_every and self.step % c.checkpoint_every == 0:
                    self.save_checkpoint(c.checkpoint_path)
                if stop:
                    break
        finally:
            bar.close()
        if c.checkpoint_path:
            self.save_checkpoint(c.checkpoint_path)
        return self.history

    # --- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        model_config = getattr(self.model, "config", None)
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "elapsed": self.elapsed,
            "solved_at": self.solved_at,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "data_rng": self.rng.bit_generator.state,
            "global_rng": _rng_to_plain(rng_state()),
            "history": self.history.to_list(),
            "train_config": asdict(self.config),
            "model_config": asdict(model_config) if model_config is not None and hasattr(model_config, "__dataclass_fields__") else None,
            "task": self.task.describe(),
        }

    def save_checkpoint(self, path) -> str:
        """Write the checkpoint atomically (a crash mid-write leaves the previous one intact)."""
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
        return path

    def load_state_dict(self, state: dict) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise GatedLibError(f"checkpoint: expected format {CHECKPOINT_FORMAT!r}, got {state.get('format')!r}")
        if state["task"] != self.task.describe():
            raise GatedLibError(f"checkpoint: it was saved for task {state['task']}, this trainer's task is "
                                f"{self.task.describe()}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["data_rng"]
        set_rng_state(_rng_from_plain(state["global_rng"]))
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self.solved_at = state["solved_at"]
        self.history = History(state["history"])

    def load_checkpoint(self, path) -> "Trainer":
        """Restore this trainer from a checkpoint file (weights_only: no code is unpickled)."""
        # map to the CPU: RNG states must stay CPU tensors; model and optimizer copy to their device
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        self.load_state_dict(state)
        return self

    @classmethod
    def resume(cls, path, task, model=None, config: TrainConfig | None = None) -> "Trainer":
        """A trainer rebuilt from a checkpoint: the model from its saved ModelConfig unless given,
        the TrainConfig from the checkpoint unless given."""
        from gated_lib.nn.models import ModelConfig, SequenceModel

        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        if config is None:
            config = TrainConfig(**state["train_config"])
        if model is None:
            if state.get("model_config") is None:
                raise GatedLibError("checkpoint: it holds no model_config; pass the model to resume()")
            model = SequenceModel(ModelConfig(**state["model_config"]))
        trainer = cls(model, task, config)
        trainer.load_state_dict(state)
        return trainer

    def summary(self) -> dict:
        last = self.history.last("val") or {}
        return {"steps": self.step, "seconds": round(self.elapsed, 2), "solved_at": self.solved_at,
                **{k: v for k, v in last.items() if k not in ("kind", "step", "time")}}


def train(task, model_config=None, config: TrainConfig | None = None, **model_overrides) -> Trainer:
    """Build the default model for `task`, train it, and return the trainer (history, model, ...)."""
    trainer = Trainer.for_task(task, model_config, config, **model_overrides)
    trainer.fit()
    return trainer
