"""Faults on a dask.distributed cluster: dead workers and pixels that kill them."""

import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import parfit
from parfit import Status
from parfit.datasets import gaussian_cube
from parfit.store import read_done

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _slow_model  # noqa: E402  (a module the workers receive by value)

sys.path.remove(str(HERE))


@pytest.fixture(scope="module")
def client():
    import cloudpickle
    import dask

    cloudpickle.register_pickle_by_value(_slow_model)
    # Give up on a task after its second worker death (the default is 3).
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c
    cloudpickle.unregister_pickle_by_value(_slow_model)


@pytest.fixture(scope="module")
def cube():
    return gaussian_cube((30, 8, 10), seed=5)


def starts(cube, poison=None):
    amplitude = np.full(cube.data.shape[1:], 2.0)
    if poison is not None:
        amplitude[poison] = 666.0
    return amplitude


@pytest.mark.parametrize("stream", [False, True])
def test_a_pixel_that_kills_its_worker_fails_only_its_block(client, cube, tmp_path, stream):
    client.wait_for_workers(2, timeout=60)
    model = _slow_model.PoisonGaussian(starts(cube, poison=(5, 7)), 0.0, 5.0)
    kwargs = dict(world=cube.world, chunk_n_max=20, scheduler=client)
    if stream:
        kwargs["output"] = tmp_path / "maps.zarr"
    res = parfit.parallel_fit(model, cube.data, **kwargs)
    crashed = res.status == Status.WORKER_CRASH
    # Blocks of 2 x 10 pixels: rows 4-5 hold the poisoned pixel.
    expected = np.zeros(crashed.shape, dtype=bool)
    expected[4:6] = True
    np.testing.assert_array_equal(crashed, expected)
    assert np.isnan(res.parameters["mean"][crashed]).all()
    assert res.meta["failed_blocks"][0]["status"] == "WORKER_CRASH"
    # The same model (same engine) without the poison, locally.
    reference = parfit.parallel_fit(
        _slow_model.PoisonGaussian(starts(cube), 0.0, 5.0),
        cube.data,
        world=cube.world,
        chunk_n_max=20,
        scheduler="threads",
    )
    for name in res.param_names:
        np.testing.assert_array_equal(
            res.parameters[name][~crashed], reference.parameters[name][~crashed]
        )
    assert (res.status[~crashed] == Status.OK).all()
    if stream:
        done = read_done(tmp_path / "maps.zarr")
        assert done.sum() == done.size - 1 and not done[2, 0]  # a resume retries it


def test_killing_a_worker_mid_run_loses_nothing(client, cube):
    model = _slow_model.SlowGaussian(starts(cube), 0.0, 5.0)
    model.delay = 0.05  # about 4 s in all: the kill lands mid-run
    client.wait_for_workers(2, timeout=60)  # after the crashes of the test above
    pids = client.run(os.getpid)

    def kill_one():
        os.kill(next(iter(pids.values())), signal.SIGKILL)

    timer = threading.Timer(1.5, kill_one)
    start = time.monotonic()
    timer.start()
    try:
        res = parfit.parallel_fit(
            model, cube.data, world=cube.world, chunk_n_max=10, scheduler=client
        )
    finally:
        timer.cancel()
    assert time.monotonic() - start > 2.0, "the run ended before the worker was killed"
    assert res.meta["failed_blocks"] == [] and res.run.failed_blocks == []
    fast = _slow_model.SlowGaussian(starts(cube), 0.0, 5.0)
    fast.delay = 0.0
    reference = parfit.parallel_fit(
        fast, cube.data, world=cube.world, chunk_n_max=10, scheduler="threads"
    )
    for name in res.param_names:
        np.testing.assert_array_equal(res.parameters[name], reference.parameters[name])
    np.testing.assert_array_equal(res.status, reference.status)
    new_pids = client.run(os.getpid)
    assert set(new_pids.values()) != set(pids.values())  # the worker really was replaced
