"""Tests of Model.guess: vectorised automatic starting values."""

import re

import numpy as np
import pytest

from parfit.errors import InputError, ModelError
from parfit.models import (
    CompoundModel,
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
    model_from_function,
)

SEED = 20240917
N_FITS = 200
X = np.linspace(-10.0, 10.0, 201)
GUESSING = (
    "Gaussian1D, Lorentz1D, Voigt1D, Const1D, Linear1D, Polynomial1D, PowerLaw1D, Gaussian2D, "
    "CircularGaussian2D, Const2D"
)


def _voigt_fwhm(p):
    fwhm_l, fwhm_g = p[:, 2], p[:, 3]
    return 0.5346 * fwhm_l + np.sqrt(0.2166 * fwhm_l**2 + fwhm_g**2)


def _voigt_peak(p):
    at_zero = np.column_stack([np.zeros(len(p)), p[:, 1:]])
    return Voigt1D().evaluate(np.zeros(1), at_zero)[:, 0]


# name: (model, truth(rng, n), center column, amplitude(params), width(params))
PEAKS = {
    "Gaussian1D": (
        Gaussian1D(),
        lambda rng, n: np.column_stack(
            [rng.uniform(1, 3, n), rng.uniform(-5, 5, n), rng.uniform(0.3, 2.5, n)]
        ),
        1,
        lambda p: p[:, 0],
        lambda p: p[:, 2],
    ),
    "Lorentz1D": (
        Lorentz1D(),
        lambda rng, n: np.column_stack(
            [rng.uniform(1, 3, n), rng.uniform(-5, 5, n), rng.uniform(0.6, 5, n)]
        ),
        1,
        lambda p: p[:, 0],
        lambda p: p[:, 2],
    ),
    "Voigt1D": (
        Voigt1D(),
        lambda rng, n: np.column_stack(
            [
                rng.uniform(-5, 5, n),
                rng.uniform(1, 3, n),
                rng.uniform(0.3, 3, n),
                rng.uniform(0.3, 3, n),
            ]
        ),
        0,
        _voigt_peak,
        _voigt_fwhm,
    ),
}


def _noisy(clean, peak, snr, rng):
    if snr is None:
        return clean.copy()
    return clean + rng.normal(0.0, 1.0, clean.shape) * (peak / snr)[:, np.newaxis]


# ----------------------------------------------------------------------
# peaks: noiseless and noisy recovery


@pytest.mark.parametrize("name", sorted(PEAKS))
@pytest.mark.parametrize("snr", [None, 100, 10, 3])
def test_peak_recovery(name, snr):
    model, truth_fn, ic, amp_fn, width_fn = PEAKS[name]
    rng = np.random.default_rng(SEED)
    truth = truth_fn(rng, N_FITS)
    clean = model.evaluate(X, truth)
    y = _noisy(clean, amp_fn(truth), snr, rng)
    g = model.guess(X, y=y)
    assert g.shape == truth.shape and g.dtype == np.float64
    assert np.all(np.isfinite(g))
    width = width_fn(truth)
    center_ok = np.abs(g[:, ic] - truth[:, ic]) < width
    amp_ratio = amp_fn(g) / amp_fn(truth)
    width_ratio = width_fn(g) / width
    if snr is None or snr >= 100:
        # position within a tenth of the width, amplitude within 10 %, width within 15 %
        # (the smoothing is undone as for a Gaussian: Lorentzians come out a little wide)
        np.testing.assert_array_less(np.abs(g[:, ic] - truth[:, ic]), 0.1 * width)
        np.testing.assert_allclose(amp_ratio, 1.0, rtol=0.1)
        np.testing.assert_allclose(width_ratio, 1.0, rtol=0.15)
    elif snr >= 10:
        assert center_ok.all()
        np.testing.assert_allclose(amp_ratio, 1.0, rtol=0.3)
        assert np.all((width_ratio > 0.5) & (width_ratio < 2.0))
    else:
        assert center_ok.mean() >= 0.97
        assert np.mean(np.abs(amp_ratio - 1.0) < 0.3) >= 0.8
        assert np.mean((width_ratio > 0.5) & (width_ratio < 2.0)) >= 0.85


def test_gaussian1d_noiseless_is_nearly_exact():
    truth = np.array([[3.0, 1.3, 1.7], [0.5, -4.2, 0.6]])
    g = Gaussian1D().guess(X, y=Gaussian1D().evaluate(X, truth))
    np.testing.assert_allclose(g, truth, rtol=0.03, atol=0.01)


def test_narrow_and_coarsely_sampled_gaussians():
    rng = np.random.default_rng(SEED + 1)
    x = np.linspace(-10, 10, 41)  # spacing 0.5
    truth = np.column_stack(
        [rng.uniform(1, 3, 100), rng.uniform(-5, 5, 100), rng.uniform(0.5, 1.5, 100)]
    )
    g = Gaussian1D().guess(x, y=_noisy(Gaussian1D().evaluate(x, truth), truth[:, 0], 10, rng))
    assert np.all(np.abs(g[:, 1] - truth[:, 1]) < truth[:, 2])
    np.testing.assert_allclose(g[:, 0] / truth[:, 0], 1.0, rtol=0.3)
    np.testing.assert_allclose(g[:, 2] / truth[:, 2], 1.0, rtol=0.5)


def test_stddev_clipped_to_spacing_and_range():
    x = np.linspace(0.0, 10.0, 11)
    y = np.zeros((2, 11))
    y[0, 5] = 1.0  # a single-sample spike: narrower than the sampling
    y[1] = 1.0  # flat: wider than the range
    g = Gaussian1D().guess(x, y=y)
    assert g[0, 2] == pytest.approx(1.0)  # the sample spacing
    # no half-maximum crossing: a FWHM of the x range
    assert g[1, 2] == pytest.approx(10.0 / (2 * np.sqrt(2 * np.log(2))))
    y[1] = np.linspace(0.0, 1.0, 11) ** 0.01  # one crossing, at the left edge
    assert Gaussian1D().guess(x, y=y)[1, 2] <= 10.0


def test_absorption_found_with_a_negative_starting_amplitude():
    truth = np.array([[-2.0, 3.0, 1.0]])
    y = Gaussian1D().evaluate(X, truth) + 0.3 * Gaussian1D().evaluate(X, [[1.0, -5.0, 1.0]])
    emission = Gaussian1D().guess(X, y=y)
    absorption = Gaussian1D(amplitude=-1.0).guess(X, y=y)
    assert emission[0, 1] == pytest.approx(-5.0, abs=0.1)
    np.testing.assert_allclose(absorption, truth, rtol=0.05, atol=0.05)


# ----------------------------------------------------------------------
# baselines


@pytest.mark.parametrize("snr", [None, 100, 10, 3])
def test_const1d_is_the_median(snr):
    rng = np.random.default_rng(SEED + 2)
    level = rng.uniform(-3, 3, N_FITS)
    noise = 0.0 if snr is None else rng.normal(0, 1.0 / snr, (N_FITS, X.size))
    y = np.broadcast_to(level[:, None], (N_FITS, X.size)) + noise
    y[:, ::7] = 1e6  # outliers do not move a median much
    g = Const1D().guess(X, y=y)
    np.testing.assert_allclose(g[:, 0], np.median(y, axis=1))
    np.testing.assert_allclose(g[:, 0], level, atol=0.2 if snr is None else 0.2 + 1.0 / snr)


@pytest.mark.parametrize("snr", [None, 100, 10, 3])
def test_linear1d_is_least_squares(snr):
    rng = np.random.default_rng(SEED + 3)
    truth = rng.uniform(-2, 2, (N_FITS, 2))
    y = _noisy(Linear1D().evaluate(X, truth), np.ones(N_FITS), snr, rng)
    g = Linear1D().guess(X, y=y)
    expected = np.array([np.polyfit(X, row, 1) for row in y])  # slope, intercept
    np.testing.assert_allclose(g, expected, rtol=1e-9, atol=1e-9)
    if snr is None:
        np.testing.assert_allclose(g, truth, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("snr", [None, 100, 10, 3])
def test_polynomial1d_is_least_squares_per_fit_mask(snr):
    rng = np.random.default_rng(SEED + 4)
    model = Polynomial1D(3)
    truth = rng.uniform(-1, 1, (N_FITS, 4))
    x = np.linspace(-3, 5, 60)
    y = _noisy(model.evaluate(x, truth), np.ones(N_FITS), snr, rng)
    y[rng.uniform(size=y.shape) < 0.2] = np.nan
    g = model.guess(x, y=y)
    for k in range(0, N_FITS, 37):
        ok = np.isfinite(y[k])
        np.testing.assert_allclose(g[k], np.polyfit(x[ok], y[k, ok], 3)[::-1], rtol=1e-7, atol=1e-9)
    if snr is None:
        np.testing.assert_allclose(g, truth, rtol=1e-7, atol=1e-9)


def test_polynomial1d_with_too_few_samples_stays_finite():
    y = np.full((2, 10), np.nan)
    y[0, :2] = [1.0, 2.0]  # two samples for a cubic
    y[1, 3] = 5.0  # one sample
    g = Polynomial1D(3).guess(np.arange(10.0), y=y)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(
        Polynomial1D(3).evaluate(np.arange(10.0), g)[0, :2], [1, 2], atol=1e-9
    )


@pytest.mark.parametrize("snr", [None, 100, 10, 3])
def test_powerlaw1d_loglog_fit_keeps_x_0(snr):
    rng = np.random.default_rng(SEED + 5)
    x = np.linspace(0.5, 10.0, 100)
    truth = np.column_stack(
        [rng.uniform(1, 3, N_FITS), np.full(N_FITS, 2.0), rng.uniform(-1, 2.5, N_FITS)]
    )
    clean = PowerLaw1D().evaluate(x, truth)
    y = clean if snr is None else clean * (1 + rng.normal(0, 1.0 / snr, clean.shape))
    g = PowerLaw1D(x_0=2.0).guess(x, y=y)
    assert np.all(g[:, 1] == 2.0)
    tol = 1e-9 if snr is None else 3.0 / snr
    np.testing.assert_allclose(g[:, 0] / truth[:, 0], 1.0, atol=tol)
    np.testing.assert_allclose(g[:, 2], truth[:, 2], atol=tol)


def test_powerlaw1d_without_positive_samples_keeps_start():
    y = -np.ones((1, 5))
    g = PowerLaw1D(amplitude=3.0, alpha=1.5).guess(np.arange(1.0, 6.0), y=y)
    np.testing.assert_array_equal(g, [[3.0, 1.0, 1.5]])


# ----------------------------------------------------------------------
# 2-D


def _gaussian2d_truth(rng, n, rotated):
    return np.column_stack(
        [
            rng.uniform(1, 3, n),
            rng.uniform(8, 24, n),
            rng.uniform(8, 24, n),
            rng.uniform(1, 4, n),
            rng.uniform(1, 4, n),
            rng.uniform(-0.5, 0.5, n) if rotated else np.zeros(n),
        ]
    )


@pytest.mark.parametrize("snr", [None, 100, 10, 3])
@pytest.mark.parametrize("rotated", [False, True])
def test_gaussian2d_recovery(snr, rotated):
    rng = np.random.default_rng(SEED + 6)
    gy, gx = np.mgrid[0:32, 0:32].astype(float)
    x0, x1 = gx.ravel(), gy.ravel()
    truth = _gaussian2d_truth(rng, 150, rotated)
    y = _noisy(Gaussian2D().evaluate(x0, x1, truth), truth[:, 0], snr, rng)
    start = np.tile(Gaussian2D().starting_values((1,))[:, 0], (150, 1))
    start[:, 5] = truth[:, 5]  # theta is kept: start it at the truth
    g = Gaussian2D().guess(x0, x1, y=y, start=start)
    np.testing.assert_array_equal(g[:, 5], truth[:, 5])
    smallest = truth[:, 3:5].min(axis=1)
    center_ok = np.hypot(g[:, 1] - truth[:, 1], g[:, 2] - truth[:, 2]) < smallest
    amp_ratio = g[:, 0] / truth[:, 0]
    width_ratio = g[:, 3:5] / truth[:, 3:5]
    if snr is None or snr >= 100:
        np.testing.assert_allclose(g[:, :5], truth[:, :5], rtol=0.05, atol=0.05)
    elif snr >= 10:
        assert center_ok.all()
        np.testing.assert_allclose(amp_ratio, 1.0, rtol=0.3)
        assert np.all((width_ratio > 0.5) & (width_ratio < 2.0))
    else:
        assert center_ok.mean() >= 0.85
        assert np.mean(np.abs(amp_ratio - 1) < 0.3) >= 0.75


def test_gaussian2d_keeps_theta_and_projects_widths():
    gy, gx = np.mgrid[-15:16, -15:16].astype(float)
    truth = np.array([[2.0, 1.0, -2.0, 4.0, 1.5, 0.6]])
    y = Gaussian2D().evaluate(gx.ravel(), gy.ravel(), truth)
    g = Gaussian2D(theta=0.6).guess(gx.ravel(), gy.ravel(), y=y)
    np.testing.assert_allclose(g, truth, rtol=0.03, atol=0.03)
    wrong = Gaussian2D().guess(gx.ravel(), gy.ravel(), y=y)  # theta 0: spread along x and y
    assert wrong[0, 5] == 0.0
    assert 1.5 < wrong[0, 4] < wrong[0, 3] < 4.0


# ----------------------------------------------------------------------
# compound models


def test_two_gaussians_and_a_constant_find_both_peaks():
    model = Gaussian1D() + Gaussian1D() + Const1D()
    truth = np.array([[2.0, -3.0, 1.0, 1.0, 4.0, 2.0, 0.5]])
    g = model.guess(X, y=model.evaluate(X, truth))
    np.testing.assert_allclose(g, truth, rtol=0.03, atol=0.02)


@pytest.mark.parametrize("snr", [None, 100, 10, 3])
def test_three_gaussians_and_a_line(snr):
    rng = np.random.default_rng(SEED + 7)
    n = N_FITS
    model = Gaussian1D() + Gaussian1D() + Gaussian1D() + Linear1D()
    # lines at least 3.5 sigma apart (strongly blended lines are not told apart)
    truth = np.column_stack(
        [
            rng.uniform(1, 3, n),
            rng.uniform(-8, -5, n),
            rng.uniform(0.3, 1, n),
            rng.uniform(1, 3, n),
            rng.uniform(-1.5, 1.5, n),
            rng.uniform(0.3, 1, n),
            rng.uniform(1, 3, n),
            rng.uniform(5, 8, n),
            rng.uniform(0.3, 1, n),
            rng.uniform(-0.1, 0.1, n),
            rng.uniform(-1, 1, n),
        ]
    )
    faintest = truth[:, [0, 3, 6]].min(axis=1)
    y = _noisy(model.evaluate(X, truth), faintest, snr, rng)
    g = model.guess(X, y=y)
    means = g[:, [1, 4, 7]]
    found = np.ones(n, bool)
    for j in range(3):
        found &= (np.abs(means - truth[:, [1 + 3 * j]]) < truth[:, [2 + 3 * j]]).any(axis=1)
    # each guessed line sits on a different true line
    distinct = np.abs(np.diff(np.sort(means, axis=1), axis=1)).min(axis=1) > 0.3
    if snr is None or snr >= 10:
        assert found.all() and distinct.all()
        np.testing.assert_allclose(g[:, 10], truth[:, 10], atol=0.2 if snr else 0.05)
    else:
        assert (found & distinct).mean() >= 0.9


def test_compound_peaks_are_guessed_in_leaf_order():
    model = Lorentz1D() + Gaussian1D() + Const1D()
    y = (Gaussian1D(1.0, 5.0, 0.5) + Gaussian1D(3.0, -2.0, 1.0) + Const1D(1.0))(X)[None]
    g = model.guess(X, y=y)
    # the first peak leaf takes the strongest line, the next one what is left
    assert g[0, 1] == pytest.approx(-2.0, abs=0.1)
    assert g[0, 4] == pytest.approx(5.0, abs=0.1)
    assert g[0, 6] == pytest.approx(1.0, abs=0.05)


def test_compound_baseline_leaves_any_position():
    # the baseline is guessed first whatever its place in the sum
    model = Const1D() + Gaussian1D()
    g = model.guess(X, y=(Const1D(2.0) + Gaussian1D(1.0, 1.0, 1.0))(X)[None])
    np.testing.assert_allclose(g, [[2.0, 1.0, 1.0, 1.0]], rtol=0.03, atol=0.02)


def test_compound_fixed_baseline_is_subtracted_at_its_value():
    model = Gaussian1D() + Const1D(0.0, fixed={"amplitude": True})
    y = Gaussian1D(2.0, 1.0, 1.0)(X)[None]
    g = model.guess(X, y=y)
    np.testing.assert_allclose(g, [[2.0, 1.0, 1.0, 0.0]], rtol=0.03, atol=0.02)


def test_compound_tied_parameters_keep_start_but_ties_shape_the_subtraction():
    model = Gaussian1D() + Gaussian1D(mean=99.0)
    model.mean_1.tied = "mean_0 + 6"
    model.stddev_1.tied = "stddev_0"
    truth = (Gaussian1D(2.0, -3.0, 1.0) + Gaussian1D(1.0, 3.0, 1.0))(X)[None]
    g = model.guess(X, y=truth)
    assert g[0, 4] == 99.0 and g[0, 5] == 1.0  # tied: start values
    np.testing.assert_allclose(g[0, [0, 1, 2, 3]], [2.0, -3.0, 1.0, 1.0], rtol=0.05, atol=0.05)


# ----------------------------------------------------------------------
# masks, NaN, per-fit x


@pytest.mark.parametrize("name", sorted(PEAKS))
def test_nan_rows_and_all_nan_row_keeps_start(name):
    model, truth_fn, ic, amp_fn, width_fn = PEAKS[name]
    rng = np.random.default_rng(SEED + 8)
    truth = truth_fn(rng, 6)
    y = model.evaluate(X, truth)
    y[1, ::3] = np.nan
    y[2, :40] = np.nan
    y[3, 100:] = np.inf
    y[4] = np.nan
    start = model.starting_values((6,)).T.copy()
    start[4] = np.arange(1.0, model.n_params + 1)
    g = model.guess(X, y=y, start=start)
    np.testing.assert_array_equal(g[4], start[4])
    ok = [0, 1, 2, 5]
    assert np.all(np.abs(g[ok, ic] - truth[ok, ic]) < 0.2 * width_fn(truth[ok]))
    assert np.all(np.isfinite(g))


def test_every_model_with_empty_rows_keeps_start_without_warnings():
    cases = [
        (Gaussian1D(), (X,)),
        (Lorentz1D(), (X,)),
        (Voigt1D(), (X,)),
        (Const1D(), (X,)),
        (Linear1D(), (X,)),
        (Polynomial1D(2), (X,)),
        (PowerLaw1D(), (X + 11,)),
        (Gaussian2D(), (X, X[::-1])),
        (Gaussian1D() + Linear1D(), (X,)),
    ]
    for model, xs in cases:
        y = np.full((3, X.size), np.nan)
        y[1, 7] = 2.0  # a single valid sample
        g = model.guess(*xs, y=y)
        start = model.starting_values((3,)).T
        np.testing.assert_array_equal(g[[0, 2]], start[[0, 2]])
        assert np.all(np.isfinite(g)), type(model).__name__
        # no width from one sample: widths keep their starting values
        for name in ("stddev", "fwhm", "fwhm_L", "fwhm_G", "x_stddev", "y_stddev"):
            if name in model.param_names:
                j = model.param_names.index(name)
                assert g[1, j] == start[1, j], (type(model).__name__, name)


def test_no_valid_data_at_all_returns_start_copy():
    start = np.array([[1.0, 2.0, 3.0]])
    y = np.full((1, 5), np.nan)
    g = Gaussian1D().guess(np.arange(5.0), y=y, start=start)
    np.testing.assert_array_equal(g, start)
    assert g is not start
    assert Gaussian1D().guess(np.arange(0.0), y=np.zeros((2, 0))).shape == (2, 3)
    assert Gaussian1D().guess(np.arange(5.0), y=np.zeros((0, 5))).shape == (0, 3)


def test_valid_mask_excludes_samples():
    y = Gaussian1D(1.0, 3.0, 1.0)(X)[None] + 0.0
    y[0, 20] = 100.0  # a spike
    valid = np.ones(y.shape, bool)
    valid[0, 20] = False
    g = Gaussian1D().guess(X, y=y, valid=valid)
    np.testing.assert_allclose(g, [[1.0, 3.0, 1.0]], rtol=0.03, atol=0.02)
    assert Gaussian1D().guess(X, y=y)[0, 1] == pytest.approx(X[20], abs=0.2)


@pytest.mark.parametrize("n_masked", [0, 8, 40, 140])
def test_masked_samples_are_as_if_absent_in_the_guess(n_masked):
    """The guess from a row with masked samples equals the guess from the valid ones alone.

    (The smoothing width was once capped by the row's length, masked samples
    included: a fit with many masked samples started elsewhere than the same
    fit without them.)
    """
    rng = np.random.default_rng(SEED + 31)
    x = np.linspace(-10, 10, 160)
    y = Gaussian1D(2.0, 1.0, 1.5)(x) + rng.normal(0.0, 0.1, x.size)
    valid = np.ones(x.size, bool)
    valid[rng.choice(x.size, n_masked, replace=False)] = False
    masked = Gaussian1D().guess(x, y=y[None], valid=valid[None])
    alone = Gaussian1D().guess(x[valid], y=y[valid][None])
    np.testing.assert_allclose(masked, alone, rtol=1e-12, atol=0)


def test_per_fit_x_in_any_order():
    rng = np.random.default_rng(SEED + 9)
    n = 50
    x = rng.uniform(-10, 10, (n, 150))  # unsorted, different for every fit
    truth = np.column_stack([rng.uniform(1, 3, n), rng.uniform(-5, 5, n), rng.uniform(0.5, 2, n)])
    y = Gaussian1D().evaluate(x, truth)
    g = Gaussian1D().guess(x, y=y)
    np.testing.assert_array_less(np.abs(g[:, 1] - truth[:, 1]), 0.5 * truth[:, 2])
    np.testing.assert_allclose(g[:, [0, 2]], truth[:, [0, 2]], rtol=0.35)
    x_nan = x.copy()
    x_nan[:, :30] = np.nan  # non-finite coordinates are not used
    g2 = Gaussian1D().guess(x_nan, y=y)
    np.testing.assert_array_less(np.abs(g2[:, 1] - truth[:, 1]), 0.5 * truth[:, 2])
    np.testing.assert_allclose(g2[:, [0, 2]], truth[:, [0, 2]], rtol=0.35)
    # a baseline with per-fit x
    lin = np.column_stack([rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)])
    np.testing.assert_allclose(Linear1D().guess(x, y=Linear1D().evaluate(x, lin)), lin, atol=1e-9)


def test_rows_are_independent():
    rng = np.random.default_rng(SEED + 10)
    model = Gaussian1D() + Gaussian1D() + Linear1D()
    truth = np.array(
        [[2.0, -3.0, 1.0, 1.0, 4.0, 1.5, 0.05, 0.5], [1.0, 0.0, 0.5, 3.0, 6.0, 1.0, 0.0, -1.0]]
    )
    y = model.evaluate(X, truth) + rng.normal(0, 0.05, (2, X.size))
    both = model.guess(X, y=y)
    for k in range(2):
        np.testing.assert_allclose(model.guess(X, y=y[k : k + 1])[0], both[k], rtol=1e-10)


# ----------------------------------------------------------------------
# fixed, tied, bounds, start


def test_fixed_and_tied_keep_start():
    model = Gaussian1D(stddev=0.7, fixed={"stddev": True}, tied={"amplitude": "2 * stddev"})
    y = Gaussian1D(3.0, 2.0, 1.5)(X)[None]
    start = np.array([[5.0, 0.0, 0.7]])
    g = model.guess(X, y=y, start=start)
    assert g[0, 0] == 5.0 and g[0, 2] == 0.7
    assert g[0, 1] == pytest.approx(2.0, abs=0.05)


def test_guesses_are_clipped_into_scalar_and_per_pixel_bounds():
    y = np.stack([Gaussian1D(3.0, 2.0, 1.5)(X), Gaussian1D(3.0, -6.0, 1.5)(X)])
    model = Gaussian1D(
        amplitude=1.0,
        mean=np.array([0.0, -1.0]),
        stddev=2.5,
        bounds={
            "amplitude": (0.0, 2.5),
            "mean": (np.array([-1.0, -2.0]), np.array([1.0, 0.0])),
            "stddev": (2.0, None),
        },
    )
    g = model.guess(X, y=y)
    np.testing.assert_array_equal(g[:, 0], [2.5, 2.5])
    np.testing.assert_array_equal(g[:, 1], [1.0, -2.0])
    np.testing.assert_array_equal(g[:, 2], [2.0, 2.0])


def test_default_start_flattens_per_pixel_maps():
    y = np.full((6, X.size), np.nan)
    model = Gaussian1D(mean=np.arange(6.0).reshape(2, 3))
    g = model.guess(X, y=y)
    np.testing.assert_array_equal(g[:, 1], np.arange(6.0))
    with pytest.raises(InputError, match=r"per-pixel values of shape \(2, 3\)"):
        model.guess(X, y=np.zeros((4, X.size)))
    g = model.guess(X, y=y[:4], start=[1.0, 2.0, 3.0])  # explicit start
    np.testing.assert_array_equal(g[:, 1], [2.0] * 4)


def test_start_row_broadcasts_and_bad_start_shape():
    y = np.full((3, X.size), np.nan)
    np.testing.assert_array_equal(
        Gaussian1D().guess(X, y=y, start=[1.0, 2.0, 3.0]), np.tile([1.0, 2.0, 3.0], (3, 1))
    )
    with pytest.raises(
        InputError,
        match=re.escape(
            "start must have shape (n_fits, n_params) = (3, 3) or (3,), got shape (2, 3)"
        ),
    ):
        Gaussian1D().guess(X, y=y, start=np.zeros((2, 3)))


def test_input_validation():
    g = Gaussian1D()
    with pytest.raises(InputError, match="takes 1 independent variable"):
        g.guess(X, X, y=np.zeros((1, X.size)))
    with pytest.raises(InputError, match="y must have shape"):
        g.guess(X, y=np.zeros((1, 1, X.size)))
    with pytest.raises(InputError, match="independent variables must have shape"):
        g.guess(X[:-1], y=np.zeros((2, X.size)))
    with pytest.raises(InputError, match="valid must be a boolean array"):
        g.guess(X, y=np.zeros((1, X.size)), valid=np.ones((1, X.size)))
    with pytest.raises(InputError, match="valid of shape"):
        g.guess(X, y=np.zeros((1, X.size)), valid=np.ones((1, 3), bool))
    # one fit as a 1-D y
    assert g.guess(X, y=Gaussian1D(2.0, 1.0, 1.0)(X)).shape == (1, 3)


def test_guess_leaves_model_and_inputs_untouched():
    model = Gaussian1D(amplitude=np.ones(4), bounds={"mean": (-5, 5)}) + Const1D(0.2)
    before = model.to_yaml()
    x = X.copy()
    y = np.tile(Gaussian1D(2.0, 1.0, 1.0)(X), (4, 1))
    y[0, :5] = np.nan
    start = model.starting_values((4,)).reshape(model.n_params, 4).T.copy()
    for arr in (x, y, start):
        arr.flags.writeable = False
    y_copy, start_copy = y.copy(), start.copy()
    g = model.guess(x, y=y, start=start)
    assert model.to_yaml() == before
    np.testing.assert_array_equal(y, y_copy)
    np.testing.assert_array_equal(start, start_copy)
    assert g.flags.writeable and not np.shares_memory(g, start)


# ----------------------------------------------------------------------
# models that cannot guess


class Exponential1D(Model):
    param_specs = (ParameterSpec("amplitude", 1.0), ParameterSpec("tau", 1.0))

    def _evaluate(self, x, amplitude, tau):
        return amplitude * np.exp(-x / tau)


def test_can_guess():
    assert Gaussian1D().can_guess and Polynomial1D(2).can_guess and Gaussian2D().can_guess
    assert (Gaussian1D() + Gaussian1D() + Linear1D()).can_guess
    assert not Exponential1D().can_guess
    assert not (Gaussian1D() + Exponential1D()).can_guess
    for op in ("-", "*", "/"):
        assert not CompoundModel(op, Gaussian1D(), Const1D()).can_guess
    assert not (Gaussian1D() + Gaussian1D() * Const1D()).can_guess


def test_cannot_guess_messages():
    y = np.zeros((1, X.size))
    prefix = (
        f"cannot guess starting values; models that can: {GUESSING}, and compound "
        "models that only add (+) such models"
    )
    with pytest.raises(ModelError) as info:
        Exponential1D().guess(X, y=y)
    assert str(info.value) == f"Exponential1D {prefix}"
    with pytest.raises(ModelError) as info:
        (Gaussian1D() * Const1D()).guess(X, y=y)
    assert str(info.value) == f"CompoundModel {prefix}; this one combines models with '*'"
    with pytest.raises(ModelError) as info:
        (Gaussian1D() + Const1D() - Gaussian1D() / Const1D()).guess(X, y=y)
    assert str(info.value) == f"CompoundModel {prefix}; this one combines models with '-', '/'"
    with pytest.raises(ModelError) as info:
        (Gaussian1D() + Exponential1D()).guess(X, y=y)
    assert str(info.value) == f"CompoundModel {prefix}; its component Exponential1D cannot guess"
    Line = model_from_function(lambda x, a, b: a * x + b, name="Line")
    with pytest.raises(ModelError, match=r"^Line cannot guess starting values"):
        Line().guess(X, y=y)


class Exponential1DGuess(Exponential1D):
    def _guess(self, xs, y, valid, start):
        (x,) = xs
        use = valid & (y > 0)
        w = use.astype(float)
        # log-linear fit, vectorised
        t = np.where(use, x, 0.0)
        ly = np.where(use, np.log(np.where(use, y, 1.0)), 0.0)
        n, sx, sy = w.sum(1), (w * t).sum(1), (w * ly).sum(1)
        sxx, sxy = (w * t * t).sum(1), (w * t * ly).sum(1)
        slope = (n * sxy - sx * sy) / (n * sxx - sx**2)
        return {"amplitude": np.exp((sy - slope * sx) / n), "tau": -1.0 / slope}


class BadGuess(Exponential1D):
    def _guess(self, xs, y, valid, start):
        return {"width": np.ones(y.shape[0])}


def test_user_model_with_guess_hook():
    model = Exponential1DGuess(tau=1.0, bounds={"tau": (0.0, 3.0)})
    assert model.can_guess
    x = np.linspace(0, 5, 30)
    y = Exponential1D().evaluate(x, np.array([[2.0, 1.5], [1.0, 10.0]]))
    np.testing.assert_allclose(model.guess(x, y=y), [[2.0, 1.5], [1.0, 3.0]], rtol=1e-9)
    g = (model + Const1D()).guess(x, y=y + 0.0)
    assert g.shape == (2, 3)
    with pytest.raises(
        ModelError,
        match=r"BadGuess._guess returned unknown parameter\(s\) "
        r"'width'; parameters are: amplitude, tau",
    ):
        BadGuess().guess(x, y=y)


def test_guess_feeds_per_pixel_starting_values():
    # guesses of a block become per-pixel maps of a model
    rng = np.random.default_rng(SEED + 11)
    truth = np.column_stack(
        [rng.uniform(1, 3, 12), rng.uniform(-5, 5, 12), rng.uniform(0.5, 2, 12)]
    )
    cube = Gaussian1D().evaluate(X, truth).T.reshape(X.size, 3, 4)
    model = Gaussian1D()
    g = model.guess(X, y=cube.reshape(X.size, -1).T)
    start = model.with_values(g.T.reshape(3, 3, 4))
    np.testing.assert_allclose(start.mean.value, truth[:, 1].reshape(3, 4), atol=0.05)
    np.testing.assert_allclose(start(X), cube.transpose(1, 2, 0), atol=0.05)


def test_peaks_of_a_sum_are_numbered_by_position():
    # The stronger line is on the right in the first fit and on the left in the
    # second; component 0 must hold the left line in both.
    x = np.linspace(-30, 30, 241)
    y = np.stack(
        [
            (Gaussian1D(1.0, -10.0, 2.0) + Gaussian1D(3.0, 12.0, 2.0))(x),
            (Gaussian1D(3.0, -10.0, 2.0) + Gaussian1D(1.0, 12.0, 2.0))(x),
        ]
    )
    out = (Gaussian1D() + Gaussian1D()).guess(x, y=y)
    np.testing.assert_allclose(out[:, 1], [-10.0, -10.0], atol=0.3)
    np.testing.assert_allclose(out[:, 4], [12.0, 12.0], atol=0.3)
    np.testing.assert_allclose(out[:, 0], [1.0, 3.0], rtol=0.1)
    # Peaks with a fixed parameter keep their place: the strongest line goes to
    # the first component, as found.
    fixed = Gaussian1D() + Gaussian1D(fixed={"stddev": True}, stddev=2.0)
    np.testing.assert_allclose(fixed.guess(x, y=y)[:, 1], [12.0, -10.0], atol=0.3)
