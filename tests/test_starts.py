"""``initial="mean"``, ``min_snr`` (Status.SKIPPED) and components ordered by position."""

import numpy as np
import pytest

import parfit
from parfit.engine.kernel import peak_snr
from parfit.errors import InputError, InputTypeError
from parfit.models import Const1D, Gaussian1D
from parfit.status import NOT_ATTEMPTED, Status, is_failure

X = np.linspace(-60.0, 60.0, 100)


def line(v, amplitude=1.0, mean=-45.0, stddev=2.0):
    """A Gaussian line as a plain function (no guess, so no retry from one)."""
    return amplitude * np.exp(-0.5 * ((v - mean) / stddev) ** 2)


@pytest.fixture(scope="module")
def offset_cube():
    """Lines near +20 km/s; the model's start sits at -45 km/s, far from all of them."""
    rng = np.random.default_rng(5)
    shape = (12, 12)
    truth = {
        "amplitude": rng.uniform(1.5, 2.5, shape),
        "mean": 20.0 + rng.uniform(-4.0, 4.0, shape),
        "stddev": rng.uniform(2.5, 4.0, shape),
    }
    data = line(X[:, None, None], truth["amplitude"], truth["mean"], truth["stddev"])
    return data + rng.normal(0, 0.1, data.shape), truth


def recovered(result, truth):
    close = np.abs(np.asarray(result.parameters["mean"]) - truth["mean"]) < 0.5
    return float((np.asarray(result.success) & close).mean())


def test_mean_start_rescues_a_cube_whose_common_start_is_far_off(offset_cube):
    data, truth = offset_cube
    model = Gaussian1D(1.0, -45.0, 2.0)
    kwargs = dict(world=(X,), fitter="trf", scheduler="synchronous")  # no retry from a guess
    common = parfit.parallel_fit(model, data, **kwargs)
    mean = parfit.parallel_fit(model, data, initial="mean", **kwargs)
    assert recovered(common, truth) < 0.2
    assert recovered(mean, truth) == 1.0
    record = mean.run.mean_start
    assert record["pixels"] == 144 and record["status"] == "OK"
    assert abs(record["values"]["mean"] - 20.0) < 1.0
    assert "initial='mean': the mean spectrum of 144 pixels fitted (OK)" in mean.summary()


def test_mean_start_with_the_batched_solver_and_a_model_without_guess(offset_cube):
    data, truth = offset_cube
    result = parfit.parallel_fit(
        Gaussian1D(1.0, -45.0, 2.0), data, world=(X,), initial="mean", scheduler="synchronous"
    )
    assert recovered(result, truth) == 1.0
    # A model that cannot guess fits the mean spectrum from its own values:
    # from -45 km/s it misses the line there too, and says so.
    with pytest.warns(
        RuntimeWarning, match="starts from the model's values \\(it cannot guess\\) instead"
    ):
        far = parfit.parallel_fit(line, data, world=(X,), initial="mean", scheduler="synchronous")
    assert far.run.mean_start["status"] != "OK"


def test_mean_of_a_region_and_with_blank_pixels(offset_cube):
    data, truth = offset_cube
    data = data.copy()
    data[:, :3] = np.nan  # blank rows: not averaged
    region = np.zeros((12, 12), bool)
    region[5:8, 5:8] = True
    model = Gaussian1D(1.0, -45.0, 2.0)
    kwargs = dict(world=(X,), fitter="trf", scheduler="synchronous")
    result = parfit.parallel_fit(model, data, initial="mean", initial_region=region, **kwargs)
    assert result.run.mean_start["pixels"] == 9
    expected = np.nanmean(data[:, region], axis=1)
    assert np.isfinite(expected).all()
    values = result.run.mean_start["values"]
    assert abs(values["mean"] - np.average(X, weights=np.clip(expected, 0, None))) < 2.0
    assert np.all(np.asarray(result.status)[:3] == Status.NO_VALID_DATA)
    assert recovered(result, truth) == pytest.approx(0.75)  # all but the blank quarter
    whole = parfit.parallel_fit(model, data, initial="mean", **kwargs)
    assert whole.run.mean_start["pixels"] == 108


def test_min_snr_skips_noise_only_pixels():
    rng = np.random.default_rng(2)
    data = rng.normal(0, 0.1, (100, 6, 6))
    signal = np.zeros((6, 6), bool)
    signal[:, :3] = True
    data[:, signal] += 1.0 * np.exp(-0.5 * ((X[:, None] - 5.0) / 4.0) ** 2)
    model = Gaussian1D(1.0, 0.0, 3.0)
    result = parfit.parallel_fit(
        model, data, world=(X,), min_snr=5.0, initial="guess", scheduler="synchronous"
    )
    status = np.asarray(result.status)
    assert np.all(status[signal] == Status.OK)
    assert np.all(status[~signal] == Status.SKIPPED)
    assert np.all(np.isnan(result.parameters["mean"][~signal]))
    assert np.all(np.asarray(result.nfev)[~signal] == 0)
    assert Status.SKIPPED in NOT_ATTEMPTED and not is_failure(status).any()
    assert "SKIPPED                 18  ( 50.0%)  skipped: peak below min_snr" in result.summary()
    # The same pixels fitted without min_snr give the same answers elsewhere.
    full = parfit.parallel_fit(model, data, world=(X,), initial="guess", scheduler="synchronous")
    np.testing.assert_array_equal(
        result.parameters["mean"][signal], full.parameters["mean"][signal]
    )


def test_peak_snr_with_weights_and_edge_cases():
    y = np.array([[0.0] * 4 + [5.0] + [0.0] * 4, [1.0] * 9, [np.nan] * 9])
    valid = np.isfinite(y)
    snr = peak_snr(y, valid, weights=np.full(y.shape, 2.0))
    assert snr[0] == 10.0 and snr[1] == 0.0 and np.isnan(snr[2])
    snr = peak_snr(y, valid)
    assert snr[0] == np.inf and snr[1] == 0.0  # no noise: a peak is infinitely significant


def test_order_components_numbers_lines_by_position():
    rng = np.random.default_rng(3)
    a = np.where(rng.random((5, 5)) < 0.5, -20.0, 20.0)
    data = (
        line(X[:, None, None], 2.0, a, 3.0)
        + line(X[:, None, None], 1.0, -a, 3.0)
        + rng.normal(0, 0.05, (100, 5, 5))
    )
    model = Gaussian1D(2.0, 0.0, 3.0) + Gaussian1D(1.0, 0.0, 3.0)
    start = {"mean_0": a, "mean_1": -a}  # start at the truth, in no particular order
    model.mean_0.value = start["mean_0"]
    model.mean_1.value = start["mean_1"]
    unordered = parfit.parallel_fit(model, data, world=(X,), scheduler="synchronous")
    ordered = parfit.parallel_fit(
        model, data, world=(X,), scheduler="synchronous", order_components=True
    )
    assert not np.all(unordered.parameters["mean_0"] < unordered.parameters["mean_1"])
    assert np.all(ordered.parameters["mean_0"] < ordered.parameters["mean_1"])
    swapped = unordered.parameters["mean_0"] > unordered.parameters["mean_1"]
    for name in ("amplitude", "mean", "stddev"):
        for k in (0, 1):
            other = f"{name}_{1 - k}"
            np.testing.assert_array_equal(
                ordered.parameters[f"{name}_{k}"][swapped], unordered.parameters[other][swapped]
            )
            np.testing.assert_array_equal(
                ordered.errors[f"{name}_{k}"][swapped], unordered.errors[other][swapped]
            )
    np.testing.assert_array_equal(ordered.statistic, unordered.statistic)


def test_order_components_leaves_constrained_peaks_alone():
    model = Gaussian1D() + Gaussian1D() + Const1D()
    model.mean_1.bounds = (0.0, 10.0)  # different bounds: swapping would break them
    p = np.array([[1.0, 5.0, 1.0, 2.0, 3.0, 1.0, 0.0]])
    names = model.param_names
    lower = np.array([[-np.inf, -np.inf, 0.0, -np.inf, 0.0, 0.0, -np.inf]])
    upper = np.full_like(lower, np.inf)
    upper[0, 4] = 10.0
    model.order_components(names, p, lower=lower, upper=upper)
    assert p[0, 1] == 5.0  # kept
    model.mean_1.tied = "mean_0 + 1"
    q = np.array([[1.0, 5.0, 1.0, 2.0, 1.0, 0.0]])  # mean_1 tied: not a fitted column
    free = [n for n in names if n != "mean_1"]
    model.order_components(free, q)
    assert q[0, 1] == 5.0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            dict(min_snr=0),
            InputError,
            "min_snr must be None or a positive number (peak over robust noise); got 0",
        ),
        (
            dict(min_snr="3"),
            InputError,
            "min_snr must be None or a positive number (peak over robust noise); got '3'",
        ),
        (
            dict(initial="median"),
            InputError,
            "initial must be None, 'model', 'guess' or 'mean'; got 'median'",
        ),
        (
            dict(initial_region=np.ones((2, 2), bool)),
            InputError,
            "initial_region needs initial='mean' (it says whose mean spectrum gives the start); "
            "got initial=None",
        ),
        (
            dict(initial="mean", initial_region=np.ones((3, 2), bool)),
            InputError,
            "initial_region has shape (3, 2), which does not broadcast to the shape of the maps "
            "(2, 2)",
        ),
        (
            dict(initial="mean", initial_region=np.ones((2, 2))),
            InputTypeError,
            "initial_region must be a bool array (True: pixels whose mean spectrum gives the "
            "start); got dtype float64",
        ),
        (
            dict(initial="mean", initial_region=np.zeros((2, 2), bool)),
            InputError,
            "initial_region selects no pixel; it needs at least one True",
        ),
        (
            dict(order_components="yes"),
            InputTypeError,
            "order_components must be True or False; got 'yes'",
        ),
    ],
)
def test_bad_start_arguments_are_refused(kwargs, error, message):
    with pytest.raises(error) as info:
        parfit.parallel_fit(Gaussian1D(), np.ones((10, 2, 2)), world=(np.arange(10.0),), **kwargs)
    assert str(info.value) == message


def test_the_mean_spectrum_and_the_valid_counts_use_the_runs_scheduler(offset_cube):
    import dask

    data, _ = offset_cube
    calls = []

    def counting_get(dsk, keys, **kwargs):
        calls.append(1)
        return dask.get(dsk, keys, **kwargs)

    parfit.parallel_fit(
        Gaussian1D(1.0, -45.0, 2.0), data, world=(X,), initial="mean", scheduler=counting_get
    )
    assert len(calls) == 2  # the mean spectrum, then the fits
    calls.clear()
    parfit.parallel_fit(
        [Gaussian1D(), Gaussian1D() + Gaussian1D()],
        data,
        world=(X,),
        initial="guess",
        select="aic",
        scheduler=counting_get,
    )
    assert len(calls) == 3  # the valid samples, then each candidate's fits


def test_the_mean_start_is_recorded_in_the_store(offset_cube, tmp_path):
    data, _ = offset_cube
    result = parfit.parallel_fit(
        Gaussian1D(1.0, -45.0, 2.0),
        data,
        world=(X,),
        initial="mean",
        output=tmp_path / "m.zarr",
        scheduler="threads",
    )
    back = parfit.read_result(tmp_path / "m.zarr")
    assert back.run.mean_start == result.run.mean_start
    assert back.run.mean_start["pixels"] == 144
    assert "initial='mean': the mean spectrum of 144 pixels" in back.summary()
