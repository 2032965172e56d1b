"""How a cube is cut into blocks of fits, and the input arrays each block task reads.

A *block* is a box of the iterating axes (at most ``chunk_n_max`` fits)
with every sample of its fits; one dask task fits one block.  The blocks
follow the input's own chunks where it has them, so each block is read
from one input chunk.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from parfit.engine.fields import BlockPlace
from parfit.engine.request import FitRequest
from parfit.errors import InputError, InputTypeError

__all__ = ["BlockGrid", "auto_block_size", "block_grid", "plan_chunks"]

#: Fewest and most fits in an automatically sized block.
AUTO_MIN, AUTO_MAX = 500, 16384
#: Bytes of float64 data an automatically sized block aims at.
AUTO_BYTES = 16 << 20


def auto_block_size(n_fits: int, n_samples: int, n_cores: int | None = None) -> int:
    """The block size (fits per block) chosen when ``chunk_n_max`` is not given.

    About 16 MiB of float64 data per block (few, large blocks: each block
    task has a fixed cost, and on a cluster or with ``output=`` a larger
    one), between 500 and 16384 fits, and at least two blocks per core so
    that every core has work.

    Examples
    --------
    >>> auto_block_size(40_000, 53, n_cores=2)
    10000
    >>> auto_block_size(1_000_000, 53, n_cores=2)
    16384
    >>> auto_block_size(100, 53, n_cores=2)
    500
    """
    cores = n_cores if n_cores is not None else (os.cpu_count() or 1)
    by_memory = AUTO_BYTES // (8 * max(n_samples, 1))
    per_core = -(-n_fits // (2 * max(cores, 1)))
    return int(max(AUTO_MIN, min(AUTO_MAX, by_memory, per_core)))


def plan_chunks(
    iterating_shape: tuple[int, ...], chunk_n_max: int, native: tuple[int, ...] | None = None
) -> tuple[int, ...]:
    """Chunk sizes along the iterating axes, at most ``chunk_n_max`` fits each.

    The last axes are filled first (C order), so a block is contiguous in
    memory as far as possible.  With ``native`` (the chunk size of a dask or
    zarr input along each iterating axis), every block size divides the
    native one, so each block is cut from a single input chunk: the input
    is read chunk by chunk and never reassembled in memory.

    Examples
    --------
    >>> plan_chunks((100, 100), 500)
    (5, 100)
    >>> plan_chunks((1024, 1024), 500, native=(64, 64))
    (4, 64)
    """
    sizes = []
    budget = chunk_n_max
    for k, n in enumerate(reversed(iterating_shape)):
        c = max(1, min(n, budget))
        if native is not None:
            limit = native[len(iterating_shape) - 1 - k]
            c = max(d for d in range(1, min(limit, c) + 1) if limit % d == 0)
        sizes.append(c)
        budget = max(1, budget // c)
    return tuple(reversed(sizes))


def native_chunks(data: Any, iterating_axes: tuple[int, ...]) -> tuple[int, ...] | None:
    """The chunk size of a dask or zarr input along each iterating axis, if it has chunks."""
    chunks = getattr(data, "chunks", None)
    if chunks is None or len(chunks) != len(getattr(data, "shape", ())):
        return None
    if all(isinstance(c, tuple) for c in chunks):  # dask
        return tuple(max(chunks[a]) for a in iterating_axes)
    return tuple(int(chunks[a]) for a in iterating_axes)  # zarr and the like


def regular_chunks(sizes: tuple[int, ...], shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Dask-style chunks of ``shape`` in blocks of ``sizes`` (the last one smaller)."""
    return tuple(
        tuple([c] * (n // c) + ([n % c] if n % c else [])) if n else (0,)
        for c, n in zip(sizes, shape)
    )


def block_grid(request: FitRequest, chunk_n_max: int, *, regular: bool) -> BlockGrid:
    """The blocks of ``request``'s maps, at most ``chunk_n_max`` fits each.

    With ``regular`` (a store needs regular chunks) the blocks are parfit's
    own regular chunking; otherwise a dask input small enough chunks keeps
    its chunks, and ``request.preserve_native_chunks`` keeps them always.
    """
    data: Any = request.cube.data
    iterating_axes = request.iterating_axes
    shape = request.iterating_shape
    if request.preserve_native_chunks:
        chunks = tuple(data.chunks[a] for a in iterating_axes)
    else:
        native = native_chunks(data, iterating_axes)
        chunks = regular_chunks(plan_chunks(shape, chunk_n_max, native=native), shape)
        dask_chunks = getattr(data, "chunks", None)
        if (
            not regular
            and isinstance(dask_chunks, tuple)
            and all(isinstance(c, tuple) for c in dask_chunks)
        ):
            own = tuple(dask_chunks[a] for a in iterating_axes)
            if math.prod(max(c) for c in own) <= chunk_n_max:
                chunks = own
    return BlockGrid(request, chunks)


def check_native_chunks(request: FitRequest) -> None:
    """Refuse ``preserve_native_chunks=True`` without a dask input unchunked along the fit."""
    if not request.preserve_native_chunks:
        return
    import dask.array as da

    data: Any = request.cube.data
    if not isinstance(data, da.Array):
        raise InputTypeError("preserve_native_chunks=True needs data to be a dask array")
    for a in request.fitting_axes:
        if len(data.chunks[a]) != 1:
            raise InputError(
                f"preserve_native_chunks=True needs data unchunked along the fitting "
                f"axes, but axis {a} has chunks {data.chunks[a]}"
            )


@dataclass(frozen=True)
class BlockGrid:
    """The blocks of a run: dask-style ``chunks`` of the iterating axes, and the inputs."""

    request: FitRequest
    chunks: tuple[tuple[int, ...], ...]

    @property
    def block_shape(self) -> tuple[int, ...]:
        """The largest block's shape."""
        return tuple(max(c) for c in self.chunks)

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.chunks)

    def places(self) -> Iterator[BlockPlace]:
        """Every block, in C order."""
        starts = [np.cumsum((0,) + tuple(c[:-1])) for c in self.chunks]
        for index in np.ndindex(*self.grid_shape):
            yield BlockPlace(
                index=tuple(int(i) for i in index),
                offsets=tuple(int(st[i]) for st, i in zip(starts, index)),
                shape=tuple(int(c[i]) for c, i in zip(self.chunks, index)),
            )

    def piece(self, source: np.ndarray, place: BlockPlace) -> np.ndarray:
        """Block ``place`` of an in-memory per-sample input, fitting axes first.

        The array a block task reads (see :meth:`input_arrays`), C-contiguous.
        ``source`` broadcasts to the cube's shape.
        """
        request = self.request
        cube = request.cube
        index: list[Any] = [slice(None)] * cube.ndim
        for a, region in zip(request.iterating_axes, place.region):
            index[a] = region
        part = np.broadcast_to(source, cube.shape)[tuple(index)]
        return np.ascontiguousarray(part.transpose(request.order))

    def input_arrays(self, skip: Collection[str] = ()) -> dict[str, Any]:
        """The per-sample inputs as dask arrays in the blocks' chunks, fitting axes first.

        ``"data"``, and where given ``"weights"``, ``"mask"`` and world
        arrays ``"x0"``, ``"x1"``... (coordinates that vary between pixels);
        none of those named in ``skip``.
        """
        request = self.request
        sources = {n: v for n, v in request.sample_sources().items() if n not in skip}
        if not sources:
            return {}
        import dask.array as da

        cube = request.cube
        shape = cube.shape
        order = request.order
        full = tuple(
            (shape[a],)
            if a in request.fitting_axes
            else self.chunks[request.iterating_axes.index(a)]
            for a in range(len(shape))
        )

        def wrapped(name: str, arr: Any, chunks: Any = "auto") -> Any:
            # Named, not tokenized: dask would otherwise hash the whole array
            # (14 ms for 17 MB) for a name no other graph shares.
            return da.from_array(arr, chunks=chunks, name=f"parfit-{name}-{uuid.uuid4().hex}")

        def aligned(name: str, arr: Any) -> Any:
            arr = arr if isinstance(arr, da.Array) else wrapped(name, np.asarray(arr))
            return da.broadcast_to(arr, shape).rechunk(full).transpose(order)

        arrays = {}
        for name, source in sources.items():
            if name == "data":  # the cube itself: rechunked or wrapped (never read)
                data = (
                    source.rechunk(full)
                    if isinstance(source, da.Array)
                    else wrapped(name, source, full)
                )
                arrays[name] = data.transpose(order)
            else:
                arrays[name] = aligned(name, source)
        return arrays
