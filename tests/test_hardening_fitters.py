"""Fitter options and starting values are checked before dispatch (issue 11, item 8).

Every refusal is made through ``parallel_fit`` with a scheduler that fails the
test if anything is dispatched, and is asserted by its exact message.
"""

import re

import numpy as np
import pytest
from astropy.modeling import fitting
from astropy.modeling import models as amodels

import parfit
from parfit.errors import InputError, InputTypeError, ParameterError
from parfit.fitters import AstropyFitter, BatchedFitter, Fitter, ScipyFitter
from parfit.models import Gaussian1D
from parfit.status import Status

X = np.linspace(-5.0, 5.0, 40)
TRUTH = (2.0, 0.5, 1.2)


def never_dispatch(*args, **kwargs):
    raise AssertionError("work was dispatched before the bad argument was caught")


def cube(n=(2, 2)):
    """A cube of noiseless Gaussians (fitting axis 0) with a known answer."""
    spectrum = amodels.Gaussian1D(*TRUTH)(X)
    return np.broadcast_to(spectrum[:, None, None], (X.size,) + n).copy()


def refused(exc, message, model=None, **kwargs):
    """parallel_fit(**kwargs) raises exc with exactly ``message``, nothing dispatched."""
    kwargs.setdefault("scheduler", never_dispatch)
    model = Gaussian1D(1.0, 0.0, 1.0) if model is None else model
    with pytest.raises(exc, match=f"^{re.escape(message)}$"):
        parfit.parallel_fit(model, cube(), world=(X,), **kwargs)


def fit(model=None, **kwargs):
    model = Gaussian1D(1.0, 0.0, 1.0) if model is None else model
    return parfit.parallel_fit(model, cube(), world=(X,), scheduler="synchronous", **kwargs)


# --- scipy options: refused once, up front, instead of failing every fit ----------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(ftol=-1), "fitter_kwargs: ftol must be a number in [0, 1); got -1"),
        (dict(ftol=float("nan")), "fitter_kwargs: ftol must be a number in [0, 1); got nan"),
        (dict(ftol=np.inf), "fitter_kwargs: ftol must be a number in [0, 1); got inf"),
        (dict(xtol="1e-8"), "fitter_kwargs: xtol must be a number in [0, 1); got '1e-8'"),
        (
            dict(ftol=0, xtol=0, gtol=1e-20),
            "fitter_kwargs: ftol, xtol and gtol cannot all be zero (or below machine epsilon, "
            "2.2e-16): at least one convergence test must be on",
        ),
        (dict(max_nfev="x"), "fitter_kwargs: max_nfev must be a positive integer or None; got 'x'"),
        (dict(max_nfev=0), "fitter_kwargs: max_nfev must be a positive integer or None; got 0"),
        (
            dict(max_nfev=True),
            "fitter_kwargs: max_nfev must be a positive integer or None; got True",
        ),
        (
            dict(max_nfev=50.0),
            "fitter_kwargs: max_nfev must be a positive integer or None; got 50.0",
        ),
    ],
)
def test_same_message_for_scipy_and_batched_fitter(kwargs, message):
    # The same mistake gets the same words from the batched and the scipy fitter.
    refused(InputError, message, fitter_kwargs=kwargs)
    refused(InputError, message, fitter="trf", fitter_kwargs=kwargs)
    refused(InputError, message, fitter="dogbox", fitter_kwargs=kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(loss="nonsense"),
            "fitter_kwargs: loss must be one of 'linear', 'huber', 'soft_l1', "
            "'cauchy', 'arctan' or a callable; got 'nonsense'",
        ),
        (dict(f_scale=0), "fitter_kwargs: f_scale must be a positive number; got 0"),
        (dict(f_scale=np.nan), "fitter_kwargs: f_scale must be a positive number; got nan"),
        (
            dict(x_scale=-1.0),
            "fitter_kwargs: x_scale must be 'jac', a positive number or a list of "
            "positive numbers (one per free parameter); got -1.0",
        ),
        (
            dict(x_scale=[1.0, -1.0, 1.0]),
            "fitter_kwargs: x_scale must be 'jac', a positive number or a list of positive numbers "
            "(one per free parameter); got [1.0, -1.0, 1.0]",
        ),
        (
            dict(x_scale="JAC"),
            "fitter_kwargs: x_scale must be 'jac', a positive number or a list "
            "of positive numbers (one per free parameter); got 'JAC'",
        ),
        (
            dict(x_scale=[1.0, 2.0]),
            "fitter_kwargs: x_scale has 2 values but the model has 3 free "
            "parameters (amplitude, mean, stddev); give one value per free "
            "parameter, one number or 'jac'",
        ),
        (
            dict(tr_solver="qr"),
            "fitter_kwargs: tr_solver must be None, 'exact' or 'lsmr'; got 'qr'",
        ),
        (
            dict(tr_options={"damp": 0.1}),
            "fitter_kwargs: tr_options are used only with tr_solver='lsmr'; got tr_solver=None",
        ),
        (
            dict(tr_solver="lsmr", tr_options={"bogus": 1}),
            "fitter_kwargs: tr_options has unknown key(s) 'bogus' for method 'trf'; valid keys are "
            "'damp', 'atol', 'btol', 'conlim', 'maxiter', 'show', 'x0', 'regularize'",
        ),
        (dict(verbose=3), "fitter_kwargs: verbose must be 0, 1 or 2; got 3"),
        (
            dict(diff_step=1e-3),
            "fitter_kwargs: diff_step has no effect: parfit passes scipy the "
            "model's Jacobian, so scipy never differentiates numerically; remove "
            "diff_step",
        ),
        (
            dict(maxiter=10, bogus=1),
            "fitter_kwargs has unknown key(s) 'bogus', 'maxiter' for fitter 'scipy-trf'; valid keys "
            "are 'ftol', 'xtol', 'gtol', 'max_nfev', 'x_scale', 'loss', 'f_scale', 'tr_solver', "
            "'tr_options', 'verbose'",
        ),
    ],
)
def test_scipy_options_refused_before_dispatch(kwargs, message):
    refused(InputError, message, fitter="trf", fitter_kwargs=kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(loss="soft_l1"),
            "fitter_kwargs: method 'lm' supports only loss='linear'; got "
            "loss='soft_l1'; use fitter='trf' for a robust loss",
        ),
        (
            dict(ftol=0),
            "fitter_kwargs: method 'lm' needs ftol, xtol and gtol each at least machine "
            "epsilon (2.2e-16); got ftol=0",
        ),
        (
            dict(tr_solver="exact"),
            "fitter_kwargs: tr_solver and tr_options have no effect with "
            "method 'lm' (MINPACK solves its own subproblem); remove them",
        ),
    ],
)
def test_lm_restrictions_refused_before_dispatch(kwargs, message):
    refused(InputError, message, fitter="lm", fitter_kwargs=kwargs)


def test_scipy_fitter_constructor_checks_with_the_same_words():
    with pytest.raises(
        InputError, match=re.escape("ScipyFitter: ftol must be a number in [0, 1); got -1")
    ):
        ScipyFitter("trf", ftol=-1)
    with pytest.raises(
        InputError, match=re.escape("BatchedFitter: ftol must be a number in [0, 1); got -1")
    ):
        BatchedFitter(ftol=-1)
    with pytest.raises(
        InputError,
        match=re.escape(
            "ScipyFitter: loss must be one of 'linear', 'huber', 'soft_l1', 'cauchy', 'arctan' "
            "or a callable; got 'nonsense'"
        ),
    ):
        ScipyFitter("trf", loss="nonsense")
    with pytest.raises(
        InputError,
        match=re.escape(
            "ScipyFitter got unknown option(s) 'maxiter'; valid options are 'ftol', 'xtol', "
            "'gtol', 'max_nfev', 'x_scale', 'loss', 'f_scale', 'tr_solver', 'tr_options', "
            "'verbose' (those of scipy.optimize.least_squares that parfit passes on)"
        ),
    ):
        ScipyFitter("trf", maxiter=5)
    for cls, args in ((ScipyFitter, ("trf",)), (BatchedFitter, ())):
        with pytest.raises(
            InputError,
            match=re.escape(f"{cls.__name__}: scale_covariance must be True or False; got 'no'"),
        ):
            cls(*args, scale_covariance="no")


def test_scipy_options_that_pass_the_checks_fit():
    kwargs = dict(
        loss="soft_l1",
        f_scale=np.float64(2.0),
        x_scale=[1.0, 0.5, 0.5],
        tr_solver="lsmr",
        tr_options={"regularize": False},
        verbose=np.int64(0),
    )
    res = fit(fitter="trf", fitter_kwargs=kwargs)
    assert res.status_counts() == {Status.OK: 4}
    np.testing.assert_allclose(res.parameters["mean"], TRUTH[1], rtol=1e-6)


def test_sub_epsilon_tolerance_switches_a_test_off_without_warnings():
    # scipy warns in every fit for 0 < tol < eps or tol = 0; parfit passes None (off).
    fitter = ScipyFitter("trf", ftol=0, xtol=1e-20)
    out = fitter.fit(Gaussian1D(1.0, 0.0, 1.0), X, y=amodels.Gaussian1D(*TRUTH)(X))
    assert out.status[0] == Status.OK
    assert out.warnings == {}
    np.testing.assert_allclose(out.params[0], TRUTH, rtol=1e-6)


# --- numpy scalars are numbers ----------------------------------------------------------


@pytest.mark.parametrize(
    "fitter, kwargs",
    [
        (
            None,
            dict(
                ftol=np.float32(1e-6),
                xtol=np.float64(1e-8),
                max_nfev=np.int64(50),
                factor=np.float32(0.5),
            ),
        ),
        (
            "trf",
            dict(
                ftol=np.float32(1e-6),
                gtol=np.float64(1e-8),
                max_nfev=np.int64(50),
                f_scale=np.float32(1.0),
                x_scale=np.float64(1.0),
            ),
        ),
        ("lm", dict(ftol=np.float32(1e-6), max_nfev=np.int32(200))),
    ],
)
def test_numpy_scalars_accepted_by_parfit_fitters(fitter, kwargs):
    res = fit(fitter=fitter, fitter_kwargs=kwargs)
    assert res.status_counts() == {Status.OK: 4}
    for name, value in zip(("amplitude", "mean", "stddev"), TRUTH):
        np.testing.assert_allclose(res.parameters[name], value, rtol=1e-5)


def test_numpy_scalars_accepted_by_fitter_constructors():
    batched = BatchedFitter(ftol=np.float32(0.5), max_nfev=np.int64(50), factor=np.float64(2.0))
    assert batched.describe() == (
        "batched trust-region reflective (ftol=0.5, xtol=1e-08, "
        "gtol=1e-08, max_nfev=50, factor=2.0, engine='auto')"
    )
    scipy_fitter = ScipyFitter(
        "dogbox", xtol=np.float32(0.5), max_nfev=np.uint8(7), scale_covariance=np.bool_(False)
    )
    assert scipy_fitter.describe() == (
        "scipy.optimize.least_squares(method='dogbox', ftol=1e-08, xtol=0.5, gtol=1e-08, "
        "max_nfev=7, x_scale=1.0, scale_covariance=False)"
    )


def test_numpy_scalars_accepted_by_astropy_fitter_kwargs():
    res = parfit.parallel_fit(
        amodels.Gaussian1D(1.0, 0.0, 1.0),
        cube(),
        world=(X,),
        fitter=fitting.TRFLSQFitter(),
        scheduler="synchronous",
        fitter_kwargs={"maxiter": np.int64(200), "acc": np.float32(1e-7)},
    )
    assert res.status_counts() == {Status.OK: 4}
    np.testing.assert_allclose(res.parameters["stddev"], TRUTH[2], rtol=1e-5)


# --- astropy fitters: starting values, bounds and options before dispatch ----------------


def test_astropy_nan_start_refused_as_a_parfit_model_is():
    with pytest.raises(ParameterError) as parfit_model:
        Gaussian1D(np.nan, 0.0, 1.0)
    model = amodels.Gaussian1D(np.nan, 0.0, 1.0)
    for fitter in (fitting.TRFLSQFitter(), fitting.LevMarLSQFitter()):
        refused(ParameterError, str(parfit_model.value), model=model, fitter=fitter)
    assert str(parfit_model.value) == (
        "Parameter 'amplitude': starting value nan is not "
        "finite; give a finite number (per-pixel maps may "
        "contain NaN)"
    )


def test_astropy_min_above_max_refused_as_a_parfit_model_is():
    with pytest.raises(ParameterError) as parfit_model:
        Gaussian1D(1.0, 0.0, 1.0, bounds={"stddev": (2.0, 1.5)})
    model = amodels.Gaussian1D(1.0, 0.0, 1.0)
    model.stddev.min, model.stddev.max = 2.0, 1.5
    for fitter in (fitting.TRFLSQFitter(), fitting.LevMarLSQFitter()):
        refused(ParameterError, str(parfit_model.value), model=model, fitter=fitter)
    assert str(parfit_model.value) == (
        "Parameter 'stddev': lower bound 2.0 must be below upper bound 1.5"
    )


def test_astropy_bounds_scipy_would_refuse_in_every_fit():
    equal = amodels.Gaussian1D(1.0, 0.0, 1.0)
    equal.stddev.bounds = (1.0, 1.0)
    refused(
        ParameterError,
        "Parameter 'stddev': lower bound 1.0 must be below upper bound 1.0 "
        "(TRFLSQFitter needs lower < upper for a free parameter; to hold it "
        "at 1.0, set model.stddev.fixed = True)",
        model=equal,
        fitter=fitting.TRFLSQFitter(),
    )
    outside = amodels.Gaussian1D(1.0, 0.0, 1.0)
    outside.stddev.bounds = (2.0, 3.0)
    refused(
        ParameterError,
        "Parameter 'stddev': starting value 1.0 is outside its bounds "
        "[2.0, 3.0]; give a starting value inside the bounds or change "
        "model.stddev.bounds (DogBoxLSQFitter refuses a start outside them)",
        model=outside,
        fitter=fitting.DogBoxLSQFitter(),
    )
    # LevMarLSQFitter clips into the bounds (astropy's own behaviour): accepted and fitted.
    res = parfit.parallel_fit(
        outside, cube(), world=(X,), fitter=fitting.LevMarLSQFitter(), scheduler="synchronous"
    )
    assert res.status_counts() == {Status.OK: 4}
    # A fixed parameter with equal bounds is no problem for TRFLSQFitter.
    equal.stddev.fixed = True
    res = parfit.parallel_fit(
        equal, cube(), world=(X,), fitter=fitting.TRFLSQFitter(), scheduler="synchronous"
    )
    assert res.status_counts() == {Status.OK: 4}


def test_astropy_per_pixel_start_outside_bounds_is_a_bad_start():
    start = np.ones((2, 2))
    start[0, 1] = 5.0  # outside the bounds in one pixel only
    model = amodels.Gaussian1D(
        amplitude=np.ones((2, 2)),
        mean=np.zeros((2, 2)),
        stddev=start,
        bounds={"stddev": (0.5, 3.0)},
    )
    res = parfit.parallel_fit(
        model, cube(), world=(X,), fitter=fitting.TRFLSQFitter(), scheduler="synchronous"
    )
    assert res.status[0, 1] == Status.BAD_START
    assert res.status_counts() == {Status.OK: 3, Status.BAD_START: 1}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(weights=np.ones(40)),
            "fitter_kwargs has key(s) 'weights' that parfit sets for every fit (the model, its "
            "coordinates, data and weights, and inplace); remove them, and pass weights= or mask= to "
            "parallel_fit for weights",
        ),
        (
            dict(inplace=False, z=None),
            "fitter_kwargs has key(s) 'inplace', 'z' that parfit sets for every fit (the model, its "
            "coordinates, data and weights, and inplace); remove them, and pass weights= or mask= to "
            "parallel_fit for weights",
        ),
        (dict(maxiter=0), "fitter_kwargs: maxiter must be a positive integer; got 0"),
        (dict(maxiter=None), "fitter_kwargs: maxiter must be a positive integer; got None"),
        (dict(acc=-1e-7), "fitter_kwargs: acc must be a positive number; got -1e-07"),
        (dict(epsilon=np.nan), "fitter_kwargs: epsilon must be a positive number; got nan"),
        (
            dict(estimate_jacobian="yes"),
            "fitter_kwargs: estimate_jacobian must be True or False; got 'yes'",
        ),
        (
            dict(max_nfev=10),
            "fitter_kwargs has unknown key(s) 'max_nfev' for fitter "
            "'astropy-TRFLSQFitter'; valid keys are 'maxiter', 'acc', 'epsilon', "
            "'estimate_jacobian', 'filter_non_finite'",
        ),
    ],
)
def test_astropy_fitter_kwargs_refused_before_dispatch(kwargs, message):
    refused(
        InputError,
        message,
        model=amodels.Gaussian1D(1.0, 0.0, 1.0),
        fitter=fitting.TRFLSQFitter(),
        fitter_kwargs=kwargs,
    )


def test_unknown_fitter_kwargs_get_one_message_shape_for_every_fitter():
    for fitter, model, name in (
        (None, None, "batched-trf"),
        ("trf", None, "scipy-trf"),
        ("lm", None, "scipy-lm"),
        (fitting.LevMarLSQFitter(), amodels.Gaussian1D(1.0, 0.0, 1.0), "astropy-LevMarLSQFitter"),
    ):
        with pytest.raises(InputError) as info:
            parfit.parallel_fit(
                Gaussian1D(1.0, 0.0, 1.0) if model is None else model,
                cube(),
                world=(X,),
                fitter=fitter,
                fitter_kwargs={"bogus": 1},
                scheduler=never_dispatch,
            )
        assert str(info.value).startswith(
            f"fitter_kwargs has unknown key(s) 'bogus' for fitter {name!r}; valid keys are '"
        )


# --- the fitter argument itself -----------------------------------------------------------


class NotAFitter:
    def fit_block(self, *args, **kwargs):
        raise AssertionError("never called")


@pytest.mark.parametrize(
    "fitter, exc, message",
    [
        (
            "TRF",
            InputError,
            "fitter='TRF' is not a known fitter name; expected one of 'batched', "
            "'trf', 'dogbox', 'lm', 'minuit', a parfit fitter or an astropy fitter instance",
        ),
        (
            123,
            InputTypeError,
            "fitter must be None, a fitter name ('batched', 'trf', 'dogbox', "
            "'lm', 'minuit'), a parfit fitter or an astropy fitter instance; got int",
        ),
        (
            NotAFitter(),
            InputTypeError,
            "fitter must be None, a fitter name ('batched', 'trf', "
            "'dogbox', 'lm', 'minuit'), a parfit fitter or an astropy fitter "
            "instance; got NotAFitter",
        ),
        (
            fitting.TRFLSQFitter,
            InputError,
            "fitter must be an astropy fitter instance, not the "
            "class TRFLSQFitter; use fitter=TRFLSQFitter()",
        ),
    ],
)
def test_bad_fitter_argument(fitter, exc, message):
    refused(exc, message, model=amodels.Gaussian1D(1.0, 0.0, 1.0), fitter=fitter)


@pytest.mark.parametrize("fitter", ["trf", "lm", None])
def test_equal_bounds_on_a_free_parameter_refused_on_the_scipy_path(fitter):
    # An astropy model translated to a parfit one, fitted by scipy: refused up front.
    model = amodels.Gaussian1D(1.0, 0.0, 1.0)
    model.stddev.bounds = (1.0, 1.0)
    refused(
        ParameterError,
        "Parameter 'stddev': lower bound 1.0 must be below upper bound 1.0",
        model=model,
        fitter=fitter,
    )


# --- fit_info names -----------------------------------------------------------------------


def test_check_fit_info_names_per_fitter():
    scipy_names = (
        "'x', 'cost', 'fun', 'jac', 'grad', 'optimality', 'active_mask', 'nfev', "
        "'njev', 'status', 'message', 'success'"
    )
    cases = [
        (ScipyFitter("trf"), f"fitter 'scipy-trf'; valid names are {scipy_names}"),
        (
            BatchedFitter(),
            "fitter 'batched-trf'; valid names are 'message', 'nfev', 'n_iter', "
            "'chi2', 'converged', 'flags'",
        ),
        (
            AstropyFitter(fitting.TRFLSQFitter()),
            f"fitter 'astropy-TRFLSQFitter'; valid names are {scipy_names}, 'param_cov'",
        ),
        (
            AstropyFitter(fitting.LevMarLSQFitter()),
            "fitter 'astropy-LevMarLSQFitter'; valid names are 'nfev', 'njev', 'fvec', 'fjac', "
            "'ipvt', 'qtf', 'message', 'ierr', 'param_jac', 'param_cov', 'cov_x'",
        ),
        (
            Fitter(),
            "fitter 'fitter'; this fitter records no fit_info entries, so use fit_info=False",
        ),
    ]
    for fitter, tail in cases:
        with pytest.raises(InputError) as info:
            fitter.check_fit_info(["nfev", "foo", "foo"])
        if isinstance(fitter, Fitter) and type(fitter) is Fitter:
            assert str(info.value) == f"fit_info has unknown name(s) 'nfev', 'foo' for {tail}"
        else:
            assert str(info.value) == f"fit_info has unknown name(s) 'foo' for {tail}"
        fitter.check_fit_info(True)
        fitter.check_fit_info(False)
    ScipyFitter("lm").check_fit_info(["x", "active_mask", "success"])
    AstropyFitter(fitting.TRFLSQFitter()).check_fit_info(("param_cov", "x"))
    AstropyFitter(fitting.LevMarLSQFitter()).check_fit_info("ierr")
    with pytest.raises(
        InputError,
        match=re.escape("fit_info has unknown name(s) 'ierr' for fitter 'astropy-TRFLSQFitter'"),
    ):
        AstropyFitter(fitting.TRFLSQFitter()).check_fit_info("ierr")

    class MyTRF(fitting.TRFLSQFitter):
        pass

    # A fitter class parfit does not know: any name goes through.
    AstropyFitter(MyTRF()).check_fit_info(["anything"])


def test_fit_info_names_select_the_entries():
    res = fit(fitter="trf", fit_info=["x", "nfev", "success"])
    info = res.fit_info[0, 0]
    assert sorted(info) == ["nfev", "success", "x"]
    assert info["success"] is True and isinstance(info["nfev"], int)
    np.testing.assert_allclose(info["x"], TRUTH, rtol=1e-6)
    assert sorted(fit(fitter="trf", fit_info=True).fit_info[1, 1]) == [
        "cost",
        "message",
        "nfev",
        "optimality",
        "status",
    ]
    batched = fit(fit_info=("nfev", "converged"))
    assert batched.fit_info[1, 0] == {"nfev": int(batched.nfev[1, 0]), "converged": True}


@pytest.mark.parametrize(
    "fitter, model, message",
    [
        (
            "trf",
            None,
            "fit_info has unknown name(s) 'foo' for fitter 'scipy-trf'; valid names are "
            "'x', 'cost', 'fun', 'jac', 'grad', 'optimality', 'active_mask', 'nfev', "
            "'njev', 'status', 'message', 'success'",
        ),
        (
            None,
            None,
            "fit_info has unknown name(s) 'foo' for fitter 'batched-trf'; valid names are "
            "'message', 'nfev', 'n_iter', 'chi2', 'converged', 'flags'",
        ),
        (
            fitting.TRFLSQFitter(),
            amodels.Gaussian1D(1.0, 0.0, 1.0),
            "fit_info has unknown name(s) 'foo' for fitter 'astropy-TRFLSQFitter'; valid names are "
            "'x', 'cost', 'fun', 'jac', 'grad', 'optimality', 'active_mask', 'nfev', 'njev', "
            "'status', 'message', 'success', 'param_cov'",
        ),
    ],
)
def test_unknown_fit_info_name_refused_before_dispatch(fitter, model, message):
    refused(InputError, message, model=model, fitter=fitter, fit_info=["nfev", "foo"])
    refused(InputError, message, model=model, fitter=fitter, fit_info="foo")
