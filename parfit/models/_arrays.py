"""Per-pixel starting values and bounds, parameter units."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from astropy import units as u

from parfit.errors import InputError, ParameterError
from parfit.models._expr import compile_expression
from parfit.models.parameters import Parameter

__all__ = ["ArraysMixin"]


class ArraysMixin:
    """Per-pixel arrays and units part of :class:`parfit.models.Model`."""

    _params: Any
    n_params: Any
    n_inputs: ClassVar[int]

    def _declared_specs(self) -> tuple[Any, ...]:  # Model's
        raise NotImplementedError

    def starting_values(self, shape: tuple[int, ...]) -> np.ndarray:
        """Starting values broadcast to the iterating (non-fitting) shape.

        Parameters
        ----------
        shape : tuple of int
            Non-fitting shape of the cube (or of a block of it).

        Returns
        -------
        ndarray
            float64 ``(n_params,) + shape``.

        Examples
        --------
        >>> import numpy as np
        >>> from parfit.models import Gaussian1D
        >>> Gaussian1D(mean=np.arange(3.0)).starting_values((2, 3))[1]
        array([[0., 1., 2.],
               [0., 1., 2.]])
        """
        shape = tuple(shape)
        out = np.empty((self.n_params,) + shape, dtype=np.float64)
        for k, p in enumerate(self._params.values()):
            out[k] = self._broadcast_param(p, p.value, shape, "value")
        return out

    def _broadcast_param(self, p: Parameter, value: Any, shape: tuple[int, ...], what: str) -> Any:
        if not isinstance(value, np.ndarray):
            return value
        try:
            return np.broadcast_to(value, shape)
        except ValueError:
            kind = "value" if what == "value" else what
            raise ParameterError(
                f"Parameter {p.name!r} has a per-pixel {kind} of shape {value.shape} that "
                f"does not broadcast to the non-fitting shape {shape}"
            ) from None

    def bounds_arrays(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds broadcast to the iterating shape.

        Returns
        -------
        lower, upper : ndarray
            float64 ``(n_params,) + shape``; ``-inf``/``+inf`` where unbounded.

        Examples
        --------
        >>> from parfit.models import Gaussian1D
        >>> lo, hi = Gaussian1D(bounds={"mean": (-1, 1)}).bounds_arrays((2,))
        >>> lo[1], hi[1]
        (array([-1., -1.]), array([1., 1.]))
        """
        shape = tuple(shape)
        lower = np.empty((self.n_params,) + shape, dtype=np.float64)
        upper = np.empty((self.n_params,) + shape, dtype=np.float64)
        for k, p in enumerate(self._params.values()):
            lo = -np.inf if p.lower is None else p.lower
            hi = np.inf if p.upper is None else p.upper
            lower[k] = self._broadcast_param(p, lo, shape, "lower bound")
            upper[k] = self._broadcast_param(p, hi, shape, "upper bound")
        return lower, upper

    # ------------------------------------------------------------------
    # units
    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the inputs used in unit roles: ``('x',)`` or ``('x', 'y')``."""
        return ("x",) if self.n_inputs == 1 else ("x", "y")

    @property
    def output_name(self) -> str:
        """Name of the output used in unit roles: ``'y'`` (1-D) or ``'z'`` (2-D)."""
        return "y" if self.n_inputs == 1 else "z"

    def _parameter_units(
        self, input_units: Sequence[Any], output_unit: Any
    ) -> dict[str, u.UnitBase | None]:
        """Unit of every parameter for data with the given units.

        ``None`` stands for dimensionless, in the arguments and the result.

        Examples
        --------
        >>> from astropy import units as u
        >>> from parfit.models import Linear1D
        >>> Linear1D()._parameter_units((u.um,), u.Jy)
        {'slope': Unit("Jy / um"), 'intercept': Unit("Jy")}
        """
        if len(input_units) != self.n_inputs:
            raise InputError(
                f"{type(self).__name__} has {self.n_inputs} input(s), got "
                f"{len(input_units)} input unit(s)"
            )
        one = u.dimensionless_unscaled
        ns: dict[str, Any] = {"rad": u.rad}
        for nm, unit in zip(self.input_names, input_units, strict=True):
            ns[nm] = one if unit is None else u.Unit(unit)
        ns[self.output_name] = one if output_unit is None else u.Unit(output_unit)
        result: dict[str, u.UnitBase | None] = {}
        for spec in self._declared_specs():
            pname, role = spec.name, spec.unit
            if role is None:
                result[pname] = None
                continue
            unit = compile_expression(role, tuple(ns))(ns)
            unit = u.Unit(unit)
            result[pname] = None if unit == one else unit
        return result
