"""Runner of the Gaussian chain: batches of chains, blocks of generations, checkpoints, summary.

:func:`iterate` is a generator: it yields a :class:`GaussianProgress` after every block of
generations (the CLI draws its progress bar from them) and returns the
:class:`GaussianResult`. :func:`run` drains it. Chains are advanced in batches, each batch
through all generations in blocks of about a quarter of a second; results do not depend
on the batch or block sizes, the thread count, or where a run was interrupted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import aggregates, metrics, store, theory
from .. import curated_theory as ct
from ..families.gaussian import GaussianConfig
from ..kernels import gaussian as kern
from ..regimes import Regime, theory_regime
from ..results import Result
from . import _common as common
from . import _driver as driver
from ._curation import Tracker

__all__ = ["GaussianProgress", "GaussianResult", "iterate", "load", "run"]

_POOL_BUDGET_BYTES = 1 * 2**30  # accumulate-subsample: memory for the pools of one batch
_MAX_BATCH = 2**20
_BLOCK_SECONDS = 0.25
# The Numba kernel's checkpoint format and draws, kept in run.json: 0.4 added the chains'
# keys and the grid of means (replace, sufficient) of kern.BLOCK generations.
KERNEL = f"gaussian-0.4-grid{kern.BLOCK}"
# The JAX sufficient method's draws: 0.5 made them counter-based (jaxchains/_draws.py).
JAX_KERNEL = "gaussian-jax-0.5-counter"
# Rough costs per chain-generation, only to size blocks for a responsive progress bar.
_COST_SUFFICIENT = 1e-8
_COST_PER_SAMPLE = 3e-9


GaussianProgress = common.Progress


@dataclass
class GaussianResult(Result):
    """What a Gaussian experiment produced; its tables are :class:`Result`'s three."""

    family: ClassVar[str] = "gaussian"
    config: GaussianConfig
    generations: np.ndarray  # (R,) recorded generations
    aggregates: dict[str, dict[str, np.ndarray]]  # metric -> stat -> (R,)
    final: dict[str, np.ndarray]  # metric -> (C,) at the last generation
    trajectories: dict[str, np.ndarray]  # metric -> (K, R) for the kept chains
    summary: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


def _batch_size(cfg: GaussianConfig) -> int:
    if Regime(cfg.regime) is Regime.ACCUMULATE_SUBSAMPLE:
        per_chain = 8 * cfg.num_samples * max(cfg.num_generations, 1)
        return max(1, min(cfg.record_batch(16), _POOL_BUDGET_BYTES // per_chain))
    return min(_MAX_BATCH, cfg.record_batch(16))


def _block_size(cfg: GaussianConfig, batch: int) -> int:
    method = cfg.resolved_method
    per_gen = _COST_SUFFICIENT if method == "sufficient" else _COST_PER_SAMPLE * cfg.num_samples
    if Regime(cfg.regime) is Regime.ACCUMULATE_SUBSAMPLE:
        per_gen *= 3
    size = int(min(max(cfg.num_generations, 1), max(1, _BLOCK_SECONDS / (per_gen * batch))))
    if method == "sufficient" and Regime(cfg.regime) is Regime.REPLACE:
        # Whole blocks of the kernel's grid of means: a block cut short is redone.
        size = max(kern.BLOCK, size // kern.BLOCK * kern.BLOCK)
    return size


def iterate(
    cfg: GaussianConfig, **options: Any
) -> Generator[GaussianProgress, None, GaussianResult]:
    """Run the Gaussian experiment, yielding progress; return its result.

    ``options`` are :func:`._driver.run_plan`'s (``out``, ``resume``, ``threads``,
    ``batch_chains`` (default: all chains, up to 2^20; fewer for accumulate-subsample,
    whose pools must fit in 1 GiB), ``block_generations``, ``checkpoint_seconds``).
    """
    return driver.run_plan(cfg, lambda: _plan(cfg), load, **options)


def _plan(cfg: GaussianConfig) -> driver.Plan:
    """Chains of the Numba (or JAX) kernel recording mu and log sigma where asked."""
    t, n = cfg.num_generations, cfg.num_samples
    record_gens = np.asarray(cfg.record_generations(), np.int64)
    # The chains run in standard units, from N(0, 1): a Gaussian chain from N(mu0, sigma0^2)
    # is mu0 + sigma0 times one from N(0, 1) under every regime (the fit is location-scale
    # equivariant), and standard units keep the mean's fluctuations at mu0 = 1e20 and the
    # std at sigma0 = 1e-300 or 1e300. _finish maps the records back.
    stream = _stream(cfg, len(record_gens))
    if cfg.backend == "jax":
        return _jax_plan(cfg, record_gens, stream)
    subsample = Regime(cfg.regime) is Regime.ACCUMULATE_SUBSAMPLE
    sufficient = cfg.resolved_method == "sufficient"
    track = Tracker(cfg.curation, cfg.sigma0)

    def start(lo: int, hi: int) -> dict[str, Any]:
        rng, state = kern.init_chains(cfg.seed, np.arange(lo, hi, dtype=np.int64), 0.0, 1.0)
        out_state: dict[str, Any] = {"rng": rng, "state": state, **_records(hi - lo, record_gens)}
        out_state |= track.batch(hi - lo, len(record_gens))
        if subsample:
            # Generation t - 1's draws fill the pool to n * t samples.
            out_state |= {
                "pool": np.empty((hi - lo, n * t)),
                "pool_size": np.zeros(hi - lo, np.int64),
            }
        return out_state

    def advance(st: dict[str, Any], lo: int, hi: int, g: int, g_end: int) -> None:
        kern.advance(
            st["rng"],
            st["state"],
            g,
            g_end,
            common.slots(record_gens, g, g_end),
            st["rec_mu"],
            st["rec_logsig"],
            num_samples=n,
            ddof=cfg.ddof,
            regime=Regime(cfg.regime).code,
            num_real=cfg.num_real,
            sufficient=sufficient,
            mu0=0.0,
            sigma0=1.0,
            pool=st.get("pool"),
            pool_size=st.get("pool_size"),
            **track.kernel_args(st),
        )

    def collect(st: dict[str, Any], lo: int, hi: int) -> None:
        _collect(stream, st, lo, hi, track)
        track.collect(st, lo, hi)

    return driver.Plan(
        family="gaussian",
        meta={
            "method": cfg.resolved_method,
            "num_real": cfg.num_real,
            "record_generations": len(record_gens),
            "kernel": KERNEL,
        },
        arrays=stream.checkpointed() | track.arrays,
        stream=stream,
        tracker=track,
        default_batch=_batch_size(cfg),
        start=start,
        advance=advance,
        block=lambda batch, g: _block_size(cfg, batch),
        collect=collect,
        finish=lambda: _finish(cfg, record_gens, stream, track),
        check=_check_kernel,
    )


def _stream(cfg: GaussianConfig, num_records: int) -> aggregates.Stream:
    return aggregates.Stream(Tracker(cfg.curation).metrics(metrics.GAUSSIAN_METRICS), num_records, cfg.num_chains,
                             keep_chains=cfg.keep_chains, final_chains=cfg.final_chains)  # fmt: skip


def _records(count: int, record_gens: np.ndarray) -> dict[str, np.ndarray]:
    """A batch's records of mu and log sigma (standard units; zero at model 0)."""
    return {"rec_mu": np.zeros((count, len(record_gens))),
            "rec_logsig": np.zeros((count, len(record_gens)))}  # fmt: skip


def _collect(
    stream: aggregates.Stream, st: dict[str, Any], lo: int, hi: int, track: Tracker | None = None
) -> None:
    """Feed a finished batch's metrics (standard units) to the run's stream."""
    mu, ls = st["rec_mu"], st["rec_logsig"]

    def metrics_of(i: int, j: int) -> dict[str, np.ndarray]:
        # Records by chains: the metrics come out in the stream's layout.
        mu_t, ls_t = np.ascontiguousarray(mu[i:j].T), np.ascontiguousarray(ls[i:j].T)
        out = metrics.gaussian_metrics(mu_t, ls_t, 0.0, 1.0)
        return out if track is None else out | track.chunk(st, i, j)

    aggregates.feed(stream, lo, hi - lo, metrics_of)


def _check_kernel(stored: dict[str, Any], kernel: str = KERNEL) -> None:
    """Refuse to resume a run whose checkpoint an earlier kernel wrote (Numba before 0.4,
    the JAX sufficient method before 0.5)."""
    if stored.get("kernel") != kernel:
        version = stored.get("provenance", {}).get("collapsesim", "an older version")
        raise store.RunDirError(
            f"this run was begun by collapsesim {version}, whose checkpoints this version "
            "cannot continue (README: Changes of draws); run it again into another --out"
        )


def _jax_plan(
    cfg: GaussianConfig, record_gens: np.ndarray, stream: aggregates.Stream
) -> driver.Plan:
    """The same chains on the JAX backend (all local devices; keys from fold_in)."""
    from ..jaxchains import gaussian as jg

    precision = cfg.resolved_precision()
    sufficient = cfg.resolved_method == "sufficient"
    track = Tracker(cfg.curation, cfg.sigma0)

    def advance(st: dict[str, Any], lo: int, hi: int, g: int, g_end: int) -> None:
        chains = {k: v for k, v in st.items() if not k.startswith(("rec_", "curation_"))}
        jg.advance(
            chains,
            cfg.seed,
            np.arange(lo, hi, dtype=np.int64),
            g,
            g_end,
            common.slots(record_gens, g, g_end),
            st["rec_mu"],
            st["rec_logsig"],
            num_samples=cfg.num_samples,
            ddof=cfg.ddof,
            regime=Regime(cfg.regime).code,
            num_real=cfg.num_real,
            sufficient=sufficient,
            mu0=0.0,
            sigma0=1.0,
            dtype=precision,
            **track.kernel_args(st),
        )
        st.update(chains)

    def collect(st: dict[str, Any], lo: int, hi: int) -> None:
        _collect(stream, st, lo, hi, track)
        track.collect(st, lo, hi)

    blocks = common.TimedBlocks(cfg.num_generations, 2e-8 if sufficient else 4e-9 * cfg.num_samples)
    return driver.Plan(
        family="gaussian",
        meta={
            "method": cfg.resolved_method,
            "backend": "jax",
            "precision": precision,
            "num_real": cfg.num_real,
            "record_generations": len(record_gens),
            **({"kernel": JAX_KERNEL} if sufficient else {}),
        },
        arrays=stream.checkpointed() | track.arrays,
        stream=stream,
        tracker=track,
        default_batch=_batch_size(cfg)
        if Regime(cfg.regime) is Regime.ACCUMULATE_SUBSAMPLE
        else min(2**22, cfg.record_batch(16)),
        start=lambda lo, hi: (
            jg.init_state(
                hi - lo,
                0.0,
                1.0,
                cfg.num_samples * cfg.num_generations
                if Regime(cfg.regime) is Regime.ACCUMULATE_SUBSAMPLE
                else 0,
                curated=track.active,
            )
            | _records(hi - lo, record_gens)
            | track.batch(hi - lo, len(record_gens))
        ),
        advance=blocks.timed(advance),
        block=blocks.size,
        collect=collect,
        finish=lambda: _finish(cfg, record_gens, stream, track),
        check=(lambda stored: _check_kernel(stored, JAX_KERNEL)) if sufficient else lambda _: None,
    )


def _finish(
    cfg: GaussianConfig,
    record_gens: np.ndarray,
    stream: aggregates.Stream,
    track: Tracker | None = None,
) -> GaussianResult:
    units = _units(cfg)
    last = ("sigma", "log_sigma", "w2", "tail_mass") + (
        ("candidates",) if cfg.curation.active else ()
    )
    return GaussianResult(
        config=cfg,
        generations=record_gens,
        aggregates=stream.aggregates(units),
        final=stream.final(units),
        trajectories=stream.trajectories(units),
        summary=summarize(
            cfg,
            {name: stream.last(name, units.get(name)) for name in last},
            sigma=stream.last("sigma"),
            mu=stream.last("mu"),
            track=track,
        ),
    )


def _units(cfg: GaussianConfig) -> aggregates.Units:
    """The metrics of chains run from N(0, 1), for the chains from N(mu0, sigma0^2).

    Exact for the default original (0 + 1 x is x); KL divergences and the tail mass do
    not change with location and scale.
    """
    mu0, sigma0 = cfg.mu0, cfg.sigma0
    ls0 = math.log(sigma0)
    return {"mu": (mu0, sigma0), "sigma": (0.0, sigma0), "log_sigma": (ls0, 1.0),
            "w2": (0.0, sigma0)}  # fmt: skip


def summarize(
    cfg: GaussianConfig,
    final: dict[str, aggregates.Column],
    *,
    sigma: aggregates.Column,
    mu: aggregates.Column,
    track: Tracker | None = None,
) -> dict[str, Any]:
    """Return the run's summary: final-generation statistics beside exact theory.

    ``final``: the last generation's sigma, log_sigma, w2 and tail_mass across all
    chains (and with curation the candidates per kept sample); ``sigma`` and ``mu`` the
    same in standard units (as the chains ran: sigma / sigma0 and (mu - mu0) / sigma0),
    whose spread survives any mu0 and sigma0. ``track``: the run's curation (its cost).
    z-scores use the exact standard error where theory gives it (mean std) and the
    Monte Carlo one otherwise.
    """
    c, t, n = cfg.num_chains, cfg.num_generations, cfg.num_samples
    sig, ls = final["sigma"], final["log_sigma"]
    s2 = cfg.sigma0 * cfg.sigma0  # inf past 1e154: the variance of the mean is then no double
    with np.errstate(invalid="ignore", over="ignore"):
        q05, q50, q95 = sig.quantiles([0.05, 0.5, 0.95])
        sd = cfg.sigma0 * sigma.std() if c > 1 else math.nan
        lsd = ls.std() if c > 1 else math.nan
        var_m = mu.var() if c > 1 else math.nan
        m4 = mu.central4()
        var_mu = s2 * var_m
        se_var_mu = s2 * math.sqrt(max(m4 - var_m**2, 0.0) / c)
    mean_sig, mean_ls = sig.mean(), ls.mean()
    s: dict[str, Any] = {
        "chains": c,
        "generations": t,
        "samples": n,
        "ddof": cfg.ddof,
        "method": cfg.resolved_method,
        "backend": cfg.backend,
        "regime": cfg.regime,
        "seed": cfg.seed,
        "num_real": cfg.num_real,
        "mu0": cfg.mu0,
        "sigma0": cfg.sigma0,
        "mean_final_std": mean_sig,
        "stderr_final_std": float(sd / math.sqrt(c)),
        "median_final_std": float(q50),
        "q05_final_std": float(q05),
        "q95_final_std": float(q95),
        "mean_log_final_std": mean_ls,
        "stderr_log_final_std": float(lsd / math.sqrt(c)),
        "var_final_mean": float(var_mu),
        "stderr_var_final_mean": float(se_var_mu),
        "mean_final_w2": final["w2"].mean(),
        "stderr_final_w2": _stderr(final["w2"], c),
        "median_final_w2": final["w2"].median(),
        "mean_final_tail_mass": final["tail_mass"].mean(),
        "stderr_final_tail_mass": _stderr(final["tail_mass"], c),
        "median_final_tail_mass": final["tail_mass"].median(),
        # Generation 0 is the original: its mass beyond mu0 +- 3 sigma0 is erfc(3 / sqrt 2).
        "original_tail_mass": math.erfc(3.0 / math.sqrt(2.0)),
    }
    th = _Theory(cfg)
    e1, e2 = th.get("moment", 1), th.get("moment", 2)
    elog, slog, vmu = th.get("mean_log"), th.get("std_log"), th.get("var_mean", cfg.sigma0)
    rate = th.get("rate")
    s["theory_mean_final_std"] = None if e1 is None else cfg.sigma0 * e1
    se1 = math.sqrt(max(e2 - e1 * e1, 0.0) / c) if e1 is not None and e2 is not None else None
    s["theory_stderr_final_std"] = None if se1 is None else cfg.sigma0 * se1
    s["theory_mean_log_final_std"] = elog
    s["theory_stderr_log_final_std"] = slog / math.sqrt(c) if slog is not None else None
    s["theory_var_final_mean"] = vmu
    s["theory_collapse_rate"] = rate
    s["collapse_rate"], s["stderr_collapse_rate"] = metrics.decay_rate_of(
        math.log(cfg.sigma0), mean_ls, lsd, c, t
    )
    s["z_collapse_rate"] = common.z(s["collapse_rate"], rate, s["stderr_collapse_rate"])
    s["z_mean_final_std"] = common.z(mean_sig / cfg.sigma0, e1, se1)
    s["z_mean_log_final_std"] = common.z(
        s["mean_log_final_std"], elog, s["theory_stderr_log_final_std"]
    )
    vmu1 = th.get("var_mean", 1.0)
    se_var1 = math.sqrt(max(m4 - var_m**2, 0.0) / c)
    s["z_var_final_mean"] = common.z(float(var_m), vmu1, se_var1)  # in standard units
    _quantiles(cfg, s, th)
    for key, what in (("mean_final_std", "moment"), ("mean_log_final_std", "mean_log"),
                      ("var_final_mean", "var_mean"), ("collapse_rate", "rate")):  # fmt: skip
        if s[f"theory_{key}"] is None and what in th.why:
            s[f"why_theory_{key}"] = th.why[what]
    for key in ("mean_final_w2", "median_final_w2", "mean_final_tail_mass",
                "median_final_tail_mass"):  # fmt: skip
        s[f"why_theory_{key}"] = "no closed form is known for this metric"
    for key in ("median_final_w2", "median_final_tail_mass"):
        s[f"why_stderr_{key}"] = (
            "a median's standard error needs the metric's density, which has no closed form"
        )
    if track is not None and track.active:
        _variance(cfg, s, th, sigma)
        track.summarize(s, final.get("candidates"), t, th.get("candidates"))
    return {k: common.finite_or_none(v) for k, v in s.items()}


def _stderr(column: aggregates.Column, c: int) -> float | None:
    """The Monte Carlo standard error of a column's mean; None for one chain, and where
    the spread passes the doubles (a W2 in units of sigma0 = 1e300), as NaN."""
    if c < 2:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        return float(column.std()) / math.sqrt(c)


class _Theory:
    """The closed forms of a run's settings (:mod:`.theory`, or :mod:`.curated_theory`
    under curation), None where there is none."""

    def __init__(self, cfg: GaussianConfig) -> None:
        self.cfg = cfg
        self.cur = cfg.curation
        # fresh or keep-original with no real sample is replace, and has its theory.
        self.regime = theory_regime(cfg.regime, cfg.num_real)
        self.why: dict[str, str] = {}  # what -> why it has no closed form

    def get(self, what: str, arg: float = 1.0) -> float | None:
        cfg, cur = self.cfg, self.cur
        t, n, d, r = cfg.num_generations, cfg.num_samples, cfg.ddof, self.regime
        try:
            if not cur.active:
                plain: dict[str, Callable[[], Any]] = {
                    "moment": lambda: theory.moment_std(arg, t, n, d, 1.0, r),
                    "mean_log": lambda: theory.mean_log_std(t, n, d, cfg.sigma0, r),
                    "std_log": lambda: theory.std_log_std(t, n, d, r),
                    "var_mean": lambda: theory.var_mean(t, n, d, arg, r),
                    "rate": lambda: theory.collapse_rate(n, d, r),
                }
                return float(plain[what]())
            curated: dict[str, Callable[[], Any]] = {
                "moment": lambda: ct.moment_std(cur, int(arg), t, n, d, r),
                "mean_log": lambda: ct.mean_log_std(cur, t, n, d, cfg.sigma0, r),
                "std_log": lambda: ct.std_log_std(cur, t, n, d, r),
                "var_mean": lambda: ct.var_mean(cur, t, n, d, arg, r),
                "rate": lambda: ct.collapse_rate(cur, t, n, d, r),
                "candidates": lambda: ct.candidates(cur, n - cfg.num_real),
            }
            return float(curated[what]())
        except theory.NoClosedForm as err:
            self.why[what] = str(err)
            return None

    def quantiles(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        cfg, cur = self.cfg, self.cur
        t, n, d, r = cfg.num_generations, cfg.num_samples, cfg.ddof, self.regime
        try:
            if cur.active:
                return ct.quantile_std(cur, probs, t, n, d, cfg.sigma0, r)
            return theory.quantile_std(probs, t, n, d, cfg.sigma0, r)
        except theory.NoClosedForm as err:
            self.why["quantiles"] = str(err)
            return None


def _variance(
    cfg: GaussianConfig, s: dict[str, Any], th: _Theory, sigma: aggregates.Column
) -> None:
    """Add the mean variance ``E[sigma_T^2]`` beside its closed form to the summary ``s``
    (the moment curation's theory gives where ``E[sigma_T]`` has none)."""
    c, sigma0 = cfg.num_chains, cfg.sigma0
    with np.errstate(all="ignore"):  # a std past the doubles (inf) gives NaN moments: null
        m, v = sigma.mean(), sigma.var() * (c - 1) / c if c > 1 else math.nan
        mu3, mu4 = sigma.central3(), sigma.central4()
    # sigma^2 - E sigma^2 = 2 m d + d^2 - v with d = sigma - m: its variance is
    # 4 m^2 v + 4 m mu3 + mu4 - v^2.
    spread = math.sqrt(max(4 * m * m * v + 4 * m * mu3 + mu4 - v * v, 0.0) / c)
    s["mean_final_var"] = sigma0 * sigma0 * (m * m + v)
    s["stderr_final_var"] = sigma0 * sigma0 * spread if c > 1 else None
    e2 = th.get("moment", 2)
    s["theory_mean_final_var"] = None if e2 is None else sigma0 * sigma0 * e2
    s["z_mean_final_var"] = common.z(m * m + v, e2, spread if c > 1 else None)


def _quantiles(cfg: GaussianConfig, s: dict[str, Any], th: _Theory) -> None:
    """Add the exact 5%, 50% and 95% quantiles of sigma_T, their errors and z-scores to ``s``.

    Exact by characteristic-function inversion (where theory has a closed form); a sample
    quantile's standard error in log space is sqrt(p (1 - p) / C) / f(log x_p).
    """
    c, t = cfg.num_chains, cfg.num_generations
    probs = (0.05, 0.5, 0.95)
    names = ("q05", "median", "q95")
    qs: np.ndarray | None = None
    dens: np.ndarray | None = None
    exact = th.get("moment", 1) is not None
    found = th.quantiles(np.array(probs)) if exact and t > 0 else None
    if found is not None:
        qs, dens = found
    for k, (p, name) in enumerate(zip(probs, names, strict=True)):
        key = f"{name}_final_std"
        if qs is None or dens is None:
            s[f"theory_{key}"] = None if t > 0 or not exact else cfg.sigma0
            s[f"z_{key}"] = s[f"stderr_{key}"] = None
            if s[f"theory_{key}"] is None:
                s[f"why_theory_{key}"] = th.why.get("quantiles") or th.why.get(
                    "moment", "no closed form for the quantiles at these settings"
                )
            s[f"why_stderr_{key}"] = (
                "a quantile's standard error is taken from the exact density, which has no "
                "closed form here"
            )
            continue
        s[f"theory_{key}"] = float(qs[k])
        se_log = math.sqrt(p * (1 - p) / c) / float(dens[k])
        sim = s[key]
        s[f"stderr_{key}"] = sim * se_log if sim else None
        s[f"z_{key}"] = (math.log(sim) - math.log(qs[k])) / se_log if sim and sim > 0 else None


def load(out: Path) -> GaussianResult:
    """Load a complete run from its directory.

    Raises:
        store.RunDirError: the directory holds no complete run.
    """
    cfg, fields = Tracker.load(out, "gaussian", metrics.GAUSSIAN_METRICS, GaussianConfig)
    return GaussianResult(config=cfg, **fields)


def run(cfg: GaussianConfig, **kwargs: Any) -> GaussianResult:
    """Run the Gaussian experiment to the end; see :func:`iterate` for the arguments."""
    return common.drain(iterate(cfg, **kwargs))
