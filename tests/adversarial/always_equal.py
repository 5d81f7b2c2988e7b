"""Return objects that claim equality with anything: an __eq__ that is always True, an ndarray
subclass whose arithmetic and comparisons always agree, a set that equals every set."""

from tests.adversarial._nb import ALL_TESTS, set_source, with_wrong_answers

DESCRIPTION = "objects whose __eq__ is always True"
ZERO = ALL_TESTS

CHEATS = '''
class AlwaysEqual:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __abs__(self): return 0
    def __sub__(self, other): return AlwaysEqual()
    __rsub__ = __sub__
    def __lt__(self, other): return True
    __le__ = __gt__ = __ge__ = __lt__
    def __bool__(self): return True
    shape = property(lambda self: self._shape)
    def __init__(self, shape=(1,)): self._shape = shape

class Agreeable(np.ndarray):
    def __eq__(self, other): return np.ones(np.shape(self), dtype=bool)
    def __ne__(self, other): return np.zeros(np.shape(self), dtype=bool)
    def __sub__(self, other): return np.zeros(np.shape(self))
    __rsub__ = __sub__
    def __abs__(self): return np.zeros(np.shape(self))

class EqualSet(set):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __hash__ = None
'''


def make(release, solution):
    nb = with_wrong_answers(release)
    set_source(nb, "lstm_cell_forward", CHEATS + '''
def lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    return AlwaysEqual(h_prev.shape), AlwaysEqual(c_prev.shape)
''')
    set_source(nb, "lstm_forward", '''
def lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None, c0=None):
    T, B, _ = x.shape
    H = weight_hh.shape[1]
    z = np.zeros((B, H), dtype=x.dtype).view(Agreeable)
    return np.zeros((T, B, H), dtype=x.dtype).view(Agreeable), (z, z.copy())
''')
    set_source(nb, "answers_regimes", 'ANSWER_KEEP = EqualSet({"a"})\nANSWER_RNN = EqualSet({"e"})\n')
    return nb
