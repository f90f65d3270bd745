"""Statistics across chains accumulated batch by batch: moments, extremes, windowed histograms.

Every array here is one row per *column*, a (metric, recorded generation) pair; values
arrive as ``(columns, chains)`` blocks of consecutive chains, in chain order. Sums run
over the chains of each column in that order, compensated (Neumaier), within segments of
chains that :func:`fold` then adds to the run's sums in order, so the result does not
depend on how the chains were split into batches or cluster tasks, nor on the thread
count (columns, not chains, are shared among threads). The histograms only count, so they
merge by addition whatever the order.

``collapsesim.aggregates`` builds the streamed statistics from these arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._flags import JIT, PJIT

__all__ = ["accumulate", "fold"]

# Rows of ``counts`` in accumulate: finite values, NaN, +inf, -inf.
FINITE, NAN, PINF, NINF = 0, 1, 2, 3


@njit(**JIT)
def _add(s: float, c: float, v: float) -> tuple[float, float]:
    """Neumaier's compensated ``s + v``: the new sum and running error ``c``."""
    t = s + v
    if abs(s) >= abs(v):
        c += (s - t) + v
    else:
        c += (v - t) + s
    return t, c


@njit(**JIT)
def _bin(
    j: int,
    q: int,
    v: float,
    a: float,
    scale: float,
    bins: np.ndarray,
    bin_min: np.ndarray,
    bin_max: np.ndarray,
    bin_ends: np.ndarray,
) -> None:
    """Count the value ``v`` of column ``j`` into its window ``q``, which begins at ``a``
    (``scale``: bins per unit of the window)."""
    num_bins = bins.shape[2]
    t = int((v - a) * scale)
    if t >= num_bins:
        t = num_bins - 1
    bins[j, q, t] += 1
    # The smallest and largest value and how often each came: an atom at a bin's end (a
    # spike at 0, an integer) is read back exactly.
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


@njit(**JIT)
def _windows(
    j: int,
    x: np.ndarray,
    windows: np.ndarray,
    outside: np.ndarray,
    bins: np.ndarray,
    bin_min: np.ndarray,
    bin_max: np.ndarray,
    bin_ends: np.ndarray,
) -> None:
    """Count column ``j``'s block ``x[j]`` into its windows.

    Two passes, as where a value falls among the windows is random and branching on it
    would be mispredicted half the time: one window at a time, the values below and above
    are counted and those inside marked, without branches (the block stays in cache);
    then only the marked values, a few percent, go into the bins, in chain order.
    """
    n, num_q, num_bins = x.shape[1], windows.shape[1], bins.shape[2]
    inside = np.zeros(n, np.bool_)
    scales = np.empty(num_q)
    for q in range(num_q):
        a, b = windows[j, q, 0], windows[j, q, 1]
        scale = num_bins / (b - a) if b > a else 0.0
        # A window narrower than the doubles between its ends has one bin.
        scales[q] = scale if np.isfinite(scale) else 0.0
        num_below = num_above = 0
        for i in range(n):
            v = x[j, i]
            num_below += v < a
            num_above += v > b
            inside[i] |= (v >= a) & (v <= b)  # never NaN
        outside[j, q, 0] += num_below
        outside[j, q, 1] += num_above
    for i in range(n):
        if not inside[i]:
            continue
        v = x[j, i]
        for q in range(num_q):
            a = windows[j, q, 0]
            if (v >= a) & (v <= windows[j, q, 1]):
                _bin(j, q, v, a, scales[q], bins, bin_min, bin_max, bin_ends)


@njit(**JIT)
def _moments(
    j: int,
    x: np.ndarray,
    counts: np.ndarray,
    shift: np.ndarray,
    sums: np.ndarray,
    comp: np.ndarray,
    vmin: np.ndarray,
    vmax: np.ndarray,
) -> None:
    """Add column ``j``'s block ``x[j]`` to its counts, compensated power sums and extremes,
    in chain order."""
    n = x.shape[1]
    # Scalars in registers: the sums and counts are written back once per column.
    k = shift[j]
    lo = vmin[j]
    hi = vmax[j]
    s1, s2, s3, s4 = sums[j, 0], sums[j, 1], sums[j, 2], sums[j, 3]
    e1, e2, e3, e4 = comp[j, 0], comp[j, 1], comp[j, 2], comp[j, 3]
    num_finite = num_nan = num_pinf = num_ninf = 0
    for i in range(n):
        v = x[j, i]
        if np.isnan(v):
            num_nan += 1
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
            s1, e1 = _add(s1, e1, d)
            s2, e2 = _add(s2, e2, d2)
            s3, e3 = _add(s3, e3, d2 * d)
            s4, e4 = _add(s4, e4, d2 * d2)
    counts[j, FINITE] += num_finite
    counts[j, NAN] += num_nan
    counts[j, PINF] += num_pinf
    counts[j, NINF] += num_ninf
    sums[j, 0], sums[j, 1], sums[j, 2], sums[j, 3] = s1, s2, s3, s4
    comp[j, 0], comp[j, 1], comp[j, 2], comp[j, 3] = e1, e2, e3, e4
    vmin[j] = lo
    vmax[j] = hi


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
        shift: float64 ``(J,)``, the column's shift (the caller sets it from the run's
            first value, finite, else 0), so powers of ``x - shift`` stay of the order of
            the spread, not the location.
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
        if histogram:
            _windows(j, x, windows, outside, bins, bin_min, bin_max, bin_ends)
        if moments:
            _moments(j, x, counts, shift, sums, comp, vmin, vmax)


@njit(**JIT)
def fold(total: np.ndarray, total_comp: np.ndarray, sums: np.ndarray, comp: np.ndarray) -> None:
    """Add a segment's compensated sums ``(sums, comp)`` to the run's ``(total, total_comp)``
    in place (all float64 ``(J, 4)``): Neumaier's step for the sum, then its compensation."""
    for j in range(total.shape[0]):
        for k in range(total.shape[1]):
            t, c = _add(total[j, k], total_comp[j, k], sums[j, k])
            total[j, k] = t
            total_comp[j, k] = c + comp[j, k]
