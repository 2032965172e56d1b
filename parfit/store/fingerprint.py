"""Fingerprints of a run's input: the whole input (cheap), and each block's (exact)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from parfit.store.layout import HASH_ALGORITHM, HASH_SIZE


def input_fingerprint(data: Any, extras: Iterable[Any] = (), *, exact: bool = True) -> str:
    """A short hash identifying the input, cheap even for cubes on disk.

    In-memory arrays up to 1 GiB are hashed whole.  Larger or lazy (dask)
    arrays contribute their shape, dtype and a fixed sample of values (the
    first and last elements and a few in between), so a different file is
    recognised without reading the cube.  ``extras`` (world coordinates,
    weights, mask, ...) are hashed the same way.  With ``exact=False``
    every array is sampled: for arrays whose every block is hashed anyway
    (:func:`hash_block`), as a store's data, weights and mask are.

    Examples
    --------
    >>> import numpy as np
    >>> from parfit.store import input_fingerprint
    >>> cube = np.zeros((3, 4, 5))
    >>> changed = cube.copy()
    >>> changed[1, 2, 2] = 1.0
    >>> input_fingerprint(cube) == input_fingerprint(changed)
    False
    >>> input_fingerprint(cube, exact=False) == input_fingerprint(changed, exact=False)
    True
    """
    h = hashlib.sha256()
    for item in (data, *extras):
        _hash_item(h, item, exact)
    return h.hexdigest()[:32]


def _hash_item(h: Any, item: Any, exact: bool) -> None:
    if item is None:
        h.update(b"none")
        return
    if isinstance(item, (str, bytes)):
        h.update(item.encode() if isinstance(item, str) else item)
        return
    shape = tuple(getattr(item, "shape", ()))
    dtype = str(getattr(item, "dtype", type(item).__name__))
    h.update(repr((shape, dtype)).encode())
    if isinstance(item, np.ndarray) and exact:
        if item.nbytes <= 2**30:
            # No copy.  numpy's stubs declare ndarray.__buffer__ only for Python >= 3.12,
            # but an ndarray is a buffer on every version.
            h.update(memoryview(np.ascontiguousarray(item)).cast("B"))  # type: ignore[arg-type]
            return
    size = math.prod(shape)
    if size == 0:
        return
    flat = np.unique(np.linspace(0, size - 1, min(size, 9)).astype(np.int64))
    index = np.unravel_index(flat, shape)
    if hasattr(item, "vindex"):
        values = np.asarray(item.vindex[index].compute())
    else:
        values = np.asarray(item)[index]
    h.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())


def hash_block(*arrays: Any, algorithm: str = HASH_ALGORITHM) -> npt.NDArray[np.uint8]:
    """The digest (HASH_SIZE uint8 values) of a block's input arrays.

    Each array contributes its shape and its values as float64 (C order), so
    the digest does not depend on memory layout; None contributes a marker.
    ``algorithm`` is ``"sha256"`` (cut to HASH_SIZE bytes) or ``"blake2b"``
    (the hash of stores written by earlier versions, whose hash array
    names no algorithm).

    Examples
    --------
    >>> import numpy as np
    >>> from parfit.store import hash_block
    >>> digest = hash_block(np.arange(6.0).reshape(2, 3))
    >>> digest.shape, digest.dtype
    ((16,), dtype('uint8'))
    >>> bool((digest == hash_block(np.arange(6.0).reshape(2, 3).copy(order="F"))).all())
    True
    """
    if algorithm == "blake2b":
        h: Any = hashlib.blake2b(digest_size=HASH_SIZE)
    elif algorithm == "sha256":
        h = hashlib.sha256()
    else:
        raise ValueError(f"algorithm: expected 'sha256' or 'blake2b', got {algorithm!r}")
    for arr in arrays:
        if arr is None:
            h.update(b"none")
            continue
        arr = np.asarray(arr)
        h.update(repr(tuple(arr.shape)).encode())
        # numpy's stubs: ndarray is a buffer only from Python 3.12 on (see _hash_item).
        h.update(memoryview(np.ascontiguousarray(arr, dtype=np.float64)).cast("B"))  # type: ignore[arg-type]
    return np.frombuffer(h.digest()[:HASH_SIZE], dtype=np.uint8).copy()
