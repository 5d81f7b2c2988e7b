"""A recurrent network with an input layer and a readout: the model every lab trains.

    tokens (T, B) --one-hot or embedding--\\
                                          +--> Recurrent or CellStack --> h_t (T, B, H) --> Linear --> predictions
    reals  (T, B, D) ---------------------/

readout="last": one prediction per sequence, read at its last valid step (lengths - 1; padding
after the end never reaches it, because the recurrence only runs forward). Used by the adding
problem, temporal order, agreement and sentiment. readout="all": a prediction at every step
(copy task, character language model).

Stacks. cell="lstm" with num_layers=L is torch.nn's stack: one Recurrent, L layers of one cell.
cell=("gru", "lstm") names one cell per layer, bottom first, and builds a CellStack: one
single-layer Recurrent per layer, the output sequence of each the input of the next. A tuple
whose cells are all the same builds the plain Recurrent, so ("lstm", "lstm") is exactly
cell="lstm", num_layers=2 (same parameters, names and initial weights for a seed).
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
import torch.nn.functional as F

from gated_lib.errors import GatedLibError, ShapeError
from gated_lib.nn.functional import cell_spec
from gated_lib.nn.recurrent import Recurrent, RecurrentConfig


@dataclass
class ModelConfig:
    cell: str | tuple = "lstm"           # one cell for every layer, or a tuple of one cell per layer (bottom first)
    input_size: int | None = None        # D for real-valued inputs (T, B, D)
    vocab_size: int | None = None        # V for token inputs (T, B); exactly one of input_size / vocab_size
    embedding_dim: int | None = None     # None: one-hot tokens (the small vocabularies of the course)
    hidden_size: int = 64
    num_layers: int = 1                  # with a tuple of cells: 1 (the default) or len(cell)
    output_size: int = 1
    readout: str = "last"                # "last" or "all"
    backend: str = "auto"
    forget_bias: float | None = None
    dropout: float = 0.0


def layer_cells(cell, num_layers: int = 1) -> tuple[str, ...]:
    """The cell of every layer of a stack, bottom first, as canonical names.

    Inputs:
    - cell: a cell name (every layer gets it) or a tuple/list of names, one per layer
    - num_layers: L; with a tuple it must be 1 (the default, then L = len(cell)) or len(cell)

    Returns a tuple of L names of gated_lib.nn.CELLS (aliases resolved: "rnn" -> "rnn_tanh").
    Raises GatedLibError naming `cell` or `num_layers` for anything else.
    """
    if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
        raise GatedLibError(f"num_layers: expected a positive int, got {num_layers!r}")
    if isinstance(cell, str):
        return (cell_spec(cell).name,) * num_layers
    if not isinstance(cell, (tuple, list)) or not cell or not all(isinstance(c, str) for c in cell):
        raise GatedLibError(f"cell: expected a cell name such as 'lstm', or a non-empty tuple of names, one per "
                            f"layer such as ('gru', 'lstm'), got {cell!r}")
    if num_layers not in (1, len(cell)):
        raise GatedLibError(f"num_layers: the tuple cell={tuple(cell)!r} names {len(cell)} layers; expected "
                            f"num_layers = 1 (the default) or {len(cell)}, got {num_layers}")
    names = []
    for k, c in enumerate(cell):
        try:
            names.append(cell_spec(c).name)
        except GatedLibError as exc:
            raise GatedLibError(f"cell[{k}]: {exc}") from None
    return tuple(names)


def has_forget_gate(cell: str) -> bool:
    """Does this cell have a forget gate whose bias forget_bias sets (the LSTM family but CIFG / no-forget-gate)?"""
    spec = cell_spec(cell)
    return spec.cell_state and "f" in spec.gates


class CellStack(nn.Module):
    """A stack of single-layer Recurrent modules, one cell per layer (bottom first).

    CellStack(("gru", "lstm"), input_size=D, hidden_size=H): layer 0 reads x (T, B, D), layer k > 0
    reads the output sequence of layer k - 1 (T, B, H); dropout between layers in training, as
    torch.nn. forget_bias applies to the layers that have a forget gate (at least one must).

    The state is a tuple over layers of each layer's own state, in torch.nn's form with L = 1:
    h (1, B, H) for an RNN or GRU layer, (h, c) for an LSTM layer. forward returns it, and takes
    it back as hx (to continue a generation).
    """

    def __init__(self, cells, input_size: int, hidden_size: int, dropout: float = 0.0, backend: str = "auto",
                 forget_bias: float | None = None):
        super().__init__()
        self.cells = layer_cells(tuple(cells) if isinstance(cells, list) else cells)
        if forget_bias is not None and not any(has_forget_gate(c) for c in self.cells):
            raise GatedLibError(f"forget_bias: none of the cells {self.cells} has a forget gate; "
                                f"use forget_bias=None or put an LSTM in the stack")
        if not 0.0 <= float(dropout) < 1.0:
            raise GatedLibError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, len(self.cells)
        self.dropout = float(dropout)
        self.layers = nn.ModuleList(
            Recurrent(RecurrentConfig(c, input_size if k == 0 else hidden_size, hidden_size, 1, backend=backend,
                                      forget_bias=forget_bias if has_forget_gate(c) else None))
            for k, c in enumerate(self.cells))

    @contextmanager
    def use_backend(self, backend: str):
        """Temporarily switch every layer's backend: ``with stack.use_backend("eager"): ...``."""
        with ExitStack() as stack:
            for layer in self.layers:
                stack.enter_context(layer.use_backend(backend))
            yield self

    def forward(self, x, hx=None, return_states: bool = False):
        """x (T, B, D); hx None or the tuple of per-layer states (see the class docstring).

        Returns (out (T, B, H), states) and, with return_states=True (eager backend), also the
        list over layers of per-step state tuples, as Recurrent.forward.
        """
        L = self.num_layers
        if hx is not None and not (isinstance(hx, (tuple, list)) and len(hx) == L):
            raise GatedLibError(f"hx: a stack of {L} layers {self.cells} takes a tuple of {L} per-layer states "
                                f"(h0 (1, B, H) for an RNN or GRU layer, (h0, c0) for an LSTM layer), got "
                                f"{type(hx).__name__}{f' of length {len(hx)}' if isinstance(hx, (tuple, list)) else ''}")
        out, finals, per_layer = x, [], []
        for k, layer in enumerate(self.layers):
            res = layer(out, None if hx is None else hx[k], return_states=return_states)
            out = res[0]
            finals.append(res[1])
            if return_states:
                per_layer.extend(res[2])
            if self.dropout and self.training and k < L - 1:
                out = F.dropout(out, self.dropout, training=True)
        return (out, tuple(finals), per_layer) if return_states else (out, tuple(finals))

    def extra_repr(self) -> str:
        return f"cells={self.cells}, input_size={self.input_size}, hidden_size={self.hidden_size}, dropout={self.dropout}"


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
        cells = layer_cells(config.cell, config.num_layers)
        if not isinstance(config.cell, str):
            # a copy, canonical for the checkpoint round trip: a tuple (a list after JSON) and the layer count
            config = replace(config, cell=tuple(config.cell), num_layers=len(cells))
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
        if len(set(cells)) == 1:
            self.rnn = Recurrent(RecurrentConfig(cells[0], rnn_in, config.hidden_size, len(cells),
                                                 dropout=config.dropout, backend=config.backend,
                                                 forget_bias=config.forget_bias))
        else:
            self.rnn = CellStack(cells, rnn_in, config.hidden_size, dropout=config.dropout,
                                 backend=config.backend, forget_bias=config.forget_bias)
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
        with return_state=True also the final recurrent state, to pass back as hx to continue a
        generation (torch.nn's h_n or (h_n, c_n); for a mixed stack the CellStack's per-layer tuple);
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
