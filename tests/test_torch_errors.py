"""Bad input gives an error that names the argument, what was expected and what came."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from gated_lib.errors import DTypeError, GatedLibError, ShapeError  # noqa: E402
from gated_lib.nn import GRU, LSTM, Cell, ModelConfig, Recurrent, SequenceModel, cell_spec  # noqa: E402


def test_wrong_input_width():
    m = LSTM(input_size=8, hidden_size=4)
    with pytest.raises(ShapeError, match=r"x: expected shape \(T, B, D\) with D = input_size = 8 .*got \(5, 3, 7\)"):
        m(torch.randn(5, 3, 7))


def test_batch_first_or_2d_input_is_refused_with_the_shape():
    m = LSTM(8, 4)
    with pytest.raises(ShapeError, match=r"x: expected shape \(T, B, D\).*got \(3, 8\)"):
        m(torch.randn(3, 8))


def test_wrong_initial_state_shape():
    m = GRU(3, 4, num_layers=2)
    with pytest.raises(ShapeError, match=r"h0: expected shape \(L, B, H\) = \(2, 5, 4\), got \(5, 4\)"):
        m(torch.randn(6, 5, 3), torch.zeros(5, 4))


def test_lstm_needs_both_states():
    m = LSTM(3, 4)
    with pytest.raises(GatedLibError, match=r"hx: the lstm cell has two states; expected a tuple \(h0, c0\).*got Tensor"):
        m(torch.randn(6, 5, 3), torch.zeros(1, 5, 4))


def test_dtype_mismatch_says_how_to_fix_it():
    m = LSTM(3, 4)
    with pytest.raises(DTypeError, match=r"x: expected dtype torch.float32 \(the module's parameters\), got torch.float64"):
        m(torch.randn(6, 5, 3, dtype=torch.float64))


def test_state_dtype_mismatch():
    m = GRU(3, 4)
    with pytest.raises(DTypeError, match=r"h0: expected dtype torch.float32 \(that of x\), got torch.float64"):
        m(torch.randn(6, 5, 3), torch.zeros(1, 5, 4, dtype=torch.float64))


def test_empty_sequence():
    with pytest.raises(ShapeError, match=r"x: expected at least one step"):
        LSTM(3, 4)(torch.randn(0, 2, 3))


def test_unknown_cell_lists_the_choices():
    with pytest.raises(ValueError, match=r"cell: expected one of \[.*'lstm'.*\].*got 'lstn'"):
        cell_spec("lstn")


@pytest.mark.parametrize("kwargs,match", [
    (dict(backend="cudnn"), r"backend: expected one of \('auto', 'eager', 'fused', 'torch'\), got 'cudnn'"),
    (dict(cell="peephole_lstm", backend="torch"), r"backend: 'torch' exists only for .*not 'peephole_lstm'"),
    (dict(cell="mgu", backend="fused"), r"backend: 'fused' exists for .*not 'mgu'"),
    (dict(hidden_size=0), r"hidden_size: expected a positive int, got 0"),
    (dict(num_layers=1.5), r"num_layers: expected a positive int, got 1.5"),
    (dict(dropout=1.0), r"dropout: expected a probability in \[0, 1\), got 1.0"),
    (dict(cell="gru", forget_bias=1.0), r"forget_bias: the cell 'gru' has no forget gate"),
])
def test_bad_configuration(kwargs, match):
    kw = dict(cell="lstm", input_size=3, hidden_size=4)
    kw.update(kwargs)
    with pytest.raises(GatedLibError, match=match):
        Recurrent(**kw)


def test_return_states_needs_eager():
    m = LSTM(3, 4, backend="torch")
    with pytest.raises(GatedLibError, match=r"return_states: needs the eager backend"):
        m(torch.randn(2, 1, 3), return_states=True)


def test_gru_convention_and_lstm_variant_names():
    with pytest.raises(GatedLibError, match=r"convention: expected 'torch' .* or 'cho' .*got 'keras'"):
        GRU(3, 4, convention="keras")
    with pytest.raises(GatedLibError, match=r"variant: expected None, 'nfg', 'peephole', 'cifg' or 'noaf', got 'mgu'"):
        LSTM(3, 4, variant="mgu")


def test_cell_step_errors():
    c = Cell("lstm", 3, 4)
    with pytest.raises(ShapeError, match=r"x: expected shape \(B, D\) with D = input_size = 3, got \(2, 5\)"):
        c(torch.randn(2, 5))
    with pytest.raises(ShapeError, match=r"c: expected shape \(B, H\) = \(2, 4\), got \(2, 3\)"):
        c(torch.randn(2, 3), (torch.zeros(2, 4), torch.zeros(2, 3)))


def test_model_token_and_length_errors():
    m = SequenceModel(ModelConfig(vocab_size=5, hidden_size=4, output_size=2))
    with pytest.raises(GatedLibError, match=r"x: expected token ids in \[0, 5\), got values in \[0, 7\]"):
        m(torch.tensor([[0, 7]]))
    with pytest.raises(ShapeError, match=r"x: expected integer tokens of shape \(T, B\)"):
        m(torch.randn(3, 2, 5))
    with pytest.raises(GatedLibError, match=r"lengths: expected shape \(B,\) = \(2,\) with values in \[1, T=3\]"):
        m(torch.zeros(3, 2, dtype=torch.long), lengths=torch.tensor([1, 4]))
    with pytest.raises(GatedLibError, match=r"expected exactly one of input_size .* or vocab_size"):
        SequenceModel(ModelConfig(input_size=2, vocab_size=5))
