"""The schema of the YAML analysis config: its sections, parameters and components.

One YAML file describes a whole analysis in eight sections: ``input`` (the
cube), ``model`` (components from parfit's model library with their
starting values, bounds, fixed and tied parameters, and where each fit
starts), ``fitter``, ``likelihood`` (the statistic, a null hypothesis for
TS maps, profile likelihoods; :mod:`parfit.config.likelihood`),
``strategy`` (pixels skipped for their noise, fits repeated from their
neighbours, components ordered; :mod:`parfit.config.strategy`), ``run``
(block size, scheduler, failure threshold), ``diagnostics`` and ``output``.
A joint fit of several cubes has a ``datasets`` section in place of
``input`` and ``model``: one entry per cube, each with its own ``input``
and ``model`` (:func:`config_schema` with ``joint=True``).  A per-pixel
model selection has a ``select`` section in place of ``model``: the
criterion and the candidate models, each in the form of a ``model``
section (:func:`config_schema` with ``select=True``).
The pydantic classes below are the single source of truth: validation
(:mod:`parfit.config.validate`), the model and input a config builds
(:mod:`parfit.config.build`), and the template written by ``parfit config``
and the reference page of the docs (:mod:`parfit.config.docs`) all read
them.  This module imports none of those.

Relative paths in a config are relative to its folder (:func:`resolve`).

Examples
--------
>>> list(config_schema().model_fields) == list(SECTIONS)
True
>>> FitterSection().name, RunSection().scheduler
('batched', 'threads')
"""

import functools
import inspect
import os
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

from parfit.config.likelihood import LikelihoodSection
from parfit.config.strategy import StrategySection
from parfit.config.types import (
    Axes,
    Bounds,
    ChunkSize,
    MemoryLimit,
    QuantityLike,
    Scheduler,
    Source,
    UnitStr,
    did_you_mean,
    in_unit,
    target_unit,
)

# The names the engine accepts, so that the schema cannot drift from them.
from parfit.diagnostics import DIAGNOSTICS_MODES
from parfit.engine.plan import auto_block_size
from parfit.engine.request import INITIAL_VALUES
from parfit.fitters.batched import ENGINES
from parfit.fitters.select import FITTER_NAMES
from parfit.selection import SELECT_CRITERIA
from parfit.store.layout import OUTPUT_CUBES

__all__ = [
    "config_schema",
    "component_classes",
    "section_class",
    "structural_args",
    "check_structural",
    "InputSection",
    "ParameterConfig",
    "DynamicComponent",
    "FitterSection",
    "LikelihoodSection",
    "StrategySection",
    "RunSection",
    "DiagnosticsSection",
    "OutputSection",
    "SECTIONS",
    "JOINT_SECTIONS",
    "SELECT_SECTIONS",
    "dataset_section",
    "dataset_names_problem",
    "is_joint_config",
    "is_selection_config",
    "MAX_COMPONENTS",
    "MAX_STRUCTURAL",
    "base_dir",
    "set_base_dir",
    "resolve",
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
        target = target_unit(self)
        value = None if self.value is None else in_unit(self.value, target, "value")
        bounds = [
            None if b is None else in_unit(b, target, "bound")
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
        for arg in structural_args(cls):
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
        base = DynamicComponent if dynamic else _Component
        classes[type_name] = create_model(
            f"{type_name}Component", __base__=base, __doc__=summary, **fields
        )
    return classes


class DynamicComponent(_Component):
    """A component whose parameters follow from its structural arguments (Polynomial1D)."""

    model_config = ConfigDict(extra="allow", strict=True)

    @model_validator(mode="after")
    def _parameters(self):
        from parfit.models import MODEL_REGISTRY

        cls = MODEL_REGISTRY[self.type]
        structural = {a: getattr(self, a) for a in structural_args(cls)}
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
                        f"{did_you_mean(key, names)}; its parameters are "
                        f"{', '.join(names)}",
                        "parfit_path": (key,),
                    },
                )
            try:
                self.__pydantic_extra__[key] = ParameterConfig.model_validate(raw)
            except ValidationError as exc:
                # The parameter's own errors travel in the context, for
                # parfit.config.validate to word as it words every other error.
                errors = exc.errors()
                raise PydanticCustomError(
                    "parfit_parameter",
                    "{message}",
                    {
                        "message": f"parameter {key!r}: {errors[0]['msg']}",
                        "parfit_path": (key,),
                        "parfit_errors": errors,
                        "parfit_input": raw,
                    },
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


def structural_args(cls):
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
            "'guess': from an estimate made from its own data; 'mean': from a fit of the "
            "mean spectrum of every pixel (or of initial_region), made once (not for a "
            "joint fit)",
        )
        initial_region: Source | None = Field(
            None,
            description="initial: mean only: the pixels whose mean spectrum gives the start, "
            "a map of the maps' shape (the cube without its fitting axes) in a FITS, netCDF, "
            "zarr or .npy file, nonzero (and not NaN) inside the region (default: every "
            "pixel)",
        )

        @field_validator("initial_region")
        @classmethod
        def _mean_only(cls, value, info):
            initial = info.data.get("initial", "model")
            if value is not None and initial != "mean":
                raise ValueError(
                    f"initial_region applies only to initial: mean, not {initial!r} (it "
                    f"says whose mean spectrum gives the start)"
                )
            return value

    class SelectSection(_Section):
        """Per-pixel model selection: candidate models, the best by an information criterion."""

        criterion: Literal[SELECT_CRITERIA] = Field(
            "aicc",
            description="The information criterion compared pixel by pixel, with k free "
            "parameters and n valid samples: 'aic' (-2 ln L + 2k), 'aicc' (aic corrected "
            "for few samples, needs n > k + 1) or 'bic' (-2 ln L + k ln n)",
        )
        threshold: float = Field(
            0.0,
            ge=0,
            allow_inf_nan=False,
            description="A candidate with more free parameters replaces a simpler one only "
            "where its criterion is lower by more than this (0: the lowest wins, ties "
            "going to the simpler)",
        )
        candidates: list[ModelSection] = Field(
            description="The candidate models, at least two, each with the keys of the model "
            "section (components, initial, initial_region); every candidate is fitted to "
            "every pixel, and candidate k's maps go to candidate_<k>.zarr.  One initial "
            "(and initial_region) for them all",
            json_schema_extra={"type_label": "list of model sections"},
        )

        @field_validator("candidates", mode="before")
        @classmethod
        def _at_least_two(cls, value):
            if not isinstance(value, list):
                raise ValueError(
                    f"candidates must be a list of models, each with components (as the "
                    f"model section); got {value!r}"
                )
            if len(value) < 2:
                raise ValueError(
                    f"a selection needs at least two candidate models; got {len(value)}"
                )
            return value

        @model_validator(mode="after")
        def _one_start(self):
            first = self.candidates[0]
            for k, other in enumerate(self.candidates[1:], start=1):
                for key in ("initial", "initial_region"):
                    if getattr(other, key) != getattr(first, key):
                        raise PydanticCustomError(
                            "parfit_key",
                            "{message}",
                            {
                                "message": f"every candidate starts the same way (one {key} "
                                f"for them all): candidates[0] has {key}: "
                                f"{_shown(getattr(first, key))}, this one "
                                f"{_shown(getattr(other, key))}; give every candidate the "
                                f"same {key}",
                                "parfit_path": ("candidates", k, key),
                            },
                        )
            return self

    class AnalysisConfig(_Section):
        """A parfit analysis."""

        input: InputSection
        model: ModelSection
        fitter: FitterSection = Field(default_factory=lambda: FitterSection())
        likelihood: LikelihoodSection = Field(default_factory=lambda: LikelihoodSection())
        strategy: StrategySection = Field(default_factory=lambda: StrategySection())
        run: RunSection = Field(default_factory=lambda: RunSection())
        diagnostics: DiagnosticsSection = Field(default_factory=lambda: DiagnosticsSection())
        output: OutputSection

    class SelectAnalysisConfig(_Section):
        """A parfit model selection: candidate models fitted to one cube, the best per pixel."""

        input: InputSection
        select: SelectSection = Field(
            description="In place of model: the candidate models, each fitted to every "
            "pixel, and how the best is chosen pixel by pixel",
            json_schema_extra={"type_label": "mapping"},
        )
        fitter: FitterSection = Field(default_factory=lambda: FitterSection())
        likelihood: LikelihoodSection = Field(default_factory=lambda: LikelihoodSection())
        strategy: StrategySection = Field(default_factory=lambda: StrategySection())
        run: RunSection = Field(default_factory=lambda: RunSection())
        diagnostics: DiagnosticsSection = Field(default_factory=lambda: DiagnosticsSection())
        output: OutputSection

    class DatasetSection(_Section):
        """One cube of a joint fit: its input and its model."""

        input: InputSection = Field(
            description="The cube of this dataset: every key of the input section"
        )
        model: ModelSection = Field(
            description="The model of this dataset: every key of the model section; a tied "
            "expression may name another dataset's parameter as <dataset>.<parameter> "
            "(e.g. co10.mean_0)"
        )

    class JointAnalysisConfig(_Section):
        """A parfit joint analysis: several cubes fitted together, pixel by pixel."""

        datasets: dict[str, DatasetSection] = Field(
            description="In place of input and model: one entry per cube, named by a "
            "Python identifier (e.g. co10), each with its own input and model; the cubes "
            "must have the same shape along their iterating axes",
            json_schema_extra={"type_label": "mapping of name to {input, model}"},
        )
        fitter: FitterSection = Field(default_factory=lambda: FitterSection())
        likelihood: LikelihoodSection = Field(default_factory=lambda: LikelihoodSection())
        strategy: StrategySection = Field(default_factory=lambda: StrategySection())
        run: RunSection = Field(default_factory=lambda: RunSection())
        diagnostics: DiagnosticsSection = Field(default_factory=lambda: DiagnosticsSection())
        output: OutputSection

        @field_validator("datasets", mode="before")
        @classmethod
        def _names(cls, value):
            problem = dataset_names_problem(value)
            if problem is not None:
                path, message = problem
                raise PydanticCustomError(
                    "parfit_key", "{message}", {"message": message, "parfit_path": path}
                )
            return value

    return AnalysisConfig, JointAnalysisConfig, DatasetSection, classes, SelectAnalysisConfig


def _shown(value):
    """A config value as the YAML shows it (for messages)."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return value.get("path") or repr(value)
    return str(value)


def config_schema(*, joint=False, select=False):
    """The pydantic class of a whole config, for the models registered now.

    Parameters
    ----------
    joint : bool
        The class of a joint config (a ``datasets`` section in place of
        ``input`` and ``model``) instead of a one-cube config.
    select : bool
        The class of a model selection's config (a ``select`` section in
        place of ``model``).

    Returns
    -------
    type
        A :class:`pydantic.BaseModel` subclass; its ``model_fields`` are
        the sections (:data:`SECTIONS`, :data:`JOINT_SECTIONS` with
        ``joint=True``, :data:`SELECT_SECTIONS` with ``select=True``).

    Examples
    --------
    >>> list(config_schema().model_fields)
    ['input', 'model', 'fitter', 'likelihood', 'strategy', 'run', 'diagnostics', 'output']
    >>> list(config_schema(joint=True).model_fields)
    ['datasets', 'fitter', 'likelihood', 'strategy', 'run', 'diagnostics', 'output']
    >>> list(config_schema(select=True).model_fields)[:2]
    ['input', 'select']
    """
    if joint and select:
        raise ValueError("a config is joint or a selection, not both")
    schemas = _schema_for(_registry_key())
    return schemas[1] if joint else schemas[4] if select else schemas[0]


def dataset_section():
    """The pydantic class of one entry of ``datasets`` (its ``input`` and ``model``).

    Examples
    --------
    >>> list(dataset_section().model_fields)
    ['input', 'model']
    """
    return _schema_for(_registry_key())[2]


def component_classes():
    """The component schema of every registered model type, by type name."""
    return _schema_for(_registry_key())[3]


def is_selection_config(cfg):
    """Whether ``cfg`` (a validated config, or its raw mapping) selects among candidate models.

    Such a config has a ``select`` section in place of ``model``.

    Examples
    --------
    >>> is_selection_config({"input": {}, "select": {"candidates": []}})
    True
    >>> is_selection_config({"input": {}, "model": {}})
    False
    """
    if isinstance(cfg, dict):
        return "select" in cfg and "datasets" not in cfg
    return "select" in type(cfg).model_fields


def is_joint_config(cfg):
    """Whether ``cfg`` (a validated config, or its raw mapping) is a joint config.

    A joint config has a ``datasets`` section in place of ``input`` and
    ``model``.

    Examples
    --------
    >>> is_joint_config({"datasets": {"co10": {}}, "output": {"path": "out"}})
    True
    >>> is_joint_config({"input": {"path": "cube.fits"}})
    False
    """
    if isinstance(cfg, dict):
        return "datasets" in cfg
    return "datasets" in type(cfg).model_fields


def dataset_names_problem(value):
    """``(path below datasets, message)`` if ``value`` is no usable ``datasets`` mapping.

    The mapping must be non-empty and name its datasets with Python
    identifiers (:func:`parfit.models.joint.check_dataset_names` words the
    refusal); None when it is usable.

    Examples
    --------
    >>> dataset_names_problem({"co10": {}, "co21": {}}) is None
    True
    >>> dataset_names_problem({"co 21": {}})[0]
    ('co 21',)
    >>> dataset_names_problem([])[1].startswith("datasets must be a mapping of dataset names")
    True
    """
    from parfit.errors import ModelError
    from parfit.models.joint import check_dataset_names

    if not isinstance(value, dict):
        return (), (
            "datasets must be a mapping of dataset names to their input and model, such as "
            f"co10: {{input: ..., model: ...}}; got {value!r}"
        )
    if not value:
        return (), (
            "datasets is empty; a joint fit needs at least one dataset, such as "
            "co10: {input: ..., model: ...}"
        )
    for name in value:
        try:
            check_dataset_names([name], "datasets")
        except ModelError as exc:
            return (name,), str(exc).removeprefix("datasets: ")
    return None


# --- fitter, run, diagnostics, output ---------------------------------------------

_BATCHED_ONLY = ("engine", "factor")
_MINUIT_ONLY = ("tol", "strategy", "ncall")
#: The least-squares tolerances that MinuitFitter has no use for, with what it takes instead.
_NOT_MINUIT = {"ftol": "tol", "xtol": "tol", "gtol": "tol", "max_nfev": "ncall"}


class FitterSection(_Section):
    """The solver and its tolerances."""

    name: Literal[tuple(FITTER_NAMES)] = Field(  # type: ignore[valid-type]
        "batched",
        description="'batched': parfit's batched trust-region reflective (fast); "
        "'trf', 'dogbox', 'lm': scipy least_squares fit by fit; 'minuit': iminuit's MIGRAD "
        "and HESSE fit by fit (needs the optional extra parfit[minuit])",
    )
    ftol: float = Field(
        1e-8,
        gt=0,
        description="Stop when the relative drop of the statistic is below this (not minuit)",
    )
    xtol: float = Field(
        1e-8, gt=0, description="Stop when the relative step is below this (not minuit)"
    )
    gtol: float = Field(
        1e-8, gt=0, description="Stop when the scaled gradient is below this (not minuit)"
    )
    max_nfev: int | None = Field(
        None,
        ge=1,
        description="Most model evaluations per fit (default: the solver's own limit; "
        "minuit: see ncall)",
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
    tol: float = Field(
        0.1,
        gt=0,
        allow_inf_nan=False,
        description="minuit only: MIGRAD stops when the estimated distance to the minimum "
        "is below 0.002 * tol, in units of the statistic",
    )
    strategy: int = Field(
        1, ge=0, le=2, description="minuit only: Minuit's strategy, 0 (fastest) to 2 (most careful)"
    )
    ncall: int | None = Field(
        None,
        ge=1,
        description="minuit only: most function calls of MIGRAD per fit (default: Minuit's "
        "own limit)",
    )

    @field_validator(*_BATCHED_ONLY, *_MINUIT_ONLY)
    @classmethod
    def _one_fitters_options(cls, value, info):
        owner = "batched" if info.field_name in _BATCHED_ONLY else "minuit"
        name = info.data.get("name", "batched")
        if name != owner and value != cls.model_fields[info.field_name].default:
            raise ValueError(f"{info.field_name} applies only to name: {owner}, not {name!r}")
        return value

    @field_validator(*_NOT_MINUIT)
    @classmethod
    def _least_squares_options(cls, value, info):
        if info.data.get("name") == "minuit" and value != cls.model_fields[info.field_name].default:
            raise ValueError(
                f"{info.field_name} applies to the least-squares fitters, not to name: minuit; "
                f"give minuit's {_NOT_MINUIT[info.field_name]} instead"
            )
        return value

    def fitter(self):
        """The fitter this section describes, for ``parallel_fit(fitter=...)``.

        Raises
        ------
        parfit.errors.InputError
            For ``name: minuit`` when iminuit is not installed.
        """
        from parfit.fitters import BatchedFitter, MinuitFitter, ScipyFitter

        if self.name == "minuit":
            return MinuitFitter(
                tol=self.tol,
                strategy=self.strategy,
                ncall=self.ncall,
                scale_covariance=self.scale_covariance,
            )
        kwargs = {
            "ftol": self.ftol,
            "xtol": self.xtol,
            "gtol": self.gtol,
            "max_nfev": self.max_nfev,
            "scale_covariance": self.scale_covariance,
        }
        if self.name == "batched":
            return BatchedFitter(engine=self.engine, factor=self.factor, **kwargs)
        return ScipyFitter(self.name, **kwargs)


class RunSection(_Section):
    """How the fits run."""

    def block_size(self, n_fits, n_samples, n_cores=None):
        """``chunk_n_max`` as a number for a cube of ``n_fits`` fits of ``n_samples``.

        ``auto`` is the rule ``parallel_fit`` applies when ``chunk_n_max`` is
        not given (:func:`parfit.engine.plan.auto_block_size`): about 16 MiB
        of float64 data per block (few, large blocks: each block task has a
        fixed cost), between 500 and 16384 fits, and at least two blocks per
        core (``n_cores``, default this machine's).

        Examples
        --------
        >>> run = RunSection()
        >>> run.block_size(65536, 60) in (4096, 8192, 16384)
        True
        >>> run.block_size(40_000, 53, n_cores=2)
        10000
        >>> RunSection(chunk_n_max=100).block_size(65536, 60)
        100
        """
        if self.chunk_n_max != "auto":
            return self.chunk_n_max
        return auto_block_size(n_fits, n_samples, n_cores)

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
        description="Output folder: maps.zarr, config.yaml, run.json and the diagnostics go "
        "here (a selection: candidate_<k>.zarr and selection.zarr in place of maps.zarr)",
        json_schema_extra={"example": "results"},
    )
    format: Literal["zarr", "netcdf", "fits"] = Field(
        "zarr",
        description="The maps are always streamed to maps.zarr (resumable); 'netcdf' "
        "or 'fits' also writes maps.nc or maps.fits at the end (a selection: 'netcdf' "
        "writes the chosen maps of selection.zarr as maps.nc; no 'fits')",
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


SECTIONS = ("input", "model", "fitter", "likelihood", "strategy", "run", "diagnostics", "output")
#: The sections of a joint config: ``datasets`` in place of ``input`` and ``model``.
JOINT_SECTIONS = ("datasets",) + SECTIONS[2:]
#: The sections of a model selection's config: ``select`` in place of ``model``.
SELECT_SECTIONS = ("input", "select") + SECTIONS[2:]


def section_class(annotation):
    """The BaseModel class inside ``annotation`` (Optional[X], list[X]...), or None.

    Examples
    --------
    >>> section_class(config_schema().model_fields["run"].annotation).__name__
    'RunSection'
    """
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = section_class(arg)
        if found is not None:
            return found
    return None


# --- paths ------------------------------------------------------------------------------


def set_base_dir(cfg, folder) -> None:
    """Make the relative paths of ``cfg`` relative to ``folder``."""
    object.__setattr__(cfg, "_base_dir", Path(folder).resolve())


def base_dir(cfg) -> Path:
    """The folder relative paths of ``cfg`` are relative to."""
    return getattr(cfg, "_base_dir", None) or Path.cwd()


def resolve(cfg, path) -> Path:
    """``path`` of the config as an absolute Path.

    Examples
    --------
    >>> cfg = config_schema().model_validate({"input": {"path": "cube.fits"},
    ...     "model": {"components": [{"type": "Const1D"}]}, "output": {"path": "out"}})
    >>> set_base_dir(cfg, "/data/run")
    >>> str(resolve(cfg, cfg.input.path))
    '/data/run/cube.fits'
    """
    p = Path(path).expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else base_dir(cfg) / p))
