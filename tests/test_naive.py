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


def test_naive_detects_a_regime_mixup(run_final) -> None:
    # The comparison is sharp: accumulate is not replace.
    _mu, ls = run_final(
        1, 10, 30, regime=kern.ACCUMULATE, sufficient=False, seed=9, record_all=True
    )
    _ref_mu, ref_sigma = naive.gaussian_chain(9, 0, 10, 30, regime="replace")
    assert not np.allclose(np.exp(ls[0, 2:]), ref_sigma[2:], rtol=1e-6)
