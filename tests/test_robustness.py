"""A failed fit fails only its pixel; inputs are never modified."""

import warnings

import numpy as np
import pytest
from astropy.modeling import Fittable1DModel, Parameter, fitting, models

import parfit
from parfit import Status


class Exploding(Fittable1DModel):
    """A Gaussian that raises ``kind`` of exception when ``tag < 0``.

    ``tag`` is a fixed parameter holding a per-pixel label, so each fit can
    be told apart in warnings and errors.
    """

    amplitude = Parameter(default=1.0)
    mean = Parameter(default=0.0)
    stddev = Parameter(default=1.0)
    tag = Parameter(default=0.0, fixed=True)
    raise_kind = "value"

    def evaluate(self, x, amplitude, mean, stddev, tag):
        t = float(np.ravel(tag)[0])
        if t < 0:
            kind = {
                "value": ValueError("bad pixel"),
                "exit": SystemExit(3),
                "interrupt": KeyboardInterrupt(),
            }[self.raise_kind]
            raise kind
        warnings.warn(f"fitting tag={t:.0f}", UserWarning)
        return amplitude * np.exp(-0.5 * ((x - mean) / stddev) ** 2)


def spectra(ny=4, nx=5, n=41, seed=0):
    rng = np.random.default_rng(seed)
    x = np.linspace(-5, 5, n)
    amp = rng.uniform(1, 3, (ny, nx))
    cube = amp * np.exp(-0.5 * x[:, None, None] ** 2) + rng.normal(0, 0.02, (n, ny, nx))
    return cube, x, amp


@pytest.mark.parametrize("kind", ["value", "exit"])
def test_exception_in_one_pixel_fails_only_that_pixel(kind):
    cube, x, amp = spectra()
    tag = np.arange(20.0).reshape(4, 5)
    tag[2, 3] = -1
    model = Exploding(amplitude=2.0, mean=0.0, stddev=1.0, tag=tag)
    model.raise_kind = kind
    res = parfit.parallel_fit(
        model, cube, world=(x,), fitter=fitting.TRFLSQFitter(), scheduler="threads", chunk_n_max=3
    )
    assert res.status[2, 3] == Status.FIT_ERROR
    assert np.isnan(res.parameters["amplitude"][2, 3])
    others = np.ones((4, 5), dtype=bool)
    others[2, 3] = False
    assert res.success[others].all()
    np.testing.assert_allclose(res.parameters["amplitude"][others], amp[others], rtol=0.05)


@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
def test_keyboard_interrupt_stops_the_run(scheduler):
    """Ctrl-C (KeyboardInterrupt) is not a failed fit: it stops the run."""
    cube, x, _ = spectra()
    tag = np.arange(20.0).reshape(4, 5)
    tag[2, 3] = -1
    model = Exploding(amplitude=2.0, mean=0.0, stddev=1.0, tag=tag)
    model.raise_kind = "interrupt"
    with pytest.raises(KeyboardInterrupt):
        parfit.parallel_fit(
            model,
            cube,
            world=(x,),
            fitter=fitting.TRFLSQFitter(),
            scheduler=scheduler,
            chunk_n_max=3,
        )


def test_nan_samples_are_left_out_all_nan_pixel_is_not_fitted():
    cube, x, amp = spectra(seed=1)
    cube[5:9, 0, 0] = np.nan  # partial NaN: fitted on what is left
    cube[12, 1, 1] = np.inf  # inf: left out too
    cube[:, 3, 4] = np.nan  # all NaN: not fitted
    cube[:-2, 2, 2] = np.nan  # 2 samples left for 3 free parameters
    res = parfit.parallel_fit(
        models.Gaussian1D(2, 0, 1),
        cube,
        world=(x,),
        fitter=fitting.TRFLSQFitter(),
        scheduler="synchronous",
    )
    assert res.status[0, 0] == Status.OK and res.status[1, 1] == Status.OK
    np.testing.assert_allclose(res.parameters["amplitude"][0, 0], amp[0, 0], rtol=0.05)
    assert res.status[3, 4] == Status.NO_VALID_DATA
    assert res.status[2, 2] == Status.TOO_FEW_SAMPLES
    for name in ("amplitude", "mean", "stddev"):
        assert np.isnan(res.parameters[name][3, 4]) and np.isnan(res.parameters[name][2, 2])
    assert int(res.success.sum()) == 18


def test_partial_nan_equals_fit_on_remaining_samples():
    cube, x, _ = spectra(ny=1, nx=1, seed=2)
    cube[10:15, 0, 0] = np.nan
    keep = np.isfinite(cube[:, 0, 0])
    res = parfit.parallel_fit(
        models.Gaussian1D(2, 0, 1),
        cube,
        world=(x,),
        fitter=fitting.TRFLSQFitter(),
        scheduler="synchronous",
    )
    direct = fitting.TRFLSQFitter()(models.Gaussian1D(2, 0, 1), x[keep], cube[keep, 0, 0])
    np.testing.assert_allclose(
        [res.parameters[n][0, 0] for n in direct.param_names], direct.parameters, rtol=1e-10
    )


def test_read_only_inputs_are_not_modified():
    cube, x, _ = spectra(seed=3)
    weights = np.full(cube.shape, 20.0)
    mask = np.zeros(cube.shape, dtype=bool)
    mask[3] = True
    arrays = [cube, x, weights, mask]
    copies = [a.copy() for a in arrays]
    for a in arrays:
        a.setflags(write=False)
    res = parfit.parallel_fit(
        models.Gaussian1D(2, 0, 1),
        cube,
        world=(x,),
        weights=weights,
        mask=mask,
        fitter=fitting.TRFLSQFitter(),
        scheduler="threads",
    )
    assert res.success.all()
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(a, c)


def test_integer_and_big_endian_data_are_cast():
    cube, x, _ = spectra(seed=4)
    scaled = np.round(cube * 1000).astype(">i4")
    res = parfit.parallel_fit(
        models.Gaussian1D(2000, 0, 1),
        scaled,
        world=(x,),
        fitter=fitting.TRFLSQFitter(),
        scheduler="synchronous",
    )
    ref = parfit.parallel_fit(
        models.Gaussian1D(2000, 0, 1),
        scaled.astype(float),
        world=(x,),
        fitter=fitting.TRFLSQFitter(),
        scheduler="synchronous",
    )
    np.testing.assert_array_equal(res.parameters["amplitude"], ref.parameters["amplitude"])
    assert res.success.all()


def test_zero_and_nan_weights_leave_samples_out():
    cube, x, _ = spectra(ny=1, nx=2, seed=5)
    weights = np.ones(cube.shape)
    weights[:10, 0, 0] = 0.0
    weights[:10, 0, 1] = np.nan
    cube[:10] = 1e6  # garbage where the weights are zero / NaN
    res = parfit.parallel_fit(
        models.Gaussian1D(2, 0, 1),
        cube,
        world=(x,),
        weights=weights,
        fitter=fitting.TRFLSQFitter(),
        scheduler="synchronous",
    )
    assert res.success.all()
    np.testing.assert_allclose(res.parameters["mean"], 0.0, atol=0.05)


def test_empty_iterating_axis_gives_empty_maps():
    res = parfit.parallel_fit(
        models.Gaussian1D(),
        np.zeros((10, 0, 3)),
        fitter=fitting.TRFLSQFitter(),
        scheduler="synchronous",
    )
    assert res.parameters["mean"].shape == (0, 3)
    assert res.n_fits == 0


def test_nan_in_starting_value_map_is_a_failed_fit():
    cube, x, _ = spectra(seed=6)
    mean = np.zeros((4, 5))
    mean[1, 1] = np.nan
    res = parfit.parallel_fit(
        models.Gaussian1D(2, mean, 1),
        cube,
        world=(x,),
        fitter=fitting.TRFLSQFitter(),
        scheduler="synchronous",
    )
    assert res.status[1, 1] == Status.BAD_START
    assert int(res.success.sum()) == 19


def test_result_arrays_are_read_only():
    cube, x, _ = spectra(ny=1, nx=2)
    res = parfit.parallel_fit(
        models.Gaussian1D(2, 0, 1),
        cube,
        world=(x,),
        fitter=fitting.TRFLSQFitter(),
        scheduler="synchronous",
    )
    with pytest.raises(ValueError, match="read-only"):
        res.parameters["mean"][0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        res.status[0, 0] = 0


def test_numpy_input_is_not_embedded_whole_in_the_graph():
    import cloudpickle
    import dask

    cube, x, _ = spectra(ny=20, nx=30, seed=7)
    seen = {}

    def inspecting_get(dsk, keys, **kwargs):
        # The graph parallel_fit hands to the scheduler, task by task.
        graph = dict(dsk.__dask_graph__() if hasattr(dsk, "__dask_graph__") else dsk)
        seen["largest"] = max(len(cloudpickle.dumps(v)) for v in graph.values())
        seen["n_tasks"] = len(graph)
        return dask.get(dsk, keys, **kwargs)

    res = parfit.parallel_fit(
        models.Gaussian1D(2, 0, 1),
        cube,
        world=(x,),
        fitter=fitting.TRFLSQFitter(),
        scheduler=inspecting_get,
        chunk_n_max=100,
    )
    assert res.success.all()
    assert seen["n_tasks"] >= 6  # 600 fits in blocks of at most 100
    assert seen["largest"] < cube.nbytes / 3
