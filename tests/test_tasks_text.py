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
