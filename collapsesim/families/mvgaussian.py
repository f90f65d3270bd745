"""The multivariate Gaussian family: fit a mean and a full covariance to n points, sample, refit.

The theory of model collapse is written for it (Kazdan et al. 2024 run it as numpy loops
over 100 seeds; Bertrand et al. 2023 and Shumailov et al. 2024 analyse it): under
``replace`` the fitted covariance shrinks by a Wishart factor every generation, and the
expected trace, determinant and log-determinant have closed forms (:func:`expected`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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
    candidates_of_top,
    check_curation,
    opt_best_of,
    opt_correction,
    opt_reward,
    opt_sampling_bias,
    opt_select,
    opt_select_strength,
)
from ..regimes import Regime, real_count
from . import _recorded
from ._family import Family

__all__ = ["FAMILY", "METRICS", "MvGaussianConfig", "expected", "original_covariance"]

METRICS = (
    "trace_ratio",
    "det_ratio",
    "log_det_ratio",
    "max_eig",
    "min_eig",
    "condition",
    "effective_rank",
    "mean_sq_error",
    "w2",
    "kl_fit_orig",
    "kl_orig_fit",
    "tail_mass",
)
"""Per-chain metrics of every recorded model (the kernel's ``METRICS``)."""

LABELS = {
    "trace_ratio": "tr Sigma_t / tr Sigma_0",
    "det_ratio": "det Sigma_t / det Sigma_0",
    "log_det_ratio": "log det Sigma_t - log det Sigma_0",
    "max_eig": "largest eigenvalue",
    "min_eig": "smallest eigenvalue",
    "condition": "condition number",
    "effective_rank": "effective rank",
    "mean_sq_error": "|mu_t - mu_0|^2",
    "w2": "W2 (Bures) to the original",
    "kl_fit_orig": "KL(fit || original)",
    "kl_orig_fit": "KL(original || fit)",
    "tail_mass": "mass beyond the original's 3-sigma ellipsoid",
}

SHORT = {
    "trace_ratio": "tr S_t / tr S_0",
    "det_ratio": "det S_t / det S_0",
    "log_det_ratio": "log det ratio",
    "max_eig": "largest eigenvalue",
    "min_eig": "smallest eigenvalue",
    "condition": "condition number",
    "effective_rank": "effective rank",
    "mean_sq_error": "|mu_t - mu_0|^2",
    "w2": "W2 to original",
    "kl_fit_orig": "KL(fit||orig)",
    "kl_orig_fit": "KL(orig||fit)",
    "tail_mass": "mass beyond 3 sigma",
}
"""The table's row labels (S: the covariance Sigma)."""

METHODS = ("auto", "sample", "sufficient")
TAIL_PROBABILITY = math.erf(3 / math.sqrt(2))  # the mass within 3 sigma in one dimension
MAX_DIM = 4096


def original_covariance(name: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, covariance)`` of a named original: ``isotropic`` (I) or ``powerlaw:ALPHA``
    (diagonal, eigenvalues ``i^-ALPHA`` for i = 1..d), or of a ``.npy`` covariance or a
    JSON file ``{"mean": [...], "cov": [[...]]}``.

    Raises:
        ConfigError: an unknown name, an unreadable file or a matrix that is not a
            symmetric positive-definite covariance.
    """
    if name == "isotropic":
        return np.zeros(dim), np.eye(dim)
    if name.startswith("powerlaw:"):
        try:
            alpha = float(name.partition(":")[2])
        except ValueError:
            alpha = math.nan
        if not (math.isfinite(alpha) and 0 <= alpha <= 10):
            raise ConfigError(f"powerlaw:ALPHA needs ALPHA in [0, 10], got {name!r}")
        return np.zeros(dim), np.diag(np.arange(1, dim + 1, dtype=np.float64) ** -alpha)
    return _read_original(Path(name))


def _read_original(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise ConfigError(f"--original {str(path)!r} is neither isotropic, powerlaw:ALPHA nor a "
                          "file (.npy covariance or JSON {\"mean\", \"cov\"})")  # fmt: skip
    try:
        if path.suffix == ".npy":
            cov = np.load(path, allow_pickle=False)
            mean = np.zeros(cov.shape[0] if cov.ndim else 0)
        else:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or "cov" not in data:
                raise ConfigError(f"{path} must hold an object with a key cov (and mean)")
            cov = np.asarray(data["cov"], np.float64)
            mean = np.asarray(data.get("mean", np.zeros(len(cov))), np.float64)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the original {path}: {err}".splitlines()[0]) from None
    return _checked(np.asarray(mean, np.float64), np.asarray(cov, np.float64), str(path))


def _checked(mean: np.ndarray, cov: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] < 1:
        raise ConfigError(f"{where}: the covariance must be a square d x d matrix, got "
                          f"shape {cov.shape}")  # fmt: skip
    d = cov.shape[0]
    if mean.shape != (d,):
        raise ConfigError(f"{where}: the mean must have {d} entries, got shape {mean.shape}")
    if not (np.all(np.isfinite(cov)) and np.all(np.isfinite(mean))):
        raise ConfigError(f"{where}: the mean and covariance must be finite")
    if not np.allclose(cov, cov.T, rtol=1e-12, atol=0):
        raise ConfigError(f"{where}: the covariance must be symmetric")
    if d > MAX_DIM:
        raise ConfigError(f"{where}: at most {MAX_DIM} dimensions, got {d}")
    if np.linalg.eigvalsh(cov)[0] <= 0:
        raise ConfigError(f"{where}: the covariance must be positive definite")
    return mean, (cov + cov.T) / 2


def _digest(mean: np.ndarray, cov: np.ndarray) -> str:
    return hashlib.sha256(mean.tobytes() + cov.tobytes()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class MvGaussianConfig(ChainConfig):
    """The d-dimensional Gaussian chain: fit mean and covariance to n points, sample, refit."""

    num_chains: int = opt_chains(100)
    num_generations: int = opt_generations(1000)
    num_samples: int = opt_samples(100, "Training-set size n of every generation (> d).")
    dim: int = opt(10, "Dimension d (taken from the --original file when it is one).",
                   range=(1, MAX_DIM))  # fmt: skip
    ddof: int = opt(0, "0: the MLE covariance (divide by n); 1: the unbiased one.", range=(0, 1))
    method: str = opt(
        "auto",
        "sample (draw n points, refit: O(n d^2)) | sufficient (draw the mean and a "
        "Bartlett-Wishart scatter: O(d^3), the same law) | auto (sufficient where it applies).",
    )
    original: str = opt(
        "isotropic",
        "N(mu0, Sigma0): isotropic (I) | powerlaw:ALPHA (eigenvalues i^-ALPHA) | a .npy "
        'covariance | a JSON file {"mean": [...], "cov": [[...]]}.',
    )
    original_digest: str = opt("", "", cli=False)  # a file original's content, checked on load
    tail_probes: int = opt(256, "Probe points per recorded model for the tail mass (0: off).",
                           range=(0, 10**6))  # fmt: skip
    sampling_bias: float = opt_sampling_bias()
    select: str = opt_select()
    select_strength: float = opt_select_strength(
        "X of --select: interval keeps draws within Mahalanobis radius X of the original "
        "(self-interval: of the current fit); soft keeps with probability exp(-X r^2 / 2); "
        "top and self-top keep the n most likely of n / X."
    )
    best_of: int = opt_best_of()
    reward: str = opt_reward(
        "Reward of --best-of: loglik (log-likelihood under the original) | linear:a1,..,ad (a . x)."
    )
    correction: float = opt_correction()
    regime: str = opt_regime()
    fresh_fraction: float = opt_fresh_fraction()
    keep_fraction: float = opt_keep_fraction()
    seed: int = opt_seed()
    record_every: int = opt_record_every()
    keep_chains: int = opt_keep_chains()
    final_chains: int = opt_final_chains()

    def __post_init__(self) -> None:
        check_ranges(self)  # before the checks below compare the numbers
        for name in ("method", "original"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be text, got {getattr(self, name)!r}")
        regime = self._validate(
            [
                (
                    self.num_samples >= self.dim + 1,
                    (
                        f"samples must be at least d + 1 = {self.dim + 1} (a full-rank "
                        f"covariance), got {self.num_samples}"
                    ),
                ),
                (
                    self.method in METHODS,
                    f"unknown method {self.method!r}; choose auto, sample or sufficient",
                ),
            ]
        )
        mean, cov = self.original_params()
        if mean.shape[0] != self.dim:
            raise ConfigError(f"the original is {mean.shape[0]}-dimensional but dim is {self.dim}")
        digest = _digest(mean, cov)
        if self.original_digest and self.original_digest != digest and not self._named:
            raise ConfigError(f"the original {self.original} changed since this run was made "
                              f"(digest {digest}, stored {self.original_digest})")  # fmt: skip
        object.__setattr__(self, "original_digest", "" if self._named else digest)
        cur = check_curation(self, dim=self.dim)
        exact = cur.select == "none" and cur.best_of == 1
        if self.method == "sufficient" and not exact:
            raise ConfigError("the sufficient method takes --sampling-bias and --correction "
                              "only; selection and best-of draw candidates: use --method sample")  # fmt: skip
        if self.method == "sufficient" and regime is Regime.ACCUMULATE_SUBSAMPLE:
            raise ConfigError("accumulate-subsample draws from a pool of points: use --method "
                              "sample (or auto)")  # fmt: skip
        self._check_held(8 * self.values_per_record, len(METRICS))

    @property
    def _named(self) -> bool:
        return self.original == "isotropic" or self.original.startswith("powerlaw:")

    def original_params(self) -> tuple[np.ndarray, np.ndarray]:
        """The original's ``(mean (d,), covariance (d, d))``."""
        return original_covariance(self.original, self.dim)

    @property
    def curation(self) -> Curation:
        """The curation operators of this run."""
        return Curation.of(self)

    @property
    def resolved_method(self) -> str:
        """``sample`` or ``sufficient``: auto takes sufficient unless the regime subsamples
        or curation draws candidates."""
        if self.method != "auto":
            return self.method
        cur = self.curation
        exact = cur.select == "none" and cur.best_of == 1
        ok = exact and Regime(self.regime) is not Regime.ACCUMULATE_SUBSAMPLE
        return "sufficient" if ok else "sample"

    @property
    def values_per_record(self) -> int:
        """Numbers recorded per chain and generation: the metrics."""
        return len(METRICS)

    @property
    def num_real(self) -> int:
        """Real samples in each training set (0 for replace and accumulate)."""
        return real_count(Regime(self.regime), self.num_samples, self.fresh_fraction,
                          self.keep_fraction)  # fmt: skip

    def candidates(self) -> int:
        """Candidate rows a curated generation draws at once."""
        cur = self.curation
        top = candidates_of_top(self.num_samples, cur.select_strength) if cur.select in (
            "top", "self-top") else 1  # fmt: skip
        return max(top, cur.best_of)

    def chain_bytes(self) -> int:
        """The state of one chain: its model, statistics, scratch and pool."""
        d, n = self.dim, self.num_samples
        need = 8 * (4 * d * d + 3 * d + max(n, d) * d + self.candidates() * d)
        if Regime(self.regime) is Regime.ACCUMULATE_SUBSAMPLE:
            need += 8 * n * max(self.num_generations, 1) * d
        return need

    def memory_bytes(self) -> int:
        """A floor on the run's peak memory: records, statistics and one batch's states."""
        from ..experiments._recorded import batch_size

        held = self.held_bytes(8 * self.values_per_record, len(METRICS))
        return held + batch_size(self, len(METRICS), self.chain_bytes()) * self.chain_bytes()


# --- exact theory ---------------------------------------------------------------------


def expected(cfg: MvGaussianConfig, generations: np.ndarray) -> dict[str, np.ndarray]:
    """Closed forms of the metrics under ``replace`` (with no curation but a sampling bias).

    With c = n - ddof and lambda_0 = 1, lambda_g = lambda (the sampling bias) for g >= 1,
    the fit of generation g is ``Sigma_{g+1} = lambda_g^2 L W L' / c`` with
    ``W ~ Wishart_d(n - 1, I)`` independent of the mean, so

    * ``E tr Sigma_t / tr Sigma_0 = prod_{g<t} lambda_g^2 (n - 1) / c``;
    * ``E det Sigma_t / det Sigma_0 = prod_{g<t} lambda_g^(2d) prod_{i=1..d} (n - i) / c``
      (``E det W = prod_i (n - i)``);
    * ``E log det Sigma_t - log det Sigma_0 = sum_{g<t} [2 d log lambda_g
      + sum_{i=1..d} (psi((n - i) / 2) + log(2 / c))]`` (``log det W`` is a sum of
      independent ``log chi^2(n - i)``);
    * ``E |mu_t - mu_0|^2 = sum_{g<t} lambda_g^2 E tr Sigma_g / n``.

    For ddof 0 and no bias these are Kazdan et al.'s and the issue's forms:
    ``(1 - 1/n)^t``, ``(prod (n - i) / n)^t``, ``t sum (psi((n - i)/2) + log(2/n))`` and
    ``tr Sigma_0 (1 - (1 - 1/n)^t)``.

    References:
        M. S. Bartlett 1933; T. W. Anderson, "An Introduction to Multivariate Statistical
        Analysis", 3rd ed., Wiley 2003, ch. 7 (the Wishart determinant's moments);
        J. Kazdan et al., "Collapse or thrive? Perils and promises of synthetic data in a
        self-generating world", 2024.
    """
    cur = cfg.curation
    if Regime(cfg.regime) is not Regime.REPLACE:
        return {}
    if not (cur.select == "none" and cur.best_of == 1 and cur.correction == 0):
        return _one_dimensional(cfg, generations) if cfg.dim == 1 else {}
    from scipy.special import digamma

    n, d, c = cfg.num_samples, cfg.dim, cfg.num_samples - cfg.ddof
    lam2 = cur.sampling_bias**2
    t = np.asarray(generations, np.float64)
    later = np.maximum(t - 1, 0)  # generations drawn with the bias (g >= 1)
    log_tr = t * math.log((n - 1) / c) + later * math.log(lam2)
    i = np.arange(1, d + 1)
    log_det_step = float(np.sum(np.log((n - i) / c)))
    log_step = float(np.sum(digamma((n - i) / 2) + math.log(2 / c)))
    _, cov0 = cfg.original_params()
    tr0 = float(np.trace(cov0))
    # E|mu_t - mu_0|^2 = sum_{g<t} lambda_g^2 E tr Sigma_g / n: a cumulative sum.
    top = int(t.max()) if t.size else 0
    g = np.arange(top, dtype=np.float64)
    steps = tr0 / n * np.exp(g * math.log((n - 1) / c) + g * math.log(lam2))
    steps[0] = tr0 / n
    err = np.concatenate([[0.0], np.cumsum(steps)])[t.astype(np.int64)]
    return {
        "trace_ratio": np.exp(log_tr),
        "det_ratio": np.exp(t * log_det_step + later * d * math.log(lam2)),
        "log_det_ratio": t * log_step + later * d * math.log(lam2),
        "mean_sq_error": err,
    }


def _one_dimensional(cfg: MvGaussianConfig, generations: np.ndarray) -> dict[str, np.ndarray]:
    """In one dimension the chain is the Gaussian family's: its curated closed form of
    ``E[sigma_T^2]`` (self-interval, correction) is the trace ratio's."""
    from .. import curated_theory as ct
    from ..theory import NoClosedForm

    cur = cfg.curation
    try:
        values = [ct.moment_std(cur, 2, int(t), cfg.num_samples, cfg.ddof) for t in generations]
    except NoClosedForm:
        return {}
    return {"trace_ratio": np.array(values), "det_ratio": np.array(values)}


def rate(cfg: MvGaussianConfig) -> float | None:
    """The exact per-dimension collapse rate ``-E[log det Sigma_t] / (2 d t)`` (replace)."""
    th = expected(cfg, np.array([1, 2]))
    if "log_det_ratio" not in th:
        return None
    return float(-(th["log_det_ratio"][1] - th["log_det_ratio"][0]) / (2 * cfg.dim))


# --- what it shows ----------------------------------------------------------------------


def table(result: Any) -> Any:
    """The final generation's metrics beside theory and the original."""
    s = result.summary
    what = (f"n = {s['samples']}, d = {s['dim']}, ddof {s['ddof']}, {s['method']}, "
            f"original {s['original']}")  # fmt: skip
    return _recorded.table(result, _recorded.title(s, what), [(SHORT[m], m) for m in METRICS])


def plot(result: Any, path: Path) -> None:
    """Trace and log-determinant ratios, the mean's error, conditioning, rank and W2."""
    cfg = result.config
    panels = [(name, LABELS[name], log) for name, log in (
        ("trace_ratio", True), ("log_det_ratio", False), ("mean_sq_error", False),
        ("condition", True), ("effective_rank", False), ("w2", False))]  # fmt: skip
    heading = (f"{cfg.dim}-dimensional Gaussian chains: n = {cfg.num_samples}, {_recorded.plot_regime(cfg)}, "
               f"{cfg.resolved_method}, {cfg.num_chains} chains, original {cfg.original}")  # fmt: skip
    _recorded.plot(result, path, panels, heading)


def measure(cfg: MvGaussianConfig, result: Any) -> dict[str, Any]:
    """A scan point: the per-dimension collapse rate ``-log det ratio / (2 d T)`` (exact
    under replace) and the final trace ratio."""
    ld = np.asarray(result.final["log_det_ratio"], np.float64)
    tr = np.asarray(result.final["trace_ratio"], np.float64)
    c, t, d = len(ld), cfg.num_generations, cfg.dim
    k = 2 * d * t
    se = float(ld.std(ddof=1) / math.sqrt(c) / k) if c > 1 and t > 0 else math.nan
    return {"rate": float(-ld.mean() / k) if t > 0 else math.nan, "rate_se": se,
            "level": float(tr.mean()),
            "level_se": float(tr.std(ddof=1) / math.sqrt(c)) if c > 1 else math.nan,
            "theory_rate": rate(cfg)}  # fmt: skip


def prepare(values: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """Take the dimension from an ``--original`` file unless ``--dim`` is given."""
    name = values["original"]
    if name == "isotropic" or name.startswith("powerlaw:") or "dim" in given:
        return values
    mean, _ = _read_original(Path(name))
    return {**values, "dim": mean.shape[0]}


FAMILY = Family(
    name="mvgaussian",
    config=MvGaussianConfig,
    runner="collapsesim.experiments.mvgaussian",
    help="""Run d-dimensional Gaussian chains: fit mean and full covariance to n points, sample, refit.

The sufficient method draws each fit's mean and Bartlett-Wishart scatter directly: O(d^3)
per generation, exact at d = 1000. Trace, determinant and log-determinant ratios, the
spectrum, the mean's error, W2, KL and tail mass are recorded per generation, beside their
closed forms under replace.""",
    kind="chains",
    table=table,
    plot="collapsesim.families.mvgaussian:plot",
    plot_help="trace and log-det ratios, the mean's error, condition number, effective rank "
    "and W2 over generations, with the exact means",
    scan={
        "samples": "num_samples",
        "dim": "dim",
        "fresh-fraction": "fresh_fraction",
        "keep-fraction": "keep_fraction",
        "sampling-bias": "sampling_bias",
        "select-strength": "select_strength",
        "best-of": "best_of",
    },
    measure=measure,
    prepare=prepare,
    headline="trace_ratio",
)
