"""Checkers for exercise 8 (lab II, text): the pieces of a character-level language model's pipeline,
perplexity, sampling with temperature, and a short seeded training run on Jane Austen's *Persuasion*.

The learner's API (time-major; numpy for the data, torch for the model)::

    build_vocab(text)                          -> (chars, stoi)  chars: the sorted distinct characters,
                                                                 stoi: {char: id} with stoi[chars[i]] == i
    encode(s, stoi)                            -> ids (N,) int64 numpy
    decode(ids, chars)                         -> str
    split_ids(ids, val_fraction=0.1)           -> (train_ids, val_ids)  contiguous: the last val_fraction validates
    make_batch(ids, batch_size, seq_len, rng)  -> (x, y)  (T, B) int64, y[t, b] = ids[s_b + t + 1]
    perplexity(logits, targets)                -> (nats, bpc, ppl)   three floats
    sample_next(logits, temperature, rng)      -> int
    train_char_lm(model, train_ids, steps, batch_size=32, seq_len=32, lr=2e-2, max_norm=1.0, seed=0)
                                               -> {"loss": [...]}    nats per step

The reference is gated_lib.tasks.text (CharVocab, split_ids, char_windows, token_nll, lm_units,
temperature_probs, sample_next): one definition, which the library's CharLM and sample_text also use.

How each part is graded:

* :func:`check_vocab`: build_vocab on texts with newlines, punctuation, digits and non-ASCII letters
  (the order, duplicates, missing characters, ids from 1, a stoi that does not invert chars are named);
  encode and decode against the reference vocabulary (dtype int64 even for the empty string).
* :func:`check_split`: the two parts together are ids, in order (swapped or shuffled parts are named);
  the training part has N (1 - val_fraction) ids, rounded either way (the reference takes int(...)).
* :func:`check_make_batch`: on texts of distinct ids, so the position of every id is known: each column
  of x is seq_len consecutive ids and y the same window one step later (y = x, y = x + 1 and the previous
  character are named); batch-first and (T + 1, B) shapes; one window when len(ids) = seq_len + 1; the
  rng alone decides the batch; the starts are uniform over 0 .. len(ids) - seq_len - 1, the last included.
* :func:`check_perplexity`: random, uniform, huge (+-1000) logits in float32 and float64; on a mismatch
  the learner's numbers are compared, on every case, with named mistakes: for the nats (the sum, the
  sum over time, the mean probability, the softmax over T or B, targets off by one either way, no
  softmax, log2 or log10, a missing minus), the bpc (not converted, times ln 2, log10) and the perplexity
  (exp of the bpc, 2 ** nats, 1 / mean probability, exp of the sum).
* :func:`check_sample_next`: the draw, seed by seed. The definition: p = softmax(logits / temperature),
  one number u = rng.random(), the first i with u < p_0 + ... + p_i; rng.choice(V, p=p) does exactly this,
  so rng.choice and a hand-written inverse CDF both pass. Temperature 0 is the argmax and draws nothing.
  Mistakes named: the temperature multiplied or ignored, greedy below 1, p ** (1/T) or exp(z) without
  normalising, the inverse CDF one position off, a draw from the global random state or more than one.
* :func:`check_sample_statistics`: thousands of draws against the exact probabilities (a chi-square test
  at about 5 standard deviations): any correct sampler passes, however it uses rng (Gumbel-max, torch on
  a seeded generator ...); a wrong distribution is compared with the named mistakes' distributions.
* :func:`check_short_run`: the learner's loop trains :func:`make_model` for a few hundred steps; the
  validation bits per character, measured here on fixed windows of the validation split, must reach a
  threshold.

While the learner's functions run, gated_lib is forbidden except gated_lib.nn (the model itself).
"""

from __future__ import annotations

import functools
import math
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from gated_lib.grading.core import Forbidden, GradingFailure, call_student
from gated_lib.grading.lab_long_range import _scalar
from gated_lib.tasks.text import (CharLM, CharVocab, char_windows, load_text, lm_units, log_softmax, split_ids,
                                  temperature_probs, token_nll)

__all__ = [
    "FORBID",
    "NATS_BUGS",
    "BPC_BUGS",
    "PPL_BUGS",
    "SAMPLER_BUGS",
    "check_vocab",
    "check_split",
    "check_make_batch",
    "check_perplexity",
    "check_sample_next",
    "check_sample_statistics",
    "check_short_run",
    "make_model",
    "validation_bpc",
]

#: The model (gated_lib.nn) may run; the text pipeline, the metrics and the sampler of the library may not.
FORBID = Forbidden(allow=("gated_lib.activations", "gated_lib.errors", "gated_lib.nn"))

LN2, LN10 = math.log(2), math.log(10)


def _fail(msg: str):
    raise GradingFailure(msg)


def _call(fn, args, fn_name, call, watch=True, hint="Run this call in a cell of its own to see where it fails."):
    """call_student with FORBID (looked up at each call, so a test can lift it) unless watch is False."""
    return call_student(fn, args, fn_name=fn_name, case=call, forbid=FORBID if watch else None, hint=hint)


def _pair(out, call: str, what: str = "(x, y)"):
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        _fail(f"{call} should return a pair {what}, but it returned {type(out).__name__}"
              + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "") + ".")
    return out


def _torch():
    import torch
    return torch


@functools.lru_cache(maxsize=1)
def _novel() -> str:
    return load_text("persuasion")


# ==================================================================================================
# A. The vocabulary, the split and the windows
# ==================================================================================================

VOCAB_TEXTS = ["hello world", "abracadabra", "Anne Elliot, 1818!\nCaptain Wentworth\n\n", "zzzz",
               "na\u00efve caf\u00e9 \u2014 \u201cPersuasion\u201d"]


def _random_text(rng: np.random.Generator) -> str:
    alphabet = list(string.printable) + list("\u00e9\u00e8\u00ef\u00e7\u2014\u201c\u201d\u00a3")
    k = int(rng.integers(1, 30))
    chars = rng.choice(alphabet, size=k, replace=False)
    return "".join(rng.choice(chars, size=int(rng.integers(1, 300))))


def _chars_problem(chars, text: str) -> str | None:
    want = sorted(set(text))
    if not isinstance(chars, (list, tuple, str)) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
        return (f"chars should be a list of the distinct characters (one-character strings), but it is "
                f"{type(chars).__name__}: {chars!r:.80}.")
    got = list(chars)
    if got == want:
        return None
    if len(got) != len(set(got)):
        dup = next(c for c in got if got.count(c) > 1)
        return (f"chars has {len(got)} entries, but the text has {len(want)} distinct characters: {dup!r} appears "
                f"{got.count(dup)} times. Each character gets one id: take the set of the text's characters.")
    if set(got) != set(want):
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        return ("chars should hold exactly the text's characters: " + (f"missing {missing[:5]}" if missing else "")
                + (", " if missing and extra else "") + (f"not in the text {extra[:5]}" if extra else "")
                + ". (Newlines and spaces are characters too.)")
    first_seen = list(dict.fromkeys(text))
    order = " (in the order of their first appearance in the text)" if got == first_seen else ""
    return (f"chars holds the right characters but not in sorted order{order}: {''.join(got[:12])!r}... should "
            f"be sorted(set(text)) = {''.join(want[:12])!r}... Sorting makes the ids the same for everyone "
            f"who builds the vocabulary of the same text.")


def _stoi_problem(stoi, chars: list[str]) -> str | None:
    if not isinstance(stoi, Mapping):
        return f"stoi should be a dict {{character: id}}, but it is {type(stoi).__name__}."
    if set(stoi) != set(chars):
        missing, extra = sorted(set(chars) - set(stoi)), sorted(set(stoi) - set(chars))
        return ("stoi should have one key per character of chars: "
                + (f"missing {missing[:5]}" if missing else f"extra keys {extra[:5]}") + ".")
    bad_type = [c for c in chars if isinstance(stoi[c], bool) or not isinstance(stoi[c], (int, np.integer))]
    if bad_type:
        c = bad_type[0]
        return f"stoi[{c!r}] is {stoi[c]!r} ({type(stoi[c]).__name__}): ids are ints."
    if all(int(stoi[c]) == i + 1 for i, c in enumerate(chars)):
        return ("the ids start at 1 (stoi[chars[0]] == 1): they start at 0, so that an id indexes chars (and the "
                "rows of the model's one-hot input) directly.")
    for i, c in enumerate(chars):
        if int(stoi[c]) != i:
            return (f"stoi[{c!r}] = {stoi[c]}, but {c!r} is chars[{i}]: stoi must invert chars, "
                    f"stoi[chars[i]] == i for every i.")
    return None


def _ids_problem(got, want: np.ndarray, name: str) -> str | None:
    if not isinstance(got, np.ndarray):
        return (f"{name} should be a numpy array of ids (np.array(..., dtype=np.int64)), but it is "
                f"{type(got).__name__}.")
    if got.shape != want.shape:
        return f"{name} has shape {got.shape}, but it should have shape {want.shape} (one id per character)."
    if got.dtype != np.int64:
        extra = " np.array([]) is float64: pass dtype=np.int64." if got.size == 0 else ""
        return (f"{name} has dtype {got.dtype}, but ids are int64 (torch's one-hot and embedding layers take "
                f"int64).{extra}")
    if not np.array_equal(got, want):
        i = int(np.flatnonzero(got != want)[0])
        msg = f"{name}[{i}] = {got[i]}, expected {want[i]}."
        if np.array_equal(got, want + 1):
            msg += " Every id is one too high: ids start at 0."
        return msg
    return None


def check_vocab(build_vocab: Callable, encode: Callable, decode: Callable, *, seed: int = 0, fixed: bool = True,
                n_random: int = 0) -> None:
    """build_vocab, encode and decode on short texts and an excerpt of the novel (see the module docstring)."""
    texts = (VOCAB_TEXTS + [_novel()[:3000]]) if fixed else []
    rng = np.random.default_rng(seed)
    texts += [_random_text(rng) for _ in range(n_random)]
    for text in texts:
        shown = repr(text if len(text) <= 40 else text[:37] + "...")
        call = f"build_vocab({shown})"
        chars, stoi = _pair(_call(build_vocab, (text,), "build_vocab", call), call, "(chars, stoi)")
        problem = _chars_problem(chars, text)
        if problem:
            _fail(f"{call}: {problem}")
        problem = _stoi_problem(stoi, list(chars))
        if problem:
            _fail(f"{call}: {problem}")
        ref = CharVocab(text)
        pieces = [text, text[len(text) // 3: len(text) // 3 + 7]] + ([""] if text == texts[0] else [])
        for s in pieces:
            call = f"encode({s[:30]!r}{'...' if len(s) > 30 else ''}, stoi)"
            got = _call(encode, (s, dict(ref.index)), "encode", call)
            problem = _ids_problem(got, ref.encode(s), "the result")
            if problem:
                _fail(f"{call} with stoi = the vocabulary of {shown}: {problem}")
        ids = ref.encode(text)
        for form, arg in (("a numpy int64 array", ids), ("a list of ints", ids.tolist())):
            call = f"decode(ids, chars) with ids {form} (the text {shown})"
            got = _call(decode, (arg, list(ref.chars)), "decode", call)
            if isinstance(got, (list, tuple)) and "".join(map(str, got)) == text:
                _fail(f"{call} returned a {type(got).__name__} of characters: join them into one string, "
                      f"''.join(...).")
            if not isinstance(got, str):
                _fail(f"{call} should return a str, but it returned {type(got).__name__}: {got!r:.60}")
            if got != text:
                i = next((k for k, (a, b) in enumerate(zip(got, text)) if a != b), min(len(got), len(text)))
                _fail(f"{call} returned a string of length {len(got)} that differs from the text (length {len(text)}) "
                      f"first at position {i}: {got[i:i + 10]!r} instead of {text[i:i + 10]!r}. decode(ids)[t] "
                      f"is chars[ids[t]].")
    print(f"build_vocab, encode, decode: right on {len(texts)} texts"
          f"{' (random alphabets)' if not fixed else ' (newlines, punctuation, non-ASCII letters, the novel)'}.")


def _split_cases(seed: int, fixed: bool, n_random: int):
    rng = np.random.default_rng(seed)
    cases = []
    if fixed:
        for N, f in ((100, 0.1), (1000, 0.25), (7, 0.5), (10, 0.3), (2, 0.5)):
            cases.append((f"{N} distinct ids", rng.permutation(N).astype(np.int64) + 3, f))
        cases.append(("the ids of the novel's first 5,000 characters", CharVocab(_novel()).encode(_novel()[:5000]), 0.1))
    for _ in range(n_random):
        N = int(rng.integers(2, 5000))
        cases.append((f"{N} distinct ids", rng.permutation(N).astype(np.int64), float(rng.uniform(0.05, 0.6))))
    return cases


def check_split(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                fn_name: str = "split_ids") -> None:
    """The two parts are ids, in order, with N (1 - val_fraction) ids for training (rounded either way)."""
    cases = _split_cases(seed, fixed, n_random)
    for label, ids, f in cases:
        N = len(ids)
        call = f"{fn_name}(ids, {f:.4g}) [{label}]"
        train, val = _pair(_call(fn, (ids, f), fn_name, call), call, "(train_ids, val_ids)")
        for name, part in (("train_ids", train), ("val_ids", val)):
            if not isinstance(part, np.ndarray) or part.ndim != 1:
                _fail(f"{call}: {name} should be a 1-D numpy array (a slice of ids), but it is "
                      f"{type(part).__name__}" + (f" of shape {part.shape}" if isinstance(part, np.ndarray) else "") + ".")
        if len(train) + len(val) != N:
            _fail(f"{call}: train_ids and val_ids have {len(train)} + {len(val)} = {len(train) + len(val)} ids, but "
                  f"ids has {N}: every id goes to exactly one part (no overlap, nothing dropped).")
        together = np.concatenate([train, val])
        if not np.array_equal(together, ids):
            if np.array_equal(np.concatenate([val, train]), ids):
                _fail(f"{call}: the parts are swapped: val_ids is the *beginning* of ids. The validation part is the "
                      f"last val_fraction of the text (ids[cut:]), the training part the rest (ids[:cut]).")
            if np.array_equal(np.sort(together), np.sort(ids)):
                _fail(f"{call}: the parts hold the right ids, but not as two contiguous pieces of ids in order "
                      f"(shuffled?). Split without shuffling: ids[:cut] and ids[cut:]. Windows drawn from a shuffled "
                      f"text overlap across the split, and validation would reward memorising the training text.")
            _fail(f"{call}: train_ids followed by val_ids is not ids: the parts must be ids[:cut] and ids[cut:].")
        # the reference's int(N * (1 - val_fraction)), give or take one: how to round is not the point
        if abs(len(train) - N * (1.0 - f)) >= 1.0 + 1e-9:
            msg = (f"{call}: train_ids has {len(train)} ids and val_ids {len(val)}; with N = {N} the training part "
                   f"should have int(N * (1 - val_fraction)) = {len(split_ids(ids, f)[0])} ids (rounded either way).")
            if abs(len(train) - N * f) < 1.0 + 1e-9:
                msg += " Yours has N * val_fraction: val_fraction is the share of *validation*."
            _fail(msg)
    print(f"{fn_name}: {len(cases)} splits are contiguous, complete and of the right sizes.")


# --- make_batch ------------------------------------------------------------------------------------

@dataclass
class WindowCase:
    label: str
    ids: np.ndarray
    B: int
    T: int
    seed: int
    distinct: bool           # every id appears once: a value is a position


def _window_cases(seed: int, fixed: bool, n_random: int) -> list[WindowCase]:
    rng = np.random.default_rng(seed)

    def distinct(N):
        return rng.permutation(N).astype(np.int64)

    cases = []
    if fixed:
        cases += [WindowCase("1,000 distinct ids", distinct(1000), 8, 16, seed + 1, True),
                  WindowCase("300 distinct ids, one sequence", distinct(300), 1, 30, seed + 2, True),
                  WindowCase("the novel's first 2,000 characters", CharVocab(_novel()).encode(_novel()[:2000]),
                             6, 25, seed + 3, False),
                  WindowCase("20 ids and seq_len 19: one window fits", distinct(20), 5, 19, seed + 4, True)]
    for k in range(n_random):
        T = int(rng.integers(1, 60))
        N = T + 1 + int(rng.choice([0, int(rng.integers(1, 3)), int(rng.integers(3, 2000))]))
        cases.append(WindowCase(f"{N} distinct ids", distinct(N), int(rng.choice([1, int(rng.integers(2, 40))])),
                                T, seed + 100 + k, True))
    return cases


def _batch_args(case: WindowCase, fn_name: str, rng_seed: int | None = None, B: int | None = None):
    B = case.B if B is None else B
    s = case.seed if rng_seed is None else rng_seed
    call = (f"{fn_name}(ids, batch_size={B}, seq_len={case.T}, rng=np.random.default_rng({s})) "
            f"[{case.label}, len(ids) = {len(case.ids)}]")
    return (case.ids, B, case.T, np.random.default_rng(s)), call


_LAST_START = ("the starts are 0, 1, ..., len(ids) - seq_len - 1, the last valid start included (a window is "
               "seq_len + 1 ids: the inputs and one more target); rng.integers(low, high) never draws high, so "
               "draw them with rng.integers(0, len(ids) - seq_len, size=batch_size).")


def _run_batch(fn, case: WindowCase, fn_name: str, rng_seed=None, B=None):
    args, call = _batch_args(case, fn_name, rng_seed, B)
    out = _call(fn, args, fn_name, call,
                hint="If it fails only when len(ids) = seq_len + 1 (one window fits, at start 0): " + _LAST_START)
    x, y = _pair(out, call)
    B = args[1]
    T = case.T
    for name, a in (("x", x), ("y", y)):
        if not isinstance(a, np.ndarray):
            _fail(f"{call}: {name} should be a numpy array, but it is {type(a).__name__}"
                  + (" (the data is numpy; the training loop converts it with torch.from_numpy)" if hasattr(a, "detach")
                     else "") + ".")
        if a.shape != (T, B):
            hint = ""
            if a.shape == (B, T) and B != T:
                hint = " That is batch-first: sequences are time-major in this course, x[t, b]."
            elif a.shape == (T + 1, B):
                hint = (" That is the whole window of seq_len + 1 ids: x is its first seq_len ids (window[:-1]), "
                        "y its last seq_len (window[1:]).")
            _fail(f"{call}: {name} has shape {a.shape}, but it should have shape (seq_len, batch_size) = {(T, B)}.{hint}")
        if a.dtype != np.int64:
            _fail(f"{call}: {name} has dtype {a.dtype}, but ids are int64 (index ids with integer arrays; new arrays "
                  f"need dtype=np.int64).")
    return call, x, y


def _window_problem(case: WindowCase, x: np.ndarray, y: np.ndarray) -> str | None:
    ids, T = case.ids, case.T
    if np.array_equal(x, y):
        return ("y equals x: the target at step t is the *next* character, y[t, b] = ids[s + t + 1] where x[t, b] = "
                "ids[s + t].")
    if case.distinct:
        pos = np.empty(ids.max() + 1, dtype=np.int64)
        pos[ids] = np.arange(len(ids))
        if x.min() < 0 or x.max() > ids.max() or y.min() < 0 or y.max() > ids.max():
            return "x or y holds values that are not ids of the text."
        px, py = pos[x], pos[y]
        starts = px[0]                                # where each column of x begins in the text
        if starts.max() <= len(ids) - T - 1:
            ref_x, ref_y = char_windows(ids, starts, T)   # the reference's windows at the learner's starts
            if np.array_equal(x, ref_x) and np.array_equal(y, ref_y):
                return None
        steps = np.arange(T)
        for b in range(x.shape[1]):
            s = px[0, b]
            if not np.array_equal(px[:, b], s + steps):
                return (f"column b={b} of x is not seq_len consecutive ids of the text: its ids sit at positions "
                        f"{px[:6, b].tolist()}... of ids. x[:, b] must be ids[s:s + seq_len] for a start s.")
            if not np.array_equal(py[:, b], s + 1 + steps):
                if np.array_equal(y[:, b], x[:, b] + 1):
                    return (f"y[:, {b}] = x[:, {b}] + 1: that adds one to the ids. The target is the id that comes "
                            f"next in the text, y[t, b] = ids[s + t + 1], not the next id value.")
                if np.array_equal(py[:, b], s - 1 + steps):
                    return (f"y[:, {b}] is the *previous* character of each x (ids[s + t - 1]): the target is the "
                            f"next one, ids[s + t + 1].")
                return (f"x[:, {b}] starts at position s = {s} of ids, but y[:, {b}] is at positions "
                        f"{py[:6, b].tolist()}...: y must be ids[s + 1:s + seq_len + 1], the window one step later.")
    windows = np.lib.stride_tricks.sliding_window_view(ids, T + 1)         # every window of the text
    for b in range(x.shape[1]):
        w = np.append(x[:, b], y[-1, b])
        if not np.array_equal(x[1:, b], y[:-1, b]) or not (windows == w).all(1).any():
            return (f"x[:, {b}] followed by y[-1, {b}] is not a window of seq_len + 1 consecutive ids of the text: "
                    f"x = window[:-1] and y = window[1:].")
    return None


def _start_counts(fn, case: WindowCase, B: int, fn_name: str, rng_seed: int):
    call, x, y = _run_batch(fn, case, fn_name, rng_seed=rng_seed, B=B)
    problem = _window_problem(case, x, y)
    if problem:
        _fail(f"{call}: {problem}")
    pos = np.empty(case.ids.max() + 1, dtype=np.int64)
    pos[case.ids] = np.arange(len(case.ids))
    n_starts = len(case.ids) - case.T
    return call, np.bincount(pos[x[0]], minlength=n_starts)


def _chi2_z(counts: np.ndarray, p: np.ndarray) -> float:
    """A chi-square statistic of `counts` against probabilities `p`, as a standard normal deviate.

    Bins with an expected count below 5 are merged into one; the chi-square with k - 1 degrees of freedom
    becomes a z-score by the Wilson-Hilferty cube-root transformation (good to a few percent in the tail
    used here). A category with probability 0 that was drawn makes it infinite.
    """
    n = counts.sum()
    expected = n * p
    if np.any(counts[p == 0] > 0):
        return math.inf
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    keep = exp > 0
    obs, exp = obs[keep], exp[keep]
    k = len(obs) - 1
    if k < 1:
        return 0.0
    stat = float(((obs - exp) ** 2 / exp).sum())
    return ((stat / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))


def check_make_batch(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                     fn_name: str = "make_batch") -> None:
    """Windows, shapes, dtypes, the rng, and the distribution of the starts (see the module docstring)."""
    cases = _window_cases(seed, fixed, n_random)
    for case in cases:
        call, x, y = _run_batch(fn, case, fn_name)
        problem = _window_problem(case, x, y)
        if problem:
            _fail(f"{call}: {problem}")
    big = WindowCase("5,000 distinct ids", np.random.default_rng(seed).permutation(5000).astype(np.int64), 16, 20,
                     seed + 7, True)
    _, a, _ = _run_batch(fn, big, fn_name)
    _, b, _ = _run_batch(fn, big, fn_name)
    _, c, _ = _run_batch(fn, big, fn_name, rng_seed=seed + 8)
    if not np.array_equal(a, b):
        _fail(f"{fn_name} returned different batches for two generators with the same seed: it draws from a global "
              f"random state (np.random.randint, np.random.choice, random, torch.randint ...). Draw the starts from "
              f"the rng you are given (rng.integers), so that a seed fixes the data.")
    if np.array_equal(a, c):
        _fail(f"{fn_name} returned the same batch for two different seeds: draw the starts from the rng you are given.")
    # the starts: every valid one, uniformly, the last included
    T, extra = (12, 4) if fixed else (int(np.random.default_rng(seed).integers(5, 40)), 9)
    starts_case = WindowCase(f"{T + extra} distinct ids: {extra} valid starts",
                             np.random.default_rng(seed + 9).permutation(T + extra).astype(np.int64), 0, T, seed + 9, True)
    B = 1000 * extra
    call, counts = _start_counts(fn, starts_case, B, fn_name, seed + 9)
    last = extra - 1
    if counts[last] == 0:
        _fail(f"{call}: the last valid start, len(ids) - seq_len - 1 = {last}, was never drawn in {B} windows "
              f"(expected about {B // extra}): {_LAST_START}")
    if counts[0] == 0:
        _fail(f"{call}: the start 0 was never drawn in {B} windows (expected about {B // extra}): the first window "
              f"of the text starts at 0.")
    z = _chi2_z(counts, np.full(extra, 1.0 / extra))
    if z > 5:
        _fail(f"{call}: the {extra} valid starts were drawn {counts.tolist()} times; each should have about {B // extra} "
              f"(uniform; chi-square {z:.1f} standard deviations off). Draw each start uniformly from 0 .. "
              f"len(ids) - seq_len - 1.")
    print(f"{fn_name}: {len(cases)} batches of next-character windows (B = "
          f"{', '.join(str(c.B) for c in cases[:6])}{', ...' if len(cases) > 6 else ''}); the rng decides the data; "
          f"the starts are uniform over every valid one ({counts.tolist()}).")


# ==================================================================================================
# B. Perplexity
# ==================================================================================================

def _nll_mean(logits, targets, axis=-1):
    logp = log_softmax(logits, axis=axis)
    return float(-np.take_along_axis(logp, targets[..., None], axis=-1).mean())


def _shifted(logits, targets, forward: bool):
    if logits.shape[0] < 2:
        return math.nan
    return float(token_nll(logits[:-1], targets[1:]).mean() if forward else token_nll(logits[1:], targets[:-1]).mean())


#: The cross-entropy (nats) of named mistakes: (sentence, function of (logits (T, B, V) float64, targets (T, B))).
NATS_BUGS: dict[str, tuple[str, Callable]] = {
    "sum": ("the *sum* of -log p over the positions, not the mean: the loss per character is the mean over all "
            "T * B positions.", lambda z, t: float(token_nll(z, t).sum())),
    "sum_over_time": ("the sum over time, averaged over the batch (a loss per sequence): the loss per character is "
                      "the mean over time too.", lambda z, t: float(token_nll(z, t).sum(0).mean())),
    "mean_prob": ("-log of the mean probability of the targets (the perplexity of the mean probability): the loss is "
                  "the mean of -log p, which is not -log of the mean p.",
                  lambda z, t: float(-np.log(np.exp(-token_nll(z, t)).mean()))),
    "axis_T": ("the softmax over the time axis (axis 0): the probabilities are over the V characters, the last axis.",
               lambda z, t: _nll_mean(z, t, axis=0)),
    "axis_B": ("the softmax over the batch axis (axis 1): the probabilities are over the V characters, the last axis.",
               lambda z, t: _nll_mean(z, t, axis=1)),
    "shift_forward": ("the targets shifted by one more step (logits[:-1] against targets[1:]): targets[t] is already "
                      "the character that follows the input at t, so logits[t] is scored against targets[t].",
                      lambda z, t: _shifted(z, t, True)),
    "shift_back": ("the targets shifted one step back (logits[1:] against targets[:-1]): logits[t] is scored against "
                   "targets[t].", lambda z, t: _shifted(z, t, False)),
    "no_softmax": ("-logits[target] without the softmax: logits are scores, not log-probabilities; use log_softmax.",
                   lambda z, t: float(-np.take_along_axis(z, t[..., None], axis=-1).mean())),
    "log2": ("log base 2: that is the bits per character; the nats use the natural log.",
             lambda z, t: float(token_nll(z, t).mean() / LN2)),
    "log10": ("log base 10: the nats use the natural log.", lambda z, t: float(token_nll(z, t).mean() / LN10)),
    "sign": ("the mean of +log p (the minus sign is missing): a cross-entropy is positive.",
             lambda z, t: float(-token_nll(z, t).mean())),
}

#: The bits per character of named mistakes, from the learner's own nats.
BPC_BUGS: dict[str, tuple[str, Callable]] = {
    "not_converted": ("the bits per character equal the nats: bpc = nats / ln 2.", lambda n: n),
    "times_ln2": ("the bits per character are nats * ln 2: divide by ln 2 (log2(x) = ln(x) / ln 2).",
                  lambda n: n * LN2),
    "log10": ("the bits per character are nats / ln 10: bits use log base 2, bpc = nats / ln 2.", lambda n: n / LN10),
    "times_log2e": ("the bits per character are nats * log2(e) / ln 2 (converted twice).", lambda n: n / LN2 / LN2),
}

#: The perplexity of named mistakes: (sentence, function of (learner's nats, learner's bpc, reference nll (T, B))).
PPL_BUGS: dict[str, tuple[str, Callable]] = {
    "exp_bpc": ("the perplexity is exp(bpc): it is exp(nats) = 2 ** bpc (the base of the power matches the log).",
                lambda n, b, nll: math.exp(b) if b < 700 else math.inf),
    "two_pow_nats": ("the perplexity is 2 ** nats: it is exp(nats) = 2 ** bpc.",
                     lambda n, b, nll: 2.0 ** n if n < 1000 else math.inf),
    "mean_prob": ("the perplexity is 1 / (the mean probability of the targets): it is exp(mean of -log p), the "
                  "inverse of their *geometric* mean.", lambda n, b, nll: float(1.0 / np.exp(-nll).mean())),
    "exp_sum": ("the perplexity is exp of the *sum* of -log p: it is exp of the mean.",
                lambda n, b, nll: math.exp(nll.sum()) if nll.sum() < 700 else math.inf),
    "nats": ("the perplexity equals the nats: it is exp(nats).", lambda n, b, nll: n),
    "exp_minus": ("the perplexity is exp(-nats): it is exp(+nats), at least 1.", lambda n, b, nll: math.exp(-n)),
}


@dataclass
class PPLCase:
    label: str
    logits: np.ndarray        # (T, B, V) float64 values (exactly representable in dtype)
    targets: np.ndarray       # (T, B) int64
    dtype: str

    def describe(self) -> str:
        T, B, V = self.logits.shape
        return f"{self.label}, T={T}, B={B}, V={V}, {self.dtype}"


def _ppl_cases(seed: int, fixed: bool, n_random: int) -> list[PPLCase]:
    rng = np.random.default_rng(seed)

    def case(label, T, B, V, dtype, scale=2.0, offset=0.0):
        z = (offset + scale * rng.normal(size=(T, B, V))).astype(dtype).astype(np.float64)
        return PPLCase(label, z, rng.integers(0, V, size=(T, B)), dtype)

    cases = []
    if fixed:
        cases += [case("random logits", 5, 3, 7, "float64"),
                  case("a vocabulary of 75", 8, 4, 75, "float32", scale=3.0),
                  PPLCase("uniform logits (all 0)", np.zeros((4, 2, 10)), rng.integers(0, 10, (4, 2)), "float32"),
                  case("large logits (1000 + noise)", 6, 2, 12, "float32", scale=5.0, offset=1000.0),
                  case("large negative logits (-1000 + noise)", 3, 5, 4, "float64", scale=5.0, offset=-1000.0)]
    for _ in range(n_random):
        T, B, V = int(rng.integers(2, 40)), int(rng.choice([1, int(rng.integers(2, 16))])), int(rng.integers(2, 100))
        cases.append(case("random logits", T, B, V, str(rng.choice(["float32", "float64"])),
                          scale=float(rng.choice([0.5, 3.0, 20.0])), offset=float(rng.choice([0.0, 500.0, -500.0]))))
    return cases


def _ppl_tolerance(dtype: str) -> tuple[float, float]:
    return (1e-4, 1e-5) if dtype == "float32" else (1e-6, 1e-9)


def _close(a: float, b: float, rtol: float, atol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= atol + rtol * abs(b)


def _run_perplexity(fn, case: PPLCase, fn_name: str):
    torch = _torch()
    dt = getattr(torch, case.dtype)
    logits, targets = torch.tensor(case.logits, dtype=dt), torch.from_numpy(case.targets.copy())
    call = f"{fn_name}(logits, targets) [{case.describe()}]"
    out = _call(fn, (logits, targets), fn_name, call,
                hint="logits (T, B, V) and targets (T, B) are torch tensors: F.cross_entropy wants the classes on "
                     "axis 1, so flatten them to (T * B, V) and (T * B,).")
    if not torch.equal(logits, torch.tensor(case.logits, dtype=dt)) or not torch.equal(targets, torch.from_numpy(case.targets)):
        _fail(f"{call} changed logits or targets in place (an in-place operation such as logits -= ...): build new "
              f"tensors instead.")
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        _fail(f"{call} should return three numbers (nats, bpc, perplexity), but it returned {type(out).__name__}"
              + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else f": {out!r:.60}") + ".")
    return call, tuple(_scalar(v, what, call) for v, what in zip(out, ("the nats", "the bpc", "the perplexity")))


def _matching(got: list[float], variants: dict, values: Callable, rtols: list[tuple[float, float]]) -> str | None:
    """The first variant whose value agrees with the learner's on every case (None if none does)."""
    for key, (sentence, _) in variants.items():
        vals = [values(key, i) for i in range(len(got))]
        usable = [(g, v, tol) for g, v, tol in zip(got, vals, rtols) if not math.isnan(v)]
        if usable and all(_close(g, v, tol[0] * 10, tol[1] * 10) for g, v, tol in usable):
            return sentence
    return None


def check_perplexity(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0,
                     fn_name: str = "perplexity") -> None:
    """(nats, bpc, perplexity) on random, uniform and huge logits, with the mistakes named (module docstring)."""
    cases = _ppl_cases(seed, fixed, n_random)
    results = []
    for case in cases:
        call, got = _run_perplexity(fn, case, fn_name)
        nll = token_nll(case.logits, case.targets)
        results.append((case, call, got, nll, lm_units(nll.mean())))
    tols = [_ppl_tolerance(c.dtype) for c, *_ in results]
    names = ("the cross-entropy in nats per character", "the bits per character", "the perplexity")
    keys = ("loss", "bpc", "perplexity")
    for k, (name, key) in enumerate(zip(names, keys)):
        wrong = [(i, r) for i, r in enumerate(results) if not _close(r[2][k], r[4][key], *tols[i])]
        if not wrong:
            continue
        i, (case, call, got, nll, ref) = wrong[0]
        text = (f"{fn_name} is wrong on {len(wrong)} of {len(results)} cases. The first: {call} returned {name} "
                f"{got[k]:.8g}, expected {ref[key]:.8g}")
        if k == 0:
            text += " = the mean over all T * B positions of -log softmax(logits[t, b])[targets[t, b]]."
            if not math.isfinite(got[0]) and math.isfinite(ref["loss"]):
                text += ("\nNaN or inf: exp of large logits overflows (exp(1000) = inf) or underflows to 0 (log 0 = -inf). "
                         "Use log-softmax, z - max(z) - log(sum(exp(z - max(z)))) (torch.log_softmax, "
                         "torch.logsumexp, or F.cross_entropy), which never overflows.")
            got_all = [r[2][0] for r in results]
            named = _matching(got_all, NATS_BUGS, lambda key_, j: NATS_BUGS[key_][1](results[j][0].logits,
                                                                                      results[j][0].targets), tols)
        elif k == 1:
            text += f" = nats / ln 2 (your nats are right: {got[0]:.8g})."
            got_all = [r[2][1] for r in results]
            named = _matching(got_all, BPC_BUGS, lambda key_, j: BPC_BUGS[key_][1](results[j][2][0]), tols)
        else:
            text += " = exp(nats) = 2 ** bpc (your nats and bpc are right)."
            got_all = [r[2][2] for r in results]
            named = _matching(got_all, PPL_BUGS, lambda key_, j: PPL_BUGS[key_][1](results[j][2][0], results[j][2][1],
                                                                                  results[j][3]), tols)
        if named:
            text += f"\nYour results match, on every case checked, {named}"
        _fail(text)
    print(f"{fn_name}: nats, bits per character and perplexity right on {len(cases)} cases"
          f"{' (random sizes, scales, offsets and dtypes)' if not fixed else ' (float32 and float64, logits of +-1000)'}.")


# ==================================================================================================
# C. Sampling with temperature
# ==================================================================================================

def _inverse_cdf(w: np.ndarray, u, normalise: bool = True):
    """The id inverse-CDF sampling picks for the uniform number u (a float or an array) from weights w:
    the first i with u < cdf[i], rng.choice's rule."""
    cdf = np.cumsum(w)
    if normalise:
        cdf = cdf / cdf[-1]
    return np.searchsorted(cdf, u, side="right")


def _softmax(z: np.ndarray) -> np.ndarray:
    return temperature_probs(z, 1.0)


#: Named mistakes of sample_next: (sentence, function of (logits float64 (V,), temperature > 0, u) -> id), u a
#: float or an array of them (then an array of ids).
SAMPLER_BUGS: dict[str, tuple[str, Callable]] = {
    "times_T": ("the logits are *multiplied* by the temperature: p = softmax(logits / temperature), so that a "
                "temperature below 1 sharpens the distribution.",
                lambda z, T, u: _inverse_cdf(_softmax(z * T), u)),
    "ignores_T": ("the temperature is ignored: p = softmax(logits / temperature).",
                  lambda z, T, u: _inverse_cdf(_softmax(z), u)),
    "greedy_below_1": ("every temperature below 1 is treated as greedy (argmax): only temperature 0 is greedy; "
                       "0 < temperature < 1 samples from a sharper softmax(logits / temperature).",
                       lambda z, T, u: (np.zeros(np.shape(u), dtype=np.int64) + np.argmax(z) if T < 1
                                        else _inverse_cdf(_softmax(z / T), u))),
    "pow_unnormalised": ("the temperature is applied after the softmax, p ** (1 / temperature), without normalising "
                         "again: p ** (1/T) / sum(p ** (1/T)) is right (it equals softmax(logits / T)); unnormalised, "
                         "its cumulative sum does not end at 1.",
                         lambda z, T, u: _inverse_cdf(_softmax(z) ** (1 / T), u, normalise=False)),
    "exp_unnormalised": ("the weights exp(z - max(z)) are not normalised: divide by their sum to get probabilities.",
                         lambda z, T, u: _inverse_cdf(np.exp(z / T - (z / T).max()), u, normalise=False)),
    "plus_one": ("the inverse CDF is off by one: you return the id *after* the first i with u < p_0 + ... + p_i.",
                 lambda z, T, u: _inverse_cdf(_softmax(z / T), u) + 1),
    "minus_one": ("the inverse CDF is off by one: you return the id *before* the first i with u < p_0 + ... + p_i "
                  "(e.g. the count of cdf <= u minus one, or the last i with cdf[i] <= u).",
                  lambda z, T, u: _inverse_cdf(_softmax(z / T), u) - 1),
}

_SAMPLER_HINT = ("If rng.choice says the probabilities do not sum to 1 or contain NaN: p must be softmax(logits / "
                 "temperature) over the V logits, exp(z - max(z)) / sum(exp(z - max(z))) with z = logits / temperature "
                 "and the max and the sum taken over the V characters (not exp(z) alone, not p ** (1/T) without "
                 "dividing by its sum, not a softmax over another axis; subtracting the max keeps exp from "
                 "overflowing). Temperature 0 is greedy: return the argmax without dividing by the temperature.")


@dataclass
class SampleConfig:
    label: str
    logits: np.ndarray        # (V,) float64 values, exactly representable in `kind`'s dtype
    temperature: float
    kind: str                 # "numpy" (float64) or "torch" (float32)

    def make(self):
        if self.kind == "torch":
            return _torch().tensor(self.logits, dtype=_torch().float32)
        return self.logits.copy()

    def describe(self) -> str:
        what = "numpy float64" if self.kind == "numpy" else "torch float32"
        return f"{self.label}, V={len(self.logits)}, {what}, temperature={self.temperature:g}"


FIVE = np.array([2.0, 1.0, 0.0, -1.0, 0.5])


def _random_logits(rng, V, scale, kind):
    z = scale * rng.normal(size=V)
    return z.astype(np.float32).astype(np.float64) if kind == "torch" else z


def _sample_configs(seed: int, fixed: bool, n_random: int) -> list[SampleConfig]:
    rng = np.random.default_rng(seed)
    out = []
    if fixed:
        out += [SampleConfig("five logits", FIVE, 1.0, "numpy"),
                SampleConfig("five logits", FIVE, 0.5, "numpy"),
                SampleConfig("five logits", FIVE, 2.0, "numpy"),
                SampleConfig("random logits", _random_logits(rng, 75, 2.0, "torch"), 0.8, "torch"),
                SampleConfig("large logits (1000 + ...)", 1000.0 + np.array([0.0, -1.0, -2.0, 0.5, -0.3]), 1.0, "numpy"),
                SampleConfig("a low temperature", np.array([12.0, 3.0, 11.5, -4.0]), 0.01, "numpy")]
    for _ in range(n_random):
        kind = str(rng.choice(["numpy", "torch"]))
        V = int(rng.integers(2, 100))
        out.append(SampleConfig("random logits", _random_logits(rng, V, float(rng.choice([0.5, 2.0, 5.0])), kind)
                                + float(rng.choice([0.0, 300.0])), float(rng.choice([0.3, 0.7, 1.0, 1.5, 3.0])), kind))
    return out


def _as_id(value, call: str) -> int:
    """A learner's id (int, numpy integer, 0-d or one-element integer array or tensor) as an int."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item() if value.dtype.kind in "iu" else value.reshape(())[()]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        hint = " Return int(...) of the index." if isinstance(value, (float, np.floating)) else ""
        _fail(f"{call} should return an id (an int), but it returned {type(value).__name__}: {value!r:.60}.{hint}")
    return int(value)


def _state(rng: np.random.Generator):
    return rng.bit_generator.state


def _run_sampler(fn, config: SampleConfig, rng, call: str) -> int:
    logits = config.make()
    out = _call(fn, (logits, config.temperature, rng), "sample_next", call, hint=_SAMPLER_HINT)
    if config.kind == "torch" and not _torch().equal(logits, config.make()):
        _fail(f"{call} changed logits in place (an in-place operation such as logits /= ...): build new tensors.")
    return _as_id(out, call)


def _range_problem(got: int, V: int, call: str) -> str | None:
    if 0 <= got < V:
        return None
    return (f"{call} returned {got}, which is not an id: ids are 0 .. V - 1 = {V - 1}."
            + (" The inverse CDF went past the last id: are the probabilities normalised, and is the id the first "
               "i with u < p_0 + ... + p_i?" if got >= V else " A negative id: is the inverse CDF off by one?"))


def _greedy_checks(fn, seed: int) -> int:
    rng = np.random.default_rng(seed)
    configs = [SampleConfig("four logits", np.array([0.1, 2.5, -1.0, 2.4]), 0.0, "numpy"),
               SampleConfig("random logits", _random_logits(rng, 75, 2.0, "torch"), 0.0, "torch"),
               SampleConfig("large logits", 1000.0 + np.array([0.0, 3.0, -2.0]), 0.0, "numpy")]
    for k, config in enumerate(configs):
        r = np.random.default_rng(seed + k)
        before = _state(r)
        call = f"sample_next(logits, 0, rng) [{config.describe()}]"
        got = _run_sampler(fn, config, r, call)
        problem = _range_problem(got, len(config.logits), call)
        if problem:
            _fail(problem)
        best = np.flatnonzero(config.logits == config.logits.max())
        if got not in best:
            _fail(f"{call} returned {got}: temperature 0 is greedy decoding, the argmax of the logits, here "
                  f"{int(best[0])} (logit {config.logits[best[0]]:.4g}; yours has {config.logits[got]:.4g}).")
        if _state(r) != before:
            _fail(f"{call} drew from rng: greedy decoding draws nothing, so that the rest of a sample does not "
                  f"depend on whether a greedy step came before. Return the argmax before any draw.")
    return len(configs)


def check_sample_next(fn: Callable, *, seed: int = 0, fixed: bool = True, n_random: int = 0, n_seeds: int = 25,
                      fn_name: str = "sample_next") -> None:
    """The draw, seed by seed: one u = rng.random(), the inverse CDF of softmax(logits / temperature)."""
    n_greedy = _greedy_checks(fn, seed) if fixed else 0
    configs = _sample_configs(seed, fixed, n_random)
    rows = []            # (config, u, got, ok, accepted ids, drew: "none" / "one" / "other")
    for c, config in enumerate(configs):
        eps = 2e-5 if config.kind == "torch" else 1e-9
        p = temperature_probs(config.logits, config.temperature)
        cdf = np.cumsum(p) / p.sum()
        lower = np.concatenate([[0.0], cdf[:-1]])
        for k in range(n_seeds):
            s = seed * 1000 + 100 * c + k
            rng, ref = np.random.default_rng(s), np.random.default_rng(s)
            before = _state(ref)
            u = ref.random()
            call = f"{fn_name}(logits, {config.temperature:g}, np.random.default_rng({s})) [{config.describe()}]"
            got = _run_sampler(fn, config, rng, call)
            after = _state(rng)
            drew = "one" if after == _state(ref) else ("none" if after == before else "other")
            accepted = np.flatnonzero((lower - eps <= u) & (u < cdf + eps))
            rows.append((config, u, got, got in accepted, accepted, drew, call))
    wrong = [r for r in rows if not r[3]]
    undrawn = [r for r in rows if r[5] != "one"]
    if not wrong and not undrawn:
        greedy = f"greedy at temperature 0 ({n_greedy} cases); " if n_greedy else ""
        print(f"{fn_name}: {greedy}{len(rows)} draws at {len(configs)} temperatures and logits agree with the inverse "
              f"CDF of softmax(logits / temperature) seed by seed.")
        return
    named = None
    for key, (sentence, variant) in SAMPLER_BUGS.items():
        if all(r[2] == variant(r[0].logits, r[0].temperature, r[1]) for r in rows):
            named = sentence
            break
    if wrong:
        config, u, got, _, accepted, drew, call = wrong[0]
        p = temperature_probs(config.logits, config.temperature)
        text = (f"{fn_name} picks other ids than the definition on {len(wrong)} of {len(rows)} draws. The first: {call} "
                f"returned {got}; with p = softmax(logits / temperature) and the first number of that rng, "
                f"u = {u:.6f}, the id is the first i with u < p_0 + ... + p_i: {int(accepted[0])} "
                f"(p[{int(accepted[0])}] = {p[accepted[0]]:.4g}"
                + (f", p[{got}] = {p[got]:.4g})." if 0 <= got < len(p) else ")."))
        outside = next((r for r in rows if _range_problem(r[2], len(r[0].logits), r[6])), None)
        if outside is not None:
            text += "\n" + _range_problem(outside[2], len(outside[0].logits), outside[6])
    else:
        text = f"{fn_name} returns the ids the definition gives, but does not draw from rng as defined."
    if named:
        text += f"\nYour ids match, on every draw checked, a sampler in which {named}"
    elif any(r[5] == "none" for r in rows):
        r = next(r for r in rows if r[5] == "none")
        text += (f"\n{r[6]} did not draw from the rng it was given (np.random.choice, random.random and "
                 f"torch.multinomial use a global random state): draw exactly one number from rng, e.g. "
                 f"rng.choice(V, p=p), so that a seed fixes the sample.")
    elif any(r[5] == "other" for r in rows):
        r = next(r for r in rows if r[5] == "other")
        text += (f"\n{r[6]} drew more than one number from rng (or something else than one rng.random()). This test "
                 f"checks the draw the exercise defines, one u = rng.random() and the inverse CDF, which is what "
                 f"rng.choice(V, p=p) does. (Another correct sampler, such as Gumbel-max, passes the statistical test "
                 f"but not this one.)")
    _fail(text)


def _variant_probs(variant: Callable, z: np.ndarray, T: float, grid: int = 100_000) -> np.ndarray | None:
    """The distribution of the ids a named mistake returns when u ~ U[0, 1), from `grid` evenly spaced u
    (each probability to within 1/grid); None if the mistake can return an id outside 0 .. V - 1."""
    ids = np.asarray(variant(z, T, (np.arange(grid) + 0.5) / grid))
    if ids.min() < 0 or ids.max() >= len(z):
        return None
    return np.bincount(ids, minlength=len(z)) / grid


def _stat_configs(seed: int, fixed: bool) -> list[tuple[SampleConfig, int]]:
    rng = np.random.default_rng(seed)
    six = np.array([1.5, 0.5, 0.0, -0.5, 1.0, -2.0])
    if fixed:
        return [(SampleConfig("six logits", six, 1.0, "numpy"), 3000),
                (SampleConfig("six logits", six, 0.5, "numpy"), 3000),
                (SampleConfig("six logits", six, 2.5, "numpy"), 3000),
                (SampleConfig("random logits", _random_logits(rng, 75, 2.0, "torch"), 0.7, "torch"), 3000)]
    return [(SampleConfig("large logits", 1000.0 + _random_logits(rng, 8, 1.5, "numpy"), 1.3, "numpy"), 3000),
            (SampleConfig("random logits", _random_logits(rng, 30, 2.0, "torch"), 0.4, "torch"), 3000),
            (SampleConfig("random logits", _random_logits(rng, 12, 1.0, "numpy"), 4.0, "numpy"), 3000)]


def check_sample_statistics(fn: Callable, *, seed: int = 0, fixed: bool = True, fn_name: str = "sample_next") -> None:
    """Thousands of draws against the exact probabilities: any correct sampler passes, however it uses rng.

    A chi-square test per configuration (bins with an expected count below 5 merged), failing beyond 5
    standard deviations: a correct sampler fails about once in 3 million runs, and the runs are seeded.
    """
    checked = []
    for c, (config, n) in enumerate(_stat_configs(seed, fixed)):
        rng = np.random.default_rng(seed + 31 * c)
        call = f"{fn_name}(logits, {config.temperature:g}, rng) [{config.describe()}], {n} draws from one rng"
        # a few draws under the watch that forbids the reference (it slows every call down), then the rest without
        ids = [_run_sampler(fn, config, rng, call) for _ in range(5)]
        logits = config.make()

        def many():
            return [fn(logits, config.temperature, rng) for _ in range(n - 5)]

        ids += [_as_id(v, call) for v in _call(many, (), fn_name, call, watch=False, hint=_SAMPLER_HINT)]
        ids = np.asarray(ids)
        V = len(config.logits)
        if ids.min() < 0 or ids.max() >= V:
            _fail(_range_problem(int(ids[(ids < 0) | (ids >= V)][0]), V, call))
        counts = np.bincount(ids, minlength=V)
        p = temperature_probs(config.logits, config.temperature)
        z = _chi2_z(counts, p)
        if z > 5:
            top = np.argsort(-p)[:4]
            text = (f"{call}: the draws do not follow softmax(logits / temperature) (chi-square {z:.1f} standard "
                    f"deviations off). The most likely ids {top.tolist()} should come about "
                    f"{np.round(n * p[top]).astype(int).tolist()} times; yours came {counts[top].tolist()} times.")
            if counts.max() == n:
                text += f" Every draw returned {int(ids[0])}: is it greedy at temperature {config.temperature:g}?"
            for sentence, variant in SAMPLER_BUGS.values():
                q = _variant_probs(variant, config.logits, config.temperature)
                if q is not None and _chi2_z(counts, q) < 5:
                    text += f"\nYour draws fit a sampler in which {sentence}"
                    break
            _fail(text)
        checked.append(f"T={config.temperature:g}")
    print(f"{fn_name}: the draws follow softmax(logits / temperature) at {', '.join(checked)} "
          f"(chi-square tests on {len(checked)} x 3,000 draws).")


# ==================================================================================================
# D. The short run
# ==================================================================================================

@functools.lru_cache(maxsize=1)
def _corpus() -> CharLM:
    return CharLM(seq_len=100, val_fraction=0.1)


def make_model(vocab_size: int = 75, seed: int = 0, hidden_size: int = 64):
    """The model the exercise trains: one-hot characters -> LSTM(hidden_size) -> Linear(vocab_size) at every step.

    model(x) maps x (T, B) int64 ids to logits (T, B, vocab_size), float32. The weights are torch's
    default initialisation under torch.manual_seed(seed).
    """
    torch = _torch()
    from gated_lib.nn.models import ModelConfig, SequenceModel

    torch.manual_seed(seed)
    return SequenceModel(ModelConfig(cell="lstm", vocab_size=vocab_size, hidden_size=hidden_size,
                                     output_size=vocab_size, readout="all"))


def validation_bpc(model, n_windows: int = 100) -> float:
    """Bits per character of `model` on the first `n_windows` windows of 100 characters of the novel's
    validation split (the last 10 %), the same for every call."""
    torch = _torch()
    batch = _corpus().validation_set(size=n_windows, batch_size=n_windows)[0]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(batch.x))
    model.train(was_training)
    return lm_units(token_nll(logits, batch.y).mean())["bpc"]


def _run(fn, model, steps, seed, fn_name, watch=True):
    call = f"{fn_name}(model, train_ids, steps={steps}, seed={seed})"
    hist = call_student(fn, (model, _corpus().train_ids), dict(steps=steps, seed=seed), fn_name=fn_name, case=call,
                        forbid=FORBID if watch else None, hint="Run the call in the cell above the tests to see where it fails.")
    if not isinstance(hist, dict) or "loss" not in hist:
        _fail(f"{call} should return a dict with the key 'loss' (one number per step), but it returned "
              f"{type(hist).__name__}" + (f" with the keys {sorted(hist)}" if isinstance(hist, dict) else "") + ".")
    losses = [_scalar(v, f"loss[{i}]", call) for i, v in enumerate(hist["loss"])]
    if len(losses) != steps:
        _fail(f"{call} returned {len(losses)} losses; expected one per step, {steps}.")
    if not all(map(math.isfinite, losses)):
        _fail(f"{call}: the losses contain NaN or inf: the run diverged. Check the learning rate and the clipping.")
    return call, losses


def check_short_run(fn: Callable, *, steps: int = 200, seed: int = 0, threshold: float = 3.2,
                    check_determinism: bool = False, fn_name: str = "train_char_lm") -> None:
    """The learner's loop trains make_model(seed) for `steps` steps on the novel's training split; the model's
    validation bits per character (validation_bpc) must be at most `threshold`."""
    torch = _torch()
    V = len(_corpus().vocab)
    _run(fn, make_model(V, seed), 3, seed, fn_name)
    if check_determinism:
        runs = [_run(fn, make_model(V, seed), 5, seed, fn_name)[1] for _ in range(2)]
        if runs[0] != runs[1]:
            _fail(f"{fn_name}: two runs with seed={seed} from the same model gave different losses ({runs[0][:3]} ... "
                  f"and {runs[1][:3]} ...): draw every batch from one np.random.default_rng(seed) made at the start.")
        other = _run(fn, make_model(V, seed), 5, seed + 1, fn_name)[1]
        if other == runs[0]:
            _fail(f"{fn_name}: seed={seed} and seed={seed + 1} gave the same losses: use the seed for the data.")
    model = make_model(V, seed)
    with torch.random.fork_rng():
        call, losses = _run(fn, model, steps, seed, fn_name, watch=False)
    bpc = validation_bpc(model)
    base = _corpus().baseline()
    first, last = np.mean(losses[:20]) / LN2, np.mean(losses[-20:]) / LN2
    if bpc > threshold:
        text = (f"{call}: after {steps} steps the model's validation loss is {bpc:.3f} bits per character; at most "
                f"{threshold} is needed (the unigram baseline, character frequencies alone, gets {base['bpc']:.2f}; "
                f"a uniform guess {math.log2(V):.2f}). Your training loss went from {first:.3f} to {last:.3f} bits per "
                f"character (mean of the first and last 20 steps).")
        if last < bpc - 1.0:
            text += (" Training is far better than validation: does the model see its answer? y must be the *next* "
                     "character (make_batch), and the loss compares logits[t] with y[t].")
        text += (" Check that the tests of parts A and B pass, that each step draws a new batch from one "
                 "np.random.default_rng(seed), that the loss is the mean cross-entropy of the logits (T * B, V) "
                 "against y (T * B,), that the gradients are cleared every step, and that the optimizer is "
                 "Adam(model.parameters(), lr=lr).")
        _fail(text)
    print(f"{fn_name}: after {steps} steps the validation loss is {bpc:.3f} bits per character (needed <= {threshold}; "
          f"unigram baseline {base['bpc']:.2f}); training {first:.3f} -> {last:.3f} bits per character.")
