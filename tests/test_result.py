"""FitResult: maps, xarray, zarr and FITS output, summary."""

import numpy as np
import pytest
import xarray as xr
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS

import parfit
from parfit import Status
from parfit.datasets import gaussian_cube
from parfit.errors import OutputExistsError
from parfit.models import Gaussian1D, from_yaml


@pytest.fixture(scope="module")
def synthetic():
    return gaussian_cube((40, 6, 5), seed=3, n_blank=2)


@pytest.fixture(scope="module")
def result(synthetic):
    return parfit.parallel_fit(
        synthetic.model,
        synthetic.data,
        world=synthetic.world,
        data_unit="K",
        scheduler="synchronous",
    )


@pytest.fixture(scope="module")
def wcs_result():
    cube = gaussian_cube((40, 6, 5), seed=4)
    wcs = WCS(naxis=3)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN", "VRAD"]
    wcs.wcs.cunit = ["deg", "deg", "km/s"]
    wcs.wcs.crval = [83.8, -5.4, -50.0]
    wcs.wcs.crpix = [1.0, 1.0, 1.0]
    wcs.wcs.cdelt = [-0.01, 0.01, 100.0 / 39]
    wcs.wcs.set()  # wcslib now works in m/s
    # The model is written in km/s: the WCS world is converted to it.
    start = Gaussian1D(amplitude=2.0, mean=0.0 * u.km / u.s, stddev=5.0 * u.km / u.s)
    result = parfit.parallel_fit(start, cube.data, world=wcs, scheduler="synchronous")
    assert result.success.all()
    np.testing.assert_allclose(result.parameters["mean"], cube.truth["mean"], atol=1.5)
    return result, wcs


def test_maps_status_and_counts(result, synthetic):
    assert result.shape == (6, 5)
    assert result.status_counts() == {Status.OK: 28, Status.NO_VALID_DATA: 2}
    assert result.status.dtype == np.int8 and result.nfev.dtype == np.int32
    assert not result.success[5, 3] and not result.success[5, 4]
    ok = result.success
    assert np.all(np.isfinite(result.parameters["mean"][ok]))
    assert np.all(np.isnan(result.parameters["mean"][~ok]))
    np.testing.assert_allclose(result.parameters["mean"][ok], synthetic.truth["mean"][ok], atol=1.5)


def test_summary_text(result):
    text = result.summary()
    assert "parfit result: 30 fits, map shape (6, 5)" in text
    assert "OK                      28  ( 93.3%)  ok" in text
    assert "NO_VALID_DATA            2" in text
    median = np.median(result.parameters["mean"][result.success])
    assert f"{median:12.5g}" in text


def test_to_xarray(result):
    ds = result.to_xarray()
    expected = {
        "amplitude",
        "amplitude_error",
        "mean",
        "mean_error",
        "stddev",
        "stddev_error",
        "statistic",
        "success",
        "status",
        "nfev",
        "flags",
    }
    assert set(ds.data_vars) == expected
    assert ds["mean"].dims == ("dim_1", "dim_2")
    np.testing.assert_array_equal(ds["mean"].values, result.parameters["mean"])
    assert ds["amplitude"].attrs["units"] == "K"
    assert ds["status"].attrs["flag_meanings"].split()[1] == "ok"
    assert ds.attrs["parfit_version"] == parfit.__version__
    model = from_yaml(ds.attrs["model_yaml"])
    assert model.param_names == ("amplitude", "mean", "stddev")
    assert model.stddev.bounds == (0.0, None)


def test_to_xarray_with_celestial_wcs(wcs_result):
    result, wcs = wcs_result
    ds = result.to_xarray()
    ra, dec = wcs.celestial.array_index_to_world_values(2, 3)
    assert ds["world_lon"].values[2, 3] == pytest.approx(ra)
    assert ds["world_lat"].values[2, 3] == pytest.approx(dec)
    assert ds["world_lon"].attrs["units"] == "deg"


def test_to_zarr_round_trip_and_overwrite(result, tmp_path):
    path = tmp_path / "maps.zarr"
    result.to_zarr(path)
    ds = xr.open_zarr(path, consolidated=False)
    np.testing.assert_array_equal(ds["stddev"].values, result.parameters["stddev"])
    np.testing.assert_array_equal(ds["status"].values, result.status)
    with pytest.raises(OutputExistsError, match="already exists; pass overwrite=True"):
        result.to_zarr(path)
    result.to_zarr(path, overwrite=True)
    # A folder that is not a zarr store is never replaced, even with overwrite.
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="is not a zarr store"):
        result.to_zarr(other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"


def test_to_fits(wcs_result, tmp_path):
    result, wcs = wcs_result
    path = tmp_path / "maps.fits"
    result.to_fits(path)
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        assert names == [
            "PRIMARY",
            "AMPLITUDE",
            "AMPLITUDE_ERR",
            "MEAN",
            "MEAN_ERR",
            "STDDEV",
            "STDDEV_ERR",
            "STATISTIC",
            "STATUS",
            "NFEV",
            "FLAGS",
        ]
        np.testing.assert_array_equal(hdul["MEAN"].data, result.parameters["mean"])
        assert hdul["MEAN"].header["BUNIT"] == "km / s"
        map_wcs = WCS(hdul["MEAN"].header)
        assert map_wcs.naxis == 2
        np.testing.assert_allclose(map_wcs.wcs.crval, [83.8, -5.4])
        assert hdul[0].header["PARFITV"] == parfit.__version__
    with pytest.raises(OutputExistsError):
        result.to_fits(path)
    result.to_fits(path, overwrite=True)


def test_to_netcdf_refuses_to_overwrite(result, tmp_path):
    import xarray as xr

    path = result.to_netcdf(tmp_path / "maps.nc")
    with xr.open_dataset(path) as ds:
        np.testing.assert_array_equal(ds["status"].values, result.status)
    with pytest.raises(FileExistsError, match="maps.nc' already exists; pass overwrite=True"):
        result.to_netcdf(path)
    result.to_netcdf(path, overwrite=True)
    (tmp_path / "folder.nc").mkdir()
    with pytest.raises(FileExistsError, match="is a directory; parfit will not replace it"):
        result.to_netcdf(tmp_path / "folder.nc", overwrite=True)
