"""Runner of the linear-regression chain, on the shared recorded-metric runner.

The kernel (:mod:`collapsesim.kernels.regression`) records every metric of
:data:`..families.regression.METRICS` at the recorded generations; this module says how to
start, advance and checkpoint its chains. A fixed design's rows and factor are a function of
``(seed, chain)``: checkpoints leave them out and a resumed batch draws them again.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ..families.regression import METRICS, RegressionConfig, expected
from ..kernels import regression as kern
from ..regimes import Regime
from . import _common as common
from . import _recorded
from ._recorded import Chains, RecordedResult, Spec

__all__ = ["SPEC", "RegressionResult", "iterate", "load", "model", "run"]


class RegressionResult(RecordedResult):
    """What a regression run produced (see :class:`._recorded.RecordedResult`)."""

    family: ClassVar[str] = "regression"


def model(cfg: RegressionConfig) -> kern.Model:
    """The kernel's :class:`~collapsesim.kernels.regression.Model` of a configuration."""
    return kern.Model(
        num_samples=cfg.num_samples,
        scales=np.sqrt(cfg.variances()),
        w_star=cfg.w_star(),
        noise=cfg.noise,
        ridge=cfg.ridge,
        fresh_design=cfg.design == "fresh",
        regime=Regime(cfg.regime).code,
        num_real=cfg.num_real,
        num_generations=max(cfg.num_generations, 1),
    )


def _chains(cfg: RegressionConfig) -> Chains:
    m = model(cfg)
    n, d = cfg.num_samples, cfg.dim
    v, w = cfg.variances(), cfg.w_star()

    def start(lo: int, hi: int) -> dict[str, np.ndarray]:
        return kern.new_state(cfg.seed, np.arange(lo, hi, dtype=np.int64), m)

    def advance(st: dict[str, Any], g: int, g_end: int, slots: np.ndarray, rec: np.ndarray,
                curation: dict[str, Any]) -> None:  # fmt: skip
        kern.advance(st, g, g_end, slots, rec, m, **curation)

    def restore(saved: dict[str, Any], lo: int, hi: int) -> dict[str, Any]:
        return kern.rebuild(saved, cfg.seed, lo, m)

    # Rough seconds per chain-generation on one thread, measured at N = 1000, d = 100.
    once = cfg.design == "fixed" and Regime(cfg.regime) is not Regime.ACCUMULATE_SUBSAMPLE
    labels = 1e-9 * n * d * max(cfg.best_of, 1)
    cost = labels + (2e-9 * d * d if once else 2.5e-10 * n * d * d + 1e-9 * d**3)
    return Chains(
        metrics=METRICS,
        model0={
            "risk": 0.0,
            "weight_error": 0.0,
            "noise_variance": cfg.noise**2,
            "prediction_variance": float(w @ (v * w)),
        },
        start=start,
        advance=advance,
        cost=cost,
        chain_bytes=cfg.chain_bytes(),
        meta={"kernel": kern.KERNEL, "design": cfg.design},
        snapshot=lambda st, g: kern.snapshot(st, g, m),
        restore=restore,
    )


def _header(cfg: RegressionConfig) -> dict[str, Any]:
    return {"samples": cfg.num_samples, "dim": cfg.dim, "spectrum": cfg.spectrum,
            "noise": cfg.noise, "ridge": cfg.ridge, "design": cfg.design}  # fmt: skip


def _extra(cfg: RegressionConfig, s: dict[str, Any], columns: dict[str, Any]) -> None:
    """The accumulate chain's limit: ``(1 + lambda^2 (pi^2 / 6 - 1))`` times the first fit's
    expected risk (pi^2 / 6 without a sampling bias; Gerstgrasser et al., Dey and Donoho)."""
    first = expected(cfg, np.array([1])).get("risk")
    bounded = Regime(cfg.regime) is Regime.ACCUMULATE and cfg.curation.fraction == 0
    k = 1 + cfg.sampling_bias**2 * (math.pi**2 / 6 - 1)
    s["theory_limit_risk"] = k * float(first[0]) if first is not None and bounded else None


SPEC = Spec(
    family="regression",
    config=RegressionConfig,
    result=RegressionResult,
    metrics=METRICS,
    chains=_chains,
    header=_header,
    theory=expected,
    summarized=METRICS,
    extra=_extra,
)


def iterate(cfg: RegressionConfig, **options: Any) -> Any:
    """Run the chains, yielding progress; return the :class:`RegressionResult`.

    ``options`` are :func:`._driver.run_plan`'s.
    """
    return _recorded.iterate(SPEC, cfg, **options)


def load(out: Any) -> RegressionResult:
    """Load a complete run from its directory."""
    result = _recorded.load(SPEC, out)
    assert isinstance(result, RegressionResult)
    return result


def run(cfg: RegressionConfig, **options: Any) -> RegressionResult:
    """Run the chains to the end; see :func:`iterate`."""
    result: RegressionResult = common.drain(iterate(cfg, **options))
    return result
