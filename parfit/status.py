"""Per-fit status codes and quality flags.

Every fit ends with one of the :class:`Status` codes, stored as ``int8``
beside the parameter maps (``FitResult.status``).  Code 0 is the fill value
of a freshly created output, so it can only ever mean "this fit has not
run".  Only ``OK`` fits carry finite parameters, and an ``OK`` fit always
has a finite error for every free parameter; every other code comes with
NaN parameters and errors (``DEGENERATE`` fits keep the chi-square they
reached in ``statistic``).

Beside the status, every fit has :class:`Flag` bits (``FitResult.flags``,
``uint8``), which say how the solution looks: on a bound, singular,
collapsed, found from a second start, or a profile interval that reached a
bound.  ``SINGULAR`` and ``DEGENERATE``
turn a converged fit into ``Status.DEGENERATE``; ``AT_BOUND``,
``RETRIED``, ``DATASET_MISSING`` and ``LIMIT_AT_BOUND`` only inform.
"""

import enum

import numpy as np

__all__ = [
    "Status",
    "STATUS_DESCRIPTIONS",
    "Flag",
    "FLAG_DESCRIPTIONS",
    "DEMOTING_FLAGS",
    "NOT_ATTEMPTED",
    "is_failure",
    "flag_counts",
    "flag_names",
]


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
    #: The solver converged, but to a degenerate solution: the covariance is
    #: singular (some parameter is not determined by the data) or the model
    #: collapsed (a zero or unresolved width, a width far beyond the data, a
    #: line outside the data).  See ``flags`` for which.
    DEGENERATE = 9
    #: The block holding this fit ran past ``fit_timeout`` seconds (a model
    #: that hangs); its unfinished fits were abandoned, the run went on.
    TIMEOUT = 10
    #: Not fitted on purpose: the spectrum's peak is below ``min_snr`` times
    #: its robust noise (a noise-only pixel), so no time was spent on it.
    SKIPPED = 11

    def is_failed(self) -> bool:
        """True for a fit that was attempted and did not succeed.

        The one definition of "failed" (:func:`is_failure` applies it to
        arrays): not ``OK``, and not one of :data:`NOT_ATTEMPTED`
        (``NOT_RUN``, ``NO_VALID_DATA``, ``SKIPPED``).

        Examples
        --------
        >>> Status.DEGENERATE.is_failed(), Status.NO_VALID_DATA.is_failed()
        (True, False)
        """
        return self is not Status.OK and self not in NOT_ATTEMPTED


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
    Status.DEGENERATE: "converged to a degenerate solution (singular covariance or collapsed "
    "model)",
    Status.TIMEOUT: "not finished within fit_timeout (the fitting of its block was abandoned)",
    Status.SKIPPED: "skipped: peak below min_snr times the robust noise (noise only)",
}

#: Codes of fits that were never attempted: not failures, and not successes.
NOT_ATTEMPTED = (Status.NOT_RUN, Status.NO_VALID_DATA, Status.SKIPPED)


def is_failure(status):
    """True where a fit was attempted and did not succeed (the one definition of "failed").

    Examples
    --------
    >>> import numpy as np
    >>> is_failure(np.array([Status.OK, Status.NO_VALID_DATA, Status.DEGENERATE]))
    array([False, False,  True])
    """
    status = np.asarray(status)
    return (status != Status.OK) & ~np.isin(status, NOT_ATTEMPTED)


class Flag(enum.IntFlag):
    """Quality flags of a single fit (bits of ``FitResult.flags``)."""

    #: Nothing to report.
    NONE = 0
    #: A free parameter ended on one of its bounds (within 1e-6 of its scale,
    #: or within a thousandth of its error); or, fitting counts, the model
    #: ended at zero in a sample without counts (the edge of the likelihood's
    #: domain, which only a negative component can reach).
    AT_BOUND = 1
    #: The covariance matrix is singular or too ill-conditioned to invert:
    #: some parameters (or combinations) are not determined by the data.
    SINGULAR = 2
    #: The model collapsed: a peak whose FWHM is below half the sample spacing
    #: (an unresolved spike) or above four times the data's extent (it mimics
    #: a constant), whose centre is more than 1.5 FWHM outside the data, or
    #: whose amplitude is zero.
    DEGENERATE = 4
    #: The first solution was singular, collapsed, on a bound, not converged or
    #: had a peak below three times its error; the fit was redone from a second
    #: start (the model's guess from the data) and the better of the two kept.
    RETRIED = 8
    #: A joint fit (several datasets) where one dataset has no valid sample:
    #: the fit used the others, and the parameters only that dataset
    #: determines are NaN (value and error).
    DATASET_MISSING = 16
    #: A profile-likelihood interval or upper limit (``profile=``) reached a
    #: parameter's bound before the statistic rose enough: the bound is given.
    LIMIT_AT_BOUND = 32


FLAG_DESCRIPTIONS = {
    Flag.AT_BOUND: "a free parameter ended on a bound",
    Flag.SINGULAR: "singular or ill-conditioned covariance",
    Flag.DEGENERATE: "the model collapsed (zero or unresolved width, width beyond the data, "
    "line outside the data, zero amplitude)",
    Flag.RETRIED: "refitted from a second start; the better solution kept",
    Flag.DATASET_MISSING: "a dataset of the joint fit has no valid sample here; its own "
    "parameters are NaN",
    Flag.LIMIT_AT_BOUND: "a profile interval or upper limit reached a parameter's bound; "
    "the bound is given",
}

#: Flags that turn a converged fit into ``Status.DEGENERATE``.
DEMOTING_FLAGS = Flag.SINGULAR | Flag.DEGENERATE


def flag_counts(flags):
    """Number of fits with each :class:`~parfit.status.Flag` set, ``{Flag: count}``.

    Only flags set on at least one fit are listed, in bit order.

    Examples
    --------
    >>> import numpy as np
    >>> flag_counts(np.array([0, 1, 3, 8], dtype=np.uint8))
    {<Flag.AT_BOUND: 1>: 2, <Flag.SINGULAR: 2>: 1, <Flag.RETRIED: 8>: 1}
    """
    flags = np.asarray(flags).astype(np.int64, copy=False)
    out = {}
    for flag in Flag:
        if flag.value:
            n = int(np.count_nonzero(flags & flag.value))
            if n:
                out[flag] = n
    return out


def flags_attrs():
    """The CF attributes of a map of :class:`~parfit.status.Flag` bits."""
    bits = [flag for flag in Flag if flag.value]
    return {
        "long_name": "parfit fit quality flags (bits)",
        "flag_masks": np.array([int(f) for f in bits], dtype=np.uint8),
        "flag_meanings": " ".join(f.name.lower() for f in bits),
    }


def flag_names(bits):
    """Names of the :class:`~parfit.status.Flag` bits set in ``bits``, in bit order.

    Examples
    --------
    >>> flag_names(9)
    ['AT_BOUND', 'RETRIED']
    >>> flag_names(0)
    []
    """
    bits = int(bits)
    return [flag.name for flag in Flag if flag.value and bits & flag.value]
