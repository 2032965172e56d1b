"""2-D models on the compiled engine: Gaussian2D, CircularGaussian2D and Const2D.

* the compiled and numpy engines agree (the same algorithm, the same
  formulas in the same order) on :func:`parfit.datasets.gaussian2d_cube` and
  on Gpufit's reference problem (a circular Gaussian spot on an offset, 5x5
  pixels, S/N 10), with ties, fixed parameters, masked pixels and inputs
  that vary per fit;
* the compiled fits against an independent oracle, per-fit
  ``scipy.optimize.least_squares`` (trust-region reflective) from the same
  start;
* the compiled values and derivatives of each 2-D component against the
  numpy models and central finite differences.
"""

import numpy as np
import pytest

import parfit
from parfit.datasets import gaussian2d_cube
from parfit.errors import ModelError
from parfit.fitters import BatchedFitter, FitBlock
from parfit.models import CircularGaussian2D, Const2D, Gaussian1D, Gaussian2D

numba = pytest.importorskip("numba", reason="the compiled engine needs numba")

from parfit.fitters import _compiled, _kernel  # noqa: E402  (after the numba check)

TIGHT = dict(ftol=1e-12, xtol=1e-12, gtol=1e-12)


def both_engines(model, block, **options):
    """``{engine: BlockResult}`` of the numpy and compiled engines on ``block``."""
    return {
        engine: BatchedFitter(engine=engine, **options).fit_block(model, block)
        for engine in ("numpy", "compiled")
    }


def assert_engines_agree(results, rtol=1e-6):
    numpy_fit, compiled = results["numpy"], results["compiled"]
    np.testing.assert_array_equal(compiled.status, numpy_fit.status)
    np.testing.assert_allclose(compiled.params, numpy_fit.params, rtol=rtol, atol=0)
    np.testing.assert_allclose(compiled.statistic, numpy_fit.statistic, rtol=rtol)


# ---------------------------------------------------------------------------
# Gpufit's reference problem


def spots(n_fits, seed, size=5):
    """Gpufit's benchmark problem: a circular Gaussian on an offset, ``size x size`` pixels.

    As ``Gpufit_Cpufit_Performance_Comparison.cpp``: truth (amplitude 500,
    centre (size-1)/2, width 1, offset 10) times U(0.9, 1.1) per parameter
    and fit; Gaussian noise of sigma = mean signal over the spot / 10 (S/N
    10); starts the truth times U(0.9, 1.1).

    Returns
    -------
    model, block, truth
    """
    rng = np.random.default_rng(seed)
    g = np.arange(size, dtype=float)
    yy, xx = np.meshgrid(g, g, indexing="ij")
    x, y = xx.ravel(), yy.ravel()
    centre = size / 2 - 0.5
    base = np.array([500.0, centre, centre, 1.0, 10.0])
    truth = base * rng.uniform(0.9, 1.1, (n_fits, 5))
    model = CircularGaussian2D() + Const2D()
    noise = 2 * np.pi * 500.0 / 4.292**2 / 10
    data = model.evaluate(x, y, truth) + rng.normal(0.0, noise, (n_fits, size * size))
    start = truth * rng.uniform(0.9, 1.1, (n_fits, 5))
    bounds = BatchedFitter().parameter_arrays(model)
    lower = np.tile([entry[2] for entry in bounds], (n_fits, 1))
    upper = np.tile([entry[3] for entry in bounds], (n_fits, 1))
    block = FitBlock(
        x=(x, y),
        y=data,
        weights=None,
        valid=np.isfinite(data),
        p0=start,
        lower=lower,
        upper=upper,
        sample_shape=(size, size),
    )
    return model, block, truth


def test_gpufit_problem_engines_agree():
    model, block, truth = spots(300, seed=1)
    results = both_engines(model, block)
    assert (results["compiled"].status == parfit.Status.OK).mean() > 0.99
    assert_engines_agree(results)
    # The fits find the spots: the centre within a tenth of a pixel on most fits.
    err = np.abs(results["compiled"].params[:, 1] - truth[:, 1])
    assert np.median(err) < 0.1


def test_gpufit_problem_with_masked_pixels_and_per_fit_inputs():
    # Blank pixels (the compact path of the kernel) and an x grid shifted per
    # fit while y stays shared: inputs of different leading sizes.
    model, block, _ = spots(120, seed=2)
    rng = np.random.default_rng(3)
    y = block.y.copy()
    y[rng.random(y.shape) < 0.08] = np.nan
    shift = rng.uniform(-0.3, 0.3, (len(y), 1))
    x = block.x[0][None, :] + shift
    p0 = block.p0.copy()
    p0[:, 1] += shift[:, 0]
    moved = FitBlock(
        x=(x, block.x[1]),
        y=y,
        weights=None,
        valid=np.isfinite(y),
        p0=p0,
        lower=block.lower,
        upper=block.upper,
        sample_shape=block.sample_shape,
    )
    results = both_engines(model, moved)
    assert (results["compiled"].status == parfit.Status.OK).mean() > 0.95
    assert_engines_agree(results)


def test_inputs_are_stacked_per_fit():
    shared = np.arange(4.0)[None, :]
    per_fit = np.arange(12.0).reshape(3, 4)
    stacked = _compiled._inputs([per_fit, shared])
    assert stacked.shape == (3, 2, 4) and stacked.flags.c_contiguous
    np.testing.assert_array_equal(stacked[:, 0], per_fit)
    np.testing.assert_array_equal(stacked[:, 1], np.broadcast_to(shared, (3, 4)))
    assert _compiled._inputs([shared, shared]).shape == (1, 2, 4)
    one = np.ascontiguousarray(per_fit)
    assert _compiled._inputs([one]) is one  # one input: passed as it is, no copy


def oracle_fit(p0, lower, upper, x, y, data):
    """Per-fit scipy ``least_squares`` of the circular Gaussian on an offset, written out."""
    from scipy.optimize import least_squares

    def residuals(p):
        a, x0, y0, s, c = p
        return a * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * s * s)) + c - data

    def jacobian(p):
        a, x0, y0, s, c = p
        r2 = (x - x0) ** 2 + (y - y0) ** 2
        e = np.exp(-r2 / (2 * s * s))
        return np.column_stack(
            [
                e,
                a * e * (x - x0) / s**2,
                a * e * (y - y0) / s**2,
                a * e * r2 / s**3,
                np.ones_like(x),
            ]
        )

    fit = least_squares(residuals, p0, jac=jacobian, bounds=(lower, upper), method="trf", **TIGHT)
    return fit.x, 2 * fit.cost


def test_gpufit_problem_matches_scipy_least_squares():
    model, block, _ = spots(30, seed=4)
    ours = BatchedFitter(engine="compiled", **TIGHT).fit_block(model, block)
    x, y = block.x
    for i in range(block.n_fits):
        params, chi2 = oracle_fit(block.p0[i], block.lower[i], block.upper[i], x, y, block.y[i])
        # Measured: within 4e-14 of scipy's parameters.
        np.testing.assert_allclose(ours.params[i], params, rtol=1e-9, err_msg=str(i))
        np.testing.assert_allclose(ours.statistic[i], chi2, rtol=1e-12)


# ---------------------------------------------------------------------------
# Gaussian2D


@pytest.fixture(scope="module")
def images():
    return gaussian2d_cube((12, 16, 16), seed=5)


def fit_images(cube, model, engine, **options):
    return parfit.parallel_fit(
        model,
        cube.data,
        world=cube.world,
        fitting_axes=(1, 2),
        fitter=BatchedFitter(engine=engine, **options),
        scheduler="synchronous",
    )


def test_gaussian2d_cube_engines_agree(images):
    out = {engine: fit_images(images, images.model, engine) for engine in ("numpy", "compiled")}
    np.testing.assert_array_equal(out["compiled"].status, out["numpy"].status)
    assert (out["compiled"].status == parfit.Status.OK).all()
    for name in images.model.param_names:
        np.testing.assert_allclose(
            out["compiled"].parameters[name], out["numpy"].parameters[name], rtol=1e-6
        )
    np.testing.assert_allclose(
        out["compiled"].parameters["amplitude"], images.truth["amplitude"], rtol=0.05
    )


@pytest.mark.parametrize(
    ("tie", "fixed"),
    [
        ("0.6 * x_stddev", False),  # an ellipse of fixed axis ratio (theta still determined)
        (None, True),
        ("x_stddev", True),  # a circle: theta means nothing, so it is fixed
    ],
)
def test_gaussian2d_tie_and_fixed_theta_engines_agree(images, tie, fixed):
    model = images.model.copy()
    model.y_stddev.tied = tie
    model.theta.fixed = fixed
    assert _compiled.unsupported_reason(model) == ""
    out = {engine: fit_images(images, model, engine) for engine in ("numpy", "compiled")}
    np.testing.assert_array_equal(out["compiled"].status, out["numpy"].status)
    assert (out["compiled"].status == parfit.Status.OK).all()
    for name in model.param_names:
        np.testing.assert_allclose(
            out["compiled"].parameters[name], out["numpy"].parameters[name], rtol=1e-6
        )
    fitted = out["compiled"].parameters
    if tie is not None:
        factor = 0.6 if tie.startswith("0.6") else 1.0
        np.testing.assert_allclose(fitted["y_stddev"], factor * fitted["x_stddev"], rtol=1e-15)
    if fixed:
        np.testing.assert_array_equal(fitted["theta"], model.theta.value)


def test_gaussian2d_matches_scipy_least_squares(images):
    from scipy.optimize import least_squares

    g = images.world
    xx, yy = np.meshgrid(g[0], g[1], indexing="ij")
    x, y = xx.ravel(), yy.ravel()
    model = images.model
    start = np.array([getattr(model, name).value for name in model.param_names])
    ours = fit_images(images, model, "compiled", **TIGHT)
    for k in range(images.data.shape[0]):
        data = images.data[k].ravel()

        def residuals(p, data=data):
            a, x0, y0, sx, sy, t = p
            cos, sin = np.cos(t), np.sin(t)
            u = (x - x0) * cos + (y - y0) * sin
            v = -(x - x0) * sin + (y - y0) * cos
            return a * np.exp(-0.5 * (u**2 / sx**2 + v**2 / sy**2)) - data

        fit = least_squares(residuals, start, method="trf", **TIGHT)
        got = np.array([ours.parameters[name][k] for name in model.param_names])
        close = np.all(np.abs(got - fit.x) <= 1e-6 * np.abs(fit.x))
        assert close or ours.statistic[k] <= 2 * fit.cost, (k, got, fit.x)


# ---------------------------------------------------------------------------
# What is compiled, and what is refused


@pytest.mark.parametrize(
    "model",
    [
        Gaussian2D(),
        CircularGaussian2D(),
        Const2D(),
        CircularGaussian2D() + Const2D(),
        Gaussian2D() + Gaussian2D() - Const2D(),
    ],
)
def test_2d_models_are_compiled(model):
    assert _compiled.unsupported_reason(model) == ""
    BatchedFitter(engine="compiled").check(model)  # no longer refused


def test_a_product_of_2d_models_is_compiled():
    # A spot times a fixed transmission, on both engines: * and / of 2-D
    # components go through the same post-order program as 1-D ones.
    _, block, _ = spots(100, seed=11)
    model = CircularGaussian2D() * Const2D(1.0) + Const2D()
    model.amplitude_1.fixed = True
    assert _compiled.unsupported_reason(model) == ""
    p0 = np.insert(block.p0, 4, 1.0, axis=1)
    lower = np.insert(block.lower, 4, -np.inf, axis=1)
    upper = np.insert(block.upper, 4, np.inf, axis=1)
    block = FitBlock(
        x=block.x, y=block.y, weights=None, valid=block.valid, p0=p0, lower=lower, upper=upper,
        sample_shape=block.sample_shape,
    )  # fmt: skip
    assert_engines_agree(both_engines(model, block))


def test_1d_and_2d_components_do_not_mix():
    with pytest.raises(ModelError) as info:
        Gaussian1D() + Const2D()
    assert str(info.value) == (
        "cannot combine Gaussian1D (1-D, n_inputs=1) with Const2D (2-D, n_inputs=2) using '+': "
        "both operands must take the same number of inputs"
    )


# ---------------------------------------------------------------------------
# Values and derivatives of the compiled components


COMPONENTS = [
    (Gaussian2D(), [1.7, 0.3, -0.4, 1.3, 0.8, 0.6]),
    (CircularGaussian2D(), [1.7, 0.3, -0.4, 1.1]),
    (Const2D(), [0.7]),
]


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize(("model", "params"), COMPONENTS, ids=lambda v: type(v).__name__)
def test_compiled_component_values_and_derivatives(model, params, sign):
    described = _compiled.component_codes(model)
    codes, offsets = described.codes, described.offsets
    signs = np.array([sign])
    rng = np.random.default_rng(6)
    x = np.ascontiguousarray(rng.uniform(-3.0, 3.0, (2, 40)))
    n_par, n = len(params), x.shape[1]
    p = np.array(params, dtype=float)

    def values(q):
        f, jfull = np.empty(n), np.zeros((n_par, n))
        _kernel._model_values(codes, offsets, signs, x, q, f, jfull, 0, n)
        return f, jfull

    f, jfull = values(p)
    expected = sign * model.evaluate(x[0], x[1], p[None, :])[0]
    np.testing.assert_allclose(f, expected, rtol=1e-14, atol=1e-15)
    expected_jac = sign * model.jacobian(x[0], x[1], p[None, :])[0].T
    np.testing.assert_allclose(jfull, expected_jac, rtol=1e-13, atol=1e-15)
    for k in range(n_par):
        h = 1e-6 * max(abs(p[k]), 1.0)
        up, down = p.copy(), p.copy()
        up[k] += h
        down[k] -= h
        numeric = (values(up)[0] - values(down)[0]) / (2 * h)
        np.testing.assert_allclose(jfull[k], numeric, rtol=1e-6, atol=1e-8, err_msg=str(k))


def test_circular_gaussian_is_astropy_gaussian2d_with_equal_widths():
    from astropy.modeling import models as am

    rng = np.random.default_rng(7)
    x, y = rng.uniform(-3, 3, (2, 30))
    params = np.array([[1.7, 0.3, -0.4, 1.1]])
    theirs = am.Gaussian2D(1.7, 0.3, -0.4, 1.1, 1.1, 0.0)
    np.testing.assert_allclose(
        CircularGaussian2D().evaluate(x, y, params)[0], theirs(x, y), rtol=1e-14
    )
    deriv = np.asarray(theirs.fit_deriv(x, y, 1.7, 0.3, -0.4, 1.1, 1.1, 0.0))
    jac = CircularGaussian2D().jacobian(x, y, params)[0]
    np.testing.assert_allclose(jac[:, :3], deriv[:3].T, rtol=1e-12, atol=1e-15)
    # One width: the derivative by it is the sum of those by astropy's two widths.
    np.testing.assert_allclose(jac[:, 3], deriv[3] + deriv[4], rtol=1e-12, atol=1e-15)


def test_guess_finds_the_spot():
    model, block, truth = spots(50, seed=8)
    guessed = model.guess(*block.x, y=block.y)
    assert guessed.shape == truth.shape
    # On the median fit: the spot within 15 % of the truth (0.3 pixel for the
    # centre), the offset (10, under noise of sigma 17) within 3 sigma.
    err = np.median(np.abs(guessed - truth), axis=0)
    assert (err[:4] < 0.15 * np.median(truth[:, :4], axis=0)).all(), err
    assert err[4] < 3 * 17.05, err


def test_joint_fit_of_2d_models_engines_agree():
    # Two image stacks of other grids, one model each, a position tied across them:
    # the kernel's joint path (segments of samples) on 2-D inputs.
    first = gaussian2d_cube((6, 16, 16), seed=1)
    second = gaussian2d_cube((6, 12, 12), seed=1)
    spot = CircularGaussian2D(amplitude=1.5, x_mean=6.0, y_mean=6.0, stddev=1.0) + Const2D(0.0)
    spot.x_mean_0.tied = "a.x_mean - 2"
    out = {
        engine: parfit.parallel_fit(
            {"a": first.model.copy(), "b": spot},
            {"a": first.data, "b": second.data},
            world={"a": first.world, "b": second.world},
            fitting_axes=(1, 2),
            fitter=BatchedFitter(engine=engine),
            scheduler="synchronous",
        )
        for engine in ("numpy", "compiled")
    }
    np.testing.assert_array_equal(out["compiled"].status, out["numpy"].status)
    assert (out["compiled"].status == parfit.Status.OK).all()
    for name, values in out["numpy"].parameters.items():
        np.testing.assert_allclose(out["compiled"].parameters[name], values, rtol=1e-6)
    np.testing.assert_allclose(
        out["compiled"].parameters["b.x_mean_0"],
        out["compiled"].parameters["a.x_mean"] - 2,
        rtol=1e-15,
    )
