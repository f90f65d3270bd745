"""The training-set assembly of every data regime for the JAX chains, written once.

A JAX family draws its model's group and states how two groups' statistics merge
(``(count, mean, M2)`` for a Gaussian, token counts for a categorical); which statistics
a generation trains on is decided by :func:`training_stats`, and the pool of
``accumulate-subsample`` by :func:`append` and :func:`subsample`. Regime codes are
:data:`collapsesim.regimes.CODES`; the regime is a static (compile-time) argument, so
each compiled step holds only its own regime's branch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..regimes import CODE_ACCUMULATE as ACCUMULATE
from ..regimes import CODE_ACCUMULATE_SUBSAMPLE as ACCUMULATE_SUBSAMPLE
from ..regimes import CODE_FRESH as FRESH
from ..regimes import CODE_KEEP_ORIGINAL as KEEP_ORIGINAL
from ..regimes import CODE_REPLACE as REPLACE

__all__ = [
    "ACCUMULATE",
    "ACCUMULATE_SUBSAMPLE",
    "FRESH",
    "KEEP_ORIGINAL",
    "REPLACE",
    "append",
    "merge_moments",
    "subsample",
    "synthetic_count",
    "training_stats",
]


def synthetic_count(regime: int, n: int, num_real: int) -> int:
    """How many of a generation's n training points the current model draws."""
    return n - num_real if regime in (FRESH, KEEP_ORIGINAL) else n


def merge_moments(a: tuple[Any, Any, Any], b: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
    """Merge two groups' ``(count, mean, M2)`` exactly (Chan et al.); an empty group is 0."""
    import jax.numpy as jnp

    na, ma, m2a = a
    nb, mb, m2b = b
    n = na + nb
    safe = jnp.where(n > 0, n, 1)
    delta = mb - ma
    return n, ma + delta * (nb / safe), m2a + m2b + delta * delta * (na * nb / safe)


def training_stats(
    regime: int,
    t: Any,
    own: Any,
    *,
    merge: Callable[[Any, Any], Any],
    real: Callable[[], Any] | None = None,
    pooled: Any = None,
    kept: Any = None,
) -> tuple[Any, Any, Any]:
    """Statistics of generation t's training set, from the group the model drew.

    Args:
        regime: the regime code (static).
        t: the generation (traced).
        own: the statistics of the model's own group (of :func:`synthetic_count` points).
        merge: ``merge(a, b)`` of two groups' statistics.
        real: returns the statistics of a real share drawn from the original now
            (fresh, keep-original).
        pooled: accumulate: the statistics of every generation so far (empty at t = 0).
        kept: keep-original: the kept share of generation 0 (drawn at t = 0).

    Returns:
        ``(train, pooled, kept)``: the training set's statistics and the carried pool
        and kept share after this generation (unchanged where the regime has none).
    """
    import jax
    import jax.numpy as jnp

    if regime == ACCUMULATE:
        pooled = merge(pooled, own)
        return pooled, pooled, kept
    if regime == FRESH:
        assert real is not None
        return merge(own, real()), pooled, kept
    if regime == KEEP_ORIGINAL:
        assert real is not None
        first = t == 0
        kept = jax.tree.map(lambda new, old: jnp.where(first, new, old), real(), kept)
        return merge(own, kept), pooled, kept
    return own, pooled, kept  # replace, accumulate-subsample (subsampled already)


def append(pool: Any, size: Any, new: Any) -> tuple[Any, Any]:
    """A chain's pool ``(L,)`` with the ``new`` draws ``(n,)`` written after its ``size``."""
    import jax

    return jax.lax.dynamic_update_slice(pool, new, (size,)), size + new.shape[0]


def subsample(key: Any, pool: Any, size: Any, n: int, dtype: Any) -> Any:
    """Indices of n of the pool's first ``size`` entries, uniformly without replacement.

    The n smallest of independent uniform keys over the filled slots.
    """
    import jax
    import jax.numpy as jnp

    cap = pool.shape[0]
    u = jax.random.uniform(key, (cap,), dtype)
    u = jnp.where(jnp.arange(cap) < size, u, 2.0)
    _, idx = jax.lax.top_k(-u, n)
    return idx
