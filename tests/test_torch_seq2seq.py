"""gated_lib.nn.seq2seq: the taggers and encoder-decoders of chapter 9.

* the torch attention equals gated_lib.attention (numpy) and the Seq2Seq model's attention weights are
  Luong's general score + softmax recomputed by gated_lib.attention from the model's own states;
* the decoder starts from tanh(W_b [forward last; backward first]) of the bidirectional encoder;
* teacher forcing is causal (logits at t never read tgt[t:]) and greedy generation is the teacher-forced
  model fed its own outputs;
* a forward Tagger's prefix-only loss equals its teacher-forced loss, a bidirectional one's output at t
  reads x_{t+1} (the cheat of chapter 9);
* a short run learns to reverse short digit sequences only with attention in a fixed small budget;
* bad input raises GatedLibError naming the argument.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gated_lib import attention as att  # noqa: E402
from gated_lib.errors import GatedLibError, ShapeError  # noqa: E402
from gated_lib.nn.seq2seq import (Seq2Seq, Tagger, attention, prefix_only_loss, reversal_accuracy,  # noqa: E402
                                  reversal_batch, train_reversal)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tokens(T, B, seed, V=10):
    return torch.as_tensor(np.random.default_rng(seed).integers(0, V, size=(T, B)))


def model64(use_attention=True, seed=0, **kw):
    torch.manual_seed(seed)
    return Seq2Seq(hidden_size=6, embedding_dim=4, use_attention=use_attention, **kw).double().eval()


# ----------------------------------------------------------------------------------------------------
# Attention: the torch twin and the model's weights against gated_lib.attention
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("Tq, Tk, B, d, dv", [(5, 7, 2, 4, 3), (1, 1, 1, 1, 1), (6, 3, 3, 8, 2)])
def test_torch_attention_equals_numpy_reference(Tq, Tk, B, d, dv):
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((Tq, B, d)), rng.standard_normal((Tk, B, d)), rng.standard_normal((Tk, B, dv))
    out, w = attention(*(torch.from_numpy(a) for a in (q, k, v)))
    ref_out, ref_w = att.scaled_dot_product_attention(q, k, v)
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=0, atol=1e-13)
    np.testing.assert_allclose(w.numpy(), ref_w, rtol=0, atol=1e-13)


@pytest.mark.parametrize("bidirectional_encoder", [True, False])
def test_model_weights_are_general_score_softmax_of_its_states(bidirectional_encoder):
    model = model64(bidirectional_encoder=bidirectional_encoder)
    src, tgt = tokens(7, 3, 1), tokens(5, 3, 2)
    with torch.no_grad():
        _, weights = model(src, tgt, return_weights=True)
        enc, dec = model.states(src, tgt)
    enc, dec = enc.numpy(), dec.numpy()
    K = enc.shape[-1]
    assert K == 6 * (2 if bidirectional_encoder else 1)
    W = model.query.weight.detach().numpy().T / np.sqrt(K)
    _, ref = att.attend(att.general_scores(dec, enc, W), enc)
    assert weights.shape == (3, 5, 7)
    np.testing.assert_allclose(weights.numpy(), ref, rtol=0, atol=1e-13)


def test_decoder_starts_from_the_bridged_final_states_of_both_directions():
    model = model64()
    src = tokens(6, 2, 3)
    with torch.no_grad():
        enc, s0 = model.encode(src)
        H = 6
        final = torch.cat([enc[-1, :, :H], enc[0, :, H:]], dim=-1)     # forward at S, backward at 1
        expected = torch.tanh(final @ model.bridge.weight.T + model.bridge.bias)
    np.testing.assert_allclose(s0[0].numpy(), expected.numpy(), rtol=0, atol=1e-14)


def test_without_attention_the_source_reaches_the_decoder_only_through_s0():
    model = model64(use_attention=False)
    src, tgt = tokens(8, 2, 4), tokens(5, 2, 5)
    with torch.no_grad():
        logits = model(src, tgt)
        enc, s0 = model.encode(src)
        bos = torch.full_like(tgt[:1], model.bos)
        dec, _ = model.decoder(model.tgt_embedding(torch.cat([bos, tgt[:-1]])), s0)
        again = model.out(torch.tanh(model.combine(dec)))
    np.testing.assert_allclose(logits.numpy(), again.numpy(), rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------------------------------
# Teacher forcing and generation
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("use_attention", [True, False])
def test_teacher_forcing_is_causal(use_attention):
    model = model64(use_attention)
    src, tgt = tokens(6, 2, 6), tokens(6, 2, 7)
    with torch.no_grad():
        base = model(src, tgt)
        for t in range(6):
            changed = tgt.clone()
            changed[t] = (changed[t] + 1) % 10
            logits = model(src, changed)
            assert torch.equal(logits[:t + 1], base[:t + 1]), f"logits at steps <= {t} read tgt[{t}]"
            if t < 5:
                assert not torch.allclose(logits[t + 1], base[t + 1]), f"step {t + 1} ignores tgt[{t}]"


@pytest.mark.parametrize("use_attention", [True, False])
def test_greedy_generation_is_teacher_forcing_on_its_own_outputs(use_attention):
    model = model64(use_attention, seed=1)
    src = tokens(7, 4, 8)
    out, weights = model.generate(src)
    assert out.shape == (7, 4) and out.dtype == torch.int64
    with torch.no_grad():
        logits, tf_weights = model(src, out, return_weights=True)
    assert torch.equal(logits.argmax(-1), out)
    if use_attention:
        np.testing.assert_allclose(weights.numpy(), tf_weights.numpy(), rtol=0, atol=1e-13)
    else:
        assert weights is None and tf_weights is None
    longer, _ = model.generate(src, length=9)
    assert longer.shape == (9, 4) and torch.equal(longer[:7], out)


# ----------------------------------------------------------------------------------------------------
# The reversal task
# ----------------------------------------------------------------------------------------------------

def test_reversal_batch():
    src, tgt = reversal_batch(5, 4, rng=3)
    assert src.shape == tgt.shape == (4, 5) and src.dtype == np.int64
    np.testing.assert_array_equal(tgt, src[::-1])
    assert src.min() >= 0 and src.max() <= 9
    np.testing.assert_array_equal(reversal_batch(5, 4, rng=3)[0], src)


def test_attention_learns_to_reverse_where_the_bottleneck_does_not_in_the_same_budget():
    # 350 steps on lengths 1..8: enough for attention to reverse most sequences of length 8, not for
    # the same model without attention (seed 0: about 0.9 against 0.05; ~10 s for both runs on 2 cores).
    acc = {}
    for use_attention in (True, False):
        torch.manual_seed(0)
        model = Seq2Seq(hidden_size=32, embedding_dim=16, use_attention=use_attention)
        history = train_reversal(model, steps=350, lengths=(1, 8), batch_size=64, lr=1e-2, seed=0)
        assert len(history) == 350 and history[-1]["loss"] < history[0]["loss"]
        acc[use_attention] = reversal_accuracy(model, 8, n=200)
    assert acc[True]["sequence"] > 0.7, acc
    assert acc[False]["sequence"] < acc[True]["sequence"] - 0.4, acc
    assert 0.0 <= acc[False]["token"] <= 1.0


def test_train_reversal_stops_at_the_time_limit():
    model = Seq2Seq(hidden_size=8, embedding_dim=4)
    history = train_reversal(model, steps=10_000, lengths=(2, 3), batch_size=4, time_limit=0.3)
    assert len(history) < 10_000 and history[-1]["time"] > 0.3


# ----------------------------------------------------------------------------------------------------
# Taggers: a bidirectional language model reads the answer
# ----------------------------------------------------------------------------------------------------

def tagger64(bidirectional, cell="lstm"):
    torch.manual_seed(0)
    return Tagger(7, hidden_size=5, cell=cell, bidirectional=bidirectional).double()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_forward_tagger_prefix_loss_equals_teacher_forced_loss(cell):
    model = tagger64(False, cell)
    x, y = tokens(9, 3, 9, V=7), tokens(9, 3, 10, V=7)
    with torch.no_grad():
        logits = model(x)
    full = float(torch.nn.functional.cross_entropy(logits.reshape(-1, 7), y.reshape(-1)))
    assert prefix_only_loss(model, x, y) == pytest.approx(full, abs=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bidirectional_tagger_output_at_t_reads_the_next_input(cell):
    x = tokens(6, 2, 11, V=7)
    for bidirectional in (False, True):
        model = tagger64(bidirectional, cell)
        with torch.no_grad():
            base = model(x)
            for t in range(5):
                changed = x.clone()
                changed[t + 1] = (changed[t + 1] + 1) % 7
                moved = not torch.allclose(model(changed)[t], base[t], rtol=0, atol=1e-14)
                assert moved == bidirectional, f"bidirectional={bidirectional}: o_{t} vs x_{t + 1}"
    x, y = tokens(9, 3, 12, V=7), tokens(9, 3, 13, V=7)
    model = tagger64(True, cell)
    with torch.no_grad():
        full = float(torch.nn.functional.cross_entropy(model(x).reshape(-1, 7), y.reshape(-1)))
    assert prefix_only_loss(model, x, y) != pytest.approx(full, abs=1e-6)


def test_tagger_shapes_and_embedding_option():
    model = Tagger(11, hidden_size=4, bidirectional=True, output_size=3, embedding_dim=5)
    assert model(tokens(6, 2, 14, V=11)).shape == (6, 2, 3)
    assert model.rnn.weight_ih_l0_reverse.shape == (16, 5)


# ----------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, words", [
    (lambda: Seq2Seq()(tokens(3, 2, 0).float(), tokens(3, 2, 0)), ShapeError, ["src:", "integer tokens"]),
    (lambda: Seq2Seq()(tokens(3, 2, 0) + 10, tokens(3, 2, 0)), GatedLibError, ["src:", "[0, 10)"]),
    (lambda: Seq2Seq()(tokens(3, 2, 0), tokens(3, 3, 0)), ShapeError, ["tgt:", "B = 2"]),
    (lambda: Seq2Seq()(tokens(3, 2, 0), tokens(0, 2, 0)), ShapeError, ["tgt:", "T >= 1"]),
    (lambda: Seq2Seq().generate(tokens(3, 2, 0), length=0), GatedLibError, ["length:"]),
    (lambda: Seq2Seq(hidden_size=0), GatedLibError, ["hidden_size:"]),
    (lambda: Tagger(7, cell="rnn"), GatedLibError, ["cell:", "'lstm' or 'gru'"]),
    (lambda: Tagger(7)(tokens(3, 2, 0, V=7), lengths=torch.tensor([3, 2])), GatedLibError, ["lengths:"]),
    (lambda: prefix_only_loss(Tagger(7), tokens(3, 2, 0, V=7), tokens(4, 2, 0, V=7)), ShapeError, ["y:", "(3, 2)"]),
    (lambda: reversal_batch(0, 3), GatedLibError, ["batch_size:"]),
    (lambda: reversal_batch(2, 0), GatedLibError, ["length:"]),
    (lambda: train_reversal(Seq2Seq(), 1, lengths=(5, 2)), GatedLibError, ["lengths:", "min <= max"]),
])
def test_errors_name_the_argument(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"
