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
  stds, so given the std path the mean is a Gaussian random walk, and it is drawn on a
  fixed dyadic grid instead of step by step: one counter-based normal per block of
  ``BLOCK`` generations for the block's end, and Brownian bridges (Levy's construction)
  down to any generation inside a block that is recorded. One chi-square per
  generation, and every record set reads the same values (see ``_replace_sufficient``).

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
VAR = 8  # replace, sufficient: mantissa of sigma^2 = VAR * 2**VAR_EXP
VAR_EXP = 9
KEY_LO = 10  # replace, sufficient: the chain's key for counter-based normals, as two
KEY_HI = 11  # 32-bit halves (exact in a double)
NUM_STATE = 12

BLOCK = 256  # replace, sufficient: generations per block of the mean's dyadic grid (2^k)
_GROUP = 16  # replace, sufficient: chains that share one scratch buffer
_SPAN = 1024 * BLOCK  # replace, sufficient: most generations one kernel call takes

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


@njit(**JIT, inline="always")
def _variance_step(var, vex, vscale, bits, s0, s1, a, d, cmt, x2max, fac, dfac):
    """One generation of the variance under replace: ``var *= chi2(n - 1) / (n - ddof)``."""
    if a >= 1.0:
        # Three reservoir bits help decide the gamma's acceptance (see _rng.gamma_mt);
        # one word refills the reservoir every 21 generations.
        if bits <= np.uint64(1):
            word, s0, s1 = _rng.next_u64(s0, s1)
            bits = (word >> np.uint64(1)) | np.uint64(0x8000000000000000)
        extra = np.int64(bits & np.uint64(7))
        bits >>= np.uint64(3)
        root, s0, s1 = _rng.gamma_mt_root(d, cmt, x2max, extra, s0, s1)
        var *= dfac * (root * root * root)  # chi2 / (n - ddof) = 2 d root^3 / (n - ddof)
    else:
        gam, s0, s1 = _rng.gamma(a, s0, s1)
        var *= gam * fac
    if not _SMALL <= var <= _BIG:
        var, vex, vscale = _renormalise(var, vex)
    return var, vex, vscale, bits, s0, s1


@njit(**JIT)
def _nodes(count):
    """The dyadic nodes of a block that its records need, coarse to fine.

    ``count[i]`` holds the records at the block's generations 1..i. Node ``m`` of
    half-width ``h`` (``m`` an odd multiple of ``h``) is needed when a record lies
    strictly between ``m - h`` and ``m + h``: its value and its neighbours' at
    ``m - h`` and ``m + h`` are then on the way down to that record.
    """
    out = np.empty(BLOCK, np.int64)
    size = 0
    h = BLOCK // 2
    while h >= 1:
        for m in range(h, BLOCK, 2 * h):
            if count[m + h - 1] > count[m - h]:
                out[size] = m
                size += 1
        h //= 2
    return out[:size]


@njit(**JIT, inline="always")
def _bridge(m, z, clock, w):
    """Set ``w[m]`` from its dyadic neighbours and a standard normal ``z`` (Brownian bridge).

    ``clock[i]`` is the mean's variance accumulated from the block's start to its
    generation i and ``w[i]`` the mean's change since the start. With ``h`` the lowest
    set bit of ``m``, ``l = m - h`` and ``r = m + h``, ``w[m]`` is
    ``N(w_l + (w_r - w_l) f, (c_m - c_l)(c_r - c_m) / (c_r - c_l))``,
    ``f = (c_m - c_l) / (c_r - c_l)``.
    """
    h = m & -m
    lo = m - h
    hi = m + h
    span = clock[hi] - clock[lo]
    if span > 0.0:
        left = clock[m] - clock[lo]
        inv = 1.0 / span
        w[m] = (
            w[lo]
            + (w[hi] - w[lo]) * (left * inv)
            + math.sqrt(left * (clock[hi] - clock[m]) * inv) * z
        )
    else:
        w[m] = w[lo]  # the std underflowed: the mean no longer moves


@njit(**JIT)
def _recorded_block(
    c, b, where, need, nodes, key, mu, var, vex, bits, s0, s1, consts, scratch, rec_mu, rec_logsig
):
    """Run one block that holds records: its variances, its end mean, the bridges down
    to its records; write them and return the chain's values at the block's end.

    ``need[i]``: whether the block's generation i is a record or a node's neighbour,
    where the clock and the variance are kept."""
    a, d, cmt, x2max, fac, dfac, inv_n = consts
    clock = scratch[0]
    vman = scratch[1]  # the variance at the block's generation i: mantissa,
    vexp = scratch[2]  # and binary exponent
    w = scratch[3]  # the mean's change since the block's start
    vscale = math.ldexp(1.0, int(vex))
    acc = 0.0
    for i in range(BLOCK):
        acc += (var * vscale) * inv_n
        var, vex, vscale, bits, s0, s1 = _variance_step(
            var, vex, vscale, bits, s0, s1, a, d, cmt, x2max, fac, dfac
        )
        if need[i + 1]:
            clock[i + 1] = acc
            vman[i + 1] = var
            vexp[i + 1] = vex
    clock[0] = 0.0
    clock[BLOCK] = acc
    w[0] = 0.0
    w[BLOCK] = math.sqrt(acc) * _rng.keyed_normal(key, np.uint64(b + BLOCK))
    # Each node's normal is keyed by its generation. Drawn first, in a loop of independent
    # iterations: inside the bridges' chain of dependent values they cost ten times more.
    for m in nodes:
        w[m] = _rng.keyed_normal(key, np.uint64(b + m))
    for m in nodes:
        _bridge(m, w[m], clock, w)
    for i in range(1, BLOCK + 1):
        slot = where[i]
        if slot >= 0:
            rec_mu[c, slot] = mu + w[i]
            rec_logsig[c, slot] = 0.5 * (math.log(vman[i]) + vexp[i] * _LN2)
    return mu + w[BLOCK], var, vex, bits, s0, s1


@njit(**PJIT)
def _replace_sufficient(rng, state, t_start, t_end, slots, rec_mu, rec_logsig, n, ddof):
    # Under replace the std path does not depend on the means, and generation t moves
    # the mean by sigma_t zbar_t with zbar_t ~ N(0, 1/n) independent of everything else:
    # given the std path, mu is a Brownian motion read at the clock
    # c_t = sum_{s < t} sigma_s^2 / n. Generations run in blocks of BLOCK from multiples
    # of BLOCK. The chi-squares of the variance path are the only draws from the
    # chain's stream. A block's end mean is mu_end = mu_start + sqrt(c_end - c_start) z
    # and a recorded generation inside it is filled in by Brownian bridges over its
    # dyadic nodes (``_bridge``), with z and each node's normal counter-based: keyed by
    # the chain's key and the generation (_rng.keyed_normal). A chain's means therefore
    # depend on the seed, the chain and t alone, never on which generations are
    # recorded or where calls split the run.
    # Blocks without records (nearly all, in a large ensemble) run in one flat loop
    # that keeps each block's clock; their normals follow, off the loop's critical
    # path. A call that ends inside a block leaves the chain at the block's start,
    # streams included, and the next call redoes the block (the runner's blocks are
    # multiples of BLOCK, so that happens only where a caller chose other sizes).
    # Only sigma_t^2 is needed each generation, so it carries the variance (as a
    # mantissa and binary exponent, like the std elsewhere) and takes no square root.
    a = 0.5 * (n - 1)  # chi2(n-1) = 2 Gamma(a)
    d, cmt, x2max = _rng.mt_constants(max(a, 1.0))
    inv_n = 1.0 / n
    fac = 2.0 / (n - ddof)
    dfac = d * fac
    consts = (a, d, cmt, x2max, fac, dfac, inv_n)
    num = state.shape[0]
    first = (t_start // BLOCK) * BLOCK
    blocks = (t_end - first + BLOCK - 1) // BLOCK
    full = (t_end - first) // BLOCK  # blocks that end by t_end
    # where[k, i]: the record column of model first + k BLOCK + i, or -1; count[k, i]:
    # the records at models first + k BLOCK + 1 .. + i; nodes[k, :num_nodes[k]]: the
    # dyadic nodes block k's records need; after[k]: the first block >= k with records.
    where = np.full((blocks, BLOCK + 1), -1, np.int64)
    for j in range(t_end - t_start):
        m = t_start + 1 + j - first
        k = (m - 1) // BLOCK
        where[k, m - k * BLOCK] = slots[j]
    count = np.zeros((blocks, BLOCK + 1), np.int64)
    nodes = np.zeros((blocks, BLOCK), np.int64)
    num_nodes = np.zeros(blocks, np.int64)
    need = np.zeros((blocks, BLOCK + 1), np.bool_)
    after = np.full(blocks + 1, full, np.int64)
    for k in range(blocks - 1, -1, -1):
        for i in range(1, BLOCK + 1):
            count[k, i] = count[k, i - 1] + (where[k, i] >= 0)
            need[k, i] = where[k, i] >= 0
        these = _nodes(count[k])
        num_nodes[k] = these.size
        nodes[k, : these.size] = these
        for m in these:
            h = m & -m
            need[k, m - h] = need[k, m] = need[k, m + h] = True
        after[k] = k if count[k, BLOCK] > 0 and k < full else after[k + 1]
    for g in prange((num + _GROUP - 1) // _GROUP):
        scratch = np.empty((4, BLOCK + 1))  # shared by a group of chains
        for c in range(g * _GROUP, min(num, (g + 1) * _GROUP)):
            s0 = rng[c, S0]
            s1 = rng[c, S1]
            bits = rng[c, BITS]
            mu = state[c, MU]
            var, vex, vscale = _renormalise(state[c, VAR], state[c, VAR_EXP])
            key = (np.uint64(state[c, KEY_HI]) << np.uint64(32)) | np.uint64(state[c, KEY_LO])
            k = 0
            while k < full:
                if after[k] == k:
                    mu, var, vex, bits, s0, s1 = _recorded_block(
                        c, first + k * BLOCK, where[k], need[k], nodes[k, : num_nodes[k]], key, mu,
                        var, vex, bits, s0, s1, consts, scratch, rec_mu, rec_logsig,
                    )  # fmt: skip
                    var, vex, vscale = _renormalise(var, vex)
                    k += 1
                    continue
                for _ in range(after[k] - k):
                    acc = 0.0
                    for _i in range(BLOCK):
                        acc += (var * vscale) * inv_n
                        var, vex, vscale, bits, s0, s1 = _variance_step(
                            var, vex, vscale, bits, s0, s1, a, d, cmt, x2max, fac, dfac
                        )
                    k += 1
                    mu += math.sqrt(acc) * _rng.keyed_normal(key, np.uint64(first + k * BLOCK))
            if full < blocks and count[full, BLOCK] > 0:
                # The block t_end falls in: its records, then back to its start.
                _recorded_block(
                    c, first + full * BLOCK, where[full], need[full], nodes[full, : num_nodes[full]], key,
                    mu, var, vex, bits, s0, s1, consts, scratch, rec_mu, rec_logsig,
                )  # fmt: skip
            rng[c, S0] = s0
            rng[c, S1] = s1
            rng[c, BITS] = bits
            state[c, MU] = mu
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
    _chain_keys(rng, state)
    return rng, state


@njit(**JIT)
def _chain_keys(rng, state):
    # A key per chain for counter-based normals, hashed from its stream's first state
    # (a function of the seed and the chain alone), kept as two exact 32-bit halves.
    for c in range(rng.shape[0]):
        key = _rng.mix64(rng[c, S0] ^ _rng.mix64(rng[c, S1] + np.uint64(0x3C6EF372FE94F82B)))
        state[c, KEY_LO] = float(key & np.uint64(0xFFFFFFFF))
        state[c, KEY_HI] = float(key >> np.uint64(32))


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
    if regime == REPLACE and sufficient:
        # At most _SPAN generations a call: the kernel's tables of records and nodes
        # take (t_end - t_start) * 33 bytes.
        for lo in range(t_start, t_end, _SPAN):
            hi = min(t_end, (lo // _SPAN + 1) * _SPAN)
            _replace_sufficient(
                rng, state, lo, hi, slots[lo - t_start : hi - t_start], rec_mu, rec_logsig,
                num_samples, ddof,
            )  # fmt: skip
    elif regime == REPLACE:
        _replace_sample(*args)
    elif regime in (ACCUMULATE, FRESH, KEEP_ORIGINAL):
        if regime == ACCUMULATE:
            num_real = 0
        _pooled(*args, regime, num_real, sufficient, float(mu0), float(sigma0))
    else:
        raise ValueError(f"unknown regime code {regime}")
