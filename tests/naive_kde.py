"""A slow, literal reference of the KDE chains that the kernel must match.

It calls the same per-chain random primitives in the same order as
``collapsesim.kernels.kde`` but writes each regime as its definition: lists of points
and their ancestors, ``np.concatenate`` for the pools, ``np.var`` for the variance,
``scipy.special.logsumexp`` for the likelihood, ``np.unique`` for the ancestors.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from collapsesim.kernels import _rng

MAX_TRIES = 2**16


def _u(out):
    *value, s0, s1 = out
    return (*value, np.uint64(s0), np.uint64(s1))


class Stream:
    """A chain's stream, drawn one primitive at a time."""

    def __init__(self, seed: int, chain: int) -> None:
        self.s = _u(_rng.stream_state(np.uint64(seed), np.uint64(chain)))

    def integer(self, bound: int) -> int:
        j, *self.s = _u(_rng.integer_below(np.uint64(bound), *self.s))
        return int(j)

    def below(self, bound: int) -> int:
        """Lemire's multiply-shift on a word's top 32 bits, redrawn below 2^32 mod bound."""
        while True:
            r, *self.s = _u(_rng.next_u64(*self.s))
            m = (int(r) >> 32) * bound
            if m % 2**32 >= (2**32 - bound) % bound:
                return m >> 32

    def below_half(self, bound: int, spare: list) -> int:
        """The same on half words: the spare low half of the last word first (``spare``
        holds it, one generation's draws long)."""
        while True:
            if spare:
                x = spare.pop()
            else:
                r, *self.s = _u(_rng.next_u64(*self.s))
                x, rest = int(r) >> 32, int(r) % 2**32
                spare.append(rest)
            m = x * bound
            if m % 2**32 >= (2**32 - bound) % bound:
                return m >> 32

    def uniform(self) -> float:
        u, *self.s = _u(_rng.uniform(*self.s))
        return float(u)

    def normal(self) -> float:
        z, *self.s = _u(_rng.normal(*self.s))
        return float(z)


def original_point(st: Stream, kind: str, d: int, noise: float, factor: float,
                   std: float, pts: np.ndarray) -> np.ndarray:  # fmt: skip
    """One point of the original, its definition written out."""
    if kind == "gaussian":
        return np.array([st.normal() for _ in range(d)])
    if kind in ("moons", "circles"):
        comp = st.integer(2)
        u = st.uniform()
        if kind == "moons":
            th = math.pi * u
            x = (
                [math.cos(th), math.sin(th)]
                if comp == 0
                else [1 - math.cos(th), 0.5 - math.sin(th)]
            )
        else:
            th = 2 * math.pi * u
            r = 1.0 if comp == 0 else factor
            x = [r * math.cos(th), r * math.sin(th)]
        return np.array([x[0] + noise * st.normal(), x[1] + noise * st.normal()])
    if kind == "blobs":
        k = st.integer(len(pts))
        return np.array([pts[k, q] + std * st.normal() for q in range(d)])
    return pts[st.integer(len(pts))].copy()


def kde_draw(st: Stream, x: np.ndarray, anc: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """Pick a training point uniformly, add N(0, scale^2 I)."""
    j = st.below(len(x))
    return np.array([x[j, q] + scale * st.normal() for q in range(x.shape[1])]), anc[j]


def log_kde(y: np.ndarray, x: np.ndarray, h: float) -> np.ndarray:
    """The KDE's log-density at the rows of y."""
    d2 = ((y[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    d = x.shape[1]
    return (
        special.logsumexp(-d2 / (2 * h * h), axis=1)
        - math.log(len(x))
        - d / 2 * math.log(2 * math.pi * h * h)
    )


def bandwidth(x: np.ndarray, rule: str | float) -> float:
    if not isinstance(rule, str):
        return float(rule)
    n, d = x.shape
    f = n ** (-1 / (d + 4)) if rule == "scott" else (n * (d + 2) / 4) ** (-1 / (d + 4))
    return f * math.sqrt(np.var(x, axis=0, ddof=1).mean())


def w2_gauss(x: np.ndarray) -> float:
    """W2 to N(0, 1) by quadrature of the quantile functions on a fine grid, exactly per cell."""
    from scipy import stats

    xs = np.sort(x)
    m = len(xs)
    edges = special.ndtri(np.arange(m + 1) / m)
    phi = stats.norm.pdf(edges)
    # int over cell i of (x_i - Phi^-1)^2 = x_i^2 / m - 2 x_i (phi_{i} - phi_{i+1}) + int Phi^-2
    with np.errstate(invalid="ignore"):  # int_{-inf}^{z} u^2 phi(u) du, 0 at -inf
        second = stats.norm.cdf(edges) - np.where(np.isfinite(edges), edges * phi, 0.0)
    cells = xs**2 / m - 2 * xs * (phi[:-1] - phi[1:]) + np.diff(second)
    return math.sqrt(max(cells.sum(), 0.0))


def w2_ref(x: np.ndarray, ref: np.ndarray) -> float:
    """W2 between two empirical measures on the line: the quantile functions on the union
    of their breakpoints."""
    a, b = np.sort(x), np.sort(ref)
    cuts = np.union1d(np.arange(1, len(a) + 1) / len(a), np.arange(1, len(b) + 1) / len(b))
    lo = np.concatenate([[0.0], cuts[:-1]])
    mid = (lo + cuts) / 2
    qa = a[np.minimum((mid * len(a)).astype(int), len(a) - 1)]
    qb = b[np.minimum((mid * len(b)).astype(int), len(b) - 1)]
    return math.sqrt(np.sum((cuts - lo) * (qa - qb) ** 2))


def metrics(x: np.ndarray, anc: np.ndarray, h: float, n: int, heldout: np.ndarray,
            w2: str, ref: np.ndarray | None) -> list[float]:  # fmt: skip
    """``heldout_nll, variance, ancestors, bandwidth, w2`` of the KDE of x."""
    nll = -float(np.mean(log_kde(heldout, x, h)))
    alive = len(np.unique(anc[(anc >= 0) & (anc < n)]))
    if w2 == "gauss":
        dist = w2_gauss(x[:, 0])
    elif w2 == "ref":
        dist = w2_ref(x[:, 0], ref)
    else:
        dist = math.nan
    return [nll, float(np.var(x, axis=0).mean()), float(alive), h, dist]


def curated(st: Stream, x: np.ndarray, anc: np.ndarray, h: float, k: int, cur: dict) -> tuple:
    """k kept draws under the operators (original N(0, I)); ``(points, ancestors, cost, starved)``."""
    scale = cur.get("bias", 1.0) * h
    kind = cur.get("select", "none")
    if kind in ("top", "self-top"):
        big = max(k, math.ceil(k / cur["strength"] - 1e-9))
        cand = [kde_draw(st, x, anc, scale) for _ in range(big)]
        pts = np.array([c[0] for c in cand])
        keys = (pts**2).sum(axis=1) if kind == "top" else -log_kde(pts, x, h)
        order = np.argsort(keys, kind="stable")[:k]
        return pts[order], np.array([cand[i][1] for i in order]), big / k, False
    best = cur.get("best_of", 1)
    if best > 1:
        out, ancs = [], []
        for _ in range(k):
            cand = [kde_draw(st, x, anc, scale) for _ in range(best)]
            pts = np.array([c[0] for c in cand])
            r = -0.5 * (pts**2).sum(axis=1) if cur["reward"] == "loglik" else pts @ cur["slopes"]
            w = np.exp(r - r.max())
            u = st.uniform() * w.sum()
            pick = int(np.searchsorted(np.cumsum(w), u, side="right"))
            pick = min(pick, best - 1)
            out.append(pts[pick])
            ancs.append(cand[pick][1])
        return np.array(out), np.array(ancs), float(best), False
    out, ancs, drawn = [], [], 0
    while len(out) < k:
        y, a = kde_draw(st, x, anc, scale)
        drawn += 1
        ok = True
        if kind in ("soft", "interval") and drawn <= MAX_TRIES * k:
            r2 = float((y**2).sum())
            if kind == "soft":
                ok = st.uniform() < math.exp(-0.5 * cur["strength"] * r2)
            else:
                ok = r2 <= cur["strength"] ** 2
        if ok:
            out.append(y)
            ancs.append(a)
    return (
        np.array(out),
        np.array(ancs),
        drawn / k,
        kind in ("soft", "interval") and drawn > MAX_TRIES * k,
    )


# Long: every regime written out as its definition, as tests/naive.py's gaussian_chain.
def kde_chain(seed: int, chain: int, generations: int, n: int, d: int, *, regime: str = "replace",
              num_real: int = 0, rule: str | float = 0.1, original: str = "gaussian",
              noise: float = 0.05, factor: float = 0.8, std: float = 1.0,
              pts: np.ndarray | None = None, heldout: np.ndarray, w2: str = "none",
              ref: np.ndarray | None = None, cur: dict | None = None) -> dict:  # fmt: skip
    """One chain, literally: ``{"rec": (T, 5) metrics of models 1..T, "x", "anc": the last
    training set (pool), "cost": (T,) candidates per kept point of each model's data}``."""
    st = Stream(seed, chain)
    pts = np.zeros((0, d)) if pts is None else pts

    def real() -> np.ndarray:
        return original_point(st, original, d, noise, factor, std, pts)

    rec, costs = [], []
    pool_x = np.zeros((0, d))
    pool_a = np.zeros(0)
    x = anc = None  # the current model's training set
    kept_x = kept_a = None
    h = math.nan
    for t in range(generations):
        pooled = regime in ("accumulate", "accumulate-subsample")
        k = n - (num_real if regime in ("fresh", "keep-original") else 0)
        cost = 1.0
        if t == 0:
            sx = np.array([real() for _ in range(k)]).reshape(k, d)
            sa = np.arange(k, dtype=float) + 0.0
        elif cur is not None and k > 0:
            sx, sa, cost, _ = curated(st, x, anc, h, k, cur)
        else:  # the parents on half words, the spare kept for one generation
            spare: list = []
            sx, sa = np.empty((k, d)), np.empty(k)
            for i in range(k):
                j = st.below_half(len(x), spare)
                sx[i] = [x[j, q] + h * st.normal() for q in range(d)]
                sa[i] = anc[j]
        if pooled:
            pool_x = np.concatenate([pool_x, sx])
            pool_a = np.concatenate([pool_a, sa])
            if regime == "accumulate-subsample":
                rows = np.concatenate([pool_x, pool_a[:, None]], axis=1)
                for i in range(n):
                    j = i + st.integer(len(rows) - i)
                    rows[[i, j]] = rows[[j, i]]
                pool_x, pool_a = rows[:, :d].copy(), rows[:, d].copy()
                x, anc = pool_x[:n], pool_a[:n]
            else:
                x, anc = pool_x, pool_a
        elif regime == "replace":
            x, anc = sx, sa
        elif regime == "fresh":
            rx = np.array([real() for _ in range(n - k)]).reshape(n - k, d)
            ra = np.arange(k, n, dtype=float) if t == 0 else -np.ones(n - k)
            x, anc = np.concatenate([sx, rx]), np.concatenate([sa, ra])
        else:  # keep-original
            if t == 0:
                kept_x = np.array([real() for _ in range(n - k)]).reshape(n - k, d)
                kept_a = np.arange(k, n, dtype=float)
            x, anc = np.concatenate([sx, kept_x]), np.concatenate([sa, kept_a])
        h = bandwidth(x, rule)
        rec.append(metrics(x, anc, h, n, heldout, w2, ref))
        costs.append(cost)
    return {"rec": np.array(rec), "x": x, "anc": anc, "cost": np.array(costs), "h": h}
