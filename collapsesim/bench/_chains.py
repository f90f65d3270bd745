"""Benchmarks of the Numba chain kernels against the NumPy and scikit-learn code a
notebook would otherwise run, on the same chains and generations in the same process."""

from __future__ import annotations

import io
import math
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from ..regimes import Regime
from ._core import Row, Side, Sizes, si, side

__all__ = ["floor_rows", "gaussian_rows", "mixture_rows", "token_rows", "zipf"]


def last_slot(generations: int) -> np.ndarray:
    """Record slots of a run that records only its last generation."""
    slots = np.full(generations, -1, np.int64)
    slots[-1] = 0
    return slots


def zipf(k: int) -> np.ndarray:
    """Zipf(1) over ``k`` categories, the token benchmarks' original distribution."""
    p0 = np.arange(1, k + 1, dtype=np.float64) ** -1.0
    return p0 / p0.sum()


# --- the random-number floor ---------------------------------------------------------


def _normal_floor(chains: int, per: int) -> Callable[[], int]:
    """Draw ``chains x per`` normals of the kernels' generator on all threads."""
    from numba import njit, prange

    from ..kernels import _rng

    @njit(parallel=True, cache=False)
    def draw(chains: int, per: int) -> np.ndarray:  # pragma: no cover - timed only
        out = np.empty(chains)
        for c in prange(chains):
            s0, s1 = _rng.stream_state(np.uint64(1), np.uint64(c))
            acc = 0.0
            for _ in range(per):
                z, s0, s1 = _rng.normal(s0, s1)
                acc += z * z
            out[c] = acc
        return out

    def go() -> int:
        draw(chains, per)
        return chains * per

    return go


def floor_ns(sizes: Sizes) -> float:
    """Nanoseconds per N(0, 1) draw of the kernels' generator, all threads (the floor)."""
    s = side("normals", _normal_floor(2000, sizes.pick(10_000, 1000)), sizes.repeats, "normal")
    return s.seconds / s.done * 1e9


def floor_rows(sizes: Sizes) -> list[Row]:
    s = side("normals", _normal_floor(2000, sizes.pick(10_000, 1000)), sizes.repeats, "normal")
    ns = s.seconds / s.done * 1e9
    return [
        Row(
            "rng",
            "random-number floor: N(0,1) draws of the kernels' generator, all threads",
            {"normals": s.done},
            s,
            text={"ours": f"{ns:.2f} ns/normal ({si(s.rate)} normals/s)"},
        )
    ]


# --- the Gaussian chain ----------------------------------------------------------------


def gaussian_kernel(chains: int, n: int, generations: int, sufficient: bool) -> Callable[[], int]:
    """Our Gaussian chains (replace, from N(0, 1)) recording the last generation."""
    from ..kernels import gaussian as kern

    ids = np.arange(chains)
    slots = last_slot(generations)
    out_mu = np.empty((chains, 1))
    out_ls = np.empty((chains, 1))

    def go() -> int:
        rng, state = kern.init_chains(0, ids, 0.0, 1.0)
        kern.advance(rng, state, 0, generations, slots, out_mu, out_ls, num_samples=n, ddof=0,
                     regime=Regime.REPLACE.code, num_real=0, sufficient=sufficient, mu0=0.0,
                     sigma0=1.0)  # fmt: skip
        return chains * generations

    return go


def numpy_sample(chains: int, n: int, generations: int) -> int:
    """The notebook way: a ``(chains, n)`` array of normals per generation, refit on it."""
    rng = np.random.default_rng(0)
    mu, sigma = np.zeros(chains), np.ones(chains)
    done = 0
    for _ in range(generations):
        x = mu[:, None] + sigma[:, None] * rng.standard_normal((chains, n))
        mu, sigma = x.mean(axis=1), x.std(axis=1)
        done += chains
    return done


def numpy_sufficient(chains: int, n: int, generations: int) -> int:
    """Vectorised NumPy with the same exact draws: the mean's normal and the chi-square."""
    rng = np.random.default_rng(0)
    mu, sigma = np.zeros(chains), np.ones(chains)
    done = 0
    for _ in range(generations):
        mu = mu + sigma * rng.standard_normal(chains) / math.sqrt(n)
        sigma = sigma * np.sqrt(rng.chisquare(n - 1, chains) / n)
        done += chains
    return done


def _ratio_row(group: str, name: str, work: dict[str, object], base: Side, ours: Side,
               target: float | None = None) -> Row:  # fmt: skip
    ratio = base.seconds / ours.seconds
    return Row(group, name, work, ours, base, ratio,
               None if target is None else f">= {target:g}x",
               None if target is None else ratio >= target,
               {"baseline": f"{si(base.rate)} {base.unit}/s ({base.label})",
                "ours": f"{si(ours.rate)} {ours.unit}/s"})  # fmt: skip


def gaussian_rows(sizes: Sizes) -> list[Row]:
    """Sample and sufficient methods against NumPy; the sufficient kernel's throughput."""
    r = sizes.repeats
    rows = []
    c, t, n = sizes.pick(1000, 200), sizes.pick(50, 20), 1000
    base = side("vectorised NumPy", lambda: numpy_sample(c, n, t), r)
    ours = side("Numba", gaussian_kernel(c, n, t, sufficient=False), r)
    rows.append(_ratio_row("gaussian", f"sample method, {c} chains x {t} gens, n={n}",
                           {"chains": c, "generations": t, "samples": n}, base, ours, 8))  # fmt: skip
    c, t = sizes.pick(10**5, 10**4), 256
    base = side("vectorised NumPy, same draws", lambda: numpy_sufficient(c, n, t), max(1, r // 2))
    ours = side("Numba", gaussian_kernel(c, n, t, sufficient=True), r)
    rows.append(_ratio_row("gaussian", f"sufficient method, {c:,} chains x {t} gens, n={n}",
                           {"chains": c, "generations": t, "samples": n}, base, ours))  # fmt: skip
    c, t = sizes.pick(10**6, 10**5), 1000
    ns = floor_ns(sizes)
    ours = side("Numba", gaussian_kernel(c, n, t, sufficient=True), r)
    per = ours.seconds / ours.done * 1e9 / ns
    rows.append(Row("gaussian", f"sufficient kernel, {c:,} chains x {t} gens",
                    {"chains": c, "generations": t, "samples": n}, ours,
                    target=">= 2.5e8 chain-gen/s", met=ours.rate >= 2.5e8,
                    text={"ours": f"{ours.rate:.3g} chain-gen/s ({ours.seconds:.2f} s; "
                          f"{per:.2f} normals' time per chain-gen at {ns:.2f} ns/normal)"}))  # fmt: skip
    rows.append(_progress_row(sizes))
    return rows


def _progress_row(sizes: Sizes) -> Row:
    """A sample-method run through the CLI's Rich progress bar against the same run without.

    Runs alternate (plain, bar, plain, bar, ...) so that drifting load hits both alike;
    the ratio is the median of the paired ratios.
    """
    from rich.console import Console

    from ..cli import _progress
    from ..experiments import gaussian as runner
    from ..families.gaussian import GaussianConfig

    c, t = sizes.pick(1000, 1000), sizes.pick(300, 150)
    cfg = GaussianConfig(num_chains=c, num_generations=t, num_samples=1000, method="sample")
    console = Console(file=io.StringIO(), force_terminal=True, width=120)

    def plain() -> None:
        runner.run(cfg)

    def with_bar() -> None:
        _progress.drive("chains", runner.iterate(cfg), quiet=False, console=console)

    plain()
    with_bar()
    a: list[float] = []
    b: list[float] = []
    for _ in range(2 * sizes.repeats + 1):
        for fn, times in ((plain, a), (with_bar, b)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    overhead = statistics.median(y / x for x, y in zip(a, b, strict=True)) - 1
    work = {"chains": c, "generations": t, "samples": 1000}
    base = Side("without the bar", statistics.median(a), c * t, times=a)
    ours = Side("with the bar", statistics.median(b), c * t, times=b)
    return Row("gaussian", f"Rich progress bar, sample method {c}x{t}x1000", work, ours, base,
               base.seconds / ours.seconds, "< 2% overhead", overhead < 0.02,
               {"baseline": f"{base.seconds:.3f} s without", "ours": f"{ours.seconds:.3f} s with",
                "ratio": f"{100 * overhead:+.1f}% (median of {len(a)} paired runs)"})  # fmt: skip


# --- Gaussian mixtures -------------------------------------------------------------------

MIX_N, MIX_K, MIX_D = 1000, 2, 2


def mixture_kernel(chains: int, generations: int, init: str) -> Callable[[], int]:
    """Our mixture chains from N(0, I): n = 1000, K = 2, d = 2, full covariances, replace."""
    from ..experiments.mixture import _start
    from ..kernels import mixture as mx

    w0, m0, c0 = np.ones(1), np.zeros((1, MIX_D)), np.eye(MIX_D)[None]
    slots = last_slot(generations)
    iterations = []

    def go() -> int:
        rng, w, m, c = mx.init_mixture_chains(0, np.arange(chains), w0, m0, c0)
        w, m, c = _start(w, m, c, MIX_K)
        rec = mx.new_records(chains, 1, MIX_K, MIX_D)
        mx.advance_mixture(rng, w, m, c, 0, generations, slots, rec, num_samples=MIX_N,
                           regime=Regime.REPLACE.code, num_real=0, covariance_type="full",
                           init=init, tol=1e-3, max_iter=100, reg_covar=1e-6, weights0=w0,
                           means0=m0, covs0=c0)  # fmt: skip
        iterations.append(float(rec["total_iterations"].sum() / (chains * generations)))
        return chains * generations

    go.iterations = iterations  # type: ignore[attr-defined]
    return go


def sklearn_mixture(chains: int, generations: int, init: str, iterations: list[float]) -> int:
    """The same chains with scikit-learn's ``GaussianMixture`` and its ``sample``.

    Same n, K, d, tol (1e-3), reg_covar (1e-6), max_iter (100), n_init = 1; k-means++
    starts, or warm starts (``warm_start=True``; the first fit starts from k-means++).
    """
    import warnings

    from sklearn.mixture import GaussianMixture

    total = done = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in range(chains):
            rs = np.random.RandomState(c)
            x = rs.standard_normal((MIX_N, MIX_D))
            gm = GaussianMixture(MIX_K, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                                 max_iter=100, n_init=1, init_params="k-means++",
                                 warm_start=init == "warm", random_state=rs)  # fmt: skip
            for _ in range(generations):
                gm.fit(x)
                total += gm.n_iter_
                x = gm.sample(MIX_N)[0]
                done += 1
    iterations.append(total / done)
    return done


def mixture_rows(sizes: Sizes) -> list[Row]:
    """EM chains against scikit-learn on the same chains x generations, two kinds of start."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return []  # the baseline needs scikit-learn (pip install 'collapsesim[bench]')
    r = sizes.repeats
    rows = []
    for init in ("kmeans++", "warm"):
        c, t = sizes.pick(20, 4), sizes.pick(10, 5)
        its: list[float] = []
        base = side("scikit-learn", partial(sklearn_mixture, c, t, init, its), max(1, r // 2))
        go = mixture_kernel(c, t, init)
        ours = side("Numba", go, r)
        row = _ratio_row("mixture", f"EM chains, {c} chains x {t} gens, n=1000, K=2, d=2, "
                         f"{init} starts", {"chains": c, "generations": t, "samples": MIX_N},
                         base, ours, 50 if init == "kmeans++" else None)  # fmt: skip
        # The same chains on all threads at a size that fills them: the rate the preset sees.
        wide = side("Numba", mixture_kernel(sizes.pick(400, 40), t, init), r)
        ours_its = go.iterations[-1]  # type: ignore[attr-defined]
        row.ours.extra = {"em_iterations": ours_its, "wide_rate": wide.rate}
        row.baseline.extra = {"em_iterations": its[-1]}  # type: ignore[union-attr]
        row.text["baseline"] += f"; {its[-1]:.2f} EM iterations per fit"
        row.text["ours"] += (f"; {ours_its:.2f} EM iterations per fit; {si(wide.rate)} "
                             f"chain-gen/s with {sizes.pick(400, 40)} chains")  # fmt: skip
        rows.append(row)
        if init == "kmeans++":
            minutes = 1e7 / wide.rate / 60
            rows.append(Row("mixture", "preset nature-2024, 10,000 chains x 1000 gens (estimate)",
                            {"chains": 10_000, "generations": 1000}, Side("Numba", 1e7 / wide.rate, 1e7),
                            target="<= 12 min", met=minutes <= 12,
                            text={"ours": f"{minutes:.0f} min at the k-means++ rate above "
                                  "(kernel only)"}))  # fmt: skip
    return rows


# --- token distributions -------------------------------------------------------------------


def token_kernel(k: int, n: int, chains: int, generations: int) -> Callable[[], int]:
    """Our token chains from Zipf(1) over K: replace, no decoding; metrics at the end."""
    from ..kernels import categorical as ct

    p0 = zipf(k)
    slots = last_slot(generations)

    def go() -> int:
        rng, train, size, fixed = ct.init_token_chains(0, np.arange(chains), n)
        rec = np.empty((chains, 1, ct.NUM_METRICS))
        ct.advance_tokens(rng, train, size, fixed, 0, generations, slots, rec, num_samples=n,
                          regime=Regime.REPLACE.code, num_real=0, p0=p0)  # fmt: skip
        return chains * generations

    return go


def numpy_multinomial(k: int, n: int, chains: int, generations: int) -> int:
    """The notebook loop: ``p = rng.multinomial(n, p) / n`` per chain per generation."""
    rng = np.random.default_rng(0)
    p0 = zipf(k)
    done = 0
    for _ in range(chains):
        p = p0
        for _ in range(generations):
            p = rng.multinomial(n, p) / n
            done += 1
    return done


def numpy_gather(k: int, n: int, chains: int, generations: int) -> int:
    """Every chain's n tokens resampled at once: one vectorised gather per generation.

    Generation 1 draws n tokens from the original; each later one draws n of the
    previous generation's tokens uniformly with replacement, which is exactly
    ``multinomial(n, counts / n)``. The counts are taken at the end.
    """
    rng = np.random.default_rng(0)
    tokens = rng.choice(k, size=(chains, n), p=zipf(k))
    done = chains
    rows = np.arange(chains)[:, None]
    for _ in range(generations - 1):
        tokens = tokens[rows, rng.integers(0, n, (chains, n))]
        done += chains
    np.bincount((tokens + rows * k).ravel(), minlength=chains * k)
    return done


def token_rows(sizes: Sizes) -> list[Row]:
    """Token chains against the multinomial loop and the vectorised gather, equal work."""
    r = sizes.repeats
    rows = []
    n = 1000
    cases = [(10**3, sizes.pick(200, 50), sizes.pick(200, 50)), (10**5, sizes.pick(20, 5), 20)]
    if not sizes.quick:
        cases.append((10**6, 8, 25))
    for k, c, t in cases:
        work = {"chains": c, "generations": t, "samples": n, "categories": k}
        ours = side("Numba", token_kernel(k, n, c, t), r)
        loop = side("rng.multinomial per chain", partial(numpy_multinomial, k, n, c, t),
                    max(1, r // 2))  # fmt: skip
        gather = side("vectorised gather", partial(numpy_gather, k, n, c, t), max(1, r // 2))
        name = f"token chains, K=10^{round(math.log10(k))}, {c} chains x {t} gens, n={n}"
        rows.append(_ratio_row("tokens", name + ", vs the multinomial loop", work, loop, ours,
                               25 if k == 10**3 else None))  # fmt: skip
        rows.append(_ratio_row("tokens", name + ", vs the vectorised gather", work, gather, ours))
    return rows
