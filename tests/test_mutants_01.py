"""Exercise 01's tests catch real bugs, accept other correct solutions and refuse the references.

Each mutant is a solution cell with one deliberate bug (a textual edit of the solution, checked to
apply), run through the notebook's visible and hidden tests (tests/mutation.py). The exercise must fail
it, and the failure message must name the bug. One notebook run costs a kernel start, so each run
carries mutants of *independent* cells (the cell and the clipping, the sequence and the Jacobian, ...),
and each diagnosis is checked in its own test cell.
"""

from __future__ import annotations

import pytest

from tests.mutation import cell_source, failing, run_mutant

NAME = "01_vanilla_rnn"
SOURCES = {gid: cell_source(NAME, gid) for gid in
           ("rnn_cell_forward", "rnn_forward", "rnn_step_jacobian", "gradient_norm_over_lag", "clip_by_norm",
            "answers")}


def edit(grade_id: str, *edits: tuple[str, str]) -> str:
    src = SOURCES[grade_id]
    for old, new in edits:
        assert old in src, f"the mutant no longer applies: {old!r} is not in the solution cell {grade_id}"
        src = src.replace(old, new)
    return src


CLIP_PER_ARRAY = '''def clip_by_norm(grads, max_norm):
    # Bug: every array is clipped by its own norm, not by the global norm.
    clipped = {}
    for name, g in grads.items():
        n = np.linalg.norm(g)
        clipped[name] = g * (max_norm / n) if n > max_norm else g.copy()
    return clipped, float(np.sqrt(sum(np.sum(g ** 2) for g in grads.values())))
'''

# run name: ({grade_id: buggy source}, {test cell: phrase its message must contain}, cells that must pass)
RUNS = {
    "transposed weights + clip that scales below the threshold": (
        {"rnn_cell_forward": edit("rnn_cell_forward", ("h_prev @ weight_hh.T", "h_prev @ weight_hh")),
         "clip_by_norm": edit("clip_by_norm", ("if norm > max_norm:", "if True:"))},
        {"test_rnn_cell_forward": "weight_hh multiplied without transposing",
         "test_rnn_forward": "The bug is in the cell",
         "test_clip_by_norm": "rescales even when ||g|| <= max_norm"},
        ()),
    "missing bias + clip with per-array norms": (
        {"rnn_cell_forward": edit("rnn_cell_forward", (" + bias_ih", ""), (" + bias_hh", "")),
         "clip_by_norm": CLIP_PER_ARRAY},
        {"test_rnn_cell_forward": "no bias",
         "test_rnn_cell_forward_hidden": "no bias",
         "test_clip_by_norm": "clipped by its own norm"},
        ()),
    "sequence returns h_0 + Jacobian with W_hh transposed": (
        {"rnn_forward": edit("rnn_forward", ("    return out, h\n",
                                             "    return out, np.zeros_like(h) if h0 is None else h0\n")),
         "rnn_step_jacobian": edit("rnn_step_jacobian", ("weight_hh[None, :, :]", "weight_hh.T[None, :, :]"))},
        {"test_rnn_forward": "h_n is the initial state h_0",
         "test_rnn_step_jacobian": "weight_hh transposed",
         "test_rnn_step_jacobian_hidden": "weight_hh transposed"},
        ("test_rnn_cell_forward", "test_clip_by_norm")),
    "sequence does not carry h + Jacobian with (1 - h_{t-1}^2)": (
        {"rnn_forward": edit("rnn_forward", ("        h = rnn_cell_forward(x[t], h,", "        h_t = rnn_cell_forward(x[t], h,"),
                             ("out[t] = h\n", "out[t] = h_t\n"), ("return out, h\n", "return out, h_t\n")),
         "rnn_step_jacobian": edit("rnn_step_jacobian", ("d = 1.0 - h ** 2", "d = 1.0 - h_prev ** 2"))},
        {"test_rnn_forward": "state is not carried",
         "test_rnn_step_jacobian": "(1 - h_{t-1}^2) instead of (1 - h_t^2)"},
        ("test_rnn_cell_forward",)),
    "lag product in the wrong order + wrong multiple-choice answers": (
        {"gradient_norm_over_lag": edit("gradient_norm_over_lag", ("prod = prod @ J", "prod = J @ prod")),
         "answers": edit("answers", ('{"a", "c"}', '{"a", "b", "c"}'), ('{"b", "d", "e"}', '{"a", "d", "e"}'))},
        {"test_gradient_norm_over_lag": "multiplied in the wrong order",
         "test_answer_bounds": "4 of the 5 statements",
         "test_answer_remedies": "3 of the 5 statements"},
        ("test_rnn_forward", "test_rnn_step_jacobian", "test_clip_by_norm")),
    "off-by-one lag index": (
        {"gradient_norm_over_lag": edit("gradient_norm_over_lag", ("t = T - k ", "t = T - k - 1 "))},
        {"test_gradient_norm_over_lag": "lag index is off by one"},
        ("test_rnn_forward", "test_rnn_step_jacobian")),
}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_mutants_fail_with_their_diagnosis(run, tmp_path):
    replacements, expected, must_pass = RUNS[run]
    outcomes = run_mutant(NAME, replacements, tmp_path)
    fails = failing(outcomes)
    for cell, phrase in expected.items():
        assert cell in fails, f"{run}: {cell} passes a buggy solution"
        assert phrase in fails[cell], f"{run}: {cell}'s message does not name the bug ({phrase!r}):\n{fails[cell][:800]}"
    for hidden in [c + "_hidden" for c in expected if c + "_hidden" in outcomes]:
        assert hidden in fails, f"{run}: the hidden test {hidden} passes a buggy solution"
    for cell in must_pass:
        assert cell not in fails, f"{run}: {cell} fails although its function is right:\n{fails.get(cell, '')[:600]}"


ALTERNATIVES = {
    "rnn_cell_forward": '''def rnn_cell_forward(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    # Column-vector algebra, transposed back, and computed in float64 whatever comes in.
    a = weight_ih.astype(np.float64) @ x.T + weight_hh @ h_prev.T + (bias_ih + bias_hh)[:, None]
    return np.tanh(a.T).astype(x.dtype)
''',
    "rnn_forward": '''def rnn_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None):
    states = [np.zeros((x.shape[1], weight_hh.shape[0]), x.dtype) if h0 is None else h0]
    for x_t in x:
        states.append(rnn_cell_forward(x_t, states[-1], weight_ih, weight_hh, bias_ih, bias_hh))
    return np.stack(states[1:]), states[-1]
''',
    "rnn_step_jacobian": '''def rnn_step_jacobian(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    # One example at a time, with an explicit diagonal matrix.
    h = rnn_cell_forward(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
    return np.stack([np.diag(1 - h_b * h_b) @ weight_hh for h_b in h])
''',
    "gradient_norm_over_lag": '''def gradient_norm_over_lag(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None):
    # The transposed product (the row-vector form of BPTT), built by left multiplication; SVD for the norm.
    T, B, _ = x.shape
    H = weight_hh.shape[0]
    h = np.zeros((B, H), x.dtype) if h0 is None else h0
    states = [h]
    for t in range(T):
        states.append(rnn_cell_forward(x[t], states[-1], weight_ih, weight_hh, bias_ih, bias_hh))
    norms = [np.ones(B)]
    P_T = np.eye(H)
    for k in range(1, T + 1):
        J = rnn_step_jacobian(x[T - k], states[T - k], weight_ih, weight_hh, bias_ih, bias_hh)
        P_T = np.transpose(J, (0, 2, 1)) @ P_T
        norms.append(np.linalg.svd(P_T, compute_uv=False)[:, 0])
    return np.array(norms)
''',
    "clip_by_norm": '''def clip_by_norm(grads, max_norm):
    # torch's arithmetic: min(1, max_norm / (norm + 1e-6)), on one concatenated vector.
    norm = np.linalg.norm(np.concatenate([g.ravel() for g in grads.values()]))
    coef = min(1.0, max_norm / (norm + 1e-6))
    return {k: (g * coef).astype(g.dtype) for k, g in grads.items()}, norm
''',
}


def test_alternative_correct_solutions_get_every_test(tmp_path):
    outcomes = run_mutant(NAME, ALTERNATIVES, tmp_path)
    assert outcomes and not failing(outcomes), f"correct alternative solutions fail: {failing(outcomes)}"


CALLS_REFERENCE = {
    "rnn_cell_forward": '''def rnn_cell_forward(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    from gated_lib.rnn import rnn_cell_forward as reference
    h, _ = reference(x, h_prev, dict(weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh))
    return h
''',
    "rnn_forward": '''def rnn_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None):
    import gated_lib
    (out, h_n), _ = gated_lib.rnn_forward(x, dict(weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih,
                                                  bias_hh=bias_hh), h0)
    return out, h_n
''',
    "rnn_step_jacobian": '''def rnn_step_jacobian(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    from gated_lib.jacobians import rnn_step_jacobian as reference
    return reference(np.tanh(x @ weight_ih.T + bias_ih + h_prev @ weight_hh.T + bias_hh), weight_hh)
''',
    "gradient_norm_over_lag": '''def gradient_norm_over_lag(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None):
    from gated_lib import jacobians, rnn
    _, cache = rnn.rnn_forward(x, dict(weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh), h0)
    return jacobians.gradient_norm_over_lag(cache)
''',
    "clip_by_norm": '''def clip_by_norm(grads, max_norm):
    from gated_lib.clipping import clip_by_norm as reference
    return reference(grads, max_norm)
''',
}


def test_calling_the_references_fails_and_says_so(tmp_path):
    fails = failing(run_mutant(NAME, CALLS_REFERENCE, tmp_path))
    for cell, called in [("test_rnn_cell_forward", "gated_lib.rnn.rnn_cell_forward"),
                         ("test_rnn_forward", "gated_lib.rnn.rnn_forward"),
                         ("test_rnn_step_jacobian", "gated_lib.jacobians.rnn_step_jacobian"),
                         ("test_gradient_norm_over_lag", "gated_lib.rnn.rnn_forward"),
                         ("test_clip_by_norm", "gated_lib.clipping.clip_by_norm")]:
        assert cell in fails, f"{cell}: a function that calls gated_lib's reference gets the points"
        assert "reference implementation" in fails[cell] and called in fails[cell], fails[cell][:600]
