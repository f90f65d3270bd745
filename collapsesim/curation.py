"""Curation of synthetic data: what happens between a model's sampler and the next fit.

The operators, the same option names in every family that has them:

* **sampling bias** ``--sampling-bias LAMBDA``: the model samples with its spread scaled by
  lambda (Alemohammad et al. 2023, MAD: lambda < 1 trades diversity for quality);
* **selection** ``--select KIND --select-strength X``, a verifier that keeps some draws
  and drops the others; the training set keeps its size n by drawing candidates until n
  are kept:

  - ``interval``: keep draws within X original standard deviations of the original mean
    (an oracle verifier, Feng et al. 2024);
  - ``self-interval``: the same about the current model (its own X-sigma region);
  - ``soft``: keep a draw with probability ``exp(-X (x - mu0)^2 / (2 sigma0^2))``, a
    verifier of plausibility under the truth with strength X >= 0;
  - ``top``: of ``ceil(n / X)`` candidates keep the n most likely under the original,
    X in (0, 1] (biased sample selection, as Qiao et al.);
  - ``self-top``: the same, most likely under the current model;

* **reward curation** ``--best-of K --reward linear:A | loglik``: every kept sample is
  chosen among K candidates with probability proportional to ``exp(reward)``, the
  Bradley-Terry (Luce) choice of Ferbach et al. 2024; ``loglik`` rewards the
  log-likelihood under the original;
* **self-correction** ``--correction GAMMA``: every kept sample moves a fraction
  ``t = gamma / (1 + gamma)`` along the optimal-transport map from the current model to
  the original (Gillman et al. 2024).

They act in that order (bias, then selection or best-of, then correction) and on synthetic
draws only: generation 0's data is real, so model 1 is fitted to uncurated real data and
the operators shape the data of models 2..T. The cost of curation, candidates drawn per
kept sample, is recorded per generation.

The kernels read the operators from one float64 vector (:meth:`Curation.vector`), in the
chain's standard units (the original is N(0, 1) there); its layout and the kinds' codes
are written here once.

References:
    S. Alemohammad et al., "Self-consuming generative models go MAD", 2023.
    Y. Feng et al., "Beyond model collapse: scaling up with synthesized data requires
    verification", 2024.
    D. Ferbach et al., "Self-consuming generative models with curated data provably
    optimize human preferences", 2024.
    N. Gillman et al., "Self-correcting self-consuming loops for generative model
    training", 2024.
    Qiao et al., "When sample selection bias precipitates model collapse".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import CURATION, ConfigError, opt

__all__ = [
    "KINDS",
    "Curation",
    "CurationError",
    "candidates_of_top",
    "check_curation",
    "opt_best_of",
    "opt_correction",
    "opt_reward",
    "opt_sampling_bias",
    "opt_select",
    "opt_select_strength",
]

# Selection kinds and their codes in the kernels' vector.
NONE, INTERVAL, SELF_INTERVAL, SOFT, TOP, SELF_TOP = range(6)
KINDS = {"none": NONE, "interval": INTERVAL, "self-interval": SELF_INTERVAL, "soft": SOFT,
         "top": TOP, "self-top": SELF_TOP}  # fmt: skip
LINEAR, LOGLIK = 0, 1
# The kernels' vector: sampling bias, kind, strength, best-of K, reward kind, correction
# fraction t, then the reward's slopes (one per dimension; standard units).
BIAS, KIND, STRENGTH, BEST_OF, REWARD, CORRECT = range(6)
SLOPE = SIZE = 6
EXACT_LAWS = ("sampling_bias", "soft", "correction")
"""Operators that map a Gaussian law to a Gaussian law: the sufficient method stays exact."""
MAX_BEST_OF = 2**20
MIN_TOP = 1e-4


class CurationError(ValueError):
    """Raised for operator settings that cannot run; the message is one line."""


def opt_sampling_bias() -> Any:
    """The ``sampling_bias`` field."""
    return opt(1.0, "Sampling bias lambda > 0: the model samples with its spread times lambda "
               "(lambda < 1 trades diversity for quality, as MAD's truncation).",
               group=CURATION)  # fmt: skip


def opt_select() -> Any:
    """The ``select`` field."""
    return opt("none", "Verifier that keeps synthetic draws until n are kept: "
               + " | ".join(KINDS) + " (README: Curation).", group=CURATION)  # fmt: skip


def opt_select_top(judge: str) -> Any:
    """The ``select`` field of a neural family, which ranks its samples by ``judge``."""
    return opt("none", f"none | top: of n / X generated samples keep the n {judge}.",
               group=CURATION)  # fmt: skip


def check_select_top(cfg: Any, judge: str) -> Curation:
    """A neural family's operators (``select`` none or top), or ConfigError."""
    if cfg.select not in ("none", "top"):
        raise ConfigError(f"{judge}: --select top (or none), got {cfg.select!r}")
    return check_curation(cfg)


def opt_select_strength(
    help: str = "X of --select: interval and self-interval keep |x - center| <= X sigma; soft "
    "keeps with probability exp(-X z^2 / 2); top and self-top keep n of n / X.",
) -> Any:
    """The ``select_strength`` field."""
    kinds = tuple(k for k in KINDS if k != "none")
    return opt(1.0, help, group=CURATION, when=("select", kinds))


def opt_best_of(
    help: str = "Reward curation: each kept sample is one of K candidates, chosen with "
    "probability proportional to exp(reward) (1: off).",
) -> Any:
    """The ``best_of`` field."""
    return opt(1, help, group=CURATION, range=(1, MAX_BEST_OF))


def opt_reward(
    help: str = "Reward of --best-of: loglik (log-likelihood under the original) | linear:A (A x).",
) -> Any:
    """The ``reward`` field."""
    return opt("loglik", help, group=CURATION)


def opt_correction() -> Any:
    """The ``correction`` field."""
    return opt(0.0, "Self-correction gamma >= 0: each synthetic sample moves gamma / (1 + gamma) "
               "of the way along the optimal-transport map to the original.",
               group=CURATION)  # fmt: skip


@dataclass(frozen=True)
class Curation:
    """The operators of one run, checked.

    Attributes:
        sampling_bias: lambda > 0.
        select: a kind of :data:`KINDS`.
        select_strength: X of the kind.
        best_of: K >= 1 (1: off).
        reward: ``loglik`` or ``linear:A``.
        correction: gamma >= 0.
    """

    sampling_bias: float = 1.0
    select: str = "none"
    select_strength: float = 1.0
    best_of: int = 1
    reward: str = "loglik"
    correction: float = 0.0

    def __post_init__(self) -> None:
        lam, x, gamma = self.sampling_bias, self.select_strength, self.correction
        if not (math.isfinite(lam) and lam > 0):
            raise CurationError(f"sampling-bias must be positive and finite, got {lam}")
        if self.select not in KINDS:
            raise CurationError(
                f"unknown select kind {self.select!r}; choose one of {', '.join(KINDS)}"
            )
        if not math.isfinite(x):
            raise CurationError(f"select-strength must be finite, got {x}")
        if self.select in ("interval", "self-interval") and not x > 0:
            raise CurationError(f"select {self.select} needs select-strength > 0, got {x}")
        if self.select == "soft" and not x >= 0:
            raise CurationError(f"select soft needs select-strength >= 0, got {x}")
        if self.select in ("top", "self-top") and not 0 < x <= 1:
            raise CurationError(f"select {self.select} needs select-strength in (0, 1], got {x}")
        if self.select in ("top", "self-top") and x < MIN_TOP:
            raise CurationError(f"select {self.select} draws n / X candidates; X must be at "
                                f"least {MIN_TOP:g} (10^4 per kept sample), got {x:g}")  # fmt: skip
        if isinstance(self.best_of, bool) or not 1 <= int(self.best_of) <= MAX_BEST_OF:
            raise CurationError(f"best-of must be an integer in [1, 2^20], got {self.best_of}")
        if self.best_of > 1 and self.select != "none":
            raise CurationError("--best-of and --select are separate curations; give one of them")
        self.reward_slopes()  # checks the reward's text
        if not (math.isfinite(gamma) and gamma >= 0):
            raise CurationError(f"correction must be >= 0 and finite, got {gamma}")

    @classmethod
    def of(cls, cfg: Any) -> Curation:
        """The operators of a family's configuration (the curation fields it has; the
        others are off)."""
        names = [name for name in cls.__dataclass_fields__ if hasattr(cfg, name)]
        return cls(**{name: getattr(cfg, name) for name in names})

    @property
    def active(self) -> bool:
        """Whether any operator changes the synthetic data (``soft`` at strength 0 and
        ``top`` at 1 keep every draw: no curation, the grid point a scan starts from)."""
        noop = {"none": True, "soft": self.select_strength == 0.0,
                "top": self.select_strength == 1.0, "self-top": self.select_strength == 1.0}  # fmt: skip
        return (self.sampling_bias != 1.0 or not noop.get(self.select, False)
                or self.best_of > 1 or self.correction > 0)  # fmt: skip

    @property
    def fraction(self) -> float:
        """The correction's fraction ``t = gamma / (1 + gamma)`` of the way to the original."""
        return self.correction / (1.0 + self.correction)

    @property
    def exact_gaussian(self) -> bool:
        """Whether each operator maps a Gaussian law to a Gaussian law (bias, soft,
        correction), so a Gaussian chain's sufficient statistics stay exact."""
        return self.select in ("none", "soft") and self.best_of == 1

    def reward_slope(self) -> float | None:
        """A of ``linear:A`` (the first of ``linear:a1,a2,..``); None for ``loglik``.

        Raises:
            CurationError: any other text.
        """
        slopes = self.reward_slopes()
        return None if slopes is None else slopes[0]

    def reward_slopes(self) -> tuple[float, ...] | None:
        """``(a1, a2, ..)`` of ``linear:a1,a2,..`` (d > 1: the reward a . x); None for
        ``loglik``.

        Raises:
            CurationError: any other text.
        """
        if self.reward == "loglik":
            return None
        kind, _, value = self.reward.partition(":")
        try:
            slopes = tuple(float(v) for v in value.split(","))
        except ValueError:
            slopes = (math.nan,)
        if kind != "linear" or not all(math.isfinite(a) for a in slopes):
            raise CurationError(f"reward must be loglik or linear:A with A a number (d > 1: "
                                f"linear:a1,a2,..), got {self.reward!r}")  # fmt: skip
        return slopes

    def vector(self, sigma0: float = 1.0, dim: int = 1) -> np.ndarray:
        """The kernels' float64 vector: :data:`SIZE` operators, then ``dim`` reward slopes.

        A Gaussian chain from N(mu0, sigma0^2) runs in standard units, as one from N(0, 1);
        every operator is stated relative to the original, so only the linear reward's
        slope changes: ``A x`` is ``A mu0 + (A sigma0) u`` in standard units ``u``, and the
        constant drops out of the choice.

        Raises:
            CurationError: a linear reward with other than ``dim`` slopes.
        """
        v = np.zeros(SIZE + dim)
        v[BIAS] = self.sampling_bias
        v[KIND] = KINDS[self.select]
        v[STRENGTH] = self.select_strength
        v[BEST_OF] = self.best_of
        slopes = self.reward_slopes()
        v[REWARD] = LOGLIK if slopes is None else LINEAR
        if slopes is not None:
            if len(slopes) != dim:
                raise CurationError(f"reward {self.reward} needs {dim} slope(s), one per "
                                    "dimension")  # fmt: skip
            v[SLOPE : SLOPE + dim] = np.asarray(slopes) * sigma0
        v[CORRECT] = self.fraction
        return v

    def describe(self) -> str:
        """The active operators in a few words (``none`` when off)."""
        parts = []
        if self.sampling_bias != 1.0:
            parts.append(f"bias {self.sampling_bias:g}")
        if self.select != "none":
            parts.append(f"{self.select} {self.select_strength:g}")
        if self.best_of > 1:
            parts.append(f"best of {self.best_of} ({self.reward})")
        if self.correction > 0:
            parts.append(f"correction {self.correction:g}")
        return ", ".join(parts) or "none"

    def to_dict(self) -> dict[str, Any]:
        """The operators as run.json and the summary store them."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def check_curation(
    cfg: Any, *, linear_reward: bool = True, dim: int = 1, jax: bool = False
) -> Curation:
    """The operators of a family's configuration, or ConfigError with the reason.

    Args:
        cfg: the configuration (its curation fields and ``backend``).
        linear_reward: whether the family's samples are numbers a ``linear:A`` reward
            can weigh (categories are not).
        dim: the samples' dimension (a linear reward has one slope per dimension).
        jax: whether the family's JAX backend has the operators.
    """
    try:
        cur = Curation.of(cfg)
        cur.vector(dim=dim)
    except CurationError as err:
        raise ConfigError(str(err)) from None
    if not linear_reward and cur.reward != "loglik":
        raise ConfigError(f"this family rewards loglik only, got {cur.reward!r}")
    if cur.active and getattr(cfg, "backend", "numba") == "jax" and not jax:
        raise ConfigError(
            "curation runs on the numba backend in this version (README: Curation); "
            "drop --backend jax"
        )
    return cur


def candidates_of_top(num_samples: int, strength: float) -> int:
    """Candidates ``ceil(n / X)`` that ``top`` and ``self-top`` draw for n kept samples."""
    return max(num_samples, math.ceil(num_samples / strength - 1e-9))
