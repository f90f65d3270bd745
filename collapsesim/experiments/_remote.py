"""The task a cluster worker runs: one batch of chains through every generation.

A worker builds the run's plan once (from the family's ``make_plan``, which holds only
the configuration), then runs each batch it is given exactly as the one-process driver
does: the same start, the same blocks of generations, the same kernels. It returns the
finished batch's state, less the kernels' working memory (``Plan.scratch``), and the
client collects it in chain order. A task's chains draw from the streams of
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

__all__ = ["run_batch"]

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
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Advance chains ``[lo, hi)`` from model ``g0`` (a fresh start, or ``saved``, a
    checkpointed state) to model ``t``; return ``(state, the run-wide arrays it filled
    (chain 0's batch only), kernel seconds)``."""
    with _LOCK:
        plan = _plan(token, make_plan)
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
