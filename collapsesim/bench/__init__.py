"""``collapsesim bench``: the package's throughput on this machine, beside the baselines.

Each benchmark runs our side and the baseline a user would otherwise write (NumPy,
scikit-learn, or Numba for the JAX chains) on the same work in the same process, after a
warm-up, and reports medians of repeated runs and their ratio. Every side counts the
work it did in its own loop (``Side.done``), so a row whose sides did different work is
visible, and tested. ``run`` is a generator: it yields the name of each benchmark as it
starts (the command line's progress bar) and returns the :class:`Report`.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._core import Case, Row, Side, Sizes

__all__ = ["BACKENDS", "CASES", "GROUPS", "Case", "Report", "Row", "Side", "Sizes", "machine",
           "markers", "run", "write_readme"]  # fmt: skip

BACKENDS = ("numba", "jax")


CASES: list[Case] = [
    Case("rng", "random-number floor", ("numba",), "_chains:floor_rows"),
    Case("rng", "random-number floor (JAX)", ("jax",), "_jax:jax_floor_rows"),
    Case("gaussian", "Gaussian chains", ("numba",), "_chains:gaussian_rows"),
    Case("gaussian", "Gaussian chains (JAX)", ("jax",), "_jax:jax_gaussian_rows"),
    Case("gaussian", "Gaussian chains under curation", ("numba",), "_curation:curation_rows"),
    Case("cli", "command line, whole process", ("numba",), "_process:cli_rows"),
    Case("cluster", "a Dask LocalCluster against one process", ("numba",), "_cluster:cluster_rows"),
    Case("mixture", "mixture EM chains", ("numba",), "_chains:mixture_rows"),
    Case("mvgaussian", "multivariate Gaussian chains", ("numba",), "_mvgaussian:mvgaussian_rows"),
    Case("regression", "linear-regression chains", ("numba",), "_regression:regression_rows"),
    Case("kde", "kernel-density chains", ("numba",), "_kde:kde_rows"),
    Case("tokens", "token chains", ("numba",), "_chains:token_rows"),
    Case("tokens", "token chains (JAX)", ("jax",), "_jax:jax_token_rows"),
    Case("vae", "VAE", ("numba", "jax"), "_neural:vae_rows"),
    Case("lm", "transformer LM", ("numba", "jax"), "_neural:lm_rows"),
]
"""Every benchmark, in the order of the table."""

GROUPS = tuple(dict.fromkeys(c.group for c in CASES))
"""What ``collapsesim bench NAME...`` can name: the families, ``rng`` and ``cli``."""


def machine() -> dict[str, Any]:
    """The machine the benchmarks ran on: CPU, cores, threads, versions, JAX's devices."""
    import numba
    import numpy as np

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
    }
    try:
        import jax

        devices = jax.devices()
        info |= {"jax": jax.__version__, "jax_backend": jax.default_backend(),
                 "jax_devices": [d.device_kind for d in devices]}  # fmt: skip
    except Exception as err:  # noqa: BLE001 - a broken JAX install is reported, not fatal
        info |= {"jax": None, "jax_error": str(err)}
    return info


def machine_line(info: dict[str, Any]) -> str:
    """The machine in one line, for the table's header."""
    jax = "JAX not available"
    if info.get("jax"):
        kinds = sorted(set(info["jax_devices"]))
        jax = (f"JAX {info['jax']} on {info['jax_backend']} x{len(info['jax_devices'])} "
               f"({', '.join(kinds)})")  # fmt: skip
    return (f"{info['cpu']}, {info['cores']} cores, Numba threads {info['numba_threads']}, "
            f"Python {info['python']}, NumPy {info['numpy']}, Numba {info['numba']}, {jax}")  # fmt: skip


@dataclass
class Report:
    """What one ``collapsesim bench`` run measured."""

    machine: dict[str, Any]
    backend: str
    quick: bool
    repeats: int
    date: str
    rows: list[Row] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        return {
            "machine": self.machine,
            "backend": self.backend,
            "quick": self.quick,
            "repeats": self.repeats,
            "date": self.date,
            "rows": [r.to_dict() for r in self.rows],
            "skipped": self.skipped,
        }

    def cells(self, row: Row) -> tuple[str, str, str, str]:
        """Baseline, ours, ratio and target cells of a row."""
        base = row.text.get("baseline", "—" if row.baseline is None else row.baseline.label)
        ratio = row.text.get("ratio", "—" if row.ratio is None else f"{row.ratio:,.1f}x")
        target = "—" if row.target is None else f"{row.target} ({'met' if row.met else 'NOT met'})"
        return base, row.text.get("ours", row.ours.label), ratio, target

    def markdown(self) -> str:
        """The table in Markdown, after a line naming the machine."""
        kind = "quick sizes" if self.quick else "full sizes"
        lines = [
            (
                f"Machine: {machine_line(self.machine)}. Backend {self.backend}, {kind}, medians of "
                f"{self.repeats} runs after a warm-up, {self.date}."
            ),
            "",
            "| benchmark | baseline | collapsesim | ratio | target |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {r.name} | " + " | ".join(self.cells(r)) + " |" for r in self.rows]
        lines += [f"\nSkipped: {s}." for s in self.skipped]
        return "\n".join(lines) + "\n"


def run(
    names: Sequence[str] = (), *, backend: str = "numba", quick: bool = False,
    repeats: int | None = None,
) -> Generator[tuple[int, int, str], None, Report]:  # fmt: skip
    """Run the benchmarks of ``names`` (groups of :data:`GROUPS`; all when empty).

    Yields ``(done, total, name)`` before each benchmark and returns the :class:`Report`.

    Raises:
        ValueError: an unknown name or backend, or ``repeats`` below 1.
    """
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        raise ValueError(f"no benchmark {unknown[0]!r}; choose from {', '.join(GROUPS)}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    repeats = (3 if quick else 5) if repeats is None else repeats
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    sizes = Sizes(repeats, quick)
    wanted = [c for c in CASES if not names or c.group in names]
    chosen = [c for c in wanted if backend in c.backends]
    report = Report(machine(), backend, quick, repeats, time.strftime("%Y-%m-%d"))
    for group in dict.fromkeys(c.group for c in wanted):
        if not any(c.group == group for c in chosen):
            report.skipped.append(f"{group}: no {backend} backend")
    for i, case in enumerate(chosen):
        yield i, len(chosen), case.name
        rows = case.rows(sizes)
        if not rows:
            report.skipped.append(f"{case.name}: its baseline is not installed")
        report.rows.extend(rows)
    return report


START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def markers(backend: str) -> tuple[str, str]:
    """The pair of markers around a backend's table: ``bench`` (numba), ``bench-jax``."""
    if backend == "numba":
        return START, END
    return f"<!-- bench-{backend}:start -->", f"<!-- bench-{backend}:end -->"


def write_readme(path: Path, report: Report) -> None:
    """Replace the table between the markers of ``report``'s backend in ``path``.

    Raises:
        ValueError: ``path`` has no pair of those markers.
    """
    text = path.read_text()
    start, end = markers(report.backend)
    if start not in text or end not in text:
        raise ValueError(f"{path} has no {start} ... {end} markers to replace")
    i, j = text.index(start) + len(start), text.index(end)
    from ..store import atomic_write

    new = text[:i] + "\n" + report.markdown() + text[j:]
    atomic_write(path, lambda tmp: tmp.write_text(new))
