"""Joint fits of several cubes per pixel with parameters shared across them (issue 13)."""

import re

import numpy as np
import pytest
from scipy.optimize import least_squares

import parfit
from parfit.errors import InputError, InputTypeError, ModelError, ParameterError
from parfit.models import Const1D, Gaussian1D, JointModel
from parfit.status import Flag, Status

NOISE = (0.1, 0.12)


def never_dispatch(*args, **kwargs):
    raise AssertionError("a refused call dispatched work")


def make_pair(seed=1, shape=(16, 20), blank=None):
    """Two line cubes sharing centre and width per pixel, with known truth.

    ``co10``: 60 channels on [-8, 8], spectral axis first.  ``co21``: 45
    channels on [-7, 9] (another grid), spectral axis last, a constant
    baseline.  ``blank``: a slice of the map where co21 is all NaN.
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    truth = {
        "mean": rng.uniform(-2.0, 2.0, shape),
        "stddev": rng.uniform(0.8, 1.5, shape),
        "co10.amplitude": rng.uniform(0.5, 3.0, shape),
        "co21.amplitude": rng.uniform(0.5, 3.0, shape),
        "co21.baseline": rng.uniform(-0.2, 0.2, shape),
    }
    x1 = np.linspace(-8, 8, 60)
    x2 = np.linspace(-7, 9, 45)
    mean, sd = truth["mean"], truth["stddev"]
    c1 = truth["co10.amplitude"][None] * np.exp(-0.5 * ((x1[:, None, None] - mean) / sd) ** 2)
    c1 = c1 + rng.normal(0, NOISE[0], c1.shape)
    c2 = (
        truth["co21.amplitude"][..., None]
        * np.exp(-0.5 * ((x2 - mean[..., None]) / sd[..., None]) ** 2)
        + truth["co21.baseline"][..., None]
    )
    c2 = c2 + rng.normal(0, NOISE[1], c2.shape)
    if blank is not None:
        c2[blank] = np.nan
    return truth, (x1, c1), (x2, c2)


def joint_models():
    co10 = Gaussian1D(1.0, 0.0, 1.0)
    co21 = Gaussian1D(1.0, 0.0, 1.0) + Const1D(0.0)
    co21.mean_0.tied = "co10.mean"
    co21.stddev_0.tied = "co10.stddev"
    return {"co10": co10, "co21": co21}


def joint_fit(pair, **kwargs):
    _, (x1, c1), (x2, c2) = pair
    kwargs.setdefault("scheduler", "threads")
    return parfit.parallel_fit(
        joint_models(),
        {"co10": c1, "co21": c2},
        world={"co10": (x1,), "co21": (x2,)},
        fitting_axes={"co10": 0, "co21": 2},
        weights={"co10": 1 / NOISE[0], "co21": 1 / NOISE[1]},
        initial="guess",
        **kwargs,
    )


@pytest.fixture(scope="module")
def pair():
    return make_pair()


@pytest.fixture(scope="module")
def result(pair):
    return joint_fit(pair)


def test_truth_recovered_with_honest_errors(pair, result):
    truth = pair[0]
    assert result.status_counts() == {Status.OK: 320}
    assert list(result.parameters) == [
        "co10.amplitude",
        "co10.mean",
        "co10.stddev",
        "co21.amplitude_0",
        "co21.mean_0",
        "co21.stddev_0",
        "co21.amplitude_1",
    ]
    cases = {
        "co10.mean": truth["mean"],
        "co10.stddev": truth["stddev"],
        "co10.amplitude": truth["co10.amplitude"],
        "co21.amplitude_0": truth["co21.amplitude"],
        "co21.amplitude_1": truth["co21.baseline"],
    }
    for name, true in cases.items():
        pulls = (result.parameters[name] - true) / result.errors[name]
        assert 0.7 < np.std(pulls) < 1.3, (name, np.std(pulls))
        assert abs(np.mean(pulls)) < 0.25, (name, np.mean(pulls))
    # The shared parameters appear under both datasets, identical.
    for shared in ("mean", "stddev"):
        np.testing.assert_array_equal(
            result.parameters[f"co21.{shared}_0"], result.parameters[f"co10.{shared}"]
        )
        np.testing.assert_array_equal(
            result.errors[f"co21.{shared}_0"], result.errors[f"co10.{shared}"]
        )


def test_shared_errors_shrink_against_single_cube_fits(pair, result):
    _, (x1, c1), _ = pair
    single = parfit.parallel_fit(
        Gaussian1D(1.0, 0.0, 1.0), c1, world=(x1,), weights=1 / NOISE[0], initial="guess"
    )
    assert single.success.all()
    # co21 holds about 3/5 of co10's information on the line: sqrt(1 / 1.6) = 0.8
    for name in ("mean", "stddev"):
        ratio = result.errors[f"co10.{name}"] / single.errors[name]
        assert np.median(ratio) < 0.85, (name, np.median(ratio))
        assert (ratio < 1.0).mean() > 0.9, (name, (ratio < 1.0).mean())


def test_statistic_is_the_sum_of_the_datasets_shares(pair, result):
    shares = result.statistics
    assert list(shares) == ["co10", "co21"]
    np.testing.assert_allclose(shares["co10"] + shares["co21"], result.statistic, rtol=1e-9)
    # chi-square per dataset near its number of samples (60 and 45 channels)
    assert 50 < np.median(shares["co10"]) < 70 and 35 < np.median(shares["co21"]) < 55


def test_models_are_the_datasets_fitted_models_and_inputs_are_untouched(pair, result):
    models = result.models
    assert list(models) == ["co10", "co21"]
    np.testing.assert_array_equal(models["co10"].mean.value, result.parameters["co10.mean"])
    np.testing.assert_array_equal(
        models["co21"].amplitude_1.value, result.parameters["co21.amplitude_1"]
    )
    # The tie to the other dataset does not survive on a dataset's own model.
    assert models["co21"].mean_0.tied is None
    assert isinstance(result.model, JointModel)
    assert result.model.parameters["co21.mean_0"].tied == "co10.mean"
    given = joint_models()
    assert given["co21"].mean_0.tied == "co10.mean" and float(given["co10"].mean.value) == 0.0
    with pytest.raises(AttributeError, match="models: this result is of a single cube's fit"):
        _ = parfit.parallel_fit(Gaussian1D(), np.ones((5, 2)), scheduler="sync").models


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(scheduler="synchronous", chunk_n_max=7),
        dict(scheduler="threads", chunk_n_max=64),
        dict(scheduler="threads", chunk_n_max=1000),
    ],
)
def test_identical_maps_for_any_chunking_and_scheduler(pair, result, kwargs):
    other = joint_fit(pair, **kwargs)
    for name in result.parameters:
        np.testing.assert_array_equal(other.parameters[name], result.parameters[name], name)
        np.testing.assert_array_equal(other.errors[name], result.errors[name], name)
    np.testing.assert_array_equal(other.statistic, result.statistic)


def test_streamed_store_and_resume(pair, result, tmp_path):
    store = tmp_path / "joint.zarr"
    streamed = joint_fit(pair, output=store, chunk_n_max=40)
    assert streamed.run.complete and streamed.is_lazy
    for name in result.parameters:
        np.testing.assert_array_equal(streamed.parameters[name], result.parameters[name], name)
    np.testing.assert_array_equal(streamed.statistics["co21"], result.statistics["co21"])
    resumed = joint_fit(pair, output=store, chunk_n_max=40, resume=True)
    assert resumed.run.blocks_fitted == 0
    read = parfit.read_result(store)
    np.testing.assert_array_equal(read.models["co10"].mean.value, result.parameters["co10.mean"])
    assert read.model.sizes == {"co10": 60, "co21": 45}
    ds = streamed.to_xarray()
    assert "co21.amplitude_0" in ds and "co21.amplitude_0_error" in ds


def test_blank_region_of_one_cube_is_fitted_on_the_other(tmp_path):
    blank = (slice(0, 4), slice(0, 5), slice(None))
    pair = make_pair(seed=2, blank=blank)
    res = joint_fit(pair, chunk_n_max=30)
    assert res.status_counts() == {Status.OK: 320}
    missing = (res.flags & Flag.DATASET_MISSING) != 0
    assert missing.sum() == 20 and missing[:4, :5].all()
    # co21's own parameters are undetermined there; the shared ones are fitted on co10.
    for name in ("co21.amplitude_0", "co21.amplitude_1"):
        assert np.isnan(res.parameters[name][missing]).all()
        assert np.isnan(res.errors[name][missing]).all()
        assert np.isfinite(res.parameters[name][~missing]).all()
    for name in ("co10.mean", "co10.stddev", "co21.mean_0", "co10.amplitude"):
        assert np.isfinite(res.parameters[name]).all() and np.isfinite(res.errors[name]).all()
    np.testing.assert_array_equal(res.statistics["co21"][missing], 0.0)
    # Where co21 is blank the fit is the single-cube fit of co10.
    _, (x1, c1), _ = pair
    alone = parfit.parallel_fit(
        Gaussian1D(1.0, 0.0, 1.0),
        c1[:, :4, :5],
        world=(x1,),
        weights=1 / NOISE[0],
        initial="guess",
    )
    np.testing.assert_allclose(
        res.parameters["co10.mean"][:4, :5], alone.parameters["mean"], rtol=1e-6, atol=1e-8
    )
    streamed = joint_fit(pair, chunk_n_max=30, output=tmp_path / "blank.zarr")
    assert streamed.run.complete
    assert parfit.store.verify_store(tmp_path / "blank.zarr").ok


def test_line_ratio_tie_and_chain_of_ties():
    rng = np.random.default_rng(5)
    x = np.linspace(-6, 6, 50)
    amp = rng.uniform(1.0, 2.0, (6, 7))
    mean = rng.uniform(-1, 1, (6, 7))
    cubes = {}
    for name, ratio in [("a", 1.0), ("b", 0.5), ("c", 0.25)]:
        cubes[name] = ratio * amp[None] * np.exp(-0.5 * (x[:, None, None] - mean) ** 2)
        cubes[name] = cubes[name] + rng.normal(0, 0.02, cubes[name].shape)
    models = {name: Gaussian1D(1.0, 0.0, 1.0, fixed={"stddev": True}) for name in cubes}
    models["b"].amplitude.tied = "0.5 * a.amplitude"
    models["c"].amplitude.tied = "0.5 * b.amplitude"  # a chain through b
    models["b"].mean.tied = "a.mean"
    models["c"].mean.tied = "b.mean"
    res = parfit.parallel_fit(models, cubes, world=(x,), scheduler="threads")
    assert res.success.all()
    pulls = (res.parameters["a.amplitude"] - amp) / res.errors["a.amplitude"]
    assert np.abs(pulls).max() < 4.5 and 0.6 < np.std(pulls) < 1.4
    np.testing.assert_allclose(res.parameters["c.amplitude"], 0.25 * res.parameters["a.amplitude"])
    np.testing.assert_array_equal(res.parameters["c.mean"], res.parameters["a.mean"])
    models["a"].mean.tied = "c.mean"
    with pytest.raises(
        ParameterError,
        match=re.escape("tied parameters form a cycle: a.mean -> c.mean -> b.mean -> a.mean"),
    ):
        parfit.parallel_fit(models, cubes, world=(x,), scheduler=never_dispatch)


def test_scipy_fitter_and_an_independent_oracle_agree(pair):
    """Per-fit scipy least_squares on the stacked residuals, from the same start."""
    _, (x1, c1), (x2, c2) = pair
    pixels = [(0, 0), (3, 7), (11, 2), (15, 19)]
    c1s = np.stack([c1[:, i, j] for i, j in pixels], axis=1)[:, None, :]
    c2s = np.stack([c2[i, j] for i, j in pixels], axis=0)[None]
    start = [1.5, 0.3, 1.2]
    models = {"co10": Gaussian1D(*start), "co21": Gaussian1D(1.0, 0.3, 1.2) + Const1D(0.0)}
    models["co21"].mean_0.tied = "co10.mean"
    models["co21"].stddev_0.tied = "co10.stddev"
    args = (models, {"co10": c1s, "co21": c2s})
    kwargs = dict(
        world={"co10": (x1,), "co21": (x2,)},
        fitting_axes={"co10": 0, "co21": 2},
        weights={"co10": 1 / NOISE[0], "co21": 1 / NOISE[1]},
        scheduler="synchronous",
    )
    batched = parfit.parallel_fit(*args, **kwargs)
    scipy_fit = parfit.parallel_fit(*args, fitter="trf", **kwargs)
    for k in range(len(pixels)):

        def residual(p, k=k):
            a1, m, s, a2, b = p
            g1 = a1 * np.exp(-0.5 * ((x1 - m) / s) ** 2)
            g2 = a2 * np.exp(-0.5 * ((x2 - m) / s) ** 2) + b
            return np.concatenate([(g1 - c1s[:, 0, k]) / NOISE[0], (g2 - c2s[0, k]) / NOISE[1]])

        oracle = least_squares(
            residual, [1.5, 0.3, 1.2, 1.0, 0.0], method="trf", xtol=1e-12, ftol=1e-12, gtol=1e-12
        )
        names = [
            "co10.amplitude",
            "co10.mean",
            "co10.stddev",
            "co21.amplitude_0",
            "co21.amplitude_1",
        ]
        for fit in (batched, scipy_fit):
            got = [fit.parameters[n][0, k] for n in names]
            np.testing.assert_allclose(got, oracle.x, rtol=1e-5, atol=1e-6)
            assert fit.statistic[0, k] == pytest.approx(2 * oracle.cost, rel=1e-7)


# --- refusals, before anything is dispatched ---------------------------------------------


def _refused(exc, message, **overrides):
    _, (x1, c1), (x2, c2) = make_pair(shape=(3, 4))
    kwargs = dict(
        model=joint_models(),
        data={"co10": c1, "co21": c2},
        world={"co10": (x1,), "co21": (x2,)},
        fitting_axes={"co10": 0, "co21": 2},
        scheduler=never_dispatch,
    )
    kwargs.update(overrides)
    with pytest.raises(exc, match=re.escape(message)):
        parfit.parallel_fit(kwargs.pop("model"), kwargs.pop("data"), **kwargs)


def test_refused_other_iterating_shape():
    _, (x1, c1), (x2, c2) = make_pair(shape=(3, 4))
    _refused(
        InputError,
        "data: dataset 'co21' has iterating shape (3, 3) but dataset 'co10' has (3, 4); the "
        "cubes of a joint fit must have the same shape along their iterating axes",
        data={"co10": c1, "co21": c2[:, :3]},
    )


def test_refused_missing_and_unknown_keys():
    _refused(
        InputError,
        "fitting_axes: no entry for dataset(s) 'co21'; give fitting_axes for every dataset "
        "(co10, co21), or one value for all",
        fitting_axes={"co10": 0},
    )
    _refused(
        InputError,
        "world: unknown dataset(s) 'co32'; the datasets are co10, co21 (the keys of data)",
        world={"co10": (np.arange(60.0),), "co21": (np.arange(45.0),), "co32": None},
    )
    _refused(
        InputError,
        "model: no entry for dataset(s) 'co21'",
        model={"co10": Gaussian1D()},
    )


def test_refused_data_and_model_not_both_mappings():
    _refused(
        InputTypeError,
        "model is a mapping of datasets (a joint fit), so data must be a mapping of the same "
        "dataset names to cubes; got data of type ndarray",
        data=np.ones((60, 3, 4)),
    )
    _refused(
        InputTypeError,
        "data is a mapping of datasets (a joint fit), so model must be a mapping of the same "
        "dataset names to models; got model of type Gaussian1D",
        model=Gaussian1D(),
    )


def test_refused_bad_dataset_name():
    _, (x1, c1), (x2, c2) = make_pair(shape=(3, 4))
    _refused(
        ModelError,
        "data: dataset name 'co 21' is not usable; dataset names must be Python identifiers",
        data={"co10": c1, "co 21": c2},
        model={"co10": Gaussian1D(), "co 21": Gaussian1D()},
        world={"co10": (x1,), "co 21": (x2,)},
        fitting_axes={"co10": 0, "co 21": 2},
    )


def test_refused_ties_to_unknown_dataset_or_parameter():
    models = joint_models()
    models["co21"].amplitude_0.tied = "co32.amplitude"
    _refused(
        ParameterError,
        "Parameter 'co21.amplitude_0': tied expression 'co32.amplitude' names dataset 'co32', "
        "which is not one of the datasets (co10, co21)",
        model=models,
    )
    models["co21"].amplitude_0.tied = "co10.height"
    _refused(
        ParameterError,
        "Parameter 'co21.amplitude_0': tied expression 'co10.height' names 'co10.height', but "
        "dataset 'co10' has no parameter 'height'; its parameters are: amplitude, mean, stddev",
        model=models,
    )


def test_refused_errors_of_one_dataset_name_it():
    _, (x1, c1), (x2, c2) = make_pair(shape=(3, 4))
    _refused(
        InputError,
        "dataset 'co21': world[0] has length 44 but data has length 45 along axis 2",
        world={"co10": (x1,), "co21": (x2[:-1],)},
    )


def test_tie_to_another_dataset_outside_a_joint_fit_is_refused():
    model = Gaussian1D()
    model.mean.tied = "co10.mean"
    with pytest.raises(
        ParameterError, match="a parameter of another dataset; such ties work only in a joint fit"
    ):
        parfit.parallel_fit(model, np.ones((10, 3)), scheduler=never_dispatch)


def test_initial_per_dataset(pair, result):
    _, (x1, c1), (x2, c2) = pair
    models = joint_models()
    # co21's own start is good enough: its amplitude from the truth's median
    models["co21"].amplitude_0 = 1.7
    per = parfit.parallel_fit(
        models,
        {"co10": c1, "co21": c2},
        world={"co10": (x1,), "co21": (x2,)},
        fitting_axes={"co10": 0, "co21": 2},
        weights={"co10": 1 / NOISE[0], "co21": 1 / NOISE[1]},
        initial={"co10": "guess", "co21": "model"},
        scheduler="threads",
    )
    assert per.success.all()
    np.testing.assert_allclose(
        per.parameters["co21.amplitude_0"], result.parameters["co21.amplitude_0"], rtol=1e-5
    )
    _refused(
        InputError,
        "initial: no entry for dataset(s) 'co21'; give initial for every dataset (co10, co21)",
        initial={"co10": "guess"},
    )
    _refused(
        InputError,
        "initial['co21'] must be None, 'model' or 'guess'; got 'mean'",
        initial={"co10": "guess", "co21": "mean"},
    )
    with pytest.raises(
        InputTypeError, match=re.escape("initial: a mapping of datasets is for a joint fit")
    ):
        parfit.parallel_fit(
            Gaussian1D(), np.ones((5, 3)), initial={"a": "guess"}, scheduler=never_dispatch
        )


def test_model_and_residual_cubes_per_dataset_in_the_store(tmp_path):
    import xarray as xr

    pair = make_pair(shape=(6, 7), blank=(slice(0, 2), slice(0, 2), slice(None)))
    store = tmp_path / "joint.zarr"
    res = joint_fit(pair, output=store, output_cubes=["model", "residual"], chunk_n_max=10)
    assert res.run.complete and parfit.store.verify_store(store).ok
    ds = xr.open_zarr(store, consolidated=False)
    # Each dataset's cubes in its own layout; the maps' dimensions on the iterating axes.
    assert ds["model.co10"].dims == ("dim_0.co10", "dim_1", "dim_2")
    assert ds["residual.co21"].dims == ("dim_1", "dim_2", "dim_2.co21")
    assert ds["co10.mean"].dims == ("dim_1", "dim_2")
    _, (x1, c1), (x2, c2) = pair
    np.testing.assert_allclose(
        ds["model.co10"].values + ds["residual.co10"].values, c1, rtol=1e-12, atol=1e-12
    )
    # The model cube is the fitted model of the dataset, pixel by pixel.
    fitted = res.models["co21"]
    i, j = 4, 5
    expected = fitted.with_values(
        {n: fitted.parameters[n].value[i, j] for n in fitted.param_names}
    )(x2)
    np.testing.assert_allclose(ds["model.co21"].values[i, j], expected, rtol=1e-10)
    assert np.isnan(ds["model.co21"].values[0, 0]).all()  # co21 blank there
    assert np.isfinite(ds["model.co10"].values[:, 0, 0]).all()
    assert 0.08 < np.nanstd(ds["residual.co21"].values) < 0.16


def test_yaml_round_trip_keeps_ties_across_datasets(pair, result):
    from parfit.models import from_yaml, to_yaml

    models = joint_models()
    models["co21"].amplitude_1.bounds = (-1.0, 1.0)
    text = to_yaml(models)
    assert text.startswith("datasets:\n  co10:\n")
    back = from_yaml(text)
    assert list(back) == ["co10", "co21"]
    assert back["co21"].mean_0.tied == "co10.mean"
    assert back["co21"].stddev_0.tied == "co10.stddev"
    assert back["co21"].amplitude_1.bounds == (-1.0, 1.0)
    # The fitted joint model writes the same form, with its ties.
    fitted = from_yaml(to_yaml(result.model, include_arrays=False))
    assert fitted["co21"].mean_0.tied == "co10.mean"
    models["co21"].mean_0.tied = "co32.mean"
    with pytest.raises(
        ModelError,
        match=re.escape(
            "model.datasets: Parameter 'co21.mean_0': tied expression 'co32.mean' names dataset "
            "'co32', which is not one of the datasets (co10, co21)"
        ),
    ):
        from_yaml(to_yaml(models))


def test_inspect_xarray_and_fits_of_a_joint_store(tmp_path):
    import json
    import subprocess
    import sys

    from astropy.io import fits

    pair = make_pair(shape=(5, 6), blank=(slice(0, 1), slice(0, 2), slice(None)))
    store = tmp_path / "joint.zarr"
    res = joint_fit(pair, output=store, chunk_n_max=12)
    ds = res.to_xarray()
    np.testing.assert_array_equal(ds["statistic.co21"].values, res.statistics["co21"])
    assert ds["co21.mean_0"].dims == ("dim_1", "dim_2")
    res.to_fits(tmp_path / "maps.fits")
    with fits.open(tmp_path / "maps.fits") as hdus:
        names = [h.name for h in hdus]
        assert "CO21.AMPLITUDE_0" in names and "STATISTIC.CO10" in names
        np.testing.assert_array_equal(hdus["CO10.MEAN"].data, res.parameters["co10.mean"])
    env = {"PYTHONPATH": str(parfit.__file__).rsplit("/parfit/", 1)[0]}
    run = subprocess.run(
        [sys.executable, "-m", "parfit.cli", "inspect", str(store), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    report = json.loads(run.stdout)
    assert report["flag_counts"] == {"DATASET_MISSING": 2}
    assert set(report["median_statistic_by_dataset"]) == {"co10", "co21"}
    assert report["percentiles"]["co21.mean_0"] == report["percentiles"]["co10.mean"]
    text = subprocess.run(
        [sys.executable, "-m", "parfit.cli", "inspect", str(store)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "median share of dataset co21:" in text
    assert "DATASET_MISSING" in text


def test_cubes_of_every_kind_with_their_own_units(tmp_path):
    import astropy.units as u
    import dask.array as da
    import xarray as xr

    from parfit.datasets import SyntheticCube, joint_line_cubes

    cubes = joint_line_cubes((6, 7), seed=2)
    plain = parfit.parallel_fit(cubes.models, cubes.data, initial="guess", **cubes.fit_arguments())
    # co10 from a FITS file (its WCS gives the velocities), co21 a DataArray in mK with a
    # named spectral dimension and velocities in m/s, as a dask array.
    path = SyntheticCube(
        data=cubes.data["co10"], world=cubes.world["co10"], truth={}, noise=0.1, model=None
    ).to_fits(tmp_path / "co10.fits")
    co21 = xr.DataArray(
        da.from_array(cubes.data["co21"] * 1000, chunks=(3, 7, 45)), dims=("y", "x", "v")
    )
    models = {name: model.copy() for name, model in cubes.models.items()}
    models["co10"].mean.unit = u.km / u.s
    models["co10"].stddev.unit = u.km / u.s
    models["co21"].amplitude_0.unit = u.K
    models["co21"].amplitude_1.unit = u.K
    mixed = parfit.parallel_fit(
        models,
        {"co10": str(path), "co21": co21},
        world={"co10": None, "co21": (cubes.world["co21"][0] * 1000 * u.m / u.s,)},
        fitting_axes={"co10": 0, "co21": "v"},
        data_unit={"co10": None, "co21": u.mK},
        weights={"co10": 10.0, "co21": 1 / 120.0},
        initial="guess",
    )
    assert mixed.success.all()
    # co21's tied centre and width take co10's unit; its amplitudes come back in K.
    assert mixed.units["co21.mean_0"] == u.km / u.s and mixed.units["co21.amplitude_0"] == u.K
    for name in plain.parameters:
        np.testing.assert_allclose(
            mixed.parameters[name], plain.parameters[name], rtol=2e-5, atol=2e-5, err_msg=name
        )
    # A tie between parameters given different units is refused, naming both.
    models["co21"].mean_0.unit = u.m / u.s
    with pytest.raises(
        InputError,
        match=re.escape(
            "model: co21.mean_0 is tied to co10.mean ('co10.mean') but is fitted in m / s and "
            "co10.mean in km / s; give both the same unit"
        ),
    ):
        parfit.parallel_fit(
            models,
            {"co10": str(path), "co21": co21},
            world={"co10": None, "co21": (cubes.world["co21"][0] * 1000 * u.m / u.s,)},
            fitting_axes={"co10": 0, "co21": "v"},
            data_unit={"co10": None, "co21": u.mK},
            scheduler=never_dispatch,
        )


@pytest.mark.slow
def test_processes_scheduler_gives_the_same_maps(pair, result):
    other = joint_fit(pair, scheduler="processes", chunk_n_max=80)
    for name in result.parameters:
        np.testing.assert_array_equal(other.parameters[name], result.parameters[name], name)


def test_to_zarr_and_read_result_round_trip(result, tmp_path):
    result.to_zarr(tmp_path / "maps.zarr")
    back = parfit.read_result(tmp_path / "maps.zarr")
    assert list(back.parameters) == list(result.parameters)
    np.testing.assert_array_equal(back.statistics["co21"], result.statistics["co21"])
    np.testing.assert_array_equal(back.parameters["co21.mean_0"], result.parameters["co10.mean"])
    np.testing.assert_array_equal(
        back.models["co21"].amplitude_1.value, result.parameters["co21.amplitude_1"]
    )
    assert back.model.parameters["co21.mean_0"].tied == "co10.mean"


def _record(path, world, data, weights, model, fitter_kwargs):
    import json
    import os

    with open(os.path.join(path, "seen.json"), "w") as fh:
        json.dump(
            {
                name: [
                    list(np.shape(world[name][0])),
                    list(np.shape(data[name])),
                    None if model is None or model[name] is None else type(model[name]).__name__,
                ]
                for name in data
            },
            fh,
        )


def test_diagnostics_callable_gets_each_dataset(tmp_path):
    import json

    pair = make_pair(shape=(2, 3), blank=(slice(0, 1), slice(0, 1), slice(None)))
    joint_fit(
        pair,
        diagnostics="all",
        diagnostics_path=tmp_path / "diag",
        diagnostics_callable=_record,
        scheduler="synchronous",
    )
    seen = json.loads((tmp_path / "diag" / "0_1" / "seen.json").read_text())
    assert seen == {"co10": [[60], [60], "Gaussian1D"], "co21": [[45], [45], "CompoundModel"]}
    seen = json.loads((tmp_path / "diag" / "0_0" / "seen.json").read_text())
    assert seen == {"co10": [[60], [60], "Gaussian1D"], "co21": [[45], [45], None]}
    warn = (tmp_path / "diag" / "0_0" / "warn.log").read_text()
    assert "dataset(s) co21 have no valid sample here" in warn


def test_inputs_are_never_changed(pair):
    from parfit.models import to_yaml

    _, (x1, c1), (x2, c2) = pair
    models = joint_models()
    models["co10"].amplitude = np.full((16, 20), 1.5)  # a per-pixel start
    data = {"co10": c1.copy(), "co21": c2.copy()}
    before = to_yaml(models)
    result = parfit.parallel_fit(
        models,
        data,
        world={"co10": (x1,), "co21": (x2,)},
        fitting_axes={"co10": 0, "co21": 2},
        initial="guess",
        scheduler="threads",
    )
    assert result.success.all()
    assert to_yaml(models) == before  # values, ties (across datasets too), bounds
    np.testing.assert_array_equal(data["co10"], c1)
    np.testing.assert_array_equal(data["co21"], c2)
