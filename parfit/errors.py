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
    "OutputLockedError",
    "StoreDamagedError",
    "StaleLockWarning",
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


class OutputLockedError(OutputExistsError):
    """An output store or folder is locked by another parfit run.

    A subclass of :class:`OutputExistsError`: the target exists and is in
    use.  The message names the holder (run id, pid, host, since when) and
    the lock file to remove if that run is gone.
    """


class StoreDamagedError(ParfitError, ValueError):
    """A parfit output store fails verification (missing or undecodable chunks,
    status disagreeing with the parameters, a broken layout).

    ``damaged_blocks`` lists the block indices found damaged (tuples); it
    survives pickling.
    """

    def __init__(self, message, damaged_blocks=()):
        super().__init__(message)
        self.damaged_blocks = [tuple(b) for b in damaged_blocks]

    def __reduce__(self):
        return (type(self), (self.args[0], self.damaged_blocks))


class StaleLockWarning(UserWarning):
    """The lock of a parfit run whose process is gone was taken over (a warning)."""


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
