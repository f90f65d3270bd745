"""``collapsesim bench``: throughput on this machine, ours beside the baselines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..bench import BACKENDS, GROUPS
from ._errors import UserError, one_line_errors

__all__ = ["add_bench"]


def _progress(steps: Any, quiet: bool) -> Any:
    """Drain the benchmarks' generator under a Rich bar on stderr; return the report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ._errors import err_console

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=err_console, transient=True, disable=quiet)  # fmt: skip
    with bar:
        task = bar.add_task("benchmarks", total=None)
        while True:
            try:
                done, total, name = next(steps)
            except StopIteration as stop:
                return stop.value
            bar.update(task, completed=done, total=total, description=name)
            bar.refresh()


def add_bench(app: typer.Typer) -> None:
    """Add the ``bench`` command to ``app``."""

    @app.command("bench", help=(
        "Throughput of the kernels on this machine beside the code a user would otherwise "
        "write (NumPy, scikit-learn; Numba for the JAX chains): the same work in the same "
        f"process, medians after a warm-up, their ratio. NAMES: any of {', '.join(GROUPS)} "
        "(default: all)."))  # fmt: skip
    def bench(
        names: Annotated[list[str] | None, typer.Argument(
            help=f"Benchmarks to run: {', '.join(GROUPS)}.", show_default=False)] = None,
        backend: Annotated[str, typer.Option(
            help=f"Chain backend: {' | '.join(BACKENDS)} (jax: the JAX chains beside Numba, "
            "on JAX's default device).")] = "numba",
        quick: Annotated[bool, typer.Option(
            "--quick", help="Small sizes and 3 repeats: about half a minute (a minute on a first run, "
            "which compiles the kernels).")] = False,
        repeats: Annotated[int | None, typer.Option(
            help="Timed runs per side (default 5, or 3 with --quick).")] = None,
        threads: Annotated[int | None, typer.Option(
            help="Numba threads (default: all cores).")] = None,
        as_json: Annotated[bool, typer.Option(
            "--json", help="Print one JSON object on stdout and nothing else.")] = False,
        readme: Annotated[Path | None, typer.Option(
            help="Also replace the backend's table (between <!-- bench:start --> and <!-- bench:end -->, or bench-jax:...) in this Markdown file.")] = None,
    ) -> None:  # fmt: skip
        from .. import bench as harness
        from ..experiments._common import set_threads

        with one_line_errors(None, ValueError):
            if readme is not None and not readme.is_file():
                raise UserError(f"--readme {readme}: no such file")
            start = harness.markers(backend)[0] if backend in BACKENDS else ""
            if readme is not None and start and start not in readme.read_text():
                raise UserError(f"--readme {readme} has no {start} marker")
            set_threads(threads)
            steps = harness.run(names or (), backend=backend, quick=quick, repeats=repeats)
            report = _progress(steps, quiet=as_json)
            if readme is not None:
                harness.write_readme(readme, report)
        if as_json:
            typer.echo(json.dumps(report.to_dict(), default=float))
            return
        _table(report)


def _table(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..bench import machine_line

    console = Console()
    kind = "quick sizes" if report.quick else "full sizes"
    table = Table(title=f"collapsesim bench: backend {report.backend}, {kind}, medians of "
                  f"{report.repeats} runs", caption=machine_line(report.machine))  # fmt: skip
    for name in ("benchmark", "baseline", "collapsesim", "ratio", "target"):
        table.add_column(name, overflow="fold")
    for row in report.rows:
        cells = report.cells(row)
        style = None if row.met is None else ("green" if row.met else "red")
        table.add_row(row.name, *cells[:3], f"[{style}]{cells[3]}[/]" if style else cells[3])
    console.print(table)
    for s in report.skipped:
        console.print(f"Skipped: {s}.")
