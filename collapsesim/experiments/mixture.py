"""Runner of the Gaussian-mixture chain: batches, blocks, checkpoints, metrics, summary.

The pattern is the Gaussian runner's: :func:`iterate` yields a :class:`Progress` after
every block of generations and returns the :class:`MixtureResult`; :func:`run` drains
it. The kernel records each chain's fit (weights, means, covariances, EM iterations,
convergence, training log-likelihood) at the recorded generations and counts EM
iterations and failed fits over every generation; the metrics are computed from the
records at the end:

* ``l2``: the L2 distance between the fitted and the original densities (closed form);
* ``heldout_loglik``: mean log-likelihood of a fixed sample of the original (``heldout``
  points drawn from the seed's reserved stream ``2**64 - 1``, the same for every chain);
* ``tail_mass``: the fit's probability outside the original's 3-sigma region (the union
  of the original components' 3-sigma ellipsoids), exact along each of 256 directions
  and averaged over them (:func:`collapsesim.kernels.mixture.evaluate_fits`);
* ``component_std``: the weight-averaged scale ``det(C_k)^(1/2d)`` of the components
  (their geometric-mean standard deviation), with ``min_`` and ``max_component_std``;
* ``train_loglik``, ``em_iterations`` and ``converged`` of each recorded fit.

Per-component weights, means, covariance determinants and scales of the kept chains
are stored in ``components.parquet``, components sorted by weight (largest first).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import aggregates, curated_theory, metrics, store, theory
from ..config import ConfigError
from ..families.mixture import MixtureConfig
from ..kernels import mixture as kern
from ..regimes import Regime
from ..results import Columns, Result
from . import _common as common
from . import _driver as driver
from ._common import Progress
from ._curation import Tracker

__all__ = ["METRICS", "MixtureResult", "Progress", "iterate", "load", "run"]

METRICS = (
    "l2",
    "heldout_loglik",
    "tail_mass",
    "component_std",
    "min_component_std",
    "max_component_std",
    "train_loglik",
    "em_iterations",
    "converged",
)
"""Per-chain metrics of every recorded generation, in storage order."""

HELDOUT_CHAIN = 2**64 - 1  # the stream of the held-out sample
TAIL_DIRECTIONS = 256
TAIL_RADIUS = 3.0

_POOL_BUDGET_BYTES = 1 * 2**30  # accumulate regimes: memory for the pools of one batch
_POOL_LIMIT_BYTES = 4 * 2**30  # ... and for one chain's pool at most
_MAX_BATCH = 2**16
_BLOCK_SECONDS = 0.25
_COST_PER_POINT = 4e-8  # rough seconds per training point and component, to size blocks


@dataclass
class MixtureResult(Result):
    """What a mixture experiment produced; its tables are :class:`Result`'s and ``components``."""

    family: ClassVar[str] = "mixture"
    config: MixtureConfig
    generations: np.ndarray  # (R,) recorded generations
    aggregates: dict[str, dict[str, np.ndarray]]  # metric -> stat -> (R,)
    final: dict[str, np.ndarray]  # metric -> (C,) at the last generation, and totals
    trajectories: dict[str, np.ndarray]  # metric -> (Kc, R) for the kept chains
    # Kept chains' components, by weight: weights (Kc, R, K), means (.., K, d), covs (.., K, d, d)
    components: dict[str, np.ndarray]
    summary: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    def _stored(self) -> dict[str, Callable[[], Columns]]:
        return {**super()._stored(), "components": lambda: _component_table(self)}


def _accumulates(cfg: MixtureConfig) -> bool:
    return Regime(cfg.regime) in (Regime.ACCUMULATE, Regime.ACCUMULATE_SUBSAMPLE)


def _pool_bytes(cfg: MixtureConfig) -> int:
    return 8 * cfg.dim * cfg.num_samples * max(cfg.num_generations, 1)


def _batch_size(cfg: MixtureConfig) -> int:
    if _accumulates(cfg):
        return max(1, min(cfg.record_batch(8 * cfg.values_per_record),
                          _POOL_BUDGET_BYTES // _pool_bytes(cfg)))  # fmt: skip
    return min(_MAX_BATCH, cfg.record_batch(8 * cfg.values_per_record))


def _block_size(cfg: MixtureConfig, batch: int, g: int) -> int:
    points = cfg.num_samples * (g + 1 if _accumulates(cfg) else 1)
    per_gen = _COST_PER_POINT * points * cfg.num_components * max(cfg.dim, 1) * batch
    per_gen /= common.numba_threads()
    return int(min(max(cfg.num_generations, 1), max(1, _BLOCK_SECONDS / per_gen)))


def heldout_sample(cfg: MixtureConfig) -> np.ndarray:
    """The fixed held-out sample of the original, ``(heldout, d)``."""
    w0, m0, c0 = cfg.original_params()
    return kern.sample_mixture(w0, m0, c0, cfg.heldout, cfg.seed, HELDOUT_CHAIN)


def iterate(cfg: MixtureConfig, **options: Any) -> Generator[Progress, None, MixtureResult]:
    """Run the mixture experiment, yielding progress; return its result.

    ``options`` are :func:`._driver.run_plan`'s (``batch_chains`` defaults to all
    chains, up to 2^16; fewer for the accumulate regimes, whose pools must fit in 1 GiB).

    Raises:
        ConfigError: pools too large for memory (at once), or bad options.
    """
    if _accumulates(cfg) and _pool_bytes(cfg) > _POOL_LIMIT_BYTES:
        raise ConfigError(
            f"regime {cfg.regime} keeps {_pool_bytes(cfg) / 2**30:.1f} GiB of samples per "
            "chain (n x T points); reduce --samples or --generations"
        )
    return driver.run_plan(cfg, lambda: _plan(cfg), load, **options)


def _plan(cfg: MixtureConfig) -> driver.Plan:
    """Chains of the EM kernel recording each fit where asked."""
    c, t, n = cfg.num_chains, cfg.num_generations, cfg.num_samples
    k, d = cfg.num_components, cfg.dim
    w0, m0, c0 = cfg.original_params()
    record_gens = np.asarray(cfg.record_generations(), np.int64)
    regime = Regime(cfg.regime)
    num_real = cfg.num_real
    r = len(record_gens)
    track = Tracker(cfg.curation, dim=d)
    stream = aggregates.Stream(track.metrics(METRICS), r, c, keep_chains=cfg.keep_chains,
                               final_chains=cfg.final_chains)  # fmt: skip
    kc = stream.keep
    evaluation = _Evaluation(cfg)
    arrays = {
        # The kept chains' fits, the first final_chains chains' totals, all chains' sums.
        **{f"kept_{name}": v for name, v in kern.new_records(kc, r, k, d).items()},
        "final_iterations": np.zeros(stream.final_count, np.int64),
        "final_failed": np.zeros(stream.final_count, np.int64),
        "totals": np.zeros(2, np.int64),
        **stream.checkpointed(),
        **track.arrays,
    }

    def start(lo: int, hi: int) -> dict[str, Any]:
        rng, w, m, cv = kern.init_mixture_chains(
            cfg.seed, np.arange(lo, hi, dtype=np.int64), w0, m0, c0
        )
        # The chains start at the original, which may have another number of components.
        w, m, cv = _start(w, m, cv, k)
        st: dict[str, Any] = {"rng": rng, "weights": w, "means": m, "covs": cv}
        st |= {f"rec_{name}": v for name, v in kern.new_records(hi - lo, r, k, d).items()}
        if _accumulates(cfg):
            st |= {"pool": np.empty((hi - lo, n * t, d)), "pool_size": np.zeros(hi - lo, np.int64)}
        if regime is Regime.KEEP_ORIGINAL and num_real > 0:
            st["kept"] = np.empty((hi - lo, num_real, d))
        return st | track.batch(hi - lo, r)

    def snapshot(st: dict[str, Any], g: int) -> dict[str, Any]:
        if "pool" in st:  # only the filled part of the pools
            return {**st, "pool": st["pool"][:, : n * g]}
        return st

    def restore(saved: dict[str, Any], lo: int, hi: int) -> dict[str, Any]:
        if "pool" in saved:
            pool = np.empty((hi - lo, n * t, d))
            pool[:, : saved["pool"].shape[1]] = saved["pool"]
            saved = {**saved, "pool": pool}
        return saved

    def advance(st: dict[str, Any], lo: int, hi: int, g: int, g_end: int) -> None:
        kern.advance_mixture(
            st["rng"],
            st["weights"],
            st["means"],
            st["covs"],
            g,
            g_end,
            common.slots(record_gens, g, g_end),
            {name[4:]: arr for name, arr in st.items() if name.startswith("rec_")},
            num_samples=n,
            regime=regime.code,
            num_real=num_real,
            covariance_type=cfg.covariance,
            init=cfg.init,
            tol=cfg.tol,
            max_iter=cfg.max_iter,
            reg_covar=cfg.reg_covar,
            weights0=w0,
            means0=m0,
            covs0=c0,
            pool=st.get("pool"),
            pool_size=st.get("pool_size"),
            kept=st.get("kept"),
            **track.kernel_args(st),
        )

    def collect(st: dict[str, Any], lo: int, hi: int) -> None:
        _collect(stream, evaluation, arrays, st, lo, hi, track)
        track.collect(st, lo, hi)

    return driver.Plan(
        family="mixture",
        meta={"num_real": num_real, "record_generations": len(record_gens)},
        arrays=arrays,
        stream=stream,
        tracker=track,
        merges={
            "totals": "add",
            "final_iterations": "rows",
            "final_failed": "rows",
            **{name: "rows" for name in arrays if name.startswith("kept_")},
        },
        default_batch=_batch_size(cfg),
        start=start,
        advance=advance,
        block=lambda batch, g: _block_size(cfg, batch, g),
        collect=collect,
        finish=lambda: _finish(cfg, record_gens, stream, arrays, evaluation, track),
        snapshot=snapshot,
        restore=restore,
    )


def _start(
    w: np.ndarray, m: np.ndarray, cv: np.ndarray, k: int, nudge: float = 1e-3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model-0 parameters with K components for a warm first fit.

    Generation 0 is drawn from the original itself; only a warm start reads these
    parameters as its first initial point. With K components equal to the original's
    they are the original; otherwise the original's components are repeated (cycled)
    to K (fewer than the original's: its first K), with weights renormalised and
    repeated means nudged apart by ``nudge`` of their scale so that EM can separate them.
    """
    j = m.shape[1]
    if j == k:
        return w, m, cv
    idx = np.arange(k) % j
    w2 = w[:, idx] / w[:, idx].sum(axis=1, keepdims=True)
    m2 = m[:, idx].copy()
    cv2 = cv[:, idx].copy()
    copy_no = np.arange(k) // j
    scale = np.sqrt(np.diagonal(cv2, axis1=2, axis2=3))
    m2[:, :, 0] += nudge * scale[:, :, 0] * (copy_no - copy_no.mean())
    return np.ascontiguousarray(w2), np.ascontiguousarray(m2), np.ascontiguousarray(cv2)


def chain_metrics(
    cfg: MixtureConfig,
    rec: dict[str, np.ndarray],
    heldout: np.ndarray,
    directions: tuple[np.ndarray, np.ndarray],
) -> dict[str, np.ndarray]:
    """Return every metric of :data:`METRICS` as ``(chains, records)`` arrays."""
    c, r, k = rec["weights"].shape
    d = cfg.dim
    w0, m0, c0 = cfg.original_params()
    w = rec["weights"].reshape(c * r, k)
    mu = rec["means"].reshape(c * r, k, d)
    cv = rec["covs"].reshape(c * r, k, d, d)
    l2 = np.empty(c * r)
    step = max(1, 2**20 // (k * max(len(w0), 1) * d * d))
    for s in range(0, c * r, step):
        l2[s : s + step] = metrics.mixture_l2(
            w[s : s + step], mu[s : s + step], cv[s : s + step], w0, m0, c0
        )
    loglik, tail = kern.evaluate_fits(
        w,
        mu,
        cv,
        heldout,
        w0,
        m0,
        c0,
        directions=directions,
        radius=TAIL_RADIUS,
    )
    scales = component_scales(cv)
    with np.errstate(invalid="ignore"):
        mean_scale = np.sum(w * scales, axis=1)
    out = {
        "l2": l2,
        "heldout_loglik": loglik,
        "tail_mass": tail,
        "component_std": mean_scale,
        "min_component_std": scales.min(axis=1),
        "max_component_std": scales.max(axis=1),
    }
    out = {name: v.reshape(c, r) for name, v in out.items()}
    out["train_loglik"] = rec["lower_bound"].copy()
    out["em_iterations"] = rec["n_iter"].astype(np.float64)
    out["converged"] = rec["converged"].astype(np.float64)
    # Generation 0 is the original itself, not a fit.
    out["train_loglik"][:, 0] = np.nan
    out["em_iterations"][:, 0] = np.nan
    out["converged"][:, 0] = np.nan
    return out


def component_scales(covs: np.ndarray) -> np.ndarray:
    """``det(C)^(1/2d)`` of covariances ``(..., d, d)``: the geometric-mean std."""
    d = covs.shape[-1]
    sign, logdet = np.linalg.slogdet(covs)
    return np.where(sign > 0, np.exp(logdet / (2 * d)), np.nan)


class _Evaluation:
    """What every batch's metrics are measured against: the original's own metrics, the
    held-out sample and the tail directions."""

    def __init__(self, cfg: MixtureConfig) -> None:
        self.cfg = cfg
        w0, m0, c0 = cfg.original_params()
        # Record 0 holds the chains' start: the original, its components repeated (or its
        # first K) to K components; its metrics are the original's own.
        self.start = _start(w0[None], m0[None], c0[None], cfg.num_components, nudge=0.0)
        self.heldout = heldout_sample(cfg)
        self.directions = kern.tail_directions(cfg.dim, TAIL_DIRECTIONS, cfg.seed)
        ref_ll, ref_tail = kern.evaluate_fits(
            w0[None],
            m0[None],
            c0[None],
            self.heldout,
            w0,
            m0,
            c0,
            directions=self.directions,
            radius=TAIL_RADIUS,
        )
        scales0 = component_scales(c0)
        self.reference = {
            "original_heldout_loglik": float(ref_ll[0]),
            "original_tail_mass": float(ref_tail[0]),
            "original_component_std": float(np.sum(w0 * scales0)),
            "original_min_component_std": float(scales0.min()),
        }
        self.model0 = {
            "l2": 0.0,
            "heldout_loglik": self.reference["original_heldout_loglik"],
            "tail_mass": self.reference["original_tail_mass"],
            "component_std": self.reference["original_component_std"],
            "min_component_std": float(scales0.min()),
            "max_component_std": float(scales0.max()),
        }

    def fix_start(self, rec: dict[str, np.ndarray]) -> None:
        """Write model 0 (the start) into a batch's records."""
        w, m, cv = self.start
        rec["weights"][:, 0], rec["means"][:, 0], rec["covs"][:, 0] = w[0], m[0], cv[0]
        rec["n_iter"][:, 0], rec["converged"][:, 0], rec["lower_bound"][:, 0] = 0, True, np.nan

    def metrics(self, rec: dict[str, np.ndarray], i: int, j: int) -> dict[str, np.ndarray]:
        """The metrics of a batch's chains ``i..j``, records by chains ``(R, j - i)``."""
        part = {name: v[i:j] for name, v in rec.items()}
        out = chain_metrics(self.cfg, part, self.heldout, self.directions)
        for name, value in self.model0.items():
            out[name][:, 0] = value
        return {name: np.ascontiguousarray(v.T) for name, v in out.items()}


def _collect(
    stream: aggregates.Stream,
    evaluation: _Evaluation,
    arrays: dict[str, np.ndarray],
    st: dict[str, Any],
    lo: int,
    hi: int,
    track: Tracker | None = None,
) -> None:
    """Take a finished batch: its metrics into the stream, its kept fits and totals."""
    rec = {name: st[f"rec_{name}"] for name in kern.new_records(0, 0, 0, 0)}
    evaluation.fix_start(rec)

    def metrics_of(i: int, j: int) -> dict[str, np.ndarray]:
        out = evaluation.metrics(rec, i, j)
        return out if track is None else out | track.chunk(st, i, j)

    # The metrics run parallel Numba kernels (tail mass): on this thread, not overlapped.
    aggregates.feed(stream, lo, hi - lo, metrics_of, overlap=False)
    kc = stream.keep
    if lo < kc:
        for name in rec:
            arrays[f"kept_{name}"][lo : min(hi, kc)] = rec[name][: min(hi, kc) - lo]
    if lo < stream.final_count:
        f = min(hi, stream.final_count) - lo
        arrays["final_iterations"][lo : lo + f] = rec["total_iterations"][:f]
        arrays["final_failed"][lo : lo + f] = rec["total_failed"][:f]
    arrays["totals"] += [rec["total_iterations"].sum(), rec["total_failed"].sum()]


def _finish(
    cfg: MixtureConfig,
    record_gens: np.ndarray,
    stream: aggregates.Stream,
    arrays: dict[str, np.ndarray],
    evaluation: _Evaluation,
    track: Tracker | None = None,
) -> MixtureResult:
    final = stream.final()
    final["total_em_iterations"] = arrays["final_iterations"].astype(np.float64)
    final["total_failed_fits"] = arrays["final_failed"].astype(np.float64)
    kept = {name: arrays[f"kept_{name}"] for name in ("weights", "means", "covs")}
    # The kept chains' components, sorted by weight (largest first) within each fit.
    order = np.argsort(-kept["weights"], axis=2, kind="stable")
    components = {
        "weights": np.take_along_axis(kept["weights"], order, axis=2),
        "means": np.take_along_axis(kept["means"], order[..., None], axis=2),
        "covs": np.take_along_axis(kept["covs"], order[..., None, None], axis=2),
    }
    columns = {name: stream.last(name) for name in stream.names}
    return MixtureResult(
        config=cfg,
        generations=record_gens,
        aggregates=stream.aggregates(),
        final=final,
        trajectories=stream.trajectories(),
        components=components,
        summary=summarize(cfg, columns, evaluation.reference, arrays["totals"], track),
    )


def summarize(
    cfg: MixtureConfig,
    final: dict[str, aggregates.Column],
    reference: dict[str, float],
    totals: np.ndarray,
    track: Tracker | None = None,
) -> dict[str, Any]:
    """Return the run's summary: final-generation statistics and EM diagnostics.

    ``final``: each metric's last generation across all chains; ``totals``: the EM
    iterations and the failed fits of all chains together; ``track``: the run's
    curation (its cost).
    """
    c, t = cfg.num_chains, cfg.num_generations
    s: dict[str, Any] = {
        "chains": c,
        "generations": t,
        "samples": cfg.num_samples,
        "components": cfg.num_components,
        "dim": cfg.dim,
        "covariance": cfg.covariance,
        "init": cfg.init,
        "original": cfg.original,
        "original_components": len(cfg.weights0),
        "regime": cfg.regime,
        "seed": cfg.seed,
        "num_real": cfg.num_real,
    }
    for name, key in (
        ("l2", "l2"),
        ("component_std", "component_std"),
        ("min_component_std", "min_component_std"),
        ("heldout_loglik", "heldout_loglik"),
        ("tail_mass", "tail_mass"),
    ):
        v = final[name]
        with np.errstate(invalid="ignore"):
            s[f"mean_final_{key}"] = v.mean()
            s[f"stderr_final_{key}"] = v.std() / math.sqrt(c) if c > 1 else None
            s[f"median_final_{key}"] = v.median()
    s.update(reference)
    fits = c * t
    s["mean_em_iterations"] = float(totals[0] / fits) if fits else None
    s["nonconverged_fraction"] = float(totals[1] / fits) if fits else None
    if track is not None:
        exact = None
        with contextlib.suppress(theory.NoClosedForm):
            exact = curated_theory.candidates(track.cur, cfg.num_samples - cfg.num_real,
                                              gaussian=False)  # fmt: skip
        track.summarize(s, final.get("candidates"), t, exact)
    return {key: common.finite_or_none(v) for key, v in s.items()}


def _component_table(result: MixtureResult) -> Columns:
    """Long table of the kept chains' components (sorted by weight within each fit)."""
    comp = result.components
    kc, r, k = comp["weights"].shape
    d = result.config.dim
    w, m, cv = comp["weights"], comp["means"], comp["covs"]
    cols: dict[str, np.ndarray] = {
        "chain": np.repeat(np.arange(kc, dtype=np.int64), r * k),
        "generation": np.tile(np.repeat(result.generations, k), kc),
        "component": np.tile(np.arange(k, dtype=np.int64), kc * r),
        "weight": w.reshape(-1),
    }
    for j in range(d):
        cols[f"mean_{j}"] = m[..., j].reshape(-1)
    for a in range(d):
        for b in range(a + 1):
            cols[f"cov_{a}{b}" if d <= 10 else f"cov_{a}_{b}"] = cv[..., a, b].reshape(-1)
    cols["cov_det"] = np.linalg.det(cv).reshape(-1)
    cols["std"] = component_scales(cv).reshape(-1)
    return cols


def load(out: Path) -> MixtureResult:
    """Load a complete mixture run from its directory.

    Raises:
        store.RunDirError: the directory holds no complete mixture run.
    """
    out = Path(out)
    cfg, fields = Tracker.load(out, "mixture", METRICS, MixtureConfig)
    r = len(fields["generations"])
    kc = fields["trajectories"][METRICS[0]].shape[0]
    comp = store.read_parquet(
        out / "components.parquet", "SELECT * FROM t ORDER BY chain, generation, component"
    )
    k, d = cfg.num_components, cfg.dim
    means = np.stack([comp[f"mean_{j}"] for j in range(d)], axis=-1).reshape(kc, r, k, d)
    covs = np.empty((kc * r * k, d, d))
    for a in range(d):
        for b in range(a + 1):
            v = comp[f"cov_{a}{b}" if d <= 10 else f"cov_{a}_{b}"]
            covs[:, a, b] = covs[:, b, a] = v
    components = {
        "weights": comp["weight"].reshape(kc, r, k),
        "means": means,
        "covs": covs.reshape(kc, r, k, d, d),
    }
    return MixtureResult(config=cfg, components=components, **fields)


def run(cfg: MixtureConfig, **kwargs: Any) -> MixtureResult:
    """Run the mixture experiment to the end; see :func:`iterate` for the arguments."""
    return common.drain(iterate(cfg, **kwargs))
