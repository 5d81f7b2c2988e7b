"""The shipped text and the character-level language-model pipeline."""

from __future__ import annotations

import hashlib
import math
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from gated_lib.errors import GatedLibError
from gated_lib.tasks import TEXTS, CharLM, CharVocab, load_text

REPO = Path(__file__).resolve().parents[1]


def test_shipped_text_is_the_real_novel_with_its_source_and_licence():
    text = load_text("persuasion")
    raw = resources.files("gated_lib").joinpath("data", TEXTS["persuasion"]).read_bytes()
    assert 100_000 <= len(raw) <= 1_000_000
    assert hashlib.md5(raw).hexdigest() == "ea2a674ea8b3910c5d01858f75881e1a"     # as the README states
    assert text.startswith("Persuasion\n\n\nby\n\nJane Austen\n\n(1818)")
    assert "Anne Elliot" in text and "Captain Wentworth" in text and text.rstrip().endswith("Finis")
    assert text.isascii()
    readme = resources.files("gated_lib").joinpath("data", "README.md").read_text()
    for fact in ("public domain", "Jane Austen", "r-cran-janeaustenr", "Project Gutenberg", "MIT", "ea2a674e"):
        assert fact in readme, f"data/README.md does not state {fact!r}"


def test_text_is_package_data():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib")
    import tomllib

    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())
    data = cfg["tool"]["setuptools"]["package-data"]["gated_lib"]
    assert "data/*.txt" in data and "data/README.md" in data


def test_unknown_text_name():
    with pytest.raises(GatedLibError, match=r"name: expected one of \['persuasion'\], got 'emma'"):
        load_text("emma")


def test_vocab_roundtrip_and_unknown_character():
    v = CharVocab("hello world")
    assert len(v) == 8 and v.decode(v.encode("world hello")) == "world hello"
    with pytest.raises(GatedLibError, match=r"encode: character 'z' is not in the vocabulary"):
        v.encode("zoo")


@pytest.fixture(scope="module")
def lm():
    return CharLM(seq_len=50, val_fraction=0.1)


def test_split_is_contiguous_disjoint_and_complete(lm):
    ids = lm.vocab.encode(lm.text)
    assert len(lm.vocab) == 75
    assert np.array_equal(np.concatenate([lm.train_ids, lm.val_ids]), ids)
    assert len(lm.val_ids) == pytest.approx(0.1 * len(ids), abs=1)


def test_training_windows_predict_the_next_character(lm):
    b = lm.sample(8, rng=0)
    assert b.x.shape == b.y.shape == (50, 8)
    assert np.array_equal(b.x[1:], b.y[:-1])
    text_train = lm.vocab.decode(lm.train_ids)
    for j in range(8):
        assert lm.vocab.decode(np.append(b.x[:, j], b.y[-1, j])) in text_train
    assert np.array_equal(lm.sample(8, rng=0).x, b.x)


def test_validation_windows_are_fixed_and_from_the_validation_split(lm):
    val = lm.validation_set(size=100)
    assert sum(v.batch_size for v in val) == 100
    assert np.array_equal(val[0].x[:, 0], lm.val_ids[:50])
    again = lm.validation_set(size=100)
    assert all(np.array_equal(a.x, b.x) for a, b in zip(val, again))


def test_unigram_baseline_beats_uniform_and_matches_its_definition(lm):
    base = lm.baseline()
    assert base["loss"] < base["uniform_loss"] == pytest.approx(math.log(75))
    assert base["bpc"] == pytest.approx(base["loss"] / math.log(2))
    assert 4.0 < base["bpc"] < 4.6                                     # English characters: ~4.1-4.4 bits


def test_metrics_units(lm):
    torch = pytest.importorskip("torch")
    b = lm.sample(4, rng=1).to_torch()
    uniform = torch.zeros(50, 4, len(lm.vocab))
    m = lm.metrics(uniform, b)
    assert m["loss"] == pytest.approx(math.log(75), rel=1e-6)
    assert m["perplexity"] == pytest.approx(75, rel=1e-5) and m["bpc"] == pytest.approx(math.log2(75), rel=1e-6)
    assert not lm.solved(m)
    assert CharLM(seq_len=50, success_bpc=7.0).solved(m)


def test_sample_text_is_seeded_and_greedy_at_temperature_zero(lm):
    torch = pytest.importorskip("torch")
    from gated_lib.nn import SequenceModel
    from gated_lib.tasks import sample_text

    torch.manual_seed(0)
    model = SequenceModel(lm.model_config(hidden_size=16))
    a = sample_text(model, lm.vocab, "Anne", 30, temperature=1.0, rng=5)
    assert len(a) == 30 and set(a) <= set(lm.vocab.chars)
    assert sample_text(model, lm.vocab, "Anne", 30, temperature=1.0, rng=5) == a
    g1 = sample_text(model, lm.vocab, "Anne", 10, temperature=0, rng=1)
    assert g1 == sample_text(model, lm.vocab, "Anne", 10, temperature=0, rng=2)   # no randomness left
    with pytest.raises(GatedLibError, match="temperature: expected a number >= 0"):
        sample_text(model, lm.vocab, "Anne", 3, temperature=-1)


def test_too_long_windows_are_refused():
    with pytest.raises(GatedLibError, match=r"seq_len: the validation split has 2 characters, fewer than seq_len \+ 1 = 6"):
        CharLM(text="abcdefghijklmnopqrst", seq_len=5, val_fraction=0.1)


# ------------------------------------------------------------------------------------------------
# The pipeline's plain functions (CharLM and sample_text use them; exercise 8 grades against them)
# ------------------------------------------------------------------------------------------------

def test_split_ids_is_contiguous_and_is_what_charlm_uses(lm):
    from gated_lib.tasks.text import split_ids

    ids = lm.vocab.encode(lm.text)
    train, val = split_ids(ids, 0.1)
    assert np.array_equal(train, lm.train_ids) and np.array_equal(val, lm.val_ids)
    assert [len(p) for p in split_ids(np.arange(10), 0.3)] == [7, 3]
    with pytest.raises(GatedLibError, match=r"val_fraction: expected a fraction in \(0, 1\), got 1.5"):
        split_ids(ids, 1.5)
    with pytest.raises(GatedLibError, match=r"ids: expected a 1-D array \(N,\), got shape \(2, 5\)"):
        split_ids(np.zeros((2, 5)), 0.1)


def test_char_windows_shift_by_one_and_reach_the_last_start():
    from gated_lib.tasks.text import char_windows

    ids = np.arange(100, 112)                        # a value is its position + 100
    x, y = char_windows(ids, np.array([0, 3, 7]), 4)  # 7 = len(ids) - seq_len - 1, the last valid start
    assert x.shape == y.shape == (4, 3)
    assert np.array_equal(x[:, 2], [107, 108, 109, 110]) and np.array_equal(y[:, 2], [108, 109, 110, 111])
    assert np.array_equal(x[1:], y[:-1])
    with pytest.raises(GatedLibError, match=r"starts: expected values in \[0, len\(ids\) - seq_len - 1\] = \[0, 7\], "
                                            r"got values in \[0, 8\]"):
        char_windows(ids, np.array([0, 8]), 4)


def test_charlm_batches_are_char_windows_of_the_drawn_starts(lm):
    from gated_lib.tasks.text import char_windows

    b = lm.sample(5, rng=3)
    starts = np.random.default_rng(3).integers(0, len(lm.train_ids) - lm.seq_len, size=5)
    x, y = char_windows(lm.train_ids, starts, lm.seq_len)
    assert np.array_equal(b.x, x) and np.array_equal(b.y, y)


def test_token_nll_is_torch_cross_entropy_and_stable():
    torch = pytest.importorskip("torch")
    from gated_lib.tasks.text import log_softmax, token_nll

    rng = np.random.default_rng(0)
    logits, targets = rng.normal(0, 3, (6, 4, 9)), rng.integers(0, 9, (6, 4))
    ce = torch.nn.functional.cross_entropy(torch.from_numpy(logits).reshape(-1, 9), torch.from_numpy(targets).reshape(-1),
                                           reduction="none").reshape(6, 4).numpy()
    assert np.allclose(token_nll(logits, targets), ce, rtol=1e-12, atol=1e-12)
    assert np.allclose(token_nll(torch.from_numpy(logits), torch.from_numpy(targets)), ce, rtol=1e-12)
    # shifting every logit of a position changes nothing, even by +-1000 where exp overflows or underflows
    for shift in (1000.0, -1000.0):
        assert np.allclose(token_nll(logits + shift, targets), ce, rtol=1e-9)
    assert np.allclose(np.exp(log_softmax(logits)).sum(-1), 1.0)
    assert np.allclose(token_nll(np.zeros((2, 3, 9)), np.zeros((2, 3), dtype=int)), math.log(9))


def test_lm_units_relations():
    from gated_lib.tasks.text import lm_units

    u = lm_units(math.log(75))
    assert u["perplexity"] == pytest.approx(75) and u["bpc"] == pytest.approx(math.log2(75))
    u = lm_units(1.7)
    assert u["perplexity"] == pytest.approx(2 ** u["bpc"]) == pytest.approx(math.exp(1.7))
    assert u["bpc"] * math.log(2) == pytest.approx(1.7)


def test_temperature_probs_sharpen_flatten_and_equal_renormalised_powers():
    from gated_lib.tasks.text import temperature_probs

    z = np.array([2.0, 1.0, 0.0, -1.0, 0.5])
    p1 = temperature_probs(z, 1.0)
    assert np.allclose(p1, np.exp(z) / np.exp(z).sum())
    for T in (0.3, 0.5, 2.0, 7.0):
        q = p1 ** (1 / T)
        assert np.allclose(temperature_probs(z, T), q / q.sum())           # p_T is proportional to p_1 ** (1/T)

    def entropy(p):
        return float(-(p * np.log(p)).sum())

    entropies = [entropy(temperature_probs(z, T)) for T in (0.25, 0.5, 1.0, 2.0, 4.0)]
    assert entropies == sorted(entropies) and entropies[-1] < math.log(5)
    assert np.array_equal(temperature_probs(z, 0), np.eye(5)[0])
    assert np.allclose(temperature_probs(z, 1e-3), np.eye(5)[0]) and np.allclose(temperature_probs(z, 1e6), 0.2)
    assert np.isfinite(temperature_probs(1000 + z, 0.01)).all()
    with pytest.raises(GatedLibError, match="temperature: expected a number >= 0, got -1"):
        temperature_probs(z, -1)
    with pytest.raises(GatedLibError, match=r"logits: expected a 1-D array \(V,\)"):
        temperature_probs(z[None], 1.0)


def test_sample_next_is_one_draw_and_the_inverse_cdf():
    from gated_lib.tasks.text import sample_next, temperature_probs

    z = np.array([2.0, 1.0, 0.0, -1.0, 0.5])
    for seed in range(50):
        rng, ref = np.random.default_rng(seed), np.random.default_rng(seed)
        got = sample_next(z, 0.7, rng)
        u = ref.random()                                                    # the one number drawn
        assert got == int(np.searchsorted(np.cumsum(temperature_probs(z, 0.7)), u, side="right"))
        assert rng.bit_generator.state == ref.bit_generator.state
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert sample_next(z, 0, rng) == 0 and rng.bit_generator.state == state  # greedy: no draw


def test_sample_text_calls_the_sampler_it_is_given(lm):
    torch = pytest.importorskip("torch")
    from gated_lib.nn import SequenceModel
    from gated_lib.tasks import sample_text
    from gated_lib.tasks.text import sample_next

    torch.manual_seed(0)
    model = SequenceModel(lm.model_config(hidden_size=16))
    default = sample_text(model, lm.vocab, "Anne", 20, temperature=0.8, rng=4)
    assert sample_text(model, lm.vocab, "Anne", 20, temperature=0.8, rng=4, sampler=sample_next) == default
    seen = []

    def last_char(logits, temperature, rng):
        seen.append((logits.shape, logits.dtype, temperature))
        return len(logits) - 1

    assert sample_text(model, lm.vocab, "Anne", 5, temperature=0.3, rng=0, sampler=last_char) == lm.vocab.chars[-1] * 5
    assert seen == [((75,), np.float64, 0.3)] * 5


def test_train_chars_keeps_a_prefix_of_the_training_split_only():
    full, small = CharLM(seq_len=20), CharLM(seq_len=20, train_chars=500)
    np.testing.assert_array_equal(small.train_ids, full.train_ids[:500])
    np.testing.assert_array_equal(small.val_ids, full.val_ids)
    assert small.vocab.chars == full.vocab.chars
    batch = small.sample(64, np.random.default_rng(0))
    prefix = small.vocab.decode(full.train_ids[:500])
    for b in range(64):                                                 # every window lies inside the prefix
        assert small.vocab.decode(np.append(batch.x[:, b], batch.y[-1, b])) in prefix
    assert small.describe()["train_chars"] == 500 and full.describe()["train_chars"] is None
    with pytest.raises(GatedLibError, match=r"train_chars: expected a positive int or None, got 0"):
        CharLM(seq_len=20, train_chars=0)
    with pytest.raises(GatedLibError, match=r"seq_len: the train split has 10 characters"):
        CharLM(seq_len=20, train_chars=10)
