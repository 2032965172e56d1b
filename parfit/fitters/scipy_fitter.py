"""Per-fit fitter on :func:`scipy.optimize.least_squares`.

The reference path: every fit of a block is solved on its own by scipy
(trust-region reflective, dogbox or MINPACK Levenberg-Marquardt), using the
model's analytic Jacobian.  It is the oracle the batched solver is tested
against and the fitter to choose when a problem needs scipy's robust losses.
"""

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from ..status import Status
from . import quality
from . import statistics as stats
from .base import BlockResult, FitBlock, Fitter, Row, run_guarded, screen_block
from .options import (
    EPS,
    TOLERANCES,
    FitInfoArg,
    check_bool,
    check_max_nfev,
    check_positive,
    check_tolerances,
    is_integer,
    is_real,
    refuse_unknown_kwargs,
)

__all__ = ["ScipyFitter"]

_METHODS = ("trf", "dogbox", "lm")

#: The options of scipy.optimize.least_squares that parfit passes on.
OPTIONS = (
    "ftol",
    "xtol",
    "gtol",
    "max_nfev",
    "x_scale",
    "loss",
    "f_scale",
    "tr_solver",
    "tr_options",
    "verbose",
)

#: Options of least_squares that act only when scipy differentiates numerically; parfit
#: always passes the model's Jacobian, so they would be silently ignored: refused.
_NO_EFFECT = ("diff_step", "jac_sparsity", "workers")

_LOSSES = ("linear", "huber", "soft_l1", "cauchy", "arctan")

#: The attributes of the OptimizeResult of least_squares (the names ``fit_info`` may ask for).
FIT_INFO_NAMES = (
    "x",
    "cost",
    "fun",
    "jac",
    "grad",
    "optimality",
    "active_mask",
    "nfev",
    "njev",
    "status",
    "message",
    "success",
)

#: What ``fit_info=True`` keeps of each fit's OptimizeResult.
_FIT_INFO_DEFAULT = ("status", "message", "nfev", "cost", "optimality")


def _lsmr_options() -> tuple[str, ...]:
    """The options of :func:`scipy.sparse.linalg.lsmr` (``tr_options`` with ``tr_solver="lsmr"``).

    Imported when first asked: ``import parfit`` does not load scipy's
    optimisers, which only the per-fit fitters need.
    """
    from scipy.sparse.linalg import lsmr

    return tuple(n for n in inspect.signature(lsmr).parameters if n not in ("A", "b"))


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
        Any other option of :func:`scipy.optimize.least_squares` in
        :data:`OPTIONS`: ``loss``, ``f_scale``, ``tr_solver``, ``tr_options``
        and ``verbose``.  All of them (and ``fitter_kwargs``) are checked
        before any fit is dispatched, by :func:`check_options`, with scipy's
        rules and the batched fitter's wording; numpy scalars are accepted.
        ``diff_step``, ``jac_sparsity`` and ``workers`` are refused: they act
        only on numerical derivatives, which scipy never takes here.

    Notes
    -----
    With ``fit_info=True`` each fit's ``fit_info`` holds ``status``,
    ``message``, ``nfev``, ``cost`` and ``optimality`` of scipy's
    ``OptimizeResult``; a list of names may ask for any of
    :data:`FIT_INFO_NAMES`.

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

    fit_info_names = FIT_INFO_NAMES

    def __init__(
        self,
        method: str = "trf",
        *,
        ftol: float = 1e-8,
        xtol: float = 1e-8,
        gtol: float = 1e-8,
        max_nfev: int | None = None,
        x_scale: Any = 1.0,
        scale_covariance: bool = True,
        **options: Any,
    ) -> None:
        if not isinstance(method, str) or method not in _METHODS:
            raise InputError(
                f"fitter method must be one of {', '.join(map(repr, _METHODS))}; got {method!r}"
            )
        unknown = sorted(set(options) - set(OPTIONS) - set(_NO_EFFECT))
        if unknown:
            raise InputError(
                f"ScipyFitter got unknown option(s) {', '.join(map(repr, unknown))}; valid "
                f"options are {', '.join(map(repr, OPTIONS))} (those of "
                f"scipy.optimize.least_squares that parfit passes on)"
            )
        self.method = method
        self.options = check_options(
            dict(ftol=ftol, xtol=xtol, gtol=gtol, max_nfev=max_nfev, x_scale=x_scale, **options),
            "ScipyFitter",
            method,
        )
        self.scale_covariance = check_bool(scale_covariance, "ScipyFitter", "scale_covariance")

    @property
    def name(self) -> str:  # type: ignore[override]  # read-only here, a class attribute on Fitter
        return f"scipy-{self.method}"

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if v is not None)
        extra = "" if self.scale_covariance else ", scale_covariance=False"
        return f"scipy.optimize.least_squares(method={self.method!r}, {opts}{extra})"

    def check(self, model: Any, fitter_kwargs: dict[str, Any] | None = None) -> None:
        """Reject, before dispatch, what scipy would reject (or silently ignore) in every fit.

        Every option, those of the fitter and those of ``fitter_kwargs``, is
        checked as :func:`check_options` does; ``x_scale`` must also give one
        value per free parameter of ``model``.
        """
        options = self._options(fitter_kwargs)
        x_scale = options.get("x_scale")
        if isinstance(x_scale, tuple):
            free = np.asarray(model.free_mask, dtype=bool)
            if len(x_scale) != int(free.sum()):
                names = [n for n, f in zip(model.param_names, free) if f]
                what = "fitter_kwargs" if fitter_kwargs else "ScipyFitter"
                raise InputError(
                    f"{what}: x_scale has {len(x_scale)} values but the model has "
                    f"{len(names)} free parameters ({', '.join(names)}); give one value per "
                    f"free parameter, one number or 'jac'"
                )

    @property
    def statistics(self) -> tuple[str, ...]:  # type: ignore[override]  # by method here
        # MINPACK cannot step back from a trial point where the likelihood is undefined.
        return ("chi2",) if self.method == "lm" else ("chi2", "cash", "cstat")

    def _options(self, fitter_kwargs: dict[str, Any] | None) -> dict[str, Any]:
        """The options of this fitter updated by ``fitter_kwargs``, checked."""
        if not fitter_kwargs:
            return self.options
        refuse_unknown_kwargs(set(fitter_kwargs) - set(_NO_EFFECT), OPTIONS, self.name)
        merged = dict(self.options)
        merged.update(fitter_kwargs)
        return check_options(merged, "fitter_kwargs", self.method)

    def fit_block(
        self,
        model: Any,
        block: FitBlock,
        *,
        fit_info: FitInfoArg = False,
        fitter_kwargs: dict[str, Any] | None = None,
        statistic: str = "chi2",
    ) -> BlockResult:
        options = dict(self._options(fitter_kwargs))
        for key in TOLERANCES:  # scipy's way to switch a test off without a warning
            if options[key] < EPS:
                options[key] = None
        n_params = len(model.param_names)
        result = BlockResult.empty(block.n_fits, n_params)
        free = np.asarray(model.free_mask, dtype=bool)
        has_ties = any(getattr(model, n).tied for n in model.param_names)
        infos = [None] * block.n_fits if fit_info else None
        names = _FIT_INFO_DEFAULT if fit_info is True else fit_info
        for i in screen_block(block, free, result, names=model.param_names):
            run_guarded(
                result,
                i,
                self._fit_one,
                model,
                block,
                i,
                free,
                has_ties,
                options,
                result,
                infos,
                names,
                statistic,
            )
        result.fit_info = infos
        return result

    def _fit_one(
        self,
        model: Any,
        block: FitBlock,
        i: Row,
        free: np.ndarray,
        has_ties: bool,
        options: dict[str, Any],
        result: BlockResult,
        infos: list[Any] | None,
        names: Sequence[str],
        statistic: str = "chi2",
    ) -> None:
        poisson = stats.is_likelihood(statistic)
        sel = block.valid[i]
        subset = None if sel.all() else sel
        xs = tuple(xk[None, :] for xk in block.fit_x(i, subset))
        y = block.y[i] if subset is None else block.y[i, subset]
        w = None
        if block.weights is not None and not poisson:
            w = block.weights[i] if subset is None else block.weights[i, subset]
        p_start = block.p0[i].copy()
        lower = block.lower[i, free]
        upper = block.upper[i, free]
        clip = self.method == "lm" and (np.isfinite(lower).any() or np.isfinite(upper).any())

        def full(pf: np.ndarray) -> np.ndarray:
            p = p_start.copy()
            p[free] = np.clip(pf, lower, upper) if clip else pf
            p = p[None, :]
            return model.apply_ties(p) if has_ties else p

        def fun(pf: np.ndarray) -> np.ndarray:
            mu = model.evaluate(*xs, full(pf))[0]
            if poisson:  # deviance residuals: their sum of squares is the C-stat
                return stats.deviance_residuals(y, mu)[0]
            return (mu - y) * w if w is not None else mu - y

        def model_jac(pf: np.ndarray) -> np.ndarray:
            p = full(pf)
            j = model.jacobian(*xs, p)[0]
            return j @ model.tie_jacobian(p)[0] if has_ties else j[:, free]

        def jac(pf: np.ndarray) -> np.ndarray:
            j = model_jac(pf)
            if poisson:
                slope = stats.deviance_residuals(y, model.evaluate(*xs, full(pf))[0])[1]
                return j * slope[:, None]
            return j * w[:, None] if w is not None else j

        x0 = p_start[free]
        r0 = fun(x0)
        if not np.all(np.isfinite(r0)):
            what = "not finite"
            if poisson:
                what = "not finite, is negative, or is zero where there are counts"
            result.fail(i, Status.NONFINITE, f"the model is {what} at the starting values")
            return
        bounds = (lower, upper) if self.method != "lm" else (-np.inf, np.inf)
        from scipy.optimize import least_squares

        sol = least_squares(fun, x0, jac=jac, bounds=bounds, method=self.method, **options)
        result.nfev[i] = sol.nfev
        if infos is not None:
            infos[i] = {k: _plain(sol.get(k)) for k in names}
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
        row = np.array([i])
        if poisson:  # the inverse Fisher information, unscaled
            mu = model.evaluate(*xs, params[None])[0]
            normal = stats.fisher_information(
                model_jac(sol.x)[None], mu[None], np.ones((1, len(y)), dtype=bool)
            )
            if statistic == "cash":
                chi2 += float(stats.data_term(y[None], np.ones((1, len(y)), dtype=bool))[0])
        else:
            j = jac(sol.x)
            normal = (j.T @ j)[None]
        errors = quality.errors_from_normal(
            model,
            params[None],
            free,
            has_ties,
            normal,
            np.array([chi2]),
            np.array([len(y)]),
            self.scale_covariance and not poisson,
        )
        flags = quality.quality_flags(model, block, row, params[None], errors, free)
        quality.store_converged(
            result, row, params[None], np.array([chi2]), errors, flags, model.param_names
        )


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds; anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value


def check_options(values: dict[str, Any], what: str, method: str) -> dict[str, Any]:
    """Check options of :func:`scipy.optimize.least_squares` for ``method``; return them normalised.

    ``values`` holds the tolerances and ``max_nfev`` and any of
    :data:`OPTIONS`; the checks are scipy's own (made once, before dispatch,
    instead of failing every fit) with the batched fitter's wording, and
    numpy scalars are accepted wherever numbers are.  ``diff_step``,
    ``jac_sparsity`` and ``workers`` act only on numerical derivatives, which
    scipy never takes here (parfit passes the model's Jacobian): they are
    refused rather than ignored.

    Examples
    --------
    >>> import numpy as np
    >>> check_options(dict(ftol=np.float32(0.5), xtol=0, gtol=0, max_nfev=np.int64(50)),
    ...               "ScipyFitter", "trf")
    {'ftol': 0.5, 'xtol': 0.0, 'gtol': 0.0, 'max_nfev': 50}
    >>> check_options(dict(ftol=1e-8, xtol=1e-8, gtol=1e-8, max_nfev=None, loss="soft_l1"),
    ...               "fitter_kwargs", "lm")
    Traceback (most recent call last):
    ...
    parfit.errors.InputError: fitter_kwargs: method 'lm' supports only loss='linear'; got
    loss='soft_l1'; use fitter='trf' for a robust loss
    """
    out = dict(values)
    for key in _NO_EFFECT:
        if out.get(key, None) is not None:
            raise InputError(
                f"{what}: {key} has no effect: parfit passes scipy the model's Jacobian, so "
                f"scipy never differentiates numerically; remove {key}"
            )
        out.pop(key, None)
    out.update(check_tolerances(out, what))
    if method == "lm":
        for key in TOLERANCES:
            if out[key] < EPS:
                raise InputError(
                    f"{what}: method 'lm' needs ftol, xtol and gtol each at least machine "
                    f"epsilon ({EPS:.1e}); got {key}={values[key]!r}"
                )
    out["max_nfev"] = check_max_nfev(out["max_nfev"], what)
    if "x_scale" in out:
        out["x_scale"] = _check_x_scale(out["x_scale"], what)
    if "loss" in out:
        loss = out["loss"]
        if not (callable(loss) or (isinstance(loss, str) and loss in _LOSSES)):
            raise InputError(
                f"{what}: loss must be one of {', '.join(map(repr, _LOSSES))} or a callable; "
                f"got {loss!r}"
            )
        if method == "lm" and not (isinstance(loss, str) and loss == "linear"):
            raise InputError(
                f"{what}: method 'lm' supports only loss='linear'; got loss={loss!r}; use "
                f"fitter='trf' for a robust loss"
            )
    if "f_scale" in out:
        out["f_scale"] = check_positive(out["f_scale"], what, "f_scale")
    if "verbose" in out:
        v = out["verbose"]
        if not is_integer(v) or v not in (0, 1, 2):
            raise InputError(f"{what}: verbose must be 0, 1 or 2; got {v!r}")
        out["verbose"] = int(v)
    _check_trust_region(out, what, method)
    return out


def _check_x_scale(value: Any, what: str) -> str | float | tuple[float, ...]:
    """'jac', a positive number (a float) or positive numbers (a tuple of floats)."""
    if isinstance(value, str) and value == "jac":
        return value
    if is_real(value) and 0 < value < np.inf:
        return float(value)
    if isinstance(value, (list, tuple, np.ndarray)) and not isinstance(value, str):
        arr = np.asarray(value)
        if (
            arr.ndim == 1
            and arr.size
            and arr.dtype.kind in "iuf"
            and np.all(np.isfinite(arr))
            and np.all(arr > 0)
        ):
            return tuple(float(v) for v in arr)
    raise InputError(
        f"{what}: x_scale must be 'jac', a positive number or a list of positive numbers "
        f"(one per free parameter); got {value!r}"
    )


def _check_trust_region(out: dict[str, Any], what: str, method: str) -> None:
    """``tr_solver`` and ``tr_options``: known values, and only where scipy uses them."""
    solver = out.get("tr_solver")
    tr_options = out.get("tr_options")
    if solver is not None and not (isinstance(solver, str) and solver in ("exact", "lsmr")):
        raise InputError(f"{what}: tr_solver must be None, 'exact' or 'lsmr'; got {solver!r}")
    if tr_options is not None and not isinstance(tr_options, dict):
        raise InputError(
            f"{what}: tr_options must be a dict or None; got {type(tr_options).__name__}"
        )
    if method == "lm" and (solver is not None or tr_options):
        raise InputError(
            f"{what}: tr_solver and tr_options have no effect with method 'lm' (MINPACK "
            f"solves its own subproblem); remove them"
        )
    if tr_options and solver != "lsmr":
        raise InputError(
            f"{what}: tr_options are used only with tr_solver='lsmr'; got tr_solver={solver!r}"
        )
    if tr_options:
        valid = _lsmr_options() + (("regularize",) if method == "trf" else ())
        unknown = sorted(set(tr_options) - set(valid), key=str)
        if unknown:
            raise InputError(
                f"{what}: tr_options has unknown key(s) {', '.join(map(repr, unknown))} for "
                f"method {method!r}; valid keys are {', '.join(map(repr, valid))}"
            )
