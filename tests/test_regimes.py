"""Each data regime behaves as its definition says."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from collapsesim import theory
from collapsesim.config import ConfigError, GaussianConfig
from collapsesim.regimes import Regime, RegimeError, real_count


def test_names_and_codes() -> None:
    assert [r.value for r in Regime] == [
        "replace",
        "accumulate",
        "fresh",
        "keep-original",
        "accumulate-subsample",
    ]
    # Codes are stored in checkpoints: they must never move.
    assert [r.code for r in Regime] == [0, 1, 2, 3, 4]
    assert all(Regime.from_code(r.code) is r for r in Regime)
    # The Numba kernels and the JAX chains compile in the same constants.
    from collapsesim.jaxchains import _regimes as jr
    from collapsesim.kernels import _regimes as nr

    for r in Regime:
        name = r.name
        assert getattr(nr, name) == getattr(jr, name) == r.code
    with pytest.raises(RegimeError, match="unknown regime"):
        Regime.parse("recycle")
    with pytest.raises(RegimeError, match="unknown regime code"):
        Regime.from_code(5)


def test_real_count_rounds_and_validates() -> None:
    assert real_count(Regime.KEEP_ORIGINAL, 1000, 0.0, 0.1) == 100
    assert real_count(Regime.FRESH, 10, 0.25, 0.0) == 2  # half to even
    assert real_count(Regime.REPLACE, 10, 0.5, 0.5) == 0
    with pytest.raises(RegimeError):
        real_count(Regime.FRESH, 10, -0.1, 0.0)


@pytest.mark.parametrize("sufficient", [True, False])
def test_keep_everything_freezes_the_first_fit(run_final, sufficient: bool) -> None:
    # keep-original with f = 1 trains every model on generation 0 alone.
    mu, ls = run_final(
        50,
        30,
        20,
        regime=Regime.KEEP_ORIGINAL.code,
        num_real=20,
        sufficient=sufficient,
        record_all=True,
    )
    np.testing.assert_array_equal(ls[:, 2:], np.broadcast_to(ls[:, [1]], ls[:, 2:].shape))
    np.testing.assert_array_equal(mu[:, 2:], np.broadcast_to(mu[:, [1]], mu[:, 2:].shape))
    assert np.all(ls[:, 1] != 0.0)


@pytest.mark.parametrize("sufficient", [True, False])
def test_all_fresh_never_collapses(run_final, sufficient: bool) -> None:
    # fresh with lambda = 1: every model is a fit to n new real draws, so
    # n s^2 / sigma0^2 ~ chi2(n - 1) at every generation, however late.
    n = 20
    _, ls = run_final(
        20_000, 40, n, regime=Regime.FRESH.code, num_real=n, sufficient=sufficient, seed=44
    )
    stat = n * np.exp(2 * ls)
    assert stats.kstest(stat, "chi2", args=(n - 1,)).pvalue > 1e-4


@pytest.mark.parametrize("regime", [Regime.FRESH.code, Regime.KEEP_ORIGINAL.code])
def test_zero_real_share_is_replace(run_final, regime: int) -> None:
    a_mu, a_ls = run_final(
        20, 30, 15, regime=regime, num_real=0, sufficient=False, seed=6, record_all=True
    )
    b_mu, b_ls = run_final(
        20, 30, 15, regime=Regime.REPLACE.code, sufficient=False, seed=6, record_all=True
    )
    np.testing.assert_allclose(a_ls, b_ls, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(a_mu, b_mu, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "regime", [Regime.ACCUMULATE.code, Regime.FRESH.code, Regime.KEEP_ORIGINAL.code]
)
def test_pooled_sample_and_sufficient_agree(run_final, regime: int) -> None:
    a_mu, a_ls = run_final(20_000, 30, 20, regime=regime, num_real=4, sufficient=False, seed=61)
    b_mu, b_ls = run_final(20_000, 30, 20, regime=regime, num_real=4, sufficient=True, seed=62)
    assert stats.ks_2samp(a_ls, b_ls).pvalue > 1e-4
    assert stats.ks_2samp(a_mu, b_mu).pvalue > 1e-4


def test_mitigations_stop_the_collapse(run_final) -> None:
    # Replace loses about T/n of log sigma; accumulating or mixing in real data does not
    # (Gerstgrasser et al. 2024 bound the accumulated error; fresh data pins the scale).
    t, n, c = 400, 20, 4000
    replace = run_final(c, t, n, seed=70)[1].mean()
    assert replace < -15  # theory: -20.5
    for regime, real in [
        (Regime.ACCUMULATE.code, 0),
        (Regime.FRESH.code, 4),
        (Regime.KEEP_ORIGINAL.code, 4),
    ]:
        ls = run_final(c, t, n, regime=regime, num_real=real, seed=71)[1]
        assert ls.mean() > -1.0
    sub = run_final(
        300, 100, n, regime=Regime.ACCUMULATE_SUBSAMPLE.code, sufficient=False, seed=72
    )[1]
    assert sub.mean() > float(theory.mean_log_std(100, n)) + 1


def test_accumulate_first_step_equals_replace(run_final) -> None:
    # Model 1 is fitted to generation 0 alone under every regime.
    a = run_final(10, 1, 25, regime=Regime.ACCUMULATE.code, sufficient=False, seed=3)
    b = run_final(10, 1, 25, regime=Regime.REPLACE.code, sufficient=False, seed=3)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12)


def test_sufficient_refused_for_subsampling() -> None:
    with pytest.raises(ConfigError, match="cannot run regime"):
        GaussianConfig(regime="accumulate-subsample", method="sufficient")
    assert GaussianConfig(regime="accumulate-subsample").resolved_method == "sample"
    assert GaussianConfig(regime="fresh").resolved_method == "sufficient"
    assert math.isclose(GaussianConfig(regime="keep-original").num_real, 100)
