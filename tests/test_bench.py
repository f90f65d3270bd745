"""`collapsesim bench`: it runs, its JSON has every row, and both sides of a row do the same work."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from collapsesim import bench
from collapsesim.bench import _chains
from collapsesim.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def quick_report() -> dict:
    """One quick run of the chain families' benchmarks (no subprocesses, no neural models)."""
    result = runner.invoke(
        app,
        ["bench", "rng", "gaussian", "mixture", "tokens", "--quick", "--repeats", "1", "--json"],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_has_every_row(quick_report: dict) -> None:
    names = [r["name"] for r in quick_report["rows"]]
    groups = {r["group"] for r in quick_report["rows"]}
    assert groups == {"rng", "gaussian", "mixture", "tokens"}
    expected = [
        "random-number floor",
        "sample method, 200 chains x 20 gens",
        "sufficient method, 10,000 chains x 256 gens",
        "sufficient kernel, 100,000 chains x 1000 gens",
        "Rich progress bar",
        "curated sample method, self-interval 1.5, 200 chains x 20 gens",
        "curated sample method, soft 1, 200 chains x 20 gens",
        "curated sample method, best of 4 (loglik), 200 chains x 20 gens",
        "EM chains, 4 chains x 5 gens, n=1000, K=2, d=2, kmeans++",
        "preset nature-2024",
        "EM chains, 4 chains x 5 gens, n=1000, K=2, d=2, warm",
        "K=10^3, 50 chains x 50 gens, n=1000, vs the multinomial loop",
        "K=10^3, 50 chains x 50 gens, n=1000, vs the vectorised gather",
        "K=10^5, 5 chains x 20 gens, n=1000, vs the multinomial loop",
        "K=10^5, 5 chains x 20 gens, n=1000, vs the vectorised gather",
    ]
    assert len(names) == len(expected)
    for name, start in zip(names, expected, strict=True):
        assert start in name
    machine = quick_report["machine"]
    for key in ("cpu", "cores", "numba_threads", "jax_backend", "jax_devices"):
        assert machine[key] is not None
    assert quick_report["quick"]
    assert quick_report["repeats"] == 1


def test_both_sides_do_the_same_work(quick_report: dict) -> None:
    """Each side counts the work its own loop did; a row's two counts must agree."""
    with_baseline = [r for r in quick_report["rows"] if r["baseline"] is not None]
    assert len(with_baseline) >= 8
    for row in with_baseline:
        assert row["baseline"]["done"] == row["ours"]["done"], row["name"]
        work = row["work"]
        assert row["ours"]["done"] == work["chains"] * work["generations"], row["name"]
        assert row["ratio"] == pytest.approx(row["baseline"]["seconds"] / row["ours"]["seconds"])
    for row in quick_report["rows"]:
        assert row["ours"]["seconds"] > 0
        assert row["ours"]["done"] > 0
        paired = "progress bar" in row["name"]  # 2 repeats + 1 alternating pairs
        estimate = "estimate" in row["name"]  # from another row's rate
        assert len(row["ours"]["times"]) == (3 if paired else 0 if estimate else 1), row["name"]
        if row["target"] is not None:
            assert isinstance(row["met"], bool)


@pytest.mark.parametrize(
    "baseline", [_chains.numpy_multinomial, _chains.numpy_gather], ids=["multinomial", "gather"]
)
def test_token_baselines_count_their_work(baseline) -> None:  # type: ignore[no-untyped-def]
    assert baseline(100, 50, 3, 7) == 3 * 7


def test_gather_baseline_draws_the_multinomial() -> None:
    """Resampling n tokens of the previous generation is multinomial(n, counts / n): the mean
    count of category 0 after one step from a fixed set is its count (MC-SE tolerance)."""
    rng = np.random.default_rng(1)
    tokens = np.repeat(np.arange(4), [10, 20, 30, 40])[None].repeat(20_000, 0)
    rows = np.arange(len(tokens))[:, None]
    nxt = tokens[rows, rng.integers(0, 100, tokens.shape)]
    counts = (nxt == 0).sum(1)
    se = np.sqrt(100 * 0.1 * 0.9 / len(counts))
    assert abs(counts.mean() - 10) < 4 * se
    assert counts.var() == pytest.approx(100 * 0.1 * 0.9, rel=0.05)


def test_readme_table_is_replaced(tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = tmp_path / "README.md"
    page.write_text(f"intro\n{bench.START}\nold table\n{bench.END}\nafter\n")
    result = runner.invoke(
        app, ["bench", "rng", "--quick", "--repeats", "1", "--readme", str(page)]
    )
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "old table" not in text
    assert text.startswith("intro\n")
    assert text.endswith("after\n")
    assert "| random-number floor" in text
    assert "Machine: " in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "no benchmark 'nope'"),
        (["--backend", "cuda"], "backend must be one of numba, jax"),
        (["--repeats", "0"], "repeats must be at least 1"),
        (["--readme", "/nonexistent/README.md"], "no such file"),
    ],
)
def test_bad_input_is_one_line(args, message) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_jax_backend_skips_what_has_no_jax_chain() -> None:
    steps = bench.run(["mixture"], backend="jax", quick=True, repeats=1)
    with pytest.raises(StopIteration) as stop:
        next(steps)
    report = stop.value.value
    assert report.rows == []
    assert report.skipped == ["mixture: no jax backend"]


def test_each_backend_writes_its_own_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = tmp_path / "README.md"
    start, end = bench.markers("jax")
    page.write_text(f"{bench.START}\nnumba table\n{bench.END}\n{start}\nold\n{end}\n")
    args = ["bench", "rng", "--backend", "jax", "--quick", "--repeats", "1", "--readme", str(page)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "numba table" in text  # the other backend's table is kept
    assert "jax.random" in text.split(start)[1]
    assert "\nold\n" not in text
