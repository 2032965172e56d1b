"""Units: strip them before fitting, put them back on the fitted model.

Fits run on plain float64 numbers.  With an astropy model and an astropy
fitter this follows ``parallel_fit_dask`` step by step (world coordinates
converted to the model's ``input_units``, ``without_units_for_data`` before
the fits, ``with_units_from_data`` after), so results match astropy's.  For
parfit models every parameter is converted to the unit it must have given
the world and data units (``Model._parameter_units``), and keeps that unit.
"""

import dataclasses

import numpy as np

from .errors import InputError

__all__ = ["UnitsPlan", "prepare_units"]


@dataclasses.dataclass
class UnitsPlan:
    """The unitless model and world to fit, and how to restore units."""

    model: object
    world: object
    parameter_units: dict
    restore_fn: object

    def restore(self, maps):
        """The fitted model (same kind as given) holding the maps ``maps``."""
        fitted = self.restore_fn(maps)
        if self.parameter_units is None:
            self.parameter_units = {
                name: getattr(getattr(fitted, name), "unit", None) for name in maps
            }
        return fitted


def prepare_units(model, kind, world, data_unit, equivalencies=None):
    """Return a :class:`UnitsPlan` for fitting ``model`` on ``world``."""
    if kind == "astropy":
        return _astropy_units(model, world, data_unit, equivalencies)
    return _parfit_units(model, world, data_unit, equivalencies)


def _convert(unit, target, values, equivalencies, what):
    try:
        return unit.to(target, value=values, equivalencies=equivalencies or [])
    except Exception as exc:
        raise InputError(f"cannot convert {what} from {unit} to {target}: {exc}") from None


def _convert_world(world, units, targets, equivalencies):
    """A copy of ``world`` with its arrays converted to ``targets``.

    ``equivalencies`` holds one list of equivalencies per fitting axis.
    """
    if all(u is None or t is None or u == t for u, t in zip(units, targets)):
        return dataclasses.replace(world, units=tuple(targets))
    if world.kind == "wcs":
        raise InputError(
            "the model needs its inputs in other units than the WCS gives, and the world "
            "coordinates vary from pixel to pixel; give world= as arrays in the model's "
            "input units instead"
        )
    arrays = tuple(
        w if (u is None or t is None or u == t)
        else _convert(u, t, w, eq, f"world[{k}]")
        for k, (w, u, t, eq) in enumerate(zip(world.arrays, units, targets, equivalencies))
    )
    return dataclasses.replace(world, arrays=arrays, units=tuple(targets))


def _astropy_units(model, world, data_unit, equivalencies):
    from astropy import units as u

    if not (model._has_units or data_unit is not None):
        def restore(maps):
            fitted = model.copy()
            fitted._reset_parameters(**maps)
            return fitted

        return UnitsPlan(model, world, {name: None for name in model.param_names}, restore)

    from astropy.modeling.utils import _combine_equivalency_dict

    input_equivalencies = _combine_equivalency_dict(
        model.inputs, equivalencies, model.input_units_equivalencies
    )
    world_units = list(world.units)
    if model.input_units is None:
        targets = world_units[:]
    else:
        targets = [model.input_units[model.inputs[i]] for i in range(model.n_inputs)]
        world = _convert_world(
            world, world_units, targets,
            [input_equivalencies[model.inputs[i]] for i in range(model.n_inputs)],
        )
    if any(t is None for t in targets) or data_unit is None:
        missing = "data_unit" if data_unit is None else "world units"
        raise InputError(
            f"the model has units, so the fit needs both the data unit and the world units, "
            f"but {missing} is unknown; pass data as a Quantity or data_unit=, and world "
            f"as Quantity arrays or a WCS"
        )
    rename = {model.inputs[0]: (0,) * u.Unit(targets[0]), model.outputs[0]: (0,) * data_unit}
    if model.n_inputs == 2:
        rename[model.inputs[1]] = (0,) * u.Unit(targets[1])
    else:
        rename["z"] = None
    try:
        unitless = model.without_units_for_data(**rename)
    except Exception as exc:
        raise InputError(
            f"cannot express the model parameters in the units of the data ({data_unit}) "
            f"and world ({', '.join(str(t) for t in targets)}): {exc}"
        ) from None

    def restore(maps):
        fitted = unitless.copy()
        fitted._reset_parameters(**maps)
        return fitted.with_units_from_data(**rename)

    return UnitsPlan(unitless, world, None, restore)


def _model_input_units(model, world_units, data_unit, declared):
    """The units the model's own parameters give its inputs.

    An input whose world unit is ``u`` and that has a parameter of unit
    ``u`` (like a line centre) takes that parameter's declared unit if it
    differs but is convertible: world values in m/s meet a model written in
    km/s by converting the world, not the model.
    """
    from astropy import units as u

    probe = model._parameter_units(tuple(world_units), data_unit)
    out = list(world_units)
    for k, unit in enumerate(world_units):
        if unit is None:
            continue
        for name in model.param_names:
            wanted = declared[name]
            if probe.get(name) == unit and wanted is not None and wanted != unit:
                try:
                    unit.to(wanted)
                except u.UnitConversionError:
                    continue
                out[k] = wanted
                break
    return out


def _parfit_units(model, world, data_unit, equivalencies):
    declared = {name: getattr(model, name).unit for name in model.param_names}
    if data_unit is None and all(unit is None for unit in world.units):
        return UnitsPlan(model, world, declared, lambda maps: model.with_values(maps))
    inputs = _model_input_units(model, world.units, data_unit, declared)
    world = _convert_world(world, world.units, inputs, [equivalencies or []] * len(inputs))
    targets = model._parameter_units(tuple(world.units), data_unit)
    fit_model = model.copy()
    for name in fit_model.param_names:
        par = getattr(fit_model, name)
        target = targets.get(name)
        if target is None or par.unit is None or par.unit == target:
            if target is not None:
                par.unit = target
            continue
        value = _convert(par.unit, target, par.value, equivalencies, f"parameter {name!r}")
        bounds = [None if b is None else _convert(par.unit, target, b, equivalencies,
                                                  f"the bounds of parameter {name!r}")
                  for b in (par.lower, par.upper)]
        if bounds[0] is not None and bounds[1] is not None and np.any(bounds[0] > bounds[1]):
            bounds = bounds[::-1]
        par.bounds = (None, None)
        par.value = value
        par.bounds = tuple(bounds)
        par.unit = target
    units = {name: getattr(fit_model, name).unit for name in fit_model.param_names}
    return UnitsPlan(fit_model, world, units, lambda maps: fit_model.with_values(maps))
