"""Parameter declarations (:class:`ParameterSpec`) and the model registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from parfit.errors import ModelError

if TYPE_CHECKING:
    from parfit.models.base import Model

__all__ = ["MODEL_REGISTRY", "ParameterSpec", "register_model"]

#: Names under which model classes are known to :func:`parfit.models.from_dict`.
MODEL_REGISTRY: dict[str, type[Model]] = {}


def register_model(cls: type[Model]) -> type[Model]:
    """Class decorator making a model known to the YAML reader.

    Parameters
    ----------
    cls : type
        A :class:`Model` subclass; registered under ``cls.__name__``.

    Returns
    -------
    type
        ``cls`` unchanged.

    Raises
    ------
    ModelError
        If ``cls`` is not a Model subclass or another class is already
        registered under the same name.

    Examples
    --------
    >>> from parfit.models import Model, ParameterSpec
    >>> @register_model
    ... class Offset1D(Model):
    ...     param_specs = (ParameterSpec("offset", 0.0, unit="y"),)
    ...     def _evaluate(self, x, offset):
    ...         return offset + 0.0 * x
    >>> MODEL_REGISTRY["Offset1D"] is Offset1D
    True
    >>> del MODEL_REGISTRY["Offset1D"]   # keep the example from leaking
    """
    from parfit.models.base import Model

    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise ModelError(f"register_model expects a Model subclass, got {cls!r}")
    name = cls.__name__
    existing = MODEL_REGISTRY.get(name)
    reloaded = existing is not None and (existing.__module__, existing.__qualname__) == (
        cls.__module__,
        cls.__qualname__,
    )
    if existing is not None and existing is not cls and not reloaded:
        raise ModelError(
            f"a different model class is already registered as {name!r} "
            f"({existing.__module__}.{existing.__qualname__}); rename "
            f"{cls.__module__}.{cls.__qualname__}"
        )
    MODEL_REGISTRY[name] = cls
    return cls


@dataclass(frozen=True)
class ParameterSpec:
    """Declaration of one parameter of a model class.

    Parameters
    ----------
    name : str
        Parameter name (identifier).
    default : float
        Default starting value.
    bounds : tuple, optional
        Default ``(lower, upper)``; ``None`` for unbounded.
    unit : str or None, optional
        Unit role: an expression over the model's input names (``x``, and
        ``y`` for 2-D models), its output name (``y`` for 1-D models, ``z``
        for 2-D models) and the literal ``rad``, e.g. ``"y / x**2"``.
        ``None`` means dimensionless.
    description : str, optional
        Free text.

    Examples
    --------
    >>> ParameterSpec("stddev", 1.0, bounds=(0.0, None), unit="x").name
    'stddev'
    """

    name: str
    default: float
    bounds: tuple[float | None, float | None] = (None, None)
    unit: str | None = None
    description: str = ""
