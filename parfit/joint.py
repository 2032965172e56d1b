"""Joint fits: several cubes per pixel, fitted together (``parallel_fit`` with mappings).

Each dataset is checked and normalised on its own, exactly as a single
fit would be (its units, axes, masks, weights and world), then the
datasets' samples are laid end to end per pixel: the joint cube has one
fitting axis of all the datasets' samples and the iterating axes they
share, and the model is a :class:`~parfit.models.JointModel` of their
models.  The engine fits it like any other cube, so every scheduler,
block size, the store and resume work unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from parfit.engine.inputs import CubeInput, WorldSpec, iterating_wcs
from parfit.engine.request import DatasetLayout, FitRequest
from parfit.engine.units import UnitsPlan
from parfit.errors import InputError, InputTypeError, ParameterError
from parfit.models.base import Model, is_model
from parfit.models.joint import JointModel, check_dataset_names, split_dataset_ties, tie_names

__all__ = ["JointPlan", "is_joint", "joint_request"]

#: The joint cube's fitting dimension (all the datasets' samples, end to end).
SAMPLE_DIM = "sample"


def is_joint(model: Any, data: Any) -> bool:
    """Whether ``parallel_fit`` got mappings of datasets (a joint fit).

    ``data`` a mapping, or ``model`` a mapping of models: a mapping of
    anything else is no model, and the single fit's checks say so.
    """
    if isinstance(data, Mapping):
        return True
    return isinstance(model, Mapping) and bool(model) and all(is_model(m) for m in model.values())


@dataclasses.dataclass
class JointPlan:
    """What a joint fit needs besides its request: per-dataset units and the maps' WCS.

    Attributes
    ----------
    datasets : tuple of str
        The dataset names, in the order of their samples.
    units : dict of str to UnitsPlan
        Each dataset's units: ``units[name].world.units`` the units of its
        world coordinates as fitted, ``units[name].cube.data_unit`` (or
        ``units[name].data_unit``) the unit of its data as fitted.
    translated : dict of str to bool
        Whether each dataset's model was an astropy model, translated.
    wcs : astropy.wcs.WCS or None
        The WCS of the maps (of the first dataset's iterating axes).
    dims : tuple of str or None
        The maps' dimension names.
    coords : dict
        The maps' coordinates.
    start_models : dict
        Each dataset's model as given.
    """

    datasets: tuple[str, ...]
    units: dict[str, UnitsPlan]
    translated: dict[str, bool]
    wcs: Any
    dims: tuple[str, ...] | None
    coords: dict[str, Any]
    start_models: dict[str, Any]

    def parameter_units(self) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        for name, plan in self.units.items():
            if plan.parameter_units is None:
                return None
            out.update({f"{name}.{p}": unit for p, unit in plan.parameter_units.items()})
        return out


def _per_dataset(value: Any, names: tuple[str, ...], argname: str) -> dict[str, Any]:
    """``value`` for each dataset: a mapping keyed by every dataset, or one value for all."""
    if not isinstance(value, Mapping):
        return {name: value for name in names}
    missing = [n for n in names if n not in value]
    if missing:
        raise InputError(
            f"{argname}: no entry for dataset(s) {', '.join(map(repr, missing))}; give "
            f"{argname} for every dataset ({', '.join(names)}), or one value for all"
        )
    unknown = [k for k in value if k not in names]
    if unknown:
        raise InputError(
            f"{argname}: unknown dataset(s) {', '.join(map(repr, unknown))}; the datasets are "
            f"{', '.join(names)} (the keys of data)"
        )
    return {name: value[name] for name in names}


def _datasets(model: Any, data: Any) -> tuple[str, ...]:
    if not isinstance(data, Mapping):
        raise InputTypeError(
            "model is a mapping of datasets (a joint fit), so data must be a mapping of the "
            f"same dataset names to cubes; got data of type {type(data).__name__}"
        )
    if not isinstance(model, Mapping):
        raise InputTypeError(
            "data is a mapping of datasets (a joint fit), so model must be a mapping of the "
            f"same dataset names to models; got model of type {type(model).__name__}"
        )
    names = tuple(data)
    check_dataset_names(names, "data")
    _per_dataset(model, names, "model")
    return names


def joint_request(
    single: Callable[..., tuple[FitRequest, UnitsPlan, bool]],
    model: Any,
    data: Any,
    fitter: Any,
    world: Any,
    fitting_axes: Any,
    weights: Any,
    mask: Any,
    data_unit: Any,
    equivalencies: Any,
    options: Any,
) -> tuple[FitRequest, JointPlan]:
    """The checked request of a joint fit, and its :class:`JointPlan`.

    ``single`` builds the request of one dataset (``parfit.fit._request``);
    its errors are raised naming the dataset.
    """
    names = _datasets(model, data)
    models = _per_dataset(model, names, "model")
    by_dataset = options.initial_by_dataset
    initial = _per_dataset(by_dataset, names, "initial") if by_dataset is not None else {}
    guessing = {n: initial[n] == "guess" if initial else options.guess for n in names}
    per = {
        "world": _per_dataset(world, names, "world"),
        "fitting_axes": _per_dataset(fitting_axes, names, "fitting_axes"),
        "weights": _per_dataset(weights, names, "weights"),
        "mask": _per_dataset(mask, names, "mask"),
        "data_unit": _per_dataset(data_unit, names, "data_unit"),
    }
    requests: dict[str, FitRequest] = {}
    units: dict[str, UnitsPlan] = {}
    translated: dict[str, bool] = {}
    across: dict[str, dict[str, str]] = {}
    alone: dict[str, Any] = {}
    for name in names:
        m = models[name]
        alone[name], across[name] = split_dataset_ties(m) if isinstance(m, Model) else (m, {})
    for name in _sources_first(names, across):
        m = alone[name]
        _units_from_sources(m, across[name], units)
        try:
            requests[name], units[name], translated[name] = single(
                m,
                data[name],
                fitter,
                per["world"][name],
                per["fitting_axes"][name],
                per["weights"][name],
                per["mask"][name],
                per["data_unit"][name],
                equivalencies,
                dataclasses.replace(options, guess=guessing[name], initial_by_dataset=None),
            )
        except (InputError, InputTypeError, ParameterError) as exc:
            raise type(exc)(f"dataset {name!r}: {exc}") from None
    requests = {name: requests[name] for name in names}  # the samples' order
    _check_tied_units(across, units)
    first = names[0]
    reference = requests[first]
    if not isinstance(reference.model, Model):
        raise InputTypeError(
            "a joint fit needs a parfit fitter (fitter=None, 'trf', 'dogbox' or 'lm'); "
            "astropy fitters fit one dataset at a time"
        )
    for name in names[1:]:
        shape = requests[name].iterating_shape
        if shape != reference.iterating_shape:
            raise InputError(
                f"data: dataset {name!r} has iterating shape {shape} but dataset {first!r} has "
                f"{reference.iterating_shape}; the cubes of a joint fit must have the same "
                f"shape along their iterating axes (one fit per pixel of all of them)"
            )
    for name, request in requests.items():
        if request.world.kind == "wcs":
            raise InputError(
                f"world: the spectral coordinates of dataset {name!r} vary from pixel to "
                f"pixel in its WCS; a joint fit takes world coordinates shared by every pixel "
                f"or given as arrays (world=(array,)); pass them as arrays"
            )
    sizes = {name: requests[name].n_samples for name in names}
    joint = JointModel({name: requests[name].model for name in names}, sizes)
    for name, ties in across.items():
        joint.tie(name, ties)
    joint.guess_datasets = tuple(n for n in names if guessing[n])
    joint.validate()
    fitter_obj = reference.fitter
    fitter_obj.check(joint, options.fitter_kwargs)
    if options.guess and not joint.can_guess:
        cannot = [n for n, m in joint.members.items() if not m.can_guess]
        raise InputError(
            f"initial='guess': the model of dataset(s) {', '.join(cannot)} cannot guess "
            f"starting values; give starting values in the model and initial='model'"
        )
    parameters = list(fitter_obj.parameter_arrays(joint))
    cube, world_spec = _joint_cube(requests)
    request = dataclasses.replace(
        reference,
        cube=cube,
        fitting_axes=(0,),
        model=joint,
        world=world_spec,
        parameters=parameters,
        preserve_native_chunks=False,
        datasets=tuple(
            DatasetLayout(
                name,
                r.cube.shape,
                r.fitting_axes,
                r.cube.dims,
                r.cube.world if not isinstance(r.cube.world, (tuple, list)) else None,
            )
            for name, r in requests.items()
        ),
    )
    plan = JointPlan(
        datasets=names,
        units=units,
        translated=translated,
        wcs=iterating_wcs(reference.cube.world, reference.iterating_axes, reference.cube.ndim),
        dims=cube.dims[1:] if cube.dims else None,
        coords=dict(cube.coords),
        start_models=dict(models),
    )
    return request, plan


def _single_source(expression: str) -> tuple[str, str] | None:
    """``(dataset, parameter)`` of a tie naming one parameter of another dataset."""
    used = tie_names(expression)
    if len(used) != 1 or "." not in used[0]:
        return None
    dataset, _, param = used[0].partition(".")
    return dataset, param


def _sources_first(names: tuple[str, ...], across: dict[str, dict[str, str]]) -> list[str]:
    """The datasets, those whose parameters others are tied to first (where there is an order)."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order or name in path:
            return
        for expr in across.get(name, {}).values():
            source = _single_source(expr)
            if source is not None and source[0] in across:
                visit(source[0], path + (name,))
        order.append(name)

    for name in names:
        visit(name, ())
    return order


def _units_from_sources(model: Any, ties: dict[str, str], units: dict[str, UnitsPlan]) -> None:
    """A parameter tied to another dataset's takes that one's unit, unless it declares one."""
    for param, expr in ties.items():
        source = _single_source(expr)
        if source is None or source[0] not in units:
            continue
        known = units[source[0]].parameter_units or {}
        unit = known.get(source[1])
        if unit is not None and model.parameters[param].unit is None:
            model.parameters[param].unit = unit


def _check_tied_units(across: dict[str, dict[str, str]], units: dict[str, UnitsPlan]) -> None:
    """Refuse a tie between parameters fitted in different units, naming both."""
    for name, ties in across.items():
        for param, expr in ties.items():
            source = _single_source(expr)
            if source is None or source[0] not in units:
                continue
            mine = (units[name].parameter_units or {}).get(param)
            theirs = (units[source[0]].parameter_units or {}).get(source[1])
            if mine is None or theirs is None or mine == theirs:
                continue
            raise InputError(
                f"model: {name}.{param} is tied to {source[0]}.{source[1]} ({expr!r}) but is "
                f"fitted in {mine} and {source[0]}.{source[1]} in {theirs}; give both the same "
                f"unit (for example {param}.unit = '{theirs}' on the model of {name})"
            )


def _flat(request: FitRequest, array: Any) -> Any:
    """``array`` (broadcastable to the dataset's cube) as ``(n_samples,) + iterating shape``."""
    cube = request.cube
    full = _broadcast(array, cube.shape)
    moved = full.transpose(request.order)
    return moved.reshape((request.n_samples,) + request.iterating_shape)


def _broadcast(array: Any, shape: tuple[int, ...]) -> Any:
    if hasattr(array, "dask"):
        import dask.array as da

        return da.broadcast_to(array, shape)
    return np.broadcast_to(np.asarray(array), shape)


def _concat(parts: list[Any]) -> Any:
    if any(hasattr(p, "dask") for p in parts):
        import dask.array as da

        return da.concatenate(parts, axis=0)
    return np.concatenate(parts, axis=0)


def _joint_cube(requests: dict[str, FitRequest]) -> tuple[CubeInput, WorldSpec]:
    """The datasets' samples end to end: one cube ``(total samples,) + iterating shape``."""
    reqs = list(requests.values())
    first = reqs[0]
    data = _concat([_flat(r, r.cube.data) for r in reqs])
    weights = None
    if any(r.cube.weights is not None for r in reqs):
        weights = _concat(
            [_flat(r, r.cube.weights if r.cube.weights is not None else 1.0) for r in reqs]
        )
    mask = None
    if any(r.cube.mask is not None for r in reqs):
        mask = _concat([_flat(r, r.cube.mask if r.cube.mask is not None else False) for r in reqs])
    n_inputs = len(first.world.arrays)
    if all(r.world.kind == "shared" for r in reqs):
        arrays = tuple(
            np.concatenate([np.asarray(r.world.arrays[k], dtype=np.float64).ravel() for r in reqs])
            for k in range(n_inputs)
        )
        world = WorldSpec("shared", arrays, (None,) * n_inputs)
    else:
        world_arrays = []
        for k in range(n_inputs):
            parts = []
            for r in reqs:
                w = r.world.arrays[k]
                if r.world.kind == "shared":
                    flat = np.asarray(w, dtype=np.float64).reshape(
                        (r.n_samples,) + (1,) * len(r.iterating_shape)
                    )
                    parts.append(np.broadcast_to(flat, (r.n_samples,) + r.iterating_shape))
                else:
                    parts.append(_flat(r, w))
            world_arrays.append(_concat(parts))
        world = WorldSpec("nd", tuple(world_arrays), (None,) * n_inputs)
    dims = None
    coords: dict[str, Any] = {}
    if first.cube.dims:
        dims = (SAMPLE_DIM,) + tuple(first.cube.dims[a] for a in first.iterating_axes)
        coords = {d: c for d, c in first.cube.coords.items() if d in dims}
    cube = CubeInput(
        data=data,
        weights=weights,
        mask=mask,
        world=world.arrays,
        dims=dims,
        coords=coords,
        name=None,
    )
    return cube, world
