"""Starts shared by every fit: ``initial="mean"`` (a fit of the mean spectrum), and ``min_snr``.

``initial="mean"`` fits the mean spectrum of the valid pixels (or of
``initial_region``) once, from its guess, and starts every pixel from that
fit: a start near the truth for cubes whose lines sit at one place, where a
start far off would lose most pixels.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import warnings
from typing import Any

import numpy as np

from parfit.engine.request import FitRequest
from parfit.errors import InputError, InputTypeError
from parfit.fitters.likelihood import LikelihoodRequest
from parfit.status import Status

__all__ = ["check_min_snr", "check_region", "mean_spectrum", "mean_start"]

log = logging.getLogger(__name__)


def check_min_snr(min_snr: Any) -> float | None:
    """``min_snr`` checked: None or a positive finite number.

    Examples
    --------
    >>> check_min_snr(3)
    3.0
    >>> check_min_snr(-1)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    parfit.errors.InputError: min_snr must be None or a positive number (peak over robust
    noise); got -1
    """
    if min_snr is None:
        return None
    if (
        isinstance(min_snr, (bool, np.bool_))
        or not isinstance(min_snr, numbers.Real)
        or not math.isfinite(min_snr)
        or min_snr <= 0
    ):
        raise InputError(
            f"min_snr must be None or a positive number (peak over robust noise); got {min_snr!r}"
        )
    return float(min_snr)


def check_region(region: Any, shape: tuple[int, ...]) -> None:
    """Refuse an ``initial_region`` that is not a bool map of the iterating ``shape``."""
    arr = np.asarray(region)
    if arr.dtype != bool:
        raise InputTypeError(
            f"initial_region must be a bool array (True: pixels whose mean spectrum gives the "
            f"start); got dtype {arr.dtype}"
        )
    try:
        np.broadcast_to(arr, shape)
    except ValueError:
        raise InputError(
            f"initial_region has shape {arr.shape}, which does not broadcast to the shape of "
            f"the maps {shape}"
        ) from None
    if not arr.any():
        raise InputError("initial_region selects no pixel; it needs at least one True")


def _arranged(request: FitRequest) -> tuple[Any, Any]:
    """The data and its validity as lazy ``(n_samples, n_fits)`` arrays."""
    import dask.array as da

    sources = request.sample_sources()
    shape = request.cube.shape

    def arranged(arr: Any) -> Any:
        arr = da.broadcast_to(da.asarray(arr), shape)
        arr = da.transpose(arr, request.order)
        return arr.reshape((request.n_samples, request.n_fits))

    data = arranged(sources["data"]).astype(np.float64)
    valid = da.isfinite(data)
    if "weights" in sources:
        w = arranged(sources["weights"])
        valid &= da.isfinite(w) & (w > 0)
    if "mask" in sources:
        valid &= arranged(sources["mask"]) == 0
    if request.world.kind == "nd":
        for k in range(len(request.fitting_axes)):
            valid &= da.isfinite(arranged(sources[f"x{k}"]))
    return data, valid


def valid_counts(request: FitRequest, compute_kwargs: dict[str, Any] | None = None) -> np.ndarray:
    """Valid samples of every pixel (a map of the iterating shape); reads the cube once.

    ``compute_kwargs`` (the run's scheduler) go to ``dask.compute``.
    """
    import dask

    _, valid = _arranged(request)
    (counts,) = dask.compute(valid.sum(axis=0), **(compute_kwargs or {}))
    return np.asarray(counts).reshape(request.iterating_shape)


def mean_spectrum(
    request: FitRequest, region: Any = None, compute_kwargs: dict[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """The mean of the valid samples over the pixels of ``region`` (all if None).

    Returns the mean (``n_samples``, NaN where no pixel has a valid sample),
    whether each sample has one, and the number of pixels averaged (those
    with at least one valid sample).  Lazy cubes are read once, on the
    scheduler of ``compute_kwargs`` (``dask.compute`` keywords).
    """
    import dask.array as da

    data, valid = _arranged(request)
    if region is not None:
        chosen = np.broadcast_to(np.asarray(region, dtype=bool), request.iterating_shape)
        valid &= da.asarray(chosen.reshape(1, -1))
    total = da.where(valid, data, 0.0).sum(axis=1)
    count = valid.sum(axis=1)
    pixels = valid.any(axis=0).sum()
    total, count, pixels = da.compute(total, count, pixels, **(compute_kwargs or {}))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return mean, count > 0, int(pixels)


def mean_start(
    request: FitRequest, region: Any = None, compute_kwargs: dict[str, Any] | None = None
) -> tuple[FitRequest, dict[str, Any]]:
    """``request`` starting every fit from a fit of its mean spectrum; and what was done.

    The mean spectrum (:func:`mean_spectrum`) is fitted by the run's fitter
    and statistic, from the model's guess where it can guess (else from its
    values: a model that cannot guess gains from the mean spectrum's higher
    signal to noise only, not a better start), on the world coordinates of
    the region's middle pixel where they vary between pixels.  If that fit
    fails, a warning says so and the fits start from its guess (or the
    model's values).

    The average is computed on the run's scheduler (``compute_kwargs``).
    Returns the new request (scalar starts, clipped into per-pixel bounds
    where there are some) and a record: ``pixels`` averaged, ``status`` of
    the mean fit, ``values`` (the starts by name).
    """
    from parfit.engine import kernel
    from parfit.engine.execute import block_spec, pixel_block

    mean, valid, pixels = mean_spectrum(request, region, compute_kwargs)
    if region is None:
        middle = tuple(n // 2 for n in request.iterating_shape)
    else:
        chosen = np.argwhere(np.broadcast_to(np.asarray(region, bool), request.iterating_shape))
        middle = tuple(int(k) for k in chosen[len(chosen) // 2])
    block = pixel_block(request, middle)
    block.y = mean[None, :].copy()
    block.valid = valid[None, :].copy()
    block.weights = None
    block.p0 = np.array(
        [[np.nanmean(v) if np.ndim(v) else v for _, v, _, _ in request.parameters]], dtype=float
    )
    block.lower = np.array([[np.nanmax(lo) for _, _, lo, _ in request.parameters]], dtype=float)
    block.upper = np.array([[np.nanmin(hi) for _, _, _, hi in request.parameters]], dtype=float)
    block.p0 = np.clip(block.p0, block.lower, block.upper)
    spec = dataclasses.replace(
        block_spec(request),
        guess=bool(getattr(request.model, "can_guess", False)),
        diagnostics=None,
        fit_info=False,
        likelihood=LikelihoodRequest(statistic=request.likelihood.statistic),
        min_snr=None,
        todo=False,
    )
    with np.errstate(all="ignore"):
        _, result, _ = kernel.guess_and_fit(spec, block)
    status = Status(int(result.status[0]))
    if status == Status.OK:
        values = result.params[0]
    else:
        values = block.p0[0]  # the mean spectrum's guess, or the model's values
        message = result.messages.get(0) or status.name
        instead = "its guess" if spec.guess else "the model's values (it cannot guess)"
        warnings.warn(
            f"initial='mean': the fit of the mean spectrum of {pixels} pixels ended "
            f"{status.name} ({message.splitlines()[-1] if message else ''}); every fit "
            f"starts from {instead} instead",
            RuntimeWarning,
            stacklevel=4,
        )
    parameters = []
    for (name, _, lo, hi), value in zip(request.parameters, values, strict=True):
        start = np.clip(float(value), lo, hi) if (np.ndim(lo) or np.ndim(hi)) else float(value)
        if not np.ndim(start):
            start = float(min(max(start, float(lo)), float(hi)))
        parameters.append((name, start, lo, hi))
    record = {
        "pixels": pixels,
        "status": status.name,
        "values": {name: float(v) for name, v in zip(request.param_names, values, strict=True)},
    }
    log.info("initial='mean': fitted the mean spectrum of %d pixels (%s)", pixels, status.name)
    return dataclasses.replace(request, parameters=parameters, guess=False), record
