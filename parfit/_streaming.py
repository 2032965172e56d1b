"""Streamed output for :func:`parfit.parallel_fit`: the store, its tasks, the cubes.

``parallel_fit(..., output=...)`` builds one delayed task per block not yet
recorded as done; each fits its block with the same block kernel as the
in-memory path (:func:`parfit.parallel._fit_block`) and writes the result
with :mod:`parfit.output`.  This module holds the argument checks, the
store's preparation (fingerprints and provenance) and those tasks.
"""

import json
import math
import os

import numpy as np

from . import output as output_mod
from .errors import InputError, InputTypeError
from .status import Status

#: What ``output_cubes=`` may ask for.
_CUBES = ("model", "residual")


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
                values[i] = plan.model.evaluate(*xs, result.params[i:i + 1])[0]
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


def _check_output(output, resume, fit_info, preserve_native_chunks):
    if not isinstance(resume, (bool, np.bool_)):
        raise InputTypeError(f"resume must be True or False; got {resume!r}")
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


def _check_output_cubes(output_cubes, output):
    if output_cubes is None:
        return ()
    if isinstance(output_cubes, str):
        output_cubes = (output_cubes,)
    if not (isinstance(output_cubes, (list, tuple))
            and all(isinstance(c, str) and c in _CUBES for c in output_cubes)):
        raise InputError(
            f"output_cubes must be a sequence of {', '.join(map(repr, _CUBES))}; got "
            f"{output_cubes!r}"
        )
    if output is None:
        raise InputError("output_cubes needs output= (the cubes are written to the store)")
    return tuple(dict.fromkeys(output_cubes))


def _prepare_store(path, *, overwrite, resume, cube, fitting_axes, iterating_axes, chunk_n_max,
                   names, fit_model, fitter, fitter_kwargs, world, guess, run_id, cubes=()):
    """Create (or reopen, to resume) the output store; return what the tasks need."""
    from . import __version__
    from .parallel import _block_sizes, _iterating_wcs, _normalise_chunks

    shape = cube.shape
    iterating_shape = tuple(shape[a] for a in iterating_axes)
    if math.prod(iterating_shape) == 0:
        raise InputError(
            f"output=: the maps would be empty (iterating shape {iterating_shape}); there is "
            f"nothing to write"
        )
    chunks = tuple(max(c) for c in _normalise_chunks(
        _block_sizes(cube.data, iterating_axes, iterating_shape, chunk_n_max), iterating_shape))
    dims = tuple(cube.dims[a] for a in iterating_axes) if cube.dims else tuple(
        f"dim_{a}" for a in iterating_axes)
    model_text = _model_text(fit_model)
    options = dict(
        fitting_axes=list(fitting_axes), chunk_n_max=chunk_n_max, fitter=fitter.describe(),
        fitter_kwargs=repr(sorted(fitter_kwargs.items())), initial="guess" if guess else "model",
        data_unit=str(cube.data_unit) if cube.data_unit is not None else None,
        weights=cube.weights is not None, mask=cube.mask is not None,
        output_cubes=list(cubes),
    )
    world_items = tuple(world.arrays) if world.kind != "wcs" else (
        world.wcs.to_header_string() if hasattr(world.wcs, "to_header_string")
        else repr(world.wcs),)
    provenance = dict(
        parfit_version=__version__,
        run_id=run_id,
        input_fingerprint=output_mod.input_fingerprint(
            cube.data, (cube.weights, cube.mask, *world_items)),
        options_fingerprint=output_mod.input_fingerprint(
            json.dumps(options, sort_keys=True), (model_text,)),
        options=options,
        model_yaml=model_text if len(model_text) < 100_000 else None,
        wcs_header=_wcs_header(_iterating_wcs(cube.world, iterating_axes, cube.ndim)),
        chunks=list(chunks),
        param_names=list(names),
    )
    cube_dims = tuple(cube.dims) if cube.dims else tuple(f"dim_{a}" for a in range(len(shape)))
    cube_chunks = tuple(shape[a] if a not in iterating_axes
                        else chunks[iterating_axes.index(a)] for a in range(len(shape)))
    done, stored = output_mod.prepare_output(
        path, overwrite=overwrite, resume=resume, iterating_shape=iterating_shape,
        chunks=chunks, dims=dims, param_names=names, provenance=provenance,
        cubes={name: (shape, cube_chunks, cube_dims) for name in cubes},
        coords={d: v for d, v in cube.coords.items()
                if np.ndim(v) == 1 and (d in dims or (cubes and d in cube_dims))})
    return dict(path=path, done=done, chunks=chunks, provenance=stored, cubes=tuple(cubes),
                order=tuple(fitting_axes) + tuple(iterating_axes),
                resumed=bool(resume and stored["run_id"] != run_id))


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
    values = {name: np.asarray(getattr(model, name).value).tolist()
              for name in model.param_names}
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
        tasks.append(dask.delayed(_fit_and_store, pure=False)(
            *inputs, plan=plan_d, path=store["path"], names=names, block_index=index,
            offsets=offsets, cubes=store["cubes"], order=store["order"],
            dask_key_name=f"parfit-store-{plan.run_id}-"
            + "_".join(map(str, index))))
        sizes.append(math.prod(block_shape))
        places.append((index, offsets, block_shape))
    return tasks, sizes, places


def _fit_and_store(data, *arrays, plan, path, names, block_index, offsets, cubes=(),
                   order=()):
    """Fit one block and write it to the store (runs on a worker).

    Returns the number of fits per status code in the block.
    """
    from .parallel import _EXTRA_FIELDS, _fit_block

    iter_chunk = data.shape[plan.n_fit_axes:]
    location = [(o, o + n) for o, n in zip(offsets, iter_chunk)] + [(0, plan.n_fields)]
    keep = {} if cubes else None
    packed = _fit_block(data, *arrays, plan=plan, block_info={None: {"array-location": location}},
                        keep=keep)
    cube_blocks = {}
    if cubes and "block" in keep:
        cube_blocks = _model_cubes(plan, keep["block"], keep["result"], cubes, iter_chunk, order)
    output_mod.write_block(path, names, packed, block_index, offsets, cubes=cube_blocks,
                           cube_offsets=_cube_offsets(offsets, order, plan.n_fit_axes))
    status = packed[..., 2 * len(names) + _EXTRA_FIELDS.index("status")]
    return np.bincount(status.astype(np.int64).ravel(), minlength=len(Status))

