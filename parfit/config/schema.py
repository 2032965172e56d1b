"""The YAML analysis config: schema, validation and the objects it builds.

One YAML file describes a whole analysis in five sections: ``input`` (the
cube), ``model`` (components from parfit's model library with their
starting values, bounds, fixed and tied parameters), ``fitter``, ``run``
(block size, scheduler, failure threshold), ``diagnostics`` and ``output``.
The pydantic classes below are the single source of truth: the template
written by ``parfit config`` and the reference page of the docs are both
generated from them (:mod:`parfit._config_docs`).

:func:`load_config` reads a file and reports *every* problem at once, each
with its YAML path and line, in a :class:`~parfit.errors.ConfigError`.
Relative paths in a config file are relative to the file's folder.

Examples
--------
>>> from parfit.config import parse_config
>>> cfg = parse_config('''
... input: {path: cube.fits, fitting_axes: 0}
... model:
...   components:
...     - {type: Gaussian1D, mean: "4 km/s", stddev: {value: "2 km/s", bounds: [0, null]}}
... output: {path: results}
... ''', check_files=False)
>>> cfg.model.components[0].mean.value
'4 km/s'
>>> cfg.fitter.name, cfg.run.scheduler
('batched', 'threads')
"""

import functools
import hashlib
import inspect
import json
import os
import re
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from parfit.config._yaml import MAX_CHARS, Problem, format_path, load_yaml
from parfit.config.types import (
    Axes,
    Bounds,
    ChunkSize,
    MemoryLimit,
    QuantityLike,
    Scheduler,
    Source,
    UnitStr,
    _did_you_mean,
    _in_unit,
    _target_unit,
)

# The names the engine accepts, so that the schema cannot drift from them.
from parfit.diagnostics import DIAGNOSTICS_MODES
from parfit.errors import ConfigError, InputTypeError
from parfit.fitters.batched import ENGINES
from parfit.fitters.select import FITTER_NAMES
from parfit.output import OUTPUT_CUBES
from parfit.parallel import INITIAL_VALUES

__all__ = [
    "load_config",
    "parse_config",
    "validate_config",
    "config_schema",
    "open_input",  # noqa: F822 - resolved by __getattr__ (from _config_build)
    "config_hash",
    "build_model",  # noqa: F822 - resolved by __getattr__ (from _config_build)
    "config_to_yaml",
    "template",
    "SECTIONS",
]

#: Most components a config's model may sum (each adds a level to the model's tree).
MAX_COMPONENTS = 200
#: Largest structural argument of a component (``degree`` of Polynomial1D).
MAX_STRUCTURAL = 1000


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=False)


# --- input --------------------------------------------------------------------------


class InputSection(_Section):
    """The cube to fit and what comes with it."""

    path: str = Field(
        description="The cube: a FITS file, a zarr store or array, or a "
        "netCDF file (relative to this file's folder)",
        json_schema_extra={"example": "cube.fits"},
    )
    hdu: int | str | None = Field(
        None,
        description="FITS only: the HDU number or name (default: the first image HDU)",
        json_schema_extra={"type_label": "int or name"},
    )
    variable: str | None = Field(
        None,
        description="netCDF/zarr dataset only: the variable to fit (default: the only >= 2-D one)",
    )
    fitting_axes: Axes = Field(
        0,
        description="Axis to fit along: a number (numpy order), a "
        "dimension name (netCDF/zarr), 'spectral' (the WCS spectral "
        "axis of a FITS cube), or a list of them for 2-D models",
    )
    unit: UnitStr | None = Field(
        None,
        description="Unit of the data values, overriding the file's (BUNIT, 'units' attribute)",
    )
    mask: Source | None = Field(
        None,
        description="Samples to leave out (nonzero or true = ignore), broadcastable to the cube",
    )
    weights: Source | None = Field(None, description="Weights (1/sigma), broadcastable to the cube")
    uncertainty: Source | None = Field(
        None,
        description="1-sigma uncertainties; the fit uses weights 1/uncertainty (not with weights)",
    )


# --- model --------------------------------------------------------------------------


class ParameterConfig(_Section):
    """One parameter of a component.  A bare number or quantity is its value."""

    value: QuantityLike | None = Field(
        None,
        description="Starting value, a number or a "
        'quantity such as "4000 m/s" (default: the '
        "component's)",
    )
    unit: UnitStr | None = Field(None, description="Unit of a plain-number value and bounds")
    bounds: Bounds | None = Field(
        None, description="[lower, upper], null for no bound (default: the component's)"
    )
    fixed: bool = Field(False, description="Keep the starting value; do not fit")
    tied: str | None = Field(
        None,
        description="Expression of other parameters, e.g. "
        "'mean_0 + 1200' (names as in the fitted model)",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data):
        return data if isinstance(data, dict) else {"value": data}

    @model_validator(mode="after")
    def _consistent(self):
        target = _target_unit(self)
        value = None if self.value is None else _in_unit(self.value, target, "value")
        bounds = [
            None if b is None else _in_unit(b, target, "bound")
            for b in (self.bounds or (None, None))
        ]
        lo, hi = bounds
        if lo is not None and hi is not None and not lo < hi:
            raise ValueError(f"lower bound must be below upper bound; got {self.bounds!r}")
        if value is not None and (
            (lo is not None and value < lo) or (hi is not None and value > hi)
        ):
            raise ValueError(f"starting value {self.value!r} is outside its bounds {self.bounds!r}")
        return self


class _Component(_Section):
    name: str | None = Field(None, description="A label for this component")


@functools.lru_cache(maxsize=8)
def _component_classes(registry_key):
    from parfit.models import MODEL_REGISTRY

    classes = {}
    for type_name in registry_key:
        cls = MODEL_REGISTRY[type_name]
        summary = (cls.__doc__ or type_name).strip().splitlines()[0]
        fields = {"type": (Literal[type_name], Field(description=summary))}
        for arg in _structural_args(cls):
            fields[arg] = (int, Field(description=f"{arg} (a whole number; not a parameter)"))
        for spec in getattr(cls, "param_specs", ()):
            default = spec.default
            desc = spec.description or spec.name
            fields[spec.name] = (
                ParameterConfig | None,
                Field(
                    None,
                    description=f"{desc} (default {default:g}"
                    + (f", bounds {list(spec.bounds)}" if spec.bounds != (None, None) else "")
                    + ")",
                    json_schema_extra={"unit_role": spec.unit},
                ),
            )
        dynamic = not getattr(cls, "param_specs", ())
        base = _DynamicComponent if dynamic else _Component
        classes[type_name] = create_model(
            f"{type_name}Component", __base__=base, __doc__=summary, **fields
        )
    return classes


class _DynamicComponent(_Component):
    """A component whose parameters follow from its structural arguments (Polynomial1D)."""

    model_config = ConfigDict(extra="allow", strict=True)

    @model_validator(mode="after")
    def _parameters(self):
        from parfit.models import MODEL_REGISTRY

        cls = MODEL_REGISTRY[self.type]
        structural = {a: getattr(self, a) for a in _structural_args(cls)}
        check_structural(self.type, structural)
        try:
            names = cls(**structural).param_names
        except Exception as exc:  # e.g. a negative degree
            raise ValueError(f"cannot build {self.type} with {structural}: {exc}") from None
        for key, raw in list((self.__pydantic_extra__ or {}).items()):
            # The error's context carries the key (and the path below it), so the
            # problem is reported at the key, not at the component.
            if key not in names:
                raise PydanticCustomError(
                    "parfit_key",
                    "{message}",
                    {
                        "message": f"{self.type} with {structural} has no parameter {key!r}"
                        f"{_did_you_mean(key, names)}; its parameters are "
                        f"{', '.join(names)}",
                        "parfit_path": (key,),
                    },
                )
            try:
                self.__pydantic_extra__[key] = ParameterConfig.model_validate(raw)
            except ValidationError as exc:
                path, _, message = _problems_from(exc, raw, {})[0]
                raise PydanticCustomError(
                    "parfit_key",
                    "{message}",
                    {"message": message, "parfit_path": (key,) + tuple(path)},
                ) from None
        return self


def check_structural(type_name, structural):
    """Refuse a structural argument past MAX_STRUCTURAL (ValueError) before building."""
    for key, value in structural.items():
        if isinstance(value, int) and abs(value) > MAX_STRUCTURAL:
            raise ValueError(
                f"{key} {value} of {type_name} is larger than a config allows "
                f"({MAX_STRUCTURAL}); it would build a model with that many "
                f"parameters"
            )


def _structural_args(cls):
    """Constructor arguments of a model class that are not parameters (``degree``)."""
    skip = {"self", "name", "bounds", "fixed", "tied"}
    params = inspect.signature(cls.__init__).parameters.values()
    specs = {s.name for s in getattr(cls, "param_specs", ())}
    return tuple(
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.name not in skip
        and p.name not in specs
    )


def _registry_key():
    from parfit.models import MODEL_REGISTRY
    from parfit.models.function import FunctionModel

    return tuple(
        sorted(name for name, cls in MODEL_REGISTRY.items() if not issubclass(cls, FunctionModel))
    )


@functools.lru_cache(maxsize=8)
def _schema_for(registry_key):
    classes = _component_classes(registry_key)
    # A union of classes known only at run time: typing.Union takes the tuple.
    component = Annotated[Union[tuple(classes.values())], Field(discriminator="type")]  # noqa: UP007

    class ModelSection(_Section):
        """The model: a sum of components, and where each fit starts."""

        components: list[component] = Field(
            description="Components summed into the model, in order; several components "
            "number their parameters mean_0, mean_1, ...",
            min_length=1,
        )
        initial: Literal[INITIAL_VALUES] = Field(
            "model",
            description="'model': every pixel starts from the values above; "
            "'guess': from an estimate made from its own data",
        )

    class AnalysisConfig(_Section):
        """A parfit analysis."""

        input: InputSection
        model: ModelSection
        fitter: FitterSection = Field(default_factory=lambda: FitterSection())
        run: RunSection = Field(default_factory=lambda: RunSection())
        diagnostics: DiagnosticsSection = Field(default_factory=lambda: DiagnosticsSection())
        output: OutputSection

    return AnalysisConfig, classes


def config_schema():
    """The pydantic class of a whole config, for the models registered now.

    Returns
    -------
    type
        A :class:`pydantic.BaseModel` subclass; its ``model_fields`` are
        the sections.

    Examples
    --------
    >>> list(config_schema().model_fields)
    ['input', 'model', 'fitter', 'run', 'diagnostics', 'output']
    """
    return _schema_for(_registry_key())[0]


def component_classes():
    """The component schema of every registered model type, by type name."""
    return _schema_for(_registry_key())[1]


# --- fitter, run, diagnostics, output ---------------------------------------------

_BATCHED_ONLY = ("engine", "factor")


class FitterSection(_Section):
    """The solver and its tolerances."""

    name: Literal[tuple(FITTER_NAMES)] = Field(  # type: ignore[valid-type]
        "batched",
        description="'batched': parfit's batched trust-region reflective (fast); "
        "'trf', 'dogbox', 'lm': scipy least_squares fit by fit",
    )
    ftol: float = Field(
        1e-8, gt=0, description="Stop when the relative drop of chi-square is below this"
    )
    xtol: float = Field(1e-8, gt=0, description="Stop when the relative step is below this")
    gtol: float = Field(1e-8, gt=0, description="Stop when the scaled gradient is below this")
    max_nfev: int | None = Field(
        None, ge=1, description="Most model evaluations per fit (default: the solver's own limit)"
    )
    scale_covariance: bool = Field(
        True,
        description="Scale the errors by the reduced chi-square (false: weights are exact 1/sigma)",
    )
    engine: Literal[ENGINES] = Field(  # type: ignore[valid-type]
        "auto",
        description="batched only: 'compiled' (numba), 'numpy', or 'auto' (compiled "
        "where the model allows)",
    )
    factor: float = Field(
        1.0, gt=0, description="batched only: initial trust radius relative to the scaled start"
    )

    @field_validator(*_BATCHED_ONLY)
    @classmethod
    def _batched_options(cls, value, info):
        name = info.data.get("name", "batched")
        if name != "batched" and value != cls.model_fields[info.field_name].default:
            raise ValueError(f"{info.field_name} applies only to name: batched, not {name!r}")
        return value

    def fitter_arguments(self):
        """``(fitter, fitter_kwargs)`` for :func:`parfit.parallel_fit`."""
        from parfit.fitters import BatchedFitter, ScipyFitter

        kwargs = {
            "ftol": self.ftol,
            "xtol": self.xtol,
            "gtol": self.gtol,
            "max_nfev": self.max_nfev,
            "scale_covariance": self.scale_covariance,
        }
        if self.name == "batched":
            return BatchedFitter(engine=self.engine, factor=self.factor, **kwargs), None
        return ScipyFitter(self.name, **kwargs), None


class RunSection(_Section):
    """How the fits run."""

    def block_size(self, n_fits, n_samples):
        """``chunk_n_max`` as a number for a cube of ``n_fits`` fits of ``n_samples``.

        ``auto`` aims at about 16 MiB of float64 data per block (few, large
        blocks: each block task opens the output store and writes its part),
        between 500 and 16384 fits, and at least two blocks per core.

        Examples
        --------
        >>> run = RunSection()
        >>> run.block_size(65536, 60) in (4096, 8192, 16384)
        True
        >>> RunSection(chunk_n_max=100).block_size(65536, 60)
        100
        """
        if self.chunk_n_max != "auto":
            return self.chunk_n_max
        by_memory = (16 << 20) // (8 * max(n_samples, 1))
        per_core = -(-n_fits // (2 * (os.cpu_count() or 1)))
        return int(max(500, min(16384, by_memory, per_core)))

    chunk_n_max: ChunkSize = Field(
        "auto",
        description="Most fits per block (one dask task "
        "each), or 'auto': about 16 MiB of data per block, 500 to "
        "16384 fits, at least two blocks per core",
    )
    scheduler: Scheduler = Field(
        "threads",
        description="'threads', 'processes', "
        "'synchronous', 'local' (a dask.distributed LocalCluster on "
        "127.0.0.1), or the address of a running scheduler",
    )
    n_workers: int | None = Field(
        None,
        ge=1,
        description="scheduler: local only: number of worker processes (default: one per core)",
    )
    threads_per_worker: int | None = Field(
        None, ge=1, description="scheduler: local only: threads in each worker"
    )
    memory_limit: MemoryLimit | None = Field(
        None, description='scheduler: local only: memory of each worker, e.g. "4GiB"'
    )
    dashboard: bool = Field(
        False, description="scheduler: local only: serve the dask dashboard on 127.0.0.1"
    )
    preserve_native_chunks: bool = Field(
        False, description="Use the input's chunks as blocks unchanged"
    )
    progress: bool = Field(True, description="Show a progress bar (parfit run)")
    fit_timeout: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Seconds "
        "one block of fits may take; a block still busy "
        "then (a model that hangs) is abandoned and its "
        "fits get status TIMEOUT (default: no limit)",
    )
    max_failed_fraction: float = Field(
        0.01,
        ge=0,
        le=1,
        description="parfit run exits with code 3 when more fits than this fraction fail",
    )

    @field_validator("n_workers", "threads_per_worker", "memory_limit", "dashboard")
    @classmethod
    def _local_only(cls, value, info):
        scheduler = info.data.get("scheduler", "threads")
        if scheduler != "local" and value != cls.model_fields[info.field_name].default:
            raise ValueError(
                f"{info.field_name} applies only to scheduler: local, not {scheduler!r}"
            )
        return value


class DiagnosticsSection(_Section):
    """Per-fit diagnostics folders."""

    # "none" in a config file where parallel_fit takes None.
    mode: Literal[("none",) + DIAGNOSTICS_MODES[1:]] = Field(  # type: ignore[valid-type]
        "error",
        description="Which fits get a folder with their error.log / warn.log: "
        "'none', 'error', 'error+warn' or 'all'",
    )
    path: str | None = Field(
        None,
        description="Folder of the per-fit folders (default: diagnostics/ in the output folder)",
    )


class OutputSection(_Section):
    """Where the results go."""

    path: str = Field(
        description="Output folder: maps.zarr, config.yaml, run.json and the diagnostics go here",
        json_schema_extra={"example": "results"},
    )
    format: Literal["zarr", "netcdf", "fits"] = Field(
        "zarr",
        description="The maps are always streamed to maps.zarr (resumable); 'netcdf' "
        "or 'fits' also writes maps.nc or maps.fits at the end",
    )
    overwrite: bool = Field(
        False,
        description="Replace the results of an earlier run in "
        "this folder (only files parfit wrote)",
    )
    resume: bool = Field(
        False, description="Fit only what an interrupted run in this folder left undone"
    )
    cubes: list[Literal[OUTPUT_CUBES]] = Field(  # type: ignore[valid-type]
        default_factory=list,
        description="Also stream these cubes, in the input's shape: 'model', 'residual'",
    )

    @field_validator("resume")
    @classmethod
    def _modes(cls, value, info):
        if value and info.data.get("overwrite"):
            raise ValueError(
                "overwrite and resume exclude each other: resume continues the "
                "results in the folder, overwrite replaces them"
            )
        return value


SECTIONS = ("input", "model", "fitter", "run", "diagnostics", "output")


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


def _allowed_keys(path, raw):
    """Keys the schema allows at ``path`` (for did-you-mean), or ()."""
    schema, classes = _schema_for(_registry_key())
    cls = schema
    node = raw
    for part in path:
        if cls is None:
            return ()
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and node.get("type") in classes:
                cls = classes[node["type"]]
            continue
        node = node.get(part) if isinstance(node, dict) else None
        field = cls.model_fields.get(part)
        cls = _section_class(field.annotation) if field is not None else None
    return tuple(cls.model_fields) if cls is not None else ()


def _section_class(annotation):
    """The BaseModel class inside ``annotation`` (Optional[X], list[X]...), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _section_class(arg)
        if found is not None:
            return found
    return None


def _problems_from(exc, raw, lines):
    problems = []
    for err in exc.errors():
        path = _raw_path(err["loc"], raw)
        kind, msg = err["type"], _clean_message(err["msg"])
        ctx = err.get("ctx") or {}
        if kind == "parfit_key":
            path = path + tuple(ctx["parfit_path"])
        if kind == "extra_forbidden":
            key = path[-1] if path else "?"
            allowed = _allowed_keys(path[:-1], raw)
            msg = f"unknown key {key!r}{_did_you_mean(key, allowed)}"
            if allowed:
                msg += f" (allowed here: {', '.join(allowed)})"
        elif kind == "missing":
            msg = f"missing required key {path[-1]!r}" if path else msg
        elif kind == "union_tag_invalid":
            known = [t.strip("'") for t in ctx.get("expected_tags", "").split(", ")]
            tag = ctx.get("tag")
            msg = (
                f"unknown component type {tag!r}{_did_you_mean(tag, known)} (known types: "
                f"{', '.join(known)}; register your own with "
                f"@parfit.models.register_model)"
            )
            path = path + ("type",) if isinstance(err.get("input"), dict) else path
        elif kind == "union_tag_not_found":
            msg = "each component needs a 'type', e.g. type: Gaussian1D"
        elif kind == "literal_error":
            choices = re.findall(r"'([^']*)'", ctx.get("expected", ""))
            msg = f"{msg}; got {err.get('input')!r}{_did_you_mean(err.get('input'), choices)}"
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
        Report input files that do not exist.
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
    from parfit._config_build import check_semantics

    base = Path(base_dir) if base_dir is not None else Path.cwd()
    too_many = _too_many_components(data, lines)
    if too_many:
        return None, too_many
    try:
        cfg = config_schema().model_validate(data)
    except ValidationError as exc:
        problems = _problems_from(exc, data, lines)
        if check_files:  # missing files too, so that every problem shows at once
            problems += [
                Problem(p, _line_of(p, lines), m) for p, m in _missing_raw_files(data, base)
            ]
        return None, problems
    object.__setattr__(cfg, "_base_dir", base.resolve())
    return cfg, [
        Problem(p, _line_of(p, lines), m) for p, m in check_semantics(cfg, check_files, deep)
    ]


def _too_many_components(data, lines):
    """A problem if the model sums more than MAX_COMPONENTS components (checked first)."""
    model = data.get("model") if isinstance(data, dict) else None
    comps = model.get("components") if isinstance(model, dict) else None
    if not isinstance(comps, list) or len(comps) <= MAX_COMPONENTS:
        return []
    path = ("model", "components")
    return [
        Problem(
            path,
            _line_of(path, lines),
            f"{len(comps)} components; a config's model sums at most "
            f"{MAX_COMPONENTS} (a per-pixel fit of more is not meaningful): fit "
            f"fewer components",
        )
    ]


def _missing_raw_files(data, base):
    """``(path, message)`` for input files of a config that failed the schema."""
    inp = data.get("input") if isinstance(data, dict) else None
    if not isinstance(inp, dict):
        return []
    out = []
    for key in ("path", "mask", "weights", "uncertainty"):
        value = inp.get(key)
        if isinstance(value, dict):
            value = value.get("path")
        if isinstance(value, str) and value:
            p = Path(value).expanduser()
            p = Path(os.path.normpath(p if p.is_absolute() else base.resolve() / p))
            if not p.exists():
                out.append((("input", key), f"file not found: {p}"))
    return out


def base_dir(cfg):
    """The folder relative paths of ``cfg`` are relative to."""
    return getattr(cfg, "_base_dir", None) or Path.cwd()


def resolve(cfg, path):
    """``path`` of the config as an absolute Path."""
    p = Path(path).expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else base_dir(cfg) / p))


# --- hashing and writing ------------------------------------------------------------


def config_to_dict(cfg, *, resolve_paths=False):
    """The config as plain data (defaults included, unset parameters left out)."""
    data = cfg.model_dump(mode="json", exclude_none=False)
    comps = []
    for comp, raw in zip(cfg.model.components, data["model"]["components"]):
        keep = {k: v for k, v in raw.items() if v is not None or k in _structural_args_of(comp)}
        for k, v in list(keep.items()):
            if isinstance(v, dict) and set(v) >= {"value", "fixed"}:
                keep[k] = {
                    pk: pv
                    for pk, pv in v.items()
                    if pv is not None and not (pk == "fixed" and pv is False)
                }
        comps.append(keep)
    data["model"]["components"] = comps
    if resolve_paths:
        data["input"]["path"] = str(resolve(cfg, cfg.input.path))
        for key in ("mask", "weights", "uncertainty"):
            src = data["input"].get(key)
            if src and src.get("path"):
                src["path"] = str(resolve(cfg, src["path"]))
        data["output"]["path"] = str(resolve(cfg, cfg.output.path))
        if data["diagnostics"]["path"]:
            data["diagnostics"]["path"] = str(resolve(cfg, cfg.diagnostics.path))
    return data


def _structural_args_of(comp):
    from parfit.models import MODEL_REGISTRY

    return _structural_args(MODEL_REGISTRY[comp.type])


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
    text = json.dumps(data, sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


_NOT_HASHED = (
    ("output", "overwrite"),
    ("output", "resume"),
    ("run", "progress"),
    ("run", "fit_timeout"),
)


def template(minimal=False):
    """The commented config template that ``parfit config`` writes.

    Parameters
    ----------
    minimal : bool
        Only the keys you must give.

    Returns
    -------
    str

    Examples
    --------
    >>> text = template(minimal=True)
    >>> text.splitlines()[5:8]
    ['input:', '  path: cube.fits', '  fitting_axes: 0']
    """
    from parfit._config_docs import template as _template

    return _template(minimal=minimal)


def __getattr__(name):
    # build_model and open_input live in _config_build, which imports this module.
    if name in ("build_model", "open_input", "check_semantics"):
        from parfit import _config_build

        return getattr(_config_build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
