"""The JAX chains' counter-based draws: exact distributions, and a lane's values never
depending on other lanes, the block shape or the fallback's capacity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

jax = pytest.importorskip("jax")

from collapsesim.jaxchains import _draws as draws
from collapsesim.keys import chain_keys


def _stats(chains: int, gens: int, k: int, dtype: str, seed: int = 5, start: int = 0):  # type: ignore[no-untyped-def]
    with jax.enable_x64(True):
        lo, hi = draws.chain_words(chain_keys(seed, np.arange(chains)))
        ts = jax.numpy.arange(start, start + gens, dtype=np.uint64)
        # A new function each call: jit would otherwise reuse a trace made before a
        # test's monkeypatch.
        z, m2 = jax.jit(lambda a, b, t: draws.group_stats(a, b, t, k, 0, dtype))(lo, hi, ts)
        return np.asarray(z, np.float64), np.asarray(m2, np.float64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k", [2, 3, 5, 30, 1001])
def test_group_statistics_are_exact(k: int, dtype: str) -> None:
    """zbar ~ N(0, 1/k) and M2 ~ chi2(k - 1), independent: KS, moments within 4 MC s.e."""
    z, m2 = _stats(2000, 200, k, dtype)
    z, m2 = z.ravel() * math.sqrt(k), m2.ravel()
    n = len(m2)
    assert stats.kstest(m2, stats.chi2(k - 1).cdf).pvalue > 1e-3
    assert stats.kstest(z, "norm").pvalue > 1e-3
    dof = k - 1
    assert abs(m2.mean() - dof) < 4 * math.sqrt(2 * dof / n)
    # Var of the sample variance of chi2: 2 dof, fourth central moment 12 dof (dof + 4).
    var_se = math.sqrt((12 * dof * (dof + 4) - (2 * dof) ** 2) / n)
    assert abs(m2.var() - 2 * dof) < 4 * var_se
    assert abs(np.corrcoef(z, m2)[0, 1]) < 4 / math.sqrt(n)


def test_a_lane_ignores_the_other_lanes_and_the_block() -> None:
    """Chain i's draws at generation t are the same in any set of chains and generations."""
    z, m2 = _stats(300, 40, 3, "float32")
    z2, m22 = _stats(37, 7, 3, "float32", start=20)
    np.testing.assert_array_equal(z[:37, 20:27], z2)
    np.testing.assert_array_equal(m2[:37, 20:27], m22)


def test_fallback_capacity_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gathering one row per round (hundreds of rounds) gives the same values as one round."""
    z, m2 = _stats(400, 50, 3, "float64")  # shape 1: about 5% of first tries rejected
    monkeypatch.setattr(draws, "_capacity", lambda lanes, a, dtype: 1)
    z1, m21 = _stats(400, 50, 3, "float64")
    np.testing.assert_array_equal(m2, m21)
    np.testing.assert_array_equal(z, z1)


@pytest.mark.parametrize("bits", [0, 1, 4])
@pytest.mark.parametrize("k", [3, 30])
def test_undecided_tries_are_finished_exactly(
    monkeypatch: pytest.MonkeyPatch, bits: int, k: int
) -> None:
    """With few spare bits many first tries are undecided (with none, all of them): they
    go through the fallback's refinement of the uniform, and M2 must still be chi-square."""
    monkeypatch.setattr(draws, "_spare", lambda w, dtype: (w & np.uint64(2**bits - 1), bits))
    # 8e5 draws: enough to see a refinement that ignored the spare bits (p ~ 1e-17 at
    # bits = 1, k = 3, against 0.25 for the exact one).
    _, m2 = _stats(2000, 400, k, "float32")
    m2 = m2.ravel()
    assert stats.kstest(m2, stats.chi2(k - 1).cdf).pvalue > 1e-3
    assert abs(m2.mean() - (k - 1)) < 4 * math.sqrt(2 * (k - 1) / len(m2))


def test_rejection_probability_matches_the_tries() -> None:
    """The fallback's sizing: the computed rejection rate of a first try (shape 1) agrees
    with the counted rate of first tries the squeeze-free test rejects."""
    a = 1.0
    d, c = a - 1 / 3, 1 / math.sqrt(9 * (a - 1 / 3))
    rng = np.random.default_rng(0)
    x = rng.standard_normal(400_000)
    u = rng.random(400_000)
    y = c * x
    ok = y > -1
    h = np.full_like(x, -np.inf)
    h[ok] = d * (3 * np.log1p(y[ok]) - 3 * y[ok] + 1.5 * y[ok] ** 2 - y[ok] ** 3)
    rate = np.mean(~(np.log(u) < h))
    p = draws._rejection(a)
    assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / len(x))
