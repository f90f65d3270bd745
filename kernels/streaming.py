"""Statistics across chains accumulated batch by batch: moments, extremes, windowed histograms.

Every array here is one row per *column*, a (metric, recorded generation) pair; values
arrive as ``(columns, chains)`` blocks of consecutive chains, in chain order. Sums run
over the chains of each column in that order, compensated (Neumaier), so the result
does not depend on how the chains were split into batches, nor on the thread count
(columns, not chains, are shared among threads). The histograms only count, so they
merge by addition whatever the order.

``collapsesim.aggregates`` builds the streamed statistics from these arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._flags import JIT, PJIT

__all__ = ["accumulate"]

# Rows of ``counts`` in accumulate: finite values, NaN, +inf, -inf.
FINITE, NAN, PINF, NINF = 0, 1, 2, 3


@njit(**JIT)
def _add(s: np.ndarray, c: np.ndarray, k: int, v: float) -> None:
    """Neumaier's compensated ``s[k] += v``, with the running error kept in ``c[k]``."""
    t = s[k] + v
    if abs(s[k]) >= abs(v):
        c[k] += (s[k] - t) + v
    else:
        c[k] += (v - t) + s[k]
    s[k] = t


@njit(**JIT)
def _bin(
    j: int,
    v: float,
    windows: np.ndarray,
    scales: np.ndarray,
    outside: np.ndarray,
    bins: np.ndarray,
    bin_min: np.ndarray,
    bin_max: np.ndarray,
    bin_ends: np.ndarray,
) -> None:
    """Count the non-NaN value ``v`` of column ``j`` into each of its windows
    (``scales``: bins per unit of each window)."""
    num_bins = bins.shape[2]
    for q in range(windows.shape[1]):
        a = windows[j, q, 0]
        b = windows[j, q, 1]
        if v < a:
            outside[j, q, 0] += 1
        elif v > b:
            outside[j, q, 1] += 1
        else:
            t = int((v - a) * scales[q])
            if t >= num_bins:
                t = num_bins - 1
            bins[j, q, t] += 1
            # The smallest and largest value and how often each came: an atom at a bin's
            # end (a spike at 0, an integer) is read back exactly.
            if v < bin_min[j, q, t]:
                bin_min[j, q, t] = v
                bin_ends[j, q, t, 0] = 1
            elif v == bin_min[j, q, t]:
                bin_ends[j, q, t, 0] += 1
            if v > bin_max[j, q, t]:
                bin_max[j, q, t] = v
                bin_ends[j, q, t, 1] = 1
            elif v == bin_max[j, q, t]:
                bin_ends[j, q, t, 1] += 1


@njit(**PJIT)
def accumulate(
    x: np.ndarray,
    counts: np.ndarray,
    shift: np.ndarray,
    sums: np.ndarray,
    comp: np.ndarray,
    vmin: np.ndarray,
    vmax: np.ndarray,
    windows: np.ndarray,
    outside: np.ndarray,
    bins: np.ndarray,
    bin_min: np.ndarray,
    bin_max: np.ndarray,
    bin_ends: np.ndarray,
    moments: bool,
    histogram: bool,
) -> None:
    """Add a block of chains to each column's moments (``moments``) and windows (``histogram``).

    Moments: counts, shifted power sums and extremes. Windows: window ``[a, b]`` of
    column ``j`` and quantile ``q`` has ``B`` equal bins; a value below ``a`` or above
    ``b`` is only counted as outside, NaN not at all. Each bin keeps the smallest and
    largest value it received, so a bin of one repeated value (an atom, such as an
    integer count) gives that value back exactly.

    Args:
        x: float64 ``(J, n)``, column ``j``'s values for ``n`` consecutive chains.
        counts: int64 ``(J, 4)``, finite / NaN / +inf / -inf values so far (updated).
        shift: float64 ``(J,)``, the column's shift: set from its first value (finite,
            else 0) when the column has no values yet, so powers of ``x - shift`` stay
            of the order of the spread, not the location.
        sums: float64 ``(J, 4)``, sums of ``(x - shift)^p`` for p = 1..4 over finite values.
        comp: float64 ``(J, 4)``, their compensations.
        vmin: float64 ``(J,)``, smallest non-NaN value so far (+inf when none).
        vmax: float64 ``(J,)``, largest non-NaN value so far (-inf when none).
        windows: float64 ``(J, Q, 2)``, each window's ends, finite, ``a <= b``.
        outside: int64 ``(J, Q, 2)``, values below and above the window (updated).
        bins: int64 ``(J, Q, B)``, values in each bin (updated).
        bin_min: float64 ``(J, Q, B)``, smallest value per bin (+inf when empty).
        bin_max: float64 ``(J, Q, B)``, largest value per bin (-inf when empty).
        bin_ends: int64 ``(J, Q, B, 2)``, how many values of the bin equal its smallest and
            its largest.
        moments: update the moments.
        histogram: update the windows.
    """
    num_cols, n = x.shape
    for j in prange(num_cols):
        if n == 0:
            continue
        if moments and counts[j, 0] + counts[j, 1] + counts[j, 2] + counts[j, 3] == 0:
            first = x[j, 0]
            shift[j] = first if np.isfinite(first) else 0.0
        scales = np.zeros(windows.shape[1])
        for q in range(windows.shape[1]):
            a, b = windows[j, q, 0], windows[j, q, 1]
            scale = bins.shape[2] / (b - a) if b > a else 0.0
            # A window narrower than the doubles between its ends has one bin.
            scales[q] = scale if np.isfinite(scale) else 0.0
        # Scalars in registers: the sums and counts are written back once per column.
        k = shift[j]
        lo = vmin[j]
        hi = vmax[j]
        s = sums[j].copy()
        e = comp[j].copy()
        num_finite = num_nan = num_pinf = num_ninf = 0
        for i in range(n):
            v = x[j, i]
            if np.isnan(v):
                num_nan += 1
                continue
            if histogram:
                _bin(j, v, windows, scales, outside, bins, bin_min, bin_max, bin_ends)
            if not moments:
                continue
            lo = min(lo, v)
            hi = max(hi, v)
            if v == np.inf:
                num_pinf += 1
            elif v == -np.inf:
                num_ninf += 1
            else:
                num_finite += 1
                d = v - k
                d2 = d * d
                _add(s, e, 0, d)
                _add(s, e, 1, d2)
                _add(s, e, 2, d2 * d)
                _add(s, e, 3, d2 * d2)
        if moments:
            counts[j, FINITE] += num_finite
            counts[j, NAN] += num_nan
            counts[j, PINF] += num_pinf
            counts[j, NINF] += num_ninf
            sums[j] = s
            comp[j] = e
        if moments:
            vmin[j] = lo
            vmax[j] = hi
