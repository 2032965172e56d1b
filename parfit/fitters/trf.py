"""Batched trust-region reflective least squares: scipy's TRF, many fits at once.

This is the numerical core of parfit's default fitter.  For every row ``i``
of a batch it minimises ``C_i(p) = sum_j r_ij(p)**2`` subject to
``lower <= p <= upper``, taking **the same steps as**
:func:`scipy.optimize.least_squares` with ``method="trf"`` (its defaults:
``x_scale=1``, exact trust-region solver) from the same start, so that a
cube fitted with parfit is never less right than the same cube fitted one
spectrum at a time with scipy or astropy's ``TRFLSQFitter``.

Algorithm (Branch, Coleman & Li 1999, as scipy implements it), per fit
----------------------------------------------------------------------
* The start is moved strictly inside the bounds (scipy's
  ``make_strictly_feasible``).
* Coleman-Li scaling: ``v_j`` is the distance to the bound the gradient
  points at (1 where there is none); the trust-region problem is solved in
  the variables ``p_h = p / sqrt(v)``, with the extra diagonal term
  ``g * dv`` that makes the scaled problem smooth at the bounds.
* Trust-region subproblem: Moré's method on the singular value
  decomposition of the scaled Jacobian (here: a Householder QR of the
  Jacobian, then one-sided Jacobi on the small triangular factor, which
  gives the same singular values to working precision).
* A step that would leave the box is either cut at ``theta`` of the way to
  the bound, reflected off it, or replaced by the scaled gradient step --
  whichever the quadratic model prefers (scipy's ``select_step``).
* Radius update and the ``ftol`` / ``xtol`` tests are scipy's; ``max_nfev``
  counts residual evaluations (parfit's default is ``100 * (n_free + 1)``).

Two deliberate differences, both invisible on data of order unity:

* **Scale.** Residuals of data whose root mean square lies outside
  ``[1/16, 16]`` are divided by the nearest power of two, and parameters
  that are linear in the data (amplitudes, baseline coefficients) are
  measured in that unit too.  Powers of two are exact in floating point, so
  data in any unit (1e-26 or 1e150) are fitted like data of order one and
  give the scaled answer; scipy stops such fits at their start.  The
  gradient test is ``max|g v| < gtol * rms**2`` (scipy's is absolute), so
  that it too does not depend on the units of the data or of the weights.
* The step computation of all fits of a block runs in compiled code (numba)
  and the model is evaluated for all active fits at once.

Each fit stops on its own; the work per round shrinks as fits finish.
"""

import numpy as np

from . import lm
from ._kernel import (
    _COST,
    _M,
    _N_SCALARS,
    _NFEV,
    _NITER,
    _REASON,
    _begin_compiled,
    _continue_compiled,
    _judge_compiled,
)

__all__ = [
    "trust_region_reflective",
    "data_rms",
    "data_scale",
    "gradient_tolerance",
    "parameter_scales",
    "strictly_feasible",
    "NORMALISE_RANGE",
]

#: Root mean square of the weighted data inside which residuals are not rescaled.
NORMALISE_RANGE = (1.0 / 16.0, 16.0)


def data_rms(y: np.ndarray, w: float | np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Root mean square of each fit's weighted valid data, without overflow.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([[3.0, 4.0], [1e200, 1e200]])
    >>> data_rms(y, 1.0, np.ones_like(y, dtype=bool))
    array([3.53553391e+000, 1.00000000e+200])
    """
    with np.errstate(all="ignore"):
        wy = np.where(valid, np.asarray(y) * w, 0.0)
        # Divide by the peak before squaring, so that data near the float64
        # limits neither overflow nor underflow.
        peak = np.max(np.abs(wy), axis=1, initial=0.0)
        safe = np.where((peak > 0) & np.isfinite(peak), peak, 1.0)
        n = np.maximum(valid.sum(axis=1), 1)
        return safe * np.sqrt(np.einsum("nm,nm->n", wy / safe[:, None], wy / safe[:, None]) / n)


def data_scale(rms: np.ndarray) -> np.ndarray:
    """Power-of-two scale of data of root mean square ``rms`` (1 inside :data:`NORMALISE_RANGE`).

    Examples
    --------
    >>> import numpy as np
    >>> np.log2(data_scale(np.array([3.0, 2.5e-26, 0.0])))
    array([  0., -85.,   0.])
    """
    lo, hi = NORMALISE_RANGE
    with np.errstate(all="ignore"):
        inside = ~(rms > 0) | ~np.isfinite(rms) | ((rms >= lo) & (rms <= hi))
        exponent = np.where(inside, 0, np.round(np.log2(np.where(inside, 1.0, rms))))
    return np.ldexp(1.0, exponent.astype(np.int64))


def trust_region_reflective(
    problem: lm.Problem,
    p0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    options: lm.LMOptions | None = None,
    rms: np.ndarray | None = None,
    x_scale: np.ndarray | None = None,
    n_valid: np.ndarray | None = None,
) -> lm.LMOutcome:
    """Minimise the chi-square of every fit of a batch together (scipy's TRF steps).

    Parameters
    ----------
    problem : parfit.fitters.lm.Problem
        Computes residuals (and Jacobians) for subsets of the batch.
    p0, lower, upper : ndarray
        ``(n_fits, n_free)`` starting values (inside the bounds) and bounds
        (``-inf``/``inf`` where none).
    options : parfit.fitters.lm.LMOptions, optional
        Tolerances, evaluation limit and the initial trust radius factor
        (default ``LMOptions()``).
    rms : ndarray, optional
        ``(n_fits,)`` root mean square of the weighted data (see
        :func:`data_rms`): it sets the power-of-two unit the residuals are
        divided by (:func:`data_scale`) and the unit of the gradient test,
        ``gtol * rms**2``.  1 by default.
    x_scale : ndarray, optional
        ``(n_fits, n_free)`` characteristic scale of each parameter (scipy's
        ``x_scale``; see :func:`parameter_scales`); 1 by default.
    n_valid : ndarray, optional
        ``(n_fits,)`` number of samples of each fit (scipy's ``m``, used in
        the rank test of the trust-region solver); all samples by default.

    Returns
    -------
    parfit.fitters.lm.LMOutcome

    Examples
    --------
    Fit ``y = a * exp(-b * t)`` to two data sets at once:

    >>> import numpy as np
    >>> from parfit.fitters import lm
    >>> t = np.linspace(0, 4, 20)
    >>> y = np.array([[3.0], [1.0]]) * np.exp(-np.array([[0.5], [2.0]]) * t)
    >>> class Decay(lm.Problem):
    ...     def residuals(self, rows, p):
    ...         return p[:, :1] * np.exp(-p[:, 1:] * t) - y[rows]
    ...     def residuals_and_jacobian(self, rows, p):
    ...         e = np.exp(-p[:, 1:] * t)
    ...         jac = np.stack([e, -p[:, :1] * t * e], axis=-1)
    ...         return p[:, :1] * e - y[rows], jac
    >>> inf = np.full((2, 2), np.inf)
    >>> out = trust_region_reflective(Decay(), np.ones((2, 2)), -inf, inf)
    >>> out.params.round(6)
    array([[3. , 0.5],
           [1. , 2. ]])
    >>> bool(out.converged.all())
    True
    """
    if options is None:
        options = lm.LMOptions()
    lower, upper, scale, gtol, state, out = prepare(p0, lower, upper, rms, options)
    n_fits, k = state.x.shape
    xsc = np.ones((n_fits, k)) if x_scale is None else np.ascontiguousarray(x_scale, dtype=float)
    max_nfev = options.nfev_limit(k)
    with np.errstate(all="ignore"):
        rows = np.arange(n_fits)
        r, jac = problem.residuals_and_jacobian(rows, state.x)
        state.ic[:, _M] = r.shape[1] if n_valid is None else n_valid
        jt: np.ndarray | None
        r, jt = r / scale[:, None], _transposed(jac, scale)
        active = _begin_rows(
            rows, np.ascontiguousarray(r), jt, state, lower, upper, xsc, gtol, options, max_nfev
        )
        while len(active):
            trial = state.x_new[active]
            if problem.cheap_jacobian:
                r, jac = problem.residuals_and_jacobian(active, trial)
                jt = _transposed(jac, scale[active])
            else:
                r, jt = problem.residuals(active, trial), None
            r = np.ascontiguousarray(r / scale[active, None])
            accepted = _judge_rows(active, r, jt, state, options)
            if jt is None:
                moved = active[accepted]
                jt = np.zeros((len(active), k, r.shape[1]))
                if len(moved):
                    _, jm = problem.residuals_and_jacobian(moved, state.x_new[moved])
                    jt[accepted] = _transposed(jm, scale[moved])
            active = _continue_rows(active, accepted, r, jt, state, lower, upper, xsc, max_nfev)
    state.finish(out, scale)
    return out


def _transposed(jac: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(n, k, m)`` contiguous: each fit's Jacobian columns, divided by its scale."""
    return np.ascontiguousarray(np.transpose(jac / scale[:, None, None], (0, 2, 1)))


def gradient_tolerance(gtol: float, rms: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per fit: ``gtol`` in units of the data's mean square, in the solver's units.

    scipy's test ``max|g v| < gtol`` is absolute: data ten times larger stop
    at a hundred times smaller relative gradients.  Measured in units of
    ``rms**2`` it depends on the data only through their shape.
    """
    with np.errstate(all="ignore"):
        unit = (rms / scale) ** 2
    return gtol * np.where((unit > 0) & np.isfinite(unit), unit, 1.0)


def parameter_scales(y_rms: np.ndarray, linear: np.ndarray) -> np.ndarray:
    """``(n_fits, n_free)`` x_scale: the power-of-two unit of the data for parameters linear in it.

    Parameters
    ----------
    y_rms : ndarray
        ``(n_fits,)`` root mean square of the (unweighted) data.
    linear : ndarray
        ``(n_free,)`` bool, the parameters measured in the data's unit
        (amplitudes, baseline coefficients); the others get 1.
    """
    linear = np.asarray(linear, dtype=bool)
    return np.where(linear, data_scale(np.asarray(y_rms, dtype=float))[:, None], 1.0)


def strictly_feasible(
    x: np.ndarray, lower: np.ndarray, upper: np.ndarray, rstep: float = 1e-10
) -> np.ndarray:
    """scipy's ``make_strictly_feasible``: move ``x`` off its bounds, relatively by ``rstep``."""
    x = np.array(x, dtype=np.float64)
    low_gap = rstep * np.maximum(1.0, np.abs(lower))
    up_gap = rstep * np.maximum(1.0, np.abs(upper))
    dist_lo, dist_up = x - lower, upper - x
    on_lo = np.isfinite(lower) & (dist_lo <= np.minimum(dist_up, low_gap))
    on_up = np.isfinite(upper) & (dist_up <= np.minimum(dist_lo, up_gap))
    x = np.where(on_lo, lower + low_gap, x)
    x = np.where(on_up, upper - up_gap, x)
    tight = (x < lower) | (x > upper)
    return np.where(tight, 0.5 * (lower + upper), x)


def prepare(
    p0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    rms: np.ndarray | None,
    options: lm.LMOptions,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, "_State", lm.LMOutcome]:
    """What both solver paths set up before the first evaluation.

    Returns
    -------
    tuple
        ``(lower, upper, scale, gtol, state, outcome)``: contiguous bounds, the
        residual unit of each fit (:func:`data_scale` of ``rms``, 1 where
        ``rms`` is None), its gradient tolerance, the solver state at the
        start moved strictly inside the bounds, and the outcome to fill.
    """
    lower = np.ascontiguousarray(lower, dtype=np.float64)
    upper = np.ascontiguousarray(upper, dtype=np.float64)
    n_fits, k = np.shape(p0)
    rms = np.ones(n_fits) if rms is None else np.asarray(rms, dtype=np.float64)
    scale = data_scale(rms)
    state = _State(n_fits, k)
    with np.errstate(all="ignore"):
        state.x[:] = strictly_feasible(np.asarray(p0, dtype=np.float64), lower, upper)
    return (
        lower,
        upper,
        scale,
        gradient_tolerance(options.gtol, rms, scale),
        state,
        state.outcome(scale),
    )


#: What :meth:`_State.arrays` returns: the 15 state arrays the compiled row functions take.
_StateArrays = tuple[
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
]


class _State:
    """Every fit's solver state, as arrays the compiled row functions update."""

    def __init__(self, n: int, k: int) -> None:
        self.x = np.zeros((n, k))
        self.x_new = np.zeros((n, k))
        self.step = np.zeros((n, k))
        self.step_h = np.zeros((n, k))
        self.g = np.zeros((n, k))
        self.d = np.zeros((n, k))
        self.diag_h = np.zeros((n, k))
        self.g_h = np.zeros((n, k))
        self.s = np.zeros((n, k))
        self.suf = np.zeros((n, k))
        self.r = np.zeros((n, k, k))
        self.v = np.zeros((n, k, k))
        self.sc = np.zeros((n, _N_SCALARS))
        self.ic = np.zeros((n, 4), dtype=np.int64)
        self.work = np.zeros((2 * k + 8, max(k, 1)))

    def arrays(self) -> _StateArrays:
        return (
            self.x,
            self.x_new,
            self.step,
            self.step_h,
            self.g,
            self.d,
            self.diag_h,
            self.g_h,
            self.s,
            self.suf,
            self.r,
            self.v,
            self.sc,
            self.ic,
            self.work,
        )

    def outcome(self, scale: np.ndarray) -> lm.LMOutcome:
        n, k = self.x.shape
        return lm.LMOutcome(
            params=self.x,
            chi2=np.full(n, np.nan),
            normal=np.zeros((n, k, k)),
            nfev=np.ones(n, dtype=np.int64),
            n_iter=np.zeros(n, dtype=np.int64),
            reason=np.zeros(n, dtype=np.int8),
            scale=scale,
        )

    def finish(self, out: lm.LMOutcome, scale: np.ndarray) -> None:
        started = self.ic[:, _REASON] != lm.BAD_START
        out.chi2[started] = 2.0 * self.sc[started, _COST] * scale[started] ** 2
        out.normal[:] = np.einsum("nik,nil->nkl", self.r, self.r)
        out.nfev[:] = self.ic[:, _NFEV]
        out.n_iter[:] = self.ic[:, _NITER]
        out.reason[:] = self.ic[:, _REASON]
        out.chi2_scaled = np.where(started, 2.0 * self.sc[:, _COST], np.nan)


def _begin_rows(
    rows: np.ndarray,
    r: np.ndarray,
    jac: np.ndarray,
    state: _State,
    lower: np.ndarray,
    upper: np.ndarray,
    xsc: np.ndarray,
    gtol: np.ndarray,
    options: lm.LMOptions,
    max_nfev: int,
) -> np.ndarray:
    keep = np.zeros(len(rows), dtype=np.bool_)
    _begin_compiled(
        rows,
        r,
        jac,
        *state.arrays(),
        lower,
        upper,
        xsc,
        gtol,
        float(options.factor),
        int(max_nfev),
        keep,
    )
    return rows[keep]


def _judge_rows(
    rows: np.ndarray, r: np.ndarray, jt: np.ndarray | None, state: _State, options: lm.LMOptions
) -> np.ndarray:
    accepted = np.zeros(len(rows), dtype=np.bool_)
    _judge_compiled(
        rows, r, jt, *state.arrays(), float(options.ftol), float(options.xtol), accepted
    )
    return accepted


def _continue_rows(
    rows: np.ndarray,
    accepted: np.ndarray,
    r: np.ndarray,
    jac: np.ndarray,
    state: _State,
    lower: np.ndarray,
    upper: np.ndarray,
    xsc: np.ndarray,
    max_nfev: int,
) -> np.ndarray:
    keep = np.zeros(len(rows), dtype=np.bool_)
    _continue_compiled(
        rows, accepted, r, jac, *state.arrays(), lower, upper, xsc, int(max_nfev), keep
    )
    return rows[keep]
