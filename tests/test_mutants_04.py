"""Exercise 04's tests catch real bugs, accept other correct solutions and refuse the reference.

Each mutant is a solution cell with one deliberate bug (a textual edit of the solution, checked to
apply), run through the notebook's visible and hidden tests (tests/mutation.py). The exercise must
fail it, and the failure message must name the bug. The three graded functions are checked
independently (the Jacobian's and the conversion's checkers never call the learner's cell), so one
notebook run carries one mutant of each: a run costs a kernel start.
"""

from __future__ import annotations

import pytest

from tests.mutation import cell_source, edit, failing, run_mutant

NAME = "04_gru"
CELL = cell_source(NAME, "gru_cell_forward")
JAC = cell_source(NAME, "gru_step_jacobian")
CONV = cell_source(NAME, "to_torch_state_dict")


# grade_id of the mutated cell -> the test cells that must fail (the first must carry the phrase)
TESTS = {
    "gru_cell_forward": {"pytorch": ["test_gru_cell_pytorch", "test_gru_cell_pytorch_hidden"],
                         "cho": ["test_gru_cell_cho"]},
    "gru_step_jacobian": {"pytorch": ["test_gru_jacobian_pytorch", "test_gru_jacobian_pytorch_hidden"],
                          "cho": ["test_gru_jacobian_cho"]},
    "to_torch_state_dict": {"any": ["test_torch_state_dict", "test_torch_state_dict_hidden"]},
}

SWAP_RZ_IN_CELL = [
    ("r = sigmoid(gi[:, :H] + h_prev @ W_hr.T + b_hr)", "r = sigmoid(gi[:, H:2 * H] + h_prev @ W_hr.T + b_hr)"),
    ("z = sigmoid(gi[:, H:2 * H] + h_prev @ W_hz.T + b_hz)", "z = sigmoid(gi[:, :H] + h_prev @ W_hz.T + b_hz)"),
    ("W_hr, W_hz, W_hn = weight_hh[:H]", "W_hz, W_hr, W_hn = weight_hh[:H]"),
    ("b_hr, b_hz, b_hn = bias_hh[:H]", "b_hz, b_hr, b_hn = bias_hh[:H]"),
]
ALWAYS_CHO = [('if convention == "pytorch":', 'if convention == "never":'), ('elif convention == "cho":', "elif True:")]
ALWAYS_PYTORCH = [('if convention == "pytorch":', 'if convention in ("pytorch", "cho"):'),
                  ('elif convention == "cho":', 'elif convention == "never":')]

# Each run: {grade_id: (edits, convention whose tests must fail, phrase of the diagnosis)}
RUNS = {
    "z flipped / diag(z) only / z rows not negated": {
        "gru_cell_forward": ([("return (1 - z) * n + z * h_prev", "return z * n + (1 - z) * h_prev")],
                             "pytorch", "GRU with z's role flipped: h' = z*n + (1-z)*h"),
        "gru_step_jacobian": ([("J = (h_prev - n)[:, :, None] * dz + ((1 - z) * (1 - n * n))[:, :, None] * da_n",
                                "J = np.zeros((x.shape[0], H, H), dtype=x.dtype)")],
                              "pytorch", "J = diag(z) alone"),
        "to_torch_state_dict": ([('-params["W_z"]', 'params["W_z"]'), ('-params["U_z"]', 'params["U_z"]'),
                                 ('-params["b_z"]', 'params["b_z"]')],
                                "any", "GRU with z's role flipped"),
    },
    "reset before the product for pytorch / no r path / gate order not reordered": {
        "gru_cell_forward": (ALWAYS_CHO, "pytorch", "Cho et al.'s convention"),
        "gru_step_jacobian": ([("da_n = r[:, :, None] * W_hn + m[:, :, None] * dr", "da_n = r[:, :, None] * W_hn"),
                               ("d_rh = h_prev[:, :, None] * dr", "d_rh = 0 * dr")],
                              "pytorch", "term through the reset gate missing"),
        "to_torch_state_dict": ([('[params["W_r"], -params["W_z"]', '[-params["W_z"], params["W_r"]'),
                                 ('[params["U_r"], -params["U_z"]', '[-params["U_z"], params["U_r"]'),
                                 ('[params["b_r"], -params["b_z"]', '[-params["b_z"], params["b_r"]')],
                                "any", "gate blocks in the wrong order"),
    },
    "reset after the product for cho / transposed Jacobian / b_h inside r": {
        "gru_cell_forward": (ALWAYS_PYTORCH, "cho", "Do you use the `convention` argument?"),
        "gru_step_jacobian": ([("    return J\n", "    return np.swapaxes(J, 1, 2)\n")],
                              "pytorch", "Jacobian transposed"),
        "to_torch_state_dict": ([("    bias_hh = np.zeros_like(bias_ih)\n",
                                  "    bias_hh = np.zeros_like(bias_ih)\n    H = params['U_h'].shape[0]\n"
                                  "    bias_hh[2 * H:], bias_ih[2 * H:] = bias_ih[2 * H:], 0.0\n")],
                                "any", "b_h sits in bias_hh"),
    },
    "gate order z, r, n / Cho Jacobian for pytorch / transposed weights": {
        "gru_cell_forward": (SWAP_RZ_IN_CELL, "pytorch", "order z, r, n"),
        "gru_step_jacobian": (ALWAYS_CHO, "pytorch", "Jacobian of the Cho convention"),
        "to_torch_state_dict": ([('np.concatenate([params["W_r"], -params["W_z"], params["W_h"]], axis=0)',
                                  'np.concatenate([params["W_r"].T, -params["W_z"].T, params["W_h"].T], axis=1)')],
                                "any", "That is the transpose"),
    },
    "b_hn dropped / no path through z / z bias not negated": {
        "gru_cell_forward": ([("r * (h_prev @ W_hn.T + b_hn)", "r * (h_prev @ W_hn.T)")], "pytorch", "b_hn dropped"),
        "gru_step_jacobian": ([("J = (h_prev - n)[:, :, None] * dz + ", "J = ")],
                              "pytorch", "term through the update gate missing"),
        "to_torch_state_dict": ([('-params["b_z"]', 'params["b_z"]')], "any", "its bias is not"),
    },
    "untransposed weight blocks / no tanh derivative / biases left as columns": {
        "gru_cell_forward": ([("h_prev @ W_hr.T", "h_prev @ W_hr"), ("h_prev @ W_hz.T", "h_prev @ W_hz"),
                              ("h_prev @ W_hn.T + b_hn)", "h_prev @ W_hn + b_hn)")],
                             "pytorch", "without transposing"),
        "gru_step_jacobian": ([("((1 - z) * (1 - n * n))[:, :, None]", "(1 - z)[:, :, None]")],
                              "pytorch", "tanh's derivative (1 - n**2) missing"),
        "to_torch_state_dict": ([(".reshape(-1)", "")], "any", "b.ravel()"),
    },
}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_mutants_fail_with_a_diagnosis(run, tmp_path):
    spec = RUNS[run]
    sources = {"gru_cell_forward": CELL, "gru_step_jacobian": JAC, "to_torch_state_dict": CONV}
    replacements = {gid: edit(sources[gid], *edits) for gid, (edits, _, _) in spec.items()}
    fails = failing(run_mutant(NAME, replacements, tmp_path))
    for gid, (_, convention, phrase) in spec.items():
        must_fail = TESTS[gid][convention]
        for test in must_fail:
            assert test in fails, f"{run}: {test} passes the buggy {gid}"
        assert phrase in fails[must_fail[0]], (
            f"{run}: the message of {must_fail[0]} does not name the bug ({phrase!r}):\n{fails[must_fail[0]][:900]}")
    # a bug in one function never costs points elsewhere (the multiple-choice cells are untouched)
    assert "test_answer_conventions" not in fails and "test_answer_jacobian" not in fails


def test_pytorch_only_cell_keeps_its_pytorch_points(tmp_path):
    """Ignoring the convention loses the Cho points only; the diagnosis says why."""
    fails = failing(run_mutant(NAME, {"gru_cell_forward": edit(CELL, *ALWAYS_PYTORCH)}, tmp_path))
    assert set(fails) == {"test_gru_cell_cho"}, fails


ALTERNATIVES = {
    "gru_cell_forward": '''def gru_cell_forward(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
    # Another correct solution: a loop over the three blocks, column-vector products, a naive sigmoid,
    # and the update written as h_prev + (1 - z) * (n - h_prev).
    H = h_prev.shape[1]
    blocks = []
    for k in range(3):
        rows = slice(k * H, (k + 1) * H)
        blocks.append((np.dot(weight_ih[rows], x.T).T + bias_ih[rows], weight_hh[rows], bias_hh[rows]))
    (xr, Wr, br), (xz, Wz, bz), (xn, Wn, bn) = blocks
    with np.errstate(over="ignore"):
        r = 1 / (1 + np.exp(-(xr + np.dot(Wr, h_prev.T).T + br)))
        z = 1 / (1 + np.exp(-(xz + np.dot(Wz, h_prev.T).T + bz)))
    if convention == "cho":
        n = np.tanh(xn + np.dot(Wn, (r * h_prev).T).T + bn)
    else:
        n = np.tanh(xn + r * np.dot(Wn, h_prev.T).T + r * bn)
    return (h_prev + (1 - z) * (n - h_prev)).astype(x.dtype)
''',
    "gru_step_jacobian": '''def gru_step_jacobian(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
    # Another correct solution: one example at a time with np.diag, in float64, cast back at the end.
    dtype = x.dtype
    x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh = (np.asarray(a, np.float64) for a in
                                                         (x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh))
    H = h_prev.shape[1]
    Wr, Wz, Wn = weight_hh[:H], weight_hh[H:2 * H], weight_hh[2 * H:]
    out = []
    for b in range(x.shape[0]):
        xb, hb = x[b], h_prev[b]
        gi = weight_ih @ xb + bias_ih
        r = sigmoid(gi[:H] + Wr @ hb + bias_hh[:H])
        z = sigmoid(gi[H:2 * H] + Wz @ hb + bias_hh[H:2 * H])
        bracket = Wn @ hb + bias_hh[2 * H:]
        if convention == "cho":
            n = np.tanh(gi[2 * H:] + Wn @ (r * hb) + bias_hh[2 * H:])
            dan = Wn @ (np.diag(r) + np.diag(hb * r * (1 - r)) @ Wr)
        else:
            n = np.tanh(gi[2 * H:] + r * bracket)
            dan = np.diag(r) @ Wn + np.diag(bracket * r * (1 - r)) @ Wr
        out.append(np.diag(z) + np.diag((hb - n) * z * (1 - z)) @ Wz + np.diag((1 - z) * (1 - n ** 2)) @ dan)
    return np.stack(out).astype(dtype)
''',
    "to_torch_state_dict": '''def to_torch_state_dict(params):
    # Another correct solution: torch tensors filled into a fresh torch.nn.GRU's state_dict, the r and z
    # biases split evenly between bias_ih and bias_hh (only their sum matters), b_h kept out of bias_hh.
    import torch
    H, D = params["W_z"].shape
    sd = torch.nn.GRU(D, H, dtype=torch.float64).state_dict()
    t = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in params.items()}
    sd["weight_ih_l0"] = torch.cat([t["W_r"], -t["W_z"], t["W_h"]])
    sd["weight_hh_l0"] = torch.cat([t["U_r"], -t["U_z"], t["U_h"]])
    half = torch.cat([t["b_r"], -t["b_z"]]).flatten() / 2
    sd["bias_ih_l0"] = torch.cat([half, t["b_h"].flatten()])
    sd["bias_hh_l0"] = torch.cat([half, torch.zeros(H, dtype=torch.float64)])
    return sd
''',
}


def test_alternative_correct_solutions_get_every_test(tmp_path):
    outcomes = run_mutant(NAME, ALTERNATIVES, tmp_path)
    assert outcomes and not failing(outcomes), f"a correct alternative solution fails: {failing(outcomes)}"


CALLS_REFERENCE = {
    "gru_cell_forward": '''def gru_cell_forward(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
    from gated_lib.gru import gru_cell_forward as reference
    h, _ = reference(x, h_prev, dict(weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh),
                     convention=convention)
    return h
''',
    "gru_step_jacobian": '''def gru_step_jacobian(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, convention="pytorch"):
    import gated_lib
    _, cache = gated_lib.gru_cell_forward(x, h_prev, dict(weight_ih=weight_ih, weight_hh=weight_hh,
                                                          bias_ih=bias_ih, bias_hh=bias_hh), convention=convention)
    return gated_lib.gru_step_jacobian(cache)
''',
    "to_torch_state_dict": '''def to_torch_state_dict(params):
    from gated_lib import convert
    from gated_lib.grading.gru import source_forward  # noqa: F401 - not a converter, but the library
    w = {"weight_ih": np.concatenate([params["W_r"], -params["W_z"], params["W_h"]]),
         "weight_hh": np.concatenate([params["U_r"], -params["U_z"], params["U_h"]]),
         "bias": np.concatenate([params["b_r"], -params["b_z"], params["b_h"]]).ravel()}
    return convert.to_torch(w)
''',
}


def test_calling_the_library_fails_and_says_so(tmp_path):
    fails = failing(run_mutant(NAME, CALLS_REFERENCE, tmp_path))
    for test, called in [("test_gru_cell_pytorch", "gated_lib.gru.gru_cell_forward"),
                         ("test_gru_jacobian_pytorch", "gated_lib.jacobians.gru_step_jacobian"),
                         ("test_torch_state_dict", "gated_lib.convert.to_torch")]:
        assert test in fails, f"{test}: a function that calls gated_lib gets the points"
        assert "a reference implementation of what this exercise asks you to write" in fails[test]
        assert called in fails[test], fails[test][:600]
