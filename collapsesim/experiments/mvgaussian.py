"""Runner of the multivariate Gaussian chain, on the shared recorded-metric runner.

The kernel (:mod:`collapsesim.kernels.mvgaussian`) records every metric of
:data:`..families.mvgaussian.METRICS` at the recorded generations; this module says how
to start, advance and store its chains.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from scipy.stats import chi2

from ..families.mvgaussian import METRICS, TAIL_PROBABILITY, MvGaussianConfig, expected
from ..kernels import mvgaussian as kern
from ..regimes import Regime
from . import _common as common
from . import _recorded
from ._recorded import Chains, RecordedResult, Spec

__all__ = ["MvGaussianResult", "iterate", "load", "run"]

# The kernel's draws, in run.json: a run is resumed only by the kernel that began it.
KERNEL = "mvgaussian-0.8"


class MvGaussianResult(RecordedResult):
    """What a multivariate Gaussian run produced (see :class:`._recorded.RecordedResult`)."""

    family: ClassVar[str] = "mvgaussian"


def _model0(cfg: MvGaussianConfig, cov0: np.ndarray) -> dict[str, float]:
    """The metrics of the original itself."""
    lam = np.linalg.eigvalsh(cov0)
    p = lam / lam.sum()
    return {
        "trace_ratio": 1.0, "det_ratio": 1.0, "log_det_ratio": 0.0,
        "max_eig": float(lam[-1]), "min_eig": float(lam[0]), "condition": float(lam[-1] / lam[0]),
        "effective_rank": float(np.exp(-np.sum(p * np.log(p)))), "mean_sq_error": 0.0,
        "w2": 0.0, "kl_fit_orig": 0.0, "kl_orig_fit": 0.0,
        "tail_mass": 1.0 - TAIL_PROBABILITY if cfg.tail_probes else math.nan,
    }  # fmt: skip


def _chains(cfg: MvGaussianConfig) -> Chains:
    mu0, cov0 = cfg.original_params()
    chol0 = np.linalg.cholesky(cov0)
    d, n, t = cfg.dim, cfg.num_samples, cfg.num_generations
    regime = Regime(cfg.regime)
    sufficient = cfg.resolved_method == "sufficient"
    radius2 = float(chi2.ppf(TAIL_PROBABILITY, d))
    evaluation = kern.evaluation_vector(cov0, cfg.candidates(), radius2)
    probe = kern.probes(cfg.seed, cfg.tail_probes, d)
    subsample = regime is Regime.ACCUMULATE_SUBSAMPLE
    stats = regime in (Regime.ACCUMULATE, Regime.KEEP_ORIGINAL)

    def start(lo: int, hi: int) -> dict[str, np.ndarray]:
        rng, mu, scale, u = kern.init_chains(cfg.seed, np.arange(lo, hi, dtype=np.int64), mu0,
                                             chol0)  # fmt: skip
        st = {"rng": rng, "mu": mu, "scale": scale, "u": u}
        b = hi - lo
        if stats:
            st |= {"pool_n": np.zeros(b), "pool_mean": np.zeros((b, d)),
                   "pool_scatter": np.zeros((b, d, d))}  # fmt: skip
        if subsample:
            st |= {"pool": np.empty((b, n * max(t, 1), d)), "pool_size": np.zeros(b, np.int64)}
        return st

    def advance(st: dict[str, Any], g: int, g_end: int, slots: np.ndarray, rec: np.ndarray,
                curation: dict[str, Any]) -> None:  # fmt: skip
        kern.advance(
            st["rng"], st["mu"], st["scale"], st["u"], g, g_end, slots, rec,
            num_samples=n, ddof=cfg.ddof, regime=regime.code, num_real=cfg.num_real,
            sufficient=sufficient, mu0=mu0, chol0=chol0, evaluation=evaluation, probe=probe,
            pool_n=st.get("pool_n"), pool_mean=st.get("pool_mean"),
            pool_scatter=st.get("pool_scatter"), pool=st.get("pool"),
            pool_size=st.get("pool_size"), **curation,
        )  # fmt: skip

    def snapshot(st: dict[str, Any], g: int) -> dict[str, Any]:
        return {**st, "pool": st["pool"][:, : n * g]} if "pool" in st else st

    def restore(saved: dict[str, Any], lo: int, hi: int) -> dict[str, Any]:
        if "pool" not in saved:
            return saved
        pool = np.empty((hi - lo, n * max(t, 1), d))
        pool[:, : saved["pool"].shape[1]] = saved["pool"]
        return {**saved, "pool": pool}

    per_gen = 1e-9 * (d**3 / 6 + d * d) if sufficient else 2e-9 * n * d * d
    return Chains(
        metrics=METRICS,
        model0=_model0(cfg, cov0),
        start=start,
        advance=advance,
        cost=per_gen + 1e-8 * d**3 * cfg.record_count() / max(t, 1),
        chain_bytes=cfg.chain_bytes(),
        meta={"method": cfg.resolved_method, "kernel": KERNEL},
        snapshot=snapshot,
        restore=restore,
    )


def _header(cfg: MvGaussianConfig) -> dict[str, Any]:
    return {"samples": cfg.num_samples, "dim": cfg.dim, "ddof": cfg.ddof,
            "method": cfg.resolved_method, "original": cfg.original}  # fmt: skip


SPEC = Spec(
    family="mvgaussian",
    config=MvGaussianConfig,
    result=MvGaussianResult,
    metrics=METRICS,
    chains=_chains,
    header=_header,
    theory=expected,
    summarized=METRICS,
    dim=lambda cfg: cfg.dim,
)


def iterate(cfg: MvGaussianConfig, **options: Any) -> Any:
    """Run the chains, yielding progress; return the :class:`MvGaussianResult`.

    ``options`` are :func:`._driver.run_plan`'s.
    """
    return _recorded.iterate(SPEC, cfg, **options)


def load(out: Any) -> MvGaussianResult:
    """Load a complete run from its directory."""
    result = _recorded.load(SPEC, out)
    assert isinstance(result, MvGaussianResult)
    return result


def run(cfg: MvGaussianConfig, **options: Any) -> MvGaussianResult:
    """Run the chains to the end; see :func:`iterate`."""
    result: MvGaussianResult = common.drain(iterate(cfg, **options))
    return result
