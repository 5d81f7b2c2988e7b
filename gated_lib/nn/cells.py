"""Single-step cells, the torch twins of the numpy reference's *_cell_forward functions.

A cell maps x (B, D) and the state (B, H) [, (B, H)] to the next state, and holds torch.nn.*Cell's
parameters: weight_ih (G*H, D), weight_hh (G*H, H), bias_ih (G*H,), bias_hh (G*H,), plus the
peephole diagonals weight_ci, weight_cf, weight_co (H,) where the cell has them. So
Cell("lstm", D, H).state_dict() loads into torch.nn.LSTMCell(D, H), "gru" into GRUCell,
"rnn_tanh"/"rnn_relu" into RNNCell.

Use it to step by hand (a figure, a Jacobian, a generation loop); use Recurrent for sequences.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gated_lib.errors import DTypeError, GatedLibError, ShapeError
from gated_lib.nn.functional import cell_spec, input_projection


class Cell(nn.Module):
    """One step of any cell of the course: Cell(cell, input_size, hidden_size, bias=True)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        self.spec = cell_spec(cell)
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise GatedLibError(f"{name}: expected a positive int, got {v!r}")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        G, H = self.spec.num_gates, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G * H, input_size))
        if self.spec.recurrent:
            self.weight_hh = nn.Parameter(torch.empty(G * H, H))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(G * H))
            if self.spec.recurrent:
                self.bias_hh = nn.Parameter(torch.empty(G * H))
        for name in self.spec.diagonals:
            self.register_parameter(name, nn.Parameter(torch.empty(H)))
        k = 1.0 / math.sqrt(H)
        for w in self.parameters():
            nn.init.uniform_(w, -k, k)

    def params(self) -> dict:
        return dict(self.named_parameters())

    def forward(self, x, state=None):
        """x (B, D); state h (B, H), or (h, c) for the LSTM family (default zeros).

        Returns h' (B, H), or (h', c') for the LSTM family, as torch.nn's cells do.
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.input_size:
            got = f"({', '.join(map(str, x.shape))})" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ShapeError(f"x: expected shape (B, D) with D = input_size = {self.input_size}, got {got}")
        if x.dtype != self.weight_ih.dtype:
            raise DTypeError(f"x: expected dtype {self.weight_ih.dtype} (the cell's parameters), got {x.dtype}")
        B, H = x.shape[0], self.hidden_size
        n = 2 if self.spec.cell_state else 1
        if state is None:
            state = tuple(x.new_zeros(B, H) for _ in range(n))
        elif isinstance(state, torch.Tensor):
            state = (state,)
        state = tuple(state)
        names = ("h", "c")[:n]
        if len(state) != n:
            raise GatedLibError(f"state: the {self.spec.name} cell expects {n} state tensor(s) {names}, got {len(state)}")
        for name, s in zip(names, state):
            if tuple(s.shape) != (B, H):
                raise ShapeError(f"{name}: expected shape (B, H) = ({B}, {H}), got ({', '.join(map(str, s.shape))})")
        p = self.params()
        xp = input_projection(x, p["weight_ih"], p.get("bias_ih"))
        new = self.spec.step(xp, state, p)
        return new if self.spec.cell_state else new[0]

    def extra_repr(self) -> str:
        return f"cell={self.spec.name!r}, input_size={self.input_size}, hidden_size={self.hidden_size}, bias={self.bias}"
