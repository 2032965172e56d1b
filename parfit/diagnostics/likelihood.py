"""What ``parfit inspect`` tells of a run's statistic, TS map and profile likelihoods.

A run with ``statistic=``, ``null=`` or ``profile=`` (the ``likelihood``
section of a config) records them in its store; :func:`likelihood_summary`
reads them back with the maps they added (``ts``, ``sqrt_ts``, ``<p>_lo``,
``<p>_hi``, ``<p>_ul``) and sums those maps up over the OK fits, for
:class:`parfit.diagnostics.summary.Summary`; :func:`likelihood_lines` words
that summary.  Nothing here changes what it reads.
"""

import numpy as np

from parfit.fitters.likelihood import LikelihoodRequest
from parfit.store.reader import read_map, stored_likelihood

__all__ = [
    "STATISTIC_LABELS",
    "TS_LEVELS",
    "stored_request",
    "likelihood_summary",
    "likelihood_lines",
]

#: How the summaries name each statistic.
STATISTIC_LABELS = {"chi2": "chi-square", "cash": "Cash", "cstat": "C-stat"}
#: The TS levels above which fits are counted (3 and 5 sigma for one parameter).
TS_LEVELS = (9, 25)


def stored_request(info, layout):
    """The :class:`~parfit.fitters.likelihood.LikelihoodRequest` a store records.

    Chi-square without TS or profiles for a store that records none.
    """
    return LikelihoodRequest.from_description(stored_likelihood(info, layout))


def likelihood_summary(group, asked, ok):
    """``(ts, profiles)``: the TS map and profile maps of a store over its OK fits ``ok``.

    Parameters
    ----------
    group : zarr.Group
        The store.
    asked : LikelihoodRequest
        What the run computed (:func:`stored_request`).
    ok : ndarray of bool
        The OK fits.

    Returns
    -------
    ts : dict or None
        ``null`` (the values held), ``n`` (OK fits with a finite TS),
        ``median`` and ``max`` (None without any), and ``n_above_9`` and
        ``n_above_25``: fits whose TS exceeds 9 and 25; None when the run
        computed no TS.
    profiles : dict
        For each profiled parameter: ``n_sigma``, ``n_sigma_ul``,
        ``n_intervals`` (OK fits with both ends of the interval found),
        ``median_width``, ``n_upper_limits`` and ``median_upper_limit``
        (None without any).
    """
    ts = None
    if asked.null:
        values = _finite(read_map(group, "ts")[ok])
        ts = {
            "null": dict(asked.null),
            "n": int(values.size),
            "median": _median(values),
            "max": float(values.max()) if values.size else None,
            **{f"n_above_{level}": int(np.count_nonzero(values > level)) for level in TS_LEVELS},
        }
    profiles = {}
    for name in asked.profile:
        lo, hi, ul = (read_map(group, f"{name}_{end}")[ok] for end in ("lo", "hi", "ul"))
        width = _finite(hi - lo)
        limits = _finite(ul)
        profiles[name] = {
            "n_sigma": asked.n_sigma,
            "n_sigma_ul": asked.n_sigma_ul,
            "n_intervals": int(width.size),
            "median_width": _median(width),
            "n_upper_limits": int(limits.size),
            "median_upper_limit": _median(limits),
        }
    return ts, profiles


def likelihood_lines(summary):
    """The lines of a store's summary on its TS map and profiles (none without them)."""
    lines = []
    n_ok = summary.status_counts.get("OK", 0)
    ts = summary.ts
    if ts is not None:
        held = ", ".join(f"{name}={value:g}" for name, value in ts["null"].items())
        lines.append(f"TS against the null hypothesis ({held}), over the {n_ok} OK fits:")
        if ts["n"]:
            above = ", ".join(f"TS > {level}: {ts[f'n_above_{level}']}" for level in TS_LEVELS)
            lines.append(f"  median {ts['median']:.4g}, max {ts['max']:.4g}; {above}")
        else:
            lines.append("  no finite TS")
    for name, found in summary.profiles.items():
        unit = summary.units.get(name)
        unit = f" {unit}" if unit not in (None, "") else ""
        width = (
            f" (median width {found['median_width']:.4g}{unit})"
            if found["median_width"] is not None
            else ""
        )
        limit = (
            f" (median {found['median_upper_limit']:.4g}{unit})"
            if found["median_upper_limit"] is not None
            else ""
        )
        lines.append(
            f"profile of {name}: {found['n_sigma']:g}-sigma intervals for "
            f"{found['n_intervals']} of the {n_ok} OK fits{width}; {found['n_sigma_ul']:g}-sigma "
            f"upper limits for {found['n_upper_limits']}{limit}"
        )
    return lines


def _finite(values):
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def _median(values):
    return float(np.median(values)) if values.size else None
