"""The one zarr layout of parfit maps: written block by block, resumable.

With ``parallel_fit(..., output="maps.zarr")`` every block task writes its
part of the maps straight into the store and then records the block as done
in the ``_parfit_done`` array (one element per block; zarr writes each chunk
atomically, and the record is written only after the block's data).  So
after a crash the store says exactly which blocks are complete; NaN never
has to mean "not done".  ``resume=True`` recomputes only the blocks not
recorded, after checking that the store was made from the same input and
options.

Layout of the store (a zarr v3 group, readable with ``xarray.open_zarr``):

* one float64 array per parameter, and ``<name>_error``;
* ``statistic`` (float64), ``status`` (int8, 0 = NOT_RUN where no block
  wrote), ``nfev`` (int32), ``n_warnings`` (int32), ``reported`` (int8),
  ``flags`` (uint8, :class:`~parfit.status.Flag` bits, 0 where none; a
  store written before parfit had flags has no ``flags`` array, and readers
  take it as all 0);
* with ``output_cubes``, ``model`` and/or ``residual``: float64 cubes of the
  input's shape and axis order, chunked like the blocks (NaN where a fit
  failed);
* the 1-D coordinates of the input (e.g. of a DataArray) that belong to the
  written dimensions, as arrays named after them;
* ``_parfit_done`` (uint8 over the grid of blocks);
* ``_parfit_input_hash`` (uint8, the grid of blocks by 16): a digest of
  each block's input (data, weights, mask), written by the block task
  before its record; a resume re-reads and re-hashes the input of every
  recorded block and refuses a changed cube.  Its attribute ``algorithm``
  names the hash (``HASH_ALGORITHM``, SHA-256 cut to 16 bytes; stores
  whose array has no ``algorithm``, written by earlier versions, used
  BLAKE2b: ``LEGACY_HASH_ALGORITHM``);
* while a run writes, its lock file lies *beside* the store,
  ``<store>.parfit.lock`` (see :mod:`parfit.store.lock` and :func:`lock_file`;
  inside, zarr would warn about it);
* group attributes ``parfit``: version, run id, input and options
  fingerprints, the options in words, the starting model as YAML, the
  block chunking, the FITS header of the maps' WCS (when the input had a
  WCS), and ``complete`` once every block is done.

Before a store is trusted (a resume, :func:`parfit.analysis.read_result`,
``parfit inspect``) it is checked with :func:`parfit.store.verify_store`: the metadata
parse, the layout matches the provenance, and every block recorded done has
its status chunk, no fit NOT_RUN, finite parameters where the status is OK
and NaN parameters elsewhere.  The ``complete`` attribute is set only on a
store that passes.

Nothing here imports dask: the functions run on workers."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: The cubes ``output_cubes=`` may stream beside the maps.
OUTPUT_CUBES = ("model", "residual")

#: Array of the completion records.
DONE_NAME = "_parfit_done"

#: Array of the per-block input hashes (the grid of blocks by HASH_SIZE bytes).
HASH_NAME = "_parfit_input_hash"

#: Bytes of a block's input hash.
HASH_SIZE = 16

#: The hash of new stores' block inputs (hashlib's name), and that of stores
#: whose hash array names none.  SHA-256 runs on the CPU's SHA instructions
#: (three times BLAKE2b's speed on current x86 and ARM).
HASH_ALGORITHM = "sha256"
LEGACY_HASH_ALGORITHM = "blake2b"

#: Group attribute holding parfit's provenance and bookkeeping.
ATTRS_KEY = "parfit"


def datasets_of(param_names: Sequence[str]) -> list[str]:
    """The datasets of a joint fit's parameters (``"<dataset>.<parameter>"``), in order.

    Examples
    --------
    >>> datasets_of(["co10.mean", "co10.stddev", "co21.amplitude"])
    ['co10', 'co21']
    >>> datasets_of(["amplitude", "mean"])
    []
    """
    return list(dict.fromkeys(n.partition(".")[0] for n in param_names if "." in n))


def cube_names(output_cubes: Sequence[str], param_names: Sequence[str]) -> list[str]:
    """The store's arrays of the output cubes: ``"<cube>.<dataset>"`` for a joint fit.

    Examples
    --------
    >>> cube_names(["model"], ["amplitude", "mean"])
    ['model']
    >>> cube_names(["model", "residual"], ["a.mean", "b.mean"])
    ['model.a', 'model.b', 'residual.a', 'residual.b']
    """
    datasets = datasets_of(param_names)
    if not datasets:
        return list(output_cubes)
    return [f"{c}.{d}" for c in output_cubes for d in datasets]


#: The store of a model selection's own maps inside its output folder (``select=``).
SELECTION_STORE = "selection.zarr"


def candidate_store(k: int) -> str:
    """The store of candidate ``k`` inside a model selection's output folder.

    Examples
    --------
    >>> candidate_store(2)
    'candidate_2.zarr'
    """
    return f"candidate_{k}.zarr"


def is_selection_folder(path: os.PathLike[str] | str) -> bool:
    """True for the output folder of a model selection (it holds :data:`SELECTION_STORE`)."""
    return (Path(path) / SELECTION_STORE).is_dir()


#: Extra fields that are not float maps: ``(dtype, fill)`` by name (neighbour refits).
EXTRA_FIELD_TYPES: dict[str, tuple[str, float]] = {"refits": ("i2", 0), "origin": ("i2", 0)}


def field_specs(
    param_names: Sequence[str], extra_fields: Sequence[str] = ()
) -> list[tuple[str, str, float]]:
    """``(array name, dtype, fill value)`` of every field, in packed order.

    A joint fit (parameters ``"<dataset>.<parameter>"``) also has each
    dataset's share of the statistic, ``"statistic.<dataset>"``;
    ``extra_fields`` are maps a run adds, last: float maps (``ts``,
    ``sqrt_ts`` and profile intervals ``<p>_lo``, ``<p>_hi``, ``<p>_ul``),
    and the int16 ``refits`` and ``origin`` of neighbour refits.
    """
    specs = [(name, "f8", np.nan) for name in param_names]
    specs += [(f"{name}_error", "f8", np.nan) for name in param_names]
    specs += [
        ("statistic", "f8", np.nan),
        *((f"statistic.{d}", "f8", np.nan) for d in datasets_of(param_names)),
        ("status", "i1", 0),
        ("nfev", "i4", 0),
        ("n_warnings", "i4", 0),
        ("reported", "i1", 0),
        ("flags", "u1", 0),
    ]
    specs += [(name, *EXTRA_FIELD_TYPES.get(name, ("f8", np.nan))) for name in extra_fields]
    return specs


def block_grid(shape: Sequence[int], chunks: Sequence[int]) -> tuple[int, ...]:
    """Number of blocks along each axis."""
    return tuple(math.ceil(n / c) if n else 0 for n, c in zip(shape, chunks))


def field_attrs(name: str, param_names: Sequence[str]) -> dict[str, Any]:
    """The attributes (CF names, flag meanings) of the store array of field ``name``.

    Examples
    --------
    >>> field_attrs("mean_error", ["mean"])
    {'long_name': '1-sigma error of mean'}
    """
    from parfit.status import Status, flags_attrs

    if name in param_names:
        return {"long_name": f"fitted {name}"}
    if name.endswith("_error") and name[: -len("_error")] in param_names:
        return {"long_name": f"1-sigma error of {name[: -len('_error')]}"}
    if name == "status":
        return {
            "long_name": "parfit fit status code",
            "flag_values": [int(s) for s in Status],
            "flag_meanings": " ".join(s.name.lower() for s in Status),
        }
    if name == "flags":
        return {k: v.tolist() if hasattr(v, "tolist") else v for k, v in flags_attrs().items()}
    for end, text in (
        ("_lo", "lower end of the profile-likelihood interval of "),
        ("_hi", "upper end of the profile-likelihood interval of "),
        ("_ul", "profile-likelihood upper limit of "),
    ):
        if name.endswith(end) and name[: -len(end)] in param_names:
            return {"long_name": text + name[: -len(end)]}
    return {
        "statistic": {"long_name": "the statistic minimised (chi-square, Cash or C-stat)"},
        "ts": {
            "long_name": "test statistic: the statistic under the null hypothesis minus "
            "its best value"
        },
        "sqrt_ts": {"long_name": "square root of TS, signed by the tested parameter"},
        "nfev": {"long_name": "number of model evaluations (-1 unknown)"},
        "n_warnings": {"long_name": "number of warnings of the fit"},
        "reported": {"long_name": "the fit has a diagnostics folder (1) or not (0)"},
        "refits": {"long_name": "times the fit was refitted from its neighbours"},
        "origin": {"long_name": "refit pass whose solution the fit holds (0: the first pass)"},
    }.get(name, {})


def is_parfit_store(path: os.PathLike[str] | str) -> bool:
    """True if ``path`` is a zarr group that parfit created as output."""
    path = Path(path)
    meta = path / "zarr.json"
    if not meta.is_file():
        return False
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False
    return isinstance(attrs.get(ATTRS_KEY), dict)


def lock_file(path: os.PathLike[str] | str) -> str:
    """The lock file of the store at ``path``: ``<path>.parfit.lock``, beside it."""
    return os.path.abspath(os.fspath(path)) + ".parfit.lock"


def store_layout(path: os.PathLike[str] | str) -> str | None:
    """``"streamed"`` (this module's layout), ``"xarray"`` (``FitResult.to_zarr``) or None.

    None for anything that is not a zarr group of parfit maps.
    """
    path = Path(path)
    if not any((path / name).is_file() for name in ("zarr.json", ".zgroup")):
        return None
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
        # zarr types attributes as any JSON; parfit's provenance is a JSON object.
        attrs: dict[str, Any] = dict(group.attrs)
        names = set(group.array_keys())
    except Exception:  # not a readable zarr group
        return None
    if "status" not in names:
        return None
    if isinstance(attrs.get(ATTRS_KEY), dict) and "param_names" in attrs[ATTRS_KEY]:
        return "streamed"
    if "parfit_version" in attrs:
        return "xarray"
    return None
