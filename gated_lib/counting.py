"""What a recurrent layer costs: parameters, FLOPs per step, and the activation memory of BPTT.

Parameters (torch.nn's layout). Per layer and direction, with G gates, hidden size H, input size
`in`, R = P with proj_size P > 0 and R = H otherwise, and nb biases of G*H each:

    G*in + G*R + nb*G*H  (+ P*H for weight_hr)  (+ 3H for the peephole weights)

nb = 2 for torch's double bias (b_ih and b_hh), 1 for the textbook single bias, 0 for bias=False.
Layer 0 reads in = D; layer l > 0 reads the concatenated outputs of the layer below, in = R*dirs.
Examples: LSTM(10, 20) = 2,560; GRU(10, 20) = 1,920; LSTM(10, 20, proj_size=5) = 1,460;
LSTM(10, 20, num_layers=2, bidirectional=True) = 15,040; textbook (single-bias) LSTM(10, 20) = 2,480.

Keras stores one bias per gate, except its GRU with reset_after=True (the default, cuDNN-compatible),
which keeps an input and a recurrent bias like torch: GRU 3H(D+H) + 6H (reset_after) or + 3H.

Because every term is G times the vanilla RNN's (G = 1), an LSTM has exactly 4x and a GRU 3x the
parameters of a vanilla RNN of the same sizes, under any bias convention; param_ratio derives that
(and the ratios where it does not hold, e.g. with proj_size or Keras' GRU) from these formulas.

FLOPs per time step, convention: a multiply-add counts 2 FLOPs, so (B x K) @ (K x N) costs 2BKN; every
elementwise add, multiply or nonlinearity counts 1 FLOP per element (a sigmoid or tanh is counted
as 1 although it costs several instructions). Per example and step:

    matmul      2*G*H*(D + R)  (+ 2*P*H projection)
    elementwise G*H (x and h projections added) + nb*G*H (biases) + G*H (gate nonlinearities)
                + the cell's state update (per example, in units of H):
                rnn 0; lstm 5 (f*c, i*g, +, tanh c, o*tanh c); gru 4 (r*(W_hn h), and
                n + z*(h - n)); gru_cho 4; nfg_lstm 4; cifg_lstm 5; noaf_lstm 4; peephole_lstm 11
                (lstm's 5 and three peephole multiply-adds); mgu 4
    backward    2x the forward matmul FLOPs (the gradient of a product needs two products of the
                same size: one for its input, one for its weights); elementwise backward not counted.

Activation memory of BPTT: what the reference implementation keeps for the backward pass, in floats
per example and step (initial states once more): x_t (D) and h_t (R) for every cell, plus

    lstm 4H gates + c + tanh c (+ H for o*tanh c with proj_size); peephole_lstm the same;
    nfg_lstm, cifg_lstm 3H gates + c + tanh c; noaf_lstm 4H gates + c;
    gru r, z, n and W_hn h + b_hn (4H); gru_cho r, z, n and r*h (4H); mgu f, n and f*h (3H); rnn 0.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from gated_lib.catalog import cell_info
from gated_lib.errors import GatedLibError

_STATE_UPDATE_FLOPS = {"rnn_tanh": 0, "rnn_relu": 0, "lstm": 5, "gru": 4, "gru_cho": 4, "nfg_lstm": 4,
                       "cifg_lstm": 5, "noaf_lstm": 4, "peephole_lstm": 11, "mgu": 4}
# Floats cached per example and step beyond x_t and h_t, in units of H (see the module docstring).
_CACHED_PER_STEP = {"rnn_tanh": 0, "rnn_relu": 0, "lstm": 6, "peephole_lstm": 6, "nfg_lstm": 5,
                    "cifg_lstm": 5, "noaf_lstm": 5, "gru": 4, "gru_cho": 4, "mgu": 3}


def _check_sizes(**sizes):
    for k, v in sizes.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise GatedLibError(f"{k}: expected a non-negative integer, got {v!r}")


def _n_biases(bias: bool, single_bias: bool) -> int:
    return 0 if not bias else (1 if single_bias else 2)


def _check_proj(info, proj_size):
    if proj_size and not info.proj:
        raise GatedLibError(f"proj_size: only the lstm supports a projection (torch.nn.LSTM), not {info.name}")


def gate_count(cell: str) -> int:
    """G, the number of gate blocks stacked in weight_ih: rnn 1, lstm 4, gru 3, mgu 2, ..."""
    return cell_info(cell).G


def param_count_per_layer(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                          bidirectional: bool = False, bias: bool = True, proj_size: int = 0,
                          single_bias: bool = False) -> list[dict]:
    """The terms of param_count, one dict per layer and direction (torch's order l0, l0_reverse, ...).

    Each dict: input_size (what this layer reads), weight_ih, weight_hh, biases, weight_hr,
    peepholes, total.
    """
    _check_sizes(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers, proj_size=proj_size)
    info = cell_info(cell)
    _check_proj(info, proj_size)
    G, H, dirs = info.G, hidden_size, 2 if bidirectional else 1
    R = proj_size or H
    rows = []
    for layer in range(num_layers):
        inp = input_size if layer == 0 else R * dirs
        for _ in range(dirs):
            terms = dict(input_size=inp, weight_ih=G * H * inp, weight_hh=G * H * R,
                         biases=_n_biases(bias, single_bias) * G * H, weight_hr=proj_size * H,
                         peepholes=len(info.peepholes) * H)
            terms["total"] = sum(v for k, v in terms.items() if k != "input_size")
            rows.append(terms)
    return rows


def param_count(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                bidirectional: bool = False, bias: bool = True, proj_size: int = 0,
                single_bias: bool = False) -> int:
    """Number of parameters of a (stacked, possibly bidirectional) recurrent layer.

    Inputs:
    - cell: a catalogue name ("rnn", "lstm", "gru", "peephole_lstm", ...; gated_lib.catalog)
    - input_size D, hidden_size H, num_layers L, bidirectional, proj_size P (lstm only)
    - bias: False is torch's bias=False; single_bias: one textbook bias per gate instead of two

    Returns an int; equals sum(p.numel()) of the torch.nn module for every configuration torch has.
    """
    return sum(r["total"] for r in param_count_per_layer(cell, input_size, hidden_size, num_layers,
                                                         bidirectional, bias, proj_size, single_bias))


def keras_param_count(cell: str, input_size: int, units: int, reset_after: bool = True) -> int:
    """Number of parameters of a Keras SimpleRNN, LSTM or GRU layer (one bias per gate, except
    GRU(reset_after=True), which has an input and a recurrent bias).

    Inputs: cell "rnn", "lstm" or "gru"; input_size D; units H; reset_after (GRU only).
    Returns an int: rnn H(D+H) + H; lstm 4(H(D+H) + H); gru 3H(D+H) + 6H, or + 3H without reset_after.
    """
    _check_sizes(input_size=input_size, units=units)
    info = cell_info(cell)
    if info.name not in ("rnn_tanh", "rnn_relu", "lstm", "gru", "gru_cho"):
        raise GatedLibError(f"cell: Keras has SimpleRNN, LSTM and GRU, got {cell!r}")
    G, H, D = info.G, units, input_size
    n_bias = 2 if (info.name in ("gru", "gru_cho") and reset_after) else 1
    return G * H * (D + H) + n_bias * G * H


def param_ratio(cell: str, baseline: str = "rnn", input_size: int = 10, hidden_size: int = 20,
                **options) -> Fraction:
    """param_count(cell) / param_count(baseline) at the same sizes and options, as an exact Fraction.

    With torch's layout this is G_cell / G_baseline whatever the sizes: 4 for the LSTM and 3 for the
    GRU against a vanilla RNN (options such as proj_size apply to `cell` only).
    """
    base_options = {k: v for k, v in options.items() if k != "proj_size"}
    return Fraction(param_count(cell, input_size, hidden_size, **options),
                    param_count(baseline, input_size, hidden_size, **base_options))


def flops_per_step(cell: str, input_size: int, hidden_size: int, batch_size: int = 1,
                   proj_size: int = 0, bias: bool = True, single_bias: bool = False) -> dict:
    """FLOPs of one time step of one layer (multiply-add = 2 FLOPs; see the module docstring).

    Returns a dict of ints:
    - matmul:          2*B*G*H*(D + R) (+ 2*B*P*H with proj_size)
    - elementwise:     B*H*(G*(2 + nb) + state update)
    - forward:         matmul + elementwise
    - backward_matmul: 2 * matmul
    - train:           forward + backward_matmul
    """
    _check_sizes(input_size=input_size, hidden_size=hidden_size, batch_size=batch_size, proj_size=proj_size)
    info = cell_info(cell)
    _check_proj(info, proj_size)
    G, H, D, B = info.G, hidden_size, input_size, batch_size
    R = proj_size or H
    matmul = 2 * B * G * H * (D + R) + 2 * B * proj_size * H
    elementwise = B * H * (G * (2 + _n_biases(bias, single_bias)) + _STATE_UPDATE_FLOPS[info.name])
    forward = matmul + elementwise
    return dict(matmul=matmul, elementwise=elementwise, forward=forward, backward_matmul=2 * matmul,
                train=forward + 2 * matmul)


def bptt_memory(cell: str, seq_len: int, batch_size: int, input_size: int, hidden_size: int,
                dtype=np.float32, proj_size: int = 0) -> dict:
    """Activation memory that BPTT through one layer keeps, as the reference implementation stores it.

    Returns a dict:
    - floats_per_step:  per example and step (x_t, h_t and the cell's cached intermediates)
    - floats_initial:   per example, the initial state(s)
    - floats:           B * (T * floats_per_step + floats_initial)
    - bytes:            floats * itemsize of dtype
    """
    _check_sizes(seq_len=seq_len, batch_size=batch_size, input_size=input_size, hidden_size=hidden_size,
                 proj_size=proj_size)
    info = cell_info(cell)
    _check_proj(info, proj_size)
    H, R = hidden_size, proj_size or hidden_size
    per_step = input_size + R + _CACHED_PER_STEP[info.name] * H + (H if proj_size else 0)
    initial = R + (H if info.has_cell_state else 0)
    floats = batch_size * (seq_len * per_step + initial)
    return dict(floats_per_step=per_step, floats_initial=initial, floats=floats,
                bytes=floats * np.dtype(dtype).itemsize)
