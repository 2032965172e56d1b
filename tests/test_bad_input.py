"""Bad arguments fail fast, before dispatch, with a message naming the argument."""

import pickle

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from astropy.modeling import fitting
from astropy.modeling import models as amodels

import parfit
from parfit.errors import InputError, InputTypeError, ParameterError, ParfitError
from parfit.models import Gaussian1D, Gaussian2D, Model, ParameterSpec

CUBE = np.zeros((20, 3, 4))


def never_dispatch(*args, **kwargs):
    raise AssertionError("work was dispatched before the bad argument was caught")


def call(model=None, data=CUBE, **kwargs):
    kwargs.setdefault("scheduler", never_dispatch)
    return parfit.parallel_fit(Gaussian1D() if model is None else model, data, **kwargs)


@pytest.mark.parametrize(
    "data, message",
    [
        ([[1.0, 2.0]], "data must be an array .* got list"),
        (None, "data must be an array .* got NoneType"),
        (
            np.zeros((5, 2), dtype=complex),
            "data has complex dtype complex128; expected real numbers",
        ),
        (np.array([["a", "b"]] * 5), "data has string dtype <U1; expected real numbers"),
        (np.zeros((5, 2), dtype=object), "data has object dtype"),
        (np.zeros((5, 2), dtype=bool), "data has boolean dtype"),
    ],
)
def test_bad_data_type(data, message):
    with pytest.raises(TypeError, match=message):
        call(data=data)


def test_missing_data_path():
    with pytest.raises(ValueError, match="data path 'no-such-cube.fits' does not exist"):
        call(data="no-such-cube.fits")


def test_scalar_and_empty_fitting_axis():
    with pytest.raises(ValueError, match="data is a scalar"):
        call(data=np.float64(3.0))
    with pytest.raises(ValueError, match="data has length 0 along fitting axis 0"):
        call(data=np.zeros((0, 3)))


@pytest.mark.parametrize(
    "axes, exc, message",
    [
        (
            3,
            ValueError,
            r"fitting_axes value 3 is out of range for 3-dimensional data "
            r"\(valid: -3 to 2\)",
        ),
        (-4, ValueError, "fitting_axes value -4 is out of range"),
        ((1, 1), ValueError, r"fitting_axes=\(1, 1\) names the same axis more than once"),
        ((1, -2), ValueError, "names the same axis more than once"),
        (1.0, TypeError, r"fitting_axes must hold ints or dimension names; got 1.0 \(float\)"),
        (
            None,
            TypeError,
            "fitting_axes must be an int, a dimension name or a tuple of them; got None",
        ),
        ((), ValueError, "fitting_axes is empty"),
        ("v", ValueError, "fitting_axes names the dimension 'v', but data has no dimension names"),
    ],
)
def test_bad_fitting_axes(axes, exc, message):
    with pytest.raises(exc, match=message):
        call(fitting_axes=axes)


def test_unknown_dimension_name():
    arr = xr.DataArray(CUBE, dims=("v", "y", "x"))
    with pytest.raises(
        ValueError,
        match=r"fitting_axes names 'freq', which is not a dimension "
        r"of data; its dimensions are \('v', 'y', 'x'\)",
    ):
        call(data=arr, fitting_axes="freq")


def test_model_dimensionality_must_match_fitting_axes():
    with pytest.raises(
        ValueError,
        match=r"model takes 1 input\(s\) \(1-D model\) but "
        r"fitting_axes=\(1, 2\) names 2 axis/axes",
    ):
        call(fitting_axes=(1, 2))
    with pytest.raises(ValueError, match=r"model takes 2 input\(s\)"):
        call(Gaussian2D(), fitting_axes=0)


@pytest.mark.parametrize(
    "world, exc, message",
    [
        (
            (np.arange(19.0),),
            ValueError,
            r"world\[0\] has length 19 but data has length 20 along "
            r"axis 0 \(fitting_axes\[0\]\)",
        ),
        (
            (np.arange(20.0), np.arange(20.0)),
            ValueError,
            r"world has 2 array\(s\) but there are 1 "
            r"fitting axes",
        ),
        (np.arange(20.0), TypeError, "world must be None, an astropy WCS or a tuple of arrays"),
        (
            (np.zeros((20, 2, 4)),),
            ValueError,
            r"world\[0\] has shape \(20, 2, 4\); world arrays "
            r"must be 1-D",
        ),
        ((np.r_[np.nan, np.arange(19.0)],), ValueError, r"world\[0\] has 1 non-finite value"),
        ((np.array(["a"] * 20),), TypeError, r"world\[0\] has string dtype"),
    ],
)
def test_bad_world(world, exc, message):
    with pytest.raises(exc, match=message):
        call(world=world)


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        (
            dict(weights=np.ones((20, 3))),
            ValueError,
            r"weights has shape \(20, 3\), which does not "
            r"broadcast to the data shape \(20, 3, 4\)",
        ),
        (dict(weights=-np.ones(CUBE.shape)), ValueError, r"weights has 240 negative value\(s\)"),
        (dict(weights=np.ones(CUBE.shape, dtype=complex)), TypeError, "weights has complex dtype"),
        (dict(mask=np.zeros((3, 4, 20), dtype=bool)), ValueError, r"mask has shape \(3, 4, 20\)"),
        (dict(mask=np.zeros(CUBE.shape)), TypeError, "mask must have a boolean dtype"),
    ],
)
def test_bad_weights_and_mask(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        call(**kwargs)


def test_weights_broadcast_from_a_spectrum_is_fine():
    data = np.exp(-0.5 * (np.arange(20.0) - 9) ** 2)[:, None, None] * np.ones((1, 3, 4))
    res = parfit.parallel_fit(
        Gaussian1D(1, 9, 1), data, weights=np.ones((20, 1, 1)), scheduler="synchronous"
    )
    assert res.success.all()


@pytest.mark.parametrize(
    "value, exc, message",
    [
        (0, ValueError, "chunk_n_max must be a positive integer .* got 0"),
        (-5, ValueError, "chunk_n_max must be a positive integer .* got -5"),
        (2.5, TypeError, r"chunk_n_max must be a positive integer .* got 2.5 \(float\)"),
        ("100", TypeError, r"got '100' \(str\)"),
        (True, TypeError, r"got True \(bool\)"),
    ],
)
def test_bad_chunk_n_max(value, exc, message):
    with pytest.raises(exc, match=message):
        call(chunk_n_max=value)


def test_bad_scheduler():
    with pytest.raises(
        ValueError,
        match="scheduler='gpu' is not known; expected None, one of 'default', 'synchronous'",
    ):
        call(scheduler="gpu")
    with pytest.raises(
        TypeError, match="scheduler must be None, a scheduler name or a distributed.Client; got int"
    ):
        call(scheduler=4)


@pytest.mark.parametrize(
    "fitter, exc, message",
    [
        (
            "levmar",
            ValueError,
            "fitter='levmar' is not a known fitter name; expected one of 'batched', "
            "'trf', 'dogbox', 'lm', 'minuit'",
        ),
        (42, TypeError, "fitter must be None, a fitter name .* got int"),
        (
            fitting.TRFLSQFitter,
            ValueError,
            r"fitter must be an astropy fitter instance, not the "
            r"class TRFLSQFitter; use fitter=TRFLSQFitter\(\)",
        ),
        (
            fitting.TRFLSQFitter(),
            TypeError,
            "fitter is an astropy fitter .* which needs an astropy "
            "model, but model is a parfit Gaussian1D",
        ),
    ],
)
def test_bad_fitter(fitter, exc, message):
    with pytest.raises(exc, match=message):
        call(fitter=fitter)


def test_bad_fitter_kwargs():
    with pytest.raises(
        ValueError,
        match="fitter_kwargs has unknown key.* 'maxiter' for fitter "
        "'batched-trf'; valid keys are 'ftol', 'xtol', 'gtol', "
        "'max_nfev', 'factor'",
    ):
        call(fitter_kwargs={"maxiter": 10})
    with pytest.raises(
        ValueError, match="fitter_kwargs has unknown key.* 'maxiter' for fitter 'scipy-trf'"
    ):
        call(fitter="trf", fitter_kwargs={"maxiter": 10})
    with pytest.raises(
        ValueError,
        match=r"fitter_kwargs: ftol must be a number in \[0, 1\); "
        "got 2.0",
    ):
        call(fitter_kwargs={"ftol": 2.0})
    with pytest.raises(TypeError, match="fitter_kwargs must be a dict or None; got list"):
        call(fitter_kwargs=["max_nfev"])
    with pytest.raises(
        ValueError,
        match="fitter_kwargs has unknown key.* 'bogus' for fitter 'astropy-TRFLSQFitter'",
    ):
        call(amodels.Gaussian1D(), fitter=fitting.TRFLSQFitter(), fitter_kwargs={"bogus": 1})


def test_bad_model():
    with pytest.raises(
        TypeError, match="model must be a parfit model .* or an astropy.modeling model; got dict"
    ):
        call(model={"amplitude": 1.0})
    with pytest.raises(ValueError, match="astropy model set of 2 models"):
        call(amodels.Gaussian1D([1, 2], [0, 0], [1, 1], n_models=2), fitter=fitting.TRFLSQFitter())


def test_starting_values_and_bounds():
    model = Gaussian1D(mean=5.0)
    model.mean.update(bounds=(0.0, 10.0))
    model.parameters["mean"]._value = 20.0  # bypass the setter, as a stale object might
    with pytest.raises(ParameterError, match="starting value 20.0 is outside its bounds"):
        call(model)
    with pytest.raises(ParameterError, match="lower bound 5.0 must be below upper bound 1.0"):
        Gaussian1D(bounds={"stddev": (5.0, 1.0)})
    start = Gaussian1D(mean=np.zeros((2, 2)))
    with pytest.raises(
        ValueError,
        match=r"parameter 'mean' has a per-pixel starting value of "
        r"shape \(2, 2\), which does not broadcast to the shape "
        r"of the non-fitting axes \(3, 4\)",
    ):
        call(start)


class WrongShape(Model):
    n_inputs = 1
    param_specs = (ParameterSpec("a", 1.0),)

    def _evaluate(self, x, a):
        return a * np.ones((1, 3))


class NotFinite(Model):
    n_inputs = 1
    param_specs = (ParameterSpec("a", 1.0),)

    def _evaluate(self, x, a):
        return np.log(a - 2.0) * x


def test_model_checked_once_before_dispatch():
    with pytest.raises(
        ValueError,
        match=r"model.evaluate raised ModelError: WrongShape returned "
        r"an array of shape \(1, 3\); expected \(1, 20\) "
        r"\(n_fits, n_samples\) at the starting values on the "
        r"given world coordinates, so every fit would fail",
    ):
        call(WrongShape())
    with np.errstate(invalid="ignore"):
        with pytest.raises(ValueError, match="model is not finite at its starting values"):
            call(NotFinite())


class SharedHandle:
    """Like an open connection: shared by copies, impossible to pickle."""

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        raise TypeError("cannot pickle SharedHandle")


class Unpicklable(Model):
    n_inputs = 1
    param_specs = (ParameterSpec("a", 1.0),)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.handle = SharedHandle()

    def _evaluate(self, x, a):
        return a * x


def test_unpicklable_model_with_process_scheduler():
    with pytest.raises(
        ValueError,
        match="model cannot be pickled .* but the scheduler runs fits "
        "in other processes; make it picklable or use "
        "scheduler='threads'",
    ):
        call(Unpicklable(), scheduler="processes")
    # Threads need no pickling.
    res = parfit.parallel_fit(
        Unpicklable(), np.ones((20, 2)) * np.arange(20.0)[:, None], scheduler="threads"
    )
    assert res.success.all()


def test_preserve_native_chunks_needs_whole_fitting_axes():
    with pytest.raises(
        ValueError,
        match=r"preserve_native_chunks=True needs data unchunked along "
        r"the fitting axes, but axis 0 has chunks \(10, 10\)",
    ):
        call(data=da.zeros((20, 3, 4), chunks=(10, 3, 4)), preserve_native_chunks=True)


def test_errors_are_picklable_and_builtin_subclasses():
    for cls, base in [
        (InputError, ValueError),
        (InputTypeError, TypeError),
        (ParameterError, ValueError),
    ]:
        err = cls("message")
        assert isinstance(err, base) and isinstance(err, ParfitError)
        clone = pickle.loads(pickle.dumps(err))
        assert type(clone) is cls and str(clone) == "message"
