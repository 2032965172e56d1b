"""What the batched solvers share: the problem interface, options and outcome.

The algorithm itself is :mod:`parfit.fitters.trf` (scipy's trust-region
reflective method, many fits at once); its fused compiled form for
built-in models is :mod:`parfit.fitters._compiled`.  This module holds the
pieces both use and :class:`~parfit.fitters.BatchedFitter` reads: the
:class:`Problem` a caller implements, :class:`LMOptions`,
:class:`LMOutcome`, the stopping reasons and a batched Cholesky inverse for
the covariance.
"""

import dataclasses

import numpy as np

__all__ = ["Problem", "LMOptions", "LMOutcome", "cholesky_inverse", "REASONS"]

#: Why a fit stopped, indexed by :attr:`LMOutcome.reason`.
REASONS = (
    "not run",
    "ftol: the relative reduction of chi-square is below ftol",
    "xtol: the step is below xtol relative to the parameters",
    "gtol: the scaled gradient is below gtol",
    "maximum number of function evaluations reached",
    "the model is not finite at the starting values",
)
NOT_RUN, FTOL, XTOL, GTOL, MAXFEV, BAD_START = range(6)


@dataclasses.dataclass(frozen=True)
class LMOptions:
    """Options of the batched solver (scipy's meanings; ``factor`` scales the first radius)."""

    ftol: float = 1e-8
    xtol: float = 1e-8
    gtol: float = 1e-8
    max_nfev: int | None = None
    factor: float = 1.0

    def nfev_limit(self, n_free: int) -> int:
        """``max_nfev``, or ``100 * (n_free + 1)``."""
        return int(self.max_nfev) if self.max_nfev is not None else 100 * (n_free + 1)


class Problem:
    """The residuals of a batch of fits, for any subset of its rows.

    Subclasses implement :meth:`residuals` and :meth:`residuals_and_jacobian`.
    ``rows`` is an integer index array into the batch, ``params`` the free
    parameters of those rows, ``(len(rows), n_free)``.  Residuals must be
    weighted and zero on ignored samples; they may be non-finite where the
    model is (such trial steps are rejected).
    """

    #: True when the Jacobian costs about as much as the residuals (analytic):
    #: then both are computed at every trial point.
    cheap_jacobian = True

    def residuals(self, rows: np.ndarray, params: np.ndarray) -> np.ndarray:
        """Residuals ``(len(rows), n_samples)``."""
        raise NotImplementedError

    def residuals_and_jacobian(
        self, rows: np.ndarray, params: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Residuals and their Jacobian ``(len(rows), n_samples, n_free)``."""
        raise NotImplementedError


@dataclasses.dataclass
class LMOutcome:
    """What the batched solver returns, one entry per fit.

    Attributes
    ----------
    params : ndarray
        ``(n_fits, n_free)`` final parameters.
    chi2 : ndarray
        ``(n_fits,)`` final chi-square.
    normal : ndarray
        ``(n_fits, n_free, n_free)``: ``J^T J`` at the final parameters (the
        inverse covariance, before scaling).
    nfev, n_iter : ndarray
        Residual evaluations and iterations per fit.
    reason : ndarray
        Index into :data:`REASONS`.
    scale : ndarray or None
        ``(n_fits,)`` the factor the residuals were divided by inside the
        solver (``normal`` is in those units); None means 1.
    chi2_scaled : ndarray or None
        ``chi2 / scale**2``, computed without overflow.
    """

    params: np.ndarray
    chi2: np.ndarray
    normal: np.ndarray
    nfev: np.ndarray
    n_iter: np.ndarray
    reason: np.ndarray
    scale: np.ndarray | None = None
    chi2_scaled: np.ndarray | None = None

    @property
    def converged(self) -> np.ndarray:
        """True where a convergence test was met."""
        return np.isin(self.reason, (FTOL, XTOL, GTOL))


def cholesky_inverse(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverses of a batch of symmetric positive definite matrices.

    Parameters
    ----------
    a : ndarray
        ``(n, k, k)``.

    Returns
    -------
    inverse : ndarray
        ``(n, k, k)``; NaN where ``a`` is not numerically positive definite.
    pivots : ndarray
        ``(n, k)``: the diagonal of the Cholesky factor (0 where the
        factorisation failed); small pivots mean a nearly singular matrix.

    Examples
    --------
    >>> import numpy as np
    >>> inverse, pivots = cholesky_inverse(np.array([[[4.0, 2.0], [2.0, 3.0]]]))
    >>> inverse
    array([[[ 0.375, -0.25 ],
            [-0.25 ,  0.5  ]]])
    """
    n, k, _ = a.shape
    low = np.zeros_like(a)
    ok = np.ones(n, dtype=bool)
    for j in range(k):
        d = a[:, j, j] - np.einsum("ni,ni->n", low[:, j, :j], low[:, j, :j])
        ok &= d > 0
        ljj = np.sqrt(np.where(d > 0, d, 1.0))
        low[:, j, j] = ljj
        if j + 1 < k:
            s = a[:, j + 1 :, j] - np.einsum("nri,ni->nr", low[:, j + 1 :, :j], low[:, j, :j])
            low[:, j + 1 :, j] = s / ljj[:, None]
    inverse = np.empty_like(a)
    for j in range(k):  # forward and back substitution on each unit vector
        z = np.zeros((n, k))
        for t in range(k):
            unit = 1.0 if t == j else 0.0
            z[:, t] = (unit - np.einsum("ni,ni->n", low[:, t, :t], z[:, :t])) / low[:, t, t]
        h = np.empty((n, k))
        for t in range(k - 1, -1, -1):
            h[:, t] = (z[:, t] - np.einsum("ni,ni->n", low[:, t + 1 :, t], h[:, t + 1 :])) / low[
                :, t, t
            ]
        inverse[:, :, j] = h
    inverse[~ok] = np.nan
    pivots = np.where(ok[:, None], np.diagonal(low, axis1=1, axis2=2), 0.0)
    return inverse, pivots
