"""Taggers and encoder-decoders over token sequences: the torch models of chapter 9 ("Beyond").

The idea. An *encoder* reads a whole token sequence, forwards (and, when bidirectional, backwards
too, so that its state at t has read x_{t+1..T}). Two uses:

* a **tagger** puts one prediction on every position: ``Tagger`` = embedding -> encoder -> Linear.
  Bidirectional is right for tagging, where the whole input is given; as a *language model*
  (predict x_{t+1} at t) it cheats, because its backward half has already read x_{t+1}.
* an **encoder-decoder** (Sutskever et al. 2014; Cho et al. 2014) maps a source sequence to a target
  sequence of another length: ``Seq2Seq``. The encoder (bidirectional by default, as Bahdanau et
  al.'s: the whole source is given) turns x_1..x_S into states e_1..e_S of size K (2H); the
  decoder starts from s_0 = tanh(W_b [final states]). Without attention that is all it gets: a
  fixed-size bottleneck of H numbers whatever the source length. With attention (Luong et al.
  2015's global attention with their "general" score, scaled as Vaswani et al.'s), the decoder
  state s_t queries every encoder state at every step:

      alpha_t = softmax_j((W_q s_t) . e_j / sqrt(K)),   c_t = sum_j alpha_tj e_j,
      logits_t = W_out tanh(W_c [c_t; s_t])            (without attention: W_out tanh(W_c s_t))

  The attention is ``attention`` below, the torch twin of
  gated_lib.attention.scaled_dot_product_attention (tests/test_torch_seq2seq.py checks they agree).

Training uses teacher forcing: the decoder reads [BOS, y_1, ..., y_{T-1}] and predicts y_1 .. y_T;
``generate`` decodes greedily, feeding back its own predictions.

The task of the chapter's demo, ``reversal_batch``: reverse a sequence of random digits. Every output
depends on a source position far from it (the first output on the last input and the last output on
the first), and the answer for length L needs L digits of memory: what a fixed-size state makes hard.

Shapes are time-major: tokens (T, B) int64; logits (T, B, V); attention weights (B, T_out, T_in).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from gated_lib.errors import GatedLibError, ShapeError
from gated_lib.tasks.base import as_generator, check_batch_size
from gated_lib.training.clip import clip_grad_norm

DIGITS = 10


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
    """Scaled dot-product attention, time-major: softmax(q k^T / sqrt(d)) v.

    Inputs: q (Tq, B, d), k (Tk, B, d), v (Tk, B, dv).
    Returns (output (Tq, B, dv), weights (B, Tq, Tk)), as gated_lib.attention.scaled_dot_product_attention
    without masks. (torch's fused F.scaled_dot_product_attention does not return the weights.)
    """
    scores = torch.einsum("ibd,jbd->bij", q, k) / math.sqrt(q.shape[-1])
    weights = torch.softmax(scores, dim=-1)
    return torch.einsum("bij,jbd->ibd", weights, v), weights


def _check_tokens(name: str, x, vocab_size: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.dtype not in (torch.int64, torch.int32):
        got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ShapeError(f"{name}: expected integer tokens of shape (T, B), got {got}")
    if x.shape[0] == 0:
        raise ShapeError(f"{name}: expected at least one time step (T >= 1), got shape {tuple(x.shape)}")
    if int(x.min()) < 0 or int(x.max()) >= vocab_size:
        raise GatedLibError(f"{name}: expected token ids in [0, {vocab_size}), got values in "
                            f"[{int(x.min())}, {int(x.max())}]")


class Tagger(nn.Module):
    """One prediction per position: embedding -> GRU or LSTM (optionally bidirectional) -> Linear.

    Tagger(vocab_size, hidden_size, cell="lstm", bidirectional=False, output_size=vocab_size)
    forward(x (T, B) tokens, lengths=None) -> logits (T, B, output_size). With output_size =
    vocab_size and targets y_t = x_{t+1} it is a character language model; called as
    model(x, lengths=...) it trains with gated_lib.training.Trainer on gated_lib.tasks.CharLM.
    """

    def __init__(self, vocab_size: int, hidden_size: int = 64, cell: str = "lstm", bidirectional: bool = False,
                 output_size: int | None = None, embedding_dim: int | None = None):
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise GatedLibError(f"cell: expected 'lstm' or 'gru', got {cell!r}")
        for name, value in (("vocab_size", vocab_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise GatedLibError(f"{name}: expected a positive int, got {value!r}")
        self.vocab_size, self.bidirectional = vocab_size, bool(bidirectional)
        # One-hot inputs by default (the small vocabularies of the course), as SequenceModel does.
        self.embedding = nn.Embedding(vocab_size, embedding_dim) if embedding_dim else None
        rnn_in = embedding_dim or vocab_size
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(rnn_in, hidden_size, bidirectional=self.bidirectional)
        self.head = nn.Linear(hidden_size * (2 if self.bidirectional else 1), output_size or vocab_size)

    def forward(self, x, lengths=None):
        """x (T, B) tokens -> logits (T, B, output_size). lengths is accepted for the Trainer and must be None."""
        _check_tokens("x", x, self.vocab_size)
        if lengths is not None:
            raise GatedLibError("lengths: Tagger takes sequences of one length (lengths=None)")
        if self.embedding is not None:
            inp = self.embedding(x)
        else:
            inp = nn.functional.one_hot(x.long(), self.vocab_size).to(self.head.weight.dtype)
        out, _ = self.rnn(inp)
        return self.head(out)


class Seq2Seq(nn.Module):
    """GRU encoder-decoder, with or without attention (see the module docstring).

    Seq2Seq(vocab_size, hidden_size=64, embedding_dim=32, use_attention=True, bidirectional_encoder=True)
    forward(src (S, B), tgt (T, B)) -> logits (T, B, vocab_size), teacher-forced
    generate(src, length=None) -> (tokens (T, B), weights (B, T, S) or None), greedy
    Token id vocab_size is the decoder's begin-of-sequence symbol (BOS).
    """

    def __init__(self, vocab_size: int = DIGITS, hidden_size: int = 64, embedding_dim: int = 32,
                 use_attention: bool = True, bidirectional_encoder: bool = True):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("hidden_size", hidden_size), ("embedding_dim", embedding_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise GatedLibError(f"{name}: expected a positive int, got {value!r}")
        self.vocab_size, self.bos, self.use_attention = vocab_size, vocab_size, bool(use_attention)
        H, E = hidden_size, embedding_dim
        K = H * (2 if bidirectional_encoder else 1)          # size of an encoder state (a key)
        self.src_embedding = nn.Embedding(vocab_size, E)
        self.tgt_embedding = nn.Embedding(vocab_size + 1, E)      # + BOS
        self.encoder = nn.GRU(E, H, bidirectional=bool(bidirectional_encoder))
        self.bridge = nn.Linear(K, H)        # the decoder's initial state, from the encoder's final state(s)
        self.decoder = nn.GRU(E, H)
        # Luong's "general" score s W k: the query is projected to the key's size, then scaled dot product.
        self.query = nn.Linear(H, K, bias=False) if self.use_attention else None
        self.combine = nn.Linear(H + (K if self.use_attention else 0), H)
        self.out = nn.Linear(H, vocab_size)

    def encode(self, src):
        """src (S, B) -> (encoder states (S, B, K), the decoder's initial state (1, B, H)); K = H or 2H."""
        _check_tokens("src", src, self.vocab_size)
        enc, h_n = self.encoder(self.src_embedding(src))
        # h_n is (directions, B, H): the forward direction's last state and, if bidirectional, the
        # backward direction's state at position 0; both have read the whole source.
        final = torch.cat(list(h_n), dim=-1)
        return enc, torch.tanh(self.bridge(final))[None]

    def _readout(self, dec, enc):
        """Decoder states (T, B, H) -> (logits (T, B, V), attention weights (B, T, S) or None)."""
        if self.use_attention:
            context, weights = attention(self.query(dec), enc, enc)
            return self.out(torch.tanh(self.combine(torch.cat([context, dec], dim=-1)))), weights
        return self.out(torch.tanh(self.combine(dec))), None

    def states(self, src, tgt):
        """Teacher forcing: (encoder states (S, B, K), decoder states (T, B, H)); the decoder reads [BOS, tgt[:-1]]."""
        enc, h = self.encode(src)
        _check_tokens("tgt", tgt, self.vocab_size)
        if tgt.shape[1] != src.shape[1]:
            raise ShapeError(f"tgt: expected the batch size of src, B = {src.shape[1]}, got shape {tuple(tgt.shape)}")
        bos = torch.full_like(tgt[:1], self.bos)
        dec, _ = self.decoder(self.tgt_embedding(torch.cat([bos, tgt[:-1]])), h)
        return enc, dec

    def forward(self, src, tgt, return_weights: bool = False):
        """Teacher-forced logits (T, B, V) for predicting tgt (and the attention weights (B, T, S) or None)."""
        enc, dec = self.states(src, tgt)
        logits, weights = self._readout(dec, enc)
        return (logits, weights) if return_weights else logits

    @torch.no_grad()
    def generate(self, src, length: int | None = None):
        """Greedy decoding of `length` tokens (default: the source length).

        Returns (tokens (T, B) int64, weights (B, T, S) or None without attention).
        """
        enc, h = self.encode(src)
        length = src.shape[0] if length is None else length
        if not isinstance(length, int) or length < 1:
            raise GatedLibError(f"length: expected a positive int, got {length!r}")
        token = torch.full_like(src[:1], self.bos)
        tokens, weights = [], []
        for _ in range(length):
            dec, h = self.decoder(self.tgt_embedding(token), h)
            logits, w = self._readout(dec, enc)
            token = logits.argmax(-1)
            tokens.append(token)
            weights.append(w)
        return torch.cat(tokens), (torch.cat(weights, dim=1) if self.use_attention else None)


# ----------------------------------------------------------------------------------------------------
# The reversal task: data, training, accuracy
# ----------------------------------------------------------------------------------------------------

def reversal_batch(batch_size: int, length: int, rng=None, vocab_size: int = DIGITS):
    """Random digit sequences and their reversals: (src (L, B), tgt (L, B)) int64 numpy arrays."""
    B = check_batch_size(batch_size)
    if not isinstance(length, (int, np.integer)) or isinstance(length, bool) or length < 1:
        raise GatedLibError(f"length: expected a positive int, got {length!r}")
    src = as_generator(rng).integers(0, vocab_size, size=(int(length), B))
    return src, src[::-1].copy()


def train_reversal(model: Seq2Seq, steps: int, lengths=(1, 20), batch_size: int = 64, lr: float = 3e-3,
                   seed: int = 0, clip_norm: float | None = 1.0, time_limit: float | None = None,
                   device=None) -> list[dict]:
    """Train `model` to reverse digit sequences; each batch has one length drawn from [lengths[0], lengths[1]].

    Adam, cross-entropy per token, clipping by norm (gated_lib.training.clip_grad_norm). Stops after
    `steps` or once `time_limit` seconds have passed. Returns one record per step:
    {"step", "length", "loss", "time"}.
    """
    lo, hi = lengths
    if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi):
        raise GatedLibError(f"lengths: expected (min, max) with 1 <= min <= max, got {lengths!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        L = int(rng.integers(lo, hi + 1))
        src, tgt = (torch.as_tensor(a, device=device) for a in reversal_batch(batch_size, L, rng, model.vocab_size))
        logits = model(src, tgt)
        loss = nn.functional.cross_entropy(logits.reshape(-1, model.vocab_size), tgt.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm is not None:
            clip_grad_norm(list(model.parameters()), clip_norm)
        opt.step()
        history.append({"step": step, "length": L, "loss": float(loss.detach()), "time": time.perf_counter() - start})
        if time_limit is not None and history[-1]["time"] > time_limit:
            break
    model.eval()
    return history


@torch.no_grad()
def reversal_accuracy(model: Seq2Seq, length: int, n: int = 500, seed: int = 1) -> dict:
    """Greedy-decoding accuracy on n fresh sequences of one length.

    Returns {"token": fraction of output digits right, "sequence": fraction of sequences entirely right}.
    """
    device = next(model.parameters()).device
    src, tgt = (torch.as_tensor(a, device=device) for a in reversal_batch(n, length, seed, model.vocab_size))
    model.eval()
    pred, _ = model.generate(src)
    right = pred == tgt
    return {"token": float(right.float().mean()), "sequence": float(right.all(dim=0).float().mean())}


# ----------------------------------------------------------------------------------------------------
# Language-model evaluation that cannot see the future
# ----------------------------------------------------------------------------------------------------

@torch.no_grad()
def prefix_only_loss(model, x, y) -> float:
    """Mean cross-entropy of predicting y[t] from the prefix x[:t+1] alone, for every t.

    Inputs: model(x (t, B)) -> logits (t, B, V), such as a Tagger; x, y (T, B) tokens.
    This is how a language model is used (to generate, the future does not exist yet): T forward runs
    on growing prefixes, the last position of each scored. For a forward RNN it equals the ordinary
    teacher-forced loss, because out_t depends on x_0..x_t only; for a bidirectional one it does not.
    """
    if x.shape != y.shape or x.dim() != 2:
        raise ShapeError(f"y: expected the shape of x, (T, B) = {tuple(x.shape)}, got {tuple(y.shape)}")
    was_training = model.training
    model.eval()
    logits = torch.stack([model(x[:t + 1])[-1] for t in range(x.shape[0])])
    model.train(was_training)
    return float(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)))
