"""Models to and from plain dicts and YAML.

Leaf::

    model: Gaussian1D
    name: null
    parameters:
      amplitude: {value: 1.0, bounds: [0.0, null], fixed: false, tied: null, unit: Jy}

Compound: ``{operator: '+', left: ..., right: ...}``; tied expressions of a
compound are written on the leaf parameters in the compound's names
(``tied: mean_0 + 1200``).  YAML is read with a safe loader that rejects
duplicate keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import yaml

from parfit.errors import ModelError, ParameterError
from parfit.models.base import MODEL_REGISTRY, Model
from parfit.models.compound import OPERATORS, CompoundModel
from parfit.models.function import FunctionModel
from parfit.models.parameters import Parameter

__all__ = ["from_dict", "from_yaml", "to_dict", "to_yaml"]

_PARAM_KEYS = {
    "value",
    "bounds",
    "fixed",
    "tied",
    "unit",
    "per_pixel_shape",
    "per_pixel_bounds_shape",
}


def _number_or_list(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    return float(value)


def _param_to_dict(p: Parameter, tied: str | None, include_arrays: bool) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if p.is_array and not include_arrays:
        d["value"] = None
        d["per_pixel_shape"] = list(p.shape)
    else:
        d["value"] = _number_or_list(p.value)
    bounds: list[Any] = []
    bound_shapes: list[Any] = []
    for b in p.bounds:
        if isinstance(b, np.ndarray) and not include_arrays:
            bounds.append(None)
            bound_shapes.append(list(b.shape))
        else:
            bounds.append(None if b is None else _number_or_list(b))
            bound_shapes.append(None)
    d["bounds"] = bounds
    if any(s is not None for s in bound_shapes):
        d["per_pixel_bounds_shape"] = bound_shapes
    d["fixed"] = bool(p.fixed)
    d["tied"] = tied
    d["unit"] = None if p.unit is None else p.unit.to_string()
    return d


def _leaf_to_dict(model: Model, pairs: list[tuple[str, Parameter]], include_arrays: bool) -> dict:
    cls = type(model)
    registered = MODEL_REGISTRY.get(cls.__name__)
    if registered is not cls and issubclass(cls, FunctionModel):
        func = cls._func
        fname = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)}"
        raise ModelError(
            f"{cls.__name__} was made by model_from_function from {fname} and is not "
            "registered; function models can be written to YAML only once registered with "
            f"parfit.models.register_model({cls.__name__}) (the function itself is not "
            "written: the reading process must register the same class before from_yaml)"
        )
    if registered is not cls:
        raise ModelError(
            f"model class {cls.__module__}.{cls.__qualname__} is not registered; decorate it "
            "with @parfit.models.register_model to serialise it"
        )
    d: dict[str, Any] = {"model": cls.__name__, "name": model.name}
    d.update(model._structural_args())
    d["parameters"] = {local: _param_to_dict(p, p.tied, include_arrays) for local, p in pairs}
    return d


def to_dict(model: Model, include_arrays: bool = True) -> dict[str, Any]:
    """Describe a model as a plain dict (YAML/JSON friendly).

    Parameters
    ----------
    model : Model
        Leaf or compound model; leaf classes must be registered.
    include_arrays : bool, optional
        Write per-pixel values and bounds as nested lists.  If False, write
        ``value: null`` and ``per_pixel_shape`` instead (reading back gives
        the default value; per-pixel bounds become unbounded).

    Returns
    -------
    dict

    Examples
    --------
    >>> from parfit.models import Const1D
    >>> to_dict(Const1D(2.0))
    {'model': 'Const1D', 'name': None, 'parameters': {'amplitude': {'value': 2.0, 'bounds': [None,
    None], 'fixed': False, 'tied': None, 'unit': None}}}
    """
    from parfit.models.joint import JointModel, check_dataset_names

    models = model.dataset_models() if isinstance(model, JointModel) else model
    if isinstance(models, Mapping):
        check_dataset_names(list(models), "model")
        return {
            "datasets": {
                name: to_dict(member, include_arrays=include_arrays)
                for name, member in models.items()
            }
        }
    if not isinstance(model, Model):
        raise ModelError(f"to_dict expects a parfit model, got {model!r}")
    if isinstance(model, CompoundModel):

        def walk(node: Any) -> dict[str, Any]:
            if isinstance(node, int):
                return _leaf_to_dict(
                    model._templates[node], model._leaf_parameters(node), include_arrays
                )
            op, left, right = node
            return {"operator": op, "left": walk(left), "right": walk(right)}

        out = walk(model._tree)
        if model.name is not None:
            out["name"] = model.name
        return out
    return _leaf_to_dict(model, list(model.parameters.items()), include_arrays)


def _expect(cond: bool, path: str, message: str) -> None:
    if not cond:
        raise ModelError(f"{path}: {message}")


def _read_number_or_array(path: str, value: Any, what: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, list)):
        raise ModelError(f"{path}: {what} must be a number or a nested list, got {value!r}")
    if isinstance(value, list):
        try:
            arr = np.array(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{path}: {what} is not a regular numeric array ({exc})") from None
        return arr
    return float(value)


def _leaf_from_dict(d: dict, path: str, ties: list[tuple[int, str, str]]) -> Model:
    name = d["model"]
    _expect(isinstance(name, str), path, f"'model' must be a string, got {name!r}")
    cls = MODEL_REGISTRY.get(name)
    if cls is None:
        raise ModelError(
            f"{path}: unknown model {name!r}; known models: {', '.join(sorted(MODEL_REGISTRY))} "
            "(register your own with @parfit.models.register_model)"
        )
    structural = {k: v for k, v in d.items() if k not in ("model", "name", "parameters")}
    label = d.get("name")
    _expect(
        label is None or isinstance(label, str), path, f"'name' must be a string, got {label!r}"
    )
    try:
        model = cls(**structural, name=label)
    except TypeError as exc:
        raise ModelError(f"{path}: cannot build {name} with {structural!r}: {exc}") from None
    except (ModelError, ParameterError) as exc:
        raise ModelError(f"{path}: {exc}") from None
    params = d.get("parameters", {}) or {}
    _expect(isinstance(params, dict), path, "'parameters' must be a mapping")
    for pname, pd in params.items():
        ppath = f"{path}.parameters.{pname}"
        if pname not in model.parameters:
            raise ModelError(
                f"{ppath}: {name} has no parameter {pname!r}; parameters are: "
                f"{', '.join(model.param_names)}"
            )
        _expect(isinstance(pd, dict), ppath, f"must be a mapping, got {pd!r}")
        unknown = set(pd) - _PARAM_KEYS
        _expect(
            not unknown, ppath, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_PARAM_KEYS)}"
        )
        param = model.parameters[pname]
        kwargs: dict[str, Any] = {}
        unit = pd.get("unit")
        if unit is not None:
            _expect(isinstance(unit, str), ppath, f"unit must be a string, got {unit!r}")
            try:
                param.unit = unit
            except ParameterError as exc:
                raise ModelError(f"{ppath}: {exc}") from None
        value = pd.get("value")
        if value is not None:
            kwargs["value"] = _read_number_or_array(ppath + ".value", value, "value")
        if "bounds" in pd:  # a missing key keeps the model's default bounds
            bounds = pd["bounds"]
            _expect(
                isinstance(bounds, list) and len(bounds) == 2,
                ppath,
                f"bounds must be a list [lower, upper], got {bounds!r}",
            )
            kwargs["bounds"] = tuple(
                None if b is None else _read_number_or_array(ppath + ".bounds", b, "bound")
                for b in bounds
            )
        fixed = pd.get("fixed", False)
        _expect(isinstance(fixed, bool), ppath, f"fixed must be true or false, got {fixed!r}")
        kwargs["fixed"] = fixed
        tied = pd.get("tied")
        _expect(
            tied is None or isinstance(tied, str),
            ppath,
            f"tied must be an expression string or null, got {tied!r}",
        )
        kwargs["tied"] = None
        if tied is not None:
            ties.append((id(model), pname, tied))
        try:
            param.update(**kwargs)
        except ParameterError as exc:
            raise ModelError(f"{ppath}: {exc}") from None
    return model


def _from_dict(d: Any, path: str, ties: list[tuple[int, str, str]]) -> Model:
    _expect(isinstance(d, dict), path, f"must be a mapping, got {d!r}")
    if "operator" in d:
        unknown = set(d) - {"operator", "left", "right", "name"}
        _expect(not unknown, path, f"unknown key(s) {sorted(unknown)} in a compound model")
        op = d["operator"]
        _expect(
            op in OPERATORS, path, f"unknown operator {op!r}; supported: {', '.join(OPERATORS)}"
        )
        _expect("left" in d and "right" in d, path, "a compound model needs 'left' and 'right'")
        left = _from_dict(d["left"], path + ".left", ties)
        right = _from_dict(d["right"], path + ".right", ties)
        label = d.get("name")
        _expect(
            label is None or isinstance(label, str), path, f"'name' must be a string, got {label!r}"
        )
        return _Pending(op, left, right, label)  # type: ignore[return-value]
    _expect("model" in d, path, "needs a 'model' key (leaf) or an 'operator' key (compound)")
    return _leaf_from_dict(d, path, ties)


class _Pending:
    """Compound node whose CompoundModel is built once, at the root."""

    def __init__(self, op: str, left: Any, right: Any, name: str | None) -> None:
        self.op, self.left, self.right, self.name = op, left, right, name

    def build(self) -> Model:
        left = self.left.build() if isinstance(self.left, _Pending) else self.left
        right = self.right.build() if isinstance(self.right, _Pending) else self.right
        return CompoundModel(self.op, left, right, name=self.name)

    def leaves(self) -> list[Model]:
        out: list[Model] = []
        for side in (self.left, self.right):
            out.extend(side.leaves() if isinstance(side, _Pending) else [side])
        return out


def from_dict(d: dict[str, Any]) -> Model:
    """Build a model from :func:`to_dict` output.

    Raises
    ------
    ModelError
        For unknown models, parameters or keys, wrong types or inconsistent
        parameters, naming the path in the dict.

    Examples
    --------
    >>> from parfit.models import Gaussian1D, Const1D
    >>> from_dict(to_dict(Gaussian1D(mean=2.0) + Const1D()))
    <CompoundModel(Gaussian1D + Const1D: amplitude_0=1.0, mean_0=2.0, stddev_0=1.0,
    amplitude_1=1.0)>
    """
    if isinstance(d, dict) and "datasets" in d:
        return _datasets_from_dict(d)  # type: ignore[return-value]
    return _model_from_dict(d, "model")


def _datasets_from_dict(d: dict[str, Any]) -> dict[str, Model]:
    """``{dataset: model}`` of a joint fit, ties across datasets checked."""
    from parfit.models.joint import JointModel, check_dataset_names, split_dataset_ties

    unknown = set(d) - {"datasets"}
    _expect(not unknown, "model", f"unknown key(s) {sorted(unknown)} beside 'datasets'")
    datasets = d["datasets"]
    _expect(
        isinstance(datasets, dict) and bool(datasets),
        "model.datasets",
        f"must be a mapping of dataset names to models, got {datasets!r}",
    )
    check_dataset_names(list(datasets), "model.datasets")
    models: dict[str, Model] = {}
    across: dict[str, dict[str, str]] = {}
    for name, member in datasets.items():
        path = f"model.datasets.{name}"
        _expect(isinstance(member, dict), path, f"must be a mapping, got {member!r}")
        # Each model is built and checked alone, without its ties to other datasets.
        parsed = _model_from_dict(member, path, defer_across=True)
        models[name], across[name] = split_dataset_ties(parsed)
    check = JointModel(models, {name: 1 for name in models})
    try:
        for name, ties in across.items():
            check.tie(name, ties)
        check.validate()
    except ParameterError as exc:
        raise ModelError(f"model.datasets: {exc}") from None
    return check.dataset_models()


def _model_from_dict(d: Any, path: str, defer_across: bool = False) -> Model:
    """One model (leaf or compound) from its dict; see :func:`from_dict`."""
    ties: list[tuple[int, str, str]] = []
    root = _from_dict(d, path, ties)
    if isinstance(root, _Pending):
        leaves = root.leaves()
        model = root.build()
        index = {id(leaf): i for i, leaf in enumerate(leaves)}
        for leaf_id, local, text in ties:
            target = model.parameters[f"{local}_{index[leaf_id]}"]
            try:
                target.update(tied=text)
            except ParameterError as exc:
                raise ModelError(f"{path}: {exc}") from None
    else:
        model = root
        for _, local, text in ties:
            try:
                model.parameters[local].update(tied=text)
            except ParameterError as exc:
                raise ModelError(f"{path}.parameters.{local}: {exc}") from None
    if defer_across:
        from parfit.models.joint import split_dataset_ties

        alone, _ = split_dataset_ties(model)
        try:
            alone.validate()
        except ParameterError as exc:
            raise ModelError(f"{path}: {exc}") from None
        return model
    try:
        model.validate()
    except ParameterError as exc:
        raise ModelError(f"{path}: {exc}") from None
    return model


#: Deepest nesting of a model document: a sum of n components nests n + 4
#: levels, and parfit configs allow 200 components.
MAX_MODEL_DEPTH = 300


class _StrictSafeLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys, aliases and deep nesting.

    :func:`to_yaml` never writes aliases, so a model document has no use
    for them, and refusing them rules out "billion laughs" expansion; the
    depth bound keeps the (recursive) composer far from Python's stack limit.
    """

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ModelError(
                f"model YAML may not use aliases (*{event.anchor} at line "
                f"{event.start_mark.line + 1}); write the values out"
            )
        self._depth += 1
        try:
            if self._depth > MAX_MODEL_DEPTH:
                mark = self.peek_event().start_mark
                raise ModelError(
                    f"model YAML nests deeper than {MAX_MODEL_DEPTH} levels (line "
                    f"{mark.line + 1}); a model of that many components is not supported"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in mapping
        except TypeError:
            raise ModelError(
                f"unhashable mapping key at line {key_node.start_mark.line + 1}"
            ) from None
        if duplicate:
            raise ModelError(
                f"duplicate key {key!r} at line {key_node.start_mark.line + 1}, column "
                f"{key_node.start_mark.column + 1}; each key may appear only once"
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_StrictSafeLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def to_yaml(model: Model, include_arrays: bool = True) -> str:
    """Serialise a model to YAML text (see :func:`to_dict`).

    Examples
    --------
    >>> from parfit.models import Gaussian1D
    >>> print(to_yaml(Gaussian1D(bounds={"stddev": (0.1, None)})))
    model: Gaussian1D
    name: null
    parameters:
      amplitude:
        value: 1.0
        bounds: [null, null]
        fixed: false
        tied: null
        unit: null
      mean:
        value: 0.0
        bounds: [null, null]
        fixed: false
        tied: null
        unit: null
      stddev:
        value: 1.0
        bounds: [0.1, null]
        fixed: false
        tied: null
        unit: null
    <BLANKLINE>
    """
    return yaml.safe_dump(
        to_dict(model, include_arrays=include_arrays), sort_keys=False, default_flow_style=None
    )


def from_yaml(text: str) -> Model:
    """Read a model written by :func:`to_yaml`.

    Uses a safe loader that also rejects duplicate keys.

    Examples
    --------
    >>> from parfit.models import Lorentz1D
    >>> from_yaml(to_yaml(Lorentz1D(x_0=3.0)))
    <Lorentz1D(amplitude=1.0, x_0=3.0, fwhm=1.0)>
    """
    if not isinstance(text, str):
        raise ModelError(f"from_yaml expects YAML text (str), got {type(text).__name__}")
    try:
        data = yaml.load(text, Loader=_StrictSafeLoader)  # noqa: S506 - safe loader subclass
    except yaml.YAMLError as exc:
        raise ModelError(f"invalid YAML: {exc}") from None
    return from_dict(data)
