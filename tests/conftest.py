"""Shared fixtures. Tests import the installed package, never the source tree."""

from __future__ import annotations

import numpy as np
import pytest

from collapsesim.kernels import gaussian as kern
from collapsesim.regimes import Regime


def final_state(
    num_chains: int,
    generations: int,
    n: int,
    *,
    ddof: int = 0,
    regime: int = Regime.REPLACE.code,
    num_real: int = 0,
    sufficient: bool = True,
    seed: int = 0,
    chains: np.ndarray | None = None,
    record_all: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Run chains straight through the kernel; return ``(mu, log_sigma)``.

    Shapes are ``(C,)`` at the last generation, or ``(C, T + 1)`` with ``record_all``.
    """
    ids = np.arange(num_chains) if chains is None else chains
    rng, state = kern.init_chains(seed, ids, 0.0, 1.0)
    if record_all:
        slots = np.arange(1, generations + 1, dtype=np.int64)
        r = generations + 1
    else:
        slots = np.full(generations, -1, np.int64)
        slots[-1] = 0
        r = 1
    mu = np.zeros((len(ids), r))
    ls = np.zeros((len(ids), r))
    pool = pool_size = None
    if regime == Regime.ACCUMULATE_SUBSAMPLE.code:
        pool = np.empty((len(ids), n * (generations + 1)))
        pool_size = np.zeros(len(ids), np.int64)
    kern.advance(
        rng,
        state,
        0,
        generations,
        slots,
        mu,
        ls,
        num_samples=n,
        ddof=ddof,
        regime=regime,
        num_real=num_real,
        sufficient=sufficient,
        mu0=0.0,
        sigma0=1.0,
        pool=pool,
        pool_size=pool_size,
    )
    if record_all:
        ls[:, 0] = 0.0
        return mu, ls
    return mu[:, 0], ls[:, 0]


@pytest.fixture
def run_final():
    return final_state
