"""Benchmarks of the regression chains against the NumPy loop a paper writes, equal work.

The baseline is Dohmatob et al.'s and Gerstgrasser et al.'s experiment as a notebook runs
it, chain after chain: ``y = X @ w + sigma * rng.standard_normal(N)`` and
``w = np.linalg.lstsq(X, y)`` every generation (with a fresh design, new rows ``X`` first).
Ours runs the same chains and generations, all threads, OLS under replace.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np

from ..regimes import Regime
from ._chains import _ratio_row, last_slot
from ._core import Row, Sizes, side

__all__ = ["regression_rows"]

N, D = 1000, 100


def regression_kernel(chains: int, generations: int, fresh: bool) -> Callable[[], int]:
    """Our OLS chains under replace, d = 100, N = 1000, recording the last generation."""
    from ..kernels import regression as kern

    model = kern.Model(N, np.ones(D), np.full(D, 1 / math.sqrt(D)), 1.0, 0.0, fresh,
                       Regime.REPLACE.code, 0, generations)  # fmt: skip
    slots = last_slot(generations)
    rec = np.empty((chains, len(kern.METRICS), 1))

    def go() -> int:
        st = kern.new_state(0, np.arange(chains), model)
        kern.advance(st, 0, generations, slots, rec, model)
        return chains * generations

    return go


def numpy_regression(chains: int, generations: int, fresh: bool) -> int:
    """The paper's loop: per chain, label with the last fit plus noise and refit by lstsq."""
    done = 0
    for c in range(chains):
        rng = np.random.default_rng(c)
        x = rng.standard_normal((N, D))
        w = np.full(D, 1 / math.sqrt(D))
        for _ in range(generations):
            if fresh:
                x = rng.standard_normal((N, D))
            y = x @ w + rng.standard_normal(N)
            w = np.linalg.lstsq(x, y, rcond=None)[0]
            done += 1
    return done


def regression_rows(sizes: Sizes) -> list[Row]:
    """Fixed and fresh designs (d = 100, N = 1000) against the lstsq loop, equal work."""
    r = sizes.repeats
    rows = []
    for fresh in (False, True):
        c, t = sizes.pick(16, 4), sizes.pick(25, 10)
        work = {"chains": c, "generations": t, "samples": N, "dim": D}
        base = side("NumPy lstsq loop", partial(numpy_regression, c, t, fresh), max(1, r // 2))
        ours = side("Numba", regression_kernel(c, t, fresh), r)
        design = "fresh design (new rows each generation)" if fresh else "fixed design"
        rows.append(_ratio_row("regression", f"OLS chains, {design}, {c} chains x {t} gens, "
                               f"N={N}, d={D}", work, base, ours, None if fresh else 10))  # fmt: skip
    return rows
