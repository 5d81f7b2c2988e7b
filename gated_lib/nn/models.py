"""A recurrent network with an input layer and a readout: the model every lab trains.

    tokens (T, B) --one-hot or embedding--\\
                                          +--> Recurrent --> h_t (T, B, H) --> Linear --> predictions
    reals  (T, B, D) ---------------------/

readout="last": one prediction per sequence, read at its last valid step (lengths - 1; padding
after the end never reaches it, because the recurrence only runs forward). Used by the adding
problem, temporal order, agreement and sentiment. readout="all": a prediction at every step
(copy task, character language model).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F

from gated_lib.errors import GatedLibError, ShapeError
from gated_lib.nn.recurrent import Recurrent, RecurrentConfig


@dataclass
class ModelConfig:
    cell: str = "lstm"
    input_size: int | None = None        # D for real-valued inputs (T, B, D)
    vocab_size: int | None = None        # V for token inputs (T, B); exactly one of input_size / vocab_size
    embedding_dim: int | None = None     # None: one-hot tokens (the small vocabularies of the course)
    hidden_size: int = 64
    num_layers: int = 1
    output_size: int = 1
    readout: str = "last"                # "last" or "all"
    backend: str = "auto"
    forget_bias: float | None = None
    dropout: float = 0.0


class SequenceModel(nn.Module):
    """Input layer -> Recurrent (any cell) -> Linear readout. See the module docstring."""

    def __init__(self, config: ModelConfig | None = None, **kwargs):
        super().__init__()
        config = ModelConfig(**kwargs) if config is None else config
        if (config.input_size is None) == (config.vocab_size is None):
            raise GatedLibError(f"ModelConfig: expected exactly one of input_size (real inputs) or vocab_size "
                                f"(tokens), got input_size={config.input_size}, vocab_size={config.vocab_size}")
        if config.readout not in ("last", "all"):
            raise GatedLibError(f"readout: expected 'last' or 'all', got {config.readout!r}")
        self.config = config
        if config.vocab_size is not None:
            if config.embedding_dim is None:
                self.embedding = None
                rnn_in = config.vocab_size
            else:
                self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
                rnn_in = config.embedding_dim
        else:
            self.embedding = None
            rnn_in = config.input_size
        self.rnn = Recurrent(RecurrentConfig(config.cell, rnn_in, config.hidden_size, config.num_layers,
                                             dropout=config.dropout, backend=config.backend,
                                             forget_bias=config.forget_bias))
        self.head = nn.Linear(config.hidden_size, config.output_size)

    def embed(self, x):
        c = self.config
        if c.vocab_size is None:
            return x
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.dtype not in (torch.int64, torch.int32):
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ShapeError(f"x: expected integer tokens of shape (T, B) (vocab_size={c.vocab_size}), got {got}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= c.vocab_size):
            raise GatedLibError(f"x: expected token ids in [0, {c.vocab_size}), got values in "
                                f"[{int(x.min())}, {int(x.max())}]")
        if self.embedding is not None:
            return self.embedding(x)
        return F.one_hot(x.long(), c.vocab_size).to(self.head.weight.dtype)

    def forward(self, x, lengths=None, hx=None, return_state: bool = False, return_states: bool = False):
        """x (T, B, D) reals or (T, B) tokens; lengths (B,) valid steps (readout="last").

        Returns predictions: (B, output_size) for readout="last", (T, B, output_size) for "all";
        with return_state=True also the final recurrent state (to continue a generation);
        with return_states=True also the per-step states (eager backend; see Recurrent.forward).
        """
        e = self.embed(x)
        res = self.rnn(e, hx, return_states=return_states)
        out, state = res[0], res[1]                              # out (T, B, H)
        if self.config.readout == "last":
            T, B = out.shape[0], out.shape[1]
            if lengths is None:
                feat = out[-1]
            else:
                lengths = torch.as_tensor(lengths, device=out.device)
                if lengths.shape != (B,) or int(lengths.min()) < 1 or int(lengths.max()) > T:
                    raise GatedLibError(f"lengths: expected shape (B,) = ({B},) with values in [1, T={T}], "
                                        f"got shape {tuple(lengths.shape)} with values "
                                        f"[{int(lengths.min())}, {int(lengths.max())}]")
                feat = out[lengths.long() - 1, torch.arange(B, device=out.device)]   # (B, H)
            pred = self.head(feat)
        else:
            pred = self.head(out)
        extra = ()
        if return_state:
            extra += (state,)
        if return_states:
            extra += (res[2],)
        return (pred, *extra) if extra else pred

    def config_dict(self) -> dict:
        return asdict(self.config)
