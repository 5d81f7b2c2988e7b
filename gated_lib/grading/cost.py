"""Checkers for exercise 5 (parameters and cost): parameter counts and FLOPs per step.

The learner's API (cells "rnn", "gru", "lstm"; torch.nn's layout)::

    param_count(cell, input_size, hidden_size, num_layers=1, bidirectional=False, proj_size=0,
                n_biases=2) -> int
    flops_per_step(cell, input_size, hidden_size, batch_size=1, proj_size=0)
        -> {"matmul": int, "elementwise": int}

n_biases: 2 is torch's (bias_ih and bias_hh), 1 the textbook's single bias per gate, 0 torch's
bias=False. proj_size > 0 only for the LSTM. The conventions are chapter 5's (gated_lib.counting):

    per layer and direction   G*in + G*R + n_biases*G*H + P*H      R = P if P else H
    layer 0 reads in = D; layer l > 0 reads in = R * (2 if bidirectional else 1)
    matmul FLOPs              2*B*G*H*(D + R) + 2*B*P*H             a multiply-add is 2 FLOPs
    elementwise FLOPs         B*H*(4*G + S)   per gate unit: the add of the two products, the two
                              biases, the nonlinearity; S the state update: rnn 0, gru 4, lstm 5

Checkers:

* :func:`check_param_count`: runs the learner's function on cases of one part (``"layer"``: one
  layer, one direction, every bias convention; ``"stacked"``: layers and directions; ``"proj"``: the
  LSTM's projection) and compares with :mod:`gated_lib.counting`. On a mismatch it evaluates
  deliberately *mutated* formulas (the second bias forgotten, the bidirectional factor forgotten,
  proj_size on the input of layer 0, weight_hh with H columns under a projection, 4 gate blocks for the
  GRU, upper layers reading input_size or H instead of 2H, ...) and names the one the learner's
  numbers match on every case; otherwise it shows the expected count term by term.
* :func:`check_param_count_torch`: random configurations, each compared with ``sum(p.numel())`` of
  the ``torch.nn.RNN/GRU/LSTM`` it describes (and the single-bias count with the formula).
* :func:`check_flops_per_step`: the same for the FLOP counts; mutations: a multiply-add counted as
  1 FLOP, the elementwise part missing (or its biases, nonlinearities or state update), the batch
  size ignored, the projection's product missing, ...

While the learner's function runs, gated_lib (except activations and errors) and torch's recurrent
modules are forbidden: counting torch.nn.LSTM's numel is the reference, not a derivation.

Visible tests call a checker with its defaults (fixed cases); hidden tests pass a seed and
``fixed=False, n_random=...``.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gated_lib import counting as _ref
from gated_lib.grading.core import Forbidden, GradingFailure, call_student

__all__ = [
    "COUNT_BUGS",
    "FLOP_BUGS",
    "FORBID",
    "PARTS",
    "check_flops_per_step",
    "check_param_count",
    "check_param_count_torch",
    "count_variant",
    "flops_variant",
]

#: gated_lib (its counting module above all) and torch's recurrent modules are off limits.
FORBID = Forbidden(allow=("gated_lib.activations", "gated_lib.errors"), torch=("lstm", "gru", "rnn"))

CELLS = ("rnn", "gru", "lstm")
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
STATE_UPDATE = {"rnn": 0, "gru": 4, "lstm": 5}
TORCH_MODULE = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
PARTS = ("layer", "stacked", "proj")


# --------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CountCase:
    cell: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    proj_size: int = 0
    n_biases: int = 2

    def kwargs(self) -> dict:
        return dict(num_layers=self.num_layers, bidirectional=self.bidirectional, proj_size=self.proj_size,
                    n_biases=self.n_biases)

    def call_text(self) -> str:
        return (f"param_count({self.cell!r}, input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, proj_size={self.proj_size}, "
                f"n_biases={self.n_biases})")

    def expected(self) -> int:
        return _ref.param_count(self.cell, self.input_size, self.hidden_size, self.num_layers, self.bidirectional,
                                bias=self.n_biases > 0, proj_size=self.proj_size, single_bias=self.n_biases == 1)


@dataclass(frozen=True)
class FlopCase:
    cell: str
    input_size: int
    hidden_size: int
    batch_size: int = 1
    proj_size: int = 0

    def call_text(self) -> str:
        return (f"flops_per_step({self.cell!r}, input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"batch_size={self.batch_size}, proj_size={self.proj_size})")

    def expected(self) -> dict:
        f = _ref.flops_per_step(self.cell, self.input_size, self.hidden_size, batch_size=self.batch_size,
                                proj_size=self.proj_size)
        return {"matmul": f["matmul"], "elementwise": f["elementwise"]}


_FIXED = {
    "layer": [CountCase(c, 10, 20, n_biases=nb) for c in CELLS for nb in (2, 1, 0)]
    + [CountCase("lstm", 3, 7), CountCase("gru", 1, 1)],
    "stacked": [CountCase("lstm", 10, 20, 2, True), CountCase("gru", 10, 20, 3, False),
                CountCase("rnn", 5, 8, 2, True, n_biases=1), CountCase("gru", 7, 4, 3, True, n_biases=0),
                CountCase("lstm", 6, 9, 1, True)],
    "proj": [CountCase("lstm", 10, 20, proj_size=5), CountCase("lstm", 10, 20, 2, False, 5),
             CountCase("lstm", 8, 6, 3, True, 2), CountCase("lstm", 4, 9, 2, True, 3, n_biases=1)],
}


def _random_count_cases(rng: np.random.Generator, part: str, n: int) -> list[CountCase]:
    cases = []
    for _ in range(n):
        cell = str(rng.choice(CELLS)) if part != "proj" else "lstm"
        D, H = int(rng.integers(1, 65)), int(rng.integers(2, 65))
        L = 1 if part == "layer" else int(rng.integers(2 if part == "stacked" else 1, 5))
        bd = False if part == "layer" else bool(rng.integers(0, 2)) or part == "stacked" and len(cases) % 2 == 0
        P = int(rng.integers(1, H)) if part == "proj" else 0
        cases.append(CountCase(cell, D, H, L, bd, P, int(rng.integers(0, 3))))
    return cases


def _count_cases(part: str, seed: int, fixed: bool, n_random: int) -> list[CountCase]:
    if part not in PARTS:
        raise ValueError(f"part: expected one of {PARTS}, got {part!r}")
    cases = list(_FIXED[part]) if fixed else []
    return cases + _random_count_cases(np.random.default_rng(seed), part, n_random)


_FIXED_FLOPS = [FlopCase(c, 10, 20) for c in CELLS] + [FlopCase(c, 10, 20, batch_size=8) for c in CELLS] + \
    [FlopCase("lstm", 10, 20, 4, proj_size=5), FlopCase("gru", 3, 7, 2), FlopCase("rnn", 1, 1)]


def _flop_cases(seed: int, fixed: bool, n_random: int) -> list[FlopCase]:
    cases = list(_FIXED_FLOPS) if fixed else []
    rng = np.random.default_rng(seed)
    for _ in range(n_random):
        cell = str(rng.choice(CELLS))
        H = int(rng.integers(2, 257))
        P = int(rng.integers(1, H)) if cell == "lstm" and rng.random() < 0.4 else 0
        cases.append(FlopCase(cell, int(rng.integers(1, 257)), H, int(rng.integers(1, 129)), P))
    return cases


# --------------------------------------------------------------------------------------------------
# The mutated formulas (written independently of gated_lib.counting; the tests check they agree)
# --------------------------------------------------------------------------------------------------

#: Parameter-count mutations, each with the sentence that explains it.
COUNT_BUGS: dict[str, str] = {
    "one_bias": ("one bias vector per gate where torch has two: with n_biases=2 there are bias_ih *and* "
                 "bias_hh, 2*G*H biases per layer and direction (the second bias is redundant in the "
                 "arithmetic, except for the GRU's candidate, but it is a parameter all the same)."),
    "ignores_n_biases": ("n_biases ignored: the count is the same for n_biases=2, 1 and 0. Each layer and "
                         "direction has n_biases*G*H biases."),
    "bias_not_per_gate": ("biases counted as n_biases*H instead of n_biases*G*H: every gate block has its own "
                          "bias, as it has its own rows of weight_ih."),
    "no_bidirectional": ("bidirectional ignored, so the bidirectional factor is missing: a bidirectional layer "
                         "has two directions, each with its own weight_ih, weight_hh and biases (torch's *_reverse "
                         "parameters), so every layer counts twice, and layers above the first read both "
                         "directions' outputs, 2H (2P)."),
    "direction_factor": ("the bidirectional factor is missing: a bidirectional layer has two directions, "
                         "each with its own weight_ih, weight_hh and biases (torch's *_reverse parameters), "
                         "so every layer counts twice (your upper layers do read both directions' outputs)."),
    "upper_reads_one_direction": ("layers above the first read R (H, or proj_size), not R*2: in a "
                                  "bidirectional stack layer l > 0 reads the two directions' outputs of the "
                                  "layer below, concatenated, so its weight_ih has 2H (2P) columns."),
    "upper_reads_input": ("layers above the first read input_size: only layer 0 sees the input x; layer "
                          "l > 0 reads the layer below's output, of size H (2H bidirectional; P or 2P with "
                          "a projection)."),
    "one_layer": "num_layers ignored: a stack of L layers has L layers of weights.",
    "proj_on_input": ("proj_size applied to the input of layer 0: layer 0's weight_ih still reads x, of size "
                      "input_size; the projection shrinks the *output* h_t to proj_size."),
    "proj_R_is_H": ("weight_hh counted with H columns under a projection: the recurrent input is the "
                    "projected state h_{t-1}, of size proj_size, so weight_hh is (4H, P), not (4H, H)."),
    "proj_no_weight_hr": "weight_hr missing: the projection itself is a (P, H) matrix, P*H parameters per "
                         "layer and direction.",
    "proj_upper_reads_H": ("layers above the first read H (2H) under a projection: they read the layer "
                           "below's projected output, of size P (2P bidirectional)."),
    "proj_weight_hr_once": "weight_hr counted once for the whole stack: every layer and direction has its own.",
    "gru_4_gates": "the GRU counted with 4 gate blocks, like an LSTM: the GRU has 3 (r, z, n).",
    "lstm_3_gates": "the LSTM counted with 3 gate blocks: it has 4 (i, f, g, o).",
    "hh_uses_input": "weight_hh counted as G*H*input_size: the recurrent matrix is (G*H, H), it multiplies h_{t-1}.",
}

_COUNT_GROUPS = [
    {"one_bias", "ignores_n_biases", "bias_not_per_gate"},
    {"upper_reads_one_direction", "upper_reads_input", "proj_upper_reads_H"},
    {"no_bidirectional", "direction_factor", "upper_reads_one_direction"},
    {"gru_4_gates", "lstm_3_gates"},
]


def count_variant(case: CountCase, bugs: frozenset | set | tuple = ()) -> int:
    """The parameter count of `case`, computed with the mistakes named in `bugs` (COUNT_BUGS keys)."""
    bugs = set(bugs)
    G = GATES[case.cell]
    if "gru_4_gates" in bugs and case.cell == "gru":
        G = 4
    if "lstm_3_gates" in bugs and case.cell == "lstm":
        G = 3
    D, H, P = case.input_size, case.hidden_size, case.proj_size
    L = 1 if "one_layer" in bugs else case.num_layers
    dirs = 2 if case.bidirectional and "no_bidirectional" not in bugs else 1
    nb = case.n_biases
    if "ignores_n_biases" in bugs:
        nb = 2
    elif "one_bias" in bugs and nb == 2:
        nb = 1
    R = H if ("proj_R_is_H" in bugs or not P) else P
    total = 0
    for layer in range(L):
        if layer == 0:
            inp = P if ("proj_on_input" in bugs and P) else D
        elif "upper_reads_input" in bugs:
            inp = D
        else:
            width = H if ("proj_upper_reads_H" in bugs or not P) else P
            inp = width * (1 if "upper_reads_one_direction" in bugs else dirs)
        per_dir = G * H * (D if "hh_uses_input" in bugs else R) + G * H * inp
        per_dir += nb * H * (1 if "bias_not_per_gate" in bugs else G)
        if "proj_no_weight_hr" not in bugs and "proj_weight_hr_once" not in bugs:
            per_dir += P * H
        total += (1 if "direction_factor" in bugs else dirs) * per_dir
    if "proj_weight_hr_once" in bugs:
        total += P * H
    return total


def _count_applicable(bug: str, case: CountCase) -> bool:
    return {
        "one_bias": case.n_biases == 2, "ignores_n_biases": case.n_biases != 2, "bias_not_per_gate": case.n_biases > 0,
        "no_bidirectional": case.bidirectional, "direction_factor": case.bidirectional, "upper_reads_one_direction": case.bidirectional and case.num_layers > 1,
        "upper_reads_input": case.num_layers > 1, "one_layer": case.num_layers > 1,
        "gru_4_gates": case.cell == "gru", "lstm_3_gates": case.cell == "lstm",
    }.get(bug, case.proj_size > 0 if bug.startswith("proj_") else True)


#: FLOP mutations, each with the sentence that explains it.
FLOP_BUGS: dict[str, str] = {
    "mac_is_1": ("a multiply-add counted as 1 FLOP: this course (like most papers and torch's FLOP counter) "
                 "counts a multiply-add as 2 FLOPs, one multiply and one add, so (B x K) @ (K x N) costs "
                 "2*B*K*N."),
    "no_batch": "batch_size ignored: every example of the batch does the whole step, so both counts scale with B.",
    "no_elementwise": ("the elementwise part is missing: adding the two products and the biases, the gate "
                       "nonlinearities and the state update are FLOPs too (B*H*(4G + S))."),
    "elementwise_no_biases": "the bias adds are missing from the elementwise part: 2 biases per gate unit, 2*G*H per example.",
    "elementwise_3_per_gate": ("3 elementwise FLOPs per gate unit where there are 4: the add of the two products "
                               "(x W_ih^T + h W_hh^T), 2 bias adds (bias_ih and bias_hh, torch has both) and 1 "
                               "nonlinearity (sigmoid or tanh). One of them is missing, often the second bias."),
    "elementwise_no_state": ("the state update is missing from the elementwise part: lstm 5 per unit "
                             "(f*c, i*g, +, tanh c, o*tanh c), gru 4 (r*(...), h - n, z*(...), +), rnn 0."),
    "elementwise_in_matmul": ("the elementwise FLOPs added into 'matmul' as well: 'matmul' holds the matrix "
                              "products only."),
    "proj_no_product": "the projection's product h_t W_hr^T is missing: 2*B*P*H FLOPs with proj_size P.",
    "proj_R_is_H": ("the recurrent product counted with H under a projection: it multiplies the projected state, "
                    "(B, P) @ (P, 4H), 2*B*4H*P FLOPs."),
    "gru_4_gates": "the GRU counted with 4 gate blocks, like an LSTM: the GRU has 3 (r, z, n).",
    "no_recurrent": "the recurrent product h_{t-1} W_hh^T is missing from 'matmul': 2*B*G*H*R FLOPs.",
}

_FLOP_GROUPS = [
    {"no_elementwise", "elementwise_no_biases", "elementwise_3_per_gate", "elementwise_no_state"},
    {"proj_no_product", "proj_R_is_H"},
]


def flops_variant(case: FlopCase, bugs: frozenset | set | tuple = ()) -> dict:
    """{"matmul", "elementwise"} of `case`, computed with the mistakes named in `bugs` (FLOP_BUGS keys)."""
    bugs = set(bugs)
    G = 4 if ("gru_4_gates" in bugs and case.cell == "gru") else GATES[case.cell]
    D, H, P = case.input_size, case.hidden_size, case.proj_size
    B = 1 if "no_batch" in bugs else case.batch_size
    mac = 1 if "mac_is_1" in bugs else 2
    R = H if ("proj_R_is_H" in bugs or not P) else P
    matmul = mac * B * G * H * D + (0 if "no_recurrent" in bugs else mac * B * G * H * R)
    if "proj_no_product" not in bugs:
        matmul += mac * B * P * H
    per_unit = 4 - (2 if "elementwise_no_biases" in bugs else 0) - (1 if "elementwise_3_per_gate" in bugs else 0)
    elementwise = B * H * (G * per_unit + (0 if "elementwise_no_state" in bugs else STATE_UPDATE[case.cell]))
    if "no_elementwise" in bugs:
        elementwise = 0
    if "elementwise_in_matmul" in bugs:
        matmul += elementwise
    return {"matmul": matmul, "elementwise": elementwise}


def _flop_applicable(bug: str, case: FlopCase) -> bool:
    return {"no_batch": case.batch_size > 1, "proj_no_product": case.proj_size > 0, "proj_R_is_H": case.proj_size > 0,
            "gru_4_gates": case.cell == "gru", "elementwise_no_state": case.cell != "rnn"}.get(bug, True)


# --------------------------------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------------------------------

def _as_int(value, what: str, call: str) -> int:
    """The learner's number as an int, or a GradingFailure that says what it is instead."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:    # numpy or torch scalar
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise GradingFailure(f"{call}: {what} should be a whole number (an int), but it is "
                             f"{type(value).__name__}: {value!r:.80}.")
    if isinstance(value, numbers.Integral):
        return int(value)
    if not math.isfinite(value) or not float(value).is_integer():
        raise GradingFailure(f"{call}: {what} should be a whole number, but it is {value!r}: a count of "
                             f"parameters or FLOPs has no fractional part (use // or keep everything in ints).")
    return int(value)


def _candidate_bugs(groups, names, applicable_anywhere):
    singles = [(b,) for b in names if applicable_anywhere(b)]
    pairs = [p for p in itertools.combinations(names, 2)
             if all(applicable_anywhere(b) for b in p) and not any(set(p) <= g for g in groups)]
    return singles + pairs


def _bullets(lines) -> str:
    return "\n".join(f"  - {line}" for line in lines)


def _fmt(n: int) -> str:
    return f"{n:,}"


# --------------------------------------------------------------------------------------------------
# Parameter counts
# --------------------------------------------------------------------------------------------------

def _breakdown(case: CountCase) -> str:
    """The expected count term by term, as the chapter writes it."""
    rows = _ref.param_count_per_layer(case.cell, case.input_size, case.hidden_size, case.num_layers,
                                      case.bidirectional, bias=case.n_biases > 0, proj_size=case.proj_size,
                                      single_bias=case.n_biases == 1)
    G, H, P = GATES[case.cell], case.hidden_size, case.proj_size
    R = P or H
    dirs = 2 if case.bidirectional else 1
    lines = []
    for layer in range(case.num_layers):
        row = rows[layer * dirs]
        terms = [f"weight_ih {G}*{H}*{row['input_size']} = {_fmt(row['weight_ih'])}",
                 f"weight_hh {G}*{H}*{R} = {_fmt(row['weight_hh'])}",
                 f"biases {case.n_biases}*{G}*{H} = {_fmt(row['biases'])}"]
        if P:
            terms.append(f"weight_hr {P}*{H} = {_fmt(row['weight_hr'])}")
        reads = "input_size" if layer == 0 else ("the layer below, both directions" if dirs == 2 else "the layer below")
        lines.append(f"layer {layer} (reads {row['input_size']}: {reads}): " + " + ".join(terms)
                     + f" = {_fmt(row['total'])}" + (f", times 2 directions = {_fmt(2 * row['total'])}" if dirs == 2 else ""))
    return _bullets(lines)


def _diagnose(results: list, variant, bugs_table, groups, applicable) -> list[str]:
    """Names of the mistakes whose mutated formula reproduces every one of the learner's results."""
    def anywhere(b):
        return any(applicable(b, case) for case, _ in results)
    found = []
    for bugs in _candidate_bugs(groups, list(bugs_table), anywhere):
        if all(variant(case, bugs) == got for case, got in results) and not any(set(f) < set(bugs) for f in found):
            found.append(bugs)
    found = [f for f in found if not any(set(g) < set(f) for g in found)]
    if not found:
        return []
    best = min(found, key=len)
    return [bugs_table[b] for b in best]


def _run_counts(fn: Callable, cases: list[CountCase], fn_name: str) -> list[tuple[CountCase, int]]:
    results = []
    for case in cases:
        got = call_student(fn, (case.cell, case.input_size, case.hidden_size), case.kwargs(), fn_name=fn_name,
                           case=case.call_text(), forbid=FORBID,
                           hint="Check your function on this call in a cell of its own.")
        results.append((case, _as_int(got, "the result", case.call_text())))
    return results


def _report_counts(results, fn_name: str, expected_of=lambda c: c.expected(), source: str = "") -> None:
    wrong = [(case, got, expected_of(case)) for case, got in results if got != expected_of(case)]
    if not wrong:
        return
    case, got, want = wrong[0]
    text = (f"{fn_name} is wrong on {len(wrong)} of {len(results)} cases. The first: {case.call_text()} returned "
            f"{_fmt(got)}, expected {_fmt(want)}{source} (yours is {_fmt(abs(got - want))} "
            f"{'too many' if got > want else 'too few'}).\nThe expected count, layer by layer:\n{_breakdown(case)}")
    named = _diagnose(results, count_variant, COUNT_BUGS, _COUNT_GROUPS, _count_applicable)
    if named:
        text += "\nYour results match, on every case checked, a count with " + \
                ("this mistake:\n" if len(named) == 1 else "these mistakes:\n") + _bullets(named)
    raise GradingFailure(text)


def check_param_count(fn: Callable, *, part: str = "layer", seed: int = 0, fixed: bool = True,
                      n_random: int = 0, fn_name: str = "param_count") -> None:
    """Check a learner's param_count on the cases of `part` ("layer", "stacked" or "proj").

    fixed: the visible cases; n_random: that many random cases of the part, drawn with `seed`.
    """
    cases = _count_cases(part, seed, fixed, n_random)
    results = _run_counts(fn, cases, fn_name)
    _report_counts(results, fn_name)
    what = {"layer": "one layer, one direction, n_biases 2, 1 and 0",
            "stacked": "layers and directions", "proj": "the LSTM's projection"}[part]
    print(f"{fn_name} ({what}): all {len(cases)} cases right{' (random sizes)' if not fixed else ''}.")


def _torch_numel(case: CountCase) -> int:
    import torch

    kwargs = dict(input_size=case.input_size, hidden_size=case.hidden_size, num_layers=case.num_layers,
                  bidirectional=case.bidirectional, bias=case.n_biases > 0)
    if case.proj_size:
        kwargs["proj_size"] = case.proj_size
    module = getattr(torch.nn, TORCH_MODULE[case.cell])(**kwargs)
    return int(sum(p.numel() for p in module.parameters()))


def check_param_count_torch(fn: Callable, *, seed: int = 0, n_random: int = 12, fn_name: str = "param_count") -> None:
    """Random configurations of every option, each compared with torch.nn's own module's numel.

    n_biases 2 and 0 are torch's bias=True and bias=False, checked against sum(p.numel()); n_biases=1
    (which torch cannot build) is checked against the chapter's formula.
    """
    rng = np.random.default_rng(seed)
    cases = []
    for k in range(n_random):
        cell = CELLS[k % 3]
        H = int(rng.integers(2, 48))
        P = int(rng.integers(1, H)) if cell == "lstm" and k % 6 == 5 else 0      # every other LSTM
        cases.append(CountCase(cell, int(rng.integers(1, 48)), H, int(rng.integers(1, 4)), bool(rng.integers(0, 2)),
                               P, int(rng.choice([2, 2, 0, 1]))))
    expected = {}
    for case in cases:
        if case.n_biases == 1:
            expected[case] = case.expected()
        else:
            expected[case] = _torch_numel(case)
            if expected[case] != case.expected():                      # never: tests/test_ref_counting.py
                raise RuntimeError(f"gated_lib.counting disagrees with torch on {case}")
    results = _run_counts(fn, cases, fn_name)
    wrong = [c for c, got in results if got != expected[c]]
    source = ""
    if wrong and wrong[0].n_biases != 1:
        c = wrong[0]
        source = (f" = sum(p.numel() for p in torch.nn.{TORCH_MODULE[c.cell]}({c.input_size}, {c.hidden_size}, "
                  f"num_layers={c.num_layers}, bidirectional={c.bidirectional}, bias={c.n_biases > 0}"
                  + (f", proj_size={c.proj_size}" if c.proj_size else "") + ").parameters())")
    _report_counts(results, fn_name, expected_of=lambda c: expected[c], source=source)
    print(f"{fn_name}: all {len(cases)} random configurations agree with torch.nn's numel "
          f"(and the single-bias formula).")


# --------------------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------------------

def _flop_breakdown(case: FlopCase) -> str:
    G, H, D, B, P = GATES[case.cell], case.hidden_size, case.input_size, case.batch_size, case.proj_size
    R = P or H
    e = case.expected()
    mm = f"matmul = 2*B*G*H*(D + R) = 2*{B}*{G}*{H}*({D} + {R})"
    if P:
        mm += f" + 2*B*P*H = 2*{B}*{P}*{H}"
    ew = (f"elementwise = B*H*(4*G + S) = {B}*{H}*(4*{G} + {STATE_UPDATE[case.cell]}) "
          f"(per gate unit: 1 add of the two products, 2 bias adds, 1 nonlinearity; S = {STATE_UPDATE[case.cell]} "
          f"for the {case.cell}'s state update)")
    return _bullets([f"{mm} = {_fmt(e['matmul'])}", f"{ew} = {_fmt(e['elementwise'])}"])


def check_flops_per_step(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                         fn_name: str = "flops_per_step") -> None:
    """Check a learner's flops_per_step: a dict with the ints "matmul" and "elementwise"."""
    cases = _flop_cases(seed, fixed, n_random)
    results = []
    for case in cases:
        got = call_student(fn, (case.cell, case.input_size, case.hidden_size),
                           dict(batch_size=case.batch_size, proj_size=case.proj_size), fn_name=fn_name,
                           case=case.call_text(), forbid=FORBID)
        if not isinstance(got, dict) or not {"matmul", "elementwise"} <= set(got):
            keys = sorted(got) if isinstance(got, dict) else None
            raise GradingFailure(f"{case.call_text()} should return a dict with the keys 'matmul' and 'elementwise', "
                                 f"but it returned " + (f"a dict with the keys {keys}." if keys is not None
                                                        else f"{type(got).__name__}: {got!r:.80}."))
        results.append((case, {k: _as_int(got[k], f"[{k!r}]", case.call_text()) for k in ("matmul", "elementwise")}))
    wrong = [(c, got) for c, got in results if got != c.expected()]
    if wrong:
        case, got = wrong[0]
        want = case.expected()
        bad = [k for k in ("matmul", "elementwise") if got[k] != want[k]]
        text = (f"{fn_name} is wrong on {len(wrong)} of {len(results)} cases. The first: {case.call_text()} returned "
                + ", ".join(f"{k} {_fmt(got[k])}" for k in ("matmul", "elementwise")) + "; expected "
                + ", ".join(f"{k} {_fmt(want[k])}" for k in ("matmul", "elementwise"))
                + f" ({' and '.join(bad)} off).\nThe expected counts:\n{_flop_breakdown(case)}")
        named = _diagnose(results, flops_variant, FLOP_BUGS, _FLOP_GROUPS, _flop_applicable)
        if named:
            text += "\nYour results match, on every case checked, a count with " + \
                    ("this mistake:\n" if len(named) == 1 else "these mistakes:\n") + _bullets(named)
        raise GradingFailure(text)
    print(f"{fn_name}: all {len(cases)} cases right{' (random sizes)' if not fixed else ''}.")
