"""Models from plain vectorised Python functions (:func:`model_from_function`)."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from parfit.errors import ModelError
from parfit.models.base import Model, ParameterSpec

__all__ = ["FunctionModel", "model_from_function"]

#: Default value of a parameter without a default in the signature (as astropy's custom_model).
_DEFAULT_VALUE = 1.0


class FunctionModel(Model):
    """Base class of the models made by :func:`model_from_function`.

    Subclasses hold the function (``_func``) and, optionally, its Jacobian
    (``_jac_func``); build them with :func:`model_from_function` rather than
    by hand.

    Examples
    --------
    >>> from parfit.models import FunctionModel, model_from_function
    >>> Line = model_from_function(lambda x, slope, offset=0.0: slope * x + offset, name="Line")
    >>> issubclass(Line, FunctionModel), Line().param_names
    (True, ('slope', 'offset'))
    """

    _func: ClassVar[Callable[..., Any]]
    _jac_func: ClassVar[Callable[..., Any] | None] = None
    has_analytic_jacobian: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not hasattr(type(self), "_func"):
            raise ModelError(
                f"{type(self).__name__} has no function; make function models with "
                "parfit.models.model_from_function(func)"
            )
        super().__init__(*args, **kwargs)

    def _evaluate(self, *args: Any) -> Any:
        return type(self)._func(*args)

    def _jacobian(self, *args: Any) -> list[Any]:
        jac = type(self)._jac_func
        if jac is None:  # pragma: no cover - has_analytic_jacobian is False then
            raise NotImplementedError
        return list(jac(*args))


def _function_name(func: Any) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def _check_signature(func: Any, n_inputs: int) -> list[inspect.Parameter]:
    """Positional parameters of ``func``; ModelError for anything else."""
    fname = _function_name(func)
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"model_from_function: cannot read the signature of function {fname} ({exc}); "
            "wrap it in a def with named arguments"
        ) from None
    params = list(sig.parameters.values())
    for p in params:
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            raise ModelError(
                f"model_from_function: function {fname} takes *{p.name}; a model function needs "
                "a fixed list of named parameters, e.g. f(x, a, b=2.0)"
            )
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            raise ModelError(
                f"model_from_function: function {fname} takes **{p.name}; a model function needs "
                "a fixed list of named parameters, e.g. f(x, a, b=2.0)"
            )
        if p.kind is inspect.Parameter.KEYWORD_ONLY:
            raise ModelError(
                f"model_from_function: argument {p.name!r} of function {fname} is keyword-only; "
                "write the parameters as ordinary arguments after the independent "
                "variable(s), e.g. f(x, a, b=2.0)"
            )
    if len(params) <= n_inputs:
        inputs = "x" if n_inputs == 1 else "x, y"
        raise ModelError(
            f"model_from_function: function {fname} takes {len(params)} argument(s), but needs "
            f"the {n_inputs} independent variable(s) and at least one parameter, "
            f"e.g. f({inputs}, a)"
        )
    return params


def model_from_function(
    func: Callable[..., Any] | None = None,
    *,
    n_inputs: int = 1,
    name: str | None = None,
    jacobian: Callable[..., Any] | None = None,
) -> Any:
    """Make a model class from a plain vectorised function.

    The first ``n_inputs`` arguments of ``func`` are the independent
    variables (``x``, or ``x, y`` for 2-D models); the others are the
    parameters, with the signature's defaults as default starting values
    (1.0 where there is none, as astropy's ``custom_model``).  Parameters
    have no default bounds and are dimensionless in unit handling.

    Parameters
    ----------
    func : callable, optional
        ``func(x, a, b=2.0, ...)`` returning the model values.  It gets what
        a model's ``_evaluate`` gets: each parameter as an ``(n_fits, 1)``
        column and ``x`` as ``(1, n_samples)`` or ``(n_fits, n_samples)``,
        so any numpy-vectorised function works.  Without ``func``, returns a
        decorator (``@model_from_function(n_inputs=2)``).
    n_inputs : {1, 2}, optional
        Number of independent variables.
    name : str, optional
        Class name (default: the function's name; ``"LambdaModel"`` for a
        lambda).  Give the name of the variable the class is assigned to at
        module level so that plain :mod:`pickle` finds the class;
        cloudpickle (used by dask) copies it by value either way.
    jacobian : callable, optional
        Same signature as ``func``, returning a list with the derivative of
        the model with respect to each parameter (each broadcastable to
        ``(n_fits, n_samples)``).  Without it, Jacobians are central finite
        differences.

    Returns
    -------
    type
        A :class:`FunctionModel` (so :class:`Model`) subclass: build instances
        with parameter values, bounds, fixed and tied as for any model; they
        compose with ``+ - * /``, copy and pickle.

    Raises
    ------
    ModelError
        If the function takes ``*args``, ``**kwargs`` or keyword-only
        arguments, has no parameter after the inputs, has a default that is
        not a real number, or a parameter name that clashes with a
        :class:`Model` attribute.

    Notes
    -----
    YAML: the function itself is not written, so a function model is only
    written to YAML once registered: ``register_model(MyModel)`` (or
    ``@register_model`` above ``@model_from_function``); the reading process
    must register the same class before :func:`from_yaml`.  Function models
    cannot guess starting values (:meth:`Model.guess`).

    Examples
    --------
    >>> import numpy as np
    >>> from parfit.models import Gaussian1D, model_from_function
    >>> def damped(x, amplitude, tau=2.0, omega=1.0):
    ...     return amplitude * np.exp(-x / tau) * np.cos(omega * x)
    >>> Damped = model_from_function(damped, name="Damped")
    >>> m = Damped(amplitude=3.0, bounds={"tau": (0.0, None)})
    >>> m
    <Damped(amplitude=3.0, tau=2.0, omega=1.0)>
    >>> m.evaluate(np.array([0.0, 1.0]), np.array([[3.0, 2.0, 0.0], [1.0, 1.0, 0.0]])).round(4)
    array([[3.    , 1.8196],
           [1.    , 0.3679]])
    >>> (m + Gaussian1D()).param_names
    ('amplitude_0', 'tau_0', 'omega_0', 'amplitude_1', 'mean_1', 'stddev_1')

    As a decorator, with an analytic Jacobian:

    >>> def ramp_jacobian(x, slope, offset):
    ...     return [x, np.ones_like(x)]
    >>> @model_from_function(jacobian=ramp_jacobian)
    ... def Ramp(x, slope, offset=0.0):
    ...     return slope * x + offset
    >>> Ramp.has_analytic_jacobian, Ramp().param_names
    (True, ('slope', 'offset'))

    Two inputs:

    >>> @model_from_function(n_inputs=2)
    ... def Plane(x, y, a=1.0, b=1.0, c=0.0):
    ...     return a * x + b * y + c
    >>> float(Plane(a=2.0)(1.0, 1.0))
    3.0
    """
    if func is None:

        def decorate(f: Callable[..., Any]) -> Any:
            return model_from_function(f, n_inputs=n_inputs, name=name, jacobian=jacobian)

        return decorate
    if not callable(func) or isinstance(func, type):
        raise ModelError(f"model_from_function expects a function, got {func!r}")
    if isinstance(n_inputs, bool) or n_inputs not in (1, 2):
        raise ModelError(f"model_from_function: n_inputs must be 1 or 2, got {n_inputs!r}")
    if name is not None and (not isinstance(name, str) or not name.isidentifier()):
        raise ModelError(f"model_from_function: name must be a Python identifier, got {name!r}")
    fname = _function_name(func)
    params = _check_signature(func, n_inputs)
    names = [p.name for p in params]
    if jacobian is not None:
        if not callable(jacobian):
            raise ModelError(f"model_from_function: jacobian must be a function, got {jacobian!r}")
        try:
            inspect.signature(jacobian).bind(*names)
        except TypeError:
            raise ModelError(
                f"model_from_function: jacobian {_function_name(jacobian)} cannot be called "
                f"with the arguments of {fname} ({', '.join(names)}); give it the same "
                "signature"
            ) from None
        except ValueError:  # no signature to check (some builtins): trust it
            pass
    specs = []
    for p in params[n_inputs:]:
        default = _DEFAULT_VALUE if p.default is inspect.Parameter.empty else p.default
        if isinstance(default, (bool, np.bool_)) or not isinstance(default, numbers.Real):
            raise ModelError(
                f"model_from_function: default of parameter {p.name!r} of {fname} must be a "
                f"real number, got {default!r}"
            )
        specs.append(ParameterSpec(p.name, float(default)))
    func_name = getattr(func, "__name__", "")
    cls_name = name or (func_name if func_name.isidentifier() else "LambdaModel")
    if name is not None:
        qualname = name
    elif func_name.isidentifier():
        qualname = getattr(func, "__qualname__", func_name)
    else:
        qualname = cls_name
    namespace = {
        "__module__": getattr(func, "__module__", None) or __name__,
        "__qualname__": qualname,
        "__doc__": func.__doc__ or f"Model made from {fname} by model_from_function.",
        "n_inputs": n_inputs,
        "param_specs": tuple(specs),
        "_func": staticmethod(func),
        "_jac_func": None if jacobian is None else staticmethod(jacobian),
        "has_analytic_jacobian": jacobian is not None,
    }
    try:
        return type(cls_name, (FunctionModel,), namespace)
    except ModelError as exc:
        raise ModelError(f"model_from_function: {exc}") from None
