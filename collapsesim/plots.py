"""Figures (matplotlib: PNG, PDF or SVG by the file's extension) of finished runs."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import store, theory
from .families._show import regime_label, regime_text
from .regimes import theory_regime

if TYPE_CHECKING:
    from .experiments.gaussian import GaussianResult
    from .experiments.mixture import MixtureResult
    from .experiments.tokens import TokenResult

__all__ = ["FORMATS", "plot_compare", "plot_gaussian", "plot_lm", "plot_mixture", "plot_panels",
           "plot_scan", "plot_tokens", "plot_vae", "write_figure"]  # fmt: skip

_SHOWN_CHAINS = 8


def plot_gaussian(result: GaussianResult, path: Path) -> None:
    """Draw sigma over generations and the histogram of final log sigma; write a figure.

    Left: a few chains, the median and the 5-95% band across chains, and the exact
    E[sigma_t] where theory exists, on a log scale. Right: the histogram of
    log sigma_T with the exact mean (and the normal density of the exact mean and
    spread, which log sigma_T approaches as a sum of T independent increments).

    Args:
        result: a finished Gaussian run.
        path: the figure file to write (atomically): PNG, PDF or SVG by its extension.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .curation import Curation

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
    regime = theory_regime(cfg.regime, cfg.num_real)
    plain = not Curation.of(cfg).active
    with contextlib.suppress(theory.NoClosedForm):
        if plain:
            ax.plot(
                gens,
                theory.moment_std(1, gens, cfg.num_samples, cfg.ddof, cfg.sigma0, regime),
                "k--",
                lw=1.2,
                label="exact E[sigma_t]",
            )
            # The exact median and 5-95% quantiles, at up to 40 generations.
            at = np.unique(np.linspace(0, len(gens) - 1, min(len(gens), 40)).round().astype(int))
            at = at[gens[at] > 0]
            qs = np.array([theory.quantile_std(np.array([0.05, 0.5, 0.95]), int(gens[j]),
                                               cfg.num_samples, cfg.ddof, cfg.sigma0,
                                               regime)[0] for j in at])  # fmt: skip
            if len(at):
                x = np.concatenate([[0], gens[at]])
                q = np.vstack([np.full(3, cfg.sigma0), qs])
                ax.plot(x, q[:, 1], color="k", ls="-.", lw=1.0, label="exact median")
                ax.plot(x, q[:, 0], color="k", ls=":", lw=1.0, label="exact 5% and 95%")
                ax.plot(x, q[:, 2], color="k", ls=":", lw=1.0)
    ax.axhline(cfg.sigma0, color="0.4", ls=(0, (1, 3)), lw=1, label="original sigma0")
    ax.set_yscale("log")
    _generation_axis(ax, gens, log=False)
    ax.set_ylabel("fitted std sigma_t")
    ax.set_title(f"sigma across chains (ddof {cfg.ddof})")
    ax.legend(loc="lower left", fontsize="small")
    fig.suptitle(_settings(cfg), fontsize="medium")

    _final_log_sigma(bx, result)
    write_figure(fig, path)


def _final_log_sigma(bx: Any, result: GaussianResult) -> None:
    """The histogram of final log sigma across chains, with the exact mean and spread."""
    from .curation import Curation

    cfg = result.config
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
        if Curation.of(cfg).active:
            raise theory.NoClosedForm("curated")  # the plain closed forms do not apply
        regime = theory_regime(cfg.regime, cfg.num_real)
        mean = float(
            theory.mean_log_std(cfg.num_generations, cfg.num_samples, cfg.ddof, cfg.sigma0, regime)
        )
        sd = float(theory.std_log_std(cfg.num_generations, cfg.num_samples, cfg.ddof, regime))
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


FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
"""The figure formats, by the file's extension."""

# No creation date in the file: the same run draws the same bytes.
_METADATA: dict[str, dict[str, Any]] = {"png": {}, "pdf": {"CreationDate": None},
                                        "svg": {"Date": None}}  # fmt: skip


def write_figure(fig: Any, path: Path) -> None:
    """Write ``fig`` atomically to ``path`` as PNG, PDF or SVG, by its extension."""
    import matplotlib.pyplot as plt

    form = FORMATS.get(Path(path).suffix.lower(), "png")

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format=form, dpi=120, metadata=_METADATA[form])

    try:
        store.atomic_write(Path(path), write)
    finally:
        plt.close(fig)


def _band(ax: Any, gens: np.ndarray, agg: dict[str, np.ndarray], color: str, label: str) -> None:
    ax.fill_between(gens, agg["q05"], agg["q95"], color=color, alpha=0.2, label=f"{label}: 5-95%")
    ax.plot(gens, agg["q50"], color=color, lw=1.8, label=f"{label}: median")


def plot_mixture(result: MixtureResult, path: Path) -> None:
    """Draw component scales and the L2 distance over generations, and samples; write a figure.

    Left: the weight-averaged component scale ``det(C)^(1/2d)`` across chains (median
    and 5-95% band), each component's scale in a few kept chains, and the original's.
    Middle: the L2 distance to the original and the mass beyond its 3-sigma region.
    Right: 1000 points drawn from chain 0's fitted mixture at four generations (the
    first two coordinates; a histogram for d = 1), over the original's 3-sigma region.

    Args:
        result: a finished mixture run.
        path: the figure file to write (atomically): PNG, PDF or SVG by its extension.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .experiments.mixture import component_scales

    cfg = result.config
    gens = result.generations
    s = result.summary
    fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(17, 5), constrained_layout=True)

    _band(ax, gens, result.aggregates["component_std"], "tab:blue", "weighted mean")
    comp = result.components
    shown = min(_SHOWN_CHAINS // 2, comp["weights"].shape[0])
    for i in range(shown):
        scales = component_scales(comp["covs"][i])  # (R, K)
        for k in range(scales.shape[1]):
            ax.plot(
                gens,
                scales[:, k],
                lw=0.6,
                alpha=0.6,
                color="0.5",
                label="components of single chains" if i == 0 and k == 0 else None,
            )
    ax.axhline(s["original_component_std"], color="k", ls="--", lw=1, label="original")
    ax.set_yscale("log")
    _generation_axis(ax, gens, log=False)
    ax.set_ylabel("component std det(C)^(1/2d)")
    ax.set_title("component scales across chains")
    ax.legend(loc="lower left", fontsize="small")

    _band(bx, gens, result.aggregates["l2"], "tab:red", "L2 to the original")
    bx.set_yscale("log")
    _generation_axis(bx, gens, log=False)
    bx.set_ylabel("L2 distance between densities")
    tx = bx.twinx()
    tail = result.aggregates["tail_mass"]
    tx.plot(gens, tail["mean"], color="tab:green", lw=1.2, label="tail mass: mean")
    tx.plot(gens, tail["q50"], color="tab:green", lw=1.2, ls="--", label="tail mass: median")
    tx.axhline(s["original_tail_mass"], color="tab:green", ls=":", lw=1,
               label="tail mass: original")  # fmt: skip
    tx.set_ylabel("mass beyond the original's 3 sigma (green)")
    bx.set_title("distance to the original, and its tails")
    handles = bx.get_legend_handles_labels()[0] + tx.get_legend_handles_labels()[0]
    bx.legend(handles=handles, loc="upper left", fontsize="small")
    fig.suptitle(f"K = {cfg.num_components}, d = {cfg.dim}, {cfg.covariance}, original "
                 f"{cfg.original}, init {cfg.init}: " + _settings(cfg), fontsize="medium")  # fmt: skip

    _mixture_samples(cx, result, shown, plt)
    write_figure(fig, path)


def plot_panels(
    result: Any, path: Path, panels: Sequence[tuple[str, str, bool]], heading: str
) -> None:
    """Draw each panel's metric over generations, theory beside; write a figure.

    Every panel: a few kept chains faintly, the 5-95% band and median across chains, the
    mean, and the exact mean (``result.theory``) dashed where there is one. Values that
    are not positive are left out of a log-scaled panel.

    Args:
        result: a finished recorded-metric run (its ``aggregates``, ``trajectories`` and
            ``theory``).
        path: the figure file to write (atomically): PNG, PDF or SVG by its extension.
        panels: ``(metric, axis label, log scale)`` of each panel, in order.
        heading: the figure's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gens = result.generations
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 4.2 * rows), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    for k, (name, label, log) in enumerate(panels):
        ax = axes[k // cols][k % cols]
        for i, row in enumerate(result.trajectories[name][:_SHOWN_CHAINS]):
            ax.plot(gens, row, lw=0.6, alpha=0.5, color="0.6",
                    label="single chains" if i == 0 else None)  # fmt: skip
        agg = result.aggregates[name]
        _band(ax, gens, agg, "tab:blue", "chains")
        ax.plot(gens, agg["mean"], color="tab:orange", lw=1.3, label="mean")
        if name in result.theory:
            ax.plot(gens, result.theory[name], "k--", lw=1.2, label="exact mean")
        shown = np.concatenate([agg["q05"], agg["q95"]])
        shown = shown[np.isfinite(shown) & (shown > 0)]
        if log and shown.size and shown.max() > shown.min() * (1 + 1e-9):
            ax.set_yscale("log")  # a constant (a fixed bandwidth) stays on a linear axis
        original = result.summary.get(f"original_{name}")
        drawable = original is not None and math.isfinite(original)
        if drawable and (original > 0 or ax.get_yscale() != "log"):
            ax.axhline(original, color="0.4", ls=":", lw=1, label="original")
        _generation_axis(ax, gens, log=False)
        ax.set_ylabel(label)
        ax.legend(fontsize="x-small", loc="best")
    for k in range(len(panels), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    fig.suptitle(heading + _curated(result.config), fontsize="medium")
    write_figure(fig, path)


def _mixture_samples(cx: Any, result: MixtureResult, shown: int, plt: Any) -> None:
    """1000 points of chain 0's fit at four generations over the original's 3-sigma region."""
    from .kernels.mixture import sample_mixture

    cfg = result.config
    gens = result.generations
    comp = result.components
    w0, m0, c0 = cfg.original_params()
    if shown:
        picks = sorted({0, len(gens) // 10, len(gens) // 2, len(gens) - 1})
        colors = _distinct(plt, len(picks))
        for col, j in zip(colors, picks, strict=True):
            pts = sample_mixture(
                comp["weights"][0, j], comp["means"][0, j], comp["covs"][0, j], 1000, cfg.seed, j
            )
            label = f"t = {gens[j]}"
            if cfg.dim == 1:
                cx.hist(pts[:, 0], bins=60, density=True, histtype="step", color=col, label=label)
            else:
                cx.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.5, color=col, label=label)
        if cfg.dim == 1:  # the original's density
            lo = float(np.min(m0[:, 0] - 4 * np.sqrt(c0[:, 0, 0])))
            hi = float(np.max(m0[:, 0] + 4 * np.sqrt(c0[:, 0, 0])))
            x = np.linspace(lo, hi, 400)
            dens = sum(w * np.exp(-0.5 * (x - m[0]) ** 2 / c[0, 0]) / math.sqrt(2 * math.pi * c[0, 0])
                       for w, m, c in zip(w0, m0, c0, strict=True))  # fmt: skip
            cx.plot(x, dens, "k--", lw=1.2, label="original density")
            cx.set_ylabel("density")
        if cfg.dim >= 2:
            theta = np.linspace(0, 2 * math.pi, 200)
            circle = 3 * np.stack([np.cos(theta), np.sin(theta)])
            for j in range(len(w0)):
                chol = np.linalg.cholesky(c0[j][:2, :2])
                ring = m0[j][:2, None] + chol @ circle
                cx.plot(
                    ring[0], ring[1], "k--", lw=0.8, label="original 3 sigma" if j == 0 else None
                )
            cx.set_aspect("equal", adjustable="datalim")
            cx.set_ylabel("x_2")
        cx.set_xlabel("x_1")
        cx.legend(fontsize="small", markerscale=3)
        cx.set_title("samples of chain 0's fit")
    else:
        cx.text(0.5, 0.5, "no chain kept (--keep-chains 0)", ha="center", transform=cx.transAxes)
        cx.set_axis_off()


def plot_tokens(result: TokenResult, path: Path) -> None:
    """Draw the token chains' collapse; write a figure.

    Four panels: chain 0's distribution at several generations sorted by probability, on
    log-log axes (the tail being eaten; a chain fixed on one category is its marked point
    at rank 1); then across chains, over generations, the heterozygosity 1 - sum p^2 (the
    quantity with exact theory under replace), the support size and the entropy: median,
    5-95% band and mean, the exact mean dashed where there is one, the original's value
    dotted. The collapse happens early in a long run, so a run of 50 generations or more
    has a logarithmic generation axis (linear up to 1).

    Args:
        result: a finished token run.
        path: the figure file to write (atomically): PNG, PDF or SVG by its extension.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = result.config
    gens = result.generations
    fig, axes = plt.subplots(2, 2, figsize=(13, 9), constrained_layout=True)
    ax, hx, sx, ex = axes.ravel()
    colors = _distinct(plt, len(result.snapshot_generations))
    snaps = list(zip(colors, result.snapshot_generations, result.snapshots, strict=True))
    for k, (col, g, p) in enumerate(snaps):
        ranked = np.sort(p[p > 0])[::-1]
        ranks = np.arange(1, len(ranked) + 1)
        few = len(ranked) <= 3  # a fixed (or nearly fixed) chain: a point, not a line
        # Hollow rings, smaller for later snapshots: a fixed chain's point at rank 1 stays
        # visible inside the next one's.
        ax.loglog(ranks, ranked, color=col, lw=1.4, marker="o" if few else None,
                  ms=6 + 2.5 * (len(snaps) - k), mfc="none", mew=1.6,
                  label=f"t = {g}" + (" (fixed)" if len(ranked) == 1 else ""))  # fmt: skip
    ax.set_xlabel("rank")
    ax.set_ylabel("probability")
    ax.set_title(f"chain 0: rank-frequency, K = {cfg.categories}")
    ax.legend(fontsize="small")

    from .curation import Curation

    curated = Curation.of(cfg).active
    regime = theory_regime(cfg.regime, cfg.num_real)
    exact: dict[str, np.ndarray] = {}
    with contextlib.suppress(theory.NoClosedForm, ValueError):
        exact["heterozygosity"] = theory.token_heterozygosity(
            gens, cfg.num_samples, cfg.p0(), regime, cfg.smoothing, cfg.transformed or curated
        )
    if cfg.wright_fisher:
        with contextlib.suppress(theory.NoClosedForm, ValueError):
            exact["support"], _ = theory.token_support_fixation(gens, cfg.num_samples, cfg.p0())
    p0 = cfg.p0()
    start = {
        "heterozygosity": float(1.0 - np.sum(p0 * p0)),
        "support": float(np.count_nonzero(p0)),
        "entropy": float(-np.sum(p0[p0 > 0] * np.log(p0[p0 > 0]))),
    }
    panels = (
        (hx, "heterozygosity", "heterozygosity 1 - sum p^2", False),
        (sx, "support", "categories alive (support)", True),
        (ex, "entropy", "entropy (nats)", False),
    )
    for axis, name, label, log in panels:
        agg = result.aggregates[name]
        _band(axis, gens, agg, "tab:blue", "chains")
        axis.plot(gens, agg["mean"], color="tab:orange", lw=1.3, label="mean")
        if name in exact:
            axis.plot(gens, exact[name], "k--", lw=1.2, label="exact mean")
        axis.axhline(start[name], color="0.4", ls=":", lw=1, label="original")
        if log:
            axis.set_yscale("log")
        _generation_axis(axis, gens)
        axis.set_ylabel(label)
        axis.legend(fontsize="x-small", loc="best")
    hx.set_title("heterozygosity across chains")
    sx.set_title("support across chains")
    ex.set_title("entropy across chains")
    fig.suptitle(_settings(cfg), fontsize="medium")
    write_figure(fig, path)


def _distinct(plt: Any, k: int) -> Any:
    """``k`` colours far apart, dark to light, so that neighbouring lines stay apart."""
    if k <= 10:
        return plt.cm.tab10(np.arange(k))
    return plt.cm.viridis(np.linspace(0, 0.92, k))


def _generation_axis(ax: Any, gens: np.ndarray, *, log: bool = True) -> None:
    """Integer generation ticks; with ``log``, logarithmic beyond 1 for a run of 50
    generations or more (where the collapse happens in the first few percent of them)."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("generation t")
    if log and len(gens) and gens[-1] >= 50:
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.4)
        ax.set_xlim(0, gens[-1])
        ax.set_xlabel("generation t (logarithmic beyond 1)")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(gens) and gens[-1] > 0:
            ax.set_xlim(-0.02 * gens[-1], gens[-1] * 1.02)


def _settings(cfg: Any) -> str:
    """A figure's title: the run's size, its regime with its share of real data, the
    decoding (tau, top-k, top-p, smoothing) and the curation."""
    parts = [f"{cfg.num_chains} chains x {cfg.num_generations} generations",
             f"n = {cfg.num_samples}"]  # fmt: skip
    parts.append(regime_label(cfg.regime, getattr(cfg, "num_real", 0), cfg.num_samples))
    if getattr(cfg, "temperature", 1.0) != 1.0:
        parts.append(f"tau {cfg.temperature:g}")
    if getattr(cfg, "top_k", 0):
        parts.append(f"top-k {cfg.top_k}")
    if getattr(cfg, "top_p", 1.0) < 1.0:
        parts.append(f"top-p {cfg.top_p:g}")
    if getattr(cfg, "smoothing", 0.0):
        parts.append(f"eps {cfg.smoothing:g}")
    parts.append(f"seed {cfg.seed}")
    return ", ".join(parts) + _curated(cfg)


def _curated(cfg: Any) -> str:
    """``; curation: ...`` for a figure's title, where the run had curation."""
    from .curation import Curation

    cur = Curation.of(cfg)
    return f"; {cur.describe()}" if cur.active else ""


def _by_rest(rows: list[dict[str, Any]], names: list[str], axis: str) -> dict[Any, Any]:
    """Scan rows grouped by the grid's other axes."""
    rest = [n for n in names if n != axis]
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[o] for o in rest), []).append(row)
    return groups


def _column(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else r[key] for r in rows], float)


def _n_axis(axis: Any, rows: list[dict[str, Any]]) -> None:
    """A logarithmic axis of sample sizes, ticked at the scanned values."""
    from matplotlib.ticker import NullFormatter

    ns = sorted({float(r["samples"]) for r in rows})
    axis.set_xscale("log")
    axis.set_xticks(ns, [f"{v:g}" for v in ns])
    axis.xaxis.set_minor_formatter(NullFormatter())


def plot_scan(res: Any, path: Path) -> None:
    """Draw a scan's collapse rates and levels; write a figure.

    Over n: the rate against n on log-log axes with its 95% intervals, the exact rate and
    the fitted power law; then the rate times n, where a law n^b with b = -1.015 and the
    exact -1 part visibly; then the level at the last generation against n (or the
    real-data share) with its exact value where there is one. Where n is not scanned, the
    rate and the level against the first axis (an operator's strength, a share, ddof).

    Args:
        res: a finished :class:`collapsesim.experiments.scan.ScanResult`.
        path: the figure file to write (atomically): PNG, PDF or SVG by its extension.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name, _ in res.grid]
    share = next((n for n in names if n in ("fresh-fraction", "keep-fraction")), None)
    over_n = "samples" in names
    fig, axes = plt.subplots(1, 3 if over_n else 2, figsize=(18 if over_n else 13, 5),
                             constrained_layout=True)  # fmt: skip
    ax, bx = axes[0], axes[-1]
    rate_of = {"gaussian": " -dE[log std]/dT", "tokens": " -d log E[H]/dT"}
    if over_n:
        nx = axes[1]
        other = [n for n in names if n != "samples"]
        # rate x n magnifies a law's departure from its exact 1/n: only series with an
        # exact rate go there (where none has one, every series does).
        with_exact = any(r.get("theory_rate") is not None for r in res.rows)
        for k, (key, rows) in enumerate(_by_rest(res.rows, names, "samples").items()):
            rows = sorted(rows, key=lambda r: r["samples"])
            n = _column(rows, "samples")
            rate, lo, hi = (_column(rows, c) for c in ("rate", "rate_lo", "rate_hi"))
            exact = _column(rows, "theory_rate")
            label = ", ".join(f"{o} {v:g}" for o, v in zip(other, key, strict=True))
            color = f"C{k % 10}"
            shown = [ax, nx] if np.isfinite(exact).all() or not with_exact else [ax]
            for axis, scale in ((ax, np.ones_like(n)), (nx, n)):
                if axis not in shown:
                    continue
                axis.errorbar(n, rate * scale, yerr=[(rate - lo) * scale, (hi - rate) * scale],
                              fmt="o", capsize=3, color=color,
                              label=(label + ": " if label else "") + "simulation, 95%")  # fmt: skip
                if np.isfinite(exact).all():
                    axis.plot(n, exact * scale, "--", color=color, lw=1.2,
                              label=(label + ": " if label else "") + "exact rate")  # fmt: skip
            fit = next((f for f in res.fits if all(f.get(o) == v for o, v in
                                                   zip(other, key, strict=True))), None)  # fmt: skip
            if fit is not None and fit.get("exponent") is not None:
                grid_n = np.geomspace(n.min(), n.max(), 50)
                law = fit["prefactor"] * grid_n ** fit["exponent"]
                text = (
                    f"fit n^b, b = {fit['exponent']:.3f} [{fit['exponent_lo']:.3f}, "
                    f"{fit['exponent_hi']:.3f}]"
                )
                for axis, scale in ((ax, np.ones_like(grid_n)), (nx, grid_n)):
                    if axis in shown:
                        axis.plot(grid_n, law * scale, ":", color=color, lw=1.2, label=text)
        for axis in (ax, nx):
            _n_axis(axis, res.rows)
            axis.set_xlabel("samples per generation n")
            axis.legend(fontsize="x-small")
        ax.set_yscale("log")
        ax.set_ylabel("collapse rate per generation" + rate_of.get(res.family, ""))
        ax.set_title("rate against n")
        nx.set_ylabel("rate x n")
        nx.set_title("rate x n: the law's exponent, magnified"
                     + (" (series with an exact rate)" if with_exact else ""))  # fmt: skip
    else:
        axis = names[0]
        for k, (key, rows) in enumerate(_by_rest(res.rows, names, axis).items()):
            rows = sorted(rows, key=lambda r: r[axis])
            x = _column(rows, axis)
            rate, se = _column(rows, "rate"), _column(rows, "rate_se")
            label = ", ".join(f"{o} {v:g}" for o, v in zip(names[1:], key, strict=True))
            color = f"C{k % 10}"
            ax.errorbar(x, rate, yerr=1.96 * se, fmt="o-", capsize=3, color=color,
                        label=(label + ": " if label else "") + "simulation, 95%")  # fmt: skip
            closed = _column(rows, "theory_rate")
            if np.isfinite(closed).any():  # where a point has a closed form
                # A hollow diamond, larger than the simulation's point it may sit on.
                ax.plot(x, closed, "D--", color=color, lw=1, ms=11, mfc="none", mew=1.4,
                        label=(label + ": " if label else "") + "exact rate")  # fmt: skip
        ax.axhline(0.0, color="0.6", lw=0.8, label="no collapse")
        ax.set_xlabel(axis)
        ax.set_ylabel("collapse rate per generation" + rate_of.get(res.family, ""))
        ax.set_title(f"rate against {axis}")
        ax.legend(fontsize="x-small")
    xname = share or names[0]
    rest = [n for n in names if n != xname]
    for k, (key, rows) in enumerate(_by_rest(res.rows, names, xname).items()):
        rows = sorted(rows, key=lambda r: r[xname])
        x, y, e = _column(rows, xname), _column(rows, "level"), _column(rows, "level_se")
        label = ", ".join(f"{o} {v:g}" for o, v in zip(rest, key, strict=True))
        color = f"C{k % 10}"
        bx.errorbar(x, y, yerr=1.96 * e, fmt="o-", capsize=3, color=color,
                    label=(label + ": " if label else "") + "simulation, 95%")  # fmt: skip
        exact = _column(rows, "theory_level")
        if np.isfinite(exact).any():
            bx.plot(x, exact, "D--", color=color, lw=1, ms=11, mfc="none", mew=1.4,
                    label=(label + ": " if label else "") + "exact mean")  # fmt: skip
    starts = {r.get("start_level") for r in res.rows} - {None}
    if len(starts) == 1:
        bx.axhline(starts.pop(), color="0.4", ls=":", lw=1, label="original")
    levels = _column(res.rows, "level")
    levels = levels[np.isfinite(levels)]
    if levels.size and levels.min() > 0 and levels.max() > 50 * levels.min():
        bx.set_yscale("log")  # levels that span decades (a spread that grows or collapses)
    if xname == "samples":
        _n_axis(bx, res.rows)
    bx.legend(fontsize="x-small")
    bx.set_xlabel(xname)
    level_of = {"gaussian": "mean std", "tokens": "mean heterozygosity"}
    bx.set_ylabel(f"{level_of.get(res.family, 'level')} at the last generation")
    bx.set_title("where the chains stand after T generations")
    base = res.summary.get("base") or {}
    fixed = [f"{k.removeprefix('num_')} {v}" for k, v in base.items()
             if k not in ("threads",) and not isinstance(v, list | dict)]  # fmt: skip
    fig.suptitle(f"{res.family} scan over {', '.join(names)}"
                 + (f" ({', '.join(fixed)})" if fixed else ""), fontsize="medium")  # fmt: skip
    write_figure(fig, path)


def plot_vae(result: Any, path: Path) -> None:
    """Every VAE metric over generations, beside a strip of samples per generation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m, s = result.metrics, result.summary
    gens = np.arange(len(m["fid"]))
    panels = (
        ("fid", "Frechet distance to held-out real"),
        ("precision", "precision (k-NN)"),
        ("recall", "recall (k-NN)"),
        ("class_entropy", "class entropy (nats)"),
        ("latent_spread", "spread of encoder-0 means"),
        ("train_loss", "training loss (nats/image)"),
    )
    from matplotlib.ticker import MaxNLocator

    fig = plt.figure(figsize=(17, 9))
    grid = fig.add_gridspec(3, 4, width_ratios=(1, 1, 1, 1.9))
    for i, (key, title) in enumerate(panels):
        ax = fig.add_subplot(grid[i // 3, i % 3])
        ax.plot(gens, m[key], "o-", color="C0", label="generated")
        ref = s.get(f"real_{key}")
        if ref is not None:
            ax.axhline(ref, color="C2", ls="--", label="real training images")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("generation")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize="x-small")
    ax = fig.add_subplot(grid[2, :3])
    shares = result.classes / np.maximum(result.classes.sum(axis=1, keepdims=True), 1)
    real = s.get("real_class_shares")
    xs = gens.astype(float)
    if real is not None:  # the real images' classes, as the bar left of generation 0
        shares = np.vstack([np.asarray(real, float)[None, :], shares])
        xs = np.concatenate([[-1.5], xs])
    bottom = np.zeros(len(xs))
    cmap = plt.get_cmap("tab10")
    for c in range(shares.shape[1]):
        ax.bar(xs, shares[:, c], bottom=bottom, color=cmap(c % 10), label=f"class {c}")
        bottom += shares[:, c]
    ticks = list(xs)
    labels = ["real"] * (real is not None) + [str(g) for g in gens]
    step = max(1, len(gens) // 15)
    keep = [k for k in range(len(ticks)) if labels[k] == "real" or int(labels[k]) % step == 0]
    ax.set_xticks([ticks[k] for k in keep], [labels[k] for k in keep])
    ax.set_title("classes of the images (classifier's votes): the real training set, then "
                 "each generation's samples", fontsize=10)  # fmt: skip
    ax.set_xlabel("generation")
    ax.set_ylabel("share")
    ax.legend(ncol=min(shares.shape[1], 10), fontsize="x-small", loc="lower center",
              bbox_to_anchor=(0.5, -0.42))  # fmt: skip
    # One row of eight samples per generation (at most twelve generations shown).
    strip = result.grids[:, :8]
    shown = np.unique(np.linspace(0, len(strip) - 1, min(len(strip), 12)).round().astype(int))
    h, w = strip.shape[2:]
    canvas = np.full((len(shown) * (h + 1), 8 * (w + 1)), 255, np.uint8)
    for r, t in enumerate(shown):
        for c in range(strip.shape[1]):
            canvas[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = strip[t, c]
    ax = fig.add_subplot(grid[:, 3])
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks([r * (h + 1) + h / 2 for r in range(len(shown))], [str(t) for t in shown])
    ax.set_xticks([])
    ax.set_ylabel("generation")
    ax.set_title("eight samples of each generation", fontsize=10)
    fig.suptitle(
        f"VAE on {s['data']}, {regime_text(s)}: {s['generations']} generations "
        f"({s['train_images']} images each), seed {s.get('seed', '?')}"
    )
    fig.tight_layout()
    write_figure(fig, path)


def plot_lm(result: Any, path: Path) -> None:
    """Histograms of perplexity under generation 0 (Shumailov et al.'s Fig. 1b) and every
    language-model metric over generations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    m, s = result.metrics, result.summary
    gens = np.arange(len(m["real_ppl"]))
    panels = [
        ("real_ppl", "perplexity on held-out real text"),
        ("gen0_ppl_median", "median perplexity under gen 0"),
        ("distinct_2", "distinct-2 (word bigrams)"),
        ("word_support", "distinct words"),
        ("char3_support", "distinct character 3-grams"),
        ("repeat_rate", "repetition (char 4-grams)"),
        ("train_loss", "training loss (nats/token)"),
    ]
    if s.get("true_entropy_rate") is not None:
        panels[-1] = ("true_kl", "exact KL(true || model), nats/token")
    fig = plt.figure(figsize=(15, 7.5))
    grid = fig.add_gridspec(2, 5, width_ratios=(1.6, 1, 1, 1, 1))
    ax = fig.add_subplot(grid[:, 0])
    every = [result.real_perplexities, *result.perplexities]
    finite = np.concatenate([p[np.isfinite(p)] for p in every if len(p)])
    lo, hi = np.quantile(finite, [0.001, 0.999])
    bins = np.geomspace(max(lo, 1.0), max(hi, lo * 1.01, 1.01), 60).tolist()
    ax.hist(result.real_perplexities, bins=bins, density=True, histtype="stepfilled",
            color="0.8", label="held-out real")  # fmt: skip
    colors = _distinct(plt, len(result.perplexities))
    for t, p in enumerate(result.perplexities):
        ax.hist(p, bins=bins, density=True, histtype="step", lw=1.5,
                color=colors[t], label=f"generation {t}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("perplexity of a sequence under generation 0")
    ax.set_ylabel("density")
    ax.set_title("synthetic text scored by the first model", fontsize=10)
    ax.legend(fontsize="small")
    for i, (key, title) in enumerate(panels):
        ax = fig.add_subplot(grid[i // 4, 1 + i % 4])
        ax.plot(gens, m[key], "o-", color="C0", label="generated")
        ref = s.get(f"real_{key}")
        if ref is not None and key not in ("real_ppl", "train_loss"):
            ax.axhline(ref, color="C2", ls="--", label="real text")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("generation")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize="x-small")
    ax = fig.add_subplot(grid[1, 4])
    ax.axis("off")
    lines = [f"prompt: {s['prompt'][-32:]!r}"] + [
        f"{t}: {c[:32]!r}" for t, c in enumerate(s["continuations"][:10])
    ]
    ax.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=8)
    fig.suptitle(
        f"Transformer LM on {s['corpus']}, {regime_text(s)}: {s['generations']} generations "
        f"({s['train_pairs']} pairs of {s['block']}+{s['block']} {s['tokenizer']} tokens), "
        f"seed {s.get('seed', '?')}"
    )
    fig.tight_layout()
    write_figure(fig, path)


def plot_compare(cmp: Any, path: Path) -> None:
    """Draw stored runs side by side (:func:`collapsesim.compare.compare`); write a figure.

    Left: each run's mean of the metric over generations (solid), its median (dashed) and
    the 5-95% band across chains, in the run's colour, with the first run's value at
    generation 0 dotted. Right: each run's final mean with its 95% interval (1.96 s.e.)
    and median, the reference's mean as a vertical line. The legend names each run by the
    settings that set it apart; the title gives what they share.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    entries = cmp.entries
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12.5, 4.8), constrained_layout=True,
                                 gridspec_kw={"width_ratios": [1.6, 1]})  # fmt: skip
    colors = plt.cm.tab10(np.arange(len(entries)) % 10)
    positive = True
    for e, col in zip(entries, colors, strict=True):
        gens, st = e.generations, e.stats
        if e.chains > 1:
            ax.fill_between(gens, st["q05"], st["q95"], color=col, alpha=0.12, lw=0)
            for q in ("q05", "q95"):
                ax.plot(gens, st[q], color=col, lw=0.5, alpha=0.6)
            ax.plot(gens, st["q50"], color=col, lw=1.0, ls="--")
        ax.plot(gens, st["mean"], color=col, lw=1.8)
        shown = np.concatenate([st["q05"], st["q95"], st["mean"]])
        positive &= bool(np.all(shown[np.isfinite(shown)] > 0))
    if entries[0].start is not None:
        ax.axhline(entries[0].start, color="0.3", ls=":", lw=1)
    vals = np.concatenate([e.stats["mean"] for e in entries])
    vals = vals[np.isfinite(vals)]
    logged = bool(positive and vals.size and vals.max() > 30 * vals.min() > 0)
    if logged:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generation t")
    ax.set_ylabel(cmp.metric)
    runs = [Line2D([], [], color=c, lw=1.8, label=e.label) for e, c in zip(entries, colors,
                                                                            strict=True)]  # fmt: skip
    styles = [Line2D([], [], color="0.3", lw=1.8, label="mean"),
              Line2D([], [], color="0.3", lw=1.0, ls="--", label="median"),
              Patch(color="0.3", alpha=0.12, label="5-95% of chains")]  # fmt: skip
    if entries[0].start is not None:
        styles.append(Line2D([], [], color="0.3", ls=":", lw=1, label="generation 0"))
    fig.legend(handles=runs, fontsize="small", loc="outside lower center",
               ncol=min(len(runs), 3), title="runs")  # fmt: skip
    ax.legend(handles=styles, fontsize="x-small", loc="best")
    ax.set_title(f"{cmp.metric} over generations")

    ys = np.arange(len(entries))[::-1]
    for e, col, y in zip(entries, colors, ys, strict=True):
        if e.final_mean is None:
            continue
        err = 1.96 * e.final_stderr if e.final_stderr is not None else None
        bx.errorbar(e.final_mean, y, xerr=err, fmt="o", color=col, capsize=4, ms=6)
        if e.final_median is not None and e.chains > 1:
            bx.plot(e.final_median, y, marker="|", color=col, ms=14, mew=2)
    if entries[0].final_mean is not None:
        bx.axvline(entries[0].final_mean, color="0.4", ls=":", lw=1)
    finals = [e.final_mean for e in entries if e.final_mean is not None]
    if logged and finals and min(finals) > 0:
        bx.set_xscale("log")  # as the left panel: final values decades apart
    bx.set_yticks(ys, [e.label for e in entries], fontsize="small")
    bx.set_xlabel(f"{cmp.metric} at the last generation")
    bx.legend(handles=[Line2D([], [], color="0.3", marker="o", ls="-",
                              label="mean, 95% interval"),
                       Line2D([], [], color="0.3", marker="|", ms=12, mew=2, ls="",
                              label="median"),
                       Line2D([], [], color="0.4", ls=":", label="first run's mean")],
              fontsize="x-small", loc="best")  # fmt: skip
    bx.set_title("final values")
    common = cmp.common
    bits = [f"{k.removeprefix('num_')} {common[k]}" for k in
            ("family", "regime", "num_samples", "num_generations", "num_chains") if k in common]  # fmt: skip
    fig.suptitle(f"{len(entries)} runs" + (f": {', '.join(bits)}" if bits else ""),
                 fontsize="medium")  # fmt: skip
    write_figure(fig, path)
