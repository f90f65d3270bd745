"""Data regimes: what each generation trains on. The same names serve every family.

* ``replace``: only the newest generation's n samples (the setting of
  Shumailov et al., Nature 2024).
* ``accumulate``: all data of all generations so far, real generation 0 included
  (Gerstgrasser et al., 2024, "Is model collapse inevitable?").
* ``fresh``: each generation, a fraction lambda of the n training samples are new
  draws from the original distribution and the rest come from the current model
  (the "fresh data loop" of Alemohammad et al., 2023, "Self-consuming generative
  models go MAD").
* ``keep-original``: a fixed fraction f of the original generation-0 sample stays in
  every training set and the rest comes from the current model (the 10% setting
  of Shumailov et al., Nature 2024).
* ``accumulate-subsample``: n samples drawn without replacement from the pool of all
  data so far (Kazdan et al., 2024, "Collapse or thrive?").

Real counts are ``round(fraction * n)`` (half to even); ``real_count`` says exactly.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Regime", "RegimeError", "real_count", "sufficient_allowed"]


class RegimeError(ValueError):
    """Raised for an unknown regime or a fraction it cannot use."""


class Regime(StrEnum):
    """The data regimes, by their public names."""

    REPLACE = "replace"
    ACCUMULATE = "accumulate"
    FRESH = "fresh"
    KEEP_ORIGINAL = "keep-original"
    ACCUMULATE_SUBSAMPLE = "accumulate-subsample"

    @classmethod
    def parse(cls, name: str | Regime) -> Regime:
        """Return the regime called ``name``; raise :class:`RegimeError` otherwise."""
        try:
            return cls(name)
        except ValueError:
            known = ", ".join(r.value for r in cls)
            raise RegimeError(f"unknown regime {name!r}; choose one of: {known}") from None

    @property
    def code(self) -> int:
        """The integer the kernels use for this regime."""
        return list(Regime).index(self)


def real_count(
    regime: Regime, num_samples: int, fresh_fraction: float, keep_fraction: float
) -> int:
    """Return how many of each generation's n training samples are real data.

    Args:
        regime: the data regime.
        num_samples: n, the training-set size.
        fresh_fraction: lambda, used by ``fresh``.
        keep_fraction: f, used by ``keep-original``.

    Returns:
        ``round(lambda n)`` for fresh, ``round(f n)`` for keep-original, else 0.

    Raises:
        RegimeError: if a fraction lies outside [0, 1].
    """
    for name, value in (("fresh fraction", fresh_fraction), ("keep fraction", keep_fraction)):
        if not 0.0 <= value <= 1.0:
            raise RegimeError(f"{name} must lie in [0, 1], got {value}")
    if regime is Regime.FRESH:
        return round(fresh_fraction * num_samples)
    if regime is Regime.KEEP_ORIGINAL:
        return round(keep_fraction * num_samples)
    return 0


def sufficient_allowed(regime: Regime) -> bool:
    """Whether the regime can run on sufficient statistics (all but subsampling can)."""
    return regime is not Regime.ACCUMULATE_SUBSAMPLE
