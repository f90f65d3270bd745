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
from pathlib import Path
from typing import Any, Self

import numpy as np

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
    "available_memory",
    "check_memory",
    "check_ranges",
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
BATCH_RECORD_BYTES = 2**24
"""The records of one batch of chains: 16 MiB (more only when one chain's records pass it)."""
FINAL_CHAINS = 2**20
"""Chains of final.parquet by default: all of them up to 2^20, the first 2^20 beyond."""


class ConfigError(ValueError):
    """Raised for a configuration that cannot run; the message is one line."""


# Panels of a command's --help, in the order they are shown.
RUN = "Run size"
MODEL = "Model"
REGIME = "Data regime"
DECODING = "Decoding"
OUTPUT = "Output"
BACKEND = "Backend and cluster"
CURATION = "Curation (synthetic data only; generation 0 is real)"
GROUPS = (RUN, MODEL, REGIME, CURATION, DECODING, OUTPUT, BACKEND)


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
    range: tuple[int, int] | None = None,
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
        range: ``(lo, hi)``, the inclusive range of an integer field; every integer
            field has one, checked by :func:`check_ranges` before anything else.
    """
    meta: dict[str, Any] = {"help": help, "flag": flag, "group": group, "when": when}
    meta |= {"parse": parse, "show": show, "cli": cli, "range": range}
    return field(default=default, metadata=meta)


# Ranges shared by the integer fields of every family. Counts stop at 2^40 (the memory
# estimate refuses most of that range on a real machine); generations at 10^9 (10^9
# generations of one chain take minutes); sample sizes at 2^53, the integers a float64
# holds exactly (the sufficient method needs no memory per sample).
MAX_COUNT = 2**40
MAX_GENERATIONS = 10**9
MAX_SAMPLES = 2**53
SEEDS = (0, 2**64 - 1)


def opt_chains(default: int) -> Any:
    """The ``num_chains`` field of a chain family."""
    return opt(default, "Independent chains (Monte Carlo replicates).", flag="--chains", group=RUN,
               range=(1, MAX_COUNT))  # fmt: skip


def opt_generations(
    default: int,
    help: str = "Generations T: models fitted after the original.",
    range: tuple[int, int] = (0, MAX_GENERATIONS),
) -> Any:
    """The ``num_generations`` field."""
    return opt(default, help, flag="--generations", group=RUN, range=range)


def opt_samples(default: int, help: str, range: tuple[int, int] = (1, MAX_SAMPLES)) -> Any:
    """The ``num_samples`` field: n, the training-set size of every generation."""
    return opt(default, help, flag="--samples", group=RUN, range=range)


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
    return opt(0, help, group=RUN, range=SEEDS)


def opt_record_every() -> Any:
    """The ``record_every`` field of a chain family."""
    return opt(
        0,
        "Record every k-th generation (0: automatic, at most 1001 records and 10^7 held values).",
        group=OUTPUT,
        range=(0, MAX_GENERATIONS),
    )


def opt_keep_chains() -> Any:
    """The ``keep_chains`` field of a chain family."""
    return opt(100, "Chains whose whole trajectories are stored with --out.", group=OUTPUT,
               range=(0, MAX_COUNT))  # fmt: skip


def opt_final_chains() -> Any:
    """The ``final_chains`` field of a chain family."""
    return opt(FINAL_CHAINS, "Chains whose last generation final.parquet keeps: all up to this "
               "many, the first this many beyond (statistics always cover every chain).",
               group=OUTPUT, range=(0, MAX_COUNT))  # fmt: skip


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


def check_ranges(cfg: Any) -> None:
    """ConfigError for the first integer field of ``cfg`` that is not an integer in its range.

    Checked before anything else, so no later check or kernel sees a size it cannot hold
    (10^30 generations, 2^63 samples).
    """
    for f in fields(cfg):
        bounds = f.metadata.get("range")
        if bounds is None:
            continue
        value = getattr(cfg, f.name)
        name = (f.metadata.get("flag") or f.name.replace("_", "-")).lstrip("-")
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                raise ConfigError(f"{name} must be an integer, got {v!r}")
            lo, hi = bounds
            if not lo <= v <= hi:
                raise ConfigError(
                    f"{name} must lie in [{_bound(lo)}, {_bound(hi)}], got {_bound(v)}"
                )
        if not isinstance(value, tuple):
            object.__setattr__(cfg, f.name, int(value))


def _bound(v: Any) -> str:
    """An integer as people write it: 2^k for large powers of two, else its digits."""
    v = int(v)
    if v > 2**20 and v & (v - 1) == 0:
        return f"2^{v.bit_length() - 1}"
    if v > 2**20 and (v + 1) & v == 0:
        return f"2^{v.bit_length()} - 1"
    if abs(v) >= 10**12:
        return f"{v:.3g}".replace("e+", "e")
    return str(v)


def available_memory() -> int | None:
    """Bytes of memory this process may still take: MemAvailable, and the cgroup's limit."""
    limits: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if text != "max":
            limits.append(int(text) - used)
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


def check_memory(need: int, hint: str) -> None:
    """ConfigError, with the estimate, if a run needing ``need`` bytes cannot fit here."""
    have = available_memory()
    if have is not None and need > have:
        raise ConfigError(
            f"this run needs about {_bytes(need)} of memory and this machine has "
            f"{_bytes(have)} available; {hint}"
        )


def _bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


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
    final_chains: int

    @property
    def values_per_record(self) -> int:
        """Held values per chain and recorded generation, for the automatic stride."""
        raise NotImplementedError

    def _validate(self, checks: list[tuple[bool, str]]) -> Regime:
        """Check the shared fields, then ``checks``; normalise and return the regime.

        Raises:
            ConfigError: the first check that fails, with its one-line message.
        """
        check_ranges(self)
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
            (self.final_chains >= 0, f"final-chains must be >= 0, got {self.final_chains}"),
        ]
        for ok, message in [*shared, *checks, *tail]:
            if not ok:
                raise ConfigError(message)
        try:
            real_count(regime, self.num_samples, self.fresh_fraction, self.keep_fraction)
        except RegimeError as err:
            raise ConfigError(str(err)) from None
        return regime

    def record_batch(self, bytes_per_record: int) -> int:
        """Chains per batch whose records fit in :data:`BATCH_RECORD_BYTES` (at least one)."""
        per_chain = bytes_per_record * self.record_count()
        return max(1, min(self.num_chains, BATCH_RECORD_BYTES // per_chain))

    def _check_held(self, bytes_per_record: int, num_metrics: int) -> None:
        """ConfigError if one batch's records and the run's statistics would pass
        :data:`MAX_RECORD_BYTES`."""
        records = self.record_count()
        held = self.held_bytes(bytes_per_record, num_metrics)
        if held > MAX_RECORD_BYTES:
            kept = min(self.num_chains, self.final_chains)
            raise ConfigError(
                f"{self.num_chains} chains x {records} recorded generations, keeping {kept} "
                f"final values, would hold {held / 2**30:.1f} GiB; raise --record-every or "
                "lower --final-chains"
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

    def record_count(self) -> int:
        """How many generations :meth:`record_generations` lists (without listing them)."""
        t, s = self.num_generations, self.record_stride()
        return t // s + 1 + (1 if t % s else 0)

    def held_bytes(self, bytes_per_record: int, num_metrics: int, per_chain: int = 0) -> int:
        """Bytes of one batch's records (and ``per_chain`` more for each chain of the batch)
        and of the statistics across chains of ``num_metrics`` metrics (``aggregates``)."""
        from .aggregates import stream_bytes

        r = self.record_count()
        batch = self.record_batch(bytes_per_record)
        stats = stream_bytes(num_metrics, r, self.num_chains, self.keep_chains, self.final_chains)
        return batch * (bytes_per_record * r + per_chain) + stats

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
