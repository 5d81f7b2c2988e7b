"""Exercise 06's tests catch real bugs, accept other correct solutions and refuse the reference.

Each mutant is a solution cell with one deliberate bug (a textual edit of the solution, checked to
apply), run through the notebook's visible and hidden tests (tests/mutation.py). The exercise must
fail it, and the failure message must name the bug. The two graded cells are checked independently,
so one notebook run carries one mutant of each: a run costs a kernel start.
"""

from __future__ import annotations

import pytest

from tests.mutation import cell_source, failing, run_mutant

NAME = "06_variants"
PEEP = cell_source(NAME, "peephole_lstm_cell_forward")
CIFG = cell_source(NAME, "cifg_lstm_cell_forward")
SOURCES = {"peephole_lstm_cell_forward": PEEP, "cifg_lstm_cell_forward": CIFG}
# grade_id of the mutated cell -> the test cells that must fail (the first must carry the phrase)
TESTS = {"peephole_lstm_cell_forward": ["test_peephole_cell", "test_peephole_cell_hidden"],
         "cifg_lstm_cell_forward": ["test_cifg_cell", "test_cifg_cell_hidden"]}
OTHER_TESTS = {"test_answer_findings", "test_answer_direct_path"}


def edit(source: str, *edits: tuple[str, str]) -> str:
    for old, new in edits:
        assert source.count(old) == 1, f"the mutant no longer applies: {old!r} is not (once) in the solution cell"
        source = source.replace(old, new)
    return source


# Each run: {grade_id: (edits, phrase of the diagnosis)}
RUNS = {
    "o peeks at c_prev / CIFG with f = i": {
        "peephole_lstm_cell_forward": (
            [("o = sigmoid(a[:, 3 * H:] + weight_co * c)", "o = sigmoid(a[:, 3 * H:] + weight_co * c_prev)")],
            "the output gate peeks at c_prev"),
        "cifg_lstm_cell_forward": ([("c = (1 - i) * c_prev + i * g", "c = i * c_prev + i * g")],
                                   "the forget share equals the input gate (f = i)"),
    },
    "peepholes of i and f exchanged / sigmoid on the candidate": {
        "peephole_lstm_cell_forward": ([("a[:, :H] + weight_ci * c_prev", "a[:, :H] + weight_cf * c_prev"),
                                        ("a[:, H:2 * H] + weight_cf * c_prev", "a[:, H:2 * H] + weight_ci * c_prev")],
                                       "peepholes on the wrong gates"),
        "cifg_lstm_cell_forward": ([("g = np.tanh(a[:, H:2 * H])", "g = sigmoid(a[:, H:2 * H])")],
                                   "a sigmoid on the candidate g"),
    },
    "no tanh on c / gate order i, o, g": {
        "peephole_lstm_cell_forward": ([("h = o * np.tanh(c)", "h = o * c")],
                                       "the tanh on the cell state before the output gate is missing"),
        "cifg_lstm_cell_forward": ([("g = np.tanh(a[:, H:2 * H])", "g = np.tanh(a[:, 2 * H:])"),
                                    ("o = sigmoid(a[:, 2 * H:])", "o = sigmoid(a[:, H:2 * H])")],
                                   "the gate blocks read in the order i, o, g"),
    },
    "gate order f, i, g, o / untransposed recurrent blocks": {
        "peephole_lstm_cell_forward": ([("i = sigmoid(a[:, :H] +", "i = sigmoid(a[:, H:2 * H] +"),
                                        ("f = sigmoid(a[:, H:2 * H] +", "f = sigmoid(a[:, :H] +")],
                                       "the gate blocks read in the order f, i, g, o"),
        "cifg_lstm_cell_forward": ([("h_prev @ weight_hh.T",
                                     "np.concatenate([h_prev @ weight_hh[k * H:(k + 1) * H] for k in range(3)], axis=1)")],
                                   "multiplied without transposing it"),
    },
    "no bias / the 1997 update in the CIFG cell": {
        "peephole_lstm_cell_forward": ([(" + bias_ih + bias_hh       # (B, 4H)", "       # (B, 4H)")],
                                       "a cell without bias"),
        "cifg_lstm_cell_forward": ([("c = (1 - i) * c_prev + i * g", "c = c_prev + i * g")],
                                   "the 1997 cell without a forget gate"),
    },
}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_mutants_fail_with_a_diagnosis(run, tmp_path):
    spec = RUNS[run]
    replacements = {gid: edit(SOURCES[gid], *edits) for gid, (edits, _) in spec.items()}
    fails = failing(run_mutant(NAME, replacements, tmp_path))
    for gid, (_, phrase) in spec.items():
        must_fail = TESTS[gid]
        for test in must_fail:
            assert test in fails, f"{run}: {test} passes the buggy {gid}"
        assert phrase in fails[must_fail[0]], (
            f"{run}: the message of {must_fail[0]} does not name the bug ({phrase!r}):\n{fails[must_fail[0]][:900]}")
    # a bug in one function never costs points elsewhere
    assert not OTHER_TESTS & set(fails), fails


ALTERNATIVES = {
    "peephole_lstm_cell_forward": '''def peephole_lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh,
                               weight_ci, weight_cf, weight_co):
    # Another correct solution: a loop over the four gate blocks, column-vector products, a naive
    # sigmoid, and the peepholes as diagonal matrices.
    H = h_prev.shape[1]
    pre = []
    for k in range(4):
        rows = slice(k * H, (k + 1) * H)
        pre.append((np.dot(weight_ih[rows], x.T) + np.dot(weight_hh[rows], h_prev.T)).T
                   + bias_ih[rows] + bias_hh[rows])
    a_i, a_f, a_g, a_o = pre
    with np.errstate(over="ignore"):
        i = 1 / (1 + np.exp(-(a_i + c_prev @ np.diag(weight_ci))))
        f = 1 / (1 + np.exp(-(a_f + c_prev @ np.diag(weight_cf))))
        c = f * c_prev + i * np.tanh(a_g)
        o = 1 / (1 + np.exp(-(a_o + c @ np.diag(weight_co))))
    return o * np.tanh(c), c
''',
    "cifg_lstm_cell_forward": '''def cifg_lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    # Another correct solution: everything in float64 (float32 inputs included), cast back at the end,
    # with the update written as c_prev + i * (g - c_prev).
    dtype = x.dtype
    x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh = (
        np.asarray(v, np.float64) for v in (x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh))
    H = h_prev.shape[1]
    a = x @ weight_ih.T + h_prev @ weight_hh.T + bias_ih + bias_hh
    i, g, o = sigmoid(a[:, :H]), np.tanh(a[:, H:2 * H]), sigmoid(a[:, 2 * H:])
    c = c_prev + i * (g - c_prev)
    return (o * np.tanh(c)).astype(dtype), c.astype(dtype)
''',
}


def test_alternative_correct_solutions_get_every_test(tmp_path):
    outcomes = run_mutant(NAME, ALTERNATIVES, tmp_path)
    assert outcomes and not failing(outcomes), f"a correct alternative solution fails: {failing(outcomes)}"


CALLS_REFERENCE = {
    "peephole_lstm_cell_forward": '''def peephole_lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh,
                               weight_ci, weight_cf, weight_co):
    from gated_lib.variants import peephole_lstm_cell_forward as reference
    (h, c), _ = reference(x, h_prev, c_prev, dict(weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih,
                                                  bias_hh=bias_hh, weight_ci=weight_ci, weight_cf=weight_cf,
                                                  weight_co=weight_co))
    return h, c
''',
    "cifg_lstm_cell_forward": '''def cifg_lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    import gated_lib.variants
    params = dict(weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh)
    (h, c), _ = gated_lib.variants.cifg_lstm_cell_forward(x, h_prev, c_prev, params)
    return h, c
''',
}


def test_calling_the_library_fails_and_says_so(tmp_path):
    fails = failing(run_mutant(NAME, CALLS_REFERENCE, tmp_path))
    for test, called in [("test_peephole_cell", "gated_lib.variants.peephole_lstm_cell_forward"),
                         ("test_cifg_cell", "gated_lib.variants.cifg_lstm_cell_forward")]:
        assert test in fails, f"{test}: a function that calls gated_lib gets the points"
        assert "a reference implementation of what this exercise asks you to write" in fails[test]
        assert called in fails[test], fails[test][:600]
