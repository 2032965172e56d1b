"""Large temporaries on the heap while a block is fitted, where a worker's malloc maps each afresh.

dask.distributed starts its workers with ``MALLOC_TRIM_THRESHOLD_`` set (to
return memory to the system).  Setting it switches off glibc's dynamic
mmap threshold, so every allocation above 128 KiB is a fresh ``mmap``: the
block kernel's temporaries (a few MiB each, allocated every iteration) are
then page-faulted and zeroed again and again, and a block takes about 40 %
longer than in any other process.  :func:`large_temporaries_on_heap` raises
the mmap threshold for the duration of a block and sets it back to 128 KiB
(glibc's default, where such a worker keeps it) afterwards.  It does
nothing where that variable is not set, where ``MALLOC_MMAP_THRESHOLD_`` is
set (the cluster's own choice), or off glibc.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["large_temporaries_on_heap"]

#: glibc's mallopt parameter and its default value.
_M_MMAP_THRESHOLD = -3
_DEFAULT = 128 * 1024
#: The threshold while a block is fitted.
_RAISED = 64 * 1024 * 1024

_lock = threading.Lock()
_active = 0
_mallopt: Any = None


def _libc_mallopt() -> Any:
    """glibc's ``mallopt``, or False where there is none."""
    global _mallopt
    if _mallopt is None:
        _mallopt = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _mallopt = libc.mallopt
                _mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
                _mallopt.restype = ctypes.c_int
            except (OSError, AttributeError):  # not glibc
                _mallopt = False
    return _mallopt


def _wanted() -> bool:
    """A worker started the way dask.distributed starts them (see the module's text)."""
    return "MALLOC_TRIM_THRESHOLD_" in os.environ and "MALLOC_MMAP_THRESHOLD_" not in os.environ


@contextlib.contextmanager
def large_temporaries_on_heap() -> Iterator[None]:
    """Within, allocations up to 64 MiB come from the heap (see the module's text)."""
    global _active
    mallopt = _libc_mallopt() if _wanted() else None
    if not mallopt:
        yield
        return
    with _lock:
        if _active == 0:
            mallopt(_M_MMAP_THRESHOLD, _RAISED)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                mallopt(_M_MMAP_THRESHOLD, _DEFAULT)
