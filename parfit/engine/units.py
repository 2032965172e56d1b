"""Units: strip them before fitting, put them back on the fitted model.

Fits run on plain float64 numbers.  With an astropy model and an astropy
fitter this follows ``parallel_fit_dask`` step by step (world coordinates
converted to the model's ``input_units``, ``without_units_for_data`` before
the fits, ``with_units_from_data`` after), so results match astropy's.  For
parfit models every parameter is converted to the unit it must have given
the world and data units (``Model._parameter_units``), and keeps that unit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from parfit.errors import InputError

if TYPE_CHECKING:
    from parfit.engine.inputs import CubeInput, WorldSpec

__all__ = ["UnitsPlan", "prepare_units"]


@dataclasses.dataclass
class UnitsPlan:
    """The unitless model and world to fit, and how to restore units."""

    model: Any
    world: WorldSpec
    #: None (astropy models with units) until :meth:`restore` learns them.
    parameter_units: dict[str, Any] | None
    restore_fn: Callable[[dict[str, Any]], Any]
    #: The unit the data are fitted in, and the factor that takes the data
    #: from their own unit to it (1.0: fitted as they are).
    data_unit: Any = None
    data_scale: float = 1.0
    #: With ``prepare_units(..., cube=)``: the cube to fit, its data (and
    #: weights) converted to ``data_unit``.
    cube: CubeInput | None = None

    def restore(self, maps: dict[str, Any]) -> Any:
        """The fitted model (same kind as given) holding the maps ``maps``."""
        fitted = self.restore_fn(maps)
        if self.parameter_units is None:
            self.parameter_units = {
                name: getattr(getattr(fitted, name), "unit", None) for name in maps
            }
        return fitted


def prepare_units(
    model: Any,
    kind: str,
    world: WorldSpec,
    data_unit: Any,
    equivalencies: Any = None,
    *,
    cube: CubeInput | None = None,
) -> UnitsPlan:
    """Return a :class:`UnitsPlan` for fitting ``model`` on ``world``.

    parfit models are fitted in the units they declare: world coordinates
    are converted to the unit of the model's positions (a line centre),
    with ``equivalencies`` where needed (frequencies to the velocities of a
    model written in km/s); with ``cube`` (a :class:`parfit.io.CubeInput`)
    the data are scaled to the unit of the model's amplitudes (mK data for
    a model in K; ``plan.cube`` is the cube to fit), so the maps come back
    in the model's units.  Parameters that still need converting are
    converted as positions, and widths (stddev, fwhm, gamma of a peak) as
    differences around their peak's centre.
    """
    if kind == "astropy":
        plan = _astropy_units(model, world, data_unit, equivalencies)
        plan.data_unit, plan.cube = data_unit, cube
        return plan
    return _parfit_units(model, world, data_unit, equivalencies, cube)


def _convert(unit: Any, target: Any, values: Any, equivalencies: Any, what: str) -> Any:
    try:
        return unit.to(target, value=values, equivalencies=equivalencies or [])
    except Exception as exc:
        raise InputError(f"cannot convert {what} from {unit} to {target}: {exc}") from None


def _convert_world(
    world: WorldSpec,
    units: Sequence[Any],
    targets: Sequence[Any],
    equivalencies: Sequence[Any],
) -> WorldSpec:
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
        w if (u is None or t is None or u == t) else _convert(u, t, w, eq, f"world[{k}]")
        for k, (w, u, t, eq) in enumerate(zip(world.arrays, units, targets, equivalencies))
    )
    return dataclasses.replace(world, arrays=arrays, units=tuple(targets))


def _astropy_units(model: Any, world: WorldSpec, data_unit: Any, equivalencies: Any) -> UnitsPlan:
    from astropy import units as u

    if not (model._has_units or data_unit is not None):

        def restore_plain(maps: dict[str, Any]) -> Any:
            fitted = model.copy()
            fitted._reset_parameters(**maps)
            return fitted

        return UnitsPlan(model, world, {name: None for name in model.param_names}, restore_plain)

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
            world,
            world_units,
            targets,
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

    def restore(maps: dict[str, Any]) -> Any:
        fitted = unitless.copy()
        fitted._reset_parameters(**maps)
        return fitted.with_units_from_data(**rename)

    return UnitsPlan(unitless, world, None, restore)


def _model_input_units(
    model: Any,
    world_units: Sequence[Any],
    data_unit: Any,
    declared: dict[str, Any],
    equivalencies: Any,
) -> list[Any]:
    """The units the model's own parameters give its inputs.

    An input whose world unit is ``u`` and that has parameters of unit
    ``u`` (like a line centre) takes the declared unit of the first of
    them that ``u`` converts to, without equivalencies if possible, else
    with them:
    world values in m/s meet a model written in km/s, and frequencies a
    model written in velocities under a doppler equivalency, by converting
    the world, not the model.
    """
    probe = model._parameter_units(tuple(world_units), data_unit)
    out = list(world_units)
    for k, unit in enumerate(world_units):
        if unit is None:
            continue
        wanted = [
            (name, declared[name])
            for name in model.param_names
            if probe.get(name) == unit and declared[name] is not None
        ]
        if not wanted:
            continue
        for eq in ([], equivalencies or []):
            target = next((w for _, w in wanted if _converts(unit, w, eq)), None)
            if target is not None:
                out[k] = target
                break
        else:
            name, first = wanted[0]
            raise InputError(
                f"world[{k}] is in {unit}, which cannot be converted to {first}, the unit of "
                f"the model's parameter {name!r}"
                + (" with the given equivalencies" if equivalencies else "")
                + f"; give world[{k}] in a unit convertible to {first}, or pass "
                f"equivalencies= that relate them (e.g. "
                f"equivalencies=u.doppler_radio(rest_frequency) for frequencies and velocities)"
            )
    return out


def _converts(unit: Any, target: Any, equivalencies: Any) -> bool:
    from astropy import units as u

    try:
        unit.to(target, 1.0, equivalencies=equivalencies)
    except (u.UnitsError, ValueError, TypeError):
        return False
    return True


def _model_data_unit(
    model: Any, world_units: Sequence[Any], data_unit: Any, declared: dict[str, Any]
) -> tuple[Any, float]:
    """The unit of the model's amplitudes, if the data convert to it by a factor.

    The first parameter whose unit is the data unit (an amplitude) and that
    is declared in a unit the data convert to without equivalencies (K for
    data in mK) gives the unit the data are fitted in.  Returns
    ``(unit, factor)``.
    """
    from astropy import units as u

    if data_unit is None:
        return None, 1.0
    probe = model._parameter_units(tuple(world_units), data_unit)
    wanted = [
        declared[name]
        for name in model.param_names
        if probe.get(name) == data_unit and declared[name] is not None
    ]
    for target in wanted:
        try:
            return target, float(u.Unit(data_unit).to(target))
        except u.UnitsError:
            continue
    return data_unit, 1.0


def _width_centres(model: Any) -> dict[str, str | None]:
    """``{width parameter: its centre parameter or None}`` for the model's widths.

    A width is a parameter with the unit role of an input (``"x"``) that
    measures a distance, not a position: in a peak model (one declaring
    ``peak_parameters``), every parameter with the role of the centre other
    than the centre itself (Gaussian1D's ``stddev``, Lorentz1D's ``fwhm``,
    Voigt1D's ``fwhm_L`` and ``fwhm_G``); in other models, one named like a
    width (``stddev``, ``fwhm``, ``gamma``, ``sigma``, ``width``), centred
    on the parameter of the same role named like a position (``mean``,
    ``x_0``), if there is exactly one.
    """
    leaf_of = getattr(model, "_leaf_of", None)
    if leaf_of is None:
        leaves = [(type(model), model._declared_specs(), dict((n, n) for n in model.param_names))]
    else:
        by_leaf: dict[int, dict[str, str]] = {}
        for (idx, local), name in zip(leaf_of, model.param_names):
            by_leaf.setdefault(idx, {})[local] = name
        leaves = [
            (type(model._templates[idx]), model._templates[idx]._declared_specs(), names)
            for idx, names in by_leaf.items()
        ]
    out: dict[str, str | None] = {}
    for cls, specs, names in leaves:
        roles = {spec.name: spec.unit for spec in specs}
        peak = getattr(cls, "peak_parameters", None)
        inputs = ("x",) if getattr(cls, "n_inputs", 1) == 1 else ("x", "y")
        for spec in specs:
            if spec.unit not in inputs or spec.name not in names:
                continue
            if peak is not None and roles.get(peak[1]) == spec.unit:
                if spec.name != peak[1]:
                    out[names[spec.name]] = names.get(peak[1])
                continue
            if any(w in spec.name.lower() for w in _WIDTH_WORDS):
                centres = [
                    n
                    for n, r in roles.items()
                    if r == spec.unit
                    and n != spec.name
                    and any(w in n.lower() for w in _CENTRE_WORDS)
                ]
                out[names[spec.name]] = names.get(centres[0]) if len(centres) == 1 else None
    return out


_WIDTH_WORDS = ("stddev", "fwhm", "hwhm", "gamma", "sigma", "width")
_CENTRE_WORDS = ("mean", "x_0", "y_0", "center", "centre")


def _convert_width(
    unit: Any, target: Any, values: Any, centre: Any, equivalencies: Any, what: str
) -> Any:
    """Convert a width (a difference of positions) around ``centre`` (in ``unit``).

    Without equivalencies this is a plain unit conversion.  With them, the
    width is the distance between the images of ``centre -/+ values / 2``
    (exact for linear equivalencies such as ``doppler_radio``, the local
    derivative otherwise); infinite widths stay infinite and a width keeps
    its sign.
    """
    from astropy import units as u

    try:
        return unit.to(target, value=values)
    except u.UnitsError:
        pass
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    half = np.where(finite, values, 0.0) / 2.0
    low = _convert(unit, target, centre - half, equivalencies, what)
    high = _convert(unit, target, centre + half, equivalencies, what)
    width = np.abs(np.asarray(high) - np.asarray(low)) * np.sign(values)
    if not np.all(finite):
        width = np.where(finite, width, values)
    return width if width.ndim else float(width)


def _parfit_units(
    model: Any,
    world: WorldSpec,
    data_unit: Any,
    equivalencies: Any,
    cube: CubeInput | None = None,
) -> UnitsPlan:
    declared = {name: getattr(model, name).unit for name in model.param_names}
    if data_unit is None and all(unit is None for unit in world.units):
        return UnitsPlan(model, world, declared, lambda maps: model.with_values(maps), cube=cube)
    inputs = _model_input_units(model, world.units, data_unit, declared, equivalencies)
    world = _convert_world(world, world.units, inputs, [equivalencies or []] * len(inputs))
    scale = 1.0
    if cube is not None:
        fit_unit, scale = _model_data_unit(model, world.units, data_unit, declared)
        if scale != 1.0:
            cube = _scaled_cube(cube, fit_unit, scale)
            data_unit = fit_unit
    targets = model._parameter_units(tuple(world.units), data_unit)
    centres = _width_centres(model)
    fit_model = model.copy()
    for name in fit_model.param_names:
        par = getattr(fit_model, name)
        target = targets.get(name)
        if target is None or par.unit is None or par.unit == target:
            if target is not None:
                par.unit = target
            continue
        if name in centres:
            centre = _centre_value(model, centres[name], par.unit, world, equivalencies)

            def convert(
                values: Any,
                what: str,
                unit: Any = par.unit,
                target: Any = target,
                centre: Any = centre,
            ) -> Any:
                return _convert_width(unit, target, values, centre, equivalencies, what)
        else:

            def convert(
                values: Any,
                what: str,
                unit: Any = par.unit,
                target: Any = target,
                centre: Any = None,
            ) -> Any:
                return _convert(unit, target, values, equivalencies, what)

        value = convert(par.value, f"parameter {name!r}")
        bounds = [
            None if b is None else convert(b, f"the bounds of parameter {name!r}")
            for b in (par.lower, par.upper)
        ]
        if bounds[0] is not None and bounds[1] is not None and np.any(bounds[0] > bounds[1]):
            bounds = bounds[::-1]
        par.bounds = (None, None)
        par.value = value
        par.bounds = tuple(bounds)
        par.unit = target
    units = {name: getattr(fit_model, name).unit for name in fit_model.param_names}
    return UnitsPlan(
        fit_model,
        world,
        units,
        lambda maps: fit_model.with_values(maps),
        data_unit=data_unit,
        data_scale=scale,
        cube=cube,
    )


def _centre_value(
    model: Any, centre: str | None, unit: Any, world: WorldSpec, equivalencies: Any
) -> float:
    """Where to convert a width given in ``unit``: its centre's starting value.

    Without a centre parameter (or with one that cannot be expressed in
    ``unit``), the middle of the world coordinates' range is used.
    """
    from astropy import units as u

    if centre is not None:
        par = getattr(model, centre)
        value = np.nanmean(np.asarray(par.value, dtype=np.float64))
        if par.unit is None or par.unit == unit:
            return float(value)
        try:
            return float(par.unit.to(unit, value, equivalencies=equivalencies or []))
        except (u.UnitsError, ValueError):
            pass
    for w, wunit in zip(world.arrays, world.units):
        if wunit is None:
            continue
        try:
            mid = 0.5 * (np.nanmin(w) + np.nanmax(w))
            return float(wunit.to(unit, mid, equivalencies=equivalencies or []))
        except (u.UnitsError, ValueError):
            continue
    raise InputError(
        f"cannot convert a width to the units of the data: no position in {unit} to convert "
        f"it around; give the model's widths in the units of the world coordinates"
    )


def _scaled_cube(cube: CubeInput, unit: Any, scale: float) -> CubeInput:
    """``cube`` with its data (and ``1/sigma`` weights) in ``unit``; the caller's arrays kept."""
    weights = cube.weights
    if weights is not None:
        weights = weights / scale
    return dataclasses.replace(cube, data=cube.data * scale, weights=weights, data_unit=unit)
