"""Runner of the token chains: batches, blocks, checkpoints, theory, summary.

The pattern is the other families': :func:`iterate` yields a :class:`Progress` after every
block of generations and returns the :class:`TokenResult`; :func:`run` drains it. The
kernel computes the metrics of the recorded models in place
(:data:`collapsesim.kernels.categorical.METRICS`): heterozygosity ``1 - sum p^2``,
entropy (nats), support size, the share of the most likely category, the mass of the
categories ranked beyond the original's top 10% and top 1% (``tail10``, ``tail1``), total
variation and KL(model || original) to the original. It also notes the first model of
each chain with a single category (``fixed_at``), and stores chain 0's whole
distribution at a few generations for the rank-frequency plot.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import aggregates, curated_theory, store, theory
from ..config import ConfigError
from ..families.tokens import TokenConfig
from ..kernels import categorical as kern
from ..regimes import Regime, theory_regime
from ..results import Columns, Result
from . import _common as common
from . import _driver as driver
from ._common import Progress
from ._curation import Tracker

__all__ = ["METRICS", "Progress", "TokenResult", "iterate", "load", "run"]

METRICS = kern.METRICS

_POOL_BUDGET_BYTES = 1 * 2**30  # training tokens of one batch
_POOL_LIMIT_BYTES = 4 * 2**30
_MAX_BATCH = 2**16
_BLOCK_SECONDS = 0.25
_COST_PER_TOKEN = 2e-9
_COST_PER_CATEGORY = 6e-9
_SNAPSHOTS = 6


@dataclass
class TokenResult(Result):
    """What a token experiment produced; its tables are :class:`Result`'s and ``snapshots``."""

    family: ClassVar[str] = "tokens"
    config: TokenConfig
    generations: np.ndarray  # (R,) recorded generations
    aggregates: dict[str, dict[str, np.ndarray]]  # metric -> stat -> (R,)
    final: dict[str, np.ndarray]  # metric -> (C,) at the last generation, and fixed_at
    trajectories: dict[str, np.ndarray]  # metric -> (Kc, R) for the kept chains
    snapshot_generations: np.ndarray  # (S,)
    snapshots: np.ndarray  # (S, K) chain 0's distribution
    summary: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    def _stored(self) -> dict[str, Callable[[], Columns]]:
        return {**super()._stored(), "snapshots": self._snapshot_table}

    def _snapshot_table(self) -> Columns:
        """Long table of chain 0's whole distribution at the snapshot generations."""
        s, k = self.snapshots.shape
        return {
            "generation": np.repeat(self.snapshot_generations, k),
            "category": np.tile(np.arange(k, dtype=np.int64), s),
            "p": self.snapshots.reshape(-1),
        }


def _accumulates(cfg: TokenConfig) -> bool:
    return Regime(cfg.regime) in (Regime.ACCUMULATE, Regime.ACCUMULATE_SUBSAMPLE)


def _capacity(cfg: TokenConfig) -> int:
    return cfg.num_samples * (cfg.num_generations + 1) if _accumulates(cfg) else cfg.num_samples


def _batch_size(cfg: TokenConfig) -> int:
    per = 4 * _capacity(cfg)
    return max(1, min(_MAX_BATCH, cfg.record_batch(64), _POOL_BUDGET_BYTES // per))


def _block_size(cfg: TokenConfig, batch: int, g: int) -> int:
    plain = cfg.smoothing == 0 and not cfg.transformed
    tokens = cfg.num_samples * (2 if plain else 3)
    per_gen = _COST_PER_TOKEN * tokens + (0.0 if plain else _COST_PER_CATEGORY * cfg.categories)
    if Regime(cfg.regime) is Regime.ACCUMULATE and not plain:
        per_gen += _COST_PER_TOKEN * cfg.num_samples * g
    per_gen *= batch / common.numba_threads()
    return int(min(max(cfg.num_generations, 1), max(1, _BLOCK_SECONDS / per_gen)))


def snapshot_generations(cfg: TokenConfig) -> np.ndarray:
    """Generations whose whole distribution chain 0 stores: 0, log-spaced ones, and T."""
    t = cfg.num_generations
    if t == 0:
        return np.array([0], np.int64)
    gens = np.unique(np.round(np.geomspace(1, t, _SNAPSHOTS - 1)).astype(np.int64))
    return np.concatenate([[0], gens])


def iterate(cfg: TokenConfig, **options: Any) -> Generator[Progress, None, TokenResult]:
    """Run the token experiment, yielding progress; return its result.

    ``options`` are :func:`._driver.run_plan`'s.

    Raises:
        ConfigError: a pool too large for memory (at once), or bad options.
    """
    if 4 * _capacity(cfg) > _POOL_LIMIT_BYTES:
        raise ConfigError(
            f"regime {cfg.regime} keeps {4 * _capacity(cfg) / 2**30:.1f} GiB of tokens per "
            "chain; reduce --samples or --generations"
        )
    return driver.run_plan(cfg, lambda: _plan(cfg), load, **options)


def _plan(cfg: TokenConfig) -> driver.Plan:
    """Chains of the categorical kernel recording metrics (and chain 0's model) where asked."""
    c, n = cfg.num_chains, cfg.num_samples
    record_gens = np.asarray(cfg.record_generations(), np.int64)
    snap_gens = snapshot_generations(cfg)
    regime = Regime(cfg.regime)
    num_real = cfg.num_real
    p0 = cfg.p0()
    original = _original_metrics(p0)
    snaps = np.empty((len(snap_gens), len(p0)))
    snaps[0] = p0
    track = Tracker(cfg.curation)
    stream = aggregates.Stream(track.metrics(METRICS), len(record_gens), c,
                               keep_chains=cfg.keep_chains, final_chains=cfg.final_chains)  # fmt: skip
    arrays = {
        "snaps": snaps,
        # Chains fixed at each generation (index g + 1; index 0: not fixed), and the
        # fixation generations of the chains final.parquet keeps.
        "fixed_hist": np.zeros(cfg.num_generations + 2, np.int64),
        "fixed_final": np.empty(stream.final_count),
        **stream.checkpointed(),
        **track.arrays,
    }

    def records(lo: int, hi: int) -> dict[str, np.ndarray]:
        rec = np.empty((hi - lo, len(record_gens), kern.NUM_METRICS))
        rec[:, 0] = original
        return {"rec": rec, "fixed_at": np.full(hi - lo, -1, np.int64)}

    def collect(st: dict[str, Any], lo: int, hi: int) -> None:
        _collect(stream, arrays, st, lo, hi, track)
        track.collect(st, lo, hi)

    def finish() -> TokenResult:
        return _finish(cfg, p0, record_gens, stream, arrays, snap_gens, track)

    if cfg.backend == "jax":
        return _jax_plan(cfg, p0, record_gens, snap_gens, arrays, finish, records, collect, track)

    def start(lo: int, hi: int) -> dict[str, Any]:
        rng, train, size, _ = kern.init_token_chains(
            cfg.seed, np.arange(lo, hi, dtype=np.int64), _capacity(cfg)
        )
        st: dict[str, Any] = {"rng": rng, "train": train, "size": size, **records(lo, hi)}
        st |= track.batch(hi - lo, len(record_gens))
        if regime is Regime.KEEP_ORIGINAL and num_real > 0:
            st["kept"] = np.zeros((hi - lo, num_real), np.int32)
        return st

    def snapshot(st: dict[str, Any], g: int) -> dict[str, Any]:
        held = int(st["size"].max()) if _accumulates(cfg) else n
        return {**st, "train": st["train"][:, :held]}

    def restore(saved: dict[str, Any], lo: int, hi: int) -> dict[str, Any]:
        train = np.zeros((hi - lo, _capacity(cfg)), np.int32)
        train[:, : saved["train"].shape[1]] = saved["train"]
        return {**saved, "train": train}

    def advance(st: dict[str, Any], lo: int, hi: int, g: int, g_end: int) -> None:
        kern.advance_tokens(
            st["rng"],
            st["train"],
            st["size"],
            st["fixed_at"],
            g,
            g_end,
            common.slots(record_gens, g, g_end),
            st["rec"],
            num_samples=n,
            regime=regime.code,
            num_real=num_real,
            p0=p0,
            smoothing=cfg.smoothing,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            kept=st.get("kept"),
            snap_slots=common.slots(snap_gens, g, g_end),
            snaps=snaps,
            snap_row=0 if lo == 0 else -1,
            **track.kernel_args(st),
        )

    return driver.Plan(
        family="tokens",
        meta={"num_real": num_real, "record_generations": len(record_gens)},
        arrays=arrays,
        chain0_arrays=("snaps",),
        stream=stream,
        tracker=track,
        merges={"fixed_hist": "add", "fixed_final": "rows"},
        default_batch=_batch_size(cfg),
        start=start,
        advance=advance,
        block=lambda batch, g: _block_size(cfg, batch, g),
        collect=collect,
        finish=finish,
        snapshot=snapshot,
        restore=restore,
    )


def _jax_plan(
    cfg: TokenConfig,
    p0: np.ndarray,
    record_gens: np.ndarray,
    snap_gens: np.ndarray,
    arrays: dict[str, np.ndarray],
    finish: Callable[[], TokenResult],
    records: Callable[[int, int], dict[str, np.ndarray]],
    collect: Callable[[dict[str, Any], int, int], None],
    track: Tracker,
) -> driver.Plan:
    """The same chains on the JAX backend (all local devices; keys from fold_in)."""
    from ..jaxchains import tokens as jt

    precision = cfg.resolved_precision()
    num_real = cfg.num_real
    subsample = Regime(cfg.regime) is Regime.ACCUMULATE_SUBSAMPLE

    def advance(st: dict[str, Any], lo: int, hi: int, g: int, g_end: int) -> None:
        chains = {k: v for k, v in st.items() if k != "rec" and not k.startswith("curation_")}
        jt.advance(
            chains,
            cfg.seed,
            np.arange(lo, hi, dtype=np.int64),
            g,
            g_end,
            common.slots(record_gens, g, g_end),
            st["rec"],
            num_samples=cfg.num_samples,
            regime=Regime(cfg.regime).code,
            num_real=num_real,
            p0=p0,
            smoothing=cfg.smoothing,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            dtype=precision,
            snap_slots=common.slots(snap_gens, g, g_end),
            snaps=arrays["snaps"],
            snap_row=0 if lo == 0 else -1,
            **track.kernel_args(st),
        )
        st.update(chains)

    blocks = common.TimedBlocks(cfg.num_generations, 5e-9 * (cfg.num_samples + 4 * cfg.categories))
    return driver.Plan(
        family="tokens",
        meta={
            "num_real": num_real,
            "record_generations": len(record_gens),
            "backend": "jax",
            "precision": precision,
        },
        arrays=arrays,
        default_batch=max(
            1,
            min(
                cfg.record_batch(64),
                2**28 // (4 * cfg.categories),
                _batch_size(cfg) if subsample else cfg.num_chains,
            ),
        ),
        start=lambda lo, hi: (
            jt.init_state(
                hi - lo,
                cfg.categories,
                num_real,
                _capacity(cfg) if subsample else 0,
                curated=track.active,
            )
            | {"rec": records(lo, hi)["rec"]}
            | track.batch(hi - lo, len(record_gens))
        ),
        advance=blocks.timed(advance),
        block=blocks.size,
        collect=collect,
        finish=finish,
    )


def _collect(
    stream: aggregates.Stream,
    arrays: dict[str, np.ndarray],
    st: dict[str, Any],
    lo: int,
    hi: int,
    track: Tracker | None = None,
) -> None:
    """Take a finished batch: its metrics into the stream, its fixation generations."""
    rec, fixed_at = st["rec"], st["fixed_at"]

    def metrics_of(i: int, j: int) -> dict[str, np.ndarray]:
        out = {name: np.ascontiguousarray(rec[i:j, :, m].T) for m, name in enumerate(METRICS)}
        return out if track is None else out | track.chunk(st, i, j)

    aggregates.feed(stream, lo, hi - lo, metrics_of)
    arrays["fixed_hist"] += np.bincount(fixed_at + 1, minlength=len(arrays["fixed_hist"]))
    if lo < stream.final_count:
        f = min(hi, stream.final_count)
        arrays["fixed_final"][lo:f] = np.where(fixed_at[: f - lo] < 0, np.nan, fixed_at[: f - lo])


def _original_metrics(p0: np.ndarray) -> np.ndarray:
    rare10, rare1 = kern.rare_masks(p0)
    out = np.empty(kern.NUM_METRICS)
    with np.errstate(divide="ignore"):
        log_p0 = np.log(p0)
    kern._metrics(p0, p0, log_p0, rare10, rare1, out)
    return out


def _finish(
    cfg: TokenConfig,
    p0: np.ndarray,
    record_gens: np.ndarray,
    stream: aggregates.Stream,
    arrays: dict[str, np.ndarray],
    snap_gens: np.ndarray,
    track: Tracker | None = None,
) -> TokenResult:
    final = stream.final()
    final["fixed_at"] = arrays["fixed_final"].copy()
    return TokenResult(
        config=cfg,
        generations=record_gens,
        aggregates=stream.aggregates(),
        final=final,
        trajectories=stream.trajectories(),
        snapshot_generations=snap_gens,
        snapshots=arrays["snaps"],
        summary=summarize(
            cfg,
            p0,
            {name: stream.last(name) for name in stream.names},
            arrays["fixed_hist"],
            track,
        ),
    )


def summarize(
    cfg: TokenConfig,
    p0: np.ndarray,
    final: dict[str, aggregates.Column],
    fixed_hist: np.ndarray,
    track: Tracker | None = None,
) -> dict[str, Any]:
    """Return the run's summary: final statistics beside exact theory where it exists.

    ``final``: each metric's last generation across all chains; ``fixed_hist``: chains
    fixed at each generation g (index g + 1; index 0 the chains not fixed); ``track``:
    the run's curation (its cost). The closed forms assume uncurated draws: under
    curation there are none but the cost's.
    """
    c, t, n = cfg.num_chains, cfg.num_generations, cfg.num_samples
    s: dict[str, Any] = {
        "chains": c,
        "generations": t,
        "samples": n,
        "categories": len(p0),
        "original": cfg.original,
        "init": cfg.original,  # the option's old name, kept for one release
        "regime": cfg.regime,
        "backend": cfg.backend,
        "temperature": cfg.temperature,
        "top_k": cfg.top_k,
        "top_p": cfg.top_p,
        "smoothing": cfg.smoothing,
        "seed": cfg.seed,
        "num_real": cfg.num_real,
    }
    for name, key in (
        ("heterozygosity", "heterozygosity"),
        ("entropy", "entropy"),
        ("support", "support"),
        ("top_share", "top_share"),
        ("tail10", "tail10_mass"),
        ("tail1", "tail1_mass"),
        ("tv", "tv"),
    ):
        v = final[name]
        s[f"mean_final_{key}"] = v.mean()
        s[f"stderr_final_{key}"] = v.std() / math.sqrt(c) if c > 1 else None
    num_fixed = int(fixed_hist[1:].sum())
    s["fixed_fraction"] = num_fixed / c
    s["stderr_fixed_fraction"] = float(
        math.sqrt(max(s["fixed_fraction"] * (1 - s["fixed_fraction"]), 0) / c)
    )
    s["median_fixation_generation"] = _median_fixation(fixed_hist) if num_fixed else None
    s["original_entropy"] = float(-np.sum(p0[p0 > 0] * np.log(p0[p0 > 0])))
    s["original_support"] = int(np.count_nonzero(p0))
    rare10, rare1 = kern.rare_masks(p0)
    curated = track is not None and track.active
    # fresh or keep-original with no real sample is replace, and has its theory.
    regime = theory_regime(cfg.regime, cfg.num_real)
    eps, tr = cfg.smoothing, cfg.transformed or curated
    het = sup = fix = m10 = m1 = None
    why: dict[str, str] = {}
    try:
        het = float(theory.token_heterozygosity(t, n, p0, regime, eps, tr))
    except theory.NoClosedForm as err:
        why["mean_final_heterozygosity"] = str(err)
    try:
        m10 = float(theory.token_mean_mass(t, n, p0, rare10, regime, cfg.num_real, eps, tr))
        m1 = float(theory.token_mean_mass(t, n, p0, rare1, regime, cfg.num_real, eps, tr))
    except theory.NoClosedForm as err:
        why["mean_final_tail10_mass"] = why["mean_final_tail1_mass"] = str(err)
    if regime == "replace" and eps == 0 and not tr:
        try:
            sp, fx = theory.token_support_fixation(t, n, p0)
            # Rounding can take a probability a few ulps past 1 after many generations.
            sup, fix = float(sp[0]), min(1.0, max(0.0, float(fx[0])))
        except theory.NoClosedForm as err:
            why["mean_final_support"] = why["fixed_fraction"] = str(err)
    else:
        why["mean_final_support"] = why["fixed_fraction"] = (
            "exact support and fixation hold under replace without smoothing, decoding or curation"
        )
    _fixation_times(s, fixed_hist, t, n, p0, regime == "replace" and eps == 0 and not tr, why)
    for key in ("mean_final_entropy", "mean_final_top_share", "mean_final_tv"):
        why[key] = "no closed form is known for this metric"
    s.update({f"why_theory_{key}": text for key, text in why.items()})
    s["theory_mean_final_heterozygosity"] = het
    s["theory_mean_final_support"] = sup
    s["theory_fixed_fraction"] = fix
    s["theory_mean_final_tail10_mass"] = m10
    s["theory_mean_final_tail1_mass"] = m1
    s["z_mean_final_heterozygosity"] = common.z(
        s["mean_final_heterozygosity"], het, s["stderr_final_heterozygosity"]
    )
    s["z_mean_final_support"] = common.z(s["mean_final_support"], sup, s["stderr_final_support"])
    # The exact binomial error of the fraction fixed, which its z-score divides by.
    s["theory_stderr_fixed_fraction"] = math.sqrt(fix * (1 - fix) / c) if fix is not None else None
    s["z_fixed_fraction"] = common.z(s["fixed_fraction"], fix, s["theory_stderr_fixed_fraction"])
    s["z_mean_final_tail10_mass"] = common.z(
        s["mean_final_tail10_mass"], m10, s["stderr_final_tail10_mass"]
    )
    s["z_mean_final_tail1_mass"] = common.z(
        s["mean_final_tail1_mass"], m1, s["stderr_final_tail1_mass"]
    )
    if track is not None:
        exact = None
        with contextlib.suppress(theory.NoClosedForm):
            exact = curated_theory.candidates(track.cur, n - cfg.num_real, gaussian=False)
        track.summarize(s, final.get("candidates"), t, exact)
    return {key: common.finite_or_none(v) for key, v in s.items()}


def _fixation_times(
    s: dict[str, Any],
    fixed_hist: np.ndarray,
    t: int,
    n: int,
    p0: np.ndarray,
    plain: bool,
    why: dict[str, str],
) -> None:
    """Add the generations until fixation G to the summary ``s``: the mean of min(G, T)
    over every chain beside its exact value, and the mean of G where every chain fixed,
    beside the diffusion approximation (Kimura and Ohta; Littler)."""
    c = int(fixed_hist.sum())
    g = np.arange(-1, len(fixed_hist) - 1, dtype=np.float64)  # index 0: not fixed by T
    g[0] = t
    counts = fixed_hist.astype(np.float64)
    mean = float(np.sum(counts * g) / c)
    var = float(np.sum(counts * (g - mean) ** 2) / max(c - 1, 1))
    s["mean_fixation_time_restricted"] = mean
    s["stderr_fixation_time_restricted"] = math.sqrt(var / c) if c > 1 else None
    exact = None
    if plain:
        try:
            exact = theory.token_restricted_fixation_time(t, n, p0)
        except theory.NoClosedForm:
            why["mean_fixation_time_restricted"] = (
                f"the exact mean of min(G, T) needs the Wright-Fisher chain at every one of the "
                f"{t} generations, too costly at n = {n} (the support and P(fixed) need only T)"
            )
    else:
        why["mean_fixation_time_restricted"] = (
            "fixation times have a closed form under replace without smoothing, decoding or "
            "curation"
        )
    s["theory_mean_fixation_time_restricted"] = exact
    s["z_mean_fixation_time_restricted"] = common.z(
        mean, exact, s["stderr_fixation_time_restricted"]
    )
    if fixed_hist[0] == 0:  # every chain fixed by T: G itself is observed
        s["mean_fixation_generation"] = mean
        s["stderr_fixation_generation"] = s["stderr_fixation_time_restricted"]
    else:
        s["mean_fixation_generation"] = s["stderr_fixation_generation"] = None
        s["why_mean_fixation_generation"] = (
            f"{int(fixed_hist[0])} chains had not fixed by T = {t}: their G is unknown "
            "(the mean of min(G, T) above is defined)"
        )
    s["approx_mean_fixation_generation"] = (
        theory.token_fixation_time_diffusion(n, p0) if plain else None
    )


def _median_fixation(fixed_hist: np.ndarray) -> float:
    """The median fixation generation of the fixed chains, as np.median of their list."""
    cum = np.cumsum(fixed_hist[1:])
    k = int(cum[-1])

    def order(i: int) -> float:  # the i-th smallest (0-based)
        return float(np.searchsorted(cum, i, side="right"))

    lo, hi = order((k - 1) // 2), order(k // 2)
    return float(np.mean([lo, hi]))


def load(out: Path) -> TokenResult:
    """Load a complete token run from its directory.

    Raises:
        store.RunDirError: the directory holds no complete token run.
    """
    out = Path(out)
    cfg, fields = Tracker.load(out, "tokens", METRICS, TokenConfig)
    snap = store.read_parquet(
        out / "snapshots.parquet", "SELECT * FROM t ORDER BY generation, category"
    )
    snap_gens = np.unique(snap["generation"])
    return TokenResult(
        config=cfg,
        snapshot_generations=snap_gens,
        snapshots=snap["p"].reshape(len(snap_gens), -1),
        **fields,
    )


def run(cfg: TokenConfig, **kwargs: Any) -> TokenResult:
    """Run the token experiment to the end; see :func:`iterate` for the arguments."""
    return common.drain(iterate(cfg, **kwargs))
