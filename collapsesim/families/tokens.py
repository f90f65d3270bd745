"""The token family: a categorical distribution over K categories, sampled and refitted."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..config import (
    BACKENDS,
    DECODING,
    PRECISIONS,
    ChainConfig,
    ConfigError,
    check_ranges,
    opt,
    opt_backend,
    opt_chains,
    opt_final_chains,
    opt_fresh_fraction,
    opt_generations,
    opt_keep_chains,
    opt_keep_fraction,
    opt_precision,
    opt_record_every,
    opt_regime,
    opt_samples,
    opt_seed,
    resolve_precision,
)
from ..curation import (
    Curation,
    check_curation,
    opt_best_of,
    opt_reward,
    opt_select,
    opt_select_strength,
)
from ..regimes import Regime, real_count, theory_regime
from ._family import Family
from ._show import (
    EXACT_SE,
    NO_SE,
    NO_Z,
    Notes,
    cost_row,
    curation_title,
    fmt,
    frame,
    regime_text,
    ztext,
)

__all__ = ["FAMILY", "TokenConfig", "measure", "table"]


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
        if not init.strip():
            raise ConfigError(
                "--original is empty; give zipf, uniform or a file of weights or text"
            )
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

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenConfig(ChainConfig):
    """Token chains: a categorical distribution over K categories, sampled and refitted."""

    RENAMED: ClassVar[dict[str, str]] = {"init": "original", "init_sha256": "original_sha256"}

    num_chains: int = opt_chains(1000)
    num_generations: int = opt_generations(1000)
    num_samples: int = opt_samples(1000, "Tokens n drawn per generation.", range=(1, 2**31 - 1))
    categories: int = opt(
        1000, "Categories K (set by the file with a file --original).",
        when=("original", TOKEN_ORIGINALS), range=(2, 2**31 - 1),
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
    top_k: int = opt(0, "Sample only the k most likely categories (0: off).", group=DECODING,
                     range=(0, 2**31 - 1))  # fmt: skip
    top_p: float = opt(
        1.0, "Nucleus: the fewest top categories with mass >= p (1: off).", group=DECODING
    )
    smoothing: float = opt(0.0, "Additive smoothing eps of each fit (0: none).")
    select: str = opt_select()
    select_strength: float = opt_select_strength(
        "X of --select, on the categories' likelihood: interval keeps those with p0 >= "
        "exp(-X^2 / 2) max p0 (self-interval: the same under the current model); soft keeps "
        "category i with probability (p0_i / max p0)^X; top and self-top keep n of n / X."
    )
    best_of: int = opt_best_of()
    reward: str = opt_reward("Reward of --best-of: loglik (log p0 of the token).")
    regime: str = opt_regime()
    fresh_fraction: float = opt_fresh_fraction()
    keep_fraction: float = opt_keep_fraction()
    seed: int = opt_seed()
    record_every: int = opt_record_every()
    keep_chains: int = opt_keep_chains()
    final_chains: int = opt_final_chains()
    backend: str = opt_backend()
    precision: str = opt_precision()

    def __post_init__(self) -> None:
        check_ranges(self)
        checks = [
            (self.backend in BACKENDS, f"unknown backend {self.backend!r}; choose numba or jax"),
            (
                self.precision in PRECISIONS,
                f"unknown precision {self.precision!r}; choose auto, float32 or float64",
            ),
            (
                math.isfinite(self.temperature) and self.temperature > 0,
                f"temperature must be positive, got {self.temperature}",
            ),
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
        cur = check_curation(self, linear_reward=False, jax=True)
        if cur.active and self.backend == "jax" and self.regime == "accumulate-subsample":
            raise ConfigError(
                "curation of accumulate-subsample runs on the numba backend (README: Curation)"
            )
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
        self._check_held(64, 8)

    def memory_bytes(self) -> int:
        """A floor on the run's peak memory: records, one chain's tokens and counts, snapshots.

        Every chain in a batch holds its training tokens (n, or n x (T + 1) under the
        accumulate regimes) and its K counts; chain 0's distribution is kept at a few
        generations.
        """
        n, t, k = self.num_samples, self.num_generations, self.categories
        accumulates = Regime(self.regime) in (Regime.ACCUMULATE, Regime.ACCUMULATE_SUBSAMPLE)
        tokens = n * (max(t, 1) + 1) if accumulates else n
        need = self.held_bytes(64, 8, per_chain=8 * 16)
        need += 4 * tokens + 16 * k * min(self.num_chains, os.cpu_count() or 1) + 8 * 8 * k
        return need

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
        return resolve_precision(self.precision)

    @property
    def transformed(self) -> bool:
        """Whether sampling applies a decoding transform."""
        return self.temperature != 1.0 or 0 < self.top_k < self.categories or self.top_p < 1.0

    @property
    def wright_fisher(self) -> bool:
        """Whether the chain is the Wright-Fisher model, whose support, fixation and rate
        have closed forms: replace (or no real sample), no smoothing, decoding or curation."""
        regime = theory_regime(self.regime, self.num_real)
        return (regime == "replace" and self.smoothing == 0 and not self.transformed
                and not self.curation.active)  # fmt: skip

    @property
    def curation(self) -> Curation:
        """The curation operators of this run."""
        return Curation.of(self)

    def p0(self) -> np.ndarray:
        """The original distribution p0 (K,)."""
        return token_original(self.original, self.categories, self.zipf_alpha)


APPROX = (
    "≈ the diffusion approximation of E[G] (Kimura and Ohta 1969; Littler 1975), off by "
    "O(1/n): no z-score"
)


def table(result: Any) -> Any:
    """The final generation's diversity and tails beside Wright-Fisher theory."""
    s = result.summary
    knobs = []
    if s["temperature"] != 1.0:
        knobs.append(f"tau {s['temperature']:g}")
    if s["top_k"]:
        knobs.append(f"top-k {s['top_k']}")
    if s["top_p"] < 1.0:
        knobs.append(f"top-p {s['top_p']:g}")
    if s["smoothing"]:
        knobs.append(f"eps {s['smoothing']:g}")
    title = (
        f"{s['chains']} chains x {s['generations']} generations, n = {s['samples']}, "
        f"K = {s['categories']} ({s['original']}), {regime_text(s)}"
        f"{', ' + ', '.join(knobs) if knobs else ''}, seed {s['seed']} ({s['seconds']:.2f} s)"
        f"{curation_title(s)}"
    )
    out = frame(title, ("final generation", "simulation", "± s.e.", "theory", "z"))
    rows = [
        ("heterozygosity 1 - sum p^2", "mean_final_heterozygosity", "heterozygosity"),
        ("support (categories alive)", "mean_final_support", "support"),
        ("chains fixed on one category", "fixed_fraction", None),
        ("mass beyond the original's top 10%", "mean_final_tail10_mass", "tail10_mass"),
        ("mass beyond the original's top 1%", "mean_final_tail1_mass", "tail1_mass"),
        ("entropy (nats)", "mean_final_entropy", "entropy"),
        ("share of the top category", "mean_final_top_share", "top_share"),
        ("total variation to the original", "mean_final_tv", "tv"),
        *((label, key, "candidates") for label, key, _ in cost_row(s)),
    ]
    notes = Notes()
    for label, key, se_key in rows:
        se = s.get(f"stderr_final_{se_key}") if se_key else s.get("stderr_fixed_fraction")
        exact = not se_key and s.get("theory_stderr_fixed_fraction") is not None
        if exact:  # the binomial error at the exact fraction, which z divides by
            se = s["theory_stderr_fixed_fraction"]
            notes.note(EXACT_SE)
        theory, why, z = s.get(f"theory_{key}"), s.get(f"why_theory_{key}"), s.get(f"z_{key}")
        out.add_row(
            label,
            fmt(s[key]),
            notes.cell(se, NO_SE, 2) + ("*" if exact else ""),
            notes.cell(theory, why),
            ztext(z) if z is not None else "—" + notes.mark(why if theory is None else NO_Z),
        )
    if "mean_fixation_time_restricted" in s:  # summaries stored before 0.10 lack them
        key = "mean_fixation_time_restricted"
        theory, why, z = s.get(f"theory_{key}"), s.get(f"why_theory_{key}"), s.get(f"z_{key}")
        out.add_row(
            "generations to fixation, min(G, T)",
            fmt(s[key]),
            notes.cell(s.get("stderr_fixation_time_restricted"), NO_SE, 2),
            notes.cell(theory, why),
            ztext(z) if z is not None else "—" + notes.mark(why if theory is None else NO_Z),
        )
        approx = s.get("approx_mean_fixation_generation")
        if approx is not None:
            notes.note(APPROX)
        censored = s.get("why_mean_fixation_generation")
        out.add_row(
            "generations to fixation, G",
            notes.cell(s.get("mean_fixation_generation"), censored),
            notes.cell(s.get("stderr_fixation_generation"), censored, 2),
            "" if approx is None else f"≈ {fmt(approx)}",
            "",
        )
    out.add_row(
        "original entropy / support",
        f"{s['original_entropy']:.4g} / {s['original_support']}",
        "",
        "",
        "",
    )
    return notes.attach(out)


def measure(cfg: TokenConfig, result: Any) -> dict[str, Any]:
    """A scan point: the rate -d log E[H]/dT of the heterozygosity H, its level and theory.

    The exact rate -log(1 - 1/n) holds under replace with no smoothing, decoding or
    curation (the Wright-Fisher model).
    """
    t, s = cfg.num_generations, result.summary  # the summary covers every chain
    agg = result.aggregates["heterozygosity"]
    h0 = float(agg["mean"][0])
    mean_h, se_h = (
        math.nan if s.get(key) is None else float(s[key])
        for key in ("mean_final_heterozygosity", "stderr_final_heterozygosity")
    )
    note = why = None
    if t and mean_h > 0:
        rate, se = -math.log(mean_h / h0) / t, se_h / mean_h / t
    else:
        # Every chain has fixed by T (H = 0, whose log is undefined): the rate is taken
        # from the last recorded generation at which some chain still had diversity.
        gens = np.asarray(result.generations)
        alive = np.flatnonzero((gens > 0) & (agg["mean"] > 0) & (agg["stderr"] > 0))
        if t and h0 > 0 and alive.size:
            j = int(alive[-1])
            g, m, e = int(gens[j]), float(agg["mean"][j]), float(agg["stderr"][j])
            rate, se = -math.log(m / h0) / g, e / m / g
            note = (f"from generations 0-{g}: every chain had fixed on one category by "
                    f"{int(gens[j + 1]) if j + 1 < len(gens) else t}")  # fmt: skip
        else:
            rate, se = math.nan, math.nan
            why = ("every chain fixed on one category before the first recorded generation: "
                   "record more often (--record-every) to see the rate")  # fmt: skip
    plain = cfg.wright_fisher
    exact = -math.log1p(-1.0 / cfg.num_samples) if plain and cfg.num_samples > 1 else None
    if exact is None:
        why_exact = ("the exact rate -log(1 - 1/n) holds under replace without smoothing, "
                     "decoding or curation")  # fmt: skip
    else:
        why_exact = None
    return {"rate": rate, "rate_se": se, "level": mean_h, "level_se": se_h, "theory_rate": exact,
            "why_rate": why, "rate_note": note, "why_theory_rate": why_exact,
            "theory_level": s.get("theory_mean_final_heterozygosity"),
            "why_theory_level": s.get("why_theory_mean_final_heterozygosity"),
            "start_level": h0}  # fmt: skip


FAMILY = Family(
    name="tokens",
    config=TokenConfig,
    runner="collapsesim.experiments.tokens",
    help="""Run token chains: a categorical distribution over K categories, sampled and refitted.

Under replace with no decoding this is the Wright-Fisher model: rare tokens vanish
for ever, and each chain ends on a single token.""",
    kind="chains",
    table=table,
    plot="collapsesim.plots:plot_tokens",
    plot_help="rank-frequency curves at several generations, entropy and support over generations",
    scan={
        "samples": "num_samples",
        "fresh-fraction": "fresh_fraction",
        "keep-fraction": "keep_fraction",
        "temperature": "temperature",
        "select-strength": "select_strength",
        "best-of": "best_of",
    },
    measure=measure,
    cluster=True,
    deprecated={
        "--init": ("original", "--init is now --original; --init goes in the next release")
    },
    headline="heterozygosity",
)
