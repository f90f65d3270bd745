"""Benchmarks of the JAX chains beside the Numba kernels on the same work, and the
random-number floor of JAX's generator on its default device."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._chains import gaussian_kernel, last_slot, token_kernel, zipf
from ._core import Row, Sizes, si, side

__all__ = ["device", "jax_floor_rows", "jax_gaussian_rows", "jax_token_rows"]


def device() -> str:
    """JAX's default backend and its local devices, e.g. ``gpu x1 (NVIDIA H200)``."""
    import jax

    devices = jax.local_devices()
    kinds = sorted({d.device_kind for d in devices})
    return f"{jax.default_backend()} x{len(devices)} ({', '.join(kinds)})"


def _block(x: object) -> None:
    import jax

    jax.block_until_ready(x)


def jax_floor_rows(sizes: Sizes) -> list[Row]:
    import jax

    count = sizes.pick(2**24, 2**20)
    draw = jax.jit(lambda key: jax.random.normal(key, (count,), np.float32))
    key = jax.random.key(0)

    def go() -> int:
        _block(draw(key))
        return count

    s = side("normals", go, sizes.repeats, "normal")
    return [Row("rng", f"random-number floor: float32 N(0,1) draws of jax.random, {device()}",
                {"normals": count}, s,
                text={"ours": f"{s.seconds / count * 1e9:.2f} ns/normal ({si(s.rate)} "
                      "normals/s)"})]  # fmt: skip


def jax_gaussian(chains: int, n: int, generations: int, sufficient: bool, dtype: str
                 ) -> Callable[[], int]:  # fmt: skip
    """The Gaussian chain (replace) on the JAX backend, the last generation recorded."""
    from ..jaxchains import gaussian as jg

    slots = last_slot(generations)
    rec = np.empty((chains, 1))
    ids = np.arange(chains)

    def go() -> int:
        st = jg.init_state(chains, 0.0, 1.0)
        jg.advance(st, 0, ids, 0, generations, slots, rec, rec.copy(), num_samples=n, ddof=0,
                   regime=0, num_real=0, sufficient=sufficient, mu0=0.0, sigma0=1.0,
                   dtype=dtype)  # fmt: skip
        return chains * generations

    return go


def _vs_numba(name: str, work: dict[str, object], numba_fn: Callable[[], int],
              jax_fn: Callable[[], int], sizes: Sizes, target: float | None = None,
              ) -> Row:  # fmt: skip
    base = side("Numba, all threads", numba_fn, sizes.repeats)
    ours = side(f"JAX, {device()}", jax_fn, sizes.repeats)
    slower = ours.seconds / base.seconds
    words = f"JAX {slower:.1f}x slower" if slower >= 1 else f"JAX {1 / slower:.1f}x faster"
    return Row("jax", name, work, ours, base, base.seconds / ours.seconds,
               None if target is None else f"within {target:g}x of Numba",
               None if target is None else slower <= target,
               {"baseline": f"Numba {si(base.rate)} chain-gen/s",
                "ours": f"JAX {si(ours.rate)} chain-gen/s", "ratio": words})  # fmt: skip


def jax_gaussian_rows(sizes: Sizes) -> list[Row]:
    """The JAX Gaussian chain (sufficient and sample) beside Numba on the same work."""
    import jax

    rows = []
    n = 1000
    on_cpu = jax.default_backend() == "cpu"
    for method, c, t in (("sufficient", sizes.pick(10**5, 10**4), sizes.pick(1000, 256)),
                         ("sample", sizes.pick(1000, 200), sizes.pick(100, 20))):  # fmt: skip
        sufficient = method == "sufficient"
        for dtype in ("float32", "float64"):
            work = {"chains": c, "generations": t, "samples": n, "dtype": dtype}
            target = 4 if sufficient and on_cpu and dtype == "float32" else None
            rows.append(_vs_numba(f"Gaussian {method}, {c:,} chains x {t} gens, n={n}, {dtype}",
                                  work, gaussian_kernel(c, n, t, sufficient),
                                  jax_gaussian(c, n, t, sufficient, dtype), sizes, target))  # fmt: skip
    if not on_cpu:
        # The accelerator's case: 10^7 chains, against Numba's rate on 10^6 of them here.
        c, t = sizes.pick(10**7, 10**6), 1000
        ours = side(f"JAX, {device()}", jax_gaussian(c, n, t, True, "float32"), sizes.repeats)
        rows.append(Row("jax", f"Gaussian sufficient, {c:,} chains x {t} gens, float32",
                        {"chains": c, "generations": t, "samples": n}, ours,
                        text={"ours": f"JAX {ours.rate:.3g} chain-gen/s ({ours.seconds:.2f} s)"}))  # fmt: skip
    return rows


def jax_token_rows(sizes: Sizes) -> list[Row]:
    """The JAX token chain beside Numba, K = n = 1000, on the same work."""
    from ..jaxchains import tokens as jt

    k = n = 1000
    c, t = sizes.pick(1000, 200), sizes.pick(100, 20)
    p0 = zipf(k)
    slots = last_slot(t)
    rec = np.empty((c, 1, 8))

    def go() -> int:
        st = jt.init_state(c, k, 0)
        jt.advance(st, 0, np.arange(c), 0, t, slots, rec, num_samples=n, regime=0, num_real=0,
                   p0=p0, dtype="float32")  # fmt: skip
        return c * t

    work = {"chains": c, "generations": t, "samples": n, "categories": k, "dtype": "float32"}
    name = f"tokens, K=n=1000, {c} chains x {t} gens, float32"
    return [_vs_numba(name, work, token_kernel(k, n, c, t), go, sizes)]
