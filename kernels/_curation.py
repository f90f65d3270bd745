"""The curation operators between a model's sampler and the next fit, written once in Numba.

A family's kernel asks :func:`law` for the law its model samples from (the sampling bias,
and ``soft`` selection in closed form where the family's statistics are exact),
:func:`draw_kept` for n kept standardised draws of that law (selection and best-of by
drawing candidates), and :func:`correct` for the self-correction, an affine map. The
operators and their vector are :mod:`collapsesim.curation`'s; everything here is in the
chain's standard units, where the original is N(0, 1).

Kept samples are ``x = m + s y``: the frame ``(m, s)`` and standardised values ``y``
(``s = ratio * sigma``, with ``sigma`` the current model's std). The selection tests are
written so that they stay right when ``s`` is far below 1 (a collapsed chain): the
original's log-likelihood of ``m + s y`` is ranked by ``y (2 m + s y)``, not by
``(m + s y)^2``, whose ``s y`` part would round away.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..curation import (
    BEST_OF,
    BIAS,
    CORRECT,
    INTERVAL,
    KIND,
    LOGLIK,
    NONE,
    REWARD,
    SELF_INTERVAL,
    SELF_TOP,
    SIZE,
    SLOPE,
    SOFT,
    STRENGTH,
    TOP,
    candidates_of_top,
)
from . import _rng
from ._flags import JIT
from .mixture_em import _sample

__all__ = [
    "BEST_OF",
    "CORRECT",
    "KIND",
    "NONE",
    "SELF_TOP",
    "SIZE",
    "SOFT",
    "STRENGTH",
    "TOP",
    "correct",
    "curation_arrays",
    "discrete_law",
    "draw_kept",
    "law",
    "log_constants",
    "luce_pick",
    "luce_pick_log",
    "mixture_kept",
    "moments",
    "ranked_tokens",
    "top_candidates",
]

# Candidates one generation may draw per kept sample before the selection gives up and
# keeps the rest unselected (counted as a starved generation): a verifier that keeps one
# draw in 2^16 would take a minute per generation.
MAX_TRIES = 2**16


@njit(**JIT, inline="always")
def law(cur, mu, sigma, exact):
    """The law the current model N(mu, sigma^2) samples from, before any selection by draws.

    Args:
        cur: the operators' vector.
        mu, sigma: the current model (sigma may have underflowed to 0).
        exact: apply ``soft`` here, in closed form (the kept draws of a Gaussian are then
            exactly Gaussian); otherwise :func:`draw_kept` applies it by rejection.

    Returns:
        ``(m, ratio, keep)``: kept draws are ``m + ratio sigma y`` with ``y ~ N(0, 1)``
        (before the selection :func:`draw_kept` does), and ``keep`` the probability that a
        candidate is kept (1 unless ``soft`` is applied here).
    """
    lam = cur[BIAS]
    if not (exact and int(cur[KIND]) == SOFT):
        return mu, lam, 1.0
    # Candidates N(mu, s^2) kept with probability exp(-beta x^2 / 2): precision
    # 1 / s^2 + beta, mean mu / (1 + beta s^2), kept with (1 + beta s^2)^(-1/2)
    # exp(-beta mu^2 / (2 (1 + beta s^2))).
    beta = cur[STRENGTH]
    s = lam * sigma
    q = 1.0 + beta * s * s
    return mu / q, lam / math.sqrt(q), math.exp(-0.5 * beta * mu * mu / q) / math.sqrt(q)


@njit(**JIT, inline="always")
def correct(frac, m, ratio, mu, sigma):
    """The frame after moving each sample ``frac`` of the way along the optimal-transport
    map from the current model N(mu, sigma^2) to the original N(0, 1).

    The map is ``T(x) = (x - mu) / sigma``; ``(1 - frac) x + frac T(x)`` is affine, so a
    frame ``(m, ratio)`` maps to another (Gillman et al.'s self-correction).
    """
    if frac == 0.0:
        return m, ratio
    return (1.0 - frac) * m + frac * (m - mu) / sigma, ratio * ((1.0 - frac) + frac / sigma)


# Candidates ``ceil(n / X)`` of top and self-top, the one definition compiled for the kernels.
top_candidates = njit(**JIT)(candidates_of_top)


@njit(**JIT, inline="always")
def _reward(kind, slope, m, s, y):
    """The reward of ``x = m + s y`` up to a constant of the generation (it cancels)."""
    if kind == LOGLIK:
        return -0.5 * s * (y * (2.0 * m + s * y))  # -x^2 / 2 + m^2 / 2
    return slope * s * y


@njit(**JIT)
def draw_kept(ys, scratch, n, cur, m, s, ratio, s0, s1):
    """Draw n kept standardised values into ``ys[:n]`` (kept samples are ``m + s ys``).

    Args:
        ys: float64 buffer of at least n values (``top_candidates`` for top kinds).
        scratch: float64 buffer of at least ``max(2 best_of, top_candidates)`` values.
        n: samples to keep.
        cur: the operators' vector.
        m, s: the frame of the model's draws (:func:`law`; ``s = ratio sigma``).
        ratio: ``s / sigma``, the draws' spread in the current model's units.
        s0, s1: the chain's stream.

    Returns:
        ``(candidates, starved, s0, s1)``: the candidates drawn, and whether the selection
        gave up after ``MAX_TRIES n`` of them (the rest then kept unselected).
    """
    kind = int(cur[KIND])
    x = cur[STRENGTH]
    if kind in (TOP, SELF_TOP):
        big = top_candidates(n, x)
        for i in range(big):
            y, s0, s1 = _rng.normal(s0, s1)
            ys[i] = y
            # Most likely first: under the original, |m + s y| ranks as y (2 m + s y);
            # under the current model (the draws' centre), as |y|.
            scratch[i] = y * (2.0 * m + s * y) if kind == TOP else abs(y)
        if big > n:
            # The n smallest keys: those below the n-th, then its ties in the order drawn.
            threshold = np.partition(scratch[:big], n - 1)[n - 1]
            below = 0
            for i in range(big):
                below += scratch[i] < threshold
            j = 0
            ties = n - below
            for i in range(big):
                key = scratch[i]
                if key < threshold or (key == threshold and ties > 0):
                    ties -= key == threshold
                    ys[j] = ys[i]
                    j += 1
        return float(big), False, s0, s1
    best = int(cur[BEST_OF])
    if best > 1:
        reward = int(cur[REWARD])
        slope = cur[SLOPE]
        weights = scratch[best : 2 * best]
        for i in range(n):
            for k in range(best):
                y, s0, s1 = _rng.normal(s0, s1)
                scratch[k] = y
                weights[k] = _reward(reward, slope, m, s, y)
            pick, s0, s1 = luce_pick_log(weights, best, s0, s1)
            ys[i] = scratch[pick]
        return float(n * best), False, s0, s1
    drawn = 0
    kept = 0
    cap = MAX_TRIES * n
    selects = kind in (SOFT, INTERVAL, SELF_INTERVAL)
    if kind == SOFT:
        while kept < n and drawn < cap:
            y, s0, s1 = _rng.normal(s0, s1)
            u, s0, s1 = _rng.uniform(s0, s1)
            drawn += 1
            v = m + s * y
            a = 0.5 * x * v * v  # keep with probability exp(-a)
            # Squeezed: 1 - a <= exp(-a) <= 1 / (1 + a) decide most draws without exp.
            ok = u < 1.0 - a or (u * (1.0 + a) < 1.0 and u < math.exp(-a))
            ys[kept] = y
            kept += ok
    elif kind in (INTERVAL, SELF_INTERVAL):
        # Kept draws are y in [lo, hi]: |m + s y| <= X (interval; with s = 0 all or none
        # of them) or |ratio y| <= X (self-interval).
        if kind == INTERVAL and s > 0.0:
            lo, hi = (-x - m) / s, (x - m) / s
        elif kind == INTERVAL:  # a collapsed model: all of its draws sit at m
            lo, hi = (-math.inf, math.inf) if abs(m) <= x else (math.inf, -math.inf)
        else:
            lo, hi = -x / ratio, x / ratio
        while kept < n and drawn < cap:
            y, s0, s1 = _rng.normal(s0, s1)
            drawn += 1
            ys[kept] = y
            kept += lo <= y <= hi
    starved = selects and kept < n
    while kept < n:  # no selection, or one that gave up (the rest kept unselected)
        y, s0, s1 = _rng.normal(s0, s1)
        drawn += 1
        ys[kept] = y
        kept += 1
    return float(drawn), starved, s0, s1


@njit(**JIT, inline="always")
def moments(ys, n):
    """``(mean, M2)`` of ``ys[:n]`` in two passes (kept draws need not be centred)."""
    acc = 0.0
    for i in range(n):
        acc += ys[i]
    mean = acc / n
    m2 = 0.0
    for i in range(n):
        d = ys[i] - mean
        m2 += d * d
    return mean, m2


# --- discrete laws (token chains) ---------------------------------------------------------
#
# The same kinds on a law q over K categories, ranked by their likelihood: a draw x of a
# Gaussian lies within X stds of the mean exactly when its density is at least
# exp(-X^2 / 2) times the mode's, and ``soft`` keeps it with probability
# (density / mode's)^X. So for categories ``interval`` keeps those whose original
# probability is at least exp(-X^2 / 2) times the original's largest, ``self-interval``
# the same under the current model, ``soft`` keeps category i with probability
# (p0_i / max p0)^X, and ``top`` / ``self-top`` keep the n most likely of ceil(n / X)
# candidates (ties in the order they were drawn). The first three are exact laws:
# the kept tokens are draws of q_i w_i / sum_j q_j w_j, at 1 / sum_j q_j w_j candidates
# per kept token.


@njit(**JIT)
def discrete_law(cur, p, p0, q):
    """Reweight the sampling law ``q`` (in place) by the kept weights of ``cur``'s kind.

    Args:
        cur: the operators' vector.
        p: the current model (K,), for the ``self-`` kinds.
        p0: the original (K,).
        q: the law the model samples from (after decoding), summing to 1; left alone
            unless the kind is interval, self-interval or soft.

    Returns:
        ``(candidates per kept token, starved)``: the expected cost, and whether no
        category of q is kept (q is then left alone, unselected).
    """
    kind = int(cur[KIND])
    if kind not in (INTERVAL, SELF_INTERVAL, SOFT):
        return 1.0, False
    x = cur[STRENGTH]
    ref = p if kind == SELF_INTERVAL else p0
    top = 0.0
    for i in range(ref.shape[0]):
        top = max(top, ref[i])
    cut = top * math.exp(-0.5 * x * x)
    kept = 0.0
    for i in range(q.shape[0]):
        kept += q[i] * _weight(kind, x, ref[i], top, cut)
    if not kept > 0.0:
        return 1.0, True
    for i in range(q.shape[0]):
        q[i] = q[i] * _weight(kind, x, ref[i], top, cut) / kept
    return 1.0 / kept, False


@njit(**JIT, inline="always")
def _weight(kind, x, r, top, cut):
    """The probability that a category of reference probability r is kept."""
    if kind == SOFT:
        return (r / top) ** x if r > 0.0 else (1.0 if x == 0.0 else 0.0)
    return 1.0 if r >= cut else 0.0


@njit(**JIT)
def ranked_tokens(cand, keys, big, n, dst):
    """``dst[:n]``: the n tokens of ``cand[:big]`` with the largest ``keys`` (their
    likelihood), ties in the order drawn (a stable sort)."""
    order = np.argsort(-keys[:big], kind="mergesort")
    for i in range(n):
        dst[i] = cand[order[i]]


@njit(**JIT, inline="always")
def luce_pick_log(rewards, count, s0, s1):
    """Luce's choice by rewards: candidate k with probability ``exp(r_k) / sum_j exp(r_j)``
    (the rewards in ``rewards[:count]`` become their weights ``exp(r_k - max r)``)."""
    top = -math.inf
    for k in range(count):
        top = max(top, rewards[k])
    for k in range(count):
        rewards[k] = math.exp(rewards[k] - top)
    return luce_pick(rewards, count, s0, s1)


@njit(**JIT, inline="always")
def luce_pick(weights, count, s0, s1):
    """Index ``k < count`` chosen with probability ``weights[k] / sum(weights)`` (uniform
    if they are all 0)."""
    total = 0.0
    for k in range(count):
        total += weights[k]
    u, s0, s1 = _rng.uniform(s0, s1)
    if not total > 0.0:
        return min(int(u * count), count - 1), s0, s1
    u *= total
    acc = 0.0
    for k in range(count):
        acc += weights[k]
        if u < acc:
            return k, s0, s1
    return count - 1, s0, s1


def curation_arrays(
    curation: np.ndarray | None,
    tally: np.ndarray | None,
    rec_cost: np.ndarray | None,
    num: int,
    num_records: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A kernel's curation arguments for ``num`` chains, checked: empty arrays where there
    is none."""
    if curation is None:
        return np.zeros(0), np.zeros((0, 2)), np.zeros((0, 0))
    cur = np.ascontiguousarray(curation, dtype=np.float64)
    if cur.ndim != 1 or cur.shape[0] <= SIZE:
        raise ValueError(f"curation must be a float64 vector of {SIZE} operators and slopes")
    if tally is None or tally.shape != (num, 2) or tally.dtype != np.float64:
        raise ValueError("curation needs a float64 tally of shape (chains, 2)")
    if rec_cost is None or rec_cost.shape != (num, num_records) or rec_cost.dtype != np.float64:
        raise ValueError("curation needs float64 rec_cost of shape (chains, records)")
    return cur, tally, rec_cost


# --- multivariate draws (mixture chains) --------------------------------------------------
#
# In d dimensions a draw's distance from a Gaussian is its Mahalanobis radius, and from a
# mixture the smallest radius over its components (a single Gaussian: the radius itself).
# ``interval`` keeps draws within radius X of the original, ``self-interval`` within X of
# the current model, ``soft`` keeps a draw with probability exp(-X r^2 / 2) (r under the
# original); ``top`` and ``self-top`` keep the n of ceil(n / X) candidates of highest
# log-likelihood under the original / the current model; best-of rewards that
# log-likelihood (``loglik``) or ``a . x`` (``linear:a1,...,ad``, its slopes from SLOPE on).

_LOG_2PI = math.log(2.0 * math.pi)


@njit(**JIT)
def log_constants(weights, chol, out):
    """``out[k] = log w_k - d/2 log 2 pi - log det L_k``: the components' log-density offsets."""
    d = chol.shape[1]
    for k in range(weights.shape[0]):
        c = math.log(weights[k]) - 0.5 * d * _LOG_2PI if weights[k] > 0.0 else -math.inf
        for j in range(d):
            c -= math.log(chol[k, j, j])
        out[k] = c


@njit(**JIT)
def _radius_loglik(x, means, chol, const, y):
    """``(smallest squared Mahalanobis radius, log density)`` of x under a mixture."""
    k_count, d = means.shape
    best_r = math.inf
    top = -math.inf
    for k in range(k_count):
        q = 0.0
        for j in range(d):
            t = x[j] - means[k, j]
            for m in range(j):
                t -= chol[k, j, m] * y[m]
            y[j] = t / chol[k, j, j]
            q += y[j] * y[j]
        best_r = min(best_r, q)
        top = max(top, const[k] - 0.5 * q)
    if top == -math.inf:
        return best_r, top
    acc = 0.0
    for k in range(k_count):  # log-sum-exp, again: the radii are cheap next to a draw
        q = 0.0
        for j in range(d):
            t = x[j] - means[k, j]
            for m in range(j):
                t -= chol[k, j, m] * y[m]
            y[j] = t / chol[k, j, j]
            q += y[j] * y[j]
        acc += math.exp(const[k] - 0.5 * q - top)
    return best_r, top + math.log(acc)


@njit(**JIT)
def mixture_kept(out, cand, keys, cur, draw, model, original, y, s0, s1):
    """Fill ``out`` (n, d) with kept draws of the model mixture under ``cur``.

    Args:
        out: float64 (n, d) receiving the kept draws.
        cand: float64 (at least max(best_of, top_candidates, 1), d) candidate scratch.
        keys: float64 scratch of cand's length.
        cur: the operators' vector.
        draw: ``(weights, means, chol)`` the model samples with (its covariance factors
            times the sampling bias).
        model, original: ``(weights, means, chol, log constants)`` of the current model
            and of the original, for the radii and likelihoods.
        y: float64 (d,) scratch.
        s0, s1: the chain's stream.

    Returns:
        ``(candidates, starved, s0, s1)`` as :func:`draw_kept`'s.
    """
    n, d = out.shape
    kind, x, best = int(cur[KIND]), cur[STRENGTH], int(cur[BEST_OF])
    w, m, chol = draw
    if kind in (TOP, SELF_TOP):
        big = top_candidates(n, x)
        s0, s1 = _sample(w, m, chol, cand[:big], s0, s1)
        ref = original if kind == TOP else model
        for i in range(big):
            keys[i] = -_radius_loglik(cand[i], ref[1], ref[2], ref[3], y)[1]
        order = np.argsort(keys[:big], kind="mergesort")
        for i in range(n):
            out[i] = cand[order[i]]
        return float(big), False, s0, s1
    if best > 1:
        for i in range(n):
            s0, s1 = _sample(w, m, chol, cand[:best], s0, s1)
            for k in range(best):
                if int(cur[REWARD]) == LOGLIK:
                    r = _radius_loglik(cand[k], original[1], original[2], original[3], y)[1]
                else:
                    r = 0.0
                    for j in range(d):
                        r += cur[SLOPE + j] * cand[k, j]
                keys[k] = r
            pick, s0, s1 = luce_pick_log(keys, best, s0, s1)
            out[i] = cand[pick]
        return float(n * best), False, s0, s1
    drawn = 0
    kept = 0
    cap = MAX_TRIES * n
    selects = kind in (SOFT, INTERVAL, SELF_INTERVAL)
    one = cand[:1]
    while kept < n:
        s0, s1 = _sample(w, m, chol, one, s0, s1)
        drawn += 1
        ok = True
        if selects and drawn <= cap:
            ref = model if kind == SELF_INTERVAL else original
            r2 = _radius_loglik(one[0], ref[1], ref[2], ref[3], y)[0]
            if kind == SOFT:
                u, s0, s1 = _rng.uniform(s0, s1)
                ok = u < math.exp(-0.5 * x * r2)
            else:
                ok = r2 <= x * x
        if ok:
            out[kept] = one[0]
            kept += 1
    return float(drawn), selects and drawn > cap, s0, s1
