"""The config template and the docs reference page, generated from the schema.

Both walk the pydantic classes of :mod:`parfit.config.schema`, so a new option
appears in ``parfit config`` and in ``docs/config_reference.rst`` as soon as
it is in the schema (a test fails when the committed page drifts).
"""

import json
import textwrap
import types
import typing

from pydantic import BaseModel

from parfit.config.schema import (
    SECTIONS,
    DynamicComponent,
    ParameterConfig,
    component_classes,
    config_schema,
    section_class,
)

__all__ = ["template", "reference_rst", "field_rows"]

_EXAMPLE_COMPONENTS = [
    {
        "type": "Gaussian1D",
        "amplitude": {"value": 1.0, "bounds": [0, None]},
        "mean": {"value": "0 km/s", "bounds": ["-50 km/s", "50 km/s"]},
        "stddev": {"value": "5 km/s", "bounds": ["0.1 km/s", None]},
    },
    {"type": "Const1D", "amplitude": {"value": 0.0, "fixed": False}},
]
_MINIMAL = {
    "input": {"path": "cube.fits", "fitting_axes": 0},
    "model": {"components": [{"type": "Gaussian1D"}], "initial": "guess"},
    "output": {"path": "results"},
}


def _sections():
    schema = config_schema()
    return [(name, section_class(schema.model_fields[name].annotation)) for name in SECTIONS]


def type_label(field):
    """A short human description of what a field accepts."""
    extra = field.json_schema_extra or {}
    for meta in field.metadata:
        extra = {**(getattr(meta, "json_schema_extra", None) or {}), **extra}
    label = extra.get("type_label")
    return label or _label(field.annotation)


def _label(annotation):
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(str(a) for a in args)
    if origin is typing.Union or origin is types.UnionType:  # Optional[X] and X | None
        parts = [a for a in args if a is not type(None)]
        if all(isinstance(a, type) and issubclass(a, BaseModel) for a in parts):
            return "component"
        text = " or ".join(_label(a) for a in parts)
        return text + " or null" if len(parts) < len(args) else text
    if origin is typing.Annotated:
        for meta in args[1:]:
            extra = getattr(meta, "json_schema_extra", None) or {}
            if "type_label" in extra:
                return extra["type_label"]
        return _label(args[0])
    if origin is list:
        return (
            f"list of {_label(args[0])}s"
            if args and _label(args[0]) == "component"
            else (f"list of {_label(args[0])}" if args else "list")
        )
    names = {bool: "true/false", int: "int", float: "number", str: "text", dict: "mapping"}
    if annotation in names:
        return names[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _default(field):
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        return "[]" if value == [] else "(section)"
    return _yaml_value(field.default)


def _yaml_value(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value) if _needs_quotes(value) else value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _needs_quotes(text):
    import yaml

    if text == "" or " " in text or ":" in text or "#" in text:
        return True
    return not isinstance(yaml.safe_load(text), str)


def field_rows(cls):
    """``(key, type, default, description)`` of every field of a section class."""
    return [
        (name, type_label(f), _default(f), f.description or "")
        for name, f in cls.model_fields.items()
    ]


# --- template -----------------------------------------------------------------------


def template(minimal=False):
    """The commented config template that ``parfit config`` writes.

    YAML text with every option, its default and its meaning as a comment.

    Parameters
    ----------
    minimal : bool
        Only the keys you must give: input path and axis, one component,
        output folder.

    Returns
    -------
    str

    Examples
    --------
    >>> text = template(minimal=True)
    >>> text.splitlines()[5:8]
    ['input:', '  path: cube.fits', '  fitting_axes: 0']
    >>> from parfit.config import parse_config
    >>> cfg = parse_config(template(), check_files=False)
    >>> [c.type for c in cfg.model.components]
    ['Gaussian1D', 'Const1D']
    """
    from parfit import __version__

    head = [
        f"# parfit analysis config (written by `parfit config`, parfit {__version__}).",
        "# Check it with `parfit validate FILE`, run it with `parfit run FILE`.",
        "# Relative paths are relative to the folder of this file.",
    ]
    if minimal:
        head.append("# Every other option has a default; `parfit config` lists them all.")
        return "\n".join(head) + "\n\n" + "\n".join(_minimal_lines()) + "\n"
    lines = head + [""]
    for name, cls in _sections():
        lines.append(f"# {_doc(cls)}")
        lines.append(f"{name}:")
        for key, field in cls.model_fields.items():
            desc = f"{field.description or ''} [{type_label(field)}]"
            lines.extend(textwrap.wrap(desc, 88, initial_indent="  # ", subsequent_indent="  #   "))
            if name == "model" and key == "components":
                lines.extend(_component_lines())
                continue
            lines.append(f"  {key}: {_template_value(field)}")
        lines.append("")
    return "\n".join(lines)


def _doc(cls):
    return (cls.__doc__ or "").strip().splitlines()[0]


def _template_value(field):
    extra = field.json_schema_extra or {}
    if "example" in extra:
        return _yaml_value(extra["example"])
    if field.default_factory is not None:
        return _yaml_value(field.default_factory())
    return _yaml_value(field.default)


def _component_lines():
    classes = component_classes()
    lines = [
        "  # Component types and their parameters (the docs' config reference has",
        "  # defaults and units); a parameter is a number, a quantity such as",
        '  # "4000 m/s", or a mapping of value, unit, bounds, fixed and tied:',
    ]
    for type_name, cls in classes.items():
        params = [k for k in cls.model_fields if k not in ("type", "name")]
        if issubclass(cls, DynamicComponent):
            params = params + ["c0 ... c<degree>"]
        lines.append(f"  #   {type_name}: {', '.join(params)}")
    lines.append("  components:")
    for comp in _EXAMPLE_COMPONENTS:
        first = True
        for key, value in comp.items():
            lines.append(f"    {'- ' if first else '  '}{key}: {_yaml_value(value)}")
            first = False
    return lines


def _minimal_lines():
    out = []
    for section, body in _MINIMAL.items():
        out.append(f"{section}:")
        for key, value in body.items():
            if key == "components":
                out.append("  components:")
                out.extend(f"    - {_yaml_value(c)[1:-1]}" for c in value)
            else:
                out.append(f"  {key}: {_yaml_value(value)}")
    return out


# --- reference page ---------------------------------------------------------------------


def reference_rst():
    """The reStructuredText of ``docs/config_reference.rst``."""
    out = [
        ".. This page is generated from the config schema (parfit/config/schema.py) by",
        "   `parfit config --reference`; edit the schema, not this file.",
        "",
        "Config reference",
        "================",
        "",
        "Every key of a parfit analysis config, with its type, default and meaning.",
        "``parfit config`` writes a template holding all of them; ``parfit config",
        "--minimal`` writes only the keys you must give.  Relative paths are",
        "relative to the folder of the config file.",
        "",
    ]
    for name, cls in _sections():
        title = f"``{name}``"
        out += [title, "-" * len(title), "", _doc(cls), ""]
        out += _table(field_rows(cls))
    title = "Parameters of a component"
    out += [
        title,
        "-" * len(title),
        "",
        "Each parameter of a component is a number, a quantity string such as",
        '``"4000 m/s"`` (its value), or a mapping with these keys:',
        "",
    ]
    out += _table(field_rows(ParameterConfig))
    title = "Component types"
    out += [
        title,
        "-" * len(title),
        "",
        "``model.components`` is a list; each item names its ``type`` and may set",
        "``name`` and the parameters below.  Units are given in terms of the",
        "model's input ``x`` (and ``y`` for 2-D models) and the data ``y``",
        "(``z`` for 2-D models).",
        "",
    ]
    for type_name, cls in component_classes().items():
        head = f"``{type_name}``"
        out += [head, "^" * len(head), "", _doc(cls), ""]
        rows = []
        for key, field in cls.model_fields.items():
            if key in ("type", "name"):
                continue
            extra = field.json_schema_extra or {}
            unit = extra.get("unit_role") or ("" if field.is_required() else "dimensionless")
            rows.append((key, unit, field.description or ""))
        if issubclass(cls, DynamicComponent):
            rows.append(("c0 ... c<degree>", "y / x**k", "coefficient of x**k (default 0)"))
        out += _table(rows, header=("key", "unit", "description"))
    return "\n".join(out).rstrip() + "\n"


def _table(rows, header=("key", "type", "default", "description")):
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header] + [tuple(r) for r in rows]:
        cells = [f"``{row[0]}``" if row is not header else row[0]]
        cells += [str(c).replace("\n", " ") for c in row[1:]]
        out.append(f"   * - {cells[0]}")
        out += [f"     - {c}" if c else "     -" for c in cells[1:]]
    return out + [""]
