"""The lab II checkers of gated_lib.grading: they accept every correct solution and name every mistake.

The learners' functions below are written the way a learner writes them (numpy and torch, not
gated_lib), so a passing test says something about the checker, not about the reference it uses.
The checkers' definitions are also checked against gated_lib.tasks.text, which CharLM and sample_text use.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gated_lib.grading import lab_text as grading
from gated_lib.grading.core import GradingFailure
from gated_lib.tasks.text import CharLM, CharVocab, char_windows, sample_next, split_ids

torch = pytest.importorskip("torch")
F = torch.nn.functional


def failure(check, *fns, **kwargs) -> str:
    with pytest.raises(GradingFailure) as info:
        check(*fns, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------------------------
# Learners
# ------------------------------------------------------------------------------------------------

def make_vocab(kind="ok"):
    def build_vocab(text):
        chars = list(dict.fromkeys(text)) if kind == "first_seen" else (list(text) if kind == "dups" else sorted(set(text)))
        if kind == "no_newline":
            chars = [c for c in chars if c != "\n"]
        start = 1 if kind == "from_one" else 0
        stoi = {c: i + start for i, c in enumerate(chars)}
        if kind == "reversed_ids":
            stoi = {c: len(chars) - 1 - i for i, c in enumerate(chars)}
        return chars, stoi
    return build_vocab


def make_encode(kind="ok"):
    def encode(s, stoi):
        if kind == "list":
            return [stoi[c] for c in s]
        if kind == "no_dtype":
            return np.array([stoi[c] for c in s])
        return np.array([stoi[c] for c in s], dtype=np.int64)
    return encode


def make_decode(kind="ok"):
    def decode(ids, chars):
        out = [chars[int(i)] for i in ids]
        return out if kind == "list" else "".join(out)
    return decode


def make_split(kind="ok"):
    def split(ids, val_fraction=0.1):
        N = len(ids)
        if kind == "round_val":                                   # another correct rounding
            n_val = int(round(N * val_fraction))
            return ids[:N - n_val], ids[N - n_val:]
        if kind == "swapped":
            n_val = N - int(N * (1 - val_fraction))
            return ids[n_val:], ids[:n_val]
        if kind == "fraction":
            cut = int(N * val_fraction)
            return ids[:cut], ids[cut:]
        if kind == "shuffled":
            perm = np.random.default_rng(0).permutation(N)
            cut = int(N * (1 - val_fraction))
            return ids[perm[:cut]], ids[perm[cut:]]
        if kind == "overlap":
            cut = int(N * (1 - val_fraction))
            return ids[:cut + 1], ids[cut:]
        cut = int(N * (1 - val_fraction))
        return ids[:cut], ids[cut:]
    return split


def make_windows(kind="ok"):
    def make_batch(ids, batch_size, seq_len, rng):
        N, T, B = len(ids), seq_len, batch_size
        high = N - T - 1 if kind == "last_start_missing" else N - T
        if kind == "global":
            starts = np.random.randint(0, high, size=B)
        elif kind == "loop":                                       # another correct solution
            x = np.empty((T, B), dtype=np.int64)
            y = np.empty((T, B), dtype=np.int64)
            for b in range(B):
                s = int(rng.integers(0, N - T))
                x[:, b], y[:, b] = ids[s:s + T], ids[s + 1:s + T + 1]
            return x, y
        else:
            starts = rng.integers(0, high, size=B)
        idx = starts[None, :] + np.arange(T + 1)[:, None]
        w = ids[idx]
        x, y = w[:-1], w[1:]
        if kind == "no_shift":
            y = x.copy()
        elif kind == "plus_one":
            y = x + 1
        elif kind == "batch_first":
            x, y = x.T.copy(), y.T.copy()
        elif kind == "float":
            x, y = x.astype(np.float64), y.astype(np.float64)
        elif kind == "whole_window":
            x = w
        return x, y
    return make_batch


def make_ppl(kind="ok"):
    def perplexity(logits, targets):
        V = logits.shape[-1]
        if kind == "cross_entropy":                                # another correct solution
            nats = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1)).item()
            return nats, nats / math.log(2), math.exp(nats)
        if kind == "naive":
            p = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)
            logp = torch.log(p)
        else:
            logp = torch.log_softmax(logits, dim={"axis_T": 0, "axis_B": 1}.get(kind, -1))
        t = targets
        if kind == "shift":
            logp, t = logp[:-1], targets[1:]
        nll = -logp.gather(-1, t.unsqueeze(-1)).squeeze(-1)
        nats = (nll.sum() if kind == "sum" else nll.mean()).item()
        if kind == "mean_prob":
            nats = -math.log(torch.exp(-nll).mean().item())
        if kind == "log2":
            nats = nats / math.log(2)
        bpc = nats if kind == "bpc_nats" else (nats * math.log(2) if kind == "bpc_times" else nats / math.log(2))
        ppl = math.exp(nats)
        if kind == "ppl_exp_bpc":
            ppl = math.exp(bpc)
        elif kind == "ppl_mean_prob":
            ppl = 1.0 / torch.exp(-nll).mean().item()
        return nats, bpc, ppl
    return perplexity


def make_sampler(kind="ok"):
    def sample_next(logits, temperature, rng):
        z = logits.detach().double().numpy() if hasattr(logits, "detach") else np.asarray(logits, dtype=np.float64)
        if temperature == 0 or (kind == "greedy_below_1" and temperature < 1):
            return int(np.argmax(z))
        if kind == "times_T":
            z = z * temperature
        elif kind != "ignores_T":
            z = z / temperature
        w = np.exp(z - z.max())
        p = w if kind == "unnormalised" else w / w.sum()
        if kind == "pow_after":
            q = np.exp(z * temperature - (z * temperature).max())       # back to T = 1 ...
            p = (q / q.sum()) ** (1 / temperature)                       # ... then p ** (1/T), not renormalised
        if kind == "inverse_cdf":                                        # another correct solution
            u = rng.random()
            return int(np.searchsorted(np.cumsum(p), u, side="right").clip(max=len(p) - 1))
        if kind == "inverse_cdf_loop":                                   # another, with a loop
            u, acc = rng.random(), 0.0
            for i, pi in enumerate(p):
                acc += pi
                if u < acc:
                    return i
            return len(p) - 1
        if kind == "off_by_one":
            u = rng.random()
            return int((np.cumsum(p) <= u).sum() + 1)
        if kind == "gumbel":                                             # correct in distribution, V draws
            return int(np.argmax(z + rng.gumbel(size=len(z))))
        if kind == "global":
            return int(np.random.choice(len(p), p=p))
        return int(rng.choice(len(p), p=p))
    return sample_next


# ------------------------------------------------------------------------------------------------
# A. The pipeline pieces
# ------------------------------------------------------------------------------------------------

def test_the_reference_is_what_the_checkers_ask_for(monkeypatch):
    """gated_lib.tasks.text's CharVocab, split_ids and char_windows pass: one definition."""
    monkeypatch.setattr(grading, "FORBID", None)
    grading.check_vocab(lambda t: (CharVocab(t).chars, CharVocab(t).index), lambda s, stoi: CharVocab("".join(stoi)).encode(s),
                        lambda ids, chars: CharVocab("".join(chars)).decode(ids))
    grading.check_split(split_ids)
    grading.check_make_batch(lambda ids, B, T, rng: char_windows(ids, rng.integers(0, len(ids) - T, size=B), T))


def test_correct_pieces_pass(capsys):
    grading.check_vocab(make_vocab(), make_encode(), make_decode())
    grading.check_vocab(make_vocab(), make_encode(), make_decode(), seed=3, fixed=False, n_random=10)
    for kind in ("ok", "round_val"):
        grading.check_split(make_split(kind))
        grading.check_split(make_split(kind), seed=2, fixed=False, n_random=30)
    for kind in ("ok", "loop"):
        grading.check_make_batch(make_windows(kind))
        grading.check_make_batch(make_windows(kind), seed=4, fixed=False, n_random=8)
    out = capsys.readouterr().out
    assert "right on 6 texts" in out and "contiguous, complete" in out and "uniform over every valid one" in out


@pytest.mark.parametrize("kind, phrase", [
    ("first_seen", "in the order of their first appearance"),
    ("dups", "appears 3 times"),
    ("no_newline", "missing ['\\n']"),
    ("from_one", "the ids start at 1"),
    ("reversed_ids", "stoi must invert chars"),
])
def test_vocab_mistakes_are_named(kind, phrase):
    msg = failure(grading.check_vocab, make_vocab(kind), make_encode(), make_decode())
    assert phrase in msg, msg


@pytest.mark.parametrize("encode, decode, phrase", [
    (make_encode("list"), make_decode(), "should be a numpy array of ids"),
    (make_encode("no_dtype"), make_decode(), "np.array([]) is float64: pass dtype=np.int64"),
    (make_encode(), make_decode("list"), "join them into one string"),
])
def test_encode_decode_mistakes_are_named(encode, decode, phrase):
    msg = failure(grading.check_vocab, make_vocab(), encode, decode)
    assert phrase in msg, msg


@pytest.mark.parametrize("kind, phrase", [
    ("swapped", "the parts are swapped"),
    ("fraction", "val_fraction is the share of *validation*"),
    ("shuffled", "not as two contiguous pieces"),
    ("overlap", "every id goes to exactly one part"),
])
def test_split_mistakes_are_named(kind, phrase):
    msg = failure(grading.check_split, make_split(kind))
    assert phrase in msg, msg


@pytest.mark.parametrize("kind, phrase", [
    ("no_shift", "y equals x"),
    ("plus_one", "that adds one to the ids"),
    ("batch_first", "That is batch-first"),
    ("float", "dtype float64"),
    ("whole_window", "That is the whole window"),
    ("global", "global random state"),
    ("last_start_missing", "the last valid start"),
])
def test_window_mistakes_are_named(kind, phrase):
    msg = failure(grading.check_make_batch, make_windows(kind))
    assert phrase in msg, msg


def test_the_last_start_is_caught_by_the_statistics_alone():
    """Without the one-window case, the start distribution still names the excluded last start."""
    def off_by_one(ids, batch_size, seq_len, rng):
        return char_windows(ids, rng.integers(0, len(ids) - seq_len - 1, size=batch_size), seq_len)

    grading.FORBID, saved = None, grading.FORBID
    try:
        msg = failure(grading.check_make_batch, off_by_one, fixed=False, n_random=0)
    finally:
        grading.FORBID = saved
    assert "the last valid start, len(ids) - seq_len - 1" in msg and "never drawn" in msg, msg


def test_pieces_that_call_the_reference_are_refused():
    msg = failure(grading.check_vocab, lambda t: (CharVocab(t).chars, CharVocab(t).index), make_encode(), make_decode())
    assert "gated_lib.tasks.text.CharVocab" in msg and "a reference implementation" in msg, msg
    msg = failure(grading.check_split, lambda ids, f=0.1: split_ids(ids, f))
    assert "gated_lib.tasks.text.split_ids" in msg, msg


# ------------------------------------------------------------------------------------------------
# B. Perplexity
# ------------------------------------------------------------------------------------------------

def test_reference_metrics_agree_with_the_checker():
    """CharLM.metrics (torch cross-entropy) and the checker's numpy token_nll give the same three numbers."""
    lm = CharLM(text="abcdefghij" * 30, seq_len=8)
    b = lm.sample(4, rng=0).to_torch()
    logits = torch.randn(8, 4, len(lm.vocab), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    m = lm.metrics(logits, b)
    got = make_ppl()(logits, b.y)
    assert got == pytest.approx((m["loss"], m["bpc"], m["perplexity"]), rel=1e-9)


def test_correct_perplexities_pass():
    for kind in ("ok", "cross_entropy"):
        grading.check_perplexity(make_ppl(kind))
        grading.check_perplexity(make_ppl(kind), seed=3, fixed=False, n_random=12)


@pytest.mark.parametrize("kind, phrase", [
    ("sum", "the *sum* of -log p over the positions"),
    ("mean_prob", "-log of the mean probability of the targets"),
    ("axis_T", "the softmax over the time axis"),
    ("axis_B", "the softmax over the batch axis"),
    ("shift", "the targets shifted by one more step"),
    ("log2", "log base 2: that is the bits per character"),
    ("bpc_nats", "the bits per character equal the nats"),
    ("bpc_times", "nats * ln 2"),
    ("ppl_exp_bpc", "the perplexity is exp(bpc)"),
    ("ppl_mean_prob", "1 / (the mean probability of the targets)"),
    ("naive", "Use log-softmax"),
])
def test_perplexity_mistakes_are_named(kind, phrase):
    msg = failure(grading.check_perplexity, make_ppl(kind))
    assert phrase in msg, msg


def test_perplexity_that_calls_the_task_metrics_is_refused():
    def cheat(logits, targets):
        m = CharLM(text="ab" * 100, seq_len=4).metrics(logits, type("Batch", (), {"y": targets})())
        return m["loss"], m["bpc"], m["perplexity"]

    msg = failure(grading.check_perplexity, cheat)
    assert "gated_lib.tasks.text.CharLM" in msg and "a reference implementation" in msg, msg


def test_in_place_change_of_the_logits_is_refused():
    def in_place(logits, targets):
        logits -= logits.max()
        return make_ppl()(logits, targets)

    assert "changed logits or targets in place" in failure(grading.check_perplexity, in_place)


# ------------------------------------------------------------------------------------------------
# C. Sampling
# ------------------------------------------------------------------------------------------------

def test_the_library_sampler_is_what_the_checkers_ask_for(monkeypatch):
    monkeypatch.setattr(grading, "FORBID", None)
    grading.check_sample_next(sample_next)
    grading.check_sample_statistics(sample_next)


@pytest.mark.parametrize("kind", ["ok", "inverse_cdf", "inverse_cdf_loop"])
def test_both_correct_samplers_get_both_tests(kind):
    grading.check_sample_next(make_sampler(kind))
    grading.check_sample_next(make_sampler(kind), seed=7, fixed=False, n_random=5)
    grading.check_sample_statistics(make_sampler(kind))
    grading.check_sample_statistics(make_sampler(kind), seed=8, fixed=False)


def test_a_sampler_correct_in_distribution_passes_the_statistics_only():
    grading.check_sample_statistics(make_sampler("gumbel"))
    msg = failure(grading.check_sample_next, make_sampler("gumbel"))
    assert "drew more than one number" in msg and "passes the statistical test" in msg, msg


@pytest.mark.parametrize("kind, phrase", [
    ("times_T", "the logits are *multiplied* by the temperature"),
    ("ignores_T", "the temperature is ignored"),
    ("greedy_below_1", "every temperature below 1 is treated as greedy"),
    ("off_by_one", "the inverse CDF is off by one"),
    ("global", "did not draw from the rng it was given"),
    ("unnormalised", "not p ** (1/T) without dividing by its sum"),
    ("pow_after", "not p ** (1/T) without dividing by its sum"),
])
def test_sampler_mistakes_are_named_seed_by_seed(kind, phrase):
    msg = failure(grading.check_sample_next, make_sampler(kind))
    assert phrase in msg, msg


@pytest.mark.parametrize("kind, phrase", [
    ("times_T", "the logits are *multiplied* by the temperature"),
    ("ignores_T", "the temperature is ignored"),
    ("greedy_below_1", "is it greedy at temperature 0.5"),
    ("off_by_one", "returned 6, which is not an id"),
])
def test_sampler_mistakes_are_named_by_the_statistics(kind, phrase):
    msg = failure(grading.check_sample_statistics, make_sampler(kind))
    assert phrase in msg, msg


def test_greedy_must_not_draw():
    def draws(logits, temperature, rng):
        rng.random()
        return make_sampler()(logits, temperature, rng)

    assert "greedy decoding draws nothing" in failure(grading.check_sample_next, draws)


def test_sampler_that_calls_the_library_is_refused():
    msg = failure(grading.check_sample_next, lambda z, t, rng: sample_next(z, t, rng))
    assert "gated_lib.tasks.text.sample_next" in msg and "a reference implementation" in msg, msg


def test_chi2_z_is_calibrated():
    """The statistic of exact multinomial draws is about N(0, 1); 5 is far in its tail."""
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.2, 0.15, 0.1, 0.04, 0.01])
    z = np.array([grading._chi2_z(rng.multinomial(3000, p), p) for _ in range(400)])
    assert abs(z.mean()) < 0.3 and 0.7 < z.std() < 1.3 and z.max() < 4.5
    assert grading._chi2_z(rng.multinomial(3000, p[::-1]), p) > 50
    assert grading._chi2_z(np.array([5, 0, 0]), np.array([0.0, 0.5, 0.5])) == math.inf


# ------------------------------------------------------------------------------------------------
# D. The short run
# ------------------------------------------------------------------------------------------------

def loop(zero_grad=True, shift=True, seed_data=True):
    def train_char_lm(model, train_ids, steps, batch_size=32, seq_len=32, lr=2e-2, max_norm=1.0, seed=0):
        rng = np.random.default_rng(seed if seed_data else None)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        hist = {"loss": []}
        for _ in range(steps):
            x, y = make_windows("ok" if shift else "no_shift")(train_ids, batch_size, seq_len, rng)
            logits = model(torch.from_numpy(x))
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(y).reshape(-1))
            if zero_grad:
                opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            opt.step()
            hist["loss"].append(loss.item())
        return hist
    return train_char_lm


def test_short_run_passes_and_fails_as_it_should():
    torch.set_num_threads(1)
    grading.check_short_run(loop(), steps=200, seed=0, threshold=3.2, check_determinism=True)
    msg = failure(grading.check_short_run, loop(), steps=10, seed=0)
    assert "at most 3.2 is needed" in msg and "unigram baseline" in msg, msg
    msg = failure(grading.check_short_run, loop(shift=False), steps=40, seed=0)
    assert "does the model see its answer?" in msg, msg
    msg = failure(grading.check_short_run, loop(seed_data=False), steps=5, seed=0, check_determinism=True)
    assert "different losses" in msg, msg


def test_validation_bpc_is_the_task_metric():
    model = grading.make_model(75, seed=0, hidden_size=8)
    val = CharLM(seq_len=100).validation_set(size=100, batch_size=100)[0].to_torch()
    with torch.no_grad():
        m = CharLM(seq_len=100).metrics(model(val.x), val)
    assert grading.validation_bpc(model) == pytest.approx(m["bpc"], rel=1e-5)
    assert math.log2(75) - 0.3 < m["bpc"] < math.log2(75) + 0.3          # untrained: close to a uniform guess
