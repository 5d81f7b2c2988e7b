"""The cost checkers of gated_lib.grading: they accept every correct count and name every mistake.

The learners' functions below are written the way a learner writes them (not through gated_lib), or,
for the catalogue of mistakes, replay numbers computed beforehand, so a passing test says something
about the checker, not about the reference it compares with.
"""

from __future__ import annotations

import numpy as np
import pytest

import gated_lib as gl
from gated_lib.grading import cost as grading
from gated_lib.grading.core import GradingFailure

torch = pytest.importorskip("torch")

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def failure(check, fn, **kwargs) -> str:
    with pytest.raises(GradingFailure) as info:
        check(fn, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------------------------
# Correct learners
# ------------------------------------------------------------------------------------------------

def loop_count(cell, input_size, hidden_size, num_layers=1, bidirectional=False, proj_size=0, n_biases=2):
    G, H = GATES[cell], hidden_size
    R = proj_size or H
    dirs = 2 if bidirectional else 1
    total = 0
    for layer in range(num_layers):
        reads = input_size if layer == 0 else R * dirs
        total += dirs * (G * H * reads + G * H * R + n_biases * G * H + proj_size * H)
    return total


def closed_form_count(cell, input_size, hidden_size, num_layers=1, bidirectional=False, proj_size=0, n_biases=2):
    g = dict(rnn=1, gru=3, lstm=4)[cell]
    d = 1 + int(bidirectional)
    out = proj_size or hidden_size

    def one(reads):
        return g * hidden_size * (reads + out + n_biases) + proj_size * hidden_size

    return d * (one(input_size) + (num_layers - 1) * one(d * out))


def shapes_count(cell, input_size, hidden_size, num_layers=1, bidirectional=False, proj_size=0, n_biases=2):
    """Lists torch's parameter shapes and sums np.prod: returns a numpy integer."""
    G, H = GATES[cell], hidden_size
    R = proj_size if proj_size > 0 else H
    shapes = []
    for layer in range(num_layers):
        for _ in range(2 if bidirectional else 1):
            shapes += [(G * H, input_size if layer == 0 else R * (2 if bidirectional else 1)), (G * H, R)]
            shapes += [(G * H,)] * n_biases + ([(proj_size, H)] if proj_size else [])
    return np.sum([np.prod(s) for s in shapes])


def float_count(*args, **kwargs):
    return float(loop_count(*args, **kwargs))


def flops(cell, input_size, hidden_size, batch_size=1, proj_size=0):
    G, S = GATES[cell], {"rnn": 0, "gru": 4, "lstm": 5}[cell]
    R = proj_size or hidden_size
    mm = 2 * batch_size * G * hidden_size * (input_size + R) + 2 * batch_size * proj_size * hidden_size
    return {"matmul": mm, "elementwise": batch_size * hidden_size * (4 * G + S)}


def flops_by_products(cell, input_size, hidden_size, batch_size=1, proj_size=0):
    def product(m, k, n):
        return 2 * m * k * n
    G, H, B = GATES[cell], hidden_size, batch_size
    R = proj_size if proj_size else H
    mm = product(B, input_size, G * H) + product(B, R, G * H) + (product(B, H, proj_size) if proj_size else 0)
    gate_units = B * G * H
    update = {"rnn": 0, "gru": 4, "lstm": 5}[cell] * B * H
    return dict(matmul=np.int64(mm), elementwise=gate_units * 2 + gate_units + gate_units + update, forward=None)


@pytest.mark.parametrize("fn", [loop_count, closed_form_count, shapes_count, float_count])
def test_correct_counts_pass(fn, capsys):
    for part in grading.PARTS:
        grading.check_param_count(fn, part=part)
        grading.check_param_count(fn, part=part, seed=7, fixed=False, n_random=8)
    grading.check_param_count_torch(fn, seed=3, n_random=9)
    assert "agree with torch.nn's numel" in capsys.readouterr().out


@pytest.mark.parametrize("fn", [flops, flops_by_products])
def test_correct_flops_pass(fn):
    grading.check_flops_per_step(fn)
    grading.check_flops_per_step(fn, seed=11, fixed=False, n_random=10)


def test_the_checkers_formulas_are_the_library_and_torch():
    for part in grading.PARTS:
        for case in grading._count_cases(part, 5, True, 20):
            assert grading.count_variant(case) == case.expected() == loop_count(
                case.cell, case.input_size, case.hidden_size, **case.kwargs())
            if case.n_biases != 1:
                assert case.expected() == grading._torch_numel(case)
    for case in grading._flop_cases(5, True, 20):
        assert grading.flops_variant(case) == case.expected() == flops(
            case.cell, case.input_size, case.hidden_size, case.batch_size, case.proj_size)


# ------------------------------------------------------------------------------------------------
# Every catalogued mistake is named
# ------------------------------------------------------------------------------------------------

def replay(table):
    """A learner's function that returns numbers computed beforehand (so that it calls nothing)."""
    def fn(cell, input_size, hidden_size, **kwargs):
        return table[(cell, input_size, hidden_size, tuple(sorted(kwargs.items())))]
    return fn


def count_mutant(bug, cases):
    return replay({(c.cell, c.input_size, c.hidden_size, tuple(sorted(c.kwargs().items()))):
                   grading.count_variant(c, {bug}) for c in cases})


def flop_mutant(bug, cases):
    return replay({(c.cell, c.input_size, c.hidden_size,
                    tuple(sorted(dict(batch_size=c.batch_size, proj_size=c.proj_size).items()))):
                   grading.flops_variant(c, {bug}) for c in cases})


@pytest.mark.parametrize("bug", sorted(grading.COUNT_BUGS))
def test_every_count_mistake_is_caught_and_named(bug):
    caught = []
    for part in grading.PARTS:
        cases = grading._count_cases(part, 0, True, 0)
        if all(grading.count_variant(c, {bug}) == c.expected() for c in cases):
            continue
        msg = failure(grading.check_param_count, count_mutant(bug, cases), part=part)
        assert grading.COUNT_BUGS[bug] in msg, f"{bug} in part {part}:\n{msg}"
        assert "The expected count, layer by layer" in msg
        caught.append(part)
    assert caught, f"no visible test catches {bug}"


@pytest.mark.parametrize("bug", sorted(grading.FLOP_BUGS))
def test_every_flop_mistake_is_caught_and_named(bug):
    cases = grading._flop_cases(0, True, 0)
    msg = failure(grading.check_flops_per_step, flop_mutant(bug, cases))
    assert grading.FLOP_BUGS[bug] in msg, f"{bug}:\n{msg}"


def test_the_message_shows_the_call_and_the_terms():
    msg = failure(grading.check_param_count, count_mutant("no_bidirectional", grading._count_cases("stacked", 0, True, 0)),
                  part="stacked")
    assert "param_count('lstm', input_size=10, hidden_size=20, num_layers=2, bidirectional=True" in msg
    assert "returned 5,920, expected 15,040" in msg
    assert "weight_ih 4*20*40 = 3,200" in msg and "times 2 directions" in msg


def test_a_mistake_outside_the_catalogue_still_gets_the_breakdown():
    def off_by_one(*args, **kwargs):
        return loop_count(*args, **kwargs) + 1
    msg = failure(grading.check_param_count, off_by_one, part="layer")
    assert "1 too many" in msg and "biases 2*1*20 = 40" in msg and "match" not in msg


def test_torch_check_quotes_torch():
    def no_bidirectional(cell, input_size, hidden_size, num_layers=1, bidirectional=False, proj_size=0, n_biases=2):
        return loop_count(cell, input_size, hidden_size, num_layers, False, proj_size, n_biases)
    msg = failure(grading.check_param_count_torch, no_bidirectional, seed=1, n_random=12)
    assert "sum(p.numel() for p in torch.nn." in msg
    assert grading.COUNT_BUGS["no_bidirectional"] in msg


def test_real_learner_bugs_in_flops():
    def mac_is_one(cell, input_size, hidden_size, batch_size=1, proj_size=0):
        f = flops(cell, input_size, hidden_size, batch_size, proj_size)
        return {"matmul": f["matmul"] // 2, "elementwise": f["elementwise"]}
    assert "multiply-add counted as 1 FLOP" in failure(grading.check_flops_per_step, mac_is_one)

    def matmul_only(cell, input_size, hidden_size, batch_size=1, proj_size=0):
        return {"matmul": flops(cell, input_size, hidden_size, batch_size, proj_size)["matmul"], "elementwise": 0}
    assert "elementwise part is missing" in failure(grading.check_flops_per_step, matmul_only)


# ------------------------------------------------------------------------------------------------
# Forms of wrong answers, and the reference
# ------------------------------------------------------------------------------------------------

def test_wrong_return_types_are_explained():
    assert "whole number" in failure(grading.check_param_count, lambda *a, **k: loop_count(*a, **k) / 3)
    assert "it is str" in failure(grading.check_param_count, lambda *a, **k: str(loop_count(*a, **k)))
    assert "it is NoneType" in failure(grading.check_param_count, lambda *a, **k: None)
    assert "keys 'matmul' and 'elementwise'" in failure(grading.check_flops_per_step,
                                                        lambda *a, **k: {"forward": 1})
    assert "it returned int" in failure(grading.check_flops_per_step, lambda *a, **k: 3)


def test_not_implemented_and_exceptions():
    def todo(*args, **kwargs):
        raise NotImplementedError()
    assert "not implemented yet" in failure(grading.check_param_count, todo)

    def no_kwargs(cell, input_size, hidden_size):
        return 0
    msg = failure(grading.check_param_count, no_kwargs)
    assert "raised TypeError" in msg and "param_count('rnn', input_size=10" in msg


def test_calling_the_library_or_torch_fails_and_says_so():
    def via_library(cell, input_size, hidden_size, num_layers=1, bidirectional=False, proj_size=0, n_biases=2):
        return gl.param_count(cell, input_size, hidden_size, num_layers, bidirectional, bias=n_biases > 0,
                              proj_size=proj_size, single_bias=n_biases == 1)
    msg = failure(grading.check_param_count, via_library)
    assert "gated_lib.counting.param_count" in msg and "a reference implementation" in msg

    def via_torch(cell, input_size, hidden_size, num_layers=1, bidirectional=False, proj_size=0, n_biases=2):
        module = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
        extra = {"proj_size": proj_size} if proj_size else {}
        m = module(input_size, hidden_size, num_layers, bias=n_biases > 0, bidirectional=bidirectional, **extra)
        return sum(p.numel() for p in m.parameters()) - (n_biases == 1) * 0
    msg = failure(grading.check_param_count, via_torch)
    assert "torch.nn.RNN" in msg and "a reference implementation" in msg

    def flops_via_library(cell, input_size, hidden_size, batch_size=1, proj_size=0):
        return gl.flops_per_step(cell, input_size, hidden_size, batch_size, proj_size)
    assert "gated_lib.counting.flops_per_step" in failure(grading.check_flops_per_step, flops_via_library)


def test_checkers_return_nothing(capsys):
    assert grading.check_param_count(loop_count) is None
    assert grading.check_flops_per_step(flops) is None
    assert capsys.readouterr().err == ""
