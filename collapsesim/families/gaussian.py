"""The Gaussian family: fit N(mu, sigma^2) to n samples, draw n from the fit, repeat."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from .. import curated_theory, metrics, theory
from ..config import (
    BACKENDS,
    MAX_SAMPLES,
    METHODS,
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
    candidates_of_top,
    check_curation,
    opt_best_of,
    opt_correction,
    opt_reward,
    opt_sampling_bias,
    opt_select,
    opt_select_strength,
)
from ..regimes import Regime, real_count, sufficient_allowed, theory_regime
from ._family import Family
from ._show import (
    EXACT_SE,
    NO_SE,
    NO_Z,
    UNDERSAMPLED,
    Notes,
    cost_row,
    curation_title,
    fmt,
    frame,
    regime_text,
    ztext,
)

__all__ = ["FAMILY", "GaussianConfig", "measure", "table"]


@dataclass(frozen=True, slots=True)
class GaussianConfig(ChainConfig):
    """The Gaussian chain: fit N(mu, sigma^2) to n samples, sample, refit, T times."""

    num_chains: int = opt_chains(1000)
    num_generations: int = opt_generations(1000)
    num_samples: int = opt_samples(1000, "Training-set size n of every generation (>= 2).",
                                   range=(2, MAX_SAMPLES))  # fmt: skip
    ddof: int = opt(0, "0: maximum-likelihood std; 1: unbiased variance.", range=(0, 1))
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
    final_chains: int = opt_final_chains()
    sampling_bias: float = opt_sampling_bias()
    select: str = opt_select()
    select_strength: float = opt_select_strength()
    best_of: int = opt_best_of()
    reward: str = opt_reward()
    correction: float = opt_correction()
    backend: str = opt_backend()
    precision: str = opt_precision()

    def __post_init__(self) -> None:
        check_ranges(self)
        cur = check_curation(self, jax=True)
        checks = [
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
        if cur.active and self.backend == "jax" and regime is Regime.ACCUMULATE_SUBSAMPLE:
            raise ConfigError(
                "curation of accumulate-subsample runs on the numba backend (README: Curation)"
            )
        if self.method == "sufficient" and not cur.exact_gaussian:
            raise ConfigError(
                f"method 'sufficient' cannot run {cur.describe()}: only sampling bias, soft "
                "selection and correction keep a Gaussian's draws Gaussian (use --method sample)"
            )
        self._check_held(16, len(metrics.GAUSSIAN_METRICS))

    def memory_bytes(self) -> int:
        """A floor on the run's peak memory: records, per-chain results, samples and pools.

        Records hold mu and log sigma; each chain's final metrics are sorted for the
        quantiles; the sample method holds n draws per thread, and accumulate-subsample
        a pool of n x T samples for at least one chain.
        """
        n, t = self.num_samples, self.num_generations
        need = self.held_bytes(16, len(metrics.GAUSSIAN_METRICS), per_chain=8 * 16)
        if self.resolved_method == "sample":
            need += 16 * n * (os.cpu_count() or 1)
            cur = self.curation
            if cur.active:  # the kept draws' buffers of each thread
                room = max(n, 2 * cur.best_of)
                if cur.select in ("top", "self-top"):
                    room = max(room, candidates_of_top(n, cur.select_strength))
                need += 16 * room * (os.cpu_count() or 1)
        if Regime(self.regime) is Regime.ACCUMULATE_SUBSAMPLE:
            need += 8 * n * max(t, 1)
        return need

    @property
    def resolved_method(self) -> str:
        """``sample`` or ``sufficient``: auto takes sufficient wherever it is exact."""
        if self.method != "auto":
            return self.method
        exact = sufficient_allowed(Regime(self.regime)) and Curation.of(self).exact_gaussian
        return "sufficient" if exact else "sample"

    @property
    def curation(self) -> Curation:
        """The curation operators of this run."""
        return Curation.of(self)

    @property
    def num_real(self) -> int:
        """Real samples in each training set (0 for replace and accumulate)."""
        return real_count(
            Regime(self.regime), self.num_samples, self.fresh_fraction, self.keep_fraction
        )

    def resolved_precision(self) -> str:
        """float32 or float64: auto takes float64 on CPU and float32 on accelerators."""
        return resolve_precision(self.precision)

    @property
    def values_per_record(self) -> int:
        """Held values counted per chain and recorded generation when choosing a stride.

        One, so that the default 1000 x 1000 experiment records every generation.
        """
        return 1


def table(result: Any) -> Any:
    """The final generation's statistics beside their exact values, z-scores and the original.

    The mass beyond 3 sigma0 is heavy-tailed across chains (a few chains keep a wide fit
    while most have collapsed): its median stands beside its mean. The ± column holds the
    standard error each z-score divides by: the exact one where theory gives it (marked),
    the Monte Carlo one otherwise.
    """
    s = result.summary
    title = (
        f"{s['chains']} chains x {s['generations']} generations, n = {s['samples']}, "
        f"ddof {s['ddof']}, {regime_text(s)}, {s['method']}, seed {s['seed']} "
        f"({s['seconds']:.2f} s)"
    )
    out = frame(title, ("final generation", "simulation", "± s.e.", "theory", "z", "original"))
    sigma0 = s["sigma0"]
    # label, value key, standard-error key (exact where theory_<key> exists), original
    rows: list[tuple[str, str, str, Any]] = [
        ("mean std", "mean_final_std", "theory_stderr_final_std", sigma0),
        ("median std", "median_final_std", "stderr_median_final_std", sigma0),
        ("5% quantile std", "q05_final_std", "stderr_q05_final_std", sigma0),
        ("95% quantile std", "q95_final_std", "stderr_q95_final_std", sigma0),
        ("mean log std", "mean_log_final_std", "stderr_log_final_std", math.log(sigma0)),
        ("collapse rate -dE\\[log std]/dT", "collapse_rate", "stderr_collapse_rate", None),
        ("variance of the mean", "var_final_mean", "stderr_var_final_mean", 0.0),
        ("mean W2 to the original", "mean_final_w2", "stderr_final_w2", 0.0),
        ("median W2 to the original", "median_final_w2", "stderr_median_final_w2", 0.0),
        ("mean mass beyond 3 sigma0", "mean_final_tail_mass", "stderr_final_tail_mass",
         s.get("original_tail_mass")),
        ("median mass beyond 3 sigma0", "median_final_tail_mass",
         "stderr_median_final_tail_mass", s.get("original_tail_mass")),
    ]  # fmt: skip
    if "curation" in s:
        out.title = title + curation_title(s)
        rows[7:7] = [
            ("mean variance", "mean_final_var", "stderr_final_var", sigma0 * sigma0),
            *((label, key, se, 1.0) for label, key, se in cost_row(s)),
        ]
    notes = Notes()
    for label, key, se, original in rows:
        if key not in s:  # a summary stored by an older release
            continue
        err = s.get(se)
        exact = se.startswith("theory_") and err is not None
        if se.startswith("theory_") and err is None:
            err = s.get(se[len("theory_") :])  # no exact error: the Monte Carlo one
        if exact:
            notes.note(EXACT_SE)
        theory, why = s.get(f"theory_{key}"), s.get(f"why_theory_{key}")
        z = s.get(f"z_{key}")
        flag = exact and theory is not None and err is not None and err > abs(theory)
        out.add_row(
            label,
            fmt(s[key]),
            "" if not se else notes.cell(err, s.get(f"why_{se}") or NO_SE, 2) + "*" * exact,
            notes.cell(theory, why),
            (ztext(z) + notes.mark(UNDERSAMPLED) * flag)
            if z is not None
            else "—" + notes.mark(why if theory is None else NO_Z),
            "" if original is None else fmt(float(original)),
        )
    return notes.attach(out)


def measure(cfg: GaussianConfig, result: Any) -> dict[str, Any]:
    """A scan point: the rate -dE[log sigma]/dT, the level E[sigma_T] and the exact rate."""
    s = result.summary  # statistics of every chain (final.parquet may keep a sample)
    rate, se, level, level_se = (
        math.nan if s.get(key) is None else float(s[key])
        for key in ("collapse_rate", "stderr_collapse_rate", "mean_final_std", "stderr_final_std")
    )
    regime = theory_regime(cfg.regime, cfg.num_real)  # fresh 0 is replace
    why = None
    try:
        if cfg.curation.active:
            exact = curated_theory.collapse_rate(
                cfg.curation, cfg.num_generations, cfg.num_samples, cfg.ddof, regime
            )
        else:
            exact = theory.collapse_rate(cfg.num_samples, cfg.ddof, regime)
    except theory.NoClosedForm as err:
        exact, why = None, str(err)
    return {"rate": rate, "rate_se": se, "level": level, "level_se": level_se,
            "theory_rate": exact, "why_theory_rate": why,
            "theory_level": s.get("theory_mean_final_std"),
            "why_theory_level": s.get("why_theory_mean_final_std"),
            "start_level": cfg.sigma0}  # fmt: skip


FAMILY = Family(
    name="gaussian",
    config=GaussianConfig,
    runner="collapsesim.experiments.gaussian",
    help="""Run the Gaussian chain: fit N(mu, sigma^2) to n samples, draw n from the fit, repeat.

With no options this is the 1000 x 1000 experiment: 1000 chains of 1000 generations
with n = 1000, whose std collapses (E\\[sigma_1000] = 0.4721 exactly for the MLE fit).""",
    kind="chains",
    table=table,
    plot="collapsesim.plots:plot_gaussian",
    plot_help="sigma over generations and the histogram of final log sigma",
    scan={
        "samples": "num_samples",
        "fresh-fraction": "fresh_fraction",
        "keep-fraction": "keep_fraction",
        "ddof": "ddof",
        "sampling-bias": "sampling_bias",
        "select-strength": "select_strength",
        "best-of": "best_of",
        "correction": "correction",
    },
    measure=measure,
    cluster=True,
    headline="sigma",
)
