"""Token chains in JAX: every regime; smoothing and decoding.

State per chain: the counts of its training set (K,) (the pooled counts when
accumulating) and, for keep-original, the kept real counts. One generation decodes the
model (temperature, then top-k, then top-p, as :mod:`collapsesim.kernels.categorical`),
draws the model's tokens by inverting the cumulative distribution (O(K + n log K)),
counts them (a scatter-add), adds the regime's real tokens and refits. Generation 0 is
n real tokens from the original. Metrics of recorded models are computed on the device.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import numpy as np

from ..keys import generation_key
from ._curation import Ops, checked, token_counts
from ._regimes import (
    ACCUMULATE_SUBSAMPLE,
    KEEP_ORIGINAL,
    append,
    subsample,
    synthetic_count,
    training_stats,
)
from .gaussian import _jax

__all__ = ["METRICS", "TokenInfo", "TokenState", "advance", "decode", "init_state"]

METRICS = ("heterozygosity", "entropy", "support", "top_share", "tail10", "tail1", "tv", "kl")


def decode(p: Any, temperature: float, top_k: int, top_p: float) -> Any:
    """Temperature, then top-k, then top-p; ties rank by the lower index. Sums to 1."""
    jnp = _jax().numpy
    k = p.shape[-1]
    q = p
    if temperature != 1.0:
        q = jnp.where(p > 0, (p / jnp.max(p)) ** (1.0 / temperature), 0.0)
    if 0 < top_k < k or top_p < 1.0:
        order = jnp.argsort(-q, stable=True)
        sq = q[order]
        ranks = jnp.arange(k)
        keep = ranks < (top_k if 0 < top_k < k else k)
        sq = jnp.where(keep, sq, 0.0)
        if top_p < 1.0:
            total = jnp.sum(sq)
            before = jnp.cumsum(sq) - sq
            keep = keep & (before < top_p * total)
        q = jnp.zeros_like(q).at[order].set(jnp.where(keep, sq, 0.0))
    return q / jnp.sum(q)


def _draw_tokens(key: Any, q: Any, m: int) -> Any:
    """m tokens (int32) drawn from q by inverting its cumulative distribution.

    A zero-probability category is a flat step of the CDF, which ``searchsorted`` with
    ``side="right"`` never lands on.
    """
    jax = _jax()
    jnp = jax.numpy
    cdf = jnp.cumsum(q)
    u = jax.random.uniform(key, (m,), q.dtype) * cdf[-1]
    return jnp.minimum(jnp.searchsorted(cdf, u, side="right"), q.shape[-1] - 1).astype(jnp.int32)


def _draw(key: Any, q: Any, m: int) -> Any:
    """Counts (K,) of m tokens drawn from q."""
    jnp = _jax().numpy
    counts = jnp.zeros(q.shape[-1], jnp.int32)
    return counts if m == 0 else counts.at[_draw_tokens(key, q, m)].add(1)


def _metrics(p: Any, p0: Any, rare10: Any, rare1: Any) -> Any:
    jnp = _jax().numpy
    pos = p > 0
    lp = jnp.where(pos, jnp.log(jnp.where(pos, p, 1.0)), 0.0)
    lp0 = jnp.log(jnp.where(p0 > 0, p0, 1.0))
    return jnp.stack(
        [
            1.0 - jnp.sum(p * p),
            -jnp.sum(p * lp),
            jnp.sum(pos).astype(p.dtype),
            jnp.max(p),
            jnp.sum(jnp.where(rare10, p, 0.0)),
            jnp.sum(jnp.where(rare1, p, 0.0)),
            0.5 * jnp.sum(jnp.abs(p - p0)),
            jnp.sum(jnp.where(pos, p * (lp - lp0), 0.0)),
        ]
    )


class TokenState(NamedTuple):
    """One chain's state (with a leading chain axis when vmapped).

    ``t`` is the model the chain is at; ``counts`` its training set's token counts (the
    pool's when accumulating), ``kept`` the kept real counts (keep-original),
    ``fixed_at`` the first model with a single category (-1: none yet), and the pool of
    ``accumulate-subsample`` (None otherwise).
    """

    t: Any
    counts: Any
    kept: Any
    fixed_at: Any
    pool: Any = None
    pool_size: Any = None
    cost: Any = None  # with curation: candidates per kept token of the last generation
    cost_sum: Any = None  # and their sum over the curated generations
    starved: Any = None  # and the generations whose selection kept nothing of the model


class TokenInfo(NamedTuple):
    """What one generation reports: whether its fit sits on a single category."""

    fixed: Any


_STATIC = ("n", "regime", "num_real", "eps", "temperature", "top_k", "top_p", "ops")


def _model(counts: Any, eps: float, dtype: Any) -> Any:
    """The fitted distribution: counts with additive smoothing eps, normalised."""
    jnp = _jax().numpy
    k = counts.shape[-1]
    total = jnp.sum(counts).astype(dtype)
    return (counts.astype(dtype) + eps) / (total + k * eps)


def _step(
    key: Any,
    st: TokenState,
    p0: Any,
    *,
    n: int,
    regime: int,
    num_real: int,
    eps: float,
    temperature: float,
    top_k: int,
    top_p: float,
    ops: Ops | None = None,
) -> tuple[TokenState, TokenInfo]:
    """One generation of one chain: model ``st.t`` draws (decoded), the regime assembles."""
    jax = _jax()
    jnp = jax.numpy
    k = p0.shape[-1]
    t = st.t
    k_model, k_real = jax.random.split(key)
    p = _model(st.counts, eps, p0.dtype)
    q = decode(p, temperature, top_k, top_p)
    # Generation 0 is real data from the original; later ones come from the model.
    draw_from = jnp.where(t == 0, p0, q)
    if regime == ACCUMULATE_SUBSAMPLE:
        # The new tokens join the pool; n of the pool are the training set.
        pool, size = append(st.pool, st.pool_size, _draw_tokens(k_model, draw_from, n))
        idx = subsample(k_real, pool, size, n, p0.dtype)
        st = st._replace(pool=pool, pool_size=size)
        own = jnp.zeros(k, jnp.int32).at[pool[idx]].add(1)
    else:
        synth = synthetic_count(regime, n, num_real)
        own = _draw(k_model, draw_from, synth)
        if ops is not None and synth == 0:  # no synthetic tokens: one candidate per token
            st = st._replace(cost_sum=st.cost_sum + jnp.where(t >= 1, 1.0, 0.0))
        elif ops is not None:
            # Generation 0 is real: the operators shape the draws of models 1, 2, ...
            curated, cost, gave_up = token_counts(k_model, ops, q, p, p0, synth)
            live = t >= 1
            own = jnp.where(live, curated, own)
            cost = jnp.where(live, cost, 1.0).astype(p0.dtype)
            st = st._replace(cost=cost, cost_sum=st.cost_sum + jnp.where(live, cost, 0.0),
                             starved=st.starved + (live & gave_up).astype(st.starved.dtype))  # fmt: skip
    # Counts merge by addition; generation 0's accumulated pool starts empty.
    counts, _, kept = training_stats(
        regime,
        t,
        own,
        merge=lambda a, b: a + b,
        real=lambda: _draw(k_real, p0, num_real),
        pooled=st.counts,
        kept=st.kept,
    )
    one = jnp.zeros((), bool) if eps > 0 else jnp.sum(counts > 0) == 1
    fixed_at = jnp.where((st.fixed_at < 0) & one, t + 1, st.fixed_at)
    st = st._replace(t=t + 1, counts=counts, fixed_at=fixed_at)
    if regime == KEEP_ORIGINAL:
        st = st._replace(kept=kept)
    return st, TokenInfo(one)


@partial(_jax().jit, static_argnames=_STATIC)
def _advance(
    state: dict[str, Any],
    keys: Any,
    t0: Any,
    p0: Any,
    rare10: Any,
    rare1: Any,
    *,
    steps: Any,
    n: int,
    regime: int,
    num_real: int,
    eps: float,
    temperature: float,
    top_k: int,
    top_p: float,
    ops: Ops | None = None,
) -> tuple[dict[str, Any], Any]:
    jax = _jax()
    jnp = jax.numpy
    params: dict[str, Any] = {"n": n, "regime": regime, "num_real": num_real, "eps": eps,
              "temperature": temperature, "top_k": top_k, "top_p": top_p, "ops": ops}  # fmt: skip

    def one_chain(st: dict[str, Any], key: Any) -> tuple[dict[str, Any], Any]:
        # A loop with a traced trip count: segments of any length share one compilation.
        def body(i: Any, carry: TokenState) -> TokenState:
            return _step(generation_key(key, carry.t), carry, p0, **params)[0]

        start = TokenState(t=t0 + jnp.zeros((), jnp.int32), **st)
        end = jax.lax.fori_loop(0, steps, body, start)
        out = {k: v for k, v in end._asdict().items() if k != "t" and v is not None}
        return out, _metrics(_model(end.counts, eps, p0.dtype), p0, rare10, rare1)

    return jax.vmap(one_chain)(state, keys)


def init_state(
    count: int, k: int, num_real: int, pool_capacity: int = 0, curated: bool = False
) -> dict[str, np.ndarray]:
    """Chains at model 0 (no training data yet).

    ``pool_capacity``: accumulate-subsample keeps every token, n (T + 1) per chain.
    ``curated``: the state holds the last generation's candidates per kept token and
    their sum (curation).
    """
    state: dict[str, np.ndarray] = {
        "counts": np.zeros((count, k), np.int32),
        "kept": np.zeros((count, k if num_real else 1), np.int32),
        "fixed_at": np.full(count, -1, np.int32),
    }
    if curated:
        state |= {"cost": np.ones(count), "cost_sum": np.zeros(count), "starved": np.zeros(count)}
    if pool_capacity:
        state["pool"] = np.zeros((count, pool_capacity), np.int32)
        state["pool_size"] = np.zeros(count, np.int32)
    return state


# Long for its docstring, its checks and the loops over chunks and segments around the jit step.
def advance(
    state: dict[str, np.ndarray],
    seed: int,
    chains: np.ndarray,
    t_start: int,
    t_end: int,
    slots: np.ndarray,
    records: np.ndarray,
    *,
    num_samples: int,
    regime: int,
    num_real: int,
    p0: np.ndarray,
    smoothing: float = 0.0,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    dtype: str = "float32",
    chunk: int = 4096,
    snap_slots: np.ndarray | None = None,
    snaps: np.ndarray | None = None,
    snap_row: int = -1,
    curation: np.ndarray | None = None,
    tally: np.ndarray | None = None,
    rec_cost: np.ndarray | None = None,
) -> None:
    """Advance token chains on all local JAX devices, in place; metrics at recorded models.

    ``records`` is ``(B, R, 8)`` in :data:`METRICS` order, as the Numba kernel's;
    ``snap_slots``, ``snaps`` and ``snap_row`` store one chain's whole model at some
    generations, as there; ``curation``, ``tally`` and ``rec_cost`` as
    :func:`collapsesim.kernels.categorical.advance_tokens`'s (the state then holds
    ``cost`` and ``cost_sum``, :func:`init_state`; kinds drawn as :mod:`._curation`).

    Raises:
        ValueError: accumulate-subsample (Numba only) or bad arguments.
    """
    from ..distributed import host
    from ..kernels.categorical import rare_masks
    from ._devices import chunks, segment_ends
    from .gaussian import _precision

    jax = _jax()
    if regime == ACCUMULATE_SUBSAMPLE and (
        "pool" not in state or state["pool"].shape[1] < num_samples * (t_end + 1)
    ):
        raise ValueError("accumulate-subsample needs a pool of n (T + 1) tokens per chain")
    if not (temperature > 0 and smoothing >= 0 and 0 < top_p <= 1 and top_k >= 0):
        raise ValueError("need temperature > 0, smoothing >= 0, 0 < top_p <= 1, top_k >= 0")
    ops = checked(curation, state, tally, rec_cost, regime == ACCUMULATE_SUBSAMPLE)
    if snap_slots is None or snaps is None:
        snap_slots = np.full(t_end - t_start, -1, np.int64)
    ends = segment_ends(t_start, t_end, slots, snap_slots)
    r10, r1 = rare_masks(p0)
    k = len(p0)
    with _precision(dtype):
        jp0 = jax.numpy.asarray(p0, dtype)
        for lo, hi, keys, st in chunks(seed, chains, state, chunk, lambda name, v: v):
            t = t_start
            for end in ends:
                st, met = _advance(
                    st,
                    keys,
                    np.int32(t),
                    jp0,
                    r10,
                    r1,
                    steps=np.int32(end - t),
                    n=num_samples,
                    regime=regime,
                    num_real=num_real,
                    eps=float(smoothing),
                    temperature=float(temperature),
                    top_k=int(top_k),
                    top_p=float(top_p),
                    ops=ops,
                )
                t = end
                slot = slots[end - 1 - t_start]
                if slot >= 0:
                    records[lo:hi, slot] = host(met)[: hi - lo]
                    if ops is not None and rec_cost is not None:
                        rec_cost[lo:hi, slot] = host(st["cost"])[: hi - lo]
                srow = snap_slots[end - 1 - t_start]
                if srow >= 0 and snaps is not None and lo <= snap_row < hi:
                    cnt = st["counts"]
                    one = (
                        np.asarray(cnt[snap_row - lo])
                        if cnt.is_fully_addressable
                        else host(cnt)[snap_row - lo]
                    )
                    c = one.astype(np.float64)
                    snaps[srow] = (c + smoothing) / (c.sum() + k * smoothing)
            for name, arr in state.items():
                arr[lo:hi] = host(st[name])[: hi - lo]
            if ops is not None and tally is not None:
                tally[lo:hi, 0] = state["cost_sum"][lo:hi]
                tally[lo:hi, 1] = state["starved"][lo:hi]
