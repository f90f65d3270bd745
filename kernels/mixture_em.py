"""Gaussian-mixture fits by EM and draws from a mixture, for one chain (starts: mixture_init).

The EM follows scikit-learn's ``GaussianMixture`` step for step, so that given the same
data and the same initial parameters both reach the same fit: log-sum-exp
responsibilities from Cholesky factors of the covariances; an M-step with
``nk = sum_i r_ik + 10 eps`` (so a component that loses all its points keeps a zero
mean and a ``reg_covar`` covariance instead of producing NaN, as scikit-learn does)
and ``reg_covar`` added to every covariance diagonal; iterations until the mean
log-likelihood changes by less than ``tol``, at most ``max_iter`` of them.

Parameters of K components in d dimensions are ``weights (K,)``, ``means (K, d)`` and
``covs (K, d, d)``; diagonal fits keep full-shaped covariance arrays with zero
off-diagonals, which costs nothing at d <= 2 and keeps one code path.

References:
    A. P. Dempster, N. M. Laird and D. B. Rubin, "Maximum likelihood from incomplete
    data via the EM algorithm", J. R. Stat. Soc. B 39(1), 1-38 (1977).
    F. Pedregosa et al., "Scikit-learn: machine learning in Python", JMLR 12 (2011),
    ``sklearn.mixture.GaussianMixture``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import _rng
from ._flags import JIT

FULL = 0
DIAG = 1

_EPS10 = 10.0 * np.finfo(np.float64).eps
_LOG_2PI = math.log(2.0 * math.pi)


@njit(**JIT)
def _cholesky(a, out):
    """Lower Cholesky factor of the SPD matrix ``a`` (d, d) into ``out``; False if not SPD."""
    d = a.shape[0]
    for j in range(d):
        s = a[j, j]
        for k in range(j):
            s -= out[j, k] * out[j, k]
        if not s > 0.0:
            return False
        ljj = math.sqrt(s)
        out[j, j] = ljj
        for i in range(j + 1, d):
            t = a[i, j]
            for k in range(j):
                t -= out[i, k] * out[j, k]
            out[i, j] = t / ljj
        for i in range(j):
            out[i, j] = 0.0
    return True


# Kept whole: the hot loop of every mixture run, where the E-step, the M-step and the
# Cholesky factors share their loops over points and components.
@njit(**JIT)
def _em_iteration(xt, weights, means, covs, chol, resp, cov_type, reg_covar, mom, work):
    """One E-step and M-step; return the E-step's lower bound (mean log-likelihood).

    ``xt`` is the data transposed, ``(d, n)``, and ``resp`` a ``(K, n)`` scratch array,
    so that every pass runs along contiguous memory: one pass per component writes the
    log-densities; one pass over the points normalises them (the responsibilities
    ``e_k / sum e`` fall out of the log-sum-exp, whose largest term is exactly 1; the
    logs of the sums are taken once per 64 points, of their product); one pass per
    component accumulates its count and first and second moments about its *current*
    mean in registers. The new covariance is the second moment corrected for the mean's
    shift, which loses relative precision of about
    ``eps * shift^2 / variance``; where a shift exceeds 30 standard deviations in any
    coordinate (a poor start, or all points equal) the covariances are recomputed
    centred on the new means, as scikit-learn computes them. Otherwise the arithmetic is
    scikit-learn's (``nk + 10 eps``, weights normalised by their sum, ``reg_covar`` on
    the diagonal) up to the order of floating-point operations.
    """
    d, n = xt.shape
    k_count = weights.shape[0]
    nk = work[0]
    y = work[1]
    shift = work[2]
    full = cov_type == FULL
    half_d_log_2pi = 0.5 * d * _LOG_2PI
    # Pass 1, per component: log w_k + log N(x_i; m_k, C_k).
    for k in range(k_count):
        c = math.log(weights[k]) - half_d_log_2pi
        for j in range(d):
            c -= math.log(chol[k, j, j])
        lr = resp[k]
        if d == 1:
            m0 = means[k, 0]
            i0 = 1.0 / chol[k, 0, 0]
            x0 = xt[0]
            for i in range(n):
                y0 = (x0[i] - m0) * i0
                lr[i] = c - 0.5 * (y0 * y0)
        elif d == 2:
            m0 = means[k, 0]
            m1 = means[k, 1]
            i0 = 1.0 / chol[k, 0, 0]
            i1 = 1.0 / chol[k, 1, 1]
            l10 = chol[k, 1, 0]
            x0 = xt[0]
            x1 = xt[1]
            for i in range(n):
                y0 = (x0[i] - m0) * i0
                y1 = (x1[i] - m1 - l10 * y0) * i1
                lr[i] = c - 0.5 * (y0 * y0 + y1 * y1)
        else:
            for i in range(n):
                q = 0.0
                for j in range(d):
                    t = xt[j, i] - means[k, j]
                    for m in range(j):
                        t -= chol[k, j, m] * y[m]
                    y[j] = t / chol[k, j, j]
                    q += y[j] * y[j]
                lr[i] = c - 0.5 * q
    # Pass 2, per point: log-sum-exp and normalisation.
    total_best = 0.0
    total_log = 0.0
    prod = 1.0
    if k_count == 2:
        # The same arithmetic without loops over k or branches on the larger term.
        r0 = resp[0]
        r1 = resp[1]
        for i in range(n):
            a = r0[i]
            b = r1[i]
            e = math.exp(-abs(a - b))
            acc = 1.0 + e
            total_best += max(a, b)
            prod *= acc
            if (i & 63) == 63:
                total_log += math.log(prod)
                prod = 1.0
            inv = 1.0 / acc
            big = inv
            small = e * inv
            first = a >= b
            r0[i] = big if first else small
            r1[i] = small if first else big
    for i in range(n if k_count != 2 else 0):
        best = resp[0, i]
        kbest = 0
        for k in range(1, k_count):
            if resp[k, i] > best:
                best = resp[k, i]
                kbest = k
        acc = 0.0
        for k in range(k_count):
            e = 1.0 if k == kbest else math.exp(resp[k, i] - best)
            resp[k, i] = e
            acc += e
        total_best += best
        prod *= acc
        if (i & 63) == 63:
            total_log += math.log(prod)
            prod = 1.0
        inv = 1.0 / acc
        for k in range(k_count):
            resp[k, i] *= inv
    total_log += math.log(prod)
    # Pass 3, per component: counts and moments about the current means; M-step.
    norm = 0.0
    recentre = False
    for k in range(k_count):
        r_k = resp[k]
        if d == 1:
            m0 = means[k, 0]
            x0 = xt[0]
            sn = s0 = s00 = 0.0
            for i in range(n):
                r = r_k[i]
                a0 = r * (x0[i] - m0)
                sn += r
                s0 += a0
                s00 += a0 * (x0[i] - m0)
            mom[k, 0] = s0
            mom[k, 1] = s00
        elif d == 2:
            m0 = means[k, 0]
            m1 = means[k, 1]
            x0 = xt[0]
            x1 = xt[1]
            sn = s0 = s1 = s00 = s10 = s11 = 0.0
            for i in range(n):
                r = r_k[i]
                d0 = x0[i] - m0
                d1 = x1[i] - m1
                a0 = r * d0
                a1 = r * d1
                sn += r
                s0 += a0
                s1 += a1
                s00 += a0 * d0
                s10 += a1 * d0
                s11 += a1 * d1
            mom[k, 0] = s0
            mom[k, 1] = s1
            mom[k, 2] = s00
            mom[k, 3] = s10
            mom[k, 4] = s10
            mom[k, 5] = s11
        else:
            sn = 0.0
            for j in range(mom.shape[1]):
                mom[k, j] = 0.0
            for i in range(n):
                r = r_k[i]
                sn += r
                for a in range(d):
                    da = xt[a, i] - means[k, a]
                    mom[k, a] += r * da
                    ra = r * da
                    for b in range(a + 1):
                        mom[k, d + a * d + b] += ra * (xt[b, i] - means[k, b])
        nk[k] = sn + _EPS10
        norm += nk[k]
        # New mean sum_i r x_i / nk written about the old one, m + sum_i r (x_i - m) / nk
        # exactly when the component has points; as scikit-learn, 0 when it has none.
        for a in range(d):
            new = (mom[k, a] + means[k, a] * sn) / nk[k]
            shift[a] = new - means[k, a]
            means[k, a] = new
        # sum_i r (x - m')(x - m')^T = S - s1 u^T - u s1^T + sn u u^T, with u = m' - m.
        for a in range(d):
            for b in range(a + 1):
                v = 0.0
                if full or a == b:
                    v = (
                        mom[k, d + a * d + b]
                        - mom[k, a] * shift[b]
                        - shift[a] * mom[k, b]
                        + sn * shift[a] * shift[b]
                    ) / nk[k]
                covs[k, a, b] = v
                covs[k, b, a] = v
            if not shift[a] * shift[a] <= 900.0 * covs[k, a, a]:
                recentre = True
        weights[k] = nk[k]
    if recentre:
        _centred_covs(xt, resp, means, nk, cov_type, covs)
    for k in range(k_count):
        for a in range(d):
            covs[k, a, a] += reg_covar
        weights[k] /= norm
    return (total_best + total_log) / n


@njit(**JIT)
def _centred_covs(xt, resp, means, nk, cov_type, covs):
    """Covariances ``sum_i r_ik (x_i - m_k)(x_i - m_k)^T / nk`` in a pass centred on the means."""
    d, n = xt.shape
    k_count = means.shape[0]
    for k in range(k_count):
        for a in range(d):
            for b in range(a + 1):
                if cov_type == DIAG and a != b:
                    v = 0.0
                else:
                    v = 0.0
                    for i in range(n):
                        v += resp[k, i] * (xt[a, i] - means[k, a]) * (xt[b, i] - means[k, b])
                    v /= nk[k]
                covs[k, a, b] = v
                covs[k, b, a] = v


@njit(**JIT)
def _fit(x, weights, means, covs, cov_type, tol, max_iter, reg_covar, scratch, chol, trace):
    """Run EM in place from the given parameters.

    ``scratch`` is a float64 work array of at least ``(K + d) * n`` elements. Returns
    ``(n_iter, converged, lower_bound, ok)``; ``trace[:n_iter]`` receives the lower bound
    after each iteration; ``ok`` is False if a covariance stopped being positive
    definite (impossible with ``reg_covar > 0`` in exact arithmetic).
    """
    n, d = x.shape
    k_count = means.shape[0]
    resp = scratch[: k_count * n].reshape((k_count, n))
    xt = scratch[k_count * n : (k_count + d) * n].reshape((d, n))
    for i in range(n):
        for j in range(d):
            xt[j, i] = x[i, j]
    work = np.empty((3, max(k_count, d)))
    mom = np.empty((k_count, d + d * d))
    lower = -np.inf
    converged = False
    n_iter = 0
    for it in range(1, max_iter + 1):
        prev = lower
        for k in range(k_count):
            if not _cholesky(covs[k], chol[k]):
                return it - 1, False, lower, False
        lower = _em_iteration(xt, weights, means, covs, chol, resp, cov_type, reg_covar, mom, work)
        trace[it - 1] = lower
        n_iter = it
        if abs(lower - prev) < tol:
            converged = True
            break
    return n_iter, converged, lower, True


@njit(**JIT)
def _sample(weights, means, chol, out, s0, s1):
    """Draw ``out.shape[0]`` points from the mixture; ``chol`` holds the covariance factors."""
    n, d = out.shape
    k_count = weights.shape[0]
    total = 0.0
    for k in range(k_count):
        total += weights[k]
    z = np.empty(d)
    for i in range(n):
        u, s0, s1 = _rng.uniform(s0, s1)
        u *= total
        k = 0
        acc = weights[0]
        while u >= acc and k < k_count - 1:
            k += 1
            acc += weights[k]
        for j in range(d):
            z[j], s0, s1 = _rng.normal(s0, s1)
        for j in range(d):
            v = means[k, j]
            for m in range(j + 1):
                v += chol[k, j, m] * z[m]
            out[i, j] = v
    return s0, s1


def _check_params(weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> None:
    k, d = means.shape
    if weights.shape != (k,) or covs.shape != (k, d, d):
        raise ValueError("need weights (K,), means (K, d) and covs (K, d, d)")
    if np.any(weights <= 0) or not np.all(np.isfinite(means)) or not np.all(np.isfinite(covs)):
        raise ValueError("weights must be positive and parameters finite")


def fit_em(
    x: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    covs: np.ndarray,
    *,
    covariance_type: str = "full",
    tol: float = 1e-3,
    max_iter: int = 100,
    reg_covar: float = 1e-6,
) -> dict[str, object]:
    """Fit a Gaussian mixture to ``x`` by EM from the given initial parameters.

    Args:
        x: data, float64 ``(n, d)``.
        weights: initial weights, ``(K,)``, positive.
        means: initial means, ``(K, d)``.
        covs: initial covariances, ``(K, d, d)``, symmetric positive definite.
        covariance_type: ``"full"`` or ``"diag"``.
        tol: stop when the mean log-likelihood changes by less than this.
        max_iter: at most this many EM iterations.
        reg_covar: added to every covariance diagonal, as scikit-learn does.

    Returns:
        A dict with ``weights``, ``means``, ``covs`` (new arrays), ``n_iter``,
        ``converged``, ``lower_bound`` (the mean log-likelihood at the last E-step, as
        scikit-learn's ``lower_bound_``) and ``trace`` (the lower bound per iteration).

    Raises:
        ValueError: bad shapes, non-positive weights, an unknown covariance type, or a
            covariance that is not positive definite.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError("x must be (n, d) with n >= 1")
    w = np.array(weights, dtype=np.float64)
    m = np.array(means, dtype=np.float64)
    c = np.array(covs, dtype=np.float64)
    _check_params(w, m, c)
    if m.shape[1] != x.shape[1]:
        raise ValueError("means and x differ in dimension")
    if covariance_type not in ("full", "diag"):
        raise ValueError(f"covariance_type must be 'full' or 'diag', got {covariance_type!r}")
    if max_iter < 1 or not tol >= 0 or not reg_covar >= 0:
        raise ValueError("need max_iter >= 1, tol >= 0 and reg_covar >= 0")
    k = w.shape[0]
    scratch = np.empty((k + x.shape[1]) * x.shape[0])
    chol = np.zeros_like(c)
    trace = np.empty(max_iter)
    cov_code = FULL if covariance_type == "full" else DIAG
    n_iter, converged, lower, ok = _fit(
        x, w, m, c, cov_code, float(tol), int(max_iter), float(reg_covar), scratch, chol, trace
    )
    if not ok:
        raise ValueError("a covariance is not positive definite; raise reg_covar")
    return {
        "weights": w,
        "means": m,
        "covs": c,
        "n_iter": int(n_iter),
        "converged": bool(converged),
        "lower_bound": float(lower),
        "trace": trace[:n_iter].copy(),
    }
