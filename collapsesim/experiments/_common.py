"""Pieces every family's runner shares: progress, record slots, threads, run metadata."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
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


RESTART = "delete it and rerun with --resume to start the run again from generation 0"


def load_checkpoint(out: Path) -> dict[str, np.ndarray] | None:
    """Return the arrays of checkpoint.npz, or None if there is none.

    Raises:
        store.RunDirError: the checkpoint is damaged (the message says what to do).
    """
    path = out / store.CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        saved = store.load_npz(path)
    except store.RunDirError as err:
        raise store.RunDirError(f"{err}; {RESTART}") from None
    missing = [
        k for k in ("batch", "generation", "batch_chains", "kernel_seconds") if k not in saved
    ]
    if missing:
        raise store.RunDirError(f"{path} is damaged (no {missing[0]}); {RESTART}")
    return saved


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
    """(value - expected) / stderr, or None where either is missing or degenerate.

    Degenerate includes a standard error at the level of rounding (below 1e-12 of the
    values): every chain then holds the same number, and the z-score would only measure
    the rounding of the sums (a smoothing of 1e300 makes every model uniform).
    """
    if expected is None or stderr is None or not math.isfinite(value):
        return None
    if not stderr > 1e-12 * max(abs(value), abs(expected)):
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
