"""What a validated config builds: the model, the opened input, the checks on both.

:func:`build_model` turns ``model.components`` into a parfit model and
:func:`open_input` opens ``input`` lazily (with its mask and weights).
:func:`check_semantics` runs both for :func:`parfit.config.validate_config`
and reports what fails against the config key at fault.
"""

import re

import numpy as np
from astropy import units as u

from parfit.config._yaml import format_path
from parfit.config.schema import ParameterConfig, check_structural, resolve, structural_args
from parfit.config.types import in_unit, target_unit
from parfit.errors import ConfigError, InputError

__all__ = ["build_model", "open_input", "check_semantics"]


def check_semantics(cfg, check_files, deep):
    problems = []
    inp = cfg.input
    if inp.weights is not None and inp.uncertainty is not None:
        problems.append((("input", "uncertainty"), "give weights or uncertainty, not both"))
    if inp.hdu is not None and inp.variable is not None:
        problems.append(
            (("input", "variable"), "give hdu (FITS) or variable (netCDF/zarr), not both")
        )
    if check_files:
        for key, path in _input_files(cfg):
            if not resolve(cfg, path).exists():
                problems.append((key, f"file not found: {resolve(cfg, path)}"))
    model = None
    try:
        model = build_model(cfg)
    except _ModelProblem as exc:
        problems.append((exc.path, exc.message))
    if deep and not problems:
        problems += _check_against_input(cfg, model)
    return problems


def _input_files(cfg):
    inp = cfg.input
    yield ("input", "path"), inp.path
    for key in ("mask", "weights", "uncertainty"):
        source = getattr(inp, key)
        if source is not None and source["path"] is not None:
            yield ("input", key), source["path"]


def _check_against_input(cfg, model):
    try:
        opened = _open_input(cfg)
    except _InputProblem as exc:
        return [(exc.path, exc.message)]
    n_axes = len(opened["fitting_axes"])
    if model is not None and model.n_inputs != n_axes:
        return [
            (
                ("model", "components"),
                f"the model takes {model.n_inputs} input(s) but input.fitting_axes names "
                f"{n_axes} axis/axes",
            )
        ]
    if model is None:
        return []
    from parfit.engine.inputs import normalise_cube, normalise_world
    from parfit.engine.units import prepare_units

    # The units of the data and of the world coordinates must suit the model's
    # parameters; this needs only the header and coordinates, not the data.
    try:
        cube = normalise_cube(
            opened["data"],
            weights=opened["weights"],
            mask=opened["mask"],
            data_unit=opened["data_unit"],
        )
        world = normalise_world(None, cube, opened["fitting_axes"])
        prepare_units(model, "parfit", world, cube.data_unit)
    except InputError as exc:
        return [(("model", "components"), f"the model does not suit the input: {exc}")]
    return []


class _ModelProblem(Exception):
    def __init__(self, path, message):
        super().__init__(message)
        self.path, self.message = tuple(path), message


class _InputProblem(_ModelProblem):
    pass


# --- building the model -------------------------------------------------------------


def _components(cfg):
    for comp in cfg.model.components:
        params = {}
        for key in type(comp).model_fields:
            value = getattr(comp, key)
            if isinstance(value, ParameterConfig):
                params[key] = value
        # Parameters named by the component's degree (Polynomial1D), validated by
        # the schema into ParameterConfig like the declared ones.
        params.update(
            {
                k: v
                for k, v in (comp.__pydantic_extra__ or {}).items()
                if isinstance(v, ParameterConfig)
            }
        )
        yield comp, params


def build_model(cfg):
    """The starting :class:`parfit.models.Model` a config describes.

    Components are summed in order.  Values and bounds given as quantities
    set the parameter's unit (``unit:`` sets it for plain numbers).

    Examples
    --------
    >>> from parfit.config import validate_config
    >>> cfg = validate_config({"input": {"path": "c.fits"}, "output": {"path": "o"},
    ...     "model": {"components": [
    ...         {"type": "Gaussian1D", "mean": "4 km/s", "stddev": {"value": 2, "unit": "km/s"}},
    ...         {"type": "Const1D", "amplitude": {"value": 0, "fixed": True}}]}},
    ...     check_files=False)
    >>> model = build_model(cfg)
    >>> model  # doctest: +NORMALIZE_WHITESPACE
    <CompoundModel(Gaussian1D + Const1D: amplitude_0=1.0, mean_0=4.0, stddev_0=2.0,
    amplitude_1=0.0)>
    >>> model.mean_0.unit, model.stddev_0.unit, model.amplitude_1.fixed
    (Unit("km / s"), Unit("km / s"), True)
    """
    from parfit.errors import ModelError, ParameterError
    from parfit.models import MODEL_REGISTRY, CompoundModel

    leaves, ties = [], []
    for i, (comp, params) in enumerate(_components(cfg)):
        cls = MODEL_REGISTRY[comp.type]
        base = ("model", "components", i)
        structural = {a: getattr(comp, a) for a in structural_args(cls)}
        try:
            check_structural(comp.type, structural)
            leaf = cls(**structural, name=comp.name)
        except (ModelError, ParameterError, TypeError, ValueError) as exc:
            raise _ModelProblem(base, str(exc)) from None
        for pname, pc in params.items():
            param = leaf.parameters[pname]
            try:
                _apply_parameter(param, pc)
            except (ParameterError, ValueError, u.UnitsError) as exc:
                raise _ModelProblem(base + (pname,), _strip_param_prefix(str(exc))) from None
            if pc.tied is not None:
                ties.append((i, pname, pc.tied))
        leaves.append(leaf)
    _one_unit_per_kind([p for leaf in leaves for p in leaf.parameters.values()])
    model = leaves[0]
    for leaf in leaves[1:]:
        model = model + leaf
    if cfg.model.initial == "guess" and not model.can_guess:
        raise _ModelProblem(
            ("model", "initial"),
            f"initial: guess needs components that can estimate their start "
            f"from data; {model!r} cannot",
        )
    for i, pname, expr in ties:
        full = f"{pname}_{i}" if isinstance(model, CompoundModel) else pname
        try:
            model.parameters[full].update(tied=expr)
            model.validate()
        except (ParameterError, ModelError) as exc:
            raise _ModelProblem(
                ("model", "components", i, pname, "tied"), _strip_param_prefix(str(exc))
            ) from None
    try:
        model.validate()
    except (ParameterError, ModelError) as exc:
        raise _ModelProblem(("model", "components"), str(exc)) from None
    return model


def _one_unit_per_kind(params):
    """Give every parameter of one physical kind the unit of the first one.

    ``mean: "4000 m/s"`` beside ``stddev: "5 km/s"`` becomes 5000 m/s, so the
    whole model works in one unit per kind; numbers in a tied expression are
    then in that unit, whatever unit the fit itself runs in.
    """
    chosen = {}
    for p in params:
        unit = p.unit
        if unit is None or unit == u.dimensionless_unscaled:
            continue
        target = chosen.setdefault(unit.physical_type, unit)
        if unit == target or not unit.is_equivalent(target):
            continue
        lower, upper = (None if b is None else unit.to(target, b) for b in p.bounds)
        p.update(bounds=(None, None))
        p.update(value=unit.to(target, p.value))
        p.unit = target
        p.update(bounds=(lower, upper))


def _strip_param_prefix(text):
    return re.sub(r"^Parameter '[^']*': ", "", text)


def _apply_parameter(param, pc):
    target = target_unit(pc)
    if target is not None:
        param.unit = target
    kwargs = {"fixed": pc.fixed}
    if pc.value is not None:
        kwargs["value"] = in_unit(pc.value, target, "value")
    if pc.bounds is not None:
        kwargs["bounds"] = tuple(
            None if b is None else in_unit(b, target, "bound") for b in pc.bounds
        )
    param.update(**kwargs)


# --- opening the input ----------------------------------------------------------------


def open_input(cfg):
    """Open the cube of a config lazily, with its mask and weights.

    Returns
    -------
    dict
        ``data`` (what :func:`parfit.io.open_cube` gives), ``mask``,
        ``weights`` (dask arrays or None), ``fitting_axes`` (tuple of int),
        ``data_unit`` (str or None).

    Raises
    ------
    ConfigError
        Naming the config key at fault, if the input cannot be opened or
        does not fit the config.
    """
    try:
        return _open_input(cfg)
    except _InputProblem as exc:
        raise ConfigError(
            f"{format_path(exc.path)}: {exc.message}", [(format_path(exc.path), None, exc.message)]
        ) from None


def _open_input(cfg):
    from parfit.engine.inputs import normalise_fitting_axes
    from parfit.io import open_cube

    inp = cfg.input
    path = resolve(cfg, inp.path)
    try:
        data = open_cube(path, hdu=inp.hdu, variable=inp.variable)
    except (InputError, ValueError, TypeError, OSError) as exc:
        key = (
            "hdu"
            if inp.hdu is not None and "HDU" in str(exc)
            else ("variable" if inp.variable is not None and "variable" in str(exc) else "path")
        )
        raise _InputProblem(("input", key), str(exc)) from None
    if inp.unit is not None and getattr(data, "unit", None) is not None:
        data = _without_unit(data)  # input.unit overrides the file's unit (a relabel)
    shape = tuple(int(n) for n in getattr(data, "data", data).shape)
    dims = tuple(str(d) for d in data.dims) if hasattr(data, "dims") else None
    axes = inp.fitting_axes if isinstance(inp.fitting_axes, list) else [inp.fitting_axes]
    resolved = []
    for item in axes:
        if item == "spectral" and (dims is None or "spectral" not in dims):
            resolved.append(_spectral_axis(data, len(shape)))
        else:
            resolved.append(item)
    try:
        fitting_axes = normalise_fitting_axes(resolved, len(shape), dims)
    except (InputError, TypeError) as exc:
        raise _InputProblem(("input", "fitting_axes"), str(exc)) from None
    out = {
        "data": data,
        "fitting_axes": fitting_axes,
        "data_unit": inp.unit,
        "mask": None,
        "weights": None,
        "shape": shape,
    }
    for key in ("mask", "weights", "uncertainty"):
        source = getattr(inp, key)
        if source is None:
            continue
        array = _open_aux(cfg, key, source, shape)
        if key == "mask":
            out["mask"] = array != 0
        elif key == "weights":
            out["weights"] = array
        else:
            import dask.array as da

            # As parallel_fit treats lazy weights: a NaN or infinite sigma
            # leaves its sample out (weight NaN or 0), a zero sigma (a sample
            # claimed exact: weight inf) or a negative one is left out with a
            # warning to every fit it touches.
            zero = array == 0
            out["weights"] = da.where(zero, np.inf, 1.0 / da.where(zero, 1.0, array))
    return out


def _without_unit(data):
    """``data`` (an NDData opened from a file) with its unit dropped.

    ``input.unit`` in a config says what the file's unit is (a missing or
    wrong BUNIT), so it replaces the file's unit rather than converting
    from it, as ``parallel_fit(data_unit=)`` would.
    """
    from astropy.nddata import NDData

    return NDData(
        data.data,
        wcs=data.wcs,
        mask=data.mask,
        meta=data.meta,
        uncertainty=data.uncertainty,
        copy=False,
    )


def _spectral_axis(data, ndim):
    wcs = getattr(data, "wcs", None)
    if wcs is None or not getattr(wcs, "has_spectral", False):
        raise _InputProblem(
            ("input", "fitting_axes"),
            "'spectral' needs a FITS cube whose WCS has a spectral axis; give the axis "
            "number instead",
        )
    return ndim - 1 - int(wcs.wcs.spec)


def _open_aux(cfg, key, source, shape):
    import dask.array as da

    from parfit.io import open_cube

    inp = cfg.input
    path = resolve(cfg, source["path"] or inp.path)
    try:
        opened = open_cube(path, hdu=source["hdu"], variable=source["variable"])
    except (InputError, ValueError, TypeError, OSError) as exc:
        raise _InputProblem(("input", key), str(exc)) from None
    array = getattr(opened, "data", opened)
    array = da.asarray(array)
    try:
        np.broadcast_shapes(tuple(array.shape), shape)
    except ValueError:
        raise _InputProblem(
            ("input", key),
            f"has shape {tuple(array.shape)}, which does not broadcast to the cube's {shape}",
        ) from None
    return array
