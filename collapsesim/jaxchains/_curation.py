"""The curation operators of the JAX Gaussian chains: the laws of ``kernels/_curation.py``,
drawn exactly and without rejection loops, so that every lane of a vmapped generation does
the same work.

Where the Numba sample method draws candidates until n are kept, these draw from the
kept law itself: truncated normals for ``interval`` and ``self-interval``, the closed-form
Gaussian for ``soft`` (both methods), ``lax.top_k`` over ceil(n / X) candidates for ``top``
and ``self-top``, and the Gumbel-max trick for best-of (``argmax(r_k + G_k)`` with
standard Gumbel G is candidate k with probability ``exp(r_k) / sum_j exp(r_j)``). The
candidates per kept sample are then their expectation given the model (``1 / P(kept)``),
as the sufficient method records them.

In standard units (the original is N(0, 1)); a chain's model is ``(mu, log sigma)``.

References:
    E. J. Gumbel, "Statistical theory of extreme values and some practical applications",
    NBS Applied Mathematics Series 33 (1954) (the Gumbel-max choice).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..curation import (
    BEST_OF,
    BIAS,
    CORRECT,
    INTERVAL,
    KIND,
    LOGLIK,
    REWARD,
    SELF_INTERVAL,
    SELF_TOP,
    SLOPE,
    SOFT,
    STRENGTH,
    TOP,
    candidates_of_top,
)

__all__ = ["Ops", "checked", "correct", "draws", "law", "ops_of", "token_counts"]


class Ops(NamedTuple):
    """The operators as static values (a jit's hashable argument)."""

    bias: float
    kind: int
    strength: float
    best_of: int
    loglik: bool
    slope: float
    fraction: float


def ops_of(vector: np.ndarray | None) -> Ops | None:
    """The operators of a curation vector (:meth:`collapsesim.curation.Curation.vector`)."""
    if vector is None:
        return None
    v = [float(x) for x in vector]
    return Ops(v[BIAS], int(v[KIND]), v[STRENGTH], int(v[BEST_OF]), int(v[REWARD]) == LOGLIK,
               v[SLOPE], v[CORRECT])  # fmt: skip


def checked(
    vector: np.ndarray | None, state: dict[str, Any], tally: Any, rec_cost: Any, subsample: bool
) -> Ops | None:
    """The operators of a JAX chains' ``advance`` call, with its arguments checked.

    Raises:
        ValueError: a state without the curation's fields (see the chains' ``init_state``),
            no tally or cost records, or accumulate-subsample (Numba only).
    """
    ops = ops_of(vector)
    if ops is None:
        return None
    if "cost" not in state or tally is None or rec_cost is None:
        raise ValueError("curation needs a curated state (init_state), tally and rec_cost")
    if subsample:
        raise ValueError("curation of accumulate-subsample runs on the numba backend")
    return ops


def law(ops: Ops, mu: Any, log_sigma: Any) -> tuple[Any, Any, Any]:
    """The model's draws before any selection by draws, in closed form where exact.

    Returns:
        ``(m, log ratio, cost)``: kept draws are ``m + exp(log sigma + log ratio) y``
        with ``y ~ N(0, 1)`` (bias; and ``soft``, applied here in closed form), and the
        expected candidates per kept sample.
    """
    import jax.numpy as jnp

    lr = jnp.full_like(mu, math.log(ops.bias))
    if ops.kind != SOFT:
        return mu, lr, jnp.ones_like(mu)
    beta = ops.strength
    q = 1.0 + beta * jnp.exp(2.0 * (log_sigma + lr))
    return mu / q, lr - 0.5 * jnp.log(q), jnp.sqrt(q) * jnp.exp(0.5 * beta * mu * mu / q)


def correct(ops: Ops, m: Any, lr: Any, mu: Any, log_sigma: Any) -> tuple[Any, Any]:
    """The frame after moving each sample ``t`` of the way along the optimal-transport map
    from N(mu, sigma^2) to N(0, 1) (see :func:`collapsesim.kernels._curation.correct`)."""
    import jax.numpy as jnp

    f = ops.fraction
    if f == 0.0:
        return m, lr
    inv = jnp.exp(-log_sigma)
    return (1.0 - f) * m + f * (m - mu) * inv, lr + jnp.log((1.0 - f) + f * inv)


def draws(
    key: Any, ops: Ops, k: int, m: Any, lr: Any, log_sigma: Any, dtype: Any
) -> tuple[Any, Any, Any, Any]:
    """``(mean, M2, cost, starved)`` of the k kept standardised draws of the frame
    ``(m, lr)``.

    The kinds that select by draws (all but bias and soft, which :func:`law` applied)
    draw from their kept law directly (see the module docstring). An interval that keeps
    less than ``2^-16`` of the draws (the Numba kernels' cap on candidates) gives up as
    they do: the draws are kept unselected, at ``2^16`` candidates per kept sample, and
    the generation counts as starved.
    """
    import jax
    import jax.numpy as jnp

    x = ops.strength
    s = jnp.exp(log_sigma + lr)
    cost = jnp.ones((), dtype)
    starved = jnp.zeros((), bool)
    if ops.kind in (INTERVAL, SELF_INTERVAL):
        k_u, k_z = jax.random.split(key)
        if ops.kind == INTERVAL:  # |m + s y| <= X; a collapsed model (s = 0) keeps all or none
            inside = jnp.abs(m) <= x
            lo = jnp.where(s > 0, (-x - m) / s, jnp.where(inside, -jnp.inf, jnp.inf))
            hi = jnp.where(s > 0, (x - m) / s, jnp.where(inside, jnp.inf, -jnp.inf))
        else:  # |ratio y| <= X
            lo, hi = -x / jnp.exp(lr), x / jnp.exp(lr)
        y, cost, starved = _truncated(k_u, k_z, lo, hi, k, dtype)
    elif ops.kind in (TOP, SELF_TOP):
        big = candidates_of_top(k, x)
        cand = jax.random.normal(key, (big,), dtype)
        # Most likely first: under the original |m + s y| ranks as y (2 m + s y), under the
        # current model (the draws' centre) as |y|.
        score = cand * (2.0 * m + s * cand) if ops.kind == TOP else jnp.abs(cand)
        y = cand[jax.lax.top_k(-score, k)[1]]
        cost = jnp.asarray(big / k, dtype)
    elif ops.best_of > 1:
        k_y, k_g = jax.random.split(key)
        cand = jax.random.normal(k_y, (k, ops.best_of), dtype)
        reward = -0.5 * s * (cand * (2.0 * m + s * cand)) if ops.loglik else ops.slope * s * cand
        pick = jnp.argmax(reward + jax.random.gumbel(k_g, cand.shape, dtype), axis=1)
        y = jnp.take_along_axis(cand, pick[:, None], axis=1)[:, 0]
        cost = jnp.asarray(float(ops.best_of), dtype)
    else:
        y = jax.random.normal(key, (k,), dtype)
    ybar = jnp.mean(y)
    return ybar, jnp.sum((y - ybar) ** 2), cost, starved


_GIVE_UP = 2.0**-16  # the Numba kernels' MAX_TRIES: candidates per kept sample at most 2^16


def _truncated(k_u: Any, k_z: Any, lo: Any, hi: Any, k: int, dtype: Any) -> tuple[Any, Any, Any]:
    """k draws of N(0, 1) kept on [lo, hi], the expected candidates per kept draw, and
    whether the interval keeps too little (then plain normals, as the Numba kernels).

    By inversion in the lower tail (an interval above 0 is mirrored), in logs:
    ``u = Phi(hi) (r + U (1 - r))`` with ``r = Phi(lo) / Phi(hi)``, so neither tail's mass
    cancels or underflows before the interval is given up.
    """
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import log_ndtr, ndtri

    flip = lo > 0
    a, b = jnp.where(flip, -hi, lo), jnp.where(flip, -lo, hi)
    la, lb = log_ndtr(a), log_ndtr(b)
    r = jnp.exp(la - lb)
    log_mass = lb + jnp.log1p(-r)
    starved = ~(log_mass >= np.log(_GIVE_UP))  # NaN bounds too
    u = jax.random.uniform(k_u, (k,), dtype)
    y = ndtri(jnp.exp(lb + jnp.log(r + u * (1.0 - r))))
    y = jnp.clip(jnp.where(flip, -y, y), lo, hi)
    y = jnp.where(starved, jax.random.normal(k_z, (k,), dtype), y)
    cost = jnp.where(starved, 1.0 / _GIVE_UP, jnp.exp(-log_mass)).astype(dtype)
    return y, cost, starved


def token_counts(key: Any, ops: Ops, q: Any, p: Any, p0: Any, count: int) -> tuple[Any, Any, Any]:
    """Counts (K,) of ``count`` kept tokens of the sampling law q under ``ops``, the
    candidates per kept token and whether nothing of q was kept (starved), by
    ``kernels/_curation.py``'s discrete kinds: interval,
    self-interval and soft as the reweighted law ``q w / sum(q w)`` (cost
    ``1 / sum(q w)``; q unchanged, cost 1, where nothing of it is kept), top and self-top
    by ``lax.top_k`` (ties: the earlier candidate), best-of by the Gumbel-max choice of
    the reward ``log p0``.

    Args:
        key: the generation's model key.
        ops: the operators.
        q: the decoded model the chain samples from; p: the fitted model; p0: the original.
        count: tokens to keep.
    """
    import jax
    import jax.numpy as jnp

    from .tokens import _draw, _draw_tokens

    k, x = q.shape[-1], ops.strength
    if ops.kind in (INTERVAL, SELF_INTERVAL, SOFT):
        ref = p if ops.kind == SELF_INTERVAL else p0
        ratio = ref / jnp.max(ref)
        if ops.kind == SOFT:
            w = jnp.where(ref > 0, ratio ** jnp.asarray(x, q.dtype), 1.0 if x == 0.0 else 0.0)
        else:
            w = (ratio >= math.exp(-0.5 * x * x)).astype(q.dtype)
        kept = jnp.sum(q * w)
        ok = kept > 0
        law = jnp.where(ok, q * w / jnp.where(ok, kept, 1.0), q)
        cost = jnp.where(ok, 1.0 / jnp.where(ok, kept, 1.0), 1.0)
        return _draw(key, law, count), cost, ~ok
    if ops.kind in (TOP, SELF_TOP):
        big = candidates_of_top(count, x)
        cand = _draw_tokens(key, q, big)
        score = (p0 if ops.kind == TOP else p)[cand]
        kept_tokens = cand[jax.lax.top_k(score, count)[1]]
        cost = jnp.asarray(big / count, q.dtype)
        starved = jnp.zeros((), bool)
    else:  # best-of K, reward log p0
        k_t, k_g = jax.random.split(key)
        cand = _draw_tokens(k_t, q, count * ops.best_of).reshape(count, ops.best_of)
        lp0 = jnp.log(jnp.where(p0 > 0, p0, 1.0)) + jnp.where(p0 > 0, 0.0, -jnp.inf)
        reward = lp0[cand] + jax.random.gumbel(k_g, cand.shape, q.dtype)
        kept_tokens = jnp.take_along_axis(cand, jnp.argmax(reward, axis=1)[:, None], axis=1)[:, 0]
        cost = jnp.asarray(float(ops.best_of), q.dtype)
        starved = jnp.zeros((), bool)
    return jnp.zeros(k, jnp.int32).at[kept_tokens].add(1), cost, starved
