"""Unit tests of the batched trust-region reflective solver and of BatchedFitter."""

import warnings

import numpy as np
import pytest

import parfit
from parfit import Flag, Status
from parfit.errors import InputError
from parfit.fitters import BatchedFitter, FitBlock, ScipyFitter, lm, quality, trf
from parfit.models import Const1D, Gaussian1D, Linear1D

X = np.linspace(-5.0, 5.0, 41)
TIGHT = dict(ftol=1e-12, xtol=1e-12, gtol=1e-12)
from _engines import ENGINES  # noqa: E402  (tests/ is on sys.path)


@pytest.fixture
def needs_numba():
    pytest.importorskip("numba", reason="the compiled engine needs numba")


def gaussians(params, x=X):
    """Rows of ``a exp(-(x - m)**2 / (2 s**2))`` for rows ``(a, m, s)`` of params."""
    a, m, s = (np.asarray(params, float)[:, k : k + 1] for k in range(3))
    return a * np.exp(-0.5 * ((x - m) / s) ** 2)


def block_for(model, y, *, x=X, p0=None, lower=None, upper=None, weights=None, valid=None):
    """A FitBlock for ``model`` with the model's values and bounds as start and box."""
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    n = y.shape[0]
    pars = [getattr(model, name) for name in model.param_names]
    start = np.array([float(p.value) for p in pars])
    lo = np.array([-np.inf if p.lower is None else p.lower for p in pars])
    hi = np.array([np.inf if p.upper is None else p.upper for p in pars])
    if valid is None:
        valid = np.isfinite(y) if weights is None else np.isfinite(y) & (weights > 0)
    return FitBlock(
        x=(x,),
        y=y,
        weights=weights,
        valid=valid,
        p0=np.tile(start, (n, 1)) if p0 is None else np.asarray(p0, float),
        lower=np.tile(lo, (n, 1)) if lower is None else lower,
        upper=np.tile(hi, (n, 1)) if upper is None else upper,
        sample_shape=(y.shape[1],),
    )


def noisy_lines(n, seed=0, noise=0.02):
    rng = np.random.default_rng(seed)
    truth = np.column_stack([rng.uniform(1, 3, n), rng.uniform(-1, 1, n), rng.uniform(0.7, 1.5, n)])
    return truth, gaussians(truth) + rng.normal(0, noise, (n, len(X)))


# ---------------------------------------------------------------------------
# The numerical core


class Decay(lm.Problem):
    """``y = a exp(-b t)`` for a batch of data sets (the docstring example)."""

    def __init__(self, t, y):
        self.t, self.y = t, y

    def residuals(self, rows, p):
        return p[:, :1] * np.exp(-p[:, 1:] * self.t) - self.y[rows]

    def residuals_and_jacobian(self, rows, p):
        e = np.exp(-p[:, 1:] * self.t)
        return p[:, :1] * e - self.y[rows], np.stack([e, -p[:, :1] * self.t * e], axis=-1)


class DecayCostlyJacobian(Decay):
    """The same problem, flagged as having an expensive Jacobian."""

    cheap_jacobian = False


@pytest.mark.parametrize("problem_class", [Decay, DecayCostlyJacobian])
def test_trust_region_reflective_on_a_tiny_problem(problem_class):
    t = np.linspace(0, 4, 20)
    truth = np.array([[3.0, 0.5], [1.0, 2.0], [0.5, 0.1]])
    y = truth[:, :1] * np.exp(-truth[:, 1:] * t)
    inf = np.full(truth.shape, np.inf)
    out = trf.trust_region_reflective(
        problem_class(t, y), np.ones_like(truth), -inf, inf, lm.LMOptions(**TIGHT)
    )
    np.testing.assert_allclose(out.params, truth, rtol=1e-10)
    assert out.converged.all()
    assert np.all(out.chi2 < 1e-20)
    # Every accepted step costs one evaluation, rejected ones add more.
    assert np.all(out.nfev >= 2) and np.all(out.nfev >= out.n_iter + 1)
    assert set(out.reason.tolist()) <= {lm.FTOL, lm.XTOL, lm.GTOL}
    # normal is J^T J at the solution.
    _, jac = Decay(t, y).residuals_and_jacobian(np.arange(3), out.params)
    np.testing.assert_allclose(out.normal, np.einsum("nmk,nml->nkl", jac, jac), rtol=1e-10)


def test_trust_region_reflective_respects_bounds_and_bad_starts():
    t = np.linspace(0, 4, 20)
    y = np.array([[3.0], [1.0]]) * np.exp(-np.array([[0.5], [2.0]]) * t)
    lower = np.array([[-np.inf, -np.inf], [-np.inf, -np.inf]])
    upper = np.array([[2.0, np.inf], [np.inf, np.inf]])  # a = 3 is out of reach
    p0 = np.array([[1.0, 1.0], [1.0, -1e4]])  # exp(1e4 t) overflows
    out = trf.trust_region_reflective(Decay(t, y), p0, lower, upper)
    # scipy's TRF stays strictly inside the bounds: within rounding of a = 2.
    assert out.params[0, 0] < 2.0 and out.params[0, 0] == pytest.approx(2.0, rel=1e-12)
    assert out.converged[0]
    assert out.reason[1] == lm.BAD_START and not out.converged[1]
    np.testing.assert_array_equal(out.params[1], p0[1])


def test_trust_region_reflective_max_nfev():
    t = np.linspace(0, 4, 20)
    y = 3.0 * np.exp(-0.5 * t)[None]
    inf = np.full((1, 2), np.inf)
    out = trf.trust_region_reflective(
        Decay(t, y), np.ones((1, 2)), -inf, inf, lm.LMOptions(max_nfev=2)
    )
    assert out.reason[0] == lm.MAXFEV and out.nfev[0] == 2 and not out.converged[0]


# ---------------------------------------------------------------------------
# BatchedFitter: bounds, fixed and tied parameters


@pytest.mark.parametrize("engine", ENGINES)
def test_bounds_respected(engine):
    truth, y = noisy_lines(6)
    model = Gaussian1D(1.5, 0.0, 1.0, bounds={"amplitude": (None, 1.8), "mean": (-0.2, 0.2)})
    res = BatchedFitter(engine=engine).fit_block(model, block_for(model, y))
    assert np.all(res.status == Status.OK)
    assert np.all(res.params[:, 0] <= 1.8) and np.all(np.abs(res.params[:, 1]) <= 0.2)
    # Where the truth is outside the box, the fit ends on the bound (strictly inside
    # by rounding, as scipy's TRF), flagged AT_BOUND.
    above = truth[:, 0] > 2.0
    assert above.any()
    np.testing.assert_allclose(res.params[above, 0], 1.8, rtol=1e-12)
    assert np.all(res.flags[above] & Flag.AT_BOUND)


@pytest.mark.parametrize("engine", ENGINES)
def test_fit_converges_onto_a_bound(engine):
    # A negative dip on a constant, and a peak held at the dip: the best amplitude >= 0
    # is 0, reached to within rounding and flagged AT_BOUND; the fit is still OK.
    model = Gaussian1D(
        1.0, 0.0, 1.0, bounds={"amplitude": (0.0, None)}, fixed={"mean": True, "stddev": True}
    ) + Const1D(0.0)
    y = 2.0 - gaussians([[1.5, 0.0, 1.0]])
    res = BatchedFitter(engine=engine).fit_block(model, block_for(model, y))
    assert res.status[0] == Status.OK and res.flags[0] & Flag.AT_BOUND
    assert 0.0 < res.params[0, 0] < 1e-6
    assert np.all(np.isfinite(res.errors[0, [0, 3]]))
    np.testing.assert_allclose(res.params[0, 3], np.mean(y), rtol=1e-6)
    np.testing.assert_allclose(res.statistic[0], np.sum((y - np.mean(y)) ** 2), rtol=1e-8)


@pytest.mark.parametrize("engine", ENGINES)
def test_fixed_parameters_keep_their_values(engine):
    truth, y = noisy_lines(5)
    model = Gaussian1D(1.5, 0.0, 1.0)
    model.stddev.fixed = True
    p0 = np.tile([1.5, 0.0, 1.0], (5, 1))
    p0[:, 2] = truth[:, 2]  # per-fit fixed values
    res = BatchedFitter(engine=engine).fit_block(model, block_for(model, y, p0=p0))
    assert np.all(res.status == Status.OK)
    np.testing.assert_array_equal(res.params[:, 2], truth[:, 2])
    assert np.all(np.isnan(res.errors[:, 2])) and np.all(np.isfinite(res.errors[:, :2]))
    np.testing.assert_allclose(res.params[:, :2], truth[:, :2], rtol=0.05, atol=0.02)


def test_tied_parameters_match_scipy():
    rng = np.random.default_rng(3)
    truth = np.array([[2.0, -1.5, 0.8, 1.2, 3.5, 1.1], [1.5, -2.0, 1.0, 2.5, 3.0, 0.7]])
    y = gaussians(truth[:, :3]) + gaussians(truth[:, 3:]) + rng.normal(0, 0.05, (2, len(X)))
    model = Gaussian1D(1.8, -1.0, 1.0) + Gaussian1D(1.5, 4.0, 1.0)
    model.mean_1.tied = "mean_0 + 5"
    block = block_for(model, y)
    res = BatchedFitter(**TIGHT).fit_block(model, block)
    ref = ScipyFitter("trf", **TIGHT).fit_block(model, block)
    assert np.all(res.status == Status.OK) and np.all(ref.status == Status.OK)
    np.testing.assert_allclose(res.params[:, 4], res.params[:, 1] + 5, rtol=1e-14)
    np.testing.assert_allclose(res.params, ref.params, rtol=1e-6)
    np.testing.assert_allclose(res.statistic, ref.statistic, rtol=1e-10)
    # The tied mean moves with mean_0: the same error.
    np.testing.assert_allclose(res.errors, ref.errors, rtol=1e-6)
    np.testing.assert_allclose(res.errors[:, 4], res.errors[:, 1], rtol=1e-12)


# ---------------------------------------------------------------------------
# Errors: one covariance computation (quality.errors_from_normal) for every fitter


@pytest.mark.parametrize("scale", [True, False])
def test_errors_from_normal_is_the_inverse_of_the_normal_matrix(scale):
    rng = np.random.default_rng(7)
    jac = rng.normal(size=(4, 30, 3)) * np.array([1.0, 1e-3, 1e4])  # columns of any unit
    normal = np.einsum("nsf,nsg->nfg", jac, jac)
    chi2, n_valid, data_scale = rng.uniform(10, 40, 4), np.full(4, 30), 4.0
    free = np.ones(3, dtype=bool)
    errors = quality.errors_from_normal(
        Gaussian1D(), np.zeros((4, 3)), free, False, normal, chi2, n_valid, scale, data_scale
    )
    factor = chi2 / (30 - 3) if scale else np.full(4, data_scale**-2)
    expected = np.sqrt(np.diagonal(np.linalg.inv(normal), axis1=1, axis2=2) * factor[:, None])
    np.testing.assert_allclose(errors, expected, rtol=1e-12)


def test_errors_from_normal_fixed_singular_and_no_dof():
    model = Gaussian1D()
    model.stddev.fixed = True
    free = np.array([True, True, False])
    normal = np.array(
        [[[4.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]], [[4.0, 0.0], [0.0, 1.0]]]
    )
    errors = quality.errors_from_normal(
        model, np.zeros((3, 3)), free, False, normal, np.ones(3), np.array([3, 3, 2]), True
    )
    np.testing.assert_allclose(errors[0, :2], [0.5, 1.0], rtol=1e-15)
    assert np.isnan(errors[0, 2])  # fixed
    assert np.all(np.isnan(errors[1]))  # singular
    assert np.all(np.isnan(errors[2]))  # no degree of freedom left to scale by


@pytest.mark.parametrize("fitter", ["scipy", *ENGINES])
def test_errors_match_curve_fit(fitter):
    """Every fitter's errors are curve_fit's: sqrt(diag(pcov)), pcov scaled by chi2 / dof."""
    from scipy.optimize import curve_fit

    rng = np.random.default_rng(11)
    y = gaussians([[2.0, 0.3, 0.9]])[0] + rng.normal(0, 0.05, len(X))
    model = Gaussian1D(1.5, 0.0, 1.0)

    def f(x, *p):
        return model.evaluate(x[None, :], np.array([p]))[0]

    def jac(x, *p):
        return model.jacobian(x[None, :], np.array([p]))[0]

    popt, pcov = curve_fit(f, X, y, p0=[1.5, 0.0, 1.0], jac=jac, method="trf", **TIGHT)
    if fitter == "scipy":  # the same least_squares run: the same Jacobian at the end
        res, rtol = ScipyFitter("trf", **TIGHT).fit_block(model, block_for(model, y)), 1e-9
    else:
        res, rtol = (
            BatchedFitter(engine=fitter, **TIGHT).fit_block(model, block_for(model, y)),
            1e-6,
        )
    assert res.status[0] == Status.OK
    np.testing.assert_allclose(res.params[0], popt, rtol=rtol)
    np.testing.assert_allclose(res.errors[0], np.sqrt(np.diag(pcov)), rtol=rtol)


def test_every_fitter_takes_its_errors_from_errors_from_normal(monkeypatch):
    calls = []
    original = quality.errors_from_normal

    def spy(*args, **kwargs):
        calls.append(args[4].shape)  # the normal matrices
        return original(*args, **kwargs)

    monkeypatch.setattr(quality, "errors_from_normal", spy)
    _, y = noisy_lines(3)
    model = Gaussian1D(1.5, 0.0, 1.0)
    for fitter in (BatchedFitter(engine="numpy"), ScipyFitter("trf")):
        calls.clear()
        res = fitter.fit_block(model, block_for(model, y))
        assert np.all(res.status == Status.OK)
        assert sum(shape[0] for shape in calls) >= 3, fitter.name


# ---------------------------------------------------------------------------
# BatchedFitter: statuses and messages


@pytest.mark.parametrize("engine", ENGINES)
def test_max_nfev_gives_not_converged(engine):
    _, y = noisy_lines(3)
    model = Gaussian1D(1.5, 0.0, 1.0)
    res = BatchedFitter(engine=engine, max_nfev=3).fit_block(model, block_for(model, y))
    np.testing.assert_array_equal(res.status, Status.NOT_CONVERGED)
    assert np.all(np.isnan(res.params)) and np.all(np.isnan(res.statistic))
    np.testing.assert_array_equal(res.nfev, 3)
    for i in range(3):
        assert res.messages[i] == (
            "batched trust-region reflective: the maximum number of function "
            "evaluations (3) was reached"
        )


class Touchy(Gaussian1D):
    """A Gaussian that raises once its amplitude passes 50 (not compiled: a subclass)."""

    def _evaluate(self, x, amplitude, mean, stddev):
        if np.any(amplitude > 50):
            raise ArithmeticError("amplitude above 50")
        return super()._evaluate(x, amplitude, mean, stddev)


class Noisy(Gaussian1D):
    """A Gaussian that warns once its amplitude passes 50."""

    def _evaluate(self, x, amplitude, mean, stddev):
        if np.any(amplitude > 50):
            warnings.warn("amplitude above 50", UserWarning, stacklevel=2)
        return super()._evaluate(x, amplitude, mean, stddev)


def lines_with_one_big(bad=2):
    truth, y = noisy_lines(5)
    y[bad] = gaussians([[100.0, 0.2, 1.0]])[0]  # only this fit drives amplitude past 50
    return y


def test_model_raising_on_one_fit_fails_only_that_fit():
    y = lines_with_one_big(bad=2)
    model = Touchy(1.5, 0.0, 1.0)
    res = BatchedFitter().fit_block(model, block_for(model, y))
    assert res.status[2] == Status.FIT_ERROR
    assert np.all(np.isnan(res.params[2])) and np.isnan(res.statistic[2])
    assert "Traceback" in res.messages[2]
    assert "ArithmeticError: amplitude above 50" in res.messages[2]
    others = [0, 1, 3, 4]
    assert np.all(res.status[others] == Status.OK)
    assert set(res.messages) == {2}
    alone = BatchedFitter().fit_block(model, block_for(model, y[others]))
    np.testing.assert_array_equal(res.params[others], alone.params)
    np.testing.assert_array_equal(res.errors[others], alone.errors)
    np.testing.assert_array_equal(res.statistic[others], alone.statistic)


def test_model_warning_on_one_fit_is_kept_with_that_fit():
    y = lines_with_one_big(bad=3)
    model = Noisy(1.5, 0.0, 1.0)
    res = BatchedFitter().fit_block(model, block_for(model, y))
    assert np.all(res.status == Status.OK)
    assert set(res.warnings) == {3}
    assert any("UserWarning: amplitude above 50" in line for line in res.warnings[3])
    np.testing.assert_allclose(res.params[3], [100.0, 0.2, 1.0], rtol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_model_not_finite_at_the_start(engine):
    _, y = noisy_lines(3)
    model = Gaussian1D(1.5, 0.0, 1.0, bounds={"stddev": (None, None)})
    p0 = np.tile([1.5, 0.0, 1.0], (3, 1))
    p0[1, 2] = 0.0  # no bound to move it off, and 0/0 in the model
    res = BatchedFitter(engine=engine).fit_block(model, block_for(model, y, p0=p0))
    assert res.status.tolist() == [Status.OK, Status.NONFINITE, Status.OK]
    assert res.messages == {1: "the model is not finite at the starting values"}
    assert np.all(np.isnan(res.params[1]))


def test_screened_fits_are_not_attempted():
    _, y = noisy_lines(4)
    y[0] = np.nan
    y[1, 2:] = np.nan
    model = Gaussian1D(1.5, 0.0, 1.0)
    p0 = np.tile([1.5, 0.0, 1.0], (4, 1))
    p0[2, 1] = np.nan
    res = BatchedFitter().fit_block(model, block_for(model, y, p0=p0), fit_info=True)
    assert res.status.tolist() == [
        Status.NO_VALID_DATA,
        Status.TOO_FEW_SAMPLES,
        Status.BAD_START,
        Status.OK,
    ]
    assert res.fit_info[:3] == [None, None, None]
    assert res.nfev[:3].tolist() == [0, 0, 0]


# ---------------------------------------------------------------------------
# BatchedFitter: inputs


@pytest.mark.parametrize("engine", ENGINES)
def test_per_fit_x(engine):
    rng = np.random.default_rng(5)
    xs = np.sort(rng.uniform(-5, 5, (4, 30)), axis=1)
    truth = np.array([[2.0, 0.3, 1.1], [1.0, -0.5, 0.8], [3.0, 1.0, 1.5], [1.5, 0.0, 1.0]])
    y = np.vstack([gaussians(truth[i : i + 1], xs[i])[0] for i in range(4)])
    y += rng.normal(0, 0.01, y.shape)
    model = Gaussian1D(1.5, 0.0, 1.0)
    fitter = BatchedFitter(engine=engine, **TIGHT)
    res = fitter.fit_block(model, block_for(model, y, x=xs))
    assert np.all(res.status == Status.OK)
    for i in range(4):
        one = fitter.fit(model, xs[i], y=y[i])
        np.testing.assert_allclose(res.params[i], one.params[0], rtol=1e-10)
        np.testing.assert_allclose(res.statistic[i], one.statistic[0], rtol=1e-10)
    np.testing.assert_allclose(res.params, truth, rtol=0.05, atol=0.02)


@pytest.mark.parametrize("engine", ENGINES)
def test_weights(engine):
    rng = np.random.default_rng(6)
    truth, y = noisy_lines(4, seed=6, noise=0.05)
    w = rng.uniform(0.2, 3.0, y.shape)
    w[:, :3] = 0.0  # ignored samples ...
    y[:, :3] = 1e3  # ... however wrong
    model = Gaussian1D(1.5, 0.0, 1.0) + Linear1D(0.0, 0.0)
    block = block_for(model, y, weights=w)
    res = BatchedFitter(engine=engine, **TIGHT).fit_block(model, block)
    ref = ScipyFitter("trf", **TIGHT).fit_block(model, block)
    assert np.all(res.status == Status.OK)
    np.testing.assert_allclose(res.params, ref.params, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.errors, ref.errors, rtol=1e-6)
    resid = w * (model.evaluate(X, res.params) - y)
    np.testing.assert_allclose(res.statistic, np.sum(resid**2, axis=1), rtol=1e-10)


@pytest.mark.parametrize("engine", ENGINES)
def test_fit_info(engine):
    _, y = noisy_lines(3)
    y[1] = np.nan
    model = Gaussian1D(1.5, 0.0, 1.0)
    res = BatchedFitter(engine=engine).fit_block(model, block_for(model, y), fit_info=True)
    assert res.fit_info[1] is None
    for i in (0, 2):
        info = res.fit_info[i]
        assert set(info) == {"message", "nfev", "n_iter", "chi2", "converged", "flags"}
        assert info["message"] in lm.REASONS[lm.FTOL : lm.GTOL + 1]
        assert info["converged"] is True and info["flags"] == 0
        assert info["nfev"] == res.nfev[i] and 1 <= info["n_iter"] <= info["nfev"] - 1
        assert info["chi2"] == res.statistic[i]
    assert BatchedFitter(engine=engine).fit_block(model, block_for(model, y)).fit_info is None


@pytest.mark.parametrize("engine", ENGINES)
def test_data_units_do_not_change_the_fit(engine):
    # Counts of 2e5 are ordinary data; the fit must not depend on their unit.
    scale = 1e5
    y = gaussians([[2.0 * scale, 0.5, 1.2]])
    model = Gaussian1D(2.4 * scale, 0.0, 1.0)
    res = BatchedFitter(engine=engine).fit_block(model, block_for(model, y))
    assert res.status[0] == Status.OK
    np.testing.assert_allclose(res.params[0], [2.0 * scale, 0.5, 1.2], rtol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_data_units_moderate_scale(engine):
    # The same problem at the unit scale and at 1e3 converges (the bug above
    # needs larger scales to stop the fit outright).
    for scale in (1.0, 1e3):
        y = gaussians([[2.0 * scale, 0.5, 1.2]])
        model = Gaussian1D(2.4 * scale, 0.0, 1.0)
        res = BatchedFitter(engine=engine).fit_block(model, block_for(model, y))
        assert res.status[0] == Status.OK
        np.testing.assert_allclose(res.params[0], [2.0 * scale, 0.5, 1.2], rtol=1e-6)


# ---------------------------------------------------------------------------
# BatchedFitter: options


def test_engine_must_be_known():
    with pytest.raises(ValueError) as info:
        BatchedFitter(engine="bogus")
    assert str(info.value) == "engine must be 'auto', 'numpy' or 'compiled'; got 'bogus'"
    assert isinstance(info.value, InputError)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(ftol=-1e-3), "BatchedFitter: ftol must be a number in [0, 1); got -0.001"),
        (dict(xtol=1.0), "BatchedFitter: xtol must be a number in [0, 1); got 1.0"),
        (dict(gtol="1e-8"), "BatchedFitter: gtol must be a number in [0, 1); got '1e-8'"),
        (dict(ftol=True), "BatchedFitter: ftol must be a number in [0, 1); got True"),
        (
            dict(ftol=0, xtol=0, gtol=0),
            "BatchedFitter: ftol, xtol and gtol cannot all be zero (or "
            "below machine epsilon, 2.2e-16): at least one convergence "
            "test must be on",
        ),
        (dict(max_nfev=0), "BatchedFitter: max_nfev must be a positive integer or None; got 0"),
        (dict(max_nfev=2.5), "BatchedFitter: max_nfev must be a positive integer or None; got 2.5"),
        (
            dict(max_nfev=True),
            "BatchedFitter: max_nfev must be a positive integer or None; got True",
        ),
        (dict(factor=0.0), "BatchedFitter: factor must be a positive number; got 0.0"),
        (dict(factor=float("nan")), "BatchedFitter: factor must be a positive number; got nan"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ValueError) as info:
        BatchedFitter(**options)
    assert str(info.value) == message


def test_bad_fitter_kwargs_are_rejected_in_check():
    fitter = BatchedFitter()
    model = Gaussian1D()
    with pytest.raises(ValueError) as info:
        fitter.check(model, {"ftol": 1e-10, "loss": "soft_l1"})
    assert str(info.value) == (
        "fitter_kwargs has unknown key(s) 'loss' for fitter 'batched-trf'; valid keys are "
        "'ftol', 'xtol', 'gtol', 'max_nfev', 'factor'"
    )
    with pytest.raises(ValueError) as info:
        fitter.check(model, {"max_nfev": -1})
    assert str(info.value) == ("fitter_kwargs: max_nfev must be a positive integer or None; got -1")
    fitter.check(model, {"ftol": 1e-10, "max_nfev": 50})


def test_fitter_kwargs_override_options():
    _, y = noisy_lines(2)
    model = Gaussian1D(1.5, 0.0, 1.0)
    res = BatchedFitter().fit_block(model, block_for(model, y), fitter_kwargs={"max_nfev": 3})
    np.testing.assert_array_equal(res.status, Status.NOT_CONVERGED)
    assert res.messages[0].endswith("(3) was reached")


def test_compiled_engine_rejects_a_tie_that_is_not_affine_in_check(needs_numba):
    model = Gaussian1D() + Gaussian1D()
    model.mean_1.tied = "mean_0 ** 2"
    fitter = BatchedFitter(engine="compiled")
    with pytest.raises(ValueError) as info:
        fitter.check(model)
    assert str(info.value) == (
        "engine='compiled' cannot fit this model: the tie 'mean_0 ** 2' is not affine "
        "(a * parameter + b); such ties are handled by the numpy solver"
    )
    fitter.check(Gaussian1D() + Gaussian1D())  # untied: fine
    model.mean_1.tied = "mean_0 + 5"
    fitter.check(model)  # affine: compiled
    model.mean_1.tied = "mean_0 ** 2"
    # parallel_fit asks before dispatching anything.
    cube = np.ones((len(X), 2))
    with pytest.raises(ValueError, match="engine='compiled' cannot fit this model: the tie"):
        parfit.parallel_fit(model, cube, world=(X,), fitter=fitter, scheduler="synchronous")


def test_auto_engine_fits_tied_and_user_models():
    model = Touchy(1.5, 0.0, 1.0)
    BatchedFitter(engine="auto").check(model)
    _, y = noisy_lines(2)
    res = BatchedFitter(engine="auto").fit_block(model, block_for(model, y))
    assert np.all(res.status == Status.OK)


@pytest.mark.parametrize("tie", ["mean_0 + 2.0", "2.0 + 1.0 * mean_0", "mean_0 - (-2)"])
def test_affine_ties_run_compiled_and_agree_with_numpy(needs_numba, tie):
    rng = np.random.default_rng(4)
    x = np.linspace(-8, 8, 80)
    mu, sd = rng.uniform(-2, 2, 40), rng.uniform(0.8, 1.4, 40)
    y = 2 * np.exp(-0.5 * ((x[:, None] - mu) / sd) ** 2)
    y = y + np.exp(-0.5 * ((x[:, None] - mu - 2) / sd) ** 2) + rng.normal(0, 0.05, y.shape)
    model = Gaussian1D(1.5, 0.0, 1.0) + Gaussian1D(0.7, 2.0, 1.0)
    model.mean_1.tied = tie
    model.stddev_1.tied = "stddev_0"
    model.amplitude_1.tied = "0.5 * amplitude_0"
    results = {
        engine: parfit.parallel_fit(
            model, y, world=(x,), fitter=BatchedFitter(engine=engine), scheduler="synchronous"
        )
        for engine in ("numpy", "compiled")
    }
    numpy_fit, compiled = results["numpy"], results["compiled"]
    assert compiled.success.all() and numpy_fit.success.all()
    np.testing.assert_array_equal(compiled.nfev, numpy_fit.nfev)
    for name in model.param_names:
        np.testing.assert_allclose(
            compiled.parameters[name], numpy_fit.parameters[name], rtol=1e-9, atol=1e-12
        )
        np.testing.assert_allclose(compiled.errors[name], numpy_fit.errors[name], rtol=1e-7)
    np.testing.assert_allclose(compiled.parameters["mean_1"], compiled.parameters["mean_0"] + 2)


def test_compiled_exp_is_libm_exp_to_one_ulp(needs_numba):
    # The compiled Gaussian's exp (a polynomial the loop vectoriser can use):
    # within 1 ulp of numpy's exp where that is a normal number, 0 below
    # -708 (exp < 3.4e-308 there), exact at 0, NaN for NaN, 0 for -inf.
    import numba

    from parfit.fitters import _kernel

    @numba.njit
    def exp_all(x, out):
        for j in range(x.shape[0]):
            out[j] = _kernel._exp_neg(x[j])

    rng = np.random.default_rng(0)
    x = np.concatenate(
        [-rng.uniform(0, 708, 200_000), -rng.uniform(0, 1e-3, 1000), -np.arange(0, 708.0, 0.5)]
    )
    got = np.empty_like(x)
    exp_all(x, got)
    want = np.exp(x)
    ulps = np.abs(got - want) / np.spacing(want)
    assert ulps.max() <= 1.0
    assert np.mean(got == want) > 0.8
    special = np.array([0.0, -0.0, -708.5, -745.2, -1e300, -np.inf, np.nan])
    out = np.empty_like(special)
    exp_all(special, out)
    np.testing.assert_array_equal(out, [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, np.nan])
