"""A VAE trained generation after generation on its own samples (Shumailov et al., 2024).

Generation 0 trains on real images. Generation t's training set is built from model
t-1's samples (prior draw, decoder, mean or sampled pixels, rounded to 8 bits) under
the data regime, with as many images as the real training set; each generation
trains a fresh model (or, with ``warm_start``, continues from the last one).

Every generation is measured against held-out real images in the feature space of a
small classifier trained once on the real training images: Frechet distance,
precision and recall (k-NN manifolds), the class histogram of the samples and its
entropy, and the spread of generation 0's encoder means over the samples (the
Nature paper's measure).

With ``out`` each generation's parameters and samples are stored as it ends
(``generations/gen_NNN.npz``), with the metrics so far, so a killed run resumes at
the generation in progress. :func:`iterate` yields :class:`VaeProgress` after every
epoch; :func:`run` drains it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import images as image_data
from .. import metrics, store
from ..config import ConfigError
from ..curation import candidates_of_top
from ..families.vae import VaeConfig
from ..results import Columns, NeuralResult
from . import _common as common
from . import _driver as driver
from . import _neural as neural

__all__ = ["METRICS", "VaeConfig", "VaeProgress", "VaeResult", "iterate", "load", "run"]

METRICS = (
    "fid",
    "precision",
    "recall",
    "class_entropy",
    "top_class_share",
    "latent_spread",
    "train_loss",
    "train_size",
)
"""Per-generation metrics, in the order of ``metrics.parquet``'s columns."""

_EVAL = 1000  # generated images compared with the held-out set (at most)
_CLASSIFIER_INIT, _CLASSIFIER_TRAIN = 0, 1  # run-wide keys (neural.run_key)


@dataclass(frozen=True)
class VaeProgress:
    """Where a running VAE experiment stands (after an epoch)."""

    generation: int
    generations: int
    epoch: int
    epochs: int
    loss: float


@dataclass
class VaeResult(NeuralResult):
    """Per-generation metrics, class histograms, samples for pictures, and a summary.

    A :class:`~collapsesim.results.NeuralResult`: ``aggregates``, ``trajectories`` and
    ``final`` are ``metrics`` as one chain. Its stored tables are ``metrics`` and
    ``classes`` (generation, class, count, share).
    """

    family: ClassVar[str] = "vae"
    config: VaeConfig
    metrics: dict[str, np.ndarray]  # METRICS -> (T,)
    classes: np.ndarray  # (T, classes) counts over each generation's samples
    reference: dict[str, float]  # the same metrics for the real training images
    grids: np.ndarray  # (T, 16, H, W) uint8: the first 16 samples of each generation
    summary: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def _stored(self) -> dict[str, Callable[[], Columns]]:
        return {**super()._stored(), "classes": self._class_table}

    def _class_table(self) -> Columns:
        """Long table of each generation's class histogram."""
        t, k = self.classes.shape
        counts = self.classes.reshape(-1)
        totals = np.repeat(self.classes.sum(axis=1), k)
        return {
            "generation": np.repeat(np.arange(t, dtype=np.int64), k),
            "class": np.tile(np.arange(k, dtype=np.int64), t),
            "count": counts,
            "share": counts / np.maximum(totals, 1),
        }


def _as_float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255.0


class _Judge:
    """The fixed yardsticks: classifier features of the held-out images, encoder 0."""

    def __init__(self, classifier: Any, test: np.ndarray, classes: int) -> None:
        from ..models import vae as models

        self.models = models
        self.classifier = classifier
        self.classes = classes
        self.test_features = models.features(classifier, test)
        self.encoder0: Any = None

    def measure(self, imgs: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        """Metrics of a set of images (uint8) and its class histogram."""
        x = _as_float(imgs)
        # A fixed random subset: real training images come sorted by class.
        pick = np.sort(np.random.default_rng(0).permutation(len(x))[:_EVAL])
        feats = self.models.features(self.classifier, x[pick])
        precision, recall = metrics.precision_recall(self.test_features, feats)
        counts = np.bincount(self.models.predict(self.classifier, x), minlength=self.classes)
        p = counts / counts.sum()
        out = {
            "fid": metrics.frechet_distance(self.test_features, feats),
            "precision": precision,
            "recall": recall,
            "class_entropy": float(-np.sum(p[p > 0] * np.log(p[p > 0]))),
            "top_class_share": float(p.max()),
            "latent_spread": math.nan,
        }
        if self.encoder0 is not None:
            means = self.models.encode_means(self.encoder0, x)
            out["latent_spread"] = float(np.sqrt(np.mean(np.var(means, axis=0))))
        return out, counts


def _grid_png(path: Path, imgs: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plots import write_figure

    k = math.ceil(math.sqrt(len(imgs)))
    h, w = imgs.shape[1:]
    canvas = np.full((k * (h + 1) + 1, k * (w + 1) + 1), 255, np.uint8)
    for i, im in enumerate(imgs):
        r, c = divmod(i, k)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = im
    fig, ax = plt.subplots(figsize=(4, 4.3))
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    write_figure(fig, path)


def iterate(
    cfg: VaeConfig, *, out: Path | None = None, resume: bool = False
) -> Generator[VaeProgress, None, VaeResult]:
    """Run the recursive VAE experiment, yielding progress after every epoch.

    Raises:
        ConfigError: a bad configuration.
        images.ImageDataError: the dataset cannot be read or used.
        store.RunDirError: ``out`` cannot take this run, or a resumed one is damaged.
    """
    return driver.run_plan(
        cfg, lambda: neural.as_plan(_plan(cfg)), load, out=out, resume=resume,
        checkpoint_seconds=0.0,
    )  # fmt: skip


def _data(cfg: VaeConfig) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(dataset, real training pool, chosen real images, their labels, held-out images)``."""
    data = image_data.load(cfg.data)
    train_idx, test_idx = image_data.split(data)
    if cfg.train_size > len(train_idx):
        raise ConfigError(
            f"train size {cfg.train_size} exceeds the {len(train_idx)} real training images"
        )
    pool = np.round(data.images[train_idx] * 255).astype(np.uint8)
    chosen = (
        np.sort(np.random.default_rng([cfg.seed, 9]).choice(len(pool), cfg.train_size, False))
        if cfg.train_size
        else np.arange(len(pool))
    )
    test = data.images[test_idx]
    if len(chosen) <= 3 or len(test) <= 3:
        raise ConfigError("too few images: need more than 3 for training and held out")
    return data, pool, pool[chosen], data.labels[train_idx][chosen], test_idx


def _classifier(cfg: VaeConfig, data: Any, real: np.ndarray, labels: np.ndarray,
                out: Path | None) -> Any:  # fmt: skip
    """The classifier whose features every metric uses: trained once on the real images."""
    from flax import nnx

    from ..models import vae as models

    shape = (int(data.images.shape[1]), int(data.images.shape[2]))
    rngs = nnx.Rngs(neural.run_key(cfg.seed, _CLASSIFIER_INIT))
    classifier = models.Classifier(shape, data.num_classes, rngs=rngs)
    ck = out / "classifier.npz" if out is not None else None
    if ck is not None and ck.is_file():
        with np.load(ck) as z:
            models.set_params(classifier, {k: z[k] for k in z.files})
        return classifier
    models.fit(classifier, (_as_float(real), labels), neural.run_key(cfg.seed, _CLASSIFIER_TRAIN),
               loss=models.classifier_loss, epochs=cfg.classifier_epochs, batch=128,
               lr=1e-3)  # fmt: skip
    if ck is not None:
        params: dict[str, Any] = dict(models.get_params(classifier))

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **params)

        store.atomic_write(ck, write)
    return classifier


def _plan(cfg: VaeConfig) -> neural.NeuralPlan:
    """The neural plan of a VAE run (see :class:`_Run`)."""
    run = _Run(cfg)
    return neural.NeuralPlan(
        family="vae",
        meta={"data_source": run.data.source},
        logs=("rows", "class_rows"),
        stored=("samples",),
        setup=run.setup,
        restore=run.restore,
        generation=run.generation,
        finish=run.finish,
        report=lambda t: VaeProgress(t, cfg.num_generations, 0, cfg.epochs, math.nan),
        save=common.save_result,
    )


class _Run:
    """A VAE run's images, its generations' samples, its judge and the models it reads."""

    def __init__(self, cfg: VaeConfig) -> None:
        self.cfg = cfg
        self.data, self.pool, self.real, self.real_labels, self.test_idx = _data(cfg)
        self.shape = (int(self.data.images.shape[1]), int(self.data.images.shape[2]))
        self.samples: list[np.ndarray] = []
        self.model: Any = None  # the newest model (a warm start continues from it)
        self.judge: Any = None
        self.accuracy = 0.0
        self.reference: dict[str, float] = {}
        self.real_counts = np.zeros(0, np.int64)

    def new_model(self, t: int) -> Any:
        from flax import nnx

        from ..models import vae as models

        rngs = nnx.Rngs(neural.generation_key(self.cfg.seed, t, neural.INIT))
        return models.VAE(self.shape, self.cfg.latent, self.cfg.widths, rngs=rngs)

    def setup(self, out: Path | None) -> None:
        """Train (or read back from ``out``) the classifier every metric uses."""
        from ..models import vae as models

        data, test_idx = self.data, self.test_idx
        classifier = _classifier(self.cfg, data, self.real, self.real_labels, out)
        test = data.images[test_idx]
        self.accuracy = float(np.mean(models.predict(classifier, test) == data.labels[test_idx]))
        self.judge = _Judge(classifier, test, data.num_classes)

    def model_zero(self, model: Any) -> None:
        """Generation 0's model: its encoder is the yardstick of every later generation."""
        self.judge.encoder0 = model
        self.reference, self.real_counts = self.judge.measure(self.real)

    def restore(
        self, t: int, params: dict[str, np.ndarray], arrays: list[np.ndarray], last: bool
    ) -> None:
        from flax import nnx

        from ..models import vae as models

        self.samples.append(arrays[0])
        if t == 0 or (last and self.cfg.warm_start):  # the only models a resumed run reads
            m = models.VAE(self.shape, self.cfg.latent, self.cfg.widths, rngs=nnx.Rngs(0))
            models.set_params(m, params)
            if t == 0:
                self.model_zero(m)
            self.model = m

    def generation(self, t: int) -> Generator[VaeProgress, None, neural.Trained]:
        """Train generation t, sample from it, and measure the samples."""
        from ..models import vae as models

        cfg = self.cfg
        train = neural.training_set(cfg, t, self.real, self.samples, self.pool)
        model = self.new_model(t)
        losses = yield from neural.train(
            model, self.model, (_as_float(train),),
            neural.generation_key(cfg.seed, t, neural.TRAIN), warm_start=cfg.warm_start,
            epochs=cfg.epochs, loss=models.elbo, batch=cfg.batch_size, lr=cfg.learning_rate,
            progress=lambda e, loss: VaeProgress(t, cfg.num_generations, e, cfg.epochs, loss),
        )  # fmt: skip
        self.model = model
        if t == 0:
            self.model_zero(model)
        s, cost = self._synthetic(model, t)
        self.samples.append(s)
        row, counts = self.judge.measure(s)
        row |= {"train_loss": losses[-1], "train_size": float(len(train))}
        if cfg.curation.active:
            row["candidates"] = cost

        def write(out: Path) -> None:
            (out / "samples").mkdir(exist_ok=True)
            _grid_png(out / "samples" / f"gen_{t:03d}.png", s[:64], f"generation {t}")

        return neural.Trained(
            logs={"rows": row, "class_rows": counts.tolist()},
            params=models.get_params(model),
            arrays={"samples": s, "losses": np.array(losses)},
            write=write,
        )

    def _synthetic(self, model: Any, t: int) -> tuple[np.ndarray, float]:
        """Model t's images for the next training set, curated (every one is synthetic:
        model 0 is already fitted to the real images), and the candidates per kept image.

        ``--select top`` keeps, of ``ceil(n / X)`` images, the n whose predicted class the
        classifier is most sure of (ties in the order drawn); ``--best-of K`` keeps one of
        every K with probability proportional to that confidence (the reward is its log).
        """
        from ..models import vae as models

        cfg, cur = self.cfg, self.cfg.curation
        count = neural.synthetic_count(cfg, len(self.real))
        big = count * cur.best_of
        if cur.select == "top":
            big = candidates_of_top(count, cur.select_strength)
        s = models.sample(model, neural.generation_key(cfg.seed, t, neural.SAMPLE), big,
                          mean_pixels=cfg.pixels == "mean", scale=cur.sampling_bias)  # fmt: skip
        if big > count:
            sure = models.confidence(self.judge.classifier, _as_float(s))
            if cur.best_of > 1:
                pick = neural.luce_picks(np.log(sure).reshape(count, cur.best_of), cfg.seed, t)
                s = s.reshape(count, cur.best_of, *s.shape[1:])[np.arange(count), pick]
            else:
                s = s[neural.top_rows(sure, count)]
        return s, big / count if count else 1.0

    def finish(self, logs: dict[str, list[Any]]) -> VaeResult:
        grids = np.array([x[:16] for x in self.samples])
        class_rows = [np.asarray(c) for c in logs["class_rows"]]
        return _finish(self.cfg, logs["rows"], class_rows, self.reference, self.real_counts,
                       grids, self.accuracy, self.data.source)  # fmt: skip


def _finish(
    cfg: VaeConfig,
    rows: list[dict[str, float]],
    class_rows: list[np.ndarray],
    reference: dict[str, float],
    real_counts: np.ndarray,
    grids: np.ndarray,
    accuracy: float,
    source: str,
) -> VaeResult:
    cols = {
        m: np.array([r.get(m, math.nan) for r in rows], np.float64)
        for m in neural.metric_names(cfg, METRICS)
    }
    classes = np.array(class_rows, np.int64)
    s: dict[str, Any] = {
        "data": cfg.data,
        "data_source": source,
        "generations": cfg.num_generations,
        "regime": cfg.regime,
        "pixels": cfg.pixels,
        "latent": cfg.latent,
        "epochs": cfg.epochs,
        "train_images": int(cols["train_size"][0]),
        "seed": cfg.seed,
        "classifier_accuracy": accuracy,
    }
    for m in METRICS[:-1]:
        s[f"real_{m}"] = reference.get(m)
        s[f"first_{m}"] = float(cols[m][0])
        s[f"final_{m}"] = float(cols[m][-1])
    neural.summarize_curation(cfg, s, cols)
    real_share = real_counts / max(real_counts.sum(), 1)
    final_share = classes[-1] / max(classes[-1].sum(), 1)
    s["real_class_shares"] = real_share.tolist()
    s["final_class_shares"] = final_share.tolist()
    # Classes the real data has (>= 2% of it) that the last generation all but lost (< 1%).
    s["vanished_classes"] = [
        int(c) for c in np.flatnonzero((real_share >= 0.02) & (final_share < 0.01))
    ]
    s["warnings"] = _untrained(s)
    summary = {k: common.finite_or_none(v) for k, v in s.items()}
    return VaeResult(cfg, cols, classes, reference, grids, summary)


def _untrained(s: dict[str, Any]) -> list[str]:
    """A warning where generation 0 never learnt the real images.

    Its recall (the share of held-out real images whose neighbourhood its samples reach)
    below a quarter of the real images' own says its samples cover almost none of the
    data: a 1-epoch VAE on MNIST has recall 0 against 0.92, the default 7 epochs 0.62.
    What the later generations then lose (vanished classes, FID) says little about
    collapse.
    """
    first, real = s.get("first_recall"), s.get("real_recall")
    if first is None or real is None or not first < 0.25 * real:
        return []
    message = (
        f"generation 0 never learnt the images: its recall is {first:.2f} against the real "
        f"images' {real:.2f}, so its samples cover almost none of the data and what later "
        f"generations lose (vanished classes, FID) says little; train longer (--epochs, "
        f"now {s['epochs']})"
    )
    return [message]


def load(out: Path) -> VaeResult:
    """The result of a complete run stored in ``out``.

    Raises:
        store.RunDirError: the directory holds no complete VAE run.
    """
    out = Path(out)
    meta = common.read_meta(out)
    if meta.get("family") != "vae":
        raise store.RunDirError(f"{out} holds a run of another family, not a VAE run")
    cfg = VaeConfig.from_dict(meta["config"])
    summary = store.read_json(out / "summary.json")
    cols = store.read_parquet(out / "metrics.parquet", "SELECT * FROM t ORDER BY generation")
    grids = np.array(
        [neural.load_generation(out, t, "samples")[1][0][:16] for t in range(cfg.num_generations)]
    )
    reference = {m: summary.get(f"real_{m}") for m in METRICS[:-1]}
    result = VaeResult(
        cfg,
        {m: np.asarray(cols[m], np.float64) for m in neural.metric_names(cfg, METRICS)},
        np.array(meta["class_rows"], np.int64),
        {k: (math.nan if v is None else float(v)) for k, v in reference.items()},
        grids,
        summary,
        meta.get("timings", {}),
    )
    return result


def run(cfg: VaeConfig, **options: Any) -> VaeResult:
    """Run :func:`iterate` to the end and return its result."""
    return common.drain(iterate(cfg, **options))
