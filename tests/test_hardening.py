"""Hardening: the cases of an adversarial survey, each with its exact outcome.

Every refusal is raised before anything on disk changes; two runs never
share an output; a hanging model is cut off; a single fit has 0-d maps
everywhere.  This file holds those cases; the config reader, the fitters'
options, masks and units, and the store's lock and verification have their
own files.  Where each case of the survey is tested:

===========================================================  =====================================
survey case                                                  test
===========================================================  =====================================
store deleted, then refused for the diagnostics path         here: refused_diagnostics_path_leaves*
``overwrite="false"`` replaced earlier results               here: overwrite_must_be_a_bool*;
                                                             _store: overwrite_must_be_a_bool
two runs on one ``output`` both accepted                     here: two_runs_on_one_output*;
                                                             _store: two_concurrent_runs*
deleted parameter / status chunk trusted on resume           _store: deleted_chunk_is_refitted*
``parfit inspect`` summarised a damaged store                _store: inspect_reports_damaged
masked arrays ignored                                        _inputs: masked_array_data_leaves*
billion laughs, 5,000 levels, 5,000 components               _config: billion_laughs*, 5000_*
``!!python/object`` silently ignored                         _config: tags_beyond_plain_data*
one spectrum / one image: maps (1,), writers crash           here: one_spectrum_*, a_2d_model_over*
width bound converted as a position under doppler            _inputs: velocity_model_on_frequency*
``fitter="trf"`` options unchecked                           _fitters: scipy_options_refused*
numpy scalar tolerances refused                              _fitters: numpy_scalars_accepted*
astropy NaN start, min > max found after dispatch            _fitters: astropy_nan_start*, *min_above*
unwritable diagnostics directory found after fitting         here: unwritable_diagnostics_path*
``diagnostics_path=""`` meant the current directory          here: empty_diagnostics_path*
the user's ``manifest.csv`` replaced under overwrite         here: a_manifest_the_user_wrote*
resume's input check sampled 9 values                        _store: modified_lazy_cube_refused*
truncated ``zarr.json`` without the array's name             _store: truncated_array_metadata*
unknown ``fit_info`` name accepted                           _fitters: unknown_fit_info_name*
zero uncertainties in NDData silently dropped                _inputs: zero_uncertainty_in_memory*
mK data, K model: amplitude in mK                            _inputs: millikelvin_data_with*
one hanging pixel stalls the run                             here: a_hanging_model_times_out*
a closed Client: distributed's ClosedClientError             here: a_closed_client_is_refused*
===========================================================  =====================================

(``here`` is this file, ``_store`` is ``test_hardening_store.py``, and so on.)
"""

import json
import os
import re
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from _slow_model import HangingGaussian

import parfit
from parfit.analysis import read_result
from parfit.diagnostics import MANIFEST_NAME, read_manifest, summarize
from parfit.errors import InputError, InputTypeError, OutputExistsError, OutputLockedError
from parfit.models import Gaussian1D, Gaussian2D
from parfit.store import lock as _lock

X = np.linspace(-5.0, 5.0, 40)


def cube(ny=3, nx=4, seed=0):
    rng = np.random.default_rng(seed)
    amplitude = rng.uniform(1.0, 3.0, (ny, nx))
    clean = amplitude * np.exp(-0.5 * ((X[:, None, None] - 0.3) / 0.9) ** 2)
    return clean + rng.normal(0.0, 0.02, clean.shape), amplitude


def fit(data=None, **kwargs):
    data = cube()[0] if data is None else data
    kwargs.setdefault("scheduler", "synchronous")
    kwargs.setdefault("world", (X,))
    return parfit.parallel_fit(Gaussian1D(1.0, 0.0, 1.0), data, **kwargs)


def snapshot(folder):
    """Every file under ``folder`` with its size and modification time."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def store(tmp_path):
    """An existing output store of a finished run, and its snapshot."""
    path = tmp_path / "maps.zarr"
    fit(output=path)
    return path, snapshot(path)


# --- check everything, then act ---------------------------------------------


def test_refused_diagnostics_path_leaves_the_earlier_store_untouched(store, tmp_path):
    path, before = store
    not_a_folder = tmp_path / "f.txt"
    not_a_folder.write_text("mine")
    with pytest.raises(
        InputError,
        match=re.escape(f"diagnostics_path {str(not_a_folder)!r} exists and is not a directory"),
    ):
        fit(output=path, overwrite=True, diagnostics="error", diagnostics_path=not_a_folder)
    assert snapshot(path) == before
    assert not_a_folder.read_text() == "mine"


@pytest.mark.parametrize("value", ["false", 1, None, [True]])
def test_overwrite_must_be_a_bool_and_a_string_never_replaces(store, value):
    path, before = store
    with pytest.raises(
        InputTypeError, match=re.escape(f"overwrite must be True or False; got {value!r}")
    ):
        fit(output=path, overwrite=value)
    assert snapshot(path) == before


@pytest.mark.parametrize("name", ["progress", "preserve_native_chunks"])
def test_other_flags_must_be_bools(name):
    with pytest.raises(InputTypeError, match=re.escape(f"{name} must be True or False; got 'no'")):
        fit(**{name: "no"})


def test_numpy_bool_is_a_bool(store):
    path, _ = store
    result = fit(output=path, overwrite=np.bool_(True))
    assert result.success.all()


def test_empty_diagnostics_path_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        InputError,
        match=re.escape(
            "diagnostics_path is empty; give the folder to write the per-fit folders to "
            "(use '.' for the current directory)"
        ),
    ):
        fit(diagnostics="all", diagnostics_path="")
    assert list(tmp_path.iterdir()) == []


def test_diagnostics_path_of_the_wrong_type_is_refused():
    with pytest.raises(
        InputTypeError,
        match=re.escape("diagnostics_path must be a folder path (str or os.PathLike); got int"),
    ):
        fit(diagnostics="all", diagnostics_path=3)


def test_diagnostics_path_below_a_file_is_refused_before_fitting(tmp_path):
    blocker = tmp_path / "f.txt"
    blocker.write_text("x")
    target = blocker / "diag"
    with pytest.raises(
        InputError,
        match=re.escape(
            f"diagnostics_path {str(target)!r} cannot be created: {str(blocker)!r} is not a "
            f"directory"
        ),
    ):
        fit(diagnostics="all", diagnostics_path=target, output=tmp_path / "maps.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]  # no store made


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs a read-only /sys")
def test_unwritable_diagnostics_path_is_refused_before_fitting(tmp_path):
    target = Path("/sys/kernel/parfit-diagnostics")
    with pytest.raises(
        InputError,
        match=re.escape(
            f"diagnostics_path {str(target)!r} cannot be created: '/sys/kernel' is not "
            f"writable; choose a folder you can write to"
        ),
    ):
        fit(diagnostics="all", diagnostics_path=target, output=tmp_path / "maps.zarr")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_manifest_the_user_wrote_is_never_replaced(tmp_path):
    folder = tmp_path / "diag"
    folder.mkdir()
    (folder / MANIFEST_NAME).write_text("name,notes\nmine,keep me\n")
    for overwrite in (False, True):
        with pytest.raises(
            OutputExistsError,
            match=re.escape(
                f"diagnostics_path {str(folder)!r} holds a {MANIFEST_NAME} that parfit did not "
                f"write; parfit never replaces files it did not create"
            ),
        ):
            fit(diagnostics="all", diagnostics_path=folder, overwrite=overwrite)
    assert (folder / MANIFEST_NAME).read_text() == "name,notes\nmine,keep me\n"


def test_overwrite_replaces_only_parfits_folders(tmp_path):
    folder = tmp_path / "diag"
    fit(diagnostics="all", diagnostics_path=folder)
    (folder / "notes.txt").write_text("mine")
    (folder / "plots").mkdir()
    result = fit(diagnostics="error", diagnostics_path=folder, overwrite=True)
    assert result.success.all()
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST_NAME, "notes.txt", "plots"]
    assert read_manifest(folder) == []


def test_an_earlier_run_is_refused_without_overwrite_and_left_as_it_was(tmp_path):
    folder = tmp_path / "diag"
    fit(diagnostics="all", diagnostics_path=folder)
    before = snapshot(folder)
    with pytest.raises(OutputExistsError, match="already holds diagnostics of another run"):
        fit(diagnostics="all", diagnostics_path=folder)
    assert snapshot(folder) == before


# --- one writer per folder ----------------------------------------------------


def test_a_locked_diagnostics_folder_is_refused_naming_the_holder(tmp_path):
    folder = tmp_path / "diag"
    folder.mkdir()
    with _lock.acquire(folder, run_id="other-run", what="diagnostics_path"):
        with pytest.raises(OutputLockedError) as info:
            fit(diagnostics="all", diagnostics_path=folder)
        message = str(info.value)
        assert f"diagnostics_path {str(folder)!r} is in use by another parfit run" in message
        assert f"run other-run, pid {os.getpid()} on host {socket.gethostname()}" in message
        assert sorted(p.name for p in folder.iterdir()) == [_lock.LOCK_NAME]
    assert _lock.holder(folder) is None


def test_a_stale_diagnostics_lock_is_taken_over_with_a_warning(tmp_path):
    folder = tmp_path / "diag"
    folder.mkdir()
    dead = dict(
        host=socket.gethostname(),
        pid=2**22 + 12345,
        run_id="dead-run",
        created="2026-01-01T00:00:00",
        what="diagnostics_path",
    )
    (folder / _lock.LOCK_NAME).write_text(json.dumps(dead))
    with pytest.warns(parfit.errors.StaleLockWarning, match="dead-run"):
        result = fit(diagnostics="all", diagnostics_path=folder)
    assert result.success.all()
    assert _lock.holder(folder) is None  # released at the end of the run
    assert len(read_manifest(folder)) == 12


def test_the_diagnostics_lock_is_released_when_the_run_fails(tmp_path, monkeypatch):
    folder = tmp_path / "diag"

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(parfit.fit, "_write_manifest", broken)
    with pytest.raises(RuntimeError, match="boom"):
        fit(diagnostics="all", diagnostics_path=folder)
    assert _lock.holder(folder) is None


def test_folders_are_not_written_once_the_lock_names_another_run(tmp_path):
    from parfit.diagnostics import folders

    folder = tmp_path / "diag"
    folder.mkdir()
    with _lock.acquire(folder, run_id="new-owner"):
        with pytest.raises(OutputLockedError, match="no longer locked by run old-run"):
            folders.write_fit_folder(folder, "0_0", "old-run", message="x")
    assert not (folder / "0_0").exists()


# --- a single spectrum, a single image ---------------------------------------


@pytest.fixture(scope="module")
def single():
    spectrum = 3.0 * np.exp(-0.5 * ((X - 0.2) / 0.8) ** 2)
    return spectrum


def test_one_spectrum_gives_0d_maps_everywhere(single):
    result = fit(single)
    for name in ("amplitude", "mean", "stddev"):
        assert result.parameters[name].shape == ()
        assert result.errors[name].shape == ()
    for array in (result.statistic, result.status, result.nfev, result.flags):
        assert array.shape == ()
    assert result.status == parfit.Status.OK
    np.testing.assert_allclose(
        [result.parameters[n] for n in ("amplitude", "mean", "stddev")], [3.0, 0.2, 0.8], rtol=1e-9
    )
    assert result.model.amplitude.value == pytest.approx(3.0)


def test_one_spectrum_writes_xarray_fits_and_a_store(single, tmp_path):
    from astropy.io import fits

    result = fit(single, output=tmp_path / "maps.zarr")
    assert result.parameters["mean"].shape == ()
    ds = result.to_xarray()
    assert ds["amplitude"].dims == () and float(ds["amplitude"]) == pytest.approx(3.0)
    result.to_fits(tmp_path / "maps.fits")
    with fits.open(tmp_path / "maps.fits") as hdul:
        assert hdul["AMPLITUDE"].data.shape == (1,)
        assert hdul["AMPLITUDE"].header["PFSINGLE"] is True
        assert hdul["STATUS"].data[0] == parfit.Status.OK
    again = read_result(tmp_path / "maps.zarr")
    assert again.parameters["amplitude"].shape == ()
    assert float(again.parameters["amplitude"]) == pytest.approx(3.0)
    text = str(summarize(tmp_path / "maps.zarr"))
    assert "1 fits, map shape ()" in text and "complete: yes" in text


def test_one_spectrum_diagnostics_folder_is_named_fit(single, tmp_path):
    folder = tmp_path / "diag"
    fit(single, diagnostics="all", diagnostics_path=folder)
    assert sorted(p.name for p in folder.iterdir()) == ["fit", MANIFEST_NAME]
    rows = read_manifest(folder)
    assert [(r["folder"], r["indices"], r["status_name"]) for r in rows] == [("fit", "", "OK")]


def test_a_2d_model_over_one_image_gives_0d_maps():
    yy, xx = np.mgrid[0:20, 0:25].astype(float)
    image = 5.0 * np.exp(-0.5 * (((xx - 12.0) / 3.0) ** 2 + ((yy - 9.0) / 2.0) ** 2))
    result = parfit.parallel_fit(
        Gaussian2D(4.0, 11.0, 10.0, 2.5, 2.5),
        image,
        world=(xx, yy),
        fitting_axes=(1, 0),
        scheduler="synchronous",
    )
    assert result.status.shape == () and result.status == parfit.Status.OK
    assert result.parameters["x_mean"].shape == ()
    assert float(result.parameters["x_mean"]) == pytest.approx(12.0)
    assert float(result.parameters["y_mean"]) == pytest.approx(9.0)
    assert result.to_xarray()["x_mean"].dims == ()


# --- a hanging model ----------------------------------------------------------


_WARM = []


def hanging_fit(scheduler, fit_timeout=1.0, **kwargs):
    """Blocks of 6 fits, one of which hangs.

    ``fit_timeout`` must cover a block with room to spare, and a fresh
    worker's first block loads the compiled solver (seconds on a busy
    machine): this process is warmed up once, and fresh workers get more
    time.
    """
    data, _ = cube(ny=4, nx=6, seed=3)
    if not _WARM:
        parfit.parallel_fit(
            HangingGaussian(2.0, 0.0, 1.0), data, world=(X,), chunk_n_max=6, scheduler="synchronous"
        )
        _WARM.append(True)
    amplitude = np.full((4, 6), 2.0)
    amplitude[1, 4] = 13.0  # the block holding this fit hangs
    return parfit.parallel_fit(
        HangingGaussian(amplitude, 0.0, 1.0),
        data,
        world=(X,),
        chunk_n_max=6,
        scheduler=scheduler,
        fit_timeout=fit_timeout,
        **kwargs,
    )


def expected_timeout_status():
    status = np.full((4, 6), parfit.Status.OK)
    status[1] = parfit.Status.TIMEOUT
    return status


@pytest.mark.parametrize(
    "scheduler", ["synchronous", "threads", pytest.param("processes", marks=pytest.mark.slow)]
)
def test_a_hanging_model_times_out_and_the_run_goes_on(scheduler):
    result = hanging_fit(scheduler, fit_timeout=1.0 if scheduler != "processes" else 10.0)
    np.testing.assert_array_equal(result.status, expected_timeout_status())
    assert np.isnan(result.parameters["amplitude"][1]).all()
    assert np.isfinite(result.parameters["amplitude"][[0, 2, 3]]).all()
    assert "TIMEOUT" in result.summary()


@pytest.mark.slow
def test_a_hanging_model_times_out_on_a_distributed_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        result = hanging_fit(client, fit_timeout=10.0, output=tmp_path / "maps.zarr")
    np.testing.assert_array_equal(result.status, expected_timeout_status())


def test_a_timed_out_block_is_explained_in_its_diagnostics(tmp_path):
    folder = tmp_path / "diag"
    hanging_fit("threads", diagnostics="error", diagnostics_path=folder)
    rows = read_manifest(folder)
    assert sorted(r["folder"] for r in rows) == [f"1_{j}" for j in range(6)]
    assert {r["status_name"] for r in rows} == {"TIMEOUT"}
    text = (folder / "1_4" / "error.log").read_text()
    assert "took longer than fit_timeout=1 s and was abandoned" in text


def test_an_abandoned_thread_is_stopped():
    hanging_fit("synchronous")
    for _ in range(100):
        if not any(t.name == "parfit-timed-block" for t in threading.enumerate()):
            break
        threading.Event().wait(0.05)
    assert not any(t.name == "parfit-timed-block" for t in threading.enumerate())


def test_a_model_that_hangs_at_the_shared_start_is_refused_before_dispatch():
    data, _ = cube()
    with pytest.raises(
        InputError,
        match=re.escape(
            "model.evaluate did not return within fit_timeout=0.5 s at the starting values, "
            "so every fit would hang; check the model"
        ),
    ):
        parfit.parallel_fit(
            HangingGaussian(13.0, 0.0, 1.0),
            data,
            world=(X,),
            scheduler="synchronous",
            fit_timeout=0.5,
        )


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "5", True])
def test_fit_timeout_must_be_a_positive_number(value):
    with pytest.raises(
        InputError,
        match=re.escape(f"fit_timeout must be None or a positive number of seconds; got {value!r}"),
    ):
        fit(fit_timeout=value)


def test_fit_timeout_accepts_numpy_numbers():
    assert fit(fit_timeout=np.float32(30.0)).success.all()
    assert fit(fit_timeout=np.int64(30)).success.all()


# --- schedulers ----------------------------------------------------------------


def test_a_closed_client_is_refused_before_dispatch():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    )
    client = distributed.Client(cluster)
    client.close()
    cluster.close()
    with pytest.raises(
        InputError,
        match=re.escape("is closed; pass a running Client, or scheduler=None for dask's default"),
    ):
        fit(scheduler=client)


# --- two runs on one output -------------------------------------------------------


def test_two_runs_on_one_output_cannot_both_proceed(tmp_path):
    from _slow_model import SlowGaussian

    from parfit.store import lock_file

    store = tmp_path / "maps.zarr"
    first_cube, amplitude = cube(ny=4, nx=6, seed=5)
    outcome = {}

    def first():
        outcome["first"] = parfit.parallel_fit(
            SlowGaussian(2.0, 0.0, 1.0),
            first_cube,
            world=(X,),
            output=store,
            chunk_n_max=6,
            scheduler="synchronous",
        )

    thread = threading.Thread(target=first)
    thread.start()
    try:
        for _ in range(400):  # wait until the first run holds the store
            if Path(lock_file(store)).exists() and (store / "zarr.json").exists():
                break
            threading.Event().wait(0.01)
        with pytest.raises(
            OutputLockedError,
            match=re.escape(f"output {str(store)!r} is in use by another parfit run (run "),
        ):
            fit(cube(ny=4, nx=6, seed=6)[0], output=store, overwrite=True)
        with pytest.raises(OutputLockedError):
            fit(first_cube, output=store, resume=True)
    finally:
        thread.join()
    result = outcome["first"]
    assert result.success.all()
    np.testing.assert_allclose(result.parameters["amplitude"], amplitude, rtol=0.05)
    again = read_result(store)
    np.testing.assert_array_equal(again.parameters["amplitude"], result.parameters["amplitude"])
    assert not Path(lock_file(store)).exists()


# --- every refusal leaves an existing store and diagnostics folder as they were -------


REFUSALS = {
    "chunk_n_max": dict(chunk_n_max=0),
    "overwrite string": dict(overwrite="true"),
    "scheduler": dict(scheduler="nonsense"),
    "fitter option": dict(fitter="trf", fitter_kwargs=dict(ftol=-1.0)),
    "fitter kwargs": dict(fitter_kwargs=dict(nonsense=1)),
    "fit_info": dict(fitter="trf", fit_info=["nonsense"]),
    "fit_timeout": dict(fit_timeout=-1),
    "initial": dict(initial="median"),
    "fitting axis": dict(fitting_axes=5),
    "weights shape": dict(weights=np.ones((2, 2))),
    "mask dtype": dict(mask=np.full((40, 3, 4), "x")),
    "world length": dict(world=(np.arange(7.0),)),
    "output_cubes": dict(output_cubes=["nonsense"]),
    "diagnostics mode": dict(diagnostics="everything"),
    "diagnostics path is a file": dict(diagnostics_path="FILE"),
    "resume with other data": dict(resume=True, data="OTHER"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refusal_changes_nothing_on_disk(case, tmp_path):
    store, folder, blocker = tmp_path / "maps.zarr", tmp_path / "diag", tmp_path / "f.txt"
    blocker.write_text("mine")
    fit(output=store, diagnostics="all", diagnostics_path=folder)
    before = snapshot(tmp_path)
    kwargs = dict(output=store, overwrite=True, diagnostics="all", diagnostics_path=folder)
    kwargs.update(REFUSALS[case])
    if kwargs["diagnostics_path"] == "FILE":
        kwargs["diagnostics_path"] = blocker
    data = cube(seed=1)[0] if kwargs.pop("data", None) == "OTHER" else None
    with pytest.raises((InputError, InputTypeError, OutputExistsError)):
        fit(data, **kwargs)
    assert snapshot(tmp_path) == before


def test_timed_out_blocks_are_not_recorded_and_a_resume_fits_them(tmp_path):
    store = tmp_path / "maps.zarr"
    result = hanging_fit("threads", output=store)
    np.testing.assert_array_equal(result.status, expected_timeout_status())
    np.testing.assert_array_equal(parfit.store.read_done(store), [[1], [0], [1], [1]])
    text = str(summarize(store))
    assert "complete: NO (3 of 4 blocks done; resume with resume=True" in text
    # The same run, resumed, tries the timed-out block again (and here times out again).
    again = hanging_fit("threads", output=store, resume=True)
    assert again.meta["blocks_fitted"] == 1 and again.meta["blocks_resumed"] == 3
    np.testing.assert_array_equal(again.status, expected_timeout_status())


@pytest.mark.parametrize("inside", ["", "diag"])
def test_diagnostics_inside_the_output_store_is_refused(tmp_path, inside):
    store = tmp_path / "maps.zarr"
    folder = store / inside if inside else store
    with pytest.raises(
        InputError,
        match=re.escape(
            f"diagnostics_path {str(folder)!r} is inside the output store {str(store)!r}"
        ),
    ):
        fit(output=store, diagnostics="all", diagnostics_path=folder)
    assert list(tmp_path.iterdir()) == []


def test_inputs_are_never_modified_even_when_a_block_times_out():
    data, _ = cube(ny=4, nx=6, seed=3)
    data.setflags(write=False)
    weights = np.ones_like(data)
    weights.setflags(write=False)
    amplitude = np.full((4, 6), 2.0)
    amplitude[1, 4] = 13.0
    amplitude.setflags(write=False)
    copies = data.copy(), weights.copy(), amplitude.copy()
    hanging_fit("threads")  # warm
    result = parfit.parallel_fit(
        HangingGaussian(amplitude, 0.0, 1.0),
        data,
        world=(X,),
        weights=weights,
        chunk_n_max=6,
        scheduler="threads",
        fit_timeout=1.0,
    )
    np.testing.assert_array_equal(result.status, expected_timeout_status())
    for before, after in zip(copies, (data, weights, amplitude)):
        np.testing.assert_array_equal(before, after)


# --- the config's side of it ------------------------------------------------------


CONFIG = """\
input:
  path: cube.fits
  fitting_axes: spectral
  uncertainty: {path: sigma.fits}
model:
  components:
    - type: Gaussian1D
      amplitude: 2.0
      mean: "0 km/s"
      stddev: "5 km/s"
  initial: guess
run:
  scheduler: synchronous
  progress: false
  fit_timeout: 120
output:
  path: results
"""


@pytest.fixture
def config_folder(tmp_path):
    from astropy.io import fits

    from parfit.datasets import gaussian_cube

    data = gaussian_cube((30, 3, 4), seed=4)
    data.to_fits(tmp_path / "cube.fits")
    sigma = np.full(data.data.shape, 0.05)
    sigma[10, 1, 2] = 0.0  # a sample claimed to be exact
    fits.writeto(tmp_path / "sigma.fits", sigma)
    (tmp_path / "fit.yaml").write_text(CONFIG)
    return tmp_path


def test_config_fit_timeout_reaches_parallel_fit(config_folder, monkeypatch):
    from parfit import analysis
    from parfit.config import config_hash, load_config

    seen = {}
    real = parfit.parallel_fit

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(parfit, "parallel_fit", spy)
    cfg = load_config(config_folder / "fit.yaml")
    assert cfg.run.fit_timeout == 120.0
    analysis.Analysis(cfg).run()
    assert seen["fit_timeout"] == 120.0
    # How long a block may take does not change the analysis (a resume may allow more).
    other = load_config(config_folder / "fit.yaml")
    other.run.fit_timeout = 600.0
    assert config_hash(other) == config_hash(cfg)


@pytest.mark.parametrize("value", ["-1", "0", ".inf", "soon"])
def test_config_fit_timeout_must_be_a_positive_number(value):
    from parfit.config import parse_config
    from parfit.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape("run.fit_timeout")):
        parse_config(CONFIG.replace("fit_timeout: 120", f"fit_timeout: {value}"), check_files=False)


def test_config_zero_uncertainty_is_left_out_with_a_warning(config_folder):
    from parfit.analysis import Analysis
    from parfit.config import load_config

    cfg = load_config(config_folder / "fit.yaml")
    cfg.diagnostics.mode = "error+warn"
    run = Analysis(cfg)
    result = run.run()
    assert (result.status == parfit.Status.OK).all()
    manifest = read_manifest(run.diagnostics_path)
    assert [(r["folder"], r["n_warnings"]) for r in manifest] == [("1_2", "1")]
    text = (Path(run.diagnostics_path) / "1_2" / "warn.log").read_text()
    assert "1 sample(s) with an infinite weight (zero uncertainty) left out" in text


# --- model YAML (as read back from a store) is bounded too -------------------------


def test_model_yaml_refuses_aliases_so_no_billion_laughs():
    from parfit.errors import ModelError
    from parfit.models import from_yaml

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 9) + "]" for k in range(1, 9)]
    with pytest.raises(
        ModelError,
        match=re.escape("model YAML may not use aliases (*a0 at line 2); write the values out"),
    ):
        from_yaml("\n".join(lines) + "\n")


def test_model_yaml_refuses_deep_nesting_without_a_recursion_error():
    from parfit.errors import ModelError
    from parfit.models import from_yaml

    with pytest.raises(ModelError, match=re.escape("model YAML nests deeper than 300 levels")):
        from_yaml("a:\n" + "".join("  " * k + " b:\n" for k in range(1, 5000)))
    with pytest.raises(ModelError, match=re.escape("model YAML nests deeper than 300 levels")):
        from_yaml("[" * 5000 + "]" * 5000)


# --- one definition of "failed" ------------------------------------------------------


def test_one_definition_of_failed_and_not_attempted():
    from parfit.status import NOT_ATTEMPTED, is_failure

    codes = np.array(list(parfit.Status))
    np.testing.assert_array_equal(is_failure(codes), [s.is_failed() for s in parfit.Status])
    assert [s.name for s in parfit.Status if not s.is_failed()] == [
        "NOT_RUN",
        "OK",
        "NO_VALID_DATA",
        "SKIPPED",
    ]
    assert set(NOT_ATTEMPTED) == {
        parfit.Status.NOT_RUN,
        parfit.Status.NO_VALID_DATA,
        parfit.Status.SKIPPED,
    }


def test_read_result_is_public_at_top_level(tmp_path):
    store = tmp_path / "maps.zarr"
    fitted = fit(output=store)
    again = parfit.read_result(store)
    np.testing.assert_array_equal(again.parameters["mean"], fitted.parameters["mean"])
    assert "read_result" in parfit.__all__
