"""Normalise what users pass as a cube into one internal description.

Accepts numpy arrays (and masked arrays), dask arrays, array-likes with a
``shape`` and ``dtype`` (zarr, h5py), astropy ``Quantity`` and ``NDData``,
and xarray ``DataArray``.  Everything is checked here, before any work is
dispatched, and every error names the argument at fault.
"""

import dataclasses
import logging
import numbers

import numpy as np
from numpy.lib.array_utils import normalize_axis_index

from .errors import InputError, InputTypeError

__all__ = ["CubeInput", "WorldSpec", "normalise_cube", "normalise_fitting_axes",
           "normalise_world"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class CubeInput:
    """A cube after normalisation (still lazy where it was lazy)."""

    data: object
    data_unit: object = None
    weights: object = None
    mask: object = None
    world: object = None
    dims: tuple = None
    coords: dict = dataclasses.field(default_factory=dict)
    attrs: dict = dataclasses.field(default_factory=dict)
    name: str = None

    @property
    def shape(self):
        return tuple(int(n) for n in self.data.shape)

    @property
    def ndim(self):
        return len(self.data.shape)


@dataclasses.dataclass
class WorldSpec:
    """World coordinates of the fitting axes.

    ``kind == "shared"``: ``arrays`` holds one float64 array per fitting
    axis, each of the fitting shape (in ``fitting_axes`` order), identical
    for every fit.  ``kind == "nd"``: ``arrays`` holds one array per fitting
    axis broadcastable to the data shape (varies between fits).
    ``kind == "wcs"``: world values vary between fits and are computed from
    ``wcs`` block by block; ``wcs_world_index`` picks the world axis of each
    fitting axis.
    """

    kind: str
    arrays: tuple = ()
    units: tuple = ()
    wcs: object = None
    wcs_world_index: tuple = ()


def _is_dask(obj):
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, da.Array)


def _real_dtype_check(dtype, argname):
    kind = np.dtype(dtype).kind
    if kind in "fiu":
        return
    what = {
        "b": "boolean",
        "c": "complex",
        "O": "object",
        "U": "string",
        "S": "bytes",
        "M": "datetime",
        "m": "timedelta",
        "V": "structured",
    }.get(kind, str(dtype))
    raise InputTypeError(
        f"{argname} has {what} dtype {np.dtype(dtype)}; expected real numbers "
        f"(integer or floating point). Convert it, e.g. {argname}.astype(float)"
    )


def _as_array(obj, argname):
    """numpy/dask stay as they are; other array-likes are wrapped lazily."""
    if isinstance(obj, np.ndarray) or _is_dask(obj):
        return obj
    if hasattr(obj, "shape") and hasattr(obj, "dtype") and hasattr(obj, "__getitem__"):
        import dask.array as da

        return da.from_array(obj, chunks="auto")
    raise InputTypeError(
        f"{argname} must be an array (numpy, dask, xarray.DataArray, astropy Quantity or "
        f"NDData, or an array-like with shape and dtype such as a zarr array); got "
        f"{type(obj).__name__}. Convert it with numpy.asarray({argname}) first"
    )


def normalise_cube(data, *, weights=None, mask=None, data_unit=None, world=None):
    """Unwrap ``data`` and gather what its container knows.

    NDData contributes its wcs (as ``world``), mask, unit and uncertainty
    (as ``weights = 1 / sigma``) where the matching argument is None, as
    astropy's ``support_nddata`` does.  A ``Quantity`` gives ``data_unit``;
    a masked array its mask; a DataArray its dimension names and coordinates.
    """
    from astropy import units as u
    from astropy.nddata import NDData, NDUncertainty, StdDevUncertainty

    cube = CubeInput(data=None, data_unit=data_unit, weights=weights, mask=mask, world=world)
    if data_unit is not None:
        try:
            cube.data_unit = u.Unit(data_unit)
        except (ValueError, TypeError) as exc:
            raise InputError(f"data_unit={data_unit!r} is not a valid unit: {exc}") from None

    if isinstance(data, NDData):
        for attr, arg in (("wcs", "world"), ("mask", "mask"), ("unit", "data_unit")):
            value = getattr(data, attr)
            if value is None:
                continue
            if getattr(cube, arg) is None:
                setattr(cube, arg, value)
            else:
                log.info("%s given explicitly and by the NDData; using the explicit value", arg)
        if data.uncertainty is not None:
            if cube.weights is None:
                cube.weights = data.uncertainty
            else:
                log.info("weights given explicitly and by the NDData; using the weights")
        data = data.data

    if isinstance(data, u.Quantity):
        if cube.data_unit is None:
            cube.data_unit = data.unit
            data = data.value
        else:
            data = data.to_value(cube.data_unit)
    elif _is_xarray(data):
        cube.dims = tuple(str(d) for d in data.dims)
        cube.name = data.name
        cube.attrs = dict(data.attrs)
        for dim in data.dims:
            if dim in data.coords:
                cube.coords[str(dim)] = np.asarray(data.coords[dim].values)
        data = data.data
    elif isinstance(data, np.ma.MaskedArray):
        if cube.mask is None and data.mask is not np.ma.nomask:
            cube.mask = np.ma.getmaskarray(data)
        data = data.data

    data = _as_array(data, "data")
    _real_dtype_check(data.dtype, "data")
    if len(data.shape) == 0:
        raise InputError("data is a scalar (0-dimensional); expected an array with at least one axis")
    cube.data = data

    if isinstance(cube.weights, NDUncertainty):
        std = cube.weights.represent_as(StdDevUncertainty).array
        with np.errstate(divide="ignore"):
            cube.weights = 1.0 / np.asarray(std, dtype=np.float64)
    if isinstance(cube.weights, u.Quantity):
        cube.weights = cube.weights.value
    cube.weights = _check_aux(cube.weights, "weights", cube.shape, allow_bool=False)
    cube.mask = _check_aux(cube.mask, "mask", cube.shape, allow_bool=True)
    if isinstance(cube.weights, np.ndarray):
        if np.any(cube.weights < 0):
            raise InputError(
                f"weights has {int(np.count_nonzero(cube.weights < 0))} negative value(s); "
                f"weights are 1/sigma and must be >= 0 (0 or NaN leaves a sample out)"
            )
    return cube


def _is_xarray(obj):
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, xr.DataArray)


def _check_aux(arr, argname, shape, *, allow_bool):
    if arr is None:
        return None
    if _is_xarray(arr):
        arr = arr.data
    if isinstance(arr, (list, tuple)) or np.isscalar(arr):
        arr = np.asarray(arr)
    arr = _as_array(arr, argname)
    kind = np.dtype(arr.dtype).kind
    if allow_bool:
        if kind not in "biu":
            raise InputTypeError(
                f"{argname} must have a boolean dtype (True = leave the sample out); got "
                f"dtype {np.dtype(arr.dtype)}"
            )
    else:
        _real_dtype_check(arr.dtype, argname)
    try:
        out = np.broadcast_shapes(tuple(arr.shape), shape)
    except ValueError:
        out = None
    if out != tuple(shape):
        raise InputError(
            f"{argname} has shape {tuple(arr.shape)}, which does not broadcast to the data "
            f"shape {tuple(shape)}"
        )
    return arr


def normalise_fitting_axes(fitting_axes, ndim, dims=None):
    """Return the fitting axes as a tuple of non-negative ints.

    Accepts an int, a dimension name (for a DataArray) or a tuple of them;
    negative ints count from the end.
    """
    if fitting_axes is None:
        raise InputTypeError(
            "fitting_axes must be an int, a dimension name or a tuple of them; got None"
        )
    items = fitting_axes if isinstance(fitting_axes, (tuple, list)) else (fitting_axes,)
    if len(items) == 0:
        raise InputError("fitting_axes is empty; name at least one axis to fit along")
    out = []
    for item in items:
        if isinstance(item, str):
            if dims is None:
                raise InputError(
                    f"fitting_axes names the dimension {item!r}, but data has no dimension "
                    f"names (only an xarray.DataArray has them); give axis numbers instead"
                )
            if item not in dims:
                raise InputError(
                    f"fitting_axes names {item!r}, which is not a dimension of data; its "
                    f"dimensions are {dims}"
                )
            out.append(dims.index(item))
        elif isinstance(item, numbers.Integral) and not isinstance(item, (bool, np.bool_)):
            try:
                out.append(normalize_axis_index(int(item), ndim))
            except np.exceptions.AxisError:
                raise InputError(
                    f"fitting_axes value {item} is out of range for {ndim}-dimensional data "
                    f"(valid: {-ndim} to {ndim - 1})"
                ) from None
        else:
            raise InputTypeError(
                f"fitting_axes must hold ints or dimension names; got {item!r} "
                f"({type(item).__name__})"
            )
    if len(set(out)) != len(out):
        raise InputError(f"fitting_axes={fitting_axes!r} names the same axis more than once")
    return tuple(out)


def normalise_world(world, cube, fitting_axes):
    """Return a :class:`WorldSpec` for ``world`` (see ``parallel_fit``)."""
    from astropy import units as u
    from astropy.wcs.wcsapi import BaseHighLevelWCS, BaseLowLevelWCS

    shape = cube.shape
    fitting_shape = tuple(shape[a] for a in fitting_axes)
    n_fit = len(fitting_axes)
    if world is None:
        arrays = []
        for a in fitting_axes:
            dim = cube.dims[a] if cube.dims else None
            if dim is not None and dim in cube.coords:
                coord = np.asarray(cube.coords[dim])
                if coord.dtype.kind not in "fiu":
                    raise InputError(
                        f"the coordinate of fitting dimension {dim!r} has dtype {coord.dtype}; "
                        f"pass world= explicitly with numeric values"
                    )
                arrays.append(coord.astype(np.float64))
            else:
                arrays.append(np.arange(shape[a], dtype=np.float64))
        return WorldSpec("shared", _grid(arrays), (None,) * n_fit)

    if isinstance(world, BaseHighLevelWCS):
        world = world.low_level_wcs
    if isinstance(world, BaseLowLevelWCS):
        return _world_from_wcs(world, shape, fitting_axes)

    if not isinstance(world, (tuple, list)):
        raise InputTypeError(
            f"world must be None, an astropy WCS or a tuple of arrays (one per fitting "
            f"axis); got {type(world).__name__}"
        )
    if len(world) != n_fit:
        raise InputError(
            f"world has {len(world)} array(s) but there are {n_fit} fitting axes "
            f"{fitting_axes}; give one array per fitting axis, in the order of fitting_axes"
        )
    arrays, units = [], []
    for k, w in enumerate(world):
        unit = None
        if isinstance(w, u.Quantity):
            unit, w = w.unit, w.value
        if not _is_dask(w):
            w = np.asarray(w)
        _real_dtype_check(w.dtype, f"world[{k}]")
        arrays.append(w)
        units.append(unit)
    units = tuple(units)
    if all(len(w.shape) == 1 for w in arrays):
        for k, (w, a) in enumerate(zip(arrays, fitting_axes)):
            if w.shape[0] != shape[a]:
                raise InputError(
                    f"world[{k}] has length {w.shape[0]} but data has length {shape[a]} "
                    f"along axis {a} (fitting_axes[{k}])"
                )
        arrays = [np.asarray(w, dtype=np.float64) for w in arrays]
        _check_finite_world(arrays)
        return WorldSpec("shared", _grid(arrays), units)

    for k, w in enumerate(arrays):
        try:
            ok = np.broadcast_shapes(tuple(w.shape), shape) == shape
        except ValueError:
            ok = False
        if not ok:
            raise InputError(
                f"world[{k}] has shape {tuple(w.shape)}; world arrays must be 1-D (the "
                f"length of their fitting axis) or broadcastable to the data shape {shape}"
            )
    iterating = [a for a in range(len(shape)) if a not in fitting_axes]
    padded = [(1,) * (len(shape) - len(w.shape)) + tuple(w.shape) for w in arrays]
    if all(all(p[a] == 1 for a in iterating) for p in padded):
        shared = []
        for w, p in zip(arrays, padded):
            w = np.asarray(w, dtype=np.float64).reshape(p)
            w = w[tuple(0 if a in iterating else slice(None) for a in range(len(shape)))]
            # Remaining axes are the fitting axes in increasing order.
            order = np.argsort(np.argsort(fitting_axes))
            w = np.transpose(w, order) if w.ndim > 1 else w
            shared.append(np.broadcast_to(w, fitting_shape).astype(np.float64))
        _check_finite_world(shared)
        return WorldSpec("shared", tuple(shared), units)
    return WorldSpec("nd", tuple(arrays), units)


def _grid(arrays):
    """Broadcast 1-D axis values to the fitting shape ("ij" indexing)."""
    if len(arrays) == 1:
        return (np.asarray(arrays[0], dtype=np.float64),)
    return tuple(np.ascontiguousarray(g) for g in np.meshgrid(*arrays, indexing="ij"))


def _check_finite_world(arrays):
    for k, w in enumerate(arrays):
        bad = ~np.isfinite(w)
        if bad.any():
            raise InputError(
                f"world[{k}] has {int(bad.sum())} non-finite value(s) (NaN or inf); world "
                f"coordinates of the fitting axes must be finite"
            )


def _world_from_wcs(wcs, shape, fitting_axes):
    from astropy import units as u
    from astropy.wcs.wcsapi.wrappers import SlicedLowLevelWCS

    ndim = len(shape)
    if wcs.pixel_n_dim != ndim:
        raise InputError(
            f"the WCS has {wcs.pixel_n_dim} pixel axes but data has {ndim} dimensions; "
            f"they must match"
        )
    fitting_world = SlicedLowLevelWCS(
        wcs, [slice(None) if i in fitting_axes else 0 for i in range(ndim)]
    )
    if fitting_world.world_n_dim != len(fitting_axes):
        raise InputError(
            f"the WCS has {fitting_world.world_n_dim} world axes along the fitting axes "
            f"{fitting_axes}, but there are {len(fitting_axes)} fitting axes; they must match"
        )
    corr = np.asarray(wcs.axis_correlation_matrix)
    # WCS pixel axes run in the reverse order of numpy axes.
    world_index = tuple(int(np.argwhere(corr[:, ndim - 1 - a])[0, 0]) for a in fitting_axes)
    units = tuple(u.Unit(wcs.world_axis_units[i]) if wcs.world_axis_units[i] else None
                  for i in world_index)
    iterating_pixel = [ndim - 1 - a for a in range(ndim) if a not in fitting_axes]
    depends_on_iterating = corr[np.array(world_index)][:, iterating_pixel].any()
    if depends_on_iterating:
        return WorldSpec("wcs", (), units, wcs=wcs, wcs_world_index=world_index)
    # World values along the fitting axes do not depend on the position
    # along the iterating axes: compute them once on the fitting grid.
    fitting_shape = tuple(shape[a] for a in fitting_axes)
    grids = np.meshgrid(*[np.arange(n) for n in fitting_shape], indexing="ij")
    index = []
    for a in range(ndim):
        if a in fitting_axes:
            index.append(grids[fitting_axes.index(a)])
        else:
            index.append(np.zeros(fitting_shape, dtype=int))
    values = wcs_world_values(wcs, index)
    arrays = tuple(np.asarray(values[i], dtype=np.float64) for i in world_index)
    return WorldSpec("shared", arrays, units)


def wcs_world_values(wcs, index_arrays):
    """World values (one array per world axis) at numpy array indices."""
    values = wcs.array_index_to_world_values(*index_arrays)
    if wcs.world_n_dim == 1:
        values = (values,)
    return values
