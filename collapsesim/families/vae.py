"""The VAE family: a convolutional VAE trained generation after generation on its own images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..experiments.vae import VaeConfig
from ._family import Family
from ._show import fmt

__all__ = ["FAMILY", "VaeConfig", "table"]


def table(result: Any) -> Any:
    """Every generation's image metrics, below the real images' own."""
    from rich.table import Table

    s = result.summary
    out = Table(
        title=f"VAE on {s['data']}: {s['generations']} generations, {s['regime']}, "
        f"{s['train_images']} training images, {s['pixels']} pixels, seed {s['seed']} "
        f"({fmt(s.get('seconds'), 3)} s)",
        caption=f"FID, precision and recall against held-out real images, in the features "
        f"of a classifier trained once on the real images (held-out accuracy "
        f"{s['classifier_accuracy']:.3f}); H(class): entropy of its votes on the samples "
        f"(nats); top cls: share of the commonest class; spread: RMS std of generation "
        f"0's encoder means; loss: negative ELBO (nats/image). Vanished classes: "
        f"{', '.join(map(str, s['vanished_classes'])) or 'none'}",
    )
    for name in ("gen", "FID", "prec", "recall", "H(class)", "top cls", "spread", "loss"):
        out.add_column(name, justify="right")
    cols = ("fid", "precision", "recall", "class_entropy", "top_class_share", "latent_spread")
    out.add_row("real", *[fmt(s.get(f"real_{m}")) for m in cols], "", style="dim")
    m = result.metrics
    for t in range(len(m["fid"])):
        out.add_row(str(t), *[fmt(float(m[c][t])) for c in cols], fmt(float(m["train_loss"][t])))
    return out


def _plot(result: Any, path: Path) -> None:
    from ..plots import plot_vae

    plot_vae(result, path)


def _errors() -> tuple[type[Exception], ...]:
    from ..images import ImageDataError

    return (ImageDataError,)


FAMILY = Family(
    name="vae",
    config=VaeConfig,
    runner="collapsesim.experiments.vae",
    help="""Train a convolutional VAE generation after generation on its own samples.

Generation 0 trains on real images; each later one on images sampled from the one
before (with real data mixed in under the fresh and keep-original regimes). Metrics
per generation, in the feature space of a classifier trained once on the real data:
Frechet distance and precision/recall against held-out real images, the class
histogram and its entropy, and the spread of generation 0's encoder means.""",
    kind="neural",
    table=table,
    plot=_plot,
    plot_help="every metric over generations and samples of each generation",
    stored="sample grids in samples/",
    progress="vae",
    seed_help="Seed in [0, 2^64): it fixes the training split, every model's initial weights, "
    "minibatch order and samples, and the regime's real draws.",
    errors=_errors,
)
