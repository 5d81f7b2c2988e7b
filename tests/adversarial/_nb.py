"""Notebook surgery for the adversarial submissions."""

from __future__ import annotations

import copy
import re

NUMERIC_TESTS = ("test_lstm_cell_forward", "test_lstm_cell_forward_hidden", "test_lstm_forward",
                 "test_lstm_forward_hidden", "test_keep_memory", "test_rnn_regime")
CHOICE_TESTS = ("test_answer_keep", "test_answer_rnn")
ALL_TESTS = NUMERIC_TESTS + CHOICE_TESTS
HIDDEN_TESTS = ("test_lstm_cell_forward_hidden", "test_lstm_forward_hidden")


def grade_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def source(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def find(nb: dict, gid: str) -> dict:
    for cell in nb["cells"]:
        if grade_id(cell) == gid:
            return cell
    raise KeyError(gid)


def copy_nb(nb: dict) -> dict:
    return copy.deepcopy(nb)


def set_source(nb: dict, gid: str, text: str) -> None:
    find(nb, gid)["source"] = text


def solution_code(solution: dict, gid: str) -> str:
    """The source notebook's cell with the solution markers removed (what a correct learner writes)."""
    text = source(find(solution, gid))
    return re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*(\n|$)", "", text, flags=re.MULTILINE)


def add_code_after(nb: dict, gid: str, text: str) -> None:
    """Insert an ungraded code cell (a learner's scratch cell) after the cell `gid`."""
    index = next(i for i, c in enumerate(nb["cells"]) if grade_id(c) == gid)
    nb["cells"].insert(index + 1, {"cell_type": "code", "execution_count": None, "metadata": {},
                                   "outputs": [], "source": text})


def zeros_impl() -> dict[str, str]:
    """Implementations that return arrays of the right shape and dtype, and wrong values."""
    return {
        "lstm_cell_forward": (
            "def lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):\n"
            "    return np.zeros_like(h_prev), np.zeros_like(c_prev)\n"),
        "lstm_forward": (
            "def lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None, c0=None):\n"
            "    T, B, _ = x.shape\n"
            "    H = weight_hh.shape[1]\n"
            "    z = np.zeros((B, H), dtype=x.dtype)\n"
            "    return np.zeros((T, B, H), dtype=x.dtype), (z, z.copy())\n"),
        "keep_memory_params": (
            "def keep_memory_params(D, H):\n"
            "    return np.zeros((4 * H, D)), np.zeros((4 * H, H)), np.zeros(4 * H), np.zeros(4 * H)\n"),
        "rnn_regime_params": (
            "def rnn_regime_params(W, U, b):\n"
            "    H, D = W.shape\n"
            "    return np.zeros((4 * H, D)), np.zeros((4 * H, H)), np.zeros(4 * H), np.zeros(4 * H)\n"),
        "answers_regimes": 'ANSWER_KEEP = {"a"}\nANSWER_RNN = {"e"}\n',
    }


def with_wrong_answers(release: dict) -> dict:
    nb = copy_nb(release)
    for gid, text in zeros_impl().items():
        set_source(nb, gid, text)
    return nb


PART_A = ("lstm_cell_forward",)
PART_A_TESTS = ("test_lstm_cell_forward", "test_lstm_cell_forward_hidden")
AFTER_A_TESTS = tuple(t for t in ALL_TESTS if t not in PART_A_TESTS)


def part_a_correct(release: dict, solution: dict) -> dict:
    """A learner who solved Part A (6 points) and left the rest blank."""
    nb = copy_nb(release)
    set_source(nb, "lstm_cell_forward", solution_code(solution, "lstm_cell_forward"))
    return nb
