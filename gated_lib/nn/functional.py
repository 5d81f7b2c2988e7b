"""The equations of every cell of the course, in torch: one small function per cell.

The cell names, gate orders and extra parameters are those of the numpy reference's catalogue
(gated_lib.catalog; a test keeps the two tables identical), plus min_gru, which the numpy reference
does not have. Each cell is split the way cuDNN splits it. The input projection does not depend on the state, so
it is computed for all T steps at once, as one GEMM:

    xp = x W_ih^T + b_ih                       (T, B, G*H)     G gates stacked, PyTorch's order

and a *step* function then applies the recurrence, one step at a time:

    state' = step(xp[t], state, p)             state = (h,) or (h, c), each (B, H)

p is a dict of the layer's recurrent parameters with torch.nn's names (layer suffix dropped):
weight_hh (G*H, H), bias_hh (G*H,) or None, and the peephole diagonals weight_ci, weight_cf,
weight_co (H,) where the cell has them. Splitting off xp changes nothing in the mathematics
(the book's equations are the step plus the projection); it is just faster.

Equations (rows are examples; sigma is the logistic function; * is elementwise):

    rnn_tanh / rnn_relu   h' = act(xp + h W_hh^T + b_hh)
    lstm                  a = xp + h W_hh^T + b_hh = [a_i, a_f, a_g, a_o]
                          i, f, o = sigma(a_i), sigma(a_f), sigma(a_o); g = tanh(a_g)
                          c' = f * c + i * g;  h' = o * tanh(c')
    nfg_lstm              the 1997 cell, no forget gate; gates i, g, o:  c' = c + i * g
    peephole_lstm         Gers & Schmidhuber 2000: i and f see c, o sees c' through diagonal weights
                          i = sigma(a_i + w_ci * c), f = sigma(a_f + w_cf * c), o = sigma(a_o + w_co * c')
    cifg_lstm             coupled input-forget gate; gates i, g, o; f = 1 - i
    noaf_lstm             no output activation: h' = o * c'
    gru                   PyTorch/cuDNN convention (reset *after* the matmul); gates r, z, n
                          r = sigma(xp_r + h W_hr^T + b_hr), z = sigma(xp_z + h W_hz^T + b_hz)
                          n = tanh(xp_n + r * (h W_hn^T + b_hn));  h' = (1 - z) * n + z * h
    gru_cho               Cho et al. 2014 (reset *before* the matmul):
                          n = tanh(xp_n + (r * h) W_hn^T + b_hn), otherwise as gru
    mgu                   minimal gated unit (Zhou et al. 2016); gates f, n; one gate does both jobs
                          f = sigma(xp_f + h W_hf^T + b_hf);  n = tanh(xp_n + (f * h) W_hn^T + b_hn)
                          h' = (1 - f) * h + f * n
    min_gru               minGRU (Feng et al. 2024, "Were RNNs all we needed?"); gates z, n; the gate
                          and the candidate see only the input, so the recurrence is linear in h:
                          z = sigma(xp_z), h' = (1 - z) * h + z * xp_n      (no weight_hh, no bias_hh)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from gated_lib.errors import GatedLibError

State = tuple  # (h,) or (h, c), each (B, H)


# --- vanilla RNN ---------------------------------------------------------------------------------

def rnn_tanh_step(xp, state, p):
    (h,) = state
    return (torch.tanh(xp + F.linear(h, p["weight_hh"], p.get("bias_hh"))),)


def rnn_relu_step(xp, state, p):
    (h,) = state
    return (torch.relu(xp + F.linear(h, p["weight_hh"], p.get("bias_hh"))),)


# --- the LSTM family -----------------------------------------------------------------------------

def lstm_step(xp, state, p):
    h, c = state
    a = xp + F.linear(h, p["weight_hh"], p.get("bias_hh"))        # (B, 4H), one product for 4 gates
    a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    return h, c


def nfg_lstm_step(xp, state, p):
    h, c = state
    a = xp + F.linear(h, p["weight_hh"], p.get("bias_hh"))        # (B, 3H): i, g, o
    a_i, a_g, a_o = a.chunk(3, dim=-1)
    i, g, o = torch.sigmoid(a_i), torch.tanh(a_g), torch.sigmoid(a_o)
    c = c + i * g                                                 # the constant error carousel: dc'/dc = I
    h = o * torch.tanh(c)
    return h, c


def peephole_lstm_step(xp, state, p):
    h, c = state
    a = xp + F.linear(h, p["weight_hh"], p.get("bias_hh"))        # (B, 4H)
    a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
    i = torch.sigmoid(a_i + p["weight_ci"] * c)                   # input and forget gates peek at c_{t-1}
    f = torch.sigmoid(a_f + p["weight_cf"] * c)
    g = torch.tanh(a_g)
    c = f * c + i * g
    o = torch.sigmoid(a_o + p["weight_co"] * c)                   # the output gate peeks at the new c_t
    h = o * torch.tanh(c)
    return h, c


def cifg_lstm_step(xp, state, p):
    h, c = state
    a = xp + F.linear(h, p["weight_hh"], p.get("bias_hh"))        # (B, 3H): i, g, o
    a_i, a_g, a_o = a.chunk(3, dim=-1)
    i, g, o = torch.sigmoid(a_i), torch.tanh(a_g), torch.sigmoid(a_o)
    c = (1 - i) * c + i * g                                       # f = 1 - i: write only what you forget
    h = o * torch.tanh(c)
    return h, c


def noaf_lstm_step(xp, state, p):
    h, c = state
    a = xp + F.linear(h, p["weight_hh"], p.get("bias_hh"))
    a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
    c = f * c + i * g
    h = o * c                                                     # no tanh: h is unbounded
    return h, c


# --- the GRU family ------------------------------------------------------------------------------

def gru_step(xp, state, p):
    (h,) = state
    hp = F.linear(h, p["weight_hh"], p.get("bias_hh"))            # (B, 3H): b_hn stays inside r * (.)
    x_r, x_z, x_n = xp.chunk(3, dim=-1)
    h_r, h_z, h_n = hp.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)                                 # reset *after* the matmul (cuDNN)
    return ((1 - z) * n + z * h,)


def gru_cho_step(xp, state, p):
    (h,) = state
    H = h.shape[-1]
    W, b = p["weight_hh"], p.get("bias_hh")
    x_r, x_z, x_n = xp.chunk(3, dim=-1)
    rz = F.linear(h, W[:2 * H], None if b is None else b[:2 * H])
    r = torch.sigmoid(x_r + rz[:, :H])
    z = torch.sigmoid(x_z + rz[:, H:])
    n = torch.tanh(x_n + F.linear(r * h, W[2 * H:], None if b is None else b[2 * H:]))  # reset *before*
    return ((1 - z) * n + z * h,)


def mgu_step(xp, state, p):
    (h,) = state
    H = h.shape[-1]
    W, b = p["weight_hh"], p.get("bias_hh")
    x_f, x_n = xp.chunk(2, dim=-1)
    f = torch.sigmoid(x_f + F.linear(h, W[:H], None if b is None else b[:H]))
    n = torch.tanh(x_n + F.linear(f * h, W[H:], None if b is None else b[H:]))
    return ((1 - f) * h + f * n,)


def min_gru_step(xp, state, p):
    (h,) = state
    x_z, x_n = xp.chunk(2, dim=-1)
    z = torch.sigmoid(x_z)
    return ((1 - z) * h + z * x_n,)


# --- the registry --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CellSpec:
    """What the sequence module needs to know about a cell kind.

    gates:        the row blocks of weight_ih / weight_hh, in order (G = len(gates))
    cell_state:   True if the state is (h, c) rather than (h,)
    step:         the recurrence, step(xp_t, state, p) -> state
    recurrent:    False if the cell has no weight_hh / bias_hh (min_gru)
    diagonals:    extra (H,) parameters (the peepholes)
    torch_mode:   the torch.nn module with the same equations and layout, if there is one
    """

    name: str
    gates: tuple
    cell_state: bool
    step: Callable
    recurrent: bool = True
    diagonals: tuple = ()
    torch_mode: str | None = None
    description: str = ""

    @property
    def num_gates(self) -> int:
        return len(self.gates)


CELLS: dict[str, CellSpec] = {s.name: s for s in [
    CellSpec("rnn_tanh", ("h",), False, rnn_tanh_step, torch_mode="RNN_TANH",
             description="vanilla RNN, h' = tanh(W_ih x + b_ih + W_hh h + b_hh)"),
    CellSpec("rnn_relu", ("h",), False, rnn_relu_step, torch_mode="RNN_RELU",
             description="vanilla RNN with ReLU"),
    CellSpec("lstm", ("i", "f", "g", "o"), True, lstm_step, torch_mode="LSTM",
             description="LSTM with forget gate (torch.nn.LSTM)"),
    CellSpec("nfg_lstm", ("i", "g", "o"), True, nfg_lstm_step,
             description="LSTM without forget gate (Hochreiter & Schmidhuber 1997), c' = c + i*g"),
    CellSpec("peephole_lstm", ("i", "f", "g", "o"), True, peephole_lstm_step,
             diagonals=("weight_ci", "weight_cf", "weight_co"),
             description="peephole LSTM (Gers & Schmidhuber 2000), diagonal peepholes"),
    CellSpec("cifg_lstm", ("i", "g", "o"), True, cifg_lstm_step,
             description="coupled input-forget gate LSTM, f = 1 - i"),
    CellSpec("noaf_lstm", ("i", "f", "g", "o"), True, noaf_lstm_step,
             description="LSTM without output activation, h' = o * c'"),
    CellSpec("gru", ("r", "z", "n"), False, gru_step, torch_mode="GRU",
             description="GRU, PyTorch/cuDNN convention (reset after the matmul)"),
    CellSpec("gru_cho", ("r", "z", "n"), False, gru_cho_step,
             description="GRU, Cho et al. 2014 convention (reset before the matmul)"),
    CellSpec("mgu", ("f", "n"), False, mgu_step,
             description="minimal gated unit (Zhou et al. 2016)"),
    CellSpec("min_gru", ("z", "n"), False, min_gru_step, recurrent=False,
             description="minGRU (Feng et al. 2024): gates see only x; linear in h"),
]}

# Aliases a reader of other sources may type.
ALIASES = {
    "rnn": "rnn_tanh", "vanilla_rnn": "rnn_tanh", "gru_pytorch": "gru", "gru_torch": "gru",
    "peephole": "peephole_lstm", "cifg": "cifg_lstm", "noaf": "noaf_lstm", "nfg": "nfg_lstm",
    "lstm_peephole": "peephole_lstm", "lstm_cifg": "cifg_lstm", "lstm_noaf": "noaf_lstm",
    "lstm_nfg": "nfg_lstm", "mingru": "min_gru",
}


def cell_spec(name: str) -> CellSpec:
    """Look up a cell kind by name (or alias), with an error that lists the choices."""
    if isinstance(name, CellSpec):
        return name
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in CELLS:
        raise GatedLibError(f"cell: expected one of {sorted(CELLS)} (or an alias {sorted(ALIASES)}), got {name!r}")
    return CELLS[key]


def input_projection(x, weight_ih, bias_ih=None):
    """xp = x W_ih^T + b_ih for every step at once: (T, B, D) -> (T, B, G*H), one GEMM."""
    return F.linear(x, weight_ih, bias_ih)


def run_layer(spec: CellSpec, x, state: State, p: dict, return_states: bool = False):
    """One layer over a sequence, from the equations (autograd does the backward).

    x (T, B, D), state: tuple of (B, H). Returns (out (T, B, H), final state) and, with
    return_states=True, the list of every per-step state tuple (graph nodes, for retain_grad()).
    """
    xp = input_projection(x, p["weight_ih"], p.get("bias_ih"))    # (T, B, G*H)
    outs, states = [], []
    # unbind (not xp[t]) so that autograd builds one gradient buffer for xp, not T full-size ones
    for xp_t in xp.unbind(0):
        state = spec.step(xp_t, state, p)
        outs.append(state[0])
        if return_states:
            states.append(state)
    out = torch.stack(outs)                                       # (T, B, H)
    return (out, state, states) if return_states else (out, state)
