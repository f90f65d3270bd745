"""What the KDE chains are measured against, and how: the originals' samplers, the metrics.

The originals (:data:`ORIGINALS`) are drawn point by point from a chain's stream (generation
0 and the real share) or from a run's reserved streams (the held-out sample, the blobs'
centres, the W2 reference). The metrics of a KDE of ``rows[:count]`` (points and their
ancestor, ``(N, d + 1)``) with bandwidth h are :func:`_metrics`'s: the mean negative
log-likelihood of the held-out sample, the variance, the distinct generation-0 ancestors,
h, and in 1-D the W2 distance to the original.

References:
    M. J. Wichura, "Algorithm AS 241: the percentage points of the normal distribution",
    Appl. Statist. 37(3), 1988 (the normal quantile of the W2 distance).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import _rng
from ._flags import JIT
from ._streams import HELDOUT_CHAIN

__all__ = [
    "CENTERS_CHAIN",
    "METRICS",
    "ORIGINALS",
    "REFERENCE_CHAIN",
    "blob_centers",
    "heldout_sample",
    "metrics_of",
    "ndtri",
    "sample_original",
]

METRICS = ("heldout_nll", "variance", "ancestors", "bandwidth", "w2")
"""The kernel's metrics of each recorded model, in storage order."""
NLL, VAR, ANC, BW, W2 = range(5)

# The originals' codes; their parameters are ``params`` (noise, factor, cluster std) and
# ``points`` (blob centres, or a user's points).
GAUSSIAN, MOONS, CIRCLES, BLOBS, POINTS = range(5)
ORIGINALS = {"gaussian": GAUSSIAN, "moons": MOONS, "circles": CIRCLES, "blobs": BLOBS,
             "points": POINTS}  # fmt: skip
NOISE, FACTOR, STD = range(3)

# W2 in 1-D: none (d > 1), against N(0, 1)'s quantile function, or a sorted reference.
W2_NONE, W2_GAUSS, W2_REF = range(3)

CENTERS_CHAIN = 2**64 - 3
"""Stream of the blobs' centres (the seed's, the same for every chain)."""
REFERENCE_CHAIN = 2**64 - 4
"""Stream of the large reference sample that W2 is measured against in 1-D (blobs)."""

_LOG_2PI = math.log(2.0 * math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# --- the originals ------------------------------------------------------------------------


@njit(**JIT)
def _draw_original(kind, params, pts, out, i, d, s0, s1):
    """Draw one point of the original into ``out[i, :d]``; return the stream.

    Rows are written by index: a row view per point would cost more than the draw.
    """
    if kind == GAUSSIAN:
        for q in range(d):
            z, s0, s1 = _rng.normal(s0, s1)
            out[i, q] = z
    elif kind in (MOONS, CIRCLES):
        comp, s0, s1 = _rng.integer_below(np.uint64(2), s0, s1)
        u, s0, s1 = _rng.uniform(s0, s1)
        if kind == MOONS:  # scikit-learn's make_moons, its angle drawn uniformly
            th = math.pi * u
            if comp == 0:
                out[i, 0], out[i, 1] = math.cos(th), math.sin(th)
            else:
                out[i, 0], out[i, 1] = 1.0 - math.cos(th), 0.5 - math.sin(th)
        else:  # make_circles
            th = 2.0 * math.pi * u
            r = 1.0 if comp == 0 else params[FACTOR]
            out[i, 0], out[i, 1] = r * math.cos(th), r * math.sin(th)
        for q in range(2):
            z, s0, s1 = _rng.normal(s0, s1)
            out[i, q] += params[NOISE] * z
    elif kind == BLOBS:
        comp, s0, s1 = _rng.integer_below(np.uint64(pts.shape[0]), s0, s1)
        k = np.int64(comp)
        for q in range(d):
            z, s0, s1 = _rng.normal(s0, s1)
            out[i, q] = pts[k, q] + params[STD] * z
    else:
        j, s0, s1 = _rng.integer_below(np.uint64(pts.shape[0]), s0, s1)
        k = np.int64(j)
        for q in range(d):
            out[i, q] = pts[k, q]
    return s0, s1


@njit(**JIT)
def _sample_original(kind, params, pts, out, s0, s1):
    for i in range(out.shape[0]):
        s0, s1 = _draw_original(kind, params, pts, out, i, out.shape[1], s0, s1)
    return s0, s1


def sample_original(
    kind: int, params: np.ndarray, points: np.ndarray, count: int, dim: int, seed: int,
    chain: int,
) -> np.ndarray:  # fmt: skip
    """Draw ``count`` points ``(count, dim)`` of an original with stream ``(seed, chain)``.

    Args:
        kind: a code of :data:`ORIGINALS`.
        params: float64 ``(3,)``: noise (moons, circles), factor (circles), cluster std.
        points: float64 ``(K, dim)``: the blobs' centres or a user's points (else unused).
        count, dim: the sample's shape.
        seed, chain: the stream.
    """
    out = np.empty((count, dim))
    s0, s1 = _rng.stream_state(np.uint64(seed), np.uint64(chain))
    pts = np.ascontiguousarray(points, np.float64).reshape(-1, dim)
    _sample_original(int(kind), np.asarray(params, np.float64), pts, out, np.uint64(s0),
                     np.uint64(s1))  # fmt: skip
    return out


def blob_centers(seed: int, count: int, dim: int, box: float = 10.0) -> np.ndarray:
    """The blobs' centres ``(count, dim)``: uniform on ``[-box, box)^d`` (make_blobs'
    ``center_box``) from the seed's stream :data:`CENTERS_CHAIN`, row after row."""
    out = np.empty(count * dim)
    s0, s1 = _rng.stream_state(np.uint64(seed), np.uint64(CENTERS_CHAIN))
    s0, s1 = np.uint64(s0), np.uint64(s1)
    for i in range(count * dim):
        u, s0, s1 = _rng.uniform(s0, s1)
        s0, s1 = np.uint64(s0), np.uint64(s1)
        out[i] = -box + 2.0 * box * u
    return out.reshape(count, dim)


def heldout_sample(kind: int, params: np.ndarray, points: np.ndarray, count: int, dim: int,
                   seed: int) -> np.ndarray:  # fmt: skip
    """The run's fixed held-out sample ``(count, dim)``, stream ``(seed, 2**64 - 1)``."""
    return sample_original(kind, params, points, count, dim, seed, HELDOUT_CHAIN)


# --- the normal quantile (AS 241, PPND16) -------------------------------------------------


@njit(**JIT)
def ndtri(p):
    """Return the standard normal quantile of ``p`` in (0, 1) (Wichura's AS 241, about
    1e-16 relative error); -inf at 0, inf at 1."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        num = (((((((2509.0809287301226727 * r + 33430.575583588128105) * r
                    + 67265.770927008700853) * r + 45921.953931549871457) * r
                  + 13731.693765509461125) * r + 1971.5909503065514427) * r
                + 133.14166789178437745) * r + 3.387132872796366608)  # fmt: skip
        den = (((((((5226.495278852545925 * r + 28729.085735721942674) * r
                    + 39307.89580009271061) * r + 21213.794301586595867) * r
                  + 5394.1960214247511077) * r + 687.1870074920579083) * r
                + 42.313330701600911252) * r + 1.0)  # fmt: skip
        return q * num / den
    r = p if q < 0.0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r -= 1.6
        num = (((((((7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r
                    + 0.24178072517745061177) * r + 1.27045825245236838258) * r
                  + 3.64784832476320460504) * r + 5.7694972214606914055) * r
                + 4.6303378461565452959) * r + 1.42343711074968357734)  # fmt: skip
        den = (((((((1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r
                    + 0.0151986665636164571966) * r + 0.14810397642748007459) * r
                  + 0.68976733498510000455) * r + 1.6763848301838038494) * r
                + 2.05319162663775882187) * r + 1.0)  # fmt: skip
    else:
        r -= 5.0
        num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r
                    + 0.0012426609473880784386) * r + 0.026532189526576123093) * r
                  + 0.29656057182850489123) * r + 1.7848265399172913358) * r
                + 5.4637849111641143699) * r + 6.6579046435011037772)  # fmt: skip
        den = (((((((2.04426310338993978564e-15 * r + 1.4215117583164458887e-7) * r
                    + 1.8463183175100546818e-5) * r + 7.868691311456132591e-4) * r
                  + 0.0148753612908506148525) * r + 0.13692988092273580531) * r
                + 0.59983220655588793769) * r + 1.0)  # fmt: skip
    x = num / den
    return -x if q < 0.0 else x


# --- metrics ------------------------------------------------------------------------------


@njit(**JIT)
def _nll(rows, count, d, h, heldout, dist):
    """Mean negative log-likelihood of ``heldout`` under the KDE of ``rows[:count]``."""
    if not h > 0.0:
        return math.inf
    inv = 0.5 / (h * h)
    total = 0.0
    for j in range(heldout.shape[0]):
        dmin = math.inf
        for i in range(count):
            s = 0.0
            for q in range(d):
                t = heldout[j, q] - rows[i, q]
                s += t * t
            dist[i] = s
            dmin = min(dmin, s)
        acc = 0.0
        for i in range(count):  # shifted by the nearest point: nothing underflows to 0
            acc += math.exp((dmin - dist[i]) * inv)
        total += math.log(acc) - dmin * inv
    return math.log(count) + 0.5 * d * (_LOG_2PI + 2.0 * math.log(h)) - total / heldout.shape[0]


@njit(**JIT)
def _variance(rows, count, d, ddof):
    """The mean over dimensions of the points' variance (two passes per dimension)."""
    acc = 0.0
    for q in range(d):
        m = 0.0
        for i in range(count):
            m += rows[i, q]
        m /= count
        m2 = 0.0
        for i in range(count):
            t = rows[i, q] - m
            m2 += t * t
        acc += m2 / (count - ddof)
    return acc / d


@njit(**JIT)
def _w2(rows, count, kind, ref):
    """W2 between the 1-D points ``rows[:count, 0]`` and the original.

    ``W2_GAUSS``: against N(0, 1) exactly, ``sum_i int_{(i-1)/m}^{i/m} (x_(i) -
    Phi^-1(u))^2 du`` with ``int_a^b Phi^-1 = phi(Phi^-1(a)) - phi(Phi^-1(b))``;
    ``W2_REF``: against the sorted reference ``ref`` (its empirical measure), the two
    quantile functions merged at their breakpoints in exact integer arithmetic.
    """
    x = np.sort(rows[:count, 0])
    m = count
    if kind == W2_GAUSS:
        acc = 1.0  # int_0^1 Phi^-1(u)^2 du
        prev = 0.0
        for i in range(m):
            if i + 1 < m:
                z = ndtri((i + 1) / m)
                cur = _INV_SQRT_2PI * math.exp(-0.5 * z * z)
            else:
                cur = 0.0
            acc += x[i] * x[i] / m - 2.0 * x[i] * (prev - cur)
            prev = cur
        return math.sqrt(max(acc, 0.0))
    big = ref.shape[0]
    i = 0
    j = 0
    last = 0
    acc = 0.0
    scale = 1.0 / (m * big)
    while i < m and j < big:
        a = (i + 1) * big
        b = (j + 1) * m
        nxt = min(a, b)
        t = x[i] - ref[j]
        acc += (nxt - last) * scale * t * t
        last = nxt
        if a == nxt:
            i += 1
        if b == nxt:
            j += 1
    return math.sqrt(acc)


@njit(**JIT)
def _metrics(rows, count, d, n, h, heldout, w2_kind, ref, dist, seen, out, slot):
    """Write the metrics of the KDE of ``rows[:count]`` (bandwidth h) into ``out[:, slot]``."""
    out[NLL, slot] = _nll(rows, count, d, h, heldout, dist)
    out[VAR, slot] = _variance(rows, count, d, 0)
    seen[:] = False
    alive = 0
    for i in range(count):
        a = np.int64(rows[i, d])
        if 0 <= a < n and not seen[a]:
            seen[a] = True
            alive += 1
    out[ANC, slot] = alive
    out[BW, slot] = h
    out[W2, slot] = _w2(rows, count, w2_kind, ref) if w2_kind != W2_NONE else math.nan


def metrics_of(rows: np.ndarray, h: float, num_samples: int, heldout: np.ndarray,
               w2_kind: int = W2_NONE, ref: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """The :data:`METRICS` of the KDE of ``rows`` ``(N, d + 1)`` with bandwidth h (a check)."""
    rows = np.ascontiguousarray(rows, np.float64)
    out = np.zeros((len(METRICS), 1))
    _metrics(rows, rows.shape[0], rows.shape[1] - 1, int(num_samples), float(h),
             np.ascontiguousarray(heldout, np.float64), int(w2_kind),
             np.zeros(1) if ref is None else np.ascontiguousarray(ref, np.float64),
             np.empty(rows.shape[0]), np.zeros(num_samples, np.bool_), out, 0)  # fmt: skip
    return out[:, 0]
