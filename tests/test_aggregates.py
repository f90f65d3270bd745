"""Streamed statistics across chains: exact moments, quantiles within 0.05 Monte Carlo
standard errors, the same whatever the batches, and runs that stream beside exact ones."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from collapsesim import aggregates, metrics
from collapsesim.config import ConfigError
from collapsesim.experiments import gaussian as runner
from collapsesim.experiments import tokens as trunner
from collapsesim.families.gaussian import GaussianConfig
from collapsesim.families.tokens import TokenConfig


@pytest.fixture
def streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every stream of more than 4096 chains stream, with a pilot of 4096 chains."""
    monkeypatch.setattr(aggregates, "HOLD_VALUES", 0)
    monkeypatch.setattr(aggregates, "PILOT_CHAINS", 2**12)


def _feed(stream: aggregates.Stream, x: np.ndarray, sizes: list[int]) -> None:
    """Feed ``x`` ``(C, R)`` as metric "x" in blocks of the given sizes (cycled)."""
    lo, k = 0, 0
    while lo < len(x):
        hi = min(len(x), lo + sizes[k % len(sizes)])
        stream.add(lo, {"x": np.ascontiguousarray(x[lo:hi].T)})
        lo, k = hi, k + 1


def _columns(c: int, seed: int = 0) -> np.ndarray:
    """Columns of shapes a chain metric has: normal, heavy-tailed, skewed, atoms, a spike."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [
            rng.normal(3.0, 0.5, c),
            rng.standard_t(3, c),
            np.exp(rng.normal(0.0, 2.0, c)),
            rng.poisson(4.0, c).astype(np.float64),  # integer values: atoms
            np.where(rng.random(c) < 0.7, 0.0, rng.exponential(1.0, c)),  # an atom at 0
            np.where(rng.random(c) < 0.26, 0.0, rng.exponential(1.0, c)),  # q25 at its edge
        ],
        axis=1,
    )


@pytest.mark.parametrize("c", [2**16, 2**20])
def test_streamed_quantiles_lie_within_a_twentieth_of_their_standard_error(
    streamed: None, c: int
) -> None:
    # From a pilot of 2^12: C / P = 16, a default 10^6-chain run's ratio (pilot 2^16), and
    # C / P = 256, the widest the default pilot allows up to 2^24 chains (an error bound
    # for 10^8 chains is looser by sqrt(10^8 / 2^24) ~ 2.4 in bins and is kept by
    # _num_bins's sqrt(C / P) growth).
    x = _columns(c)
    stream = aggregates.Stream(["x"], x.shape[1], c, keep_chains=5, final_chains=10)
    assert not stream.exact
    assert stream.pilot == 2**12
    _feed(stream, x, [c // 10 + 3, 7, c // 4])
    agg = stream.aggregates()["x"]
    exact = metrics.aggregate(x)
    rows = np.sort(x, axis=0)
    for name, p in zip(aggregates._Q_NAMES, aggregates.QUANTILES, strict=True):
        k = p * (c - 1)
        h = int(4 * math.sqrt(c))  # a density estimate from order statistics around k
        lo, hi = int(k) - h, int(k) + h
        spacing = rows[hi] - rows[lo]
        se = np.sqrt(p * (1 - p) / c) * spacing / ((hi - lo) / c)
        err = np.abs(agg[name] - exact[name])
        atom = spacing == 0  # a quantile on an atom must come back exactly
        assert np.all(err[atom] == 0), name
        assert np.all(err[~atom] < 0.05 * se[~atom]), (name, err / se)
    for name in ("min", "max"):
        np.testing.assert_array_equal(agg[name], exact[name])
    # Means to a part in 10^13 of the spread (one column's mean is near 0).
    assert np.all(np.abs(agg["mean"] - exact["mean"]) <= 1e-13 * exact["std"])
    np.testing.assert_allclose(agg["std"], exact["std"], rtol=1e-12)
    np.testing.assert_allclose(agg["stderr"], exact["stderr"], rtol=1e-12)


def test_a_stream_does_not_depend_on_how_the_chains_were_split(streamed: None) -> None:
    c = 20_000
    x = _columns(c, seed=1)
    runs = []
    for sizes in ([c], [1, 4095, 3000], [9_999, 10_001], [777]):
        s = aggregates.Stream(["x"], x.shape[1], c, keep_chains=3, final_chains=100)
        _feed(s, x, sizes)
        runs.append(s)
    first = runs[0].arrays
    for s in runs[1:]:
        for key, arr in first.items():
            assert np.array_equal(s.arrays[key], arr, equal_nan=True), key


def test_fragments_merged_in_order_are_the_sequential_stream(streamed: None) -> None:
    """A cluster's way: the pilot fed here, then tasks on segments fed into fragments
    (each with its own split into blocks) and merged; every array bit for bit."""
    seg = aggregates.SEGMENT
    c = 7 * seg + 123  # a last task cut short by the run's end
    x = _columns(c, seed=2)
    x[5, 0] = np.nan  # a NaN, an infinity and signed zeros in the fragments' chains too
    x[seg + 9, 1] = np.inf
    x[2 * seg + 1, 4], x[3 * seg + 2, 4] = -0.0, 0.0

    def stream() -> aggregates.Stream:
        return aggregates.Stream(["x"], x.shape[1], c, keep_chains=seg + 50,
                                 final_chains=3 * seg)  # fmt: skip

    one = stream()
    _feed(one, x, [1000, 3000])
    merged = stream()
    pilot = merged.pilot
    assert pilot == seg
    merged.add(0, {"x": np.ascontiguousarray(x[:pilot].T)})
    worker = stream()
    for lo, hi in [(pilot, 3 * seg), (3 * seg, 4 * seg), (4 * seg, c)]:
        assert merged.can_fragment(lo)
        worker.begin_fragment(lo, merged.shared())
        _feed_from(worker, x, lo, hi, [517, 2000])
        merged.merge(worker.end_fragment())
    for key, arr in one.arrays.items():
        assert np.array_equal(merged.arrays[key], arr, equal_nan=True), key
    assert one.aggregates()["x"]["mean"].tobytes() == merged.aggregates()["x"]["mean"].tobytes()
    with pytest.raises(ValueError, match="not the stream's next"):
        merged.merge({"lo": seg, "hi": 2 * seg})


def _feed_from(
    stream: aggregates.Stream, x: np.ndarray, lo: int, hi: int, sizes: list[int]
) -> None:
    k = 0
    while lo < hi:
        end = min(hi, lo + sizes[k % len(sizes)])
        stream.add(lo, {"x": np.ascontiguousarray(x[lo:end].T)})
        lo, k = end, k + 1


def test_streamed_nan_and_infinities_read_as_numpy_reads_them(streamed: None) -> None:
    c = 10_000
    rng = np.random.default_rng(2)
    cols = [rng.normal(size=c) for _ in range(5)]
    cols[0][[5, 6000]] = np.nan  # NaN: mean, std and max NaN; NaN sorts last
    cols[1][[7, 8000]] = np.inf  # +inf: mean inf, std NaN
    cols[2][:] = -np.inf  # all -inf
    cols[3][rng.random(c) < 0.2] = np.nan  # NaN reaches q95 and above
    cols[4][:3] = [np.inf, -np.inf, np.nan]
    x = np.stack(cols, axis=1)
    s = aggregates.Stream(["x"], 5, c, keep_chains=0, final_chains=0)
    _feed(s, x, [3000])
    got = s.aggregates()["x"]
    with np.errstate(invalid="ignore"):
        want = metrics.aggregate(x)
    for stat in ("mean", "std", "min", "max", "q95"):
        finite = np.isfinite(want[stat])
        assert np.array_equal(np.isnan(got[stat]), np.isnan(want[stat])), stat
        assert np.array_equal(got[stat][~finite], want[stat][~finite], equal_nan=True), stat
        np.testing.assert_allclose(got[stat][finite], want[stat][finite], rtol=1e-3)


def test_a_small_stream_is_exact_and_keeps_what_it_is_asked_to() -> None:
    c = 1000
    x = _columns(c, seed=3)
    s = aggregates.Stream(["x"], x.shape[1], c, keep_chains=7, final_chains=10)
    assert s.exact
    _feed(s, x, [333])
    agg, want = s.aggregates()["x"], metrics.aggregate(x)
    for stat in metrics.STATS:
        np.testing.assert_array_equal(agg[stat], want[stat])
    np.testing.assert_array_equal(s.final()["x"], x[:10, -1])
    np.testing.assert_array_equal(s.trajectories()["x"], x[:7])
    with pytest.raises(ValueError, match="not the next"):
        s.add(0, {"x": x[:5].T.copy()})


_GAUSS = {"num_chains": 9000, "num_generations": 40, "num_samples": 30, "seed": 7}


def test_a_streamed_gaussian_run_agrees_with_the_exact_one(
    streamed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = GaussianConfig(**_GAUSS, final_chains=500)
    a = runner.run(cfg, batch_chains=2500)
    b = runner.run(cfg, batch_chains=4000, threads=1)
    for m in a.aggregates:
        for stat, v in a.aggregates[m].items():
            assert np.array_equal(v, b.aggregates[m][stat], equal_nan=True), (m, stat)
    assert a.summary | {"seconds": 0, "kernel_seconds": 0} == b.summary | {
        "seconds": 0,
        "kernel_seconds": 0,
    }
    assert len(a.final["sigma"]) == 500
    monkeypatch.setattr(aggregates, "HOLD_VALUES", 2**40)  # the exact run
    e = runner.run(cfg)
    np.testing.assert_array_equal(a.final["sigma"], e.final["sigma"])
    np.testing.assert_array_equal(a.trajectories["mu"], e.trajectories["mu"])
    for key in ("mean_final_std", "mean_log_final_std", "var_final_mean", "collapse_rate"):
        assert a.summary[key] == pytest.approx(e.summary[key], rel=1e-12), key
    # Quantiles: within a twentieth of their standard error of the exact ones.
    for key in ("q05_final_std", "median_final_std", "q95_final_std"):
        assert abs(a.summary[key] - e.summary[key]) < 0.05 * e.summary[f"stderr_{key}"], key


def test_a_streamed_run_resumes_to_the_same_result(streamed: None, tmp_path: Path) -> None:
    cfg = GaussianConfig(**_GAUSS)
    whole = runner.run(cfg, batch_chains=2000)
    out = tmp_path / "run"
    it = runner.iterate(cfg, out=out, batch_chains=2000, block_generations=8,
                        checkpoint_seconds=0)  # fmt: skip
    for k, _ in enumerate(it):
        if k == 17:  # batch 2, mid-way: the stream holds two batches and the pilot is fixed
            break
    it.close()
    resumed = runner.run(cfg, out=out, resume=True, batch_chains=2000, block_generations=8)
    for m in whole.aggregates:
        for stat, v in whole.aggregates[m].items():
            assert np.array_equal(v, resumed.aggregates[m][stat], equal_nan=True), (m, stat)
    np.testing.assert_array_equal(whole.final["log_sigma"], resumed.final["log_sigma"])


def test_a_streamed_token_run_keeps_the_exact_fixation_statistics(
    streamed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    kw = {"num_chains": 5000, "num_generations": 60, "num_samples": 20, "categories": 8}
    a = trunner.run(TokenConfig(**kw, final_chains=100), batch_chains=1500)
    monkeypatch.setattr(aggregates, "HOLD_VALUES", 2**40)
    e = trunner.run(TokenConfig(**kw))
    for key in ("fixed_fraction", "median_fixation_generation"):
        assert a.summary[key] == e.summary[key], key
    assert a.summary["mean_final_heterozygosity"] == pytest.approx(
        e.summary["mean_final_heterozygosity"], rel=1e-12
    )
    np.testing.assert_array_equal(a.final["fixed_at"], e.final["fixed_at"][:100])


def test_memory_does_not_grow_with_the_chain_count() -> None:
    # Beyond 2^20 chains only the statistics' fixed-size arrays grow (more bins per window).
    ten_million = GaussianConfig(num_chains=10**7).memory_bytes()
    billion = GaussianConfig(num_chains=10**9).memory_bytes()
    assert billion < 1.2 * ten_million
    assert billion < 2**29
    with pytest.raises(ConfigError, match="lower --final-chains"):  # what the user asked to keep
        GaussianConfig(num_chains=10**9, final_chains=10**9)


def test_the_window_counts_are_those_numpy_counts() -> None:
    # The kernel's branch-free counting against a direct NumPy count, on values with NaN,
    # infinities and atoms, and windows that overlap, coincide, or have one point.
    from collapsesim.kernels import streaming as kern

    rng = np.random.default_rng(7)
    j, n, q, nb = 3, 5000, 4, 16
    x = rng.normal(0.0, 1.0, (j, n))
    x[0, ::97] = np.nan
    x[1, ::89] = np.inf
    x[1, 3::89] = -np.inf
    x[2] = np.round(x[2], 1)  # atoms, some at the windows' ends
    windows = np.array([[-1.0, 0.5], [0.0, 1.0], [0.0, 1.0], [0.3, 0.3]])
    windows = np.broadcast_to(windows, (j, q, 2)).copy()
    outside = np.zeros((j, q, 2), np.int64)
    bins = np.zeros((j, q, nb), np.int64)
    bmin, bmax = np.full((j, q, nb), np.inf), np.full((j, q, nb), -np.inf)
    ends = np.zeros((j, q, nb, 2), np.int64)
    sums = np.zeros((j, 4))
    kern.accumulate(x, np.zeros((j, 4), np.int64), np.zeros(j), sums, np.zeros((j, 4)),
                    np.full(j, np.inf), np.full(j, -np.inf), windows, outside, bins, bmin,
                    bmax, ends, False, True)  # fmt: skip
    assert not sums.any()  # moments off
    for c in range(j):
        v = x[c][~np.isnan(x[c])]
        for w in range(q):
            a, b = windows[c, w]
            assert outside[c, w, 0] == np.sum(v < a)
            assert outside[c, w, 1] == np.sum(v > b)
            inside = v[(v >= a) & (v <= b)]
            scale = nb / (b - a) if b > a else 0.0
            t = np.minimum((inside - a) * scale, nb - 1).astype(np.int64)
            np.testing.assert_array_equal(bins[c, w], np.bincount(t, minlength=nb))
            for k in range(nb):
                got = inside[t == k]
                if got.size:
                    assert bmin[c, w, k] == got.min()
                    assert bmax[c, w, k] == got.max()
                    assert ends[c, w, k, 0] == np.sum(got == got.min())
                    assert ends[c, w, k, 1] == np.sum(got == got.max())
                else:
                    assert bmin[c, w, k] == np.inf
                    assert ends[c, w, k].sum() == 0
