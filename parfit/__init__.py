"""parfit: fit a model to every pixel of an N-dimensional cube, in parallel on dask.

The public surface is small:

* :func:`parallel_fit` - fit every pixel (or image plane) of a cube,
* :class:`FitResult` - what it returns,
* :mod:`parfit.models` - models and parameters,
* :mod:`parfit.fitters` - the fitters.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("parfit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from . import fitters, models
from .parallel import parallel_fit
from .result import FitResult
from .status import Flag, Status

__all__ = ["parallel_fit", "FitResult", "Status", "Flag", "models", "fitters", "__version__"]
