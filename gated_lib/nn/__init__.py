"""The torch path of gated_lib: every cell of the course as a torch module, fast paths, devices.

    from gated_lib.nn import LSTM, GRU, RNN, Recurrent, Cell, get_device

Recurrent(cell=..., input_size, hidden_size, num_layers) runs any cell of the numpy reference
(rnn_tanh, rnn_relu, lstm, nfg_lstm, peephole_lstm, cifg_lstm, noaf_lstm, gru, gru_cho, mgu,
min_gru) with torch.nn's parameter names and layout; backend "eager" (from the equations,
autograd), "fused" (same equations, hand-written BPTT), "torch" (torch.nn's kernels: cuDNN on a
GPU) or "auto". torch is imported here and only here (and in gated_lib.training / tasks): the top
level of gated_lib stays importable with numpy alone.
"""

from gated_lib.nn.device import (ENV_DEVICE, DeviceError, available_devices, get_device, resolve_dtype,
                                 rng_state, seed_everything, set_rng_state)
from gated_lib.nn.functional import CELLS, CellSpec, cell_spec, run_layer
from gated_lib.nn.recurrent import BACKENDS, GRU, LSTM, RNN, Recurrent, RecurrentConfig
from gated_lib.nn.cells import Cell
from gated_lib.nn.models import CellStack, ModelConfig, SequenceModel, layer_cells

__all__ = [
    "ENV_DEVICE", "DeviceError", "available_devices", "get_device", "resolve_dtype", "seed_everything",
    "rng_state", "set_rng_state",
    "CELLS", "CellSpec", "cell_spec", "run_layer",
    "BACKENDS", "Recurrent", "RecurrentConfig", "RNN", "LSTM", "GRU", "Cell",
    "ModelConfig", "SequenceModel", "CellStack", "layer_cells",
]
