"""The fast kernels against the literal reference implementations of tests/naive.py."""

from __future__ import annotations

import naive
import numpy as np
import pytest

from collapsesim.kernels import gaussian as kern
from collapsesim.regimes import Regime

REGIMES = [
    ("replace", 0),
    ("accumulate", 0),
    ("fresh", 7),
    ("fresh", 30),
    ("keep-original", 3),
    ("keep-original", 30),
    ("accumulate-subsample", 0),
]


@pytest.mark.parametrize(("regime", "num_real"), REGIMES)
@pytest.mark.parametrize("ddof", [0, 1])
def test_sample_kernel_matches_naive(run_final, regime: str, num_real: int, ddof: int) -> None:
    t, n, chains = 15, 30, np.array([0, 5, 123456])
    mu, ls = run_final(
        len(chains),
        t,
        n,
        ddof=ddof,
        regime=Regime(regime).code,
        num_real=num_real,
        sufficient=False,
        seed=9,
        chains=chains,
        record_all=True,
    )
    for i, c in enumerate(chains):
        ref_mu, ref_sigma = naive.gaussian_chain(
            9, int(c), t, n, ddof=ddof, regime=regime, num_real=num_real
        )
        np.testing.assert_allclose(mu[i, 1:], ref_mu[1:], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.exp(ls[i, 1:]), ref_sigma[1:], rtol=1e-9)


@pytest.mark.parametrize("ddof", [0, 1])
@pytest.mark.parametrize("n", [2, 3, 50])
def test_sufficient_kernel_matches_naive(run_final, n: int, ddof: int) -> None:
    if n - ddof < 1:
        pytest.skip("needs n > ddof")
    t, chains = 40, np.array([1, 77])
    mu, ls = run_final(
        len(chains), t, n, ddof=ddof, sufficient=True, seed=4, chains=chains, record_all=True
    )
    for i, c in enumerate(chains):
        ref_mu, ref_sigma = naive.gaussian_chain_sufficient(4, int(c), t, n, ddof=ddof)
        np.testing.assert_allclose(mu[i, 1:], ref_mu[1:], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ls[i, 1:], np.log(ref_sigma[1:]), rtol=1e-9, atol=1e-9)


def test_sufficient_kernel_with_sparse_records_matches_naive() -> None:
    # Records at 7, 14, ..., 63 and 64: the kernel bridges down to them alone and reads
    # the values of the naive protocol's full grid, also across kernel calls that end
    # between records (inside the grid's first block).
    t, n, seed, chain = 64, 30, 8, 5
    gens = np.array([0, *range(7, t + 1, 7), t])
    rng, state = kern.init_chains(seed, np.array([chain]), 0.0, 1.0)
    mu = np.zeros((1, len(gens)))
    ls = np.zeros((1, len(gens)))
    for lo, hi in ((0, 10), (10, 11), (11, 64)):
        slots = np.full(hi - lo, -1, np.int64)
        for j, g in enumerate(range(lo + 1, hi + 1)):
            hit = np.flatnonzero(gens == g)
            if hit.size:
                slots[j] = hit[0]
        kern.advance(
            rng,
            state,
            lo,
            hi,
            slots,
            mu,
            ls,
            num_samples=n,
            ddof=0,
            regime=Regime.REPLACE.code,
            num_real=0,
            sufficient=True,
            mu0=0.0,
            sigma0=1.0,
        )
    ref_mu, ref_sigma = naive.gaussian_chain_sufficient(
        seed, chain, t, n, records=set(gens.tolist())
    )
    np.testing.assert_allclose(mu[0, 1:], ref_mu[gens[1:]], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.exp(ls[0, 1:]), ref_sigma[gens[1:]], rtol=1e-9)


def test_naive_detects_a_regime_mixup(run_final) -> None:
    # The comparison is sharp: accumulate is not replace.
    _mu, ls = run_final(
        1, 10, 30, regime=Regime.ACCUMULATE.code, sufficient=False, seed=9, record_all=True
    )
    _ref_mu, ref_sigma = naive.gaussian_chain(9, 0, 10, 30, regime="replace")
    assert not np.allclose(np.exp(ls[0, 2:]), ref_sigma[2:], rtol=1e-6)


def test_sufficient_kernel_matches_naive_across_blocks(run_final) -> None:
    # Past the grid's first blocks: every generation, and the block ends in between.
    t, n, chains = 2 * kern.BLOCK + 30, 40, np.array([3])
    mu, ls = run_final(1, t, n, sufficient=True, seed=6, chains=chains, record_all=True)
    ref_mu, ref_sigma = naive.gaussian_chain_sufficient(6, 3, t, n)
    np.testing.assert_allclose(mu[0, 1:], ref_mu[1:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ls[0, 1:], np.log(ref_sigma[1:]), rtol=1e-9, atol=1e-9)
