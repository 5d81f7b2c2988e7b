"""The exact permutation test of gated_lib.stats, checked against a brute force written differently
(relabelling by boolean masks over all 2^n subsets) and against its known extremes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gated_lib.errors import GatedLibError
from gated_lib.stats import mean_std, min_permutation_p, permutation_p


def brute_force_p(a, b):
    pooled = np.concatenate([a, b])
    observed, hits, total = abs(np.mean(a) - np.mean(b)), 0, 0
    for mask in itertools.product([True, False], repeat=pooled.size):
        mask = np.array(mask)
        if mask.sum() != len(a):
            continue
        total += 1
        hits += abs(pooled[mask].mean() - pooled[~mask].mean()) >= observed - 1e-12
    return hits / total


@pytest.mark.parametrize("na, nb, seed", [(3, 3, 0), (3, 3, 1), (2, 4, 2), (4, 5, 3), (1, 3, 4)])
def test_matches_brute_force(na, nb, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, na), rng.normal(0.5, 1, nb)
    assert permutation_p(a, b) == pytest.approx(brute_force_p(a, b), abs=1e-12)


def test_extremes_and_symmetry():
    assert permutation_p([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    separated = permutation_p([1.0, 1.1, 1.2], [2.0, 2.1, 2.2])
    assert separated == pytest.approx(min_permutation_p(3, 3)) == pytest.approx(0.1)
    assert permutation_p([1.0, 1.1], [2.0, 2.1, 2.2]) == pytest.approx(min_permutation_p(2, 3)) == pytest.approx(0.1)
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=4), rng.normal(size=4)
    assert permutation_p(a, b) == permutation_p(b, a) == pytest.approx(permutation_p(a + 7.0, b + 7.0))
    assert permutation_p(a, b) == pytest.approx(permutation_p(3 * a, 3 * b))


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    m, s = mean_std([4.0])
    assert m == 4.0 and np.isnan(s)


def test_errors_name_the_argument():
    with pytest.raises(GatedLibError, match=r"^a: expected a 1-D sequence of at least one finite score"):
        permutation_p([], [1.0])
    with pytest.raises(GatedLibError, match=r"^b: expected .* finite"):
        permutation_p([1.0], [np.nan])
    with pytest.raises(GatedLibError, match=r"relabellings, more than"):
        permutation_p(np.arange(15.0), np.arange(15.0))
    with pytest.raises(GatedLibError, match=r"^n_b: expected a positive int, got 0"):
        min_permutation_p(3, 0)
