"""Tests of model serialisation to dicts and YAML."""

import re

import numpy as np
import pytest
import yaml
from astropy import units as u

from parfit.errors import ModelError
from parfit.models import (
    MODEL_REGISTRY,
    Const1D,
    Gaussian1D,
    Gaussian2D,
    Linear1D,
    Lorentz1D,
    Model,
    ParameterSpec,
    Polynomial1D,
    PowerLaw1D,
    Voigt1D,
    from_dict,
    from_yaml,
    register_model,
    to_dict,
    to_yaml,
)


def assert_same_model(a, b):
    assert type(a) is type(b)
    assert a.param_names == b.param_names
    assert a.name == b.name
    assert a._structural_args() == b._structural_args()
    for name in a.param_names:
        pa, pb = a.parameters[name], b.parameters[name]
        if pa.is_array:
            np.testing.assert_array_equal(pa.value, pb.value)
        else:
            assert pa.value == pb.value and type(pb.value) is float
        for ba, bb in zip(pa.bounds, pb.bounds, strict=True):
            if isinstance(ba, np.ndarray):
                np.testing.assert_array_equal(ba, bb)
            else:
                assert ba == bb
        assert (pa.fixed, pa.tied, pa.unit) == (pb.fixed, pb.tied, pb.unit)


@pytest.mark.parametrize(
    "model",
    [
        Gaussian1D(
            amplitude=3 * u.Jy,
            mean=0.1 + 0.2,
            stddev=1 / 3,
            bounds={"mean": (-1e-300, 7.25)},
            name="line",
        ),
        Lorentz1D(fixed={"fwhm": True}),
        Voigt1D(x_0=2 * u.um),
        Const1D(-0.0),
        Linear1D(slope=1e300 * u.Jy / u.um),
        Polynomial1D(3, c0=1.5, c3=np.pi, tied={"c2": "c1 * 2"}),
        PowerLaw1D(alpha=-2.123456789012345),
        Gaussian2D(theta=0.7, x_stddev=2.0, bounds={"theta": (-np.pi, np.pi)}),
    ],
)
def test_leaf_round_trip(model):
    text = model.to_yaml()
    back = Model.from_yaml(text)
    assert_same_model(model, back)
    assert from_dict(to_dict(model)).param_names == model.param_names


def test_leaf_dict_format():
    g = Gaussian1D(amplitude=2 * u.Jy, bounds={"amplitude": (0.0, None)}, fixed={"mean": True})
    d = to_dict(g)
    assert d == {
        "model": "Gaussian1D",
        "name": None,
        "parameters": {
            "amplitude": {
                "value": 2.0,
                "bounds": [0.0, None],
                "fixed": False,
                "tied": None,
                "unit": "Jy",
            },
            "mean": {
                "value": 0.0,
                "bounds": [None, None],
                "fixed": True,
                "tied": None,
                "unit": None,
            },
            "stddev": {
                "value": 1.0,
                "bounds": [float(np.finfo(np.float32).tiny), None],
                "fixed": False,
                "tied": None,
                "unit": None,
            },
        },
    }
    assert to_dict(Polynomial1D(1))["degree"] == 1


def test_compound_round_trip_with_ties():
    m = (
        Gaussian1D(mean=6563.0)
        + Gaussian1D(mean=7763.0) * Const1D(fixed={"amplitude": True})
        + Linear1D()
    )
    m.mean_1.tied = "mean_0 + 1200"
    m.stddev_1.tied = "stddev_0"
    m.amplitude_0.bounds = (0, None)
    d = to_dict(m)
    assert d["operator"] == "+"
    assert d["left"]["operator"] == "+"
    assert d["left"]["right"]["operator"] == "*"
    assert d["left"]["right"]["left"]["parameters"]["mean"]["tied"] == "mean_0 + 1200"
    back = from_yaml(to_yaml(m))
    assert_same_model(m, back)
    x = np.linspace(6000, 8000, 9)
    params = np.random.default_rng(3).uniform(1, 2, (2, m.n_params))
    np.testing.assert_array_equal(back.evaluate(x, params), m.evaluate(x, params))


def test_compound_name_round_trip():
    m = CompoundModelFactory()
    back = from_yaml(to_yaml(m))
    assert back.name == "both"


def CompoundModelFactory():
    from parfit.models import CompoundModel

    return CompoundModel("-", Gaussian1D(), Const1D(), name="both")


def test_arrays_included():
    g = Gaussian1D(
        mean=np.array([[0.1, np.nan], [np.inf, -2.5]]),
        bounds={"stddev": (np.full((2, 2), 0.5), 10.0)},
    )
    back = from_yaml(to_yaml(g))
    assert_same_model(g, back)


def test_arrays_excluded():
    g = Gaussian1D(mean=np.zeros((3, 4)), bounds={"stddev": (np.full((3, 4), 0.5), None)})
    d = to_dict(g, include_arrays=False)
    assert d["parameters"]["mean"]["value"] is None
    assert d["parameters"]["mean"]["per_pixel_shape"] == [3, 4]
    assert d["parameters"]["stddev"]["bounds"] == [None, None]
    assert d["parameters"]["stddev"]["per_pixel_bounds_shape"] == [[3, 4], None]
    back = from_yaml(to_yaml(g, include_arrays=False))
    assert back.mean.value == 0.0 and not back.mean.is_array
    assert back.stddev.bounds == (None, None)


def test_float_repr_round_trip_exact():
    values = [0.1 + 0.2, 1 / 3, 5e-324, 1.7976931348623157e308, -2.5e-17]
    for v in values:
        back = from_yaml(to_yaml(Const1D(v)))
        assert back.amplitude.value == v


def test_duplicate_keys_rejected():
    text = "model: Const1D\nname: null\nmodel: Gaussian1D\n"
    with pytest.raises(ModelError, match="duplicate key 'model' at line 3"):
        from_yaml(text)
    nested = "model: Const1D\nparameters:\n  amplitude:\n    value: 1.0\n    value: 2.0\n"
    with pytest.raises(ModelError, match="duplicate key 'value' at line 5"):
        from_yaml(nested)


def test_unknown_model_lists_known():
    with pytest.raises(
        ModelError, match=r"model: unknown model 'Gauss'; known models: .*Const1D.*Gaussian1D"
    ):
        from_dict({"model": "Gauss"})


def test_bad_documents():
    with pytest.raises(ModelError, match="Gaussian1D has no parameter 'sigma'"):
        from_dict({"model": "Gaussian1D", "parameters": {"sigma": {"value": 1.0}}})
    with pytest.raises(
        ModelError, match=re.escape("model.parameters.mean: unknown key(s) ['valu']")
    ):
        from_dict({"model": "Gaussian1D", "parameters": {"mean": {"valu": 1.0}}})
    with pytest.raises(ModelError, match="fixed must be true or false, got 'yes'"):
        from_dict({"model": "Gaussian1D", "parameters": {"mean": {"fixed": "yes"}}})
    with pytest.raises(ModelError, match="tied must be an expression string or null, got 750"):
        from_yaml("model: Gaussian1D\nparameters:\n  mean:\n    tied: 12:30\n")
    with pytest.raises(ModelError, match="value must be a number or a nested list"):
        from_dict({"model": "Gaussian1D", "parameters": {"mean": {"value": "1.0"}}})
    with pytest.raises(ModelError, match="starting value -1.0 is outside its bounds"):
        from_dict({"model": "Gaussian1D", "parameters": {"stddev": {"value": -1.0}}})
    with pytest.raises(ModelError, match="needs a 'model' key"):
        from_dict({"parameters": {}})
    with pytest.raises(ModelError, match="unknown operator '\\^'"):
        from_dict({"operator": "^", "left": {"model": "Const1D"}, "right": {"model": "Const1D"}})
    with pytest.raises(ModelError, match="model.left: must be a mapping"):
        from_dict({"operator": "+", "left": 3, "right": {"model": "Const1D"}})
    with pytest.raises(ModelError, match="degree must be a non-negative integer"):
        from_dict({"model": "Polynomial1D", "degree": -1})
    with pytest.raises(ModelError, match="model: Gaussian1D: unknown parameter\\(s\\) 'degree'"):
        from_dict({"model": "Gaussian1D", "degree": 2})
    with pytest.raises(ModelError, match="uses unknown name 'foo'"):
        from_dict({"model": "Gaussian1D", "parameters": {"mean": {"tied": "foo"}}})
    with pytest.raises(ModelError, match="invalid YAML"):
        from_yaml("model: [unclosed")
    with pytest.raises(ModelError, match="expects YAML text"):
        from_yaml(b"model: Const1D")


def test_unsafe_yaml_tags_rejected():
    with pytest.raises(ModelError, match="invalid YAML"):
        from_yaml("!!python/object/apply:os.system ['true']")


def test_user_model_registration():
    class Unregistered(Model):
        param_specs = (ParameterSpec("a", 1.0),)

        def _evaluate(self, x, a):
            return a * x

    with pytest.raises(
        ModelError, match="is not registered; decorate it with @parfit.models.register_model"
    ):
        to_yaml(Unregistered())

    @register_model
    class Quadratic1D(Model):
        param_specs = (ParameterSpec("a", 1.0), ParameterSpec("b", 0.0, bounds=(None, 5.0)))

        def _evaluate(self, x, a, b):
            return a * x**2 + b

    try:
        m = Quadratic1D(a=2.0) + Const1D()
        back = from_yaml(to_yaml(m))
        assert_same_model(m, back)
        assert register_model(Quadratic1D) is Quadratic1D  # idempotent

        class Quadratic1DClash(Model):
            param_specs = ()

        Quadratic1DClash.__name__ = "Quadratic1D"
        with pytest.raises(
            ModelError, match="a different model class is already registered as 'Quadratic1D'"
        ):
            register_model(Quadratic1DClash)
        with pytest.raises(ModelError, match="expects a Model subclass"):
            register_model(int)
    finally:
        MODEL_REGISTRY.pop("Quadratic1D", None)


def test_yaml_is_plain_safe_yaml():
    text = to_yaml(Gaussian1D(mean=np.arange(3.0)) + Const1D())
    data = yaml.safe_load(text)
    assert data["left"]["parameters"]["mean"]["value"] == [0.0, 1.0, 2.0]
