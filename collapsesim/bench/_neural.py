"""Throughput of the neural families on JAX's default device: the VAE and the LM."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._core import Row, Sizes, si, side

__all__ = ["lm_rows", "vae_rows"]


def vae_rows(sizes: Sizes) -> list[Row]:
    """One jit-compiled training epoch of the default VAE on MNIST, and sampling."""
    import jax
    from flax import nnx

    from .. import images
    from ..experiments.vae import VaeConfig
    from ..models import vae as models
    from ._jax import device

    cfg = VaeConfig()
    data = images.load("mnist")
    train, _ = images.split(data)
    x = data.images[train][: sizes.pick(None, 1024)]
    model = models.VAE((28, 28), cfg.latent, cfg.widths, rngs=nnx.Rngs(0))
    trainer = models.Trainer(model, (x,), jax.random.key(0), loss=models.elbo,
                             batch=cfg.batch_size, lr=cfg.learning_rate)  # fmt: skip
    count = len(x)

    def epoch() -> int:
        trainer.epoch()
        return count

    def draw() -> int:
        jax.block_until_ready(models.sample(model, jax.random.key(1), count))
        return count

    fit = side("training", epoch, sizes.repeats, "image")
    trainer.finish()
    gen = side("sampling", draw, sizes.repeats, "image")
    name = (f"VAE ({device()}), MNIST 28x28, latent {cfg.latent}, widths {cfg.widths}, "
            f"batch {cfg.batch_size}")  # fmt: skip
    fit.extra = {"sampling_seconds": gen.seconds, "sampling_rate": gen.rate}
    return [Row("vae", name, {"images": count}, fit,
                text={"ours": f"training {si(fit.rate)} images/s ({fit.seconds:.2f} s per epoch "
                      f"of {count}); sampling {si(gen.rate)} images/s"})]  # fmt: skip


def lm_rows(sizes: Sizes) -> list[Row]:
    """The default LM: training and sampling tokens/s; the key-value cache against none."""
    import jax
    from flax import nnx

    from ..experiments.lm import LmConfig, _prepare
    from ..models import training
    from ..models import transformer as tm
    from ._jax import device

    cfg = LmConfig()
    data = _prepare(cfg)
    real = data.real[: sizes.pick(None, 1024)]
    model = tm.Transformer(data.tokenizer.vocab, cfg.context, cfg.width, cfg.heads, cfg.layers,
                           rngs=nnx.Rngs(0))  # fmt: skip
    trainer = training.Trainer(model, (real,), jax.random.key(0), loss=tm.lm_loss,
                               batch=cfg.batch_size, lr=cfg.learning_rate, clip=1.0)  # fmt: skip

    def epoch() -> int:
        trainer.epoch()
        return int(real.size)  # tokens through the model

    fit = side("training", epoch, sizes.repeats, "token")
    trainer.finish()
    prompts = real[:, : cfg.block]

    def draw(rows: int, cached: bool) -> Callable[[], int]:
        keys = jax.random.split(jax.random.key(1), rows)

        def go() -> int:
            out: Any = tm.generate(model, prompts[:rows], keys, cfg.block, cached=cached)
            jax.block_until_ready(out)
            return rows * cfg.block

        return go

    chunk = min(sizes.pick(2048, 512), len(prompts))  # the runner's batch of prompts
    gen = side("sampling", draw(chunk, True), sizes.repeats, "token")
    small = sizes.pick(256, 64)
    base = side("whole context per token", draw(small, False), sizes.repeats, "token")
    ours = side("key-value cache", draw(small, True), sizes.repeats, "token")
    name = (f"transformer LM ({device()}), pydoc chars, width {cfg.width}, {cfg.layers} layers, "
            f"{cfg.heads} heads, context {cfg.context}")  # fmt: skip
    fit.extra = {"sampling_seconds": gen.seconds, "sampling_rate": gen.rate}
    ratio = base.seconds / ours.seconds
    return [
        Row("lm", name, {"pairs": len(real), "tokens": int(real.size)}, fit,
            text={"ours": f"training {si(fit.rate)} tokens/s ({fit.seconds:.1f} s per epoch of "
                  f"{len(real):,} pairs, batch {cfg.batch_size}); sampling {si(gen.rate)} new "
                  f"tokens/s ({chunk} prompts at once)"}),
        Row("lm", f"LM sampler, key-value cache vs recomputing the context ({device()}), "
            f"{small} prompts of {cfg.block} + {cfg.block} new tokens",
            {"prompts": small, "new_tokens": small * cfg.block}, ours, base, ratio,
            ">= 10x", ratio >= 10,
            {"baseline": f"{si(base.rate)} new tokens/s ({base.seconds:.2f} s)",
             "ours": f"{si(ours.rate)} new tokens/s ({ours.seconds:.3f} s)"}),
    ]  # fmt: skip
