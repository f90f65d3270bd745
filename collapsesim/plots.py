"""Figures (matplotlib: PNG, PDF or SVG by the file's extension) of finished runs."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import store, theory

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
    ax.set_title(f"{cfg.regime}, n = {cfg.num_samples}, ddof {cfg.ddof}, {cfg.num_chains} chains"
                 + _curated(cfg))  # fmt: skip
    ax.legend(loc="lower left", fontsize="small")

    _final_log_sigma(bx, result)
    write_figure(fig, path)


def _final_log_sigma(bx: Any, result: GaussianResult) -> None:
    """The histogram of final log sigma across chains, with the exact mean and spread."""
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
    ax.set_xlabel("generation t")
    ax.set_ylabel("component std det(C)^(1/2d)")
    ax.set_title(
        f"K = {cfg.num_components}, d = {cfg.dim}, n = {cfg.num_samples}, {cfg.regime}, "
        f"{cfg.num_chains} chains" + _curated(cfg)
    )
    ax.legend(loc="lower left", fontsize="small")

    _band(bx, gens, result.aggregates["l2"], "tab:red", "L2 to the original")
    bx.set_yscale("log")
    bx.set_xlabel("generation t")
    bx.set_ylabel("L2 distance between densities")
    tx = bx.twinx()
    tail = result.aggregates["tail_mass"]
    tx.plot(gens, tail["mean"], color="tab:green", lw=1.2)
    tx.plot(gens, tail["q50"], color="tab:green", lw=1.2, ls="--")
    tx.axhline(s["original_tail_mass"], color="tab:green", ls=":", lw=1)
    tx.set_ylabel("mass beyond the original's 3 sigma (green: mean, dashed: median)")
    bx.set_title("distance to the original, and its tails")
    bx.legend(loc="upper left", fontsize="small")

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
        ax.set_xlabel("generation t")
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
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(picks)))
        for col, j in zip(colors, picks, strict=True):
            pts = sample_mixture(
                comp["weights"][0, j], comp["means"][0, j], comp["covs"][0, j], 1000, cfg.seed, j
            )
            label = f"t = {gens[j]}"
            if cfg.dim == 1:
                cx.hist(pts[:, 0], bins=60, density=True, histtype="step", color=col, label=label)
            else:
                cx.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.5, color=col, label=label)
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
    """Draw rank-frequency curves, and entropy and support over generations; write a figure.

    Left: chain 0's distribution at several generations, sorted by probability, on
    log-log axes: the tail being eaten. Right: entropy and support size across chains
    (median and 5-95% band) over generations, with the exact E[support] where it exists.

    Args:
        result: a finished token run.
        path: the figure file to write (atomically): PNG, PDF or SVG by its extension.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = result.config
    gens = result.generations
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(result.snapshot_generations)))
    for col, g, p in zip(colors, result.snapshot_generations, result.snapshots, strict=True):
        ranked = np.sort(p[p > 0])[::-1]
        ax.loglog(np.arange(1, len(ranked) + 1), ranked, color=col, lw=1.4, label=f"t = {g}")
    ax.set_xlabel("rank")
    ax.set_ylabel("probability")
    ax.set_title(f"chain 0: rank-frequency, K = {cfg.categories}, n = {cfg.num_samples}")
    ax.legend(fontsize="small")

    _band(bx, gens, result.aggregates["support"], "tab:blue", "support")
    with contextlib.suppress(theory.NoClosedForm, ValueError):
        if cfg.regime == "replace" and cfg.smoothing == 0 and not cfg.transformed:
            sup, _ = theory.token_support_fixation(gens, cfg.num_samples, cfg.p0())
            bx.plot(gens, sup, "k--", lw=1.2, label="exact E[support]")
    bx.set_yscale("log")
    bx.set_xlabel("generation t")
    bx.set_ylabel("categories alive")
    tx = bx.twinx()
    ent = result.aggregates["entropy"]
    tx.plot(gens, ent["q50"], color="tab:orange", lw=1.4)
    tx.fill_between(gens, ent["q05"], ent["q95"], color="tab:orange", alpha=0.15)
    tx.set_ylabel("entropy, nats (orange: median, 5-95%)")
    bx.set_title(f"{cfg.regime}, {cfg.num_chains} chains" + _curated(cfg))
    bx.legend(loc="lower left", fontsize="small")
    write_figure(fig, path)


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


def plot_scan(res: Any, path: Path) -> None:
    """Draw the collapse rate against n (log-log, with theory and the fitted power law), or
    against the first axis where n is not scanned (an operator's strength), and the level
    against the real-data share or that axis; write a figure.

    Args:
        res: a finished :class:`collapsesim.experiments.scan.ScanResult`.
        path: the figure file to write (atomically): PNG, PDF or SVG by its extension.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name, _ in res.grid]
    other = [n for n in names if n != "samples"]
    share = next((n for n in names if n in ("fresh-fraction", "keep-fraction")), None)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True)
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in res.rows:
        groups.setdefault(tuple(row[o] for o in other if o != "samples"), []).append(row)
    if "samples" in names:
        for key, rows in groups.items():
            n = np.array([r["samples"] for r in rows], float)
            rate = np.array([np.nan if r["rate"] is None else r["rate"] for r in rows])
            lo = np.array([np.nan if r["rate_lo"] is None else r["rate_lo"] for r in rows])
            hi = np.array([np.nan if r["rate_hi"] is None else r["rate_hi"] for r in rows])
            label = ", ".join(f"{o} {k:g}" for o, k in zip(other, key, strict=True)) or "simulation"
            ax.errorbar(n, rate, yerr=[rate - lo, hi - rate], fmt="o", capsize=3, label=label)
            exact = [r["theory_rate"] for r in rows]
            if all(e is not None for e in exact):
                ax.plot(
                    n, exact, "k--", lw=1, label="exact rate" if key == next(iter(groups)) else None
                )
        for fit in res.fits:
            if fit.get("exponent") is None:
                continue
            grid_n = np.array(sorted({r["samples"] for r in res.rows}), float)
            ax.plot(
                grid_n,
                fit["prefactor"] * grid_n ** fit["exponent"],
                ":",
                lw=1,
                label=f"fit: b = {fit['exponent']:.3f}",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("samples per generation n")
        ax.set_ylabel("collapse rate per generation")
        ax.legend(fontsize="small")
    else:
        # The rate against the first axis (an operator's strength, a share, ddof).
        axis = names[0]
        for i, (key, rows) in enumerate(_by_rest(res.rows, names, axis).items()):
            x = np.array([r[axis] for r in rows], float)
            rate = np.array([np.nan if r["rate"] is None else r["rate"] for r in rows])
            se = np.array([np.nan if r["rate_se"] is None else r["rate_se"] for r in rows])
            order = np.argsort(x)
            label = ", ".join(f"{o} {k:g}" for o, k in zip(names[1:], key, strict=True))
            ax.errorbar(x[order], rate[order], yerr=1.96 * se[order], fmt="o-", capsize=3,
                        label=label or "simulation (95% interval)")  # fmt: skip
            closed = np.array([np.nan if r["theory_rate"] is None else r["theory_rate"]
                               for r in rows])  # fmt: skip
            if np.isfinite(closed).any():  # where a point has a closed form
                ax.plot(x[order], closed[order], "kx--", lw=1, label=None if i else "exact rate")
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set_xlabel(axis)
        rate_of = {"gaussian": ", -dE[log std]/dT", "tokens": ", -d log E[H]/dT"}
        ax.set_ylabel("collapse rate per generation" + rate_of.get(res.family, ""))
        ax.legend(fontsize="small")
    xname = share or names[0]
    rest = [n for n in names if n != xname]
    for key, rows in _by_rest(res.rows, names, xname).items():
        x = np.array([r[xname] for r in rows], float)
        y = np.array([np.nan if r["level"] is None else r["level"] for r in rows])
        e = np.array([np.nan if r["level_se"] is None else r["level_se"] for r in rows])
        order = np.argsort(x)
        bx.errorbar(
            x[order],
            y[order],
            yerr=1.96 * e[order],
            fmt="o-",
            capsize=3,
            label=", ".join(f"{o} {k:g}" for o, k in zip(rest, key, strict=True)) or None,
        )
    levels = np.array([r["level"] for r in res.rows if r["level"] is not None], float)
    if levels.size and levels.min() > 0 and levels.max() > 50 * levels.min():
        bx.set_yscale("log")  # levels that span decades (a spread that grows or collapses)
    if rest:
        bx.legend(fontsize="small")
    bx.set_xlabel(xname)
    bx.set_ylabel("level at the last generation (std or heterozygosity)")
    bx.set_title(f"{res.family}: where the chains stand after T generations")
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
    fig = plt.figure(figsize=(14, 7.5))
    grid = fig.add_gridspec(3, 4, width_ratios=(1, 1, 1, 1.3))
    for i, (key, title) in enumerate(panels):
        ax = fig.add_subplot(grid[i // 3, i % 3])
        ax.plot(gens, m[key], "o-", color="C0", label="generated")
        ref = s.get(f"real_{key}")
        if ref is not None:
            ax.axhline(ref, color="C2", ls="--", label="real training images")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("generation")
        if i == 0:
            ax.legend(fontsize="small")
    ax = fig.add_subplot(grid[2, :3])
    shares = result.classes / np.maximum(result.classes.sum(axis=1, keepdims=True), 1)
    bottom = np.zeros(len(gens))
    cmap = plt.get_cmap("tab10")
    for c in range(shares.shape[1]):
        ax.bar(gens, shares[:, c], bottom=bottom, color=cmap(c % 10), label=str(c))
        bottom += shares[:, c]
    ax.set_title("classes of the generated images (classifier's votes)", fontsize=10)
    ax.set_xlabel("generation")
    ax.set_ylabel("share")
    ax.legend(ncol=min(shares.shape[1], 10), fontsize="x-small", loc="upper right")
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
    ax.set_title("samples", fontsize=10)
    fig.suptitle(
        f"VAE on {s['data']}, {s['regime']}: {s['generations']} generations "
        f"({s['train_images']} images each)"
    )
    fig.tight_layout()
    write_figure(fig, path)


def plot_lm(result: Any, path: Path) -> None:
    """Histograms of perplexity under generation 0 (Shumailov et al.'s Fig. 1b) and every
    language-model metric over generations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    cmap = plt.get_cmap("viridis")
    for t, p in enumerate(result.perplexities):
        ax.hist(p, bins=bins, density=True, histtype="step", lw=1.5,
                color=cmap(t / max(len(gens) - 1, 1)), label=f"generation {t}")  # fmt: skip
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
        if i == 2:
            ax.legend(fontsize="small")
    ax = fig.add_subplot(grid[1, 4])
    ax.axis("off")
    lines = [f"prompt: {s['prompt'][-40:]!r}"] + [
        f"{t}: {c[:40]!r}" for t, c in enumerate(s["continuations"][:10])
    ]
    ax.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=7)
    fig.suptitle(
        f"Transformer LM on {s['corpus']}, {s['regime']}: {s['generations']} generations "
        f"({s['train_pairs']} pairs of {s['block']}+{s['block']} {s['tokenizer']} tokens)"
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
    if positive and vals.size and vals.max() > 30 * vals.min() > 0:
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
