"""What the neural families (VAE, transformer LM) share: data regimes over rows, keys,
per-generation checkpoint files.

A neural run keeps whole datasets, one per generation: arrays whose rows are examples
(images, or token pairs). Generation t's training set is built from the real rows and
the rows earlier models generated, under the data regime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .. import store
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
