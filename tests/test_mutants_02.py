"""Exercise 02's tests catch real bugs, accept other correct solutions and refuse the reference.

Each mutant is the solution cell with one deliberate bug (a textual edit of the solution, checked to
apply), run through the notebook's visible and hidden tests (tests/mutation.py). The exercise must
fail it, and the failure message must name the bug.
"""

from __future__ import annotations

import pytest

from tests.mutation import cell_source, failing, run_mutant

NAME = "02_deriving_lstm"
CELL = cell_source(NAME, "lstm_cell_forward")
SEQ = cell_source(NAME, "lstm_forward")


def edit(source: str, old: str, new: str) -> str:
    assert old in source, f"the mutant no longer applies: {old!r} is not in the solution cell"
    return source.replace(old, new)


PER_GATE_HH_NO_TRANSPOSE = (
    "np.concatenate([h_prev @ weight_hh[k * H:(k + 1) * H] for k in range(4)], axis=1)")

CELL_MUTANTS = {
    # name: (edits to the solution cell, a phrase the diagnosis must contain)
    "wrong gate order": ([("i = sigmoid(pre[:, 0 * H:1 * H])", "i = sigmoid(pre[:, 1 * H:2 * H])"),
                          ("f = sigmoid(pre[:, 1 * H:2 * H])", "f = sigmoid(pre[:, 0 * H:1 * H])")],
                         "order f, i, g, o"),
    "missing tanh on c": ([("h = o * np.tanh(c)", "h = o * c")], "tanh on the cell state is missing"),
    "sigmoid on the candidate": ([("g = np.tanh(pre[:, 2 * H:3 * H])", "g = sigmoid(pre[:, 2 * H:3 * H])")],
                                 "sigmoid on the candidate"),
    "missing bias": ([(" + (bias_ih + bias_hh)", "")], "without bias"),
    "h_prev where c_prev belongs": ([("c = f * c_prev + i * g", "c = f * h_prev + i * g")],
                                    "h_prev used where c_prev belongs"),
    "transposed weights": ([("h_prev @ weight_hh.T", PER_GATE_HH_NO_TRANSPOSE)], "without transposing"),
}


@pytest.mark.parametrize("mutant", sorted(CELL_MUTANTS))
def test_cell_mutant_fails_with_a_diagnosis(mutant, tmp_path):
    edits, phrase = CELL_MUTANTS[mutant]
    src = CELL
    for old, new in edits:
        src = edit(src, old, new)
    fails = failing(run_mutant(NAME, {"lstm_cell_forward": src}, tmp_path))
    assert "test_lstm_cell_forward" in fails, f"{mutant}: the visible cell test passes a buggy cell"
    assert "test_lstm_cell_forward_hidden" in fails, f"{mutant}: the hidden cell test passes a buggy cell"
    assert phrase in fails["test_lstm_cell_forward"], (
        f"{mutant}: the message does not name the bug ({phrase!r}):\n{fails['test_lstm_cell_forward'][:600]}")


SEQUENCE_MUTANTS = {
    "state not carried": ([("    out = np.empty((T, B, H), dtype=x.dtype)\n",
                            "    out = np.empty((T, B, H), dtype=x.dtype)\n    h_init, c_init = h, c\n"),
                           ("lstm_cell_forward(x[t], h, c,", "lstm_cell_forward(x[t], h_init, c_init,")],
                          "carried"),
    "outputs stored before the step": (
        [("        h, c = lstm_cell_forward(x[t], h, c, weight_ih, weight_hh, bias_ih, bias_hh)\n        out[t] = h\n",
          "        out[t] = h\n        h, c = lstm_cell_forward(x[t], h, c, weight_ih, weight_hh, bias_ih, bias_hh)\n")],
        "shifted by one step"),
}


@pytest.mark.parametrize("mutant", sorted(SEQUENCE_MUTANTS))
def test_sequence_mutant_fails(mutant, tmp_path):
    edits, phrase = SEQUENCE_MUTANTS[mutant]
    src = SEQ
    for old, new in edits:
        src = edit(src, old, new)
    fails = failing(run_mutant(NAME, {"lstm_forward": src}, tmp_path))
    assert "test_lstm_forward" in fails, f"{mutant}: the sequence test passes a buggy sequence"
    assert "test_lstm_cell_forward" not in fails, "a sequence bug must not fail the cell's test"
    assert phrase in fails["test_lstm_forward"].lower(), (
        f"{mutant}: the message does not point at the bug ({phrase!r}):\n{fails['test_lstm_forward'][:600]}")


PER_GATE_LOOP = '''def lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    # An alternative correct solution: one product per gate, a different sigmoid, float32-safe.
    H = h_prev.shape[1]
    gates = []
    for k in range(4):
        rows = slice(k * H, (k + 1) * H)
        a = x @ weight_ih[rows].T + bias_ih[rows] + h_prev @ weight_hh[rows].T + bias_hh[rows]
        gates.append(np.tanh(a) if k == 2 else 0.5 * (1.0 + np.tanh(0.5 * a)))
    i, f, g, o = gates
    c = f * c_prev + i * g
    return o * np.tanh(c), c
'''


def test_alternative_correct_solution_gets_every_test(tmp_path):
    outcomes = run_mutant(NAME, {"lstm_cell_forward": PER_GATE_LOOP}, tmp_path)
    assert outcomes and not failing(outcomes), f"a correct per-gate solution fails: {failing(outcomes)}"


CALLS_REFERENCE = '''def lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    from gated_lib.lstm import lstm_cell_forward as reference
    (h, c), _ = reference(x, h_prev, c_prev, dict(weight_ih=weight_ih, weight_hh=weight_hh,
                                                  bias_ih=bias_ih, bias_hh=bias_hh))
    return h, c
'''


def test_calling_the_reference_fails(tmp_path):
    fails = failing(run_mutant(NAME, {"lstm_cell_forward": CALLS_REFERENCE}, tmp_path))
    assert "test_lstm_cell_forward" in fails, "a cell that calls gated_lib's reference gets the points"
    assert "reference" in fails["test_lstm_cell_forward"].lower()
