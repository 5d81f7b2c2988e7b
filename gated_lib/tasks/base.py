"""What a task is, for the training loop: a batch sampler, a loss, metrics and a success criterion.

Data is generated with numpy (np.random.Generator), whatever the device, so that a seed gives the
same sequences on a laptop, on CPU CI and on a GPU, and so that the sampler's state is a small
dict a checkpoint can store. Batches are converted to torch tensors at the last moment.

Shapes (time-major, COURSE_DESIGN.md):
    x        (T, B, D) float32 values, or (T, B) int64 tokens
    y        (B,) for one target per sequence (readout "last"), (T, B) for one per step ("all")
    lengths  (B,) int64, valid steps of each sequence (padding comes after), or None (all T)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gated_lib.errors import GatedLibError


def as_generator(rng, name: str = "rng") -> np.random.Generator:
    """A numpy Generator from None, an int seed, a SeedSequence or a Generator (returned as is)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer, np.random.SeedSequence)) and not isinstance(rng, bool):
        if isinstance(rng, (int, np.integer)) and rng < 0:
            raise GatedLibError(f"{name}: expected a non-negative seed, got {rng}")
        return np.random.default_rng(rng)
    raise GatedLibError(f"{name}: expected an int seed or a numpy Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")


def check_batch_size(batch_size) -> int:
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise GatedLibError(f"batch_size: expected a positive int, got {batch_size!r}")
    return int(batch_size)


@dataclass
class Batch:
    x: Any
    y: Any
    lengths: Any = None
    info: dict = field(default_factory=dict)      # e.g. distances, the texts, for analysis

    @property
    def batch_size(self) -> int:
        return int(self.x.shape[1])

    def to_torch(self, device=None, dtype=None) -> "Batch":
        """The same batch as torch tensors on `device`; float arrays become `dtype` (float32)."""
        import torch

        dtype = torch.float32 if dtype is None else dtype

        def conv(a):
            if a is None:
                return None
            t = torch.as_tensor(a)
            if t.is_floating_point():
                t = t.to(dtype)
            return t.to(device) if device is not None else t

        return Batch(conv(self.x), conv(self.y), conv(self.lengths), dict(self.info))


class Task:
    """Base class: subclasses set the attributes and implement sample / loss / metrics."""

    name = "task"
    readout = "last"              # "last": one target per sequence; "all": one per step
    input_size: int | None = None # real-valued inputs of this width, or
    vocab_size: int | None = None # tokens of this vocabulary
    output_size = 1
    success_metric = "accuracy"
    success_threshold = 1.0
    default_model: dict = {}

    def sample(self, batch_size: int, rng=None) -> Batch:
        raise NotImplementedError

    def loss(self, pred, batch: Batch):
        raise NotImplementedError

    def metrics(self, pred, batch: Batch) -> dict:
        raise NotImplementedError

    def solved(self, metrics: dict) -> bool:
        """The success criterion the training loop stops on."""
        return metrics.get(self.success_metric, -np.inf) >= self.success_threshold

    def baseline(self) -> dict:
        """What a memoryless predictor achieves (the number a curve must leave behind)."""
        return {}

    def validation_set(self, size: int = 1000, seed: int = 12345, batch_size: int = 500) -> list[Batch]:
        """A fixed set of `size` examples (numpy), generated from its own seed: the same every call."""
        rng = np.random.default_rng(seed)
        out, left = [], size
        while left > 0:
            n = min(batch_size, left)
            out.append(self.sample(n, rng))
            left -= n
        return out

    def model_config(self, **overrides):
        """A ModelConfig whose input and output match this task (plus the task's defaults)."""
        from gated_lib.nn.models import ModelConfig

        kw = dict(input_size=self.input_size, vocab_size=self.vocab_size, output_size=self.output_size,
                  readout=self.readout)
        kw.update(self.default_model)
        kw.update(overrides)
        if "forget_bias" not in overrides and kw.get("forget_bias") is not None:
            # the task's default forget bias applies to the cells that have a forget gate only (in a
            # stack of several cells, to those layers: CellStack skips the others)
            from gated_lib.nn.models import has_forget_gate, layer_cells

            if not any(has_forget_gate(c) for c in layer_cells(kw.get("cell", "lstm"), kw.get("num_layers", 1))):
                kw["forget_bias"] = None
        return ModelConfig(**kw)

    def describe(self) -> dict:
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "name")
        return f"{type(self).__name__}({args})"
