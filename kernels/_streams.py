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
