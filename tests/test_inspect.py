"""Summaries and quick-look plots of what a run left on disk (parfit.diagnostics)."""

import csv
import doctest
import json
import shutil
import warnings

import numpy as np
import pytest
import zarr
from astropy import units as u
from astropy.modeling import Fittable1DModel, Parameter, fitting
from astropy.nddata import NDData
from astropy.wcs import WCS

import parfit
import parfit.diagnostics.plots
import parfit.diagnostics.summary
from parfit import Status, read_result
from parfit.datasets import gaussian_cube
from parfit.diagnostics import PERCENTILES, plot_fit, plot_maps, plot_overview, summarize
from parfit.errors import InputError
from parfit.models import Gaussian1D

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Flaky(Fittable1DModel):
    """A Gaussian whose fixed ``tag`` decides what a fit does.

    tag -1 raises ``ValueError("model blew up")``, -2 raises
    ``RuntimeError("singular matrix")``; tag 1 warns "low signal", tag 2
    warns "low signal" and "odd width".
    """

    amplitude = Parameter(default=1.0)
    mean = Parameter(default=0.0)
    stddev = Parameter(default=1.0)
    tag = Parameter(default=0.0, fixed=True)

    def evaluate(self, x, amplitude, mean, stddev, tag):
        t = float(np.ravel(tag)[0])
        if t == -1:
            raise ValueError("model blew up")
        if t == -2:
            raise RuntimeError("singular matrix")
        if t >= 1:
            warnings.warn("low signal", UserWarning)
        if t == 2:
            warnings.warn("odd width", UserWarning)
        return amplitude * np.exp(-0.5 * ((x - mean) / stddev) ** 2)


BLOWN_UP = [(1, 2), (3, 5), (4, 0), (5, 1)]  # ValueError
SINGULAR = [(0, 6)]  # RuntimeError
LOW_SIGNAL = [(0, 0), (2, 3), (2, 4)]  # one warning
ODD_WIDTH = [(3, 3)]  # two warnings
BLANK = (5, 7)  # all-NaN spectrum: NO_VALID_DATA


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One diagnostics run streamed to a store: (folder, result)."""
    tmp = tmp_path_factory.mktemp("run")
    cube = gaussian_cube((30, 6, 8), seed=3)
    data = cube.data.copy()
    data[:, BLANK[0], BLANK[1]] = np.nan
    tag = np.zeros((6, 8))
    for pixels, value in ((BLOWN_UP, -1), (SINGULAR, -2), (LOW_SIGNAL, 1), (ODD_WIDTH, 2)):
        for p in pixels:
            tag[p] = value
    model = Flaky(amplitude=2.0, mean=0.0, stddev=5.0, tag=tag)
    result = parfit.parallel_fit(
        model,
        data,
        world=cube.world,
        fitter=fitting.TRFLSQFitter(),
        scheduler="synchronous",
        diagnostics="error+warn",
        diagnostics_path=tmp / "diag",
        output=tmp / "maps.zarr",
        chunk_n_max=12,
    )
    return tmp, result


@pytest.fixture(scope="module")
def wcs_run(tmp_path_factory):
    """A parfit-model run on a cube with a celestial WCS and units."""
    tmp = tmp_path_factory.mktemp("wcs")
    cube = gaussian_cube((30, 6, 8), seed=1)
    w = WCS(naxis=3)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN", "VRAD"]
    w.wcs.cunit = ["deg", "deg", "km/s"]
    v = cube.world[0]
    w.wcs.crval = [10.0, 20.0, v[0]]
    w.wcs.cdelt = [-0.001, 0.001, v[1] - v[0]]
    w.wcs.crpix = [1, 1, 1]
    model = Gaussian1D(2.0 * u.K, 0.0 * u.km / u.s, 5.0 * u.km / u.s)
    result = parfit.parallel_fit(
        model, NDData(cube.data, wcs=w, unit="K"), scheduler="synchronous", output=tmp / "maps.zarr"
    )
    return tmp, result


def copy_run(run, tmp_path):
    shutil.copytree(run[0] / "maps.zarr", tmp_path / "maps.zarr")
    shutil.copytree(run[0] / "diag", tmp_path / "diag")
    return tmp_path


def folder(pixel):
    return "_".join(str(i) for i in pixel)  # maps (6, 8): one digit


def by_message(groups):
    return {g.message: g for g in groups}


# --- the streamed store --------------------------------------------------------------


def test_store_counts_and_completeness(run):
    tmp, result = run
    s = summarize(tmp / "maps.zarr")
    codes, counts = np.unique(result.status, return_counts=True)
    assert s.status_counts == {Status(int(c)).name: int(n) for c, n in zip(codes, counts)}
    assert s.status_counts == {"OK": 42, "FIT_ERROR": 5, "NO_VALID_DATA": 1}
    assert (s.kind, s.layout, s.n_fits, s.shape) == ("output", "streamed", 48, (6, 8))
    assert (s.complete, s.blocks_done, s.blocks_total) == (True, 6, 6)
    assert (s.n_failed, s.n_not_attempted) == (5, 1)
    assert s.n_with_warnings == len(LOW_SIGNAL) + len(ODD_WIDTH)
    assert s.provenance["run_id"] == result.meta["run_id"]
    assert s.warnings == []  # warning texts live in the diagnostics folder only


def test_store_without_diagnostics_groups_by_status(run):
    s = summarize(run[0] / "maps.zarr", examples=2)
    assert [(g.message, g.count, g.kind, g.examples) for g in s.errors] == [
        ("FIT_ERROR: the model or fitter raised an exception", 5, "error", [(0, 6), (1, 2)]),
        (
            "NO_VALID_DATA: no valid samples (all NaN, inf, masked or zero weight)",
            1,
            "not attempted",
            [BLANK],
        ),
    ]
    text = s.text()
    assert "FIT_ERROR: the model or fitter raised an exception" in text
    assert "e.g. (0, 6), (1, 2)" in text
    assert "complete: yes (6 of 6 blocks done)" in text


def test_store_with_diagnostics_has_the_exception_lines(run):
    tmp, _ = run
    s = summarize(tmp / "maps.zarr", diagnostics=tmp / "diag")
    assert [(g.message, g.count, g.kind) for g in s.errors] == [
        ("ValueError: model blew up", 4, "error"),
        ("RuntimeError: singular matrix", 1, "error"),
        (
            "NO_VALID_DATA: no valid samples (all NaN, inf, masked or zero weight)",
            1,
            "not attempted",
        ),
    ]
    blown = s.errors[0]
    assert blown.examples == blown.pixels == sorted(BLOWN_UP)[:3]
    assert blown.folders == [folder(p) for p in sorted(BLOWN_UP)[:3]]
    assert blown.statuses == ["FIT_ERROR"]
    assert s.errors[1].examples == SINGULAR
    warns = by_message(s.warnings)
    (low,) = [g for m, g in warns.items() if m.endswith("UserWarning: low signal")]
    (odd,) = [g for m, g in warns.items() if m.endswith("UserWarning: odd width")]
    assert low.count == len(LOW_SIGNAL) + len(ODD_WIDTH)
    assert low.examples == sorted(LOW_SIGNAL + ODD_WIDTH)[:3]
    assert low.occurrences > low.count  # astropy evaluates the model many times
    assert (odd.count, odd.examples) == (1, ODD_WIDTH)
    assert [g.count for g in s.warnings] == [4, 1]
    assert s.diagnostics_path == str(tmp / "diag")
    text = str(s)
    assert "ValueError: model blew up" in text and "e.g. (1, 2), (3, 5), (4, 0)" in text


def test_failed_pixel_without_folder_keeps_the_status_message(run, tmp_path):
    tmp = copy_run(run, tmp_path)
    manifest = tmp / "diag" / "manifest.csv"
    rows = list(csv.DictReader(open(manifest)))
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["folder"] != "4_0")
    s = summarize(tmp / "maps.zarr", diagnostics=tmp / "diag")
    groups = by_message(s.errors)
    assert groups["ValueError: model blew up"].count == 3
    assert groups["ValueError: model blew up"].examples == [(1, 2), (3, 5), (5, 1)]
    status_only = groups["FIT_ERROR: the model or fitter raised an exception"]
    assert (status_only.count, status_only.examples) == (1, [(4, 0)])


def test_percentiles_and_median_statistic(run):
    tmp, result = run
    s = summarize(tmp / "maps.zarr")
    ok = result.success
    assert list(s.percentiles) == list(result.param_names)
    for name in result.param_names:
        expected = np.percentile(result.parameters[name][ok], PERCENTILES)
        got = [s.percentiles[name][f"p{q}"] for q in PERCENTILES]
        np.testing.assert_allclose(got, expected, rtol=0, atol=0)
    assert s.median_statistic == pytest.approx(np.median(result.statistic[ok]), rel=1e-15)
    assert s.units == {name: None for name in result.param_names}  # astropy model


def test_incomplete_store_is_detected(run, tmp_path):
    tmp = copy_run(run, tmp_path)
    done = zarr.open_array(str(tmp / "maps.zarr" / "_parfit_done"), mode="r+")
    done[2, 0] = 0
    s = summarize(tmp / "maps.zarr")
    assert (s.complete, s.blocks_done, s.blocks_total) == (False, 5, 6)
    text = s.text()
    assert "complete: NO (5 of 6 blocks done" in text
    assert "resume=True" in text and "output.resume: true" in text


def test_not_run_pixels_are_not_failures(tmp_path):
    from parfit import output

    output.prepare_output(
        tmp_path / "m.zarr",
        overwrite=False,
        resume=False,
        iterating_shape=(2, 3),
        chunks=(1, 3),
        dims=("y", "x"),
        param_names=["a"],
        provenance={"run_id": "r", "param_names": ["a"]},
    )
    packed = np.full((1, 3, 8), np.nan)
    packed[..., 0] = [1.0, 2.0, 3.0]
    packed[..., 2] = 0.5  # statistic
    packed[..., 3] = [Status.OK, Status.OK, Status.NOT_CONVERGED]
    packed[..., 4:] = 0  # nfev, n_warnings, reported, flags
    output.write_block(tmp_path / "m.zarr", ["a"], packed, (0, 0), (0, 0))
    assert summarize(tmp_path / "m.zarr").units == {"a": None}
    zarr.open_array(str(tmp_path / "m.zarr" / "a"), mode="r+").attrs["units"] = "K"
    s = summarize(tmp_path / "m.zarr")
    assert s.units == {"a": "K"}  # the arrays' units attribute
    assert s.status_counts == {"NOT_RUN": 3, "OK": 2, "NOT_CONVERGED": 1}
    assert (s.complete, s.blocks_done, s.n_failed, s.n_not_attempted) == (False, 1, 1, 3)
    assert [(g.message.split(":")[0], g.kind, g.examples) for g in s.errors] == [
        ("NOT_CONVERGED", "error", [(0, 2)]),
        ("NOT_RUN", "not attempted", [(1, 0), (1, 1), (1, 2)]),
    ]
    assert s.percentiles == {
        "a": {f"p{q}": v for q, v in zip(PERCENTILES, np.percentile([1.0, 2.0], PERCENTILES))}
    }
    assert s.dims == ("y", "x")


# --- the FitResult.to_zarr layout and units ---------------------------------------------


def test_to_zarr_writes_the_streamed_layout(run, tmp_path):
    _, result = run
    result.to_zarr(tmp_path / "r.zarr")
    s = summarize(tmp_path / "r.zarr")
    assert (s.layout, s.complete, s.blocks_total, s.blocks_done) == ("streamed", True, 1, 1)
    assert s.status_counts == {"OK": 42, "FIT_ERROR": 5, "NO_VALID_DATA": 1}
    assert sorted(s.percentiles) == sorted(result.param_names)
    for name in result.param_names:
        np.testing.assert_allclose(
            [s.percentiles[name][f"p{q}"] for q in PERCENTILES],
            np.percentile(result.parameters[name][result.success], PERCENTILES),
        )


def test_legacy_xarray_layout_still_reads(run, tmp_path):
    """Stores written by FitResult.to_zarr before the one layout: the to_xarray dataset."""
    _, result = run
    result.to_xarray().to_zarr(tmp_path / "r.zarr", consolidated=False)
    s = summarize(tmp_path / "r.zarr")
    assert (s.layout, s.complete, s.blocks_total) == ("xarray", None, None)
    assert s.status_counts == {"OK": 42, "FIT_ERROR": 5, "NO_VALID_DATA": 1}
    assert s.errors[0].examples == [(0, 6), (1, 2), (3, 5)]
    assert "FitResult.to_zarr layout" in s.text() and "complete:" not in s.text()
    back = read_result(tmp_path / "r.zarr")
    np.testing.assert_array_equal(back.status, result.status)


def test_units_of_both_layouts(wcs_run, tmp_path):
    tmp, result = wcs_run
    result.to_zarr(tmp_path / "r.zarr")
    expected = {"amplitude": "K", "mean": "km / s", "stddev": "km / s"}
    assert {k: str(v) for k, v in result.units.items()} == expected
    assert summarize(tmp / "maps.zarr").units == expected  # from the model's YAML
    s = summarize(tmp_path / "r.zarr")
    assert s.units == expected
    assert "mean [km / s]" in s.text()


# --- the diagnostics folder -------------------------------------------------------------


def test_diagnostics_folder(run):
    tmp, result = run
    s = summarize(tmp / "diag", examples=2)
    rows = list(csv.DictReader(open(tmp / "diag" / "manifest.csv")))
    assert (s.kind, s.n_fits) == ("diagnostics", len(rows)) == ("diagnostics", 9)
    assert s.status_counts == {"OK": 4, "FIT_ERROR": 5}
    assert [(g.message, g.count, g.examples) for g in s.errors] == [
        ("ValueError: model blew up", 4, ["1_2", "3_5"]),
        ("RuntimeError: singular matrix", 1, ["0_6"]),
    ]
    assert s.errors[0].pixels == [(1, 2), (3, 5)]
    low = [g for g in s.warnings if g.message.endswith("low signal")][0]
    assert (low.count, low.examples) == (4, ["0_0", "2_3"])
    assert s.provenance["run_id"] == result.meta["run_id"]
    assert s.percentiles == {} and s.n_failed == 5


def test_only_folders_of_the_manifest_are_read(run, tmp_path):
    tmp = copy_run(run, tmp_path)
    stray = tmp / "diag" / "9_9"
    stray.mkdir()
    (stray / "error.log").write_text("ValueError: from an older run\n")
    (stray / "warn.log").write_text("x.py:1: UserWarning: old\n")
    s = summarize(tmp / "diag")
    assert "ValueError: from an older run" not in by_message(s.errors)
    assert not any("old" == g.message[-3:] for g in s.warnings)
    assert s.n_fits == 9


def test_grouping_keys_and_text_truncation(tmp_path):
    from parfit.diagnostics.folders import write_manifest

    diag = tmp_path / "diag"
    logs = {
        (0, 0): 'Traceback (most recent call last):\n  File "m.py", line 1\n'
        "ValueError: model blew up\n\n",
        (0, 1): "ValueError: model blew up\n",
        (0, 2): "scipy least_squares: too many evaluations\n",
        (1, 0): "line one\nline two\n",
    }
    for pixel, text in logs.items():
        (diag / folder(pixel)).mkdir(parents=True)
        (diag / folder(pixel) / "error.log").write_text(text)
    (diag / "1_1").mkdir()  # failed, no error.log
    (diag / "1_1" / "warn.log").write_text("w: a\nw: a\n  w: b  \n")
    rows = [(folder(p), p, Status.FIT_ERROR, 0) for p in logs]
    rows.append(("1_1", (1, 1), Status.NOT_CONVERGED, 3))
    write_manifest(diag, rows, "run0")
    s = summarize(diag, top=1)
    assert [(g.message, g.count) for g in s.errors] == [
        ("ValueError: model blew up", 2),
        ("NOT_CONVERGED: the solver did not converge", 1),
        ("line two", 1),
        ("scipy least_squares: too many evaluations", 1),
    ]
    assert [(g.message, g.count, g.occurrences) for g in s.warnings] == [
        ("w: a", 1, 2),
        ("w: b", 1, 1),
    ]
    text = s.text()
    assert "... and 3 more message(s) (3 fits)" in text
    assert "... and 1 more message(s) (1 fits)" in text
    assert len(s.text(top=None).splitlines()) == len(text.splitlines()) + 6
    assert s.text(top=None) == summarize(diag, top=None).text()


def test_missing_folders_are_noted(run, tmp_path):
    tmp = copy_run(run, tmp_path)
    shutil.rmtree(tmp / "diag" / "1_2")
    s = summarize(tmp / "diag")
    assert by_message(s.errors)["ValueError: model blew up"].count == 3
    assert s.notes == ["1 folder(s) listed in manifest.csv are missing, e.g. 1_2"]
    assert "notes:\n  - 1 folder(s) listed" in s.text()


def test_diagnostics_re_export(run):
    from parfit import diagnostics

    assert "summarize" in diagnostics.__all__
    a = diagnostics.summarize(run[0] / "diag", examples=1)
    assert a.to_dict() == summarize(run[0] / "diag", examples=1).to_dict()


# --- analysis folders -------------------------------------------------------------------


def write_run_json(folder, diagnostics_path, result):
    counts = {s.name: n for s, n in result.status_counts().items()}
    run = {
        "parfit_version": parfit.__version__,
        "config_hash": "c0ffee",
        "input": {"path": "/data/cube.fits", "fingerprint": "abc123"},
        "diagnostics_path": diagnostics_path,
        "timings": {"fit": 1.25, "total": 2.5},
        "status_counts": counts,
        "n_fits": 48,
        "n_failed": 5,
        "failed_fraction": 5 / 48,
        "exit_status": 0,
        "started": "2025-01-01T00:00:00",
        "finished": "2025-01-01T00:00:03",
    }
    (folder / "run.json").write_text(json.dumps(run))
    return run


def test_analysis_folder(run, tmp_path):
    _, result = run
    tmp = copy_run(run, tmp_path)
    run_json = write_run_json(tmp, str(tmp / "diag"), result)
    s = summarize(tmp)
    assert (s.kind, s.path, s.store) == ("analysis", str(tmp), str(tmp / "maps.zarr"))
    assert s.run == run_json and s.notes == []
    assert s.errors[0].message == "ValueError: model blew up"
    assert s.diagnostics_path == str(tmp / "diag")
    text = s.text()
    for expected in (
        f"parfit analysis folder: {tmp}",
        f"parfit {parfit.__version__}",
        "config c0ffee",
        "timings: fit 1.25 s, total 2.5 s",
        "input: /data/cube.fits (fingerprint abc123)",
        "exit status 0",
    ):
        assert expected in text, expected


def test_analysis_folder_without_diagnostics(run, tmp_path):
    _, result = run
    tmp = copy_run(run, tmp_path)
    write_run_json(tmp, None, result)
    s = summarize(tmp)
    assert s.diagnostics_path is None
    assert s.errors[0].message == "FIT_ERROR: the model or fitter raised an exception"
    write_run_json(tmp, str(tmp / "gone"), result)  # named but deleted
    assert summarize(tmp).diagnostics_path is None


def test_to_dict_is_json(run):
    s = summarize(run[0] / "maps.zarr", diagnostics=run[0] / "diag")
    d = json.loads(json.dumps(s.to_dict(), allow_nan=False))
    assert d["status_counts"] == s.status_counts
    assert d["errors"][0]["examples"] == [list(p) for p in s.errors[0].examples]
    assert d["percentiles"]["amplitude"]["p50"] == s.percentiles["amplitude"]["p50"]
    assert d["shape"] == [6, 8] and d["complete"] is True


# --- refused paths ----------------------------------------------------------------------

EXPECTED = (
    "a parfit output store (zarr), an analysis folder with run.json, or a "
    "diagnostics folder with manifest.csv"
)


def test_missing_path(tmp_path):
    path = tmp_path / "nope"
    with pytest.raises(InputError) as info:
        summarize(path)
    assert str(info.value) == f"summarize: {str(path)!r} does not exist; expected {EXPECTED}"


def test_not_a_store(tmp_path):
    (tmp_path / "some.txt").write_text("hello")
    for path in (tmp_path, tmp_path / "some.txt"):
        with pytest.raises(InputError) as info:
            summarize(path)
        assert str(info.value) == f"summarize: {str(path)!r} is not {EXPECTED}"
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w").create_array(
        "status", shape=(2,), dtype="i1"
    )
    with pytest.raises(InputError, match="is not a parfit output store"):
        summarize(tmp_path / "plain.zarr")
    with pytest.raises(InputError, match="is not a parfit output store"):
        plot_maps(tmp_path, tmp_path / "png")


def test_other_refusals(run, tmp_path):
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(
        InputError,
        match=r"holds the record of a run that wrote no maps \(exit "
        r"status unknown\); an analysis folder holds run.json "
        r"and maps.zarr",
    ):
        summarize(tmp_path)
    with pytest.raises(InputError, match="is itself a diagnostics folder"):
        summarize(run[0] / "diag", diagnostics=run[0] / "diag")
    with pytest.raises(InputError, match="no manifest.csv there"):
        summarize(run[0] / "maps.zarr", diagnostics=tmp_path)
    with pytest.raises(InputError, match="top must be a non-negative integer"):
        summarize(run[0] / "maps.zarr", top=-1)
    with pytest.raises(InputError, match="holds no maps"):
        plot_maps(run[0] / "diag", tmp_path / "png")


# --- plots ------------------------------------------------------------------------------


def assert_png(path):
    from matplotlib.image import imread

    assert path.is_file() and path.read_bytes()[:8] == PNG_MAGIC
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_plot_maps_pixel_axes(run, tmp_path):
    tmp, result = run
    out = tmp_path / "png" / "deeper"
    written = plot_maps(tmp / "maps.zarr", out, dpi=50)
    assert written == [out / f"{name}.png" for name in result.param_names] + [out / "status.png"]
    for path in written:
        assert_png(path)
    assert plot_maps(tmp / "maps.zarr", out, dpi=50) == written  # replaced, no error
    figures = dict(parfit.diagnostics.plots._map_figures(tmp / "maps.zarr"))
    assert type(figures["amplitude"].axes[0]).__name__ == "Axes"
    colorbar = figures["status"].axes[1]
    assert [t.get_text() for t in colorbar.get_yticklabels()] == [
        "1 OK",
        "2 FIT_ERROR",
        "4 NO_VALID_DATA",
    ]


def test_plot_maps_wcs_axes(wcs_run, tmp_path):
    from astropy.visualization.wcsaxes import WCSAxes

    tmp, _ = wcs_run
    shutil.copytree(tmp / "maps.zarr", tmp_path / "maps.zarr")
    (tmp_path / "run.json").write_text(json.dumps({"diagnostics_path": None}))
    written = plot_maps(tmp_path, tmp_path / "png", dpi=50)  # an analysis folder
    assert [p.name for p in written] == ["amplitude.png", "mean.png", "stddev.png", "status.png"]
    for path in written:
        assert_png(path)
    for name, fig in parfit.diagnostics.plots._map_figures(tmp / "maps.zarr"):
        ax = fig.axes[0]
        assert isinstance(ax, WCSAxes), name
        assert ax.coords[0].get_axislabel() == "RA" and ax.coords[1].get_axislabel() == "Dec"


def test_plot_maps_1d_and_3d(tmp_path):
    from parfit import output

    cube = gaussian_cube((30, 5), seed=2)
    parfit.parallel_fit(
        cube.model,
        cube.data,
        world=cube.world,
        scheduler="synchronous",
        output=tmp_path / "line.zarr",
    )
    written = plot_maps(tmp_path / "line.zarr", tmp_path / "png", dpi=50)
    assert [p.name for p in written] == ["amplitude.png", "mean.png", "stddev.png", "status.png"]
    for path in written:
        assert_png(path)
    output.prepare_output(
        tmp_path / "cube.zarr",
        overwrite=False,
        resume=False,
        iterating_shape=(2, 2, 2),
        chunks=(2, 2, 2),
        dims=("a", "b", "c"),
        param_names=["p"],
        provenance={"param_names": ["p"]},
    )
    with pytest.raises(InputError, match=r"are 3-D \(shape \(2, 2, 2\)\); only 1-D and 2-D"):
        plot_maps(tmp_path / "cube.zarr", tmp_path / "png")
    assert_png(plot_overview(tmp_path / "line.zarr", tmp_path / "line.png", dpi=50))
    with pytest.raises(InputError, match=r"plot_overview: the maps of .* are 3-D"):
        plot_overview(tmp_path / "cube.zarr", tmp_path / "cube.png")


def test_plot_overview(run, wcs_run, tmp_path):
    from matplotlib.image import imread

    tmp, result = run
    alone = plot_overview(tmp / "maps.zarr", tmp_path / "alone.png", dpi=40)
    assert alone == tmp_path / "alone.png"
    assert_png(alone)
    names = result.param_names[:2]
    both = plot_overview(
        tmp / "maps.zarr",
        tmp_path / "both.png",
        reference={name: result.parameters[name] for name in names},
        reference_label="true",
        dpi=40,
    )
    assert_png(both)
    assert imread(both).shape[0] > imread(alone).shape[0]  # a second row: the reference
    shutil.copytree(wcs_run[0] / "maps.zarr", tmp_path / "analysis" / "maps.zarr")
    (tmp_path / "analysis" / "run.json").write_text(json.dumps({"diagnostics_path": None}))
    assert_png(plot_overview(tmp_path / "analysis", tmp_path / "wcs.png", dpi=40))
    with pytest.raises(InputError, match=r"reference has maps \['width'\] that the store does not"):
        plot_overview(tmp / "maps.zarr", tmp_path / "x.png", reference={"width": np.ones((6, 8))})
    with pytest.raises(
        InputError, match=r"reference\['mean'\] has shape \(3,\); the maps have shape \(6, 8\)"
    ):
        plot_overview(tmp / "maps.zarr", tmp_path / "x.png", reference={"mean": np.ones(3)})
    with pytest.raises(InputError, match="reference must be a mapping"):
        plot_overview(tmp / "maps.zarr", tmp_path / "x.png", reference=[1.0])
    with pytest.raises(InputError, match="is a diagnostics folder, which holds no maps"):
        plot_overview(tmp / "diag", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_fit(tmp_path):
    x = np.linspace(-5, 5, 40)
    model = 2.0 * np.exp(-0.5 * x**2)
    data = model + np.random.default_rng(0).normal(0, 0.05, x.size)
    data[3] = np.nan
    path = plot_fit(
        tmp_path / "fit.png",
        x,
        data,
        0.5 * model,
        model,
        title="pixel (1, 2)",
        x_label="v [km/s]",
        y_label="T [K]",
        dpi=50,
    )
    assert path == tmp_path / "fit.png"
    assert_png(path)
    failed = plot_fit(
        tmp_path / "failed.png",
        x,
        data,
        0.5 * model,
        None,
        title="pixel (1, 3)",
        note="FIT_ERROR: model blew up",
        dpi=50,
    )
    assert_png(failed)
    assert_png(plot_fit(tmp_path / "bare.png", x, data, None, None, dpi=50))
    with pytest.raises(InputError, match="x has 40 values but data 39"):
        plot_fit(tmp_path / "bad.png", x, data[1:], None, None)


@pytest.mark.parametrize("module", [parfit.diagnostics.summary, parfit.diagnostics.plots])
def test_docstring_examples(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(
        module,
        report=True,
        verbose=False,
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
    )
    assert result.failed == 0 and result.attempted > 0


def test_diagnostics_of_another_run_are_noted(run, wcs_run):
    s = summarize(wcs_run[0] / "maps.zarr", diagnostics=run[0] / "diag")
    assert len(s.notes) == 1 and "was written by another run than the store" in s.notes[0]
    assert s.errors == []  # every pixel of that store is OK: no failure to explain
    assert len(s.warnings) == 2  # the folders' warnings are still shown
