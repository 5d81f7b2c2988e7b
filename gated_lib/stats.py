"""Comparing a few seeds honestly: the exact permutation test the labs use.

A lab compares two configurations (LSTM vs GRU, one stack vs another, an ablated cell vs the LSTM) over
a handful of seeds each. With n seeds per arm no normality assumption is checkable, so the pages use
the exact two-sided permutation test of equal means: pool the 2n scores, relabel them in every
possible way, and count how often the difference of the means is at least as large as the one
observed. Its p-value can never be smaller than min_permutation_p(n_a, n_b) (2 / C(6, 3) = 0.1 with
three seeds per arm), which is what a page must say before it calls anything "significant".
"""

from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np

from gated_lib.errors import GatedLibError

MAX_RELABELLINGS = 1_000_000     # exact enumeration only: C(20, 10) = 184,756 is fine, C(30, 15) is not


def _scores(name: str, values) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size < 1 or not np.isfinite(a).all():
        raise GatedLibError(f"{name}: expected a 1-D sequence of at least one finite score, got "
                            f"{a.size} value(s) of shape {a.shape}")
    return a


def mean_std(values) -> tuple[float, float]:
    """(mean, sample standard deviation (ddof=1)) of a few runs; the std is nan for a single run."""
    a = _scores("values", values)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else float("nan")


def permutation_p(a, b) -> float:
    """Exact two-sided permutation test of equal means.

    a: (n_a,) scores of one configuration (one per seed); b: (n_b,) of the other.
    Returns p in (0, 1]: the share of the C(n_a + n_b, n_a) relabellings of the pooled scores whose
    |mean(first n_a) - mean(rest)| is at least the observed |mean(a) - mean(b)|.
    """
    a, b = _scores("a", a), _scores("b", b)
    n = comb(a.size + b.size, a.size)
    if n > MAX_RELABELLINGS:
        raise GatedLibError(f"a, b: {a.size} + {b.size} scores have {n:,} relabellings, more than the "
                            f"{MAX_RELABELLINGS:,} this exact test enumerates")
    pooled, total = np.concatenate([a, b]), a.sum() + b.sum()
    observed = abs(a.mean() - b.mean())
    picks = np.array(list(combinations(range(pooled.size), a.size)))          # (n, n_a)
    first = pooled[picks].sum(axis=1)
    diffs = np.abs(first / a.size - (total - first) / b.size)
    return float(np.mean(diffs >= observed - 1e-12 * max(1.0, observed)))


def min_permutation_p(n_a: int, n_b: int) -> float:
    """The smallest p-value permutation_p can return for groups of these sizes (groups that do not
    overlap at all): 2 / C(n_a + n_b, n_a) for equal sizes (the mirror relabelling is as extreme),
    1 / C(n_a + n_b, n_a) otherwise."""
    for name, v in (("n_a", n_a), ("n_b", n_b)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise GatedLibError(f"{name}: expected a positive int, got {v!r}")
    return (2 if n_a == n_b else 1) / comb(n_a + n_b, n_a)
