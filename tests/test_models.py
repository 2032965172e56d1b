"""Tests of the model base class, built-ins, ties and composition."""

import pickle
import re

import numpy as np
import pytest
from astropy import units as u
from astropy.modeling import models as am

from parfit.errors import InputError, ModelError, ParameterError
from parfit.models import (
    CompoundModel,
    Const1D,
    Const2D,
    Gaussian1D,
    Gaussian2D,
    Linear1D,
    Lorentz1D,
    Model,
    ParameterSpec,
    Polynomial1D,
    PowerLaw1D,
    Voigt1D,
)

RNG_SEED = 20240611


def _random_params(name, n, rng):
    """Random, well-conditioned parameters for each built-in."""
    if name == "Gaussian1D":
        return np.column_stack(
            [rng.uniform(0.5, 3, n), rng.uniform(-2, 2, n), rng.uniform(0.5, 2, n)]
        )
    if name == "Lorentz1D":
        return np.column_stack(
            [rng.uniform(0.5, 3, n), rng.uniform(-2, 2, n), rng.uniform(0.5, 2, n)]
        )
    if name == "Voigt1D":
        return np.column_stack(
            [
                rng.uniform(-2, 2, n),
                rng.uniform(0.5, 3, n),
                rng.uniform(0.3, 2, n),
                rng.uniform(0.3, 2, n),
            ]
        )
    if name in ("Const1D", "Const2D"):
        return rng.uniform(-3, 3, (n, 1))
    if name == "Linear1D":
        return rng.uniform(-3, 3, (n, 2))
    if name == "Polynomial1D":
        return rng.uniform(-2, 2, (n, 4))
    if name == "PowerLaw1D":
        return np.column_stack(
            [rng.uniform(0.5, 3, n), rng.uniform(0.5, 2, n), rng.uniform(-2, 3, n)]
        )
    if name == "Gaussian2D":
        return np.column_stack(
            [
                rng.uniform(0.5, 3, n),
                rng.uniform(-1, 1, n),
                rng.uniform(-1, 1, n),
                rng.uniform(0.5, 2, n),
                rng.uniform(0.5, 2, n),
                rng.uniform(-3, 3, n),
            ]
        )
    raise AssertionError(name)


BUILTINS = {
    "Gaussian1D": (Gaussian1D, lambda: am.Gaussian1D()),
    "Lorentz1D": (Lorentz1D, lambda: am.Lorentz1D()),
    "Voigt1D": (Voigt1D, lambda: am.Voigt1D()),
    "Const1D": (Const1D, lambda: am.Const1D()),
    "Linear1D": (Linear1D, lambda: am.Linear1D()),
    "Polynomial1D": (lambda **kw: Polynomial1D(3, **kw), lambda: am.Polynomial1D(3)),
    "PowerLaw1D": (PowerLaw1D, lambda: am.PowerLaw1D()),
    "Gaussian2D": (Gaussian2D, lambda: am.Gaussian2D()),
    "Const2D": (Const2D, lambda: am.Const2D()),
}


def _inputs(name, rng, n_samples=25):
    if name in ("Gaussian2D", "Const2D"):
        return (rng.uniform(-3, 3, n_samples), rng.uniform(-3, 3, n_samples))
    if name == "PowerLaw1D":
        return (rng.uniform(0.2, 5, n_samples),)
    return (rng.uniform(-4, 4, n_samples),)


def _fd_jacobian(model, xs, params, rel=1e-6):
    """Slow reference: per-parameter central differences of evaluate()."""
    n_fits, n_params = params.shape
    cols = []
    for i in range(n_params):
        h = rel * np.maximum(np.abs(params[:, i]), 1.0)
        up = params.copy()
        down = params.copy()
        up[:, i] += h
        down[:, i] -= h
        cols.append((model.evaluate(*xs, up) - model.evaluate(*xs, down)) / (2 * h[:, None]))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_defaults_and_bounds_match_astropy(name):
    ours_cls, theirs_factory = BUILTINS[name]
    ours = ours_cls()
    theirs = theirs_factory()
    assert ours.param_names == theirs.param_names
    for pname in ours.param_names:
        assert ours.parameters[pname].value == float(getattr(theirs, pname).value)
        assert ours.parameters[pname].bounds == theirs.bounds[pname]


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_evaluate_matches_astropy(name):
    rng = np.random.default_rng(RNG_SEED)
    ours_cls, theirs_factory = BUILTINS[name]
    model = ours_cls()
    params = _random_params(name, 7, rng)
    xs = _inputs(name, rng)
    out = model.evaluate(*xs, params)
    assert out.shape == (7, xs[0].size) and out.dtype == np.float64
    for k in range(7):
        theirs = theirs_factory()
        theirs.parameters = params[k]
        np.testing.assert_allclose(out[k], theirs(*xs), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_evaluate_per_fit_x(name):
    rng = np.random.default_rng(RNG_SEED + 1)
    ours_cls, _ = BUILTINS[name]
    model = ours_cls()
    params = _random_params(name, 4, rng)
    xs_per_fit = [
        np.stack([_inputs(name, rng, 9)[i] for _ in range(4)]) for i in range(model.n_inputs)
    ]
    out = model.evaluate(*xs_per_fit, params)
    for k in range(4):
        row = model.evaluate(*[x[k] for x in xs_per_fit], params[k : k + 1])
        np.testing.assert_array_equal(out[k], row[0])


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_analytic_jacobian_matches_finite_differences(name):
    rng = np.random.default_rng(RNG_SEED + 2)
    ours_cls, _ = BUILTINS[name]
    model = ours_cls()
    assert type(model).has_analytic_jacobian
    params = _random_params(name, 6, rng)
    xs = _inputs(name, rng)
    jac = model.jacobian(*xs, params)
    assert jac.shape == (6, xs[0].size, params.shape[1])
    np.testing.assert_allclose(jac, _fd_jacobian(model, xs, params), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_analytic_jacobian_matches_astropy_fit_deriv(name):
    rng = np.random.default_rng(RNG_SEED + 3)
    ours_cls, theirs_factory = BUILTINS[name]
    model = ours_cls()
    params = _random_params(name, 3, rng)
    xs = _inputs(name, rng)
    jac = model.jacobian(*xs, params)
    for k in range(3):
        theirs = theirs_factory()
        if theirs.fit_deriv is None:
            pytest.skip(f"astropy's {name} has no analytic derivative")
        theirs.parameters = params[k]
        deriv = theirs.fit_deriv(*xs, *params[k])
        deriv = np.asarray(deriv)
        if deriv.shape[0] != params.shape[1]:  # Polynomial1D returns (n_samples, n_params)
            deriv = deriv.T
        expected = np.stack([np.broadcast_to(d, xs[0].shape) for d in deriv], axis=-1)
        np.testing.assert_allclose(jac[k], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_finite_difference_fallback_matches_analytic(name):
    rng = np.random.default_rng(RNG_SEED + 4)
    ours_cls, _ = BUILTINS[name]
    model = ours_cls()
    params = _random_params(name, 5, rng)
    xs = _inputs(name, rng)
    fd = np.empty((5, xs[0].size, params.shape[1]))
    prepared = [x[None, :] for x in xs]
    Model._fd_jac_into(model, prepared, params, fd)
    np.testing.assert_allclose(fd, model.jacobian(*xs, params), rtol=1e-7, atol=1e-9)


def test_voigt_matches_astropy_default_method_closely():
    x = np.linspace(-10, 10, 201)
    params = np.array([[0.3, 2.0, 0.7, 1.3]])
    theirs = am.Voigt1D(x_0=0.3, amplitude_L=2.0, fwhm_L=0.7, fwhm_G=1.3)
    np.testing.assert_allclose(Voigt1D().evaluate(x, params)[0], theirs(x), rtol=1e-12)


# ----------------------------------------------------------------------
# user models


class Exponential1D(Model):
    """Only _evaluate: Jacobian by finite differences."""

    param_specs = (
        ParameterSpec("amplitude", 1.0, unit="y"),
        ParameterSpec("tau", 1.0, bounds=(0.0, None), unit="x"),
    )

    def _evaluate(self, x, amplitude, tau):
        return amplitude * np.exp(-x / tau)


class Exponential1DAnalytic(Exponential1D):
    def _jacobian(self, x, amplitude, tau):
        e = np.exp(-x / tau)
        return [e, amplitude * e * x / tau**2]


def test_user_model_fd_jacobian():
    assert Exponential1D.has_analytic_jacobian is False
    assert Exponential1DAnalytic.has_analytic_jacobian is True
    rng = np.random.default_rng(RNG_SEED + 5)
    x = rng.uniform(0, 5, 30)
    params = np.column_stack([rng.uniform(0.5, 2, 8), rng.uniform(0.5, 3, 8)])
    fd = Exponential1D().jacobian(x, params)
    exact = Exponential1DAnalytic().jacobian(x, params)
    np.testing.assert_allclose(fd, exact, rtol=1e-8, atol=1e-10)
    # per-fit x goes through the tiled path
    xx = np.broadcast_to(x, (8, 30))
    np.testing.assert_allclose(Exponential1D().jacobian(xx, params), exact, rtol=1e-8, atol=1e-10)


def test_user_model_defaults_and_call():
    m = Exponential1D(tau=2.0)
    assert m.param_names == ("amplitude", "tau")
    assert repr(m) == "<Exponential1D(amplitude=1.0, tau=2.0)>"
    np.testing.assert_allclose(m(np.array([0.0, 2.0])), [1.0, np.exp(-1.0)], rtol=1e-15)
    with pytest.raises(ParameterError, match="outside its bounds"):
        Exponential1D(tau=-1.0)


def test_user_model_declaration_errors():
    with pytest.raises(ModelError, match="parameter 'a' declared twice"):
        type("Bad", (Model,), {"param_specs": (ParameterSpec("a", 1.0), ParameterSpec("a", 2.0))})
    with pytest.raises(ModelError, match="clashes with a Model attribute"):
        type("Bad", (Model,), {"param_specs": (ParameterSpec("copy", 1.0),)})
    with pytest.raises(ModelError, match="parameter name 'name' clashes with a Model attribute"):
        type("Bad", (Model,), {"param_specs": (ParameterSpec("name", 1.0),)})
    with pytest.raises(ModelError, match="must hold ParameterSpec objects"):
        type("Bad", (Model,), {"param_specs": ("a",)})
    with pytest.raises(ModelError, match="n_inputs must be 1 or 2"):
        type("Bad", (Model,), {"n_inputs": 3})


class WrongShape(Model):
    param_specs = (ParameterSpec("a", 1.0),)

    def _evaluate(self, x, a):
        return np.ones(3)


class ComplexOut(Model):
    param_specs = (ParameterSpec("a", 1.0),)

    def _evaluate(self, x, a):
        return a * x * 1j


class Float32Out(Model):
    param_specs = (ParameterSpec("a", 1.0),)

    def _evaluate(self, x, a):
        return (a * x).astype(np.float32)


def test_model_output_checks():
    x = np.arange(5.0)
    with pytest.raises(
        ModelError, match=re.escape("WrongShape returned an array of shape (3,); expected (2, 5)")
    ):
        WrongShape().evaluate(x, np.ones((2, 1)))
    with pytest.raises(ModelError, match="returned values of dtype complex128"):
        ComplexOut().evaluate(x, np.ones((2, 1)))
    out = Float32Out().evaluate(x, np.ones((2, 1)))
    assert out.dtype == np.float64


# ----------------------------------------------------------------------
# construction and parameter access


def test_positional_and_keyword_values():
    g = Gaussian1D(2.0, 1.0, 3.0)
    assert [g.parameters[n].value for n in g.param_names] == [2.0, 1.0, 3.0]
    g = Gaussian1D(2.0, stddev=3.0)
    assert (g.amplitude.value, g.mean.value, g.stddev.value) == (2.0, 0.0, 3.0)
    with pytest.raises(ModelError, match="parameter 'amplitude' given twice"):
        Gaussian1D(2.0, amplitude=3.0)
    with pytest.raises(ModelError, match="at most 3 positional parameter values"):
        Gaussian1D(1, 2, 3, 4)
    with pytest.raises(
        ModelError,
        match=re.escape(
            "Gaussian1D: unknown parameter(s) 'sigma'; parameters are: amplitude, mean, stddev"
        ),
    ):
        Gaussian1D(sigma=1.0)
    with pytest.raises(ModelError, match="bounds given for unknown parameter\\(s\\) 'sigma'"):
        Gaussian1D(bounds={"sigma": (0, 1)})


def test_attribute_access_and_setting():
    g = Gaussian1D(bounds={"stddev": (0, None)}, fixed={"mean": True}, name="line")
    assert g.stddev.bounds == (0.0, None)
    assert g.mean.fixed is True
    assert g.name == "line"
    g.mean = 3.0
    assert g.mean.value == 3.0
    g.mean.bounds = (0, 10)
    g.mean.fixed = False
    g.mean.tied = "amplitude * 2"
    assert g.parameters["mean"].tied == "amplitude * 2"
    g.amplitude = np.ones((2, 2))
    assert g.amplitude.is_array
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        g.nope  # noqa: B018
    assert "stddev" in dir(g)
    from parfit.models.parameters import Parameter

    g.stddev = Parameter("other", 4.0, bounds=(1.0, 5.0))
    assert g.stddev.name == "stddev" and g.stddev.bounds == (1.0, 5.0)


def test_quantity_values():
    g = Gaussian1D(amplitude=3 * u.Jy, mean=2 * u.um, stddev=100 * u.nm)
    assert g.amplitude.unit == u.Jy and g.mean.unit == u.um and g.stddev.unit == u.nm


def test_polynomial_constructor():
    p = Polynomial1D(2, c0=1, c1=2)
    assert p.param_names == ("c0", "c1", "c2")
    assert [p.parameters[n].value for n in p.param_names] == [1.0, 2.0, 0.0]
    assert repr(p) == "<Polynomial1D(degree=2, c0=1.0, c1=2.0, c2=0.0)>"
    assert Polynomial1D(0)([1.0, 2.0]).tolist() == [0.0, 0.0]
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ModelError, match="degree must be a non-negative integer"):
            Polynomial1D(bad)


def test_repr_forms():
    assert repr(Gaussian1D()) == "<Gaussian1D(amplitude=1.0, mean=0.0, stddev=1.0)>"
    g = Gaussian1D(amplitude=np.ones((64, 64)), name="g")
    assert (
        repr(g) == "<Gaussian1D(amplitude=array(shape=(64, 64)), mean=0.0, stddev=1.0, name='g')>"
    )
    c = Gaussian1D() + Const1D() * Const1D()
    assert repr(c) == (
        "<CompoundModel(Gaussian1D + [Const1D * Const1D]: amplitude_0=1.0, mean_0=0.0, "
        "stddev_0=1.0, amplitude_1=1.0, amplitude_2=1.0)>"
    )


# ----------------------------------------------------------------------
# batched interface checks


def test_evaluate_argument_checks():
    g = Gaussian1D()
    x = np.arange(4.0)
    with pytest.raises(InputError, match=re.escape("params must have shape (n_fits, 3)")):
        g.evaluate(x, np.ones(3))
    with pytest.raises(InputError, match="takes 1 independent variable"):
        g.evaluate(x, x, np.ones((1, 3)))
    with pytest.raises(InputError, match="independent variables must have shape"):
        g.evaluate(np.ones((3, 4)), np.ones((2, 3)))
    with pytest.raises(InputError, match="different numbers of samples: 4 and 5"):
        Gaussian2D().evaluate(x, np.arange(5.0), np.ones((1, 6)))


def test_evaluate_read_only_inputs_untouched():
    x = np.linspace(-1, 1, 7)
    params = np.array([[1.0, 0.0, 1.0], [2.0, 0.5, 0.3]])
    x.flags.writeable = False
    params.flags.writeable = False
    x_before, p_before = x.copy(), params.copy()
    for model in (Gaussian1D(), Gaussian1D() * Const1D() + Linear1D()):
        p = params if model.n_params == 3 else np.ones((2, model.n_params))
        p.flags.writeable = False
        out = model.evaluate(x, p)
        out[...] = 0.0  # result is writeable
        model.jacobian(x, p)
        model.apply_ties(p)
        model.tie_jacobian(p)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(params, p_before)


def test_const_output_is_full_and_writeable():
    out = Const1D().evaluate(np.arange(4.0), np.array([[2.0], [3.0]]))
    assert out.shape == (2, 4) and out.flags.writeable
    np.testing.assert_array_equal(out, [[2.0] * 4, [3.0] * 4])


# ----------------------------------------------------------------------
# convenience call, starting values and bounds


def test_call_shapes():
    g = Gaussian1D()
    assert g(np.zeros(5)).shape == (5,)
    assert g(np.zeros((2, 5))).shape == (2, 5)
    assert np.shape(g(0.0)) == ()
    m = Gaussian1D(mean=np.zeros((3, 4)), stddev=np.ones(4))
    out = m(np.linspace(-1, 1, 5))
    assert out.shape == (3, 4, 5)
    np.testing.assert_allclose(out[1, 2], Gaussian1D()(np.linspace(-1, 1, 5)), rtol=1e-15)
    g2 = Gaussian2D(amplitude=np.arange(1.0, 3.0))
    assert g2(np.zeros((4, 3)), np.zeros((4, 3))).shape == (2, 4, 3)
    with pytest.raises(InputError, match="takes 2 input"):
        g2(np.zeros(3))


def test_call_applies_ties():
    m = Gaussian1D(mean=1.0) + Gaussian1D(mean=5.0)
    m.mean_1.tied = "mean_0 + 2"
    expected = Gaussian1D(mean=1.0)(0.5) + Gaussian1D(mean=3.0)(0.5)
    assert float(m(0.5)) == pytest.approx(float(expected), rel=1e-14)


def test_starting_values_broadcasting():
    m = Gaussian1D(amplitude=2.0, mean=np.arange(6.0).reshape(1, 6), stddev=np.full((5, 1), 3.0))
    sv = m.starting_values((5, 6))
    assert sv.shape == (3, 5, 6) and sv.dtype == np.float64
    assert np.all(sv[0] == 2.0)
    np.testing.assert_array_equal(sv[1], np.broadcast_to(np.arange(6.0), (5, 6)))
    assert np.all(sv[2] == 3.0)
    assert Gaussian1D().starting_values(()).shape == (3,)
    bad = Gaussian1D(mean=np.zeros((3, 4)))
    with pytest.raises(
        ParameterError,
        match=re.escape(
            "Parameter 'mean' has a per-pixel value of shape (3, 4) that does not broadcast "
            "to the non-fitting shape (5, 6)"
        ),
    ):
        bad.starting_values((5, 6))


def test_bounds_arrays():
    m = Gaussian1D(bounds={"amplitude": (0, None), "mean": (np.array([-1.0, -2.0]), 3.0)})
    lower, upper = m.bounds_arrays((4, 2))
    assert lower.shape == upper.shape == (3, 4, 2)
    assert np.all(lower[0] == 0.0) and np.all(upper[0] == np.inf)
    np.testing.assert_array_equal(lower[1], np.broadcast_to([-1.0, -2.0], (4, 2)))
    assert np.all(upper[1] == 3.0)
    assert np.all(lower[2] == np.finfo(np.float32).tiny)
    with pytest.raises(ParameterError, match="per-pixel lower bound of shape \\(2,\\)"):
        m.bounds_arrays((4, 3))


# ----------------------------------------------------------------------
# fixed, tied, validation


def test_free_mask():
    m = Gaussian1D(fixed={"mean": True}) + Gaussian1D(tied={"stddev": "2 * mean"})
    np.testing.assert_array_equal(m.free_mask, [True, False, True, True, True, False])
    assert m.n_free == 4
    assert m.stddev_1.tied == "2 * mean_1"


def test_apply_ties_chain():
    m = Gaussian1D() + Gaussian1D() + Gaussian1D()
    m.stddev_2.tied = "stddev_1 * 2"  # c tied to b
    m.stddev_1.tied = "stddev_0 + 1"  # b tied to a
    params = np.tile(np.arange(1.0, 10.0), (3, 1))
    params[:, 2] = [1.0, 2.0, 3.0]
    out = m.apply_ties(params)
    np.testing.assert_array_equal(out[:, 5], [2.0, 3.0, 4.0])
    np.testing.assert_array_equal(out[:, 8], [4.0, 6.0, 8.0])
    assert params[0, 5] == 6.0  # input untouched
    free = out[:, m.free_mask]
    np.testing.assert_array_equal(free, params[:, m.free_mask])


def test_apply_ties_constant_expression_and_nan_without_warning():
    m = Gaussian1D(tied={"mean": "3.5"}) + Gaussian1D(tied={"stddev": "sqrt(amplitude)"})
    params = np.array([[1.0, 0.0, 1.0, -4.0, 0.0, 1.0]])
    out = m.apply_ties(params)
    assert out[0, 1] == 3.5
    assert np.isnan(out[0, 5])


def test_tie_errors():
    g = Gaussian1D(tied={"mean": "mean + 1"})
    with pytest.raises(
        ParameterError,
        match=re.escape(
            "Parameter 'mean': tied expression 'mean + 1' refers to the parameter itself"
        ),
    ):
        g.validate()
    m = Gaussian1D() + Gaussian1D()
    m.mean_0.tied = "mean_1"
    m.mean_1.tied = "stddev_0"
    m.stddev_0.tied = "mean_0 * 2"
    with pytest.raises(
        ParameterError,
        match=re.escape("tied parameters form a cycle: mean_0 -> mean_1 -> stddev_0 -> mean_0"),
    ):
        m.validate()
    with pytest.raises(ParameterError, match="cycle"):
        m.apply_ties(np.ones((1, 6)))
    m.stddev_0.tied = None
    m.validate()
    m.amplitude_0.tied = "mean_0 + foo"
    with pytest.raises(
        ParameterError,
        match=re.escape(
            "Parameter 'amplitude_0': tied expression 'mean_0 + foo' uses unknown name 'foo'; "
            "known names: amplitude_0, mean_0, stddev_0, amplitude_1, mean_1, stddev_1"
        ),
    ):
        m.validate()


def test_validate_catches_parameter_problems():
    g = Gaussian1D()
    g.validate()
    # bypass the setters to simulate state changed behind the parameter's back
    g.stddev._value = -1.0
    with pytest.raises(ParameterError, match="starting value -1.0 is outside its bounds"):
        g.validate()
    g.stddev._value = float("nan")
    with pytest.raises(ParameterError, match="is not finite"):
        g.validate()


def test_tie_jacobian_against_finite_differences():
    m = Gaussian1D() + Gaussian1D() + Const1D()
    m.mean_1.tied = "mean_0 + 1200"
    m.stddev_1.tied = "sqrt(stddev_0 * amplitude_0)"
    m.amplitude_2.tied = "stddev_1 ** 2 / 3"  # chain through another tie
    m.amplitude_1.fixed = True
    rng = np.random.default_rng(RNG_SEED + 6)
    params = rng.uniform(0.5, 2.0, (4, m.n_params))
    d = m.tie_jacobian(params)
    free = np.flatnonzero(m.free_mask)
    assert d.shape == (4, m.n_params, free.size)
    # reference: differentiate apply_ties w.r.t. each free parameter
    base = m.apply_ties(params)
    for k, j in enumerate(free):
        h = 1e-6
        up = base.copy()
        dn = base.copy()
        up[:, j] += h
        dn[:, j] -= h
        ref = (m.apply_ties(up) - m.apply_ties(dn)) / (2 * h)
        np.testing.assert_allclose(d[:, :, k], ref, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(d[:, 3, :], 0.0)  # fixed amplitude_1
    # J_free = J_full @ D is consistent with differentiating through the ties
    x = np.linspace(-3, 3, 11)
    j_free = m.jacobian(x, base) @ d
    assert j_free.shape == (4, 11, free.size)


def test_tie_jacobian_without_ties_is_selection():
    g = Gaussian1D(fixed={"mean": True})
    d = g.tie_jacobian(np.ones((2, 3)))
    np.testing.assert_array_equal(d[0], [[1, 0], [0, 0], [0, 1]])


# ----------------------------------------------------------------------
# copies, with_values, pickling


def test_copy_and_with_values():
    g = Gaussian1D(mean=np.zeros(3), tied={"amplitude": "stddev * 2"})
    h = g.copy()
    h.mean.value[0] = 5.0
    assert g.mean.value[0] == 0.0
    r = g.with_values([2.0, 1.0, 3.0])
    assert (r.amplitude.value, r.mean.value, r.stddev.value) == (2.0, 1.0, 3.0)
    assert r.amplitude.tied == "stddev * 2"
    maps = g.with_values(np.ones((3, 2, 2)))
    assert maps.mean.shape == (2, 2)
    with pytest.raises(ParameterError, match="expected 3 values"):
        g.with_values([1.0, 2.0])
    with pytest.raises(ParameterError, match="unknown parameter\\(s\\) 'sigma'"):
        g.with_values({"sigma": 1.0})
    with pytest.raises(ParameterError, match="outside its bounds"):
        g.with_values({"stddev": -1.0})


@pytest.mark.parametrize(
    "model",
    [
        Gaussian1D(mean=np.arange(4.0), bounds={"stddev": (0.1, 5)}, name="g"),
        Polynomial1D(2, c1=3.0),
        Voigt1D(),
        Gaussian1D()
        + Gaussian1D(tied={"stddev": "mean / 10"}) * Const1D(fixed={"amplitude": True}),
        Gaussian2D(theta=0.3) - Gaussian2D(),
        Exponential1D(),
    ],
)
def test_pickle_round_trip(model):
    model.validate()
    model.apply_ties(np.ones((1, model.n_params)))  # populate the tie cache
    back = pickle.loads(pickle.dumps(model))
    assert type(back) is type(model)
    assert back.param_names == model.param_names
    assert repr(back) == repr(model)
    for name in model.param_names:
        a, b = model.parameters[name], back.parameters[name]
        np.testing.assert_array_equal(a.value, b.value)
        assert (a.bounds, a.fixed, a.tied, a.unit) == (b.bounds, b.fixed, b.tied, b.unit)
    rng = np.random.default_rng(1)
    xs = [rng.uniform(0.5, 2, 9) for _ in range(model.n_inputs)]
    params = rng.uniform(0.5, 2, (3, model.n_params))
    np.testing.assert_array_equal(back.evaluate(*xs, params), model.evaluate(*xs, params))
    np.testing.assert_array_equal(back.jacobian(*xs, params), model.jacobian(*xs, params))


# ----------------------------------------------------------------------
# composition


@pytest.mark.parametrize(
    "build",
    [
        lambda M: M.Gaussian1D() + M.Gaussian1D() + M.Const1D(),
        lambda M: M.Gaussian1D() + M.Gaussian1D() * M.Const1D(),
        lambda M: (M.Gaussian1D() + M.Const1D()) + (M.Lorentz1D() + M.Polynomial1D(2)),
        lambda M: (M.Voigt1D() - M.Linear1D()) / M.PowerLaw1D(),
        lambda M: M.Gaussian2D() * M.Gaussian2D() + M.Gaussian2D(),
    ],
)
def test_compound_names_and_values_match_astropy(build):
    import parfit.models as pm

    ours = build(pm)
    theirs = build(am)
    assert ours.param_names == theirs.param_names
    rng = np.random.default_rng(RNG_SEED + 7)
    params = rng.uniform(0.5, 2.0, (5, ours.n_params))
    xs = [rng.uniform(0.5, 3, 13) for _ in range(ours.n_inputs)]
    out = ours.evaluate(*xs, params)
    for k in range(5):
        theirs.parameters = params[k]
        np.testing.assert_allclose(out[k], theirs(*xs), rtol=1e-12)
    jac = ours.jacobian(*xs, params)
    np.testing.assert_allclose(jac, _fd_jacobian(ours, xs, params), rtol=1e-6, atol=1e-8)
    assert ours.has_analytic_jacobian


def test_compound_with_fd_leaf():
    m = Exponential1D() * Gaussian1D() + Const1D()
    assert not m.has_analytic_jacobian
    rng = np.random.default_rng(RNG_SEED + 8)
    params = rng.uniform(0.5, 2.0, (4, m.n_params))
    x = rng.uniform(0, 3, 10)
    np.testing.assert_allclose(
        m.jacobian(x, params), _fd_jacobian(m, [x], params), rtol=1e-6, atol=1e-8
    )


def test_compound_copies_parameter_attributes_and_operands():
    g1 = Gaussian1D(amplitude=2 * u.Jy, bounds={"mean": (-1, 1)}, fixed={"stddev": True})
    g2 = Gaussian1D(tied={"stddev": "2 * stddev"})  # invalid on its own, renamed below
    m = g1 + g2
    assert m.amplitude_0.unit == u.Jy and m.amplitude_0.value == 2.0
    assert m.mean_0.bounds == (-1.0, 1.0)
    assert m.stddev_0.fixed is True
    assert m.stddev_1.tied == "2 * stddev_1"
    g1.amplitude = 9.0
    assert m.amplitude_0.value == 2.0  # operands are copied


def test_nested_compound_tie_renaming():
    inner = Gaussian1D() + Gaussian1D()
    inner.mean_1.tied = "mean_0 + 1200"
    outer = Const1D() + inner
    assert outer.param_names == (
        "amplitude_0",
        "amplitude_1",
        "mean_1",
        "stddev_1",
        "amplitude_2",
        "mean_2",
        "stddev_2",
    )
    assert outer.mean_2.tied == "mean_1 + 1200"
    outer2 = outer + (Gaussian1D(tied={"mean": "stddev * 3"}) + Const1D())
    assert outer2.mean_2.tied == "mean_1 + 1200"
    assert outer2.mean_3.tied == "stddev_3 * 3"
    outer2.validate()


def test_leaves_are_copies_with_current_values():
    m = Gaussian1D() + Gaussian1D(tied={"stddev": "mean / 2"})
    m.mean_1.value = 4.0
    m.amplitude_1.tied = "amplitude_0"
    leaves = m.leaves
    assert [type(leaf).__name__ for leaf in leaves] == ["Gaussian1D", "Gaussian1D"]
    assert leaves[1].mean.value == 4.0
    assert leaves[1].stddev.tied == "mean / 2"  # renamed back to local names
    assert leaves[1].amplitude.tied is None  # refers to another leaf: dropped
    leaves[1].mean.value = 7.0
    assert m.mean_1.value == 4.0
    assert repr(m.left) == "<Gaussian1D(amplitude=1.0, mean=0.0, stddev=1.0)>"
    assert isinstance(m.right, Gaussian1D)
    assert m.operator == "+" and m.n_leaves == 2


def test_composition_errors():
    with pytest.raises(
        ModelError, match="cannot combine Gaussian1D .*n_inputs=1.* with Gaussian2D .*n_inputs=2"
    ):
        Gaussian1D() + Gaussian2D()
    with pytest.raises(TypeError):
        Gaussian1D() + 1.0
    with pytest.raises(TypeError):
        2.0 * Gaussian1D()
    with pytest.raises(ModelError, match="unknown operator '\\*\\*'"):
        CompoundModel("**", Gaussian1D(), Gaussian1D())
    with pytest.raises(ModelError, match="operands of a compound model must be models"):
        CompoundModel("+", Gaussian1D(), 3.0)


# ----------------------------------------------------------------------
# units


def test_parameter_units_builtins():
    x, y = u.um, u.Jy
    assert Gaussian1D()._parameter_units((x,), y) == {"amplitude": y, "mean": x, "stddev": x}
    assert Lorentz1D()._parameter_units((x,), y) == {"amplitude": y, "x_0": x, "fwhm": x}
    assert Voigt1D()._parameter_units((x,), y) == {
        "x_0": x,
        "amplitude_L": y,
        "fwhm_L": x,
        "fwhm_G": x,
    }
    assert Const1D()._parameter_units((x,), y) == {"amplitude": y}
    assert Linear1D()._parameter_units((x,), y) == {"slope": y / x, "intercept": y}
    assert Polynomial1D(2)._parameter_units((x,), y) == {"c0": y, "c1": y / x, "c2": y / x**2}
    assert PowerLaw1D()._parameter_units((x,), y) == {"amplitude": y, "x_0": x, "alpha": None}
    assert Gaussian2D()._parameter_units((u.deg, u.arcsec), u.K) == {
        "amplitude": u.K,
        "x_mean": u.deg,
        "y_mean": u.arcsec,
        "x_stddev": u.deg,
        "y_stddev": u.arcsec,
        "theta": u.rad,
    }
    assert Gaussian1D()._parameter_units((None,), None) == {
        "amplitude": None,
        "mean": None,
        "stddev": None,
    }
    with pytest.raises(InputError, match="1 input\\(s\\), got 2 input unit"):
        Gaussian1D()._parameter_units((x, x), y)


def test_parameter_units_compound():
    m = Gaussian1D() * Linear1D() + Const1D()
    units = m._parameter_units((u.um,), u.Jy)
    assert units == {
        "amplitude_0": u.Jy,
        "mean_0": u.um,
        "stddev_0": u.um,
        "slope_1": 1 / u.um,
        "intercept_1": None,
        "amplitude_2": u.Jy,
    }
