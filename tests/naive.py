"""Slow, literal reference implementations that the fast kernels must match.

They call the same per-chain random primitives in the same order as the kernels, but
build the data sets explicitly (``x = mu + sigma * z``), keep every sample a regime
needs, and fit with ``np.mean`` / ``np.std``: each regime written as its definition.
"""

from __future__ import annotations

import math

import numpy as np

from collapsesim.kernels import _rng


def _u(out):
    """Called from Python, jitted samplers return plain ints; keep the state uint64."""
    *value, s0, s1 = out
    return (*value, np.uint64(s0), np.uint64(s1))


def _normals(k: int, s0, s1):
    z = np.empty(k)
    for i in range(k):
        z[i], s0, s1 = _u(_rng.normal(s0, s1))
    return z, s0, s1


def gaussian_chain(
    seed: int,
    chain: int,
    generations: int,
    n: int,
    *,
    ddof: int = 0,
    regime: str = "replace",
    num_real: int = 0,
    mu0: float = 0.0,
    sigma0: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(mu, sigma)`` of models 0..T of one chain, sample method, literally.

    Args:
        seed: the run's seed.
        chain: the chain index.
        generations: T.
        n: training-set size.
        ddof: 0 or 1.
        regime: a regime name.
        num_real: real samples per training set (fresh, keep-original).
        mu0: original mean.
        sigma0: original std.

    Returns:
        Two float64 arrays of shape ``(T + 1,)``.
    """
    s0, s1 = _u(_rng.stream_state(np.uint64(seed), np.uint64(chain)))
    mus, sigmas = [mu0], [sigma0]
    mu, sigma = mu0, sigma0
    everything: list[np.ndarray] = []  # accumulate: all data so far
    pool = np.empty(0)  # accumulate-subsample: the pool, in the kernel's order
    kept = np.empty(0)
    for t in range(generations):
        if regime == "accumulate-subsample":
            z, s0, s1 = _normals(n, s0, s1)
            pool = np.concatenate([pool, mu + sigma * z])
            for i in range(n):
                j, s0, s1 = _u(_rng.integer_below(np.uint64(len(pool) - i), s0, s1))
                k = i + int(j)
                pool[i], pool[k] = pool[k], pool[i]
            train = pool[:n]
        else:
            num_synth = n - (num_real if regime in ("fresh", "keep-original") else 0)
            z, s0, s1 = _normals(num_synth, s0, s1)
            synth = mu + sigma * z
            if regime == "replace":
                train = synth
            elif regime == "accumulate":
                everything.append(synth)
                train = np.concatenate(everything)
            elif regime == "fresh":
                zr, s0, s1 = _normals(num_real, s0, s1)
                train = np.concatenate([synth, mu0 + sigma0 * zr])
            elif regime == "keep-original":
                if t == 0:
                    zk, s0, s1 = _normals(num_real, s0, s1)
                    kept = mu0 + sigma0 * zk
                train = np.concatenate([synth, kept])
            else:
                raise ValueError(regime)
        mu = float(np.mean(train))
        sigma = float(np.std(train, ddof=ddof))
        mus.append(mu)
        sigmas.append(sigma)
    return np.array(mus), np.array(sigmas)


def _chain_key(s0, s1) -> np.uint64:
    """The chain's key for counter-based normals, from its stream's first state."""
    m = 2**64 - 1
    inner = int(_rng.mix64(np.uint64((int(s1) + 0x3C6EF372FE94F82B) & m)))
    return np.uint64(int(_rng.mix64(np.uint64(int(s0) ^ inner))))


def gaussian_chain_sufficient(
    seed: int,
    chain: int,
    generations: int,
    n: int,
    *,
    ddof: int = 0,
    mu0: float = 0.0,
    sigma0: float = 1.0,
    records: set[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(mu, sigma)`` of models 0..T under replace from drawn sufficient statistics.

    The kernel's protocol, written out: each generation, 3 bits from a reservoir (refilled
    from one random word every 21 generations) and a chi-square, the stream's only draws.
    The mean, given the std path, on the grid of blocks of ``BLOCK`` generations: a block's
    end moves by ``sqrt(c) z`` (``c`` the block's sum of sigma_t^2 / n), and every
    generation inside it is the Brownian bridge between its dyadic neighbours, coarse to
    fine, each ``z`` the normal keyed by the chain and the generation. This builds every
    node of every block (the kernel builds only those its records need, and must agree).
    ``mu`` holds NaN at generations that are not recorded (``records``: all when None).
    """
    from collapsesim.kernels.gaussian import BLOCK

    s0, s1 = _u(_rng.stream_state(np.uint64(seed), np.uint64(chain)))
    key = _chain_key(s0, s1)
    total = -(-generations // BLOCK) * BLOCK  # the std path to the end of the last block
    sigmas = [sigma0]
    sigma = sigma0
    reservoir: list[int] = []
    a = 0.5 * (n - 1)
    for _ in range(total):
        if a >= 1.0:
            if not reservoir:
                word, s0, s1 = _u(_rng.next_u64(s0, s1))
                rest = int(word) >> 1
                reservoir = [(rest >> (3 * i)) & 7 for i in range(21)]
            extra = reservoir.pop(0)
            d, c, x2max = _rng.mt_constants(a)
            g, s0, s1 = _u(_rng.gamma_mt(d, c, x2max, np.int64(extra), s0, s1))
            chi2 = 2.0 * g
        else:
            chi2, s0, s1 = _u(_rng.chisquare(float(n - 1), s0, s1))
        sigma = sigma * math.sqrt(chi2 / (n - ddof))
        sigmas.append(sigma)
    mus = [mu0]
    mu = mu0
    for b in range(0, total, BLOCK):
        clock = [0.0]
        for i in range(BLOCK):
            clock.append(clock[-1] + sigmas[b + i] ** 2 / n)
        w = [0.0] * (BLOCK + 1)
        w[BLOCK] = math.sqrt(clock[BLOCK]) * _rng.keyed_normal(key, np.uint64(b + BLOCK))
        h = BLOCK // 2
        while h >= 1:
            for m in range(h, BLOCK, 2 * h):
                lo, hi = m - h, m + h
                span = clock[hi] - clock[lo]
                if span > 0:
                    f = (clock[m] - clock[lo]) / span
                    var = (clock[m] - clock[lo]) * (clock[hi] - clock[m]) / span
                    z = _rng.keyed_normal(key, np.uint64(b + m))
                    w[m] = w[lo] + (w[hi] - w[lo]) * f + math.sqrt(var) * z
                else:
                    w[m] = w[lo]
            h //= 2
        mus.extend(mu + w[i] for i in range(1, BLOCK + 1))
        mu += w[BLOCK]
    out = np.array(mus[: generations + 1])
    if records is not None:
        keep = np.zeros(generations + 1, bool)
        keep[0] = True
        keep[[g for g in records if 0 < g <= generations]] = True
        out[~keep] = np.nan
    return out, np.array(sigmas[: generations + 1])


def _curated_draws(rng, cur, mu, sigma, n, mu0, sigma0):
    """n kept synthetic samples of model N(mu, sigma^2) under ``cur``, and the candidates
    drawn for them: each operator as its definition, in the original's units."""
    lam, kind, x = cur.sampling_bias, cur.select, cur.select_strength

    def draw(k):
        return mu + lam * sigma * rng.standard_normal(k)

    if kind in ("top", "self-top"):
        big = max(n, math.ceil(n / x - 1e-9))
        cand = draw(big)
        centre, scale = (mu0, sigma0) if kind == "top" else (mu, sigma)
        loglik = -(((cand - centre) / scale) ** 2)
        kept, drawn = cand[np.argsort(-loglik, kind="stable")[:n]], big
    elif cur.best_of > 1:
        k = cur.best_of
        cand = draw(n * k).reshape(n, k)
        slope = cur.reward_slope()
        reward = -0.5 * ((cand - mu0) / sigma0) ** 2 if slope is None else slope * cand
        w = np.exp(reward - reward.max(axis=1, keepdims=True))
        cum = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
        pick = np.minimum((rng.random(n)[:, None] >= cum).sum(axis=1), k - 1)
        kept, drawn = cand[np.arange(n), pick], n * k
    else:
        chunks, oks = [], []
        while sum(int(o.sum()) for o in oks) < n:
            cand = draw(n)
            if kind == "interval":
                ok = np.abs(cand - mu0) <= x * sigma0
            elif kind == "self-interval":
                ok = np.abs(cand - mu) <= x * sigma
            elif kind == "soft":
                ok = rng.random(n) < np.exp(-x * ((cand - mu0) / sigma0) ** 2 / 2)
            else:
                ok = np.ones(n, bool)
            chunks.append(cand)
            oks.append(ok)
        cand, ok = np.concatenate(chunks), np.concatenate(oks)
        where = np.flatnonzero(ok)[:n]
        kept, drawn = cand[where], int(where[-1]) + 1
    f = cur.fraction
    if f > 0:  # along the optimal-transport map from N(mu, sigma^2) to the original
        kept = (1 - f) * kept + f * (mu0 + sigma0 * (kept - mu) / sigma)
    return kept, drawn


def curated_gaussian_chains(
    rng: np.random.Generator,
    chains: int,
    generations: int,
    n: int,
    cur,
    *,
    ddof: int = 0,
    regime: str = "replace",
    num_real: int = 0,
    mu0: float = 0.0,
    sigma0: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Final ``(mu, sigma, candidates per kept sample)`` of Gaussian chains under curation,
    literally (NumPy's own generator: a reference in distribution, not draw for draw).

    Generation 0 is real and uncurated; the operators shape the synthetic draws of models
    1..T-1. ``regime``: replace, accumulate, fresh (``num_real`` new real draws),
    keep-original (``num_real`` of generation 0 kept) or accumulate-subsample (n of the
    pool without replacement).
    """
    mus, sigmas, costs = np.empty(chains), np.empty(chains), np.ones(chains)
    for c in range(chains):
        mu, sigma = mu0, sigma0
        everything = []
        kept = np.empty(0)
        for t in range(generations):
            num_synth = n - num_real if regime in ("fresh", "keep-original") else n
            if t == 0:
                synth, drawn = mu + sigma * rng.standard_normal(n), num_synth
                if regime == "keep-original":
                    synth, kept = synth[:num_synth], synth[num_synth:]
                elif regime == "fresh":
                    synth = synth[:num_synth]
            else:
                synth, drawn = _curated_draws(rng, cur, mu, sigma, num_synth, mu0, sigma0)
            costs[c] = drawn / num_synth
            if regime in ("accumulate", "accumulate-subsample"):
                everything.append(synth)
                train = np.concatenate(everything)
                if regime == "accumulate-subsample":
                    train = rng.choice(train, size=n, replace=False)
            elif regime == "fresh":
                train = np.concatenate([synth, mu0 + sigma0 * rng.standard_normal(num_real)])
            elif regime == "keep-original":
                train = np.concatenate([synth, kept])
            else:
                train = synth
            mu, sigma = float(np.mean(train)), float(np.std(train, ddof=ddof))
        mus[c], sigmas[c] = mu, sigma
    return mus, sigmas, costs


def curated_token_chains(
    rng: np.random.Generator, chains: int, generations: int, n: int, p0: np.ndarray, cur
) -> dict[str, np.ndarray]:
    """Final heterozygosity, support, and candidates per kept token of token chains under
    ``replace`` with curation, literally: candidates drawn from the empirical model one by
    one (NumPy's generator), each kind as its definition on the categories' likelihood.
    """
    k = len(p0)
    out = {name: np.empty(chains) for name in ("heterozygosity", "support", "candidates")}
    x = cur.select_strength
    for c in range(chains):
        p = p0.copy()
        cost = 1.0
        for t in range(generations):
            if t == 0 or (cur.select == "none" and cur.best_of == 1):
                tokens, drawn = rng.choice(k, size=n, p=p), n
            elif cur.select in ("top", "self-top"):
                big = max(n, math.ceil(n / x - 1e-9))
                cand = rng.choice(k, size=big, p=p)
                ref = p0 if cur.select == "top" else p
                tokens, drawn = cand[np.argsort(-ref[cand], kind="stable")[:n]], big
            elif cur.best_of > 1:
                cand = rng.choice(k, size=(n, cur.best_of), p=p)
                w = p0[cand]
                tokens = np.array([row[rng.choice(cur.best_of, p=wr / wr.sum())]
                                   for row, wr in zip(cand, w, strict=True)])  # fmt: skip
                drawn = n * cur.best_of
            else:
                ref = p if cur.select == "self-interval" else p0
                if cur.select == "soft":
                    keep = (ref / ref.max()) ** x
                else:
                    keep = (ref >= ref.max() * math.exp(-x * x / 2)).astype(float)
                kept: list[int] = []
                drawn = 0
                while len(kept) < n:
                    tok = rng.choice(k, p=p)
                    drawn += 1
                    if rng.random() < keep[tok]:
                        kept.append(int(tok))
                tokens = np.array(kept)
            cost = drawn / n
            p = np.bincount(tokens, minlength=k) / n
        out["heterozygosity"][c] = 1 - np.sum(p * p)
        out["support"][c] = np.count_nonzero(p)
        out["candidates"][c] = cost
    return out


# --- multivariate Gaussian ------------------------------------------------------------


def _mv_normals(d: int, s0, s1):
    return _normals(d, s0, s1)


def _mv_points(m: int, mean, chol, ratio, s0, s1):
    """m points of N(mean, (ratio chol)(ratio chol)'), normals drawn point by point."""
    x = np.empty((m, len(mean)))
    for p in range(m):
        z, s0, s1 = _normals(len(mean), s0, s1)
        x[p] = mean + ratio * (chol @ z)
    return x, s0, s1


def _bartlett(dof: int, d: int, s0, s1):
    a = np.zeros((d, d))
    for i in range(d):
        for j in range(i):
            a[i, j], s0, s1 = _u(_rng.normal(s0, s1))
        x, s0, s1 = _u(_rng.chisquare(float(dof - i), s0, s1))
        a[i, i] = math.sqrt(x)
    return a, s0, s1


def _fisher_yates(rows: np.ndarray, size: int, n: int, s0, s1):
    for i in range(n):
        j, s0, s1 = _u(_rng.integer_below(np.uint64(size - i), s0, s1))
        k = i + int(j)
        rows[[i, k]] = rows[[k, i]]
    return s0, s1


def mvgaussian_chain(
    seed: int,
    chain: int,
    generations: int,
    n: int,
    mu0: np.ndarray,
    cov0: np.ndarray,
    *,
    ddof: int = 0,
    regime: str = "replace",
    num_real: int = 0,
    sufficient: bool = False,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(mu, Sigma)`` of models 0..T of one d-dimensional chain, literally.

    The sample method draws every training point (``x = mu + L z``, L the Cholesky
    factor) and fits with ``np.mean`` and ``np.cov``, each regime as its definition
    (accumulate: the fit of every point so far). The sufficient method (replace) draws the
    mean ``mu + L z / sqrt(n)`` and the Bartlett factor A, row by row, and sets
    ``L <- L A / sqrt(n - ddof)``.
    """
    s0, s1 = _u(_rng.stream_state(np.uint64(seed), np.uint64(chain)))
    d = len(mu0)
    chol0 = np.linalg.cholesky(cov0)
    mu, chol = np.array(mu0, float), chol0.copy()
    models = [(mu.copy(), chol @ chol.T)]
    pool = np.empty((0, d))
    kept = np.empty((0, d))
    synth = n - num_real if regime in ("fresh", "keep-original") else n
    for t in range(generations):
        if sufficient:
            assert regime == "replace"
            z, s0, s1 = _normals(d, s0, s1)
            a, s0, s1 = _bartlett(n - 1, d, s0, s1)
            mu = mu + chol @ z / math.sqrt(n)
            chol = chol @ a / math.sqrt(n - ddof)
            models.append((mu.copy(), chol @ chol.T))
            continue
        x, s0, s1 = _mv_points(synth, mu, chol, 1.0, s0, s1)
        if regime == "replace":
            train = x
        elif regime == "accumulate":
            pool = np.concatenate([pool, x])
            train = pool
        elif regime == "accumulate-subsample":
            pool = np.concatenate([pool, x])
            s0, s1 = _fisher_yates(pool, len(pool), n, s0, s1)
            train = pool[:n]
        else:
            if num_real > 0 and (regime == "fresh" or t == 0):
                real, s0, s1 = _mv_points(num_real, mu0, chol0, 1.0, s0, s1)
                if regime == "keep-original":
                    kept = real
            else:
                real = kept
            train = np.concatenate([x, real])
        mu = train.mean(axis=0)
        cov = np.cov(train.T, ddof=ddof).reshape(d, d)
        chol = np.linalg.cholesky(cov)
        models.append((mu.copy(), cov))
    return models


# --- linear regression and kernel density: one module each, beside this one ----------

from naive_kde import kde_chain, w2_gauss, w2_ref
from naive_regression import regression_chain

__all__ = ["curated_gaussian_chains", "curated_token_chains", "gaussian_chain",
           "gaussian_chain_sufficient", "kde_chain", "mvgaussian_chain", "regression_chain",
           "w2_gauss", "w2_ref"]  # fmt: skip
