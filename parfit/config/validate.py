"""Reading and checking a config: YAML text or a file in, a validated config out.

:func:`load_config` reads a file, :func:`parse_config` YAML text and
:func:`validate_config` a dict; each reports *every* problem at once, each
with its YAML path and line, in a :class:`~parfit.errors.ConfigError`.
Relative paths in a config file are relative to the file's folder.
:func:`config_hash` and :func:`config_to_yaml` write a validated config back
out: the hash names the analysis, whatever the file's formatting.

Examples
--------
>>> one = parse_config("input: {path: cube.fits}\\n"
...     "model: {components: [{type: Const1D}]}\\noutput: {path: out}\\n", check_files=False)
>>> other = parse_config("output:\\n  path: out\\ninput:\\n  path: ./cube.fits\\n"
...     "model:\\n  components:\\n    - type: Const1D\\n", check_files=False)
>>> config_hash(one) == config_hash(other)
True
"""

import hashlib
import json
import os
import re
import typing
from pathlib import Path

from pydantic import ValidationError

from parfit.config._yaml import MAX_CHARS, Problem, format_path, load_yaml
from parfit.config.build import check_semantics
from parfit.config.schema import (
    MAX_COMPONENTS,
    SECTIONS,
    ParameterConfig,
    component_classes,
    config_schema,
    is_joint_config,
    is_selection_config,
    resolve,
    section_class,
    set_base_dir,
    structural_args,
)
from parfit.config.strategy import StrategySection
from parfit.config.types import did_you_mean
from parfit.errors import ConfigError, InputTypeError

__all__ = [
    "load_config",
    "parse_config",
    "validate_config",
    "config_hash",
    "config_to_dict",
    "config_to_yaml",
]


# --- errors ---------------------------------------------------------------------------


def _clean_message(msg):
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def _raw_path(loc, raw):
    """The part of a pydantic ``loc`` that exists in the raw YAML data.

    Drops union member labels (``Gaussian1D``, ``function-plain[...]``) that
    pydantic inserts, keeping a trailing missing key.
    """
    path, node = [], raw
    for i, part in enumerate(loc):
        if isinstance(node, dict):
            if part in node:
                path.append(part)
                node = node[part]
            elif i == len(loc) - 1 and part != node.get("type"):
                path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(part)
            node = node[part]
        elif not isinstance(node, (dict, list)):
            break
    return tuple(path)


def _allowed_keys(path, raw, root=None):
    """Keys the schema allows at ``path`` below ``root`` (default: the whole
    config) for did-you-mean, or ()."""
    cls, classes = root or config_schema(), component_classes()
    node = raw
    named = False  # the next part names an entry of a mapping (a dataset)
    for part in path:
        if cls is None:
            return ()
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and node.get("type") in classes:
                cls = classes[node["type"]]
            continue
        node = node.get(part) if isinstance(node, dict) else None
        if named:
            named = False
            continue
        field = cls.model_fields.get(part)
        cls = section_class(field.annotation) if field is not None else None
        named = field is not None and typing.get_origin(field.annotation) is dict
    return tuple(cls.model_fields) if cls is not None else ()


def _problems_from(errors, raw, lines, root=None):
    """A Problem for each of pydantic's ``errors`` (``ValidationError.errors()``)
    of validating ``raw`` as ``root`` (default: the whole config)."""
    problems = []
    for err in errors:
        path = _raw_path(err["loc"], raw)
        kind, msg = err["type"], _clean_message(err["msg"])
        ctx = err.get("ctx") or {}
        if kind == "parfit_parameter":
            # A parameter named by a structural argument (Polynomial1D's c0, ...),
            # validated by the component: its first error, worded like the others.
            inner = _problems_from(
                ctx["parfit_errors"], ctx["parfit_input"], {}, root=ParameterConfig
            )[0]
            path = path + tuple(ctx["parfit_path"]) + inner.path
            problems.append(Problem(path, _line_of(path, lines), inner.message))
            continue
        if kind == "parfit_key":
            path = path + tuple(ctx["parfit_path"])
        if kind == "extra_forbidden":
            key = path[-1] if path else "?"
            allowed = _allowed_keys(path[:-1], raw, root)
            # At the top of a one-cube config, the sections of a joint config and of a
            # model selection are keys too.
            close = allowed + (
                ("datasets", "select", "model") if len(path) == 1 and "input" in allowed else ()
            )
            msg = f"unknown key {key!r}{did_you_mean(key, close)}"
            if allowed:
                msg += f" (allowed here: {', '.join(allowed)})"
        elif kind == "missing":
            msg = f"missing required key {path[-1]!r}" if path else msg
        elif kind == "union_tag_invalid":
            known = [t.strip("'") for t in ctx.get("expected_tags", "").split(", ")]
            tag = ctx.get("tag")
            msg = (
                f"unknown component type {tag!r}{did_you_mean(tag, known)} (known types: "
                f"{', '.join(known)}; register your own with "
                f"@parfit.models.register_model)"
            )
            path = path + ("type",) if isinstance(err.get("input"), dict) else path
        elif kind == "union_tag_not_found":
            msg = "each component needs a 'type', e.g. type: Gaussian1D"
        elif kind == "literal_error":
            choices = re.findall(r"'([^']*)'", ctx.get("expected", ""))
            msg = f"{msg}; got {err.get('input')!r}{did_you_mean(err.get('input'), choices)}"
        elif (
            "input" in err
            and kind not in ("value_error", "assertion_error")
            and not isinstance(err["input"], (dict, list))
        ):
            msg = f"{msg}; got {err['input']!r}"
        problems.append(Problem(path, _line_of(path, lines), msg))
    return problems


def _line_of(path, lines):
    path = tuple(path)
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path)


def _raise(problems, source):
    problems = sorted(set(problems), key=lambda p: (p.line or 0, format_path(p.path)))
    where = f"{source}:" if source else "line "
    text = []
    for p in problems:
        loc = f"{where}{p.line}: " if p.line is not None else (f"{source}: " if source else "")
        text.append(f"{loc}{format_path(p.path)}: {p.message}")
    head = (
        f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {source or 'the config'}:"
    )
    raise ConfigError(
        "\n".join([head] + ["  " + t for t in text]),
        [(format_path(p.path), p.line, p.message) for p in problems],
    )


# --- entry points -------------------------------------------------------------------


def parse_config(text, *, source=None, base_dir=None, check_files=True, deep=False):
    """Validate config YAML text.

    Parameters
    ----------
    text : str
        The YAML document.
    source : str, optional
        Name of the file, used in messages.
    base_dir : path-like, optional
        Folder that relative paths are relative to (default: the current
        folder).
    check_files : bool
        Report input files that do not exist; for a joint config, also open
        the cubes (headers and metadata only) and report those whose
        iterating shape differs from the first dataset's.
    deep : bool
        Also open the input (lazily), check the fitting axes against it and
        build the model, as ``parfit validate`` does.

    Returns
    -------
    pydantic.BaseModel
        The config (an instance of :func:`config_schema`), with
        ``base_dir`` stored on it.

    Raises
    ------
    parfit.errors.ConfigError
        Listing every problem with its YAML path and line.
    """
    if not isinstance(text, str):
        raise InputTypeError(
            f"parse_config(text) takes the YAML text as a str; got "
            f"{type(text).__name__}; use load_config(path) to read a file"
        )
    data, lines, problems = load_yaml(text)
    if data is None and not problems:
        problems = [Problem((), 1, "the config is empty; start from `parfit config`")]
    elif data is not None and not isinstance(data, dict):
        problems.append(
            Problem((), 1, f"the config must be a mapping of the sections {', '.join(SECTIONS)}")
        )
    if problems and not isinstance(data, dict):
        _raise(problems, source)
    cfg, found = _validate(data, base_dir, check_files, deep and not problems, lines)
    # Report the YAML problems (ambiguous values, duplicate keys) together with the
    # schema's, without a second message for the same value.
    seen = [p.path for p in problems]
    problems += [p for p in found if not any(_related(p.path, s) for s in seen)]
    if problems:
        _raise(problems, source)
    return cfg


def _related(a, b):
    """True if one path lies inside the other (a value and the key holding it)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def load_config(path, *, check_files=True, deep=False):
    """Read and validate a config file; see :func:`parse_config`.

    Relative paths in the file are relative to the file's folder.

    Raises
    ------
    parfit.errors.ConfigError
        If the file cannot be read or is invalid.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "fit.yaml").write_text("input: {path: cube.fits}\\n"
    ...     "model: {components: [{type: Gaussian1D}]}\\noutput: {path: out}\\n")
    >>> load_config(folder / "fit.yaml", check_files=False).output.path
    'out'
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"config file {str(path)!r} is a folder; give the YAML file in it",
            [("(file)", None, "is a folder")],
        )
    try:
        # At most one byte past the limit is read, so a huge file (or /dev/zero)
        # costs no more than a config may.
        with open(path, "rb") as stream:
            raw = stream.read(MAX_CHARS + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {str(path)!r} does not exist", [("(file)", None, "does not exist")]
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {str(path)!r}: {exc}", [("(file)", None, str(exc))]
        ) from None
    if len(raw) > MAX_CHARS:
        why = (
            f"is larger than {MAX_CHARS:,} bytes; parfit reads configs of at most 1 MB: "
            f"a config describes an analysis, its data belong in the files it names"
        )
        raise ConfigError(f"config file {str(path)!r} {why}", [("(file)", None, why)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        why = (
            f"is not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line} cannot be "
            f"decoded; save the file as UTF-8"
        )
        raise ConfigError(
            f"cannot read config file {str(path)!r}: {path.name}:{line}: {why}",
            [("(file)", line, why)],
        ) from None
    return parse_config(
        text, source=str(path), base_dir=path.resolve().parent, check_files=check_files, deep=deep
    )


def validate_config(data, *, base_dir=None, source=None, check_files=True, deep=False):
    """Validate a config given as a dict (e.g. built in Python).

    See :func:`parse_config` for the arguments.

    Examples
    --------
    >>> cfg = validate_config({"input": {"path": "c.fits"},
    ...                        "model": {"components": [{"type": "Const1D"}]},
    ...                        "output": {"path": "out"}}, check_files=False)
    >>> cfg.diagnostics.mode
    'error'
    """
    if hasattr(data, "model_dump") and not isinstance(data, dict):
        data = data.model_dump(mode="json", exclude_unset=True)
    cfg, problems = _validate(data, base_dir, check_files, deep, {(): None})
    if problems:
        _raise(problems, source)
    return cfg


def _validate(data, base_dir, check_files, deep, lines):
    """``(config, problems)``: the config is None when the schema refused ``data``."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    too_many = _too_many_components(data, lines)
    if too_many:
        return None, too_many
    form, data = _form(data, lines)
    schema = config_schema(
        joint=isinstance(data, dict) and is_joint_config(data),
        select=isinstance(data, dict) and is_selection_config(data),
    )
    try:
        cfg = schema.model_validate(data)
    except ValidationError as exc:
        problems = form + [
            p
            for p in _problems_from(exc.errors(), data, lines, root=schema)
            # Neither form given: one problem says so (see _form), not two missing keys.
            if not (form and p.path in (("input",), ("model",)))
        ]
        if check_files:  # missing files too, so that every problem shows at once
            problems += [
                Problem(p, _line_of(p, lines), m) for p, m in _missing_raw_files(data, base)
            ]
        return None, problems
    set_base_dir(cfg, base)
    problems = [
        Problem(p, _line_of(p, lines), m) for p, m in check_semantics(cfg, check_files, deep)
    ]
    return (None if form else cfg), form + problems


def _form(data, lines):
    """``(problems, data)``: which of the three forms ``data`` takes, and the data to validate.

    A config fits one model to one cube (``input`` and ``model``), several
    cubes together (``datasets``, a joint fit) or candidate models to one
    cube, choosing per pixel (``input`` and ``select``).  Mixing them is a
    problem at the keys of the other form, which are then left out of the
    config validated (so that every other problem still shows); giving
    neither is one problem.
    """
    if not isinstance(data, dict):
        return [], data
    if "datasets" in data:
        problems = [
            Problem(
                (key,),
                _line_of((key,), lines),
                f"{key} is for a config of one cube, but this config has datasets (a joint "
                f"fit of several cubes), where each dataset has its own {key}: move it into "
                f"an entry of datasets (datasets.<name>.{key}), or remove datasets",
            )
            for key in ("input", "model")
            if key in data
        ]
        if "select" in data:
            problems.append(
                Problem(
                    ("select",),
                    _line_of(("select",), lines),
                    "select chooses between candidate models of one cube; a joint fit "
                    "(datasets) has no per-pixel model selection: remove select, or fit "
                    "one cube (input) with it",
                )
            )
        return problems, {k: v for k, v in data.items() if k not in ("input", "model", "select")}
    if "select" in data and "model" in data:
        return [
            Problem(
                ("model",),
                _line_of(("model",), lines),
                "model is for a config of one model, but this config has select (candidate "
                "models, the best chosen per pixel), where each candidate has the keys of "
                "the model section: move it into select.candidates, or remove select",
            )
        ], {k: v for k, v in data.items() if k != "model"}
    if "input" not in data and "model" not in data and "select" not in data:
        return [
            Problem(
                (),
                _line_of((), lines),
                "give input and model (to fit one cube), input and select (candidate models "
                "of one cube, the best chosen per pixel), or datasets (a joint fit of several "
                "cubes, each with its own input and model); `parfit config`, `parfit config "
                "--select` and `parfit config --joint` write a template of each",
            )
        ], data
    return [], data


def _sections(data, key):
    """``(path, mapping)`` of every ``key`` section (``"model"``, ``"input"``) of raw config data.

    One at the top, one per dataset of a joint config, or (models) one per
    candidate of a model selection.
    """
    if not isinstance(data, dict):
        return
    if "datasets" in data:
        datasets = data["datasets"]
        if isinstance(datasets, dict):
            for name, entry in datasets.items():
                if isinstance(entry, dict):
                    yield ("datasets", name, key), entry.get(key)
    elif key == "model" and is_selection_config(data):
        select = data["select"]
        candidates = select.get("candidates") if isinstance(select, dict) else None
        for k, entry in enumerate(candidates if isinstance(candidates, list) else []):
            yield ("select", "candidates", k), entry
    else:
        yield (key,), data.get(key)


def _model_sections(data):
    """``(path, model mapping)`` of every model section of raw config data."""
    return _sections(data, "model")


def _input_sections(data):
    """``(path, input mapping)`` of every input section of raw config data."""
    return _sections(data, "input")


def _too_many_components(data, lines):
    """A problem if a model sums more than MAX_COMPONENTS components (checked first)."""
    problems = []
    for base, model in _model_sections(data):
        comps = model.get("components") if isinstance(model, dict) else None
        if not isinstance(comps, list) or len(comps) <= MAX_COMPONENTS:
            continue
        path = base + ("components",)
        problems.append(
            Problem(
                path,
                _line_of(path, lines),
                f"{len(comps)} components; a config's model sums at most "
                f"{MAX_COMPONENTS} (a per-pixel fit of more is not meaningful): fit "
                f"fewer components",
            )
        )
    return problems


def _missing_raw_files(data, base):
    """``(path, message)`` for input files of a config that failed the schema."""
    out = []
    for where, inp in _input_sections(data):
        if not isinstance(inp, dict):
            continue
        for key in ("path", "mask", "weights", "uncertainty"):
            value = inp.get(key)
            if isinstance(value, dict):
                value = value.get("path")
            if isinstance(value, str) and value:
                p = Path(value).expanduser()
                p = Path(os.path.normpath(p if p.is_absolute() else base.resolve() / p))
                if not p.exists():
                    out.append((where + (key,), f"file not found: {p}"))
    return out


# --- hashing and writing ------------------------------------------------------------


def config_to_dict(cfg, *, resolve_paths=False):
    """The config as plain data (defaults included, unset parameters left out).

    Parameters
    ----------
    cfg : validated config
        As :func:`parse_config` returns it (one cube or joint).
    resolve_paths : bool
        Write every path absolute (resolved against the config's folder).

    Returns
    -------
    dict
        What :func:`validate_config` reads back into the same config.

    Examples
    --------
    >>> cfg = validate_config({"input": {"path": "c.fits"}, "output": {"path": "out"},
    ...     "model": {"components": [{"type": "Gaussian1D", "mean": 3}]}}, check_files=False)
    >>> config_to_dict(cfg)["model"]["components"]
    [{'type': 'Gaussian1D', 'mean': {'value': 3.0}}]
    """
    data = cfg.model_dump(mode="json", exclude_none=False)
    if is_joint_config(cfg):
        inputs = [
            (entry.input, data["datasets"][name]["input"]) for name, entry in cfg.datasets.items()
        ]
        models = [
            (entry.model, data["datasets"][name]["model"]) for name, entry in cfg.datasets.items()
        ]
    elif is_selection_config(cfg):
        inputs = [(cfg.input, data["input"])]
        models = list(zip(cfg.select.candidates, data["select"]["candidates"]))
    else:
        inputs, models = [(cfg.input, data["input"])], [(cfg.model, data["model"])]
    for model, raw in models:
        raw["components"] = _components_to_dict(model.components, raw["components"])
        region = raw.get("initial_region")
        if resolve_paths and region and region.get("path"):
            region["path"] = str(resolve(cfg, region["path"]))
    for inp, raw in inputs:
        if resolve_paths:
            raw["path"] = str(resolve(cfg, inp.path))
            for key in ("mask", "weights", "uncertainty"):
                src = raw.get(key)
                if src and src.get("path"):
                    src["path"] = str(resolve(cfg, src["path"]))
    if resolve_paths:
        data["output"]["path"] = str(resolve(cfg, cfg.output.path))
        if data["diagnostics"]["path"]:
            data["diagnostics"]["path"] = str(resolve(cfg, cfg.diagnostics.path))
    return data


def _components_to_dict(components, dumped):
    comps = []
    for comp, raw in zip(components, dumped):
        keep = {k: v for k, v in raw.items() if v is not None or k in _structural_args_of(comp)}
        for k, v in list(keep.items()):
            if isinstance(v, dict) and set(v) >= {"value", "fixed"}:
                keep[k] = {
                    pk: pv
                    for pk, pv in v.items()
                    if pv is not None and not (pk == "fixed" and pv is False)
                }
        comps.append(keep)
    return comps


def _structural_args_of(comp):
    from parfit.models import MODEL_REGISTRY

    return structural_args(MODEL_REGISTRY[comp.type])


def config_to_yaml(cfg, *, resolve_paths=False):
    """The config as YAML text that :func:`parse_config` reads back."""
    import yaml

    return yaml.safe_dump(
        config_to_dict(cfg, resolve_paths=resolve_paths),
        sort_keys=False,
        default_flow_style=None,
        width=100,
    )


def config_hash(cfg):
    """``sha256:<hex>`` of the config with defaults filled in and paths resolved.

    Two configs that describe the same analysis of the same files have the
    same hash, however they were written.
    """
    data = config_to_dict(cfg, resolve_paths=True)
    # How to treat an earlier run's folder, whether to draw a progress bar and
    # how long a block may take do not change the analysis: a resumed run (with
    # more time for its blocks, say) has the hash of the run it finishes.
    for section, key in _NOT_HASHED:
        data[section].pop(key, None)
    # Keys added after configs were first hashed are left out at their defaults, so
    # that an analysis keeps the hash it had before they existed.
    if data.get("strategy") == StrategySection().model_dump(mode="json"):
        del data["strategy"]
    for model in _model_sections(data):
        if isinstance(model[1], dict) and model[1].get("initial_region") is None:
            model[1].pop("initial_region", None)
    text = json.dumps(data, sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


_NOT_HASHED = (
    ("output", "overwrite"),
    ("output", "resume"),
    ("run", "progress"),
    ("run", "fit_timeout"),
)
