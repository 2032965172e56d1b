"""What a validated config builds: the model, the opened input, the checks on both.

:func:`build_model` turns ``model.components`` into a parfit model and
:func:`open_input` opens ``input`` lazily (with its mask and weights); for a
joint config (a ``datasets`` section) both give a mapping of dataset names,
the form :func:`parfit.parallel_fit` takes for a joint fit, and for a model
selection (a ``select`` section) :func:`build_model` gives the list of
candidate models.  :func:`open_region` reads ``model.initial_region``.
:func:`check_semantics` runs both for :func:`parfit.config.validate_config`
and reports what fails against the config key at fault.
"""

import re

import numpy as np
from astropy import units as u

from parfit.config._yaml import format_path
from parfit.config.schema import (
    ParameterConfig,
    check_structural,
    is_joint_config,
    is_selection_config,
    resolve,
    structural_args,
)
from parfit.config.types import in_unit, target_unit
from parfit.errors import ConfigError, InputError

__all__ = ["build_model", "open_input", "open_region", "check_semantics"]


def check_semantics(cfg, check_files, deep):
    """``(path, message)`` of every problem the schema cannot see.

    Exclusive input keys, missing files (``check_files``), the model (units,
    bounds, ties, ``initial: guess``), the ``likelihood`` section against
    the fitter, the inputs and the model (:func:`_likelihood_problems`)
    and, with ``deep``, the input opened
    lazily against the model: fitting axes and units.  For a joint config,
    ``check_files`` (or ``deep``) also opens the cubes (their headers and
    metadata only) to check that they share a grid.  ``initial: mean``
    (not for a joint config) and its ``initial_region`` (the file, and with
    ``deep`` its map against the maps' shape); for a model selection, every
    candidate as a model, and ``output.format`` (no FITS).

    Examples
    --------
    >>> from parfit.config import validate_config
    >>> cfg = validate_config({"input": {"path": "c.fits"}, "output": {"path": "o"},
    ...     "model": {"components": [{"type": "Gaussian1D"}]}}, check_files=False)
    >>> check_semantics(cfg, check_files=True, deep=False)  # doctest: +ELLIPSIS
    [(('input', 'path'), 'file not found: .../c.fits')]
    """
    problems = []
    for base, inp in _inputs(cfg):
        problems += _input_problems(cfg, inp, base, check_files)
    problems += _start_problems(cfg, check_files)
    if is_selection_config(cfg):
        return problems + _selection_problems(cfg, deep)
    alone, across, fitted = {}, [], None
    try:
        if is_joint_config(cfg):
            _, alone, across, fitted = _build_joint(cfg)
        else:
            alone = {None: _build(cfg.model, ("model",), joint=False)[0]}
            fitted = alone[None]
    except _ModelProblem as exc:
        problems.append((exc.path, exc.message))
    problems += _likelihood_problems(cfg, fitted)
    if not problems and (deep or (check_files and is_joint_config(cfg))):
        problems += _check_against_inputs(cfg, alone, across, deep=deep)
    if not problems and deep and not is_joint_config(cfg):
        problems += _region_problems(cfg, None)
    return problems


def _selection_problems(cfg, deep):
    """``(path, message)`` of the problems of a model selection's candidates.

    Each candidate is built at its own path (``select.candidates[k]``) and
    the ``likelihood`` section is checked against each; with ``deep``, each
    is checked against the input (and the region of ``initial: mean``
    opened), as the model of a one-cube config is.
    """
    problems, models = [], []
    if cfg.output.format == "fits":
        problems.append(
            (
                ("output", "format"),
                "a selection has no single set of maps to write as FITS (each candidate's "
                "are in candidate_<k>.zarr, the choice in selection.zarr); use format: zarr "
                "or netcdf (maps.nc: the chosen maps)",
            )
        )
    for k, candidate in enumerate(cfg.select.candidates):
        try:
            models.append(_build(candidate, ("select", "candidates", k), joint=False)[0])
        except _ModelProblem as exc:
            problems.append((exc.path, exc.message))
            models.append(None)
    for k, model in enumerate(models):
        for path, message in _likelihood_problems(cfg, model):
            if path[0] == "likelihood" and len(path) > 2:  # a parameter name of null, profile
                message = (
                    message.replace("of the model", f"of select.candidates[{k}]", 1)
                    if "of the model" in message
                    else f"select.candidates[{k}]: {message}"
                )
            if (path, message) not in problems:  # the fitter's and the input's once
                problems.append((path, message))
    if problems or not deep:
        return problems
    for k, model in enumerate(models):
        where = ("select", "candidates", k, "components")
        found, opened, _ = _check_against_input(cfg, cfg.input, ("input",), model, False, where)
        problems += [p for p in found if p not in problems]
    if not problems:
        problems += _region_problems(cfg, opened)
    return problems


def _start_problems(cfg, check_files):
    """``(path, message)`` of ``initial`` and ``initial_region`` that cannot be done.

    ``initial: mean`` in a joint config (``parallel_fit`` starts a joint fit
    from the model or a guess only), and, with ``check_files``, a region
    file that does not exist.
    """
    problems, missing = [], set()
    for name, base, section in _models(cfg):
        if name is not None and section.initial == "mean":
            problems.append(
                (
                    base + ("initial",),
                    "initial: mean is not available for a joint fit (one mean spectrum "
                    "cannot start the models of several cubes); use model or guess",
                )
            )
        region = section.initial_region
        if check_files and region is not None and region["path"] is not None:
            path = resolve(cfg, region["path"])
            if not path.exists() and path not in missing:  # once, not per candidate
                missing.add(path)
                problems.append((base + ("initial_region",), f"file not found: {path}"))
    return problems


def _region_problems(cfg, opened):
    """``(path, message)`` if the region of ``initial: mean`` cannot be read or used."""
    try:
        _open_region(cfg, opened)
    except _InputProblem as exc:
        return [(exc.path, exc.message)]
    return []


def _likelihood_problems(cfg, model):
    """``(path, message)`` of what the ``likelihood`` section asks that cannot be done.

    A fitter that cannot minimise the statistic (or that cannot be built:
    ``minuit`` without iminuit); weights or uncertainties with a statistic
    of counts; ``null`` and ``profile`` names that are no free parameter of
    ``model`` (the model the config fits, a JointModel for a joint config;
    None when it could not be built).  ``parallel_fit`` checks all of it
    again, and what needs the data (counts never negative; null values
    within the bounds, in the units of the fit).
    """
    from parfit.engine.hypotheses import name_problems
    from parfit.fitters.likelihood import LikelihoodRequest

    section = cfg.likelihood
    problems = []
    try:
        fitter = cfg.fitter.fitter()
    except InputError as exc:
        return [(("fitter", "name"), str(exc))]
    if section.statistic not in fitter.statistics:
        problems.append(
            (
                ("likelihood", "statistic"),
                f"{section.statistic} cannot be minimised by fitter.name {cfg.fitter.name}, "
                f"which minimises {', '.join(fitter.statistics)} only; set fitter.name to "
                f"{_one_of(_fitters_for(section.statistic))}",
            )
        )
    if section.counts:
        for base, inp in _inputs(cfg):
            for key in ("weights", "uncertainty"):
                if getattr(inp, key) is not None:
                    problems.append(
                        (
                            base + (key,),
                            f"likelihood.statistic {section.statistic} fits counts, whose "
                            f"Poisson likelihood has no weights (the variance is the model "
                            f"itself): leave {key} out (input.mask leaves samples out), or "
                            f"fit with likelihood.statistic: chi2",
                        )
                    )
    if model is not None and (section.null or section.profile):
        asked = LikelihoodRequest(
            null=tuple((section.null or {}).items()), profile=tuple(section.profile)
        )
        for what, position, message in name_problems(asked, model.param_names, model.free_mask):
            key = list(section.null)[position] if what == "null" else position
            problems.append((("likelihood", what, key), message))
    return problems


def _fitters_for(statistic):
    """The fitter names of a config whose fitter minimises ``statistic``."""
    from parfit.fitters import BatchedFitter, MinuitFitter, ScipyFitter
    from parfit.fitters.select import FITTER_NAMES

    classes = {"batched": BatchedFitter, "minuit": MinuitFitter}

    def statistics(name):
        return classes[name].statistics if name in classes else ScipyFitter(name).statistics

    return [name for name in FITTER_NAMES if statistic in statistics(name)]


def _one_of(names):
    """``a, b or c``."""
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)


def _inputs(cfg):
    """``(path of the input section, input section)`` of each cube of the config."""
    if is_joint_config(cfg):
        for name, entry in cfg.datasets.items():
            yield ("datasets", name, "input"), entry.input
    else:
        yield ("input",), cfg.input


def _models(cfg):
    """``(dataset name or None, path of the model section, model section)``.

    For a model selection, each candidate (a model section at
    ``select.candidates[k]``).
    """
    if is_joint_config(cfg):
        for name, entry in cfg.datasets.items():
            yield name, ("datasets", name, "model"), entry.model
    elif is_selection_config(cfg):
        for k, candidate in enumerate(cfg.select.candidates):
            yield None, ("select", "candidates", k), candidate
    else:
        yield None, ("model",), cfg.model


def _input_problems(cfg, inp, base, check_files):
    problems = []
    if inp.weights is not None and inp.uncertainty is not None:
        problems.append((base + ("uncertainty",), "give weights or uncertainty, not both"))
    if inp.hdu is not None and inp.variable is not None:
        problems.append(
            (base + ("variable",), "give hdu (FITS) or variable (netCDF/zarr), not both")
        )
    if check_files:
        for key, path in _input_files(inp, base):
            if not resolve(cfg, path).exists():
                problems.append((key, f"file not found: {resolve(cfg, path)}"))
    return problems


def _input_files(inp, base):
    yield base + ("path",), inp.path
    for key in ("mask", "weights", "uncertainty"):
        source = getattr(inp, key)
        if source is not None and source["path"] is not None:
            yield base + (key,), source["path"]


def _check_against_inputs(cfg, models, across, *, deep=True):
    """Open each cube lazily and check it against its model (and, joint, the others).

    Without ``deep``, the cubes are only opened and, for a joint config,
    compared with each other.
    """
    joint = is_joint_config(cfg)
    problems, shapes, units = [], {}, {}
    for (base, inp), name in zip(_inputs(cfg), models):
        if deep:
            found, opened, units[name] = _check_against_input(cfg, inp, base, models[name], joint)
        else:
            try:
                found, opened = [], _open_input(cfg, inp, base)
            except _InputProblem as exc:
                found, opened = [(exc.path, exc.message)], None
        problems += found
        if opened is not None:
            shape, axes = opened["shape"], opened["fitting_axes"]
            shapes[name] = (
                tuple(n for a, n in enumerate(shape) if a not in axes),
                shape,
                axes,
                base,
            )
    if joint and not problems:
        first, (reference, ref_shape, ref_axes, _) = next(iter(shapes.items()))
        for name, (grid, shape, axes, base) in list(shapes.items())[1:]:
            if grid != reference:
                problems.append(
                    (
                        base,
                        f"dataset {name!r} has iterating shape {grid} (its cube {shape} "
                        f"without fitting axis {_axes_text(axes)}) but dataset {first!r} has "
                        f"{reference} (its cube {ref_shape} without fitting axis "
                        f"{_axes_text(ref_axes)}); the cubes of a joint fit must have the "
                        f"same shape along their iterating axes (one fit per pixel of all "
                        f"of them)",
                    )
                )
    if joint and deep and not problems:
        problems += _tie_units(units, across)
    return problems


def _tie_units(units, across):
    """A problem at each tie across datasets between parameters fitted in other units.

    ``units``: each dataset's parameter units in the fit (the unit plan of
    its model on its cube).  A tie copies the number, so a centre fitted in
    m/s tied to one in km/s would be 1000 times off.
    """
    problems = []
    for name, path, full, expr in across:
        mine = units[name].get(full)
        for dataset, pname in _DATASET_NAME.findall(expr):
            theirs = units.get(dataset, {}).get(pname)
            if (mine is None) != (theirs is None) or (mine is not None and mine != theirs):
                problems.append(
                    (
                        path,
                        f"{name}.{full} would be fitted in {_unit_text(mine)} but "
                        f"{dataset}.{pname}, which its tie names, in {_unit_text(theirs)}; "
                        f"a tie across datasets copies the number, so both must be in one "
                        f"unit: give this parameter unit: {_unit_text(theirs)}",
                    )
                )
                break
    return problems


def _unit_text(unit):
    return "no unit" if unit is None else (str(unit) or "dimensionless")


def _axes_text(axes):
    return ", ".join(map(str, axes))


def _check_against_input(cfg, inp, base, model, joint, model_path=None):
    """``(problems, opened input or None, parameter units)`` of one cube against its model.

    The parameter units are those the fit would use (``{}`` when unknown).
    ``model_path``: where the model's components are in the config (default:
    the ``model`` section beside the input section).
    """
    try:
        opened = _open_input(cfg, inp, base)
    except _InputProblem as exc:
        return [(exc.path, exc.message)], None, {}
    n_axes = len(opened["fitting_axes"])
    if model_path is None:
        model_path = base[:-1] + ("model", "components")
    if model is not None and model.n_inputs != n_axes:
        return (
            [
                (
                    model_path,
                    f"the model takes {model.n_inputs} input(s) but "
                    f"{format_path(base + ('fitting_axes',))} names {n_axes} axis/axes",
                )
            ],
            opened,
            {},
        )
    if model is None:
        return [], opened, {}
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
        world = normalise_world(cube.world, cube, opened["fitting_axes"])
        plan = prepare_units(model, "parfit", world, cube.data_unit)
    except InputError as exc:
        return [(model_path, f"the model does not suit the input: {exc}")], opened, {}
    units = dict(plan.parameter_units or {})
    if joint and world.kind == "wcs":
        return (
            [
                (
                    base + ("fitting_axes",),
                    "the world coordinates along the fitting axes vary from pixel to pixel in "
                    "this cube's WCS; a joint fit needs coordinates shared by every pixel (a "
                    "cube whose spectral axis does not depend on the position)",
                )
            ],
            opened,
            units,
        )
    return [], opened, units


class _ModelProblem(Exception):
    def __init__(self, path, message):
        super().__init__(message)
        self.path, self.message = tuple(path), message


class _InputProblem(_ModelProblem):
    pass


# --- building the model -------------------------------------------------------------


def _components(section):
    for comp in section.components:
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
    set the parameter's unit (``unit:`` sets it for plain numbers).  A joint
    config (a ``datasets`` section) gives a dict of each dataset's model, in
    the order of the config, with its ties to other datasets' parameters
    (``co10.mean_0``): the mapping :func:`parfit.parallel_fit` takes.  A
    model selection (a ``select`` section) gives the list of its candidate
    models, in order: the list :func:`parfit.parallel_fit` takes with
    ``select=``.

    Raises
    ------
    ConfigError
        Naming the config key at fault, if the model cannot be built (only
        for a config that was not validated: validation builds it too).

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

    A joint config gives each dataset's model:

    >>> joint = validate_config({"output": {"path": "o"}, "datasets": {
    ...     "co10": {"input": {"path": "co10.fits"},
    ...              "model": {"components": [{"type": "Gaussian1D"}]}},
    ...     "co21": {"input": {"path": "co21.fits"},
    ...              "model": {"components": [{"type": "Gaussian1D",
    ...                                        "mean": {"tied": "co10.mean"}}]}}}},
    ...     check_files=False)
    >>> models = build_model(joint)
    >>> list(models), models["co21"].mean.tied
    (['co10', 'co21'], 'co10.mean')
    """
    try:
        if is_joint_config(cfg):
            return _build_joint(cfg)[0]
        if is_selection_config(cfg):
            return [_build(section, base, joint=False)[0] for _, base, section in _models(cfg)]
        return _build(cfg.model, ("model",), joint=False)[0]
    except _ModelProblem as exc:
        raise ConfigError(
            f"{format_path(exc.path)}: {exc.message}", [(format_path(exc.path), None, exc.message)]
        ) from None


def _build_joint(cfg):
    """``(models, alone, across, joint)`` of a joint config.

    ``models``: each dataset's model with its ties to other datasets;
    ``alone``: the same without them; ``across``: those ties, ``(dataset,
    config path, parameter, expression)``; ``joint``: the
    :class:`~parfit.models.JointModel` of them all, ties included (whose
    parameters, ``<dataset>.<parameter>``, are those of the fit).  The ties are checked on a
    :class:`~parfit.models.JointModel` of the models without them, one by
    one, so that a problem is reported at the tie at fault.
    """
    from parfit.errors import ModelError, ParameterError
    from parfit.models import JointModel
    from parfit.models.joint import split_dataset_ties

    models, across = {}, []
    for name, base, section in _models(cfg):
        models[name], ties = _build(section, base, joint=True)
        across += [(name, *tie) for tie in ties]
    _share_units(models, across)
    alone = {name: split_dataset_ties(model)[0] for name, model in models.items()}
    try:
        joint = JointModel(alone, {name: 1 for name in alone})
    except (ModelError, ParameterError) as exc:
        raise _ModelProblem(("datasets",), str(exc).removeprefix("JointModel: ")) from None
    for name, path, full, expr in across:
        try:
            joint.tie(name, {full: expr})
            joint.validate()
        except (ParameterError, ModelError) as exc:
            raise _ModelProblem(path, _strip_param_prefix(str(exc))) from None
    return models, alone, across, joint


#: ``<dataset>.<parameter>`` in a tied expression.
_DATASET_NAME = re.compile(r"\b([A-Za-z_]\w*)\.([A-Za-z_]\w*)\b")


def _share_units(models, across):
    """One unit per kind of quantity across the datasets' models, as within one model.

    A tie across datasets copies a number from one dataset's parameter to
    another's, so both must be fitted in one unit.  A tied parameter without
    a unit of its own takes the unit of the first parameter its expression
    names (``mean: {tied: co10.mean_0}`` is in co10's unit); then every
    parameter of one kind gets the unit of the first one given, in the order
    of the datasets (``"5000 m/s"`` becomes 5 km/s beside a centre in km/s).
    """
    for name, _path, full, expr in across:
        param = models[name].parameters[full]
        if param.unit is not None:
            continue
        for dataset, pname in _DATASET_NAME.findall(expr):
            source = models.get(dataset)
            if source is not None and pname in source.param_names:
                unit = source.parameters[pname].unit
                if unit is not None:
                    param.unit = unit
                    break
    _one_unit_per_kind([p for model in models.values() for p in model.parameters.values()])


def _build(section, base, *, joint):
    """``(model, ties)`` of one model section at the config path ``base``.

    With ``joint``, ties to other datasets are allowed and come back as
    ``ties``, ``(path, parameter, expression)``, for :func:`_build_joint` to
    check; otherwise they are refused and ``ties`` is empty.
    """
    from parfit.errors import ModelError, ParameterError
    from parfit.models import MODEL_REGISTRY, CompoundModel
    from parfit.models.joint import split_dataset_ties

    leaves, ties = [], []
    for i, (comp, params) in enumerate(_components(section)):
        cls = MODEL_REGISTRY[comp.type]
        path = base + ("components", i)
        structural = {a: getattr(comp, a) for a in structural_args(cls)}
        try:
            check_structural(comp.type, structural)
            leaf = cls(**structural, name=comp.name)
        except (ModelError, ParameterError, TypeError, ValueError) as exc:
            raise _ModelProblem(path, str(exc)) from None
        for pname, pc in params.items():
            param = leaf.parameters[pname]
            try:
                _apply_parameter(param, pc)
            except (ParameterError, ValueError, u.UnitsError) as exc:
                raise _ModelProblem(path + (pname,), _strip_param_prefix(str(exc))) from None
            if pc.tied is not None:
                ties.append((i, pname, pc.tied))
        leaves.append(leaf)
    _one_unit_per_kind([p for leaf in leaves for p in leaf.parameters.values()])
    model = leaves[0]
    for leaf in leaves[1:]:
        model = model + leaf
    if section.initial == "guess" and not model.can_guess:
        raise _ModelProblem(
            base + ("initial",),
            f"initial: guess needs components that can estimate their start "
            f"from data; {model!r} cannot",
        )
    across = []
    for i, pname, expr in ties:
        full = f"{pname}_{i}" if isinstance(model, CompoundModel) else pname
        path = base + ("components", i, pname, "tied")
        try:
            model.parameters[full].update(tied=expr)
            alone, split = split_dataset_ties(model) if joint else (model, {})
            if full in split:
                across.append((path, full, expr))
            alone.validate()
        except (ParameterError, ModelError) as exc:
            raise _ModelProblem(path, _strip_param_prefix(str(exc))) from None
    alone = split_dataset_ties(model)[0] if joint else model
    try:
        alone.validate()
    except (ParameterError, ModelError) as exc:
        raise _ModelProblem(base + ("components",), str(exc)) from None
    return model, across


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
        ``data_unit`` (str or None), ``shape`` (the cube's).  For a joint
        config (a ``datasets`` section), a dict of such dicts by dataset
        name, in the order of the config.

    Raises
    ------
    ConfigError
        Naming the config key at fault, if the input cannot be opened or
        does not fit the config.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from parfit.config import validate_config
    >>> from parfit.datasets import gaussian_cube
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = gaussian_cube((20, 3, 4)).to_fits(folder / "cube.fits")
    >>> cfg = validate_config({"input": {"path": "cube.fits", "fitting_axes": "spectral"},
    ...     "model": {"components": [{"type": "Gaussian1D"}]}, "output": {"path": "out"}},
    ...     base_dir=folder)
    >>> opened = open_input(cfg)
    >>> opened["shape"], opened["fitting_axes"]
    ((20, 3, 4), (0,))
    """
    try:
        if is_joint_config(cfg):
            return {
                name: _open_input(cfg, inp, base)
                for (base, inp), name in zip(_inputs(cfg), cfg.datasets)
            }
        return _open_input(cfg, cfg.input, ("input",))
    except _InputProblem as exc:
        raise ConfigError(
            f"{format_path(exc.path)}: {exc.message}", [(format_path(exc.path), None, exc.message)]
        ) from None


def _open_input(cfg, inp, base):
    """The opened cube of the input section ``inp`` (at config path ``base``)."""
    from parfit.engine.inputs import normalise_fitting_axes
    from parfit.io import open_cube

    path = resolve(cfg, inp.path)
    try:
        data = open_cube(path, hdu=inp.hdu, variable=inp.variable)
    except (InputError, ValueError, TypeError, OSError) as exc:
        key = (
            "hdu"
            if inp.hdu is not None and "HDU" in str(exc)
            else ("variable" if inp.variable is not None and "variable" in str(exc) else "path")
        )
        raise _InputProblem(base + (key,), str(exc)) from None
    if inp.unit is not None and getattr(data, "unit", None) is not None:
        data = _without_unit(data)  # input.unit overrides the file's unit (a relabel)
    shape = tuple(int(n) for n in getattr(data, "data", data).shape)
    dims = tuple(str(d) for d in data.dims) if hasattr(data, "dims") else None
    axes = inp.fitting_axes if isinstance(inp.fitting_axes, list) else [inp.fitting_axes]
    resolved = []
    for item in axes:
        if item == "spectral" and (dims is None or "spectral" not in dims):
            resolved.append(_spectral_axis(data, len(shape), base))
        else:
            resolved.append(item)
    try:
        fitting_axes = normalise_fitting_axes(resolved, len(shape), dims)
    except (InputError, TypeError) as exc:
        raise _InputProblem(base + ("fitting_axes",), str(exc)) from None
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
        array = _open_aux(cfg, inp, base, key, source, shape)
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


def open_region(cfg, opened=None):
    """The region of ``initial: mean`` (``initial_region``), or None.

    Parameters
    ----------
    cfg : validated config
        One cube's config, or a model selection's (whose candidates share
        one region).
    opened : dict, optional
        What :func:`open_input` gave for ``cfg`` (opened again if not given).

    Returns
    -------
    ndarray of bool or None
        The map of the maps' shape (the cube without its fitting axes), True
        where the file is nonzero and not NaN: the ``initial_region`` that
        :func:`parfit.parallel_fit` takes.  None without ``initial_region``
        (and for a joint config).

    Raises
    ------
    ConfigError
        Naming the config key, if the file cannot be read or its map does
        not broadcast to the maps' shape.
    """
    try:
        return _open_region(cfg, opened)
    except _InputProblem as exc:
        raise ConfigError(
            f"{format_path(exc.path)}: {exc.message}", [(format_path(exc.path), None, exc.message)]
        ) from None


def _open_region(cfg, opened):
    if is_joint_config(cfg):
        return None
    _, base, section = next(iter(_models(cfg)))
    source = section.initial_region
    if source is None:
        return None
    key = base + ("initial_region",)
    if opened is None:
        opened = _open_input(cfg, cfg.input, ("input",))
    shape = tuple(n for a, n in enumerate(opened["shape"]) if a not in opened["fitting_axes"])
    path = resolve(cfg, source["path"] or cfg.input.path)
    try:
        if path.suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            from parfit.io import open_cube

            found = open_cube(path, hdu=source["hdu"], variable=source["variable"])
            values = np.asarray(getattr(found, "data", found))
    except (InputError, ValueError, TypeError, OSError) as exc:
        raise _InputProblem(key, str(exc)) from None
    if values.dtype.kind not in "biuf":
        raise _InputProblem(key, f"holds {values.dtype} values; expected numbers or booleans")
    try:
        region = np.broadcast_to(np.isfinite(values) & (values != 0), shape)
    except ValueError:
        raise _InputProblem(
            key,
            f"has shape {values.shape}, which does not broadcast to the shape of the maps "
            f"{shape} (the cube {opened['shape']} without its fitting axes)",
        ) from None
    if not region.any():
        raise _InputProblem(key, "selects no pixel: it needs at least one nonzero value")
    return np.array(region)


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


def _spectral_axis(data, ndim, base):
    wcs = getattr(data, "wcs", None)
    if wcs is None or not getattr(wcs, "has_spectral", False):
        raise _InputProblem(
            base + ("fitting_axes",),
            "'spectral' needs a FITS cube whose WCS has a spectral axis; give the axis "
            "number instead",
        )
    return ndim - 1 - int(wcs.wcs.spec)


def _open_aux(cfg, inp, base, key, source, shape):
    import dask.array as da

    from parfit.io import open_cube

    path = resolve(cfg, source["path"] or inp.path)
    try:
        opened = open_cube(path, hdu=source["hdu"], variable=source["variable"])
    except (InputError, ValueError, TypeError, OSError) as exc:
        raise _InputProblem(base + (key,), str(exc)) from None
    array = getattr(opened, "data", opened)
    array = da.asarray(array)
    try:
        np.broadcast_shapes(tuple(array.shape), shape)
    except ValueError:
        raise _InputProblem(
            base + (key,),
            f"has shape {tuple(array.shape)}, which does not broadcast to the cube's {shape}",
        ) from None
    return array
