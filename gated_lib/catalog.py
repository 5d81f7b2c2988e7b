"""The catalogue of cells: one table of names, gate orders and extra parameters.

Parameter counting, initialisation, conversion and the tests read this table, so that adding a cell
means adding one row here and one module with its equations.

========================  =========  =======  ===========================================================
name                      gates (G)  state    notes
========================  =========  =======  ===========================================================
``rnn_tanh`` (``rnn``)    h (1)      h        Elman RNN, torch.nn.RNN(nonlinearity="tanh")
``rnn_relu``              h (1)      h        torch.nn.RNN(nonlinearity="relu"); IRNN with identity init
``lstm``                  i f g o    h, c     torch.nn.LSTM (optionally with proj_size: weight_hr)
``gru`` (``gru_pytorch``) r z n      h        torch.nn.GRU / cuDNN: reset applied after the matmul
``gru_cho``               r z n      h        Cho et al. 2014: reset applied to h before the matmul
``nfg_lstm``              i g o      h, c     Hochreiter & Schmidhuber 1997, no forget gate
``peephole_lstm``         i f g o    h, c     Gers & Schmidhuber 2000 peepholes weight_ci/cf/co (H,)
``cifg_lstm``             i g o      h, c     coupled input-forget gate, f = 1 - i
``noaf_lstm``             i f g o    h, c     no output activation, h = o * c
``mgu``                   f n        h        minimal gated unit, Zhou et al. 2016
========================  =========  =======  ===========================================================

Gate k of a cell with hidden size H owns rows [k*H:(k+1)*H] of weight_ih, weight_hh, bias_ih and
bias_hh, in the order listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from gated_lib.errors import GatedLibError


@dataclass(frozen=True)
class CellInfo:
    """What the rest of the library needs to know about a cell, without its equations."""

    name: str
    gates: tuple            # gate names in weight-row order; G = len(gates)
    has_cell_state: bool    # carries c besides h (the LSTM family)
    peepholes: tuple = ()   # extra diagonal parameters, each of shape (H,)
    proj: bool = False      # supports proj_size (weight_hr, torch.nn.LSTM only)
    torch_mode: str | None = None   # the torch.nn module with these exact equations, if any

    @property
    def G(self) -> int:
        return len(self.gates)


CELLS = {
    "rnn_tanh": CellInfo("rnn_tanh", ("h",), False, torch_mode="RNN_TANH"),
    "rnn_relu": CellInfo("rnn_relu", ("h",), False, torch_mode="RNN_RELU"),
    "lstm": CellInfo("lstm", ("i", "f", "g", "o"), True, proj=True, torch_mode="LSTM"),
    "gru": CellInfo("gru", ("r", "z", "n"), False, torch_mode="GRU"),
    "gru_cho": CellInfo("gru_cho", ("r", "z", "n"), False),
    "nfg_lstm": CellInfo("nfg_lstm", ("i", "g", "o"), True),
    "peephole_lstm": CellInfo("peephole_lstm", ("i", "f", "g", "o"), True,
                              peepholes=("weight_ci", "weight_cf", "weight_co")),
    "cifg_lstm": CellInfo("cifg_lstm", ("i", "g", "o"), True),
    "noaf_lstm": CellInfo("noaf_lstm", ("i", "f", "g", "o"), True),
    "mgu": CellInfo("mgu", ("f", "n"), False),
}

ALIASES = {"rnn": "rnn_tanh", "gru_pytorch": "gru", "vanilla_rnn": "rnn_tanh"}


def cell_info(name: str) -> CellInfo:
    """The catalogue row of `name` (aliases accepted); ``GatedLibError`` listing the names otherwise."""
    if isinstance(name, CellInfo):
        return name
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in CELLS:
        raise GatedLibError(f"cell: unknown cell {name!r}; expected one of {sorted(CELLS) + sorted(ALIASES)}")
    return CELLS[key]


def gate_slice(cell: str, gate: str, hidden_size: int) -> slice:
    """Rows of the fused (G*H, ...) weights and (G*H,) biases that belong to `gate` of `cell`."""
    info = cell_info(cell)
    if gate not in info.gates:
        raise GatedLibError(f"gate: {info.name} has gates {info.gates}, got {gate!r}")
    k = info.gates.index(gate)
    return slice(k * hidden_size, (k + 1) * hidden_size)
