"""The training-set assembly of every data regime, written once as Numba building blocks.

A family's kernel draws its model's samples and fits its model; what a generation trains
on is decided here (see :mod:`collapsesim.regimes` for the regimes and their sources):

* which regimes keep a pool of every sample so far (:func:`pools`), how many of a
  generation's n training points the model draws (:func:`synthetic_count`) and when the
  real share is drawn from the original (:func:`draws_real`: fresh draws every generation,
  keep-original only its generation-0 share, which is then kept);
* for kernels that hold samples: the training rows (:func:`training_rows`) and the
  subsample without replacement of ``accumulate-subsample`` (:func:`subsample_front`);
* for kernels that hold sufficient statistics: the exact merge of two groups'
  (count, mean, M2) (:func:`merge`) and the training set's statistics (:func:`pooled_fit`).

The codes are :data:`collapsesim.regimes.CODES`; Numba freezes these module constants into
the compiled kernels.

References:
    T. F. Chan, G. H. Golub and R. J. LeVeque, "Updating formulae and a pairwise
    algorithm for computing sample variances", Stanford CS report STAN-CS-79-773, 1979.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..regimes import CODE_ACCUMULATE as ACCUMULATE
from ..regimes import CODE_ACCUMULATE_SUBSAMPLE as ACCUMULATE_SUBSAMPLE
from ..regimes import CODE_FRESH as FRESH
from ..regimes import CODE_KEEP_ORIGINAL as KEEP_ORIGINAL
from ..regimes import CODE_REPLACE as REPLACE
from . import _rng
from ._flags import JIT

__all__ = [
    "ACCUMULATE",
    "ACCUMULATE_SUBSAMPLE",
    "FRESH",
    "KEEP_ORIGINAL",
    "REPLACE",
    "draws_real",
    "merge",
    "pooled_fit",
    "pools",
    "subsample_front",
    "synthetic_count",
    "training_rows",
]


@njit(**JIT, inline="always")
def pools(regime):
    """Whether the regime keeps every sample so far (accumulate, accumulate-subsample)."""
    return regime in (ACCUMULATE, ACCUMULATE_SUBSAMPLE)


@njit(**JIT, inline="always")
def synthetic_count(regime, n, num_real):
    """How many of a generation's n training points the current model draws."""
    return n - num_real if regime in (FRESH, KEEP_ORIGINAL) else n


@njit(**JIT, inline="always")
def draws_real(regime, t):
    """Whether generation t draws the real share from the original.

    ``fresh`` draws it anew every generation; ``keep-original`` draws it at generation 0
    and keeps it for every later training set.
    """
    return regime == FRESH or (regime == KEEP_ORIGINAL and t == 0)


@njit(**JIT, inline="always")
def training_rows(regime, pool, size, own, n):
    """The rows generation t trains on (after :func:`subsample_front` where it applies).

    Args:
        regime: the regime code.
        pool: a chain's pool of every sample so far, rows on axis 0 (pooling regimes).
        size: rows filled in ``pool``.
        own: the generation's own training rows (n of them) for the other regimes.
        n: the training-set size.
    """
    if regime == ACCUMULATE:
        return pool[:size]
    if regime == ACCUMULATE_SUBSAMPLE:
        return pool[:n]
    return own


@njit(**JIT, inline="always")
def subsample_front(rows, size, n, s0, s1):
    """Move n of the first ``size`` rows, drawn uniformly without replacement, to the front.

    A partial Fisher-Yates shuffle: the pool is a multiset, so permuting it loses nothing.
    ``rows`` is 2-D (rows, features); pass ``x.reshape((x.shape[0], 1))`` for scalars.

    Returns:
        The stream state ``(s0, s1)`` after the n draws.
    """
    d = rows.shape[1]
    for i in range(n):
        j, s0, s1 = _rng.integer_below(np.uint64(size - i), s0, s1)
        k = i + np.int64(j)
        for q in range(d):
            tmp = rows[i, q]
            rows[i, q] = rows[k, q]
            rows[k, q] = tmp
    return s0, s1


@njit(**JIT, inline="always")
def merge(na, ma, m2a, nb, mb, m2b):
    """Merge two groups' (count, mean, M2) exactly (Chan et al.)."""
    if na == 0.0:
        return nb, mb, m2b
    if nb == 0.0:
        return na, ma, m2a
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), m2a + m2b + delta * delta * (na * nb / n)


@njit(**JIT, inline="always")
def pooled_fit(regime, pn, pmean, pm2, gn, gmean, gm2, rn, rmean, rm2):
    """The training set's (count, mean, M2) from its groups' statistics.

    Args:
        regime: accumulate, fresh or keep-original.
        pn, pmean, pm2: the pool of every generation so far (accumulate).
        gn, gmean, gm2: the group the current model drew.
        rn, rmean, rm2: the real share (fresh or keep-original; count 0 otherwise).

    Returns:
        ``(pn, pmean, pm2, tn, tmean, tm2)``: the pool after this generation and the
        training set's statistics.
    """
    if regime == ACCUMULATE:
        pn, pmean, pm2 = merge(pn, pmean, pm2, gn, gmean, gm2)
        return pn, pmean, pm2, pn, pmean, pm2
    tn, tmean, tm2 = merge(gn, gmean, gm2, rn, rmean, rm2)
    return pn, pmean, pm2, tn, tmean, tm2
