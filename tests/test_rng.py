"""The random streams: distributions by goodness-of-fit tests, and stream derivation."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit, prange
from scipy import stats

from collapsesim.kernels import _rng

# Fixed seeds: every p-value below is a fixed number; the threshold 1e-4 would
# reject a correct generator once in 10^4 seeds and a wrong shape immediately.
P_MIN = 1e-4


@njit(parallel=True)
def _draw(kind, param, count, seed):
    out = np.empty(count)
    for c in prange(count // 1000):
        s0, s1 = _rng.stream_state(np.uint64(seed), np.uint64(c))
        for i in range(1000):
            if kind == 0:
                x, s0, s1 = _rng.normal(s0, s1)
            elif kind == 1:
                x, s0, s1 = _rng.chisquare(param, s0, s1)
            elif kind == 2:
                x, s0, s1 = _rng.uniform(s0, s1)
            else:
                j, s0, s1 = _rng.integer_below(np.uint64(param), s0, s1)
                x = float(j)
            out[c * 1000 + i] = x
    return out


def test_normal_matches_standard_normal() -> None:
    x = _draw(0, 0.0, 2_000_000, 11)
    assert stats.kstest(x, "norm").pvalue > P_MIN
    # Moments by z-score: Var(mean) = 1/N, Var(sample var) ~ 2/N.
    n = x.size
    assert abs(x.mean()) < 4 / np.sqrt(n)
    assert abs(x.var() - 1) < 4 * np.sqrt(2 / n)


def test_normal_tail_beyond_ziggurat_base() -> None:
    # The tail branch (|x| > 3.654) is taken for 0.026% of draws; its mass must be exact.
    x = _draw(0, 0.0, 8_000_000, 12)
    for edge in (3.6541528853610088, 4.5):
        p = 2 * stats.norm.sf(edge)
        count = np.sum(np.abs(x) > edge)
        assert abs(count - p * x.size) < 4 * np.sqrt(p * x.size)
    far = x[np.abs(x) > 3.6541528853610088]
    # Conditional tail shape: KS against the truncated normal.
    cdf = lambda v: 1 - stats.norm.sf(v) / stats.norm.sf(3.6541528853610088)
    assert stats.kstest(np.abs(far), cdf).pvalue > P_MIN


@pytest.mark.parametrize("dof", [1.0, 2.0, 2.5, 9.0, 99.0, 999.0])
def test_chisquare_matches(dof: float) -> None:
    x = _draw(1, dof, 400_000, 13)
    assert stats.kstest(x, "chi2", args=(dof,)).pvalue > P_MIN
    assert abs(x.mean() - dof) < 4 * np.sqrt(2 * dof / x.size)


def test_chisquare_zero_dof_is_zero() -> None:
    s0, s1 = (np.uint64(v) for v in _rng.stream_state(np.uint64(1), np.uint64(2)))
    x, t0, t1 = _rng.chisquare(0.0, s0, s1)
    assert x == 0.0
    assert (t0, t1) == (s0, s1)  # no draw consumed


def test_uniform_in_unit_interval() -> None:
    x = _draw(2, 0.0, 1_000_000, 14)
    assert x.min() >= 0.0
    assert x.max() < 1.0
    assert stats.kstest(x, "uniform").pvalue > P_MIN


@pytest.mark.parametrize("bound", [1, 2, 3, 7, 1000, 3 * 2**61])
def test_integer_below_uniform(bound: int) -> None:
    x = _draw(3, bound, 300_000, 15)
    assert x.min() >= 0
    assert x.max() < bound
    if bound <= 1000:
        counts = np.bincount(x.astype(np.int64), minlength=bound)
        assert stats.chisquare(counts).pvalue > P_MIN if bound > 1 else counts[0] == x.size
    else:
        assert stats.kstest(x / bound, "uniform").pvalue > P_MIN


def test_streams_hash_seed_and_chain() -> None:
    states = {_rng.stream_state(np.uint64(s), np.uint64(c)) for s in range(50) for c in range(50)}
    assert len(states) == 2500
    # Not seed + chain: (1, 0) and (0, 1) are different streams.
    assert _rng.stream_state(np.uint64(1), np.uint64(0)) != _rng.stream_state(
        np.uint64(0), np.uint64(1)
    )
    assert _rng.stream_state(np.uint64(5), np.uint64(9)) == _rng.stream_state(
        np.uint64(5), np.uint64(9)
    )


def test_neighbouring_streams_uncorrelated() -> None:
    @njit
    def first(seed, chains, k):
        out = np.empty((chains, k))
        for c in range(chains):
            s0, s1 = _rng.stream_state(np.uint64(seed), np.uint64(c))
            for i in range(k):
                out[c, i], s0, s1 = _rng.normal(s0, s1)
        return out

    x = first(3, 2000, 200)
    r = np.corrcoef(x[:-1].ravel(), x[1:].ravel())[0, 1]
    assert abs(r) < 4 / np.sqrt(x[1:].size)


def test_tight_squeeze_is_a_lower_bound() -> None:
    # exp(h) >= 1 - K c^2 x^4 on |c x| <= 1/2 needs -g(y) <= 9 K y^4 there, where
    # g(y) = 4.5 y^2 + 1 - (1 + y)^3 + 3 log(1 + y); small |y| by its series.
    y = np.linspace(-_rng._SQUEEZE_Y, _rng._SQUEEZE_Y, 2_000_001)
    y = y[np.abs(y) > 1e-2]
    g = 4.5 * y**2 + 1 - (1 + y) ** 3 + 3 * np.log1p(y)
    assert np.all(-g <= 9 * _rng._SQUEEZE_K * y**4)
    ys = np.linspace(-1e-2, 1e-2, 1001)
    series = 0.75 * ys**4 - 0.6 * ys**5 + 0.5 * ys**6 - 3 / 7 * ys**7 + 0.375 * ys**8
    assert np.all(series <= 9 * _rng._SQUEEZE_K * ys**4 + 1e-30)
    # and the bound is nearly attained at y = -1/2: the constant is not slack
    assert -g.min() / (9 * 0.5**4) > 0.9999 * _rng._SQUEEZE_K


@njit(parallel=True)
def _mean_and_gamma(a, count, seed):  # type: ignore[no-untyped-def]
    d, c, x2max = _rng.mt_constants(a)
    z = np.empty(count)
    g = np.empty(count)
    for k in prange(count // 1000):
        s0, s1 = _rng.stream_state(np.uint64(seed), np.uint64(k))
        for i in range(1000):
            zz, spare, s0, s1 = _rng.normal_bits(s0, s1)
            gg, s0, s1 = _rng.gamma_mt(d, c, x2max, spare, s0, s1)
            z[k * 1000 + i] = zz
            g[k * 1000 + i] = gg
    return z, g


@pytest.mark.parametrize("a", [1.0, 1.5, 4.5, 49.5, 499.5])
def test_gamma_with_borrowed_bits(a: float) -> None:
    # The kernels' protocol: the mean's normal lends its spare bits to the gamma's
    # acceptance test. Both must keep their laws and stay independent.
    z, g = _mean_and_gamma(a, 400_000, 16)
    assert stats.kstest(g, "gamma", args=(a,)).pvalue > P_MIN
    assert stats.kstest(z, "norm").pvalue > P_MIN
    bound = 4 / np.sqrt(z.size)
    for u, v in ((z, g), (z**2, g), (np.abs(z), np.log(g))):
        assert abs(np.corrcoef(u, v)[0, 1]) < bound
