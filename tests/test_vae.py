"""The recursive VAE: image metrics, data loading, regimes, reproducibility, resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from collapsesim import images, metrics, store
from collapsesim.cli import app
from collapsesim.config import ConfigError
from collapsesim.experiments import _common
from collapsesim.experiments import _neural as neural
from collapsesim.experiments import vae as runner

cli = CliRunner()

TINY = {
    "data": "digits",
    "num_generations": 2,
    "latent": 4,
    "widths": (4, 8),
    "epochs": 2,
    "batch_size": 64,
    "classifier_epochs": 3,
    "train_size": 600,
}


def test_frechet_distance_zero_on_itself_small_between_samples_large_shifted() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 5))
    b = rng.normal(size=(4000, 5))
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    same = metrics.frechet_distance(a, b)
    assert same < 0.05  # sampling noise only: about d(d+1)/N
    # Exact values: a shift by 1 in every coordinate adds d = 5; doubling the spread
    # adds tr(C) (the trace term is tr(C + 4C - 2 * 2C)) plus the squared mean.
    assert metrics.frechet_distance(a, a + 1.0) == pytest.approx(5.0, rel=1e-9)
    expected = np.trace(np.cov(a, rowvar=False)) + np.sum(a.mean(0) ** 2)
    assert metrics.frechet_distance(a, 2.0 * a) == pytest.approx(expected, rel=1e-9)


def test_precision_recall_of_a_set_against_itself_and_a_distant_one() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 4))
    assert metrics.precision_recall(a, a) == (1.0, 1.0)
    far = a + 100.0
    assert metrics.precision_recall(a, far) == (0.0, 0.0)
    # Samples from a narrower distribution: precise but missing the tails.
    narrow = 0.3 * rng.normal(size=(500, 4))
    p, r = metrics.precision_recall(a, narrow)
    assert p > 0.9
    assert r < 0.6
    with pytest.raises(ValueError, match="more than k"):
        metrics.precision_recall(a[:3], a)


def test_builtin_datasets_and_split() -> None:
    mn = images.load("mnist")
    assert mn.images.shape == (5000, 28, 28)
    assert mn.images.dtype == np.float32
    assert 0.0 <= mn.images.min() < mn.images.max() <= 1.0
    assert np.bincount(mn.labels).tolist() == [500] * 10
    train, test = images.split(mn)
    assert len(test) == 1000
    assert np.bincount(mn.labels[test]).tolist() == [100] * 10
    assert not set(train) & set(test)
    dg = images.load("digits")
    assert dg.images.shape == (1797, 8, 8)


def test_classifier_features_real_against_real_and_noise() -> None:
    from flax import nnx

    from collapsesim.models import vae as models

    data = images.load("digits")
    train, test = images.split(data)
    clf = models.Classifier((8, 8), 10, rngs=nnx.Rngs(0))
    models.fit(clf, (data.images[train], data.labels[train]), neural.run_key(0, 0),
               loss=models.classifier_loss, epochs=8, batch=64, lr=2e-3)  # fmt: skip
    accuracy = np.mean(models.predict(clf, data.images[test]) == data.labels[test])
    assert accuracy > 0.8
    f_test = models.features(clf, data.images[test])
    f_train = models.features(clf, data.images[train][: len(test)])
    noise = np.random.default_rng(0).uniform(size=(len(test), 8, 8)).astype(np.float32)
    f_noise = models.features(clf, noise)
    real = metrics.frechet_distance(f_test, f_train)
    assert metrics.frechet_distance(f_test, f_noise) > 10 * real
    p, r = metrics.precision_recall(f_test, f_test)
    assert (p, r) == (1.0, 1.0)
    # Held-out against training digits: k-NN recall over six classifier keys measured
    # 0.79-0.82 (precision 0.95-0.96), so 0.75 leaves room below them.
    p, r = metrics.precision_recall(f_test, f_train)
    assert p > 0.8
    assert r > 0.75


def test_regimes_build_the_training_sets() -> None:
    real = np.arange(100, dtype=np.uint8).reshape(100, 1, 1)
    pool = np.arange(100, 200, dtype=np.uint8).reshape(100, 1, 1)
    s0 = np.full((100, 1, 1), 250, np.uint8)
    s1 = np.full((100, 1, 1), 251, np.uint8)

    def build(regime: str, t: int, samples: list[np.ndarray]) -> np.ndarray:
        cfg = runner.VaeConfig(regime=regime, fresh_fraction=0.2, keep_fraction=0.1)
        return neural.training_set(cfg, t, real, samples, pool)

    assert build("replace", 0, []) is real
    assert (build("replace", 2, [s0, s1]) == 251).all()
    acc = build("accumulate", 2, [s0, s1])
    assert len(acc) == 300
    assert (np.sort(acc.ravel()) == np.sort(np.concatenate([real, s0, s1]).ravel())).all()
    sub = build("accumulate-subsample", 2, [s0, s1])
    assert len(sub) == 100
    # Drawn without replacement from all three parts, about a third from each.
    assert len(np.unique(sub[sub < 100])) == (sub < 100).sum()
    for part in ((sub < 100), (sub == 250), (sub == 251)):
        assert 15 < part.sum() < 55
    fresh = build("fresh", 1, [s0[:80]])
    assert len(fresh) == 100
    assert ((fresh >= 100) & (fresh < 200)).sum() == 20
    keep1 = build("keep-original", 1, [s0[:90]])
    keep2 = build("keep-original", 2, [s0[:90], s1[:90]])
    assert (keep1[:10] == keep2[:10]).all()  # the same kept originals every generation
    assert (keep1[:10] < 100).all()
    assert neural.synthetic_count(runner.VaeConfig(regime="fresh", fresh_fraction=0.2), 100) == 80


def test_tiny_run_reproducible_and_stored(tmp_path: Path) -> None:
    cfg = runner.VaeConfig(**TINY)  # type: ignore[arg-type]
    a = runner.run(cfg, out=tmp_path / "a")
    b = runner.run(cfg)
    for m in runner.METRICS:
        np.testing.assert_array_equal(a.metrics[m], b.metrics[m], err_msg=m)
    np.testing.assert_array_equal(a.grids, b.grids)
    assert np.isfinite(a.metrics["fid"]).all()
    assert a.metrics["train_size"].tolist() == [600.0, 600.0]
    assert a.classes.sum(axis=1).tolist() == [600, 600]
    assert a.summary["real_latent_spread"] is not None
    out = tmp_path / "a"
    for name in ("metrics.parquet", "classes.parquet", "summary.json", "classifier.npz",
                 "generations/gen_000.npz", "generations/gen_001.npz", "samples/gen_001.png"):  # fmt: skip
        assert (out / name).is_file(), name
    cols = store.read_parquet(out / "metrics.parquet")
    np.testing.assert_array_equal(cols["fid"], a.metrics["fid"])
    again = runner.run(cfg, out=out, resume=True)  # complete: loaded, not rerun
    np.testing.assert_array_equal(again.metrics["fid"], a.metrics["fid"])
    np.testing.assert_array_equal(again.grids, a.grids)


@pytest.mark.parametrize(("regime", "warm"), [("replace", False), ("accumulate", False),
                                             ("fresh", True)])  # fmt: skip
def test_resume_after_a_kill_equals_uninterrupted(tmp_path: Path, regime: str, warm: bool) -> None:
    cfg = runner.VaeConfig(**{**TINY, "num_generations": 3, "regime": regime, "warm_start": warm})  # type: ignore[arg-type]
    steps = runner.iterate(cfg, out=tmp_path / "killed")
    for p in steps:
        if p.generation == 2:  # generations 0 and 1 are stored; 2 is in progress
            break
    steps.close()
    assert (tmp_path / "killed" / "generations" / "gen_001.npz").is_file()
    assert not (tmp_path / "killed" / "generations" / "gen_002.npz").exists()
    resumed = _common.drain(runner.iterate(cfg, out=tmp_path / "killed", resume=True))
    whole = runner.run(cfg, out=tmp_path / "whole")
    for m in runner.METRICS:
        np.testing.assert_array_equal(resumed.metrics[m], whole.metrics[m], err_msg=m)
    meta = store.read_json(tmp_path / "killed" / "run.json")
    assert len(meta["resumed"]) == 1


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"not a zip at all") and p, "not a readable .npz"),
        (
            lambda p: _npz(p, images=np.zeros((30, 10, 10), np.uint8), labels=np.zeros(30, int)),
            "multiples of 4",
        ),
        (
            lambda p: _npz(p, images=np.zeros((30, 8, 8, 3), np.uint8), labels=np.zeros(30, int)),
            "greyscale",
        ),
        (lambda p: _npz(p, images=np.zeros((30, 8, 8), np.uint8)), "'images' and 'labels'"),
        (
            lambda p: _npz(p, images=np.full((30, 8, 8), 2.0), labels=np.zeros(30, int)),
            "lie in [0, 1]",
        ),
    ],
)
def test_cli_bad_data(tmp_path: Path, make: object, message: str) -> None:
    path = tmp_path / "bad.npz"
    make(path)  # type: ignore[operator]
    res = cli.invoke(app, ["vae", "--data", str(path), "--generations", "1"])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--generations", "0"], "generations must lie in [1, 10000], got 0"),
        (["--data", "cifar"], "unknown dataset 'cifar'"),
        (["--widths", "8"], "--widths takes two integers"),
        (["--pixels", "median"], "unknown pixels"),
        (["--regime", "keep-original", "--keep-fraction", "1.5"], "keep fraction"),
        (["--resume"], "--resume needs --out"),
    ],
)
def test_cli_bad_options(args: list[str], message: str) -> None:
    res = cli.invoke(app, ["vae", *args])
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_cli_json_table_plot_and_own_npz(tmp_path: Path) -> None:
    data = images.load("digits")
    own = _npz(tmp_path / "own.npz", images=np.round(data.images[:400] * 255).astype(np.uint8),
               labels=data.labels[:400])  # fmt: skip
    tiny = ["--latent", "4", "--widths", "4,8", "--epochs", "1", "--generations", "2"]
    res = cli.invoke(app, ["vae", "--data", str(own), *tiny, "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["train_images"] == len(images.split(images.load(str(own)))[0])
    assert 300 < s["train_images"] < 340  # a fifth held out
    assert s["data_source"] == str(own)
    assert isinstance(s["warnings"], list)
    res = cli.invoke(app, ["vae", "--data", "digits", *tiny, "--train-size", "300",
                           "--plot", str(tmp_path / "v.png"), "--out", str(tmp_path / "run")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "H(class)" in res.output
    assert (tmp_path / "v.png").stat().st_size > 10_000
    with pytest.raises(ConfigError, match="exceeds"):
        runner.run(runner.VaeConfig(**{**TINY, "train_size": 5000}))  # type: ignore[arg-type]


def test_a_generation_0_that_never_learnt_is_warned() -> None:
    from collapsesim.experiments.vae import _untrained

    # Measured on MNIST: 1 epoch gives generation 0 a recall of 0 (real 0.92), 7 give 0.62.
    [message] = _untrained({"first_recall": 0.0, "real_recall": 0.917, "epochs": 1})
    assert "never learnt" in message
    assert "--epochs, now 1" in message
    assert _untrained({"first_recall": 0.62, "real_recall": 0.917, "epochs": 7}) == []
    assert _untrained({"first_recall": None, "real_recall": 0.917, "epochs": 7}) == []


def test_curation_keeps_the_confident_images_and_scales_the_latent(tmp_path: Path) -> None:
    from flax import nnx

    from collapsesim.models import vae as models

    model = models.VAE((8, 8), 4, (4, 8), rngs=nnx.Rngs(0))
    key = neural.generation_key(0, 0, neural.SAMPLE)
    plain = models.sample(model, key, 50)
    np.testing.assert_array_equal(models.sample(model, key, 50, scale=1.0), plain)
    flat = models.sample(model, key, 50, scale=0.0)  # every latent at the prior's mean
    assert (flat == flat[0]).all()
    assert not (plain == plain[0]).all()
    cfg = runner.VaeConfig(**TINY, select="top", select_strength=0.5, sampling_bias=0.8)  # type: ignore[arg-type]
    res = runner.run(cfg, out=tmp_path / "c")
    assert res.metrics["candidates"].tolist() == [2.0, 2.0]
    assert res.summary["curation"]["select"] == "top"
    assert res.summary["mean_candidates"] == 2.0
    loaded = runner.load(tmp_path / "c")
    np.testing.assert_array_equal(loaded.metrics["candidates"], res.metrics["candidates"])
    with pytest.raises(ConfigError, match="confidence"):
        runner.VaeConfig(select="soft")
    best = runner.run(runner.VaeConfig(**TINY, best_of=3))  # type: ignore[arg-type]
    assert best.metrics["candidates"].tolist() == [3.0, 3.0]
    assert best.summary["curation"]["best_of"] == 3
