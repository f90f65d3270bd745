"""The reproducibility contract: a chain's state at generation t depends on the seed, the
chain index, t and the model's settings only; not on the chain count or the record stride
(threads, batches and blocks: tests/test_reproducibility.py and each family's tests). Every
recorded generation is compared, not only the last.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from collapsesim import GaussianConfig, MixtureConfig, TokenConfig, run

CASES: list[tuple[type, dict[str, Any]]] = [
    (GaussianConfig, {"method": "sample"}),
    (GaussianConfig, {"regime": "accumulate"}),
    (GaussianConfig, {"regime": "fresh", "fresh_fraction": 0.3}),
    (GaussianConfig, {"regime": "keep-original", "method": "sufficient"}),
    (GaussianConfig, {"regime": "accumulate-subsample"}),
    (GaussianConfig, {"backend": "jax", "method": "sample"}),
    (MixtureConfig, {"num_samples": 40, "heldout": 50}),
    (MixtureConfig, {"num_samples": 40, "heldout": 50, "regime": "accumulate"}),
    (TokenConfig, {"categories": 40}),
    (TokenConfig, {"categories": 40, "regime": "fresh", "backend": "jax"}),
]
CASES_ALL = [
    *[pytest.param(c, kw, id=f"{c.__name__}-{i}") for i, (c, kw) in enumerate(CASES)],
    pytest.param(GaussianConfig, {"method": "sufficient"}, id="gaussian-replace-sufficient"),
    pytest.param(
        GaussianConfig,
        {"method": "sufficient", "num_generations": 600},
        id="gaussian-replace-sufficient-blocks",
    ),
    pytest.param(GaussianConfig, {"backend": "jax"}, id="gaussian-jax-replace-sufficient"),
]


def _values(
    cls: type, kw: dict[str, Any], chains: int, every: int
) -> dict[str, dict[int, np.ndarray]]:
    """The first 4 chains' metrics at each recorded generation."""
    base = {"num_generations": 12, "num_samples": 20, "seed": 21, "keep_chains": 4, **kw}
    res = run(cls(num_chains=chains, record_every=every, **base))
    gens = [int(g) for g in res.generations]
    return {k: {g: v[:4, j] for j, g in enumerate(gens)} for k, v in res.trajectories.items()}


@pytest.mark.parametrize(("cls", "kw"), CASES_ALL)
def test_a_chains_values_ignore_the_chain_count_and_the_record_stride(
    cls: type, kw: dict[str, Any]
) -> None:
    ref = _values(cls, kw, chains=4, every=1)
    for chains, every in ((37, 1), (4, 5), (37, 7)):
        got = _values(cls, kw, chains, every)
        for name, by_gen in got.items():
            assert len(by_gen) > 2, name
            for g, have in by_gen.items():
                np.testing.assert_array_equal(
                    have, ref[name][g], err_msg=f"{name} at {g}, {chains} chains, every {every}"
                )
