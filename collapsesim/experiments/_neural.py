"""What the neural families (VAE, transformer LM) share: data regimes over rows, keys,
per-generation checkpoint files.

A neural run keeps whole datasets, one per generation: arrays whose rows are examples
(images, or token pairs). Generation t's training set is built from the real rows and
the rows earlier models generated, under the data regime.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .. import distributed, store
from ..regimes import Regime, real_count


class RegimeSettings(Protocol):
    """The fields of a neural configuration that the regime reads."""

    @property
    def regime(self) -> str: ...
    @property
    def fresh_fraction(self) -> float: ...
    @property
    def keep_fraction(self) -> float: ...
    @property
    def seed(self) -> int: ...


def training_set(
    cfg: RegimeSettings, t: int, real: np.ndarray, samples: list[np.ndarray], pool: np.ndarray
) -> np.ndarray:
    """Generation t's training rows under the regime.

    ``real``: the run's real training rows; ``samples[s]``: the rows model s generated;
    ``pool``: every real training row there is (fresh draws come from it).
    """
    if t == 0:
        return real
    regime = Regime.parse(cfg.regime)
    n = len(real)
    rng = np.random.default_rng([cfg.seed, t, 7])
    if regime is Regime.REPLACE:
        return samples[t - 1]
    if regime is Regime.ACCUMULATE:
        return np.concatenate([real, *samples[:t]])
    if regime is Regime.ACCUMULATE_SUBSAMPLE:
        everything = np.concatenate([real, *samples[:t]])
        return everything[np.sort(rng.choice(len(everything), n, replace=False))]
    r = real_count(regime, n, cfg.fresh_fraction, cfg.keep_fraction)
    if regime is Regime.FRESH:  # r new real rows from the whole real training pool
        fresh = pool[np.sort(rng.choice(len(pool), r, replace=False))]
        return np.concatenate([fresh, samples[t - 1]])
    keep = np.random.default_rng([cfg.seed, 8]).permutation(n)[:r]  # fixed for the run
    return np.concatenate([real[np.sort(keep)], samples[t - 1]])


def synthetic_count(cfg: RegimeSettings, n: int) -> int:
    """Rows each model generates: the training set's size less its real share."""
    return n - real_count(Regime.parse(cfg.regime), n, cfg.fresh_fraction, cfg.keep_fraction)


# What a generation's key draws (see collapsesim.keys): a neural run is chain 0 of its seed,
# generation t's key is folded with one of these; draws that belong to the whole run (the
# VAE's feature classifier, the LM's shown prompts) come from the reserved chain RUN_CHAIN.
INIT, TRAIN, SAMPLE = 0, 1, 2
RUN_CHAIN = 2**64 - 1


def generation_key(seed: int, t: int, purpose: int) -> Any:
    """The JAX key of generation t's ``purpose`` (INIT, TRAIN or SAMPLE), for any 64-bit seed."""
    from .. import keys

    return keys.subkey(keys.generation_key(keys.chain_key(seed, 0), t), purpose)


def run_key(seed: int, purpose: int) -> Any:
    """The JAX key of a run-wide draw named by ``purpose``."""
    from .. import keys

    return keys.subkey(keys.chain_key(seed, RUN_CHAIN), purpose)


def save_generation(out: Path, t: int, params: dict[str, np.ndarray], **arrays: Any) -> None:
    """Write generation t's parameters and ``arrays`` to ``generations/gen_NNN.npz`` atomically."""
    (out / "generations").mkdir(exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            named: dict[str, Any] = {f"param:{k}": v for k, v in params.items()}
            np.savez(fh, **arrays, **named)

    store.atomic_write(out / "generations" / f"gen_{t:03d}.npz", write)


def load_generation(
    out: Path, t: int, *names: str
) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """Generation t's parameters and the arrays ``names``; RunDirError if unreadable."""
    path = out / "generations" / f"gen_{t:03d}.npz"
    try:
        with np.load(path) as z:
            params = {k[6:]: z[k] for k in z.files if k.startswith("param:")}
            return params, [z[name] for name in names]
    except (OSError, ValueError, KeyError):
        raise store.RunDirError(f"{path} is missing or unreadable; cannot resume") from None


@dataclass
class Trained:
    """What one neural generation produced: its log entries, parameters and stored arrays."""

    logs: dict[str, Any]  # one JSON-ready entry per per-generation log (``rows``, ...)
    params: dict[str, np.ndarray]  # the model's parameters
    arrays: dict[str, np.ndarray]  # arrays stored beside them in generations/gen_NNN.npz
    write: Callable[[Path], None] | None = None  # more files of the generation in ``out``


@dataclass
class NeuralPlan:
    """What a neural family declares; :func:`as_plan` makes it the driver's plan.

    ``meta`` goes into run.json beside the configuration; ``logs`` names the
    per-generation entries (each stored in ``generations/gen_NNN.npz`` with the
    generation, and all of them in the final run.json); ``check`` vets a resumed
    run.json; ``setup`` runs once the run directory is ready (it may keep files
    there); ``restore(t, params, arrays, last)`` takes back a stored generation (its
    arrays named by ``stored``; ``last`` for the newest, which a warm start continues
    from); ``generation(t)`` trains and samples generation t, yielding progress, and
    returns :class:`Trained`; ``finish(logs)`` builds the result and ``save`` stores
    it; ``report(t)`` is the progress report at the start of generation t.
    """

    family: str
    meta: dict[str, Any]
    logs: tuple[str, ...]
    stored: tuple[str, ...]
    setup: Callable[[Path | None], None]
    restore: Callable[[int, dict[str, np.ndarray], list[np.ndarray], bool], None]
    generation: Callable[[int], Generator[Any, None, Trained]]
    finish: Callable[[dict[str, list[Any]]], Any]
    save: Callable[[Path, Any, dict[str, Any]], None]
    report: Callable[[int], Any]
    check: Callable[[dict[str, Any]], None] = lambda state: None


def as_plan(family: NeuralPlan) -> Any:
    """The driver's plan of a neural run: one chain, whose blocks are single generations.

    Each finished generation is stored in ``generations/gen_NNN.npz`` (its parameters,
    its ``stored`` arrays and its log entries) before the checkpoint that counts it, so
    a killed run resumes at the generation in progress.
    """
    from . import _driver as driver

    logs: dict[str, list[Any]] = {name: [] for name in family.logs}
    where: dict[str, Path | None] = {"out": None}

    def setup(out: Path | None) -> None:
        where["out"] = out if distributed.is_writer() else None
        family.setup(where["out"])

    def advance(state: dict[str, Any], lo: int, hi: int, g: int, g_end: int) -> Generator[Any]:
        for t in range(g, g_end):
            trained = yield from family.generation(t)
            for name, entry in trained.logs.items():
                logs[name].append(entry)
            out = where["out"]
            if out is not None:
                entries = {f"log:{k}": json.dumps(v) for k, v in trained.logs.items()}
                save_generation(out, t, trained.params, **trained.arrays, **entries)
                if trained.write is not None:
                    trained.write(out)

    def restore(saved: dict[str, Any], lo: int, hi: int) -> dict[str, Any]:
        done, out = int(saved["done"]), where["out"]
        assert out is not None  # only a run directory resumes
        names = (*family.stored, *(f"log:{k}" for k in family.logs))
        for t in range(done):
            params, arrays = load_generation(out, t, *names)
            family.restore(t, params, arrays[: len(family.stored)], t == done - 1)
            for name, entry in zip(family.logs, arrays[len(family.stored) :], strict=True):
                logs[name].append(json.loads(str(entry)))
        return {}

    return driver.Plan(
        family=family.family,
        meta=family.meta,
        arrays={},
        default_batch=1,
        num_chains=1,
        start=lambda lo, hi: {},
        advance=advance,
        block=lambda batch, g: 1,
        finish=lambda: family.finish(logs),
        snapshot=lambda state, g: {"done": np.int64(g)},
        restore=restore,
        save=lambda out, result, meta: family.save(out, result, {**meta, **logs}),
        setup=setup,
        check=family.check,
        report=lambda done, total, b, g: family.report(g),
    )


def train(
    model: Any,
    last: Any,
    data: tuple[np.ndarray, ...],
    key: Any,
    *,
    warm_start: bool,
    epochs: int,
    progress: Callable[[int, float], Any],
    **trainer: Any,
) -> Generator[Any, None, list[float]]:
    """Train a fresh ``model`` (or, warm, a copy of ``last``) for ``epochs``; yield progress.

    ``trainer`` are :class:`collapsesim.models.training.Trainer`'s options (loss, batch,
    lr, clip). Returns the epochs' mean losses.
    """
    from ..models import training

    if warm_start and last is not None:
        # A copy: the last model (generation 0's among them) stays as it was.
        training.set_params(model, training.get_params(last))
    fit = training.Trainer(model, data, key, **trainer)
    losses: list[float] = []
    for e in range(epochs):
        losses.append(fit.epoch())
        yield progress(e + 1, losses[-1])
    fit.finish()
    return losses


def metric_names(cfg: Any, names: tuple[str, ...]) -> tuple[str, ...]:
    """A neural run's metrics: ``names``, and ``candidates`` (per kept sample) if curated."""
    from ..curation import Curation

    return names + (("candidates",) if Curation.of(cfg).active else ())


def summarize_curation(cfg: Any, s: dict[str, Any], cols: dict[str, np.ndarray]) -> None:
    """Add a curated run's operators and mean candidates per kept sample to its summary."""
    from ..curation import Curation

    cur = Curation.of(cfg)
    if cur.active:
        s["curation"] = cur.to_dict()
        s["mean_candidates"] = float(np.mean(cols["candidates"]))


def top_rows(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices, in draw order, of the ``count`` highest scores (ties: the earlier row)."""
    return np.sort(np.argsort(-scores, kind="stable")[:count])


def luce_picks(rewards: np.ndarray, seed: int, t: int) -> np.ndarray:
    """Per row of ``rewards`` (count, K), candidate k with probability ``exp(r_k) / sum_j
    exp(r_j)`` (Luce's choice, by the Gumbel-max trick; seeded by the run and generation)."""
    gumbel = np.random.default_rng([seed, t, 17]).gumbel(size=rewards.shape)
    return np.argmax(rewards + gumbel, axis=1)
