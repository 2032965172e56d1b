"""Progress of a run: a bar with fits done, fits/s and ETA, and log lines.

:func:`parfit.engine.execute.compute_blocks` counts finished block tasks
on it: through dask's scheduler callbacks on local schedulers, as futures
complete on a ``distributed.Client``.  Either way :class:`FitProgress` draws a
tqdm bar (fits, fits/s, ETA) and, every ``log_every`` seconds, writes an
INFO line to the ``parfit.progress`` logger, so long batch runs leave a
trace in their logs even without a terminal.
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["FitProgress"]

log = logging.getLogger("parfit.progress")  # the name the docs give


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

    def __init__(self, total: int, *, bar: bool = True, log_every: float = 60.0) -> None:
        self.total = int(total)
        self.done = 0
        self.start = time.monotonic()
        self.log_every = float(log_every)
        self._last_log = self.start
        self._bar: Any = None  # a tqdm bar
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

    def update(self, n: int) -> None:
        """Record ``n`` more finished fits."""
        self.done += int(n)
        if self._bar is not None:
            self._bar.update(int(n))
        now = time.monotonic()
        if self.log_every and now - self._last_log >= self.log_every:
            self._last_log = now
            log.info("%s", self.describe())

    def describe(self, eta: bool = True) -> str:
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

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self.log_every:
            log.info("finished: %s", self.describe(eta=False))
