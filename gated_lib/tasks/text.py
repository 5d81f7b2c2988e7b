"""A character-level language model on a real text: Jane Austen's *Persuasion* (1817/1818, public
domain), shipped in gated_lib/data (see gated_lib/data/README.md for its source and licence).

Pipeline: text -> CharVocab (the sorted set of characters) -> ids -> a contiguous train /
validation split (the last `val_fraction` of the book is validation, so no sentence is in both)
-> random windows of seq_len + 1 characters: x = window[:-1], y = window[1:] (the next character).

Units: the loss is the mean cross-entropy in nats per character; bits per character = loss / ln 2;
perplexity = exp(loss). A training perplexity far below the validation one is memorisation.
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np

from gated_lib.errors import GatedLibError
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


class CharLM(Task):
    """Next-character prediction on a shipped text, readout at every step.

    split:         "train" batches are random windows of the first (1 - val_fraction) of the text;
                   validation_set() uses consecutive windows of the rest.
    success_bpc:   solved() when validation bits per character fall to this (default: never).
    """

    name = "char_lm"
    readout = "all"
    success_metric = "neg_bpc"
    default_model = dict(hidden_size=128, embedding_dim=None)

    def __init__(self, text: str | None = None, seq_len: int = 100, val_fraction: float = 0.1,
                 text_name: str = "persuasion", success_bpc: float | None = None):
        self.text_name = text_name if text is None else "custom"
        self.text = load_text(text_name) if text is None else text
        if not isinstance(seq_len, int) or seq_len < 1:
            raise GatedLibError(f"seq_len: expected a positive int, got {seq_len!r}")
        if not 0.0 < val_fraction < 1.0:
            raise GatedLibError(f"val_fraction: expected a fraction in (0, 1), got {val_fraction!r}")
        self.vocab = CharVocab(self.text)
        self.vocab_size = self.output_size = len(self.vocab)
        self.seq_len, self.val_fraction = seq_len, val_fraction
        ids = self.vocab.encode(self.text)
        cut = int(len(ids) * (1.0 - val_fraction))
        self.train_ids, self.val_ids = ids[:cut], ids[cut:]
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
        idx = starts[None, :] + np.arange(self.seq_len + 1)[:, None]    # (T + 1, B)
        w = ids[idx]
        return Batch(w[:-1], w[1:])

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
        loss = float(self.loss(pred, batch))
        return {"loss": loss, "bpc": loss / math.log(2), "neg_bpc": -loss / math.log(2),
                "perplexity": math.exp(loss),
                "accuracy": float((pred.argmax(-1) == batch.y).float().mean())}

    def baseline(self) -> dict:
        """Memoryless: predict the training split's character frequencies (the unigram model);
        its cross-entropy on the validation split."""
        counts = np.bincount(self.train_ids, minlength=len(self.vocab)) + 1.0   # add-one: no zero probability
        p = counts / counts.sum()
        loss = float(-np.log(p[self.val_ids]).mean())
        return {"loss": loss, "bpc": loss / math.log(2), "perplexity": math.exp(loss),
                "uniform_loss": math.log(len(self.vocab))}

    def describe(self) -> dict:
        return {"name": self.name, "text": self.text_name, "seq_len": self.seq_len,
                "val_fraction": self.val_fraction, "vocab_size": len(self.vocab)}


def sample_text(model, vocab: CharVocab, prompt: str = "\n", length: int = 200, temperature: float = 1.0,
                rng=None) -> str:
    """Generate `length` characters after `prompt` from a trained character model (readout "all").

    temperature scales the logits: < 1 sharper (more likely, more repetitive), > 1 flatter; 0 is
    greedy (argmax). The draws come from a numpy Generator (rng), so a seed fixes the sample.
    """
    import torch

    if not prompt:
        raise GatedLibError("prompt: expected at least one character")
    if not temperature >= 0:
        raise GatedLibError(f"temperature: expected a number >= 0, got {temperature!r}")
    rng = as_generator(rng)
    device = next(model.parameters()).device
    ids = torch.as_tensor(vocab.encode(prompt), device=device).view(-1, 1)      # (T, 1)
    out = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits, state = model(ids, return_state=True)
        for _ in range(length):
            last = logits[-1, 0].double().cpu().numpy()
            if temperature == 0:
                nxt = int(last.argmax())
            else:
                z = last / temperature
                p = np.exp(z - z.max())
                nxt = int(rng.choice(len(p), p=p / p.sum()))
            out.append(nxt)
            logits, state = model(torch.tensor([[nxt]], device=device), hx=state, return_state=True)
    model.train(was_training)
    return vocab.decode(out)
