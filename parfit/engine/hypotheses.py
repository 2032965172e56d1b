"""The checks of ``statistic=``, ``null=``, ``profile=``, ``n_sigma=`` and ``n_sigma_ul=``.

:func:`check_likelihood_args` checks what needs nothing else (before the
data are read); :func:`bind_likelihood` checks the rest against the model,
the fitter and the data of a built :class:`~parfit.engine.request.FitRequest`
and returns it with its :class:`~parfit.fitters.likelihood.LikelihoodRequest`.
Both run before anything is dispatched.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from parfit.engine.request import FitRequest
from parfit.errors import InputError, InputTypeError
from parfit.fitters.likelihood import LikelihoodRequest
from parfit.fitters.statistics import check_statistic, is_likelihood

__all__ = ["bind_likelihood", "check_likelihood_args", "name_problems"]


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be a positive number; got {value!r}")
    if not (math.isfinite(float(value)) and float(value) > 0):
        raise InputError(f"{name} must be a positive finite number; got {value!r}")
    return float(value)


def check_likelihood_args(
    statistic: Any, null: Any, profile: Any, n_sigma: Any, n_sigma_ul: Any
) -> LikelihoodRequest:
    """The arguments checked on their own; names are checked by :func:`bind_likelihood`.

    Examples
    --------
    >>> check_likelihood_args("cash", {"amplitude": 0}, "amplitude", 1, 2).fields
    ('ts', 'sqrt_ts', 'amplitude_lo', 'amplitude_hi', 'amplitude_ul')
    >>> check_likelihood_args("chi2", {"amplitude": "zero"}, None, 1, 2)
    Traceback (most recent call last):
    ...
    parfit.errors.InputTypeError: null['amplitude'] must be a finite number (the parameter's
    value under the null hypothesis); got 'zero'
    """
    name = check_statistic(statistic)
    held: list[tuple[str, float]] = []
    if null is not None:
        if not isinstance(null, Mapping) or not null:
            raise InputTypeError(
                f"null must be None or a non-empty mapping of parameter names to values, such "
                f"as {{'amplitude_0': 0.0}}; got {null!r}"
            )
        for key, value in null.items():
            if not isinstance(key, str):
                raise InputTypeError(f"null: parameter names must be strings; got {key!r}")
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise InputTypeError(
                    f"null[{key!r}] must be a finite number (the parameter's value under the "
                    f"null hypothesis); got {value!r}"
                )
            if not math.isfinite(float(value)):
                raise InputError(f"null[{key!r}] must be finite; got {value!r}")
            held.append((key, float(value)))
    names: tuple[str, ...] = ()
    if profile is not None:
        try:
            names = (profile,) if isinstance(profile, str) else tuple(profile)
        except TypeError:
            names = ()
        if not names or not all(isinstance(n, str) for n in names):
            raise InputTypeError(
                f"profile must be None, a parameter name or a sequence of parameter names; "
                f"got {profile!r}"
            )
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise InputError(f"profile names {', '.join(map(repr, repeated))} more than once")
    return LikelihoodRequest(
        statistic=name,
        null=tuple(held),
        profile=names,
        n_sigma=_positive(n_sigma, "n_sigma"),
        n_sigma_ul=_positive(n_sigma_ul, "n_sigma_ul"),
    )


def name_problems(
    asked: LikelihoodRequest, param_names: Any, free_mask: Any
) -> list[tuple[str, int, str]]:
    """``(argument, position, message)`` of each ``null`` or ``profile`` name that is no free
    parameter of a model with ``param_names`` and ``free_mask``.

    ``argument`` is ``"null"`` or ``"profile"``, ``position`` the name's place
    in it.  :func:`bind_likelihood` raises the first; a config reports each
    at its key.

    Examples
    --------
    >>> asked = LikelihoodRequest(null=(("amp", 0.0),), profile=("amplitude", "mean"))
    >>> for problem in name_problems(asked, ["amplitude", "mean"], [True, False]):
    ...     print(problem)
    ('null', 0, "'amp' is not a parameter of the model; its parameters are 'amplitude', 'mean'")
    ('profile', 1, "'mean' is fixed or tied; only free parameters can be tested or profiled")
    """
    names = list(param_names)
    free = dict(zip(names, np.asarray(free_mask, dtype=bool)))
    problems = []
    for what, used in (("null", [n for n, _ in asked.null]), ("profile", asked.profile)):
        for position, name in enumerate(used):
            if name not in free:
                problems.append(
                    (
                        what,
                        position,
                        f"{name!r} is not a parameter of the model; its parameters are "
                        f"{', '.join(map(repr, names))}",
                    )
                )
            elif not free[name]:
                problems.append(
                    (
                        what,
                        position,
                        f"{name!r} is fixed or tied; only free parameters can be tested or "
                        f"profiled",
                    )
                )
    return problems


def bind_likelihood(request: FitRequest, asked: LikelihoodRequest) -> FitRequest:
    """``request`` with ``asked``, after checking it against the model, fitter and data.

    Raises
    ------
    InputError
        A ``null`` or ``profile`` name that is not a free parameter; a null
        value outside the parameter's bounds; a fitter that cannot minimise
        the statistic or compute profiles; for ``"cash"``/``"cstat"``:
        weights, or data that are negative or not finite where not masked.
    """
    request.fitter.check_statistic(asked.statistic)
    problems = (
        name_problems(asked, request.param_names, _free_mask(request.model))
        if asked.null or asked.profile
        else []
    )
    if problems:
        what, _, message = problems[0]
        raise InputError(f"{what}: {message}")
    bounds = {entry[0]: entry[2:4] for entry in request.parameters}
    for name, value in asked.null:
        lower, upper = bounds[name]
        if np.ndim(lower) == 0 and np.ndim(upper) == 0 and not lower <= value <= upper:
            raise InputError(
                f"null[{name!r}] = {value!r} is outside the parameter's bounds "
                f"[{lower!r}, {upper!r}]; the null hypothesis must be a value it can take"
            )
    if is_likelihood(asked.statistic):
        _check_counts(request, asked.statistic)
    return dataclasses.replace(request, likelihood=asked)


def _free_mask(model: Any) -> list[bool]:
    """Per parameter: neither fixed nor tied (a parfit model, or an astropy one)."""
    mask = getattr(model, "free_mask", None)
    if mask is not None:
        return [bool(v) for v in np.asarray(mask, dtype=bool)]
    return [not (model.fixed[n] or model.tied[n]) for n in model.param_names]


def _check_counts(request: FitRequest, statistic: str) -> None:
    """Refuse weights, and negative or non-finite data where not masked (Poisson counts)."""
    cube = request.cube
    if cube.weights is not None:
        raise InputError(
            f"weights cannot be used with statistic={statistic!r}: the Poisson likelihood "
            f"of counts has no weights (the variance is the model itself); leave weights "
            f"out, or use mask= to leave samples out"
        )
    data, mask = cube.data, cube.mask
    lazy = hasattr(data, "dask") or hasattr(mask, "dask")
    with np.errstate(invalid="ignore"):
        used = True if mask is None else (mask == 0)
        if lazy:
            import dask
            import dask.array as da

            used_arr = da.asarray(used) if mask is not None else True
            negative, nonfinite = dask.compute(
                da.count_nonzero((da.asarray(data) < 0) & used_arr),
                da.count_nonzero(~da.isfinite(da.asarray(data)) & used_arr),
            )
        else:
            values = np.asarray(data)
            negative = np.count_nonzero((values < 0) & used)
            nonfinite = np.count_nonzero(~np.isfinite(values) & used)
    if negative:
        raise InputError(
            f"data holds {int(negative)} negative value(s); statistic={statistic!r} fits "
            f"counts, which are never negative (subtract nothing from counts: fit the "
            f"background as part of the model, or use statistic='chi2')"
        )
    if nonfinite:
        raise InputError(
            f"data holds {int(nonfinite)} NaN or infinite value(s); statistic={statistic!r} "
            f"fits counts, which are finite: pass mask= (True where a sample is left out) "
            f"to leave such samples out"
        )
