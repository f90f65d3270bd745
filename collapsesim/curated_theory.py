"""Closed forms for the Gaussian chain under ``replace`` with curation (:mod:`.curation`).

Model 1 is fitted to n real draws, so ``sigma_1 = sigma0 sqrt(chi2_{n-1} / (n - d))``
whatever the operators; from model 1 on, generation t's kept draws have a law that
depends on the operators, and where it is a scale family of the model's (sampling bias,
``self-interval``, and the correction, which is affine) the moments of ``sigma_T``
follow in closed form. With ``c_k = E[(chi2_{n-1} / (n - d))^(k/2)]``:

* sampling bias lambda: the draws are N(mu_t, (lambda sigma_t)^2), so
  ``sigma_{t+1} = lambda sigma_t sqrt(chi2_{n-1} / (n - d))`` for t >= 1, and
  ``E[sigma_T^k] = sigma0^k c_k^T lambda^(k (T - 1))``; ``log sigma_T`` is shifted by
  ``(T - 1) log lambda`` (its spread and the shape of its law unchanged), and the mean's
  spread is ``Var(mu_T) = sigma0^2 / n sum_{t < T} (lambda^2 c_2)^t``.
* ``self-interval`` with half-width b (and bias lambda): a kept draw is
  ``mu_t + lambda sigma_t y`` with y a standard normal truncated to ``|y| <= b / lambda``,
  whose variance is ``v(a) = 1 - 2 a phi(a) / (2 Phi(a) - 1)`` at ``a = b / lambda``; the
  sum of squared deviations of n i.i.d. draws has mean ``(n - 1)`` times it, so
  ``E[sigma_T^2] = sigma0^2 c_2 (c_2 lambda^2 v(a))^(T - 1)``, and a candidate is kept
  with probability ``2 Phi(a) - 1``.
* correction with fraction f: the map ``x -> (1 - f) x + f T(x)``, with T the optimal
  transport ``mu0 + sigma0 (x - mu_t) / sigma_t`` from the model to the original, sends
  its draws to ``N(mu_t + f (mu0 - mu_t), ((1 - f) sigma_t + f sigma0)^2)`` (with bias
  lambda, draws of std ``lambda sigma_t``, to std ``lambda ((1 - f) sigma_t + f sigma0)``),
  so ``E[sigma_{t+1} | sigma_t] = c_1 lambda ((1 - f) sigma_t + f sigma0)`` and the second
  moment likewise: ``(1, E sigma_t, E sigma_t^2)`` evolves by a fixed 3 x 3 matrix,
  whose powers give every T. They converge (the chain's stationary law) when
  ``c_1 (1 - f) lambda < 1`` and ``c_2 ((1 - f) lambda)^2 < 1``: always for f > 0
  without bias; a bias above 1 can outrun the correction and the moments then grow.

``soft`` keeps the chain Gaussian (the kept law is the precision-weighted Gaussian of
:func:`collapsesim.kernels._curation.law`) but its scale map ``s / sqrt(1 + beta s^2)``
is not linear, and ``interval``, ``top``, ``self-top`` and ``best-of`` keep draws whose
law has no closed form: for those :mod:`tests.naive` holds reference loops the kernels
are matched against in distribution. Each function raises :class:`NoClosedForm` where
it has none.

References:
    N. Gillman et al., "Self-correcting self-consuming loops for generative model
    training", 2024 (the correction operator); S. Alemohammad et al., "Self-consuming
    generative models go MAD", 2023 (sampling bias).
"""

from __future__ import annotations

import math

import numpy as np

from . import theory
from .curation import Curation, candidates_of_top
from .theory import NoClosedForm

__all__ = [
    "candidates",
    "collapse_rate",
    "mean_log_std",
    "moment_std",
    "quantile_std",
    "std_log_std",
    "truncated_variance",
    "var_mean",
]


def _only(cur: Curation, regime: str, *allowed: str) -> None:
    """NoClosedForm unless the regime is replace and only ``allowed`` operators act."""
    if regime != "replace":
        raise NoClosedForm(f"no closed form for curation under regime {regime!r}")
    acting = {
        "bias": cur.sampling_bias != 1.0,
        "self-interval": cur.select == "self-interval",
        "correction": cur.correction > 0,
    }
    other = cur.select not in ("none", "self-interval") or cur.best_of > 1
    if other or any(on and name not in allowed for name, on in acting.items()):
        raise NoClosedForm(f"no closed form for {cur.describe()}")


def truncated_variance(a: float) -> float:
    """``v(a) = 1 - 2 a phi(a) / (2 Phi(a) - 1)``: the variance of N(0, 1) kept on |y| <= a.

    Below a = 1 the closed form loses digits to cancellation (all of them by a = 1e-8), so
    there it is the ratio of the series of ``int_0^a y^2 e^(-y^2/2) dy`` and
    ``int_0^a e^(-y^2/2) dy`` (terms ``(-1/2)^k / k! a^(2k+3) / (2k+3)`` and
    ``.. a^(2k+1) / (2k+1)``), exact to rounding in 30 terms.
    """
    if a >= 1.0:
        mass = math.erf(a / math.sqrt(2.0))
        return 1.0 - 2.0 * a * math.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi) / mass
    num = den = 0.0
    term = 1.0  # (-1/2)^k / k!
    for k in range(30):
        num += term * a ** (2 * k + 2) / (2 * k + 3)
        den += term * a ** (2 * k) / (2 * k + 1)
        term *= -0.5 / (k + 1)
    return num / den


def _step(k: float, n: int, ddof: int) -> float:
    """``c_k = E[(chi2_{n-1} / (n - d))^(k/2)]``."""
    return math.exp(theory.log_step_moment(k, n, ddof))


def moment_std(
    cur: Curation, k: int, generations: int, n: int, ddof: int = 0, regime: str = "replace"
) -> float:
    """``E[sigma_T^k] / sigma0^k`` under the operators ``cur`` (see the module docstring).

    Raises:
        NoClosedForm: the operators (or k) have none: bias alone has every k; with
            self-interval, k = 2; with the correction, k = 1 and 2.
    """
    t = int(generations)
    _only(cur, regime, "bias", "self-interval", "correction")
    if t == 0:
        return 1.0
    lam = cur.sampling_bias
    if cur.select == "self-interval":
        if k != 2 or cur.correction > 0:
            raise NoClosedForm("self-interval has a closed form for E[sigma_T^2] alone")
        c2 = _step(2, n, ddof)
        log_factor = (
            math.log(c2)
            + 2 * math.log(lam)
            + math.log(truncated_variance(cur.select_strength / lam))
        )
        with np.errstate(over="ignore", under="ignore"):  # past the double range: inf or 0
            return float(c2 * np.exp((t - 1) * log_factor))
    if cur.correction == 0:
        with np.errstate(over="ignore", under="ignore"):
            return float(
                np.exp(t * theory.log_step_moment(k, n, ddof) + k * (t - 1) * math.log(lam))
            )
    if k not in (1, 2):
        raise NoClosedForm("the correction has closed forms for E[sigma_T] and E[sigma_T^2]")
    f = cur.fraction
    c1, c2 = _step(1, n, ddof), _step(2, n, ddof)
    # The kept draws' std: lambda ((1 - f) sigma_t + f) (sigma0 = 1), then the chi factor.
    a, b = (1.0 - f) * lam, f * lam
    step = np.array(
        [[1.0, 0.0, 0.0], [c1 * b, c1 * a, 0.0], [c2 * b * b, c2 * 2 * a * b, c2 * a * a]]
    )
    first = np.array([1.0, c1, c2])  # (1, E sigma_1, E sigma_1^2)
    return float((np.linalg.matrix_power(step, t - 1) @ first)[k])


def mean_log_std(
    cur: Curation, generations: int, n: int, ddof: int = 0, sigma0: float = 1.0,
    regime: str = "replace",
) -> float:  # fmt: skip
    """``E[log sigma_T]``: uncurated, plus ``(T - 1) log lambda`` (sampling bias alone)."""
    _only(cur, regime, "bias")
    t = int(generations)
    shift = (t - 1) * math.log(cur.sampling_bias) if t > 0 else 0.0
    return float(theory.mean_log_std(t, n, ddof, sigma0)) + shift


def std_log_std(
    cur: Curation, generations: int, n: int, ddof: int = 0, regime: str = "replace"
) -> float:
    """The spread of ``log sigma_T``, which the sampling bias does not change."""
    _only(cur, regime, "bias")
    return float(theory.std_log_std(generations, n, ddof))


def collapse_rate(
    cur: Curation, generations: int, n: int, ddof: int = 0, regime: str = "replace"
) -> float:
    """``(log sigma0 - E[log sigma_T]) / T``: ``rate - (T - 1) / T log lambda``."""
    _only(cur, regime, "bias")
    t = int(generations)
    base = theory.collapse_rate(n, ddof)
    return base - (t - 1) / t * math.log(cur.sampling_bias) if t > 0 else base


def var_mean(
    cur: Curation, generations: int, n: int, ddof: int = 0, sigma0: float = 1.0,
    regime: str = "replace",
) -> float:  # fmt: skip
    """``Var(mu_T) = sigma0^2 / n sum_{t < T} (lambda^2 c_2)^t`` (sampling bias alone)."""
    _only(cur, regime, "bias")
    log_r = 2 * math.log(cur.sampling_bias) + math.log(_step(2, n, ddof))
    t = int(generations)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if log_r == 0.0:
            total = np.float64(t)
        elif log_r > 0:  # sum_{t' < T} r^t' = (r^T - 1) / (r - 1), r^T past the doubles: inf
            total = np.expm1(t * log_r) / np.expm1(log_r)
        else:
            total = -np.expm1(t * log_r) / -np.expm1(log_r)
        return float(np.float64(sigma0) * np.float64(sigma0) * total / n)


def quantile_std(
    cur: Curation, q: np.ndarray, generations: int, n: int, ddof: int = 0,
    sigma0: float = 1.0, regime: str = "replace",
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Quantiles of ``sigma_T`` and the density of ``log sigma_T`` there (bias alone:
    the uncurated ones times ``lambda^(T - 1)``, the density unchanged)."""
    _only(cur, regime, "bias")
    qs, dens = theory.quantile_std(q, generations, n, ddof, sigma0)
    with np.errstate(over="ignore", under="ignore"):
        shift = max(generations - 1, 0) * math.log(cur.sampling_bias)
        return np.exp(np.log(qs) + shift), dens


def candidates(cur: Curation, n: int, *, gaussian: bool = True) -> float:
    """Candidates drawn per kept sample in a curated generation, where it is a constant.

    Args:
        cur: the operators.
        n: the synthetic samples a generation keeps (n less the real share).
        gaussian: whether the chain is Gaussian (``self-interval`` then keeps a fixed
            share of draws).

    Raises:
        NoClosedForm: ``interval`` and ``soft`` (and ``self-interval`` outside the Gaussian
            chain), whose rate of keeping depends on the model.
    """
    if cur.select == "self-interval" and gaussian:
        a = cur.select_strength / cur.sampling_bias
        return 1.0 / math.erf(a / math.sqrt(2.0))
    if cur.select in ("top", "self-top"):
        return candidates_of_top(n, cur.select_strength) / n
    if cur.select != "none":
        raise NoClosedForm(f"the rate of keeping of {cur.select} depends on the model")
    return float(cur.best_of)
