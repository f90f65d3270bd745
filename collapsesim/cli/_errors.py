"""One-line errors (exit code 2) and one-line warnings on stderr."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console

from ..config import ConfigError
from ..regimes import RegimeError
from ..store import RunDirError

__all__ = ["UserError", "check_plot_path", "err_console", "fail", "one_line_errors", "warn"]

err_console = Console(stderr=True, soft_wrap=True)


class UserError(Exception):
    """An error the user can fix; reported as one line with exit code 2."""


def fail(message: str) -> typer.Exit:
    """Print ``message`` as the one error line; return the exit to raise."""
    err_console.print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def warn(message: str) -> None:
    """Print one warning line on stderr."""
    err_console.print(f"[bold yellow]Warning:[/] {message}", highlight=False, soft_wrap=True)


def check_plot_path(plot: Path | None) -> None:
    """UserError unless ``plot`` is a new PNG, PDF or SVG file in a writable directory."""
    if plot is None:
        return
    if plot.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise UserError(
            f"--plot writes PNG, PDF or SVG by the file's extension; give a file ending in "
            f".png, .pdf or .svg, not {plot.name!r}"
        )
    if plot.exists():
        raise UserError(f"{plot} already exists; remove it or choose another --plot file")
    parent = plot.parent if str(plot.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"cannot write --plot file in {parent}")
    try:  # a real write, before the run: access() says yes to root in /proc
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".collapsesim-plot-", suffix=".png"):
            pass
    except OSError as err:
        raise UserError(f"cannot write --plot file in {parent}: {err.strerror or err}") from None


@contextlib.contextmanager
def one_line_errors(out: Path | None, *extra: type[Exception]) -> Iterator[None]:
    """Turn the package's typed errors (and ``extra``) and Ctrl-C into one line, exit 2."""
    known: tuple[type[Exception], ...] = (UserError, ConfigError, RegimeError, RunDirError, *extra)
    try:
        yield
    except known as err:
        raise fail(str(err)) from None
    except MemoryError:
        hint = f"; what was stored in {out} is intact" if out is not None else ""
        raise fail(f"the machine ran out of memory; make the run smaller{hint}") from None
    except KeyboardInterrupt:
        hint = f"; continue it with --out {out} --resume" if out is not None else ""
        raise fail(f"interrupted{hint}") from None
