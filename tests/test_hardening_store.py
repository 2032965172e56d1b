"""Hardening of the output store (issue 11): one writer per store, check then act,
verify before trusting, a strong fingerprint of lazy inputs."""

import json
import os
import pickle
import re
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from parfit.errors import OutputLockedError, StaleLockWarning, StoreDamagedError
from parfit.store import lock as _lock


def _dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(directory, *, lock_file=None, **info):
    base = dict(
        host=socket.gethostname(),
        pid=os.getpid(),
        run_id="other",
        created="2026-11-28T20:31:00",
        what="x",
    )
    base.update(info)
    (lock_file or directory / _lock.LOCK_NAME).write_text(json.dumps(base))


def _plant_store(path, **info):
    """A lock file of the store ``path`` (beside it)."""
    _plant(path.parent, lock_file=Path(output.lock_file(path)), **info)


def _store_holder(path):
    return _lock.holder(path.parent, lock_file=output.lock_file(path))


# --- the lock ---------------------------------------------------------------------------


def test_lock_second_acquire_refused_naming_holder(tmp_path):
    with _lock.acquire(tmp_path, run_id="run1", what="output 'm.zarr'") as lock:
        assert lock.held()
        info = _lock.holder(tmp_path)
        assert (info["run_id"], info["pid"], info["host"]) == (
            "run1",
            os.getpid(),
            socket.gethostname(),
        )
        expected = (
            f"output 'm.zarr' is in use by another parfit run (run run1, pid "
            f"{os.getpid()} on host {socket.gethostname()}, since {info['created']}); "
            f"wait for it to finish, or remove {tmp_path / _lock.LOCK_NAME} if that "
            f"run is gone"
        )
        with pytest.raises(OutputLockedError, match=re.escape(expected)):
            _lock.acquire(tmp_path, run_id="run2", what="output 'm.zarr'")
        with pytest.raises(OutputLockedError, match=re.escape(expected)):
            _lock.check_free(tmp_path, what="output 'm.zarr'")
        assert _lock.holder(tmp_path)["run_id"] == "run1"
    assert _lock.holder(tmp_path) is None
    assert os.listdir(tmp_path) == []


def test_lock_release_leaves_another_runs_lock(tmp_path):
    lock = _lock.acquire(tmp_path, run_id="run1")
    _plant(tmp_path, run_id="thief")
    lock.release()
    assert _lock.holder(tmp_path)["run_id"] == "thief"


def test_lock_stale_taken_over_with_warning(tmp_path):
    pid = _dead_pid()
    _plant(tmp_path, pid=pid, run_id="dead")
    _lock.check_free(tmp_path)  # a stale lock counts as free
    with pytest.warns(StaleLockWarning, match=re.escape(f"run dead, pid {pid} on host")):
        lock = _lock.acquire(tmp_path, run_id="new", what="output 'm.zarr'")
    assert _lock.holder(tmp_path)["run_id"] == "new"
    lock.release()
    assert os.listdir(tmp_path) == []


def test_lock_other_host_never_taken_over(tmp_path):
    _plant(tmp_path, host="elsewhere.example", pid=_dead_pid(), run_id="far")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(OutputLockedError, match=re.escape("(run far, pid ")):
            _lock.acquire(tmp_path, run_id="new")
        with pytest.raises(OutputLockedError, match="on host elsewhere.example"):
            _lock.check_free(tmp_path)
    assert _lock.holder(tmp_path)["run_id"] == "far"


def test_lock_unreadable_file_is_held(tmp_path):
    (tmp_path / _lock.LOCK_NAME).write_text("{trunc")
    with pytest.raises(OutputLockedError, match=re.escape("(its lock file cannot be read)")):
        _lock.acquire(tmp_path, run_id="new")


def test_lock_check_held(tmp_path):
    with pytest.raises(OutputLockedError, match="its lock file .* is gone"):
        _lock.check_held(tmp_path, "run1", what="output 'm.zarr'")
    with _lock.acquire(tmp_path, run_id="run1"):
        _lock.check_held(tmp_path, "run1")
        with pytest.raises(
            OutputLockedError,
            match=re.escape("is no longer locked by run run2 but by another parfit run (run run1"),
        ):
            _lock.check_held(tmp_path, "run2")


def test_errors_pickle():
    err = pickle.loads(pickle.dumps(StoreDamagedError("damaged", [(0, 1)])))
    assert (str(err), err.damaged_blocks) == ("damaged", [(0, 1)])
    err = pickle.loads(pickle.dumps(OutputLockedError("locked")))
    assert isinstance(err, FileExistsError) and str(err) == "locked"


# --- the store ----------------------------------------------------------------------------

import logging  # noqa: E402

import zarr  # noqa: E402

import parfit  # noqa: E402
from parfit import (  # noqa: E402
    Status,
    output,
)
from parfit import fit as fit_module  # noqa: E402
from parfit.analysis import read_result  # noqa: E402
from parfit.datasets import gaussian_cube  # noqa: E402
from parfit.diagnostics import summarize  # noqa: E402
from parfit.engine import execute  # noqa: E402
from parfit.engine.fields import BlockPlace  # noqa: E402
from parfit.engine.sinks import StoreSink, StoreWriter  # noqa: E402
from parfit.errors import InputError, InputTypeError, OutputExistsError  # noqa: E402


@pytest.fixture(scope="module")
def cube():
    return gaussian_cube((30, 4, 6), seed=3)


def fit(cube, data=None, **kwargs):
    kwargs.setdefault("scheduler", "synchronous")
    kwargs.setdefault("chunk_n_max", 6)
    return parfit.parallel_fit(
        cube.model, cube.data if data is None else data, world=cube.world, **kwargs
    )


def maps(result):
    return {
        **{k: v.copy() for k, v in result.parameters.items()},
        "status": result.status.copy(),
        "statistic": result.statistic.copy(),
    }


def assert_same(result, expected):
    got = maps(result)
    for name, values in expected.items():
        np.testing.assert_array_equal(got[name], values, err_msg=name)


def tree(path):
    """Every file under ``path`` with its bytes (to show nothing changed)."""
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


@pytest.fixture
def store(cube, tmp_path):
    """A complete store of 4 blocks of (1, 6) fits, and the maps of that run."""
    path = tmp_path / "maps.zarr"
    res = fit(cube, output=path)
    assert output.block_grid(
        (4, 6), tuple(res.meta and zarr.open_group(str(path)).attrs["parfit"]["chunks"])
    )
    return path, maps(res)


def chunks_of(path):
    return tuple(zarr.open_group(str(path)).attrs["parfit"]["chunks"])


def test_store_layout_has_hashes_and_verifies(store):
    path, _ = store
    assert chunks_of(path) == (1, 6)
    report = output.verify_store(path)
    assert (report.ok, report.damaged_blocks, report.problems) == (True, [], [])
    hashes = output.read_hashes(path)
    assert hashes.shape == (4, 1, 16) and hashes.any(axis=-1).all()
    assert zarr.open_group(str(path)).attrs["parfit"]["complete"] is True
    assert not Path(output.lock_file(path)).exists()


@pytest.mark.parametrize("array", ["mean", "status"])
def test_deleted_chunk_is_refitted_on_resume(cube, store, array, caplog):
    path, expected = store
    (path / array / "c" / "2" / "0").unlink()
    report = output.verify_store(path)
    assert report.damaged_blocks == [(2, 0)] and not report.ok
    reason = (
        "its status chunk is missing"
        if array == "status"
        else "6 fit(s) with status OK have no finite 'mean'"
    )
    assert reason in report.problems[0]
    with caplog.at_level(logging.WARNING, logger="parfit"):
        res = fit(cube, output=path, resume=True)
    assert "block(s) (2, 0) are damaged" in caplog.text
    assert (res.meta["blocks_fitted"], res.meta["blocks_resumed"]) == (1, 3)
    assert_same(res, expected)
    assert output.verify_store(path).ok
    assert zarr.open_group(str(path)).attrs["parfit"]["complete"] is True


def test_all_failed_block_without_parameter_chunks_is_not_damaged(cube, tmp_path):
    data = cube.data.copy()
    data[:, 1, :] = np.nan  # block (1, 0): every fit NO_VALID_DATA
    path = tmp_path / "m.zarr"
    res = fit(cube, data, output=path)
    assert (res.status[1] == Status.NO_VALID_DATA).all()
    assert not (path / "mean" / "c" / "1" / "0").exists()
    assert output.verify_store(path).ok


def test_inspect_reports_damaged(store):
    path, _ = store
    (path / "amplitude" / "c" / "1" / "0").unlink()
    (path / "status" / "c" / "3" / "0").unlink()
    s = summarize(path)
    assert (s.complete, s.damaged_blocks, s.blocks_done) == (False, [(1, 0), (3, 0)], 4)
    text = s.text()
    assert "DAMAGED: the store fails verification (damaged blocks: (1, 0), (3, 0))" in text
    assert "complete: yes" not in text
    d = s.to_dict()
    assert d["damaged_blocks"] == [[1, 0], [3, 0]] and d["complete"] is False
    assert len(d["problems"]) == 2


def test_inspect_json_on_undecodable_chunk(store):
    path, _ = store
    chunk = path / "status" / "c" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:5])
    s = summarize(path)
    assert s.damaged_blocks == [(0, 0)] and s.complete is False
    assert "cannot be decoded" in s.problems[0]
    assert s.status_counts["NOT_RUN"] == 6  # the undecodable chunk reads as not run


def test_read_result_refuses_damaged_unless_allowed(store):
    path, expected = store
    (path / "mean" / "c" / "0" / "0").unlink()
    with pytest.raises(
        StoreDamagedError,
        match=re.escape(
            f"output {str(path)!r} is damaged (block(s) (0, 0)): block (0, 0): 6 fit(s) with "
            f"status OK have no finite 'mean'"
        ),
    ) as info:
        read_result(path)
    assert info.value.damaged_blocks == [(0, 0)]
    with pytest.warns(RuntimeWarning, match=re.escape("is damaged (block(s) (0, 0))")):
        res = read_result(path, allow_damaged=True)
    assert res.meta["complete"] is False and res.meta["damaged_blocks"] == [(0, 0)]
    assert (res.status[0] == Status.NOT_RUN).all() and np.isnan(res.parameters["mean"][0]).all()
    np.testing.assert_array_equal(res.parameters["mean"][1:], expected["mean"][1:])
    with pytest.raises(
        InputTypeError, match=re.escape("allow_damaged must be True or False; got 'yes'")
    ):
        read_result(path, allow_damaged="yes")


def test_truncated_array_metadata_names_the_array(cube, store):
    path, _ = store
    meta = path / "stddev_error" / "zarr.json"
    meta.write_text(meta.read_text()[:40])
    fragment = f"the metadata of array 'stddev_error' ({str(meta)!r}) cannot be read"
    for call in (
        lambda: read_result(path),
        lambda: summarize(path),
        lambda: fit(cube, output=path, resume=True),
    ):
        with pytest.raises(StoreDamagedError, match=re.escape(fragment)):
            call()
    with pytest.raises(StoreDamagedError, match="cannot be read or resumed"):
        read_result(path, allow_damaged=True)


def test_finish_never_marks_a_damaged_store_complete(store, caplog):
    path, _ = store
    (path / "status" / "c" / "1" / "0").unlink()
    with caplog.at_level(logging.WARNING, logger="parfit"):
        assert output.finish(path) is False
    assert "fails verification" in caplog.text
    assert zarr.open_group(str(path)).attrs["parfit"]["complete"] is False


def test_store_locked_by_live_run_is_refused_untouched(cube, store, monkeypatch):
    path, _ = store
    _plant_store(path, run_id="busy")  # our own pid: alive
    before = tree(path)
    for kwargs in (dict(overwrite=True), dict(resume=True)):
        with pytest.raises(
            OutputLockedError,
            match=re.escape(
                f"output {str(path)!r} is in use by another parfit run (run busy, pid "
                f"{os.getpid()} on host {socket.gethostname()}, since 2026-11-28T20:31:00)"
            ),
        ):
            fit(cube, output=path, **kwargs)
    assert tree(path) == before


def test_store_locked_on_another_host_is_not_taken_over(cube, store):
    path, _ = store
    _plant_store(path, host="elsewhere.example", pid=_dead_pid(), run_id="far")
    with pytest.raises(OutputLockedError, match="on host elsewhere.example"):
        fit(cube, output=path, overwrite=True)
    assert _store_holder(path)["run_id"] == "far"


def test_stale_store_lock_taken_over_with_warning(cube, store):
    path, expected = store
    pid = _dead_pid()
    _plant_store(path, pid=pid, run_id="dead")
    with pytest.warns(StaleLockWarning, match=re.escape(f"(run dead, pid {pid} on host")):
        res = fit(cube, output=path, overwrite=True)
    assert_same(res, expected)
    assert _store_holder(path) is None  # released when the run ended


class _Gate:
    """Holds the fits of a run until released, once the store's lock exists."""

    lock_file = None
    started = None
    release = None


def _gated_model():
    from parfit.models import Gaussian1D

    class GatedGaussian(Gaussian1D):
        def _evaluate(self, x, amplitude, mean, stddev):
            if _Gate.lock_file and os.path.exists(_Gate.lock_file):
                _Gate.started.set()
                _Gate.release.wait(30)
            return super()._evaluate(x, amplitude, mean, stddev)

    return GatedGaussian(amplitude=2.0, mean=0.0, stddev=5.0)


def test_two_concurrent_runs_cannot_both_proceed(cube, tmp_path):
    import threading

    path = tmp_path / "m.zarr"
    _Gate.lock_file = output.lock_file(path)
    _Gate.started, _Gate.release = threading.Event(), threading.Event()
    results = {}

    def first():
        try:
            results["first"] = parfit.parallel_fit(
                _gated_model(),
                cube.data,
                world=cube.world,
                output=path,
                scheduler="synchronous",
                chunk_n_max=6,
            )
        except BaseException as exc:  # reported below
            results["first"] = exc

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert _Gate.started.wait(30)
        run_id = _store_holder(path)["run_id"]
        for kwargs in ({}, dict(overwrite=True), dict(resume=True)):
            with pytest.raises(
                OutputLockedError,
                match=re.escape(
                    f"output {str(path)!r} is in use by another parfit run (run {run_id}, pid "
                    f"{os.getpid()} on host {socket.gethostname()}"
                ),
            ):
                fit(cube, output=path, **kwargs)
    finally:
        _Gate.release.set()
        thread.join(60)
        _Gate.lock_file = None
    assert not isinstance(results["first"], BaseException), results["first"]
    assert (results["first"].status == Status.OK).all()
    assert _store_holder(path) is None and output.verify_store(path).ok


@pytest.mark.parametrize("bad", ["false", 0, None, "True"])
def test_overwrite_must_be_a_bool(cube, store, bad):
    path, _ = store
    before = tree(path)
    message = f"overwrite must be True or False; got {bad!r}"
    with pytest.raises(InputTypeError, match=re.escape(message)):
        fit(cube, output=path, overwrite=bad)
    with pytest.raises(InputTypeError, match=re.escape(message)):
        fit_module._check_output(str(path), False, False, False, overwrite=bad)
    assert tree(path) == before
    fit_module._check_output(str(path), False, False, False, overwrite=np.bool_(True))


def test_lock_file_does_not_disturb_readers(cube, store):
    import xarray as xr

    path, expected = store
    _plant_store(path, run_id="reader-test")
    assert output.is_parfit_store(path) and output.store_layout(path) == "streamed"
    with xr.open_zarr(path, consolidated=False) as ds:
        np.testing.assert_array_equal(ds["mean"].values, expected["mean"])
    assert "mean" in set(zarr.open_group(str(path), mode="r").array_keys())
    assert output.verify_store(path).ok
    assert summarize(path).complete is True
    np.testing.assert_array_equal(read_result(path).parameters["mean"], expected["mean"])
    # The resume layout check ignores it too, once the lock is free.
    Path(output.lock_file(path)).unlink()
    _plant_store(path, pid=_dead_pid(), run_id="gone")
    with pytest.warns(StaleLockWarning):
        sink = _plan(cube, path, resume=True, run_id="r2")
        sink.open(lock=True)
    assert sink.done.all() and sink.lock.held()
    sink.close()
    assert not Path(output.lock_file(path)).exists()


def _plan(cube, path, *, overwrite=False, resume=False, run_id="r1", data=None):
    """A StoreSink checked for fitting ``cube`` (as fit() does) into ``path``."""
    from parfit.engine.inputs import normalise_cube, normalise_world
    from parfit.engine.request import FitRequest
    from parfit.fitters import get_fitter

    norm = normalise_cube(
        cube.data if data is None else data,
        weights=None,
        mask=None,
        data_unit=None,
        world=cube.world,
    )
    world = normalise_world(norm.world, norm, (0,))
    fitter = get_fitter(None)
    request = FitRequest(
        cube=norm,
        fitting_axes=(0,),
        model=cube.model,
        fitter=fitter,
        world=world,
        parameters=list(fitter.parameter_arrays(cube.model)),
        block_size=6,
        run_id=run_id,
    )
    return StoreSink.check(
        str(path), request, overwrite=overwrite, resume=resume, cubes=(), chunk_n_max=6
    )


def test_modified_lazy_cube_refused_on_resume(cube, tmp_path):
    import dask.array as da

    path = tmp_path / "m.zarr"
    fit(cube, da.from_array(cube.data, chunks=(30, 2, 3)), output=path)
    changed = cube.data.copy()
    changed[15, 2, 3] += 1.0  # flat index 375: not one of the 9 sampled
    lazy = da.from_array(changed, chunks=(30, 2, 3))
    assert output.input_fingerprint(lazy) == output.input_fingerprint(
        da.from_array(cube.data, chunks=(30, 2, 3))
    )
    before = tree(path)
    with pytest.raises(
        InputError,
        match=re.escape(
            f"resume=True: the input of block(s) (1, 1) differs from what was fitted into "
            f"{str(path)!r} (their input hashes differ)"
        ),
    ):
        fit(cube, lazy, output=path, resume=True)
    assert tree(path) == before
    # The same values in other dask chunks (split along the fitting axis) are the same input.
    res = fit(cube, da.from_array(cube.data, chunks=(10, 2, 3)), output=path, resume=True)
    assert res.meta["blocks_fitted"] == 0


def test_block_without_hash_is_refitted(cube, store, caplog):
    path, expected = store
    (path / output.HASH_NAME / "c" / "1" / "0" / "0").unlink()
    with caplog.at_level(logging.WARNING, logger="parfit"):
        res = fit(cube, output=path, resume=True)
    assert "block(s) (1, 0) are recorded done without an input hash" in caplog.text
    assert res.meta["blocks_fitted"] == 1
    assert_same(res, expected)
    assert output.read_hashes(path).any(axis=-1).all()


def test_writer_refuses_when_lock_names_another_run(cube, tmp_path):
    path = tmp_path / "m.zarr"
    sink = _plan(cube, path, run_id="mine")
    sink.open(lock=True)
    assert sink.writer.lock_run_id == "mine" and _store_holder(path)["run_id"] == "mine"
    packed = np.full((1, 6, 12), np.nan)
    packed[..., 7:] = 0  # status, nfev, n_warnings, reported, flags
    packed[..., 7] = Status.FIT_ERROR
    output.write_block(path, ["amplitude", "mean", "stddev"], packed, (0, 0), (0, 0), run_id="mine")
    assert output.read_done(path)[0, 0]
    Path(output.lock_file(path)).unlink()
    _plant_store(path, run_id="thief")  # the lock was taken over
    before = tree(path)
    with pytest.raises(
        OutputLockedError,
        match=re.escape(
            f"output {str(path)!r} is no longer locked by run mine but by another parfit run "
            f"(run thief,"
        ),
    ):
        output.write_block(
            path, ["amplitude", "mean", "stddev"], packed, (1, 0), (1, 0), run_id="mine"
        )
    # The block task refuses before fitting anything.
    with pytest.raises(OutputLockedError, match="no longer locked by run mine"):
        execute.run_block(
            {"data": cube.data[:, 1:2, :]},
            None,
            BlockPlace(index=(1, 0), offsets=(1, 0), shape=(1, 12)),
            StoreWriter(path=str(path), lock_run_id="mine", order=(0, 1, 2)),
        )
    assert tree(path) == before
    sink.close()  # releases only its own lock
    assert _store_holder(path)["run_id"] == "thief"


def test_check_store_changes_nothing(cube, store):
    path, _ = store
    (path / "mean" / "c" / "3" / "0").unlink()
    before = tree(path)
    plan = _plan(cube, path, resume=True).plan
    assert (plan.action, plan.damaged, plan.done[3, 0]) == ("resume", [(3, 0)], False)
    assert output.read_done(path)[3, 0]  # still recorded on disk
    plan2 = _plan(cube, path, overwrite=True)
    assert plan2.plan.action == "replace"
    assert tree(path) == before and not Path(output.lock_file(path)).exists()
    with pytest.raises(
        OutputExistsError,
        match=re.escape(f"output {str(path)!r} already exists; pass overwrite=True"),
    ):
        _plan(cube, path)
    # Acting on the replace plan: the old store goes, the lock stays until closed.
    plan2.open(lock=True)
    assert not output.read_done(path).any() and plan2.lock.held()
    plan2.close()
    assert not Path(output.lock_file(path)).exists()


def test_open_store_rechecks_under_the_lock(cube, tmp_path):
    path = tmp_path / "m.zarr"
    plan = _plan(cube, path)  # nothing there yet: create
    other = _plan(cube, path, run_id="other")
    other.open(lock=True)  # another run got there
    other.close()
    before = tree(path)
    with pytest.raises(
        OutputExistsError,
        match=re.escape(
            f"output {str(path)!r} was changed by another run after this call checked it"
        ),
    ):
        plan.open(lock=True)
    assert tree(path) == before and not Path(output.lock_file(path)).exists()


# --- writes handed to a thread of this process ------------------------------------------


def test_write_queue_runs_jobs_in_order_and_stops_after_a_failure():
    from parfit.engine.deferred import WriteQueue

    done = []
    queue = WriteQueue(limit=2)
    for k in range(5):
        queue.submit(lambda k=k: done.append(k))
    queue.wait()
    assert done == [0, 1, 2, 3, 4]

    done.clear()
    queue = WriteQueue()
    queue.submit(lambda: done.append("create"))
    queue.submit(lambda: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        # Skipped if queued before the failure, refused at once if after it.
        queue.submit(lambda: done.append("after"))
        queue.wait()
    assert done == ["create"]
    with pytest.raises(OSError, match="disk full"):
        queue.raise_failure()
    queue.drain()  # whatever failed, drain waits and does not raise


@pytest.mark.parametrize("scheduler", ["threads", "synchronous"])
def test_in_process_run_queues_creation_and_writes(cube, tmp_path, scheduler):
    path = tmp_path / "m.zarr"
    res = fit(cube, output=path, scheduler=scheduler)
    assert_same(res, maps(fit(cube, scheduler=scheduler)))
    assert output.read_done(path).all() and output.verify_store(path).ok
    assert zarr.open_group(str(path)).attrs["parfit"]["complete"] is True
    assert zarr.open_group(str(path)).attrs["parfit"]["input_fingerprint"]
    assert zarr.open_array(str(path / output.HASH_NAME)).attrs["algorithm"] == "sha256"
    assert not Path(output.lock_file(path)).exists()


def test_failed_creation_in_the_background_is_raised_and_cleaned_up(cube, tmp_path, monkeypatch):
    from parfit.store import writer

    def broken(*args, **kwargs):
        Path(args[0]).mkdir(parents=True)
        (Path(args[0]) / "zarr.json").write_text("{}")  # half made
        raise OSError("no space left on device")

    monkeypatch.setattr(writer, "create_output", broken)
    path = tmp_path / "m.zarr"
    with pytest.raises(OSError, match="no space left on device"):
        fit(cube, output=path, scheduler="threads")
    assert not path.exists() and not Path(output.lock_file(path)).exists()


def test_changed_in_memory_cube_is_refused_before_dispatch(cube, store):
    path, _ = store
    changed = cube.data.copy()
    changed[7, 2, 4] += 1e-9  # one value, not one the fingerprint samples
    assert output.input_fingerprint(changed, exact=False) == output.input_fingerprint(
        cube.data, exact=False
    )
    before = tree(path)

    def never(*args, **kwargs):
        raise AssertionError("dispatched")

    with pytest.raises(
        InputError,
        match=re.escape("resume=True: the input of block(s) (2, 0) differs from what was fitted"),
    ):
        fit(cube, changed, output=path, resume=True, scheduler=never)
    assert tree(path) == before


def test_store_from_before_the_hash_algorithm_was_recorded_resumes(cube, store):
    """A store whose hash array names no algorithm holds BLAKE2b digests (the old hash)."""
    path, expected = store
    hashes = zarr.open_array(str(path / output.HASH_NAME), mode="r+")
    attrs = dict(hashes.attrs)
    del attrs["algorithm"]
    hashes.attrs.clear()
    with pytest.raises(InputError, match=re.escape("their input hashes differ")):
        fit(cube, output=path, resume=True)  # SHA-256 digests read as BLAKE2b
    for b in range(4):
        block = np.ascontiguousarray(cube.data[:, b : b + 1, :])
        hashes[b, 0] = output.hash_block(block, algorithm="blake2b")
    res = fit(cube, output=path, resume=True)
    assert res.meta["blocks_fitted"] == 0
    assert_same(res, expected)
    with pytest.raises(ValueError, match="algorithm: expected 'sha256' or 'blake2b', got 'md5'"):
        output.hash_block(block, algorithm="md5")
