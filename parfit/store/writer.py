"""Writing a store: create or replace it, write blocks and their records, finish it.

Nothing here imports dask: the functions run on workers.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from parfit.errors import InputError, OutputExistsError, StoreDamagedError
from parfit.store import lock as _lock_mod
from parfit.store.layout import (
    ATTRS_KEY,
    DONE_NAME,
    HASH_ALGORITHM,
    HASH_NAME,
    HASH_SIZE,
    block_grid,
    field_attrs,
    field_specs,
    is_parfit_store,
    lock_file,
)
from parfit.store.reader import StoreReport, _array_dirs, read_done, verify_store

log = logging.getLogger(__name__)


def _what(path: os.PathLike[str] | str) -> str:
    return f"output {str(path)!r}"


def check_held(path: os.PathLike[str] | str, run_id: str) -> None:
    """Raise :class:`~parfit.errors.OutputLockedError` unless the store's lock names ``run_id``."""
    _lock_mod.check_held(
        os.path.dirname(lock_file(path)), run_id, what=_what(path), lock_file=lock_file(path)
    )


def check_target(path: os.PathLike[str] | str, *, overwrite: bool, resume: bool) -> str:
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
    _lock_mod.check_free(path.parent, what=_what(path), lock_file=lock_file(path))
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
    path: os.PathLike[str] | str,
    *,
    overwrite: bool,
    resume: bool,
    iterating_shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dims: tuple[str, ...],
    param_names: Sequence[str],
    provenance: Mapping[str, Any],
    cubes: Mapping[str, tuple[tuple[int, ...], tuple[int, ...], tuple[str, ...]]] | None = None,
    coords: Mapping[str, Any] | None = None,
) -> tuple[npt.NDArray[np.bool_], dict[str, Any]]:
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
    path: os.PathLike[str] | str,
    *,
    iterating_shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dims: tuple[str, ...],
    param_names: Sequence[str],
    provenance: Mapping[str, Any],
    cubes: Mapping[str, tuple[tuple[int, ...], tuple[int, ...], tuple[str, ...]]] | None = None,
    coords: Mapping[str, Any] | None = None,
    units: Mapping[str, Any] | None = None,
    extra_fields: Sequence[str] = (),
) -> tuple[npt.NDArray[np.bool_], dict[str, Any]]:
    """Create a new store at ``path`` (absent, or an empty directory).

    ``extra_fields`` are the run's extra float maps (TS, profile intervals).

    ``units`` (optional) maps parameters to their unit, recorded at once as
    in :func:`write_units`.  Returns ``(done, provenance)`` like
    :func:`prepare_output`.
    """
    path = Path(path)
    if (path / "zarr.json").exists() or (path.exists() and not path.is_dir()):
        raise OutputExistsError(
            f"output {str(path)!r} was created by someone else since this call checked it; "
            f"choose another output path"
        )
    path.mkdir(parents=True, exist_ok=True)
    arrays: list[dict[str, Any]] = [
        dict(
            name=name,
            shape=iterating_shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=fill,
            dimension_names=dims,
            attributes=dict(field_attrs(name, param_names), **_unit_attr(name, units)),
            # Fitted values are noise-like floats that compress by a few per cent
            # at best: stored raw, they are written and verified faster.
            **_FLOAT_CODECS.get(dtype, {}),
        )
        for name, dtype, fill in field_specs(param_names, extra_fields)
    ]
    for name, (shape, cube_chunks, cube_dims) in (cubes or {}).items():
        arrays.append(
            dict(
                name=name,
                shape=shape,
                chunks=cube_chunks,
                dtype="f8",
                fill_value=np.nan,
                dimension_names=cube_dims,
            )
        )
    grid = block_grid(iterating_shape, chunks)
    block_dims = tuple(f"block_{d}" for d in dims)
    arrays.append(
        dict(
            name=DONE_NAME,
            shape=grid,
            chunks=(1,) * len(grid),
            dtype="u1",
            fill_value=0,
            dimension_names=block_dims,
        )
    )
    arrays.append(
        dict(
            name=HASH_NAME,
            shape=grid + (HASH_SIZE,),
            chunks=(1,) * len(grid) + (HASH_SIZE,),
            dtype="u1",
            fill_value=0,
            dimension_names=block_dims + ("hash_byte",),
            attributes={"algorithm": HASH_ALGORITHM},
        )
    )
    values = {dim: np.asarray(v) for dim, v in (coords or {}).items()}
    arrays += [
        dict(name=dim, shape=v.shape, dtype=v.dtype, dimension_names=(dim,))
        for dim, v in values.items()
    ]
    # The group, its arrays, the coordinates and the attributes in one pass of
    # zarr's asynchronous API: one after the other, a dozen small metadata
    # files cost several times as long.
    from zarr.core.sync import sync

    sync(_create_all(str(path), arrays, values, {ATTRS_KEY: dict(provenance, complete=False)}))
    return np.zeros(grid, dtype=bool), dict(provenance)


def clear_store(path: os.PathLike[str] | str) -> None:
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


def check_resume(
    path: os.PathLike[str] | str,
    iterating_shape: Sequence[int],
    chunks: Sequence[int],
    param_names: Sequence[str],
    provenance: Mapping[str, Any],
    extra: Iterable[str],
) -> tuple[npt.NDArray[np.bool_], dict[str, Any], StoreReport]:
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
    # zarr types group[name] as Array | Group and attributes as any JSON; parfit's
    # arrays are arrays and its attributes a JSON object.
    group: Any = zarr.open_group(str(path), mode="r")
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


def unrecord(path: os.PathLike[str] | str, blocks: Iterable[Iterable[int]]) -> None:
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
    group: Any = zarr.open_group(str(path), mode="r+")  # as in check_resume
    for index in blocks:
        group[DONE_NAME][tuple(slice(i, i + 1) for i in index)] = 0
    attrs = dict(group.attrs[ATTRS_KEY])
    attrs["complete"] = False
    group.attrs[ATTRS_KEY] = attrs


def write_block(
    path: os.PathLike[str] | str,
    param_names: Sequence[str],
    packed: np.ndarray,
    block_index: Sequence[int],
    offsets: Sequence[int],
    record: bool = True,
    cubes: Mapping[str, Any] | None = None,
    cube_offsets: Sequence[int] = (),
    input_hash: npt.ArrayLike | None = None,
    run_id: str | None = None,
) -> None:
    """Write one block's fields given packed, then (with ``record``) record the block as done.

    ``packed`` is ``block_shape + (n_fields,)`` in :func:`field_specs` order;
    the rest is as for :func:`write_fields`, which this calls.
    """
    fields = {
        name: packed[..., k].astype(dtype)
        for k, (name, dtype, _) in enumerate(field_specs(param_names))
    }
    write_fields(
        path,
        fields,
        block_index,
        offsets,
        record=record,
        cubes=cubes,
        cube_offsets=cube_offsets,
        input_hash=input_hash,
        run_id=run_id,
    )


def write_fields(
    path: os.PathLike[str] | str,
    fields: Mapping[str, Any],
    block_index: Sequence[int],
    offsets: Sequence[int],
    *,
    record: bool = True,
    cubes: Mapping[str, Any] | None = None,
    cube_offsets: Sequence[int] | Mapping[str, Sequence[int]] = (),
    input_hash: npt.ArrayLike | Callable[[], npt.ArrayLike] | None = None,
    run_id: str | None = None,
    store_id: str | None = None,
) -> None:
    """Write one block's fields, then (with ``record``) record the block as done.

    ``fields`` maps array names (:func:`field_specs`) to this block's values;
    ``cubes`` maps cube names to this block's part of them, placed at
    ``cube_offsets`` (one for all, or by cube name); ``input_hash``
    (:func:`hash_block` of the block's input, or a function returning it)
    is written with them.  Everything
    but the record is written in one concurrent write (zarr's asynchronous
    API); a function for ``input_hash`` runs in a thread meanwhile.  The
    record is written last, once the rest is on disk.

    With ``run_id``, the store's lock file must name that run
    (:func:`check_held`), else nothing is written and
    :class:`~parfit.errors.OutputLockedError` is raised: a worker of a run
    whose lock was taken over never writes into another run's store.
    ``store_id`` (the store's own run id, from its provenance) lets this
    process keep the store's opened arrays for the next block: a store is
    never re-created under the same id.
    """
    from zarr.core.sync import sync

    if run_id is not None:
        check_held(path, run_id)
    writes: list[tuple[str, tuple[slice, ...], np.ndarray]] = []
    for name, values in fields.items():
        values = np.asarray(values)
        region = tuple(slice(o, o + n) for o, n in zip(offsets, values.shape))
        writes.append((name, region, values))
    writes += [
        (name, tuple(slice(o, o + n) for o, n in zip(at, values.shape)), values)
        for name, values in (cubes or {}).items()
        for at in [cube_offsets[name] if isinstance(cube_offsets, Mapping) else cube_offsets]
    ]
    block = tuple(slice(i, i + 1) for i in block_index)
    hash_job = None
    if callable(input_hash):
        hash_job = (block, input_hash)
    elif input_hash is not None:
        writes.append((HASH_NAME, block, _hash_values(input_hash, len(block))))
    marks: list[tuple[str, tuple[slice, ...], np.ndarray]] = []
    if record:
        # The record comes last: a block is done only once its data are on disk.
        marks.append((DONE_NAME, block, np.ones((1,) * len(block_index), dtype=np.uint8)))
    key = None if store_id is None else (os.path.abspath(path), store_id)
    sync(_write_all(str(path), writes, marks, key=key, hash_job=hash_job))


async def _create_all(
    path: str,
    arrays: list[dict[str, Any]],
    values: Mapping[str, np.ndarray],
    attributes: dict[str, Any],
) -> None:
    """Create the group at ``path`` with ``attributes`` and the arrays of ``arrays``.

    ``arrays`` holds ``create_array`` keywords; ``values`` the contents of
    those written whole (the coordinates).  Everything concurrently.
    """
    import asyncio

    import zarr.api.asynchronous as azarr

    group = await azarr.open_group(store=path, mode="a", attributes=attributes)
    created = await asyncio.gather(*(group.create_array(**spec) for spec in arrays))
    by_name = {spec["name"]: array for spec, array in zip(arrays, created)}
    await asyncio.gather(*(by_name[name].setitem(..., v) for name, v in values.items()))


def _hash_values(digest: npt.ArrayLike, ndim: int) -> np.ndarray:
    """An input hash as the values of one block of the hash array."""
    return np.asarray(digest, dtype=np.uint8).reshape((1,) * ndim + (HASH_SIZE,))


# Opened arrays of the stores this process writes, by (path, store id); used
# only on zarr's event loop (one thread).  A few stores at a time at most.
_OPENED: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
_OPENED_MAX = 8


async def _open_arrays(
    path: str, names: Sequence[str], key: tuple[str, str] | None
) -> dict[str, Any]:
    """The arrays ``names`` of the group at ``path`` (kept under ``key`` if given).

    A store written before parfit kept input hashes has no hash array: it
    is left out.
    """
    import asyncio

    import zarr.api.asynchronous as azarr

    opened = _OPENED.get(key, {}) if key is not None else {}
    missing = [n for n in names if n not in opened]
    if missing:
        # zarr types group.getitem as AsyncArray | AsyncGroup; parfit's arrays are arrays.
        group: Any = await azarr.open_group(store=path, mode="r+")
        found = await asyncio.gather(*(group.getitem(n) for n in missing), return_exceptions=True)
        for name, array in zip(missing, found):
            if isinstance(array, KeyError) and name == HASH_NAME:
                continue
            if isinstance(array, BaseException):
                raise array
            opened[name] = array
        if key is not None:
            _OPENED[key] = opened
            while len(_OPENED) > _OPENED_MAX:
                _OPENED.popitem(last=False)
    if key is not None:
        _OPENED.move_to_end(key)
    return opened


async def _write_all(
    path: str,
    writes: Sequence[tuple[str, tuple[slice, ...], np.ndarray]],
    marks: Sequence[tuple[str, tuple[slice, ...], np.ndarray]] = (),
    *,
    key: tuple[str, str] | None = None,
    hash_job: tuple[tuple[slice, ...], Callable[[], npt.ArrayLike]] | None = None,
) -> None:
    """Write ``(array name, region, values)`` items of the group at ``path`` concurrently.

    Then the ``marks`` one after the other, once every write has finished.
    ``hash_job``, ``(block region, function)``: the function (the block's
    input hash) runs in a thread while the writes run (hashlib releases the
    GIL); its value is written after them and before the marks.  A store
    without an input hash array (written before parfit kept them) skips
    the hash.  ``key`` keeps the opened arrays (see :func:`write_fields`).
    """
    import asyncio

    names = [n for n, _, _ in (*writes, *marks)] + ([HASH_NAME] if hash_job else [])
    arrays = await _open_arrays(path, names, key)
    jobs: list[Any] = [
        arrays[n].setitem(region, values) for n, region, values in writes if n in arrays
    ]
    if hash_job is not None:
        jobs.append(asyncio.to_thread(hash_job[1]))
    done = await asyncio.gather(*jobs)
    if hash_job is not None and HASH_NAME in arrays:
        block = hash_job[0]
        await arrays[HASH_NAME].setitem(block, _hash_values(done[-1], len(block)))
    for name, region, values in marks:
        if name in arrays:
            await arrays[name].setitem(region, values)


def finish(path: os.PathLike[str] | str, fields: dict[str, Any] | None = None) -> bool:
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
    group: Any = zarr.open_group(str(path), mode="r+")  # as in check_resume
    attrs = dict(group.attrs[ATTRS_KEY])
    attrs["complete"] = bool(report.ok and read_done(path).all())
    group.attrs[ATTRS_KEY] = attrs
    return attrs["complete"]


def mark_complete(path: os.PathLike[str] | str) -> bool:
    """Mark the store complete if every block is recorded; the end of a run that holds its lock.

    Unlike :func:`finish`, the maps are not read back: it is for a run that
    checked every block it wrote before writing it (``parallel_fit``'s block
    tasks record only consistent blocks, after their data are on disk) and
    verified the blocks it kept from an earlier run before resuming, while
    holding the store's lock.  Readers verify again (:func:`verify_store`).
    Returns the ``complete`` flag.
    """
    import zarr

    group: Any = zarr.open_group(str(path), mode="r+")
    attrs = dict(group.attrs[ATTRS_KEY])
    attrs["complete"] = bool(read_done(path).all())
    group.attrs[ATTRS_KEY] = attrs
    return attrs["complete"]


#: Codecs of the store's arrays by dtype (zarr's default where not given).
_FLOAT_CODECS: dict[str, dict[str, Any]] = {"f8": {"compressors": None}}


def _unit_attr(name: str, units: Mapping[str, Any] | None) -> dict[str, str]:
    """``{"units": ...}`` for the array of a parameter or its error with a unit, else {}."""
    parameter = name[: -len("_error")] if name.endswith("_error") else name
    unit = (units or {}).get(parameter)
    if unit is None or str(unit) == "":
        return {}
    return {"units": str(unit)}


def write_units(path: os.PathLike[str] | str, units: Mapping[str, Any] | None) -> None:
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


def write_maps(
    path: os.PathLike[str] | str,
    fields: Mapping[str, Any],
    *,
    param_names: Sequence[str],
    dims: tuple[str, ...],
    provenance: Mapping[str, Any],
    units: Mapping[str, Any] | None = None,
    coords: Mapping[str, Any] | None = None,
    extra_fields: Sequence[str] = (),
) -> None:
    """Write complete maps as a store of one block (what :meth:`FitResult.to_zarr` does).

    The store has the layout of a streamed run (:mod:`parfit.store.layout`)
    with one block holding every fit, recorded done and verified, so every
    reader of streamed stores reads it.  ``path`` must not exist.

    Parameters
    ----------
    path : path-like
    fields : dict
        ``{array name: map}`` of every field of :func:`field_specs`.
    param_names : sequence of str
    dims : tuple of str
    provenance : dict
        JSON-able attributes (``parfit_version``, ``run_id``, ``options``,
        ``model_yaml``...).
    units : dict, optional
        Unit of each parameter (see :func:`write_units`).
    coords : dict, optional
        ``{dimension: values}``, written as 1-D arrays.
    """
    shape = tuple(np.shape(fields["status"]))
    chunks = tuple(max(int(n), 1) for n in shape)
    provenance = dict(
        provenance,
        chunks=list(chunks),
        param_names=list(param_names),
        extra_fields=list(extra_fields),
    )
    create_output(
        path,
        iterating_shape=shape,
        chunks=chunks,
        dims=dims,
        param_names=param_names,
        provenance=provenance,
        coords=coords,
        extra_fields=extra_fields,
    )
    if math.prod(shape):
        write_fields(path, fields, (0,) * len(shape), (0,) * len(shape))
    write_units(path, units)
    finish(path)


# --- neighbour refit passes --------------------------------------------------------------

#: The group holding each refit pass's journal: ``pass_<k>/index`` and its fields.
REFIT_GROUP = "_parfit_refit"


def refit_state(path: os.PathLike[str] | str) -> dict[str, Any]:
    """The store's record of refit passes: ``passes`` (reports), ``journal``, ``finished``.

    ``journal`` is the last pass whose journal was written; passes up to
    ``len(passes)`` were also applied to the maps.
    """
    import zarr

    group: Any = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs[ATTRS_KEY])
    state = attrs.get("refit") or {}
    return {
        "passes": list(state.get("passes") or []),
        "journal": int(state.get("journal") or 0),
        "finished": bool(state.get("finished")),
    }


def _set_refit_state(path: os.PathLike[str] | str, **changes: Any) -> None:
    import zarr

    group: Any = zarr.open_group(str(path), mode="r+")
    attrs = dict(group.attrs[ATTRS_KEY])
    state = dict(attrs.get("refit") or {})
    state.update(changes)
    attrs["refit"] = state
    group.attrs[ATTRS_KEY] = attrs


def write_refit_pass(
    path: os.PathLike[str] | str,
    pass_no: int,
    index: np.ndarray,
    values: Mapping[str, np.ndarray],
    replaced: np.ndarray,
    report: Mapping[str, int],
) -> None:
    """Journal pass ``pass_no``: the final values of every field at the flat ``index``.

    Written whole, with the pass's ``report``, before the maps change
    (:func:`apply_refit_pass`), so a run stopped while applying it applies
    it again on resume: the pass is a unit of resume.
    """
    import zarr

    group: Any = zarr.open_group(str(path), mode="r+")
    journal = group.require_group(REFIT_GROUP).require_group(f"pass_{pass_no}")
    arrays = {"index": np.asarray(index, dtype=np.int64), "replaced": np.asarray(replaced)}
    arrays.update({f"field.{name}": np.asarray(v) for name, v in values.items()})
    for name, arr in arrays.items():
        journal.create_array(
            name, shape=arr.shape, dtype=arr.dtype, chunks=(max(1, arr.size),), overwrite=True
        )[...] = arr
    journal.attrs["report"] = {k: int(v) for k, v in report.items()}
    _set_refit_state(path, journal=pass_no)


def apply_refit_pass(path: os.PathLike[str] | str, pass_no: int) -> None:
    """Write journal ``pass_no`` into the maps, then record its report as applied."""
    import zarr

    group: Any = zarr.open_group(str(path), mode="r+")
    journal = group[REFIT_GROUP][f"pass_{pass_no}"]
    index = journal["index"][...]
    for key in journal.array_keys():
        if not key.startswith("field."):
            continue
        name = key[len("field.") :]
        full = np.asarray(group[name][...])
        full.reshape(-1)[index] = journal[key][...]
        group[name][...] = full
    state = refit_state(path)
    passes = [p for p in state["passes"] if p.get("pass") != pass_no]
    _set_refit_state(path, passes=passes + [dict(journal.attrs["report"])])


def refit_replaced(path: os.PathLike[str] | str, pass_no: int) -> np.ndarray:
    """The map of the fits that journaled pass ``pass_no`` replaced."""
    import zarr

    group: Any = zarr.open_group(str(path), mode="r")
    journal = group[REFIT_GROUP][f"pass_{pass_no}"]
    shape = tuple(group["status"].shape)
    replaced = np.zeros(math.prod(shape), dtype=bool)
    replaced[journal["index"][...]] = journal["replaced"][...]
    return replaced.reshape(shape)


def record_mean_start(path: os.PathLike[str] | str, record: Mapping[str, Any]) -> None:
    """Record the fit of the mean spectrum every fit started from (``initial="mean"``)."""
    import zarr

    group: Any = zarr.open_group(str(path), mode="r+")
    attrs = dict(group.attrs[ATTRS_KEY])
    attrs["mean_start"] = dict(record)
    group.attrs[ATTRS_KEY] = attrs


def finish_refit(path: os.PathLike[str] | str) -> None:
    """Record that the refit passes ended (nothing improved, or the most passes ran)."""
    _set_refit_state(path, finished=True)
