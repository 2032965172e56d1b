"""A whole analysis from a config: open, fit, record, write, read back, inspect.

An analysis folder (``output.path`` of the config) holds

* ``config.yaml`` - the config as run (defaults filled in, paths absolute),
* ``run.json`` - the run record: parfit version, config hash, input
  fingerprint, timings, counts per status and per quality flag, how it ended
  (for a joint config, the path and fingerprint of each dataset's cube),
* ``maps.zarr`` - the maps, streamed block by block (resumable), and
  ``maps.nc`` / ``maps.fits`` when ``output.format`` asks for them,
* ``diagnostics/`` - per-fit folders (unless ``diagnostics.path`` is set).

A model selection (a ``select`` section: candidate models, the best chosen
per pixel) writes ``candidate_<k>.zarr`` (each candidate's maps, streamed)
and ``selection.zarr`` (the choice) in place of ``maps.zarr``: the folder
is the output folder of ``parallel_fit(model=[...], select=...)``, which
:func:`parfit.selection.read_selection` reads back.

:class:`Analysis` runs a config in Python (``parfit run`` is a thin shell
around it) and :meth:`Analysis.read` restores one from its folder.  State is
YAML, JSON and zarr only; nothing is pickled.  A joint config (a
``datasets`` section: several cubes fitted together, pixel by pixel) runs
the same way into one store, whose maps are named ``<dataset>.<parameter>``.
The folder's file names and its record are :mod:`parfit.analysis_folder`'s.
"""

import json
import logging
import math
import os
import shutil
import textwrap
import time
from pathlib import Path

import numpy as np

from parfit.config import build_model, config_hash, load_config, open_input, validate_config
from parfit.config.build import open_region
from parfit.config.schema import (
    JOINT_SECTIONS,
    SECTIONS,
    SELECT_SECTIONS,
    is_joint_config,
    is_selection_config,
    resolve,
    set_base_dir,
)
from parfit.config.validate import config_to_dict, config_to_yaml

from .analysis_folder import (
    CONFIG_HEADER,
    CONFIG_NAME,
    EXPORTS,
    MAPS_NAME,
    RUN_RECORD,
    candidate_stores,
    dataset_fingerprint,
    foreign_files,
    now,
    selection_record,
    starts_record,
    status_and_flag_counts,
    write_json,
)
from .errors import ConfigError, InputError, OutputExistsError
from .result import read_result  # noqa: F401  (its home was here; kept importable)
from .status import NOT_ATTEMPTED, Flag, Status
from .store.layout import SELECTION_STORE, candidate_store, is_selection_folder

__all__ = ["Analysis", "open_input", "read_result", "RUN_RECORD", "CONFIG_NAME", "MAPS_NAME"]

log = logging.getLogger(__name__)


# --- the analysis ---------------------------------------------------------------------------


class Analysis:
    """A fit described by a config: run it, write it, read it back.

    Parameters
    ----------
    config : dict or validated config
        A config as a dict (the YAML's structure) or as returned by
        :func:`parfit.config.load_config`.
    base_dir : path-like, optional
        Folder that relative paths of a dict config are relative to
        (default: the current folder).

    Attributes
    ----------
    config : pydantic model
        The validated config.
    result : FitResult, SelectionResult or None
        The maps, after :meth:`run` or :meth:`read` (a
        :class:`parfit.selection.SelectionResult` for a ``select`` config).
    record : dict or None
        The run record (what ``run.json`` holds).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from parfit.datasets import gaussian_cube
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> gaussian_cube((30, 4, 5), seed=1).to_fits(folder / "cube.fits")
    PosixPath(...)
    >>> analysis = Analysis({
    ...     "input": {"path": "cube.fits", "fitting_axes": "spectral"},
    ...     "model": {"components": [{"type": "Gaussian1D"}], "initial": "guess"},
    ...     "run": {"scheduler": "synchronous", "progress": False},
    ...     "output": {"path": "results"}}, base_dir=folder)
    >>> result = analysis.run()
    >>> analysis.record["status_counts"]
    {'OK': 20}
    >>> Analysis.read(folder / "results").result.shape
    (4, 5)
    """

    def __init__(self, config, *, base_dir=None):
        if isinstance(config, (str, os.PathLike)):
            raise InputError(
                "Analysis(config) takes a config dict or object; use "
                f"Analysis.from_yaml({str(config)!r}) to read a file"
            )
        if isinstance(config, dict):
            config = validate_config(config, base_dir=base_dir, check_files=False)
        elif base_dir is not None:
            set_base_dir(config, base_dir)
        fields = getattr(type(config), "model_fields", None)
        if not isinstance(fields, dict) or all(
            set(sections) - set(fields) for sections in (SECTIONS, JOINT_SECTIONS, SELECT_SECTIONS)
        ):
            raise InputError(
                f"config must be a dict or a validated parfit config; got {type(config).__name__}"
            )
        self.config = config
        self.result = None
        self.record = None

    @classmethod
    def from_yaml(cls, path):
        """Read and validate a config file (see :func:`parfit.config.load_config`).

        Raises
        ------
        parfit.errors.ConfigError
            Listing every problem of the file.
        """
        return cls(load_config(path))

    def __repr__(self):
        state = "not run" if self.result is None else repr(self.result)
        if self.joint:
            what = "datasets " + ", ".join(
                f"{name} ({entry.input.path!r})" for name, entry in self.config.datasets.items()
            )
        else:
            what = repr(self.config.input.path)
        return f"<Analysis of {what} -> {str(self.output_path)!r}: {state}>"

    @property
    def joint(self):
        """Whether the config fits several cubes together (a ``datasets`` section)."""
        return is_joint_config(self.config)

    @property
    def select(self):
        """Whether the config chooses per pixel between candidate models (a ``select`` section)."""
        return is_selection_config(self.config)

    # --- paths ----------------------------------------------------------------

    @property
    def output_path(self):
        """The analysis folder (``output.path``, absolute)."""
        return resolve(self.config, self.config.output.path)

    @property
    def diagnostics_path(self):
        """Folder of the per-fit diagnostics (None with ``mode: none``)."""
        diag = self.config.diagnostics
        if diag.mode == "none":
            return None
        if diag.path is None:
            return self.output_path / "diagnostics"
        return resolve(self.config, diag.path)

    # --- running ----------------------------------------------------------------

    def run(self, *, progress=None):
        """Fit every pixel as the config says and write the analysis folder.

        Parameters
        ----------
        progress : bool, optional
            Show a progress bar; default ``run.progress`` of the config.

        Returns
        -------
        FitResult or SelectionResult
            Also kept as :attr:`result`; :attr:`record` holds the run record
            written to ``run.json``.  A ``select`` config gives the
            :class:`parfit.selection.SelectionResult` of its candidates.

        Raises
        ------
        OutputExistsError
            If the output folder holds an earlier run and neither
            ``output.overwrite`` nor ``output.resume`` is set.
        ConfigError
            If the input does not match the config.
        """
        from . import parallel_fit
        from .store.layout import ATTRS_KEY

        cfg = self.config
        started = now()
        t0 = time.perf_counter()
        out = self.output_path
        model = build_model(cfg)
        opened = open_input(cfg)
        region = None if self.joint else open_region(cfg, opened)
        t_open = time.perf_counter()
        self._prepare_folder(out)
        record = self._start_record(started)
        write_json(out / RUN_RECORD, record)
        # A joint fit's samples are every dataset's, end to end.
        cubes = list(opened.values()) if self.joint else [opened]
        n_samples = sum(math.prod(c["shape"][a] for a in c["fitting_axes"]) for c in cubes)
        first = cubes[0]
        n_fits = math.prod(
            n for a, n in enumerate(first["shape"]) if a not in first["fitting_axes"]
        )
        block_size = cfg.run.block_size(n_fits, n_samples)
        record["chunk_n_max"] = block_size
        data = {n: c["data"] for n, c in opened.items()} if self.joint else opened["data"]
        try:
            with _scheduler(cfg.run) as scheduler:
                result = parallel_fit(
                    model,
                    data,
                    **_fit_arguments(cfg, opened),
                    chunk_n_max=block_size,
                    scheduler=scheduler,
                    preserve_native_chunks=cfg.run.preserve_native_chunks,
                    diagnostics=None if cfg.diagnostics.mode == "none" else cfg.diagnostics.mode,
                    diagnostics_path=self.diagnostics_path,
                    progress=cfg.run.progress if progress is None else progress,
                    fit_timeout=cfg.run.fit_timeout,
                    overwrite=cfg.output.overwrite,
                    resume=cfg.output.resume,
                    output=out if self.select else out / MAPS_NAME,
                    output_cubes=tuple(cfg.output.cubes) or None,
                    **_likelihood_arguments(cfg),
                    **_strategy_arguments(cfg, region),
                )
        except BaseException as exc:
            # The record says how the run ended, even when it did not finish.
            interrupted = isinstance(exc, KeyboardInterrupt)
            record.update(
                finished=now(),
                exit_status="interrupted" if interrupted else "error",
                error=f"{type(exc).__name__}: {exc}",
                timings={
                    "open_s": round(t_open - t0, 3),
                    "total_s": round(time.perf_counter() - t0, 3),
                },
            )
            write_json(out / RUN_RECORD, record)
            raise
        t_fit = time.perf_counter()
        exported = []
        if cfg.output.format in EXPORTS:
            target = out / EXPORTS[cfg.output.format]
            if self.select:  # the chosen maps (validation refuses fits)
                if target.exists():
                    target.unlink()
                result.to_xarray().to_netcdf(target)
            elif cfg.output.format == "netcdf":
                result.to_netcdf(target, overwrite=True)
            else:
                result.to_fits(target, overwrite=True)
            exported.append(target.name)
        t_end = time.perf_counter()

        import zarr

        fits = list(result.candidates) if self.select else [result]
        stores = [out / candidate_store(k) for k in range(len(fits))] if self.select else None
        provs = [
            dict(zarr.open_group(str(store), mode="r").attrs[ATTRS_KEY])
            for store in (stores or [out / MAPS_NAME])
        ]
        prov = provs[0]
        record.update(self._outcome(result))
        record.update(
            finished=now(),
            run_id=prov.get("run_id"),
            input_fingerprint=prov.get("input_fingerprint"),
            complete=all(bool(p.get("complete")) for p in provs),
            blocks_fitted=sum(fit.run.blocks_fitted for fit in fits),
            blocks_resumed=sum(fit.run.blocks_resumed for fit in fits),
            failed_blocks=[block.as_dict() for fit in fits for block in fit.run.failed_blocks],
            exports=exported,
            timings={
                "open_s": round(t_open - t0, 3),
                "fit_s": round(t_fit - t_open, 3),
                "export_s": round(t_end - t_fit, 3),
                "total_s": round(t_end - t0, 3),
            },
        )
        if self.joint:
            for name, entry in record["datasets"].items():
                entry["fingerprint"] = dataset_fingerprint(opened[name])
        else:
            record["input"]["fingerprint"] = prov.get("input_fingerprint")
        if self.select:
            record["selection"] = selection_record(cfg.select, result, provs)
        else:
            record.update(starts_record(result.run))
        write_json(out / RUN_RECORD, record)
        self.result, self.record = result, record
        return result

    def _prepare_folder(self, out):
        """Check the output folder and write config.yaml; never touch foreign files."""
        cfg = self.config
        if out.exists() and not out.is_dir():
            raise OutputExistsError(f"output.path {str(out)!r} exists and is not a folder")
        foreign = foreign_files(out)
        if foreign:
            raise OutputExistsError(
                f"output.path {str(out)!r} holds {', '.join(foreign)}, which parfit did not "
                f"write; parfit never replaces such files: choose another output.path"
            )
        earlier = [
            n
            for n in (RUN_RECORD, CONFIG_NAME, MAPS_NAME, SELECTION_STORE, *EXPORTS.values())
            if (out / n).exists()
        ] + candidate_stores(out)
        if set(earlier) <= {RUN_RECORD, CONFIG_NAME}:
            earlier = []  # a run that stopped before fitting anything: nothing to keep
        if earlier and not (cfg.output.overwrite or cfg.output.resume):
            raise OutputExistsError(
                f"output.path {str(out)!r} holds the results of an earlier run "
                f"({', '.join(earlier)}); set output.overwrite: true to replace them, "
                f"output.resume: true to finish an interrupted run, or choose another "
                f"output.path"
            )
        if (
            cfg.output.resume
            and (out / CONFIG_NAME).exists()
            and ((out / MAPS_NAME).exists() or candidate_stores(out))
        ):
            self._check_resumable(out)
        out.mkdir(parents=True, exist_ok=True)
        if cfg.output.overwrite:
            # All of parfit's (checked above); removed together, so that an
            # interrupted run never leaves new records beside old maps.
            for name in (RUN_RECORD, CONFIG_NAME, *EXPORTS.values()):
                if (out / name).is_file():
                    (out / name).unlink()
            for name in (MAPS_NAME, SELECTION_STORE, *candidate_stores(out)):
                if (out / name).exists():
                    shutil.rmtree(out / name)
        (out / CONFIG_NAME).write_text(CONFIG_HEADER + config_to_yaml(cfg, resolve_paths=True))

    def _check_resumable(self, out):
        try:
            before = load_config(out / CONFIG_NAME, check_files=False)
        except ConfigError:
            return  # the store's own fingerprints still guard the resume
        old = config_to_dict(before, resolve_paths=True)
        new = config_to_dict(self.config, resolve_paths=True)
        what = "datasets" if self.joint else "input, select" if self.select else "input, model"
        for section in ("input", "model", "datasets", "select", "fitter", "likelihood", "strategy"):
            if old.get(section) != new.get(section):
                raise ConfigError(
                    f"output.resume: the run in {str(out)!r} used a different "
                    f"{section!r} section; resume needs the same {what}, fitter, likelihood "
                    f"and strategy (set output.overwrite: true to start again)",
                    [("output.resume", None, f"different {section} section")],
                )

    def _start_record(self, started):
        from . import __version__

        cfg = self.config
        if self.joint:
            # Each dataset's cube; the store's input_fingerprint is of all of them.
            inputs = {
                "datasets": {
                    name: {"path": str(resolve(cfg, entry.input.path)), "fingerprint": None}
                    for name, entry in cfg.datasets.items()
                }
            }
        else:
            inputs = {"input": {"path": str(resolve(cfg, cfg.input.path)), "fingerprint": None}}
        return {
            "parfit_version": __version__,
            "config_hash": config_hash(cfg),
            "config_file": str(self.output_path / CONFIG_NAME),
            **inputs,
            "output": str(self.output_path),
            "maps": SELECTION_STORE if self.select else MAPS_NAME,
            "diagnostics_path": None
            if self.diagnostics_path is None
            else str(self.diagnostics_path),
            "started": started,
            "finished": None,
            "exit_status": "running",
            "resumed": bool(cfg.output.resume),
            "scheduler": cfg.run.scheduler,
        }

    def _outcome(self, result):
        statuses, flags = status_and_flag_counts(result)
        counts = {s.name: n for s, n in statuses.items()}
        n_fits = result.n_fits
        # One definition of "failed" and "not attempted" (parfit.status).  A
        # selection's fits are those chosen (the first candidate's where none
        # succeeded).
        failed = int(sum(n for s, n in statuses.items() if s.is_failed()))
        attempted = n_fits - int(sum(n for s, n in statuses.items() if s in NOT_ATTEMPTED))
        fraction = failed / attempted if attempted else 0.0
        limit = self.config.run.max_failed_fraction
        return {
            "n_fits": n_fits,
            "n_attempted": attempted,
            "n_failed": failed,
            "failed_fraction": fraction,
            "max_failed_fraction": limit,
            "status_counts": counts,
            "flag_counts": {f.name: n for f, n in flags.items()},
            "exit_status": "too_many_failures" if fraction > limit else "ok",
        }

    # --- writing and reading ---------------------------------------------------------

    def write(self, path, *, overwrite=False):
        """Write the analysis (config, run record, maps) to the folder ``path``.

        The folder can be restored with :meth:`read`.  Writing to the
        analysis's own output folder does nothing more than :meth:`run`.

        Raises
        ------
        OutputExistsError
            If ``path`` already holds an analysis and ``overwrite`` is False.
        """
        if self.result is None:
            raise InputError("this analysis has no result yet; call run() (or read()) first")
        path = Path(path).resolve()
        if path == self.output_path.resolve():
            return path
        existing = [
            n for n in (CONFIG_NAME, RUN_RECORD, MAPS_NAME, SELECTION_STORE) if (path / n).exists()
        ] + candidate_stores(path)
        if existing and not overwrite:
            raise OutputExistsError(
                f"{str(path)!r} already holds {', '.join(existing)}; pass "
                f"overwrite=True to replace them"
            )
        if path.exists() and not path.is_dir():
            raise OutputExistsError(f"{str(path)!r} exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        if self.select:
            for k, candidate in enumerate(self.result.candidates):
                candidate.to_zarr(path / candidate_store(k), overwrite=overwrite)
            self.result.to_zarr(path / SELECTION_STORE, overwrite=overwrite)
        else:
            self.result.to_zarr(path / MAPS_NAME, overwrite=overwrite)
        (path / CONFIG_NAME).write_text(
            CONFIG_HEADER + config_to_yaml(self.config, resolve_paths=True)
        )
        maps = SELECTION_STORE if self.select else MAPS_NAME
        record = dict(self.record or {}, maps=maps, written=now())
        write_json(path / RUN_RECORD, record)
        return path

    @classmethod
    def read(cls, path):
        """Restore an analysis from its folder (as written by :meth:`run` or :meth:`write`).

        Raises
        ------
        InputError
            If ``path`` is not an analysis folder.
        """
        path = Path(path)
        if not (path / CONFIG_NAME).is_file():
            raise InputError(
                f"{str(path)!r} is not a parfit analysis folder (no "
                f"{CONFIG_NAME}); expected the output.path of a run"
            )
        cfg = load_config(path / CONFIG_NAME, check_files=False)
        analysis = cls(cfg)
        if (path / RUN_RECORD).is_file():
            analysis.record = json.loads((path / RUN_RECORD).read_text())
        if analysis.select and is_selection_folder(path):
            from .selection import read_selection

            analysis.result = read_selection(path)
        elif (path / MAPS_NAME).exists():
            analysis.result = read_result(path / MAPS_NAME)
        return analysis

    # --- looking at one pixel ------------------------------------------------------

    def fit_pixel(self, pixel, *, candidate=None):
        """Fit one pixel again and return what it is made of.

        The pixel is fitted as in the run (the same request, through the same
        kernel), for a config of one cube or a joint config of several:
        from the run's start (with ``initial: mean``, the mean spectrum's
        fit that ``run.json`` records, else fitted again), skipped below
        ``strategy.min_snr``, its components ordered as in the run.  A run
        with ``strategy.refit`` may hold a solution found from the
        neighbours there (its ``origin`` map is above 0); this fit is the
        first pass's.

        Parameters
        ----------
        pixel : tuple of int
            Indices along the iterating axes, in the maps' array order (as in
            diagnostics folder names).
        candidate : int, optional
            A ``select`` config only: the candidate model to fit (its index
            in ``select.candidates``); default the candidate the run chose at
            the pixel (the first where none succeeded).

        Returns
        -------
        dict
            ``pixel``; ``x`` (world values along the fitting axis),
            ``data``, ``start`` and ``fitted`` (model values at ``x``;
            ``fitted`` None unless the fit is OK), ``x_unit`` and
            ``data_unit`` (strings or None); ``status`` (a
            :class:`parfit.Status`), ``flags`` (a :class:`parfit.Flag`) and
            ``parameters`` (fitted values by name, in the units of the maps).

            For a joint config the per-sample values are per dataset:
            ``x``, ``data``, ``start``, ``fitted``, ``x_unit`` and
            ``data_unit`` are ``{dataset: value}`` mappings, each in that
            dataset's own samples and units; ``fitted[name]`` is None for a
            dataset with no valid sample at the pixel (flag
            ``DATASET_MISSING``: the others were fitted).  ``parameters``
            keeps the joint names (``"<dataset>.<parameter>"``), and
            ``datasets`` (a key only joint configs have) is the tuple of
            dataset names.

            For a ``select`` config, ``candidate`` (a key only they have) is
            the candidate fitted.

        Raises
        ------
        InputError
            If ``pixel`` is not a pixel of the maps, a dataset is fitted
            along more than one axis (only 1-D fits are drawn), or
            ``candidate`` is given without a ``select`` config or is not one
            of its candidates, or a ``select`` config that was not run is
            given no ``candidate``.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from parfit.datasets import gaussian_cube
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> for name, n in (("a", 30), ("b", 20)):
        ...     _ = gaussian_cube((n, 4, 5), seed=n).to_fits(folder / f"{name}.fits")
        >>> def dataset(path):
        ...     return {"input": {"path": path, "fitting_axes": "spectral"},
        ...             "model": {"components": [{"type": "Gaussian1D"}], "initial": "guess"}}
        >>> analysis = Analysis({
        ...     "datasets": {"a": dataset("a.fits"), "b": dataset("b.fits")},
        ...     "run": {"scheduler": "synchronous", "progress": False},
        ...     "output": {"path": "results"}}, base_dir=folder)
        >>> fit = analysis.fit_pixel((1, 2))
        >>> fit["datasets"], fit["status"]
        (('a', 'b'), <Status.OK: 1>)
        >>> {name: len(values) for name, values in fit["fitted"].items()}
        {'a': 30, 'b': 20}
        >>> list(fit["parameters"])[:3]
        ['a.amplitude', 'a.mean', 'a.stddev']
        """
        from .engine.execute import fit_pixel
        from .fit import fit_request

        cfg = self.config
        model = build_model(cfg)
        if self.select:
            candidate = self._candidate_at(pixel, candidate, len(model))
            model = model[candidate]
        elif candidate is not None:
            raise InputError(
                f"candidate={candidate!r} is for a config that selects between candidate "
                f"models (a select section); this one fits one model"
            )
        opened = open_input(cfg)
        data = {n: o["data"] for n, o in opened.items()} if self.joint else opened["data"]
        request, units = fit_request(model, data, **_fit_arguments(cfg, opened))
        request = self._as_run(request, opened)
        for layout in request.datasets or (request,):
            if len(layout.fitting_axes) != 1:
                where = f"dataset {layout.name!r}" if request.datasets else "this config"
                n = len(layout.fitting_axes)
                raise InputError(f"fit_pixel plots 1-D fits only; {where} fits {n} axes")
        shape = request.iterating_shape
        pixel = tuple(int(i) for i in pixel)
        if len(pixel) != len(shape):
            raise InputError(
                f"pixel must have {len(shape)} indices (one per iterating axis); got {pixel}"
            )
        if not all(0 <= i < n for i, n in zip(pixel, shape)):
            raise InputError(f"pixel {pixel} is outside the maps, whose shape is {shape}")
        block, output = fit_pixel(request, pixel)
        model = request.model
        x = np.asarray(block.x[0], dtype=np.float64).reshape(-1)
        status = Status(int(output.status.reshape(-1)[0]))
        params = output.params.reshape(1, -1)
        with np.errstate(all="ignore"):  # a joint fit's missing dataset: NaN parameters
            fitted = None
            if status == Status.OK:
                fitted = np.asarray(model.evaluate(x, params)).reshape(-1)
            # The start as fitted: ties applied (a tied parameter starts where its tie says).
            begin = model.apply_ties(output.start.reshape(1, -1))
            start = np.asarray(model.evaluate(x, begin)).reshape(-1)
        common = {
            "status": status,
            "flags": Flag(int(output.flags.reshape(-1)[0])),
            "parameters": {n: float(v) for n, v in zip(request.param_names, params[0])},
        }
        if self.joint:
            return {"pixel": pixel, **_per_dataset(model, units, block, x, start, fitted), **common}
        if self.select:
            common["candidate"] = candidate
        return {
            "pixel": pixel,
            "x": x,
            "data": block.y[0],
            "start": start,
            "fitted": fitted,
            **common,
            "x_unit": _text(request.world.units[0]),
            "data_unit": _text(request.cube.data_unit),
        }

    def _candidate_at(self, pixel, candidate, n_candidates):
        """The candidate :meth:`fit_pixel` fits: ``candidate``, else the run's choice."""
        if candidate is None:
            if self.result is None:
                raise InputError(
                    f"this config selects between {n_candidates} candidate models and has "
                    f"not been run, so no candidate was chosen at {tuple(pixel)}; pass "
                    f"candidate=k (0 to {n_candidates - 1}) to fit one of them"
                )
            try:
                chosen = int(np.asarray(self.result.selected)[tuple(int(i) for i in pixel)])
            except (IndexError, TypeError, ValueError):
                chosen = 0  # fit_pixel says what is wrong with the pixel
            return max(chosen, 0)
        if (
            isinstance(candidate, bool)
            or not isinstance(candidate, (int, np.integer))
            or not 0 <= candidate < n_candidates
        ):
            raise InputError(
                f"candidate must be the index of one of the {n_candidates} candidate models "
                f"(0 to {n_candidates - 1}); got {candidate!r}"
            )
        return int(candidate)

    def _as_run(self, request, opened):
        """``request`` (from :func:`parfit.fit.fit_request`) with the run's starts and strategy.

        The starts of ``initial: mean`` (those ``run.json`` records, else the
        mean spectrum fitted again), and ``strategy.min_snr`` and the order
        of the components, as the run had them.
        """
        import dataclasses

        cfg = self.config
        strategy = cfg.strategy
        order = strategy.order_components
        if order is None:
            order = self.select or strategy.refit is not None
        request = dataclasses.replace(
            request, min_snr=strategy.min_snr, order_components=bool(order)
        )
        if self.joint or not request.initial_mean:
            return request
        recorded = _recorded_mean_start(self.record, request)
        if recorded is not None:
            return dataclasses.replace(
                request, parameters=_starting_at(request.parameters, recorded), guess=False
            )
        from .engine.starts import mean_start

        return mean_start(request, open_region(cfg, opened))[0]

    def plot_pixel(self, pixel, path, *, fit=None):
        """Fit one pixel again (:meth:`fit_pixel`) and plot it to the PNG ``path``.

        ``fit`` may pass what :meth:`fit_pixel` already returned for
        ``pixel``.  One cube: data, starting model, fit and residuals.  A
        joint config: the same for every dataset, one panel each (titled
        with the dataset, its unit and its fitted parameters), in one image.

        Returns
        -------
        pathlib.Path
            ``path``.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from parfit.datasets import gaussian_cube
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = gaussian_cube((30, 4, 5), seed=1).to_fits(folder / "cube.fits")
        >>> analysis = Analysis({"input": {"path": "cube.fits", "fitting_axes": "spectral"},
        ...                      "model": {"components": [{"type": "Gaussian1D"}]},
        ...                      "output": {"path": "results"}}, base_dir=folder)
        >>> analysis.plot_pixel((1, 2), folder / "pixel.png").stat().st_size > 0
        True
        """
        from .diagnostics import FitPanel, plot_fit, plot_fits
        from .status import STATUS_DESCRIPTIONS

        fit = self.fit_pixel(pixel) if fit is None else fit
        status = fit["status"]
        note = "" if status == Status.OK else f"{status.name}: {STATUS_DESCRIPTIONS[status]}"

        def label(params):
            return ", ".join(f"{n}={v:.4g}" for n, v in params.items())

        def unit(name, value):
            return name + (f" [{value}]" if value else "")

        if "datasets" not in fit:
            which = f", candidate {fit['candidate']}" if "candidate" in fit else ""
            return plot_fit(
                path,
                fit["x"],
                fit["data"],
                fit["start"],
                fit["fitted"],
                title=f"pixel {fit['pixel']}{which}"
                + ("" if note else f": {label(fit['parameters'])}"),
                note=note,
                x_label=unit("x", fit["x_unit"]),
                y_label=unit("data", fit["data_unit"]),
            )
        panels = []
        for name in fit["datasets"]:
            prefix = f"{name}."
            own = {
                n[len(prefix) :]: v for n, v in fit["parameters"].items() if n.startswith(prefix)
            }
            missing = status == Status.OK and fit["fitted"][name] is None
            title = unit(name, fit["data_unit"][name])
            if missing:
                title += ": no valid sample, not fitted"
            elif not note:
                title += "\n" + "\n".join(textwrap.wrap(label(own), 50))
            panels.append(
                FitPanel(
                    fit["x"][name],
                    fit["data"][name],
                    fit["start"][name],
                    fit["fitted"][name],
                    title=title,
                    x_label=unit("x", fit["x_unit"][name]),
                    y_label=unit("data", fit["data_unit"][name]),
                    note=f"{name} has no valid sample here"
                    if missing
                    else "no fitted model: no residuals",
                )
            )
        return plot_fits(path, panels, title=f"pixel {fit['pixel']}", note=note)


# --- helpers ---------------------------------------------------------------------------------


def _recorded_mean_start(record, request):
    """The starts of ``initial: mean`` that ``run.json`` records for ``request``'s model."""
    record = record or {}
    found = [record.get("mean_start")]
    found += [c.get("mean_start") for c in (record.get("selection") or {}).get("candidates", [])]
    for entry in found:
        values = (entry or {}).get("values")
        if isinstance(values, dict) and list(values) == list(request.param_names):
            return values
    return None


def _starting_at(parameters, values):
    """``(name, start, lower, upper)`` of every parameter, starting at ``values`` (clipped)."""
    out = []
    for name, _, lo, hi in parameters:
        start = np.clip(float(values[name]), lo, hi)
        out.append((name, float(start) if not np.ndim(start) else start, lo, hi))
    return out


def _fit_arguments(cfg, opened):
    """What is fitted, from the config and its opened input: ``parallel_fit``'s keywords.

    The same for a run and for :meth:`Analysis.fit_pixel`, so that a pixel
    fitted again is fitted as in the run (with the statistic of the run).
    For a joint config, ``opened`` holds each dataset's opened input and the
    keywords are mappings of datasets.
    """
    if is_joint_config(cfg):
        return dict(
            fitting_axes={n: o["fitting_axes"] for n, o in opened.items()},
            fitter=cfg.fitter.fitter(),
            initial={n: entry.model.initial for n, entry in cfg.datasets.items()},
            weights={n: o["weights"] for n, o in opened.items()},
            mask={n: o["mask"] for n, o in opened.items()},
            data_unit={n: o["data_unit"] for n, o in opened.items()},
            statistic=cfg.likelihood.statistic,
        )
    model = cfg.select.candidates[0] if is_selection_config(cfg) else cfg.model
    return dict(
        fitting_axes=opened["fitting_axes"],
        fitter=cfg.fitter.fitter(),
        initial=model.initial,
        weights=opened["weights"],
        mask=opened["mask"],
        data_unit=opened["data_unit"],
        statistic=cfg.likelihood.statistic,
    )


def _likelihood_arguments(cfg):
    """``parallel_fit``'s keywords of what a run computes besides the best fit: TS, profiles.

    (The statistic is one of :func:`_fit_arguments`: a pixel fitted again
    minimises it too.)
    """
    arguments = cfg.likelihood.arguments()
    del arguments["statistic"]
    return arguments


def _strategy_arguments(cfg, region):
    """``parallel_fit``'s keywords of how a run goes beyond one fit per pixel.

    The ``strategy`` section, the region of ``initial: mean`` and, for a
    ``select`` config, the criterion and threshold.
    """
    arguments = dict(cfg.strategy.arguments())
    if region is not None:
        arguments["initial_region"] = region
    if is_selection_config(cfg):
        arguments.update(select=cfg.select.criterion, select_threshold=cfg.select.threshold)
    return arguments


def _per_dataset(model, plan, block, x, start, fitted):
    """A joint fit's pixel (its joint rows ``x``, ``start``, ``fitted``) cut into its datasets.

    ``fitted`` is None for a dataset without a valid sample (the others
    were fitted without it).
    """
    out = {k: {} for k in ("x", "data", "start", "fitted", "x_unit", "data_unit")}
    for name in model.datasets:
        cut = model.sample_slice(name)
        units = plan.units[name]
        present = bool(np.asarray(block.valid)[0, cut].any())
        out["x"][name] = x[cut].copy()
        out["data"][name] = np.array(block.y[0, cut], dtype=np.float64)
        out["start"][name] = start[cut].copy()
        out["fitted"][name] = None if fitted is None or not present else fitted[cut].copy()
        out["x_unit"][name] = _text(units.world.units[0])
        out["data_unit"][name] = _text(
            units.data_unit if units.cube is None else units.cube.data_unit
        )
    return {"datasets": tuple(model.datasets), **out}


def _text(unit):
    """A unit as text (None stays None)."""
    return None if unit is None else str(unit)


def _check_reachable(address):
    """Fail at once (not after distributed's retries) if nothing listens at ``address``."""
    import socket

    if "://" in address and not address.startswith("tcp://"):
        return
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise InputError(
            f"run.scheduler: cannot connect to the dask scheduler at {address!r}: {exc}"
        ) from None


class _scheduler:
    """Context manager giving ``parallel_fit``'s scheduler for a run section."""

    def __init__(self, run):
        self.run = run
        self.client = self.cluster = None

    def __enter__(self):
        run = self.run
        if run.scheduler in ("synchronous", "threads", "processes"):
            return run.scheduler
        from distributed import Client, LocalCluster

        if run.scheduler == "local":
            # Without the dashboard the scheduler still serves a few HTTP routes:
            # on a free port of the loopback, so two runs never compete for 8787.
            kwargs = {
                "host": "127.0.0.1",
                "processes": True,
                "dashboard_address": "127.0.0.1:8787" if run.dashboard else "127.0.0.1:0",
            }
            for key in ("n_workers", "threads_per_worker", "memory_limit"):
                if getattr(run, key) is not None:
                    kwargs[key] = getattr(run, key)
            self.cluster = LocalCluster(**kwargs)
            self.client = Client(self.cluster)
            if run.dashboard:
                log.warning("dask dashboard: %s", self.client.dashboard_link)
        else:
            _check_reachable(run.scheduler)
            try:
                self.client = Client(run.scheduler, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise InputError(
                    f"run.scheduler: cannot connect to the dask scheduler at "
                    f"{run.scheduler!r}: {exc}"
                ) from None
        return self.client

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False
