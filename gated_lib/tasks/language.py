"""Two synthetic language tasks with a knob on the difficulty: agreement over a distance, and
sentiment with negation. Both are word-level (or character-level) classification with the
readout at the last valid step, and both are generated from templates and fixed word lists, so
that the label is exactly known and the distance exactly controlled.

Agreement ("I grew up in France ... I speak fluent French"):
    i grew up in france . <filler: `distance` words> i speak fluent     ->  french
The filler is drawn from neutral sentences that name no country and no language (with
distractor_prob > 0 a filler sentence may name *another* country, so the model must keep the
first one, not the latest). unit="chars" builds the same sentences as characters, with exactly
`distance` filler characters.

Sentiment with negation:
    [neutral clauses] the movie was not good [neutral clauses]          ->  negative
    ... the plot was not bad ...                                        ->  positive
The label is the adjective's polarity, flipped by a negation ("not", "never"); `gap` neutral
words can separate the negation from the adjective ("not , to be honest , good"). Label =
polarity XOR negated: no model that adds up word evidence independently (a linear bag of words)
can fit it; order and context are needed.
"""

from __future__ import annotations

import numpy as np

from gated_lib.errors import GatedLibError
from gated_lib.tasks.base import Batch, Task, as_generator, check_batch_size

COUNTRIES = (
    ("france", "french"), ("germany", "german"), ("spain", "spanish"), ("italy", "italian"),
    ("portugal", "portuguese"), ("poland", "polish"), ("greece", "greek"), ("sweden", "swedish"),
    ("japan", "japanese"), ("china", "chinese"), ("russia", "russian"), ("turkey", "turkish"),
)

FILLER_SENTENCES = (
    "we moved to a small house near the river",
    "my father worked long hours at the station",
    "the winters were cold and the summers were short",
    "i learned to ride a bicycle on the old road",
    "my sister liked to read books under the tree",
    "every sunday we walked to the market together",
    "the school was a long walk from our street",
    "later i studied music at the university",
    "now i work as an engineer in a large office",
    "i have two cats and a garden full of roses",
    "on weekends i play chess with my neighbours",
    "last year i started to paint in the evenings",
    "my friends say that i cook a very good soup",
    "the train to work takes almost an hour",
    "i still keep the letters my grandmother wrote",
    "we often spent the holidays at the seaside",
)

DISTRACTOR_TEMPLATES = ("my friend went on holiday to {}", "my cousin now lives in {}", "i once visited {} for a week")


def _vocab(words) -> dict:
    return {w: i for i, w in enumerate(sorted(set(words)))}


def _filler_words(n: int, rng, distractor_prob: float, exclude: str) -> list[str]:
    words: list[str] = []
    while len(words) < n:
        if distractor_prob and rng.random() < distractor_prob:
            others = [c for c, _ in COUNTRIES if c != exclude]
            sentence = DISTRACTOR_TEMPLATES[rng.integers(len(DISTRACTOR_TEMPLATES))].format(others[rng.integers(len(others))])
        else:
            sentence = FILLER_SENTENCES[rng.integers(len(FILLER_SENTENCES))]
        words.extend(sentence.split() + ["."])
    return words[:n]


def agreement_examples(batch_size: int, distance, rng=None, distractor_prob: float = 0.0, unit: str = "words"):
    """Texts and labels of the agreement task (numpy rng). distance: an int, or (low, high) inclusive.

    Returns (prompts: list[str], labels: (B,) int64 indices into COUNTRIES, distances: (B,) int64).
    The prompt ends with "i speak fluent"; the label names the language of the first country.
    """
    B = check_batch_size(batch_size)
    rng = as_generator(rng)
    if unit not in ("words", "chars"):
        raise GatedLibError(f"unit: expected 'words' or 'chars', got {unit!r}")
    lo, hi = (distance, distance) if np.isscalar(distance) else tuple(distance)
    if not (isinstance(lo, (int, np.integer)) and isinstance(hi, (int, np.integer)) and 0 <= lo <= hi):
        raise GatedLibError(f"distance: expected an int >= 0 or a pair (low, high) with 0 <= low <= high, got {distance!r}")
    if not 0.0 <= distractor_prob <= 1.0:
        raise GatedLibError(f"distractor_prob: expected a probability in [0, 1], got {distractor_prob!r}")
    labels = rng.integers(0, len(COUNTRIES), size=B)
    distances = rng.integers(lo, hi + 1, size=B)
    prompts = []
    for k, d in zip(labels, distances):
        country, d = COUNTRIES[k][0], int(d)
        if unit == "words":
            filler = _filler_words(d, rng, distractor_prob, country)
            prompts.append(" ".join([f"i grew up in {country} ."] + filler + ["i speak fluent"]))
        else:
            # d // 2 + 1 words joined by spaces have at least d characters; cut to exactly d
            filler = " ".join(_filler_words(d // 2 + 1, rng, distractor_prob, country))[:d]
            prompts.append(f"i grew up in {country} . " + (filler + " " if d else "") + "i speak fluent")
    return prompts, labels.astype(np.int64), distances.astype(np.int64)


def _encode_batch(token_lists, index) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(t) for t in token_lists], dtype=np.int64)
    x = np.zeros((int(lengths.max()), len(token_lists)), dtype=np.int64)   # padding after the end: id 0
    for b, toks in enumerate(token_lists):
        x[:len(toks), b] = [index[t] for t in toks]
    return x, lengths


class AgreementTask(Task):
    """Which language? Classify the end of "i grew up in <country> . <filler> i speak fluent".

    distance: filler words (unit="words") or characters (unit="chars") between the country's sentence
    and "i speak fluent"; an int or a (low, high) range. Chance is 1/12.
    """

    name = "agreement"
    readout = "last"
    success_metric = "accuracy"
    default_model = dict(hidden_size=64, embedding_dim=32)

    def __init__(self, distance=20, unit: str = "words", distractor_prob: float = 0.0, success_accuracy: float = 0.95):
        agreement_examples(1, distance, 0, distractor_prob, unit)                 # validates
        self.distance, self.unit, self.distractor_prob = distance, unit, float(distractor_prob)
        words = [w for c, l in COUNTRIES for w in (c, l)]
        words += [w for s in FILLER_SENTENCES + DISTRACTOR_TEMPLATES for w in s.replace("{}", "").split()]
        words += "i grew up in . speak fluent".split()
        if unit == "words":
            self.vocab = ["<pad>"] + sorted(set(words))
        else:
            self.vocab = ["\0"] + sorted(set(" ".join(words) + " ."))
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.vocab_size = len(self.vocab)
        self.output_size = len(COUNTRIES)
        self.success_threshold = float(success_accuracy)

    def tokenize(self, prompt: str) -> list:
        return prompt.split() if self.unit == "words" else list(prompt)

    def sample(self, batch_size, rng=None) -> Batch:
        prompts, labels, distances = agreement_examples(batch_size, self.distance, rng, self.distractor_prob, self.unit)
        x, lengths = _encode_batch([self.tokenize(p) for p in prompts], self.index)
        return Batch(x, labels, lengths, {"distances": distances, "texts": prompts})

    def loss(self, pred, batch):
        import torch.nn.functional as F
        return F.cross_entropy(pred, batch.y)

    def metrics(self, pred, batch) -> dict:
        import torch.nn.functional as F
        return {"loss": float(F.cross_entropy(pred, batch.y)),
                "accuracy": float((pred.argmax(-1) == batch.y).float().mean())}

    def baseline(self) -> dict:
        return {"loss": float(np.log(len(COUNTRIES))), "accuracy": 1.0 / len(COUNTRIES)}

    def describe(self) -> dict:
        return {"name": self.name, "distance": self.distance, "unit": self.unit, "distractor_prob": self.distractor_prob,
                "success_accuracy": self.success_threshold}


# --- sentiment with negation ---------------------------------------------------------------------

SUBJECTS = ("the movie", "the film", "the acting", "the plot", "the story", "the soundtrack", "the ending", "the cast")
VERBS = ("was", "is", "seemed", "felt")
NEGATIONS = ("not", "never")
INTENSIFIERS = ("very", "really", "truly")
POSITIVE = ("good", "great", "excellent", "wonderful", "enjoyable", "brilliant", "fun", "moving")
NEGATIVE = ("bad", "terrible", "awful", "boring", "dull", "poor", "weak", "forgettable")
NEUTRAL_CLAUSES = (
    "i watched it on a sunday", "i saw it with my brother", "we went to the cinema downtown",
    "it was raining that evening", "the seats were red", "we bought popcorn before it started",
    "it lasted about two hours", "my friend picked the tickets", "the hall was half empty",
    "we arrived a little late", "it was shown in the old theatre", "i had read about it last week",
)
GAP_WORDS = ("to", "be", "honest", "i", "think", "overall", "in", "the", "end", "frankly", "all", "things", "considered")


def sentiment_examples(batch_size: int, rng=None, negation_prob: float = 0.5, n_distractors=(0, 2), gap=0):
    """Reviews and labels (1 positive, 0 negative). n_distractors and gap: an int or (low, high).

    Returns (texts: list[str], labels (B,) int64, negated (B,) bool).
    """
    B = check_batch_size(batch_size)
    rng = as_generator(rng)
    if not 0.0 <= negation_prob <= 1.0:
        raise GatedLibError(f"negation_prob: expected a probability in [0, 1], got {negation_prob!r}")

    def rng_range(name, v):
        lo, hi = (v, v) if np.isscalar(v) else tuple(v)
        if not (isinstance(lo, (int, np.integer)) and isinstance(hi, (int, np.integer)) and 0 <= lo <= hi):
            raise GatedLibError(f"{name}: expected an int >= 0 or a pair (low, high), got {v!r}")
        return int(lo), int(hi)

    dlo, dhi = rng_range("n_distractors", n_distractors)
    glo, ghi = rng_range("gap", gap)
    texts, labels, negs = [], [], []
    for _ in range(B):
        positive = bool(rng.random() < 0.5)
        negated = bool(rng.random() < negation_prob)
        adj = (POSITIVE if positive else NEGATIVE)[rng.integers(len(POSITIVE))]
        # "felt not bad" is not English: a negated review uses "was" / "is"
        verbs = VERBS[:2] if negated else VERBS
        core = [SUBJECTS[rng.integers(len(SUBJECTS))], verbs[rng.integers(len(verbs))]]
        if negated:
            core.append(NEGATIONS[rng.integers(len(NEGATIONS))])
            g = int(rng.integers(glo, ghi + 1))
            if g:
                core.append(", " + " ".join(GAP_WORDS[rng.integers(len(GAP_WORDS))] for _ in range(g)) + " ,")
        elif rng.random() < 0.3:
            core.append(INTENSIFIERS[rng.integers(len(INTENSIFIERS))])
        core.append(adj)
        clauses = [NEUTRAL_CLAUSES[rng.integers(len(NEUTRAL_CLAUSES))] for _ in range(int(rng.integers(dlo, dhi + 1)))]
        where = int(rng.integers(0, len(clauses) + 1))
        sentence = " , ".join(clauses[:where] + [" ".join(core)] + clauses[where:])
        texts.append(sentence + " .")
        labels.append(int(positive != negated))
        negs.append(negated)
    return texts, np.array(labels, dtype=np.int64), np.array(negs, dtype=bool)


class SentimentTask(Task):
    """Is the review positive? Word-level, two classes, readout at the last word."""

    name = "sentiment"
    readout = "last"
    output_size = 2
    success_metric = "accuracy"
    default_model = dict(hidden_size=64, embedding_dim=32)

    def __init__(self, negation_prob: float = 0.5, n_distractors=(0, 2), gap=0, success_accuracy: float = 0.98):
        sentiment_examples(1, 0, negation_prob, n_distractors, gap)               # validates
        self.negation_prob, self.n_distractors, self.gap = float(negation_prob), n_distractors, gap
        words = " ".join(SUBJECTS + VERBS + NEGATIONS + INTENSIFIERS + POSITIVE + NEGATIVE + NEUTRAL_CLAUSES + GAP_WORDS)
        self.vocab = ["<pad>"] + sorted(set(words.split()) | {",", "."})
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.vocab_size = len(self.vocab)
        self.success_threshold = float(success_accuracy)

    def sample(self, batch_size, rng=None) -> Batch:
        texts, labels, negated = sentiment_examples(batch_size, rng, self.negation_prob, self.n_distractors, self.gap)
        x, lengths = _encode_batch([t.split() for t in texts], self.index)
        return Batch(x, labels, lengths, {"texts": texts, "negated": negated})

    def loss(self, pred, batch):
        import torch.nn.functional as F
        return F.cross_entropy(pred, batch.y)

    def metrics(self, pred, batch) -> dict:
        import torch.nn.functional as F
        hit = (pred.argmax(-1) == batch.y).float()
        out = {"loss": float(F.cross_entropy(pred, batch.y)), "accuracy": float(hit.mean())}
        neg = batch.info.get("negated")
        if neg is not None and neg.any():
            import torch
            out["accuracy_negated"] = float(hit[torch.as_tensor(neg, device=hit.device)].mean())
        return out

    def baseline(self) -> dict:
        return {"loss": float(np.log(2)), "accuracy": 0.5}

    def describe(self) -> dict:
        return {"name": self.name, "negation_prob": self.negation_prob, "n_distractors": self.n_distractors,
                "gap": self.gap, "success_accuracy": self.success_threshold}
