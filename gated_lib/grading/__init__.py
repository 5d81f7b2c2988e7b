"""Checking helpers that the exercises' test cells call.

The notebooks never hold checking logic of their own: a test cell reads ::

    from gated_lib.grading import lstm as grading
    grading.check_lstm_cell_forward(lstm_cell_forward)

and the checker runs the learner's function on generated cases, compares with the reference, and,
when something is wrong, says *what* is wrong in words a learner can act on: which output, which
entry, by how much, and, where the output matches a known mistake (gates sliced in the wrong order,
a missing tanh, transposed weights ...), which mistake.

Modules:

* :mod:`gated_lib.grading.core`  what every exercise shares: :func:`~gated_lib.grading.core.assert_close`,
  tolerances by dtype, seeded random cases, calling a learner's function safely (no warnings on
  stderr, inputs protected, the library's reference forbidden), multiple-choice answers.
* :mod:`gated_lib.grading.rnn`  chapter 1: the vanilla RNN forward passes, the one-step Jacobian, the
  gradient norm over lag, clip-by-norm.
* :mod:`gated_lib.grading.lstm`  chapter 2: the LSTM cell and sequence forward passes, gate regimes.
* :mod:`gated_lib.grading.lstm_grad`  chapter 3: LSTM cell and sequence backward (BPTT), the direct
  and full one-step Jacobians, the gradient norm over lag.
* :mod:`gated_lib.grading.gru`  chapter 4: the GRU cell in both conventions, its Jacobian, weight
  conversion to torch.nn.GRU.
* :mod:`gated_lib.grading.cost`  chapter 5: parameter counts (checked against torch numel) and FLOPs per step.
* :mod:`gated_lib.grading.variants`  chapter 6: the peephole LSTM and CIFG cells.
* :mod:`gated_lib.grading.lab_long_range`  chapter 7 (lab I): the adding problem's generator and statistics,
  a training step with clipping, the 1997 success criterion, a short deterministic run.
* :mod:`gated_lib.grading.lab_text`  chapter 8 (lab II): the character LM's vocabulary, split and windows,
  perplexity, sampling with temperature (seed by seed and by statistics), a short seeded run on the novel.
* :mod:`gated_lib.grading.beyond`  chapter 9 (optional): the scan as a loop and in O(log T) rounds, the minGRU.

A new exercise adds one module here. Each module's ``FORBID`` rule lists the gated_lib helpers a
learner may call; everything else in gated_lib counts as the reference and fails the check.

A checker passes silently except for one line on stdout, and fails by raising
:class:`~gated_lib.grading.core.GradingFailure` (an ``AssertionError``), so nbgrader scores the cell 0.
It never returns a value: a test cell's last expression would otherwise become an
``execute_result`` that nbgrader could read as partial credit.
"""

from gated_lib.grading.core import GradingFailure, assert_close, check_choice

__all__ = ["GradingFailure", "assert_close", "check_choice"]
