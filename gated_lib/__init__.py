"""gated_lib: the reference library of the gated recurrent networks course.

One place where every equation of the book is implemented, so that the book's figures, the exercises'
tests and the training labs all compute the same thing.

Conventions (fixed in COURSE_DESIGN.md, shared with torch.nn):

* Rows are examples. A cell maps x (B, D), h_prev (B, H) [, c_prev (B, H)] to the next state.
  Sequences are time-major: x (T, B, D).
* Weights use PyTorch's names and layout, G gates stacked along the first axis:
  weight_ih (G*H, D), weight_hh (G*H, H), bias_ih (G*H,), bias_hh (G*H,).
  Gate order: LSTM i, f, g, o (G = 4); GRU r, z, n (G = 3); vanilla RNN G = 1.
* float64 for gradient checks, float32 elsewhere.

The numpy reference lives in the top-level modules (one job each):

    rnn, lstm, gru, variants   cells and sequences, forward and backward (cs231n-style pairs)
    sequence                   the shared time loop (BPTT) and the layer stack
    jacobians                  analytic one-step Jacobians and their norms over lags
    counting                   parameter counts, FLOPs per step, BPTT activation memory
    init                       torch's default init, gate biases, orthogonal and identity init
    convert                    torch state_dicts, Coursera and Keras layouts
    gradcheck                  centred differences and cs231n's relative error
    linear_recurrence          gated linear recurrences (minGRU, minLSTM) and the parallel scan
    errors                     the validation every public function goes through
    catalog, activations       the table of cells; sigmoid and tanh helpers

The torch path (GPU when there is one) lives in submodules that import torch lazily.
"""

from gated_lib.errors import DTypeError, GatedLibError, NonFiniteError, ShapeError
from gated_lib.activations import sigmoid
from gated_lib.lstm import (
    init_lstm_params,
    lstm_backward,
    lstm_cell_backward,
    lstm_cell_forward,
    lstm_forward,
    split_gates,
)
from gated_lib.rnn import rnn_backward, rnn_cell_backward, rnn_cell_forward, rnn_forward
from gated_lib.gru import gru_backward, gru_cell_backward, gru_cell_forward, gru_forward
from gated_lib.variants import (
    cifg_lstm_backward,
    cifg_lstm_cell_backward,
    cifg_lstm_cell_forward,
    cifg_lstm_forward,
    mgu_backward,
    mgu_cell_backward,
    mgu_cell_forward,
    mgu_forward,
    nfg_lstm_backward,
    nfg_lstm_cell_backward,
    nfg_lstm_cell_forward,
    nfg_lstm_forward,
    noaf_lstm_backward,
    noaf_lstm_cell_backward,
    noaf_lstm_cell_forward,
    noaf_lstm_forward,
    peephole_lstm_backward,
    peephole_lstm_cell_backward,
    peephole_lstm_cell_forward,
    peephole_lstm_forward,
)
from gated_lib.jacobians import (
    assemble_state_jacobian,
    gradient_norm_over_lag,
    gru_step_jacobian,
    lag_norms,
    lstm_direct_jacobian,
    lstm_step_jacobian,
    rnn_step_jacobian,
    step_jacobian,
)
from gated_lib.counting import (
    bptt_memory,
    flops_per_step,
    gate_count,
    keras_param_count,
    param_count,
    param_count_per_layer,
    param_ratio,
)
from gated_lib.init import (
    effective_bias,
    init_params,
    init_stack,
    irnn_params,
    orthogonal,
    orthogonal_recurrent,
    set_forget_bias,
    set_gate_bias,
    set_update_gate_bias,
)
from gated_lib.gradcheck import GradCheckReport, grad_check, numerical_gradient, rel_error
from gated_lib import convert  # noqa: F401 - gated_lib.convert.from_torch, to_keras_gru, ...
from gated_lib import linear_recurrence  # noqa: F401 - gated_lib.linear_recurrence.parallel_scan, ...

__all__ = [
    # errors
    "GatedLibError", "ShapeError", "DTypeError", "NonFiniteError",
    # cells and sequences
    "sigmoid", "split_gates", "init_lstm_params",
    "lstm_cell_forward", "lstm_cell_backward", "lstm_forward", "lstm_backward",
    "rnn_cell_forward", "rnn_cell_backward", "rnn_forward", "rnn_backward",
    "gru_cell_forward", "gru_cell_backward", "gru_forward", "gru_backward",
    "nfg_lstm_cell_forward", "nfg_lstm_cell_backward", "nfg_lstm_forward", "nfg_lstm_backward",
    "peephole_lstm_cell_forward", "peephole_lstm_cell_backward", "peephole_lstm_forward", "peephole_lstm_backward",
    "cifg_lstm_cell_forward", "cifg_lstm_cell_backward", "cifg_lstm_forward", "cifg_lstm_backward",
    "noaf_lstm_cell_forward", "noaf_lstm_cell_backward", "noaf_lstm_forward", "noaf_lstm_backward",
    "mgu_cell_forward", "mgu_cell_backward", "mgu_forward", "mgu_backward",
    # Jacobians
    "rnn_step_jacobian", "lstm_direct_jacobian", "lstm_step_jacobian", "assemble_state_jacobian",
    "gru_step_jacobian", "step_jacobian", "lag_norms", "gradient_norm_over_lag",
    # counting
    "param_count", "param_count_per_layer", "keras_param_count", "param_ratio", "gate_count",
    "flops_per_step", "bptt_memory",
    # init
    "init_params", "init_stack", "effective_bias", "set_gate_bias", "set_forget_bias",
    "set_update_gate_bias", "orthogonal", "orthogonal_recurrent", "irnn_params",
    # gradient checking
    "numerical_gradient", "rel_error", "grad_check", "GradCheckReport",
    # conversions
    "convert", "linear_recurrence",
]
__version__ = "0.1.0"
