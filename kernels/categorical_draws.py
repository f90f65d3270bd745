"""Draws of token chains: uniform picks of training tokens, alias tables, decoding.

Where the model is the plain empirical distribution a draw from it is a uniformly chosen
token of the training set (32-bit bounded integers by Lemire's exact rejection method,
two per random word); otherwise n tokens are drawn from a Walker/Vose alias table of the
decoded model (temperature, then top-k, then top-p).

References:
    A. J. Walker, "An efficient method for generating discrete random variables with
    general distributions", ACM TOMS 3(3), 1977; M. D. Vose, "A linear algorithm for
    generating random numbers with a given distribution", IEEE TSE 17(9), 1991.
    D. Lemire, "Fast random integer generation in an interval", ACM TOMACS 29(1), 2019.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import _rng
from ._flags import JIT

_U = np.uint64
_LOW32 = _U(0xFFFFFFFF)


@njit(**JIT, inline="always")
def _below32(bound, half):
    """Map a 32-bit random ``half`` to [0, bound) by Lemire's multiply-shift.

    Returns ``(value, ok)``; ``ok`` is False for the few halves that must be rejected to
    keep the result exactly uniform (the caller draws again).
    """
    m = half * bound
    low = m & _LOW32
    if low < bound:
        threshold = (_U(0x100000000) - bound) % bound
        if low < threshold:
            return _U(0), False
    return m >> _U(32), True


@njit(**JIT)
def _uniform_picks(src, size, dst, count, s0, s1):
    """``dst[:count]`` = tokens of ``src[:size]`` chosen uniformly with replacement."""
    bound = _U(size)
    i = 0
    while i < count:
        r, s0, s1 = _rng.next_u64(s0, s1)
        v, ok = _below32(bound, r >> _U(32))
        if ok:
            dst[i] = src[np.int64(v)]
            i += 1
        if i < count:
            v, ok = _below32(bound, r & _LOW32)
            if ok:
                dst[i] = src[np.int64(v)]
                i += 1
    return s0, s1


@njit(**JIT)
def _build_alias(q, prob, alias, small, large):
    """Vose's alias table of the distribution ``q`` (K,), which sums to 1."""
    k = q.shape[0]
    ns = 0
    nl = 0
    for i in range(k):
        prob[i] = q[i] * k
        if prob[i] < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        g = large[nl - 1]
        alias[s] = g
        prob[g] = (prob[g] + prob[s]) - 1.0
        if prob[g] < 1.0:
            nl -= 1
            small[ns] = g
            ns += 1
    while nl > 0:
        nl -= 1
        prob[large[nl]] = 1.0
        alias[large[nl]] = large[nl]
    while ns > 0:  # rounding leftovers
        ns -= 1
        prob[small[ns]] = 1.0
        alias[small[ns]] = small[ns]


@njit(**JIT)
def _alias_draws(prob, alias, dst, count, s0, s1):
    """``dst[:count]`` = independent draws from an alias table."""
    bound = _U(prob.shape[0])
    i = 0
    while i < count:
        r, s0, s1 = _rng.next_u64(s0, s1)
        col, ok = _below32(bound, r >> _U(32))
        if not ok:
            continue
        u, s0, s1 = _rng.uniform(s0, s1)
        j = np.int64(col)
        dst[i] = j if u < prob[j] else alias[j]
        i += 1
    return s0, s1


@njit(**JIT)
def _decode(p, temperature, top_k, top_p, q, order):
    """Decoding transform of ``p`` into ``q``: temperature, then top-k, then top-p.

    ``top_k <= 0`` and ``top_p >= 1`` switch the truncations off. Ties in the ranking
    are broken by the lower category index (a stable sort), so top-k keeps exactly
    ``top_k`` categories.
    """
    k = p.shape[0]
    if temperature == 1.0:
        for i in range(k):
            q[i] = p[i]
    else:
        # p^(1/tau), scaled by the largest term against under- and overflow.
        inv = 1.0 / temperature
        big = 0.0
        for i in range(k):
            big = max(big, p[i])
        for i in range(k):
            q[i] = (p[i] / big) ** inv if p[i] > 0.0 else 0.0
    truncate = (0 < top_k < k) or top_p < 1.0
    if truncate:
        order[:] = np.argsort(-q, kind="mergesort")
        keep = k
        if 0 < top_k < k:
            keep = top_k
        if top_p < 1.0:
            total = 0.0
            for r in range(keep):
                total += q[order[r]]
            acc = 0.0
            for r in range(keep):
                acc += q[order[r]]
                if acc >= top_p * total:
                    keep = r + 1
                    break
        for r in range(keep, k):
            q[order[r]] = 0.0
    s = 0.0
    for i in range(k):
        s += q[i]
    for i in range(k):
        q[i] /= s


def alias_table(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the alias table ``(prob, alias)`` of a distribution ``q`` (K,)."""
    q = np.ascontiguousarray(q, np.float64)
    k = q.shape[0]
    prob = np.empty(k)
    alias = np.empty(k, np.int64)
    _build_alias(q / q.sum(), prob, alias, np.empty(k, np.int64), np.empty(k, np.int64))
    return prob, alias


def decode(
    p: np.ndarray, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> np.ndarray:
    """Return the decoding transform of ``p``: temperature, then top-k, then top-p."""
    p = np.ascontiguousarray(p, np.float64)
    q = np.empty_like(p)
    _decode(p, float(temperature), int(top_k), float(top_p), q, np.empty(p.shape[0], np.int64))
    return q


def sample_counts(q: np.ndarray, num: int, seed: int, chain: int) -> np.ndarray:
    """Draw ``num`` tokens from ``q`` with chain ``chain``'s stream; return their counts."""
    prob, alias = alias_table(q)
    s0, s1 = _rng.stream_state(np.uint64(seed), np.uint64(chain))
    out = np.empty(num, np.int32)
    _alias_draws(prob, alias, out, num, np.uint64(s0), np.uint64(s1))
    return np.bincount(out, minlength=len(q)).astype(np.int64)
