"""Thread-safe capture of the warnings raised by one fit.

:func:`warnings.catch_warnings` swaps process-global state, so two threads
capturing at once (dask's threaded scheduler) steal each other's warnings or
leave the global state corrupted.  Here the global state is swapped once, on
entry of the first capturing thread, to a dispatcher that sends each warning
to the list of the thread that raised it; the last thread to leave restores
the original state.  Threads that are not capturing see their warnings shown
as usual.
"""

import contextlib
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

__all__ = ["capture_warnings", "format_warnings"]

_lock = threading.Lock()
_depth = 0
_saved: tuple[list[Any], Any] | None = None
_local = threading.local()


def _dispatch(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    records = getattr(_local, "records", None)
    if records is None:
        if _saved is not None:
            original = _saved[1]
        else:  # the default showwarning, which warnings keeps under a private name
            original = warnings._showwarning_orig  # type: ignore[attr-defined]
        original(message, category, filename, lineno, file, line)
        return
    records.append(warnings.WarningMessage(message, category, filename, lineno, file, line))


@contextlib.contextmanager
def capture_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Record every warning raised in this thread inside the block.

    Yields
    ------
    list of warnings.WarningMessage
        Filled as warnings are raised; every warning is recorded, even one
        already shown from the same code location before.

    Examples
    --------
    >>> import warnings
    >>> with capture_warnings() as records:
    ...     warnings.warn("the model overflowed", RuntimeWarning)
    >>> [(r.category.__name__, str(r.message)) for r in records]
    [('RuntimeWarning', 'the model overflowed')]
    """
    global _depth, _saved
    records: list[warnings.WarningMessage] = []
    with _lock:
        if _depth == 0:
            _saved = (list(warnings.filters), warnings.showwarning)
            warnings.simplefilter("always")
            warnings.showwarning = _dispatch
        _depth += 1
    previous = getattr(_local, "records", None)
    _local.records = records
    try:
        yield records
    finally:
        _local.records = previous
        with _lock:
            _depth -= 1
            if _depth == 0:
                assert _saved is not None  # set by the first thread in; for mypy
                filters, showwarning = _saved
                warnings.filters[:] = filters  # type: ignore[index]  # a list, typed as Sequence
                warnings.showwarning = showwarning
                _saved = None
                # Forget the per-module "already shown" registries built
                # while everything was shown.
                mutated = getattr(warnings, "_filters_mutated", None)
                if mutated is not None:
                    mutated()


def format_warnings(records: Sequence[warnings.WarningMessage]) -> str:
    """Render recorded warnings as ``warn.log`` text, one per line."""
    return "".join(
        f"{r.filename}:{r.lineno}: {r.category.__name__}: {r.message}\n" for r in records
    )
