"""Where block outputs go: the maps in memory, or a zarr store written as blocks finish.

Both sinks receive the same :class:`~parfit.engine.fields.BlockOutput` from
the same block tasks (:mod:`parfit.engine.execute`):

* :class:`MemorySink`: every block task returns its output, which the sink
  places into the maps;
* :class:`StoreSink`: every block task writes its output to the store on
  the worker (:class:`StoreWriter`), records the block as done and returns
  only its status counts; the maps never travel back through the
  scheduler, and the result reads them from the store lazily.

The store sink is planned in two steps: :meth:`StoreSink.check` changes
nothing on disk (check everything first), :meth:`StoreSink.open` takes the
store's lock and creates, replaces or reopens it.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from parfit.engine.deferred import WriteQueue
from parfit.engine.fields import BlockOutput, BlockPlace
from parfit.engine.inputs import iterating_wcs, wcs_header
from parfit.engine.plan import BlockGrid
from parfit.engine.request import DatasetLayout, FitRequest
from parfit.errors import InputError, OutputExistsError
from parfit.status import Flag, Status
from parfit.store import fingerprint, reader, writer
from parfit.store import lock as locks
from parfit.store.layout import HASH_ALGORITHM, field_specs, is_parfit_store, lock_file
from parfit.store.layout import block_grid as store_block_grid

__all__ = ["MemorySink", "StoreSink", "StoreWriter", "block_problem"]

log = logging.getLogger(__name__)


class MemorySink:
    """Assemble the maps in memory: block tasks return their whole output."""

    writer = None

    def __init__(self, request: FitRequest):
        shape = request.iterating_shape
        self.param_names = request.param_names
        self.fields = {
            name: np.full(shape, fill, dtype=dtype)
            for name, dtype, fill in field_specs(self.param_names, request.extra_fields)
        }
        self.fit_info = np.empty(shape, dtype=object) if request.fit_info else None

    def pending(self, places: list[BlockPlace]) -> list[BlockPlace]:
        return places

    def accept(self, place: BlockPlace, output: Any) -> None:
        region = place.region
        for name, values in output.fields().items():
            self.fields[name][region] = values
        if self.fit_info is not None and output.fit_info is not None:
            self.fit_info[region] = output.fit_info

    def maps(self) -> dict[str, np.ndarray]:
        return self.fields


@dataclass
class StoreWriter:
    """Writes one block's output to the store (runs on a worker; pickled per run).

    The block's input (data, weights, mask) is hashed, and the hash written
    before the block's record.  With ``lock_run_id`` the store's lock must
    still name that run, else nothing is written.  A block abandoned after
    ``fit_timeout`` is written but not recorded: a resume fits it again.
    ``store_id``, the store's run id, lets each worker keep the store's
    opened arrays from one block to the next; ``hash_algorithm`` is the
    store's (:func:`parfit.store.reader.hash_algorithm`).  With ``queue`` (in the
    process that holds the store, never pickled) the write is queued
    (:class:`~parfit.engine.deferred.WriteQueue`) and the task goes on.
    """

    path: str
    lock_run_id: str | None
    order: tuple[int, ...]
    store_id: str | None = None
    hash_algorithm: str = HASH_ALGORITHM
    datasets: tuple[DatasetLayout, ...] = ()
    queue: WriteQueue | None = field(default=None, compare=False, repr=False)

    def _cube_orders(self, cubes: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """The axis order of the input of every output cube (a joint fit's, per dataset)."""
        by_dataset = {d.name: d.order for d in self.datasets}
        return {
            name: by_dataset[name.partition(".")[2]] if "." in name else self.order
            for name in cubes
        }

    def __getstate__(self) -> dict[str, Any]:
        # In another process the queue's thread is not there: write in the task.
        return dict(self.__dict__, queue=None)

    def check(self) -> None:
        """Refuse before spending time on the fits if another run took the store."""
        if self.queue is not None:
            self.queue.raise_failure()
        elif self.lock_run_id is not None:
            writer.check_held(self.path, self.lock_run_id)

    def __call__(self, output: BlockOutput, place: BlockPlace, inputs: dict[str, Any]) -> Any:
        hashed = [inputs[name] for name in ("data", "weights", "mask") if name in inputs]
        problem = block_problem(output)
        if problem:
            log.warning(
                "the block of fits [%s] is not recorded as done (%s); a resume fits it again",
                place.describe(),
                problem,
            )
        write = functools.partial(
            writer.write_fields,
            self.path,
            output.fields(),
            place.index,
            place.offsets,
            cubes=output.cubes,
            cube_offsets={
                name: _cube_offsets(place.offsets, order, len(order) - len(place.offsets))
                for name, order in self._cube_orders(output.cubes).items()
            },
            input_hash=lambda: fingerprint.hash_block(*hashed, algorithm=self.hash_algorithm),
            run_id=self.lock_run_id,
            store_id=self.store_id,
            record=not problem and not np.any(output.status == Status.TIMEOUT),
        )
        if self.queue is not None:
            self.queue.submit(write)
        else:
            write()
        return output.status_counts()


def _maps_wcs(request: FitRequest) -> Any:
    """The WCS of the maps: of the iterating axes of the cube (a joint fit's first dataset)."""
    if request.datasets:
        first = request.datasets[0]
        return iterating_wcs(first.wcs, first.iterating_axes, len(first.shape))
    cube = request.cube
    return iterating_wcs(cube.world, request.iterating_axes, cube.ndim)


def _cube_layouts(
    request: FitRequest,
    cubes: tuple[str, ...],
    chunks: tuple[int, ...],
    map_dims: tuple[str, ...],
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[str, ...]]]:
    """``{array name: (shape, chunks, dims)}`` of the output cubes, in the input's layout.

    A joint fit writes each dataset's cubes in that dataset's own layout,
    as ``"<cube>.<dataset>"``: its iterating axes take the maps' dimension
    names, its fitting axes their own name followed by ``.<dataset>`` (two
    datasets' spectral axes differ).
    """
    cube = request.cube
    parts: list[tuple[str | None, tuple[int, ...], tuple[int, ...], tuple[str, ...]]]
    own = tuple(cube.dims) if cube.dims else tuple(f"dim_{a}" for a in range(cube.ndim))
    parts = [(None, cube.shape, request.iterating_axes, own)]
    if request.datasets:
        parts = []
        for d in request.datasets:
            names = [f"{d.dims[a] if d.dims else f'dim_{a}'}.{d.name}" for a in range(len(d.shape))]
            for k, a in enumerate(d.iterating_axes):
                names[a] = map_dims[k]
            parts.append((d.name, d.shape, d.iterating_axes, tuple(names)))
    out = {}
    for name in cubes:
        for dataset, shape, iterating, dims in parts:
            out[name if dataset is None else f"{name}.{dataset}"] = (
                shape,
                tuple(
                    shape[a] if a not in iterating else chunks[iterating.index(a)]
                    for a in range(len(shape))
                ),
                dims,
            )
    return out


def block_problem(output: BlockOutput) -> str | None:
    """What makes a block's output unfit to be recorded as done, or None.

    The checks :func:`parfit.store.verify_store` makes of a recorded block,
    made on the output before it is written: no fit ``NOT_RUN``, finite
    parameters where the status is ``OK``, NaN elsewhere.
    """
    status = output.status
    if (status == Status.NOT_RUN).any():
        return f"{int((status == Status.NOT_RUN).sum())} of its fits are NOT_RUN"
    ok = status == Status.OK
    params = output.params
    # A joint fit lacking a dataset leaves that dataset's own parameters NaN.
    whole = ok & (output.flags & np.uint8(Flag.DATASET_MISSING) == 0)
    if not np.isfinite(params[whole]).all():
        return "a fit with status OK has a parameter that is not finite"
    if not np.isnan(params[~ok]).all():
        return "a failed fit has a parameter value"
    return None


def _cube_offsets(offsets: tuple[int, ...], order: tuple[int, ...], n_fit: int) -> tuple[int, ...]:
    """Offsets of a block in the input's axis order (0 along the fitting axes)."""
    full = [0] * len(order)
    for k, axis in enumerate(order[n_fit:]):
        full[axis] = offsets[k]
    return tuple(full)


@dataclass
class StorePlan:
    """What :meth:`StoreSink.check` decided, for :meth:`StoreSink.open` to carry out.

    ``action`` is ``"create"``, ``"replace"`` (remove the old parfit store
    first) or ``"resume"``; ``done`` the blocks kept (resume); ``damaged``
    the recorded blocks to un-record and refit.  ``fingerprint`` computes
    the input's fingerprint, left None in ``provenance`` until the store is
    created when no resume needs it at once.
    """

    path: str
    action: str
    run_id: str
    layout: dict[str, Any]
    provenance: dict[str, Any]
    cubes: tuple[str, ...]
    chunks: tuple[int, ...]
    done: Any = None
    stored: dict[str, Any] | None = None
    damaged: list[tuple[int, ...]] = field(default_factory=list)
    fingerprint: Callable[[], str] | None = None


class StoreSink:
    """Stream the maps to a zarr store (:mod:`parfit.store`), resumably.

    Made by :meth:`check` (nothing on disk changes), then :meth:`open`
    (lock, create or reopen) and :meth:`close` (release the lock).
    """

    def __init__(self, plan: StorePlan, request: FitRequest):
        self.plan = plan
        self.request = request
        self.path = plan.path
        self.lock: locks.Lock | None = None
        self.done = np.zeros((0,), dtype=bool)
        self.run_id = plan.run_id
        self.writer: StoreWriter | None = None
        self.queue: WriteQueue | None = None
        self.complete = False

    # --- check, then act ----------------------------------------------------------------

    @classmethod
    def check(
        cls,
        path: str,
        request: FitRequest,
        *,
        overwrite: bool,
        resume: bool,
        cubes: tuple[str, ...],
        chunk_n_max: int,
        compute_kwargs: dict[str, Any] | None = None,
        units: dict[str, Any] | None = None,
    ) -> StoreSink:
        """Check everything about the output store; change nothing on disk.

        Validates the path (a parfit store or nothing), what ``overwrite``
        and ``resume`` allow, that no live run holds the store's lock, and on
        resume the fingerprints, the layout, the store's integrity
        (:func:`parfit.store.verify_store`: damaged blocks are planned for a
        refit) and the input of every recorded block, re-read and hashed (a
        dask computation on ``compute_kwargs``).  ``units`` (of the
        parameters, when known before the fit) are recorded on the arrays at
        creation.  Without ``chunk_n_max``
        given by the user (``request.block_size`` None), a resumed store
        keeps its own blocks.
        """
        from parfit import __version__
        from parfit.engine.plan import block_grid

        if request.n_fits == 0:
            raise InputError(
                f"output=: the maps would be empty (iterating shape {request.iterating_shape}); "
                f"there is nothing to write"
            )
        action = writer.check_target(path, overwrite=overwrite, resume=resume)
        if action == "resume" and request.block_size is None:
            stored_chunks = reader.stored_chunks(path)
            if stored_chunks is not None:
                chunk_n_max = max(1, math.prod(stored_chunks))
        grid = block_grid(request, chunk_n_max, regular=True)
        chunks = grid.block_shape
        cube = request.cube
        iterating_axes = request.iterating_axes
        dims = (
            tuple(cube.dims[a] for a in iterating_axes)
            if cube.dims
            else tuple(f"dim_{a}" for a in iterating_axes)
        )
        model_text = _model_text(request.model)
        options: dict[str, Any] = dict(
            fitting_axes=list(request.fitting_axes),
            chunk_n_max=request.block_size,
            fitter=request.fitter.describe(),
            fitter_kwargs=repr(sorted(request.fitter_kwargs.items())),
            initial="mean" if request.initial_mean else "guess" if request.guess else "model",
            data_unit=str(cube.data_unit) if cube.data_unit is not None else None,
            weights=cube.weights is not None,
            mask=cube.mask is not None,
            output_cubes=list(cubes),
        )
        if request.likelihood.fields or request.likelihood.statistic != "chi2":
            options["likelihood"] = request.likelihood.describe()
        # Added only where used, so that earlier stores keep their fingerprints.
        if request.refit is not None:
            options["refit"] = request.refit.describe()
        if request.min_snr is not None:
            options["min_snr"] = request.min_snr
        if request.order_components:
            options["order_components"] = True
        world = request.world
        world_items = (
            tuple(world.arrays)
            if world.kind != "wcs"
            else (
                world.wcs.to_header_string()
                if hasattr(world.wcs, "to_header_string")
                else repr(world.wcs),
            )
        )
        provenance: dict[str, Any] = dict(
            parfit_version=__version__,
            run_id=request.run_id,
            input_fingerprint=None,
            options_fingerprint=fingerprint.input_fingerprint(
                json.dumps(options, sort_keys=True), (model_text,)
            ),
            options=options,
            model_yaml=model_text if len(model_text) < 100_000 else None,
            wcs_header=wcs_header(_maps_wcs(request)),
            chunks=list(chunks),
            param_names=list(request.param_names),
            extra_fields=list(request.extra_fields),
        )
        if request.datasets:
            provenance["datasets"] = [d.describe() for d in request.datasets]
        cube_layouts = _cube_layouts(request, cubes, chunks, dims)
        layout: dict[str, Any] = dict(
            iterating_shape=request.iterating_shape,
            units=units,
            chunks=chunks,
            dims=dims,
            param_names=list(request.param_names),
            extra_fields=tuple(request.extra_fields),
            cubes=cube_layouts,
            coords={
                d: v
                for d, v in cube.coords.items()
                if np.ndim(v) == 1
                and (d in dims or any(d in layout[2] for layout in cube_layouts.values()))
            },
        )
        plan = StorePlan(
            path=path,
            action=action,
            run_id=request.run_id,
            layout=layout,
            provenance=provenance,
            cubes=tuple(cubes),
            chunks=chunks,
            fingerprint=functools.partial(_input_fingerprint, cube, world_items),
        )
        if plan.action == "resume":
            assert plan.fingerprint is not None
            provenance["input_fingerprint"] = plan.fingerprint()
            plan.done, plan.stored, report = writer.check_resume(
                path,
                request.iterating_shape,
                chunks,
                request.param_names,
                provenance,
                set(layout["cubes"]) | set(layout["coords"]) | set(request.extra_fields),
            )
            plan.damaged = list(report.damaged_blocks)
            unhashed = _check_block_hashes(path, plan.done, grid, compute_kwargs)
            for index in unhashed:
                plan.done[index] = False
            plan.damaged = sorted(set(plan.damaged) | set(unhashed))
        return cls(plan, request)

    @property
    def chunk_n_max(self) -> int:
        """Fits per block of this store."""
        return math.prod(self.plan.chunks)

    @property
    def resumed_run_id(self) -> str | None:
        """The run id of the store being resumed, if any."""
        if self.plan.action == "resume" and self.plan.stored is not None:
            return self.plan.stored["run_id"]
        return None

    def open(self, *, lock: bool = True, in_process: bool = False) -> None:
        """Carry out the plan: lock, then create, replace or reopen the store.

        With ``lock`` the store's lock file (``<store>.parfit.lock``, beside
        it) is taken first and the store's state is checked again under it.
        Only now is anything on disk changed: the old store removed
        (``"replace"``: only a parfit store), the new one created, or damaged
        blocks un-recorded.  If creating fails, the half-made store is
        removed (under the lock, all of it is this call's).

        ``in_process`` (the block tasks run in this process) hands the
        store's creation and the blocks' writes to a
        :class:`~parfit.engine.deferred.WriteQueue`: the first blocks are
        fitted while the store is made, and a task goes on to its next
        block while its output is written.  :meth:`finish` waits for them
        and raises what failed.
        """
        plan = self.plan
        path = plan.path
        if lock:
            parent = os.path.dirname(path)
            os.makedirs(parent, exist_ok=True)
            self.lock = locks.acquire(
                parent, run_id=plan.run_id, what=f"output {str(path)!r}", lock_file=lock_file(path)
            )
        try:
            if lock:
                self._recheck()
            if in_process:
                self.queue = WriteQueue()
            if plan.action == "resume":
                writer.unrecord(path, plan.damaged)
                done, stored = plan.done, plan.stored
            elif self.queue is not None:
                self.queue.submit(self._create)
                done = np.zeros(store_block_grid(plan.layout["iterating_shape"], plan.chunks), bool)
                stored = plan.provenance
            else:
                done, stored = self._create()
        except BaseException:
            self.close()
            raise
        self.done = done
        assert stored is not None
        self.run_id = stored["run_id"]
        self.writer = StoreWriter(
            path=path,
            lock_run_id=None if self.lock is None else self.lock.run_id,
            order=self.request.order,
            datasets=self.request.datasets,
            store_id=self.run_id,
            hash_algorithm=(
                reader.hash_algorithm(path) if plan.action == "resume" else HASH_ALGORITHM
            ),
            queue=self.queue,
        )

    def _create(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Remove the old store (``"replace"``), then create the new one.

        The input's fingerprint is taken here, where the check did not need
        it.  A half-made store is removed if this run holds the lock.
        """
        plan = self.plan
        path = plan.path
        if plan.action == "replace":
            writer.clear_store(path)
        try:
            if plan.provenance["input_fingerprint"] is None and plan.fingerprint is not None:
                plan.provenance["input_fingerprint"] = plan.fingerprint()
            return writer.create_output(path, provenance=plan.provenance, **plan.layout)
        except BaseException:
            if self.lock is not None and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)  # the half-made store of this call
            raise

    def _recheck(self) -> None:
        """Refuse if the store changed between :meth:`check` and taking its lock."""
        plan = self.plan
        path = plan.path
        now = (
            "create"
            if not os.path.exists(os.path.join(path, "zarr.json"))
            else "parfit"
            if is_parfit_store(path)
            else "other"
        )
        changed = (now != "create") if plan.action == "create" else (now != "parfit")
        if not changed and plan.action == "resume":
            recorded = reader.read_done(path)
            for index in plan.damaged:
                recorded[index] = False
            changed = not np.array_equal(recorded, plan.done)
        if changed:
            raise OutputExistsError(
                f"output {str(path)!r} was changed by another run after this call checked it; "
                f"check it (parfit inspect) and call again"
            )

    def close(self) -> None:
        """Wait for the queued writes, then release the store's lock; harmless to call twice.

        A run that stops early (an error, Ctrl-C) leaves every block it
        wrote whole: the writes queued go to the disk before the lock is
        released, and what failed among them was raised by :meth:`finish`
        or is dropped here.
        """
        if self.queue is not None:
            self.queue.drain()
            self.queue = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # --- during the run -----------------------------------------------------------------

    def pending(self, places: list[BlockPlace]) -> list[BlockPlace]:
        """The blocks not yet recorded as done."""
        return [p for p in places if not self.done[p.index]]

    def accept(self, place: BlockPlace, output: Any) -> None:
        """A block's task returned (its status counts), or failed (its failed output).

        A failed block is written, but not recorded as done: a resume tries it again.
        """
        if isinstance(output, BlockOutput):
            write = functools.partial(
                writer.write_fields,
                self.path,
                output.fields(),
                place.index,
                place.offsets,
                record=False,
                run_id=None if self.lock is None else self.lock.run_id,
            )
            if self.queue is not None:
                self.queue.submit(write)
            else:
                write()

    def finish(self) -> reader.StoreMaps:
        """Mark the store complete once every block is recorded; the maps, read lazily.

        Every block was checked before it was recorded (:func:`block_problem`)
        and the blocks kept from an earlier run were verified before the
        resume, all under the store's lock: the maps are not read back here
        (:func:`parfit.store.writer.mark_complete`).  Waits first for the
        queued writes (see :meth:`open`), and raises the first that failed.
        """
        if self.queue is not None:
            queue, self.queue = self.queue, None
            queue.wait()
        self.complete = writer.mark_complete(self.path)
        return reader.StoreMaps(self.path)

    def refit(self, run: Callable[..., list[dict[str, int]]]) -> list[dict[str, int]]:
        """Run refit passes on the store's maps, each pass journaled then applied.

        ``run(maps, first_pass, changed, done)`` runs the passes (see
        :func:`parfit.engine.refit.run_passes`) on ``maps`` (every field, in
        memory) from pass ``first_pass``, ``changed`` holding the pixels the
        last recorded pass replaced; ``done`` writes a pass to the store.
        A resumed store first applies a pass journaled but not applied, then
        goes on from the next; one whose passes ended is left as it is.
        Returns the report of every pass, recorded ones included.
        """
        state = writer.refit_state(self.path)
        applied = len(state["passes"])
        if state["journal"] > applied:  # stopped while applying it: apply it again
            writer.apply_refit_pass(self.path, state["journal"])
            applied = state["journal"]
            state = writer.refit_state(self.path)
        if state["finished"]:
            return state["passes"]
        changed = writer.refit_replaced(self.path, applied) if applied else None
        stored = reader.StoreMaps(self.path)
        maps = {name: np.array(stored[name]) for name in stored}

        def done(pass_no: int, todo: np.ndarray, replaced: np.ndarray, counts: dict) -> None:
            flat = np.flatnonzero(todo.reshape(-1))
            values = {name: np.asarray(maps[name]).reshape(-1)[flat] for name in maps}
            report = {"pass": pass_no, **counts}
            writer.write_refit_pass(
                self.path, pass_no, flat, values, replaced.reshape(-1)[flat], report
            )
            writer.apply_refit_pass(self.path, pass_no)

        run(maps, applied + 1, changed, done)
        writer.finish_refit(self.path)
        return writer.refit_state(self.path)["passes"]


def _input_fingerprint(cube: Any, world_items: tuple[Any, ...]) -> str:
    """The store's input fingerprint: data, weights and mask sampled, the world exact.

    Every block's data, weights and mask are hashed exactly into the store
    (:func:`parfit.store.hash_block`) and checked on resume: hashing the
    whole cube once more before the run would only cost time.
    """
    sampled = fingerprint.input_fingerprint(cube.data, (cube.weights, cube.mask), exact=False)
    return fingerprint.input_fingerprint(sampled, world_items)


def _check_block_hashes(
    path: str, done: np.ndarray, grid: BlockGrid, compute_kwargs: dict[str, Any] | None
) -> list[tuple[int, ...]]:
    """Re-hash the input of every recorded block and compare with the store.

    Inputs held in memory are hashed here, in threads (hashlib releases the
    GIL); others are read and hashed by a dask computation on
    ``compute_kwargs``.  Returns the recorded blocks that have no stored
    hash (to refit); raises :class:`~parfit.errors.InputError` naming the
    blocks whose input differs.
    """
    blocks = [tuple(int(i) for i in b) for b in np.argwhere(done)]
    if not blocks:
        return []
    stored = reader.read_hashes(path)
    algorithm = reader.hash_algorithm(path)
    unhashed = [b for b in blocks if not stored[b].any()]
    check = [b for b in blocks if stored[b].any()]
    sources = grid.request.sample_sources()
    names = [n for n in ("data", "weights", "mask") if n in sources]
    if all(isinstance(sources[n], np.ndarray) for n in names):
        from concurrent.futures import ThreadPoolExecutor

        places = {p.index: p for p in grid.places()}

        def digest(b: tuple[int, ...]) -> np.ndarray:
            pieces = [grid.piece(sources[n], places[b]) for n in names]
            return fingerprint.hash_block(*pieces, algorithm=algorithm)

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            hashes = list(pool.map(digest, check))
    else:
        import dask

        arrays = grid.input_arrays()
        inputs = [arrays[name].to_delayed() for name in names]
        n_fit = len(grid.request.fitting_axes)
        tasks = [
            dask.delayed(fingerprint.hash_block)(
                *(d[(0,) * n_fit + b] for d in inputs), algorithm=algorithm
            )
            for b in check
        ]
        hashes = list(dask.compute(*tasks, **(compute_kwargs or {})))
    changed = [b for b, h in zip(check, hashes) if not np.array_equal(h, stored[b])]
    if changed:
        listed = ", ".join(map(str, changed[:20])) + (
            f" and {len(changed) - 20} more" if len(changed) > 20 else ""
        )
        raise InputError(
            f"resume=True: the input of block(s) {listed} differs from what was fitted into "
            f"{str(path)!r} (their input hashes differ); resume only with the same data, "
            f"weights and mask, or choose another output path (overwrite=True replaces the "
            f"store)"
        )
    if unhashed:
        log.warning(
            "output %r: block(s) %s are recorded done without an input hash; they are fitted again",
            str(path),
            ", ".join(map(str, unhashed)),
        )
    return unhashed


def _model_text(model: Any) -> str:
    """The starting model as text, for provenance and the options fingerprint."""
    to_yaml = getattr(model, "to_yaml", None)
    if to_yaml is not None:
        try:
            return to_yaml()
        except Exception:  # e.g. an unregistered function model
            pass
    values = {name: np.asarray(getattr(model, name).value).tolist() for name in model.param_names}
    return f"{type(model).__name__} {json.dumps(values, sort_keys=True)}"
