"""Adapter running an :mod:`astropy.modeling` fitter on each fit of a block.

This is the path :func:`parfit.parallel_fit` takes when it is given an
astropy fitter instance, exactly as ``astropy.modeling.fitting.
parallel_fit_dask`` would: one call of the fitter per pixel, with the
starting values of that pixel.  Differences (documented in the migration
guide): NaN, inf and masked samples are left out of a pixel's fit instead of
failing it, a failing fit never stops the run, and the caller's fitter is
never modified (each block works on its own copy).
"""

import copy
import inspect

import numpy as np

from ..errors import InputError
from ..status import Status
from . import quality
from .base import BlockResult, Fitter, run_guarded, screen_block

__all__ = ["AstropyFitter", "astropy_free_mask"]


def astropy_free_mask(model):
    """Bool array, True for the parameters an astropy fitter varies."""
    return np.array(
        [not model.fixed[name] and not model.tied[name] for name in model.param_names],
        dtype=bool,
    )


class AstropyFitter(Fitter):
    """Run an astropy fitter instance on every fit of a block.

    Parameters
    ----------
    fitter : astropy.modeling.fitting.Fitter
        An astropy fitter instance, such as ``TRFLSQFitter()``.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.modeling import models, fitting
    >>> from parfit.fitters import AstropyFitter
    >>> x = np.linspace(-5, 5, 50)
    >>> y = models.Gaussian1D(2.0, 0.5, 1.2)(x)
    >>> fitter = AstropyFitter(fitting.TRFLSQFitter())
    >>> out = fitter.fit(models.Gaussian1D(1.0, 0.0, 1.0), x, y=y)
    >>> [round(float(v), 6) for v in out.params[0]]
    [2.0, 0.5, 1.2]
    """

    def __init__(self, fitter):
        if isinstance(fitter, type):
            raise InputError(
                f"fitter must be an astropy fitter instance, not the class "
                f"{fitter.__name__}; use fitter={fitter.__name__}()"
            )
        self.fitter = fitter

    @property
    def name(self):
        return f"astropy-{type(self.fitter).__name__}"

    def describe(self):
        return f"astropy.modeling.fitting.{type(self.fitter).__name__} (per fit)"

    def check(self, model, fitter_kwargs=None):
        try:
            signature = inspect.signature(self.fitter.__call__)
        except (TypeError, ValueError):  # pragma: no cover - builtins
            return
        params = signature.parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return
        unknown = sorted(set(fitter_kwargs or {}) - set(params))
        if unknown:
            raise InputError(
                f"fitter_kwargs has key(s) {', '.join(map(repr, unknown))} that "
                f"{type(self.fitter).__name__} does not accept; it accepts "
                f"{', '.join(n for n in params if n not in ('model', 'x', 'y', 'z'))}"
            )

    def parameter_arrays(self, model):
        out = []
        for name in model.param_names:
            lower, upper = model.bounds[name]
            value = np.asarray(getattr(model, name).value, dtype=np.float64)
            out.append((
                name,
                value.item() if value.ndim == 0 else value,
                -np.inf if lower is None else float(lower),
                np.inf if upper is None else float(upper),
            ))
        return out

    def model_with_values(self, model, values):
        out = model.copy()
        out._reset_parameters(**{n: float(v) for n, v in zip(model.param_names, values)})
        return out

    def fit_block(self, model, block, *, fit_info=False, fitter_kwargs=None):
        fitter_kwargs = dict(fitter_kwargs or {})
        # A private copy per block: astropy fitters store fit_info on
        # themselves, which threads would otherwise overwrite under us.
        fitter = copy.deepcopy(self.fitter)
        names = model.param_names
        result = BlockResult.empty(block.n_fits, len(names))
        free = astropy_free_mask(model)
        infos = [None] * block.n_fits if fit_info else None
        model_i = model.copy()
        ours = _parfit_twin(model)
        todo = screen_block(block, free, result, names=names, check_bounds=False)
        for i in todo:
            sel = block.valid[i]
            if sel.all():
                x = tuple(xk.reshape(block.sample_shape) for xk in block.fit_x(i))
                y = block.y[i].reshape(block.sample_shape)
                w = None if block.weights is None else block.weights[i].reshape(block.sample_shape)
            else:
                x = block.fit_x(i, sel)
                y = block.y[i, sel]
                w = None if block.weights is None else block.weights[i, sel]
            model_i._reset_parameters(**{n: block.p0[i, k] for k, n in enumerate(names)})
            kwargs = dict(fitter_kwargs)
            if w is not None:
                kwargs["weights"] = w
            run_guarded(result, i, self._fit_one, fitter, model_i, x, y, w, kwargs, free, i,
                        result, infos, fit_info, block, ours)
        result.fit_info = infos
        return result

    @staticmethod
    def _fit_one(fitter, model_i, x, y, w, kwargs, free, i, result, infos, fit_info, block,
                 ours):
        fitted = fitter(model_i, *x, y, inplace=True, **kwargs)
        params = np.array([np.asarray(getattr(fitted, n).value, dtype=float).item()
                           for n in fitted.param_names])
        info = getattr(fitter, "fit_info", None)
        if infos is not None:
            infos[i] = _select_fit_info(info, fit_info)
        if not np.all(np.isfinite(params)):
            result.fail(i, Status.NONFINITE, "the fit ended on non-finite parameters")
            return
        resid = fitted(*x) - y
        if w is not None:
            resid = resid * w
        chi2 = float(np.sum(np.square(resid)))
        nfev = _info_get(info, "nfev")
        result.nfev[i] = int(nfev) if nfev is not None else -1
        errors = np.full((1, len(params)), np.nan)
        cov = _info_get(info, "param_cov")
        cov = None if cov is None else np.asarray(cov, dtype=float)
        if cov is not None and cov.shape == (free.sum(), free.sum()):
            var = np.diag(cov)
            errors[0, free] = np.sqrt(np.where(var >= 0, var, np.nan))
        else:  # this fitter gives no covariance: one from a numerical Jacobian
            normal = _numerical_normal(fitted, x, w, params, free)
            errors = quality.errors_from_normal(None, params[None], free, False, normal[None],
                                                np.array([chi2]), np.array([np.size(y)]), True)
        row = np.array([i])
        flags = quality.quality_flags(ours, block, row, params[None], errors, free)
        quality.store_converged(result, row, params[None], np.array([chi2]), errors, flags,
                                fitted.param_names)


def _parfit_twin(model):
    """parfit's version of an astropy model (for the collapse test), or None."""
    from ..models.astropy_bridge import from_astropy

    try:
        twin = from_astropy(model)
    except Exception:  # a model parfit has no twin of: no collapse test
        return None
    return twin if tuple(twin.param_names) == tuple(model.param_names) else None


def _numerical_normal(fitted, x, w, params, free):
    """``J^T J`` of the weighted residuals by central differences in the free parameters."""
    cols = []
    for k in np.flatnonzero(free):
        h = np.finfo(float).eps ** (1 / 3) * max(abs(params[k]), 1.0)
        up, down = params.copy(), params.copy()
        up[k] += h
        down[k] -= h
        col = (np.ravel(fitted.evaluate(*x, *up)) - np.ravel(fitted.evaluate(*x, *down))) / (2 * h)
        cols.append(col if w is None else col * np.ravel(w))
    jac = np.stack(cols, axis=1) if cols else np.zeros((np.size(x[0]), 0))
    return jac.T @ jac


def _info_get(info, key):
    if info is None:
        return None
    if isinstance(info, dict):
        return info.get(key)
    return getattr(info, key, None)


def _select_fit_info(info, fit_info):
    if fit_info is True:
        return copy.deepcopy(info)
    return {key: copy.deepcopy(_info_get(info, key)) for key in fit_info}
