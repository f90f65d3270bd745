"""The Gaussian chain in JAX: sample and sufficient methods, every regime (the
subsampling one with samples only, as in the Numba kernels).

State per chain: the fitted mean ``mu`` and ``log sigma`` (a log scale, so that float32
follows a std that collapses by hundreds of orders of magnitude over 10^4 generations
and more), plus the pooled (accumulate) or kept (keep-original) data's count, mean and
sum of squared deviations. One generation draws the model's group of ``n - r`` points
(all n of them, or their mean and chi-square statistic with the sufficient method),
merges it with the regime's real or pooled data (Chan et al.'s exact merge) and refits.
Under ``replace`` the update is done in log scale: ``log sigma' = log sigma +
log(M2_z / (n - ddof)) / 2`` with ``M2_z`` the standardised draws' sum of squares.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import numpy as np

from ..curation import NONE, SOFT
from ..keys import generation_key
from ._curation import Ops, checked, correct, draws, law
from ._regimes import (
    ACCUMULATE,
    ACCUMULATE_SUBSAMPLE,
    FRESH,
    KEEP_ORIGINAL,
    REPLACE,
    append,
    merge_moments,
    subsample,
    synthetic_count,
    training_stats,
)

__all__ = ["STATE", "GaussianInfo", "GaussianState", "advance", "init_state"]

STATE = ("mu", "log_sigma", "pool_n", "pool_mean", "pool_m2", "kept_mean", "kept_m2")


def _jax() -> Any:
    import jax

    return jax


def _group(key: Any, k: int, sufficient: bool, dtype: Any) -> tuple[Any, Any]:
    """(mean, M2) of k standard normals: drawn, or their exact sufficient statistics."""
    jax = _jax()
    jnp = jax.numpy
    if k <= 0:
        return jnp.zeros((), dtype), jnp.zeros((), dtype)
    if sufficient:
        k1, k2 = jax.random.split(key)
        zbar = jax.random.normal(k1, (), dtype) / np.sqrt(k).astype(dtype)
        m2 = 2 * jax.random.gamma(k2, (k - 1) / 2, (), dtype) if k > 1 else jnp.zeros((), dtype)
        return zbar, m2
    z = jax.random.normal(key, (k,), dtype)
    zbar = jnp.mean(z)
    return zbar, jnp.sum((z - zbar) ** 2)


class GaussianState(NamedTuple):
    """One chain's state (with a leading chain axis when vmapped).

    ``t`` is the model the chain is at; the pooled statistics serve ``accumulate``, the
    kept ones ``keep-original``, and the pool ``accumulate-subsample`` (None otherwise).
    """

    t: Any
    mu: Any
    log_sigma: Any
    pool_n: Any
    pool_mean: Any
    pool_m2: Any
    kept_mean: Any
    kept_m2: Any
    pool: Any = None
    pool_size: Any = None
    cost: Any = None  # with curation: candidates per kept sample of the last generation
    cost_sum: Any = None  # and their sum over the curated generations
    starved: Any = None  # and the generations whose selection gave up


class GaussianInfo(NamedTuple):
    """What one generation's fit reports: the new model's mean and log std."""

    mu: Any
    log_sigma: Any


def _step(
    key: Any,
    st: GaussianState,
    *,
    n: int,
    ddof: int,
    regime: int,
    num_real: int,
    sufficient: bool,
    mu0: float,
    sigma0: float,
    dtype: Any,
    ops: Ops | None = None,
) -> tuple[GaussianState, GaussianInfo]:
    """One generation of one chain (the sample method's keys): model ``st.t`` draws, refit."""
    jax = _jax()
    jnp = jax.numpy
    k_model, k_real = jax.random.split(key)
    mu, ls, t = st.mu, st.log_sigma, st.t
    if regime == ACCUMULATE_SUBSAMPLE:
        # The new draws join the pool; n of the pool are the training set.
        new = mu + jnp.exp(ls) * jax.random.normal(k_model, (n,), dtype)
        pool, size = append(st.pool, st.pool_size, new)
        x = pool[subsample(k_real, pool, size, n, dtype)]
        xbar = jnp.mean(x)
        m2 = jnp.sum((x - xbar) ** 2)
        st = st._replace(pool=pool, pool_size=size, mu=xbar,
                         log_sigma=0.5 * jnp.log(m2 / (n - ddof)))  # fmt: skip
        return st._replace(t=t + 1), GaussianInfo(st.mu, st.log_sigma)
    synth = synthetic_count(regime, n, num_real)
    own = _group(k_model, synth, sufficient, dtype)
    frame = None
    if ops is not None and synth == 0:  # no synthetic draws: one candidate per sample
        st = st._replace(cost_sum=st.cost_sum + jnp.where(t >= 1, 1.0, 0.0))
    elif ops is not None:
        # Generation 0 is real: the operators shape the draws of models 1, 2, ...
        m, lr, c1 = law(ops, mu, ls)
        zc, m2c, c2, gave_up = draws(k_model, ops, synth, m, lr, ls, dtype)
        m, lr = correct(ops, m, lr, mu, ls)
        live = t >= 1
        own = (jnp.where(live, zc, own[0]), jnp.where(live, m2c, own[1]))
        frame = (jnp.where(live, m, mu), jnp.where(live, lr, 0.0))
        cost = jnp.where(live, c1 * c2, 1.0).astype(dtype)
        st = st._replace(cost=cost, cost_sum=st.cost_sum + jnp.where(live, cost, 0.0),
                         starved=st.starved + (live & gave_up).astype(st.starved.dtype))  # fmt: skip
    st = refit(st, own, lambda: _group(k_real, num_real, sufficient, dtype), n=n, ddof=ddof,
               regime=regime, num_real=num_real, mu0=mu0, sigma0=sigma0, dtype=dtype,
               frame=frame)  # fmt: skip
    return st._replace(t=t + 1), GaussianInfo(st.mu, st.log_sigma)


def refit(
    st: GaussianState,
    own: tuple[Any, Any],
    real: Any,
    *,
    n: int,
    ddof: int,
    regime: int,
    num_real: int,
    mu0: float,
    sigma0: float,
    dtype: Any,
    frame: tuple[Any, Any] | None = None,
) -> GaussianState:
    """Generation ``st.t``'s fit from its model's group and the regime's other data.

    ``own`` is the model's group in standard units, ``(zbar, M2)`` of its standard
    normals; ``real()`` returns the real share's (fresh, keep-original). ``t`` is left as
    it was. Every regime but accumulate-subsample (whose pool :func:`_step` keeps).
    ``frame``: with curation, ``(m, log ratio)``: the group's samples are
    ``m + sigma exp(log ratio) z`` (:mod:`._curation`).
    """
    jnp = _jax().numpy
    zbar, m2z = own
    mu, ls = st.mu, st.log_sigma
    centre = mu
    if frame is not None:
        centre, lr = frame
        ls = ls + lr  # the group's scale; the fit's comes from its M2
    if regime == REPLACE:
        return st._replace(
            mu=centre + jnp.exp(ls) * zbar, log_sigma=ls + 0.5 * jnp.log(m2z / (n - ddof))
        )
    sigma = jnp.exp(ls)
    synth = synthetic_count(regime, n, num_real)
    own_stats = (jnp.asarray(synth, dtype), centre + sigma * zbar, sigma * sigma * m2z)

    def real_stats() -> tuple[Any, Any, Any]:
        rz, rm2 = real()
        return jnp.asarray(num_real, dtype), mu0 + sigma0 * rz, sigma0 * sigma0 * rm2

    (tn, tmean, tm2), pooled, kept = training_stats(
        regime,
        st.t,
        own_stats,
        merge=merge_moments,
        real=real_stats,
        pooled=(st.pool_n, st.pool_mean, st.pool_m2),
        kept=(jnp.asarray(num_real, dtype), st.kept_mean, st.kept_m2),
    )
    if regime == ACCUMULATE:
        st = st._replace(pool_n=pooled[0], pool_mean=pooled[1], pool_m2=pooled[2])
    if regime == KEEP_ORIGINAL:
        st = st._replace(kept_mean=kept[1], kept_m2=kept[2])
    return st._replace(mu=tmean, log_sigma=0.5 * jnp.log(tm2 / (tn - ddof)))


@partial(
    _jax().jit,
    static_argnames=("n", "ddof", "regime", "num_real", "sufficient", "dtype", "ops"),
)
def _advance(
    state: dict[str, Any],
    keys: Any,
    t0: Any,
    mu0: float,
    sigma0: float,
    steps: Any,
    *,
    n: int,
    ddof: int,
    regime: int,
    num_real: int,
    sufficient: bool,
    dtype: Any,
    ops: Ops | None = None,
) -> dict[str, Any]:
    jax = _jax()
    jnp = jax.numpy
    params = {
        "n": n,
        "ddof": ddof,
        "regime": regime,
        "num_real": num_real,
        "sufficient": sufficient,
        "mu0": mu0,
        "sigma0": sigma0,
        "dtype": dtype,
        "ops": ops,
    }

    def one_chain(st: dict[str, Any], key: Any) -> dict[str, Any]:
        # A loop with a traced trip count: segments of any length share one compilation.
        def body(i: Any, carry: GaussianState) -> GaussianState:
            return _step(generation_key(key, carry.t), carry, **params)[0]

        start = GaussianState(t=t0 + jnp.zeros((), jnp.uint32), **st)
        end = jax.lax.fori_loop(0, steps, body, start)
        return {k: v for k, v in end._asdict().items() if k != "t" and v is not None}

    return jax.vmap(one_chain)(state, keys)


@partial(
    _jax().jit,
    static_argnames=("n", "ddof", "regime", "num_real", "dtype", "width", "ops"),
)
def _advance_sufficient(
    state: dict[str, Any],
    keys: Any,
    t0: Any,
    mu0: float,
    sigma0: float,
    steps: Any,
    *,
    n: int,
    ddof: int,
    regime: int,
    num_real: int,
    dtype: Any,
    width: int,
    ops: Ops | None = None,
) -> dict[str, Any]:
    """The sufficient method over ``steps`` generations from model ``t0``, on the device.

    Generations go in blocks of ``width``: each block draws every chain's group
    statistics at once (:func:`._draws.group_stats`, counter-based, so a chain's draws
    depend only on its key and the generation), then a ``lax.scan`` refits generation by
    generation; generations past ``t0 + steps`` are drawn and discarded. ``width`` changes
    only the speed, never a value.
    """
    jax = _jax()
    jnp = jax.numpy
    from ._draws import SLOT_REAL, chain_words, group_stats

    k_lo, k_hi = chain_words(keys)
    synth = synthetic_count(regime, n, num_real)
    real = regime in (FRESH, KEEP_ORIGINAL) and num_real > 0
    params = {"n": n, "ddof": ddof, "regime": regime, "num_real": num_real, "mu0": mu0,
              "sigma0": sigma0, "dtype": dtype}  # fmt: skip
    t0 = t0.astype(np.uint64)
    end = t0 + steps.astype(np.uint64)

    def block(b: Any, st: dict[str, Any]) -> dict[str, Any]:
        ts = t0 + b.astype(np.uint64) * np.uint64(width) + jnp.arange(width, dtype=np.uint64)
        zbar, m2z = group_stats(k_lo, k_hi, ts, synth, 0, dtype)
        if real:
            rz, rm2 = group_stats(k_lo, k_hi, ts, num_real, SLOT_REAL, dtype)
        else:
            rz = rm2 = jnp.zeros_like(zbar)

        def generation(carry: dict[str, Any], cols: Any) -> tuple[dict[str, Any], None]:
            t, z, m2, r1, r2 = cols
            now = GaussianState(t=t, **carry)
            frame = None
            if ops is not None and synth == 0:
                now = now._replace(cost_sum=now.cost_sum + jnp.where(t >= 1, 1.0, 0.0))
            elif ops is not None:
                # The exact laws (bias, soft, correction) from model 1 on.
                mu, ls = now.mu, now.log_sigma
                m, lr, c1 = law(ops, mu, ls)
                m, lr = correct(ops, m, lr, mu, ls)
                live = t >= 1
                frame = (jnp.where(live, m, mu), jnp.where(live, lr, 0.0))
                cost = jnp.where(live, c1, 1.0).astype(dtype)
                now = now._replace(cost=cost, cost_sum=now.cost_sum + jnp.where(live, cost, 0.0))
            new = refit(now, (z, m2), lambda: (r1, r2), frame=frame, **params)
            live = t < end
            out = {k: jnp.where(live, getattr(new, k), v) for k, v in carry.items()}
            return out, None

        st, _ = jax.lax.scan(generation, st, (ts, zbar.T, m2z.T, rz.T, rm2.T))
        return st

    blocks = ((steps + np.uint64(width - 1)) // np.uint64(width)).astype(np.int32)
    return jax.lax.fori_loop(np.int32(0), blocks, block, state)


def _width(chains: int, t_start: int, ends: list[int]) -> int:
    """Generations per block of the sufficient method: a power of two, at most 64, holding
    about 2^20 lanes (chains x generations: on 2 CPU cores 1.35 times the speed of 2^22)
    and no longer than the longest segment."""
    longest = max(e - s for s, e in zip([t_start, *ends[:-1]], ends, strict=True))
    lanes = max(1, 2**20 // max(chains, 1))
    w = 1
    while w * 2 <= min(64, lanes) and w < longest:
        w *= 2
    return w


def init_state(
    count: int, mu0: float, sigma0: float, pool_capacity: int = 0, curated: bool = False
) -> dict[str, np.ndarray]:
    """Chains at model 0 (float64 NumPy arrays; cast on the way in).

    ``pool_capacity``: accumulate-subsample keeps every sample, n T per chain.
    ``curated``: the state holds the last generation's candidates per kept sample and
    their sum (curation).
    """
    state = {name: np.zeros(count) for name in STATE}
    if curated:
        state |= {"cost": np.ones(count), "cost_sum": np.zeros(count), "starved": np.zeros(count)}
    state["mu"][:] = mu0
    state["log_sigma"][:] = np.log(sigma0)
    if pool_capacity:
        state["pool"] = np.zeros((count, pool_capacity))
        state["pool_size"] = np.zeros(count, np.int32)
    return state


def advance(
    state: dict[str, np.ndarray],
    seed: int,
    chains: np.ndarray,
    t_start: int,
    t_end: int,
    slots: np.ndarray,
    rec_mu: np.ndarray,
    rec_logsig: np.ndarray,
    *,
    num_samples: int,
    ddof: int,
    regime: int,
    num_real: int,
    sufficient: bool,
    mu0: float,
    sigma0: float,
    dtype: str = "float32",
    chunk: int = 2**20,
    curation: np.ndarray | None = None,
    tally: np.ndarray | None = None,
    rec_cost: np.ndarray | None = None,
) -> None:
    """Advance chains from model ``t_start`` to ``t_end`` on all local JAX devices, in place.

    ``curation``, ``tally``, ``rec_cost``: as :func:`collapsesim.kernels.gaussian.advance`'s
    (the state then holds ``cost`` and ``cost_sum``, :func:`init_state`); every kind is
    drawn from its kept law (:mod:`._curation`), the sufficient method takes the exact
    laws (bias, soft, correction) only.

    Generations are run in segments that end at recorded models (``slots`` as for the
    Numba kernel), each a ``lax.scan``; chains go in chunks of at most ``chunk``, each
    sharded over the local devices along the chain axis.

    Raises:
        ValueError: accumulate-subsample (it needs every sample; use the Numba backend),
            or bad sizes.
    """
    if regime == ACCUMULATE_SUBSAMPLE:
        if sufficient:
            raise ValueError("accumulate-subsample needs the samples: use the sample method")
        if "pool" not in state or state["pool"].shape[1] < num_samples * t_end:
            raise ValueError("accumulate-subsample needs a pool of n * T samples per chain")
    if num_samples - ddof < 1 or not 0 <= num_real <= num_samples:
        raise ValueError("need n > ddof and 0 <= num_real <= n")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    ops = checked(curation, state, tally, rec_cost, regime == ACCUMULATE_SUBSAMPLE)
    if ops is not None:
        exact = ops.kind in (NONE, SOFT) and ops.best_of == 1
        if sufficient and not exact:
            raise ValueError("the sufficient method takes bias, soft and correction only")
    from ..distributed import host
    from ._devices import chunks, segment_ends

    ends = segment_ends(t_start, t_end, slots)
    grid = sufficient  # counter-based draws on the device (accumulate-subsample: refused above)
    with _precision("float64" if grid else dtype):
        jdtype = np.dtype(dtype)

        def cast(name: str, v: np.ndarray) -> np.ndarray:
            return v.astype(np.int32 if name == "pool_size" else jdtype)

        for lo, hi, keys, st in chunks(seed, chains, state, chunk, cast):
            t = t_start
            width = _width(hi - lo, t_start, ends)
            for end in ends:
                common = {"n": num_samples, "ddof": ddof, "regime": regime,
                          "num_real": num_real, "dtype": jdtype}  # fmt: skip
                if grid:
                    st = _advance_sufficient(st, keys, np.uint64(t), mu0, sigma0,
                                             steps=np.uint64(end - t), width=width, ops=ops,
                                             **common)  # fmt: skip
                else:
                    st = _advance(st, keys, np.uint32(t), mu0, sigma0, steps=np.int32(end - t),
                                  sufficient=False, ops=ops, **common)  # fmt: skip
                t = end
                slot = slots[end - 1 - t_start]
                if slot >= 0:
                    rec_mu[lo:hi, slot] = host(st["mu"])[: hi - lo]
                    rec_logsig[lo:hi, slot] = host(st["log_sigma"])[: hi - lo]
                    if ops is not None and rec_cost is not None:
                        rec_cost[lo:hi, slot] = host(st["cost"])[: hi - lo]
            for k, arr in state.items():
                arr[lo:hi] = host(st[k])[: hi - lo]
            if ops is not None and tally is not None:
                tally[lo:hi, 0] = state["cost_sum"][lo:hi]
                tally[lo:hi, 1] = state["starved"][lo:hi]


def _precision(dtype: str) -> Any:
    """A context that enables 64-bit JAX for float64 runs only."""
    import contextlib

    if dtype == "float64":
        return _jax().enable_x64(True)
    return contextlib.nullcontext()
