"""A command per family, built from its configuration's fields: each option declared once.

A family's options are its configuration's fields (declared with
:func:`collapsesim.config.opt`: help, flag, panel); the options every run takes (output,
resume, plot, JSON, threads, checkpoints, presets, the cluster) are declared here once.
Every command takes the same path: options -> configuration (defaults, then a preset,
then the options given) -> runner under a progress bar -> table or JSON, and figure.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import BACKEND, OUTPUT, RUN
from ..families import Family
from ._errors import UserError, check_plot_path, one_line_errors, warn
from ._progress import LOG_EVERY, drive

__all__ = ["CLUSTER_HELP", "DASK", "LOG_HELP", "add_family", "check_log_every"]

_CLUSTER = "Several hosts (jax.distributed)"
DASK = "Several machines (Dask)"
CLUSTER_HELP = (
    "Run the chains on a Dask cluster (README: Running on a cluster): local or "
    "local:N starts N worker processes here; tcp://HOST:PORT or a scheduler file "
    "(.json) joins one. Numba backend; results do not depend on it."
)

LOG_HELP = (
    "Seconds between plain progress lines where stderr is not a terminal (a pipe, a batch "
    "job's log); 0: none. A terminal shows progress bars instead."
)


def check_log_every(seconds: float) -> None:
    """UserError unless ``seconds`` is a finite number >= 0."""
    if not (seconds >= 0 and seconds < float("inf")):
        raise UserError(f"--log-every must be a number of seconds >= 0, got {seconds}")


def _run_options(family: Family) -> list[tuple[str, Any, Any]]:
    """``(name, annotation, default)`` of the options every run of ``family`` takes."""
    out: list[tuple[str, Any, Any]] = []

    def add(name: str, kind: Any, default: Any, *flags: str, **info: Any) -> None:
        out.append((name, Annotated[kind, typer.Option(*flags, **info)], default))

    add("out", Path | None, None, "--out", rich_help_panel=OUTPUT,
        help="Run directory: Parquet results, run.json, checkpoints" + (
            f", {family.stored}" if family.stored else "") + ".")  # fmt: skip
    add("resume", bool, False, "--resume", rich_help_panel=OUTPUT,
        help="Continue the killed run stored in --out.")  # fmt: skip
    add("plot", Path | None, None, "--plot", rich_help_panel=OUTPUT,
        help=f"Write a figure (PNG, PDF or SVG by the extension): {family.plot_help}.")  # fmt: skip
    add("as_json", bool, False, "--json", rich_help_panel=OUTPUT,
        help="Print one JSON object on stdout and nothing else.")  # fmt: skip
    add("log_every", float, LOG_EVERY, "--log-every", rich_help_panel=OUTPUT, help=LOG_HELP)
    if family.presets:
        add("preset", str | None, None, "--preset", rich_help_panel=RUN,
            help=f"Start from a preset ({' | '.join(family.presets)}); options given "
            f"override it. {family.preset_help}")  # fmt: skip
    if family.kind == "chains":
        add("threads", int | None, None, "--threads", rich_help_panel=BACKEND,
            help="Numba threads (default: all cores). Results do not depend on it.")  # fmt: skip
        add("checkpoint_every", float, 30.0, "--checkpoint-every", rich_help_panel=OUTPUT,
            help="Seconds between checkpoints with --out (also one after each chain batch).")  # fmt: skip
        add("cluster_address", str | None, None, "--cluster", rich_help_panel=DASK,
            help=CLUSTER_HELP)  # fmt: skip
    if family.cluster:
        add("distributed", bool, False, "--distributed", rich_help_panel=_CLUSTER,
            help="jax, several hosts: join a run whose settings the cluster provides "
            "(SLURM, Open MPI, Cloud TPU).")  # fmt: skip
        add("coordinator", str | None, None, "--coordinator", rich_help_panel=_CLUSTER,
            help="jax, several hosts: HOST:PORT of process 0; run the same command on every "
            "host with its --process-id.")  # fmt: skip
        add("num_processes", int | None, None, "--num-processes", rich_help_panel=_CLUSTER,
            help="jax, several hosts: how many processes (hosts) take part.")  # fmt: skip
        add("process_id", int | None, None, "--process-id", rich_help_panel=_CLUSTER,
            help="jax, several hosts: this process's index, 0 .. num-processes - 1; "
            "process 0 writes and prints.")  # fmt: skip
    for flag, (name, message) in family.deprecated.items():
        add(f"deprecated_{name}", str | None, None, flag, hidden=True, help=message)
    return out


def _flag(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("flag") or "--" + f.name.replace("_", "-"))


def _config_options(family: Family) -> list[tuple[str, Any, Any]]:
    """``(name, annotation, default)`` of the options that are ``family``'s config fields."""
    hints = typing.get_type_hints(family.config)
    out = []
    for f in dataclasses.fields(family.config):
        meta = f.metadata
        if not meta.get("cli", False):
            continue
        kind = str if meta.get("parse") else hints[f.name]
        default = meta["show"](f.default) if meta.get("show") else f.default
        help_ = meta["help"]
        if f.name == "seed" and family.seed_help:
            help_ = family.seed_help
        info = typer.Option(_flag(f), help=help_, rich_help_panel=meta["group"], show_default=True)
        out.append((f.name, Annotated[kind, info], default))
    return out


def _given(ctx: typer.Context, names: list[str]) -> set[str]:
    """The parameters set on the command line (not left at their defaults)."""
    given = set()
    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            given.add(name)
    return given


def _warn_ignored(family: Family, cfg: Any, given: set[str]) -> None:
    """One warning line per option given that the chosen settings ignore."""
    by_name = {f.name: f for f in dataclasses.fields(family.config)}
    for name in sorted(given):
        f = by_name.get(name)
        when = f.metadata.get("when") if f is not None else None
        if f is None or when is None:
            continue
        field_, values = when
        if getattr(cfg, field_) not in values:
            other = _flag(by_name[field_])
            need = " or ".join(f"{other} {v}" for v in values)
            warn(f"{_flag(f)} is ignored: it applies only with {need}")


def _join(cfg: Any, run: dict[str, Any]) -> None:
    """Join a multi-host JAX run if any of its options were given."""
    keys = ("coordinator", "num_processes", "process_id")
    if not run.get("distributed") and all(run.get(k) is None for k in keys):
        return
    if cfg.backend != "jax":
        raise UserError(
            "--distributed, --coordinator, --num-processes and --process-id need --backend jax"
        )
    from .. import distributed

    distributed.initialize(*(run.get(k) for k in keys))


def _execute(family: Family, ctx: typer.Context, kw: dict[str, Any], run_names: set[str]) -> None:
    from .. import distributed

    run = {k: kw.pop(k) for k in list(kw) if k in run_names}
    given = _given(ctx, list(kw))
    for field_, message in family.deprecated.values():
        value = run.get(f"deprecated_{field_}")
        if value is not None:
            warn(message)
            kw[field_] = value
            given.add(field_)
    out: Path | None = run["out"]
    with one_line_errors(out, distributed.DistributedError, *family.error_types()):
        if run["resume"] and out is None:
            raise UserError("--resume needs --out, the directory of the run to continue")
        check_plot_path(run["plot"])
        check_log_every(run["log_every"])
        if not run.get("checkpoint_every", 0.0) >= 0:
            raise UserError(
                f"--checkpoint-every must be >= 0 seconds, got {run['checkpoint_every']}"
            )
        values = {}
        for f in dataclasses.fields(family.config):
            if f.name in kw:
                parse = f.metadata.get("parse")
                values[f.name] = parse(kw[f.name]) if parse else kw[f.name]
        cfg = family.make_config(values, given, run.get("preset"))
        _warn_ignored(family, cfg, given)
        if family.cluster:
            _join(cfg, run)
        options: dict[str, Any] = {"out": out, "resume": run["resume"]}
        if family.kind == "chains":
            options |= {"threads": run["threads"], "checkpoint_seconds": run["checkpoint_every"]}
            if run["cluster_address"] is not None:
                options["cluster"] = run["cluster_address"]
        writer = distributed.is_writer()
        result = drive(
            family.progress,
            family.iterate(cfg, **options),
            quiet=run["as_json"] or not writer,
            log_every=run["log_every"],
        )
        if not writer:
            return
        for message in result.summary.get("warnings") or ():
            warn(message)
        starved = result.summary.get("starved_generations")
        if starved:
            warn(f"the selection gave up in {starved} chain-generations (a verifier keeping "
                 "under one draw in 65536): their training sets are partly unselected")  # fmt: skip
        if run["plot"] is not None:
            try:
                family.draw(result, run["plot"])
            except OSError as err:
                raise UserError(f"cannot write {run['plot']}: {err.strerror or err}") from None
    text = json.dumps(result.summary, allow_nan=False)
    where = f" ({family.stored} too)" if family.stored else ""
    report(run["as_json"], text, family.table(result), out, run["plot"], where)


def report(
    as_json: bool, text: str, table: Any, out: Path | None, plot: Path | None, where: str = ""
) -> None:
    """Print the JSON summary, or the table and where the results and plot went."""
    from rich.console import Console

    if as_json:
        typer.echo(text)
        return
    console = Console()
    console.print(table)
    if out is not None:
        console.print(f"Results in [bold]{out}[/]{where}")
    if plot is not None:
        console.print(f"Plot in [bold]{plot}[/]")


def add_family(app: typer.Typer, family: Family) -> None:
    """Register ``collapsesim NAME`` for ``family``."""
    config = _config_options(family)
    run = _run_options(family)
    params = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    ]
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
        for name, ann, default in [*config, *run]
    ]
    run_names = {name for name, _, _ in run}

    def command(ctx: typer.Context, **kw: Any) -> None:
        _execute(family, ctx, kw, run_names)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = family.help
    command.__name__ = family.name
    app.command(name=family.name, help=reflow(family.help))(command)


def reflow(text: str) -> str:
    """Help text with each paragraph on one line (Rich wraps it to the terminal)."""
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))
