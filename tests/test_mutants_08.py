"""Exercise 08's tests catch real bugs, accept other correct solutions and refuse the reference.

Each mutant is a solution cell with one deliberate bug (a textual edit of the solution, checked to
apply), run through the notebook's visible and hidden tests (tests/mutation.py). The exercise must
fail it, and the failure message must name the bug. The vocabulary, the split, the windows, the
perplexity and the sampler are checked independently, so one notebook run carries one mutant of each
(a run costs a kernel start and the notebook's short training runs).
"""

from __future__ import annotations

import pytest

from tests.mutation import assert_diagnosed, cell_source, failing, run_mutant

pytest.importorskip("torch")

NAME = "08_lab_text"
CELLS = ("vocab", "split_ids", "make_batch", "perplexity", "sample_next", "train_char_lm")
SOURCES = {gid: cell_source(NAME, gid) for gid in CELLS}


STOI = "stoi = {ch: i for i, ch in enumerate(chars)}"
CUT = "cut = int(len(ids) * (1 - val_fraction))"
SPLIT_RETURN = "return ids[:cut], ids[cut:]"
STARTS = "rng.integers(0, len(ids) - seq_len, size=batch_size)"
WINDOWS = "return window[:-1], window[1:]"
NATS = "nats = nll.mean().item()"
UNITS = "return nats, nats / math.log(2), math.exp(nats)"
NLL = "nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)"
SCALE = "    z = z / temperature\n"
DRAW = "return int(rng.choice(len(p), p=p / p.sum()))"

# Each run: {grade_id: (edits, the test cells that must fail (the first carries the phrase), phrase)}.
# The short run trains with the notebook's make_batch: a run with a train_char_lm mutant has no make_batch mutant.
RUNS = {
    "unsorted vocabulary / swapped split / y = x / sum of -log p / temperature multiplied": {
        "vocab": ([("chars = sorted(set(text))", "chars = list(dict.fromkeys(text))")], ["test_vocab"],
                  "not in sorted order (in the order of their first appearance"),
        "split_ids": ([(SPLIT_RETURN, "return ids[cut:], ids[:cut]")], ["test_split"], "the parts are swapped"),
        "make_batch": ([(WINDOWS, "return window[:-1], window[:-1]")], ["test_make_batch"], "y equals x"),
        "perplexity": ([(NATS, "nats = nll.sum().item()")], ["test_perplexity"], "the *sum* of -log p"),
        "sample_next": ([(SCALE, "    z = z * temperature\n")], ["test_sample_next", "test_sample_statistics"],
                        "the logits are *multiplied* by the temperature"),
    },
    "ids from 1 / val_fraction for training / last start never drawn / exp(bpc) / p ** (1/T) unnormalised": {
        "vocab": ([(STOI, "stoi = {ch: i + 1 for i, ch in enumerate(chars)}")], ["test_vocab"], "the ids start at 1"),
        "split_ids": ([(CUT, "cut = int(len(ids) * val_fraction)")], ["test_split"],
                      "val_fraction is the share of *validation*"),
        "make_batch": ([(STARTS, "rng.integers(0, len(ids) - seq_len - 1, size=batch_size)")], ["test_make_batch"],
                       "the last valid start included"),
        "perplexity": ([(UNITS, "return nats, nats / math.log(2), math.exp(nats / math.log(2))")], ["test_perplexity"],
                       "the perplexity is exp(bpc)"),
        "sample_next": ([(SCALE + "    p = np.exp(z - z.max())",
                          "    p = np.exp(z - z.max())\n    p = (p / p.sum()) ** (1 / temperature)"),
                         (DRAW, "return int(rng.choice(len(p), p=p))")],
                        ["test_sample_next", "test_sample_statistics"], "not p ** (1/T) without dividing by its sum"),
    },
    "encode without dtype / shuffled split / batch-first / mean probability / greedy below 1": {
        "vocab": ([("np.array([stoi[ch] for ch in s], dtype=np.int64)", "np.array([stoi[ch] for ch in s])")],
                  ["test_vocab"], "np.array([]) is float64: pass dtype=np.int64"),
        "split_ids": ([(CUT, "ids = ids[np.random.default_rng(0).permutation(len(ids))]\n    " + CUT)], ["test_split"],
                      "not as two contiguous pieces"),
        "make_batch": ([(WINDOWS, "return window[:-1].T, window[1:].T")], ["test_make_batch"], "That is batch-first"),
        "perplexity": ([(NATS, "nats = -math.log(torch.exp(-nll).mean().item())")], ["test_perplexity"],
                       "-log of the mean probability of the targets"),
        "sample_next": ([("if temperature == 0:", "if temperature < 1:")], ["test_sample_next", "test_sample_statistics"],
                        "every temperature below 1 is treated as greedy"),
    },
    "decode returns a list / overlapping split / global random state / softmax over time / unnormalised": {
        "vocab": ([('return "".join(chars[int(i)] for i in ids)', "return [chars[int(i)] for i in ids]")],
                  ["test_vocab"], "join them into one string"),
        "split_ids": ([(SPLIT_RETURN, "return ids[:cut + 1], ids[cut:]")], ["test_split"],
                      "every id goes to exactly one part"),
        "make_batch": ([(STARTS, "np.random.randint(0, len(ids) - seq_len, size=batch_size)")], ["test_make_batch"],
                       "global random state"),
        "perplexity": ([("torch.log_softmax(logits, dim=-1)", "torch.log_softmax(logits, dim=0)")], ["test_perplexity"],
                       "the softmax over the time axis"),
        "sample_next": ([(DRAW, "return int(rng.choice(len(p), p=p))")], ["test_sample_next", "test_sample_statistics"],
                        "not exp(z) alone"),
    },
    "y = x + 1 / targets off by one / inverse CDF off by one": {
        "make_batch": ([(WINDOWS, "return window[:-1], window[:-1] + 1")], ["test_make_batch"],
                       "that adds one to the ids"),
        "perplexity": ([(NLL, "nll = -logp[:-1].gather(-1, targets[1:].unsqueeze(-1)).squeeze(-1)")],
                       ["test_perplexity"], "the targets shifted by one more step"),
        "sample_next": ([(DRAW, "u = rng.random()\n    return int((np.cumsum(p / p.sum()) <= u).sum() + 1)")],
                        ["test_sample_next"], "the inverse CDF is off by one"),
    },
    "log base 2 for the nats / softmax over another axis in the sampler / the input as target": {
        "perplexity": ([(NATS, "nats = nll.mean().item() / math.log(2)")], ["test_perplexity"],
                       "log base 2: that is the bits per character"),
        "sample_next": ([(SCALE + "    p = np.exp(z - z.max())",
                          "    z = (z / temperature)[None, :]                      # a (1, V) row\n"
                          "    p = np.exp(z - z.max(axis=0, keepdims=True))\n"
                          "    p = (p / p.sum(axis=0, keepdims=True))[0]"),
                         (DRAW, "return int(rng.choice(len(p), p=p))")], ["test_sample_next"],
                        "not a softmax over another axis"),
        "train_char_lm": ([("torch.from_numpy(y).reshape(-1)", "torch.from_numpy(x).reshape(-1)")], ["test_short_run"],
                          "does the model see its answer?"),
    },
    "bits as nats times ln 2 / gradients never cleared": {
        "perplexity": ([(UNITS, "return nats, nats * math.log(2), math.exp(nats)")], ["test_perplexity"],
                       "the bits per character are nats * ln 2"),
        "train_char_lm": ([("        optimizer.zero_grad()\n", "")], ["test_short_run"], "at most 3.2 is needed"),
    },
}

INDEPENDENT = {"vocab": {"test_vocab"}, "split_ids": {"test_split"}, "perplexity": {"test_perplexity"},
               "sample_next": {"test_sample_next", "test_sample_statistics"}}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_mutants_fail_with_a_diagnosis(run, tmp_path):
    spec = RUNS[run]
    fails = assert_diagnosed(NAME, SOURCES, run, spec, tmp_path)
    # a bug in one piece never costs another piece's points (the short run uses make_batch, so it may fail with it)
    for gid, tests in INDEPENDENT.items():
        if gid not in spec:
            assert not tests & set(fails), f"{run}: {sorted(tests & set(fails))} fail without a bug in {gid}: {fails}"


ALTERNATIVES = {
    "vocab": '''def build_vocab(text):
    # Another correct solution: chars as one string, ids by position in a loop, encode with fromiter.
    chars = ""
    for ch in sorted(text):
        if not chars or chars[-1] != ch:
            chars += ch
    return chars, dict(zip(chars, range(len(chars))))


def encode(s, stoi):
    return np.fromiter((stoi[ch] for ch in s), dtype=np.int64, count=len(s))


def decode(ids, chars):
    out = ""
    for i in list(ids):
        out += chars[i]
    return out
''',
    "split_ids": '''def split_ids(ids, val_fraction=0.1):
    # Another correct solution: the validation size rounded to the nearest id.
    n_val = round(len(ids) * val_fraction)
    return ids[:len(ids) - n_val], ids[len(ids) - n_val:]
''',
    "make_batch": '''def make_batch(ids, batch_size, seq_len, rng):
    # Another correct solution: one window at a time.
    xs, ys = [], []
    for _ in range(batch_size):
        s = int(rng.integers(len(ids) - seq_len))
        xs.append(ids[s:s + seq_len])
        ys.append(ids[s + 1:s + seq_len + 1])
    return np.stack(xs, axis=1).astype(np.int64), np.stack(ys, axis=1).astype(np.int64)
''',
    "perplexity": '''def perplexity(logits, targets):
    # Another correct solution: torch's cross-entropy on the flattened positions; tensors returned.
    nats = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    return nats, nats / math.log(2), torch.exp(nats)
''',
    "sample_next": '''def sample_next(logits, temperature, rng):
    # Another correct solution: torch's softmax and the inverse CDF written out with one rng.random().
    z = torch.as_tensor(logits, dtype=torch.float64)
    if temperature == 0:
        return int(z.argmax())
    cdf = np.cumsum(torch.softmax(z / temperature, dim=0).numpy())
    u = rng.random()
    return int(min(np.searchsorted(cdf, u, side="right"), len(cdf) - 1))
''',
    "train_char_lm": '''def train_char_lm(model, train_ids, steps, batch_size=32, seq_len=32, lr=2e-2, max_norm=1.0, seed=0):
    # Another correct solution: log-softmax by hand, gradients cleared after the step.
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        x, y = make_batch(train_ids, batch_size, seq_len, rng)
        logp = torch.log_softmax(model(torch.from_numpy(x)), dim=-1)
        loss = -logp.gather(-1, torch.from_numpy(y)[..., None]).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss))
    return {"loss": losses}
''',
}


def test_alternative_correct_solutions_get_every_test(tmp_path):
    outcomes = run_mutant(NAME, ALTERNATIVES, tmp_path)
    assert outcomes and not failing(outcomes), f"a correct alternative solution fails: {failing(outcomes)}"


CALLS_REFERENCE = {
    "vocab": SOURCES["vocab"].replace("chars = sorted(set(text))\n    stoi = {ch: i for i, ch in enumerate(chars)}\n"
                                      "    return chars, stoi",
                                      "vocab = CharVocab(text)\n    return vocab.chars, vocab.index"),
    "split_ids": '''def split_ids(ids, val_fraction=0.1):
    from gated_lib.tasks import text
    return text.split_ids(ids, val_fraction)
''',
    "make_batch": '''def make_batch(ids, batch_size, seq_len, rng):
    from gated_lib.tasks.text import char_windows
    return char_windows(ids, rng.integers(0, len(ids) - seq_len, size=batch_size), seq_len)
''',
    "perplexity": '''def perplexity(logits, targets):
    from gated_lib.tasks import CharLM
    m = CharLM().metrics(logits, type("Batch", (), {"y": targets})())
    return m["loss"], m["bpc"], m["perplexity"]
''',
    "sample_next": '''def sample_next(logits, temperature, rng):
    from gated_lib.tasks import text
    return text.sample_next(logits, temperature, rng)
''',
    "train_char_lm": SOURCES["train_char_lm"].replace(
        "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)",
        "__import__('gated_lib.training', fromlist=['clip_grad_norm']).clip_grad_norm(list(model.parameters()), max_norm)"),
}


def test_calling_the_reference_fails_and_says_so(tmp_path):
    assert CALLS_REFERENCE["vocab"] != SOURCES["vocab"] and CALLS_REFERENCE["train_char_lm"] != SOURCES["train_char_lm"]
    fails = failing(run_mutant(NAME, CALLS_REFERENCE, tmp_path))
    for test, called in [("test_vocab", "gated_lib.tasks.text.CharVocab"),
                         ("test_split", "gated_lib.tasks.text.split_ids"),
                         ("test_make_batch", "gated_lib.tasks.text.char_windows"),
                         ("test_perplexity", "gated_lib.tasks.text.CharLM"),
                         ("test_sample_next", "gated_lib.tasks.text.sample_next"),
                         ("test_sample_statistics", "gated_lib.tasks.text.sample_next"),
                         ("test_short_run", "gated_lib.training.clip.clip_grad_norm")]:
        assert test in fails, f"{test} passes a function that calls the reference"
        assert called in fails[test] and "a reference implementation" in fails[test], fails[test][:600]
