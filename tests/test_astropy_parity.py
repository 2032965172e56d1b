"""parfit with astropy models and fitters gives astropy's parallel_fit_dask maps.

Every test runs astropy's own ``parallel_fit_dask`` and parfit on the same
inputs and compares the fitted parameter maps.
"""

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from astropy import units as u
from astropy.modeling import fitting, models
from astropy.modeling.fitting import parallel_fit_dask
from astropy.nddata import NDData, StdDevUncertainty
from astropy.wcs import WCS

import parfit

pytestmark = pytest.mark.astropy_parity

RTOL = 1e-9


def gaussian_cube(shape=(41, 5, 4), axis=0, seed=0, noise=0.05):
    """Gaussian spectra along ``axis`` with per-pixel truth."""
    rng = np.random.default_rng(seed)
    n = shape[axis]
    x = np.linspace(-5, 5, n)
    spatial = [s for k, s in enumerate(shape) if k != axis]
    amp = rng.uniform(1, 3, spatial)
    mean = rng.uniform(-1, 1, spatial)
    sd = rng.uniform(0.6, 1.4, spatial)
    spec = amp[None] * np.exp(-0.5 * ((x.reshape(-1, *[1] * len(spatial)) - mean) / sd) ** 2)
    spec = spec + rng.normal(0, noise, spec.shape)
    return np.moveaxis(spec, 0, axis), x


def assert_maps_equal(ref_model, result, rtol=RTOL):
    assert result.model.param_names == ref_model.param_names
    for name in ref_model.param_names:
        expected = np.asarray(getattr(ref_model, name).value)
        got = result.parameters[name]
        assert got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-12, err_msg=name)
        # The returned model holds the same maps.
        np.testing.assert_allclose(
            np.asarray(getattr(result.model, name).value),
            expected,
            rtol=rtol,
            atol=1e-12,
            err_msg=name,
        )


def both(model, data, **kwargs):
    """Run astropy and parfit with identical arguments."""
    ref = parallel_fit_dask(
        model=model, fitter=fitting.TRFLSQFitter(), data=data, scheduler="synchronous", **kwargs
    )
    res = parfit.parallel_fit(
        model=model, fitter=fitting.TRFLSQFitter(), data=data, scheduler="synchronous", **kwargs
    )
    return ref, res


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_1d_fits_along_each_axis(axis):
    shape = [6, 5, 4]
    shape[axis] = 41
    cube, x = gaussian_cube(tuple(shape), axis=axis)
    ref, res = both(models.Gaussian1D(2, 0, 1), cube, world=(x,), fitting_axes=axis)
    assert_maps_equal(ref, res)
    assert res.success.all()
    assert res.parameters["mean"].shape == tuple(s for k, s in enumerate(shape) if k != axis)


def test_negative_fitting_axis_matches_positive():
    # astropy crashes on fitting_axes=-1; parfit must treat it as the last axis.
    cube, x = gaussian_cube((5, 4, 41), axis=2)
    ref = parallel_fit_dask(
        model=models.Gaussian1D(2, 0, 1),
        fitter=fitting.TRFLSQFitter(),
        data=cube,
        world=(x,),
        fitting_axes=2,
        scheduler="synchronous",
    )
    res = parfit.parallel_fit(
        models.Gaussian1D(2, 0, 1),
        cube,
        fitter=fitting.TRFLSQFitter(),
        world=(x,),
        fitting_axes=-1,
        scheduler="synchronous",
    )
    assert_maps_equal(ref, res)


def test_world_none_uses_pixel_indices():
    cube, _ = gaussian_cube((41, 3, 3))
    ref, res = both(models.Gaussian1D(2, 20, 5), cube, fitting_axes=0)
    assert_maps_equal(ref, res)


def test_nd_world_arrays():
    cube, x = gaussian_cube((41, 4, 3))
    # Each pixel gets its own shifted spectral axis.
    shift = np.linspace(0, 0.5, 12).reshape(1, 4, 3)
    world = x[:, None, None] + shift
    ref, res = both(models.Gaussian1D(2, 0, 1), cube, world=(world,), fitting_axes=0)
    assert_maps_equal(ref, res)


def test_array_valued_starting_parameters():
    cube, x = gaussian_cube((41, 4, 3), seed=3)
    start = models.Gaussian1D(
        amplitude=np.full((4, 3), 2.0), mean=np.linspace(-0.5, 0.5, 12).reshape(4, 3), stddev=1.0
    )
    ref, res = both(start, cube, world=(x,), fitting_axes=0)
    assert_maps_equal(ref, res)


def test_compound_model_with_bounds_fixed_and_tied():
    rng = np.random.default_rng(5)
    x = np.linspace(-10, 10, 80)
    clean = (models.Gaussian1D(2, -3, 1) + models.Gaussian1D(1, 2, 1) + models.Const1D(0.5))(x)
    cube = clean[:, None, None] + rng.normal(0, 0.02, (80, 3, 3))
    start = (
        models.Gaussian1D(1.5, -2.5, 1.2) + models.Gaussian1D(0.8, 1.5, 1.2) + models.Const1D(0.3)
    )
    start.stddev_0.bounds = (0.1, 5)
    start.stddev_1.tied = lambda m: m.stddev_0
    start.amplitude_2.fixed = True
    ref, res = both(start, cube, world=(x,), fitting_axes=0)
    assert_maps_equal(ref, res, rtol=1e-8)


def make_image_stack(n=3, ny=12, nx=10, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(ny, dtype=float), np.arange(nx, dtype=float), indexing="ij")
    stack = np.empty((n, ny, nx))
    for k in range(n):
        g = models.Gaussian2D(1 + k, 5 + 0.3 * k, 4.5, 1.5, 1.2, 0.3)
        # astropy's 2-D fits use x along the first fitting axis ("ij").
        stack[k] = g(yy, xx) + rng.normal(0, 0.01, (ny, nx))
    return stack


def test_2d_fits_of_image_planes():
    stack = make_image_stack()
    start = models.Gaussian2D(1.5, 5, 4.5, 1.4, 1.1, 0.2)
    world = (np.arange(12.0), np.arange(10.0))
    ref, res = both(start, stack, world=world, fitting_axes=(1, 2))
    assert_maps_equal(ref, res)
    assert res.parameters["amplitude"].shape == (3,)
    np.testing.assert_allclose(res.parameters["amplitude"], [1, 2, 3], rtol=0.05)


def test_2d_fits_world_none():
    stack = make_image_stack(seed=2)
    ref, res = both(models.Gaussian2D(1.5, 5, 4.5, 1.4, 1.1, 0.2), stack, fitting_axes=(1, 2))
    assert_maps_equal(ref, res)


def cube_wcs(ndim=3, coupled=False):
    wcs = WCS(naxis=3)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN", "VRAD"]
    wcs.wcs.cunit = ["deg", "deg", "m/s"]
    wcs.wcs.crval = [150.0, 2.0, 0.0]
    wcs.wcs.crpix = [3.0, 3.0, 21.0]
    wcs.wcs.cdelt = [-0.001, 0.001, 250.0]
    if coupled:
        # The spectral axis shifts from column to column.
        wcs.wcs.pc = [[1, 0, 0], [0, 1, 0], [0.02, 0, 1]]
    return wcs


@pytest.mark.parametrize("coupled", [False, True])
def test_wcs_world(coupled):
    cube, _ = gaussian_cube((41, 5, 4), seed=4)
    wcs = cube_wcs(coupled=coupled)
    # Spectral world values are 250 m/s per channel around channel 20.
    start = models.Gaussian1D(2, 0, 250)
    ref, res = both(start, cube, world=wcs, fitting_axes=0)
    assert_maps_equal(ref, res, rtol=1e-8)
    assert res.success.all()


def test_wcs_2d_celestial_planes():
    stack = make_image_stack(n=2, ny=12, nx=10)
    wcs = WCS(naxis=3)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN", "FREQ"]
    wcs.wcs.crval = [150.0, 2.0, 1e9]
    wcs.wcs.crpix = [5.0, 6.0, 1.0]
    wcs.wcs.cdelt = [-0.001, 0.001, 1e6]
    # fitting_axes=(1, 2): model x is numpy axis 1 (Dec), y is axis 2 (RA).
    start = models.Gaussian2D(1.5, 2.0, 150.0, 0.0014, 0.0011, 0.2)
    ref, res = both(start, stack, world=wcs, fitting_axes=(1, 2))
    assert_maps_equal(ref, res, rtol=1e-7)


def test_dask_input_any_chunking():
    cube, x = gaussian_cube((41, 6, 5), seed=6)
    ref = parallel_fit_dask(
        model=models.Gaussian1D(2, 0, 1),
        fitter=fitting.TRFLSQFitter(),
        data=cube,
        world=(x,),
        fitting_axes=0,
        scheduler="synchronous",
    )
    for chunks in [(41, 6, 5), (10, 2, 3), (41, 1, 1)]:
        res = parfit.parallel_fit(
            models.Gaussian1D(2, 0, 1),
            da.from_array(cube, chunks=chunks),
            fitter=fitting.TRFLSQFitter(),
            world=(x,),
            fitting_axes=0,
            scheduler="synchronous",
            chunk_n_max=7,
        )
        assert_maps_equal(ref, res)


def test_units_with_data_unit_and_quantity_world():
    cube, x = gaussian_cube((41, 3, 3), seed=7)
    start = models.Gaussian1D(amplitude=2 * u.Jy, mean=0 * u.km / u.s, stddev=1 * u.km / u.s)
    kwargs = dict(world=(x * u.km / u.s,), fitting_axes=0, data_unit=u.Jy)
    ref, res = both(start, cube, **kwargs)
    assert_maps_equal(ref, res)
    assert res.model.mean.unit == u.km / u.s
    assert res.model.amplitude.unit == u.Jy
    assert res.units["stddev"] == u.km / u.s


def test_quantity_data():
    cube, x = gaussian_cube((41, 3, 3), seed=8)
    start = models.Gaussian1D(amplitude=2 * u.mJy, mean=0 * u.km / u.s, stddev=1 * u.km / u.s)
    ref, res = both(start, cube * u.mJy, world=(x * u.km / u.s,), fitting_axes=0)
    assert_maps_equal(ref, res)
    assert res.model.amplitude.unit == u.mJy


def test_nddata_wcs_mask_unit_uncertainty():
    cube, _ = gaussian_cube((41, 4, 3), seed=9)
    sigma = np.full(cube.shape, 0.05)
    sigma[:, 0, 0] = 0.1
    mask = np.zeros(cube.shape, dtype=bool)
    mask[10:14, 1, 1] = True
    nd = NDData(cube, wcs=cube_wcs(), mask=mask, unit="Jy", uncertainty=StdDevUncertainty(sigma))
    start = models.Gaussian1D(2, 0, 250)
    ref = parallel_fit_dask(
        data=nd, model=start, fitter=fitting.TRFLSQFitter(), fitting_axes=0, scheduler="synchronous"
    )
    res = parfit.parallel_fit(
        data=nd, model=start, fitter=fitting.TRFLSQFitter(), fitting_axes=0, scheduler="synchronous"
    )
    # Masked samples are left out instead of given zero weight: same minimum.
    assert_maps_equal(ref, res, rtol=1e-6)
    assert res.model.amplitude.unit == u.Jy


def test_xarray_dataarray_coords_and_dim_names():
    cube, x = gaussian_cube((41, 4, 3), seed=10)
    arr = xr.DataArray(
        cube,
        dims=("v", "y", "x"),
        coords={"v": x, "y": np.arange(4) * 10.0, "x": np.arange(3) * 5.0},
    )
    ref = parallel_fit_dask(
        model=models.Gaussian1D(2, 0, 1),
        fitter=fitting.TRFLSQFitter(),
        data=cube,
        world=(x,),
        fitting_axes=0,
        scheduler="synchronous",
    )
    res = parfit.parallel_fit(
        models.Gaussian1D(2, 0, 1),
        arr,
        fitter=fitting.TRFLSQFitter(),
        fitting_axes="v",
        scheduler="synchronous",
    )
    assert_maps_equal(ref, res)
    ds = res.to_xarray()
    assert ds["amplitude"].dims == ("y", "x")
    np.testing.assert_array_equal(ds["y"].values, np.arange(4) * 10.0)


def test_weights_and_mask_arrays():
    cube, x = gaussian_cube((41, 3, 4), seed=11)
    weights = np.random.default_rng(1).uniform(5, 20, cube.shape)
    mask = np.zeros(cube.shape, dtype=bool)
    mask[::7] = True
    weights_before = weights.copy()
    ref, res = both(
        models.Gaussian1D(2, 0, 1),
        cube,
        world=(x,),
        fitting_axes=0,
        weights=weights.copy(),
        mask=mask,
    )
    assert_maps_equal(ref, res, rtol=1e-6)
    res2 = parfit.parallel_fit(
        models.Gaussian1D(2, 0, 1),
        cube,
        fitter=fitting.TRFLSQFitter(),
        world=(x,),
        weights=weights,
        mask=mask,
        scheduler="synchronous",
    )
    # parfit never writes into the caller's weights (astropy multiplies them by the mask).
    np.testing.assert_array_equal(weights, weights_before)
    assert_maps_equal(ref, res2, rtol=1e-6)


def test_fit_info_collected_on_result_not_fitter():
    cube, x = gaussian_cube((41, 2, 3), seed=12)
    fitter = fitting.TRFLSQFitter()
    before = fitter.fit_info
    res = parfit.parallel_fit(
        models.Gaussian1D(2, 0, 1),
        cube,
        fitter=fitter,
        world=(x,),
        scheduler="synchronous",
        fit_info=("nfev", "message"),
    )
    assert fitter.fit_info is before
    assert res.fit_info.shape == (2, 3)
    info = res.fit_info[1, 2]
    assert info["nfev"] == res.nfev[1, 2] > 0
    assert isinstance(info["message"], str)


def test_fit_info_single_name():
    cube, x = gaussian_cube((41, 2, 2), seed=13)
    res = parfit.parallel_fit(
        models.Gaussian1D(2, 0, 1),
        cube,
        fitter=fitting.TRFLSQFitter(),
        world=(x,),
        scheduler="synchronous",
        fit_info="nfev",
    )
    assert res.fit_info[0, 1] == {"nfev": res.nfev[0, 1]}
