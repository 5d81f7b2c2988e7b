"""Monkeypatch numpy's comparisons so that wrong arrays compare equal."""

from tests.adversarial._nb import ALL_TESTS, add_code_after, with_wrong_answers

DESCRIPTION = "monkeypatch np.allclose, np.isclose, np.abs, np.testing"
ZERO = ALL_TESTS


def make(release, solution):
    nb = with_wrong_answers(release)
    add_code_after(nb, "setup", '''
import numpy.testing
_zeros_like = np.zeros_like
np.allclose = lambda *a, **k: True
np.isclose = lambda a, b, *x, **k: np.ones(np.broadcast(a, b).shape, dtype=bool)
np.array_equal = lambda *a, **k: True
np.abs = np.absolute = lambda x, *a, **k: _zeros_like(x)
np.testing.assert_allclose = lambda *a, **k: None
np.testing.assert_array_equal = lambda *a, **k: None
''')
    return nb


def verify(run):
    assert "tampering with the grading environment detected" in run.outputs()
    assert "numpy.allclose" in run.outputs()
