"""The compiled guess gives the starting values of the numpy code it replaced.

The reference is a frozen copy of the old numpy estimators and baseline
clipping (``_guess_reference``).  Estimators and whole guesses are compared
bit for bit: the compiled loops add in numpy's (pairwise) order, and the
baselines' normal equations are still solved by numpy's pseudo-inverse.
"""

import _guess_reference as ref
import numpy as np
import pytest

from parfit.datasets import components_cube, gaussian_cube, multi_gaussian_cube
from parfit.models import (
    Const1D,
    Gaussian1D,
    Linear1D,
    Lorentz1D,
    Polynomial1D,
    PowerLaw1D,
    Voigt1D,
    _estimators,
)

SEED = 20260611


def _rows(cube):
    """Spectra of a cube as ``(n_fits, n_samples)``."""
    return np.moveaxis(cube.data, 0, -1).reshape(-1, cube.data.shape[0])


def _compare(model, *x, y, valid=None, start=None):
    new = model.guess(*x, y=y, valid=valid, start=start)
    with ref.reference_guess():
        old = model.guess(*x, y=y, valid=valid, start=start)
    np.testing.assert_array_equal(new, old)
    return new


def _noisy_rows(rng, n_fits, x, model, noise):
    """Rows of ``model`` plus noise, each with parameters jittered by 10 %."""
    p = model.starting_values((1,))[:, 0] * rng.uniform(0.9, 1.1, (n_fits, model.n_params))
    return model.evaluate(x, p) + rng.normal(0.0, noise, (n_fits, x.size))


# ----------------------------------------------------------------------
# estimators, bit for bit
def _random_rows(rng, n_fits, n, shared, descending=False):
    if shared:
        x = np.sort(rng.uniform(-10, 10, n))
        x = np.broadcast_to(x[::-1] if descending else x, (n_fits, n))
    else:
        x = rng.uniform(-10, 10, (n_fits, n))
        x[: n_fits // 2] = np.round(x[: n_fits // 2])  # ties in x
    c = rng.uniform(-8, 8, (n_fits, 1))
    w = rng.uniform(0.1, 3, (n_fits, 1))
    y = rng.uniform(0, 3, (n_fits, 1)) * np.exp(-0.5 * (x - c) ** 2 / w**2)
    y = y + rng.normal(0, rng.choice([0.0, 0.1, 1.0]), (n_fits, n))
    valid = rng.random((n_fits, n)) > rng.choice([0.0, 0.3, 0.95])
    valid[0] = False
    if n > 1:
        valid[1] = False
        valid[1, 0] = True  # one valid sample
    return x, np.where(valid, y, 0.0), valid


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 53, 129, 256, 300, 1100])
@pytest.mark.parametrize("shared", [True, False])
def test_estimators_equal_the_numpy_code_bit_for_bit(n, shared):
    rng = np.random.default_rng([SEED, n, shared])
    for descending in (False, True):
        x, y, valid = _random_rows(rng, 40, n, shared, descending)
        with np.errstate(all="ignore"):
            pairs = [
                (_estimators.peak_1d(x, y, valid), ref.peak_1d(x, y, valid)),
                (_estimators.masked_median(y, valid), ref.masked_median(y, valid)),
                (_estimators.masked_quantile(y, valid, 0.3), ref.masked_quantile(y, valid, 0.3)),
                (
                    _estimators.ls_amplitude(np.exp(-(x**2)), y, valid),
                    ref.ls_amplitude(np.exp(-(x**2)), y, valid),
                ),
            ]
        for new, old in pairs:
            np.testing.assert_array_equal(np.asarray(new), np.asarray(old))


def test_quantiles_with_ties_nan_and_infinities_bit_for_bit():
    rng = np.random.default_rng(SEED)
    a = rng.integers(0, 4, (300, 200)).astype(float)
    a[::3, ::5] = np.nan
    a[1::3, ::7] = np.inf
    a[2::3, ::11] = -np.inf
    valid = rng.random(a.shape) > 0.5
    valid[:, :3] = True
    for q in (0.0, 0.25, 0.5, 0.9, 1.0):
        with np.errstate(all="ignore"):
            old = ref.masked_quantile(a, valid, q)
        np.testing.assert_array_equal(_estimators.masked_quantile(a, valid, q), old)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_polyfit_equals_the_numpy_code(degree):
    rng = np.random.default_rng([SEED, degree])
    x, y, valid = _random_rows(rng, 200, 120, shared=False)
    valid[2, :] = False
    valid[2, : degree + 1] = True  # just enough samples
    valid[3, :] = False
    valid[3, :degree] = True  # singular: the minimum-norm solution
    with np.errstate(all="ignore"):
        new = _estimators.polyfit_masked(x, y, valid, degree)
        old = ref.polyfit_masked(x, y, valid, degree)
    np.testing.assert_array_equal(new, old)


def test_clip_round_equals_the_numpy_code():
    rng = np.random.default_rng(SEED)
    r = rng.normal(0, 1, (300, 150))
    r[:, 60:70] += 8.0
    use = rng.random(r.shape) > 0.2
    mask = use & (rng.random(r.shape) > 0.1)
    floor = np.full(300, 1e-12)
    n_min = np.full(300, 40.0)
    n_min[:10] = 1000.0  # too few left: the old mask
    new, changed = _estimators.clip_round(r, mask, use, floor, n_min, 2.0)
    with np.errstate(all="ignore"):
        med = ref.masked_median(r, mask)
        dev = np.abs(r - med[:, None])
        sigma = np.maximum(1.4826 * ref.masked_median(dev, mask), floor)
    old = use & (dev <= 2.0 * sigma[:, None])
    old = np.where((old.sum(axis=1) >= n_min)[:, None], old, mask)
    np.testing.assert_array_equal(new, old)
    np.testing.assert_array_equal(changed, (old != mask).any(axis=1))


# ----------------------------------------------------------------------
# whole guesses
def test_single_gaussian_cube():
    cube = gaussian_cube((53, 30, 30), seed=1, n_blank=20)
    _compare(cube.model, *cube.world, y=_rows(cube))


@pytest.mark.parametrize("n_components", [1, 2, 3])
@pytest.mark.parametrize("baseline", [True, False])
def test_multi_gaussian_cubes(n_components, baseline):
    cube = multi_gaussian_cube((256, 12, 15), n_components=n_components, baseline=baseline, seed=3)
    _compare(cube.model, *cube.world, y=_rows(cube))


def test_components_cube():
    cube = components_cube((100, 12, 18), seed=2)
    _compare(cube.model, *cube.world, y=_rows(cube))


@pytest.mark.parametrize(
    "model",
    [
        Gaussian1D(),
        Lorentz1D(),
        Voigt1D(),
        Const1D(),
        Linear1D(),
        Polynomial1D(3),
        PowerLaw1D(),
        Gaussian1D(-1.0) + Linear1D(),
        Gaussian1D() + Lorentz1D(2.0, 3.0) + Polynomial1D(2),
        Gaussian1D() + Gaussian1D(1.0, 2.0) + PowerLaw1D(),
        Const1D() + Gaussian1D() + Const1D(),
    ],
    ids=repr,
)
def test_models_on_hard_rows(model):
    """Noise only, NaN gaps, masks, per-fit and descending x, few and no valid samples."""
    rng = np.random.default_rng(SEED)
    n_fits, n = 60, 90
    x = np.linspace(1.0, 20.0, n)
    truth = Gaussian1D(3.0, 8.0, 1.5) + Gaussian1D(1.5, 13.0, 0.8) + Linear1D(0.05, 1.0)
    y = _noisy_rows(rng, n_fits, x, truth, 0.2)
    y[:10] = rng.normal(0.0, 1.0, (10, n))  # noise only
    y[10:20, 30:50] = np.nan  # gaps
    y[20] = np.nan  # nothing valid
    y[21, 3:] = np.nan  # very few valid samples
    y[22, 2:] = np.nan
    valid = rng.random((n_fits, n)) > 0.15
    for xs in (x, x[::-1], rng.permuted(np.tile(x, (n_fits, 1)), axis=1)):
        _compare(model, xs, y=y, valid=valid)
        _compare(model, xs, y=y)


def test_negative_start_looks_for_dips():
    rng = np.random.default_rng(SEED)
    x = np.linspace(-10, 10, 150)
    y = -_noisy_rows(rng, 80, x, Gaussian1D(2.0, 1.0, 1.5) + Gaussian1D(1.0, -4.0, 0.7), 0.1)
    _compare(Gaussian1D(-1.0) + Gaussian1D(-1.0) + Const1D(), x, y=y)


def test_tied_fixed_and_bounded_parameters():
    rng = np.random.default_rng(SEED)
    x = np.linspace(-10, 10, 120)
    y = _noisy_rows(rng, 80, x, Gaussian1D(2.0, -3.0, 1.0) + Gaussian1D(1.0, 4.0, 2.0), 0.1) + 0.5
    model = Gaussian1D() + Gaussian1D() + Linear1D()
    model.stddev_1.tied = "stddev_0 * 2"
    model.slope_2.fixed = True
    model.mean_0.bounds = (-5.0, 0.0)
    _compare(model, x, y=y)


def test_guess_without_numba_is_the_same(monkeypatch):
    rng = np.random.default_rng(SEED)
    cube = multi_gaussian_cube((128, 6, 7), n_components=2, seed=4)
    y = _rows(cube)
    y[rng.random(y.shape) < 0.05] = np.nan
    compiled = cube.model.guess(*cube.world, y=y)
    monkeypatch.setattr(_estimators, "_COMPILED", False)
    numpy_only = cube.model.guess(*cube.world, y=y)
    np.testing.assert_array_equal(compiled, numpy_only)
