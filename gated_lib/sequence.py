"""The time loop and the layer stack, shared by every cell (forward and backpropagation through time).

A cell is given to this module as two *step functions* that start from the input projection:

    xp_t = x_t W_ih^T + b_in                (B, G*H)   computed for all t at once, before the loop
    step(xp_t, state, P)            -> new_state, step_cache
    step_backward(dstate, step_cache, P, grads) -> dxp_t, dstate_prev

so that the hot loop holds exactly one fused recurrent GEMM per step (h_{t-1} W_hh^T, all G gates at
once) and the input GEMM is done once for the whole sequence, x.reshape(T*B, D) @ W_ih^T. In the
backward pass the mirror image holds: dx = dXP W_ih and dW_ih = dXP^T X are each one GEMM over T*B rows.

b_in is the input-side bias. For every cell but the PyTorch GRU, b_ih and b_hh are simply added, so
b_in = b_ih + b_hh (or the single textbook ``bias``) and the step functions see no bias at all; the
PyTorch GRU keeps b_hn inside r * (W_hn h + b_hn), so its step function adds bias_hh itself.

Stacking (torch.nn's num_layers and bidirectional): ``params`` is a list of per-layer dicts in torch's
order l0, l0_reverse, l1, l1_reverse, ... (the order of h_n's first axis). Layer l > 0 reads the
concatenated outputs of layer l - 1, of size R * dirs (R = H, or P with proj_size). The reverse
direction reads the sequence backwards and its outputs are flipped back, so out[t] = [h_t^fwd; h_t^rev].

Shapes (time-major): x (T, B, D); out (T, B, dirs*R); h0, h_n (B, R) for one layer given as a dict,
(L*dirs, B, R) for a list; c0, c_n likewise with H.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gated_lib.catalog import CellInfo
from gated_lib.errors import (GatedLibError, ShapeError, check_array, check_same_dtype,
                              check_sequence)


class Cell:
    """A cell's equations (two step functions) plus its catalogue row.

    fold_hidden_bias: b_hh may be added to b_ih before the loop (True for all but the PyTorch GRU).
    fast_forward:     optional specialised sequence forward with the same cache (the LSTM has one);
                      it may attach ``cache.stacked`` (arrays over all steps) for fast_backward.
    fast_backward:    optional specialised BPTT used when the cache has ``stacked``:
                      fast_backward(dout, cache, dstate, grads) -> (dXP (T*B, G*H), dstate0).
    """

    def __init__(self, info: CellInfo, step, step_backward, fold_hidden_bias: bool = True,
                 fast_forward=None, fast_backward=None):
        self.info = info
        self.name = info.name
        self.step = step
        self.step_backward = step_backward
        self.fold_hidden_bias = fold_hidden_bias
        self.fast_forward = fast_forward
        self.fast_backward = fast_backward

    def __repr__(self) -> str:
        return f"Cell({self.name!r}, gates={self.info.gates})"


class SequenceCache(list):
    """The cache of one layer run over a sequence: a list whose entry t is step t's cache.

    cache[t] holds the same keys as the cell forward's cache (so ``*_cell_backward(dout, cache[t])``
    works on it, and plots can read cache[t]["f"]). The attributes carry what the sequence backward
    needs besides: cell, params (validated), x (T, B, D), state0, b_in.
    """

    def __init__(self, cell: Cell, params: dict, x: np.ndarray, state0: tuple, b_in):
        super().__init__()
        self.cell, self.params, self.x, self.state0, self.b_in = cell, params, x, state0, b_in
        self.stacked = None


class StackCache:
    """The cache of a stack: one SequenceCache per layer and direction, in torch's order."""

    def __init__(self, cell: Cell, layers: list, num_layers: int, bidirectional: bool, x: np.ndarray):
        self.cell, self.layers, self.num_layers, self.bidirectional, self.x = (
            cell, layers, num_layers, bidirectional, x)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, k: int) -> SequenceCache:
        return self.layers[k]


# ----------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------

def _allowed_names(info: CellInfo) -> list[str]:
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "bias", *info.peepholes]
    return names + (["weight_hr"] if info.proj else [])


def validate_params(cell: Cell, params, input_size: int | None = None, suffix: str = ""):
    """Check a per-layer parameter dict against the cell; return (P, H, R).

    P holds the validated arrays under torch's names (absent biases are absent). H is the hidden
    size, R the size of h (P with proj_size, otherwise H). `suffix` ("_l1_reverse") names the layer in
    messages, so that an error reads like the torch state_dict key that is wrong.
    Keys that start with "weight" or "bias" must be parameters of this cell (a typo such as
    "bias_hn" is an error, not silently ignored); other keys are ignored.
    """
    info = cell.info
    G = info.G
    if not isinstance(params, Mapping):
        raise GatedLibError(f"params{suffix}: expected a dict with torch's parameter names "
                            f"(weight_ih, weight_hh, bias_ih, bias_hh), got {type(params).__name__}")
    allowed = _allowed_names(info)
    unknown = [k for k in params if isinstance(k, str) and k.startswith(("weight", "bias")) and k not in allowed]
    if unknown:
        hint = (" (keys with a layer suffix come from a torch state_dict: "
                "gated_lib.convert.from_torch splits it into per-layer dicts)"
                if any("_l" in k for k in unknown) else "")
        raise GatedLibError(f"params{suffix}: unexpected parameter(s) {unknown} for the {info.name} cell; "
                            f"expected names among {allowed}{hint}")
    for key in ("weight_ih", "weight_hh", *info.peepholes):
        if params.get(key) is None:
            raise GatedLibError(f"params{suffix}: missing '{key}' for the {info.name} cell "
                                f"(have {sorted(k for k in params if isinstance(k, str))})")
    if params.get("bias") is not None and (params.get("bias_ih") is not None or params.get("bias_hh") is not None):
        raise GatedLibError(f"params{suffix}: give either 'bias' (one textbook bias) or 'bias_ih'/'bias_hh' "
                            "(torch's two biases), not both")
    W_hh = params["weight_hh"]
    W_hh = W_hh if isinstance(W_hh, np.ndarray) else np.asarray(W_hh)
    GH = f"{G}H" if G > 1 else "H"
    proj = params.get("weight_hr") is not None
    if proj:
        # With a projection, weight_hh is (G*H, P): H comes from weight_hr (P, H).
        W_hr = params["weight_hr"]
        W_hr = W_hr if isinstance(W_hr, np.ndarray) else np.asarray(W_hr)
        if W_hr.ndim != 2 or 0 in W_hr.shape:
            raise ShapeError(f"weight_hr{suffix}: expected shape (P, H), got {tuple(W_hr.shape)}")
        R, H = W_hr.shape
    else:
        # weight_hh is (G*H, H): its columns give H, and its rows must be G times that.
        if W_hh.ndim != 2 or W_hh.shape[1] == 0 or W_hh.shape[0] != G * W_hh.shape[1]:
            raise ShapeError(f"weight_hh{suffix}: expected shape ({GH}, H) for the {G} gate(s) "
                             f"{', '.join(info.gates)} of the {info.name} cell (rows = {G} x columns), "
                             f"got {tuple(W_hh.shape)}")
        H = R = W_hh.shape[1]
    W_hh = check_array(f"weight_hh{suffix}", W_hh, (G * H, R), f"({GH}, {'P' if proj else 'H'})")
    P = {"weight_ih": check_array(f"weight_ih{suffix}", params["weight_ih"], (G * H, input_size), f"({GH}, D)"),
         "weight_hh": W_hh}
    for key in ("bias_ih", "bias_hh", "bias"):
        if params.get(key) is not None:
            P[key] = check_array(f"{key}{suffix}", params[key], (G * H,), f"({GH},)")
    if proj:
        P["weight_hr"] = check_array(f"weight_hr{suffix}", params["weight_hr"], (R, H), "(P, H)")
    for key in info.peepholes:
        P[key] = check_array(f"{key}{suffix}", params[key], (H,), "(H,)")
    check_same_dtype(**{k + suffix: v for k, v in P.items()})
    return P, H, R


def check_input(x, weight_ih: np.ndarray, sequence: bool, weight_name: str = "weight_ih") -> np.ndarray:
    """x (T, B, D) or (B, D) with the D that weight_ih fixes; a mismatch names both arrays."""
    D = weight_ih.shape[1]
    x = x if isinstance(x, np.ndarray) else np.asarray(x)
    dims = "(T, B, D)" if sequence else "(B, D)"
    if not sequence and x.ndim == 3:
        raise ShapeError(f"x: expected shape (B, D) = (B, {D}) (one time step; use the sequence forward "
                         f"for (T, B, D)), got {tuple(x.shape)}")
    if x.ndim == (3 if sequence else 2) and x.shape[-1] != D and not (sequence and x.shape[0] == 0):
        expected = "(T, B, " if sequence else "(B, "
        raise ShapeError(f"x: expected shape {dims} = {expected}{D}), got {tuple(x.shape)}; "
                         f"D is fixed by {weight_name}, shape {tuple(weight_ih.shape)}")
    return check_sequence("x", x, D) if sequence else check_array("x", x, (None, D), dims)


def input_bias(cell: Cell, P: dict):
    """b_in, the bias added to the input projection before the loop (None without biases)."""
    if "bias" in P:
        return P["bias"]
    b = P.get("bias_ih")
    if cell.fold_hidden_bias and "bias_hh" in P:
        b = P["bias_hh"] if b is None else b + P["bias_hh"]
    return b


def _state_names(info: CellInfo, initial: str) -> tuple:
    return (f"h{initial}", f"c{initial}") if info.has_cell_state else (f"h{initial}",)


# ----------------------------------------------------------------------------------------------------
# Gradient bookkeeping
# ----------------------------------------------------------------------------------------------------

def _hidden_grads(cell: Cell, P: dict) -> dict:
    """Zeroed accumulators for the parameters the step functions touch (the recurrent side)."""
    grads = {k: np.zeros_like(P[k]) for k in ("weight_hh", "weight_hr", *cell.info.peepholes) if k in P}
    if not cell.fold_hidden_bias and "bias_hh" in P:
        grads["bias_hh"] = np.zeros_like(P["bias_hh"])
    return grads


def _param_grads(cell: Cell, P: dict, dW_ih: np.ndarray, db_in: np.ndarray, hidden: dict) -> dict:
    """Every parameter's gradient under its torch name, in P's order."""
    out = {}
    for k in P:
        if k == "weight_ih":
            out[k] = dW_ih
        elif k in ("bias", "bias_ih"):
            out[k] = db_in
        elif k == "bias_hh":
            # Folded: b_hh entered exactly as b_ih did, so it gets the same gradient.
            out[k] = hidden["bias_hh"] if "bias_hh" in hidden else db_in.copy()
        else:
            out[k] = hidden[k]
    return out


def _dstate(info: CellInfo, dout, shapes: tuple, dtype, names: tuple) -> tuple:
    """Normalise an upstream state gradient (array, tuple, or None parts) into a tuple of arrays."""
    parts = dout if isinstance(dout, (tuple, list)) else (dout,)
    if len(parts) > len(shapes):
        raise GatedLibError(f"dout: expected {' and '.join(names)} (a tuple of {len(shapes)} arrays), got {len(parts)}")
    parts = tuple(parts) + (None,) * (len(shapes) - len(parts))
    dims = ("(B, H)",) * len(shapes)
    return tuple(np.zeros(s, dtype) if p is None else check_array(n, p, s, d)
                 for p, s, n, d in zip(parts, shapes, names, dims))


# ----------------------------------------------------------------------------------------------------
# One step
# ----------------------------------------------------------------------------------------------------

def cell_forward(cell: Cell, x, state: tuple, params):
    """One step of `cell`: ``(new_state, cache)``, new_state a tuple (h,) or (h, c)."""
    # Parameters first: they fix D, so a wrongly shaped x is reported against the size it must have.
    P, H, R = validate_params(cell, params)
    x = check_input(x, P["weight_ih"], sequence=False)
    B = x.shape[0]
    names = _state_names(cell.info, "_prev")
    shapes = ((B, R), (B, H))[:len(names)]
    state = tuple(check_array(n, s, shp, "(B, P)" if (n == "h_prev" and R != H) else "(B, H)")
                  for n, s, shp in zip(names, state, shapes))
    check_same_dtype(x=x, **dict(zip(names, state)), weight_ih=P["weight_ih"])
    xp = x @ P["weight_ih"].T
    b_in = input_bias(cell, P)
    if b_in is not None:
        xp += b_in
    new_state, cache = cell.step(xp, state, P)
    cache.update(x=x, weight_ih=P["weight_ih"], weight_hh=P["weight_hh"], params=P, cell=cell)
    return new_state, cache


def cell_backward(dout, cache: dict) -> dict:
    """Gradients of one step: x, h_prev (, c_prev) and every parameter, from dout = dh or (dh, dc)."""
    cell, P, x = cache["cell"], cache["params"], cache["x"]
    names = _state_names(cell.info, "")
    shapes = tuple(np.shape(cache[k]) for k in _state_names(cell.info, "_prev"))
    dstate = _dstate(cell.info, dout, shapes, x.dtype, tuple("d" + n for n in names))
    hidden = _hidden_grads(cell, P)
    dxp, dprev = cell.step_backward(dstate, cache, P, hidden)
    grads = {"x": dxp @ P["weight_ih"]}
    grads.update(zip(_state_names(cell.info, "_prev"), dprev))
    grads.update(_param_grads(cell, P, dxp.T @ x, dxp.sum(axis=0), hidden))
    return grads


# ----------------------------------------------------------------------------------------------------
# One layer over a sequence
# ----------------------------------------------------------------------------------------------------

def layer_forward(cell: Cell, x: np.ndarray, P: dict, state0: tuple, b_in):
    """Run validated inputs through one layer: ``(out, final_state), SequenceCache``."""
    if cell.fast_forward is not None and "weight_hr" not in P:
        return cell.fast_forward(cell, x, P, state0, b_in)
    T, B, D = x.shape
    GH = P["weight_ih"].shape[0]
    XP = (x.reshape(T * B, D) @ P["weight_ih"].T).reshape(T, B, GH)
    if b_in is not None:
        XP += b_in
    R = P["weight_hh"].shape[1]
    out = np.empty((T, B, R), dtype=x.dtype)
    cache = SequenceCache(cell, P, x, state0, b_in)
    state = state0
    for t in range(T):
        state, step = cell.step(XP[t], state, P)
        # h_t lives in out[t]; the step cache and the next step read that view, so it is stored once.
        out[t] = state[0]
        state = (out[t],) + tuple(state[1:])
        step.update(h=out[t], x=x[t], weight_ih=P["weight_ih"], weight_hh=P["weight_hh"], params=P, cell=cell)
        cache.append(step)
    # The cache keeps its own h and c: the caller may change what it receives without breaking BPTT.
    return (out.copy(), tuple(s.copy() for s in state)), cache


def layer_backward(dout, cache: SequenceCache, dfinal: tuple = ()) -> dict:
    """BPTT through one layer: gradients of x, the initial state(s) and every parameter."""
    cell, P, x = cache.cell, cache.params, cache.x
    T, B, D = x.shape
    R = P["weight_hh"].shape[1]
    H = P["weight_hh"].shape[0] // cell.info.G
    dout = check_array("dout", dout, (T, B, R), "(T, B, H)")
    names = tuple("d" + n for n in _state_names(cell.info, "_n"))
    shapes = ((B, R), (B, H))[:len(names)]
    dstate = _dstate(cell.info, tuple(dfinal), shapes, x.dtype, names)
    hidden = _hidden_grads(cell, P)
    GH = P["weight_ih"].shape[0]
    if cell.fast_backward is not None and cache.stacked is not None:
        dXP2, dstate = cell.fast_backward(dout, cache, dstate, hidden)
    else:
        dXP = np.empty((T, B, GH), dtype=x.dtype)
        for t in range(T - 1, -1, -1):
            dstate = (dstate[0] + dout[t],) + tuple(dstate[1:])
            dXP[t], dstate = cell.step_backward(dstate, cache[t], P, hidden)
        dXP2 = dXP.reshape(T * B, GH)
    grads = {"x": (dXP2 @ P["weight_ih"]).reshape(T, B, D)}
    grads.update(zip(_state_names(cell.info, "0"), dstate))
    grads.update(_param_grads(cell, P, dXP2.T @ x.reshape(T * B, D), dXP2.sum(axis=0), hidden))
    return grads


# ----------------------------------------------------------------------------------------------------
# Public drivers: a dict is one layer, a list is a stack
# ----------------------------------------------------------------------------------------------------

def _final(info: CellInfo, state: tuple):
    return state if info.has_cell_state else state[0]


def sequence_forward(cell: Cell, x, params, h0=None, c0=None, bidirectional: bool = False):
    """Run `cell` over x (T, B, D).

    params: one dict (one layer; h0, c0 (B, H)) or a list of dicts in torch's order (a stack;
    h0, c0 (L*dirs, B, H)). Returns ``(out, final), cache`` with final = h_n or (h_n, c_n).
    """
    if isinstance(params, Mapping):
        if bidirectional:
            raise GatedLibError("params: bidirectional=True needs a list of per-layer dicts "
                                "(l0, l0_reverse, ...), got one dict")
        return _single_forward(cell, x, params, h0, c0)
    if isinstance(params, (list, tuple)):
        return _stack_forward(cell, x, list(params), h0, c0, bidirectional)
    raise GatedLibError(f"params: expected a dict (one layer) or a list of dicts (a stack), got {type(params).__name__}")


def sequence_backward(dout, cache, dh_n=None, dc_n=None) -> dict:
    """BPTT for `sequence_forward`: gradients of x, h0 (, c0) and every parameter.

    dout (T, B, dirs*R) is the gradient of `out`; dh_n, dc_n (optional) those of the final states.
    One layer: parameter grads under torch's names (weight_ih, ...). A stack: under torch's
    state_dict names (weight_ih_l0, weight_ih_l0_reverse, ...).
    """
    if isinstance(cache, StackCache):
        return _stack_backward(dout, cache, dh_n, dc_n)
    if isinstance(cache, SequenceCache):
        if dc_n is not None and not cache.cell.info.has_cell_state:
            raise GatedLibError(f"dc_n: a {cache.cell.name} has no cell state")
        return layer_backward(dout, cache, (dh_n, dc_n)[:len(cache.state0)])
    raise GatedLibError(f"cache: expected the cache returned by the sequence forward, got {type(cache).__name__}")


def _initial_state(info, name, a, shape, dims, dtype):
    if a is None:
        return np.zeros(shape, dtype)
    return check_array(name, a, shape, dims)


def _single_forward(cell, x, params, h0, c0):
    P, H, R = validate_params(cell, params)
    x = check_input(x, P["weight_ih"], sequence=True)
    T, B, D = x.shape
    if c0 is not None and not cell.info.has_cell_state:
        raise GatedLibError(f"c0: a {cell.name} has no cell state")
    state0 = (_initial_state(cell.info, "h0", h0, (B, R), "(B, P)" if R != H else "(B, H)", x.dtype),)
    if cell.info.has_cell_state:
        state0 += (_initial_state(cell.info, "c0", c0, (B, H), "(B, H)", x.dtype),)
    check_same_dtype(x=x, **dict(zip(_state_names(cell.info, "0"), state0)), weight_ih=P["weight_ih"])
    (out, state), cache = layer_forward(cell, x, P, state0, input_bias(cell, P))
    return (out, _final(cell.info, state)), cache


def layer_suffix(layer: int, direction: int) -> str:
    """torch's state_dict suffix: layer 1, reverse direction -> "_l1_reverse"."""
    return f"_l{layer}" + ("_reverse" if direction else "")


def _stack_forward(cell, x, layers, h0, c0, bidirectional):
    dirs = 2 if bidirectional else 1
    if not layers or len(layers) % dirs:
        raise GatedLibError(f"params: expected a non-empty list of per-layer dicts in torch's order "
                            f"{'(l0, l0_reverse, l1, l1_reverse, ...)' if bidirectional else '(l0, l1, ...)'}, "
                            f"got {len(layers)} dict(s)")
    L = len(layers) // dirs
    validated, H, R = [], None, None
    for k, p in enumerate(layers):
        layer, direction = divmod(k, dirs)
        in_size = None if k == 0 else (validated[0]["weight_ih"].shape[1] if layer == 0 else R * dirs)
        P, Hk, Rk = validate_params(cell, p, in_size, layer_suffix(layer, direction))
        if H is not None and (Hk, Rk) != (H, R):
            raise ShapeError(f"weight_hh{layer_suffix(layer, direction)}: every layer must have the hidden "
                             f"size of layer 0 (H = {H}{f', P = {R}' if R != H else ''}), got H = {Hk}")
        H, R = Hk, Rk
        validated.append(P)
    x = check_input(x, validated[0]["weight_ih"], sequence=True, weight_name="weight_ih_l0")
    T, B, D = x.shape
    if c0 is not None and not cell.info.has_cell_state:
        raise GatedLibError(f"c0: a {cell.name} has no cell state")
    h0 = _initial_state(cell.info, "h0", h0, (L * dirs, B, R), "(L*dirs, B, H)", x.dtype)
    c0 = (_initial_state(cell.info, "c0", c0, (L * dirs, B, H), "(L*dirs, B, H)", x.dtype)
          if cell.info.has_cell_state else None)
    check_same_dtype(x=x, h0=h0, c0=c0, **{"weight_ih" + layer_suffix(*divmod(k, dirs)): P["weight_ih"]
                                          for k, P in enumerate(validated)})
    caches, finals = [], []
    inp = x
    for layer in range(L):
        outs = []
        for direction in range(dirs):
            k = layer * dirs + direction
            P = validated[k]
            state0 = (h0[k],) + ((c0[k],) if c0 is not None else ())
            seq = inp if direction == 0 else inp[::-1]
            (out, state), cache = layer_forward(cell, seq, P, state0, input_bias(cell, P))
            outs.append(out if direction == 0 else out[::-1])
            caches.append(cache)
            finals.append(state)
        inp = outs[0] if dirs == 1 else np.concatenate(outs, axis=-1)
    h_n = np.stack([s[0] for s in finals])
    final = (h_n, np.stack([s[1] for s in finals])) if cell.info.has_cell_state else h_n
    return (inp, final), StackCache(cell, caches, L, bidirectional, x)


def _stack_backward(dout, cache: StackCache, dh_n, dc_n):
    cell, L = cache.cell, cache.num_layers
    dirs = 2 if cache.bidirectional else 1
    x = cache.x
    T, B, _ = x.shape
    R = cache.layers[0].params["weight_hh"].shape[1]
    H = cache.layers[0].params["weight_hh"].shape[0] // cell.info.G
    dout = check_array("dout", dout, (T, B, dirs * R), "(T, B, dirs*H)")
    if dh_n is not None:
        dh_n = check_array("dh_n", dh_n, (L * dirs, B, R), "(L*dirs, B, H)")
    if dc_n is not None:
        if not cell.info.has_cell_state:
            raise GatedLibError(f"dc_n: a {cell.name} has no cell state")
        dc_n = check_array("dc_n", dc_n, (L * dirs, B, H), "(L*dirs, B, H)")
    dh0 = np.zeros((L * dirs, B, R), x.dtype)
    dc0 = np.zeros((L * dirs, B, H), x.dtype) if cell.info.has_cell_state else None
    per_layer = [None] * len(cache.layers)
    d_above = dout
    for layer in range(L - 1, -1, -1):
        d_in = None
        for direction in range(dirs):
            k = layer * dirs + direction
            d_part = d_above[..., direction * R:(direction + 1) * R]
            if direction:
                d_part = d_part[::-1]
            dfinal = (None if dh_n is None else dh_n[k],)
            if cell.info.has_cell_state:
                dfinal += (None if dc_n is None else dc_n[k],)
            g = layer_backward(d_part, cache.layers[k], dfinal)
            dx = g.pop("x")
            dx = dx if direction == 0 else dx[::-1]
            d_in = dx if d_in is None else d_in + dx
            dh0[k] = g.pop("h0")
            if dc0 is not None:
                dc0[k] = g.pop("c0")
            per_layer[k] = {name + layer_suffix(layer, direction): v for name, v in g.items()}
        d_above = d_in
    grads = {"x": d_above, "h0": dh0}
    if dc0 is not None:
        grads["c0"] = dc0
    for g in per_layer:
        grads.update(g)
    return grads
