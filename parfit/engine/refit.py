"""Neighbour refits: fits that failed, are flagged or stand out, refitted from their neighbours.

After a run's first pass, :func:`run_passes` refits, pass after pass:

* fits that failed (``FIT_ERROR``, ``NOT_CONVERGED``, ``BAD_START``,
  ``NONFINITE``, ``DEGENERATE``) or ended on a bound (flag ``AT_BOUND``);
* fits whose statistic is an outlier: more than ``outlier`` times the
  median of their successful neighbours' (chi-square and C-stat, which
  measure goodness of fit; not Cash, whose value holds a term of the data);

each from the median of its successful neighbours' parameters (the
8-connected neighbours of a map, ``3**d - 1`` of a d-dimensional one).
The better of the old and the new fit is kept: a success beats a failure,
and of two successes the lower statistic wins.

Passes are global and synchronous: a pass computes every start from the
maps the previous pass left, fits all of them, then merges, so the result
depends on nothing but the maps, never on blocks, chunking, schedulers or
workers.  After the first pass, a fit is refitted again only when one of
its neighbours changed (else its start would be the same).  Passes stop
when one improves nothing, nothing is left to refit, or after
``max_passes``.

Nothing here imports dask: a pass's fits are run by the caller.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from parfit.errors import InputError, InputTypeError
from parfit.status import Flag, Status

__all__ = [
    "REFIT_FIELDS",
    "REFIT_METHODS",
    "REFIT_STATUSES",
    "RefitOptions",
    "check_refit",
    "merge",
    "neighbour_starts",
    "refit_candidates",
    "run_passes",
]

#: Accepted values of ``refit=`` (None: no refit).
REFIT_METHODS = ("neighbours",)

#: Statuses of fits that a neighbour refit retries.
REFIT_STATUSES = (
    Status.FIT_ERROR,
    Status.NOT_CONVERGED,
    Status.BAD_START,
    Status.NONFINITE,
    Status.DEGENERATE,
)

#: The maps a refit adds: times each fit was refitted, and the pass whose
#: solution it holds (0: the first pass, from the run's own start).
REFIT_FIELDS = ("refits", "origin")

_DEFAULTS = {"max_passes": 5, "outlier": 1.5}

#: Pixels handled at a time when looking for candidates (bounds the memory).
_SLICE = 1 << 18


@dataclass(frozen=True)
class RefitOptions:
    """How neighbour refits run (``refit=`` and ``refit_options=`` of ``parallel_fit``).

    Attributes
    ----------
    method : str
        ``"neighbours"``.
    max_passes : int
        Most refit passes after the first fit (default 5).
    outlier : float
        A successful fit whose statistic exceeds this many times the median
        of its successful neighbours' is refitted (default 1.5); ``inf``
        refits only failed and flagged fits.
    """

    method: str = "neighbours"
    max_passes: int = _DEFAULTS["max_passes"]
    outlier: float = _DEFAULTS["outlier"]

    def describe(self) -> dict[str, Any]:
        """The options as JSON-able values (recorded in a store's options)."""
        return {
            "method": self.method,
            "max_passes": self.max_passes,
            "outlier": None if math.isinf(self.outlier) else self.outlier,
        }


def check_refit(refit: Any, refit_options: Any) -> RefitOptions | None:
    """``refit`` and ``refit_options`` checked: the :class:`RefitOptions`, or None.

    Examples
    --------
    >>> check_refit("neighbours", {"max_passes": 3})
    RefitOptions(method='neighbours', max_passes=3, outlier=1.5)
    >>> check_refit("nearest", None)
    Traceback (most recent call last):
    ...
    parfit.errors.InputError: refit must be None or 'neighbours'; got 'nearest'
    """
    if refit is None:
        if refit_options is not None:
            raise InputError("refit_options needs refit='neighbours'")
        return None
    if not isinstance(refit, str) or refit not in REFIT_METHODS:
        raise InputError(
            f"refit must be None or {' or '.join(map(repr, REFIT_METHODS))}; got {refit!r}"
        )
    options = dict(_DEFAULTS)
    if refit_options is not None:
        if not isinstance(refit_options, dict):
            raise InputTypeError(
                f"refit_options must be a dict with keys 'max_passes' and 'outlier'; got "
                f"{type(refit_options).__name__}"
            )
        unknown = sorted(set(refit_options) - set(_DEFAULTS))
        if unknown:
            raise InputError(
                f"refit_options: unknown key(s) {', '.join(map(repr, unknown))}; expected "
                f"'max_passes' and 'outlier'"
            )
        options.update(refit_options)
    passes = options["max_passes"]
    if (
        isinstance(passes, (bool, np.bool_))
        or not isinstance(passes, numbers.Integral)
        or passes < 1
    ):
        raise InputError(f"refit_options['max_passes'] must be a positive integer; got {passes!r}")
    outlier = options["outlier"]
    if outlier is None:
        outlier = math.inf
    if (
        isinstance(outlier, (bool, np.bool_))
        or not isinstance(outlier, numbers.Real)
        or not outlier > 1
    ):
        raise InputError(
            f"refit_options['outlier'] must be a number above 1 (a ratio of statistics) or "
            f"None; got {outlier!r}"
        )
    return RefitOptions(method=refit, max_passes=int(passes), outlier=float(outlier))


def _offsets(ndim: int) -> list[tuple[int, ...]]:
    return [d for d in itertools.product((-1, 0, 1), repeat=ndim) if any(d)]


def _neighbours(flat: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the neighbours of ``flat`` (``(n_offsets, n)``) and which exist."""
    index = np.unravel_index(flat, shape)
    offsets = _offsets(len(shape))
    out = np.zeros((len(offsets), len(flat)), dtype=np.int64)
    inside = np.ones((len(offsets), len(flat)), dtype=bool)
    for k, d in enumerate(offsets):
        moved = []
        for axis, (i, step) in enumerate(zip(index, d)):
            j = i + step
            inside[k] &= (j >= 0) & (j < shape[axis])
            moved.append(np.clip(j, 0, shape[axis] - 1))
        out[k] = np.ravel_multi_index(tuple(moved), shape)
    return out, inside


def refit_candidates(
    maps: MutableMapping[str, Any],
    options: RefitOptions,
    *,
    goodness: bool,
    changed: np.ndarray | None = None,
) -> np.ndarray:
    """Bool map: the fits a pass refits.

    Failed (:data:`REFIT_STATUSES`) and ``AT_BOUND`` fits, and with
    ``goodness`` (a statistic that measures goodness of fit) successful fits
    whose statistic exceeds ``options.outlier`` times their successful
    neighbours' median; each needs a successful neighbour.  With
    ``changed`` (the fits the previous pass replaced) only fits next to one.
    """
    status = np.asarray(maps["status"])
    shape = status.shape
    ok = (status == Status.OK).reshape(-1)
    flags = np.asarray(maps["flags"]).reshape(-1)
    stat = np.asarray(maps["statistic"], dtype=np.float64).reshape(-1)
    bad = np.isin(status.reshape(-1), REFIT_STATUSES) | (ok & (flags & Flag.AT_BOUND != 0))
    was_changed = None if changed is None else np.asarray(changed).reshape(-1)
    outliers = goodness and math.isfinite(options.outlier)
    todo = np.zeros(status.size, dtype=bool)
    for start in range(0, status.size, _SLICE):  # bounded memory on large maps
        flat = np.arange(start, min(start + _SLICE, status.size))
        nb, inside = _neighbours(flat, shape)
        ok_nb = inside & ok[nb]
        part = bad[flat] & ok_nb.any(axis=0)
        if outliers:
            enough = ok_nb.sum(axis=0) >= 3
            med = np.full(len(flat), np.nan)
            with np.errstate(invalid="ignore"):
                if enough.any():
                    stats = np.where(ok_nb[:, enough], stat[nb[:, enough]], np.nan)
                    med[enough] = np.nanmedian(stats, axis=0)
                part |= ok[flat] & enough & (med > 0) & (stat[flat] > options.outlier * med)
        if was_changed is not None:
            part &= (inside & was_changed[nb]).any(axis=0)
        todo[flat] = part
    return todo.reshape(shape)


def neighbour_starts(
    maps: MutableMapping[str, Any],
    names: list[str],
    todo: np.ndarray,
    lower: list[Any],
    upper: list[Any],
) -> dict[str, np.ndarray]:
    """Per-pixel starts of a pass: the median of the successful neighbours' values.

    ``{name: map}``, NaN outside ``todo``; clipped into each parameter's
    bounds (``lower``/``upper``: scalars or maps).
    """
    status = np.asarray(maps["status"])
    shape = status.shape
    ok = (status == Status.OK).reshape(-1)
    flat = np.flatnonzero(np.asarray(todo).reshape(-1))
    nb, inside = _neighbours(flat, shape)
    use = inside & ok[nb]
    starts = {}
    for name, lo, hi in zip(names, lower, upper, strict=True):
        values = np.asarray(maps[name], dtype=np.float64).reshape(-1)
        gathered = np.where(use, values[nb], np.nan)
        out = np.full(status.size, np.nan)
        with np.errstate(invalid="ignore"):
            median = np.nanmedian(gathered, axis=0) if len(flat) else np.zeros(0)
        lo_at = np.broadcast_to(np.asarray(lo, dtype=np.float64), shape).reshape(-1)[flat]
        hi_at = np.broadcast_to(np.asarray(hi, dtype=np.float64), shape).reshape(-1)[flat]
        out[flat] = np.clip(median, lo_at, hi_at)
        starts[name] = out.reshape(shape)
    return starts


def merge(
    maps: MutableMapping[str, Any], new: MutableMapping[str, Any], todo: np.ndarray, pass_no: int
) -> tuple[np.ndarray, dict[str, int]]:
    """Keep the better of the old and new fit of every pixel of ``todo``, in ``maps``.

    Better: a success beats anything else; of two successes, the lower
    statistic (by more than 1e-12 of it).  Every refitted pixel counts one
    more in ``maps["refits"]`` and its ``nfev`` adds the new fit's; a
    replaced pixel takes every field of the new fit and ``origin = pass_no``.

    Returns the bool map of replaced pixels, and counts: ``refitted``,
    ``improved`` (replaced), ``rescued`` (a failure replaced by a success).
    """
    todo = np.asarray(todo, dtype=bool)
    old_status = np.asarray(maps["status"])
    new_status = np.asarray(new["status"])
    old_ok = old_status == Status.OK
    new_ok = new_status == Status.OK
    old_stat = np.asarray(maps["statistic"], dtype=np.float64)
    new_stat = np.asarray(new["statistic"], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        lower = new_stat < old_stat - 1e-12 * np.abs(old_stat)
    better = todo & new_ok & (~old_ok | lower)
    nfev = np.asarray(maps["nfev"]) + np.where(todo, np.maximum(np.asarray(new["nfev"]), 0), 0)
    for name in list(maps):
        if name in REFIT_FIELDS or name == "reported" or name not in new:
            continue  # ``reported``: the diagnostics folders are those of the first pass
        target = np.array(maps[name], copy=True)
        target[better] = np.asarray(new[name])[better]
        maps[name] = target
    maps["nfev"] = nfev.astype(np.int32)
    maps["refits"] = (np.asarray(maps["refits"]) + todo).astype(np.int16)
    origin = np.array(maps["origin"], dtype=np.int16, copy=True)
    origin[better] = pass_no
    maps["origin"] = origin
    counts = {
        "refitted": int(todo.sum()),
        "improved": int(better.sum()),
        "rescued": int((better & ~old_ok).sum()),
    }
    return better, counts


def run_passes(
    maps: MutableMapping[str, Any],
    names: list[str],
    lower: list[Any],
    upper: list[Any],
    options: RefitOptions,
    fit: Callable[[np.ndarray, dict[str, np.ndarray], int], MutableMapping[str, Any]],
    *,
    goodness: bool,
    first_pass: int = 1,
    changed: np.ndarray | None = None,
    done: Callable[[int, np.ndarray, np.ndarray, dict[str, int]], None] | None = None,
) -> list[dict[str, int]]:
    """Refit passes on ``maps`` (in place) until nothing improves or ``max_passes``.

    ``fit(todo, starts, pass_no)`` fits the pixels of the bool map ``todo``
    from ``starts`` (``{name: map}``) and returns their maps (other pixels
    are ignored).  ``done(pass_no, todo, replaced, counts)``, if given, is called
    after each pass is merged (a store records it there).  ``first_pass``
    and ``changed`` resume a run whose earlier passes are in ``maps``.

    Returns one ``{"pass", "refitted", "improved", "rescued"}`` per pass.
    """
    if "refits" not in maps:
        shape = np.shape(maps["status"])
        maps["refits"] = np.zeros(shape, dtype=np.int16)
        maps["origin"] = np.zeros(shape, dtype=np.int16)
    report = []
    for pass_no in range(first_pass, options.max_passes + 1):
        todo = refit_candidates(maps, options, goodness=goodness, changed=changed)
        if not todo.any():
            break
        starts = neighbour_starts(maps, names, todo, lower, upper)
        new = fit(todo, starts, pass_no)
        changed, counts = merge(maps, new, todo, pass_no)
        report.append({"pass": pass_no, **counts})
        if done is not None:
            done(pass_no, todo, changed, counts)
        if not counts["improved"]:
            break
    return report
