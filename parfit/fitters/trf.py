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

import math

import numpy as np

from . import lm

try:  # numba is optional at run time; without it these run as plain Python
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None

__all__ = ["trust_region_reflective", "data_rms", "data_scale", "gradient_tolerance",
           "parameter_scales", "strictly_feasible", "new_state", "NORMALISE_RANGE"]

#: Root mean square of the weighted data inside which residuals are not rescaled.
NORMALISE_RANGE = (1.0 / 16.0, 16.0)

_EPS = float(np.finfo(float).eps)

if numba is not None:
    _jit = numba.njit(nogil=True, cache=True, error_model="numpy")
else:  # pragma: no cover - exercised only without numba
    def _jit(func):
        return func

# Per-fit scalar state, columns of ``sc``.
_COST, _DELTA, _ALPHA, _THETA, _PRED, _STEPH, _STEPN, _GTOL = range(8)
_N_SCALARS = 8
# Why a fit stopped (indices into lm.REASONS), as compile-time constants.
_FTOL, _XTOL, _GTOL_MET, _MAXFEV, _BAD_START = lm.FTOL, lm.XTOL, lm.GTOL, lm.MAXFEV, lm.BAD_START
# Per-fit integer state, columns of ``ic``: evaluations, iterations, why it
# stopped (lm.REASONS) and its number of valid samples (scipy's ``m``).
_NFEV, _NITER, _REASON, _M = range(4)


def data_rms(y, w, valid):
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


def data_scale(rms):
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


def trust_region_reflective(problem, p0, lower, upper, options=lm.LMOptions(),
                            rms=None, x_scale=None, n_valid=None):
    """Minimise the chi-square of every fit of a batch together (scipy's TRF steps).

    Parameters
    ----------
    problem : parfit.fitters.lm.Problem
        Computes residuals (and Jacobians) for subsets of the batch.
    p0, lower, upper : ndarray
        ``(n_fits, n_free)`` starting values (inside the bounds) and bounds
        (``-inf``/``inf`` where none).
    options : parfit.fitters.lm.LMOptions
        Tolerances, evaluation limit and the initial trust radius factor.
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
    lower = np.ascontiguousarray(lower, dtype=np.float64)
    upper = np.ascontiguousarray(upper, dtype=np.float64)
    n_fits, k = np.shape(p0)
    rms = np.ones(n_fits) if rms is None else np.asarray(rms, dtype=np.float64)
    scale = data_scale(rms)
    gtol = gradient_tolerance(options.gtol, rms, scale)
    xsc = np.ones((n_fits, k)) if x_scale is None else np.ascontiguousarray(x_scale, dtype=float)
    state = _State(n_fits, k)
    out = state.outcome(scale)
    max_nfev = options.nfev_limit(k)
    with np.errstate(all="ignore"):
        state.x[:] = strictly_feasible(np.asarray(p0, dtype=np.float64), lower, upper)
        rows = np.arange(n_fits)
        r, jac = problem.residuals_and_jacobian(rows, state.x)
        state.ic[:, _M] = r.shape[1] if n_valid is None else n_valid
        r, jac = r / scale[:, None], jac / scale[:, None, None]
        active = _begin_rows(rows, np.ascontiguousarray(r), np.ascontiguousarray(jac), state,
                             lower, upper, xsc, gtol, options, max_nfev)
        while len(active):
            trial = state.x_new[active]
            if problem.cheap_jacobian:
                r, jac = problem.residuals_and_jacobian(active, trial)
                jac = np.ascontiguousarray(jac / scale[active, None, None])
            else:
                r, jac = problem.residuals(active, trial), None
            r = np.ascontiguousarray(r / scale[active, None])
            accepted = _judge_rows(active, r, state, options, max_nfev)
            if jac is None:
                moved = active[accepted]
                jac = np.zeros((len(active),) + (r.shape[1], k))
                if len(moved):
                    _, jm = problem.residuals_and_jacobian(moved, state.x_new[moved])
                    jac[accepted] = jm / scale[moved, None, None]
            active = _continue_rows(active, accepted, r, np.ascontiguousarray(jac), state,
                                    lower, upper, xsc, max_nfev)
    state.finish(out, scale)
    return out


def gradient_tolerance(gtol, rms, scale):
    """Per fit: ``gtol`` in units of the data's mean square, in the solver's units.

    scipy's test ``max|g v| < gtol`` is absolute: data ten times larger stop
    at a hundred times smaller relative gradients.  Measured in units of
    ``rms**2`` it depends on the data only through their shape.
    """
    with np.errstate(all="ignore"):
        unit = (rms / scale) ** 2
    return gtol * np.where((unit > 0) & np.isfinite(unit), unit, 1.0)


def parameter_scales(y_rms, linear):
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


def strictly_feasible(x, lower, upper, rstep=1e-10):
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


def new_state(n_fits, n_free):
    """Solver state of ``n_fits`` fits of ``n_free`` parameters (for the fused kernel)."""
    return _State(n_fits, n_free)


class _State:
    """Every fit's solver state, as arrays the compiled row functions update."""

    def __init__(self, n, k):
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

    def arrays(self):
        return (self.x, self.x_new, self.step, self.step_h, self.g, self.d, self.diag_h,
                self.g_h, self.s, self.suf, self.r, self.v, self.sc, self.ic, self.work)

    def outcome(self, scale):
        n, k = self.x.shape
        return lm.LMOutcome(params=self.x, chi2=np.full(n, np.nan),
                            normal=np.zeros((n, k, k)), nfev=np.ones(n, dtype=np.int64),
                            n_iter=np.zeros(n, dtype=np.int64),
                            reason=np.zeros(n, dtype=np.int8), scale=scale)

    def finish(self, out, scale):
        started = self.ic[:, _REASON] != lm.BAD_START
        out.chi2[started] = 2.0 * self.sc[started, _COST] * scale[started] ** 2
        out.normal[:] = np.einsum("nik,nil->nkl", self.r, self.r)
        out.nfev[:] = self.ic[:, _NFEV]
        out.n_iter[:] = self.ic[:, _NITER]
        out.reason[:] = self.ic[:, _REASON]
        out.chi2_scaled = np.where(started, 2.0 * self.sc[:, _COST], np.nan)


def _begin_rows(rows, r, jac, state, lower, upper, xsc, gtol, options, max_nfev):
    keep = np.zeros(len(rows), dtype=np.bool_)
    _begin_compiled(rows, r, jac, *state.arrays(), lower, upper, xsc, gtol,
                    float(options.factor), int(max_nfev), keep)
    return rows[keep]


def _judge_rows(rows, r, state, options, max_nfev):
    accepted = np.zeros(len(rows), dtype=np.bool_)
    _judge_compiled(rows, r, *state.arrays(), float(options.ftol), float(options.xtol),
                    accepted)
    return accepted


def _continue_rows(rows, accepted, r, jac, state, lower, upper, xsc, max_nfev):
    keep = np.zeros(len(rows), dtype=np.bool_)
    _continue_compiled(rows, accepted, r, jac, *state.arrays(), lower, upper, xsc,
                       int(max_nfev), keep)
    return rows[keep]


# ----------------------------------------------------------------------------
# Compiled functions, one fit each, shared by the batched driver above and by
# the fused kernel of parfit.fitters._compiled.  ``i`` is the fit's row in the
# state arrays (see _State); ``work`` is scratch space of (2 k + 8, k).

@_jit
def _begin_compiled(rows, r, jac, x, x_new, step, step_h, g, d, diag_h, g_h, s, suf, rr, vv,
                    sc, ic, work, lower, upper, xsc, gtol, factor, max_nfev, keep):
    for t in range(rows.shape[0]):
        keep[t] = begin_fit(rows[t], r[t], jac[t], x, x_new, step, step_h, g, d, diag_h, g_h,
                            s, suf, rr, vv, sc, ic, work, lower, upper, xsc, gtol[rows[t]],
                            factor, max_nfev)


@_jit
def _judge_compiled(rows, r, x, x_new, step, step_h, g, d, diag_h, g_h, s, suf, rr, vv, sc,
                    ic, work, ftol, xtol, accepted):
    for t in range(rows.shape[0]):
        cost_new = 0.0
        for j in range(r.shape[1]):
            cost_new += r[t, j] * r[t, j]
        accepted[t] = judge_fit(rows[t], 0.5 * cost_new, x, step, sc, ic, ftol, xtol)


@_jit
def _continue_compiled(rows, accepted, r, jac, x, x_new, step, step_h, g, d, diag_h, g_h, s,
                       suf, rr, vv, sc, ic, work, lower, upper, xsc, max_nfev, keep):
    for t in range(rows.shape[0]):
        i = rows[t]
        if accepted[t]:
            accept_fit(i, r[t], jac[t], x, x_new, g, rr, sc, ic, work)
        keep[t] = continue_fit(i, accepted[t], x, x_new, step, step_h, g, d, diag_h, g_h,
                               s, suf, rr, vv, sc, ic, work, lower, upper, xsc, max_nfev)


@_jit
def begin_fit(i, r, jac, x, x_new, step, step_h, g, d, diag_h, g_h, s, suf, rr, vv, sc, ic,
              work, lower, upper, xsc, gtol, factor, max_nfev):
    """Start fit ``i`` from its residuals and Jacobian at ``x[i]``; True if it goes on."""
    k = x.shape[1]
    ic[i, _NFEV] = 1
    ic[i, _NITER] = 0
    ic[i, _REASON] = 0
    sc[i, _GTOL] = gtol
    cost = 0.0
    for j in range(r.shape[0]):
        cost += r[j] * r[j]
    finite = math.isfinite(cost)
    for j in range(r.shape[0]):
        for q in range(k):
            if not math.isfinite(jac[j, q]):
                finite = False
    if not finite:
        ic[i, _REASON] = _BAD_START
        return False
    for q in range(k):
        x_new[i, q] = x[i, q]
    accept_fit(i, r, jac, x, x_new, g, rr, sc, ic, work)
    ic[i, _NITER] = 0
    # Initial radius: the norm of the start in the Coleman-Li scaled variables.
    delta = 0.0
    for q in range(k):
        v, dv = _cl_scaling(x[i, q], g[i, q], lower[i, q], upper[i, q])
        if dv != 0:
            v /= xsc[i, q]
        delta += (x[i, q] / xsc[i, q]) ** 2 / v
    delta = math.sqrt(delta)
    sc[i, _DELTA] = factor * (delta if delta > 0 else 1.0)
    sc[i, _ALPHA] = 0.0
    return continue_fit(i, True, x, x_new, step, step_h, g, d, diag_h, g_h, s, suf, rr, vv,
                        sc, ic, work, lower, upper, xsc, max_nfev)


@_jit
def accept_fit(i, r, jac, x, x_new, g, rr, sc, ic, work):
    """Move fit ``i`` to ``x_new``, given the residuals and Jacobian there (``jac`` is overwritten)."""
    m, k = jac.shape
    cost = 0.0
    for j in range(m):
        cost += r[j] * r[j]
    sc[i, _COST] = 0.5 * cost
    for q in range(k):
        x[i, q] = x_new[i, q]
        acc = 0.0
        for j in range(m):
            acc += jac[j, q] * r[j]
        g[i, q] = acc
    _householder_r(jac, rr[i])
    ic[i, _NITER] += 1


@_jit
def judge_fit(i, cost_new, x, step, sc, ic, ftol, xtol):
    """Judge the trial point of fit ``i`` (cost ``cost_new``): True when it is taken."""
    ic[i, _NFEV] += 1
    delta = sc[i, _DELTA]
    step_h_norm = sc[i, _STEPH]
    if not math.isfinite(cost_new):
        sc[i, _DELTA] = 0.25 * step_h_norm
        return False
    actual = sc[i, _COST] - cost_new
    predicted = sc[i, _PRED]
    if predicted > 0:
        ratio = actual / predicted
    elif predicted == 0 and actual == 0:
        ratio = 1.0
    else:
        ratio = 0.0
    delta_new = delta
    if ratio < 0.25:
        delta_new = 0.25 * step_h_norm
    elif ratio > 0.75 and step_h_norm > 0.95 * delta:
        delta_new = 2.0 * delta
    x_norm = 0.0
    for q in range(x.shape[1]):
        x_norm += x[i, q] ** 2
    x_norm = math.sqrt(x_norm)
    ftol_met = actual < ftol * sc[i, _COST] and ratio > 0.25
    xtol_met = sc[i, _STEPN] < xtol * (xtol + x_norm)
    if ftol_met:
        ic[i, _REASON] = _FTOL
    elif xtol_met:
        ic[i, _REASON] = _XTOL
    else:
        sc[i, _ALPHA] *= delta / delta_new
        sc[i, _DELTA] = delta_new
    return actual > 0


@_jit
def continue_fit(i, moved, x, x_new, step, step_h, g, d, diag_h, g_h, s, suf, rr, vv, sc, ic,
                 work, lower, upper, xsc, max_nfev):
    """The next trial point of fit ``i`` into ``x_new``; False when the fit is done."""
    if ic[i, _REASON] != 0:
        return False
    k = x.shape[1]
    if moved:
        # A new point: Coleman-Li scaling, gradient test, factorisation.
        g_norm = _factor(i, x, g, d, diag_h, g_h, s, suf, rr, vv, work, lower, upper, xsc)
        if g_norm < sc[i, _GTOL] or k == 0:
            ic[i, _REASON] = _GTOL_MET
            return False
        sc[i, _THETA] = max(0.995, 1.0 - g_norm)
    if ic[i, _NFEV] >= max_nfev:
        ic[i, _REASON] = _MAXFEV
        return False
    sc[i, _ALPHA] = _more(s[i], suf[i], vv[i], sc[i, _DELTA], sc[i, _ALPHA], step_h[i],
                          ic[i, _M], work)
    for q in range(k):
        step[i, q] = d[i, q] * step_h[i, q]
    sc[i, _PRED] = _select_step(x[i], step[i], step_h[i], d[i], diag_h[i], g_h[i], rr[i],
                                sc[i, _DELTA], lower[i], upper[i], sc[i, _THETA], work)
    hn = 0.0
    sn = 0.0
    for q in range(k):
        hn += step_h[i, q] ** 2
        sn += step[i, q] ** 2
        x_new[i, q] = x[i, q] + step[i, q]
    sc[i, _STEPH] = math.sqrt(hn)
    sc[i, _STEPN] = math.sqrt(sn)
    for q in range(k):  # scipy's make_strictly_feasible(rstep=0)
        lo, hi = lower[i, q], upper[i, q]
        if x_new[i, q] <= lo:
            x_new[i, q] = np.nextafter(lo, hi)
        elif x_new[i, q] >= hi:
            x_new[i, q] = np.nextafter(hi, lo)
        if x_new[i, q] < lo or x_new[i, q] > hi:
            x_new[i, q] = 0.5 * (lo + hi)
    return True


@_jit
def _cl_scaling(x, g, lo, hi):
    """Coleman-Li scaling ``v`` and its derivative ``dv`` for one parameter."""
    if g < 0 and math.isfinite(hi):
        return hi - x, -1.0
    if g > 0 and math.isfinite(lo):
        return x - lo, 1.0
    return 1.0, 0.0


@_jit
def _factor(i, x, g, d, diag_h, g_h, s, suf, rr, vv, work, lower, upper, xsc):
    """Scaling at ``x[i]`` and the SVD of the augmented scaled Jacobian; the gradient norm."""
    k = x.shape[1]
    g_norm = 0.0
    for q in range(k):
        v, dv = _cl_scaling(x[i, q], g[i, q], lower[i, q], upper[i, q])
        g_norm = max(g_norm, abs(g[i, q] * v))
        if dv != 0:
            v /= xsc[i, q]
        d[i, q] = math.sqrt(v) * xsc[i, q]
        diag_h[i, q] = g[i, q] * dv * xsc[i, q]
        g_h[i, q] = d[i, q] * g[i, q]
    b = work[:2 * k]
    for row in range(2 * k):
        for c in range(k):
            b[row, c] = 0.0
    for row in range(k):
        for c in range(row, k):
            b[row, c] = rr[i, row, c] * d[i, c]
        b[k + row, row] = math.sqrt(diag_h[i, row])
    _jacobi_svd(b, s[i], vv[i])
    for q in range(k):
        acc = 0.0
        for t in range(k):
            acc += vv[i, t, q] * g_h[i, t]
        suf[i, q] = acc
    return g_norm


@_jit
def _householder_r(a, r):
    """Triangular factor ``r`` (k x k) of the QR factorisation of ``a`` (rows x k); ``a`` is destroyed."""
    rows, k = a.shape
    for q in range(k):
        for c in range(k):
            r[q, c] = 0.0
    for q in range(min(k, rows)):
        norm = 0.0
        for t in range(q, rows):
            norm += a[t, q] * a[t, q]
        norm = math.sqrt(norm)
        if norm == 0.0:
            for c in range(q + 1, k):
                r[q, c] = a[q, c]
            continue
        alpha = -norm if a[q, q] >= 0 else norm
        a[q, q] -= alpha
        vv = 0.0
        for t in range(q, rows):
            vv += a[t, q] * a[t, q]
        for c in range(q + 1, k):
            dot = 0.0
            for t in range(q, rows):
                dot += a[t, q] * a[t, c]
            f = 2.0 * dot / vv
            for t in range(q, rows):
                a[t, c] -= f * a[t, q]
        r[q, q] = alpha
        for c in range(q + 1, k):
            r[q, c] = a[q, c]


@_jit
def _jacobi_svd(b, s, v):
    """Singular values (descending) into ``s`` and right vectors into ``v`` of ``b``; ``b`` is destroyed.

    One-sided Jacobi (Hestenes): rotate column pairs until they are
    orthogonal; singular values are then the column norms.
    """
    rows, k = b.shape
    for p in range(k):
        for q in range(k):
            v[p, q] = 1.0 if p == q else 0.0
    for _sweep in range(60):
        rotated = False
        for p in range(k - 1):
            for q in range(p + 1, k):
                alpha = 0.0
                beta = 0.0
                gamma = 0.0
                for t in range(rows):
                    alpha += b[t, p] * b[t, p]
                    beta += b[t, q] * b[t, q]
                    gamma += b[t, p] * b[t, q]
                if gamma == 0.0 or abs(gamma) <= 1e-15 * math.sqrt(alpha * beta):
                    continue
                rotated = True
                zeta = (beta - alpha) / (2.0 * gamma)
                tan = math.copysign(1.0, zeta) / (abs(zeta) + math.hypot(1.0, zeta))
                cos = 1.0 / math.sqrt(1.0 + tan * tan)
                sin = cos * tan
                for t in range(rows):
                    bp = b[t, p]
                    bq = b[t, q]
                    b[t, p] = cos * bp - sin * bq
                    b[t, q] = sin * bp + cos * bq
                for t in range(k):
                    vp = v[t, p]
                    vq = v[t, q]
                    v[t, p] = cos * vp - sin * vq
                    v[t, q] = sin * vp + cos * vq
        if not rotated:
            break
    for q in range(k):
        acc = 0.0
        for t in range(rows):
            acc += b[t, q] * b[t, q]
        s[q] = math.sqrt(acc)
    for p in range(k):  # sort descending, columns of v along
        best = p
        for q in range(p + 1, k):
            if s[q] > s[best]:
                best = q
        if best != p:
            s[p], s[best] = s[best], s[p]
            for t in range(k):
                v[t, p], v[t, best] = v[t, best], v[t, p]


@_jit
def _more(s, suf, v, delta, alpha, p_h, m, work):
    """Moré's trust-region step ``p_h`` from the SVD; returns the new ``alpha`` (scipy's)."""
    k = s.shape[0]
    coef = work[work.shape[0] - 1]
    full_rank = m >= k and k > 0 and s[k - 1] > _EPS * m * s[0]
    if full_rank:
        for q in range(k):
            coef[q] = suf[q] / s[q] ** 2
        norm = _v_times(v, coef, p_h, -1.0)
        if norm <= delta:
            return 0.0
    alpha_upper = 0.0
    for q in range(k):
        alpha_upper += suf[q] ** 2
    alpha_upper = math.sqrt(alpha_upper) / delta
    alpha_lower = 0.0
    if full_rank:
        phi, phi_prime = _phi(0.0, suf, s, delta)
        alpha_lower = -phi / phi_prime
    if not full_rank and alpha == 0:
        alpha = max(0.001 * alpha_upper, math.sqrt(alpha_lower * alpha_upper))
    for _it in range(10):
        if alpha < alpha_lower or alpha > alpha_upper:
            alpha = max(0.001 * alpha_upper, math.sqrt(alpha_lower * alpha_upper))
        phi, phi_prime = _phi(alpha, suf, s, delta)
        if phi < 0:
            alpha_upper = alpha
        ratio = phi / phi_prime
        alpha_lower = max(alpha_lower, alpha - ratio)
        alpha -= (phi + delta) * ratio / delta
        if abs(phi) < 0.01 * delta:
            break
    for q in range(k):
        coef[q] = suf[q] / (s[q] ** 2 + alpha)
    norm = _v_times(v, coef, p_h, -1.0)
    if norm > 0:
        for q in range(k):
            p_h[q] *= delta / norm
    return alpha


@_jit
def _phi(alpha, suf, s, delta):
    """Moré's ``phi(alpha) = ||p(alpha)|| - delta`` and its derivative."""
    norm = 0.0
    der = 0.0
    for q in range(s.shape[0]):
        den = s[q] ** 2 + alpha
        norm += (suf[q] / den) ** 2
        der += suf[q] ** 2 / den ** 3
    norm = math.sqrt(norm)
    return norm - delta, -der / norm


@_jit
def _v_times(v, coef, out, sign):
    """``out = sign * v @ coef``; returns its norm."""
    k = coef.shape[0]
    norm = 0.0
    for t in range(k):
        acc = 0.0
        for q in range(k):
            acc += v[t, q] * coef[q]
        out[t] = sign * acc
        norm += acc * acc
    return math.sqrt(norm)


@_jit
def _jh(r, d, sv, out):
    """``out = J_h @ sv`` up to an orthogonal factor: ``R @ (d * sv)``."""
    k = sv.shape[0]
    for row in range(k):
        acc = 0.0
        for c in range(row, k):
            acc += r[row, c] * d[c] * sv[c]
        out[row] = acc


@_jit
def _quadratic(r, d, diag_h, g_h, sv, tmp):
    """``0.5 sv.(J_h^T J_h + diag_h) sv + g_h.sv`` (scipy's evaluate_quadratic)."""
    _jh(r, d, sv, tmp)
    q = 0.0
    lin = 0.0
    for c in range(sv.shape[0]):
        q += tmp[c] * tmp[c] + diag_h[c] * sv[c] * sv[c]
        lin += sv[c] * g_h[c]
    return 0.5 * q + lin


@_jit
def _line_quadratic(r, d, diag_h, g_h, sv, s0, tmp, tmp0, with_s0):
    """Coefficients of the quadratic along ``s0 + t sv`` (scipy's build_quadratic_1d)."""
    _jh(r, d, sv, tmp)
    a = 0.0
    b = 0.0
    c = 0.0
    for q in range(sv.shape[0]):
        a += tmp[q] * tmp[q] + sv[q] * diag_h[q] * sv[q]
        b += g_h[q] * sv[q]
    a *= 0.5
    if with_s0:
        _jh(r, d, s0, tmp0)
        for q in range(sv.shape[0]):
            b += tmp0[q] * tmp[q] + s0[q] * diag_h[q] * sv[q]
            c += 0.5 * tmp0[q] * tmp0[q] + g_h[q] * s0[q] + 0.5 * s0[q] * diag_h[q] * s0[q]
    return a, b, c


@_jit
def _min_line(a, b, lo, hi, c):
    """Minimum of ``a t**2 + b t + c`` on ``[lo, hi]`` (scipy's minimize_quadratic_1d)."""
    best_t = lo
    best = lo * (a * lo + b) + c
    y = hi * (a * hi + b) + c
    if y < best:
        best_t, best = hi, y
    if a != 0:
        ext = -0.5 * b / a
        if lo < ext < hi:
            y = ext * (a * ext + b) + c
            if y < best:
                best_t, best = ext, y
    return best_t, best


@_jit
def _to_bound(xv, sv, lo, hi, hits):
    """Step along ``sv`` from ``xv`` to the nearest bound, and which bounds it hits."""
    k = xv.shape[0]
    best = math.inf
    for q in range(k):
        if sv[q] != 0:
            t = max((lo[q] - xv[q]) / sv[q], (hi[q] - xv[q]) / sv[q])
            best = min(best, t)
    for q in range(k):
        hits[q] = 0.0
        if sv[q] != 0:
            t = max((lo[q] - xv[q]) / sv[q], (hi[q] - xv[q]) / sv[q])
            if t == best:
                hits[q] = 1.0
    return best


@_jit
def _select_step(xv, p, p_h, d, diag_h, g_h, r, delta, lo, hi, theta, work):
    """scipy's TRF ``select_step``: the step (into ``p``, ``p_h``) and its predicted reduction."""
    k = xv.shape[0]
    base = work.shape[0] - 8
    r_h, rr, ag_h, ag, hits, xb, tmp, tmp0 = (work[base], work[base + 1], work[base + 2],
                                              work[base + 3], work[base + 4], work[base + 5],
                                              work[base + 6], work[base + 7])
    inside = True
    for q in range(k):
        y = xv[q] + p[q]
        if not (lo[q] <= y <= hi[q]):
            inside = False
    if inside:
        return -_quadratic(r, d, diag_h, g_h, p_h, tmp)
    p_stride = _to_bound(xv, p, lo, hi, hits)
    for q in range(k):
        r_h[q] = -p_h[q] if hits[q] != 0 else p_h[q]
        rr[q] = d[q] * r_h[q]
        p[q] *= p_stride
        p_h[q] *= p_stride
        xb[q] = xv[q] + p[q]
    # Where the reflected direction leaves the trust region.
    aa = 0.0
    bb = 0.0
    cc = 0.0
    for q in range(k):
        aa += r_h[q] * r_h[q]
        bb += p_h[q] * r_h[q]
        cc += p_h[q] * p_h[q]
    cc -= delta * delta
    if aa > 0:
        disc = math.sqrt(max(bb * bb - aa * min(cc, 0.0), 0.0))
        qq = -(bb + math.copysign(disc, bb))
        t1 = qq / aa
        t2 = min(cc, 0.0) / qq if qq != 0 else 0.0
        to_tr = max(t1, t2)
    else:
        to_tr = 0.0
    to_bound = _to_bound(xb, rr, lo, hi, hits)
    r_stride = min(to_bound, to_tr)
    if r_stride > 0:
        r_lo = (1.0 - theta) * p_stride / r_stride
        r_hi = theta * to_bound if r_stride == to_bound else to_tr
    else:
        r_lo = 0.0
        r_hi = -1.0
    r_value = math.inf
    if r_lo <= r_hi:
        a, b, c = _line_quadratic(r, d, diag_h, g_h, r_h, p_h, tmp, tmp0, True)
        t, r_value = _min_line(a, b, r_lo, r_hi, c)
        for q in range(k):
            r_h[q] = r_h[q] * t + p_h[q]
            rr[q] = r_h[q] * d[q]
    for q in range(k):
        p[q] *= theta
        p_h[q] *= theta
    p_value = _quadratic(r, d, diag_h, g_h, p_h, tmp)
    gnorm = 0.0
    for q in range(k):
        ag_h[q] = -g_h[q]
        ag[q] = d[q] * ag_h[q]
        gnorm += ag_h[q] * ag_h[q]
    to_tr = delta / math.sqrt(gnorm)
    to_bound = _to_bound(xv, ag, lo, hi, hits)
    ag_stride = theta * to_bound if to_bound < to_tr else to_tr
    a, b, c = _line_quadratic(r, d, diag_h, g_h, ag_h, ag_h, tmp, tmp0, False)
    t, ag_value = _min_line(a, b, 0.0, ag_stride, 0.0)
    if p_value < r_value and p_value < ag_value:
        return -p_value
    if r_value < p_value and r_value < ag_value:
        for q in range(k):
            p[q] = rr[q]
            p_h[q] = r_h[q]
        return -r_value
    for q in range(k):
        p[q] = ag[q] * t
        p_h[q] = ag_h[q] * t
    return -ag_value
