"""Initialisation: torch's default, gate-bias settings, orthogonal and identity recurrent weights.

torch.nn.RNN/LSTM/GRU draw every parameter from U(-1/sqrt(H), 1/sqrt(H)) (H the hidden size,
also for weight_hr with proj_size); init_params does the same, in the same draw order as
gated_lib.lstm.init_lstm_params.

Gate biases. torch adds two biases, so the bias a gate sees is the *effective* bias b_ih + b_hh.
Setting both forget slices to 1 (the common ``bias_ih[H:2H] = bias_hh[H:2H] = 1`` recipe) gives an
effective forget bias of 2, not 1. set_gate_bias makes the choice explicit:

    mode="effective"  bias_ih slice = value, bias_hh slice = 0  -> effective bias = value
    mode="both"       both slices = value                       -> effective bias = 2 * value

Slices (gate order i, f, g, o and r, z, n): the LSTM forget gate is rows [H:2H]; the GRU update gate
z is rows [H:2H] as well. A positive z bias makes a GRU keep its state (h = (1 - z) n + z h_prev), the
analogue of a positive LSTM forget bias (Jozefowicz et al. 2015: forget bias 1; Keras'
unit_forget_bias=True).

Orthogonal recurrent weights: each (H, H) gate block of weight_hh is an independent orthogonal
matrix (QR of a Gaussian matrix with the signs of R's diagonal fixed, as torch.nn.init.orthogonal_).
Identity: the IRNN of Le et al. 2015, a relu RNN with weight_hh = I, zero biases and small Gaussian
input weights.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gated_lib.catalog import cell_info, gate_slice
from gated_lib.errors import GatedLibError


def init_params(cell: str, input_size: int, hidden_size: int, rng=None, dtype=np.float32, *,
                bias: bool = True, single_bias: bool = False, proj_size: int = 0) -> dict:
    """One layer's parameters with torch's default initialisation, U(-1/sqrt(H), 1/sqrt(H)).

    Inputs:
    - cell: a catalogue name ("rnn", "lstm", "gru", "peephole_lstm", ...)
    - input_size D, hidden_size H; proj_size P (lstm only)
    - rng: a numpy Generator or a seed; dtype of the arrays
    - bias False: no biases; single_bias: one textbook "bias" instead of bias_ih/bias_hh

    Returns a dict: weight_ih (G*H, D), weight_hh (G*H, R), bias_ih, bias_hh (G*H,) [or bias (G*H,)]
    [, weight_hr (P, H)] [, weight_ci, weight_cf, weight_co (H,)], R = P or H.
    """
    info = cell_info(cell)
    if proj_size and not info.proj:
        raise GatedLibError(f"proj_size: only the lstm supports a projection, not {info.name}")
    rng = np.random.default_rng(rng)
    G, H = info.G, hidden_size
    R = proj_size or H
    k = 1.0 / np.sqrt(H)
    p = {"weight_ih": rng.uniform(-k, k, (G * H, input_size)), "weight_hh": rng.uniform(-k, k, (G * H, R))}
    if bias and single_bias:
        p["bias"] = rng.uniform(-k, k, G * H)
    elif bias:
        p["bias_ih"] = rng.uniform(-k, k, G * H)
        p["bias_hh"] = rng.uniform(-k, k, G * H)
    if proj_size:
        p["weight_hr"] = rng.uniform(-k, k, (proj_size, H))
    for name in info.peepholes:
        p[name] = rng.uniform(-k, k, H)
    return {name: v.astype(dtype) for name, v in p.items()}


def init_stack(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
               bidirectional: bool = False, rng=None, dtype=np.float32, **options) -> list[dict]:
    """Per-layer parameter dicts in torch's order (l0, [l0_reverse,] l1, ...), each from init_params.

    Layer l > 0 reads R*dirs inputs (R = proj_size or hidden_size). options go to init_params.
    """
    rng = np.random.default_rng(rng)
    dirs = 2 if bidirectional else 1
    R = options.get("proj_size", 0) or hidden_size
    return [init_params(cell, input_size if layer == 0 else R * dirs, hidden_size, rng, dtype, **options)
            for layer in range(num_layers) for _ in range(dirs)]


def _hidden_size(cell: str, params: Mapping) -> int:
    return np.shape(params["weight_hh"])[0] // cell_info(cell).G


def effective_bias(params: Mapping):
    """The bias the gates see: bias_ih + bias_hh (torch), the single "bias", or None without biases."""
    if params.get("bias") is not None:
        return np.asarray(params["bias"])
    parts = [np.asarray(params[k]) for k in ("bias_ih", "bias_hh") if params.get(k) is not None]
    return None if not parts else sum(parts[1:], parts[0])


def set_gate_bias(params, cell: str, gate: str, value: float, mode: str = "effective"):
    """A copy of params (a dict or a list of per-layer dicts) with one gate's bias set.

    Inputs:
    - params: per-layer dict (or list of them) with bias_ih/bias_hh or a single "bias"
    - cell, gate: e.g. ("lstm", "f"), ("gru", "z"); the slice is gated_lib.catalog.gate_slice
    - value: the bias to set
    - mode: "effective" (bias_ih slice = value, bias_hh slice = 0: the gate sees exactly value) or
            "both" (both slices = value: the gate sees 2 * value, torch's effective b_ih + b_hh)

    Returns the new params; the input is not modified.
    """
    if isinstance(params, (list, tuple)):
        return [set_gate_bias(p, cell, gate, value, mode) for p in params]
    if mode not in ("effective", "both"):
        raise GatedLibError(f"mode: expected 'effective' or 'both', got {mode!r}")
    out = dict(params)
    for k in ("bias", "bias_ih", "bias_hh"):
        if out.get(k) is not None:
            out[k] = np.array(out[k], copy=True)
    sl = gate_slice(cell, gate, _hidden_size(cell, params))
    if out.get("bias") is not None:
        if mode == "both":
            raise GatedLibError("mode='both' needs torch's two biases; these params have one 'bias'")
        out["bias"][sl] = value
        return out
    if out.get("bias_ih") is None or out.get("bias_hh") is None:
        raise GatedLibError("params: no biases to set (bias_ih and bias_hh, or bias, are missing)")
    out["bias_ih"][sl] = value
    out["bias_hh"][sl] = value if mode == "both" else 0.0
    return out


def set_forget_bias(params, value: float = 1.0, mode: str = "effective", cell: str = "lstm"):
    """set_gate_bias for the LSTM forget gate (rows [H:2H]); see the module docstring for `mode`.

    cell: "lstm", "peephole_lstm" or "noaf_lstm" (the variants with a forget gate).
    """
    return set_gate_bias(params, cell, "f", value, mode)


def set_update_gate_bias(params, value: float = 1.0, mode: str = "effective", cell: str = "gru"):
    """set_gate_bias for the GRU update gate z (rows [H:2H] in r, z, n); positive keeps the state."""
    return set_gate_bias(params, cell, "z", value, mode)


def orthogonal(rows: int, cols: int, rng=None, gain: float = 1.0, dtype=np.float64) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal rows or columns (whichever are fewer), times gain.

    QR of a standard Gaussian matrix, with the signs of R's diagonal folded into Q so the result is
    uniformly (Haar) distributed, as torch.nn.init.orthogonal_ does.
    """
    rng = np.random.default_rng(rng)
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    q = q if rows >= cols else q.T
    return (gain * q).astype(dtype)


def orthogonal_recurrent(params, cell: str, rng=None, gain: float = 1.0):
    """A copy of params (dict or list of dicts) whose weight_hh has an orthogonal (H, H) block per gate."""
    if isinstance(params, (list, tuple)):
        rng = np.random.default_rng(rng)
        return [orthogonal_recurrent(p, cell, rng, gain) for p in params]
    rng = np.random.default_rng(rng)
    W = np.asarray(params["weight_hh"])
    G = cell_info(cell).G
    H = W.shape[0] // G
    if W.shape[0] != G * H or W.shape[1] != H:
        raise GatedLibError(f"weight_hh: expected shape ({G}H, H) for a {cell}, got {W.shape}")
    out = dict(params)
    out["weight_hh"] = np.concatenate([orthogonal(H, H, rng, gain, W.dtype) for _ in range(G)], axis=0)
    return out


def irnn_params(input_size: int, hidden_size: int, rng=None, dtype=np.float32, *, scale: float = 1.0,
                input_std: float = 1e-3) -> dict:
    """A relu RNN initialised as the IRNN of Le et al. 2015: weight_hh = scale * I, biases 0, and
    weight_ih ~ N(0, input_std^2). Run it with nonlinearity="relu".

    Returns a dict: weight_ih (H, D), weight_hh (H, H), bias_ih (H,), bias_hh (H,).
    """
    rng = np.random.default_rng(rng)
    H = hidden_size
    return {"weight_ih": (input_std * rng.standard_normal((H, input_size))).astype(dtype),
            "weight_hh": (scale * np.eye(H)).astype(dtype),
            "bias_ih": np.zeros(H, dtype), "bias_hh": np.zeros(H, dtype)}
