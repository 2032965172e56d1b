"""Run a :class:`~parfit.engine.request.FitRequest`: one task per block, into a sink.

Every run takes the same path, whatever the scheduler and the sink:

1. the blocks (:mod:`parfit.engine.plan`) the sink still wants;
2. one dask task per block, running :func:`run_block`: the kernel
   (:func:`parfit.engine.kernel.fit_block`), then the sink's writer on the
   worker, if it has one;
3. the tasks computed with ``dask.compute`` on a local scheduler (counting
   finished blocks for the progress bar), or as futures on a
   ``distributed.Client``, where a block whose task fails for good (its
   worker keeps dying) is retried once alone and then given up: its fits
   get ``WORKER_CRASH`` (or ``FIT_ERROR``) and every other block is kept;
4. each block's return value handed to the sink.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from parfit.engine.fields import BlockOutput, BlockPlace
from parfit.engine.kernel import BlockSpec, fit_block, make_block
from parfit.engine.plan import BlockGrid
from parfit.engine.progress import FitProgress
from parfit.engine.request import Execution, FailedBlock, FitRequest, RunInfo
from parfit.fitters.base import FitBlock
from parfit.status import Status

__all__ = ["BlockFailure", "block_spec", "fit_pixel", "pixel_block", "run", "run_block"]

log = logging.getLogger(__name__)


@dataclass
class BlockFailure:
    """A block whose task failed on the cluster, with the exception."""

    exception: BaseException
    key: Any = None

    @property
    def killed_worker(self) -> bool:
        """True when the task's workers died (distributed's ``KilledWorker``)."""
        return type(self.exception).__name__ == "KilledWorker"


def block_spec(request: FitRequest, cubes: tuple[str, ...] = ()) -> BlockSpec:
    """What every block task of ``request`` needs besides its arrays."""
    world = request.world
    shared_x: tuple[np.ndarray, ...] = ()
    if world.kind == "shared":
        shared_x = tuple(
            np.ascontiguousarray(w, dtype=np.float64).reshape(-1) for w in world.arrays
        )
    parameters = [
        (name, *(None if np.ndim(v) else float(v) for v in values))
        for name, *values in request.parameters
    ]
    diagnostics = request.diagnostics
    return BlockSpec(
        model=request.model,
        fitter=request.fitter,
        fitter_kwargs=request.fitter_kwargs,
        fit_info=request.fit_info,
        order=request.order,
        sample_shape=request.sample_shape,
        iterating_shape=request.iterating_shape,
        world=world if world.kind == "wcs" else _without_arrays(world),
        parameters=parameters,
        run_id=request.run_id,
        guess=request.guess,
        fit_timeout=request.fit_timeout,
        diagnostics=None if diagnostics is None else diagnostics.mode,
        diagnostics_path=None if diagnostics is None else diagnostics.path,
        diagnostics_callable=None if diagnostics is None else diagnostics.callable,
        cubes=cubes,
        shared_x=shared_x,
        datasets=request.datasets,
        likelihood=request.likelihood,
        todo=request.todo is not None,
        min_snr=request.min_snr,
        order_components=request.order_components,
    )


def _without_arrays(world: Any) -> Any:
    """``world`` without its arrays (the tasks get them otherwise), for a small spec."""
    import dataclasses

    return dataclasses.replace(world, arrays=())


class _Piece:
    """A block of an in-memory input, cut when the task runs (tasks run in this process).

    A plain class, not a dataclass: dask leaves it as it is instead of
    walking its fields for collections.
    """

    __slots__ = ("grid", "place", "source")

    def __init__(self, grid: BlockGrid, source: np.ndarray, place: BlockPlace) -> None:
        self.grid, self.source, self.place = grid, source, place

    def cut(self) -> np.ndarray:
        return self.grid.piece(self.source, self.place)


def run_block(inputs: dict[str, Any], spec: BlockSpec, place: BlockPlace, writer: Any) -> Any:
    """One block task: fit the block, then hand it to the sink's writer (on the worker).

    Returns the :class:`BlockOutput`, or what ``writer`` returns.
    """
    if writer is not None:
        writer.check()
    inputs = {n: v.cut() if isinstance(v, _Piece) else v for n, v in inputs.items()}
    output = fit_block(inputs, spec, place)
    if writer is None:
        return output
    return writer(output, place, inputs)


def run(
    request: FitRequest,
    grid: BlockGrid,
    sink: Any,
    execution: Execution,
    info: RunInfo,
    cubes: tuple[str, ...] = (),
) -> None:
    """Fit every block of ``grid`` that ``sink`` still wants, and hand the results to it.

    ``info`` receives the counts of blocks and the failed ones.
    """
    places = list(grid.places())
    todo = sink.pending(places)
    if request.todo is not None:  # a refit pass: only the blocks holding pixels to refit
        todo = [p for p in todo if np.asarray(request.todo)[p.region].any()]
    info.block_shape = grid.block_shape
    info.blocks = len(places)
    info.blocks_fitted = len(todo)
    info.blocks_resumed = len(places) - len(todo)
    if not todo:
        return
    spec_value = block_spec(request, cubes)
    # In this process (threads, synchronous), a task cuts its block out of a
    # cube in memory itself, when it runs: no dask array is built.
    in_memory = (
        _in_memory_sources(request) if execution.client is not None or execution.in_process else {}
    )
    n_fit = len(request.fitting_axes)
    shape = request.iterating_shape
    maps = [
        (f"{name}:{what}", np.broadcast_to(np.asarray(v, dtype=np.float64), shape))
        for name, *values in request.parameters
        for what, v in zip(("value", "lower", "upper"), values)
        if np.ndim(v)
    ]
    if request.todo is not None:
        maps.append(("todo", np.asarray(request.todo, dtype=np.float64)))
    sizes = [p.size for p in todo]
    bar = FitProgress(sum(sizes), bar=True) if execution.progress else None

    def block_inputs(place: BlockPlace, blocks: dict[str, Any]) -> dict[str, Any]:
        inputs: dict[str, Any] = dict(blocks)
        if execution.in_process:
            inputs.update({n: _Piece(grid, v, place) for n, v in in_memory.items()})
        else:
            inputs.update({n: grid.piece(v, place) for n, v in in_memory.items()})
        for key, values in maps:
            inputs[key] = np.ascontiguousarray(values[place.region])
        return inputs

    if execution.threads and len(in_memory) == len(request.sample_sources()):
        # Every input is in memory and no dask scheduler was asked for: the
        # tasks run on this process's threads without dask (not even imported).
        calls: list[Callable[[], Any]] = [
            functools.partial(run_block, block_inputs(p, {}), spec_value, p, sink.writer)
            for p in todo
        ]
        try:
            results = run_in_threads(calls, sizes, bar)
        finally:
            if bar is not None:
                bar.close()
        _hand_over(request, todo, results, sink, info)
        return

    import dask

    spec = dask.delayed(spec_value, name=f"parfit-spec-{request.run_id}", traverse=False)
    writer = sink.writer
    if writer is not None:
        writer = dask.delayed(writer, name=f"parfit-writer-{request.run_id}", traverse=False)
    # On a cluster, a cube held in memory goes to the workers block by block,
    # scattered, not through the scheduler inside the graph.  Scattered data
    # have no lineage: a block whose input died with a worker is run again
    # with its input inside its task (``fallback``).
    arrays = {name: a.to_delayed() for name, a in grid.input_arrays(skip=in_memory).items()}

    scattered: dict[tuple[int, ...], dict[str, Any]] = {}
    if in_memory and execution.client is not None:
        # Every block's pieces in one call.  A list, not a dict: scatter names
        # a dict's futures after its keys, which every block shares.
        names = list(in_memory)
        pieces = [grid.piece(in_memory[n], place) for place in todo for n in names]
        futures = iter(execution.client.scatter(pieces, hash=False))
        scattered = {place.index: {n: next(futures) for n in names} for place in todo}

    def task(place: BlockPlace, scatter: bool) -> Any:
        full = (0,) * n_fit + place.index
        parts: dict[str, Any] = {name: blocks[full] for name, blocks in arrays.items()}
        if scatter and execution.client is not None:
            inputs = {**parts, **scattered.get(place.index, {})}
            for key, values in maps:
                inputs[key] = np.ascontiguousarray(values[place.region])
        else:
            inputs = block_inputs(place, parts)
        return dask.delayed(run_block, pure=False)(
            inputs,
            spec,
            place,
            writer,
            dask_key_name=f"parfit-block-{request.run_id}-"
            + "_".join(map(str, place.index))
            + ("" if scatter else "-again"),
        )

    tasks = [task(place, scatter=True) for place in todo]
    fallback = (
        (lambda k: task(todo[k], scatter=False))
        if in_memory and execution.client is not None
        else None
    )
    try:
        results = compute_blocks(tasks, sizes, execution, bar, fallback)
    finally:
        if bar is not None:
            bar.close()
    _hand_over(request, todo, results, sink, info)


def _hand_over(
    request: FitRequest, todo: list[BlockPlace], results: list[Any], sink: Any, info: RunInfo
) -> None:
    """Give each block's result to ``sink``; a failed block's fits as failed."""
    for place, result in zip(todo, results):
        if isinstance(result, BlockFailure):
            info.failed_blocks.append(_failed(result, place))
            status = Status.WORKER_CRASH if result.killed_worker else Status.FIT_ERROR
            result = BlockOutput.failed(
                request.param_names, place.shape, status, bool(request.fit_info)
            )
        sink.accept(place, result)


def _in_memory_sources(request: FitRequest) -> dict[str, np.ndarray]:
    """The per-sample inputs (by block input name) that are numpy arrays in this process."""
    return {n: v for n, v in request.sample_sources().items() if isinstance(v, np.ndarray)}


def _failed(failure: BlockFailure, place: BlockPlace) -> FailedBlock:
    status = Status.WORKER_CRASH if failure.killed_worker else Status.FIT_ERROR
    where = place.describe()
    log.warning(
        "the block of fits [%s] failed on the cluster (%s: %s); its %d fits are "
        "marked %s, the other blocks are kept",
        where,
        type(failure.exception).__name__,
        failure.exception,
        place.size,
        status.name,
    )
    return FailedBlock(
        region=where,
        status=status.name,
        error=f"{type(failure.exception).__name__}: {failure.exception}",
    )


def compute_blocks(
    tasks: list[Any],
    sizes: list[int],
    execution: Execution,
    progress: FitProgress | None,
    fallback: Callable[[int], Any] | None = None,
) -> list[Any]:
    """Compute ``tasks`` (one per block) and return their results in order.

    On a distributed cluster a block whose task failed for good is a
    :class:`BlockFailure` instead of its result; finished blocks count on
    ``progress`` as they come.  ``fallback(k)``, if given, is another task
    for block ``k`` that does not depend on scattered data, run when the
    first one fails.
    """
    import dask

    client = execution.client
    if client is not None:
        return _on_cluster(client, tasks, sizes, progress, fallback)
    if progress is None:
        return list(dask.compute(*tasks, **execution.compute_kwargs))
    from dask.callbacks import Callback

    keys = {task.key: n for task, n in zip(tasks, sizes)}

    class _Counter(Callback):
        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            n = keys.get(key)
            if n:
                # mypy does not carry the narrowing above into a nested class's method.
                assert progress is not None
                progress.update(n)

    with _Counter():
        return list(dask.compute(*tasks, **execution.compute_kwargs))


def run_in_threads(
    calls: list[Callable[[], Any]], sizes: list[int], progress: FitProgress | None
) -> list[Any]:
    """Run ``calls`` (one per block) on a pool of this process's threads; their results in order.

    What dask's threaded scheduler does with the same tasks, without dask: as
    many threads as this process may use cores (``os.sched_getaffinity``),
    finished blocks counted on ``progress`` as they come, and the first
    exception raised (the blocks not started yet are dropped).
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    results: list[Any] = [None] * len(calls)
    if not calls:
        return results
    n_threads = min(len(calls), local_threads())
    with ThreadPoolExecutor(n_threads, thread_name_prefix="parfit-block") as pool:
        index = {pool.submit(call): k for k, call in enumerate(calls)}
        try:
            for future in as_completed(index):
                k = index[future]
                results[k] = future.result()
                if progress is not None:
                    progress.update(sizes[k])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return results


def local_threads() -> int:
    """Threads for the blocks of a run in this process: the cores it may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def _on_cluster(
    client: Any,
    tasks: list[Any],
    sizes: list[int],
    progress: Any,
    fallback: Callable[[int], Any] | None,
) -> list[Any]:
    from distributed import as_completed

    futures = client.compute(tasks)
    index = {f.key: k for k, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    for future in as_completed(futures):
        k = index[future.key]
        results[k] = _outcome(future)
        if progress is not None:
            progress.update(sizes[k])
    # A worker's death also condemns the tasks queued on it, and the data
    # scattered to it: a block may fail only for being next to a block that
    # kills its worker.  Try every failed block once more, alone (with its
    # input inside its task, where it was scattered), before giving up on it.
    for k, result in enumerate(results):
        if not isinstance(result, BlockFailure):
            continue
        if fallback is not None:
            again = client.compute(fallback(k))
        elif result.killed_worker:
            client.retry([futures[k]])
            again = futures[k]
        else:
            continue
        results[k] = _outcome(again)
    return results


def _outcome(future: Any) -> Any:
    """A finished future's result, or a :class:`BlockFailure` (failed, cancelled or lost).

    A block's task may fail for good (distributed gave up after its worker
    died repeatedly), or its result or scattered input may die with a
    worker after it finished: keep the exception instead of losing every
    other block.
    """
    try:
        return future.result()
    except Exception as exc:
        return BlockFailure(exc, future.key)


def pixel_block(request: FitRequest, pixel: tuple[int, ...]) -> FitBlock:
    """The block of the one fit at ``pixel`` of ``request``: its world, data, weights, starts."""
    return make_block(_pixel_inputs(request, pixel), block_spec(request), _pixel_place(pixel))


def _pixel_place(pixel: tuple[int, ...]) -> BlockPlace:
    return BlockPlace(index=(0,) * len(pixel), offsets=tuple(pixel), shape=(1,) * len(pixel))


def _pixel_inputs(request: FitRequest, pixel: tuple[int, ...]) -> dict[str, Any]:
    cube = request.cube
    iterating = request.iterating_axes
    index: list[Any] = [slice(None)] * cube.ndim
    for i, a in zip(pixel, iterating):
        index[a] = slice(i, i + 1)

    def take(arr: Any) -> np.ndarray:
        if hasattr(arr, "compute"):
            import dask.array as da

            part = da.broadcast_to(arr, cube.shape)[tuple(index)].compute()
        else:
            part = np.broadcast_to(np.asarray(arr), cube.shape)[tuple(index)]
        return np.asarray(part).transpose(request.order)

    inputs: dict[str, Any] = {name: take(v) for name, v in request.sample_sources().items()}
    place = _pixel_place(pixel)
    for name, *values in request.parameters:
        for what, v in zip(("value", "lower", "upper"), values):
            if np.ndim(v):
                full = np.broadcast_to(np.asarray(v, dtype=np.float64), request.iterating_shape)
                inputs[f"{name}:{what}"] = full[place.region]
    return inputs


def fit_pixel(request: FitRequest, pixel: tuple[int, ...]) -> tuple[FitBlock, BlockOutput]:
    """Fit one pixel of ``request`` here and now: a block of one fit, through the kernel.

    Returns the block (its world ``x``, data ``y`` and validity) and the
    output, whose ``start`` holds the values the fit started from (after
    its guess, with ``initial="guess"``).  No diagnostics folder is written.
    """
    import dataclasses

    inputs = _pixel_inputs(request, pixel)
    place = _pixel_place(pixel)
    spec = dataclasses.replace(block_spec(request), diagnostics=None, keep_start=True)
    return make_block(inputs, spec, place), fit_block(inputs, spec, place)
