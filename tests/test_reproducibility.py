"""Bit-reproducibility from (seed, chain): any thread count, any split of the chains."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from collapsesim.config import GaussianConfig
from collapsesim.experiments import gaussian as runner
from collapsesim.kernels import gaussian as kern
from collapsesim.regimes import Regime


def test_chain_1234_of_a_million(run_final) -> None:
    # The contract: chain 1234 of a 10^6-chain run equals chain 1234 of a run
    # over chains 1230..1239, bit for bit.
    big_mu, big_ls = run_final(10**6, 30, 50, seed=2024)
    small_mu, small_ls = run_final(10, 30, 50, seed=2024, chains=np.arange(1230, 1240))
    assert big_mu[1234] == small_mu[4]
    assert big_ls[1234] == small_ls[4]
    np.testing.assert_array_equal(big_ls[1230:1240], small_ls)


@pytest.mark.parametrize("sufficient", [True, False])
@pytest.mark.parametrize(
    "regime", [Regime.REPLACE.code, Regime.FRESH.code, Regime.ACCUMULATE_SUBSAMPLE.code]
)
def test_thread_count_does_not_matter(run_final, sufficient: bool, regime: int) -> None:
    if regime == Regime.ACCUMULATE_SUBSAMPLE.code and sufficient:
        pytest.skip("subsampling is sample-level only")
    before = numba.get_num_threads()
    results = []
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            results.append(
                run_final(
                    64,
                    40,
                    20,
                    regime=regime,
                    num_real=5,
                    sufficient=sufficient,
                    seed=3,
                    record_all=True,
                )
            )
    finally:
        numba.set_num_threads(before)
    for mu, ls in results[1:]:
        np.testing.assert_array_equal(mu, results[0][0])
        np.testing.assert_array_equal(ls, results[0][1])


@pytest.mark.parametrize(
    ("regime", "method"),
    [
        ("replace", "sample"),
        ("replace", "sufficient"),
        ("accumulate", "sample"),
        ("keep-original", "sufficient"),
        ("accumulate-subsample", "sample"),
    ],
)
def test_batches_and_blocks_do_not_matter(regime: str, method: str) -> None:
    # 70 generations recorded every 4th: blocks of 3 end between records, so the
    # reservoir bits and the mean's pending variance must cross kernel calls intact.
    cfg = GaussianConfig(
        num_chains=37,
        num_generations=70,
        num_samples=12,
        regime=regime,
        seed=8,
        method=method,
        record_every=4,
    )
    whole = runner.run(cfg)
    split = runner.run(cfg, batch_chains=5, block_generations=3)
    for m in whole.final:
        np.testing.assert_array_equal(whole.final[m], split.final[m])
        np.testing.assert_array_equal(whole.trajectories[m], split.trajectories[m])


def test_seed_changes_everything() -> None:
    a = runner.run(GaussianConfig(num_chains=10, num_generations=5, num_samples=10, seed=1))
    b = runner.run(GaussianConfig(num_chains=10, num_generations=5, num_samples=10, seed=2))
    assert not np.any(a.final["sigma"] == b.final["sigma"])


def test_advance_rejects_mismatched_arrays() -> None:
    rng, state = kern.init_chains(0, np.arange(4), 0.0, 1.0)
    rec = np.zeros((4, 2))
    slots = np.array([-1, 1], np.int64)
    kw = {
        "num_samples": 10,
        "ddof": 0,
        "regime": Regime.REPLACE.code,
        "num_real": 0,
        "sufficient": True,
        "mu0": 0.0,
        "sigma0": 1.0,
    }
    kern.advance(rng, state, 0, 2, slots, rec, rec.copy(), **kw)
    with pytest.raises(ValueError, match="rng"):
        kern.advance(rng[:, :2].copy(), state, 0, 2, slots, rec, rec.copy(), **kw)
    with pytest.raises(ValueError, match="state"):
        kern.advance(rng, state[:, :8].copy(), 0, 2, slots, rec, rec.copy(), **kw)
    with pytest.raises(ValueError, match="slot"):
        kern.advance(rng, state, 0, 2, np.array([-1, 2], np.int64), rec, rec.copy(), **kw)
