"""parfit's default fitter: every fit of a block solved at once.

:class:`BatchedFitter` hands a whole block to the batched trust-region
reflective solver of :mod:`parfit.fitters.trf` (models evaluated with numpy
for all active fits at once), or, for models built only from compiled
built-in components, to the fused compiled path of
:mod:`parfit.fitters._compiled`.  Both take scipy's TRF steps with the same
compiled step functions and give the same answers.  Converged fits get
their errors, quality flags and verdict from :mod:`parfit.fitters.quality`;
weak ones are solved again from the model's guess.
"""

import copy
import dataclasses
from typing import Any

import numpy as np

from ..errors import InputError
from ..status import Flag, Status
from . import lm, quality, warmup
from . import statistics as stats
from ._capture import capture_warnings
from .base import BlockResult, FitBlock, Fitter, run_guarded, screen_block, select_fit_info
from .options import (
    FitInfoArg,
    check_bool,
    check_max_nfev,
    check_positive,
    check_tolerances,
    refuse_unknown_kwargs,
)

__all__ = ["BatchedFitter"]

_OPTIONS = ("ftol", "xtol", "gtol", "max_nfev", "factor")

#: The entries of each fit's ``fit_info`` (all of them with ``fit_info=True``).
FIT_INFO_NAMES = ("message", "nfev", "n_iter", "chi2", "converged", "flags")


#: The engines of :class:`BatchedFitter`: ``"auto"`` picks the compiled one
#: where the model allows.
ENGINES = ("auto", "numpy", "compiled")


class BatchedFitter(Fitter):
    """Fit all pixels of a block together with a batched trust-region reflective solver.

    The default fitter of :func:`parfit.parallel_fit` (``fitter=None``): the
    steps of ``scipy.optimize.least_squares(method="trf")`` from the same
    start, for every fit of a block at once.  Fits that end singular,
    collapsed, on a bound, unconverged or with a peak below three times its
    error are solved again from the model's guess and the better solution is
    kept.  The algorithm, its convergence tests, the flags and the retry are
    described in :mod:`parfit.fitters.trf` and on the "Solver" docs page.

    Parameters
    ----------
    ftol, xtol, gtol : float
        Convergence tolerances, scipy's: the relative reduction of
        chi-square, the step relative to the parameters, and the scaled
        gradient (here in units of the data's mean square).
    max_nfev : int or None
        Most model evaluations per fit; None means ``100 * (n_free + 1)``.
        A fit that reaches it gets status ``NOT_CONVERGED``.
    factor : float
        Initial trust radius, as a multiple of the norm of the scaled start
        (scipy's choice is 1).  Smaller values keep the first steps closer to
        the start.
    scale_covariance : bool
        Scale the covariance by the reduced chi-square (the default, as
        astropy, lmfit and ``curve_fit`` do).  Set to False when the weights
        are true ``1/sigma``.
    engine : {"auto", "numpy", "compiled"}
        ``"auto"`` uses the fused compiled path when the model is made of
        built-in components joined with ``+`` and has no tied parameters,
        and numba is installed; otherwise the model is evaluated with numpy.
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

    name = "batched-trf"
    fit_info_names = FIT_INFO_NAMES
    statistics = ("chi2", "cash", "cstat")

    def __init__(
        self,
        *,
        ftol: float = 1e-8,
        xtol: float = 1e-8,
        gtol: float = 1e-8,
        max_nfev: int | None = None,
        factor: float = 1.0,
        scale_covariance: bool = True,
        engine: str = "auto",
    ) -> None:
        self.options = _make_options(
            dict(ftol=ftol, xtol=xtol, gtol=gtol, max_nfev=max_nfev, factor=factor), "BatchedFitter"
        )
        if not isinstance(engine, str) or engine not in ENGINES:
            raise InputError(f"engine must be 'auto', 'numpy' or 'compiled'; got {engine!r}")
        if engine == "compiled":
            warmup.wait()  # never import numba while the warm-up does
            from . import _compiled

            if not _compiled.AVAILABLE:
                raise InputError(
                    "engine='compiled' needs numba, which is not installed; "
                    "use engine='auto' or 'numpy'"
                )
        self.engine = engine
        self.scale_covariance = check_bool(scale_covariance, "BatchedFitter", "scale_covariance")

    def describe(self) -> str:
        opts = ", ".join(
            f"{k}={getattr(self.options, k)!r}"
            for k in _OPTIONS
            if getattr(self.options, k) is not None
        )
        # scale_covariance changes the errors, so it belongs to the description (and
        # so to the options fingerprint a resume checks); shown only when not default.
        extra = "" if self.scale_covariance else ", scale_covariance=False"
        return f"batched trust-region reflective ({opts}, engine={self.engine!r}{extra})"

    def check(self, model: Any, fitter_kwargs: dict[str, Any] | None = None) -> None:
        """Reject unknown ``fitter_kwargs`` and models the engine cannot run."""
        self._options(fitter_kwargs)  # raises on unknown or invalid options
        if self.engine == "compiled":
            warmup.wait()  # never import numba while the warm-up does
            from . import _compiled

            reason = _compiled.unsupported_reason(model)
            if reason:
                raise InputError(f"engine='compiled' cannot fit this model: {reason}")

    def _options(self, fitter_kwargs: dict[str, Any] | None) -> lm.LMOptions:
        if not fitter_kwargs:
            return self.options
        merged = {k: getattr(self.options, k) for k in _OPTIONS}
        refuse_unknown_kwargs(fitter_kwargs, _OPTIONS, self.name)
        merged.update(fitter_kwargs)
        return _make_options(merged, "fitter_kwargs")

    def fit_block(
        self,
        model: Any,
        block: FitBlock,
        *,
        fit_info: FitInfoArg = False,
        fitter_kwargs: dict[str, Any] | None = None,
        statistic: str = "chi2",
    ) -> BlockResult:
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
                    self._solve(model, block, todo, free, options, result, infos, statistic)
                    failed = False
                except KeyboardInterrupt:
                    raise
                except BaseException:  # a user model may raise anything
                    failed = True
            if failed or records:
                for i in todo:
                    run_guarded(
                        result,
                        i,
                        self._solve,
                        model,
                        block,
                        np.array([i]),
                        free,
                        options,
                        result,
                        infos,
                        statistic,
                    )
        result.fit_info = select_fit_info(infos, fit_info)
        return result

    def _solve(
        self,
        model: Any,
        block: FitBlock,
        todo: np.ndarray,
        free: np.ndarray,
        options: lm.LMOptions,
        result: BlockResult,
        infos: list[Any] | None,
        statistic: str = "chi2",
    ) -> None:
        """Fit rows ``todo`` of ``block`` and store them in ``result``.

        Fits that end singular, collapsed, on a bound or without converging
        are solved again from a second start, the model's guess from their
        data, and the better of the two solutions is kept (flag ``RETRIED``).
        For counts, fits whose likelihood is undefined at their start start
        again from least squares (:meth:`_attempt_defined`).
        """
        # Floating-point trouble (overflow in a far-off trial step, a singular
        # covariance) is handled through the results, not reported as warnings.
        with np.errstate(all="ignore"):
            problem = _ModelProblem(model, block, todo, free, statistic)
            first = self._attempt_defined(model, block, todo, problem, options)
            retry = self._retry_rows(model, first)
            start = _second_start(model, block, todo[retry]) if len(retry) else None
            if start is not None:
                second = self._attempt_defined(
                    model, block, todo[retry], problem.select(retry, start), options
                )
                better = second.converged & (
                    ~first.converged[retry] | (second.chi2 <= first.chi2[retry])
                )
                first.take(retry[better], second, np.flatnonzero(better))
                first.flags[retry] |= np.uint8(Flag.RETRIED)
            first.chi2 += problem.offset  # the minimised C-stat as Cash, for "cash"
        self._store(model, block, todo, free, first, options, result, infos, statistic)

    def _retry_rows(self, model: Any, attempt: "_Attempt") -> np.ndarray:
        """Rows of ``attempt`` worth a second start (none if the model cannot guess).

        Those that ended singular, collapsed, on a bound or at ``max_nfev``,
        and those with a fitted peak below three times its error: from a
        shared start a fit can settle on a noise bump beside the line.
        """
        if not model.can_guess:
            return np.zeros(0, dtype=np.intp)
        weak = (attempt.flags & (Flag.SINGULAR | Flag.DEGENERATE | Flag.AT_BOUND)) != 0
        peaks = [i for i in model.peak_amplitude_indices() if model.free_mask[i]]
        if peaks:
            with np.errstate(invalid="ignore"):
                faint = np.abs(attempt.params[:, peaks]) < 3.0 * attempt.errors[:, peaks]
            weak |= np.any(faint, axis=1)
        return np.flatnonzero((attempt.converged & weak) | (attempt.reason == lm.MAXFEV))

    def _attempt_defined(
        self,
        model: Any,
        block: FitBlock,
        rows: np.ndarray,
        problem: "_ModelProblem",
        options: lm.LMOptions,
    ) -> "_Attempt":
        """:meth:`_attempt`; for counts, fits whose likelihood is undefined at the start again.

        Where the model is zero under counts or negative at the start (a
        guessed baseline of zero, a line's tail that underflows), the Poisson
        likelihood is infinite and there is no step to step back to: such
        fits are first solved by least squares from the same start, then by
        the likelihood from there.
        """
        attempt = self._attempt(model, block, rows, problem, options)
        if not problem.poisson:
            return attempt
        undefined = np.flatnonzero(attempt.reason == lm.BAD_START)
        if len(undefined):
            self._lift_start(model, block, rows, problem, options, attempt, undefined)
        return attempt

    def _lift_start(
        self,
        model: Any,
        block: FitBlock,
        rows: np.ndarray,
        problem: "_ModelProblem",
        options: lm.LMOptions,
        attempt: "_Attempt",
        undefined: np.ndarray,
    ) -> None:
        """Fits whose likelihood is undefined at the start: from least squares instead.

        Where the least-squares solution is no valid start either (a line
        fitted as a dip below zero in empty channels), its peaks are taken
        out (their amplitudes set to zero), leaving the baseline it found.
        """
        squares = _ModelProblem(model, block, rows[undefined], problem.free, "chi2")
        squares.template = problem.template[undefined]
        lifted = self._attempt(model, block, rows[undefined], squares, options)
        attempt.nfev[undefined] += lifted.nfev
        attempt.n_iter[undefined] += lifted.n_iter
        # Where least squares ran out of evaluations, its last point may still do.
        starts = np.where(np.isfinite(lifted.params), lifted.params, problem.template[undefined])
        peaks = [k for k in model.peak_amplitude_indices() if problem.free[k]]
        while len(undefined):
            again = self._attempt(
                model, block, rows[undefined], problem.select(undefined, starts), options
            )
            attempt.take(undefined, again, np.arange(len(undefined)))  # evaluations add up
            still = again.reason == lm.BAD_START
            if not peaks or not still.any() or not np.any(starts[still][:, peaks]):
                return
            undefined, starts = undefined[still], starts[still].copy()
            starts[:, peaks] = 0.0

    def _attempt(
        self,
        model: Any,
        block: FitBlock,
        rows: np.ndarray,
        problem: "_ModelProblem",
        options: lm.LMOptions,
    ) -> "_Attempt":
        """Solve ``rows`` of ``block`` (``problem``, from its template); errors and flags too."""
        free = problem.free
        p0 = problem.template[:, free]
        lower, upper = block.lower[rows][:, free], block.upper[rows][:, free]
        outcome = None
        if self.engine != "numpy":
            warmup.wait()  # never import numba while the warm-up does
            from . import _compiled

            outcome = _compiled.solve(
                model, problem, p0, lower, upper, options, required=self.engine == "compiled"
            )
        if outcome is None:
            warmup.wait()  # never import numba while the warm-up does
            from . import trf

            outcome = trf.trust_region_reflective(
                problem,
                p0,
                lower,
                upper,
                options,
                rms=problem.rms,
                x_scale=problem.x_scale,
                n_valid=problem.n_valid,
            )
        params = problem.full_parameters(np.arange(len(rows)), outcome.params)
        converged = (
            outcome.converged & np.all(np.isfinite(params), axis=1) & np.isfinite(outcome.chi2)
        )
        errors = np.full(params.shape, np.nan)
        # Both solvers set scale and chi2_scaled (LMOutcome has them optional); for mypy.
        assert outcome.scale is not None and outcome.chi2_scaled is not None
        edge = None
        if problem.poisson:  # the inverse Fisher information: no scaling
            done = np.flatnonzero(converged)
            fisher, edge = problem.fisher_and_edge(done, outcome.params[converged])
            errors[converged] = quality.errors_from_normal(
                model,
                params[converged],
                free,
                problem.has_ties,
                fisher,
                outcome.chi2[converged],
                problem.n_valid[converged],
                False,
            )
        else:
            errors[converged] = quality.errors_from_normal(
                model,
                params[converged],
                free,
                problem.has_ties,
                outcome.normal[converged],
                outcome.chi2_scaled[converged],
                problem.n_valid[converged],
                self.scale_covariance,
                outcome.scale[converged],
            )
        flags = np.zeros(len(rows), dtype=np.uint8)
        flags[converged] = quality.quality_flags(
            model,
            block,
            rows[converged],
            params[converged],
            errors[converged],
            free,
            extent=tuple(e[converged] for e in problem.extent),
        )
        if edge is not None:
            flags[np.flatnonzero(converged)[edge]] |= np.uint8(Flag.AT_BOUND)
        return _Attempt(
            params=params,
            errors=errors,
            chi2=outcome.chi2,
            flags=flags,
            converged=converged,
            reason=outcome.reason.astype(np.int8),
            nfev=outcome.nfev.copy(),
            n_iter=outcome.n_iter.copy(),
        )

    def _store(
        self,
        model: Any,
        block: FitBlock,
        todo: np.ndarray,
        free: np.ndarray,
        attempt: "_Attempt",
        options: lm.LMOptions,
        result: BlockResult,
        infos: list[Any] | None,
        statistic: str = "chi2",
    ) -> None:
        ok = attempt.converged
        result.nfev[todo] = attempt.nfev
        quality.store_converged(
            result,
            todo[ok],
            attempt.params[ok],
            attempt.chi2[ok],
            attempt.errors[ok],
            attempt.flags[ok],
            model.param_names,
        )
        assert result.flags is not None  # BlockResult.empty sets them; for mypy
        result.flags[todo] = attempt.flags
        limit = options.nfev_limit(int(free.sum()))
        for j in np.flatnonzero(~ok):
            i = todo[j]
            reason = int(attempt.reason[j])
            if reason == lm.BAD_START:
                result.fail(i, Status.NONFINITE, _bad_start_text(statistic))
            elif reason == lm.MAXFEV:
                result.fail(
                    i,
                    Status.NOT_CONVERGED,
                    f"batched trust-region reflective: the maximum number of function "
                    f"evaluations ({limit}) was reached",
                )
            else:
                result.fail(i, Status.NONFINITE, "the fit ended on non-finite parameters")
        if infos is not None:
            for n, i in enumerate(todo):
                infos[i] = {
                    "message": lm.REASONS[int(attempt.reason[n])],
                    "nfev": int(attempt.nfev[n]),
                    "n_iter": int(attempt.n_iter[n]),
                    "chi2": float(attempt.chi2[n]),
                    "converged": bool(ok[n]),
                    "flags": int(attempt.flags[n]),
                }


@dataclasses.dataclass
class _Attempt:
    """One solve of some fits: full parameters, errors, flags and how each ended."""

    params: np.ndarray
    errors: np.ndarray
    chi2: np.ndarray
    flags: np.ndarray
    converged: np.ndarray
    reason: np.ndarray
    nfev: np.ndarray
    n_iter: np.ndarray

    def take(self, rows: np.ndarray, other: "_Attempt", other_rows: np.ndarray) -> None:
        """Replace ``rows`` by ``other_rows`` of ``other``; evaluations add up."""
        self.nfev[rows] += other.nfev[other_rows]
        self.n_iter[rows] += other.n_iter[other_rows]
        for name in ("params", "errors", "chi2", "flags", "converged", "reason"):
            getattr(self, name)[rows] = getattr(other, name)[other_rows]


def _bad_start_text(statistic: str) -> str:
    """Why a fit could not start: its model is not finite (or, for counts, not positive)."""
    if stats.is_likelihood(statistic):
        return (
            "the model is not finite, is negative, or is zero where there are counts at the "
            "starting values: the Poisson likelihood is not defined there"
        )
    return "the model is not finite at the starting values"


def _second_start(model: Any, block: FitBlock, rows: np.ndarray) -> np.ndarray | None:
    """The model's guess from the data of ``rows``, inside the bounds; None if it fails."""
    try:
        with capture_warnings():
            start = model.guess(
                *_rows_x(block, rows),
                y=block.y[rows],
                valid=block.valid[rows],
                start=block.p0[rows],
            )
    except Exception:  # a user model's guess may raise anything: no second start then
        return None
    return np.clip(start, block.lower[rows], block.upper[rows])


def _rows_x(block: FitBlock, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """The model inputs of ``rows`` of ``block``, each shared or one row per fit."""
    return tuple(xk if xk.ndim == 1 else xk[rows] for xk in block.x)


class _ModelProblem(lm.Problem):
    """Weighted residuals of a parfit model on rows ``todo`` of a block."""

    def __init__(
        self,
        model: Any,
        block: FitBlock,
        todo: np.ndarray,
        free: np.ndarray,
        statistic: str = "chi2",
    ) -> None:
        self.model = model
        #: Counts: deviance residuals of the Poisson likelihood instead of weighted ones.
        self.poisson = stats.is_likelihood(statistic)
        self.free = free
        self.has_ties = any(getattr(model, n).tied for n in model.param_names)
        self.cheap_jacobian = bool(model.has_analytic_jacobian)
        valid = block.valid[todo]
        self.valid = valid
        self.n_valid = valid.sum(axis=1)
        self.y = np.where(valid, block.y[todo], 0.0)
        w = 1.0 if block.weights is None or self.poisson else block.weights[todo]
        self.w = np.where(valid, w, 0.0)
        #: Added to the minimised statistic to report it: Cash's term of the data alone.
        self.offset = stats.data_term(self.y, valid) if statistic == "cash" else np.zeros(len(todo))
        self.xs = [
            xk[None, :] if xk.ndim == 1 else np.where(valid, xk[todo], 0.0) for xk in block.x
        ]
        self.shared_x = all(xk.shape[0] == 1 for xk in self.xs)
        self.template = block.p0[todo]
        # The solver works in units of each fit's data (see parfit.fitters.trf):
        # residuals in those of the weighted data, amplitudes in those of the data.
        # (trf, and with it numba, is imported by the first fit, not by ``import parfit``.)
        warmup.wait()  # never import numba while the warm-up does
        from . import trf

        self.rms = trf.data_rms(self.y, self.w, valid)
        y_rms = self.rms if block.weights is None else trf.data_rms(self.y, 1.0, valid)
        if self.poisson:  # deviance residuals are of order one whatever the counts
            self.rms = np.ones(len(todo))
        self.x_scale = np.ascontiguousarray(trf.parameter_scales(y_rms, _data_linear(model)[free]))
        self.extent = quality.sample_extent(block, todo)

    def select(self, rows: np.ndarray, template: np.ndarray) -> "_ModelProblem":
        """The same problem on ``rows`` of this one only, starting from ``template``."""
        other = copy.copy(self)
        for name in ("valid", "n_valid", "y", "w", "rms", "x_scale", "offset"):
            setattr(other, name, np.ascontiguousarray(getattr(self, name)[rows]))
        other.xs = list(self._inputs(rows))
        other.extent = tuple(e[rows] for e in self.extent)
        other.template = template
        return other

    def full_parameters(self, rows: np.ndarray, params: np.ndarray) -> np.ndarray:
        full = self.template[rows].copy()
        full[:, self.free] = params
        return self.model.apply_ties(full) if self.has_ties else full

    def _inputs(self, rows: np.ndarray) -> list[np.ndarray]:
        if self.shared_x:
            return self.xs
        return [xk if xk.shape[0] == 1 else xk[rows] for xk in self.xs]

    def residuals(self, rows: np.ndarray, params: np.ndarray) -> np.ndarray:
        value = self.model._value(self._inputs(rows), self.full_parameters(rows, params))
        valid = self.valid[rows]
        if self.poisson:
            r, _ = stats.deviance_residuals(self.y[rows], np.where(valid, value, 0.0))
            return np.where(valid, r, 0.0)
        return np.where(valid, (value - self.y[rows]) * self.w[rows], 0.0)

    def model_and_jacobian(
        self, rows: np.ndarray, params: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The model ``(len(rows), n_samples)`` and its derivatives by the free parameters."""
        full = self.full_parameters(rows, params)
        n_samples = self.y.shape[1]
        jac = np.empty((len(rows), n_samples, full.shape[1]))
        value = self.model._jac_into(self._inputs(rows), full, jac)
        value = np.broadcast_to(value, (len(rows), n_samples))
        if self.has_ties:
            jac = np.matmul(jac, self.model.tie_jacobian(full))
        else:
            jac = jac[:, :, self.free]
        return value, jac

    def residuals_and_jacobian(
        self, rows: np.ndarray, params: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        value, jac = self.model_and_jacobian(rows, params)
        valid = self.valid[rows]
        if self.poisson:
            r, slope = stats.deviance_residuals(self.y[rows], np.where(valid, value, 0.0))
            r = np.where(valid, r, 0.0)
            jac = np.where(valid[:, :, None], jac * slope[:, :, None], 0.0)
            return r, jac
        w = self.w[rows]
        r = np.where(valid, (value - self.y[rows]) * w, 0.0)
        jac = np.where(valid[:, :, None], jac * w[:, :, None], 0.0)
        return r, jac

    def fisher_and_edge(
        self, rows: np.ndarray, params: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Counts, at free ``params``: the Fisher information, and which fits are on the edge.

        The Fisher information is that of :mod:`parfit.fitters.statistics`.
        On the edge: the model is about zero in an empty sample, where the
        likelihood's domain ends (the model cannot go below zero); the optimum
        lies on that edge, which the solver approaches but need not reach
        exactly (flagged ``AT_BOUND``).
        """
        if not len(rows):
            return np.zeros((0, params.shape[1], params.shape[1])), np.zeros(0, dtype=bool)
        value, jac = self.model_and_jacobian(rows, params)
        valid = self.valid[rows]
        empty = valid & (self.y[rows] == 0)
        scale = np.maximum(np.abs(np.where(valid, value, 0.0)).max(axis=1), 1e-300)
        edge = np.any(empty & (value < 1e-6 * scale[:, None]), axis=1)
        return stats.fisher_information(jac, value, valid), edge


def _data_linear(model: Any) -> np.ndarray:
    """Bool per parameter: its unit is the data's (amplitudes, baseline coefficients)."""
    from astropy import units as u

    probe = u.def_unit("parfit_probe")
    try:
        units = model._parameter_units((None,) * model.n_inputs, probe)
    except Exception:  # a user model whose units cannot be worked out: no rescaling
        return np.zeros(len(model.param_names), dtype=bool)
    return np.array([units.get(name) == probe for name in model.param_names], dtype=bool)


def _make_options(values: dict[str, Any], what: str) -> lm.LMOptions:
    tolerances = check_tolerances(values, what)
    max_nfev = check_max_nfev(values["max_nfev"], what)
    factor = check_positive(values["factor"], what, "factor")
    return lm.LMOptions(**tolerances, max_nfev=max_nfev, factor=factor)
