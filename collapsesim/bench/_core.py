"""What a benchmark measures and reports: sides, rows, medians after a warm-up."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Case", "Row", "Side", "Sizes", "median_time", "side"]


@dataclass(frozen=True)
class Sizes:
    """How hard the benchmarks work: ``repeats`` timed runs each, full or quick sizes."""

    repeats: int = 5
    quick: bool = False

    def pick(self, full: Any, quick: Any) -> Any:
        """``quick`` under ``--quick``, else ``full``."""
        return quick if self.quick else full


@dataclass
class Side:
    """One side of a benchmark (the baseline or ours): what it is and how long it took.

    ``seconds`` is the median of the timed runs; ``done`` the work units it reports
    having done in one run (chain-generations, images, tokens), counted by its own loop,
    so that a test can check both sides of a row did the same work.
    """

    label: str
    seconds: float
    done: float
    unit: str = "chain-gen"
    times: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Work units per second (median)."""
        return self.done / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class Row:
    """One line of the table.

    ``work`` describes the work both sides do (chains, generations, sizes); ``ratio`` is
    the baseline's median time over ours on that same work (None without a baseline);
    ``target`` the issue's target in words, ``met`` whether this run meets it (None
    when the row has no target). ``text`` holds the table's cells.
    """

    group: str
    name: str
    work: dict[str, Any]
    ours: Side
    baseline: Side | None = None
    ratio: float | None = None
    target: str | None = None
    met: bool | None = None
    text: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-ready values (rates added to each side)."""
        out = asdict(self)
        for name in ("ours", "baseline"):
            s = getattr(self, name)
            if s is not None:
                out[name]["rate"] = s.rate
        return out


@dataclass(frozen=True)
class Case:
    """A benchmark: its group (family, or ``rng``/``cli``), name, backends, and builder.

    ``build`` names the function (``module:function`` in this package) that runs it at
    the given sizes and returns its rows; it is imported only when the case runs.
    """

    group: str
    name: str
    backends: tuple[str, ...]
    build: str

    def rows(self, sizes: Sizes) -> list[Row]:
        """Run the benchmark; its rows."""
        import importlib

        module, function = self.build.split(":")
        fn = getattr(importlib.import_module(f"collapsesim.bench.{module}"), function)
        rows: list[Row] = fn(sizes)
        return rows


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    """Median seconds of ``repeats`` calls of ``fn`` after one warm-up call.

    Returns ``(median, times, value)`` with ``value`` what the last call returned.
    """
    value = fn()  # warm-up: compile, page in, first-call costs
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, value


def side(label: str, fn: Callable[[], Any], repeats: int, unit: str = "chain-gen") -> Side:
    """Time ``fn`` (which returns the work units it did) into a :class:`Side`."""
    med, times, done = median_time(fn, repeats)
    return Side(label, med, float(done), unit, times)


def si(x: float) -> str:
    """A rate for the table: 3 significant figures, thousands separated below 10^7."""
    if math.isnan(x):
        return "n/a"
    return f"{x:,.0f}" if abs(x) < 1e7 else f"{x:.3g}"
