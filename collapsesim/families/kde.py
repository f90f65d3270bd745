"""The kernel-density family: fit a Gaussian KDE to n points, sample it, refit it.

Kazdan et al. (2024, "Collapse or thrive?") run these chains as numpy loops over 100
seeds on two-moons, circles and blobs; here every chain carries each point's generation-0
ancestor, so the genealogy's collapse (Wright-Fisher) is seen beside the density's.
The closed forms (:func:`expected`) are derived in the docstrings below and in README.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import (
    MAX_SAMPLES,
    ChainConfig,
    ConfigError,
    check_ranges,
    opt,
    opt_chains,
    opt_final_chains,
    opt_fresh_fraction,
    opt_generations,
    opt_keep_chains,
    opt_keep_fraction,
    opt_record_every,
    opt_regime,
    opt_samples,
    opt_seed,
)
from ..curation import (
    Curation,
    candidates_of_top,
    check_curation,
    opt_best_of,
    opt_reward,
    opt_sampling_bias,
    opt_select,
    opt_select_strength,
)
from ..regimes import Regime, real_count
from . import _recorded
from ._family import Family

__all__ = ["FAMILY", "METRICS", "KdeConfig", "expected", "original_variance", "survival"]

METRICS = ("heldout_nll", "variance", "ancestors", "bandwidth", "w2")
"""Per-chain metrics of every recorded model (the kernel's ``METRICS``)."""
LABELS = {
    "heldout_nll": "held-out negative log-likelihood",
    "variance": "variance of the training points",
    "ancestors": "distinct generation-0 ancestors",
    "bandwidth": "bandwidth h",
    "w2": "W2 to the original (1-D)",
}
SHORT = {"heldout_nll": "held-out NLL", "variance": "variance s^2", "ancestors": "ancestors",
         "bandwidth": "bandwidth h", "w2": "W2 to original"}  # fmt: skip

ORIGINALS: dict[str, str] = {
    "gaussian": "N(0, I_d)",
    "moons": "scikit-learn's two moons (d = 2), Gaussian noise --noise",
    "circles": "scikit-learn's two circles (d = 2, inner radius --factor), noise --noise",
    "blobs": "--centers isotropic Gaussian blobs of std --cluster-std, centres uniform on "
    "[-10, 10)^d from the seed (make_blobs)",
}
"""Named originals (``--original``); a ``.npy`` file of points ``(n0, d)`` is the other kind."""
RULES = ("scott", "silverman")
MAX_DIM = 1024
MAX_POINTS = 2**20  # values of a user's point set (stored in run.json)
MAX_POOL_BYTES = 4 * 2**30  # one chain's pool in the pooling regimes
WF_EXACT_MAX_N = 2048  # the Wright-Fisher chain's (n + 1)^2 matrix up to here

_KAZDAN: dict[str, Any] = {"num_samples": 1000, "num_generations": 100, "bandwidth": "0.1",
                           "noise": 0.05, "heldout": 500, "num_chains": 100}  # fmt: skip
PRESETS: dict[str, dict[str, Any]] = {
    **{f"kazdan-2024-{name}": {**_KAZDAN, "original": name} for name in ("moons", "circles")},
    "kazdan-2024-blobs": {**_KAZDAN, "original": "blobs", "dim": 2},
    "kazdan-2024-moons-accumulate": {**_KAZDAN, "original": "moons", "regime": "accumulate"},
    "kazdan-2024-moons-scott": {
        **_KAZDAN,
        "original": "moons",
        "bandwidth": "scott",
        "num_generations": 1000,
    },
}
"""Kazdan et al. 2024's KDE settings (their repository's sweeps ``fit_kdes`` and
``fit_kdes_bandwidth``): a Gaussian kernel, moons and circles with noise 0.05, blobs in
d = 2, n up to 1000, 100 iterations (1000 for the estimated bandwidths), 500 held-out
test points, bandwidths 0.1, 0.5, 1 (0.01 to 100 in the bandwidth sweep) or
scott / silverman, 100 seeds (here 100 chains)."""


def parse_bandwidth(value: Any) -> str:
    """The bandwidth's canonical text: a positive number (as Python writes it) or a rule.

    Raises:
        ConfigError: anything else.
    """
    if isinstance(value, str) and value.strip().lower() in RULES:
        return value.strip().lower()
    try:
        h = float(value)
    except (TypeError, ValueError):
        h = math.nan
    if isinstance(value, bool) or not (math.isfinite(h) and h > 0):
        raise ConfigError(f"bandwidth must be a positive number, scott or silverman, got {value!r}")
    return repr(h)


def load_points(path: Path) -> np.ndarray:
    """A user's original: a ``.npy`` of points ``(n0, d)`` (or ``(n0,)`` in 1-D), float64.

    Raises:
        ConfigError: an unreadable file, or not a finite array of at most 2^20 values.
    """
    if not path.is_file():
        raise ConfigError(f"--original {str(path)!r} is neither {', '.join(ORIGINALS)} nor a "
                          ".npy file of points (n0, d)")  # fmt: skip
    try:
        pts = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ConfigError(f"cannot read points from {path}: {err}".splitlines()[0]) from None
    if not isinstance(pts, np.ndarray):  # an .npz archive
        raise ConfigError(f"{path} must hold one array of points (n0, d), not an archive")
    return check_points(pts, str(path))


def check_points(pts: Any, where: str = "points") -> np.ndarray:
    """Validate a point set; return it as float64 ``(n0, d)``."""
    try:
        a = np.asarray(pts, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: points must be a numeric array (n0, d)") from None
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] < 1 or not 1 <= a.shape[1] <= MAX_DIM:
        raise ConfigError(f"{where}: points must be (n0, d) with n0 >= 1 and 1 <= d <= "
                          f"{MAX_DIM}, got shape {a.shape}")  # fmt: skip
    if a.size > MAX_POINTS:
        raise ConfigError(f"{where}: at most 2^20 values of points (they are stored with the "
                          f"run), got {a.size}")  # fmt: skip
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{where}: points must be finite")
    return a


@dataclass(frozen=True, slots=True)
class KdeConfig(ChainConfig):
    """The kernel-density chain: fit a Gaussian KDE to n points, sample n, refit."""

    num_chains: int = opt_chains(100)
    num_generations: int = opt_generations(100)
    num_samples: int = opt_samples(1000, "Training-set size n of every generation (>= 2).",
                                   range=(2, MAX_SAMPLES))  # fmt: skip
    bandwidth: str = opt(
        "0.1",
        "Kernel bandwidth: a number h > 0 (fixed) | scott | silverman (re-estimated each "
        "generation: f(N) times the points' std, f = N^(-1/(d+4)) or (N (d+2)/4)^(-1/(d+4))).",
    )
    original: str = opt("gaussian", "The original: " + " | ".join(ORIGINALS)
                        + " | a .npy file of points (n0, d) (its empirical distribution).")  # fmt: skip
    dim: int = opt(0, "Dimension d (0: 2 for moons and circles, the file's, else 1).",
                   range=(0, MAX_DIM))  # fmt: skip
    noise: float = opt(0.05, "moons, circles: std of the Gaussian noise (Kazdan et al.: 0.05).",
                       when=("original", ("moons", "circles")))  # fmt: skip
    factor: float = opt(0.8, "circles: inner radius over outer, in [0, 1).",
                        when=("original", ("circles",)))  # fmt: skip
    centers: int = opt(3, "blobs: number of blobs.", range=(1, 1000),
                       when=("original", ("blobs",)))  # fmt: skip
    cluster_std: float = opt(1.0, "blobs: std of each blob.", when=("original", ("blobs",)))
    points0: tuple[tuple[float, ...], ...] = opt((), "", cli=False)  # a file original's points
    heldout: int = opt(256, "Size of the fixed held-out sample of the original (the NLL costs "
                       "heldout x N x d per recorded model).", range=(1, 10**6))  # fmt: skip
    sampling_bias: float = opt_sampling_bias()
    select: str = opt_select()
    select_strength: float = opt_select_strength(
        "X of --select: interval keeps draws with |x| <= X (Gaussian original); soft keeps with "
        "probability exp(-X |x|^2 / 2); top and self-top keep the n most likely of n / X (under "
        "the original, under the current KDE)."
    )
    best_of: int = opt_best_of()
    reward: str = opt_reward(
        "Reward of --best-of: loglik (log-likelihood under the Gaussian original) | "
        "linear:a1,..,ad (a . x)."
    )
    regime: str = opt_regime()
    fresh_fraction: float = opt_fresh_fraction()
    keep_fraction: float = opt_keep_fraction()
    seed: int = opt_seed()
    record_every: int = opt_record_every()
    keep_chains: int = opt_keep_chains()
    final_chains: int = opt_final_chains()

    def __post_init__(self) -> None:
        check_ranges(self)
        object.__setattr__(self, "bandwidth", parse_bandwidth(self.bandwidth))
        for name in ("noise", "factor", "cluster_std", "sampling_bias", "select_strength",
                     "fresh_fraction", "keep_fraction"):  # fmt: skip
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ConfigError(f"{name.replace('_', '-')} must be a number, got {v!r}")
        named = self.original in ORIGINALS
        if not named and not len(self.points0):
            pts = load_points(Path(self.original))
            object.__setattr__(self, "points0", tuple(map(tuple, pts.tolist())))
        if named and len(self.points0):
            raise ConfigError(f"points are given with the named original {self.original!r}")
        if named:
            object.__setattr__(self, "points0", ())
        if not named:
            pts = check_points(self.points0, self.original)
            object.__setattr__(self, "points0", tuple(map(tuple, pts.tolist())))
        auto = 2 if self.original in ("moons", "circles") else (
            len(self.points0[0]) if self.points0 else 1)  # fmt: skip
        if self.dim == 0:
            object.__setattr__(self, "dim", auto)
        regime = self._validate([
            (self.original not in ("moons", "circles") or self.dim == 2,
             f"{self.original} is 2-dimensional; drop --dim or give 2, got {self.dim}"),
            (named or self.dim == auto,
             f"the points of {self.original} are {auto}-dimensional but dim is {self.dim}"),
            (math.isfinite(self.noise) and self.noise >= 0, f"noise must be >= 0, got {self.noise}"),
            (math.isfinite(self.factor) and 0 <= self.factor < 1,
             f"factor must lie in [0, 1), got {self.factor}"),
            (math.isfinite(self.cluster_std) and self.cluster_std > 0,
             f"cluster-std must be positive, got {self.cluster_std}"),
        ])  # fmt: skip
        cur = check_curation(self, dim=self.dim)
        if cur.select == "self-interval":
            raise ConfigError("a KDE has no X-sigma region of its own: --select self-interval "
                              "is not offered (self-top ranks by the KDE's density)")  # fmt: skip
        gauss_only = cur.select in ("interval", "soft", "top") or (
            cur.best_of > 1 and cur.reward == "loglik")  # fmt: skip
        if gauss_only and self.original != "gaussian" and cur.active:
            what = f"--select {cur.select}" if cur.select != "none" else "--reward loglik"
            raise ConfigError(f"{what} judges by the original's density: --original gaussian "
                              "only (use self-top, or --reward linear:A)")  # fmt: skip
        pooled = regime in (Regime.ACCUMULATE, Regime.ACCUMULATE_SUBSAMPLE)
        pool = 8 * (self.dim + 1) * self.num_samples * max(self.num_generations, 1)
        if pooled and pool > MAX_POOL_BYTES:
            raise ConfigError(f"regime {self.regime} keeps {pool / 2**30:.1f} GiB of points per "
                              "chain (n x T points); reduce --samples or --generations")  # fmt: skip
        if not pooled and 8 * (self.dim + 1) * self.num_samples > MAX_POOL_BYTES:
            raise ConfigError("one training set would pass 4 GiB; reduce --samples or --dim")
        self._check_held(8 * self.values_per_record, len(METRICS))

    # --- derived ---------------------------------------------------------------------

    @property
    def curation(self) -> Curation:
        """The curation operators of this run."""
        return Curation.of(self)

    @property
    def values_per_record(self) -> int:
        """Numbers recorded per chain and generation: the metrics."""
        return len(METRICS)

    @property
    def num_real(self) -> int:
        """Real points in each training set (0 for replace and the pooling regimes)."""
        return real_count(Regime(self.regime), self.num_samples, self.fresh_fraction,
                          self.keep_fraction)  # fmt: skip

    @property
    def pooled(self) -> bool:
        """Whether the regime keeps every point so far."""
        return Regime(self.regime) in (Regime.ACCUMULATE, Regime.ACCUMULATE_SUBSAMPLE)

    @property
    def fixed_bandwidth(self) -> float | None:
        """h when the bandwidth is fixed, else None."""
        return None if self.bandwidth in RULES else float(self.bandwidth)

    def capacity(self) -> int:
        """Rows a chain holds: n, or the pool's n T."""
        return self.num_samples * max(self.num_generations, 1) if self.pooled else self.num_samples

    def candidates(self) -> int:
        """Candidate rows a curated generation draws at once."""
        cur = self.curation
        top = (candidates_of_top(self.num_samples, cur.select_strength)
               if cur.select in ("top", "self-top") else 1)  # fmt: skip
        return max(top, cur.best_of)

    def chain_bytes(self) -> int:
        """The state and scratch of one chain: rows, distances, candidates."""
        d, rows = self.dim, self.capacity()
        return 8 * ((d + 1) * (rows + self.num_samples + self.candidates()) + rows + 4)

    def memory_bytes(self) -> int:
        """A floor on the run's peak memory: records, statistics and one batch's states."""
        from ..experiments._recorded import batch_size

        held = self.held_bytes(8 * self.values_per_record, len(METRICS))
        return held + batch_size(self, len(METRICS), self.chain_bytes()) * self.chain_bytes()

    def original_points(self) -> np.ndarray:
        """The kernel's points of the original: blob centres, a user's points, else none."""
        if self.original == "blobs":
            return blob_centers(self.seed, self.centers, self.dim)
        if self.points0:
            return np.asarray(self.points0, np.float64)
        return np.zeros((0, self.dim))


@functools.lru_cache(maxsize=16)
def _blob_centers(seed: int, count: int, dim: int) -> np.ndarray:
    from ..kernels.kde import blob_centers as draw

    return draw(seed, count, dim)


def blob_centers(seed: int, count: int, dim: int) -> np.ndarray:
    """The blobs' centres of a seed ``(count, dim)`` (a copy of the cached array)."""
    return _blob_centers(seed, count, dim).copy()


# --- exact theory ---------------------------------------------------------------------


def original_variance(cfg: KdeConfig) -> float:
    """The original's variance, averaged over dimensions.

    Two moons (angle uniform on [0, pi], each moon with probability 1/2): x has variance
    3/4 and y has 9/16 - 1/pi; circles: (1 + factor^2) / 4 in each coordinate; blobs:
    the std^2 plus the centres' variance (ddof 0); each with the noise's variance added.
    A point set: its variance (ddof 0).
    """
    if cfg.original == "gaussian":
        return 1.0
    if cfg.original == "moons":
        return (0.75 + 0.5625 - 1.0 / math.pi) / 2 + cfg.noise * cfg.noise
    if cfg.original == "circles":
        return (1.0 + cfg.factor * cfg.factor) / 4 + cfg.noise * cfg.noise
    pts = cfg.original_points()
    if cfg.original == "blobs":
        return cfg.cluster_std * cfg.cluster_std + float(np.var(pts, axis=0).mean())
    return float(np.var(pts, axis=0).mean())


def _rule_factor(rule: str, count: int, d: int) -> float:
    if rule == "scott":
        return float(count ** (-1.0 / (d + 4)))
    return float((count * (d + 2) / 4.0) ** (-1.0 / (d + 4)))


def expected_variance(cfg: KdeConfig, top: int) -> np.ndarray | None:
    """``E[variance]`` of models 0..top, or None where there is no closed form.

    Model g (g >= 1) is fitted to generation g - 1's points; let v be their variance
    (ddof 0, the mean over dimensions) and D the mean over dimensions of their mean's
    squared distance to the original's (``fresh``) or to the kept share's mean
    (``keep-original``). Given them, a KDE draw is a training point plus N(0, s I) with
    ``s = lambda^2 h^2`` (lambda the sampling bias): its mean is the points' mean and its
    variance ``v + s``; a rule's bandwidth is ``h^2 = f(N)^2 v N / (N - 1)``. Merging the
    k synthetic points with the r real ones (Chan et al.'s formula) gives, in expectation,

    * replace: ``E v' = (1 - 1/n)(v + s)``, so with a fixed h ``E s_t^2 = (1 - 1/n)^t s_0^2
      + (n - 1) h^2 (1 - (1 - 1/n)^t)`` tends to ``(n - 1) h^2``; with a rule
      ``E v' = (1 - 1/n + f^2) v``: it grows;
    * fresh: ``E v' = [(k - 1)(v + s) + (r - 1) v0] / n + k r / n^2 ((v + s)/k + v0/r + D)``
      and ``E D' = (k/n)^2 (D + (v + s)/k) + (r/n)^2 v0 / r``;
    * keep-original: the same with the kept share's own variance ``v_K`` (``E v_K =
      (1 - 1/r) v0``) in place of fresh draws' and ``E D' = (k/n)^2 (D + (v + s)/k)``;
    * accumulate, a pool of N = n g points: ``E v' = [N v + (n - 1)(v + s)] / (N + n)
      + N (v + s) / (N + n)^2``.

    All are linear in (v, D), so the expectations follow by iteration from generation 0,
    n real points: ``E v = (1 - 1/n) v0``, ``E D = v0 / n`` (``keep-original``:
    ``(k/n)^2 (v0/k + v0/r)``). ``accumulate-subsample`` and the selecting operators have
    no closed form here.

    References:
        T. F. Chan, G. H. Golub and R. J. LeVeque, STAN-CS-79-773, 1979 (merging groups).
    """
    regime = Regime(cfg.regime)
    cur = cfg.curation
    if regime is Regime.ACCUMULATE_SUBSAMPLE or cur.select != "none" or cur.best_of > 1:
        return None
    n, d, r = cfg.num_samples, cfg.dim, cfg.num_real
    k = n - r
    v0 = original_variance(cfg)
    lam2 = cur.sampling_bias * cur.sampling_bias
    h = cfg.fixed_bandwidth
    out = np.empty(top + 1)
    out[0] = v0
    v = (1.0 - 1.0 / n) * v0
    if regime is Regime.KEEP_ORIGINAL:
        dd = (k / n) ** 2 * (v0 / k + v0 / r) if k > 0 and r > 0 else 0.0
    else:
        dd = v0 / n
    vk = (1.0 - 1.0 / r) * v0 if r > 0 else 0.0
    for g in range(1, top + 1):
        out[g] = v
        size = n * g if regime is Regime.ACCUMULATE else n  # rows the bandwidth saw
        if h is not None:
            s = lam2 * h * h
        else:
            s = lam2 * _rule_factor(cfg.bandwidth, size, d) ** 2 * v * size / (size - 1)
        w = v + s  # a synthetic draw's variance given the points
        if regime is Regime.REPLACE:
            v = (1.0 - 1.0 / n) * w
        elif regime is Regime.ACCUMULATE:
            big = size
            v = (big * v + (n - 1) * w) / (big + n) + big * w / (big + n) ** 2
        elif regime is Regime.FRESH:
            nv = (max(k - 1, 0) * w + max(r - 1, 0) * v0) / n
            if k > 0 and r > 0:
                nv += k * r / n**2 * (w / k + v0 / r + dd)
            nd = ((k / n) ** 2 * (dd + w / k) if k > 0 else 0.0) + (r / n**2 * v0 if r else 0.0)
            v, dd = nv, nd
        else:  # keep-original
            nv = (max(k - 1, 0) * w + r * vk) / n
            if k > 0 and r > 0:
                nv += k * r / n**2 * (dd + w / k)
            v, dd = nv, ((k / n) ** 2 * (dd + w / k) if k > 0 else 0.0)
    return out


@functools.lru_cache(maxsize=8)
def survival(n: int, steps: tuple[int, ...]) -> np.ndarray:
    """P(a type is not extinct after s Wright-Fisher generations | one copy), s in ``steps``.

    The count of one type among n is the Markov chain ``k' ~ Binomial(n, k / n)`` on
    0..n; from ``k = 1`` its law after s steps is ``e_1 M^s`` (M the (n + 1)^2 matrix of
    binomial laws), evaluated by vector-matrix steps over short gaps and by squaring over
    long ones. The survival is the mass off 0, summed so that nothing cancels.

    References:
        S. Wright, "Evolution in Mendelian populations", Genetics 16, 1931; R. A. Fisher,
        "The Genetical Theory of Natural Selection", Oxford, 1930.
    """
    from scipy.stats import binom

    k = np.arange(n + 1)
    m = binom.pmf(k[None, :], n, k[:, None] / n)
    p = np.zeros(n + 1)
    p[1] = 1.0
    at = 0
    out = {}
    powers: dict[int, np.ndarray] = {}
    for s in sorted(set(steps)):
        gap = s - at
        if gap <= 64:
            for _ in range(gap):
                p = p @ m
        else:
            j, sq = 0, m
            while gap:
                if gap & 1:
                    p = p @ sq
                gap >>= 1
                j += 1
                if gap:
                    if j not in powers:
                        powers[j] = sq @ sq
                    sq = powers[j]
        at = s
        out[s] = float(p[1:].sum())
    return np.array([out[s] for s in steps])


def expected_ancestors(cfg: KdeConfig, generations: np.ndarray) -> np.ndarray | None:
    """``E[ancestors]`` at the models ``generations``, or None where there is no closed form.

    Under ``replace`` each generation's n points pick their parents uniformly with
    replacement among the last n: the Wright-Fisher model, whatever the bandwidth and the
    sampling bias. Model g's points are g - 1 generations below generation 0's n distinct
    points, so ``E = n P(a type survives g - 1 generations)`` (:func:`survival`; n at the
    original). Kingman's coalescent (1982) approximates it by ``2n / (g + 1)`` once g >> 1.
    Under ``accumulate`` generation 0 stays in the pool: n exactly. Computed exactly for
    n <= 2048 (omitted beyond).

    References:
        J. F. C. Kingman, "The coalescent", Stoch. Proc. Appl. 13, 1982.
    """
    regime = Regime(cfg.regime)
    cur = cfg.curation
    gens = np.asarray(generations, np.int64)
    n = cfg.num_samples
    if cur.select != "none" or cur.best_of > 1:
        return None
    if regime is Regime.ACCUMULATE:
        return np.full(len(gens), float(n))
    if regime is not Regime.REPLACE or n > WF_EXACT_MAX_N:
        return None
    steps = tuple(int(max(g - 1, 0)) for g in gens)
    return n * survival(n, steps)


def expected(cfg: KdeConfig, generations: np.ndarray) -> dict[str, np.ndarray]:
    """The closed forms of the metrics at the models ``generations`` (see
    :func:`expected_variance` and :func:`expected_ancestors`)."""
    gens = np.asarray(generations, np.int64)
    out: dict[str, np.ndarray] = {}
    if gens.size == 0:
        return out
    var = expected_variance(cfg, int(gens.max()))
    if var is not None:
        out["variance"] = var[gens]
    anc = expected_ancestors(cfg, gens)
    if anc is not None:
        out["ancestors"] = anc
    return out


# --- what it shows ----------------------------------------------------------------------


def table(result: Any) -> Any:
    """The final generation's metrics beside theory and the original."""
    s = result.summary
    what = (f"n = {s['samples']}, d = {s['dim']}, bandwidth {s['bandwidth']}, "
            f"original {s['original']}")  # fmt: skip
    rows = [(SHORT[m], m) for m in METRICS if m != "w2" or s["dim"] == 1]
    return _recorded.table(result, _recorded.title(s, what), rows)


def plot(result: Any, path: Path) -> None:
    """Held-out NLL, variance, ancestors, bandwidth (and W2 in 1-D) over generations."""
    cfg = result.config
    panels = [("heldout_nll", LABELS["heldout_nll"], False), ("variance", LABELS["variance"], True),
              ("ancestors", LABELS["ancestors"], True), ("bandwidth", LABELS["bandwidth"], True)]  # fmt: skip
    if cfg.dim == 1:
        panels.append(("w2", LABELS["w2"], False))
    heading = (f"KDE chains: n = {cfg.num_samples}, d = {cfg.dim}, bandwidth {cfg.bandwidth}, "
               f"{_recorded.plot_regime(cfg)}, original {cfg.original}, {cfg.num_chains} chains")  # fmt: skip
    _recorded.plot(result, path, panels, heading)


measure = _recorded.measure("ancestors")
"""A scan point: the decay rate of log(ancestors) from log n, and the final ancestors."""


def prepare(values: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """Read an ``--original`` file of points into the configuration."""
    name = values["original"]
    if name in ORIGINALS:
        return values
    pts = load_points(Path(name))
    return {**values, "points0": tuple(map(tuple, pts.tolist()))}


FAMILY = Family(
    name="kde",
    config=KdeConfig,
    runner="collapsesim.experiments.kde",
    help="""Run kernel-density chains: fit a Gaussian KDE to n points, sample n, refit.

Sampling picks a training point and adds N(0, h^2 I); the bandwidth is fixed or
re-estimated (scott, silverman) each generation. Held-out NLL, variance, surviving
generation-0 ancestors (Wright-Fisher), bandwidth and W2 (1-D) are recorded per
generation, beside the exact variance and ancestor count.""",
    kind="chains",
    table=table,
    plot="collapsesim.families.kde:plot",
    plot_help="held-out NLL, variance, ancestors and bandwidth (W2 in 1-D) over generations",
    presets=PRESETS,
    preset_help="[b]kazdan-2024-moons[/], [b]-circles[/], [b]-blobs[/]: Kazdan et al.'s KDE "
    "chains (h = 0.1, n = 1000, 100 generations, 500 test points); [b]-moons-accumulate[/]; "
    "[b]-moons-scott[/] (Scott's bandwidth, 1000 generations).",
    scan={
        "samples": "num_samples",
        "fresh-fraction": "fresh_fraction",
        "keep-fraction": "keep_fraction",
        "sampling-bias": "sampling_bias",
        "select-strength": "select_strength",
        "best-of": "best_of",
    },
    measure=measure,
    prepare=prepare,
    headline="variance",
)
