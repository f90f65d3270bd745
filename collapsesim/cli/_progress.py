"""Rich progress bars (on stderr) over a runner's generator of progress reports."""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ._errors import err_console

__all__ = ["bars", "drive"]


def drive(kind: str, steps: Any, *, quiet: bool, console: Console | None = None) -> Any:
    """Drain a runner's generator under the bars its kind reports; return its result.

    ``kind``: ``chains`` (chain-generations done), ``vae`` (generations and epochs),
    ``lm`` (generations, and epochs or sequences sampled) or ``scan`` (points and
    chain-generations).
    """
    columns, names, update, fields = _KINDS[kind]
    return bars(steps, columns(), names, update, quiet=quiet, console=console, **fields)


def _chains(progress: Progress, tasks: list[Any], p: Any) -> bool:
    progress.update(tasks[0], completed=p.done, total=p.total)
    return bool(p.done == p.total)


def _vae(progress: Progress, tasks: list[Any], p: Any) -> bool:
    gens, epochs = tasks
    progress.update(gens, completed=p.generation + (p.epoch == p.epochs), total=p.generations)
    loss = f"loss {p.loss:.1f} nats" if math.isfinite(p.loss) else ""  # none yet
    progress.update(epochs, completed=p.epoch, total=p.epochs, loss=loss)
    return True  # an epoch takes seconds: redraw each time


def _lm(progress: Progress, tasks: list[Any], p: Any) -> bool:
    gens, stage = tasks
    last = p.stage == "sample" and p.done == p.total
    progress.update(gens, completed=p.generation + last, total=p.generations)
    what = "epochs" if p.stage == "train" else "sampled"
    loss = f"loss {p.loss:.3f} nats/token" if math.isfinite(p.loss) else ""  # none yet
    progress.update(stage, description=what, completed=p.done, total=p.total, loss=loss)
    return bool(p.stage == "train")  # an epoch takes seconds: redraw at once


def _scan(progress: Progress, tasks: list[Any], p: Any) -> bool:
    progress.update(tasks[0], completed=p.point, total=p.points)
    progress.update(tasks[1], completed=p.done, total=p.total)
    return False


_KINDS: dict[str, Any] = {
    "chains": (
        lambda: (TextColumn("chain-generations"), TimeElapsedColumn(), TimeRemainingColumn()),
        ["simulating"],
        _chains,
        {},
    ),
    "vae": (
        lambda: (TextColumn("{task.fields[loss]}"), TimeElapsedColumn()),
        ["generations", "epochs"],
        _vae,
        {"loss": ""},
    ),
    "lm": (
        lambda: (TextColumn("{task.fields[loss]}"), TimeElapsedColumn()),
        ["generations", "epochs"],
        _lm,
        {"loss": ""},
    ),
    "scan": (
        lambda: (TimeElapsedColumn(), TimeRemainingColumn()),
        ["grid points", "chain-generations"],
        _scan,
        {},
    ),
}


def bars(
    steps: Any,
    columns: tuple[Any, ...],
    names: list[str],
    update: Any,
    *,
    quiet: bool,
    console: Console | None = None,
    **fields: Any,
) -> Any:
    """Drain a runner's generator under Rich progress bars (on stderr); return its result.

    One bar per name, after a description, a bar and a count, then ``columns``.
    ``update(progress, tasks, p)`` applies each progress report and says whether to
    redraw at once; otherwise the bars are redrawn from this thread at most ten times
    a second (Rich's own refresh thread would take a core from the kernels' threads).
    """
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *columns,
        console=console or err_console,
        transient=True,
        disable=quiet,
        auto_refresh=False,
    )
    # The bars appear with the first report: a run refused while it sets up (bad data,
    # too little memory) leaves its one error line and nothing else.
    try:
        p = next(steps)
    except StopIteration as stop:
        return stop.value
    last = 0.0
    with progress:
        tasks = [progress.add_task(name, total=None, **fields) for name in names]
        while True:
            now = time.monotonic()
            if update(progress, tasks, p) or now - last >= 0.1:
                progress.refresh()
                last = now
            try:
                p = next(steps)
            except StopIteration as stop:
                return stop.value
