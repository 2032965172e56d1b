"""parfit: fit a model to every pixel of an N-dimensional cube, in parallel on dask.

The public surface is small:

* :func:`parallel_fit` - fit every pixel (or image plane) of a cube,
* :class:`FitResult` - what it returns,
* :func:`read_result` - a result read back from its output store,
* :mod:`parfit.models` - models and parameters,
* :mod:`parfit.fitters` - the fitters.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("parfit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

# parfit.models and parfit.fitters, attributes of parfit after a plain ``import parfit``.
from parfit import fitters as fitters
from parfit import models as models
from parfit.fit import parallel_fit
from parfit.result import FitResult, read_result
from parfit.status import Flag, Status

# The documented names (docs/api.rst; tests/test_public_api.py keeps them equal).
__all__ = [
    "parallel_fit",
    "read_result",
    "FitResult",
    "Status",
    "Flag",
    "__version__",
]

# In an interactive session (or with PARFIT_WARMUP=1), numba and the compiled
# kernel load in a background thread while the user goes on to a first fit
# (see parfit.fitters.warmup).
from parfit.fitters import warmup as _warmup  # noqa: E402

_warmup.start()
