"""The ``collapsesim`` command line. The only module that imports typer or rich."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .config import ConfigError, GaussianConfig
from .regimes import RegimeError
from .store import RunDirError

app = typer.Typer(
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    help="Simulate model collapse: generative models trained, generation after generation, "
    "on their own samples.",
)
err_console = Console(stderr=True, soft_wrap=True)


@app.callback()
def _root() -> None:
    """Simulate model collapse: generative models trained on their own samples."""


class UserError(Exception):
    """An error the user can fix; reported as one line with exit code 2."""


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def _check_plot_path(plot: Path | None) -> None:
    if plot is None:
        return
    if plot.exists():
        raise UserError(f"{plot} already exists; remove it or choose another --plot file")
    parent = plot.parent if str(plot.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"cannot write --plot file in {parent}")
    if plot.suffix.lower() != ".png":
        raise UserError(f"--plot writes PNG; give a file ending in .png, not {plot.name!r}")


@app.command()
def gaussian(
    chains: Annotated[
        int, typer.Option("--chains", help="Independent chains (Monte Carlo replicates).")
    ] = 1000,
    generations: Annotated[
        int, typer.Option("--generations", help="Generations T: models fitted after the original.")
    ] = 1000,
    samples: Annotated[
        int, typer.Option("--samples", help="Training-set size n of every generation (>= 2).")
    ] = 1000,
    ddof: Annotated[
        int, typer.Option("--ddof", help="0: maximum-likelihood std; 1: unbiased variance.")
    ] = 0,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="auto | sample | sufficient. [b]sufficient[/] draws the mean and chi-square statistic directly (exact in distribution); auto uses it wherever it is exact.",
        ),
    ] = "auto",
    regime: Annotated[
        str,
        typer.Option(
            "--regime", help="replace | accumulate | fresh | keep-original | accumulate-subsample."
        ),
    ] = "replace",
    fresh_fraction: Annotated[
        float,
        typer.Option(
            "--fresh-fraction",
            help="fresh: share of each training set drawn anew from the original.",
        ),
    ] = 0.1,
    keep_fraction: Annotated[
        float,
        typer.Option(
            "--keep-fraction",
            help="keep-original: share of generation 0 kept in every training set.",
        ),
    ] = 0.1,
    mu0: Annotated[float, typer.Option("--mu0", help="Mean of the original Gaussian.")] = 0.0,
    sigma0: Annotated[float, typer.Option("--sigma0", help="Std of the original Gaussian.")] = 1.0,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed; with the chain index it fixes every draw.")
    ] = 0,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", help="Numba threads (default: all cores). Results do not depend on it."
        ),
    ] = None,
    record_every: Annotated[
        int,
        typer.Option(
            "--record-every",
            help="Record every k-th generation (0: automatic, every generation for the default run).",
        ),
    ] = 0,
    keep_chains: Annotated[
        int,
        typer.Option(
            "--keep-chains", help="Chains whose whole trajectories are stored with --out."
        ),
    ] = 100,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Run directory: Parquet results, run.json, checkpoints."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the killed run stored in --out.")
    ] = False,
    checkpoint_every: Annotated[
        float,
        typer.Option(
            "--checkpoint-every",
            help="Seconds between checkpoints with --out (also one after each chain batch).",
        ),
    ] = 30.0,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Write a PNG: sigma over generations and the histogram of final log sigma.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")
    ] = False,
) -> None:
    """Run the Gaussian chain: fit N(mu, sigma^2) to n samples, draw n from the fit, repeat.

    With no options this is the 1000 x 1000 experiment: 1000 chains of 1000 generations
    with n = 1000, whose std collapses (E[sigma_1000] = 0.4721 exactly for the MLE fit).
    """
    from .experiments import gaussian as runner

    try:
        if resume and out is None:
            raise UserError("--resume needs --out, the directory of the run to continue")
        _check_plot_path(plot)
        if not checkpoint_every >= 0:
            raise UserError(f"--checkpoint-every must be >= 0 seconds, got {checkpoint_every}")
        cfg = GaussianConfig(
            num_chains=chains,
            num_generations=generations,
            num_samples=samples,
            ddof=ddof,
            method=method,
            regime=regime,
            fresh_fraction=fresh_fraction,
            keep_fraction=keep_fraction,
            mu0=mu0,
            sigma0=sigma0,
            seed=seed,
            record_every=record_every,
            keep_chains=keep_chains,
        )
        steps = runner.iterate(
            cfg, out=out, resume=resume, threads=threads, checkpoint_seconds=checkpoint_every
        )
        result = _drive(steps, quiet=as_json)
        if plot is not None:
            from .plots import plot_gaussian

            plot_gaussian(result, plot)
    except (UserError, ConfigError, RegimeError, RunDirError) as err:
        raise _fail(str(err)) from None
    except KeyboardInterrupt:
        hint = f"; continue it with --out {out} --resume" if out is not None else ""
        raise _fail(f"interrupted{hint}") from None
    if as_json:
        typer.echo(json.dumps(result.summary, allow_nan=False))
        return
    console = Console()
    console.print(_summary_table(result.summary))
    if out is not None:
        console.print(f"Results in [bold]{out}[/]")
    if plot is not None:
        console.print(f"Plot in [bold]{plot}[/]")


def _drive(steps: Any, *, quiet: bool, console: Console | None = None) -> Any:
    """Run the runner's generator under a Rich progress bar (on stderr); return its result.

    The bar is redrawn from this thread when progress arrives, at most ten times a
    second: Rich's own refresh thread would take a core from the kernels' threads.
    """
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chain-generations"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or err_console,
        transient=True,
        disable=quiet,
        auto_refresh=False,
    )
    last = 0.0
    with progress:
        task = progress.add_task("simulating", total=None)
        while True:
            try:
                p = next(steps)
            except StopIteration as stop:
                return stop.value
            progress.update(task, completed=p.done, total=p.total)
            now = time.monotonic()
            if now - last >= 0.1 or p.done == p.total:
                progress.refresh()
                last = now


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _summary_table(s: dict[str, Any]) -> Table:
    title = (
        f"{s['chains']} chains x {s['generations']} generations, n = {s['samples']}, "
        f"ddof {s['ddof']}, {s['regime']}, {s['method']}, seed {s['seed']} ({s['seconds']:.2f} s)"
    )
    table = Table(title=title, title_justify="left")
    for col in ("final generation", "simulation", "± s.e.", "theory", "z"):
        table.add_column(col, justify="left" if col == "final generation" else "right")
    t = s["generations"]
    rate = (math.log(s["sigma0"]) - s["mean_log_final_std"]) / t if t else None
    rate_se = s["stderr_log_final_std"] / t if t and s["stderr_log_final_std"] is not None else None
    rate_z = (
        (rate - s["theory_collapse_rate"]) / rate_se
        if rate is not None and rate_se and s["theory_collapse_rate"] is not None
        else None
    )
    rows = [
        (
            "mean std",
            s["mean_final_std"],
            s["stderr_final_std"],
            s["theory_mean_final_std"],
            s["z_mean_final_std"],
        ),
        *(
            (
                f"{label} std",
                s[f"{key}_final_std"],
                s.get(f"stderr_{key}_final_std"),
                s.get(f"theory_{key}_final_std"),
                s.get(f"z_{key}_final_std"),
            )
            for label, key in (
                ("median", "median"),
                ("5% quantile", "q05"),
                ("95% quantile", "q95"),
            )
        ),
        (
            "mean log std",
            s["mean_log_final_std"],
            s["stderr_log_final_std"],
            s["theory_mean_log_final_std"],
            s["z_mean_log_final_std"],
        ),
        ("collapse rate -dE\\[log std]/dT", rate, rate_se, s["theory_collapse_rate"], rate_z),
        (
            "variance of the mean",
            s["var_final_mean"],
            s["stderr_var_final_mean"],
            s["theory_var_final_mean"],
            s["z_var_final_mean"],
        ),
        ("mean W2 to the original", s["mean_final_w2"], None, None, None),
        ("mean mass beyond 3 sigma0", s["mean_final_tail_mass"], None, None, None),
    ]
    for name, sim, se, th, z in rows:
        table.add_row(
            name, _fmt(sim), _fmt(se, 2), _fmt(th), f"{z:.2f}" if isinstance(z, float) else "—"
        )
    return table


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
