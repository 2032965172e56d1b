"""The contract every fitter meets on a block of fits.

A new fitter (such as the batched solver) gets these tests by adding a
subclass of :class:`FitterContract` that says how to build it and its model.
"""

import pickle

import numpy as np
import pytest
from astropy.modeling import fitting
from astropy.modeling import models as amodels

from parfit import Flag, Status
from parfit.fitters import AstropyFitter, BlockResult, FitBlock, ScipyFitter
from parfit.models import Gaussian1D

N_SAMPLES = 40
X = np.linspace(-5, 5, N_SAMPLES)
TRUE = np.array(
    [
        [2.0, 0.3, 1.1],
        [1.0, -0.5, 0.8],
        [3.0, 1.0, 1.5],
        [1.5, 0.0, 1.0],
        [2.5, -1.0, 1.2],
        [1.2, 0.4, 0.9],
    ]
)


def gaussian(params):
    a, m, s = (params[:, k : k + 1] for k in range(3))
    return a * np.exp(-0.5 * ((X[None] - m) / s) ** 2)


def make_block(y=None, weights=None, valid=None, p0=None, lower=None, upper=None):
    rng = np.random.default_rng(0)
    if y is None:
        y = gaussian(TRUE) + rng.normal(0, 0.01, (len(TRUE), N_SAMPLES))
    n = y.shape[0]
    block = FitBlock(
        x=(X,),
        y=y,
        weights=weights,
        valid=np.isfinite(y) if valid is None else valid,
        p0=np.tile([1.5, 0.0, 1.0], (n, 1)) if p0 is None else p0,
        lower=np.tile([-np.inf, -np.inf, 1e-3], (n, 1)) if lower is None else lower,
        upper=np.full((n, 3), np.inf) if upper is None else upper,
        sample_shape=(N_SAMPLES,),
    )
    return block


class FitterContract:
    """Tests every fitter must pass; subclasses provide the fitter and model."""

    def make_fitter(self):
        raise NotImplementedError

    def make_model(self):
        raise NotImplementedError

    def fit(self, block, **kwargs):
        return self.make_fitter().fit_block(self.make_model(), block, **kwargs)

    def test_result_types_and_shapes(self):
        res = self.fit(make_block())
        assert isinstance(res, BlockResult)
        n = len(TRUE)
        assert res.params.shape == res.errors.shape == (n, 3)
        assert res.params.dtype == np.float64
        assert res.statistic.shape == (n,) and res.statistic.dtype == np.float64
        assert res.status.dtype == np.int8 and res.nfev.dtype == np.int32

    def test_recovers_truth(self):
        res = self.fit(make_block())
        assert np.all(res.status == Status.OK)
        np.testing.assert_allclose(res.params, TRUE, rtol=0.02, atol=0.02)
        assert np.all(np.isfinite(res.errors)) and np.all(res.errors > 0)
        assert np.all(res.statistic > 0) and np.all(res.nfev != 0)

    def test_statistic_is_chi_square(self):
        block = make_block()
        res = self.fit(block)
        resid = block.y - gaussian(res.params)
        np.testing.assert_allclose(res.statistic, np.sum(resid**2, axis=1), rtol=1e-8)

    def test_invalid_samples_and_pixels(self):
        y = gaussian(TRUE)
        y[0] = np.nan  # nothing valid
        y[1, 2:] = np.nan  # two samples for three parameters
        y[2, 5:20] = np.nan  # enough left: fitted
        res = self.fit(make_block(y=y))
        assert res.status[0] == Status.NO_VALID_DATA
        assert res.status[1] == Status.TOO_FEW_SAMPLES
        assert res.status[2] == Status.OK
        np.testing.assert_allclose(res.params[2], TRUE[2], rtol=1e-6)
        assert np.all(np.isnan(res.params[:2])) and np.all(np.isnan(res.statistic[:2]))
        assert set(res.messages) >= {0, 1}

    def test_nan_start_is_bad_start(self):
        p0 = np.tile([1.5, 0.0, 1.0], (len(TRUE), 1))
        p0[3, 1] = np.nan
        res = self.fit(make_block(p0=p0))
        assert res.status[3] == Status.BAD_START
        assert res.messages[3] == (
            "starting value NaN or outside bounds: parameter 'mean': nan not in [-inf, inf]"
        )
        assert np.all(res.status[np.arange(len(TRUE)) != 3] == Status.OK)

    def test_weights_change_the_fit_and_zero_weight_is_ignored(self):
        y = gaussian(TRUE)
        y[:, :5] += 10.0  # outliers ...
        w = np.ones_like(y)
        w[:, :5] = 0.0  # ... with zero weight
        valid = np.isfinite(y) & (w > 0)
        res = self.fit(make_block(y=y, weights=w, valid=valid))
        np.testing.assert_allclose(res.params, TRUE, rtol=1e-6)

    def test_deterministic(self):
        a = self.fit(make_block())
        b = self.fit(make_block())
        np.testing.assert_array_equal(a.params, b.params)
        np.testing.assert_array_equal(a.nfev, b.nfev)

    def test_block_arrays_are_not_modified(self):
        block = make_block(weights=np.ones((len(TRUE), N_SAMPLES)))
        for array in (
            block.y,
            block.weights,
            block.valid,
            block.p0,
            block.lower,
            block.upper,
            *block.x,
        ):
            array.setflags(write=False)
        res = self.fit(block)
        assert np.all(res.status == Status.OK)

    def test_fitter_pickles(self):
        fitter = self.make_fitter()
        clone = pickle.loads(pickle.dumps(fitter))
        a = fitter.fit_block(self.make_model(), make_block())
        b = clone.fit_block(self.make_model(), make_block())
        np.testing.assert_array_equal(a.params, b.params)


def _check_bounds(self):
    """Shared by the fitters that respect bounds exactly."""
    upper = np.full((len(TRUE), 3), np.inf)
    upper[:, 0] = 1.8  # below several true amplitudes
    res = self.fit(make_block(upper=upper))
    assert np.all(res.params[:, 0] <= 1.8)
    assert np.all(res.status == Status.OK)
    if getattr(self, "ends_on_bounds", False):
        # Trust-region reflective stays strictly inside: within rounding of the bound,
        # and flagged AT_BOUND (only there).
        capped = TRUE[:, 0] > 1.8
        np.testing.assert_allclose(res.params[capped, 0], 1.8, rtol=1e-12)
        np.testing.assert_array_equal(res.flags & Flag.AT_BOUND != 0, capped)


class TestScipyTRF(FitterContract):
    def make_fitter(self):
        return ScipyFitter("trf")

    def make_model(self):
        return Gaussian1D()

    test_bounds_respected = _check_bounds


class TestScipyDogbox(TestScipyTRF):
    def make_fitter(self):
        return ScipyFitter("dogbox")


class TestScipyLM(FitterContract):
    def make_fitter(self):
        return ScipyFitter("lm")

    def make_model(self):
        return Gaussian1D()


class TestAstropyTRF(FitterContract):
    def make_fitter(self):
        return AstropyFitter(fitting.TRFLSQFitter())

    def make_model(self):
        return amodels.Gaussian1D()


class TestAstropyLevMar(FitterContract):
    def make_fitter(self):
        return AstropyFitter(fitting.LevMarLSQFitter())

    def make_model(self):
        return amodels.Gaussian1D()


@pytest.mark.parametrize("fitter", [ScipyFitter("trf"), AstropyFitter(fitting.TRFLSQFitter())])
def test_fit_single_spectrum(fitter):
    model = (
        Gaussian1D(1.5, 0, 1) if isinstance(fitter, ScipyFitter) else amodels.Gaussian1D(1.5, 0, 1)
    )
    out = fitter.fit(model, X, y=gaussian(TRUE[:1])[0])
    np.testing.assert_allclose(out.params[0], TRUE[0], rtol=1e-7)


# The batched trust-region reflective solver, with each of its engines.
from parfit.fitters import BatchedFitter  # noqa: E402


class TestBatchedNumpy(FitterContract):
    def make_fitter(self):
        return BatchedFitter(engine="numpy")

    def make_model(self):
        return Gaussian1D()

    #: The batched solver projects onto the bounds: fits end exactly on them.
    ends_on_bounds = True
    test_bounds_respected = _check_bounds

    def test_fit_single_spectrum(self):
        out = self.make_fitter().fit(Gaussian1D(1.5, 0, 1), X, y=gaussian(TRUE[:1])[0])
        np.testing.assert_allclose(out.params[0], TRUE[0], rtol=1e-7)


class TestBatchedCompiled(TestBatchedNumpy):
    def make_fitter(self):
        pytest.importorskip("numba", reason="the compiled engine needs numba")
        return BatchedFitter(engine="compiled")
