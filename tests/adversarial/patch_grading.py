"""Replace the checkers: the grading module's functions, the helpers they share, and the notebook's
names for them."""

from tests.adversarial._nb import ALL_TESTS, add_code_after, with_wrong_answers

DESCRIPTION = "monkeypatch gated_lib.grading and rebind the test cells' names"
ZERO = ALL_TESTS


def make(release, solution):
    nb = with_wrong_answers(release)
    add_code_after(nb, "setup", '''
import gated_lib.grading as G
import gated_lib.grading.core as core
import gated_lib.grading.lstm as gl
_ok = lambda *a, **k: None
for _name in dir(gl):
    if _name.startswith("check_"):
        setattr(gl, _name, _ok)
core.compare = core.assert_close = core.check_choice = G.check_choice = _ok
''')
    add_code_after(nb, "answers_regimes", '''
import types
grading = types.SimpleNamespace(check_lstm_cell_forward=_ok, check_lstm_forward=_ok,
                                check_keep_memory=_ok, check_rnn_regime=_ok)
check_choice = _ok
''')
    return nb


def verify(run):
    text = run.outputs()
    assert "tampering with the grading environment detected" in text
    assert "gated_lib.grading.lstm.check_lstm_cell_forward" in text
