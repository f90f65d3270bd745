"""The one driver every family's run goes through: run directory, batches and blocks,
checkpoints, resume, progress, multi-host agreement, the stored result.

A family hands the driver a :class:`Plan`. A chain family's plan advances a batch of
chains ``[lo, hi)`` from model ``g`` to ``g_end`` with its kernel; a neural family's plan
is one chain whose blocks are single generations (see ``_neural.as_plan``), and whose
``advance`` is a generator that reports progress within the generation (its epochs).
Everything else (opening and vetting ``--out``, resuming from ``checkpoint.npz``, which
process writes, when checkpoints are written, timings, storing the result) is here once.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .. import distributed, store
from ..config import ConfigError
from . import _common as common
from ._common import Progress

R = TypeVar("R")

# The checkpoints' layout: 2 since 0.6, whose chain families stream their statistics
# (a batch's records in its state, the run's aggregates.Stream among the arrays); 3 since
# 0.9, whose streamed sums and curation totals are summed by segments of chains.
CHECKPOINT_FORMAT = 3

__all__ = ["Finished", "Plan", "connected", "drive", "locked", "run_plan"]


@dataclass
class Plan:
    """What a family gives the driver.

    ``arrays`` are the run-wide results the kernels fill in place (records and the
    like); every checkpoint holds them. A batch's state is a dict of arrays: ``start``
    makes it at model 0 for chains ``[lo, hi)``, ``advance`` moves it from model ``g``
    to ``g_end`` (returning None, or a generator whose reports the driver passes on),
    ``snapshot`` returns what a checkpoint must hold of it at model ``g`` and
    ``restore`` rebuilds the state from that. ``collect(state, lo, hi)`` takes a batch's
    results once it has reached the last generation (a chain family feeds its
    :class:`..aggregates.Stream`, whose arrays are among ``arrays``); ``finish`` builds
    the run's result once every batch is collected, and ``save`` stores it in the run
    directory.

    ``scratch``: the state's arrays that only the kernels read (training sets, pools),
    which a cluster's worker keeps instead of sending back with the finished batch;
    ``chain0_arrays``: the run-wide arrays that the batch of chain 0 fills as it advances
    (chain 0's snapshots), which the worker sends back with that batch. ``stream`` (the
    run's :class:`..aggregates.Stream`), ``tracker`` (its curation ``Tracker``) and
    ``merges`` (how the other run-wide arrays that ``collect`` writes merge: ``"add"``
    for counts, ``"rows"`` for arrays of the first chains) let a cluster's workers
    collect their batches themselves, as fragments the client merges in chain order.

    ``num_chains`` (None: the configuration's) is 1 for neural families. ``setup(out)``
    runs once the run directory is ready; ``check(run_json)`` vets a run being resumed;
    ``report(done, total, batch, generation)`` makes the progress report yielded after
    each block.
    """

    family: str
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]
    default_batch: int
    start: Callable[[int, int], dict[str, Any]]
    advance: Callable[[dict[str, Any], int, int, int, int], Generator[Any, None, None] | None]
    block: Callable[[int, int], int]
    finish: Callable[[], Any]
    snapshot: Callable[[dict[str, Any], int], dict[str, Any]] = field(
        default=lambda state, g: state
    )
    restore: Callable[[dict[str, Any], int, int], dict[str, Any]] = field(
        default=lambda saved, lo, hi: saved
    )
    collect: Callable[[dict[str, Any], int, int], None] = lambda state, lo, hi: None
    save: Callable[[Path, Any, dict[str, Any]], None] = common.save_result
    num_chains: int | None = None
    scratch: tuple[str, ...] = ("pool", "pool_size", "pool_mean", "pool_scatter", "kept", "train")
    chain0_arrays: tuple[str, ...] = ()
    stream: Any = None
    tracker: Any = None
    merges: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path | None], None] = lambda out: None
    check: Callable[[dict[str, Any]], None] = lambda run_json: None
    report: Callable[[int, int, int, int], Any] = Progress


@dataclass
class Finished:
    """What :func:`drive` returns after the last batch."""

    kernel_seconds: float
    meta: dict[str, Any]
    wall0: float
    plan: Plan

    def timings(self) -> dict[str, float]:
        """Kernel and wall seconds of this process's part of the run."""
        return {"kernel_seconds": self.kernel_seconds, "seconds": time.perf_counter() - self.wall0}


def _open_run(out: Path, config: dict[str, Any], resume: bool) -> bool:
    """Prepare ``out`` for the run (process 0 writes; the others read); whether it resumes."""
    if distributed.is_writer():
        resuming = store.prepare_run_dir(out, config, resume=resume)
    else:
        resuming = resume and (out / store.RUN_FILE).is_file()
    distributed.agree({"resuming": int(resuming)}, "run directory")
    return resuming


@dataclass
class _Start:
    """Where a run starts: its batch size, first batch and generation, and the saved state."""

    batch: int
    first_batch: int = 0
    first_gen: int = 0
    kernel_seconds: float = 0.0
    saved: dict[str, np.ndarray] | None = None


def _restart(out: Path, plan: Plan, batch: int, resuming: bool) -> _Start:
    """The resumed run's start from its checkpoint (restoring the run-wide arrays), or 0."""
    start = _Start(batch)
    saved = common.load_checkpoint(out) if resuming else None
    if saved is not None:
        if int(saved.get("format", 1)) != CHECKPOINT_FORMAT:
            raise store.RunDirError(
                f"{out} holds a run begun by an earlier collapsesim, whose checkpoints this "
                "version cannot continue (README: Changes of draws); run it again into another --out"
            )
        for name, arr in plan.arrays.items():
            got = saved.get(f"run_{name}")
            if got is None or got.shape != arr.shape:
                path = out / store.CHECKPOINT_FILE
                raise store.RunDirError(f"{path} is damaged (its {name} is missing or of another "
                                        f"shape); {common.RESTART}")  # fmt: skip
            arr[...] = got
        start = _Start(
            int(saved["batch_chains"]),  # the interrupted run's batches
            int(saved["batch"]),
            int(saved["generation"]),
            float(saved["kernel_seconds"]),
            saved,
        )
    point = {"batch": start.first_batch, "generation": start.first_gen, "batch_chains": start.batch}
    distributed.agree(point, "checkpoint")
    return start


class _Run:
    """A run under way: its plan, where it stores, and the kernel time spent so far."""

    def __init__(self, plan: Plan, out: Path | None, start: _Start, seconds: float) -> None:
        self.plan = plan
        self.out = out if distributed.is_writer() else None  # process 0 writes
        self.start = start
        self.batch = start.batch
        self.kernel_seconds = start.kernel_seconds
        self.every = seconds
        self.last_ck = time.perf_counter()

    def checkpoint(self, b: int, g: int, state: dict[str, Any], *, due: bool = True) -> None:
        """Write checkpoint.npz (batch ``b`` at model ``g``) if ``due`` or the time has come."""
        if self.out is None or not (due or time.perf_counter() - self.last_ck > self.every):
            return
        arrays: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "batch": b,
            "generation": g,
            "batch_chains": self.batch,
            "kernel_seconds": self.kernel_seconds,
            **{f"run_{k}": v for k, v in self.plan.arrays.items()},
            **{f"state_{k}": v for k, v in state.items() if v is not None},
        }
        common.save_checkpoint(self.out, arrays)
        self.last_ck = time.perf_counter()

    def first_state(self, b: int, lo: int, hi: int) -> tuple[int, dict[str, Any]]:
        """Batch ``b``'s first model and state: from the checkpoint when resuming mid-batch."""
        saved, self.start.saved = self.start.saved, None
        if saved is not None and self.start.first_gen > 0:
            state = {k[6:]: v for k, v in saved.items() if k.startswith("state_")}
            return self.start.first_gen, self.plan.restore(state, lo, hi)
        return 0, self.plan.start(lo, hi)

    def batches(self, c: int, t: int, block: int | None) -> Generator[Any, None, None]:
        """Advance chains ``[0, c)`` through ``t`` generations, batch by batch; yield reports."""
        plan, batch = self.plan, self.batch
        num_batches = math.ceil(c / batch)
        for b in range(self.start.first_batch, num_batches):
            lo, hi = b * batch, min(c, (b + 1) * batch)
            g, state = self.first_state(b, lo, hi)
            yield plan.report(lo * t + (hi - lo) * g, c * t, b, g)
            while g < t:
                g_end = min(t, g + (block or plan.block(hi - lo, g)))
                k0 = time.perf_counter()
                inner = plan.advance(state, lo, hi, g, g_end)
                if inner is not None:
                    yield from inner
                self.kernel_seconds += time.perf_counter() - k0
                g = g_end
                if g < t:
                    self.checkpoint(b, g, plan.snapshot(state, g), due=False)
                yield plan.report(lo * t + (hi - lo) * g, c * t, b, g)
            plan.collect(state, lo, hi)
            if b + 1 < num_batches:
                self.checkpoint(b + 1, 0, {})

    def remote_batches(
        self, cluster: Any, make_plan: Callable[[], Plan], c: int, t: int, block: int | None
    ) -> Generator[Any, None, None]:
        """:meth:`batches` on a Dask cluster: every batch one task (the workers build the
        plan from ``make_plan``), merged here in chain order as they finish.

        The batches up to the end of a streamed run's pilot (all batches of a run whose
        statistics hold every value) come back whole and are collected here; each later
        one is collected where it ran, into a fragment, once the pilot has fixed the
        windows (see ``_remote``). At most a few batches per worker are out at once. A
        checkpoint follows every batch merged; a task whose worker died is rerun by Dask,
        with the same draws.
        """
        from distributed import as_completed

        from . import _remote

        plan, batch = self.plan, self.batch
        num_batches = math.ceil(c / batch)
        b0 = self.start.first_batch
        g_first, saved = 0, None
        if self.start.saved is not None and self.start.first_gen > 0:
            g_first = self.start.first_gen
            saved = {k[6:]: v for k, v in self.start.saved.items() if k.startswith("state_")}
        self.start.saved = None
        token = uuid.uuid4().hex
        client = cluster.client
        bounds = {b: (b * batch, min(c, (b + 1) * batch)) for b in range(b0, num_batches)}
        b_frag = _first_fragment(plan, batch, num_batches)
        # The windows and shifts go with each fragment task by value (a few numbers per
        # column): scattered data has no lineage, and would be lost with its workers.
        shared = plan.stream.shared() if b0 >= b_frag else None
        # Resumed inside chain 0's batch: the worker starts from the run-wide rows the
        # checkpoint holds (token snapshots of the generations already run).
        initial = (
            {name: plan.arrays[name] for name in plan.chain0_arrays}
            if b0 == 0 and g_first > 0
            else None
        )
        waiting: dict[int, Any] = {}  # finished batches that wait for the windows
        advanced: dict[int, Any] = {}  # their futures, held until their fragment is merged

        def submit(b: int) -> Any:
            lo, hi = bounds[b]
            g, st, init = (g_first, saved, initial) if b == b0 else (0, None, None)
            return client.submit(_remote.run_batch, token, make_plan, lo, hi, g, t, block,
                                 cluster.threads, st, init, key=f"collapsesim-batch-{b}-{token}",
                                 pure=False)  # fmt: skip

        def fragment(b: int, finished: Any) -> Any:
            advanced[b] = finished
            return client.submit(_remote.collect_fragment, token, make_plan, finished,
                                 *bounds[b], shared, key=f"collapsesim-fragment-{b}-{token}",
                                 pure=False)  # fmt: skip

        window = 3 * cluster.slots
        pending = as_completed()
        nxt = b0
        while nxt < num_batches and nxt - b0 < window:
            pending.add(submit(nxt))
            nxt += 1
        lo0, hi0 = bounds.get(b0, (c, c))
        done = lo0 * t + (hi0 - lo0) * g_first
        yield plan.report(done, c * t, b0, g_first)
        ready: dict[int, tuple[str, Any, float]] = {}
        collect = b0
        for future in pending:
            _, kind, index, _ = future.key.split("-")
            b = int(index)
            lo, hi = bounds[b]
            if kind == "batch":
                done += (hi - lo) * (t - (g_first if b == b0 else 0))
                if b >= b_frag:  # collected where it ran, once the windows are known
                    if future.status in ("error", "cancelled"):
                        _task_result(future)
                    if shared is None:
                        waiting[b] = future
                    else:
                        pending.add(fragment(b, future))
                    yield plan.report(done, c * t, b, t)
                    continue
            item, filled, seconds = _task_result(future)
            future.release()
            if kind == "fragment":
                advanced.pop(b).release()
            ready[b] = (kind, item, seconds)
            for name, arr in filled.items():
                plan.arrays[name][...] = arr
            while collect in ready:
                what, item, seconds = ready.pop(collect)
                if what == "batch":
                    plan.collect(item, *bounds[collect])
                else:
                    _merge(plan, item)
                self.kernel_seconds += seconds  # as merged: a checkpoint counts what it holds
                collect += 1
                if collect == b_frag and shared is None and collect < num_batches:
                    shared = plan.stream.shared()
                    for bw in sorted(waiting):
                        pending.add(fragment(bw, waiting.pop(bw)))
                if collect < num_batches:
                    self.checkpoint(collect, 0, {})
                if nxt < num_batches:
                    pending.add(submit(nxt))
                    nxt += 1
            yield plan.report(done, c * t, b, t)


def cluster_batch(default: int, c: int, slots: int) -> int:
    """The chains of a cluster's task: about four tasks a worker (at most ``default``, the
    plan's batch), in whole segments of chains, so that the workers can collect them."""
    from ..aggregates import SEGMENT

    size = min(default, max(1, math.ceil(c / (4 * slots))))
    return size - size % SEGMENT if size >= SEGMENT else size


def _first_fragment(plan: Plan, batch: int, num_batches: int) -> int:
    """The first batch the workers collect themselves (``num_batches``: none of them).

    Those of a plan whose run-wide arrays all merge (its stream's, its tracker's and its
    ``merges``), in a streamed run, whose batches begin on segments, once past the pilot.
    """
    from ..aggregates import SEGMENT

    stream, tracker = plan.stream, plan.tracker
    if stream is None or stream.exact or batch % SEGMENT:
        return num_batches
    known = set(stream.checkpointed()) | set(plan.merges) | set(plan.chain0_arrays)
    if tracker is not None:
        known |= set(tracker.arrays)
    if set(plan.arrays) - known:
        return num_batches
    return min(num_batches, math.ceil(stream.pilot / batch))


def _merge(plan: Plan, frag: dict[str, Any]) -> None:
    """Merge a worker's fragment of the next batch into the run's arrays."""
    lo = int(frag["stream"]["lo"])
    plan.stream.merge(frag["stream"])
    if plan.tracker is not None:
        plan.tracker.merge(frag["tracker"])
    for name, arr in frag["arrays"].items():
        if plan.merges[name] == "add":
            plan.arrays[name] += arr
        else:
            plan.arrays[name][lo : lo + len(arr)] = arr


def _task_result(future: Any) -> Any:
    """A finished task's result; ClusterError for one the cluster gave up on."""
    from concurrent.futures import CancelledError

    from distributed import KilledWorker

    from ..cluster import ClusterError

    try:
        return future.result()
    except KilledWorker as err:
        raise ClusterError(f"the cluster gave up on a batch whose workers kept dying ({err}); "
                           "continue with --resume") from None  # fmt: skip
    except CancelledError:
        raise ClusterError("the cluster cancelled a batch (its scheduler restarted, or "
                           "another client cancelled it); continue with --resume") from None  # fmt: skip


def drive(
    cfg: Any,
    make_plan: Callable[[], Plan],
    load: Callable[[Path], R],
    *,
    out: Path | None,
    resume: bool,
    threads: int | None,
    batch_chains: int | None,
    block_generations: int | None,
    checkpoint_seconds: float,
    cluster: Any = None,
) -> Generator[Any, None, Finished | R]:
    """Run a family's plan in batches and blocks, checkpointing; yield progress.

    Chains ``[0, C)`` go through all generations batch by batch, each batch in blocks of
    generations; after each block the plan's report is yielded, and with ``out`` a
    checkpoint is written at most every ``checkpoint_seconds`` (and after each batch).
    Resuming restores the run-wide arrays and the interrupted batch's state. Returns
    :class:`Finished`, or the loaded result when ``out`` holds a complete run. In a
    multi-host run process 0 writes; the others read the run directory to resume. With
    ``cluster`` (a :class:`..cluster.Cluster`) the batches run there, a task each, by
    default about four per worker.

    Raises:
        ConfigError: bad ``threads``, ``batch_chains`` or ``block_generations``.
        store.RunDirError: ``out`` cannot take this run.
    """
    common.set_threads(threads)
    common.check_sizes(batch_chains, block_generations)
    wall0 = time.perf_counter()
    config_dict = cfg.to_dict()
    resuming = False
    if out is not None:
        out = Path(out)
        resuming = _open_run(out, config_dict, resume)
        if resuming and common.is_complete(out):
            try:
                return load(out)
            except store.RunDirError as err:
                raise store.RunDirError(f"{err}: this complete run's results cannot be read; "
                                        "run it again into another --out") from None  # fmt: skip
    check_memory(cfg)
    plan = make_plan()
    c = cfg.num_chains if plan.num_chains is None else plan.num_chains
    default = plan.default_batch
    if cluster is not None:
        default = cluster_batch(default, c, cluster.slots)
    start = _Start(min(batch_chains or default, c))
    meta: dict[str, Any] = {}
    if out is not None:
        if resuming:
            plan.check(store.read_json(out / store.RUN_FILE))
        start = _restart(out, plan, start.batch, resuming)
        if distributed.is_writer():
            info = {"config": config_dict, "family": plan.family, **plan.meta}
            if cluster is not None:
                info["cluster"] = cluster.describe()
            meta = common.start_meta(out, {**info, "batch_chains": start.batch}, resuming)
    plan.setup(out)
    run = _Run(plan, out, start, checkpoint_seconds)
    if cluster is None:
        yield from run.batches(c, cfg.num_generations, block_generations)
    else:
        yield from run.remote_batches(cluster, make_plan, c, cfg.num_generations,
                                      block_generations)  # fmt: skip
    return Finished(run.kernel_seconds, meta, wall0, plan)


def check_memory(cfg: Any) -> None:
    """ConfigError, with the estimate, for a run whose memory would exceed this machine's."""
    from ..config import check_memory as check

    estimate = getattr(cfg, "memory_bytes", None)
    if estimate is not None:
        check(estimate(), "make the run smaller (chains, samples, generations or the model)")


def complete(
    result: R, done: Finished, out: Path | None, save: Callable[[Path, R, dict[str, Any]], None]
) -> R:
    """Stamp a result with its timings and, with ``out``, store it; return it.

    ``result`` has ``timings`` and ``summary`` attributes.
    """
    timings = done.timings()
    result.timings = timings  # type: ignore[attr-defined]
    result.summary["seconds"] = timings["seconds"]  # type: ignore[attr-defined]
    result.summary["kernel_seconds"] = done.kernel_seconds  # type: ignore[attr-defined]
    if out is not None and distributed.is_writer():
        save(Path(out), result, done.meta)
    return result


def run_plan(
    cfg: Any,
    make_plan: Callable[[], Plan],
    load: Callable[[Path], R],
    *,
    out: Path | None = None,
    resume: bool = False,
    threads: int | None = None,
    batch_chains: int | None = None,
    block_generations: int | None = None,
    checkpoint_seconds: float = 30.0,
    cluster: Any = None,
) -> Generator[Any, None, R]:
    """Run a family's experiment, yielding progress; return its result.

    Every family's ``iterate`` is this generator over its plan: :func:`drive` runs the
    plan, then the plan's ``finish`` builds the result, which is stamped with its
    timings and, with ``out``, stored by the plan's ``save`` (tables, summary.json,
    run.json).

    Args:
        cfg: the experiment's configuration.
        make_plan: builds the family's :class:`Plan` (only when there is work to do).
        load: reads a complete run back (a complete run found in ``out`` is returned).
        out: a run directory to store results, checkpoints and provenance in.
        resume: continue the run stored in ``out``.
        threads: Numba threads; None keeps Numba's setting.
        batch_chains: chains advanced together (default: the plan's).
        block_generations: generations per kernel call (default: the plan's blocks).
        checkpoint_seconds: write a checkpoint at most this often (and after each batch).
        cluster: run the batches on a Dask cluster: an address (``local``, ``local:N``,
            ``tcp://HOST:PORT``, a scheduler file; see :mod:`..cluster`), started or
            joined for the run, or a connected :class:`..cluster.Cluster`. The Numba
            kernels only; ``threads`` is then each task's.

    Yields:
        The plan's progress report after each block of generations (and whatever its
        ``advance`` reports within a block).

    Raises:
        ConfigError: bad ``threads``, ``batch_chains`` or ``block_generations``.
        store.RunDirError: ``out`` cannot take this run.
    """
    if cluster is not None and getattr(cfg, "backend", "numba") != "numba":
        raise ConfigError("--cluster runs the Numba kernels; a JAX run spans hosts with "
                          "--distributed or --coordinator")  # fmt: skip
    with locked(out), connected(cluster, threads) as handle:
        done = yield from drive(
            cfg,
            make_plan,
            load,
            out=out,
            resume=resume,
            threads=threads,
            batch_chains=batch_chains,
            block_generations=block_generations,
            checkpoint_seconds=checkpoint_seconds,
            cluster=handle,
        )
        if not isinstance(done, Finished):
            return done
        return complete(done.plan.finish(), done, out, done.plan.save)


def connected(cluster: Any, threads: int | None) -> contextlib.AbstractContextManager[Any]:
    """The cluster to run on: None, one already connected, or an address to connect to."""
    if cluster is None or not isinstance(cluster, str):
        return contextlib.nullcontext(cluster)
    from ..cluster import connect

    return connect(cluster, threads)


def locked(out: Path | None) -> contextlib.AbstractContextManager[None]:
    """The run directory's exclusive lock, held by the process that writes it (process 0)."""
    if out is None or not distributed.is_writer():
        return contextlib.nullcontext()
    return store.lock_run_dir(Path(out))
