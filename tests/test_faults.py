"""Faults: damaged run directories, a full disk, two writers, leftovers, sizes out of range.

Each damaged file and each fault ends in one line naming what went wrong and what to do,
exit code 2, and nothing stored is lost; a ``--resume`` once the fault is gone finishes
the run with the results of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from collapsesim import config, store
from collapsesim.cli import app
from collapsesim.config import ConfigError, GaussianConfig
from collapsesim.experiments import _common
from collapsesim.experiments import gaussian as runner
from collapsesim.families import FAMILIES

cli = CliRunner()
ARGS = ["--chains", "30", "--generations", "40", "--samples", "20", "--seed", "3"]
CFG = GaussianConfig(num_chains=30, num_generations=40, num_samples=20, seed=3)


def _one_line(res: object) -> str:
    out = str(getattr(res, "output", ""))
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert getattr(res, "exit_code", None) == 2, out
    assert "Traceback" not in out
    assert len(lines) == 1, out
    return lines[0]


def _interrupted(out: Path) -> None:
    """A run in ``out`` killed mid-way (after its second batch's first checkpoint)."""
    steps = runner.iterate(CFG, out=out, batch_chains=7, block_generations=4, checkpoint_seconds=0)
    for _ in range(14):
        next(steps)
    steps.close()
    assert (out / store.CHECKPOINT_FILE).is_file()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _random(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _other_npz(path: Path) -> None:
    np.savez(path, something=np.arange(3))


@pytest.mark.parametrize("damage", [_truncate, _empty, _random, _directory, _other_npz])
def test_damaged_checkpoint_is_one_line_naming_it(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    out = tmp_path / "r"
    _interrupted(out)
    damage(out / store.CHECKPOINT_FILE)
    line = _one_line(cli.invoke(app, ["gaussian", *ARGS, "--out", str(out), "--resume"]))
    assert "checkpoint.npz is damaged" in line
    assert "delete it and rerun with --resume" in line
    # Doing what it says finishes the run with the uninterrupted results.
    ck = out / store.CHECKPOINT_FILE
    if ck.is_dir():
        ck.rmdir()
    else:
        ck.unlink()
    assert cli.invoke(app, ["gaussian", *ARGS, "--out", str(out), "--resume"]).exit_code == 0
    np.testing.assert_array_equal(runner.load(out).final["mu"], runner.run(CFG).final["mu"])


@pytest.mark.parametrize("text", ["5", "null", "[1, 2]", "{", ""])
def test_damaged_run_json_is_one_line_naming_it(tmp_path: Path, text: str) -> None:
    out = tmp_path / "r"
    _interrupted(out)
    (out / store.RUN_FILE).write_text(text)
    line = _one_line(cli.invoke(app, ["gaussian", *ARGS, "--out", str(out), "--resume"]))
    assert "run.json is damaged" in line


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("final.parquet", _truncate),
        ("aggregates.parquet", _random),
        ("summary.json", lambda p: p.unlink()),
        ("trajectories.parquet", lambda p: p.unlink()),
    ],
)
def test_damaged_complete_run_is_one_line_naming_the_file(
    tmp_path: Path, name: str, damage: Callable[[Path], None]
) -> None:
    out = tmp_path / "r"
    runner.run(CFG, out=out)
    damage(out / name)
    line = _one_line(cli.invoke(app, ["gaussian", *ARGS, "--out", str(out), "--resume"]))
    assert name in line
    assert "another --out" in line
    with pytest.raises(store.RunDirError, match=name):
        runner.load(out)


def test_damaged_scan_point_is_one_line_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "scan"
    scan = ["scan", "gaussian", "--samples", "10,20", "--chains", "20", "--generations", "5"]
    assert cli.invoke(app, [*scan, "--out", str(out)]).exit_code == 0
    _truncate(out / "point_001.json")
    line = _one_line(cli.invoke(app, [*scan, "--out", str(out), "--resume"]))
    assert "point_001.json is damaged" in line
    (out / "point_001.json").unlink()
    assert cli.invoke(app, [*scan, "--out", str(out), "--resume"]).exit_code == 0


def test_disk_full_is_one_line_and_resume_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The disk fills after a few writes: each later write fails as a full disk does.
    out = tmp_path / "r"
    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(store.os, "fsync", fsync)
    args = ["gaussian", *ARGS, "--out", str(out), "--checkpoint-every", "0"]
    line = _one_line(cli.invoke(app, args))
    assert "no space left on the device" in line
    assert "rerun with --resume" in line
    assert not list(out.glob(".*.tmp"))  # no half-written file left behind
    monkeypatch.setattr(store.os, "fsync", real_fsync)  # space freed
    assert cli.invoke(app, [*args, "--resume"]).exit_code == 0
    np.testing.assert_array_equal(runner.load(out).final["mu"], runner.run(CFG).final["mu"])


def test_disk_full_in_duckdb_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb

    monkeypatch.setattr(duckdb, "connect", lambda: _FullConnection())
    with pytest.raises(store.DiskFullError, match="no space left"):
        store.write_parquet(tmp_path / "x.parquet", {"a": np.arange(3)})
    assert not list(tmp_path.iterdir())


class _FullConnection:
    """A DuckDB connection whose COPY fails as it does on a full disk."""

    def register(self, *args: object) -> None:
        pass

    def execute(self, *args: object) -> None:
        import duckdb

        raise duckdb.IOException('Could not write file "x": No space left on device')

    def close(self) -> None:
        pass


def _python_cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from collapsesim.cli import main; main()", *args]


def test_second_writer_is_refused_naming_the_holder_and_a_killed_lock_is_free(
    tmp_path: Path,
) -> None:
    out = tmp_path / "shared"
    long = ["--chains", "64", "--generations", "3000", "--samples", "4000", "--method", "sample"]
    first = subprocess.Popen(
        _python_cli("gaussian", *long, "--seed", "1", "--out", str(out), "--checkpoint-every", "0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / store.CHECKPOINT_FILE).exists():
            assert first.poll() is None, "the first run ended before the second could start"
            time.sleep(0.05)
        second = subprocess.run(
            _python_cli("gaussian", *ARGS, "--seed", "2", "--out", str(out)),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert second.returncode == 2, second.stderr
        lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, second.stderr
        assert "in use by another collapsesim run" in lines[0]
        assert f"process {first.pid}" in lines[0]
        assert first.poll() is None  # the first run goes on
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    # The killed run's lock is gone with it: --resume takes the directory and finishes.
    cfg = {"num_chains": 64, "num_generations": 3000, "num_samples": 4000, "method": "sample"}
    resumed = runner.run(GaussianConfig(**cfg, seed=1), out=out, resume=True)  # type: ignore[arg-type]
    assert resumed.summary["chains"] == 64


def test_leftover_temporary_files_are_removed_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "r"
    _interrupted(out)
    left = out / ".checkpoint.npz.k3j_x9q2.tmp"
    left.write_bytes(b"\0" * 1000)  # what a kill during an atomic write leaves
    mine = out.parent / ".notes.k3j_x9q2.tmp"
    mine.write_text("a user's file beside the run directory")
    runner.run(CFG, out=out, resume=True)
    assert not left.exists()
    assert mine.exists()


def test_leftovers_do_not_make_a_directory_look_used(tmp_path: Path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / ".run.json.abcdefgh.tmp").write_text("{")
    runner.run(CFG, out=out)
    assert not (out / ".run.json.abcdefgh.tmp").exists()


def test_a_directory_of_dotfiles_is_not_empty(tmp_path: Path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / ".keep").write_text("mine")
    line = _one_line(cli.invoke(app, ["gaussian", *ARGS, "--out", str(out)]))
    assert "not empty" in line
    assert (out / ".keep").read_text() == "mine"


def test_kill_during_the_final_writes_resumes_and_load_refuses_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "r"
    real = store.write_parquet
    written: list[str] = []

    def dies_after_one(path: Path, columns: object) -> None:
        if written:
            raise KeyboardInterrupt  # the process is killed between two result files
        written.append(Path(path).name)
        real(path, columns)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "write_parquet", dies_after_one)
    steps = runner.iterate(CFG, out=out, batch_chains=7, block_generations=4, checkpoint_seconds=0)
    with pytest.raises(KeyboardInterrupt):
        _common.drain(steps)
    monkeypatch.setattr(store, "write_parquet", real)
    assert len(list(out.glob("*.parquet"))) == 1
    with pytest.raises(store.RunDirError, match="not complete"):
        runner.load(out)
    resumed = runner.run(CFG, out=out, resume=True)
    np.testing.assert_array_equal(resumed.final["mu"], runner.run(CFG).final["mu"])
    assert runner.load(out).summary["chains"] == 30


# -- sizes ---------------------------------------------------------------------------------


def _int_fields(cls: type) -> list[dataclasses.Field[object]]:
    return [
        f
        for f in dataclasses.fields(cls)
        if f.type in ("int", "tuple[int, int]") and f.metadata.get("cli", True)
    ]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_integer_option_has_a_range(family: str) -> None:
    cls = FAMILIES[family].config
    missing = [f.name for f in _int_fields(cls) if f.metadata.get("range") is None]
    assert not missing


@pytest.mark.parametrize(
    ("family", "name"),
    [(fam, f.name) for fam in FAMILIES for f in _int_fields(FAMILIES[fam].config)],
)
def test_integers_outside_their_range_are_config_errors(family: str, name: str) -> None:
    cls = FAMILIES[family].config
    lo, hi = next(f for f in dataclasses.fields(cls) if f.name == name).metadata["range"]
    for bad in (lo - 1, hi + 1, 10**30, "3", 2.0, True):
        value = (bad, bad) if name == "widths" else bad
        with pytest.raises(ConfigError, match="must"):
            cls(**{name: value})


def test_a_run_larger_than_memory_is_refused_with_the_estimate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(config, "available_memory", lambda: 2**20)
    cfg = GaussianConfig(num_chains=100_000, num_generations=10, num_samples=10)
    with pytest.raises(ConfigError, match=r"needs about .* MiB of memory .* 1.0 MiB available"):
        runner.run(cfg)
    res = cli.invoke(app, ["gaussian", "--chains", "100000", "--generations", "10"])
    assert "needs about" in _one_line(res)


def test_memory_estimates_grow_with_the_run() -> None:
    small = GaussianConfig(num_chains=10, num_samples=10, method="sample")
    big = GaussianConfig(num_chains=10, num_samples=10**9, method="sample")
    assert big.memory_bytes() > 10**9 > small.memory_bytes()
    assert json.dumps(small.to_dict())  # the estimate is no field of the stored config


def test_a_run_begun_by_an_earlier_kernel_is_not_resumed(tmp_path: Path) -> None:
    # 0.3 drew the replace-sufficient mean per record from the std stream and kept no chain
    # keys: its checkpoint cannot continue under 0.4 without mixing two samples in a run.
    out = tmp_path / "run"
    _interrupted(out)
    meta = json.loads((out / store.RUN_FILE).read_text())
    assert meta["kernel"] == runner.KERNEL
    del meta["kernel"]
    meta["provenance"]["collapsesim"] = "0.3.0"
    (out / store.RUN_FILE).write_text(json.dumps(meta))
    line = _one_line(cli.invoke(app, ["gaussian", *ARGS, "--out", str(out), "--resume"]))
    assert "begun by collapsesim 0.3.0" in line
    assert "another --out" in line
    assert (out / store.CHECKPOINT_FILE).is_file()  # nothing removed


def test_a_checkpoint_of_the_layout_before_streaming_is_not_resumed(tmp_path: Path) -> None:
    # 0.6 keeps a batch's records in its state and the run's statistics in a stream: a 0.5
    # checkpoint (run-wide records, no format) cannot continue.
    out = tmp_path / "run"
    _interrupted(out)
    path = out / store.CHECKPOINT_FILE
    with np.load(path) as saved:
        old = {k: saved[k] for k in saved.files if k != "format"}
    np.savez(path, **old)
    line = _one_line(cli.invoke(app, ["gaussian", *ARGS, "--out", str(out), "--resume"]))
    assert "begun by an earlier collapsesim" in line
    assert "another --out" in line
    assert path.is_file()  # nothing removed


def test_a_jax_run_begun_before_counter_draws_is_not_resumed(tmp_path: Path) -> None:
    # 0.5 made the JAX sufficient method's draws counter-based: a 0.4 checkpoint's chains
    # would continue on other draws than they began with.
    out = tmp_path / "run"
    cfg = GaussianConfig(num_chains=30, num_generations=40, num_samples=20, seed=3, backend="jax")
    steps = runner.iterate(cfg, out=out, batch_chains=7, block_generations=4, checkpoint_seconds=0)
    for _ in range(14):
        next(steps)
    steps.close()
    meta = json.loads((out / store.RUN_FILE).read_text())
    assert meta["kernel"] == runner.JAX_KERNEL
    del meta["kernel"]
    meta["provenance"]["collapsesim"] = "0.4.0"
    (out / store.RUN_FILE).write_text(json.dumps(meta))
    args = [*ARGS, "--backend", "jax", "--out", str(out), "--resume"]
    line = _one_line(cli.invoke(app, ["gaussian", *args]))
    assert "begun by collapsesim 0.4.0" in line
    assert (out / store.CHECKPOINT_FILE).is_file()  # nothing removed
    meta["kernel"] = runner.JAX_KERNEL  # the same run under this version resumes
    (out / store.RUN_FILE).write_text(json.dumps(meta))
    assert cli.invoke(app, ["gaussian", *args, "--json"]).exit_code == 0
