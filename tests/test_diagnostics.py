"""Per-fit diagnostics folders, as astropy writes them, made safe."""

import csv

import numpy as np
import pytest
from astropy.modeling import fitting, models
from astropy.modeling.fitting import parallel_fit_dask
from test_robustness import Exploding, spectra

import parfit
from parfit import Status
from parfit.diagnostics import folder_name
from parfit.errors import OutputExistsError


def run(tmp_path, mode, tag=None, scheduler="synchronous", **kwargs):
    cube, x, _ = spectra(ny=4, nx=12)
    if tag is None:
        tag = np.arange(48.0).reshape(4, 12)
    model = Exploding(amplitude=2.0, mean=0.0, stddev=1.0, tag=tag)
    return parfit.parallel_fit(
        model,
        cube,
        world=(x,),
        fitter=fitting.TRFLSQFitter(),
        scheduler=scheduler,
        diagnostics=mode,
        diagnostics_path=tmp_path / "diag",
        **kwargs,
    )


def folders(path):
    return sorted(p.name for p in path.iterdir() if p.is_dir())


def test_folder_names_follow_astropy():
    assert folder_name((3, 7), (64, 64)) == "03_07"
    assert folder_name((3, 17), (4, 120)) == "003_017"
    assert folder_name((0,), (1,)) == "0"


def test_error_mode_writes_only_failed_fits(tmp_path):
    tag = np.arange(48.0).reshape(4, 12)
    tag[1, 10] = -1
    res = run(tmp_path, "error", tag=tag)
    diag = tmp_path / "diag"
    assert folders(diag) == ["01_10"]
    log = (diag / "01_10" / "error.log").read_text()
    assert "Traceback" in log and "ValueError: bad pixel" in log
    assert not (diag / "01_10" / "warn.log").exists()
    assert res.status[1, 10] == Status.FIT_ERROR
    rows = list(csv.DictReader(open(diag / "manifest.csv")))
    assert [(r["folder"], r["status_name"]) for r in rows] == [("01_10", "FIT_ERROR")]
    assert rows[0]["run_id"] == res.meta["run_id"]


def test_same_folders_as_astropy(tmp_path):
    tag = np.arange(48.0).reshape(4, 12)
    tag[0, 3] = tag[3, 11] = -1
    cube, x, _ = spectra(ny=4, nx=12)
    model = Exploding(amplitude=2.0, mean=0.0, stddev=1.0, tag=tag)
    parallel_fit_dask(
        model=model,
        data=cube,
        world=(x,),
        fitter=fitting.TRFLSQFitter(),
        fitting_axes=0,
        diagnostics="error",
        diagnostics_path=tmp_path / "astropy",
        scheduler="synchronous",
    )
    run(tmp_path, "error", tag=tag)
    assert folders(tmp_path / "diag") == folders(tmp_path / "astropy") == ["00_03", "03_11"]


def test_warnings_attributed_to_the_right_fit_under_threads(tmp_path):
    res = run(tmp_path, "error+warn", scheduler="threads", chunk_n_max=2)
    diag = tmp_path / "diag"
    assert len(folders(diag)) == 48
    for j in range(4):
        for i in range(12):
            text = (diag / f"{j:02d}_{i:02d}" / "warn.log").read_text()
            tags = {line.split("tag=")[1] for line in text.splitlines()}
            assert tags == {str(j * 12 + i)}, (j, i, text)
    assert res.success.all()


def test_warning_state_is_restored_after_a_threaded_run(tmp_path):
    import warnings

    filters = list(warnings.filters)
    show = warnings.showwarning
    run(tmp_path, None, scheduler="threads", chunk_n_max=2)
    assert warnings.filters == filters
    assert warnings.showwarning is show


def test_all_mode_and_callable(tmp_path):
    calls = []

    def callable_(path, world, data, weights, model, fitter_kwargs):
        calls.append(path.name)
        assert world[0].shape == data.shape == (41,)
        assert weights is None
        (path / "amplitude.txt").write_text(f"{model.amplitude.value:.6f}")

    res = run(tmp_path, "all", diagnostics_callable=callable_)
    diag = tmp_path / "diag"
    assert len(folders(diag)) == 48 == len(calls)
    value = float((diag / "02_05" / "amplitude.txt").read_text())
    assert value == pytest.approx(res.parameters["amplitude"][2, 5], abs=1e-6)


def test_callable_exception_is_logged_and_does_not_stop_the_run(tmp_path):
    def broken(path, *args):
        raise RuntimeError("plotting failed")

    res = run(tmp_path, "all", diagnostics_callable=broken)
    assert res.success.all()
    log = (tmp_path / "diag" / "00_00" / "callable_error.log").read_text()
    assert "RuntimeError: plotting failed" in log


def test_callable_gets_none_model_for_failed_fit(tmp_path):
    seen = {}

    def callable_(path, world, data, weights, model, fitter_kwargs):
        seen[path.name] = model

    tag = np.arange(48.0).reshape(4, 12)
    tag[2, 2] = -1
    run(tmp_path, "error", tag=tag, diagnostics_callable=callable_)
    assert seen == {"02_02": None}


def test_existing_run_is_refused_then_overwritten(tmp_path):
    tag = np.arange(48.0).reshape(4, 12)
    tag[1, 1] = -1
    run(tmp_path, "error", tag=tag)
    (tmp_path / "diag" / "notes").mkdir()  # the user's own folder
    with pytest.raises(OutputExistsError, match="already holds diagnostics of another run"):
        run(tmp_path, "error", tag=tag)
    tag[1, 1] = 5
    tag[3, 3] = -1
    run(tmp_path, "error", tag=tag, overwrite=True)
    # The stale folder is gone, the user's folder is kept.
    assert folders(tmp_path / "diag") == ["03_03", "notes"]


def test_folders_of_a_crashed_run_without_manifest_are_refused(tmp_path):
    stale = tmp_path / "diag" / "00_01"
    stale.mkdir(parents=True)
    (stale / ".parfit").write_text("an-interrupted-run\n")
    with pytest.raises(OutputExistsError, match="parfit folders"):
        run(tmp_path, "error")


def test_diagnostics_require_a_path():
    with pytest.raises(ValueError, match="diagnostics='all' needs diagnostics_path"):
        parfit.parallel_fit(models.Gaussian1D(), np.zeros((5, 2)), diagnostics="all")


def test_unknown_diagnostics_mode():
    with pytest.raises(
        ValueError,
        match=r"diagnostics must be None, 'error', 'error\+warn' or "
        r"'all'; got 'warn'",
    ):
        parfit.parallel_fit(
            models.Gaussian1D(), np.zeros((5, 2)), diagnostics="warn", diagnostics_path="x"
        )
