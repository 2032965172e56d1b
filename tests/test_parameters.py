"""Tests of Parameter and Parameters."""

import pickle
import re

import numpy as np
import pytest
from astropy import units as u

from parfit.errors import ParameterError
from parfit.models.parameters import Parameter, Parameters


def test_defaults_and_repr():
    p = Parameter("mean")
    assert p.value == 0.0 and type(p.value) is float
    assert p.bounds == (None, None)
    assert p.lower is None and p.upper is None
    assert p.fixed is False and p.tied is None and p.unit is None
    assert p.description == ""
    assert not p.is_array and p.shape == ()
    assert repr(p) == "Parameter('mean', value=0.0, bounds=(None, None))"


def test_repr_with_options():
    p = Parameter("a", np.ones((64, 64)), bounds=(0, None), fixed=True, unit="Jy")
    assert repr(p) == (
        "Parameter('a', value=array(shape=(64, 64)), bounds=(0.0, None), fixed=True, unit='Jy')"
    )
    q = Parameter("b", 1, tied="2 * a")
    assert repr(q) == "Parameter('b', value=1.0, bounds=(None, None), tied='2 * a')"


def test_int_value_becomes_float():
    p = Parameter("a", 3)
    assert p.value == 3.0 and type(p.value) is float
    assert type(Parameter("a", np.float32(2.5)).value) is float
    assert type(Parameter("a", np.array(2.5)).value) is float


def test_array_value_is_copied_float64_and_readonly_input_ok():
    src = np.arange(6, dtype=np.int32).reshape(2, 3)
    src.flags.writeable = False
    p = Parameter("a", src)
    assert p.is_array and p.shape == (2, 3)
    assert p.value.dtype == np.float64
    assert not np.shares_memory(p.value, src)
    p.value[0, 0] = 10.0  # our copy is ours
    assert src[0, 0] == 0


def test_array_not_a_view_of_float64_input():
    src = np.ones(4)
    p = Parameter("a", src)
    src[0] = 5.0
    assert p.value[0] == 1.0


def test_quantity_value_sets_unit():
    p = Parameter("mean", 2.0 * u.um)
    assert p.value == 2.0 and p.unit == u.um
    assert p.quantity == 2.0 * u.um


def test_quantity_value_converted_to_given_unit():
    p = Parameter("mean", 2.0 * u.um, unit="nm")
    assert p.value == pytest.approx(2000.0, rel=1e-15)
    assert p.unit == u.nm
    p.value = 1 * u.mm
    assert p.value == pytest.approx(1e6, rel=1e-15)


def test_quantity_bounds_converted():
    p = Parameter("mean", 2.0 * u.um, bounds=(1000 * u.nm, 5 * u.um))
    assert p.bounds == (pytest.approx(1.0), 5.0)


def test_incompatible_quantity():
    with pytest.raises(ParameterError, match="cannot be converted to the parameter unit"):
        Parameter("mean", 2.0 * u.s, unit="um")


def test_bound_quantity_without_unit():
    with pytest.raises(ParameterError, match="has a unit but the parameter has none"):
        Parameter("mean", 2.0, bounds=(0 * u.um, None))


def test_bad_unit():
    with pytest.raises(ParameterError, match="unit 'notaunit' is not a valid astropy unit"):
        Parameter("mean", 1.0, unit="notaunit")


def test_lower_not_below_upper_message():
    with pytest.raises(
        ParameterError,
        match=re.escape("Parameter 'stddev': lower bound 5.0 must be below upper bound 1.0"),
    ):
        Parameter("stddev", 2.0, bounds=(5.0, 1.0))
    with pytest.raises(ParameterError, match="lower bound 1.0 must be below upper bound 1.0"):
        Parameter("stddev", 1.0, bounds=(1.0, 1.0))


def test_value_outside_bounds_message():
    with pytest.raises(
        ParameterError,
        match=re.escape(
            "Parameter 'stddev': starting value -1.0 is outside its bounds [0.0, inf]; "
            "give a starting value inside the bounds or change both with "
            "Parameter.update(value=..., bounds=...)"
        ),
    ):
        Parameter("stddev", -1.0, bounds=(0.0, None))


def test_value_on_bound_is_ok():
    p = Parameter("a", 0.0, bounds=(0.0, 1.0))
    assert p.value == 0.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scalar_value(bad):
    with pytest.raises(ParameterError, match=r"Parameter 'a': starting value .* is not finite"):
        Parameter("a", bad)


def test_nan_bound_is_error():
    with pytest.raises(ParameterError, match="lower bound is NaN; use None for unbounded"):
        Parameter("a", 1.0, bounds=(np.nan, None))


def test_infinite_bounds_mean_unbounded():
    p = Parameter("a", 1.0, bounds=(-np.inf, np.inf))
    assert p.bounds == (None, None)


def test_per_pixel_values_out_of_bounds_or_nan_are_not_errors():
    value = np.array([[-1.0, np.nan], [0.5, 3.0]])
    p = Parameter("a", value, bounds=(0.0, 1.0))
    np.testing.assert_array_equal(p.value, value)
    q = Parameter("a", 5.0, bounds=(np.array([0.0, 6.0]), 10.0))
    assert q.value == 5.0


def test_array_bounds_lower_ge_upper_counts_pixels():
    lower = np.array([[0.0, 2.0], [3.0, 0.0]])
    upper = np.array([[1.0, 1.0], [3.0, 1.0]])
    with pytest.raises(
        ParameterError,
        match=re.escape(
            "Parameter 'a': lower bound must be below upper bound in every pixel, "
            "but lower >= upper in 2 of 4 pixels"
        ),
    ):
        Parameter("a", 0.5, bounds=(lower, upper))
    with pytest.raises(ParameterError, match="lower >= upper in 1 of 3 pixels"):
        Parameter("a", 0.5, bounds=(np.array([0.0, 1.0, 2.0]), 2.0))


def test_array_bounds_shapes_must_broadcast():
    with pytest.raises(ParameterError, match=r"shape \(2,\) and upper bound of shape \(3,\)"):
        Parameter("a", 0.5, bounds=(np.zeros(2), np.ones(3)))


def test_fixed_and_tied_is_error():
    with pytest.raises(
        ParameterError,
        match=re.escape("Parameter 'b': cannot be both fixed and tied (tied='2 * a')"),
    ):
        Parameter("b", 1.0, fixed=True, tied="2 * a")
    p = Parameter("b", 1.0, tied="2 * a")
    with pytest.raises(ParameterError, match="cannot be both fixed and tied"):
        p.fixed = True
    assert p.fixed is False  # unchanged after the failed update


def test_tied_checks():
    with pytest.raises(ParameterError, match="not a callable"):
        Parameter("b", 1.0, tied=lambda m: 1.0)
    with pytest.raises(ParameterError, match="not valid syntax"):
        Parameter("b", 1.0, tied="2 *")
    with pytest.raises(ParameterError, match="Attribute"):
        Parameter("b", 1.0, tied="os.path.join")
    assert Parameter("b", 1.0, tied=False).tied is None
    assert Parameter("b", 1.0, tied="  a + 1 ").tied == "a + 1"


def test_fixed_must_be_bool():
    with pytest.raises(ParameterError, match="fixed must be True or False, got 'yes'"):
        Parameter("a", fixed="yes")
    assert Parameter("a", fixed=np.True_).fixed is True


@pytest.mark.parametrize("bad", ["1.0", 1 + 2j, True, None, [1, "a"], object()])
def test_bad_values(bad):
    with pytest.raises(ParameterError, match="Parameter 'a': value must be a real number or array"):
        Parameter("a", bad)


@pytest.mark.parametrize("bad", [(0,), (0, 1, 2), 5, np.array([0.0, 1.0])])
def test_bad_bounds_structure(bad):
    with pytest.raises(ParameterError, match="bounds must be a \\(lower, upper\\) tuple"):
        Parameter("a", 0.5, bounds=bad)


def test_bad_name():
    with pytest.raises(ParameterError, match="must be a Python identifier"):
        Parameter("1abc")


def test_setters_validate_and_update_is_atomic():
    p = Parameter("a", 5.0, bounds=(0.0, 10.0))
    with pytest.raises(ParameterError, match="outside its bounds"):
        p.bounds = (20.0, 30.0)
    assert p.bounds == (0.0, 10.0)
    with pytest.raises(ParameterError, match="outside its bounds"):
        p.value = 11.0
    assert p.value == 5.0
    p.update(value=25.0, bounds=(20.0, 30.0))
    assert (p.value, p.bounds) == (25.0, (20.0, 30.0))
    p.lower = 21.0
    p.upper = None
    assert p.bounds == (21.0, None)
    with pytest.raises(ParameterError, match="lower bound 40.0 must be below upper bound 30.0"):
        p.update(bounds=(40.0, 30.0))


def test_failed_quantity_update_keeps_unit():
    p = Parameter("a", 1.0, bounds=(0.0, 2.0))
    with pytest.raises(ParameterError, match="outside its bounds"):
        p.value = 5.0 * u.Jy
    assert p.unit is None and p.value == 1.0


def test_copy_is_independent():
    p = Parameter("a", np.zeros(3), bounds=(np.full(3, -1.0), None))
    q = p.copy()
    q.value[0] = 9.0
    q.lower[1] = -5.0
    assert p.value[0] == 0.0 and p.lower[1] == -1.0
    r = p.copy(name="a_0")
    assert r.name == "a_0" and p.name == "a"


def test_pickle_round_trip():
    p = Parameter(
        "a", np.arange(3.0), bounds=(0.0, None), tied="b + 1", unit="km / s", description="speed"
    )
    back = pickle.loads(pickle.dumps(p))
    np.testing.assert_array_equal(back.value, p.value)
    assert back.bounds == (0.0, None)
    assert back.tied == "b + 1" and back.unit == u.km / u.s and back.description == "speed"


def test_validate_method():
    p = Parameter("a", 1.0)
    p.validate()


def test_parameters_mapping():
    ps = Parameters([Parameter("a", 1.0), Parameter("b", 2.0)])
    assert ps.names == ("a", "b")
    assert list(ps) == ["a", "b"]
    assert len(ps) == 2
    assert list(ps.keys()) == ["a", "b"]
    assert [p.value for p in ps.values()] == [1.0, 2.0]
    assert [(k, v.value) for k, v in ps.items()] == [("a", 1.0), ("b", 2.0)]
    assert "a" in ps and "c" not in ps
    with pytest.raises(KeyError, match="no parameter named 'c'; parameters are: a, b"):
        ps["c"]
    cp = ps.copy()
    cp["a"].value = 5.0
    assert ps["a"].value == 1.0
    assert repr(ps).startswith("Parameters([Parameter('a'")
    with pytest.raises(ParameterError, match="duplicate parameter name 'a'"):
        Parameters([Parameter("a"), Parameter("a")])
    with pytest.raises(ParameterError, match="holds Parameter objects"):
        Parameters([1.0])
