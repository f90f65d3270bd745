"""The simulator against exact theory, by z-score (fixed seeds, 4-sigma tolerances)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from collapsesim import theory

Z_MAX = 4.0  # |z| beyond 4 has probability 6e-5 for a correct simulator


def test_article_numbers() -> None:
    assert theory.moment_std(1, 1000, 1000) == pytest.approx(0.4721, abs=5e-5)
    assert theory.moment_std(1, 10_000, 1000) == pytest.approx(0.00055, abs=5e-6)


@pytest.mark.parametrize(("n", "ddof"), [(2, 0), (10, 0), (10, 1), (1000, 1)])
def test_one_step_moments_against_scipy(n: int, ddof: int) -> None:
    # E[sigma_1] = E[chi_{n-1}] / sqrt(n - ddof), computed independently by scipy.
    assert theory.moment_std(1, 1, n, ddof) == pytest.approx(
        stats.chi(n - 1).mean() / math.sqrt(n - ddof), rel=1e-12
    )
    assert theory.moment_std(2, 1, n, ddof) == pytest.approx((n - 1) / (n - ddof), rel=1e-12)
    elog = stats.chi2(n - 1).expect(np.log) / 2 - 0.5 * math.log(n - ddof)
    assert float(theory.mean_log_std(1, n, ddof)) == pytest.approx(elog, rel=1e-6)


def test_rate_is_about_one_over_n() -> None:
    for n in (100, 1000, 10_000):
        assert theory.collapse_rate(n, 0) * n == pytest.approx(1.0, rel=2 / n)
        assert theory.collapse_rate(n, 1) * 2 * n == pytest.approx(1.0, rel=2 / n)


def test_no_closed_form_outside_replace() -> None:
    with pytest.raises(theory.NoClosedForm):
        theory.moment_std(1, 10, 10, regime="accumulate")


def _z(sample: np.ndarray, expected: float, sd: float) -> float:
    return float((sample.mean() - expected) / (sd / math.sqrt(sample.size)))


# T = n keeps Var(sigma_T) / E[sigma_T]^2 near e^0.5 - 1: the mean is then estimable.
CASES = [(10, 0), (10, 1), (100, 0), (100, 1), (1000, 0), (1000, 1)]


@pytest.mark.parametrize(("n", "ddof"), CASES)
def test_sufficient_method_against_theory(run_final, n: int, ddof: int) -> None:
    t = n
    c = 100_000 if n < 1000 else 40_000
    mu, ls = run_final(c, t, n, ddof=ddof, sufficient=True, seed=101 + n + ddof)
    sig = np.exp(ls)
    e1 = float(theory.moment_std(1, t, n, ddof))
    sd1 = math.sqrt(float(theory.moment_std(2, t, n, ddof)) - e1 * e1)
    assert abs(_z(sig, e1, sd1)) < Z_MAX
    elog = float(theory.mean_log_std(t, n, ddof))
    sdlog = float(theory.std_log_std(t, n, ddof))
    assert abs(_z(ls, elog, sdlog)) < Z_MAX
    # Var(mu_T): z from the sample's own fourth moment.
    v = float(theory.var_mean(t, n, ddof))
    se = math.sqrt((np.mean(mu**4) - mu.var() ** 2) / c)
    assert abs((np.mean(mu**2) - v) / se) < Z_MAX


@pytest.mark.parametrize(("n", "ddof"), [(10, 0), (10, 1), (100, 0), (1000, 1)])
def test_sample_method_against_theory(run_final, n: int, ddof: int) -> None:
    t = min(n, 100)
    c = 20_000 if n < 1000 else 2000
    _, ls = run_final(c, t, n, ddof=ddof, sufficient=False, seed=202 + n + ddof)
    elog = float(theory.mean_log_std(t, n, ddof))
    assert abs(_z(ls, elog, float(theory.std_log_std(t, n, ddof)))) < Z_MAX
    sig = np.exp(ls)
    e1 = float(theory.moment_std(1, t, n, ddof))
    sd1 = math.sqrt(float(theory.moment_std(2, t, n, ddof)) - e1 * e1)
    assert abs(_z(sig, e1, sd1)) < Z_MAX


def test_z_test_detects_wrong_ddof(run_final) -> None:
    # The same check must fail loudly if the simulator used the other ddof.
    _, ls = run_final(100_000, 10, 10, ddof=0, seed=7)
    wrong = float(theory.mean_log_std(10, 10, 1))
    assert abs(_z(ls, wrong, float(theory.std_log_std(10, 10, 1)))) > 20


@pytest.mark.parametrize(("n", "ddof"), [(10, 0), (100, 1)])
def test_sample_and_sufficient_agree_in_distribution(run_final, n: int, ddof: int) -> None:
    a_mu, a_ls = run_final(20_000, 50, n, ddof=ddof, sufficient=False, seed=31)
    b_mu, b_ls = run_final(20_000, 50, n, ddof=ddof, sufficient=True, seed=32)
    assert stats.ks_2samp(a_ls, b_ls).pvalue > 1e-4
    assert stats.ks_2samp(a_mu, b_mu).pvalue > 1e-4


def test_long_chain_does_not_underflow(run_final) -> None:
    # 10^5 generations at n = 10: E[log sigma] is about -6200, far below the double range.
    t, n = 100_000, 10
    _, ls = run_final(200, t, n, seed=5)
    assert np.all(np.isfinite(ls))
    elog = float(theory.mean_log_std(t, n))
    assert elog < -700  # exp() of it underflows: only log space can hold it
    assert abs(_z(ls, elog, float(theory.std_log_std(t, n)))) < Z_MAX


@pytest.mark.parametrize(("n", "ddof"), [(2, 0), (10, 1), (1000, 0)])
def test_log_std_distribution_at_one_generation_is_scaled_chi(n: int, ddof: int) -> None:
    # After one generation (n - ddof) sigma_1^2 ~ chi2(n - 1) exactly: the inversion must agree.
    x = np.linspace(-2.0, 0.3, 9)
    cdf, pdf = theory.log_std_cdf_pdf(x, 1, n, ddof)
    y = np.exp(2 * x) * (n - ddof)
    np.testing.assert_allclose(cdf, stats.chi2(n - 1).cdf(y), atol=1e-9)
    np.testing.assert_allclose(pdf, stats.chi2(n - 1).pdf(y) * 2 * y, atol=1e-8)


def test_log_std_distribution_is_a_distribution() -> None:
    t, n = 50, 20
    mean, sd = float(theory.mean_log_std(t, n)), float(theory.std_log_std(t, n))
    x = np.linspace(mean - 10 * sd, mean + 10 * sd, 4001)
    cdf, pdf = theory.log_std_cdf_pdf(x, t, n)
    assert np.all(np.diff(cdf) >= -1e-12)
    assert cdf[0] < 1e-9
    assert cdf[-1] > 1 - 1e-9
    assert np.trapezoid(pdf, x) == pytest.approx(1.0, abs=1e-6)
    assert np.trapezoid(x * pdf, x) == pytest.approx(mean, abs=1e-6)


@pytest.mark.parametrize(("n", "ddof"), [(10, 0), (100, 1)])
def test_simulated_quantiles_against_theory(run_final, n: int, ddof: int) -> None:
    t, c = n, 100_000
    _, ls = run_final(c, t, n, ddof=ddof, seed=303 + n)
    probs = np.array([0.05, 0.5, 0.95])
    q, dens = theory.quantile_std(probs, t, n, ddof)
    sim = np.quantile(ls, probs)
    z = (sim - np.log(q)) / (np.sqrt(probs * (1 - probs) / c) / dens)
    assert np.all(np.abs(z) < Z_MAX), z


@pytest.mark.slow
def test_ten_thousand_generations(run_final) -> None:
    # E[sigma_10000] = 0.00055 for n = 1000, ddof 0; Var/E^2 = e^5 - 1, so 10^6 chains
    # pin the mean to about 1.2%. A few hundred chains would often be off by 2x.
    t, n, c = 10_000, 1000, 10**6
    _, ls = run_final(c, t, n, seed=10_000)
    sig = np.exp(ls)
    e1 = float(theory.moment_std(1, t, n))
    assert e1 == pytest.approx(0.00055, abs=5e-6)
    sd1 = math.sqrt(float(theory.moment_std(2, t, n)) - e1 * e1)
    assert abs(_z(sig, e1, sd1)) < Z_MAX
    assert abs(_z(ls, float(theory.mean_log_std(t, n)), float(theory.std_log_std(t, n)))) < Z_MAX


@pytest.mark.slow
def test_article_experiment_at_a_million_chains(run_final) -> None:
    _, ls = run_final(10**6, 1000, 1000, seed=1000)
    sig = np.exp(ls)
    e1 = float(theory.moment_std(1, 1000, 1000))
    sd1 = math.sqrt(float(theory.moment_std(2, 1000, 1000)) - e1 * e1)
    assert abs(_z(sig, e1, sd1)) < Z_MAX
    assert abs(sig.mean() - 0.4721) < 0.002
