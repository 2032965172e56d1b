"""Quick-look plots of what a run left on disk.

:func:`plot_maps` draws every parameter map of a store (on sky axes when the
store holds a celestial WCS), its ``sqrt(TS)`` map and the upper limits of its
first profiled parameter where the run computed them, the ``origin`` and
``refits`` maps of neighbour refits, and a status map, one PNG each; for a
model selection, the chosen candidate and the margin of the choice, then
every candidate's maps;
:func:`plot_overview` all of them, and the statistic, in one PNG, beside
reference maps where given; :func:`plot_fit` one fit against its data, and
:func:`plot_fits` several (the datasets of a joint fit) in one PNG.
Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state)
and written as PNG.
"""

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from parfit.diagnostics.likelihood import STATISTIC_LABELS, stored_request
from parfit.diagnostics.paths import map_dims, maps_path
from parfit.diagnostics.strategy import read_selection_maps
from parfit.diagnostics.summary import status_name
from parfit.errors import InputError
from parfit.status import Status
from parfit.store.layout import candidate_store, is_selection_folder
from parfit.store.reader import open_maps_store, store_wcs

__all__ = ["plot_maps", "plot_overview", "plot_fit", "plot_fits", "FitPanel"]

_STATUS_COLORS: dict[int, str] = {
    Status.NOT_RUN: "#9e9e9e",
    Status.OK: "#4daf4a",
    Status.FIT_ERROR: "#e41a1c",
    Status.NOT_CONVERGED: "#ff7f00",
    Status.NO_VALID_DATA: "#eeeeee",
    Status.TOO_FEW_SAMPLES: "#a65628",
    Status.BAD_START: "#984ea3",
    Status.NONFINITE: "#f781bf",
    Status.WORKER_CRASH: "#000000",
    Status.DEGENERATE: "#377eb8",
    Status.TIMEOUT: "#ffff33",
    Status.SKIPPED: "#d9d9d9",
}


def _map_wcs(info, ndim):
    """The celestial WCS of 2-D maps from a streamed store's header, or None."""
    wcs = store_wcs(info) if ndim == 2 else None
    if wcs is None or wcs.naxis != 2 or not wcs.has_celestial or wcs.celestial.naxis != 2:
        return None
    return wcs.celestial


@dataclasses.dataclass
class _Maps:
    """The maps of a store, as the plots need them."""

    group: Any
    names: list[str]
    units: dict[str, Any]
    status: np.ndarray
    #: Celestial WCS of 2-D maps (a streamed store that records one), else None.
    wcs: Any
    dims: tuple[str, ...]
    #: What the run computed besides the best fit (a LikelihoodRequest): TS, profiles.
    asked: Any

    def values(self, name: str) -> np.ndarray:
        return np.asarray(self.group[name][...], dtype=np.float64)

    def label(self, name: str) -> str:
        unit = self.units.get(name)
        return f"{name} [{unit}]" if unit not in (None, "") else name


def _open_maps(path: Path, caller: str) -> _Maps:
    group, layout, names, units, _, info = open_maps_store(path)
    status = np.asarray(group["status"][...])
    if status.ndim not in (1, 2):
        raise InputError(
            f"{caller}: the maps of {str(path)!r} are {status.ndim}-D (shape "
            f"{status.shape}); only 1-D and 2-D maps can be plotted"
        )
    wcs = _map_wcs(info, status.ndim) if layout == "streamed" else None
    dims = map_dims(group["status"]) or tuple(f"axis {k}" for k in range(status.ndim))
    asked = stored_request(info, layout)
    return _Maps(group, list(names), dict(units), status, wcs, dims, asked)


def _new_axes(fig, maps: _Maps, *where):
    """Axes for one map: on sky axes where the maps have a celestial WCS."""
    if maps.wcs is not None:
        wcs = maps.wcs
        ax = fig.add_subplot(*where, projection=wcs)
        ax.coords[0].set_axislabel("RA" if _is_ra(wcs) else wcs.world_axis_names[0] or "lon")
        ax.coords[1].set_axislabel("Dec" if _is_ra(wcs) else wcs.world_axis_names[1] or "lat")
    else:
        ax = fig.add_subplot(*where)
        if maps.status.ndim == 2:
            ax.set_xlabel(f"{maps.dims[1]} (pixel)")
            ax.set_ylabel(f"{maps.dims[0]} (pixel)")
    return ax


def _limits(values: np.ndarray) -> tuple[float | None, float | None]:
    """Colour limits of a map: its 1st and 99th percentiles (None without finite values)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None, None
    vmin, vmax = np.percentile(finite, [1, 99])
    return float(vmin), float(vmax)


def _centred_limits(values: np.ndarray) -> tuple[float | None, float | None]:
    """Colour limits symmetric about 0 (a diverging map): the larger of |1st|, |99th| percentile."""
    vmin, vmax = _limits(values)
    if vmin is None or vmax is None:
        return None, None
    half = max(abs(vmin), abs(vmax)) or 1.0
    return -half, half


def _draw_map(fig, ax, values: np.ndarray, label: str, maps: _Maps, limits=None, cmap=None) -> None:
    """One map: an image with a colour bar (2-D) or a line (1-D)."""
    if values.ndim == 2:
        vmin, vmax = _limits(values) if limits is None else limits
        image = ax.imshow(
            values,
            origin="lower",
            interpolation="nearest",
            vmin=vmin,
            vmax=vmax if vmax != vmin else None,
            cmap=cmap,
        )
        fig.colorbar(image, ax=ax, label=label)
    else:
        ax.plot(np.arange(values.size), values, marker=".")
        ax.set_xlabel(f"{maps.dims[0]} (pixel)")
        ax.set_ylabel(label)


#: The diverging colour map of sqrt(TS), centred on 0 (white): red above, blue below.
_SIGNIFICANCE_CMAP = "RdBu_r"


def _likelihood_figures(maps: _Maps, new_axes):
    """``(file stem, Figure)`` of the sqrt(TS) map and of the first profiled upper limits.

    Only where the run computed them (and the store holds the maps).
    """
    asked = maps.asked
    arrays = set(maps.group.array_keys())
    if asked.null and "sqrt_ts" in arrays:
        fig, ax = new_axes()
        values = maps.values("sqrt_ts")
        _draw_map(
            fig, ax, values, "sqrt(TS)", maps, _centred_limits(values), cmap=_SIGNIFICANCE_CMAP
        )
        if values.ndim == 1:
            ax.axhline(0.0, color="k", lw=0.8)
        held = ", ".join(f"{name}={value:g}" for name, value in asked.null)
        ax.set_title(f"sqrt(TS) against {held} (signed)")
        yield "sqrt_ts", fig
    if asked.profile and f"{asked.profile[0]}_ul" in arrays:
        name = asked.profile[0]
        fig, ax = new_axes()
        label = maps.label(name).replace(name, f"{name} upper limit", 1)
        _draw_map(fig, ax, maps.values(f"{name}_ul"), label, maps)
        ax.set_title(f"{asked.n_sigma_ul:g}-sigma upper limit of {name}")
        yield f"{name}_ul", fig


#: The colour of "no candidate" (-1) in a map of the chosen candidate.
_NONE_COLOR = "#9e9e9e"
#: The colours of the candidates (matplotlib's tab10, cycled).
_CANDIDATE_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#7f7f7f",
)


def _draw_categories(fig, ax, values, labels, colors, title, label):
    """A categorical map: one colour per code of ``labels`` (``{code: text}``) present."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    codes = sorted(labels)
    index = np.searchsorted(codes, values)
    cmap = ListedColormap([colors[c] for c in codes])
    norm = BoundaryNorm(np.arange(len(codes) + 1) - 0.5, len(codes))
    if values.ndim == 2:
        image = ax.imshow(index, origin="lower", interpolation="nearest", cmap=cmap, norm=norm)
        bar = fig.colorbar(image, ax=ax, ticks=np.arange(len(codes)))
        bar.ax.set_yticklabels([labels[c] for c in codes])
        bar.set_label(label)
    else:
        ax.scatter(np.arange(values.size), values, c=index, cmap=cmap, norm=norm, edgecolors="k")
        ax.set_yticks(codes)
        ax.set_yticklabels([labels[c] for c in codes])
        ax.set_xlabel("pixel")
    ax.set_title(title)


def _refit_figures(maps: _Maps, new_axes):
    """``(file stem, Figure)`` of the ``origin`` and ``refits`` maps of neighbour refits."""
    arrays = set(maps.group.array_keys())
    if not {"origin", "refits"} <= arrays:
        return
    origin = np.asarray(maps.group["origin"][...], dtype=np.int64)
    passes = {int(c): "first fit" if c == 0 else f"pass {c}" for c in np.unique(origin)}
    colors = {c: "#d9d9d9" if c == 0 else _CANDIDATE_COLORS[(c - 1) % 10] for c in passes}
    fig, ax = new_axes()
    _draw_categories(
        fig, ax, origin, passes, colors, "origin: the pass whose solution each fit holds", "pass"
    )
    yield "origin", fig
    refits = np.asarray(maps.group["refits"][...], dtype=np.int64)
    counts = {int(c): str(int(c)) for c in np.unique(refits)}
    top = max(max(counts), 1)
    cmap = _colormap("viridis")
    colors = {c: cmap(c / top) for c in counts}
    fig, ax = new_axes()
    _draw_categories(
        fig, ax, refits, counts, colors, "refits: times each fit was refitted", "refits"
    )
    yield "refits", fig


def _colormap(name):
    from matplotlib import colormaps

    return colormaps[name]


def _map_figures(path, dpi=100):
    """``(file stem, Figure)`` of every map of a store, built lazily.

    For a selection folder, the chosen candidate and the margin, then each
    candidate's maps (stems ``candidate_<k>/<map>``).
    """
    from matplotlib.figure import Figure

    if is_selection_folder(path):
        yield from _selection_figures(Path(path), dpi)
        return
    maps = _open_maps(path, "plot_maps")

    def new_axes():
        fig = Figure(figsize=(6.4, 4.8), dpi=dpi)
        return fig, _new_axes(fig, maps)

    for name in maps.names:
        fig, ax = new_axes()
        _draw_map(fig, ax, maps.values(name), maps.label(name), maps)
        ax.set_title(f"{name} (NaN where the fit failed)")
        yield name, fig
    yield from _likelihood_figures(maps, new_axes)
    yield from _refit_figures(maps, new_axes)
    fig, ax = new_axes()
    _draw_status(fig, ax, maps.status)
    yield "status", fig


def _selection_figures(path: Path, dpi: int):
    """``(file stem, Figure)`` of a selection folder: ``selected``, ``delta``, the candidates'."""
    from matplotlib.figure import Figure

    chosen = read_selection_maps(path)
    n = len(chosen["models"])
    # The axes (and sky coordinates) of the first candidate's maps.
    first = _open_maps(path / candidate_store(0), "plot_maps")

    def new_axes():
        fig = Figure(figsize=(6.4, 4.8), dpi=dpi)
        return fig, _new_axes(fig, first)

    selected = chosen["selected"].astype(np.int64)
    labels = {-1: "-1 none"}
    labels.update({k: f"{k} {chosen['models'][k]}" for k in range(n)})
    labels = {c: labels[c] for c in np.unique(selected).tolist()}
    colors = {-1: _NONE_COLOR, **{k: _CANDIDATE_COLORS[k % 10] for k in range(n)}}
    fig, ax = new_axes()
    _draw_categories(
        fig,
        ax,
        selected,
        labels,
        colors,
        f"chosen candidate (by {chosen['criterion'].upper()}; -1: none succeeded)",
        "candidate",
    )
    yield "selected", fig
    fig, ax = new_axes()
    _draw_map(fig, ax, chosen["delta"], f"delta {chosen['criterion']}", first)
    ax.set_title(f"margin: the runner-up's {chosen['criterion']} minus the chosen one's")
    yield "delta", fig
    for k in range(n):
        for stem, fig in _map_figures(path / candidate_store(k), dpi=dpi):
            yield f"candidate_{k}/{stem}", fig


def _is_ra(wcs):
    return wcs.wcs.ctype[0].upper().startswith("RA")


def _draw_status(fig, ax, status: np.ndarray) -> None:
    """The categorical status map, whose colour bar (or axis) names the codes present."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    codes = sorted(int(c) for c in np.unique(status))
    index = np.searchsorted(codes, status)
    names = [status_name(c) for c in codes]
    colors = [_STATUS_COLORS.get(c, "#7f7f7f") for c in codes]
    cmap = ListedColormap(colors)
    norm = BoundaryNorm(np.arange(len(codes) + 1) - 0.5, len(codes))
    if status.ndim == 2:
        image = ax.imshow(index, origin="lower", interpolation="nearest", cmap=cmap, norm=norm)
        bar = fig.colorbar(image, ax=ax, ticks=np.arange(len(codes)))
        bar.ax.set_yticklabels([f"{c} {n}" for c, n in zip(codes, names)])
        bar.set_label("fit status")
    else:
        ax.scatter(np.arange(status.size), status, c=index, cmap=cmap, norm=norm, edgecolors="k")
        ax.set_yticks(codes)
        ax.set_yticklabels([f"{c} {n}" for c, n in zip(codes, names)])
        ax.set_xlabel("pixel")
    ax.set_title("fit status")


def plot_maps(path, out_dir, *, dpi=100):
    """Draw every parameter map and the status map of a store as PNG files.

    Parameters
    ----------
    path : str or path-like
        An output store (either layout) or an analysis folder (its
        ``maps.zarr`` is drawn).
    out_dir : str or path-like
        Folder for the images; created if needed.  Images already there
        with the same names are replaced.
    dpi : int
        Resolution of the images.

    Returns
    -------
    list of pathlib.Path
        ``<out_dir>/<parameter>.png`` for each parameter; for a run with
        ``null=``, ``<out_dir>/sqrt_ts.png`` (signed ``sqrt(TS)`` on a
        diverging colour map centred on 0); for a run with ``profile=``,
        ``<out_dir>/<parameter>_ul.png`` (the upper limits of the first
        profiled parameter); for a run with ``refit="neighbours"``,
        ``<out_dir>/origin.png`` (the pass whose solution each fit holds)
        and ``<out_dir>/refits.png``; then ``<out_dir>/status.png`` (a
        categorical map whose colour bar names the status codes present).
        For a model selection (its output folder, or the analysis folder
        of a ``select`` config): ``<out_dir>/selected.png`` (the chosen
        candidate, one colour each, grey where none succeeded) and
        ``<out_dir>/delta.png`` (the margin of the choice), then each
        candidate's maps in ``<out_dir>/candidate_<k>/``.

    Raises
    ------
    InputError
        If ``path`` holds no maps, or the maps are not 1-D or 2-D.

    Notes
    -----
    When a streamed store records a celestial WCS for its 2-D maps, the
    maps are drawn on WCSAxes with RA/Dec labels; otherwise on pixel axes
    (``origin="lower"``).  1-D maps are drawn as lines.  Images are made
    with matplotlib's object API (no pyplot, no GUI backend).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import parfit
    >>> from parfit.datasets import gaussian_cube
    >>> from parfit.diagnostics import plot_maps
    >>> cube = gaussian_cube((20, 4, 4), seed=0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = parfit.parallel_fit(cube.model, cube.data, world=cube.world,
    ...                             scheduler="synchronous", output=Path(tmp) / "maps.zarr")
    ...     written = plot_maps(Path(tmp) / "maps.zarr", Path(tmp) / "png")
    ...     print([p.name for p in written])
    ['amplitude.png', 'mean.png', 'stddev.png', 'status.png']
    """
    store = maps_path(path, "plot_maps")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, fig in _map_figures(store, dpi=dpi):
        target = out_dir / f"{stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, dpi=dpi, bbox_inches="tight")
        written.append(target)
    return written


def plot_overview(
    path: str | Path,
    path_png: str | Path,
    *,
    reference: Mapping[str, Any] | None = None,
    reference_label: str = "reference",
    dpi: int = 100,
) -> Path:
    """Draw every map of a store in one PNG: the parameters, the status and the statistic.

    Parameters
    ----------
    path : str or path-like
        An output store (either layout) or an analysis folder (its
        ``maps.zarr`` is drawn).
    path_png : str or path-like
        The image to write (replaced if it exists).
    reference : mapping of str to array-like, optional
        Maps to compare with, by parameter name (e.g. the truth of a
        synthetic cube), each of the shape of the store's maps.  They are
        drawn in a second row, each under its fitted map and on the same
        colour scale (that of the reference).
    reference_label : str
        What the reference maps are, in the titles (e.g. ``"true"``).
    dpi : int
        Resolution.

    Returns
    -------
    pathlib.Path
        ``path_png``.

    Raises
    ------
    InputError
        If ``path`` holds no maps, the maps are not 1-D or 2-D, or a
        reference map has another name or shape than the store's maps.

    See Also
    --------
    plot_maps : one PNG per map.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import parfit
    >>> from parfit.datasets import gaussian_cube
    >>> from parfit.diagnostics import plot_overview
    >>> cube = gaussian_cube((20, 4, 4), seed=0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = parfit.parallel_fit(cube.model, cube.data, world=cube.world,
    ...                             scheduler="synchronous", output=Path(tmp) / "maps.zarr")
    ...     out = plot_overview(Path(tmp) / "maps.zarr", Path(tmp) / "maps.png",
    ...                         reference=cube.truth, reference_label="true")
    ...     print(out.name, out.stat().st_size > 0)
    maps.png True
    """
    from matplotlib.figure import Figure

    store = maps_path(path, "plot_overview")
    if is_selection_folder(store):
        raise InputError(
            f"plot_overview: {str(path)!r} holds a model selection, whose maps are in one store "
            f"per candidate; give one of them ({str(Path(store) / candidate_store(0))!r}, ...), "
            f"or draw them all with plot_maps"
        )
    maps = _open_maps(store, "plot_overview")
    reference = _check_reference(reference, maps)
    n = len(maps.names)
    rows, cols = (2, n + 1) if reference else (1, n + 2)
    fig = Figure(figsize=(4.0 * cols, 3.5 * rows), dpi=dpi, layout="constrained")
    fitted = "fitted " if reference else ""
    for k, name in enumerate(maps.names):
        limits = _limits(reference[name]) if name in reference else None
        ax = _new_axes(fig, maps, rows, cols, k + 1)
        _draw_map(fig, ax, maps.values(name), maps.label(name), maps, limits)
        ax.set_title(f"{fitted}{name}")
        if name in reference:
            ax = _new_axes(fig, maps, rows, cols, cols + k + 1)
            _draw_map(fig, ax, reference[name], maps.label(name), maps, limits)
            ax.set_title(f"{reference_label} {name}")
    _draw_status(fig, _new_axes(fig, maps, rows, cols, n + 1), maps.status)
    ax = _new_axes(fig, maps, rows, cols, rows * cols)
    _draw_map(fig, ax, maps.values("statistic"), "statistic", maps)
    ax.set_title(f"statistic ({STATISTIC_LABELS.get(maps.asked.statistic, 'chi-square')})")
    path_png = Path(path_png)
    fig.savefig(path_png, dpi=dpi)
    return path_png


def _check_reference(reference: Mapping[str, Any] | None, maps: _Maps) -> dict[str, np.ndarray]:
    if reference is None:
        return {}
    if not isinstance(reference, Mapping):
        raise InputError(
            f"plot_overview: reference must be a mapping of parameter names to maps; got "
            f"{type(reference).__name__}"
        )
    unknown = sorted(set(reference) - set(maps.names))
    if unknown:
        raise InputError(
            f"plot_overview: reference has maps {unknown} that the store does not; its "
            f"parameters are {maps.names}"
        )
    out = {}
    for name, values in reference.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != maps.status.shape:
            raise InputError(
                f"plot_overview: reference[{name!r}] has shape {values.shape}; the maps have "
                f"shape {maps.status.shape}"
            )
        out[name] = values
    return out


def _fit_curves(x, data, start, fitted, caller):
    """``x``, ``data`` and the ``start`` / ``fitted`` curves given, as checked 1-D float arrays."""
    x = np.asarray(x, dtype=np.float64).ravel()
    data = np.asarray(data, dtype=np.float64).ravel()
    if x.shape != data.shape:
        raise InputError(
            f"{caller}: x has {x.size} values but data {data.size}; give one coordinate per sample"
        )
    curves = {}
    for name, values in (("start", start), ("fitted", fitted)):
        if values is not None:
            values = np.asarray(values, dtype=np.float64).ravel()
            if values.shape != x.shape:
                raise InputError(f"{caller}: {name} has {values.size} values but x {x.size}")
            curves[name] = values
    return x, data, curves


def _draw_fit(top, bottom, x, data, curves, *, title, x_label, y_label, empty):
    """One fit on two axes: data, start and fit above, the residuals below."""
    top.plot(x, data, "o", ms=3, color="k", label="data")
    if "start" in curves:
        top.plot(x, curves["start"], "--", color="tab:blue", label="start")
    if "fitted" in curves:
        top.plot(x, curves["fitted"], "-", color="tab:red", label="fit")
        bottom.plot(x, data - curves["fitted"], "o", ms=3, color="k")
        bottom.axhline(0.0, color="tab:red", lw=1)
    else:
        bottom.text(0.5, 0.5, empty, ha="center", va="center", transform=bottom.transAxes)
        bottom.set_yticks([])
    top.set_ylabel(y_label)
    top.legend(loc="best")
    if title:
        top.set_title(title)
    bottom.set_xlabel(x_label)
    bottom.set_ylabel("data - fit")


def plot_fit(
    path_png, x, data, start, fitted, *, title="", x_label="x", y_label="data", note=None, dpi=100
):
    """Draw one fit: data, starting and fitted model, and the residuals.

    Parameters
    ----------
    path_png : str or path-like
        The image to write (replaced if it exists).
    x : array-like
        Coordinates of the samples.
    data : array-like
        The samples (NaN samples are not drawn).
    start : array-like or None
        The starting model at ``x`` (dashed), if known.
    fitted : array-like or None
        The fitted model at ``x`` (line), None for a failed fit.
    title : str
        Title of the upper panel.
    x_label, y_label : str
        Axis labels.
    note : str, optional
        Appended to the title, e.g. why the fit failed.
    dpi : int
        Resolution.

    Returns
    -------
    pathlib.Path
        ``path_png``.

    See Also
    --------
    plot_fits : several fits (the datasets of a joint fit) in one image.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from parfit.diagnostics import plot_fit
    >>> x = np.linspace(-5, 5, 30)
    >>> model = np.exp(-0.5 * x**2)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = plot_fit(Path(tmp) / "fit.png", x, model + 0.01, 0.8 * model, model,
    ...                    title="pixel (0, 0)")
    ...     print(out.name, out.stat().st_size > 0)
    fit.png True
    """
    from matplotlib.figure import Figure

    x, data, curves = _fit_curves(x, data, start, fitted, "plot_fit")
    fig = Figure(figsize=(6.4, 5.2), dpi=dpi)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    _draw_fit(
        top,
        bottom,
        x,
        data,
        curves,
        title=" - ".join(t for t in (title, note) if t),
        x_label=x_label,
        y_label=y_label,
        empty="no fitted model: no residuals",
    )
    path_png = Path(path_png)
    fig.savefig(path_png, dpi=dpi, bbox_inches="tight")
    return path_png


@dataclasses.dataclass(frozen=True)
class FitPanel:
    """One fit of a :func:`plot_fits` image: a dataset's samples, start and fit.

    Attributes
    ----------
    x : array-like
        Coordinates of the samples.
    data : array-like
        The samples (NaN samples are not drawn).
    start : array-like or None
        The starting model at ``x`` (dashed), if known.
    fitted : array-like or None
        The fitted model at ``x`` (line); None where there is none (a failed
        fit, or a dataset without valid samples).
    title : str
        Title of the panel (its dataset, say).
    x_label, y_label : str
        Axis labels.
    note : str
        Written in the residual panel when there is no fitted model.
    """

    x: Any
    data: Any
    start: Any = None
    fitted: Any = None
    title: str = ""
    x_label: str = "x"
    y_label: str = "data"
    note: str = "no fitted model: no residuals"


#: Panels per row of :func:`plot_fits`.
_PANELS_PER_ROW = 3


def plot_fits(path_png, panels, *, title="", note=None, dpi=100):
    """Draw several fits side by side in one image (the datasets of one joint fit).

    Each panel is drawn as :func:`plot_fit` draws its one fit: data,
    starting and fitted model above, residuals below; at most three panels
    to a row.

    Parameters
    ----------
    path_png : str or path-like
        The image to write (replaced if it exists).
    panels : sequence of FitPanel
        The fits, in order.
    title : str
        Title of the whole figure.
    note : str, optional
        Appended to the title, e.g. why the fit failed.
    dpi : int
        Resolution.

    Returns
    -------
    pathlib.Path
        ``path_png``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from parfit.diagnostics import FitPanel, plot_fits
    >>> x10, x21 = np.linspace(-5, 5, 30), np.linspace(-4, 6, 20)
    >>> line10, line21 = np.exp(-0.5 * x10**2), 0.5 * np.exp(-0.5 * x21**2)
    >>> panels = [FitPanel(x10, line10 + 0.01, None, line10, title="co10 [K]"),
    ...           FitPanel(x21, line21, None, None, title="co21 [K]", note="no valid sample")]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = plot_fits(Path(tmp) / "fits.png", panels, title="pixel (0, 0)")
    ...     print(out.name, out.stat().st_size > 0)
    fits.png True
    """
    from matplotlib.figure import Figure

    given = panels
    try:
        panels = [panels] if isinstance(panels, FitPanel) else list(panels)
    except TypeError:
        panels = []
    if not panels or not all(isinstance(p, FitPanel) for p in panels):
        raise InputError(
            f"plot_fits: panels must be a non-empty sequence of FitPanel; got {given!r}"
        )
    checked = [
        _fit_curves(p.x, p.data, p.start, p.fitted, f"plot_fits: panel {k} ({p.title!r})")
        for k, p in enumerate(panels)
    ]
    n_cols = min(len(panels), _PANELS_PER_ROW)
    n_rows = -(-len(panels) // n_cols)
    fig = Figure(figsize=(5.4 * n_cols, 5.2 * n_rows), dpi=dpi, layout="constrained")
    grid = fig.add_gridspec(2 * n_rows, n_cols, height_ratios=[3, 1] * n_rows)
    for k, (panel, (x, data, curves)) in enumerate(zip(panels, checked)):
        row, col = divmod(k, n_cols)
        top = fig.add_subplot(grid[2 * row, col])
        bottom = fig.add_subplot(grid[2 * row + 1, col], sharex=top)
        top.tick_params(labelbottom=False)
        _draw_fit(
            top,
            bottom,
            x,
            data,
            curves,
            title=panel.title,
            x_label=panel.x_label,
            y_label=panel.y_label,
            empty=panel.note,
        )
    full_title = " - ".join(t for t in (title, note) if t)
    if full_title:
        fig.suptitle(full_title)
    path_png = Path(path_png)
    fig.savefig(path_png, dpi=dpi)
    return path_png
