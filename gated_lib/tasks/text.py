"""A character-level language model on a real text: Jane Austen's *Persuasion* (1817/1818, public
domain), shipped in gated_lib/data (see gated_lib/data/README.md for its source and licence).

Pipeline: text -> CharVocab (the sorted set of characters) -> ids -> a contiguous train /
validation split (the last `val_fraction` of the book is validation, so no sentence is in both)
-> random windows of seq_len + 1 characters: x = window[:-1], y = window[1:] (the next character).

Units: the loss is the mean cross-entropy in nats per character; bits per character = loss / ln 2;
perplexity = exp(loss) = 2 ** bpc. A training perplexity far below the validation one is memorisation.

Generation: p = softmax(logits / temperature), then one draw u = rng.random() and the inverse CDF
(what rng.choice(V, p=p) does); temperature 0 is greedy (argmax, no draw).

The pieces, as plain functions (CharLM and sample_text are built from them, and exercise 8's checkers
use them as the reference):

    split_ids(ids, val_fraction)           -> (train (N_train,), val (N - N_train,))   contiguous
    char_windows(ids, starts, seq_len)     -> (x, y)  (T, B) int64, y[t, b] = ids[starts[b] + t + 1]
    log_softmax(logits, axis=-1)           -> float64, stable for any finite logits
    token_nll(logits (T, B, V), targets (T, B)) -> (T, B) nats, -log p(target)
    lm_units(nats)                         -> {"loss", "bpc", "perplexity"}
    temperature_probs(logits (V,), temperature) -> p (V,) float64
    sample_next(logits (V,), temperature, rng)  -> int
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np

from gated_lib.errors import GatedLibError, ShapeError
from gated_lib.tasks.base import Batch, Task, as_generator, check_batch_size

TEXTS = {"persuasion": "persuasion.txt"}


def load_text(name: str = "persuasion") -> str:
    """The full text of a shipped book (str). Available: TEXTS."""
    if name not in TEXTS:
        raise GatedLibError(f"name: expected one of {sorted(TEXTS)}, got {name!r}")
    return resources.files("gated_lib").joinpath("data", TEXTS[name]).read_text(encoding="utf-8")


class CharVocab:
    """Characters <-> ids. Built from the whole text so the validation split has no unknown character."""

    def __init__(self, text: str):
        if not text:
            raise GatedLibError("text: expected a non-empty string")
        self.chars = sorted(set(text))
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, s: str) -> np.ndarray:
        try:
            return np.array([self.index[ch] for ch in s], dtype=np.int64)
        except KeyError as exc:
            raise GatedLibError(f"encode: character {exc.args[0]!r} is not in the vocabulary "
                                f"({len(self.chars)} characters)") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in np.asarray(ids).ravel())


def split_ids(ids, val_fraction: float = 0.1):
    """Contiguous train / validation split of a sequence of ids.

    ids:          (N,) array of ids (the encoded text).
    val_fraction: the fraction in (0, 1) of the sequence, at its end, that is held out.
    Returns (train, val): ids[:cut] and ids[cut:] (views) with cut = int(N * (1 - val_fraction)).
    Contiguous, not shuffled: windows drawn from a shuffled text would overlap across the split, and
    validation would reward memorising the training text instead of measuring text never seen.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ShapeError(f"ids: expected a 1-D array (N,), got shape {ids.shape}")
    if not 0.0 < val_fraction < 1.0:
        raise GatedLibError(f"val_fraction: expected a fraction in (0, 1), got {val_fraction!r}")
    cut = int(len(ids) * (1.0 - val_fraction))
    return ids[:cut], ids[cut:]


def char_windows(ids, starts, seq_len: int):
    """Training windows of seq_len + 1 consecutive ids, split into input and next-character target.

    ids:     (N,) int array.
    starts:  (B,) ints, each in [0, N - seq_len - 1] (the last valid start included).
    seq_len: T >= 1.
    Returns x, y of shape (T, B): x[t, b] = ids[starts[b] + t], y[t, b] = ids[starts[b] + t + 1],
    so y is x shifted by one step (y[:-1] == x[1:]).
    """
    ids, starts = np.asarray(ids), np.asarray(starts)
    if ids.ndim != 1 or starts.ndim != 1:
        raise ShapeError(f"ids, starts: expected 1-D arrays, got shapes {ids.shape} and {starts.shape}")
    if not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise GatedLibError(f"seq_len: expected a positive int, got {seq_len!r}")
    last = len(ids) - seq_len - 1
    if starts.size and (starts.min() < 0 or starts.max() > last):
        raise GatedLibError(f"starts: expected values in [0, len(ids) - seq_len - 1] = [0, {last}], got values "
                            f"in [{starts.min()}, {starts.max()}]")
    w = ids[starts[None, :] + np.arange(seq_len + 1)[:, None]]        # (T + 1, B)
    return w[:-1], w[1:]


def log_softmax(logits, axis: int = -1) -> np.ndarray:
    """log softmax along `axis`, in float64: z - max(z) - log(sum(exp(z - max(z)))).

    Subtracting the max first keeps every exp in (0, 1]: logits of 1000 or -1000 give the same
    finite result as logits near 0 (a naive log(exp(z) / sum(exp(z))) gives NaN or -inf there).
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def token_nll(logits, targets) -> np.ndarray:
    """The cross-entropy of every position, in nats.

    logits:  (T, B, V) scores of the next character (numpy or torch).
    targets: (T, B) ids of the characters that came.
    Returns nll (T, B) float64: -log softmax(logits[t, b])[targets[t, b]]. Its mean is the loss.
    """
    if hasattr(logits, "detach"):
        logits = logits.detach().cpu().double().numpy()
    if hasattr(targets, "detach"):
        targets = targets.detach().cpu().numpy()
    logits, targets = np.asarray(logits), np.asarray(targets)
    if logits.ndim != 3 or targets.shape != logits.shape[:2]:
        raise ShapeError(f"logits, targets: expected shapes (T, B, V) and (T, B), got {logits.shape} and "
                         f"{targets.shape}")
    logp = log_softmax(logits, axis=-1)
    return -np.take_along_axis(logp, targets[..., None].astype(np.int64), axis=-1)[..., 0]


def lm_units(nats: float) -> dict:
    """A mean cross-entropy in nats per character in the three units the labs report.

    Returns {"loss": nats, "bpc": nats / ln 2, "perplexity": exp(nats)} (perplexity = 2 ** bpc: the
    number of equally likely characters that would leave the model as uncertain).
    """
    nats = float(nats)
    return {"loss": nats, "bpc": nats / math.log(2), "perplexity": math.exp(nats)}


def temperature_probs(logits, temperature: float) -> np.ndarray:
    """The distribution generation samples from: softmax(logits / temperature), float64 (V,).

    temperature < 1 sharpens it (towards the argmax), > 1 flattens it (towards uniform); equivalently
    p_T is proportional to p_1 ** (1 / temperature). temperature 0 is the limit: all the mass on the
    argmax (the first one on a tie).
    """
    if hasattr(logits, "detach"):
        logits = logits.detach().cpu().double().numpy()
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 1 or z.size == 0:
        raise ShapeError(f"logits: expected a 1-D array (V,) with V >= 1, got shape {z.shape}")
    if not (isinstance(temperature, (int, float, np.floating, np.integer)) and temperature >= 0
            and math.isfinite(temperature)):
        raise GatedLibError(f"temperature: expected a number >= 0, got {temperature!r}")
    if temperature == 0:
        p = np.zeros_like(z)
        p[int(z.argmax())] = 1.0
        return p
    z = z / temperature
    p = np.exp(z - z.max())
    return p / p.sum()


def sample_next(logits, temperature: float, rng) -> int:
    """One character id drawn from temperature_probs(logits, temperature).

    temperature 0: the argmax, and rng is not used. Otherwise exactly one number is drawn from rng:
    rng.choice(V, p=p) draws u = rng.random() and returns the first i with u < p_0 + ... + p_i
    (the inverse CDF), so a seed fixes the character.
    """
    p = temperature_probs(logits, temperature)
    if temperature == 0:
        return int(p.argmax())
    return int(as_generator(rng).choice(len(p), p=p))


class CharLM(Task):
    """Next-character prediction on a shipped text, readout at every step.

    split:         "train" batches are random windows of the first (1 - val_fraction) of the text;
                   validation_set() uses consecutive windows of the rest.
    train_chars:   keep only the first train_chars characters of the training split (the vocabulary
                   and the validation split are unchanged): a text short enough to memorise, for the
                   memorisation warning of chapter 8. None (default): the whole training split.
    success_bpc:   solved() when validation bits per character fall to this (default: never).
    """

    name = "char_lm"
    readout = "all"
    success_metric = "neg_bpc"
    default_model = dict(hidden_size=128, embedding_dim=None)

    def __init__(self, text: str | None = None, seq_len: int = 100, val_fraction: float = 0.1,
                 text_name: str = "persuasion", success_bpc: float | None = None, train_chars: int | None = None):
        self.text_name = text_name if text is None else "custom"
        self.text = load_text(text_name) if text is None else text
        if not isinstance(seq_len, int) or seq_len < 1:
            raise GatedLibError(f"seq_len: expected a positive int, got {seq_len!r}")
        if not 0.0 < val_fraction < 1.0:
            raise GatedLibError(f"val_fraction: expected a fraction in (0, 1), got {val_fraction!r}")
        self.vocab = CharVocab(self.text)
        self.vocab_size = self.output_size = len(self.vocab)
        self.seq_len, self.val_fraction = seq_len, val_fraction
        self.train_ids, self.val_ids = split_ids(self.vocab.encode(self.text), val_fraction)
        if train_chars is not None:
            if not isinstance(train_chars, int) or isinstance(train_chars, bool) or train_chars < 1:
                raise GatedLibError(f"train_chars: expected a positive int or None, got {train_chars!r}")
            self.train_ids = self.train_ids[:train_chars]
        self.train_chars = train_chars
        for name, part in (("train", self.train_ids), ("validation", self.val_ids)):
            if len(part) < seq_len + 1:
                raise GatedLibError(f"seq_len: the {name} split has {len(part)} characters, fewer than "
                                    f"seq_len + 1 = {seq_len + 1}; use a shorter seq_len or a longer text")
        self.success_bpc = success_bpc
        self.success_threshold = -math.inf if success_bpc is None else -float(success_bpc)

    def solved(self, metrics: dict) -> bool:
        """Validation bits per character <= success_bpc; never, when success_bpc is None."""
        return self.success_bpc is not None and metrics["bpc"] <= self.success_bpc

    def _windows(self, ids, starts):
        return Batch(*char_windows(ids, starts, self.seq_len))

    def sample(self, batch_size, rng=None) -> Batch:
        B = check_batch_size(batch_size)
        rng = as_generator(rng)
        starts = rng.integers(0, len(self.train_ids) - self.seq_len, size=B)
        return self._windows(self.train_ids, starts)

    def validation_set(self, size: int = 1000, seed: int = 0, batch_size: int = 64) -> list[Batch]:
        """Consecutive non-overlapping windows of the validation split (deterministic; size caps
        the number of windows; seed is unused)."""
        n = min(size, (len(self.val_ids) - 1) // self.seq_len)
        starts = np.arange(n) * self.seq_len
        return [self._windows(self.val_ids, starts[i:i + batch_size]) for i in range(0, n, batch_size)]

    def loss(self, pred, batch):
        import torch.nn.functional as F
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), batch.y.reshape(-1))

    def metrics(self, pred, batch) -> dict:
        units = lm_units(float(self.loss(pred, batch)))
        return {**units, "neg_bpc": -units["bpc"],
                "accuracy": float((pred.argmax(-1) == batch.y).float().mean())}

    def baseline(self) -> dict:
        """Memoryless: predict the training split's character frequencies (the unigram model);
        its cross-entropy on the validation split."""
        counts = np.bincount(self.train_ids, minlength=len(self.vocab)) + 1.0   # add-one: no zero probability
        p = counts / counts.sum()
        return {**lm_units(-np.log(p[self.val_ids]).mean()), "uniform_loss": math.log(len(self.vocab))}

    def describe(self) -> dict:
        return {"name": self.name, "text": self.text_name, "seq_len": self.seq_len,
                "val_fraction": self.val_fraction, "vocab_size": len(self.vocab), "train_chars": self.train_chars}


def sample_text(model, vocab: CharVocab, prompt: str = "\n", length: int = 200, temperature: float = 1.0,
                rng=None, sampler=None) -> str:
    """Generate `length` characters after `prompt` from a trained character model (readout "all").

    temperature scales the logits: < 1 sharper (more likely, more repetitive), > 1 flatter; 0 is
    greedy (argmax). The draws come from a numpy Generator (rng), so a seed fixes the sample.
    sampler(logits (V,) float64 numpy, temperature, rng) -> int picks each character (default
    sample_next); exercise 8 passes the learner's own.
    """
    import torch

    if not prompt:
        raise GatedLibError("prompt: expected at least one character")
    if not temperature >= 0:
        raise GatedLibError(f"temperature: expected a number >= 0, got {temperature!r}")
    rng = as_generator(rng)
    sampler = sample_next if sampler is None else sampler
    device = next(model.parameters()).device
    ids = torch.as_tensor(vocab.encode(prompt), device=device).view(-1, 1)      # (T, 1)
    out = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits, state = model(ids, return_state=True)
        for _ in range(length):
            nxt = int(sampler(logits[-1, 0].double().cpu().numpy(), temperature, rng))
            out.append(nxt)
            logits, state = model(torch.tensor([[nxt]], device=device), hx=state, return_state=True)
    model.train(was_training)
    return vocab.decode(out)
