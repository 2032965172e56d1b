"""Load numba and the compiled kernel before the first fit needs them.

The first fit in a fresh process pays numba's one-off start-up: importing
numba, setting up its compilation target and loading the kernel from
numba's on-disk cache (about 0.6 s on a laptop), or compiling it when that
cache is empty, the first fit after installing parfit (about 20 s).

* :func:`start` (called by ``import parfit``) does this in a background
  daemon thread, so that it overlaps whatever the session does before its
  first fit: in Jupyter, IPython and the interactive interpreter, or
  wherever ``PARFIT_WARMUP=1`` is set (``PARFIT_WARMUP=0`` turns it off
  everywhere; see :func:`enabled`).  A fit
  (and a ``fork``) that starts while the warm-up runs waits for it
  (:func:`wait`): the two never import or compile at once.  Errors in the
  warm-up are never raised; the fit then loads or compiles as usual.
* :func:`warm` does it here and now, for a choice of the kernel's variants;
  ``python -m parfit.fitters.warmup`` compiles all of them into numba's
  cache (after installing parfit, or when building an image), so that no
  first fit compiles.

Examples
--------
>>> from parfit.fitters import warmup
>>> warmup.wait()  # returns at once when no warm-up is running
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Sequence

import numpy as np

__all__ = ["KINDS", "enabled", "interactive", "main", "start", "wait", "warm"]

log = logging.getLogger(__name__)

#: The variants of the kernel :func:`warm` can load: least squares (the
#: default fit), counts (``statistic="cash"``), a model with ties, and the
#: step functions of the numpy engine (models without a compiled form).
KINDS = ("chi2", "cash", "tied", "numpy")

#: What the background warm-up loads: what a default first fit uses.
BACKGROUND_KINDS = ("chi2",)

_OFF = ("0", "false", "no", "off")

_thread: threading.Thread | None = None
_lock = threading.Lock()


def enabled() -> bool:
    """Whether ``import parfit`` starts the warm-up.

    ``PARFIT_WARMUP`` decides when it is set (``0``, ``false``, ``no`` or
    ``off``: no; anything else: yes); otherwise only an interactive session
    warms up (:func:`interactive`), where the import and the first fit are
    seconds apart.  A script that fits straight after the import gains
    nothing measurable from it, and a command-line call, a dask worker or a
    test run would only spend a core on it.
    """
    value = os.environ.get("PARFIT_WARMUP")
    if value is not None:
        return value.strip().lower() not in _OFF
    return interactive()


def interactive() -> bool:
    """True in a Jupyter or IPython session and in Python's interactive interpreter."""
    return (
        bool(getattr(sys, "ps1", None)) or bool(sys.flags.interactive) or "IPython" in sys.modules
    )


def start() -> bool:
    """Start the background warm-up, once per process; True if it was started now."""
    global _thread
    if not enabled():
        return False
    with _lock:
        if _thread is not None:
            return False
        _thread = threading.Thread(target=_background, name="parfit-warmup", daemon=True)
        _thread.start()
    return True


def wait() -> None:
    """Return when no background warm-up is running (at once if none was started)."""
    thread = _thread
    if thread is not None and thread is not threading.current_thread():
        thread.join()


def _background() -> None:
    try:
        warm(BACKGROUND_KINDS)
    except Exception:  # never surfaces: the first fit then loads or compiles the kernel itself
        log.debug("the background warm-up of the compiled kernel failed", exc_info=True)


def warm(kinds: Sequence[str] = ("chi2",)) -> bool:
    """Load the compiled kernel's variants ``kinds`` (from numba's cache, or compile them).

    Each is loaded by fitting a tiny block of two spectra through the same
    code as a real fit, so that the kernel is loaded for the exact argument
    types real fits use.

    Returns
    -------
    bool
        False when numba is not installed (nothing to load).
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown warm-up kind(s) {unknown}; choose from {list(KINDS)}")
    from . import _compiled

    if not _compiled.AVAILABLE:
        return False
    for kind in kinds:
        _warm_one(kind)
    return True


def _warm_one(kind: str) -> None:
    from ..models import Gaussian1D
    from . import _compiled, trf
    from .base import FitBlock
    from .batched import BatchedFitter, _ModelProblem

    model = Gaussian1D(1.0, 0.0, 1.0)
    if kind == "tied":
        model = Gaussian1D(1.0, -1.0, 1.0) + Gaussian1D(0.5, 1.0, 1.0)
        model.stddev_1.tied = "stddev_0"
    n_fits, n_samples = 2, 16
    x = np.linspace(-4.0, 4.0, n_samples)
    p0 = np.ascontiguousarray(model.starting_values((n_fits,)).T)
    lower, upper = (np.ascontiguousarray(b.T) for b in model.bounds_arrays((n_fits,)))
    y = model.evaluate(x, p0 * 1.05) * (20.0 if kind == "cash" else 1.0)
    block = FitBlock(
        x=(x,),
        y=y,
        weights=None,
        valid=np.ones(y.shape, dtype=bool),
        p0=p0,
        lower=lower,
        upper=upper,
        sample_shape=(n_samples,),
    )
    free = np.asarray(model.free_mask, dtype=bool)
    statistic = "cash" if kind == "cash" else "chi2"
    options = BatchedFitter().options
    with np.errstate(all="ignore"):
        problem = _ModelProblem(model, block, np.arange(n_fits), free, statistic)
        start = problem.template[:, free]
        lo, hi = block.lower[:, free], block.upper[:, free]
        if kind == "numpy":
            trf.trust_region_reflective(
                problem,
                start,
                lo,
                hi,
                options,
                rms=problem.rms,
                x_scale=problem.x_scale,
                n_valid=problem.n_valid,
            )
        else:
            _compiled.solve(model, problem, start, lo, hi, options, required=True)


def _wait_before_fork() -> None:
    # A child forked while the warm-up holds an import or numba's compiler
    # lock would find it held forever.
    wait()


def _forget_in_child() -> None:
    global _thread
    _thread = None


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(before=_wait_before_fork, after_in_child=_forget_in_child)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m parfit.fitters.warmup [KIND ...]``: compile the kernel into numba's cache."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m parfit.fitters.warmup",
        description="Load parfit's compiled kernel, compiling it into numba's on-disk cache "
        "where it is not there yet (once after installing or upgrading parfit, or when "
        "building an image), so that no first fit compiles it.",
    )
    parser.add_argument("kinds", nargs="*", metavar="KIND", help=f"of {', '.join(KINDS)}; all")
    args = parser.parse_args(argv)
    kinds = args.kinds or list(KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    wait()  # ``import parfit`` may have started loading it in the background
    t0 = time.perf_counter()
    if not warm(kinds):
        print("numba is not installed: parfit runs its kernel as plain Python", file=sys.stderr)
        return 0
    seconds = time.perf_counter() - t0
    print(f"parfit's compiled kernel is ready ({', '.join(kinds)}): {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
