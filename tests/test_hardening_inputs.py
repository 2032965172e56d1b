"""Hardening (issue 11, items 4 and 7): masks in every form, weights and uncertainties, units.

Every test fits a small cube of Gaussian lines with known truth through
``parfit.parallel_fit`` and asserts exact statuses, values against the truth,
or the exact refusal.
"""

import re

import dask.array as da
import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import (
    InverseVariance,
    NDData,
    StdDevUncertainty,
    UnknownUncertainty,
    VarianceUncertainty,
)

import parfit
from parfit.engine.inputs import CubeInput
from parfit.errors import InputError, InputTypeError
from parfit.models import Gaussian1D
from parfit.status import Status

X = np.linspace(-5.0, 5.0, 31)
AMPLITUDE = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MEAN, STDDEV = 0.3, 0.8


def make_cube():
    """A (31, 2, 3) cube of noiseless Gaussians (amplitudes AMPLITUDE), read-only."""
    cube = AMPLITUDE[None] * np.exp(-0.5 * ((X[:, None, None] - MEAN) / STDDEV) ** 2)
    cube.setflags(write=False)
    return cube


def readonly(arr):
    arr = np.array(arr)
    arr.setflags(write=False)
    return arr


def fit(data, **kwargs):
    kwargs.setdefault("world", (X,))
    return parfit.parallel_fit(Gaussian1D(1.0, 0.0, 1.0), data, scheduler="synchronous", **kwargs)


def assert_truth(result, where=(slice(None),) * 2):
    assert np.all(result.status[where] == Status.OK)
    np.testing.assert_allclose(result.parameters["amplitude"][where], AMPLITUDE[where], rtol=1e-6)
    np.testing.assert_allclose(result.parameters["mean"][where], MEAN, atol=1e-6)
    np.testing.assert_allclose(result.parameters["stddev"][where], STDDEV, rtol=1e-6)


def spiked():
    """The cube with 1e6 at four samples of pixel (0, 0), and a mask of them."""
    bad = np.zeros((31, 2, 3), dtype=bool)
    bad[12:16, 0, 0] = True
    data = np.array(make_cube())
    data[bad] = 1e6
    return readonly(data), readonly(bad)


# --- masks ------------------------------------------------------------------------------


def test_masked_array_data_leaves_masked_samples_out_and_unions_with_mask():
    data, bad = spiked()
    cube = np.ma.MaskedArray(data, mask=bad)
    assert_truth(fit(cube))
    # With mask= too, both masks apply: mask= blanks pixel (1, 2) entirely.
    extra = np.zeros((31, 2, 3), dtype=bool)
    extra[:, 1, 2] = True
    extra = readonly(extra)
    result = fit(cube, mask=extra)
    assert result.status[1, 2] == Status.NO_VALID_DATA
    assert np.isnan(result.parameters["amplitude"][1, 2])
    ok = np.ones((2, 3), dtype=bool)
    ok[1, 2] = False
    assert_truth(result, ok)
    # Nothing the caller passed was touched.
    np.testing.assert_array_equal(cube.mask, bad)
    assert not extra[:, 0, 0].any() and data[12, 0, 0] == 1e6


def test_masked_array_with_nomask_is_a_plain_array():
    cube = np.ma.MaskedArray(make_cube(), mask=np.ma.nomask)
    assert cube.mask is np.ma.nomask
    assert_truth(fit(cube))


def test_fully_masked_cube_is_no_valid_data_everywhere():
    cube = np.ma.MaskedArray(make_cube(), mask=np.ones((31, 2, 3), dtype=bool))
    result = fit(cube)
    assert result.status.tolist() == [[Status.NO_VALID_DATA] * 3] * 2
    assert np.isnan(result.parameters["amplitude"]).all()
    assert result.status_counts() == {Status.NO_VALID_DATA: 6}


def test_masked_weights_and_masked_mask():
    data, bad = spiked()
    # Masked weights: the samples under the weights' mask are left out, whatever
    # value lies beneath (here -1, which as a weight would be refused).
    weights = np.ma.MaskedArray(readonly(np.where(bad, -1.0, 1.0)), mask=bad)
    assert_truth(fit(data, weights=weights))
    # A masked mask= : its masked entries leave samples out too.
    mask = np.ma.MaskedArray(readonly(np.zeros((31, 2, 3), dtype=bool)), mask=bad)
    assert_truth(fit(data, mask=mask))


def test_dask_array_of_masked_chunks():
    data, bad = spiked()
    cube = da.ma.masked_array(
        da.from_array(data, chunks=(31, 1, 3)), mask=da.from_array(bad, chunks=(31, 1, 3))
    )
    assert_truth(fit(cube))


def test_astropy_masked_quantity():
    from astropy.utils.masked import Masked

    data, bad = spiked()
    result = fit(Masked(data * u.K, mask=bad))
    assert_truth(result)
    assert result.units["amplitude"] == u.K


def test_nddata_mask_unions_with_mask_and_nan_data():
    data, bad = spiked()
    data = np.array(data)
    data[5:8, 1, 1] = np.nan  # NaN data: left out of pixel (1, 1)
    data[:, 0, 2] = np.inf  # all inf: nothing left in pixel (0, 2)
    nd_mask = np.zeros((31, 2, 3), dtype=bool)
    nd_mask[:, 0, 1] = True  # NDData's mask blanks pixel (0, 1)
    nd_mask |= bad  # and covers the spikes of pixel (0, 0)
    arg_mask = np.zeros((31, 2, 3), dtype=bool)
    arg_mask[:, 1, 0] = True  # mask= blanks pixel (1, 0)
    nd = NDData(readonly(data), mask=readonly(nd_mask))
    result = fit(nd, mask=readonly(arg_mask))
    assert result.status.tolist() == [
        [Status.OK, Status.NO_VALID_DATA, Status.NO_VALID_DATA],
        [Status.NO_VALID_DATA, Status.OK, Status.OK],
    ]
    assert_truth(result, result.status == Status.OK)
    # A masked array inside an NDData keeps its mask when the NDData has none.
    spikes, _ = spiked()
    assert_truth(fit(NDData(np.ma.MaskedArray(spikes, mask=bad))))


def test_integer_masks_nonzero_leaves_out_and_float_masks_are_refused():
    data, bad = spiked()
    mask = np.where(bad, 2, 0).astype(np.int16)  # any nonzero value leaves the sample out
    mask[:, 1, 1] = 1
    result = fit(data, mask=readonly(mask))
    assert result.status[1, 1] == Status.NO_VALID_DATA
    assert_truth(result, result.status == Status.OK)
    assert (result.status == Status.OK).sum() == 5
    with pytest.raises(
        InputTypeError,
        match=re.escape(
            "mask must have a boolean dtype (True = leave the sample out) or an integer one "
            "(nonzero = leave the sample out); got dtype float64"
        ),
    ):
        fit(data, mask=bad.astype(float))
    with pytest.raises(InputTypeError, match=re.escape("data.mask must have a boolean dtype")):
        fit(NDData(data, mask=bad.astype(float)))


def test_nan_world_refused_when_shared_left_out_when_per_pixel():
    data = make_cube()
    world = X.copy()
    world[3] = np.nan
    with pytest.raises(InputError, match=re.escape("world[0] has 1 non-finite value(s)")):
        fit(data, world=(world,))
    per_pixel = np.broadcast_to(X[:, None, None], data.shape).copy()
    per_pixel[12:16, 0, 0] = np.nan
    spikes, _ = spiked()
    # The NaN world samples of pixel (0, 0) are exactly its 1e6 spikes: left out.
    assert_truth(fit(spikes, world=(readonly(per_pixel),)))


# --- weights and uncertainties -------------------------------------------------------


def test_zero_and_nan_weights_leave_samples_out_negative_infinite_boolean_refused():
    data, bad = spiked()
    weights = np.ones((31, 2, 3))
    weights[12:14, 0, 0] = 0.0
    weights[14:16, 0, 0] = np.nan
    assert_truth(fit(data, weights=readonly(weights)))
    weights[14:16, 0, 0] = np.inf
    with pytest.raises(
        InputError,
        match=re.escape(
            "weights has 2 infinite value(s): an infinite weight (zero uncertainty) claims a "
            "sample is exact, which a least-squares fit cannot weigh"
        ),
    ):
        fit(data, weights=weights)
    weights[14:16, 0, 0] = -1.0
    with pytest.raises(InputError, match=re.escape("weights has 2 negative value(s)")):
        fit(data, weights=weights)
    with pytest.raises(
        InputTypeError,
        match=re.escape(
            "weights has boolean dtype; weights are numbers (1/sigma). To leave samples out, "
            "pass mask="
        ),
    ):
        fit(data, weights=~bad)


def test_lazy_infinite_and_negative_weights_leave_samples_out():
    # Lazy weights cannot be checked before dispatch: the samples are left out.
    data, bad = spiked()
    weights = np.ones((31, 2, 3))
    weights[12:14, 0, 0] = np.inf
    weights[14:16, 0, 0] = -1.0
    result = fit(data, weights=da.from_array(weights, chunks=(31, 1, 1)))
    assert_truth(result)


def test_weight_warnings_name_the_samples_left_out_per_fit():
    from parfit.engine.inputs import weight_warnings

    rows = np.array([[1.0, np.inf, np.inf, 1.0], [1.0, 0.0, np.nan, 2.0], [-1.0, 1.0, 1.0, 1.0]])
    assert weight_warnings(readonly(rows)) == {
        0: "2 sample(s) with an infinite weight (zero uncertainty) left out: a sample claimed "
        "to be exact cannot be weighed by a least-squares fit",
        2: "1 sample(s) with a negative weight left out: weights are 1/sigma and must be >= 0",
    }


@pytest.mark.parametrize(
    "uncertainty, message",
    [
        (
            StdDevUncertainty,
            "data.uncertainty (StdDevUncertainty) has 4 zero value(s): a sample "
            "with zero uncertainty claims to be exact",
        ),
        (VarianceUncertainty, "data.uncertainty (VarianceUncertainty) has 4 zero value(s)"),
    ],
)
def test_zero_uncertainty_in_memory_is_refused(uncertainty, message):
    data, bad = spiked()
    sigma = np.where(bad, 0.0, 0.1)
    with pytest.raises(InputError, match=re.escape(message)):
        fit(NDData(data, uncertainty=uncertainty(sigma)))


def test_infinite_inverse_variance_refused_negative_uncertainties_refused():
    data, bad = spiked()
    ivar = np.where(bad, np.inf, 100.0)
    with pytest.raises(
        InputError,
        match=re.escape(
            "data.uncertainty (InverseVariance) has 4 infinite value(s): a sample with zero "
            "uncertainty claims to be exact"
        ),
    ):
        fit(NDData(data, uncertainty=InverseVariance(ivar)))
    with pytest.raises(
        InputError,
        match=re.escape(
            "data.uncertainty (VarianceUncertainty) has 4 negative value(s); uncertainties "
            "must be >= 0"
        ),
    ):
        fit(NDData(data, uncertainty=VarianceUncertainty(np.where(bad, -1.0, 0.01))))
    # Given as weights=, the refusal names weights.
    with pytest.raises(
        InputError, match=re.escape("weights (StdDevUncertainty) has 4 negative value(s)")
    ):
        fit(data, weights=StdDevUncertainty(np.where(bad, -0.1, 0.1)))
    with pytest.raises(
        InputTypeError,
        match=re.escape(
            "data.uncertainty is a UnknownUncertainty, which cannot be converted to standard "
            "deviations"
        ),
    ):
        fit(NDData(data, uncertainty=UnknownUncertainty(np.ones(data.shape))))


def test_infinite_nan_uncertainty_and_zero_inverse_variance_leave_samples_out():
    data, bad = spiked()
    sigma = np.full((31, 2, 3), 0.1)
    sigma[12:14, 0, 0] = np.inf
    sigma[14:16, 0, 0] = np.nan
    assert_truth(fit(NDData(data, uncertainty=StdDevUncertainty(readonly(sigma)))))
    ivar = np.where(bad, 0.0, 100.0)
    assert_truth(fit(NDData(data, uncertainty=InverseVariance(readonly(ivar)))))


def test_uncertainty_kinds_and_units_give_the_same_fit():
    rng = np.random.default_rng(11)
    data = make_cube() + rng.normal(0.0, 0.1, (31, 2, 3))
    sigma = np.full((31, 2, 3), 0.1)
    kw = dict(fitter_kwargs=None)
    ref = fit(NDData(data, unit="K", uncertainty=StdDevUncertainty(sigma)), **kw)
    assert (ref.status == Status.OK).all()
    same = [
        NDData(data, unit="K", uncertainty=VarianceUncertainty(sigma**2)),
        NDData(data, unit="K", uncertainty=InverseVariance(1 / sigma**2)),
        NDData(data, unit="K", uncertainty=StdDevUncertainty(1000 * sigma * u.mK)),
    ]
    for nd in same:
        result = fit(nd, **kw)
        for name in ref.param_names:
            np.testing.assert_allclose(result.parameters[name], ref.parameters[name], rtol=1e-9)
            np.testing.assert_allclose(result.errors[name], ref.errors[name], rtol=1e-9)
    with pytest.raises(
        InputError,
        match=re.escape(
            "weights (StdDevUncertainty) has unit km / s, which cannot be converted to K (the "
            "data unit K to the power 1)"
        ),
    ):
        fit(data * u.K, weights=StdDevUncertainty(sigma * u.km / u.s))


def test_explicit_weights_replace_the_nddata_uncertainty_masks_still_union():
    data, bad = spiked()
    # The uncertainty (zero everywhere: refused if it were used) is replaced.
    nd_mask = np.zeros((31, 2, 3), dtype=bool)
    nd_mask[:, 1, 1] = True
    nd = NDData(data, mask=nd_mask | bad, uncertainty=StdDevUncertainty(np.zeros((31, 2, 3))))
    result = fit(nd, weights=np.ones((31, 2, 3)))
    assert result.status[1, 1] == Status.NO_VALID_DATA
    assert_truth(result, result.status == Status.OK)
    assert (result.status == Status.OK).sum() == 5


def test_nddata_in_another_unit_than_data_unit_is_converted():
    rng = np.random.default_rng(5)
    kelvin = make_cube() + rng.normal(0.0, 0.1, (31, 2, 3))
    exact = dict(fitter=parfit.fitters.BatchedFitter(scale_covariance=False))
    ref = fit(kelvin, weights=np.full(kelvin.shape, 10.0), **exact)  # 1/sigma in 1/K
    # The same cube as an NDData in mK, with its uncertainty in mK, fitted in K.
    nd = NDData(
        readonly(kelvin * 1000),
        unit="mK",
        uncertainty=StdDevUncertainty(np.full(kelvin.shape, 100.0)),
    )
    result = fit(nd, data_unit="K", **exact)
    for name in ref.param_names:
        np.testing.assert_allclose(result.parameters[name], ref.parameters[name], rtol=1e-9)
        np.testing.assert_allclose(result.errors[name], ref.errors[name], rtol=1e-9)
    with pytest.raises(
        InputError,
        match=re.escape("data is an NDData in mK, which cannot be converted to data_unit=km / s"),
    ):
        fit(nd, data_unit="km/s")


def test_quantity_weights_are_converted_to_the_inverse_data_unit():
    rng = np.random.default_rng(3)
    data = (make_cube() + rng.normal(0.0, 0.1, (31, 2, 3))) * u.K
    ref = fit(
        data,
        weights=np.full((31, 2, 3), 10.0),
        fitter=parfit.fitters.BatchedFitter(scale_covariance=False),
    )
    result = fit(
        data,
        weights=np.full((31, 2, 3), 0.01) / u.mK,
        fitter=parfit.fitters.BatchedFitter(scale_covariance=False),
    )
    for name in ref.param_names:
        np.testing.assert_allclose(result.errors[name], ref.errors[name], rtol=1e-9)
    with pytest.raises(
        InputError,
        match=re.escape(
            "weights has unit 1 / s, which cannot be converted to 1 / K: weights are 1/sigma "
            "in the inverse unit of the data (K)"
        ),
    ):
        fit(data, weights=np.ones((31, 2, 3)) / u.s)


# --- units ----------------------------------------------------------------------------

F0 = 115.27 * u.GHz
VELOCITY = np.linspace(-50.0, 50.0, 61)  # km/s
LINE = dict(amplitude=3.0, mean=5.0, stddev=8.0)


def frequency_cube():
    """A line synthesised in velocity, sampled on a frequency axis (radio convention)."""
    freq = (VELOCITY * u.km / u.s).to(u.GHz, equivalencies=u.doppler_radio(F0))
    line = LINE["amplitude"] * np.exp(-0.5 * ((VELOCITY - LINE["mean"]) / LINE["stddev"]) ** 2)
    return freq, readonly(line[:, None] * np.ones((1, 3))) * u.K


def test_velocity_model_on_frequency_world_with_doppler_equivalency():
    freq, cube = frequency_cube()
    start = Gaussian1D(1.0 * u.K, 0.0 * u.km / u.s, 5.0 * u.km / u.s)
    result = parfit.parallel_fit(
        start, cube, world=(freq,), scheduler="synchronous", equivalencies=u.doppler_radio(F0)
    )
    assert (result.status == Status.OK).all()
    assert result.units == {"amplitude": u.K, "mean": u.km / u.s, "stddev": u.km / u.s}
    for name, truth in LINE.items():
        np.testing.assert_allclose(result.parameters[name], truth, rtol=1e-6)
    assert result.model.stddev.unit == u.km / u.s
    # Without the equivalency the refusal says what to do.
    with pytest.raises(
        InputError,
        match=re.escape(
            "world[0] is in GHz, which cannot be converted to km / s, the unit of the model's "
            "parameter 'mean'; give world[0] in a unit convertible to km / s, or pass "
            "equivalencies="
        ),
    ):
        parfit.parallel_fit(start, cube, world=(freq,), scheduler="synchronous")


def test_width_converts_as_a_difference_around_its_centre():
    # The centre is given in GHz (the world's unit), the width in km/s: the
    # width and its default bound (stddev > 0) convert as differences.
    freq, cube = frequency_cube()
    start = Gaussian1D(1.0 * u.K, 115.2685 * u.GHz, 5.0 * u.km / u.s)
    result = parfit.parallel_fit(
        start, cube, world=(freq,), scheduler="synchronous", equivalencies=u.doppler_radio(F0)
    )
    assert (result.status == Status.OK).all()
    assert result.units["mean"] == u.GHz and result.units["stddev"] == u.GHz
    mean_ghz = (LINE["mean"] * u.km / u.s).to_value(u.GHz, equivalencies=u.doppler_radio(F0))
    stddev_ghz = LINE["stddev"] / 299792.458 * F0.value  # radio: linear in velocity
    np.testing.assert_allclose(result.parameters["mean"], mean_ghz, rtol=1e-9)
    np.testing.assert_allclose(result.parameters["stddev"], stddev_ghz, rtol=1e-6)


def test_prepare_units_fits_data_in_the_models_amplitude_unit():
    from parfit.engine.inputs import normalise_cube, normalise_world
    from parfit.engine.units import prepare_units

    data = readonly(make_cube() * 1000)  # mK
    weights = readonly(np.full(data.shape, 0.01))  # 1/mK
    cube = normalise_cube(data * u.mK, weights=weights)
    world = normalise_world((X * u.km / u.s,), cube, (0,))
    start = Gaussian1D(1.0 * u.K, 0.0 * u.km / u.s, 1.0 * u.km / u.s)
    plan = prepare_units(start, "parfit", world, cube.data_unit, None, cube=cube)
    assert isinstance(plan.cube, CubeInput)
    assert plan.data_unit == u.K and plan.data_scale == pytest.approx(1e-3)
    np.testing.assert_allclose(plan.cube.data, make_cube(), rtol=1e-12)
    np.testing.assert_allclose(plan.cube.weights, 10.0, rtol=1e-12)
    assert plan.model.amplitude.unit == u.K and plan.model.amplitude.value == 1.0
    assert cube.data_unit == u.mK and data[15, 0, 0] == pytest.approx(1000 * make_cube()[15, 0, 0])
    # Without cube= the data stay as they are and the model follows them.
    legacy = prepare_units(start, "parfit", world, cube.data_unit, None)
    assert legacy.cube is None and legacy.model.amplitude.unit == u.mK


def test_millikelvin_data_with_a_kelvin_model_gives_maps_in_kelvin():
    start = Gaussian1D(1.0 * u.K, 0.0 * u.km / u.s, 1.0 * u.km / u.s)
    result = parfit.parallel_fit(
        start, make_cube() * 1000 * u.mK, world=(X * u.km / u.s,), scheduler="synchronous"
    )
    assert result.units["amplitude"] == u.K
    np.testing.assert_allclose(result.parameters["amplitude"], AMPLITUDE, rtol=1e-6)
    np.testing.assert_allclose(result.model.amplitude.value, AMPLITUDE, rtol=1e-6)


def test_lazy_infinite_weights_warn_the_fits_they_touch(tmp_path):
    weights = np.ones((31, 2, 3))
    weights[12:14, 0, 0] = np.inf
    result = fit(
        make_cube(),
        weights=da.from_array(weights, chunks=(31, 1, 1)),
        diagnostics="error+warn",
        diagnostics_path=tmp_path / "diag",
    )
    assert result.status[0, 0] == Status.OK
    folders = sorted(p.name for p in (tmp_path / "diag").iterdir() if p.is_dir())
    assert folders == ["0_0"]
    assert (tmp_path / "diag" / "0_0" / "warn.log").read_text() == (
        "2 sample(s) with an infinite weight (zero uncertainty) left out: a sample claimed to "
        "be exact cannot be weighed by a least-squares fit\n"
    )
