"""Agreement over a controlled distance, and sentiment with negation: the labels are what the
sentences say, and the knobs do what they claim."""

from __future__ import annotations

import numpy as np
import pytest

from gated_lib.errors import GatedLibError
from gated_lib.tasks import AgreementTask, SentimentTask, agreement_examples, sentiment_examples
from gated_lib.tasks.language import COUNTRIES, NEGATIONS, NEGATIVE, POSITIVE

LANG = {c: l for c, l in COUNTRIES}


@pytest.mark.parametrize("distance", [0, 1, 7, 40])
def test_agreement_word_distance_is_exact(distance):
    prompts, labels, dists = agreement_examples(50, distance, rng=0)
    for p, k, d in zip(prompts, labels, dists):
        words = p.split()
        assert words[:4] == ["i", "grew", "up", "in"] and words[5] == "."
        assert words[4] == COUNTRIES[k][0], "the label is the language of the first country"
        assert words[-3:] == ["i", "speak", "fluent"]
        assert len(words) - 6 - 3 == d == distance
        assert not any(w in LANG for w in words[6:-3]), "the filler names no country"
        assert not any(w in LANG.values() for w in words), "the language never appears in the prompt"


@pytest.mark.parametrize("distance", [0, 5, 33])
def test_agreement_char_distance_is_exact(distance):
    prompts, labels, _ = agreement_examples(30, distance, rng=1, unit="chars")
    for p, k in zip(prompts, labels):
        head = f"i grew up in {COUNTRIES[k][0]} . "
        assert p.startswith(head) and p.endswith("i speak fluent")
        middle = p[len(head):-len("i speak fluent")]
        assert len(middle) == (distance + 1 if distance else 0)              # the filler plus one space


def test_distractors_name_other_countries_only():
    prompts, labels, _ = agreement_examples(200, 30, rng=2, distractor_prob=1.0)
    for p, k in zip(prompts, labels):
        words = p.split()[6:-3]
        named = [w for w in words if w in LANG]
        assert COUNTRIES[k][0] not in named
    assert sum(any(w in LANG for w in p.split()[6:-3]) for p in prompts) > 150


def test_agreement_task_batches_and_balance():
    task = AgreementTask(distance=(3, 9))
    b = task.sample(600, rng=0)
    assert b.x.shape[1] == 600 and b.x.dtype == np.int64
    assert np.all(b.lengths == 9 + b.info["distances"]) and b.info["distances"].min() >= 3
    for j in (0, 1, 2):                                                  # tokens decode to the prompt
        assert " ".join(task.vocab[i] for i in b.x[:b.lengths[j], j]) == b.info["texts"][j]
    counts = np.bincount(b.y, minlength=len(COUNTRIES))
    assert counts.min() > 20
    assert task.baseline()["accuracy"] == pytest.approx(1 / 12)


def test_agreement_bad_distance():
    with pytest.raises(GatedLibError, match=r"distance: expected an int >= 0 or a pair .*got \(5, 2\)"):
        AgreementTask(distance=(5, 2))


def polarity(text: str) -> int:
    words = text.replace(",", " ").split()
    adj = [w for w in words if w in POSITIVE or w in NEGATIVE]
    assert len(adj) == 1, text
    negated = any(w in NEGATIONS for w in words)
    return int((adj[0] in POSITIVE) != negated)


def test_sentiment_labels_follow_negation():
    texts, labels, negated = sentiment_examples(2000, rng=0, gap=(0, 3))
    for t, y in zip(texts, labels):
        assert polarity(t) == y
    assert 0.4 < negated.mean() < 0.6 and 0.45 < labels.mean() < 0.55
    neg_pos = [t for t, y, n in zip(texts, labels, negated) if n and y == 1]
    assert any(" not bad" in t or " never bad" in t for t in neg_pos), "'not bad' is positive"


def test_sentiment_knobs():
    texts, _, negated = sentiment_examples(200, rng=1, negation_prob=0.0, n_distractors=0)
    assert not negated.any() and all(t.count(",") == 0 for t in texts)
    texts, _, negated = sentiment_examples(200, rng=1, negation_prob=1.0, n_distractors=0, gap=2)
    assert negated.all()
    for t in texts:
        w = t.split()
        k = next(i for i, x in enumerate(w) if x in NEGATIONS)
        assert w[k + 1] == "," and w[k + 4] == ","                         # two gap words between commas


def test_sentiment_task_encodes_and_reports_negated_accuracy():
    torch = pytest.importorskip("torch")
    task = SentimentTask()
    b = task.sample(64, rng=0)
    assert b.x.shape[1] == 64 and np.all(b.lengths <= b.x.shape[0])
    tb = b.to_torch()
    perfect = torch.nn.functional.one_hot(tb.y, 2).float() * 10
    m = task.metrics(perfect, tb)
    assert m["accuracy"] == 1.0 and m["accuracy_negated"] == 1.0 and task.solved(m)
    with pytest.raises(GatedLibError, match=r"negation_prob: expected a probability in \[0, 1\], got 2"):
        SentimentTask(negation_prob=2)
