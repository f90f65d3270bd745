"""Per-chain random streams for the Numba kernels.

Every chain owns one xoroshiro128++ stream (Blackman and Vigna, 2019) whose
128-bit starting state is a hash of ``(seed, chain)``; neighbouring chains
therefore get unrelated streams, which ``seed + chain`` would not guarantee.
A chain's draws depend on nothing but its own stream, so its trajectory is the
same whatever the thread count and however the chains are split into batches
or machines. The state is two ``uint64`` words that the kernels carry between
calls (and that a checkpoint stores), so a run resumed from a checkpoint
continues the very same streams.

Samplers take the state words and return ``(value, s0, s1)``: after inlining
LLVM keeps the state in registers, which an array argument would prevent.

References:
    D. Blackman and S. Vigna, "Scrambled linear pseudorandom number
    generators", ACM TOMS 47(4), 2021 (xoroshiro128++).
    G. Marsaglia and W. W. Tsang, "The ziggurat method for generating random
    variables", J. Stat. Softw. 5(8), 2000 (normal, 256 layers as in NumPy).
    G. Marsaglia and W. W. Tsang, "A simple method for generating gamma
    variables", ACM TOMS 26(3), 2000 (gamma and chi-square).
    S. Vigna, splitmix64 (the finaliser used to hash seeds).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._flags import JIT

_U = np.uint64
_GOLDEN = _U(0x9E3779B97F4A7C15)
_MIX1 = _U(0xBF58476D1CE4E5B9)
_MIX2 = _U(0x94D049BB133111EB)
_STREAM_TAG = _U(0x6A09E667F3BCC909)  # keeps (seed, chain) hashes apart from other uses
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Build the 256-layer ziggurat tables for 52-bit magnitudes.

    Layer 0 is the base strip with the tail; layer i >= 1 is the rectangle of
    width ``x_i`` between heights ``f(x_i)`` and ``f(x_{i-1})``.
    """
    m1 = 2.0**52
    r = 3.6541528853610088  # right edge of the base layer
    v = 4.92867323399e-3  # area of each layer
    ki = np.zeros(256, np.int64)
    wi = np.zeros(256)
    fi = np.zeros(256)
    dn = tn = r
    q = v / math.exp(-0.5 * dn * dn)
    ki[0] = int((dn / q) * m1)
    ki[1] = 0
    wi[0] = q / m1
    wi[255] = dn / m1
    fi[0] = 1.0
    fi[255] = math.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(v / dn + math.exp(-0.5 * dn * dn)))
        ki[i + 1] = int((dn / tn) * m1)
        tn = dn
        fi[i] = math.exp(-0.5 * dn * dn)
        wi[i] = dn / m1
    return ki, wi, fi


_KI, _WI, _FI = _ziggurat_tables()
# (threshold, width) per layer side by side: one cache line serves both loads.
_KW = np.ascontiguousarray(np.stack([_KI.astype(np.float64), _WI], axis=1))
_ZIG_R = 3.6541528853610088
_ZIG_INV_R = 1.0 / _ZIG_R


@njit(**JIT)
def mix64(z: np.uint64) -> np.uint64:
    """Return the splitmix64 finaliser of ``z`` (a bijection on 64-bit words)."""
    z = (z ^ (z >> _U(30))) * _MIX1
    z = (z ^ (z >> _U(27))) * _MIX2
    return z ^ (z >> _U(31))


@njit(**JIT)
def stream_state(seed: np.uint64, chain: np.uint64) -> tuple[np.uint64, np.uint64]:
    """Return the starting xoroshiro128++ state of chain ``chain`` of ``seed``.

    Args:
        seed: the run's seed, any 64-bit unsigned integer.
        chain: the global chain index.

    Returns:
        The two state words, never both zero.
    """
    h = mix64(mix64(seed ^ _STREAM_TAG) + mix64(chain + _GOLDEN))
    s0 = mix64(h + _GOLDEN)
    s1 = mix64(h + _GOLDEN + _GOLDEN)
    if s0 == _U(0) and s1 == _U(0):
        s1 = _GOLDEN
    return s0, s1


@njit(**JIT, inline="always")
def _rotl(x: np.uint64, k: np.uint64) -> np.uint64:
    return (x << k) | (x >> (_U(64) - k))


@njit(**JIT, inline="always")
def next_u64(s0: np.uint64, s1: np.uint64) -> tuple[np.uint64, np.uint64, np.uint64]:
    """Advance xoroshiro128++ once; return ``(output, s0, s1)``."""
    out = _rotl(s0 + s1, _U(17)) + s0
    s1 ^= s0
    s0 = _rotl(s0, _U(49)) ^ s1 ^ (s1 << _U(21))
    s1 = _rotl(s1, _U(28))
    return out, s0, s1


@njit(**JIT, inline="always")
def uniform(s0: np.uint64, s1: np.uint64) -> tuple[float, np.uint64, np.uint64]:
    """Draw U[0, 1) with 53 random bits; return ``(u, s0, s1)``."""
    r, s0, s1 = next_u64(s0, s1)
    return float(np.int64(r >> _U(11))) * _TWO_M53, s0, s1


@njit(**JIT)
def integer_below(
    bound: np.uint64, s0: np.uint64, s1: np.uint64
) -> tuple[np.uint64, np.uint64, np.uint64]:
    """Draw an integer uniform on ``[0, bound)`` exactly (rejection, no modulo bias)."""
    threshold = (_U(0) - bound) % bound  # 2**64 mod bound
    while True:
        r, s0, s1 = next_u64(s0, s1)
        if r >= threshold:
            return r % bound, s0, s1


@njit(**JIT, inline="always")
def _zig_word(r: np.uint64) -> tuple[np.int64, float, float, np.int64]:
    """Split a word: layer (low 8 bits), signed magnitude (top 53), spare bits 8-10."""
    idx = np.int64(r & _U(0xFF))
    j = float(np.int64(r) >> np.int64(11))  # signed, |j| <= 2**52: exact in a double
    return idx, j, j * _KW[idx, 1], np.int64((r >> _U(8)) & _U(7))


@njit(**JIT)
def _normal_slow(
    idx: np.int64, j: float, x: float, spare: np.int64, s0: np.uint64, s1: np.uint64
) -> tuple[float, np.int64, np.uint64, np.uint64]:
    # The rare rest of the ziggurat (about 1.2% of draws), out of line so that the
    # inlined fast path stays small: the base layer's tail (Marsaglia 1964), the
    # wedges, and fresh words after a rejection.
    while True:
        if idx == 0:
            while True:
                u1, s0, s1 = uniform(s0, s1)
                u2, s0, s1 = uniform(s0, s1)
                xx = -_ZIG_INV_R * math.log1p(-u1)
                yy = -math.log1p(-u2)
                if yy + yy > xx * xx:
                    return (-(_ZIG_R + xx) if j < 0.0 else _ZIG_R + xx), spare, s0, s1
        u, s0, s1 = uniform(s0, s1)
        if (_FI[idx - 1] - _FI[idx]) * u + _FI[idx] < math.exp(-0.5 * x * x):
            return x, spare, s0, s1
        r, s0, s1 = next_u64(s0, s1)
        idx, j, x, spare = _zig_word(r)
        if abs(j) < _KW[idx, 0]:
            return x, spare, s0, s1


@njit(**JIT, inline="always")
def normal_bits(s0: np.uint64, s1: np.uint64) -> tuple[float, np.int64, np.uint64, np.uint64]:
    """Draw N(0, 1) and 3 spare random bits; return ``(z, bits, s0, s1)``.

    The 256-layer ziggurat takes one 64-bit word per draw on the fast path (about
    98.8% of draws): the low 8 bits pick the layer and the top 53 bits give the
    signed magnitude, leaving bits 8-10 free. Those three are independent of ``z``
    (whichever path accepted it), so callers may use them as random bits.
    Inlined into callers: a call per draw would double its cost.
    """
    r, s0, s1 = next_u64(s0, s1)
    idx, j, x, spare = _zig_word(r)
    if abs(j) < _KW[idx, 0]:
        return x, spare, s0, s1
    return _normal_slow(idx, j, x, spare, s0, s1)


@njit(**JIT, inline="always")
def normal(s0: np.uint64, s1: np.uint64) -> tuple[float, np.uint64, np.uint64]:
    """Draw N(0, 1) by the 256-layer ziggurat; return ``(z, s0, s1)``."""
    x, _, s0, s1 = normal_bits(s0, s1)
    return x, s0, s1


_KEYED_TAG = _U(0xBB67AE8584CAA73B)


@njit(**JIT, inline="always")
def keyed_normal(key: np.uint64, counter: np.uint64) -> float:
    """Return N(0, 1) as a function of ``(key, counter)`` alone (a counter-based draw).

    The word is splitmix64's output number ``counter`` from state ``key``; the ziggurat
    takes it as :func:`normal_bits` takes a stream's word, and the rare slow path reads a
    xoroshiro128++ stream hashed from the same pair. Callers can draw the values of a
    random structure in any order, or only some of them, and always read the same ones.
    """
    h = key + counter * _GOLDEN
    idx, j, x, spare = _zig_word(mix64(h))
    if abs(j) < _KW[idx, 0]:
        return x
    s0 = mix64(h ^ _KEYED_TAG)
    s1 = mix64(s0 + _GOLDEN)
    if s0 == _U(0) and s1 == _U(0):
        s1 = _GOLDEN
    z, _, _, _ = _normal_slow(idx, j, x, spare, s0, s1)
    return z


# Tight squeeze for Marsaglia-Tsang: with y = c x the log acceptance probability is
# h = g(y) / (9 c^2), g(y) = 4.5 y^2 + 1 - (1 + y)^3 + 3 log(1 + y) = -0.75 y^4 + 0.6 y^5 - ...
# On |y| <= 1/2, -g(y) / (9 y^4) is largest at y = -1/2 (its series has positive terms
# only for y < 0), where it equals 0.141229...; so exp(h) >= 1 + h >= 1 - K c^2 x^4 with
# K below. It is tighter than Marsaglia and Tsang's 1 - 0.0331 x^4 whenever a >= 0.81,
# and for the large shapes of chi2(n - 1) it accepts all but about c^2 / 4 of draws.
_SQUEEZE_K = 0.14123
_SQUEEZE_Y = 0.5


@njit(**JIT)
def _gamma_slow(
    d: float, c: float, extra: np.int64, x: float, b: np.int64, s0: np.uint64, s1: np.uint64
) -> tuple[float, np.uint64, np.uint64]:
    # Everything but the first attempt's quick accept, out of line: finish the attempt
    # with normal ``x`` and spare bits ``b``, then loop over fresh attempts. Returns the
    # accepted w = 1 + c x; the variate is d w^3.
    k = _SQUEEZE_K * c * c
    while True:
        cx = c * x
        w = 1.0 + cx
        if w > 0.0:
            v = w * w * w
            x2 = x * x
            if -_SQUEEZE_Y <= cx <= _SQUEEZE_Y:
                squeeze = 1.0 - k * x2 * x2
            else:
                squeeze = 1.0 - 0.0331 * x2 * x2
            if extra >= 0:
                top = float(8 * b + extra)
                width = 1.0 / 64.0
            else:
                top = float(b)
                width = 0.125
            if (top + 1.0) * width <= squeeze:
                return w, s0, s1
            f, s0, s1 = uniform(s0, s1)
            u = (top + f) * width
            extra = np.int64(-1)  # looked at: a further attempt needs fresh bits
            if u < squeeze:
                return w, s0, s1
            if u == 0.0 or math.log(u) < 0.5 * x2 + d * (1.0 - v + math.log(v)):
                return w, s0, s1
        x, b, s0, s1 = normal_bits(s0, s1)


@njit(**JIT, inline="always")
def mt_constants(a: float) -> tuple[float, float, float]:
    """Return ``(d, c, x2max)`` for Gamma(a), ``a >= 1``: compute once, outside hot loops.

    ``d = a - 1/3`` and ``c = 1/sqrt(9 d)`` are Marsaglia and Tsang's; ``x2max`` bounds
    the normal's square for the quick accept of :func:`gamma_mt_root`: within it
    ``|c x| <= 1/2`` and ``K c^2 x^4 <= 1/64``, so any ``u < 63/64`` passes the squeeze.
    """
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    x2max = min(1.0 / (8.0 * c * math.sqrt(_SQUEEZE_K)), _SQUEEZE_Y**2 / (c * c))
    return d, c, x2max


@njit(**JIT, inline="always")
def gamma_mt_root(
    d: float, c: float, x2max: float, extra: np.int64, s0: np.uint64, s1: np.uint64
) -> tuple[float, np.uint64, np.uint64]:
    """Draw Gamma(a) for ``a >= 1`` as ``w``, the variate being ``d w^3``; see :func:`gamma_mt`.

    Callers that need the variate's square root, ``sqrt(d) w sqrt(w)``, can start the
    square root as soon as ``w`` is known instead of after the cube. The quick accept
    needs two comparisons: the known bits of ``u`` are not all ones (so ``u < 63/64``,
    or ``u < 7/8`` with ``extra = -1``, where ``b & extra == b``) and ``x^2 <= x2max``.
    """
    x, b, s0, s1 = normal_bits(s0, s1)
    if x * x <= x2max and (b & extra) != 7:
        return 1.0 + c * x, s0, s1
    return _gamma_slow(d, c, extra, x, b, s0, s1)


@njit(**JIT, inline="always")
def gamma_mt(
    d: float, c: float, x2max: float, extra: np.int64, s0: np.uint64, s1: np.uint64
) -> tuple[float, np.uint64, np.uint64]:
    """Draw Gamma(a) for ``a >= 1``, with ``(d, c, x2max)`` from :func:`mt_constants`.

    Marsaglia and Tsang's method. The acceptance uniform is built from random bits
    already at hand: ``u = (8 b + e + f) / 64`` with ``b`` the three spare bits of this
    draw's normal, ``e`` three more from the caller (``extra`` in [0, 8), independent of
    everything else; -1 for none, and then ``u = (b + f) / 8``) and ``f`` a fresh uniform
    drawn only when the known bits cannot decide the squeeze test. Exact, and almost
    always one random word per variate. The first attempt's quick accept is inlined
    straight-line; the rest runs out of line.
    """
    w, s0, s1 = gamma_mt_root(d, c, x2max, extra, s0, s1)
    return d * (w * w * w), s0, s1


@njit(**JIT)
def _gamma_ge1(a: float, s0: np.uint64, s1: np.uint64) -> tuple[float, np.uint64, np.uint64]:
    d, c, x2max = mt_constants(a)
    return gamma_mt(d, c, x2max, np.int64(-1), s0, s1)


@njit(**JIT)
def gamma(a: float, s0: np.uint64, s1: np.uint64) -> tuple[float, np.uint64, np.uint64]:
    """Draw Gamma(a, 1) for ``a > 0`` by Marsaglia and Tsang; return ``(g, s0, s1)``.

    For ``a < 1`` it draws Gamma(a + 1) and multiplies by ``U**(1/a)``.
    """
    if a >= 1.0:
        return _gamma_ge1(a, s0, s1)
    g, s0, s1 = _gamma_ge1(a + 1.0, s0, s1)
    u, s0, s1 = uniform(s0, s1)
    return g * math.exp(math.log1p(-u) / a), s0, s1


@njit(**JIT)
def chisquare(dof: float, s0: np.uint64, s1: np.uint64) -> tuple[float, np.uint64, np.uint64]:
    """Draw chi-square with ``dof >= 0`` degrees of freedom (0 gives exactly 0)."""
    if dof <= 0.0:
        return 0.0, s0, s1
    g, s0, s1 = gamma(0.5 * dof, s0, s1)
    return 2.0 * g, s0, s1
