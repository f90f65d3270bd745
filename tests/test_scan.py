"""collapsesim scan: the power law recovered, levels, resume, bad grids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from collapsesim import store
from collapsesim.cli import app
from collapsesim.experiments import scan as scanner
from collapsesim.experiments._common import drain

cli = CliRunner()


def scanner_run(family, base, grid, **kw):  # type: ignore[no-untyped-def]
    return drain(scanner.iterate(family, base, grid, **kw))


def _run(family, base, specs, **kw):  # type: ignore[no-untyped-def]
    return scanner_run(family, base, scanner.parse_grid(family, specs), **kw)


def test_gaussian_scan_recovers_exponent_minus_one() -> None:
    res = _run(
        "gaussian",
        {"num_chains": 4000, "num_generations": 100, "seed": 3},
        {"samples": "100,200,400,800"},
    )
    (fit,) = res.fits
    assert fit["exponent_lo"] <= -1.0 <= fit["exponent_hi"]
    assert fit["exponent_lo"] <= fit["theory_exponent"] <= fit["exponent_hi"]
    for row in res.rows:  # every point's interval holds the exact rate (95%: allow 4 se)
        assert abs(row["rate"] - row["theory_rate"]) < 4 * row["rate_se"]


def test_token_scan_rate_is_wright_fisher() -> None:
    res = _run(
        "tokens",
        {"num_chains": 3000, "num_generations": 30, "categories": 50, "seed": 2},
        {"samples": "50,100,200"},
    )
    for row in res.rows:
        assert abs(row["rate"] - row["theory_rate"]) < 4 * row["rate_se"]
    (fit,) = res.fits
    assert fit["exponent_lo"] <= fit["theory_exponent"] <= fit["exponent_hi"]


def test_real_data_raises_the_level() -> None:
    res = _run(
        "gaussian",
        {"num_chains": 1000, "num_generations": 300, "num_samples": 50, "regime": "fresh"},
        {"fresh-fraction": "0,0.05,0.2"},
    )
    levels = [row["level"] for row in res.rows]
    assert levels[0] < levels[1] < levels[2]
    # A fresh fraction of 0 is replace, with replace's exact rate; real data has none,
    # and the row says why.
    from collapsesim import theory

    assert res.rows[0]["theory_rate"] == theory.collapse_rate(50, 0, "replace")
    assert res.rows[0]["why_theory_rate"] is None
    assert res.rows[1]["theory_rate"] is None
    assert "no closed form" in res.rows[1]["why_theory_rate"]
    assert res.rows[0]["rate_lo"] < res.rows[0]["theory_rate"] < res.rows[0]["rate_hi"]


def test_two_parameter_grid_fits_per_value(tmp_path: Path) -> None:
    res = _run(
        "gaussian",
        {"num_chains": 500, "num_generations": 50},
        {"samples": "50,100,200", "ddof": "0,1"},
        out=tmp_path / "s",
    )
    assert len(res.rows) == 6
    assert sorted(f["ddof"] for f in res.fits) == [0.0, 1.0]
    summary = store.read_parquet(tmp_path / "s" / "summary.parquet")
    assert len(summary["rate"]) == 6
    assert len(list((tmp_path / "s").glob("point_*.parquet"))) == 6


def test_resume_skips_finished_points(tmp_path: Path) -> None:
    base = {"num_chains": 300, "num_generations": 40}
    grid = scanner.parse_grid("gaussian", {"samples": "30,60,120"})
    out = tmp_path / "s"
    steps = scanner.iterate("gaussian", base, grid, out=out)
    while not (out / "point_001.json").exists():
        next(steps)
    steps.close()
    (out / "point_000.json").write_text(
        json.dumps({**json.loads((out / "point_000.json").read_text()), "rate": 123.0})
    )
    res = scanner_run("gaussian", base, grid, out=out, resume=True)
    assert res.rows[0]["rate"] == 123.0  # taken from disk, not rerun
    whole = scanner_run("gaussian", base, grid)
    np.testing.assert_equal(res.rows[2]["rate"], whole.rows[2]["rate"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gaussian", "--samples", ","], "needs a comma-separated list"),
        (["gaussian", "--samples", "10,-20"], "non-negative"),
        (["gaussian", "--samples", "10,abc"], "not a list of numbers"),
        (["gaussian", "--temperature", "1,2"], "does not apply to gaussian"),
        (["tokens", "--ddof", "0,1"], "does not apply to tokens"),
        (["gaussian", "--samples", "1,10"], "samples must lie in [2, 2^53], got 1"),
        (["dragons", "--samples", "1,2"], "unknown family"),
        (["gaussian", "--samples", "10,10"], "repeat"),
        (["gaussian"], "one or two parameters"),
    ],
)
def test_bad_grids(args: list[str], message: str) -> None:
    res = cli.invoke(app, ["scan", *args, "--chains", "10", "--generations", "5"])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output


def test_cli_json_and_plot(tmp_path: Path) -> None:
    png = tmp_path / "s.png"
    res = cli.invoke(
        app,
        ["scan", "tokens", "--samples", "20,40", "--temperature", "1,0.9", "--chains", "200",
         "--generations", "20", "--categories", "30", "--json", "--plot", str(png)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert len(data["points"]) == 4
    assert png.read_bytes()[:4] == b"\x89PNG"
