"""``parallel_fit``: check every argument, build a request, run it, return a result.

Layering (as xarray's ``apply_ufunc``): :func:`parallel_fit` checks and
normalises every argument at the edge and builds a
:class:`~parfit.engine.request.FitRequest`; :func:`parfit.engine.execute.run`
fits it block by block into a sink (the maps in memory, or a zarr store);
the result is a :class:`~parfit.result.FitResult`.  Every check comes
before anything on disk changes or any fit is dispatched.
"""

import contextlib
import dataclasses
import logging
import math
import numbers
import os
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from parfit.diagnostics import folders as diag
from parfit.engine import execute
from parfit.engine.hypotheses import bind_likelihood, check_likelihood_args
from parfit.engine.inputs import (
    iterating_wcs,
    loaded_class,
    normalise_cube,
    normalise_fitting_axes,
    normalise_world,
)
from parfit.engine.plan import auto_block_size, block_grid, check_native_chunks
from parfit.engine.refit import RefitOptions, check_refit, run_passes
from parfit.engine.request import (
    INITIAL_VALUES,
    SCHEDULER_NAMES,
    DiagnosticsRequest,
    Execution,
    FitRequest,
    RunInfo,
)
from parfit.engine.sinks import MemorySink, StoreSink
from parfit.engine.starts import check_min_snr, check_region, mean_start, valid_counts
from parfit.engine.timeout import TimedOut, call_with_timeout
from parfit.engine.units import UnitsPlan, prepare_units
from parfit.errors import InputError, InputTypeError, OutputExistsError
from parfit.fitters import AstropyFitter, get_fitter
from parfit.fitters.likelihood import LikelihoodRequest
from parfit.joint import JointPlan, is_joint, joint_request
from parfit.models.joint import JointModel
from parfit.result import FitResult
from parfit.selection import (
    SELECTION_STORE,
    SelectionResult,
    candidate_store,
    check_candidates,
    check_select,
    is_candidates,
    peak_amplitudes,
    peak_components,
)
from parfit.store.layout import OUTPUT_CUBES, is_parfit_store

__all__ = ["fit_request", "parallel_fit"]

log = logging.getLogger(__name__)


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
    chunk_n_max=None,
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
    statistic="chi2",
    null=None,
    profile=None,
    n_sigma=1.0,
    n_sigma_ul=2.0,
    output_cubes=None,
    fit_timeout=None,
    refit=None,
    refit_options=None,
    min_snr=None,
    initial_region=None,
    order_components=None,
    select=None,
    select_threshold=0.0,
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
        Largest number of fits in one dask task.  None (the default)
        chooses: about 16 MiB of data per block, 500 to 16384 fits, and at
        least two blocks per core of the scheduler (see
        :func:`parfit.engine.plan.auto_block_size`); with ``resume=True`` the
        store's own blocks.
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
        the fit failed).  In a joint fit, ``world``, ``data``, ``weights``
        and ``model`` are mappings by dataset.  An exception inside it is
        written to ``callable_error.log`` in that fit's folder.
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
    initial : {None, "model", "guess", "mean"}, optional
        Where the fits start.  None or ``"model"``: the model's parameter
        values (scalars shared by every pixel, or per-pixel maps).
        ``"guess"``: each pixel's own estimate from its data
        (:meth:`parfit.models.Model.guess`: peak position, height and width,
        baselines by least squares); fixed and tied parameters keep the
        model's values and guesses are clipped into the bounds.  Needs a
        parfit model (or an astropy model fitted by a parfit fitter) that can
        guess.  ``"mean"``: the mean spectrum of the valid pixels (or of
        ``initial_region``) is fitted once, from its guess where the model
        can guess, and every fit starts from that fit
        (``result.run.mean_start`` says how it went).
    initial_region : array_like of bool, optional
        With ``initial="mean"``: the pixels (True) whose mean spectrum is
        fitted; a map broadcastable to the iterating shape.
    refit : {None, "neighbours"}, optional
        ``"neighbours"``: after the first pass, fits that failed, ended on a
        bound, or whose statistic exceeds ``outlier`` times the best of
        their successful neighbours' are refitted from the median of their
        good 8-connected neighbours, and the better fit is kept; passes
        repeat until none improves (see :mod:`parfit.engine.refit`).  Passes
        are global and synchronous: the maps are the same for any chunking,
        block size and scheduler.  ``result.refits`` counts each fit's
        refits, ``result.origin`` holds the pass whose solution it keeps
        (0: the first), ``result.run.refit`` reports every pass.  With
        ``output``, each pass is written to the store as a unit (a resume
        goes on from the last one written).
    refit_options : dict, optional
        ``{"max_passes": 20, "outlier": 1.5}``: the most passes, and the
        ratio of statistics that makes a fit an outlier (None: refit only
        failed and flagged fits).
    min_snr : float, optional
        Skip pixels whose peak (the largest deviation from the median) is
        below ``min_snr`` times their robust noise (the weights' where
        given, else from the differences of neighbouring samples): they get
        ``Status.SKIPPED`` and no time is spent on them.
    order_components : bool, optional
        Number the peaks of each kind by increasing position in every fit,
        so that ``mean_0`` is the same line in every pixel
        (:meth:`parfit.models.Model.order_components`).  None (the
        default): on with ``refit`` or ``select``, off otherwise.
    select : {None, "aic", "aicc", "bic"}, optional
        With ``model`` a list of candidate models: fit every candidate and
        choose, per pixel, the one with the lowest criterion among those
        that succeeded with every peak significant (see
        :mod:`parfit.selection`).  Returns a
        :class:`~parfit.selection.SelectionResult`.  With ``output``, a
        folder: ``candidate_<k>.zarr`` per candidate and ``selection.zarr``.
    select_threshold : float, optional
        The improvement of the criterion a candidate with more free
        parameters needs to replace a simpler one (default 0).
    fit_info : bool, str or sequence of str, optional
        With an astropy fitter (or a scipy one), keep each fit's
        ``fit_info`` (all of it, or the named entries) in
        ``FitResult.fit_info``, an object array of the iterating shape.

    output : str or path-like, optional
        A zarr store to stream the maps to.  Every block task writes its
        part of the maps (parameters, errors, statistic, status, nfev) as
        soon as it is fitted, then records the block as done; the maps
        never travel back through the scheduler, and the returned result
        reads them from the store when they are first used.  The store's attributes
        hold the parfit version, the starting model, the options and a
        fingerprint of the input.  An existing store is refused unless
        ``overwrite=True`` (which replaces only a store parfit made) or
        ``resume=True``.  See :mod:`parfit.store`.
    output_cubes : sequence of {"model", "residual"}, optional
        With ``output``: also stream the best-fit model cube and/or the
        residual cube (data minus model) to the store, shaped and ordered
        like the input and chunked like the blocks (NaN where a fit failed).
    resume : bool, optional
        With ``output``: if the store exists, compute only the blocks it
        does not record as done (after an interruption) and return the
        whole result; refused if the store was made from another input or
        other options.  If it does not exist, start a new run.
    statistic : {"chi2", "cash", "cstat"}, optional
        What every fit minimises (:mod:`parfit.fitters.statistics`):
        chi-square (the default); ``"cash"``, the Poisson likelihood of
        counts ``2 sum(mu - n ln mu)`` (as Gammapy); or ``"cstat"``, the same
        plus a term of the data alone, which makes it a goodness of fit.
        With ``"cash"``/``"cstat"`` the data must be counts (never negative,
        finite where not masked) and ``weights`` are refused; errors come
        from the Fisher information.  ``result.statistic`` holds the value
        minimised.  See the "Counts and likelihood" docs page.
    null : dict, optional
        Parameters held at given values for a null hypothesis, such as
        ``{"amplitude_0": 0.0}``: every pixel is refitted with them held and
        ``result.ts`` holds ``stat(null) - stat(best)`` (Delta chi-square for
        chi-square), ``result.sqrt_ts`` its square root, signed by the first
        parameter's best value minus its null value.
    profile : str or sequence of str, optional
        Free parameters whose profile-likelihood intervals
        (``result.intervals[name]``, the values where the statistic, the
        other parameters re-optimised, rose by ``n_sigma**2``) and upper
        limits (``result.upper_limits[name]``: risen by ``n_sigma_ul**2`` on
        the upper side) are computed for every pixel.  An end that reaches a
        bound is the bound, with the flag ``LIMIT_AT_BOUND``.
    n_sigma, n_sigma_ul : float, optional
        The size of the profile intervals (default 1) and of the upper
        limits (default 2), in sigma.
    fit_timeout : float, optional
        Seconds that fitting one block (at most ``chunk_n_max`` fits, with
        their guesses) may take.  A block still busy after that, such as
        one whose user model hangs, is abandoned: its fits get
        ``Status.TIMEOUT`` and the run goes on with the other blocks, on
        every scheduler.  Give it ample room (many times the usual time of
        a block).  None (the default) waits for ever.

    Returns
    -------
    FitResult or SelectionResult
        Parameter maps, 1-sigma errors, chi-square, status codes, number of
        model evaluations, quality flags, and ``.model``: the model (same kind as given)
        holding the fitted maps.  A :class:`~parfit.selection.SelectionResult`
        with ``select``.

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
    args = dict(
        data=data,
        fitter=fitter,
        world=world,
        fitting_axes=fitting_axes,
        initial=initial,
        weights=weights,
        mask=mask,
        data_unit=data_unit,
        chunk_n_max=chunk_n_max,
        scheduler=scheduler,
        diagnostics=diagnostics,
        diagnostics_path=diagnostics_path,
        diagnostics_callable=diagnostics_callable,
        fitter_kwargs=fitter_kwargs,
        progress=progress,
        overwrite=overwrite,
        preserve_native_chunks=preserve_native_chunks,
        equivalencies=equivalencies,
        fit_info=fit_info,
        output=output,
        resume=resume,
        statistic=statistic,
        null=null,
        profile=profile,
        n_sigma=n_sigma,
        n_sigma_ul=n_sigma_ul,
        output_cubes=output_cubes,
        fit_timeout=fit_timeout,
        refit=refit,
        refit_options=refit_options,
        min_snr=min_snr,
        initial_region=initial_region,
        order_components=order_components,
    )
    if is_candidates(model):
        return _select(list(model), select, select_threshold, args)
    if select is not None or select_threshold != 0.0:
        raise InputError(
            f"select={select!r} needs a list of candidate models, model=[m1, m2, ...]; got "
            f"one model ({type(model).__name__})"
        )
    return _run(_prepare(model, **args))


@dataclass
class _Prepared:
    """One run, checked and planned: nothing dispatched, nothing on disk changed yet."""

    model: Any
    options: "_Options"
    request: FitRequest
    units: Any
    translated: bool
    joint_plan: JointPlan | None
    execution: Execution
    block_size: int
    sink: Any
    diag_plan: Any


def _options(args: dict[str, Any]) -> "_Options":
    """The options of ``parallel_fit``'s arguments ``args`` that need neither model nor data."""
    return _Options.check(
        chunk_n_max=args["chunk_n_max"],
        progress=args["progress"],
        preserve_native_chunks=args["preserve_native_chunks"],
        fit_timeout=args["fit_timeout"],
        diagnostics=args["diagnostics"],
        diagnostics_path=args["diagnostics_path"],
        diagnostics_callable=args["diagnostics_callable"],
        scheduler=args["scheduler"],
        fitter_kwargs=args["fitter_kwargs"],
        initial=args["initial"],
        output=args["output"],
        resume=args["resume"],
        overwrite=args["overwrite"],
        output_cubes=args["output_cubes"],
        fit_info=args["fit_info"],
        likelihood=check_likelihood_args(
            args["statistic"], args["null"], args["profile"], args["n_sigma"], args["n_sigma_ul"]
        ),
        refit=check_refit(args["refit"], args["refit_options"]),
        min_snr=args["min_snr"],
        initial_region=args["initial_region"],
        order_components=args["order_components"],
    )


def _prepare(model: Any, **args: Any) -> _Prepared:
    """Every check of one run, the request, the scheduler, the store and diagnostics plans."""
    options = _options(args)
    request, units, translated, joint_plan = _build_request(
        model,
        args["data"],
        args["fitter"],
        args["world"],
        args["fitting_axes"],
        args["weights"],
        args["mask"],
        args["data_unit"],
        args["equivalencies"],
        options,
    )
    if options.initial_region is not None:
        check_region(options.initial_region, request.iterating_shape)
    execution = _execution(
        args["scheduler"], options.progress, request, args["diagnostics_callable"]
    )
    block_size = options.chunk_n_max or auto_block_size(
        request.n_fits, request.n_samples, execution.n_cores
    )
    # --- check the store and the diagnostics folder: nothing on disk changes -------
    sink: Any = None
    diag_plan = None
    diagnostics_path = args["diagnostics_path"]
    if options.output is not None:
        if options.diagnostics is not None:
            _check_apart(options.output, diagnostics_path)
        sink = StoreSink.check(
            options.output,
            request,
            overwrite=args["overwrite"],
            resume=args["resume"],
            cubes=options.output_cubes,
            chunk_n_max=block_size,
            compute_kwargs=execution.compute_kwargs,
            units=joint_plan.parameter_units() if joint_plan else units.parameter_units,
        )
        block_size = sink.chunk_n_max
    if options.diagnostics is not None:
        resumed_id = sink.resumed_run_id if sink is not None else None
        diag_plan = diag.check_diagnostics_path(
            diagnostics_path, overwrite=args["overwrite"], run_id=resumed_id
        )
    return _Prepared(
        model=model,
        options=options,
        request=request,
        units=units,
        translated=translated,
        joint_plan=joint_plan,
        execution=execution,
        block_size=block_size,
        sink=sink,
        diag_plan=diag_plan,
    )


def _run(prepared: _Prepared) -> FitResult:
    """Fit a prepared run: its first pass, its refit passes, and its result."""
    options, request, sink = prepared.options, prepared.request, prepared.sink
    execution, block_size = prepared.execution, prepared.block_size
    with contextlib.ExitStack() as held:
        if sink is not None:
            sink.open(lock=True, in_process=execution.in_process)
            held.callback(sink.close)
            request = _with_run_id(request, sink.run_id)
        else:
            sink = MemorySink(request)
        if prepared.diag_plan is not None:
            held.enter_context(
                diag.open_diagnostics_path(prepared.diag_plan, run_id=request.run_id)
            )
        info = RunInfo(
            run_id=request.run_id,
            fitter=request.fitter.describe(),
            fitting_axes=request.fitting_axes,
            iterating_axes=request.iterating_axes,
            data_shape=request.cube.shape,
            output=options.output,
        )
        if request.n_fits and options.initial == "mean":
            request, info.mean_start = mean_start(
                request, options.initial_region, execution.compute_kwargs
            )
        if request.n_fits:
            grid = block_grid(request, block_size, regular=options.output is not None)
            execute.run(request, grid, sink, execution, info, cubes=options.output_cubes)
        maps = sink.maps() if isinstance(sink, MemorySink) else sink.finish()
        if isinstance(sink, StoreSink):
            info.complete = sink.complete
            if info.mean_start is not None:
                from parfit.store import writer

                writer.record_mean_start(sink.path, info.mean_start)
        if options.refit is not None and request.n_fits:
            maps = _refit(request, maps, sink, options.refit, block_size, execution, info)
        if request.diagnostics is not None:
            _write_manifest(request, maps)
        if prepared.joint_plan is not None:
            return _joint_result(request, maps, sink, prepared.joint_plan, info)
        return _result(
            request, maps, sink, prepared.units, prepared.translated, prepared.model, info
        )


def _select(
    models: list[Any], select: Any, threshold: Any, args: dict[str, Any]
) -> SelectionResult:
    """Fit every candidate model, then choose per pixel (:mod:`parfit.selection`).

    Every candidate's run is checked and planned before the first is fitted.
    With ``output``, it is a folder: ``candidate_<k>.zarr`` per candidate
    and ``selection.zarr``; with diagnostics, ``candidate_<k>`` folders.
    """
    check_candidates(models)
    criterion, threshold = check_select(select, threshold, len(models))
    output = args["output"]
    if output is not None:
        if not isinstance(output, (str, os.PathLike)):
            raise InputTypeError(
                f"output must be a path (str or os.PathLike) to a folder for the candidates' "
                f"stores; got {type(output).__name__}"
            )
        folder = os.path.abspath(os.fspath(output))
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise OutputExistsError(
                f"output {str(output)!r} exists and is not a folder; with select= the output "
                f"is a folder of stores (candidate_<k>.zarr, selection.zarr)"
            )
        if is_parfit_store(folder):
            raise OutputExistsError(
                f"output {str(output)!r} is a parfit store; with select= the output is a "
                f"folder of stores; choose another path"
            )
    if args["order_components"] is None:
        args = dict(args, order_components=True)
    _options(args)  # what every candidate shares, refused without naming a candidate
    prepared = []
    for k, model in enumerate(models):
        own = dict(args)
        if output is not None:
            own["output"] = os.path.join(folder, candidate_store(k))
        if args["diagnostics_path"] is not None:
            own["diagnostics_path"] = os.path.join(
                os.fspath(args["diagnostics_path"]), f"candidate_{k}"
            )
        try:
            prepared.append(_prepare(model, **own))
        except (InputError, InputTypeError) as exc:
            raise type(exc)(f"model[{k}]: {exc}") from None
    first = prepared[0].request
    if any(p.request.iterating_shape != first.iterating_shape for p in prepared):
        raise InputError("the candidate models must fit the same maps")  # pragma: no cover
    n_valid = valid_counts(first, prepared[0].execution.compute_kwargs)
    candidates = [_run(p) for p in prepared]
    result = SelectionResult(
        candidates,
        criterion=criterion,
        threshold=threshold,
        n_free=[len(p.request.param_names) for p in prepared],
        n_valid=n_valid,
        statistic_name=first.likelihood.statistic,
        known_noise=first.cube.weights is not None,
        peaks=[peak_amplitudes(p.request.model, p.request.param_names) for p in prepared],
        components=[peak_components(p.request.model) for p in prepared],
    )
    if output is not None:
        result.to_zarr(os.path.join(folder, SELECTION_STORE), overwrite=True)
    return result


def _refit(
    request: FitRequest,
    maps: Any,
    sink: Any,
    options: RefitOptions,
    block_size: int,
    execution: Execution,
    info: RunInfo,
) -> Any:
    """The refit passes after the first (:mod:`parfit.engine.refit`), on ``maps``.

    In memory the maps change in place.  With a store, the maps are read,
    refitted pass by pass and each pass written back (a unit of resume);
    the returned maps are the store's.
    """
    names = request.param_names
    lower = [lo for _, _, lo, _ in request.parameters]
    upper = [hi for _, _, _, hi in request.parameters]
    # A pass's own progress bar would restart for every pass: each is logged instead.
    quiet = dataclasses.replace(execution, progress=False)
    infos: dict[int, list[tuple[Any, Any]]] = {}

    def fit(todo: np.ndarray, starts: dict[str, np.ndarray], pass_no: int) -> Any:
        part = dataclasses.replace(
            request,
            parameters=[(n, starts[n], lo, hi) for n, _, lo, hi in request.parameters],
            guess=False,
            todo=todo,
            min_snr=None,
            diagnostics=None,
            run_id=f"{request.run_id}-refit{pass_no}",
        )
        pass_sink = MemorySink(part)
        grid = block_grid(part, block_size, regular=isinstance(sink, StoreSink))
        execute.run(part, grid, pass_sink, quiet, RunInfo())
        maps = pass_sink.maps()
        if pass_sink.fit_info is not None:
            infos.setdefault(pass_no, []).append((maps["statistic"], pass_sink.fit_info))
        return maps

    def done(pass_no: int, todo: Any, replaced: np.ndarray, counts: dict[str, int]) -> None:
        log.info(
            "refit pass %d: %d fits refitted, %d improved (%d rescued from a failure)",
            pass_no,
            counts["refitted"],
            counts["improved"],
            counts["rescued"],
        )
        # The fit_info of a replaced fit: that of the attempt whose statistic it holds
        # (only in memory: fit_info is not written to stores).
        attempts = infos.pop(pass_no, [])
        if attempts and isinstance(sink, MemorySink) and sink.fit_info is not None:
            kept = np.asarray(maps["statistic"])
            for statistic, fit_info in attempts:
                same = replaced & (statistic == kept)
                sink.fit_info[same] = fit_info[same]

    goodness = request.likelihood.statistic != "cash"
    if isinstance(sink, MemorySink):
        info.refit = run_passes(
            maps, names, lower, upper, options, fit, goodness=goodness, done=done
        )
        return maps
    if not sink.complete:
        log.warning(
            "refit: the store %s is not complete (some blocks were not recorded), so no "
            "refit pass ran; resume the run to finish it",
            sink.path,
        )
        return maps

    def run_on_store(loaded: Any, first: int, changed: Any, record: Any) -> Any:
        def both(*args: Any) -> None:
            record(*args)
            done(*args)

        return run_passes(
            loaded,
            names,
            lower,
            upper,
            options,
            fit,
            goodness=goodness,
            first_pass=first,
            changed=changed,
            done=both,
        )

    info.refit = sink.refit(run_on_store)
    return sink.finish()


# --- the steps ------------------------------------------------------------------------


def fit_request(
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
    fitter_kwargs=None,
    equivalencies=None,
    statistic="chi2",
):
    """The checked :class:`~parfit.engine.request.FitRequest` that ``parallel_fit`` would run.

    Takes the arguments of :func:`parallel_fit` that say what is fitted
    (with the same checks and messages), for one cube or for a joint fit
    (``model`` and ``data`` mappings of datasets).  For fitting a few pixels
    again (:func:`parfit.engine.execute.fit_pixel`, as
    :meth:`parfit.analysis.Analysis.fit_pixel` does).

    Returns
    -------
    request : FitRequest
        What the engine fits.  For a joint fit, the datasets' samples end to
        end along one fitting axis, a :class:`~parfit.models.JointModel`
        (parameters ``"<dataset>.<parameter>"``; ``sample_slice(name)`` cuts
        a dataset's samples out of a row) and ``request.datasets`` the
        layout of every dataset's cube.
    units : UnitsPlan or JointPlan
        One cube: the :class:`~parfit.engine.units.UnitsPlan` that gives
        fitted values their units back.  A joint fit: the
        :class:`parfit.joint.JointPlan`, whose ``units`` holds each
        dataset's ``UnitsPlan`` (the unit of its world coordinates,
        ``units[name].world.units``, and of its data as fitted).

    Examples
    --------
    >>> import numpy as np
    >>> from parfit.models import Gaussian1D, Linear1D
    >>> request, units = fit_request(Linear1D(), np.zeros((5, 2, 3)), world=(np.arange(5.0),))
    >>> request.iterating_shape, request.param_names
    ((2, 3), ['slope', 'intercept'])

    A joint fit of two cubes on the same (2, 3) grid, with 5 and 4 samples
    per pixel, sharing the line centre:

    >>> b = Gaussian1D(1.0, 0.0, 1.0)
    >>> b.mean.tied = "a.mean"
    >>> request, plan = fit_request(
    ...     {"a": Gaussian1D(1.0, 0.0, 1.0), "b": b},
    ...     {"a": np.zeros((5, 2, 3)), "b": np.zeros((2, 3, 4))},
    ...     world={"a": (np.arange(5.0),), "b": (np.arange(4.0),)},
    ...     fitting_axes={"a": 0, "b": 2})
    >>> plan.datasets, request.iterating_shape, request.n_samples
    (('a', 'b'), (2, 3), 9)
    >>> request.model.sample_slice("b"), request.param_names[3:]
    (slice(5, 9, None), ['b.amplitude', 'b.mean', 'b.stddev'])
    """
    options = _Options.check(
        chunk_n_max=None,
        progress=False,
        preserve_native_chunks=False,
        fit_timeout=None,
        diagnostics=None,
        diagnostics_path=None,
        diagnostics_callable=None,
        scheduler=None,
        fitter_kwargs=fitter_kwargs,
        initial=initial,
        output=None,
        resume=False,
        overwrite=False,
        output_cubes=None,
        fit_info=False,
        likelihood=check_likelihood_args(statistic, None, None, 1.0, 2.0),
    )
    request, units, _, joint_plan = _build_request(
        model, data, fitter, world, fitting_axes, weights, mask, data_unit, equivalencies, options
    )
    return (request, units) if joint_plan is None else (request, joint_plan)


def _build_request(
    model: Any,
    data: Any,
    fitter: Any,
    world: Any,
    fitting_axes: Any,
    weights: Any,
    mask: Any,
    data_unit: Any,
    equivalencies: Any,
    options: "_Options",
) -> tuple[FitRequest, Any, bool, JointPlan | None]:
    """The checked request of one cube's fit or of a joint fit (mappings of datasets).

    Returns ``(request, units, translated, None)`` for one cube (see
    :func:`_request`) and ``(request, None, False, plan)`` for a joint fit.
    """
    if is_joint(model, data):
        request, plan = joint_request(
            _request,
            model,
            data,
            fitter,
            world,
            fitting_axes,
            weights,
            mask,
            data_unit,
            equivalencies,
            options,
        )
        _preflight(request.model, request.world, request.parameters, options.fit_timeout)
        return bind_likelihood(request, options.likelihood), None, False, plan
    if options.initial_by_dataset is not None:
        raise InputTypeError(
            "initial: a mapping of datasets is for a joint fit (model and data mappings "
            "of datasets); give None, 'model' or 'guess'"
        )
    request, units, translated = _request(
        model, data, fitter, world, fitting_axes, weights, mask, data_unit, equivalencies, options
    )
    return bind_likelihood(request, options.likelihood), units, translated, None


@dataclass(frozen=True)
class _Options:
    """The arguments of ``parallel_fit`` that need nothing else, checked."""

    chunk_n_max: int | None
    progress: bool
    fit_timeout: float | None
    guess: bool
    fitter_kwargs: dict[str, Any]
    fit_info: Any
    output: str | None
    output_cubes: tuple[str, ...]
    preserve_native_chunks: bool
    diagnostics: DiagnosticsRequest | None
    #: ``initial`` as a mapping of datasets (a joint fit): each dataset's choice.
    initial_by_dataset: dict[str, str] | None = None
    #: ``statistic``, ``null``, ``profile``, ``n_sigma`` and ``n_sigma_ul``.
    likelihood: LikelihoodRequest = LikelihoodRequest()
    #: ``"model"``, ``"guess"`` or ``"mean"``.
    initial: str = "model"
    refit: RefitOptions | None = None
    min_snr: float | None = None
    #: The pixels whose mean spectrum ``initial="mean"`` fits (None: all).
    initial_region: Any = None
    order_components: bool = False

    @classmethod
    def check(cls, **args: Any) -> "_Options":
        chunk_n_max = _check_chunk_n_max(args["chunk_n_max"])
        _check_bool("progress", args["progress"])
        _check_bool("preserve_native_chunks", args["preserve_native_chunks"])
        fit_timeout = _check_timeout(args["fit_timeout"])
        diag.check_diagnostics_args(
            args["diagnostics"], args["diagnostics_path"], args["diagnostics_callable"]
        )
        _check_scheduler(args["scheduler"])
        fitter_kwargs = args["fitter_kwargs"]
        if fitter_kwargs is not None and not isinstance(fitter_kwargs, dict):
            raise InputTypeError(
                f"fitter_kwargs must be a dict or None; got {type(fitter_kwargs).__name__}"
            )
        initial = args["initial"]
        by_dataset = None
        if isinstance(initial, Mapping):
            by_dataset = {}
            for name, value in initial.items():
                if value is not None and (
                    not isinstance(value, str) or value not in ("model", "guess")
                ):
                    raise InputError(
                        f"initial[{name!r}] must be None, 'model' or 'guess'; got {value!r}"
                    )
                by_dataset[name] = value or "model"
            initial = "guess" if "guess" in by_dataset.values() else "model"
        elif initial is not None and (
            not isinstance(initial, str) or initial not in INITIAL_VALUES
        ):
            raise InputError(f"initial must be None, 'model', 'guess' or 'mean'; got {initial!r}")
        fit_info = args["fit_info"]
        # overwrite is checked there, with or without output (it also governs
        # diagnostics_path).
        output = _check_output(
            args["output"],
            args["resume"],
            fit_info,
            args["preserve_native_chunks"],
            args["overwrite"],
        )
        output_cubes = _check_output_cubes(args["output_cubes"], output)
        if output_cubes and args.get("refit") is not None:
            raise InputError(
                "output_cubes cannot be combined with refit='neighbours': the cubes are "
                "written block by block in the first pass, before refits replace fits; leave "
                "out one of them (result.model evaluated on the world coordinates gives the "
                "model cube)"
            )
        if isinstance(fit_info, str):
            fit_info = (fit_info,)  # one name, as astropy documents
        if not (fit_info is False or fit_info is True or _is_str_sequence(fit_info)):
            raise InputTypeError(
                f"fit_info must be True, False or a sequence of names; got {fit_info!r}"
            )
        diagnostics = None
        if args["diagnostics"] is not None:
            diagnostics = DiagnosticsRequest(
                mode=args["diagnostics"],
                # Absolute, so workers started elsewhere write to the same place.
                path=os.path.abspath(args["diagnostics_path"]),
                callable=args["diagnostics_callable"],
            )
        return cls(
            chunk_n_max=chunk_n_max,
            progress=bool(args["progress"]),
            fit_timeout=fit_timeout,
            guess=initial == "guess",
            fitter_kwargs=dict(fitter_kwargs or {}),
            fit_info=fit_info,
            output=output,
            output_cubes=output_cubes,
            preserve_native_chunks=bool(args["preserve_native_chunks"]),
            diagnostics=diagnostics,
            initial_by_dataset=by_dataset,
            likelihood=args["likelihood"],
            initial=initial or "model",
            refit=args.get("refit"),
            min_snr=check_min_snr(args.get("min_snr")),
            initial_region=_check_initial_region(args.get("initial_region"), initial),
            order_components=_check_order_components(
                args.get("order_components"), args.get("refit") is not None
            ),
        )


def _request(
    model: Any,
    data: Any,
    fitter: Any,
    world: Any,
    fitting_axes: Any,
    weights: Any,
    mask: Any,
    data_unit: Any,
    equivalencies: Any,
    options: _Options,
) -> tuple[FitRequest, UnitsPlan, bool]:
    """Normalise the data, axes, model, fitter and world into a checked :class:`FitRequest`.

    Returns the request, the units plan (to give the maps their units back)
    and whether an astropy model was translated to a parfit one.
    """
    cube = normalise_cube(data, weights=weights, mask=mask, data_unit=data_unit, world=world)
    axes = normalise_fitting_axes(fitting_axes, cube.ndim, cube.dims)
    for a in axes:
        if cube.shape[a] == 0:
            raise InputError(f"data has length 0 along fitting axis {a}; there is nothing to fit")
    model = _function_as_model(model, len(axes))
    kind = _model_kind(model)
    fitter_obj = get_fitter(fitter)
    native_astropy = isinstance(fitter_obj, AstropyFitter)
    if isinstance(fitter_obj, AstropyFitter) and kind != "astropy":
        raise InputTypeError(
            f"fitter is an astropy fitter ({type(fitter_obj.fitter).__name__}), which needs an "
            f"astropy model, but model is a parfit {type(model).__name__}; use a parfit "
            f"fitter (fitter=None, 'trf', 'dogbox' or 'lm') with parfit models"
        )
    # An astropy fitter fits the astropy model as it is; parfit fitters meet
    # astropy models as their parfit equivalents.
    translated = kind == "astropy" and not native_astropy
    fit_model = model
    if translated:
        from parfit.models.astropy_bridge import from_astropy

        fit_model = from_astropy(model)
    n_inputs = int(fit_model.n_inputs)
    if n_inputs != len(axes):
        raise InputError(
            f"model takes {n_inputs} input(s) ({n_inputs}-D model) but fitting_axes="
            f"{axes} names {len(axes)} axis/axes; give one fitting axis per "
            f"model input"
        )
    world_spec = normalise_world(cube.world, cube, axes)
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
    fitter_obj.check(fit_model, options.fitter_kwargs)
    fitter_obj.check_fit_info(options.fit_info)
    if options.guess:
        _check_can_guess(fit_model, native_astropy)
    param_arrays = fitter_obj.parameter_arrays(fit_model)
    iterating_shape = tuple(n for a, n in enumerate(cube.shape) if a not in axes)
    _check_parameter_maps(param_arrays, iterating_shape)
    if not native_astropy:
        _preflight(fit_model, world_spec, param_arrays, options.fit_timeout)
    if options.output_cubes and native_astropy:
        raise InputError(
            "output_cubes needs a parfit fitter: with an astropy fitter the model cube is "
            "not computed; use fitter=None (astropy models are translated)"
        )
    request = FitRequest(
        cube=cube,
        fitting_axes=tuple(axes),
        model=fit_model,
        fitter=fitter_obj,
        world=world_spec,
        parameters=list(param_arrays),
        fitter_kwargs=options.fitter_kwargs,
        guess=options.guess,
        fit_info=options.fit_info,
        block_size=options.chunk_n_max,
        preserve_native_chunks=options.preserve_native_chunks,
        diagnostics=options.diagnostics,
        fit_timeout=options.fit_timeout,
        run_id=uuid.uuid4().hex,
        min_snr=options.min_snr,
        order_components=options.order_components,
        refit=options.refit,
        initial_mean=options.initial == "mean",
    )
    check_native_chunks(request)
    return request, units, translated


def _with_run_id(request: FitRequest, run_id: str) -> FitRequest:
    import dataclasses

    return dataclasses.replace(request, run_id=run_id)


def _execution(
    scheduler: Any, progress: bool, request: FitRequest, diagnostics_callable: Any
) -> Execution:
    """Where the block tasks run; refuse what cannot be pickled when they run elsewhere."""
    if _without_dask(scheduler):
        return Execution(
            compute_kwargs={"scheduler": _threaded_get},
            progress=progress,
            in_process=True,
            threads=True,
        )
    compute_kwargs, needs_pickle, in_process = _resolve_scheduler(scheduler)
    if needs_pickle:
        _check_picklable(
            fit_model=request.model,
            fitter=request.fitter,
            diagnostics_callable=diagnostics_callable,
        )
    return Execution(
        compute_kwargs=compute_kwargs,
        client=_client_for(compute_kwargs),
        progress=progress,
        in_process=in_process,
    )


def _client_for(compute_kwargs: dict[str, Any]) -> Any:
    """The distributed Client the computation will run on, if any."""
    scheduler = compute_kwargs.get("scheduler")
    if _is_client(scheduler):
        return scheduler
    if scheduler is None and "distributed" in sys.modules:  # else no Client can be running
        from distributed import default_client

        try:
            return default_client()
        except ValueError:
            return None
    return None


def _write_manifest(request: FitRequest, maps: Any) -> None:
    """The diagnostics folder's ``manifest.csv``: one row per reported fit."""
    assert request.diagnostics is not None
    shape = request.iterating_shape
    reported = np.asarray(maps["reported"]).reshape(-1)
    status = np.asarray(maps["status"]).reshape(-1)
    n_warnings = np.asarray(maps["n_warnings"]).reshape(-1)
    flags = np.asarray(maps["flags"]).reshape(-1)
    rows = []
    for flat in np.flatnonzero(reported > 0):
        index = np.unravel_index(flat, shape)
        rows.append(
            (
                diag.folder_name([int(k) for k in index], shape),
                index,
                status[flat],
                n_warnings[flat],
                flags[flat],
            )
        )
    diag.write_manifest(request.diagnostics.path, rows, request.run_id)


def _result(
    request: FitRequest,
    maps: Any,
    sink: Any,
    units: UnitsPlan,
    translated: bool,
    model: Any,
    info: RunInfo,
) -> FitResult:
    """The :class:`FitResult` over ``maps`` (in memory, or read lazily from the store)."""
    names = request.param_names

    def fitted_model(parameters: Any) -> Any:
        fitted = units.restore({name: parameters[name] for name in names})
        if translated:
            from parfit.models.astropy_bridge import to_astropy

            fitted = to_astropy(fitted, template=model)
        return fitted

    model_or_factory: Any = fitted_model
    if units.parameter_units is None:
        # An astropy model with units tells its parameters' units once it
        # holds values: build it now, and record them in the store.
        model_or_factory = fitted_model(maps)
        if isinstance(sink, StoreSink):
            from parfit.store import writer

            writer.write_units(sink.path, units.parameter_units)

    cube = request.cube
    iterating = request.iterating_axes
    dims = tuple(cube.dims[a] for a in iterating) if cube.dims else None
    return FitResult.from_fields(
        maps,
        param_names=names,
        model=model_or_factory,
        units=units.parameter_units,
        dims=dims,
        coords={d: c for d, c in cube.coords.items() if dims and d in dims},
        wcs=iterating_wcs(cube.world, iterating, cube.ndim),
        start_model=model,
        fit_info=sink.fit_info if isinstance(sink, MemorySink) else None,
        run=info,
        likelihood=request.likelihood,
    )


def _joint_result(
    request: FitRequest, maps: Any, sink: Any, plan: JointPlan, info: RunInfo
) -> FitResult:
    """The :class:`FitResult` of a joint fit: maps ``"<dataset>.<parameter>"``."""
    joint = request.model
    names = request.param_names

    def fitted_model(parameters: Any) -> Any:
        members = {}
        for dataset in plan.datasets:
            prefix = f"{dataset}."
            own = {n[len(prefix) :]: parameters[n] for n in names if n.startswith(prefix)}
            members[dataset] = plan.units[dataset].restore(own)
        fitted = JointModel(members, joint.sizes)
        for name, param in joint.parameters.items():
            fitted.parameters[name].update(tied=param.tied)
        return fitted

    model_or_factory: Any = fitted_model
    units = plan.parameter_units()
    if units is None:
        model_or_factory = fitted_model(maps)
        units = plan.parameter_units()
        if isinstance(sink, StoreSink):
            from parfit.store import writer

            writer.write_units(sink.path, units)
    return FitResult.from_fields(
        maps,
        param_names=names,
        model=model_or_factory,
        units=units,
        dims=plan.dims,
        coords={d: c for d, c in plan.coords.items() if plan.dims and d in plan.dims},
        wcs=plan.wcs,
        start_model=joint,
        fit_info=sink.fit_info if isinstance(sink, MemorySink) else None,
        run=info,
        likelihood=request.likelihood,
    )


def _check_output(output, resume, fit_info, preserve_native_chunks, overwrite=False):
    if not isinstance(resume, (bool, np.bool_)):
        raise InputTypeError(f"resume must be True or False; got {resume!r}")
    if not isinstance(overwrite, (bool, np.bool_)):  # "false" is truthy
        raise InputTypeError(f"overwrite must be True or False; got {overwrite!r}")
    if output is None:
        if resume:
            raise InputError("resume=True needs output= (the store to resume)")
        return None
    if not isinstance(output, (str, os.PathLike)):
        raise InputTypeError(
            f"output must be a path (str or os.PathLike) to a zarr store to create; got "
            f"{type(output).__name__}"
        )
    if fit_info:
        raise InputError(
            "fit_info cannot be combined with output=: per-fit fitter information is not "
            "written to the store; leave fit_info=False or fit without output"
        )
    if preserve_native_chunks:
        raise InputError(
            "preserve_native_chunks=True cannot be combined with output=: the store is "
            "written in parfit's regular blocks of chunk_n_max fits"
        )
    return os.path.abspath(os.fspath(output))


def _check_output_cubes(output_cubes, output):
    if output_cubes is None:
        return ()
    if isinstance(output_cubes, str):
        output_cubes = (output_cubes,)
    if not (
        isinstance(output_cubes, (list, tuple))
        and all(isinstance(c, str) and c in OUTPUT_CUBES for c in output_cubes)
    ):
        raise InputError(
            f"output_cubes must be a sequence of "
            f"{', '.join(map(repr, OUTPUT_CUBES))}; got {output_cubes!r}"
        )
    if output is None:
        raise InputError("output_cubes needs output= (the cubes are written to the store)")
    return tuple(dict.fromkeys(output_cubes))


def _check_can_guess(model, native_astropy):
    """Refuse ``initial="guess"`` before dispatch when the model cannot guess."""
    if native_astropy:
        raise InputError(
            "initial='guess' needs a parfit fitter: astropy fitters fit the astropy model "
            "from its own starting values; use fitter=None to fit it with parfit's solver"
        )
    if not model.can_guess:
        raise InputError(f"initial='guess': {model._cannot_guess_message()}")


# --- argument checks --------------------------------------------------------


def _check_initial_region(region: Any, initial: Any) -> Any:
    if region is None:
        return None
    if initial != "mean":
        raise InputError(
            f"initial_region needs initial='mean' (it says whose mean spectrum gives the "
            f"start); got initial={initial!r}"
        )
    return region


def _check_order_components(order: Any, default: bool) -> bool:
    if order is None:
        return default
    _check_bool("order_components", order)
    return bool(order)


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
        return None
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
        if scheduler not in SCHEDULER_NAMES:
            raise InputError(
                f"scheduler={scheduler!r} is not known; expected None, one of "
                f"{', '.join(map(repr, SCHEDULER_NAMES))}, or a distributed.Client"
            )
        return
    raise InputTypeError(
        f"scheduler must be None, a scheduler name or a distributed.Client; got "
        f"{type(scheduler).__name__}"
    )


def _is_client(obj):
    return isinstance(obj, loaded_class("distributed", "Client"))


def _function_as_model(model, n_inputs):
    """A plain function becomes a model; a model class is refused with a hint."""
    import inspect

    from parfit.models.base import Model

    if isinstance(model, type) and issubclass(model, Model):
        raise InputTypeError(
            f"model is the class {model.__name__}; give an instance holding the starting "
            f"values, e.g. model={model.__name__}()"
        )
    if inspect.isfunction(model):
        from parfit.models import model_from_function

        return model_from_function(model, n_inputs=n_inputs)()
    return model


def _model_kind(model):
    from parfit.models.base import Model

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


def _without_dask(scheduler: Any) -> bool:
    """True when dask's default scheduler is asked for and nothing can have configured dask.

    That is: dask is not imported (no ``dask.config.set``, no Client), no
    ``DASK_*`` environment variable and no YAML file in dask's configuration
    folders.  dask's default is then its threaded scheduler, which parfit
    runs itself on a cube in memory, without importing dask (0.1-0.2 s of a
    first call).
    """
    if scheduler not in (None, "default") or "dask" in sys.modules:
        return False
    if any(key.startswith("DASK_") for key in os.environ):
        return False
    folders = (
        "/etc/dask",
        os.path.join(sys.prefix, "etc", "dask"),
        os.path.join(os.path.expanduser("~"), ".config", "dask"),
    )
    return not any(os.path.isdir(folder) and os.listdir(folder) for folder in folders)


def _threaded_get(dsk: Any, keys: Any, **kwargs: Any) -> Any:
    """dask's threaded scheduler (``dask.threaded.get``), imported when first used."""
    import dask.threaded

    return dask.threaded.get(dsk, keys, **kwargs)


def _resolve_scheduler(scheduler):
    """dask compute keywords, whether tasks will be pickled, and whether they run here.

    Tasks run here (in this process's threads, or this thread) with dask's
    threaded and synchronous schedulers; with a custom scheduler, who knows.
    """
    import dask
    import dask.local
    import dask.multiprocessing
    import dask.threaded
    from dask.base import get_scheduler, named_schedulers

    kwargs = {} if scheduler in (None, "default") else {"scheduler": scheduler}
    probe = dask.delayed(0)
    local = scheduler in (None, "default") or (
        isinstance(scheduler, str) and scheduler in named_schedulers
    )
    if local and "distributed" not in sys.modules and dask.config.get("scheduler", None) is None:
        # No Client can be running: pass dask the scheduler's function itself,
        # so that neither this nor dask.compute imports distributed (0.5 s of a
        # first call) to look for one.  dask's default for delayed tasks is
        # the threaded scheduler.
        default = scheduler in (None, "default")
        get = probe.__dask_scheduler__ if default else named_schedulers[scheduler]
        kwargs["scheduler"] = get
    else:
        get = get_scheduler(scheduler=kwargs.get("scheduler"), collections=[probe])
    needs_pickle = get is dask.multiprocessing.get or _is_client(getattr(get, "__self__", None))
    if get is dask.multiprocessing.get and dask.config.get("chunksize", None) is None:
        # dask hands a process tasks in batches of 6 by default; with a few
        # dozen equal blocks of fits that leaves one process idle at the
        # end.  A block is far more work than a hand-over: one at a time.
        kwargs["chunksize"] = 1
    in_process = get is dask.threaded.get or get is dask.local.get_sync
    return kwargs, needs_pickle, in_process


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
