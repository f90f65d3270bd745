"""The runner of every chain family whose kernel records its own metrics.

The multivariate Gaussian, regression and KDE families keep models too large to store per
generation (a d x d covariance at d = 1000, a design, a point cloud), so their kernels
compute the metrics of each recorded model in place, ``rec[chain, metric, slot]``. What
is left to a family is its kernel, its configuration and its closed forms: a family's
runner module declares one :class:`Spec`, and batches, blocks, checkpoints, resume,
progress, curation's bookkeeping, the run-wide statistics, the summary beside theory,
Parquet and loading are here once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import aggregates
from ..regimes import theory_regime
from ..results import Result
from . import _common as common
from . import _driver as driver
from ._curation import Tracker

__all__ = ["Chains", "RecordedResult", "Spec", "batch_size", "iterate", "load", "summarize"]

_BLOCK_SECONDS = 0.25
_MAX_BATCH = 2**16
_STATE_BUDGET_BYTES = 1 * 2**30  # the states (pools, designs) of one batch


@dataclass
class Chains:
    """What a family's kernel gives the runner for one run.

    ``start(lo, hi)`` makes the batch state of chains ``[lo, hi)`` at model 0 (arrays with
    chains on axis 0, among them ``rng``, the chains' streams); ``advance(state, g, g_end,
    slots, rec, curation)`` moves it to model ``g_end`` in place, writing the metrics of
    every recorded model into ``rec`` (float64 ``(B, M, R)``; ``slots[t - g]`` is model
    t + 1's column, -1 where it is not recorded) and passing ``curation`` (the keywords
    ``curation``, ``tally`` and ``rec_cost``) to the kernel. ``model0`` holds each metric
    of the original itself, ``cost`` rough seconds per chain-generation on one thread (it
    sizes the blocks), ``chain_bytes`` the state's bytes per chain (it sizes the batches).
    ``snapshot`` and ``restore`` trim a state for a checkpoint and rebuild it.
    """

    metrics: tuple[str, ...]
    model0: dict[str, float]
    start: Callable[[int, int], dict[str, np.ndarray]]
    advance: Callable[[dict[str, Any], int, int, np.ndarray, np.ndarray, dict[str, Any]], None]
    cost: float
    chain_bytes: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    snapshot: Callable[[dict[str, Any], int], dict[str, Any]] | None = None
    restore: Callable[[dict[str, Any], int, int], dict[str, Any]] | None = None


def _no_theory(cfg: Any, generations: np.ndarray) -> dict[str, np.ndarray]:
    return {}


@dataclass(frozen=True)
class Spec:
    """A recorded-metric family's runner, declared.

    Attributes:
        family: the family's name (run.json's ``family``).
        config: its configuration class.
        result: its :class:`RecordedResult` subclass.
        metrics: the kernel's metrics, in storage order.
        chains: builds the run's :class:`Chains` from a configuration (imports Numba).
        header: the summary's leading fields of a configuration.
        theory: ``theory(cfg, generations)``, the closed forms ``E[metric]`` at those
            generations of the metrics that have one under ``cfg``.
        summarized: the metrics the summary reports, beside their theory.
        sigma0: the curation vector's units (the original's scale).
        dim: the samples' dimension (a linear reward's slopes).
        extra: adds family-specific keys: ``extra(cfg, summary, columns)`` with every
            metric's :class:`..aggregates.Column` at the last generation.
    """

    family: str
    config: type
    result: type[RecordedResult]
    metrics: tuple[str, ...]
    chains: Callable[[Any], Chains]
    header: Callable[[Any], dict[str, Any]]
    theory: Callable[[Any, np.ndarray], dict[str, np.ndarray]] = _no_theory
    summarized: tuple[str, ...] = ()
    sigma0: Callable[[Any], float] = lambda cfg: 1.0
    dim: Callable[[Any], int] = lambda cfg: 1
    extra: Callable[[Any, dict[str, Any], dict[str, aggregates.Column]], None] | None = None

    def tracker(self, cfg: Any) -> Tracker:
        """The run's curation bookkeeping."""
        return Tracker(cfg.curation, self.sigma0(cfg), self.dim(cfg))


@dataclass
class RecordedResult(Result):
    """What a recorded-metric family's run produced: :class:`Result`'s tables, and
    ``theory``, the closed forms of the metrics that have one (metric -> ``(R,)``)."""

    family: ClassVar[str] = "recorded"
    config: Any
    generations: np.ndarray
    aggregates: dict[str, dict[str, np.ndarray]]
    final: dict[str, np.ndarray]
    trajectories: dict[str, np.ndarray]
    summary: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    theory: dict[str, np.ndarray] = field(default_factory=dict)


def iterate(spec: Spec, cfg: Any, **options: Any) -> Any:
    """Run ``cfg`` of the family ``spec``, yielding progress; return its result.

    ``options`` are :func:`._driver.run_plan`'s.
    """
    return driver.run_plan(cfg, lambda: _plan(spec, cfg), lambda out: load(spec, out), **options)


def batch_size(cfg: Any, num_metrics: int, chain_bytes: int) -> int:
    """Chains advanced together: all of them up to 2^16, fewer where one batch's records
    or states (``chain_bytes`` a chain) would pass their budgets."""
    per_chain = 8 * num_metrics * cfg.record_count() + chain_bytes
    return max(1, min(_MAX_BATCH, cfg.num_chains, cfg.record_batch(8 * num_metrics),
                      _STATE_BUDGET_BYTES // max(per_chain, 1)))  # fmt: skip


def _plan(spec: Spec, cfg: Any) -> driver.Plan:
    chains = spec.chains(cfg)
    record_gens = np.asarray(cfg.record_generations(), np.int64)
    r, m = len(record_gens), len(chains.metrics)
    track = spec.tracker(cfg)
    stream = aggregates.Stream(track.metrics(chains.metrics), r, cfg.num_chains,
                               keep_chains=cfg.keep_chains, final_chains=cfg.final_chains)  # fmt: skip
    model0 = np.array([chains.model0[name] for name in chains.metrics], np.float64)
    batch = batch_size(cfg, m, chains.chain_bytes)

    def start(lo: int, hi: int) -> dict[str, Any]:
        st = chains.start(lo, hi)
        rec = np.empty((hi - lo, m, r))
        rec[:, :, 0] = model0
        return {**st, "rec": rec, **track.batch(hi - lo, r)}

    def advance(st: dict[str, Any], lo: int, hi: int, g: int, g_end: int) -> None:
        kernel_state = {k: v for k, v in st.items() if k != "rec" and not k.startswith("curation_")}
        chains.advance(kernel_state, g, g_end, common.slots(record_gens, g, g_end), st["rec"],
                       track.kernel_args(st))  # fmt: skip
        st.update(kernel_state)

    def block(count: int, g: int) -> int:
        per_gen = chains.cost * count / common.numba_threads()
        return int(min(max(cfg.num_generations, 1), max(1, _BLOCK_SECONDS / max(per_gen, 1e-12))))

    def collect(st: dict[str, Any], lo: int, hi: int) -> None:
        rec = st["rec"]

        def metrics_of(i: int, j: int) -> dict[str, np.ndarray]:
            out = {
                name: np.ascontiguousarray(rec[i:j, k].T) for k, name in enumerate(chains.metrics)
            }
            return out | track.chunk(st, i, j)

        aggregates.feed(stream, lo, hi - lo, metrics_of)
        track.collect(st, lo, hi)

    def snapshot(st: dict[str, Any], g: int) -> dict[str, Any]:
        if chains.snapshot is None:
            return st
        return chains.snapshot(st, g)

    def restore(saved: dict[str, Any], lo: int, hi: int) -> dict[str, Any]:
        if chains.restore is None:
            return saved
        return chains.restore(saved, lo, hi)

    return driver.Plan(
        family=spec.family,
        meta={**chains.meta, "num_real": cfg.num_real, "record_generations": r},
        arrays=stream.checkpointed() | track.arrays,
        stream=stream,
        tracker=track,
        default_batch=batch,
        start=start,
        advance=advance,
        block=block,
        collect=collect,
        finish=lambda: _finish(spec, cfg, record_gens, stream, track, chains.model0),
        snapshot=snapshot,
        restore=restore,
        check=lambda stored: _check_kernel(stored, chains.meta),
    )


def _check_kernel(stored: dict[str, Any], meta: dict[str, Any]) -> None:
    """Refuse to resume a run whose checkpoint another kernel version wrote."""
    from .. import store

    if "kernel" in meta and stored.get("kernel") != meta["kernel"]:
        raise store.RunDirError(
            f"this run was begun by a {stored.get('kernel', 'different')} kernel, whose "
            "checkpoints this version cannot continue (README: Changes of draws); run it "
            "again into another --out"
        )


def _finish(
    spec: Spec,
    cfg: Any,
    record_gens: np.ndarray,
    stream: aggregates.Stream,
    track: Tracker,
    model0: dict[str, float],
) -> RecordedResult:
    columns = {name: stream.last(name) for name in stream.names}
    return spec.result(
        config=cfg,
        generations=record_gens,
        aggregates=stream.aggregates(),
        final=stream.final(),
        trajectories=stream.trajectories(),
        summary=summarize(spec, cfg, columns, model0, track),
        theory=_theory(spec, cfg, record_gens),
    )


def _theory(spec: Spec, cfg: Any, generations: np.ndarray) -> dict[str, np.ndarray]:
    # fresh or keep-original with no real sample is replace, and has replace's theory.
    regime = theory_regime(cfg.regime, cfg.num_real)
    if regime != cfg.regime:
        cfg = dataclasses.replace(cfg, regime=regime, fresh_fraction=0.0, keep_fraction=0.0)
    return {k: np.asarray(v, np.float64) for k, v in spec.theory(cfg, generations).items()}


def no_theory(cfg: Any, track: Tracker | None, what: str) -> str:
    """Why ``what`` has no closed form at ``cfg``'s settings: its regime, its curation."""
    cur = track.cur.describe() if track is not None and track.active else ""
    regime = theory_regime(cfg.regime, cfg.num_real)
    return f"no closed form for {what} under {regime}" + (f" with {cur}" if cur else "")


def summarize(
    spec: Spec,
    cfg: Any,
    columns: dict[str, aggregates.Column],
    model0: dict[str, float],
    track: Tracker | None = None,
) -> dict[str, Any]:
    """The run's summary: the header, then every summarized metric's final statistics
    beside its closed form (z-scores with the Monte Carlo standard error) and its value
    at the original (``original_<metric>``).

    ``columns``: each metric's values at the last generation across all chains;
    ``model0``: each metric at model 0.
    """
    c, t = cfg.num_chains, cfg.num_generations
    s: dict[str, Any] = {"chains": c, "generations": t, **spec.header(cfg), "regime": cfg.regime,
                         "num_real": cfg.num_real, "seed": cfg.seed}  # fmt: skip
    exact = _theory(spec, cfg, np.array([t], np.int64))
    for name in spec.summarized:
        v = columns[name]
        with np.errstate(all="ignore"):
            mean = v.mean()
            se = v.std() / math.sqrt(c) if c > 1 else None
            q05, q50, q95 = v.quantiles([0.05, 0.5, 0.95])
        s[f"mean_final_{name}"] = mean
        s[f"stderr_final_{name}"] = se
        s[f"median_final_{name}"] = float(q50)
        s[f"q05_final_{name}"] = float(q05)
        s[f"q95_final_{name}"] = float(q95)
        th = float(exact[name][0]) if name in exact else None
        s[f"theory_mean_final_{name}"] = th
        if th is None:
            s[f"why_theory_mean_final_{name}"] = no_theory(cfg, track, f"the mean {name}")
        s[f"z_mean_final_{name}"] = common.z(mean, th, se)
        s[f"original_{name}"] = model0.get(name)
    if spec.extra is not None:
        spec.extra(cfg, s, columns)
    if track is not None and track.active:
        track.summarize(s, columns.get("candidates"), t, None)
    return {k: common.finite_or_none(v) for k, v in s.items()}


def load(spec: Spec, out: Path) -> RecordedResult:
    """Load a complete run of the family ``spec`` from its directory.

    Raises:
        store.RunDirError: the directory holds no complete run of the family.
    """
    cfg, fields = Tracker.load(Path(out), spec.family, spec.metrics, spec.config)
    return spec.result(config=cfg, theory=_theory(spec, cfg, fields["generations"]), **fields)
