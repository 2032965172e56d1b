"""Per-fit diagnostics folders.

With ``diagnostics="error"``, ``"error+warn"`` or ``"all"``,
:func:`parfit.parallel_fit` writes one folder per reported fit under
``diagnostics_path``, named by the zero-padded indices of the fit along the
non-fitting axes (astropy's scheme, e.g. ``03_17``).  A folder holds

* ``error.log`` - why the fit failed (the full traceback for exceptions),
* ``warn.log`` - the warnings raised during that fit, one per line,
* ``callable_error.log`` - the traceback if ``diagnostics_callable`` raised,
* whatever ``diagnostics_callable`` wrote,
* ``.parfit`` - a marker naming the run that created the folder.

When the run ends, ``manifest.csv`` lists every folder this run wrote (with
the fit's indices, status, number of warnings and quality flags, as a number
and as names), so folders from earlier runs can never be mistaken for new
ones.  A path that
holds another run's manifest or folders is refused unless
``overwrite=True``; overwriting removes only folders carrying parfit's marker.
"""

import csv
import dataclasses
import math
import os
import shutil
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from parfit.errors import InputError, InputTypeError, OutputExistsError
from parfit.status import NOT_ATTEMPTED, Status, flag_names

__all__ = [
    "DIAGNOSTICS_MODES",
    "MANIFEST_NAME",
    "MARKER_NAME",
    "DiagnosticsPlan",
    "check_diagnostics_args",
    "check_diagnostics_path",
    "open_diagnostics_path",
    "prepare_diagnostics_path",
    "folder_name",
    "report_mode",
    "write_fit_folder",
    "write_manifest",
    "read_manifest",
]

DIAGNOSTICS_MODES = (None, "error", "error+warn", "all")
MANIFEST_NAME = "manifest.csv"
MARKER_NAME = ".parfit"
MANIFEST_COLUMNS = (
    "folder",
    "indices",
    "status",
    "status_name",
    "n_warnings",
    "run_id",
    "flags",
    "flag_names",
)


def check_diagnostics_args(
    diagnostics: str | None,
    diagnostics_path: str | os.PathLike | None,
    diagnostics_callable: Callable | None,
) -> None:
    """Validate the diagnostics arguments of ``parallel_fit`` (nothing on disk)."""
    if diagnostics not in DIAGNOSTICS_MODES:
        raise InputError(
            f"diagnostics must be None, 'error', 'error+warn' or 'all'; got {diagnostics!r}"
        )
    if diagnostics_path is not None:
        if not isinstance(diagnostics_path, (str, os.PathLike)):
            raise InputTypeError(
                f"diagnostics_path must be a folder path (str or os.PathLike); got "
                f"{type(diagnostics_path).__name__}"
            )
        if os.fspath(diagnostics_path) in ("", b""):
            raise InputError(
                "diagnostics_path is empty; give the folder to write the per-fit folders to "
                "(use '.' for the current directory)"
            )
    if diagnostics is not None and diagnostics_path is None:
        raise InputError(
            f"diagnostics={diagnostics!r} needs diagnostics_path, the folder to write the "
            f"per-fit folders to"
        )
    if diagnostics_callable is not None and not callable(diagnostics_callable):
        raise InputError(
            f"diagnostics_callable must be callable; got {type(diagnostics_callable).__name__}"
        )


@dataclasses.dataclass
class DiagnosticsPlan:
    """What :func:`open_diagnostics_path` will do, decided by :func:`check_diagnostics_path`."""

    path: Path
    #: Folders of earlier runs to remove (each carries parfit's marker).
    remove: list[Path]
    #: Whether the earlier run's ``manifest.csv`` is to be removed.
    remove_manifest: bool


def check_diagnostics_path(
    path: str | os.PathLike, *, overwrite: bool = False, run_id: str | None = None
) -> DiagnosticsPlan:
    """Check that ``path`` can take this run's diagnostics; change nothing on disk.

    With ``run_id`` (a resumed run), folders written by that same run are
    kept and its manifest will be rewritten.

    Returns
    -------
    DiagnosticsPlan
        For :func:`open_diagnostics_path`.

    Raises
    ------
    InputError
        ``path`` is not a folder, cannot be created or is not writable.
    OutputExistsError
        ``path`` holds a manifest or parfit folders of another run and
        ``overwrite`` is False, or a ``manifest.csv`` that parfit did not
        write (never replaced).
    parfit.errors.OutputLockedError
        Another parfit run is writing to ``path``.
    """
    from parfit.store import lock as _lock

    path = Path(os.path.abspath(path))
    if path.exists() and not path.is_dir():
        raise InputError(f"diagnostics_path {str(path)!r} exists and is not a directory")
    _check_writable(path)
    if not path.exists():
        return DiagnosticsPlan(path, [], False)
    _lock.check_free(path, what=f"diagnostics_path {str(path)!r}")
    manifest = path / MANIFEST_NAME
    if manifest.exists() and not _is_our_manifest(manifest):
        raise OutputExistsError(
            f"diagnostics_path {str(path)!r} holds a {MANIFEST_NAME} that parfit did not "
            f"write; parfit never replaces files it did not create; choose another "
            f"diagnostics_path"
        )
    ours = [p for p in path.iterdir() if p.is_dir() and (p / MARKER_NAME).is_file()]
    keep_manifest = False
    if run_id is not None:
        ours = [p for p in ours if (p / MARKER_NAME).read_text().strip() != run_id]
        if manifest.exists() and all(row["run_id"] == run_id for row in read_manifest(path)):
            keep_manifest = True  # the resumed run's own: rewritten at its end
    if (not manifest.exists() or keep_manifest) and not ours:
        return DiagnosticsPlan(path, [], False)
    if not overwrite:
        raise OutputExistsError(
            f"diagnostics_path {str(path)!r} already holds diagnostics of another run "
            f"({MANIFEST_NAME if manifest.exists() else 'parfit folders'}); pass "
            f"overwrite=True to replace them, or choose another diagnostics_path"
        )
    return DiagnosticsPlan(path, ours, manifest.exists())


def open_diagnostics_path(plan: DiagnosticsPlan, *, run_id: str) -> Any:
    """Create the folder, take its lock and remove what the plan says.

    Returns
    -------
    parfit.store.lock.Lock
        Held for the run; release it when the run ends.
    """
    from parfit.store import lock as _lock

    plan.path.mkdir(parents=True, exist_ok=True)
    lock = _lock.acquire(plan.path, run_id=run_id, what=f"diagnostics_path {str(plan.path)!r}")
    try:
        for folder in plan.remove:
            if (folder / MARKER_NAME).is_file():  # still parfit's
                shutil.rmtree(folder)
        manifest = plan.path / MANIFEST_NAME
        if plan.remove_manifest and manifest.exists() and _is_our_manifest(manifest):
            manifest.unlink()
    except BaseException:
        lock.release()
        raise
    return lock


def prepare_diagnostics_path(
    path: str | os.PathLike, *, overwrite: bool = False, run_id: str | None = None
) -> Any:
    """Check ``path`` (:func:`check_diagnostics_path`), then open it; return the lock."""
    plan = check_diagnostics_path(path, overwrite=overwrite, run_id=run_id)
    return open_diagnostics_path(plan, run_id=run_id or "unknown")


def _check_writable(path: Path) -> None:
    """Refuse a folder that cannot be created or written, without creating it."""
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(
            f"diagnostics_path {str(path)!r} cannot be created: {str(existing)!r} is not a "
            f"directory"
        )
    if not os.access(existing, os.W_OK | os.X_OK) or not _can_create_in(existing):
        what = (
            "is not writable"
            if existing == path
            else (f"cannot be created: {str(existing)!r} is not writable")
        )
        raise InputError(f"diagnostics_path {str(path)!r} {what}; choose a folder you can write to")


def _can_create_in(folder: Path) -> bool:
    """Whether a folder can be made in ``folder`` (made and removed at once).

    Permission bits do not tell the whole story (a read-only file system, a
    privileged user, a pseudo file system), so this tries.
    """
    probe = folder / f".parfit-probe-{uuid.uuid4().hex}"
    try:
        probe.mkdir()
    except OSError:
        return False
    probe.rmdir()
    return True


def _is_our_manifest(manifest: Path) -> bool:
    """True if ``manifest`` starts with the header parfit writes."""
    try:
        with open(manifest, newline="") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return header is not None and tuple(header[:6]) == MANIFEST_COLUMNS[:6]


def folder_name(index: Sequence[int], iterating_shape: Sequence[int]) -> str:
    """Astropy's folder name: zero-padded indices joined by ``_``.

    A single fit (no iterating axes) has the folder ``fit``.

    Examples
    --------
    >>> from parfit.diagnostics import folder_name
    >>> folder_name((3, 17), (40, 20))
    '03_17'
    >>> folder_name((), ())
    'fit'
    """
    if len(iterating_shape) == 0:
        return "fit"
    width = math.ceil(math.log10(max(iterating_shape))) if max(iterating_shape) > 0 else 0
    return "_".join(f"{int(i):0{width}d}" for i in index)


def report_mode(diagnostics: str | None, status: Any, n_warnings: Any) -> np.ndarray:
    """True where a fit gets a folder under ``diagnostics``.

    Fits without any valid sample are never reported (as in astropy), nor
    fits skipped by ``min_snr`` or left out of a refit pass (never attempted).
    """
    status = np.asarray(status)
    attempted = ~np.isin(status, NOT_ATTEMPTED)
    failed = (status != Status.OK) & attempted
    if diagnostics is None:
        return np.zeros(status.shape, dtype=bool)
    if diagnostics == "error":
        return failed
    if diagnostics == "error+warn":
        return failed | ((np.asarray(n_warnings) > 0) & attempted)
    return attempted


def write_fit_folder(
    path: str | os.PathLike,
    name: str,
    run_id: str,
    *,
    message: str | None = None,
    warnings: Sequence[str] | None = None,
    callable_: Callable | None = None,
    callable_args: tuple = (),
) -> None:
    """Write one fit's folder; never raises because of the user callable.

    Raises
    ------
    parfit.errors.OutputLockedError
        ``path`` is no longer locked by ``run_id`` (its run ended or was
        taken over): nothing is written.
    """
    from parfit.store import lock as _lock

    _lock.check_held(path, run_id, what=f"diagnostics_path {str(path)!r}")
    folder = Path(path) / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER_NAME).write_text(f"{run_id}\n")
    if message:
        (folder / "error.log").write_text(message if message.endswith("\n") else message + "\n")
    if warnings:
        (folder / "warn.log").write_text("".join(f"{w}\n" for w in warnings))
    if callable_ is not None:
        try:
            callable_(folder, *callable_args)
        except KeyboardInterrupt:
            raise
        except BaseException:  # the user callable must never stop the run (Ctrl-C does)
            (folder / "callable_error.log").write_text(traceback.format_exc())


def write_manifest(path: str | os.PathLike, rows: Iterable[Sequence], run_id: str) -> None:
    """Write ``manifest.csv`` listing this run's folders.

    ``rows`` is an iterable of ``(folder, indices, status, n_warnings)`` or
    ``(folder, indices, status, n_warnings, flags)``, ``flags`` being the
    fit's :class:`~parfit.status.Flag` bits (0 when not given).  The
    manifest holds the bits in ``flags`` and their names, separated by
    spaces, in ``flag_names`` (empty when none is set).
    """
    path = Path(path)
    tmp = path / (MANIFEST_NAME + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(MANIFEST_COLUMNS)
        for folder, indices, status, n_warnings, *flags in rows:
            bits = int(flags[0]) if flags else 0
            writer.writerow(
                [
                    folder,
                    " ".join(str(int(i)) for i in indices),
                    int(status),
                    Status(int(status)).name,
                    int(n_warnings),
                    run_id,
                    bits,
                    " ".join(flag_names(bits)),
                ]
            )
    os.replace(tmp, path / MANIFEST_NAME)


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read ``manifest.csv`` of a diagnostics folder as a list of dicts."""
    with open(Path(path) / MANIFEST_NAME, newline="") as fh:
        return list(csv.DictReader(fh))
