"""``collapsesim compare``: stored runs side by side, their differences with honest errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from collapsesim import compare as comparing
from collapsesim import run
from collapsesim.cli import app
from collapsesim.families import FAMILIES

GAUSS = {"num_chains": 400, "num_generations": 30, "num_samples": 20}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Stored runs: two regimes on one seed, one more seed, a mixture, a one-chain stub."""
    root = tmp_path_factory.mktemp("runs")
    cfg = FAMILIES["gaussian"].config
    dirs = {}
    for name, kw in {
        "replace": {"seed": 1},
        "accumulate": {"seed": 1, "regime": "accumulate"},
        "replace-seed2": {"seed": 2},
        "subset": {"seed": 1, "regime": "accumulate", "final_chains": 100},
    }.items():
        dirs[name] = root / name
        run(cfg(**GAUSS, **kw), out=dirs[name])
    dirs["tokens"] = root / "tokens"
    run(FAMILIES["tokens"].config(num_chains=50, num_generations=10, num_samples=30,
                                  categories=10, seed=1), out=dirs["tokens"])  # fmt: skip
    return dirs


def test_paired_difference_is_the_mean_of_per_chain_differences(runs: dict[str, Path]) -> None:
    from collapsesim import load

    cmp = comparing.compare([runs["replace"], runs["accumulate"]])
    assert cmp.metric == "sigma"  # gaussian's headline
    [d] = cmp.differences
    assert d.method == "paired"
    a = load(runs["accumulate"]).final["sigma"]
    b = load(runs["replace"]).final["sigma"]
    diff = a - b
    assert d.value == pytest.approx(diff.mean(), rel=1e-12)
    assert d.stderr == pytest.approx(diff.std(ddof=1) / math.sqrt(len(diff)), rel=1e-12)
    assert d.z == pytest.approx(d.value / d.stderr)
    # Accumulating keeps sigma near 1, replacing collapses it: a large, significant gap.
    assert d.value > 0
    assert d.z > 10
    # Shared draws: the paired error is below the independent one.
    e0, e1 = cmp.entries
    assert e0.final_stderr is not None
    assert e1.final_stderr is not None
    assert d.stderr < math.hypot(e0.final_stderr, e1.final_stderr)
    # The labels name what sets the runs apart; both start at sigma0 = 1.
    assert [e.label for e in cmp.entries] == ["replace", "accumulate"]
    assert e0.start == 1.0
    assert e1.start == 1.0
    assert cmp.common["num_samples"] == 20


def test_different_seeds_are_independent(runs: dict[str, Path]) -> None:
    cmp = comparing.compare([runs["replace"], runs["replace-seed2"]])
    [d] = cmp.differences
    e0, e1 = cmp.entries
    assert d.method == "independent"
    assert e0.final_stderr is not None
    assert e1.final_stderr is not None
    assert d.stderr == pytest.approx(math.hypot(e0.final_stderr, e1.final_stderr))
    assert d.value == pytest.approx(e1.final_mean - e0.final_mean)
    # The same settings on two seeds: the difference is noise (|z| < 4 at this seed pair).
    assert d.z is not None
    assert abs(d.z) < 4
    assert [e.label for e in cmp.entries] == ["seed 1", "seed 2"]


def test_same_seed_without_every_chain_has_no_error_and_says_why(runs: dict[str, Path]) -> None:
    cmp = comparing.compare([runs["replace"], runs["subset"]])
    [d] = cmp.differences
    assert d.stderr is None
    assert d.z is None
    assert d.why is not None
    assert "final_chains" in d.why
    assert d.value is not None


def test_mixed_families_need_a_shared_metric(runs: dict[str, Path]) -> None:
    with pytest.raises(comparing.CompareError, match="no metric 'sigma'"):
        comparing.compare([runs["replace"], runs["tokens"]], "sigma")
    with pytest.raises(comparing.CompareError, match="share no metric"):
        comparing.compare([runs["replace"], runs["tokens"]])


def test_cli_table_json_and_figure(runs: dict[str, Path], tmp_path: Path) -> None:
    dirs = [str(runs[k]) for k in ("replace", "accumulate", "replace-seed2", "subset")]
    res = CliRunner().invoke(app, ["compare", *dirs, "--metric", "sigma", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["metric"] == "sigma"
    assert [r["directory"] for r in data["runs"]] == dirs
    assert [d["method"] for d in data["differences"]] == ["paired", "independent", None]
    assert data["differences"][2]["why"]
    plot = tmp_path / "cmp.svg"
    res = CliRunner().invoke(app, ["compare", *dirs[:3], "--plot", str(plot)],
                             env={"COLUMNS": "200"})  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "accumulate, seed 1" in res.stdout
    assert "paired" in res.stdout
    assert plot.read_text().lstrip().startswith("<?xml")
    png = tmp_path / "cmp.png"
    res = CliRunner().invoke(app, ["compare", dirs[0], dirs[1], "--metric", "log_sigma",
                                   "--plot", str(png)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "/nonexistent-run"], "is not a directory"),
        (["compare", "{replace}", "--metric", "nope"], "no metric 'nope'"),
        (["compare", "{replace}", "{tokens}"], "share no metric"),
        (["compare", "{empty}"], "run"),
        (["compare", "{replace}", "--plot", "x.gif"], "PNG, PDF or SVG"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    runs: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "empty").mkdir()
    names = {**{k: str(v) for k, v in runs.items()}, "empty": str(tmp_path / "empty")}
    args = [a.format(**names) for a in args]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_one_chain_runs_have_no_error(tmp_path: Path) -> None:
    # A comparison of entries whose runs have one chain: no Monte Carlo error, a reason.
    a = comparing.Entry(tmp_path, "vae", "a", {}, 1, np.arange(3), {"mean": np.ones(3)},
                        1.0, None, 1.0, 1.0)  # fmt: skip
    b = comparing.Entry(tmp_path, "vae", "b", {}, 1, np.arange(3), {"mean": np.ones(3) * 2},
                        2.0, None, 2.0, 1.0)  # fmt: skip
    d = comparing._difference([a, b], 1, 0)
    assert d.value == 1.0
    assert d.stderr is None
    assert d.z is None
    assert d.why is not None
    assert "one chain" in d.why
