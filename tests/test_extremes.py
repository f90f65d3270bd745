"""Extreme but legal parameters: right numbers, or none, never a wrong one or a crash."""

from __future__ import annotations

import math

import numpy as np
import pytest

from collapsesim import GaussianConfig, MixtureConfig, TokenConfig, run, theory

SIZES = {"num_chains": 400, "num_generations": 8, "num_samples": 20, "seed": 9}


def test_a_far_original_mean_gives_the_standard_results() -> None:
    # mu0 = 1e20: 1e20 + 0.3 is 1e20 in doubles, so the chains run in standard units.
    base = run(GaussianConfig(**SIZES))
    far = run(GaussianConfig(**SIZES, mu0=1e20))
    for key in ("mean_final_std", "var_final_mean", "mean_final_tail_mass", "z_var_final_mean"):
        assert far.summary[key] == base.summary[key], key
    assert far.summary["mean_final_tail_mass"] < 0.05  # not 1.0
    np.testing.assert_array_equal(far.final["kl_fit_orig"], base.final["kl_fit_orig"])
    np.testing.assert_allclose(far.final["mu"], 1e20, rtol=1e-15)


@pytest.mark.parametrize("method", ["sufficient", "sample"])
@pytest.mark.parametrize("sigma0", [1e-300, 1e300])
def test_a_tiny_or_huge_original_std_scales_the_standard_results(
    sigma0: float, method: str
) -> None:
    base = run(GaussianConfig(**SIZES, method=method))
    scaled = run(GaussianConfig(**SIZES, method=method, sigma0=sigma0))
    ls = scaled.final["log_sigma"]
    assert np.all(np.isfinite(ls))
    np.testing.assert_allclose(ls - math.log(sigma0), base.final["log_sigma"], atol=1e-12)
    s, b = scaled.summary, base.summary
    assert s["mean_final_std"] == pytest.approx(sigma0 * b["mean_final_std"], rel=1e-12)
    assert s["theory_mean_final_std"] == pytest.approx(sigma0 * b["theory_mean_final_std"])
    for z in ("z_mean_final_std", "z_mean_log_final_std", "z_var_final_mean", "z_median_final_std"):
        assert s[z] == pytest.approx(b[z], rel=1e-9, abs=1e-9), z
    # sigma0^2 = 1e600 is no double: the variance of the mean is then reported as unknown.
    assert (s["var_final_mean"] is None) == (sigma0 > 1)
    assert s["mean_final_tail_mass"] == pytest.approx(b["mean_final_tail_mass"], rel=1e-12)


def test_huge_smoothing_makes_every_model_uniform_with_finite_theory() -> None:
    cfg = TokenConfig(num_chains=50, num_generations=5, num_samples=20, categories=100,
                      smoothing=1e300)  # fmt: skip
    res = run(cfg)
    h = float(theory.token_heterozygosity(5, 20, np.full(100, 0.01), smoothing=1e300))
    assert h == pytest.approx(1 - 1 / 100, rel=1e-12)
    assert res.summary["theory_mean_final_heterozygosity"] == pytest.approx(0.99, rel=1e-12)
    # Every chain holds the same number: no z-score measures only the rounding.
    assert res.summary["z_mean_final_heterozygosity"] is None


def test_smoothing_zero_is_still_wright_fisher() -> None:
    p0 = np.random.default_rng(1).dirichlet(np.ones(30))
    h0 = 1 - float(np.sum(p0 * p0))
    got = theory.token_heterozygosity(np.arange(50), 40, p0)
    np.testing.assert_allclose(got, h0 * (1 - 1 / 40) ** np.arange(50), rtol=1e-13)


def test_collapsed_mixture_covariances_give_no_metric_rather_than_an_error() -> None:
    cfg = MixtureConfig(num_chains=20, num_generations=5, num_samples=20, reg_covar=1e-50,
                        heldout=50)  # fmt: skip
    res = run(cfg)
    assert res.summary["nonconverged_fraction"] > 0.5
    l2 = res.final["l2"]
    assert np.all(np.isnan(l2) | (l2 >= 0))
