"""Per-chain random streams of a run, and the chain ids reserved for run-wide draws.

Every family's chains start from :func:`init_streams`: chain ``c`` of seed ``s`` owns the
xoroshiro128++ stream ``_rng.stream_state(s, c)`` and a 64-bit reservoir of spare random
bits, so a chain's draws are a function of ``(seed, chain)`` alone. Draws that belong to
the run rather than to a chain (a held-out sample, random directions) use the reserved
ids at the top of the 64-bit range, which no chain index reaches.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import _rng
from ._flags import JIT

__all__ = [
    "BITS",
    "DIRECTIONS_CHAIN",
    "HELDOUT_CHAIN",
    "NUM_STREAM",
    "S0",
    "S1",
    "check_block",
    "init_streams",
]

# Columns of the per-chain uint64 stream state.
S0, S1 = 0, 1  # xoroshiro128++ state
BITS = 2  # a reservoir of random bits: chunks above a sentinel bit (1: empty)
NUM_STREAM = 3

HELDOUT_CHAIN = 2**64 - 1
"""Stream of a run's fixed held-out sample of the original (mixture)."""
DIRECTIONS_CHAIN = 2**64 - 2
"""Stream of the random directions that integrate tail masses in d >= 3 (mixture)."""


@njit(**JIT)
def _init_streams(seed, chains, out):
    # Serial on purpose: hashing is ~20 ns a chain, and a parallel kernel costs
    # ~0.3 s more to load from the cache than that saves below 10^7 chains.
    for i in range(chains.shape[0]):
        s0, s1 = _rng.stream_state(seed, np.uint64(chains[i]))
        out[i, 0] = s0
        out[i, 1] = s1


def init_streams(seed: int, chains: np.ndarray) -> np.ndarray:
    """Return the stream states of the given chains at their start.

    Args:
        seed: the run's seed, ``0 <= seed < 2**64``.
        chains: global chain indices, shape ``(B,)``, non-negative int64.

    Returns:
        uint64 ``(B, NUM_STREAM)``: the two xoroshiro128++ words and an empty reservoir.

    Raises:
        ValueError: a seed outside [0, 2**64) or a negative chain index.
    """
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    chains = np.ascontiguousarray(chains, dtype=np.int64)
    if chains.size and chains.min() < 0:
        raise ValueError("chain indices must be non-negative")
    rng = np.empty((chains.shape[0], NUM_STREAM), np.uint64)
    _init_streams(np.uint64(seed), chains, rng)
    rng[:, BITS] = 1  # empty reservoir
    return rng


def check_block(
    rng: np.ndarray, chains: int, t_start: int, t_end: int, slots: np.ndarray, records: int
) -> np.ndarray:
    """Check what every kernel's ``advance`` indexes; return ``slots`` as contiguous int64.

    The kernels do not bounds-check, so their wrappers call this first.

    Args:
        rng: the chains' stream states, uint64 ``(chains, NUM_STREAM)``.
        chains: B, the chains advanced.
        t_start: the model the chains are at; ``t_end``: the model to stop at.
        slots: int64 ``(t_end - t_start,)``: the record column of model
            ``t_start + j + 1``, or -1.
        records: R, the record columns there are.

    Raises:
        ValueError: a shape, dtype or range the kernels cannot take.
    """
    if rng.shape != (chains, NUM_STREAM) or rng.dtype != np.uint64:
        raise ValueError(f"rng must be uint64 of shape ({chains}, {NUM_STREAM})")
    if not 0 <= t_start <= t_end:
        raise ValueError("need 0 <= t_start <= t_end")
    if slots.shape != (t_end - t_start,):
        raise ValueError("slots must have one entry per generation advanced")
    if slots.size and slots.max() >= records:
        raise ValueError("a slot points past the record arrays")
    return np.ascontiguousarray(slots, dtype=np.int64)
