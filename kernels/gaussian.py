"""Gaussian collapse chains: refit a normal to its own samples, generation after generation.

Model 0 is the original N(mu0, sigma0). Model t+1 is the Gaussian fitted (mean,
and standard deviation with ``ddof`` 0 or 1) to generation t's training set, which
the regime assembles from draws of model t and, where the regime says so, real data.

Two ways to draw a group of k samples from N(mu, sigma^2), with ``zbar`` the mean and
``m2z`` the sum of squared deviations of k standard normals:

* ``sample`` draws the k standard normals one by one and sums them;
* ``sufficient`` draws the statistics themselves, exactly in distribution:
  ``zbar ~ N(0, 1/k)`` and ``m2z ~ chi2(k - 1)``, independent (Cochran's theorem).
  Under ``replace`` it goes one step further: the means do not feed back into the
  stds, so given the std path the mean is a Gaussian random walk, drawn on a fixed
  dyadic grid instead of step by step (:mod:`.gaussian_mean`).

Where the literal experiment and this kernel part ways: the literal experiment forms
``x_i = mu + sigma z_i`` in floating point and refits on ``x``. Once ``sigma`` falls
below about ``2**-53 |mu|`` every ``x_i`` rounds to the same double, the fitted std
becomes exactly 0 and the chain freezes. The kernels compute the exact-arithmetic
trajectory instead: the fitted mean is ``mu + sigma zbar`` and the fitted std is
``sigma sqrt(m2z / (n - ddof))``, from standardised draws, so no precision is lost to
``E[x^2] - E[x]^2`` cancellation. Under ``replace`` the scale is kept as a mantissa and
a binary exponent (``log sigma = log(mantissa) + exponent log 2``), so a chain of 10^6
generations, whose sigma sinks far below the smallest double, never underflows.

The pooled regimes (accumulate, fresh, keep-original) merge per-group
(count, mean, M2) statistics exactly (``_regimes.merge``) and keep the variance in
linear scale: their pools always hold real data, which bounds the scale away from zero.
``accumulate-subsample`` keeps every sample in a per-chain pool. What each regime trains
on is assembled by the building blocks of :mod:`._regimes`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import _rng
from ._curation import (
    BEST_OF,
    CORRECT,
    KIND,
    NONE,
    SELF_TOP,
    SOFT,
    STRENGTH,
    TOP,
    correct,
    curation_arrays,
    draw_kept,
    law,
    moments,
    top_candidates,
)
from ._flags import JIT, PJIT
from ._gaussian_state import (  # noqa: F401 (the state's columns, for callers)
    _BIG,
    _LN2,
    _SMALL,
    EXP,
    KEPT_M2,
    KEPT_MEAN,
    KEY_HI,
    KEY_LO,
    MU,
    NUM_STATE,
    POOL_M2,
    POOL_MEAN,
    POOL_N,
    SIG,
    VAR,
    VAR_EXP,
    _renormalise,
)
from ._regimes import (
    ACCUMULATE,
    ACCUMULATE_SUBSAMPLE,
    FRESH,
    KEEP_ORIGINAL,
    REPLACE,
    draws_real,
    pooled_fit,
    subsample_front,
    synthetic_count,
)
from ._streams import check_block, init_streams
from .gaussian_mean import BLOCK, chain_keys, replace_sufficient  # noqa: F401


@njit(**JIT, inline="always")
def _group(k: int, sufficient: bool, s0, s1):
    """Return ``(zbar, m2z, s0, s1)`` for k standard normals (see module docstring)."""
    if k <= 0:
        return 0.0, 0.0, s0, s1
    if sufficient:
        z, s0, s1 = _rng.normal(s0, s1)
        m2z, s0, s1 = _rng.chisquare(float(k - 1), s0, s1)
        return z / math.sqrt(k), m2z, s0, s1
    acc = 0.0
    acc2 = 0.0
    for _ in range(k):
        z, s0, s1 = _rng.normal(s0, s1)
        acc += z
        acc2 += z * z
    zbar = acc / k
    return zbar, max(acc2 - acc * zbar, 0.0), s0, s1


@njit(**PJIT)
def _replace_sample(rng, state, t_start, t_end, slots, rec_mu, rec_logsig, n, ddof):
    inv_n = 1.0 / n
    inv_dof = 1.0 / (n - ddof)
    for c in prange(state.shape[0]):
        s0 = rng[c, 0]
        s1 = rng[c, 1]
        mu = state[c, MU]
        sig, ex, scale = _renormalise(state[c, SIG], state[c, EXP])
        for t in range(t_start, t_end):
            acc = 0.0
            acc2 = 0.0
            for _ in range(n):
                z, s0, s1 = _rng.normal(s0, s1)
                acc += z
                acc2 += z * z
            zbar = acc * inv_n
            m2z = max(acc2 - acc * zbar, 0.0)
            mu += (sig * scale) * zbar
            sig *= math.sqrt(m2z * inv_dof)
            if not _SMALL <= sig <= _BIG:
                sig, ex, scale = _renormalise(sig, ex)
            slot = slots[t - t_start]
            if slot >= 0:
                rec_mu[c, slot] = mu
                rec_logsig[c, slot] = math.log(sig) + ex * _LN2
        rng[c, 0] = s0
        rng[c, 1] = s1
        state[c, MU] = mu
        state[c, SIG] = sig
        state[c, EXP] = ex


@njit(**PJIT)
def _pooled(
    rng,
    state,
    t_start,
    t_end,
    slots,
    rec_mu,
    rec_logsig,
    n,
    ddof,
    regime,
    num_real,
    sufficient,
    mu0,
    sigma0,
    cur,
    tally,
    rec_cost,
):
    # The pooled regimes, and every regime with curation (``cur`` not empty): replace
    # then keeps the std as a mantissa and exponent, like _replace_sample.
    num_synth = synthetic_count(regime, n, num_real)
    curated = cur.shape[0] > 0
    room = 1
    if curated and not sufficient:
        room = max(num_synth, 2 * int(cur[BEST_OF]))
        if int(cur[KIND]) in (TOP, SELF_TOP):
            room = max(room, top_candidates(num_synth, cur[STRENGTH]))
    inv_dof = 1.0 / (n - ddof)
    for c in prange(state.shape[0]):
        s0 = rng[c, 0]
        s1 = rng[c, 1]
        mu = state[c, MU]
        if regime == REPLACE:
            sig, ex, scale = _renormalise(state[c, SIG], state[c, EXP])
        else:
            sig, ex, scale = math.ldexp(state[c, SIG], int(state[c, EXP])), 0.0, 1.0
        pn = state[c, POOL_N]
        pmean = state[c, POOL_MEAN]
        pm2 = state[c, POOL_M2]
        kmean = state[c, KEPT_MEAN]
        km2 = state[c, KEPT_M2]
        ys = np.empty(room)
        scratch = np.empty(room)
        for t in range(t_start, t_end):
            sigma = sig * scale
            m, ratio, cost = mu, 1.0, 1.0
            if curated and t > 0 and num_synth > 0:
                # Generation 0 is real: the operators shape the draws of models 1, 2, ...
                m, ratio, keep = law(cur, mu, sigma, sufficient)
                if sufficient:
                    zbar, m2z, s0, s1 = _group(num_synth, True, s0, s1)
                    cost = 1.0 / keep  # the expected candidates per kept sample
                else:
                    drawn, starved, s0, s1 = draw_kept(
                        ys, scratch, num_synth, cur, m, ratio * sigma, ratio, s0, s1
                    )
                    zbar, m2z = moments(ys, num_synth)
                    cost = drawn / num_synth
                    tally[c, 1] += starved
                m, ratio = correct(cur[CORRECT], m, ratio, mu, sigma)
            else:
                zbar, m2z, s0, s1 = _group(num_synth, sufficient, s0, s1)
            if curated and t > 0:
                tally[c, 0] += cost
            if regime == REPLACE:
                mu = m + (ratio * sigma) * zbar
                sig *= ratio * math.sqrt(m2z * inv_dof)
                if not _SMALL <= sig <= _BIG:
                    sig, ex, scale = _renormalise(sig, ex)
                logsig = math.log(sig) + ex * _LN2
            else:
                s = ratio * sigma
                gn = float(num_synth)
                gmean = m + s * zbar
                gm2 = s * s * m2z
                if draws_real(regime, t):
                    rz, rm2z, s0, s1 = _group(num_real, sufficient, s0, s1)
                    kmean = mu0 + sigma0 * rz
                    km2 = sigma0 * sigma0 * rm2z
                pn, pmean, pm2, tn, tmean, tm2 = pooled_fit(
                    regime, pn, pmean, pm2, gn, gmean, gm2, float(num_real), kmean, km2
                )
                mu = tmean
                sig = math.sqrt(tm2 / (tn - ddof))
                logsig = math.log(sig)
            slot = slots[t - t_start]
            if slot >= 0:
                rec_mu[c, slot] = mu
                rec_logsig[c, slot] = logsig
                if curated:
                    rec_cost[c, slot] = cost
        rng[c, 0] = s0
        rng[c, 1] = s1
        state[c, MU] = mu
        state[c, SIG] = sig
        state[c, EXP] = ex
        state[c, POOL_N] = pn
        state[c, POOL_MEAN] = pmean
        state[c, POOL_M2] = pm2
        state[c, KEPT_MEAN] = kmean
        state[c, KEPT_M2] = km2


@njit(**PJIT)
def _advance_subsample(
    rng, state, pool, pool_size, t_start, t_end, slots, rec_mu, rec_logsig, n, ddof,
    cur, tally, rec_cost,
):  # fmt: skip
    num_chains = state.shape[0]
    curated = cur.shape[0] > 0
    room = 1
    if curated:
        room = max(n, 2 * int(cur[BEST_OF]))
        if int(cur[KIND]) in (TOP, SELF_TOP):
            room = max(room, top_candidates(n, cur[STRENGTH]))
    for c in prange(num_chains):
        s0 = rng[c, 0]
        s1 = rng[c, 1]
        mu = state[c, MU]
        sigma = state[c, SIG]
        size = pool_size[c]
        row = pool[c]
        rows = row.reshape((row.shape[0], 1))
        ys = np.empty(room)
        scratch = np.empty(room)
        for t in range(t_start, t_end):
            # Generation t's data joins the pool, then n of the pool, drawn without
            # replacement, are the training set.
            cost = 1.0
            if curated and t > 0:
                m, ratio, _ = law(cur, mu, sigma, False)
                drawn, starved, s0, s1 = draw_kept(
                    ys, scratch, n, cur, m, ratio * sigma, ratio, s0, s1
                )
                cost = drawn / n
                tally[c, 0] += cost
                tally[c, 1] += starved
                m, ratio = correct(cur[CORRECT], m, ratio, mu, sigma)
                for i in range(n):
                    row[size + i] = m + (ratio * sigma) * ys[i]
            else:
                for i in range(n):
                    z, s0, s1 = _rng.normal(s0, s1)
                    row[size + i] = mu + sigma * z
            size += n
            s0, s1 = subsample_front(rows, size, n, s0, s1)
            mu, acc2 = moments(row, n)
            sigma = math.sqrt(acc2 / (n - ddof))
            slot = slots[t - t_start]
            if slot >= 0:
                rec_mu[c, slot] = mu
                rec_logsig[c, slot] = math.log(sigma)
                if curated:
                    rec_cost[c, slot] = cost
        rng[c, 0] = s0
        rng[c, 1] = s1
        state[c, MU] = mu
        state[c, SIG] = sigma
        pool_size[c] = size


def init_chains(
    seed: int, chains: np.ndarray, mu0: float, sigma0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return the streams and states of chains that sit at model 0.

    Args:
        seed: the run's seed, ``0 <= seed < 2**64``.
        chains: global chain indices, shape ``(B,)``, int64.
        mu0: mean of the original distribution.
        sigma0: std of the original distribution, positive.

    Returns:
        ``(rng, state)``: uint64 ``(B, NUM_STREAM)`` stream states and float64
        ``(B, NUM_STATE)`` chain states.
    """
    rng = init_streams(seed, chains)
    state = np.zeros((rng.shape[0], NUM_STATE))
    state[:, MU] = mu0
    state[:, SIG] = sigma0
    state[:, VAR] = sigma0 * sigma0
    chain_keys(rng, state)
    return rng, state


# Long for its docstring and the checks of every array the compiled loop indexes unchecked.
def advance(
    rng: np.ndarray,
    state: np.ndarray,
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
    pool: np.ndarray | None = None,
    pool_size: np.ndarray | None = None,
    curation: np.ndarray | None = None,
    tally: np.ndarray | None = None,
    rec_cost: np.ndarray | None = None,
) -> None:
    """Advance chains from model ``t_start`` to model ``t_end`` in place.

    Args:
        rng: stream states, uint64 ``(B, NUM_STREAM)``, updated in place.
        state: chain states, float64 ``(B, NUM_STATE)``, updated in place. Under
            replace with sufficient statistics, chains at a model inside a block of
            ``BLOCK`` generations hold the block's start, streams included (see
            ``_replace_sufficient``): read their values from the records.
        t_start: the model the chains are at.
        t_end: the model to stop at, ``t_end >= t_start``.
        slots: int64 ``(t_end - t_start,)``; entry j is the record column for
            model ``t_start + j + 1``, or -1 for no record.
        rec_mu: float64 ``(B, R)`` receiving recorded means.
        rec_logsig: float64 ``(B, R)`` receiving recorded log stds.
        num_samples: training-set size n per generation.
        ddof: 0 (maximum likelihood) or 1 (unbiased variance).
        regime: a regime code (:data:`collapsesim.regimes.CODES`).
        num_real: real samples in each training set (fresh: new draws;
            keep-original: the kept share of generation 0); 0 otherwise.
        sufficient: draw sufficient statistics instead of samples.
        mu0: mean of the original distribution.
        sigma0: std of the original distribution.
        pool: accumulate-subsample only: float64 ``(B, n * (T + 1))`` sample pool.
        pool_size: accumulate-subsample only: int64 ``(B,)`` filled pool lengths.
        curation: the operators' vector (:meth:`collapsesim.curation.Curation.vector`, in
            standard units), or None for none.
        tally: with ``curation``: float64 ``(B, 2)``, adds each chain's candidates per
            kept sample over the generations run, and its starved generations (the
            selection gave up, ``_curation.MAX_TRIES``).
        rec_cost: with ``curation``: float64 ``(B, R)`` receiving the recorded
            generations' candidates per kept sample (the sufficient method: the expected
            number, ``1 / P(kept)`` given the model).
    """
    # The kernels do not bounds-check: every shape and dtype they index is checked here.
    if state.ndim != 2 or state.shape[1] != NUM_STATE or state.dtype != np.float64:
        raise ValueError(f"state must be float64 of shape (chains, {NUM_STATE})")
    slots = check_block(rng, state.shape[0], t_start, t_end, slots, rec_mu.shape[1])
    if rec_mu.shape != rec_logsig.shape or rec_mu.shape[0] != state.shape[0]:
        raise ValueError("record arrays must be (chains, records) and alike")
    if num_samples - ddof < 1:
        raise ValueError("need num_samples > ddof")
    cur, tally, rec_cost = curation_arrays(
        curation, tally, rec_cost, state.shape[0], rec_mu.shape[1]
    )
    if cur.size and sufficient and (int(cur[KIND]) not in (NONE, SOFT) or cur[BEST_OF] > 1):
        raise ValueError("only sampling bias, soft selection and correction keep the "
                         "sufficient statistics exact")  # fmt: skip
    if regime == ACCUMULATE_SUBSAMPLE:
        if sufficient:
            raise ValueError("accumulate-subsample has no sufficient-statistic form")
        if pool is None or pool_size is None:
            raise ValueError("accumulate-subsample needs a pool")
        if pool.shape[1] < num_samples * t_end:
            raise ValueError("pool too small for the generations asked")
        _advance_subsample(
            rng,
            state,
            pool,
            pool_size,
            t_start,
            t_end,
            slots,
            rec_mu,
            rec_logsig,
            num_samples,
            ddof,
            cur,
            tally,
            rec_cost,
        )
        return
    if not 0 <= num_real <= num_samples:
        raise ValueError("num_real must lie in [0, num_samples]")
    args = (rng, state, t_start, t_end, slots, rec_mu, rec_logsig, num_samples, ddof)
    if regime == REPLACE and sufficient and not cur.size:
        replace_sufficient(*args)
    elif regime == REPLACE and not cur.size:
        _replace_sample(*args)
    elif regime in (REPLACE, ACCUMULATE, FRESH, KEEP_ORIGINAL):
        if regime in (REPLACE, ACCUMULATE):
            num_real = 0
        _pooled(*args, regime, num_real, sufficient, float(mu0), float(sigma0), cur, tally,
                rec_cost)  # fmt: skip
    else:
        raise ValueError(f"unknown regime code {regime}")
