"""Multi-layer recurrent modules built from the equations, with torch.nn's parameter names.

The idea: one module, ``Recurrent``, runs any cell of functional.py over a time-major sequence,
layer after layer, and stores its parameters exactly as torch.nn.LSTM / GRU / RNN do:

    weight_ih_l{k} (G*H, D_k)   weight_hh_l{k} (G*H, H)   bias_ih_l{k} (G*H,)   bias_hh_l{k} (G*H,)
    (+ weight_ci_l{k}, weight_cf_l{k}, weight_co_l{k} (H,) for the peephole LSTM)

with D_0 = input_size and D_k = hidden_size above. A state_dict of a standard cell (rnn_tanh,
rnn_relu, lstm, gru) therefore loads into torch.nn.RNN / LSTM / GRU and back, unchanged; and
with the same seed the default initialisation is the same, U(-1/sqrt(H), 1/sqrt(H)).

Backends, all computing the same function of the same parameters:

    "eager"   the step functions of functional.py, differentiated by autograd (readable; needed
              by the gradient-flow probe, which keeps every per-step state)
    "fused"   fused.py: the same equations with a hand-written BPTT (lstm, gru, gru_cho, rnn_*)
    "torch"   torch.nn's kernels (cuDNN on a GPU, the fused ATen kernel on CPU); standard cells only
    "auto"    torch where it exists, else fused, else eager  (the default)

Shapes: x (T, B, D); h0 (and c0) (L, B, H); returns out (T, B, H) (the last layer's h_t for
every t) and h_n (L, B, H), or (h_n, c_n) for the LSTM family, as torch.nn does.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
import torch.nn.functional as F

from gated_lib.errors import DTypeError, GatedLibError, ShapeError
from gated_lib.nn.functional import CellSpec, cell_spec, run_layer
from gated_lib.nn.fused import FUSED

BACKENDS = ("auto", "eager", "fused", "torch")


@dataclass
class RecurrentConfig:
    cell: str = "lstm"            # a name of functional.CELLS (or an alias)
    input_size: int = 1           # D
    hidden_size: int = 32         # H
    num_layers: int = 1           # L
    bias: bool = True             # the two torch biases, b_ih and b_hh
    dropout: float = 0.0          # between layers, in training mode, as torch.nn
    backend: str = "auto"
    forget_bias: float | None = None  # effective forget-gate bias (b_ih + b_hh); LSTM family only


def _check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise GatedLibError(f"{name}: expected a positive int, got {value!r}")


def _shape(t) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


class Recurrent(nn.Module):
    """Any cell of the course over a sequence, L layers deep, with torch.nn's layout.

    Recurrent(RecurrentConfig(cell="lstm", input_size=8, hidden_size=16)) or
    Recurrent(cell="lstm", input_size=8, hidden_size=16).
    """

    def __init__(self, config: RecurrentConfig | None = None, **kwargs):
        super().__init__()
        if config is None:
            config = RecurrentConfig(**kwargs)
        elif kwargs:
            raise GatedLibError(f"Recurrent: pass either a config or keyword arguments, got both (keywords {sorted(kwargs)})")
        spec = cell_spec(config.cell)
        _check_positive_int("input_size", config.input_size)
        _check_positive_int("hidden_size", config.hidden_size)
        _check_positive_int("num_layers", config.num_layers)
        if not 0.0 <= float(config.dropout) < 1.0:
            raise GatedLibError(f"dropout: expected a probability in [0, 1), got {config.dropout!r}")
        if config.backend not in BACKENDS:
            raise GatedLibError(f"backend: expected one of {BACKENDS}, got {config.backend!r}")
        config = replace(config, cell=spec.name)                 # a copy: the caller's config is not touched
        self.config = config
        self.spec: CellSpec = spec
        self.input_size, self.hidden_size, self.num_layers = config.input_size, config.hidden_size, config.num_layers
        G, H = spec.num_gates, config.hidden_size
        # Registration order = torch.nn's, so that the same seed gives the same initial weights.
        self._layer_names: list[list[str]] = []
        for k in range(config.num_layers):
            D = config.input_size if k == 0 else H
            shapes = {"weight_ih": (G * H, D)}
            if spec.recurrent:
                shapes["weight_hh"] = (G * H, H)
            if config.bias:
                shapes["bias_ih"] = (G * H,)
                if spec.recurrent:
                    shapes["bias_hh"] = (G * H,)
            for name in spec.diagonals:
                shapes[name] = (H,)
            names = []
            for name, shape in shapes.items():
                self.register_parameter(f"{name}_l{k}", nn.Parameter(torch.empty(shape)))
                names.append(name)
            self._layer_names.append(names)
        self.reset_parameters()
        self._check_backend(config.backend)

    # --- parameters ------------------------------------------------------------------------------

    def reset_parameters(self):
        """torch.nn's default: every parameter ~ U(-1/sqrt(H), 1/sqrt(H)); then the forget bias."""
        k = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            nn.init.uniform_(w, -k, k)
        if self.config.forget_bias is not None:
            self.set_forget_bias(self.config.forget_bias)

    @torch.no_grad()
    def set_forget_bias(self, value: float):
        """Make the *effective* forget bias b_ih[f] + b_hh[f] equal `value` in every layer.

        torch adds the two biases, so setting both slices to 1 gives 2: we put `value` in bias_ih's
        forget slice and 0 in bias_hh's (the same convention as gated_lib.lstm.init_lstm_params).
        """
        if "f" not in self.spec.gates or not self.spec.cell_state:
            raise GatedLibError(f"forget_bias: the cell {self.spec.name!r} has no forget gate "
                                f"(gates {self.spec.gates}); use an LSTM with an 'f' gate")
        if not self.config.bias:
            raise GatedLibError("forget_bias: the module was built with bias=False")
        H, j = self.hidden_size, self.spec.gates.index("f")
        for k in range(self.num_layers):
            getattr(self, f"bias_ih_l{k}")[j * H:(j + 1) * H] = value
            getattr(self, f"bias_hh_l{k}")[j * H:(j + 1) * H] = 0.0

    def layer_params(self, k: int) -> dict:
        """The parameters of layer k with the layer suffix dropped: {"weight_ih": ..., ...}."""
        return {name: getattr(self, f"{name}_l{k}") for name in self._layer_names[k]}

    # --- backends --------------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        return self.config.backend

    @backend.setter
    def backend(self, value: str):
        self._check_backend(value)
        self.config.backend = value

    def _check_backend(self, backend):
        if backend not in BACKENDS:
            raise GatedLibError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        if backend == "torch" and self.spec.torch_mode is None:
            raise GatedLibError(f"backend: 'torch' exists only for the cells with a torch.nn twin "
                                f"(rnn_tanh, rnn_relu, lstm, gru), not {self.spec.name!r}; use 'fused' or 'eager'")
        if backend == "fused" and self.spec.name not in FUSED:
            raise GatedLibError(f"backend: 'fused' exists for {sorted(FUSED)}, not {self.spec.name!r}; use 'eager'")

    def resolved_backend(self) -> str:
        """The backend that forward() will use now."""
        if self.config.backend != "auto":
            return self.config.backend
        if self.spec.torch_mode is not None:
            return "torch"
        return "fused" if self.spec.name in FUSED else "eager"

    @contextmanager
    def use_backend(self, backend: str):
        """Temporarily switch backend: ``with rnn.use_backend("eager"): ...``."""
        old = self.config.backend
        self.backend = backend
        try:
            yield self
        finally:
            self.config.backend = old

    def _torch_twin(self) -> nn.RNNBase:
        """A torch.nn.RNN/LSTM/GRU that *shares* this module's Parameter objects.

        Built on the meta device (no memory, no draw from the RNG), kept outside the module tree
        so that state_dict() and parameters() list every weight once, under torch.nn's names.
        """
        twin = self.__dict__.get("_twin")
        if twin is None:
            mode = self.spec.torch_mode
            kw = dict(num_layers=self.num_layers, bias=self.config.bias, dropout=float(self.config.dropout),
                      device="meta")
            if mode == "LSTM":
                twin = nn.LSTM(self.input_size, self.hidden_size, **kw)
            elif mode == "GRU":
                twin = nn.GRU(self.input_size, self.hidden_size, **kw)
            else:
                twin = nn.RNN(self.input_size, self.hidden_size,
                              nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **kw)
            self.__dict__["_twin"] = twin
        # Re-point on every call: cheap, and robust to load_state_dict(assign=True), deepcopy, .to().
        for name in twin._flat_weights_names:
            setattr(twin, name, getattr(self, name))
        twin.train(self.training)
        return twin

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_twin", None)                                  # rebuilt on demand
        return state

    # --- forward ---------------------------------------------------------------------------------

    def _initial_state(self, x, hx):
        L, B, H = self.num_layers, x.shape[1], self.hidden_size
        names = ("h0", "c0") if self.spec.cell_state else ("h0",)
        if hx is None:
            zeros = x.new_zeros(L, B, H)
            return tuple(zeros for _ in names)
        if self.spec.cell_state:
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise GatedLibError(f"hx: the {self.spec.name} cell has two states; expected a tuple (h0, c0) "
                                    f"of (L, B, H) = ({L}, {B}, {H}) tensors, got {type(hx).__name__}")
            states = tuple(hx)
        else:
            if isinstance(hx, (tuple, list)):
                if len(hx) != 1:
                    raise GatedLibError(f"hx: the {self.spec.name} cell has one state h0 (L, B, H); "
                                        f"got a sequence of {len(hx)}")
                hx = hx[0]
            states = (hx,)
        for name, s in zip(names, states):
            if not isinstance(s, torch.Tensor):
                raise GatedLibError(f"{name}: expected a tensor of shape (L, B, H) = ({L}, {B}, {H}), got {type(s).__name__}")
            if tuple(s.shape) != (L, B, H):
                raise ShapeError(f"{name}: expected shape (L, B, H) = ({L}, {B}, {H}), got {_shape(s)}")
            if s.dtype != x.dtype:
                raise DTypeError(f"{name}: expected dtype {x.dtype} (that of x), got {s.dtype}")
            if s.device != x.device:
                raise GatedLibError(f"{name}: expected a tensor on {x.device} (that of x), got {s.device}")
        return states

    def _check_input(self, x):
        if not isinstance(x, torch.Tensor):
            raise GatedLibError(f"x: expected a torch.Tensor of shape (T, B, D), got {type(x).__name__}")
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ShapeError(f"x: expected shape (T, B, D) with D = input_size = {self.input_size} "
                             f"(time-major; batch_first is not supported), got {_shape(x)}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ShapeError(f"x: expected at least one step and one example (T, B >= 1), got {_shape(x)}")
        w = self.weight_ih_l0
        if x.dtype != w.dtype:
            raise DTypeError(f"x: expected dtype {w.dtype} (the module's parameters), got {x.dtype}; "
                             f"convert one with x.to({w.dtype}) or module.to({x.dtype})")
        if x.device != w.device:
            raise GatedLibError(f"x: expected a tensor on {w.device} (the module's parameters), got {x.device}; "
                                f"move one with .to(device)")

    def forward(self, x, hx=None, return_states: bool = False):
        """x (T, B, D), hx = h0 or (h0, c0), each (L, B, H) (default zeros).

        Returns (out (T, B, H), h_n) or (out, (h_n, c_n)), as torch.nn. With return_states=True
        (eager backend only) also a list over layers of the per-step state tuples, graph nodes on
        which one can call retain_grad().
        """
        self._check_input(x)
        states = self._initial_state(x, hx)
        backend = self.resolved_backend()
        if return_states and backend != "eager":
            raise GatedLibError(f"return_states: needs the eager backend (the {backend!r} backend keeps no "
                                f"per-step graph nodes); use `with module.use_backend('eager'):`")
        if backend == "torch":
            return self._forward_torch(x, states)
        layer_input, finals, per_layer = x, [], []
        for k in range(self.num_layers):
            p = self.layer_params(k)
            state = tuple(s[k] for s in states)
            if backend == "fused":
                out, state = FUSED[self.spec.name](layer_input, state, p)
            elif return_states:
                out, state, steps = run_layer(self.spec, layer_input, state, p, return_states=True)
                per_layer.append(steps)
            else:
                out, state = run_layer(self.spec, layer_input, state, p)
            finals.append(state)
            if self.config.dropout and self.training and k < self.num_layers - 1:
                out = F.dropout(out, self.config.dropout, training=True)
            layer_input = out
        final = tuple(torch.stack([s[j] for s in finals]) for j in range(len(states)))
        result = (layer_input, final if self.spec.cell_state else final[0])
        return (*result, per_layer) if return_states else result

    def _forward_torch(self, x, states):
        twin = self._torch_twin()
        hx = states if self.spec.cell_state else states[0]
        with warnings.catch_warnings():
            # cuDNN wants one flat weight buffer; flatten once (it re-points our Parameters into it)
            # and never print the "not part of single contiguous chunk" warning into a notebook.
            warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
            if x.is_cuda:
                twin.flatten_parameters()
            return twin(x, hx)

    def extra_repr(self) -> str:
        c = self.config
        return (f"cell={c.cell!r}, input_size={c.input_size}, hidden_size={c.hidden_size}, "
                f"num_layers={c.num_layers}, bias={c.bias}, dropout={c.dropout}, backend={c.backend!r}")

    def to_config_dict(self) -> dict:
        return asdict(self.config)


class RNN(Recurrent):
    """Vanilla RNN, torch.nn.RNN's signature: RNN(input_size, hidden_size, num_layers, nonlinearity)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 dropout=0.0, backend="auto"):
        if nonlinearity not in ("tanh", "relu"):
            raise GatedLibError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(RecurrentConfig("rnn_" + nonlinearity, input_size, hidden_size, num_layers, bias,
                                         dropout, backend))


class LSTM(Recurrent):
    """LSTM, torch.nn.LSTM's signature, plus forget_bias and the variants:

    variant: None (the standard cell), "nfg", "peephole", "cifg", "noaf" (cells nfg_lstm, ...).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, dropout=0.0, backend="auto",
                 forget_bias=None, variant=None):
        variants = ("nfg", "peephole", "cifg", "noaf")
        if variant is not None and str(variant).removesuffix("_lstm") not in variants:
            raise GatedLibError(f"variant: expected None, 'nfg', 'peephole', 'cifg' or 'noaf', got {variant!r}")
        cell = "lstm" if variant is None else str(variant).removesuffix("_lstm") + "_lstm"
        super().__init__(RecurrentConfig(cell, input_size, hidden_size, num_layers, bias, dropout, backend,
                                         forget_bias))


class GRU(Recurrent):
    """GRU, torch.nn.GRU's signature; convention "torch" (reset after the matmul) or "cho"."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, dropout=0.0, backend="auto",
                 convention="torch"):
        if convention not in ("torch", "cho"):
            raise GatedLibError(f"convention: expected 'torch' (PyTorch/cuDNN, reset after the matmul) "
                                f"or 'cho' (Cho et al. 2014, reset before), got {convention!r}")
        super().__init__(RecurrentConfig("gru" if convention == "torch" else "gru_cho", input_size,
                                         hidden_size, num_layers, bias, dropout, backend))
