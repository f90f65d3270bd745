"""Chunks of chains on all local devices, and the generation segments between records."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


def segment_ends(t_start: int, t_end: int, *marks: np.ndarray) -> list[int]:
    """Models after which a scan segment ends: each marked one (a slot >= 0) and ``t_end``."""
    ends = [t_start + j + 1 for j in range(t_end - t_start) if any(m[j] >= 0 for m in marks)]
    if not ends or ends[-1] != t_end:
        ends.append(t_end)
    return ends


def chunks(
    seed: int,
    chains: np.ndarray,
    state: dict[str, np.ndarray],
    chunk: int,
    cast: Callable[[str, np.ndarray], np.ndarray],
) -> Iterator[tuple[int, int, Any, dict[str, Any]]]:
    """Yield ``(lo, hi, keys, state)`` of each chunk of at most ``chunk`` chains.

    Keys and state are sharded along the chain axis over all devices: the local ones,
    or in a multi-host run (:mod:`collapsesim.distributed`) those of every process, each
    process placing its own shards. A chunk is padded to a multiple of the device count
    by repeating its first chain (padding rows are computed and dropped).
    ``cast(name, array)`` sets each state array's dtype.
    """
    import jax

    from ..keys import chain_keys

    devices = jax.devices()
    mesh = jax.sharding.Mesh(np.array(devices), ("chains",))
    shard = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("chains"))

    def place(a: Any, sharding: Any) -> Any:
        if jax.process_count() == 1:
            return jax.device_put(a, sharding)
        a = np.asarray(a)  # each process places its own shards
        return jax.make_array_from_callback(a.shape, sharding, lambda idx: a[idx])

    for lo in range(0, len(chains), chunk):
        hi = min(len(chains), lo + chunk)
        pad = (-(hi - lo)) % len(devices)
        ids = np.concatenate([chains[lo:hi], np.zeros(pad, chains.dtype)])
        keys = chain_keys(seed, ids)
        if jax.process_count() > 1:  # typed keys travel as their raw words
            keys = jax.random.wrap_key_data(place(jax.random.key_data(keys), shard))
        else:
            keys = place(keys, shard)
        st = {
            name: place(
                cast(name, np.concatenate([v[lo:hi], np.repeat(v[lo : lo + 1], pad, axis=0)])),
                shard,
            )
            for name, v in state.items()
        }
        yield lo, hi, keys, st
