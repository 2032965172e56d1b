"""Streamed, resumable output: the maps written to a zarr store block by block.

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
* group attributes ``parfit``: version, run id, input and options
  fingerprints, the options in words, the starting model as YAML, the
  block chunking, the FITS header of the maps' WCS (when the input had a
  WCS), and ``complete`` once every block is done.

Nothing here imports dask: the functions run on workers.
"""

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np

from .errors import InputError, OutputExistsError

__all__ = ["DONE_NAME", "ATTRS_KEY", "field_specs", "prepare_output", "write_block",
           "read_output", "input_fingerprint", "is_parfit_store", "store_layout",
           "open_maps_store", "store_wcs", "stored_start_model", "stored_flags"]

#: Array of the completion records.
DONE_NAME = "_parfit_done"
#: Group attribute holding parfit's provenance and bookkeeping.
ATTRS_KEY = "parfit"


def field_specs(param_names):
    """``(array name, dtype, fill value)`` of every field, in packed order."""
    specs = [(name, "f8", np.nan) for name in param_names]
    specs += [(f"{name}_error", "f8", np.nan) for name in param_names]
    specs += [("statistic", "f8", np.nan), ("status", "i1", 0), ("nfev", "i4", 0),
              ("n_warnings", "i4", 0), ("reported", "i1", 0), ("flags", "u1", 0)]
    return specs


def is_parfit_store(path):
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


def prepare_output(path, *, overwrite, resume, iterating_shape, chunks, dims, param_names,
                   provenance, cubes=None, coords=None):
    """Create the store, or open it for resuming.

    Parameters
    ----------
    path : path-like
    overwrite, resume : bool
    iterating_shape : tuple of int
        Shape of the maps.
    chunks : tuple of int
        Block size along each iterating axis (the zarr chunks).
    dims : tuple of str
        Dimension names of the maps.
    param_names : sequence of str
    provenance : dict
        JSON-able; must hold ``input_fingerprint`` and ``options_fingerprint``.
    cubes : dict, optional
        ``{name: (shape, chunks, dims)}`` of cubes shaped like the input
        (the best-fit model, the residual) to create beside the maps.
    coords : dict, optional
        ``{dimension: values}``: 1-D coordinates written as arrays named
        after their dimension, which xarray reads as coordinates.

    Returns
    -------
    done : ndarray of bool
        Over the grid of blocks: True where a block is already recorded.
    provenance : dict
        What the store holds (on resume, the earlier run's, with its run id).

    Raises
    ------
    OutputExistsError
        ``path`` exists and neither ``overwrite`` nor ``resume`` was given,
        or it is not a parfit store (never replaced or resumed).
    InputError
        Resuming onto a store made from another input or other options.
    """
    import zarr

    path = Path(path)
    if path.exists():
        if not is_parfit_store(path):
            raise OutputExistsError(
                f"output {str(path)!r} exists and is not a parfit output store; parfit never "
                f"replaces or deletes what it did not create; choose another output path"
            )
        if resume:
            return _reopen(path, iterating_shape, chunks, param_names, provenance,
                           set(cubes or {}) | set(coords or {}))
        if not overwrite:
            raise OutputExistsError(
                f"output {str(path)!r} already exists; pass overwrite=True to replace it, or "
                f"resume=True to finish the run that wrote it"
            )
        shutil.rmtree(path)
    group = zarr.open_group(str(path), mode="w-")
    for name, dtype, fill in field_specs(param_names):
        group.create_array(name, shape=iterating_shape, chunks=chunks, dtype=dtype,
                           fill_value=fill, dimension_names=dims)
    for dim, values in (coords or {}).items():
        values = np.asarray(values)
        group.create_array(dim, shape=values.shape, dtype=values.dtype,
                           dimension_names=(dim,))[...] = values
    for name, (shape, cube_chunks, cube_dims) in (cubes or {}).items():
        group.create_array(name, shape=shape, chunks=cube_chunks, dtype="f8",
                           fill_value=np.nan, dimension_names=cube_dims)
    grid = block_grid(iterating_shape, chunks)
    group.create_array(DONE_NAME, shape=grid, chunks=(1,) * len(grid), dtype="u1",
                       fill_value=0, dimension_names=tuple(f"block_{d}" for d in dims))
    group.attrs[ATTRS_KEY] = dict(provenance, complete=False)
    return np.zeros(grid, dtype=bool), dict(provenance)


def _reopen(path, iterating_shape, chunks, param_names, provenance, extra):
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    stored = dict(group.attrs[ATTRS_KEY])
    for key, what in (("input_fingerprint", "another input"),
                      ("options_fingerprint", "other options")):
        if stored.get(key) != provenance[key]:
            raise InputError(
                f"resume=True: output {str(path)!r} was written from {what} than this call "
                f"({key} {stored.get(key)!r} there, {provenance[key]!r} now); resume only "
                f"with the same data, model and options, or choose another output path "
                f"(overwrite=True replaces the store)"
            )
    expected = {name for name, *_ in field_specs(param_names)} | {DONE_NAME} | set(extra)
    if "flags" not in group.array_keys() and set(group.array_keys()) == expected - {"flags"}:
        raise InputError(
            f"resume=True: output {str(path)!r} was written by parfit "
            f"{stored.get('parfit_version')}, which kept no flags map; this version cannot "
            f"finish it (read it with parfit.analysis.read_result, or choose another output "
            f"path; overwrite=True replaces the store)"
        )
    if (tuple(group["statistic"].shape) != tuple(iterating_shape)
            or tuple(group["statistic"].chunks) != tuple(chunks)
            or set(group.array_keys()) != expected):
        raise InputError(
            f"resume=True: output {str(path)!r} has another layout (map shape, chunks or "
            f"parameters) than this call would write; choose another output path"
        )
    return read_done(path), stored


def block_grid(shape, chunks):
    """Number of blocks along each axis."""
    return tuple(math.ceil(n / c) if n else 0 for n, c in zip(shape, chunks))


def read_done(path):
    """The completion records as a bool array over the grid of blocks."""
    import zarr

    return np.asarray(zarr.open_array(str(Path(path) / DONE_NAME), mode="r")[...]) == 1


def write_block(path, param_names, packed, block_index, offsets, record=True, cubes=None,
                cube_offsets=()):
    """Write one block's fields, then (with ``record``) record the block as done.

    ``packed`` is ``block_shape + (n_fields,)`` in :func:`field_specs` order;
    ``cubes`` maps cube names to this block's part of them, placed at
    ``cube_offsets``.
    """
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    region = tuple(slice(o, o + n) for o, n in zip(offsets, packed.shape[:-1]))
    for k, (name, dtype, _) in enumerate(field_specs(param_names)):
        group[name][region] = packed[..., k].astype(dtype)
    for name, values in (cubes or {}).items():
        group[name][tuple(slice(o, o + n) for o, n in zip(cube_offsets, values.shape))] = values
    if record:
        # The record comes last: a block is done only once its data are on disk.
        group[DONE_NAME][tuple(slice(i, i + 1) for i in block_index)] = 1


def finish(path):
    """Mark the store complete (every block recorded)."""
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    attrs = dict(group.attrs[ATTRS_KEY])
    attrs["complete"] = bool(read_done(path).all())
    group.attrs[ATTRS_KEY] = attrs
    return attrs["complete"]


def write_units(path, units):
    """Record the unit of each parameter (and its error) as the arrays' ``units``.

    ``units`` maps parameter names to astropy units or None; xarray shows
    them as the variables' ``units`` attribute.
    """
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    for name, unit in (units or {}).items():
        if unit is None or str(unit) == "":
            continue
        for array_name in (name, f"{name}_error"):
            if array_name in group:
                group[array_name].attrs["units"] = str(unit)


def read_output(path, param_names):
    """Every field of the store, stacked as ``iterating_shape + (n_fields,)`` float64.

    A field the store lacks (``flags`` of a store written before parfit had
    flags) is its fill value everywhere.
    """
    import zarr

    group = zarr.open_group(str(path), mode="r")
    shape = tuple(group["status"].shape)
    names = set(group.array_keys())
    return np.stack([np.asarray(group[name][...], dtype=np.float64) if name in names
                     else np.full(shape, fill, dtype=np.float64)
                     for name, _, fill in field_specs(param_names)], axis=-1)


def store_layout(path):
    """``"streamed"`` (this module's layout), ``"xarray"`` (``FitResult.to_zarr``) or None.

    None for anything that is not a zarr group of parfit maps.
    """
    path = Path(path)
    if not any((path / name).is_file() for name in ("zarr.json", ".zgroup")):
        return None
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
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


def open_maps_store(path):
    """Open a store of maps of either layout (see :func:`store_layout`).

    Returns
    -------
    group : zarr.Group
    layout : str
    names : list of str
        The fitted parameters, in the model's order.
    units : dict
        Unit (text) or None of every parameter: the arrays' ``units``
        attribute, else the unit of the store's starting model.
    provenance : dict
        ``parfit_version``, ``run_id`` and ``fitter``.
    info : dict
        The store's own attributes (``attrs["parfit"]`` of a streamed store).
    """
    import zarr

    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    if isinstance(attrs.get(ATTRS_KEY), dict) and "param_names" in attrs[ATTRS_KEY]:
        info = dict(attrs[ATTRS_KEY])
        names = list(info["param_names"])
        provenance = {k: info.get(k) for k in ("parfit_version", "run_id")}
        provenance["fitter"] = (info.get("options") or {}).get("fitter")
        layout = "streamed"
    else:
        info = attrs
        arrays = set(group.array_keys())
        names = [name for name in sorted(arrays)
                 if f"{name}_error" in arrays
                 and dict(group[name].attrs).get("long_name") in (None, f"fitted {name}")]
        provenance = {"parfit_version": attrs.get("parfit_version"), "run_id": None,
                      "fitter": attrs.get("fitter")}
        layout = "xarray"
    start = stored_start_model(info)
    if layout == "xarray" and start is not None and set(start.param_names) == set(names):
        names = list(start.param_names)  # a store lists its arrays sorted, not in model order
    units = {name: dict(group[name].attrs).get("units") if name in group else None
             for name in names}
    for name in names:
        if units[name] is None and start is not None:
            unit = getattr(getattr(start, name, None), "unit", None)
            units[name] = None if unit is None else str(unit)
    return group, layout, names, units, provenance, info


def stored_flags(group):
    """The ``flags`` map of a store of either layout, uint8; all 0 where it has none.

    Stores written before parfit had flags hold no ``flags`` array: their
    fits read as having no flag set.
    """
    if "flags" in set(group.array_keys()):
        return np.asarray(group["flags"][...]).astype(np.uint8)
    return np.zeros(tuple(group["status"].shape), dtype=np.uint8)


def stored_start_model(info):
    """The starting model recorded in a store's attributes ``info`` (its YAML), or None.

    None where there is none, or it is an astropy model or a model class not
    registered in this process.
    """
    text = info.get("model_yaml") if isinstance(info, dict) else None
    if not text:
        return None
    from .models import from_yaml

    try:
        return from_yaml(text)
    except Exception:  # not parfit YAML (an astropy model), or a model not registered here
        return None


def store_wcs(info):
    """The WCS of the maps recorded in a store's attributes (its FITS header), or None."""
    header = info.get("wcs_header") if isinstance(info, dict) else None
    if not header:
        return None
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            header = fits.Header(header) if isinstance(header, dict) \
                else fits.Header.fromstring(header)
            return WCS(header)
    except Exception:  # an unreadable header: no WCS
        return None


def input_fingerprint(data, extras=()):
    """A short hash identifying the input, cheap even for cubes on disk.

    In-memory arrays up to 1 GiB are hashed whole.  Larger or lazy (dask)
    arrays contribute their shape, dtype and a fixed sample of values (the
    first and last elements and a few in between), so a different file is
    recognised without reading the cube.  ``extras`` (world coordinates,
    weights, mask, ...) are hashed the same way.
    """
    h = hashlib.sha256()
    for item in (data, *extras):
        _hash_item(h, item)
    return h.hexdigest()[:32]


def _hash_item(h, item):
    if item is None:
        h.update(b"none")
        return
    if isinstance(item, (str, bytes)):
        h.update(item.encode() if isinstance(item, str) else item)
        return
    shape = tuple(getattr(item, "shape", ()))
    dtype = str(getattr(item, "dtype", type(item).__name__))
    h.update(repr((shape, dtype)).encode())
    if isinstance(item, np.ndarray):
        if item.nbytes <= 2**30:
            h.update(memoryview(np.ascontiguousarray(item)).cast("B"))   # no copy
            return
    size = math.prod(shape)
    if size == 0:
        return
    flat = np.unique(np.linspace(0, size - 1, min(size, 9)).astype(np.int64))
    index = np.unravel_index(flat, shape)
    if hasattr(item, "vindex"):
        values = np.asarray(item.vindex[index].compute())
    else:
        values = np.asarray(item)[index]
    h.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
