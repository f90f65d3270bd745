"""Curation on the JAX Gaussian chains: every kind drawn from its kept law (truncated
normals, top_k, Gumbel-max) must agree in distribution with the Numba kernels, which draw
candidates literally; costs are their expectations given the model.

Tolerances are in Monte Carlo standard errors (|z| < 4, fixed seeds).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import truncnorm

from collapsesim.config import ConfigError
from collapsesim.experiments import gaussian as runner
from collapsesim.families.gaussian import GaussianConfig

Z = 4.0
SIZE = {"num_chains": 4000, "num_generations": 5, "num_samples": 40, "record_every": 1}


def _z2(a: np.ndarray, b: np.ndarray) -> float:
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    return 0.0 if se == 0 and a.mean() == b.mean() else (a.mean() - b.mean()) / se


SLOW = pytest.mark.slow  # each case compiles its own JAX program: the rest under -m slow
CASES = [
    pytest.param({"sampling_bias": 0.8}, "sufficient", marks=SLOW),
    ({"select": "soft", "select_strength": 2.0}, "sufficient"),
    ({"correction": 1.0, "sampling_bias": 1.2}, "sufficient"),
    pytest.param({"select": "soft", "select_strength": 2.0}, "sample", marks=SLOW),
    pytest.param({"select": "interval", "select_strength": 1.0}, "sample", marks=SLOW),
    ({"select": "self-interval", "select_strength": 1.0, "sampling_bias": 1.2}, "sample"),
    ({"select": "top", "select_strength": 0.5}, "sample"),
    pytest.param({"select": "self-top", "select_strength": 0.25}, "sample", marks=SLOW),
    pytest.param({"best_of": 4}, "sample", marks=SLOW),
    ({"best_of": 3, "reward": "linear:1.5"}, "sample"),
    ({"select": "interval", "select_strength": 0.5, "correction": 0.3}, "sample"),
]


@pytest.mark.parametrize(("ops", "method"), CASES, ids=lambda v: str(v))
def test_jax_matches_numba_in_distribution(ops, method):
    numba = runner.run(GaussianConfig(**SIZE, **ops, method=method, seed=1))
    jax = runner.run(GaussianConfig(**SIZE, **ops, method=method, seed=2, backend="jax",
                                    precision="float64"))  # fmt: skip
    for name in ("sigma", "mu", "candidates"):
        a, b = numba.final[name], jax.final[name]
        assert abs(_z2(a, b)) < Z, (name, a.mean(), b.mean())
    assert abs(_z2(numba.final["mu"] ** 2, jax.final["mu"] ** 2)) < Z


def test_jax_fresh_regime_and_its_costs():
    ops = {"select": "top", "select_strength": 0.4, "regime": "fresh", "fresh_fraction": 0.2}
    numba = runner.run(GaussianConfig(**SIZE, **ops, seed=1))
    jax = runner.run(GaussianConfig(**SIZE, **ops, seed=2, backend="jax", precision="float64"))
    assert abs(_z2(numba.final["sigma"], jax.final["sigma"])) < Z
    s = jax.summary
    assert s["mean_final_candidates"] == pytest.approx(s["theory_mean_final_candidates"])
    assert s["mean_candidates"] == pytest.approx(s["theory_mean_final_candidates"])


def test_jax_curation_refuses_what_it_cannot_do():
    with pytest.raises(ConfigError, match="numba backend"):
        GaussianConfig(backend="jax", regime="accumulate-subsample", select="soft")
    with pytest.raises(ConfigError, match="method sample"):
        GaussianConfig(backend="jax", method="sufficient", select="top", select_strength=0.5)


def test_jax_interval_far_in_a_tail_gives_up_as_numba_does():
    """A model far outside the kept interval: no NaN, the generation counted as starved."""
    ops = {"num_chains": 400, "num_generations": 4, "num_samples": 10, "select": "interval",
           "select_strength": 0.05, "sampling_bias": 0.01}  # fmt: skip
    numba = runner.run(GaussianConfig(**ops, seed=1)).summary
    jax = runner.run(GaussianConfig(**ops, seed=1, backend="jax", precision="float64"))
    assert np.all(np.isfinite(jax.final["sigma"]))
    assert numba["starved_generations"] > 0
    assert jax.summary["starved_generations"] > 0
    assert jax.summary["mean_candidates"] is not None


def test_jax_truncated_draws_in_both_tails():
    import jax

    from collapsesim.jaxchains._curation import _truncated

    with jax.enable_x64(True):
        for lo, hi in ((3.0, 4.0), (-4.0, -3.0), (-0.5, 2.0)):
            k1, k2 = jax.random.split(jax.random.key(0))
            y, cost, starved = _truncated(k1, k2, lo, hi, 20000, np.float64)
            y = np.asarray(y)
            assert not bool(starved)
            assert lo <= y.min()
            assert y.max() <= hi
            ref = truncnorm(lo, hi)
            assert abs(y.mean() - ref.mean()) < Z * ref.std() / np.sqrt(len(y))
            assert float(cost) == pytest.approx(1 / (_phi(hi) - _phi(lo)), rel=1e-10)


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def test_jax_costs_without_synthetic_data():
    ops = {"num_chains": 20, "num_generations": 4, "regime": "fresh", "fresh_fraction": 1.0,
           "sampling_bias": 0.8}  # fmt: skip
    s = runner.run(GaussianConfig(**ops, backend="jax")).summary
    assert s["mean_candidates"] == 1.0
