"""The mixture runner, its store and resume, its metrics, and `collapsesim mixture`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from collapsesim import store
from collapsesim.cli import app
from collapsesim.config import ConfigError, MixtureConfig, original_mixture
from collapsesim.experiments import mixture as runner
from collapsesim.kernels import mixture as mx

cli = CliRunner()
SMALL = MixtureConfig(num_chains=12, num_generations=30, num_samples=200, seed=5)
QUICK = ["mixture", "--chains", "6", "--generations", "12", "--samples", "150"]
REQUIRED = {
    "chains",
    "generations",
    "samples",
    "components",
    "dim",
    "mean_final_l2",
    "mean_final_component_std",
    "mean_em_iterations",
    "nonconverged_fraction",
    "seconds",
}


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_tail_mass_of_the_original_is_the_chi_square_tail(d: int) -> None:
    # Along every direction the mass is exact, so the original's own tail is exact.
    w0, m0, c0 = original_mixture("standard", d)
    _, tail = mx.evaluate_fits(
        w0[None], m0[None], c0[None], m0, w0, m0, c0, directions=mx.tail_directions(d, 64)
    )
    assert tail[0] == pytest.approx(stats.chi2.sf(9.0, d), rel=1e-12)


def test_tail_mass_of_a_shifted_mixture_agrees_with_monte_carlo() -> None:
    # Two original components (a union of ellipses) and a fit straddling their edge.
    w0, m0, c0 = original_mixture("rare-mode", 2)
    wf = np.array([0.3, 0.7])
    mf = np.array([[1.0, 0.5], [-2.0, 0.0]])
    cf = np.array([[[2.0, 0.5], [0.5, 1.0]], [[0.3, 0.0], [0.0, 0.8]]])
    _, tail = mx.evaluate_fits(
        wf[None], mf[None], cf[None], m0, w0, m0, c0, directions=mx.tail_directions(2, 256)
    )
    x = mx.sample_mixture(wf, mf, cf, 1_000_000, 9, 0)
    inside = np.zeros(len(x), bool)
    for j in range(len(w0)):
        y = np.linalg.solve(np.linalg.cholesky(c0[j]), (x - m0[j]).T)
        inside |= (y * y).sum(axis=0) <= 9.0
    p = 1.0 - inside.mean()
    se = math.sqrt(p * (1 - p) / len(x))
    assert abs(tail[0] - p) < 4 * se


def test_heldout_loglik_is_the_mean_log_density() -> None:
    w0, m0, c0 = original_mixture("two-modes", 2)
    x = mx.sample_mixture(w0, m0, c0, 500, 1, 0)
    ll, _ = mx.evaluate_fits(
        w0[None], m0[None], c0[None], x, w0, m0, c0, directions=mx.tail_directions(2, 8)
    )
    dens = sum(w0[j] * stats.multivariate_normal(m0[j], c0[j]).pdf(x) for j in range(len(w0)))
    assert ll[0] == pytest.approx(np.log(dens).mean(), rel=1e-12)


def test_run_is_reproducible_across_batches_and_blocks() -> None:
    a = runner.run(SMALL)
    b = runner.run(SMALL, batch_chains=5, block_generations=7, threads=1)
    for name in runner.METRICS:
        np.testing.assert_array_equal(a.final[name], b.final[name])
    np.testing.assert_array_equal(a.components["covs"], b.components["covs"])
    assert a.summary["mean_em_iterations"] == b.summary["mean_em_iterations"]


def test_generation_zero_is_the_original_and_the_chain_collapses() -> None:
    res = runner.run(SMALL)
    agg = res.aggregates
    assert agg["l2"]["max"][0] == 0.0
    assert agg["component_std"]["mean"][0] == 1.0
    assert agg["tail_mass"]["mean"][0] == pytest.approx(math.exp(-4.5), rel=1e-12)
    # Fits of 200 points from N(0, I) lose spread generation after generation.
    assert agg["component_std"]["q50"][-1] < 0.95
    assert np.all(agg["l2"]["min"][1:] > 0)
    assert 1 <= res.summary["mean_em_iterations"] <= SMALL.max_iter


def test_one_component_matches_the_gaussian_std_theory() -> None:
    # K = 1, d = 1 is the Gaussian chain (MLE std): compare E[sigma_T] with theory by z-score.
    from collapsesim import theory

    cfg = MixtureConfig(
        num_chains=400, num_generations=40, num_samples=25, num_components=1, dim=1, seed=3
    )
    res = runner.run(cfg)
    sig = res.final["component_std"]
    expected = float(theory.moment_std(1, 40, 25, 0, 1.0, "replace"))
    z = (sig.mean() - expected) / (sig.std(ddof=1) / math.sqrt(len(sig)))
    assert abs(z) < 4


def test_store_load_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    whole = runner.run(SMALL)
    steps = runner.iterate(
        SMALL, out=out, batch_chains=5, block_generations=4, checkpoint_seconds=0
    )
    for _ in range(6):  # into the second batch, mid-generations
        next(steps)
    steps.close()
    assert (out / store.CHECKPOINT_FILE).is_file()
    assert not list(out.glob("*.parquet"))
    resumed = runner.run(SMALL, out=out, resume=True)
    for name in runner.METRICS:
        np.testing.assert_array_equal(resumed.final[name], whole.final[name])
    loaded = runner.load(out)
    assert loaded.summary == json.loads((out / "summary.json").read_text())
    for name in ("weights", "means", "covs"):
        np.testing.assert_allclose(loaded.components[name], whole.components[name], rtol=1e-15)
    np.testing.assert_array_equal(loaded.trajectories["l2"], whole.trajectories["l2"])
    assert {p.name for p in out.glob("*.parquet")} == {
        "aggregates.parquet",
        "trajectories.parquet",
        "components.parquet",
        "final.parquet",
    }


@pytest.mark.parametrize("regime", ["accumulate", "accumulate-subsample", "keep-original"])
def test_regimes_resume_mid_batch(tmp_path: Path, regime: str) -> None:
    cfg = MixtureConfig(
        num_chains=4, num_generations=9, num_samples=60, regime=regime, init="warm", seed=2
    )
    whole = runner.run(cfg)
    out = tmp_path / regime
    steps = runner.iterate(cfg, out=out, batch_chains=4, block_generations=2, checkpoint_seconds=0)
    for _ in range(3):
        next(steps)
    steps.close()
    resumed = runner.run(cfg, out=out, resume=True)
    np.testing.assert_array_equal(resumed.final["l2"], whole.final["l2"])


def test_config_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="at least the number of components"):
        MixtureConfig(num_components=5, num_samples=4)
    with pytest.raises(ConfigError, match="2-dimensional but dim is 3"):
        MixtureConfig(dim=3, weights0=(1.0,), means0=((0.0, 0.0),), covs0=(((1.0, 0), (0, 1)),))
    with pytest.raises(ConfigError, match="positive definite"):
        MixtureConfig(weights0=(1.0,), means0=((0.0, 0.0),), covs0=(((1.0, 2), (2, 1)),))
    with pytest.raises(ConfigError, match="reg-covar"):
        MixtureConfig(reg_covar=0.0)


def test_cli_table_json_and_plot(tmp_path: Path) -> None:
    res = cli.invoke(app, QUICK)
    assert res.exit_code == 0, res.output
    assert "component std" in res.output
    res = cli.invoke(app, [*QUICK, "--json", "--init", "warm", "--covariance", "diag"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) >= REQUIRED
    assert (data["chains"], data["components"], data["dim"]) == (6, 2, 2)
    assert (data["init"], data["covariance"]) == ("warm", "diag")
    png = tmp_path / "m.png"
    res = cli.invoke(app, [*QUICK, "--plot", str(png), "--dim", "1", "--original", "two-modes"])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_preset_and_original_file(tmp_path: Path) -> None:
    res = cli.invoke(
        app, ["mixture", "--preset", "nature-2024", "--generations", "3", "--chains", "2", "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert (data["samples"], data["components"], data["dim"], data["generations"]) == (
        1000,
        2,
        2,
        3,
    )
    f = tmp_path / "orig.json"
    f.write_text(json.dumps({"weights": [1.0], "means": [[0.0]], "covs": [[[4.0]]]}))
    res = cli.invoke(app, [*QUICK, "--original", str(f), "--components", "1", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["dim"] == 1
    assert data["original_component_std"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--components", "3", "--samples", "2"], "at least the number of components"),
        (["--covariance", "tied"], "unknown covariance"),
        (["--init", "random"], "unknown init"),
        (["--original", "nowhere"], "neither a named mixture"),
        (["--preset", "nope"], "unknown preset"),
        (["--reg-covar", "0"], "reg-covar must be positive"),
        (["--dim", "3", "--original", "BAD"], "not JSON"),
        (["--resume"], "--resume needs --out"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    args = [str(bad) if a == "BAD" else a for a in args]
    res = cli.invoke(app, [*QUICK, *args])
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output
