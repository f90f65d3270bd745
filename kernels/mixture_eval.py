"""Metrics of recorded mixture fits: held-out log-likelihood and the mass beyond the original.

The tail mass is the fit's probability outside the union of the original components'
3-sigma ellipsoids, exact along each direction (a chi distribution's CDF along a ray)
and averaged over directions (:func:`tail_directions`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import _rng
from ._flags import JIT, PJIT
from ._streams import DIRECTIONS_CHAIN
from .mixture_em import _LOG_2PI, _cholesky, _sample


@njit(**JIT)
def _chi_cdf(r, d):
    """``P(|z| <= r)`` for z ~ N(0, I_d): the regularised lower gamma P(d/2, r^2/2).

    Upward recurrence from P(1/2, x) = erf(sqrt x) or P(1, x) = 1 - e^-x:
    ``P(a + 1, x) = P(a, x) - x^a e^-x / Gamma(a + 1)``.
    """
    if r <= 0.0:
        return 0.0
    if r == np.inf:
        return 1.0
    x = 0.5 * r * r
    if d % 2 == 1:
        a = 0.5
        p = math.erf(r / math.sqrt(2.0))
    else:
        a = 1.0
        p = -math.expm1(-x)
    lx = math.log(x)
    while a < 0.5 * d - 0.25:
        p -= math.exp(a * lx - x - math.lgamma(a + 1.0))
        a += 1.0
    return min(max(p, 0.0), 1.0)


@njit(**JIT)
def _inside_mass(m, chol, u, chol0, m0, radius2, v, a, b, lo, hi):
    """Mass of ``N(m, L L^T)`` along the ray ``m + r L u`` (r >= 0) inside the original's region.

    The region is the union over original components j of the ellipsoids
    ``(x - m0_j)^T C0_j^-1 (x - m0_j) <= radius2``. In the whitened coordinates of
    component j the ray is ``b + r a``; its chord is an interval of r, the union of the
    chords a union of intervals, and the mass inside is the chi-distribution's
    probability of those radii.
    """
    d = m.shape[0]
    k0 = m0.shape[0]
    for j in range(d):
        s = 0.0
        for q in range(j + 1):
            s += chol[j, q] * u[q]
        v[j] = s
    count = 0
    for c in range(k0):
        aa = 0.0
        ab = 0.0
        bb = 0.0
        for j in range(d):
            ta = v[j]
            tb = m[j] - m0[c, j]
            for q in range(j):
                ta -= chol0[c, j, q] * a[q]
                tb -= chol0[c, j, q] * b[q]
            a[j] = ta / chol0[c, j, j]
            b[j] = tb / chol0[c, j, j]
            aa += a[j] * a[j]
            ab += a[j] * b[j]
            bb += b[j] * b[j]
        disc = ab * ab - aa * (bb - radius2)
        if disc <= 0.0 or aa <= 0.0:
            continue
        root = math.sqrt(disc)
        r1 = (-ab - root) / aa
        r2 = (-ab + root) / aa
        if r2 <= 0.0:
            continue
        # Insert [max(r1, 0), r2] keeping the list sorted by start.
        start = max(r1, 0.0)
        pos = count
        while pos > 0 and lo[pos - 1] > start:
            lo[pos] = lo[pos - 1]
            hi[pos] = hi[pos - 1]
            pos -= 1
        lo[pos] = start
        hi[pos] = r2
        count += 1
    mass = 0.0
    i = 0
    while i < count:
        s = lo[i]
        e = hi[i]
        i += 1
        while i < count and lo[i] <= e:
            e = max(e, hi[i])
            i += 1
        mass += _chi_cdf(e, d) - _chi_cdf(s, d)
    return mass


@njit(**PJIT)
def _evaluate(weights, means, covs, heldout, dirs, dir_w, w0, m0, chol0, radius2, loglik, tail):
    num, k_count, d = means.shape
    m_count = heldout.shape[0]
    k0 = w0.shape[0]
    for f in prange(num):
        chol = np.zeros((k_count, d, d))
        const = np.empty(k_count)
        y = np.empty(d)
        lj = np.empty(k_count)
        v = np.empty(d)
        a = np.empty(d)
        b = np.empty(d)
        lo = np.empty(k0)
        hi = np.empty(k0)
        ok = True
        for k in range(k_count):
            if not _cholesky(covs[f, k], chol[k]) or not weights[f, k] >= 0.0:
                ok = False
                break
            c = math.log(weights[f, k]) - 0.5 * d * _LOG_2PI
            for j in range(d):
                c -= math.log(chol[k, j, j])
            const[k] = c
        if not ok:
            loglik[f] = np.nan
            tail[f] = np.nan
            continue
        total = 0.0
        for i in range(m_count):
            best = -np.inf
            for k in range(k_count):
                q = 0.0
                for j in range(d):
                    t = heldout[i, j] - means[f, k, j]
                    for m in range(j):
                        t -= chol[k, j, m] * y[m]
                    y[j] = t / chol[k, j, j]
                    q += y[j] * y[j]
                lj[k] = const[k] - 0.5 * q
                best = max(best, lj[k])
            acc = 0.0
            for k in range(k_count):
                acc += math.exp(lj[k] - best)
            total += best + math.log(acc)
        loglik[f] = total / m_count
        inside = 0.0
        for k in range(k_count):
            if weights[f, k] == 0.0:
                continue
            s = 0.0
            for q in range(dirs.shape[0]):
                s += dir_w[q] * _inside_mass(
                    means[f, k], chol[k], dirs[q], chol0, m0, radius2, v, a, b, lo, hi
                )
            inside += weights[f, k] * s
        tail[f] = max(0.0, 1.0 - inside)


def tail_directions(d: int, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return unit directions ``(M, d)`` and weights ``(M,)`` that average over the sphere.

    d = 1: the two directions, exactly. d = 2: ``count`` equally spaced angles, offset
    by half a step (the trapezoidal rule of a smooth periodic function: the error falls
    faster than any power of ``count``). d >= 3: ``count // 2`` antithetic pairs of
    uniformly random directions from a fixed stream of ``seed``.
    """
    if d == 1:
        return np.array([[1.0], [-1.0]]), np.array([0.5, 0.5])
    if d == 2:
        theta = 2 * math.pi * (np.arange(count) + 0.5) / count
        return np.stack([np.cos(theta), np.sin(theta)], axis=1), np.full(count, 1.0 / count)
    half = max(1, count // 2)
    s0, s1 = _rng.stream_state(np.uint64(seed), np.uint64(DIRECTIONS_CHAIN))
    z = np.empty((half, d))
    _sample(np.ones(1), np.zeros((1, d)), np.eye(d)[None], z, np.uint64(s0), np.uint64(s1))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    dirs = np.concatenate([z, -z])
    return dirs, np.full(len(dirs), 1.0 / len(dirs))


def evaluate_fits(
    weights: np.ndarray,
    means: np.ndarray,
    covs: np.ndarray,
    heldout: np.ndarray,
    weights0: np.ndarray,
    means0: np.ndarray,
    covs0: np.ndarray,
    *,
    directions: tuple[np.ndarray, np.ndarray],
    radius: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the held-out mean log-likelihood and the tail mass of many fitted mixtures.

    The tail mass is the probability, under a fitted mixture, of lying outside the
    original's ``radius``-sigma region: the union over original components of the
    ellipsoids ``(x - m0)^T C0^-1 (x - m0) <= radius^2``. No closed form exists for a
    Gaussian outside an ellipsoid it is not centred in; writing each fitted component
    as ``m + r L u`` with ``u`` uniform on the sphere and ``r`` chi-distributed, the
    mass along each direction is exact (the chords of the ellipsoids, then the chi CDF),
    and only the average over directions is a quadrature (see :func:`tail_directions`).

    Args:
        weights: ``(N, K)``; means ``(N, K, d)``; covs ``(N, K, d, d)``: the fits.
        heldout: points ``(m, d)``, for instance a fixed sample of the original.
        weights0, means0, covs0: the original mixture.
        directions: ``(dirs, weights)`` from :func:`tail_directions`.
        radius: the region's radius in original standard deviations.

    Returns:
        ``(loglik, tail)``, float64 ``(N,)`` each; NaN for a fit whose covariance is
        not positive definite.
    """
    w = np.ascontiguousarray(weights, np.float64)
    m = np.ascontiguousarray(means, np.float64)
    c = np.ascontiguousarray(covs, np.float64)
    m0 = np.ascontiguousarray(means0, np.float64)
    c0 = np.ascontiguousarray(covs0, np.float64)
    chol0 = np.zeros_like(c0)
    for j in range(c0.shape[0]):
        if not _cholesky(c0[j], chol0[j]):
            raise ValueError(f"original covariance {j} is not positive definite")
    loglik = np.empty(w.shape[0])
    tail = np.empty(w.shape[0])
    dirs, dir_w = directions
    _evaluate(
        w,
        m,
        c,
        np.ascontiguousarray(heldout, np.float64),
        np.ascontiguousarray(dirs, np.float64),
        np.ascontiguousarray(dir_w, np.float64),
        np.asarray(weights0, np.float64),
        m0,
        chol0,
        float(radius) ** 2,
        loglik,
        tail,
    )
    return loglik, tail
