"""What a path on disk holds, for :mod:`parfit.diagnostics.summary` and
:mod:`parfit.diagnostics.plots`.

A path given to :func:`~parfit.diagnostics.summarize` or
:func:`~parfit.diagnostics.plot_maps` is one of

* a *diagnostics folder* (``diagnostics_path`` of a run), holding
  ``manifest.csv``;
* an *analysis folder*, holding ``run.json`` and ``maps.zarr``;
* an *output store*, either the zarr store streamed by
  ``parallel_fit(..., output="maps.zarr")`` (layout ``"streamed"``) or the one
  written by :meth:`parfit.FitResult.to_zarr` (layout ``"xarray"``);
* a *selection folder*, the output folder of a per-pixel model selection
  (``parallel_fit(model=[...], select=..., output=...)``), holding
  ``selection.zarr`` and ``candidate_<k>.zarr``; an analysis folder of a
  ``select`` config holds them in place of ``maps.zarr``.

Nothing here changes what it reads.
"""

import json
from pathlib import Path
from typing import Any

from parfit.diagnostics.folders import MANIFEST_NAME
from parfit.errors import InputError
from parfit.store.layout import is_parfit_store, is_selection_folder, store_layout
from parfit.store.reader import damaged_error, verify_store

__all__ = ["EXPECTED", "RUN_NAME", "MAPS_NAME", "path_kind", "read_run", "maps_path", "map_dims"]

#: What a path may be, in words (for messages).
EXPECTED = (
    "a parfit output store (zarr), an analysis folder with run.json, or a "
    "diagnostics folder with manifest.csv"
)
#: The run record of an analysis folder.
RUN_NAME = "run.json"
#: The maps store of an analysis folder.
MAPS_NAME = "maps.zarr"


def path_kind(path: Path, caller: str) -> str:
    """What ``path`` is: ``"diagnostics"``, ``"analysis"``, ``"selection"``, ``"streamed"``
    or ``"xarray"``.

    The last two are the layouts of an output store; an analysis folder of a
    model selection holds the stores of a selection folder.  ``caller`` starts the
    messages of the errors.

    Raises
    ------
    InputError
        ``path`` does not exist or is none of these.
    parfit.errors.StoreDamagedError
        ``path`` is a parfit store that cannot be read.
    """
    if not path.exists():
        raise InputError(f"{caller}: {str(path)!r} does not exist; expected {EXPECTED}")
    if path.is_dir():
        if (path / MANIFEST_NAME).is_file():
            return "diagnostics"
        if (path / RUN_NAME).is_file():
            if not (path / MAPS_NAME).is_dir() and not is_selection_folder(path):
                run = read_run(path) or {}
                ended = run.get("exit_status", "unknown")
                why = f" ({run['error']})" if run.get("error") else ""
                raise InputError(
                    f"{caller}: {str(path)!r} holds the record of a run that wrote no maps "
                    f"(exit status {ended}{why}); an analysis folder holds run.json and "
                    f"maps.zarr"
                )
            return "analysis"
        if is_selection_folder(path):
            return "selection"
        layout = store_layout(path)
        if layout is not None:
            return layout
        if is_parfit_store(path):  # parfit's, but unreadable: say why
            report = verify_store(path)
            if not report.ok:
                raise damaged_error(report)
        if (path / MAPS_NAME).is_dir() and store_layout(path / MAPS_NAME) is not None:
            raise InputError(
                f"{caller}: {str(path)!r} is not {EXPECTED}; the maps it holds "
                f"are {str(path / MAPS_NAME)!r}"
            )
    raise InputError(f"{caller}: {str(path)!r} is not {EXPECTED}")


def read_run(path: Path) -> dict[str, Any]:
    """``run.json`` of the analysis folder ``path``, as a dict.

    Raises
    ------
    InputError
        The file cannot be read or does not hold a JSON object.
    """
    try:
        run = json.loads((path / RUN_NAME).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"summarize: cannot read {str(path / RUN_NAME)!r}: {exc}") from None
    if not isinstance(run, dict):
        raise InputError(f"summarize: {str(path / RUN_NAME)!r} does not hold a JSON object")
    return run


def maps_path(path: str | Path, caller: str) -> Path:
    """The store holding the maps of ``path``: the store itself, or an analysis folder's.

    A selection folder (or the analysis folder of a model selection) is
    itself returned: its maps are in several stores.

    Raises
    ------
    InputError
        ``path`` is a diagnostics folder (no maps there), or none of the kinds.
    """
    path = Path(path)
    kind = path_kind(path, caller)
    if kind == "diagnostics":
        raise InputError(
            f"{caller}: {str(path)!r} is a diagnostics folder, which holds no maps; give the "
            f"output store (zarr) or the analysis folder of the run"
        )
    if kind == "analysis" and not (path / MAPS_NAME).is_dir():
        return path  # a model selection's
    return path / MAPS_NAME if kind == "analysis" else path


def map_dims(array: Any) -> tuple[str, ...] | None:
    """The dimension names of a zarr array of maps, where recorded (zarr 3 or xarray's)."""
    names = getattr(getattr(array, "metadata", None), "dimension_names", None)
    if names is None:
        names = dict(array.attrs).get("_ARRAY_DIMENSIONS")
    return tuple(names) if names is not None else None
