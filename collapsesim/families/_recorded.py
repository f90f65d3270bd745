"""The family side of the recorded-metric chains: their table, scan measure and figure.

The multivariate Gaussian, regression and KDE families store per-chain metrics and a
summary of the same shape (:mod:`collapsesim.experiments._recorded`); these three pieces
show any of them, given which metrics to show.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._family import ScanMeasure
from ._show import (
    NO_SE,
    NO_Z,
    Notes,
    cost_row,
    curation_title,
    fmt,
    frame,
    regime_label,
    regime_text,
    ztext,
)

__all__ = ["measure", "plot", "plot_regime", "table", "title"]


def title(s: dict[str, Any], what: str) -> str:
    """A table's title: chains, generations, the family's settings ``what``, regime, seed."""
    return (
        f"{s['chains']} chains x {s['generations']} generations, {what}, {regime_text(s)}, "
        f"seed {s['seed']} ({s.get('seconds', 0.0):.2f} s){curation_title(s)}"
    )


def table(result: Any, heading: str, rows: Sequence[tuple[str, str]]) -> Any:
    """The final generation's metrics beside theory and the original.

    Args:
        result: a finished run (its ``summary``).
        heading: the table's title.
        rows: ``(label, metric)`` of every row, in order.
    """
    s = result.summary
    out = frame(heading, ("final generation", "mean", "± s.e.", "median", "theory", "z",
                          "original"))  # fmt: skip
    notes = Notes()
    for label, name in rows:
        theory = s.get(f"theory_mean_final_{name}")
        why = s.get(f"why_theory_mean_final_{name}")
        z = s.get(f"z_mean_final_{name}")
        out.add_row(
            label,
            fmt(s.get(f"mean_final_{name}")),
            notes.cell(s.get(f"stderr_final_{name}"), NO_SE, 2),
            fmt(s.get(f"median_final_{name}")),
            notes.cell(theory, why),
            ztext(z) if z is not None else "—" + notes.mark(why if theory is None else NO_Z),
            fmt(s.get(f"original_{name}")),
        )
    for label, key, se in cost_row(s):
        out.add_row(label, fmt(s[key]), fmt(s.get(se), 2), "", "", "", "1")
    return notes.attach(out)


def measure(
    metric: str,
    theory_rate: Callable[[Any], float | None] | None = None,
    *,
    growth: bool = False,
) -> ScanMeasure:
    """A scan point's measure: the rate at which ``log(metric)`` decays per generation
    (``growth``: grows) from its value at the original, and the metric's final mean.

    ``theory_rate(cfg)`` gives the exact rate where there is one (None otherwise).
    """

    def measure_point(cfg: Any, result: Any) -> dict[str, Any]:
        from .. import metrics

        v = np.asarray(result.final[metric], np.float64)
        c, t = len(v), cfg.num_generations
        start = result.summary.get(f"original_{metric}")
        sign = -1.0 if growth else 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(v)
        if start is None or not start > 0:
            rate, se = math.nan, math.nan
        else:
            rate, se = metrics.decay_rate(math.log(start), logs, t)
            rate *= sign
        level_se = float(v.std(ddof=1) / math.sqrt(c)) if c > 1 else math.nan
        exact = theory_rate(cfg) if theory_rate is not None else None
        return {"rate": rate, "rate_se": se, "level": float(v.mean()), "level_se": level_se,
                "theory_rate": exact}  # fmt: skip

    return measure_point


def plot(result: Any, path: Path, panels: Sequence[tuple[str, str, bool]], heading: str) -> None:
    """Draw each panel's metric over generations; write a PNG.

    Every panel shows a few chains faintly, the median and the 5-95% band across chains,
    the mean, and the exact mean dashed where theory has it.

    Args:
        result: a finished run.
        path: the PNG file to write (atomically).
        panels: ``(metric, axis label, log scale)`` of each panel.
        heading: the figure's title.
    """
    from ..plots import plot_panels

    plot_panels(result, path, panels, heading)


def plot_regime(cfg: Any) -> str:
    """A figure title's regime, with its share of real data, and the seed: ``fresh (100 of
    1000 real), seed 0`` (the curation follows, from :func:`collapsesim.plots.plot_panels`)."""
    return f"{regime_label(cfg.regime, cfg.num_real, cfg.num_samples)}, seed {cfg.seed}"
