"""Per-fit status codes.

Every fit ends with one of these codes, stored as ``int8`` beside the
parameter maps (``FitResult.status``).  Code 0 is the fill value of a freshly
created output, so it can only ever mean "this fit has not run".  Only
``OK`` fits carry finite parameters; every other code comes with NaN
parameters, errors and statistic.
"""

import enum

__all__ = ["Status", "STATUS_DESCRIPTIONS"]


class Status(enum.IntEnum):
    """Outcome of a single fit."""

    #: The fit has not been run (fill value of a new output).
    NOT_RUN = 0
    #: The fit converged; parameters are finite.
    OK = 1
    #: The model or the fitter raised an exception (see ``error.log``).
    FIT_ERROR = 2
    #: The solver stopped without meeting its convergence criteria
    #: (for instance ``max_nfev`` was reached).
    NOT_CONVERGED = 3
    #: Every sample was NaN, infinite, masked or had zero weight.
    NO_VALID_DATA = 4
    #: Fewer valid samples than free parameters; no fit was attempted.
    TOO_FEW_SAMPLES = 5
    #: A per-fit starting value was NaN or outside its bounds.
    BAD_START = 6
    #: The model gave non-finite values at the start, or the fit ended on
    #: non-finite parameters.
    NONFINITE = 7
    #: The process running this fit died repeatedly (dask.distributed).
    WORKER_CRASH = 8


STATUS_DESCRIPTIONS = {
    Status.NOT_RUN: "not run",
    Status.OK: "ok",
    Status.FIT_ERROR: "the model or fitter raised an exception",
    Status.NOT_CONVERGED: "the solver did not converge",
    Status.NO_VALID_DATA: "no valid samples (all NaN, inf, masked or zero weight)",
    Status.TOO_FEW_SAMPLES: "fewer valid samples than free parameters",
    Status.BAD_START: "starting value NaN or outside bounds",
    Status.NONFINITE: "model or fitted parameters not finite",
    Status.WORKER_CRASH: "the worker process running this fit died",
}
