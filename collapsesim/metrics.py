"""Statistics recorded per generation, as vectorised functions of the fitted parameters."""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["GAUSSIAN_METRICS", "STATS", "aggregate", "gaussian_metrics"]

GAUSSIAN_METRICS = ("mu", "sigma", "log_sigma", "w2", "kl_fit_orig", "kl_orig_fit", "tail_mass")
"""Per-chain metrics of a fitted Gaussian, in storage order."""

STATS = ("mean", "stderr", "std", "min", "q05", "q25", "q50", "q75", "q95", "max")
"""Statistics across chains stored for every recorded generation and metric."""

_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def gaussian_metrics(
    mu: np.ndarray, log_sigma: np.ndarray, mu0: float, sigma0: float
) -> dict[str, np.ndarray]:
    """Return every metric of fitted Gaussians against the original N(mu0, sigma0^2).

    Args:
        mu: fitted means, float64, any shape.
        log_sigma: fitted log stds, float64, the shape of ``mu``.
        mu0: the original mean.
        sigma0: the original std.

    Returns:
        A dict over :data:`GAUSSIAN_METRICS` of float64 arrays shaped like ``mu``:
        ``w2`` the 2-Wasserstein distance ``sqrt((mu-mu0)^2 + (sigma-sigma0)^2)``;
        ``kl_fit_orig`` = KL(fit || original) and ``kl_orig_fit`` = KL(original || fit),
        with ``KL(N(a, s^2) || N(b, r^2)) = log(r/s) + (s^2 + (a-b)^2)/(2 r^2) - 1/2``
        (``inf`` once the ratio of scales passes the double range); ``tail_mass`` the
        probability under the fit of ``|x - mu0| > 3 sigma0``.
    """
    mu = np.asarray(mu, dtype=np.float64)
    log_sigma = np.asarray(log_sigma, dtype=np.float64)
    ls0 = np.log(sigma0)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        sigma = np.exp(log_sigma)
        dmu = mu - mu0
        w2 = np.hypot(dmu, sigma - sigma0)
        kl_fit_orig = (
            ls0 - log_sigma + 0.5 * (np.exp(2 * (log_sigma - ls0)) + (dmu / sigma0) ** 2) - 0.5
        )
        kl_orig_fit = (
            log_sigma
            - ls0
            + 0.5 * (np.exp(2 * (ls0 - log_sigma)) + (dmu * np.exp(-log_sigma)) ** 2)
            - 0.5
        )
        inv = np.exp(-log_sigma) / np.sqrt(2.0)
        tail = 0.5 * special.erfc((mu0 + 3 * sigma0 - mu) * inv) + 0.5 * special.erfc(
            (mu - (mu0 - 3 * sigma0)) * inv
        )
    return {
        "mu": mu,
        "sigma": sigma,
        "log_sigma": log_sigma,
        "w2": w2,
        "kl_fit_orig": kl_fit_orig,
        "kl_orig_fit": kl_orig_fit,
        "tail_mass": tail,
    }


def aggregate(values: np.ndarray) -> dict[str, np.ndarray]:
    """Return statistics across chains (axis 0) for each column.

    Quantiles interpolate linearly between order statistics, as ``np.quantile``'s
    default does; each column is sorted once, contiguously, which is several times
    faster than ``np.quantile(axis=0)`` on the strided columns.

    Args:
        values: float64 ``(chains, records)``.

    Returns:
        A dict over :data:`STATS` of float64 ``(records,)`` arrays; ``stderr`` is the
        standard error of the mean, ``std / sqrt(chains)`` with ``ddof = 1``
        (NaN for a single chain).
    """
    c = values.shape[0]
    rows = np.sort(np.ascontiguousarray(values.T), axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        mean = rows.mean(axis=1)
        std = rows.std(axis=1, ddof=1) if c > 1 else np.full(rows.shape[0], np.nan)
        out = {
            "mean": mean,
            "stderr": std / np.sqrt(c),
            "std": std,
            "min": rows[:, 0].copy(),
            "max": rows[:, -1].copy(),
        }
        for name, q in zip(("q05", "q25", "q50", "q75", "q95"), _QUANTILES, strict=True):
            pos = q * (c - 1)
            lo = int(np.floor(pos))
            hi = min(lo + 1, c - 1)
            frac = pos - lo
            a, b = rows[:, lo], rows[:, hi]
            # numpy's lerp: exact at both ends and where neighbours are equal or infinite
            out[name] = np.where(b == a, a, a + (b - a) * frac) if frac else a.copy()
    return out
