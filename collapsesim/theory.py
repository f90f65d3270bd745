"""Closed forms for the Gaussian chain under ``replace``.

Model t+1 is fitted to n draws of model t, with variance ``M2 / (n - ddof)``. By
Cochran's theorem the fitted mean and ``M2 / sigma_t^2 ~ chi2(n - 1)`` are independent,
so ``sigma_{t+1} = sigma_t * sqrt(chi2_{n-1} / (n - ddof))`` with fresh, independent
factors each generation: ``log sigma_T`` is a random walk and every moment of
``sigma_T`` is a power of one number. No closed form is given for the other regimes,
whose fitted scale depends on the pooled or real data in ways that do not factorise;
the functions here say so by raising :class:`NoClosedForm`.

References:
    I. Shumailov, Z. Shumaylov, Y. Zhao, N. Papernot, R. Anderson and Y. Gal,
    "AI models collapse when trained on recursively generated data", Nature 631,
    755-759 (2024), Section 4.1 and Supplementary Information (single-dimensional
    Gaussian): the variance of the fitted std collapses and ``E[sigma_T]`` decays.
    W. G. Cochran, "The distribution of quadratic forms in a normal system",
    Proc. Cambridge Philos. Soc. 30(2), 178-191 (1934).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import special

__all__ = [
    "NoClosedForm",
    "collapse_rate",
    "log_std_cdf_pdf",
    "log_step_moment",
    "mean_log_std",
    "moment_std",
    "quantile_std",
    "std_log_std",
    "token_fixation_time_diffusion",
    "token_heterozygosity",
    "token_mean_mass",
    "token_restricted_fixation_time",
    "token_support_fixation",
    "var_mean",
]


class NoClosedForm(ValueError):
    """Raised where the requested quantity has no closed form under the given regime."""


def _check(num_samples: int, ddof: int, regime: str) -> None:
    if regime != "replace":
        raise NoClosedForm(f"no closed form for the Gaussian chain under regime {regime!r}")
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1, got {ddof}")
    if num_samples < 2 or num_samples <= ddof:
        raise ValueError(f"need num_samples >= 2, got {num_samples}")


def log_step_moment(k: float, num_samples: int, ddof: int = 0) -> float:
    """Return ``log E[(chi2_{n-1} / (n - ddof))^(k/2)]``, the log growth of ``E[sigma^k]``.

    Args:
        k: the moment, ``k > -(n - 1)``.
        num_samples: n, the training-set size.
        ddof: 0 or 1.

    Returns:
        ``(k/2) log(2 / (n - ddof)) + lgamma((n - 1 + k) / 2) - lgamma((n - 1) / 2)``.

    References:
        The chi-square moment ``E[X^(k/2)] = 2^(k/2) Gamma((v + k)/2) / Gamma(v/2)``.
    """
    v = num_samples - 1
    return 0.5 * k * math.log(2.0 / (num_samples - ddof)) + float(
        special.gammaln(0.5 * (v + k)) - special.gammaln(0.5 * v)
    )


def moment_std(
    k: float,
    generations: int | np.ndarray,
    num_samples: int,
    ddof: int = 0,
    sigma0: float = 1.0,
    regime: str = "replace",
) -> np.ndarray:
    """Return ``E[sigma_T^k]`` exactly.

    Args:
        k: the moment (1 for the mean std, 2 for the mean variance).
        generations: T, scalar or int array of any shape.
        num_samples: n per generation.
        ddof: 0 or 1.
        sigma0: the original std.
        regime: only ``"replace"`` has this closed form.

    Returns:
        ``sigma0^k * E[(chi2_{n-1}/(n - ddof))^(k/2)]^T``, float64, shape of ``generations``.

    References:
        Shumailov et al., Nature 2024 (see the module docstring); for ddof 0,
        n = T = 1000 this gives E[sigma_1000] = 0.4721.
    """
    _check(num_samples, ddof, regime)
    t = np.asarray(generations, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):  # past the double range: inf or 0
        return np.exp(k * math.log(sigma0) + t * log_step_moment(k, num_samples, ddof))


def collapse_rate(num_samples: int, ddof: int = 0, regime: str = "replace") -> float:
    """Return the collapse rate ``-dE[log sigma_T]/dT`` per generation.

    Args:
        num_samples: n per generation.
        ddof: 0 or 1.
        regime: only ``"replace"`` has this closed form.

    Returns:
        ``-0.5 (digamma((n-1)/2) + log(2/(n - ddof)))``; for large n about
        ``(2 - ddof) / (2n)``, so 1/n for the MLE fit (a log-log slope of -1 against n).

    References:
        ``E[log chi2_v] = digamma(v/2) + log 2``.
    """
    _check(num_samples, ddof, regime)
    return -0.5 * float(
        special.digamma(0.5 * (num_samples - 1)) + math.log(2.0 / (num_samples - ddof))
    )


def mean_log_std(
    generations: int | np.ndarray,
    num_samples: int,
    ddof: int = 0,
    sigma0: float = 1.0,
    regime: str = "replace",
) -> np.ndarray:
    """Return ``E[log sigma_T] = log sigma0 - T * collapse_rate(n, ddof)`` exactly.

    Args:
        generations: T, scalar or int array.
        num_samples: n per generation.
        ddof: 0 or 1.
        sigma0: the original std.
        regime: only ``"replace"`` has this closed form.

    Returns:
        float64 array of the shape of ``generations``.
    """
    rate = collapse_rate(num_samples, ddof, regime)
    return math.log(sigma0) - rate * np.asarray(generations, dtype=np.float64)


def std_log_std(
    generations: int | np.ndarray, num_samples: int, ddof: int = 0, regime: str = "replace"
) -> np.ndarray:
    """Return the standard deviation of ``log sigma_T``: ``sqrt(T trigamma((n-1)/2) / 4)``.

    Args:
        generations: T, scalar or int array.
        num_samples: n per generation.
        ddof: 0 or 1 (the shift by ``log(n - ddof)`` does not change the spread).
        regime: only ``"replace"`` has this closed form.

    Returns:
        float64 array of the shape of ``generations``.

    References:
        ``Var[log chi2_v] = trigamma(v/2)``; the T increments are independent.
    """
    _check(num_samples, ddof, regime)
    t = np.asarray(generations, dtype=np.float64)
    return np.sqrt(0.25 * t * float(special.polygamma(1, 0.5 * (num_samples - 1))))


def var_mean(
    generations: int | np.ndarray,
    num_samples: int,
    ddof: int = 0,
    sigma0: float = 1.0,
    regime: str = "replace",
) -> np.ndarray:
    """Return ``Var(mu_T)``, the spread of the fitted mean after T generations.

    ``mu_{t+1} = mu_t + sigma_t zbar_t`` with ``zbar_t ~ N(0, 1/n)`` independent of
    ``sigma_t``, so ``Var(mu_T) = sigma0^2/n * sum_{t<T} c^t`` with ``c = (n-1)/(n-ddof)``.

    Args:
        generations: T, scalar or int array.
        num_samples: n per generation.
        ddof: 0 or 1.
        sigma0: the original std.
        regime: only ``"replace"`` has this closed form.

    Returns:
        ddof 0: ``sigma0^2 (1 - (1 - 1/n)^T)``; ddof 1: ``T sigma0^2 / n``.
    """
    _check(num_samples, ddof, regime)
    t = np.asarray(generations, dtype=np.float64)
    n = num_samples
    with np.errstate(over="ignore"):
        s2 = np.float64(sigma0) * np.float64(sigma0)  # inf past 1e154, as the simulated variance
        if ddof == 1:
            return t * s2 / n
        return s2 * -np.expm1(t * math.log1p(-1.0 / n))


def _log_cf(s: np.ndarray, num_samples: int, ddof: int) -> np.ndarray:
    """Log characteristic function of one increment ``Y = log(sigma_{t+1}/sigma_t)``.

    ``E[exp(i s Y)] = (2/(n - ddof))^(i s/2) Gamma((n-1)/2 + i s/2) / Gamma((n-1)/2)``.
    """
    a = 0.5 * (num_samples - 1)
    return (
        0.5j * s * math.log(2.0 / (num_samples - ddof))
        + special.loggamma(a + 0.5j * s)
        - special.loggamma(a)
    )


def _inversion_grid(
    generations: int,
    num_samples: int,
    ddof: int,
    points: int = 8193,  # odd: Simpson's rule
) -> tuple[np.ndarray, np.ndarray]:
    # |phi(s)|^T decays like exp(-T trigamma(a) s^2 / 8) near 0 and at least
    # exponentially beyond; integrate until it is below 1e-17.
    sd = math.sqrt(0.25 * generations * float(special.polygamma(1, 0.5 * (num_samples - 1))))
    s_max = 20.0 / sd
    while generations * float(np.real(_log_cf(np.array([s_max]), num_samples, ddof))[0]) > -40.0:
        s_max *= 1.5
    s = np.linspace(0.0, s_max, points)
    return s, generations * _log_cf(s, num_samples, ddof)


def log_std_cdf_pdf(
    x: np.ndarray | float,
    generations: int,
    num_samples: int,
    ddof: int = 0,
    sigma0: float = 1.0,
    regime: str = "replace",
) -> tuple[np.ndarray, np.ndarray]:
    """Return the exact CDF and density of ``log sigma_T`` at ``x``.

    ``log sigma_T - log sigma0`` is a sum of T independent increments with the
    characteristic function of :func:`_log_cf`; Gil-Pelaez inversion gives
    ``F(x) = 1/2 - (1/pi) int_0^inf Im[e^{-isx} phi(s)^T] / s ds`` and
    ``f(x) = (1/pi) int_0^inf Re[e^{-isx} phi(s)^T] ds``, evaluated by Simpson's rule
    on a grid that reaches where ``|phi|^T < e^-40`` (accurate to about 1e-9).

    Args:
        x: points, any shape.
        generations: T >= 1.
        num_samples: n per generation.
        ddof: 0 or 1.
        sigma0: the original std.
        regime: only ``"replace"`` has this closed form.

    Returns:
        ``(cdf, pdf)`` float64 arrays of the shape of ``x``.

    References:
        J. Gil-Pelaez, "Note on the inversion theorem", Biometrika 38, 481-482 (1951).
    """
    _check(num_samples, ddof, regime)
    if generations < 1:
        raise ValueError("the distribution of log sigma_0 is a point mass")
    return _log_std_inverter(generations, num_samples, ddof, sigma0)(x)


def _newton_bisect(
    dist: Callable[[float], tuple[np.ndarray, np.ndarray]], p: float, lo: float, hi: float,
    xtol: float,
) -> float:  # fmt: skip
    """The x in [lo, hi] where the cdf of ``dist`` (``x -> (cdf, pdf)``) is p.

    Newton steps on the cdf, kept inside a bracket that bisection shrinks whenever a
    step would leave it; stops when the step or the bracket is below ``xtol``.
    """
    x = 0.5 * (lo + hi)
    for _ in range(200):
        cdf, pdf = (float(v) for v in dist(x))
        if cdf < p:
            lo = x
        else:
            hi = x
        step = (cdf - p) / pdf if pdf > 0 else math.inf
        new = x - step
        if not lo < new < hi:
            new = 0.5 * (lo + hi)
        if abs(new - x) < xtol or hi - lo < xtol:
            return new
        x = new
    return x


def _simpson(y: np.ndarray, h: float) -> np.ndarray:
    """Composite Simpson's rule along the last axis of ``y``, an odd number of points h apart."""
    w = np.full(y.shape[-1], 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return np.asarray(y @ w) * (h / 3.0)


def _log_std_inverter(
    generations: int, num_samples: int, ddof: int, sigma0: float
) -> Callable[[np.ndarray | float], tuple[np.ndarray, np.ndarray]]:
    """Return ``x -> (cdf, pdf)`` of ``log sigma_T``, with the transform computed once."""
    s, log_phi = _inversion_grid(generations, num_samples, ddof)
    h = float(s[1] - s[0])  # a uniform grid of an odd number of points
    phi = np.exp(log_phi)
    inv_s = np.zeros_like(s)
    inv_s[1:] = 1.0 / s[1:]
    # The limit of Im[e^{-isx} phi^T(s)] / s at s = 0 is T E[Y] - x.
    mean_sum = -generations * collapse_rate(num_samples, ddof)
    shift = math.log(sigma0)

    def evaluate(x: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        xs = np.atleast_1d(np.asarray(x, dtype=np.float64)) - shift
        phase = phi[None, :] * np.exp(-1j * s[None, :] * xs[:, None])
        integrand = np.imag(phase) * inv_s[None, :]
        integrand[:, 0] = mean_sum - xs
        cdf = 0.5 - _simpson(integrand, h) / math.pi
        pdf = _simpson(np.real(phase), h) / math.pi
        shape = np.shape(x)
        return np.clip(cdf, 0.0, 1.0).reshape(shape), pdf.reshape(shape)

    return evaluate


def quantile_std(
    q: float | np.ndarray,
    generations: int,
    num_samples: int,
    ddof: int = 0,
    sigma0: float = 1.0,
    regime: str = "replace",
) -> tuple[np.ndarray, np.ndarray]:
    """Return exact quantiles of ``sigma_T`` and the density of ``log sigma_T`` there.

    The density gives the standard error of a sample quantile from C chains:
    ``sqrt(q (1 - q) / C) / f(log x_q)`` in log space.

    Args:
        q: probabilities in (0, 1), scalar or array.
        generations: T.
        num_samples: n per generation.
        ddof: 0 or 1.
        sigma0: the original std.
        regime: only ``"replace"`` has this closed form.

    Returns:
        ``(quantiles of sigma_T, density of log sigma_T at their logs)``, shaped like ``q``.
    """
    _check(num_samples, ddof, regime)
    qs = np.atleast_1d(np.asarray(q, dtype=np.float64))
    if np.any((qs <= 0) | (qs >= 1)):
        raise ValueError("quantile probabilities must lie in (0, 1)")
    if generations == 0:
        return np.full(np.shape(q), sigma0), np.full(np.shape(q), np.inf)
    mean = float(mean_log_std(generations, num_samples, ddof, sigma0))
    sd = float(std_log_std(generations, num_samples, ddof))
    dist = _log_std_inverter(generations, num_samples, ddof, sigma0)
    out = np.empty_like(qs)
    dens = np.empty_like(qs)
    for i, p in enumerate(qs):
        lo, hi = mean - 8 * sd, mean + 8 * sd
        while float(dist(lo)[0]) > p:
            lo -= 8 * sd
        while float(dist(hi)[0]) < p:
            hi += 8 * sd
        root = _newton_bisect(dist, p, lo, hi, 1e-12 * max(1.0, abs(mean)))
        out[i] = math.exp(root)
        dens[i] = float(dist(root)[1])
    return out.reshape(np.shape(q)), dens.reshape(np.shape(q))


# --- Token chains: the Wright-Fisher model ------------------------------------------------
#
# Under ``replace`` with no smoothing and no decoding transform, the counts of the n tokens
# of generation t are Multinomial(n, p_t) and p_{t+1} = counts / n: the neutral
# Wright-Fisher model of population genetics with n gene copies and K alleles.
#
# References:
#     R. A. Fisher, "The genetical theory of natural selection" (1930); S. Wright,
#     "Evolution in Mendelian populations", Genetics 16, 97-159 (1931).
#     W. J. Ewens, "Mathematical Population Genetics I", 2nd ed., Springer (2004),
#     Sections 1.5 and 3.3: E[H_t] = H_0 (1 - 1/n)^t, and an allele fixes with
#     probability equal to its initial frequency.


def _token_checks(num_samples: int, p0: np.ndarray) -> np.ndarray:
    p0 = np.asarray(p0, dtype=np.float64)
    if num_samples < 1:
        raise ValueError(f"need num_samples >= 1, got {num_samples}")
    if p0.ndim != 1 or len(p0) < 2 or np.any(p0 < 0) or not abs(p0.sum() - 1) < 1e-9:
        raise ValueError("p0 must be a distribution over at least 2 categories")
    return p0


def _affine_power(a: float, b: float, x0: float, t: np.ndarray) -> np.ndarray:
    """``x_t`` of the recursion ``x_{t+1} = a x_t + b`` from ``x_0``, exactly."""
    at = np.power(a, t)
    if a == 1.0:
        return x0 + b * t
    return at * x0 + b * (1.0 - at) / (1.0 - a)


def token_heterozygosity(
    generations: np.ndarray | int,
    num_samples: int,
    p0: np.ndarray,
    regime: str = "replace",
    smoothing: float = 0.0,
    transformed: bool = False,
) -> np.ndarray:
    """Return E[1 - sum_i p_{t,i}^2] of model t (model 0 is ``p0``).

    ``replace``: with ``c ~ Multinomial(n, p_t)`` and ``p_{t+1} = (c + eps)/D``,
    ``D = n + K eps``, ``E[sum c_i^2 | p_t] = n (n - 1) sum p_{t,i}^2 + n``, so
    ``S_t = E[sum p_{t,i}^2]`` follows ``S_{t+1} = a S_t + b`` with ``a = n (n - 1) / D^2``,
    ``b = (n + 2 eps n + K eps^2) / D^2``. With ``eps = 0`` this is Wright-Fisher's
    ``H_t = H_0 (1 - 1/n)^t``.

    Raises:
        NoClosedForm: another regime, or a decoding transform.
    """
    p0 = _token_checks(num_samples, p0)
    if regime != "replace" or transformed:
        raise NoClosedForm("heterozygosity has a closed form under replace without decoding")
    n, k, eps = float(num_samples), len(p0), float(smoothing)
    d = n + k * eps
    # As ratios to D, which stay finite for any smoothing (D^2 passes the double range
    # from eps ~ 1e151 on).
    r, e = n / d, eps / d
    a = r * ((n - 1) / d)
    b = r / d + 2 * e * r + k * e * e
    s = _affine_power(a, b, float(np.sum(p0 * p0)), np.asarray(generations, dtype=np.float64))
    return 1.0 - s


def token_mean_mass(
    generations: np.ndarray | int,
    num_samples: int,
    p0: np.ndarray,
    mask: np.ndarray,
    regime: str = "replace",
    num_real: int = 0,
    smoothing: float = 0.0,
    transformed: bool = False,
) -> np.ndarray:
    """Return E[sum_{i in mask} p_{t,i}], the expected mass of a set of categories.

    Without smoothing the fitted distribution is a martingale under every regime
    (each new token is drawn from the current model, real ones from ``p0``, and
    subsamples are uniform), so the expected mass stays ``p0``'s. With smoothing,
    under ``replace``, ``fresh`` and ``keep-original`` (``r`` real tokens of n),
    ``m_{t+1} = ((n - r) m_t + r m_0 + eps |S|) / (n + K eps)``.

    Raises:
        NoClosedForm: a decoding transform, or smoothing while accumulating.
    """
    p0 = _token_checks(num_samples, p0)
    if transformed:
        raise NoClosedForm("a decoding transform biases the tokens; no closed form")
    gens = np.asarray(generations, dtype=np.float64)
    m0 = float(np.sum(p0[np.asarray(mask, dtype=bool)]))
    if smoothing == 0.0:
        return np.full(gens.shape, m0)
    if regime not in ("replace", "fresh", "keep-original"):
        raise NoClosedForm(f"no closed form for smoothed mass under regime {regime!r}")
    n, k, eps = float(num_samples), len(p0), float(smoothing)
    size = float(np.count_nonzero(mask))
    d = n + k * eps
    r = float(num_real) if regime != "replace" else 0.0
    return _affine_power((n - r) / d, (r * m0 + eps * size) / d, m0, gens)


def token_support_fixation(
    generations: np.ndarray | int, num_samples: int, p0: np.ndarray, *, max_flops: float = 5e10
) -> tuple[np.ndarray, np.ndarray]:
    """Return E[support of model t] and P(model t has a single category), exactly.

    Each category's count follows the two-allele Wright-Fisher chain, whose transition
    matrix is ``M[i, j] = Binomial(n, i/n)`` at ``j``; model 1's count of category i is
    Binomial(n, p0_i). Then ``P(category i alive at t) = 1 - (v_i M^(t-1))_0`` and,
    fixation events of different categories being disjoint, ``P(fixed at t) =
    sum_i (v_i M^(t-1))_n``. Categories with equal ``p0`` share one row; the rows are
    stepped through the generations, or ``M^(t-1)`` is formed by squaring, whichever
    costs less.

    The default bound admits the default run (n = 1000, T = 1000: ten squarings of a
    1001 x 1001 matrix, about a second on two cores).

    Raises:
        NoClosedForm: when both would cost more than ``max_flops``.
    """
    from scipy import stats

    p0 = _token_checks(num_samples, p0)
    n = num_samples
    gens = np.atleast_1d(np.asarray(generations, dtype=np.int64))
    values, mult = np.unique(p0, return_counts=True)
    t_max = int(gens.max()) if gens.size else 0
    rows = len(values)
    cost_step = 2.0 * rows * (n + 1) ** 2 * max(t_max - 1, 0)
    cost_power = 2.0 * (n + 1) ** 3 * 2 * max(math.log2(max(t_max, 2)), 1) * len(gens)
    if min(cost_step, cost_power) > max_flops:
        raise NoClosedForm(
            f"exact support and fixation for n = {n}, t = {t_max} cost {min(cost_step, cost_power):.1e} "
            f"flops, past the {max_flops:.0e} allowed"
        )
    grid = np.arange(n + 1)
    m = stats.binom.pmf(grid[None, :], n, grid[:, None] / n)
    v1 = stats.binom.pmf(grid[None, :], n, values[:, None])  # model 1's counts
    support = np.empty(len(gens))
    fixed = np.empty(len(gens))
    v, step = v1, 1
    for idx in np.argsort(gens, kind="stable"):
        t = int(gens[idx])
        if t == 0:
            support[idx] = float(np.count_nonzero(p0))
            fixed[idx] = float(np.count_nonzero(p0) == 1)
            continue
        if cost_step <= cost_power:
            while step < t:
                v = v @ m
                step += 1
            vt = v
        else:
            vt = v1 @ np.linalg.matrix_power(m, t - 1)
        support[idx] = float(np.sum(mult * (1.0 - vt[:, 0])))
        fixed[idx] = float(np.sum(mult * vt[:, n]))
    return support, fixed


def token_restricted_fixation_time(
    generations: int, num_samples: int, p0: np.ndarray, *, max_flops: float = 5e10
) -> float:
    """Return E[min(G, T)] exactly, G the first model with a single category, T = ``generations``.

    Fixation is absorbing, so ``E[min(G, T)] = sum_{t < T} (1 - P(model t is fixed))``,
    each term from :func:`token_support_fixation` (the Wright-Fisher chain under replace,
    without smoothing or decoding). Unlike the mean of G itself it is defined whether or
    not every chain has fixed by T, so a run of any length can be checked against it.

    Raises:
        NoClosedForm: when the chain's steps would cost more than ``max_flops``.
    """
    t = int(generations)
    if t <= 0:
        return 0.0
    _, fixed = token_support_fixation(np.arange(t), num_samples, p0, max_flops=max_flops)
    return float(np.sum(1.0 - np.clip(fixed, 0.0, 1.0)))


def token_fixation_time_diffusion(num_samples: int, p0: np.ndarray) -> float:
    """Return the diffusion approximation of E[G], the generations until one category holds
    every token: ``-2 n sum_i (1 - p_i) log(1 - p_i)``.

    The haploid Wright-Fisher chain of n tokens as a diffusion, time in units of n
    generations (Kimura and Ohta 1969 for two categories; Littler 1975 for K). It is an
    approximation, off by a fraction of order 1/n; :func:`token_restricted_fixation_time`
    is exact.
    """
    p = _token_checks(num_samples, p0)
    p = p[(p > 0) & (p < 1)]
    return float(-2.0 * num_samples * np.sum((1.0 - p) * np.log1p(-p)))
