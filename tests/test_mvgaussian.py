"""The multivariate Gaussian family: kernel against the naive reference, metrics against
NumPy, theory by z-score, the runner (Parquet, resume, batches), bad input, the CLI."""

from __future__ import annotations

import json
import math

import naive
import numpy as np
import pytest
import scipy.linalg
from typer.testing import CliRunner

from collapsesim.cli import app
from collapsesim.config import ConfigError
from collapsesim.experiments import mvgaussian as runner
from collapsesim.families.mvgaussian import METRICS, MvGaussianConfig, expected
from collapsesim.kernels import mvgaussian as kern
from collapsesim.regimes import Regime

COV0 = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, -0.2], [0.0, -0.2, 0.5]])
MU0 = np.array([1.0, -2.0, 0.5])


def _kernel(chains, generations, n, *, regime="replace", num_real=0, ddof=0, sufficient=False):
    """Models at the end of the chains, straight through the kernel; and every record."""
    d = len(MU0)
    chol0 = np.linalg.cholesky(COV0)
    rng, mu, scale, u = kern.init_chains(7, np.arange(chains), MU0, chol0)
    rec = np.zeros((chains, len(METRICS), generations + 1))
    slots = np.arange(1, generations + 1, dtype=np.int64)
    extra = {}
    if regime in ("accumulate", "keep-original"):
        extra = {"pool_n": np.zeros(chains), "pool_mean": np.zeros((chains, d)),
                 "pool_scatter": np.zeros((chains, d, d))}  # fmt: skip
    if regime == "accumulate-subsample":
        extra = {"pool": np.empty((chains, n * generations, d)),
                 "pool_size": np.zeros(chains, np.int64)}  # fmt: skip
    kern.advance(rng, mu, scale, u, 0, generations, slots, rec, num_samples=n, ddof=ddof,
                 regime=Regime(regime).code, num_real=num_real, sufficient=sufficient,
                 mu0=MU0, chol0=chol0, evaluation=kern.evaluation_vector(COV0, 1, 14.0),
                 probe=np.zeros((0, d)), **extra)  # fmt: skip
    low = np.exp(scale)[:, None, None] * u
    return mu, low @ np.swapaxes(low, 1, 2), rec


@pytest.mark.parametrize(
    ("regime", "num_real", "ddof"),
    [("replace", 0, 0), ("replace", 0, 1), ("accumulate", 0, 0), ("fresh", 3, 0),
     ("keep-original", 2, 1), ("accumulate-subsample", 0, 0)],
)  # fmt: skip
def test_sample_method_matches_naive(regime: str, num_real: int, ddof: int) -> None:
    t, n = 6, 8
    mu, cov, rec = _kernel(3, t, n, regime=regime, num_real=num_real, ddof=ddof)
    for c in range(3):
        models = naive.mvgaussian_chain(7, c, t, n, MU0, COV0, ddof=ddof, regime=regime,
                                        num_real=num_real)  # fmt: skip
        np.testing.assert_allclose(mu[c], models[-1][0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(cov[c], models[-1][1], rtol=1e-8, atol=1e-12)
        traces = [np.trace(s) / np.trace(COV0) for _, s in models[1:]]
        np.testing.assert_allclose(rec[c, METRICS.index("trace_ratio"), 1:], traces, rtol=1e-8)


@pytest.mark.parametrize("ddof", [0, 1])
def test_sufficient_method_matches_naive(ddof: int) -> None:
    t, n = 8, 6
    mu, cov, rec = _kernel(3, t, n, ddof=ddof, sufficient=True)
    for c in range(3):
        models = naive.mvgaussian_chain(7, c, t, n, MU0, COV0, ddof=ddof, sufficient=True)
        np.testing.assert_allclose(mu[c], models[-1][0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(cov[c], models[-1][1], rtol=1e-8, atol=1e-14)
        logdet = [np.linalg.slogdet(s)[1] - np.linalg.slogdet(COV0)[1] for _, s in models[1:]]
        np.testing.assert_allclose(rec[c, METRICS.index("log_det_ratio"), 1:], logdet,
                                   rtol=1e-9, atol=1e-9)  # fmt: skip


def test_metrics_match_numpy() -> None:
    """Every metric of a recorded model against its definition in NumPy and SciPy."""
    mu, cov, rec = _kernel(2, 3, 7)
    out = rec[:, :, -1]
    inv0 = np.linalg.inv(COV0)
    d = len(MU0)
    for c in range(2):
        lam = np.linalg.eigvalsh(cov[c])
        p = lam / lam.sum()
        dm = mu[c] - MU0
        root0 = scipy.linalg.sqrtm(COV0).real
        cross = scipy.linalg.sqrtm(root0 @ cov[c] @ root0).real
        ld = np.linalg.slogdet(cov[c])[1] - np.linalg.slogdet(COV0)[1]
        want = {
            "trace_ratio": np.trace(cov[c]) / np.trace(COV0),
            "det_ratio": np.linalg.det(cov[c]) / np.linalg.det(COV0),
            "log_det_ratio": ld,
            "max_eig": lam[-1],
            "min_eig": lam[0],
            "condition": lam[-1] / lam[0],
            "effective_rank": np.exp(-np.sum(p * np.log(p))),
            "mean_sq_error": dm @ dm,
            "w2": math.sqrt(dm @ dm + np.trace(cov[c] + COV0 - 2 * cross)),
            "kl_fit_orig": 0.5 * (np.trace(inv0 @ cov[c]) + dm @ inv0 @ dm - d - ld),
            "kl_orig_fit": 0.5 * (np.trace(np.linalg.solve(cov[c], COV0))
                                  + dm @ np.linalg.solve(cov[c], dm) - d + ld),
        }  # fmt: skip
        for name, value in want.items():
            np.testing.assert_allclose(out[c, METRICS.index(name)], value, rtol=1e-7,
                                       err_msg=name)  # fmt: skip
    assert np.isnan(out[:, METRICS.index("tail_mass")]).all()  # no probes


def test_tail_mass_of_the_original() -> None:
    """Probes of model 0 itself: the share beyond the 3-sigma ellipsoid is 0.27%."""
    from scipy.stats import binom, chi2

    d, m = 3, 20000
    chol0 = np.linalg.cholesky(COV0)
    out = np.empty(len(METRICS))
    kern._metrics(MU0, 0.0, chol0, MU0, chol0,
                  kern.evaluation_vector(COV0, 1, chi2.ppf(math.erf(3 / math.sqrt(2)), d)),
                  kern.probes(0, m, d), out, np.empty((d, d)), np.empty((d, d)), np.empty(d))  # fmt: skip
    p = 1 - math.erf(3 / math.sqrt(2))
    k = out[METRICS.index("tail_mass")] * m
    assert binom.cdf(k, m, p) > 1e-4
    assert binom.sf(k - 1, m, p) > 1e-4


THEORY = ("trace_ratio", "det_ratio", "log_det_ratio", "mean_sq_error")


@pytest.mark.parametrize(
    "kw",
    [{"method": "sufficient"}, {"method": "sample", "ddof": 1},
     {"method": "sample", "sampling_bias": 0.9, "original": "powerlaw:1"}],
)  # fmt: skip
def test_replace_theory_by_z_score(kw: dict) -> None:
    cfg = MvGaussianConfig(num_chains=4000, num_generations=10, num_samples=20, dim=3,
                           tail_probes=0, record_every=5, seed=3, **kw)  # fmt: skip
    s = runner.run(cfg).summary
    for name in THEORY:
        assert s[f"theory_mean_final_{name}"] is not None
        assert abs(s[f"z_mean_final_{name}"]) < 4, (name, s[f"z_mean_final_{name}"])


@pytest.mark.parametrize(
    "kw",
    [{"correction": 0.5}, {"correction": 1.0, "sampling_bias": 0.9, "method": "sample"},
     {"select": "self-interval", "select_strength": 1.5}],
)  # fmt: skip
def test_one_dimensional_curation_by_z_score(kw: dict) -> None:
    """In d = 1 the chain is the Gaussian family's: its curated E[sigma_T^2] holds for the
    trace ratio (selection by candidates, the transport map of the correction)."""
    cfg = MvGaussianConfig(num_chains=4000, num_generations=10, num_samples=20, dim=1,
                           tail_probes=0, record_every=10, seed=4, **kw)  # fmt: skip
    s = runner.run(cfg).summary
    assert s["theory_mean_final_trace_ratio"] is not None
    assert abs(s["z_mean_final_trace_ratio"]) < 4
    if "select" in kw:
        assert s["mean_final_candidates"] > 1


def test_correction_pulls_towards_the_original() -> None:
    """In d = 3 the transport map keeps the chain near the original, by both methods alike."""
    kw = {"num_chains": 300, "num_generations": 60, "num_samples": 20, "dim": 3,
          "tail_probes": 0, "original": "powerlaw:1"}  # fmt: skip
    free = runner.run(MvGaussianConfig(**kw)).summary
    for method in ("sufficient", "sample"):
        s = runner.run(MvGaussianConfig(**kw, correction=1.0, method=method)).summary
        assert s["mean_final_w2"] < 0.5 * free["mean_final_w2"]
        assert s["median_final_log_det_ratio"] > 0.2 * free["median_final_log_det_ratio"]


def test_theory_forms() -> None:
    """The closed forms at ddof 0 are the issue's: (1 - 1/n)^t and friends."""
    from scipy.special import digamma

    n, d, t = 20, 3, np.array([0, 1, 7])
    cfg = MvGaussianConfig(num_chains=1, num_samples=n, dim=d, num_generations=7)
    th = expected(cfg, t)
    np.testing.assert_allclose(th["trace_ratio"], (1 - 1 / n) ** t)
    i = np.arange(1, d + 1)
    np.testing.assert_allclose(th["det_ratio"], np.prod((n - i) / n) ** t)
    np.testing.assert_allclose(
        th["log_det_ratio"], t * np.sum(digamma((n - i) / 2) + math.log(2 / n))
    )
    np.testing.assert_allclose(th["mean_sq_error"], d * (1 - (1 - 1 / n) ** t))
    assert expected(MvGaussianConfig(num_chains=1, dim=d, regime="accumulate"), t) == {}


def test_runner_resume_and_batches_are_bit_identical(tmp_path) -> None:
    cfg = MvGaussianConfig(num_chains=9, num_generations=12, num_samples=8, dim=2, seed=5,
                           regime="accumulate-subsample", select="top", select_strength=0.5,
                           tail_probes=16)  # fmt: skip
    whole = runner.run(cfg)
    split = runner.run(cfg, batch_chains=4, block_generations=5, threads=1)
    for name in METRICS:
        np.testing.assert_array_equal(whole.trajectories[name], split.trajectories[name])
    gen = runner.iterate(cfg, out=tmp_path / "run", batch_chains=4, block_generations=3,
                         checkpoint_seconds=0.0)  # fmt: skip
    for _ in range(4):  # stop mid-batch: a checkpoint with a partly filled pool
        next(gen)
    gen.close()
    resumed = runner.run(cfg, out=tmp_path / "run", resume=True)
    for name in METRICS:
        np.testing.assert_array_equal(whole.final[name], resumed.final[name])
    loaded = runner.load(tmp_path / "run")
    assert loaded.summary == resumed.summary
    assert set(loaded.theory) == set()  # curated: no closed forms
    assert (tmp_path / "run" / "final.parquet").is_file()


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"num_samples": 3, "dim": 3}, r"at least d \+ 1"),
     ({"method": "fast"}, "unknown method"),
     ({"method": "sufficient", "best_of": 3}, "correction only"),
     ({"method": "sufficient", "regime": "accumulate-subsample"}, "use --method sample"),
     ({"original": "powerlaw:-1"}, "ALPHA"),
     ({"original": "nowhere.npy"}, "neither"),
     ({"reward": "linear:1", "best_of": 2}, "slope")],
)  # fmt: skip
def test_bad_configs(kw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MvGaussianConfig(**kw)


def test_file_original_and_its_digest(tmp_path) -> None:
    path = tmp_path / "cov.npy"
    np.save(path, COV0)
    cfg = MvGaussianConfig(num_chains=1, original=str(path), dim=3)
    assert cfg.original_digest
    np.testing.assert_array_equal(cfg.original_params()[1], COV0)
    np.save(path, 2 * COV0)
    with pytest.raises(ConfigError, match="changed since"):
        MvGaussianConfig.from_dict(cfg.to_dict())
    (tmp_path / "bad.json").write_text(json.dumps({"cov": [[1, 2], [2, 1]]}))
    with pytest.raises(ConfigError, match="positive definite"):
        MvGaussianConfig(original=str(tmp_path / "bad.json"), dim=2)


def test_cli_runs_stores_and_plots(tmp_path) -> None:
    out, png = tmp_path / "run", tmp_path / "fig.png"
    args = ["mvgaussian", "--chains", "20", "--generations", "6", "--dim", "2", "--samples",
            "6", "--out", str(out), "--plot", str(png)]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert png.stat().st_size > 10_000
    res = CliRunner().invoke(app, [*args[:-4], "--json"])
    s = json.loads(res.output)
    assert s["theory_mean_final_trace_ratio"] == pytest.approx((1 - 1 / 6) ** 6)
    res = CliRunner().invoke(app, ["mvgaussian", "--samples", "2", "--dim", "4"])
    assert res.exit_code == 2
    assert "at least d + 1" in res.output


def test_bench_rows_do_equal_work() -> None:
    from collapsesim.bench import Sizes
    from collapsesim.bench._mvgaussian import mvgaussian_rows

    rows = mvgaussian_rows(Sizes(repeats=1, quick=True))
    assert len(rows) == 6  # sufficient at n = 200, 1000, 2000; sample at 200, 1000; d = 1000
    for row in rows:
        assert row.ours.done == row.work["chains"] * row.work["generations"]
        if row.baseline is not None:
            assert row.baseline.done == row.ours.done
            assert row.ratio == pytest.approx(row.baseline.seconds / row.ours.seconds)
