"""Run directories: Parquet through DuckDB, atomic writes, never overwriting, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest

from collapsesim import store
from collapsesim.config import GaussianConfig
from collapsesim.experiments import gaussian as runner

SMALL = GaussianConfig(num_chains=40, num_generations=30, num_samples=20, seed=5, keep_chains=7)


def test_run_directory_contents(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = runner.run(SMALL, out=out)
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        ".collapsesim.lock",  # the run directory's lock (free once the run ends)
        "aggregates.parquet",
        "final.parquet",
        "run.json",
        "summary.json",
        "trajectories.parquet",
    ]
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "complete"
    assert meta["config"] == SMALL.to_dict()
    assert {"numba", "numpy", "collapsesim", "git_commit"} <= set(meta["provenance"])
    assert meta["timings"]["seconds"] > 0
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT count(*), count(DISTINCT chain) FROM '{out}/trajectories.parquet'"
    ).fetchone()
    assert rows == (7 * 31, 7)
    agg = con.execute(
        f"SELECT mean, q50 FROM '{out}/aggregates.parquet' WHERE metric = 'sigma' AND generation = 30"
    ).fetchone()
    assert agg[0] == pytest.approx(res.final["sigma"].mean())
    assert agg[1] == pytest.approx(np.median(res.final["sigma"]))
    fin = con.execute(
        f"SELECT chain, log_sigma FROM '{out}/final.parquet' ORDER BY chain"
    ).fetchnumpy()
    np.testing.assert_array_equal(fin["log_sigma"], res.final["log_sigma"])
    assert (
        json.loads((out / "summary.json").read_text())["mean_final_std"]
        == res.summary["mean_final_std"]
    )


def test_load_round_trip(tmp_path: Path) -> None:
    res = runner.run(SMALL, out=tmp_path / "r")
    back = runner.load(tmp_path / "r")
    assert back.config == SMALL
    np.testing.assert_array_equal(back.generations, res.generations)
    for m in res.final:
        np.testing.assert_array_equal(back.final[m], res.final[m])
        np.testing.assert_array_equal(back.trajectories[m], res.trajectories[m])
        np.testing.assert_array_equal(back.aggregates[m]["q95"], res.aggregates[m]["q95"])


def test_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "r"
    runner.run(SMALL, out=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(store.RunDirError, match="already holds a run"):
        runner.run(SMALL, out=out)
    with pytest.raises(store.RunDirError, match="different configuration"):
        runner.run(GaussianConfig(num_chains=41), out=out, resume=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(store.RunDirError, match="holds no collapsesim run"):
        runner.run(SMALL, out=other, resume=True)
    assert (other / "notes.txt").read_text() == "mine"
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(store.RunDirError, match="not a directory"):
        runner.run(SMALL, out=afile)


def test_resume_after_generator_is_abandoned(tmp_path: Path) -> None:
    cfg = GaussianConfig(
        num_chains=30, num_generations=50, num_samples=40, seed=12, method="sample", regime="fresh"
    )
    whole = runner.run(cfg)
    out = tmp_path / "r"
    steps = runner.iterate(cfg, out=out, batch_chains=7, block_generations=4, checkpoint_seconds=0)
    for _ in range(9):  # into the second batch, mid-generations
        next(steps)
    steps.close()  # the process "dies" here
    assert (out / store.CHECKPOINT_FILE).is_file()
    assert not list(out.glob("*.parquet"))
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    resumed = runner.run(cfg, out=out, resume=True)
    for m in whole.final:
        np.testing.assert_array_equal(resumed.final[m], whole.final[m])
        np.testing.assert_array_equal(resumed.aggregates[m]["mean"], whole.aggregates[m]["mean"])
    assert not (out / store.CHECKPOINT_FILE).exists()
    assert len(json.loads((out / "run.json").read_text())["resumed"]) == 1


def test_resume_of_complete_run_loads_it(tmp_path: Path) -> None:
    res = runner.run(SMALL, out=tmp_path / "r")
    again = runner.run(SMALL, out=tmp_path / "r", resume=True)
    assert again.summary == runner.load(tmp_path / "r").summary
    np.testing.assert_array_equal(again.final["mu"], res.final["mu"])


def test_killed_process_resumes_to_identical_results(tmp_path: Path) -> None:
    # A real SIGKILL mid-run, then --resume: results equal an uninterrupted run.
    args = [
        "--chains",
        "64",
        "--generations",
        "3000",
        "--samples",
        "4000",
        "--method",
        "sample",
        "--seed",
        "77",
        "--checkpoint-every",
        "0",
        "--json",
    ]
    out = tmp_path / "killed"
    code = "from collapsesim.cli import main; main()"
    cmd = [sys.executable, "-c", code, "gaussian", *args, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    ck = out / store.CHECKPOINT_FILE
    while time.time() < deadline and not ck.exists() and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    killed = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed, "the run finished before it could be killed; make it longer"
    assert not list(out.glob("*.parquet"))
    done = subprocess.run(
        [*cmd, "--resume"], capture_output=True, text=True, timeout=600, check=True
    )
    resumed = json.loads(done.stdout)
    cfg = GaussianConfig(
        num_chains=64, num_generations=3000, num_samples=4000, method="sample", seed=77
    )
    whole = runner.run(cfg)
    for key in ("mean_final_std", "median_final_std", "mean_log_final_std", "var_final_mean"):
        assert resumed[key] == whole.summary[key]
    np.testing.assert_array_equal(runner.load(out).final["log_sigma"], whole.final["log_sigma"])
