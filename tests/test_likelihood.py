"""Likelihood fits of counts: Cash and C-stat, TS maps, profile intervals and upper limits.

Checked against known truth (synthetic Poisson cubes), against an
independent oracle (scipy ``minimize`` of the Cash statistic written out in
``tests/_likelihood_oracle.py``) and against independent refits (TS, the
rise of the statistic at the ends of an interval).
"""

import numpy as np
import pytest
from _likelihood_oracle import cash, cash_minimum

import parfit
from parfit import Flag, Status
from parfit.datasets import counts_cube
from parfit.errors import InputError, InputTypeError
from parfit.fitters import BatchedFitter, ScipyFitter
from parfit.fitters import statistics as stats
from parfit.models import Const1D, Gaussian1D

SHAPE = (60, 18, 18)


def never_dispatch(*args, **kwargs):
    raise AssertionError("work was dispatched before the bad argument was caught")


@pytest.fixture(scope="module")
def cube():
    return counts_cube(SHAPE, seed=7)


def fixed_shape(cube, lower=None):
    """The cube's model with the line's centre and width held at the truth."""
    model = cube.model.copy()
    model.mean_0.value = cube.truth["mean_0"]
    model.stddev_0.value = cube.truth["stddev_0"]
    model.mean_0.fixed = True
    model.stddev_0.fixed = True
    if lower is not None:
        model.amplitude_0.bounds = (lower, None)
    return model


def rows(cube):
    return cube.data.reshape(cube.data.shape[0], -1).T


def starts(model, shape):
    return np.stack(
        [np.broadcast_to(model.parameters[n].value, shape).ravel() for n in model.param_names],
        axis=1,
    )


# --- the statistics themselves -----------------------------------------------------------


def test_cash_and_cstat_are_gammapy_definitions():
    rng = np.random.default_rng(0)
    mu = rng.uniform(0.01, 9.0, (3, 40))
    n = rng.poisson(mu).astype(float)
    valid = np.ones_like(n, dtype=bool)
    got_cash = stats.statistic_values("cash", n, mu, None, valid)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_log_n = np.where(n > 0, n * np.log(np.where(n > 0, n, 1.0)), 0.0)
    np.testing.assert_allclose(got_cash, 2 * np.sum(mu - n * np.log(mu), axis=1), rtol=1e-12)
    got_cstat = stats.statistic_values("cstat", n, mu, None, valid)
    want = 2 * np.sum(mu - n + n_log_n - n * np.log(mu), axis=1)
    np.testing.assert_allclose(got_cstat, want, rtol=1e-12)
    # Masked samples do not count.
    valid[:, :10] = False
    np.testing.assert_allclose(
        stats.statistic_values("cash", n, mu, None, valid),
        2 * np.sum((mu - n * np.log(mu))[:, 10:], axis=1),
        rtol=1e-12,
    )


def test_deviance_residuals_square_to_the_cstat_terms_and_give_its_gradient():
    n = np.array([0.0, 0.0, 1.0, 3.0, 7.0, 7.0, 7.0, 50.0, 2.0])
    mu = np.array([0.3, 0.0, 1.0, 3.0000001, 6.9999, 7.0, 20.0, 49.0, 1e-4])
    r, slope = stats.deviance_residuals(n, mu)
    positive = mu > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = 2 * (mu - n + np.where(n > 0, n * np.log(n / mu), 0.0))
        ratio = np.where(positive, 1 - n / np.where(positive, mu, 1.0), 0.0)
    np.testing.assert_allclose(r**2, terms, rtol=1e-9, atol=1e-14)
    assert np.all(np.sign(r[r != 0]) == np.sign((mu - n)[r != 0]))
    # r dr/dmu = (1 - n/mu), half the derivative of the term (where mu > 0).
    np.testing.assert_allclose((r * slope)[positive], ratio[positive], rtol=1e-9, atol=1e-12)
    # At mu == n the slope is its limit 1/sqrt(n).
    assert slope[5] == pytest.approx(1 / np.sqrt(7.0))
    # Undefined: negative model, or zero model under counts.
    r_bad, _ = stats.deviance_residuals(np.array([1.0, 0.0]), np.array([0.0, -1e-9]))
    assert np.all(np.isinf(r_bad))


def test_unknown_statistic_is_refused_listing_the_valid_ones():
    with pytest.raises(
        InputError, match=r"^statistic must be one of 'chi2', 'cash', 'cstat'; got 'poisson'$"
    ):
        parfit.parallel_fit(
            Const1D(), np.ones((5, 2)), statistic="poisson", scheduler=never_dispatch
        )


# --- the solver against the oracle ------------------------------------------------------


def _oracle_comparison(model, cube, select, lower, upper):
    result = parfit.parallel_fit(
        model, cube.data, world=cube.world, statistic="cash", scheduler="synchronous"
    )
    y = rows(cube)
    p0 = starts(model, SHAPE[1:])
    mine = np.where(result.success, result.statistic, np.inf).ravel()
    worse = []
    picked = np.flatnonzero(select)
    picked = np.random.default_rng(1).choice(picked, min(len(picked), 60), replace=False)
    for i in np.sort(picked):
        found = cash_minimum(model, cube.world[0], y[i], p0[i], lower, upper)
        assert found is not None, "the shared start is a valid point of the likelihood"
        if mine[i] > found[0] + 1e-6 * max(1.0, abs(found[0])):
            worse.append(i)
    return result, np.array(worse, dtype=int)


def test_cash_optimum_no_worse_than_scipy_minimize_where_there_is_a_line(cube):
    inside = (cube.truth["amplitude_0"] > 0).ravel()
    lower = np.array([-np.inf, -np.inf, 0.01, -np.inf])
    result, worse = _oracle_comparison(cube.model, cube, inside, lower, np.full(4, np.inf))
    assert inside.sum() > 80
    assert len(worse) == 0, worse  # of the 60 pixels compared
    assert result.success.ravel()[inside].mean() >= 0.99


def test_fixed_line_shape_no_worse_than_scipy_minimize_on_every_pixel(cube):
    model = fixed_shape(cube, lower=0.0)
    lower = np.array([0.0, -np.inf, -np.inf, -np.inf])
    everywhere = np.ones(SHAPE[1] * SHAPE[2], dtype=bool)
    result, worse = _oracle_comparison(model, cube, everywhere, lower, np.full(4, np.inf))
    assert len(worse) == 0, worse
    assert result.success.all()


def test_an_optimum_on_the_edge_of_the_likelihood_is_flagged(cube):
    """A negative line may put the model at zero in an empty channel: the edge is flagged."""
    model = fixed_shape(cube)  # amplitude free to go negative
    lower = np.full(4, -np.inf)
    outside = (cube.truth["amplitude_0"] == 0).ravel()
    result, worse = _oracle_comparison(model, cube, outside, lower, np.full(4, np.inf))
    flags = result.flags.ravel()
    assert np.all(flags[worse] & Flag.AT_BOUND), "a fit short of scipy's optimum is not flagged"
    y = rows(cube)
    params = np.stack([result.parameters[n].ravel() for n in model.param_names], axis=1)
    edge = np.flatnonzero(flags & Flag.AT_BOUND)
    assert len(edge), "no fit reached the edge: the test lost its subject"
    mu = model.evaluate(cube.world[0], params[edge])
    assert np.all(np.min(np.where(y[edge] == 0, mu, np.inf), axis=1) < 1e-5)
    assert np.all(result.parameters["amplitude_0"].ravel()[edge] < 0)


def test_compiled_and_numpy_engines_agree(cube):
    y = rows(cube)[:120]
    model = cube.model
    args = (model, cube.world[0])
    out = {}
    for engine in ("numpy", "compiled"):
        fitter = BatchedFitter(engine=engine)
        block = parfit.fitters.FitBlock(
            x=(cube.world[0],),
            y=y,
            weights=None,
            valid=np.ones_like(y, dtype=bool),
            p0=np.tile([4.0, 6.4, 0.12, 0.6], (len(y), 1)),
            lower=np.tile([-np.inf, -np.inf, 0.01, -np.inf], (len(y), 1)),
            upper=np.full((len(y), 4), np.inf),
            sample_shape=(y.shape[1],),
        )
        out[engine] = fitter.fit_block(args[0], block, statistic="cstat")
    np.testing.assert_array_equal(out["numpy"].status, out["compiled"].status)
    np.testing.assert_allclose(out["numpy"].params, out["compiled"].params, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out["numpy"].statistic, out["compiled"].statistic, rtol=1e-12)


def test_scipy_trf_minimises_the_same_statistic(cube):
    y = rows(cube)[:40]
    model = Gaussian1D(4.0, 6.4, 0.12) + Const1D(0.6)
    model.mean_0.fixed = True
    model.stddev_0.fixed = True
    model.amplitude_0.bounds = (0.0, None)
    x = cube.world[0]
    for i in range(len(y)):
        batched = BatchedFitter().fit(model, x, y=y[i], statistic="cash")
        scipy_fit = ScipyFitter("trf").fit(model, x, y=y[i], statistic="cash")
        assert batched.status[0] == scipy_fit.status[0] == Status.OK
        assert scipy_fit.statistic[0] == pytest.approx(batched.statistic[0], rel=1e-9, abs=1e-9)
        assert scipy_fit.statistic[0] == pytest.approx(cash(model, x, y[i], batched.params[0]))
        np.testing.assert_allclose(scipy_fit.errors, batched.errors, rtol=1e-4)


def test_a_start_where_the_likelihood_is_undefined_is_not_a_failure():
    """A guessed background of 0 under counts: the fit starts again from least squares."""
    x = np.linspace(-5, 5, 50)
    rng = np.random.default_rng(3)
    y = rng.poisson(3 * np.exp(-0.5 * x**2) + 0.5).astype(float)
    model = Gaussian1D(3.0, 0.0, 0.05) + Const1D(0.0)  # zero far from the narrow line
    start_mu = model.evaluate(x, np.array([[3.0, 0.0, 0.05, 0.0]]))[0]
    assert np.any((start_mu == 0) & (y > 0))
    fitted = BatchedFitter().fit(model, x, y=y, statistic="cash")
    assert fitted.status[0] == Status.OK
    assert fitted.params[0, 0] == pytest.approx(3.0, abs=1.0)
    assert fitted.params[0, 3] == pytest.approx(0.5, abs=0.3)


def test_a_model_negative_at_the_start_under_counts_is_reported_clearly():
    x = np.linspace(-5, 5, 30)
    y = np.full(30, 2.0)
    line = Gaussian1D(1.0, 0.0, 0.5) + Const1D(-1.0)  # no amplitude makes the wings positive
    line.mean_0.fixed = True
    line.stddev_0.fixed = True
    line.amplitude_1.fixed = True
    result = BatchedFitter().fit(line, x, y=y, statistic="cash")
    assert result.status[0] == Status.NONFINITE
    assert "zero where there are counts at the starting values" in result.messages[0]


# --- what the statistic buys: truth, errors, coverage ---------------------------------------


@pytest.fixture(scope="module")
def big():
    return counts_cube((60, 40, 40), seed=11)


def test_cash_amplitude_is_unbiased_where_chi_square_is_not(big):
    model = fixed_shape(big)
    inside = big.truth["amplitude_0"] > 0
    truth = big.truth["amplitude_0"][inside]
    cash_fit = parfit.parallel_fit(model, big.data, world=big.world, statistic="cash")
    ratio = cash_fit.parameters["amplitude_0"][inside] / truth
    assert abs(np.median(ratio) - 1) < 0.04
    assert abs(np.median(cash_fit.parameters["amplitude_1"] / big.truth["amplitude_1"]) - 1) < 0.04
    # Chi-square with the usual errors of counts, sqrt(max(n, 1)): biased.
    weights = 1 / np.sqrt(np.maximum(big.data, 1.0))
    chi2_fit = parfit.parallel_fit(model, big.data, world=big.world, weights=weights)
    background = np.median(chi2_fit.parameters["amplitude_1"] / big.truth["amplitude_1"])
    assert background < 0.85  # the background is pulled down by the empty channels
    assert cash_fit.statistic_name == "cash"
    assert chi2_fit.statistic_name == "chi2"


def test_fisher_errors_match_the_scatter(big):
    model = fixed_shape(big)
    inside = big.truth["amplitude_0"] > 0
    fit = parfit.parallel_fit(model, big.data, world=big.world, statistic="cash")
    pull = (fit.parameters["amplitude_0"] - big.truth["amplitude_0"]) / fit.errors["amplitude_0"]
    pull = pull[inside]
    assert 0.85 < np.std(pull) < 1.15
    assert np.all(np.isfinite(fit.errors["amplitude_0"][fit.success]))


def test_profile_intervals_cover_the_truth_at_their_nominal_rate(big):
    model = fixed_shape(big)
    inside = big.truth["amplitude_0"] > 0
    fit = parfit.parallel_fit(
        model, big.data, world=big.world, statistic="cash", profile="amplitude_0"
    )
    lo, hi = fit.intervals["amplitude_0"]
    truth = big.truth["amplitude_0"]
    covered = (lo <= truth) & (truth <= hi)
    assert 0.60 <= covered[inside].mean() <= 0.78
    assert np.all(np.isfinite(lo[fit.success])) and np.all(np.isfinite(hi[fit.success]))
    assert np.all(lo[fit.success] <= fit.parameters["amplitude_0"][fit.success])
    assert np.all(hi[fit.success] >= fit.parameters["amplitude_0"][fit.success])
    # Asymmetric, as a Poisson profile is: wider above than below.
    best = fit.parameters["amplitude_0"]
    assert np.median((hi - best)[inside]) > np.median((best - lo)[inside])


# --- TS maps --------------------------------------------------------------------------


def test_ts_agrees_with_an_independent_null_refit(cube):
    model = fixed_shape(cube)
    fit = parfit.parallel_fit(
        model, cube.data, world=cube.world, statistic="cash", null={"amplitude_0": 0.0}
    )
    null_model = model.copy()
    null_model.amplitude_0.value = 0.0
    null_model.amplitude_0.fixed = True
    null_fit = parfit.parallel_fit(null_model, cube.data, world=cube.world, statistic="cash")
    ok = fit.success & null_fit.success
    assert ok.mean() > 0.95
    np.testing.assert_allclose(
        fit.ts[ok], (null_fit.statistic - fit.statistic)[ok], rtol=1e-6, atol=1e-6
    )
    assert np.all(fit.ts[ok] >= 0)
    sign = np.sign(fit.parameters["amplitude_0"][ok])
    np.testing.assert_allclose(fit.sqrt_ts[ok], sign * np.sqrt(fit.ts[ok]), rtol=1e-12)
    inside = cube.truth["amplitude_0"] > 0
    assert np.median(fit.ts[inside & ok]) > 25
    assert np.median(fit.ts[~inside & ok]) < 2


def test_ts_of_chi_square_is_delta_chi_square():
    rng = np.random.default_rng(5)
    x = np.linspace(-5, 5, 40)
    amp = np.array([0.0, 0.5, 2.0])[:, None]
    data = (amp[:, :, None] * np.exp(-0.5 * x**2)[None, None, :]).transpose(2, 0, 1)
    data = data + rng.normal(0, 0.3, data.shape)
    model = Gaussian1D(1.0, 0.0, 1.0)
    model.mean.fixed = True
    model.stddev.fixed = True
    fit = parfit.parallel_fit(
        model, data, world=(x,), weights=1 / 0.3, null={"amplitude": 0.0}, scheduler="synchronous"
    )
    want = []
    for y in data.reshape(40, -1).T:
        a = np.sum(y * np.exp(-0.5 * x**2)) / np.sum(np.exp(-(x**2)))
        want.append(a**2 * np.sum(np.exp(-(x**2))) / 0.3**2)  # the chi-square the line removes
    np.testing.assert_allclose(fit.ts.ravel(), want, rtol=1e-6)
    assert fit.statistic_name == "chi2"


def test_ts_is_never_negative_when_the_best_fit_missed_the_null_solution():
    """The best fit stuck in a worse minimum than the null's: refitted from the null."""
    x = np.linspace(-10, 10, 80)
    y = np.exp(-0.5 * ((x - 4.0) / 1.0) ** 2) * 3.0 + 0.2
    data = np.stack([y, y], axis=1)[:, :, None]
    model = Gaussian1D(1.0, -6.0, 0.3) + Gaussian1D(3.0, 4.0, 1.0) + Const1D(0.2)
    model.amplitude_0.bounds = (0.0, None)
    fit = parfit.parallel_fit(
        model, data, world=(x,), null={"amplitude_0": 0.0}, scheduler="synchronous"
    )
    assert np.all(fit.ts[fit.success] >= 0)


# --- profile intervals and upper limits --------------------------------------------------


def test_the_statistic_rises_by_n_sigma_squared_at_the_ends(cube):
    model = fixed_shape(cube, lower=0.0)
    fit = parfit.parallel_fit(
        model,
        cube.data,
        world=cube.world,
        statistic="cash",
        profile="amplitude_0",
        n_sigma=1.0,
        n_sigma_ul=2.0,
        scheduler="synchronous",
    )
    lo, hi = fit.intervals["amplitude_0"]
    ul = fit.upper_limits["amplitude_0"]
    free_ends = fit.success & ~((fit.flags & Flag.LIMIT_AT_BOUND) != 0)
    assert free_ends.sum() > 50
    for end, rise in ((lo, 1.0), (hi, 1.0), (ul, 4.0)):
        held = model.copy()
        held.amplitude_0.value = np.where(free_ends, end, 1.0)
        held.amplitude_0.fixed = True
        again = parfit.parallel_fit(held, cube.data, world=cube.world, statistic="cash")
        delta = (again.statistic - fit.statistic)[free_ends]
        np.testing.assert_allclose(delta, rise, atol=2e-3)
    assert np.all(ul[fit.success] > hi[fit.success])


def test_an_interval_reaching_a_bound_gives_the_bound_and_a_flag(cube):
    model = fixed_shape(cube, lower=0.0)
    fit = parfit.parallel_fit(
        model, cube.data, world=cube.world, statistic="cash", profile="amplitude_0"
    )
    lo, hi = fit.intervals["amplitude_0"]
    at_bound = (fit.flags & Flag.LIMIT_AT_BOUND) != 0
    outside = cube.truth["amplitude_0"] == 0
    assert at_bound[outside].mean() > 0.3  # nothing there: the lower end is the bound 0
    assert np.all(lo[at_bound] == 0.0)
    assert np.all(lo[fit.success & ~at_bound] > 0.0)
    # The upper limits outside the source are small, and above the truth (0).
    ul = fit.upper_limits["amplitude_0"]
    assert np.all(ul[outside & fit.success] > 0)
    assert np.median(ul[outside & fit.success]) < 2.5


def test_results_do_not_depend_on_the_block_size(cube):
    model = fixed_shape(cube, lower=0.0)
    args = dict(
        world=cube.world, statistic="cash", null={"amplitude_0": 0.0}, profile="amplitude_0"
    )
    one = parfit.parallel_fit(model, cube.data, chunk_n_max=37, scheduler="threads", **args)
    two = parfit.parallel_fit(model, cube.data, chunk_n_max=500, scheduler="synchronous", **args)
    for name in (
        "amplitude_0",
        "ts",
        "sqrt_ts",
        "amplitude_0_lo",
        "amplitude_0_hi",
        "amplitude_0_ul",
    ):
        np.testing.assert_array_equal(one._fields[name], two._fields[name])
    np.testing.assert_array_equal(one.flags, two.flags)


# --- bad input, refused before dispatch ------------------------------------------------------


COUNTS = np.random.default_rng(0).poisson(2.0, (20, 3, 4)).astype(float)


def call(model=None, data=COUNTS, **kwargs):
    kwargs.setdefault("scheduler", never_dispatch)
    kwargs.setdefault("statistic", "cash")
    model = Gaussian1D(0.5, 10.0, 3.0) + Const1D(1.5) if model is None else model
    return parfit.parallel_fit(model, data, world=(np.arange(20.0),), **kwargs)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            dict(weights=np.ones((20, 3, 4))),
            InputError,
            "weights cannot be used with statistic='cash': the Poisson likelihood of counts "
            "has no weights",
        ),
        (
            dict(null={"amplitude_0": "zero"}),
            InputTypeError,
            "null['amplitude_0'] must be a finite number (the parameter's value under the null "
            "hypothesis); got 'zero'",
        ),
        (dict(null=[0.0]), InputTypeError, "null must be None or a non-empty mapping"),
        (dict(null={}), InputTypeError, "null must be None or a non-empty mapping"),
        (dict(null={"amplitude_0": np.nan}), InputError, "null['amplitude_0'] must be finite"),
        (
            dict(null={"height": 0.0}),
            InputError,
            "null: 'height' is not a parameter of the model; its parameters are 'amplitude_0'",
        ),
        (
            dict(profile=["mean_0", "mean_0"]),
            InputError,
            "profile names 'mean_0' more than once",
        ),
        (dict(profile=3), InputTypeError, "profile must be None, a parameter name or a sequence"),
        (dict(profile="width"), InputError, "profile: 'width' is not a parameter of the model"),
        (dict(n_sigma=-1), InputError, "n_sigma must be a positive finite number; got -1"),
        (dict(n_sigma_ul="2"), InputTypeError, "n_sigma_ul must be a positive number; got '2'"),
        (
            dict(fitter="lm"),
            InputError,
            "statistic='cash' cannot be minimised by fitter 'scipy-lm', which minimises 'chi2' "
            "only",
        ),
    ],
)
def test_bad_likelihood_arguments_are_refused_before_dispatch(kwargs, error, message):
    with pytest.raises(error) as info:
        call(**kwargs)
    assert message in str(info.value)


def test_null_and_profile_names_must_be_free_parameters():
    model = Gaussian1D(2.0, 0.0, 3.0) + Const1D(1.0)
    model.stddev_0.fixed = True
    with pytest.raises(InputError, match="null: 'stddev_0' is fixed or tied"):
        call(model, null={"stddev_0": 1.0})
    model.amplitude_0.bounds = (0.0, None)
    with pytest.raises(
        InputError, match=r"null\['amplitude_0'\] = -1.0 is outside the parameter's bounds"
    ):
        call(model, null={"amplitude_0": -1.0})


@pytest.mark.parametrize("statistic", ["cash", "cstat"])
def test_counts_must_be_non_negative_and_finite_where_used(statistic):
    negative = COUNTS.copy()
    negative[3, 1, 2] = -1.0
    with pytest.raises(InputError, match=r"^data holds 1 negative value\(s\); statistic="):
        call(data=negative, statistic=statistic)
    missing = COUNTS.copy()
    missing[:2, 0, 0] = np.nan
    with pytest.raises(InputError, match=r"data holds 2 NaN or infinite value\(s\).*pass mask="):
        call(data=missing, statistic=statistic)
    # Masked, they are left out: accepted (and fitted: the mean of the counts used).
    fit = call(
        Const1D(1.0),
        data=missing,
        mask=np.isnan(missing),
        statistic=statistic,
        scheduler="synchronous",
    )
    assert fit.success.all()
    assert fit.parameters["amplitude"][0, 0] == pytest.approx(np.mean(missing[2:, 0, 0]), rel=1e-5)


def test_lazy_counts_are_checked_too():
    import dask.array as da

    negative = COUNTS.copy()
    negative[0, 0, 0] = -2.0
    with pytest.raises(InputError, match="negative value"):
        call(data=da.from_array(negative, chunks=(20, 1, 2)))


def test_an_astropy_fitter_cannot_minimise_cash():
    from astropy.modeling import fitting
    from astropy.modeling import models as amodels

    with pytest.raises(InputError, match="cannot be minimised by fitter"):
        parfit.parallel_fit(
            amodels.Gaussian1D(),
            COUNTS,
            world=(np.arange(20.0),),
            fitter=fitting.TRFLSQFitter(),
            statistic="cash",
            scheduler=never_dispatch,
        )


# --- everywhere else: stores, resume, xarray, summary, joint fits -----------------------


def test_streamed_store_resume_and_read_back(cube, tmp_path):
    model = fixed_shape(cube, lower=0.0)
    store = tmp_path / "counts.zarr"
    args = dict(
        world=cube.world,
        statistic="cash",
        null={"amplitude_0": 0.0},
        profile="amplitude_0",
        chunk_n_max=100,
        scheduler="synchronous",
    )
    streamed = parfit.parallel_fit(model, cube.data, output=store, **args)
    memory = parfit.parallel_fit(model, cube.data, **args)
    back = parfit.read_result(store)
    assert back.statistic_name == "cash"
    assert back.likelihood == memory.likelihood
    for name in ("ts", "sqrt_ts"):
        np.testing.assert_array_equal(getattr(back, name), getattr(memory, name))
        np.testing.assert_array_equal(getattr(streamed, name), getattr(memory, name))
    np.testing.assert_array_equal(
        back.intervals["amplitude_0"][1], memory.intervals["amplitude_0"][1]
    )
    np.testing.assert_array_equal(
        back.upper_limits["amplitude_0"], memory.upper_limits["amplitude_0"]
    )
    # Resuming with another statistic or another null hypothesis is refused.
    for change in (dict(statistic="cstat"), dict(null={"amplitude_0": 0.5})):
        with pytest.raises(InputError, match="resume=True"):
            parfit.parallel_fit(model, cube.data, output=store, resume=True, **{**args, **change})
    again = parfit.parallel_fit(model, cube.data, output=store, resume=True, **args)
    np.testing.assert_array_equal(again.ts, memory.ts)
    ds = back.to_xarray()
    assert ds.attrs["statistic"] == "cash"
    for name in ("ts", "sqrt_ts", "amplitude_0_lo", "amplitude_0_hi", "amplitude_0_ul"):
        assert name in ds
    assert "upper limit" in ds["amplitude_0_ul"].attrs["long_name"]
    copy = tmp_path / "copy.zarr"
    memory.to_zarr(copy)
    np.testing.assert_array_equal(parfit.read_result(copy).ts, memory.ts)


def test_summary_reports_the_statistic_ts_and_profiles(cube):
    fit = parfit.parallel_fit(
        fixed_shape(cube, lower=0.0),
        cube.data,
        world=cube.world,
        statistic="cash",
        null={"amplitude_0": 0.0},
        profile="amplitude_0",
    )
    text = fit.summary()
    assert "median Cash statistic:" in text
    assert "TS against the null hypothesis (amplitude_0=0):" in text
    assert "profile of amplitude_0: 1-sigma intervals found for" in text
    plain = parfit.parallel_fit(Const1D(), np.ones((4, 2)), scheduler="synchronous")
    with pytest.raises(AttributeError, match="null: this result has none"):
        _ = plain.ts


def test_cstat_reads_as_a_goodness_of_fit(big):
    fit = parfit.parallel_fit(fixed_shape(big), big.data, world=big.world, statistic="cstat")
    dof = big.data.shape[0] - 2
    assert 0.8 < np.median(fit.statistic) / dof < 1.2
    cash_fit = parfit.parallel_fit(fixed_shape(big), big.data, world=big.world, statistic="cash")
    np.testing.assert_allclose(
        cash_fit.parameters["amplitude_0"], fit.parameters["amplitude_0"], rtol=1e-9, atol=1e-12
    )


def test_joint_counts_fit_shares_the_line_and_splits_the_statistic():
    a = counts_cube((60, 6, 6), seed=1)
    b = counts_cube((40, 6, 6), seed=2)
    ma, mb = a.model.copy(), b.model.copy()
    for m in (ma, mb):
        m.amplitude_0.bounds = (0.0, None)
        m.stddev_0.fixed = True
    mb.mean_0.tied = "a.mean_0"
    fit = parfit.parallel_fit(
        {"a": ma, "b": mb},
        {"a": a.data, "b": b.data},
        world={"a": a.world, "b": b.world},
        statistic="cash",
        scheduler="synchronous",
    )
    ok = fit.success
    assert ok.mean() > 0.9
    np.testing.assert_allclose(
        (fit.statistics["a"] + fit.statistics["b"])[ok], fit.statistic[ok], rtol=1e-9
    )
    np.testing.assert_array_equal(fit.parameters["b.mean_0"][ok], fit.parameters["a.mean_0"][ok])


def test_minuit_gives_the_same_optimum_and_intervals(cube):
    pytest.importorskip("iminuit")
    model = fixed_shape(cube, lower=0.0)
    data = cube.data[:, :3, :]
    args = dict(world=cube.world, statistic="cash", profile="amplitude_0", scheduler="synchronous")
    sub = model.copy()
    sub.mean_0.value = cube.truth["mean_0"][:3]
    sub.stddev_0.value = cube.truth["stddev_0"][:3]
    batched = parfit.parallel_fit(sub, data, **args)
    minuit = parfit.parallel_fit(sub, data, fitter="minuit", fitter_kwargs={"tol": 1e-6}, **args)
    ok = batched.success & minuit.success
    assert ok.mean() > 0.9
    np.testing.assert_allclose(minuit.statistic[ok], batched.statistic[ok], rtol=1e-7)
    np.testing.assert_allclose(
        minuit.parameters["amplitude_0"][ok], batched.parameters["amplitude_0"][ok], atol=2e-3
    )
    for k in (0, 1):
        np.testing.assert_allclose(
            minuit.intervals["amplitude_0"][k][ok],
            batched.intervals["amplitude_0"][k][ok],
            atol=2e-2,
        )


def test_minuit_starts_where_the_likelihood_is_defined():
    """Guessed backgrounds of zero under counts: minuit too goes through least squares."""
    pytest.importorskip("iminuit")
    cube = counts_cube((60, 6, 6), seed=0)
    model = cube.model.copy()
    model.mean_0.fixed = True
    model.stddev_0.fixed = True
    args = dict(world=cube.world, statistic="cash", initial="guess", scheduler="synchronous")
    x = cube.world[0]
    y = cube.data.reshape(60, -1).T
    guessed = model.guess(x, y=y, valid=np.ones_like(y, dtype=bool))
    undefined = [not np.isfinite(cash(model, x, y[i], guessed[i])) for i in range(len(y))]
    assert np.mean(undefined) > 0.5  # the test's subject: most guesses are undefined
    batched = parfit.parallel_fit(model, cube.data, **args)
    minuit = parfit.parallel_fit(
        model, cube.data, fitter="minuit", fitter_kwargs={"tol": 1e-6}, **args
    )
    assert minuit.success.mean() >= 0.8
    ok = minuit.success & batched.success
    np.testing.assert_allclose(minuit.statistic[ok], batched.statistic[ok], rtol=1e-7)
