"""The Gaussian chains on a LocalCluster of this machine against one process: the same run,
the same process (our client), results compared bit for bit before they are timed."""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np

from ._core import Row, Side, median_time

__all__ = ["cluster_rows"]

TARGET = 1.15
"""The issue's bound: the cluster run takes at most this times the one-process time."""


def _same(a: Any, b: Any) -> bool:
    return all(
        np.array_equal(a.aggregates[m][s], b.aggregates[m][s], equal_nan=True)
        for m in a.aggregates
        for s in a.aggregates[m]
    ) and all(np.array_equal(a.final[k], b.final[k], equal_nan=True) for k in a.final)


def cluster_rows(sizes: Any) -> list[Row]:
    """``gaussian --chains 10^6`` (the defaults otherwise) on ``local:W`` workers of one
    thread each, W the cores, against one process of W threads; and the cost of a task."""
    from ..cluster import connect
    from ..experiments._driver import cluster_batch
    from ..experiments.gaussian import _batch_size
    from ..families.gaussian import GaussianConfig
    from ..results import run

    workers = max(1, os.cpu_count() or 1)
    chains = sizes.pick(10**6, 10**5)
    cfg = GaussianConfig(num_chains=chains, seed=1)
    r = max(1, sizes.repeats // 2)
    rows = []
    t0 = time.perf_counter()
    with connect(f"local:{workers}", threads=1) as cl:
        started = time.perf_counter() - t0
        warm = GaussianConfig(num_chains=64, num_generations=2, seed=1)
        run(warm)
        run(warm, cluster=cl)  # the workers compile (or load) their kernels
        med1, t1, one = median_time(lambda: run(cfg), r)
        size = cluster_batch(_batch_size(cfg), chains, cl.slots)  # the run's tasks
        tasks = math.ceil(chains / size)
        med2, t2, many = median_time(lambda: run(cfg, cluster=cl), r)
        if not _same(one, many):
            raise RuntimeError("the cluster's run differs from the one-process run")
        work = {"chains": chains, "generations": cfg.num_generations, "workers": workers}
        base = Side(f"one process, {workers} threads", med1, chains * cfg.num_generations,
                    times=t1)  # fmt: skip
        ours = Side(f"local:{workers}, 1 thread each", med2, chains * cfg.num_generations,
                    times=t2)  # fmt: skip
        rows.append(Row("cluster", f"gaussian --chains {chains:,} (defaults), --cluster "
                        f"local:{workers} against one process", work, ours, base,
                        med1 / med2, f"<= {TARGET}x the one-process time",
                        med2 <= TARGET * med1,
                        {"baseline": f"{med1:.2f} s ({base.label})",
                         "ours": f"{med2:.2f} s ({ours.label}; {tasks} tasks of "
                                 f"{size:,} chains; cluster start {started:.1f} s)"}))  # fmt: skip
        # A task's cost: tiny batches of one generation, less the same run in one process.
        n = sizes.pick(400, 100)
        tiny = GaussianConfig(num_chains=n, num_generations=1, seed=1)
        med_t, tt, _ = median_time(lambda: (run(tiny, cluster=cl, batch_chains=1), n)[1], r)
        med_l, _, _ = median_time(lambda: (run(tiny, batch_chains=1), n)[1], r)
        per = (med_t - med_l) / n
        task = Side("1-chain tasks", med_t, n, unit="task", times=tt)
        rows.append(Row("cluster", f"per-task overhead ({n} tasks of 1 chain x 1 generation)",
                        {"tasks": n, "workers": workers}, task,
                        text={"ours": f"{per * 1e3:.1f} ms per task (submit, run, return, "
                              "collect)"}))  # fmt: skip
    return rows
