"""The block-level fitter interface shared by every parfit fitter.

A fitter receives a whole block of independent fits at once as a
:class:`FitBlock` (samples flattened to ``(n_fits, n_samples)``) and returns a
:class:`BlockResult`.  Per-fit fitters loop over the rows; the batched solver
advances all rows together.  Nothing here imports dask: a block is plain
numpy.
"""

import dataclasses
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from ..status import Status
from ._capture import capture_warnings, format_warnings
from .options import FitInfoArg, check_fit_info_names

__all__ = [
    "FitBlock",
    "BlockResult",
    "Row",
    "Fitter",
    "block_from_arrays",
    "run_guarded",
    "screen_block",
    "select_fit_info",
]

#: A fit's row in its block: a Python or a numpy integer (as iterating an index array gives).
Row = int | np.integer[Any]


@dataclasses.dataclass
class FitBlock:
    """One block of independent fits, in the layout fitters work on.

    Attributes
    ----------
    x : tuple of ndarray
        One float64 array per model input, each ``(n_samples,)`` when shared
        by every fit or ``(n_fits, n_samples)`` when it varies per fit.
    y : ndarray
        Data, float64 ``(n_fits, n_samples)``; may hold NaN or inf.
    weights : ndarray or None
        Weights (``1/sigma``), float64 ``(n_fits, n_samples)``, or None.
    valid : ndarray
        Bool ``(n_fits, n_samples)``: finite data, not masked, finite
        non-zero weight.  Fitters use only valid samples.
    p0 : ndarray
        Starting values, float64 ``(n_fits, n_params)``.
    lower, upper : ndarray
        Bounds, float64 ``(n_fits, n_params)``, ``-inf``/``inf`` if none.
    sample_shape : tuple of int
        Shape of the fitting axes; ``n_samples == prod(sample_shape)``.
    """

    x: tuple[np.ndarray, ...]
    y: np.ndarray
    weights: np.ndarray | None
    valid: np.ndarray
    p0: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    sample_shape: tuple[int, ...]

    @property
    def n_fits(self) -> int:
        return int(self.y.shape[0])

    def take(self, rows: np.ndarray) -> "FitBlock":
        """The fits ``rows`` of this block (rows may repeat), as a new block."""
        return FitBlock(
            x=tuple(xk if xk.ndim == 1 else xk[rows] for xk in self.x),
            y=self.y[rows],
            weights=None if self.weights is None else self.weights[rows],
            valid=self.valid[rows],
            p0=self.p0[rows],
            lower=self.lower[rows],
            upper=self.upper[rows],
            sample_shape=self.sample_shape,
        )

    def fit_x(self, i: Row, select: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """The model inputs of fit ``i``, optionally restricted to ``select``."""
        out = []
        for xk in self.x:
            row = xk if xk.ndim == 1 else xk[i]
            out.append(row if select is None else row[select])
        return tuple(out)


@dataclasses.dataclass
class BlockResult:
    """What a fitter returns for one block.

    Attributes
    ----------
    params, errors : ndarray
        float64 ``(n_fits, n_params)``; NaN for fits that are not OK.
        ``errors`` are 1-sigma uncertainties from the covariance matrix (NaN
        for fixed parameters and where the covariance is singular).
    statistic : ndarray
        float64 ``(n_fits,)``: chi-square, ``sum((weights * (model - y))**2)``
        over the valid samples.
    status : ndarray
        int8 ``(n_fits,)``, codes of :class:`parfit.status.Status`.
    nfev : ndarray
        int32 ``(n_fits,)``: model evaluations (``-1`` where unknown).
    flags : ndarray
        uint8 ``(n_fits,)``, bits of :class:`parfit.status.Flag`.
    messages : dict
        Fit index -> text explaining a non-OK status (a full traceback for
        exceptions).  Written to ``error.log`` by the diagnostics.
    warnings : dict
        Fit index -> list of warning lines raised during that fit.
    fit_info : list or None
        Per-fit fitter information (astropy fitters with ``fit_info``).
    """

    params: np.ndarray
    errors: np.ndarray
    statistic: np.ndarray
    status: np.ndarray
    nfev: np.ndarray
    flags: np.ndarray | None = None
    messages: dict[Row, str] = dataclasses.field(default_factory=dict)
    warnings: dict[Row, list[str]] = dataclasses.field(default_factory=dict)
    fit_info: list[Any] | None = None

    @classmethod
    def empty(cls, n_fits: int, n_params: int) -> "BlockResult":
        """A result with every fit NOT_RUN and NaN everywhere."""
        nan = np.full((n_fits, n_params), np.nan)
        return cls(
            params=nan,
            errors=nan.copy(),
            statistic=np.full(n_fits, np.nan),
            status=np.full(n_fits, Status.NOT_RUN, dtype=np.int8),
            nfev=np.zeros(n_fits, dtype=np.int32),
            flags=np.zeros(n_fits, dtype=np.uint8),
        )

    def fail(self, i: Row, status: int, message: str) -> None:
        """Mark fit ``i`` as failed with ``status`` and an explanation."""
        self.params[i] = np.nan
        self.errors[i] = np.nan
        self.statistic[i] = np.nan
        self.status[i] = status
        self.messages[i] = message


class Fitter:
    """Base class of parfit fitters.

    Subclasses implement :meth:`fit_block`.  A fitter holds only its
    options; it keeps no state between calls, so one instance can serve
    many threads and processes at once.
    """

    #: Human-readable name used in result metadata.
    name: str = "fitter"

    #: The entries a fit's ``fit_info`` can hold (a tuple of names), or None
    #: when the fitter cannot tell (then any name is accepted).  The base
    #: class records none.
    fit_info_names: tuple[str, ...] | None = ()

    #: The statistics (:data:`parfit.fitters.statistics.STATISTICS`) it can minimise.
    statistics: tuple[str, ...] = ("chi2",)

    def check_statistic(self, statistic: str) -> None:
        """Raise before dispatch if this fitter cannot minimise ``statistic``.

        Examples
        --------
        >>> from parfit.fitters import ScipyFitter
        >>> ScipyFitter("trf").check_statistic("cash")
        >>> ScipyFitter("lm").check_statistic("cash")
        Traceback (most recent call last):
        ...
        parfit.errors.InputError: statistic='cash' cannot be minimised by fitter 'scipy-lm',
        which minimises 'chi2' only; use fitter=None (parfit's batched solver), 'trf' or 'minuit'
        """
        from .statistics import check_statistic

        check_statistic(statistic)
        if statistic not in self.statistics:
            raise InputError(
                f"statistic={statistic!r} cannot be minimised by fitter {self.name!r}, which "
                f"minimises {', '.join(map(repr, self.statistics))} only; use fitter=None "
                f"(parfit's batched solver), 'trf' or 'minuit'"
            )

    def check(self, model: Any, fitter_kwargs: dict[str, Any] | None = None) -> None:
        """Raise before dispatch if this fitter cannot fit ``model`` with ``fitter_kwargs``."""

    def check_fit_info(self, names: FitInfoArg) -> None:
        """Raise before dispatch if ``names`` asks for a ``fit_info`` entry this fitter lacks.

        Parameters
        ----------
        names : bool, str or sequence of str
            The ``fit_info`` argument of :func:`parfit.parallel_fit`; True
            and False are always accepted.

        Raises
        ------
        parfit.errors.InputError
            Naming the unknown entries and listing :attr:`fit_info_names`.

        Examples
        --------
        >>> from parfit.fitters import ScipyFitter
        >>> ScipyFitter("trf").check_fit_info(["nfev", "cost"])
        >>> ScipyFitter("trf").check_fit_info(["nfev", "chi2"])
        Traceback (most recent call last):
        ...
        parfit.errors.InputError: fit_info has unknown name(s) 'chi2' for fitter 'scipy-trf';
        valid names are 'x', 'cost', 'fun', 'jac', 'grad', 'optimality', 'active_mask', 'nfev',
        'njev', 'status', 'message', 'success'
        """
        check_fit_info_names(names, self.fit_info_names, self.name)

    def fit_block(
        self,
        model: Any,
        block: FitBlock,
        *,
        fit_info: FitInfoArg = False,
        fitter_kwargs: dict[str, Any] | None = None,
        statistic: str = "chi2",
    ) -> BlockResult:
        """Fit every row of ``block``, minimising ``statistic``; see :class:`BlockResult`."""
        raise NotImplementedError

    def fit(
        self,
        model: Any,
        *x: Any,
        y: Any,
        weights: Any = None,
        fitter_kwargs: dict[str, Any] | None = None,
        statistic: str = "chi2",
    ) -> BlockResult:
        """Fit a single data vector with the same code path as a cube pixel.

        Parameters
        ----------
        model : parfit model
            Starting values must be scalars.
        *x : array_like
            The model inputs, each of the shape of ``y``.
        y : array_like
            The data.
        weights : array_like, optional
            ``1/sigma`` weights, shaped like ``y``.
        statistic : {"chi2", "cash", "cstat"}
            What to minimise (:mod:`parfit.fitters.statistics`).

        Returns
        -------
        BlockResult
            A result with a single row (``params[0]`` are the fitted values).
        """
        block = block_from_arrays(self.parameter_arrays(model), x, y, weights)
        return self.fit_block(model, block, fitter_kwargs=fitter_kwargs, statistic=statistic)

    def parameter_arrays(self, model: Any) -> list[tuple[str, Any, Any, Any]]:
        """Starting value and bounds of each parameter, in model order.

        Returns
        -------
        list of tuple
            ``(name, value, lower, upper)``; each of the last three a float
            or an array (a per-pixel map); ``-inf``/``inf`` when unbounded.
        """
        out = []
        for name in model.param_names:
            par = getattr(model, name)
            lower = -np.inf if par.lower is None else par.lower
            upper = np.inf if par.upper is None else par.upper
            out.append((name, par.value, lower, upper))
        return out

    def model_with_values(self, model: Any, values: Any) -> Any:
        """A copy of ``model`` holding ``values`` (one row, model order)."""
        return model.with_values(np.asarray(values, dtype=np.float64))

    def describe(self) -> str:
        """A short text naming the fitter and its options."""
        return self.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def block_from_arrays(
    parameter_arrays: Sequence[tuple[str, Any, Any, Any]],
    x: Sequence[Any],
    y: Any,
    weights: Any = None,
) -> FitBlock:
    """Build a one-fit :class:`FitBlock` from plain arrays.

    ``parameter_arrays`` is what :meth:`Fitter.parameter_arrays` returns;
    the values must be scalars.
    """
    y = np.asarray(y, dtype=np.float64)
    xs = tuple(np.broadcast_to(np.asarray(xk, dtype=np.float64), y.shape).ravel() for xk in x)
    w = None
    if weights is not None:
        w = np.broadcast_to(np.asarray(weights, dtype=np.float64), y.shape).reshape(1, -1)
    flat = y.reshape(1, -1)
    valid = np.isfinite(flat)
    if w is not None:
        valid &= np.isfinite(w) & (w > 0)
    p0, lower, upper = (
        np.array([[float(entry[k]) for entry in parameter_arrays]]) for k in (1, 2, 3)
    )
    return FitBlock(
        x=xs, y=flat, weights=w, valid=valid, p0=p0, lower=lower, upper=upper, sample_shape=y.shape
    )


def screen_block(
    block: FitBlock,
    free_mask: np.ndarray,
    result: BlockResult,
    *,
    names: Sequence[str] | None = None,
    check_bounds: bool = True,
) -> np.ndarray:
    """Mark the fits that cannot be attempted and return the rest.

    Fits with no valid sample get ``NO_VALID_DATA``; fits with fewer valid
    samples than free parameters ``TOO_FEW_SAMPLES``; fits whose free
    starting values are NaN or outside their bounds ``BAD_START`` (the
    message names the parameters by ``names`` when given).

    Returns
    -------
    ndarray of int
        Indices of the fits to attempt.
    """
    n_valid = block.valid.sum(axis=1)
    n_free = int(np.count_nonzero(free_mask))
    p0 = block.p0[:, free_mask]
    lower = block.lower[:, free_mask]
    upper = block.upper[:, free_mask]
    inside = (p0 >= lower) & (p0 <= upper) if check_bounds else True
    bad_start = ~np.all(np.isfinite(p0) & inside, axis=1)
    # Also fixed values must be usable numbers.
    bad_start |= ~np.all(np.isfinite(block.p0[:, ~free_mask]), axis=1)
    empty = n_valid == 0
    few = ~empty & (n_valid < n_free)
    bad = ~empty & ~few & bad_start
    for i in np.flatnonzero(empty):
        result.fail(
            i, Status.NO_VALID_DATA, "no valid samples (all NaN, inf, masked or zero weight)"
        )
    for i in np.flatnonzero(few):
        result.fail(
            i,
            Status.TOO_FEW_SAMPLES,
            f"{n_valid[i]} valid samples for {n_free} free parameters",
        )
    for i in np.flatnonzero(bad):
        result.fail(i, Status.BAD_START, _bad_start_message(block, i, free_mask, names))
    return np.flatnonzero(~(empty | few | bad)).astype(np.intp)


def _bad_start_message(
    block: FitBlock, i: Row, free_mask: np.ndarray, names: Sequence[str] | None = None
) -> str:
    values = ", ".join(
        f"parameter {names[k] if names else k!r}: {float(v)!r} not in "
        f"[{float(lo)!r}, {float(hi)!r}]"
        for k, (v, lo, hi, free) in enumerate(
            zip(block.p0[i], block.lower[i], block.upper[i], free_mask)
        )
        if not np.isfinite(v) or (free and not lo <= v <= hi)
    )
    return f"starting value NaN or outside bounds: {values}"


def select_fit_info(infos: list[Any] | None, fit_info: FitInfoArg) -> list[Any] | None:
    """Keep only the entries named by ``fit_info`` in each dict of ``infos``.

    ``infos`` is a list (one dict or None per fit) or None; with
    ``fit_info=True`` it is returned as it is.
    """
    if infos is None or fit_info is True or not fit_info:
        return infos
    names = (fit_info,) if isinstance(fit_info, str) else tuple(fit_info)
    return [None if info is None else {k: info.get(k) for k in names} for info in infos]


def run_guarded(result: BlockResult, i: Row, func: Callable[..., object], *args: Any) -> None:
    """Run fit ``i`` as ``func(*args)``; nothing it raises escapes.

    Any exception (even ``SystemExit`` raised by a user model) marks fit
    ``i`` as ``FIT_ERROR`` with its traceback; the warnings raised during the
    fit are recorded in ``result.warnings[i]``.  ``KeyboardInterrupt`` is
    the exception: Ctrl-C stops the run (a resumable one can go on later).
    """
    with capture_warnings() as records:
        try:
            func(*args)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a user model may raise anything
            result.fail(i, Status.FIT_ERROR, exception_message(exc))
    if records:
        result.warnings[i] = format_warnings(records).splitlines()


def exception_message(exc: BaseException) -> str:
    """The full traceback of ``exc`` as text, for ``error.log``."""
    return "".join(traceback.format_exception(exc))
