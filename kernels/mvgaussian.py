"""The multivariate Gaussian chain: fit a mean and a full covariance to n points, sample, refit.

A chain's model is ``N(mu, Sigma)`` with ``Sigma = L L'`` held as ``L = exp(s) U``: the
log scale ``s`` apart from a factor ``U`` whose diagonal has geometric mean 1, so that a
covariance collapsing for thousands of generations neither underflows nor loses its
shape (the log-determinant is ``2 (d s + sum log U_ii)``, exact whatever the scale).

Two methods give the same law:

* ``sample``: draw the n training points, then fit (O(n d^2) per generation);
* ``sufficient``: draw the fit's statistics directly. For n points of ``N(mu, L L')``
  the mean is ``mu + L z / sqrt(n)`` and the scatter matrix ``L W L'`` with
  ``W ~ Wishart_d(n - 1, I)``, independent of the mean; by the Bartlett decomposition
  ``W = A A'`` with A lower triangular, ``A_ii^2 ~ chi^2(n - i + 1 - 1)`` and normals
  below the diagonal, so the next factor is ``L A / sqrt(n - ddof)``: a product of
  triangles, O(d^3 / 6) per generation and no factorisation (replace). The pooled
  regimes merge the groups' statistics exactly and factor the result.

Under ``replace`` a generation's points are drawn in the model's frame (``y`` with
``x = mu + exp(s) y``), so that the fit sees numbers of order one however far the chain
has collapsed; the pooled regimes mix in real data and work in the original's units.

Each recorded model's metrics are computed here (:func:`_metrics`); the runner stores them.

References:
    M. S. Bartlett, "On the theory of statistical regression", Proc. R. Soc. Edinburgh
    53, 1933 (the decomposition of a Wishart matrix); A. M. Kshirsagar, "Bartlett
    decomposition and Wishart distribution", Ann. Math. Statist. 30(1), 1959.
    T. F. Chan, G. H. Golub and R. J. LeVeque, STAN-CS-79-773, 1979 (merging groups).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import _rng
from ._curation import CORRECT, curation_arrays, log_constants, mixture_kept
from ._flags import JIT, PJIT
from ._regimes import (
    ACCUMULATE,
    ACCUMULATE_SUBSAMPLE,
    FRESH,
    KEEP_ORIGINAL,
    REPLACE,
    draws_real,
    subsample_front,
    synthetic_count,
)
from ._streams import check_block, init_streams
from .mixture_em import _cholesky

__all__ = ["METRICS", "advance", "init_chains", "probes"]

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
"""Per-chain metrics of a recorded model, in the order :func:`_metrics` writes them."""

_TILE = 64  # rows of a factor multiplied at once (32 KB at d = 64, 512 KB at d = 1000)
PROBE_CHAIN = 2**64 - 3  # the reserved stream of the tail-mass probes (see _streams)


@njit(**JIT)
def _normalise(lower, d):
    """Scale the triangle ``lower`` in place to a diagonal of geometric mean 1; return the
    log factor taken out (-inf where the diagonal is not positive)."""
    g = 0.0
    for i in range(d):
        if not lower[i, i] > 0.0:
            return -math.inf
        g += math.log(lower[i, i])
    g /= d
    f = math.exp(-g)
    for i in range(d):
        for j in range(i + 1):
            lower[i, j] *= f
    return g


@njit(**JIT)
def _tri_mul(a, b, out, d):
    """``out = a b`` for lower triangles a and b (the upper parts of out zeroed).

    Rows of b are taken in blocks that stay in cache (at d = 1000, b is 8 MB), and four
    rows at a time, so that each pass over a row of out adds four terms while it is in
    registers. Every entry still sums its terms one by one in the order of k, from 0.0,
    so neither changes a bit.
    """
    for i in range(d):
        for j in range(d):
            out[i, j] = 0.0
    for k0 in range(0, d, _TILE):
        k1 = min(d, k0 + _TILE)
        for i in range(k0, d):
            ke = min(k1, i + 1)
            o = out[i]
            k = k0
            while k + 4 <= ke:
                u0, u1, u2, u3 = a[i, k], a[i, k + 1], a[i, k + 2], a[i, k + 3]
                b0, b1, b2, b3 = b[k], b[k + 1], b[k + 2], b[k + 3]
                for j in range(k + 1):
                    o[j] = o[j] + u0 * b0[j] + u1 * b1[j] + u2 * b2[j] + u3 * b3[j]
                # b is lower: column j > k has terms from row j of b on.
                o[k + 1] = o[k + 1] + u1 * b1[k + 1] + u2 * b2[k + 1] + u3 * b3[k + 1]
                o[k + 2] = o[k + 2] + u2 * b2[k + 2] + u3 * b3[k + 2]
                o[k + 3] = o[k + 3] + u3 * b3[k + 3]
                k += 4
            for kk in range(k, ke):
                u = a[i, kk]
                for j in range(kk + 1):
                    o[j] += u * b[kk, j]


@njit(**JIT)
def _bartlett(dof, a, d, s0, s1):
    """Fill ``a`` with the Bartlett factor of ``Wishart_d(dof, I)`` (dof >= d): row by row,
    the normals below the diagonal, then ``sqrt(chi^2(dof - i))`` on it."""
    for i in range(d):
        for j in range(i):
            a[i, j], s0, s1 = _rng.normal(s0, s1)
        x, s0, s1 = _rng.chisquare(float(dof - i), s0, s1)
        a[i, i] = math.sqrt(x)
        for j in range(i + 1, d):
            a[i, j] = 0.0
    return s0, s1


@njit(**JIT)
def _group_of_law(count, mean, chol, ratio, gm, gs, a, z, pts, s0, s1, scatter=True):
    """Statistics of ``count`` points of ``N(mean, (ratio chol)(ratio chol)')``, drawn as
    the sufficient method does: ``(gm, gs)`` get the mean and the scatter matrix.

    ``count - 1 >= d``: the mean and a Bartlett scatter; fewer points (a singular
    scatter): the points themselves, drawn and summed (``pts`` holds at least count rows).
    """
    d = mean.shape[0]
    if count - 1 >= d:
        for j in range(d):
            z[j], s0, s1 = _rng.normal(s0, s1)
        f = ratio / math.sqrt(count)
        for i in range(d):
            v = 0.0
            for j in range(i + 1):
                v += chol[i, j] * z[j]
            gm[i] = mean[i] + f * v
        s0, s1 = _bartlett(count - 1, a, d, s0, s1)
        if not scatter:  # the caller takes the Bartlett factor a itself
            return s0, s1
        _tri_mul(chol, a, pts, d)  # pts[:d, :d] = chol A, the scatter's factor
        for i in range(d):
            for j in range(i + 1):
                v = 0.0
                for k in range(j + 1):
                    v += pts[i, k] * pts[j, k]
                gs[i, j] = gs[j, i] = ratio * ratio * v
        return s0, s1
    s0, s1 = _draw(mean, chol, ratio, pts[:count], z, s0, s1)
    _stats(pts[:count], gm, gs)
    return s0, s1


@njit(**JIT)
def _draw(mean, chol, ratio, out, z, s0, s1):
    """Fill ``out`` (m, d) with points of ``N(mean, (ratio chol)(ratio chol)')``."""
    m, d = out.shape
    for p in range(m):
        for j in range(d):
            z[j], s0, s1 = _rng.normal(s0, s1)
        for i in range(d):
            v = 0.0
            for j in range(i + 1):
                v += chol[i, j] * z[j]
            out[p, i] = mean[i] + ratio * v
    return s0, s1


@njit(**JIT)
def _stats(x, mean, scatter):
    """The mean and the scatter matrix ``sum (x - mean)(x - mean)'`` of the rows of x."""
    m, d = x.shape
    for j in range(d):
        acc = 0.0
        for p in range(m):
            acc += x[p, j]
        mean[j] = acc / m
    for i in range(d):
        for j in range(i + 1):
            scatter[i, j] = 0.0
    for p in range(m):
        for i in range(d):
            u = x[p, i] - mean[i]
            for j in range(i + 1):
                scatter[i, j] += u * (x[p, j] - mean[j])
    for i in range(d):
        for j in range(i):
            scatter[j, i] = scatter[i, j]


@njit(**JIT)
def _merge(na, ma, sa, nb, mb, sb):
    """Merge group b's (count, mean, scatter) into group a's, in place; return the count."""
    if nb == 0.0:
        return na
    if na == 0.0:
        ma[:] = mb
        sa[:, :] = sb
        return nb
    n = na + nb
    d = ma.shape[0]
    w = na * nb / n
    for i in range(d):
        for j in range(d):
            sa[i, j] += sb[i, j] + w * (mb[i] - ma[i]) * (mb[j] - ma[j])
    for i in range(d):
        ma[i] += (mb[i] - ma[i]) * (nb / n)
    return n


@njit(**JIT)
def _set_model(mean, scatter, count, ddof, mu, u, work):
    """The model fitted to (count, mean, scatter) in the original's units: ``mu``, ``u``
    (normalised in place); return its log scale (NaN where the covariance is singular)."""
    d = mean.shape[0]
    c = count - ddof
    for i in range(d):
        for j in range(d):
            work[i, j] = scatter[i, j] / c
    if not _cholesky(work, u):
        return math.nan
    mu[:] = mean
    return _normalise(u, d)


@njit(**JIT)
def _sym_power(m, power):
    """``m^power`` of a symmetric positive semi-definite matrix, by its eigenvectors."""
    lam, vec = np.linalg.eigh(m)
    d = m.shape[0]
    out = np.zeros((d, d))
    for k in range(d):
        p = max(lam[k], 0.0) ** power if lam[k] > 0.0 or power > 0 else math.inf
        for i in range(d):
            for j in range(d):
                out[i, j] += vec[i, k] * p * vec[j, k]
    return out


@njit(**JIT)
def _transport(u, mean0, chol0, frac):
    """The self-correction's affine map ``y -> shift + B y`` in the model's frame: a
    fraction ``frac`` of the way along the optimal-transport map from ``N(0, u u')`` to
    ``N(mean0, chol0 chol0')``, ``T(y) = mean0 + A y`` with
    ``A = S^-1/2 (S^1/2 S0 S^1/2)^1/2 S^-1/2`` (Gillman et al. 2024; the Gaussian map of
    Knott and Smith 1984)."""
    d = mean0.shape[0]
    cov = u @ u.T
    root = _sym_power(cov, 0.5)
    inv_root = _sym_power(cov, -0.5)
    a = inv_root @ _sym_power(root @ (chol0 @ chol0.T) @ root, 0.5) @ inv_root
    b = frac * a
    for i in range(d):
        b[i, i] += 1.0 - frac
    return frac * mean0, b


@njit(**JIT)
def _apply_points(shift, b, pts):
    """``y <- shift + B y`` for every row of pts."""
    m, d = pts.shape
    y = np.empty(d)
    for p in range(m):
        for i in range(d):
            v = shift[i]
            for j in range(d):
                v += b[i, j] * pts[p, j]
            y[i] = v
        pts[p] = y


@njit(**JIT)
def _apply_stats(shift, b, mean, scatter):
    """The statistics of the mapped points: ``shift + B mean`` and ``B scatter B'``."""
    mean[:] = shift + b @ mean
    scatter[:, :] = b @ scatter @ b.T


# Kept whole: the per-chain loop, its scratch allocated once per chain for every generation.
@njit(**PJIT)
def _chains(rng, mu, scale, u, t_start, t_end, slots, rec, n, ddof, regime, num_real,
            sufficient, mu0, chol0, evaluation, probe, pool_n, pool_mean, pool_scatter, pool,
            pool_size, ops, tally, rec_cost):  # fmt: skip
    d = mu.shape[1]
    synth_n = synthetic_count(regime, n, num_real)
    curated = ops.shape[0] > 0
    big = int(evaluation[0])  # candidate rows curation may need at once
    frac = ops[CORRECT] if curated else 0.0
    for c in prange(mu.shape[0]):
        s0, s1 = np.uint64(rng[c, 0]), np.uint64(rng[c, 1])
        z = np.empty(d)
        a = np.empty((d, d))
        work = np.empty((d, d))
        nu = np.empty((d, d))
        gm, gs = np.empty(d), np.empty((d, d))
        tm, ts = np.empty(d), np.empty((d, d))
        pts = np.empty((max(n, d), d))
        zero, one = np.zeros((1, d)), np.ones(1)
        cand = np.empty((max(big, 1) if curated else 1, d))
        keys = np.empty(cand.shape[0])
        frame0 = np.empty((1, d))
        fchol0 = np.empty((1, d, d))
        fconst = np.empty(1)
        mconst = np.empty(1)
        biased = np.empty((1, d, d))
        mu_c, u_c = mu[c], u[c]
        for t in range(t_start, t_end):
            sc = scale[c]
            lam = ops[0] if curated and t > 0 else 1.0
            cost = 1.0
            corrects = frac > 0.0 and t > 0 and synth_n > 0
            if curated and t > 0 and synth_n > 0:
                # The original in the model's frame.
                inv = math.exp(-sc)
                for j in range(d):
                    frame0[0, j] = (mu0[j] - mu_c[j]) * inv
                    for k in range(d):
                        fchol0[0, j, k] = chol0[j, k] * inv
            # The model's own share: its statistics (gm, gs) of synth_n points, in the
            # model's frame (x = mu + exp(s) y).
            if curated and t > 0 and synth_n > 0 and not sufficient:
                log_constants(one, fchol0, fconst)
                log_constants(one, u_c.reshape((1, d, d)), mconst)
                for j in range(d):
                    for k in range(d):
                        biased[0, j, k] = lam * u_c[j, k]
                drawn, starved, s0, s1 = mixture_kept(
                    pts[:synth_n], cand, keys, ops, (one, zero, biased),
                    (one, zero, u_c.reshape((1, d, d)), mconst), (one, frame0, fchol0, fconst),
                    z, s0, s1,
                )  # fmt: skip
                cost = drawn / synth_n
                tally[c, 0] += cost
                tally[c, 1] += starved
                if corrects:
                    shift, bmat = _transport(u_c, frame0[0], fchol0[0], frac)
                    _apply_points(shift, bmat, pts[:synth_n])
                _stats(pts[:synth_n], gm, gs)
            elif synth_n > 0:
                if sufficient:
                    s0, s1 = _group_of_law(synth_n, zero[0], u_c, lam, gm, gs, a, z, pts, s0, s1,
                                           regime != REPLACE or corrects)  # fmt: skip
                    if corrects:
                        shift, bmat = _transport(u_c, frame0[0], fchol0[0], frac)
                        _apply_stats(shift, bmat, gm, gs)
                else:
                    s0, s1 = _draw(zero[0], u_c, lam, pts[:synth_n], z, s0, s1)
                    _stats(pts[:synth_n], gm, gs)
                if curated and t > 0:
                    tally[c, 0] += 1.0
            elif curated and t > 0:
                tally[c, 0] += 1.0  # no synthetic draws: one candidate per sample
            if regime == REPLACE:
                # Fit in the frame: mu' = mu + e^s mean_y, L' = e^s chol(scatter_y / c).
                if sufficient and not corrects:
                    _tri_mul(u_c, a, nu, d)
                    f = lam / math.sqrt(n - ddof)
                    for i in range(d):
                        for j in range(i + 1):
                            nu[i, j] *= f
                    g = _normalise(nu, d)
                else:
                    g = _set_model(gm, gs, float(n), ddof, tm, nu, work)
                e = math.exp(sc)
                for j in range(d):
                    mu_c[j] += e * gm[j]
                u_c[:, :] = nu
                scale[c] = sc + g
            else:
                # The pooled regimes: groups in the original's units.
                e = math.exp(sc)
                for i in range(d):
                    gm[i] = mu_c[i] + e * gm[i]
                    for j in range(d):
                        gs[i, j] *= e * e
                if regime == ACCUMULATE_SUBSAMPLE:
                    size = pool_size[c]
                    for p in range(synth_n):
                        for j in range(d):
                            pool[c, size + p, j] = mu_c[j] + e * pts[p, j]
                    pool_size[c] = size + synth_n
                    s0, s1 = subsample_front(pool[c], pool_size[c], n, s0, s1)
                    _stats(pool[c, :n], tm, ts)
                    g = _set_model(tm, ts, float(n), ddof, mu_c, u_c, work)
                elif regime == ACCUMULATE:
                    pool_n[c] = _merge(pool_n[c], pool_mean[c], pool_scatter[c], float(synth_n),
                                       gm, gs)  # fmt: skip
                    g = _set_model(pool_mean[c], pool_scatter[c], pool_n[c], ddof, mu_c, u_c,
                                   work)  # fmt: skip
                else:  # fresh, keep-original: the model's share and the real share
                    if num_real > 0 and draws_real(regime, t):
                        if sufficient:
                            s0, s1 = _group_of_law(num_real, mu0, chol0, 1.0, tm, ts, a, z, pts,
                                                   s0, s1)  # fmt: skip
                        else:
                            s0, s1 = _draw(mu0, chol0, 1.0, pts[:num_real], z, s0, s1)
                            _stats(pts[:num_real], tm, ts)
                        if regime == KEEP_ORIGINAL:
                            pool_n[c] = float(num_real)
                            pool_mean[c] = tm
                            pool_scatter[c] = ts
                    if regime == KEEP_ORIGINAL and num_real > 0:
                        tm[:] = pool_mean[c]
                        ts[:, :] = pool_scatter[c]
                    count = _merge(float(synth_n), gm, gs, float(num_real), tm, ts)
                    g = _set_model(gm, gs, count, ddof, mu_c, u_c, work)
                scale[c] = g
            slot = slots[t - t_start]
            if slot >= 0:
                if curated:
                    rec_cost[c, slot] = cost
                _metrics(mu_c, scale[c], u_c, mu0, chol0, evaluation, probe, rec[c, :, slot],
                         work, nu, z)  # fmt: skip
        rng[c, 0] = s0
        rng[c, 1] = s1


@njit(**JIT)
def _lower_solve(lower, b, out, d):
    """``out = lower^-1 b`` for a lower triangle and a vector."""
    for i in range(d):
        v = b[i]
        for k in range(i):
            v -= lower[i, k] * out[k]
        out[i] = v / lower[i, i]


@njit(**JIT)
def _metrics(mu, s, u, mu0, chol0, evaluation, probe, out, work, tmp, z):
    """Write every metric of :data:`METRICS` of the model ``N(mu, e^2s u u')`` into ``out``.

    ``evaluation``: [candidate rows, tr Sigma0, log det Sigma0, squared radius of the
    tail ellipsoid, then Sigma0^(1/2) (d x d, row by row)]; ``probe`` (P, d) standard normal
    points for the tail mass.
    """
    d = mu.shape[0]
    if not math.isfinite(s):
        out[:] = math.nan
        return
    tr0, logdet0, r2 = evaluation[1], evaluation[2], evaluation[3]
    root0 = evaluation[4 : 4 + d * d].reshape((d, d))
    e2 = math.exp(2.0 * s)
    fro = 0.0
    logdiag = 0.0
    for i in range(d):
        logdiag += math.log(u[i, i])
        for j in range(i + 1):
            fro += u[i, j] * u[i, j]
    logdet = 2.0 * (d * s + logdiag)
    out[0] = e2 * fro / tr0
    out[2] = logdet - logdet0
    out[1] = math.exp(out[2])
    # The spectrum of u u' (scale-free), from the singular values of u, which keep the
    # small ones accurate up to a condition number near 1e32 (the product u u' would lose
    # them at 1e16); then in the original's units.
    sv = np.linalg.svd(u, False)[1]  # descending
    lam = np.empty(d)
    for i in range(d):
        lam[i] = sv[d - 1 - i] * sv[d - 1 - i]
    top = lam[d - 1]
    low = lam[0]
    out[3] = e2 * top
    out[4] = e2 * low
    out[5] = top / low if low > 0.0 else math.inf
    total = 0.0
    for i in range(d):
        total += max(lam[i], 0.0)
    ent = 0.0
    for i in range(d):
        p = max(lam[i], 0.0) / total
        if p > 0.0:
            ent -= p * math.log(p)
    out[6] = math.exp(ent)
    err = 0.0
    for i in range(d):
        err += (mu[i] - mu0[i]) ** 2
    out[7] = err
    # W2: |mu - mu0|^2 + tr Sigma + tr Sigma0 - 2 tr (Sigma0^1/2 Sigma Sigma0^1/2)^1/2, the
    # last the sum of the singular values of Sigma0^1/2 L = e^s K, K = root0 u.
    for i in range(d):
        for j in range(d):
            v = 0.0
            for k in range(j, d):
                v += root0[i, k] * u[k, j]
            tmp[i, j] = v
    sv = np.linalg.svd(tmp, False)[1]
    root = 0.0
    for i in range(d):
        root += sv[i]
    out[8] = math.sqrt(max(err + e2 * fro + tr0 - 2.0 * math.exp(s) * root, 0.0))
    # KL(fit || original): tr(Sigma0^-1 Sigma) = e^2s |chol0^-1 u|_F^2; the mean's part
    # |chol0^-1 (mu - mu0)|^2. KL(original || fit) the same the other way.
    for j in range(d):
        z[j] = mu[j] - mu0[j]
    _lower_solve(chol0, z, tmp[0], d)
    q0 = 0.0
    for j in range(d):
        q0 += tmp[0, j] ** 2
    tr_a = 0.0
    tr_b = 0.0
    col = np.empty(d)
    sol = np.empty(d)
    for j in range(d):
        for i in range(d):
            col[i] = u[i, j]
        _lower_solve(chol0, col, sol, d)
        for i in range(d):
            tr_a += sol[i] * sol[i]
        for i in range(d):
            col[i] = chol0[i, j]
        _lower_solve(u, col, sol, d)
        for i in range(d):
            tr_b += sol[i] * sol[i]
    _lower_solve(u, z, sol, d)
    q1 = 0.0
    for j in range(d):
        q1 += sol[j] * sol[j]
    ie2 = math.exp(-2.0 * s)
    out[9] = 0.5 * (e2 * tr_a + q0 - d + logdet0 - logdet)
    out[10] = 0.5 * (ie2 * tr_b + ie2 * q1 - d + logdet - logdet0)
    # The mass beyond the original's ellipsoid: the probes y = mu + L z_k, the share with
    # |chol0^-1 (y - mu0)|^2 > r2.
    m = probe.shape[0]
    if m == 0:
        out[11] = math.nan
        return
    e = math.exp(s)
    beyond = 0
    for k in range(m):
        for i in range(d):
            v = 0.0
            for j in range(i + 1):
                v += u[i, j] * probe[k, j]
            col[i] = z[i] + e * v
        _lower_solve(chol0, col, sol, d)
        q = 0.0
        for i in range(d):
            q += sol[i] * sol[i]
        if q > r2:
            beyond += 1
    out[11] = beyond / m


def init_chains(
    seed: int, chains: np.ndarray, mu0: np.ndarray, chol0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Streams and model 0 (the original) of ``chains``: ``(rng, mu, scale, u)``.

    Shapes: rng uint64 (B, 2), mu (B, d), scale (B,), u (B, d, d).
    """
    rng = init_streams(seed, chains)
    b, d = len(chains), len(mu0)
    u0 = np.array(chol0, np.float64)
    g = _normalise(u0, d)
    mu = np.tile(np.asarray(mu0, np.float64), (b, 1))
    return rng, mu, np.full(b, g), np.tile(u0, (b, 1, 1))


def probes(seed: int, count: int, dim: int) -> np.ndarray:
    """The tail mass's probes: ``(count, dim)`` standard normals of the seed's reserved stream."""
    return _probes(np.uint64(seed), count, dim)


@njit(**JIT)
def _probes(seed, count, dim):
    s0, s1 = _rng.stream_state(seed, np.uint64(PROBE_CHAIN))
    out = np.empty((count, dim))
    for k in range(count):
        for j in range(dim):
            out[k, j], s0, s1 = _rng.normal(s0, s1)
    return out


def evaluation_vector(cov0: np.ndarray, candidates: int, radius2: float) -> np.ndarray:
    """The metrics' constants of the original covariance (see :func:`_metrics`)."""
    lam, vec = np.linalg.eigh(cov0)
    root = (vec * np.sqrt(lam)) @ vec.T
    _, logdet = np.linalg.slogdet(cov0)
    head = [float(candidates), float(np.trace(cov0)), float(logdet), float(radius2)]
    return np.concatenate([head, root.reshape(-1)])


def advance(
    rng: np.ndarray,
    mu: np.ndarray,
    scale: np.ndarray,
    u: np.ndarray,
    t_start: int,
    t_end: int,
    slots: np.ndarray,
    rec: np.ndarray,
    *,
    num_samples: int,
    ddof: int,
    regime: int,
    num_real: int,
    sufficient: bool,
    mu0: np.ndarray,
    chol0: np.ndarray,
    evaluation: np.ndarray,
    probe: np.ndarray,
    pool_n: np.ndarray | None = None,
    pool_mean: np.ndarray | None = None,
    pool_scatter: np.ndarray | None = None,
    pool: np.ndarray | None = None,
    pool_size: np.ndarray | None = None,
    curation: np.ndarray | None = None,
    tally: np.ndarray | None = None,
    rec_cost: np.ndarray | None = None,
) -> None:
    """Advance chains from model ``t_start`` to ``t_end`` in place; record the metrics.

    Args:
        rng: uint64 (B, 2) streams; mu (B, d), scale (B,), u (B, d, d): the models.
        t_start, t_end: the models the batch moves between.
        slots: int64 (t_end - t_start,), the record column of each model t + 1 (-1: none).
        rec: float64 (B, len(METRICS), R), the metrics of the recorded models.
        num_samples: n; ddof: 0 or 1; regime: its code; num_real: real points per set.
        sufficient: draw the statistics (every regime but accumulate-subsample).
        mu0, chol0: the original's mean (d,) and covariance factor (d, d).
        evaluation: :func:`evaluation_vector`; probe: (P, d) of :func:`probes`.
        pool_n, pool_mean, pool_scatter: (B,), (B, d), (B, d, d) statistics of the pool
            (accumulate) or of the kept real share (keep-original).
        pool, pool_size: (B, n T, d) points and (B,) filled rows (accumulate-subsample).
        curation, tally, rec_cost: the operators' vector and their tallies (the sample
            method; sampling bias alone also on the sufficient one).
    """
    b, d = mu.shape
    if sufficient and regime == ACCUMULATE_SUBSAMPLE:
        raise ValueError("accumulate-subsample runs on the sample method")
    if num_samples < d + 1:
        raise ValueError(f"need at least d + 1 = {d + 1} samples, got {num_samples}")
    if regime not in (REPLACE, ACCUMULATE, FRESH, KEEP_ORIGINAL, ACCUMULATE_SUBSAMPLE):
        raise ValueError(f"unknown regime code {regime}")
    empty1, empty2, empty3 = np.zeros(b), np.zeros((b, d)), np.zeros((b, d, d))
    slots = check_block(rng, b, t_start, t_end, slots, rec.shape[2])
    ops, tally, rec_cost = curation_arrays(curation, tally, rec_cost, b, rec.shape[2])
    _chains(
        rng, mu, scale, u, t_start, t_end, slots, rec, num_samples, ddof, regime, num_real,
        sufficient, np.ascontiguousarray(mu0, np.float64), np.ascontiguousarray(chol0),
        evaluation, np.ascontiguousarray(probe),
        empty1 if pool_n is None else pool_n, empty2 if pool_mean is None else pool_mean,
        empty3 if pool_scatter is None else pool_scatter,
        np.zeros((b, 1, d)) if pool is None else pool,
        np.zeros(b, np.int64) if pool_size is None else pool_size, ops, tally, rec_cost,
    )  # fmt: skip
