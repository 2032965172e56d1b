"""Streamed, resumable output: parallel_fit(..., output=store, resume=...)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from _compare import assert_same_results as assert_same_maps  # noqa: E402

import parfit
from parfit import Status
from parfit.datasets import gaussian_cube
from parfit.store import ATTRS_KEY, DONE_NAME, read_done

HERE = Path(__file__).resolve().parent


def never_dispatch(*args, **kwargs):
    raise AssertionError("work was dispatched before the bad input was refused")


@pytest.fixture(scope="module")
def cube():
    return gaussian_cube((40, 30, 25), seed=1, n_blank=3)


def fit(cube, **kwargs):
    kwargs.setdefault("scheduler", "threads")
    kwargs.setdefault("chunk_n_max", 100)
    return parfit.parallel_fit(cube.model, cube.data, world=cube.world, **kwargs)


def test_store_holds_the_maps_and_provenance(cube, tmp_path):
    store = tmp_path / "maps.zarr"
    res = fit(cube, output=store)
    assert_same_maps(res, fit(cube))
    assert res.meta["output"] == str(store)
    assert res.meta["blocks_fitted"] == 8 and res.meta["blocks_resumed"] == 0
    ds = xr.open_zarr(store, consolidated=False)
    np.testing.assert_array_equal(ds["mean"].values, res.parameters["mean"])
    np.testing.assert_array_equal(ds["status"].values, res.status)
    assert ds["status"].dtype == np.int8
    assert set(ds["mean"].dims) == {"dim_1", "dim_2"}
    assert ds[DONE_NAME].values.tolist() == [[1]] * 8
    attrs = ds.attrs[ATTRS_KEY]
    assert attrs["parfit_version"] == parfit.__version__
    assert attrs["complete"] is True
    assert attrs["model_yaml"].startswith("model: Gaussian1D")
    assert attrs["options"]["chunk_n_max"] == 100
    assert attrs["chunks"] == [4, 25]
    assert len(attrs["input_fingerprint"]) == 32
    assert attrs["run_id"] == res.meta["run_id"]


def test_existing_store_is_refused_unless_overwrite(cube, tmp_path):
    store = tmp_path / "maps.zarr"
    fit(cube, output=store)
    with pytest.raises(
        FileExistsError,
        match="already exists; pass overwrite=True to replace it, or resume=True to finish the run",
    ):
        fit(cube, output=store, scheduler=never_dispatch)
    again = fit(cube, output=store, overwrite=True)
    assert again.meta["blocks_fitted"] == 8


@pytest.mark.parametrize("make", ["directory", "file", "other zarr"])
def test_never_replaces_what_parfit_did_not_create(cube, tmp_path, make):
    target = tmp_path / "maps.zarr"
    if make == "directory":
        target.mkdir()
        (target / "precious.txt").write_text("keep me")
    elif make == "file":
        target.write_text("keep me")
    else:
        zarr.open_group(str(target), mode="w").create_array("x", shape=(2,), dtype="f8")
    with pytest.raises(
        FileExistsError,
        match="is not a parfit output store; parfit never "
        "replaces or deletes what it did not create",
    ):
        fit(cube, output=target, overwrite=True, scheduler=never_dispatch)
    assert target.exists()
    if make == "directory":
        assert (target / "precious.txt").read_text() == "keep me"


def test_resume_of_a_complete_store_fits_nothing(cube, tmp_path):
    store = tmp_path / "maps.zarr"
    first = fit(cube, output=store)
    # Resuming re-reads (and hashes) the input of the recorded blocks, but fits nothing.
    again = fit(cube, output=store, resume=True, scheduler="synchronous")
    assert again.meta["blocks_fitted"] == 0 and again.meta["blocks_resumed"] == 8
    assert again.meta["run_id"] == first.meta["run_id"]
    assert_same_maps(first, again)


def test_resume_without_a_store_starts_a_new_run(cube, tmp_path):
    res = fit(cube, output=tmp_path / "new.zarr", resume=True)
    assert res.meta["blocks_fitted"] == 8


def test_resume_recomputes_only_missing_blocks(cube, tmp_path):
    store = tmp_path / "maps.zarr"
    reference = fit(cube, output=store)
    # Forget three blocks as a crash would (their data may be partly written).
    done = zarr.open_array(str(store / DONE_NAME), mode="r+")
    done[2:5, 0] = 0
    group = zarr.open_group(str(store), mode="r+")
    group["mean"][8:20] = -999.0
    resumed = fit(cube, output=store, resume=True)
    assert resumed.meta["blocks_fitted"] == 3
    assert_same_maps(reference, resumed)
    assert read_done(store).all()


@pytest.mark.parametrize(
    "change, match",
    [
        # A changed cube is found by its blocks' hashes (the whole-input
        # fingerprint samples it), before anything is dispatched.
        ("data", r"resume=True: the input of block\(s\) \(0, 0\) differs from what was fitted"),
        ("world", "resume=True: output .* was written from another input than this call"),
        ("model", "resume=True: output .* was written from other options than this call"),
        ("fitter_kwargs", "resume=True: output .* was written from other options than this call"),
    ],
)
def test_resume_refused_on_changed_input_or_options(cube, tmp_path, change, match):
    store = tmp_path / "maps.zarr"
    fit(cube, output=store)
    kwargs = dict(output=store, resume=True, scheduler=never_dispatch)
    if change == "data":
        data = cube.data.copy()
        data[5, 3, 3] += 1.0
        call = lambda: parfit.parallel_fit(  # noqa: E731
            cube.model,
            data,
            world=cube.world,
            chunk_n_max=100,
            **kwargs,
        )
    elif change == "world":
        call = lambda: parfit.parallel_fit(  # noqa: E731
            cube.model,
            cube.data,
            world=(cube.world[0] * 1.001,),
            chunk_n_max=100,
            **kwargs,
        )
    elif change == "model":
        model = cube.model.copy()
        model.mean = 1.0
        call = lambda: parfit.parallel_fit(  # noqa: E731
            model,
            cube.data,
            world=cube.world,
            chunk_n_max=100,
            **kwargs,
        )
    else:
        call = lambda: fit(cube, fitter_kwargs={"ftol": 1e-10}, **kwargs)  # noqa: E731
    with pytest.raises(ValueError, match=match):
        call()


def test_resume_refused_on_other_chunking(cube, tmp_path):
    store = tmp_path / "maps.zarr"
    fit(cube, output=store)
    with pytest.raises(
        ValueError,
        match="resume=True: output .* (was written from other options|has another layout)",
    ):
        fit(cube, output=store, resume=True, chunk_n_max=50, scheduler=never_dispatch)


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        (dict(output=3), TypeError, "output must be a path .* got int"),
        (dict(resume=True), ValueError, r"resume=True needs output="),
        (dict(output="x.zarr", resume="yes"), TypeError, "resume must be True or False; got 'yes'"),
        (
            dict(output="x.zarr", fit_info=True),
            ValueError,
            "fit_info cannot be combined with output=",
        ),
    ],
)
def test_bad_output_arguments(cube, tmp_path, monkeypatch, kwargs, exc, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(exc, match=message):
        fit(cube, scheduler=never_dispatch, **kwargs)
    assert not (tmp_path / "x.zarr").exists()


def test_diagnostics_of_a_resumed_run_are_kept(cube, tmp_path):
    data = cube.data.copy()
    data[2:, 0, 0] = np.nan  # one failing pixel in the first block
    data[2:, 21, 10] = np.nan  # and one in block 5 (too few samples)
    store, diag_path = tmp_path / "maps.zarr", tmp_path / "diag"
    kwargs = dict(
        world=cube.world,
        chunk_n_max=100,
        scheduler="threads",
        output=store,
        diagnostics="error",
        diagnostics_path=diag_path,
    )
    parfit.parallel_fit(cube.model, data, **kwargs)
    zarr.open_array(str(store / DONE_NAME), mode="r+")[5, 0] = 0  # block 5 is lost
    (diag_path / "manifest.csv").unlink()
    res = parfit.parallel_fit(cube.model, data, resume=True, **kwargs)
    rows = parfit.diagnostics.read_manifest(diag_path)
    assert {row["folder"] for row in rows} == {"00_00", "21_10"}
    assert {row["run_id"] for row in rows} == {res.meta["run_id"]}


KILL_SCRIPT = """
import sys
import parfit
from parfit.datasets import gaussian_cube
from _slow_model import SlowGaussian

cube = gaussian_cube((40, 30, 25), seed=1, n_blank=3)
model = SlowGaussian(2.0, 0.0, 5.0)
parfit.parallel_fit(model, cube.data, world=cube.world, chunk_n_max=50,
                    scheduler="synchronous", output=sys.argv[1])
"""


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_gives_identical_maps(cube, tmp_path):
    sys.path.insert(0, str(HERE))
    try:
        from _slow_model import SlowGaussian
    finally:
        sys.path.remove(str(HERE))
    store = tmp_path / "maps.zarr"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.Popen([sys.executable, str(script), str(store)], env=env)
    deadline = time.monotonic() + 120
    n_done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if (store / DONE_NAME / "zarr.json").exists():  # the metadata, not the folder
            n_done = int(read_done(store).sum())
            if n_done >= 3:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = read_done(store)
    assert 3 <= done.sum() < done.size
    attrs = json.loads((store / "zarr.json").read_text())["attributes"][ATTRS_KEY]
    assert attrs["complete"] is False

    model = SlowGaussian(2.0, 0.0, 5.0)
    model.delay = 0.0  # same model class and values: same options
    kwargs = dict(world=cube.world, chunk_n_max=50, scheduler="threads")
    # The killed run left its lock: it is taken over, with a warning naming it.
    with pytest.warns(
        parfit.errors.StaleLockWarning, match="took over the lock of a parfit run that is gone"
    ):
        resumed = parfit.parallel_fit(model, cube.data, output=store, resume=True, **kwargs)
    assert resumed.meta["blocks_resumed"] == done.sum()
    assert resumed.meta["blocks_fitted"] == done.size - done.sum()
    reference = parfit.parallel_fit(model, cube.data, **kwargs)
    assert_same_maps(reference, resumed)
    assert (resumed.status != Status.NOT_RUN).all()


def test_model_and_residual_cubes_follow_the_input_layout(cube, tmp_path):
    data = np.moveaxis(cube.data, 0, 1).copy()  # the spectral axis in the middle
    data[4, :, 3] = np.nan  # one empty pixel: NaN cubes there
    store = tmp_path / "maps.zarr"
    res = parfit.parallel_fit(
        cube.model,
        data,
        world=cube.world,
        fitting_axes=1,
        chunk_n_max=60,
        scheduler="threads",
        output=store,
        output_cubes=("model", "residual"),
    )
    ds = xr.open_zarr(store, consolidated=False)
    assert ds["model"].shape == data.shape
    assert ds["model"].dims == ("dim_0", "dim_1", "dim_2")
    params = np.stack([res.parameters[n] for n in res.param_names], axis=-1)
    expected = np.moveaxis(
        cube.model.evaluate(cube.world[0], params.reshape(-1, 3)).reshape(30, 25, 40), -1, 1
    )
    ok = res.status == Status.OK
    np.testing.assert_allclose(
        ds["model"].values[:, :, :][np.broadcast_to(ok[:, None, :], data.shape)],
        expected[np.broadcast_to(ok[:, None, :], data.shape)],
        rtol=1e-12,
        atol=1e-12,
    )
    assert np.isnan(ds["model"].values[4, :, 3]).all()
    np.testing.assert_allclose(
        ds["residual"].values + ds["model"].values, data, rtol=1e-12, atol=1e-12
    )
    assert ds.attrs[ATTRS_KEY]["options"]["output_cubes"] == ["model", "residual"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(output_cubes=("model",)), r"output_cubes needs output="),
        (
            dict(output="x.zarr", output_cubes=("chi2",)),
            r"output_cubes must be a sequence of 'model', 'residual'; got \('chi2',\)",
        ),
    ],
)
def test_bad_output_cubes(cube, tmp_path, monkeypatch, kwargs, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        fit(cube, scheduler=never_dispatch, **kwargs)


def test_store_keeps_coordinates_and_the_map_wcs(cube, tmp_path):
    from astropy.nddata import NDData
    from astropy.wcs import WCS

    da = xr.DataArray(
        cube.data, dims=("v", "dec", "ra"), coords={"v": cube.world[0], "ra": np.arange(25) * 0.1}
    )
    store = tmp_path / "coords.zarr"
    fit_da = parfit.parallel_fit(
        cube.model, da, fitting_axes="v", scheduler="threads", output=store, output_cubes="residual"
    )
    ds = xr.open_zarr(store, consolidated=False)
    np.testing.assert_array_equal(ds["ra"].values, np.arange(25) * 0.1)
    np.testing.assert_array_equal(ds["v"].values, cube.world[0])
    assert ds["mean"].dims == ("dec", "ra") and ds["residual"].dims == ("v", "dec", "ra")
    again = parfit.parallel_fit(
        cube.model,
        da,
        fitting_axes="v",
        scheduler="synchronous",
        output=store,
        output_cubes="residual",
        resume=True,
    )
    assert again.meta["blocks_fitted"] == 0
    assert_same_maps(fit_da, again)

    w = WCS(naxis=3)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN", "VOPT"]
    w.wcs.cdelt = [-0.001, 0.001, cube.world[0][1] - cube.world[0][0]]
    w.wcs.crval = [10.0, 20.0, cube.world[0][0]]
    w.wcs.cunit = ["deg", "deg", "km/s"]
    w.wcs.crpix = [1, 1, 1]
    parfit.parallel_fit(
        parfit.models.Gaussian1D(2.0, 0.0, 5000.0),
        NDData(cube.data, wcs=w),
        scheduler="threads",
        output=tmp_path / "wcs.zarr",
    )
    header = xr.open_zarr(tmp_path / "wcs.zarr", consolidated=False).attrs[ATTRS_KEY]["wcs_header"]
    assert "RA---TAN" in header and "VOPT" not in header


def test_refusals_after_the_store_check_leave_no_store_behind(cube, tmp_path):
    from astropy.modeling import fitting, models

    diag_path = tmp_path / "diag"
    fit(cube, diagnostics="all", diagnostics_path=diag_path)  # another run's folders
    store = tmp_path / "maps.zarr"
    with pytest.raises(FileExistsError, match="already holds diagnostics of another run"):
        fit(
            cube,
            output=store,
            diagnostics="all",
            diagnostics_path=diag_path,
            scheduler=never_dispatch,
        )
    assert not store.exists()
    with pytest.raises(ValueError, match="output_cubes needs a parfit fitter"):
        parfit.parallel_fit(
            models.Gaussian1D(2, 0, 5),
            cube.data,
            world=cube.world,
            fitter=fitting.TRFLSQFitter(),
            output=store,
            output_cubes="model",
            scheduler=never_dispatch,
        )
    assert not store.exists()
