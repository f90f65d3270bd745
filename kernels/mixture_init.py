"""k-means++ starts of the mixture's EM: scikit-learn's greedy variant, per chain.

``2 + log K`` candidates per centre, drawn from the chain's own stream; the initial
parameters are what scikit-learn's M-step makes of one-hot responsibilities.

References:
    D. Arthur and S. Vassilvitskii, "k-means++: the advantages of careful seeding",
    SODA 2007.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import _rng
from ._flags import JIT
from .mixture_em import _EPS10, DIAG, FULL


@njit(**JIT)
def _kmeans_plusplus(x, k_count, s0, s1, centres_idx):
    """scikit-learn's greedy k-means++: fill ``centres_idx`` (K,) with chosen row indices."""
    n, d = x.shape
    trials = 2 + int(math.log(k_count))
    first, s0, s1 = _rng.integer_below(np.uint64(n), s0, s1)
    centres_idx[0] = np.int64(first)
    closest = np.empty(n)
    pot = 0.0
    for i in range(n):
        s = 0.0
        for j in range(d):
            t = x[i, j] - x[centres_idx[0], j]
            s += t * t
        closest[i] = s
        pot += s
    cand_d = np.empty((trials, n))
    cand_idx = np.empty(trials, np.int64)
    cum = np.empty(n)
    for c in range(1, k_count):
        acc = 0.0
        for i in range(n):
            acc += closest[i]
            cum[i] = acc
        best_pot = np.inf
        best_t = 0
        for t in range(trials):
            u, s0, s1 = _rng.uniform(s0, s1)
            idx = np.searchsorted(cum, u * pot)
            cand_idx[t] = min(idx, n - 1)
            p = 0.0
            for i in range(n):
                s = 0.0
                for j in range(d):
                    v = x[i, j] - x[cand_idx[t], j]
                    s += v * v
                s = min(s, closest[i])
                cand_d[t, i] = s
                p += s
            if p < best_pot:
                best_pot = p
                best_t = t
        centres_idx[c] = cand_idx[best_t]
        pot = best_pot
        for i in range(n):
            closest[i] = cand_d[best_t, i]
    return s0, s1


@njit(**JIT)
def _init_kmeanspp(x, cov_type, reg_covar, weights, means, covs, s0, s1):
    """Initial parameters from k-means++ centres, as scikit-learn derives them.

    scikit-learn gives each centre's point responsibility 1 for its component and runs
    its M-step; with one-hot responsibilities that M-step reduces, term for term, to
    ``nk = 1 + 10 eps``, ``mean = x_c / nk``, ``cov = (x_c - mean)(x_c - mean)^T / nk +
    reg_covar I`` and equal weights, computed here directly.
    """
    k_count, d = means.shape
    idx = np.empty(k_count, np.int64)
    s0, s1 = _kmeans_plusplus(x, k_count, s0, s1, idx)
    nk = 1.0 + _EPS10
    for k in range(k_count):
        row = idx[k]
        for j in range(d):
            means[k, j] = x[row, j] / nk
        for a in range(d):
            da = x[row, a] - means[k, a]
            for b in range(a + 1):
                v = 0.0
                if cov_type == FULL or a == b:
                    v = da * (x[row, b] - means[k, b]) / nk
                covs[k, a, b] = v
                covs[k, b, a] = v
            covs[k, a, a] += reg_covar
        weights[k] = nk / (k_count * nk)
    return s0, s1


def kmeanspp_init(
    x: np.ndarray,
    num_components: int,
    seed: int,
    chain: int,
    *,
    covariance_type: str = "full",
    reg_covar: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return scikit-learn-style k-means++ initial ``(weights, means, covs)`` for ``x``.

    The centres are drawn from chain ``chain``'s stream of ``seed``.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    n, d = x.shape
    if not 1 <= num_components <= n:
        raise ValueError(f"need 1 <= components <= samples, got {num_components} and {n}")
    w = np.empty(num_components)
    m = np.empty((num_components, d))
    c = np.empty((num_components, d, d))
    s0, s1 = _rng.stream_state(np.uint64(seed), np.uint64(chain))
    _init_kmeanspp(
        x,
        FULL if covariance_type == "full" else DIAG,
        float(reg_covar),
        w,
        m,
        c,
        np.uint64(s0),
        np.uint64(s1),
    )
    return w, m, c
