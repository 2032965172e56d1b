"""The words of ``parfit inspect``: a :class:`~parfit.diagnostics.summary.Summary` as text.

:func:`diagnostics_text`, :func:`store_text`, :func:`selection_text` and
:func:`run_lines` word what :func:`parfit.diagnostics.summarize` found in a
diagnostics folder, an output store, a model selection's folder and an
analysis folder's ``run.json``; :meth:`Summary.text` puts them together.
They read the summary's fields only, so that the summary module keeps the
collecting and this one the wording.
"""

from parfit.diagnostics.likelihood import STATISTIC_LABELS, likelihood_lines
from parfit.diagnostics.strategy import selection_lines, strategy_lines
from parfit.status import FLAG_DESCRIPTIONS, STATUS_DESCRIPTIONS, Flag, Status

__all__ = [
    "RESUME_HINT",
    "diagnostics_text",
    "store_text",
    "selection_text",
    "run_lines",
    "group_lines",
    "status_lines",
    "flag_lines",
    "pct",
    "format_example",
]

#: How to finish a store that is not complete.
RESUME_HINT = (
    "resume with resume=True (parfit.parallel_fit) / `parfit run` with output.resume: true"
)


def pct(n, total):
    return f"{100.0 * n / total:5.1f}%" if total else "  -  "


def status_lines(summary):
    lines = []
    for name, count in summary.status_counts.items():
        description = (
            STATUS_DESCRIPTIONS[Status[name]]
            if name in Status.__members__
            else "unknown status code"
        )
        lines.append(f"  {name:<16} {count:>9d}  {pct(count, summary.n_fits)}  {description}")
    return lines


def flag_lines(summary, title="flags (a fit may have several):"):
    if not summary.flag_counts:
        return []
    lines = [title]
    for name, count in summary.flag_counts.items():
        description = FLAG_DESCRIPTIONS[Flag[name]] if name in Flag.__members__ else "unknown flag"
        lines.append(f"  {name:<16} {count:>9d}  {pct(count, summary.n_fits)}  {description}")
    return lines


def format_example(example):
    if isinstance(example, (tuple, list)):
        inner = ", ".join(str(i) for i in example)
        return f"({inner},)" if len(example) == 1 else f"({inner})"
    return str(example)


def group_lines(title, groups, top, unit="fits", show_occurrences=False):
    if not groups:
        return []
    lines = [title]
    shown = groups if top is None else groups[:top]
    for g in shown:
        extra = (
            f"  ({g.occurrences} times)" if show_occurrences and g.occurrences != g.count else ""
        )
        lines.append(f"  {g.count:>7d} {unit:<5} {g.message}{extra}")
        if g.examples:
            lines.append(f"          e.g. {', '.join(format_example(e) for e in g.examples)}")
    if len(shown) < len(groups):
        rest = groups[len(shown) :]
        lines.append(f"  ... and {len(rest)} more message(s) ({sum(g.count for g in rest)} {unit})")
    return lines


def diagnostics_text(s, top):
    run = s.provenance.get("run_id")
    lines = [
        f"parfit diagnostics folder: {s.path}",
        f"  {s.n_fits} fit folder(s) listed in manifest.csv" + (f" (run {run})" if run else ""),
    ]
    if s.status_counts:
        lines.append("status of the fits with a folder:")
        lines += status_lines(s)
        lines += flag_lines(s, "flags of the fits with a folder:")
    lines += group_lines("most frequent error messages:", s.errors, top)
    lines += group_lines("most frequent warnings:", s.warnings, top, show_occurrences=True)
    lines += group_lines("errors of diagnostics_callable:", s.callable_errors, top)
    if not s.errors and not s.warnings:
        lines.append("no error or warning messages")
    return lines


def store_text(s, top):
    layout = {"streamed": "streamed layout", "xarray": "FitResult.to_zarr layout"}[s.layout]
    lines = [f"parfit output store: {s.store} ({layout})"]
    prov = s.provenance
    facts = [
        f"parfit {prov['parfit_version']}" if prov.get("parfit_version") else None,
        f"run {prov['run_id']}" if prov.get("run_id") else None,
        f"fitter {prov['fitter']}" if prov.get("fitter") else None,
        f"statistic {s.statistic}" if s.statistic else None,
    ]
    facts = [f for f in facts if f]
    if facts:
        lines.append("  " + ", ".join(facts))
    dims = f", dims ({', '.join(s.dims)})" if s.dims else ""
    lines.append(f"  {s.n_fits} fits, map shape {tuple(s.shape)}{dims}")
    if s.damaged_blocks or s.problems:
        blocks = ", ".join(map(str, s.damaged_blocks)) or "none"
        lines.append(
            f"  DAMAGED: the store fails verification (damaged blocks: {blocks}); "
            f"resume=True fits damaged blocks again"
        )
        lines += [f"    {problem}" for problem in s.problems]
    if s.complete is not None:
        if s.complete:
            lines.append(f"  complete: yes ({s.blocks_done} of {s.blocks_total} blocks done)")
        else:
            lines.append(
                f"  complete: NO ({s.blocks_done} of {s.blocks_total} blocks done; {RESUME_HINT})"
            )
    lines += outcome_lines(s, "status:")
    if s.n_with_warnings is not None:
        lines.append(f"fits that raised warnings: {s.n_with_warnings}")
    source = (
        f" (messages from {s.diagnostics_path})"
        if s.diagnostics_path
        else " (status only; pass diagnostics= for the messages)"
    )
    failed = [g for g in s.errors if g.kind == "error"]
    lines += group_lines(
        "most frequent error messages with example pixels" + source + ":", failed, top
    )
    lines += group_lines("not attempted:", [g for g in s.errors if g.kind == "not attempted"], top)
    lines += group_lines("most frequent warnings:", s.warnings, top, show_occurrences=True)
    lines += group_lines("errors of diagnostics_callable:", s.callable_errors, top)
    n_ok = s.status_counts.get("OK", 0)
    if s.percentiles:
        keys = list(next(iter(s.percentiles.values())))  # p1, p16, ...: those computed
        header = " / ".join(key[1:] for key in keys)
        lines.append(f"parameters over the {n_ok} OK fits (percentiles {header}):")
        for name, values in s.percentiles.items():
            unit = s.units.get(name)
            label = f"{name} [{unit}]" if unit not in (None, "") else name
            values = " ".join(f"{values[key]:11.5g}" for key in keys)
            lines.append(f"  {label:<20} {values}")
    else:
        lines.append("no OK fits: no parameter percentiles")
    if s.median_statistic is not None:
        label = STATISTIC_LABELS.get(s.statistic or "chi2", s.statistic)
        lines.append(f"median statistic ({label}) over the OK fits: {s.median_statistic:.5g}")
        for dataset, value in s.median_statistic_by_dataset.items():
            lines.append(f"  median share of dataset {dataset}: {value:.5g}")
    lines += likelihood_lines(s)
    lines += strategy_lines(s)
    return lines


def outcome_lines(s, header):
    """``header``, the fits per status and per flag, and how many of those attempted failed."""
    lines = [header, *status_lines(s), *flag_lines(s)]
    attempted = s.n_fits - s.n_not_attempted
    lines.append(
        f"failed: {s.n_failed} of {attempted} attempted "
        f"({pct(s.n_failed, attempted).strip()}); not attempted: {s.n_not_attempted}"
    )
    return lines


def selection_text(s, top):
    """A selection folder's report: the choice, the chosen fits, then every candidate's store."""
    lines = [f"parfit model selection: {s.path}"]
    dims = f", dims ({', '.join(s.dims)})" if s.dims else ""
    lines.append(f"  {s.n_fits} pixels, map shape {tuple(s.shape)}{dims}")
    if not s.complete:
        lines.append(f"  complete: NO (a candidate's store is not; {RESUME_HINT})")
    lines += selection_lines(s.selection, s.n_fits)
    lines += outcome_lines(
        s, "status of the chosen fits (the first candidate's where none succeeded):"
    )
    for k, candidate in enumerate(s.candidates):
        lines.append("")
        lines.append(f"--- candidate {k}: {s.selection['candidates'][k]['model']} ---")
        lines += store_text(candidate, top)
    return lines


def run_lines(path, run):
    run = run or {}
    lines = [f"parfit analysis folder: {path}"]
    facts = []
    for key, label in (
        ("parfit_version", "parfit"),
        ("config_hash", "config"),
        ("exit_status", "exit status"),
    ):
        if run.get(key) is not None:
            facts.append(f"{label} {run[key]}")
    if facts:
        lines.append("  " + ", ".join(facts))
    source = run.get("input") or {}
    if isinstance(source, dict) and source.get("path"):
        fp = f" (fingerprint {source['fingerprint']})" if source.get("fingerprint") else ""
        lines.append(f"  input: {source['path']}{fp}")
    if run.get("started") or run.get("finished"):
        lines.append(f"  started {run.get('started')}, finished {run.get('finished')}")
    if run.get("n_fits") is not None:
        lines.append(
            f"  fits: {run.get('n_fits')}, failed: {run.get('n_failed')} of "
            f"{run.get('n_attempted')} attempted"
            + (
                f" ({100 * run['failed_fraction']:.1f}%)"
                if isinstance(run.get("failed_fraction"), (int, float))
                else ""
            )
        )
    timings = run.get("timings")
    if isinstance(timings, dict) and timings:
        parts = [
            f"{k} {v:.3g} s" if isinstance(v, (int, float)) else f"{k} {v}"
            for k, v in timings.items()
        ]
        lines.append(f"  timings: {', '.join(parts)}")
    lines.append(f"  diagnostics: {run.get('diagnostics_path') or 'none'}")
    mean = run.get("mean_start")
    if isinstance(mean, dict) and isinstance(mean.get("values"), dict):
        values = ", ".join(f"{k}={v:.5g}" for k, v in mean["values"].items())
        lines.append(
            f"  initial mean: the mean spectrum of {mean.get('pixels')} pixels fitted "
            f"({mean.get('status')}); every fit started from {values}"
        )
    return lines
