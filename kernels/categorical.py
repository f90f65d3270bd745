"""Token chains: a categorical distribution over K categories, sampled and refitted.

Model 0 is the original distribution ``p0``; generation t's training set is drawn
according to the regime (model t's samples, pooled or mixed with real data) and model
t + 1 is its smoothed empirical distribution ``(c_i + eps) / (N + K eps)`` (counts
``c`` of the N training tokens, additive smoothing ``eps >= 0``). Sampling from a model
first applies the decoding transform: temperature ``tau`` (``p^(1/tau)`` renormalised),
then top-k, then top-p (the smallest set of most likely categories whose mass reaches
``top_p``), as language-model decoders apply them; real data are never transformed.

Each chain holds its training set as a list of tokens. Where the model is the plain
empirical distribution (``eps = 0``, no transform) a draw from it is a uniformly chosen
token of the training set: O(1) per token, O(n) per generation whatever K, with 32-bit
bounded integers by Lemire's exact rejection method (two per random word). Otherwise
the counts are formed (O(N + K)), transformed, and n tokens drawn from a Walker/Vose
alias table (O(K) to build, O(1) per token). Both are exact draws of n independent
tokens, i.e. of multinomial counts. Metrics are computed at recorded generations only.

References:
    A. J. Walker, "An efficient method for generating discrete random variables with
    general distributions", ACM TOMS 3(3), 1977; M. D. Vose, "A linear algorithm for
    generating random numbers with a given distribution", IEEE TSE 17(9), 1991.
    D. Lemire, "Fast random integer generation in an interval", ACM TOMACS 29(1), 2019.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._curation import (
    BEST_OF,
    KIND,
    LOGLIK,
    NONE,
    REWARD,
    SELF_TOP,
    STRENGTH,
    curation_arrays,
    discrete_law,
    luce_pick,
    ranked_tokens,
    top_candidates,
)
from ._curation import TOP as TOP_KIND
from ._flags import JIT, PJIT
from ._regimes import (
    ACCUMULATE,
    ACCUMULATE_SUBSAMPLE,
    KEEP_ORIGINAL,
    draws_real,
    pools,
    subsample_front,
    synthetic_count,
    training_rows,
)
from ._streams import check_block, init_streams
from .categorical_draws import (  # noqa: F401 - the draws are part of this module's interface
    _alias_draws,
    _build_alias,
    _decode,
    _uniform_picks,
    alias_table,
    decode,
    sample_counts,
)

# Metrics recorded per chain and recorded generation, in column order.
METRICS = (
    "heterozygosity",
    "entropy",
    "support",
    "top_share",
    "tail10",
    "tail1",
    "tv",
    "kl",
)
HET, ENT, SUP, TOP, TAIL10, TAIL1, TV, KL = range(8)
NUM_METRICS = 8


@njit(**JIT)
def _counts(tokens, size, counts):
    counts[:] = 0
    for i in range(size):
        counts[tokens[i]] += 1


@njit(**JIT)
def _model(counts, total, eps, p):
    """The fitted model ``(c + eps) / (N + K eps)`` into ``p``."""
    k = counts.shape[0]
    denom = total + k * eps
    for i in range(k):
        p[i] = (counts[i] + eps) / denom


@njit(**JIT)
def _metrics(p, p0, log_p0, rare10, rare1, out):
    het = 1.0
    ent = 0.0
    sup = 0
    top = 0.0
    t10 = 0.0
    t1 = 0.0
    tv = 0.0
    kl = 0.0
    for i in range(p.shape[0]):
        v = p[i]
        het -= v * v
        tv += abs(v - p0[i])
        if v > 0.0:
            lv = math.log(v)
            ent -= v * lv
            kl += v * (lv - log_p0[i])
            sup += 1
            top = max(top, v)
            if rare10[i]:
                t10 += v
            if rare1[i]:
                t1 += v
    out[HET] = het
    out[ENT] = ent
    out[SUP] = sup
    out[TOP] = top
    out[TAIL10] = t10
    out[TAIL1] = t1
    out[TV] = 0.5 * tv
    out[KL] = kl


@njit(**JIT)
def _metrics_sparse(counts, touched, num, total, p0, log_p0, rare10, rare1, out):
    """:func:`_metrics` of the plain empirical model from its support only: O(support).

    Categories outside the support have p = 0 and add ``p0`` to the total variation and
    nothing else.
    """
    het = 1.0
    ent = 0.0
    top = 0.0
    t10 = 0.0
    t1 = 0.0
    tv = 1.0
    kl = 0.0
    for j in range(num):
        i = touched[j]
        v = counts[i] / total
        het -= v * v
        tv += abs(v - p0[i]) - p0[i]
        lv = math.log(v)
        ent -= v * lv
        kl += v * (lv - log_p0[i])
        top = max(top, v)
        if rare10[i]:
            t10 += v
        if rare1[i]:
            t1 += v
    out[HET] = het
    out[ENT] = ent
    out[SUP] = num
    out[TOP] = top
    out[TAIL10] = t10
    out[TAIL1] = t1
    out[TV] = 0.5 * tv
    out[KL] = kl


# Kept whole: the hot loop of every token run (draws, the regime's training set, the fit
# and the metrics of one generation share their per-chain buffers).
@njit(**PJIT)
def _chains(
    rng,
    train,
    size,
    t_start,
    t_end,
    slots,
    rec,
    fixed_at,
    snap_slots,
    snaps,
    snap_row,
    n,
    regime,
    num_real,
    eps,
    temperature,
    top_k,
    top_p,
    p0,
    a0_prob,
    a0_alias,
    rare10,
    rare1,
    kept,
    ops,
    tally,
    rec_cost,
):
    num_chains = train.shape[0]
    k = p0.shape[0]
    curated = ops.shape[0] > 0
    plain = eps == 0.0 and temperature == 1.0 and top_k <= 0 and top_p >= 1.0 and not curated
    kind = int(ops[KIND]) if curated else NONE
    best = int(ops[BEST_OF]) if curated else 1
    ranked = kind in (TOP_KIND, SELF_TOP)
    big = top_candidates(synthetic_count(regime, n, num_real), ops[STRENGTH]) if ranked else 0
    log_p0 = np.empty(k)
    for i in range(k):
        log_p0[i] = math.log(p0[i]) if p0[i] > 0.0 else -np.inf
    for c in prange(num_chains):
        s0 = rng[c, 0]
        s1 = rng[c, 1]
        tokens = train[c]
        counts = np.zeros(k, np.int64)
        p = np.empty(k) if not plain else np.empty(0)
        touched = (
            np.empty(min(k, tokens.shape[0]), np.int64) if eps == 0.0 else np.empty(0, np.int64)
        )
        q = np.empty(k) if not plain else np.empty(0)
        order = np.empty(k, np.int64) if (0 < top_k < k or top_p < 1.0) else np.empty(0, np.int64)
        prob = np.empty(k) if not plain else np.empty(0)
        alias = np.empty(k, np.int64) if not plain else np.empty(0, np.int64)
        small = np.empty(k, np.int64) if not plain else np.empty(0, np.int64)
        large = np.empty(k, np.int64) if not plain else np.empty(0, np.int64)
        fresh_new = np.empty(n, np.int32)
        synth = synthetic_count(regime, n, num_real)
        rows = tokens.reshape((tokens.shape[0], 1))
        met = np.empty(NUM_METRICS)
        cand = np.empty(max(big, best), np.int32)
        keys = np.empty(max(big, best))
        for t in range(t_start, t_end):
            # Generation t's new tokens: model 0 is the original (n real tokens); model
            # t >= 1 is fitted to the previous training set, which is the pool when
            # accumulating and the first n tokens otherwise.
            cur = size[c]
            model_size = cur if regime == ACCUMULATE else n
            count = n if t == 0 else synth
            cost = 1.0
            if t == 0:
                s0, s1 = _alias_draws(a0_prob, a0_alias, fresh_new, n, s0, s1)
            elif plain or count == 0:  # (no synthetic tokens: nothing to curate)
                s0, s1 = _uniform_picks(tokens, model_size, fresh_new, count, s0, s1)
            else:
                _counts(tokens, model_size, counts)
                _model(counts, model_size, eps, p)
                _decode(p, temperature, top_k, top_p, q, order)
                if curated:
                    # The operators shape the draws of models 1, 2, ... (generation 0 is real).
                    cost, starved = discrete_law(ops, p, p0, q)
                    tally[c, 1] += starved
                _build_alias(q, prob, alias, small, large)
                if ranked:
                    s0, s1 = _alias_draws(prob, alias, cand, big, s0, s1)
                    ref = p0 if kind == TOP_KIND else p
                    for i in range(big):
                        keys[i] = ref[cand[i]]
                    ranked_tokens(cand, keys, big, count, fresh_new)
                    cost = big / count
                elif best > 1:
                    for i in range(count):
                        s0, s1 = _alias_draws(prob, alias, cand, best, s0, s1)
                        for j in range(best):
                            keys[j] = p0[cand[j]]  # the reward exp(log p0)
                        pick, s0, s1 = luce_pick(keys, best, s0, s1)
                        fresh_new[i] = cand[pick]
                    cost = float(best)
                else:
                    s0, s1 = _alias_draws(prob, alias, fresh_new, count, s0, s1)
            if curated and t > 0:
                tally[c, 0] += cost
            # Generation t's training set.
            if pools(regime):
                tokens[cur : cur + n] = fresh_new
                cur += n
                # Generation 0's pool is its n tokens: nothing to subsample yet.
                if regime == ACCUMULATE_SUBSAMPLE and t > 0:
                    s0, s1 = subsample_front(rows, cur, n, s0, s1)
                size[c] = cur
            else:
                tokens[:count] = fresh_new[:count]
                if t == 0:
                    # Model 0 is the original: its draws hold the real share to keep.
                    if regime == KEEP_ORIGINAL and num_real > 0:
                        kept[c] = tokens[synth:n]
                elif num_real > 0:
                    if draws_real(regime, t):
                        s0, s1 = _alias_draws(a0_prob, a0_alias, tokens[synth:n], num_real, s0, s1)
                    else:  # keep-original: the kept generation-0 tokens
                        tokens[synth:n] = kept[c]
                size[c] = n
            train_size = training_rows(regime, tokens, cur, tokens[:n], n).shape[0]
            # Model t + 1 is fitted to the training set: is it fixed (one category)?
            first = tokens[0]
            one = True
            if eps > 0.0:
                one = False
            else:
                for i in range(1, train_size):
                    if tokens[i] != first:
                        one = False
                        break
            if one and fixed_at[c] < 0:
                fixed_at[c] = t + 1
            slot = slots[t - t_start]
            srow = snap_slots[t - t_start] if c == snap_row else -1
            if curated and slot >= 0:
                rec_cost[c, slot] = cost
            if slot < 0 and srow < 0:
                continue
            if eps == 0.0:
                # The plain empirical model lives on the tokens' support: O(N), not O(K).
                for i in range(train_size):
                    counts[tokens[i]] = 0
                nt = 0
                for i in range(train_size):
                    tok = tokens[i]
                    if counts[tok] == 0:
                        touched[nt] = tok
                        nt += 1
                    counts[tok] += 1
                if slot >= 0:
                    _metrics_sparse(counts, touched, nt, train_size, p0, log_p0, rare10, rare1, met)
                    rec[c, slot] = met
                if srow >= 0:
                    snaps[srow] = 0.0
                    for j in range(nt):
                        snaps[srow, touched[j]] = counts[touched[j]] / train_size
                for j in range(nt):
                    counts[touched[j]] = 0
            else:
                _counts(tokens, train_size, counts)
                _model(counts, train_size, eps, p)
                if slot >= 0:
                    _metrics(p, p0, log_p0, rare10, rare1, met)
                    rec[c, slot] = met
                if srow >= 0:
                    snaps[srow] = p
        rng[c, 0] = s0
        rng[c, 1] = s1


def rare_masks(p0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the categories ranked beyond the original's top 10% and top 1%.

    The top set holds the ``ceil(f K)`` most likely categories of ``p0`` (ties broken
    by the lower index); the masks mark the rest.
    """
    k = len(p0)
    order = np.argsort(-np.asarray(p0), kind="stable")
    masks = []
    for frac in (0.1, 0.01):
        mask = np.ones(k, np.bool_)
        mask[order[: math.ceil(frac * k)]] = False
        masks.append(mask)
    return masks[0], masks[1]


def init_token_chains(seed: int, chains: np.ndarray, capacity: int) -> tuple[np.ndarray, ...]:
    """Return ``(rng, train, size, fixed_at)`` of chains at model 0.

    Args:
        seed: the run's seed.
        chains: global chain indices ``(B,)``.
        capacity: tokens a chain's training set can hold (n, or n (T + 1) to accumulate).
    """
    rng = init_streams(seed, chains)
    b = len(chains)
    return (
        rng,
        np.zeros((b, capacity), np.int32),
        np.zeros(b, np.int64),
        np.full(b, -1, np.int64),
    )


# Long for its docstring and the checks of every array the compiled loop indexes unchecked.
def advance_tokens(
    rng: np.ndarray,
    train: np.ndarray,
    size: np.ndarray,
    fixed_at: np.ndarray,
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
    kept: np.ndarray | None = None,
    snap_slots: np.ndarray | None = None,
    snaps: np.ndarray | None = None,
    snap_row: int = -1,
    curation: np.ndarray | None = None,
    tally: np.ndarray | None = None,
    rec_cost: np.ndarray | None = None,
) -> None:
    """Advance token chains from model ``t_start`` to ``t_end`` in place.

    Args:
        rng: stream states, uint64 ``(B, 3)``.
        train: int32 ``(B, L)`` training tokens; ``L >= n`` (``n (T + 1)`` to accumulate).
        size: int64 ``(B,)`` tokens held (the pool length when accumulating).
        fixed_at: int64 ``(B,)`` first model with a single category (-1: none yet).
        t_start: the model the chains are at; ``t_end``: the model to stop at.
        slots: int64 ``(t_end - t_start,)`` record column of model ``t_start + j + 1`` or -1.
        records: float64 ``(B, R, NUM_METRICS)`` metrics of the recorded models.
        num_samples: n, tokens drawn per generation.
        regime: a regime code; num_real: real tokens per training set (fresh, keep-original).
        p0: the original distribution ``(K,)``, summing to 1.
        smoothing: additive smoothing eps of the fit.
        temperature, top_k, top_p: the decoding transform (1, 0, 1: none).
        kept: keep-original: int32 ``(B, num_real)`` generation-0 tokens kept.
        snap_slots: int64 like ``slots``: row of ``snaps`` for the whole distribution of
            chain ``snap_row`` (a local index) at that model, or -1.
        snaps: float64 ``(S, K)``.
        curation, tally, rec_cost: the operators' vector, ``(B, 2)`` candidates per kept
            token and starved generations added up, ``(B, R)`` candidates per kept token
            of the recorded models (as :func:`.gaussian.advance`'s); None for none.
    """
    b = train.shape[0]
    k = p0.shape[0]
    if records.ndim != 3 or records.shape[0] != b or records.shape[2] != NUM_METRICS:
        raise ValueError("records must be (B, R, NUM_METRICS)")
    slots = check_block(rng, b, t_start, t_end, slots, records.shape[1])
    if train.dtype != np.int32 or size.shape != (b,) or fixed_at.shape != (b,):
        raise ValueError("train must be int32 (B, L) with size and fixed_at (B,)")
    need = num_samples * (t_end + 1) if pools(regime) else num_samples
    if train.shape[1] < need:
        raise ValueError(f"train holds {train.shape[1]} tokens per chain; this needs {need}")
    if not 0 <= num_real <= num_samples or num_samples < 1:
        raise ValueError("need n >= 1 and 0 <= num_real <= n")
    if k < 2 or k >= 2**31:
        raise ValueError("need 2 <= K < 2**31 categories")
    if not (temperature > 0 and smoothing >= 0 and 0 < top_p <= 1 and top_k >= 0):
        raise ValueError("need temperature > 0, smoothing >= 0, 0 < top_p <= 1, top_k >= 0")
    if regime == KEEP_ORIGINAL and num_real > 0:
        if kept is None or kept.shape != (b, num_real):
            raise ValueError("keep-original needs kept tokens (B, num_real)")
    else:
        kept = np.zeros((b, 0), np.int32)
    if snap_slots is None or snaps is None:
        snap_slots = np.full(t_end - t_start, -1, np.int64)
        snaps = np.zeros((0, k))
        snap_row = -1
    cur, tally, rec_cost = curation_arrays(curation, tally, rec_cost, b, records.shape[1])
    if cur.size and cur[BEST_OF] > 1 and cur[REWARD] != LOGLIK:
        raise ValueError("token chains reward loglik only")
    p0 = np.ascontiguousarray(p0, np.float64)
    a0_prob, a0_alias = alias_table(p0)
    rare10, rare1 = rare_masks(p0)
    _chains(
        rng,
        train,
        size,
        t_start,
        t_end,
        slots,
        records,
        fixed_at,
        np.ascontiguousarray(snap_slots, np.int64),
        snaps,
        int(snap_row),
        int(num_samples),
        int(regime),
        int(num_real),
        float(smoothing),
        float(temperature),
        int(top_k),
        float(top_p),
        p0,
        a0_prob,
        a0_alias,
        rare10,
        rare1,
        kept,
        cur,
        tally,
        rec_cost,
    )
