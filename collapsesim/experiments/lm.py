"""A transformer language model trained generation after generation on its own text.

The experiment of Shumailov et al. (Nature 2024, "AI models collapse when trained on
recursively generated data", Sec. "Model collapse in language models"): the training
text is cut into blocks; each later generation's corpus is made by prompting the
previous model with blocks of its own training text and sampling continuations, until
the synthetic corpus has as many blocks as the original. Here the models are trained
from scratch (or, with ``warm_start``, continued) at a size a CPU can run.

Every training example is a (prompt, continuation) pair of ``block`` tokens each; the
loss is on the continuation. Real pairs are consecutive blocks of the corpus, every
tenth pair held out. Model t samples continuations for prompts drawn from the
continuations it was trained on (all of them, in order, when the counts match);
generation t+1 trains on those pairs, mixed with real pairs under the data regime.

Row t of the metrics describes model t and the corpus it generates: perplexity on
held-out real text; the perplexities of its continuations under model 0 (the paper's
Fig. 1b histograms); distinct-n, support and repetition of the sampled text; and for
the ``zipf`` corpus the exact KL divergence from the true language to the model.

With ``out`` each generation's parameters and synthetic corpus are stored as it ends
(``generations/gen_NNN.npz``), so a killed run resumes at the generation in progress.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import store
from .. import text as textlib
from ..config import ConfigError
from ..curation import candidates_of_top
from ..families.lm import PRESETS, LmConfig
from ..results import Columns, NeuralResult
from . import _common as common
from . import _driver as driver
from . import _neural as neural

__all__ = ["METRICS", "PRESETS", "LmConfig", "LmProgress", "LmResult", "iterate", "load", "run"]

METRICS = (
    "real_ppl",
    "true_kl",
    "true_nll",
    "gen0_ppl_median",
    "gen0_ppl_p95",
    "distinct_1",
    "distinct_2",
    "distinct_3",
    "token_support",
    "word_support",
    "char3_support",
    "repeat_rate",
    "train_loss",
    "train_size",
)
"""Per-generation metrics, in the order of ``metrics.parquet``'s columns."""

_SHOWN_KEY = 0  # run-wide key of the shown prompts' continuations (neural.run_key)
_SHOWN_PROMPTS = 3  # held-out prompts continued by every generation (samples.txt)
_REPEAT_N = 4  # character n-grams for the repetition rate
_HELD_OUT_EVERY = 10


@dataclass(frozen=True)
class LmProgress:
    """Where a running experiment stands: after an epoch, or while sampling a corpus."""

    generation: int
    generations: int
    stage: str  # "train" or "sample"
    done: int  # epochs trained, or sequences sampled
    total: int
    loss: float


@dataclass
class LmResult(NeuralResult):
    """Per-generation metrics, perplexity histograms, sample texts and a summary.

    A :class:`~collapsesim.results.NeuralResult`: ``aggregates``, ``trajectories`` and
    ``final`` are ``metrics`` as one chain. Its stored tables are ``metrics`` and
    ``perplexities`` (generation, sequence, perplexity; generation -1 is real text).
    """

    family: ClassVar[str] = "lm"
    config: LmConfig
    metrics: dict[str, np.ndarray]  # METRICS -> (T,)
    reference: dict[str, float]  # the same metrics of real text
    perplexities: list[np.ndarray]  # per generation: its continuations' perplexity under model 0
    real_perplexities: np.ndarray  # held-out real continuations under model 0
    texts: list[list[str]]  # per generation: continuations of the shown prompts
    prompts: list[str]
    summary: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def _stored(self) -> dict[str, Callable[[], Columns]]:
        return {**super()._stored(), "perplexities": self._perplexity_table}

    def _perplexity_table(self) -> Columns:
        """Long table of the perplexities under model 0: real text (generation -1), then each."""
        sizes = [len(self.real_perplexities), *(len(p) for p in self.perplexities)]
        every = [self.real_perplexities, *self.perplexities]
        return {
            "generation": np.repeat(np.arange(-1, len(self.perplexities), dtype=np.int64), sizes),
            "sequence": np.concatenate([np.arange(k, dtype=np.int64) for k in sizes]),
            "perplexity": np.concatenate(every).astype(np.float64),
        }


def _row_keys(key: Any, lo: int, count: int) -> Any:
    """Keys of rows lo..lo+count-1: row i's is fold_in(key, i) however rows are batched."""
    import jax

    return jax.vmap(lambda i: jax.random.fold_in(key, i))(np.arange(lo, lo + count))


@dataclass
class _Data:
    """The tokenized corpus as (prompt, continuation) pairs."""

    tokenizer: textlib.Tokenizer
    pool: np.ndarray  # every real training pair (N_all, 2B)
    real: np.ndarray  # the real training pairs of this run (N, 2B)
    test: np.ndarray  # held-out real pairs
    corpus: textlib.Corpus


def _prepare(cfg: LmConfig) -> _Data:
    corpus = textlib.load(cfg.corpus, cfg.seed)
    tok = textlib.Tokenizer.train(cfg.tokenizer, corpus.text, cfg.bpe_merges)
    ids = tok.encode(corpus.text)
    b = cfg.block
    blocks = len(ids) // b
    if blocks < 2 * _HELD_OUT_EVERY:
        raise textlib.TextDataError(
            f"{corpus.source} is too short: {len(ids)} tokens make {blocks} blocks of {b}; "
            f"need at least {2 * _HELD_OUT_EVERY} (two contexts of {2 * b} tokens per "
            f"held-out pair)"
        )
    bl = ids[: blocks * b].reshape(blocks, b)
    pairs = np.concatenate([bl[:-1], bl[1:]], axis=1)
    held = (np.arange(1, blocks) % _HELD_OUT_EVERY) == 0
    pool, test = pairs[~held], pairs[held]
    if cfg.train_size > len(pool):
        raise ConfigError(
            f"train size {cfg.train_size} exceeds the {len(pool)} real training pairs"
        )
    if cfg.train_size:
        pick = np.random.default_rng([cfg.seed, 9]).choice(len(pool), cfg.train_size, False)
        real = pool[np.sort(pick)]
    else:
        real = pool
    return _Data(tok, pool, real, test, corpus)


def _prompts(cfg: LmConfig, t: int, train: np.ndarray, count: int) -> np.ndarray:
    """Blocks of generation t's training text to prompt model t with: its continuations."""
    b = cfg.block
    if len(train) == count:
        return train[:, b:]
    rng = np.random.default_rng([cfg.seed, t, 11])
    return train[np.sort(rng.choice(len(train), count, replace=False)), b:]


def _texts(tok: textlib.Tokenizer, rows: np.ndarray) -> list[str]:
    return [tok.decode(r) for r in rows]


def _text_metrics(tok: textlib.Tokenizer, continuations: np.ndarray) -> dict[str, float]:
    """Diversity of a set of continuations (token ids)."""
    texts = _texts(tok, continuations)
    out: dict[str, float] = {}
    for n in (1, 2, 3):
        distinct, total = textlib.word_ngrams(texts, n)
        out[f"distinct_{n}"] = distinct / total if total else math.nan
        if n == 1:
            out["word_support"] = float(distinct)
    out["token_support"] = float(len(np.unique(continuations)))
    out["char3_support"] = float(textlib.char_ngram_support(texts, 3))
    out["repeat_rate"] = textlib.repeat_rate(texts, _REPEAT_N)
    return out


class _Judge:
    """Fixed yardsticks: held-out real text, model 0, and the true language if known."""

    def __init__(self, data: _Data) -> None:
        self.data = data
        # The truth scores tokens that are single symbols: characters or bytes, not BPE.
        language = data.corpus.language if data.tokenizer.kind != "bpe" else None
        self.truth = (
            None if language is None else (language, data.tokenizer.symbols(language.alphabet))
        )
        self.model0: Any = None

    def true_nll(self, pairs: np.ndarray) -> np.ndarray | None:
        """-log P_true of each continuation token, or None without a known language."""
        if self.truth is None:
            return None
        language, lookup = self.truth
        return -language.target_logp(pairs, lookup)

    def measure(self, model: Any, samples: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        """Metrics of a model and its synthetic pairs; its continuations' model-0 perplexity."""
        from ..models import transformer as tm

        test_nll = tm.nll(model, self.data.test)
        row = {
            "real_ppl": float(np.exp(test_nll.mean())),
            "true_kl": math.nan,
            "true_nll": math.nan,
        }
        truth = self.true_nll(self.data.test)
        if truth is not None:
            # KL(P || Q) per token = E_P[log P - log Q], P's log-probabilities exact.
            row["true_kl"] = float(np.mean(test_nll - truth))
            row["true_nll"] = float(np.mean(self.true_nll(samples)))  # type: ignore[arg-type]
        ppl = np.exp(tm.nll(self.model0, samples).mean(axis=1))
        row["gen0_ppl_median"] = float(np.median(ppl))
        row["gen0_ppl_p95"] = float(np.quantile(ppl, 0.95))
        row.update(_text_metrics(self.data.tokenizer, samples[:, samples.shape[1] // 2 :]))
        return row, ppl.astype(np.float32)

    def reference(self) -> tuple[dict[str, float], np.ndarray]:
        """The metrics of real text: held-out pairs under model 0, training text's diversity."""
        from ..models import transformer as tm

        test_nll = tm.nll(self.model0, self.data.test)
        ppl = np.exp(test_nll.mean(axis=1))
        row = {
            "real_ppl": float(np.exp(test_nll.mean())),
            "true_kl": math.nan,
            "true_nll": math.nan,
            "gen0_ppl_median": float(np.median(ppl)),
            "gen0_ppl_p95": float(np.quantile(ppl, 0.95)),
        }
        truth = self.true_nll(self.data.test)
        if truth is not None:
            row["true_kl"] = 0.0
            row["true_nll"] = float(np.mean(truth))
        row.update(
            _text_metrics(self.data.tokenizer, self.data.real[:, self.data.real.shape[1] // 2 :])
        )
        return row, ppl.astype(np.float32)


def _sample(cfg: LmConfig, model: Any, prompts: np.ndarray, key: Any, chunk: int = 2048
            ) -> Generator[int, None, np.ndarray]:  # fmt: skip
    """Continuations of ``prompts`` (a key per row, so chunking does not matter)."""
    from ..models import transformer as tm

    parts = []
    for lo in range(0, len(prompts), chunk):
        rows = prompts[lo : lo + chunk]
        pad = chunk - len(rows) if len(prompts) > chunk else 0  # one shape per run
        rows_p = np.concatenate([rows, np.zeros((pad, rows.shape[1]), rows.dtype)])
        got = tm.generate(model, rows_p, _row_keys(key, lo, len(rows_p)), cfg.block, temperature=cfg.temperature,
                          top_k=cfg.top_k, top_p=cfg.top_p)  # fmt: skip
        parts.append(got[: len(rows)].astype(np.int32))
        yield lo + len(rows)
    return np.concatenate(parts)


def iterate(
    cfg: LmConfig, *, out: Path | None = None, resume: bool = False
) -> Generator[LmProgress, None, LmResult]:
    """Run the recursive language-model experiment, yielding progress as it goes.

    Raises:
        ConfigError: a bad configuration.
        text.TextDataError: the corpus cannot be read or used.
        store.RunDirError: ``out`` cannot take this run, or a resumed one is damaged.
    """
    return driver.run_plan(
        cfg, lambda: neural.as_plan(_plan(cfg)), load, out=out, resume=resume,
        checkpoint_seconds=0.0,
    )  # fmt: skip


def _plan(cfg: LmConfig) -> neural.NeuralPlan:
    """The neural plan of a language-model run (see :class:`_Run`)."""
    run = _Run(cfg)
    return neural.NeuralPlan(
        family="lm",
        meta=run.meta(),
        logs=("rows", "texts"),
        stored=("samples", "gen0_ppl"),
        setup=lambda out: None,
        restore=run.restore,
        generation=run.generation,
        finish=run.finish,
        report=lambda t: LmProgress(t, cfg.num_generations, "train", 0, cfg.epochs, math.nan),
        save=_save,
        check=run.check,
    )


class _Run:
    """A language-model run's data, its generations' corpora and the models it reads."""

    def __init__(self, cfg: LmConfig) -> None:
        self.cfg = cfg
        self.data = _prepare(cfg)
        self.tok = self.data.tokenizer
        if cfg.top_k > self.tok.vocab:
            raise ConfigError(
                f"top-k {cfg.top_k} exceeds the vocabulary of {self.tok.vocab} tokens"
            )
        self.judge = _Judge(self.data)
        self.shown = self.data.test[:_SHOWN_PROMPTS, : cfg.block]
        self.samples: list[np.ndarray] = []
        self.perplexities: list[np.ndarray] = []
        self.model: Any = None  # the newest model (a warm start continues from it)
        self.reference: dict[str, float] = {}
        self.real_ppl = np.zeros(0)

    def meta(self) -> dict[str, Any]:
        """What run.json records of the data beside the configuration."""
        return {
            "corpus_source": self.data.corpus.source,
            "corpus_sha256": self.data.corpus.sha256,
            "tokenizer": self.tok.to_dict(),
            "prompts": _texts(self.tok, self.shown),
        }

    def new_model(self, t: int) -> Any:
        from flax import nnx

        from ..models import transformer as tm

        cfg = self.cfg
        rngs = nnx.Rngs(neural.generation_key(cfg.seed, t, neural.INIT))
        return tm.Transformer(self.tok.vocab, cfg.context, cfg.width, cfg.heads, cfg.layers,
                              rngs=rngs)  # fmt: skip

    def model_zero(self, model: Any) -> None:
        """Generation 0's model: the yardstick every later generation's text is judged by."""
        self.judge.model0 = model
        self.reference, self.real_ppl = self.judge.reference()

    def restore(
        self, t: int, params: dict[str, np.ndarray], arrays: list[np.ndarray], last: bool
    ) -> None:
        from ..models import training

        self.samples.append(arrays[0])
        self.perplexities.append(arrays[1])
        if t == 0 or (last and self.cfg.warm_start):  # the only models a resumed run reads
            m = self.new_model(t)
            training.set_params(m, params)
            if t == 0:
                self.model_zero(m)
            self.model = m

    def check(self, state: dict[str, Any]) -> None:
        if state.get("corpus_sha256") != self.data.corpus.sha256:
            raise store.RunDirError(
                f"the corpus {self.cfg.corpus} changed since the run began; cannot resume"
            )

    def generation(self, t: int) -> Generator[LmProgress, None, neural.Trained]:
        """Train generation t, let it write its corpus, and measure it."""
        from ..models import training
        from ..models import transformer as tm

        cfg, data = self.cfg, self.data
        train = neural.training_set(cfg, t, data.real, self.samples, data.pool)
        model = self.new_model(t)
        losses = yield from neural.train(
            model, self.model, (train,), neural.generation_key(cfg.seed, t, neural.TRAIN),
            warm_start=cfg.warm_start, epochs=cfg.epochs, loss=tm.lm_loss, batch=cfg.batch_size,
            lr=cfg.learning_rate, clip=1.0,
            progress=lambda e, loss: LmProgress(t, cfg.num_generations, "train", e, cfg.epochs,
                                                loss),
        )  # fmt: skip
        self.model = model
        if t == 0:
            self.model_zero(model)
        count = neural.synthetic_count(cfg, len(data.real))
        cur = cfg.curation
        big = count * cur.best_of
        if cur.select == "top":
            big = candidates_of_top(count, cur.select_strength)
        prompts = _prompts(cfg, t, train, count)
        if cur.best_of > 1:  # K continuations of each prompt (a key per row)
            prompts = np.repeat(prompts, cur.best_of, axis=0)
        elif big > count:  # the prompts again and again, ceil(n / X) rows in all; the top
            # n continuations are taken across prompts, so easy prompts may be kept twice
            prompts = np.resize(prompts, (big, prompts.shape[1]))
        s = yield from _corpus(cfg, t, model, prompts, losses[-1])
        if big > count:
            nll0 = tm.nll(self.judge.model0, s)
            if cur.best_of > 1:
                # Luce's choice among a prompt's K continuations, the reward their
                # log-likelihood under model 0 (the prompt's share is the same for all K).
                reward = -nll0.sum(axis=1).reshape(count, cur.best_of)
                pick = neural.luce_picks(reward, cfg.seed, t)
                s = s.reshape(count, cur.best_of, -1)[np.arange(count), pick]
            else:
                # The n continuations of lowest perplexity under model 0 (ties: drawn first).
                s = s[neural.top_rows(-nll0.mean(axis=1), count)]
        self.samples.append(s)
        row, ppl = self.judge.measure(model, s)
        row |= {"train_loss": losses[-1], "train_size": float(len(train))}
        if cur.active:
            row["candidates"] = big / count if count else 1.0
        self.perplexities.append(ppl)
        keys = _row_keys(neural.run_key(cfg.seed, _SHOWN_KEY), 0, len(self.shown))
        shown = tm.generate(model, self.shown, keys, cfg.block, temperature=cfg.temperature,
                            top_k=cfg.top_k, top_p=cfg.top_p)  # fmt: skip
        return neural.Trained(
            logs={"rows": row, "texts": _texts(self.tok, shown)},
            params=training.get_params(model),
            arrays={"samples": s, "gen0_ppl": ppl, "losses": np.array(losses)},
        )

    def finish(self, logs: dict[str, list[Any]]) -> LmResult:
        return _finish(self.cfg, logs["rows"], self.reference, self.perplexities, self.real_ppl,
                       logs["texts"], _texts(self.tok, self.shown), self.data)  # fmt: skip


def _corpus(
    cfg: LmConfig, t: int, model: Any, prompts: np.ndarray, loss: float
) -> Generator[LmProgress, None, np.ndarray]:
    """Generation t's synthetic pairs: each prompt and the model's continuation of it."""
    steps = _sample(cfg, model, prompts, neural.generation_key(cfg.seed, t, neural.SAMPLE))
    while True:
        try:
            k = next(steps)
        except StopIteration as stop:
            return np.concatenate([prompts, stop.value], axis=1)
        yield LmProgress(t, cfg.num_generations, "sample", k, len(prompts), loss)


def _finish(
    cfg: LmConfig,
    rows: list[dict[str, float]],
    reference: dict[str, float],
    perplexities: list[np.ndarray],
    real_ppl: np.ndarray,
    texts: list[list[str]],
    prompts: list[str],
    data: _Data,
) -> LmResult:
    names = neural.metric_names(cfg, METRICS)
    cols = {m: np.array([r.get(m, math.nan) for r in rows], np.float64) for m in names}
    s: dict[str, Any] = {
        "corpus": cfg.corpus,
        "generations": cfg.num_generations,
        "regime": cfg.regime,
        "tokenizer": cfg.tokenizer,
        "block": cfg.block,
        "temperature": cfg.temperature,
        "top_k": cfg.top_k,
        "top_p": cfg.top_p,
        "seed": cfg.seed,
    }
    s["corpus_source"] = data.corpus.source
    s["vocab"] = data.tokenizer.vocab
    s["train_pairs"] = len(data.real)
    s["test_pairs"] = len(data.test)
    language = data.corpus.language
    s["true_entropy_rate"] = None if language is None else language.entropy_rate
    for m in METRICS[:-1]:
        s[f"real_{m}"] = reference.get(m)
        s[f"first_{m}"] = float(cols[m][0])
        s[f"final_{m}"] = float(cols[m][-1])
    neural.summarize_curation(cfg, s, cols)
    s["unigram_ppl"] = _unigram_perplexity(data)
    s["warnings"] = _untrained(s)
    s["prompt"] = prompts[0]
    s["continuations"] = [g[0] for g in texts]
    summary = {k: common.finite_or_none(v) for k, v in s.items()}
    ref = {k: (math.nan if v is None else float(v)) for k, v in reference.items()}
    return LmResult(cfg, cols, ref, perplexities, real_ppl, texts, prompts, summary)


def _unigram_perplexity(data: _Data) -> float:
    """The perplexity of held-out real continuations under the training tokens' unigram
    frequencies (add-one smoothed over the vocabulary): what a model that learnt nothing
    of context would score."""
    vocab = int(data.tokenizer.vocab)
    counts = np.bincount(data.real.ravel(), minlength=vocab).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    b = data.test.shape[1] // 2
    return float(np.exp(-logp[data.test[:, b:]].mean()))


def _untrained(s: dict[str, Any]) -> list[str]:
    """A warning where generation 0 learnt no more than token frequencies: its perplexity
    on held-out real text at least 0.9 times the unigram model's. Its samples are then
    shuffled tokens, and what later generations lose says little about collapse."""
    first, unigram = s.get("first_real_ppl"), s.get("unigram_ppl")
    if first is None or unigram is None or not first >= 0.9 * unigram:
        return []
    message = (
        f"generation 0 learnt little beyond token frequencies: its perplexity on held-out "
        f"real text is {first:.1f} against {unigram:.1f} for the tokens' unigram frequencies, "
        f"so what later generations lose says little; train longer (--epochs) or a larger "
        f"model"
    )
    return [message]


def _samples_txt(result: LmResult) -> str:
    lines = []
    for i, prompt in enumerate(result.prompts):
        lines.append(f"### prompt {i} (held-out real text)\n{prompt!r}\n")
        for t, g in enumerate(result.texts):
            lines.append(f"generation {t}: {g[i]!r}")
        lines.append("")
    return "\n".join(lines)


def _save(out: Path, result: LmResult, meta: dict[str, Any]) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(_samples_txt(result), encoding="utf-8")

    store.atomic_write(out / "samples.txt", write)
    common.save_result(out, result, meta)


def load(out: Path) -> LmResult:
    """The result of a complete run stored in ``out``.

    Raises:
        store.RunDirError: the directory holds no complete language-model run.
    """
    out = Path(out)
    meta = common.read_meta(out)
    if meta.get("family") != "lm":
        raise store.RunDirError(f"{out} holds a run of another family, not a language-model run")
    cfg = LmConfig.from_dict(meta["config"])
    summary = store.read_json(out / "summary.json")
    cols = store.read_parquet(out / "metrics.parquet", "SELECT * FROM t ORDER BY generation")
    ppl = store.read_parquet(
        out / "perplexities.parquet", "SELECT * FROM t ORDER BY generation, sequence"
    )
    gens = np.asarray(ppl["generation"])
    values = np.asarray(ppl["perplexity"], np.float32)
    reference = {m: summary.get(f"real_{m}") for m in METRICS[:-1]}
    return LmResult(
        cfg,
        {m: np.asarray(cols[m], np.float64) for m in neural.metric_names(cfg, METRICS)},
        {k: (math.nan if v is None else float(v)) for k, v in reference.items()},
        [values[gens == t] for t in range(cfg.num_generations)],
        values[gens == -1],
        meta["texts"],
        meta["prompts"],
        summary,
        meta.get("timings", {}),
    )


def run(cfg: LmConfig, **options: Any) -> LmResult:
    """Run :func:`iterate` to the end and return its result."""
    return common.drain(iterate(cfg, **options))
