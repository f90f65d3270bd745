"""Pieces every family's runner shares: progress, record slots, threads, run metadata."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np

from .. import distributed, store
from ..config import ConfigError
from ..results import Result

R = TypeVar("R")


class Progress(NamedTuple):
    """Where a running experiment stands."""

    done: int  # chain-generations completed
    total: int  # chain-generations in the run
    batch: int  # index of the chain batch in progress
    generation: int  # model reached by the batch in progress


def slots(record_gens: np.ndarray, t_start: int, t_end: int) -> np.ndarray:
    """Map models t_start+1..t_end to record columns (-1: not recorded)."""
    out = np.full(t_end - t_start, -1, np.int64)
    models = np.arange(t_start + 1, t_end + 1)
    idx = np.minimum(np.searchsorted(record_gens, models), len(record_gens) - 1)
    hit = record_gens[idx] == models
    out[hit] = idx[hit]
    return out


def set_threads(threads: int | None) -> None:
    """Set Numba's thread count (None: leave it); ConfigError outside [1, cores]."""
    import numba

    if threads is None:
        return
    limit = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    if not 1 <= threads <= limit:
        raise ConfigError(f"threads must lie in [1, {limit}], got {threads}")
    numba.set_num_threads(threads)


def numba_threads() -> int:
    """Numba's current thread count."""
    import numba

    return int(numba.get_num_threads())


def check_sizes(batch_chains: int | None, block_generations: int | None) -> None:
    """ConfigError for a batch or block size below 1."""
    if batch_chains is not None and batch_chains < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_chains}")
    if block_generations is not None and block_generations < 1:
        raise ConfigError(f"block size must be at least 1, got {block_generations}")


def now() -> str:
    """The local time as ISO 8601 with the UTC offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def start_meta(out: Path, meta: dict[str, Any], resuming: bool) -> dict[str, Any]:
    """Write run.json with status ``running``, keeping a resumed run's start and resumes."""
    meta = {
        **meta,
        "status": "running",
        "provenance": store.provenance(),
        "threads": numba_threads(),
        "started": now(),
    }
    if resuming:
        previous = store.read_json(out / store.RUN_FILE)
        meta["started"] = previous.get("started", meta["started"])
        meta["resumed"] = [*previous.get("resumed", []), now()]
    store.write_json(out / store.RUN_FILE, meta)
    return meta


def finish_meta(out: Path, meta: dict[str, Any], timings: dict[str, float]) -> None:
    """Mark the run complete in run.json and drop its checkpoint."""
    store.write_json(
        out / store.RUN_FILE, {**meta, "status": "complete", "timings": timings, "finished": now()}
    )
    (out / store.CHECKPOINT_FILE).unlink(missing_ok=True)


def save_checkpoint(out: Path, arrays: dict[str, Any]) -> None:
    """Write checkpoint.npz atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    store.atomic_write(out / store.CHECKPOINT_FILE, write)


def load_checkpoint(out: Path) -> dict[str, np.ndarray] | None:
    """Return the arrays of checkpoint.npz, or None if there is none."""
    path = out / store.CHECKPOINT_FILE
    if not path.is_file():
        return None
    with np.load(path) as ck:
        return {k: ck[k] for k in ck.files}


def is_complete(out: Path) -> bool:
    """Whether run.json in ``out`` says the run is complete."""
    return bool(store.read_json(out / store.RUN_FILE).get("status") == "complete")


def read_meta(out: Path) -> dict[str, Any]:
    """run.json of a complete run; RunDirError otherwise."""
    try:
        meta = store.read_json(out / store.RUN_FILE)
    except (OSError, ValueError):
        raise store.RunDirError(f"{out} holds no readable run.json") from None
    if meta.get("status") != "complete":
        raise store.RunDirError(f"the run in {out} is not complete; resume it with --resume")
    return meta


def z(value: float, expected: float | None, stderr: float | None) -> float | None:
    """(value - expected) / stderr, or None where either is missing or degenerate."""
    if expected is None or stderr is None or not stderr > 0 or not math.isfinite(value):
        return None
    return (value - expected) / stderr


def finite_or_none(v: Any) -> Any:
    """None for a non-finite float, else the value (JSON has no NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def drain(gen: Generator[Any, None, R]) -> R:
    """Run a runner's generator to the end and return its result."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def save_tables(out: Path, result: Result) -> None:
    """Write each of ``result``'s stored tables to ``<name>.parquet`` in ``out``.

    The columns come from :meth:`Result.columns`, which ``to_pandas()`` uses too.
    """
    for name in result.stored_tables:
        store.write_parquet(out / f"{name}.parquet", result.columns(name))


def save_result(out: Path, result: Result, meta: dict[str, Any]) -> None:
    """Store a finished run: its tables, summary.json, and run.json marked complete."""
    save_tables(out, result)
    store.write_json(out / "summary.json", result.summary)
    finish_meta(out, meta, result.timings)


def load_chains(out: Path, family: str, names: tuple[str, ...] | list[str]) -> tuple[Any, ...]:
    """Read a complete chain run of ``family``: ``(config dict, result fields)``.

    The result fields are the keyword arguments every chain family's result takes:
    ``generations``, ``aggregates``, ``trajectories``, ``final``, ``summary`` and
    ``timings``, read from the tables :func:`save_tables` wrote.

    Raises:
        store.RunDirError: ``out`` holds no complete run of ``family``.
    """
    out = Path(out)
    meta = read_meta(out)
    if meta.get("family", "gaussian") != family:  # early Gaussian runs stored no family
        raise store.RunDirError(f"{out} holds a run of another family, not a {family} run")
    gens, aggregates, trajectories, final = load_tables(out, names)
    fields = {
        "generations": gens,
        "aggregates": aggregates,
        "trajectories": trajectories,
        "final": final,
        "summary": store.read_json(out / "summary.json"),
        "timings": meta.get("timings", {}),
    }
    return meta["config"], fields


def load_tables(
    out: Path, names: tuple[str, ...] | list[str]
) -> tuple[
    np.ndarray, dict[str, dict[str, np.ndarray]], dict[str, np.ndarray], dict[str, np.ndarray]
]:
    """Read what :func:`save_tables` wrote: ``(generations, aggregates, trajectories, final)``."""
    from .. import metrics

    agg = store.read_parquet(
        out / "aggregates.parquet", "SELECT * FROM t ORDER BY metric, generation"
    )
    gens = np.unique(agg["generation"])
    aggregates = {m: {stat: agg[stat][agg["metric"] == m] for stat in metrics.STATS} for m in names}
    fin = store.read_parquet(out / "final.parquet", "SELECT * FROM t ORDER BY chain")
    traj = store.read_parquet(
        out / "trajectories.parquet", "SELECT * FROM t ORDER BY chain, generation"
    )
    kc = len(np.unique(traj["chain"])) if len(traj["chain"]) else 0
    trajectories = {m: traj[m].reshape(kc, len(gens)) for m in names}
    final = {name: fin[name] for name in fin if name not in ("chain", "generation")}
    return gens, aggregates, trajectories, final


class TimedBlocks:
    """Blocks of generations sized from the measured speed, about ``seconds`` each.

    For backends whose speed no fixed cost model predicts (JAX on whatever device it
    finds): the first block is at most 16 generations at ``per_gen`` seconds per
    chain-generation, later ones follow the speed measured in the block before,
    growing at most fourfold from one block to the next.
    Wrap the plan's ``advance`` with :meth:`timed` and use :meth:`size` as its ``block``.
    """

    def __init__(self, num_generations: int, per_gen: float, seconds: float = 1.0) -> None:
        self.num_generations = max(num_generations, 1)
        self.per_gen = per_gen
        self.seconds = seconds
        self.last = 0

    def size(self, batch: int, g: int) -> int:
        """Generations in the next block of a batch of ``batch`` chains."""
        want = max(1, int(self.seconds / (self.per_gen * batch)))
        # A short first block (it compiles) measures the speed; blocks then grow at most
        # fourfold each.
        want = min(want, 4 * self.last if self.last else 16)
        # The processes of a multi-host run must advance in the same blocks.
        self.last = distributed.smallest(min(self.num_generations, want))
        return self.last

    def timed(
        self, advance: Callable[[dict[str, Any], int, int, int, int], None]
    ) -> Callable[[dict[str, Any], int, int, int, int], None]:
        """``advance`` that also measures its speed (a first, compiling call counts too)."""

        def run(state: dict[str, Any], lo: int, hi: int, g: int, g_end: int) -> None:
            t0 = time.perf_counter()
            advance(state, lo, hi, g, g_end)
            self.per_gen = max(time.perf_counter() - t0, 1e-6) / ((hi - lo) * (g_end - g))

        return run


@dataclass
class Plan:
    """What a family gives the shared driver :func:`drive`.

    ``arrays`` are the run-wide results the kernels fill in place (records and the
    like); every checkpoint holds them. A batch's state is a dict of arrays: ``start``
    makes it at model 0 for chains ``[lo, hi)``, ``advance`` moves it from model ``g``
    to ``g_end``, ``snapshot`` returns what a checkpoint must hold of it at model ``g``
    and ``restore`` rebuilds the state from that. ``finish`` builds the run's result
    from the filled arrays once every batch has reached the last generation.
    """

    family: str
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]
    default_batch: int
    start: Callable[[int, int], dict[str, Any]]
    advance: Callable[[dict[str, Any], int, int, int, int], None]
    block: Callable[[int, int], int]
    finish: Callable[[], Any]
    snapshot: Callable[[dict[str, Any], int], dict[str, Any]] = field(
        default=lambda state, g: state
    )
    restore: Callable[[dict[str, Any], int, int], dict[str, Any]] = field(
        default=lambda saved, lo, hi: saved
    )


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
    saved = load_checkpoint(out) if resuming else None
    if saved is not None:
        for name, arr in plan.arrays.items():
            arr[...] = saved[f"run_{name}"]
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
) -> Generator[Progress, None, Finished | R]:
    """Run a family's chains in batches and blocks, checkpointing; yield progress.

    Chains ``[0, C)`` go through all generations batch by batch, each batch in blocks of
    generations; after each block a :class:`Progress` is yielded, and with ``out`` a
    checkpoint is written at most every ``checkpoint_seconds`` (and after each batch).
    Resuming restores the run-wide arrays and the interrupted batch's state. Returns
    :class:`Finished`, or the loaded result when ``out`` holds a complete run. In a
    multi-host run process 0 writes; the others read the run directory to resume.

    Raises:
        ConfigError: bad ``threads``, ``batch_chains`` or ``block_generations``.
        store.RunDirError: ``out`` cannot take this run.
    """
    set_threads(threads)
    check_sizes(batch_chains, block_generations)
    wall0 = time.perf_counter()
    config_dict = cfg.to_dict()
    writer = distributed.is_writer()
    resuming = False
    if out is not None:
        out = Path(out)
        resuming = _open_run(out, config_dict, resume)
        if resuming and is_complete(out):
            return load(out)
    plan = make_plan()
    c, t = cfg.num_chains, cfg.num_generations
    start = _Start(min(batch_chains or plan.default_batch, c))
    meta: dict[str, Any] = {}
    if out is not None:
        start = _restart(out, plan, start.batch, resuming)
        if writer:
            info = {"config": config_dict, "family": plan.family, **plan.meta}
            meta = start_meta(out, {**info, "batch_chains": start.batch}, resuming)
    batch, saved, kernel_seconds = start.batch, start.saved, start.kernel_seconds

    def checkpoint(b: int, g: int, state: dict[str, Any]) -> None:
        if out is None or not writer:
            return
        arrays: dict[str, Any] = {
            "batch": b,
            "generation": g,
            "batch_chains": batch,
            "kernel_seconds": kernel_seconds,
            **{f"run_{k}": v for k, v in plan.arrays.items()},
            **{f"state_{k}": v for k, v in state.items() if v is not None},
        }
        save_checkpoint(out, arrays)

    total = c * t
    last_ck = time.perf_counter()
    num_batches = math.ceil(c / batch)
    for b in range(start.first_batch, num_batches):
        lo, hi = b * batch, min(c, (b + 1) * batch)
        if saved is not None and start.first_gen > 0:
            # Resuming mid-batch: the checkpoint holds this batch's state.
            g = start.first_gen
            state = plan.restore({k[6:]: v for k, v in saved.items() if k.startswith("state_")},
                                 lo, hi)  # fmt: skip
        else:
            g = 0
            state = plan.start(lo, hi)
        saved = None
        yield Progress(lo * t + (hi - lo) * g, total, b, g)
        while g < t:
            g_end = min(t, g + (block_generations or plan.block(hi - lo, g)))
            k0 = time.perf_counter()
            plan.advance(state, lo, hi, g, g_end)
            kernel_seconds += time.perf_counter() - k0
            g = g_end
            if out is not None and g < t and time.perf_counter() - last_ck > checkpoint_seconds:
                checkpoint(b, g, plan.snapshot(state, g))
                last_ck = time.perf_counter()
            yield Progress(lo * t + (hi - lo) * g, total, b, g)
        if out is not None and b + 1 < num_batches:
            checkpoint(b + 1, 0, {})
            last_ck = time.perf_counter()
    return Finished(kernel_seconds, meta, wall0, plan)


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


def run_chains(
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
) -> Generator[Progress, None, R]:
    """Run a chain family's experiment, yielding progress; return its result.

    Every chain family's ``iterate`` is this generator over its plan: :func:`drive` runs
    the plan's chains, then the plan's ``finish`` builds the result, which is stamped
    with its timings and, with ``out``, stored (tables, summary.json, run.json).

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

    Yields:
        A :class:`Progress` after each block of generations.

    Raises:
        ConfigError: bad ``threads``, ``batch_chains`` or ``block_generations``.
        store.RunDirError: ``out`` cannot take this run.
    """
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
    )
    if not isinstance(done, Finished):
        return done
    return complete(done.plan.finish(), done, out, save_result)
