"""Frozen experiment configurations: hashable, comparable, and the identity of a stored run."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from .regimes import Regime, RegimeError, real_count, sufficient_allowed

__all__ = [
    "ORIGINALS",
    "PRESETS",
    "ConfigError",
    "GaussianConfig",
    "MixtureConfig",
    "original_mixture",
]

METHODS = ("auto", "sample", "sufficient")
BACKENDS = ("numba", "jax")
PRECISIONS = ("auto", "float32", "float64")

# Held records of all chains (two float64 per chain and record) stay under this many
# values by default, and may not pass the hard limit when a stride is forced.
_AUTO_RECORD_VALUES = 10_000_000
_MAX_RECORD_BYTES = 4 * 2**30


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


def _resolve_precision(precision: str) -> str:
    if precision != "auto":
        return precision
    import jax

    return "float64" if jax.default_backend() == "cpu" else "float32"


class _Recorded:
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


@dataclass(frozen=True, slots=True)
class GaussianConfig(_Recorded):
    """The Gaussian chain: fit N(mu, sigma^2) to n samples, sample, refit, T times."""

    num_chains: int = opt_chains(1000)
    num_generations: int = opt_generations(1000)
    num_samples: int = opt_samples(1000, "Training-set size n of every generation (>= 2).")
    ddof: int = opt(0, "0: maximum-likelihood std; 1: unbiased variance.")
    method: str = opt(
        "auto",
        "auto | sample | sufficient. [b]sufficient[/] draws the mean and chi-square statistic "
        "directly (exact in distribution); auto uses it wherever it is exact.",
    )
    regime: str = opt_regime()
    fresh_fraction: float = opt_fresh_fraction()
    keep_fraction: float = opt_keep_fraction()
    mu0: float = opt(0.0, "Mean of the original Gaussian.")
    sigma0: float = opt(1.0, "Std of the original Gaussian.")
    seed: int = opt_seed()
    record_every: int = opt_record_every()
    keep_chains: int = opt_keep_chains()
    backend: str = opt_backend()
    precision: str = opt_precision()

    def __post_init__(self) -> None:
        checks = [
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
        ]
        regime = self._validate(checks)
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; choose numba or jax")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision {self.precision!r}; choose auto, float32 or float64"
            )
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

    def resolved_precision(self) -> str:
        """float32 or float64: auto takes float64 on CPU and float32 on accelerators."""
        return _resolve_precision(self.precision)

    @property
    def values_per_record(self) -> int:
        """Held values counted per chain and recorded generation when choosing a stride.

        One, so that the default 1000 x 1000 experiment records every generation.
        """
        return 1


# --- Gaussian mixtures ----------------------------------------------------------------

COVARIANCES = ("full", "diag")
INITS = ("kmeans++", "warm")

ORIGINALS: dict[str, str] = {
    "standard": "N(0, I_d), the original of Shumailov et al. (Nature 2024)'s mixture experiment",
    "two-modes": "equal mixture of N(-2 e_1, I) and N(2 e_1, I)",
    "rare-mode": "0.9 N(0, I) + 0.1 N(4 e_1, I / 4): a rare mode to watch disappear",
}
"""Original mixtures by name (``--original``), in any dimension d."""

PRESETS: dict[str, dict[str, Any]] = {
    "nature-2024": {
        "dim": 2,
        "num_components": 2,
        "original": "standard",
        "num_samples": 1000,
        "num_generations": 2000,
        "covariance": "full",
        "init": "kmeans++",
        "regime": "replace",
    },
    "nature-2024-keep10": {
        "dim": 2,
        "num_components": 2,
        "original": "standard",
        "num_samples": 1000,
        "num_generations": 2000,
        "covariance": "full",
        "init": "kmeans++",
        "regime": "keep-original",
        "keep_fraction": 0.1,
    },
}
"""Experiment presets (``--preset``). ``nature-2024`` is the Gaussian-mixture experiment of
Shumailov et al., "AI models collapse when trained on recursively generated data",
Nature 631 (2024): d = 2, K = 2, the original N(0, I), n = 1000 samples per generation,
2000 generations, fully synthetic data. ``nature-2024-keep10`` keeps 10% of the original
data in every training set, the paper's mitigation for its language models."""


def original_mixture(name: str, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(weights, means, covs)`` of the named original mixture in ``dim`` dimensions.

    Raises:
        ConfigError: an unknown name or a dimension below 1.
    """
    if dim < 1:
        raise ConfigError(f"dim must be at least 1, got {dim}")
    eye = np.eye(dim)
    e1 = eye[0]
    if name == "standard":
        return np.ones(1), np.zeros((1, dim)), eye[None].copy()
    if name == "two-modes":
        return np.array([0.5, 0.5]), np.stack([-2 * e1, 2 * e1]), np.stack([eye, eye])
    if name == "rare-mode":
        return np.array([0.9, 0.1]), np.stack([0 * e1, 4 * e1]), np.stack([eye, eye / 4])
    known = ", ".join(ORIGINALS)
    raise ConfigError(f"unknown original mixture {name!r}; choose one of {known} or a JSON file")


def load_original(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an original mixture from a JSON file ``{"weights", "means", "covs"}``.

    ``weights`` is a list of K positive numbers summing to 1 (within 1e-9), ``means`` K
    lists of d numbers, ``covs`` K symmetric positive-definite d x d matrices.

    Raises:
        ConfigError: an unreadable file or parameters that are not a mixture.
    """
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"cannot read original mixture {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file of JSON") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not JSON: {err.msg} (line {err.lineno})") from None
    if not isinstance(data, dict) or not {"weights", "means", "covs"} <= set(data):
        raise ConfigError(f"{path} must hold an object with keys weights, means and covs")
    try:
        w = np.asarray(data["weights"], dtype=np.float64)
        m = np.asarray(data["means"], dtype=np.float64)
        c = np.asarray(data["covs"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: weights, means and covs must be numeric arrays") from None
    return check_mixture(w, m, c, where=str(path))


def check_mixture(
    w: np.ndarray, m: np.ndarray, c: np.ndarray, *, where: str = "original mixture"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate mixture parameters; return them as float64 arrays.

    Raises:
        ConfigError: shapes that disagree, weights that are not a distribution, or a
            covariance that is not symmetric positive definite.
    """
    w, m, c = (np.asarray(a, dtype=np.float64) for a in (w, m, c))
    if w.ndim != 1 or m.ndim != 2 or len(w) < 1 or m.shape[0] != len(w) or m.shape[1] < 1:
        raise ConfigError(f"{where}: need weights (K,) and means (K, d) with K, d >= 1")
    k, d = m.shape
    if c.shape != (k, d, d):
        raise ConfigError(f"{where}: covs must be {k} matrices of {d} x {d}, got shape {c.shape}")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(m)) and np.all(np.isfinite(c))):
        raise ConfigError(f"{where}: parameters must be finite")
    if np.any(w <= 0) or abs(w.sum() - 1) > 1e-9:
        raise ConfigError(f"{where}: weights must be positive and sum to 1, got {w.tolist()}")
    if not np.allclose(c, np.swapaxes(c, 1, 2), rtol=1e-12, atol=0):
        raise ConfigError(f"{where}: covariances must be symmetric")
    if np.any(np.linalg.eigvalsh(c) <= 0):
        raise ConfigError(f"{where}: covariances must be positive definite")
    return w / w.sum(), m, c


def _nested_tuple(a: Any) -> Any:
    if isinstance(a, list | tuple | np.ndarray):
        return tuple(_nested_tuple(v) for v in a)
    return float(a)


@dataclass(frozen=True, slots=True)
class MixtureConfig(_Recorded):
    """The Gaussian-mixture chain: fit K components by EM to n samples, sample, refit."""

    num_chains: int = opt_chains(100)
    num_generations: int = opt_generations(2000)
    num_samples: int = opt_samples(1000, "Training-set size n of every generation (>= K).")
    num_components: int = opt(2, "Components K of every fit.", flag="--components")
    dim: int = opt(2, "Dimension d (taken from the --original file when it is one).")
    covariance: str = opt("full", "full | diag.")
    init: str = opt(
        "kmeans++",
        "EM start: kmeans++ (scikit-learn's, on each generation's data) | warm (the previous fit).",
    )
    original: str = opt(
        "standard",
        "The original mixture: " + " | ".join(ORIGINALS) + ", or a JSON file "
        '{"weights": [...], "means": [[...]], "covs": [[[...]]]}.',
    )
    # The original's parameters; () resolves the name in ``original``.
    weights0: tuple[float, ...] = opt((), "", cli=False)
    means0: tuple[tuple[float, ...], ...] = opt((), "", cli=False)
    covs0: tuple[tuple[tuple[float, ...], ...], ...] = opt((), "", cli=False)
    regime: str = opt_regime()
    fresh_fraction: float = opt_fresh_fraction()
    keep_fraction: float = opt_keep_fraction()
    seed: int = opt_seed()
    tol: float = opt(1e-3, "EM stops when the mean log-likelihood changes by less.")
    max_iter: int = opt(100, "EM iteration cap.")
    reg_covar: float = opt(
        1e-6, "Added to every covariance diagonal, > 0 (scikit-learn's default)."
    )
    heldout: int = opt(1000, "Size of the fixed held-out sample of the original.")
    record_every: int = opt_record_every()
    keep_chains: int = opt_keep_chains()

    def __post_init__(self) -> None:
        checks = [
            (self.num_components >= 1, f"components must be at least 1, got {self.num_components}"),
            (1 <= self.dim <= 64, f"dim must lie in [1, 64], got {self.dim}"),
            (
                self.num_samples >= max(2, self.num_components),
                (
                    f"samples must be at least 2 and at least the number of components "
                    f"({self.num_components}), got {self.num_samples}"
                ),
            ),
            (
                self.covariance in COVARIANCES,
                f"unknown covariance {self.covariance!r}; choose full or diag",
            ),
            (self.init in INITS, f"unknown init {self.init!r}; choose kmeans++ or warm"),
            (math.isfinite(self.tol) and self.tol >= 0, f"tol must be >= 0, got {self.tol}"),
            (self.max_iter >= 1, f"max-iter must be at least 1, got {self.max_iter}"),
            (
                math.isfinite(self.reg_covar) and self.reg_covar > 0,
                (
                    f"reg-covar must be positive (it keeps collapsed components finite), "
                    f"got {self.reg_covar}"
                ),
            ),
            (self.heldout >= 1, f"heldout must be at least 1, got {self.heldout}"),
        ]
        self._validate(checks)
        if not self.weights0:
            w, m, c = original_mixture(self.original, self.dim)
        else:
            w, m, c = check_mixture(
                np.asarray(self.weights0), np.asarray(self.means0), np.asarray(self.covs0)
            )
        if m.shape[1] != self.dim:
            raise ConfigError(
                f"the original mixture is {m.shape[1]}-dimensional but dim is {self.dim}"
            )
        object.__setattr__(self, "weights0", _nested_tuple(w))
        object.__setattr__(self, "means0", _nested_tuple(m))
        object.__setattr__(self, "covs0", _nested_tuple(c))
        held = self.num_chains * len(self.record_generations()) * self.values_per_record * 8
        if held > _MAX_RECORD_BYTES:
            raise ConfigError(
                f"{self.num_chains} chains x {len(self.record_generations())} recorded "
                f"generations would hold {held / 2**30:.1f} GiB; raise --record-every"
            )

    @property
    def values_per_record(self) -> int:
        """Numbers held per chain and recorded generation: the fit and three diagnostics."""
        k, d = self.num_components, self.dim
        return k * (1 + d + d * d) + 3

    @property
    def num_real(self) -> int:
        """Real samples in each training set (0 for replace and accumulate)."""
        return real_count(
            Regime(self.regime), self.num_samples, self.fresh_fraction, self.keep_fraction
        )

    def original_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the original mixture's ``(weights, means, covs)`` as float64 arrays."""
        return np.array(self.weights0), np.array(self.means0), np.array(self.covs0)


# --- Token chains ---------------------------------------------------------------------

TOKEN_ORIGINALS = ("zipf", "uniform")


def token_original(init: str, categories: int, zipf_alpha: float) -> np.ndarray:
    """Return the original distribution ``p0`` (K,) named by ``init``, or read from a file.

    ``zipf``: ``p_i`` proportional to ``i^-alpha``, i = 1..K. ``uniform``: 1/K each. A file
    holds either non-negative weights (whitespace- or comma-separated numbers, a JSON list,
    or a NumPy ``.npy`` array), which set K, or text, whose whitespace-separated words'
    frequencies, sorted from the most common, are the distribution (K = distinct words).

    Raises:
        ConfigError: an unknown name, a file that cannot be read or holds no usable
            distribution, negative weights, or fewer than 2 categories.
    """
    if init == "zipf":
        if not (math.isfinite(zipf_alpha) and zipf_alpha >= 0):
            raise ConfigError(f"zipf-alpha must be >= 0 and finite, got {zipf_alpha}")
        w = np.arange(1, categories + 1, dtype=np.float64) ** -zipf_alpha
    elif init == "uniform":
        w = np.ones(categories)
    else:
        w = _token_file(Path(init))
    if w.ndim != 1 or len(w) < 2:
        raise ConfigError(f"need at least 2 categories, got {len(w)}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ConfigError(f"{init}: weights must be finite and non-negative")
    if not w.sum() > 0:
        raise ConfigError(f"{init}: weights must not all be zero")
    if len(w) >= 2**31:
        raise ConfigError(f"at most 2**31 - 1 categories, got {len(w)}")
    return w / w.sum()


def _token_file(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ConfigError(f"--original {str(path)!r} is neither uniform, zipf nor a file")
    try:
        if path.suffix == ".npy":
            return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64).ravel()
        text = path.read_text()
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read {path}: {err}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
            if isinstance(data, dict):
                data = data.get("weights")
            return np.asarray(data, dtype=np.float64).ravel()
        except (json.JSONDecodeError, TypeError, ValueError):
            raise ConfigError(f"{path}: expected a JSON list of weights") from None
    fields_ = text.replace(",", " ").split()
    if not fields_:
        raise ConfigError(f"{path} is empty")
    try:
        return np.array([float(f) for f in fields_])
    except ValueError:
        pass
    _, counts = np.unique(np.array(text.split()), return_counts=True)
    return np.sort(counts)[::-1].astype(np.float64)


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes, identifying an initial distribution read from it."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenConfig(_Recorded):
    """Token chains: a categorical distribution over K categories, sampled and refitted."""

    RENAMED: ClassVar[dict[str, str]] = {"init": "original", "init_sha256": "original_sha256"}

    num_chains: int = opt_chains(1000)
    num_generations: int = opt_generations(1000)
    num_samples: int = opt_samples(1000, "Tokens n drawn per generation.")
    categories: int = opt(
        1000, "Categories K (set by the file with a file --original).",
        when=("original", TOKEN_ORIGINALS),
    )  # fmt: skip
    original: str = opt(
        "zipf",
        "The original distribution: zipf | uniform | a file of weights (numbers, a JSON list, "
        ".npy) or of text (word frequencies).",
    )
    original_sha256: str = opt("", "", cli=False)  # digest of the original's file (set here)
    zipf_alpha: float = opt(
        1.0, "zipf: p_i proportional to i^-alpha.", when=("original", ("zipf",))
    )
    temperature: float = opt(1.0, "Decoding temperature tau > 0 (p^(1/tau)).", group=DECODING)
    top_k: int = opt(0, "Sample only the k most likely categories (0: off).", group=DECODING)
    top_p: float = opt(
        1.0, "Nucleus: the fewest top categories with mass >= p (1: off).", group=DECODING
    )
    smoothing: float = opt(0.0, "Additive smoothing eps of each fit (0: none).")
    regime: str = opt_regime()
    fresh_fraction: float = opt_fresh_fraction()
    keep_fraction: float = opt_keep_fraction()
    seed: int = opt_seed()
    record_every: int = opt_record_every()
    keep_chains: int = opt_keep_chains()
    backend: str = opt_backend()
    precision: str = opt_precision()

    def __post_init__(self) -> None:
        checks = [
            (self.backend in BACKENDS, f"unknown backend {self.backend!r}; choose numba or jax"),
            (
                self.precision in PRECISIONS,
                f"unknown precision {self.precision!r}; choose auto, float32 or float64",
            ),
            (self.num_samples >= 1, f"samples must be at least 1, got {self.num_samples}"),
            (self.num_samples < 2**31, f"samples must be below 2**31, got {self.num_samples}"),
            (
                math.isfinite(self.temperature) and self.temperature > 0,
                f"temperature must be positive, got {self.temperature}",
            ),
            (self.top_k >= 0, f"top-k must be >= 0 (0: off), got {self.top_k}"),
            (0 < self.top_p <= 1, f"top-p must lie in (0, 1], got {self.top_p}"),
            (
                math.isfinite(self.smoothing) and self.smoothing >= 0,
                f"smoothing must be >= 0, got {self.smoothing}",
            ),
        ]
        if self.original in TOKEN_ORIGINALS:
            checks.insert(
                0, (self.categories >= 2, f"categories must be at least 2, got {self.categories}")
            )
        self._validate(checks)
        if self.original not in TOKEN_ORIGINALS:
            p0 = token_original(self.original, self.categories, self.zipf_alpha)
            digest = file_digest(self.original)
            if self.original_sha256 and self.original_sha256 != digest:
                raise ConfigError(
                    f"{self.original} changed since the run started (SHA-256 differs)"
                )
            object.__setattr__(self, "original_sha256", digest)
            object.__setattr__(self, "categories", len(p0))
        elif self.original == "zipf" and not (
            math.isfinite(self.zipf_alpha) and self.zipf_alpha >= 0
        ):
            raise ConfigError(f"zipf-alpha must be >= 0 and finite, got {self.zipf_alpha}")
        if self.categories >= 2**31:
            raise ConfigError(f"categories must be below 2**31, got {self.categories}")
        held = 64 * self.num_chains * len(self.record_generations())
        if held > _MAX_RECORD_BYTES:
            raise ConfigError(
                f"{self.num_chains} chains x {len(self.record_generations())} recorded "
                f"generations would hold {held / 2**30:.1f} GiB; raise --record-every"
            )

    @property
    def values_per_record(self) -> int:
        """Eight metrics per record, and at least K / 2000 for their O(K) cost."""
        return max(8, self.categories // 2000)

    @property
    def num_real(self) -> int:
        """Real tokens in each training set (0 for replace and accumulate)."""
        return real_count(
            Regime(self.regime), self.num_samples, self.fresh_fraction, self.keep_fraction
        )

    def resolved_precision(self) -> str:
        """float32 or float64: auto takes float64 on CPU and float32 on accelerators."""
        return _resolve_precision(self.precision)

    @property
    def transformed(self) -> bool:
        """Whether sampling applies a decoding transform."""
        return self.temperature != 1.0 or 0 < self.top_k < self.categories or self.top_p < 1.0

    def p0(self) -> np.ndarray:
        """The original distribution p0 (K,)."""
        return token_original(self.original, self.categories, self.zipf_alpha)
