"""The ``collapsesim`` command line: thin, over the families' registry.

Each family's command is built from its configuration (:mod:`._build`); ``scan`` runs any
chain family over a grid (:mod:`._scan`); ``compare`` lines up stored runs
(:mod:`._compare`). The only package that imports typer or rich,
besides the families' tables.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..families import FAMILIES
from ._bench import add_bench
from ._build import add_family
from ._compare import add_compare
from ._errors import err_console
from ._scan import add_scan

__all__ = ["app", "main"]

app = typer.Typer(
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    help="Simulate model collapse: generative models trained, generation after generation, "
    "on their own samples.",
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"collapsesim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Simulate model collapse: generative models trained on their own samples."""


for _family in FAMILIES.values():
    add_family(app, _family)
add_scan(app)
add_compare(app)
add_bench(app)


def main() -> None:
    """Entry point of the ``collapsesim`` console script: usage errors are one line, exit 2."""
    try:
        code = app(standalone_mode=False)
    except Exception as err:
        # Click's UsageError, vendored inside Typer by recent releases: matched by its
        # interface rather than a private import path.
        if getattr(err, "exit_code", None) == 2 and hasattr(err, "format_message"):
            ctx = getattr(err, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            err_console.print(f"[bold red]Error:[/] {err.format_message()}{hint}", highlight=False)
            sys.exit(2)
        if type(err).__name__ == "Abort":
            err_console.print("[bold red]Aborted.[/]")
            sys.exit(130)
        raise
    sys.exit(code if isinstance(code, int) else 0)
