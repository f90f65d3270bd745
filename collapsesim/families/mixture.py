"""The Gaussian-mixture family: fit K components by EM to n samples, sample, refit."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from ..config import ORIGINALS, PRESETS, ConfigError, MixtureConfig, load_original
from ._family import Family
from ._show import fmt, frame

__all__ = ["FAMILY", "MixtureConfig", "measure", "prepare", "table"]


def table(result: Any) -> Any:
    """Component scales, distances and tails at the final generation beside the original's."""
    s = result.summary
    title = (
        f"{s['chains']} chains x {s['generations']} generations, n = {s['samples']}, "
        f"K = {s['components']}, d = {s['dim']}, {s['covariance']}, {s['init']}, "
        f"{s['regime']}, original {s['original']}, seed {s['seed']} ({s['seconds']:.2f} s)"
    )
    out = frame(title, ("final generation", "mean", "± s.e.", "median", "original"))
    rows = [
        ("component std det(C)^(1/2d)", "component_std", s["original_component_std"]),
        ("smallest component std", "min_component_std", None),
        ("L2 distance to the original", "l2", 0.0),
        ("held-out log-likelihood", "heldout_loglik", s["original_heldout_loglik"]),
        ("mass beyond the original's 3 sigma", "tail_mass", s["original_tail_mass"]),
    ]
    for label, key, ref in rows:
        out.add_row(
            label,
            fmt(s[f"mean_final_{key}"]),
            fmt(s[f"stderr_final_{key}"], 2),
            fmt(s[f"median_final_{key}"]),
            fmt(ref),
        )
    out.add_row("EM iterations per fit (all fits)", fmt(s["mean_em_iterations"]), "", "", "")
    out.add_row("fits not converged", fmt(s["nonconverged_fraction"]), "", "", "")
    return out


def measure(cfg: MixtureConfig, result: Any) -> dict[str, Any]:
    """A scan point: the decay rate of log component std and its final mean (no theory)."""
    c = cfg.num_chains
    std = result.final["component_std"]
    start = float(result.summary["original_component_std"])
    rate, se = metrics.decay_rate(math.log(start), np.log(std), cfg.num_generations)
    level_se = float(std.std(ddof=1) / math.sqrt(c)) if c > 1 else math.nan
    return {"rate": rate, "rate_se": se, "level": float(std.mean()), "level_se": level_se,
            "theory_rate": None}  # fmt: skip


def prepare(values: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """Read an ``--original`` JSON file into the mixture's parameters (and its dimension)."""
    name = values["original"]
    if name in ORIGINALS:
        return values
    path = Path(name)
    if not path.is_file():
        raise ConfigError(
            f"--original {name!r} is neither a named mixture ({', '.join(ORIGINALS)}) nor a file"
        )
    w0, m0, c0 = load_original(path)
    if "dim" not in given:
        values = {**values, "dim": m0.shape[1]}
    return {**values, "weights0": w0.tolist(), "means0": m0.tolist(), "covs0": c0.tolist()}


def _plot(result: Any, path: Path) -> None:
    from ..plots import plot_mixture

    plot_mixture(result, path)


FAMILY = Family(
    name="mixture",
    config=MixtureConfig,
    runner="collapsesim.experiments.mixture",
    help="""Run the Gaussian-mixture chain: fit K components by EM to n samples, sample, refit.

With no options this is the setting of Shumailov et al. (Nature 2024): d = 2, K = 2,
the original N(0, I), n = 1000, 2000 generations, here over 100 chains.""",
    kind="chains",
    table=table,
    plot=_plot,
    plot_help="component scales and L2 distance over generations, and samples of chain 0 "
    "at a few generations",
    presets=PRESETS,
    preset_help="[b]nature-2024[/]: Shumailov et al.'s d = 2, K = 2, N(0, I), n = 1000, "
    "2000 generations; [b]nature-2024-keep10[/]: the same keeping 10% of the original data.",
    scan={
        "samples": "num_samples",
        "fresh-fraction": "fresh_fraction",
        "keep-fraction": "keep_fraction",
        "components": "num_components",
    },
    measure=measure,
    prepare=prepare,
)
