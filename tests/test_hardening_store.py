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

import numpy as np
import pytest

from parfit import _lock
from parfit.errors import OutputLockedError, StaleLockWarning, StoreDamagedError


def _dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(directory, **info):
    base = dict(host=socket.gethostname(), pid=os.getpid(), run_id="other",
                created="2026-11-28T20:31:00", what="x")
    base.update(info)
    (directory / _lock.LOCK_NAME).write_text(json.dumps(base))


# --- the lock ---------------------------------------------------------------------------

def test_lock_second_acquire_refused_naming_holder(tmp_path):
    with _lock.acquire(tmp_path, run_id="run1", what="output 'm.zarr'") as lock:
        assert lock.held()
        info = _lock.holder(tmp_path)
        assert (info["run_id"], info["pid"], info["host"]) == (
            "run1", os.getpid(), socket.gethostname())
        expected = (f"output 'm.zarr' is in use by another parfit run (run run1, pid "
                    f"{os.getpid()} on host {socket.gethostname()}, since {info['created']}); "
                    f"wait for it to finish, or remove {tmp_path / _lock.LOCK_NAME} if that "
                    f"run is gone")
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
        with pytest.raises(OutputLockedError, match=re.escape(
                "is no longer locked by run run2 but by another parfit run (run run1")):
            _lock.check_held(tmp_path, "run2")


def test_errors_pickle():
    err = pickle.loads(pickle.dumps(StoreDamagedError("damaged", [(0, 1)])))
    assert (str(err), err.damaged_blocks) == ("damaged", [(0, 1)])
    err = pickle.loads(pickle.dumps(OutputLockedError("locked")))
    assert isinstance(err, FileExistsError) and str(err) == "locked"
