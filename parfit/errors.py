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
    "ConfigError",
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


class ConfigError(ParfitError, ValueError):
    """An analysis config (YAML) is invalid.

    The message lists every problem, one per line, each with its YAML path
    and line.  ``problems`` holds them as ``(path, line, message)`` tuples
    (``line`` is ``None`` where unknown); it survives pickling.
    """

    def __init__(self, message, problems=()):
        super().__init__(message)
        self.problems = list(problems)

    def __reduce__(self):
        return (type(self), (self.args[0], self.problems))
