"""Quality flags: from a fitter's ``BlockResult.flags`` to every map, file and summary.

The fitter here fits a straight line and then sets known flags: the pixel
index is written into the data (the value at x = 0 of the line), so the
fitter knows which pixel each row of a block is, whatever the blocks, and sets
flags that depend on it.  Two pixels are demoted to ``Status.DEGENERATE``.
"""

import csv
import json
import shutil

import numpy as np
import pytest
import xarray as xr
import zarr
from _compare import assert_same_results
from astropy.io import fits
from click.testing import CliRunner

import parfit
from parfit import FitResult, Flag, Status
from parfit.analysis import Analysis, read_result
from parfit.diagnostics import summarize
from parfit.errors import InputError
from parfit.fitters import BlockResult, Fitter
from parfit.models import Linear1D
from parfit.status import FLAG_DESCRIPTIONS, STATUS_DESCRIPTIONS, is_failure
from parfit.store import DONE_NAME, read_done

SHAPE = (6, 7)
X = np.arange(12.0)
BLANK = (5, 6)  # an all-NaN pixel: NO_VALID_DATA, no flags
DEMOTED = {11: Flag.SINGULAR, 23: Flag.DEGENERATE}  # pixel index -> demoting flag


def flags_of(index):
    """The flags the test fitter sets on the pixels of flat index ``index`` (-1: none)."""
    index = np.asarray(index)
    flags = np.where(index % 3 == 1, Flag.AT_BOUND, 0) | np.where(index % 5 == 2, Flag.RETRIED, 0)
    for pixel, flag in DEMOTED.items():
        flags = np.where(index == pixel, flags | flag, flags)
    return np.where(index >= 0, flags, 0).astype(np.uint8)


class FlaggingFitter(Fitter):
    """A straight line fitted in closed form, then the flags of :func:`flags_of`.

    The DEMOTED pixels become ``Status.DEGENERATE`` (NaN parameters and
    errors, the chi-square kept).  Closed form, so that these tests of the
    plumbing do not depend on the solver.
    """

    name = "closed-form line with test flags"

    def fit_block(self, model, block, *, fit_info=False, fitter_kwargs=None):
        result = BlockResult.empty(block.n_fits, 2)
        x = block.x[0]
        for i in range(block.n_fits):
            ok = block.valid[i]
            if not ok.any():
                result.status[i] = Status.NO_VALID_DATA
                continue
            design = np.stack([x[ok], np.ones(int(ok.sum()))], axis=1)  # slope, intercept
            coef = np.linalg.lstsq(design, block.y[i, ok], rcond=None)[0]
            resid = block.y[i, ok] - design @ coef
            cov = np.linalg.inv(design.T @ design) * (resid @ resid) / (ok.sum() - 2)
            result.params[i], result.errors[i] = coef, np.sqrt(np.diag(cov))
            result.statistic[i], result.status[i], result.nfev[i] = resid @ resid, Status.OK, 1
        y0 = block.y[:, 0]
        index = np.where(np.isfinite(y0), np.rint(y0), -1).astype(np.int64)
        result.flags = flags_of(index)
        demote = np.isin(index, list(DEMOTED))
        result.status[demote] = Status.DEGENERATE
        result.params[demote] = np.nan
        result.errors[demote] = np.nan  # the statistic keeps the chi-square
        return result


def expected_flags():
    index = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    index[BLANK] = -1
    return flags_of(index)


def demoted_mask():
    mask = np.zeros(np.prod(SHAPE), dtype=bool)
    mask[list(DEMOTED)] = True
    return mask.reshape(SHAPE)


def expected_counts():
    flags = expected_flags()
    return {
        flag.name: int(np.count_nonzero(flags & flag))
        for flag in Flag
        if flag and np.count_nonzero(flags & flag)
    }


@pytest.fixture(scope="module")
def cube():
    index = np.arange(np.prod(SHAPE), dtype=np.float64).reshape(SHAPE)
    noise = np.random.default_rng(7).normal(0.0, 0.01, (X.size,) + SHAPE)
    data = 0.5 * X[:, None, None] + index[None] + noise
    data[(slice(None),) + BLANK] = np.nan
    data.setflags(write=False)
    return data


def fit(cube, **kwargs):
    kwargs.setdefault("scheduler", "synchronous")
    kwargs.setdefault("chunk_n_max", 10)
    return parfit.parallel_fit(
        Linear1D(slope=1.0, intercept=0.0), cube, world=(X,), fitter=FlaggingFitter(), **kwargs
    )


@pytest.fixture(scope="module")
def result(cube):
    return fit(cube)


def test_flags_map_in_memory(result):
    assert result.flags.dtype == np.uint8 and result.flags.shape == SHAPE
    np.testing.assert_array_equal(result.flags, expected_flags())
    with pytest.raises(ValueError, match="read-only"):
        result.flags[0, 0] = 1
    demoted = demoted_mask()
    assert np.all(result.status[demoted] == Status.DEGENERATE)
    assert np.all(np.isnan(result.parameters["slope"][demoted]))
    assert np.all(np.isnan(result.errors["intercept"][demoted]))
    assert np.all(np.isfinite(result.statistic[demoted]))
    assert result.status[BLANK] == Status.NO_VALID_DATA
    others = ~demoted
    others[BLANK] = False
    assert np.all(result.status[others] == Status.OK)
    assert not result.success[demoted].any()
    assert is_failure(result.status[demoted]).all()
    assert {f.name: n for f, n in result.flag_counts().items()} == expected_counts()
    assert result.status_counts() == {Status.OK: 39, Status.NO_VALID_DATA: 1, Status.DEGENERATE: 2}


def test_flags_do_not_depend_on_chunking_or_scheduler(cube, result):
    assert_same_results(result, fit(cube, chunk_n_max=7, scheduler="threads"))


def test_streamed_store_holds_the_flags(cube, result, tmp_path):
    store = tmp_path / "maps.zarr"
    streamed = fit(cube, output=store)
    assert_same_results(result, streamed)
    array = zarr.open_array(str(store / "flags"), mode="r")
    status = zarr.open_array(str(store / "status"), mode="r")
    assert array.dtype == np.uint8 and array.fill_value == 0
    assert array.metadata.dimension_names == status.metadata.dimension_names
    assert array.chunks == status.chunks
    np.testing.assert_array_equal(array[...], expected_flags())
    again = read_result(store)
    assert again.flags.dtype == np.uint8
    np.testing.assert_array_equal(again.flags, expected_flags())
    np.testing.assert_array_equal(again.status, result.status)


def test_resume_keeps_the_flags_of_blocks_already_done(cube, result, tmp_path):
    store = tmp_path / "maps.zarr"
    first = fit(cube, output=store)
    complete = fit(cube, output=store, resume=True)
    assert complete.meta["blocks_fitted"] == 0
    assert_same_results(first, complete)
    # Forget one block, as a crash would, and lose its flags.
    done = zarr.open_array(str(store / DONE_NAME), mode="r+")
    done[0, 0] = 0
    flags = zarr.open_array(str(store / "flags"), mode="r+")
    flags[tuple(slice(0, c) for c in flags.chunks)] = 0
    resumed = fit(cube, output=store, resume=True)
    assert resumed.meta["blocks_fitted"] == 1
    assert resumed.meta["blocks_resumed"] == done.size - 1
    assert read_done(store).all()
    assert_same_results(result, resumed)
    np.testing.assert_array_equal(read_result(store).flags, expected_flags())


def test_failed_block_has_no_flags():
    from parfit.engine.fields import BlockOutput

    output = BlockOutput.failed(["a", "b"], (2, 3), Status.FIT_ERROR)
    fields = output.fields()
    assert np.all(fields["flags"] == 0) and fields["flags"].dtype == np.uint8
    assert np.all(fields["status"] == Status.FIT_ERROR)
    assert np.isnan(fields["a"]).all() and np.isnan(fields["b_error"]).all()


def test_to_xarray_flags_variable(result):
    ds = result.to_xarray()
    var = ds["flags"]
    assert var.dims == ds["status"].dims and var.dtype == np.uint8
    np.testing.assert_array_equal(var.values, expected_flags())
    assert var.attrs["flag_masks"].tolist() == [1, 2, 4, 8, 16, 32]
    assert var.attrs["flag_masks"].dtype == np.uint8
    assert (
        var.attrs["flag_meanings"]
        == "at_bound singular degenerate retried dataset_missing limit_at_bound"
    )
    assert "flag" in var.attrs["long_name"]
    assert "degenerate" in ds["status"].attrs["flag_meanings"].split()
    assert int(Status.DEGENERATE) in ds["status"].attrs["flag_values"].tolist()


def test_writers_include_the_flags(result, tmp_path):
    zarr_path = result.to_zarr(tmp_path / "maps.zarr")
    again = read_result(zarr_path)
    np.testing.assert_array_equal(again.flags, expected_flags())
    assert again.flags.dtype == np.uint8
    nc = result.to_netcdf(tmp_path / "maps.nc")
    with xr.open_dataset(nc) as ds:
        np.testing.assert_array_equal(ds["flags"].values, expected_flags())
        assert (
            ds["flags"].attrs["flag_meanings"]
            == "at_bound singular degenerate retried dataset_missing limit_at_bound"
        )
    with fits.open(result.to_fits(tmp_path / "maps.fits")) as hdul:
        assert [h.name for h in hdul][-2:] == ["NFEV", "FLAGS"]
        np.testing.assert_array_equal(hdul["FLAGS"].data, expected_flags())


def test_summary_lists_flags_after_the_statuses(result):
    text = result.summary()
    lines = text.splitlines()
    start = lines.index("flags (a fit may have several):")
    assert lines.index("status:") < start
    assert any(line.startswith("  DEGENERATE") for line in lines[lines.index("status:") : start])
    assert (
        f"  {'DEGENERATE':<16} {2:>9d}  (  4.8%)  {STATUS_DESCRIPTIONS[Status.DEGENERATE]}"
    ) in lines
    counts = expected_counts()
    flag_lines = lines[start + 1 : start + 1 + len(counts)]
    for line, (name, count) in zip(flag_lines, counts.items()):
        assert line.split()[:2] == [name, str(count)]
        assert line.endswith(FLAG_DESCRIPTIONS[Flag[name]])
    assert lines[start + 1 + len(counts)].startswith("parameters over successful fits")


def test_summary_without_flags_has_no_flag_lines():
    status = np.array([Status.OK, Status.DEGENERATE], dtype=np.int8)
    res = FitResult(
        model=None,
        parameters={"a": [1.0, np.nan]},
        errors={"a": [0.1, np.nan]},
        statistic=[1.0, 2.0],
        status=status,
        nfev=[3, 4],
    )
    assert res.flags.dtype == np.uint8 and res.flags.tolist() == [0, 0]
    assert res.flag_counts() == {}
    assert "flags" not in res.summary()
    assert "DEGENERATE" in res.summary()
    with pytest.raises(ValueError, match="flags has shape"):
        FitResult(
            model=None,
            parameters={},
            errors={},
            statistic=[1.0, 2.0],
            status=status,
            nfev=[3, 4],
            flags=[1],
        )


def test_inspect_store_counts_flags(cube, tmp_path):
    store = tmp_path / "maps.zarr"
    fit(cube, output=store)
    s = summarize(store)
    assert s.flag_counts == expected_counts()
    assert s.status_counts == {"OK": 39, "NO_VALID_DATA": 1, "DEGENERATE": 2}
    assert (s.n_failed, s.n_not_attempted) == (2, 1)  # DEGENERATE is a failure
    lines = s.text().splitlines()
    start = lines.index("flags (a fit may have several):")
    assert (
        lines.index("status:")
        < start
        < next(k for k, line in enumerate(lines) if line.startswith("failed:"))
    )
    for name, count in expected_counts().items():
        (line,) = [line for line in lines[start:] if line.startswith(f"  {name} ")]
        assert line.split()[1] == str(count)
        assert line.endswith(FLAG_DESCRIPTIONS[Flag[name]])
    assert "DEGENERATE: " + STATUS_DESCRIPTIONS[Status.DEGENERATE] in s.text()
    assert s.to_dict()["flag_counts"] == expected_counts()

    from parfit.cli import main

    out = CliRunner().invoke(main, ["inspect", "--json", str(store)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["flag_counts"] == expected_counts()
    assert data["status_counts"]["DEGENERATE"] == 2
    text = CliRunner().invoke(main, ["inspect", str(store)])
    assert text.exit_code == 0 and "flags (a fit may have several):" in text.output


def test_store_written_before_flags_reads_as_zero(cube, result, tmp_path):
    store = tmp_path / "maps.zarr"
    fit(cube, output=store)
    xarray_store = result.to_zarr(tmp_path / "xr.zarr")
    for path in (store, xarray_store):
        shutil.rmtree(path / "flags")
        old = read_result(path)
        assert old.flags.dtype == np.uint8 and not old.flags.any()
        np.testing.assert_array_equal(old.status, result.status)
        s = summarize(path)
        assert s.flag_counts == {} and "flags (" not in s.text()
    with pytest.raises(InputError, match="kept no flags map"):
        fit(cube, output=store, resume=True)


def test_diagnostics_manifest_names_the_flags(cube, tmp_path):
    diag = tmp_path / "diag"
    res = fit(cube, diagnostics="error", diagnostics_path=diag)
    with open(diag / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2  # the two DEGENERATE fits
    index = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    for row in rows:
        pixel = tuple(int(i) for i in row["indices"].split())
        bits = int(flags_of(index[pixel]))
        assert row["status_name"] == "DEGENERATE"
        assert int(row["flags"]) == bits == res.flags[pixel]
        assert row["flag_names"].split() == [f.name for f in Flag if f and bits & f]
    s = summarize(diag)
    assert s.status_counts == {"DEGENERATE": 2}
    assert s.flag_counts == {"SINGULAR": 1, "DEGENERATE": 1}  # pixels 11 and 23
    assert "flags of the fits with a folder:" in s.text()


def test_manifest_without_flag_columns_still_reads(tmp_path):
    from parfit.diagnostics.folders import write_manifest

    diag = tmp_path / "diag"
    (diag / "0_0").mkdir(parents=True)
    write_manifest(diag, [("0_0", (0, 0), Status.NOT_CONVERGED, 0)], "run0")
    with open(diag / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert (rows[0]["flags"], rows[0]["flag_names"]) == ("0", "")
    # A manifest of an earlier parfit: no flags columns.
    with open(diag / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(
            fh,
            fieldnames=[k for k in rows[0] if k not in ("flags", "flag_names")],
            extrasaction="ignore",
        )
        writer.writeheader()
        writer.writerows(rows)
    s = summarize(diag)
    assert s.status_counts == {"NOT_CONVERGED": 1} and s.flag_counts == {}


def test_degenerate_counts_as_failed_in_the_run_record(tmp_path):
    analysis = Analysis(
        {
            "input": {"path": "cube.fits", "fitting_axes": "spectral"},
            "model": {"components": [{"type": "Gaussian1D"}]},
            "output": {"path": "results"},
        },
        base_dir=tmp_path,
    )
    status = np.array(
        [Status.OK, Status.DEGENERATE, Status.NO_VALID_DATA, Status.OK], dtype=np.int8
    )
    res = FitResult(
        model=None,
        parameters={"a": np.zeros(4)},
        errors={"a": np.zeros(4)},
        statistic=np.zeros(4),
        status=status,
        nfev=np.zeros(4),
        flags=np.array(
            [Flag.AT_BOUND, Flag.SINGULAR | Flag.RETRIED, 0, Flag.AT_BOUND | Flag.RETRIED],
            dtype=np.uint8,
        ),
    )
    outcome = analysis._outcome(res)
    assert (outcome["n_failed"], outcome["n_attempted"]) == (1, 3)
    assert outcome["status_counts"] == {"OK": 2, "NO_VALID_DATA": 1, "DEGENERATE": 1}
    assert outcome["flag_counts"] == {"AT_BOUND": 2, "SINGULAR": 1, "RETRIED": 2}
    json.dumps(outcome)


def test_analysis_run_record_has_the_flag_counts(tmp_path):
    from parfit.datasets import gaussian_cube

    gaussian_cube((30, 4, 5), seed=1).to_fits(tmp_path / "cube.fits")
    analysis = Analysis(
        {
            "input": {"path": "cube.fits", "fitting_axes": "spectral"},
            "model": {"components": [{"type": "Gaussian1D"}], "initial": "guess"},
            "run": {"scheduler": "synchronous", "progress": False},
            "output": {"path": "results"},
        },
        base_dir=tmp_path,
    )
    res = analysis.run()
    record = json.loads((tmp_path / "results" / "run.json").read_text())
    assert record["flag_counts"] == {f.name: n for f, n in res.flag_counts().items()}
    s = summarize(tmp_path / "results")
    assert s.flag_counts == record["flag_counts"]
    assert not [n for n in s.notes if "flag_counts" in n]
    pixel = analysis.fit_pixel((1, 2))
    assert isinstance(pixel["flags"], Flag) and pixel["flags"] == res.flags[1, 2]
