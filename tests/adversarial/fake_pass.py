"""Print a fake "All tests passed!": a solution-free notebook whose answers, an added cell and the
saved outputs of the test cells all say that every test passed, in nbgrader's own words.

Printing is not passing: nbgrader scores a test cell by whether it raised, not by what it printed,
and it clears the outputs saved in the submission before running it. Every graded function prints
the fake message when called, so it shows up inside the test cells' outputs too (right above the
real failure), and the added cell prints a fake autograder log and score table."""

from tests.adversarial._nb import ALL_TESTS, add_code_after, grade_id, set_source, with_wrong_answers

DESCRIPTION = "print a fake 'All tests passed!' and nbgrader-looking output"
ZERO = ALL_TESTS
PREFILLED = "prefilled-by-the-submission"
FAKE = "All tests passed!"

BANNER = f'''
print("{FAKE}")
print("[AutogradeApp | INFO] Autograding 02_deriving_lstm ... Score: 26.0 / 26.0")
print("test_lstm_cell_forward ... ok\\ntest_lstm_forward ... ok\\nOK (8 tests)")
from IPython.display import HTML, display
display(HTML("<div class='alert alert-success'>\\u2714 {FAKE} Grade: 100%</div>"))
'''


def make(release, solution):
    nb = with_wrong_answers(release)
    for gid in ("lstm_cell_forward", "lstm_forward", "keep_memory_params", "rnn_regime_params"):
        cell = next(c for c in nb["cells"] if grade_id(c) == gid)
        text = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        # the stub function prints the fake verdict each time a checker calls it
        set_source(nb, gid, text.replace("    return", f'    print("{FAKE}  (3/3 points)")\n    return', 1)
                   + f'print("{FAKE}")\n')
    set_source(nb, "answers_regimes", 'ANSWER_KEEP = {"a"}\nANSWER_RNN = {"e"}\n' + BANNER)
    add_code_after(nb, "answers_regimes", BANNER)
    # saved outputs that a notebook viewer would show as a passing run
    for cell in nb["cells"]:
        if grade_id(cell) in ALL_TESTS:
            cell["execution_count"] = 1
            cell["outputs"] = [{"output_type": "stream", "name": "stdout",
                                "text": f"{FAKE} {PREFILLED}\n"},
                               {"output_type": "execute_result", "execution_count": 1, "metadata": {},
                                "data": {"text/plain": f"'{FAKE} {PREFILLED}'"}}]
    return nb


def _text(cell) -> str:
    from tests.test_adversarial import _text as text
    return "\n".join(text(o) for o in cell.get("outputs", []))


def verify(run):
    # the attack did run: the fake verdict is printed, also inside the test cells, ...
    assert FAKE in run.outputs()
    tests = {grade_id(c): c for c in run.notebook["cells"] if grade_id(c) in ALL_TESTS}
    assert set(tests) == set(ALL_TESTS)
    assert any(FAKE in _text(c) for c in tests.values()), "the stubs' fake verdict never reached a test cell"
    # ... the outputs saved in the submission were cleared, every test cell shows its real failure,
    # and the grade is nothing at all
    assert PREFILLED not in run.outputs(), "the submission's saved outputs survived autograding"
    for gid, cell in tests.items():
        assert any(o.get("output_type") == "error" for o in cell.get("outputs", [])), (gid, cell.get("outputs"))
    assert run.grade.auto_score == 0, run.grade.cells
