"""Fixed-seed runs whose outputs are kept bit for bit under ``tests/golden/``.

Every chain family, every regime, both backends, the sample and sufficient methods, and
some curation operators.
``python tests/golden/cases.py`` rewrites the files; do that only when a change of draws is
a decision (say so in the README and the closing note). ``tests/test_golden.py`` reruns
every case and compares each array bit for bit.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent

# name -> (family, config keyword arguments)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "gaussian-replace-sufficient": (
        "gaussian",
        {"num_chains": 24, "num_generations": 40, "num_samples": 50, "seed": 11},
    ),
    "gaussian-replace-sample-ddof1": (
        "gaussian",
        {
            "num_chains": 16,
            "num_generations": 30,
            "num_samples": 20,
            "method": "sample",
            "ddof": 1,
            "seed": 2**63 + 5,
        },
    ),
    "gaussian-accumulate-sufficient": (
        "gaussian",
        {
            "num_chains": 16,
            "num_generations": 30,
            "num_samples": 20,
            "regime": "accumulate",
            "seed": 3,
        },
    ),
    "gaussian-fresh-sample": (
        "gaussian",
        {
            "num_chains": 16,
            "num_generations": 30,
            "num_samples": 20,
            "regime": "fresh",
            "fresh_fraction": 0.25,
            "method": "sample",
            "mu0": 1.5,
            "sigma0": 2.0,
            "seed": 4,
        },
    ),
    "gaussian-keep-original-sufficient": (
        "gaussian",
        {
            "num_chains": 16,
            "num_generations": 30,
            "num_samples": 20,
            "regime": "keep-original",
            "keep_fraction": 0.2,
            "seed": 5,
        },
    ),
    "gaussian-subsample-sample": (
        "gaussian",
        {
            "num_chains": 12,
            "num_generations": 20,
            "num_samples": 16,
            "regime": "accumulate-subsample",
            "seed": 6,
        },
    ),
    "gaussian-jax-replace-sufficient": (
        "gaussian",
        {"num_chains": 16, "num_generations": 30, "num_samples": 50, "backend": "jax", "seed": 7},
    ),
    "gaussian-jax-keep-original-sample": (
        "gaussian",
        {
            "num_chains": 8,
            "num_generations": 20,
            "num_samples": 20,
            "backend": "jax",
            "regime": "keep-original",
            "method": "sample",
            "seed": 8,
        },
    ),
    "gaussian-jax-accumulate-float32": (
        "gaussian",
        {
            "num_chains": 8,
            "num_generations": 20,
            "num_samples": 20,
            "backend": "jax",
            "regime": "accumulate",
            "precision": "float32",
            "seed": 9,
        },
    ),
    "gaussian-jax-fresh-sufficient": (
        "gaussian",
        {
            "num_chains": 8,
            "num_generations": 20,
            "num_samples": 20,
            "backend": "jax",
            "regime": "fresh",
            "seed": 19,
        },
    ),
    "gaussian-jax-subsample": (
        "gaussian",
        {
            "num_chains": 8,
            "num_generations": 12,
            "num_samples": 10,
            "backend": "jax",
            "regime": "accumulate-subsample",
            "seed": 10,
        },
    ),
    "mixture-replace": (
        "mixture",
        {"num_chains": 6, "num_generations": 8, "num_samples": 60, "heldout": 50, "seed": 1},
    ),
    "mixture-accumulate-diag": (
        "mixture",
        {
            "num_chains": 4,
            "num_generations": 6,
            "num_samples": 40,
            "heldout": 50,
            "regime": "accumulate",
            "covariance": "diag",
            "seed": 2,
        },
    ),
    "mixture-fresh-warm": (
        "mixture",
        {
            "num_chains": 4,
            "num_generations": 6,
            "num_samples": 40,
            "heldout": 50,
            "regime": "fresh",
            "init": "warm",
            "original": "two-modes",
            "seed": 3,
        },
    ),
    "mixture-keep-original": (
        "mixture",
        {
            "num_chains": 4,
            "num_generations": 6,
            "num_samples": 40,
            "heldout": 50,
            "regime": "keep-original",
            "num_components": 3,
            "dim": 1,
            "original": "rare-mode",
            "seed": 4,
        },
    ),
    "mixture-subsample": (
        "mixture",
        {
            "num_chains": 4,
            "num_generations": 6,
            "num_samples": 40,
            "heldout": 50,
            "regime": "accumulate-subsample",
            "seed": 5,
        },
    ),
    "tokens-replace": (
        "tokens",
        {"num_chains": 16, "num_generations": 40, "num_samples": 100, "categories": 50, "seed": 1},
    ),
    "tokens-accumulate-topk": (
        "tokens",
        {
            "num_chains": 8,
            "num_generations": 20,
            "num_samples": 60,
            "categories": 30,
            "regime": "accumulate",
            "top_k": 10,
            "temperature": 0.8,
            "seed": 2,
        },
    ),
    "tokens-fresh-smoothing": (
        "tokens",
        {
            "num_chains": 8,
            "num_generations": 20,
            "num_samples": 60,
            "categories": 30,
            "regime": "fresh",
            "smoothing": 0.01,
            "seed": 3,
        },
    ),
    "tokens-keep-original-topp": (
        "tokens",
        {
            "num_chains": 8,
            "num_generations": 20,
            "num_samples": 60,
            "categories": 30,
            "regime": "keep-original",
            "top_p": 0.9,
            "original": "uniform",
            "seed": 4,
        },
    ),
    "tokens-subsample": (
        "tokens",
        {
            "num_chains": 8,
            "num_generations": 20,
            "num_samples": 60,
            "categories": 30,
            "regime": "accumulate-subsample",
            "seed": 5,
        },
    ),
    "tokens-jax-replace": (
        "tokens",
        {
            "num_chains": 8,
            "num_generations": 20,
            "num_samples": 60,
            "categories": 30,
            "backend": "jax",
            "seed": 6,
        },
    ),
    "tokens-jax-subsample-topk": (
        "tokens",
        {
            "num_chains": 8,
            "num_generations": 12,
            "num_samples": 40,
            "categories": 30,
            "backend": "jax",
            "regime": "accumulate-subsample",
            "top_k": 8,
            "seed": 7,
        },
    ),
    "tokens-jax-keep-original": (
        "tokens",
        {
            "num_chains": 8,
            "num_generations": 12,
            "num_samples": 40,
            "categories": 30,
            "backend": "jax",
            "regime": "keep-original",
            "seed": 8,
        },
    ),
    "mvgaussian-replace-sufficient": (
        "mvgaussian",
        {"num_chains": 8, "num_generations": 30, "num_samples": 20, "dim": 4, "seed": 1},
    ),
    "mvgaussian-accumulate-sample-ddof1": (
        "mvgaussian",
        {
            "num_chains": 6,
            "num_generations": 20,
            "num_samples": 12,
            "dim": 3,
            "method": "sample",
            "ddof": 1,
            "regime": "accumulate",
            "original": "powerlaw:1.5",
            "seed": 2,
        },
    ),
    "mvgaussian-keep-original-bias": (
        "mvgaussian",
        {
            "num_chains": 6,
            "num_generations": 20,
            "num_samples": 15,
            "dim": 3,
            "regime": "keep-original",
            "sampling_bias": 0.9,
            "seed": 3,
        },
    ),
    "mvgaussian-subsample-best-of": (
        "mvgaussian",
        {
            "num_chains": 4,
            "num_generations": 12,
            "num_samples": 10,
            "dim": 2,
            "method": "sample",
            "regime": "accumulate-subsample",
            "best_of": 2,
            "seed": 4,
        },
    ),
    "regression-replace-fixed": (
        "regression",
        {"num_chains": 8, "num_generations": 20, "num_samples": 30, "dim": 5, "seed": 1},
    ),
    "regression-accumulate-fresh-ridge": (
        "regression",
        {
            "num_chains": 6,
            "num_generations": 15,
            "num_samples": 25,
            "dim": 4,
            "design": "fresh",
            "ridge": 0.5,
            "regime": "accumulate",
            "spectrum": "powerlaw:1.0",
            "seed": 2,
        },
    ),
    "regression-fresh-interval": (
        "regression",
        {
            "num_chains": 6,
            "num_generations": 15,
            "num_samples": 25,
            "dim": 4,
            "regime": "fresh",
            "select": "interval",
            "select_strength": 1.5,
            "seed": 3,
        },
    ),
    "kde-replace-fixed": (
        "kde",
        {"num_chains": 6, "num_generations": 20, "num_samples": 40, "heldout": 32, "seed": 1},
    ),
    "kde-accumulate-moons-scott": (
        "kde",
        {
            "num_chains": 4,
            "num_generations": 10,
            "num_samples": 30,
            "heldout": 32,
            "original": "moons",
            "bandwidth": "scott",
            "regime": "accumulate",
            "seed": 2,
        },
    ),
    "kde-keep-original-blobs-bias": (
        "kde",
        {
            "num_chains": 4,
            "num_generations": 10,
            "num_samples": 30,
            "heldout": 32,
            "original": "blobs",
            "regime": "keep-original",
            "sampling_bias": 0.8,
            "seed": 3,
        },
    ),
}


def run_case(name: str) -> dict[str, np.ndarray]:
    """Run one case; return every array its result holds, by a flat name."""
    family, kwargs = CASES[name]
    from collapsesim.families import get

    fam = get(family)
    result = fam.run(fam.config(**kwargs))
    arrays: dict[str, np.ndarray] = {"generations": np.asarray(result.generations)}
    for metric, stats in result.aggregates.items():
        for stat, values in stats.items():
            arrays[f"aggregates/{metric}/{stat}"] = np.asarray(values)
    for group in ("final", "trajectories", "components"):
        for key, values in getattr(result, group, {}).items():
            arrays[f"{group}/{key}"] = np.asarray(values)
    if hasattr(result, "snapshots"):
        arrays["snapshots"] = np.asarray(result.snapshots)
        arrays["snapshot_generations"] = np.asarray(result.snapshot_generations)
    return arrays


def path(name: str) -> Path:
    return HERE / f"{name}.npz"


def main(names: list[str]) -> None:
    for name in names or list(CASES):
        np.savez_compressed(path(name), **run_case(name))
        print("wrote", path(name).relative_to(HERE.parent.parent))


if __name__ == "__main__":
    main(sys.argv[1:])
