"""The command line through Typer's CliRunner and, for the entry point, a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collapsesim.cli import app

runner = CliRunner()
QUICK = ["gaussian", "--chains", "50", "--generations", "20", "--samples", "10"]
REQUIRED = {
    "chains",
    "generations",
    "samples",
    "ddof",
    "method",
    "regime",
    "seed",
    "mean_final_std",
    "stderr_final_std",
    "median_final_std",
    "mean_log_final_std",
    "theory_mean_final_std",
    "theory_mean_log_final_std",
    "seconds",
}


def test_table_output() -> None:
    res = runner.invoke(app, QUICK)
    assert res.exit_code == 0, res.output
    assert "mean std" in res.output
    assert "theory" in res.output


def test_json_is_one_object_with_the_keys() -> None:
    res = runner.invoke(app, [*QUICK, "--json", "--ddof", "1"])
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert set(data) >= REQUIRED
    assert data["chains"] == 50
    assert data["ddof"] == 1
    assert data["method"] == "sufficient"
    assert data["theory_mean_final_std"] > 0


def test_json_theory_is_null_without_closed_form() -> None:
    res = runner.invoke(app, [*QUICK, "--json", "--regime", "accumulate"])
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert data["theory_mean_final_std"] is None
    assert data["regime"] == "accumulate"


def test_out_and_plot(tmp_path: Path) -> None:
    out, fig = tmp_path / "run", tmp_path / "fig.png"
    res = runner.invoke(app, [*QUICK, "--out", str(out), "--plot", str(fig)])
    assert res.exit_code == 0, res.output
    assert (out / "final.parquet").is_file()
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.stat().st_size > 10_000


BAD = [
    (["--chains", "0"], "chains"),
    (["--chains", "-3"], "chains"),
    (["--samples", "1"], "samples"),
    (["--generations", "-1"], "generations"),
    (["--fresh-fraction", "1.5", "--regime", "fresh"], "fraction"),
    (["--keep-fraction", "-0.1"], "fraction"),
    (["--regime", "recycle"], "regime"),
    (["--method", "exact"], "method"),
    (["--regime", "accumulate-subsample", "--method", "sufficient"], "sufficient"),
    (["--resume"], "--out"),
    (["--threads", "0"], "threads"),
    (["--checkpoint-every", "-1"], "checkpoint"),
]


@pytest.mark.parametrize(("args", "word"), BAD)
def test_bad_input_exits_2_with_one_line(args: list[str], word: str) -> None:
    res = runner.invoke(app, [*QUICK, *args])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    assert word in lines[0]
    assert "Traceback" not in res.output


def test_unwritable_out_and_existing_plot(tmp_path: Path) -> None:
    afile = tmp_path / "taken"
    afile.write_text("keep me")
    res = runner.invoke(app, [*QUICK, "--out", str(afile)])
    assert res.exit_code == 2
    assert afile.read_text() == "keep me"
    res = runner.invoke(app, [*QUICK, "--plot", str(afile)])
    assert res.exit_code == 2
    assert afile.read_text() == "keep me"
    res = runner.invoke(app, [*QUICK, "--out", str(afile / "sub")])
    assert res.exit_code == 2


def test_entry_point_usage_errors_are_one_line() -> None:
    code = "from collapsesim.cli import main; main()"
    for args in (
        ["gaussian", "--chains", "abc"],
        ["gaussian", "--no-such-option"],
        ["nosuchcommand"],
    ):
        res = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr
        assert len([x for x in res.stderr.splitlines() if x.strip()]) == 1, res.stderr


def test_every_subpackage_is_installed() -> None:
    # pytest imports the package from the checkout, so a subpackage missing from
    # pyproject's list would pass here and be absent from the wheel.
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(
        tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        "collapsesim." + p.parent.name for p in (root / "collapsesim").glob("*/__init__.py")
    } | {"collapsesim", "collapsesim.kernels"}
    assert found <= listed, found - listed


def test_options_given_override_a_preset_in_every_family() -> None:
    from collapsesim.families import FAMILIES

    lm = FAMILIES["lm"]
    values = {"regime": "fresh", "keep_fraction": 0.1}
    cfg = lm.make_config(values, {"regime"}, "nature-10")
    assert (cfg.regime, cfg.keep_fraction) == ("fresh", 0.1)
    cfg = lm.make_config({"regime": "replace"}, set(), "nature-10")  # the default loses
    assert cfg.regime == "keep-original"
    mix = FAMILIES["mixture"]
    cfg = mix.make_config({"num_generations": 7}, {"num_generations"}, "nature-2024-keep10")
    assert (cfg.num_generations, cfg.regime, cfg.keep_fraction) == (7, "keep-original", 0.1)


def test_version_and_help_defaults() -> None:
    from collapsesim import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.output.strip() == f"collapsesim {__version__}"
    res = runner.invoke(app, ["mixture", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for shown in ("[default: 2000]", "[default: kmeans++]", "[default: 1e-06]", "Data regime"):
        assert shown in res.output, shown


def test_an_ignored_option_warns_on_stderr() -> None:
    res = runner.invoke(app, [*QUICK, "--keep-fraction", "0.3"])
    assert res.exit_code == 0
    assert "--keep-fraction is ignored: it applies only with --regime keep-original" in res.output
