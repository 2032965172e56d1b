"""What one block of fits produces: :class:`BlockOutput`, in the store's field layout.

The fields (their names, dtypes and fill values) are defined once, by
:func:`parfit.store.layout.field_specs`; the kernel fills a
:class:`BlockOutput`, the memory sink places its fields into the maps and
the store sink writes them as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from parfit.status import Status
from parfit.store.layout import field_specs

__all__ = ["BlockOutput", "BlockPlace"]


@dataclass(frozen=True)
class BlockPlace:
    """Where a block lies in the maps: its index in the grid of blocks, offsets and shape."""

    index: tuple[int, ...]
    offsets: tuple[int, ...]
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def region(self) -> tuple[slice, ...]:
        """The block's slice of the maps."""
        return tuple(slice(o, o + n) for o, n in zip(self.offsets, self.shape))

    def describe(self) -> str:
        return ", ".join(f"{o}:{o + n}" for o, n in zip(self.offsets, self.shape))


@dataclass
class BlockOutput:
    """The fields of one block's fits, each with the block's shape.

    Attributes
    ----------
    param_names : list of str
    params, errors : ndarray
        ``block_shape + (n_params,)`` float64.
    statistic : ndarray of float64
    status : ndarray of int8
    nfev, n_warnings : ndarray of int32
    reported : ndarray of int8
        1 where the fit got a diagnostics folder.
    flags : ndarray of uint8
    fit_info : ndarray of object or None
    cubes : dict
        ``{name: values}`` of the output cubes' part of this block, in the
        input's axis order.
    start : ndarray or None
        The starting values each fit started from (after its guess), when
        asked for (:attr:`parfit.engine.kernel.BlockSpec.keep_start`).
    statistics : dict
        A joint fit's share of the statistic of each dataset, ``{dataset:
        float64 values}`` (NaN where absent).
    extras : dict
        The run's extra float maps (:attr:`parfit.fitters.likelihood.LikelihoodRequest.fields`:
        TS and profile intervals), ``{name: values}``.
    """

    param_names: list[str]
    params: np.ndarray
    errors: np.ndarray
    statistic: np.ndarray
    status: np.ndarray
    nfev: np.ndarray
    n_warnings: np.ndarray
    reported: np.ndarray
    flags: np.ndarray
    fit_info: np.ndarray | None = None
    cubes: dict[str, np.ndarray] = field(default_factory=dict)
    start: np.ndarray | None = None
    statistics: dict[str, np.ndarray] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.status.shape)

    def fields(self) -> dict[str, np.ndarray]:
        """Every field by its store name (:func:`parfit.store.layout.field_specs`), typed."""
        values: dict[str, Any] = {}
        for k, name in enumerate(self.param_names):
            values[name] = self.params[..., k]
            values[f"{name}_error"] = self.errors[..., k]
        for dataset, share in self.statistics.items():
            values[f"statistic.{dataset}"] = share
        values.update(
            statistic=self.statistic,
            status=self.status,
            nfev=self.nfev,
            n_warnings=self.n_warnings,
            reported=self.reported,
            flags=self.flags,
        )
        values.update(self.extras)
        shape = self.shape
        return {
            name: np.asarray(values[name], dtype=dtype)
            if name in values
            else np.full(shape, fill, dtype=dtype)
            for name, dtype, fill in field_specs(self.param_names, tuple(self.extras))
        }

    def status_counts(self) -> np.ndarray:
        """Fits per status code (indexed by code)."""
        return np.bincount(self.status.astype(np.int64).ravel(), minlength=len(Status))

    @classmethod
    def failed(
        cls, param_names: list[str], shape: tuple[int, ...], status: Status, fit_info: bool = False
    ) -> BlockOutput:
        """A block none of whose fits ran: NaN values, ``status`` everywhere, zero counts."""
        n = len(param_names)
        info = None
        if fit_info:
            info = np.empty(shape, dtype=object)
        return cls(
            param_names=list(param_names),
            params=np.full(shape + (n,), np.nan),
            errors=np.full(shape + (n,), np.nan),
            statistic=np.full(shape, np.nan),
            status=np.full(shape, int(status), dtype=np.int8),
            nfev=np.zeros(shape, dtype=np.int32),
            n_warnings=np.zeros(shape, dtype=np.int32),
            reported=np.zeros(shape, dtype=np.int8),
            flags=np.zeros(shape, dtype=np.uint8),
            fit_info=info,
        )
