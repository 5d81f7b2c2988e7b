"""Exercise 07's tests catch real bugs, accept other correct solutions and refuse the reference.

Each mutant is a solution cell with one deliberate bug (a textual edit of the solution, checked to
apply), run through the notebook's visible and hidden tests (tests/mutation.py). The exercise must
fail it, and the failure message must name the bug. The generator, the training step and the
criterion are checked independently, so one notebook run carries one mutant of each (a run costs a
kernel start and the notebook's short training run).
"""

from __future__ import annotations

import pytest

from tests.mutation import assert_diagnosed, cell_source, failing, run_mutant

pytest.importorskip("torch")

NAME = "07_lab_long_range"
BATCH = cell_source(NAME, "adding_batch")
STEP = cell_source(NAME, "train_step")
CRIT = cell_source(NAME, "fraction_correct")
SOURCES = {"adding_batch": BATCH, "train_step": STEP, "fraction_correct": CRIT}


P2 = "p2 = rng.integers(0, half - 1, size=B)           # X2: one of the other T//2 - 1 of the first T//2\n    p2 = p2 + (p2 >= p1)"
TARGET = "y = 0.5 + (values[p1, cols] + values[p2, cols]) / 4.0"
CLIP = "        if norm > max_norm:\n            for g in grads:\n                g.mul_(max_norm / norm)\n"
STEP_CALL = "    optimizer.step()\n"
RETURN_STEP = "return loss.item(), norm.item()"
ERR = "err = (pred[:, 0] - y).abs()"
RETURN_CRIT = "return (err < tol).float().mean().item()"

# Each run: {grade_id: (edits, the test cells that must fail (the first carries the phrase), phrase)}
RUNS = {
    "second marker may hit the first / clip after the step / <= for <": {
        "adding_batch": ([(P2, "p2 = rng.integers(0, half, size=B)")], ["test_adding_batch"],
                         "has 1 marker(s) equal to 1"),
        "train_step": ([(CLIP, ""), (STEP_CALL, STEP_CALL + "    with torch.no_grad():\n" + CLIP)],
                       ["test_train_step"], "clipped *after* optimizer.step()"),
        "fraction_correct": ([(RETURN_CRIT, "return (err <= tol).float().mean().item()")], ["test_fraction_correct"],
                             "|error| <= tol counts a sequence whose error is exactly tol"),
    },
    "second marker anywhere / clip by value / tolerance 0.4": {
        "adding_batch": ([("rng.integers(0, half - 1, size=B)", "rng.integers(0, T - 1, size=B)")],
                         ["test_adding_batch"], "must be among the first T//2"),
        "train_step": ([(CLIP, "        for g in grads:\n            g.clamp_(-max_norm, max_norm)\n")],
                       ["test_train_step"], "clipped by value"),
        "fraction_correct": ([("tol=0.04", "tol=0.4")], ["test_fraction_correct"], "a tolerance of 0.4"),
    },
    "no 0.5 offset / post-clip norm returned / mean error": {
        "adding_batch": ([(TARGET, "y = (values[p1, cols] + values[p2, cols]) / 4.0")], ["test_adding_batch"],
                         "the 0.5 offset is missing"),
        "train_step": ([(RETURN_STEP, "return loss.item(), min(norm.item(), max_norm)")], ["test_train_step"],
                       "the norm *after* clipping"),
        "fraction_correct": ([(RETURN_CRIT, "return float(err.mean() < tol)")], ["test_fraction_correct"],
                             "the mean error over the batch is compared with tol"),
    },
    "scale /2 / zero_grad forgotten / (B, 1) against (B,)": {
        "adding_batch": ([(TARGET, "y = 0.5 + (values[p1, cols] + values[p2, cols]) / 2.0")], ["test_adding_batch"],
                         "the scale is /2, not /4"),
        "train_step": ([("    optimizer.zero_grad()\n", "")], ["test_train_step"], "the gradients are never cleared"),
        "fraction_correct": ([(ERR, "err = (pred - y).abs()")], ["test_fraction_correct"],
                             "broadcasting makes a (B, B) table"),
    },
    "a single marker / loss broadcasts / percentage": {
        "adding_batch": ([("    markers[p2, cols] = 1.0\n", "")], ["test_adding_batch"], "has 1 marker(s) equal to 1"),
        "train_step": ([("((pred[:, 0] - y) ** 2).mean()", "((pred - y) ** 2).mean()")], ["test_train_step"],
                       "broadcasting makes a (B, B) matrix"),
        "fraction_correct": ([(RETURN_CRIT, "return 100 * (err < tol).float().mean().item()")],
                             ["test_fraction_correct"], "a percentage is returned"),
    },
    "first-pair rule missing / always rescaled / no absolute value": {
        "adding_batch": ([("    values[0, markers[0] == 1.0] = 0.0               # a marked first pair has value 0\n", "")],
                         ["test_adding_batch"], "sets a marked first pair's value to 0"),
        "train_step": ([("if norm > max_norm:", "if True:")], ["test_train_step"], "even when its norm is below max_norm"),
        "fraction_correct": ([(ERR, "err = pred[:, 0] - y")], ["test_fraction_correct"],
                             "the error is not taken in absolute value"),
    },
    "global random state / squared error": {
        "adding_batch": ([("rng.uniform(-1.0, 1.0", "np.random.uniform(-1.0, 1.0")], ["test_adding_batch"],
                         "global random state"),
        "fraction_correct": ([(RETURN_CRIT, "return (err ** 2 < tol).float().mean().item()")], ["test_fraction_correct"],
                             "the squared error is compared with tol"),
    },
    "X1 among the first nine pairs (only the statistics see it) / no clipping": {
        "adding_batch": ([("p1 = rng.integers(0, 10, size=B)", "p1 = rng.integers(0, 9, size=B)")],
                         ["test_adding_statistics"], "pair t=9 is marked in"),
        "train_step": ([(CLIP, "")], ["test_train_step"], "the gradient is not clipped at all"),
    },
}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_mutants_fail_with_a_diagnosis(run, tmp_path):
    spec = RUNS[run]
    fails = assert_diagnosed(NAME, SOURCES, run, spec, tmp_path)
    # a bug in the criterion or the step never costs the generator's points, and vice versa
    if "adding_batch" not in spec:
        assert not {"test_adding_batch", "test_adding_statistics"} & set(fails), fails
    if "fraction_correct" not in spec:
        assert "test_fraction_correct" not in fails, fails


ALTERNATIVES = {
    "adding_batch": '''def adding_batch(batch_size, T, rng):
    # Another correct solution: one sequence at a time, the second position by rng.choice among the others.
    x = np.zeros((T, batch_size, 2), dtype=np.float32)
    y = np.empty(batch_size, dtype=np.float32)
    for b in range(batch_size):
        v = rng.uniform(-1, 1, T)
        i = int(rng.integers(10))
        j = int(rng.choice([t for t in range(T // 2) if t != i]))
        m = np.zeros(T)
        m[[0, -1]] = -1
        m[[i, j]] = 1
        if m[0] == 1:
            v[0] = 0.0
        x[:, b, 0], x[:, b, 1] = v, m
        y[b] = 0.5 + (v[i] + v[j]) / 4
    return x, y
''',
    "train_step": '''def train_step(model, optimizer, x, y, max_norm):
    # Another correct solution: torch's loss and clipping, gradients cleared after the step, tensors returned.
    loss = torch.nn.functional.mse_loss(model(x).squeeze(-1), y)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    optimizer.zero_grad()
    return loss.detach(), norm
''',
    "fraction_correct": '''def fraction_correct(pred, y, tol=0.04):
    # Another correct solution: numpy.
    e = np.abs(pred.detach().numpy()[:, 0] - y.numpy())
    return float(np.mean(e < tol))
''',
}


def test_alternative_correct_solutions_get_every_test(tmp_path):
    outcomes = run_mutant(NAME, ALTERNATIVES, tmp_path)
    assert outcomes and not failing(outcomes), f"a correct alternative solution fails: {failing(outcomes)}"


CALLS_REFERENCE = {
    "adding_batch": '''def adding_batch(batch_size, T, rng):
    from gated_lib.tasks import adding_problem
    x, y, _ = adding_problem(batch_size, T, rng, variable_length=False)
    return x, y
''',
    "train_step": '''def train_step(model, optimizer, x, y, max_norm):
    from gated_lib.training import clip_grad_norm
    optimizer.zero_grad()
    loss = ((model(x)[:, 0] - y) ** 2).mean()
    loss.backward()
    norm = clip_grad_norm(list(model.parameters()), max_norm)
    optimizer.step()
    return loss.item(), norm
''',
    "fraction_correct": '''def fraction_correct(pred, y, tol=0.04):
    from gated_lib.tasks import AddingProblem
    return AddingProblem().metrics(pred, type("B", (), {"y": y})())["fraction_correct"]
''',
}


def test_calling_the_reference_fails_and_says_so(tmp_path):
    fails = failing(run_mutant(NAME, CALLS_REFERENCE, tmp_path))
    for test, called in [("test_adding_batch", "gated_lib.tasks.memory.adding_problem"),
                         ("test_train_step", "gated_lib.training.clip.clip_grad_norm"),
                         ("test_fraction_correct", "gated_lib.tasks.memory.AddingProblem")]:
        assert test in fails, f"{test} passes a function that calls the reference"
        assert called in fails[test] and "a reference implementation" in fails[test], fails[test][:600]
