"""The regression family: fit linear weights to labels the previous fit made, and repeat.

The setting of Dohmatob et al. (2024) and Gerstgrasser et al. (2024): covariates
``x ~ N(0, Sigma)``, labels ``y = x . w* + eps`` with ``eps ~ N(0, sigma^2)``; generation
0 is labelled by the truth, generation t by model t (plus fresh noise of the true sigma),
and model t + 1 is the OLS or ridge fit on generation t's training set. ``Sigma`` is
diagonal, isotropic or with a power-law spectrum ``i^-ALPHA`` normalised to trace d; the
truth is ``w* = (1, ..., 1) / sqrt(d)``, so ``|w*| = 1`` and the signal ``w*' Sigma w* = 1``
for every spectrum. Closed forms of the expected metrics are :func:`expected`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import (
    CURATION,
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
    opt_correction,
    opt_reward,
    opt_sampling_bias,
    opt_select_strength,
)
from ..regimes import Regime, real_count
from . import _recorded
from ._family import Family

__all__ = ["FAMILY", "METRICS", "RegressionConfig", "expected", "ridge_given_design", "table"]

METRICS = ("risk", "weight_error", "noise_variance", "prediction_variance")
"""Per-chain metrics of every recorded model (the kernel's ``METRICS``)."""

LABELS = {
    "risk": "excess risk (w - w*)' Sigma (w - w*)",
    "weight_error": "|w - w*|^2",
    "noise_variance": "fitted noise variance RSS / (m - df)",
    "prediction_variance": "prediction variance w' Sigma w",
}

ROWS = {
    "risk": "excess risk",
    "weight_error": "|w - w*|^2",
    "noise_variance": "fitted noise variance",
    "prediction_variance": "prediction variance",
}
"""The table's labels (the figure's axes say more: :data:`LABELS`)."""

DESIGNS = ("fixed", "fresh")
MAX_DIM = 4096
_POOL_LIMIT_BYTES = 4 * 2**30  # accumulate-subsample: one chain's pool at most


def spectrum_variances(spectrum: str, dim: int) -> np.ndarray:
    """The covariates' variances: ``isotropic`` (all 1) or ``powerlaw:ALPHA``
    (``i^-ALPHA``, i = 1..d, scaled to sum to d).

    Raises:
        ConfigError: any other text, or ALPHA outside [0, 10].
    """
    if spectrum == "isotropic":
        return np.ones(dim)
    kind, _, value = spectrum.partition(":")
    try:
        alpha = float(value) if kind == "powerlaw" else math.nan
    except ValueError:
        alpha = math.nan
    if not (math.isfinite(alpha) and 0 <= alpha <= 10):
        raise ConfigError(f"spectrum must be isotropic or powerlaw:ALPHA with ALPHA in [0, 10], "
                          f"got {spectrum!r}")  # fmt: skip
    v = np.arange(1, dim + 1, dtype=np.float64) ** -alpha
    return v * (dim / v.sum())


@dataclass(frozen=True, slots=True)
class RegressionConfig(ChainConfig):
    """Linear-regression chains: fit w by OLS or ridge to labels of the previous fit."""

    num_chains: int = opt_chains(100)
    num_generations: int = opt_generations(100)
    num_samples: int = opt_samples(1000, "Rows N of every generation's data (OLS: > d).")
    dim: int = opt(100, "Dimension d of the covariates.", range=(1, MAX_DIM))
    spectrum: str = opt(
        "isotropic",
        "Covariates' covariance: isotropic (I) | powerlaw:ALPHA (eigenvalues i^-ALPHA, "
        "scaled to trace d).",
    )
    noise: float = opt(1.0, "Label noise sigma > 0 (every generation's labels get it afresh).")
    ridge: float = opt(
        0.0,
        "Ridge lambda >= 0 of the per-sample objective (1/m)|y - Xw|^2 + lambda |w|^2 (0: OLS).",
    )
    design: str = opt(
        "fixed",
        "fixed (each chain's N rows drawn once and relabelled, the setting of the closed "
        "forms) | fresh (new rows every generation).",
    )
    sampling_bias: float = opt_sampling_bias()
    select: str = opt("none", "Verifier that redraws a synthetic label until kept: none | "
                      "interval | self-interval | soft (README: Curation).", group=CURATION)  # fmt: skip
    select_strength: float = opt_select_strength(
        "X of --select, on a label's residual r = (y - x.w*) / sigma: interval keeps |r| <= X, "
        "self-interval |y - x.w| <= X sigma, soft keeps with probability exp(-X r^2 / 2)."
    )
    best_of: int = opt_best_of(
        "Reward curation: each kept label is one of K candidates, chosen with probability "
        "proportional to its likelihood under the true model (1: off)."
    )
    reward: str = opt_reward("Reward of --best-of: loglik (the label's log-likelihood under "
                             "the true model), the only one for labels.")  # fmt: skip
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
        for name in ("noise", "ridge"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ConfigError(f"{name} must be a number, got {v!r}")
        n, d = self.num_samples, self.dim
        regime = self._validate(
            [
                (math.isfinite(self.noise) and 1e-100 <= self.noise <= 1e100,
                 f"noise must lie in [1e-100, 1e100], got {self.noise}"),
                (math.isfinite(self.ridge) and 0 <= self.ridge <= 1e100,
                 f"ridge must lie in [0, 1e100], got {self.ridge}"),
                (self.design in DESIGNS, f"unknown design {self.design!r}; choose fixed or fresh"),
                (self.ridge > 0 or n > d,
                 (f"OLS needs more rows than dimensions: samples must exceed dim = {d}, got {n} "
                 "(or give --ridge > 0)")),
            ]
        )  # fmt: skip
        spectrum_variances(self.spectrum, d)
        if self.select in ("top", "self-top"):
            raise ConfigError(f"select {self.select} ranks a batch of candidates; labels are "
                              "kept or redrawn one by one: use interval, self-interval or soft")  # fmt: skip
        check_curation(self, linear_reward=False)
        if regime is Regime.ACCUMULATE_SUBSAMPLE:
            if self.ridge == 0 and self.design == "fixed" and n < 3 * d:
                raise ConfigError(f"accumulate-subsample of a fixed design repeats its rows: OLS "
                                  f"needs samples >= 3 x dim = {3 * d} (or --ridge > 0)")  # fmt: skip
            if self._pool_bytes() > _POOL_LIMIT_BYTES:
                raise ConfigError(f"accumulate-subsample keeps {self._pool_bytes() / 2**30:.1f} "
                                  "GiB of rows per chain (N x T rows); reduce --samples, "
                                  "--generations or --dim, or use --design fixed")  # fmt: skip
        self._check_held(8 * self.values_per_record, len(METRICS))

    @property
    def curation(self) -> Curation:
        """The curation operators of this run."""
        return Curation.of(self)

    @property
    def num_real(self) -> int:
        """Real rows in each training set (fresh, keep-original; else 0)."""
        return real_count(Regime(self.regime), self.num_samples, self.fresh_fraction,
                          self.keep_fraction)  # fmt: skip

    @property
    def values_per_record(self) -> int:
        """Numbers recorded per chain and generation: the metrics."""
        return len(METRICS)

    def variances(self) -> np.ndarray:
        """The covariates' variances (the diagonal of Sigma), ``(d,)``."""
        return spectrum_variances(self.spectrum, self.dim)

    def w_star(self) -> np.ndarray:
        """The true weights ``(1, ..., 1) / sqrt(d)``."""
        return np.full(self.dim, 1.0 / math.sqrt(self.dim))

    def _pool_bytes(self) -> int:
        cols = self.dim + 1 if self.design == "fresh" else 2
        return 8 * cols * self.num_samples * max(self.num_generations, 1)

    def chain_bytes(self) -> int:
        """One chain's state: weights, a fixed design and its factor, statistics, pool."""
        n, d = self.num_samples, self.dim
        regime = Regime(self.regime)
        need = 8 * (d + 3)  # w, and dof, sum y^2, pool size
        if self.design == "fixed":
            need += 8 * n * (d + 1)
            if regime is not Regime.ACCUMULATE_SUBSAMPLE:
                need += 16 * d * d
        if regime in (Regime.ACCUMULATE, Regime.KEEP_ORIGINAL):
            need += 8 * d * (d + 1 if self.design == "fresh" else 1)
        if regime is Regime.ACCUMULATE_SUBSAMPLE:
            need += self._pool_bytes()
        return need

    def memory_bytes(self) -> int:
        """A floor on the run's peak memory: records, statistics, one batch's states and
        each thread's scratch (a fresh design's rows, the normal equations)."""
        from ..experiments._recorded import batch_size

        n, d = self.num_samples, self.dim
        held = self.held_bytes(8 * self.values_per_record, len(METRICS))
        scratch = 8 * (n * (d + 2) + 2 * d * d) * (os.cpu_count() or 1)
        return (
            held + batch_size(self, len(METRICS), self.chain_bytes()) * self.chain_bytes() + scratch
        )


# --- exact theory -------------------------------------------------------------------------


def _coefficients(cfg: RegressionConfig, t: np.ndarray) -> np.ndarray | None:
    """``k_t`` with ``Cov(w_t - w*) = k_t sigma^2 E[(X'X)^-1]`` (OLS), or None.

    With ``u_s = (X'X)^-1 X' eps_s`` the error of the fit on generation s's labels,
    ``lambda_0 = 1`` and ``lambda_s = lambda`` (the sampling bias) after, and
    ``kappa = 1 - gamma / (1 + gamma)`` (the correction keeps kappa of a label's error):

    * replace: ``e_{t+1} = kappa e_t + lambda_t u_t``, so ``k_t = kappa^(2(t-1))
      + lambda^2 sum_{j<t-1} kappa^(2j)``; without curation ``k_t = t``;
    * accumulate, fixed design: ``(t+1) e_{t+1} = sum_{s<=t} (kappa e_s + lambda_s u_s)``,
      so ``t e_t = sum_{j<t} lambda_j u_j prod_{s=j+1}^{t-1} (1 + kappa / s)`` and
      ``k_t = [Gamma(t + kappa) / Gamma(t + 1)]^2 sum_{j<t} lambda_j^2
      [Gamma(j + 1) / Gamma(j + 1 + kappa)]^2``; without correction ``sum_{j=1}^t
      lambda_{j-1}^2 / j^2`` (Gerstgrasser et al.: at most pi^2 / 6 times generation 1's).
    """
    cur = cfg.curation
    regime = Regime(cfg.regime)
    lam2 = cur.sampling_bias**2
    kappa = 1.0 - cur.fraction
    g = np.asarray(t, np.float64)
    later = np.maximum(g - 1, 0)
    if regime is Regime.REPLACE:
        a = kappa * kappa
        k = 1.0 + lam2 * later if a == 1.0 else a**later + lam2 * (1 - a**later) / (1 - a)
        return np.where(g > 0, k, 0.0)
    if regime is not Regime.ACCUMULATE or cfg.design != "fixed":
        return None
    from scipy import special

    if kappa == 1.0:  # sum_{j=2}^t 1/j^2 = pi^2/6 - 1 - psi'(t + 1)
        rest = np.pi**2 / 6 - 1.0 - special.polygamma(1, g + 1)
        return np.where(g > 0, 1.0 + lam2 * np.where(g > 1, rest, 0.0), 0.0)
    top = int(g.max()) if g.size else 0
    if top > 10**7:
        return None  # the sum has t terms: not formed beyond 10^7 generations
    j = np.arange(max(top, 1), dtype=np.float64)
    terms = np.exp(2 * (special.gammaln(j + 1) - special.gammaln(j + 1 + kappa)))
    terms[1:] *= lam2
    sums = np.concatenate([[0.0], np.cumsum(terms)])[g.astype(np.int64)]
    front = np.exp(2 * (special.gammaln(g + kappa) - special.gammaln(g + 1)))
    return np.where(g > 0, front * sums, 0.0)


def expected(cfg: RegressionConfig, generations: np.ndarray) -> dict[str, np.ndarray]:
    """Closed forms of the expected metrics of OLS chains at the given generations.

    For Gaussian rows ``X'X ~ Wishart_d(N, Sigma)`` and ``E[(X'X)^-1] = Sigma^-1 /
    (N - d - 1)`` (N > d + 1), so with :func:`_coefficients`' ``k_t``

    * ``E risk_t = sigma^2 d k_t / (N - d - 1)`` (Dohmatob et al.'s ``sigma^2 d t /
      (N - d - 1)`` under replace; whitening makes it the same for every Sigma);
    * ``E |w_t - w*|^2 = sigma^2 tr(Sigma^-1) k_t / (N - d - 1)``;
    * ``E w_t' Sigma w_t = w*' Sigma w* + E risk_t`` (the error has mean 0);
    * the fitted noise variance: ``sigma^2`` for the fit on real labels and
      ``lambda^2 sigma^2`` after, under replace (the residual of OLS on ``X v + s eps`` is
      ``s (I - P) eps``); under accumulate with a fixed design and no correction,
      ``E RSS_t = sigma^2 [(N - d)(1 + lambda^2 (t - 1)) + d lambda^2 (t - H_t)]`` over
      ``t N - d`` (``H_t`` the harmonic number: every fit's error is a fixed combination of
      the u_s, whose spread across the pooled generations adds ``d (t - H_t)``).

    Replace holds for both designs (the u_t are then independent and unconditionally
    alike); accumulate needs the fixed design. Ridge, the fresh and keep-original regimes,
    accumulate-subsample, selection and best-of have no closed form here: the ridge chain
    has one given the design (:func:`ridge_given_design`).

    References:
        E. Dohmatob, Y. Feng and J. Kempe, "Model collapse demystified: the case of
        regression", 2024; M. Gerstgrasser et al., "Is model collapse inevitable?
        Breaking the curse of recursion by accumulating real and synthetic data", 2024;
        A. Dey and D. Donoho, "Universality of the pi^2/6 pathway in avoiding model
        collapse", 2024; T. W. Anderson, "An Introduction to Multivariate Statistical
        Analysis", 3rd ed., Wiley 2003, Section 7.2 (the inverse Wishart mean).
    """
    n, d = cfg.num_samples, cfg.dim
    cur = cfg.curation
    if cfg.ridge > 0 or n <= d + 1 or cur.select != "none" or cur.best_of > 1:
        return {}
    t = np.asarray(generations, np.float64)
    k = _coefficients(cfg, t)
    if k is None:
        return {}
    v, w = cfg.variances(), cfg.w_star()
    s2 = cfg.noise**2
    risk = s2 * d * k / (n - d - 1)
    out = {
        "risk": risk,
        "weight_error": s2 * float(np.sum(1 / v)) * k / (n - d - 1),
        "prediction_variance": float(w @ (v * w)) + risk,
    }
    lam2 = cur.sampling_bias**2
    if Regime(cfg.regime) is Regime.REPLACE:
        out["noise_variance"] = np.where(t >= 2, lam2 * s2, s2)
    elif cur.correction == 0:
        g = np.maximum(t, 1)
        harmonic = np.euler_gamma + _digamma(g + 1)
        rss = (n - d) * (1 + lam2 * (g - 1)) + d * lam2 * (g - harmonic)
        out["noise_variance"] = np.where(t > 0, s2 * rss / (g * n - d), s2)
    return out


def _digamma(x: np.ndarray) -> np.ndarray:
    from scipy.special import digamma

    return np.asarray(digamma(x))


def ridge_given_design(
    x: np.ndarray, w_star: np.ndarray, variances: np.ndarray, sigma: float, ridge: float,
    generations: np.ndarray,
) -> dict[str, np.ndarray]:  # fmt: skip
    """The expected metrics of a ridge chain under replace, given its fixed design.

    With ``X'X = V diag(mu) V'`` and ``beta = mu / (mu + N lambda)``, each eigen-direction
    of ``w_t`` is an AR(1): ``a_{t+1} = beta a_t + xi_t``, ``xi ~ N(0, sigma^2 mu /
    (mu + N lambda)^2)``, from ``a_0 = V' w*``. So ``E[V'(w_t - w*)] = (beta^t - 1) V' w*``
    and ``Cov = diag(sigma^2 mu / (mu + N lambda)^2 (1 - beta^(2t)) / (1 - beta^2))``: the
    chain shrinks to 0 (its prediction variance to a noise floor) instead of wandering.
    There is no closed form over random designs; with lambda = 0 this is OLS given X.

    Args:
        x: the design ``(N, d)``.
        w_star: the true weights ``(d,)``.
        variances: the covariates' variances ``(d,)`` (Sigma's diagonal).
        sigma: the label noise.
        ridge: lambda of the per-sample objective.
        generations: the generations t.

    Returns:
        ``E[metric | X]`` of ``risk``, ``weight_error`` and ``prediction_variance``.
    """
    n = x.shape[0]
    mu, vecs = np.linalg.eigh(x.T @ x)
    beta = mu / (mu + n * ridge)
    step = sigma**2 * mu / (mu + n * ridge) ** 2
    a = vecs.T @ w_star
    sig = (vecs.T * variances) @ vecs  # Sigma in the eigenbasis
    out: dict[str, list[float]] = {"risk": [], "weight_error": [], "prediction_variance": []}
    for t in np.asarray(generations, np.int64):
        mean = (beta**t - 1) * a
        with np.errstate(invalid="ignore", divide="ignore"):
            var = np.where(beta < 1, step * (1 - beta ** (2 * t)) / (1 - beta**2), step * t)
        w_mean = a + mean
        out["risk"].append(float(mean @ sig @ mean + np.sum(var * np.diag(sig))))
        out["weight_error"].append(float(mean @ mean + var.sum()))
        out["prediction_variance"].append(float(w_mean @ sig @ w_mean + np.sum(var * np.diag(sig))))
    return {k: np.array(v) for k, v in out.items()}


def rate(cfg: RegressionConfig) -> float | None:
    """The exact mean excess risk per generation at the last one, ``E risk_T / T``."""
    t = cfg.num_generations
    th = expected(cfg, np.array([t]))
    return float(th["risk"][0] / t) if "risk" in th and t > 0 else None


# --- what it shows --------------------------------------------------------------------------


def table(result: Any) -> Any:
    """The final generation's metrics beside theory and the truth."""
    s = result.summary
    fit = f"ridge {s['ridge']:g}" if s["ridge"] else "OLS"
    what = (f"N = {s['samples']}, d = {s['dim']}, {s['spectrum']}, sigma {s['noise']:g}, "
            f"{fit}, {s['design']} design")  # fmt: skip
    return _recorded.table(result, _recorded.title(s, what), [(ROWS[m], m) for m in METRICS])


def plot(result: Any, path: Path) -> None:
    """Excess risk, weight error (unless the design is isotropic: the risk), fitted noise and
    prediction variance over generations."""
    cfg = result.config
    names = ("risk", "weight_error", "noise_variance", "prediction_variance")
    # With an isotropic design the weight error is the risk: one panel of the two.
    panels = [(m, LABELS[m], False) for m in names
              if m != "weight_error" or cfg.spectrum != "isotropic"]  # fmt: skip
    fit = f"ridge {cfg.ridge:g}" if cfg.ridge else "OLS"
    heading = (f"Regression chains: N = {cfg.num_samples}, d = {cfg.dim}, {cfg.spectrum}, {fit}, "
               f"{cfg.design} design, {_recorded.plot_regime(cfg)}, {cfg.num_chains} chains")  # fmt: skip
    _recorded.plot(result, path, panels, heading)


def measure(cfg: RegressionConfig, result: Any) -> dict[str, Any]:
    """A scan point: the excess risk gained per generation, ``risk_T / T`` (exact for OLS
    under replace and accumulate), and the final risk."""
    v = np.asarray(result.final["risk"], np.float64)
    c, t = len(v), max(cfg.num_generations, 1)
    se = float(v.std(ddof=1) / math.sqrt(c)) if c > 1 else math.nan
    return {"rate": float(v.mean() / t), "rate_se": se / t, "level": float(v.mean()),
            "level_se": se, "theory_rate": rate(cfg)}  # fmt: skip


FAMILY = Family(
    name="regression",
    config=RegressionConfig,
    runner="collapsesim.experiments.regression",
    help="""Run linear-regression chains: fit w by OLS or ridge to labels the previous fit made.

Covariates x ~ N(0, Sigma), labels y = x . w* + eps; generation 0 is labelled by the truth,
each later one by the last fit with fresh noise (Dohmatob et al. 2024; Gerstgrasser et al.
2024). With the default fixed design each generation costs O(N d): one Cholesky factor per
chain. The excess risk, weight error, fitted noise and prediction variance are recorded per
generation, beside their exact means for OLS.""",
    kind="chains",
    table=table,
    plot="collapsesim.families.regression:plot",
    plot_help="excess risk, weight error, fitted noise and prediction variance over "
    "generations, with their exact means",
    scan={
        "samples": "num_samples",
        "dim": "dim",
        "ridge": "ridge",
        "noise": "noise",
        "fresh-fraction": "fresh_fraction",
        "keep-fraction": "keep_fraction",
        "sampling-bias": "sampling_bias",
        "select-strength": "select_strength",
        "best-of": "best_of",
        "correction": "correction",
    },
    measure=measure,
    headline="risk",
)
