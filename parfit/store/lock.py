"""One writer per directory: an advisory lock file.

A parfit run that writes into a directory (an output store, a diagnostics
folder) first creates the lock file ``.parfit.lock`` inside it, atomically
(``O_CREAT | O_EXCL``: of two runs, exactly one creates it).  The file holds
JSON ``{host, pid, run_id, created, what}``: who holds the directory, since
when, and what it is.  A second run is refused with
:class:`~parfit.errors.OutputLockedError` naming the holder.

The lock is advisory: it guards parfit against parfit, not against other
programs.  It is released by the run that holds it (:meth:`Lock.release`,
or leaving a ``with`` block), which removes the file only while it still
names that run.  A lock left by a process that died is *stale*: when its
host is this host and its pid is no longer alive, the next run takes it over
with a :class:`~parfit.errors.StaleLockWarning` naming the dead holder.  A
lock from another host is never taken over (this host cannot tell whether
that process lives); the message says which file to remove.

zarr 3 warns (``ZarrUserWarning``) about every file it does not know in a
group's directory, so the lock of a zarr store is not inside it but beside
it, ``<store>.parfit.lock`` (every function here takes ``lock_file=``).

Examples
--------
>>> import tempfile
>>> from parfit.store import lock as _lock
>>> folder = tempfile.mkdtemp()
>>> with _lock.acquire(folder, run_id="abc", what="output 'maps.zarr'") as lock:
...     _lock.holder(folder)["run_id"]
'abc'
>>> _lock.holder(folder) is None
True
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from parfit.errors import OutputLockedError, StaleLockWarning

__all__ = ["LOCK_NAME", "Lock", "acquire", "holder", "check_free", "check_held"]

#: Name of the lock file inside the locked directory.
LOCK_NAME = ".parfit.lock"


@dataclass
class Lock:
    """A held lock: the lock file at ``path``, naming ``run_id``.

    Use :func:`acquire` to take one.  :meth:`release` (or leaving a ``with``
    block) removes the file if it still names ``run_id``; releasing twice
    is harmless.
    """

    path: str
    run_id: str
    info: dict[str, Any]

    def held(self) -> bool:
        """True while the lock file still names this lock's run."""
        info = _read(self.path)
        return isinstance(info, dict) and info.get("run_id") == self.run_id

    def release(self) -> None:
        """Remove the lock file if it still names this run (else leave it)."""
        if self.held():
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        self.release()
        return False


def _lock_path(
    directory: os.PathLike[str] | str, lock_file: os.PathLike[str] | str | None = None
) -> str:
    if lock_file is not None:
        return os.path.abspath(os.fspath(lock_file))
    return os.path.join(os.path.abspath(os.fspath(directory)), LOCK_NAME)


def _read(path: str) -> dict[str, Any] | None:
    """The lock file's JSON as a dict; None if there is none; ``{}`` if it is unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        info = json.loads(text)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def holder(
    directory: os.PathLike[str] | str, *, lock_file: os.PathLike[str] | str | None = None
) -> dict[str, Any] | None:
    """Who holds ``directory``'s lock: its JSON as a dict, or None when unlocked.

    An unreadable lock file (cut short, not JSON) gives ``{}``: held, by
    someone unknown.
    """
    return _read(_lock_path(directory, lock_file))


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError, TypeError):
        return True  # alive under another user, or not a pid we can judge: assume held
    except OSError:
        return True
    return True


def _is_stale(info: dict[str, Any]) -> bool:
    """True for a lock left by a dead process of this host."""
    if not info or info.get("host") != socket.gethostname():
        return False
    pid = info.get("pid")
    return isinstance(pid, int) and pid != os.getpid() and not _pid_alive(pid)


def _describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "its lock file cannot be read"
    return (
        f"run {info.get('run_id')}, pid {info.get('pid')} on host {info.get('host')}, "
        f"since {info.get('created')}"
    )


def _locked_error(what: str, path: str, info: dict[str, Any] | None) -> OutputLockedError:
    return OutputLockedError(
        f"{what} is in use by another parfit run ({_describe(info)}); wait for it to "
        f"finish, or remove {path} if that run is gone"
    )


def _what(directory: os.PathLike[str] | str, what: str | None) -> str:
    return what if what is not None else repr(os.path.abspath(os.fspath(directory)))


def check_free(
    directory: os.PathLike[str] | str,
    *,
    what: str | None = None,
    lock_file: os.PathLike[str] | str | None = None,
) -> None:
    """Raise if ``directory`` is locked by a live run; create nothing.

    A stale lock (a dead process of this host) counts as free: :func:`acquire`
    will take it over.  A missing ``directory`` is free.

    Parameters
    ----------
    directory : path-like
    what : str, optional
        How messages name the directory, e.g. ``"output '/x/maps.zarr'"``.
    lock_file : path-like, optional
        The lock file to use instead of ``directory/.parfit.lock`` (a zarr
        store's lock lies beside it: zarr warns about unknown files in a
        group).  The same keyword is taken by every function here.

    Raises
    ------
    OutputLockedError
        Another live run (or a run on another host) holds the lock.
    """
    path = _lock_path(directory, lock_file)
    info = _read(path)
    if info is not None and not _is_stale(info):
        raise _locked_error(_what(directory, what), path, info)


def check_held(
    directory: os.PathLike[str] | str,
    run_id: str,
    *,
    what: str | None = None,
    lock_file: os.PathLike[str] | str | None = None,
) -> None:
    """Raise unless ``directory``'s lock file names ``run_id`` (cheap: one small read).

    A writer calls this before each write, so that a worker of a run whose
    lock was taken over (or released) never writes into another run's
    directory.

    Raises
    ------
    OutputLockedError
        The lock is missing or names another run.
    """
    path = _lock_path(directory, lock_file)
    info = _read(path)
    if isinstance(info, dict) and info.get("run_id") == run_id:
        return
    what = _what(directory, what)
    if info is None:
        raise OutputLockedError(
            f"{what} is no longer locked by run {run_id} (its lock file {path} is gone); "
            f"this run refuses to write into it"
        )
    raise OutputLockedError(
        f"{what} is no longer locked by run {run_id} but by another parfit run "
        f"({_describe(info)}); this run refuses to write into it"
    )


def acquire(
    directory: os.PathLike[str] | str,
    *,
    run_id: str,
    what: str | None = None,
    lock_file: os.PathLike[str] | str | None = None,
) -> Lock:
    """Lock ``directory`` (which must exist) for ``run_id``.

    Parameters
    ----------
    directory : path-like
        An existing directory; the lock file ``.parfit.lock`` is created in it
        (unless ``lock_file`` names another, whose folder must exist).
    run_id : str
        The run taking the lock; :func:`check_held` compares against it.
    what : str, optional
        How messages name the directory (stored in the lock file too).
    lock_file : path-like, optional
        See :func:`check_free`.

    Returns
    -------
    Lock

    Raises
    ------
    OutputLockedError
        The directory is held by a live run, or by a run on another host.

    Warns
    -----
    StaleLockWarning
        The lock of a dead process of this host was taken over.
    """
    path = _lock_path(directory, lock_file)
    what = _what(directory, what)
    info = dict(
        host=socket.gethostname(),
        pid=os.getpid(),
        run_id=str(run_id),
        created=datetime.datetime.now().isoformat(timespec="seconds"),
        what=what,
    )
    text = json.dumps(info).encode()
    for _attempt in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = _read(path)
            if held is None:
                continue  # released meanwhile: try again
            if not _is_stale(held):
                raise _locked_error(what, path, held) from None
            _take_over(path, held, what, run_id)
            continue
        try:
            os.write(fd, text)
            os.fsync(fd)
        finally:
            os.close(fd)
        return Lock(path=path, run_id=str(run_id), info=info)
    raise _locked_error(what, path, _read(path))


def _take_over(path: str, held: dict[str, Any], what: str, run_id: str) -> None:
    """Move a stale lock aside (only if it is still the stale one) and warn."""
    aside = f"{path}.stale-{run_id}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another run moved it first
    if _read(aside) != held:
        # Another run replaced the stale lock between our read and the rename: put it back.
        try:
            os.link(aside, path)
        except OSError:
            pass
        current = _read(aside)
        Path(aside).unlink(missing_ok=True)
        raise _locked_error(what, path, current)
    Path(aside).unlink(missing_ok=True)
    warnings.warn(
        f"{what}: took over the lock of a parfit run that is gone ({_describe(held)}; "
        f"that process no longer exists)",
        StaleLockWarning,
        stacklevel=3,
    )
