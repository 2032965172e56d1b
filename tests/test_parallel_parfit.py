"""parallel_fit with parfit models and parfit fitters, against known truth."""

import numpy as np
import pytest
from astropy import units as u
from astropy.modeling import fitting
from astropy.modeling import models as amodels

import parfit
from parfit import Status
from parfit.datasets import gaussian2d_cube, gaussian_cube
from parfit.models import Const1D, Gaussian1D, Model, ParameterSpec, PowerLaw1D


@pytest.fixture(scope="module")
def cube():
    return gaussian_cube((50, 12, 10), noise=0.1, seed=1)


def fit(cube, model=None, **kwargs):
    kwargs.setdefault("scheduler", "synchronous")
    return parfit.parallel_fit(
        model if model is not None else cube.model, cube.data, world=cube.world, **kwargs
    )


def test_recovers_truth_and_errors_are_calibrated(cube):
    res = fit(cube)
    assert res.success.all()
    for name in ("amplitude", "mean", "stddev"):
        pull = (res.parameters[name] - cube.truth[name]) / res.errors[name]
        # Errors from the covariance describe the scatter about the truth.
        assert np.all(np.isfinite(pull))
        assert 0.7 < np.std(pull) < 1.3, (name, np.std(pull))
        assert abs(np.mean(pull)) < 0.35, name
    assert np.all(res.nfev > 0)
    assert type(res.model) is Gaussian1D
    assert res.model.mean.value.shape == (12, 10)


def test_statistic_is_chi_square(cube):
    res = fit(cube, weights=np.full(cube.data.shape, 1 / cube.noise))
    j, i = 3, 4
    row = np.array([[res.parameters[n][j, i] for n in res.param_names]])
    model = Gaussian1D().evaluate(cube.world[0], row)[0]
    chi2 = np.sum(((cube.data[:, j, i] - model) / cube.noise) ** 2)
    assert res.statistic[j, i] == pytest.approx(chi2, rel=1e-10)
    # With weights = 1/sigma the reduced chi-square is close to 1.
    assert np.median(res.statistic) / (50 - 3) == pytest.approx(1.0, abs=0.25)


@pytest.mark.parametrize("method", ["dogbox", "lm"])
def test_methods_agree(cube, method):
    # Started near the truth, every method must reach the same minimum.
    model = Gaussian1D(**{k: v * 1.05 for k, v in cube.truth.items()})
    ref = fit(cube, model, fitter="trf")
    res = fit(cube, model, fitter=method)
    for name in res.param_names:
        np.testing.assert_allclose(
            res.parameters[name],
            ref.parameters[name],
            rtol=1e-5,
            atol=1e-3 * np.median(ref.errors[name]),
        )


def test_lm_clips_parameters_into_bounds(cube):
    start = Gaussian1D(amplitude=1.2, mean=cube.truth["mean"], stddev=cube.truth["stddev"])
    start.amplitude.bounds = (None, 1.5)
    res = fit(cube, start, fitter="lm")
    assert res.success.all()
    assert np.nanmax(res.parameters["amplitude"]) <= 1.5
    below = cube.truth["amplitude"] < 1.3
    np.testing.assert_allclose(
        res.parameters["amplitude"][below], cube.truth["amplitude"][below], atol=0.15
    )


def test_tied_fixed_and_bounds():
    rng = np.random.default_rng(3)
    x = np.linspace(-20, 20, 120)
    truth = Gaussian1D(2.0, -4.0, 1.5) + Gaussian1D(1.0, 8.0, 1.5) + Const1D(0.25)
    data = truth(x)[:, None] + rng.normal(0, 0.01, (120, 6))
    start = Gaussian1D(1.5, -3.0, 1.0) + Gaussian1D(0.8, 9.0, 1.0) + Const1D(0.25)
    start.mean_1.tied = "mean_0 + 12"
    start.stddev_1.tied = "stddev_0"
    start.amplitude_2.fixed = True
    start.amplitude_1.bounds = (0.0, 0.9)  # the true value 1.0 is outside
    res = parfit.parallel_fit(start, data, world=(x,), scheduler="synchronous")
    assert res.success.all()
    p = res.parameters
    np.testing.assert_allclose(p["mean_1"], p["mean_0"] + 12, rtol=1e-12)
    np.testing.assert_array_equal(p["stddev_1"], p["stddev_0"])
    np.testing.assert_array_equal(p["amplitude_2"], 0.25)
    assert np.all(p["amplitude_1"] <= 0.9) and np.allclose(p["amplitude_1"], 0.9, atol=1e-6)
    np.testing.assert_allclose(p["mean_0"], -4.0, atol=0.05)
    # Tied parameters get propagated errors, fixed ones none.
    np.testing.assert_allclose(res.errors["mean_1"], res.errors["mean_0"], rtol=1e-8)
    assert np.all(np.isnan(res.errors["amplitude_2"]))


def test_per_pixel_starting_values_and_bounds(cube):
    start = cube.model.copy()
    start.mean = cube.truth["mean"] + 1.0
    lower = np.full((12, 10), -30.0)
    lower[0, 0] = 20.0  # start -5 outside [20, 30]
    start.mean.bounds = (lower, 30.0)
    res = fit(cube, start)
    assert res.status[0, 0] == Status.BAD_START
    assert np.isnan(res.parameters["mean"][0, 0])
    assert int(res.success.sum()) == 119
    ok = res.success
    pull = (res.parameters["mean"][ok] - cube.truth["mean"][ok]) / res.errors["mean"][ok]
    assert np.all(np.abs(pull) < 5)


def test_not_converged_is_reported(cube):
    res = fit(cube, fitter_kwargs={"max_nfev": 2})
    assert np.all(res.status == Status.NOT_CONVERGED)
    assert np.all(np.isnan(res.parameters["amplitude"]))


def test_nonfinite_model_at_a_pixel_start():
    x = np.linspace(1, 10, 30)
    data = (2.0 * x**-1.5)[:, None] * np.ones((30, 4))
    x0 = np.array([1.0, 1.0, 1.0, np.inf])
    res = parfit.parallel_fit(
        PowerLaw1D(1.0, x0, 1.0, fixed={"x_0": True}), data, world=(x,), scheduler="synchronous"
    )
    assert list(res.status) == [Status.OK] * 3 + [Status.BAD_START]
    np.testing.assert_allclose(res.parameters["alpha"][:3], 1.5, rtol=1e-6)
    # With x_0 free, amplitude and x_0 are one degree of freedom: the covariance is
    # singular, and such a fit is not called a success.
    res = parfit.parallel_fit(PowerLaw1D(1.0, x0, 1.0), data, world=(x,), scheduler="synchronous")
    assert list(res.status) == [Status.DEGENERATE] * 3 + [Status.BAD_START]
    assert np.all(res.flags[:3] & parfit.Flag.SINGULAR)


class Exploding(Model):
    """A user model with no analytic Jacobian that raises on one pixel."""

    n_inputs = 1
    param_specs = (
        ParameterSpec("height", 1.0),
        ParameterSpec("centre", 0.0),
        ParameterSpec("width", 1.0, bounds=(0.0, None)),
    )

    def _evaluate(self, x, height, centre, width):
        if np.any(height > 1e6):
            raise SystemExit("boom")
        return height / (1 + ((x - centre) / width) ** 2)


def test_user_model_with_finite_difference_jacobian_and_a_failing_pixel():
    x = np.linspace(-5, 5, 40)
    height = np.array([[1.0, 2.0, 3.0]])
    data = height[None] / (1 + ((x[:, None, None] - 0.5) / 1.2) ** 2)
    start_height = np.array([[1.5, 1.5, 2e6]])
    res = parfit.parallel_fit(
        Exploding(height=start_height, centre=0.0, width=1.0), data, world=(x,), scheduler="threads"
    )
    assert list(res.status[0]) == [Status.OK, Status.OK, Status.FIT_ERROR]
    np.testing.assert_allclose(res.parameters["height"][0, :2], [1.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(res.parameters["width"][0, :2], 1.2, rtol=1e-6)


def test_2d_fits_of_image_planes():
    stack = gaussian2d_cube((3, 24, 20), seed=2)
    res = parfit.parallel_fit(stack.model, stack.data, fitting_axes=(1, 2), scheduler="synchronous")
    assert res.success.all()
    for name in res.param_names:
        pull = (res.parameters[name] - stack.truth[name]) / res.errors[name]
        assert np.all(np.abs(pull) < 4.5), (name, pull)
        np.testing.assert_allclose(res.parameters[name], stack.truth[name], rtol=0.05)


def test_astropy_model_on_parfit_fitter_comes_back_as_astropy(cube):
    start = amodels.Gaussian1D(2.0, 0.0, 5.0)
    res = fit(cube, start)
    assert isinstance(res.model, amodels.Gaussian1D)
    assert res.model.mean.shape == (12, 10)
    ref = fit(cube, start, fitter=fitting.TRFLSQFitter())
    # parfit's solver reaches at least astropy's minimum.
    assert np.all(res.statistic <= ref.statistic * (1 + 1e-6))
    # Where both reach the same minimum, they agree; on a few noisy pixels the
    # batched solver finds a deeper one.
    same = np.isclose(res.statistic, ref.statistic, rtol=1e-6)
    assert same.mean() > 0.9
    np.testing.assert_allclose(
        res.parameters["mean"][same], ref.parameters["mean"][same], atol=1e-3
    )


def test_astropy_ties_are_translated():
    x = np.linspace(-10, 10, 60)
    data = (amodels.Gaussian1D(2, -2, 1) + amodels.Gaussian1D(1, 3, 1))(x)[:, None]
    start = amodels.Gaussian1D(1.5, -1.5, 1.2) + amodels.Gaussian1D(0.8, 3.5, 1.2)
    start.mean_1.tied = lambda m: m.mean_0 + 5
    start.stddev_1.tied = lambda m: m.stddev_0
    res = parfit.parallel_fit(start, data, world=(x,), scheduler="synchronous")
    np.testing.assert_allclose(res.parameters["mean_0"], -2, rtol=1e-6)
    np.testing.assert_allclose(res.parameters["mean_1"], 3, rtol=1e-6)


def test_untranslatable_astropy_tie_and_model_are_refused():
    start = amodels.Gaussian1D() + amodels.Gaussian1D()
    start.mean_1.tied = lambda m: max(m.mean_0, 3.0)
    with pytest.raises(
        TypeError, match="the tie of astropy parameter 'mean_1' cannot be translated"
    ):
        parfit.parallel_fit(start, np.zeros((10, 2)))
    with pytest.raises(TypeError, match="astropy model Sersic1D has no parfit equivalent"):
        parfit.parallel_fit(amodels.Sersic1D(), np.zeros((10, 2)))


def test_units_on_parfit_models(cube):
    # World in m/s (as a FITS WCS gives it), the model written in km/s and mK:
    # the world is converted to the model's unit and the data (K) to the
    # model's amplitude unit, so the maps come back in the model's units.
    start = Gaussian1D(amplitude=2000 * u.mK, mean=0 * u.km / u.s, stddev=5000 * u.m / u.s)
    start.stddev.bounds = (0, None)
    res = parfit.parallel_fit(
        start, cube.data * u.K, world=(cube.world[0] * 1000 * u.m / u.s,), scheduler="synchronous"
    )
    assert res.units == {"amplitude": u.mK, "mean": u.km / u.s, "stddev": u.km / u.s}
    kms = fit(cube)
    scale = {"amplitude": 1000.0}
    for name in res.param_names:
        # The same fit, on data 1000 times larger: equal to the solver's tolerance.
        np.testing.assert_allclose(
            res.parameters[name], scale.get(name, 1.0) * kms.parameters[name], rtol=1e-4
        )
    assert res.model.mean.unit == u.km / u.s
    ds = res.to_xarray()
    assert ds["mean"].attrs["units"] == "km / s"


def test_dask_chunking_does_not_change_results(cube):
    import dask.array as da

    ref = fit(cube)
    for chunks in [(50, 5, 3), (50, 12, 10), (50, 1, 10)]:
        res = parfit.parallel_fit(
            cube.model,
            da.from_array(cube.data, chunks=chunks),
            world=cube.world,
            scheduler="threads",
            chunk_n_max=17,
        )
        for name in res.param_names:
            np.testing.assert_array_equal(res.parameters[name], ref.parameters[name])


def test_processes_scheduler_with_parfit_model(cube):
    ref = fit(cube)
    res = fit(cube, scheduler="processes", chunk_n_max=40)
    for name in res.param_names:
        np.testing.assert_array_equal(res.parameters[name], ref.parameters[name])
