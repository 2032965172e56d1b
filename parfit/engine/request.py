"""What a run fits and how: the typed middle layer between ``parallel_fit`` and the engine.

:func:`parfit.parallel_fit` checks its arguments and builds a
:class:`FitRequest`; :func:`parfit.engine.run` fits it block by block into
a sink and fills a :class:`RunInfo`, which :class:`parfit.FitResult`
carries as ``result.run``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from parfit.engine.inputs import CubeInput, WorldSpec
from parfit.fitters.base import Fitter
from parfit.fitters.likelihood import LikelihoodRequest

__all__ = [
    "INITIAL_VALUES",
    "SCHEDULER_NAMES",
    "DatasetLayout",
    "DiagnosticsRequest",
    "Execution",
    "FailedBlock",
    "FitRequest",
    "RunInfo",
]

#: Accepted values of ``initial=`` (None means ``"model"``).
INITIAL_VALUES = ("model", "guess", "mean")
#: dask's scheduler names that ``scheduler=`` accepts (besides None and a Client).
SCHEDULER_NAMES = (
    "default",
    "synchronous",
    "sync",
    "single-threaded",
    "threads",
    "threading",
    "processes",
    "multiprocessing",
)


@dataclass(frozen=True)
class DiagnosticsRequest:
    """Which fits get a diagnostics folder, where, and the user's callable."""

    mode: str
    path: str
    callable: Any = None


@dataclass(frozen=True)
class DatasetLayout:
    """One dataset of a joint fit, as given: its name, shape, fitting axes and dimension names.

    Its samples are one segment of the joint cube's fitting axis
    (:class:`parfit.models.JointModel`); the output cubes of a joint fit
    are written per dataset, in this layout.
    """

    name: str
    shape: tuple[int, ...]
    fitting_axes: tuple[int, ...]
    dims: tuple[str, ...] | None = None
    #: The dataset's WCS, where it came with one.
    wcs: Any = None

    @property
    def iterating_axes(self) -> tuple[int, ...]:
        return tuple(a for a in range(len(self.shape)) if a not in self.fitting_axes)

    @property
    def order(self) -> tuple[int, ...]:
        """The dataset's axes as a block holds them: fitting axes first."""
        return tuple(self.fitting_axes) + self.iterating_axes

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[a] for a in self.fitting_axes)

    def describe(self) -> dict[str, Any]:
        """The layout as JSON-able values (recorded in a store's provenance)."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "fitting_axes": list(self.fitting_axes),
            "dims": list(self.dims) if self.dims else None,
            "n_samples": math.prod(self.sample_shape),
        }


@dataclass(frozen=True)
class FitRequest:
    """Everything about one run's fits, checked: the cube, the model, the fitter, the options.

    Attributes
    ----------
    cube : CubeInput
        The normalised input (data in the model's amplitude unit).
    fitting_axes : tuple of int
        Axes of ``cube`` the model is fitted along.
    model : model
        What the fitter fits: a parfit model, or an astropy model for an
        astropy fitter.
    fitter : Fitter
    world : WorldSpec
        World coordinates of the fitting axes, in the model's units.
    parameters : list of tuple
        ``(name, value, lower, upper)`` of every free parameter; each of the
        three a scalar or a map of the iterating shape.
    fitter_kwargs : dict
    guess : bool
        Start each fit from the model's guess from its own data.
    fit_info : bool or tuple of str
    block_size : int or None
        Most fits per block; None chooses (:func:`parfit.engine.plan.auto_block_size`).
    preserve_native_chunks : bool
        Blocks are the dask chunks of the input.
    diagnostics : DiagnosticsRequest or None
    fit_timeout : float or None
        Seconds one block may take.
    run_id : str
    datasets : tuple of DatasetLayout
        A joint fit's datasets (empty otherwise): ``cube`` holds their
        samples end to end.
    """

    cube: CubeInput
    fitting_axes: tuple[int, ...]
    model: Any
    fitter: Fitter
    world: WorldSpec
    parameters: list[tuple[Any, ...]]
    fitter_kwargs: dict[str, Any] = field(default_factory=dict)
    guess: bool = False
    fit_info: Any = False
    block_size: int | None = None
    preserve_native_chunks: bool = False
    diagnostics: DiagnosticsRequest | None = None
    fit_timeout: float | None = None
    run_id: str = ""
    datasets: tuple[DatasetLayout, ...] = ()
    #: The statistic minimised, and the TS and profiles computed besides.
    likelihood: LikelihoodRequest = field(default_factory=LikelihoodRequest)
    #: Fit only where this bool map of the iterating shape is True (a refit
    #: pass); blocks without any are not run, other pixels stay ``NOT_RUN``.
    todo: Any = None
    #: Skip pixels whose peak is below ``min_snr`` times their robust noise.
    min_snr: float | None = None
    #: Number the peaks of each kind by position after every fit.
    order_components: bool = False
    #: ``initial="mean"``: the starts will come from a fit of the mean spectrum.
    initial_mean: bool = False
    #: Neighbour refits after the first pass (:class:`parfit.engine.refit.RefitOptions`).
    refit: Any = None

    @property
    def extra_fields(self) -> tuple[str, ...]:
        """The maps the run adds to the standard ones: TS, profiles, refit counts."""
        from parfit.engine.refit import REFIT_FIELDS

        return tuple(self.likelihood.fields) + (REFIT_FIELDS if self.refit is not None else ())

    @property
    def iterating_axes(self) -> tuple[int, ...]:
        """The axes with one fit per position (the maps' axes)."""
        return tuple(a for a in range(self.cube.ndim) if a not in self.fitting_axes)

    @property
    def iterating_shape(self) -> tuple[int, ...]:
        """Shape of every map."""
        return tuple(self.cube.shape[a] for a in self.iterating_axes)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one fit's samples."""
        return tuple(self.cube.shape[a] for a in self.fitting_axes)

    @property
    def order(self) -> tuple[int, ...]:
        """The input's axes as the blocks hold them: fitting axes first."""
        return tuple(self.fitting_axes) + self.iterating_axes

    @property
    def param_names(self) -> list[str]:
        """Names of the fitted parameters, in model order."""
        return [entry[0] for entry in self.parameters]

    def sample_sources(self) -> dict[str, Any]:
        """The per-sample inputs by their block-input name, each broadcastable to the cube.

        ``"data"``, and where given ``"weights"``, ``"mask"`` and the world
        arrays ``"x0"``, ``"x1"``... of coordinates that vary between pixels:
        what every block's task reads, cut to the block.
        """
        cube = self.cube
        sources: dict[str, Any] = {"data": cube.data}
        if cube.weights is not None:
            sources["weights"] = cube.weights
        if cube.mask is not None:
            sources["mask"] = cube.mask
        if self.world.kind == "nd":
            sources.update({f"x{k}": w for k, w in enumerate(self.world.arrays)})
        return sources

    @property
    def n_fits(self) -> int:
        return math.prod(self.iterating_shape)

    @property
    def n_samples(self) -> int:
        return math.prod(self.sample_shape)


@dataclass(frozen=True)
class Execution:
    """Where and how the block tasks run: ``dask.compute`` keywords, the Client, progress.

    ``in_process``: the tasks run in this process (dask's threaded or
    synchronous scheduler), so they can hand work to its threads.
    ``threads``: no dask scheduler was asked for and dask is not even
    imported: blocks whose inputs are all in memory run on a pool of this
    process's threads without dask (``compute_kwargs`` then names dask's
    threaded scheduler, imported on first use, for anything else).
    """

    compute_kwargs: dict[str, Any]
    client: Any = None
    progress: bool = False
    in_process: bool = False
    threads: bool = False

    @property
    def n_cores(self) -> int:
        """Threads that run block tasks: the cluster's, else this machine's."""
        import os

        if self.client is not None:
            try:
                return max(1, sum(self.client.nthreads().values()))
            except Exception:  # a client that cannot say: assume this machine
                pass
        return os.cpu_count() or 1


@dataclass(frozen=True)
class FailedBlock:
    """A block whose task failed on the cluster: where, the status given to its fits, why."""

    region: str
    status: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"region": self.region, "status": self.status, "error": self.error}


@dataclass
class RunInfo:
    """What a run did, for :class:`parfit.FitResult` (``result.run``) and the run record.

    Attributes
    ----------
    run_id : str or None
        Identifies the run (and its diagnostics folders and store).
    fitter : str or None
        The fitter's description.
    fitting_axes, iterating_axes, data_shape : tuple of int
    block_shape : tuple of int
        Fits per block along each iterating axis.
    blocks : int
        Blocks of the run (0 for empty maps).
    blocks_fitted : int
        Blocks fitted by this call (a resume skips those already done).
    blocks_resumed : int
        Blocks kept from the store (resume).
    output : str or None
        The store the maps were streamed to (or read from).
    complete : bool
        Every block of the store is recorded and verifies.
    failed_blocks : list of FailedBlock
        Blocks whose task failed on the cluster.
    damaged_blocks : list of tuple
        Blocks of a store read with ``allow_damaged=True`` that are damaged.
    mean_start : dict or None
        ``initial="mean"``: ``pixels`` averaged, ``status`` of the mean
        spectrum's fit, ``values`` every fit started from.
    refit : list of dict
        ``refit="neighbours"``: per pass, its number and the fits
        ``refitted``, ``improved`` (replaced by a better fit) and
        ``rescued`` (a failure replaced by a success).
    """

    run_id: str | None = None
    fitter: str | None = None
    fitting_axes: tuple[int, ...] = ()
    iterating_axes: tuple[int, ...] = ()
    data_shape: tuple[int, ...] = ()
    block_shape: tuple[int, ...] = ()
    blocks: int = 0
    blocks_fitted: int = 0
    blocks_resumed: int = 0
    output: str | None = None
    complete: bool = True
    failed_blocks: list[FailedBlock] = field(default_factory=list)
    damaged_blocks: list[tuple[int, ...]] = field(default_factory=list)
    #: ``initial="mean"``: the pixels averaged, the mean fit's status and the starts.
    mean_start: dict[str, Any] | None = None
    #: Neighbour refits: one ``{"pass", "refitted", "improved", "rescued"}`` per pass.
    refit: list[dict[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The information as a plain dict (``FitResult.meta``); failed blocks as dicts."""
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "fitter": self.fitter,
            "fitting_axes": self.fitting_axes,
            "iterating_axes": self.iterating_axes,
            "data_shape": self.data_shape,
            "block_shape": self.block_shape,
            "blocks": self.blocks,
            "blocks_fitted": self.blocks_fitted,
            "blocks_resumed": self.blocks_resumed,
            "output": self.output,
            "complete": self.complete,
            "failed_blocks": [b.as_dict() for b in self.failed_blocks],
            "damaged_blocks": list(self.damaged_blocks),
            "mean_start": self.mean_start,
            "refit": list(self.refit),
        }
        return out
