"""Benchmarks of the KDE chains against the NumPy loop a paper writes, equal work."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np

from ..regimes import Regime
from ._chains import _ratio_row
from ._core import Row, Sizes, side

__all__ = ["kde_rows", "numpy_kde"]

N, D, HELD = 1000, 2, 256


def kde_kernel(chains: int, generations: int, rule: str | float, heldout: int = 0
               ) -> Callable[[], int]:  # fmt: skip
    """Our chains from N(0, I_2), n = 1000, replace: no metrics (``heldout`` 0) or the
    held-out NLL of every generation."""
    from ..kernels import kde as kern

    fixed = not isinstance(rule, str)
    held = kern.heldout_sample(kern.GAUSSIAN, np.zeros(3), np.zeros((0, D)), max(heldout, 1), D, 0)
    if heldout:
        slots, records = np.arange(1, generations + 1), generations + 1
    else:
        slots, records = np.full(generations, -1, np.int64), 1

    def go() -> int:
        st = kern.init_chains(0, np.arange(chains), N, D, N)
        rec = np.empty((chains, len(kern.METRICS), records))
        kern.advance(st, 0, generations, slots, rec, num_samples=N, regime=Regime.REPLACE.code,
                     num_real=0, bandwidth=kern.FIXED if fixed else kern.BANDWIDTHS[str(rule)],
                     bandwidth_value=float(rule) if fixed else 1.0, original=kern.GAUSSIAN,
                     params=np.zeros(3), points=np.zeros((0, D)), heldout=held,
                     w2_kind=kern.W2_NONE)  # fmt: skip
        return chains * generations

    return go


def numpy_kde(chains: int, generations: int, rule: str | float, heldout: int = 0) -> int:
    """The loop of a paper, chain after chain: ``idx = rng.integers(n, size=n)``, ``x =
    x[idx] + h * rng.standard_normal((n, d))``, Scott's h from ``np.std``; with ``heldout``,
    the NLL of a held-out sample (``logsumexp`` over the n kernels) every generation."""
    from scipy.special import logsumexp

    rng = np.random.default_rng(0)
    held = rng.standard_normal((max(heldout, 1), D))
    done = 0
    for _ in range(chains):
        x = rng.standard_normal((N, D))
        for _ in range(generations):
            if isinstance(rule, str):
                h = N ** (-1 / (D + 4)) * math.sqrt(float(np.mean(np.std(x, axis=0, ddof=1) ** 2)))
            else:
                h = float(rule)
            idx = rng.integers(N, size=N)
            x = x[idx] + h * rng.standard_normal((N, D))
            if heldout:
                d2 = ((held[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
                ll = logsumexp(-d2 / (2 * h * h), axis=1) - math.log(N * 2 * math.pi * h * h)
                float(-ll.mean())
            done += 1
    return done


def kde_rows(sizes: Sizes) -> list[Row]:
    """KDE chains (n = 1000, d = 2) against the NumPy loop, fixed and Scott's bandwidth, no
    metrics on either side; and both with the held-out NLL (256 points) every generation."""
    r = sizes.repeats
    rows = []
    c, t = sizes.pick(200, 40), sizes.pick(50, 10)
    work = {"chains": c, "generations": t, "samples": N, "dim": D}
    for rule in (0.1, "scott"):
        base = side("NumPy loop", partial(numpy_kde, c, t, rule), max(1, r // 2))
        ours = side("Numba", kde_kernel(c, t, rule), r)
        what = f"h = {rule}" if not isinstance(rule, str) else "Scott's h"
        rows.append(_ratio_row("kde", f"KDE chains, {c} chains x {t} gens, n={N}, d={D}, {what}, "
                               "no metrics", work, base, ours, 10))  # fmt: skip
    c, t = sizes.pick(40, 8), sizes.pick(20, 5)
    work = {"chains": c, "generations": t, "samples": N, "dim": D, "heldout": HELD}
    base = side("NumPy loop + logsumexp", partial(numpy_kde, c, t, 0.1, HELD), max(1, r // 2))
    ours = side("Numba", kde_kernel(c, t, 0.1, HELD), r)
    rows.append(_ratio_row("kde", f"KDE chains, {c} chains x {t} gens, n={N}, d={D}, held-out "
                           f"NLL ({HELD} points) every generation", work, base, ours))  # fmt: skip
    return rows
