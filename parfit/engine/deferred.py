"""Store writes handed off to one thread of this process, so that fitting goes on meanwhile.

With the threads or synchronous scheduler, the block tasks run in the
process that holds the store's lock.  A task then need not wait for its
block to reach the disk: it queues the write (:class:`WriteQueue`) and
returns, and its thread fits the next block while the write runs.  The
store's creation is queued first, so the first blocks are fitted while it
is made.  Writes run one at a time, in the order they were queued: the
store exists before any block is written, and each block's record still
follows its data.

After a failed job every later one is skipped, and the failure is raised
to the next task that queues a write and again by :meth:`WriteQueue.wait`:
nothing is written into a store whose creation failed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from typing import Any

__all__ = ["WriteQueue"]


class WriteQueue:
    """Jobs run in order on one thread; at most ``limit`` waiting at a time.

    ``limit`` bounds the memory held by block outputs waiting to be
    written: a task that would exceed it waits for a slot.
    """

    def __init__(self, limit: int = 4):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parfit-store")
        self._slots = threading.BoundedSemaphore(limit)
        self._futures: list[Future[Any]] = []
        self._failure: BaseException | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], Any]) -> None:
        """Queue ``job``; raise at once the failure of an earlier job, if any."""
        self.raise_failure()
        self._slots.acquire()
        try:
            future = self._pool.submit(self._run, job)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        with self._lock:
            self._futures.append(future)

    def _run(self, job: Callable[[], Any]) -> Any:
        if self._failure is not None:
            return None  # skipped: an earlier job failed
        try:
            return job()
        except BaseException as exc:
            self._failure = exc
            raise

    def raise_failure(self) -> None:
        """Raise the first failure of a job, if one failed."""
        if self._failure is not None:
            raise self._failure

    def wait(self) -> None:
        """Wait for every queued job; raise the first failure.  The queue closes."""
        self.drain()
        self.raise_failure()

    def drain(self) -> None:
        """Wait for every queued job, whatever it raised; the queue closes."""
        with self._lock:
            futures, self._futures = self._futures, []
        wait_all(futures)  # a job's exception is kept in self._failure
        self._pool.shutdown(wait=True)
