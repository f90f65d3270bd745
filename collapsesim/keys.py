"""JAX keys of a run: one ``fold_in`` scheme from the seed, the chain and the generation.

Every JAX draw of collapsesim comes from a key derived here, so a chain's (or a neural
run's) draws are a function of ``(seed, chain, generation)`` and a named purpose, and
never of the chain count, batches, devices or hosts:

* :func:`seed_key`: ``key(0)`` folded with the seed's low and high 32-bit halves (seeds
  in [0, 2^64), so seeds that differ by 2^32 give different runs);
* :func:`chain_keys`: the seed key folded with the chain index's low and high halves;
* :func:`generation_key`: a chain's key folded with the generation t;
* :func:`subkey`: a generation's key folded with a small integer naming what it draws.

A neural run (VAE, LM) is chain 0 of its seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["chain_key", "chain_keys", "generation_key", "seed_key", "subkey"]

_LOW32 = 0xFFFFFFFF


def _check_seed(seed: int) -> None:
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must lie in [0, 2**64), got {seed}")


def seed_key(seed: int) -> Any:
    """The key of a run's seed, ``0 <= seed < 2**64``."""
    import jax

    _check_seed(seed)
    return jax.random.fold_in(
        jax.random.fold_in(jax.random.key(0), np.uint32(seed & _LOW32)), np.uint32(seed >> 32)
    )


def chain_keys(seed: int, chains: np.ndarray) -> Any:
    """Keys of the given global chains (non-negative int64 ``(B,)``), one per chain."""
    import jax

    base = seed_key(seed)
    chains = np.asarray(chains, dtype=np.uint64)
    lo = (chains & _LOW32).astype(np.uint32)
    hi = (chains >> 32).astype(np.uint32)

    def one(lo_: Any, hi_: Any) -> Any:
        return jax.random.fold_in(jax.random.fold_in(base, lo_), hi_)

    return jax.vmap(one)(lo, hi)


def chain_key(seed: int, chain: int = 0) -> Any:
    """The key of one chain (a neural run is chain 0)."""
    return chain_keys(seed, np.array([chain]))[0]


def generation_key(key: Any, t: Any) -> Any:
    """A chain key's key for generation ``t`` (an integer or a traced scalar)."""
    import jax

    return jax.random.fold_in(key, t)


def subkey(key: Any, *purpose: int) -> Any:
    """``key`` folded with each of ``purpose``: named, never reused subkeys."""
    import jax

    for p in purpose:
        key = jax.random.fold_in(key, np.uint32(p))
    return key
