"""Configurations: validation with one-line errors, and recorded generations."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collapsesim.config import ConfigError, GaussianConfig

BAD = [
    ({"num_chains": 0}, "chains"),
    ({"num_chains": -5}, "chains"),
    ({"num_samples": 1}, "samples"),
    ({"num_generations": -1}, "generations"),
    ({"ddof": 2}, "ddof"),
    ({"method": "exact"}, "method"),
    ({"regime": "recycle"}, "regime"),
    ({"regime": "fresh", "fresh_fraction": 1.01}, "fraction"),
    ({"keep_fraction": -0.2}, "fraction"),
    ({"sigma0": 0.0}, "sigma0"),
    ({"sigma0": float("nan")}, "sigma0"),
    ({"mu0": float("inf")}, "mu0"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**64}, "seed"),
    ({"record_every": -2}, "record"),
    ({"regime": "accumulate-subsample", "method": "sufficient"}, "sufficient"),
    ({"num_chains": 10**9, "record_every": 1}, "GiB"),
]


@pytest.mark.parametrize(("kwargs", "word"), BAD)
def test_bad_configs_get_one_line(kwargs: dict, word: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as err:
        GaussianConfig(**kwargs)
    assert word in str(err.value)
    assert "\n" not in str(err.value)


def test_defaults_are_the_article() -> None:
    cfg = GaussianConfig()
    assert (cfg.num_chains, cfg.num_generations, cfg.num_samples, cfg.ddof) == (1000, 1000, 1000, 0)
    assert cfg.record_generations() == list(range(1001))
    assert hash(cfg) == hash(GaussianConfig())
    assert GaussianConfig.from_dict(cfg.to_dict()) == cfg


@settings(max_examples=60, deadline=None)
@given(
    chains=st.integers(1, 10**7),
    generations=st.integers(0, 10**6),
    every=st.integers(0, 5000),
)
def test_record_generations_cover_the_run(chains: int, generations: int, every: int) -> None:
    try:
        cfg = GaussianConfig(num_chains=chains, num_generations=generations, record_every=every)
    except ConfigError:
        assert every > 0  # only a forced stride can ask for too much memory
        return
    gens = cfg.record_generations()
    assert gens[0] == 0
    assert gens[-1] == generations
    assert gens == sorted(set(gens))
    if every == 0:
        assert chains * len(gens) <= max(2 * chains, 10**7 + chains)
