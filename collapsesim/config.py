"""Frozen experiment configurations: hashable, comparable, and the identity of a stored run."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Self

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
        """Rebuild a configuration from :meth:`to_dict` output, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, slots=True)
class GaussianConfig(_Recorded):
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
    backend: str = "numba"  # numba | jax (other random streams, the same distributions)
    precision: str = "auto"  # jax: float32 | float64 | auto (float64 on CPU, else float32)

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

    num_chains: int = 100  # independent chains (Monte Carlo replicates)
    num_generations: int = 2000  # T: models fitted after the original
    num_samples: int = 1000  # n: training-set size of every generation
    num_components: int = 2  # K: components of every fit
    dim: int = 2  # d: dimension of the data
    covariance: str = "full"  # full | diag
    init: str = "kmeans++"  # kmeans++ (on each generation's data) | warm (previous fit)
    original: str = "standard"  # the original mixture: a name of ORIGINALS or a JSON file
    weights0: tuple[float, ...] = ()  # its parameters; () resolves the name in ``original``
    means0: tuple[tuple[float, ...], ...] = ()
    covs0: tuple[tuple[tuple[float, ...], ...], ...] = ()
    regime: str = "replace"  # see collapsesim.regimes
    fresh_fraction: float = 0.1
    keep_fraction: float = 0.1
    seed: int = 0
    tol: float = 1e-3  # EM stops when the mean log-likelihood changes by less
    max_iter: int = 100  # EM iteration cap
    reg_covar: float = 1e-6  # added to every covariance diagonal (scikit-learn's default)
    heldout: int = 1000  # size of the fixed held-out sample of the original
    record_every: int = 0  # stride of recorded generations; 0 picks one
    keep_chains: int = 100  # chains whose whole trajectories are stored

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

TOKEN_INITS = ("zipf", "uniform")


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
        raise ConfigError(f"--init {str(path)!r} is neither uniform, zipf nor a file")
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

    num_chains: int = 1000
    num_generations: int = 1000
    num_samples: int = 1000  # n: tokens drawn per generation
    categories: int = 1000  # K (a file's length when init is a file)
    init: str = "zipf"  # zipf | uniform | a file of weights or text
    init_sha256: str = ""  # digest of the init file (set automatically)
    zipf_alpha: float = 1.0
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1: off
    smoothing: float = 0.0  # additive eps of the fit
    regime: str = "replace"
    fresh_fraction: float = 0.1
    keep_fraction: float = 0.1
    seed: int = 0
    record_every: int = 0
    keep_chains: int = 100
    backend: str = "numba"  # numba | jax
    precision: str = "auto"  # jax: float32 | float64 | auto (float64 on CPU)

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
        if self.init in TOKEN_INITS:
            checks.insert(
                0, (self.categories >= 2, f"categories must be at least 2, got {self.categories}")
            )
        self._validate(checks)
        if self.init not in TOKEN_INITS:
            p0 = token_original(self.init, self.categories, self.zipf_alpha)
            digest = file_digest(self.init)
            if self.init_sha256 and self.init_sha256 != digest:
                raise ConfigError(f"{self.init} changed since the run started (SHA-256 differs)")
            object.__setattr__(self, "init_sha256", digest)
            object.__setattr__(self, "categories", len(p0))
        elif self.init == "zipf" and not (math.isfinite(self.zipf_alpha) and self.zipf_alpha >= 0):
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

    def original(self) -> np.ndarray:
        """The original distribution p0 (K,)."""
        return token_original(self.init, self.categories, self.zipf_alpha)
