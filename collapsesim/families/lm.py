"""The language-model family: a small transformer trained generation after generation on its text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..experiments.lm import PRESETS, LmConfig
from ._family import Family
from ._show import fmt

__all__ = ["FAMILY", "LmConfig", "table"]


def table(result: Any) -> Any:
    """Every generation's text metrics below real text's, then one prompt continued by each."""
    from rich.console import Group
    from rich.table import Table

    s = result.summary
    known = s.get("true_entropy_rate") is not None
    out = Table(
        title=f"Transformer LM on {s['corpus']}: {s['generations']} generations, {s['regime']}, "
        f"{s['train_pairs']} training pairs of {s['block']}+{s['block']} {s['tokenizer']} "
        f"tokens, temperature {s['temperature']:g}, seed {s['seed']} "
        f"({fmt(s.get('seconds'), 3)} s)",
        caption="ppl: perplexity on held-out real text; gen-0 ppl: perplexity of the "
        "generation's sampled continuations under generation 0 (median, 95th percentile); "
        "dist-2: distinct word bigrams / all; words, 3-grams: distinct words and character "
        "3-grams; rep-4: share of a continuation's character 4-grams it already used; loss: "
        "training nats/token"
        + ("; KL: exact KL(true || model) nats/token on held-out text" if known else ""),
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

    out.add_row("real", *cells(lambda c: s.get(f"real_{c}")), "", style="dim")
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


def _plot(result: Any, path: Path) -> None:
    from ..plots import plot_lm

    plot_lm(result, path)


def _errors() -> tuple[type[Exception], ...]:
    from ..text import TextDataError

    return (TextDataError,)


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
    plot=_plot,
    plot_help="perplexity histograms under generation 0 and every metric over generations",
    presets=PRESETS,
    preset_help="[b]nature-10[/]: keep 10% of the original data every generation; "
    "[b]nature-0[/]: none (Shumailov et al., 2024).",
    stored="sample texts in samples.txt",
    progress="lm",
    seed_help="Seed in [0, 2^64): it fixes the corpus split, every model's initial weights, "
    "minibatch order and samples, and the regime's real draws.",
    errors=_errors,
)
