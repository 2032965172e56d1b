"""Translate astropy.modeling models to parfit models and back.

This lets an astropy model be fitted by parfit's own fitters: the model is
translated to its parfit twin (same parameter names, order, formulas and
defaults), fitted, and the maps are put back on a copy of the astropy model.

astropy ties are Python callables; parfit ties are expression strings (so
they serialise).  A tie is translated by calling it on a symbolic stand-in
for the model, which records the arithmetic it does: ``lambda m:
m.mean_0 + 1200`` becomes ``"mean_0 + 1200"``.  A tie that does anything
else cannot be translated and raises a clear error.
"""

import numpy as np

from ..errors import InputTypeError
from .functional_1d import (
    Const1D,
    Gaussian1D,
    Linear1D,
    Lorentz1D,
    Polynomial1D,
    PowerLaw1D,
    Voigt1D,
)
from .functional_2d import Const2D, Gaussian2D

__all__ = ["from_astropy", "to_astropy", "SUPPORTED_ASTROPY_MODELS"]

_LEAVES = {
    "Gaussian1D": Gaussian1D,
    "Lorentz1D": Lorentz1D,
    "Voigt1D": Voigt1D,
    "Const1D": Const1D,
    "Linear1D": Linear1D,
    "Polynomial1D": Polynomial1D,
    "PowerLaw1D": PowerLaw1D,
    "Gaussian2D": Gaussian2D,
    "Const2D": Const2D,
}
#: astropy model classes (and compounds of them with ``+ - * /``) parfit
#: fitters accept.
SUPPORTED_ASTROPY_MODELS = tuple(_LEAVES)


def from_astropy(model):
    """The parfit model equivalent to an astropy model.

    Parameters
    ----------
    model : astropy.modeling.Model
        One of :data:`SUPPORTED_ASTROPY_MODELS`, or a compound of them with
        ``+``, ``-``, ``*`` or ``/``.  Values (scalars or per-pixel arrays),
        units, bounds, fixed flags and ties are carried over.

    Returns
    -------
    parfit.models.Model

    Raises
    ------
    TypeError
        For a model class or operator parfit has no equivalent of, or a tie
        that is not plain arithmetic on parameters.

    Examples
    --------
    >>> from astropy.modeling import models
    >>> from parfit.models.astropy_bridge import from_astropy
    >>> m = models.Gaussian1D(2, 0, 1) + models.Const1D(0.5)
    >>> m.stddev_0.bounds = (0.1, None)
    >>> p = from_astropy(m)
    >>> p.param_names
    ('amplitude_0', 'mean_0', 'stddev_0', 'amplitude_1')
    >>> p.stddev_0.bounds
    (0.1, None)
    """
    out = _structure(model)
    for name in model.param_names:
        par = getattr(model, name)
        target = getattr(out, name)
        value = par.quantity if par.unit is not None else par.value
        lower, upper = model.bounds[name]
        tie = model.tied[name]
        target.update(value=value, bounds=(lower, upper))
        target.fixed = bool(model.fixed[name])
        if tie:
            target.tied = _trace_tie(tie, name, model.param_names)
    return out


def _structure(model):
    from astropy.modeling.core import CompoundModel as AstropyCompound

    if isinstance(model, AstropyCompound):
        ops = {"+": "__add__", "-": "__sub__", "*": "__mul__", "/": "__truediv__"}
        if model.op not in ops:
            raise InputTypeError(
                f"astropy compound operator {model.op!r} has no parfit equivalent (parfit "
                f"composes with + - * /); fit this model with an astropy fitter, e.g. "
                f"fitter=TRFLSQFitter()"
            )
        return getattr(_structure(model.left), ops[model.op])(_structure(model.right))
    name = type(model).__name__
    cls = _LEAVES.get(name)
    if cls is None or type(model).__module__.split(".")[0] != "astropy":
        raise InputTypeError(
            f"astropy model {name} has no parfit equivalent, so parfit's own fitters cannot "
            f"fit it; give an astropy fitter (e.g. fitter=TRFLSQFitter()) or use one of "
            f"{', '.join(SUPPORTED_ASTROPY_MODELS)}"
        )
    if name == "Polynomial1D":
        if tuple(model.domain) != tuple(model.window):
            raise InputTypeError(
                "astropy Polynomial1D with a domain different from its window has no parfit "
                "equivalent; give an astropy fitter or drop domain/window"
            )
        return cls(model.degree)
    return cls()


class _Symbol:
    """Records arithmetic done on parameters, to rebuild a tie as text."""

    def __init__(self, text):
        self.text = text

    @property
    def value(self):
        return self

    def _bin(self, other, op, reverse=False):
        other_text = _as_text(other)
        a, b = (other_text, self.text) if reverse else (self.text, other_text)
        return _Symbol(f"({a} {op} {b})")

    def __add__(self, o):
        return self._bin(o, "+")

    def __radd__(self, o):
        return self._bin(o, "+", True)

    def __sub__(self, o):
        return self._bin(o, "-")

    def __rsub__(self, o):
        return self._bin(o, "-", True)

    def __mul__(self, o):
        return self._bin(o, "*")

    def __rmul__(self, o):
        return self._bin(o, "*", True)

    def __truediv__(self, o):
        return self._bin(o, "/")

    def __rtruediv__(self, o):
        return self._bin(o, "/", True)

    def __pow__(self, o):
        return self._bin(o, "**")

    def __neg__(self):
        return _Symbol(f"(-{self.text})")

    def __pos__(self):
        return self

    def _call(self, func):
        return _Symbol(f"{func}({self.text})")

    # numpy calls these methods when a ufunc meets an object.
    def sqrt(self):
        return self._call("sqrt")

    def exp(self):
        return self._call("exp")

    def log(self):
        return self._call("log")

    def log10(self):
        return self._call("log10")

    def sin(self):
        return self._call("sin")

    def cos(self):
        return self._call("cos")


def _as_text(obj):
    if isinstance(obj, _Symbol):
        return obj.text
    value = np.asarray(obj)
    if value.ndim == 0 and value.dtype.kind in "fiu":
        return repr(float(value))
    raise TypeError(f"cannot use {obj!r} in a tied expression")


class _ModelProxy:
    def __init__(self, names):
        self._names = names

    def __getattr__(self, name):
        if name in self._names:
            return _Symbol(name)
        raise AttributeError(name)


def _trace_tie(tie, name, names):
    if isinstance(tie, str):
        return tie
    try:
        out = tie(_ModelProxy(names))
        text = _as_text(out)
    except Exception as exc:
        raise InputTypeError(
            f"the tie of astropy parameter {name!r} cannot be translated to a parfit "
            f"expression ({type(exc).__name__}: {exc}); parfit translates ties that do "
            f"arithmetic on other parameters, such as lambda m: m.mean_0 + 1200. Give an "
            f"astropy fitter (e.g. fitter=TRFLSQFitter()) to fit this model as astropy does"
        ) from None
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    return text


def to_astropy(fitted, template):
    """A copy of the astropy model ``template`` holding ``fitted``'s values.

    Parameters
    ----------
    fitted : parfit.models.Model
        A parfit model with the same parameter names as ``template``.
    template : astropy.modeling.Model
        The astropy model the parfit model was translated from.

    Returns
    -------
    astropy.modeling.Model
        Values carry units where ``fitted``'s parameters have them.
    """
    values = {}
    for name in template.param_names:
        par = getattr(fitted, name)
        values[name] = par.value * par.unit if par.unit is not None else par.value
    out = template.copy()
    out._reset_parameters(**values)
    return out
