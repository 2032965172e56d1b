"""Checks of fitter options shared by every parfit fitter.

One helper per kind of option, so that the batched, scipy and astropy
fitters refuse the same mistake with the same words, before any fit is
dispatched.  numpy scalars are accepted wherever Python numbers are
(``numbers.Real`` / ``numbers.Integral``); booleans never count as numbers.
Every helper returns the value normalised to a Python ``float`` or ``int``.
"""

import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "EPS",
    "FitInfoArg",
    "TOLERANCES",
    "check_bool",
    "check_fit_info_names",
    "check_max_nfev",
    "check_positive",
    "check_tolerances",
    "is_integer",
    "is_real",
    "refuse_unknown_kwargs",
]

#: Machine epsilon of float64; tolerances below it switch their test off.
EPS = float(np.finfo(float).eps)

#: The convergence tolerances every parfit fitter takes.
TOLERANCES = ("ftol", "xtol", "gtol")

#: What ``parallel_fit(fit_info=...)`` takes: True, False, one name or a sequence of names.
FitInfoArg = bool | str | Sequence[str]


def is_real(value: object) -> bool:
    """True for a real number (Python or numpy), False for booleans and anything else."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_integer(value: object) -> bool:
    """True for an integer (Python or numpy), False for booleans and anything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_tolerances(values: Mapping[str, Any], what: str) -> dict[str, float]:
    """Check ``ftol``, ``xtol`` and ``gtol`` of ``values`` (a dict); return them as floats.

    Each must be a number in ``[0, 1)``, and at least one must reach machine
    epsilon (below it a convergence test is off).

    Examples
    --------
    >>> check_tolerances({"ftol": 1e-8, "xtol": 0, "gtol": 1e-8}, "BatchedFitter")
    {'ftol': 1e-08, 'xtol': 0.0, 'gtol': 1e-08}
    >>> check_tolerances({"ftol": -1, "xtol": 0, "gtol": 0}, "fitter_kwargs")
    Traceback (most recent call last):
    ...
    parfit.errors.InputError: fitter_kwargs: ftol must be a number in [0, 1); got -1
    """
    out = {}
    for key in TOLERANCES:
        v = values[key]
        if not is_real(v) or not 0 <= v < 1:
            raise InputError(f"{what}: {key} must be a number in [0, 1); got {v!r}")
        out[key] = float(v)
    if all(v < EPS for v in out.values()):
        raise InputError(
            f"{what}: ftol, xtol and gtol cannot all be zero (or below machine epsilon, "
            f"{EPS:.1e}): at least one convergence test must be on"
        )
    return out


def check_max_nfev(
    value: Any, what: str, *, name: str = "max_nfev", allow_none: bool = True
) -> int | None:
    """A positive integer (or None when ``allow_none``), returned as an ``int``."""
    if value is None and allow_none:
        return None
    if not is_integer(value) or value < 1:
        expected = "a positive integer or None" if allow_none else "a positive integer"
        raise InputError(f"{what}: {name} must be {expected}; got {value!r}")
    return int(value)


def check_positive(value: Any, what: str, name: str) -> float:
    """A positive finite number, returned as a ``float``."""
    if not is_real(value) or not 0 < value < np.inf:
        raise InputError(f"{what}: {name} must be a positive number; got {value!r}")
    return float(value)


def check_bool(value: object, what: str, name: str) -> bool:
    """True or False (numpy booleans too), returned as a ``bool``."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{what}: {name} must be True or False; got {value!r}")
    return bool(value)


def refuse_unknown_kwargs(given: Iterable[str], valid: Sequence[str], fitter_name: str) -> None:
    """Raise if ``given`` (the keys of ``fitter_kwargs``) holds a key not in ``valid``.

    Every fitter refuses unknown ``fitter_kwargs`` with this one message.
    """
    unknown = sorted(set(given) - set(valid), key=str)
    if unknown:
        raise InputError(
            f"fitter_kwargs has unknown key(s) {', '.join(map(repr, unknown))} for fitter "
            f"{fitter_name!r}; valid keys are {', '.join(map(repr, valid))}"
        )


def check_fit_info_names(names: FitInfoArg, valid: Sequence[str] | None, fitter_name: str) -> None:
    """Raise if a name of ``names`` is not in ``valid`` (None: any name is accepted).

    ``names`` is True, False, one name or a sequence of names, as
    ``parallel_fit(fit_info=...)`` takes them; only names are checked.
    """
    if names is True or names is False or valid is None:
        return
    if isinstance(names, str):
        names = (names,)
    unknown = list(dict.fromkeys(n for n in names if n not in valid))
    if not unknown:
        return
    listed = ", ".join(map(repr, unknown))
    if not valid:
        raise InputError(
            f"fit_info has unknown name(s) {listed} for fitter {fitter_name!r}; this fitter "
            f"records no fit_info entries, so use fit_info=False"
        )
    raise InputError(
        f"fit_info has unknown name(s) {listed} for fitter {fitter_name!r}; valid names are "
        f"{', '.join(map(repr, valid))}"
    )
