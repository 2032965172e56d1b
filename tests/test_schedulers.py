"""Identical results on every scheduler, including a distributed cluster."""

import numpy as np
import pytest
from _compare import assert_same_results as assert_same
from astropy.modeling import fitting, models
from test_robustness import spectra

import parfit


def fit(scheduler, **kwargs):
    cube, x, _ = spectra(ny=6, nx=7, seed=11)
    cube[:, 0, 0] = np.nan
    return parfit.parallel_fit(
        models.Gaussian1D(2, 0, 1),
        cube,
        world=(x,),
        fitter=fitting.TRFLSQFitter(),
        scheduler=scheduler,
        chunk_n_max=10,
        **kwargs,
    )


@pytest.fixture(scope="module")
def reference():
    return fit("synchronous")


@pytest.mark.parametrize("scheduler", [None, "default", "threads", "sync", "processes"])
def test_local_schedulers_agree(scheduler, reference):
    assert_same(fit(scheduler), reference)
    assert reference.status[0, 0] == parfit.Status.NO_VALID_DATA


@pytest.mark.slow
def test_distributed_local_cluster_agrees(reference, capsys, tmp_path):
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
        for scheduler in (client, None):  # None: the active client
            with distributed.get_task_stream(client) as stream:
                assert_same(fit(scheduler), reference)
            fit_tasks = [t for t in stream.data if str(t["key"]).startswith("parfit-block-")]
            assert len(fit_tasks) == 6  # 6 x 7 fits in blocks of 1 x 7
            assert len({t["worker"] for t in fit_tasks}) >= 1
        # With a progress bar (futures per block) and streamed to a store.
        assert_same(fit(client, progress=True), reference)
        assert "parfit: 100%" in capsys.readouterr().err
        streamed = fit(client, output=tmp_path / "maps.zarr")
        assert_same(streamed, reference)
        assert streamed.meta["blocks_fitted"] == 6


def test_progress_bar_runs(reference, capsys):
    assert_same(fit("threads", progress=True), reference)
    assert "parfit: 100%" in capsys.readouterr().err


@pytest.fixture
def without_dask(monkeypatch):
    """The default scheduler as in a fresh process where dask is not imported yet."""
    from parfit import fit as fit_module

    monkeypatch.setattr(fit_module, "_without_dask", lambda scheduler: scheduler is None)


@pytest.mark.parametrize("kwargs", [{}, {"progress": True}, {"fit_info": True}])
def test_default_scheduler_without_dask_agrees(without_dask, reference, kwargs, capsys):
    """parfit's own thread pool (dask not imported) gives dask's answers, progress bar too."""
    assert_same(fit(None, **kwargs), reference)
    if kwargs.get("progress"):
        assert "parfit: 100%" in capsys.readouterr().err


def test_default_scheduler_without_dask_streams_to_a_store(without_dask, reference, tmp_path):
    streamed = fit(None, output=tmp_path / "maps.zarr")
    assert_same(streamed, reference)
    again = fit(None, output=tmp_path / "maps.zarr", resume=True)
    assert again.meta["blocks_fitted"] == 0
    assert_same(again, reference)


def test_default_scheduler_without_dask_takes_dask_inputs(without_dask, reference):
    """A dask array among the inputs goes through dask (threaded), as before."""
    import dask.array as da

    cube, x, _ = spectra(ny=6, nx=7, seed=11)
    cube[:, 0, 0] = np.nan
    lazy = da.from_array(cube, chunks=(cube.shape[0], 2, 7))
    result = parfit.parallel_fit(
        models.Gaussian1D(2, 0, 1),
        lazy,
        world=(x,),
        fitter=fitting.TRFLSQFitter(),
        scheduler=None,
        chunk_n_max=10,
    )
    assert_same(result, reference)


def test_run_in_threads_keeps_order_and_raises_the_first_failure():
    from parfit.engine.execute import run_in_threads

    assert run_in_threads([lambda k=k: k * k for k in range(7)], [1] * 7, None) == [
        k * k for k in range(7)
    ]
    assert run_in_threads([], [], None) == []

    def boom():
        raise ValueError("block failed")

    with pytest.raises(ValueError, match="block failed"):
        run_in_threads([lambda: 1, boom, lambda: 3], [1, 1, 1], None)


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, True), ({"DASK_SCHEDULER": "synchronous"}, False)],
)
def test_without_dask_only_when_nothing_configures_dask(monkeypatch, tmp_path, env, expected):
    import types

    from parfit import fit as fit_module

    monkeypatch.setattr(fit_module.os.path, "expanduser", lambda p: str(tmp_path))
    # As in a fresh process: dask not imported (only fit.py's view of sys changes).
    monkeypatch.setattr(fit_module, "sys", types.SimpleNamespace(modules={}, prefix=str(tmp_path)))
    for key in [k for k in fit_module.os.environ if k.startswith("DASK_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert fit_module._without_dask(None) is (expected and not _etc_dask())
    assert fit_module._without_dask("threads") is False
    if expected and not _etc_dask():
        (tmp_path / ".config" / "dask").mkdir(parents=True)
        (tmp_path / ".config" / "dask" / "dask.yaml").write_text("scheduler: synchronous\n")
        assert fit_module._without_dask(None) is False


def _etc_dask():
    import os

    return os.path.isdir("/etc/dask") and bool(os.listdir("/etc/dask"))
