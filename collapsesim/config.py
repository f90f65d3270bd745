"""What every family's configuration shares: errors, fields declared with their help, records.

A family's configuration is a frozen, slotted dataclass in its family module
(:mod:`collapsesim.families`), hashable and comparable, and the identity of a stored run.
Its fields are declared with :func:`opt` (or the ``opt_*`` fields every family shares),
which puts each one's help text, flag and ``--help`` panel beside it; the command line is
built from them. Chain families subclass :class:`ChainConfig` for the record schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, field, fields
from typing import Any, Self

from .regimes import Regime, RegimeError, real_count

__all__ = [
    "BACKEND",
    "DECODING",
    "GROUPS",
    "MODEL",
    "OUTPUT",
    "REGIME",
    "RUN",
    "ChainConfig",
    "ConfigError",
    "check_seed",
    "opt",
    "resolve_precision",
]

METHODS = ("auto", "sample", "sufficient")
BACKENDS = ("numba", "jax")
PRECISIONS = ("auto", "float32", "float64")

# Held records of all chains (two float64 per chain and record) stay under this many
# values by default, and may not pass the hard limit when a stride is forced.
_AUTO_RECORD_VALUES = 10_000_000
MAX_RECORD_BYTES = 4 * 2**30


class ConfigError(ValueError):
    """Raised for a configuration that cannot run; the message is one line."""


# Panels of a command's --help, in the order they are shown.
RUN = "Run size"
MODEL = "Model"
REGIME = "Data regime"
DECODING = "Decoding"
OUTPUT = "Output"
BACKEND = "Backend and cluster"
GROUPS = (RUN, MODEL, REGIME, DECODING, OUTPUT, BACKEND)


def opt(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    group: str = MODEL,
    when: tuple[str, tuple[Any, ...]] | None = None,
    parse: Callable[[str], Any] | None = None,
    show: Callable[[Any], str] | None = None,
    cli: bool = True,
) -> Any:
    """A configuration field with its help text and command-line declaration beside it.

    Args:
        default: the field's default value.
        help: one sentence for ``--help``.
        flag: the option's name (default: ``--`` and the field name with dashes).
        group: the ``--help`` panel (one of :data:`GROUPS`).
        when: ``(field, values)``: the option matters only while that field holds one of
            the values; given otherwise, the command line warns that it is ignored.
        parse: turns the option's text into the field's value (the option is then text).
        show: the default as the option's text, for ``--help``.
        cli: False for fields that are not options (set from other inputs).
    """
    meta: dict[str, Any] = {"help": help, "flag": flag, "group": group, "when": when}
    meta |= {"parse": parse, "show": show, "cli": cli}
    return field(default=default, metadata=meta)


def opt_chains(default: int) -> Any:
    """The ``num_chains`` field of a chain family."""
    return opt(default, "Independent chains (Monte Carlo replicates).", flag="--chains", group=RUN)


def opt_generations(
    default: int, help: str = "Generations T: models fitted after the original."
) -> Any:
    """The ``num_generations`` field."""
    return opt(default, help, flag="--generations", group=RUN)


def opt_samples(default: int, help: str) -> Any:
    """The ``num_samples`` field: n, the training-set size of every generation."""
    return opt(default, help, flag="--samples", group=RUN)


def opt_regime(default: str = "replace") -> Any:
    """The ``regime`` field (see :mod:`collapsesim.regimes`)."""
    return opt(
        default,
        "What each generation trains on: " + " | ".join(r.value for r in Regime) + ".",
        group=REGIME,
    )


def opt_fresh_fraction(default: float = 0.1) -> Any:
    """The ``fresh_fraction`` field of the fresh regime."""
    return opt(
        default,
        "fresh: share of each training set drawn anew from the original.",
        group=REGIME,
        when=("regime", (Regime.FRESH.value,)),
    )


def opt_keep_fraction(default: float = 0.1) -> Any:
    """The ``keep_fraction`` field of the keep-original regime."""
    return opt(
        default,
        "keep-original: share of generation 0 kept in every training set.",
        group=REGIME,
        when=("regime", (Regime.KEEP_ORIGINAL.value,)),
    )


def opt_seed(help: str = "Seed in [0, 2^64): with the chain index it fixes every draw.") -> Any:
    """The ``seed`` field."""
    return opt(0, help, group=RUN)


def opt_record_every() -> Any:
    """The ``record_every`` field of a chain family."""
    return opt(
        0,
        "Record every k-th generation (0: automatic, at most 1001 records and 10^7 held values).",
        group=OUTPUT,
    )


def opt_keep_chains() -> Any:
    """The ``keep_chains`` field of a chain family."""
    return opt(100, "Chains whose whole trajectories are stored with --out.", group=OUTPUT)


def opt_backend() -> Any:
    """The ``backend`` field of a family with a JAX backend."""
    return opt(
        "numba",
        "numba (CPU kernels) | jax (all local JAX devices; other random streams, "
        "the same distributions).",
        group=BACKEND,
    )


def opt_precision() -> Any:
    """The ``precision`` field of a family with a JAX backend."""
    return opt(
        "auto",
        "jax: float32 | float64 | auto (float64 on CPU, float32 on accelerators).",
        group=BACKEND,
        when=("backend", ("jax",)),
    )


def check_seed(seed_: int) -> None:
    """ConfigError unless ``0 <= seed < 2**64``."""
    if not 0 <= seed_ < 2**64:
        raise ConfigError(f"seed must lie in [0, 2**64), got {seed_}")


def resolve_precision(precision: str) -> str:
    if precision != "auto":
        return precision
    import jax

    return "float64" if jax.default_backend() == "cpu" else "float32"


class ChainConfig:
    """What every family's configuration shares: the record schedule and (de)serialisation.

    Subclasses are frozen dataclasses with ``num_chains``, ``num_generations`` and
    ``record_every`` fields and a ``values_per_record`` property.
    """

    __slots__ = ()
    num_chains: int
    num_generations: int
    record_every: int

    regime: str
    num_samples: int
    fresh_fraction: float
    keep_fraction: float
    seed: int
    keep_chains: int

    @property
    def values_per_record(self) -> int:
        """Held values per chain and recorded generation, for the automatic stride."""
        raise NotImplementedError

    def _validate(self, checks: list[tuple[bool, str]]) -> Regime:
        """Check the shared fields, then ``checks``; normalise and return the regime.

        Raises:
            ConfigError: the first check that fails, with its one-line message.
        """
        try:
            regime = Regime.parse(self.regime)
        except RegimeError as err:
            raise ConfigError(str(err)) from None
        object.__setattr__(self, "regime", regime.value)
        shared = [
            (self.num_chains >= 1, f"chains must be at least 1, got {self.num_chains}"),
            (self.num_generations >= 0, f"generations must be >= 0, got {self.num_generations}"),
        ]
        tail = [
            (0 <= self.seed < 2**64, f"seed must lie in [0, 2**64), got {self.seed}"),
            (
                self.record_every >= 0,
                f"record-every must be >= 0 (0: automatic), got {self.record_every}",
            ),
            (self.keep_chains >= 0, f"keep-chains must be >= 0, got {self.keep_chains}"),
        ]
        for ok, message in [*shared, *checks, *tail]:
            if not ok:
                raise ConfigError(message)
        try:
            real_count(regime, self.num_samples, self.fresh_fraction, self.keep_fraction)
        except RegimeError as err:
            raise ConfigError(str(err)) from None
        return regime

    def _check_held(self, bytes_per_record: int) -> None:
        """ConfigError if the records of all chains would pass :data:`MAX_RECORD_BYTES`."""
        records = len(self.record_generations())
        held = bytes_per_record * self.num_chains * records
        if held > MAX_RECORD_BYTES:
            raise ConfigError(
                f"{self.num_chains} chains x {records} recorded generations would hold "
                f"{held / 2**30:.1f} GiB; raise --record-every"
            )

    def record_stride(self) -> int:
        """Return the stride of recorded generations.

        ``record_every`` when set; otherwise the smallest stride that keeps at most
        1001 records and at most 10^7 held values across chains (1 for the default
        Gaussian 1000 x 1000 experiment, so every generation is recorded).
        """
        if self.record_every:
            return self.record_every
        per = self.num_chains * self.values_per_record
        max_records = max(2, min(1001, _AUTO_RECORD_VALUES // per))
        return max(1, math.ceil(self.num_generations / (max_records - 1)))

    def record_generations(self) -> list[int]:
        """Return the recorded generations: 0, s, 2s, ... and always the last."""
        t = self.num_generations
        gens = list(range(0, t + 1, self.record_stride()))
        if gens[-1] != t:
            gens.append(t)
        return gens

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as plain JSON-ready values."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild a configuration from :meth:`to_dict` output, ignoring unknown keys.

        Fields renamed since a run was stored (``RENAMED``: old name -> new) are read
        under their old names too.
        """
        renamed: dict[str, str] = getattr(cls, "RENAMED", {})
        data = {renamed.get(k, k): v for k, v in data.items()}
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


_MOVED = {
    "GaussianConfig": "gaussian",
    "MixtureConfig": "mixture",
    "ORIGINALS": "mixture",
    "PRESETS": "mixture",
    "original_mixture": "mixture",
    "load_original": "mixture",
    "check_mixture": "mixture",
    "TokenConfig": "tokens",
    "token_original": "tokens",
}


def __getattr__(name: str) -> Any:
    # Each family's configuration lives in its family module; the names stay readable here.
    from ._lazy import family_attribute

    return family_attribute(__name__, _MOVED, name)
