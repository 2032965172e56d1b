"""MinuitFitter: iminuit's MIGRAD and HESSE per fit, MINOS intervals, against known truth.

* the fitter contract every parfit fitter meets;
* agreement with the batched solver (same start, same minimum) for chi-square,
  Cash and C-stat, and HESSE's errors against the observed information;
* MINOS intervals and upper limits: the profiled statistic rises by
  ``n_sigma**2`` there; a bound inside the interval is given and flagged;
* the exact messages of what is refused, and of a missing iminuit.
"""

import sys

import numpy as np
import pytest
from test_fitter_contract import TRUE, FitterContract, X, _check_bounds, gaussian, make_block

import parfit
from parfit import Flag, Status
from parfit.datasets import gaussian_cube
from parfit.errors import InputError
from parfit.fitters import BatchedFitter, FitBlock, MinuitFitter, get_fitter
from parfit.fitters import statistics as stats
from parfit.fitters.minuit_fitter import FIT_INFO_NAMES
from parfit.models import Const1D, Gaussian1D

pytest.importorskip("iminuit")

#: The batched solver as an oracle: converged far beyond Minuit's EDM goal.
ORACLE = BatchedFitter(ftol=1e-14, xtol=1e-14, gtol=1e-14)


# --- the contract -----------------------------------------------------------------


class TestMinuitContract(FitterContract):
    def make_fitter(self):
        return MinuitFitter()

    def make_model(self):
        return Gaussian1D()

    # Minuit's limits are a smooth transform: fits end within rounding of the bound
    # only approximately (1e-7 here), so ``ends_on_bounds`` is not claimed.
    test_bounds_respected = _check_bounds

    # The contract's two tests on noiseless data ask for the truth to 1e-6.  Minuit
    # stops when the estimated distance to the minimum is below 0.002 * tol in units
    # of the statistic, which puts the parameters within about sqrt(0.004 * tol)
    # standard deviations of the minimum: with the default tol and unit weights on
    # noiseless data that is 1e-3 relative, with tol=1e-6 a few 1e-6.  Both tests are
    # run with tol=1e-6 and a tolerance of 2e-5 instead.

    def test_invalid_samples_and_pixels(self):
        y = gaussian(TRUE)
        y[0] = np.nan
        y[1, 2:] = np.nan
        y[2, 5:20] = np.nan
        res = self.fit(make_block(y=y), fitter_kwargs={"tol": 1e-6})
        assert res.status[0] == Status.NO_VALID_DATA
        assert res.status[1] == Status.TOO_FEW_SAMPLES
        assert res.status[2] == Status.OK
        np.testing.assert_allclose(res.params[2], TRUE[2], rtol=2e-5)
        assert np.all(np.isnan(res.params[:2])) and np.all(np.isnan(res.statistic[:2]))
        assert set(res.messages) >= {0, 1}

    def test_weights_change_the_fit_and_zero_weight_is_ignored(self):
        y = gaussian(TRUE)
        y[:, :5] += 10.0
        w = np.ones_like(y)
        w[:, :5] = 0.0
        valid = np.isfinite(y) & (w > 0)
        res = self.fit(make_block(y=y, weights=w, valid=valid), fitter_kwargs={"tol": 1e-6})
        np.testing.assert_allclose(res.params, TRUE, rtol=2e-5)

    def test_fit_single_spectrum(self):
        out = self.make_fitter().fit(Gaussian1D(1.5, 0, 1), X, y=gaussian(TRUE[:1])[0])
        np.testing.assert_allclose(out.params[0], TRUE[0], rtol=1e-3)


# --- agreement with the batched solver -----------------------------------------------

N_FITS, N_SAMPLES = 50, 60
SPECTRAL = np.linspace(-6.0, 6.0, N_SAMPLES)
NOISE = 0.3


def spectra(statistic, seed=1):
    """Gaussian + constant spectra: ``(model, block, truth)``.

    Poisson counts (peaks of 2 to 8 counts on a background of 0.3 to 1) for Cash
    and C-stat, Gaussian noise of 0.3 with ``1/sigma`` weights for chi-square; every
    fit starts within 10 % of its truth.
    """
    rng = np.random.default_rng(seed)
    truth = np.column_stack(
        [
            rng.uniform(2, 8, N_FITS),
            rng.uniform(-1, 1, N_FITS),
            rng.uniform(0.8, 1.5, N_FITS),
            rng.uniform(0.3, 1.0, N_FITS),
        ]
    )
    model = Gaussian1D() + Const1D()
    mu = model.evaluate(SPECTRAL, truth)
    if statistic == "chi2":
        y = mu + rng.normal(0.0, NOISE, mu.shape)
        weights = np.full_like(y, 1 / NOISE)
    else:
        y = rng.poisson(mu).astype(np.float64)
        weights = None
    block = FitBlock(
        x=(SPECTRAL,),
        y=y,
        weights=weights,
        valid=np.ones_like(y, dtype=bool),
        p0=truth * rng.uniform(0.9, 1.1, truth.shape),
        lower=np.tile([-np.inf, -np.inf, 0.05, -np.inf], (N_FITS, 1)),
        upper=np.full((N_FITS, 4), np.inf),
        sample_shape=(N_SAMPLES,),
    )
    return model, block, truth


def gradient(model, block, i, params, statistic):
    """The analytic gradient of the statistic of fit ``i`` (all parameters free)."""
    x, y = block.x[0][None], block.y[i]
    mu = model.evaluate(x, params[None])[0]
    jac = model.jacobian(x, params[None])[0]
    if statistic == "chi2":
        w = block.weights[i]
        return 2 * jac.T @ (w * w * (mu - y))
    return 2 * jac.T @ np.where(y > 0, 1 - y / mu, 1.0)


def observed_errors(model, block, i, params, statistic):
    """Errors from the observed information: the Hessian of the statistic (central
    differences of its analytic gradient) at ``params``, ``errordef = 1``."""
    k = len(params)
    h = 1e-5 * np.maximum(np.abs(params), 1.0)
    hess = np.array(
        [
            (
                gradient(model, block, i, params + h[j] * np.eye(k)[j], statistic)
                - gradient(model, block, i, params - h[j] * np.eye(k)[j], statistic)
            )
            / (2 * h[j])
            for j in range(k)
        ]
    )
    cov = np.linalg.inv(0.5 * (hess + hess.T) / 2)
    return np.sqrt(np.diag(cov))


@pytest.fixture(scope="module", params=["chi2", "cash", "cstat"])
def both(request):
    statistic = request.param
    model, block, truth = spectra(statistic)
    minuit = MinuitFitter().fit_block(
        model, block, statistic=statistic, fitter_kwargs={"tol": 1e-5}
    )
    batched = ORACLE.fit_block(model, block, statistic=statistic)
    return statistic, model, block, truth, minuit, batched


def compared(minuit, batched):
    """Fits OK in both, leaving out those the batched solver refitted from a second
    start (its retry may settle in another local minimum)."""
    ok = (minuit.status == Status.OK) & (batched.status == Status.OK)
    ok &= (batched.flags & Flag.RETRIED) == 0
    return ok


def test_same_minimum_as_the_batched_solver(both):
    statistic, model, block, truth, minuit, batched = both
    ok = compared(minuit, batched)
    assert ok.sum() >= 47
    # tol=1e-5: the parameters within about 2e-4 of their errors of the minimum.
    np.testing.assert_allclose(minuit.params[ok], batched.params[ok], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(minuit.statistic[ok], batched.statistic[ok], rtol=1e-6)
    # Minuit never ends below the oracle's minimum (by more than rounding).
    assert np.all(minuit.statistic[ok] - batched.statistic[ok] > -1e-9)
    # And the fits found the truth: pulls of a few sigma at most.
    pulls = (minuit.params[ok] - truth[ok]) / minuit.errors[ok]
    assert np.all(np.abs(pulls) < 5)


def test_statistic_is_the_statistic_of_the_fitted_model(both):
    statistic, model, block, _, minuit, _ = both
    ok = minuit.status == Status.OK
    mu = model.evaluate(SPECTRAL, minuit.params[ok])
    expected = stats.statistic_values(
        statistic,
        block.y[ok],
        mu,
        None if block.weights is None else block.weights[ok],
        block.valid[ok],
    )
    np.testing.assert_allclose(minuit.statistic[ok], expected, rtol=1e-12)
    if statistic == "cash":  # Cash includes its data term: C-stat + 2 sum(n - n ln n)
        cstat = stats.statistic_values("cstat", block.y[ok], mu, None, block.valid[ok])
        data = stats.data_term(block.y[ok], block.valid[ok])
        np.testing.assert_allclose(minuit.statistic[ok], cstat + data, rtol=1e-12, atol=1e-9)


def test_errors_are_hesse_the_observed_information(both):
    """HESSE's covariance is the inverse of the observed information (the Hessian
    of the statistic at the minimum), times the reduced chi-square for chi-square
    (``scale_covariance=True``, the default)."""
    statistic, model, block, _, minuit, _ = both
    for i in np.flatnonzero(minuit.status == Status.OK)[:20]:
        expected = observed_errors(model, block, i, minuit.params[i], statistic)
        if statistic == "chi2":
            expected *= np.sqrt(minuit.statistic[i] / (N_SAMPLES - 4))
        np.testing.assert_allclose(minuit.errors[i], expected, rtol=0.01)


def test_errors_agree_with_the_batched_solver_on_average(both):
    """The batched solver's errors use the expected information (J^T W J for
    chi-square, the Fisher information sum(dmu dmu^T / mu) for counts), HESSE the
    observed one.  Their expectations are equal; fit by fit, at 2 to 8 counts a peak,
    they differ by up to tens of per cent (for the widths most), and by a few per
    cent at the median."""
    _, _, _, _, minuit, batched = both
    ok = compared(minuit, batched)
    ratio = minuit.errors[ok] / batched.errors[ok]
    np.testing.assert_allclose(np.median(ratio, axis=0), 1.0, atol=0.06)
    assert np.all((ratio > 0.3) & (ratio < 3))


def test_unscaled_chi2_errors_are_hesse_alone():
    model, block, _ = spectra("chi2")
    block.y, block.weights, block.valid = block.y[:5], block.weights[:5], block.valid[:5]
    block.p0, block.lower, block.upper = block.p0[:5], block.lower[:5], block.upper[:5]
    scaled = MinuitFitter().fit_block(model, block)
    raw = MinuitFitter(scale_covariance=False).fit_block(model, block)
    np.testing.assert_array_equal(scaled.params, raw.params)
    factor = np.sqrt(scaled.statistic / (N_SAMPLES - 4))[:, None]
    np.testing.assert_allclose(scaled.errors, raw.errors * factor, rtol=1e-12)
    for i in range(5):
        expected = observed_errors(model, block, i, raw.params[i], "chi2")
        np.testing.assert_allclose(raw.errors[i], expected, rtol=0.01)


# --- Poisson statistics: the edge of the likelihood ----------------------------------


class CountingConst(Const1D):
    """A constant that remembers the smallest value it was evaluated at."""

    lowest = np.inf

    def evaluate(self, *args):
        out = super().evaluate(*args)
        CountingConst.lowest = min(CountingConst.lowest, float(out.min()))
        return out


@pytest.mark.parametrize("statistic", ["cash", "cstat"])
def test_negative_model_is_an_infinite_statistic_minuit_steps_back_from(statistic):
    """From a start far above the counts MIGRAD's first steps go below zero, where
    Cash and C-stat are infinite; it steps back and ends on the maximum of the
    likelihood: the mean of the counts, with error sqrt(mean / n)."""
    counts = np.random.default_rng(0).poisson(0.2, (1, 60)).astype(np.float64)
    block = FitBlock(
        x=(np.arange(60.0),),
        y=counts,
        weights=None,
        valid=np.ones_like(counts, dtype=bool),
        p0=np.array([[50.0]]),
        lower=np.array([[-np.inf]]),
        upper=np.array([[np.inf]]),
        sample_shape=(60,),
    )
    CountingConst.lowest = np.inf
    res = MinuitFitter().fit_block(CountingConst(), block, statistic=statistic)
    assert CountingConst.lowest < 0  # it was evaluated where the statistic is infinite
    assert res.status[0] == Status.OK
    mean = counts.mean()
    np.testing.assert_allclose(res.params[0, 0], mean, rtol=1e-4)
    np.testing.assert_allclose(res.errors[0, 0], np.sqrt(mean / 60), rtol=1e-3)


def test_nonfinite_start_for_counts():
    counts = np.array([[1.0, 0.0, 2.0, 1.0]])

    def block(p0):
        n = len(p0)
        return FitBlock(
            x=(np.arange(4.0),),
            y=counts,
            weights=None,
            valid=np.ones_like(counts, dtype=bool),
            p0=np.array([p0]),
            lower=np.full((1, n), -np.inf),
            upper=np.full((1, n), np.inf),
            sample_shape=(4,),
        )

    # Undefined at the start, defined at the least-squares solution: fitted from there.
    res = MinuitFitter().fit_block(Const1D(), block([-1.0]), statistic="cash")
    assert res.status[0] == Status.OK
    assert res.params[0, 0] == pytest.approx(1.0, rel=1e-4)
    # Undefined wherever the free amplitude goes: the wings stay at -1.
    line = Gaussian1D(1.0, 1.5, 0.3) + Const1D(-1.0)
    line.mean_0.fixed = True
    line.stddev_0.fixed = True
    line.amplitude_1.fixed = True
    res = MinuitFitter().fit_block(line, block([1.0, 1.5, 0.3, -1.0]), statistic="cash")
    assert res.status[0] == Status.NONFINITE
    assert res.messages[0] == (
        "the model is not finite, is negative, or is zero where there are counts at the "
        "starting values"
    )
    assert np.isnan(res.params[0, 0]) and np.isnan(res.statistic[0])


# --- statuses, fit_info, ties ---------------------------------------------------------


def test_call_limit_is_not_converged_with_minuits_reason():
    res = MinuitFitter().fit_block(Gaussian1D(), make_block(), fitter_kwargs={"ncall": 5})
    assert np.all(res.status == Status.NOT_CONVERGED)
    assert res.messages[0].startswith("iminuit MIGRAD: minimum not valid: call limit reached (")
    assert np.all(np.isnan(res.params)) and np.all(res.nfev > 0)


def test_fit_info_holds_plain_values():
    res = MinuitFitter().fit_block(Gaussian1D(), make_block(), fit_info=True)
    info = res.fit_info[0]
    assert tuple(info) == FIT_INFO_NAMES == MinuitFitter.fit_info_names
    assert type(info["fval"]) is float and type(info["edm"]) is float
    assert type(info["nfcn"]) is int and info["nfcn"] == res.nfev[0]
    for key in FIT_INFO_NAMES[3:-1]:
        assert type(info[key]) is bool, key
    assert info["is_valid"] is True and info["message"] == "valid minimum"
    np.testing.assert_allclose(info["fval"], res.statistic[0], rtol=1e-12)
    some = MinuitFitter().fit_block(Gaussian1D(), make_block(), fit_info=["edm", "nfcn"])
    assert all(set(i) == {"edm", "nfcn"} for i in some.fit_info)
    assert MinuitFitter().fit_block(Gaussian1D(), make_block()).fit_info is None


def test_fit_info_names_are_checked():
    with pytest.raises(InputError) as err:
        MinuitFitter().check_fit_info(["edm", "chi2"])
    assert str(err.value) == (
        "fit_info has unknown name(s) 'chi2' for fitter 'minuit'; valid names are 'fval', "
        "'edm', 'nfcn', 'is_valid', 'has_accurate_covar', 'has_posdef_covar', "
        "'hesse_failed', 'has_parameters_at_limit', 'message'"
    )


def test_tied_and_fixed_parameters():
    model = Gaussian1D() + Gaussian1D()
    model.stddev_1.tied = "stddev_0"
    model.mean_1.fixed = True
    truth = np.array([2.0, -1.0, 0.6, 1.0, 1.5, 0.6])
    rng = np.random.default_rng(4)
    y = model.evaluate(X, truth[None]) + rng.normal(0, 0.02, (1, X.size))
    block = FitBlock(
        x=(X,),
        y=y,
        weights=None,
        valid=np.ones_like(y, dtype=bool),
        p0=np.array([[1.5, -0.8, 0.8, 0.8, 1.5, 0.9]]),
        lower=np.full((1, 6), -np.inf),
        upper=np.full((1, 6), np.inf),
        sample_shape=y.shape[1:],
    )
    res = MinuitFitter(tol=1e-6).fit_block(model, block)
    ref = ORACLE.fit_block(model, block)
    assert res.status[0] == ref.status[0] == Status.OK
    np.testing.assert_allclose(res.params, ref.params, rtol=1e-5, atol=1e-5)
    assert res.params[0, 4] == 1.5 and res.params[0, 5] == res.params[0, 2]
    assert np.isnan(res.errors[0, 4])  # fixed
    assert res.errors[0, 5] == pytest.approx(res.errors[0, 2], rel=1e-12)  # T C T^T
    np.testing.assert_allclose(res.errors, ref.errors, rtol=0.05)


class RaisingGaussian(Gaussian1D):
    def evaluate(self, *args):
        raise RuntimeError("the model broke")


def test_a_model_that_raises_is_a_fit_error():
    res = MinuitFitter().fit_block(RaisingGaussian(), make_block())
    assert np.all(res.status == Status.FIT_ERROR)
    assert "RuntimeError: the model broke" in res.messages[0]


def test_parallel_fit_with_fitter_minuit():
    cube = gaussian_cube((40, 4, 3), noise=0.05, seed=2)
    res = parfit.parallel_fit(
        cube.model,
        cube.data,
        world=cube.world,
        fitter="minuit",
        fitter_kwargs={"tol": 1e-4},
        scheduler="synchronous",
    )
    ref = parfit.parallel_fit(cube.model, cube.data, world=cube.world, scheduler="synchronous")
    assert res.success.all() and ref.success.all()
    for name in res.param_names:
        np.testing.assert_allclose(res.parameters[name], ref.parameters[name], rtol=1e-3)


# --- MINOS ------------------------------------------------------------------------------


def profiled(model, block, best, values, name, statistic):
    """The minimum of ``statistic`` over the other parameters with ``name`` held at
    ``values`` (one per fit), by the batched solver on a copy of the model."""
    fixed = model.copy()
    getattr(fixed, name).fixed = True
    k = model.param_names.index(name)
    p0 = best.copy()
    p0[:, k] = values
    start = FitBlock(
        x=block.x,
        y=block.y,
        weights=block.weights,
        valid=block.valid,
        p0=p0,
        lower=block.lower,
        upper=block.upper,
        sample_shape=block.sample_shape,
    )
    res = ORACLE.fit_block(fixed, start, statistic=statistic)
    assert np.all(res.status == Status.OK)
    return res.statistic


@pytest.mark.parametrize(
    "statistic, n_sigma, n_sigma_ul",
    [("cash", 1.0, 1.645), ("chi2", 2.0, 3.0), ("cstat", 0.8, 1.0)],
)
def test_minos_intervals_are_where_the_profile_rises_by_n_sigma_squared(
    statistic, n_sigma, n_sigma_ul
):
    """For chi-square the profile is of the raw chi-square (the covariance scaling
    by the reduced chi-square does not apply); n_sigma below 1 works too."""
    model, block, _ = spectra(statistic, seed=5)
    rows = slice(0, 4)
    block = FitBlock(
        x=block.x,
        y=block.y[rows],
        weights=None if block.weights is None else block.weights[rows],
        valid=block.valid[rows],
        p0=block.p0[rows],
        lower=block.lower[rows],
        upper=block.upper[rows],
        sample_shape=block.sample_shape,
    )
    fitter = MinuitFitter()
    res = fitter.fit_block(model, block, statistic=statistic)
    assert np.all(res.status == Status.OK)
    names = ["amplitude_0", "amplitude_1"]
    out = fitter.profile_block(model, block, res, names, n_sigma, n_sigma_ul, statistic=statistic)
    assert set(out) == {f"{n}_{s}" for n in names for s in ("lo", "hi", "ul")} | {"flags"}
    assert out["flags"].dtype == np.uint8 and np.all(out["flags"] == 0)
    for name in names:
        k = model.param_names.index(name)
        lo, hi, ul = (out[f"{name}_{side}"] for side in ("lo", "hi", "ul"))
        assert lo.shape == (4,) and lo.dtype == np.float64
        assert np.all(lo < res.params[:, k]) and np.all(res.params[:, k] < hi)
        for values, rise in ((lo, n_sigma**2), (hi, n_sigma**2), (ul, n_sigma_ul**2)):
            at = profiled(model, block, res.params, values, name, statistic)
            np.testing.assert_allclose(at - res.statistic, rise, atol=1e-3)


def test_minos_gives_the_bound_and_flags_it():
    """Const1D on four samples with unit weights: chi2 = 4 (a - mean)**2 + const, so
    the 1-sigma interval is mean -+ 0.5 and the 2-sigma upper limit mean + 1 (the raw
    chi-square: scaled by the reduced chi-square these would be ten times narrower);
    bounds [0, 1.4] cut some of them.  A fit that is not OK gets NaN."""
    y = np.array([[0.0, 0.4, 0.1, 0.3], [0.8, 1.2, 0.9, 1.1], [0.5, 0.7, 0.6, 0.6], [np.nan] * 4])
    n = len(y)
    block = FitBlock(
        x=(np.arange(4.0),),
        y=y,
        weights=None,
        valid=np.isfinite(y),
        p0=np.full((n, 1), 0.7),
        lower=np.zeros((n, 1)),
        upper=np.full((n, 1), 1.4),
        sample_shape=(4,),
    )
    fitter = MinuitFitter()
    res = fitter.fit_block(Const1D(), block)
    assert res.status.tolist() == [Status.OK] * 3 + [Status.NO_VALID_DATA]
    out = fitter.profile_block(Const1D(), block, res, ["amplitude"], 1.0, 2.0)
    nan = np.nan
    # Fit 0: the lower end is the bound 0; fit 1: the upper end and the upper limit
    # are the bound 1.4; fit 2: only the upper limit is.
    np.testing.assert_allclose(out["amplitude_lo"], [0.0, 0.5, 0.1, nan], atol=1e-5)
    np.testing.assert_allclose(out["amplitude_hi"], [0.7, 1.4, 1.1, nan], atol=1e-5)
    np.testing.assert_allclose(out["amplitude_ul"], [1.2, 1.4, 1.4, nan], atol=1e-5)
    bit = int(Flag.LIMIT_AT_BOUND)
    assert bit == 32
    assert out["flags"].tolist() == [bit, bit, bit, 0]
    assert out["amplitude_lo"][0] == 0.0 and out["amplitude_hi"][1] == 1.4
    assert out["amplitude_ul"][1] == out["amplitude_ul"][2] == 1.4


def test_limit_at_bound_is_described():
    from parfit.status import FLAG_DESCRIPTIONS

    assert FLAG_DESCRIPTIONS[Flag.LIMIT_AT_BOUND] == (
        "a profile interval or upper limit reached a parameter's bound; the bound is given"
    )


def test_profile_block_refuses_what_it_cannot_profile():
    model = Gaussian1D()
    model.stddev.fixed = True
    block = make_block()
    fitter = MinuitFitter()
    res = fitter.fit_block(model, block)
    with pytest.raises(InputError) as err:
        fitter.profile_block(model, block, res, ["stddev", "width"], 1.0, 2.0)
    assert str(err.value) == (
        "names: 'stddev', 'width' not free parameter(s) of the model; MINOS profiles free "
        "parameters: 'amplitude', 'mean'"
    )
    with pytest.raises(InputError) as err:
        fitter.profile_block(model, block, res, ["mean"], 0.0, 2.0)
    assert str(err.value) == "n_sigma must be a positive number; got 0.0"
    with pytest.raises(InputError) as err:
        fitter.profile_block(model, block, res, ["mean"], 1.0, np.inf)
    assert str(err.value) == "n_sigma_ul must be a positive number; got inf"


# --- options and messages --------------------------------------------------------------


def test_describe_and_get_fitter():
    fitter = get_fitter("minuit")
    assert isinstance(fitter, MinuitFitter) and fitter.name == "minuit"
    assert "minuit" in parfit.fitters.FITTER_NAMES
    assert fitter.describe() == (
        "iminuit MIGRAD and HESSE (tol=0.1, strategy=1, ncall=None, scale_covariance=True)"
    )
    other = MinuitFitter(tol=np.float32(0.5), strategy=np.int64(2), ncall=np.uint16(500))
    assert other.describe() == (
        "iminuit MIGRAD and HESSE (tol=0.5, strategy=2, ncall=500, scale_covariance=True)"
    )
    assert MinuitFitter.statistics == ("chi2", "cash", "cstat")


def test_unknown_fitter_kwargs_are_refused():
    fitter = MinuitFitter()
    message = (
        "fitter_kwargs has unknown key(s) 'ftol', 'max_nfev' for fitter 'minuit'; valid keys "
        "are 'tol', 'strategy', 'ncall', 'scale_covariance'"
    )
    with pytest.raises(InputError) as err:
        fitter.check(Gaussian1D(), {"max_nfev": 10, "ftol": 1e-3})
    assert str(err.value) == message
    with pytest.raises(InputError) as err:
        fitter.fit_block(Gaussian1D(), make_block(), fitter_kwargs={"max_nfev": 10, "ftol": 1})
    assert str(err.value) == message


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strategy": 3}, "strategy must be 0, 1 or 2; got 3"),
        ({"strategy": 1.0}, "strategy must be 0, 1 or 2; got 1.0"),
        ({"strategy": True}, "strategy must be 0, 1 or 2; got True"),
        ({"tol": 0}, "tol must be a positive number; got 0"),
        ({"tol": -0.1}, "tol must be a positive number; got -0.1"),
        ({"tol": "0.1"}, "tol must be a positive number; got '0.1'"),
        ({"tol": np.nan}, "tol must be a positive number; got nan"),
        ({"ncall": 0}, "ncall must be a positive integer or None; got 0"),
        ({"ncall": 10.5}, "ncall must be a positive integer or None; got 10.5"),
        ({"scale_covariance": "yes"}, "scale_covariance must be True or False; got 'yes'"),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(InputError) as err:
        MinuitFitter(**kwargs)
    assert str(err.value) == f"MinuitFitter: {message}"
    with pytest.raises(InputError) as err:
        MinuitFitter().check(Gaussian1D(), kwargs)
    assert str(err.value) == f"fitter_kwargs: {message}"


def test_missing_iminuit(monkeypatch):
    monkeypatch.setitem(sys.modules, "iminuit", None)  # import iminuit now fails
    message = (
        "fitter='minuit' needs iminuit, which is not installed; install the optional extra: "
        "pip install 'parfit[minuit]'"
    )
    with pytest.raises(InputError) as err:
        get_fitter("minuit")
    assert str(err.value) == message
    with pytest.raises(InputError) as err:
        MinuitFitter()
    assert str(err.value) == message
    assert isinstance(get_fitter("trf"), parfit.fitters.ScipyFitter)  # the others still work


def test_unknown_statistic_is_refused_as_statistics_does():
    with pytest.raises(InputError) as expected:
        stats.check_statistic("poisson")
    with pytest.raises(InputError) as err:
        MinuitFitter().check_statistic("poisson")
    assert str(err.value) == str(expected.value)
    assert str(err.value) == "statistic must be one of 'chi2', 'cash', 'cstat'; got 'poisson'"
    for statistic in MinuitFitter.statistics:
        MinuitFitter().check_statistic(statistic)
    with pytest.raises(InputError) as err:
        MinuitFitter().fit_block(Gaussian1D(), make_block(), statistic="poisson")
    assert str(err.value) == str(expected.value)


def test_no_free_parameter_gives_the_statistic_of_the_start():
    model = Gaussian1D(fixed={"amplitude": True, "mean": True, "stddev": True})
    y = gaussian(TRUE[:1])[0] + 0.1
    res = MinuitFitter().fit(model, X, y=y)
    assert res.status[0] == Status.OK
    np.testing.assert_array_equal(res.params[0], [1.0, 0.0, 1.0])
    expected = np.sum((Gaussian1D()(X) - y) ** 2)
    assert res.statistic[0] == pytest.approx(expected, rel=1e-12)
    assert np.all(np.isnan(res.errors))
