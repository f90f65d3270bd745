"""The transformer language model, its sampler, the text tools and the recursive LM runner."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from typer.testing import CliRunner

from collapsesim import store
from collapsesim import text as textlib
from collapsesim.cli import app
from collapsesim.config import ConfigError
from collapsesim.experiments import _common as common
from collapsesim.experiments import _neural as neural
from collapsesim.experiments import lm
from collapsesim.models import transformer as tm

TINY: dict[str, object] = {"corpus": "zipf", "num_generations": 2, "train_size": 120, "block": 8,
                           "width": 16, "heads": 2, "layers": 1, "epochs": 2, "batch_size": 16}  # fmt: skip


def _model(vocab: int = 11, context: int = 24, seed: int = 0) -> tm.Transformer:
    return tm.Transformer(vocab, context, 32, 4, 2, rngs=nnx.Rngs(seed))


# --- the model and its sampler ---------------------------------------------------------


def test_cached_and_uncached_sampling_give_the_same_logits() -> None:
    model = _model()
    prompts = np.random.default_rng(0).integers(0, 11, (6, 10))
    keys = jax.random.split(jax.random.key(3), 6)
    tok_c, log_c = tm.generate(model, prompts, keys, 14, cached=True, return_logits=True)
    tok_u, log_u = tm.generate(model, prompts, keys, 14, cached=False, return_logits=True)
    np.testing.assert_array_equal(tok_c, tok_u)
    np.testing.assert_allclose(log_c, log_u, atol=2e-5, rtol=1e-5)
    # ... and they are the logits a plain forward pass gives for the whole sequence.
    full, _ = model(jnp.asarray(np.concatenate([prompts, tok_c], axis=1)))
    np.testing.assert_allclose(log_c, np.asarray(full)[:, 9:-1], atol=2e-5, rtol=1e-5)


def test_a_sequence_samples_the_same_whatever_shares_its_batch() -> None:
    model = _model()
    prompts = np.random.default_rng(1).integers(0, 11, (9, 8))
    keys = jax.random.split(jax.random.key(5), 9)
    whole = tm.generate(model, prompts, keys, 8)
    parts = [tm.generate(model, prompts[i : i + 4], keys[i : i + 4], 8) for i in (0, 4, 8)]
    np.testing.assert_array_equal(whole, np.concatenate(parts))


def test_filter_logits_top_k_top_p_and_temperature() -> None:
    logits = jnp.log(jnp.array([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    kept = lambda **kw: np.isfinite(np.asarray(tm.filter_logits(logits, **kw)))[0]
    np.testing.assert_array_equal(kept(temperature=1.0, top_k=0, top_p=1.0), [1, 1, 1, 1, 1])
    np.testing.assert_array_equal(kept(temperature=1.0, top_k=2, top_p=1.0), [1, 1, 0, 0, 0])
    # Top-p: the smallest set of most probable tokens with mass >= p.
    np.testing.assert_array_equal(kept(temperature=1.0, top_k=0, top_p=0.5), [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(kept(temperature=1.0, top_k=0, top_p=0.7), [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(kept(temperature=1.0, top_k=0, top_p=0.71), [1, 1, 1, 0, 0])
    scaled = np.asarray(tm.filter_logits(logits, temperature=0.5, top_k=0, top_p=1.0))
    np.testing.assert_allclose(scaled, 2 * np.asarray(logits), rtol=1e-6)


@pytest.mark.parametrize(
    ("top_k", "top_p", "temperature"), [(0, 1.0, 1.0), (3, 1.0, 0.7), (0, 0.8, 1.3)]
)
def test_sampled_token_frequencies_match_the_filtered_law(top_k: int, top_p: float,
                                                           temperature: float) -> None:  # fmt: skip
    model = _model(seed=2)
    n = 20_000
    prompt = np.random.default_rng(2).integers(0, 11, (1, 6))
    keys = jax.random.split(jax.random.key(9), n)
    tokens = tm.generate(model, np.repeat(prompt, n, axis=0), keys, 1, temperature=temperature,
                         top_k=top_k, top_p=top_p)  # fmt: skip
    logits, _ = model(jnp.asarray(prompt))
    p = np.asarray(jax.nn.softmax(tm.filter_logits(logits[:, -1], temperature, top_k, top_p)))[0]
    counts = np.bincount(tokens[:, 0], minlength=11)
    assert np.all(counts[p == 0] == 0)
    z = (counts - n * p) / np.sqrt(n * p * (1 - p) + 1e-12)
    assert np.abs(z[p > 0]).max() < 4.5, (counts, n * p)


def test_lm_loss_is_the_continuations_mean_nll() -> None:
    model = _model()
    seqs = np.random.default_rng(4).integers(0, 11, (3, 12))
    logits, _ = model(jnp.asarray(seqs[:, :-1]))
    logp = np.asarray(jax.nn.log_softmax(logits, axis=-1))
    expect = -np.mean([[logp[r, i - 1, seqs[r, i]] for i in range(6, 12)] for r in range(3)], 1)
    np.testing.assert_allclose(np.asarray(tm.lm_loss(model, jnp.asarray(seqs), None)), expect,
                               rtol=1e-5)  # fmt: skip
    np.testing.assert_allclose(tm.nll(model, seqs, chunk=2).mean(axis=1), expect, rtol=1e-5)


# --- text: the true language and the tokenizers ----------------------------------------


def test_true_language_is_stationary_and_scores_its_own_law() -> None:
    lang = textlib.MarkovLanguage("abcd", order=2, exponent=1.0, seed=1)
    flow = np.zeros(lang.contexts)
    np.add.at(flow, lang.next_context.reshape(-1), (lang.stationary[:, None] * lang.probs).ravel())
    np.testing.assert_allclose(flow, lang.stationary, atol=1e-12)
    tok = textlib.Tokenizer.train("chars", "abcd")
    seq = tok.encode("abcadbca")[None]  # B = 4: scores "dbca" after "ab ca"
    lp = lang.target_logp(seq, tok.symbols(lang.alphabet))[0]
    idx = {c: i for i, c in enumerate("abcd")}
    text = "abcadbca"
    want = [np.log(lang.probs[idx[text[i - 2]] * 4 + idx[text[i - 1]], idx[text[i]]])
            for i in range(4, 8)]  # fmt: skip
    np.testing.assert_allclose(lp, want)


def test_perplexity_of_the_true_law_equals_the_exact_value() -> None:
    """A model that knows the zipf language's law scores held-out text at exp(H)."""
    corpus = textlib.load("zipf", seed=11)
    tok = textlib.Tokenizer.train("chars", corpus.text)
    b = 64
    ids = tok.encode(corpus.text)
    rows = ids[: len(ids) // (2 * b) * 2 * b].reshape(-1, 2 * b)
    nll = -textlib.ZIPF.target_logp(rows, tok.symbols(textlib.ZIPF.alphabet))
    per_row = nll.mean(axis=1)  # rows 2B apart: nearly independent for an order-2 chain
    z = (per_row.mean() - textlib.ZIPF.entropy_rate) / (
        per_row.std(ddof=1) / math.sqrt(len(per_row))
    )
    assert abs(z) < 4, z
    ppl = math.exp(per_row.mean())
    assert ppl == pytest.approx(math.exp(textlib.ZIPF.entropy_rate), rel=0.01)


def test_bpe_and_bytes_round_trip() -> None:
    text = "the theme of these theses: aaaaa bbb — naïve café\n" * 20
    bpe = textlib.Tokenizer.train("bpe", text, 40)
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text
    assert len(ids) < len(text) / 2
    assert bpe.vocab == len(set(text)) + len(bpe.merges)
    again = textlib.Tokenizer.from_dict(json.loads(json.dumps(bpe.to_dict())))
    np.testing.assert_array_equal(again.encode(text), ids)
    raw = textlib.Tokenizer.train("bytes", text)
    assert raw.vocab == 256
    assert raw.decode(raw.encode(text)) == text
    with pytest.raises(textlib.TextDataError, match="not in the tokenizer"):
        textlib.Tokenizer.train("chars", "abc").encode("abd")


def test_merge_takes_overlapping_pairs_left_to_right() -> None:
    out = textlib._merge(np.array([1, 1, 1, 1, 1, 2, 1, 1]), 1, 1, 9)
    np.testing.assert_array_equal(out, [9, 9, 1, 2, 9])


def test_text_metrics() -> None:
    assert textlib.word_ngrams(["a b a b", "a c"], 2) == (3, 4)
    assert textlib.char_ngram_support(["abab"], 2) == 2
    assert textlib.repeat_rate(["abcd", "aaaaa"], 2) == pytest.approx((0 + 3 / 4) / 2)


# --- the recursive experiment -----------------------------------------------------------


def test_training_sets_follow_the_regime() -> None:
    cfg = lm.LmConfig(**{**TINY, "regime": "keep-original", "keep_fraction": 0.25})
    data = lm._prepare(cfg)
    n = len(data.real)
    syn = [
        np.full((neural.synthetic_count(cfg, n), 2 * cfg.block), 100 + t, np.int32)
        for t in range(3)
    ]
    assert len(syn[0]) == n - 30
    for t in (1, 2):
        train = neural.training_set(cfg, t, data.real, syn, data.pool)
        assert len(train) == n
        assert (train[30:] == 100 + t - 1).all()
        assert {r.tobytes() for r in train[:30]} <= {r.tobytes() for r in data.real}
    acc = lm.LmConfig(**{**TINY, "regime": "accumulate"})
    assert (
        len(neural.training_set(acc, 2, data.real, [np.zeros((n, 16), np.int32)] * 2, data.pool))
        == 3 * n
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[lm.LmResult, Path]:
    out = tmp_path_factory.mktemp("lm") / "run"
    return lm.run(lm.LmConfig(**TINY), out=out), out


def test_tiny_two_generation_run(tiny_run: tuple[lm.LmResult, Path]) -> None:
    res, out = tiny_run
    for m in lm.METRICS:
        assert res.metrics[m].shape == (2,)
    assert all(np.isfinite(res.metrics[m]).all() for m in lm.METRICS)
    assert res.metrics["train_size"].tolist() == [120, 120]
    assert (res.metrics["true_kl"] > 0).all()  # no trained model beats the truth
    assert [len(p) for p in res.perplexities] == [120, 120]
    assert res.summary["true_entropy_rate"] == pytest.approx(textlib.ZIPF.entropy_rate)
    assert len(res.summary["continuations"]) == 2
    for name in ("metrics.parquet", "perplexities.parquet", "samples.txt", "summary.json",
                 "generations/gen_000.npz", "generations/gen_001.npz"):  # fmt: skip
        assert (out / name).is_file(), name
    assert "generation 1:" in (out / "samples.txt").read_text()
    back = lm.load(out)
    for m in lm.METRICS:
        np.testing.assert_array_equal(back.metrics[m], res.metrics[m])
    np.testing.assert_array_equal(back.perplexities[1], res.perplexities[1])
    assert back.texts == res.texts
    assert back.prompts == res.prompts


def test_a_generation_0_that_learnt_only_frequencies_is_warned(
    tiny_run: tuple[lm.LmResult, Path],
) -> None:
    res, _ = tiny_run
    s = res.summary
    # The unigram baseline: held-out continuations under add-one smoothed token counts (on
    # held-out text it can pass the vocabulary's size, a uniform guess: 17.008 against 17).
    assert 1 < s["unigram_ppl"] < 2 * s["vocab"]
    # One epoch of a one-layer model on 120 pairs learns less than the frequencies.
    assert s["first_real_ppl"] >= 0.9 * s["unigram_ppl"]
    [message] = s["warnings"]
    assert "learnt little beyond token frequencies" in message
    # The default run's generation 0 scores 4.39 (README); pydoc's unigram, 26.1 on 400 pairs.
    assert lm._untrained({"first_real_ppl": 4.39, "unigram_ppl": 26.1}) == []


def test_a_seed_fixes_the_run(tiny_run: tuple[lm.LmResult, Path]) -> None:
    res, _ = tiny_run
    again = lm.run(lm.LmConfig(**TINY))
    for m in lm.METRICS:
        np.testing.assert_array_equal(again.metrics[m], res.metrics[m])
    assert again.texts == res.texts
    other = lm.run(lm.LmConfig(**{**TINY, "seed": 1, "num_generations": 1}))
    assert other.metrics["real_ppl"][0] != res.metrics["real_ppl"][0]


def test_resume_after_a_kill_equals_an_uninterrupted_run(
    tiny_run: tuple[lm.LmResult, Path], tmp_path: Path
) -> None:
    res, ref_out = tiny_run
    out = tmp_path / "run"
    steps = lm.iterate(lm.LmConfig(**TINY), out=out)
    for p in steps:  # killed while training generation 1
        if p.generation == 1 and p.stage == "train":
            break
    steps.close()
    assert store.read_json(out / store.RUN_FILE)["status"] == "running"
    assert (out / "generations" / "gen_000.npz").is_file()  # generation 0 is kept
    assert not (out / "generations" / "gen_001.npz").exists()
    with pytest.raises(store.RunDirError):
        lm.run(lm.LmConfig(**TINY), out=out)  # no silent overwrite
    resumed = lm.run(lm.LmConfig(**TINY), out=out, resume=True)
    for m in lm.METRICS:
        np.testing.assert_array_equal(resumed.metrics[m], res.metrics[m])
    assert (out / "samples.txt").read_text() == (ref_out / "samples.txt").read_text()
    with (
        np.load(out / "generations/gen_001.npz") as a,
        np.load(ref_out / "generations/gen_001.npz") as b,
    ):
        np.testing.assert_array_equal(a["samples"], b["samples"])
    assert len(store.read_json(out / store.RUN_FILE)["resumed"]) == 1


def test_pydoc_corpus_and_bpe_tokenizer_run() -> None:
    cfg = lm.LmConfig(**{**TINY, "corpus": "pydoc", "tokenizer": "bpe", "bpe_merges": 64,
                         "num_generations": 1, "regime": "fresh"})  # fmt: skip
    res = lm.run(cfg)
    assert res.summary["vocab"] > 64
    assert res.summary["true_entropy_rate"] is None
    assert math.isnan(res.metrics["true_kl"][0])
    assert np.isfinite(res.metrics["real_ppl"][0])
    assert "Python" in textlib.load("pydoc").text


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"temperature": -1.0}, "temperature must be > 0"),
        ({"top_p": 0.0}, "top-p"),
        ({"top_k": -1}, "top-k"),
        ({"width": 10, "heads": 4}, "multiple of heads"),
        ({"tokenizer": "words"}, "unknown tokenizer"),
        ({"regime": "sometimes"}, "regime"),
    ],
)
def test_bad_config_is_a_config_error(change: dict[str, object], match: str) -> None:
    with pytest.raises((ConfigError, ValueError), match=match):
        lm.LmConfig(**{**TINY, **change})


def test_bad_corpora_are_one_line_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    short = tmp_path / "short.txt"
    short.write_text("far too short to cut into blocks " * 3)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"abc\xff\xfe")
    for path, match in [(empty, "holds no text"), (short, "too short"),
                        (binary, "not UTF-8"), (tmp_path / "none.txt", "neither")]:  # fmt: skip
        with pytest.raises(textlib.TextDataError, match=match):
            lm.run(lm.LmConfig(**{**TINY, "corpus": str(path)}))
    with pytest.raises(ConfigError, match="exceeds"):
        lm.run(lm.LmConfig(**{**TINY, "train_size": 10**6}))


runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--temperature", "0"], "temperature must be > 0"),
        (["--corpus", "EMPTY"], "holds no text"),
        (["--preset", "nature-5"], "unknown preset"),
        (["--resume"], "--resume needs --out"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(args: list[str], match: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    args = [str(empty) if a == "EMPTY" else a for a in args]
    res = runner.invoke(
        app, ["lm", "--corpus", "zipf", *args] if "--corpus" not in args else ["lm", *args]
    )
    assert res.exit_code == 2, res.output
    assert match in res.output
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_cli_runs_the_nature_preset_and_plots(tmp_path: Path) -> None:
    out, png = tmp_path / "run", tmp_path / "lm.png"
    args = ["lm", "--corpus", "zipf", "--generations", "2", "--train-size", "120", "--block", "8",
            "--width", "16", "--heads", "2", "--layers", "1", "--epochs", "1",
            "--preset", "nature-10", "--out", str(out), "--plot", str(png), "--json"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)  # stderr may hold a warning (an untrained generation 0)
    assert summary["regime"] == "keep-original"
    assert len(summary["continuations"]) == 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cfg = common.read_meta(out)["config"]
    assert cfg["keep_fraction"] == 0.1
    assert cfg["regime"] == "keep-original"
    assert store.read_parquet(out / "metrics.parquet")["train_size"].tolist() == [120, 120]
    again = runner.invoke(app, [*args[:-5], "--out", str(out)])
    assert again.exit_code == 2
    assert "--resume" in again.output


def test_curation_keeps_the_continuations_generation_0_finds_likeliest(tmp_path: Path) -> None:
    base = lm.run(lm.LmConfig(**TINY))  # type: ignore[arg-type]
    cfg = lm.LmConfig(**TINY, select="top", select_strength=0.25)  # type: ignore[arg-type]
    res = lm.run(cfg, out=tmp_path / "c")
    assert res.metrics["candidates"].tolist() == [4.0, 4.0]
    assert res.summary["mean_candidates"] == 4.0
    # The kept quarter is the least surprising to model 0 (the same model 0: generation
    # 0 trains on the same real text with the same keys).
    assert np.median(res.perplexities[0]) < np.median(base.perplexities[0])
    loaded = lm.load(tmp_path / "c")
    np.testing.assert_array_equal(loaded.metrics["candidates"], res.metrics["candidates"])
    with pytest.raises(ConfigError, match="perplexity"):
        lm.LmConfig(select="interval")
    best = lm.run(lm.LmConfig(**TINY, best_of=3))  # type: ignore[arg-type]
    assert best.metrics["candidates"].tolist() == [3.0, 3.0]
    # Luce's choice by likelihood under model 0 favours its likeliest continuations.
    assert np.median(best.perplexities[0]) < np.median(base.perplexities[0])
