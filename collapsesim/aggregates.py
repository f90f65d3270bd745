"""Statistics across chains, accumulated batch by batch in memory that does not grow with C.

A chain family's run hands each batch's per-chain metrics to a :class:`Stream`, in chain
order; at the end the stream gives the aggregates table (:data:`metrics.STATS` of every
metric and recorded generation), the summary's statistics of the last generation, the
final values of the first ``final_chains`` chains and the trajectories of the first
``keep_chains``. Two ways, chosen by the run's size:

* **exact**, when every value fits in :data:`HOLD_VALUES` (or the run has no more than
  :data:`PILOT_CHAINS` chains): the stream holds every value and the statistics are the
  ones :func:`metrics.aggregate` computes, bit for bit as before streaming existed.
* **streamed**, beyond that: moments are compensated sums taken in chain order within
  segments of :data:`SEGMENT` chains, whose sums are then added up in order (so the same
  whatever the batches, threads or cluster tasks); minimum and maximum are exact. Quantiles
  come from windowed histograms: the first ``P`` chains (the pilot, at most 2^16) are
  held (for the whole run), each quantile's window is fixed at the pilot's order
  statistics ``WINDOW_Z`` standard errors either side of it, and every chain is then
  counted into the window's bins (values below and above only counted). The k-th order
  statistic of the whole run lies in a bin, known by the counts; it is read between the
  smallest and largest value that bin saw, linearly in rank, and quantiles interpolate
  between order statistics as ``np.quantile`` does. The error is at most one bin, and
  the bins are made narrow enough (:func:`_num_bins`) that it stays far below the Monte
  Carlo standard error of the quantile; ``tests/test_aggregates.py`` measures it. A
  window misses its quantile with probability about 2e-9 (a 6-sigma excursion of the
  whole run's quantile from the pilot's); the quantile is then NaN, with a warning.

Histograms with the same windows merge by addition: the same merge serves hosts of a
distributed run that agree on the pilot's windows. A cluster's worker accumulates the
chains of its task, which begins on a segment, into a *fragment* (:meth:`Stream.begin_fragment`,
:meth:`Stream.end_fragment`) with the run's windows and shifts; the client merges the
fragments in chain order (:meth:`Stream.merge`), which gives the one-process stream's
arrays bit for bit.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["HOLD_VALUES", "PILOT_CHAINS", "SEGMENT", "Column", "Stream", "feed", "stream_bytes"]

# The configuration sizes runs with stream_bytes: the kernels and metrics are imported
# only where a stream is fed or read.
_FINITE, _NAN, _PINF, _NINF = 0, 1, 2, 3  # rows of the counts (kernels/streaming.py)

HOLD_VALUES = 2**24
"""Values (chains x metrics x records) a stream holds to be exact: 128 MiB."""
PILOT_CHAINS = 2**16
"""Chains of the pilot that fixes the quantile windows of a streamed run (fewer for very
many records: as many as :data:`HOLD_VALUES` values allow, but never fewer than 2^12)."""
MIN_PILOT = 2**12
WINDOW_Z = 6.0
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_Q_NAMES = ("q05", "q25", "q50", "q75", "q95")

SEGMENT = 2**12
"""Chains whose moments are summed together before they join the run's sums: a streamed
run's moments are the same sums whether one process or a cluster's tasks (which begin on
segments) took the chains."""

CHUNK = 2**13
"""Chains whose metrics are computed at once when a batch is fed (cache-sized temporaries)."""

Units = dict[str, tuple[float, float]]
"""metric -> (loc, scale > 0): the stored values are ``loc + scale * x`` of the streamed x."""


def _num_bins(num_chains: int, pilot: int) -> int:
    """Bins per window: the window spans 2 WINDOW_Z pilot standard errors, that is
    2 WINDOW_Z sqrt(C / P) of the whole run's; the bins are made about a third of the
    run's standard error wide (at most 2^14 of them: up to C / P of about 10^5), and the
    reading between each bin's smallest and largest values brings the error below 0.05
    standard errors (measured at C / P = 256 in tests/test_aggregates.py)."""
    need = 2 * WINDOW_Z * 50 / 16 * math.sqrt(num_chains / pilot)
    return int(min(2**14, max(256, 2 ** math.ceil(math.log2(need)))))


def _sizes(num_columns: int, num_chains: int) -> tuple[bool, int, int]:
    """A stream's ``(exact, pilot chains, bins per window)``."""
    j, c = num_columns, num_chains
    if c <= PILOT_CHAINS or c * j <= HOLD_VALUES:
        return True, c, 0
    p = min(c, max(MIN_PILOT, min(PILOT_CHAINS, HOLD_VALUES // j)))
    return False, p, _num_bins(c, p)


def stream_bytes(
    num_metrics: int, num_records: int, num_chains: int, keep_chains: int, final_chains: int
) -> int:
    """Bytes a :class:`Stream` of these sizes holds (for memory checks before a run)."""
    j, c = num_metrics * num_records, num_chains
    exact, p, nb = _sizes(j, c)
    if exact:
        return 8 * j * c
    kept = min(keep_chains, c) * j + min(final_chains, c) * num_metrics
    return 8 * (j * p + j * len(QUANTILES) * nb * 5 + kept + 40 * j)


class Stream:
    """The run-wide statistics of a chain family's metrics, fed batch by batch.

    Args:
        names: the metrics, each a float64 ``(chains, R)`` block per batch.
        num_records: R, recorded generations.
        num_chains: C, chains of the whole run.
        keep_chains: whole trajectories kept for the first this many chains.
        final_chains: last-generation values kept for the first this many chains.
    """

    def __init__(
        self,
        names: Iterable[str],
        num_records: int,
        num_chains: int,
        *,
        keep_chains: int,
        final_chains: int,
    ) -> None:
        self.names = tuple(names)
        m, r, c = len(self.names), num_records, num_chains
        j = m * r
        self.num_records, self.num_chains = r, c
        self.keep = min(keep_chains, c)
        self.final_count = min(final_chains, c)
        self.exact, p, nb = _sizes(j, c)
        self.pilot = p
        q = 0 if self.exact else len(QUANTILES)
        sk = 0 if self.exact else 1  # the streamed run's own arrays
        self.arrays: dict[str, np.ndarray] = {
            "held": np.empty((j, p)),
            "added": np.zeros(2, np.int64),  # chains added so far; windows fixed (0/1)
            "counts": np.zeros((j * sk, 4), np.int64),
            "shift": np.zeros(j * sk),
            "sums": np.zeros((j * sk, 4)),  # the current segment's
            "comp": np.zeros((j * sk, 4)),
            "total_sums": np.zeros((j * sk, 4)),  # the finished segments'
            "total_comp": np.zeros((j * sk, 4)),
            "vmin": np.full(j * sk, np.inf),
            "vmax": np.full(j * sk, -np.inf),
            "windows": np.zeros((j * sk, q, 2)),
            "outside": np.zeros((j * sk, q, 2), np.int64),
            "bins": np.zeros((j * sk, q, nb), np.int64),
            "bin_min": np.full((j * sk, q, nb), np.inf),
            "bin_max": np.full((j * sk, q, nb), -np.inf),
            "bin_ends": np.zeros((j * sk, q, nb, 2), np.int64),
            "final": np.empty((m * sk, self.final_count * sk)),
            "kept": np.empty((m * sk, self.keep * sk, r)),
        }
        self._segments: list[tuple[np.ndarray, np.ndarray]] | None = None  # a fragment's
        self._first = 0

    def checkpointed(self) -> dict[str, np.ndarray]:
        """The stream's arrays under the names a plan's checkpointed ``arrays`` give them."""
        return {f"stream_{k}": v for k, v in self.arrays.items()}

    # --- feeding -------------------------------------------------------------------

    def add(self, lo: int, values: dict[str, np.ndarray]) -> None:
        """Add chains ``[lo, lo + n)``, the next in order: each metric float64 ``(R, n)``,
        recorded generations by chains.

        Raises:
            ValueError: the chains are not the next ones, or a block has another shape.
        """
        a, r = self.arrays, self.num_records
        n = next(iter(values.values())).shape[1]
        if lo != int(a["added"][0]) or lo + n > self.num_chains:
            raise ValueError(f"chains [{lo}, {lo + n}) are not the next {n} of the stream")
        for name in self.names:
            if values[name].shape != (r, n):
                raise ValueError(f"{name}: shape {values[name].shape}, expected {(r, n)}")
        x = np.concatenate([values[name] for name in self.names], axis=0)
        hi, p = lo + n, self.pilot
        if lo < p:
            a["held"][:, lo : min(hi, p)] = x[:, : min(hi, p) - lo]
        if not self.exact:
            if lo < self.keep:
                k = min(hi, self.keep)
                a["kept"][:, lo:k] = (
                    x[:, : k - lo].reshape(len(self.names), r, k - lo).swapaxes(1, 2)
                )
            if lo < self.final_count:
                f = min(hi, self.final_count)
                a["final"][:, lo:f] = x[r - 1 :: r, : f - lo]
            if lo == 0:
                # Each column's shift: its first value (finite, else 0), so powers of
                # x - shift stay of the order of the spread, not of the location.
                first = x[:, 0]
                a["shift"][:] = np.where(np.isfinite(first), first, 0.0)
            fixed = bool(a["added"][1])
            self._moments(x, lo)
            if not fixed and hi >= p:
                self._fix_windows()
                self._accumulate(a["held"], moments=False)
                self._accumulate(x[:, p - lo :], moments=False)
            elif fixed:
                self._accumulate(x, moments=False)
        a["added"][0] = hi

    def _moments(self, x: np.ndarray, lo: int) -> None:
        """Add chains ``[lo, lo + n)`` to the moments, segment by segment."""
        i, n = 0, x.shape[1]
        while i < n:
            end = min(n, i + SEGMENT - (lo + i) % SEGMENT)
            self._accumulate(x[:, i:end], histogram=False)
            if (lo + end) % SEGMENT == 0:
                self._end_segment()
            i = end

    def _end_segment(self) -> None:
        """Add the finished segment's sums to the run's (a fragment keeps them apart)."""
        from .kernels import streaming as kern

        a = self.arrays
        if self._segments is not None:
            self._segments.append((a["sums"].copy(), a["comp"].copy()))
        else:
            kern.fold(a["total_sums"], a["total_comp"], a["sums"], a["comp"])
        a["sums"][:] = 0.0
        a["comp"][:] = 0.0

    def _accumulate(self, x: np.ndarray, *, moments: bool = True, histogram: bool = True) -> None:
        from .kernels import streaming as kern

        a = self.arrays
        if x.shape[1]:
            kern.accumulate(np.ascontiguousarray(x), a["counts"], a["shift"], a["sums"],
                            a["comp"], a["vmin"], a["vmax"], a["windows"], a["outside"],
                            a["bins"], a["bin_min"], a["bin_max"], a["bin_ends"], moments,
                            histogram)  # fmt: skip

    def _fix_windows(self) -> None:
        """Each quantile's window: the pilot's order statistics WINDOW_Z errors either side."""
        a, p = self.arrays, self.pilot
        ranks = []
        for q in QUANTILES:
            d = WINDOW_Z * math.sqrt(q * (1 - q) / p) + 2.0 / p
            ranks += [
                max(0, math.floor((q - d) * (p - 1))),
                min(p - 1, math.ceil((q + d) * (p - 1))),
            ]
        rows = np.sort(a["held"], axis=1)  # NaN last
        ends = rows[:, ranks].reshape(-1, len(QUANTILES), 2)
        for j, row in enumerate(rows):
            # Infinite ends are replaced by the pilot's finite extremes (0 when it has none).
            i0 = int(np.searchsorted(row, -np.inf, side="right"))
            i1 = int(np.searchsorted(row, np.inf, side="left")) - 1
            low, high = (row[i0], row[i1]) if i0 <= i1 else (0.0, 0.0)
            e = ends[j]
            e[:, 0] = np.where(np.isfinite(e[:, 0]), e[:, 0], low)
            e[:, 1] = np.where(np.isfinite(e[:, 1]), e[:, 1], high)
        a["windows"][..., 0] = np.minimum(ends[..., 0], ends[..., 1])
        a["windows"][..., 1] = np.maximum(ends[..., 0], ends[..., 1])
        a["added"][1] = 1

    # --- fragments (a cluster's tasks) --------------------------------------------

    _FRAGMENT = ("counts", "vmin", "vmax", "outside", "bins", "bin_min", "bin_max", "bin_ends")

    def can_fragment(self, lo: int) -> bool:
        """Whether chains from ``lo`` on can be taken as fragments: a streamed run whose
        windows are fixed by then (the pilot's chains lie before ``lo``), on a segment."""
        return not self.exact and lo >= self.pilot and lo % SEGMENT == 0

    def shared(self) -> dict[str, np.ndarray]:
        """What a fragment needs of the run: the windows and shifts (once they are fixed)."""
        a = self.arrays
        if not a["added"][1]:
            raise RuntimeError("the stream's windows are not fixed yet")
        return {"windows": a["windows"].copy(), "shift": a["shift"].copy()}

    def begin_fragment(self, lo: int, shared: dict[str, np.ndarray]) -> None:
        """Turn this stream into a fragment that takes chains from ``lo`` on (see
        :meth:`can_fragment`), with the run's ``shared`` windows and shifts."""
        if not self.can_fragment(lo):
            raise ValueError(f"chains from {lo} on cannot make a fragment of this stream")
        a = self.arrays
        if shared["windows"].shape != a["windows"].shape:
            raise ValueError("the fragment's windows have another shape (another collapsesim?)")
        for name in ("counts", "outside", "bins", "bin_ends", "sums", "comp"):
            a[name][...] = 0
        for name, fill in (("vmin", np.inf), ("vmax", -np.inf), ("bin_min", np.inf),
                           ("bin_max", -np.inf)):  # fmt: skip
            a[name][...] = fill
        a["windows"][...] = shared["windows"]
        a["shift"][...] = shared["shift"]
        a["added"][:] = (lo, 1)
        self._first = lo
        self._segments = []

    def end_fragment(self) -> dict[str, Any]:
        """The fragment's statistics; the stream is no longer one afterwards."""
        if self._segments is None:
            raise RuntimeError("the stream is not a fragment")
        a, lo, hi = self.arrays, self._first, int(self.arrays["added"][0])
        segments, self._segments = self._segments, None
        out: dict[str, Any] = {name: a[name].copy() for name in self._FRAGMENT}
        j = a["sums"].shape[0]
        out |= {
            "lo": lo,
            "hi": hi,
            "segment_sums": np.array([s for s, _ in segments]).reshape(-1, j, 4),
            "segment_comp": np.array([c for _, c in segments]).reshape(-1, j, 4),
            "sums": a["sums"].copy(),  # a last segment cut short by the run's end
            "comp": a["comp"].copy(),
            "kept": a["kept"][:, lo : max(lo, min(hi, self.keep))].copy(),
            "final": a["final"][:, lo : max(lo, min(hi, self.final_count))].copy(),
        }
        return out

    def merge(self, frag: dict[str, Any]) -> None:
        """Add a fragment of the next chains, as if they had been added here one by one.

        Raises:
            ValueError: the fragment does not begin with the next chain on a segment.
        """
        a = self.arrays
        lo, hi = int(frag["lo"]), int(frag["hi"])
        if lo != int(a["added"][0]) or not self.can_fragment(lo) or not a["added"][1]:
            raise ValueError(f"a fragment of chains [{lo}, {hi}) is not the stream's next")
        for name in ("counts", "outside", "bins"):
            a[name] += frag[name]
        # Ties keep the earlier chains' value, as min and max do chain by chain.
        a["vmin"][:] = np.where(frag["vmin"] < a["vmin"], frag["vmin"], a["vmin"])
        a["vmax"][:] = np.where(frag["vmax"] > a["vmax"], frag["vmax"], a["vmax"])
        for k, (name, better) in enumerate((("bin_min", np.less), ("bin_max", np.greater))):
            mine, theirs = a[name], frag[name]
            ends, other = a["bin_ends"][..., k], frag["bin_ends"][..., k]
            wins, ties = better(theirs, mine), theirs == mine
            ends[...] = np.where(wins, other, np.where(ties, ends + other, ends))
            mine[...] = np.where(wins, theirs, mine)
        from .kernels import streaming as kern

        for sums, comp in zip(frag["segment_sums"], frag["segment_comp"], strict=True):
            kern.fold(a["total_sums"], a["total_comp"], sums, comp)
        a["sums"][:] = frag["sums"]
        a["comp"][:] = frag["comp"]
        if lo < self.keep:
            a["kept"][:, lo : lo + frag["kept"].shape[1]] = frag["kept"]
        if lo < self.final_count:
            a["final"][:, lo : lo + frag["final"].shape[1]] = frag["final"]
        a["added"][0] = hi

    # --- reading -------------------------------------------------------------------

    def _done(self) -> None:
        if int(self.arrays["added"][0]) != self.num_chains:
            raise RuntimeError(
                f"the stream has {self.arrays['added'][0]} of {self.num_chains} chains"
            )

    def held(self, name: str) -> np.ndarray:
        """An exact stream's values of ``name``, float64 ``(C, R)`` (a view)."""
        m, r = self.names.index(name), self.num_records
        return self.arrays["held"][m * r : (m + 1) * r].T

    def aggregates(self, units: Units | None = None) -> dict[str, dict[str, np.ndarray]]:
        """Every metric's :data:`metrics.STATS` per recorded generation, in ``units``."""
        from . import metrics

        self._done()
        units = units or {}
        if self.exact:
            return {n: metrics.aggregate(_affine(self.held(n), units.get(n))) for n in self.names}
        out = {}
        for m, name in enumerate(self.names):
            cols = range(m * self.num_records, (m + 1) * self.num_records)
            stats = _Streamed(self, cols)
            loc, scale = units.get(name, (0.0, 1.0))
            with np.errstate(over="ignore", invalid="ignore"):
                agg = {"mean": stats.mean(), "std": stats.std(), "min": stats.extreme(0),
                       "max": stats.extreme(1)}  # fmt: skip
                agg |= dict(zip(_Q_NAMES, stats.quantiles(QUANTILES), strict=True))
                agg["stderr"] = agg["std"] / math.sqrt(self.num_chains)
                if name in units:
                    for k in agg:
                        agg[k] = scale * agg[k] if k in ("std", "stderr") else loc + scale * agg[k]
            out[name] = {k: agg[k] for k in metrics.STATS}
        return out

    def final(self, units: Units | None = None) -> dict[str, np.ndarray]:
        """Each metric at the last recorded generation for the first ``final_chains`` chains."""
        self._done()
        units = units or {}
        if self.exact:
            return {n: _affine(self.held(n)[: self.final_count, -1].copy(), units.get(n))
                    for n in self.names}  # fmt: skip
        # The stream is read once at the end: its own rows are handed out, in place.
        return {n: _affine_in_place(self.arrays["final"][m], units.get(n))
                for m, n in enumerate(self.names)}  # fmt: skip

    def trajectories(self, units: Units | None = None) -> dict[str, np.ndarray]:
        """Each metric's whole trajectory ``(K, R)`` for the first ``keep_chains`` chains."""
        self._done()
        units = units or {}
        if self.exact:
            return {n: _affine(self.held(n)[: self.keep].copy(), units.get(n)) for n in self.names}
        return {n: _affine_in_place(self.arrays["kept"][m], units.get(n))
                for m, n in enumerate(self.names)}  # fmt: skip

    def last(self, name: str, units: tuple[float, float] | None = None) -> Column:
        """Statistics of ``name`` at the last recorded generation across all chains."""
        self._done()
        m, r = self.names.index(name), self.num_records
        if self.exact:
            return Column(values=_affine(self.held(name)[:, -1].copy(), units))
        return Column(streamed=_Streamed(self, [m * r + r - 1]), units=units)


def feed(
    stream: Stream,
    lo: int,
    n: int,
    metrics_of: Callable[[int, int], dict[str, np.ndarray]],
    *,
    overlap: bool = True,
) -> None:
    """Add a batch's chains ``[lo, lo + n)`` to ``stream``, :data:`CHUNK` chains at a time.

    ``metrics_of(i, j)`` returns the metrics of the batch's rows ``i..j``, records by
    chains. With ``overlap`` (metrics in NumPy, which releases the GIL) one worker thread
    computes the next chunk's while the stream's kernels take the last one; metrics that
    run parallel Numba kernels of their own must not overlap (Numba's thread count is per
    thread, and its workqueue layer refuses two parallel regions at once). No temporaries
    of the whole batch are made.
    """
    if not overlap:
        for i in range(0, n, CHUNK):
            stream.add(lo + i, metrics_of(i, min(n, i + CHUNK)))
        return
    with ThreadPoolExecutor(1) as pool:
        pending: tuple[int, Future[dict[str, np.ndarray]]] | None = None
        for i in range(0, n, CHUNK):
            nxt = (i, pool.submit(metrics_of, i, min(n, i + CHUNK)))
            if pending is not None:
                stream.add(lo + pending[0], pending[1].result())
            pending = nxt
        if pending is not None:
            stream.add(lo + pending[0], pending[1].result())


def _affine_in_place(v: np.ndarray, units: tuple[float, float] | None) -> np.ndarray:
    """``v`` turned into ``loc + scale * v`` in place (the same doubles as :func:`_affine`)."""
    if units is not None:
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            v *= units[1]
            v += units[0]
    return v


def _affine(v: np.ndarray, units: tuple[float, float] | None) -> np.ndarray:
    """``loc + scale * v``, a new array (``v`` itself without units)."""
    if units is None:
        return v
    loc, scale = units
    with np.errstate(over="ignore", under="ignore"):
        return loc + scale * v


class _Streamed:
    """Statistics of some columns of a streamed run, from its sums, extremes and bins."""

    def __init__(self, stream: Stream, cols: Iterable[int]) -> None:
        a = stream.arrays
        self.idx = np.asarray(list(cols), np.int64)
        self.c = stream.num_chains
        self.a = a

    def _moments(self) -> tuple[np.ndarray, ...]:
        a, i = self.a, self.idx
        from .kernels import streaming as kern

        counts = a["counts"][i]
        n = counts[:, _FINITE].astype(np.float64)
        # The finished segments' sums, then the last (unfinished) segment's.
        total, comp = a["total_sums"][i], a["total_comp"][i]
        kern.fold(total, comp, a["sums"][i], a["comp"][i])
        s = total + comp
        with np.errstate(invalid="ignore", divide="ignore"):
            m1 = s[:, 0] / n
        return counts, n, s, m1

    def mean(self) -> np.ndarray:
        counts, _, _, m1 = self._moments()
        out = self.a["shift"][self.idx] + m1
        out = np.where(counts[:, _PINF] > 0, np.inf, out)
        out = np.where(counts[:, _NINF] > 0, np.where(counts[:, _PINF] > 0, np.nan, -np.inf), out)
        return np.where(counts[:, _NAN] > 0, np.nan, out)

    def _bad(self, counts: np.ndarray) -> np.ndarray:
        return counts[:, _NAN] + counts[:, _PINF] + counts[:, _NINF] > 0

    def var(self) -> np.ndarray:
        """Variance, ddof 1 (NaN with any NaN or infinite value, or one chain)."""
        counts, n, s, m1 = self._moments()
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.maximum(s[:, 1] - s[:, 0] * m1, 0.0) / (n - 1)
        return np.where(self._bad(counts) | (n < 2), np.nan, v)

    def std(self) -> np.ndarray:
        return np.sqrt(self.var())

    def central3(self) -> np.ndarray:
        """The mean of (x - mean)^3 (NaN with any NaN or infinite value)."""
        counts, n, s, m1 = self._moments()
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            c3 = (s[:, 2] - 3 * m1 * s[:, 1] + 2 * n * m1**3) / n
        return np.where(self._bad(counts), np.nan, c3)

    def central4(self) -> np.ndarray:
        """The mean of (x - mean)^4 (NaN with any NaN or infinite value)."""
        counts, n, s, m1 = self._moments()
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            c4 = (s[:, 3] - 4 * m1 * s[:, 2] + 6 * m1**2 * s[:, 1] - 3 * n * m1**4) / n
        return np.where(self._bad(counts), np.nan, np.maximum(c4, 0.0))

    def extreme(self, which: int) -> np.ndarray:
        """The minimum (``which`` 0: of the non-NaN values) or the maximum (1: NaN with any
        NaN), as the ends of NumPy's sort, which puts NaN last."""
        a, i = self.a, self.idx
        nan = a["counts"][i, _NAN]
        if which == 0:
            return np.where(nan == self.c, np.nan, a["vmin"][i])
        return np.where(nan > 0, np.nan, a["vmax"][i])

    def quantiles(self, probs: Iterable[float]) -> list[np.ndarray]:
        """Each ``p`` of ``probs`` (one of :data:`QUANTILES`) per column, as np.quantile."""
        c = self.c
        out = []
        for p in probs:
            qi = QUANTILES.index(p)
            pos = p * (c - 1)
            lo = math.floor(pos)
            hi = min(lo + 1, c - 1)
            frac = pos - lo
            col = np.empty(len(self.idx))
            for t, j in enumerate(self.idx):
                x = self._order_stat(int(j), qi, lo)
                if frac:
                    y = self._order_stat(int(j), qi, hi)
                    x = x if y == x else x + (y - x) * frac
                col[t] = x
            out.append(col)
        return out

    def _order_stat(self, j: int, qi: int, k: int) -> float:
        """The k-th smallest value (0-based) of column ``j`` as window ``qi`` sees it."""
        a, c = self.a, self.c
        counts = a["counts"][j]
        if k >= c - counts[_NAN]:
            return math.nan
        if k >= c - counts[_NAN] - counts[_PINF]:
            return math.inf
        if k < counts[_NINF]:
            return -math.inf
        below, _ = a["outside"][j, qi]
        bins = a["bins"][j, qi]
        cum = np.cumsum(bins)
        i = k - below
        if i < 0 or i >= cum[-1]:
            warnings.warn(f"a streamed quantile fell outside its window (column {j}); it is NaN",
                          RuntimeWarning, stacklevel=4)  # fmt: skip
            return math.nan
        b = int(np.searchsorted(cum, i, side="right"))
        within = i - (cum[b - 1] if b else 0)
        n, lo, hi = bins[b], a["bin_min"][j, qi, b], a["bin_max"][j, qi, b]
        at_lo, at_hi = a["bin_ends"][j, qi, b]
        if within < at_lo:
            return float(lo)
        if within >= n - at_hi:
            return float(hi)
        return float(lo if n == 1 or hi == lo else lo + (hi - lo) * within / (n - 1))


@dataclass
class Column:
    """Statistics of one metric across all chains at the last recorded generation.

    Exact runs compute them from the values as NumPy does (``values``); streamed runs
    from the stream's sums and bins, in the metric's ``units``.
    """

    values: np.ndarray | None = None
    streamed: _Streamed | None = None
    units: tuple[float, float] | None = None

    def _affine(self, v: float, shift: bool = True) -> float:
        if self.units is None:
            return v
        loc, scale = self.units
        return loc + scale * v if shift else scale * v

    def mean(self) -> float:
        if self.values is not None:
            return float(self.values.mean())
        assert self.streamed is not None
        return self._affine(float(self.streamed.mean()[0]))

    def std(self) -> float:
        """The standard deviation, ddof 1 (NaN for one chain)."""
        if self.values is not None:
            return float(self.values.std(ddof=1)) if len(self.values) > 1 else math.nan
        assert self.streamed is not None
        return self._affine(float(self.streamed.std()[0]), shift=False)

    def var(self) -> float:
        """The variance, ddof 1 (NaN for one chain)."""
        if self.values is not None:
            return float(self.values.var(ddof=1)) if len(self.values) > 1 else math.nan
        assert self.streamed is not None
        return self._affine(self._affine(float(self.streamed.var()[0]), shift=False), shift=False)

    def central3(self) -> float:
        """The mean of (x - mean)^3."""
        if self.values is not None:
            v = self.values
            return float(np.mean((v - v.mean()) ** 3))
        assert self.streamed is not None
        scale = 1.0 if self.units is None else self.units[1]
        return float(self.streamed.central3()[0]) * scale**3

    def central4(self) -> float:
        """The mean of (x - mean)^4."""
        if self.values is not None:
            v = self.values
            return float(np.mean((v - v.mean()) ** 4))
        assert self.streamed is not None
        scale = 1.0 if self.units is None else self.units[1]
        return float(self.streamed.central4()[0]) * scale**4

    def median(self) -> float:
        """The median, NaN where any value is NaN (as np.median)."""
        if self.values is not None:
            return float(np.median(self.values))
        assert self.streamed is not None
        if self.streamed.a["counts"][self.streamed.idx[0], _NAN]:
            return math.nan
        return float(self.quantiles([0.5])[0])

    def quantiles(self, probs: Iterable[float]) -> np.ndarray:
        probs = list(probs)
        if self.values is not None:
            return np.quantile(self.values, probs)
        assert self.streamed is not None
        return np.array([self._affine(float(q[0])) for q in self.streamed.quantiles(probs)])
