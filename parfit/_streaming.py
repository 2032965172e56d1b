"""Streamed output for :func:`parfit.parallel_fit`: the store, its tasks, the cubes.

``parallel_fit(..., output=...)`` builds one delayed task per block not yet
recorded as done; each fits its block with the same block kernel as the
in-memory path (:func:`parfit.parallel._fit_block`) and writes the result
with :mod:`parfit.output`.  This module holds the argument checks, the
store's preparation (fingerprints and provenance) and those tasks.
"""

import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field

import numpy as np

from . import _lock
from . import output as output_mod
from .errors import InputError, InputTypeError
from .status import Status

log = logging.getLogger(__name__)

#: What ``output_cubes=`` may ask for.


def _model_cubes(plan, block, result, cubes, iter_chunk, order):
    """The best-fit model (and residual) of a block, in the input's axis order.

    Failed fits give NaN; the residual is ``data - model`` (NaN where the data
    are).
    """
    with np.errstate(all="ignore"):
        try:
            values = plan.model.evaluate(*block.x, result.params)
        except Exception:  # a model failing on NaN rows: evaluate fit by fit
            values = np.full(block.y.shape, np.nan)
            for i in np.flatnonzero(result.status == Status.OK):
                xs = tuple(xk if xk.ndim == 1 else xk[i] for xk in block.x)
                values[i] = plan.model.evaluate(*xs, result.params[i : i + 1])[0]
    values = np.where((result.status == Status.OK)[:, None], values, np.nan)
    out = {}
    back = np.argsort(order)
    for name in cubes:
        flat = values if name == "model" else block.y - values
        arr = flat.reshape(iter_chunk + plan.sample_shape)
        n_iter = len(iter_chunk)
        arr = np.moveaxis(arr, tuple(range(n_iter, arr.ndim)), tuple(range(plan.n_fit_axes)))
        out[name] = np.transpose(arr, back)
    return out


def _cube_offsets(offsets, order, n_fit):
    """Offsets of a block in the input's axis order (0 along the fitting axes)."""
    full = [0] * len(order)
    for k, axis in enumerate(order[n_fit:]):
        full[axis] = offsets[k]
    return tuple(full)


@dataclass
class _StorePlan:
    """What :func:`_check_store` decided, for :func:`_open_store` to carry out.

    ``action`` is ``"create"``, ``"replace"`` (remove the old parfit store
    first) or ``"resume"``; ``done`` the blocks kept (resume); ``damaged``
    the recorded blocks to un-record and refit.
    """

    path: str
    action: str
    run_id: str
    layout: dict
    provenance: dict
    cubes: tuple
    order: tuple
    chunks: tuple
    done: object = None
    stored: dict | None = None
    damaged: list = field(default_factory=list)


def _check_output(output, resume, fit_info, preserve_native_chunks, overwrite=False):
    if not isinstance(resume, (bool, np.bool_)):
        raise InputTypeError(f"resume must be True or False; got {resume!r}")
    _check_overwrite(overwrite)
    if output is None:
        if resume:
            raise InputError("resume=True needs output= (the store to resume)")
        return None
    if not isinstance(output, (str, os.PathLike)):
        raise InputTypeError(
            f"output must be a path (str or os.PathLike) to a zarr store to create; got "
            f"{type(output).__name__}"
        )
    if fit_info:
        raise InputError(
            "fit_info cannot be combined with output=: per-fit fitter information is not "
            "written to the store; leave fit_info=False or fit without output"
        )
    if preserve_native_chunks:
        raise InputError(
            "preserve_native_chunks=True cannot be combined with output=: the store is "
            "written in parfit's regular blocks of chunk_n_max fits"
        )
    return os.path.abspath(os.fspath(output))


def _check_overwrite(overwrite):
    """Refuse an ``overwrite`` that is not a bool (``"false"`` is truthy)."""
    if not isinstance(overwrite, (bool, np.bool_)):
        raise InputTypeError(f"overwrite must be True or False; got {overwrite!r}")


def _check_output_cubes(output_cubes, output):
    if output_cubes is None:
        return ()
    if isinstance(output_cubes, str):
        output_cubes = (output_cubes,)
    if not (
        isinstance(output_cubes, (list, tuple))
        and all(isinstance(c, str) and c in output_mod.OUTPUT_CUBES for c in output_cubes)
    ):
        raise InputError(
            f"output_cubes must be a sequence of "
            f"{', '.join(map(repr, output_mod.OUTPUT_CUBES))}; got {output_cubes!r}"
        )
    if output is None:
        raise InputError("output_cubes needs output= (the cubes are written to the store)")
    return tuple(dict.fromkeys(output_cubes))


def _check_store(
    path,
    *,
    overwrite,
    resume,
    cube,
    fitting_axes,
    iterating_axes,
    chunk_n_max,
    names,
    fit_model,
    fitter,
    fitter_kwargs,
    world,
    guess,
    run_id,
    cubes=(),
    scheduler_kwargs=None,
):
    """Check everything about the output store; change nothing on disk.

    Validates the path (a parfit store or nothing), what ``overwrite`` and
    ``resume`` (bools, checked by :func:`_check_output`) allow, that no live
    run holds the store's lock, and on resume the
    fingerprints, the layout, the store's integrity
    (:func:`parfit.output.verify_store`: damaged blocks are planned for a
    refit) and the input of every recorded block, re-read and hashed
    (a dask computation over the input's blocks, on ``scheduler_kwargs``,
    the keywords of ``dask.compute``).

    Returns
    -------
    _StorePlan
        For :func:`_open_store`.
    """
    from . import __version__
    from .parallel import _block_sizes, _iterating_wcs, _normalise_chunks

    shape = cube.shape
    iterating_shape = tuple(shape[a] for a in iterating_axes)
    if math.prod(iterating_shape) == 0:
        raise InputError(
            f"output=: the maps would be empty (iterating shape {iterating_shape}); there is "
            f"nothing to write"
        )
    chunks = tuple(
        max(c)
        for c in _normalise_chunks(
            _block_sizes(cube.data, iterating_axes, iterating_shape, chunk_n_max), iterating_shape
        )
    )
    dims = (
        tuple(cube.dims[a] for a in iterating_axes)
        if cube.dims
        else tuple(f"dim_{a}" for a in iterating_axes)
    )
    model_text = _model_text(fit_model)
    options = dict(
        fitting_axes=list(fitting_axes),
        chunk_n_max=chunk_n_max,
        fitter=fitter.describe(),
        fitter_kwargs=repr(sorted(fitter_kwargs.items())),
        initial="guess" if guess else "model",
        data_unit=str(cube.data_unit) if cube.data_unit is not None else None,
        weights=cube.weights is not None,
        mask=cube.mask is not None,
        output_cubes=list(cubes),
    )
    world_items = (
        tuple(world.arrays)
        if world.kind != "wcs"
        else (
            world.wcs.to_header_string()
            if hasattr(world.wcs, "to_header_string")
            else repr(world.wcs),
        )
    )
    provenance = dict(
        parfit_version=__version__,
        run_id=run_id,
        input_fingerprint=output_mod.input_fingerprint(
            cube.data, (cube.weights, cube.mask, *world_items)
        ),
        options_fingerprint=output_mod.input_fingerprint(
            json.dumps(options, sort_keys=True), (model_text,)
        ),
        options=options,
        model_yaml=model_text if len(model_text) < 100_000 else None,
        wcs_header=_wcs_header(_iterating_wcs(cube.world, iterating_axes, cube.ndim)),
        chunks=list(chunks),
        param_names=list(names),
    )
    cube_dims = tuple(cube.dims) if cube.dims else tuple(f"dim_{a}" for a in range(len(shape)))
    cube_chunks = tuple(
        shape[a] if a not in iterating_axes else chunks[iterating_axes.index(a)]
        for a in range(len(shape))
    )
    layout = dict(
        iterating_shape=iterating_shape,
        chunks=chunks,
        dims=dims,
        param_names=list(names),
        cubes={name: (shape, cube_chunks, cube_dims) for name in cubes},
        coords={
            d: v
            for d, v in cube.coords.items()
            if np.ndim(v) == 1 and (d in dims or (cubes and d in cube_dims))
        },
    )
    order = tuple(fitting_axes) + tuple(iterating_axes)
    plan = _StorePlan(
        path=path,
        action=output_mod.check_target(path, overwrite=overwrite, resume=resume),
        run_id=run_id,
        layout=layout,
        provenance=provenance,
        cubes=tuple(cubes),
        order=order,
        chunks=chunks,
    )
    if plan.action == "resume":
        plan.done, plan.stored, report = output_mod.check_resume(
            path,
            iterating_shape,
            chunks,
            names,
            provenance,
            set(layout["cubes"]) | set(layout["coords"]),
        )
        plan.damaged = list(report.damaged_blocks)
        unhashed = _check_block_hashes(path, plan.done, cube, chunks, order, scheduler_kwargs)
        for index in unhashed:
            plan.done[index] = False
        plan.damaged = sorted(set(plan.damaged) | set(unhashed))
    return plan


def _input_blocks(cube, chunks, order):
    """The input (data, weights, mask) as dask arrays in the block tasks' chunks and axis order."""
    import dask.array as da

    shape = cube.shape
    n_fit = len(order) - len(chunks)
    iter_axes = order[n_fit:]
    full = tuple(
        shape[a] if a not in iter_axes else chunks[iter_axes.index(a)] for a in range(len(shape))
    )

    def aligned(arr):
        arr = arr if isinstance(arr, da.Array) else da.from_array(np.asarray(arr))
        return da.broadcast_to(arr, shape).rechunk(full).transpose(order)

    return [aligned(cube.data)] + [aligned(a) for a in (cube.weights, cube.mask) if a is not None]


def _check_block_hashes(path, done, cube, chunks, order, scheduler_kwargs):
    """Re-hash the input of every recorded block and compare with the store.

    Returns the recorded blocks that have no stored hash (to refit); raises
    :class:`~parfit.errors.InputError` naming the blocks whose input differs.
    """
    import dask

    blocks = [tuple(int(i) for i in b) for b in np.argwhere(done)]
    if not blocks:
        return []
    stored = output_mod.read_hashes(path)
    unhashed = [b for b in blocks if not stored[b].any()]
    check = [b for b in blocks if stored[b].any()]
    inputs = [a.to_delayed() for a in _input_blocks(cube, chunks, order)]
    n_fit = len(order) - len(chunks)
    tasks = [
        dask.delayed(output_mod.hash_block)(*(d[(0,) * n_fit + b] for d in inputs)) for b in check
    ]
    hashes = dask.compute(*tasks, **(scheduler_kwargs or {}))
    changed = [b for b, h in zip(check, hashes) if not np.array_equal(h, stored[b])]
    if changed:
        listed = ", ".join(map(str, changed[:20])) + (
            f" and {len(changed) - 20} more" if len(changed) > 20 else ""
        )
        raise InputError(
            f"resume=True: the input of block(s) {listed} differs from what was fitted into "
            f"{str(path)!r} (their input hashes differ); resume only with the same data, "
            f"weights and mask, or choose another output path (overwrite=True replaces the "
            f"store)"
        )
    if unhashed:
        log.warning(
            "output %r: block(s) %s are recorded done without an input hash; they are fitted again",
            str(path),
            ", ".join(map(str, unhashed)),
        )
    return unhashed


def _open_store(plan, lock=True):
    """Carry out a :class:`_StorePlan`: lock, then create, replace or reopen the store.

    With ``lock`` the store's lock file (``<store>.parfit.lock``, beside it)
    is taken first (for ``plan.run_id``) and the store's state is checked
    again under it; the returned dict's
    ``"lock"`` is the held :class:`parfit._lock.Lock` (None without), which
    :func:`_close_store` releases.  Only now is anything on disk changed:
    the old store removed (``"replace"``: only a parfit store), the new one
    created, or damaged blocks un-recorded.  If creating fails, the
    half-made store is removed (under the lock, all of it is this call's).
    """
    path = plan.path
    held = None
    creating = False
    if lock:
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        held = _lock.acquire(
            parent,
            run_id=plan.run_id,
            what=f"output {str(path)!r}",
            lock_file=output_mod.lock_file(path),
        )
    try:
        if lock:
            _recheck(plan)
        if plan.action == "resume":
            output_mod.unrecord(path, plan.damaged)
            done, stored = plan.done, plan.stored
        else:
            if plan.action == "replace":
                output_mod.clear_store(path)
            creating = True
            done, stored = output_mod.create_output(path, provenance=plan.provenance, **plan.layout)
    except BaseException:
        if held is not None:
            if creating and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)  # the half-made store of this call
            held.release()
        raise
    return dict(
        path=path,
        done=done,
        chunks=plan.chunks,
        provenance=stored,
        cubes=plan.cubes,
        order=plan.order,
        resumed=plan.action == "resume" and stored["run_id"] != plan.run_id,
        damaged=list(plan.damaged),
        lock=held,
        lock_run_id=None if held is None else held.run_id,
    )


def _recheck(plan):
    """Refuse if the store changed between :func:`_check_store` and taking its lock."""
    path = plan.path
    now = (
        "create"
        if not os.path.exists(os.path.join(path, "zarr.json"))
        else "parfit"
        if output_mod.is_parfit_store(path)
        else "other"
    )
    changed = (now != "create") if plan.action == "create" else (now != "parfit")
    if not changed and plan.action == "resume":
        recorded = output_mod.read_done(path)
        for index in plan.damaged:
            recorded[index] = False
        changed = not np.array_equal(recorded, plan.done)
    if changed:
        raise output_mod.OutputExistsError(
            f"output {str(path)!r} was changed by another run after this call checked it; "
            f"check it (parfit inspect) and call again"
        )


def _close_store(store):
    """Release the store's lock (if this run holds one); harmless to call twice."""
    held = store.get("lock") if store else None
    if held is not None:
        held.release()


def _wcs_header(wcs):
    """The FITS header of a WCS as text, or None."""
    if wcs is None:
        return None
    try:
        return wcs.to_header_string()
    except Exception:  # a WCS without a FITS form
        return None


def _model_text(model):
    """The starting model as text, for provenance and the options fingerprint."""
    to_yaml = getattr(model, "to_yaml", None)
    if to_yaml is not None:
        try:
            return to_yaml()
        except Exception:  # e.g. an unregistered function model
            pass
    values = {name: np.asarray(getattr(model, name).value).tolist() for name in model.param_names}
    return f"{type(model).__name__} {json.dumps(values, sort_keys=True)}"


def _store_tasks(data_t, arrays, plan, iter_block_chunks, *, store, names):
    """One delayed task per block not yet recorded as done, with each block's size and place."""
    import dask

    nf = plan.n_fit_axes
    data_blocks = data_t.to_delayed()
    other_blocks = [a.to_delayed() for a in arrays]
    plan_d = dask.delayed(plan, name=f"parfit-plan-{plan.run_id}", traverse=False)
    from .parallel import _blocks

    tasks, sizes, places = [], [], []
    for index, offsets, block_shape in _blocks(iter_block_chunks):
        if store["done"][index]:
            continue
        full = (0,) * nf + index
        inputs = [data_blocks[full]]
        for blocks in other_blocks:
            inputs.append(blocks[full] if blocks.ndim == data_blocks.ndim else blocks[index])
        tasks.append(
            dask.delayed(_fit_and_store, pure=False)(
                *inputs,
                plan=plan_d,
                path=store["path"],
                names=names,
                block_index=index,
                offsets=offsets,
                cubes=store["cubes"],
                order=store["order"],
                lock_run_id=store.get("lock_run_id"),
                dask_key_name=f"parfit-store-{plan.run_id}-" + "_".join(map(str, index)),
            )
        )
        sizes.append(math.prod(block_shape))
        places.append((index, offsets, block_shape))
    return tasks, sizes, places


def _fit_and_store(
    data, *arrays, plan, path, names, block_index, offsets, cubes=(), order=(), lock_run_id=None
):
    """Fit one block and write it to the store (runs on a worker).

    The block's input (data, weights, mask) is hashed as it is read, and the
    hash written before the block's record.  With ``lock_run_id`` the
    store's lock must still name that run, else nothing is written.

    Returns the number of fits per status code in the block.
    """
    from .parallel import _EXTRA_FIELDS, _fit_block

    if lock_run_id is not None:  # refuse before spending time on the fits
        output_mod.check_held(path, lock_run_id)
    input_hash = output_mod.hash_block(data, *arrays[: int(plan.has_weights) + int(plan.has_mask)])

    iter_chunk = data.shape[plan.n_fit_axes :]
    location = [(o, o + n) for o, n in zip(offsets, iter_chunk)] + [(0, plan.n_fields)]
    keep = {} if cubes else None
    packed = _fit_block(
        data, *arrays, plan=plan, block_info={None: {"array-location": location}}, keep=keep
    )
    cube_blocks = {}
    if cubes and "block" in keep:
        cube_blocks = _model_cubes(plan, keep["block"], keep["result"], cubes, iter_chunk, order)
    status = packed[..., 2 * len(names) + _EXTRA_FIELDS.index("status")]
    # A block abandoned after fit_timeout is written but not recorded as
    # done: a resume (perhaps with more time) fits it again.
    output_mod.write_block(
        path,
        names,
        packed,
        block_index,
        offsets,
        cubes=cube_blocks,
        cube_offsets=_cube_offsets(offsets, order, plan.n_fit_axes),
        input_hash=input_hash,
        run_id=lock_run_id,
        record=not np.any(status == Status.TIMEOUT),
    )
    return np.bincount(status.astype(np.int64).ravel(), minlength=len(Status))
