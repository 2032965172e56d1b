"""The default fitter end to end: guessed starts, astropy models and user models on the fast path."""

import warnings

import numpy as np
import pytest
from astropy.modeling import fitting
from astropy.modeling import models as amodels

import parfit
from parfit import Status
from parfit.datasets import gaussian2d_cube, gaussian_cube, multi_gaussian_cube
from parfit.diagnostics import read_manifest
from parfit.models import Gaussian1D, Model, ParameterSpec, model_from_function


def never_dispatch(*args, **kwargs):
    raise AssertionError("work was dispatched before the bad input was refused")


@pytest.fixture(scope="module")
def cube():
    return gaussian_cube((53, 20, 20), noise=0.1, seed=11)


def test_guess_recovers_lines_a_shared_start_misses(cube):
    # Start far from every line: narrow and at the edge of the band.
    far = Gaussian1D(1.0, 45.0, 1.0, bounds={"stddev": (0, None)})
    shared = parfit.parallel_fit(far, cube.data, world=cube.world, scheduler="threads")
    guessed = parfit.parallel_fit(
        far, cube.data, world=cube.world, scheduler="threads", initial="guess"
    )
    assert guessed.success.all()
    pull = (guessed.parameters["mean"] - cube.truth["mean"]) / guessed.errors["mean"]
    assert np.all(np.abs(pull) < 5)
    shared_ok = np.abs(shared.parameters["mean"] - cube.truth["mean"]) < 1.0
    # The shared start really is bad: most fits that find their line do so only
    # because the first solution was weak and the retry from the guess was kept.
    first_try = (shared.flags & parfit.Flag.RETRIED) == 0
    assert (shared_ok & first_try).mean() < 0.5 and (shared_ok & ~first_try).any()
    assert guessed.nfev.mean() < 15


def test_guess_keeps_fixed_values_and_bounds(cube):
    model = Gaussian1D(1.0, 0.0, 5.0, fixed={"stddev": True}, bounds={"amplitude": (0, 1.5)})
    res = parfit.parallel_fit(
        model, cube.data, world=cube.world, scheduler="threads", initial="guess"
    )
    np.testing.assert_array_equal(res.parameters["stddev"], 5.0)
    assert np.all(res.parameters["amplitude"] <= 1.5)
    assert res.success.all()


def test_a_failing_guess_never_stops_the_run(cube, tmp_path):
    class Fragile(Gaussian1D):
        def _guess(self, xs, y, valid, start):
            raise RuntimeError("cannot estimate")

    res = parfit.parallel_fit(
        Fragile(2.0, 0.0, 5.0),
        cube.data,
        world=cube.world,
        scheduler="synchronous",
        initial="guess",
        diagnostics="error+warn",
        diagnostics_path=tmp_path / "diag",
    )
    reference = parfit.parallel_fit(
        Gaussian1D(2.0, 0.0, 5.0), cube.data, world=cube.world, scheduler="synchronous"
    )
    # The fits ran from the model's values (a subclass runs on the numpy engine), and
    # without a guess there is no second start: where the reference needed one, the
    # fragile model keeps its first solution.
    first_try = (reference.flags & parfit.Flag.RETRIED) == 0
    assert res.success[first_try].all() and not (res.flags & parfit.Flag.RETRIED).any()
    np.testing.assert_allclose(
        res.parameters["mean"][first_try], reference.parameters["mean"][first_try], rtol=1e-9
    )
    rows = read_manifest(tmp_path / "diag")
    assert len(rows) == cube.data[0].size
    warn = (tmp_path / "diag" / rows[0]["folder"] / "warn.log").read_text()
    assert (
        "initial='guess' failed (RuntimeError: cannot estimate); the fit started from the "
        "model's values"
    ) in warn


def test_guess_with_multi_component_cube():
    cube = multi_gaussian_cube((128, 6, 6), n_components=3, seed=2)
    res = parfit.parallel_fit(
        cube.model, cube.data, world=cube.world, scheduler="threads", initial="guess"
    )
    assert res.success.mean() > 0.9


@pytest.mark.parametrize(
    "initial, exc, message",
    [
        ("gues", ValueError, "initial must be None, 'model', 'guess' or 'mean'; got 'gues'"),
        (3, ValueError, "initial must be None, 'model', 'guess' or 'mean'; got 3"),
    ],
)
def test_bad_initial(cube, initial, exc, message):
    with pytest.raises(exc, match=message):
        parfit.parallel_fit(
            Gaussian1D(), cube.data, world=cube.world, initial=initial, scheduler=never_dispatch
        )


def test_guess_refused_before_dispatch_for_models_that_cannot(cube):
    with pytest.raises(
        ValueError,
        match=r"initial='guess': CompoundModel cannot guess starting "
        r"values; .* this one combines models with '\*'",
    ):
        parfit.parallel_fit(
            Gaussian1D() * Gaussian1D(),
            cube.data,
            world=cube.world,
            initial="guess",
            scheduler=never_dispatch,
        )
    with pytest.raises(
        ValueError,
        match="initial='guess' needs a parfit fitter: astropy fitters "
        "fit the astropy model from its own starting values",
    ):
        parfit.parallel_fit(
            amodels.Gaussian1D(),
            cube.data,
            world=cube.world,
            fitter=fitting.TRFLSQFitter(),
            initial="guess",
            scheduler=never_dispatch,
        )


# --- astropy models on the fast path ---------------------------------------------------

X = np.linspace(-10, 10, 80)


def _spectra(true_model, n=12, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    clean = true_model(X)
    return clean[:, None] * rng.uniform(0.8, 1.2, n) + rng.normal(0, noise, (X.size, n))


ASTROPY_CASES = {
    "Gaussian1D+Const1D": (
        amodels.Gaussian1D(2, 1, 1.5) + amodels.Const1D(0.3),
        amodels.Gaussian1D(1.5, 0.5, 2) + amodels.Const1D(0),
    ),
    "Lorentz1D+Linear1D": (
        amodels.Lorentz1D(2, -1, 2) + amodels.Linear1D(0.02, 0.1),
        amodels.Lorentz1D(1.5, 0, 3) + amodels.Linear1D(0, 0),
    ),
    "Voigt1D": (amodels.Voigt1D(0.5, 2, 1.5, 1.2), amodels.Voigt1D(0, 1.5, 1, 1)),
    "Polynomial1D": (amodels.Polynomial1D(2, c0=1, c1=0.2, c2=-0.03), amodels.Polynomial1D(2)),
    "two Gaussians, tied": (
        amodels.Gaussian1D(2, -3, 1) + amodels.Gaussian1D(1, 3, 1),
        amodels.Gaussian1D(1.5, -2.5, 1.3) + amodels.Gaussian1D(1, 3, 1.3),
    ),
}


@pytest.mark.parametrize("case", list(ASTROPY_CASES))
def test_astropy_models_on_the_batched_solver(case):
    truth, start = ASTROPY_CASES[case]
    start = start.copy()
    if case == "two Gaussians, tied":
        start.mean_1.tied = lambda m: m.mean_0 + 6
        start.stddev_1.tied = lambda m: m.stddev_0
    if case == "Gaussian1D+Const1D":
        start.stddev_0 = 1.2
        start.stddev_0.bounds = (0.1, 1.4)  # below the true width: the fits end on it
        start.amplitude_1.fixed = True
    data = _spectra(truth)
    fast = parfit.parallel_fit(start, data, world=(X,), scheduler="synchronous")
    assert "batched" in fast.meta["fitter"]
    assert isinstance(fast.model, type(start))
    assert fast.success.all()
    # At least as deep a minimum as astropy's own fitter reaches ...
    astropy_fit = parfit.parallel_fit(
        start,
        data,
        world=(X,),
        scheduler="synchronous",
        fitter=fitting.TRFLSQFitter(),
        fitter_kwargs={"acc": 1e-12, "maxiter": 1000},
    )
    assert np.all(fast.statistic <= astropy_fit.statistic * (1 + 1e-6))
    # ... and the same minimum as scipy's per-fit solver with tight tolerances.  (With
    # tied parameters astropy's fitters stop up to 0.5 % above the minimum in
    # chi-square, so the parameters are compared with scipy's.)
    reference = parfit.parallel_fit(
        start,
        data,
        world=(X,),
        scheduler="synchronous",
        fitter="trf",
        fitter_kwargs={"ftol": 1e-12, "xtol": 1e-12, "gtol": 1e-12},
    )
    for name in fast.param_names:
        np.testing.assert_allclose(
            fast.parameters[name], reference.parameters[name], rtol=1e-4, atol=1e-4, err_msg=name
        )
    if case == "Gaussian1D+Const1D":
        # On the bound, to within rounding (TRF stays strictly inside), and flagged.
        np.testing.assert_array_equal(fast.parameters["amplitude_1"], 0.0)
        np.testing.assert_allclose(fast.parameters["stddev_0"], 1.4, rtol=1e-12)
        assert np.all(fast.flags & parfit.Flag.AT_BOUND)


def test_astropy_gaussian2d_on_the_batched_solver():
    stack = gaussian2d_cube((3, 24, 20), seed=2)
    start = amodels.Gaussian2D(
        **{name: float(getattr(stack.model, name).value) for name in stack.model.param_names}
    )
    fast = parfit.parallel_fit(start, stack.data, fitting_axes=(1, 2), scheduler="synchronous")
    assert isinstance(fast.model, amodels.Gaussian2D)
    assert fast.success.all()
    for name in ("x_mean", "y_mean", "x_stddev", "y_stddev"):
        pull = (fast.parameters[name] - stack.truth[name]) / fast.errors[name]
        assert np.all(np.abs(pull) < 4.5), (name, pull)


# --- user models -----------------------------------------------------------------------


def test_plain_function_model_with_finite_differences():
    @model_from_function
    def damped(x, amplitude=1.0, tau=2.0):
        return amplitude * np.exp(-x / tau)

    x = np.linspace(0, 10, 40)
    rng = np.random.default_rng(3)
    amp = rng.uniform(1, 3, (3, 4))
    tau = rng.uniform(1, 4, (3, 4))
    data = amp[None] * np.exp(-x[:, None, None] / tau[None])
    res = parfit.parallel_fit(damped(1.5, 2.5), data, world=(x,), scheduler="synchronous")
    assert res.success.all()
    np.testing.assert_allclose(res.parameters["amplitude"], amp, rtol=1e-6)
    np.testing.assert_allclose(res.parameters["tau"], tau, rtol=1e-6)


def test_user_model_warning_lands_on_its_pixel_only(tmp_path):
    class Noisy(Model):
        param_specs = (ParameterSpec("a", 1.0), ParameterSpec("b", 0.0))

        def _evaluate(self, x, a, b):
            if np.any(np.abs(a) > 50):
                warnings.warn("amplitude above 50", UserWarning)
            return a * x + b

    x = np.linspace(0, 1, 20)
    slopes = np.array([1.0, 2.0, 100.0, 3.0])
    data = slopes[None, :] * x[:, None] + 0.5
    res = parfit.parallel_fit(
        Noisy(),
        data,
        world=(x,),
        scheduler="synchronous",
        diagnostics="error+warn",
        diagnostics_path=tmp_path / "diag",
    )
    assert res.success.all()
    np.testing.assert_allclose(res.parameters["a"], slopes, rtol=1e-8)
    rows = read_manifest(tmp_path / "diag")
    assert [(row["folder"], row["n_warnings"]) for row in rows] == [("2", rows[0]["n_warnings"])]
    assert int(rows[0]["n_warnings"]) >= 1
    assert "amplitude above 50" in (tmp_path / "diag" / "2" / "warn.log").read_text()


def test_batched_and_scipy_agree_on_a_cube(cube):
    fast = parfit.parallel_fit(cube.model, cube.data, world=cube.world, scheduler="threads")
    slow = parfit.parallel_fit(
        cube.model,
        cube.data,
        world=cube.world,
        scheduler="threads",
        fitter="trf",
        fitter_kwargs={"ftol": 1e-12, "xtol": 1e-12, "gtol": 1e-12},
    )
    # scipy's TRF from the shared start collapses on a few noisy pixels (DEGENERATE,
    # with the chi-square it reached); the batched solver takes the same steps and
    # then retries those from the guess, which finds the line.
    assert fast.success.all()
    assert np.all(slow.success | (slow.status == Status.DEGENERATE))
    assert np.all(fast.statistic <= slow.statistic * (1 + 1e-6))
    # From the shared start a few noisy pixels end in different minima, and
    # the batched solver's are the deeper ones (checked above); elsewhere
    # both reach the same minimum.
    same = np.isclose(fast.statistic, slow.statistic, rtol=1e-6)
    assert same.mean() > 0.9
    for name in fast.param_names:
        # The same minimum: equal parameters, or, along the flat valley of a pixel
        # whose line is barely there, equal to a small fraction of their error.
        a, b, err = (
            r[same] for r in (fast.parameters[name], slow.parameters[name], fast.errors[name])
        )
        assert np.all(np.abs(a - b) <= 1e-4 + 1e-4 * np.abs(b) + 0.05 * err), name
        assert np.mean(np.isclose(a, b, rtol=1e-4, atol=1e-4)) > 0.98
        assert (
            np.mean(np.isclose(fast.errors[name][same], slow.errors[name][same], rtol=1e-3)) > 0.98
        )
    assert np.all(fast.status == Status.OK)


def test_a_plain_function_is_a_model():
    def decay(x, amplitude=1.0, tau=2.0):
        return amplitude * np.exp(-x / tau)

    x = np.linspace(0, 10, 40)
    amp = np.array([[1.0, 2.0], [3.0, 4.0]])
    data = amp[None] * np.exp(-x[:, None, None] / 2.5)
    res = parfit.parallel_fit(decay, data, world=(x,), scheduler="synchronous")
    assert res.param_names == ("amplitude", "tau")
    np.testing.assert_allclose(res.parameters["amplitude"], amp, rtol=1e-8)
    np.testing.assert_allclose(res.parameters["tau"], 2.5, rtol=1e-8)
    assert type(res.model).__name__ == "decay"


def test_model_class_and_bad_function_refused_before_dispatch(cube):
    with pytest.raises(
        TypeError,
        match=r"model is the class Gaussian1D; give an instance "
        r"holding the starting values, e.g. "
        r"model=Gaussian1D\(\)",
    ):
        parfit.parallel_fit(Gaussian1D, cube.data, world=cube.world, scheduler=never_dispatch)
    with pytest.raises(
        ValueError,
        match=r"function .*<lambda> takes \*a; a model function needs "
        r"a fixed list of named parameters",
    ):
        parfit.parallel_fit(lambda x, *a: x, cube.data, world=cube.world, scheduler=never_dispatch)
