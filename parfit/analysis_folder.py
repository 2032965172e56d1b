"""An analysis folder on disk: the names of its files, which of them are parfit's, run.json.

The folder (``output.path`` of a config) holds ``config.yaml`` (the config
as run), ``run.json`` (the run record), the maps (``maps.zarr``; a model
selection's ``candidate_<k>.zarr`` and ``selection.zarr``), the exports
(``maps.nc``, ``maps.fits``) and the diagnostics.
:class:`parfit.analysis.Analysis` writes and reads it through these names
and helpers; :func:`foreign_files` says which files of those names parfit
did not write (it never replaces them).
"""

import datetime
import json
import math
import os
from pathlib import Path

import numpy as np

from parfit.status import Status, flag_counts
from parfit.store.layout import SELECTION_STORE, candidate_store, store_layout

__all__ = [
    "CONFIG_NAME",
    "RUN_RECORD",
    "MAPS_NAME",
    "EXPORTS",
    "CONFIG_HEADER",
    "status_and_flag_counts",
    "candidate_stores",
    "starts_record",
    "selection_record",
    "dataset_fingerprint",
    "foreign_files",
    "is_selection_store",
    "now",
    "write_json",
]

#: The files of an analysis folder.
CONFIG_NAME = "config.yaml"
RUN_RECORD = "run.json"
MAPS_NAME = "maps.zarr"
EXPORTS = {"netcdf": "maps.nc", "fits": "maps.fits"}


def status_and_flag_counts(result):
    """``({Status: count}, {Flag: count})`` of a FitResult or of a selection's chosen fits."""
    if hasattr(result, "status_counts"):
        return result.status_counts(), result.flag_counts()
    codes, n = np.unique(np.asarray(result.status), return_counts=True)
    return {Status(int(c)): int(k) for c, k in zip(codes, n)}, flag_counts(result.flags)


def candidate_stores(folder):
    """The names of the ``candidate_<k>.zarr`` stores in ``folder``, in order of ``k``."""
    names, k = [], 0
    while (Path(folder) / candidate_store(k)).exists():
        names.append(candidate_store(k))
        k += 1
    return names


def starts_record(run):
    """What ``run.json`` keeps of a run's mean-spectrum start and neighbour refits."""
    out = {}
    if run.mean_start:
        out["mean_start"] = run.mean_start
    if run.refit:
        out["refit"] = list(run.refit)
    return out


def selection_record(section, result, provenances):
    """What ``run.json`` keeps of a model selection: the choice and each candidate."""
    counts = result.counts()
    return {
        "criterion": result.criterion,
        "threshold": result.threshold,
        "store": SELECTION_STORE,
        "no_candidate": counts.get(-1, 0),
        "candidates": [
            {
                "store": candidate_store(k),
                "model": " + ".join(c.type for c in section.candidates[k].components),
                "n_free": result.n_free[k],
                "chosen": counts.get(k, 0),
                "run_id": prov.get("run_id"),
                "complete": bool(prov.get("complete")),
                **starts_record(fit.run),
            }
            for k, (fit, prov) in enumerate(zip(result.candidates, provenances))
        ],
    }


def dataset_fingerprint(opened):
    """The fingerprint of one dataset's cube, weights and mask (sampled: cheap on disk).

    As the store's whole-input fingerprint samples a cube
    (:func:`parfit.store.input_fingerprint`), with the fitting axes and unit.
    """
    from .store import input_fingerprint

    data = getattr(opened["data"], "data", opened["data"])
    extras = (opened["weights"], opened["mask"], repr(opened["fitting_axes"]))
    unit = opened["data_unit"] or getattr(opened["data"], "unit", None)
    return input_fingerprint(data, (*extras, str(unit)), exact=False)


CONFIG_HEADER = "# parfit analysis config as run (defaults filled in, paths absolute)\n"


def foreign_files(out):
    """The files of an analysis folder's names in ``out`` that parfit did not write."""
    foreign = []
    record = None
    if (out / RUN_RECORD).exists():
        try:
            record = json.loads((out / RUN_RECORD).read_text())
        except (OSError, ValueError):
            record = None
        if not isinstance(record, dict) or "parfit_version" not in record:
            foreign.append(RUN_RECORD)
            record = None
    if (out / CONFIG_NAME).exists():
        try:
            ours = (out / CONFIG_NAME).read_text().startswith(CONFIG_HEADER)
        except (OSError, UnicodeDecodeError):
            ours = False
        if not ours:
            foreign.append(CONFIG_NAME)
    for name in (MAPS_NAME, *candidate_stores(out)):
        if (out / name).exists() and store_layout(out / name) is None:
            foreign.append(name)
    if (out / SELECTION_STORE).exists() and not is_selection_store(out / SELECTION_STORE):
        foreign.append(SELECTION_STORE)
    exports = set(record.get("exports", ())) if record else set()
    foreign += [n for n in EXPORTS.values() if (out / n).exists() and n not in exports]
    return foreign


def is_selection_store(path):
    """True for the ``selection.zarr`` of a model selection (its attributes say so)."""
    import zarr

    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:  # noqa: BLE001 - anything unreadable is not parfit's
        return False
    return {"criterion", "candidates", "n_free"} <= set(attrs)


def now():
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def write_json(path, data):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return None if not math.isfinite(obj) else float(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
