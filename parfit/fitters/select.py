"""Turn the ``fitter=`` argument of :func:`parfit.parallel_fit` into a fitter."""

from typing import Any

from ..errors import InputError, InputTypeError
from .astropy_fitter import AstropyFitter
from .base import Fitter
from .batched import BatchedFitter
from .minuit_fitter import MinuitFitter
from .scipy_fitter import ScipyFitter

__all__ = ["FITTER_NAMES", "get_fitter", "is_astropy_fitter"]

#: Names accepted by ``fitter=``, mapped to what they build.
FITTER_NAMES = {
    "batched": (
        "parfit's batched trust-region reflective, every fit of a block at once (the default)"
    ),
    "trf": "scipy.optimize.least_squares, trust-region reflective (bounds)",
    "dogbox": "scipy.optimize.least_squares, dogleg in a box (bounds)",
    "lm": "scipy.optimize.least_squares, MINPACK Levenberg-Marquardt (no bounds)",
    "minuit": "iminuit MIGRAD and HESSE per fit (the optional extra parfit[minuit])",
}

#: What ``fitter=None`` means.
DEFAULT_FITTER = "batched"


def is_astropy_fitter(obj: object) -> bool:
    """True for an astropy.modeling fitter instance (or class)."""
    try:
        from astropy.modeling.fitting import Fitter as _AstropyBase
    except ImportError:  # pragma: no cover - astropy is a core dependency
        return False
    if isinstance(obj, type):
        return issubclass(obj, _AstropyBase)
    return isinstance(obj, _AstropyBase)


def get_fitter(fitter: Any) -> Fitter:
    """Return the parfit :class:`~parfit.fitters.Fitter` for ``fitter``.

    Parameters
    ----------
    fitter : None, str, parfit Fitter or astropy fitter instance
        None or ``"batched"`` gives the default
        :class:`~parfit.fitters.BatchedFitter`; ``"minuit"`` a
        :class:`~parfit.fitters.MinuitFitter` (it needs iminuit, the optional
        extra ``parfit[minuit]``); another name from :data:`FITTER_NAMES` a
        :class:`~parfit.fitters.ScipyFitter` with that method; an astropy
        fitter instance an :class:`~parfit.fitters.AstropyFitter`.

    Examples
    --------
    >>> from parfit.fitters import get_fitter
    >>> get_fitter(None)
    <BatchedFitter batched trust-region reflective (ftol=1e-08, xtol=1e-08, gtol=1e-08,
    factor=1.0, engine='auto')>
    >>> get_fitter("lm")
    <ScipyFitter scipy.optimize.least_squares(method='lm', ftol=1e-08, xtol=1e-08, gtol=1e-08,
    x_scale=1.0)>
    >>> get_fitter("minuit")
    <MinuitFitter iminuit MIGRAD and HESSE (tol=0.1, strategy=1, ncall=None, scale_covariance=True)>
    """
    if fitter is None or fitter == "batched":
        return BatchedFitter()
    if isinstance(fitter, Fitter):
        return fitter
    if isinstance(fitter, str):
        if fitter not in FITTER_NAMES:
            raise InputError(
                f"fitter={fitter!r} is not a known fitter name; expected one of "
                f"{', '.join(map(repr, FITTER_NAMES))}, a parfit fitter or an astropy "
                f"fitter instance"
            )
        if fitter == "minuit":
            return MinuitFitter()
        return ScipyFitter(fitter)
    if is_astropy_fitter(fitter):
        return AstropyFitter(fitter)
    raise InputTypeError(
        f"fitter must be None, a fitter name ({', '.join(map(repr, FITTER_NAMES))}), a "
        f"parfit fitter or an astropy fitter instance; got {type(fitter).__name__}"
    )
