"""Compound models with ``*`` and ``/`` on the compiled engine.

The kernel evaluates each component into its own row and combines the rows
in post-order (:func:`parfit.fitters._kernel._tree_values`), with the chain
rule on the derivatives.  Checked against the numpy model (values and
Jacobian), the numpy engine (whole fits) and per-fit
``scipy.optimize.least_squares`` (``ScipyFitter("trf")``) as the oracle.
"""

import numpy as np
import pytest

from parfit import Status
from parfit.fitters import BatchedFitter, FitBlock, ScipyFitter
from parfit.models import (
    Const1D,
    Gaussian1D,
    JointModel,
    Linear1D,
    Lorentz1D,
    Polynomial1D,
    Voigt1D,
)

pytest.importorskip("numba", reason="the compiled engine needs numba")

from parfit.fitters import _compiled, _kernel  # noqa: E402  (after the skip)

X = np.linspace(-10.0, 10.0, 80)
TIGHT = dict(ftol=1e-12, xtol=1e-12, gtol=1e-12)


def absorption():
    """A sloped continuum times (1 - a Gaussian dip): 5 free parameters."""
    model = Linear1D(0.01, 2.0) * (Const1D(1.0) - Gaussian1D(0.5, 0.0, 2.0))
    model.amplitude_1.fixed = True
    return model


def absorption_data(n, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        slope, level = 0.02 * rng.uniform(-1, 1), 2.0 + rng.uniform(-0.3, 0.3)
        depth, mean, width = rng.uniform(0.3, 0.7), rng.uniform(-2, 2), rng.uniform(1.5, 3.0)
        dip = depth * np.exp(-0.5 * ((X - mean) / width) ** 2)
        rows.append((slope * X + level) * (1.0 - dip) + rng.normal(0.0, 0.02, X.size))
    return np.array(rows)


def block_for(model, y):
    pars = BatchedFitter().parameter_arrays(model)
    p0, lo, hi = (np.tile([[float(p[k]) for p in pars]], (len(y), 1)) for k in (1, 2, 3))
    return FitBlock(
        x=(X,), y=y, weights=None, valid=np.isfinite(y), p0=p0, lower=lo, upper=hi,
        sample_shape=(y.shape[1],),
    )  # fmt: skip


def kernel_values(model, params):
    """The compiled model and its derivatives by every free parameter at ``params``."""
    described = _compiled.component_codes(model)
    free = np.asarray(model.free_mask)
    n_par, k = len(params), int(free.sum())
    kernel_model = described.kernel_model(free, n_par, X.size)
    f, jfull = np.empty(X.size), np.zeros((n_par, X.size))
    r, jt, gm, am = np.empty(X.size), np.empty((k, X.size)), np.empty(k), np.empty((k, k))
    _kernel.weighted_general(
        kernel_model, X, np.zeros(X.size), np.ones(X.size), params.copy(),
        np.flatnonzero(free), 1.0, False, f, jfull, r, jt, gm, am,
    )  # fmt: skip
    return f, kernel_model[8]


TREES = {
    "G * C": lambda: Gaussian1D(2.0, 1.0, 2.0) * Const1D(0.7),
    "G / C": lambda: Gaussian1D(2.0, 1.0, 2.0) / Const1D(0.7),
    "L * (C - G)": lambda: Linear1D(0.1, 2.0) * (Const1D(1.0) - Gaussian1D(0.5, 0.0, 2.0)),
    "(G + L) / P": lambda: (
        (Gaussian1D(2.0, 1.0, 2.0) + Linear1D(0.1, 1.0)) / Polynomial1D(2, c0=3.0, c1=0.1, c2=0.01)
    ),
    "P * G - C": lambda: (
        Polynomial1D(2, c0=1.0, c1=0.2, c2=0.01) * Gaussian1D(1.0, 0.5, 3.0) - Const1D(0.1)
    ),
    "Lz * G / (C + V)": lambda: (
        Lorentz1D(1.0, 1.0, 2.0)
        * Gaussian1D(1.0, 0.0, 4.0)
        / (Const1D(2.0) + Voigt1D(0.5, 1.0, 1.0, 1.0))
    ),
    "G - G * L": lambda: (
        Gaussian1D(1.0, -2.0, 2.0) - Gaussian1D(1.0, 2.0, 1.5) * Linear1D(0.1, 1.0)
    ),
}


@pytest.mark.parametrize("name", TREES)
def test_compiled_values_and_derivatives_of_products_and_quotients(name):
    model = TREES[name]()
    assert _compiled.unsupported_reason(model) == ""
    rng = np.random.default_rng(3)
    start = np.array([float(getattr(model, n).value) for n in model.param_names])
    for _ in range(5):
        params = start * rng.uniform(0.8, 1.2, start.size)
        f, jfree = kernel_values(model, params)
        want = model.evaluate(X, params[np.newaxis])[0]
        np.testing.assert_allclose(f, want, rtol=1e-13, atol=1e-15 * np.abs(want).max())
        jac = np.squeeze(np.asarray(model.jacobian(X, params[np.newaxis])))
        jac = jac if jac.shape[0] == start.size else jac.T
        for q, i in enumerate(np.flatnonzero(model.free_mask)):
            scale = np.abs(jac[i]).max()
            np.testing.assert_allclose(jfree[q], jac[i], rtol=1e-12, atol=1e-14 * scale)


def test_products_are_described_as_a_post_order_program():
    described = _compiled.component_codes(absorption())
    # (segment, operator, a, b, a's first parameter, b's first, b's end): C - G, then L * (...)
    assert described.program.tolist() == [[0, 1, 1, 2, 2, 3, 6], [0, 2, 0, 1, 0, 2, 6]]
    assert not described.plain
    assert _compiled.component_codes(Gaussian1D() - Const1D()).program.shape == (0, 7)


def test_compiled_and_numpy_engines_agree_on_an_absorption_line():
    model, y = absorption(), absorption_data(200, seed=1)
    block = block_for(model, y)
    rn = BatchedFitter(engine="numpy").fit_block(model, block)
    rc = BatchedFitter(engine="compiled").fit_block(model, block)
    np.testing.assert_array_equal(rc.status, rn.status)
    ok = rc.status == Status.OK
    assert ok.mean() >= 0.99
    scale = np.abs(rn.params[ok]) + np.nan_to_num(rn.errors[ok])
    assert np.all(np.abs(rc.params[ok] - rn.params[ok]) <= 1e-6 * scale)
    np.testing.assert_allclose(rc.statistic[ok], rn.statistic[ok], rtol=1e-9)
    np.testing.assert_allclose(rc.errors[ok], rn.errors[ok], rtol=1e-6)


def test_products_match_a_per_fit_scipy_oracle():
    model, y = absorption(), absorption_data(30, seed=2)
    block = block_for(model, y)
    rc = BatchedFitter(engine="compiled", **TIGHT).fit_block(model, block)
    rs = ScipyFitter("trf", **TIGHT).fit_block(model, block)
    ok = (rc.status == Status.OK) & (rs.status == Status.OK)
    assert ok.all()
    scale = np.abs(rs.params) + np.nan_to_num(rs.errors)
    agree = np.all(np.abs(rc.params - rs.params) <= 1e-6 * scale, axis=1)
    no_worse = rc.statistic <= rs.statistic * (1 + 1e-9)
    assert np.all(agree | no_worse)
    assert agree.mean() >= 0.9


def test_a_tie_inside_a_product_and_counts():
    # A doublet with a tied position, scaled by a free factor; then the same
    # model fitted to Poisson counts (Cash) on both engines.
    model = (Gaussian1D(3.0, -2.0, 1.5) + Gaussian1D(1.5, 2.0, 1.5)) * Const1D(2.0)
    model.mean_1.tied = "mean_0 + 4"
    model.amplitude_2.fixed = True
    rng = np.random.default_rng(5)
    truth = model.evaluate(X, np.array([[3.0, -2.2, 1.4, 1.5, 1.8, 1.5, 2.0]]))[0]
    counts = rng.poisson(np.tile(5.0 * truth, (100, 1))).astype(float) / 5.0
    block = block_for(model, counts)
    for statistic in ("chi2", "cash"):
        rn = BatchedFitter(engine="numpy").fit_block(model, block, statistic=statistic)
        rc = BatchedFitter(engine="compiled").fit_block(model, block, statistic=statistic)
        np.testing.assert_array_equal(rc.status, rn.status)
        ok = rc.status == Status.OK
        assert ok.mean() >= 0.95
        np.testing.assert_allclose(rc.params[ok][:, 4], rc.params[ok][:, 1] + 4.0, rtol=1e-12)
        scale = np.abs(rn.params[ok]) + np.nan_to_num(rn.errors[ok])
        assert np.all(np.abs(rc.params[ok] - rn.params[ok]) <= 1e-6 * scale)


def test_a_joint_model_with_a_product_member():
    line = Gaussian1D(1.0, 0.0, 2.0)
    # The same line in a second dataset, broader, scaled by a free ratio.
    scaled = Gaussian1D(1.0, 0.0, 2.0) * Const1D(0.5)
    scaled.amplitude_0.tied = "a.amplitude"
    scaled.mean_0.tied = "a.mean"
    joint = JointModel({"a": line, "b": scaled}, sizes={"a": X.size, "b": X.size})
    assert _compiled.unsupported_reason(joint) == ""
    rng = np.random.default_rng(6)
    n = 60
    amplitude = rng.uniform(1, 2, (n, 1))
    a = amplitude * np.exp(-0.5 * ((X - 0.5) / 1.8) ** 2)
    b = amplitude * np.exp(-0.5 * ((X - 0.5) / 2.5) ** 2) * rng.uniform(0.4, 0.6, (n, 1))
    y = np.concatenate([a, b], axis=1) + rng.normal(0, 0.01, (n, 2 * X.size))
    pars = BatchedFitter().parameter_arrays(joint)
    p0, lo, hi = (np.tile([[float(p[k]) for p in pars]], (n, 1)) for k in (1, 2, 3))
    xs = (np.concatenate([X, X]),)
    block = FitBlock(
        x=xs, y=y, weights=None, valid=np.isfinite(y), p0=p0, lower=lo, upper=hi,
        sample_shape=(y.shape[1],),
    )  # fmt: skip
    rn = BatchedFitter(engine="numpy").fit_block(joint, block)
    rc = BatchedFitter(engine="compiled").fit_block(joint, block)
    np.testing.assert_array_equal(rc.status, rn.status)
    ok = rc.status == Status.OK
    assert ok.mean() >= 0.95
    scale = np.abs(rn.params[ok]) + np.nan_to_num(rn.errors[ok])
    assert np.all(np.abs(rc.params[ok] - rn.params[ok]) <= 1e-6 * scale)


def test_compiled_engine_accepts_products_and_quotients():
    fitter = BatchedFitter(engine="compiled")
    for make in TREES.values():
        fitter.check(make())
    y = absorption_data(1, seed=4)[0]
    result = fitter.fit(absorption(), X, y=y)
    assert result.status[0] == Status.OK
