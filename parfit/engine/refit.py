"""Neighbour refits: fits that failed, are flagged or stand out, refitted from their neighbours.

After a run's first pass, :func:`run_passes` refits, pass after pass:

* fits that failed (``FIT_ERROR``, ``NOT_CONVERGED``, ``BAD_START``,
  ``NONFINITE``, ``DEGENERATE``) or ended on a bound (flag ``AT_BOUND``);
* fits whose statistic is an outlier: more than ``outlier`` times the
  lower quartile of their successful neighbours' (chi-square and C-stat, which
  measure goodness of fit; not Cash, whose value holds a term of the data);

each from the median of its good neighbours' parameters: among the
8-connected neighbours (``3**d - 1`` of a d-dimensional map), those that
succeeded off the bounds with a statistic within ``outlier`` times the
lowest of them (so that a pixel between a region fitted well and one
fitted badly starts from the good side).
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

_DEFAULTS: dict[str, Any] = {"max_passes": 20, "outlier": 1.5}

#: A new fit replaces a successful one whose statistic it lowers by more than this fraction.
_IMPROVEMENT = 1e-6
_TINY = 1e-300

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
        Most refit passes after the first fit (default 20).  A solution
        spreads by one pixel per pass, so a region that every fit missed
        needs about as many passes as it is wide; a pass refits only the
        pixels next to one the previous pass changed.
    outlier : float
        A successful fit whose statistic exceeds this many times the lower
        quartile of its successful neighbours' is refitted (default 1.5); good
        neighbours, which give the starts, are those within this factor of
        the lowest.  ``None`` (stored as ``inf``) refits only failed and
        flagged fits.
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
        or not float(outlier) > 1
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


def _good_neighbours(
    maps: MutableMapping[str, Any],
    flat: np.ndarray,
    options: RefitOptions,
    goodness: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The neighbours of ``flat``, whether each exists, and whether each is a good start.

    A good neighbour succeeded without reaching a bound and, with a
    ``goodness`` statistic, has one within ``options.outlier`` times the
    lowest among the pixel's successful neighbours (so that a pixel between
    a good and a bad region starts from the good side).
    """
    status = np.asarray(maps["status"])
    ok = (status == Status.OK).reshape(-1)
    flags = np.asarray(maps["flags"]).reshape(-1)
    stat = np.asarray(maps["statistic"], dtype=np.float64).reshape(-1)
    nb, inside = _neighbours(flat, status.shape)
    ok_nb = inside & ok[nb] & (flags[nb] & Flag.AT_BOUND == 0)
    if goodness and math.isfinite(options.outlier):
        stats = np.where(ok_nb, stat[nb], np.inf)
        best = stats.min(axis=0)
        with np.errstate(invalid="ignore"):
            ok_nb &= stats <= options.outlier * np.maximum(best, 0.0) + _TINY
    return nb, inside, ok_nb


def _lower_quartile(values: np.ndarray) -> np.ndarray:
    """The 25th percentile of every column of ``values`` over its finite entries (NaN if none).

    As :func:`numpy.nanpercentile` (linear interpolation), without its loop over columns.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.array([[1.0, np.nan, 4.0], [2.0, np.nan, np.nan], [3.0, np.nan, np.nan]])
    >>> _lower_quartile(v)
    array([1.5, nan, 4. ])
    """
    ordered = np.sort(values, axis=0)  # NaN last
    count = np.isfinite(values).sum(axis=0)
    position = 0.25 * np.maximum(count - 1, 0)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, np.maximum(count - 1, 0))
    low = np.take_along_axis(ordered, below[None, :], axis=0)[0]
    high = np.take_along_axis(ordered, above[None, :], axis=0)[0]
    out = low + (position - below) * (high - low)
    return np.where(count > 0, out, np.nan)


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
    whose statistic exceeds ``options.outlier`` times the lower quartile of
    their successful neighbours'; each needs a good neighbour to start from (see
    :func:`neighbour_starts`).  With ``changed`` (the fits the previous
    pass replaced) only fits next to one.
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
        nb, inside, good = _good_neighbours(maps, flat, options, goodness)
        part = bad[flat]
        if outliers:
            # Against the lower quartile of the successful neighbours' statistics:
            # the lowest alone is an extreme of up to eight noisy values, against
            # which a quarter of good fits would look like outliers.
            succeeded = inside & ok[nb]
            reference = _lower_quartile(np.where(succeeded, stat[nb], np.nan))
            with np.errstate(invalid="ignore"):
                high = stat[flat] > options.outlier * np.maximum(reference, 0.0) + _TINY
            part |= ok[flat] & high
        part &= good.any(axis=0)
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
    options: RefitOptions,
    *,
    goodness: bool,
    how: str = "median",
) -> dict[str, np.ndarray]:
    """Per-pixel starts of a pass: the median of the good neighbours' values.

    Good neighbours succeeded off the bounds and, with a ``goodness``
    statistic, fit within ``options.outlier`` times the best of them.  With
    ``how="best"``, the values of the good neighbour with the lowest
    statistic instead (the first in raster order among equals).
    ``{name: map}``, NaN outside ``todo``; clipped into each parameter's
    bounds (``lower``/``upper``: scalars or maps).
    """
    shape = np.shape(maps["status"])
    size = math.prod(shape)
    flat = np.flatnonzero(np.asarray(todo).reshape(-1))
    nb, _, use = _good_neighbours(maps, flat, options, goodness)
    stat = np.asarray(maps["statistic"], dtype=np.float64).reshape(-1)
    best = np.argmin(np.where(use, stat[nb], np.inf), axis=0) if len(flat) else np.zeros(0, int)
    starts = {}
    for name, lo, hi in zip(names, lower, upper, strict=True):
        values = np.asarray(maps[name], dtype=np.float64).reshape(-1)
        gathered = np.where(use, values[nb], np.nan)
        out = np.full(size, np.nan)
        with np.errstate(invalid="ignore"):
            if how == "best":
                value = np.take_along_axis(gathered, best[None, :], axis=0)[0]
            else:
                value = np.nanmedian(gathered, axis=0) if len(flat) else np.zeros(0)
        lo_at = np.broadcast_to(np.asarray(lo, dtype=np.float64), shape).reshape(-1)[flat]
        hi_at = np.broadcast_to(np.asarray(hi, dtype=np.float64), shape).reshape(-1)[flat]
        out[flat] = np.clip(value, lo_at, hi_at)
        starts[name] = out.reshape(shape)
    return starts


def _replaces(old: MutableMapping[str, Any], new: MutableMapping[str, Any]) -> np.ndarray:
    """Where ``new`` is a better fit than ``old`` (see :func:`merge`)."""
    old_ok = np.asarray(old["status"]) == Status.OK
    new_ok = np.asarray(new["status"]) == Status.OK
    old_stat = np.asarray(old["statistic"], dtype=np.float64)
    new_stat = np.asarray(new["statistic"], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        lower = new_stat < old_stat - _IMPROVEMENT * np.abs(old_stat) - _TINY
    return np.asarray(new_ok & (~old_ok | lower))


def _combine(
    first: MutableMapping[str, Any],
    second: MutableMapping[str, Any],
    where: np.ndarray,
    keep: tuple[str, ...] = (),
) -> tuple[dict[str, Any], np.ndarray]:
    """``first``'s fields, with ``second``'s where (in ``where``) it is the better fit.

    ``nfev`` adds ``second``'s over all of ``where`` (work spent, kept or
    not); the fields in ``keep``, and those ``second`` lacks, stay
    ``first``'s.  Returns the fields and the bool map of the fits taken.
    """
    take = np.asarray(where, dtype=bool) & _replaces(first, second)
    out: dict[str, Any] = {}
    for name, values in first.items():
        values = np.asarray(values)
        if name == "nfev":
            spent = np.where(where, np.maximum(np.asarray(second[name]), 0), 0)
            values = (values + spent).astype(values.dtype)
        elif name in second and name not in keep:
            values = values.copy()
            values[take] = np.asarray(second[name])[take]
        out[name] = values
    return out, take


def merge(
    maps: MutableMapping[str, Any], new: MutableMapping[str, Any], todo: np.ndarray, pass_no: int
) -> tuple[np.ndarray, dict[str, int]]:
    """Keep the better of the old and new fit of every pixel of ``todo``, in ``maps``.

    Better: a success beats anything else; of two successes, the lower
    statistic, by more than a millionth of it (the same minimum reached
    again from another start is no improvement).  Every refitted pixel counts one
    more in ``maps["refits"]`` and its ``nfev`` adds the new fit's; a
    replaced pixel takes every field of the new fit and ``origin = pass_no``.

    Returns the bool map of replaced pixels, and counts: ``refitted``,
    ``improved`` (replaced), ``rescued`` (a failure replaced by a success).
    """
    todo = np.asarray(todo, dtype=bool)
    old_ok = np.asarray(maps["status"]) == Status.OK
    # ``reported``: the diagnostics folders are those of the first pass.
    combined, better = _combine(maps, new, todo, keep=REFIT_FIELDS + ("reported",))
    maps.update(combined)
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
    are ignored); a pass calls it twice: from the median of the good
    neighbours, then, where that gave nothing better and the start differs,
    from the best neighbour's values, and keeps the better.
    ``done(pass_no, todo, replaced, counts)``, if given, is called after
    each pass is merged (a store records it there).  ``first_pass``
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
        starts = neighbour_starts(maps, names, todo, lower, upper, options, goodness=goodness)
        new = fit(todo, starts, pass_no)
        # Where the median gave nothing better, a second start: the best
        # neighbour's own solution.  Across a steep gradient the median of the
        # neighbours lies between their solutions, far from each; the best one
        # may lie close.
        again = np.asarray(todo) & ~_replaces(maps, new)
        best = neighbour_starts(
            maps, names, again, lower, upper, options, goodness=goodness, how="best"
        )
        differs = np.zeros(np.shape(todo), dtype=bool)
        for name in names:
            differs |= again & ~(best[name] == starts[name])
        if differs.any():
            new, _ = _combine(new, fit(differs, best, pass_no), differs)
        changed, counts = merge(maps, new, todo, pass_no)
        report.append({"pass": pass_no, **counts})
        if done is not None:
            done(pass_no, todo, changed, counts)
        if not counts["improved"]:
            break
    return report
