"""The Gaussian replace-sufficient kernel's mean on a dyadic grid (kernels/gaussian.py).

Given the std path, the mean is a Gaussian random walk; the kernel draws it block by block
with Brownian bridges, so any record set and any split of the run into calls must read the
same values, and the walk's standardised steps must be independent N(0, 1).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from collapsesim.kernels import gaussian as kern

N = 20  # samples per generation


def _walk(chains: int, t: int, recs: list[int], splits: list[int], seed: int = 5):
    rng, state = kern.init_chains(seed, np.arange(chains, dtype=np.int64), 0.0, 1.0)
    mu = np.full((chains, len(recs)), np.nan)
    ls = np.full((chains, len(recs)), np.nan)
    bounds = [0, *splits, t]
    for lo, hi in itertools.pairwise(bounds):
        slots = np.full(hi - lo, -1, np.int64)
        for j, r in enumerate(recs):
            if lo < r <= hi:
                slots[r - lo - 1] = j
        kern.advance(rng, state, lo, hi, slots, mu, ls, num_samples=N, ddof=0, regime=0,
                     num_real=0, sufficient=True, mu0=0.0, sigma0=1.0)  # fmt: skip
    return mu, ls, rng, state


def test_record_sets_and_call_splits_read_the_same_walk() -> None:
    t = 3 * kern.BLOCK + 37
    every = list(range(1, t + 1))
    mu, ls, rng, state = _walk(6, t, every, [])
    sparse = [1, 5, kern.BLOCK - 1, kern.BLOCK, kern.BLOCK + 1, 2 * kern.BLOCK + 100, t]
    splits = [3, 3, kern.BLOCK, kern.BLOCK + 7, 2 * kern.BLOCK + 100, 2 * kern.BLOCK + 101]
    for recs, cuts in ((every, splits), (sparse, []), (sparse, splits)):
        m2, l2, rng2, state2 = _walk(6, t, recs, cuts)
        idx = [r - 1 for r in recs]
        np.testing.assert_array_equal(m2, mu[:, idx])
        np.testing.assert_array_equal(l2, ls[:, idx])
        # Stopped inside a block, every chain sits at the block's start, streams included.
        np.testing.assert_array_equal(rng2, rng)
        np.testing.assert_array_equal(state2, state)


def test_a_chain_ignores_the_chains_beside_it() -> None:
    t = kern.BLOCK + 9
    recs = [4, kern.BLOCK + 3, t]
    few, _, _, _ = _walk(3, t, recs, [])
    many, _, _, _ = _walk(50, t, recs, [7])
    np.testing.assert_array_equal(many[:3], few)


@pytest.mark.parametrize("seed", [1, 2])
def test_standardised_steps_are_independent_standard_normals(seed: int) -> None:
    # z_t = (mu_{t+1} - mu_t) / (sigma_t / sqrt(n)) is N(0, 1) given the std path, and
    # independent across t (across block boundaries too) and of the std's steps.
    chains, t = 4000, kern.BLOCK + 64
    mu, ls, _, _ = _walk(chains, t, list(range(1, t + 1)), [], seed=seed)
    mu = np.concatenate([np.zeros((chains, 1)), mu], axis=1)
    ls = np.concatenate([np.zeros((chains, 1)), ls], axis=1)
    z = np.diff(mu, axis=1) / (np.exp(ls[:, :-1]) / np.sqrt(N))
    total = z.size
    # Moments over all steps: E z = 0, E z^2 = 1, E z^4 = 3 (standard errors 1, sqrt 2,
    # sqrt 96 over sqrt(total)); 5 standard errors.
    assert abs(z.mean()) < 5 / np.sqrt(total)
    assert abs((z**2).mean() - 1) < 5 * np.sqrt(2 / total)
    assert abs((z**4).mean() - 3) < 5 * np.sqrt(96 / total)
    # Per step, the variance (t steps tested: 4.5 standard errors bound the largest).
    per = (z**2).mean(axis=0)
    assert np.max(np.abs(per - 1)) < 4.5 * np.sqrt(2 / chains)
    # Lag-1 and lag-2 products, pooled: mean 0, standard error 1 / sqrt(count).
    for lag in (1, 2, 7):
        prod = z[:, lag:] * z[:, :-lag]
        assert abs(prod.mean()) < 5 / np.sqrt(prod.size), lag
    # Across the first block boundary, per chain.
    b = kern.BLOCK
    cross = z[:, b - 1] * z[:, b]
    assert abs(cross.mean()) < 5 / np.sqrt(chains)
    # Independent of the std's steps.
    r = np.diff(ls, axis=1)
    r = (r - r.mean(axis=0)) / r.std(axis=0)
    assert abs((r * z).mean()) < 5 / np.sqrt(total)
