"""The YAML analysis config: schema, validation and the objects it builds.

Being split into modules: for now :mod:`parfit.config.schema` holds the
schema, the reading and the checking, and this package re-exports the names
that parfit's other modules and tests use.

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

from parfit._config_build import build_model, open_input
from parfit.config.schema import (
    MAX_COMPONENTS,
    SECTIONS,
    ParameterConfig,
    _section_class,
    component_classes,
    config_hash,
    config_schema,
    config_to_dict,
    config_to_yaml,
    load_config,
    parse_config,
    resolve,
    template,
    validate_config,
)

__all__ = [
    "load_config",
    "parse_config",
    "validate_config",
    "config_schema",
    "open_input",
    "config_hash",
    "build_model",
    "config_to_yaml",
    "template",
    "SECTIONS",
    # Used by parfit's other modules and tests until they import from the modules.
    "MAX_COMPONENTS",
    "ParameterConfig",
    "_section_class",
    "component_classes",
    "config_to_dict",
    "resolve",
]
