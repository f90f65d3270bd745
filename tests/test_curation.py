"""Curation operators on the Gaussian chain: closed forms by z-score, the kernels against
naive references in distribution, the sufficient method against the sample method, and
the operators' plumbing (config, CLI, stored results, scans).

Every tolerance is in Monte Carlo standard errors (|z| < 4 with fixed seeds: a wrong
operator, order or constant moves these statistics by tens of standard errors).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from collapsesim import curated_theory as ct
from collapsesim.cli import app
from collapsesim.config import ConfigError
from collapsesim.curation import Curation, CurationError
from collapsesim.experiments import gaussian as runner
from collapsesim.families.gaussian import GaussianConfig
from collapsesim.kernels import gaussian as kern
from collapsesim.regimes import Regime
from tests import naive

Z = 4.0


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def _kernel(cur, *, chains=4000, generations=4, n=40, regime="replace", num_real=0,
            sufficient=False, seed=1, sigma0=1.0):  # fmt: skip
    """Final (mu, sigma, candidates) and the per-generation records of kernel chains."""
    rng, state = kern.init_chains(seed, np.arange(chains, dtype=np.int64), 0.0, 1.0)
    r = generations + 1
    mu, ls, cost = np.zeros((chains, r)), np.zeros((chains, r)), np.ones((chains, r))
    tally = np.zeros((chains, 2))
    pool = {}
    if regime == "accumulate-subsample":
        pool = {"pool": np.empty((chains, n * generations)),
                "pool_size": np.zeros(chains, np.int64)}  # fmt: skip
    kern.advance(rng, state, 0, generations, np.arange(1, r), mu, ls, num_samples=n, ddof=0,
                 regime=Regime(regime).code, num_real=num_real, sufficient=sufficient,
                 mu0=0.0, sigma0=1.0, curation=cur.vector(sigma0), tally=tally,
                 rec_cost=cost, **pool)  # fmt: skip
    return mu, np.exp(ls), cost, tally


def _z2(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample z of the means of a and b."""
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    return 0.0 if se == 0 and a.mean() == b.mean() else (a.mean() - b.mean()) / se


CASES = [
    Curation(sampling_bias=0.8),
    Curation(select="interval", select_strength=1.0),
    Curation(select="self-interval", select_strength=1.0),
    Curation(select="soft", select_strength=2.0),
    Curation(select="top", select_strength=0.5),
    Curation(select="self-top", select_strength=0.25),
    Curation(best_of=4),
    Curation(best_of=3, reward="linear:1.5"),
    Curation(correction=1.0),
    Curation(sampling_bias=1.3, correction=0.5),
    Curation(select="interval", select_strength=0.5, correction=0.3),
    Curation(sampling_bias=1.3, select="interval", select_strength=1.0),
    Curation(sampling_bias=0.8, select="top", select_strength=0.5),
    Curation(sampling_bias=1.2, select="self-top", select_strength=0.5),
    Curation(sampling_bias=1.2, best_of=3),
    Curation(sampling_bias=0.7, select="soft", select_strength=1.0),
]


@pytest.mark.parametrize("cur", CASES, ids=lambda c: c.describe())
def test_kernel_matches_naive_reference_in_distribution(cur):
    mu, sig, cost, _ = _kernel(cur)
    rmu, rsig, rcost = naive.curated_gaussian_chains(np.random.default_rng(5), 1500, 4, 40, cur)
    assert abs(_z2(sig[:, -1], rsig)) < Z
    assert abs(_z2(np.log(sig[:, -1]), np.log(rsig))) < Z
    assert abs(_z2(mu[:, -1], rmu)) < Z
    assert abs(_z2(mu[:, -1] ** 2, rmu**2)) < Z
    assert abs(_z2(cost[:, -1], rcost)) < Z


@pytest.mark.parametrize(
    ("regime", "num_real"),
    [("accumulate", 0), ("fresh", 10), ("keep-original", 10), ("accumulate-subsample", 0)],
    ids=["accumulate", "fresh", "keep-original", "accumulate-subsample"],
)
@pytest.mark.parametrize("cur", [CASES[1], CASES[3], CASES[4]], ids=lambda c: c.describe())
def test_pooled_regimes_match_naive_reference(cur, regime, num_real):
    mu, sig, cost, _ = _kernel(cur, regime=regime, num_real=num_real)
    rmu, rsig, rcost = naive.curated_gaussian_chains(
        np.random.default_rng(6), 1500, 4, 40, cur, regime=regime, num_real=num_real
    )
    assert abs(_z2(sig[:, -1], rsig)) < Z
    assert abs(_z2(mu[:, -1] ** 2, rmu**2)) < Z
    assert abs(_z2(cost[:, -1], rcost)) < Z


@pytest.mark.parametrize(
    "cur",
    [
        Curation(sampling_bias=0.7),
        Curation(select="soft", select_strength=3.0),
        Curation(correction=2.0),
        Curation(sampling_bias=1.2, select="soft", select_strength=0.5, correction=0.25),
    ],
    ids=lambda c: c.describe(),
)
def test_sufficient_method_matches_sample_method(cur):
    """The exact laws (bias, soft in closed form, correction) against draws one by one."""
    mu, sig, cost, _ = _kernel(cur, chains=20000, generations=6, sufficient=True)
    smu, ssig, scost, _ = _kernel(cur, chains=20000, generations=6, seed=2)
    for g in (2, 6):
        assert abs(_z2(sig[:, g], ssig[:, g])) < Z
        assert abs(_z2(mu[:, g] ** 2, smu[:, g] ** 2)) < Z
        assert abs(_z2(cost[:, g], scost[:, g])) < Z


def test_soft_keep_probability_is_the_closed_form():
    """Candidates per kept sample of the sample method against 1 / P(kept | model), the
    issue's formula, evaluated at each chain's model of the generation before."""
    beta = 4.0
    mu, sig, cost, _ = _kernel(Curation(select="soft", select_strength=beta), chains=20000, n=20)
    for g in (2, 3, 4):
        m, s = mu[:, g - 1], sig[:, g - 1]
        q = 1 + beta * s**2
        expected = 1 / (q**-0.5 * np.exp(-beta * m**2 / (2 * q)))
        # Given the model, candidates per kept sample is (n + NegBin(n, p)) / n, of mean 1 / p.
        diff = cost[:, g] - expected
        assert abs(diff.mean() / (diff.std(ddof=1) / math.sqrt(diff.size))) < Z


@pytest.mark.parametrize(
    ("args", "exact"),
    [
        ({"sampling_bias": 0.9}, "all"),
        ({"sampling_bias": 1.1, "method": "sample"}, "all"),
        ({"select": "self-interval", "select_strength": 1.5}, "var"),
        ({"select": "self-interval", "select_strength": 2.0, "sampling_bias": 1.2}, "var"),
        ({"correction": 0.5}, "moments"),
        ({"correction": 0.5, "method": "sample", "sampling_bias": 0.9}, "moments"),
        ({"select": "top", "select_strength": 0.4}, "cost"),
        ({"best_of": 5}, "cost"),
    ],
)
def test_summary_closed_forms_by_z_score(args, exact):
    cfg = GaussianConfig(num_chains=20000, num_generations=25, num_samples=50, seed=3, **args)
    s = runner.run(cfg).summary
    keys = {
        "all": ["mean_final_std", "mean_log_final_std", "collapse_rate", "var_final_mean",
                "median_final_std", "q05_final_std", "q95_final_std", "mean_final_var"],
        "var": ["mean_final_var", "mean_final_candidates"],
        "moments": ["mean_final_std", "mean_final_var"],
        "cost": ["mean_final_candidates"],
    }[exact]  # fmt: skip
    for key in keys:
        assert s[f"theory_{key}"] is not None, key
        assert abs(s[f"z_{key}"]) < Z, (key, s[f"z_{key}"])
    assert s["curation"]["select"] == cfg.select
    assert s["starved_generations"] == 0


def test_bias_shifts_the_log_std_by_the_closed_form():
    cur = Curation(sampling_bias=0.5)
    assert ct.mean_log_std(cur, 11, 100) == pytest.approx(
        ct.mean_log_std(Curation(), 11, 100) + 10 * math.log(0.5)
    )
    assert ct.moment_std(cur, 2, 1, 100) == pytest.approx(0.99)  # model 1 is fitted to real data


def test_correction_converges_to_its_stationary_law():
    """E[sigma_T] for large T is the fixed point c1 f / (1 - c1 (1 - f))."""
    cur = Curation(correction=1.0)
    c1 = math.exp(ct.theory.log_step_moment(1, 50, 0))
    assert ct.moment_std(cur, 1, 10_000, 50) == pytest.approx(0.5 * c1 / (1 - 0.5 * c1), rel=1e-12)


def test_truncated_variance():
    from scipy.stats import truncnorm

    for a in (0.01, 0.3, 0.999, 1.0, 1.2, 3.0):
        assert ct.truncated_variance(a) == pytest.approx(truncnorm(-a, a).var(), rel=1e-9)
    for a in (1e-8, 1e-4):  # where the closed form cancels: a^2 / 3 (1 - 2 a^2 / 15)
        assert ct.truncated_variance(a) == pytest.approx(
            a * a / 3 * (1 - 2 * a * a / 15), rel=1e-12
        )
    cfg = GaussianConfig(num_chains=20, num_generations=3, num_samples=5,
                         select="self-interval", select_strength=1e-8)  # fmt: skip
    assert runner.run(cfg).summary["theory_mean_final_var"] > 0


def test_linear_reward_is_stated_in_the_original_units():
    """``linear:A`` on N(mu0, sigma0^2) is ``linear:(A sigma0)`` on N(0, 1), scaled back."""
    common = {"num_chains": 100, "num_generations": 6, "num_samples": 30, "seed": 2,
              "best_of": 3}  # fmt: skip
    a = runner.run(GaussianConfig(**common, reward="linear:0.5", mu0=3.0, sigma0=2.0))
    b = runner.run(GaussianConfig(**common, reward="linear:1"))
    np.testing.assert_allclose(a.final["sigma"], 2.0 * b.final["sigma"], rtol=1e-14)
    np.testing.assert_allclose(a.final["mu"], 3.0 + 2.0 * b.final["mu"], rtol=1e-14)


def test_costs_before_any_curated_generation_and_without_synthetic_data():
    one = runner.run(GaussianConfig(num_chains=10, num_generations=1, select="top",
                                    select_strength=0.4)).summary  # fmt: skip
    assert one["mean_final_candidates"] == one["theory_mean_final_candidates"] == 1.0
    real = runner.run(GaussianConfig(num_chains=10, num_generations=5, regime="fresh",
                                     fresh_fraction=1.0, select="soft", method="sample",
                                     select_strength=2.0)).summary  # fmt: skip
    assert real["mean_final_candidates"] == 1.0
    assert real["mean_candidates"] == 1.0


def test_top_keeps_the_most_likely_even_among_ties():
    """A chain so collapsed that its draws round to a few values: ties at the n-th key."""
    from collapsesim.kernels import _curation as kc

    cur = Curation(select="top", select_strength=0.5).vector()
    ys, scratch = np.empty(200), np.empty(200)
    s = 2.0**-1070
    kc.draw_kept(ys, scratch, 100, cur, 0.0, s, 1.0, np.uint64(1), np.uint64(2))
    keys = ys[:100] * (2 * 0.0 + s * ys[:100])
    rng_keys = np.sort(scratch[:200])
    assert np.all(keys <= rng_keys[99])
    assert np.count_nonzero(keys < rng_keys[99]) == np.count_nonzero(rng_keys < rng_keys[99])


def test_no_operator_is_bit_identical_to_the_plain_kernels():
    """Curation off takes the plain kernels (bit-identical); the curated path with every
    operator at rest draws the same normals and differs only in rounding (its kept draws'
    moments are taken in two passes)."""
    # (tests/test_golden.py holds the plain kernels' fixed-seed runs bit for bit.)
    for noop in (Curation(select="soft", select_strength=0.0), Curation(select="top")):
        assert not noop.active
    rng, state = kern.init_chains(4, np.arange(8, dtype=np.int64), 0.0, 1.0)
    rng2, state2 = rng.copy(), state.copy()
    rec = [np.zeros((8, 6)) for _ in range(5)]
    common = {"num_samples": 30, "ddof": 0, "regime": Regime.FRESH.code, "num_real": 3,
                  "sufficient": False, "mu0": 0.0, "sigma0": 1.0}  # fmt: skip
    kern.advance(rng, state, 0, 5, np.arange(5), rec[0], rec[1], **common)
    vector = Curation().vector()
    kern.advance(rng2, state2, 0, 5, np.arange(5), rec[2], rec[3], **common, curation=vector,
                 tally=np.zeros((8, 2)), rec_cost=rec[4])  # fmt: skip
    np.testing.assert_allclose(rec[0], rec[2], rtol=0, atol=1e-13)
    np.testing.assert_allclose(rec[1], rec[3], rtol=0, atol=1e-13)


def test_results_do_not_depend_on_batches_or_threads():
    cfg = GaussianConfig(num_chains=300, num_generations=12, num_samples=30, seed=9,
                         select="self-top", select_strength=0.5)  # fmt: skip
    a = runner.run(cfg)
    b = runner.run(cfg, batch_chains=7, block_generations=5)
    for name in ("sigma", "mu", "candidates"):
        assert np.array_equal(a.final[name], b.final[name]), name
    timing = {"seconds", "kernel_seconds"}
    assert {k: v for k, v in a.summary.items() if k not in timing} == {
        k: v for k, v in b.summary.items() if k not in timing
    }


def test_a_collapsed_chain_stays_finite_under_curation():
    """sigma far below the double range (replace keeps it as mantissa and exponent)."""
    cfg = GaussianConfig(num_chains=50, num_generations=3000, num_samples=10, seed=1,
                         select="self-interval", select_strength=0.5)  # fmt: skip
    s = runner.run(cfg).summary
    assert s["mean_log_final_std"] is not None
    assert s["mean_log_final_std"] < -2000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"sampling_bias": 0.0}, "sampling-bias must be positive"),
        ({"select": "nearest"}, "unknown select kind"),
        ({"select": "top", "select_strength": 1.5}, "in (0, 1]"),
        ({"select": "soft", "select_strength": -1.0}, ">= 0"),
        ({"best_of": 3, "select": "soft"}, "separate curations"),
        ({"best_of": 3, "reward": "quadratic"}, "reward must be"),
        ({"correction": -0.1}, "correction must be"),
        ({"select": "interval", "method": "sufficient"}, "use --method sample"),
        (
            {"sampling_bias": 0.9, "backend": "jax", "regime": "accumulate-subsample"},
            "numba backend",
        ),
    ],
)
def test_bad_operators_are_config_errors(args, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        GaussianConfig(**args)


def test_curation_error_is_typed():
    with pytest.raises(CurationError):
        Curation(select_strength=math.nan)


def test_cli_runs_curation_and_stores_it(tmp_path):
    out = tmp_path / "run"
    res = cli("gaussian", "--chains", "200", "--generations", "10", "--select", "soft",
              "--select-strength", "2", "--out", str(out), "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["curation"]["select"] == "soft"
    assert s["mean_final_candidates"] > 1
    loaded = runner.load(out)
    assert loaded.config.select == "soft"
    assert "candidates" in loaded.aggregates
    assert loaded.aggregates["candidates"]["mean"][0] == 1.0  # model 0: nothing curated
    bad = cli("gaussian", "--select", "top", "--select-strength", "2")
    assert bad.exit_code == 2
    assert "select-strength in (0, 1]" in bad.output


def test_help_says_generation_zero_is_real():
    res = cli("gaussian", "--help")
    assert "generation 0 is real" in res.output
    assert "--sampling-bias" in res.output
    assert "--best-of" in res.output


def test_a_verifier_that_keeps_almost_nothing_gives_up_and_says_so():
    res = cli("gaussian", "--chains", "4", "--generations", "3", "--samples", "5",
              "--select", "interval", "--select-strength", "1e-7", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "the selection gave up in 8 chain-generations" in res.output


def test_an_interrupted_curated_run_resumes_to_the_same_results(tmp_path):
    cfg = GaussianConfig(num_chains=30, num_generations=40, num_samples=40, seed=12,
                         regime="fresh", select="interval", select_strength=1.0)  # fmt: skip
    whole = runner.run(cfg)
    out = tmp_path / "r"
    steps = runner.iterate(cfg, out=out, batch_chains=7, block_generations=4, checkpoint_seconds=0)
    for _ in range(15):  # into the second batch, mid-generations
        next(steps)
    steps.close()  # the process "dies" here
    resumed = runner.run(cfg, out=out, resume=True)
    for m in whole.final:
        np.testing.assert_array_equal(resumed.final[m], whole.final[m])
    assert resumed.summary["mean_candidates"] == whole.summary["mean_candidates"]
    assert runner.load(out).summary == resumed.summary


def test_the_neural_families_selection_and_choice_against_literal_loops():
    """The VAE's and LM's operators: the n best rows in draw order, and Luce's choice
    (Gumbel-max) at the exact probabilities exp(r_k) / sum_j exp(r_j)."""
    from collapsesim.experiments import _neural as neural

    scores = np.random.default_rng(1).integers(0, 5, 50).astype(float)  # many ties
    picked = neural.top_rows(scores, 20)
    literal = sorted(sorted(range(50), key=lambda i: (-scores[i], i))[:20])
    assert picked.tolist() == literal
    rewards = np.tile(np.log([1.0, 2.0, 5.0]), (40000, 1))
    picks = neural.luce_picks(rewards, 3, 7)
    freq = np.bincount(picks, minlength=3) / len(picks)
    exact = np.array([1, 2, 5]) / 8
    se = np.sqrt(exact * (1 - exact) / len(picks))
    assert np.all(np.abs(freq - exact) < Z * se)
