"""Figures (matplotlib, PNG) of finished runs."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import store, theory

if TYPE_CHECKING:
    from .experiments.gaussian import GaussianResult

__all__ = ["plot_gaussian"]

_SHOWN_CHAINS = 8


def plot_gaussian(result: GaussianResult, path: Path) -> None:
    """Draw sigma over generations and the histogram of final log sigma; write a PNG.

    Left: a few chains, the median and the 5-95% band across chains, and the exact
    E[sigma_t] where theory exists, on a log scale. Right: the histogram of
    log sigma_T with the exact mean (and the normal density of the exact mean and
    spread, which log sigma_T approaches as a sum of T independent increments).

    Args:
        result: a finished Gaussian run.
        path: the PNG file to write (atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = result.config
    gens = result.generations
    agg = result.aggregates["sigma"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)

    traj = result.trajectories["sigma"][:_SHOWN_CHAINS]
    for i, row in enumerate(traj):
        ax.plot(
            gens, row, lw=0.7, alpha=0.6, color="0.55", label="single chains" if i == 0 else None
        )
    ax.fill_between(
        gens, agg["q05"], agg["q95"], color="tab:blue", alpha=0.2, label="5-95% of chains"
    )
    ax.plot(gens, agg["q50"], color="tab:blue", lw=1.8, label="median")
    ax.plot(gens, agg["mean"], color="tab:orange", lw=1.4, label="mean")
    with contextlib.suppress(theory.NoClosedForm):
        ax.plot(
            gens,
            theory.moment_std(1, gens, cfg.num_samples, cfg.ddof, cfg.sigma0, cfg.regime),
            "k--",
            lw=1.2,
            label="exact E[sigma_t]",
        )
    ax.set_yscale("log")
    ax.set_xlabel("generation t")
    ax.set_ylabel("fitted std sigma_t")
    ax.set_title(f"{cfg.regime}, n = {cfg.num_samples}, ddof {cfg.ddof}, {cfg.num_chains} chains")
    ax.legend(loc="lower left", fontsize="small")

    final = result.final["log_sigma"]
    finite = final[np.isfinite(final)]
    bx.hist(
        finite,
        bins=max(10, min(100, int(math.sqrt(len(finite))))),
        density=True,
        color="tab:blue",
        alpha=0.6,
        label=f"{len(finite)} chains",
    )
    try:
        mean = float(
            theory.mean_log_std(
                cfg.num_generations, cfg.num_samples, cfg.ddof, cfg.sigma0, cfg.regime
            )
        )
        sd = float(theory.std_log_std(cfg.num_generations, cfg.num_samples, cfg.ddof, cfg.regime))
        bx.axvline(mean, color="k", ls="--", lw=1.2, label="exact E[log sigma_T]")
        if sd > 0:
            x = np.linspace(mean - 4 * sd, mean + 4 * sd, 200)
            bx.plot(
                x,
                np.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi)),
                "k:",
                lw=1,
                label="normal, exact mean and sd",
            )
    except theory.NoClosedForm:
        pass
    bx.set_xlabel(f"log sigma at generation T = {cfg.num_generations}")
    bx.set_ylabel("density")
    bx.set_title("final log std across chains")
    bx.legend(fontsize="small")

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png", dpi=120)

    try:
        store.atomic_write(Path(path), write)
    finally:
        plt.close(fig)
