"""Frozen experiment configurations: hashable, comparable, and the identity of a stored run."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from .regimes import Regime, RegimeError, real_count, sufficient_allowed

__all__ = ["ConfigError", "GaussianConfig"]

METHODS = ("auto", "sample", "sufficient")

# Held records of all chains (two float64 per chain and record) stay under this many
# values by default, and may not pass the hard limit when a stride is forced.
_AUTO_RECORD_VALUES = 10_000_000
_MAX_RECORD_BYTES = 4 * 2**30


class ConfigError(ValueError):
    """Raised for a configuration that cannot run; the message is one line."""


@dataclass(frozen=True, slots=True)
class GaussianConfig:
    """The Gaussian chain: fit N(mu, sigma^2) to n samples, sample, refit, T times."""

    num_chains: int = 1000  # independent chains (Monte Carlo replicates)
    num_generations: int = 1000  # T: models fitted after the original
    num_samples: int = 1000  # n: training-set size of every generation
    ddof: int = 0  # 0: maximum-likelihood std; 1: unbiased variance
    method: str = "auto"  # auto | sample | sufficient (auto: sufficient where exact)
    regime: str = "replace"  # see collapsesim.regimes
    fresh_fraction: float = 0.1  # fresh: share of each training set drawn anew from the original
    keep_fraction: float = 0.1  # keep-original: share of generation 0 kept in every training set
    mu0: float = 0.0  # mean of the original distribution
    sigma0: float = 1.0  # std of the original distribution
    seed: int = 0  # with the chain index, determines every draw
    record_every: int = 0  # stride of recorded generations; 0 picks one (see record_stride)
    keep_chains: int = 100  # chains whose whole trajectories are stored (the first ones)

    def __post_init__(self) -> None:
        try:
            regime = Regime.parse(self.regime)
        except RegimeError as err:
            raise ConfigError(str(err)) from None
        object.__setattr__(self, "regime", regime.value)
        checks = [
            (self.num_chains >= 1, f"chains must be at least 1, got {self.num_chains}"),
            (self.num_generations >= 0, f"generations must be >= 0, got {self.num_generations}"),
            (self.num_samples >= 2, f"samples must be at least 2, got {self.num_samples}"),
            (self.ddof in (0, 1), f"ddof must be 0 or 1, got {self.ddof}"),
            (
                self.method in METHODS,
                f"unknown method {self.method!r}; choose auto, sample or sufficient",
            ),
            (math.isfinite(self.mu0), f"mu0 must be finite, got {self.mu0}"),
            (
                math.isfinite(self.sigma0) and self.sigma0 > 0,
                f"sigma0 must be positive and finite, got {self.sigma0}",
            ),
            (0 <= self.seed < 2**64, f"seed must lie in [0, 2**64), got {self.seed}"),
            (
                self.record_every >= 0,
                f"record-every must be >= 0 (0: automatic), got {self.record_every}",
            ),
            (self.keep_chains >= 0, f"keep-chains must be >= 0, got {self.keep_chains}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        try:
            real_count(regime, self.num_samples, self.fresh_fraction, self.keep_fraction)
        except RegimeError as err:
            raise ConfigError(str(err)) from None
        if self.method == "sufficient" and not sufficient_allowed(regime):
            raise ConfigError(
                f"method 'sufficient' cannot run regime {regime.value!r}: "
                "subsampling a pool needs the samples themselves (use --method sample)"
            )
        records = len(self.record_generations())
        if 16 * self.num_chains * records > _MAX_RECORD_BYTES:
            raise ConfigError(
                f"{self.num_chains} chains x {records} recorded generations would hold "
                f"{16 * self.num_chains * records / 2**30:.1f} GiB; raise --record-every"
            )

    @property
    def resolved_method(self) -> str:
        """``sample`` or ``sufficient``: auto takes sufficient wherever it is exact."""
        if self.method != "auto":
            return self.method
        return "sufficient" if sufficient_allowed(Regime(self.regime)) else "sample"

    @property
    def num_real(self) -> int:
        """Real samples in each training set (0 for replace and accumulate)."""
        return real_count(
            Regime(self.regime), self.num_samples, self.fresh_fraction, self.keep_fraction
        )

    def record_stride(self) -> int:
        """Return the stride of recorded generations.

        ``record_every`` when set; otherwise the smallest stride that keeps at most
        1001 records and at most 10^7 held values across chains (1 for the default
        1000 x 1000 experiment, so every generation is recorded).
        """
        t = self.num_generations
        if self.record_every:
            return self.record_every
        max_records = max(2, min(1001, _AUTO_RECORD_VALUES // self.num_chains))
        return max(1, math.ceil(t / (max_records - 1)))

    def record_generations(self) -> list[int]:
        """Return the recorded generations: 0, s, 2s, ... and always the last."""
        t = self.num_generations
        gens = list(range(0, t + 1, self.record_stride()))
        if gens[-1] != t:
            gens.append(t)
        return gens

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as plain JSON-ready values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GaussianConfig:
        """Rebuild a configuration from :meth:`to_dict` output, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
