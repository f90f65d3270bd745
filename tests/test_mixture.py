"""Gaussian-mixture EM against scikit-learn, and its invariants."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.mixture import GaussianMixture

from collapsesim.kernels import mixture as mx
from collapsesim.regimes import Regime


def _dataset(rng: np.random.Generator, k: int, d: int, n: int) -> np.ndarray:
    centres = rng.normal(0, 3, (k, d))
    labels = rng.integers(0, k, n)
    return centres[labels] + rng.normal(0, 1, (n, d)) * rng.uniform(0.3, 1.5, (k, d))[labels]


def _sklearn_fit(x, w0, m0, c0, cov: str, **kw) -> GaussianMixture:  # type: ignore[no-untyped-def]
    prec = np.linalg.inv(c0) if cov == "full" else 1 / np.diagonal(c0, axis1=1, axis2=2)
    gm = GaussianMixture(
        len(w0), covariance_type=cov, weights_init=w0, means_init=m0, precisions_init=prec, **kw
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on capped fits
        gm.fit(x)
    return gm


@pytest.mark.parametrize("cov", ["full", "diag"])
@pytest.mark.parametrize(("k", "d"), [(1, 1), (2, 1), (2, 2), (3, 2), (2, 3)])
def test_same_start_same_fit_as_sklearn(cov: str, k: int, d: int) -> None:
    # Same data, same initial parameters: the same iterations, so the same fit up to
    # rounding (float64 sums in another order: 1e-12 relative over <= 100 iterations).
    rng = np.random.default_rng(100 * k + d)
    for trial in range(5):
        x = _dataset(rng, k, d, 400)
        w0, m0, c0 = mx.kmeanspp_init(x, k, trial, 0, covariance_type=cov)
        ours = mx.fit_em(x, w0, m0, c0, covariance_type=cov)
        ref = _sklearn_fit(x, w0, m0, c0, cov)
        ref_covs = (
            ref.covariances_ if cov == "full" else np.stack([np.diag(v) for v in ref.covariances_])
        )
        assert ours["n_iter"] == ref.n_iter_
        assert ours["converged"] == ref.converged_
        assert ours["lower_bound"] == pytest.approx(ref.lower_bound_, rel=1e-10, abs=1e-10)
        np.testing.assert_allclose(ours["weights"], ref.weights_, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ours["means"], ref.means_, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(ours["covs"], ref_covs, rtol=1e-8, atol=1e-10)


def test_capped_fit_matches_sklearn_iteration_for_iteration() -> None:
    rng = np.random.default_rng(7)
    x = _dataset(rng, 3, 2, 600)
    w0, m0, c0 = mx.kmeanspp_init(x, 3, 1, 0)
    ours = mx.fit_em(x, w0, m0, c0, tol=0.0, max_iter=40)
    ref = _sklearn_fit(x, w0, m0, c0, "full", tol=0.0, max_iter=40)
    assert ours["n_iter"] == ref.n_iter_ == 40
    assert not ours["converged"]
    np.testing.assert_allclose(ours["means"], ref.means_, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("cov", ["full", "diag"])
def test_lower_bound_never_decreases(cov: str) -> None:
    rng = np.random.default_rng(3)
    for trial in range(10):
        x = _dataset(rng, 3, 2, 300)
        w0, m0, c0 = mx.kmeanspp_init(x, 3, trial, 1, covariance_type=cov)
        trace = mx.fit_em(x, w0, m0, c0, covariance_type=cov, tol=1e-10, max_iter=200)["trace"]
        assert np.all(np.diff(trace) >= -1e-12 * np.abs(trace[1:]))


def test_one_component_is_the_gaussian_mle() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal([1.0, -2.0], [0.5, 2.0], (500, 2))
    w0, m0, c0 = mx.kmeanspp_init(x, 1, 0, 0)
    fit = mx.fit_em(x, w0, m0, c0, reg_covar=0.0)
    np.testing.assert_allclose(fit["means"][0], x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(fit["covs"][0], np.cov(x.T, ddof=0), rtol=1e-10)
    # The first M-step is the MLE; the next E-step measures it and the third sees no
    # change: converged at iteration 3, as scikit-learn.
    ref = _sklearn_fit(x, w0, m0, c0, "full", reg_covar=0.0)
    assert fit["converged"]
    assert fit["n_iter"] == ref.n_iter_ == 3


def test_degenerate_data_gives_no_nan() -> None:
    # All points equal: every covariance is reg_covar * I, as scikit-learn's would be.
    x = np.full((50, 2), 3.0)
    w0, m0, c0 = mx.kmeanspp_init(x, 2, 0, 0)
    fit = mx.fit_em(x, w0, m0, c0)
    assert np.all(np.isfinite(fit["means"]))
    np.testing.assert_allclose(
        fit["covs"], np.broadcast_to(1e-6 * np.eye(2), (2, 2, 2)), rtol=1e-9, atol=1e-20
    )
    with pytest.raises(ValueError, match="components"):
        mx.kmeanspp_init(x[:1], 2, 0, 0)


def test_kmeanspp_is_reproducible_and_picks_data_points() -> None:
    rng = np.random.default_rng(5)
    x = _dataset(rng, 3, 2, 200)
    a = mx.kmeanspp_init(x, 3, 11, 4)
    b = mx.kmeanspp_init(x, 3, 11, 4)
    c = mx.kmeanspp_init(x, 3, 11, 5)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    for centre in a[1]:
        # scikit-learn's start divides each chosen point by 1 + 10 eps
        assert np.min(np.abs(x - centre).max(axis=1)) < 1e-13 * np.abs(x).max()


def test_no_worse_optimum_than_sklearn_on_average() -> None:
    # Both from their own k-means++ starts: the mean final log-likelihood over 40 datasets
    # must not be lower than scikit-learn's by more than 3 standard errors of the difference.
    rng = np.random.default_rng(6)
    diffs = []
    for trial in range(40):
        x = _dataset(rng, 3, 2, 300)
        w0, m0, c0 = mx.kmeanspp_init(x, 3, trial, 0)
        ours = mx.fit_em(x, w0, m0, c0)
        gm = GaussianMixture(3, init_params="k-means++", random_state=trial)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm.fit(x)
        diffs.append(ours["lower_bound"] - gm.lower_bound_)
    diffs_arr = np.array(diffs)
    se = diffs_arr.std(ddof=1) / np.sqrt(len(diffs_arr))
    assert diffs_arr.mean() > -3 * se - 1e-9


def test_sampling_matches_the_mixture() -> None:
    w = np.array([0.3, 0.7])
    m = np.array([[0.0, 0.0], [4.0, -1.0]])
    c = np.array([[[1.0, 0.5], [0.5, 2.0]], [[0.3, 0.0], [0.0, 0.1]]])
    x = mx.sample_mixture(w, m, c, 200_000, 9, 0)
    # An exact probability: P(x_0 > 2) = sum_k w_k P(N(m_k0, C_k00) > 2), by a binomial z-score.
    p = sum(
        wk * stats.norm.sf(2.0, mk[0], np.sqrt(ck[0, 0]))
        for wk, mk, ck in zip(w, m, c, strict=True)
    )
    assert abs(np.mean(x[:, 0] > 2.0) - p) < 4 * np.sqrt(p * (1 - p) / len(x))
    mean = w @ m
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=4 * np.sqrt(x.var(axis=0) / len(x)).max())
    # The well-separated second component, standardised, is N(0, I).
    second = x[np.linalg.norm(x - m[1], axis=1) < 2.0]
    z = np.linalg.solve(np.linalg.cholesky(c[1]), (second - m[1]).T)
    assert stats.kstest(z[0], "norm").pvalue > 1e-4
    assert stats.kstest(z[1], "norm").pvalue > 1e-4


def _chain_run(  # type: ignore[no-untyped-def]
    num_chains,
    generations,
    n,
    *,
    k=2,
    d=2,
    regime=Regime.REPLACE.code,
    num_real=0,
    init="kmeans++",
    seed=0,
    chains=None,
    reg_covar=1e-6,
    record_all=False,
):
    ids = np.arange(num_chains) if chains is None else chains
    w0 = np.full(k, 1 / k)
    m0 = np.zeros((k, d))
    c0 = np.repeat(np.eye(d)[None], k, 0)
    rng, w, m, c = mx.init_mixture_chains(seed, ids, w0, m0, c0)
    b = len(ids)
    r = generations if record_all else 1
    slots = (
        np.arange(generations, dtype=np.int64) if record_all else np.full(generations, -1, np.int64)
    )
    if not record_all:
        slots[-1] = 0
    rec = mx.new_records(b, r, k, d)
    mx.advance_mixture(
        rng,
        w,
        m,
        c,
        0,
        generations,
        slots,
        rec,
        num_samples=n,
        regime=regime,
        num_real=num_real,
        covariance_type="full",
        init=init,
        tol=1e-3,
        max_iter=100,
        reg_covar=reg_covar,
        weights0=w0,
        means0=m0,
        covs0=c0,
        pool=np.empty((b, n * generations, d)),
        pool_size=np.zeros(b, np.int64),
        kept=np.empty((b, num_real, d)),
    )
    return rec


@pytest.mark.parametrize(
    "regime",
    [
        Regime.REPLACE.code,
        Regime.ACCUMULATE.code,
        Regime.FRESH.code,
        Regime.KEEP_ORIGINAL.code,
        Regime.ACCUMULATE_SUBSAMPLE.code,
    ],
)
def test_mixture_chains_are_reproducible(regime: int) -> None:
    import numba

    real = 10 if regime in (Regime.FRESH.code, Regime.KEEP_ORIGINAL.code) else 0
    whole = _chain_run(12, 8, 60, regime=regime, num_real=real, seed=3)
    part = _chain_run(4, 8, 60, regime=regime, num_real=real, seed=3, chains=np.arange(4, 8))
    np.testing.assert_array_equal(whole["means"][4:8], part["means"])
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = _chain_run(12, 8, 60, regime=regime, num_real=real, seed=3)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(whole["covs"], single["covs"])
    assert whole["converged"].all()


def test_one_component_chain_is_the_gaussian_chain() -> None:
    # K = 1 in one dimension with no covariance floor: EM's fit is the MLE, so the chain
    # is the Gaussian chain (ddof 0) in distribution. Compare final log sigma by KS.
    from collapsesim.kernels import gaussian as kern

    rec = _chain_run(3000, 20, 30, k=1, d=1, seed=21, reg_covar=0.0)
    log_sigma_mix = 0.5 * np.log(rec["covs"][:, 0, 0, 0, 0])
    rng, state = kern.init_chains(22, np.arange(3000), 0.0, 1.0)
    slots = np.full(20, -1, np.int64)
    slots[-1] = 0
    mu = np.zeros((3000, 1))
    ls = np.zeros((3000, 1))
    kern.advance(
        rng,
        state,
        0,
        20,
        slots,
        mu,
        ls,
        num_samples=30,
        ddof=0,
        regime=Regime.REPLACE.code,
        num_real=0,
        sufficient=False,
        mu0=0.0,
        sigma0=1.0,
    )
    assert stats.ks_2samp(log_sigma_mix, ls[:, 0]).pvalue > 1e-4
    assert stats.ks_2samp(rec["means"][:, 0, 0, 0], mu[:, 0]).pvalue > 1e-4


def test_keeping_all_original_data_freezes_a_one_component_fit() -> None:
    rec = _chain_run(
        5, 12, 40, k=1, d=2, regime=Regime.KEEP_ORIGINAL.code, num_real=40, record_all=True
    )
    covs = rec["covs"][:, :, 0]
    np.testing.assert_allclose(covs, np.broadcast_to(covs[:, :1], covs.shape), rtol=1e-12)


@pytest.mark.parametrize("cov", ["full", "diag"])
def test_far_start_takes_the_centred_path_and_matches_sklearn(cov: str) -> None:
    # Means 50 std away: the first M-step's shift is far beyond 30 standard deviations,
    # so the covariances are recomputed about the new means, as scikit-learn computes them.
    rng = np.random.default_rng(11)
    x = _dataset(rng, 2, 2, 500)
    w0 = np.array([0.5, 0.5])
    m0 = np.array([[50.0, 50.0], [-50.0, 40.0]])
    c0 = np.stack([np.eye(2), 2 * np.eye(2)])
    ours = mx.fit_em(x, w0, m0, c0, covariance_type=cov)
    ref = _sklearn_fit(x, w0, m0, c0, cov)
    ref_covs = (
        ref.covariances_ if cov == "full" else np.stack([np.diag(v) for v in ref.covariances_])
    )
    assert ours["n_iter"] == ref.n_iter_
    np.testing.assert_allclose(ours["means"], ref.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours["covs"], ref_covs, rtol=1e-8, atol=1e-10)
