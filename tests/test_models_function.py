"""Tests of models made from plain functions (model_from_function)."""

import pickle
import subprocess
import sys

import cloudpickle
import numpy as np
import pytest

from parfit.errors import ModelError
from parfit.models import (
    MODEL_REGISTRY,
    CompoundModel,
    FunctionModel,
    Gaussian1D,
    Model,
    from_yaml,
    model_from_function,
    register_model,
)

X = np.linspace(-3.0, 5.0, 17)
PARAMS = np.array([[2.0, 1.5, 0.3], [-1.0, 0.7, 2.0], [0.5, 3.0, -1.0]])


def damped(x, amplitude, tau=2.0, omega=1.0):
    return amplitude * np.exp(-x / tau) * np.cos(omega * x)


def damped_jacobian(x, amplitude, tau, omega):
    e = np.exp(-x / tau)
    c = np.cos(omega * x)
    return [e * c, amplitude * e * c * x / tau**2, -amplitude * e * np.sin(omega * x) * x]


Damped = model_from_function(damped, name="Damped")


@model_from_function
def Sinc(x, amplitude, width=1.0):
    """A sinc line."""
    return amplitude * np.sinc(x / width)


@model_from_function(n_inputs=2, jacobian=lambda x, y, a, b, c: [x, y, np.ones_like(x)])
def Plane(x, y, a, b=0.5, c=0.0):
    return a * x + b * y + c


def test_class_and_parameters():
    assert isinstance(Damped, type) and issubclass(Damped, FunctionModel)
    assert issubclass(Damped, Model)
    assert Damped.__name__ == "Damped" and Damped.n_inputs == 1
    m = Damped()
    assert m.param_names == ("amplitude", "tau", "omega")
    # defaults from the signature, 1.0 where there is none
    assert [m.parameters[n].value for n in m.param_names] == [1.0, 2.0, 1.0]
    assert repr(Damped(3.0, omega=0.5)) == "<Damped(amplitude=3.0, tau=2.0, omega=0.5)>"
    assert Sinc.__doc__ == "A sinc line."
    assert not Damped.has_analytic_jacobian


def test_evaluation_matches_the_function():
    m = Damped()
    out = m.evaluate(X, PARAMS)
    assert out.shape == (3, X.size) and out.dtype == np.float64
    for k in range(3):
        np.testing.assert_allclose(out[k], damped(X, *PARAMS[k]), rtol=1e-15)
    # per-fit x
    xs = np.stack([X, X + 1, X * 2])
    np.testing.assert_allclose(m.evaluate(xs, PARAMS)[1], damped(X + 1, *PARAMS[1]), rtol=1e-15)
    # calling with the current values, per-pixel maps included
    np.testing.assert_allclose(Damped(2.0, 1.5, 0.3)(X), damped(X, 2.0, 1.5, 0.3), rtol=1e-15)
    assert Damped(amplitude=np.ones((2, 3)))(X).shape == (2, 3, X.size)


def test_function_gets_columns_and_rows():
    seen = {}

    def spy(x, a, b):
        seen["x"], seen["a"], seen["b"] = x.shape, np.shape(a), np.shape(b)
        return a * x + b

    Spy = model_from_function(spy)
    Spy().evaluate(X, np.ones((4, 2)))
    assert seen == {"x": (1, X.size), "a": (4, 1), "b": (4, 1)}


def test_finite_difference_jacobian_matches_analytic_derivative():
    jac = Damped().jacobian(X, PARAMS)
    expected = np.stack(
        [np.stack(np.broadcast_arrays(*damped_jacobian(X, *p)), axis=-1) for p in PARAMS]
    )
    np.testing.assert_allclose(jac, expected, rtol=1e-6, atol=1e-8)


def test_analytic_jacobian_option():
    Analytic = model_from_function(damped, name="DampedAnalytic", jacobian=damped_jacobian)
    assert Analytic.has_analytic_jacobian
    calls = []

    def counting(*args):
        calls.append(1)
        return damped_jacobian(*args)

    Counted = model_from_function(damped, jacobian=counting)
    jac = Counted().jacobian(X, PARAMS)
    assert calls == [1]
    np.testing.assert_allclose(jac, Damped().jacobian(X, PARAMS), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(Analytic().jacobian(X, PARAMS), jac, rtol=0, atol=0)


def test_decorator_forms():
    assert issubclass(Sinc, FunctionModel) and Sinc.__name__ == "Sinc"
    assert Sinc().param_names == ("amplitude", "width")
    assert Plane.n_inputs == 2 and Plane.has_analytic_jacobian
    p = Plane(a=2.0)
    assert float(p(1.0, 2.0)) == 3.0
    params = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(p.jacobian(X, X, params)[0, :, 2], 1.0)

    @model_from_function(name="Renamed")
    def quad(x, a):
        return a * x**2

    assert quad.__name__ == "Renamed"


def test_lambda_and_class_names():
    anonymous = model_from_function(lambda x, a: a * x)
    assert anonymous.__name__ == "LambdaModel"
    assert model_from_function(lambda x, a: a * x, name="Scale").__name__ == "Scale"


def test_bounds_fixed_tied_copy_with_values():
    m = Damped(bounds={"tau": (0.0, None)}, fixed={"omega": True}, tied={"amplitude": "2 * tau"})
    assert m.tau.bounds == (0.0, None) and m.omega.fixed
    m.validate()
    assert list(m.free_mask) == [False, True, False]
    c = m.copy()
    c.tau = 5.0
    assert m.tau.value == 2.0 and type(c) is Damped
    assert m.with_values([1.0, 2.0, 3.0]).omega.value == 3.0


def test_composition_with_gaussian():
    m = Damped(2.0) + Gaussian1D(1.0, 0.5, 0.7)
    assert isinstance(m, CompoundModel)
    assert m.param_names == ("amplitude_0", "tau_0", "omega_0", "amplitude_1", "mean_1", "stddev_1")
    np.testing.assert_allclose(m(X), damped(X, 2.0) + Gaussian1D(1.0, 0.5, 0.7)(X), rtol=1e-15)
    assert not m.has_analytic_jacobian
    params = np.array([[2.0, 1.5, 0.3, 1.0, 0.5, 0.7]])
    jac = m.jacobian(X, params)
    np.testing.assert_allclose(
        jac[0, :, 3:], Gaussian1D().jacobian(X, params[:, 3:])[0], rtol=1e-6, atol=1e-9
    )
    assert (m * Gaussian1D()).n_params == 9


def test_bad_signatures():
    def star_args(x, *p):
        return x

    def star_kwargs(x, a, **kw):
        return x

    def kw_only(x, a, *, b=1.0):
        return x

    def no_params(x):
        return x

    def text_default(x, a="abc"):
        return x

    def reserved(x, name):
        return x

    cases = [
        (
            star_args,
            {},
            "model_from_function: function test_bad_signatures.<locals>.star_args "
            "takes *p; a model function needs a fixed list of named parameters, e.g. "
            "f(x, a, b=2.0)",
        ),
        (
            star_kwargs,
            {},
            "model_from_function: function test_bad_signatures.<locals>."
            "star_kwargs takes **kw; a model function needs a fixed list of named parameters, "
            "e.g. f(x, a, b=2.0)",
        ),
        (
            kw_only,
            {},
            "model_from_function: argument 'b' of function test_bad_signatures."
            "<locals>.kw_only is keyword-only; write the parameters as ordinary arguments after "
            "the independent variable(s), e.g. f(x, a, b=2.0)",
        ),
        (
            no_params,
            {},
            "model_from_function: function test_bad_signatures.<locals>.no_params "
            "takes 1 argument(s), but needs the 1 independent variable(s) and at least one "
            "parameter, e.g. f(x, a)",
        ),
        (
            text_default,
            {},
            "model_from_function: default of parameter 'a' of "
            "test_bad_signatures.<locals>.text_default must be a real number, got 'abc'",
        ),
        (
            reserved,
            {},
            "model_from_function: reserved: parameter name 'name' clashes with a Model attribute",
        ),
        (damped, {"n_inputs": 3}, "model_from_function: n_inputs must be 1 or 2, got 3"),
        (
            damped,
            {"name": "not valid"},
            "model_from_function: name must be a Python identifier, got 'not valid'",
        ),
        (3.0, {}, "model_from_function expects a function, got 3.0"),
        (
            Gaussian1D,
            {},
            "model_from_function expects a function, got <class "
            "'parfit.models.functional_1d.Gaussian1D'>",
        ),
        (damped, {"jacobian": 5}, "model_from_function: jacobian must be a function, got 5"),
        (
            damped,
            {"jacobian": lambda x, a: [x]},
            "model_from_function: jacobian "
            "test_bad_signatures.<locals>.<lambda> cannot be called with the arguments of damped "
            "(x, amplitude, tau, omega); give it the same signature",
        ),
    ]
    for func, kwargs, message in cases:
        with pytest.raises(ModelError) as info:
            model_from_function(func, **kwargs)
        assert str(info.value) == message
    with pytest.raises(ModelError, match=r"takes 2 argument\(s\), but needs the 2 "):
        model_from_function(n_inputs=2)(lambda x, y: x)
    with pytest.raises(ModelError, match="keyword-only"):
        model_from_function(lambda x, a, *, b: x)


def test_function_model_base_class_needs_a_function():
    with pytest.raises(ModelError, match="make function models with"):
        FunctionModel()


def test_plain_pickle_of_module_level_classes():
    for model in (Damped(3.0, bounds={"tau": (0, 10)}), Sinc(2.0), Plane(1.0, tied={"c": "a"})):
        again = pickle.loads(pickle.dumps(model))
        assert type(again) is type(model)
        assert repr(again) == repr(model)


def _made_inside_a_function():
    def bump(x, height, center=0.0, width=1.0):
        return height / (1.0 + ((x - center) / width) ** 2)

    return model_from_function(bump)


def test_cloudpickle_round_trip_in_another_process(tmp_path):
    Bump = _made_inside_a_function()
    model = Bump(2.0, width=0.5, bounds={"width": (0.1, None)}) + Gaussian1D(1.0, 1.0, 0.3)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(model)  # a local class: only cloudpickle can
    payload = tmp_path / "model.pkl"
    payload.write_bytes(cloudpickle.dumps(model))
    again = pickle.loads(payload.read_bytes())
    np.testing.assert_array_equal(again(X), model(X))
    # a fresh interpreter where the class never existed (as on a dask worker)
    code = (
        "import pickle, sys, numpy as np\n"
        f"model = pickle.loads(open({str(payload)!r}, 'rb').read())\n"
        "x = np.linspace(-3.0, 5.0, 17)\n"
        "print(repr(model))\n"
        "print(repr(model(x).round(12).tolist()))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == repr(model)
    assert lines[1] == repr(model(X).round(12).tolist())


def test_yaml_needs_registration():
    m = Damped(2.0)
    with pytest.raises(ModelError) as info:
        m.to_yaml()
    assert str(info.value) == (
        f"Damped was made by model_from_function from {damped.__module__}.damped and is "
        "not registered; function models can be written to YAML only once registered with "
        "parfit.models.register_model(Damped) (the function itself is not written: the "
        "reading process must register the same class before from_yaml)"
    )
    register_model(Damped)
    try:
        again = from_yaml((m + Gaussian1D()).to_yaml())
        assert repr(again) == repr(m + Gaussian1D())
        np.testing.assert_array_equal(again(X), (m + Gaussian1D())(X))
    finally:
        del MODEL_REGISTRY["Damped"]


def test_function_models_cannot_guess():
    assert not Damped().can_guess
    with pytest.raises(ModelError, match="^Damped cannot guess starting values"):
        Damped().guess(X, y=np.ones((1, X.size)))
