"""The fit statistics: chi-square and the Poisson likelihood (Cash, C-stat).

``statistic="chi2"`` (the default) minimises ``sum((w * (mu - n))**2)``.
For counts, ``"cash"`` minimises the Poisson log-likelihood as Gammapy
defines it, ``C = 2 sum(mu - n ln mu)``, and ``"cstat"`` the same plus a
term of the data alone, ``2 sum(n ln n - n)``, so that it is the Poisson
deviance ``2 sum(mu - n + n ln(n / mu))``: about the number of samples for
a good fit, readable as a goodness of fit.  Both have the same minimum.

Every solver minimises the deviance as least squares of the **deviance
residuals** ``r = sign(mu - n) sqrt(d)``, ``d = 2 (mu - n + n ln(n/mu))``:
``sum(r**2)`` is the C-stat exactly and ``J^T r`` its exact gradient, so a
least-squares solver (scipy's, or parfit's batched one) converges to the
maximum of the likelihood.  Errors come from the inverse Fisher information
``sum(dmu dmu^T / mu)`` at the optimum (no reduced-chi-square scaling).

A model that is negative anywhere, or zero where counts are positive, has
an infinite statistic: solvers reject such a step and try a shorter one.

Examples
--------
>>> import numpy as np
>>> n = np.array([[0.0, 2.0, 5.0]])
>>> mu = np.array([[0.5, 2.0, 4.0]])
>>> valid = np.ones_like(n, dtype=bool)
>>> round(float(statistic_values("cstat", n, mu, None, valid)[0]), 6)
1.231436
>>> cash = statistic_values("cash", n, mu, None, valid)[0]
>>> bool(np.isclose(cash, 2 * np.sum(mu - n * np.log(mu))))
True
"""

from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "STATISTICS",
    "LIKELIHOOD_STATISTICS",
    "check_statistic",
    "is_likelihood",
    "deviance_residuals",
    "data_term",
    "statistic_values",
    "fisher_information",
]

#: The statistics ``statistic=`` accepts, with what each minimises.
STATISTICS = {
    "chi2": "chi-square, sum((weights * (model - data))**2) (the default)",
    "cash": "Poisson likelihood of counts, 2 sum(model - data ln model) (Cash 1979, as Gammapy)",
    "cstat": "Poisson deviance, cash + 2 sum(data ln data - data): a goodness of fit",
}

#: The statistics of counts (Poisson likelihood): no weights, data >= 0.
LIKELIHOOD_STATISTICS = ("cash", "cstat")

#: Below this relative distance of model from data, ``u - log1p(u)`` by its series.
_SERIES = 1e-3


def check_statistic(value: Any, what: str = "statistic") -> str:
    """Return ``value`` if it names a statistic, else raise naming the valid ones.

    Examples
    --------
    >>> check_statistic("cash")
    'cash'
    >>> check_statistic("poisson")
    Traceback (most recent call last):
    ...
    parfit.errors.InputError: statistic must be one of 'chi2', 'cash', 'cstat'; got 'poisson'
    """
    if not isinstance(value, str) or value not in STATISTICS:
        raise InputError(f"{what} must be one of {', '.join(map(repr, STATISTICS))}; got {value!r}")
    return value


def is_likelihood(statistic: str) -> bool:
    """True for the Poisson statistics (``"cash"``, ``"cstat"``)."""
    return statistic in LIKELIHOOD_STATISTICS


def _u_minus_log1p(u: np.ndarray) -> np.ndarray:
    """``u - log1p(u)`` without cancellation near 0 (a series there)."""
    small = np.abs(u) < _SERIES
    series = u * u * (0.5 - u * (1 / 3 - u * (0.25 - u * (0.2 - u * (1 / 6 - u / 7)))))
    with np.errstate(all="ignore"):
        direct = u - np.log1p(u)
    return np.where(small, series, direct)


def deviance_residuals(n: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deviance residuals of counts ``n`` under model ``mu``, and ``dr/dmu``.

    ``r**2`` is the sample's term of the C-stat, ``2 (mu - n + n ln(n/mu))``;
    ``r`` has the sign of ``mu - n``.  Where ``mu < 0``, or ``mu == 0`` and
    ``n > 0``, the residual is infinite.  Where ``mu == n == 0`` both are 0.

    Examples
    --------
    >>> import numpy as np
    >>> r, slope = deviance_residuals(np.array([0.0, 4.0, 4.0]), np.array([2.0, 4.0, 9.0]))
    >>> r.round(6), slope.round(6)
    (array([2.      , 0.      , 1.874182]), array([0.5     , 0.5     , 0.296426]))
    """
    n = np.asarray(n, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    with np.errstate(all="ignore"):
        positive_n = n > 0
        u = np.where(positive_n, (mu - n) / np.where(positive_n, n, 1.0), 0.0)
        d = np.where(positive_n, 2.0 * n * _u_minus_log1p(u), 2.0 * mu)
        r = np.sign(mu - n) * np.sqrt(np.maximum(d, 0.0))
        # dr/dmu = (1 - n/mu) / r; where r == 0 (mu == n > 0) its limit 1/sqrt(n).
        slope = np.where(r != 0, (1.0 - n / mu) / np.where(r != 0, r, 1.0), 0.0)
        slope = np.where((r == 0) & positive_n, 1.0 / np.sqrt(np.where(positive_n, n, 1.0)), slope)
        bad = (mu < 0) | ((mu == 0) & positive_n) | ~np.isfinite(mu)
        r = np.where(bad, np.inf, r)
        slope = np.where(bad, 0.0, slope)
    return r, slope


def data_term(n: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per fit, ``2 sum(n - n ln n)`` over valid samples: ``cash = cstat + data_term``.

    Examples
    --------
    >>> import numpy as np
    >>> data_term(np.array([[0.0, 1.0, np.e]]), np.ones((1, 3), dtype=bool)).round(6)
    array([2.])
    """
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(all="ignore"):
        term = np.where(valid & (n > 0), n - n * np.log(np.where(n > 0, n, 1.0)), 0.0)
    return 2.0 * term.sum(axis=-1)


def statistic_values(
    statistic: str, n: np.ndarray, mu: np.ndarray, w: np.ndarray | None, valid: np.ndarray
) -> np.ndarray:
    """Per fit: the value of ``statistic`` of model ``mu`` on data ``n``, valid samples only.

    Parameters
    ----------
    statistic : {"chi2", "cash", "cstat"}
    n, mu : ndarray
        ``(n_fits, n_samples)`` data and model.
    w : ndarray or None
        ``1/sigma`` weights (chi-square only).
    valid : ndarray
        ``(n_fits, n_samples)`` bool.
    """
    with np.errstate(all="ignore"):
        if statistic == "chi2":
            res = mu - n if w is None else (mu - n) * w
            return np.where(valid, res * res, 0.0).sum(axis=-1)
        r, _ = deviance_residuals(np.where(valid, n, 0.0), np.where(valid, mu, 0.0))
        cstat = np.where(valid, r * r, 0.0).sum(axis=-1)
    return cstat if statistic == "cstat" else cstat + data_term(n, valid)


def fisher_information(jac: np.ndarray, mu: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``sum(dmu dmu^T / mu)`` per fit: the Fisher information of ``-ln L`` (half of C's).

    Parameters
    ----------
    jac : ndarray
        ``(n_fits, n_samples, k)`` derivatives of the model by the free
        parameters.
    mu : ndarray
        ``(n_fits, n_samples)`` the model.
    valid : ndarray
        ``(n_fits, n_samples)`` bool.

    Returns
    -------
    ndarray
        ``(n_fits, k, k)``; its inverse is the covariance of the parameters.
    """
    with np.errstate(all="ignore"):
        weight = np.where(valid & (mu > 0), 1.0 / np.where(mu > 0, mu, 1.0), 0.0)
        return np.einsum("nsk,ns,nsl->nkl", jac, weight, jac)
