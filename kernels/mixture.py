"""Gaussian-mixture chains: sample a mixture, refit it by EM, generation after generation.

Each generation draws the regime's training set from the current fit (the regime's
building blocks in :mod:`._regimes` decide what it holds), fits K components by EM
(:mod:`.mixture_em`, scikit-learn's algorithm step for step) from a k-means++ start on
that data or warm from the previous fit, and records the fit where asked. The metrics of
the recorded fits (held-out log-likelihood, tail mass) are :mod:`.mixture_eval`'s.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import _rng
from ._curation import (
    BEST_OF,
    BIAS,
    CORRECT,
    KIND,
    SELF_TOP,
    SIZE,
    STRENGTH,
    TOP,
    curation_arrays,
    log_constants,
    mixture_kept,
    top_candidates,
)
from ._flags import JIT, PJIT
from ._regimes import (
    ACCUMULATE_SUBSAMPLE,
    FRESH,
    KEEP_ORIGINAL,
    draws_real,
    pools,
    subsample_front,
    synthetic_count,
    training_rows,
)
from ._streams import check_block, init_streams
from .mixture_em import (  # noqa: F401 - the fits are part of this module's interface
    DIAG,
    FULL,
    _check_params,
    _cholesky,
    _fit,
    _sample,
    fit_em,
)
from .mixture_eval import evaluate_fits, tail_directions  # noqa: F401 - likewise the metrics
from .mixture_init import _init_kmeanspp, kmeanspp_init  # noqa: F401 - part of the interface


def sample_mixture(
    weights: np.ndarray,
    means: np.ndarray,
    covs: np.ndarray,
    num_samples: int,
    seed: int,
    chain: int,
) -> np.ndarray:
    """Draw ``num_samples`` points ``(n, d)`` from a mixture with chain ``chain``'s stream."""
    w = np.asarray(weights, dtype=np.float64)
    m = np.ascontiguousarray(means, dtype=np.float64)
    c = np.ascontiguousarray(covs, dtype=np.float64)
    _check_params(w, m, c)
    chol = np.zeros_like(c)
    for k in range(w.shape[0]):
        if not _cholesky(c[k], chol[k]):
            raise ValueError(f"covariance {k} is not positive definite")
    out = np.empty((num_samples, m.shape[1]))
    s0, s1 = _rng.stream_state(np.uint64(seed), np.uint64(chain))
    _sample(w, m, chol, out, np.uint64(s0), np.uint64(s1))
    return out


KMEANSPP = 0
WARM = 1


@njit(**JIT)
def _draw_into(weights, means, covs, out, chol, s0, s1):
    k_count = weights.shape[0]
    for k in range(k_count):
        if not _cholesky(covs[k], chol[k]):
            return False, s0, s1
    s0, s1 = _sample(weights, means, chol, out, s0, s1)
    return True, s0, s1


@njit(**JIT)
def _curated_draws(w, m, cv, out, chol, biased, const, cand, keys, y, ops, w0, m0, chol0,
                   const0, tally, s0, s1):  # fmt: skip
    """Draw ``out`` from the model under the curation ``ops`` (:mod:`._curation`); add the
    candidates per kept sample and a starved generation to ``tally``, whose third entry
    holds this generation's candidates per kept sample."""
    for k in range(w.shape[0]):
        if not _cholesky(cv[k], chol[k]):
            tally[2] = 1.0  # nothing drawn: the generation counts one candidate per sample
            tally[0] += 1.0
            return False, s0, s1
    log_constants(w, chol, const)
    lam = ops[BIAS]
    for k in range(w.shape[0]):
        for i in range(chol.shape[1]):
            for j in range(chol.shape[2]):
                biased[k, i, j] = lam * chol[k, i, j]  # every covariance times lambda^2
    drawn, starved, s0, s1 = mixture_kept(
        out, cand, keys, ops, (w, m, biased), (w, m, chol, const), (w0, m0, chol0, const0),
        y, s0, s1,
    )  # fmt: skip
    tally[2] = drawn / out.shape[0]
    tally[0] += tally[2]
    tally[1] += starved
    return True, s0, s1


# Kept whole: the per-chain loop of every mixture run (its scratch buffers are allocated
# once per chain and shared by every generation's draws and fit).
@njit(**PJIT)
def _chains(
    rng,
    weights,
    means,
    covs,
    t_start,
    t_end,
    slots,
    rec_w,
    rec_m,
    rec_c,
    rec_iter,
    rec_conv,
    rec_lb,
    tot_iter,
    tot_failed,
    n,
    regime,
    num_real,
    cov_type,
    init,
    tol,
    max_iter,
    reg_covar,
    w0,
    m0,
    c0,
    pool,
    pool_size,
    kept,
    ops,
    chol0,
    const0,
    tally,
    rec_cost,
):
    num_chains, k_count, d = means.shape
    curated = ops.shape[0] > 0
    room = 1
    if curated:
        room = max(2 * int(ops[BEST_OF]), 1)
        if int(ops[KIND]) in (TOP, SELF_TOP):
            room = max(room, top_candidates(synthetic_count(regime, n, num_real), ops[STRENGTH]))
    for c in prange(num_chains):
        s0 = rng[c, 0]
        s1 = rng[c, 1]
        w = weights[c]
        m = means[c]
        cv = covs[c]
        chol = np.zeros((k_count, d, d))
        trace = np.empty(max_iter)
        synth_n = synthetic_count(regime, n, num_real)
        own = np.empty((n, d))
        # EM scratch for the largest training set this call can see, allocated once.
        scratch = np.empty((k_count + d) * max(n, pool.shape[1]))
        cand = np.empty((room, d))
        keys = np.empty(room)
        biased = np.zeros((k_count, d, d))
        const = np.empty(k_count)
        y = np.empty(d)
        for t in range(t_start, t_end):
            # Generation t's synthetic data: n (or n - real) draws from model t.
            # A covariance that stops being positive definite (not possible in exact
            # arithmetic with reg_covar > 0) marks the fit as not converged.
            healthy = True
            if pools(regime):
                size = pool_size[c]
                target = pool[c, size : size + n]
                pool_size[c] = size + n
            else:
                target = own[:synth_n]
            cost = 1.0
            if curated and t > 0 and target.shape[0] > 0:
                # The operators shape the draws of models 1, 2, ... (generation 0 is real).
                ok, s0, s1 = _curated_draws(w, m, cv, target, chol, biased, const, cand, keys,
                                            y, ops, w0, m0, chol0, const0, tally[c], s0, s1)  # fmt: skip
                cost = tally[c, 2]
            else:
                ok, s0, s1 = _draw_into(w, m, cv, target, chol, s0, s1)
                if curated and t > 0:  # no synthetic draws: one candidate per sample
                    tally[c, 0] += 1.0
            healthy = healthy and ok
            if num_real > 0 and draws_real(regime, t):
                # The real share: fresh draws every generation, or the kept share of
                # generation 0.
                real = own[synth_n:] if regime == FRESH else kept[c]
                ok, s0, s1 = _draw_into(w0, m0, c0, real, chol, s0, s1)
                healthy = healthy and ok
            if regime == KEEP_ORIGINAL and num_real > 0:
                own[synth_n:] = kept[c]
            if regime == ACCUMULATE_SUBSAMPLE:
                s0, s1 = subsample_front(pool[c], pool_size[c], n, s0, s1)
            train = training_rows(regime, pool[c], pool_size[c], own, n)
            if init == KMEANSPP:
                s0, s1 = _init_kmeanspp(train, cov_type, reg_covar, w, m, cv, s0, s1)
            n_iter, converged, lower, ok = _fit(
                train, w, m, cv, cov_type, tol, max_iter, reg_covar, scratch, chol, trace
            )
            healthy = healthy and ok
            tot_iter[c] += n_iter
            if not (converged and healthy):
                tot_failed[c] += 1
            slot = slots[t - t_start]
            if curated and slot >= 0:
                rec_cost[c, slot] = cost
            if slot >= 0:
                rec_w[c, slot] = w
                rec_m[c, slot] = m
                rec_c[c, slot] = cv
                rec_iter[c, slot] = n_iter
                rec_conv[c, slot] = converged and healthy
                rec_lb[c, slot] = lower
        rng[c, 0] = s0
        rng[c, 1] = s1


def new_records(chains: int, records: int, components: int, dim: int) -> dict[str, np.ndarray]:
    """Return zeroed record arrays for :func:`advance_mixture`."""
    b, r, k, d = chains, records, components, dim
    return {
        "weights": np.zeros((b, r, k)),
        "means": np.zeros((b, r, k, d)),
        "covs": np.zeros((b, r, k, d, d)),
        "n_iter": np.zeros((b, r), np.int64),
        "converged": np.zeros((b, r), np.bool_),
        "lower_bound": np.zeros((b, r)),
        "total_iterations": np.zeros(b, np.int64),
        "total_failed": np.zeros(b, np.int64),
    }


def init_mixture_chains(
    seed: int, chains: np.ndarray, weights0: np.ndarray, means0: np.ndarray, covs0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(rng, weights, means, covs)`` of chains at model 0, the original mixture.

    Args:
        seed: the run's seed.
        chains: global chain indices ``(B,)``.
        weights0: original weights ``(K,)``.
        means0: original means ``(K, d)``.
        covs0: original covariances ``(K, d, d)``.
    """
    w0 = np.asarray(weights0, dtype=np.float64)
    m0 = np.asarray(means0, dtype=np.float64)
    c0 = np.asarray(covs0, dtype=np.float64)
    _check_params(w0, m0, c0)
    rng = init_streams(seed, chains)
    b = len(chains)
    return (
        rng,
        np.repeat(w0[None], b, axis=0),
        np.repeat(m0[None], b, axis=0),
        np.repeat(c0[None], b, axis=0),
    )


# Long for its docstring and the checks of every array the compiled loop indexes unchecked.
def advance_mixture(
    rng: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    covs: np.ndarray,
    t_start: int,
    t_end: int,
    slots: np.ndarray,
    records: dict[str, np.ndarray],
    *,
    num_samples: int,
    regime: int,
    num_real: int,
    covariance_type: str,
    init: str,
    tol: float,
    max_iter: int,
    reg_covar: float,
    weights0: np.ndarray,
    means0: np.ndarray,
    covs0: np.ndarray,
    pool: np.ndarray | None = None,
    pool_size: np.ndarray | None = None,
    kept: np.ndarray | None = None,
    curation: np.ndarray | None = None,
    tally: np.ndarray | None = None,
    rec_cost: np.ndarray | None = None,
) -> None:
    """Advance mixture chains from model ``t_start`` to ``t_end`` in place.

    Each generation draws the regime's training set, fits K components by EM (from a
    k-means++ start on that data, or warm from the previous fit) and records the fit
    where ``slots`` say.

    Args:
        rng: stream states, uint64 ``(B, 3)`` from :func:`init_mixture_chains`.
        weights: current weights ``(B, K)``, updated in place.
        means: current means ``(B, K, d)``, updated in place.
        covs: current covariances ``(B, K, d, d)``, updated in place.
        t_start: the model the chains are at.
        t_end: the model to stop at.
        slots: int64 ``(t_end - t_start,)``: the record column of model ``t_start + j + 1``, or -1.
        records: ``weights (B, R, K)``, ``means (B, R, K, d)``, ``covs (B, R, K, d, d)``,
            ``n_iter (B, R)`` int64, ``converged (B, R)`` bool, ``lower_bound (B, R)``,
            and running totals over every generation, recorded or not:
            ``total_iterations (B,)`` and ``total_failed (B,)`` int64 (fits that did not
            converge), which are added to.
        num_samples: training-set size n.
        regime: a regime code of this module.
        num_real: real samples per training set (fresh, keep-original).
        covariance_type: ``"full"`` or ``"diag"``.
        init: ``"kmeans++"`` or ``"warm"``.
        tol: EM tolerance on the mean log-likelihood.
        max_iter: EM iteration cap.
        reg_covar: covariance floor added to diagonals.
        weights0: the original mixture's weights ``(K,)``.
        means0: its means ``(K, d)``.
        covs0: its covariances ``(K, d, d)``.
        pool: accumulate regimes: float64 ``(B, n * T_total, d)`` sample pools.
        pool_size: accumulate regimes: int64 ``(B,)`` filled pool lengths.
        kept: keep-original: float64 ``(B, num_real, d)`` kept original samples.
        curation, tally, rec_cost: the operators' vector (its slopes one per dimension),
            ``(B, 2)`` candidates per kept sample and starved generations added up,
            ``(B, R)`` candidates per kept sample of the recorded fits (as
            :func:`.gaussian.advance`'s); None for none. The correction is refused (no
            exact transport between mixtures).
    """
    b, k, d = means.shape
    slots = check_block(rng, b, t_start, t_end, slots, records["weights"].shape[1])
    if weights.shape != (b, k) or covs.shape != (b, k, d, d):
        raise ValueError("weights, means and covs disagree in shape")
    if pools(regime):
        if pool is None or pool_size is None or pool.shape[1] < num_samples * t_end:
            raise ValueError("the accumulate regimes need a pool of n * T samples per chain")
    else:
        pool = np.empty((b, 0, d))
        pool_size = np.zeros(b, np.int64)
    if regime == KEEP_ORIGINAL and num_real > 0:
        if kept is None or kept.shape != (b, num_real, d):
            raise ValueError("keep-original needs kept samples (B, num_real, d)")
    else:
        kept = np.empty((b, 0, d))
    if not 0 <= num_real <= num_samples or num_samples < k:
        raise ValueError("need 0 <= num_real <= n and n >= K")
    c0 = np.asarray(covs0, np.float64)
    chol0 = np.zeros_like(c0)
    for j in range(c0.shape[0]):
        if not _cholesky(c0[j], chol0[j]):
            raise ValueError(f"original covariance {j} is not positive definite")
    const0 = np.empty(c0.shape[0])
    log_constants(np.asarray(weights0, np.float64), chol0, const0)
    ops, tally, rec_cost = curation_arrays(
        curation, tally, rec_cost, b, records["weights"].shape[1]
    )
    if ops.size and (ops[CORRECT] > 0 or ops.shape[0] != SIZE + d):
        raise ValueError("mixture curation takes no correction, and one slope per dimension")
    # The tally's third column holds a generation's cost while the kernel runs.
    work = np.zeros((b, 3))
    _chains(
        rng,
        weights,
        means,
        covs,
        t_start,
        t_end,
        slots,
        records["weights"],
        records["means"],
        records["covs"],
        records["n_iter"],
        records["converged"],
        records["lower_bound"],
        records["total_iterations"],
        records["total_failed"],
        num_samples,
        regime,
        num_real,
        FULL if covariance_type == "full" else DIAG,
        KMEANSPP if init == "kmeans++" else WARM,
        float(tol),
        int(max_iter),
        float(reg_covar),
        np.asarray(weights0, np.float64),
        np.asarray(means0, np.float64),
        np.asarray(covs0, np.float64),
        pool,
        pool_size,
        kept,
        ops,
        chol0,
        const0,
        work if ops.size else np.zeros((0, 3)),
        rec_cost,
    )
    if ops.size:
        tally += work[:, :2]
