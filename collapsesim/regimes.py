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

Each regime also has an integer ``code``, written here once: the Numba kernels
(``collapsesim.kernels._regimes``) and the JAX chains read their constants from it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CODES",
    "CODE_ACCUMULATE",
    "CODE_ACCUMULATE_SUBSAMPLE",
    "CODE_FRESH",
    "CODE_KEEP_ORIGINAL",
    "CODE_REPLACE",
    "Regime",
    "RegimeError",
    "real_count",
    "sufficient_allowed",
    "theory_regime",
]


class RegimeError(ValueError):
    """Raised for an unknown regime or a fraction it cannot use."""


class Regime(StrEnum):
    """The data regimes, by their public names, each with the integer code the kernels use."""

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
        """The integer the kernels use for this regime (see ``CODES``)."""
        return CODES[self]

    @classmethod
    def from_code(cls, code: int) -> Regime:
        """Return the regime whose kernel code is ``code``; raise :class:`RegimeError` otherwise."""
        for regime, value in CODES.items():
            if value == code:
                return regime
        raise RegimeError(f"unknown regime code {code}")


# The kernels' integer code of every regime: the one definition. The Numba kernels and the
# JAX chains import these constants (Numba freezes them into compiled code).
CODE_REPLACE = 0
CODE_ACCUMULATE = 1
CODE_FRESH = 2
CODE_KEEP_ORIGINAL = 3
CODE_ACCUMULATE_SUBSAMPLE = 4

CODES: dict[Regime, int] = {
    Regime.REPLACE: CODE_REPLACE,
    Regime.ACCUMULATE: CODE_ACCUMULATE,
    Regime.FRESH: CODE_FRESH,
    Regime.KEEP_ORIGINAL: CODE_KEEP_ORIGINAL,
    Regime.ACCUMULATE_SUBSAMPLE: CODE_ACCUMULATE_SUBSAMPLE,
}
"""Every regime's kernel code."""


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


def theory_regime(regime: str, num_real: int) -> str:
    """The regime whose closed forms a run follows: ``replace`` for ``fresh`` or
    ``keep-original`` with no real sample in a training set (a fraction that rounds to 0
    of n), which is then replace in distribution; else ``regime`` itself."""
    if num_real == 0 and regime in (Regime.FRESH.value, Regime.KEEP_ORIGINAL.value):
        return Regime.REPLACE.value
    return regime
