"""Curation on token chains: the kernel against the literal reference in distribution,
the plumbing (config, CLI, stored results), and the exact costs.

Tolerances are in Monte Carlo standard errors (|z| < 4, fixed seeds).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from collapsesim.cli import app
from collapsesim.config import ConfigError
from collapsesim.curation import Curation
from collapsesim.experiments import tokens as runner
from collapsesim.families.tokens import TokenConfig
from collapsesim.kernels import categorical as kern
from collapsesim.regimes import Regime
from tests import naive

Z = 4.0
K, N, T = 30, 40, 4


def _p0() -> np.ndarray:
    p = np.arange(1, K + 1, dtype=float) ** -1.0
    return p / p.sum()


def _kernel(cur: Curation, chains: int = 4000, seed: int = 1) -> dict[str, np.ndarray]:
    p0 = _p0()
    rng, train, size, fixed = kern.init_token_chains(seed, np.arange(chains), N)
    rec = np.empty((chains, T + 1, kern.NUM_METRICS))
    cost, tally = np.ones((chains, T + 1)), np.zeros((chains, 2))
    kern.advance_tokens(rng, train, size, fixed, 0, T, np.arange(1, T + 1), rec, num_samples=N,
                        regime=Regime.REPLACE.code, num_real=0, p0=p0, curation=cur.vector(),
                        tally=tally, rec_cost=cost)  # fmt: skip
    return {"heterozygosity": rec[:, -1, kern.HET], "support": rec[:, -1, kern.SUP],
            "candidates": cost[:, -1]}  # fmt: skip


def _z2(a: np.ndarray, b: np.ndarray) -> float:
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    return 0.0 if se == 0 and a.mean() == b.mean() else (a.mean() - b.mean()) / se


CASES = [
    Curation(select="interval", select_strength=1.5),
    Curation(select="self-interval", select_strength=1.0),
    Curation(select="soft", select_strength=0.7),
    Curation(select="top", select_strength=0.5),
    Curation(select="self-top", select_strength=0.3),
    Curation(best_of=3),
]


@pytest.mark.parametrize("cur", CASES, ids=lambda c: c.describe())
def test_kernel_matches_the_literal_reference(cur):
    ours = _kernel(cur)
    ref = naive.curated_token_chains(np.random.default_rng(3), 1000, T, N, _p0(), cur)
    for name in ("heterozygosity", "support", "candidates"):
        assert abs(_z2(ours[name], ref[name])) < Z, name


def test_curation_changes_the_chain():
    """The reference comparison could pass with operators ignored: they must move it."""
    plain = _kernel(Curation(select="soft", select_strength=0.0))
    soft = _kernel(Curation(select="soft", select_strength=2.0))
    assert _z2(plain["heterozygosity"], soft["heterozygosity"]) > 10


def test_cli_runs_token_curation_and_stores_it(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["tokens", "--chains", "100", "--generations", "20",
                                   "--categories", "50", "--select", "top",
                                   "--select-strength", "0.5", "--out", str(out), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["mean_final_candidates"] == s["theory_mean_final_candidates"] == 2.0
    assert s["theory_mean_final_heterozygosity"] is None  # no closed form under curation
    loaded = runner.load(out)
    assert loaded.config.select == "top"
    assert loaded.aggregates["candidates"]["mean"][-1] == 2.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"best_of": 2, "reward": "linear:1"}, "loglik only"),
        ({"select": "top", "select_strength": 0.0}, "in (0, 1]"),
        ({"select": "soft", "backend": "jax", "regime": "accumulate-subsample"}, "numba backend"),
    ],
)
def test_bad_token_operators_are_config_errors(args, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TokenConfig(**args)


def test_tokens_have_no_gaussian_only_operators():
    res = CliRunner().invoke(app, ["tokens", "--help"])
    assert "--select" in res.output
    assert "--sampling-bias" not in res.output
    assert "--correction" not in res.output


@pytest.mark.parametrize(
    "cur",
    [
        CASES[0],
        pytest.param(CASES[1], marks=pytest.mark.slow),  # one JAX program per case
        CASES[2],
        CASES[3],
        pytest.param(CASES[4], marks=pytest.mark.slow),
        CASES[5],
    ],
    ids=lambda c: c.describe(),
)
def test_jax_matches_numba_in_distribution(cur):
    ops = {k: v for k, v in cur.to_dict().items() if k in ("select", "select_strength", "best_of")}
    common = {"num_chains": 2000, "num_generations": T, "num_samples": N, "categories": K,
              "record_every": 1, **ops}  # fmt: skip
    a = runner.run(TokenConfig(**common, seed=1))
    b = runner.run(TokenConfig(**common, seed=2, backend="jax", precision="float64"))
    for name in ("heterozygosity", "support", "candidates"):
        assert abs(_z2(a.final[name], b.final[name])) < Z, name


def test_starved_generations_on_both_backends():
    """An interval the model has lost: nothing of it is kept, on either backend."""
    common = {"num_chains": 200, "num_generations": 4, "num_samples": 10, "categories": 1000,
              "select": "interval", "select_strength": 0.1}  # fmt: skip
    a = runner.run(TokenConfig(**common)).summary
    b = runner.run(TokenConfig(**common, backend="jax", precision="float64")).summary
    assert a["starved_generations"] > 0
    assert b["starved_generations"] > 0
