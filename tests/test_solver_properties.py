"""Properties of fits with the batched solver, checked with hypothesis.

Every fit is independent of how the cube is cut into dask chunks and blocks,
of where the fitting axis sits, of samples it does not use, and of the
overall scale of the weights; statuses follow their documented invariants.
Each property runs with both engines of :class:`~parfit.fitters.BatchedFitter`.
"""

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import parfit
from parfit import Flag, Status
from parfit.fitters import BatchedFitter
from parfit.models import Const1D, Gaussian1D

N_SAMPLES = 24
X = np.linspace(-5.0, 5.0, N_SAMPLES)
MODEL = Gaussian1D(2.0, 0.0, 1.0) + Const1D(0.0)
N_FREE = 4

from _engines import ENGINES  # noqa: E402  (tests/ is on sys.path)

seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(1, 5)


def make_cube(seed, ny, nx, noise=0.05):
    """Seeded Gaussian lines on a constant, shape ``(N_SAMPLES, ny, nx)``."""
    rng = np.random.default_rng(seed)
    amp = rng.uniform(1.0, 3.0, (ny, nx))
    mean = rng.uniform(-1.5, 1.5, (ny, nx))
    sigma = rng.uniform(0.6, 1.5, (ny, nx))
    line = amp * np.exp(-0.5 * ((X[:, None, None] - mean) / sigma) ** 2)
    return line + rng.uniform(-0.5, 0.5, (ny, nx)) + rng.normal(0.0, noise, (N_SAMPLES, ny, nx))


def fit(data, engine, **kwargs):
    kwargs.setdefault("world", (X,))
    return parfit.parallel_fit(
        MODEL, data, fitter=BatchedFitter(engine=engine), scheduler="synchronous", **kwargs
    )


def maps(result, transform=lambda a: a):
    """Every map of a result, as a dict of arrays."""
    out = {f"param {k}": transform(v) for k, v in result.parameters.items()}
    out.update({f"error {k}": transform(v) for k, v in result.errors.items()})
    out.update(
        statistic=transform(result.statistic),
        status=transform(result.status),
        nfev=transform(result.nfev),
    )
    return out


def assert_same_maps(got, expected):
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key].shape == expected[key].shape, key
        if got[key].dtype.kind == "f":
            np.testing.assert_allclose(
                got[key], expected[key], rtol=1e-12, atol=0, equal_nan=True, err_msg=key
            )
        else:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


@st.composite
def partitions(draw, n):
    """Chunk sizes along an axis of length ``n``: a random partition."""
    cuts = draw(st.sets(st.integers(1, n - 1), max_size=n - 1)) if n > 1 else set()
    edges = [0, *sorted(cuts), n]
    return tuple(b - a for a, b in zip(edges[:-1], edges[1:]))


# ---------------------------------------------------------------------------
# Chunking and axis order


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=15, deadline=None)
@given(seed=seeds, ny=sizes, nx=sizes, data=st.data())
def test_chunking_does_not_change_results(engine, seed, ny, nx, data):
    cube = make_cube(seed, ny, nx)
    expected = maps(fit(cube, engine, chunk_n_max=ny * nx))
    chunk_n_max = data.draw(st.integers(1, ny * nx), label="chunk_n_max")
    chunks = (
        N_SAMPLES,
        data.draw(partitions(ny), label="y chunks"),
        data.draw(partitions(nx), label="x chunks"),
    )
    got = maps(fit(da.from_array(cube, chunks=chunks), engine, chunk_n_max=chunk_n_max))
    assert_same_maps(got, expected)


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=12, deadline=None)
@given(seed=seeds, ny=sizes, nx=sizes, order=st.permutations([0, 1, 2]), negative=st.booleans())
def test_axis_order_does_not_change_results(engine, seed, ny, nx, order, negative):
    cube = make_cube(seed, ny, nx)  # fitting axis 0, then y, x
    expected = fit(cube, engine)
    axis = order.index(0)  # where the fitting axis went
    spatial = [a for a in order if a != 0]  # the order of y and x after it
    got = fit(np.transpose(cube, order), engine, fitting_axes=axis - 3 if negative else axis)
    transform = (lambda a: a) if spatial == [1, 2] else (lambda a: a.T)
    assert_same_maps(maps(got), maps(expected, transform))


# ---------------------------------------------------------------------------
# Samples left out


@st.composite
def masked_cubes(draw):
    """A cube and a mask leaving at least 10 samples in every pixel."""
    ny, nx = draw(sizes), draw(sizes)
    seed = draw(seeds)
    rng = np.random.default_rng(draw(seeds))
    mask = np.zeros((N_SAMPLES, ny, nx), dtype=bool)
    for j in range(ny):
        for i in range(nx):
            n_masked = rng.integers(0, N_SAMPLES - 10, endpoint=True)
            mask[rng.choice(N_SAMPLES, n_masked, replace=False), j, i] = True
    return make_cube(seed, ny, nx), mask


@pytest.mark.parametrize("how", ["mask", "nan"])
@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=10, deadline=None)
@given(cube_and_mask=masked_cubes())
def test_masked_samples_are_as_if_absent(engine, how, cube_and_mask):
    cube, mask = cube_and_mask
    if how == "mask":
        result = fit(cube, engine, mask=mask)
    else:
        result = fit(np.where(mask, np.nan, cube), engine)
    # The compiled engine drops the samples left out, so its fits are those of
    # the samples kept, bit for bit.  The numpy engine gives them zero weight:
    # the same problem up to the rounding of sums with zeros in them, and where
    # a step is ill-conditioned (a trial line narrower than the sampling) that
    # rounding can send it along another path to the same minimum, which it
    # then reaches only to its convergence tolerance (xtol 1e-8): a 3e-8
    # difference on one such pixel, while a masked sample that still counted
    # would move the answer by a fair fraction of its error.
    rtol = 1e-12 if engine == "compiled" else 1e-6
    fitter = BatchedFitter(engine=engine)
    for j, i in np.ndindex(cube.shape[1:]):
        keep = ~mask[:, j, i]
        alone = fitter.fit(MODEL, X[keep], y=cube[keep, j, i])
        assert result.status[j, i] == alone.status[0]
        params = [result.parameters[name][j, i] for name in MODEL.param_names]
        np.testing.assert_allclose(params, alone.params[0], rtol=rtol, atol=0)
        # Errors are not compared: an ill-determined fit's (1e4-1e7 here) follow its
        # covariance's condition number, and the sums behind it may be added in
        # another order (vectorised) for a row of a block than for a fit alone.
        np.testing.assert_allclose(result.statistic[j, i], alone.statistic[0], rtol=1e-9)


# ---------------------------------------------------------------------------
# Weights


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=15, deadline=None)
@given(seed=seeds, c=st.floats(1e-3, 1e3))
def test_scaling_the_weights(engine, seed, c):
    # The trust region lives in parameter space and the gradient test is in units
    # of the weighted data, so the scale of the weights changes the path only by
    # rounding: the same minimum, to well within the tolerances.
    rng = np.random.default_rng(seed)
    y = make_cube(seed, 1, 1)[:, 0, 0]
    w = rng.uniform(0.5, 2.0, N_SAMPLES)
    fitter = BatchedFitter(engine=engine)
    ref = fitter.fit(MODEL, X, y=y, weights=w)
    scaled = fitter.fit(MODEL, X, y=y, weights=c * w)
    assert ref.status[0] == scaled.status[0] == Status.OK
    np.testing.assert_allclose(scaled.statistic, c**2 * ref.statistic, rtol=1e-8)
    np.testing.assert_allclose(scaled.params, ref.params, rtol=1e-5)
    np.testing.assert_allclose(scaled.errors, ref.errors, rtol=1e-4)


# ---------------------------------------------------------------------------
# Statuses


PIXEL_KINDS = ("line", "partly nan", "inf", "all nan", "too few", "noise")


@st.composite
def awkward_cubes(draw):
    """A cube whose pixels are of random kinds, with the kind map."""
    ny, nx = draw(sizes), draw(sizes)
    cube = make_cube(draw(seeds), ny, nx)
    rng = np.random.default_rng(draw(seeds))
    kinds = np.array(
        draw(st.lists(st.sampled_from(PIXEL_KINDS), min_size=ny * nx, max_size=ny * nx))
    ).reshape(ny, nx)
    for j, i in np.ndindex(ny, nx):
        spectrum = cube[:, j, i]
        if kinds[j, i] == "partly nan":
            spectrum[rng.choice(N_SAMPLES, rng.integers(1, N_SAMPLES - N_FREE), replace=False)] = (
                np.nan
            )
        elif kinds[j, i] == "inf":
            spectrum[rng.integers(N_SAMPLES)] = rng.choice([np.inf, -np.inf])
        elif kinds[j, i] == "all nan":
            spectrum[:] = np.nan
        elif kinds[j, i] == "too few":
            spectrum[rng.choice(N_SAMPLES, N_SAMPLES - rng.integers(1, N_FREE), replace=False)] = (
                np.nan
            )
        elif kinds[j, i] == "noise":
            spectrum[:] = rng.normal(0.0, 1.0, N_SAMPLES)
    return cube, kinds


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=15, deadline=None)
@given(cube_and_kinds=awkward_cubes())
def test_status_invariants(engine, cube_and_kinds):
    cube, kinds = cube_and_kinds
    result = fit(cube, engine)
    assert result.status.dtype == np.int8
    assert set(np.unique(result.status).tolist()) <= {s.value for s in Status}
    ok = result.status == Status.OK
    params = np.stack([result.parameters[n] for n in MODEL.param_names], axis=-1)
    errors = np.stack([result.errors[n] for n in MODEL.param_names], axis=-1)
    assert np.all(np.isfinite(params[ok]))
    # A success is honest: every OK fit has finite, non-negative errors for all
    # of its (free) parameters; a singular or collapsed one is DEGENERATE.
    assert np.all(np.isfinite(errors[ok])) and np.all(errors[ok] >= 0)
    assert np.all(np.isfinite(result.statistic[ok])) and np.all(result.statistic[ok] >= 0)
    assert np.all(np.isnan(params[~ok])) and np.all(np.isnan(errors[~ok]))
    # Failed fits have no statistic, except DEGENERATE ones: the chi-square they reached.
    degenerate = result.status == Status.DEGENERATE
    assert np.all(np.isnan(result.statistic[~ok & ~degenerate]))
    assert np.all(np.isfinite(result.statistic[degenerate]))
    assert np.all((result.flags[degenerate] & (Flag.SINGULAR | Flag.DEGENERATE)) != 0)
    assert np.all(result.status[kinds == "all nan"] == Status.NO_VALID_DATA)
    assert np.all(result.status[kinds == "too few"] == Status.TOO_FEW_SAMPLES)
    assert np.all(ok[kinds == "line"])
    assert np.array_equal(result.success, ok)
