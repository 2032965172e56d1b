"""Summaries of what a run left on disk (what ``parfit inspect`` prints).

:func:`summarize` reads a diagnostics folder, an output store or an
analysis folder and tells what happened: how many fits ended with each
status and how many carry each quality flag, the most frequent error and
warning messages with example pixels, and the spread of every fitted
parameter.  The quick-look plots are in :mod:`parfit.diagnostics.plots`.

What each kind of path holds:

* a *diagnostics folder* (``diagnostics_path`` of a run) holds
  ``manifest.csv``; only the folders listed there are read;
* an *output store* is either the zarr store streamed by
  ``parallel_fit(..., output="maps.zarr")`` (group attribute ``parfit``,
  block records in ``_parfit_done``) or the one written by
  :meth:`parfit.FitResult.to_zarr` (the ``to_xarray`` dataset);
* an *analysis folder* holds ``run.json`` and ``maps.zarr``, and names its
  diagnostics folder in ``run.json``;
* a *selection folder* (``parallel_fit(model=[...], select=..., output=...)``,
  or an analysis folder of a ``select`` config) holds ``selection.zarr``
  and each candidate's store, ``candidate_<k>.zarr``.

Nothing here changes what it reads.
"""

import dataclasses
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from parfit.diagnostics.folders import MANIFEST_NAME, read_manifest
from parfit.diagnostics.likelihood import likelihood_summary, stored_request
from parfit.diagnostics.paths import MAPS_NAME, map_dims, path_kind, read_run
from parfit.diagnostics.report import diagnostics_text, run_lines, selection_text, store_text
from parfit.diagnostics.strategy import read_selection_maps, selection_summary, strategy_summary
from parfit.errors import InputError

# NOT_ATTEMPTED: statuses of fits never attempted (not failures), as parfit.status defines.
from parfit.status import NOT_ATTEMPTED, STATUS_DESCRIPTIONS, Status, flag_counts
from parfit.store.layout import DONE_NAME, candidate_store, datasets_of, is_selection_folder
from parfit.store.reader import open_maps_store, read_map, stored_flags, verify_store

__all__ = ["Summary", "MessageGroup", "summarize", "PERCENTILES", "status_name"]

#: Percentiles of each parameter reported by :func:`summarize`.
PERCENTILES = (1, 16, 50, 84, 99)
_DEFAULT = object()


@dataclasses.dataclass
class MessageGroup:
    """Fits that ended with the same message.

    Attributes
    ----------
    message : str
        The grouping key: the last non-empty line of ``error.log`` (for a
        traceback, the exception line), one line of ``warn.log``, or, for
        failures without a message, ``"<STATUS>: <description>"``.
    count : int
        Number of fits in the group.
    kind : str
        ``"error"``, ``"not attempted"``, ``"warning"`` or ``"callable error"``.
    examples : list
        The first example fits, sorted: folder names when summarizing a
        diagnostics folder, pixel indices (tuples in the maps' array order)
        when summarizing a store.
    folders : list of str
        Example diagnostics folders (sorted), where the message came from one.
    pixels : list of tuple of int
        Example pixel indices (sorted), where known.
    statuses : list of str
        Names of the statuses of the fits in the group.
    occurrences : int
        How often the message was logged (a warning may repeat within a fit).
    """

    message: str
    count: int
    kind: str
    examples: list
    folders: list = dataclasses.field(default_factory=list)
    pixels: list = dataclasses.field(default_factory=list)
    statuses: list = dataclasses.field(default_factory=list)
    occurrences: int = 0


@dataclasses.dataclass
class Summary:
    """What :func:`summarize` found; ``str(summary)`` is a plain-text report.

    Attributes
    ----------
    kind : str
        ``"diagnostics"``, ``"output"``, ``"selection"`` (a selection
        folder) or ``"analysis"``.
    path : str
        The path summarized.
    n_fits : int
        Fits in the maps (for a diagnostics folder: fits with a folder).
    status_counts : dict of str to int
        Number of fits per status name (nonzero only), in code order.
    flag_counts : dict of str to int
        Number of fits with each :class:`~parfit.status.Flag` set, by flag
        name (nonzero only, in bit order; a fit may have several flags).
        For a diagnostics folder, over the fits with a folder (from
        ``manifest.csv``); empty for a store written before parfit had
        flags.
    errors : list of MessageGroup
        Failures (and fits not attempted) grouped by message, most frequent
        first.
    warnings : list of MessageGroup
        Warnings grouped by text, most frequent first (from a diagnostics
        folder only).
    callable_errors : list of MessageGroup
        Errors of ``diagnostics_callable`` grouped by their last line.
    percentiles : dict of str to dict
        ``{param: {"p1": ..., "p16": ..., "p50": ..., "p84": ..., "p99": ...}}``
        over the OK fits; empty without OK fits or for a diagnostics folder.
    units : dict of str to str or None
        Unit of each parameter where the store records one.
    statistic : str or None
        What the fits minimised: ``"chi2"``, ``"cash"`` or ``"cstat"``
        (None for a diagnostics folder).
    median_statistic : float or None
        Median statistic of the OK fits.
    median_statistic_by_dataset : dict of str to float
        A joint fit's median share of each dataset's samples in the
        statistic of the OK fits; empty for a single cube's fit.
    ts : dict or None
        With a TS map (a run with ``null=``): the values held under the
        null hypothesis (``null``) and, over the OK fits with a finite TS,
        their number ``n``, ``median``, ``max``, ``n_above_9`` and
        ``n_above_25`` (:func:`parfit.diagnostics.likelihood.likelihood_summary`).
    profiles : dict of str to dict
        With ``profile=``: for each profiled parameter, ``n_sigma``,
        ``n_sigma_ul``, ``n_intervals``, ``median_width``,
        ``n_upper_limits`` and ``median_upper_limit`` over the OK fits.
    complete : bool or None
        Whether every block of a streamed store is done and the store
        passes :func:`parfit.store.verify_store` (None where the layout
        does not record it).  A damaged store is never complete.
    damaged_blocks : list of tuple
        Blocks of a streamed store recorded done whose data are missing,
        undecodable or disagree with their status (``resume=True`` fits
        them again); empty when none.
    problems : list of str
        What :func:`parfit.store.verify_store` found wrong, in words.
    blocks_done, blocks_total : int or None
        Block records of a streamed store.
    n_failed : int
        Fits that were attempted and did not end OK.
    n_not_attempted : int
        Fits never attempted (``NO_VALID_DATA``, ``NOT_RUN``, ``SKIPPED``).
    shape : tuple of int or None
        Shape of the maps.
    dims : tuple of str or None
        Dimension names of the maps, where recorded.
    layout : str or None
        ``"streamed"`` (``output=``) or ``"xarray"`` (``FitResult.to_zarr``).
    store : str or None
        The zarr store read (for an analysis folder, its ``maps.zarr``).
    diagnostics_path : str or None
        The diagnostics folder whose messages were used.
    provenance : dict
        Version, run id and fitter recorded in the store.
    run : dict or None
        ``run.json`` of an analysis folder.
    notes : list of str
        Anything odd found on the way (missing folders, another run's
        diagnostics, counts that disagree).
    top : int or None
        Groups shown per list in :meth:`text` (all are kept in the data).
    starts : dict
        How the run started its fits, where the store records it:
        ``initial``, ``min_snr``, ``order_components``
        (:func:`parfit.diagnostics.strategy.strategy_summary`).
    refit : dict or None
        With ``refit="neighbours"``: the passes (each with its fits
        ``refitted``, ``improved``, ``rescued``), ``n_refitted``,
        ``n_refits``, ``n_from_neighbours`` and ``origin_counts``.
    selection : dict or None
        A selection folder: ``criterion``, ``threshold``,
        ``n_candidates``, ``n_none``, ``median_delta`` and, per candidate,
        the pixels it was ``chosen`` for
        (:func:`parfit.diagnostics.strategy.selection_summary`); the status
        and flag counts are then those of the chosen fits (the first
        candidate's where none succeeded).
    candidates : list of Summary
        A selection folder: the summary of each candidate's store.
    """

    kind: str
    path: str
    n_fits: int
    status_counts: dict
    flag_counts: dict = dataclasses.field(default_factory=dict)
    errors: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)
    callable_errors: list = dataclasses.field(default_factory=list)
    percentiles: dict = dataclasses.field(default_factory=dict)
    units: dict = dataclasses.field(default_factory=dict)
    statistic: str | None = None
    median_statistic: float | None = None
    median_statistic_by_dataset: dict = dataclasses.field(default_factory=dict)
    ts: dict | None = None
    profiles: dict = dataclasses.field(default_factory=dict)
    complete: bool | None = None
    blocks_done: int | None = None
    blocks_total: int | None = None
    damaged_blocks: list = dataclasses.field(default_factory=list)
    problems: list = dataclasses.field(default_factory=list)
    n_failed: int = 0
    n_not_attempted: int = 0
    n_with_warnings: int | None = None
    shape: tuple | None = None
    dims: tuple | None = None
    layout: str | None = None
    store: str | None = None
    diagnostics_path: str | None = None
    provenance: dict = dataclasses.field(default_factory=dict)
    run: dict | None = None
    notes: list = dataclasses.field(default_factory=list)
    top: int = 5
    starts: dict = dataclasses.field(default_factory=dict)
    refit: dict | None = None
    selection: dict | None = None
    candidates: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        """The summary as plain, JSON-serialisable Python objects.

        Returns
        -------
        dict
        """
        return _plain(dataclasses.asdict(self))

    def __str__(self):
        return self.text()

    def text(self, top=_DEFAULT):
        """A readable plain-text report.

        Parameters
        ----------
        top : int or None, optional
            Groups of messages to show per list, the rest being counted
            (default: ``self.top``); None shows all.

        Returns
        -------
        str
        """
        top = self.top if top is _DEFAULT else _check_count(top, "top", allow_none=True)
        lines = []
        if self.kind == "analysis":
            lines += run_lines(self.path, self.run)
        if self.kind == "diagnostics":
            lines += diagnostics_text(self, top)
        elif self.selection is not None:
            lines += selection_text(self, top)
        else:
            lines += store_text(self, top)
        if self.notes:
            lines.append("notes:")
            lines += [f"  - {note}" for note in self.notes]
        return "\n".join(lines)


# --- summarize ------------------------------------------------------------------


def summarize(path, *, top=5, examples=3, diagnostics=None):
    """Summarize a diagnostics folder, an output store or an analysis folder.

    Parameters
    ----------
    path : str or path-like
        One of

        * a diagnostics folder (holding ``manifest.csv``): counts per status
          of the fits listed, their errors grouped by the last line of
          ``error.log`` and their warnings by line of ``warn.log``;
        * a zarr output store, streamed (``parallel_fit(..., output=...)``)
          or written by :meth:`parfit.FitResult.to_zarr`: counts per status,
          completeness, failures with example pixels, parameter percentiles
          over the OK fits and the median statistic;
        * an analysis folder (``run.json`` beside ``maps.zarr``): its store,
          the messages of the diagnostics folder named in ``run.json``, and
          the run's version and timings.
    top : int or None
        Groups of messages shown in the text (all are kept in the data);
        None shows all.
    examples : int
        Example fits kept per group.
    diagnostics : str or path-like, optional
        A diagnostics folder of the same run, whose ``error.log`` messages
        replace the status names of the failed pixels of a store (default:
        the one named by ``run.json`` of an analysis folder, else none).

    Returns
    -------
    Summary
        ``str(summary)`` is the report; ``summary.to_dict()`` its data.

    Raises
    ------
    InputError
        If ``path`` does not exist or is none of the above.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import parfit
    >>> from parfit.datasets import gaussian_cube
    >>> from parfit.diagnostics import summarize
    >>> cube = gaussian_cube((20, 4, 4), seed=0, n_blank=1)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     result = parfit.parallel_fit(cube.model, cube.data, world=cube.world,
    ...                                  scheduler="synchronous",
    ...                                  output=Path(tmp) / "maps.zarr")
    ...     summary = summarize(Path(tmp) / "maps.zarr")
    >>> summary.n_fits, summary.status_counts, summary.complete
    (16, {'OK': 15, 'NO_VALID_DATA': 1}, True)
    >>> summary.errors[0].message, summary.errors[0].examples
    ('NO_VALID_DATA: no valid samples (all NaN, inf, masked or zero weight)', [(3, 3)])
    >>> print(summary)  # doctest: +ELLIPSIS
    parfit output store: .../maps.zarr (streamed layout)
    ...
    status:
      OK                     15   93.8%  ok
      NO_VALID_DATA           1    6.2%  no valid samples (all NaN, inf, masked or zero weight)
    ...
    """
    top = _check_count(top, "top", allow_none=True)
    examples = _check_count(examples, "examples")
    path = Path(path)
    kind = path_kind(path, "summarize")
    if kind == "diagnostics":
        if diagnostics is not None:
            raise InputError(
                f"summarize: diagnostics= is only used with an output store or an analysis "
                f"folder; {str(path)!r} is itself a diagnostics folder"
            )
        return _summarize_diagnostics(path, top, examples)
    run = None
    store = path
    chooses = kind == "selection" or (
        kind == "analysis" and is_selection_folder(path) and not (path / MAPS_NAME).exists()
    )
    if kind == "analysis":
        run = read_run(path)
        store = path / MAPS_NAME
        if diagnostics is None and run.get("diagnostics_path"):
            candidate = Path(run["diagnostics_path"])
            if not candidate.is_absolute():
                candidate = path / candidate
            if chooses or (candidate / MANIFEST_NAME).is_file():
                diagnostics = candidate
    if diagnostics is not None:
        diagnostics = Path(diagnostics)
        if not chooses and not (diagnostics / MANIFEST_NAME).is_file():
            raise InputError(
                f"summarize: diagnostics={str(diagnostics)!r} is not a diagnostics folder "
                f"(no manifest.csv there); give the diagnostics_path of the run"
            )
    if chooses:
        summary = _summarize_selection(path, top, examples, diagnostics)
    else:
        summary = _summarize_store(store, top, examples, diagnostics)
    if kind == "analysis":
        summary.kind = "analysis"
        summary.path = str(path)
        summary.run = run
        counts = run.get("status_counts")
        if isinstance(counts, dict) and counts != summary.status_counts:
            summary.notes.append(
                "run.json's status_counts differ from those of maps.zarr "
                "(was the store changed after the run?)"
            )
        counts = run.get("flag_counts")
        if isinstance(counts, dict) and counts != summary.flag_counts:
            summary.notes.append(
                "run.json's flag_counts differ from those of maps.zarr "
                "(was the store changed after the run?)"
            )
    return summary


def _summarize_selection(path, top, examples, diagnostics):
    """A selection folder: the choice (``selection.zarr``) and each candidate's store.

    ``diagnostics``: the run's diagnostics folder, whose ``candidate_<k>``
    folders hold each candidate's (None: none).
    """
    maps = read_selection_maps(path)
    candidates = []
    for k in range(len(maps["models"])):
        own = None if diagnostics is None else diagnostics / f"candidate_{k}"
        if own is not None and not (own / MANIFEST_NAME).is_file():
            own = None
        candidates.append(_summarize_store(path / candidate_store(k), top, examples, own))
    status = maps["status"]
    codes, counts = np.unique(status, return_counts=True)
    counts = {int(c): int(n) for c, n in zip(codes, counts)}
    first = candidates[0] if candidates else None
    return Summary(
        kind="selection",
        path=str(path),
        n_fits=int(status.size),
        status_counts=_named_counts(counts),
        flag_counts=_named_flags(maps["flags"]),
        statistic=first.statistic if first else None,
        complete=all(c.complete is not False for c in candidates),
        n_failed=sum(n for c, n in counts.items() if Status(c).is_failed()),
        n_not_attempted=sum(n for c, n in counts.items() if c in NOT_ATTEMPTED),
        shape=tuple(status.shape),
        dims=maps["dims"],
        store=str(path),
        provenance=dict(first.provenance) if first else {},
        top=top,
        selection=selection_summary(maps),
        candidates=candidates,
    )


def _check_count(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(f"{name} must be a non-negative integer; got {value!r}")
    return int(value)


def _last_line(text):
    """The grouping key of an ``error.log``: its last non-empty line."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return ""


def _status(code):
    try:
        return Status(int(code))
    except ValueError:
        return None


def status_name(code: int) -> str:
    """The name of a status code as the summaries show it; the number if unknown.

    Examples
    --------
    >>> from parfit.diagnostics.summary import status_name
    >>> status_name(1), status_name(99)
    ('OK', '99')
    """
    status = _status(code)
    return status.name if status is not None else str(int(code))


def _status_message(code):
    """The message of a failure known only by its status."""
    status = _status(code)
    if status is None:
        return f"status {int(code)}: unknown status code"
    return f"{status.name}: {STATUS_DESCRIPTIONS[status]}"


class _Groups:
    """Collects fits by message; keeps every member until sorted."""

    def __init__(self):
        self.members = defaultdict(list)
        self.statuses = defaultdict(set)
        self.kinds = {}
        self.occurrences = defaultdict(int)

    def add(self, message, kind, member, status=None, occurrences=1):
        key = (kind, message)
        self.members[key].append(member)
        self.kinds[key] = kind
        self.occurrences[key] += occurrences
        if status is not None:
            self.statuses[key].add(status)

    def result(self, examples, use_pixels):
        groups = []
        for (kind, message), members in self.members.items():
            members = sorted(members)
            folders = [m[1] for m in members[:examples] if m[1] is not None]
            pixels = [m[0] for m in members[:examples] if m[0] is not None]
            statuses = sorted(self.statuses[(kind, message)])
            groups.append(
                MessageGroup(
                    message=message,
                    count=len(members),
                    kind=kind,
                    examples=pixels if use_pixels else folders,
                    folders=folders,
                    pixels=pixels,
                    statuses=[status_name(s) for s in statuses],
                    occurrences=self.occurrences[(kind, message)],
                )
            )
        return _sorted(groups)


def _sorted(groups):
    return sorted(groups, key=lambda g: (-g.count, g.message))


def _manifest(path):
    """Rows of ``manifest.csv`` with the pixel index and status parsed."""
    rows = []
    for row in read_manifest(path):
        try:
            pixel = tuple(int(i) for i in row["indices"].split())
            code = int(row["status"])
            # Manifests written before parfit had flags have no flags column.
            flag_bits = int(row.get("flags") or 0)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InputError(
                f"summarize: {str(Path(path) / 'manifest.csv')!r} has a malformed row {row!r}"
            ) from None
        rows.append(dict(row, pixel=pixel, code=code, flag_bits=flag_bits))
    return rows


def _read_text(path):
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _folder_messages(diag, rows, groups, notes, failing=None):
    """Read each listed folder's logs into ``groups``.

    Returns the pixels whose failure got its message from an ``error.log``.
    ``failing(row)`` says whether a row's fit failed (default: its manifest
    status is neither OK nor a not-attempted one).
    """
    covered = set()
    missing = []
    for row in rows:
        folder = diag / row["folder"]
        if not folder.is_dir():
            missing.append(row["folder"])
            continue
        member = (row["pixel"], row["folder"])
        code = row["code"]
        failed = failing(row) if failing is not None else Status(code).is_failed()
        error = _read_text(folder / "error.log")
        if failed:
            if error is not None and _last_line(error):
                groups["errors"].add(_last_line(error), "error", member, code)
                covered.add(row["pixel"])
            elif failing is None:
                groups["errors"].add(_status_message(code), "error", member, code)
        warn = _read_text(folder / "warn.log")
        if warn:
            counts = defaultdict(int)
            for line in warn.splitlines():
                if line.strip():
                    counts[line.strip()] += 1
            for message, n in counts.items():
                groups["warnings"].add(message, "warning", member, code, occurrences=n)
        callable_error = _read_text(folder / "callable_error.log")
        if callable_error and _last_line(callable_error):
            groups["callable"].add(_last_line(callable_error), "callable error", member, code)
    if missing:
        notes.append(
            f"{len(missing)} folder(s) listed in manifest.csv are missing, e.g. "
            f"{', '.join(sorted(missing)[:3])}"
        )
    return covered


def _summarize_diagnostics(path, top, examples):
    rows = _manifest(path)
    counts = defaultdict(int)
    for row in rows:
        counts[row["code"]] += 1
    bits = np.array([row["flag_bits"] for row in rows], dtype=np.int64)
    groups = {"errors": _Groups(), "warnings": _Groups(), "callable": _Groups()}
    notes = []
    _folder_messages(path, rows, groups, notes)
    run_ids = sorted({row.get("run_id") or "" for row in rows} - {""})
    if len(run_ids) > 1:
        notes.append(f"manifest.csv lists folders of {len(run_ids)} runs")
    n_failed = sum(n for c, n in counts.items() if Status(c).is_failed())
    return Summary(
        kind="diagnostics",
        path=str(path),
        n_fits=len(rows),
        status_counts=_named_counts(counts),
        flag_counts=_named_flags(bits),
        errors=groups["errors"].result(examples, use_pixels=False),
        warnings=groups["warnings"].result(examples, use_pixels=False),
        callable_errors=groups["callable"].result(examples, use_pixels=False),
        n_failed=n_failed,
        n_not_attempted=sum(n for c, n in counts.items() if c in NOT_ATTEMPTED),
        diagnostics_path=str(path),
        provenance={"run_id": run_ids[0] if run_ids else None},
        notes=notes,
        top=top,
    )


def _named_flags(flags):
    """``{flag name: count}`` of a map of flag bits (nonzero only, bit order)."""
    return {flag.name: n for flag, n in flag_counts(flags).items()}


def _named_counts(counts):
    out = {}
    for code in sorted(counts):
        out[status_name(code)] = int(counts[code])
    return out


def _summarize_store(path, top, examples, diag):
    group, layout, names, units, provenance, info = open_maps_store(path)
    status = read_map(group, "status")
    shape = tuple(status.shape)
    codes, counts = np.unique(status, return_counts=True)
    counts = {int(c): int(n) for c, n in zip(codes, counts)}
    notes = []
    summary = Summary(
        kind="output",
        path=str(path),
        n_fits=int(status.size),
        status_counts=_named_counts(counts),
        flag_counts=_named_flags(stored_flags(group)),
        units=units,
        shape=shape,
        dims=map_dims(group["status"]),
        layout=layout,
        store=str(path),
        provenance=provenance,
        notes=notes,
        top=top,
    )
    asked = stored_request(info, layout)
    failing_codes = [c for c in counts if Status(c).is_failed()]
    summary.n_failed = sum(counts[c] for c in failing_codes)
    summary.n_not_attempted = sum(n for c, n in counts.items() if c in NOT_ATTEMPTED)

    if layout == "streamed":
        done = read_map(group, DONE_NAME) == 1
        report = verify_store(path)
        summary.damaged_blocks = list(report.damaged_blocks)
        summary.problems = list(report.problems)
        summary.blocks_done, summary.blocks_total = int(done.sum()), int(done.size)
        summary.complete = bool(done.all()) and report.ok
        if "n_warnings" in group.array_keys():
            summary.n_with_warnings = int((read_map(group, "n_warnings") > 0).sum())

    groups = {"errors": _Groups(), "warnings": _Groups(), "callable": _Groups()}
    covered = np.zeros(shape, dtype=bool)
    if diag is not None:
        summary.diagnostics_path = str(diag)
        rows = _manifest(diag)
        inside = []
        for row in rows:
            if len(row["pixel"]) == len(shape) and all(
                0 <= i < n for i, n in zip(row["pixel"], shape)
            ):
                inside.append(row)
        if len(inside) < len(rows):
            notes.append(
                f"{len(rows) - len(inside)} row(s) of manifest.csv name pixels "
                f"outside the maps {shape}; ignored"
            )
        run_ids = {row.get("run_id") for row in inside} - {None, ""}
        if provenance.get("run_id") and run_ids and run_ids != {provenance["run_id"]}:
            notes.append(
                f"the diagnostics folder {str(diag)!r} was written by another run "
                f"than the store (run id {', '.join(sorted(run_ids))} there, "
                f"{provenance['run_id']} in the store)"
            )

        def failing(row):
            code = int(status[row["pixel"]])
            return Status(code).is_failed()

        for pixel in _folder_messages(diag, inside, groups, notes, failing=failing):
            covered[pixel] = True
        # The statuses of the store are the truth, not the manifest's.
        for key in ("errors", "warnings", "callable"):
            for member_key, members in groups[key].members.items():
                groups[key].statuses[member_key] = {int(status[p]) for p, _ in members}
    for code in sorted(counts):
        if code == Status.OK:
            continue
        where = (status == code) & ~covered
        n = int(where.sum())
        if not n:
            continue
        message = _status_message(code)
        kind = "not attempted" if code in NOT_ATTEMPTED else "error"
        pixels = [tuple(int(i) for i in p) for p in np.argwhere(where)[:examples]]
        summary.errors.append(
            MessageGroup(
                message=message,
                count=n,
                kind=kind,
                examples=pixels,
                pixels=pixels,
                statuses=[status_name(code)],
                occurrences=n,
            )
        )
    errors = groups["errors"].result(examples, use_pixels=True)
    attempted = _sorted([g for g in errors + summary.errors if g.kind == "error"])
    summary.errors = attempted + _sorted([g for g in summary.errors if g.kind == "not attempted"])
    summary.warnings = groups["warnings"].result(examples, use_pixels=True)
    summary.callable_errors = groups["callable"].result(examples, use_pixels=True)

    ok = status == Status.OK
    if ok.any():
        for name in names:
            values = read_map(group, name)[ok]
            values = values[np.isfinite(values)]
            if values.size:
                pct = np.percentile(values, PERCENTILES)
                summary.percentiles[name] = {f"p{q}": float(v) for q, v in zip(PERCENTILES, pct)}
        stat = read_map(group, "statistic")[ok]
        stat = stat[np.isfinite(stat)]
        summary.median_statistic = float(np.median(stat)) if stat.size else None
        for dataset in datasets_of(names):
            share = read_map(group, f"statistic.{dataset}")[ok]
            share = share[np.isfinite(share)]
            if share.size:
                summary.median_statistic_by_dataset[dataset] = float(np.median(share))
    _likelihood(summary, group, asked, ok)
    summary.starts, summary.refit = strategy_summary(group, info, layout)
    return summary


def _likelihood(summary, group, asked, ok):
    """The statistic, TS and profiles of a store into ``summary`` (:mod:`.likelihood`)."""
    summary.statistic = asked.statistic
    missing = [name for name in asked.fields if name not in set(group.array_keys())]
    if missing:
        summary.notes.append(
            f"the store records a run with TS or profiles but has no {', '.join(missing)} "
            f"map(s); they are not summarised"
        )
        return
    summary.ts, summary.profiles = likelihood_summary(group, asked, ok)


def _plain(obj):
    """Tuples to lists, numpy scalars to Python ones, NaN to None."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)
