"""What ``parfit inspect`` tells of a run's strategy and of a per-pixel model selection.

A run with ``initial="mean"``, ``min_snr=``, ``order_components=`` or
``refit="neighbours"`` records them in its store's options, and a refit run
adds the maps ``refits`` (times each fit was refitted) and ``origin`` (the
pass whose solution it holds) and a report per pass;
:func:`strategy_summary` reads them back and :func:`strategy_lines` words
them.  A model selection's output folder holds ``candidate_<k>.zarr`` (each
candidate's store) and ``selection.zarr`` (the choice: ``selected``,
``delta``, ``criteria``); :func:`read_selection_maps` reads the choice,
:func:`selection_summary` sums it up and :func:`selection_lines` words it.
Nothing here changes what it reads (and nothing imports
:mod:`parfit.selection`, which sits above the engine).
"""

import json
from pathlib import Path

import numpy as np

from parfit.diagnostics.paths import map_dims
from parfit.store.layout import ATTRS_KEY, SELECTION_STORE, candidate_store
from parfit.store.reader import stored_options, stored_refit_passes, stored_start_model

__all__ = [
    "strategy_summary",
    "strategy_lines",
    "read_selection_maps",
    "selection_summary",
    "selection_lines",
]

#: The maps of a neighbour refit.
_REFIT_MAPS = ("refits", "origin")


def strategy_summary(group, info, layout):
    """``(starts, refit)``: what a store records of its run's starts and neighbour refits.

    Parameters
    ----------
    group : zarr.Group
        The store.
    info : dict
        Its attributes (:func:`parfit.store.open_maps_store`).
    layout : str
        ``"streamed"`` or ``"xarray"``.

    Returns
    -------
    starts : dict
        ``initial`` (``"model"``, ``"guess"`` or ``"mean"``), ``min_snr``
        (None if not used) and ``order_components`` (bool) of a streamed
        store; ``{}`` for a store that does not record them.
    refit : dict or None
        Where the store holds the maps of a neighbour refit: ``max_passes``
        and ``outlier`` (None where unknown), ``passes`` (one report per
        pass: ``pass``, ``refitted``, ``improved``, ``rescued``),
        ``n_refitted`` (fits refitted at least once), ``n_refits`` (refits
        in all), ``n_from_neighbours`` (fits holding a solution of a refit
        pass, ``origin > 0``) and ``origin_counts`` (fits per pass whose
        solution they hold, ``{pass: count}``, 0 the first pass).
    """
    options = stored_options(info) if layout == "streamed" else {}
    starts = {}
    if options:
        starts = {
            "initial": options.get("initial", "model"),
            "min_snr": options.get("min_snr"),
            "order_components": bool(options.get("order_components")),
        }
    arrays = set(group.array_keys())
    if not set(_REFIT_MAPS) <= arrays:
        return starts, None
    refits = np.asarray(group["refits"][...])
    origin = np.asarray(group["origin"][...])
    described = options.get("refit") if isinstance(options.get("refit"), dict) else {}
    codes, counts = np.unique(origin, return_counts=True)
    refit = {
        "max_passes": described.get("max_passes"),
        "outlier": described.get("outlier"),
        "passes": stored_refit_passes(info),
        "n_refitted": int(np.count_nonzero(refits > 0)),
        "n_refits": int(refits.sum()),
        "n_from_neighbours": int(np.count_nonzero(origin > 0)),
        "origin_counts": {int(c): int(n) for c, n in zip(codes, counts)},
    }
    return starts, refit


def strategy_lines(summary):
    """The lines of a store's summary on its starts and neighbour refits (none by default)."""
    lines = []
    starts = summary.starts or {}
    parts = []
    if starts.get("initial") == "mean":
        parts.append("initial mean (every fit from a fit of the mean spectrum)")
    if starts.get("min_snr") is not None:
        n = summary.status_counts.get("SKIPPED", 0)
        parts.append(f"min_snr {starts['min_snr']:g} ({n} pixels skipped)")
    if starts.get("order_components"):
        parts.append("components ordered by position")
    if parts:
        lines.append("starts: " + "; ".join(parts))
    refit = summary.refit
    if refit is None:
        return lines
    limits = []
    if refit["max_passes"] is not None:
        limits.append(f"at most {refit['max_passes']} passes")
    if refit.get("max_passes") is not None or refit.get("outlier") is not None:
        limits.append(
            "outliers not refitted" if refit["outlier"] is None else f"outlier {refit['outlier']:g}"
        )
    how = f" ({', '.join(limits)})" if limits else ""
    lines.append(
        f"neighbour refits{how}: {len(refit['passes'])} passes, {refit['n_refitted']} fits "
        f"refitted ({refit['n_refits']} refits), {refit['n_from_neighbours']} hold a solution "
        f"found from their neighbours"
    )
    for report in refit["passes"]:
        lines.append(
            f"  pass {report['pass']:>2}: {report['refitted']:>8d} refitted "
            f"{report['improved']:>8d} improved {report['rescued']:>8d} rescued from a failure"
        )
    return lines


def read_selection_maps(folder):
    """The choice of a model selection's output folder (its ``selection.zarr``).

    Returns
    -------
    dict
        ``selected`` (int16, -1 where no candidate succeeded), ``delta``
        (the runner-up's criterion minus the chosen one's), ``status`` and
        ``flags`` (of the chosen fits), ``dims`` (of the maps, or None),
        ``criterion``, ``threshold``, ``n_free`` (per candidate) and
        ``models`` (each candidate described in words: the expression of the
        starting model its store records, such as ``Gaussian1D + Const1D``).
    """
    import zarr

    group = zarr.open_group(str(Path(folder) / SELECTION_STORE), mode="r")
    attrs = dict(group.attrs)
    models = attrs.get("candidates")
    models = json.loads(models) if isinstance(models, str) else list(models or [])
    for k in range(len(models)):
        try:
            info = dict(zarr.open_group(str(Path(folder) / candidate_store(k)), mode="r").attrs)
        except Exception:  # noqa: BLE001 - the candidate's own summary says what is wrong
            continue
        words = _model_words(stored_start_model(info.get(ATTRS_KEY, info)))
        models[k] = words or models[k]
    return {
        "selected": np.asarray(group["selected"][...], dtype=np.int16),
        "delta": np.asarray(group["delta"][...], dtype=np.float64),
        "status": np.asarray(group["status"][...]),
        "flags": np.asarray(group["flags"][...]),
        "dims": map_dims(group["selected"]),
        "criterion": str(attrs.get("criterion")),
        "threshold": float(attrs.get("threshold") or 0.0),
        "n_free": [int(k) for k in attrs.get("n_free") or []],
        "models": [str(m) for m in models],
    }


def _model_words(model):
    """A model in words: its expression (``Gaussian1D + Const1D``), or None."""
    if model is None:
        return None
    text = repr(model)
    head = "<CompoundModel("
    if not text.startswith(head):
        return type(model).__name__
    words = text[len(head) :].split(":")[0]
    if not set(words) & set("-*/|&"):  # a plain sum needs no brackets
        words = words.replace("[", "").replace("]", "")
    return words


def selection_summary(maps):
    """The choice of a model selection (:func:`read_selection_maps`), summed up.

    Returns
    -------
    dict
        ``criterion``, ``threshold``, ``n_candidates``, ``n_none`` (pixels
        where no candidate succeeded), ``median_delta`` (over the pixels
        with a runner-up; None without any) and ``candidates``: per
        candidate its ``index``, ``model``, ``n_free``, ``chosen`` (pixels),
        ``fraction`` and ``median_delta`` (over the pixels it won with a
        runner-up).
    """
    selected, delta = maps["selected"], maps["delta"]
    n = max(int(selected.size), 1)
    finite = np.isfinite(delta)
    candidates = []
    for k, model in enumerate(maps["models"]):
        here = selected == k
        margin = delta[here & finite]
        candidates.append(
            {
                "index": k,
                "model": model,
                "n_free": maps["n_free"][k] if k < len(maps["n_free"]) else None,
                "chosen": int(np.count_nonzero(here)),
                "fraction": float(np.count_nonzero(here)) / n,
                "median_delta": float(np.median(margin)) if margin.size else None,
            }
        )
    return {
        "criterion": maps["criterion"],
        "threshold": maps["threshold"],
        "n_candidates": len(candidates),
        "n_none": int(np.count_nonzero(selected < 0)),
        "median_delta": float(np.median(delta[finite])) if finite.any() else None,
        "candidates": candidates,
    }


def selection_lines(selection, n_fits):
    """The head of a model selection's summary: the criterion, and what each candidate won."""
    threshold = f", threshold {selection['threshold']:g}" if selection["threshold"] else ""
    lines = [
        f"model selection by {selection['criterion'].upper()} over "
        f"{selection['n_candidates']} candidates, {n_fits} pixels{threshold}:"
    ]
    for c in selection["candidates"]:
        margin = f", median margin {c['median_delta']:.4g}" if c["median_delta"] is not None else ""
        lines.append(
            f"  candidate {c['index']}: {c['model']} ({c['n_free']} free): chosen for "
            f"{c['chosen']} pixels ({100.0 * c['fraction']:.1f}%){margin}"
        )
    lines.append(f"  no candidate succeeded: {selection['n_none']} pixels")
    if selection["median_delta"] is not None:
        lines.append(
            f"  median margin (the runner-up's {selection['criterion']} minus the chosen "
            f"one's): {selection['median_delta']:.4g}"
        )
    return lines
