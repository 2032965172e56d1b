"""parfit's default fitter: every fit of a block solved at once.

:class:`BatchedFitter` hands a whole block to the batched Levenberg-Marquardt
solver of :mod:`parfit.fitters.lm` (vectorised numpy), or, for models built
only from compiled built-in components, to the equivalent compiled kernel of
:mod:`parfit.fitters._compiled` when numba is installed.  Both run the same
algorithm with the same tests and give the same answers.
"""

import numpy as np

from .._capture import capture_warnings
from ..errors import InputError
from ..status import Status
from . import lm
from .base import BlockResult, Fitter, run_guarded, screen_block

__all__ = ["BatchedFitter"]

_OPTIONS = ("ftol", "xtol", "gtol", "max_nfev", "factor")


class BatchedFitter(Fitter):
    """Fit all pixels of a block together with a batched Levenberg-Marquardt solver.

    The default fitter of :func:`parfit.parallel_fit` (``fitter=None``).
    The algorithm, its convergence tests and how bounds are handled are
    described in :mod:`parfit.fitters.lm` and on the "Solver" docs page.

    Parameters
    ----------
    ftol, xtol, gtol : float
        Convergence tolerances on the relative reduction of chi-square, the
        relative step size and the gradient cosine (MINPACK's meanings).
    max_nfev : int or None
        Most model evaluations per fit; None means ``100 * (n_free + 1)``.
        A fit that reaches it gets status ``NOT_CONVERGED``.
    factor : float
        Initial step bound, as a multiple of the scaled norm of the starting
        values (MINPACK's ``factor``).  Smaller values keep fits closer to
        their start.
    scale_covariance : bool
        Scale the covariance by the reduced chi-square (the default, as
        astropy, lmfit and ``curve_fit`` do).  Set to False when the weights
        are true ``1/sigma``.
    engine : {"auto", "numpy", "compiled"}
        ``"auto"`` uses the compiled kernel when the model is made of
        built-in components joined with ``+`` and has no tied parameters,
        and numba is installed; otherwise the vectorised numpy solver.
        ``"compiled"`` raises if the kernel cannot be used.

    Examples
    --------
    >>> import numpy as np
    >>> from parfit.fitters import BatchedFitter
    >>> from parfit.models import Gaussian1D
    >>> x = np.linspace(-5, 5, 50)
    >>> y = Gaussian1D(2.0, 0.5, 1.2)(x)
    >>> fitted = BatchedFitter().fit(Gaussian1D(1.0, 0.0, 1.0), x, y=y)
    >>> [round(float(v), 6) for v in fitted.params[0]]
    [2.0, 0.5, 1.2]
    """

    name = "batched-lm"

    def __init__(self, *, ftol=1e-8, xtol=1e-8, gtol=1e-8, max_nfev=None, factor=0.1,
                 scale_covariance=True, engine="auto"):
        self.options = _make_options(dict(ftol=ftol, xtol=xtol, gtol=gtol, max_nfev=max_nfev,
                                          factor=factor), "BatchedFitter")
        if engine not in ("auto", "numpy", "compiled"):
            raise InputError(
                f"engine must be 'auto', 'numpy' or 'compiled'; got {engine!r}"
            )
        if engine == "compiled":
            from . import _compiled

            if not _compiled.AVAILABLE:
                raise InputError(
                    "engine='compiled' needs numba, which is not installed; "
                    "use engine='auto' or 'numpy'"
                )
        self.engine = engine
        self.scale_covariance = bool(scale_covariance)

    def describe(self):
        opts = ", ".join(f"{k}={getattr(self.options, k)!r}" for k in _OPTIONS
                         if getattr(self.options, k) is not None)
        # scale_covariance changes the errors, so it belongs to the description (and
        # so to the options fingerprint a resume checks); shown only when not default.
        extra = "" if self.scale_covariance else ", scale_covariance=False"
        return f"batched Levenberg-Marquardt ({opts}, engine={self.engine!r}{extra})"

    def check(self, model, fitter_kwargs=None):
        """Reject unknown ``fitter_kwargs`` and models the engine cannot run."""
        self._options(fitter_kwargs)  # raises on unknown or invalid options
        if self.engine == "compiled":
            from . import _compiled

            reason = _compiled.unsupported_reason(model)
            if reason:
                raise InputError(f"engine='compiled' cannot fit this model: {reason}")

    def _options(self, fitter_kwargs):
        if not fitter_kwargs:
            return self.options
        merged = {k: getattr(self.options, k) for k in _OPTIONS}
        unknown = sorted(set(fitter_kwargs) - set(_OPTIONS))
        if unknown:
            raise InputError(
                f"fitter_kwargs has unknown key(s) {', '.join(map(repr, unknown))} for "
                f"fitter {self.name!r}; valid keys are {', '.join(map(repr, _OPTIONS))}"
            )
        merged.update(fitter_kwargs)
        return _make_options(merged, "fitter_kwargs")

    def fit_block(self, model, block, *, fit_info=False, fitter_kwargs=None):
        options = self._options(fitter_kwargs)
        n_params = len(model.param_names)
        result = BlockResult.empty(block.n_fits, n_params)
        free = np.asarray(model.free_mask, dtype=bool)
        todo = screen_block(block, free, result, names=model.param_names)
        infos = [None] * block.n_fits if fit_info else None
        if len(todo):
            # One batched solve; if the model raises or warns, the fits are
            # redone one by one so the failure lands on the fit that caused it.
            with capture_warnings() as records:
                try:
                    self._solve(model, block, todo, free, options, result, infos)
                    failed = False
                except KeyboardInterrupt:
                    raise
                except BaseException:  # a user model may raise anything
                    failed = True
            if failed or records:
                for i in todo:
                    run_guarded(result, i, self._solve, model, block, np.array([i]), free,
                                options, result, infos)
        result.fit_info = infos
        return result

    def _solve(self, model, block, todo, free, options, result, infos):
        """Fit rows ``todo`` of ``block`` and store them in ``result``."""
        problem = _ModelProblem(model, block, todo, free)
        p0 = block.p0[todo][:, free]
        lower, upper = block.lower[todo][:, free], block.upper[todo][:, free]
        outcome = None
        # Floating-point trouble (overflow in a far-off trial step, a singular
        # covariance) is handled through the results, not reported as warnings.
        with np.errstate(all="ignore"):
            if self.engine != "numpy":
                from . import _compiled

                outcome = _compiled.solve(model, problem, p0, lower, upper, options,
                                          required=self.engine == "compiled")
            if outcome is None:
                outcome = lm.levenberg_marquardt(problem, p0, lower, upper, options)
            self._store(model, problem, todo, free, outcome, options, result, infos)

    def _store(self, model, problem, todo, free, outcome, options, result, infos):
        params = problem.full_parameters(np.arange(len(todo)), outcome.params)
        converged = outcome.converged
        finite = np.all(np.isfinite(params), axis=1) & np.isfinite(outcome.chi2)
        ok = converged & finite
        result.nfev[todo] = outcome.nfev
        ok_rows = todo[ok]
        result.params[ok_rows] = params[ok]
        result.statistic[ok_rows] = outcome.chi2[ok]
        result.errors[ok_rows] = _errors(model, params[ok], free, problem.has_ties,
                                         outcome.normal[ok], outcome.chi2[ok],
                                         problem.n_valid[ok], self.scale_covariance)
        result.status[ok_rows] = Status.OK
        limit = options.nfev_limit(int(free.sum()))
        for j in np.flatnonzero(~ok):
            i = todo[j]
            reason = int(outcome.reason[j])
            if reason == lm.BAD_START:
                result.fail(i, Status.NONFINITE, "the model is not finite at the starting values")
            elif reason == lm.MAXFEV:
                result.fail(i, Status.NOT_CONVERGED,
                            f"batched Levenberg-Marquardt: the maximum number of function "
                            f"evaluations ({limit}) was reached")
            else:
                result.fail(i, Status.NONFINITE, "the fit ended on non-finite parameters")
        if infos is not None:
            for j, i in enumerate(todo):
                infos[i] = {
                    "message": lm.REASONS[int(outcome.reason[j])],
                    "nfev": int(outcome.nfev[j]),
                    "n_iter": int(outcome.n_iter[j]),
                    "chi2": float(outcome.chi2[j]),
                    "converged": bool(converged[j]),
                }


class _ModelProblem(lm.Problem):
    """Weighted residuals of a parfit model on rows ``todo`` of a block."""

    def __init__(self, model, block, todo, free):
        self.model = model
        self.free = free
        self.has_ties = any(getattr(model, n).tied for n in model.param_names)
        self.cheap_jacobian = bool(model.has_analytic_jacobian)
        valid = block.valid[todo]
        self.valid = valid
        self.n_valid = valid.sum(axis=1)
        self.y = np.where(valid, block.y[todo], 0.0)
        w = 1.0 if block.weights is None else block.weights[todo]
        self.w = np.where(valid, w, 0.0)
        self.xs = [xk[None, :] if xk.ndim == 1 else np.where(valid, xk[todo], 0.0)
                   for xk in block.x]
        self.shared_x = all(xk.shape[0] == 1 for xk in self.xs)
        self.template = block.p0[todo]

    def full_parameters(self, rows, params):
        full = self.template[rows].copy()
        full[:, self.free] = params
        return self.model.apply_ties(full) if self.has_ties else full

    def _inputs(self, rows):
        if self.shared_x:
            return self.xs
        return [xk if xk.shape[0] == 1 else xk[rows] for xk in self.xs]

    def residuals(self, rows, params):
        value = self.model._value(self._inputs(rows), self.full_parameters(rows, params))
        return np.where(self.valid[rows], (value - self.y[rows]) * self.w[rows], 0.0)

    def residuals_and_jacobian(self, rows, params):
        full = self.full_parameters(rows, params)
        n_samples = self.y.shape[1]
        jac = np.empty((len(rows), n_samples, full.shape[1]))
        value = self.model._jac_into(self._inputs(rows), full, jac)
        value = np.broadcast_to(value, (len(rows), n_samples))
        w = self.w[rows]
        r = np.where(self.valid[rows], (value - self.y[rows]) * w, 0.0)
        if self.has_ties:
            jac = np.einsum("nmk,nkf->nmf", jac, self.model.tie_jacobian(full))
        else:
            jac = jac[:, :, self.free]
        jac = np.where(self.valid[rows][:, :, None], jac * w[:, :, None], 0.0)
        return r, jac


def _errors(model, params, free, has_ties, normal, chi2, n_valid, scale):
    """1-sigma errors of all parameters from ``J^T J`` at the solution.

    The covariance of the free parameters is ``inv(J^T J)``, computed from the
    Cholesky factor of ``J^T J`` scaled to unit diagonal (a correlation
    matrix); NaN when that matrix is numerically singular (a pivot below
    ``sqrt(10 * n_free * eps)``, i.e. parameters degenerate to about 1e-7).
    With ``scale`` it is multiplied by the reduced chi-square.
    """
    n, n_params = params.shape
    errors = np.full((n, n_params), np.nan)
    n_free = normal.shape[1]
    if n == 0 or n_free == 0:
        return errors
    diag = np.diagonal(normal, axis1=1, axis2=2)
    positive = np.all(diag > 0, axis=1)
    d = np.sqrt(np.where(diag > 0, diag, 1.0))
    corr = normal / (d[:, :, None] * d[:, None, :])
    inv_corr, pivots = lm.cholesky_inverse(corr)
    singular = ~positive | np.any(pivots <= np.sqrt(10 * n_free * np.finfo(float).eps),
                                  axis=1)
    cov = inv_corr / (d[:, :, None] * d[:, None, :])
    if scale:
        dof = n_valid - n_free
        factor = np.where(dof > 0, chi2 / np.where(dof > 0, dof, 1), np.nan)
        cov = cov * factor[:, None, None]
    cov[singular] = np.nan
    if has_ties:
        d = model.tie_jacobian(params)
        var = np.einsum("npf,nfg,npg->np", d, cov, d)
        fixed = np.array([bool(getattr(model, name).fixed) for name in model.param_names])
        var[:, fixed] = np.nan
    else:
        var = np.full((n, n_params), np.nan)
        var[:, free] = np.diagonal(cov, axis1=1, axis2=2)
    errors[...] = np.sqrt(np.where(var >= 0, var, np.nan))
    return errors


def _make_options(values, what):
    for key in ("ftol", "xtol", "gtol"):
        v = values[key]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v < 1:
            raise InputError(f"{what}: {key} must be a number in [0, 1); got {v!r}")
    if values["ftol"] == values["xtol"] == values["gtol"] == 0:
        raise InputError(f"{what}: ftol, xtol and gtol cannot all be zero")
    m = values["max_nfev"]
    if m is not None and (not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < 1):
        raise InputError(f"{what}: max_nfev must be a positive integer or None; got {m!r}")
    f = values["factor"]
    if not isinstance(f, (int, float)) or isinstance(f, bool) or not f > 0:
        raise InputError(f"{what}: factor must be a positive number; got {f!r}")
    return lm.LMOptions(**values)
