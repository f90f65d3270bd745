"""The Gaussian kernels' per-chain float state: its columns and the scale's renormalisation."""

from __future__ import annotations

import math

from numba import njit

from ._flags import JIT

# Columns of the per-chain float state.
MU = 0  # mean of the current model
SIG = 1  # mantissa of the current model's std: sigma = SIG * 2**EXP
EXP = 2  # binary exponent of sigma (a float holding an integer)
POOL_N = 3  # accumulate: size of the pooled training set
POOL_MEAN = 4
POOL_M2 = 5
KEPT_MEAN = 6  # keep-original: statistics of the kept share of generation 0
KEPT_M2 = 7
VAR = 8  # replace, sufficient: mantissa of sigma^2 = VAR * 2**VAR_EXP
VAR_EXP = 9
KEY_LO = 10  # replace, sufficient: the chain's key for counter-based normals, as two
KEY_HI = 11  # 32-bit halves (exact in a double)
NUM_STATE = 12

_LN2 = math.log(2.0)
# The mantissa is renormalised when it leaves [2**-256, 2**256]: far from the double
# range's ends, and rare enough (every few hundred generations of collapse) to be free.
_BIG = 2.0**256
_SMALL = 2.0**-256


@njit(**JIT, inline="always")
def _renormalise(sig: float, ex: float):
    """Return ``(mantissa, exponent, 2**exponent)`` once the mantissa drifts far from 1."""
    if _SMALL <= sig <= _BIG:
        return sig, ex, math.ldexp(1.0, int(ex))
    m, e = math.frexp(sig)
    ex += e
    return m, ex, math.ldexp(1.0, int(ex))
