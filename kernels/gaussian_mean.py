"""The Gaussian chain under ``replace`` with sufficient statistics: the std path, and the
mean on a fixed dyadic grid.

Under ``replace`` the means do not feed back into the stds, so given the std path the
mean is a Gaussian random walk. It is drawn block by block (``BLOCK`` generations): one
counter-based normal for a block's end, and Brownian bridges (Levy's construction) down to
the generations inside a block that are recorded. The chain's stream holds only the
chi-squares of the std path, and every record set reads the same values.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import _rng
from ._flags import JIT, PJIT
from ._gaussian_state import _BIG, _LN2, _SMALL, KEY_HI, KEY_LO, MU, VAR, VAR_EXP, _renormalise
from ._streams import BITS, S0, S1

BLOCK = 256  # replace, sufficient: generations per block of the mean's dyadic grid (2^k)
_GROUP = 16  # replace, sufficient: chains that share one scratch buffer
_SPAN = 1024 * BLOCK  # replace, sufficient: most generations one kernel call takes


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


@njit(**JIT)
def chain_keys(rng, state):
    """Set each chain's key for counter-based normals in ``state``."""
    # A key per chain for counter-based normals, hashed from its stream's first state
    # (a function of the seed and the chain alone), kept as two exact 32-bit halves.
    for c in range(rng.shape[0]):
        key = _rng.mix64(rng[c, S0] ^ _rng.mix64(rng[c, S1] + np.uint64(0x3C6EF372FE94F82B)))
        state[c, KEY_LO] = float(key & np.uint64(0xFFFFFFFF))
        state[c, KEY_HI] = float(key >> np.uint64(32))


def replace_sufficient(rng, state, t_start, t_end, slots, rec_mu, rec_logsig, n, ddof) -> None:
    """Advance replace-sufficient chains (arguments as :func:`.gaussian.advance`'s, checked)."""
    # At most _SPAN generations a call: the kernel's tables of records and nodes take
    # (t_end - t_start) * 33 bytes.
    for lo in range(t_start, t_end, _SPAN):
        hi = min(t_end, (lo // _SPAN + 1) * _SPAN)
        _replace_sufficient(
            rng, state, lo, hi, slots[lo - t_start : hi - t_start], rec_mu, rec_logsig, n, ddof
        )
