"""The tasks a cluster worker runs: one batch of chains through every generation, and the
collection of a finished batch into a fragment of the run's statistics.

A worker builds the run's plan once (from the family's ``make_plan``, which holds only
the configuration), then runs each batch it is given exactly as the one-process driver
does: the same start, the same blocks of generations, the same kernels. The first
batches (up to the end of the streamed statistics' pilot, or all of a run whose
statistics hold every value) go back whole, less the kernels' working memory
(``Plan.scratch``), and the client collects them. Each later batch is collected where
it ran, into a fragment: its counts, segment sums, extremes and histograms with the
run's windows, and the rows of the first chains; the client merges the fragments in
chain order. A task's chains draw from the streams of
``(seed, chain)``, so which worker runs it, and how often (after a worker died), changes
nothing.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from . import _common as common

__all__ = ["collect_fragment", "run_batch"]

# One batch at a time per worker process: the kernels take all the threads they are
# given, and Numba's workqueue threading layer refuses two parallel regions at once.
_LOCK = threading.Lock()
_PLANS: OrderedDict[str, Any] = OrderedDict()
_KEEP_PLANS = 2


def _plan(token: str, make_plan: Callable[[], Any]) -> Any:
    plan = _PLANS.get(token)
    if plan is None:
        plan = _PLANS[token] = make_plan()
        while len(_PLANS) > _KEEP_PLANS:
            _PLANS.popitem(last=False)
    return plan


def run_batch(
    token: str,
    make_plan: Callable[[], Any],
    lo: int,
    hi: int,
    g0: int,
    t: int,
    block: int | None,
    threads: int | None,
    saved: dict[str, Any] | None,
    initial: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Advance chains ``[lo, hi)`` from model ``g0`` (a fresh start, or ``saved``, a
    checkpointed state) to model ``t``; return ``(state, the run-wide arrays it filled
    (chain 0's batch only), kernel seconds)``.

    ``initial``: chain 0's run-wide arrays as a checkpoint left them, for chain 0's batch
    resumed past model 0 (the rows of the generations before ``g0``).
    """
    with _LOCK:
        plan = _plan(token, make_plan)
        if lo == 0:
            for name, arr in (initial or {}).items():
                plan.arrays[name][...] = arr
        if threads is not None:
            import numba

            common.set_threads(min(threads, int(numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
        k0 = time.perf_counter()
        state = plan.restore(saved, lo, hi) if saved is not None else plan.start(lo, hi)
        g = g0
        while g < t:
            g_end = min(t, g + (block or plan.block(hi - lo, g)))
            inner = plan.advance(state, lo, hi, g, g_end)
            if inner is not None:
                for _ in inner:
                    pass
            g = g_end
        seconds = time.perf_counter() - k0
        filled = {name: plan.arrays[name].copy() for name in plan.chain0_arrays} if lo == 0 else {}
    return {k: v for k, v in state.items() if k not in plan.scratch}, filled, seconds


def collect_fragment(
    token: str,
    make_plan: Callable[[], Any],
    finished: tuple[dict[str, Any], dict[str, Any], float],
    lo: int,
    hi: int,
    shared: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Collect a finished batch (:func:`run_batch`'s result) of chains ``[lo, hi)`` into a
    fragment, with the run's ``shared`` windows and shifts; return it as
    :func:`run_batch` returns a state, with the collection's seconds added."""
    state, filled, seconds = finished
    with _LOCK:
        plan = _plan(token, make_plan)
        k0 = time.perf_counter()
        plan.stream.begin_fragment(lo, shared)
        if plan.tracker is not None:
            plan.tracker.begin_fragment()
        for name, kind in plan.merges.items():
            if kind == "add":
                plan.arrays[name][...] = 0
        plan.collect(state, lo, hi)
        arrays = {}
        for name, kind in plan.merges.items():
            arr = plan.arrays[name]
            arrays[name] = (
                arr.copy() if kind == "add" else arr[lo : max(lo, min(hi, len(arr)))].copy()
            )
        fragment = {
            "stream": plan.stream.end_fragment(),
            "tracker": {} if plan.tracker is None else plan.tracker.end_fragment(),
            "arrays": arrays,
        }
        seconds += time.perf_counter() - k0
    return fragment, filled, seconds
