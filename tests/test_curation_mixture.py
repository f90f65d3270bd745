"""Curation on mixture chains: one component in one dimension is the Gaussian chain, so the
kernel must match the Gaussian reference loops of tests/naive.py in distribution; in two
dimensions a literal reference of Mahalanobis selection and a linear reward.

Tolerances are in Monte Carlo standard errors (|z| < 4, fixed seeds).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from collapsesim.config import ConfigError
from collapsesim.curation import Curation
from collapsesim.experiments import mixture as runner
from collapsesim.families.mixture import MixtureConfig
from tests import naive

Z = 4.0
T, N = 4, 40


def _z2(a: np.ndarray, b: np.ndarray) -> float:
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    return 0.0 if se == 0 and a.mean() == b.mean() else (a.mean() - b.mean()) / se


def _mixture(cur: Curation, dim: int = 1, chains: int = 2000, **kw):
    ops = {k: v for k, v in cur.to_dict().items() if k != "correction"}
    cfg = MixtureConfig(num_chains=chains, num_generations=T, num_samples=N, num_components=1,
                        dim=dim, seed=4, heldout=50, **ops, **kw)  # fmt: skip
    return runner.run(cfg)


CASES = [
    Curation(sampling_bias=0.8),
    Curation(select="interval", select_strength=1.0),
    Curation(select="self-interval", select_strength=1.0, sampling_bias=1.2),
    Curation(select="soft", select_strength=2.0),
    Curation(select="top", select_strength=0.5),
    Curation(select="self-top", select_strength=0.25),
    Curation(best_of=4),
    Curation(best_of=3, reward="linear:1.5"),
]


@pytest.mark.parametrize("cur", CASES, ids=lambda c: c.describe())
def test_one_component_matches_the_gaussian_reference(cur):
    res = _mixture(cur)
    _, rsig, rcost = naive.curated_gaussian_chains(np.random.default_rng(8), 1500, T, N, cur)
    # reg_covar 1e-6 is added to the fitted variance: far below these standard errors.
    assert abs(_z2(res.final["component_std"], rsig)) < Z
    assert abs(_z2(res.final["candidates"], rcost)) < Z


def _naive_2d(rng, chains, cur):
    """K = 1, d = 2 from N(0, I): Mahalanobis interval under the original, or best-of with
    the reward a . x; the fit's det(C)^(1/4) and the cost."""
    out, cost = np.empty(chains), np.empty(chains)
    slopes = np.asarray(cur.reward_slopes() or (0.0, 0.0))
    for c in range(chains):
        m, cov = np.zeros(2), np.eye(2)
        for t in range(T):
            chol = np.linalg.cholesky(cov)

            def draw(k, m=m, chol=chol):
                return m + rng.standard_normal((k, 2)) @ chol.T

            if t == 0:
                x, drawn = draw(N), N
            elif cur.best_of > 1:
                cand = draw(N * cur.best_of).reshape(N, cur.best_of, 2)
                r = cand @ slopes
                w = np.exp(r - r.max(axis=1, keepdims=True))
                pick = [rng.choice(cur.best_of, p=wi / wi.sum()) for wi in w]
                x, drawn = cand[np.arange(N), pick], N * cur.best_of
            else:
                kept, drawn = [], 0
                while len(kept) < N:
                    v = draw(1)[0]
                    drawn += 1
                    if v @ v <= cur.select_strength**2:
                        kept.append(v)
                x = np.array(kept)
            m = x.mean(axis=0)
            cov = np.cov(x.T, bias=True) + 1e-6 * np.eye(2)
        out[c] = np.linalg.det(cov) ** 0.25
        cost[c] = drawn / N
    return out, cost


@pytest.mark.parametrize(
    "cur",
    [Curation(select="interval", select_strength=1.2), Curation(best_of=3, reward="linear:1,-2")],
    ids=lambda c: c.describe(),
)
def test_two_dimensions_match_a_literal_reference(cur):
    res = _mixture(cur, dim=2)
    ref, rcost = _naive_2d(np.random.default_rng(9), 800, cur)
    assert abs(_z2(res.final["component_std"], ref)) < Z
    assert abs(_z2(res.final["candidates"], rcost)) < Z


def test_mixture_curation_refusals():
    with pytest.raises(ConfigError, match="needs 2 slope"):
        MixtureConfig(dim=2, best_of=2, reward="linear:1")
    with pytest.raises(ConfigError, match="separate curations"):
        MixtureConfig(best_of=2, select="top", select_strength=0.5)
    # No exact optimal transport between mixtures: no correction option.
    assert "correction" not in MixtureConfig.__dataclass_fields__


def test_a_stored_curated_mixture_run_loads(tmp_path):
    cfg = MixtureConfig(num_chains=20, num_generations=3, num_samples=40, dim=2, heldout=50,
                        best_of=2, reward="linear:1,0.5")  # fmt: skip
    res = runner.run(cfg, out=tmp_path / "r")
    loaded = runner.load(tmp_path / "r")
    assert loaded.config == cfg
    np.testing.assert_array_equal(loaded.final["candidates"], res.final["candidates"])
    assert loaded.summary["mean_final_candidates"] == 2.0
