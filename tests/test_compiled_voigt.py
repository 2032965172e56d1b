"""Voigt1D on the compiled engine: its Faddeeva function, values, derivatives and fits.

References: :func:`scipy.special.wofz` for the Faddeeva function,
:class:`~parfit.models.Voigt1D` (numpy, through ``wofz``) for the values and
the Jacobian, the numpy engine for whole fits, and per-fit
``scipy.optimize.least_squares`` (``ScipyFitter("trf")``) as the oracle.
"""

import numpy as np
import pytest

from parfit import Status
from parfit.fitters import BatchedFitter, FitBlock, ScipyFitter
from parfit.models import Linear1D, Voigt1D

pytest.importorskip("numba", reason="the compiled engine needs numba")

from scipy.special import wofz  # noqa: E402

from parfit.fitters import _compiled, _kernel  # noqa: E402

X = np.linspace(-10.0, 10.0, 100)
TIGHT = dict(ftol=1e-12, xtol=1e-12, gtol=1e-12)


# ---------------------------------------------------------------------------
# The Faddeeva function


def _grid():
    """x from -1e6 to 1e6 and y from 1e-8 to 1e6 (log spaced, with 0): 180,000 points."""
    pos = np.concatenate([[0.0], np.logspace(-8, 6, 300)])
    x, y = np.meshgrid(np.concatenate([-pos[:0:-1], pos]), pos)
    return x + 1j * y


def test_faddeeva_matches_scipy_on_a_wide_grid():
    z = _grid()
    got, want = _kernel.faddeeva(z), wofz(z)
    # Measured: 8.2e-15 (complex), 5.1e-14 (real part alone: scipy's exp(-x*x) rounds
    # x*x, up to 535 here; mpmath sides with the compiled value).
    assert np.max(np.abs(got - want) / np.abs(want)) <= 1e-13
    re_nonzero = want.real != 0
    assert np.max(np.abs(got.real - want.real)[re_nonzero] / np.abs(want.real[re_nonzero])) <= 1e-12
    np.testing.assert_array_equal(got.real[~re_nonzero], 0.0)


def test_faddeeva_on_the_real_axis_and_below_it():
    x = np.concatenate([-np.logspace(-8, 3, 500), [0.0], np.logspace(-8, 3, 500)])
    got = _kernel.faddeeva(x + 0j)
    # exp(-x^2) in extended precision (x**2 rounded to double is off by up to 4e-14 here)
    exact = np.exp(-(x.astype(np.longdouble) ** 2)).astype(np.float64)
    np.testing.assert_allclose(got.real, exact, rtol=1e-14, atol=0)
    # Im w = 2 Dawson(x) / sqrt(pi): measured 2.8e-13 (2e-16 absolute) near x = 5e-4,
    # where Algorithm 916's sums cancel (scipy uses a Chebyshev fit on the real axis).
    np.testing.assert_allclose(got.imag, wofz(x + 0j).imag, rtol=1e-12, atol=0)
    # Below the axis: w(z) = 2 exp(-z^2) - w(-z), wherever exp(-z^2) is finite.
    z = _grid()[:200:7, ::7]
    below = z.real - 1j * np.minimum(z.imag, 5.0)
    want = wofz(below)
    got = _kernel.faddeeva(below)
    assert np.max(np.abs(got - want) / np.abs(want)) <= 1e-13


def test_faddeeva_of_nan_or_infinity_is_nan():
    got = _kernel.faddeeva(np.array([complex(np.nan, 1.0), complex(1.0, np.inf), np.inf + 0j]))
    assert np.all(np.isnan(got.real) & np.isnan(got.imag))


# ---------------------------------------------------------------------------
# Values and derivatives in the kernel


def _kernel_values(model, params, x=X):
    """The kernel's values and Jacobian ``(n_params, n)`` of ``model`` at ``params``."""
    described = _compiled.component_codes(model)
    f = np.empty(x.size)
    jfull = np.zeros((len(params), x.size))
    p = np.array(params, dtype=np.float64)
    _kernel._model_values(
        described.codes, described.offsets, described.signs, x, p, f, jfull, 0, x.size
    )
    return f, jfull


def test_voigt_values_and_jacobian_match_the_numpy_model():
    rng = np.random.default_rng(11)
    model = Voigt1D() - Voigt1D() + Linear1D()
    assert _compiled.component_codes(model).codes.tolist() == [6, 6, 3]
    worst_value = worst_jacobian = 0.0
    for _ in range(200):
        params = np.concatenate(
            [
                [rng.uniform(-5, 5), rng.uniform(-3, 3), 10 ** rng.uniform(-3, 1)],
                [10 ** rng.uniform(np.log10(0.5), 1)],
                [rng.uniform(-5, 5), rng.uniform(-3, 3), 10 ** rng.uniform(-3, 1)],
                [10 ** rng.uniform(np.log10(0.5), 1)],
                [rng.uniform(-0.1, 0.1), rng.uniform(-1, 1)],
            ]
        )
        f, jfull = _kernel_values(model, params)
        # Each Voigt alone: values to 1e-12 of themselves.
        for first in (0, 4):
            alone, _ = _kernel_values(Voigt1D(), params[first : first + 4])
            want = Voigt1D().evaluate(X, params[np.newaxis, first : first + 4])[0]
            worst_value = max(worst_value, np.max(np.abs(alone - want) / np.abs(want)))
        np.testing.assert_allclose(f, model.evaluate(X, params[np.newaxis])[0], rtol=1e-12)
        want_j = model.jacobian(X, params[np.newaxis])[0].T
        scale = np.max(np.abs(want_j), axis=1, keepdims=True)
        worst_jacobian = max(worst_jacobian, np.max(np.abs(jfull - want_j) / scale))
    assert worst_value <= 1e-12  # measured 2.4e-14
    # Relative to each column's largest derivative.  Measured 4e-11: by fwhm_G,
    # w'(z) = -2 z w + 2i/sqrt(pi) cancels by up to |z|^2 (fwhm_L >> fwhm_G here),
    # in both engines alike; against 50-digit mpmath the compiled one is the closer.
    assert worst_jacobian <= 1e-9


def test_voigt_jacobian_matches_where_z_is_moderate():
    rng = np.random.default_rng(12)
    worst = 0.0
    for _ in range(200):
        params = [rng.uniform(-2, 2), rng.uniform(-3, 3), rng.uniform(0.3, 3), rng.uniform(0.5, 3)]
        _, jfull = _kernel_values(Voigt1D(), params)
        want = Voigt1D().jacobian(X, np.array([params]))[0].T
        scale = np.max(np.abs(want), axis=1, keepdims=True)
        worst = max(worst, np.max(np.abs(jfull - want) / scale))
    assert worst <= 5e-11  # measured 7.9e-12 (the cancellation in w'(z) again)


def test_voigt_derivatives_where_amplitude_l_or_fwhm_l_is_zero():
    # Written without dividing by them, unlike numpy's Voigt1D._jacobian (0/0 there).
    _, jfull = _kernel_values(Voigt1D(), [0.3, 0.0, 0.8, 1.2])
    want = Voigt1D().jacobian(X, np.array([[0.3, 1.0, 0.8, 1.2]]))[0].T
    np.testing.assert_allclose(jfull[1], want[1], rtol=1e-13)  # V / amplitude_L
    np.testing.assert_array_equal(jfull[[0, 2, 3]], 0.0)
    _, jfull = _kernel_values(Voigt1D(), [0.3, 2.0, 0.0, 1.2])
    want = Voigt1D().jacobian(X, np.array([[0.3, 2.0, 1e-12, 1.2]]))[0].T
    np.testing.assert_array_equal(jfull[[0, 1, 3]], 0.0)
    # The limit fwhm_L -> 0 (numpy's 1e-12 adds O(1e-12) terms in the far wings)
    np.testing.assert_allclose(jfull[2], want[2], rtol=1e-9, atol=1e-9 * np.max(want[2]))


# ---------------------------------------------------------------------------
# Whole fits: compiled against numpy, and against scipy


def _voigt_truth(rng, n, centre):
    return [
        centre + rng.uniform(-1.5, 1.5, n),
        rng.uniform(1.0, 3.0, n),
        rng.uniform(0.6, 2.0, n),
        rng.uniform(0.6, 2.0, n),
    ]


def _perturbed(rng, truth):
    x0, amp, fw_l, fw_g = truth
    return [
        x0 + rng.uniform(-0.3, 0.3, x0.size),
        amp * rng.uniform(0.7, 1.3, x0.size),
        fw_l * rng.uniform(0.7, 1.4, x0.size),
        fw_g * rng.uniform(0.7, 1.4, x0.size),
    ]


def voigt_block(case, n, seed, noise=0.02):
    """A seeded block of noisy spectra of ``case`` and starts near the truth."""
    rng = np.random.default_rng(seed)
    if case == "Voigt1D":
        model = Voigt1D()
        truth = _voigt_truth(rng, n, 0.0)
        start = _perturbed(rng, truth)
    elif case == "Voigt1D + Linear1D":
        model = Voigt1D() + Linear1D()
        truth = _voigt_truth(rng, n, 0.0)
        start = _perturbed(rng, truth)
        truth += [rng.uniform(-0.02, 0.02, n), rng.uniform(-0.5, 0.5, n)]
        start += [np.zeros(n), np.zeros(n)]
    else:  # two Voigts
        model = Voigt1D() + Voigt1D()
        truth = _voigt_truth(rng, n, -4.0)
        start = _perturbed(rng, truth)
        second = _voigt_truth(rng, n, 4.0)
        truth += second
        start += _perturbed(rng, second)
    truth, start = np.array(truth).T, np.array(start).T
    y = model.evaluate(X, truth) + rng.normal(0.0, noise, (n, X.size))
    weights = np.full(y.shape, 1.0 / noise)
    return model, FitBlock(
        x=(X,),
        y=y,
        weights=weights,
        valid=np.isfinite(y),
        p0=start,
        lower=np.full(start.shape, -np.inf),
        upper=np.full(start.shape, np.inf),
        sample_shape=(X.size,),
    )


#: Widths from 0.6 to 2 (3 to 10 samples) at S/N 100 or more: every parameter is
#: determined.  Where a fit ends at fwhm_G -> 0 (a pure Lorentzian), fwhm_G sits in a
#: flat valley, and its derivative, from w'(z) = -2 z w + 2i/sqrt(pi) at |z| in the
#: thousands, has lost digits in both engines: there they agree on the statistic to
#: 1e-8 but on fwhm_G and the errors only to 1e-3 or so.
CASES = {"Voigt1D": 300, "Voigt1D + Linear1D": 200, "two Voigts": 200}


@pytest.mark.parametrize("case", list(CASES))
def test_compiled_and_numpy_engines_agree_on_voigt_fits(case):
    model, block = voigt_block(case, CASES[case], seed=len(case))
    rn = BatchedFitter(engine="numpy").fit_block(model, block)
    rc = BatchedFitter(engine="compiled").fit_block(model, block)
    np.testing.assert_array_equal(rc.status, rn.status)
    assert np.mean(rc.status == Status.OK) >= 0.95
    ok = rc.status == Status.OK
    scale = np.abs(rn.params[ok]) + rn.errors[ok]  # a parameter's value plus its 1-sigma error
    assert np.all(np.abs(rc.params[ok] - rn.params[ok]) <= 1e-6 * scale)
    np.testing.assert_allclose(rc.errors[ok], rn.errors[ok], rtol=1e-6)
    np.testing.assert_allclose(rc.statistic[ok], rn.statistic[ok], rtol=1e-9)


def test_tied_voigts_run_compiled_and_agree_with_numpy():
    model, block = voigt_block("two Voigts", 60, seed=5)
    model.fwhm_G_1.tied = "fwhm_G_0"
    model.x_0_1.tied = "x_0_0 + 8"
    assert _compiled.unsupported_reason(model) == ""
    rn = BatchedFitter(engine="numpy").fit_block(model, block)
    rc = BatchedFitter(engine="compiled").fit_block(model, block)
    np.testing.assert_array_equal(rc.status, rn.status)
    ok = rc.status == Status.OK
    assert ok.mean() >= 0.9
    scale = np.abs(rn.params[ok]) + np.nan_to_num(rn.errors[ok])
    assert np.all(np.abs(rc.params[ok] - rn.params[ok]) <= 1e-6 * scale)


def test_voigt_fits_match_a_per_fit_scipy_oracle():
    model, block = voigt_block("Voigt1D + Linear1D", 30, seed=7)
    rc = BatchedFitter(engine="compiled", **TIGHT).fit_block(model, block)
    rs = ScipyFitter("trf", **TIGHT).fit_block(model, block)
    ok = (rc.status == Status.OK) & (rs.status == Status.OK)
    assert ok.all()
    scale = np.abs(rs.params) + rs.errors
    agree = np.all(np.abs(rc.params - rs.params) <= 1e-6 * scale, axis=1)
    no_worse = rc.statistic <= rs.statistic * (1 + 1e-9)
    assert np.all(agree | no_worse)
    assert agree.mean() >= 0.9


def test_compiled_engine_accepts_voigt1d():
    fitter = BatchedFitter(engine="compiled")
    for model in (Voigt1D(), Voigt1D() + Linear1D(), Voigt1D() - Voigt1D()):
        fitter.check(model)
        assert _compiled.unsupported_reason(model) == ""
    y = Voigt1D(0.2, 2.0, 0.8, 0.9)(X)
    result = fitter.fit(Voigt1D(0.0, 1.5, 1.0, 1.0), X, y=y)
    assert result.status[0] == Status.OK
    np.testing.assert_allclose(result.params[0], [0.2, 2.0, 0.8, 0.9], rtol=1e-6)
