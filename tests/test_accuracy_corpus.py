"""The batched solver is never less right than per-fit scipy TRF from the same start.

Against the independent oracle of :func:`parfit.corpus.trf_oracle` (one
``scipy.optimize.least_squares(method="trf")`` per spectrum, the same start
and bounds), on the hard corpus of :func:`parfit.corpus.hard_corpus` (noise
only, weak lines, far starts, narrow and wide lines, baselines, blends,
masked gaps, data in tiny and huge units) and on three real cubes: at least
99.5 % of the fits of every kind reach a chi-square no worse than TRF's, and
no fit reported OK has a non-finite error.
"""

import numpy as np
import pytest
from _real_cubes import REAL_CUBES, real_case

import parfit
from parfit import Flag, Status
from parfit.corpus import KINDS, SCALED_KINDS, SCALES, compare, fit_case, hard_corpus, trf_oracle
from parfit.fitters import AstropyFitter, BatchedFitter, ScipyFitter
from parfit.models import Gaussian1D

N = 300


@pytest.fixture(scope="module")
def oracles():
    """TRF's answers, computed once per kind."""
    cache = {}

    def get(case):
        if case.kind not in cache:
            with np.errstate(all="ignore"):
                cache[case.kind] = trf_oracle(case)
        return cache[case.kind]

    return get


@pytest.mark.parametrize("kind", KINDS)
def test_no_worse_than_trf_on_the_hard_corpus(kind, oracles):
    case = hard_corpus(kind, n=N)
    result = fit_case(case)
    figures = compare(case, result, oracles(case))
    assert figures["no_worse"] >= 0.995, figures
    assert figures["ok_nonfinite_errors"] == 0, figures
    # Every fit ends with a verdict: no fit is left running or unexplained.
    assert np.all(result.status != Status.NOT_RUN)


@pytest.mark.parametrize("kind", ["noise_only", "blend2", "masked", "scaled_1e-26"])
def test_the_numpy_engine_too(kind, oracles):
    case = hard_corpus(kind, n=N)
    figures = compare(case, fit_case(case, BatchedFitter(engine="numpy")), oracles(case))
    assert figures["no_worse"] >= 0.995 and figures["ok_nonfinite_errors"] == 0, figures


@pytest.mark.parametrize("kind", SCALED_KINDS)
def test_data_in_any_unit_give_the_scaled_fit(kind):
    scale = SCALES[kind]
    plain, scaled = hard_corpus("moderate", n=N), hard_corpus(kind, n=N)
    np.testing.assert_allclose(scaled.y, plain.y * scale, rtol=1e-15)
    a, b = fit_case(plain), fit_case(scaled)
    same_status = a.status == b.status
    assert same_status.mean() >= 0.995
    both = same_status & (a.status == Status.OK)
    factor = np.where(
        np.char.startswith(np.array(plain.model.param_names), "amplitude"), scale, 1.0
    )
    np.testing.assert_allclose(b.params[both] / factor, a.params[both], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(b.errors[both] / factor, a.errors[both], rtol=1e-5)
    np.testing.assert_allclose(b.statistic[both] / scale**2, a.statistic[both], rtol=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL_CUBES)
def test_no_worse_than_trf_on_real_cubes(name):
    case = real_case(name)
    with np.errstate(all="ignore"):
        oracle = trf_oracle(case)
    figures = compare(case, fit_case(case), oracle)
    assert figures["no_worse"] >= 0.995, figures
    assert figures["ok_nonfinite_errors"] == 0, figures
    assert figures["ok"] >= 0.95, figures


# ---------------------------------------------------------------------------
# Degenerate fits are not successes


X = np.arange(64.0)


def _fit(model, y, fitter=None):
    from parfit.fitters.base import block_from_arrays

    fitter = fitter or BatchedFitter()
    y = np.atleast_2d(y)
    blocks = [block_from_arrays(fitter.parameter_arrays(model), (X,), row) for row in y]
    return [fitter.fit_block(model, b) for b in blocks]


def test_a_flat_spectrum_is_not_a_line():
    # A constant: a Gaussian can only mimic it with a huge width.
    rng = np.random.default_rng(4)
    y = 5.0 + rng.normal(0, 0.01, (20, 64))
    statuses = []
    for res in _fit(Gaussian1D(4.0, 32.0, 10.0), y):
        # The width runs away: either it is still running at max_nfev, or it stopped
        # far wider than the data and the fit is DEGENERATE.  Never OK.
        statuses.append(res.status[0])
        assert res.status[0] in (Status.DEGENERATE, Status.NOT_CONVERGED)
        assert np.isnan(res.params[0]).all()
        if res.status[0] == Status.DEGENERATE:
            assert res.flags[0] & Flag.DEGENERATE and "collapsed" in res.messages[0]
    assert Status.DEGENERATE in statuses


def test_a_one_channel_spike_is_not_a_line():
    y = np.zeros((1, 64))
    y[0, 40] = 10.0
    (res,) = _fit(Gaussian1D(3.0, 39.0, 2.0), y)
    assert res.status[0] == Status.DEGENERATE
    assert res.flags[0] & (Flag.DEGENERATE | Flag.SINGULAR)


@pytest.mark.parametrize("fitter", [BatchedFitter(), ScipyFitter("trf")], ids=["batched", "trf"])
def test_noise_only_fits_are_honest(fitter):
    case = hard_corpus("noise_only", n=120)
    with np.errstate(all="ignore"):
        result = fit_case(case, fitter)
    ok = result.status == Status.OK
    assert np.all(np.isfinite(result.errors[ok]))
    degenerate = result.status == Status.DEGENERATE
    assert degenerate.any()  # noise makes some fits collapse ...
    assert np.all(result.flags[degenerate] & (Flag.SINGULAR | Flag.DEGENERATE))
    assert np.all(np.isfinite(result.statistic[degenerate]))  # ... with their chi-square kept
    assert np.all(np.isnan(result.params[degenerate]))


def test_a_fit_on_a_bound_stays_ok_and_is_flagged():
    rng = np.random.default_rng(2)
    y = Gaussian1D(5.0, 30.0, 3.0)(X) + rng.normal(0, 0.1, (6, 64))
    model = Gaussian1D(2.0, 30.0, 3.0, bounds={"amplitude": (0, 4.0)})
    for res in _fit(model, y):
        assert res.status[0] == Status.OK and res.flags[0] & Flag.AT_BOUND
        assert np.isclose(res.params[0, 0], 4.0, rtol=1e-9)
        assert np.all(np.isfinite(res.errors[0]))


def test_the_astropy_path_gets_the_same_flags():
    from astropy.modeling import fitting, models

    case = hard_corpus("noise_only", n=60)
    cube = case.y.T.reshape(64, 6, 10)
    start = models.Gaussian1D(1.0, 32.0, 3.0)
    with np.errstate(all="ignore"):
        ours = parfit.parallel_fit(
            Gaussian1D(1.0, 32.0, 3.0),
            cube,
            world=(X,),
            fitter=ScipyFitter("trf"),
            scheduler="synchronous",
        )
        theirs = parfit.parallel_fit(
            start, cube, world=(X,), fitter=fitting.TRFLSQFitter(), scheduler="synchronous"
        )
    assert isinstance(AstropyFitter(fitting.TRFLSQFitter()), AstropyFitter)
    for res in (ours, theirs):
        ok = res.status == Status.OK
        assert (res.status == Status.DEGENERATE).any()
        assert np.all(np.isfinite(res.errors["stddev"][ok]))
    # Same fits, same verdicts (scipy's TRF is what astropy's TRFLSQFitter runs).
    assert np.mean(ours.status == theirs.status) >= 0.95
