"""``FitResult``: the maps a parallel fit produced, and their writers."""

import datetime
import shutil
from pathlib import Path

import numpy as np

from .errors import OutputExistsError
from .status import FLAG_DESCRIPTIONS, STATUS_DESCRIPTIONS, Status, flag_counts, flags_attrs

__all__ = ["FitResult"]


def _version():
    from . import __version__

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
        Chi-square of each fit, ``sum((weights * (model - data))**2)`` over
        the samples used.
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
    ):
        self.model = model
        self.parameters = {k: _frozen(v) for k, v in parameters.items()}
        self.errors = {k: _frozen(v) for k, v in errors.items()}
        self.statistic = _frozen(statistic)
        self.status = _frozen(np.asarray(status, dtype=np.int8))
        self.success = _frozen(self.status == Status.OK)
        self.nfev = _frozen(np.asarray(nfev, dtype=np.int32))
        if flags is None:
            flags = np.zeros(self.status.shape, dtype=np.uint8)
        self.flags = _frozen(np.asarray(flags, dtype=np.uint8))
        if self.flags.shape != self.status.shape:
            raise ValueError(
                f"flags has shape {self.flags.shape}; expected the shape of "
                f"status, {self.status.shape}"
            )
        self.units = dict(units or {})
        self.shape = self.status.shape
        self.meta = dict(meta or {})
        self.fit_info = fit_info
        self._start_model = start_model
        if dims is None:
            axes = self.meta.get("iterating_axes", tuple(range(len(self.shape))))
            dims = tuple(f"dim_{a}" for a in axes)
        self.dims = tuple(dims)
        self.coords = dict(coords or {})
        self.wcs = wcs

    @property
    def param_names(self):
        """Names of the fitted parameters, in model order."""
        return tuple(self.parameters)

    @property
    def n_fits(self):
        """Number of fits (pixels of the maps)."""
        return int(self.status.size)

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
                p16, p50, p84 = np.percentile(self.parameters[name][ok], [16, 50, 84])
                err = self.errors[name][ok]
                med_err = np.nanmedian(err) if np.isfinite(err).any() else np.nan
                unit = self.units.get(name)
                unit = f" [{unit}]" if unit not in (None, "") else ""
                lines.append(
                    f"  {name:<14} {p16:12.5g} {p50:12.5g} {p84:12.5g}"
                    f"   median error {med_err:.3g}{unit}"
                )
            lines.append(f"median chi-square: {np.median(self.statistic[ok]):.5g}")
        return "\n".join(lines)

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

        Returns
        -------
        xarray.Dataset
        """
        import xarray as xr

        data_vars = {}
        for name in self.param_names:
            unit = self.units.get(name)
            attrs = {"long_name": f"fitted {name}"}
            if unit is not None:
                attrs["units"] = str(unit)
            data_vars[name] = (self.dims, np.array(self.parameters[name]), attrs)
            data_vars[f"{name}_error"] = (
                self.dims,
                np.array(self.errors[name]),
                dict(attrs, long_name=f"1-sigma error of {name}"),
            )
        data_vars["statistic"] = (
            self.dims,
            np.array(self.statistic),
            {"long_name": "chi-square of the fit"},
        )
        data_vars["success"] = (
            self.dims,
            np.array(self.success),
            {"long_name": "fit succeeded (status == OK)"},
        )
        data_vars["status"] = (
            self.dims,
            np.array(self.status),
            {
                "long_name": "parfit fit status code",
                "flag_values": np.array([int(s) for s in Status], dtype=np.int8),
                "flag_meanings": " ".join(s.name.lower() for s in Status),
            },
        )
        data_vars["nfev"] = (
            self.dims,
            np.array(self.nfev),
            {"long_name": "number of model evaluations (-1 unknown)"},
        )
        data_vars["flags"] = (self.dims, np.array(self.flags), flags_attrs())
        coords = {d: c for d, c in self.coords.items() if d in self.dims}
        attrs = {
            "parfit_version": _version(),
            "created": datetime.datetime.now(datetime.UTC).isoformat(),
            "fitter": str(self.meta.get("fitter", "")),
            "fitting_axes": list(self.meta.get("fitting_axes", ())),
            "data_shape": list(self.meta.get("data_shape", ())),
            "model_yaml": self._model_yaml(),
        }
        ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
        if self.wcs is not None and self.wcs.has_celestial and len(self.dims) == 2:
            lon, lat = self.wcs.celestial.array_index_to_world_values(*np.indices(self.shape))
            ds = ds.assign_coords(world_lon=(self.dims, lon), world_lat=(self.dims, lat))
            ds["world_lon"].attrs["units"] = str(self.wcs.celestial.world_axis_units[0])
            ds["world_lat"].attrs["units"] = str(self.wcs.celestial.world_axis_units[1])
        return ds

    def to_zarr(self, path, *, overwrite=False):
        """Write the maps to a zarr store (the :meth:`to_xarray` dataset).

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
        self.to_xarray().to_zarr(path, mode="w-", consolidated=False)
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
        add("status", self.status.astype(np.int16))
        add("nfev", self.nfev)
        add("flags", self.flags)
        fits.HDUList(hdus).writeto(path, overwrite=overwrite)
        return path


def _frozen(array):
    array = np.array(array)
    array.setflags(write=False)
    return array


def _is_zarr_store(path):
    return any((path / name).exists() for name in ("zarr.json", ".zgroup", ".zarray"))
