"""Benchmarks of the Gaussian chain under curation: our kernel against the vectorised NumPy
a notebook would write for the same curated chain, and the cost of a candidate in units
of the random-number floor."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from ..curation import Curation
from ..regimes import Regime
from ._chains import floor_ns, last_slot
from ._core import Row, Sizes, si, side

__all__ = ["curation_rows", "numpy_curated"]

CASES = (
    Curation(select="self-interval", select_strength=1.5),
    Curation(select="soft", select_strength=1.0),
    Curation(best_of=4),
)


def curated_kernel(
    chains: int, n: int, generations: int, cur: Curation, drawn: list[float]
) -> Callable[[], int]:
    """Our curated chains (replace, sample method, from N(0, 1)); appends the candidates
    each run drew to ``drawn``."""
    from ..kernels import gaussian as kern

    ids = np.arange(chains)
    slots = last_slot(generations)
    vector = cur.vector()

    def go() -> int:
        rng, state = kern.init_chains(0, ids, 0.0, 1.0)
        mu, ls, cost = np.empty((chains, 1)), np.empty((chains, 1)), np.empty((chains, 1))
        tally = np.zeros((chains, 2))
        kern.advance(rng, state, 0, generations, slots, mu, ls, num_samples=n, ddof=0,
                     regime=Regime.REPLACE.code, num_real=0, sufficient=False, mu0=0.0,
                     sigma0=1.0, curation=vector, tally=tally, rec_cost=cost)  # fmt: skip
        drawn.append(float(chains * n * (1 + tally[:, 0].mean())))
        return chains * generations

    return go


def numpy_curated(chains: int, n: int, generations: int, cur: Curation) -> int:
    """The notebook way: every generation vectorised over chains; selection by rounds of
    ``(chains left, n)`` candidates until every chain has n kept, best-of by a
    ``(chains, n, K)`` array and a vectorised choice."""
    rng = np.random.default_rng(0)
    mu, sigma = np.zeros(chains), np.ones(chains)
    rows = np.arange(chains)
    for g in range(generations):
        if g == 0:
            data = mu[:, None] + sigma[:, None] * rng.standard_normal((chains, n))
        elif cur.best_of > 1:
            k = cur.best_of
            cand = mu[:, None, None] + sigma[:, None, None] * rng.standard_normal((chains, n, k))
            reward = -0.5 * cand**2
            w = np.exp(reward - reward.max(axis=2, keepdims=True))
            cum = np.cumsum(w / w.sum(axis=2, keepdims=True), axis=2)
            pick = np.minimum((rng.random((chains, n, 1)) >= cum).sum(axis=2), k - 1)
            data = np.take_along_axis(cand, pick[:, :, None], axis=2)[:, :, 0]
        else:
            data = np.empty((chains, n))
            count = np.zeros(chains, np.int64)
            while (left := rows[count < n]).size:
                z = rng.standard_normal((left.size, n))
                x = mu[left, None] + sigma[left, None] * z
                if cur.select == "self-interval":
                    ok = np.abs(z) <= cur.select_strength
                else:
                    ok = rng.random((left.size, n)) < np.exp(-0.5 * cur.select_strength * x * x)
                rank = np.cumsum(ok, axis=1) + count[left, None]
                put = ok & (rank <= n)
                r, col = np.nonzero(put)
                data[left[r], rank[r, col] - 1] = x[r, col]
                count[left] = np.minimum(n, count[left] + ok.sum(axis=1))
        mu, sigma = data.mean(axis=1), data.std(axis=1)
    return chains * generations


def curation_rows(sizes: Sizes) -> list[Row]:
    """The sample method under self-interval, soft and best-of 4 against NumPy; each row
    says what one candidate costs in normals of the floor."""
    r = sizes.repeats
    c, t, n = sizes.pick(1000, 200), sizes.pick(50, 20), 1000
    ns = floor_ns(sizes)
    rows = []
    for cur in CASES:
        drawn: list[float] = []
        base = side("vectorised NumPy", partial(numpy_curated, c, n, t, cur), r)
        ours = side("Numba", curated_kernel(c, n, t, cur, drawn), r)
        per = ours.seconds / drawn[-1] * 1e9
        name = f"curated sample method, {cur.describe()}, {c} chains x {t} gens, n={n}"
        ratio = base.seconds / ours.seconds
        rows.append(Row("gaussian", name, {"chains": c, "generations": t, "samples": n}, ours,
                        base, ratio, None, None,
                        {"baseline": f"{si(base.rate)} chain-gen/s ({base.label})",
                         "ours": f"{si(ours.rate)} chain-gen/s; {per:.2f} ns per candidate "
                         f"({per / ns:.2f} normals at {ns:.2f} ns; "
                         f"{drawn[-1] / (c * t * n):.2f} candidates per kept sample)"}))  # fmt: skip
    return rows
