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
* :mod:`gated_lib.grading.lstm`  chapter 2: the LSTM cell and sequence forward passes, gate regimes.

A checker passes silently except for one line on stdout, and fails by raising
:class:`~gated_lib.grading.core.GradingFailure` (an ``AssertionError``), so nbgrader scores the cell 0.
It never returns a value: a test cell's last expression would otherwise become an
``execute_result`` that nbgrader could read as partial credit.
"""

from gated_lib.grading.core import GradingFailure, assert_close, check_choice

__all__ = ["GradingFailure", "assert_close", "check_choice"]
