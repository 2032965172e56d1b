"""Batched Levenberg-Marquardt: many small least-squares problems advanced together.

This module is the numerical core of parfit's default fitter.  It knows
nothing about models, dask or cubes: it minimises, for every row ``i`` of a
batch, the chi-square ``C_i(p) = sum_j r_ij(p)**2`` of a residual vector that
a caller-supplied :class:`Problem` computes for any subset of rows at once.

Algorithm (per fit; all fits of the batch move in lock step)
-------------------------------------------------------------
* Scaling: ``D`` holds, per parameter, the largest Jacobian column norm seen
  so far (MINPACK's ``mode=1``; a zero column counts as 1), so the method is
  invariant to the units of the parameters.
* Step: ``(J^T J + mu D^2) h = -J^T r`` solved by a Cholesky factorisation.
  The damping ``mu`` is dimensionless (``D^2`` carries the scale of
  ``J^T J``, so the method is invariant to the scale of the data and the
  weights); it starts at ``1e-3`` and follows Nielsen's rule: after an accepted step ``mu *= max(1/3, 1 - (2 rho - 1)^3)``;
  after a rejected one ``mu *= nu; nu *= 2``.
* Step bound: the scaled step ``||D h||`` may not exceed a trust radius
  ``delta`` (initially ``factor * ||D p0||``, MINPACK's rule, or ``factor``
  when that is zero; parfit's default ``factor = 0.1`` is at the cautious
  end of MINPACK's recommended range 0.1-100, because a cube's fits start
  from shared or guessed values and should stay in the start's basin).  Longer steps are shortened along their direction.
  ``delta`` grows to ``2 ||D h||`` after a very good step (``rho > 0.75``)
  and shrinks to ``||D h|| / 2`` after a rejected one, so a fit from a
  reasonable start cannot jump into a far-away flat region in one step.
* Gain ratio: ``rho = (C - C_new) / (C - ||r + J h||^2)``; a step is accepted
  when ``rho > 1e-4`` and the new chi-square is finite.
* Bounds: the trial point is projected onto the box ``[lower, upper]``.
  A parameter sitting on a bound whose gradient points out of the box is
  frozen for that iteration (its row and column of the system are removed),
  so the other parameters still move; the gradient test below uses the
  projected gradient.  This is the projected Levenberg-Marquardt method of
  Kanzow, Yamashita & Fukushima (2004) with an active-set safeguard.
* Convergence (MINPACK's tests, per fit):

  - ``ftol``: the actual and the predicted relative reduction of ``C`` are
    both below ``ftol`` (and ``rho <= 2``);
  - ``xtol``: the accepted scaled step is below
    ``xtol * (xtol + ||D p||)``, or the trust radius has shrunk below that
    after rejected steps;
  - ``gtol``: the largest cosine between the residual vector and a free
    Jacobian column, ``max_j |J_j . r| / (||J_j|| ||r||)``, is below
    ``gtol``;
  - ``C == 0`` (an exact fit).

  A fit that meets any test leaves the active set, so the work per
  iteration shrinks as fits finish.  A fit still active after ``max_nfev``
  evaluations of its residual stops with ``converged = False``.
"""

import dataclasses

import numpy as np

__all__ = ["Problem", "LMOptions", "LMOutcome", "levenberg_marquardt", "cholesky_solve",
           "cholesky_inverse", "REASONS"]

#: Why a fit stopped, indexed by :attr:`LMOutcome.reason`.
REASONS = (
    "not run",
    "ftol: the relative reduction of chi-square is below ftol",
    "xtol: the relative change of the parameters is below xtol",
    "gtol: the gradient is orthogonal to the residuals within gtol",
    "exact fit: chi-square is zero",
    "maximum number of function evaluations reached",
    "the model is not finite at the starting values",
)
NOT_RUN, FTOL, XTOL, GTOL, EXACT, MAXFEV, BAD_START = range(7)


@dataclasses.dataclass(frozen=True)
class LMOptions:
    """Options of :func:`levenberg_marquardt` (see the module text)."""

    ftol: float = 1e-8
    xtol: float = 1e-8
    gtol: float = 1e-8
    max_nfev: int | None = None
    factor: float = 0.1

    def nfev_limit(self, n_free):
        """``max_nfev``, or MINPACK's default ``100 * (n_free + 1)``."""
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

    def residuals(self, rows, params):
        """Residuals ``(len(rows), n_samples)``."""
        raise NotImplementedError

    def residuals_and_jacobian(self, rows, params):
        """Residuals and their Jacobian ``(len(rows), n_samples, n_free)``."""
        raise NotImplementedError


@dataclasses.dataclass
class LMOutcome:
    """What :func:`levenberg_marquardt` returns, one entry per fit.

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
    """

    params: np.ndarray
    chi2: np.ndarray
    normal: np.ndarray
    nfev: np.ndarray
    n_iter: np.ndarray
    reason: np.ndarray

    @property
    def converged(self):
        """True where a convergence test was met."""
        return np.isin(self.reason, (FTOL, XTOL, GTOL, EXACT))


def _cholesky(a):
    """Lower Cholesky factors of ``a`` ``(n, k, k)`` and a flag per matrix."""
    n, k, _ = a.shape
    low = np.zeros_like(a)
    ok = np.ones(n, dtype=bool)
    for j in range(k):
        d = a[:, j, j] - np.einsum("ni,ni->n", low[:, j, :j], low[:, j, :j])
        ok &= d > 0
        ljj = np.sqrt(np.where(d > 0, d, 1.0))
        low[:, j, j] = ljj
        if j + 1 < k:
            s = a[:, j + 1:, j] - np.einsum("nri,ni->nr", low[:, j + 1:, :j], low[:, j, :j])
            low[:, j + 1:, j] = s / ljj[:, None]
    return low, ok


def _forward_back(low, b):
    """Solve ``low @ low.T @ h = b`` given the Cholesky factors."""
    k = b.shape[1]
    z = np.empty_like(b)
    for j in range(k):
        z[:, j] = (b[:, j] - np.einsum("ni,ni->n", low[:, j, :j], z[:, :j])) / low[:, j, j]
    h = np.empty_like(b)
    for j in range(k - 1, -1, -1):
        h[:, j] = (z[:, j] - np.einsum("ni,ni->n", low[:, j + 1:, j], h[:, j + 1:])) / low[:, j, j]
    return h


def cholesky_solve(a, b):
    """Solve ``a @ h = b`` for a batch of symmetric positive definite systems.

    Parameters
    ----------
    a : ndarray
        ``(n, k, k)``.
    b : ndarray
        ``(n, k)``.

    Returns
    -------
    h : ndarray
        ``(n, k)``; NaN rows where ``a`` is not numerically positive definite.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[[4.0, 2.0], [2.0, 3.0]]])
    >>> cholesky_solve(a, np.array([[2.0, 1.0]]))
    array([[0.5, 0. ]])
    """
    low, ok = _cholesky(a)
    h = _forward_back(low, b)
    h[~ok] = np.nan
    return h


def cholesky_inverse(a):
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
    low, ok = _cholesky(a)
    inverse = np.empty_like(a)
    for j in range(k):
        unit = np.zeros((n, k))
        unit[:, j] = 1.0
        inverse[:, :, j] = _forward_back(low, unit)
    inverse[~ok] = np.nan
    pivots = np.where(ok[:, None], np.diagonal(low, axis1=1, axis2=2), 0.0)
    return inverse, pivots


def levenberg_marquardt(problem, p0, lower, upper, options=LMOptions()):
    """Minimise the chi-square of every fit of a batch together.

    Parameters
    ----------
    problem : Problem
        Computes residuals (and Jacobians) for subsets of the batch.
    p0, lower, upper : ndarray
        ``(n_fits, n_free)`` starting values (inside the bounds) and bounds
        (``-inf``/``inf`` where none).
    options : LMOptions
        Tolerances, evaluation limit and initial step bound factor.

    Returns
    -------
    LMOutcome

    Examples
    --------
    Fit ``y = a * exp(-b * t)`` to two data sets at once:

    >>> import numpy as np
    >>> t = np.linspace(0, 4, 20)
    >>> y = np.array([[3.0], [1.0]]) * np.exp(-np.array([[0.5], [2.0]]) * t)
    >>> class Decay(Problem):
    ...     def residuals(self, rows, p):
    ...         return p[:, :1] * np.exp(-p[:, 1:] * t) - y[rows]
    ...     def residuals_and_jacobian(self, rows, p):
    ...         e = np.exp(-p[:, 1:] * t)
    ...         jac = np.stack([e, -p[:, :1] * t * e], axis=-1)
    ...         return p[:, :1] * e - y[rows], jac
    >>> inf = np.full((2, 2), np.inf)
    >>> out = levenberg_marquardt(Decay(), np.ones((2, 2)), -inf, inf)
    >>> out.params.round(6)
    array([[3. , 0.5],
           [1. , 2. ]])
    >>> bool(out.converged.all())
    True
    """
    p0 = np.array(p0, dtype=np.float64)
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    n_fits, n_free = p0.shape
    max_nfev = options.nfev_limit(n_free)
    with np.errstate(all="ignore"):
        return _iterate(problem, p0, lower, upper, options, max_nfev, n_fits, n_free)


def _iterate(problem, p0, lower, upper, opt, max_nfev, n_fits, n_free):
    rows = np.arange(n_fits)
    r, jac = problem.residuals_and_jacobian(rows, p0)
    out = LMOutcome(
        params=p0.copy(),
        chi2=np.full(n_fits, np.nan),
        normal=np.zeros((n_fits, n_free, n_free)),
        nfev=np.ones(n_fits, dtype=np.int64),
        n_iter=np.zeros(n_fits, dtype=np.int64),
        reason=np.zeros(n_fits, dtype=np.int8),
    )
    chi2 = np.einsum("nm,nm->n", r, r)
    start_ok = np.isfinite(chi2) & np.all(np.isfinite(jac), axis=(1, 2))
    out.reason[~start_ok] = BAD_START
    out.chi2[start_ok] = chi2[start_ok]

    # State of the active fits (compacted as fits finish).
    keep = np.flatnonzero(start_ok)
    rows, p, r, jac, chi2 = rows[keep], p0[keep], r[keep], jac[keep], chi2[keep]
    lo, hi = lower[keep], upper[keep]
    colnorm = np.sqrt(np.einsum("nmk,nmk->nk", jac, jac))
    scale = np.where(colnorm > 0, colnorm, 1.0)
    mu = np.full(len(rows), 1e-3)
    nu = np.full(len(rows), 2.0)
    pnorm = np.linalg.norm(scale * p, axis=1)
    delta = np.where(pnorm > 0, opt.factor * pnorm, opt.factor)
    nfev = np.ones(len(rows), dtype=np.int64)
    n_iter = np.zeros(len(rows), dtype=np.int64)
    eye = np.eye(n_free, dtype=bool)

    while len(rows):
        g = np.einsum("nmk,nm->nk", jac, r)
        a = np.einsum("nmk,nml->nkl", jac, jac)
        # Parameters on a bound whose descent direction leaves the box are frozen.
        frozen = ((p <= lo) & (g > 0)) | ((p >= hi) & (g < 0))
        done = np.zeros(len(rows), dtype=np.int8)

        # gtol (MINPACK's cosine test on the free columns) and exact fits.
        rnorm = np.sqrt(chi2)
        colnorm = np.sqrt(np.diagonal(a, axis1=1, axis2=2))
        cosine = np.where(frozen | (colnorm == 0), 0.0, np.abs(g) / (colnorm * rnorm[:, None]))
        gnorm = np.max(cosine, axis=1, initial=0.0)
        done[gnorm <= opt.gtol] = GTOL
        done[chi2 == 0] = EXACT

        # Solve the damped system with frozen parameters removed.
        scale = np.maximum(scale, colnorm)
        m = a + (mu[:, None] * scale**2)[:, :, None] * eye
        both = frozen[:, :, None] | frozen[:, None, :]
        m = np.where(both, 0.0, m) + np.where(frozen[:, :, None] & eye, 1.0, 0.0)
        h = cholesky_solve(m, -np.where(frozen, 0.0, g))
        solved = np.all(np.isfinite(h), axis=1)
        h = np.where(solved[:, None], h, 0.0)
        hnorm = np.linalg.norm(scale * h, axis=1)
        shrink = np.where(hnorm > delta, delta / np.where(hnorm > 0, hnorm, 1.0), 1.0)
        h *= shrink[:, None]
        p_new = np.clip(p + h, lo, hi)
        h = p_new - p
        hnorm = np.linalg.norm(scale * h, axis=1)

        # Trial point, for the fits not already converged.
        trial = np.flatnonzero(done == 0)
        if problem.cheap_jacobian:
            r_new, jac_new = problem.residuals_and_jacobian(rows[trial], p_new[trial])
        else:
            r_new, jac_new = problem.residuals(rows[trial], p_new[trial]), None
        nfev[trial] += 1
        n_iter[trial] += 1
        chi2_new = np.full(len(rows), np.inf)
        chi2_new[trial] = np.einsum("nm,nm->n", r_new, r_new)
        if jac_new is not None:
            # A trial point where the Jacobian is not finite is no place to stand.
            chi2_new[trial[~np.all(np.isfinite(jac_new), axis=(1, 2))]] = np.inf
        chi2_new[~np.isfinite(chi2_new) | ~solved] = np.inf
        # Reduction predicted by the linear model: -(2 g.h + h.A.h).
        predicted = -np.einsum("nk,nk->n", h, 2.0 * g + np.einsum("nkl,nl->nk", a, h))
        actual = chi2 - chi2_new
        rho = np.where(predicted > 0, actual / np.where(predicted > 0, predicted, 1.0), -1.0)
        accept = (done == 0) & (rho > 1e-4) & np.isfinite(chi2_new)

        # Damping and trust radius.
        good = accept & (rho > 0.75)
        mu = np.where(accept, mu * np.maximum(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3), mu * nu)
        nu = np.where(accept, 2.0, nu * 2.0)
        delta = np.where(good, np.maximum(delta, 2.0 * hnorm), delta)
        delta = np.where(accept, delta, 0.5 * np.minimum(delta, hnorm))

        # Convergence tests of this iteration (MINPACK's order).
        pnorm_new = np.linalg.norm(scale * np.where(accept[:, None], p_new, p), axis=1)
        safe_chi2 = np.where(chi2 > 0, chi2, 1.0)
        rel_actual = np.where(np.isfinite(chi2_new), actual / safe_chi2, -1.0)
        ftol_met = (np.abs(rel_actual) <= opt.ftol) & (predicted / safe_chi2 <= opt.ftol) & (
            rho <= 2.0)
        xtol_met = np.where(accept, hnorm, delta) <= opt.xtol * (opt.xtol + pnorm_new)
        pending = done == 0
        done[pending & xtol_met] = XTOL
        done[pending & ftol_met] = FTOL

        # Move the accepted fits.
        if len(trial):
            acc_t = accept[trial]
            moved = trial[acc_t]
            p[moved] = p_new[moved]
            r[moved] = r_new[acc_t]
            chi2[moved] = chi2_new[moved]
            if jac_new is not None:
                jac[moved] = jac_new[acc_t]
            elif len(moved):
                _, jac[moved] = problem.residuals_and_jacobian(rows[moved], p[moved])
        done[(done == 0) & (nfev >= max_nfev)] = MAXFEV

        finished = np.flatnonzero(done)
        if len(finished):
            dst = rows[finished]
            out.params[dst] = p[finished]
            out.chi2[dst] = chi2[finished]
            out.normal[dst] = np.einsum("nmk,nml->nkl", jac[finished], jac[finished])
            out.nfev[dst] = nfev[finished]
            out.n_iter[dst] = n_iter[finished]
            out.reason[dst] = done[finished]
            keep = np.flatnonzero(done == 0)
            rows, p, r, jac, chi2 = rows[keep], p[keep], r[keep], jac[keep], chi2[keep]
            lo, hi, scale, mu, nu, delta = (
                lo[keep], hi[keep], scale[keep], mu[keep], nu[keep], delta[keep])
            nfev, n_iter = nfev[keep], n_iter[keep]
    return out
