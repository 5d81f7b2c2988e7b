"""Weight conversions between gated_lib (torch's layout) and torch state_dicts, Coursera and Keras.

torch.nn.RNN / LSTM / GRU state_dicts. Keys are name + "_l{layer}" (+ "_reverse" for the second
direction): weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0 [, weight_hr_l0 with proj_size],
weight_ih_l0_reverse, ... gated_lib's stack is a list of per-layer dicts without the suffix, in the
same order (l0, l0_reverse, l1, ...), so from_torch and to_torch only split and join names.

Coursera (Deep Learning Specialization, "Building your RNN step by step"): column batch, one matrix
per gate acting on the concatenation [a_prev; x] (so columns [0:n_a] multiply a_prev, [n_a:] x),
single biases (n_a, 1), gates named f, i, c (candidate), o:

    LSTM: Wf, bf, Wi, bi, Wc, bc, Wo, bo  (n_a, n_a + n_x) / (n_a, 1),  readout Wy (n_y, n_a), by (n_y, 1)
    RNN:  Wax (n_a, n_x), Waa (n_a, n_a), ba (n_a, 1),                  readout Wya (n_y, n_a), by (n_y, 1)
    sequences: x (n_x, m, T_x) against torch's (T, B, D)

Coursera has one bias per gate, so torch -> Coursera sums the two biases (b_ih + b_hh, which is what
the gates see) and Coursera -> torch puts the bias in bias_ih and zeros in bias_hh. The readout
(Wy, by) is not part of a torch recurrent layer; it travels as ``head`` = {"weight": (n_y, n_a),
"bias": (n_y,)} (torch.nn.Linear's names).

Keras (tf.keras / Keras 3): kernel (D, G*H), recurrent_kernel (H, G*H): the transposes of torch's
weights. Gate order LSTM i, f, c, o (= torch's i, f, g, o); GRU z, r, h (torch: r, z, n). Biases:
LSTM and SimpleRNN one bias (G*H,); GRU with reset_after=True (Keras' default, the torch/cuDNN
convention) a (2, 3H) bias [input; recurrent], with reset_after=False one (3H,) bias and the Cho
convention. Dicts are in get_weights() order, so list(d.values()) can go to set_weights().
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from gated_lib.errors import GatedLibError, ShapeError, check_array
from gated_lib.gru import GRU_CHO, GRU_PYTORCH
from gated_lib.lstm import LSTM
from gated_lib.rnn import RNN_TANH
from gated_lib.sequence import layer_suffix, validate_params

_TORCH_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
_TORCH_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def _np(v) -> np.ndarray:
    """A numpy copy of an array or a torch tensor (detached, on the CPU)."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.array(v, copy=True)


# ----------------------------------------------------------------------------------------------------
# torch
# ----------------------------------------------------------------------------------------------------

def from_torch(state_dict) -> list[dict]:
    """Per-layer parameter dicts from a torch.nn.RNN/LSTM/GRU state_dict (or the module itself).

    Inputs:
    - state_dict: mapping of torch's keys (weight_ih_l0, ..., weight_hh_l1_reverse) to tensors or
      arrays, or a module with .state_dict()

    Returns a list of dicts (numpy copies), in torch's order l0, [l0_reverse,] l1, ...; each has
    weight_ih, weight_hh [, bias_ih, bias_hh] [, weight_hr]. Pass bidirectional=True to the forward
    when the state_dict had "_reverse" keys (torch_layout(state_dict) says).
    """
    if hasattr(state_dict, "state_dict") and callable(state_dict.state_dict):
        state_dict = state_dict.state_dict()
    if not isinstance(state_dict, Mapping):
        raise GatedLibError(f"state_dict: expected a mapping or a torch module, got {type(state_dict).__name__}")
    found = {}
    for key, value in state_dict.items():
        m = _TORCH_KEY.match(key)
        if not m:
            raise GatedLibError(f"state_dict: unexpected key {key!r}; expected torch.nn.RNN/LSTM/GRU keys "
                                "such as 'weight_ih_l0' or 'bias_hh_l1_reverse' (strip any module prefix)")
        name, layer, rev = m.group(1), int(m.group(2)), bool(m.group(3))
        found.setdefault((layer, int(rev)), {})[name] = _np(value)
    if not found:
        raise GatedLibError("state_dict: empty")
    dirs = 2 if any(d for _, d in found) else 1
    L = 1 + max(layer for layer, _ in found)
    expected = [(layer, d) for layer in range(L) for d in range(dirs)]
    missing = [layer_suffix(*k) for k in expected if k not in found]
    if missing:
        raise GatedLibError(f"state_dict: missing every key of layer(s) {missing}")
    return [found[k] for k in expected]


def torch_layout(state_dict) -> dict:
    """num_layers, bidirectional, bias, proj_size, input_size, hidden_size and G of a torch state_dict."""
    if hasattr(state_dict, "state_dict") and callable(state_dict.state_dict):
        state_dict = state_dict.state_dict()
    layers = from_torch(state_dict)
    bidirectional = any(k.endswith("_reverse") for k in state_dict)
    first = layers[0]
    proj = first.get("weight_hr")
    H = proj.shape[1] if proj is not None else first["weight_hh"].shape[1]
    return dict(num_layers=len(layers) // (2 if bidirectional else 1), bidirectional=bidirectional,
                bias="bias_ih" in first, proj_size=0 if proj is None else proj.shape[0],
                input_size=first["weight_ih"].shape[1], hidden_size=H, G=first["weight_hh"].shape[0] // H)


def to_torch(layers, bidirectional: bool = False, tensors: bool = False) -> dict:
    """A torch.nn.RNN/LSTM/GRU state_dict from per-layer dicts (a single dict is one layer).

    Inputs:
    - layers: dict or list of dicts in torch's order (l0, [l0_reverse,] l1, ...)
    - bidirectional: whether the list holds two directions per layer
    - tensors: return torch tensors (for module.load_state_dict) instead of numpy arrays

    Returns a dict with torch's keys in torch's order. A single textbook "bias" becomes
    bias_ih = bias, bias_hh = 0 (the sum the gates see is unchanged).
    """
    if isinstance(layers, Mapping):
        layers = [layers]
    dirs = 2 if bidirectional else 1
    if not layers or len(layers) % dirs:
        raise GatedLibError(f"layers: expected a non-empty list with {dirs} dict(s) per layer, got {len(layers)}")
    out = {}
    for k, p in enumerate(layers):
        suffix = layer_suffix(*divmod(k, dirs))
        extra = [n for n in p if n not in _TORCH_NAMES + ("bias",)]
        if extra:
            raise GatedLibError(f"layers[{k}]: {extra} have no place in a torch.nn RNN/LSTM/GRU state_dict")
        p = dict(p)
        if p.get("bias") is not None:
            b = _np(p.pop("bias"))
            p["bias_ih"], p["bias_hh"] = b, np.zeros_like(b)
        for name in _TORCH_NAMES:
            if p.get(name) is not None:
                out[name + suffix] = _np(p[name])
    if tensors:
        import torch  # noqa: PLC0415 - torch is optional for the numpy reference
        out = {k: torch.from_numpy(v) for k, v in out.items()}
    return out


# ----------------------------------------------------------------------------------------------------
# Coursera
# ----------------------------------------------------------------------------------------------------

_COURSERA_LSTM = (("i", "Wi", "bi"), ("f", "Wf", "bf"), ("g", "Wc", "bc"), ("o", "Wo", "bo"))


def _bias_sum(P: dict, n: int, dtype) -> np.ndarray:
    if "bias" in P:
        return P["bias"].copy()
    b = np.zeros(n, dtype)
    for k in ("bias_ih", "bias_hh"):
        if k in P:
            b = b + P[k]
    return b


def _head_to(head, names, n_a):
    if head is None:
        return {}
    W = check_array("head['weight']", head["weight"], (None, n_a), "(n_y, n_a)")
    b = check_array("head['bias']", head["bias"], (W.shape[0],), "(n_y,)")
    return {names[0]: W.copy(), names[1]: b.reshape(-1, 1).copy()}


def _head_from(parameters, names):
    if names[0] not in parameters:
        return None
    W = _np(parameters[names[0]])
    return {"weight": W, "bias": _np(parameters[names[1]]).reshape(W.shape[0])}


def to_coursera_lstm(params, head=None) -> dict:
    """Coursera's LSTM parameters from an LSTM params dict (and an optional readout).

    Inputs:
    - params: weight_ih (4H, D), weight_hh (4H, H), biases (4H,) (two, one or none)
    - head:   optional {"weight": (n_y, H), "bias": (n_y,)}

    Returns {Wf, bf, Wi, bi, Wc, bc, Wo, bo [, Wy, by]}: W (n_a, n_a + n_x) on [a_prev; x],
    b (n_a, 1) = b_ih + b_hh of the gate.
    """
    P, H, _ = validate_params(LSTM, params)
    b = _bias_sum(P, 4 * H, P["weight_ih"].dtype)
    out = {}
    for k, (_, W_name, b_name) in enumerate(_COURSERA_LSTM):
        rows = slice(k * H, (k + 1) * H)
        out[W_name] = np.concatenate([P["weight_hh"][rows], P["weight_ih"][rows]], axis=1)
        out[b_name] = b[rows].reshape(H, 1).copy()
    ordered = {k: out[k] for k in ("Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo")}
    ordered.update(_head_to(head, ("Wy", "by"), H))
    return ordered


def from_coursera_lstm(parameters) -> tuple:
    """An LSTM params dict (torch layout) from Coursera's parameters.

    Inputs:
    - parameters: {Wf, bf, Wi, bi, Wc, bc, Wo, bo [, Wy, by]} as in to_coursera_lstm

    Returns ``(params, head)``: params weight_ih (4H, D), weight_hh (4H, H), bias_ih (4H,) = the
    Coursera biases, bias_hh (4H,) = 0; head {"weight", "bias"} or None without Wy.
    """
    missing = [n for _, W, b in _COURSERA_LSTM for n in (W, b) if n not in parameters]
    if missing:
        raise GatedLibError(f"parameters: missing {missing} (expected Coursera's Wf, bf, Wi, bi, Wc, bc, Wo, bo)")
    Wf = _np(parameters["Wf"])
    if Wf.ndim != 2:
        raise ShapeError(f"Wf: expected shape (n_a, n_a + n_x), got {Wf.shape}")
    H = Wf.shape[0]
    D = Wf.shape[1] - H
    Ws, bs = [], []
    for _, W_name, b_name in _COURSERA_LSTM:
        Ws.append(check_array(W_name, _np(parameters[W_name]), (H, H + D), "(n_a, n_a + n_x)"))
        bs.append(check_array(b_name, _np(parameters[b_name]), (H, 1), "(n_a, 1)").reshape(H))
    W = np.concatenate(Ws, axis=0)
    b = np.concatenate(bs)
    params = {"weight_ih": W[:, H:].copy(), "weight_hh": W[:, :H].copy(), "bias_ih": b, "bias_hh": np.zeros_like(b)}
    return params, _head_from(parameters, ("Wy", "by"))


def to_coursera_rnn(params, head=None) -> dict:
    """Coursera's RNN parameters {Wax (n_a, n_x), Waa (n_a, n_a), ba (n_a, 1) [, Wya, by]} from an RNN
    params dict (biases summed) and an optional readout head {"weight": (n_y, H), "bias": (n_y,)}."""
    P, H, _ = validate_params(RNN_TANH, params)
    out = {"Wax": P["weight_ih"].copy(), "Waa": P["weight_hh"].copy(),
           "ba": _bias_sum(P, H, P["weight_ih"].dtype).reshape(H, 1)}
    out.update(_head_to(head, ("Wya", "by"), H))
    return out


def from_coursera_rnn(parameters) -> tuple:
    """``(params, head)`` from Coursera's {Wax, Waa, ba [, Wya, by]}: bias_ih = ba, bias_hh = 0."""
    missing = [n for n in ("Wax", "Waa", "ba") if n not in parameters]
    if missing:
        raise GatedLibError(f"parameters: missing {missing} (expected Coursera's Wax, Waa, ba)")
    Waa = _np(parameters["Waa"])
    if Waa.ndim != 2 or Waa.shape[0] != Waa.shape[1]:
        raise ShapeError(f"Waa: expected shape (n_a, n_a), got {Waa.shape}")
    H = Waa.shape[0]
    Wax = check_array("Wax", _np(parameters["Wax"]), (H, None), "(n_a, n_x)")
    ba = check_array("ba", _np(parameters["ba"]), (H, 1), "(n_a, 1)").reshape(H)
    params = {"weight_ih": Wax, "weight_hh": Waa, "bias_ih": ba, "bias_hh": np.zeros_like(ba)}
    return params, _head_from(parameters, ("Wya", "by"))


def to_coursera_sequence(x) -> np.ndarray:
    """Time-major (T, B, D) -> Coursera's (n_x, m, T_x) (a transposed copy)."""
    x = check_array("x", x, (None, None, None), "(T, B, D)", finite=False)
    return np.ascontiguousarray(x.transpose(2, 1, 0))


def from_coursera_sequence(x) -> np.ndarray:
    """Coursera's (n_x, m, T_x) -> time-major (T, B, D) (a transposed copy)."""
    x = check_array("x", x, (None, None, None), "(n_x, m, T_x)", finite=False)
    return np.ascontiguousarray(x.transpose(2, 1, 0))


# ----------------------------------------------------------------------------------------------------
# Keras
# ----------------------------------------------------------------------------------------------------

_KERAS_KEYS = ("kernel", "recurrent_kernel", "bias")
_GRU_TO_KERAS = (1, 0, 2)      # keras block k is torch block _GRU_TO_KERAS[k]: (z, r, h) <- (r, z, n); self-inverse


def _keras_weights(weights) -> dict:
    if isinstance(weights, Mapping):
        missing = [k for k in _KERAS_KEYS[:2] if k not in weights]
        if missing:
            raise GatedLibError(f"weights: missing {missing} (expected kernel, recurrent_kernel[, bias])")
        return {k: _np(weights[k]) for k in _KERAS_KEYS if weights.get(k) is not None}
    weights = list(weights)
    if len(weights) not in (2, 3):
        raise GatedLibError(f"weights: expected [kernel, recurrent_kernel, bias] (get_weights()), got {len(weights)} arrays")
    return {k: _np(v) for k, v in zip(_KERAS_KEYS, weights)}


def _reorder(a: np.ndarray, order, H: int, axis: int = 0) -> np.ndarray:
    blocks = [np.take(a, range(k * H, (k + 1) * H), axis=axis) for k in order]
    return np.concatenate(blocks, axis=axis)


def _keras_kernels(w: dict, G: int, name: str):
    R = w["recurrent_kernel"]
    if R.ndim != 2 or R.shape[1] != G * R.shape[0]:
        raise ShapeError(f"recurrent_kernel: expected shape (H, {G}H) for a Keras {name}, got {R.shape}")
    H = R.shape[0]
    K = check_array("kernel", w["kernel"], (None, G * H), f"(D, {G}H)")
    return K, R, H


def to_keras_lstm(params) -> dict:
    """Keras LSTM weights {kernel (D, 4H), recurrent_kernel (H, 4H), bias (4H,) = b_ih + b_hh}."""
    P, H, R = validate_params(LSTM, params)
    if "weight_hr" in P:
        raise GatedLibError("params: Keras' LSTM has no projection (weight_hr)")
    return {"kernel": P["weight_ih"].T.copy(), "recurrent_kernel": P["weight_hh"].T.copy(),
            "bias": _bias_sum(P, 4 * H, P["weight_ih"].dtype)}


def from_keras_lstm(weights) -> dict:
    """LSTM params (torch layout) from Keras weights (dict or get_weights() list): bias_ih = bias,
    bias_hh = 0; gate order i, f, c, o is already torch's i, f, g, o."""
    w = _keras_weights(weights)
    K, R, H = _keras_kernels(w, 4, "LSTM")
    params = {"weight_ih": K.T.copy(), "weight_hh": R.T.copy()}
    if "bias" in w:
        b = check_array("bias", w["bias"], (4 * H,), "(4H,)")
        params.update(bias_ih=b, bias_hh=np.zeros_like(b))
    return params


def to_keras_gru(params, reset_after: bool = True) -> dict:
    """Keras GRU weights from GRU params (gate blocks reordered r, z, n -> z, r, h).

    reset_after=True: the torch/cuDNN convention; bias (2, 3H) = [b_ih; b_hh] reordered.
    reset_after=False: Keras computes the Cho convention; bias (3H,) = b_ih + b_hh reordered, which is
    exact for gru_forward(..., convention="cho") with the same params (both biases sit outside r).
    """
    P, H, _ = validate_params(GRU_PYTORCH, params)
    dt = P["weight_ih"].dtype
    out = {"kernel": _reorder(P["weight_ih"], _GRU_TO_KERAS, H).T.copy(),
           "recurrent_kernel": _reorder(P["weight_hh"], _GRU_TO_KERAS, H).T.copy()}
    if reset_after:
        if "bias" in P:
            b_ih, b_hh = P["bias"], np.zeros(3 * H, dt)
        else:
            b_ih, b_hh = P.get("bias_ih", np.zeros(3 * H, dt)), P.get("bias_hh", np.zeros(3 * H, dt))
        out["bias"] = np.stack([_reorder(b_ih, _GRU_TO_KERAS, H), _reorder(b_hh, _GRU_TO_KERAS, H)])
    else:
        validate_params(GRU_CHO, params)
        out["bias"] = _reorder(_bias_sum(P, 3 * H, dt), _GRU_TO_KERAS, H)
    return out


def from_keras_gru(weights) -> tuple:
    """``(params, convention)`` from Keras GRU weights (dict or get_weights() list).

    The bias shape says which GRU it was: (2, 3H) is reset_after=True -> convention "pytorch",
    bias_ih/bias_hh = the two rows; (3H,) is reset_after=False -> convention "cho", bias_ih = bias,
    bias_hh = 0. Pass the convention to gru_forward.
    """
    w = _keras_weights(weights)
    K, R, H = _keras_kernels(w, 3, "GRU")
    params = {"weight_ih": _reorder(K.T, _GRU_TO_KERAS, H), "weight_hh": _reorder(R.T, _GRU_TO_KERAS, H)}
    convention = "pytorch"
    if "bias" in w:
        b = w["bias"]
        if b.shape == (2, 3 * H):
            params.update(bias_ih=_reorder(b[0], _GRU_TO_KERAS, H), bias_hh=_reorder(b[1], _GRU_TO_KERAS, H))
        elif b.shape == (3 * H,):
            convention = "cho"
            params.update(bias_ih=_reorder(b, _GRU_TO_KERAS, H), bias_hh=np.zeros(3 * H, b.dtype))
        else:
            raise ShapeError(f"bias: expected shape (2, 3H) = (2, {3 * H}) (reset_after=True) or "
                             f"(3H,) = ({3 * H},) (reset_after=False), got {b.shape}")
    return params, convention


def to_keras_rnn(params) -> dict:
    """Keras SimpleRNN weights {kernel (D, H), recurrent_kernel (H, H), bias (H,) = b_ih + b_hh}."""
    P, H, _ = validate_params(RNN_TANH, params)
    return {"kernel": P["weight_ih"].T.copy(), "recurrent_kernel": P["weight_hh"].T.copy(),
            "bias": _bias_sum(P, H, P["weight_ih"].dtype)}


def from_keras_rnn(weights) -> dict:
    """RNN params (torch layout) from Keras SimpleRNN weights: bias_ih = bias, bias_hh = 0."""
    w = _keras_weights(weights)
    K, R, H = _keras_kernels(w, 1, "SimpleRNN")
    params = {"weight_ih": K.T.copy(), "weight_hh": R.T.copy()}
    if "bias" in w:
        b = check_array("bias", w["bias"], (H,), "(H,)")
        params.update(bias_ih=b, bias_hh=np.zeros_like(b))
    return params
