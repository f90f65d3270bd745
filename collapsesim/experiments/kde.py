"""Runner of the kernel-density chain, on the shared recorded-metric runner.

The kernel (:mod:`collapsesim.kernels.kde`) records every metric of
:data:`..families.kde.METRICS` at the recorded generations; this module says how to start,
advance and store its chains, and what the original's own metrics are (model 0).
"""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar

import numpy as np

from ..families.kde import METRICS, KdeConfig, expected, original_variance
from ..regimes import Regime
from . import _common as common
from . import _recorded
from ._recorded import Chains, RecordedResult, Spec

__all__ = ["SPEC", "KdeResult", "iterate", "load", "run"]

# The kernel's draws, in run.json: a run is resumed only by the kernel that began it.
KERNEL = "kde-0.8"
REFERENCE_SIZE = 2**16  # W2 in 1-D against a non-Gaussian original: this many reference draws


class KdeResult(RecordedResult):
    """What a KDE run produced (see :class:`._recorded.RecordedResult`)."""

    family: ClassVar[str] = "kde"


@functools.lru_cache(maxsize=8)
def evaluation(cfg: KdeConfig) -> dict[str, Any]:
    """The kernel's view of the original: its code and parameters, the held-out sample,
    the W2 reference, and the metrics of the original itself (model 0)."""
    from ..kernels import kde as kern

    d = cfg.dim
    code = kern.ORIGINALS[cfg.original if cfg.original in kern.ORIGINALS else "points"]
    params = np.array([cfg.noise, cfg.factor, cfg.cluster_std])
    pts = cfg.original_points()
    held = kern.heldout_sample(code, params, pts, cfg.heldout, d, cfg.seed)
    ref = None
    w2 = kern.W2_NONE
    if d == 1:
        w2 = kern.W2_GAUSS if cfg.original == "gaussian" else kern.W2_REF
        if cfg.original == "blobs":
            ref = np.sort(kern.sample_original(code, params, pts, REFERENCE_SIZE, 1, cfg.seed,
                                               kern.REFERENCE_CHAIN)[:, 0])  # fmt: skip
        elif w2 == kern.W2_REF:
            ref = np.sort(pts[:, 0])
    h = cfg.fixed_bandwidth
    v0 = original_variance(cfg)
    model0 = {
        "heldout_nll": original_nll(cfg, held, pts),
        "variance": v0,
        "ancestors": float(cfg.num_samples),
        # A rule's bandwidth at the original: its factor at n times the original's std.
        "bandwidth": h if h is not None else _rule(cfg, v0),
        "w2": 0.0 if d == 1 else math.nan,
    }
    return {"code": code, "params": params, "points": pts, "heldout": held, "w2_kind": w2,
            "reference": ref, "model0": model0}  # fmt: skip


def _rule(cfg: KdeConfig, v0: float) -> float:
    n, d = cfg.num_samples, cfg.dim
    f = n ** (-1 / (d + 4)) if cfg.bandwidth == "scott" else (n * (d + 2) / 4) ** (-1 / (d + 4))
    return float(f * math.sqrt(v0))


def original_nll(cfg: KdeConfig, held: np.ndarray, pts: np.ndarray) -> float:
    """The held-out sample's mean negative log-likelihood under the original itself.

    Exact for the Gaussian and the blobs; moons and circles are a curve convolved with
    N(0, noise^2 I), integrated over the curve's angle (Gauss-Legendre on a moon's half
    circle, the trapezoid rule round a circle, nodes finer than noise / 20); NaN for a
    point set (no density) or noise 0.
    """
    from scipy.special import logsumexp

    d = cfg.dim
    if cfg.original == "gaussian":
        return float(np.mean(0.5 * (held**2).sum(axis=1)) + 0.5 * d * math.log(2 * math.pi))
    if cfg.original == "blobs":
        s2 = cfg.cluster_std * cfg.cluster_std
        q = ((held[:, None, :] - pts[None, :, :]) ** 2).sum(axis=2)
        ll = logsumexp(-q / (2 * s2), axis=1) - math.log(len(pts)) - 0.5 * d * math.log(
            2 * math.pi * s2)  # fmt: skip
        return float(-ll.mean())
    if cfg.original not in ("moons", "circles") or not cfg.noise > 0:
        return math.nan
    nodes = int(min(2**16, max(2048, math.ceil(40 * math.pi / cfg.noise))))
    if cfg.original == "moons":
        u, w = np.polynomial.legendre.leggauss(nodes)
        th = (u + 1) * math.pi / 2
        w = w / 2  # the angle's uniform law on [0, pi]
        curve = np.concatenate([np.stack([np.cos(th), np.sin(th)], 1),
                                np.stack([1 - np.cos(th), 0.5 - np.sin(th)], 1)])  # fmt: skip
    else:
        th = 2 * math.pi * np.arange(nodes) / nodes
        w = np.full(nodes, 1.0 / nodes)
        curve = np.concatenate([np.stack([np.cos(th), np.sin(th)], 1),
                                cfg.factor * np.stack([np.cos(th), np.sin(th)], 1)])  # fmt: skip
    weights = np.log(np.concatenate([w, w]) / 2)
    s2 = cfg.noise * cfg.noise
    out = 0.0
    for lo in range(0, len(held), 64):
        q = ((held[lo : lo + 64, None, :] - curve[None, :, :]) ** 2).sum(axis=2)
        ll = logsumexp(weights[None, :] - q / (2 * s2), axis=1) - math.log(2 * math.pi * s2)
        out -= float(ll.sum())
    return out / len(held)


def _chains(cfg: KdeConfig) -> Chains:
    from ..kernels import kde as kern

    ev = evaluation(cfg)
    n, t, d = cfg.num_samples, cfg.num_generations, cfg.dim
    regime = Regime(cfg.regime)
    cap = cfg.capacity()
    h = cfg.fixed_bandwidth
    bw_kind = kern.FIXED if h is not None else kern.BANDWIDTHS[cfg.bandwidth]

    def start(lo: int, hi: int) -> dict[str, np.ndarray]:
        return kern.init_chains(cfg.seed, np.arange(lo, hi, dtype=np.int64), n, d, cap)

    def advance(st: dict[str, Any], g: int, g_end: int, slots: np.ndarray, rec: np.ndarray,
                curation: dict[str, Any]) -> None:  # fmt: skip
        kern.advance(st, g, g_end, slots, rec, num_samples=n, regime=regime.code,
                     num_real=cfg.num_real, bandwidth=bw_kind,
                     bandwidth_value=h if h is not None else 1.0, original=ev["code"],
                     params=ev["params"], points=ev["points"], heldout=ev["heldout"],
                     w2_kind=ev["w2_kind"], reference=ev["reference"], **curation)  # fmt: skip

    def snapshot(st: dict[str, Any], g: int) -> dict[str, Any]:
        if cfg.pooled:  # only the filled part of the pools
            return {**st, "train": st["train"][:, : n * g]}
        return st

    def restore(saved: dict[str, Any], lo: int, hi: int) -> dict[str, Any]:
        if not cfg.pooled:
            return saved
        train = np.zeros((hi - lo, cap, d + 1))
        train[:, : saved["train"].shape[1]] = saved["train"]
        return {**saved, "train": train}

    # Seconds per chain-generation on one thread: the draws (~4 ns per random number), the
    # metrics of the recorded ones (an exp per held-out point and training row).
    rows = n * (max(t, 1) + 1) / 2 if regime is Regime.ACCUMULATE else n
    draws = 4e-9 * n * (d + 1) * max(1, cfg.candidates() // max(n, 1) + 1)
    recorded = 8e-9 * cfg.heldout * rows * (d + 1) * cfg.record_count() / max(t, 1)
    return Chains(
        metrics=METRICS,
        model0=ev["model0"],
        start=start,
        advance=advance,
        cost=draws + recorded,
        chain_bytes=cfg.chain_bytes(),
        meta={"kernel": KERNEL},
        snapshot=snapshot,
        restore=restore,
    )


def _header(cfg: KdeConfig) -> dict[str, Any]:
    model0 = evaluation(cfg)["model0"]
    return {"samples": cfg.num_samples, "dim": cfg.dim, "bandwidth": cfg.bandwidth,
            "original": cfg.original, "heldout": cfg.heldout,
            **{f"original_{name}": value for name, value in model0.items()}}  # fmt: skip


SPEC = Spec(
    family="kde",
    config=KdeConfig,
    result=KdeResult,
    metrics=METRICS,
    chains=_chains,
    header=_header,
    theory=expected,
    summarized=METRICS,
    dim=lambda cfg: cfg.dim,
)


def iterate(cfg: KdeConfig, **options: Any) -> Any:
    """Run the chains, yielding progress; return the :class:`KdeResult`.

    ``options`` are :func:`._driver.run_plan`'s.
    """
    return _recorded.iterate(SPEC, cfg, **options)


def load(out: Any) -> KdeResult:
    """Load a complete run from its directory."""
    result = _recorded.load(SPEC, out)
    assert isinstance(result, KdeResult)
    return result


def run(cfg: KdeConfig, **options: Any) -> KdeResult:
    """Run the chains to the end; see :func:`iterate`."""
    result: KdeResult = common.drain(iterate(cfg, **options))
    return result
