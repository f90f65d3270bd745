"""Throughput of the kernels against baselines (NumPy, scikit-learn) run in the same process.

Usage::

    python bench/run.py                 # print the table
    python bench/run.py --readme bench/README.md   # also replace the table there

Every figure is the median of ``--repeats`` timed runs after a warm-up (the JIT compile
and NumPy's first-touch allocations are excluded); ratios divide medians measured in
this process, minutes apart at most, so machine load hits both sides alike.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numba
import numpy as np

from collapsesim.experiments import gaussian as runner
from collapsesim.families.gaussian import GaussianConfig
from collapsesim.kernels import gaussian as kern
from collapsesim.regimes import Regime


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: compile, page in
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def normal_floor(count: int = 2000 * 10_000) -> Callable[[], None]:
    """The random-number floor: draw ``count`` normals in parallel, summing their squares."""
    from numba import njit, prange

    from collapsesim.kernels import _rng

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

    return lambda: draw(2000, count // 2000)


def numpy_sample_baseline(chains: int, n: int, generations: int, seed: int = 0) -> None:
    """The notebook way: one (chains, n) array of normals per generation, refit on it."""
    rng = np.random.default_rng(seed)
    mu = np.zeros(chains)
    sigma = np.ones(chains)
    for _ in range(generations):
        x = mu[:, None] + sigma[:, None] * rng.standard_normal((chains, n))
        mu = x.mean(axis=1)
        sigma = x.std(axis=1)


def numpy_sufficient_baseline(chains: int, n: int, generations: int, seed: int = 0) -> None:
    """Vectorised NumPy with the same exact sufficient-statistic draws."""
    rng = np.random.default_rng(seed)
    mu = np.zeros(chains)
    sigma = np.ones(chains)
    for _ in range(generations):
        mu = mu + sigma * rng.standard_normal(chains) / np.sqrt(n)
        sigma = sigma * np.sqrt(rng.chisquare(n - 1, chains) / n)


def kernel_run(chains: int, n: int, generations: int, sufficient: bool) -> Callable[[], None]:
    ids = np.arange(chains)
    slots = np.full(generations, -1, np.int64)
    slots[-1] = 0
    out_mu = np.empty((chains, 1))
    out_ls = np.empty((chains, 1))

    def go() -> None:
        rng, state = kern.init_chains(0, ids, 0.0, 1.0)
        kern.advance(
            rng,
            state,
            0,
            generations,
            slots,
            out_mu,
            out_ls,
            num_samples=n,
            ddof=0,
            regime=Regime.REPLACE.code,
            num_real=0,
            sufficient=sufficient,
            mu0=0.0,
            sigma0=1.0,
        )

    return go


def cli_seconds(env: dict[str, str], repeats: int) -> list[float]:
    cmd = [sys.executable, "-c", "from collapsesim.cli import main; main()", "gaussian", "--json"]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


def progress_overhead(repeats: int) -> tuple[float, float, float]:
    """Time a sample-method run without and with the CLI's Rich progress bar.

    Runs alternate (plain, bar, plain, bar, ...) so that drifting machine load hits both
    alike; returns the median plain time, the median bar time and the median of the
    paired ratios bar / plain.
    """
    from rich.console import Console

    from collapsesim.cli import _progress

    cfg = GaussianConfig(num_chains=1000, num_generations=300, num_samples=1000, method="sample")
    console = Console(file=io.StringIO(), force_terminal=True, width=120)

    def plain() -> None:
        runner.run(cfg)

    def with_bar() -> None:
        _progress.drive("chains", runner.iterate(cfg), quiet=False, console=console)

    plain()
    with_bar()
    a, b = [], []
    for _ in range(2 * repeats + 1):
        t0 = time.perf_counter()
        plain()
        a.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with_bar()
        b.append(time.perf_counter() - t0)
    ratios = [y / x for x, y in zip(a, b, strict=True)]
    return statistics.median(a), statistics.median(b), statistics.median(ratios)


def progress_fixed_cost(repeats: int) -> float:
    """Median seconds the progress bar adds to a run, measured on a generator that does no work."""
    from rich.console import Console

    from collapsesim.cli import _progress
    from collapsesim.experiments.gaussian import GaussianProgress

    console = Console(file=io.StringIO(), force_terminal=True, width=120)

    def steps(k: int):  # type: ignore[no-untyped-def]
        for i in range(k):
            yield GaussianProgress(i, k, 0, i)

    def run() -> None:
        _progress.drive("chains", steps(20), quiet=False, console=console)

    return median_time(run, 2 * repeats)


MIX_N, MIX_K, MIX_D = 1000, 2, 2


def mixture_kernel_run(chains: int, generations: int, init: str) -> Callable[[], float]:
    """Our mixture chains from N(0, I): n = 1000, K = 2, d = 2, replace; returns mean EM iterations."""
    from collapsesim.experiments.mixture import _start
    from collapsesim.kernels import mixture as mx

    w0, m0, c0 = np.ones(1), np.zeros((1, MIX_D)), np.eye(MIX_D)[None]
    slots = np.full(generations, -1, np.int64)
    slots[-1] = 0

    def go() -> float:
        rng, w, m, c = mx.init_mixture_chains(0, np.arange(chains), w0, m0, c0)
        w, m, c = _start(w, m, c, MIX_K)
        rec = mx.new_records(chains, 1, MIX_K, MIX_D)
        mx.advance_mixture(
            rng,
            w,
            m,
            c,
            0,
            generations,
            slots,
            rec,
            num_samples=MIX_N,
            regime=Regime.REPLACE.code,
            num_real=0,
            covariance_type="full",
            init=init,
            tol=1e-3,
            max_iter=100,
            reg_covar=1e-6,
            weights0=w0,
            means0=m0,
            covs0=c0,
        )
        return float(rec["total_iterations"].sum() / (chains * generations))

    return go


def sklearn_chains(chains: int, generations: int, init: str) -> float:
    """The same chains with scikit-learn's GaussianMixture; returns mean EM iterations.

    Same n, K, d, tol (1e-3), reg_covar (1e-6), max_iter (100), n_init = 1; k-means++
    starts (``init_params="k-means++"``) or warm starts (``warm_start=True``, whose first
    fit starts from k-means++). Samples come from ``GaussianMixture.sample``.
    """
    import warnings

    from sklearn.mixture import GaussianMixture

    iters = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in range(chains):
            rs = np.random.RandomState(c)
            x = rs.standard_normal((MIX_N, MIX_D))
            gm = GaussianMixture(
                MIX_K,
                covariance_type="full",
                tol=1e-3,
                reg_covar=1e-6,
                max_iter=100,
                n_init=1,
                init_params="k-means++",
                warm_start=init == "warm",
                random_state=rs,
            )
            for _ in range(generations):
                gm.fit(x)
                iters += gm.n_iter_
                x = gm.sample(MIX_N)[0]
    return iters / (chains * generations)


def mixture_rows(repeats: int) -> tuple[list[tuple[str, str, str, str]], dict[str, float]]:
    """Chain-generations per second, ours against scikit-learn, k-means++ and warm starts."""
    rows = []
    raw: dict[str, float] = {}
    for init in ("kmeans++", "warm"):
        b, t = 10, 10
        times, iters = [], []
        sklearn_chains(1, 2, init)  # warm-up: imports, first-call costs
        for _ in range(max(1, repeats // 2)):
            t0 = time.perf_counter()
            iters.append(sklearn_chains(b, t, init))
            times.append(time.perf_counter() - t0)
        base = b * t / statistics.median(times)
        base_iter = statistics.median(iters)
        go = mixture_kernel_run(400, 10, init)
        ours_iter = go()
        ours = 400 * 10 / median_time(go, repeats)
        key = init.replace("+", "p")
        raw.update(
            {
                f"mixture_{key}_sklearn_chain_gen_per_s": base,
                f"mixture_{key}_sklearn_em_iterations": base_iter,
                f"mixture_{key}_kernel_chain_gen_per_s": ours,
                f"mixture_{key}_kernel_em_iterations": ours_iter,
            }
        )
        target = " (target >= 50x)" if init == "kmeans++" else ""
        rows.append(
            (
                f"mixture EM chains, n=1000, K=2, d=2, {init} starts",
                f"{base:,.0f} chain-gen/s ({base_iter:.2f} EM iterations per fit; scikit-learn)",
                f"{ours:,.0f} chain-gen/s ({ours_iter:.2f} EM iterations per fit)",
                f"{ours / base:.0f}x{target}",
            )
        )
    rate = raw["mixture_kmeanspp_kernel_chain_gen_per_s"]
    rows.append(
        (
            "mixture preset (nature-2024), 10,000 chains x 1000 gens",
            "—",
            f"{1e7 / rate / 60:.0f} min at the k-means++ rate above (kernel only)",
            "—",
        )
    )
    return rows, raw


def token_kernel_run(k: int, n: int, chains: int, generations: int) -> Callable[[], None]:
    """Our token chains from Zipf(1) over K: replace, no decoding; metrics at the end."""
    from collapsesim.kernels import categorical as ct

    p0 = np.arange(1, k + 1, dtype=np.float64) ** -1.0
    p0 /= p0.sum()
    slots = np.full(generations, -1, np.int64)
    slots[-1] = 0

    def go() -> None:
        rng, train, size, fixed = ct.init_token_chains(0, np.arange(chains), n)
        rec = np.empty((chains, 1, ct.NUM_METRICS))
        ct.advance_tokens(
            rng,
            train,
            size,
            fixed,
            0,
            generations,
            slots,
            rec,
            num_samples=n,
            regime=Regime.REPLACE.code,
            num_real=0,
            p0=p0,
        )

    return go


def numpy_token_baseline(k: int, n: int, chains: int, generations: int) -> None:
    """The notebook way: ``rng.multinomial(n, p)`` per chain per generation, then counts / n."""
    rng = np.random.default_rng(0)
    p0 = np.arange(1, k + 1, dtype=np.float64) ** -1.0
    p0 /= p0.sum()
    for _ in range(chains):
        p = p0
        for _ in range(generations):
            p = rng.multinomial(n, p) / n


def token_rows(repeats: int) -> tuple[list[tuple[str, str, str, str]], dict[str, float]]:
    """Token chains against NumPy's multinomial at K = 10^3, 10^5, 10^6 (n = 1000)."""
    rows = []
    raw: dict[str, float] = {}
    n = 1000
    for k, (bc, bt), (oc, ot) in (
        (10**3, (200, 10), (2000, 500)),
        (10**5, (20, 5), (400, 500)),
        (10**6, (4, 5), (100, 500)),
    ):
        base = bc * bt / median_time(partial(numpy_token_baseline, k, n, bc, bt), repeats)
        ours = oc * ot / median_time(token_kernel_run(k, n, oc, ot), repeats)
        raw[f"tokens_k{k}_numpy_chain_gen_per_s"] = base
        raw[f"tokens_k{k}_kernel_chain_gen_per_s"] = ours
        target = " (target >= 20x)" if k == 10**3 else ""
        rows.append(
            (
                f"token chains, K=10^{round(math.log10(k))}, n=1000, replace",
                f"{base:,.0f} chain-gen/s (rng.multinomial per chain)",
                f"{ours:,.0f} chain-gen/s ({oc} chains x {ot} gens)",
                f"{ours / base:,.0f}x{target}",
            )
        )
    return rows, raw


def jax_gaussian_run(
    chains: int, n: int, generations: int, sufficient: bool, dtype: str
) -> Callable[[], None]:
    """The Gaussian chain (replace) on the JAX backend; the last generation recorded."""
    from collapsesim.jaxchains import gaussian as jg

    slots = np.full(generations, -1, np.int64)
    slots[-1] = 0
    rec = np.empty((chains, 1))
    ids = np.arange(chains)

    def go() -> None:
        st = jg.init_state(chains, 0.0, 1.0)
        jg.advance(
            st, 0, ids, 0, generations, slots, rec, rec.copy(), num_samples=n, ddof=0,
            regime=0, num_real=0, sufficient=sufficient, mu0=0.0, sigma0=1.0, dtype=dtype,
        )  # fmt: skip

    return go


def jax_rows(repeats: int) -> tuple[list[tuple[str, str, str, str]], dict[str, float]]:
    """The JAX backend beside Numba on the same sizes, on this machine's CPU cores."""
    import jax

    from collapsesim.jaxchains import tokens as jt

    rows = []
    raw: dict[str, float] = {}
    device = f"{jax.default_backend()} x{len(jax.local_devices())}"
    for label, c, t, n, sufficient in (
        ("sufficient, 10^5 chains x 100 gens, n=1000", 10**5, 100, 1000, True),
        ("sample, C=1000, T=100, n=1000", 1000, 100, 1000, False),
    ):
        ours = median_time(kernel_run(c, n, t, sufficient=sufficient), repeats)
        for dtype in ("float32", "float64"):
            j = median_time(jax_gaussian_run(c, n, t, sufficient, dtype), repeats)
            key = f"jax_{'sufficient' if sufficient else 'sample'}_{dtype}_s"
            raw[key] = j
            rows.append(
                (
                    f"JAX backend ({device}, {dtype}), Gaussian {label}",
                    f"Numba {c * t / ours:,.0f} chain-gen/s",
                    f"JAX {c * t / j:,.0f} chain-gen/s",
                    f"JAX {j / ours:.1f}x slower",
                )
            )
    k = n = 1000
    c, t = 1000, 100
    p0 = np.arange(1, k + 1, dtype=np.float64) ** -1.0
    p0 /= p0.sum()
    ours = median_time(token_kernel_run(k, n, c, t), repeats)
    slots = np.full(t, -1, np.int64)
    slots[-1] = 0
    trec = np.empty((c, 1, 8))

    def tokens_go() -> None:
        st = jt.init_state(c, k, 0)
        jt.advance(
            st, 0, np.arange(c), 0, t, slots, trec, num_samples=n, regime=0, num_real=0,
            p0=p0, dtype="float32",
        )  # fmt: skip

    j = median_time(tokens_go, repeats)
    raw["jax_tokens_float32_s"] = j
    rows.append(
        (
            f"JAX backend ({device}, float32), tokens K=n=1000, 1000 chains x 100 gens",
            f"Numba {c * t / ours:,.0f} chain-gen/s",
            f"JAX {c * t / j:,.0f} chain-gen/s",
            f"JAX {j / ours:.1f}x slower",
        )
    )
    return rows, raw


def vae_rows(repeats: int) -> tuple[list[tuple[str, str, str, str]], dict[str, float]]:
    """Training and sampling throughput of the default VAE on MNIST (JAX, this CPU)."""
    import jax
    from flax import nnx

    from collapsesim import images
    from collapsesim.experiments.vae import VaeConfig
    from collapsesim.models import vae as models

    cfg = VaeConfig()
    data = images.load("mnist")
    train, _ = images.split(data)
    x = data.images[train]
    model = models.VAE((28, 28), cfg.latent, cfg.widths, rngs=nnx.Rngs(0))
    trainer = models.Trainer(model, (x,), jax.random.key(0), loss=models.elbo,
                             batch=cfg.batch_size, lr=cfg.learning_rate)  # fmt: skip
    epoch = median_time(trainer.epoch, repeats)
    trainer.finish()
    count = len(x)
    draw = median_time(lambda: models.sample(model, jax.random.key(1), count), repeats)
    device = f"{jax.default_backend()} x{len(jax.local_devices())}"
    raw = {"vae_epoch_s": epoch, "vae_sample_s": draw}
    rows = [
        (
            (
                f"VAE ({device}), MNIST 28x28, latent {cfg.latent}, widths {cfg.widths}, "
                f"batch {cfg.batch_size}"
            ),
            "—",
            (
                f"training {count / epoch:,.0f} images/s ({epoch:.2f} s per epoch of {count}); "
                f"sampling {count / draw:,.0f} images/s"
            ),
            "—",
        )
    ]
    return rows, raw


def lm_rows(repeats: int) -> tuple[list[tuple[str, str, str, str]], dict[str, float]]:
    """The default `collapsesim lm` model: training and sampling tokens/s, cached vs not."""
    import jax
    from flax import nnx

    from collapsesim.experiments.lm import LmConfig, _prepare
    from collapsesim.models import training
    from collapsesim.models import transformer as tm

    cfg = LmConfig()
    data = _prepare(cfg)
    model = tm.Transformer(data.tokenizer.vocab, cfg.context, cfg.width, cfg.heads, cfg.layers,
                           rngs=nnx.Rngs(0))  # fmt: skip
    trainer = training.Trainer(model, (data.real,), jax.random.key(0), loss=tm.lm_loss,
                               batch=cfg.batch_size, lr=cfg.learning_rate, clip=1.0)  # fmt: skip
    trainer.epoch()  # compile
    epoch = median_time(trainer.epoch, repeats)
    trainer.finish()
    trained = data.real.size  # tokens through the model per epoch
    prompts = data.real[:, : cfg.block]

    def draw(rows: int, cached: bool) -> Callable[[], object]:
        keys = jax.random.split(jax.random.key(1), rows)
        return lambda: tm.generate(model, prompts[:rows], keys, cfg.block, cached=cached)

    chunk = 2048  # the runner's batch of prompts
    draw(chunk, True)()
    sample = median_time(draw(chunk, True), repeats)
    small = 256
    draw(small, True)()
    draw(small, False)()
    cached = median_time(draw(small, True), repeats)
    uncached = median_time(draw(small, False), repeats)
    device = f"{jax.default_backend()} x{len(jax.local_devices())}"
    raw = {"lm_epoch_s": epoch, "lm_sample_s": sample, "lm_cached_s": cached,
           "lm_uncached_s": uncached}  # fmt: skip
    name = (f"transformer LM ({device}), pydoc chars, width {cfg.width}, {cfg.layers} layers, "
            f"{cfg.heads} heads, context {cfg.context}")  # fmt: skip
    rows = [
        (
            name,
            "—",
            (
                f"training {trained / epoch:,.0f} tokens/s ({epoch:.1f} s per epoch of "
                f"{len(data.real):,} pairs of {cfg.context} tokens, batch {cfg.batch_size}); "
                f"sampling {chunk * cfg.block / sample:,.0f} new tokens/s ({chunk} prompts at once)"
            ),
            "—",
        ),
        (
            (
                f"LM sampler, key-value cache vs recomputing the context ({device}), {small} "
                f"prompts of {cfg.block} + {cfg.block} new tokens"
            ),
            f"{small * cfg.block / uncached:,.0f} new tokens/s ({uncached:.2f} s), whole context per token",
            f"{small * cfg.block / cached:,.0f} new tokens/s ({cached:.3f} s), cached",
            f"{uncached / cached:.1f}x (target >= 10x)",
        ),
    ]
    return rows, raw


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Numba threads {numba.get_num_threads()}, "
        f"Python {platform.python_version()}, NumPy {np.__version__}, Numba {numba.__version__}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--readme", type=Path, help="replace the table between the bench markers in this file"
    )
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    ap.add_argument(
        "--only", choices=["vae", "lm"], help="run one group and print its rows (no --readme)"
    )
    args = ap.parse_args()
    r = args.repeats
    if args.only is not None:
        for row in {"vae": vae_rows, "lm": lm_rows}[args.only](r)[0]:
            print("| " + " | ".join(row) + " |")
        return
    rows: list[tuple[str, str, str, str]] = []
    raw: dict[str, float] = {}

    # 0. The random-number floor on this machine now.
    floor = median_time(normal_floor(), r) / (2000 * 10_000)
    raw.update(normal_floor_s=floor)
    rows.append(
        (
            "random-number floor: one N(0,1) draw, all threads",
            "—",
            f"{floor * 1e9:.2f} ns/normal",
            "—",
        )
    )

    # 1. Sample method at C = T = n = 1000 against the vectorised NumPy notebook loop.
    c = t = n = 1000
    base_gens = 40  # the baseline's per-generation cost is flat; 40 generations suffice
    base = median_time(lambda: numpy_sample_baseline(c, n, base_gens), r) / base_gens
    ours = median_time(kernel_run(c, n, t, sufficient=False), r) / t
    raw.update(sample_numpy_s_per_gen=base, sample_kernel_s_per_gen=ours)
    rows.append(
        (
            "sample, C=T=n=1000",
            f"{c / base:,.0f} chain-gen/s ({base * 1e9 / (c * n):.1f} ns/normal)",
            f"{c / ours:,.0f} chain-gen/s ({ours * 1e9 / (c * n):.2f} ns/normal); whole run {ours * t:.2f} s",
            f"{base / ours:.1f}x (target >= 8x)",
        )
    )

    # 2. Sufficient method, 10^6 chains x 1000 generations.
    c, t, n = 10**6, 1000, 1000
    base_gens = 20
    base = (
        median_time(lambda: numpy_sufficient_baseline(c, n, base_gens), max(1, r // 2)) / base_gens
    )
    whole = median_time(kernel_run(c, n, t, sufficient=True), r)
    raw.update(sufficient_numpy_s_per_gen=base, sufficient_kernel_s=whole)
    per = whole / (c * t)
    rows.append(
        (
            "sufficient, 10^6 chains x 1000 gens",
            f"{c / base:.3g} chain-gen/s (vectorised NumPy)",
            (
                f"{c * t / whole:.3g} chain-gen/s; {whole:.2f} s (target >= 1.5e8, < 7 s); "
                f"{per / floor:.2f} normals' time per chain-gen (target <= 2.56 at 2.6 ns/normal)"
            ),
            f"{base * t / whole:.1f}x",
        )
    )

    # 3. The default CLI run, whole process, warm and cold JIT cache.
    env = dict(os.environ)
    warm = cli_seconds(env, 1 + r)[1:]
    with tempfile.TemporaryDirectory() as cold_cache:
        cold = cli_seconds({**env, "NUMBA_CACHE_DIR": cold_cache}, 1)[0]
    raw.update(cli_warm_s=statistics.median(warm), cli_cold_s=cold)
    rows.append(
        (
            "`collapsesim gaussian --json` (defaults), whole process",
            "—",
            f"warm cache {statistics.median(warm):.2f} s (target < 3 s); cold compile {cold:.1f} s (target < 15 s)",
            "—",
        )
    )

    # 4. Cost of the Rich progress bar.
    plain, with_bar, ratio = progress_overhead(r)
    fixed = progress_fixed_cost(r)
    raw.update(
        progress_plain_s=plain,
        progress_bar_s=with_bar,
        progress_ratio=ratio,
        progress_fixed_s=fixed,
    )
    rows.append(
        (
            "Rich progress bar, sample method 1000x300x1000",
            f"{plain:.3f} s without",
            f"{with_bar:.3f} s with; the bar alone (20 updates, no work) {fixed * 1e3:.1f} ms",
            (
                f"{100 * (ratio - 1):+.1f}% median of {2 * r + 1} paired runs; bar alone "
                f"{100 * fixed / plain:.1f}% of the run (target < 2%)"
            ),
        )
    )

    # 5. Gaussian-mixture chains against scikit-learn.
    mix_rows, mix_raw = mixture_rows(r)
    rows.extend(mix_rows)
    raw.update(mix_raw)

    # 6. Token chains against NumPy's multinomial.
    tok_rows, tok_raw = token_rows(r)
    rows.extend(tok_rows)
    raw.update(tok_raw)

    # 7. The JAX backend beside Numba on the same sizes.
    jax_r, jax_raw = jax_rows(r)
    rows.extend(jax_r)
    raw.update(jax_raw)

    # 9. The recursive VAE: training and sampling throughput.
    vae_r, vae_raw = vae_rows(r)
    rows.extend(vae_r)
    raw.update(vae_raw)

    # 10. The recursive transformer LM: tokens/s, and the key-value cache's speed-up.
    lm_r, lm_raw = lm_rows(r)
    rows.extend(lm_r)
    raw.update(lm_raw)

    table = "| benchmark | baseline | collapsesim | ratio |\n|---|---|---|---|\n"
    table += "\n".join(f"| {a} | {b} | {c_} | {d} |" for a, b, c_, d in rows) + "\n"
    header = f"Machine: {machine()}. Medians of {r} runs, {time.strftime('%Y-%m-%d')}.\n\n"
    print(header + table)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2) + "\n")
    if args.readme:
        text = args.readme.read_text()
        start, end = "<!-- bench:start -->", "<!-- bench:end -->"
        i, j = text.index(start) + len(start), text.index(end)
        args.readme.write_text(text[:i] + "\n" + header + table + text[j:])


if __name__ == "__main__":
    main()
