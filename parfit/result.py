"""``FitResult``: the maps a parallel fit produced, and their writers."""

import dataclasses
import datetime
import json
import math
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from parfit.engine.request import RunInfo
from parfit.errors import InputError, InputTypeError, OutputExistsError, ParfitError
from parfit.status import FLAG_DESCRIPTIONS, STATUS_DESCRIPTIONS, Status, flag_counts, flags_attrs

# Its home is the store's reader (below the diagnostics, which read it too).
from parfit.store.reader import stored_refit_passes

__all__ = ["FitResult", "read_result"]


def _version():
    from parfit import __version__

    return __version__


class FitResult:
    """Parameter maps, errors and per-fit status of a parallel fit.

    Returned by :func:`parfit.parallel_fit`; not meant to be built by hand.
    All maps have the shape of the non-fitting (iterating) axes of the cube.
    The arrays are read-only: a result is a record of what was fitted.

    Attributes
    ----------
    model : parfit model or astropy model
        The model given to ``parallel_fit`` (same kind), its parameters
        holding the fitted maps.
    parameters : dict of str to ndarray
        Fitted value of each parameter (NaN where the fit failed).
    errors : dict of str to ndarray
        1-sigma uncertainty of each parameter from the covariance matrix
        (NaN for fixed parameters, failed fits and singular covariances).
    statistic : ndarray
        The statistic each fit minimised (:attr:`statistic_name`): chi-square
        ``sum((weights * (model - data))**2)`` over the samples used, or the
        Poisson likelihood of counts (``"cash"``, ``"cstat"``).
    statistic_name : str
        ``"chi2"``, ``"cash"`` or ``"cstat"``.
    ts, sqrt_ts : ndarray
        With ``null=``: the test statistic of each fit against the null
        hypothesis, and its signed square root.
    intervals, upper_limits : dict
        With ``profile=``: ``{name: (lo, hi)}`` profile-likelihood
        intervals and ``{name: map}`` upper limits.
    status : ndarray of int8
        :class:`parfit.status.Status` code of each fit.
    success : ndarray of bool
        ``status == Status.OK``.
    nfev : ndarray of int32
        Number of model evaluations of each fit (-1 where unknown).
    flags : ndarray of uint8
        :class:`parfit.status.Flag` bits of each fit (on a bound, singular,
        degenerate, refitted from a second start); 0 where there is nothing
        to report.
    units : dict of str to astropy Unit or None
        Unit of each parameter map.
    fit_info : ndarray of object or None
        Per-fit fitter information, when ``fit_info`` was requested.
    shape : tuple of int
        Shape of every map (the non-fitting axes of the cube).
    dims : tuple of str
        Dimension names of the maps (the DataArray's, else ``dim_<axis>``).
    coords : dict
        Coordinates of those dimensions, where the input had them.
    wcs : astropy.wcs.WCS or None
        The WCS of the non-fitting axes, when the cube came with a FITS WCS.
    meta : dict
        Fitting axes, data shape, fitter description and run id.

    Notes
    -----
    ``to_xarray().attrs["model_yaml"]`` holds the *starting* model (for
    parfit models), so a fit can be re-run; the fitted values are the maps.

    Examples
    --------
    >>> import numpy as np, parfit
    >>> from parfit.models import Linear1D
    >>> x = np.arange(10.0)
    >>> cube = 2.0 * x[:, None] + np.array([1.0, 3.0])
    >>> result = parfit.parallel_fit(Linear1D(), cube, world=(x,), scheduler="synchronous")
    >>> np.round(result.parameters["intercept"], 6)
    array([1., 3.])
    >>> result.to_xarray()["slope"].dims
    ('dim_1',)
    """

    def __init__(
        self,
        *,
        model,
        parameters,
        errors,
        statistic,
        status,
        nfev,
        flags=None,
        units=None,
        dims=None,
        coords=None,
        wcs=None,
        start_model=None,
        fit_info=None,
        meta=None,
        run=None,
    ):
        status = np.asarray(status, dtype=np.int8)
        if flags is None:
            flags = np.zeros(status.shape, dtype=np.uint8)
        flags = np.asarray(flags, dtype=np.uint8)
        if flags.shape != status.shape:
            raise ValueError(
                f"flags has shape {flags.shape}; expected the shape of status, {status.shape}"
            )
        fields = {}
        for name, values in parameters.items():
            fields[name] = _frozen(values)
            fields[f"{name}_error"] = _frozen(errors[name])
        fields.update(
            statistic=_frozen(statistic),
            status=_frozen(status),
            nfev=_frozen(np.asarray(nfev, dtype=np.int32)),
            flags=_frozen(flags),
        )
        self._setup(
            fields,
            param_names=list(parameters),
            model=model,
            units=units,
            dims=dims,
            coords=coords,
            wcs=wcs,
            start_model=start_model,
            fit_info=fit_info,
            run=run if run is not None else _run_from_meta(meta),
            meta=meta,
        )

    @classmethod
    def from_fields(
        cls,
        fields,
        *,
        param_names,
        model=None,
        units=None,
        dims=None,
        coords=None,
        wcs=None,
        start_model=None,
        fit_info=None,
        run=None,
        likelihood=None,
    ):
        """A result over ``fields``: a mapping from the store's array names to maps.

        ``fields`` may read its maps only when first asked for (as
        :class:`parfit.store.reader.StoreMaps` does): the result then stays
        lazy until a map is used.  ``model`` may be a callable building the
        fitted model from the parameter maps, called when ``.model`` is
        first used.
        """
        self = cls.__new__(cls)
        self._setup(
            fields,
            param_names=list(param_names),
            model=model,
            units=units,
            dims=dims,
            coords=coords,
            wcs=wcs,
            start_model=start_model,
            fit_info=fit_info,
            run=run if run is not None else RunInfo(),
            meta=None,
            likelihood=likelihood,
        )
        return self

    def _setup(
        self,
        fields,
        *,
        param_names,
        model,
        units,
        dims,
        coords,
        wcs,
        start_model,
        fit_info,
        run,
        meta,
        likelihood=None,
    ):
        from parfit.fitters.likelihood import LikelihoodRequest

        #: The statistic minimised, and the TS and profiles computed besides.
        self.likelihood = likelihood if likelihood is not None else LikelihoodRequest()
        if isinstance(fields, dict):
            for values in fields.values():
                if isinstance(values, np.ndarray) and values.flags.writeable:
                    values.setflags(write=False)
        self._fields = fields
        self._names = tuple(param_names)
        self._model = model
        self.parameters = _FieldView(fields, self._names, "")
        self.errors = _FieldView(fields, self._names, "_error")
        self.units = dict(units or {})
        shape = getattr(fields, "shape", None)
        self.shape = tuple(shape) if shape is not None else tuple(np.shape(fields["status"]))
        self.run = run
        self.meta = dict(meta) if meta is not None else run.as_dict()
        self.fit_info = fit_info
        self._start_model = start_model
        if dims is None:
            axes = self.meta.get("iterating_axes") or tuple(range(len(self.shape)))
            dims = tuple(f"dim_{a}" for a in axes)
        self.dims = tuple(dims)
        self.coords = dict(coords or {})
        self.wcs = wcs

    @property
    def model(self):
        """The model given to ``parallel_fit`` (same kind), holding the fitted maps."""
        if callable(self._model) and not _is_model(self._model):
            self._model = self._model(self.parameters)
        return self._model

    @property
    def models(self):
        """Each dataset's fitted model by dataset name (a joint fit: mappings of datasets).

        Raises AttributeError for the result of a single cube's fit: use
        :attr:`model`.
        """
        from parfit.models.joint import JointModel

        model = self.model
        if not isinstance(model, JointModel):
            raise AttributeError(
                "models: this result is of a single cube's fit; its fitted model is result.model"
            )
        return model.members

    @property
    def statistic(self):
        return self._fields["statistic"]

    @property
    def statistic_name(self):
        """The statistic every fit minimised: ``"chi2"``, ``"cash"`` or ``"cstat"``."""
        return self.likelihood.statistic

    def _asked(self, what, name):
        if name not in self._fields or name not in self.likelihood.fields:
            raise AttributeError(
                f"{what}: this result has none; pass {what.split('[')[0]}= to parallel_fit"
            )
        return self._fields[name]

    @property
    def ts(self):
        """``stat(null) - stat(best)`` per fit (with ``null=``); NaN where a fit failed."""
        return self._asked("null", "ts")

    @property
    def sqrt_ts(self):
        """``sqrt(ts)``, signed by the tested parameter's best value minus its null value."""
        return self._asked("null", "sqrt_ts")

    @property
    def intervals(self):
        """``{name: (lo, hi)}``: profile-likelihood intervals (with ``profile=``)."""
        return {
            name: (self._fields[f"{name}_lo"], self._fields[f"{name}_hi"])
            for name in self.likelihood.profile
        }

    @property
    def upper_limits(self):
        """``{name: map}``: profile-likelihood upper limits (with ``profile=``)."""
        return {name: self._fields[f"{name}_ul"] for name in self.likelihood.profile}

    @property
    def refits(self):
        """Times each fit was refitted from its neighbours (``refit="neighbours"``)."""
        if "refits" not in self._fields:
            raise AttributeError("refits: this result has none; pass refit='neighbours'")
        return self._fields["refits"]

    @property
    def origin(self):
        """The refit pass whose solution each fit holds: 0 the first pass (``refit=``)."""
        if "origin" not in self._fields:
            raise AttributeError("origin: this result has none; pass refit='neighbours'")
        return self._fields["origin"]

    @property
    def extra_fields(self):
        """The maps this run added to the standard ones (TS, profiles, refit counts)."""
        from parfit.engine.refit import REFIT_FIELDS

        return tuple(self.likelihood.fields) + tuple(n for n in REFIT_FIELDS if n in self._fields)

    @property
    def statistics(self):
        """A joint fit's share of :attr:`statistic` of each dataset, ``{dataset: map}``.

        Empty for the fit of a single cube.  The shares add up to the
        statistic; NaN where the fit failed.
        """
        from parfit.store.layout import datasets_of

        return {d: self._fields[f"statistic.{d}"] for d in datasets_of(self.param_names)}

    @property
    def status(self):
        return self._fields["status"]

    @property
    def success(self):
        if "success" not in self.__dict__:
            self.__dict__["success"] = _frozen(self.status == Status.OK)
        return self.__dict__["success"]

    @property
    def nfev(self):
        return self._fields["nfev"]

    @property
    def flags(self):
        return self._fields["flags"]

    @property
    def is_lazy(self):
        """True when the maps are read from a store as they are used."""
        return hasattr(self._fields, "lazy")

    @property
    def param_names(self):
        """Names of the fitted parameters, in model order."""
        return tuple(self.parameters)

    @property
    def n_fits(self):
        """Number of fits (pixels of the maps)."""
        return int(math.prod(self.shape))

    def status_counts(self):
        """Number of fits with each status, as ``{Status: count}`` (nonzero only)."""
        codes, counts = np.unique(self.status, return_counts=True)
        return {Status(int(c)): int(n) for c, n in zip(codes, counts)}

    def flag_counts(self):
        """Number of fits with each flag set, as ``{Flag: count}`` (nonzero only).

        A fit with several flags counts once for each of them.
        """
        return flag_counts(self.flags)

    def __repr__(self):
        ok = int(self.success.sum())
        return (
            f"<FitResult {self.n_fits} fits of shape {self.shape}, {ok} succeeded, "
            f"parameters: {', '.join(self.param_names)}>"
        )

    # --- text ---------------------------------------------------------------

    def summary(self):
        """A plain-text summary: counts per status and flag, and parameter percentiles.

        Returns
        -------
        str
        """
        lines = [f"parfit result: {self.n_fits} fits, map shape {self.shape}"]
        if self.meta.get("fitter"):
            lines.append(f"fitter: {self.meta['fitter']}")
        lines.append("status:")
        for status, count in sorted(self.status_counts().items()):
            pct = 100.0 * count / max(self.n_fits, 1)
            lines.append(
                f"  {status.name:<16} {count:>9d}  ({pct:5.1f}%)  {STATUS_DESCRIPTIONS[status]}"
            )
        counts = self.flag_counts()
        if counts:
            lines.append("flags (a fit may have several):")
            for flag, count in counts.items():
                pct = 100.0 * count / max(self.n_fits, 1)
                lines.append(
                    f"  {flag.name:<16} {count:>9d}  ({pct:5.1f}%)  {FLAG_DESCRIPTIONS[flag]}"
                )
        ok = self.success
        if ok.any():
            lines.append("parameters over successful fits (16th / 50th / 84th percentile):")
            for name in self.param_names:
                # NaN: a joint fit's parameters of a dataset blank at a pixel.
                values = self.parameters[name][ok]
                values = values[np.isfinite(values)]
                p16, p50, p84 = (
                    np.percentile(values, [16, 50, 84]) if values.size else (np.nan,) * 3
                )
                err = self.errors[name][ok]
                med_err = np.nanmedian(err) if np.isfinite(err).any() else np.nan
                unit = self.units.get(name)
                unit = f" [{unit}]" if unit not in (None, "") else ""
                lines.append(
                    f"  {name:<14} {p16:12.5g} {p50:12.5g} {p84:12.5g}"
                    f"   median error {med_err:.3g}{unit}"
                )
            label = {"chi2": "chi-square", "cash": "Cash statistic", "cstat": "C-stat"}
            lines.append(
                f"median {label[self.statistic_name]}: {np.median(self.statistic[ok]):.5g}"
            )
            for dataset, share in self.statistics.items():
                lines.append(f"  of which {dataset}: {np.median(share[ok]):.5g}")
            lines.extend(self._likelihood_lines(ok))
        lines.extend(self._start_lines())
        return "\n".join(lines)

    def _start_lines(self):
        """The summary's lines on the mean-spectrum start and the neighbour refits."""
        lines = []
        mean = self.run.mean_start
        if mean:
            values = ", ".join(f"{k}={v:.5g}" for k, v in mean["values"].items())
            lines.append(
                f"initial='mean': the mean spectrum of {mean['pixels']} pixels fitted "
                f"({mean['status']}); every fit started from {values}"
            )
        if "refits" in self._fields:
            passes = self.run.refit
            refits = np.asarray(self.refits)
            origin = np.asarray(self.origin)
            lines.append(
                f"neighbour refits: {len(passes)} passes, {int((refits > 0).sum())} fits "
                f"refitted ({int(refits.sum())} refits), {int((origin > 0).sum())} hold a "
                f"solution found from their neighbours"
            )
            for report in passes:
                lines.append(
                    f"  pass {report['pass']:>2}: {report['refitted']:>8d} refitted "
                    f"{report['improved']:>8d} improved {report['rescued']:>8d} rescued "
                    f"from a failure"
                )
        return lines

    def _likelihood_lines(self, ok):
        """The summary's lines on TS and profile intervals, where the run computed them."""
        asked = self.likelihood
        lines = []
        if asked.null:
            held = ", ".join(f"{n}={v:g}" for n, v in asked.null)
            ts = self.ts[ok]
            ts = ts[np.isfinite(ts)]
            lines.append(f"TS against the null hypothesis ({held}):")
            if ts.size:
                lines.append(
                    f"  median {np.median(ts):.4g}, max {np.max(ts):.4g}; TS > 25 (5 sigma): "
                    f"{int(np.count_nonzero(ts > 25))}, TS > 9: {int(np.count_nonzero(ts > 9))}"
                )
        for name in asked.profile:
            lo, hi = (np.asarray(v)[ok] for v in self.intervals[name])
            ul = np.asarray(self.upper_limits[name])[ok]
            width = hi - lo
            found = np.isfinite(width)
            lines.append(
                f"profile of {name}: {asked.n_sigma:g}-sigma intervals found for "
                f"{int(np.count_nonzero(found))} fits (median width "
                f"{np.median(width[found]) if found.any() else np.nan:.4g}); "
                f"{asked.n_sigma_ul:g}-sigma upper limits for "
                f"{int(np.count_nonzero(np.isfinite(ul)))}"
            )
        return lines

    # --- writers --------------------------------------------------------------

    def _model_yaml(self):
        model = self._start_model
        try:
            from .models.base import Model

            if isinstance(model, Model):
                return model.to_yaml(include_arrays=False)
        except Exception:  # the result stays writable even without a YAML form
            return ""
        return ""

    def to_xarray(self):
        """The maps as an :class:`xarray.Dataset`.

        One variable per parameter, ``<name>_error``, ``statistic``,
        ``success``, ``status`` (with CF ``flag_values``/``flag_meanings``),
        ``nfev`` and ``flags`` (bits, with CF ``flag_masks``/``flag_meanings``),
        on the dimensions of the iterating axes, with their coordinates where
        known.  Attributes record the parfit version, the
        fitter, the model as YAML (for parfit models) and the fitting axes.
        A result read from a store (:attr:`is_lazy`) gives dask arrays over
        the store: nothing is read until it is computed.

        Returns
        -------
        xarray.Dataset
        """
        import xarray as xr

        from parfit.store.layout import field_attrs

        names = list(self.param_names)

        def values(name):
            if self.is_lazy:
                return self._fields.lazy(name)
            return np.array(self._fields[name])

        def var(name, attrs=None):
            attrs = dict(field_attrs(name, names) if attrs is None else attrs)
            unit = self.units.get(name[: -len("_error")] if name.endswith("_error") else name)
            if unit is not None and (name in names or name[: -len("_error")] in names):
                attrs["units"] = str(unit)
            return (self.dims, values(name), attrs)

        data_vars = {}
        for name in names:
            data_vars[name] = var(name)
            data_vars[f"{name}_error"] = var(f"{name}_error")
        data_vars["statistic"] = var("statistic")
        for dataset in self.statistics:
            data_vars[f"statistic.{dataset}"] = var(
                f"statistic.{dataset}",
                {"long_name": f"share of the statistic of dataset {dataset} (joint fit)"},
            )
        status = values("status")
        data_vars["success"] = (
            self.dims,
            status == Status.OK,
            {"long_name": "fit succeeded (status == OK)"},
        )
        data_vars["status"] = (self.dims, status, _status_attrs())
        data_vars["nfev"] = var("nfev")
        data_vars["flags"] = (self.dims, values("flags"), flags_attrs())
        for name in self.extra_fields:
            data_vars[name] = var(name)
            base = name.rsplit("_", 1)[0]
            if name not in ("ts", "sqrt_ts") and self.units.get(base) is not None:
                data_vars[name][2]["units"] = str(self.units[base])
        coords = {d: c for d, c in self.coords.items() if d in self.dims}
        attrs = {
            "parfit_version": _version(),
            "created": datetime.datetime.now(datetime.UTC).isoformat(),
            "fitter": str(self.meta.get("fitter") or ""),
            "fitting_axes": list(self.meta.get("fitting_axes") or ()),
            "data_shape": list(self.meta.get("data_shape") or ()),
            "model_yaml": self._model_yaml(),
            "statistic": self.statistic_name,
        }
        if self.likelihood.null:
            attrs["null"] = json.dumps(dict(self.likelihood.null))
        if self.likelihood.profile:
            attrs["profile"] = list(self.likelihood.profile)
            attrs["n_sigma"] = self.likelihood.n_sigma
            attrs["n_sigma_ul"] = self.likelihood.n_sigma_ul
        ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
        if self.wcs is not None and self.wcs.has_celestial and len(self.dims) == 2:
            lon, lat = self.wcs.celestial.array_index_to_world_values(*np.indices(self.shape))
            ds = ds.assign_coords(world_lon=(self.dims, lon), world_lat=(self.dims, lat))
            ds["world_lon"].attrs["units"] = str(self.wcs.celestial.world_axis_units[0])
            ds["world_lat"].attrs["units"] = str(self.wcs.celestial.world_axis_units[1])
        return ds

    def to_zarr(self, path, *, overwrite=False):
        """Write the maps to a zarr store, in the layout of ``parallel_fit(output=...)``.

        The store is the one a streamed run writes (:mod:`parfit.store.layout`),
        as a single block recorded done: :func:`parfit.read_result`,
        ``parfit inspect`` and ``xarray.open_zarr`` read it like any other.

        Parameters
        ----------
        path : str or path-like
            The store to create.
        overwrite : bool
            Replace an existing zarr store at ``path``.  A path that exists
            and is not a zarr store is never replaced.

        Raises
        ------
        OutputExistsError
            If ``path`` exists and ``overwrite`` is False, or if it exists
            and is not a zarr store.
        """
        from parfit.engine.inputs import wcs_header
        from parfit.store.layout import field_specs
        from parfit.store.writer import write_maps

        path = Path(path)
        if path.exists():
            if not overwrite:
                raise OutputExistsError(
                    f"{str(path)!r} already exists; pass overwrite=True to replace it"
                )
            if not _is_zarr_store(path):
                raise OutputExistsError(
                    f"{str(path)!r} exists and is not a zarr store; parfit will not replace it"
                )
            shutil.rmtree(path)
        names = list(self.param_names)
        extras = self.extra_fields
        fields = {}
        for name, _dtype, fill in field_specs(names, extras):
            fields[name] = (
                self._fields[name]
                if name in self._fields
                else np.full(self.shape, fill)  # n_warnings and reported of a result by hand
            )
        model_yaml = self._model_yaml()
        provenance = dict(
            parfit_version=_version(),
            run_id=self.run.run_id,
            created=datetime.datetime.now(datetime.UTC).isoformat(),
            input_fingerprint=None,
            options_fingerprint=None,
            options=dict(
                fitter=self.meta.get("fitter"),
                fitting_axes=list(self.meta.get("fitting_axes") or ()),
                data_shape=list(self.meta.get("data_shape") or ()),
                output_cubes=[],
                likelihood=self.likelihood.describe(),
            ),
            model_yaml=model_yaml or None,
            wcs_header=wcs_header(self.wcs),
        )
        from parfit.models.joint import JointModel

        if isinstance(self._start_model, JointModel):  # the samples of each dataset
            provenance["datasets"] = [
                {"name": name, "n_samples": n} for name, n in self._start_model.sizes.items()
            ]
        write_maps(
            path,
            fields,
            param_names=names,
            dims=self.dims,
            provenance=provenance,
            units=self.units,
            coords={d: c for d, c in self.coords.items() if d in self.dims and np.ndim(c) == 1},
            extra_fields=extras,
        )
        return path

    def to_netcdf(self, path, *, overwrite=False, engine=None):
        """Write the maps to a netCDF file (the :meth:`to_xarray` dataset).

        Unlike ``xarray.Dataset.to_netcdf``, an existing file is not
        replaced silently.

        Parameters
        ----------
        path : str or path-like
        overwrite : bool
            Replace an existing file (never a directory).
        engine : str, optional
            xarray's netCDF engine (``"h5netcdf"`` for netCDF-4, ``"scipy"``
            for netCDF-3); xarray's default if None.

        Raises
        ------
        OutputExistsError
            If ``path`` exists and ``overwrite`` is False, or is a directory.
        """
        path = Path(path)
        if path.is_dir():
            raise OutputExistsError(
                f"{str(path)!r} is a directory; parfit will not replace it with a netCDF file"
            )
        if path.exists() and not overwrite:
            raise OutputExistsError(
                f"{str(path)!r} already exists; pass overwrite=True to replace it"
            )
        self.to_xarray().to_netcdf(path, engine=engine)
        return path

    def to_fits(self, path, *, overwrite=False):
        """Write the maps to a FITS file, one image HDU per map.

        HDUs are named after the parameters, ``<name>_ERR``, ``STATISTIC``,
        ``STATUS``, ``NFEV`` and ``FLAGS`` (:class:`parfit.status.Flag` bits);
        each carries the WCS of the iterating axes
        when the cube came with a FITS WCS.  FITS has no 0-d images: the
        maps of a single fit (a cube without iterating axes) are written as
        images of one pixel, with ``PFSINGLE = T`` in each header.

        Parameters
        ----------
        path : str or path-like
        overwrite : bool
            Replace an existing file.

        Raises
        ------
        OutputExistsError
            If ``path`` exists and ``overwrite`` is False.
        """
        from astropy.io import fits

        path = Path(path)
        if path.exists() and not overwrite:
            raise OutputExistsError(
                f"{str(path)!r} already exists; pass overwrite=True to replace it"
            )
        header = self.wcs.to_header() if self.wcs is not None else fits.Header()
        primary = fits.PrimaryHDU()
        primary.header["PARFITV"] = (_version(), "parfit version")
        # A long description is written with CONTINUE cards.
        primary.header["FITTER"] = str(self.meta.get("fitter", ""))
        hdus = [primary]

        single = self.status.ndim == 0

        def add(name, array, unit=None):
            array = np.asarray(array)
            hdu = fits.ImageHDU(
                array.reshape(1) if single else array, header=header.copy(), name=name.upper()
            )
            if single:
                hdu.header["PFSINGLE"] = (True, "one fit: a 0-d map stored as 1 pixel")
            if unit is not None:
                hdu.header["BUNIT"] = str(unit)
            hdus.append(hdu)

        for name in self.param_names:
            add(name, self.parameters[name], self.units.get(name))
            add(f"{name}_err", self.errors[name], self.units.get(name))
        add("statistic", self.statistic)
        for dataset, share in self.statistics.items():
            add(f"statistic.{dataset}", share)
        add("status", self.status.astype(np.int16))
        add("nfev", self.nfev)
        add("flags", self.flags)
        fits.HDUList(hdus).writeto(path, overwrite=overwrite)
        return path


def _frozen(array):
    array = np.array(array)
    array.setflags(write=False)
    return array


def _status_attrs():
    from parfit.store.layout import field_attrs

    attrs = field_attrs("status", ())
    attrs["flag_values"] = np.array(attrs["flag_values"], dtype=np.int8)
    return attrs


def _is_model(obj):
    """True for a parfit or astropy model (callable, but not a factory of models)."""
    from parfit.models import is_model

    return is_model(obj)


class _FieldView(Mapping):
    """``result.parameters`` and ``result.errors``: parameter name -> map, read when asked."""

    def __init__(self, fields, names, suffix):
        self._fields = fields
        self._names = names
        self._suffix = suffix

    def __getitem__(self, name):
        if name not in self._names:
            raise KeyError(name)
        values = self._fields[f"{name}{self._suffix}"]
        if values.flags.writeable:
            values.setflags(write=False)
        return values

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)

    def __repr__(self):
        return "{" + ", ".join(f"{n!r}: <map {self[n].shape}>" for n in self._names) + "}"


def _run_from_meta(meta):
    """The typed run information of a result built from a ``meta`` dict."""
    meta = dict(meta or {})
    known = {f.name for f in dataclasses.fields(RunInfo)}
    args = {k: v for k, v in meta.items() if k in known and k != "failed_blocks"}
    return RunInfo(**args)


def _is_zarr_store(path):
    return any((path / name).exists() for name in ("zarr.json", ".zgroup", ".zarray"))


def read_result(path, *, allow_damaged=False):
    """A :class:`~parfit.FitResult` from a zarr store of maps.

    Reads both the store streamed by ``parallel_fit(..., output=)`` and the
    one written by :meth:`FitResult.to_zarr`.  The maps are read into
    memory; ``result.model`` is the starting model of the store's YAML with
    the fitted maps as its values.  A store written before parfit had
    quality flags holds no ``flags`` map: its ``result.flags`` are all 0.

    A streamed store is verified first (:func:`parfit.store.verify_store`).
    A damaged one is refused with :class:`~parfit.errors.StoreDamagedError`
    naming the damaged blocks, unless ``allow_damaged=True``: then it is
    read with a warning, the fits of damaged blocks get status ``NOT_RUN``
    and NaN parameters, ``result.meta["complete"]`` is False and
    ``result.meta["damaged_blocks"]`` lists them.  A store whose layout is
    broken (an array's metadata unreadable or missing) is always refused.

    Parameters
    ----------
    path : path-like
    allow_damaged : bool, optional
        Read a store with damaged blocks instead of refusing it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np, parfit
    >>> from parfit.datasets import gaussian_cube
    >>> cube = gaussian_cube((30, 3, 4), seed=2)
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "maps.zarr"
    >>> fitted = parfit.parallel_fit(cube.model, cube.data, world=cube.world,
    ...                              scheduler="synchronous", output=store)
    >>> again = read_result(store)
    >>> bool(np.array_equal(again.parameters["mean"], fitted.parameters["mean"]))
    True
    """
    import xarray as xr
    from astropy import units as u

    from parfit.engine.refit import REFIT_FIELDS
    from parfit.fitters.likelihood import LikelihoodRequest
    from parfit.store.layout import is_parfit_store, store_layout
    from parfit.store.reader import (
        StoreMaps,
        damaged_error,
        open_maps_store,
        read_map,
        store_wcs,
        stored_flags,
        stored_likelihood,
        stored_start_model,
        verify_store,
    )

    if not isinstance(allow_damaged, (bool, np.bool_)):
        raise InputTypeError(f"allow_damaged must be True or False; got {allow_damaged!r}")
    path = Path(path)
    if not path.exists():
        raise InputError(f"{str(path)!r} does not exist")
    report = verify_store(path) if is_parfit_store(path) else None
    if report is not None and not report.ok:
        if not allow_damaged or report.layout_problems:
            raise damaged_error(report)
        warnings.warn(
            f"{str(damaged_error(report)).split('; resume the run')[0]}; the fits "
            f"of those blocks read as NOT_RUN with NaN parameters",
            RuntimeWarning,
            stacklevel=2,
        )
    if store_layout(path) is None:
        raise InputError(
            f"{str(path)!r} is not a zarr store of parfit maps (no status array "
            f"and parfit attributes)"
        )
    group, layout, names, units, provenance, info = open_maps_store(path)
    with xr.open_zarr(path, consolidated=False) as ds:
        dims = tuple(ds["status"].dims)
        coords = {d: np.asarray(ds[d].values) for d in dims if d in ds.coords}
    start = stored_start_model(info)
    if isinstance(start, dict) and info.get("datasets"):
        # A joint fit's models, in the order (and with the samples) of its datasets.
        from parfit.models import JointModel

        sizes = {d["name"]: int(d["n_samples"]) for d in info["datasets"]}
        start = JointModel({name: start[name] for name in sizes}, sizes)
    streamed = layout == "streamed"
    damaged = list(report.damaged_blocks) if report is not None else []
    run = RunInfo(
        run_id=provenance["run_id"],
        fitter=provenance.get("fitter"),
        output=str(path),
        complete=(bool(info.get("complete", True)) and not damaged if streamed else True),
        damaged_blocks=damaged,
        refit=stored_refit_passes(info),
        mean_start=info.get("mean_start") if isinstance(info, dict) else None,
    )
    common = dict(
        param_names=names,
        model=lambda maps: _with_values(start, maps),
        dims=dims,
        coords=coords,
        units={n: None if not units[n] else u.Unit(units[n]) for n in names},
        wcs=store_wcs(info) if streamed else None,
        start_model=start,
        run=run,
        likelihood=LikelihoodRequest.from_description(stored_likelihood(info, layout)),
    )
    extras = list(common["likelihood"].fields) + [n for n in REFIT_FIELDS if n in group]
    if streamed and not damaged:
        return FitResult.from_fields(StoreMaps(path, names), **common)
    # Through read_map: a chunk that does not decode (a damaged block, read with
    # allow_damaged=True) reads as the fill value instead of failing the read.
    maps = {n: read_map(group, n).astype(np.float64) for n in names}
    errors = {n: read_map(group, f"{n}_error").astype(np.float64) for n in names}
    result_args = dict(
        statistic=read_map(group, "statistic"),
        status=read_map(group, "status"),
        nfev=read_map(group, "nfev"),
        flags=stored_flags(group),
    )
    extra_maps = {
        name: read_map(group, name).astype(np.int16 if name in REFIT_FIELDS else np.float64)
        for name in extras
    }
    if damaged:
        chunks = tuple(info.get("chunks") or group["status"].chunks)
        for block in damaged:
            region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(block, chunks))
            result_args["status"][region] = 0  # Status.NOT_RUN
            for values in (
                *maps.values(),
                *errors.values(),
                result_args["statistic"],
                *extra_maps.values(),
            ):
                values[region] = np.nan
    result_args.update(extra_maps)
    fields = {}
    for n in names:
        fields[n] = maps[n]
        fields[f"{n}_error"] = errors[n]
    fields.update(result_args)
    return FitResult.from_fields(fields, **common)


def _with_values(start, maps):
    """The starting model with the fitted maps as its values (None if that fails)."""
    if start is None:
        return None
    try:
        return start.with_values({name: maps[name] for name in maps})
    except ParfitError:
        return None
