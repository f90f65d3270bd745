"""The language-model family: a small transformer trained generation after generation on its text."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from .. import text as textlib
from ..config import (
    DECODING,
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

__all__ = ["FAMILY", "PRESETS", "LmConfig", "table"]


PRESETS: dict[str, dict[str, Any]] = {
    "nature-10": {"regime": "keep-original", "keep_fraction": 0.1},
    "nature-0": {"regime": "replace"},
}
"""The Nature paper's two settings: 10% of the original data kept each generation, or none."""


@dataclass(frozen=True, slots=True)
class LmConfig:
    """One recursive language-model experiment."""

    RENAMED: ClassVar[dict[str, str]] = {"generations": "num_generations"}

    corpus: str = opt(
        "pydoc",
        "pydoc (CPython's documentation topics, ~465k characters) | zipf (a synthetic language "
        "whose law is known: exact KL) | FILE of UTF-8 text.",
    )
    tokenizer: str = opt(
        "chars",
        "chars | bytes (UTF-8) | bpe (byte-pair merges of characters, learned on the corpus).",
    )
    bpe_merges: int = opt(256, "bpe: merges learned.", when=("tokenizer", ("bpe",)),
                          range=(0, 10**5))  # fmt: skip
    num_generations: int = opt_generations(5, "Models trained: generation 0 on real text.",
                                           range=(1, 10**4))  # fmt: skip
    block: int = opt(
        32,
        "Tokens per block: a prompt block, then a continuation block (context 2x).",
        range=(1, 2**14),
    )
    width: int = opt(64, "Model width (embedding size).", range=(1, 2**14))
    heads: int = opt(4, "Attention heads (divide --width).", range=(1, 1024))
    layers: int = opt(2, "Transformer blocks.", range=(1, 1024))
    epochs: int = opt(3, "Training epochs per generation.", range=(1, 10**4))
    batch_size: int = opt(64, "Minibatch size (pairs).", range=(1, 2**20))
    learning_rate: float = opt(3e-3, "Adam's learning rate.")
    temperature: float = opt(1.0, "Sampling temperature (> 0).", group=DECODING)
    top_k: int = opt(0, "Sample among the k most probable tokens (0: off).", group=DECODING,
                     range=(0, 2**31 - 1))  # fmt: skip
    top_p: float = opt(
        1.0, "Nucleus sampling: the smallest set with this mass (1: off).", group=DECODING
    )
    warm_start: bool = opt(False, "Continue from the last model instead of a fresh one.")
    select: str = opt_select_top("with the lowest perplexity under generation 0")
    select_strength: float = opt_select_strength("X of --select top, in (0, 1].")
    best_of: int = opt_best_of("Reward curation: each kept sample is one of K, chosen with "
                               "probability proportional to the log-likelihood under generation 0 (1: off).")  # fmt: skip
    regime: str = opt_regime()
    fresh_fraction: float = opt_fresh_fraction()
    keep_fraction: float = opt_keep_fraction()
    train_size: int = opt(0, "Real training pairs (0: all of the training split).", group=RUN,
                          range=(0, 10**9))  # fmt: skip
    seed: int = opt_seed()

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.width % self.heads:
            raise ConfigError(f"width {self.width} is not a multiple of heads {self.heads}")
        if self.tokenizer not in textlib.TOKENIZERS:
            raise ConfigError(
                f"unknown tokenizer {self.tokenizer!r}; choose {', '.join(textlib.TOKENIZERS)}"
            )
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigError(f"learning rate must be > 0, got {self.learning_rate}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top-p must lie in (0, 1] (1: off), got {self.top_p}")
        check_select_top(self, "the LM selects by perplexity under generation 0")
        if self.train_size < 0:
            raise ConfigError(f"train size must be >= 0 (0: all), got {self.train_size}")
        check_seed(self.seed)
        real_count(Regime.parse(self.regime), 1, self.fresh_fraction, self.keep_fraction)

    @property
    def curation(self) -> Curation:
        """The curation operators of this run (its sampling bias is the temperature)."""
        return Curation.of(self)

    @property
    def context(self) -> int:
        """Tokens the model sees: a prompt block and a continuation block."""
        return 2 * self.block

    def memory_bytes(self) -> int:
        """A floor on the model's memory: parameters, gradients and Adam's two moments
        (float32, 12 width^2 per block), and one minibatch's attention scores and
        activations.
        """
        w, c = self.width, self.context
        params = 12 * w * w * self.layers + c * w
        scores = self.batch_size * self.heads * c * c * self.layers
        activations = self.batch_size * c * w * 8 * self.layers
        return 4 * (4 * params + scores + activations)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as stored in run.json."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LmConfig:
        """Inverse of :meth:`to_dict` (and of earlier runs' field names)."""
        return cls(**{cls.RENAMED.get(k, k): v for k, v in d.items()})


def table(result: Any) -> Any:
    """Every generation's text metrics below real text's, then one prompt continued by each."""
    from rich.console import Group
    from rich.table import Table

    s = result.summary
    known = s.get("true_entropy_rate") is not None
    out = Table(
        title=f"Transformer LM on {s['corpus']}: {s['generations']} generations, {regime_text(s)}, "
        f"{s['train_pairs']} training pairs of {s['block']}+{s['block']} {s['tokenizer']} "
        f"tokens, temperature {s['temperature']:g}, seed {s['seed']} "
        f"({fmt(s.get('seconds'), 3)} s){curation_title(s)}"
        + (f", {fmt(s['mean_candidates'])} candidates per kept pair" if "curation" in s else ""),
        caption="ppl: perplexity on held-out real text; gen-0 ppl: perplexity of the "
        "generation's sampled continuations under generation 0 (median, 95th percentile); "
        "dist-2: distinct word bigrams / all; words, 3-grams: distinct words and character "
        "3-grams; rep-4: share of a continuation's character 4-grams it already used; loss: "
        "training nats/token"
        + ("; KL: exact KL(true || model) nats/token on held-out text" if known else "")
        + "".join(f". Warning: {w}" for w in s.get("warnings") or ()),
    )
    cols = ["real_ppl", "gen0_ppl_median", "gen0_ppl_p95", "distinct_2", "word_support",
            "char3_support", "repeat_rate"]  # fmt: skip
    names = ["gen", "ppl", "gen-0 ppl", "p95", "dist-2", "words", "3-grams", "rep-4"]
    if known:
        cols.insert(1, "true_kl")
        names.insert(2, "KL")
    for name in [*names, "loss"]:
        out.add_column(name, justify="right")

    def cells(get: Any) -> list[str]:
        return [
            "—" if get(c) is None else f"{get(c):,.0f}" if c.endswith("support") else fmt(get(c), 3)
            for c in cols
        ]

    # Real text's KL to the truth is 0 by definition (no model is scored there).
    real = {**{c: s.get(f"real_{c}") for c in cols}, "true_kl": 0.0}
    out.add_row("real", *cells(real.get), "", style="dim")
    m = result.metrics
    for t in range(len(m["real_ppl"])):
        row = cells(lambda c, t=t: float(m[c][t]))
        out.add_row(str(t), *row, fmt(float(m["train_loss"][t]), 3))
    texts = Table(title="The same held-out prompt, continued by each generation")
    texts.add_column("gen", justify="right")
    texts.add_column("text", overflow="fold")
    texts.add_row("prompt", repr(s["prompt"]), style="dim")
    for t, c in enumerate(s["continuations"]):
        texts.add_row(str(t), repr(c))
    return Group(out, texts)


FAMILY = Family(
    name="lm",
    config=LmConfig,
    runner="collapsesim.experiments.lm",
    help="""Train a small transformer language model generation after generation on its own text.

Generation 0 trains on real text cut into blocks; each later one on continuations
that the one before sampled for prompts taken from its own training text, as many
as the original has blocks (with real text mixed in under the fresh and
keep-original regimes). Metrics per generation: perplexity on held-out real text,
the perplexity of the synthetic text under generation 0, distinct-n, vocabulary and
n-gram support, repetition, and with --corpus zipf the exact KL to the true language.""",
    kind="neural",
    table=table,
    plot="collapsesim.plots:plot_lm",
    plot_help="perplexity histograms under generation 0 and every metric over generations",
    presets=PRESETS,
    preset_help="[b]nature-10[/]: keep 10% of the original data every generation; "
    "[b]nature-0[/]: none (Shumailov et al., 2024).",
    stored="sample texts in samples.txt",
    progress="lm",
    seed_help="Seed in [0, 2^64): it fixes the corpus split, every model's initial weights, "
    "minibatch order and samples, and the regime's real draws.",
    errors=("collapsesim.text:TextDataError",),
    headline="real_ppl",
)
