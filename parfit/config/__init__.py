"""The YAML analysis config: schema, validation and the objects it builds.

One YAML file describes a whole analysis in eight sections: ``input`` (the
cube), ``model`` (components from parfit's model library with their
starting values, bounds, fixed and tied parameters, and where each fit
starts), ``fitter``, ``likelihood`` (the statistic, a null hypothesis for
TS maps, profile likelihoods), ``strategy`` (pixels skipped for their
noise, fits repeated from their neighbours), ``run`` (block size,
scheduler, failure threshold), ``diagnostics`` and ``output``.  A
per-pixel model selection has a ``select`` section (the criterion and the
candidate models) in place of ``model``.
A joint fit of several cubes, pixel by pixel, has a ``datasets`` section in
place of ``input`` and ``model``: one entry per cube with its own ``input``
and ``model``, whose ties may name another dataset's parameter
(``co10.mean_0``).  The pydantic classes of :mod:`parfit.config.schema` are the single source of
truth: the template written by ``parfit config`` and the reference page of
the docs are both generated from them (:mod:`parfit.config.docs`).

:func:`load_config` reads a file and reports *every* problem at once, each
with its YAML path and line, in a :class:`~parfit.errors.ConfigError`.
Relative paths in a config file are relative to the file's folder.
:func:`build_model` and :func:`open_input` turn a validated config into the
model and the (lazily opened) cube that :func:`parfit.parallel_fit` takes
(for a joint config, mappings of the datasets).

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

from parfit.config.build import build_model, open_input
from parfit.config.docs import template
from parfit.config.schema import config_schema
from parfit.config.validate import config_hash, load_config, parse_config, validate_config

__all__ = [
    "load_config",
    "parse_config",
    "validate_config",
    "build_model",
    "open_input",
    "config_schema",
    "config_hash",
    "template",
]
