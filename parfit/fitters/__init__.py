"""Fitters: how one block of independent fits is solved.

* :class:`BatchedFitter` - the default: every fit of a block advanced
  together by a batched trust-region reflective solver (:mod:`parfit.fitters.lm`).
* :class:`ScipyFitter` - each fit on its own with
  :func:`scipy.optimize.least_squares` (``"trf"``, ``"dogbox"``, ``"lm"``).
* :class:`MinuitFitter` - each fit on its own with iminuit's MIGRAD and
  HESSE, and MINOS intervals on request (the optional extra ``parfit[minuit]``).
* :class:`AstropyFitter` - an astropy fitter instance called per fit, as
  ``astropy.modeling.fitting.parallel_fit_dask`` does.

:func:`get_fitter` turns the ``fitter=`` argument of
:func:`parfit.parallel_fit` into one of these.  Each checks its options,
``fitter_kwargs`` (:meth:`Fitter.check`) and ``fit_info`` names
(:meth:`Fitter.check_fit_info`) before anything is dispatched, with the
shared checks of :mod:`parfit.fitters.options`.
"""

from .astropy_fitter import AstropyFitter
from .base import BlockResult, FitBlock, Fitter
from .batched import BatchedFitter
from .minuit_fitter import MinuitFitter
from .scipy_fitter import ScipyFitter
from .select import FITTER_NAMES, get_fitter

__all__ = [
    "AstropyFitter",
    "BatchedFitter",
    "BlockResult",
    "FITTER_NAMES",
    "FitBlock",
    "Fitter",
    "MinuitFitter",
    "ScipyFitter",
    "get_fitter",
]
