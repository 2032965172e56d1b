"""The block kernel: fit every pixel of one block (runs on a worker).

:func:`fit_block` takes the block's named input arrays (fitting axes
first), a :class:`BlockSpec` (the same for every block of a run) and the
block's place, and returns a :class:`~parfit.engine.fields.BlockOutput`.
A failing guess, a user model that raises or hangs (``fit_timeout``) and
bad weights all end up in the block's statuses and warnings: the kernel
itself never raises for one fit's sake.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from parfit.diagnostics import folders as diag
from parfit.engine.fields import BlockOutput, BlockPlace
from parfit.engine.heap import large_temporaries_on_heap
from parfit.engine.inputs import WorldSpec, wcs_world_values, weight_warnings
from parfit.engine.joint import dataset_statistics, fit_joint_block, statistic_argument
from parfit.engine.request import DatasetLayout
from parfit.engine.timeout import TimedOut, call_with_timeout
from parfit.fitters.base import BlockResult, FitBlock, Fitter, Row
from parfit.fitters.likelihood import LikelihoodRequest, profile_intervals, ts_values
from parfit.models.joint import JointModel
from parfit.status import Status

__all__ = [
    "BlockSpec",
    "apply_guess",
    "fit_block",
    "guess_and_fit",
    "make_block",
    "model_cubes",
    "peak_snr",
]

log = logging.getLogger(__name__)


@dataclass
class BlockSpec:
    """Everything a block task needs besides its arrays (sent once per run).

    ``parameters`` holds ``(name, value, lower, upper)`` per free parameter,
    each a float, or None where it is a per-pixel map (then the block's
    part of it is among the block's inputs as ``"<name>:value"``,
    ``"<name>:lower"`` or ``"<name>:upper"``).
    """

    model: Any
    fitter: Fitter
    fitter_kwargs: dict[str, Any]
    fit_info: Any
    order: tuple[int, ...]
    sample_shape: tuple[int, ...]
    iterating_shape: tuple[int, ...]
    world: WorldSpec
    parameters: list[tuple[str, float | None, float | None, float | None]]
    run_id: str
    guess: bool = False
    fit_timeout: float | None = None
    diagnostics: str | None = None
    diagnostics_path: str | None = None
    diagnostics_callable: Any = None
    cubes: tuple[str, ...] = ()
    #: A joint fit's datasets (their output cubes are written one by one).
    datasets: tuple[DatasetLayout, ...] = ()
    shared_x: tuple[np.ndarray, ...] = field(default=())
    keep_start: bool = False
    likelihood: LikelihoodRequest = field(default_factory=LikelihoodRequest)
    #: Fit only the pixels of the block's ``"todo"`` input (a refit pass);
    #: the others are left ``NOT_RUN``.
    todo: bool = False
    #: Skip (``Status.SKIPPED``) pixels whose peak is below this many times
    #: their robust noise (:func:`peak_snr`).
    min_snr: float | None = None
    #: Number the peaks of each kind by position after the fit
    #: (:meth:`parfit.models.Model.order_components`).
    order_components: bool = False

    @property
    def n_fit_axes(self) -> int:
        return len(self.sample_shape)

    @property
    def param_names(self) -> list[str]:
        return [entry[0] for entry in self.parameters]


def fit_block(inputs: dict[str, Any], spec: BlockSpec, place: BlockPlace) -> BlockOutput:
    """Fit every pixel of one block.

    Parameters
    ----------
    inputs : dict
        ``"data"`` (fitting axes first, then the block's iterating axes),
        optional ``"weights"``, ``"mask"`` and world arrays ``"x0"``...
        of the same shape, and the block's part of per-pixel parameter maps.
    spec : BlockSpec
    place : BlockPlace

    Returns
    -------
    BlockOutput
    """
    n_fits = place.size
    if n_fits == 0:
        return BlockOutput.failed(
            spec.param_names, place.shape, Status.NOT_RUN, bool(spec.fit_info)
        )
    block = make_block(inputs, spec, place)
    weights = block.weights
    p0 = block.p0
    active = _active_rows(inputs, spec, block)
    with large_temporaries_on_heap():
        outcome = call_with_timeout(_fit_rows, spec.fit_timeout, spec, block, active)
    extras: dict[str, np.ndarray] = {}
    if isinstance(outcome, TimedOut):
        guess_failure, result = None, _timed_out(n_fits, p0.shape[1], spec)
        extras = {name: np.full(n_fits, np.nan) for name in spec.likelihood.fields}
    else:
        guess_failure, result, extras = outcome
    i: Row  # a fit's row: an int here, and possibly a numpy integer in result.warnings
    if weights is not None:
        for i, text in weight_warnings(weights).items():
            result.warnings.setdefault(i, []).append(text)
    if guess_failure:
        for i in range(n_fits):
            result.warnings.setdefault(i, []).insert(0, guess_failure)

    n_warn = np.zeros(n_fits, dtype=np.int32)
    for i, lines in result.warnings.items():
        n_warn[i] = len(lines)
    reported = diag.report_mode(spec.diagnostics, result.status, n_warn)
    if reported.any():
        _write_folders(spec, block, result, reported, place)
    shape = place.shape
    n_params = p0.shape[1]
    output = BlockOutput(
        param_names=spec.param_names,
        params=np.asarray(result.params, dtype=np.float64).reshape(shape + (n_params,)),
        errors=np.asarray(result.errors, dtype=np.float64).reshape(shape + (n_params,)),
        statistic=np.asarray(result.statistic, dtype=np.float64).reshape(shape),
        status=np.asarray(result.status, dtype=np.int8).reshape(shape),
        nfev=np.asarray(result.nfev, dtype=np.int32).reshape(shape),
        n_warnings=n_warn.reshape(shape),
        reported=np.asarray(reported, dtype=np.int8).reshape(shape),
        flags=(
            np.zeros(shape, dtype=np.uint8)
            if result.flags is None
            else np.asarray(result.flags, dtype=np.uint8).reshape(shape)
        ),
    )
    if spec.fit_info:
        infos = np.empty(n_fits, dtype=object)
        infos[:] = result.fit_info if result.fit_info is not None else [None] * n_fits
        output.fit_info = infos.reshape(shape)
    if spec.cubes:
        output.cubes = model_cubes(spec, block, result, place)
    if spec.keep_start:
        output.start = np.asarray(block.p0, dtype=np.float64).reshape(shape + (n_params,))
    if isinstance(spec.model, JointModel):
        shares = dataset_statistics(spec.model, block, result, spec.likelihood.statistic)
        output.statistics = {d: v.reshape(shape) for d, v in shares.items()}
    output.extras = {name: extras[name].reshape(shape) for name in spec.likelihood.fields}
    return output


def make_block(inputs: dict[str, Any], spec: BlockSpec, place: BlockPlace) -> FitBlock:
    """The block's fits as rows: samples, weights, validity, world, starts and bounds."""
    data = np.asarray(inputs["data"])
    n_fits = place.size
    n_samples = math.prod(spec.sample_shape)

    def rows(a: Any) -> np.ndarray:
        a = np.broadcast_to(np.asarray(a), data.shape).reshape(n_samples, n_fits)
        return np.ascontiguousarray(a.T, dtype=np.float64)

    y = rows(data)
    valid = np.isfinite(y)
    weights = None
    if "weights" in inputs:
        weights = rows(inputs["weights"])
        valid &= np.isfinite(weights) & (weights > 0)
    if "mask" in inputs:
        valid &= ~(rows(inputs["mask"]) != 0)
    x = _world_rows(inputs, spec, place, rows)
    if spec.world.kind != "shared":
        for xk in x:
            valid &= np.isfinite(xk)
    p0, lower, upper = _start(inputs, spec, n_fits)
    return FitBlock(
        x=x,
        y=y,
        weights=weights,
        valid=valid,
        p0=p0,
        lower=lower,
        upper=upper,
        sample_shape=spec.sample_shape,
    )


def _world_rows(inputs: dict[str, Any], spec: BlockSpec, place: BlockPlace, rows: Any) -> tuple:
    """The block's world coordinates: shared 1-D arrays, or one row per fit."""
    world = spec.world
    if world.kind == "shared":
        return spec.shared_x
    if world.kind == "nd":
        return tuple(rows(inputs[f"x{k}"]) for k in range(len(spec.sample_shape)))
    # A WCS: world values of every sample of the block, from its pixel indices.
    location = [(0, n) for n in spec.sample_shape] + [
        (o, o + n) for o, n in zip(place.offsets, place.shape)
    ]
    grids = np.meshgrid(*[np.arange(a, b) for a, b in location], indexing="ij")
    index: list[Any] = [None] * len(spec.order)
    for k, axis in enumerate(spec.order):
        index[axis] = grids[k]
    values = wcs_world_values(world.wcs, index)
    return tuple(rows(np.asarray(values[i], dtype=np.float64)) for i in world.wcs_world_index)


def _start(inputs: dict[str, Any], spec: BlockSpec, n_fits: int) -> tuple[np.ndarray, ...]:
    """Starting values, lower and upper bounds of the block's fits, ``(n_fits, n_params)``."""
    columns: list[list[np.ndarray]] = [[], [], []]
    for name, *values in spec.parameters:
        for k, (what, value) in enumerate(zip(("value", "lower", "upper"), values)):
            if value is None:
                part = np.asarray(inputs[f"{name}:{what}"], dtype=np.float64).reshape(n_fits)
                columns[k].append(part)
            else:
                columns[k].append(np.full(n_fits, value))
    p0, lower, upper = (np.stack(c, axis=1) if c else np.zeros((n_fits, 0)) for c in columns)
    return p0, lower, upper


def apply_guess(model: Any, block: FitBlock) -> str | None:
    """Replace ``block.p0`` by per-fit guesses; return a warning text if that failed.

    A failing guess never stops the block: its fits start from the model's
    values and each gets the explanation among its warnings.
    """
    try:
        with np.errstate(all="ignore"):
            guessed = model.guess(*block.x, y=block.y, valid=block.valid, start=block.p0)
    except Exception as exc:  # a user model's _guess may raise anything
        return (
            f"initial='guess' failed ({type(exc).__name__}: {exc}); the fit started "
            f"from the model's values"
        )
    # Keep fits inside the bounds of this block (they may be per-pixel maps).
    block.p0 = np.clip(guessed, block.lower, block.upper)
    return None


def peak_snr(y: np.ndarray, valid: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Each row's peak over its robust noise: what ``min_snr`` compares.

    The peak is the largest deviation from the row's median, of either
    sign (an absorption line counts as an emission line does).  The noise
    is the row's own where ``weights`` (``1/sigma``) are given: the peak
    is then the largest ``|y - median| * weight``.  Without weights it is
    estimated from the differences of neighbouring valid samples,
    ``1.4826 * median(|diff|) / sqrt(2)``, which a line spanning several
    samples hardly moves.  A row with zero noise has an infinite ratio
    unless it is constant (0); rows without valid samples give NaN.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> x = np.arange(200.0)
    >>> noise = rng.normal(0, 1.0, (2, 200))
    >>> y = noise + np.array([[0.0], [12.0]]) * np.exp(-0.5 * ((x - 100) / 4) ** 2)
    >>> snr = peak_snr(y, np.ones_like(y, dtype=bool))
    >>> bool(snr[0] < 4), bool(snr[1] > 10)
    (True, True)
    """
    valid = np.asarray(valid, dtype=bool)
    count = valid.sum(axis=1)
    # Each row's valid samples first, in order (NaN after them): the medians,
    # maxima and neighbouring differences of every row at once.
    order = np.argsort(~valid, axis=1, kind="stable")
    first = np.arange(y.shape[1])[None, :] < count[:, None]
    rows = np.where(first, np.take_along_axis(y, order, axis=1), np.nan)
    with (
        warnings.catch_warnings(action="ignore", category=RuntimeWarning),  # all-NaN rows
        np.errstate(invalid="ignore", divide="ignore"),
    ):
        dev = np.abs(rows - np.nanmedian(rows, axis=1)[:, None])
        if weights is not None:
            w = np.where(first, np.take_along_axis(weights, order, axis=1), np.nan)
            out = np.nanmax(dev * w, axis=1)
        else:
            peak = np.nanmax(dev, axis=1)
            steps = np.abs(np.diff(rows, axis=1))
            noise = np.where(count > 1, 1.4826 * np.nanmedian(steps, axis=1) / math.sqrt(2.0), 0.0)
            out = np.where(
                noise > 0,
                peak / np.where(noise > 0, noise, 1.0),
                np.where(peak > 0, np.inf, 0.0),
            )
    return np.where(count > 0, out, np.nan)


def _active_rows(inputs: dict[str, Any], spec: BlockSpec, block: FitBlock) -> np.ndarray:
    """Status per row: 0 for rows to fit, else the status they get unfitted.

    ``NOT_RUN`` for rows outside a refit pass's ``todo``; ``SKIPPED`` for
    rows whose :func:`peak_snr` is below ``spec.min_snr``.
    """
    n = block.n_fits
    status = np.zeros(n, dtype=np.int8)
    if spec.todo:
        todo = np.asarray(inputs["todo"]).reshape(n) != 0
        status[~todo] = Status.NOT_RUN
    if spec.min_snr is not None:
        rows = np.flatnonzero(status == 0)
        with np.errstate(all="ignore"):
            snr = peak_snr(
                block.y[rows],
                block.valid[rows],
                None if block.weights is None else block.weights[rows],
            )
        # NaN (no valid sample) is left to the fitter, which says NO_VALID_DATA.
        status[rows[snr < spec.min_snr]] = Status.SKIPPED
    return status


def _fit_rows(
    spec: BlockSpec, block: FitBlock, unfitted: np.ndarray
) -> tuple[str | None, BlockResult, dict[str, np.ndarray]]:
    """:func:`_guess_and_fit` of the rows whose ``unfitted`` status is 0; the others keep it."""
    rows = np.flatnonzero(unfitted == 0)
    if len(rows) == block.n_fits:
        return guess_and_fit(spec, block)
    n_params = block.p0.shape[1]
    result = BlockResult.empty(block.n_fits, n_params)
    result.status[:] = unfitted
    if spec.fit_info:
        result.fit_info = [None] * block.n_fits
    extras = {name: np.full(block.n_fits, np.nan) for name in spec.likelihood.fields}
    skipped = np.flatnonzero(unfitted == Status.SKIPPED)
    for row in skipped:
        result.messages[int(row)] = (
            f"skipped: the peak is below min_snr={spec.min_snr:g} times the robust noise"
        )
    if not len(rows):
        return None, result, extras
    part = block.take(rows)
    guess_failure, fitted, found = guess_and_fit(spec, part)
    block.p0[rows] = part.p0  # the starts used (after the guesses), for keep_start
    for name in ("params", "errors", "statistic", "status", "nfev"):
        getattr(result, name)[rows] = getattr(fitted, name)
    if fitted.flags is not None and result.flags is not None:
        result.flags[rows] = fitted.flags
    for k, row in enumerate(rows):
        i = int(row)
        if k in fitted.messages:
            result.messages[i] = fitted.messages[k]
        if k in fitted.warnings:
            result.warnings[i] = fitted.warnings[k]
        if fitted.fit_info is not None and result.fit_info is not None:
            result.fit_info[i] = fitted.fit_info[k]
    for name, values in found.items():
        extras[name][rows] = values
    return guess_failure, result, extras


def guess_and_fit(
    spec: BlockSpec, block: FitBlock
) -> tuple[str | None, BlockResult, dict[str, np.ndarray]]:
    """The guesses (with ``initial="guess"``), the fit of one block, its TS and profiles."""
    guess_failure = apply_guess(spec.model, block) if spec.guess else None
    result = _fit(spec, spec.model, block, spec.fit_info)
    if spec.order_components and hasattr(spec.model, "order_components"):  # not astropy's
        spec.model.order_components(
            spec.param_names, result.params, result.errors, lower=block.lower, upper=block.upper
        )
    return guess_failure, result, likelihood_maps(spec, block, result)


def _fit(spec: BlockSpec, model: Any, block: FitBlock, fit_info: Any = False) -> BlockResult:
    """``model`` fitted to ``block`` by the run's fitter, with its options and statistic.

    A joint model goes through :func:`~parfit.engine.joint.fit_joint_block`
    (pixels lacking a dataset apart).
    """
    statistic = spec.likelihood.statistic
    if isinstance(model, JointModel):
        return fit_joint_block(spec.fitter, model, block, fit_info, spec.fitter_kwargs, statistic)
    return spec.fitter.fit_block(
        model,
        block,
        fit_info=fit_info,
        fitter_kwargs=spec.fitter_kwargs,
        **statistic_argument(statistic),
    )


def likelihood_maps(spec: BlockSpec, block: FitBlock, result: BlockResult) -> dict[str, np.ndarray]:
    """The block's TS (``null``) and profile intervals (``profile``), as the spec asks.

    Every refit goes through the run's fitter with its options and statistic
    (:func:`_fit`); the flags they raise (``RETRIED``, ``LIMIT_AT_BOUND``) are
    added to ``result``.
    """
    asked = spec.likelihood
    extras: dict[str, np.ndarray] = {}
    if not asked.fields:
        return extras
    fit = functools.partial(_fit, spec)

    with np.errstate(all="ignore"):
        if asked.null:
            extras.update(ts_values(fit, spec.model, block, result, dict(asked.null)))
        if asked.profile:
            profiler = getattr(spec.fitter, "profile_block", None)
            if profiler is not None:  # a fitter with its own profiles (MINOS)
                found = profiler(
                    spec.model,
                    block,
                    result,
                    asked.profile,
                    asked.n_sigma,
                    asked.n_sigma_ul,
                    statistic=asked.statistic,
                    fitter_kwargs=spec.fitter_kwargs,
                )
            else:
                found = profile_intervals(
                    fit, spec.model, block, result, asked.profile, asked.n_sigma, asked.n_sigma_ul
                )
            flags = found.pop("flags")
            if result.flags is not None:
                result.flags |= flags
            extras.update(found)
    return extras


def _timed_out(n_fits: int, n_params: int, spec: BlockSpec) -> BlockResult:
    """The result of a block abandoned after ``spec.fit_timeout`` seconds."""
    result = BlockResult.empty(n_fits, n_params)
    message = (
        f"fitting the block holding this fit took longer than fit_timeout="
        f"{spec.fit_timeout:g} s and was abandoned (a model that hangs?); raise "
        f"fit_timeout, or reduce chunk_n_max to give each block less work"
    )
    for i in range(n_fits):
        result.fail(i, Status.TIMEOUT, message)
    if spec.fit_info:
        result.fit_info = [None] * n_fits
    log.warning(
        "a block of %d fits ran past fit_timeout=%g s; its fits are marked TIMEOUT",
        n_fits,
        spec.fit_timeout,
    )
    return result


def _write_folders(
    spec: BlockSpec, block: FitBlock, result: BlockResult, reported: np.ndarray, place: BlockPlace
) -> None:
    assert spec.diagnostics_path is not None
    for i in np.flatnonzero(reported):
        index = np.add(np.unravel_index(i, place.shape), place.offsets)
        name = diag.folder_name([int(k) for k in index], spec.iterating_shape)
        args: tuple = ()
        if spec.diagnostics_callable is not None:
            ok = result.status[i] == Status.OK
            values = result.params[i]
            # A joint fit lacking a dataset holds NaN for that dataset's own parameters.
            blank = ~np.isfinite(values)
            values = np.where(blank, block.p0[i], values)
            fitted = spec.fitter.model_with_values(spec.model, values) if ok else None
            world = tuple(
                np.reshape(xk if xk.ndim == 1 else xk[i], spec.sample_shape) for xk in block.x
            )
            w = None if block.weights is None else block.weights[i].reshape(spec.sample_shape)
            args = (world, block.y[i].reshape(spec.sample_shape), w, fitted, spec.fitter_kwargs)
            if spec.datasets:
                args = _by_dataset(spec, args, blank)
        diag.write_fit_folder(
            spec.diagnostics_path,
            name,
            spec.run_id,
            message=result.messages.get(i),
            warnings=result.warnings.get(i),
            callable_=spec.diagnostics_callable,
            callable_args=args,
        )


def _by_dataset(spec: BlockSpec, args: tuple, blank: np.ndarray) -> tuple:
    """A joint fit's callable arguments split by dataset: ``{dataset: ...}`` each.

    World, data and weights come in each dataset's own sample shape; the
    model is each dataset's fitted model (None where the fit failed, or for
    a dataset without valid samples, whose parameters are ``blank``).
    """
    world, y, w, fitted, kwargs = args
    out_world, out_y, out_w = {}, {}, {}
    for d in spec.datasets:
        part = spec.model.sample_slice(d.name)
        out_world[d.name] = tuple(np.reshape(xk[part], d.sample_shape) for xk in world)
        out_y[d.name] = np.reshape(y[part], d.sample_shape)
        out_w[d.name] = None if w is None else np.reshape(w[part], d.sample_shape)
    models = None
    if fitted is not None:
        models = {
            d.name: None if blank[spec.model.param_slice(d.name)].any() else member
            for d, member in zip(spec.datasets, fitted.members.values())
        }
    return (out_world, out_y, out_w, models, kwargs)


def model_cubes(
    spec: BlockSpec, block: FitBlock, result: BlockResult, place: BlockPlace
) -> dict[str, np.ndarray]:
    """The best-fit model (and residual) of a block, in the input's axis order.

    Failed fits give NaN; the residual is ``data - model`` (NaN where the data
    are).
    """
    with np.errstate(all="ignore"):
        try:
            values = spec.model.evaluate(*block.x, result.params)
        except Exception:  # a model failing on NaN rows: evaluate fit by fit
            values = np.full(block.y.shape, np.nan)
            for i in np.flatnonzero(result.status == Status.OK):
                xs = tuple(xk if xk.ndim == 1 else xk[i] for xk in block.x)
                values[i] = spec.model.evaluate(*xs, result.params[i : i + 1])[0]
    values = np.where((result.status == Status.OK)[:, None], values, np.nan)
    out = {}
    for name in spec.cubes:
        flat = values if name == "model" else block.y - values
        if not spec.datasets:
            out[name] = _in_input_order(flat, place.shape, spec.sample_shape, spec.order)
            continue
        for dataset in spec.datasets:  # each in its own layout, as "<cube>.<dataset>"
            part = flat[:, spec.model.sample_slice(dataset.name)]
            out[f"{name}.{dataset.name}"] = _in_input_order(
                part, place.shape, dataset.sample_shape, dataset.order
            )
    return out


def _in_input_order(
    flat: np.ndarray, shape: tuple[int, ...], sample_shape: tuple[int, ...], order: tuple[int, ...]
) -> np.ndarray:
    """Rows of samples ``(n_fits, n_samples)`` as the block of a cube in the input's axis order."""
    n_iter = len(shape)
    arr = flat.reshape(shape + sample_shape)
    arr = np.moveaxis(arr, tuple(range(n_iter, arr.ndim)), tuple(range(len(sample_shape))))
    return np.transpose(arr, np.argsort(order))
