"""Reading and verifying a store of maps (both layouts); nothing here writes."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from parfit.errors import StoreDamagedError
from parfit.status import Flag, Status
from parfit.store.layout import (
    ATTRS_KEY,
    DONE_NAME,
    HASH_NAME,
    LEGACY_HASH_ALGORITHM,
    block_grid,
    cube_names,
    field_specs,
)

if TYPE_CHECKING:
    from astropy.wcs import WCS

    from parfit.models.base import Model

log = logging.getLogger(__name__)


def read_done(path: os.PathLike[str] | str) -> npt.NDArray[np.bool_]:
    """The completion records as a bool array over the grid of blocks."""
    import zarr

    return np.asarray(zarr.open_array(str(Path(path) / DONE_NAME), mode="r")[...]) == 1


def read_hashes(path: os.PathLike[str] | str) -> npt.NDArray[np.uint8]:
    """The stored input hash of every block (grid + (HASH_SIZE,) uint8; all 0 where none)."""
    import zarr

    return np.asarray(zarr.open_array(str(Path(path) / HASH_NAME), mode="r")[...])


def hash_algorithm(path: os.PathLike[str] | str) -> str:
    """The hash of the store's block inputs (see :func:`parfit.store.hash_block`)."""
    import zarr

    array = zarr.open_array(str(Path(path) / HASH_NAME), mode="r")
    return str(array.attrs.get("algorithm", LEGACY_HASH_ALGORITHM))


@dataclass
class StoreReport:
    """What :func:`verify_store` found.

    Attributes
    ----------
    path : str
    damaged_blocks : list of tuple
        Blocks recorded done whose data are missing, undecodable or
        disagree with their status (a resume refits them).
    problems : list of str
        Every problem, in words (each damaged block's among them).
    layout_problems : list of str
        The problems not confined to blocks (metadata that does not parse,
        arrays missing or of the wrong shape, chunks or dtype).
    """

    path: str
    damaged_blocks: list[tuple[int, ...]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    layout_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def _layout(self, message: str) -> None:
        self.layout_problems.append(message)
        self.problems.append(message)


def damaged_error(report: StoreReport) -> StoreDamagedError:
    """The :class:`~parfit.errors.StoreDamagedError` describing a failed :class:`StoreReport`."""
    if report.layout_problems:
        return StoreDamagedError(
            f"output {report.path!r} is damaged: {'; '.join(report.layout_problems)}; it "
            f"cannot be read or resumed; fit again into another output path (or with "
            f"overwrite=True)"
        )
    blocks = ", ".join(map(str, report.damaged_blocks))
    return StoreDamagedError(
        f"output {report.path!r} is damaged (block(s) {blocks}): {'; '.join(report.problems)}; "
        f"resume the run with resume=True (damaged blocks are fitted again), or read it "
        f"anyway with allow_damaged=True",
        report.damaged_blocks,
    )


def _array_dirs(path: os.PathLike[str] | str) -> list[str]:
    """Names of the subdirectories of a store that hold a ``zarr.json`` (its arrays).

    Groups inside the store (the journal of refit passes) are not arrays.
    """
    path = Path(path)
    out = []
    for entry in path.iterdir():
        meta = entry / "zarr.json"
        if not (entry.is_dir() and meta.exists()):
            continue
        found, _ = _read_meta(meta)
        if found is not None and found.get("node_type") == "group":
            continue
        out.append(entry.name)
    return sorted(out)


def _read_meta(file: os.PathLike[str] | str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        meta = json.loads(Path(file).read_text())
    except (OSError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if not isinstance(meta, dict):
        return None, "not a JSON object"
    return meta, None


def _chunk_shape(meta: dict[str, Any]) -> tuple[int, ...] | None:
    try:
        return tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
    except (KeyError, TypeError):
        return None


def verify_store(
    path: os.PathLike[str] | str, *, fields: dict[str, Any] | None = None
) -> StoreReport:
    """Check a streamed parfit store before trusting it; change nothing.

    Checks that every array's metadata parses; that the arrays of the
    provenance's parameters, the fields, the completion records and the
    output cubes exist with the maps' shape, chunks and dtypes; and, for
    every block recorded done, that its chunks decode, its status chunk
    exists, no fit in it is NOT_RUN, fits with status OK have finite
    parameters and the others NaN ones.  (zarr does not write a chunk equal
    to its fill value, so a block whose fits all failed legitimately has no
    parameter chunks; its status chunk is never all 0.)  Stores written by
    :meth:`FitResult.to_zarr` get the metadata checks only.

    Parameters
    ----------
    path : path-like
    fields : dict, optional
        Receives ``{array name: values}`` of the maps read while checking
        the recorded blocks, when every chunk of them decoded.

    Returns
    -------
    StoreReport
    """
    path = Path(path)
    report = StoreReport(str(path))
    layout = _check_layout(path, report)
    if layout is not None and not report.layout_problems:
        _check_recorded_blocks(path, layout, report, fields)
    return report


#: Bytes of one array that :func:`verify_store` reads at a time (a band of blocks).
BAND_BYTES = 64 << 20


@dataclass
class _Layout:
    """What :func:`_check_layout` found: the arrays' metadata and the maps' geometry."""

    metas: dict[str, Any]
    names: list[str]
    specs: list[tuple[str, str, Any]]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]


def _check_layout(path: Path, report: StoreReport) -> _Layout | None:
    """The metadata checks of :func:`verify_store`; None for a store without blocks."""
    meta, err = _read_meta(path / "zarr.json")
    if meta is None:
        report._layout(f"the store's metadata {str(path / 'zarr.json')!r} cannot be read ({err})")
        return None
    metas: dict[str, Any] = {}  # dicts; None where unreadable (then a layout problem)
    for name in sorted(entry.name for entry in path.iterdir() if entry.is_dir()):
        file = path / name / "zarr.json"
        if not file.exists():
            continue
        metas[name], err = _read_meta(file)
        if metas[name] is None:
            report._layout(f"the metadata of array {name!r} ({str(file)!r}) cannot be read ({err})")
    info = (meta.get("attributes") or {}).get(ATTRS_KEY)
    if not (isinstance(info, dict) and "param_names" in info):
        return None  # the legacy layout of FitResult.to_zarr: no blocks to check
    names = list(info["param_names"])
    extras = list(info.get("extra_fields") or ())
    specs = [spec for spec in field_specs(names, extras) if spec[0] != "flags" or "flags" in metas]
    cubes = cube_names((info.get("options") or {}).get("output_cubes") or [], names)
    for name in [spec[0] for spec in specs] + [DONE_NAME] + cubes:
        if name not in metas:
            report._layout(f"array {name!r} is missing")
    if report.layout_problems:
        return None
    shape = tuple(metas["status"].get("shape") or ())
    chunks = tuple(info.get("chunks") or _chunk_shape(metas["status"]) or ())
    for name, dtype, _ in specs:
        got = (
            tuple(metas[name].get("shape") or ()),
            _chunk_shape(metas[name]),
            metas[name].get("data_type"),
        )
        want = (shape, chunks, np.dtype(dtype).name)
        if got != want:
            report._layout(f"array {name!r} has shape, chunks and dtype {got}; expected {want}")
    grid = block_grid(shape, chunks) if len(chunks) == len(shape) else None
    if grid is None or tuple(metas[DONE_NAME].get("shape") or ()) != grid:
        report._layout(
            f"array {DONE_NAME!r} has shape {metas[DONE_NAME].get('shape')}; "
            f"expected the grid of blocks {grid}"
        )
    return _Layout(metas, names, specs, shape, chunks)


def _check_recorded_blocks(
    path: Path, layout: _Layout, report: StoreReport, fields: dict[str, Any] | None
) -> None:
    """The block checks of :func:`verify_store`, one band of blocks at a time.

    A band is the blocks of consecutive rows of the grid of blocks, about
    :data:`BAND_BYTES` of each array: the maps are read band by band, so a
    map far larger than memory is checked in bounded memory.
    """
    import zarr

    # zarr types group[name] as Array | Group; the layout checks make it an Array.
    group: Any = zarr.open_group(str(path), mode="r")
    try:
        done = np.asarray(group[DONE_NAME][...]) == 1
    except Exception as exc:  # an undecodable chunk of the records
        report._layout(f"the completion records ({DONE_NAME!r}) cannot be read ({exc})")
        return
    blocks = [tuple(int(i) for i in b) for b in np.argwhere(done)]
    if not blocks:
        return
    shape, chunks = layout.shape, layout.chunks
    names = [spec[0] for spec in layout.specs]
    whole = (
        {name: np.zeros(shape, dtype=np.dtype(dtype)) for name, dtype, _ in layout.specs}
        if fields is not None
        else None
    )
    partial: set[str] = set()
    reasons: dict[tuple[int, ...], list[str]] = {}
    # As many rows of blocks per band as fit in BAND_BYTES per array (every
    # row of a map that small): few reads, bounded memory.
    row_bytes = 8 * (chunks[0] * math.prod(shape[1:]) if shape else 1)
    per_band = max(1, BAND_BYTES // max(row_bytes, 1))
    bands: dict[int, list[tuple[int, ...]]] = {}
    for b in blocks:
        bands.setdefault(b[0] // per_band if b else 0, []).append(b)
    for first, band in bands.items():
        if shape:
            start = first * per_band * chunks[0]
            rows = slice(start, min(start + per_band * chunks[0], shape[0]))
            offset = rows.start
        else:
            rows, offset = slice(None), 0
        selection = rows if shape else ...
        values = _read_all(str(path), names, selection)
        for name in names:
            if isinstance(values[name], Exception):  # read block by block, to say which
                values[name], complete = _read_band(group, name, rows, band, layout, reasons)
                if not complete:
                    partial.add(name)
                    continue
            if whole is not None:
                whole[name][selection] = values[name]
        for b in band:
            if b not in reasons:
                _check_block(path, b, values, offset, layout, reasons)
    if fields is not None and whole is not None:
        fields.update({name: v for name, v in whole.items() if name not in partial})
    for b in sorted(reasons):
        report.damaged_blocks.append(b)
        report.problems.append(f"block {b}: {'; '.join(reasons[b])}")


def _read_all(path: str, names: list[str], selection: Any) -> dict[str, Any]:
    """``selection`` of the arrays ``names``, read concurrently; an exception where one fails."""
    import asyncio

    import zarr.api.asynchronous as azarr
    from zarr.core.sync import sync

    async def read() -> list[Any]:
        group = await azarr.open_group(store=path, mode="r")
        arrays = await asyncio.gather(*(group.getitem(name) for name in names))
        return await asyncio.gather(
            *(array.getitem(selection) for array in arrays), return_exceptions=True
        )

    values = sync(read())
    return {
        name: value if isinstance(value, Exception) else np.asarray(value)
        for name, value in zip(names, values)
    }


def _block_region(
    b: tuple[int, ...], chunks: tuple[int, ...], shape: tuple[int, ...], offset: int = 0
) -> tuple[slice, ...]:
    """Block ``b``'s slice of the maps; with ``offset``, of a band starting at that row."""
    region = [slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(b, chunks, shape)]
    if region:
        region[0] = slice(region[0].start - offset, region[0].stop - offset)
    return tuple(region)


def _read_band(
    group: Any,
    name: str,
    rows: slice,
    band: list[tuple[int, ...]],
    layout: _Layout,
    reasons: dict[tuple[int, ...], list[str]],
) -> tuple[np.ndarray, bool]:
    """Rows ``rows`` of array ``name``, and whether every chunk of them decoded.

    Where chunks do not decode, the band is read block by block: those
    blocks read 0 and get a reason.
    """
    array = group[name]
    try:
        return np.asarray(array[rows] if layout.shape else array[...]), True
    except Exception:  # find the blocks whose chunks do not decode
        values = np.zeros(_band_shape(rows, layout), dtype=np.float64)
        start = rows.start or 0
        for b in band:
            try:
                values[_block_region(b, layout.chunks, layout.shape, start)] = array[
                    _block_region(b, layout.chunks, layout.shape)
                ]
            except Exception as exc:
                reasons.setdefault(b, []).append(f"its chunk of {name!r} cannot be decoded ({exc})")
        return values, False


def _band_shape(rows: slice, layout: _Layout) -> tuple[int, ...]:
    if not layout.shape:
        return ()
    start = rows.start or 0
    stop = layout.shape[0] if rows.stop is None else rows.stop
    return (stop - start, *layout.shape[1:])


def _check_block(
    path: Path,
    b: tuple[int, ...],
    values: dict[str, np.ndarray],
    offset: int,
    layout: _Layout,
    reasons: dict[tuple[int, ...], list[str]],
) -> None:
    """Check one recorded block against its band's ``values``; add the reasons it fails."""
    chunk_file = _chunk_file(path, "status", b, layout.metas["status"])
    if chunk_file is not None and not chunk_file.exists():
        reasons[b] = [f"its status chunk is missing ({str(chunk_file)!r})"]
        return
    region = _block_region(b, layout.chunks, layout.shape, offset)
    st = values["status"][region]
    if (st == Status.NOT_RUN).any():
        reasons[b] = [f"{int((st == Status.NOT_RUN).sum())} of its fits are NOT_RUN"]
        return
    ok = st == Status.OK
    # A joint fit lacking a dataset leaves that dataset's own parameters NaN.
    whole = ok
    if "flags" in values:
        whole = ok & (values["flags"][region] & np.uint8(Flag.DATASET_MISSING) == 0)
    for name in layout.names:
        v = values[name][region]
        if not np.isfinite(v[whole]).all():
            reasons.setdefault(b, []).append(
                f"{int((~np.isfinite(v[ok])).sum())} fit(s) with status OK have no "
                f"finite {name!r} (its chunk is missing or damaged)"
            )
        elif not np.isnan(v[~ok]).all():
            reasons.setdefault(b, []).append(
                f"{int((~np.isnan(v[~ok])).sum())} failed fit(s) have a value of {name!r}"
            )


def read_map(group: Any, name: str) -> np.ndarray:
    """Array ``name`` of ``group`` read whole; chunks that do not decode read as its fill value.

    For reporting on a damaged store (``parfit inspect``) without failing on
    it; :func:`verify_store` says which blocks are damaged.
    """
    array = group[name]
    try:
        return np.asarray(array[...])
    except Exception:  # some chunk does not decode: read chunk by chunk
        out = np.full(array.shape, array.fill_value, dtype=array.dtype)
        grid = block_grid(array.shape, array.chunks)
        for block in np.ndindex(*grid):
            region = tuple(
                slice(i * c, min((i + 1) * c, n))
                for i, c, n in zip(block, array.chunks, array.shape)
            )
            try:
                out[region] = array[region]
            except Exception:  # this chunk is damaged: leave the fill value
                pass
        return out


def _chunk_file(
    path: os.PathLike[str] | str, name: str, block: tuple[int, ...], meta: dict[str, Any]
) -> Path | None:
    """The file holding chunk ``block`` of array ``name`` (None for an unknown key encoding)."""
    encoding = meta.get("chunk_key_encoding") or {}
    separator = (encoding.get("configuration") or {}).get("separator", "/")
    if encoding.get("name", "default") == "default":
        key = separator.join(["c", *map(str, block)])
    elif encoding.get("name") == "v2":
        key = separator.join(map(str, block)) if block else "0"
    else:
        return None
    return Path(path) / name / key


def read_output(
    path: os.PathLike[str] | str,
    param_names: Sequence[str],
    fields: Mapping[str, Any] | None = None,
) -> npt.NDArray[np.float64]:
    """Every field of the store, stacked as ``iterating_shape + (n_fields,)`` float64.

    A field the store lacks (``flags`` of a store written before parfit had
    flags) is its fill value everywhere.  ``fields`` holds maps already read
    (by :func:`finish`), used instead of reading them again.
    """
    import zarr

    fields = fields or {}
    group: Any = zarr.open_group(str(path), mode="r")  # zarr: group[name] is Array | Group
    shape = tuple(group["status"].shape)
    names = set(group.array_keys())

    def field(name: str, fill: float) -> npt.NDArray[np.float64]:
        if name in fields:
            return np.asarray(fields[name], dtype=np.float64)
        if name in names:
            return np.asarray(group[name][...], dtype=np.float64)
        return np.full(shape, fill, dtype=np.float64)

    return np.stack([field(name, fill) for name, _, fill in field_specs(param_names)], axis=-1)


def open_maps_store(
    path: os.PathLike[str] | str,
) -> tuple[Any, str, list[str], dict[str, str | None], dict[str, Any], dict[str, Any]]:
    """Open a store of maps of either layout (see :func:`store_layout`).

    Returns
    -------
    group : zarr.Group
    layout : str
    names : list of str
        The fitted parameters, in the model's order.
    units : dict
        Unit (text) or None of every parameter: the arrays' ``units``
        attribute, else the unit of the store's starting model.
    provenance : dict
        ``parfit_version``, ``run_id`` and ``fitter``.
    info : dict
        The store's own attributes (``attrs["parfit"]`` of a streamed store).
    """
    import zarr

    # zarr types group[name] as Array | Group and attributes as any JSON; parfit's
    # arrays are arrays and its attributes JSON objects.
    group: Any = zarr.open_group(str(path), mode="r")
    attrs: dict[str, Any] = dict(group.attrs)
    if isinstance(attrs.get(ATTRS_KEY), dict) and "param_names" in attrs[ATTRS_KEY]:
        info = dict(attrs[ATTRS_KEY])
        names = list(info["param_names"])
        provenance = {k: info.get(k) for k in ("parfit_version", "run_id")}
        provenance["fitter"] = (info.get("options") or {}).get("fitter")
        layout = "streamed"
    else:
        info = attrs
        arrays = set(group.array_keys())
        names = [
            name
            for name in sorted(arrays)
            if f"{name}_error" in arrays
            and dict(group[name].attrs).get("long_name") in (None, f"fitted {name}")
        ]
        provenance = {
            "parfit_version": attrs.get("parfit_version"),
            "run_id": None,
            "fitter": attrs.get("fitter"),
        }
        layout = "xarray"
    start = stored_start_model(info)
    if layout == "xarray" and start is not None and set(start.param_names) == set(names):
        names = list(start.param_names)  # a store lists its arrays sorted, not in model order
    units = {
        name: dict(group[name].attrs).get("units") if name in group else None for name in names
    }
    for name in names:
        if units[name] is None and start is not None:
            unit = getattr(getattr(start, name, None), "unit", None)
            units[name] = None if unit is None else str(unit)
    return group, layout, names, units, provenance, info


def stored_flags(group: Any) -> npt.NDArray[np.uint8]:
    """The ``flags`` map of a store of either layout, uint8; all 0 where it has none.

    Stores written before parfit had flags hold no ``flags`` array: their
    fits read as having no flag set.
    """
    if "flags" in set(group.array_keys()):
        return read_map(group, "flags").astype(np.uint8)
    return np.zeros(tuple(group["status"].shape), dtype=np.uint8)


def stored_refit_passes(info: Any) -> list[dict[str, Any]]:
    """The reports of the refit passes a store records (``[]`` if none).

    ``info``: a streamed store's attributes (:func:`open_maps_store`); each
    report is ``{"pass", "refitted", "improved", "rescued"}``.
    """
    state = info.get("refit") if isinstance(info, Mapping) else None
    return list((state or {}).get("passes") or [])


def stored_options(info: Any) -> dict[str, Any]:
    """The run options a streamed store records (``{}`` for another layout).

    Among them ``initial``, and where the run used them ``refit`` (its
    method, ``max_passes`` and ``outlier``), ``min_snr`` and
    ``order_components``.
    """
    options = info.get("options") if isinstance(info, Mapping) else None
    return dict(options) if isinstance(options, Mapping) else {}


def stored_likelihood(info: Any, layout: str) -> dict[str, Any] | None:
    """What a store records of its run's statistic, null hypothesis and profiles, or None.

    The description of a :class:`parfit.fitters.likelihood.LikelihoodRequest`
    (``statistic``, ``null``, ``profile``, ``n_sigma``, ``n_sigma_ul``): the
    ``options`` of a streamed store's attributes ``info``, or the dataset
    attributes of a ``to_xarray`` store (``layout`` ``"xarray"``).  None for
    a store written before parfit recorded them (a chi-square fit).
    """
    if not isinstance(info, Mapping):
        return None
    if layout == "streamed":
        options = info.get("options")
        described = options.get("likelihood") if isinstance(options, Mapping) else None
        return dict(described) if isinstance(described, Mapping) else None
    if not isinstance(info.get("statistic"), str):
        return None
    null = info.get("null")
    try:
        held = json.loads(null) if isinstance(null, str) else None
    except ValueError:
        held = None
    return {
        "statistic": info["statistic"],
        "null": held if isinstance(held, dict) else {},
        "profile": [str(n) for n in np.atleast_1d(info.get("profile") or [])],
        "n_sigma": float(info.get("n_sigma", 1.0)),
        "n_sigma_ul": float(info.get("n_sigma_ul", 2.0)),
    }


def stored_start_model(info: Any) -> Model | None:
    """The starting model recorded in a store's attributes ``info`` (its YAML), or None.

    None where there is none, or it is an astropy model or a model class not
    registered in this process.
    """
    text = info.get("model_yaml") if isinstance(info, dict) else None
    if not text:
        return None
    from parfit.models import from_yaml

    try:
        return from_yaml(text)
    except Exception:  # not parfit YAML (an astropy model), or a model not registered here
        return None


def store_wcs(info: Any) -> WCS | None:
    """The WCS of the maps recorded in a store's attributes (its FITS header), or None."""
    header = info.get("wcs_header") if isinstance(info, dict) else None
    if not header:
        return None
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            header = (
                fits.Header(header) if isinstance(header, dict) else fits.Header.fromstring(header)
            )
            return WCS(header)
    except Exception:  # an unreadable header: no WCS
        return None


def stored_chunks(path: os.PathLike[str] | str) -> tuple[int, ...] | None:
    """The block shape recorded in the parfit store at ``path``, or None."""
    try:
        meta = json.loads((Path(path) / "zarr.json").read_text())
        chunks = meta["attributes"][ATTRS_KEY]["chunks"]
        return tuple(int(c) for c in chunks)
    except (OSError, ValueError, KeyError, TypeError):
        return None


class StoreMaps(Mapping[str, np.ndarray]):
    """The maps of a store, read one array at a time when first asked for.

    A read-only mapping from array name (:func:`~parfit.store.layout.field_specs`)
    to a read-only ndarray; an array the store lacks (``flags`` of a store
    written before parfit had flags) reads as its fill value everywhere.
    Chunks that do not decode read as the fill value (see :func:`read_map`).
    :meth:`lazy` gives a dask array over the store instead, read nothing yet.

    Parameters
    ----------
    path : path-like
    param_names : sequence of str, optional
        The fitted parameters (default: the store's own list).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import parfit
    >>> from parfit.datasets import gaussian_cube
    >>> cube = gaussian_cube((30, 3, 4), seed=2)
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "maps.zarr"
    >>> _ = parfit.parallel_fit(cube.model, cube.data, world=cube.world,
    ...                         scheduler="synchronous", output=store)
    >>> maps = StoreMaps(store)
    >>> maps.shape, maps["status"].dtype.name, type(maps.lazy("mean")).__name__
    ((3, 4), 'int8', 'Array')
    """

    # zarr types group[name] as Array | Group and attributes as any JSON.
    _group: Any

    def __init__(
        self, path: os.PathLike[str] | str, param_names: Sequence[str] | None = None
    ) -> None:
        import zarr

        self.path = str(path)
        self._group = zarr.open_group(self.path, mode="r")
        info = self._group.attrs.get(ATTRS_KEY) or {}
        if param_names is None:
            param_names = info["param_names"]
        self.param_names = list(param_names)
        #: The run's extra float maps (TS, profile intervals), as recorded.
        self.extra_fields = list(info.get("extra_fields") or ()) if isinstance(info, dict) else []
        self._specs = {
            name: (dtype, fill)
            for name, dtype, fill in field_specs(self.param_names, self.extra_fields)
        }
        self.shape = tuple(self._group["status"].shape)
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._specs:
            raise KeyError(name)
        if name not in self._cache:
            dtype, fill = self._specs[name]
            if name in self._group:
                values = read_map(self._group, name).astype(dtype, copy=False)
            else:
                values = np.full(self.shape, fill, dtype=dtype)
            values.setflags(write=False)
            self._cache[name] = values
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def lazy(self, name: str) -> Any:
        """Array ``name`` as a dask array over the store (nothing read yet)."""
        import dask.array as da

        if name in self._cache:
            return da.from_array(self._cache[name], chunks=self._group["status"].chunks)
        if name not in self._group:
            dtype, fill = self._specs[name]
            return da.full(self.shape, fill, dtype=dtype, chunks=self._group["status"].chunks)
        return da.from_zarr(self._group[name])
