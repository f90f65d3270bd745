"""The Gaussian family: fit N(mu, sigma^2) to n samples, draw n from the fit, repeat."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .. import metrics, theory
from ..config import GaussianConfig
from ._family import Family
from ._show import fmt, frame, ztext

__all__ = ["FAMILY", "GaussianConfig", "measure", "table"]


def table(result: Any) -> Any:
    """The final generation's statistics beside their exact values, with z-scores."""
    s = result.summary
    title = (
        f"{s['chains']} chains x {s['generations']} generations, n = {s['samples']}, "
        f"ddof {s['ddof']}, {s['regime']}, {s['method']}, seed {s['seed']} ({s['seconds']:.2f} s)"
    )
    out = frame(title, ("final generation", "simulation", "± s.e.", "theory", "z"))
    rows = [  # label, value key, standard-error key; theory_KEY and z_KEY beside them
        ("mean std", "mean_final_std", "stderr_final_std"),
        ("median std", "median_final_std", "stderr_median_final_std"),
        ("5% quantile std", "q05_final_std", "stderr_q05_final_std"),
        ("95% quantile std", "q95_final_std", "stderr_q95_final_std"),
        ("mean log std", "mean_log_final_std", "stderr_log_final_std"),
        ("collapse rate -dE\\[log std]/dT", "collapse_rate", "stderr_collapse_rate"),
        ("variance of the mean", "var_final_mean", "stderr_var_final_mean"),
        ("mean W2 to the original", "mean_final_w2", ""),
        ("mean mass beyond 3 sigma0", "mean_final_tail_mass", ""),
    ]
    for label, key, se in rows:
        out.add_row(
            label,
            fmt(s[key]),
            fmt(s.get(se), 2),
            fmt(s.get(f"theory_{key}")),
            ztext(s.get(f"z_{key}")),
        )
    return out


def measure(cfg: GaussianConfig, result: Any) -> dict[str, Any]:
    """A scan point: the rate -dE[log sigma]/dT, the level E[sigma_T] and the exact rate."""
    c = cfg.num_chains
    rate, se = metrics.decay_rate(
        math.log(cfg.sigma0), result.final["log_sigma"], cfg.num_generations
    )
    sig = result.final["sigma"]
    level_se = float(sig.std(ddof=1) / math.sqrt(c)) if c > 1 else math.nan
    try:
        exact = theory.collapse_rate(cfg.num_samples, cfg.ddof, cfg.regime)
    except theory.NoClosedForm:
        exact = None
    return {"rate": rate, "rate_se": se, "level": float(sig.mean()), "level_se": level_se,
            "theory_rate": exact}  # fmt: skip


def _plot(result: Any, path: Path) -> None:
    from ..plots import plot_gaussian

    plot_gaussian(result, path)


FAMILY = Family(
    name="gaussian",
    config=GaussianConfig,
    runner="collapsesim.experiments.gaussian",
    help="""Run the Gaussian chain: fit N(mu, sigma^2) to n samples, draw n from the fit, repeat.

With no options this is the 1000 x 1000 experiment: 1000 chains of 1000 generations
with n = 1000, whose std collapses (E\\[sigma_1000] = 0.4721 exactly for the MLE fit).""",
    kind="chains",
    table=table,
    plot=_plot,
    plot_help="sigma over generations and the histogram of final log sigma",
    scan={
        "samples": "num_samples",
        "fresh-fraction": "fresh_fraction",
        "keep-fraction": "keep_fraction",
        "ddof": "ddof",
    },
    measure=measure,
    cluster=True,
)
