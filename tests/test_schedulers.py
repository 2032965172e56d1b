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
