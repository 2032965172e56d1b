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
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from ..errors import InputError, ParameterError
from ..status import Status
from . import quality
from .base import BlockResult, FitBlock, Fitter, Row, run_guarded, screen_block
from .options import FitInfoArg, check_bool, check_max_nfev, check_positive, refuse_unknown_kwargs
from .scipy_fitter import FIT_INFO_NAMES as _SCIPY_FIT_INFO

__all__ = ["AstropyFitter", "ASTROPY_FIT_INFO_NAMES", "astropy_free_mask"]

#: The entries of ``fit_info`` of astropy's own fitter classes (astropy 6 to 8), by
#: class name.  Subclasses and other fitters are not listed: any name is
#: accepted for them.
ASTROPY_FIT_INFO_NAMES: dict[str, tuple[str, ...]] = {
    "TRFLSQFitter": _SCIPY_FIT_INFO + ("param_cov",),
    "DogBoxLSQFitter": _SCIPY_FIT_INFO + ("param_cov",),
    "LMLSQFitter": _SCIPY_FIT_INFO + ("param_cov",),
    "LevMarLSQFitter": (
        "nfev",
        "njev",
        "fvec",
        "fjac",
        "ipvt",
        "qtf",
        "message",
        "ierr",
        "param_jac",
        "param_cov",
        "cov_x",
    ),
    "SLSQPLSQFitter": ("final_func_val", "numiter", "exit_mode", "message"),
    "SimplexLSQFitter": ("final_func_val", "numiter", "exit_mode", "num_function_calls"),
    "LinearLSQFitter": ("residuals", "rank", "singular_values", "params"),
}

#: Arguments of an astropy fitter call that parfit itself sets for every fit.
_RESERVED = ("model", "x", "y", "z", "weights", "inplace")

#: Checks of the usual keyword arguments of astropy fitters (as ``fitter_kwargs``).
_KWARG_CHECKS: dict[str, Callable[[Any], object]] = {
    "maxiter": lambda v: check_max_nfev(v, "fitter_kwargs", name="maxiter", allow_none=False),
    "acc": lambda v: check_positive(v, "fitter_kwargs", "acc"),
    "epsilon": lambda v: check_positive(v, "fitter_kwargs", "epsilon"),
    "estimate_jacobian": lambda v: check_bool(v, "fitter_kwargs", "estimate_jacobian"),
    "filter_non_finite": lambda v: check_bool(v, "fitter_kwargs", "filter_non_finite"),
}


def astropy_free_mask(model: Any) -> np.ndarray:
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

    def __init__(self, fitter: Any) -> None:
        if isinstance(fitter, type):
            raise InputError(
                f"fitter must be an astropy fitter instance, not the class "
                f"{fitter.__name__}; use fitter={fitter.__name__}()"
            )
        self.fitter = fitter

    @property
    def name(self) -> str:  # type: ignore[override]  # read-only here, a class attribute on Fitter
        return f"astropy-{type(self.fitter).__name__}"

    def describe(self) -> str:
        return f"astropy.modeling.fitting.{type(self.fitter).__name__} (per fit)"

    @property
    def fit_info_names(self) -> tuple[str, ...] | None:  # type: ignore[override]  # as name
        """The entries of this astropy fitter's ``fit_info``, or None if not known."""
        from astropy.modeling import fitting

        cls = type(self.fitter)
        if getattr(fitting, cls.__name__, None) is not cls:
            return None  # a subclass or a fitter from elsewhere: its entries are unknown
        return ASTROPY_FIT_INFO_NAMES.get(cls.__name__)

    def check(self, model: Any, fitter_kwargs: dict[str, Any] | None = None) -> None:
        """Reject, before dispatch, what the astropy fitter would reject in every fit.

        ``fitter_kwargs``: unknown keys, keys parfit sets itself and bad
        values of ``maxiter``, ``acc``, ``epsilon``, ``estimate_jacobian``
        and ``filter_non_finite``.  ``model``: a starting value that is not
        finite, a NaN bound or a lower bound above the upper one; and, with a
        fitter that hands the bounds to scipy (``TRFLSQFitter`` and
        ``DogBoxLSQFitter``), equal bounds or a starting value outside them
        on a free parameter.  The messages are those of parfit's parameters.
        """
        self._check_kwargs(dict(fitter_kwargs or {}))
        self._check_model(model)

    def _check_kwargs(self, fitter_kwargs: dict[str, Any]) -> None:
        reserved = sorted(set(fitter_kwargs) & set(_RESERVED))
        if reserved:
            raise InputError(
                f"fitter_kwargs has key(s) {', '.join(map(repr, reserved))} that parfit sets "
                f"for every fit (the model, its coordinates, data and weights, and inplace); "
                f"remove them, and pass weights= or mask= to parallel_fit for weights"
            )
        try:
            params = inspect.signature(self.fitter.__call__).parameters
        except (TypeError, ValueError):  # pragma: no cover - builtins
            params = None
        if params is not None and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            valid = [
                n
                for n, p in params.items()
                if n not in _RESERVED and p.kind is not p.VAR_POSITIONAL
            ]
            refuse_unknown_kwargs(fitter_kwargs, valid, self.name)
        for key, value in fitter_kwargs.items():
            if key in _KWARG_CHECKS:
                _KWARG_CHECKS[key](value)

    def _check_model(self, model: Any) -> None:
        fitter_name = type(self.fitter).__name__
        free = astropy_free_mask(model)
        scipy_bounds = self._scipy_enforces_bounds()
        for name, is_free in zip(model.param_names, free):
            value = np.asarray(getattr(model, name).value, dtype=np.float64)
            scalar = value.ndim == 0
            if scalar and not np.isfinite(value):
                raise ParameterError(
                    f"Parameter {name!r}: starting value {float(value)!r} is not finite; "
                    f"give a finite number (per-pixel maps may contain NaN)"
                )
            lower, upper = model.bounds[name]
            for which, bound in (("lower", lower), ("upper", upper)):
                if bound is not None and np.isnan(float(bound)):
                    raise ParameterError(
                        f"Parameter {name!r}: {which} bound is NaN; use None for unbounded"
                    )
            lo = -np.inf if lower is None else float(lower)
            hi = np.inf if upper is None else float(upper)
            if lo > hi:
                raise ParameterError(
                    f"Parameter {name!r}: lower bound {lo!r} must be below upper bound {hi!r}"
                )
            if not (scipy_bounds and is_free):
                continue
            if lo == hi:
                raise ParameterError(
                    f"Parameter {name!r}: lower bound {lo!r} must be below upper bound {hi!r} "
                    f"({fitter_name} needs lower < upper for a free parameter; to hold it "
                    f"at {lo!r}, set model.{name}.fixed = True)"
                )
            if scalar and not lo <= float(value) <= hi:
                raise ParameterError(
                    f"Parameter {name!r}: starting value {float(value)!r} is outside its bounds "
                    f"[{lo!r}, {hi!r}]; give a starting value inside the bounds or change "
                    f"model.{name}.bounds ({fitter_name} refuses a start outside them)"
                )

    def _scipy_enforces_bounds(self) -> bool:
        """True when the fitter hands the bounds to scipy (which refuses starts outside them)."""
        from astropy.modeling import fitting

        bounded = tuple(
            getattr(fitting, n) for n in ("TRFLSQFitter", "DogBoxLSQFitter") if hasattr(fitting, n)
        )
        return isinstance(self.fitter, bounded) and not getattr(
            self.fitter, "_use_min_max_bounds", False
        )

    def parameter_arrays(self, model: Any) -> list[tuple[str, Any, Any, Any]]:
        out = []
        for name in model.param_names:
            lower, upper = model.bounds[name]
            value = np.asarray(getattr(model, name).value, dtype=np.float64)
            out.append(
                (
                    name,
                    value.item() if value.ndim == 0 else value,
                    -np.inf if lower is None else float(lower),
                    np.inf if upper is None else float(upper),
                )
            )
        return out

    def model_with_values(self, model: Any, values: Any) -> Any:
        out = model.copy()
        out._reset_parameters(**{n: float(v) for n, v in zip(model.param_names, values)})
        return out

    def fit_block(
        self,
        model: Any,
        block: FitBlock,
        *,
        fit_info: FitInfoArg = False,
        fitter_kwargs: dict[str, Any] | None = None,
        statistic: str = "chi2",
    ) -> BlockResult:
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
        todo = screen_block(
            block, free, result, names=names, check_bounds=self._scipy_enforces_bounds()
        )
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
            run_guarded(
                result,
                i,
                self._fit_one,
                fitter,
                model_i,
                x,
                y,
                w,
                kwargs,
                free,
                i,
                result,
                infos,
                fit_info,
                block,
                ours,
            )
        result.fit_info = infos
        return result

    @staticmethod
    def _fit_one(
        fitter: Any,
        model_i: Any,
        x: tuple[np.ndarray, ...],
        y: np.ndarray,
        w: np.ndarray | None,
        kwargs: dict[str, Any],
        free: np.ndarray,
        i: Row,
        result: BlockResult,
        infos: list[Any] | None,
        fit_info: FitInfoArg,
        block: FitBlock,
        ours: Any,
    ) -> None:
        fitted = fitter(model_i, *x, y, inplace=True, **kwargs)
        params = np.array(
            [np.asarray(getattr(fitted, n).value, dtype=float).item() for n in fitted.param_names]
        )
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
            errors = quality.errors_from_normal(
                None,
                params[None],
                free,
                False,
                normal[None],
                np.array([chi2]),
                np.array([np.size(y)]),
                True,
            )
        row = np.array([i])
        flags = quality.quality_flags(ours, block, row, params[None], errors, free)
        quality.store_converged(
            result, row, params[None], np.array([chi2]), errors, flags, fitted.param_names
        )


def _parfit_twin(model: Any) -> Any:
    """parfit's version of an astropy model (for the collapse test), or None."""
    from ..models.astropy_bridge import from_astropy

    try:
        twin = from_astropy(model)
    except Exception:  # a model parfit has no twin of: no collapse test
        return None
    return twin if tuple(twin.param_names) == tuple(model.param_names) else None


def _numerical_normal(
    fitted: Any,
    x: tuple[np.ndarray, ...],
    w: np.ndarray | None,
    params: np.ndarray,
    free: np.ndarray,
) -> np.ndarray:
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


def _info_get(info: Any, key: str) -> Any:
    if info is None:
        return None
    if isinstance(info, dict):
        return info.get(key)
    return getattr(info, key, None)


def _select_fit_info(info: Any, fit_info: FitInfoArg) -> Any:
    if fit_info is True:
        return copy.deepcopy(info)
    names = cast("Sequence[str]", fit_info)  # fit_info=False never gets here
    return {key: copy.deepcopy(_info_get(info, key)) for key in names}
