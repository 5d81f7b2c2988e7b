"""Tamper below the surface: a checker's code object, the tolerance table, builtins, sys.stderr."""

from tests.adversarial._nb import ALL_TESTS, add_code_after, with_wrong_answers

DESCRIPTION = "replace __code__, the tolerance table, builtins and sys.stderr"
ZERO = ALL_TESTS


def make(release, solution):
    nb = with_wrong_answers(release)
    add_code_after(nb, "setup", '''
import builtins, io, sys
import gated_lib.grading.core as core
core._TOLERANCES[np.dtype(np.float64)] = (1e300, 1e300)
core._TOLERANCES[np.dtype(np.float32)] = (1e30, 1e30)
core.compare.__code__ = (lambda *a, **k: None).__code__
core.matches.__code__ = (lambda *a, **k: True).__code__
core.GradingFailure.__init__ = lambda self, *a: None
builtins.any = lambda *a, **k: False
builtins.all = lambda *a, **k: True
sys.stderr = io.StringIO()          # hide the guard's message and any failure printed there
''')
    return nb


def verify(run):
    text = run.outputs()
    assert "tampering with the grading environment detected" in text
    assert "_TOLERANCES" in text and "builtins.any" in text
