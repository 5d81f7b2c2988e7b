"""Hard-code the answers of the visible tests: a lookup table from the inputs the visible tests use to
the outputs they expect (recorded offline with a correct implementation), zeros for anything else."""

import json

import numpy as np

from gated_lib.grading import lstm as grading
from gated_lib.lstm import sigmoid
from tests.adversarial._nb import (
    CHOICE_TESTS,
    HIDDEN_TESTS,
    set_source,
    solution_code,
    with_wrong_answers,
)

DESCRIPTION = "hard-code the visible tests' answers"
ZERO = HIDDEN_TESTS + ("test_keep_memory", "test_rnn_regime") + CHOICE_TESTS

KEY = '''
import hashlib as _hl
def _key(*args):
    h = _hl.sha256()
    for a in args:
        if a is None:
            h.update(b"None")
        else:
            a = np.ascontiguousarray(a)
            h.update(str((a.dtype.str, a.shape)).encode()); h.update(a.tobytes())
    return h.hexdigest()
'''


def _key(*args):
    ns = {"np": np}
    exec(KEY, ns)
    return ns["_key"](*args)


def _record(solution):
    ns = {"np": np, "sigmoid": sigmoid}
    exec(solution_code(solution, "lstm_cell_forward"), ns)
    exec(solution_code(solution, "lstm_forward"), ns)
    cell_table, seq_table = {}, {}
    good_cell, good_seq = ns["lstm_cell_forward"], ns["lstm_forward"]

    def cell(*args):
        h, c = good_cell(*args)
        cell_table[_key(*args)] = [h.tolist(), c.tolist(), h.dtype.str]
        return h, c

    def seq(x, wi, wh, bi, bh, h0=None, c0=None):
        out, (h, c) = good_seq(x, wi, wh, bi, bh, h0, c0)
        seq_table[_key(x, wi, wh, bi, bh, h0, c0)] = [out.tolist(), h.tolist(), c.tolist(), out.dtype.str]
        return out, (h, c)

    ns["lstm_cell_forward"] = cell            # lstm_forward's steps go through the recorder too
    grading.check_lstm_cell_forward(cell)
    grading.check_lstm_forward(seq)
    return cell_table, seq_table


def make(release, solution):
    cell_table, seq_table = _record(solution)
    nb = with_wrong_answers(release)
    set_source(nb, "lstm_cell_forward", KEY + f"""
_CELL = {json.dumps(cell_table)}
def lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    hit = _CELL.get(_key(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh))
    if hit is None:
        return np.zeros_like(h_prev), np.zeros_like(c_prev)
    return np.array(hit[0], dtype=hit[2]), np.array(hit[1], dtype=hit[2])
""")
    set_source(nb, "lstm_forward", f"""
_SEQ = {json.dumps(seq_table)}
def lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None, c0=None):
    hit = _SEQ.get(_key(x, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0))
    T, B, _ = x.shape
    H = weight_hh.shape[1]
    if hit is None:
        z = np.zeros((B, H), dtype=x.dtype)
        return np.zeros((T, B, H), dtype=x.dtype), (z, z.copy())
    d = hit[3]
    return np.array(hit[0], dtype=d), (np.array(hit[1], dtype=d), np.array(hit[2], dtype=d))
""")
    return nb


def verify(run):
    # The table does pass the visible tests (they are public: that is what a visible test is);
    # the hidden tests, on other inputs, give it nothing.
    assert run.grade.cells["test_lstm_cell_forward"][0] == 3
    assert run.grade.cells["test_lstm_forward"][0] == 3
