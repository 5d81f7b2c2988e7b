"""Call the reference implementations: gated_lib's LSTM (through an alias) and torch's LSTM."""

from tests.adversarial._nb import (
    CHOICE_TESTS,
    NUMERIC_TESTS,
    set_source,
    with_wrong_answers,
)

DESCRIPTION = "call the reference implementation"
ZERO = NUMERIC_TESTS[:4] + CHOICE_TESTS


def make(release, solution):
    nb = with_wrong_answers(release)
    set_source(nb, "lstm_cell_forward", '''
from gated_lib import lstm as _totally_my_own
def lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    params = dict(weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh)
    (h, c), _ = _totally_my_own.lstm_cell_forward(x, h_prev, c_prev, params)
    return h, c
''')
    set_source(nb, "lstm_forward", '''
import torch
def lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None, c0=None):
    T, B, D = x.shape
    H = weight_hh.shape[1]
    dt = torch.float64 if x.dtype == np.float64 else torch.float32
    m = torch.nn.LSTM(D, H).to(dt)
    with torch.no_grad():
        for name, v in dict(weight_ih_l0=weight_ih, weight_hh_l0=weight_hh, bias_ih_l0=bias_ih, bias_hh_l0=bias_hh).items():
            getattr(m, name).copy_(torch.from_numpy(np.asarray(v)))
        h0 = torch.zeros(1, B, H, dtype=dt) if h0 is None else torch.from_numpy(h0)[None]
        c0 = torch.zeros(1, B, H, dtype=dt) if c0 is None else torch.from_numpy(c0)[None]
        out, (h, c) = m(torch.from_numpy(x), (h0, c0))
    return out.numpy(), (h[0].numpy(), c[0].numpy())
''')
    return nb


def verify(run):
    text = run.outputs()
    assert "a reference implementation" in text and "torch.nn.LSTM" in text
