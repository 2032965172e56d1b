"""Cubes straight from disk: FITS, zarr and netCDF paths, read lazily."""

import numpy as np
import pytest
import xarray as xr
import zarr
from astropy import units as u
from astropy.io import fits
from astropy.nddata import NDData
from astropy.wcs import WCS

import parfit
from parfit.datasets import gaussian_cube
from parfit.io import FitsSection, open_cube
from parfit.models import Gaussian1D


def never_dispatch(*args, **kwargs):
    raise AssertionError("work was dispatched before the bad input was refused")


@pytest.fixture(scope="module")
def cube():
    return gaussian_cube((40, 12, 10), seed=1)


@pytest.fixture(scope="module")
def header(cube):
    w = WCS(naxis=3)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN", "VOPT"]
    w.wcs.cunit = ["deg", "deg", "km/s"]
    v = cube.world[0]
    w.wcs.crval = [10.0, 20.0, v[0]]
    w.wcs.cdelt = [-0.001, 0.001, v[1] - v[0]]
    w.wcs.crpix = [1, 1, 1]
    h = w.to_header()
    h["BUNIT"] = "K"
    return h


MODEL = Gaussian1D(2.0 * u.K, 0.0 * u.km / u.s, 5.0 * u.km / u.s)


def reference(cube, header):
    """The same cube given in memory, with the same WCS and unit."""
    return parfit.parallel_fit(
        MODEL, NDData(cube.data, wcs=WCS(header), unit="K"), scheduler="threads"
    )


def assert_same(a, b, rtol=0.0):
    for name in a.param_names:
        np.testing.assert_allclose(a.parameters[name], b.parameters[name], rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(a.status, b.status)


@pytest.mark.parametrize("dtype, scaled", [(">f8", False), (">f4", False), (">i2", True)])
def test_fits_file_gives_the_in_memory_fit(cube, header, tmp_path, dtype, scaled):
    path = tmp_path / "cube.fits"
    data = cube.data
    if scaled:
        hdu = fits.PrimaryHDU(np.round(data / 1e-4).astype(dtype), header=header.copy())
        hdu.header["BSCALE"] = 1e-4
        hdu.header["BZERO"] = 0.0
        data = np.round(data / 1e-4) * 1e-4
    else:
        hdu = fits.PrimaryHDU(data.astype(dtype), header=header.copy())
        data = data.astype(dtype).astype(float)
    hdu.writeto(path)
    opened = open_cube(path)
    assert isinstance(opened, NDData)
    assert type(opened.data).__name__ == "Array"  # dask: nothing read yet
    assert opened.data.dtype.isnative
    assert opened.unit == u.K
    assert opened.wcs.wcs.ctype[2] == "VOPT"
    res = parfit.parallel_fit(MODEL, str(path), scheduler="threads")
    ref = parfit.parallel_fit(MODEL, NDData(data, wcs=WCS(header), unit="K"), scheduler="threads")
    assert res.success.all()
    assert res.units["mean"] == u.km / u.s
    # float32 samples (and astropy's float32 scaling of 16-bit integers) differ from
    # the float64 ones in memory in the last digits.
    assert_same(res, ref, rtol=0 if dtype == ">f8" else 1e-6)


def test_fits_reader_reads_only_what_is_asked(cube, header, tmp_path, monkeypatch):
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(cube.data, header=header).writeto(path)
    reads = []
    original = FitsSection.__getitem__

    def counting(self, key):
        out = original(self, key)
        reads.append(out.size)
        return out

    monkeypatch.setattr(FitsSection, "__getitem__", counting)
    opened = open_cube(path)
    np.testing.assert_array_equal(opened.data[:, 3, 4].compute(), cube.data[:, 3, 4])
    assert sum(reads) < cube.data.size


def test_fits_hdu_choice_and_errors(cube, header, tmp_path):
    path = tmp_path / "two.fits"
    fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.ImageHDU(cube.data, header=header, name="CO"),
            fits.ImageHDU(2 * cube.data, header=header, name="HCN"),
        ]
    ).writeto(path)
    first = open_cube(path)  # the first image with 2+ axes
    np.testing.assert_array_equal(first.data.compute(), cube.data)
    np.testing.assert_array_equal(open_cube(path, hdu="HCN").data.compute(), 2 * cube.data)
    with pytest.raises(
        ValueError,
        match=r"hdu='XYZ' is not in FITS file .*; its HDUs: "
        r"PRIMARY, CO, HCN",
    ):
        open_cube(path, hdu="XYZ")
    empty = tmp_path / "empty.fits"
    fits.PrimaryHDU().writeto(empty)
    with pytest.raises(ValueError, match="has no image HDU with two or more axes"):
        parfit.parallel_fit(MODEL, empty, scheduler=never_dispatch)


def test_truncated_and_foreign_files_are_refused(cube, header, tmp_path):
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(cube.data, header=header).writeto(path)
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(path.read_bytes()[:4000])
    with pytest.raises(
        ValueError, match="FITS file '.*truncated.fits' is truncated: File may have been truncated"
    ):
        parfit.parallel_fit(MODEL, truncated, scheduler=never_dispatch)
    text = tmp_path / "notes.fits"
    text.write_text("not a FITS file at all\n" * 200)
    with pytest.raises(ValueError, match="is not a readable FITS file|cannot be read"):
        parfit.parallel_fit(MODEL, text, scheduler=never_dispatch)
    unknown = tmp_path / "cube.dat"
    unknown.write_bytes(b"\x00" * 100)
    with pytest.raises(
        ValueError, match="is neither a FITS file, a netCDF/HDF5 file nor a zarr store"
    ):
        parfit.parallel_fit(MODEL, unknown, scheduler=never_dispatch)
    with pytest.raises(ValueError, match="data path '.*missing.fits' does not exist"):
        parfit.parallel_fit(MODEL, tmp_path / "missing.fits", scheduler=never_dispatch)


def test_zarr_array_path(cube, tmp_path):
    path = tmp_path / "cube.zarr"
    arr = zarr.create_array(str(path), shape=cube.data.shape, chunks=(40, 4, 5), dtype="f4")
    arr[...] = cube.data
    res = parfit.parallel_fit(cube.model, path, world=cube.world, scheduler="threads")
    ref = parfit.parallel_fit(
        cube.model, cube.data.astype("f4"), world=cube.world, scheduler="threads"
    )
    assert_same(res, ref)
    # A zarr array object works as it is, a group is refused with its arrays listed.
    assert_same(
        parfit.parallel_fit(
            cube.model, zarr.open_array(str(path), mode="r"), world=cube.world, scheduler="threads"
        ),
        ref,
    )
    group = zarr.open_group(str(tmp_path / "group.zarr"), mode="w")
    group.create_array("co", shape=(4, 2), dtype="f8")
    with pytest.raises(
        TypeError,
        match=r"data is a zarr group \(arrays: co\); give one of its "
        r"arrays",
    ):
        parfit.parallel_fit(cube.model, group, scheduler=never_dispatch)


def _dataset(cube, names=("co",)):
    v = cube.world[0]
    return xr.Dataset(
        {name: (("v", "y", "x"), (k + 1) * cube.data) for k, name in enumerate(names)},
        coords={"v": v},
    )


@pytest.mark.parametrize("fmt", ["zarr", "netcdf4", "netcdf3"])
def test_datasets_on_disk_with_coordinates(cube, tmp_path, fmt):
    ds = _dataset(cube)
    if fmt == "zarr":
        path = tmp_path / "cube.zarr"
        ds.to_zarr(path, consolidated=False)
    else:
        pytest.importorskip("h5netcdf") if fmt == "netcdf4" else None
        path = tmp_path / "cube.nc"
        ds.to_netcdf(path, engine="h5netcdf" if fmt == "netcdf4" else "scipy")
    opened = open_cube(path)
    assert opened.name == "co" and opened.dims == ("v", "y", "x")
    res = parfit.parallel_fit(cube.model, path, fitting_axes="v", scheduler="threads")
    ref = parfit.parallel_fit(cube.model, ds["co"], fitting_axes="v", scheduler="threads")
    assert_same(res, ref)
    assert res.dims == ("y", "x")


def test_several_variables_need_a_choice(cube, tmp_path):
    path = tmp_path / "two.zarr"
    _dataset(cube, names=("co", "hcn")).to_zarr(path, consolidated=False)
    with pytest.raises(
        ValueError,
        match=r"holds 2 data variables with two or more dimensions "
        r"\(co, hcn\); say which with "
        r"parfit.io.open_cube\(path, variable=...\)",
    ):
        parfit.parallel_fit(cube.model, path, fitting_axes="v", scheduler=never_dispatch)
    hcn = open_cube(path, variable="hcn")
    np.testing.assert_array_equal(hcn.values, 2 * cube.data)
    with pytest.raises(
        ValueError,
        match=r"variable='cs' is not in .*; its data variables: "
        r"co, hcn",
    ):
        open_cube(path, variable="cs")
