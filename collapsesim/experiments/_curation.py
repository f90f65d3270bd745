"""The runners' side of curation, written once for every chain family.

A chain family's runner keeps one :class:`Tracker`: it holds the operators' vector for the
family's kernel, allocates each batch's tally and cost records, feeds the ``candidates``
metric (candidates drawn per kept sample at each recorded generation) to the run's stream,
adds up the run's totals (a checkpointed array), and writes the summary's cost rows.
Without curation it adds nothing: no array, no metric, no key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import aggregates
from ..curation import Curation
from . import _common as common

__all__ = ["Tracker"]

TOTALS = "curation_totals"
# A batch's state: candidates per kept sample and starved generations added up per chain
# (B, 2); candidates per kept sample at the recorded generations (B, R).
TALLY = "curation_tally"
COST = "curation_cost"


class Tracker:
    """A run's curation: kernel arguments, batch arrays, the metric, totals, summary."""

    def __init__(self, cur: Curation, sigma0: float = 1.0, dim: int = 1) -> None:
        self.cur = cur
        self.active = cur.active
        self.vector = cur.vector(sigma0, dim) if self.active else None
        # Summed over batches: candidates per kept sample over chains and curated
        # generations (of the finished segments of aggregates.SEGMENT chains), starved
        # generations, chains, and the current segment's candidates.
        self.arrays: dict[str, np.ndarray] = {TOTALS: np.zeros(4)} if self.active else {}
        self._segments: list[float] | None = None  # a cluster fragment's

    def metrics(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """The family's metrics, and ``candidates`` under curation."""
        return names + (("candidates",) if self.active else ())

    @staticmethod
    def load(out: Path, family: str, names: tuple[str, ...], config: Any) -> tuple[Any, Any]:
        """A stored chain run's configuration (as ``config``) and result fields, with the
        ``candidates`` metric where it ran with curation."""
        stored, fields = common.load_chains(out, family, names)
        cfg = config.from_dict(stored)
        if Curation.of(cfg).active:
            _, fields = common.load_chains(out, family, (*names, "candidates"))
        return cfg, fields

    def batch(self, count: int, num_records: int) -> dict[str, np.ndarray]:
        """A batch's tally and cost records (1 where nothing is curated: models 0 and 1)."""
        if not self.active:
            return {}
        return {TALLY: np.zeros((count, 2)), COST: np.ones((count, num_records))}

    def kernel_args(self, st: dict[str, Any]) -> dict[str, Any]:
        """The kernel's keyword arguments ``curation``, ``tally`` and ``rec_cost``."""
        return {"curation": self.vector, "tally": st.get(TALLY), "rec_cost": st.get(COST)}

    def chunk(self, st: dict[str, Any], i: int, j: int) -> dict[str, np.ndarray]:
        """The ``candidates`` metric of the batch's rows ``i..j``, records by chains."""
        if not self.active:
            return {}
        return {"candidates": np.ascontiguousarray(st[COST][i:j].T)}

    def collect(self, st: dict[str, Any], lo: int, hi: int) -> None:
        """Add a finished batch to the run's totals."""
        if not self.active:
            return
        totals, tally = self.arrays[TOTALS], st[TALLY]
        # Chain after chain (cumsum adds in order) within each segment, the segments' sums
        # in order: the same total whatever the batches or cluster tasks.
        i, n = 0, hi - lo
        while i < n:
            end = min(n, i + aggregates.SEGMENT - (lo + i) % aggregates.SEGMENT)
            totals[3] = np.cumsum(np.concatenate([totals[3:], tally[i:end, 0]]))[-1]
            if (lo + end) % aggregates.SEGMENT == 0:
                if self._segments is not None:
                    self._segments.append(float(totals[3]))
                else:
                    totals[0] += totals[3]
                totals[3] = 0.0
            i = end
        totals[1:3] += [tally[:, 1].sum(), n]

    def begin_fragment(self) -> None:
        """Take the next batches as a cluster's fragment (see :meth:`merge`)."""
        if self.active:
            self.arrays[TOTALS][:] = 0.0
            self._segments = []

    def end_fragment(self) -> dict[str, Any]:
        """The fragment's totals: its segments' candidates, the rest added up."""
        if not self.active:
            return {}
        segments, self._segments = self._segments or [], None
        return {"segments": np.array(segments), "totals": self.arrays[TOTALS].copy()}

    def merge(self, frag: dict[str, Any]) -> None:
        """Add a fragment that begins on a segment, as if its batches had been collected here."""
        if not self.active:
            return
        totals = self.arrays[TOTALS]
        for seg in frag["segments"]:
            totals[0] += seg
        totals[1:3] += frag["totals"][1:3]
        totals[3] = frag["totals"][3]

    def summarize(
        self,
        s: dict[str, Any],
        cost: aggregates.Column | None,
        generations: int,
        exact: float | None,
    ) -> None:
        """Add the operators and their cost to the summary ``s``.

        ``cost``: the last generation's candidates per kept sample across chains;
        ``exact``: its closed form where it is a constant (None otherwise).
        """
        if not self.active:
            return
        s["curation"] = self.cur.to_dict()
        if generations < 2:
            exact = 1.0  # model 1 is fitted to real data: nothing was curated
        if cost is not None:
            c = s["chains"]
            se = cost.std() / math.sqrt(c) if c > 1 else None
            s["mean_final_candidates"] = cost.mean()
            s["stderr_final_candidates"] = se
            s["theory_mean_final_candidates"] = exact
            if exact is not None and se == 0.0:  # a constant cost: equal, or far off
                gap = cost.mean() - exact
                s["z_mean_final_candidates"] = 0.0 if gap == 0 else math.copysign(1e9, gap)
            else:
                s["z_mean_final_candidates"] = common.z(cost.mean(), exact, se)
        totals = self.arrays[TOTALS]
        if generations > 1 and totals[2] > 0:
            total = totals[0] + totals[3]
            s["mean_candidates"] = float(total / (totals[2] * (generations - 1)))
            s["starved_generations"] = int(totals[1])
