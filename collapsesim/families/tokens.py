"""The token family: a categorical distribution over K categories, sampled and refitted."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..config import TokenConfig
from ._family import Family
from ._show import fmt, frame, ztext

__all__ = ["FAMILY", "TokenConfig", "measure", "table"]


def table(result: Any) -> Any:
    """The final generation's diversity and tails beside Wright-Fisher theory."""
    s = result.summary
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
        f"K = {s['categories']} ({s['original']}), {s['regime']}"
        f"{', ' + ', '.join(knobs) if knobs else ''}, seed {s['seed']} ({s['seconds']:.2f} s)"
    )
    out = frame(title, ("final generation", "simulation", "± s.e.", "theory", "z"))
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
        out.add_row(
            label, fmt(s[key]), fmt(se, 2), fmt(s.get(f"theory_{key}")), ztext(s.get(f"z_{key}"))
        )
    out.add_row(
        "original entropy / support",
        f"{s['original_entropy']:.4g} / {s['original_support']}",
        "",
        "",
        "",
    )
    return out


def measure(cfg: TokenConfig, result: Any) -> dict[str, Any]:
    """A scan point: the rate -d log E[H]/dT of the heterozygosity H, its level and theory.

    The exact rate -log(1 - 1/n) holds under replace with no smoothing or decoding (the
    Wright-Fisher model).
    """
    t, c = cfg.num_generations, cfg.num_chains
    h = result.final["heterozygosity"]
    h0 = float(result.aggregates["heterozygosity"]["mean"][0])
    mean_h = float(h.mean())
    se_h = float(h.std(ddof=1) / math.sqrt(c)) if c > 1 else math.nan
    if t and mean_h > 0:
        rate, se = -math.log(mean_h / h0) / t, se_h / mean_h / t
    else:
        rate, se = math.nan, math.nan
    plain = cfg.regime == "replace" and cfg.smoothing == 0 and not cfg.transformed
    exact = -math.log1p(-1.0 / cfg.num_samples) if plain and cfg.num_samples > 1 else None
    return {"rate": rate, "rate_se": se, "level": mean_h, "level_se": se_h, "theory_rate": exact}


def _plot(result: Any, path: Path) -> None:
    from ..plots import plot_tokens

    plot_tokens(result, path)


FAMILY = Family(
    name="tokens",
    config=TokenConfig,
    runner="collapsesim.experiments.tokens",
    help="""Run token chains: a categorical distribution over K categories, sampled and refitted.

Under replace with no decoding this is the Wright-Fisher model: rare tokens vanish
for ever, and each chain ends on a single token.""",
    kind="chains",
    table=table,
    plot=_plot,
    plot_help="rank-frequency curves at several generations, entropy and support over generations",
    scan={
        "samples": "num_samples",
        "fresh-fraction": "fresh_fraction",
        "keep-fraction": "keep_fraction",
        "temperature": "temperature",
    },
    measure=measure,
    cluster=True,
    deprecated={
        "--init": ("original", "--init is now --original; --init goes in the next release")
    },
)
