"""Cube files: FITS, zarr and netCDF opened lazily (:func:`open_cube`).

Nothing is read into memory here: FITS images become dask arrays read
section by section, netCDF and zarr datasets dask-backed DataArrays.
What :func:`parfit.parallel_fit` accepts besides paths, and the checks of
every input, live in :mod:`parfit.engine.inputs`.
"""

import logging

import numpy as np

from parfit.errors import InputError, InputTypeError

__all__ = ["FitsSection", "open_cube"]

log = logging.getLogger(__name__)


# --- cubes on disk -------------------------------------------------------------

_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
_NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".h5", ".hdf5", ".cdf")


def open_cube(path, *, hdu=None, variable=None):
    """Open a cube on disk lazily, without reading it into memory.

    Parameters
    ----------
    path : str or path-like
        A FITS file (``.fits``, ``.fit``, ``.fts``, optionally ``.gz``), a
        netCDF/HDF5 file (``.nc``, ...) or a zarr store (a directory holding
        ``zarr.json``, ``.zarray`` or ``.zgroup``).  Other names are
        recognised by their first bytes.
    hdu : int or str, optional
        FITS only: the HDU (index or name).  Default: the first HDU with an
        image of at least two axes.
    variable : str, optional
        netCDF or zarr dataset: the variable.  Default: the only data
        variable with at least two dimensions.

    Returns
    -------
    astropy.nddata.NDData, xarray.DataArray or dask.array.Array
        FITS: an ``NDData`` holding a dask array read section by section
        (memory-mapped; big-endian and ``BSCALE``/``BZERO``-scaled data are
        converted chunk by chunk), the WCS and the unit (``BUNIT``) of the
        header.  netCDF and zarr datasets: a dask-backed ``DataArray`` (its
        dimension names and coordinates are used by
        :func:`parfit.parallel_fit`).  A bare zarr array: a dask array.

    Raises
    ------
    ValueError
        If the path does not exist, is not a readable cube, or holds several
        candidates and ``hdu``/``variable`` does not say which.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, xarray as xr
    >>> path = os.path.join(tempfile.mkdtemp(), "cube.zarr")
    >>> cube = xr.DataArray(np.ones((4, 3, 2)), dims=("v", "y", "x"), name="co")
    >>> _ = cube.to_dataset().to_zarr(path, consolidated=False)
    >>> opened = open_cube(path)
    >>> opened.name, opened.dims, type(opened.data).__name__
    ('co', ('v', 'y', 'x'), 'Array')

    :func:`parfit.parallel_fit` takes the path itself too:
    ``parallel_fit(model, "cube.fits", ...)``.
    """
    import os
    from pathlib import Path

    if not isinstance(path, (str, os.PathLike)):
        raise InputTypeError(f"path must be a str or os.PathLike; got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise InputError(f"data path {str(path)!r} does not exist")
    kind = _file_kind(path)
    if kind != "fits" and hdu is not None:
        raise InputError(f"hdu={hdu!r} is for FITS files; {str(path)!r} is {kind}")
    if kind == "fits":
        if variable is not None:
            raise InputError(
                f"variable={variable!r} is for netCDF and zarr datasets; "
                f"{str(path)!r} is a FITS file (use hdu=)"
            )
        return _open_fits(path, hdu)
    if kind == "zarr":
        return _open_zarr(path, variable)
    if kind == "netcdf":
        return _open_netcdf(path, variable)
    raise InputError(
        f"data path {str(path)!r} is neither a FITS file, a netCDF/HDF5 file nor a zarr "
        f"store; give one of those, or an array"
    )


def _file_kind(path):
    name = path.name.lower()
    if path.is_dir():
        if any((path / m).exists() for m in ("zarr.json", ".zarray", ".zgroup")):
            return "zarr"
        return "a directory that is not a zarr store"
    if name.endswith(_FITS_SUFFIXES):
        return "fits"
    if name.endswith(_NETCDF_SUFFIXES):
        return "netcdf"
    with open(path, "rb") as fh:
        head = fh.read(9)
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if head.startswith((b"CDF", b"\x89HDF")):
        return "netcdf"
    return "a file of unknown format"


class FitsSection:
    """A lazily read FITS image, sliceable like an array (for dask).

    Every read opens the file (memory-mapped unless the data are scaled
    with ``BSCALE``/``BZERO``/``BLANK``, which astropy cannot map) and takes
    the requested section through astropy's ``ImageHDU.section`` (scaling
    applied), so only the
    chunks dask asks for are read, and the object pickles to worker
    processes as a path and an HDU index.
    """

    def __init__(self, path, hdu, shape, dtype, memmap=True):
        self.path = str(path)
        self.hdu = hdu
        self.memmap = memmap
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        from astropy.io import fits

        with fits.open(self.path, memmap=self.memmap) as hdul:
            out = np.asarray(hdul[self.hdu].section[key])
        # Native byte order: FITS data are big-endian on disk.
        return out.astype(out.dtype.newbyteorder("="), copy=False)


def _open_fits(path, hdu):
    import warnings

    import dask.array as da
    from astropy import units as u
    from astropy.io import fits
    from astropy.nddata import NDData
    from astropy.wcs import WCS, FITSFixedWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # Without memory mapping: astropy cannot map scaled data, and the
            # header scan and the one-sample read below need no mapping.
            hdul = fits.open(path, memmap=False)
            hdul.readall()
    except (OSError, ValueError) as exc:
        raise InputError(f"data path {str(path)!r} is not a readable FITS file: {exc}") from None
    truncated = [str(w.message) for w in caught if "truncated" in str(w.message)]
    if truncated:
        hdul.close()
        raise InputError(f"FITS file {str(path)!r} is truncated: {truncated[0]}")
    with hdul:
        try:
            if hdu is None:
                index = next(
                    (k for k, h in enumerate(hdul) if h.is_image and h.header.get("NAXIS", 0) >= 2),
                    None,
                )
                if index is None:
                    raise InputError(
                        f"FITS file {str(path)!r} has no image HDU with two or more axes; "
                        f"its HDUs: {', '.join(h.name or str(k) for k, h in enumerate(hdul))}"
                    )
            else:
                try:
                    index = hdul.index_of(hdu)
                    hdul[index]  # an int index is not checked by index_of
                except (KeyError, IndexError):
                    raise InputError(
                        f"hdu={hdu!r} is not in FITS file {str(path)!r}; its HDUs: "
                        f"{', '.join(h.name or str(k) for k, h in enumerate(hdul))}"
                    ) from None
            header = hdul[index].header
            naxis = header.get("NAXIS", 0)
            if not hdul[index].is_image or naxis == 0:
                raise InputError(f"HDU {hdu!r} of {str(path)!r} holds no image data")
            shape = tuple(header[f"NAXIS{k}"] for k in range(naxis, 0, -1))
            memmap = not any(key in header for key in ("BSCALE", "BZERO", "BLANK"))
            sample = np.asarray(hdul[index].section[(0,) * naxis])
        except (OSError, ValueError, TypeError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"FITS file {str(path)!r} cannot be read: {exc}") from None
    reader = FitsSection(path, index, shape, sample.dtype.newbyteorder("="), memmap=memmap)
    data = da.from_array(reader, chunks="auto", meta=np.empty((0,) * naxis, reader.dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header)
    unit = None
    if "BUNIT" in header:
        try:
            unit = u.Unit(header["BUNIT"], format="fits")
        except ValueError:
            try:
                unit = u.Unit(header["BUNIT"])
            except ValueError:
                log.warning(
                    "ignoring the BUNIT %r of %s: not a unit astropy knows", header["BUNIT"], path
                )
    return NDData(data, wcs=wcs, unit=unit)


def _open_zarr(path, variable):
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises several kinds for a broken store
        raise InputError(f"data path {str(path)!r} is not a readable zarr store: {exc}") from None
    if isinstance(node, zarr.Array):
        if variable is not None:
            raise InputError(f"variable={variable!r}: {str(path)!r} is a single zarr array")
        import dask.array as da

        return da.from_zarr(node)
    import xarray as xr

    try:
        dataset = xr.open_zarr(str(path), consolidated=False, chunks={})
    except Exception as exc:
        arrays = sorted(node.array_keys())
        raise InputError(
            f"data path {str(path)!r} is a zarr group that xarray cannot open as a dataset "
            f"({exc}); give one of its arrays instead: "
            f"{', '.join(str(path) + '/' + a for a in arrays) or '(it has none)'}"
        ) from None
    return _pick_variable(dataset, variable, path)


def _open_netcdf(path, variable):
    import xarray as xr

    try:
        dataset = xr.open_dataset(str(path), chunks={})
    except ValueError as exc:
        raise InputError(
            f"data path {str(path)!r} cannot be read as netCDF ({exc}); netCDF-4/HDF5 files "
            f"need the h5netcdf package: pip install 'parfit[netcdf]'"
        ) from None
    except OSError as exc:
        raise InputError(f"data path {str(path)!r} is not a readable netCDF file: {exc}") from None
    return _pick_variable(dataset, variable, path)


def _pick_variable(dataset, variable, path):
    candidates = sorted(str(name) for name, var in dataset.data_vars.items() if var.ndim >= 2)
    if variable is not None:
        if variable not in dataset.data_vars:
            raise InputError(
                f"variable={variable!r} is not in {str(path)!r}; its data variables: "
                f"{', '.join(sorted(map(str, dataset.data_vars))) or '(none)'}"
            )
        return dataset[variable]
    if len(candidates) != 1:
        raise InputError(
            f"{str(path)!r} holds {len(candidates)} data variables with two or more "
            f"dimensions ({', '.join(candidates) or 'none'}); say which with "
            f"parfit.io.open_cube(path, variable=...)"
        )
    return dataset[candidates[0]]
