"""``collapsesim compare``: stored runs side by side on one metric, with a table and a figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import OUTPUT
from ._build import report
from ._errors import UserError, check_plot_path, one_line_errors

__all__ = ["add_compare", "compare_table"]

_HELP = """Compare stored runs on one metric: its mean over generations, its final values
and the differences between runs.

Give run directories (--out of any family; mixed families, regimes and curation operators
are fine). The table lists each run's final mean with its Monte Carlo standard error, its
median and its value at generation 0, and each run's difference from the first with the
difference's standard error and z-score: paired where both runs share a seed and store
every chain (their chains share draws), independent where their seeds differ. The legend
and the table name each run by the settings that set it apart."""


def compare_table(cmp: Any) -> Any:
    """The comparison as a Rich table: one row per run, then its difference from the first."""
    from ..families._show import fmt, frame, ztext

    common = cmp.common
    bits = [f"{k} {common[k]}" for k in ("family", "regime", "num_samples", "num_generations",
                                            "num_chains", "seed") if k in common]  # fmt: skip
    title = f"{cmp.metric} at the last generation" + (f" ({', '.join(bits)})" if bits else "")
    same_chains = len({e.chains for e in cmp.entries}) == 1
    columns = ["run", "settings", "chains", "mean", "± s.e.", "median", "t = 0", "diff.",
               "± s.e.", "z", "errors"]  # fmt: skip
    if same_chains:
        columns.remove("chains")
    out = frame(title, tuple(columns))
    out.columns[1].justify = "left"
    out.caption = ("diff.: the run's final mean minus the first run's; errors: paired (same "
                   "seed, the per-chain differences) or independent (different seeds)")  # fmt: skip
    diffs = {d.run: d for d in cmp.differences}
    notes: list[str] = []
    for i, e in enumerate(cmp.entries):
        d = diffs.get(i)
        mark = ""
        if d is not None and d.why is not None:
            if d.why not in notes:
                notes.append(d.why)
            mark = "¹²³⁴⁵⁶⁷⁸⁹"[notes.index(d.why)] if notes.index(d.why) < 9 else "*"
        if d is None:
            tail = ("reference", "", "", "")
        else:
            se = "—" + mark if d.stderr is None else fmt(d.stderr, 2)
            z = "—" + mark if d.z is None else ztext(d.z)
            tail = (fmt(d.value), se, z, d.method or "")
        out.add_row(
            str(e.directory),
            e.label,
            *([] if same_chains else [str(e.chains)]),
            fmt(e.final_mean),
            fmt(e.final_stderr, 2),
            fmt(e.final_median),
            fmt(e.start),
            *tail,
        )
    marks = "¹²³⁴⁵⁶⁷⁸⁹"
    out.caption = "\n".join(
        [out.caption, *(f"{marks[k] if k < 9 else '*'} {why}" for k, why in enumerate(notes))]
    )
    out.caption_justify = "left"
    return out


def add_compare(app: typer.Typer) -> None:
    """Register ``collapsesim compare``."""

    @app.command(name="compare", help=" ".join(_HELP.split("\n\n")[0].split()) + "\n\n"
                 + " ".join(_HELP.split("\n\n")[1].split()))  # fmt: skip
    def compare(
        directories: Annotated[
            list[Path], typer.Argument(help="Run directories; the first is the reference.")
        ],
        metric: Annotated[
            str | None,
            typer.Option(
                "--metric",
                help="A per-generation metric every run records "
                "(default: the first run's family's headline, e.g. gaussian's sigma).",
            ),
        ] = None,
        plot: Annotated[
            Path | None,
            typer.Option(
                "--plot",
                rich_help_panel=OUTPUT,
                help="Write a figure (PNG, PDF or "
                "SVG by the extension): the metric's mean, median and 5-95% band "
                "over generations, and the final means with 95% intervals.",
            ),
        ] = None,
        as_json: Annotated[
            bool,
            typer.Option(
                "--json",
                rich_help_panel=OUTPUT,
                help="Print one JSON object on stdout and nothing else.",
            ),
        ] = False,
    ) -> None:
        from .. import compare as comparing

        with one_line_errors(None, comparing.CompareError):
            check_plot_path(plot)
            for d in directories:
                if not d.is_dir():
                    raise UserError(f"{d} is not a directory (give run directories, --out)")
            result = comparing.compare(directories, metric)
            if plot is not None:
                from ..plots import plot_compare

                try:
                    plot_compare(result, plot)
                except OSError as err:
                    raise UserError(f"cannot write {plot}: {err.strerror or err}") from None
        text = json.dumps(result.to_dict(), allow_nan=False)
        report(as_json, text, compare_table(result), None, plot)
