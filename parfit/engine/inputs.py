"""Normalise what users pass as a cube into one internal description (engine input).

Accepts numpy arrays (and masked arrays), dask arrays, array-likes with a
``shape`` and ``dtype`` (zarr, h5py), astropy ``Quantity`` and ``NDData``,
xarray ``DataArray``, and paths of FITS, netCDF and zarr files, which
:func:`parfit.io.open_cube` opens lazily.  Everything is checked here, before any work is
dispatched, and every error names the argument at fault.
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from numpy.lib.array_utils import normalize_axis_index

from parfit.errors import InputError, InputTypeError
from parfit.io import open_cube

__all__ = [
    "CubeInput",
    "WorldSpec",
    "normalise_cube",
    "normalise_fitting_axes",
    "normalise_world",
    "iterating_wcs",
    "loaded_class",
    "wcs_world_values",
    "wcs_header",
    "weight_warnings",
]

if TYPE_CHECKING:
    from astropy.wcs import WCS

log = logging.getLogger(__name__)


@dataclasses.dataclass
class CubeInput:
    """A cube after normalisation (still lazy where it was lazy)."""

    #: numpy or dask array (still lazy where it was lazy).
    data: Any
    #: An astropy unit, or None.
    data_unit: Any = None
    weights: Any = None
    mask: Any = None
    #: An astropy WCS, a tuple of world arrays, or None.
    world: Any = None
    dims: tuple[str, ...] | None = None
    coords: dict[str, Any] = dataclasses.field(default_factory=dict)
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    name: str | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.data.shape)

    @property
    def ndim(self) -> int:
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
    arrays: tuple[Any, ...] = ()
    #: An astropy unit or None per fitting axis.
    units: tuple[Any, ...] = ()
    wcs: Any = None
    wcs_world_index: tuple[int, ...] = ()


def loaded_class(module: str, name: str) -> Any:
    """Class ``name`` of ``module`` if that module is loaded, else ``()``, for ``isinstance``.

    An object can only be an instance of a class whose module is loaded, so
    asking costs no import: a cube in memory does not pay for importing
    dask.array, xarray, astropy.nddata, astropy.wcs or distributed (0.4-0.9 s
    each of a first call) to learn it is none of theirs.

    Examples
    --------
    >>> isinstance(3, loaded_class("no_such_module", "Thing"))
    False
    """
    found = sys.modules.get(module)
    return getattr(found, name) if found is not None else ()


def _is_dask(obj: Any) -> bool:
    return isinstance(obj, loaded_class("dask.array", "Array"))


def _real_dtype_check(dtype: npt.DTypeLike, argname: str) -> None:
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


def _as_array(obj: Any, argname: str) -> Any:
    """numpy/dask stay as they are; other array-likes are wrapped lazily."""
    if isinstance(obj, np.ndarray) or _is_dask(obj):
        return obj
    if hasattr(obj, "shape") and hasattr(obj, "dtype") and hasattr(obj, "__getitem__"):
        import dask.array as da

        # Read in the store's own chunks (zarr, h5py) where it has them.
        chunks = getattr(obj, "chunks", None)
        if not (
            isinstance(chunks, tuple)
            and len(chunks) == len(obj.shape)
            and all(isinstance(c, numbers.Integral) for c in chunks)
        ):
            chunks = "auto"
        return da.from_array(obj, chunks=chunks)
    raise InputTypeError(
        f"{argname} must be an array (numpy, dask, xarray.DataArray, astropy Quantity or "
        f"NDData, or an array-like with shape and dtype such as a zarr array); got "
        f"{type(obj).__name__}. Convert it with numpy.asarray({argname}) first"
    )


def normalise_cube(
    data: Any,
    *,
    weights: Any = None,
    mask: Any = None,
    data_unit: Any = None,
    world: Any = None,
) -> CubeInput:
    """Unwrap ``data`` and gather what its container knows.

    What leaves a sample out (see the "What counts as a valid sample" section
    of the quickstart) is the union of every mask given: ``mask=``, the mask
    of a masked ``data`` (numpy ``MaskedArray``, astropy ``Masked``, or a
    dask array of masked chunks), the ``mask`` of an ``NDData``, the masked
    entries of a masked ``weights`` or ``mask``.  NaN and infinite data and
    zero or NaN weights are left out by the block kernel.

    NDData contributes its wcs (as ``world``) and unit where the matching
    argument is None (its values are converted to an explicit ``data_unit``,
    as a Quantity's are), and its uncertainty (as ``weights = 1 / sigma``) unless
    ``weights=`` is given, which replaces it, as astropy's ``support_nddata``
    does.  A ``Quantity`` gives ``data_unit``; a DataArray its dimension
    names and coordinates.  Nothing the caller passed is modified.
    """
    import os

    from astropy import units as u

    if isinstance(data, (str, os.PathLike)):
        data = open_cube(data)
    elif type(data).__name__ == "Group" and type(data).__module__.startswith("zarr"):
        raise InputTypeError(
            f"data is a zarr group (arrays: {', '.join(sorted(data.array_keys())) or 'none'}); "
            f"give one of its arrays (group['name']) or the store's path"
        )
    # After open_cube, which loads astropy.nddata for a file.
    NDData = loaded_class("astropy.nddata", "NDData")
    NDUncertainty = loaded_class("astropy.nddata", "NDUncertainty")
    cube = CubeInput(data=None, data_unit=data_unit, weights=weights, mask=None, world=world)
    if data_unit is not None:
        try:
            cube.data_unit = u.Unit(data_unit)
        except (ValueError, TypeError) as exc:
            raise InputError(f"data_unit={data_unit!r} is not a valid unit: {exc}") from None

    # Every mask that applies, with the name of the argument it came from.
    masks: list[tuple[str, Any]] = []
    if mask is not None:
        masks.append(("mask", mask))
    weights_name = "weights"
    nddata_factor = 1.0
    if isinstance(data, NDData):
        if data.wcs is not None:
            if cube.world is None:
                cube.world = data.wcs
            else:
                log.info("world given explicitly and by the NDData; using the explicit value")
        if data.unit is not None:
            if cube.data_unit is None:
                cube.data_unit = data.unit
            elif data.unit != cube.data_unit:
                # The values are in the NDData's unit: convert them, as for a Quantity.
                try:
                    nddata_factor = float(data.unit.to(cube.data_unit))
                except u.UnitConversionError:
                    raise InputError(
                        f"data is an NDData in {data.unit}, which cannot be converted to "
                        f"data_unit={cube.data_unit}; give a data_unit convertible from "
                        f"{data.unit}, or leave data_unit out"
                    ) from None
        if data.mask is not None:
            masks.append(("data.mask", data.mask))
        if data.uncertainty is not None:
            if cube.weights is None:
                cube.weights = data.uncertainty
                weights_name = "data.uncertainty"
            else:
                log.info(
                    "weights given explicitly and by the NDData (uncertainty); the "
                    "weights replace the uncertainty"
                )
        data = data.data

    data, data_mask = _split_masked(data)
    if data_mask is not None:
        masks.append(("the mask of data", data_mask))
    if isinstance(data, u.Quantity):
        if cube.data_unit is None:
            cube.data_unit = data.unit
            data = data.value
        else:
            try:
                data = data.to_value(cube.data_unit)
            except u.UnitConversionError:
                raise InputError(
                    f"data has unit {data.unit}, which cannot be converted to data_unit="
                    f"{cube.data_unit}; give a data_unit convertible from {data.unit}, or "
                    f"leave data_unit out"
                ) from None
    elif _is_xarray(data):
        cube.dims = tuple(str(d) for d in data.dims)
        cube.name = data.name
        cube.attrs = dict(data.attrs)
        for dim in data.dims:
            if dim in data.coords:
                cube.coords[str(dim)] = np.asarray(data.coords[dim].values)
        data = data.data
        data, data_mask = _split_masked(data)
        if data_mask is not None:
            masks.append(("the mask of data", data_mask))

    data = _as_array(data, "data")
    _real_dtype_check(data.dtype, "data")
    if len(data.shape) == 0:
        raise InputError(
            "data is a scalar (0-dimensional); expected an array with at least one axis"
        )
    if nddata_factor != 1.0:
        data = data * nddata_factor
    cube.data = data

    if isinstance(cube.weights, NDUncertainty):
        cube.weights = _uncertainty_weights(cube.weights, cube.data_unit, weights_name)
    elif isinstance(cube.weights, u.Quantity):
        cube.weights = _quantity_weights(cube.weights, cube.data_unit)
    if cube.weights is not None:
        if _is_xarray(cube.weights):
            cube.weights = cube.weights.data
        weights, weights_mask = _split_masked(cube.weights)
        if weights_mask is not None:
            # A masked weight is no weight: the sample is left out.
            where = da_or_np(weights, weights_mask).where
            weights = where(weights_mask, 0.0, weights)
        cube.weights = weights
    cube.weights = _check_aux(cube.weights, weights_name, cube.shape, allow_bool=False)
    if isinstance(cube.weights, np.ndarray):
        _check_weight_values(cube.weights, weights_name)
    cube.mask = _union_masks(masks, cube.shape)
    return cube


def da_or_np(*arrays: Any) -> Any:
    """The dask.array module if any of ``arrays`` is a dask array, else numpy."""
    if any(_is_dask(a) for a in arrays):
        import dask.array as da

        return da
    return np


def _split_masked(arr: Any) -> tuple[Any, Any]:
    """``(values, mask)`` of a masked array; ``(arr, None)`` for anything else.

    Handles numpy ``MaskedArray`` (a ``nomask`` gives None), astropy
    ``Masked`` arrays and quantities, and dask arrays whose chunks are
    masked arrays (lazily).  Never copies or modifies ``arr``'s values.
    """
    if isinstance(arr, np.ma.MaskedArray):
        if arr.mask is np.ma.nomask:
            return arr.data, None
        return arr.data, np.ma.getmaskarray(arr)
    try:
        from astropy.utils.masked import Masked
    except ImportError:  # pragma: no cover
        Masked = ()
    if isinstance(arr, Masked):
        return arr.unmasked, np.asarray(arr.mask)
    if _is_dask(arr) and isinstance(getattr(arr, "_meta", None), np.ma.MaskedArray):
        import dask.array as da

        return da.ma.getdata(arr), da.ma.getmaskarray(arr)
    return arr, None


def _union_masks(masks: Sequence[tuple[str, Any]], shape: tuple[int, ...]) -> Any:
    """One mask (True = leave out) from every ``(argname, mask)``; None if none.

    Each is checked (integer or boolean dtype, broadcastable to ``shape``);
    a nonzero integer counts as True, and the masked entries of a masked
    mask are left out too.  A single boolean mask is kept as it is.
    """
    checked: list[Any] = []
    for name, m in masks:
        if _is_xarray(m):
            m = m.data
        values, masked = _split_masked(m)
        values = _check_aux(values, name, shape, allow_bool=True)
        if masked is not None:
            masked = _check_aux(masked, f"the mask of {name}", shape, allow_bool=True)
        checked.append(values)
        if masked is not None:
            checked.append(masked)
    if not checked:
        return None
    if len(checked) == 1 and np.dtype(checked[0].dtype).kind == "b":
        return checked[0]
    xp = da_or_np(*checked)
    out = None
    for m in checked:
        m = m if np.dtype(m.dtype).kind == "b" else (m != 0)
        out = m if out is None else xp.logical_or(out, m)
    return out


def _count(condition: Any) -> int:
    return int(np.count_nonzero(condition))


def _check_weight_values(weights: np.ndarray, name: str) -> None:
    """Refuse negative and infinite in-memory weights (NaN and 0 leave a sample out)."""
    with np.errstate(invalid="ignore"):
        negative = _count(weights < 0)
    if negative:
        raise InputError(
            f"{name} has {negative} negative value(s); weights are 1/sigma and must be >= 0 "
            f"(0 or NaN leaves a sample out)"
        )
    infinite = _count(np.isinf(weights))
    if infinite:
        raise InputError(
            f"{name} has {infinite} infinite value(s): an infinite weight (zero "
            f"uncertainty) claims a sample is exact, which a least-squares fit cannot weigh; "
            f"give those samples finite weights, or leave them out with mask= (a zero or NaN "
            f"weight also leaves a sample out)"
        )


def weight_warnings(weights: npt.ArrayLike) -> dict[int, str]:
    """Per-fit warnings for the samples left out for an infinite or negative weight.

    In-memory weights with such values are refused before dispatch; lazy
    (dask) ones are only seen block by block, where those samples are left
    out and each affected fit is told why.

    Parameters
    ----------
    weights : ndarray, shape (n_fits, n_samples)
        The weights of one block, one row per fit.

    Returns
    -------
    dict of int to str
        One warning per affected fit (row index).

    Examples
    --------
    >>> w = np.array([[1.0, np.inf, 2.0], [1.0, 1.0, 1.0], [-1.0, -2.0, np.inf]])
    >>> for row, text in weight_warnings(w).items():
    ...     print(row, text)
    0 1 sample(s) with an infinite weight (zero uncertainty) left out: a sample claimed to be
    exact cannot be weighed by a least-squares fit
    2 1 sample(s) with an infinite weight (zero uncertainty) and 2 with a negative weight left
    out: a sample claimed to be exact cannot be weighed by a least-squares fit, and weights must
    be >= 0
    """
    weights = np.asarray(weights)
    with np.errstate(invalid="ignore"):
        infinite = np.count_nonzero(np.isposinf(weights), axis=1)
        negative = np.count_nonzero(weights < 0, axis=1)
    out: dict[int, str] = {}
    for row in np.flatnonzero((infinite > 0) | (negative > 0)):
        n_inf, n_neg = int(infinite[row]), int(negative[row])
        if n_inf and n_neg:
            text = (
                f"{n_inf} sample(s) with an infinite weight (zero uncertainty) and {n_neg} "
                f"with a negative weight left out: a sample claimed to be exact cannot be "
                f"weighed by a least-squares fit, and weights must be >= 0"
            )
        elif n_inf:
            text = (
                f"{n_inf} sample(s) with an infinite weight (zero uncertainty) left out: a "
                f"sample claimed to be exact cannot be weighed by a least-squares fit"
            )
        else:
            text = (
                f"{n_neg} sample(s) with a negative weight left out: weights are 1/sigma "
                f"and must be >= 0"
            )
        out[int(row)] = text
    return out


#: The kinds of NDUncertainty parfit converts itself, and the power of sigma they hold.
_UNCERTAINTY_POWERS = {"StdDevUncertainty": 1, "VarianceUncertainty": 2, "InverseVariance": -2}


def _uncertainty_weights(unc: Any, data_unit: Any, name: str) -> Any:
    """``1 / sigma`` weights from an astropy ``NDUncertainty`` (lazily for dask).

    An infinite or NaN sigma gives weight 0 or NaN (the sample is left
    out).  In memory, negative uncertainties and zero sigma (a sample
    claimed to be exact) are refused, naming ``name``.
    """
    from astropy import units as u
    from astropy.nddata import StdDevUncertainty

    kind = type(unc).__name__
    if kind in _UNCERTAINTY_POWERS:
        power = _UNCERTAINTY_POWERS[kind]
        values = unc.array
    else:
        try:
            values = unc.represent_as(StdDevUncertainty).array
        except Exception as exc:  # astropy raises several kinds for unknown uncertainties
            raise InputTypeError(
                f"{name} is a {kind}, which cannot be converted to standard deviations "
                f"({type(exc).__name__}: {exc}); give a StdDevUncertainty, "
                f"VarianceUncertainty or InverseVariance"
            ) from None
        power = 1
    if values is None:
        raise InputError(f"{name} ({kind}) holds no array; give it the uncertainties")
    values, masked = _split_masked(values)
    if isinstance(values, (list, tuple)):
        values = np.asarray(values)
    if not (isinstance(values, np.ndarray) or _is_dask(values)):
        values = np.asarray(values)
    _real_dtype_check(values.dtype, name)
    unit = getattr(unc, "unit", None)
    if unit is not None and data_unit is not None:
        target = u.Unit(data_unit) ** power
        try:
            factor = u.Unit(unit).to(target)
        except u.UnitConversionError:
            raise InputError(
                f"{name} ({kind}) has unit {unit}, which cannot be converted to {target} "
                f"(the data unit {data_unit} to the power {power}); give the uncertainty in "
                f"units of the data"
            ) from None
        if factor != 1.0:
            values = values * factor
    if isinstance(values, np.ndarray):
        with np.errstate(invalid="ignore"):
            bad = values < 0
            if masked is not None:
                bad &= ~masked
            negative = _count(bad)
        if negative:
            raise InputError(
                f"{name} ({kind}) has {negative} negative value(s); uncertainties must be "
                f">= 0 (an infinite or NaN uncertainty leaves a sample out)"
            )
        exact = (values == 0) if power > 0 else np.isinf(values)
        if masked is not None:
            exact &= ~masked
        n_exact = _count(exact)
        if n_exact:
            label = "zero" if power > 0 else "infinite"
            raise InputError(
                f"{name} ({kind}) has {n_exact} {label} value(s): a sample with zero "
                f"uncertainty claims to be exact, which a least-squares fit cannot weigh; "
                f"give those samples their real uncertainty, or leave them out with mask= "
                f"(an infinite or NaN uncertainty also leaves a sample out)"
            )
    xp = da_or_np(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = values.astype(np.float64) if values.dtype != np.float64 else values
        if power == 1:
            weights = 1.0 / values
        elif power == 2:
            weights = 1.0 / xp.sqrt(values)
        else:
            weights = xp.sqrt(values)
    if masked is not None:
        weights = xp.where(masked, 0.0, weights)
    return weights


def _quantity_weights(weights: Any, data_unit: Any) -> Any:
    """The values of Quantity weights, in ``1 / data_unit`` where that is known."""
    from astropy import units as u

    if data_unit is None:
        return weights.value
    target = u.Unit(data_unit) ** -1
    try:
        return weights.to_value(target)
    except u.UnitConversionError:
        raise InputError(
            f"weights has unit {weights.unit}, which cannot be converted to {target}: weights "
            f"are 1/sigma in the inverse unit of the data ({data_unit}); give them in {target} "
            f"or as plain numbers"
        ) from None


def _is_xarray(obj: Any) -> bool:
    return isinstance(obj, loaded_class("xarray", "DataArray"))


def _check_aux(arr: Any, argname: str, shape: tuple[int, ...], *, allow_bool: bool) -> Any:
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
                f"{argname} must have a boolean dtype (True = leave the sample out) or an "
                f"integer one (nonzero = leave the sample out); got dtype "
                f"{np.dtype(arr.dtype)}. Convert it, e.g. mask=(values != 0)"
            )
    elif kind == "b":
        raise InputTypeError(
            f"{argname} has boolean dtype; weights are numbers (1/sigma). To leave samples "
            f"out, pass mask= (True = leave the sample out); for equal weights, omit weights"
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


def normalise_fitting_axes(
    fitting_axes: Any, ndim: int, dims: Sequence[str] | None = None
) -> tuple[int, ...]:
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
    out: list[int] = []
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


def normalise_world(world: Any, cube: CubeInput, fitting_axes: tuple[int, ...]) -> WorldSpec:
    """Return a :class:`WorldSpec` for ``world`` (see ``parallel_fit``)."""
    from astropy import units as u

    high = loaded_class("astropy.wcs.wcsapi", "BaseHighLevelWCS")
    low = loaded_class("astropy.wcs.wcsapi", "BaseLowLevelWCS")
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

    if isinstance(world, high):
        world = world.low_level_wcs
    if isinstance(world, low):
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
    units: list[Any] | tuple[Any, ...]
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
        shared: list[np.ndarray] = []
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


def _grid(arrays: Sequence[Any]) -> tuple[np.ndarray, ...]:
    """Broadcast 1-D axis values to the fitting shape ("ij" indexing)."""
    if len(arrays) == 1:
        return (np.asarray(arrays[0], dtype=np.float64),)
    return tuple(np.ascontiguousarray(g) for g in np.meshgrid(*arrays, indexing="ij"))


def _check_finite_world(arrays: Sequence[Any]) -> None:
    for k, w in enumerate(arrays):
        bad = ~np.isfinite(w)
        if bad.any():
            raise InputError(
                f"world[{k}] has {int(bad.sum())} non-finite value(s) (NaN or inf); world "
                f"coordinates of the fitting axes must be finite"
            )


def _world_from_wcs(wcs: Any, shape: tuple[int, ...], fitting_axes: tuple[int, ...]) -> WorldSpec:
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
    units = tuple(
        u.Unit(wcs.world_axis_units[i]) if wcs.world_axis_units[i] else None for i in world_index
    )
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


def wcs_world_values(wcs: Any, index_arrays: Sequence[Any]) -> Any:
    """World values (one array per world axis) at numpy array indices."""
    values = wcs.array_index_to_world_values(*index_arrays)
    if wcs.world_n_dim == 1:
        values = (values,)
    return values


def iterating_wcs(world: Any, iterating_axes: Sequence[int], ndim: int) -> WCS | None:
    """The WCS of the iterating axes (for writing maps to FITS), if the cube has a FITS WCS."""
    wcs = getattr(world, "low_level_wcs", world)
    if not isinstance(wcs, loaded_class("astropy.wcs", "WCS")) or not iterating_axes:
        return None
    try:
        return wcs.sub([ndim - a for a in sorted(iterating_axes, reverse=True)])
    except Exception:  # a WCS that cannot be split keeps no map WCS
        log.info("could not split the WCS along the iterating axes", exc_info=True)
        return None


def wcs_header(wcs: Any) -> str | None:
    """The FITS header of a WCS as text, or None (no WCS, or one without a FITS form)."""
    if wcs is None:
        return None
    try:
        return wcs.to_header_string()
    except Exception:  # a WCS without a FITS form
        return None
