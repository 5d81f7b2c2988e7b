"""Exercise 03's tests catch real bugs, accept other correct solutions and refuse the reference.

Each mutant is a solution cell with one deliberate bug (a textual edit of the solution, checked to
apply, or a rewritten function), run through the notebook's visible and hidden tests
(tests/mutation.py). The exercise must fail it, and the failure message must name the bug.

Notebook executions are the cost here (a kernel start each), so mutants that live in different cells
share a run: a bug in the cell backward is paired with a bug in a self-contained BPTT (which does not
call the learner's cell backward) or in the Jacobians, and each test cell's message must still name
its own bug.
"""

from __future__ import annotations

import pytest

from tests.mutation import cell_source, edit, failing, run_mutant

NAME = "03_lstm_gradient_flow"
CELL = cell_source(NAME, "lstm_cell_backward")
SEQ = cell_source(NAME, "lstm_backward")
STATE_JAC = cell_source(NAME, "lstm_state_jacobian")
LAG = cell_source(NAME, "gradient_norm_over_lag")


# A BPTT that does the cell's algebra inline (so it can carry its own bug next to a buggy cell backward).
INLINE_BPTT = '''def lstm_backward(dout, caches, dh_n=None, dc_n=None):
    T, B, H = dout.shape
    dh = np.zeros((B, H), dout.dtype) if dh_n is None else dh_n
    dc = np.zeros((B, H), dout.dtype) if dc_n is None else dc_n
    grads = {k: np.zeros_like(caches[0][k]) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    dx = np.zeros((T,) + caches[0]["x"].shape, dout.dtype)
    for t in range(T - 1, -1, -1):
        cache = caches[t]
        dh = dh + dout[t]
        i, f, g, o, tc = (cache[k] for k in ("i", "f", "g", "o", "tanh_c"))
        dct = dc + dh * o * (1 - tc * tc)
        da = np.concatenate([dct * g * i * (1 - i), dct * cache["c_prev"] * f * (1 - f),
                             dct * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
        grads["weight_ih"] += da.T @ cache["x"]
        grads["weight_hh"] += da.T @ cache["h_prev"]
        grads["bias_ih"] += da.sum(0)
        grads["bias_hh"] += da.sum(0)
        dx[t] = da @ cache["weight_ih"]
        dh, dc = da @ cache["weight_hh"], dct * f
    grads.update(x=dx, h0=dh, c0=dc)
    return grads
'''

NOT_ACCUMULATED = edit(INLINE_BPTT, *[(f'grads["{k}"] +=', f'grads["{k}"] =')
                                      for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")])
WRONG_STEP_CACHE = edit(INLINE_BPTT, ("cache = caches[t]", "cache = caches[t - 1]"))
DOUT_AFTER_STEP = edit(INLINE_BPTT, ("        dh = dh + dout[t]\n", ""),
                       ('dh, dc = da @ cache["weight_hh"], dct * f', 'dh, dc = da @ cache["weight_hh"] + dout[t], dct * f'))

# Only the c -> c block of the state Jacobian (the direct path where the full Jacobian is asked).
ONLY_CC_BLOCK = edit(STATE_JAC, (
    "    return np.concatenate([np.concatenate([dh_dh, dh_dc], axis=2),\n"
    "                           np.concatenate([dc_dh, dc_dc], axis=2)], axis=1)",
    "    zero = np.zeros_like(dc_dc)\n"
    "    return np.concatenate([np.concatenate([zero, zero], axis=2),\n"
    "                           np.concatenate([zero, dc_dc], axis=2)], axis=1)"))
# The product of the c -> c blocks, diag(f), where the c -> c block of the full product is asked.
DIRECT_FOR_FULL = edit(LAG, ('step_jacobian = lstm_state_jacobian if path == "full" else lstm_direct_jacobian',
                             "step_jacobian = lstm_direct_jacobian"),
                       ('n = 2 * H if path == "full" else H', "n = H"),
                       ('block = prod[:, H:, H:] if path == "full" else prod', "block = prod"))

# name: ({grade_id: buggy source}, {test cell that must fail: phrase its message must contain})
MUTANTS = {
    "dc_prev without f; state Jacobian = c->c block; lag norms of the direct path": (
        {"lstm_cell_backward": edit(CELL, ('"c_prev": dc_total * f,', '"c_prev": dc_total,')),
         "lstm_state_jacobian": ONLY_CC_BLOCK,
         "gradient_norm_over_lag": DIRECT_FOR_FULL},
        {"test_lstm_cell_backward": "dc_prev is missing the forget gate",
         "test_lstm_cell_backward_hidden": "dc_prev is missing the forget gate",
         "test_state_jacobian": "only the c -> c block diag(f) is filled",
         "test_state_jacobian_hidden": "only the c -> c block",
         "test_gradient_norm_over_lag": "your norms are those of the direct path"}),
    "missing tanh'(c); dW not accumulated over time": (
        {"lstm_cell_backward": edit(CELL, ("dc_total = dc + dh * o * (1.0 - tanh_c ** 2)", "dc_total = dc + dh * o")),
         "lstm_backward": NOT_ACCUMULATED},
        {"test_lstm_cell_backward": "the derivative of tanh is missing",
         "test_lstm_backward": "not accumulated across time steps",
         "test_lstm_backward_hidden": "not accumulated across time steps"}),
    "df and di swapped; the cache of the wrong step": (
        {"lstm_cell_backward": edit(CELL, ("da = np.concatenate([di * i * (1.0 - i), df * f * (1.0 - f),",
                                           "da = np.concatenate([df * f * (1.0 - f), di * i * (1.0 - i),")),
         "lstm_backward": WRONG_STEP_CACHE},
        {"test_lstm_cell_backward": "df and di are exchanged",
         "test_lstm_backward": "uses the cache of step t-1"}),
    "bias_hh without gradient; dout[t] added one step late": (
        {"lstm_cell_backward": edit(CELL, ('"bias_hh": db.copy(),', '"bias_hh": np.zeros_like(db),')),
         "lstm_backward": DOUT_AFTER_STEP},
        {"test_lstm_cell_backward": "bias_hh gets no gradient",
         "test_lstm_backward": "off by one step"}),
    "dh_prev with W_hh's blocks transposed": (
        {"lstm_cell_backward": edit(CELL, ('"h_prev": da @ cache["weight_hh"],',
                                           '"h_prev": sum(blk @ W.T for blk, W in zip(np.split(da, 4, axis=1), '
                                           'np.split(cache["weight_hh"], 4))),'))},
        {"test_lstm_cell_backward": "is used transposed in dh_prev"}),
    "dW_hh from h_t instead of h_{t-1}": (
        {"lstm_cell_backward": edit(CELL, ('"weight_hh": da.T @ cache["h_prev"],', '"weight_hh": da.T @ cache["h"],'))},
        {"test_lstm_cell_backward": "dW_hh is computed from h_t"}),
}


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_mutant_fails_with_a_diagnosis(mutant, tmp_path):
    replacements, expected = MUTANTS[mutant]
    fails = failing(run_mutant(NAME, replacements, tmp_path))
    for test_id, phrase in expected.items():
        assert test_id in fails, f"{mutant}: {test_id} passes a buggy solution"
        assert phrase in fails[test_id], (
            f"{mutant}: the message of {test_id} does not name the bug ({phrase!r}):\n{fails[test_id][:1500]}")
    if "lstm_backward" in replacements and "lstm_cell_backward" in replacements:
        # The self-contained BPTT does not call the buggy cell: its message must be about its own bug.
        assert "The bug is in the cell" not in fails["test_lstm_backward"]
    if "lstm_backward" not in replacements:
        assert "test_lstm_backward" in fails, f"{mutant}: the BPTT built on a buggy cell backward passes"


# ------------------------------------------------------------------------------------------------
# Other correct solutions get every point
# ------------------------------------------------------------------------------------------------

PER_GATE_CELL = '''def lstm_cell_backward(dh, dc, cache):
    # One gate at a time, float64 inside, cast back to the cache's dtype.
    dt = cache["x"].dtype
    c = {k: np.asarray(v, dtype=np.float64) for k, v in cache.items()}
    dh, dc = np.asarray(dh, np.float64), np.asarray(dc, np.float64)
    H = c["f"].shape[1]
    dct = dc + dh * c["o"] * (1 - np.tanh(c["c"]) ** 2)
    local = {"i": dct * c["g"], "f": dct * c["c_prev"], "g": dct * c["i"], "o": dh * c["tanh_c"]}
    deriv = {"i": c["i"] * (1 - c["i"]), "f": c["f"] * (1 - c["f"]), "g": 1 - c["g"] ** 2, "o": c["o"] * (1 - c["o"])}
    out = {k: np.zeros_like(c[k]) for k in ("x", "h_prev", "weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    for k, gate in enumerate("ifgo"):
        rows = slice(k * H, (k + 1) * H)
        d = local[gate] * deriv[gate]
        out["x"] += np.einsum("bh,hd->bd", d, c["weight_ih"][rows])
        out["h_prev"] += np.einsum("bh,hk->bk", d, c["weight_hh"][rows])
        out["weight_ih"][rows] = np.einsum("bh,bd->hd", d, c["x"])
        out["weight_hh"][rows] = np.einsum("bh,bk->hk", d, c["h_prev"])
        out["bias_ih"][rows] = out["bias_hh"][rows] = d.sum(axis=0)
    out["c_prev"] = dct * c["f"]
    return {k: v.astype(dt) for k, v in out.items()}
'''

STACKED_DIRECT = '''def lstm_direct_jacobian(cache):
    return np.stack([np.diag(row) for row in cache["f"]])
'''

ASSIGNED_STATE_JAC = '''def lstm_state_jacobian(cache):
    i, f, g, o, tc, cp = (cache[k] for k in ("i", "f", "g", "o", "tanh_c", "c_prev"))
    B, H = f.shape
    W = cache["weight_hh"]
    J = np.zeros((B, 2 * H, 2 * H), dtype=f.dtype)
    dc_dh = (np.einsum("bh,hk->bhk", cp * f * (1 - f), W[H:2 * H]) + np.einsum("bh,hk->bhk", g * i * (1 - i), W[:H])
             + np.einsum("bh,hk->bhk", i * (1 - g * g), W[2 * H:3 * H]))
    k = o * (1 - tc * tc)
    J[:, H:, :H] = dc_dh
    J[:, :H, :H] = np.einsum("bh,hk->bhk", tc * o * (1 - o), W[3 * H:]) + k[:, :, None] * dc_dh
    idx = np.arange(H)
    J[:, idx, H + idx] = k * f
    J[:, H + idx, H + idx] = f
    return J
'''

PER_EXAMPLE_LAG = '''def gradient_norm_over_lag(caches, path="full"):
    # Example by example: the singular values of the block, the direct path as a running product of f.
    T = len(caches)
    B, H = caches[0]["f"].shape
    norms = np.ones((T + 1, B), dtype=caches[0]["f"].dtype)
    for b in range(B):
        running, prod = np.ones(H), np.eye(2 * H)
        for k in range(1, T + 1):
            if path == "direct":
                running = running * caches[T - k]["f"][b]
                norms[k, b] = np.abs(running).max()
            else:
                prod = prod @ lstm_state_jacobian(caches[T - k])[b]
                norms[k, b] = np.linalg.svd(prod[H:, H:], compute_uv=False)[0]
    return norms
'''


def test_alternative_correct_solutions_get_every_test(tmp_path):
    outcomes = run_mutant(NAME, {"lstm_cell_backward": PER_GATE_CELL, "lstm_backward": INLINE_BPTT,
                                 "lstm_direct_jacobian": STACKED_DIRECT, "lstm_state_jacobian": ASSIGNED_STATE_JAC,
                                 "gradient_norm_over_lag": PER_EXAMPLE_LAG}, tmp_path)
    assert outcomes and not failing(outcomes), f"correct alternative solutions fail: {failing(outcomes)}"


# ------------------------------------------------------------------------------------------------
# Calling gated_lib's reference is refused, with a message that says so
# ------------------------------------------------------------------------------------------------

CALLS_REFERENCE = {
    "lstm_cell_backward": '''def lstm_cell_backward(dh, dc, cache):
    from gated_lib.lstm import lstm_cell_forward, lstm_cell_backward as reference
    params = {k: cache[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    _, ref_cache = lstm_cell_forward(cache["x"], cache["h_prev"], cache["c_prev"], params)
    return reference((dh, dc), ref_cache)
''',
    "lstm_backward": '''def lstm_backward(dout, caches, dh_n=None, dc_n=None):
    from gated_lib.lstm import lstm_forward, lstm_backward as reference
    params = {k: caches[0][k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    x = np.stack([c["x"] for c in caches])
    _, seq = lstm_forward(x, params, caches[0]["h_prev"], caches[0]["c_prev"])
    return reference(dout, seq, dh_n, dc_n)
''',
    "lstm_direct_jacobian": '''def lstm_direct_jacobian(cache):
    from gated_lib.jacobians import lstm_direct_jacobian as reference
    return reference(cache["f"])
''',
    "lstm_state_jacobian": '''def lstm_state_jacobian(cache):
    from gated_lib.jacobians import assemble_state_jacobian, lstm_step_jacobian
    return assemble_state_jacobian(lstm_step_jacobian(cache))
''',
}


def test_calling_the_reference_fails(tmp_path):
    fails = failing(run_mutant(NAME, CALLS_REFERENCE, tmp_path))
    for test_id in ("test_lstm_cell_backward", "test_lstm_backward", "test_direct_jacobian", "test_state_jacobian"):
        assert test_id in fails, f"{test_id}: a function that calls gated_lib's reference gets the points"
        assert "reference implementation" in fails[test_id] and "gated_lib." in fails[test_id], fails[test_id][:400]
