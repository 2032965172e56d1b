"""Progress of a run: a bar with fits done, fits/s and ETA, and log lines.

:func:`run_with_progress` computes a parfit graph while counting finished
block tasks.  On local schedulers it hooks dask's scheduler callbacks; on a
``distributed.Client`` it submits the block tasks as futures and counts
them as they complete.  Either way the same :class:`FitProgress` draws a
tqdm bar (fits, fits/s, ETA) and, every ``log_every`` seconds, writes an
INFO line to the ``parfit.progress`` logger, so long batch runs leave a
trace in their logs even without a terminal.
"""

import logging
import time

__all__ = ["BlockFailure", "FitProgress", "run_with_progress"]

log = logging.getLogger(__name__)


class BlockFailure:
    """A block whose task failed on the cluster, with the exception."""

    def __init__(self, exception, key):
        self.exception = exception
        self.key = key

    @property
    def killed_worker(self):
        """True when the task's workers died (distributed's ``KilledWorker``)."""
        return type(self.exception).__name__ == "KilledWorker"


class FitProgress:
    """Count fits as blocks finish; draw a bar and log now and then.

    Parameters
    ----------
    total : int
        Fits in the run.
    bar : bool
        Draw a tqdm bar (on stderr).
    log_every : float
        Seconds between INFO log lines (0 for none).
    """

    def __init__(self, total, *, bar=True, log_every=60.0):
        self.total = int(total)
        self.done = 0
        self.start = time.monotonic()
        self.log_every = float(log_every)
        self._last_log = self.start
        self._bar = None
        if bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.total,
                unit="fit",
                unit_scale=True,
                desc="parfit",
                smoothing=0.1,
                dynamic_ncols=True,
            )

    def update(self, n):
        """Record ``n`` more finished fits."""
        self.done += int(n)
        if self._bar is not None:
            self._bar.update(int(n))
        now = time.monotonic()
        if self.log_every and now - self._last_log >= self.log_every:
            self._last_log = now
            log.info("%s", self.describe())

    def describe(self, eta=True):
        """One line: fits done, rate and (with ``eta``) the time left."""
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.done / elapsed
        text = (
            f"{self.done}/{self.total} fits ({100 * self.done / max(self.total, 1):.1f} %), "
            f"{rate:.0f} fits/s, {elapsed:.1f} s elapsed"
        )
        if eta:
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            text += f", about {left:.0f} s left"
        return text

    def close(self):
        if self._bar is not None:
            self._bar.close()
        if self.log_every:
            log.info("finished: %s", self.describe(eta=False))


def run_with_progress(tasks, sizes, compute_kwargs, client, progress):
    """Compute ``tasks`` (a list of dask collections, one per block).

    Parameters
    ----------
    tasks : list
        Dask collections, each computing one block.
    sizes : list of int
        Fits in each block.
    compute_kwargs : dict
        For ``dask.compute`` on local schedulers.
    client : distributed.Client or None
    progress : FitProgress or None

    Returns
    -------
    list
        The blocks' results, in order.  On a distributed cluster a block
        whose task failed for good is a :class:`BlockFailure` instead.
    """
    import dask

    if client is not None:
        from distributed import as_completed

        futures = client.compute(tasks)
        index = {f.key: k for k, f in enumerate(futures)}
        results = [None] * len(futures)
        for future in as_completed(futures):
            k = index[future.key]
            if future.status == "error":
                # The block's task failed for good (e.g. distributed gave up
                # after its worker died repeatedly): hand back the exception
                # instead of losing every other block.
                results[k] = BlockFailure(future.exception(), future.key)
            else:
                results[k] = future.result()
            if progress is not None:
                progress.update(sizes[k])
        # A worker's death also condemns the tasks queued on it, so a block may
        # fail only for being next to a block that kills its worker: try every
        # such block once more, one at a time, before giving up on it.
        for k, result in enumerate(results):
            if isinstance(result, BlockFailure) and result.killed_worker:
                client.retry([futures[k]])
                try:
                    results[k] = futures[k].result()
                except Exception as exc:  # failed again: it is the block's own doing
                    results[k] = BlockFailure(exc, futures[k].key)
        return results
    if progress is None:
        return list(dask.compute(*tasks, **compute_kwargs))
    from dask.callbacks import Callback

    keys = {}
    for task, n in zip(tasks, sizes):
        for key in task.__dask_keys__() if hasattr(task, "__dask_keys__") else ():
            for flat in _flatten(key):
                keys[flat] = n

    class _Counter(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            n = keys.get(key)
            if n:
                progress.update(n)

    with _Counter():
        return list(dask.compute(*tasks, **compute_kwargs))


def _flatten(keys):
    if isinstance(keys, list):
        for item in keys:
            yield from _flatten(item)
    else:
        yield keys
