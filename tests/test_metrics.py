"""Per-generation metrics against independent numerical computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from collapsesim import metrics


def _kl_numeric(m1: float, s1: float, m2: float, s2: float) -> float:
    p, q = stats.norm(m1, s1), stats.norm(m2, s2)
    lo, hi = m1 - 12 * s1, m1 + 12 * s1
    return integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), lo, hi, limit=200)[0]


@pytest.mark.parametrize(("mu", "sigma"), [(0.0, 1.0), (0.3, 0.5), (-1.2, 2.0), (2.0, 0.05)])
def test_gaussian_metrics_against_numerics(mu: float, sigma: float) -> None:
    mu0, sigma0 = 0.5, 1.5
    m = metrics.gaussian_metrics(np.array([mu]), np.array([math.log(sigma)]), mu0, sigma0)
    assert m["sigma"][0] == pytest.approx(sigma)
    assert m["kl_fit_orig"][0] == pytest.approx(
        _kl_numeric(mu, sigma, mu0, sigma0), rel=1e-6, abs=1e-10
    )
    assert m["kl_orig_fit"][0] == pytest.approx(
        _kl_numeric(mu0, sigma0, mu, sigma), rel=1e-6, abs=1e-10
    )
    assert m["w2"][0] == pytest.approx(math.hypot(mu - mu0, sigma - sigma0))
    fit = stats.norm(mu, sigma)
    tail = fit.cdf(mu0 - 3 * sigma0) + fit.sf(mu0 + 3 * sigma0)
    assert m["tail_mass"][0] == pytest.approx(tail, rel=1e-9, abs=1e-300)


def test_original_has_zero_distance_and_normal_tail() -> None:
    m = metrics.gaussian_metrics(np.array([1.0]), np.array([math.log(2.0)]), 1.0, 2.0)
    assert m["w2"][0] == 0.0
    assert m["kl_fit_orig"][0] == pytest.approx(0.0, abs=1e-15)
    assert m["tail_mass"][0] == pytest.approx(2 * stats.norm.sf(3), rel=1e-12)


def test_collapsed_fit_far_below_double_range() -> None:
    m = metrics.gaussian_metrics(np.array([0.1]), np.array([-5000.0]), 0.0, 1.0)
    assert m["sigma"][0] == 0.0
    assert m["tail_mass"][0] == 0.0
    assert m["kl_orig_fit"][0] == math.inf
    assert m["kl_fit_orig"][0] == pytest.approx(5000 + 0.5 * 0.01 - 0.5)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=50))
def test_aggregate_matches_numpy(values: list[float]) -> None:
    x = np.array(values)[:, None]
    agg = metrics.aggregate(x)
    assert agg["mean"][0] == pytest.approx(x.mean(), rel=1e-9, abs=1e-6)
    assert agg["q50"][0] == pytest.approx(np.median(x), rel=1e-12, abs=1e-9)
    assert agg["min"][0] <= agg["q05"][0] <= agg["q50"][0] <= agg["q95"][0] <= agg["max"][0]
    assert agg["stderr"][0] == pytest.approx(
        x.std(ddof=1) / math.sqrt(len(values)), rel=1e-9, abs=1e-9
    )


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 60).flatmap(
        lambda c: st.lists(
            st.lists(st.floats(-1e8, 1e8), min_size=3, max_size=3), min_size=c, max_size=c
        )
    )
)
def test_aggregate_quantiles_equal_numpy(rows: list[list[float]]) -> None:
    x = np.array(rows)
    agg = metrics.aggregate(x)
    expected = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    for i, name in enumerate(("q05", "q25", "q50", "q75", "q95")):
        np.testing.assert_allclose(agg[name], expected[i], rtol=1e-12, atol=1e-6)
    np.testing.assert_array_equal(agg["min"], x.min(axis=0))
    np.testing.assert_array_equal(agg["max"], x.max(axis=0))


def _mixture_pdf(x: np.ndarray, w: np.ndarray, m: np.ndarray, c: np.ndarray) -> np.ndarray:
    return sum(
        wk * stats.multivariate_normal(mk, ck).pdf(x) for wk, mk, ck in zip(w, m, c, strict=True)
    )


def test_mixture_l2_against_quadrature_1d() -> None:
    w, m, c = np.array([0.4, 0.6]), np.array([[0.0], [2.0]]), np.array([[[1.0]], [[0.25]]])
    w0, m0, c0 = np.array([1.0]), np.array([[0.5]]), np.array([[[1.5]]])

    def sq(x: float) -> float:
        return float(
            (_mixture_pdf(np.array([x]), w, m, c) - _mixture_pdf(np.array([x]), w0, m0, c0)) ** 2
        )

    ref = math.sqrt(integrate.quad(sq, -15, 15, limit=200)[0])
    assert metrics.mixture_l2(w, m, c, w0, m0, c0) == pytest.approx(ref, rel=1e-8)


def test_mixture_l2_against_a_grid_2d_and_batched() -> None:
    w = np.array([[0.3, 0.7], [0.5, 0.5]])
    m = np.array([[[0.0, 0.0], [1.0, -1.0]], [[0.5, 0.5], [-1.0, 0.0]]])
    c = np.array(
        [
            [[[1.0, 0.3], [0.3, 0.5]], [[0.2, 0.0], [0.0, 0.2]]],
            [[[0.6, -0.1], [-0.1, 0.4]], [[1.0, 0.0], [0.0, 1.0]]],
        ]
    )
    w0, m0 = np.array([0.5, 0.5]), np.zeros((2, 2))
    c0 = np.repeat(np.eye(2)[None], 2, 0)
    got = metrics.mixture_l2(w, m, c, w0, m0, c0)
    assert got.shape == (2,)
    g = np.linspace(-8, 8, 801)
    xx, yy = np.meshgrid(g, g)
    pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
    cell = (g[1] - g[0]) ** 2
    for i in range(2):
        diff = _mixture_pdf(pts, w[i], m[i], c[i]) - _mixture_pdf(pts, w0, m0, c0)
        assert got[i] == pytest.approx(math.sqrt(np.sum(diff**2) * cell), rel=1e-5)
    assert metrics.mixture_l2(w0, m0, c0, w0, m0, c0) == pytest.approx(0.0, abs=1e-7)


def test_mixture_loglik_matches_sklearn() -> None:
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 2))
    gm = GaussianMixture(3, random_state=0).fit(x)
    held = rng.normal(size=(300, 2))
    got = metrics.mixture_loglik(held, gm.weights_, gm.means_, gm.covariances_)
    assert got == pytest.approx(gm.score(held), rel=1e-12)
    batched = metrics.mixture_loglik(
        held,
        np.stack([gm.weights_] * 2),
        np.stack([gm.means_] * 2),
        np.stack([gm.covariances_] * 2),
    )
    np.testing.assert_allclose(batched, gm.score(held), rtol=1e-12)
