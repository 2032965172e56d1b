"""The parfit command, driven through a subprocess as a user runs it."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import parfit


def parfit_cmd(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "parfit.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_version(tmp_path):
    out = parfit_cmd("--version", cwd=tmp_path)
    assert out.returncode == 0
    assert parfit.__version__ in out.stdout


@pytest.mark.slow
def test_demo_writes_maps_png_and_summary_and_refuses_to_overwrite(tmp_path):
    args = ("demo", "--size", "12", "--channels", "40", "--scheduler", "threads")
    out = parfit_cmd(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "fits: 144   succeeded: 136" in out.stdout
    assert "status counts: OK=136, NO_VALID_DATA=8" in out.stdout
    demo = tmp_path / "parfit-demo"
    ds = xr.open_zarr(demo / "maps.zarr", consolidated=False)
    assert ds["mean"].shape == (12, 12)
    assert int((ds["status"] == parfit.Status.OK).sum()) == 136
    assert ds.attrs["parfit"]["complete"] is True  # the layout of a streamed store
    # Median error against the truth is printed and small.
    line = next(s for s in out.stdout.splitlines() if s.strip().startswith("mean "))
    assert float(line.split()[1]) < 0.5
    assert (demo / "maps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "parfit result: 144 fits" in (demo / "summary.txt").read_text()

    again = parfit_cmd(*args, cwd=tmp_path)
    assert again.returncode == 1
    assert "already holds maps.zarr, maps.png, summary.txt" in again.stderr
    assert "Traceback" not in again.stderr
    (demo / "mine.txt").write_text("user file")
    forced = parfit_cmd(*args, "--overwrite", "--seed", "1", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (demo / "mine.txt").read_text() == "user file"
    ds = xr.open_zarr(demo / "maps.zarr", consolidated=False)
    assert np.isfinite(ds["mean"].values).sum() == 136


def test_demo_rejects_bad_option(tmp_path):
    out = parfit_cmd("demo", "--scheduler", "gpu", cwd=tmp_path)
    assert out.returncode == 2
    assert "Invalid value for '--scheduler'" in out.stderr
