"""The Gaussian-mixture family: fit K components by EM to n samples, sample, refit."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from ..config import (
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
    check_curation,
    opt_best_of,
    opt_reward,
    opt_sampling_bias,
    opt_select,
    opt_select_strength,
)
from ..regimes import Regime, real_count
from ._family import Family
from ._show import NO_SE, Notes, cost_row, curation_title, fmt, frame, regime_text

NUM_METRICS = 9  # per chain and record: experiments/mixture.py's METRICS

__all__ = ["FAMILY", "MixtureConfig", "measure", "prepare", "table"]


COVARIANCES = ("full", "diag")
INITS = ("kmeans++", "warm")

ORIGINALS: dict[str, str] = {
    "standard": "N(0, I_d), the original of Shumailov et al. (Nature 2024)'s mixture experiment",
    "two-modes": "equal mixture of N(-2 e_1, I) and N(2 e_1, I)",
    "rare-mode": "0.9 N(0, I) + 0.1 N(4 e_1, I / 4): a rare mode to watch disappear",
}
"""Original mixtures by name (``--original``), in any dimension d."""

_NATURE_2024: dict[str, Any] = {
    "dim": 2,
    "num_components": 2,
    "original": "standard",
    "num_samples": 1000,
    "num_generations": 2000,
    "covariance": "full",
    "init": "kmeans++",
    "regime": "replace",
}
PRESETS: dict[str, dict[str, Any]] = {
    "nature-2024": _NATURE_2024,
    "nature-2024-keep10": {**_NATURE_2024, "regime": "keep-original", "keep_fraction": 0.1},
}
"""Experiment presets (``--preset``). ``nature-2024`` is the Gaussian-mixture experiment of
Shumailov et al., "AI models collapse when trained on recursively generated data",
Nature 631 (2024): d = 2, K = 2, the original N(0, I), n = 1000 samples per generation,
2000 generations, fully synthetic data. ``nature-2024-keep10`` keeps 10% of the original
data in every training set, the paper's mitigation for its language models."""


def original_mixture(name: str, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(weights, means, covs)`` of the named original mixture in ``dim`` dimensions.

    Raises:
        ConfigError: an unknown name or a dimension below 1.
    """
    if dim < 1:
        raise ConfigError(f"dim must be at least 1, got {dim}")
    eye = np.eye(dim)
    e1 = eye[0]
    if name == "standard":
        return np.ones(1), np.zeros((1, dim)), eye[None].copy()
    if name == "two-modes":
        return np.array([0.5, 0.5]), np.stack([-2 * e1, 2 * e1]), np.stack([eye, eye])
    if name == "rare-mode":
        return np.array([0.9, 0.1]), np.stack([0 * e1, 4 * e1]), np.stack([eye, eye / 4])
    known = ", ".join(ORIGINALS)
    raise ConfigError(f"unknown original mixture {name!r}; choose one of {known} or a JSON file")


def load_original(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an original mixture from a JSON file ``{"weights", "means", "covs"}``.

    ``weights`` is a list of K positive numbers summing to 1 (within 1e-9), ``means`` K
    lists of d numbers, ``covs`` K symmetric positive-definite d x d matrices.

    Raises:
        ConfigError: an unreadable file or parameters that are not a mixture.
    """
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"cannot read original mixture {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file of JSON") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not JSON: {err.msg} (line {err.lineno})") from None
    if not isinstance(data, dict) or not {"weights", "means", "covs"} <= set(data):
        raise ConfigError(f"{path} must hold an object with keys weights, means and covs")
    try:
        w = np.asarray(data["weights"], dtype=np.float64)
        m = np.asarray(data["means"], dtype=np.float64)
        c = np.asarray(data["covs"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: weights, means and covs must be numeric arrays") from None
    return check_mixture(w, m, c, where=str(path))


def check_mixture(
    w: np.ndarray, m: np.ndarray, c: np.ndarray, *, where: str = "original mixture"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate mixture parameters; return them as float64 arrays.

    Raises:
        ConfigError: shapes that disagree, weights that are not a distribution, or a
            covariance that is not symmetric positive definite.
    """
    w, m, c = (np.asarray(a, dtype=np.float64) for a in (w, m, c))
    if w.ndim != 1 or m.ndim != 2 or len(w) < 1 or m.shape[0] != len(w) or m.shape[1] < 1:
        raise ConfigError(f"{where}: need weights (K,) and means (K, d) with K, d >= 1")
    k, d = m.shape
    if c.shape != (k, d, d):
        raise ConfigError(f"{where}: covs must be {k} matrices of {d} x {d}, got shape {c.shape}")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(m)) and np.all(np.isfinite(c))):
        raise ConfigError(f"{where}: parameters must be finite")
    if np.any(w <= 0) or abs(w.sum() - 1) > 1e-9:
        raise ConfigError(f"{where}: weights must be positive and sum to 1, got {w.tolist()}")
    if not np.allclose(c, np.swapaxes(c, 1, 2), rtol=1e-12, atol=0):
        raise ConfigError(f"{where}: covariances must be symmetric")
    if np.any(np.linalg.eigvalsh(c) <= 0):
        raise ConfigError(f"{where}: covariances must be positive definite")
    return w / w.sum(), m, c


def _nested_tuple(a: Any) -> Any:
    if isinstance(a, list | tuple | np.ndarray):
        return tuple(_nested_tuple(v) for v in a)
    return float(a)


@dataclass(frozen=True, slots=True)
class MixtureConfig(ChainConfig):
    """The Gaussian-mixture chain: fit K components by EM to n samples, sample, refit."""

    num_chains: int = opt_chains(100)
    num_generations: int = opt_generations(2000)
    num_samples: int = opt_samples(1000, "Training-set size n of every generation (>= K).")
    num_components: int = opt(2, "Components K of every fit.", flag="--components",
                              range=(1, 1000))  # fmt: skip
    dim: int = opt(2, "Dimension d (taken from the --original file when it is one).",
                   range=(1, 64))  # fmt: skip
    covariance: str = opt("full", "full | diag.")
    init: str = opt(
        "kmeans++",
        "EM start: kmeans++ (scikit-learn's, on each generation's data) | warm (the previous fit).",
    )
    original: str = opt(
        "standard",
        "The original mixture: " + " | ".join(ORIGINALS) + ", or a JSON file "
        '{"weights": [...], "means": [[...]], "covs": [[[...]]]}.',
    )
    # The original's parameters; () resolves the name in ``original``.
    weights0: tuple[float, ...] = opt((), "", cli=False)
    means0: tuple[tuple[float, ...], ...] = opt((), "", cli=False)
    covs0: tuple[tuple[tuple[float, ...], ...], ...] = opt((), "", cli=False)
    sampling_bias: float = opt_sampling_bias()
    select: str = opt_select()
    select_strength: float = opt_select_strength(
        "X of --select: interval keeps draws within Mahalanobis radius X of a component of the "
        "original (self-interval: of the current fit); soft keeps with probability "
        "exp(-X r^2 / 2); top and self-top keep the n most likely of n / X."
    )
    best_of: int = opt_best_of()
    reward: str = opt_reward(
        "Reward of --best-of: loglik (log-likelihood under the original) | linear:a1,..,ad (a . x)."
    )
    regime: str = opt_regime()
    fresh_fraction: float = opt_fresh_fraction()
    keep_fraction: float = opt_keep_fraction()
    seed: int = opt_seed()
    tol: float = opt(1e-3, "EM stops when the mean log-likelihood changes by less.")
    max_iter: int = opt(100, "EM iteration cap.", range=(1, 10**6))
    reg_covar: float = opt(
        1e-6, "Added to every covariance diagonal, > 0 (scikit-learn's default)."
    )
    heldout: int = opt(1000, "Size of the fixed held-out sample of the original.",
                       range=(1, 10**8))  # fmt: skip
    record_every: int = opt_record_every()
    keep_chains: int = opt_keep_chains()
    final_chains: int = opt_final_chains()

    def __post_init__(self) -> None:
        check_ranges(self)
        checks = [
            (
                self.num_samples >= max(2, self.num_components),
                (
                    f"samples must be at least 2 and at least the number of components "
                    f"({self.num_components}), got {self.num_samples}"
                ),
            ),
            (
                self.covariance in COVARIANCES,
                f"unknown covariance {self.covariance!r}; choose full or diag",
            ),
            (self.init in INITS, f"unknown init {self.init!r}; choose kmeans++ or warm"),
            (math.isfinite(self.tol) and self.tol >= 0, f"tol must be >= 0, got {self.tol}"),
            (self.max_iter >= 1, f"max-iter must be at least 1, got {self.max_iter}"),
            (
                math.isfinite(self.reg_covar) and self.reg_covar > 0,
                (
                    f"reg-covar must be positive (it keeps collapsed components finite), "
                    f"got {self.reg_covar}"
                ),
            ),
            (self.heldout >= 1, f"heldout must be at least 1, got {self.heldout}"),
        ]
        self._validate(checks)
        if not self.weights0:
            w, m, c = original_mixture(self.original, self.dim)
        else:
            w, m, c = check_mixture(
                np.asarray(self.weights0), np.asarray(self.means0), np.asarray(self.covs0)
            )
        if m.shape[1] != self.dim:
            raise ConfigError(
                f"the original mixture is {m.shape[1]}-dimensional but dim is {self.dim}"
            )
        object.__setattr__(self, "weights0", _nested_tuple(w))
        object.__setattr__(self, "means0", _nested_tuple(m))
        object.__setattr__(self, "covs0", _nested_tuple(c))
        check_curation(self, dim=self.dim)
        self._check_held(8 * self.values_per_record, NUM_METRICS)

    @property
    def curation(self) -> Curation:
        """The curation operators of this run."""
        return Curation.of(self)

    def memory_bytes(self) -> int:
        """A floor on the run's peak memory: records, the held-out sample, EM's buffers, pools.

        EM holds the n x K responsibilities and the n x d training set per thread; the
        accumulate regimes keep n x T points for at least one chain.
        """
        n, t, k, d = self.num_samples, self.num_generations, self.num_components, self.dim
        need = self.held_bytes(8 * self.values_per_record, NUM_METRICS, per_chain=8 * 16)
        need += 8 * self.heldout * d + 8 * self.heldout * k  # the held-out sample and its terms
        need += 8 * n * (k + d) * (os.cpu_count() or 1)
        if Regime(self.regime) in (Regime.ACCUMULATE, Regime.ACCUMULATE_SUBSAMPLE):
            need += 8 * n * max(t, 1) * d
        return need

    @property
    def values_per_record(self) -> int:
        """Numbers held per chain and recorded generation: the fit and three diagnostics."""
        k, d = self.num_components, self.dim
        return k * (1 + d + d * d) + 3

    @property
    def num_real(self) -> int:
        """Real samples in each training set (0 for replace and accumulate)."""
        return real_count(
            Regime(self.regime), self.num_samples, self.fresh_fraction, self.keep_fraction
        )

    def original_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the original mixture's ``(weights, means, covs)`` as float64 arrays."""
        return np.array(self.weights0), np.array(self.means0), np.array(self.covs0)


def table(result: Any) -> Any:
    """Component scales, distances and tails at the final generation beside the original's."""
    s = result.summary
    title = (
        f"{s['chains']} chains x {s['generations']} generations, n = {s['samples']}, "
        f"K = {s['components']}, d = {s['dim']}, {s['covariance']}, {s['init']}, "
        f"{regime_text(s)}, original {s['original']}, seed {s['seed']} ({s['seconds']:.2f} s)"
        f"{curation_title(s)}"
    )
    out = frame(title, ("final generation", "mean", "± s.e.", "median", "original"))
    rows = [
        ("component std det(C)^(1/2d)", "component_std", s["original_component_std"]),
        ("smallest component std", "min_component_std", s.get("original_min_component_std")),
        ("L2 distance to the original", "l2", 0.0),
        ("held-out log-likelihood", "heldout_loglik", s["original_heldout_loglik"]),
        ("mass beyond the original's 3 sigma", "tail_mass", s["original_tail_mass"]),
        *((label, key[len("mean_final_") :], 1.0) for label, key, _ in cost_row(s)),
    ]
    notes = Notes()
    for label, key, ref in rows:
        out.add_row(
            label,
            fmt(s[f"mean_final_{key}"]),
            notes.cell(s[f"stderr_final_{key}"], NO_SE, 2),
            notes.cell(s.get(f"median_final_{key}"), NO_MEDIAN),
            notes.cell(ref, OLD_RUN),
        )
    out.add_row("EM iterations per fit (all fits)", fmt(s["mean_em_iterations"]), "", "", "")
    out.add_row("fits not converged", fmt(s["nonconverged_fraction"]), "", "", "")
    return notes.attach(out)


NO_MEDIAN = "no median: a value is NaN (a fit past the range of doubles)"
OLD_RUN = "the original's value was not stored by the release that made this run"


def measure(cfg: MixtureConfig, result: Any) -> dict[str, Any]:
    """A scan point: the decay rate of log component std and its final mean (no theory).

    From final.parquet's chains: all of them unless the run has more than ``final_chains``.
    """
    std = result.final["component_std"]  # every chain, or the first final_chains
    c = len(std)
    start = float(result.summary["original_component_std"])
    rate, se = metrics.decay_rate(math.log(start), np.log(std), cfg.num_generations)
    level_se = float(std.std(ddof=1) / math.sqrt(c)) if c > 1 else math.nan
    return {"rate": rate, "rate_se": se, "level": float(std.mean()), "level_se": level_se,
            "theory_rate": None}  # fmt: skip


def prepare(values: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """Read an ``--original`` JSON file into the mixture's parameters (and its dimension)."""
    name = values["original"]
    if name in ORIGINALS:
        return values
    path = Path(name)
    if not path.is_file():
        raise ConfigError(
            f"--original {name!r} is neither a named mixture ({', '.join(ORIGINALS)}) nor a file"
        )
    w0, m0, c0 = load_original(path)
    if "dim" not in given:
        values = {**values, "dim": m0.shape[1]}
    return {**values, "weights0": w0.tolist(), "means0": m0.tolist(), "covs0": c0.tolist()}


FAMILY = Family(
    name="mixture",
    config=MixtureConfig,
    runner="collapsesim.experiments.mixture",
    help="""Run the Gaussian-mixture chain: fit K components by EM to n samples, sample, refit.

With no options this is the setting of Shumailov et al. (Nature 2024): d = 2, K = 2,
the original N(0, I), n = 1000, 2000 generations, here over 100 chains.""",
    kind="chains",
    table=table,
    plot="collapsesim.plots:plot_mixture",
    plot_help="component scales and L2 distance over generations, and samples of chain 0 "
    "at a few generations",
    presets=PRESETS,
    preset_help="[b]nature-2024[/]: Shumailov et al.'s d = 2, K = 2, N(0, I), n = 1000, "
    "2000 generations; [b]nature-2024-keep10[/]: the same keeping 10% of the original data.",
    scan={
        "samples": "num_samples",
        "fresh-fraction": "fresh_fraction",
        "keep-fraction": "keep_fraction",
        "components": "num_components",
        "sampling-bias": "sampling_bias",
        "select-strength": "select_strength",
        "best-of": "best_of",
    },
    measure=measure,
    prepare=prepare,
    headline="component_std",
)
