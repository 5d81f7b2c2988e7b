"""Exercise 05's tests catch real bugs, accept other correct solutions and refuse the reference.

Each mutant is a solution cell with one deliberate bug (a textual edit of the solution, checked to
apply), run through the notebook's visible and hidden tests (tests/mutation.py). The exercise must
fail it, and the failure message must name the bug. param_count and flops_per_step are checked
independently, so one notebook run carries one mutant of each: a run costs a kernel start.
"""

from __future__ import annotations

import pytest

from tests.mutation import assert_diagnosed, cell_source, edit, failing, run_mutant

NAME = "05_cost"
COUNT = cell_source(NAME, "param_count")
FLOPS = cell_source(NAME, "flops_per_step")


PARAM_TESTS = ["test_param_count_layer", "test_param_count_stacked", "test_param_count_proj",
               "test_param_count_torch_hidden"]
ANSWERS = ["test_answer_ratios", "test_answer_training"]
READS = "reads = input_size if layer == 0 else R * directions"
MATMUL = "matmul = 2 * B * G * H * D + 2 * B * G * H * R + 2 * B * P * H"
RETURN_FLOPS = 'return {"matmul": matmul, "elementwise": elementwise}'

# Each run: {grade_id: (edits, the test cells that must fail (the first carries the phrase), phrase)}
RUNS = {
    "second bias forgotten / multiply-add counted as 1": {
        "param_count": ([("n_biases * G * H", "min(n_biases, 1) * G * H")],
                        ["test_param_count_layer", "test_param_count_torch_hidden"],
                        "one bias vector per gate where torch has two"),
        "flops_per_step": ([(MATMUL, "matmul = B * G * H * D + B * G * H * R + B * P * H")], ["test_flops"],
                           "a multiply-add counted as 1 FLOP"),
    },
    "bidirectional factor forgotten / elementwise part missing": {
        "param_count": ([("total += directions * per_direction", "total += per_direction")],
                        ["test_param_count_stacked", "test_param_count_proj", "test_param_count_torch_hidden"],
                        "the bidirectional factor is missing: a bidirectional layer has two directions, each with its own weight_ih, weight_hh and biases (torch's *_reverse parameters), so every layer counts twice (your upper layers"),
        "flops_per_step": ([(RETURN_FLOPS, 'return {"matmul": matmul, "elementwise": 0}')], ["test_flops"],
                           "the elementwise part is missing"),
    },
    "proj_size on the input of layer 0 / state update missing": {
        "param_count": ([(READS, "reads = (proj_size or input_size) if layer == 0 else R * directions")],
                        ["test_param_count_proj", "test_param_count_torch_hidden"],
                        "proj_size applied to the input of layer 0"),
        "flops_per_step": ([("(G * (1 + 2 + 1) + state_update)", "(G * (1 + 2 + 1))")], ["test_flops"],
                           "the state update is missing"),
    },
    "weight_hh (4H, H) under a projection / batch size ignored": {
        "param_count": ([("G * H * R + n_biases", "G * H * H + n_biases")],
                        ["test_param_count_proj", "test_param_count_torch_hidden"],
                        "weight_hh counted with H columns under a projection"),
        "flops_per_step": ([("B, D, H, P = batch_size,", "B, D, H, P = 1,")], ["test_flops"],
                           "batch_size ignored"),
    },
    "4 gate blocks for the GRU / one bias add": {
        "param_count": ([('G = {"rnn": 1, "gru": 3, "lstm": 4}[cell]', 'G = {"rnn": 1, "gru": 4, "lstm": 4}[cell]')],
                        ["test_param_count_layer", "test_param_count_stacked", "test_param_count_torch_hidden"],
                        "the GRU counted with 4 gate blocks"),
        "flops_per_step": ([("(G * (1 + 2 + 1) + state_update)", "(G * (1 + 1 + 1) + state_update)")], ["test_flops"],
                           "often the second bias"),
    },
    "upper layers read input_size / GRU FLOPs with 4 blocks": {
        "param_count": ([(READS, "reads = input_size")],
                        ["test_param_count_stacked", "test_param_count_torch_hidden"],
                        "layers above the first read input_size"),
        "flops_per_step": ([('G = {"rnn": 1, "gru": 3, "lstm": 4}[cell]', 'G = {"rnn": 1, "gru": 4, "lstm": 4}[cell]')],
                           ["test_flops"], "the GRU counted with 4 gate blocks"),
    },
    "upper layers read H, not 2H / projection product missing": {
        "param_count": ([(READS, "reads = input_size if layer == 0 else R")],
                        ["test_param_count_stacked", "test_param_count_torch_hidden"],
                        "layers above the first read R (H, or proj_size), not R*2"),
        "flops_per_step": ([(MATMUL, "matmul = 2 * B * G * H * D + 2 * B * G * H * R")], ["test_flops"],
                           "the projection's product h_t W_hr^T is missing"),
    },
}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_mutants_fail_with_a_diagnosis(run, tmp_path):
    fails = assert_diagnosed(NAME, {"param_count": COUNT, "flops_per_step": FLOPS}, run, RUNS[run], tmp_path)
    # a bug in one function never costs points elsewhere (the multiple-choice cells are untouched)
    assert not set(fails) & set(ANSWERS), fails


def test_a_flops_bug_costs_no_parameter_points(tmp_path):
    fails = failing(run_mutant(NAME, {"flops_per_step": edit(FLOPS, (MATMUL, "matmul = 2 * B * G * H * (D + R)"))},
                               tmp_path))
    assert set(fails) == {"test_flops"}, fails


ALTERNATIVES = {
    "param_count": '''def param_count(cell, input_size, hidden_size, num_layers=1, bidirectional=False, proj_size=0, n_biases=2):
    # Another correct solution: a closed form (layer 0 plus L - 1 identical upper layers), numpy integers.
    g = np.int64(dict(rnn=1, gru=3, lstm=4)[cell])
    d = 2 if bidirectional else 1
    out = proj_size or hidden_size

    def one_direction(reads):
        return g * hidden_size * (reads + out + n_biases) + proj_size * hidden_size

    return d * (one_direction(input_size) + (num_layers - 1) * one_direction(d * out))
''',
    "flops_per_step": '''def flops_per_step(cell, input_size, hidden_size, batch_size=1, proj_size=0):
    # Another correct solution: one term per product and per elementwise operation, extra keys allowed.
    def product(m, k, n):
        return 2 * m * k * n            # (m x k) @ (k x n): m*n dot products of k multiply-adds
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    B, H = batch_size, hidden_size
    R = proj_size or H
    matmul = product(B, input_size, gates * H) + product(B, R, gates * H)
    if proj_size:
        matmul += product(B, H, proj_size)
    units = B * gates * H
    adds, biases, nonlinearities = units, 2 * units, units
    update = {"rnn": 0, "gru": 4, "lstm": 5}[cell] * B * H
    elementwise = adds + biases + nonlinearities + update
    return {"matmul": matmul, "elementwise": elementwise, "forward": matmul + elementwise}
''',
}


def test_alternative_correct_solutions_get_every_test(tmp_path):
    outcomes = run_mutant(NAME, ALTERNATIVES, tmp_path)
    assert outcomes and not failing(outcomes), f"a correct alternative solution fails: {failing(outcomes)}"


CALLS_REFERENCE = {
    "param_count": '''def param_count(cell, input_size, hidden_size, num_layers=1, bidirectional=False, proj_size=0, n_biases=2):
    from gated_lib import counting
    return counting.param_count(cell, input_size, hidden_size, num_layers, bidirectional, bias=n_biases > 0,
                                proj_size=proj_size, single_bias=n_biases == 1)
''',
    "flops_per_step": '''def flops_per_step(cell, input_size, hidden_size, batch_size=1, proj_size=0):
    import gated_lib
    f = gated_lib.flops_per_step(cell, input_size, hidden_size, batch_size=batch_size, proj_size=proj_size)
    return {"matmul": f["matmul"], "elementwise": f["elementwise"]}
''',
}

COUNTS_TORCH = '''def param_count(cell, input_size, hidden_size, num_layers=1, bidirectional=False, proj_size=0, n_biases=2):
    import torch
    module = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    extra = {"proj_size": proj_size} if proj_size else {}
    m = module(input_size, hidden_size, num_layers, bias=n_biases > 0, bidirectional=bidirectional, **extra)
    total = sum(p.numel() for p in m.parameters())
    if n_biases == 1:
        total -= sum(p.numel() for name, p in m.named_parameters() if name.startswith("bias_hh"))
    return total
'''


def test_calling_the_library_fails_and_says_so(tmp_path):
    fails = failing(run_mutant(NAME, CALLS_REFERENCE, tmp_path))
    for test, called in [("test_param_count_layer", "gated_lib.counting.param_count"),
                         ("test_flops", "gated_lib.counting.flops_per_step")]:
        assert test in fails, f"{test}: a function that calls gated_lib gets the points"
        assert "a reference implementation of what this exercise asks you to write" in fails[test]
        assert called in fails[test], fails[test][:600]
    assert set(PARAM_TESTS) <= set(fails)


def test_counting_torch_modules_fails_and_says_so(tmp_path):
    fails = failing(run_mutant(NAME, {"param_count": COUNTS_TORCH}, tmp_path))
    assert set(fails) == set(PARAM_TESTS), fails
    assert "calls torch.nn.RNN" in fails["test_param_count_layer"]
    assert "a reference implementation" in fails["test_param_count_layer"]
