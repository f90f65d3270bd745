"""Progress on stderr over a runner's generator of progress reports: Rich bars on a
terminal, one plain line every few seconds elsewhere (a pipe, a batch job's log)."""

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

__all__ = ["LOG_EVERY", "bars", "drive", "log_line"]

LOG_EVERY = 10.0
"""Seconds between the plain progress lines written where stderr is not a terminal."""


def drive(
    kind: str,
    steps: Any,
    *,
    quiet: bool,
    console: Console | None = None,
    log_every: float = LOG_EVERY,
) -> Any:
    """Drain a runner's generator under the bars its kind reports; return its result.

    ``kind``: ``chains`` (chain-generations done), ``vae`` (generations and epochs),
    ``lm`` (generations, and epochs or sequences sampled) or ``scan`` (points and
    chain-generations). Where the console is not a terminal, a plain line every
    ``log_every`` seconds (0: none) stands for the bars.
    """
    columns, names, update, fields = _KINDS[kind]
    return bars(
        steps, columns(), names, update, quiet=quiet, console=console, log_every=log_every,
        units=_UNITS.get(kind), **fields,
    )  # fmt: skip


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


_UNITS = {"chains": ["chain-generations"], "scan": ["", "chain-generations"]}
"""What a kind's counts count, where its bars' names do not say (the plain lines)."""

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
    log_every: float = LOG_EVERY,
    units: list[str] | None = None,
    **fields: Any,
) -> Any:
    """Drain a runner's generator under Rich progress bars (on stderr); return its result.

    One bar per name, after a description, a bar and a count, then ``columns``.
    ``update(progress, tasks, p)`` applies each progress report and says whether to
    redraw at once; otherwise the bars are redrawn from this thread at most ten times
    a second (Rich's own refresh thread would take a core from the kernels' threads).

    Where the console is not a terminal, bars would show nothing until the end (a
    transient display is only drawn on a terminal): the same tasks are kept, undrawn,
    and every ``log_every`` seconds (0: never) one plain line reports them, as
    :func:`log_line` writes it (``units``: what each count counts); a last line when the
    work ends.
    """
    console = console or err_console
    plain = not console.is_terminal
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *columns,
        console=console,
        transient=True,
        disable=quiet or plain,
        auto_refresh=False,
    )
    logging = plain and not quiet and log_every > 0
    # The bars appear with the first report: a run refused while it sets up (bad data,
    # too little memory) leaves its one error line and nothing else.
    try:
        p = next(steps)
    except StopIteration as stop:
        return stop.value
    last = 0.0
    start = logged = time.monotonic()
    with progress:
        tasks = [progress.add_task(name, total=None, **fields) for name in names]
        while True:
            now = time.monotonic()
            if logging:
                update(progress, tasks, p)
                if now - logged >= log_every:
                    _log(console, progress, tasks, now - start, units)
                    logged = now
            elif update(progress, tasks, p) or now - last >= 0.1:
                progress.refresh()
                last = now
            try:
                p = next(steps)
            except StopIteration as stop:
                if logging:
                    _log(console, progress, tasks, time.monotonic() - start, units, done=True)
                return stop.value


def _log(console: Console, progress: Progress, tasks: list[Any], elapsed: float,
         units: list[str] | None, *, done: bool = False) -> None:  # fmt: skip
    task = {t.id: t for t in progress.tasks}
    line = log_line([task[i] for i in tasks], elapsed, units, done=done)
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _clock(seconds: float) -> str:
    whole = int(max(seconds, 0.0))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def log_line(
    tasks: list[Any], elapsed: float, units: list[str] | None = None, *, done: bool = False
) -> str:
    """One plain progress line: the elapsed time, then each task's count, share and fields.

    For example ``[0:00:20] simulating 412,000/1,000,000 chain-generations (41.2%), about
    0:00:29 left``; ``done`` marks the last line. ``tasks`` are Rich tasks (description,
    completed, total, fields, time_remaining); ``units`` says what each one counts.
    """
    parts = []
    for i, t in enumerate(tasks):
        if t.total is None:
            continue
        # The work is over at the last line: a bar still one short (a scan's points count
        # those finished before the last report) is full.
        completed = t.total if done else t.completed
        text = f"{t.description} {int(completed):,}/{int(t.total):,}"
        if units and i < len(units) and units[i]:
            text += f" {units[i]}"
        if t.total > 0:
            text += f" ({100.0 * completed / t.total:.1f}%)"
        extra = [str(v) for v in t.fields.values() if str(v)]
        if extra:
            text += ", " + ", ".join(extra)
        parts.append(text)
    head = f"[{_clock(elapsed)}]"
    if done:
        return f"{head} done: " + "; ".join(parts) if parts else f"{head} done"
    left = tasks[0].time_remaining if tasks and tasks[0].total else None
    tail = f", about {_clock(left)} left" if left is not None else ""
    return f"{head} " + ("; ".join(parts) or "starting") + tail
