"""Diagnostics: per-fit folders, and summaries and plots of what a run left on disk.

* :mod:`parfit.diagnostics.folders` - the per-fit folders that
  :func:`parfit.parallel_fit` writes with ``diagnostics="error"``,
  ``"error+warn"`` or ``"all"`` under ``diagnostics_path`` (``error.log``,
  ``warn.log``, what ``diagnostics_callable`` wrote), and ``manifest.csv``,
  which lists the folders of the run;
* :mod:`parfit.diagnostics.summary` - :func:`summarize`, what happened in a
  run, read from a diagnostics folder, an output store, a model selection's
  folder or an analysis folder (what ``parfit inspect`` prints), worded by
  :mod:`parfit.diagnostics.report`; what the statistic, TS maps and profiles
  (:mod:`parfit.diagnostics.likelihood`) and the starts, neighbour refits and
  model selection (:mod:`parfit.diagnostics.strategy`) add;
* :mod:`parfit.diagnostics.plots` - :func:`plot_maps`, :func:`plot_overview`,
  :func:`plot_fit` and :func:`plot_fits`, quick-look PNGs of the maps, of one
  fit and of the datasets of one joint fit.

Dependencies point one way: plots -> summary -> report -> (likelihood,
strategy) -> paths -> folders.  The
engine writes the folders through :mod:`parfit.diagnostics.folders`
(``check_diagnostics_path``, ``open_diagnostics_path``, ``report_mode``,
``write_fit_folder``, ``write_manifest``).
"""

from parfit.diagnostics.folders import (
    DIAGNOSTICS_MODES,
    MANIFEST_NAME,
    MARKER_NAME,
    folder_name,
    prepare_diagnostics_path,
    read_manifest,
)
from parfit.diagnostics.plots import FitPanel, plot_fit, plot_fits, plot_maps, plot_overview
from parfit.diagnostics.summary import PERCENTILES, MessageGroup, Summary, summarize

__all__ = [
    # per-fit folders and the manifest
    "DIAGNOSTICS_MODES",
    "MANIFEST_NAME",
    "MARKER_NAME",
    "prepare_diagnostics_path",
    "folder_name",
    "read_manifest",
    # summaries
    "summarize",
    "Summary",
    "MessageGroup",
    "PERCENTILES",
    # plots
    "plot_maps",
    "plot_overview",
    "plot_fit",
    "plot_fits",
    "FitPanel",
]
