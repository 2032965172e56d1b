"""Exceptions raised by parfit.

Every exception derives from :class:`ParfitError` and from the builtin it
refines (``ValueError``, ``TypeError`` or ``FileExistsError``), so callers can
catch either.  All of them take a single message argument and therefore
pickle cleanly across process boundaries (dask workers).
"""

__all__ = [
    "ParfitError",
    "InputError",
    "InputTypeError",
    "ParameterError",
    "ModelError",
    "OutputExistsError",
]


class ParfitError(Exception):
    """Base class of every exception raised by parfit."""


class InputError(ParfitError, ValueError):
    """An argument of a public function has an invalid value."""


class InputTypeError(ParfitError, TypeError):
    """An argument of a public function has an invalid type."""


class ParameterError(ParfitError, ValueError):
    """A model parameter is inconsistent (bounds, tied expression, value)."""


class ModelError(ParfitError, ValueError):
    """A model cannot be built, composed, serialised or evaluated as asked."""


class OutputExistsError(ParfitError, FileExistsError):
    """An output target already exists and ``overwrite`` was not given."""
