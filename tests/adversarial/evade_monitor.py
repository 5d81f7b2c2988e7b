"""Call the reference where the monitor that forbids it cannot see: after sys.setprofile(None), and in a
thread."""

from tests.adversarial._nb import (
    CHOICE_TESTS,
    NUMERIC_TESTS,
    set_source,
    with_wrong_answers,
)

DESCRIPTION = "switch off the reference monitor, or call the reference in a thread"
ZERO = NUMERIC_TESTS[:4] + CHOICE_TESTS


def make(release, solution):
    nb = with_wrong_answers(release)
    set_source(nb, "lstm_cell_forward", '''
import sys
from gated_lib.lstm import lstm_cell_forward as _ref
def lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    hook = sys.getprofile()
    sys.setprofile(None)
    try:
        (h, c), _ = _ref(x, h_prev, c_prev, dict(weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh))
    finally:
        sys.setprofile(hook)
    return h, c
''')
    set_source(nb, "lstm_forward", '''
import threading
from gated_lib.lstm import lstm_forward as _ref_seq
def lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None, c0=None):
    box = []
    p = dict(weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh)
    t = threading.Thread(target=lambda: box.append(_ref_seq(x, p, h0, c0)))
    t.start(); t.join()
    out, caches = box[0]
    return out, (caches[-1]["h"] if isinstance(caches, list) else out[-1], caches[-1]["c"] if isinstance(caches, list) else out[-1])
''')
    return nb


def verify(run):
    text = run.outputs()
    assert "sys.setprofile" in text and "thread" in text
