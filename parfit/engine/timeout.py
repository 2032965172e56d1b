"""Cutting off a block whose fitting hangs: ``parallel_fit(fit_timeout=...)``.

A user model that never returns would hold its dask task, and so the
whole run, forever.  With a timeout the block kernel fits the block in a
helper thread and waits for it at most ``fit_timeout`` seconds.  If the
thread is still busy then, the block's fits are given up
(``Status.TIMEOUT``) and the task returns, so the run goes on.

A thread cannot be killed from outside.  The abandoned thread is asked to
stop by raising :class:`Abandoned` inside it (CPython's
``PyThreadState_SetAsyncExc``), which takes effect at its next Python
bytecode: a model looping in Python stops at once, one waiting in C code
(``time.sleep``, a socket) when that call returns.  Until then it keeps
running as a daemon thread and cannot hold up the end of the process.  The
mechanism is the same on every scheduler because it runs inside the task:
threads, processes and dask.distributed workers alike.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Abandoned", "call_with_timeout", "TimedOut"]


class Abandoned(KeyboardInterrupt):
    """Raised inside a thread whose block ran past its timeout.

    It derives from ``KeyboardInterrupt`` because that is the one exception
    the fitters let through (any other is a fit's own failure), so the
    abandoned block stops instead of going on to its next fit.
    """


class TimedOut:
    """The marker :func:`call_with_timeout` returns when time ran out."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"TimedOut({self.seconds!r})"


#: How often, and for how long, an abandoned thread is asked again to stop
#: (a model can catch one exception; a reaper repeats the request).
_REPEAT_S = 0.05
_GIVE_UP_S = 60.0


def call_with_timeout(
    func: Callable[..., Any], seconds: float | None, *args: Any, **kwargs: Any
) -> Any:
    """``func(*args, **kwargs)``, or :class:`TimedOut` after ``seconds``.

    ``seconds=None`` calls ``func`` in this thread, without any limit.  An
    exception raised by ``func`` is raised here.

    Examples
    --------
    >>> import time
    >>> call_with_timeout(sum, 1.0, [1, 2, 3])
    6
    >>> call_with_timeout(time.sleep, 0.05, 10)
    TimedOut(0.05)
    """
    if seconds is None:
        return func(*args, **kwargs)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = func(*args, **kwargs)
        except Abandoned:
            pass
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="parfit-timed-block", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        _stop(thread)
        return TimedOut(seconds)
    if "error" in box:
        raise box["error"]
    return box["value"]


def _stop(thread: threading.Thread) -> None:
    """Ask ``thread`` to stop now, and keep asking from a reaper thread."""
    if not _interrupt(thread):
        return

    def reap() -> None:
        waited = 0.0
        while thread.is_alive() and waited < _GIVE_UP_S:
            thread.join(_REPEAT_S)
            waited += _REPEAT_S
            if thread.is_alive():
                _interrupt(thread)

    threading.Thread(target=reap, name="parfit-reaper", daemon=True).start()


def _interrupt(thread: threading.Thread) -> bool:
    """Raise :class:`Abandoned` in ``thread``; False if it has already ended."""
    ident = thread.ident
    if ident is None or not thread.is_alive():
        return False
    n = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(Abandoned)
    )
    if n > 1:  # pragma: no cover - cannot happen for one live thread id
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
        return False
    return n == 1
