"""The config template and the docs reference page, generated from the schema.

Both walk the pydantic classes of :mod:`parfit.config.schema`, so a new option
appears in ``parfit config`` and in ``docs/config_reference.rst`` as soon as
it is in the schema (a test fails when the committed page drifts).
``parfit config --joint`` writes the template of a joint config (a
``datasets`` section in place of ``input`` and ``model``), ``parfit config
--select`` that of a per-pixel model selection (a ``select`` section in
place of ``model``).
"""

import json
import textwrap
import types
import typing

from pydantic import BaseModel

from parfit.config.schema import (
    JOINT_SECTIONS,
    SECTIONS,
    SELECT_SECTIONS,
    DynamicComponent,
    ParameterConfig,
    component_classes,
    config_schema,
    dataset_section,
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
#: The second dataset of the joint template: its line shares centre and width with co10's.
_EXAMPLE_TIED = [
    {
        "type": "Gaussian1D",
        "amplitude": {"value": 1.0, "bounds": [0, None]},
        "mean": {"tied": "co10.mean_0"},
        "stddev": {"tied": "co10.stddev_0"},
    },
    {"type": "Const1D"},
]
#: The candidates of the selection template: one, two and three lines on a baseline.
_EXAMPLE_CANDIDATES = [
    {
        "components": [{"type": "Gaussian1D", "amplitude": {"bounds": [0, None]}}] * n
        + [{"type": "Const1D"}],
        "initial": "guess",
    }
    for n in (1, 2, 3)
]
_SELECT_ABOUT = [
    "# A per-pixel model selection: every candidate model is fitted to every pixel,",
    "# and each pixel keeps the candidate with the lowest information criterion",
    "# (among those that succeeded with every line significant, amplitude >= 3",
    "# errors).  Each candidate has the keys of the model section; they all start",
    "# the same way (one initial).  The output folder holds candidate_<k>.zarr (the",
    "# maps of candidate k) and selection.zarr (selected: the chosen candidate per",
    "# pixel, -1 for none; delta: the runner-up's criterion minus the chosen one's).",
]
_JOINT_ABOUT = [
    "# A joint fit: several cubes fitted together, pixel by pixel.  Each entry of",
    "# datasets names one cube (a Python identifier) and holds its own input and",
    "# model, with every key of the input and model sections of a one-cube config;",
    "# a tied expression may name another dataset's parameter as <dataset>.<parameter>",
    "# (names as in that dataset's model: mean_0, mean_1, ... when it has several",
    "# components).  The cubes must have the same shape along their iterating axes;",
    "# the maps are named <dataset>.<parameter> (co21.mean_0), in one store.",
]


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


def template(minimal=False, *, joint=False, select=False):
    """The commented config template that ``parfit config`` writes.

    YAML text with every option, its default and its meaning as a comment.

    Parameters
    ----------
    minimal : bool
        Only the keys you must give: input path and axis, one component,
        output folder.
    joint : bool
        A joint config (``parfit config --joint``): a ``datasets`` section of
        two cubes, the second sharing the line centre and width of the first,
        in place of ``input`` and ``model``.
    select : bool
        A per-pixel model selection (``parfit config --select``): a
        ``select`` section of three candidates (one, two and three lines on a
        baseline) in place of ``model``.

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
    >>> joint = parse_config(template(joint=True), check_files=False)
    >>> list(joint.datasets), joint.datasets["co21"].model.components[0].mean.tied
    (['co10', 'co21'], 'co10.mean_0')
    >>> chosen = parse_config(template(select=True), check_files=False)
    >>> chosen.select.criterion, [len(c.components) for c in chosen.select.candidates]
    ('aicc', [2, 3, 4])
    """
    from parfit import __version__

    if joint and select:
        raise ValueError("template: a config is joint or a selection, not both")
    command = (
        "parfit config --joint"
        if joint
        else "parfit config --select"
        if select
        else "parfit config"
    )
    head = [
        f"# parfit analysis config (written by `{command}`, parfit {__version__}).",
        "# Check it with `parfit validate FILE`, run it with `parfit run FILE`.",
        "# Relative paths are relative to the folder of this file.",
    ]
    if minimal:
        head.append(f"# Every other option has a default; `{command}` lists them all.")
        body = (
            _minimal_joint_lines()
            if joint
            else _minimal_select_lines()
            if select
            else _minimal_lines()
        )
        return "\n".join(head) + "\n\n" + "\n".join(body) + "\n"
    if not joint and not select:
        head.append("# To fit several cubes together (a joint fit), `parfit config --joint` writes")
        head.append("# a template with a datasets section in place of input and model;")
        head.append("# to choose per pixel between candidate models, `parfit config --select`")
        head.append("# one with a select section in place of model.")
    lines = head + [""]
    if joint:
        lines += _JOINT_ABOUT
        lines.append("datasets:")
        lines.append("  co10:")
        for name, cls in _sections()[:2]:
            lines += _section_lines(name, cls, "    ", {"path": "co10.fits"}, _EXAMPLE_COMPONENTS)
        lines.append("  co21:")
        lines.append(
            "    # co21's line has the centre and the width of co10's line, pixel by pixel"
        )
        lines.append("    input: {path: co21.fits, fitting_axes: 0}")
        lines.append("    model:")
        lines.append("      components:")
        lines += _components_yaml(_EXAMPLE_TIED, "        ")
        lines.append("      initial: model")
        lines.append("")
    for name, cls in _sections():
        if joint and name in ("input", "model"):
            continue
        if select and name == "model":
            lines += _SELECT_ABOUT
            lines += _select_lines()
            lines.append("")
            continue
        lines += _section_lines(name, cls, "", {}, _EXAMPLE_COMPONENTS)
        lines.append("")
    return "\n".join(lines)


def _select_class():
    schema = config_schema(select=True)
    return section_class(schema.model_fields["select"].annotation)


def _select_lines():
    """The ``select`` section of the selection template, with its three candidates."""
    cls = _select_class()
    lines = [f"# {_doc(cls)}", "select:"]
    for key, field in cls.model_fields.items():
        desc = f"{field.description or ''} [{type_label(field)}]"
        lines += textwrap.wrap(desc, 88, initial_indent="  # ", subsequent_indent="  #   ")
        if key != "candidates":
            lines.append(f"  {key}: {_template_value(field)}")
            continue
        lines.append("  candidates:")
        for candidate in _EXAMPLE_CANDIDATES:
            lines.append("    - components:")
            lines += _components_yaml(candidate["components"], "        ")
            lines.append(f"      initial: {candidate['initial']}")
    return lines


def _section_lines(name, cls, indent, values, components):
    """A section of the template at ``indent``: its doc, then each key with its comment.

    ``values`` replaces the shown value of some keys; ``components`` is the
    example of ``model.components``.
    """
    lines = [f"{indent}# {_doc(cls)}", f"{indent}{name}:"]
    inner = indent + "  "
    for key, field in cls.model_fields.items():
        desc = f"{field.description or ''} [{type_label(field)}]"
        lines.extend(
            textwrap.wrap(
                desc,
                88,
                initial_indent=f"{inner}# ",
                subsequent_indent=f"{inner}#   ",
            )
        )
        if name == "model" and key == "components":
            lines.extend(_component_lines(inner, components))
            continue
        example = (field.json_schema_extra or {}).get("template_example")
        if example is not None:
            lines.append(f"{inner}#   e.g. {key}: {example}")
        value = _yaml_value(values[key]) if key in values else _template_value(field)
        lines.append(f"{inner}{key}: {value}")
    return lines


def _doc(cls):
    return (cls.__doc__ or "").strip().splitlines()[0]


def _template_value(field):
    extra = field.json_schema_extra or {}
    if "example" in extra:
        return _yaml_value(extra["example"])
    if field.default_factory is not None:
        return _yaml_value(field.default_factory())
    return _yaml_value(field.default)


def _component_lines(indent, components):
    classes = component_classes()
    lines = [
        f"{indent}# Component types and their parameters (the docs' config reference has",
        f"{indent}# defaults and units); a parameter is a number, a quantity such as",
        f'{indent}# "4000 m/s", or a mapping of value, unit, bounds, fixed and tied:',
    ]
    for type_name, cls in classes.items():
        params = [k for k in cls.model_fields if k not in ("type", "name")]
        if issubclass(cls, DynamicComponent):
            params = params + ["c0 ... c<degree>"]
        lines.append(f"{indent}#   {type_name}: {', '.join(params)}")
    lines.append(f"{indent}components:")
    return lines + _components_yaml(components, indent + "  ")


def _components_yaml(components, indent):
    lines = []
    for comp in components:
        first = True
        for key, value in comp.items():
            lines.append(f"{indent}{'- ' if first else '  '}{key}: {_yaml_value(value)}")
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


def _minimal_select_lines():
    out = ["input:", "  path: cube.fits", "  fitting_axes: 0", "select:", "  criterion: aicc"]
    out.append("  candidates:")
    for n in (1, 2):
        out.append("    - components:")
        out += ["        - type: Gaussian1D"] * n + ["        - type: Const1D"]
        out.append("      initial: guess")
    return out + ["output:", "  path: results"]


def _minimal_joint_lines():
    tied = {
        "type": "Gaussian1D",
        "mean": {"tied": "co10.mean_0"},
        "stddev": {"tied": "co10.stddev_0"},
    }
    out = ["datasets:"]
    for name, first in (("co10", {"type": "Gaussian1D"}), ("co21", tied)):
        out += [
            f"  {name}:",
            f"    input: {{path: {name}.fits, fitting_axes: 0}}",
            "    model:",
            "      components:",
            f"        - {_yaml_value(first)[1:-1] if name == 'co10' else _yaml_value(first)}",
            "        - type: Const1D",
            "      initial: guess",
        ]
    return out + ["output:", "  path: results"]


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
        if name == "model":
            out += _datasets_reference()
            out += _select_reference()
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


def _datasets_reference():
    """The ``datasets`` section of the reference: a joint config's cubes."""
    title = "``datasets``"
    others = ", ".join(f"``{s}``" for s in JOINT_SECTIONS[1:])
    return [
        title,
        "-" * len(title),
        "",
        _doc(config_schema(joint=True)),
        "A config has either ``input`` and ``model`` (one cube) or ``datasets``",
        f"(several cubes), never both; the other sections ({others}) are the same",
        "in both.",
        "",
        "``datasets`` maps each dataset's name, a Python identifier such as ``co10``,",
        "to that cube's own ``input`` and ``model`` sections, with the keys above.",
        "The cubes must have the same shape along their iterating axes (``parfit",
        "validate`` checks it from the headers).  The maps, in one store, are named",
        "``<dataset>.<parameter>`` (``co21.mean_0``); a tied expression may name",
        "another dataset's parameter the same way, the parameter named as in that",
        "dataset's model (``mean_0``, ``mean_1``, ... when the model has several",
        "components).  Each entry has these keys:",
        "",
        *_table(field_rows(dataset_section())),
    ]


def _select_reference():
    """The ``select`` section of the reference: candidate models chosen per pixel."""
    title = "``select``"
    others = ", ".join(f"``{s}``" for s in SELECT_SECTIONS[2:])
    return [
        title,
        "-" * len(title),
        "",
        _doc(_select_class()) + ".",
        "A config has either ``model`` (one model) or ``select`` (candidate",
        f"models), never both; the other sections ({others}) are the same in both,",
        "and a joint config (``datasets``) has no ``select``.  Every candidate",
        "is fitted to every pixel; each pixel keeps the candidate with the lowest",
        "criterion among those that succeeded with every line significant",
        "(amplitude at least 3 errors), a more complex one only where it is lower",
        "by more than ``threshold``.  The output folder holds ``candidate_<k>.zarr``",
        "(the maps of candidate k) and ``selection.zarr`` (``selected``, the chosen",
        "candidate per pixel, -1 for none; ``delta``, the runner-up's criterion",
        "minus the chosen one's; ``criteria``; the chosen fit's parameters).",
        "``parfit config --select`` writes a template.  Its keys:",
        "",
        *_table(field_rows(_select_class())),
    ]


def _table(rows, header=("key", "type", "default", "description")):
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header] + [tuple(r) for r in rows]:
        cells = [f"``{row[0]}``" if row is not header else row[0]]
        cells += [str(c).replace("\n", " ") for c in row[1:]]
        out.append(f"   * - {cells[0]}")
        out += [f"     - {c}" if c else "     -" for c in cells[1:]]
    return out + [""]
