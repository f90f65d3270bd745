"""Regression chains: the kernel against the literal reference, theory by z-score, the runner."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import typer
from naive import regression_chain
from typer.testing import CliRunner

from collapsesim import store
from collapsesim.config import ConfigError
from collapsesim.curation import Curation
from collapsesim.experiments import regression as runner
from collapsesim.families import FAMILIES
from collapsesim.families.regression import (
    FAMILY,
    RegressionConfig,
    expected,
    ridge_given_design,
)
from collapsesim.kernels import regression as kr
from collapsesim.regimes import Regime

D, N, T = 3, 10, 4
SCALES = np.sqrt(np.array([1.7, 0.9, 0.4]))
W_STAR = np.array([0.6, -0.3, 0.8])
SIGMA = 0.7


def _kernel(regime: str, design: str, ridge: float, num_real: int, cur: Curation | None,
            chains: int = 2, seed: int = 4) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:  # fmt: skip
    m = kr.Model(N, SCALES, W_STAR, SIGMA, ridge, design == "fresh", Regime(regime).code,
                 num_real, T)  # fmt: skip
    st = kr.new_state(seed, np.arange(chains), m)
    rec = np.full((chains, len(kr.METRICS), T + 1), np.nan)
    kw = {}
    if cur is not None:
        kw = {"curation": cur.vector(), "tally": np.zeros((chains, 2)),
              "rec_cost": np.ones((chains, T + 1))}  # fmt: skip
    kr.advance(st, 0, T, np.arange(1, T + 1), rec, m, **kw)
    return rec, kw.get("rec_cost"), kw.get("tally")


def _check_naive(regime, design, ridge, cur, seed=4):  # type: ignore[no-untyped-def]
    num_real = 3 if regime in ("fresh", "keep-original") else 0
    rec, cost, tally = _kernel(regime, design, ridge, num_real, cur, seed=seed)
    for c in range(rec.shape[0]):
        ref = regression_chain(seed, c, T, n=N, scales=SCALES, w_star=W_STAR, sigma=SIGMA,
                               ridge=ridge, design=design, regime=regime, num_real=num_real,
                               cur=cur)  # fmt: skip
        for k, name in enumerate(kr.METRICS):
            np.testing.assert_allclose(rec[c, k, 1:], ref[name][1:], rtol=1e-10, atol=1e-13,
                                       err_msg=f"{name} of chain {c}")  # fmt: skip
        if cur is not None:
            np.testing.assert_allclose(cost[c, 1:], ref["candidates"][1:], rtol=1e-12)
            assert tally[c, 0] == pytest.approx(ref["candidates"][2:].sum(), rel=1e-12)


@pytest.mark.parametrize("ridge", [0.0, 0.08])
@pytest.mark.parametrize("design", ["fixed", "fresh"])
@pytest.mark.parametrize("regime", [r.value for r in Regime])
def test_kernel_is_the_literal_chain(regime: str, design: str, ridge: float) -> None:
    _check_naive(regime, design, ridge, None)


CURATIONS = [
    Curation(sampling_bias=0.6, correction=0.5),
    Curation(select="interval", select_strength=0.8),
    Curation(select="self-interval", select_strength=0.5, sampling_bias=1.3),
    Curation(select="soft", select_strength=2.0),
    Curation(best_of=5, correction=0.2),
]


@pytest.mark.parametrize("cur", CURATIONS, ids=lambda c: c.describe())
@pytest.mark.parametrize(("regime", "design"), [("replace", "fixed"), ("fresh", "fixed"),
                         ("accumulate-subsample", "fresh"), ("keep-original", "fresh")])  # fmt: skip
def test_curated_kernel_is_the_literal_chain(regime: str, design: str, cur: Curation) -> None:
    _check_naive(regime, design, 0.03 if design == "fresh" else 0.0, cur)


def test_designs_are_the_kernels_rows_and_rebuild_restores_the_derived_arrays() -> None:
    m = kr.Model(N, SCALES, W_STAR, SIGMA, 0.05, False, Regime.ACCUMULATE.code, 0, T)
    st = kr.new_state(9, np.arange(5, 8), m)
    rec = np.zeros((3, 4, 2))
    kr.advance(st, 0, 2, np.array([-1, 1]), rec, m)
    np.testing.assert_array_equal(kr.designs(9, np.arange(5, 8), N, SCALES), st["design"])
    again = kr.rebuild(kr.snapshot(st, 2, m), 9, 5, m)
    for name in kr.DERIVED:
        np.testing.assert_array_equal(again[name], st[name], err_msg=name)


def test_a_singular_fit_ends_its_chain_the_same_way_in_any_blocks() -> None:
    # OLS on N = d + 1 rows subsampled from copies of a fixed design: soon fewer than d
    # distinct rows, no fit. The chain's metrics are NaN from then on.
    m = kr.Model(D + 1, SCALES, W_STAR, SIGMA, 0.0, False, Regime.ACCUMULATE_SUBSAMPLE.code, 0, 20)
    recs = []
    for cuts in ([0, 20], [0, 3, 11, 20]):
        st = kr.new_state(2, np.arange(6), m)
        rec = np.zeros((6, 4, 21))
        for a, b in itertools.pairwise(cuts):
            kr.advance(st, a, b, np.arange(a + 1, b + 1), rec, m)
        recs.append(rec)
    np.testing.assert_array_equal(recs[0], recs[1])
    dead = np.isnan(recs[0][:, 0, 1:])
    assert dead[:, -1].all()
    assert not dead[:, 0].any()
    assert np.all(dead[:, 1:] >= dead[:, :-1])  # once NaN, always NaN


# --- theory by z-score (fixed seeds; the tolerance is the Monte Carlo standard error) --------

SMALL = {"num_samples": 20, "dim": 5, "num_generations": 10}


def _z(cfg: RegressionConfig, names: tuple[str, ...]) -> dict[str, float]:
    s = runner.run(cfg).summary
    assert all(s[f"theory_mean_final_{n}"] is not None for n in names)
    return {n: s[f"z_mean_final_{n}"] for n in names}


ALL = ("risk", "weight_error", "noise_variance", "prediction_variance")


@pytest.mark.parametrize("kw", [
    {}, {"design": "fresh"}, {"regime": "accumulate"}, {"spectrum": "powerlaw:1.5", "noise": 0.5},
    {"regime": "accumulate", "spectrum": "powerlaw:2", "sampling_bias": 0.6},
    {"sampling_bias": 0.7, "correction": 0.5}, {"design": "fresh", "correction": 2.0},
], ids=str)  # fmt: skip
def test_ols_metrics_match_theory(kw: dict) -> None:
    cfg = RegressionConfig(num_chains=8000, seed=21, **SMALL, **kw)
    for name, z in _z(cfg, ALL).items():
        assert abs(z) < 4, (name, z)


def test_accumulate_with_correction_matches_theory() -> None:
    cfg = RegressionConfig(num_chains=8000, seed=22, regime="accumulate", correction=0.4,
                           sampling_bias=1.3, **SMALL)  # fmt: skip
    for name, z in _z(cfg, ("risk", "weight_error", "prediction_variance")).items():
        assert abs(z) < 4, (name, z)


def test_the_z_test_rejects_a_wrong_closed_form() -> None:
    # sigma^2 d t / (N - d) instead of / (N - d - 1): 7% lower, rejected at these sizes.
    cfg = RegressionConfig(num_chains=8000, seed=23, **SMALL)
    s = runner.run(cfg).summary
    wrong = cfg.noise**2 * cfg.dim * cfg.num_generations / (cfg.num_samples - cfg.dim)
    assert (s["mean_final_risk"] - wrong) / s["stderr_final_risk"] > 4
    assert abs(s["z_mean_final_risk"]) < 4


def test_the_exact_forms_of_the_papers() -> None:
    t = np.arange(0, 6)
    cfg = RegressionConfig(num_samples=50, dim=8, noise=2.0)
    c = 4.0 * 8 / (50 - 8 - 1)
    np.testing.assert_allclose(expected(cfg, t)["risk"], c * t, rtol=1e-13)
    acc = RegressionConfig(num_samples=50, dim=8, noise=2.0, regime="accumulate")
    h2 = np.concatenate([[0.0], np.cumsum(1 / np.arange(1, 6) ** 2)])
    np.testing.assert_allclose(expected(acc, t)["risk"], c * h2, rtol=1e-12)
    s = runner.run(RegressionConfig(num_chains=4, num_generations=3, regime="accumulate",
                                    num_samples=50, dim=8, noise=2.0)).summary  # fmt: skip
    assert s["theory_limit_risk"] == pytest.approx(math.pi**2 / 6 * c, rel=1e-12)
    # The correction's general accumulate form at kappa = 1 is the sum of 1 / j^2.
    nearly = RegressionConfig(num_samples=50, dim=8, noise=2.0, regime="accumulate",
                              correction=1e-9)  # fmt: skip
    np.testing.assert_allclose(expected(nearly, t)["risk"], c * h2, rtol=1e-7)
    assert expected(RegressionConfig(ridge=0.1), t) == {}
    assert expected(RegressionConfig(regime="fresh"), t) == {}
    assert expected(RegressionConfig(select="soft"), t) == {}


def test_ridge_matches_its_closed_form_given_the_design() -> None:
    cfg = RegressionConfig(num_chains=3000, seed=24, ridge=0.2, spectrum="powerlaw:1", **SMALL)
    res = runner.run(cfg)
    assert res.summary["theory_mean_final_risk"] is None
    x = kr.designs(cfg.seed, np.arange(cfg.num_chains), cfg.num_samples, np.sqrt(cfg.variances()))
    for name in ("risk", "weight_error", "prediction_variance"):
        exact = np.array([ridge_given_design(xc, cfg.w_star(), cfg.variances(), cfg.noise,
                                             cfg.ridge, [cfg.num_generations])[name][0]
                          for xc in x])  # fmt: skip
        gap = res.final[name] - exact
        assert abs(gap.mean() / (gap.std(ddof=1) / math.sqrt(len(gap)))) < 4, name
    # Ridge shrinks the chain towards 0: less prediction variance than the truth's 1.
    assert res.summary["mean_final_prediction_variance"] < 0.8


# --- the runner ----------------------------------------------------------------------------


RUN = RegressionConfig(num_chains=9, num_generations=12, num_samples=30, dim=4, seed=5,
                       regime="accumulate")  # fmt: skip


@pytest.mark.parametrize("cfg", [
    RUN,
    RegressionConfig(num_chains=9, num_generations=12, num_samples=30, dim=4, seed=6,
                     regime="accumulate-subsample", design="fresh", select="soft"),
    RegressionConfig(num_chains=9, num_generations=12, num_samples=30, dim=4, seed=7,
                     regime="keep-original", design="fresh", ridge=0.1, best_of=3),
    RegressionConfig(num_chains=9, num_generations=12, num_samples=30, dim=4, seed=8,
                     regime="accumulate-subsample", correction=0.5),
], ids=lambda c: f"{c.regime}-{c.design}")  # fmt: skip
def test_resume_batches_and_threads_give_the_same_run(
    tmp_path: Path, cfg: RegressionConfig
) -> None:
    import numba

    whole = runner.run(cfg, threads=1)
    # All threads (run with NUMBA_NUM_THREADS >= 2 to see them differ), other batches, blocks.
    other = runner.run(cfg, batch_chains=4, block_generations=5,
                       threads=int(numba.config.NUMBA_NUM_THREADS))  # fmt: skip
    out = tmp_path / "run"
    steps = runner.iterate(cfg, out=out, batch_chains=4, block_generations=3,
                           checkpoint_seconds=0)  # fmt: skip
    for _ in range(7):  # into the second batch, mid-generations
        next(steps)
    steps.close()
    assert (out / store.CHECKPOINT_FILE).is_file()
    saved = np.load(out / store.CHECKPOINT_FILE)
    assert "state_design" not in saved.files  # drawn again on resume, not stored
    resumed = runner.run(cfg, out=out, resume=True, batch_chains=2)  # the checkpoint's batches win
    loaded = runner.load(out)
    for res in (other, resumed, loaded):
        for name in (*kr.METRICS, *(("candidates",) if cfg.curation.active else ())):
            np.testing.assert_array_equal(res.final[name], whole.final[name], err_msg=name)
            np.testing.assert_array_equal(res.aggregates[name]["mean"],
                                          whole.aggregates[name]["mean"])  # fmt: skip
    for key in ("mean_final_risk", "z_mean_final_risk", "median_final_noise_variance"):
        assert loaded.summary[key] == whole.summary[key]
    assert {p.name for p in out.glob("*.parquet")} >= {"aggregates.parquet", "final.parquet",
                                                          "trajectories.parquet"}  # fmt: skip
    assert json.loads((out / store.RUN_FILE).read_text())["kernel"] == kr.KERNEL


@pytest.mark.parametrize("regime", [r.value for r in Regime])
@pytest.mark.parametrize("design", ["fixed", "fresh"])
def test_the_memory_estimate_is_the_kernels_state(regime: str, design: str) -> None:
    cfg = RegressionConfig(regime=regime, design=design, num_samples=40, dim=6, ridge=0.1,
                           num_generations=7)  # fmt: skip
    assert cfg.chain_bytes() == kr.state_bytes(runner.model(cfg))


def test_model_zero_is_the_truth_and_replace_collapses() -> None:
    res = runner.run(RegressionConfig(num_chains=50, num_generations=30, num_samples=40, dim=4,
                                      seed=2))  # fmt: skip
    agg = res.aggregates
    assert agg["risk"]["max"][0] == 0.0
    assert agg["noise_variance"]["mean"][0] == 1.0
    assert agg["prediction_variance"]["mean"][0] == pytest.approx(1.0, rel=1e-14)
    assert np.all(np.diff(agg["risk"]["mean"][::6]) > 0)  # the error walks away
    assert res.theory["risk"].shape == res.generations.shape


def test_starved_verifier_is_counted() -> None:
    cfg = RegressionConfig(num_chains=2, num_generations=3, num_samples=6, dim=2, seed=1,
                           select="interval", select_strength=1e-7)  # fmt: skip
    s = runner.run(cfg).summary
    assert s["starved_generations"] == 2 * 2  # generations 1 and 2 of both chains
    assert s["mean_final_candidates"] > 2**16 - 1


@pytest.mark.parametrize(("kw", "words"), [
    ({"noise": 0.0}, "noise must lie in"),
    ({"ridge": -1.0}, "ridge must lie in"),
    ({"design": "random"}, "unknown design"),
    ({"spectrum": "powerlaw:x"}, "spectrum must be"),
    ({"spectrum": "flat"}, "spectrum must be"),
    ({"num_samples": 10, "dim": 10}, "OLS needs more rows"),
    ({"select": "top", "select_strength": 0.5}, "select top"),
    ({"best_of": 3, "reward": "linear:1"}, "loglik only"),
    ({"regime": "accumulate-subsample", "num_samples": 20, "dim": 10}, ">= 3 x dim"),
    ({"regime": "accumulate-subsample", "design": "fresh", "num_generations": 10**5},
     "GiB of rows per chain"),
    ({"regime": "fresh", "fresh_fraction": 2.0}, "fresh fraction"),
    ({"dim": 0}, "dim must lie"),
    ({"sampling_bias": -1.0}, "sampling-bias"),
], ids=lambda v: str(v)[:40])  # fmt: skip
def test_bad_input_is_one_config_error(kw: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as err:
        RegressionConfig(**kw)
    assert "\n" not in str(err.value)


def test_kernel_wrapper_checks_what_it_indexes() -> None:
    m = kr.Model(N, SCALES, W_STAR, SIGMA, 0.0, False, Regime.REPLACE.code, 0, T)
    st = kr.new_state(0, np.arange(2), m)
    with pytest.raises(ValueError, match="rec must be"):
        kr.advance(st, 0, 1, np.array([0]), np.zeros((2, 3, 1)), m)
    with pytest.raises(ValueError, match="design"):
        kr.advance({**st, "design": st["design"][:, :5]}, 0, 1, np.array([0]),
                   np.zeros((2, 4, 1)), m)  # fmt: skip
    vec = Curation(select="top", select_strength=0.5).vector()
    with pytest.raises(ValueError, match="top"):
        kr.advance(st, 0, 1, np.array([0]), np.zeros((2, 4, 1)), m, curation=vec,
                   tally=np.zeros((2, 2)), rec_cost=np.ones((2, 1)))  # fmt: skip
    sub = m._replace(regime=Regime.ACCUMULATE_SUBSAMPLE.code)
    with pytest.raises(ValueError, match="pool"):
        kr.advance(kr.new_state(0, np.arange(2), sub), 0, T + 1, np.full(T + 1, -1),
                   np.zeros((2, 4, 1)), sub)  # fmt: skip


# --- the command line -------------------------------------------------------------------------

QUICK = ["--chains", "20", "--generations", "5", "--samples", "30", "--dim", "4"]


def _app() -> typer.Typer:
    """The registered ``collapsesim`` app, or one with only this family before registration."""
    if "regression" in FAMILIES:
        from collapsesim.cli import app

        return app
    from collapsesim.cli._build import add_family

    app = typer.Typer()
    add_family(app, FAMILY)
    app.command("noop", hidden=True)(lambda: None)  # keeps the family a subcommand
    return app


def test_cli_json_table_plot_and_errors(tmp_path: Path) -> None:
    cli, app = CliRunner(), _app()
    res = cli.invoke(app, ["regression", *QUICK, "--json", "--regime", "accumulate"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["chains"] == 20
    assert data["design"] == "fixed"
    assert data["theory_mean_final_risk"] > 0
    assert data["theory_limit_risk"] > 0
    plot = tmp_path / "r.png"
    res = cli.invoke(app, ["regression", *QUICK, "--ridge", "0.1", "--out", str(tmp_path / "o"),
                           "--plot", str(plot)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "excess risk" in res.output
    assert plot.stat().st_size > 10_000
    res = cli.invoke(app, ["regression", *QUICK, "--select", "top"])
    assert res.exit_code == 2
    assert "select top" in res.output


def test_scan_measure_is_the_risk_per_generation() -> None:
    cfg = RegressionConfig(num_chains=400, seed=3, **SMALL)
    point = FAMILY.measure(cfg, runner.run(cfg))
    exact = cfg.noise**2 * cfg.dim / (cfg.num_samples - cfg.dim - 1)
    assert point["theory_rate"] == pytest.approx(exact, rel=1e-12)
    assert abs(point["rate"] - exact) < 4 * point["rate_se"]
    assert point["level"] == pytest.approx(point["rate"] * cfg.num_generations, rel=1e-12)
