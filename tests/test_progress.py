"""progress=True: a bar with fits, fits/s and ETA, and log lines."""

import logging

import numpy as np
import pytest

import parfit
from parfit.datasets import gaussian_cube
from parfit.engine.progress import FitProgress


@pytest.fixture(scope="module")
def cube():
    return gaussian_cube((30, 20, 15), seed=4)


@pytest.mark.parametrize("scheduler", ["threads", "synchronous"])
@pytest.mark.parametrize("stream", [False, True])
def test_progress_bar_counts_every_fit(cube, tmp_path, capsys, caplog, scheduler, stream):
    caplog.set_level(logging.INFO, logger="parfit.progress")
    kwargs = dict(world=cube.world, scheduler=scheduler, chunk_n_max=60)
    if stream:
        kwargs["output"] = tmp_path / "maps.zarr"
    res = parfit.parallel_fit(cube.model, cube.data, progress=True, **kwargs)
    err = capsys.readouterr().err
    assert "parfit: 100%" in err and "300/300" in err and "fit/s" in err
    finished = [r.getMessage() for r in caplog.records if r.name == "parfit.progress"]
    assert finished and finished[-1].startswith("finished: 300/300 fits (100.0 %), ")
    plain = parfit.parallel_fit(
        cube.model, cube.data, world=cube.world, scheduler="threads", chunk_n_max=60
    )
    np.testing.assert_array_equal(res.parameters["mean"], plain.parameters["mean"])
    np.testing.assert_array_equal(res.status, plain.status)


def test_progress_logs_while_running(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="parfit.progress")
    bar = FitProgress(1000, bar=False, log_every=1e-9)
    bar.update(250)
    bar.update(250)
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("250/1000 fits (25.0 %), ")
    assert "s left" in lines[0]
    assert lines[-1].startswith("finished: 500/1000 fits (50.0 %)")
    assert "s left" not in lines[-1]
