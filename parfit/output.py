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
* ``_parfit_input_hash`` (uint8, the grid of blocks by 16): a BLAKE2b
  digest of each block's input (data, weights, mask), written by the block
  task before its record; a resume re-reads and re-hashes the input of
  every recorded block and refuses a changed cube;
* while a run writes, its lock file lies *beside* the store,
  ``<store>.parfit.lock`` (see :mod:`parfit._lock` and :func:`lock_file`;
  inside, zarr would warn about it);
* group attributes ``parfit``: version, run id, input and options
  fingerprints, the options in words, the starting model as YAML, the
  block chunking, the FITS header of the maps' WCS (when the input had a
  WCS), and ``complete`` once every block is done.

Before a store is trusted (a resume, :func:`parfit.analysis.read_result`,
``parfit inspect``) it is checked with :func:`verify_store`: the metadata
parse, the layout matches the provenance, and every block recorded done has
its status chunk, no fit NOT_RUN, finite parameters where the status is OK
and NaN parameters elsewhere.  The ``complete`` attribute is set only on a
store that passes.

Nothing here imports dask: the functions run on workers.
"""

import hashlib
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _lock
from .errors import InputError, OutputExistsError, StoreDamagedError

__all__ = [
    "DONE_NAME",
    "HASH_NAME",
    "ATTRS_KEY",
    "field_specs",
    "prepare_output",
    "check_target",
    "check_resume",
    "create_output",
    "clear_store",
    "unrecord",
    "write_block",
    "finish",
    "read_output",
    "input_fingerprint",
    "hash_block",
    "is_parfit_store",
    "store_layout",
    "open_maps_store",
    "store_wcs",
    "stored_start_model",
    "stored_flags",
    "StoreReport",
    "verify_store",
    "damaged_error",
    "read_map",
]

log = logging.getLogger(__name__)

#: The cubes ``output_cubes=`` may stream beside the maps.
OUTPUT_CUBES = ("model", "residual")
#: Array of the completion records.
DONE_NAME = "_parfit_done"
#: Array of the per-block input hashes (the grid of blocks by HASH_SIZE bytes).
HASH_NAME = "_parfit_input_hash"
#: Bytes of a block's input hash.
HASH_SIZE = 16
#: Group attribute holding parfit's provenance and bookkeeping.
ATTRS_KEY = "parfit"


def field_specs(param_names):
    """``(array name, dtype, fill value)`` of every field, in packed order."""
    specs = [(name, "f8", np.nan) for name in param_names]
    specs += [(f"{name}_error", "f8", np.nan) for name in param_names]
    specs += [
        ("statistic", "f8", np.nan),
        ("status", "i1", 0),
        ("nfev", "i4", 0),
        ("n_warnings", "i4", 0),
        ("reported", "i1", 0),
        ("flags", "u1", 0),
    ]
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


def lock_file(path):
    """The lock file of the store at ``path``: ``<path>.parfit.lock``, beside it."""
    return os.path.abspath(os.fspath(path)) + ".parfit.lock"


def _what(path):
    return f"output {str(path)!r}"


def check_held(path, run_id):
    """Raise :class:`~parfit.errors.OutputLockedError` unless the store's lock names ``run_id``."""
    _lock.check_held(
        os.path.dirname(lock_file(path)), run_id, what=_what(path), lock_file=lock_file(path)
    )


def check_target(path, *, overwrite, resume):
    """What a run may do with ``path``: ``"create"``, ``"replace"`` or ``"resume"``.

    Changes nothing on disk.

    Raises
    ------
    OutputExistsError
        ``path`` exists and is not a parfit store (never replaced or
        resumed), or neither ``overwrite`` nor ``resume`` was given.
    OutputLockedError
        Another live parfit run holds the store.
    """
    path = Path(path)
    _lock.check_free(path.parent, what=_what(path), lock_file=lock_file(path))
    if not path.exists():
        return "create"
    if not is_parfit_store(path):
        raise OutputExistsError(
            f"output {str(path)!r} exists and is not a parfit output store; parfit never "
            f"replaces or deletes what it did not create; choose another output path"
        )
    if resume:
        return "resume"
    if not overwrite:
        raise OutputExistsError(
            f"output {str(path)!r} already exists; pass overwrite=True to replace it, or "
            f"resume=True to finish the run that wrote it"
        )
    return "replace"


def prepare_output(
    path,
    *,
    overwrite,
    resume,
    iterating_shape,
    chunks,
    dims,
    param_names,
    provenance,
    cubes=None,
    coords=None,
):
    """Create the store, or open it for resuming (check, then act; no lock).

    :func:`check_target` and (to resume) :func:`check_resume` first, then
    :func:`create_output` (after :func:`clear_store` to replace) or
    :func:`unrecord` of the damaged blocks.  ``parallel_fit`` runs the same
    steps with the store locked in between.

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
        Over the grid of blocks: True where a block is already recorded
        (and not damaged).
    provenance : dict
        What the store holds (on resume, the earlier run's, with its run id).

    Raises
    ------
    OutputExistsError
        ``path`` exists and neither ``overwrite`` nor ``resume`` was given,
        or it is not a parfit store (never replaced or resumed).
    InputError
        Resuming onto a store made from another input or other options.
    StoreDamagedError
        Resuming onto a store whose layout is broken.
    """
    action = check_target(path, overwrite=overwrite, resume=resume)
    if action == "resume":
        done, stored, report = check_resume(
            path,
            iterating_shape,
            chunks,
            param_names,
            provenance,
            set(cubes or {}) | set(coords or {}),
        )
        unrecord(path, report.damaged_blocks)
        return done, stored
    if action == "replace":
        clear_store(path)
    return create_output(
        path,
        iterating_shape=iterating_shape,
        chunks=chunks,
        dims=dims,
        param_names=param_names,
        provenance=provenance,
        cubes=cubes,
        coords=coords,
    )


def create_output(
    path, *, iterating_shape, chunks, dims, param_names, provenance, cubes=None, coords=None
):
    """Create a new store at ``path`` (absent, or an empty directory).

    Returns ``(done, provenance)`` like :func:`prepare_output`.
    """
    import zarr

    path = Path(path)
    if (path / "zarr.json").exists() or (path.exists() and not path.is_dir()):
        raise OutputExistsError(
            f"output {str(path)!r} was created by someone else since this call checked it; "
            f"choose another output path"
        )
    path.mkdir(parents=True, exist_ok=True)
    group = zarr.open_group(str(path), mode="a")
    for name, dtype, fill in field_specs(param_names):
        group.create_array(
            name,
            shape=iterating_shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=fill,
            dimension_names=dims,
        )
    for dim, values in (coords or {}).items():
        values = np.asarray(values)
        group.create_array(dim, shape=values.shape, dtype=values.dtype, dimension_names=(dim,))[
            ...
        ] = values
    for name, (shape, cube_chunks, cube_dims) in (cubes or {}).items():
        group.create_array(
            name,
            shape=shape,
            chunks=cube_chunks,
            dtype="f8",
            fill_value=np.nan,
            dimension_names=cube_dims,
        )
    grid = block_grid(iterating_shape, chunks)
    block_dims = tuple(f"block_{d}" for d in dims)
    group.create_array(
        DONE_NAME,
        shape=grid,
        chunks=(1,) * len(grid),
        dtype="u1",
        fill_value=0,
        dimension_names=block_dims,
    )
    group.create_array(
        HASH_NAME,
        shape=grid + (HASH_SIZE,),
        chunks=(1,) * len(grid) + (HASH_SIZE,),
        dtype="u1",
        fill_value=0,
        dimension_names=block_dims + ("hash_byte",),
    )
    group.attrs[ATTRS_KEY] = dict(provenance, complete=False)
    return np.zeros(grid, dtype=bool), dict(provenance)


def clear_store(path):
    """Remove the parfit store ``path`` (its lock file, beside it, stays).

    Refuses (:class:`OutputExistsError`) anything that is not a parfit store.
    """
    path = Path(path)
    if not is_parfit_store(path):
        raise OutputExistsError(
            f"output {str(path)!r} exists and is not a parfit output store; parfit never "
            f"replaces or deletes what it did not create; choose another output path"
        )
    shutil.rmtree(path)


def check_resume(path, iterating_shape, chunks, param_names, provenance, extra):
    """Check that the store at ``path`` can be resumed by this call; change nothing.

    Returns
    -------
    done : ndarray of bool
        Blocks recorded done and not damaged (they are kept).
    stored : dict
        The store's provenance.
    report : StoreReport
        From :func:`verify_store`; its ``damaged_blocks`` are to be
        un-recorded (:func:`unrecord`) and refitted.

    Raises
    ------
    InputError
        The store was made from another input or other options, or with
        another layout.
    StoreDamagedError
        The store's metadata or layout is broken (no block-by-block repair
        is possible).
    """
    import zarr

    path = Path(path)
    group = zarr.open_group(str(path), mode="r")
    stored = dict(group.attrs[ATTRS_KEY])
    for key, what in (
        ("input_fingerprint", "another input"),
        ("options_fingerprint", "other options"),
    ):
        if stored.get(key) != provenance[key]:
            raise InputError(
                f"resume=True: output {str(path)!r} was written from {what} than this call "
                f"({key} {stored.get(key)!r} there, {provenance[key]!r} now); resume only "
                f"with the same data, model and options, or choose another output path "
                f"(overwrite=True replaces the store)"
            )
    report = verify_store(path)
    if report.layout_problems:
        raise StoreDamagedError(
            f"resume=True: output {str(path)!r} is damaged and cannot be resumed: "
            f"{'; '.join(report.layout_problems)}; pass overwrite=True to "
            f"replace it, or choose another output path"
        )
    names = set(_array_dirs(path))
    expected = {name for name, *_ in field_specs(param_names)} | {DONE_NAME, HASH_NAME} | set(extra)
    for missing, what in (("flags", "no flags map"), (HASH_NAME, "no input hashes")):
        if missing not in names and names == expected - {missing}:
            raise InputError(
                f"resume=True: output {str(path)!r} was written by parfit "
                f"{stored.get('parfit_version')}, which kept {what}; this version cannot "
                f"finish it (read it with parfit.analysis.read_result, or choose another "
                f"output path; overwrite=True replaces the store)"
            )
    if (
        tuple(group["statistic"].shape) != tuple(iterating_shape)
        or tuple(group["statistic"].chunks) != tuple(chunks)
        or names != expected
    ):
        raise InputError(
            f"resume=True: output {str(path)!r} has another layout (map shape, chunks or "
            f"parameters) than this call would write; choose another output path"
        )
    done = read_done(path)
    for index in report.damaged_blocks:
        done[index] = False
    return done, stored, report


def unrecord(path, blocks):
    """Record ``blocks`` (indices over the grid of blocks) as not done, and the store incomplete.

    A resume refits them.  Logs a warning naming them.
    """
    import zarr

    blocks = [tuple(int(i) for i in b) for b in blocks]
    if not blocks:
        return
    log.warning(
        "output %r: block(s) %s are damaged; their records are removed and they are fitted again",
        str(path),
        ", ".join(map(str, blocks)),
    )
    group = zarr.open_group(str(path), mode="r+")
    for index in blocks:
        group[DONE_NAME][tuple(slice(i, i + 1) for i in index)] = 0
    attrs = dict(group.attrs[ATTRS_KEY])
    attrs["complete"] = False
    group.attrs[ATTRS_KEY] = attrs


def read_hashes(path):
    """The stored input hash of every block (grid + (HASH_SIZE,) uint8; all 0 where none)."""
    import zarr

    return np.asarray(zarr.open_array(str(Path(path) / HASH_NAME), mode="r")[...])


def hash_block(*arrays):
    """The BLAKE2b digest (HASH_SIZE uint8 values) of a block's input arrays.

    Each array contributes its shape and its values as float64 (C order), so
    the digest does not depend on memory layout; None contributes a marker.
    """
    h = hashlib.blake2b(digest_size=HASH_SIZE)
    for arr in arrays:
        if arr is None:
            h.update(b"none")
            continue
        arr = np.asarray(arr)
        h.update(repr(tuple(arr.shape)).encode())
        h.update(memoryview(np.ascontiguousarray(arr, dtype=np.float64)).cast("B"))
    return np.frombuffer(h.digest(), dtype=np.uint8).copy()


def block_grid(shape, chunks):
    """Number of blocks along each axis."""
    return tuple(math.ceil(n / c) if n else 0 for n, c in zip(shape, chunks))


def read_done(path):
    """The completion records as a bool array over the grid of blocks."""
    import zarr

    return np.asarray(zarr.open_array(str(Path(path) / DONE_NAME), mode="r")[...]) == 1


def write_block(
    path,
    param_names,
    packed,
    block_index,
    offsets,
    record=True,
    cubes=None,
    cube_offsets=(),
    input_hash=None,
    run_id=None,
):
    """Write one block's fields, then (with ``record``) record the block as done.

    ``packed`` is ``block_shape + (n_fields,)`` in :func:`field_specs` order;
    ``cubes`` maps cube names to this block's part of them, placed at
    ``cube_offsets``; ``input_hash`` (:func:`hash_block` of the block's
    input) is written before the record.  With ``run_id``, the store's lock
    file must name that run (:func:`check_held`), else nothing
    is written and :class:`~parfit.errors.OutputLockedError` is raised: a
    worker of a run whose lock was taken over never writes into another
    run's store.
    """
    import zarr
    from zarr.core.sync import sync

    if run_id is not None:
        check_held(path, run_id)
    region = tuple(slice(o, o + n) for o, n in zip(offsets, packed.shape[:-1]))
    writes = [
        (name, region, packed[..., k].astype(dtype))
        for k, (name, dtype, _) in enumerate(field_specs(param_names))
    ]
    writes += [
        (name, tuple(slice(o, o + n) for o, n in zip(cube_offsets, values.shape)), values)
        for name, values in (cubes or {}).items()
    ]
    # The fields all at once (zarr's asynchronous API): a dozen small arrays
    # written one after the other cost several times as long.
    sync(_write_all(str(path), writes))
    group = zarr.open_group(str(path), mode="r+")
    block = tuple(slice(i, i + 1) for i in block_index)
    if input_hash is not None and HASH_NAME in group:
        group[HASH_NAME][block] = np.asarray(input_hash, dtype=np.uint8).reshape(
            (1,) * len(block_index) + (HASH_SIZE,)
        )
    if record:
        # The record comes last: a block is done only once its data are on disk.
        group[DONE_NAME][block] = 1


async def _write_all(path, writes):
    """Write ``(array name, region, values)`` items of the group at ``path`` concurrently."""
    import asyncio

    import zarr.api.asynchronous as azarr

    group = await azarr.open_group(store=path, mode="r+")
    arrays = await asyncio.gather(*(group.getitem(name) for name, _, _ in writes))
    await asyncio.gather(
        *(array.setitem(region, values) for array, (_, region, values) in zip(arrays, writes))
    )


def finish(path, fields=None):
    """Mark the store complete if every block is recorded and the store verifies.

    A store failing :func:`verify_store` is never marked complete; its
    problems are logged as a warning.  Returns the ``complete`` flag.
    ``fields``, a dict, receives the maps the verification read (see
    :func:`verify_store`), so that :func:`read_output` need not read them
    again.
    """
    import zarr

    report = verify_store(path, fields=fields)
    if not report.ok:
        log.warning("output %r fails verification: %s", str(path), "; ".join(report.problems))
    group = zarr.open_group(str(path), mode="r+")
    attrs = dict(group.attrs[ATTRS_KEY])
    attrs["complete"] = bool(report.ok and read_done(path).all())
    group.attrs[ATTRS_KEY] = attrs
    return attrs["complete"]


@dataclass
class StoreReport:
    """What :func:`verify_store` found.

    Attributes
    ----------
    path : str
    damaged_blocks : list of tuple
        Blocks recorded done whose data are missing, undecodable or
        disagree with their status (a resume refits them).
    problems : list of str
        Every problem, in words (each damaged block's among them).
    layout_problems : list of str
        The problems not confined to blocks (metadata that does not parse,
        arrays missing or of the wrong shape, chunks or dtype).
    """

    path: str
    damaged_blocks: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    layout_problems: list = field(default_factory=list)

    @property
    def ok(self):
        """True when nothing is wrong."""
        return not self.problems

    def _layout(self, message):
        self.layout_problems.append(message)
        self.problems.append(message)


def damaged_error(report):
    """The :class:`~parfit.errors.StoreDamagedError` describing a failed :class:`StoreReport`."""
    if report.layout_problems:
        return StoreDamagedError(
            f"output {report.path!r} is damaged: {'; '.join(report.layout_problems)}; it "
            f"cannot be read or resumed; fit again into another output path (or with "
            f"overwrite=True)"
        )
    blocks = ", ".join(map(str, report.damaged_blocks))
    return StoreDamagedError(
        f"output {report.path!r} is damaged (block(s) {blocks}): {'; '.join(report.problems)}; "
        f"resume the run with resume=True (damaged blocks are fitted again), or read it "
        f"anyway with allow_damaged=True",
        report.damaged_blocks,
    )


def _array_dirs(path):
    """Names of the subdirectories of a store that hold a ``zarr.json`` (its arrays)."""
    path = Path(path)
    return sorted(
        entry.name for entry in path.iterdir() if entry.is_dir() and (entry / "zarr.json").exists()
    )


def _read_meta(file):
    try:
        meta = json.loads(Path(file).read_text())
    except (OSError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if not isinstance(meta, dict):
        return None, "not a JSON object"
    return meta, None


def _chunk_shape(meta):
    try:
        return tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
    except (KeyError, TypeError):
        return None


def verify_store(path, *, fields=None):
    """Check a streamed parfit store before trusting it; change nothing.

    Checks that every array's metadata parses; that the arrays of the
    provenance's parameters, the fields, the completion records and the
    output cubes exist with the maps' shape, chunks and dtypes; and, for
    every block recorded done, that its chunks decode, its status chunk
    exists, no fit in it is NOT_RUN, fits with status OK have finite
    parameters and the others NaN ones.  (zarr does not write a chunk equal
    to its fill value, so a block whose fits all failed legitimately has no
    parameter chunks; its status chunk is never all 0.)  Stores written by
    :meth:`FitResult.to_zarr` get the metadata checks only.

    Parameters
    ----------
    path : path-like
    fields : dict, optional
        Receives ``{array name: values}`` of the maps read while checking
        the recorded blocks, when every chunk of them decoded.

    Returns
    -------
    StoreReport
    """
    import zarr

    from .status import Status

    path = Path(path)
    report = StoreReport(str(path))
    meta, err = _read_meta(path / "zarr.json")
    if meta is None:
        report._layout(f"the store's metadata {str(path / 'zarr.json')!r} cannot be read ({err})")
        return report
    metas = {}
    for name in sorted(entry.name for entry in path.iterdir() if entry.is_dir()):
        file = path / name / "zarr.json"
        if not file.exists():
            continue
        metas[name], err = _read_meta(file)
        if metas[name] is None:
            report._layout(f"the metadata of array {name!r} ({str(file)!r}) cannot be read ({err})")
    info = (meta.get("attributes") or {}).get(ATTRS_KEY)
    if not (isinstance(info, dict) and "param_names" in info):
        return report  # FitResult.to_zarr's layout: no blocks to check
    names = list(info["param_names"])
    specs = [spec for spec in field_specs(names) if spec[0] != "flags" or "flags" in metas]
    cubes = list((info.get("options") or {}).get("output_cubes") or [])
    for name in [spec[0] for spec in specs] + [DONE_NAME] + cubes:
        if name not in metas:
            report._layout(f"array {name!r} is missing")
    if report.layout_problems:
        return report
    shape = tuple(metas["status"].get("shape") or ())
    chunks = tuple(info.get("chunks") or _chunk_shape(metas["status"]) or ())
    for name, dtype, _ in specs:
        got = (
            tuple(metas[name].get("shape") or ()),
            _chunk_shape(metas[name]),
            metas[name].get("data_type"),
        )
        want = (shape, chunks, np.dtype(dtype).name)
        if got != want:
            report._layout(f"array {name!r} has shape, chunks and dtype {got}; expected {want}")
    grid = block_grid(shape, chunks) if len(chunks) == len(shape) else None
    if grid is None or tuple(metas[DONE_NAME].get("shape") or ()) != grid:
        report._layout(
            f"array {DONE_NAME!r} has shape {metas[DONE_NAME].get('shape')}; "
            f"expected the grid of blocks {grid}"
        )
    if report.layout_problems:
        return report

    group = zarr.open_group(str(path), mode="r")
    try:
        done = np.asarray(group[DONE_NAME][...]) == 1
    except Exception as exc:  # an undecodable chunk of the records
        report._layout(f"the completion records ({DONE_NAME!r}) cannot be read ({exc})")
        return report
    blocks = [tuple(int(i) for i in b) for b in np.argwhere(done)]
    if not blocks:
        return report
    reasons = {}
    partial = set()  # maps read block by block (0 outside the recorded blocks)

    def regions():
        for b in blocks:
            yield b, tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(b, chunks, shape))

    def read(name):
        """The whole map, NaN (or 0) in blocks whose chunks do not decode."""
        array = group[name]
        try:
            return np.asarray(array[...])
        except Exception:  # find the blocks that do not decode
            partial.add(name)
            values = np.zeros(shape, dtype=np.float64)
            for b, region in regions():
                try:
                    values[region] = array[region]
                except Exception as exc:
                    reasons.setdefault(b, []).append(
                        f"its chunk of {name!r} cannot be decoded ({exc})"
                    )
            return values

    status = read("status")
    params = {name: read(name) for name, _, _ in specs if name != "status"}
    if fields is not None:
        fields.update(
            {
                name: values
                for name, values in dict(params, status=status).items()
                if name not in partial
            }
        )
    for b, region in regions():
        if b in reasons:
            continue
        chunk_file = _chunk_file(path, "status", b, metas["status"])
        if chunk_file is not None and not chunk_file.exists():
            reasons[b] = [f"its status chunk is missing ({str(chunk_file)!r})"]
            continue
        st = status[region]
        if (st == Status.NOT_RUN).any():
            reasons[b] = [f"{int((st == Status.NOT_RUN).sum())} of its fits are NOT_RUN"]
            continue
        ok = st == Status.OK
        for name in names:
            values = params[name][region]
            if not np.isfinite(values[ok]).all():
                reasons.setdefault(b, []).append(
                    f"{int((~np.isfinite(values[ok])).sum())} fit(s) with status OK have no "
                    f"finite {name!r} (its chunk is missing or damaged)"
                )
            elif not np.isnan(values[~ok]).all():
                reasons.setdefault(b, []).append(
                    f"{int((~np.isnan(values[~ok])).sum())} failed fit(s) have a value of {name!r}"
                )
    for b in sorted(reasons):
        report.damaged_blocks.append(b)
        report.problems.append(f"block {b}: {'; '.join(reasons[b])}")
    return report


def read_map(group, name):
    """Array ``name`` of ``group`` read whole; chunks that do not decode read as its fill value.

    For reporting on a damaged store (``parfit inspect``) without failing on
    it; :func:`verify_store` says which blocks are damaged.
    """
    array = group[name]
    try:
        return np.asarray(array[...])
    except Exception:  # some chunk does not decode: read chunk by chunk
        out = np.full(array.shape, array.fill_value, dtype=array.dtype)
        grid = block_grid(array.shape, array.chunks)
        for block in np.ndindex(*grid):
            region = tuple(
                slice(i * c, min((i + 1) * c, n))
                for i, c, n in zip(block, array.chunks, array.shape)
            )
            try:
                out[region] = array[region]
            except Exception:  # this chunk is damaged: leave the fill value
                pass
        return out


def _chunk_file(path, name, block, meta):
    """The file holding chunk ``block`` of array ``name`` (None for an unknown key encoding)."""
    encoding = meta.get("chunk_key_encoding") or {}
    separator = (encoding.get("configuration") or {}).get("separator", "/")
    if encoding.get("name", "default") == "default":
        key = separator.join(["c", *map(str, block)])
    elif encoding.get("name") == "v2":
        key = separator.join(map(str, block)) if block else "0"
    else:
        return None
    return Path(path) / name / key


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


def read_output(path, param_names, fields=None):
    """Every field of the store, stacked as ``iterating_shape + (n_fields,)`` float64.

    A field the store lacks (``flags`` of a store written before parfit had
    flags) is its fill value everywhere.  ``fields`` holds maps already read
    (by :func:`finish`), used instead of reading them again.
    """
    import zarr

    fields = fields or {}
    group = zarr.open_group(str(path), mode="r")
    shape = tuple(group["status"].shape)
    names = set(group.array_keys())

    def field(name, fill):
        if name in fields:
            return np.asarray(fields[name], dtype=np.float64)
        if name in names:
            return np.asarray(group[name][...], dtype=np.float64)
        return np.full(shape, fill, dtype=np.float64)

    return np.stack([field(name, fill) for name, _, fill in field_specs(param_names)], axis=-1)


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
        names = [
            name
            for name in sorted(arrays)
            if f"{name}_error" in arrays
            and dict(group[name].attrs).get("long_name") in (None, f"fitted {name}")
        ]
        provenance = {
            "parfit_version": attrs.get("parfit_version"),
            "run_id": None,
            "fitter": attrs.get("fitter"),
        }
        layout = "xarray"
    start = stored_start_model(info)
    if layout == "xarray" and start is not None and set(start.param_names) == set(names):
        names = list(start.param_names)  # a store lists its arrays sorted, not in model order
    units = {
        name: dict(group[name].attrs).get("units") if name in group else None for name in names
    }
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
        return read_map(group, "flags").astype(np.uint8)
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
            header = (
                fits.Header(header) if isinstance(header, dict) else fits.Header.fromstring(header)
            )
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
            h.update(memoryview(np.ascontiguousarray(item)).cast("B"))  # no copy
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
