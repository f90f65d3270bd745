"""Benchmarks of the multivariate Gaussian chains against the NumPy loop a paper would
write (draw n points from the fit, refit mean and covariance), on equal chain-generations."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from ..regimes import Regime
from ._chains import _ratio_row
from ._core import Row, Sizes, side

__all__ = ["mvgaussian_rows", "numpy_sample_loop"]


def mv_kernel(chains: int, n: int, d: int, generations: int, sufficient: bool) -> Callable[[], int]:
    """Our chains from N(0, I), replace, recording nothing: the baseline computes no
    metrics either (a recorded model's metrics cost O(d^3) more)."""
    from ..families.mvgaussian import METRICS
    from ..kernels import mvgaussian as kern

    mu0, chol0 = np.zeros(d), np.eye(d)
    evaluation = kern.evaluation_vector(np.eye(d), 1, float(d))
    slots = np.full(generations, -1, np.int64)

    def go() -> int:
        rng, mu, scale, u = kern.init_chains(0, np.arange(chains), mu0, chol0)
        rec = np.empty((chains, len(METRICS), 1))
        kern.advance(rng, mu, scale, u, 0, generations, slots, rec, num_samples=n, ddof=0,
                     regime=Regime.REPLACE.code, num_real=0, sufficient=sufficient, mu0=mu0,
                     chol0=chol0, evaluation=evaluation, probe=np.zeros((0, d)))  # fmt: skip
        return chains * generations

    return go


def numpy_sample_loop(chains: int, n: int, d: int, generations: int) -> int:
    """The notebook way, per chain and generation: ``x = mu + z L'`` for n standard normal
    rows z (L the Cholesky factor of the fit; faster than ``multivariate_normal``'s SVD),
    then ``mean`` and ``np.cov`` (ddof 0)."""
    rng = np.random.default_rng(0)
    done = 0
    for _ in range(chains):
        mu: np.ndarray = np.zeros(d)
        chol: np.ndarray = np.eye(d)
        for _ in range(generations):
            x = mu + rng.standard_normal((n, d)) @ chol.T
            mu = x.mean(axis=0)
            chol = np.linalg.cholesky(np.cov(x, rowvar=False, ddof=0))
            done += 1
    return done


def mvgaussian_rows(sizes: Sizes) -> list[Row]:
    """The sufficient and sample methods at d = 100 against the NumPy sample loop, and the
    sufficient method's speed at d = 1000.

    Each side runs 3200 chain-generations at full size: ours then takes about 0.1 s, long
    enough that waking its threads (a few ms, now and then) does not count (at 160, as
    before 0.9, it measured half its speed).
    """
    r = sizes.repeats
    rows = []
    for n in (200, 1000, 2000):
        # Few generations: by 100 at n = 200 the covariance's condition number is past
        # 1e16 and NumPy's Cholesky of the loop's np.cov fails (ours keeps e^s U).
        d, t = 100, sizes.pick(20, 5)
        c = sizes.pick(160, 8)
        base = side("NumPy sample loop", partial(numpy_sample_loop, c, n, d, t), max(1, r // 2))
        ours = side("Numba", mv_kernel(c, n, d, t, sufficient=True), r)
        rows.append(_ratio_row("mvgaussian", f"sufficient method, d={d}, n={n}, {c} chains x "
                               f"{t} gens",
                               {"chains": c, "dim": d, "samples": n, "generations": t}, base, ours,
                               100))  # fmt: skip
        if n > 1000:
            continue  # the sample method costs what the loop costs: two sizes show it
        ours = side("Numba", mv_kernel(c, n, d, t, sufficient=False), max(1, r // 2))
        rows.append(_ratio_row("mvgaussian", f"sample method, d={d}, n={n}, {c} chains x {t} "
                               "gens", {"chains": c, "dim": d, "samples": n, "generations": t}, base, ours))  # fmt: skip
    d, n, t, c = 1000, 2000, sizes.pick(10, 2), sizes.pick(4, 2)
    ours = side("Numba", mv_kernel(c, n, d, t, sufficient=True), max(1, r // 2))
    rows.append(Row("mvgaussian", f"sufficient method at d={d}, n={n}, {c} chains x {t} gens",
                    {"dim": d, "samples": n, "generations": t, "chains": c}, ours,
                    text={"ours": f"{ours.seconds / ours.done * 1e3:.0f} ms per chain-generation "
                          "(all threads)"}))  # fmt: skip
    return rows
