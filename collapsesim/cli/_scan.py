"""``collapsesim scan FAMILY``: any chain family's collapse rate over a grid of parameters.

Its options are the chain families' configuration fields, each declared once (in the
family's configuration); a comma-separated list scans over a parameter the family
declares scannable, a single value fixes it.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import OUTPUT, RUN
from ..families import FAMILIES, Family
from ._build import CLUSTER_HELP, DASK, LOG_HELP, check_log_every, reflow, report
from ._errors import UserError, check_plot_path, one_line_errors
from ._progress import LOG_EVERY, drive

__all__ = ["add_scan", "scan_table"]

_DEFAULTS = {"num_generations": 200}  # a scan's points are shorter than a single run


def _scannable() -> list[Family]:
    return [f for f in FAMILIES.values() if f.kind == "chains" and f.measure is not None]


def _fields() -> dict[str, tuple[str, str, str, list[str]]]:
    """Field -> (flag, help, panel, families that have it), over the scannable families."""
    out: dict[str, tuple[str, str, str, list[str]]] = {}
    for family in _scannable():
        for f in dataclasses.fields(family.config):
            if not f.metadata.get("cli", False):
                continue
            flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
            if f.name in out:
                out[f.name][3].append(family.name)
            else:
                out[f.name] = (flag, f.metadata["help"], f.metadata["group"], [family.name])
    return out


def _option_help(help_: str, names: list[str]) -> str:
    where = "" if len(names) == len(_scannable()) else f"{', '.join(names)}: "
    return f"{where}{help_}"


def _value(text: str, kind: Any, flag: str) -> Any:
    """A single option value as its field's type (integers may be written 1e3)."""
    try:
        if kind is int:
            number = float(text)
            if number != int(number):
                raise ValueError
            return int(number)
        if kind is float:
            return float(text)
    except ValueError:
        raise UserError(
            f"{flag}: {text!r} is not {'an integer' if kind is int else 'a number'}"
        ) from None
    return text


def _execute(family_name: str, kw: dict[str, Any], fields: dict[str, Any]) -> None:
    from ..experiments import scan as scanner

    run = {k: kw.pop(k) for k in ("threads", "cluster", "out", "resume", "plot", "as_json",
                                  "log_every")}  # fmt: skip
    out: Path | None = run["out"]
    with one_line_errors(out, scanner.ScanError):
        if family_name not in FAMILIES or FAMILIES[family_name] not in _scannable():
            known = " | ".join(f.name for f in _scannable())
            raise UserError(f"unknown family {family_name!r}; choose {known}")
        family = FAMILIES[family_name]
        if run["resume"] and out is None:
            raise UserError("--resume needs --out, the directory of the scan to continue")
        check_plot_path(run["plot"])
        check_log_every(run["log_every"])
        hints = typing.get_type_hints(family.config)
        names = {f.name for f in dataclasses.fields(family.config)}
        base: dict[str, Any] = {k: v for k, v in _DEFAULTS.items() if k in names}
        specs: dict[str, str] = {}
        scan_of = {v: k for k, v in family.scan.items()}
        for name, text in kw.items():
            if text is None:
                continue
            flag = fields[name][0]
            if name not in names:
                raise UserError(f"{flag} does not apply to {family.name}")
            if "," in text and name in scan_of:
                specs[scan_of[name]] = text
            elif "," in text:
                raise UserError(
                    f"cannot scan {flag} for {family.name}; choose from "
                    + ", ".join(f"--{k}" for k in family.scan)
                )
            else:
                base[name] = _value(text, hints[name], flag)
        grid = scanner.parse_grid(family.name, specs)
        steps = scanner.iterate(family.name, base, grid, out=out, resume=run["resume"],
                                threads=run["threads"], cluster=run["cluster"])  # fmt: skip
        result = drive("scan", steps, quiet=run["as_json"], log_every=run["log_every"])
        if run["plot"] is not None:
            from ..plots import plot_scan

            plot_scan(result, run["plot"])
    report(run["as_json"], scanner.to_json(result), scan_table(result), out, run["plot"])


def scan_table(res: Any) -> Any:
    """The scan's points: rate with its 95% interval beside theory, level; the power law."""
    from rich.table import Table

    from ..families._show import Notes, fmt

    names = [name for name, _ in res.grid]
    table = Table(title=f"{res.family} scan over {', '.join(names)}", title_justify="left")
    for col in [*names, "rate", "95% interval", "theory rate", "level", "± s.e.", "theory level"]:
        table.add_column(col, justify="right")
    notes = Notes()
    for row in res.rows:
        why = row.get("why_rate")
        rate = notes.cell(row["rate"], why)
        if row["rate"] is not None and row.get("rate_note"):
            rate += notes.mark(row["rate_note"])
        interval = (
            f"[{fmt(row['rate_lo'], 3)}, {fmt(row['rate_hi'], 3)}]"
            if row["rate_lo"] is not None
            else "—" + notes.mark(why)
        )
        table.add_row(
            *(f"{row[n]:g}" for n in names),
            rate,
            interval,
            notes.cell(row["theory_rate"], row.get("why_theory_rate")),
            fmt(row["level"]),
            fmt(row["level_se"], 2),
            notes.cell(row.get("theory_level"), row.get("why_theory_level")),
        )
    lines = []
    for fit in res.fits:
        if fit.get("exponent") is None:
            continue
        where = ", ".join(f"{k} {fit[k]:g}" for k in names if k != "samples")
        theory = fit.get("theory_exponent")
        lines.append(
            f"rate ~ n^b{' at ' + where if where else ''}: b = {fit['exponent']:.3f} "
            f"[{fit['exponent_lo']:.3f}, {fit['exponent_hi']:.3f}]"
            + (f"; theory {theory:.3f}" if theory is not None else "")
        )
    for line in lines:
        notes.note(line)
    return notes.attach(table)


def add_scan(app: typer.Typer) -> None:
    """Register ``collapsesim scan``, with every scannable family's fields as options."""
    fields = _fields()
    families = " | ".join(f.name for f in _scannable())
    params = [
        inspect.Parameter(
            "family",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[str, typer.Argument(help=families)],
        )
    ]
    for name, (flag, help_, group, names) in fields.items():
        scans = [f.name for f in _scannable() if name in f.scan.values()]
        text = _option_help(help_, names)
        if scans:
            text += f" A comma-separated list scans over it ({', '.join(scans)})."
        if name in _DEFAULTS:
            text += f" \\[default: {_DEFAULTS[name]}]"
        ann = Annotated[str | None, typer.Option(flag, help=text, rich_help_panel=group)]
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=ann))  # fmt: skip
    shared: list[tuple[str, Any, Any]] = [
        ("threads", Annotated[int | None, typer.Option("--threads", rich_help_panel=RUN,
         help="Numba threads (default: all cores). Results do not depend on it.")], None),
        ("cluster", Annotated[str | None, typer.Option("--cluster", rich_help_panel=DASK,
         help=CLUSTER_HELP + " The points run one after another, each on the whole "
         "cluster.")], None),
        ("out", Annotated[Path | None, typer.Option("--out", rich_help_panel=OUTPUT,
         help="Scan directory: a Parquet per point, summary.parquet, scan.json.")], None),
        ("resume", Annotated[bool, typer.Option("--resume", rich_help_panel=OUTPUT,
         help="Continue the scan in --out, skipping finished points.")], False),
        ("plot", Annotated[Path | None, typer.Option("--plot", rich_help_panel=OUTPUT,
         help="Write a figure (PNG, PDF or SVG by the extension): rate against n on log-log axes with theory, and the level "
         "against the real-data share.")], None),
        ("as_json", Annotated[bool, typer.Option("--json", rich_help_panel=OUTPUT,
         help="Print one JSON object on stdout and nothing else.")], False),
        ("log_every", Annotated[float, typer.Option("--log-every", rich_help_panel=OUTPUT,
         help=LOG_HELP)], LOG_EVERY),
    ]  # fmt: skip
    params += [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
        for n, a, d in shared
    ]

    def scan(family: str, **kw: Any) -> None:
        _execute(family, kw, fields)

    scan.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    scan.__annotations__ = {p.name: p.annotation for p in params}
    scan.__doc__ = """Scan the collapse rate over a grid of one or two parameters.

Each family measures a rate with a 95% interval and a level at the last generation:
gaussian the rate -dE\\[log sigma]/dt and the mean std; tokens the rate -d log E\\[H]/dt
of the heterozygosity H = 1 - sum p^2 and the mean H; mixture the rate of the log
component std and its mean; mvgaussian -dE\\[log det Sigma]/dt / 2d and the trace ratio;
regression the risk gained per generation and the final risk; kde the decay of the log
number of ancestors and its mean. Over n a power law rate ~ n^b is fitted (theory: b = -1).

Options not given take the family's defaults (see collapsesim FAMILY --help), except
--generations (200 here)."""
    app.command(name="scan", help=reflow(scan.__doc__))(scan)
