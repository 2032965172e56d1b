"""Per-fit fitter on :func:`scipy.optimize.least_squares`.

The reference path: every fit of a block is solved on its own by scipy
(trust-region reflective, dogbox or MINPACK Levenberg-Marquardt), using the
model's analytic Jacobian.  It is the oracle the batched solver is tested
against and the fitter to choose when a problem needs scipy's robust losses.
"""

import inspect

import numpy as np
from scipy.optimize import least_squares

from ..errors import InputError
from ..status import Status
from . import quality
from .base import BlockResult, Fitter, run_guarded, screen_block

__all__ = ["ScipyFitter"]

_METHODS = ("trf", "dogbox", "lm")
_LSQ_OPTIONS = frozenset(inspect.signature(least_squares).parameters) - {
    "fun",
    "x0",
    "jac",
    "bounds",
    "method",
    "args",
    "kwargs",
    "callback",
}


class ScipyFitter(Fitter):
    """Fit each pixel on its own with :func:`scipy.optimize.least_squares`.

    Parameters
    ----------
    method : {"trf", "dogbox", "lm"}
        The scipy algorithm.  ``"trf"`` and ``"dogbox"`` respect bounds
        exactly; ``"lm"`` (MINPACK) has no bounds of its own, so, as
        astropy's ``LevMarLSQFitter`` does, parameters are clipped into
        their bounds whenever the model is evaluated.
    ftol, xtol, gtol : float
        Convergence tolerances, as in :func:`scipy.optimize.least_squares`.
    max_nfev : int or None
        Maximum number of model evaluations per fit (scipy's default if None).
    x_scale : float, array_like or "jac"
        Characteristic scale of each parameter (scipy's default, 1).
        ``"jac"`` scales by the Jacobian's column norms, which helps when
        parameters differ by orders of magnitude, but lets a poorly started
        fit take larger first steps.
    scale_covariance : bool
        If True (the default, as in astropy, lmfit and ``curve_fit``), the
        covariance matrix is scaled by the reduced chi-square, so errors do
        not depend on the absolute scale of the weights.  Set to False when
        the weights are true ``1/sigma`` values.
    **options
        Any other keyword of :func:`scipy.optimize.least_squares`
        (``loss``, ``f_scale``, ``x_scale``, ``diff_step``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> from parfit.fitters import ScipyFitter
    >>> from parfit.models import Gaussian1D
    >>> x = np.linspace(-5, 5, 50)
    >>> y = Gaussian1D(2.0, 0.5, 1.2)(x)
    >>> fitted = ScipyFitter("trf").fit(Gaussian1D(1.0, 0.0, 1.0), x, y=y)
    >>> [round(float(v), 6) for v in fitted.params[0]]
    [2.0, 0.5, 1.2]
    """

    def __init__(self, method="trf", *, ftol=1e-8, xtol=1e-8, gtol=1e-8, max_nfev=None,
                 x_scale=1.0, scale_covariance=True, **options):
        if method not in _METHODS:
            raise InputError(
                f"fitter method must be one of {', '.join(map(repr, _METHODS))}; got {method!r}"
            )
        unknown = sorted(set(options) - _LSQ_OPTIONS)
        if unknown:
            raise InputError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for ScipyFitter; "
                f"valid options are those of scipy.optimize.least_squares: "
                f"{', '.join(sorted(_LSQ_OPTIONS))}"
            )
        self.method = method
        self.options = dict(ftol=ftol, xtol=xtol, gtol=gtol, max_nfev=max_nfev, x_scale=x_scale,
                            **options)
        self.scale_covariance = bool(scale_covariance)

    @property
    def name(self):
        return f"scipy-{self.method}"

    def describe(self):
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if v is not None)
        extra = "" if self.scale_covariance else ", scale_covariance=False"
        return f"scipy.optimize.least_squares(method={self.method!r}, {opts}{extra})"

    def check(self, model, fitter_kwargs=None):
        """Reject, before dispatch, what scipy would reject in every fit."""
        unknown = sorted(set(fitter_kwargs or {}) - _LSQ_OPTIONS)
        if unknown:
            raise InputError(
                f"fitter_kwargs has unknown key(s) {', '.join(map(repr, unknown))} for "
                f"fitter {self.name!r}; valid keys are the options of "
                f"scipy.optimize.least_squares: {', '.join(sorted(_LSQ_OPTIONS))}"
            )

    def fit_block(self, model, block, *, fit_info=False, fitter_kwargs=None):
        options = dict(self.options)
        options.update(fitter_kwargs or {})
        options = {k: v for k, v in options.items() if v is not None}
        n_params = len(model.param_names)
        result = BlockResult.empty(block.n_fits, n_params)
        free = np.asarray(model.free_mask, dtype=bool)
        has_ties = any(getattr(model, n).tied for n in model.param_names)
        infos = [None] * block.n_fits if fit_info else None
        for i in screen_block(block, free, result, names=model.param_names):
            run_guarded(result, i, self._fit_one, model, block, i, free, has_ties, options,
                        result, infos)
        result.fit_info = infos
        return result

    def _fit_one(self, model, block, i, free, has_ties, options, result, infos):
        sel = block.valid[i]
        subset = None if sel.all() else sel
        xs = tuple(xk[None, :] for xk in block.fit_x(i, subset))
        y = block.y[i] if subset is None else block.y[i, subset]
        w = None
        if block.weights is not None:
            w = block.weights[i] if subset is None else block.weights[i, subset]
        p_start = block.p0[i].copy()
        lower = block.lower[i, free]
        upper = block.upper[i, free]
        clip = self.method == "lm" and (np.isfinite(lower).any() or np.isfinite(upper).any())

        def full(pf):
            p = p_start.copy()
            p[free] = np.clip(pf, lower, upper) if clip else pf
            p = p[None, :]
            return model.apply_ties(p) if has_ties else p

        def fun(pf):
            r = model.evaluate(*xs, full(pf))[0] - y
            return r * w if w is not None else r

        def jac(pf):
            p = full(pf)
            j = model.jacobian(*xs, p)[0]
            j = j @ model.tie_jacobian(p)[0] if has_ties else j[:, free]
            return j * w[:, None] if w is not None else j

        x0 = p_start[free]
        r0 = fun(x0)
        if not np.all(np.isfinite(r0)):
            result.fail(i, Status.NONFINITE, "the model is not finite at the starting values")
            return
        bounds = (lower, upper) if self.method != "lm" else (-np.inf, np.inf)
        sol = least_squares(fun, x0, jac=jac, bounds=bounds, method=self.method, **options)
        result.nfev[i] = sol.nfev
        if infos is not None:
            infos[i] = {
                "status": int(sol.status),
                "message": sol.message,
                "nfev": int(sol.nfev),
                "cost": float(sol.cost),
                "optimality": float(sol.optimality),
            }
        if sol.status == 0:
            result.fail(i, Status.NOT_CONVERGED, f"scipy least_squares: {sol.message}")
            return
        if sol.status < 0:
            result.fail(i, Status.FIT_ERROR, f"scipy least_squares: {sol.message}")
            return
        params = full(sol.x)[0]
        chi2 = float(sol.fun @ sol.fun)
        if not (np.all(np.isfinite(params)) and np.isfinite(chi2)):
            result.fail(i, Status.NONFINITE, "the fit ended on non-finite parameters")
            return
        j = jac(sol.x)
        row = np.array([i])
        errors = quality.errors_from_normal(model, params[None], free, has_ties,
                                            (j.T @ j)[None], np.array([chi2]),
                                            np.array([len(y)]), self.scale_covariance)
        flags = quality.quality_flags(model, block, row, params[None], errors, free)
        quality.store_converged(result, row, params[None], np.array([chi2]), errors, flags,
                                model.param_names)
