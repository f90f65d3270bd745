"""A slow, literal reference of the regression chains that the kernel must match.

It calls the same per-chain random primitives in the same order as
``collapsesim.kernels.regression`` (rows of covariates, then the synthetic rows' labels,
then the real rows', then the subsample's swaps), but builds every training set
explicitly, ``X`` and ``y`` stacked as the regime defines them, keeps every row a regime
needs, and fits with ``np.linalg.lstsq`` (OLS) or ``np.linalg.solve`` (ridge). Each
curation operator is written as its definition on the label's residual against the truth.
"""

from __future__ import annotations

import math

import numpy as np

from collapsesim.curation import Curation
from collapsesim.kernels import _rng
from collapsesim.kernels._curation import MAX_TRIES


def _u(out):
    """Called from Python, jitted samplers return plain ints; keep the state uint64."""
    *value, s0, s1 = out
    return (*value, np.uint64(s0), np.uint64(s1))


def _normal(s):
    z, s0, s1 = _u(_rng.normal(*s))
    return z, (s0, s1)


def _uniform(s):
    u, s0, s1 = _u(_rng.uniform(*s))
    return u, (s0, s1)


def _rows(k, scales, s):
    x = np.empty((k, len(scales)))
    for i in range(k):
        for j in range(len(scales)):
            z, s = _normal(s)
            x[i, j] = scales[j] * z
    return x, s


def _label(x, w, w_star, sigma, cur: Curation | None, s):
    """One synthetic label of model w for row x and the candidates drawn for it."""
    p, q = float(x @ w), float(x @ w_star)
    if cur is None:
        z, s = _normal(s)
        return p + sigma * z, 1, False, s
    lam, kind, strength = cur.sampling_bias, cur.select, cur.select_strength

    def resid(z):  # (y - x . w*) / sigma of the label p + sigma lam z
        return (p + sigma * lam * z - q) / sigma

    drawn, starved = 0, False
    if cur.best_of > 1:
        zs = []
        for _ in range(cur.best_of):
            z, s = _normal(s)
            zs.append(z)
        reward = np.array([-0.5 * resid(z) ** 2 for z in zs])  # log-likelihood under the truth
        weights = np.exp(reward - reward.max())
        u, s = _uniform(s)
        pick = int(np.flatnonzero(u * weights.sum() < np.cumsum(weights))[0])
        z, drawn = zs[pick], cur.best_of
    elif kind == "none":
        z, s = _normal(s)
        drawn = 1
    else:
        while True:
            if drawn == MAX_TRIES:  # the verifier gives up: one more draw, unselected
                z, s = _normal(s)
                drawn += 1
                starved = True
                break
            z, s = _normal(s)
            drawn += 1
            if kind == "interval":
                ok = abs(resid(z)) <= strength
            elif kind == "self-interval":
                ok = abs(lam * z) <= strength
            else:  # soft
                u, s = _uniform(s)
                ok = u < math.exp(-0.5 * strength * resid(z) ** 2)
            if ok:
                break
    y = p + sigma * lam * z
    if cur.correction > 0:  # along the transport map N(x.w, s^2) -> N(x.w*, s^2)
        y += cur.fraction * (q - p)
    return y, drawn, starved, s


def _fit(x, y, ridge):
    m, d = x.shape
    if ridge == 0:
        w = np.linalg.lstsq(x, y, rcond=None)[0]
        df = float(d)
    else:
        a = x.T @ x + m * ridge * np.eye(d)
        w = np.linalg.solve(a, x.T @ y)
        df = float(np.trace(np.linalg.solve(a, x.T @ x)))
    rss = float(np.sum((y - x @ w) ** 2))
    return w, rss / (m - df)


def regression_chain(
    seed: int,
    chain: int,
    generations: int,
    *,
    n: int,
    scales: np.ndarray,
    w_star: np.ndarray,
    sigma: float = 1.0,
    ridge: float = 0.0,
    design: str = "fixed",
    regime: str = "replace",
    num_real: int = 0,
    cur: Curation | None = None,
) -> dict[str, np.ndarray]:
    """Return every metric of models 0..T of one chain, and ``candidates`` (labels drawn
    per kept label of the data each model was fitted on), literally.

    Args:
        seed, chain: the chain's stream.
        generations: T.
        n: rows per generation.
        scales: the covariates' standard deviations (d,).
        w_star: the true weights (d,).
        sigma: the labels' noise.
        ridge: lambda of the per-sample ridge objective (0: OLS).
        design: fixed | fresh.
        regime: a regime name.
        num_real: real rows per training set (fresh, keep-original).
        cur: the curation operators (None: none).
    """
    s = _u(_rng.stream_state(np.uint64(seed), np.uint64(chain)))
    w_star = np.asarray(w_star, float)
    var = np.asarray(scales, float) ** 2
    k = num_real if regime in ("fresh", "keep-original") else 0
    synth = n - k
    w = w_star.copy()
    out = {
        "risk": [0.0],
        "weight_error": [0.0],
        "noise_variance": [sigma**2],
        "prediction_variance": [float(w_star @ (var * w_star))],
        "candidates": [1.0],
    }
    X = None
    everything_x, everything_y = [], []  # accumulate: every row so far
    pool_x, pool_y = np.empty((0, len(scales))), np.empty(0)  # accumulate-subsample
    kept_x = kept_y = None
    for t in range(generations):
        if t == 0:
            X, s = _rows(n, scales, s)
            rows = X
        elif design == "fresh":
            rows, s = _rows(synth if regime == "keep-original" else n, scales, s)
        else:
            rows = X[:synth] if regime == "keep-original" else X
        # Labels: [0, mid) from model t, [mid, len) from the truth.
        count = len(rows)
        mid = synth if regime == "fresh" else count
        y = np.empty(count)
        drawn, starved = 0, False
        for i in range(mid):
            use = cur if t > 0 else None
            y[i], got, gave_up, s = _label(rows[i], w, w_star, sigma, use, s)
            drawn += got
            starved |= gave_up
        for i in range(mid, count):
            z, s = _normal(s)
            y[i] = float(rows[i] @ w_star) + sigma * z
        cost = drawn / mid if t > 0 and cur is not None and mid > 0 else 1.0
        if regime == "replace" or regime == "fresh":
            tx, ty = rows, y
        elif regime == "accumulate":
            everything_x.append(rows)
            everything_y.append(y)
            tx, ty = np.concatenate(everything_x), np.concatenate(everything_y)
        elif regime == "keep-original":
            if t == 0:
                kept_x, kept_y = rows[synth:], y[synth:]
                rows, y = rows[:synth], y[:synth]
            tx, ty = np.concatenate([rows, kept_x]), np.concatenate([y, kept_y])
        else:  # accumulate-subsample: the pool in the kernel's order, its front n rows
            pool_x = np.concatenate([pool_x, rows])
            pool_y = np.concatenate([pool_y, y])
            for i in range(n):
                j, s0, s1 = _u(_rng.integer_below(np.uint64(len(pool_y) - i), *s))
                s = (s0, s1)
                r = i + int(j)
                pool_x[[i, r]] = pool_x[[r, i]]
                pool_y[[i, r]] = pool_y[[r, i]]
            tx, ty = pool_x[:n], pool_y[:n]
        w, noise = _fit(tx, ty, ridge)
        e = w - w_star
        out["risk"].append(float(e @ (var * e)))
        out["weight_error"].append(float(e @ e))
        out["noise_variance"].append(noise)
        out["prediction_variance"].append(float(w @ (var * w)))
        out["candidates"].append(cost)
    return {name: np.array(v) for name, v in out.items()}
