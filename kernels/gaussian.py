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
  stds, so the mean is drawn only at recorded generations, from the exact law of its
  change since the last record given the std path (one chi-square per generation and
  one normal per record).

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
from ._flags import JIT, PJIT
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
from ._streams import BITS, S0, S1, check_block, init_streams

# Columns of the per-chain float state.
MU = 0  # mean of the current model
SIG = 1  # mantissa of the current model's std: sigma = SIG * 2**EXP
EXP = 2  # binary exponent of sigma (a float holding an integer)
POOL_N = 3  # accumulate: size of the pooled training set
POOL_MEAN = 4
POOL_M2 = 5
KEPT_MEAN = 6  # keep-original: statistics of the kept share of generation 0
KEPT_M2 = 7
MEAN_VAR = 8  # replace, sufficient: sum of sigma_t^2 / n since the mean was last drawn
VAR = 9  # replace, sufficient: mantissa of sigma^2 = VAR * 2**VAR_EXP
VAR_EXP = 10
NUM_STATE = 11

_LN2 = math.log(2.0)
# The mantissa is renormalised when it leaves [2**-256, 2**256]: far from the double
# range's ends, and rare enough (every few hundred generations of collapse) to be free.
_BIG = 2.0**256
_SMALL = 2.0**-256


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


@njit(**JIT, inline="always")
def _renormalise(sig: float, ex: float):
    """Return ``(mantissa, exponent, 2**exponent)`` once the mantissa drifts far from 1."""
    if _SMALL <= sig <= _BIG:
        return sig, ex, math.ldexp(1.0, int(ex))
    m, e = math.frexp(sig)
    ex += e
    return m, ex, math.ldexp(1.0, int(ex))


@njit(**PJIT)
def _replace_sufficient(rng, state, t_start, t_end, slots, rec_mu, rec_logsig, n, ddof):
    # Under replace the std path does not depend on the means, and generation t moves
    # the mean by sigma_t zbar_t with zbar_t ~ N(0, 1/n) independent of everything else.
    # Between two recorded generations a < b, mu_b - mu_a is therefore exactly
    # N(0, sum_{a <= t < b} sigma_t^2 / n) given the std path: one normal per record
    # instead of one per generation. (So the draws depend on the record schedule,
    # which is part of a run's configuration.)
    # It also needs only sigma_t^2 each generation, so it carries the variance (as a
    # mantissa and binary exponent, like the std elsewhere) and takes no square root.
    a = 0.5 * (n - 1)  # chi2(n-1) = 2 Gamma(a)
    d, cmt, x2max = _rng.mt_constants(max(a, 1.0))
    inv_n = 1.0 / n
    fac = 2.0 / (n - ddof)
    dfac = d * fac
    for c in prange(state.shape[0]):
        s0 = rng[c, S0]
        s1 = rng[c, S1]
        bits = rng[c, BITS]
        mu = state[c, MU]
        mean_var = state[c, MEAN_VAR]
        var, vex, vscale = _renormalise(state[c, VAR], state[c, VAR_EXP])
        for t in range(t_start, t_end):
            mean_var += (var * vscale) * inv_n
            if a >= 1.0:
                # Three reservoir bits help decide the gamma's acceptance (see
                # _rng.gamma_mt); one word refills the reservoir every 21 generations.
                if bits <= np.uint64(1):
                    word, s0, s1 = _rng.next_u64(s0, s1)
                    bits = (word >> np.uint64(1)) | np.uint64(0x8000000000000000)
                extra = np.int64(bits & np.uint64(7))
                bits >>= np.uint64(3)
                w, s0, s1 = _rng.gamma_mt_root(d, cmt, x2max, extra, s0, s1)
                # chi2 / (n - ddof) = 2 d w^3 / (n - ddof)
                var *= dfac * (w * w * w)
            else:
                g, s0, s1 = _rng.gamma(a, s0, s1)
                var *= g * fac
            if not _SMALL <= var <= _BIG:
                var, vex, vscale = _renormalise(var, vex)
            slot = slots[t - t_start]
            if slot >= 0:
                z, s0, s1 = _rng.normal(s0, s1)
                mu += math.sqrt(mean_var) * z
                mean_var = 0.0
                rec_mu[c, slot] = mu
                rec_logsig[c, slot] = 0.5 * (math.log(var) + vex * _LN2)
        rng[c, S0] = s0
        rng[c, S1] = s1
        rng[c, BITS] = bits
        state[c, MU] = mu
        state[c, MEAN_VAR] = mean_var
        state[c, VAR] = var
        state[c, VAR_EXP] = vex


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
):
    num_synth = synthetic_count(regime, n, num_real)
    for c in prange(state.shape[0]):
        s0 = rng[c, 0]
        s1 = rng[c, 1]
        mu = state[c, MU]
        sigma = math.ldexp(state[c, SIG], int(state[c, EXP]))
        pn = state[c, POOL_N]
        pmean = state[c, POOL_MEAN]
        pm2 = state[c, POOL_M2]
        kmean = state[c, KEPT_MEAN]
        km2 = state[c, KEPT_M2]
        for t in range(t_start, t_end):
            zbar, m2z, s0, s1 = _group(num_synth, sufficient, s0, s1)
            gn = float(num_synth)
            gmean = mu + sigma * zbar
            gm2 = sigma * sigma * m2z
            if draws_real(regime, t):
                rz, rm2z, s0, s1 = _group(num_real, sufficient, s0, s1)
                kmean = mu0 + sigma0 * rz
                km2 = sigma0 * sigma0 * rm2z
            pn, pmean, pm2, tn, tmean, tm2 = pooled_fit(
                regime, pn, pmean, pm2, gn, gmean, gm2, float(num_real), kmean, km2
            )
            mu = tmean
            sigma = math.sqrt(tm2 / (tn - ddof))
            slot = slots[t - t_start]
            if slot >= 0:
                rec_mu[c, slot] = mu
                rec_logsig[c, slot] = math.log(sigma)
        rng[c, 0] = s0
        rng[c, 1] = s1
        state[c, MU] = mu
        state[c, SIG] = sigma
        state[c, EXP] = 0.0
        state[c, POOL_N] = pn
        state[c, POOL_MEAN] = pmean
        state[c, POOL_M2] = pm2
        state[c, KEPT_MEAN] = kmean
        state[c, KEPT_M2] = km2


@njit(**PJIT)
def _advance_subsample(
    rng, state, pool, pool_size, t_start, t_end, slots, rec_mu, rec_logsig, n, ddof
):
    num_chains = state.shape[0]
    for c in prange(num_chains):
        s0 = rng[c, 0]
        s1 = rng[c, 1]
        mu = state[c, MU]
        sigma = state[c, SIG]
        size = pool_size[c]
        row = pool[c]
        rows = row.reshape((row.shape[0], 1))
        for t in range(t_start, t_end):
            # Generation t's data joins the pool, then n of the pool, drawn without
            # replacement, are the training set.
            for i in range(n):
                z, s0, s1 = _rng.normal(s0, s1)
                row[size + i] = mu + sigma * z
            size += n
            s0, s1 = subsample_front(rows, size, n, s0, s1)
            acc = 0.0
            for i in range(n):
                acc += row[i]
            mu = acc / n
            acc2 = 0.0
            for i in range(n):
                d = row[i] - mu
                acc2 += d * d
            sigma = math.sqrt(acc2 / (n - ddof))
            slot = slots[t - t_start]
            if slot >= 0:
                rec_mu[c, slot] = mu
                rec_logsig[c, slot] = math.log(sigma)
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
) -> None:
    """Advance chains from model ``t_start`` to model ``t_end`` in place.

    Args:
        rng: stream states, uint64 ``(B, NUM_STREAM)``, updated in place.
        state: chain states, float64 ``(B, NUM_STATE)``, updated in place. Under
            replace with sufficient statistics, the mean column holds the mean as of
            the last recorded generation (the mean is drawn only where recorded;
            see ``_replace_sufficient``).
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
    """
    # The kernels do not bounds-check: every shape and dtype they index is checked here.
    if state.ndim != 2 or state.shape[1] != NUM_STATE or state.dtype != np.float64:
        raise ValueError(f"state must be float64 of shape (chains, {NUM_STATE})")
    slots = check_block(rng, state.shape[0], t_start, t_end, slots, rec_mu.shape[1])
    if rec_mu.shape != rec_logsig.shape or rec_mu.shape[0] != state.shape[0]:
        raise ValueError("record arrays must be (chains, records) and alike")
    if num_samples - ddof < 1:
        raise ValueError("need num_samples > ddof")
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
        )
        return
    if not 0 <= num_real <= num_samples:
        raise ValueError("num_real must lie in [0, num_samples]")
    args = (rng, state, t_start, t_end, slots, rec_mu, rec_logsig, num_samples, ddof)
    if regime == REPLACE:
        (_replace_sufficient if sufficient else _replace_sample)(*args)
    elif regime in (ACCUMULATE, FRESH, KEEP_ORIGINAL):
        if regime == ACCUMULATE:
            num_real = 0
        _pooled(*args, regime, num_real, sufficient, float(mu0), float(sigma0))
    else:
        raise ValueError(f"unknown regime code {regime}")
