"""Long-range memory tasks: the adding problem, temporal order (Hochreiter & Schmidhuber 1997) and
the copy task (Arjovsky, Shah & Bengio 2016). Each comes as a numpy generator function (for the
exercises and the figures) and as a Task (for the training loop), with its memoryless baseline.
"""

from __future__ import annotations

import math

import numpy as np

from gated_lib.errors import GatedLibError
from gated_lib.tasks.base import Batch, Task, as_generator, check_batch_size


def _check_int(name, v, low):
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
        raise GatedLibError(f"{name}: expected an int >= {low}, got {v!r}")
    return int(v)


# --- the adding problem --------------------------------------------------------------------------

def adding_problem(batch_size: int, T: int = 100, rng=None, variable_length: bool = True,
                   zero_first: bool = True):
    """The adding problem exactly as Hochreiter & Schmidhuber (1997, Experiment 4) define it.

    Each step is a pair (value, marker). Values are U[-1, 1]. Exactly two pairs are marked with
    marker 1: one chosen uniformly among the first ten pairs (its value is X1), one among the first
    T/2 - 1 still unmarked pairs (X2). The first and the last pair carry marker -1 (unless marked),
    every other pair 0. The target, given at the sequence end only, is 0.5 + (X1 + X2) / 4.
    Lengths are uniform in [T, T + T/10] (variable_length=True); shorter sequences are padded after
    their end with (0, 0) pairs, and `lengths` tells where each ends.
    "In the rare case where the first pair of the sequence gets marked, we set X1 to zero": with
    zero_first=True the value of a marked first pair is set to 0, whichever marker lands there
    (the first pair is marked with probability 1/10 + (9/10) / (T/2 - 1)).

    Returns x (T_max, B, 2) float32, y (B,) float32, lengths (B,) int64.
    """
    B = check_batch_size(batch_size)
    T = _check_int("T", T, 4)
    rng = as_generator(rng)
    half = T // 2                                   # X2 among the first T/2 positions, minus X1's
    if variable_length:
        lengths = rng.integers(T, T + T // 10 + 1, size=B)
    else:
        lengths = np.full(B, T)
    T_max = int(lengths.max())
    cols = np.arange(B)
    values = rng.uniform(-1.0, 1.0, size=(T_max, B))
    p1 = rng.integers(0, min(10, half), size=B)
    p2 = rng.integers(0, half - 1, size=B)
    p2 = p2 + (p2 >= p1)                            # uniform over [0, half) without p1
    markers = np.zeros((T_max, B))
    markers[0] = -1.0
    markers[lengths - 1, cols] = -1.0
    markers[p1, cols] = 1.0
    markers[p2, cols] = 1.0
    if zero_first:
        values[0, (p1 == 0) | (p2 == 0)] = 0.0
    values[np.arange(T_max)[:, None] >= lengths[None, :]] = 0.0    # padding after the end
    y = 0.5 + (values[p1, cols] + values[p2, cols]) / 4.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    return x, y.astype(np.float32), lengths.astype(np.int64)


def adding_target_moments(T: int = 100, zero_first: bool = True) -> tuple[float, float]:
    """Exact mean and variance of the adding problem's target 0.5 + (X1 + X2)/4.

    With X1, X2 iid U[-1, 1] (zero_first=False): mean 0.5, variance 2 (1/3) / 16 = 1/24.
    With the paper's rule a marked first pair has value 0: X1 is zeroed with probability 1/10 and
    X2 with probability (9/10) / (T/2 - 1), so Var = ((1 - q1) + (1 - q2)) / 48.
    The variance is also the MSE of the memoryless baseline that always predicts 0.5.
    """
    if not zero_first:
        return 0.5, 1.0 / 24.0
    half = T // 2
    q1 = 1.0 / min(10, half)
    q2 = (1.0 - q1) / (half - 1)
    return 0.5, ((1.0 - q1) + (1.0 - q2)) / 48.0


class AddingProblem(Task):
    """The adding problem as a Task: MSE loss, correct if |error| < 0.04 (H&S 1997)."""

    name = "adding"
    readout = "last"
    input_size = 2
    output_size = 1
    success_metric = "fraction_correct"
    tolerance = 0.04
    # The 1997 cell had no forget gate (f = 1). A forget bias of 5 starts the LSTM close to it
    # (sigma(5) = 0.993, so 0.993^100 = 0.5 of c survives T = 100 steps); with 1 the memory and its
    # gradient decay as 0.73^t and the run sits on the baseline plateau for many more steps.
    default_model = dict(hidden_size=32, forget_bias=5.0)

    def __init__(self, T: int = 100, variable_length: bool = True, zero_first: bool = True,
                 success_fraction: float = 0.95):
        self.T = _check_int("T", T, 4)
        self.variable_length, self.zero_first = variable_length, zero_first
        self.success_threshold = float(success_fraction)

    def sample(self, batch_size, rng=None) -> Batch:
        x, y, lengths = adding_problem(batch_size, self.T, rng, self.variable_length, self.zero_first)
        return Batch(x, y, lengths)

    def loss(self, pred, batch):
        import torch.nn.functional as F
        return F.mse_loss(pred[:, 0], batch.y)

    def metrics(self, pred, batch) -> dict:
        err = (pred[:, 0] - batch.y).abs()
        return {"loss": float((err ** 2).mean()), "mse": float((err ** 2).mean()),
                "fraction_correct": float((err < self.tolerance).float().mean())}

    def baseline(self) -> dict:
        """Predicting 0.5 always: MSE = Var(target); fraction correct = P(|X1 + X2| < 0.16)."""
        _, var = adding_target_moments(self.T, self.zero_first)
        a = 4 * self.tolerance
        p_iid = a - a * a / 4                               # |X1 + X2| < a, X1 + X2 triangular on [-2, 2]
        if self.zero_first:
            half = self.T // 2
            q1 = 1.0 / min(10, half)
            q2 = (1.0 - q1) / (half - 1)
            p_one = a                                       # |U| < a for one U[-1, 1]
            frac = (1 - q1 - q2) * p_iid + (q1 + q2) * p_one
        else:
            frac = p_iid
        return {"predict": 0.5, "mse": var, "loss": var, "fraction_correct": frac}

    def describe(self) -> dict:
        return {"name": self.name, "T": self.T, "variable_length": self.variable_length,
                "zero_first": self.zero_first, "success_fraction": self.success_threshold}


# --- temporal order (task 6a) --------------------------------------------------------------------

TEMPORAL_ORDER_SYMBOLS = ("a", "b", "c", "d", "E", "B", "X", "Y")
TEMPORAL_ORDER_CLASSES = ("Q", "R", "S", "U")       # (X, X), (X, Y), (Y, X), (Y, Y)


def temporal_order(batch_size: int, rng=None, min_length: int = 100, max_length: int = 110,
                   t1_range=(10, 20), t2_range=(50, 60)):
    """Temporal order, Hochreiter & Schmidhuber (1997), Experiment 6a ("two relevant, widely
    separated symbols").

    A sequence starts with E, ends with the trigger B, and otherwise holds random distractors from
    {a, b, c, d}, except at positions t1 in [10, 20] and t2 in [50, 60] (1-based, E is position 1),
    which hold X or Y. The class is the temporal order: X,X -> Q; X,Y -> R; Y,X -> S; Y,Y -> U.
    Lengths are uniform in [100, 110]; padding after the end repeats symbol 'a' (never read).

    Returns tokens (T_max, B) int64 (indices into TEMPORAL_ORDER_SYMBOLS), y (B,) int64 (indices into
    TEMPORAL_ORDER_CLASSES), lengths (B,) int64.
    """
    B = check_batch_size(batch_size)
    rng = as_generator(rng)
    if not (2 <= t1_range[0] <= t1_range[1] < t2_range[0] <= t2_range[1] < min_length <= max_length):
        raise GatedLibError(f"temporal_order: expected 2 <= t1 < t2 < min_length <= max_length, got "
                            f"t1_range={t1_range}, t2_range={t2_range}, lengths [{min_length}, {max_length}]")
    lengths = rng.integers(min_length, max_length + 1, size=B)
    T_max = int(lengths.max())
    cols = np.arange(B)
    tokens = rng.integers(0, 4, size=(T_max, B))
    tokens[0] = 4                                                 # E
    tokens[lengths - 1, cols] = 5                                 # B, the trigger
    i1 = rng.integers(t1_range[0], t1_range[1] + 1, size=B) - 1   # 1-based in the paper
    i2 = rng.integers(t2_range[0], t2_range[1] + 1, size=B) - 1
    s1 = rng.integers(0, 2, size=B)                               # 0: X, 1: Y
    s2 = rng.integers(0, 2, size=B)
    tokens[i1, cols] = 6 + s1
    tokens[i2, cols] = 6 + s2
    tokens[np.arange(T_max)[:, None] >= lengths[None, :]] = 0
    return tokens.astype(np.int64), (2 * s1 + s2).astype(np.int64), lengths.astype(np.int64)


class TemporalOrder(Task):
    """Temporal order as a Task: softmax over the 4 classes, trained with cross-entropy.

    Correct (H&S 1997) if every output's absolute error is below 0.3, the outputs being the class
    probabilities and the target one-hot: i.e. p(true class) > 0.7.
    """

    name = "temporal_order"
    readout = "last"
    vocab_size = len(TEMPORAL_ORDER_SYMBOLS)
    output_size = len(TEMPORAL_ORDER_CLASSES)
    success_metric = "fraction_correct"
    tolerance = 0.3
    default_model = dict(hidden_size=32, forget_bias=5.0)      # see AddingProblem

    def __init__(self, min_length: int = 100, max_length: int = 110, t1_range=(10, 20), t2_range=(50, 60),
                 success_fraction: float = 0.95):
        self.min_length, self.max_length = min_length, max_length
        self.t1_range, self.t2_range = tuple(t1_range), tuple(t2_range)
        self.success_threshold = float(success_fraction)
        temporal_order(1, 0, min_length, max_length, self.t1_range, self.t2_range)   # validates

    def sample(self, batch_size, rng=None) -> Batch:
        return Batch(*temporal_order(batch_size, rng, self.min_length, self.max_length, self.t1_range, self.t2_range))

    def loss(self, pred, batch):
        import torch.nn.functional as F
        return F.cross_entropy(pred, batch.y)

    def metrics(self, pred, batch) -> dict:
        import torch.nn.functional as F
        p = pred.softmax(-1)
        target = F.one_hot(batch.y, self.output_size).to(p.dtype)
        correct = ((p - target).abs().max(-1).values < self.tolerance)
        return {"loss": float(F.cross_entropy(pred, batch.y)),
                "accuracy": float((pred.argmax(-1) == batch.y).float().mean()),
                "fraction_correct": float(correct.float().mean())}

    def baseline(self) -> dict:
        """Memoryless: uniform over the 4 classes (the last symbols carry no information)."""
        return {"loss": math.log(4), "accuracy": 0.25, "fraction_correct": 0.0}

    def describe(self) -> dict:
        return {"name": self.name, "min_length": self.min_length, "max_length": self.max_length,
                "t1_range": self.t1_range, "t2_range": self.t2_range, "success_fraction": self.success_threshold}


# --- the copy task -------------------------------------------------------------------------------

def copy_task(batch_size: int, T: int = 100, rng=None, S: int = 10, K: int = 8):
    """The copy (memory) task in the formulation of Arjovsky, Shah & Bengio (2016), after
    Hochreiter & Schmidhuber (1997).

    Tokens: 0 blank, 1..K data symbols, K + 1 the delimiter. The input is S data symbols drawn
    uniformly, T - 1 blanks, the delimiter, then S blanks (length T + 2S); the target is T + S blanks,
    then the S data symbols. T is the delay between the end of the data and the delimiter + 1.

    Returns x (T + 2S, B) int64, y (T + 2S, B) int64 (classes 0..K).
    """
    B = check_batch_size(batch_size)
    T = _check_int("T", T, 1)
    S = _check_int("S", S, 1)
    K = _check_int("K", K, 2)
    rng = as_generator(rng)
    data = rng.integers(1, K + 1, size=(S, B))
    x = np.zeros((T + 2 * S, B), dtype=np.int64)
    y = np.zeros((T + 2 * S, B), dtype=np.int64)
    x[:S] = data
    x[S + T - 1] = K + 1
    y[T + S:] = data
    return x, y


def copy_baseline_loss(T: int, S: int = 10, K: int = 8) -> float:
    """Cross-entropy (nats per step) of the memoryless strategy: blank for the first T + S steps,
    uniform over the K symbols for the last S: S log K / (T + 2S)."""
    return S * math.log(K) / (T + 2 * S)


class CopyTask(Task):
    """The copy task as a Task: cross-entropy at every step (readout "all")."""

    name = "copy"
    readout = "all"
    success_metric = "accuracy"
    default_model = dict(hidden_size=64)

    def __init__(self, T: int = 100, S: int = 10, K: int = 8, success_accuracy: float = 0.99):
        self.T, self.S, self.K = _check_int("T", T, 1), _check_int("S", S, 1), _check_int("K", K, 2)
        self.vocab_size = K + 2
        self.output_size = K + 1
        self.success_threshold = float(success_accuracy)

    def sample(self, batch_size, rng=None) -> Batch:
        x, y = copy_task(batch_size, self.T, rng, self.S, self.K)
        return Batch(x, y)

    def loss(self, pred, batch):
        import torch.nn.functional as F
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), batch.y.reshape(-1))

    def metrics(self, pred, batch) -> dict:
        recall = slice(self.T + self.S, None)
        hit = pred[recall].argmax(-1) == batch.y[recall]                  # (S, B)
        return {"loss": float(self.loss(pred, batch)),
                "accuracy": float(hit.float().mean()),                   # over the S recalled symbols
                "sequence_accuracy": float(hit.all(0).float().mean())}

    def baseline(self) -> dict:
        return {"loss": copy_baseline_loss(self.T, self.S, self.K), "accuracy": 1.0 / self.K,
                "sequence_accuracy": self.K ** -float(self.S)}

    def describe(self) -> dict:
        return {"name": self.name, "T": self.T, "S": self.S, "K": self.K, "success_accuracy": self.success_threshold}
