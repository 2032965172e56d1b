"""Per-fit fitter on iminuit: MIGRAD, then HESSE, and MINOS intervals on request.

Every fit of a block is minimised on its own by Minuit2 (through
`iminuit <https://scikit-hep.org/iminuit/>`_, the optional extra
``parfit[minuit]``) with the model's analytic gradient, then its covariance
is computed by HESSE.  :meth:`MinuitFitter.profile_block` adds MINOS
(profile-likelihood) intervals and upper limits for chosen parameters.

iminuit is imported only when a :class:`MinuitFitter` is built or used, so
``import parfit`` never needs it.

Examples
--------
>>> import numpy as np
>>> from parfit.fitters import MinuitFitter
>>> from parfit.models import Linear1D
>>> x = np.linspace(0.0, 1.0, 20)
>>> fitted = MinuitFitter().fit(Linear1D(1.0, 0.0), x, y=3.0 * x + 1.0)
>>> [round(float(v), 4) for v in fitted.params[0]]
[3.0, 1.0]
"""

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from ..status import Flag, Status
from . import lm, quality
from . import statistics as stats
from .base import BlockResult, FitBlock, Fitter, Row, run_guarded, screen_block, select_fit_info
from .options import (
    FitInfoArg,
    check_bool,
    check_max_nfev,
    check_positive,
    is_integer,
    is_real,
    refuse_unknown_kwargs,
)

__all__ = ["MinuitFitter"]

_log = logging.getLogger(__name__)

#: The options of :class:`MinuitFitter` (constructor keywords and ``fitter_kwargs``).
OPTIONS = ("tol", "strategy", "ncall", "scale_covariance")

#: The entries a fit's ``fit_info`` can hold (all of them with ``fit_info=True``).
FIT_INFO_NAMES = (
    "fval",
    "edm",
    "nfcn",
    "is_valid",
    "has_accurate_covar",
    "has_posdef_covar",
    "hesse_failed",
    "has_parameters_at_limit",
    "message",
)

#: What ``get_fitter("minuit")`` says when iminuit cannot be imported.
MISSING_IMINUIT = (
    "fitter='minuit' needs iminuit, which is not installed; install the optional extra: "
    "pip install 'parfit[minuit]'"
)

#: Both chi-square and C = -2 ln L rise by 1 at one standard deviation.
_ERRORDEF = 1.0


def _iminuit() -> Any:
    """The iminuit module, or :class:`~parfit.errors.InputError` saying how to install it."""
    try:
        import iminuit
    except ImportError as exc:
        raise InputError(MISSING_IMINUIT) from exc
    return iminuit


def check_options(values: dict[str, Any], what: str) -> dict[str, Any]:
    """Check the options of :class:`MinuitFitter`; return them normalised.

    ``tol`` is a positive number (Minuit's EDM tolerance), ``strategy`` 0, 1
    or 2, ``ncall`` a positive integer or None, ``scale_covariance`` True or
    False.  ``what`` starts each message (``"MinuitFitter"`` or
    ``"fitter_kwargs"``).

    Examples
    --------
    >>> import numpy as np
    >>> check_options(dict(tol=np.float32(0.5), strategy=np.int64(2), ncall=None,
    ...                    scale_covariance=True), "MinuitFitter")
    {'tol': 0.5, 'strategy': 2, 'ncall': None, 'scale_covariance': True}
    >>> check_options(dict(tol=0.1, strategy=3, ncall=None, scale_covariance=True),
    ...               "fitter_kwargs")
    Traceback (most recent call last):
    ...
    parfit.errors.InputError: fitter_kwargs: strategy must be 0, 1 or 2; got 3
    """
    strategy = values["strategy"]
    if not is_integer(strategy) or strategy not in (0, 1, 2):
        raise InputError(f"{what}: strategy must be 0, 1 or 2; got {strategy!r}")
    return {
        "tol": check_positive(values["tol"], what, "tol"),
        "strategy": int(strategy),
        "ncall": check_max_nfev(values["ncall"], what, name="ncall"),
        "scale_covariance": check_bool(values["scale_covariance"], what, "scale_covariance"),
    }


class MinuitFitter(Fitter):
    """Fit each pixel on its own with iminuit's MIGRAD, then HESSE.

    Each fit minimises the statistic (``"chi2"``, ``"cash"`` or ``"cstat"``)
    over the free parameters with the model's analytic gradient (chi-square:
    ``2 J^T (w^2 (mu - y))``; Cash and C-stat: ``2 J^T (1 - n/mu)``), bounds
    as Minuit limits, fixed parameters held at their starting values and tied
    ones recomputed from their expressions.  ``errordef`` is 1: chi-square and
    ``C = -2 ln L`` both rise by 1 at one standard deviation.  Needs the
    optional extra ``parfit[minuit]`` (iminuit).

    Parameters
    ----------
    tol : float
        Minuit's tolerance: MIGRAD stops when the estimated distance to the
        minimum (EDM) is below ``0.002 * tol`` (iminuit's default, 0.1), in
        units of the statistic, which leaves the parameters within about
        ``sqrt(0.004 * tol)`` of their errors of the minimum.  Without
        ``1/sigma`` weights chi-square is in the data's units squared: lower
        ``tol`` for data of small numbers (or pass weights).
    strategy : {0, 1, 2}
        Minuit's strategy: 0 is fastest, 2 most careful (iminuit's default, 1).
    ncall : int or None
        Most function calls of MIGRAD per fit (None: Minuit's own limit).
        A fit that reaches it gets status ``NOT_CONVERGED``.
    scale_covariance : bool
        For chi-square, scale the covariance by the reduced chi-square
        ``chi2 / (n_valid - n_free)`` (the default, as the other parfit
        fitters, astropy, lmfit and ``curve_fit`` do).  Set to False when the
        weights are true ``1/sigma``.  The Poisson statistics are never scaled.

    Raises
    ------
    parfit.errors.InputError
        For an invalid option, naming it, or when iminuit is not installed.

    Notes
    -----
    A fit is ``OK`` when MIGRAD's minimum is valid (``fmin.is_valid``, after
    HESSE) and the covariance gives a finite error to every free parameter;
    it is then flagged and demoted exactly as every parfit fitter does
    (:func:`parfit.fitters.quality.store_converged`).  An invalid minimum is
    ``NOT_CONVERGED`` with iminuit's reasons in the message.  A model that is
    negative, or zero where there are counts, has an infinite Cash or C-stat:
    Minuit steps back from such points.

    The errors are HESSE's: the inverse of the observed information (the
    Hessian of the statistic at the minimum).  For chi-square that equals the
    ``(J^T J)^-1`` of the least-squares fitters up to the curvature of the
    model; for Cash and C-stat it differs from the expected (Fisher)
    information the batched and scipy fitters use, by a few per cent on
    average and by tens of per cent in some fits of a few counts.  A parameter that ends on
    a limit gets Minuit's error there, near zero (Minuit's limit transform
    flattens); :meth:`profile_block` gives an interval that reaches the bound.

    With ``fit_info=True`` each fit's ``fit_info`` holds, as plain Python
    values, :data:`FIT_INFO_NAMES`: ``fval`` (the value Minuit minimised:
    chi-square, or the C-stat for both Poisson statistics, since Cash differs
    from it by a constant), ``edm``, ``nfcn``, ``is_valid``,
    ``has_accurate_covar``, ``has_posdef_covar``, ``hesse_failed``,
    ``has_parameters_at_limit`` and ``message``.

    Examples
    --------
    >>> import numpy as np
    >>> from parfit.fitters import MinuitFitter
    >>> from parfit.models import Gaussian1D
    >>> x = np.linspace(-5, 5, 50)
    >>> y = Gaussian1D(2.0, 0.5, 1.2)(x)
    >>> fitted = MinuitFitter(tol=1e-4).fit(Gaussian1D(1.0, 0.0, 1.0), x, y=y)
    >>> [round(float(v), 4) for v in fitted.params[0]]
    [2.0, 0.5, 1.2]
    >>> MinuitFitter(strategy=2)
    <MinuitFitter iminuit MIGRAD and HESSE (tol=0.1, strategy=2, ncall=None, scale_covariance=True)>
    """

    name = "minuit"
    fit_info_names = FIT_INFO_NAMES
    statistics = ("chi2", "cash", "cstat")

    def __init__(
        self,
        *,
        tol: float = 0.1,
        strategy: int = 1,
        ncall: int | None = None,
        scale_covariance: bool = True,
    ) -> None:
        _iminuit()
        self.options = check_options(
            dict(tol=tol, strategy=strategy, ncall=ncall, scale_covariance=scale_covariance),
            "MinuitFitter",
        )

    @property
    def scale_covariance(self) -> bool:
        """Whether chi-square errors are scaled by the reduced chi-square."""
        return bool(self.options["scale_covariance"])

    def describe(self) -> str:
        opts = ", ".join(f"{k}={self.options[k]!r}" for k in OPTIONS)
        return f"iminuit MIGRAD and HESSE ({opts})"

    def check(self, model: Any, fitter_kwargs: dict[str, Any] | None = None) -> None:
        """Reject unknown or invalid ``fitter_kwargs`` before dispatch."""
        self._options(fitter_kwargs)

    def _options(self, fitter_kwargs: dict[str, Any] | None) -> dict[str, Any]:
        """The options of this fitter updated by ``fitter_kwargs``, checked."""
        if not fitter_kwargs:
            return self.options
        refuse_unknown_kwargs(fitter_kwargs, OPTIONS, self.name)
        merged = dict(self.options)
        merged.update(fitter_kwargs)
        return check_options(merged, "fitter_kwargs")

    def fit_block(
        self,
        model: Any,
        block: FitBlock,
        *,
        fit_info: FitInfoArg = False,
        fitter_kwargs: dict[str, Any] | None = None,
        statistic: str = "chi2",
    ) -> BlockResult:
        """Fit every row of ``block`` with MIGRAD, then HESSE.

        Returns a :class:`~parfit.fitters.BlockResult` whose ``statistic`` is
        the value of ``statistic`` at the minimum (``"cash"`` with its term of
        the data alone), as :func:`parfit.fitters.statistics.statistic_values`
        computes it.
        """
        self.check_statistic(statistic)
        options = self._options(fitter_kwargs)
        iminuit = _iminuit()
        result = BlockResult.empty(block.n_fits, len(model.param_names))
        free = np.asarray(model.free_mask, dtype=bool)
        infos: list[Any] | None = [None] * block.n_fits if fit_info else None
        for i in screen_block(block, free, result, names=model.param_names):
            run_guarded(
                result,
                i,
                self._fit_one,
                iminuit,
                model,
                block,
                i,
                free,
                options,
                result,
                infos,
                statistic,
            )
        result.fit_info = select_fit_info(infos, fit_info)
        return result

    def _fit_one(
        self,
        iminuit: Any,
        model: Any,
        block: FitBlock,
        i: Row,
        free: np.ndarray,
        options: dict[str, Any],
        result: BlockResult,
        infos: list[Any] | None,
        statistic: str,
    ) -> None:
        objective = _Objective(model, block, i, free, statistic)
        x0 = block.p0[i, free]
        if objective.poisson and not math.isfinite(objective(x0)) and len(x0):
            x0 = self._defined_start(iminuit, model, block, i, free, options, objective, x0)
        if not math.isfinite(objective(x0)):
            what = "not finite"
            if objective.poisson:
                what = "not finite, is negative, or is zero where there are counts"
            result.fail(i, Status.NONFINITE, f"the model is {what} at the starting values")
            return
        if not len(x0):  # nothing to fit: the statistic of the start, as the others do
            result.nfev[i] = 1
            self._store(model, block, i, free, objective, x0, np.zeros((0, 0)), options, result)
            return
        minuit = _minuit(iminuit, objective, x0, block, i, free, model, options)
        minuit.migrad(ncall=options["ncall"])
        if not minuit.fmin.has_reached_call_limit:
            minuit.hesse()
        fmin = minuit.fmin
        result.nfev[i] = min(int(fmin.nfcn), np.iinfo(np.int32).max)
        message = _fmin_message(fmin, objective.poisson)
        if infos is not None:
            infos[i] = _fit_info(fmin, message)
        if not fmin.is_valid:
            result.fail(i, Status.NOT_CONVERGED, message)
            return
        covariance = np.array(minuit.covariance, dtype=np.float64)
        pf = np.array(minuit.values, dtype=np.float64)
        self._store(model, block, i, free, objective, pf, covariance, options, result)

    def _defined_start(
        self,
        iminuit: Any,
        model: Any,
        block: FitBlock,
        i: Row,
        free: np.ndarray,
        options: dict[str, Any],
        objective: "_Objective",
        x0: np.ndarray,
    ) -> np.ndarray:
        """Counts: a start where the likelihood is defined, as the batched fitter finds one.

        Where it is undefined at ``x0`` (a guessed background of zero under
        counts), least squares from ``x0``; if the likelihood is undefined
        there too, that solution with its peaks taken out (amplitudes 0).
        ``x0`` itself when neither will do.
        """
        squares = _minuit(
            iminuit, _Objective(model, block, i, free, "chi2"), x0, block, i, free, model, options
        )
        squares.migrad(ncall=options["ncall"])
        start = np.array(squares.values, dtype=np.float64)
        if math.isfinite(objective(start)):
            return start
        columns = np.cumsum(free) - 1
        peaks = [int(columns[k]) for k in model.peak_amplitude_indices() if free[k]]
        if peaks:
            start[peaks] = 0.0
            if math.isfinite(objective(start)):
                return start
        return x0

    def _store(
        self,
        model: Any,
        block: FitBlock,
        i: Row,
        free: np.ndarray,
        objective: "_Objective",
        pf: np.ndarray,
        covariance: np.ndarray,
        options: dict[str, Any],
        result: BlockResult,
    ) -> None:
        """Store fit ``i`` ended at free values ``pf`` with HESSE's ``covariance``."""
        params = objective.full(pf)[0]
        value = objective.statistic(pf)
        if not (np.all(np.isfinite(params)) and math.isfinite(value)):
            result.fail(i, Status.NONFINITE, "the fit ended on non-finite parameters")
            return
        errors = quality.errors_from_normal(
            model,
            params[None],
            free,
            objective.has_ties,
            _normal_from_covariance(covariance)[None],
            np.array([value]),
            np.array([objective.n_valid]),
            options["scale_covariance"] and not objective.poisson,
        )
        row = np.array([i])
        flags = quality.quality_flags(model, block, row, params[None], errors, free)
        quality.store_converged(
            result, row, params[None], np.array([value]), errors, flags, model.param_names
        )

    def profile_block(
        self,
        model: Any,
        block: FitBlock,
        result: BlockResult,
        names: Sequence[str],
        n_sigma: float,
        n_sigma_ul: float,
        *,
        statistic: str = "chi2",
        fitter_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """MINOS intervals and upper limits of parameters ``names`` for every OK fit.

        Each fit that is ``OK`` in ``result`` (what :meth:`fit_block` returned
        for this ``block``, ``model``, ``statistic`` and options) is restarted
        at its best fit and minimised again by MIGRAD; then MINOS profiles
        the statistic over each parameter of ``names``, the other free
        parameters refitted at every step.  The interval holds the values
        where the profiled statistic rises by ``n_sigma**2`` above its
        minimum; the upper limit is where it rises by ``n_sigma_ul**2`` above
        the best fit (MINOS's upper side only).  Each crossing MINOS finds is
        refined by one secant step on the profile (MINOS stops within about
        0.2 % of the level with strategies 1 and 2; the step is kept when the
        refitted profile lands closer).  For chi-square the profile is of the
        raw chi-square: ``scale_covariance`` does not rescale it.

        Parameters
        ----------
        model : parfit model
        block : parfit.fitters.FitBlock
        result : parfit.fitters.BlockResult
            The fits of ``block``; only ``Status.OK`` ones are profiled.
        names : sequence of str
            Free parameters of ``model`` (neither fixed nor tied).
        n_sigma, n_sigma_ul : float
            Positive: the width of the interval and the level of the upper
            limit, in standard deviations.
        statistic : {"chi2", "cash", "cstat"}
        fitter_kwargs : dict, optional
            Options for this call, as for :meth:`fit_block`.

        Returns
        -------
        dict of str to ndarray
            ``"<name>_lo"``, ``"<name>_hi"`` and ``"<name>_ul"`` for each
            name: float64 ``(n_fits,)`` parameter values (not distances from
            the best fit), NaN where the fit is not OK or MINOS failed; and
            ``"flags"``: uint8 ``(n_fits,)``, ``Flag.LIMIT_AT_BOUND`` where an
            interval or upper limit reached a parameter's bound (the value is
            then the bound).

        Raises
        ------
        parfit.errors.InputError
            For a name that is not a free parameter, or a non-positive
            ``n_sigma`` or ``n_sigma_ul``.

        Examples
        --------
        >>> import numpy as np
        >>> from parfit.fitters import MinuitFitter
        >>> from parfit.fitters.base import block_from_arrays
        >>> from parfit.models import Const1D
        >>> fitter, model = MinuitFitter(), Const1D(1.0)
        >>> y = np.array([0.8, 1.2, 0.9, 1.1])  # mean 1, chi2 = 4 (x - 1)**2 + 0.1
        >>> block = block_from_arrays(fitter.parameter_arrays(model), [np.arange(4.0)], y)
        >>> result = fitter.fit_block(model, block)
        >>> out = fitter.profile_block(model, block, result, ["amplitude"], 1.0, 2.0)
        >>> [round(float(out[k][0]), 4) for k in ("amplitude_lo", "amplitude_hi", "amplitude_ul")]
        [0.5, 1.5, 2.0]
        """
        self.check_statistic(statistic)
        options = self._options(fitter_kwargs)
        iminuit = _iminuit()
        free = np.asarray(model.free_mask, dtype=bool)
        free_names = [n for n, f in zip(model.param_names, free) if f]
        names = [names] if isinstance(names, str) else list(names)
        wrong = [n for n in names if n not in free_names]
        if wrong:
            raise InputError(
                f"names: {', '.join(map(repr, wrong))} not free parameter(s) of the model; "
                f"MINOS profiles free parameters: {', '.join(map(repr, free_names))}"
            )
        cl = _cl(n_sigma, "n_sigma")
        cl_ul = _cl(n_sigma_ul, "n_sigma_ul")
        n = block.n_fits
        out = {
            f"{name}_{side}": np.full(n, np.nan) for name in names for side in ("lo", "hi", "ul")
        }
        flags = np.zeros(n, dtype=np.uint8)
        scratch = BlockResult.empty(n, len(model.param_names))
        for i in np.flatnonzero(np.asarray(result.status) == Status.OK):
            run_guarded(
                scratch,
                i,
                self._profile_one,
                iminuit,
                model,
                block,
                result,
                i,
                free,
                names,
                ((cl, float(n_sigma) ** 2), (cl_ul, float(n_sigma_ul) ** 2)),
                options,
                statistic,
                out,
                flags,
            )
            if i in scratch.messages:
                _log.warning("MINOS of fit %d failed: %s", i, scratch.messages[i])
                for key in out:
                    out[key][i] = np.nan
        out["flags"] = flags
        return out

    def _profile_one(
        self,
        iminuit: Any,
        model: Any,
        block: FitBlock,
        result: BlockResult,
        i: Row,
        free: np.ndarray,
        names: list[str],
        levels: tuple[tuple[float, float], tuple[float, float]],
        options: dict[str, Any],
        statistic: str,
        out: dict[str, np.ndarray],
        flags: np.ndarray,
    ) -> None:
        objective = _Objective(model, block, i, free, statistic)
        x0 = np.asarray(result.params[i], dtype=np.float64)[free]
        minuit = _minuit(iminuit, objective, x0, block, i, free, model, options)
        step = np.asarray(result.errors[i], dtype=np.float64)[free]
        good = np.isfinite(step) & (step > 0)
        if good.any():
            minuit.errors = np.where(good, step, minuit.errors)
        minuit.migrad(ncall=options["ncall"])
        if not minuit.fmin.is_valid:
            return
        lower = dict(zip(minuit.parameters, block.lower[i, free]))
        upper = dict(zip(minuit.parameters, block.upper[i, free]))
        best_values = np.array(minuit.values, dtype=np.float64)
        column = {name: k for k, name in enumerate(minuit.parameters)}
        minimum = float(minuit.fval)

        def rise_at(name: str, value: float) -> float:
            """How far the statistic, minimised with ``name`` held at ``value``, rises."""
            x = best_values.copy()
            x[column[name]] = value
            held = _minuit(iminuit, objective, x, block, i, free, model, options)
            held.fixed[name] = True
            held.migrad(ncall=options["ncall"])
            return float(held.fval) - minimum if held.fmin.is_valid else math.nan

        def crossing(name: str, best: float, error: float, rise: float) -> float:
            """MINOS's crossing ``best + error``, refined by a secant step on the profile.

            MINOS stops once its crossing is within a tolerance of the level
            (up to about 0.2 % of ``rise`` with strategies 1 and 2); one step
            of the parabola through the minimum and the crossing, kept when it
            lands closer, brings it within the precision of MIGRAD.
            """
            value = best + error
            reached = rise_at(name, value)
            if not (math.isfinite(reached) and reached > 0) or abs(reached - rise) <= 1e-5 * rise:
                return value
            refined = best + error * math.sqrt(rise / reached)
            if not lower[name] <= refined <= upper[name]:
                return value
            return refined if abs(rise_at(name, refined) - rise) < abs(reached - rise) else value

        (cl, rise), (cl_ul, rise_ul) = levels
        for name in names:
            best = float(minuit.values[name])
            minuit.minos(name, cl=cl, ncall=options["ncall"])
            me = minuit.merrors[name]
            # A best value on its lower bound: MINOS finds no crossing below it.
            on_lower = best - lower[name] <= 1e-6 * max(1.0, abs(best))
            if me.at_lower_limit or on_lower:
                out[f"{name}_lo"][i] = lower[name]
                flags[i] |= np.uint8(Flag.LIMIT_AT_BOUND)
            elif me.lower_valid:
                out[f"{name}_lo"][i] = crossing(name, best, me.lower, rise)
            if me.at_upper_limit:
                out[f"{name}_hi"][i] = upper[name]
                flags[i] |= np.uint8(Flag.LIMIT_AT_BOUND)
            elif me.upper_valid:
                out[f"{name}_hi"][i] = crossing(name, best, me.upper, rise)
            if cl_ul != cl:
                minuit.minos(name, cl=cl_ul, ncall=options["ncall"])
                me = minuit.merrors[name]
                if me.at_upper_limit:
                    out[f"{name}_ul"][i] = upper[name]
                    flags[i] |= np.uint8(Flag.LIMIT_AT_BOUND)
                elif me.upper_valid:
                    out[f"{name}_ul"][i] = crossing(name, best, me.upper, rise_ul)
            else:
                out[f"{name}_ul"][i] = out[f"{name}_hi"][i]


class _Objective:
    """The statistic of one fit as a function of its free parameters, and its gradient.

    For ``"cash"`` and ``"cstat"`` Minuit minimises the C-stat (the Poisson
    deviance, well scaled near the minimum); Cash differs from it by a
    constant, added back by :meth:`statistic`.
    """

    def __init__(
        self, model: Any, block: FitBlock, i: Row, free: np.ndarray, statistic: str
    ) -> None:
        self.model = model
        self.free = free
        self.statistic_name = statistic
        self.poisson = stats.is_likelihood(statistic)
        self.has_ties = any(getattr(model, n).tied for n in model.param_names)
        sel = block.valid[i]
        subset = None if sel.all() else sel
        self.xs = tuple(xk[None, :] for xk in block.fit_x(i, subset))
        self.y = block.y[i] if subset is None else block.y[i, subset]
        self.n_valid = len(self.y)
        self.w = None
        if block.weights is not None and not self.poisson:
            self.w = block.weights[i] if subset is None else block.weights[i, subset]
        self.p_start = np.array(block.p0[i], dtype=np.float64)
        self._last: tuple[bytes, np.ndarray] | None = None

    def full(self, pf: np.ndarray) -> np.ndarray:
        """All parameters, ``(1, n_params)``, from the free ones."""
        p = self.p_start.copy()
        p[self.free] = pf
        p = p[None, :]
        return self.model.apply_ties(p) if self.has_ties else p

    def _mu(self, pf: np.ndarray) -> np.ndarray:
        key = np.asarray(pf, dtype=np.float64).tobytes()
        if self._last is None or self._last[0] != key:
            self._last = (key, self.model.evaluate(*self.xs, self.full(pf))[0])
        return self._last[1]

    def __call__(self, pf: np.ndarray) -> float:
        mu = self._mu(pf)
        with np.errstate(all="ignore"):
            if self.poisson:
                r, _ = stats.deviance_residuals(self.y, mu)
            else:
                r = mu - self.y if self.w is None else (mu - self.y) * self.w
            value = float(r @ r)
        return value if math.isfinite(value) else math.inf

    def grad(self, pf: np.ndarray) -> np.ndarray:
        """The gradient of :meth:`__call__` by the free parameters."""
        mu = self._mu(pf)
        p = self.full(pf)
        j = self.model.jacobian(*self.xs, p)[0]
        j = j @ self.model.tie_jacobian(p)[0] if self.has_ties else j[:, self.free]
        with np.errstate(all="ignore"):
            if self.poisson:
                slope = np.where(self.y > 0, 1.0 - self.y / mu, 1.0)
            else:
                slope = mu - self.y if self.w is None else self.w * self.w * (mu - self.y)
        return np.asarray(2.0 * (j.T @ slope), dtype=np.float64)

    def statistic(self, pf: np.ndarray) -> float:
        """The reported statistic at ``pf`` (Cash with its term of the data)."""
        mu = self._mu(pf)[None]
        valid = np.ones_like(mu, dtype=bool)
        w = None if self.w is None else self.w[None]
        return float(stats.statistic_values(self.statistic_name, self.y[None], mu, w, valid)[0])


def _minuit(
    iminuit: Any,
    objective: _Objective,
    x0: np.ndarray,
    block: FitBlock,
    i: Row,
    free: np.ndarray,
    model: Any,
    options: dict[str, Any],
) -> Any:
    """A Minuit on ``objective`` from ``x0``, with the fit's bounds as limits."""
    names = [n for n, f in zip(model.param_names, free) if f]
    minuit = iminuit.Minuit(
        objective, np.asarray(x0, dtype=np.float64), grad=objective.grad, name=names
    )
    minuit.errordef = _ERRORDEF
    minuit.tol = options["tol"]
    minuit.strategy = options["strategy"]
    minuit.print_level = 0
    minuit.limits = [
        (float(lo), float(hi)) for lo, hi in zip(block.lower[i, free], block.upper[i, free])
    ]
    return minuit


def _normal_from_covariance(cov: np.ndarray) -> np.ndarray:
    """The inverse of a covariance matrix (NaN where it cannot be inverted).

    Inverted through the correlation matrix, as
    :func:`parfit.fitters.quality.errors_from_normal` does, so that the
    units of the parameters do not decide what is singular.
    """
    k = cov.shape[0]
    nan = np.full((k, k), np.nan)
    diag = np.diagonal(cov)
    if not (np.all(np.isfinite(cov)) and np.all(diag > 0)):
        return nan
    d = np.sqrt(diag)
    inv_corr, pivots = lm.cholesky_inverse((cov / np.outer(d, d))[None])
    if np.any(pivots <= np.sqrt(10 * k * np.finfo(float).eps)):
        return nan
    return np.asarray(inv_corr[0] / np.outer(d, d), dtype=np.float64)


def _fmin_message(fmin: Any, poisson: bool = False) -> str:
    """Why Minuit's minimum is not valid, or ``"valid minimum"``.

    ``poisson``: the statistic is Cash or C-stat, which is infinite where the
    model is negative (or zero where there are counts).
    """
    if fmin.is_valid:
        return "valid minimum"
    reasons = []
    if poisson and not (math.isfinite(fmin.edm) and math.isfinite(fmin.fval)):
        reasons.append(
            "the statistic is infinite next to the point reached (the model is zero or "
            "negative at a sample there): the best fit lies on the edge of the region "
            "where the likelihood is defined, where MIGRAD and HESSE cannot converge"
        )
    if fmin.has_reached_call_limit:
        reasons.append(f"call limit reached ({fmin.nfcn} calls)")
    if fmin.is_above_max_edm:
        reasons.append(
            f"estimated distance to minimum above maximum (edm={fmin.edm:.3g}, "
            f"goal {fmin.edm_goal:.3g})"
        )
    if not fmin.has_valid_parameters:
        reasons.append("parameters not valid")
    if fmin.hesse_failed:
        reasons.append("HESSE failed")
    if not fmin.has_posdef_covar:
        reasons.append("covariance not positive definite")
    return f"iminuit MIGRAD: minimum not valid: {'; '.join(reasons) or 'no reason given'}"


def _fit_info(fmin: Any, message: str) -> dict[str, Any]:
    """:data:`FIT_INFO_NAMES` of ``fmin`` as plain Python values."""
    info: dict[str, Any] = {
        "fval": float(fmin.fval),
        "edm": float(fmin.edm),
        "nfcn": int(fmin.nfcn),
    }
    for key in FIT_INFO_NAMES[3:-1]:
        info[key] = bool(getattr(fmin, key))
    info["message"] = message
    return info


def _cl(n_sigma: Any, name: str) -> float:
    """MINOS's ``cl`` for a rise of the statistic by ``n_sigma**2``.

    iminuit reads ``cl >= 1`` as a number of standard deviations and
    ``cl < 1`` as a probability, so fewer than one standard deviation is
    passed as the probability of that many (``erf(n / sqrt(2))``).
    """
    if not is_real(n_sigma) or not 0 < n_sigma < np.inf:
        raise InputError(f"{name} must be a positive number; got {n_sigma!r}")
    n_sigma = float(n_sigma)
    return n_sigma if n_sigma >= 1 else math.erf(n_sigma / math.sqrt(2.0))
