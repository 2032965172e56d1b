"""Honest successes: errors, quality flags and demotion, the same for every fitter.

:func:`errors_from_normal` is the one computation of parameter errors from
``J^T J`` at the solution: the batched fitter (both engines: the compiled
kernel returns ``J^T J`` and leaves the errors to it), the scipy fitter and
the astropy fitter (for astropy fitters that give no covariance of their
own) all call it, so scaling by the reduced chi-square, fixed and tied
parameters and singular matrices are treated alike on every path.

A converged fit is ``Status.OK`` only when every free parameter has a finite
error and the model has not collapsed.  Every fitter (batched, scipy,
astropy) ends its converged fits through :func:`store_converged`, so the
flags of :class:`parfit.status.Flag` mean the same on every path:

* ``AT_BOUND``: a free parameter is within ``1e-6`` of its own scale (the
  larger of its value and its start), or within a thousandth of its error,
  of a finite bound.  The fit stays OK.
* ``SINGULAR``: the covariance cannot be inverted (a Cholesky pivot of the
  correlation matrix below ``sqrt(10 n_free eps)``, about a condition
  number of 1e14), so some error is not finite.  The fit becomes
  ``Status.DEGENERATE``.
* ``DEGENERATE``: :meth:`parfit.models.Model.collapsed` (a zero or
  unresolved width, a width far beyond the data, a line outside the data, a
  zero amplitude).  The fit becomes ``Status.DEGENERATE``.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..status import DEMOTING_FLAGS, Flag, Status
from . import lm
from .base import BlockResult, FitBlock

__all__ = ["errors_from_normal", "sample_extent", "quality_flags", "store_converged"]


def errors_from_normal(
    model: Any,
    params: np.ndarray,
    free: np.ndarray,
    has_ties: bool,
    normal: np.ndarray,
    chi2: np.ndarray,
    n_valid: np.ndarray,
    scale: bool,
    data_scale: float | np.ndarray = 1.0,
) -> np.ndarray:
    """1-sigma errors of all parameters from ``J^T J`` at the solution.

    The covariance of the free parameters is ``(J^T J)^-1`` times the
    reduced chi-square ``chi2 / (n_valid - n_free)`` (``scale=True``, as
    astropy, lmfit and :func:`scipy.optimize.curve_fit` do), or divided by
    ``data_scale**2`` (``scale=False``, for true ``1/sigma`` weights).  The
    inverse is that of the correlation matrix (:func:`parfit.fitters.lm.cholesky_inverse`),
    so the singularity test does not depend on the units of the parameters.
    Tied parameters get ``T C T^T``, ``T`` the model's
    :meth:`~parfit.models.Model.tie_jacobian`; fixed parameters get NaN.

    Every fitter computes its errors here: :class:`~parfit.fitters.BatchedFitter`
    from the solver's ``J^T J`` (:attr:`parfit.fitters.lm.LMOutcome.normal`),
    :class:`~parfit.fitters.ScipyFitter` from the Jacobian at scipy's
    solution and :class:`~parfit.fitters.AstropyFitter` from a numerical
    Jacobian when the astropy fitter reports no covariance.

    Parameters
    ----------
    model : parfit model
    params : ndarray
        ``(n, n_params)`` fitted values.
    free : ndarray
        ``(n_params,)`` bool, the free parameters (the columns of ``normal``).
    has_ties : bool
        Propagate the covariance to tied parameters.
    normal : ndarray
        ``(n, n_free, n_free)``: ``J^T J`` of the weighted residuals divided
        by ``data_scale``.
    chi2 : ndarray
        ``(n,)`` chi-square in the same units as ``normal``.
    n_valid : ndarray
        ``(n,)`` number of samples.
    scale : bool
        Multiply the covariance by the reduced chi-square (which makes it
        independent of ``data_scale``); without, divide it by ``data_scale**2``.
    data_scale : float or ndarray
        See ``normal``.

    Returns
    -------
    ndarray
        ``(n, n_params)``; NaN for fixed parameters and wherever the
        correlation matrix is numerically singular (a Cholesky pivot below
        ``sqrt(10 * n_free * eps)``).

    Examples
    --------
    >>> import numpy as np
    >>> from parfit.models import Linear1D
    >>> normal = np.array([[[2.0, 0.0], [0.0, 8.0]]])
    >>> errors_from_normal(Linear1D(), np.zeros((1, 2)), np.array([True, True]), False,
    ...                    normal, np.array([1.0]), np.array([3]), False)
    array([[0.70710678, 0.35355339]])

    Scaled by the reduced chi-square (here ``4 / (3 - 2)``), and NaN where the
    matrix is singular (two identical columns of ``J``):

    >>> singular = np.array([[[1.0, 1.0], [1.0, 1.0]]])
    >>> errors_from_normal(Linear1D(), np.zeros((2, 2)), np.array([True, True]), False,
    ...                    np.concatenate([normal, singular]), np.array([4.0, 4.0]),
    ...                    np.array([3, 3]), True)
    array([[1.41421356, 0.70710678],
           [       nan,        nan]])
    """
    n, n_params = params.shape
    errors = np.full((n, n_params), np.nan)
    n_free = normal.shape[1]
    if n == 0 or n_free == 0:
        return errors
    with np.errstate(all="ignore"):
        diag = np.diagonal(normal, axis1=1, axis2=2)
        positive = np.all(diag > 0, axis=1) & np.all(np.isfinite(normal), axis=(1, 2))
        d = np.sqrt(np.where(diag > 0, diag, 1.0))
        corr = np.where(
            positive[:, None, None], normal / (d[:, :, None] * d[:, None, :]), np.eye(n_free)
        )
        inv_corr, pivots = lm.cholesky_inverse(corr)
        singular = ~positive | np.any(pivots <= np.sqrt(10 * n_free * np.finfo(float).eps), axis=1)
        cov = inv_corr / (d[:, :, None] * d[:, None, :])
        if scale:
            dof = n_valid - n_free
            factor = np.where(dof > 0, chi2 / np.where(dof > 0, dof, 1), np.nan)
        else:
            factor = np.broadcast_to(1.0 / np.asarray(data_scale, dtype=float) ** 2, (n,))
        cov = cov * factor[:, None, None]
        cov[singular] = np.nan
        if has_ties:
            jac = model.tie_jacobian(params)
            var = np.einsum("npf,nfg,npg->np", jac, cov, jac)
            fixed = np.array([bool(getattr(model, name).fixed) for name in model.param_names])
            var[:, fixed] = np.nan
        else:
            var = np.full((n, n_params), np.nan)
            var[:, free] = np.diagonal(cov, axis1=1, axis2=2)
        errors[...] = np.sqrt(np.where(var >= 0, var, np.nan))
    return errors


def sample_extent(block: FitBlock, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smallest and largest valid coordinate and smallest valid spacing of 1-D fits.

    Returns
    -------
    lo, hi, step : ndarray
        ``(len(rows),)``; NaN for models of more than one input; ``step`` is
        0 where a fit has fewer than two distinct valid samples.
    """
    n = len(rows)
    if len(block.x) != 1:
        nan = np.full(n, np.nan)
        return nan, nan, nan
    x = block.x[0]
    valid = block.valid[rows]
    if x.ndim == 1:
        # A shared axis: every fully valid row has the extent of the axis itself.
        lo, hi, step = (np.full(n, v) for v in _extent(x[None, :], np.isfinite(x)[None, :]))
        partial = np.flatnonzero(~np.all(valid & np.isfinite(x), axis=1))
        if len(partial):
            xs = np.broadcast_to(x, (len(partial), x.shape[-1]))
            lo[partial], hi[partial], step[partial] = _extent(xs, valid[partial])
        return lo, hi, step
    return _extent(x[rows], valid)


def _extent(x: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    valid = valid & np.isfinite(x)
    lo = np.where(valid, x, np.inf).min(axis=1)
    hi = np.where(valid, x, -np.inf).max(axis=1)
    ordered = np.sort(np.where(valid, x, np.inf), axis=1)
    with np.errstate(invalid="ignore"):
        gaps = np.diff(ordered, axis=1)
    gaps = np.where(np.isfinite(gaps) & (gaps > 0), gaps, np.inf)
    step = gaps.min(axis=1, initial=np.inf)
    return lo, hi, np.where(np.isfinite(step), step, 0.0)


def quality_flags(
    model: Any,
    block: FitBlock,
    rows: np.ndarray,
    params: np.ndarray,
    errors: np.ndarray,
    free: np.ndarray,
    extent: tuple[np.ndarray, ...] | None = None,
) -> np.ndarray:
    """:class:`~parfit.status.Flag` bits of converged fits ``rows`` of ``block``.

    Parameters
    ----------
    model : parfit model or None
        Its :meth:`~parfit.models.Model.collapsed` decides ``DEGENERATE``;
        None skips that test.
    block : parfit.fitters.FitBlock
    rows : ndarray of int
        The fits, rows of ``block``.
    params, errors : ndarray
        ``(len(rows), n_params)`` fitted values and their errors.
    free : ndarray
        ``(n_params,)`` bool.
    extent : tuple of ndarray, optional
        :func:`sample_extent` of ``rows``, when already known.

    Returns
    -------
    ndarray
        ``(len(rows),)`` uint8.
    """
    flags = np.zeros(len(rows), dtype=np.uint8)
    if not len(rows):
        return flags
    lower, upper = block.lower[rows][:, free], block.upper[rows][:, free]
    value, start = params[:, free], block.p0[rows][:, free]
    err = errors[:, free]
    with np.errstate(all="ignore"):
        near = np.maximum(
            1e-6 * np.maximum(np.abs(value), np.abs(start)),
            np.where(np.isfinite(err), 1e-3 * err, 0.0),
        )
        on_bound = (np.isfinite(lower) & (value - lower <= near)) | (
            np.isfinite(upper) & (upper - value <= near)
        )
    flags[np.any(on_bound, axis=1)] |= np.uint8(Flag.AT_BOUND)
    flags[~np.all(np.isfinite(err), axis=1)] |= np.uint8(Flag.SINGULAR)
    if model is not None and getattr(model, "n_inputs", 1) == 1:
        lo, hi, step = sample_extent(block, rows) if extent is None else extent
        flags[model.collapsed(params, lo, hi, step, free)] |= np.uint8(Flag.DEGENERATE)
    return flags


def store_converged(
    result: BlockResult,
    rows: np.ndarray,
    params: np.ndarray,
    chi2: np.ndarray,
    errors: np.ndarray,
    flags: np.ndarray,
    names: Sequence[str],
) -> None:
    """Write converged fits: ``OK``, or ``DEGENERATE`` where a flag demotes them.

    A demoted fit keeps NaN parameters and errors (as every non-OK fit) but
    its chi-square in ``statistic``, and its message names the flags and the
    values it ended at.
    """
    flags = np.asarray(flags, dtype=np.uint8)
    demote = (flags & DEMOTING_FLAGS) != 0
    good = rows[~demote]
    result.params[good] = params[~demote]
    result.errors[good] = errors[~demote]
    result.statistic[good] = chi2[~demote]
    result.status[good] = Status.OK
    assert result.flags is not None  # BlockResult.empty sets them; for mypy
    result.flags[rows] = flags
    for j in np.flatnonzero(demote):
        i = rows[j]
        why = "; ".join(
            text
            for flag, text in (
                (
                    Flag.SINGULAR,
                    "singular covariance (some parameters are not determined by the data)",
                ),
                (
                    Flag.DEGENERATE,
                    "the model collapsed (zero or unresolved width, width beyond the "
                    "data, line outside the data, or zero amplitude)",
                ),
            )
            if flags[j] & flag
        )
        values = ", ".join(f"{name}={float(v):.6g}" for name, v in zip(names, params[j]))
        result.fail(
            i, Status.DEGENERATE, f"converged to a degenerate solution: {why}; it ended at {values}"
        )
        result.statistic[i] = chi2[j]
