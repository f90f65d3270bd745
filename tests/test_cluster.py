"""Runs on a Dask LocalCluster of two worker processes equal one-process runs bit for bit,
whatever the tasks; a worker killed mid-run and a client killed mid-run change nothing; a
bad address is one line and exit 2, soon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("distributed")

from collapsesim import load, run
from collapsesim.cli import app
from collapsesim.cluster import Cluster, ClusterError, connect, parse
from collapsesim.experiments import scan as scanner
from collapsesim.families import FAMILIES


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with connect("local:2", threads=1) as cl:
        yield cl


def _arrays(result: Any) -> dict[str, np.ndarray]:
    out = {"generations": np.asarray(result.generations)}
    for metric, stats in result.aggregates.items():
        for stat, values in stats.items():
            out[f"aggregates/{metric}/{stat}"] = np.asarray(values)
    for group in ("final", "trajectories", "components"):
        for key, values in getattr(result, group, {}).items():
            out[f"{group}/{key}"] = np.asarray(values)
    if hasattr(result, "snapshots"):
        out["snapshots"] = np.asarray(result.snapshots)
    if hasattr(result, "theory"):
        out |= {f"theory/{k}": np.asarray(v) for k, v in result.theory.items()}
    summary = {k: v for k, v in result.summary.items() if "seconds" not in k}
    out["summary"] = np.array(repr(sorted(summary.items())))
    return out


def _assert_same(a: Any, b: Any) -> None:
    x, y = _arrays(a), _arrays(b)
    assert sorted(x) == sorted(y)
    for key in x:
        assert x[key].dtype == y[key].dtype, key
        assert np.array_equal(x[key], y[key], equal_nan=x[key].dtype.kind in "fc"), key


CASES = {
    "gaussian-sufficient": ("gaussian", {"num_chains": 300, "num_generations": 40,
                                         "num_samples": 30, "seed": 5}),
    "gaussian-sample-fresh": ("gaussian", {"num_chains": 90, "num_generations": 20,
                                           "num_samples": 20, "method": "sample",
                                           "regime": "fresh", "seed": 6}),
    "gaussian-subsample-bias": ("gaussian", {"num_chains": 40, "num_generations": 10,
                                             "num_samples": 12, "sampling_bias": 0.9,
                                             "regime": "accumulate-subsample", "seed": 7}),
    "mixture": ("mixture", {"num_chains": 12, "num_generations": 5, "num_samples": 40,
                            "heldout": 30, "seed": 2}),
    "tokens": ("tokens", {"num_chains": 60, "num_generations": 20, "num_samples": 50,
                          "categories": 20, "regime": "accumulate", "seed": 3}),
    "mvgaussian": ("mvgaussian", {"num_chains": 20, "num_generations": 10, "num_samples": 12,
                                  "dim": 3, "seed": 4}),
    "regression": ("regression", {"num_chains": 20, "num_generations": 8, "num_samples": 20,
                                  "dim": 3, "seed": 4}),
    "kde": ("kde", {"num_chains": 10, "num_generations": 8, "num_samples": 20, "heldout": 16,
                    "original": "moons", "seed": 4}),
}  # fmt: skip


# Kept out of the default session (-m slow): the families whose workers' first run loads
# many kernels, and the longer runs; each property keeps a fast case in the default.
SLOW_CASES = ("mvgaussian", "regression", "kde")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CASES else n for n in CASES]
)
def test_cluster_equals_one_process(cluster: Cluster, name: str) -> None:
    family, kwargs = CASES[name]
    cfg = FAMILIES[family].config(**kwargs)
    alone = run(cfg)
    # The cluster's default tasks (about four per worker), and tasks of 7 chains.
    _assert_same(alone, run(cfg, cluster=cluster))
    _assert_same(alone, run(cfg, cluster=cluster, batch_chains=7))


STREAMED = {
    # 2^19 chains x 40 columns: past the 2^24 values a stream holds, so the statistics
    # stream (pilot 2^16) and the workers collect every batch after the pilot's.
    "gaussian-bias": ("gaussian", {"num_chains": 2**19, "num_generations": 4, "record_every": 1,
                                   "num_samples": 20, "sampling_bias": 0.9, "seed": 8}),
    "tokens": ("tokens", {"num_chains": 2**20 + 77, "num_generations": 3, "record_every": 1,
                          "num_samples": 20, "categories": 8, "seed": 9}),
}  # fmt: skip


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "tokens" else n for n in STREAMED]
)
def test_streamed_runs_merge_the_workers_fragments_bit_for_bit(
    cluster: Cluster, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collapsesim.experiments import _driver

    merged: list[int] = []
    merge = _driver._merge

    def counted(plan: Any, frag: dict[str, Any]) -> None:
        merged.append(int(frag["stream"]["lo"]))
        merge(plan, frag)

    monkeypatch.setattr(_driver, "_merge", counted)
    family, kwargs = STREAMED[name]
    cfg = FAMILIES[family].config(**kwargs)
    alone = run(cfg)
    _assert_same(alone, run(cfg, cluster=cluster))
    # The pilot's batch came back whole; every later one was collected by a worker.
    assert merged == list(range(2**16, cfg.num_chains, 2**16))
    merged.clear()
    _assert_same(alone, run(cfg, cluster=cluster, batch_chains=3 * 4096))
    assert merged == list(range(6 * 3 * 4096, cfg.num_chains, 3 * 4096))


def test_a_streamed_run_stopped_mid_way_resumes_on_the_cluster(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collapsesim.experiments import _driver

    merged: list[int] = []
    merge = _driver._merge

    def counted(plan: Any, frag: dict[str, Any]) -> None:
        merged.append(1)
        merge(plan, frag)

    monkeypatch.setattr(_driver, "_merge", counted)
    family, kwargs = STREAMED["gaussian-bias"]
    cfg = FAMILIES[family].config(**kwargs)
    out = tmp_path / "run"
    steps = FAMILIES[family].iterate(cfg, cluster=cluster, out=out)
    for _ in steps:
        if len(merged) >= 2:  # the pilot's batch and two or more fragments merged, of 8
            break
    steps.close()
    with np.load(out / "checkpoint.npz") as ck:
        assert 2 < int(ck["batch"]) < 8  # batches merged; the rest left to do
    resumed = run(cfg, cluster=cluster, out=out, resume=True)
    _assert_same(run(cfg), resumed)


def test_a_run_stopped_inside_chain_0s_batch_resumes_on_the_cluster(
    cluster: Cluster, tmp_path: Path
) -> None:
    # One process, stopped half-way through its only batch: the checkpoint holds chain
    # 0's token snapshots of the generations run; the worker that finishes the batch
    # starts from them (the generations before it are not run again).
    cfg = FAMILIES["tokens"].config(num_chains=60, num_generations=20, num_samples=50,
                                    categories=20, record_every=1, seed=3)  # fmt: skip
    out = tmp_path / "run"
    steps = FAMILIES["tokens"].iterate(cfg, out=out, checkpoint_seconds=0.0, block_generations=4)
    for p in steps:
        if p.done >= 60 * 10:
            break
    steps.close()
    with np.load(out / "checkpoint.npz") as ck:
        assert int(ck["batch"]) == 0
        assert 0 < int(ck["generation"]) < 20
    resumed = run(cfg, cluster=cluster, out=out, resume=True)
    _assert_same(run(cfg), resumed)


def test_scan_on_a_cluster_equals_one_process(cluster: Cluster, tmp_path: Path) -> None:
    base = {"num_chains": 64, "num_generations": 20, "seed": 1}
    grid = scanner.parse_grid("gaussian", {"samples": "10,20"})

    def scan(**kw: Any) -> Any:
        steps = scanner.iterate("gaussian", base, grid, **kw)
        while True:
            try:
                next(steps)
            except StopIteration as stop:
                return stop.value

    def measures(res: Any) -> list[dict[str, Any]]:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in res.rows]

    assert measures(scan()) == measures(scan(cluster=cluster))


def test_a_killed_worker_changes_nothing(cluster: Cluster) -> None:
    cfg = FAMILIES["gaussian"].config(num_chains=64, num_generations=400, num_samples=2000,
                                      method="sample", seed=9)  # fmt: skip
    alone = run(cfg)
    steps = FAMILIES["gaussian"].iterate(cfg, cluster=cluster, batch_chains=2)
    pids = cluster.client.run(os.getpid)
    killed = False
    while True:
        try:
            p = next(steps)
        except StopIteration as stop:
            result = stop.value
            break
        if not killed and p.done > 0:
            os.kill(next(iter(pids.values())), signal.SIGKILL)  # mid-run: tasks are out
            killed = True
    assert killed
    _assert_same(alone, result)
    cluster.client.wait_for_workers(2, timeout=60)  # the nanny restarts it
    assert set(cluster.client.run(os.getpid).values()) != set(pids.values())


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from collapsesim.cli import main; main()", *args]


@pytest.mark.slow
def test_a_killed_client_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["gaussian", "--chains", "64", "--generations", "3000", "--samples", "4000",
            "--method", "sample", "--seed", "3", "--out", str(out)]  # fmt: skip
    first = subprocess.Popen(
        _cli(*args, "--cluster", "local:2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its workers go with it
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not (out / "checkpoint.npz").exists():
            assert first.poll() is None, "the run ended before it was killed"
            time.sleep(0.05)
        assert (out / "checkpoint.npz").exists()
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    with np.load(out / "checkpoint.npz") as ck:
        merged = int(ck["batch"])  # batches collected before the kill; 8 in all
    assert 0 < merged < 8
    res = subprocess.run(_cli(*args, "--cluster", "local:2", "--resume", "--json"),
                         capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["chains"] == 64  # --json: one object on stdout
    cfg = FAMILIES["gaussian"].config(num_chains=64, num_generations=3000, num_samples=4000,
                                      method="sample", seed=3)  # fmt: skip
    _assert_same(run(cfg), load(out))


def test_bad_addresses_are_one_line_and_exit_2_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    from collapsesim import cluster as module

    monkeypatch.setattr(module, "CONNECT_SECONDS", 2.0)
    runner = CliRunner()
    for address, words in [
        ("nowhere", "neither local"),
        ("local:0", "worker count"),
        ("local:x", "worker count"),
        ("udp://1.2.3.4:5", "unknown protocol"),
        ("missing.json", "no scheduler file"),
    ]:
        res = runner.invoke(app, ["gaussian", "--chains", "4", "--cluster", address])
        assert res.exit_code == 2, res.output
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1, res.output
        assert words in lines[0], res.output
    t0 = time.perf_counter()
    res = runner.invoke(app, ["gaussian", "--chains", "4", "--cluster", "tcp://127.0.0.1:9"])
    assert res.exit_code == 2, res.output
    assert "cannot reach the scheduler" in res.output
    assert time.perf_counter() - t0 < 10
    res = runner.invoke(app, ["gaussian", "--backend", "jax", "--cluster", "local"])
    assert res.exit_code == 2, res.output
    assert "Numba kernels" in res.output


def test_parse() -> None:
    assert parse("local:3") == ("local", 3)
    assert parse("tcp://10.0.0.1:8786") == ("scheduler", "tcp://10.0.0.1:8786")
    with pytest.raises(ClusterError):
        parse("local:-1")


def test_without_a_cluster_dask_is_not_imported() -> None:
    code = ("import sys; from collapsesim import GaussianConfig, run; "
            "run(GaussianConfig(num_chains=8, num_generations=3)); "
            "print('distributed' in sys.modules or 'dask' in sys.modules)")  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    assert res.stdout.strip() == "False"


@pytest.mark.slow
def test_bench_cluster_rows_do_equal_work() -> None:
    from collapsesim.bench import Sizes
    from collapsesim.bench._cluster import cluster_rows

    rows = cluster_rows(Sizes(repeats=1, quick=True))
    assert len(rows) == 2
    head = rows[0]
    assert head.baseline is not None
    assert head.ours.done == head.baseline.done
    assert head.ours.done == head.work["chains"] * head.work["generations"]
    assert isinstance(head.met, bool)
