"""Kernel-density chains: fit a Gaussian KDE to n points, sample it, refit, and so on.

A chain's model is the KDE of its training points with bandwidth h,
``p(x) = (1/N) sum_i N(x; x_i, h^2 I)``; sampling it picks a training point uniformly
and adds ``N(0, h^2 I)``. The bandwidth is fixed, or re-estimated from each training set
by a scalar rule: ``h = f(N) sqrt(v)``, with ``v`` the mean over dimensions of the
points' variance (ddof 1, as scipy's ``gaussian_kde`` estimates its covariance) and
Scott's factor ``f = N^(-1/(d+4))`` or Silverman's ``f = (N (d + 2) / 4)^(-1/(d+4))``.

Every point is a row ``(x_1, .., x_d, a)``: ``a`` is the index of the generation-0 point
it descends from (a float, exact below 2^53), inherited by every draw; real points that
enter later (``fresh``) descend from no generation-0 point and carry -1. The training
set of generation t is assembled as :mod:`._regimes` says (the pooling regimes keep
every point so far; ``accumulate-subsample`` moves n of them to the front).

Random draws, in order, per generation: the synthetic points (each: its parent, an
integer below the source size from half a random word (:func:`below_half`), then d
normals; curation draws each candidate's parent from a whole word (:func:`below`)), the
real share where the regime draws it (each point: the original's sampler), the
subsample. Model 0 is the original, so generation 0's points all come from it.

The metrics of every recorded model are computed in the loop (:mod:`.kde_eval`): the negative
log-likelihood of a fixed held-out sample of the original, the variance, the surviving
generation-0 ancestors, the bandwidth, and in 1-D the W2 distance to the original.

References:
    D. W. Scott, "Multivariate Density Estimation", Wiley, 1992 (the factor n^(-1/(d+4)));
    B. W. Silverman, "Density Estimation for Statistics and Data Analysis", Chapman and
    Hall, 1986; D. Lemire, "Fast random integer generation in an interval", ACM TOMACS
    29(1), 2019 (the parents' integers).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..curation import INTERVAL, LOGLIK, REWARD, SLOPE, SOFT
from . import _rng
from ._curation import (
    BEST_OF,
    BIAS,
    KIND,
    MAX_TRIES,
    SELF_TOP,
    STRENGTH,
    TOP,
    curation_arrays,
    luce_pick_log,
    top_candidates,
)
from ._flags import JIT, PJIT
from ._regimes import (
    ACCUMULATE,
    ACCUMULATE_SUBSAMPLE,
    draws_real,
    pools,
    subsample_front,
    synthetic_count,
)
from ._streams import check_block, init_streams
from .kde_eval import (  # noqa: F401 - the originals and metrics are part of this interface
    ANC,
    BLOBS,
    BW,
    CENTERS_CHAIN,
    CIRCLES,
    GAUSSIAN,
    METRICS,
    MOONS,
    NLL,
    ORIGINALS,
    POINTS,
    REFERENCE_CHAIN,
    VAR,
    W2,
    W2_GAUSS,
    W2_NONE,
    W2_REF,
    _draw_original,
    _metrics,
    _variance,
    blob_centers,
    heldout_sample,
    metrics_of,
    ndtri,
    sample_original,
)

__all__ = [
    "BANDWIDTHS",
    "CENTERS_CHAIN",
    "METRICS",
    "ORIGINALS",
    "REFERENCE_CHAIN",
    "advance",
    "below",
    "below_half",
    "blob_centers",
    "init_chains",
    "metrics_of",
    "ndtri",
    "sample_original",
]

FIXED, SCOTT, SILVERMAN = range(3)
BANDWIDTHS = {"scott": SCOTT, "silverman": SILVERMAN}


@njit(**JIT)
def _bandwidth(rows, count, d, kind, value):
    """The bandwidth of the KDE of ``rows[:count]``: fixed, or Scott's or Silverman's rule."""
    if kind == FIXED:
        return value
    if count < 2:
        return 0.0
    if kind == SCOTT:
        f = count ** (-1.0 / (d + 4.0))
    else:
        f = (count * (d + 2.0) / 4.0) ** (-1.0 / (d + 4.0))
    return f * math.sqrt(_variance(rows, count, d, 1))


# --- draws of the KDE ---------------------------------------------------------------------


_MASK32 = np.uint64(0xFFFFFFFF)
_TWO32 = np.uint64(2**32)


@njit(**JIT, inline="always")
def below(bound, s0, s1):
    """Draw an integer uniform on ``[0, bound)`` exactly; return ``(j, s0, s1)``.

    Lemire's multiply-shift on the word's top 32 bits (``bound < 2^32``): ``j`` is the top
    half of ``x * bound`` and the rare words whose low half falls below ``2^32 mod bound``
    are redrawn, so no division runs on the common path (``_rng.integer_below`` takes two);
    larger bounds go to ``_rng.integer_below``.

    References:
        D. Lemire, "Fast random integer generation in an interval", ACM TOMACS 29(1), 2019.
    """
    b = np.uint64(bound)
    if b >= _TWO32:
        return _rng.integer_below(b, s0, s1)
    r, s0, s1 = _rng.next_u64(s0, s1)
    m = (r >> np.uint64(32)) * b
    low = m & _MASK32
    if low < b:
        threshold = (_TWO32 - b) % b
        while low < threshold:
            r, s0, s1 = _rng.next_u64(s0, s1)
            m = (r >> np.uint64(32)) * b
            low = m & _MASK32
    return m >> np.uint64(32), s0, s1


@njit(**JIT, inline="always")
def below_half(bound, spare, have, s0, s1):
    """:func:`below` on half words: ``x`` is the spare low half of the last word when there
    is one (``have``), else the top half of a new word, whose low half becomes the spare.

    Each half is 32 independent bits, so every integer is exactly uniform and a point's
    parent costs half a word. ``bound < 2^32``. Returns ``(j, spare, have, s0, s1)``.
    """
    b = np.uint64(bound)
    while True:
        if have:
            x = spare
            have = False
        else:
            r, s0, s1 = _rng.next_u64(s0, s1)
            x = r >> np.uint64(32)
            spare = r & _MASK32
            have = True
        m = x * b
        low = m & _MASK32
        if low >= b or low >= (_TWO32 - b) % b:
            return m >> np.uint64(32), spare, have, s0, s1


@njit(**JIT, inline="always")
def _draw_kde(src, count, d, scale, out, i, s0, s1):
    """One draw of the KDE of ``src[:count]`` into the row ``out[i]`` (its ancestor too)."""
    j, s0, s1 = below(count, s0, s1)
    k = np.int64(j)
    for q in range(d):
        z, s0, s1 = _rng.normal(s0, s1)
        out[i, q] = src[k, q] + scale * z
    out[i, d] = src[k, d]
    return s0, s1


@njit(**JIT)
def _log_kde(x, src, count, d, h, dist):
    """Log-density (up to the constant -log N - d/2 log 2 pi h^2) of the KDE at ``x``."""
    inv = 0.5 / (h * h)
    dmin = math.inf
    for i in range(count):
        s = 0.0
        for q in range(d):
            t = x[q] - src[i, q]
            s += t * t
        dist[i] = s
        dmin = min(dmin, s)
    acc = 0.0
    for i in range(count):
        acc += math.exp((dmin - dist[i]) * inv)
    return math.log(acc) - dmin * inv


@njit(**JIT)
def _sq(x, i, d):
    s = 0.0
    for q in range(d):
        s += x[i, q] * x[i, q]
    return s


@njit(**JIT)
def _curated(src, count, d, h, out, k, ops, cand, keys, dist, s0, s1):
    """Draw ``k`` kept synthetic rows into ``out[:k]`` under the operators ``ops``.

    The original of the ``interval``, ``soft``, ``top`` and ``loglik`` operators is
    N(0, I) (the configuration allows them for the Gaussian original only).

    Returns:
        ``(candidates, starved, s0, s1)`` as :func:`._curation.draw_kept`'s.
    """
    kind = int(ops[KIND])
    x = ops[STRENGTH]
    scale = ops[BIAS] * h
    if kind in (TOP, SELF_TOP):
        big = top_candidates(k, x)
        for i in range(big):
            s0, s1 = _draw_kde(src, count, d, scale, cand, i, s0, s1)
            # Most likely first: smallest |x|^2 under N(0, I), largest KDE density.
            if kind == TOP:
                keys[i] = _sq(cand, i, d)
            else:
                keys[i] = -_log_kde(cand[i], src, count, d, h, dist)
        order = np.argsort(keys[:big], kind="mergesort")
        for i in range(k):
            out[i] = cand[order[i]]
        return float(big), False, s0, s1
    best = int(ops[BEST_OF])
    if best > 1:
        for i in range(k):
            for b in range(best):
                s0, s1 = _draw_kde(src, count, d, scale, cand, b, s0, s1)
                if int(ops[REWARD]) == LOGLIK:
                    keys[b] = -0.5 * _sq(cand, b, d)
                else:
                    r = 0.0
                    for q in range(d):
                        r += ops[SLOPE + q] * cand[b, q]
                    keys[b] = r
            pick, s0, s1 = luce_pick_log(keys, best, s0, s1)
            out[i] = cand[pick]
        return float(k * best), False, s0, s1
    drawn = 0
    kept = 0
    cap = MAX_TRIES * k
    selects = kind in (SOFT, INTERVAL)
    while kept < k:
        s0, s1 = _draw_kde(src, count, d, scale, out, kept, s0, s1)
        drawn += 1
        ok = True
        if selects and drawn <= cap:
            r2 = _sq(out, kept, d)
            if kind == SOFT:
                u, s0, s1 = _rng.uniform(s0, s1)
                ok = u < math.exp(-0.5 * x * r2)
            else:
                ok = r2 <= x * x
        kept += ok
    return float(drawn), selects and drawn > cap, s0, s1


# Kept whole: the per-chain loop of every KDE run (one generation: the synthetic draws,
# the real share, the subsample, the bandwidth, the metrics where recorded).
@njit(**PJIT)
def _chains(rng, train, size, bw, t_start, t_end, slots, rec, n, regime, num_real, bw_kind,
            bw_value, orig_kind, params, pts, heldout, w2_kind, ref, ops, tally, rec_cost):  # fmt: skip
    num_chains = train.shape[0]
    d = train.shape[2] - 1
    curated = ops.shape[0] > 0
    synth_n = synthetic_count(regime, n, num_real)
    room = 1
    if curated:
        room = max(int(ops[BEST_OF]), 1)
        if int(ops[KIND]) in (TOP, SELF_TOP):
            room = max(room, top_candidates(synth_n, ops[STRENGTH]))
    for c in prange(num_chains):
        s0 = rng[c, 0]
        s1 = rng[c, 1]
        home = train[c]
        rows = home
        # The regimes without a pool draw each generation into the other of two buffers.
        own = np.empty((0 if pools(regime) else n, d + 1))
        flipped = False
        cand = np.empty((room, d + 1))
        keys = np.empty(room)
        dist = np.empty(rows.shape[0])
        seen = np.zeros(n, np.bool_)
        h = bw[c]
        for t in range(t_start, t_end):
            filled = size[c]
            # The current model's training rows: the pool, its subsample, or the last set.
            count = filled if regime == ACCUMULATE else min(filled, n)
            dst = rows[filled : filled + n] if pools(regime) else own[:synth_n]
            cost = 1.0
            if t == 0:  # model 0 is the original: generation 0 is real
                for i in range(dst.shape[0]):
                    s0, s1 = _draw_original(orig_kind, params, pts, dst, i, d, s0, s1)
                    dst[i, d] = filled + i
            elif curated and synth_n > 0:
                drawn, starved, s0, s1 = _curated(rows, count, d, h, dst, synth_n, ops, cand,
                                                  keys, dist, s0, s1)  # fmt: skip
                cost = drawn / synth_n
                tally[c, 0] += cost
                tally[c, 1] += starved
            else:
                # Two parents a word: the spare half lives within the generation only.
                spare, have = np.uint64(0), False
                for i in range(dst.shape[0]):
                    j, spare, have, s0, s1 = below_half(count, spare, have, s0, s1)
                    k = np.int64(j)
                    for q in range(d):
                        z, s0, s1 = _rng.normal(s0, s1)
                        dst[i, q] = rows[k, q] + h * z
                    dst[i, d] = rows[k, d]
                if curated:  # no synthetic draws: one candidate per sample
                    tally[c, 0] += 1.0
            if pools(regime):
                size[c] = filled + n
            else:
                if num_real > 0 and draws_real(regime, t):
                    # Fresh real points descend from no generation-0 point (-1); the kept
                    # share of keep-original is generation 0's own (its indices).
                    for i in range(synth_n, n):
                        s0, s1 = _draw_original(orig_kind, params, pts, own, i, d, s0, s1)
                        own[i, d] = i if t == 0 else -1.0
                elif num_real > 0:
                    own[synth_n:] = rows[synth_n:]
                rows, own = own, rows
                flipped = not flipped
                size[c] = n
            if regime == ACCUMULATE_SUBSAMPLE:
                s0, s1 = subsample_front(rows, size[c], n, s0, s1)
            count = size[c] if regime == ACCUMULATE else n
            h = _bandwidth(rows, count, d, bw_kind, bw_value)
            slot = slots[t - t_start]
            if slot >= 0:
                if curated:
                    rec_cost[c, slot] = cost
                _metrics(rows, count, d, n, h, heldout, w2_kind, ref, dist, seen, rec[c], slot)
        if flipped:
            home[:, :] = rows
        bw[c] = h
        rng[c, 0] = s0
        rng[c, 1] = s1


def init_chains(seed: int, chains: np.ndarray, num_samples: int, dim: int, capacity: int
                ) -> dict[str, np.ndarray]:  # fmt: skip
    """The state of chains at model 0 (the original): streams, empty rows, no bandwidth.

    Args:
        seed: the run's seed.
        chains: global chain indices ``(B,)``.
        num_samples: n.
        dim: d.
        capacity: rows per chain: n, or the pool's n T for the pooling regimes.

    Returns:
        ``rng`` uint64 ``(B, 3)``, ``train`` float64 ``(B, capacity, d + 1)`` (points and
        their ancestor), ``size`` int64 ``(B,)`` (rows filled), ``bw`` float64 ``(B,)``.
    """
    b = len(chains)
    return {
        "rng": init_streams(seed, chains),
        "train": np.zeros((b, max(capacity, num_samples), dim + 1)),
        "size": np.zeros(b, np.int64),
        "bw": np.zeros(b),
    }


# Long for its docstring and the checks of every array the compiled loop indexes unchecked.
def advance(
    state: dict[str, np.ndarray],
    t_start: int,
    t_end: int,
    slots: np.ndarray,
    rec: np.ndarray,
    *,
    num_samples: int,
    regime: int,
    num_real: int,
    bandwidth: int,
    bandwidth_value: float,
    original: int,
    params: np.ndarray,
    points: np.ndarray,
    heldout: np.ndarray,
    w2_kind: int,
    reference: np.ndarray | None = None,
    curation: np.ndarray | None = None,
    tally: np.ndarray | None = None,
    rec_cost: np.ndarray | None = None,
) -> None:
    """Advance KDE chains from model ``t_start`` to ``t_end`` in place.

    Args:
        state: :func:`init_chains`'s arrays, updated in place.
        t_start: the model the chains are at; ``t_end``: the model to stop at.
        slots: int64 ``(t_end - t_start,)``: the record column of model ``t_start + j + 1``,
            or -1.
        rec: float64 ``(B, len(METRICS), R)``, the metrics of the recorded models.
        num_samples: n.
        regime: a regime code of :mod:`._regimes`.
        num_real: real points per training set (fresh, keep-original).
        bandwidth: FIXED, SCOTT or SILVERMAN; ``bandwidth_value``: h when fixed.
        original: a code of :data:`ORIGINALS`; ``params`` float64 ``(3,)`` (noise, factor,
            cluster std) and ``points`` float64 ``(K, d)`` (blob centres, a user's points).
        heldout: float64 ``(H, d)``, the fixed held-out sample of the original.
        w2_kind: W2_NONE, W2_GAUSS or W2_REF; ``reference``: float64 ``(M,)`` sorted (W2_REF).
        curation, tally, rec_cost: the operators' vector (one slope per dimension),
            ``(B, 2)`` candidates per kept point and starved generations added up, ``(B, R)``
            candidates per kept point of the data each recorded model was fitted on; None
            for none. Sampling bias, best-of, interval, soft, top and self-top apply.

    Raises:
        ValueError: arrays or settings the compiled loop cannot take.
    """
    rng, train, size, bw = state["rng"], state["train"], state["size"], state["bw"]
    b = train.shape[0]
    d = train.shape[2] - 1
    n = int(num_samples)
    slots = check_block(rng, b, t_start, t_end, slots, rec.shape[2])
    if rec.shape[:2] != (b, len(METRICS)) or rec.dtype != np.float64:
        raise ValueError(f"rec must be float64 of shape ({b}, {len(METRICS)}, R)")
    if train.dtype != np.float64 or d < 1 or size.shape != (b,) or bw.shape != (b,):
        raise ValueError("train (B, rows, d + 1) float64, size (B,) and bw (B,) disagree")
    if n < 2 or not 0 <= num_real <= n:
        raise ValueError("need n >= 2 and 0 <= num_real <= n")
    if pools(regime) and (train.shape[1] < n * t_end or num_real):
        raise ValueError("the pooling regimes need n * t_end rows per chain and no real share")
    if train.shape[1] >= 2**32:
        raise ValueError("at most 2^32 - 1 rows per chain (the parents are 32-bit draws)")
    if not pools(regime) and train.shape[1] != n:
        raise ValueError("the regimes without a pool hold n rows per chain")
    if b and t_start > 0 and not np.all(size == (n * t_start if pools(regime) else n)):
        raise ValueError("size does not match t_start")
    if bandwidth not in (FIXED, SCOTT, SILVERMAN) or (
        bandwidth == FIXED and not (math.isfinite(bandwidth_value) and bandwidth_value > 0)
    ):
        raise ValueError("bandwidth must be FIXED with h > 0, SCOTT or SILVERMAN")
    if original not in ORIGINALS.values():
        raise ValueError(f"unknown original code {original}")
    pts = np.ascontiguousarray(points, np.float64)
    if original in (BLOBS, POINTS) and (pts.ndim != 2 or pts.shape[0] < 1 or pts.shape[1] != d):
        raise ValueError("blobs and points need points (K, d)")
    if original in (MOONS, CIRCLES) and d != 2:
        raise ValueError("moons and circles are 2-dimensional")
    pts = pts.reshape(-1, d) if pts.size else np.zeros((1, d))
    params = np.ascontiguousarray(params, np.float64)
    if params.shape != (3,):
        raise ValueError("params must be float64 (3,): noise, factor, cluster std")
    held = np.ascontiguousarray(heldout, np.float64)
    if held.ndim != 2 or held.shape[1] != d or held.shape[0] < 1:
        raise ValueError("heldout must be (H, d) with H >= 1")
    if w2_kind == W2_REF and (reference is None or reference.ndim != 1 or reference.size < 1):
        raise ValueError("W2 against a reference needs a sorted reference (M,)")
    if w2_kind != W2_NONE and d != 1:
        raise ValueError("W2 is measured in 1-D only")
    ref = np.zeros(1) if reference is None else np.ascontiguousarray(reference, np.float64)
    ops, tally, rec_cost = curation_arrays(curation, tally, rec_cost, b, rec.shape[2])
    if ops.size and ops.shape[0] != 6 + d:
        raise ValueError("KDE curation takes one slope per dimension")
    _chains(rng, train, size, bw, int(t_start), int(t_end), slots, rec, n, int(regime),
            int(num_real), int(bandwidth), float(bandwidth_value), int(original), params, pts,
            held, int(w2_kind), ref, ops, tally, rec_cost)  # fmt: skip
