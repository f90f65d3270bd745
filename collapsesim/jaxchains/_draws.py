"""Counter-based draws for the JAX chains: every variate a function of (chain, generation, slot).

A chain's key (:func:`collapsesim.keys.chain_keys`) gives two 64-bit words ``(k_lo, k_hi)``;
the word of counter ``c`` is ``mix64(mix64(k_lo + c * G) ^ k_hi)`` with ``mix64`` the
splitmix64 finaliser and ``G`` the golden-ratio increment, and a generation's counters are
``t * 2**16 + slot``. Two chains could share a run of words only if their ``k_hi`` agreed
(2^-64 a pair). One word costs a few integer operations, against the twenty rounds of
threefry that ``jax.random`` spends on two 32-bit words; this is what makes the
sufficient-statistic chain cheap on CPU and GPU alike.

The group statistics of k standard normals are drawn exactly in distribution: the mean
``z / sqrt(k)`` from one word, the sum of squared deviations ``2 Gamma((k - 1) / 2)`` by
Marsaglia and Tsang's method from one more. Its acceptance uniform is the second word's
bits that the normal did not use (24 in float32, 11 in float64); when those bits cannot
decide (with probability 2^-24 or 2^-11) or the try is rejected (about c^2 / 4 of tries,
c = 1 / sqrt(9 a - 3): 3e-4 at n = 1000), the lane goes to an exact fallback that only the
pending lanes pay for: they are gathered (``jnp.nonzero`` with a fixed capacity), given
fresh words from their own try counter, and scattered back. Normals are
``sqrt(2) erfinv(u)`` of a uniform on odd multiples of 2^-24 (float32) or 2^-53 (float64),
as ``jax.random.normal`` does with its bits.

Every function here runs with 64-bit types enabled (the words are uint64); float32 runs
keep their floats float32.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

__all__ = ["SLOT_REAL", "Lanes", "chain_words", "group_stats", "mix64", "word"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_HI_TAG = np.uint64(0x3C6EF372FE94F82B)
SLOT_BITS = 16
SLOT_REAL = 2  # the real-data group's slots: 2 and 3 (the model's group: 0 and 1)
_SLOT_RETRY = 16  # fallback words of retry j: slots 16 + 4 j and 18 + 4 j (real group: + 1)
_MAX_TRIES = (2**SLOT_BITS - _SLOT_RETRY) // 4  # per group; each a rejection of ~c^2 / 4


def _jnp() -> Any:
    import jax.numpy as jnp

    return jnp


def mix64(z: Any) -> Any:
    """splitmix64's finaliser of uint64 words (as ``collapsesim.kernels._rng.mix64``)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def chain_words(keys: Any) -> tuple[Any, Any]:
    """``(k_lo, k_hi)`` uint64 of typed JAX chain keys (any shape)."""
    import jax

    data = jax.random.key_data(keys).astype(np.uint64)
    k = (data[..., 0] << np.uint64(32)) | data[..., 1]
    return mix64(k), mix64(k ^ _HI_TAG)


def word(k_lo: Any, k_hi: Any, counter: Any) -> Any:
    """The uint64 word of ``counter`` under a chain's key words (broadcasting)."""
    return mix64(mix64(k_lo + counter.astype(np.uint64) * _GOLDEN) ^ k_hi)


def _mantissa(dtype: Any) -> int:
    return 24 if np.dtype(dtype) == np.float32 else 53


def normal(w: Any, dtype: Any) -> Any:
    """N(0, 1) from the top bits of uint64 words: ``sqrt(2) erfinv(u)``, u odd multiples."""
    import jax

    bits = _mantissa(dtype)
    m = (w >> np.uint64(64 - bits)).astype(np.int64)
    u = (2 * m + 1 - 2**bits).astype(dtype) * dtype.type(2.0**-bits)
    return dtype.type(math.sqrt(2.0)) * jax.scipy.special.erfinv(u)


def uniform(w: Any, dtype: Any) -> Any:
    """A uniform on (0, 1) from the top bits of uint64 words (odd multiples of 2^-bits)."""
    bits = _mantissa(dtype)
    m = (w >> np.uint64(64 - bits)).astype(np.int64)
    return (2 * m + 1).astype(dtype) * dtype.type(2.0 ** -(bits + 1))


def _spare(w: Any, dtype: Any) -> tuple[Any, int]:
    """The bits of a word below those :func:`normal` used (at most 24), and their count."""
    bits = min(64 - _mantissa(dtype), 24)
    return (w & np.uint64(2**bits - 1)).astype(np.int64), bits


# The largest |z| :func:`normal` returns (from the uniform nearest 1), with a margin.
_MAX_NORMAL = {"float32": 5.5, "float64": 8.5}


def _log_accept(x: Any, d: float, c: float, dtype: Any) -> Any:
    """Marsaglia-Tsang's log acceptance bound h(x) = d (3 log1p(y) - 3y + 1.5y^2 - y^3), y = c x.

    The cubic's terms cancel against log1p's series; below |y| = 1/4 the series from y^4
    on is summed instead (to the dtype's precision), elsewhere the formula. -inf where
    1 + y <= 0 (no gamma value there).
    """
    jnp = _jnp()
    y = dtype.type(c) * x
    terms = 12 if np.dtype(dtype) == np.float32 else 26
    series = jnp.zeros_like(y)
    for k in range(terms + 3, 3, -1):  # Horner: sum_k>=4 3 (-1)^(k+1) y^(k-4) / k
        series = series * y + dtype.type(3.0 * (-1) ** (k + 1) / k)
    small = series * (y * y) * (y * y)
    if c * _MAX_NORMAL[np.dtype(dtype).name] < 0.25:  # large shapes: |y| < 1/4 always
        return dtype.type(d) * small
    safe = jnp.where(y > -1, y, jnp.zeros_like(y))
    direct = 3 * jnp.log1p(safe) - 3 * safe + dtype.type(1.5) * safe * safe - safe * safe * safe
    inner = jnp.where(jnp.abs(y) < 0.25, small, direct)
    return jnp.where(y > -1, dtype.type(d) * inner, dtype.type(-np.inf))


def _rejection(a: float) -> float:
    """The probability that one Marsaglia-Tsang try for Gamma(a), a >= 1, is rejected."""
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    x = np.linspace(-12.0, 12.0, 48001)
    y = c * x
    ok = y > -1
    h = np.full_like(x, -np.inf)
    yy = y[ok]
    h[ok] = d * (3 * np.log1p(yy) - 3 * yy + 1.5 * yy * yy - yy**3)
    dens = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return float(max(0.0, 1.0 - np.sum(dens * np.exp(np.minimum(h, 0.0))) * (x[1] - x[0])))


_ROW = 32  # lanes per row of the fallback's compaction


def _capacity(lanes: int, a: float, dtype: Any) -> int:
    """Rows of :data:`_ROW` lanes gathered per fallback round: a few times the expected
    number holding a pending lane, and 64."""
    p = _rejection(a) + 2.0 ** -_spare_bits(dtype)
    rows = lanes // _ROW
    expected = rows * (1.0 - (1.0 - p) ** _ROW)
    return int(min(rows, 64 + math.ceil(4 * expected)))


def _spare_bits(dtype: Any) -> int:
    return min(64 - _mantissa(dtype), 24)


def group_stats(k_lo: Any, k_hi: Any, t: Any, k: int, slot: int, dtype: Any) -> tuple[Any, Any]:
    """``(zbar, M2)`` of k standard normals for each (chain, generation), exact in distribution.

    Args:
        k_lo, k_hi: the chains' key words, ``(C,)``.
        t: the generations, ``(G,)`` (uint64 or integers).
        k: the group size (static).
        slot: the group's first slot (0 for the model's group, :data:`SLOT_REAL` for the
            real data's); the group reads slots ``slot`` and ``slot + 1`` and its
            fallback words from ``16 + 4 j`` and ``18 + 4 j`` for its j-th retry
            (``+ 1`` for the real group's, so the two groups never share a word).
        dtype: float32 or float64.

    Returns:
        ``zbar`` (the mean, N(0, 1/k)) and ``M2`` (chi-square with k - 1 degrees of
        freedom), each ``(C, G)``.
    """
    jnp = _jnp()
    dtype = np.dtype(dtype)
    lanes = Lanes(k_lo, k_hi, jnp.asarray(t).astype(np.uint64) << np.uint64(SLOT_BITS))
    shape = (k_lo.shape[0], lanes.base.shape[0])
    if k <= 0:
        return jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)
    lo, hi, base = k_lo[:, None], k_hi[:, None], lanes.base[None, :]
    zbar = normal(word(lo, hi, base + np.uint64(slot)), dtype) * dtype.type(1.0 / math.sqrt(k))
    if k == 1:
        return zbar, jnp.zeros(shape, dtype)
    x, spare, bits = _first_try(word(lo, hi, base + np.uint64(slot + 1)), dtype)
    if k == 2:
        return zbar, x * x  # chi-square with one degree of freedom
    a = (k - 1) / 2.0
    d, c = a - 1.0 / 3.0, 1.0 / math.sqrt(9.0 * (a - 1.0 / 3.0))
    bound = jnp.exp(_log_accept(x, d, c, dtype))
    scale = dtype.type(2.0**-bits)
    accept = (spare + 1).astype(dtype) * scale <= bound
    undecided = spare.astype(dtype) * scale < bound  # where not accepted; else rejected
    # One array out of the fused draw: the value, or a mark for the fallback (-1
    # rejected, -2 undecided); XLA would recompute the draw for each extra output.
    gamma = jnp.where(accept, dtype.type(d) * (1 + dtype.type(c) * x) ** 3,
                      jnp.where(undecided, dtype.type(_UNDECIDED), dtype.type(_REJECTED)))  # fmt: skip
    return zbar, 2 * _fallback(gamma, lanes, slot, d, c, dtype)


class Lanes(NamedTuple):
    """Where lane (i, j) of a block reads its words: chain i's key words, generation j's
    counter base (``t << 16``)."""

    k_lo: Any
    k_hi: Any
    base: Any


def _first_try(w: Any, dtype: Any) -> tuple[Any, Any, int]:
    """The first try's normal, the word's spare bits below it, and their count."""
    spare, bits = _spare(w, dtype)
    return normal(w, dtype), spare, bits


_REJECTED, _UNDECIDED = -1.0, -2.0


def _fallback(gamma: Any, lanes: Lanes, slot: int, d: float, c: float, dtype: Any) -> Any:
    """Finish the lanes whose first try did not accept (marked negative), exactly.

    An undecided lane keeps its try and draws the rest of its uniform, ``(K + V) / 2^bits``
    with V fresh (given its first ``bits`` bits ``K``, the uniform's rest is uniform); a
    rejected one tries again with a fresh normal and uniform. Each lane counts its own
    tries, so its words never depend on other lanes. The ``(C, G)`` lanes go in rows of
    :data:`_ROW`; a round gathers up to a fixed number of rows holding a pending lane
    (``jnp.nonzero`` over the rows, a 32nd of the lanes), rebuilds their first try from
    its word, settles every lane of them and scatters the rows back; rounds repeat while
    any lane is pending (as a rule there is one).
    """
    import jax

    jnp = _jnp()
    shape = gamma.shape
    n = int(np.prod(shape))
    width = shape[1]
    pad = (-n) % _ROW
    rows = (n + pad) // _ROW

    def as_rows(v: Any) -> Any:
        v = v.reshape(-1)
        if pad:
            v = jnp.concatenate([v, jnp.zeros((pad,), v.dtype)])
        return v.reshape(rows, _ROW)

    gamma = as_rows(gamma)
    cap = _capacity(rows * _ROW, d + 1.0 / 3.0, dtype)
    offset = np.uint64(_SLOT_RETRY + (1 if slot == SLOT_REAL else 0))

    def settle(g: Any, pend: Any, und: Any, lane: Any) -> Any:
        """Every pending lane of the gathered rows to acceptance."""
        lane = jnp.minimum(lane, n - 1)  # padding lanes are never pending
        lo, hi = lanes.k_lo[lane // width], lanes.k_hi[lane // width]
        b = lanes.base[lane % width]
        x, sp, bits = _first_try(word(lo, hi, b + np.uint64(slot + 1)), dtype)

        def body(carry: Any) -> Any:
            g, pend, und, xs, tries = carry
            j = tries.astype(np.uint64)
            ctr = b + offset + np.uint64(4) * j  # retry j: slots 16 + 4 j and 18 + 4 j
            w1 = word(lo, hi, ctr)
            w2 = word(lo, hi, ctr + np.uint64(2))
            # Undecided: the same x, the rest of its uniform from w1.
            u_rest = (sp.astype(dtype) + uniform(w1, dtype)) * dtype.type(2.0**-bits)
            # Rejected: a fresh try, x from w1 and u from w2.
            x_new = jnp.where(und, xs, normal(w1, dtype))
            u = jnp.where(und, u_rest, uniform(w2, dtype))
            ok = jnp.log(u) < _log_accept(x_new, d, c, dtype)
            give_up = j >= np.uint64(_MAX_TRIES - 1)  # never reached: p^16000
            value = jnp.where(ok, dtype.type(d) * (1 + dtype.type(c) * x_new) ** 3, np.nan)
            g = jnp.where(pend & (ok | give_up), value.astype(dtype), g)
            return (g, pend & ~(ok | give_up), und & ~pend, jnp.where(pend, x_new, xs),
                    jnp.where(pend, tries + 1, tries))  # fmt: skip

        tries = jnp.zeros(g.shape, np.int32)
        g, *_ = jax.lax.while_loop(lambda c_: jnp.any(c_[1]), body, (g, pend, und, x, tries))
        return g

    def round_(gamma: Any) -> Any:
        pending = gamma < 0
        (idx,) = jnp.nonzero(jnp.any(pending, axis=1), size=cap, fill_value=rows)
        take = jnp.minimum(idx, rows - 1)
        lane = take[:, None] * _ROW + jnp.arange(_ROW)[None, :]
        sub = gamma[take]
        live = (idx < rows)[:, None]
        g = settle(sub, (sub < 0) & live, sub == dtype.type(_UNDECIDED), lane)
        return gamma.at[idx].set(g, mode="drop")

    # As a rule one round settles every lane; more only when more rows than ``cap`` wait.
    gamma = jax.lax.while_loop(lambda g: jnp.any(g < 0), round_, round_(gamma))
    return gamma.reshape(-1)[:n].reshape(shape)
