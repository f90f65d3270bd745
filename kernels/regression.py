"""Linear-regression chains: fit w to labels the previous fit made, generation after generation.

Covariates ``x ~ N(0, diag(v))`` in d dimensions (a diagonal covariance loses nothing: OLS
and ridge commute with rotations), labels ``y = x . w + sigma eps``. Model 0 is the truth
``w*``; generation t's labels come from model t (fresh noise of the true sigma) and,
where the regime says so, from the truth; the fit on them is model t + 1, by ridge
regression with the per-sample objective ``(1/m) |y - X w|^2 + lambda |w|^2`` over the m
training rows (``lambda = 0``: OLS), so lambda means the same for a pool that grows.

Designs: ``fixed`` draws each chain's N rows once, at generation 0, and relabels them
every generation; ``fresh`` draws new rows every generation. With a fixed design the
normal equations of every regime but accumulate-subsample share one matrix, so the
Cholesky factor of ``X'X + N lambda I`` is made once per chain and each generation costs
O(N d): the labels and ``X'y``. Accumulate keeps ``sum X'y`` and ``sum y^2`` (with a
fixed design the pooled normal equations are ``t (X'X + N lambda I) w = sum_s X'y_s``),
keep-original the kept rows' statistics, accumulate-subsample a pool of every row so far
(a fixed design's pool holds row numbers and labels). The derived arrays of a fixed
design (the rows, ``X w*``, ``X'X``, the factor, the effective degrees of freedom) are a
function of ``(seed, chain)`` alone: a checkpoint leaves them out and :func:`rebuild`
draws them again.

Every draw comes from the chain's stream, in this order: at generation 0 the N rows
(row by row, ``x_ij = sqrt(v_j) z``), then every generation (with a fresh design) its new
rows, then the synthetic rows' labels, then the real rows' labels; under
accumulate-subsample the N draws of :func:`._regimes.subsample_front`. A fit whose
matrix is singular (OLS on a subsample that repeats rows) ends its chain: the metrics are
NaN from then on.

Metrics of every recorded model (``METRICS``): the excess test risk
``(w - w*)' Sigma (w - w*)``, ``|w - w*|^2``, the fitted noise variance ``RSS / (m - df)``
with ``df = tr(X (X'X + m lambda I)^-1 X')`` (the effective degrees of freedom, d for
OLS) and the prediction variance ``w' Sigma w``.
The RSS is ``sum y^2 - 2 w . X'y + w' X'X w``, from the statistics the pooled regimes
keep instead of rows; it loses digits only when the labels' spread exceeds the noise by
orders of magnitude.

References:
    T. Hastie, R. Tibshirani and J. Friedman, "The Elements of Statistical Learning",
    2nd ed., Springer 2009, Section 3.4.1 (ridge's effective degrees of freedom).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from . import _rng
from ._curation import BEST_OF, BIAS, CORRECT, KIND, curation_arrays, draw_kept
from ._flags import JIT, PJIT
from ._regimes import (
    ACCUMULATE,
    ACCUMULATE_SUBSAMPLE,
    FRESH,
    KEEP_ORIGINAL,
    REPLACE,
    subsample_front,
    synthetic_count,
)
from ._streams import check_block, init_streams
from .mixture_em import _cholesky

__all__ = [
    "DERIVED",
    "KERNEL",
    "METRICS",
    "Model",
    "advance",
    "designs",
    "new_state",
    "rebuild",
    "snapshot",
    "state_bytes",
]

METRICS = ("risk", "weight_error", "noise_variance", "prediction_variance")
"""The metrics the kernel records, in the order of ``rec``'s axis 1."""
RISK, WEIGHT_ERROR, NOISE_VARIANCE, PREDICTION_VARIANCE = range(4)
DERIVED = ("design", "truth", "xtx", "factor", "dof")
"""A fixed design's arrays that follow from ``(seed, chain)``: left out of checkpoints."""
KERNEL = "regression-1"
"""The kernel's version: a checkpoint of another version cannot be continued."""


class Model(NamedTuple):
    """What every chain of a run shares.

    Attributes:
        num_samples: N, the rows of a generation.
        scales: float64 ``(d,)``, the covariates' standard deviations ``sqrt(v)``.
        w_star: float64 ``(d,)``, the true weights (model 0).
        noise: sigma > 0, the labels' noise.
        ridge: lambda >= 0 (0: OLS).
        fresh_design: new rows every generation (else a fixed design).
        regime: a regime code.
        num_real: real rows of a training set (fresh, keep-original), else 0.
        num_generations: T, the pool's capacity (accumulate-subsample: N T rows).
    """

    num_samples: int
    scales: np.ndarray
    w_star: np.ndarray
    noise: float
    ridge: float
    fresh_design: bool
    regime: int
    num_real: int
    num_generations: int


# --- the linear algebra, in a fixed order (results must not depend on the machine) -------


@njit(**JIT, inline="always")
def _dot(x, w, d):
    """``x[:d] . w[:d]`` in four interleaved partial sums (a fixed order, four at a time)."""
    a0 = a1 = a2 = a3 = 0.0
    j = 0
    while j + 4 <= d:
        a0 += x[j] * w[j]
        a1 += x[j + 1] * w[j + 1]
        a2 += x[j + 2] * w[j + 2]
        a3 += x[j + 3] * w[j + 3]
        j += 4
    while j < d:
        a0 += x[j] * w[j]
        j += 1
    return (a0 + a1) + (a2 + a3)


@njit(**JIT)
def _solve(chol, b, out):
    """``out = (L L')^-1 b`` for the lower factor L: forward, then backward substitution."""
    d = b.shape[0]
    for i in range(d):
        s = b[i]
        for k in range(i):
            s -= chol[i, k] * out[k]
        out[i] = s / chol[i, i]
    for i in range(d - 1, -1, -1):
        s = out[i]
        for k in range(i + 1, d):
            s -= chol[k, i] * out[k]
        out[i] = s / chol[i, i]


@njit(**JIT)
def _trace_inverse(chol, v):
    """``tr((L L')^-1) = |L^-1|_F^2``, column by column of ``L^-1`` (``v``: scratch (d,))."""
    d = chol.shape[0]
    total = 0.0
    for k in range(d):
        for i in range(k, d):
            s = 1.0 if i == k else 0.0
            for j in range(k, i):
                s -= chol[i, j] * v[j]
            v[i] = s / chol[i, i]
            total += v[i] * v[i]
    return total


@njit(**JIT)
def _quadratic(g, w):
    """``w' G w`` from G's lower triangle."""
    d = w.shape[0]
    diag = 0.0
    off = 0.0
    for j in range(d):
        diag += g[j, j] * w[j] * w[j]
        off += w[j] * _dot(g[j], w, j)
    return diag + 2.0 * off


@njit(**JIT)
def _factor(g, m, lam, chol, v):
    """Factor ``G + m lambda I`` (G's lower triangle) into ``chol``; return the effective
    degrees of freedom ``d - m lambda tr((G + m lambda I)^-1)``, or NaN if it is singular."""
    d = g.shape[0]
    ridge = m * lam
    for j in range(d):
        for k in range(j):
            chol[j, k] = g[j, k]
        chol[j, j] = g[j, j] + ridge
    if not _cholesky(chol, chol):  # in place: column j reads only what is still A's
        return math.nan
    if lam == 0.0:
        return float(d)
    return d - ridge * _trace_inverse(chol, v)


@njit(**JIT)
def _add_rows(rows, y, lo, hi, g, b, gram):
    """Add rows ``[lo, hi)`` to ``X'y`` (``b``) and, with ``gram``, to G's lower triangle;
    return their ``sum y^2``."""
    d = rows.shape[1]
    syy = 0.0
    for i in range(lo, hi):
        x = rows[i]
        yi = y[i]
        syy += yi * yi
        for j in range(d):
            b[j] += yi * x[j]
    if gram:
        _add_gram(rows, lo, hi, g)
    return syy


@njit(**JIT)
def _add_gram(rows, lo, hi, g):
    """Add ``x x'`` of rows ``[lo, hi)`` to G's lower triangle, four rows per pass over G
    (in a fixed order: G's memory traffic, not the arithmetic, bounds a rank-1 update)."""
    d = rows.shape[1]
    i = lo
    while i + 4 <= hi:
        x0, x1, x2, x3 = rows[i], rows[i + 1], rows[i + 2], rows[i + 3]
        for j in range(d):
            a0, a1, a2, a3 = x0[j], x1[j], x2[j], x3[j]
            gj = g[j]
            for k in range(j + 1):
                gj[k] += (a0 * x0[k] + a1 * x1[k]) + (a2 * x2[k] + a3 * x3[k])
        i += 4
    while i < hi:
        x = rows[i]
        for j in range(d):
            xj = x[j]
            gj = g[j]
            for k in range(j + 1):
                gj[k] += xj * x[k]
        i += 1


@njit(**JIT)
def _draw_rows(rows, lo, hi, scales, s0, s1):
    """Rows ``[lo, hi)`` of covariates, row by row: ``x_ij = scales_j z``."""
    d = rows.shape[1]
    for i in range(lo, hi):
        for j in range(d):
            z, s0, s1 = _rng.normal(s0, s1)
            rows[i, j] = scales[j] * z
    return s0, s1


@njit(**JIT)
def _labels(rows, y, truth, lo, mid, hi, w, w_star, sigma, curated, cur, ys, scr, s0, s1):
    """Labels of rows ``[lo, mid)`` from the model ``w``, of ``[mid, hi)`` from the truth.

    The model's labels are ``x . w + sigma eps``; ``curated`` applies the operators of
    ``cur`` to each of them: the sampling bias scales eps, a verifier or best-of acts on
    the standardised residual ``r = (y - x . w*) / sigma`` against the truth (the truth's
    labels are N(0, 1) in r, :func:`._curation.draw_kept`'s frame), redrawing that row's
    label until kept, and the correction moves ``y`` by ``t x . (w* - w)``. ``truth``
    holds ``x . w*`` of a fixed design's rows (empty: computed here).

    Returns:
        ``(candidates, starved, s0, s1)``: the labels drawn for rows ``[lo, mid)``, and
        whether a verifier gave up on any of them.
    """
    d = rows.shape[1]
    known = truth.shape[0] > 0
    drawn = 0.0
    starved = False
    lam = cur[BIAS] if curated else 1.0
    frac = cur[CORRECT] if curated else 0.0
    for i in range(lo, mid):
        x = rows[i]
        p = _dot(x, w, d)
        if curated:
            q = truth[i] if known else _dot(x, w_star, d)
            got, gave_up, s0, s1 = draw_kept(ys, scr, 1, cur, (p - q) / sigma, lam, lam, s0, s1)
            drawn += got
            starved = starved or gave_up
            yi = p + (sigma * lam) * ys[0]
            if frac > 0.0:
                yi += frac * (q - p)
            y[i] = yi
        else:
            z, s0, s1 = _rng.normal(s0, s1)
            y[i] = p + sigma * z
            drawn += 1.0
    for i in range(mid, hi):
        q = truth[i] if known else _dot(rows[i], w_star, d)
        z, s0, s1 = _rng.normal(s0, s1)
        y[i] = q + sigma * z
    return drawn, starved, s0, s1


@njit(**JIT)
def _derive(x, w_star, lam, truth, xtx, chol, v):
    """A fixed design's ``X w*``, ``X'X`` (lower triangle) and factor of ``X'X + N lambda I``;
    return the effective degrees of freedom (NaN: singular)."""
    n, d = x.shape
    for i in range(n):
        truth[i] = _dot(x[i], w_star, d)
    xtx[:, :] = 0.0
    b = np.zeros(d)
    _add_rows(x, truth, 0, n, xtx, b, True)
    return _factor(xtx, float(n), lam, chol, v)


@njit(**JIT)
def _record(rec, c, slot, w, w_star, variances, noise_var):
    d = w.shape[0]
    risk = 0.0
    err = 0.0
    pred = 0.0
    for j in range(d):
        e = w[j] - w_star[j]
        risk += variances[j] * e * e
        err += e * e
        pred += variances[j] * w[j] * w[j]
    rec[c, RISK, slot] = risk
    rec[c, WEIGHT_ERROR, slot] = err
    rec[c, NOISE_VARIANCE, slot] = noise_var
    rec[c, PREDICTION_VARIANCE, slot] = pred


# Kept whole: the per-chain loop of every regression run, both designs and every regime
# (scratch allocated once per chain, shared by every generation).
@njit(**PJIT)
def _chains(
    rng, w, design, truth, xtx, factor, dof, gram, sums, syy, pool, pool_size,
    t_start, t_end, slots, rec, n, scales, w_star, sigma, lam, fresh_design, regime,
    num_real, cur, tally, rec_cost,
):  # fmt: skip
    num_chains, d = w.shape
    variances = scales * scales
    curated = cur.shape[0] > 0
    best = int(cur[BEST_OF]) if curated else 1
    synth = synthetic_count(regime, n, num_real)
    subsample = regime == ACCUMULATE_SUBSAMPLE
    fixed_fit = not fresh_design and not subsample  # one factor for every generation
    for c in prange(num_chains):
        wc = w[c]
        if math.isnan(wc[0]):  # a chain ended by a singular fit
            for t in range(t_start, t_end):
                slot = slots[t - t_start]
                if slot >= 0:
                    for k in range(rec.shape[1]):
                        rec[c, k, slot] = math.nan
            continue
        s0 = rng[c, 0]
        s1 = rng[c, 1]
        rows = np.empty((n, d)) if fresh_design else design[c]
        known = truth[c]  # empty with a fresh design
        y = np.empty(n)
        g = np.empty((d, d))
        chol = np.empty((d, d))
        b = np.empty(d)
        v = np.empty(d)
        ys = np.empty(1)
        scr = np.empty(2 * best)
        seen = np.zeros(n if subsample and not fresh_design else 0, np.bool_)
        for t in range(t_start, t_end):
            if t == 0:
                s0, s1 = _draw_rows(rows, 0, n, scales, s0, s1)
                if fixed_fit:
                    dof[c] = _derive(rows, w_star, lam, known, xtx[c], factor[c], v)
                elif not fresh_design:
                    for i in range(n):
                        known[i] = _dot(rows[i], w_star, d)
            elif fresh_design:
                s0, s1 = _draw_rows(rows, 0, synth if regime == KEEP_ORIGINAL else n, scales,
                                    s0, s1)  # fmt: skip
            # The labelled rows: [0, mid) from model t, [mid, hi) from the truth; the kept
            # share of keep-original is labelled at generation 0 only.
            hi = n if t == 0 or regime != KEEP_ORIGINAL else synth
            mid = synth if regime == FRESH else hi
            cur_t = curated and t > 0
            drawn, starved, s0, s1 = _labels(rows, y, known, 0, mid, hi, wc, w_star, sigma,
                                             cur_t, cur, ys, scr, s0, s1)  # fmt: skip
            cost = drawn / mid if cur_t and mid > 0 else 1.0
            if curated and t > 0:
                tally[c, 0] += cost
                tally[c, 1] += starved
            # The training set's X'X (g), X'y (b), sum y^2 and rows m.
            b[:] = 0.0
            if not fixed_fit:
                g[:, :] = 0.0
            own = synth if regime == KEEP_ORIGINAL else n
            if subsample:
                size = pool_size[c]
                pc = pool[c]
                for i in range(n):
                    if fresh_design:
                        pc[size + i, :d] = rows[i]
                        pc[size + i, d] = y[i]
                    else:
                        pc[size + i, 0] = i
                        pc[size + i, 1] = y[i]
                size += n
                pool_size[c] = size
                s0, s1 = subsample_front(pc, size, n, s0, s1)
                total = 0.0
                distinct = 0
                seen[:] = False
                for i in range(n):
                    if fresh_design:
                        x = pc[i, :d]
                        yi = pc[i, d]
                    else:
                        r = int(pc[i, 0])
                        x = rows[r]
                        yi = pc[i, 1]
                        distinct += not seen[r]
                        seen[r] = True
                    total += yi * yi
                    for j in range(d):
                        b[j] += yi * x[j]
                        xj = x[j]
                        for k in range(j + 1):
                            g[j, k] += xj * x[k]
                m = float(n)
                df = _factor(g, m, lam, chol, v)
                gm = g
                fac = chol
                if not fresh_design and lam == 0.0 and distinct < d:
                    df = math.nan  # fewer distinct rows than dimensions: no OLS fit
            else:
                total = _add_rows(rows, y, 0, own, g, b, fresh_design)
                if regime == KEEP_ORIGINAL:
                    if t == 0:
                        sums[c, :] = 0.0
                        if fresh_design:
                            gram[c, :, :] = 0.0
                        syy[c] = _add_rows(rows, y, synth, n, gram[c], sums[c], fresh_design)
                    total += syy[c]
                    for j in range(d):
                        b[j] += sums[c, j]
                    if fresh_design:
                        g += gram[c]
                elif regime == ACCUMULATE:
                    if t == 0:
                        sums[c, :] = 0.0
                        syy[c] = 0.0
                        if fresh_design:
                            gram[c, :, :] = 0.0
                    sums[c] += b
                    syy[c] += total
                    total = syy[c]
                    b[:] = sums[c]
                    if fresh_design:
                        gram[c] += g
                        g[:, :] = gram[c]
                m = float(n * (t + 1)) if regime == ACCUMULATE else float(n)
                if fixed_fit:
                    df = dof[c]
                    if regime == ACCUMULATE:  # t (X'X + N lambda I) w = sum_s X'y_s
                        scale = 1.0 / (t + 1)
                        for j in range(d):
                            v[j] = b[j] * scale
                        b[:] = v
                        total *= scale
                        m = float(n)
                    gm = xtx[c]
                    fac = factor[c]
                else:
                    df = _factor(g, m, lam, chol, v)
                    gm = g
                    fac = chol
            if math.isnan(df):
                wc[:] = math.nan
                for tt in range(t, t_end):
                    slot = slots[tt - t_start]
                    if slot >= 0:
                        for k in range(rec.shape[1]):
                            rec[c, k, slot] = math.nan
                break
            _solve(fac, b, wc)
            rss = total - 2.0 * _dot(wc, b, d) + _quadratic(gm, wc)
            slot = slots[t - t_start]
            if slot >= 0:
                # Accumulate with a fixed design solved per generation of the pool: its
                # RSS and rows are t + 1 times those of the mean generation.
                k = t + 1 if fixed_fit and regime == ACCUMULATE else 1
                _record(rec, c, slot, wc, w_star, variances, k * rss / (k * m - df))
                if curated:
                    rec_cost[c, slot] = cost
        rng[c, 0] = s0
        rng[c, 1] = s1


# --- the public wrappers -------------------------------------------------------------------


def _shapes(model: Model, count: int) -> dict[str, tuple[tuple[int, ...], type]]:
    """Every state array's shape and dtype for ``count`` chains (zero-sized where unused)."""
    n, d = model.num_samples, model.scales.shape[0]
    fixed = not model.fresh_design
    sub = model.regime == ACCUMULATE_SUBSAMPLE
    stats = model.regime in (ACCUMULATE, KEEP_ORIGINAL)
    fit = fixed and not sub
    cols = d + 1 if model.fresh_design else 2
    b = count
    return {
        "w": ((b, d), np.float64),
        "design": ((b, n if fixed else 0, d), np.float64),
        "truth": ((b, n if fixed else 0), np.float64),
        "xtx": ((b, d if fit else 0, d if fit else 0), np.float64),
        "factor": ((b, d if fit else 0, d if fit else 0), np.float64),
        "dof": ((b,), np.float64),
        "gram": ((b, d if stats and model.fresh_design else 0, d), np.float64),
        "sums": ((b, d if stats else 0), np.float64),
        "syy": ((b,), np.float64),
        "pool": ((b, n * model.num_generations if sub else 0, cols if sub else 0), np.float64),
        "pool_size": ((b,), np.int64),
    }


def state_bytes(model: Model) -> int:
    """Bytes of one chain's state but its stream (its design, statistics and pool)."""
    return sum(8 * math.prod(shape[1:]) for shape, _ in _shapes(model, 1).values())


def new_state(seed: int, chains: np.ndarray, model: Model) -> dict[str, np.ndarray]:
    """Return the state of chains at model 0 (the truth), their streams under ``rng``.

    Args:
        seed: the run's seed, ``0 <= seed < 2**64``.
        chains: global chain indices, int64 ``(B,)``.
        model: the run's :class:`Model`.

    Returns:
        ``rng`` (uint64 ``(B, 3)``), ``w`` (the weights, ``(B, d)``) and the arrays of
        :func:`advance`, chains on axis 0 (zero-sized where the design and regime use none).
    """
    rng = init_streams(seed, chains)
    st: dict[str, np.ndarray] = {"rng": rng}
    for name, (shape, dtype) in _shapes(model, rng.shape[0]).items():
        st[name] = np.zeros(shape, dtype)
    st["w"][:] = model.w_star
    return st


@njit(**PJIT)
def _designs(seed, chains, n, scales, out):
    for i in prange(chains.shape[0]):
        s0, s1 = _rng.stream_state(seed, np.uint64(chains[i]))
        _draw_rows(out[i], 0, n, scales, s0, s1)


def designs(seed: int, chains: np.ndarray, num_samples: int, scales: np.ndarray) -> np.ndarray:
    """Return the generation-0 rows of the given chains, float64 ``(B, N, d)``: a fixed
    design, drawn as :func:`advance` draws it."""
    ids = np.ascontiguousarray(chains, dtype=np.int64)
    sc = np.ascontiguousarray(scales, dtype=np.float64)
    out = np.empty((ids.shape[0], num_samples, sc.shape[0]))
    _designs(np.uint64(seed), ids, num_samples, sc, out)
    return out


@njit(**PJIT)
def _rederive(design, truth, xtx, factor, dof, w_star, lam, fit):
    for c in prange(design.shape[0]):
        v = np.empty(design.shape[2])
        if fit:
            dof[c] = _derive(design[c], w_star, lam, truth[c], xtx[c], factor[c], v)
        else:
            for i in range(design.shape[1]):
                truth[c, i] = _dot(design[c, i], w_star, design.shape[2])


def rebuild(
    state: dict[str, np.ndarray], seed: int, lo: int, model: Model
) -> dict[str, np.ndarray]:
    """Return ``state`` (chains ``lo, lo + 1, ...`` past generation 0) with the arrays of
    :data:`DERIVED` drawn again and the pool padded to its capacity."""
    b = state["rng"].shape[0]
    shapes = _shapes(model, b)
    out = dict(state)
    for name in DERIVED:
        shape, dtype = shapes[name]
        out[name] = np.zeros(shape, dtype)
    if not model.fresh_design:
        out["design"] = designs(seed, np.arange(lo, lo + b), model.num_samples, model.scales)
        _rederive(out["design"], out["truth"], out["xtx"], out["factor"], out["dof"],
                  np.asarray(model.w_star, np.float64), float(model.ridge),
                  model.regime != ACCUMULATE_SUBSAMPLE)  # fmt: skip
    pool = np.zeros(shapes["pool"][0])
    have = state["pool"].shape[1]
    pool[:, :have] = state["pool"]
    out["pool"] = pool
    return out


def snapshot(state: dict[str, np.ndarray], g: int, model: Model) -> dict[str, np.ndarray]:
    """What a checkpoint at model ``g`` holds of ``state``: no derived array, the filled
    part of the pool."""
    out = {k: v for k, v in state.items() if k not in DERIVED}
    if "pool" in out:
        out["pool"] = out["pool"][:, : model.num_samples * g]
    return out


def advance(
    state: dict[str, np.ndarray],
    t_start: int,
    t_end: int,
    slots: np.ndarray,
    rec: np.ndarray,
    model: Model,
    *,
    curation: np.ndarray | None = None,
    tally: np.ndarray | None = None,
    rec_cost: np.ndarray | None = None,
) -> None:
    """Advance chains from model ``t_start`` to model ``t_end`` in place.

    Args:
        state: the arrays of :func:`new_state` (after a checkpoint: of :func:`rebuild`),
            updated in place.
        t_start: the model the chains are at; ``t_end``: the model to stop at.
        slots: int64 ``(t_end - t_start,)``: the record column of model ``t_start + j + 1``,
            or -1.
        rec: float64 ``(B, len(METRICS), R)`` receiving the metrics of recorded models.
        model: the run's :class:`Model`.
        curation: the operators' vector (:meth:`collapsesim.curation.Curation.vector`;
            top, self-top and a linear reward do not apply to labels), or None.
        tally: with ``curation``: float64 ``(B, 2)``, adds each chain's labels drawn per
            kept label over the curated generations, and its starved generations.
        rec_cost: with ``curation``: float64 ``(B, R)``, the labels drawn per kept label of
            the data each recorded model was fitted on.

    Raises:
        ValueError: shapes, dtypes or parameters the kernel cannot take.
    """
    st = state
    b = st["rng"].shape[0]
    slots = check_block(st["rng"], b, t_start, t_end, slots, rec.shape[2])
    if rec.ndim != 3 or rec.shape[:2] != (b, len(METRICS)) or rec.dtype != np.float64:
        raise ValueError(f"rec must be float64 of shape (chains, {len(METRICS)}, records)")
    for name, (shape, dtype) in _shapes(model, b).items():
        arr = st.get(name)
        if name == "pool" and shape[1] > 0:  # room for every row up to model t_end
            shape = (b, model.num_samples * t_end, shape[2])
            ok = arr is not None and arr.shape[::2] == shape[::2] and arr.shape[1] >= shape[1]
        else:
            ok = arr is not None and arr.shape == shape
        if not ok or arr is None or arr.dtype != dtype or not arr.flags.c_contiguous:
            raise ValueError(f"state[{name!r}] must be C-contiguous {np.dtype(dtype)} {shape}")
    n, d = model.num_samples, model.scales.shape[0]
    if model.regime not in (REPLACE, ACCUMULATE, FRESH, KEEP_ORIGINAL, ACCUMULATE_SUBSAMPLE):
        raise ValueError(f"unknown regime code {model.regime}")
    if not (model.noise > 0 and math.isfinite(model.noise)):
        raise ValueError("noise must be positive and finite")
    if not (model.ridge >= 0 and math.isfinite(model.ridge)):
        raise ValueError("ridge must be >= 0 and finite")
    if model.ridge == 0 and n <= d:
        raise ValueError("OLS needs more rows than dimensions")
    num_real = model.num_real if model.regime in (FRESH, KEEP_ORIGINAL) else 0
    if not 0 <= num_real <= n:
        raise ValueError("num_real must lie in [0, num_samples]")
    cur, tally, rec_cost = curation_arrays(curation, tally, rec_cost, b, rec.shape[2])
    if cur.size and int(cur[KIND]) not in (0, 1, 2, 3):  # none, interval, self-interval, soft
        raise ValueError("top and self-top do not apply to regression labels")
    _chains(
        st["rng"], st["w"], st["design"], st["truth"], st["xtx"], st["factor"], st["dof"],
        st["gram"], st["sums"], st["syy"], st["pool"], st["pool_size"], t_start, t_end, slots,
        rec, n, np.ascontiguousarray(model.scales, np.float64),
        np.ascontiguousarray(model.w_star, np.float64), float(model.noise), float(model.ridge),
        bool(model.fresh_design), int(model.regime), int(num_real), cur, tally, rec_cost,
    )  # fmt: skip
