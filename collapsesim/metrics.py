"""Statistics recorded per generation, as vectorised functions of the fitted parameters."""

from __future__ import annotations

import contextlib
import math

import numpy as np
from scipy import special

__all__ = [
    "GAUSSIAN_METRICS",
    "STATS",
    "aggregate",
    "decay_rate",
    "decay_rate_of",
    "frechet_distance",
    "gaussian_metrics",
    "mixture_l2",
    "mixture_loglik",
    "precision_recall",
]

GAUSSIAN_METRICS = ("mu", "sigma", "log_sigma", "w2", "kl_fit_orig", "kl_orig_fit", "tail_mass")
"""Per-chain metrics of a fitted Gaussian, in storage order."""

STATS = ("mean", "stderr", "std", "min", "q05", "q25", "q50", "q75", "q95", "max")
"""Statistics across chains stored for every recorded generation and metric."""

_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def decay_rate(log_start: float, log_end: np.ndarray, generations: int) -> tuple[float, float]:
    """The rate of decay ``(log_start - mean(log_end)) / T`` and its standard error.

    The collapse rate of a chain family: with ``log_end`` each chain's log std (or log
    of another scale) at generation T, it estimates ``-dE[log scale]/dT``.

    Args:
        log_start: the log scale at generation 0 (the same for every chain).
        log_end: each chain's log scale at generation T, shape ``(C,)``.
        generations: T.

    Returns:
        ``(rate, stderr)``; NaN where T is 0 (and the error where C < 2).
    """
    c = len(log_end)
    if generations <= 0 or c == 0:
        return math.nan, math.nan
    std = float(np.std(log_end, ddof=1)) if c > 1 else math.nan
    return decay_rate_of(log_start, float(np.mean(log_end)), std, c, generations)


def decay_rate_of(
    log_start: float, mean: float, std: float, count: int, generations: int
) -> tuple[float, float]:
    """:func:`decay_rate` from the mean and std (ddof 1) of ``count`` chains' log scales."""
    if generations <= 0 or count == 0:
        return math.nan, math.nan
    rate = (log_start - mean) / generations
    se = std / math.sqrt(count) / generations if count > 1 else math.nan
    return rate, se


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


def _cholesky(s: np.ndarray) -> np.ndarray:
    """Batched Cholesky factors, NaN for a matrix that is not positive definite.

    A fit whose covariance collapsed below the double range (``--reg-covar 1e-50``) has
    no factor; its metrics are then NaN (and the fit counts as failed), not an error.
    """
    try:
        return np.linalg.cholesky(s)
    except np.linalg.LinAlgError:
        flat = s.reshape(-1, *s.shape[-2:])
        out = np.full(flat.shape, np.nan)
        for i, m in enumerate(flat):
            with contextlib.suppress(np.linalg.LinAlgError):
                out[i] = np.linalg.cholesky(m)
        return out.reshape(s.shape)


def _gauss_overlap(m1: np.ndarray, c1: np.ndarray, m2: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """Return ``int N(x; m1, c1) N(x; m2, c2) dx = N(m1; m2, c1 + c2)``, batched.

    Args:
        m1: means ``(..., d)``; m2 broadcasts against it.
        c1: covariances ``(..., d, d)``; c2 broadcasts against it.
    """
    s = c1 + c2
    diff = m1 - m2
    chol = _cholesky(s)
    y = np.linalg.solve(chol, diff[..., None])[..., 0]
    d = diff.shape[-1]
    log_det = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    return np.exp(-0.5 * (np.sum(y * y, axis=-1) + log_det + d * math.log(2 * math.pi)))


def _mixture_inner(
    wa: np.ndarray, ma: np.ndarray, ca: np.ndarray, wb: np.ndarray, mb: np.ndarray, cb: np.ndarray
) -> np.ndarray:
    """``int f g`` for mixtures f (``wa (..., K)``, ...) and g (``wb (..., J)``, ...)."""
    o = _gauss_overlap(
        ma[..., :, None, :], ca[..., :, None, :, :], mb[..., None, :, :], cb[..., None, :, :, :]
    )
    return np.einsum("...k,...j,...kj->...", wa, wb, o)


def mixture_l2(
    weights: np.ndarray,
    means: np.ndarray,
    covs: np.ndarray,
    weights0: np.ndarray,
    means0: np.ndarray,
    covs0: np.ndarray,
) -> np.ndarray:
    """Return the L2 distance between fitted mixture densities and the original one.

    ``||f - g||_2^2 = int f^2 - 2 int f g + int g^2``, each a double sum of Gaussian
    overlaps ``N(m_i; m_j, C_i + C_j)``: exact, no integration grid.

    Args:
        weights: fitted weights ``(..., K)``.
        means: fitted means ``(..., K, d)``.
        covs: fitted covariances ``(..., K, d, d)``.
        weights0: original weights ``(J,)``.
        means0: original means ``(J, d)``.
        covs0: original covariances ``(J, d, d)``.

    Returns:
        float64 distances of shape ``weights.shape[:-1]``.
    """
    w0 = np.broadcast_to(weights0, (*weights.shape[:-1], len(weights0)))
    m0 = np.broadcast_to(means0, (*means.shape[:-2], *np.shape(means0)))
    c0 = np.broadcast_to(covs0, (*covs.shape[:-3], *np.shape(covs0)))
    ff = _mixture_inner(weights, means, covs, weights, means, covs)
    fg = _mixture_inner(weights, means, covs, w0, m0, c0)
    gg = _mixture_inner(w0, m0, c0, w0, m0, c0)
    return np.sqrt(np.maximum(ff - 2 * fg + gg, 0.0))


def mixture_loglik(
    x: np.ndarray, weights: np.ndarray, means: np.ndarray, covs: np.ndarray
) -> np.ndarray:
    """Return the mean log-likelihood of the points ``x`` under each fitted mixture.

    Args:
        x: held-out points ``(m, d)`` (for instance a fixed sample of the original).
        weights: fitted weights ``(..., K)``.
        means: fitted means ``(..., K, d)``.
        covs: fitted covariances ``(..., K, d, d)``.

    Returns:
        float64 of shape ``weights.shape[:-1]``.
    """
    d = x.shape[-1]
    chol = _cholesky(covs)  # (..., K, d, d)
    diff = x[:, None, :] - means[..., None, :, :]  # (..., m, K, d)
    y = np.linalg.solve(chol[..., None, :, :, :], diff[..., None])[..., 0]
    log_det = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)  # (..., K)
    log_comp = -0.5 * (np.sum(y * y, axis=-1) + log_det[..., None, :] + d * math.log(2 * math.pi))
    with np.errstate(divide="ignore"):
        log_joint = log_comp + np.log(weights)[..., None, :]
    top = log_joint.max(axis=-1, keepdims=True)
    lse = top[..., 0] + np.log(np.exp(log_joint - top).sum(axis=-1))
    return lse.mean(axis=-1)


# --- Image sets in a feature space -----------------------------------------------------


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (rows are samples).

    ``|m_a - m_b|^2 + tr(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2)``: the FID of Heusel
    et al. (2017) when the features are Inception's; here they are whatever the caller
    gives. The matrix square roots come from symmetric eigendecompositions, so the
    trace term is real and the result is >= 0 up to rounding.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ cb @ root_a)
    trace = np.trace(ca) + np.trace(cb) - 2.0 * np.sum(np.sqrt(np.clip(cross, 0, None)))
    return float(max(np.sum((ma - mb) ** 2) + trace, 0.0))


def _sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(d, 0.0)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of Kynkaanniemi et al. (2019), k-NN manifolds.

    Each set's manifold is the union of balls around its points with radius the
    distance to the point's k-th nearest neighbour in the same set. Precision: the
    share of ``fake`` inside the real manifold; recall: the share of ``real`` inside
    the fake manifold.

    Raises:
        ValueError: a set has no more than ``k`` points.
    """
    real = np.asarray(real, np.float64)
    fake = np.asarray(fake, np.float64)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"need more than k = {k} points in each set")

    def radii(x: np.ndarray) -> np.ndarray:
        d = _sq_dists(x, x)
        return np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself

    r_real, r_fake = radii(real), radii(fake)
    cross = _sq_dists(fake, real)
    precision = float(np.mean((cross <= r_real[None, :]).any(axis=1)))
    recall = float(np.mean((r_fake[None, :] >= cross.T).any(axis=1)))
    return precision, recall
