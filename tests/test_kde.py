"""The KDE chains: the kernel against the literal reference (every regime, bandwidth rule,
original and operator), the theory by z-score, the runner (Parquet, resume, batches,
threads), bad input, and `collapsesim kde`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from naive import kde_chain, w2_gauss, w2_ref
from scipy import special
from typer.testing import CliRunner

from collapsesim import store
from collapsesim.config import ConfigError
from collapsesim.curation import Curation
from collapsesim.experiments import kde as runner
from collapsesim.families import kde as fam
from collapsesim.families.kde import KdeConfig
from collapsesim.kernels import kde as K
from collapsesim.regimes import Regime

PARAMS = np.array([0.05, 0.8, 1.0])  # noise, factor, cluster std


def _kernel(n, d, t, chains, *, regime="replace", num_real=0, rule=0.3, original="gaussian",
            pts=None, heldout, w2=K.W2_NONE, ref=None, cur=None, seed=3, split=None):  # fmt: skip
    """Run the kernel: ``(state, rec)``, recording models 1..t; ``split`` advances in two calls."""
    pooled = regime in ("accumulate", "accumulate-subsample")
    st = K.init_chains(seed, np.arange(chains), n, d, n * t if pooled else n)
    rec = np.zeros((chains, 5, t + 1))
    kw = {}
    if cur is not None:
        kw = {"curation": cur.vector(1.0, d), "tally": np.zeros((chains, 2)),
              "rec_cost": np.ones((chains, t + 1))}  # fmt: skip
    fixed = not isinstance(rule, str)
    for a, b in [(0, t)] if split is None else [(0, split), (split, t)]:
        K.advance(st, a, b, np.arange(a + 1, b + 1), rec, num_samples=n,
                  regime=Regime(regime).code, num_real=num_real,
                  bandwidth=K.FIXED if fixed else K.BANDWIDTHS[rule],
                  bandwidth_value=float(rule) if fixed else 1.0, original=K.ORIGINALS[original],
                  params=PARAMS, points=np.zeros((0, d)) if pts is None else pts,
                  heldout=heldout, w2_kind=w2, reference=ref, **kw)  # fmt: skip
    return st, rec, kw


def _compare(st, rec, kw, naive, c, exact):
    size = st["size"][c]
    rows = st["train"][c, :size]
    x = np.concatenate([naive["x"], naive["anc"][:, None]], axis=1)
    if exact:
        np.testing.assert_array_equal(rows[: len(x)], x)
    else:
        np.testing.assert_allclose(rows[: len(x)], x, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rec[c, :, 1:].T, naive["rec"], rtol=1e-9, atol=1e-12)
    if kw:
        np.testing.assert_array_equal(kw["rec_cost"][c, 2:], naive["cost"][1:])


REGIMES = [("replace", 0), ("accumulate", 0), ("fresh", 4), ("keep-original", 3),
           ("accumulate-subsample", 0), ("fresh", 12), ("keep-original", 12)]  # fmt: skip


@pytest.mark.parametrize(("regime", "num_real"), REGIMES)
@pytest.mark.parametrize("rule", [0.3, "scott", "silverman"])
def test_kernel_matches_the_literal_chain(regime, num_real, rule) -> None:
    n, d, t = 12, 2, 6
    held = K.heldout_sample(K.GAUSSIAN, PARAMS, np.zeros((0, d)), 7, d, 3)
    st, rec, kw = _kernel(n, d, t, 3, regime=regime, num_real=num_real, rule=rule, heldout=held,
                          split=2)  # fmt: skip
    for c in range(3):
        naive = kde_chain(3, c, t, n, d, regime=regime, num_real=num_real, rule=rule,
                          heldout=held)  # fmt: skip
        if regime == "accumulate-subsample":
            # The pool is permuted in place; the training set is its first n rows.
            naive["x"], naive["anc"] = naive["x"][:n], naive["anc"][:n]
        # A fixed bandwidth gives the very same numbers; a rule's variance is summed in
        # another order by NumPy (the last bits of h differ).
        _compare(st, rec, kw, naive, c, exact=not isinstance(rule, str))


@pytest.mark.parametrize(
    ("original", "d", "w2"),
    [("moons", 2, "none"), ("circles", 2, "none"), ("blobs", 3, "none"), ("blobs", 1, "ref"),
     ("points", 1, "ref"), ("gaussian", 1, "gauss")],
)  # fmt: skip
def test_originals_and_w2_match_the_literal_chain(original, d, w2) -> None:
    n, t = 15, 5
    pts = None
    if original == "blobs":
        pts = K.blob_centers(3, 3, d)
    elif original == "points":
        pts = np.random.default_rng(1).standard_normal((9, d)) ** 3
    code = K.ORIGINALS[original]
    held = K.heldout_sample(code, PARAMS, np.zeros((0, d)) if pts is None else pts, 6, d, 3)
    ref = None
    if w2 == "ref":
        ref = np.sort(K.sample_original(code, PARAMS, pts, 500, 1, 3, K.REFERENCE_CHAIN)[:, 0])
    kind = {"none": K.W2_NONE, "ref": K.W2_REF, "gauss": K.W2_GAUSS}[w2]
    st, rec, kw = _kernel(n, d, t, 2, regime="fresh", num_real=5, original=original, pts=pts,
                          heldout=held, w2=kind, ref=ref)  # fmt: skip
    for c in range(2):
        naive = kde_chain(3, c, t, n, d, regime="fresh", num_real=5, rule=0.3,
                          original=original, pts=pts, heldout=held, w2=w2, ref=ref)  # fmt: skip
        _compare(st, rec, kw, naive, c, exact=True)
    if d == 1:
        assert np.all(np.isfinite(rec[:, K.W2, 1:]))
    else:
        assert np.all(np.isnan(rec[:, K.W2, 1:]))


CURATIONS = [
    {"sampling_bias": 0.5},
    {"best_of": 3, "reward": "loglik"},
    {"best_of": 2, "reward": "linear:1.5,-2", "sampling_bias": 2.0},
    {"select": "interval", "select_strength": 1.0},
    {"select": "soft", "select_strength": 2.0},
    {"select": "top", "select_strength": 0.4},
    {"select": "self-top", "select_strength": 0.5},
]


@pytest.mark.parametrize("ops", CURATIONS)
@pytest.mark.parametrize(("regime", "num_real"), [("replace", 0), ("fresh", 4)])
def test_curation_matches_the_literal_chain(ops, regime, num_real) -> None:
    n, d, t = 12, 2, 5
    cur = Curation(**ops)
    held = K.heldout_sample(K.GAUSSIAN, PARAMS, np.zeros((0, d)), 5, d, 3)
    st, rec, kw = _kernel(n, d, t, 2, regime=regime, num_real=num_real, rule=0.6, heldout=held,
                          cur=cur)  # fmt: skip
    naive_ops = {"bias": cur.sampling_bias, "select": cur.select, "strength": cur.select_strength,
                 "best_of": cur.best_of, "reward": cur.reward,
                 "slopes": np.array(cur.reward_slopes() or (0.0, 0.0))}  # fmt: skip
    for c in range(2):
        naive = kde_chain(3, c, t, n, d, regime=regime, num_real=num_real, rule=0.6,
                          heldout=held, cur=naive_ops)  # fmt: skip
        _compare(st, rec, kw, naive, c, exact=True)
    # Candidates per kept point, added over the curated generations 1..t-1.
    assert np.all(kw["tally"][:, 0] >= t - 1)


def test_metrics_against_scipy() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 1)) * 1.3 + 0.2
    rows = np.concatenate([x, rng.integers(-1, 40, (300, 1)).astype(float)], axis=1)
    held = rng.standard_normal((50, 1))
    m = K.metrics_of(rows, 0.2, 40, held, K.W2_GAUSS)
    ll = special.logsumexp(-((held - x.T) ** 2) / (2 * 0.04), axis=1) - math.log(300)
    assert m[K.NLL] == pytest.approx(-(ll - 0.5 * math.log(2 * math.pi * 0.04)).mean(), rel=1e-12)
    assert m[K.VAR] == pytest.approx(float(np.var(x)), rel=1e-12)
    assert m[K.ANC] == len(np.unique(rows[(rows[:, 1] >= 0), 1]))
    assert m[K.W2] == pytest.approx(w2_gauss(x[:, 0]), rel=1e-9)
    ref = np.sort(rng.standard_normal(777) * 2)
    m = K.metrics_of(rows, 0.2, 40, held, K.W2_REF, ref)
    assert m[K.W2] == pytest.approx(w2_ref(x[:, 0], ref), rel=1e-10)
    # A large N(0, 1) sample is close to N(0, 1) in W2; a shifted one is |shift| away.
    z = special.ndtri((np.arange(4000) + 0.5) / 4000)[:, None]
    far = np.concatenate([z + 0.7, np.zeros_like(z)], axis=1)
    assert K.metrics_of(far, 0.2, 1, held, K.W2_GAUSS)[K.W2] == pytest.approx(0.7, abs=1e-3)


def test_ndtri_matches_scipy() -> None:
    p = np.concatenate([np.logspace(-300, -1, 200), np.linspace(0.01, 0.99, 99),
                        1 - np.logspace(-16, -1, 50)])  # fmt: skip
    ours = np.array([K.ndtri(v) for v in p])
    np.testing.assert_allclose(ours, special.ndtri(p), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize(("original", "kw"), [("moons", {}), ("circles", {"factor": 0.5}),
                                              ("blobs", {"dim": 2}), ("gaussian", {"dim": 3})])  # fmt: skip
def test_original_samplers_have_the_stated_variance(original, kw) -> None:
    cfg = KdeConfig(original=original, noise=0.1, **kw)
    code = K.ORIGINALS[original]
    x = K.sample_original(code, np.array([cfg.noise, cfg.factor, cfg.cluster_std]),
                          cfg.original_points(), 2**17, cfg.dim, 9, 0)  # fmt: skip
    v = np.var(x, axis=0).mean()
    # The sample variance's s.e. from the fourth moment; 5 s.e.
    se = np.sqrt(np.var((x - x.mean(0)) ** 2, axis=0).mean() / len(x))
    assert abs(v - fam.original_variance(cfg)) < 5 * se


def test_original_nll_by_monte_carlo() -> None:
    # E[-log p(X)] of the original is its entropy: the quadrature against a large sample
    # of the Gaussian original (closed form) and, for the moons, against its own sample's
    # entropy estimated by a KDE is too loose; check the closed forms' consistency instead.
    cfg = KdeConfig(original="moons", noise=0.1, heldout=2000)
    ev = runner.evaluation(cfg)
    finer = runner.original_nll(cfg, ev["heldout"][:200], ev["points"])
    # The held-out NLL of the truth is below that of any KDE fitted to its own points.
    x = K.sample_original(K.MOONS, ev["params"], ev["points"], 2000, 2, 1, 0)
    rows = np.concatenate([x, np.zeros((2000, 1))], axis=1)
    for h in (0.03, 0.08, 0.2):
        assert K.metrics_of(rows, h, 1, ev["heldout"])[K.NLL] > ev["model0"]["heldout_nll"]
    assert math.isfinite(finer)
    g = KdeConfig(dim=2, heldout=50000)
    assert runner.evaluation(g)["model0"]["heldout_nll"] == pytest.approx(
        1 + math.log(2 * math.pi), abs=0.02)  # fmt: skip


def test_wright_fisher_survival_against_simulation() -> None:
    n, s = 30, (0, 1, 2, 5, 17, 100, 400)
    exact = fam.survival(n, s)
    assert exact[0] == 1.0
    assert exact[1] == pytest.approx(1 - (1 - 1 / n) ** n, rel=1e-12)
    rng = np.random.default_rng(0)
    count = np.ones(200_000, np.int64)
    alive = {0: 1.0}
    for step in range(1, 401):
        count = rng.binomial(n, count / n)
        alive[step] = float((count > 0).mean())
    for k, step in enumerate(s):
        p = exact[k]
        se = math.sqrt(p * (1 - p) / len(count)) + 1e-12
        assert abs(alive[step] - p) < 5 * se
    # The long gap is taken by squaring: the same as one step at a time.
    assert fam.survival(n, (400,))[0] == pytest.approx(exact[-1], rel=1e-10)
    # It tends to 1/n (one type is fixed).
    assert fam.survival(n, (20000,))[0] == pytest.approx(1 / n, rel=1e-9)


def test_variance_closed_form_of_replace() -> None:
    cfg = KdeConfig(num_samples=40, bandwidth=0.25, num_generations=30)
    q, h2 = 1 - 1 / 40, 0.25**2
    g = np.arange(31)
    a0 = q * 1.0
    closed = q ** (g - 1) * a0 + 39 * h2 * (1 - q ** (g - 1))
    closed[0] = 1.0
    np.testing.assert_allclose(fam.expected(cfg, g)["variance"], closed, rtol=1e-12)
    # The fixed point (n - 1) h^2.
    far = KdeConfig(num_samples=40, bandwidth=0.25, num_generations=5000)
    assert fam.expected(far, np.array([5000]))["variance"][0] == pytest.approx(39 * h2, rel=1e-9)
    # Scott's rule: the variance grows by 1 - 1/n + f^2 a generation.
    sc = KdeConfig(num_samples=40, bandwidth="scott", dim=2)
    f2 = 40 ** (-2 / 6)
    v = fam.expected(sc, np.array([1, 2, 3]))["variance"]
    np.testing.assert_allclose(v[1:] / v[:-1], 1 - 1 / 40 + f2, rtol=1e-12)


# Each: 1500 chains of n = 40 (or as given) for 12 generations, metrics at every generation.
THEORY = [
    {},
    {"bandwidth": "scott", "dim": 2},
    {"bandwidth": "silverman", "original": "moons", "regime": "fresh", "fresh_fraction": 0.25},
    {"regime": "keep-original", "keep_fraction": 0.3, "bandwidth": 0.6},
    {"regime": "accumulate", "bandwidth": 0.5, "original": "circles"},
    {"sampling_bias": 0.6, "bandwidth": 0.8, "original": "blobs", "dim": 1},
    # Tiny n: the merge terms of order 1/n^2 (the means' distance D) are decisive here.
    {
        "num_samples": 4,
        "num_chains": 20000,
        "regime": "keep-original",
        "keep_fraction": 0.5,
        "bandwidth": 0.5,
    },
    {
        "num_samples": 4,
        "num_chains": 20000,
        "regime": "fresh",
        "fresh_fraction": 0.5,
        "bandwidth": "scott",
        "dim": 2,
    },
]


@pytest.mark.parametrize("kw", THEORY)
def test_theory_by_z_score(kw) -> None:
    base = {"num_chains": 1500, "num_generations": 12, "num_samples": 40, "heldout": 1,
            "seed": 11, "keep_chains": 0}  # fmt: skip
    cfg = KdeConfig(**(base | kw))
    res = runner.run(cfg)
    names = [m for m in ("variance", "ancestors") if m in res.theory]
    assert "variance" in names
    for name in names:
        agg = res.aggregates[name]
        se = agg["stderr"]
        theory = res.theory[name]
        for g in (1, 3, 12):
            if se[g] == 0:
                assert agg["mean"][g] == pytest.approx(theory[g], rel=1e-12)
                continue
            z = (agg["mean"][g] - theory[g]) / se[g]
            assert abs(z) < 4.5, (name, g, z)
        # The test can fail: theory one generation late is far off at the end.
        if name == "variance" and abs(theory[12] - theory[11]) > 8 * se[12]:
            z_late = (agg["mean"][12] - theory[11]) / se[12]
            assert abs(z_late) > 4.5


def test_replace_ancestors_theory_by_z_score() -> None:
    cfg = KdeConfig(num_chains=2000, num_generations=25, num_samples=30, heldout=1, seed=2,
                    keep_chains=0, bandwidth=0.5)  # fmt: skip
    res = runner.run(cfg)
    s = res.summary
    assert abs(s["z_mean_final_ancestors"]) < 4
    assert abs(s["z_mean_final_variance"]) < 4
    agg = res.aggregates["ancestors"]
    exact = 30 * fam.survival(30, tuple(range(25)))  # models 1..25: 0..24 generations below
    np.testing.assert_allclose(res.theory["ancestors"][1:], exact, rtol=1e-12)
    z = (agg["mean"][1:] - exact) / np.where(agg["stderr"][1:] > 0, agg["stderr"][1:], np.inf)
    assert np.all(np.abs(z) < 4.5)
    assert agg["mean"][1] == 30.0  # model 1 is fitted to generation 0: every point its own
    # One generation late (an off-by-one in the theory) is rejected.
    assert abs((agg["mean"][4] - exact[4]) / agg["stderr"][4]) > 4
    var = res.aggregates["variance"]
    assert abs((var["mean"][3] - res.theory["variance"][2]) / var["stderr"][3]) > 4


SMALL = KdeConfig(num_chains=7, num_generations=9, num_samples=30, heldout=16, seed=5,
                  original="moons", bandwidth="scott")  # fmt: skip


def test_batches_blocks_and_threads_do_not_change_results() -> None:
    whole = runner.run(SMALL)
    split = runner.run(SMALL, batch_chains=3, block_generations=4, threads=1)
    for name in fam.METRICS:
        np.testing.assert_array_equal(whole.final[name], split.final[name])
    code = ("import json, sys, numpy as np; from collapsesim.experiments import kde as r; "
            "cfg = r.KdeConfig.from_dict(json.loads(sys.argv[2])); res = r.run(cfg, threads=2); "
            "np.save(sys.argv[1], np.stack([res.final[m] for m in r.METRICS]))")  # fmt: skip
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "two.npy"
        env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
        subprocess.run([sys.executable, "-c", code, str(path), json.dumps(SMALL.to_dict())], check=True, env=env,
                       cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
        two = np.load(path)
    np.testing.assert_array_equal(two, np.stack([whole.final[m] for m in fam.METRICS]))


@pytest.mark.parametrize("regime", ["replace", "accumulate-subsample", "keep-original"])
def test_store_load_and_resume_after_interruption(tmp_path, regime) -> None:
    from dataclasses import replace

    cfg = replace(SMALL, regime=regime, select="self-top", select_strength=0.5)
    whole = runner.run(cfg)
    out = tmp_path / regime
    steps = runner.iterate(cfg, out=out, batch_chains=4, block_generations=2, checkpoint_seconds=0)
    for _ in range(4):  # into the first batch, mid-generations
        next(steps)
    steps.close()
    assert (out / store.CHECKPOINT_FILE).is_file()
    resumed = runner.run(cfg, out=out, resume=True)
    for name in (*fam.METRICS, "candidates"):
        np.testing.assert_array_equal(resumed.final[name], whole.final[name])
    loaded = runner.load(out)
    assert loaded.summary == json.loads((out / "summary.json").read_text())
    np.testing.assert_array_equal(loaded.trajectories["ancestors"], whole.trajectories["ancestors"])
    assert {"aggregates.parquet", "final.parquet", "trajectories.parquet"} <= {
        p.name for p in out.glob("*.parquet")}  # fmt: skip
    assert loaded.summary["original_ancestors"] == 30.0


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"bandwidth": "wide"}, "bandwidth must be a positive number"),
        ({"bandwidth": -0.1}, "bandwidth must be a positive number"),
        ({"bandwidth": "nan"}, "bandwidth must be a positive number"),
        ({"original": "moons", "dim": 3}, "moons is 2-dimensional"),
        ({"original": "spiral"}, "neither gaussian"),
        ({"noise": -1.0, "original": "moons"}, "noise must be >= 0"),
        ({"factor": 1.0, "original": "circles"}, "factor must lie in"),
        ({"cluster_std": 0.0, "original": "blobs"}, "cluster-std must be positive"),
        ({"num_samples": 1}, "samples must lie in"),
        ({"heldout": 0}, "heldout must lie in"),
        ({"select": "self-interval"}, "self-interval is not offered"),
        ({"select": "interval", "original": "moons"}, "gaussian only"),
        ({"best_of": 3, "original": "blobs", "dim": 2}, "gaussian only"),
        ({"best_of": 3, "reward": "linear:1", "dim": 2}, "2 slope"),
        ({"regime": "accumulate", "num_samples": 10**6, "num_generations": 10**3}, "GiB of points"),
        ({"regime": "sideways"}, "unknown regime"),
        ({"sampling_bias": 0.0}, "sampling-bias must be positive"),
    ],
)
def test_bad_input_is_one_line(kw, message) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        KdeConfig(**kw)
    assert "\n" not in str(err.value)


def test_points_file_original(tmp_path) -> None:
    pts = np.random.default_rng(0).standard_normal((50, 1)) ** 2
    f = tmp_path / "pts.npy"
    np.save(f, pts)
    cfg = KdeConfig(original=str(f), num_chains=3, num_generations=4, num_samples=20)
    assert cfg.dim == 1
    assert len(cfg.points0) == 50
    assert KdeConfig.from_dict(cfg.to_dict()) == cfg
    assert fam.original_variance(cfg) == pytest.approx(float(np.var(pts)))
    res = runner.run(cfg)
    assert math.isnan(res.summary["original_heldout_nll"] or math.nan)
    assert np.all(np.isfinite(res.final["w2"]))
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(ConfigError, match="cannot read points"):
        KdeConfig(original=str(tmp_path / "bad.npy"))
    np.save(tmp_path / "nan.npy", np.array([[np.nan, 1.0]]))
    with pytest.raises(ConfigError, match="finite"):
        KdeConfig(original=str(tmp_path / "nan.npy"))


def test_cli_runs_stores_and_plots(tmp_path) -> None:
    from collapsesim.families import FAMILIES

    if "kde" not in FAMILIES:
        pytest.skip("the kde family is not registered yet")
    from collapsesim.cli import app

    cli = CliRunner()
    quick = ["kde", "--chains", "4", "--generations", "5", "--samples", "40", "--heldout", "8"]
    res = cli.invoke(app, [*quick, "--original", "moons", "--bandwidth", "silverman"])
    assert res.exit_code == 0, res.output
    assert "ancestors" in res.output
    png = tmp_path / "kde.png"
    res = cli.invoke(app, [*quick, "--json", "--out", str(tmp_path / "run"), "--plot", str(png)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["theory_mean_final_variance"] is not None
    assert png.stat().st_size > 1000
    res = cli.invoke(app, [*quick, "--bandwidth", "zero"])
    assert res.exit_code == 2
    assert "bandwidth must be" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_bench_rows_do_equal_work() -> None:
    from collapsesim.bench._core import Sizes
    from collapsesim.bench._kde import kde_rows, numpy_kde

    assert numpy_kde(2, 3, "scott") == 6
    rows = kde_rows(Sizes(repeats=1, quick=True))
    assert len(rows) == 3
    for row in rows:
        assert row.baseline is not None
        assert row.ratio is not None
        assert row.baseline.done == row.ours.done == row.work["chains"] * row.work["generations"]
