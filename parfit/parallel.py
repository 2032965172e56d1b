"""``parallel_fit``: plan the blocks, dispatch them to dask, assemble maps.

Layering (as xarray's ``apply_ufunc``): :func:`parallel_fit` checks and
normalises every argument at the edge, builds one dask graph in which each
block of the cube is one task, and assembles the computed blocks into a
:class:`~parfit.result.FitResult`.  The block kernel :func:`_fit_block`
flattens a block to ``(n_fits, n_samples)`` and hands it to the fitter.
"""

import contextlib
import dataclasses
import logging
import math
import numbers
import os
import uuid

import numpy as np

from . import diagnostics as diag
from . import output as output_mod
from ._streaming import (
    _check_output,
    _check_output_cubes,
    _check_store,
    _close_store,
    _open_store,
    _store_tasks,
)
from ._timeout import TimedOut, call_with_timeout
from .errors import InputError, InputTypeError
from .fitters import AstropyFitter, get_fitter
from .fitters.base import BlockResult, FitBlock
from .io import (
    normalise_cube,
    normalise_fitting_axes,
    normalise_world,
    wcs_world_values,
    weight_warnings,
)
from .progress import BlockFailure, FitProgress, run_with_progress
from .result import FitResult
from .status import Status
from .units import prepare_units

__all__ = ["parallel_fit"]

log = logging.getLogger(__name__)

_SCHEDULER_NAMES = (
    "default",
    "synchronous",
    "sync",
    "single-threaded",
    "threads",
    "threading",
    "processes",
    "multiprocessing",
)

#: Accepted values of ``initial=``.
INITIAL_VALUES = ("model", "guess")

# Fields packed per fit by the block kernel, after params and errors (the order of
# output.field_specs).
_EXTRA_FIELDS = ("statistic", "status", "nfev", "n_warnings", "reported", "flags")


def parallel_fit(
    model,
    data,
    *,
    fitter=None,
    world=None,
    fitting_axes=0,
    initial=None,
    weights=None,
    mask=None,
    data_unit=None,
    chunk_n_max=500,
    scheduler=None,
    diagnostics=None,
    diagnostics_path=None,
    diagnostics_callable=None,
    fitter_kwargs=None,
    progress=False,
    overwrite=False,
    preserve_native_chunks=False,
    equivalencies=None,
    fit_info=False,
    output=None,
    resume=False,
    output_cubes=None,
    fit_timeout=None,
):
    """Fit ``model`` independently to every pixel of an N-dimensional cube.

    The axes of ``data`` are either *fitting axes* (the model's inputs, e.g.
    the spectral axis of a spectral cube) or *iterating axes* (one fit per
    position along them, e.g. the two sky axes).  The cube is split into
    blocks of at most ``chunk_n_max`` fits, each block is fitted in one dask
    task, and the results come back as parameter maps with the shape of the
    iterating axes.  The keywords are those of astropy's
    ``astropy.modeling.fitting.parallel_fit_dask``.

    Parameters
    ----------
    model : parfit model, astropy.modeling.Model or function
        The model, holding the starting values.  Scalar parameter values are
        shared by every fit; array-valued parameters (shape broadcastable to
        the iterating axes) give per-pixel starting values, as do array
        bounds.  A plain vectorised function ``f(x, a=1.0, b=2.0)`` (or
        ``f(x, y, ...)`` for 2-D fits) is a model whose parameters are its
        arguments after the inputs, starting from their defaults (see
        :func:`parfit.models.model_from_function`).
    data : array_like or path
        The cube: numpy or dask array, astropy ``Quantity`` or ``NDData``
        (its wcs, unit and uncertainty are used where the matching
        argument is None, as astropy does; its mask always counts), numpy
        masked array (its mask counts), xarray
        ``DataArray`` (its coordinates give ``world`` and ``fitting_axes``
        may be dimension names), a zarr array, or the path of a FITS,
        zarr or netCDF file, opened lazily by :func:`parfit.io.open_cube`.
        Integer data are fitted as float64.
    fitter : None, str, parfit fitter or astropy fitter instance, optional
        None (or ``"batched"``) uses parfit's batched trust-region reflective
        solver (:class:`~parfit.fitters.BatchedFitter`, see the "Solver" docs
        page); ``"trf"``, ``"dogbox"`` or ``"lm"`` a per-fit
        :class:`~parfit.fitters.ScipyFitter`; an
        astropy fitter instance (such as ``TRFLSQFitter()``) is called once
        per fit, exactly as ``parallel_fit_dask`` does (this requires an
        astropy model).
    world : None, tuple of array_like, or astropy WCS, optional
        World coordinates of the fitting axes.  None: the DataArray
        coordinates, or pixel indices.  A tuple: one array per fitting axis
        **in the order of** ``fitting_axes`` (as astropy); each 1-D with the
        length of its axis, or broadcastable to the data shape (coordinates
        that vary between pixels).  Quantities give units.  A WCS (APE 14)
        for the whole cube: world values are computed for every pixel.
    fitting_axes : int, str or tuple, optional
        The axis or axes the model is fitted along (default 0).  Negative
        values count from the end; strings name DataArray dimensions.  Two
        axes fit a 2-D model to every image plane.
    weights : array_like or astropy NDUncertainty, optional
        ``1/sigma`` weights broadcastable to ``data``; an uncertainty is
        converted to ``1/std`` by its kind and unit, and ``weights=``
        replaces an NDData's uncertainty.  Samples with zero or NaN weight
        are left out; infinite (a zero uncertainty) or negative weights are
        refused in memory, and left out with a warning to each fit they
        touch in a dask array.
    mask : array_like of bool, optional
        True (or any nonzero integer) leaves a sample out.  Every mask
        counts, as a union: ``mask=``, the mask of a masked ``data``, an
        NDData mask, NaN and inf data (see the "What counts as a valid
        sample" section of the quickstart).
    data_unit : astropy unit, optional
        The unit of ``data`` when it is not a Quantity.
    chunk_n_max : int, optional
        Largest number of fits in one dask task (default 500).
    scheduler : None, str or distributed.Client, optional
        None uses the active dask.distributed ``Client`` if there is one,
        else dask's default; ``"default"`` the same; ``"synchronous"``,
        ``"threads"`` or ``"processes"``; or a ``Client``.
    diagnostics : {None, "error", "error+warn", "all"}, optional
        Which fits get a folder under ``diagnostics_path``: failed ones,
        failed ones and those that warned, or all (fits without any valid
        sample never do).  See :mod:`parfit.diagnostics`.
    diagnostics_path : str or path-like, optional
        Folder for the per-fit folders and ``manifest.csv``.
    diagnostics_callable : callable, optional
        Called for each reported fit as ``f(path, world, data, weights,
        model, fitter_kwargs)``, where ``model`` is the fitted model (None if
        the fit failed).  An exception inside it is written to
        ``callable_error.log`` in that fit's folder.
    fitter_kwargs : dict, optional
        Extra keyword arguments for every fitter call (options of
        :func:`scipy.optimize.least_squares`, or of the astropy fitter).
    progress : bool, optional
        Show a progress bar (fits done, fits/s, time left) while fitting, on
        local schedulers and on a ``distributed.Client`` alike, and log a
        line to the ``parfit.progress`` logger every minute and at the end.
    overwrite : bool, optional
        Allow ``diagnostics_path`` to hold diagnostics of an earlier run
        (those folders are removed first), and ``output`` to replace an
        earlier store.  Only what parfit wrote is ever removed, and only
        once every argument has been checked.
    preserve_native_chunks : bool, optional
        Keep the dask chunks of ``data`` along the iterating axes instead of
        rechunking to ``chunk_n_max`` (its fitting axes must be unchunked).
    equivalencies : list, optional
        Unit equivalencies used when converting world coordinates and
        parameters.
    initial : {None, "model", "guess"}, optional
        Where the fits start.  None or ``"model"``: the model's parameter
        values (scalars shared by every pixel, or per-pixel maps).
        ``"guess"``: each pixel's own estimate from its data
        (:meth:`parfit.models.Model.guess`: peak position, height and width,
        baselines by least squares); fixed and tied parameters keep the
        model's values and guesses are clipped into the bounds.  Needs a
        parfit model (or an astropy model fitted by a parfit fitter) that can
        guess.
    fit_info : bool, str or sequence of str, optional
        With an astropy fitter (or a scipy one), keep each fit's
        ``fit_info`` (all of it, or the named entries) in
        ``FitResult.fit_info``, an object array of the iterating shape.

    output : str or path-like, optional
        A zarr store to stream the maps to.  Every block task writes its
        part of the maps (parameters, errors, statistic, status, nfev) as
        soon as it is fitted, then records the block as done; the maps
        never travel back through the scheduler.  The store's attributes
        hold the parfit version, the starting model, the options and a
        fingerprint of the input.  An existing store is refused unless
        ``overwrite=True`` (which replaces only a store parfit made) or
        ``resume=True``.  See :mod:`parfit.output`.
    output_cubes : sequence of {"model", "residual"}, optional
        With ``output``: also stream the best-fit model cube and/or the
        residual cube (data minus model) to the store, shaped and ordered
        like the input and chunked like the blocks (NaN where a fit failed).
    resume : bool, optional
        With ``output``: if the store exists, compute only the blocks it
        does not record as done (after an interruption) and return the
        whole result; refused if the store was made from another input or
        other options.  If it does not exist, start a new run.
    fit_timeout : float, optional
        Seconds that fitting one block (at most ``chunk_n_max`` fits, with
        their guesses) may take.  A block still busy after that, such as
        one whose user model hangs, is abandoned: its fits get
        ``Status.TIMEOUT`` and the run goes on with the other blocks, on
        every scheduler.  Give it ample room (many times the usual time of
        a block).  None (the default) waits for ever.

    Returns
    -------
    FitResult
        Parameter maps, 1-sigma errors, chi-square, status codes, number of
        model evaluations, quality flags, and ``.model``: the model (same kind as given)
        holding the fitted maps.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, always before any fit is dispatched.

    Examples
    --------
    >>> import numpy as np
    >>> import parfit
    >>> from parfit.models import Gaussian1D
    >>> x = np.linspace(-5, 5, 40)
    >>> amplitude = np.arange(1.0, 7.0).reshape(2, 3)
    >>> cube = amplitude[None] * np.exp(-0.5 * (x[:, None, None] - 0.3) ** 2)
    >>> result = parfit.parallel_fit(Gaussian1D(1.0, 0.0, 0.8), cube, world=(x,),
    ...                              fitting_axes=0, scheduler="synchronous")
    >>> np.round(result.parameters["amplitude"], 6)
    array([[1., 2., 3.],
           [4., 5., 6.]])
    >>> bool(result.success.all())
    True
    """
    # --- arguments that need nothing else --------------------------------
    chunk_n_max = _check_chunk_n_max(chunk_n_max)
    _check_bool("progress", progress)
    _check_bool("preserve_native_chunks", preserve_native_chunks)
    fit_timeout = _check_timeout(fit_timeout)
    diag.check_diagnostics_args(diagnostics, diagnostics_path, diagnostics_callable)
    _check_scheduler(scheduler)
    if fitter_kwargs is not None and not isinstance(fitter_kwargs, dict):
        raise InputTypeError(
            f"fitter_kwargs must be a dict or None; got {type(fitter_kwargs).__name__}"
        )
    fitter_kwargs = dict(fitter_kwargs or {})
    if initial is not None and (not isinstance(initial, str) or initial not in INITIAL_VALUES):
        raise InputError(f"initial must be None, 'model' or 'guess'; got {initial!r}")
    guess = initial == "guess"
    # overwrite is checked there, with or without output (it also governs
    # diagnostics_path).
    output = _check_output(output, resume, fit_info, preserve_native_chunks, overwrite)
    output_cubes = _check_output_cubes(output_cubes, output)
    if isinstance(fit_info, str):
        fit_info = (fit_info,)  # one name, as astropy documents
    if not (fit_info is False or fit_info is True or _is_str_sequence(fit_info)):
        raise InputTypeError(
            f"fit_info must be True, False or a sequence of names; got {fit_info!r}"
        )

    # --- data, axes, model, fitter, world ---------------------------------
    cube = normalise_cube(data, weights=weights, mask=mask, data_unit=data_unit, world=world)
    fitting_axes = normalise_fitting_axes(fitting_axes, cube.ndim, cube.dims)
    shape = cube.shape
    iterating_axes = tuple(a for a in range(cube.ndim) if a not in fitting_axes)
    iterating_shape = tuple(shape[a] for a in iterating_axes)
    fitting_shape = tuple(shape[a] for a in fitting_axes)
    for a, n in zip(fitting_axes, fitting_shape):
        if n == 0:
            raise InputError(f"data has length 0 along fitting axis {a}; there is nothing to fit")

    model = _function_as_model(model, len(fitting_axes))
    kind = _model_kind(model)
    fitter_obj = get_fitter(fitter)
    if isinstance(fitter_obj, AstropyFitter) and kind != "astropy":
        raise InputTypeError(
            f"fitter is an astropy fitter ({type(fitter_obj.fitter).__name__}), which needs an "
            f"astropy model, but model is a parfit {type(model).__name__}; use a parfit "
            f"fitter (fitter=None, 'trf', 'dogbox' or 'lm') with parfit models"
        )
    fit_model = model
    # An astropy fitter fits the astropy model as it is (checked above that
    # the model is an astropy one); parfit fitters meet astropy models as
    # their parfit equivalents.
    native_astropy = isinstance(fitter_obj, AstropyFitter)
    translated = kind == "astropy" and not native_astropy
    if translated:
        from .models.astropy_bridge import from_astropy

        fit_model = from_astropy(model)
    n_inputs = int(fit_model.n_inputs)
    if n_inputs != len(fitting_axes):
        raise InputError(
            f"model takes {n_inputs} input(s) ({n_inputs}-D model) but fitting_axes="
            f"{fitting_axes} names {len(fitting_axes)} axis/axes; give one fitting axis per "
            f"model input"
        )
    world_spec = normalise_world(cube.world, cube, fitting_axes)
    units = prepare_units(
        fit_model,
        "astropy" if native_astropy else "parfit",
        world_spec,
        cube.data_unit,
        equivalencies,
        cube=cube,
    )
    fit_model, world_spec = units.model, units.world
    if units.cube is not None:
        cube = units.cube  # the data in the model's amplitude unit
    if not native_astropy:
        fit_model.validate()
    fitter_obj.check(fit_model, fitter_kwargs)
    fitter_obj.check_fit_info(fit_info)
    if guess:
        _check_can_guess(fit_model, native_astropy)
    param_arrays = fitter_obj.parameter_arrays(fit_model)
    _check_parameter_maps(param_arrays, iterating_shape)
    if not native_astropy:
        _preflight(fit_model, world_spec, param_arrays, fit_timeout)

    # --- scheduler and diagnostics ----------------------------------------
    sched_kwargs, needs_pickle = _resolve_scheduler(scheduler)
    if needs_pickle:
        _check_picklable(
            fit_model=fit_model, fitter=fitter_obj, diagnostics_callable=diagnostics_callable
        )
    run_id = uuid.uuid4().hex
    n_params = len(param_arrays)
    n_fields = 2 * n_params + len(_EXTRA_FIELDS)
    names = [entry[0] for entry in param_arrays]
    store = None
    if output_cubes and native_astropy:
        raise InputError(
            "output_cubes needs a parfit fitter: with an astropy fitter the model cube is "
            "not computed; use fitter=None (astropy models are translated)"
        )
    if diagnostics is not None and output is not None:
        _check_apart(output, diagnostics_path)
    store_plan = diag_plan = None
    if output is not None:
        store_plan = _check_store(
            output,
            overwrite=overwrite,
            resume=resume,
            cube=cube,
            fitting_axes=fitting_axes,
            iterating_axes=iterating_axes,
            chunk_n_max=chunk_n_max,
            names=names,
            fit_model=model if native_astropy else fit_model,
            fitter=fitter_obj,
            fitter_kwargs=fitter_kwargs,
            world=world_spec,
            guess=guess,
            run_id=run_id,
            cubes=output_cubes,
            scheduler_kwargs=sched_kwargs,
        )
    if diagnostics is not None:
        resumed_id = (
            store_plan.stored["run_id"]
            if store_plan is not None and store_plan.action == "resume"
            else None
        )
        diag_plan = diag.check_diagnostics_path(
            diagnostics_path, overwrite=overwrite, run_id=resumed_id
        )

    # --- nothing on disk has changed so far; from here on, act -----------
    with contextlib.ExitStack() as held:
        if store_plan is not None:
            store = _open_store(store_plan, lock=True)
            held.callback(_close_store, store)
            run_id = store["provenance"]["run_id"]
        if diag_plan is not None:
            held.enter_context(diag.open_diagnostics_path(diag_plan, run_id=run_id))

        meta = dict(
            fitting_axes=fitting_axes,
            iterating_axes=iterating_axes,
            data_shape=shape,
            fitter=fitter_obj.describe(),
            run_id=run_id,
        )
        # What the blocks are cut from and what each block task needs: the same
        # for the in-memory graph and the streamed tasks.
        block_args = (
            cube,
            fitting_axes,
            iterating_axes,
            chunk_n_max,
            preserve_native_chunks,
            world_spec,
            param_arrays,
            fit_model,
            fitter_obj,
            fitter_kwargs,
            fit_info,
            diagnostics,
            diagnostics_path,
            diagnostics_callable,
            run_id,
            n_fields,
        )
        block_kwargs = dict(guess=guess, fit_timeout=fit_timeout)
        if math.prod(iterating_shape) == 0:
            packed = np.zeros(iterating_shape + (n_fields,))
            infos = np.empty(iterating_shape, dtype=object) if fit_info else None
        elif store is not None:
            pieces = _prepare_blocks(*block_args, regular=True, **block_kwargs)
            tasks, sizes, places = _store_tasks(*pieces, store=store, names=names)
            meta["blocks_fitted"] = len(tasks)
            meta["blocks_resumed"] = int(store["done"].sum())
            if tasks:
                bar = _make_progress(progress, sum(sizes))
                try:
                    results = run_with_progress(
                        tasks, sizes, sched_kwargs, _client_for(sched_kwargs), bar
                    )
                finally:
                    if bar is not None:
                        bar.close()
                for result, (index, offsets, block_shape) in zip(results, places):
                    if isinstance(result, BlockFailure):
                        packed_block = _failed_block(
                            result, offsets, block_shape, n_fields, n_params, meta
                        )
                        # Written, but not recorded as done: a resume tries it again.
                        output_mod.write_block(
                            store["path"],
                            names,
                            packed_block,
                            index,
                            offsets,
                            record=False,
                            run_id=store["lock_run_id"],
                        )
            fields = {}
            output_mod.finish(store["path"], fields=fields)
            packed, infos = output_mod.read_output(store["path"], names, fields=fields), None
            meta["output"] = str(store["path"])
        else:
            graph = _build_graph(*block_args, **block_kwargs)
            computed = _compute(graph, sched_kwargs, progress, meta, n_params)
            if fit_info:
                packed = computed[..., :n_fields].astype(np.float64)
                infos = computed[..., n_fields]
            else:
                packed, infos = computed, None

        params = packed[..., :n_params]
        errors = packed[..., n_params : 2 * n_params]
        extra = {name: packed[..., 2 * n_params + k] for k, name in enumerate(_EXTRA_FIELDS)}
        status = extra["status"].astype(np.int8)
        flags = extra["flags"].astype(np.uint8)
        if diagnostics is not None:
            _write_manifest(
                diagnostics_path,
                extra["reported"],
                status,
                extra["n_warnings"],
                flags,
                iterating_shape,
                run_id,
            )
        # .copy(), not np.ascontiguousarray, which makes the 0-d maps of a
        # single fit 1-d.
        maps = {name: params[..., k].copy() for k, name in enumerate(names)}
        error_maps = {name: errors[..., k].copy() for k, name in enumerate(names)}
        fitted_model = units.restore(maps)
        if store is not None:
            output_mod.write_units(store["path"], units.parameter_units)
        if translated:
            from .models.astropy_bridge import to_astropy

            fitted_model = to_astropy(fitted_model, template=model)
        return FitResult(
            model=fitted_model,
            parameters=maps,
            errors=error_maps,
            statistic=extra["statistic"],
            status=status,
            nfev=extra["nfev"].astype(np.int32),
            flags=flags,
            units=units.parameter_units,
            dims=tuple(cube.dims[a] for a in iterating_axes) if cube.dims else None,
            coords={
                d: c
                for d, c in cube.coords.items()
                if cube.dims and d in [cube.dims[a] for a in iterating_axes]
            },
            wcs=_iterating_wcs(cube.world, iterating_axes, cube.ndim),
            start_model=model,
            fit_info=infos,
            meta=meta,
        )


# --- argument checks --------------------------------------------------------


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise InputTypeError(f"{name} must be True or False; got {value!r}")


def _check_timeout(fit_timeout):
    if fit_timeout is None:
        return None
    if (
        isinstance(fit_timeout, (bool, np.bool_))
        or not isinstance(fit_timeout, numbers.Real)
        or not math.isfinite(fit_timeout)
        or fit_timeout <= 0
    ):
        raise InputError(
            f"fit_timeout must be None or a positive number of seconds; got {fit_timeout!r}"
        )
    return float(fit_timeout)


def _check_apart(output, diagnostics_path):
    """Refuse a diagnostics folder that is the output store or inside it."""
    store = os.path.realpath(output)
    folder = os.path.realpath(diagnostics_path)
    if folder == store or folder.startswith(store + os.sep):
        raise InputError(
            f"diagnostics_path {str(diagnostics_path)!r} is inside the output store "
            f"{str(output)!r}; the per-fit folders would be written into the store; choose "
            f"a diagnostics_path outside it"
        )


def _check_chunk_n_max(chunk_n_max):
    if chunk_n_max is None:
        return 500
    if isinstance(chunk_n_max, (bool, np.bool_)) or not isinstance(chunk_n_max, numbers.Integral):
        raise InputTypeError(
            f"chunk_n_max must be a positive integer (fits per dask task); got "
            f"{chunk_n_max!r} ({type(chunk_n_max).__name__})"
        )
    if chunk_n_max <= 0:
        raise InputError(
            f"chunk_n_max must be a positive integer (fits per dask task); got {chunk_n_max}"
        )
    return int(chunk_n_max)


def _is_str_sequence(obj):
    return isinstance(obj, (list, tuple)) and all(isinstance(s, str) for s in obj)


def _check_scheduler(scheduler):
    if _is_client(scheduler):
        if getattr(scheduler, "status", "running") in ("closing", "closed"):
            raise InputError(
                f"scheduler: the distributed Client {scheduler!r} is closed; pass a running "
                f"Client, or scheduler=None for dask's default"
            )
        return
    if scheduler is None or callable(scheduler):
        return
    if isinstance(scheduler, str):
        if scheduler not in _SCHEDULER_NAMES:
            raise InputError(
                f"scheduler={scheduler!r} is not known; expected None, one of "
                f"{', '.join(map(repr, _SCHEDULER_NAMES))}, or a distributed.Client"
            )
        return
    raise InputTypeError(
        f"scheduler must be None, a scheduler name or a distributed.Client; got "
        f"{type(scheduler).__name__}"
    )


def _is_client(obj):
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Client)


def _function_as_model(model, n_inputs):
    """A plain function becomes a model; a model class is refused with a hint."""
    import inspect

    from .models.base import Model

    if isinstance(model, type) and issubclass(model, Model):
        raise InputTypeError(
            f"model is the class {model.__name__}; give an instance holding the starting "
            f"values, e.g. model={model.__name__}()"
        )
    if inspect.isfunction(model):
        from .models import model_from_function

        return model_from_function(model, n_inputs=n_inputs)()
    return model


def _model_kind(model):
    from .models.base import Model

    if isinstance(model, Model):
        return "parfit"
    try:
        from astropy.modeling import Model as AstropyModel
    except ImportError:  # pragma: no cover
        AstropyModel = ()
    if isinstance(model, AstropyModel):
        if len(model) != 1:
            raise InputError(
                f"model is an astropy model set of {len(model)} models; parallel_fit needs a "
                f"single model (give per-pixel starting values as array-valued parameters)"
            )
        return "astropy"
    raise InputTypeError(
        f"model must be a parfit model (parfit.models) or an astropy.modeling model; got "
        f"{type(model).__name__}"
    )


def _check_parameter_maps(param_arrays, iterating_shape):
    for name, *arrays in param_arrays:
        for what, arr in zip(("starting value", "lower bound", "upper bound"), arrays):
            shape = np.shape(arr)
            if shape == ():
                continue
            try:
                ok = np.broadcast_shapes(shape, iterating_shape) == iterating_shape
            except ValueError:
                ok = False
            if not ok:
                raise InputError(
                    f"parameter {name!r} has a per-pixel {what} of shape {shape}, which does "
                    f"not broadcast to the shape of the non-fitting axes {iterating_shape}"
                )


def _preflight(model, world, param_arrays, fit_timeout=None):
    """Evaluate the model once at the shared starting values.

    Catches a model that returns the wrong shape, or that is not finite at
    starting values shared by every fit, before anything is dispatched.
    """
    if world.kind != "shared":
        return
    x = tuple(w.reshape(-1) for w in world.arrays)
    row = np.array([[np.nanmean(v) if np.ndim(v) else v for _, v, _, _ in param_arrays]])
    # With starting values shared by every fit, a failure here is every
    # fit's failure: report it now.  Per-pixel starts fail pixel by pixel.
    all_scalar = all(np.ndim(v) == 0 for _, v, _, _ in param_arrays)
    try:
        out = call_with_timeout(model.evaluate, fit_timeout, *x, row)
        if isinstance(out, TimedOut):
            raise InputError(
                f"model.evaluate did not return within fit_timeout={fit_timeout:g} s at the "
                f"starting values, so every fit would hang; check the model"
            )
        out = np.asarray(out)
    except InputError:
        raise
    except Exception as exc:
        if not all_scalar:
            return
        raise InputError(
            f"model.evaluate raised {type(exc).__name__}: {exc} at the starting values on the "
            f"given world coordinates, so every fit would fail"
        ) from exc
    if out.shape != (1, x[0].size):
        raise InputError(
            f"model.evaluate returned shape {out.shape} for 1 fit of {x[0].size} samples; "
            f"expected {(1, x[0].size)} (n_fits, n_samples)"
        )
    if all_scalar and not np.all(np.isfinite(out)):
        raise InputError(
            "model is not finite at its starting values on the given world coordinates, so "
            "every fit would fail; check the starting values"
        )


def _resolve_scheduler(scheduler):
    """dask compute keywords, and whether tasks will be pickled."""
    import dask
    import dask.multiprocessing
    from dask.base import get_scheduler

    kwargs = {} if scheduler in (None, "default") else {"scheduler": scheduler}
    probe = dask.delayed(0)
    get = get_scheduler(scheduler=kwargs.get("scheduler"), collections=[probe])
    needs_pickle = get is dask.multiprocessing.get or _is_client(getattr(get, "__self__", None))
    if get is dask.multiprocessing.get and dask.config.get("chunksize", None) is None:
        # dask hands a process tasks in batches of 6 by default; with a few
        # dozen equal blocks of fits that leaves one process idle at the
        # end.  A block is far more work than a hand-over: one at a time.
        kwargs["chunksize"] = 1
    return kwargs, needs_pickle


def _check_picklable(**objects):
    import cloudpickle

    for name, obj in objects.items():
        if obj is None:
            continue
        try:
            cloudpickle.dumps(obj)
        except Exception as exc:
            arg = "model" if name == "fit_model" else name
            raise InputError(
                f"{arg} cannot be pickled ({type(exc).__name__}: {exc}), but the scheduler "
                f"runs fits in other processes; make it picklable or use "
                f"scheduler='threads'"
            ) from None


# --- the graph ----------------------------------------------------------------


def plan_chunks(iterating_shape, chunk_n_max, native=None):
    """Chunk sizes along the iterating axes, at most ``chunk_n_max`` fits each.

    The last axes are filled first (C order), so a block is contiguous in
    memory as far as possible.  With ``native`` (the chunk size of a dask or
    zarr input along each iterating axis), every block size divides the
    native one, so each block is cut from a single input chunk: the input
    is read chunk by chunk and never reassembled in memory.

    Examples
    --------
    >>> plan_chunks((100, 100), 500)
    (5, 100)
    >>> plan_chunks((1024, 1024), 500, native=(64, 64))
    (4, 64)
    """
    sizes = []
    budget = chunk_n_max
    for k, n in enumerate(reversed(iterating_shape)):
        c = max(1, min(n, budget))
        if native is not None:
            limit = native[len(iterating_shape) - 1 - k]
            c = max(d for d in range(1, min(limit, c) + 1) if limit % d == 0)
        sizes.append(c)
        budget = max(1, budget // c)
    return tuple(reversed(sizes))


def _block_sizes(data, iterating_axes, iterating_shape, chunk_n_max):
    """parfit's regular block size along each iterating axis for ``data``."""
    native = None
    chunks = getattr(data, "chunks", None)
    if chunks is not None and len(chunks) == len(getattr(data, "shape", ())):
        if all(isinstance(c, tuple) for c in chunks):  # dask
            native = tuple(max(chunks[a]) for a in iterating_axes)
        else:  # zarr and the like
            native = tuple(int(chunks[a]) for a in iterating_axes)
    return plan_chunks(iterating_shape, chunk_n_max, native=native)


def _normalise_chunks(sizes, shape):
    return tuple(
        tuple([c] * (n // c) + ([n % c] if n % c else [])) if n else (0,)
        for c, n in zip(sizes, shape)
    )


@dataclasses.dataclass
class _BlockPlan:
    """Everything a block task needs besides its arrays (pickled per task)."""

    model: object
    fitter: object
    fitter_kwargs: dict
    fit_info: object
    n_fit_axes: int
    sample_shape: tuple
    iterating_shape: tuple
    has_weights: bool
    has_mask: bool
    shared_x: tuple
    n_world_arrays: int
    param_sources: list
    n_map_arrays: int
    n_fields: int
    diagnostics: object
    diagnostics_path: object
    diagnostics_callable: object
    run_id: str
    guess: bool = False
    fit_timeout: float | None = None


def _build_graph(*args, **kwargs):
    """One ``map_blocks`` graph whose result is the packed maps."""
    import dask.array as da

    data_t, arrays, plan, iter_block_chunks = _prepare_blocks(*args, **kwargs)
    n_iter = len(plan.iterating_shape)
    n_out_fields = plan.n_fields + (1 if plan.fit_info else 0)
    dtype = object if plan.fit_info else np.float64
    return da.map_blocks(
        _fit_block,
        data_t,
        *arrays,
        drop_axis=tuple(range(plan.n_fit_axes)),
        new_axis=[n_iter],
        chunks=iter_block_chunks + ((n_out_fields,),),
        dtype=dtype,
        meta=np.empty((0,) * (n_iter + 1), dtype=dtype),
        name=f"parfit-fit-{plan.run_id}",  # unique per run: a cluster keeps results by key
        plan=plan,
    )


def _prepare_blocks(
    cube,
    fitting_axes,
    iterating_axes,
    chunk_n_max,
    preserve_native_chunks,
    world,
    param_arrays,
    model,
    fitter,
    fitter_kwargs,
    fit_info,
    diagnostics,
    diagnostics_path,
    diagnostics_callable,
    run_id,
    n_fields,
    guess=False,
    regular=False,
    fit_timeout=None,
):
    """The dask arrays a block task reads, aligned block for block, and its plan.

    With ``regular``, blocks are parfit's own regular chunking (a zarr
    store needs regular chunks), whatever the chunks of a dask input.
    """
    import dask.array as da

    shape = cube.shape
    iterating_shape = tuple(shape[a] for a in iterating_axes)
    order = tuple(fitting_axes) + tuple(iterating_axes)
    data = cube.data
    if preserve_native_chunks:
        if not isinstance(data, da.Array):
            raise InputTypeError("preserve_native_chunks=True needs data to be a dask array")
        for a in fitting_axes:
            if len(data.chunks[a]) != 1:
                raise InputError(
                    f"preserve_native_chunks=True needs data unchunked along the fitting "
                    f"axes, but axis {a} has chunks {data.chunks[a]}"
                )
        chunks = data.chunks
    else:
        iter_chunks = _normalise_chunks(
            _block_sizes(data, iterating_axes, iterating_shape, chunk_n_max), iterating_shape
        )
        if isinstance(data, da.Array) and not regular:
            native = [data.chunks[a] for a in iterating_axes]
            if math.prod(max(c) for c in native) <= chunk_n_max:
                iter_chunks = tuple(native)
        chunks = tuple(
            (shape[a],) if a in fitting_axes else iter_chunks[iterating_axes.index(a)]
            for a in range(len(shape))
        )
    if isinstance(data, da.Array):
        data = data.rechunk(chunks)
    else:
        data = da.from_array(data, chunks=chunks)
    data_t = data.transpose(order)

    def aligned(arr):
        arr = arr if isinstance(arr, da.Array) else da.from_array(np.asarray(arr))
        return da.broadcast_to(arr, shape).rechunk(chunks).transpose(order)

    arrays = []
    if cube.weights is not None:
        arrays.append(aligned(cube.weights))
    if cube.mask is not None:
        arrays.append(aligned(cube.mask))
    shared_x = ()
    if world.kind == "shared":
        shared_x = tuple(
            np.ascontiguousarray(w, dtype=np.float64).reshape(-1) for w in world.arrays
        )
    elif world.kind == "nd":
        arrays.extend(aligned(w) for w in world.arrays)
    else:
        for index in world.wcs_world_index:
            arrays.append(
                da.map_blocks(
                    _wcs_world_block,
                    chunks=data_t.chunks,
                    dtype=np.float64,
                    meta=np.empty((0,) * data_t.ndim),
                    wcs=world.wcs,
                    world_index=index,
                    order=order,
                )
            )
    n_world = 0 if world.kind == "shared" else len(fitting_axes)

    iter_block_chunks = data_t.chunks[len(fitting_axes) :]
    sources = []
    n_maps = 0
    for _name, *values in param_arrays:
        entry = []
        for value in values:
            if np.ndim(value) == 0:
                entry.append(("scalar", float(value)))
            else:
                view = np.broadcast_to(np.asarray(value, dtype=np.float64), iterating_shape)
                arrays.append(da.from_array(view, chunks=iter_block_chunks))
                entry.append(("map", n_maps))
                n_maps += 1
        sources.append(entry)

    plan = _BlockPlan(
        model=model,
        fitter=fitter,
        fitter_kwargs=fitter_kwargs,
        fit_info=fit_info,
        n_fit_axes=len(fitting_axes),
        sample_shape=tuple(shape[a] for a in fitting_axes),
        iterating_shape=iterating_shape,
        has_weights=cube.weights is not None,
        has_mask=cube.mask is not None,
        shared_x=shared_x,
        n_world_arrays=n_world,
        param_sources=sources,
        n_map_arrays=n_maps,
        n_fields=n_fields,
        diagnostics=diagnostics,
        # Absolute, so workers started elsewhere write to the same place.
        diagnostics_path=None if diagnostics_path is None else os.path.abspath(diagnostics_path),
        diagnostics_callable=diagnostics_callable,
        run_id=run_id,
        guess=guess,
        fit_timeout=fit_timeout,
    )
    return data_t, arrays, plan, iter_block_chunks


def _wcs_world_block(block_info=None, wcs=None, world_index=0, order=()):
    location = block_info[None]["array-location"]
    grids = np.meshgrid(*[np.arange(a, b) for a, b in location], indexing="ij")
    index = [None] * len(order)
    for k, axis in enumerate(order):
        index[axis] = grids[k]
    return np.asarray(wcs_world_values(wcs, index)[world_index], dtype=np.float64)


def _check_can_guess(model, native_astropy):
    """Refuse ``initial="guess"`` before dispatch when the model cannot guess."""
    if native_astropy:
        raise InputError(
            "initial='guess' needs a parfit fitter: astropy fitters fit the astropy model "
            "from its own starting values; use fitter=None to fit it with parfit's solver"
        )
    if not model.can_guess:
        raise InputError(f"initial='guess': {model._cannot_guess_message()}")


def _apply_guess(model, block):
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


def _fit_block(data, *arrays, plan=None, block_info=None, keep=None):
    """The block kernel: fit every pixel of one block (runs on a worker).

    ``keep``, a dict, receives the block and the fitter's result (for the
    model and residual cubes of the streamed output).
    """
    nf = plan.n_fit_axes
    iter_chunk = data.shape[nf:]
    n_out = plan.n_fields + (1 if plan.fit_info else 0)
    if data.size == 0 or block_info is None:
        return np.zeros(iter_chunk + (n_out,), dtype=object if plan.fit_info else np.float64)
    n_fits = math.prod(iter_chunk)
    n_samples = math.prod(data.shape[:nf])

    def rows(a):
        a = np.broadcast_to(a, data.shape).reshape(n_samples, n_fits)
        return np.ascontiguousarray(a.T, dtype=np.float64)

    arrays = list(arrays)
    y = rows(data)
    valid = np.isfinite(y)
    weights = None
    if plan.has_weights:
        weights = rows(arrays.pop(0))
        valid &= np.isfinite(weights) & (weights > 0)
    if plan.has_mask:
        valid &= ~(rows(arrays.pop(0)) != 0)
    if plan.n_world_arrays:
        x = tuple(rows(arrays.pop(0)) for _ in range(plan.n_world_arrays))
        for xk in x:
            valid &= np.isfinite(xk)
    else:
        x = plan.shared_x
    maps = arrays
    columns = [[], [], []]
    for entry in plan.param_sources:
        for k, (kind, value) in enumerate(entry):
            if kind == "scalar":
                columns[k].append(np.full(n_fits, value))
            else:
                columns[k].append(np.asarray(maps[value], dtype=np.float64).reshape(n_fits))
    p0, lower, upper = (np.stack(c, axis=1) if c else np.zeros((n_fits, 0)) for c in columns)
    block = FitBlock(
        x=x,
        y=y,
        weights=weights,
        valid=valid,
        p0=p0,
        lower=lower,
        upper=upper,
        sample_shape=plan.sample_shape,
    )
    outcome = call_with_timeout(_guess_and_fit, plan.fit_timeout, plan, block)
    if isinstance(outcome, TimedOut):
        guess_failure, result = None, _timed_out(n_fits, p0.shape[1], plan)
    else:
        guess_failure, result = outcome
    if weights is not None:
        for i, text in weight_warnings(weights).items():
            result.warnings.setdefault(i, []).append(text)
    if guess_failure:
        for i in range(n_fits):
            result.warnings.setdefault(i, []).insert(0, guess_failure)

    n_warn = np.zeros(n_fits)
    for i, lines in result.warnings.items():
        n_warn[i] = len(lines)
    reported = diag.report_mode(plan.diagnostics, result.status, n_warn)
    if reported.any():
        offsets = [loc[0] for loc in block_info[None]["array-location"][:-1]]
        _write_folders(plan, block, result, reported, iter_chunk, offsets)

    packed = np.empty((n_fits, plan.n_fields))
    n_params = p0.shape[1]
    packed[:, :n_params] = result.params
    packed[:, n_params : 2 * n_params] = result.errors
    flags = np.zeros(n_fits) if result.flags is None else result.flags
    packed[:, 2 * n_params :] = np.stack(
        [result.statistic, result.status, result.nfev, n_warn, reported, flags], axis=1
    )
    packed = packed.reshape(iter_chunk + (plan.n_fields,))
    if keep is not None:
        keep["block"], keep["result"] = block, result
    if not plan.fit_info:
        return packed
    out = np.empty(iter_chunk + (n_out,), dtype=object)
    out[..., : plan.n_fields] = packed
    infos = np.empty(n_fits, dtype=object)
    infos[:] = result.fit_info if result.fit_info is not None else [None] * n_fits
    out[..., plan.n_fields] = infos.reshape(iter_chunk)
    return out


def _guess_and_fit(plan, block):
    """The guesses (with ``initial="guess"``) and the fit of one block."""
    guess_failure = _apply_guess(plan.model, block) if plan.guess else None
    result = plan.fitter.fit_block(
        plan.model, block, fit_info=plan.fit_info, fitter_kwargs=plan.fitter_kwargs
    )
    return guess_failure, result


def _timed_out(n_fits, n_params, plan):
    """The result of a block abandoned after ``plan.fit_timeout`` seconds."""
    result = BlockResult.empty(n_fits, n_params)
    message = (
        f"fitting the block holding this fit took longer than fit_timeout="
        f"{plan.fit_timeout:g} s and was abandoned (a model that hangs?); raise "
        f"fit_timeout, or reduce chunk_n_max to give each block less work"
    )
    for i in range(n_fits):
        result.fail(i, Status.TIMEOUT, message)
    if plan.fit_info:
        result.fit_info = [None] * n_fits
    log.warning(
        "a block of %d fits ran past fit_timeout=%g s; its fits are marked TIMEOUT",
        n_fits,
        plan.fit_timeout,
    )
    return result


def _write_folders(plan, block, result, reported, iter_chunk, offsets):
    for i in np.flatnonzero(reported):
        index = np.add(np.unravel_index(i, iter_chunk), offsets)
        name = diag.folder_name(index, plan.iterating_shape)
        args = ()
        if plan.diagnostics_callable is not None:
            ok = result.status[i] == Status.OK
            fitted = plan.fitter.model_with_values(plan.model, result.params[i]) if ok else None
            world = tuple(
                np.reshape(xk if xk.ndim == 1 else xk[i], plan.sample_shape) for xk in block.x
            )
            w = None if block.weights is None else block.weights[i].reshape(plan.sample_shape)
            args = (world, block.y[i].reshape(plan.sample_shape), w, fitted, plan.fitter_kwargs)
        diag.write_fit_folder(
            plan.diagnostics_path,
            name,
            plan.run_id,
            message=result.messages.get(i),
            warnings=result.warnings.get(i),
            callable_=plan.diagnostics_callable,
            callable_args=args,
        )


def _client_for(sched_kwargs):
    """The distributed Client the computation will run on, if any."""
    scheduler = sched_kwargs.get("scheduler")
    if _is_client(scheduler):
        return scheduler
    if scheduler is None:
        try:
            from distributed import default_client

            return default_client()
        except (ImportError, ValueError):
            return None
    return None


def _make_progress(progress, total):
    return FitProgress(total, bar=True) if progress else None


def _compute(graph, sched_kwargs, progress, meta, n_params):
    """Compute the packed maps; block by block with ``progress`` or on a cluster.

    On a distributed cluster every block is its own future, so a block whose
    worker keeps dying (distributed gives up with ``KilledWorker``) costs
    only that block: its fits get ``WORKER_CRASH``, the rest of the cube is
    kept.
    """
    client = _client_for(sched_kwargs)
    if not progress and client is None:
        return graph.compute(**sched_kwargs)
    blocks = graph.to_delayed()  # grid of blocks x 1 (fields)
    chunks = graph.chunks[:-1]
    places = list(_blocks(chunks))
    tasks = [blocks[index + (0,)] for index, _, _ in places]
    sizes = [math.prod(shape) for _, _, shape in places]
    bar = _make_progress(progress, sum(sizes))
    try:
        results = run_with_progress(tasks, sizes, sched_kwargs, client, bar)
    finally:
        if bar is not None:
            bar.close()
    out = np.empty(tuple(sum(c) for c in chunks) + (graph.shape[-1],), dtype=graph.dtype)
    for (_, offsets, shape), result in zip(places, results):
        if isinstance(result, BlockFailure):
            result = _failed_block(result, offsets, shape, graph.shape[-1], n_params, meta)
        out[tuple(slice(o, o + n) for o, n in zip(offsets, shape))] = result
    return out


def _blocks(chunks):
    """Every block of a dask chunking, in C order: ``(index, offsets, shape)``."""
    starts = [np.cumsum((0,) + tuple(c[:-1])) for c in chunks]
    for index in np.ndindex(*(len(c) for c in chunks)):
        yield (
            index,
            tuple(int(st[i]) for st, i in zip(starts, index)),
            tuple(c[i] for c, i in zip(chunks, index)),
        )


def _failed_block(failure, offsets, block_shape, n_out, n_params, meta):
    """The packed fields of a block whose task failed on the cluster."""
    status = Status.WORKER_CRASH if failure.killed_worker else Status.FIT_ERROR
    where = ", ".join(f"{o}:{o + n}" for o, n in zip(offsets, block_shape))
    log.warning(
        "the block of fits [%s] failed on the cluster (%s: %s); its %d fits are "
        "marked %s, the other blocks are kept",
        where,
        type(failure.exception).__name__,
        failure.exception,
        math.prod(block_shape),
        status.name,
    )
    meta.setdefault("failed_blocks", []).append(
        dict(
            region=where,
            status=status.name,
            error=f"{type(failure.exception).__name__}: {failure.exception}",
        )
    )
    packed = np.full(block_shape + (n_out,), np.nan)
    extra = 2 * n_params
    packed[..., extra + _EXTRA_FIELDS.index("status")] = status
    for name in ("nfev", "n_warnings", "reported", "flags"):
        packed[..., extra + _EXTRA_FIELDS.index(name)] = 0
    return packed


def _write_manifest(path, reported, status, n_warnings, flags, iterating_shape, run_id):
    rows = []
    for flat in np.flatnonzero(np.asarray(reported).reshape(-1) > 0):
        index = np.unravel_index(flat, iterating_shape)
        rows.append(
            (
                diag.folder_name(index, iterating_shape),
                index,
                status.reshape(-1)[flat],
                np.asarray(n_warnings).reshape(-1)[flat],
                np.asarray(flags).reshape(-1)[flat],
            )
        )
    diag.write_manifest(path, rows, run_id)


def _iterating_wcs(world, iterating_axes, ndim):
    """The WCS of the iterating axes, for writing maps to FITS, if any."""
    try:
        from astropy.wcs import WCS
    except ImportError:  # pragma: no cover
        return None
    wcs = getattr(world, "low_level_wcs", world)
    if not isinstance(wcs, WCS) or not iterating_axes:
        return None
    try:
        return wcs.sub([ndim - a for a in sorted(iterating_axes, reverse=True)])
    except Exception:  # a WCS that cannot be split keeps no map WCS
        log.info("could not split the WCS along the iterating axes", exc_info=True)
        return None
